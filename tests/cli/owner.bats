#!/usr/bin/env bats
# --owner for the kernel lock: the holder's pid from /proc/locks, whoever
# took the lock (filelock, util-linux flock, a descriptor); exit 1 if free.
load common

setup() {
    [ -r /proc/locks ] || skip "/proc/locks is not readable"
    common_setup
}

@test "free: a missing file, a free file; exit 1 and no output" {
    flx 1 --owner nothing-here
    assert_output ""
    : >lock
    flx 1 --owner lock
    assert_output ""
}

@test "held by filelock: the pid that took the lock" {
    start_holder A "$FILELOCK" lock sh -c "$(hold_script A)"
    flx 0 --owner lock
    assert_output "$HOLDER_PID $HOST"
    flx 1 --owner other # a lock on another file does not count
    stop_holder A
    flx 1 --owner lock
}

@test "held by util-linux flock" {
    start_holder B flock lock sh -c "$(hold_script B)"
    flx 0 --owner lock
    assert_output "$HOLDER_PID $HOST"
    stop_holder B
}

@test "held through a descriptor: the filelock that locked it, as /proc/locks records" {
    exec 9>lock
    bg "$FILELOCK" 9
    locker=$BG_PID
    wait "$locker"
    flx 0 --owner lock
    assert_output "$locker $HOST"
    exec 9>&-
    flx 1 --owner lock
}

@test "the lock path itself is looked up: a symlink is not followed" {
    start_holder C flock lock sh -c "$(hold_script C)"
    ln -s lock lock-link
    flx 1 --owner lock-link
    stop_holder C
}

@test "a directory locked by flock(1)" {
    mkdir adir
    start_holder D flock adir sh -c "$(hold_script D)"
    flx 0 --owner adir
    assert_output "$HOLDER_PID $HOST"
    stop_holder D
}
