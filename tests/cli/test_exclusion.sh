# filelock against filelock: -n, -w, -E, a blocked waiter, and a counter
# that many processes increment under the lock.
. "$(dirname "$0")/lib.sh"

start_holder A "$FILELOCK" lock sh -c "$(hold_script A)"

fl_expect 1 "-n against a holder" -n lock true
equals "-n is silent without --verbose" "$ERR" ""
fl_expect 9 "-n -E 9" -n -E 9 lock true
fl_expect 0 "-E 0 makes a conflict look like success" -n -E 0 lock sh -c 'exit 5'
fl_expect 1 "--nonblock" --nonblock lock true
fl_expect 1 "-w 0 is one attempt" -w 0 lock true
t0=$(now)
fl_expect 1 "-w 0.3 times out" -w 0.3 lock true
t1=$(now)
elapsed_between "$t0" "$t1" 0.25 10 "-w 0.3"
fl_expect 4 "-w with -E 4" -w 0.1 -E 4 lock true
fl_expect 1 "-n wins over -w" -n -w 5 lock true
ok "the conflicting commands never ran" test ! -e ran

# A waiter without -w blocks until the holder is done, then runs.
"$FILELOCK" lock sh -c "echo 'B done' >> '$TMP/log'" &
waiter=$!
BG_PIDS="$BG_PIDS $waiter"
sleep 0.5
ok "waiter still blocked while A holds" test ! -e log
stop_holder A
equals "holder's status" "$HOLDER_RC" 0
# the waiter gives up only through the script deadline
checks=$((checks + 1))
wait "$waiter" || fail "waiter exit status $?"
equals "critical sections in order" "$(cat log)" "A done
B done"

# A waiter with -w wins once the holder releases.
start_holder C "$FILELOCK" lock sh -c "$(hold_script C)"
"$FILELOCK" -w 15 lock sh -c "echo 'D done' >> '$TMP/log'" &
waiter=$!
BG_PIDS="$BG_PIDS $waiter"
sleep 0.3
stop_holder C
checks=$((checks + 1))
wait "$waiter" || fail "-w waiter exit status $?"
equals "the -w waiter ran after the holder" "$(tail -n 2 log)" "C done
D done"

# Mutual exclusion under contention: 4 processes x 25 read-modify-writes.
echo 0 >counter
worker() {
    local i
    for i in $(seq 25); do
        "$FILELOCK" -w 15 lock sh -c 'n=$(cat counter); sleep 0.001; echo $((n + 1)) > counter' || echo "worker failure $?" >>errors
    done
}
pids=""
for w in 1 2 3 4; do
    worker &
    pids="$pids $!"
done
BG_PIDS="$BG_PIDS $pids"
for p in $pids; do wait "$p"; done
ok "no worker failed" test ! -e errors
equals "no increment lost" "$(cat counter)" 100

finish
