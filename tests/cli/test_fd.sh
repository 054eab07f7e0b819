# The "filelock <fd>" form: the lock belongs to the shell's open file
# description and outlives filelock; -u; -n/-w/-E on a descriptor; waking
# when a holder only unlocks (LOCK_UN without close).
. "$(dirname "$0")/lib.sh"

exec 9>lockfd
fl_expect 0 "lock fd 9" 9
# filelock has exited: the shell's descriptor still holds the lock.
fl_expect 1 "path form sees the fd lock" -n lockfd true
expect 1 "util-linux flock sees the fd lock" flock -n lockfd true
fl_expect 0 "locking the same description again" -n 9
fl_expect 0 "-u 9" -u 9
fl_expect 0 "free after -u" -n lockfd true
fl_expect 0 "--unlock on an unlocked fd" --unlock 9
fl_expect 0 "lock fd 9 again" -w 1 9
exec 9>&-
fl_expect 0 "closing the last descriptor releases" -n lockfd true

fl_expect 66 "bad descriptor" 57
contains "names the descriptor" "$ERR" "57"

# Conflicts on a descriptor.
start_holder A "$FILELOCK" lockfd sh -c "$(hold_script A)"
exec 8>lockfd
fl_expect 1 "-n on fd against a holder" -n 8
fl_expect 5 "-n -E 5 on fd" -n -E 5 8
fl_expect 1 "-w 0 on fd" -w 0 8
t0=$(now)
fl_expect 1 "-w 0.3 on fd" -w 0.3 8
t1=$(now)
elapsed_between "$t0" "$t1" 0.25 10 "-w 0.3 on a descriptor"
# A timed-out filelock must not leave a timer behind for the shell.
ok "no stray SIGALRM" sleep 0.1
# A timeout beyond time_t (1e19 s) is clamped, not turned into EINVAL.
"$FILELOCK" -w 1e19 8 &
waiter=$!
BG_PIDS="$BG_PIDS $waiter"
sleep 0.3
stop_holder A
checks=$((checks + 1))
wait "$waiter" || fail "fd waiter with -w: exit $?"
fl_expect 1 "the fd lock won by the waiter is held" -n lockfd true
fl_expect 0 "-u 8" -u 8
exec 8>&-

# A holder that unlocks without closing (flock -u) wakes a waiting fd.
(
    exec 7>lockfd
    flock 7
    touch U.ready
    i=0
    while [ ! -e U.go ] && [ $i -lt 750 ]; do sleep 0.02; i=$((i + 1)); done
    flock -u 7
    touch U.unlocked
    i=0
    while [ ! -e U.end ] && [ $i -lt 750 ]; do sleep 0.02; i=$((i + 1)); done
) &
holder=$!
BG_PIDS="$BG_PIDS $holder"
wait_for U.ready
exec 6>lockfd
"$FILELOCK" -w 15 6 &
w1=$!
BG_PIDS="$BG_PIDS $w1"
sleep 0.2
touch U.go
checks=$((checks + 1))
wait "$w1" || fail "fd waiter after LOCK_UN: exit $?"
ok "the holder still had its descriptor open" test ! -e U.end
touch U.end
wait "$holder"
exec 6>&-

# Waiting forever on a descriptor (no -w) also wakes.
start_holder B "$FILELOCK" lockfd sh -c "$(hold_script B)"
exec 5>lockfd
"$FILELOCK" 5 &
w2=$!
BG_PIDS="$BG_PIDS $w2"
sleep 0.2
stop_holder B
checks=$((checks + 1))
wait "$w2" || fail "fd waiter without -w: exit $?"
exec 5>&-

finish
