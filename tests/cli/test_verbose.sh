# --verbose: the wait time, and who holds the lock (kernel and soft), on
# stderr only; and nothing at all without it.
. "$(dirname "$0")/lib.sh"

fl_expect 0 "--verbose on a free lock" --verbose lock true
contains "reports the wait" "$ERR" "got exclusive lock on 'lock' after"
equals "stdout untouched" "$OUT" ""

start_holder A "$FILELOCK" lock sh -c "$(hold_script A)"
fl_expect 1 "--verbose -n against a holder" --verbose -n lock true
contains "names the holder" "$ERR" "held by pid $HOLDER_PID (filelock) on host $HOST"
contains "says it failed" "$ERR" "failed to get lock"
fl_expect 1 "--verbose -w" --verbose -w 0.2 lock true
contains "says it timed out" "$ERR" "timed out after"
fl_expect 1 "quiet without --verbose" -w 0.1 lock true
equals "no message on a timeout" "$ERR" ""
"$FILELOCK" --verbose -w 15 lock true 2>waiter.err &
waiter=$!
BG_PIDS="$BG_PIDS $waiter"
sleep 0.3
stop_holder A
checks=$((checks + 1))
wait "$waiter" || fail "verbose waiter exit $?"
contains "waiter named the holder" "$(cat waiter.err)" "held by pid $HOLDER_PID"
contains "waiter reported the wait" "$(cat waiter.err)" "got exclusive lock on 'lock' after"

# Soft lock: the marker's owner record, and a hint when its process is gone.
start_holder S "$FILELOCK" --soft slock sh -c "$(hold_script S)"
fl_expect 1 "--verbose --soft -n" --verbose --soft -n slock true
contains "names the soft holder" "$ERR" "held by pid $HOLDER_PID (filelock) on host $HOST"
stop_holder S
printf 'garbage' >slock
fl_expect 1 "--verbose on a marker without owner record" --verbose --soft -n slock true
contains "holder unknown" "$ERR" "is held (holder unknown)"
rm -f slock

# Descriptor form.
exec 9>lock
fl_expect 0 "--verbose on a descriptor" --verbose 9
contains "fd wait reported" "$ERR" "got exclusive lock on file descriptor 9 after"
exec 9>&-
start_holder B "$FILELOCK" lock sh -c "$(hold_script B)"
exec 8>lock
fl_expect 1 "--verbose -n on a held descriptor" --verbose -n 8
contains "fd holder named" "$ERR" "held by pid $HOLDER_PID"
exec 8>&-
stop_holder B

finish
