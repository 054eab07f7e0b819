# Signals: the lock lives as long as the command, so a signal sent to
# filelock is passed on to the command and filelock waits for it; a signal
# during the wait ends filelock as it would have (128+N) and leaves nothing.
. "$(dirname "$0")/lib.sh"

# SIGTERM to filelock: the command gets it, the exit status says so, and
# the command is gone afterwards.
"$FILELOCK" lock sh -c "echo \$\$ > cpid; touch T.ready; exec sleep 30" &
fl=$!
BG_PIDS="$BG_PIDS $fl"
wait_for T.ready
kill -TERM "$fl"
wait "$fl"
equals "status after SIGTERM" "$?" 143
checks=$((checks + 1))
if kill -0 "$(cat cpid)" 2>/dev/null; then fail "command survived"; fi
fl_expect 0 "lock free afterwards" -n lock true

# The lock stays held while the command handles the signal.
cat >trapper.sh <<'SH'
trap 'touch got_term; i=0; while [ ! -e go2 ] && [ $i -lt 750 ]; do sleep 0.02; i=$((i+1)); done; exit 5' TERM
touch R.ready
i=0
while [ $i -lt 750 ]; do sleep 0.02; i=$((i+1)); done
SH
"$FILELOCK" lock sh trapper.sh &
fl=$!
BG_PIDS="$BG_PIDS $fl"
wait_for R.ready
kill -TERM "$fl"
wait_for got_term
fl_expect 1 "still held while the command cleans up" -n lock true
touch go2
wait "$fl"
equals "the command's own status" "$?" 5

# SIGHUP and SIGUSR1 are passed on too.
for sig in HUP USR1; do
    rm -f S.ready
    "$FILELOCK" lock sh -c "touch S.ready; exec sleep 30" &
    fl=$!
    BG_PIDS="$BG_PIDS $fl"
    wait_for S.ready
    kill -"$sig" "$fl"
    wait "$fl"
    equals "status after SIG$sig" "$?" "$((128 + $(kill -l "$sig")))"
done

# Soft lock: killed with SIGTERM, the marker is still removed.
"$FILELOCK" --soft slock sh -c "touch M.ready; exec sleep 30" &
fl=$!
BG_PIDS="$BG_PIDS $fl"
wait_for M.ready
kill -TERM "$fl"
wait "$fl"
equals "soft: status after SIGTERM" "$?" 143
ok "soft: marker removed" test ! -e slock

# A signal while waiting for the lock ends the wait at once.
for kind in kernel soft; do
    opt=""
    [ "$kind" = soft ] && opt=--soft
    start_holder W "$FILELOCK" $opt wlock sh -c "$(hold_script W)"
    "$FILELOCK" $opt wlock sh -c 'touch waiter-ran' &
    waiter=$!
    BG_PIDS="$BG_PIDS $waiter"
    sleep 0.3
    t0=$(now)
    kill -TERM "$waiter"
    wait "$waiter"
    rc=$?
    t1=$(now)
    equals "$kind: waiter killed by SIGTERM" "$rc" 143
    elapsed_between "$t0" "$t1" 0 5 "$kind: waiter ended promptly"
    ok "$kind: waiter never ran its command" test ! -e waiter-ran
    if [ "$kind" = soft ]; then
        fl_expect 0 "soft: the holder's marker is intact" --soft --owner wlock
        equals "soft: marker still the holder's" "$OUT" "$HOLDER_PID $HOST"
    fi
    stop_holder W
    equals "$kind: holder unaffected" "$HOLDER_RC" 0
done

finish
