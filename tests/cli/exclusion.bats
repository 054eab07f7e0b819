#!/usr/bin/env bats
# filelock against filelock: -n, -w, -E, a blocked waiter, and a counter
# that many processes increment under the lock.
load common

@test "conflicts: -n, -w, -E against a holder" {
    start_holder A "$FILELOCK" lock sh -c "$(hold_script A)"
    flx 1 -n lock true
    assert_equal "$stderr" "" # silent without --verbose
    flx 9 -n -E 9 lock true
    flx 0 -n -E 0 lock sh -c 'exit 5' # -E 0 makes a conflict look like success
    flx 1 --nonblock lock true
    flx 1 -w 0 lock true # one attempt
    t0=$(now)
    flx 1 -w 0.3 lock true
    not_before "$t0" "$(now)" 0.25 "-w 0.3"
    flx 4 -w 0.1 -E 4 lock true
    flx 1 -n -w 5 lock true # -n wins over -w
    [ ! -e ran ]
    stop_holder A
    assert_equal "$HOLDER_RC" 0
}

@test "a waiter without -w blocks until the holder is done, then runs" {
    start_holder A "$FILELOCK" lock sh -c "$(hold_script A)"
    bg "$FILELOCK" lock sh -c "echo 'B done' >> '$TMP/log'"
    waiter=$BG_PID
    sleep 0.5
    [ ! -e log ] || fail "the waiter ran while A held the lock"
    stop_holder A
    assert_equal "$HOLDER_RC" 0
    wait_rc "$waiter"
    assert_equal "$RC" 0
    assert_equal "$(cat log)" "A done
B done"
}

@test "a waiter with -w wins once the holder releases" {
    start_holder C "$FILELOCK" lock sh -c "$(hold_script C)"
    bg "$FILELOCK" -w 15 lock sh -c "echo 'D done' >> '$TMP/log'"
    waiter=$BG_PID
    sleep 0.3
    stop_holder C
    wait_rc "$waiter"
    assert_equal "$RC" 0
    assert_equal "$(cat log)" "C done
D done"
}

@test "mutual exclusion: 4 processes x 25 read-modify-writes" {
    echo 0 >counter
    worker() {
        local i
        for i in $(seq 25); do
            "$FILELOCK" -w 15 lock sh -c 'n=$(cat counter); sleep 0.001; echo $((n + 1)) > counter' ||
                echo "worker failure $?" >>errors
        done
    }
    pids=()
    for w in 1 2 3 4; do
        bg worker
        pids+=("$BG_PID")
    done
    for p in "${pids[@]}"; do wait "$p"; done
    [ ! -e errors ] || fail "$(cat errors)"
    assert_equal "$(cat counter)" 100
}
