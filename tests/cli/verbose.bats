#!/usr/bin/env bats
# --verbose: the wait time, and who holds the lock (kernel and soft), on
# stderr only; and nothing at all without it.
load common

@test "a free lock: the wait is reported on stderr, stdout untouched" {
    flx 0 --verbose lock true
    [[ "$stderr" == *"got exclusive lock on 'lock' after"* ]]
    assert_output ""
}

@test "a held kernel lock: the holder, the failure, the timeout" {
    start_holder A "$FILELOCK" lock sh -c "$(hold_script A)"
    flx 1 --verbose -n lock true
    [[ "$stderr" == *"held by pid $HOLDER_PID (filelock) on host $HOST"* ]]
    [[ "$stderr" == *"failed to get lock"* ]]
    flx 1 --verbose -w 0.2 lock true
    [[ "$stderr" == *"timed out after"* ]]
    flx 1 -w 0.1 lock true
    assert_equal "$stderr" "" # quiet without --verbose
    bg bash -c "exec '$FILELOCK' --verbose -w 15 lock true 2>waiter.err"
    waiter=$BG_PID
    # Until the waiter has found the lock held (it says so before it waits),
    # not a fixed pause: a waiter slower to start than the pause found the
    # lock free and never named the holder.
    local i=0
    until grep -q "held by pid" waiter.err 2>/dev/null; do
        i=$((i + 1))
        [ $i -le 1000 ] || fail "the waiter never reported the holder: $(cat waiter.err)"
        sleep 0.01
    done
    stop_holder A
    wait_rc "$waiter"
    assert_equal "$RC" 0
    [[ "$(cat waiter.err)" == *"held by pid $HOLDER_PID"* ]]
    [[ "$(cat waiter.err)" == *"got exclusive lock on 'lock' after"* ]]
}

@test "a held soft lock: the command named by the marker" {
    start_holder S "$FILELOCK" --soft slock sh -c "$(hold_script S)"
    flx 1 --verbose --soft -n slock true
    [[ "$stderr" == *"held by pid $CMD_PID (sh) on host $HOST"* ]] || fail "stderr: $stderr"
    stop_holder S
    printf 'garbage' >slock
    # Fresh (a holder between its create and its write), for 32 s rather than
    # the 2 s after the write that a stalled test could overrun.
    touch -d "@$(($(date +%s) + 30))" slock
    flx 1 --verbose --soft -n slock true
    [[ "$stderr" == *"is held (holder unknown)"* ]]
}

@test "the descriptor form" {
    exec 9>lock
    flx 0 --verbose 9
    [[ "$stderr" == *"got exclusive lock on file descriptor 9 after"* ]]
    exec 9>&-
    start_holder B "$FILELOCK" lock sh -c "$(hold_script B)"
    exec 8>lock
    flx 1 --verbose -n 8
    [[ "$stderr" == *"held by pid $HOLDER_PID"* ]]
    exec 8>&-
    stop_holder B
}
