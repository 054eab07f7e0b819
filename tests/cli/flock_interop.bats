#!/usr/bin/env bats
# filelock and util-linux flock(1) exclude each other on the same file, in
# both directions, with -n, -w and blocking waiters.
load common

setup() {
    command -v flock >/dev/null || skip "util-linux flock is not installed"
    common_setup
}

@test "flock holds, filelock tries and waits" {
    start_holder F flock lock sh -c "$(hold_script F)"
    flx 1 -n lock true
    flx 1 -w 0.2 lock true
    flx 1 --verbose -n lock true
    [[ "$stderr" == *"held by pid $HOLDER_PID (flock)"* ]]
    bg "$FILELOCK" lock sh -c "echo 'filelock done' >> '$TMP/log'"
    waiter=$BG_PID
    sleep 0.3
    [ ! -e log ] || fail "filelock ran beside flock"
    stop_holder F
    wait_rc "$waiter"
    assert_equal "$RC" 0
    assert_equal "$(cat log)" "F done
filelock done"
}

@test "filelock holds, flock tries and waits" {
    start_holder L "$FILELOCK" lock sh -c "$(hold_script L)"
    xrun 1 flock -n lock true
    xrun 1 flock -w 0.2 lock true
    xrun 3 flock -n -E 3 lock true
    bg flock lock sh -c "echo 'flock done' >> '$TMP/log'"
    waiter=$BG_PID
    sleep 0.3
    [ ! -e log ] || fail "flock ran beside filelock"
    stop_holder L
    wait_rc "$waiter"
    assert_equal "$RC" 0
    assert_equal "$(cat log)" "L done
flock done"
}

@test "the descriptor forms mix: flock(1) on fd, filelock on the path, and back" {
    exec 9>lock
    xrun 0 flock -n 9
    flx 1 -n lock true
    xrun 0 flock -u 9
    flx 0 -n 9
    xrun 1 flock -n lock true
    exec 9>&-
    xrun 0 flock -n lock true
}
