#!/usr/bin/env bats
# The "filelock <fd>" form: the lock belongs to the shell's open file
# description and outlives filelock; -u; -n/-w/-E on a descriptor; waking
# when a holder only unlocks (LOCK_UN without close).
load common

@test "the lock outlives filelock; -u; closing the last descriptor releases" {
    exec 9>lockfd
    flx 0 9
    flx 1 -n lockfd true
    xrun 1 flock -n lockfd true
    flx 0 -n 9 # the same description again
    flx 0 -u 9
    flx 0 -n lockfd true
    flx 0 --unlock 9 # an unlocked descriptor
    flx 0 -w 1 9
    exec 9>&-
    flx 0 -n lockfd true
}

@test "a bad descriptor: 65 as with flock(1), the message names it" {
    flx 65 57
    [[ "$stderr" == *57* ]]
    flx 65 -n 57
    command -v flock >/dev/null || skip "util-linux flock is not installed"
    xrun 65 flock 57
}

@test "conflicts on a descriptor: -n, -E, -w 0, -w, a waiter" {
    start_holder A "$FILELOCK" lockfd sh -c "$(hold_script A)"
    exec 8>lockfd
    flx 1 -n 8
    flx 5 -n -E 5 8
    flx 1 -w 0 8
    t0=$(now)
    flx 1 -w 0.3 8
    not_before "$t0" "$(now)" 0.25 "-w 0.3 on a descriptor"
    sleep 0.1 # a timed-out filelock must not leave a timer behind for us
    bg "$FILELOCK" -w 15 8
    waiter=$BG_PID
    sleep 0.3
    stop_holder A
    wait_rc "$waiter"
    assert_equal "$RC" 0
    flx 1 -n lockfd true # the waiter's lock belongs to our descriptor
    flx 0 -u 8
    exec 8>&-
}

@test "-w beyond what a timer holds waits for the lock instead of failing" {
    # flock(1) 2.38 exits 71 "cannot set up timer" here (see the man page).
    start_holder A "$FILELOCK" lockfd sh -c "$(hold_script A)"
    exec 8>lockfd
    bg "$FILELOCK" -w 1e19 8
    waiter=$BG_PID
    sleep 0.2
    kill -0 "$waiter" || fail "-w 1e19 gave up while the lock was held"
    stop_holder A
    wait_rc "$waiter"
    assert_equal "$RC" 0
    exec 8>&-
}

@test "a holder that unlocks without closing (flock -u) wakes a waiting descriptor" {
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
    ) 3>&- &
    holder=$!
    BG_PIDS+=("$holder")
    wait_for U.ready
    exec 6>lockfd
    bg "$FILELOCK" -w 15 6
    w1=$BG_PID
    sleep 0.2
    touch U.go
    wait_rc "$w1"
    assert_equal "$RC" 0
    [ ! -e U.end ] # the holder still had its descriptor open
    touch U.end
    wait "$holder"
    exec 6>&-
}

@test "waiting forever on a descriptor (no -w) also wakes" {
    start_holder B "$FILELOCK" lockfd sh -c "$(hold_script B)"
    exec 5>lockfd
    bg "$FILELOCK" 5
    w2=$BG_PID
    sleep 0.2
    stop_holder B
    wait_rc "$w2"
    assert_equal "$RC" 0
    exec 5>&-
}

@test "-w on a descriptor times out even when the caller blocked SIGALRM" {
    # The signal mask is inherited across exec: a blocked SIGALRM must not
    # turn -w into a wait forever (util-linux flock(1) 2.38 then waits until
    # the holder is gone; see DIFFERENCES in the man page).
    start_holder A "$FILELOCK" lockfd sh -c "$(hold_script A)"
    exec 8<lockfd
    xrun 1 python3 -c 'import os, signal, sys
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
os.execv(sys.argv[1], sys.argv[1:])' "$FILELOCK" -w 0.3 8
    kill -0 "$HOLDER_PID" || fail "the holder ended first"
    # The path form too.
    xrun 1 python3 -c 'import os, signal, sys
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
os.execv(sys.argv[1], sys.argv[1:])' "$FILELOCK" -w 0.3 lockfd true
    stop_holder A
    exec 8<&-
}
