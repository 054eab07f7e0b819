#!/usr/bin/env bats
# --owner for the kernel lock: the holder's pid from /proc/locks, whoever
# took the lock (filelock, util-linux flock, a descriptor), or a live process
# holding it when that one is gone; exit 1 if free.
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

@test "held through a descriptor: the live process holding it, not the filelock that locked it" {
    # /proc/locks still names the filelock that called flock(2) and exited;
    # the holder is this shell, which keeps descriptor 9 open.
    exec 9>lock
    bg "$FILELOCK" 9
    locker=$BG_PID
    wait "$locker"
    flx 0 --owner lock 9>&-
    assert_output "$BASHPID $HOST"
    exec 9>&-
    flx 1 --owner lock
}

@test "the locker killed, its command holding the lock: the command is named (filelock and flock)" {
    for impl in "$FILELOCK" flock; do
        [ "$impl" = flock ] && ! command -v flock >/dev/null && continue
        start_holder K "$impl" lock sh -c "$(hold_script K)"
        kill -KILL "$HOLDER_PID"
        wait "$HOLDER_PID" || :
        flx 0 --owner lock
        assert_output "$CMD_PID $HOST"
        flx 1 --verbose -n lock true
        [[ "$stderr" == *"held by pid $CMD_PID (sh)"* ]] || fail "$impl: $stderr"
        touch "$TMP/K.go"
        wait_gone "$CMD_PID"
        flx 1 --owner lock
    done
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
