#!/usr/bin/env bats
# Scripts written for util-linux flock(1) work unchanged: each case runs
# against flock(1) and filelock in the same test and expects the same exit
# status and the same lock outcome. The remaining differences, listed in
# the man page's DIFFERENCES FROM FLOCK(1), are pinned down at the end.
load common

setup() {
    command -v flock >/dev/null || skip "util-linux flock is not installed"
    common_setup
    IMPLS=(flock "$FILELOCK")
}

@test "a lock file the user can read but not write: locked read-only, -x and -s" {
    nobody_or_skip
    : >ro.lock
    chmod 644 ro.lock # root's
    for impl in "${IMPLS[@]}"; do
        xrun 0 "${AS_NOBODY[@]}" "$impl" -n ro.lock true
        xrun 0 "${AS_NOBODY[@]}" "$impl" -s -n ro.lock true
        xrun 0 "${AS_NOBODY[@]}" "$impl" -w 1 -x ro.lock true
        # It is the real lock: others see it while the command runs.
        xrun 0 "${AS_NOBODY[@]}" "$impl" -n ro.lock sh -c 'flock -n ro.lock true; echo $?'
        assert_output 1
    done
    assert_equal "$(stat -c '%U %a %s' ro.lock)" "root 644 0" # untouched
}

@test "flock(1)'s self-locking script idiom on a root-owned 0755 script run by nobody" {
    nobody_or_skip
    for impl in "${IMPLS[@]}"; do
        cat >script.sh <<SH
#!/bin/sh
[ "\${FLOCKER}" != "\$0" ] && exec env FLOCKER="\$0" "$impl" -en "\$0" "\$0" "\$@" || :
echo "locked run \$*"
SH
        chmod 755 script.sh
        xrun 0 "${AS_NOBODY[@]}" "$TMP/script.sh" a b
        assert_output "locked run a b"
        # A second instance while the first runs: -n fails with 1.
        start_holder H flock script.sh sh -c "$(hold_script H)"
        xrun 1 "${AS_NOBODY[@]}" "$TMP/script.sh"
        assert_output ""
        stop_holder H
    done
}

@test "a missing parent directory: 66 for both, nothing created" {
    for impl in "${IMPLS[@]}"; do
        xrun 66 "$impl" no/such/dir/lock true
        [[ "$stderr" == *"cannot open lock file"*"No such file or directory"* ]] || fail "$impl: $stderr"
        [ ! -e no ]
    done
}

@test "a bad descriptor number: 65 for both" {
    for impl in "${IMPLS[@]}"; do
        xrun 65 "$impl" 57
        xrun 65 "$impl" -n 57
        [[ "$stderr" == *"57"*"Bad file descriptor"* ]] || fail "$impl: $stderr"
        # Any int may be a descriptor (nr_open can reach INT_MAX): not open
        # is 65; beyond an int is bad usage.
        xrun 65 "$impl" 2147483647
        xrun 64 "$impl" 2147483648
        xrun 64 "$impl" 99999999999999999999
        # 0-2 closed by the caller are bad descriptors too (filelock keeps
        # /dev/null there for itself; that must not be locked instead).
        run -65 timeout 20 bash -c "exec '$impl' 0 <&-"
        run -65 timeout 20 bash -c "exec '$impl' -u 1 >&-"
    done
    # (flock(1) exits 1 there when its message cannot be written.)
    run -65 timeout 20 bash -c "exec '$FILELOCK' -n 2 2>&-"
}

@test "a descriptor above 1000000 is locked like any other" {
    # nr_open is 1048576 by default; raising the limit needs CAP_SYS_RESOURCE.
    bash -c 'ulimit -n 1048576' 2>/dev/null || skip "cannot raise the open-files limit to 1048576 here"
    : >high
    for impl in "${IMPLS[@]}"; do
        run -0 timeout 20 bash -c "ulimit -n 1048576; exec 1048000<high; '$impl' -n 1048000 && flock -n high true; echo \$?"
        assert_output 1 # locked, and the lock outlives the command as with flock(1)
    done
}

@test "a command not found or not executable: 69 and the same message for both" {
    echo 'echo hi' >not-executable
    for impl in "${IMPLS[@]}"; do
        xrun 69 "$impl" lock ./no-such-command
        assert_equal "${stderr#*: }" "failed to execute ./no-such-command: No such file or directory"
        xrun 69 "$impl" lock ./not-executable
        assert_equal "${stderr#*: }" "failed to execute ./not-executable: Permission denied"
    done
}

@test "exit statuses of the command, of a conflict, of -E and -w" {
    for impl in "${IMPLS[@]}"; do
        xrun 3 "$impl" lock sh -c 'exit 3'
        xrun 143 "$impl" lock sh -c 'kill -TERM $$'
        xrun 0 "$impl" -n lock true
    done
    start_holder A flock lock sh -c "$(hold_script A)"
    for impl in "${IMPLS[@]}"; do
        xrun 1 "$impl" -n lock true
        xrun 1 "$impl" -w 0 lock true
        xrun 1 "$impl" -w 0.1 lock true
        xrun 42 "$impl" -n -E 42 lock true
        xrun 0 "$impl" -n -E 0 lock true
    done
    stop_holder A
}

@test "usage errors: 64 for both" {
    for impl in "${IMPLS[@]}"; do
        xrun 64 "$impl"
        xrun 64 "$impl" -z lock true
        xrun 64 "$impl" -w abc lock true
        xrun 64 "$impl" -E 300 lock true
        xrun 64 "$impl" lock -c
        xrun 64 "$impl" -F -o lock true
        xrun 64 "$impl" not-a-number
    done
}

@test "-F and -o behave alike" {
    for impl in "${IMPLS[@]}"; do
        bg "$impl" -F lock sh -c 'echo $$ > cpid; flock -n lock true; echo $? > probe'
        wait_rc "$BG_PID"
        assert_equal "$RC" 0
        assert_equal "$(cat cpid)" "$BG_PID"
        assert_equal "$(cat probe)" 1
        xrun 0 "$impl" -o lock sh -c 'flock -n lock true; echo $?; ls -l /proc/$$/fd'
        assert_line --index 0 1
        refute_output --partial "$TMP/lock"
    done
}

@test "the documented differences, pinned" {
    # -u with a lock file and a command: flock unlocks nothing and runs it.
    xrun 0 flock -u lock true
    flx 64 -u lock true
    # A directory as lock file (use the descriptor form).
    mkdir adir
    xrun 0 flock adir true
    flx 66 adir true
    exec 9<adir
    flx 0 9
    exec 9<&-
    # A FIFO: flock(1) blocks opening it; filelock refuses it.
    mkfifo fifo
    flx 66 fifo true
    # -w beyond what a timer can hold: flock cannot arm its timer.
    xrun 71 flock -w 1e19 lock true
    flx 0 -w 1e19 lock true
    # A negative, NaN or infinite -w is bad usage, not an OS error.
    xrun 71 flock -w -1 lock true
    flx 64 -w -1 lock true
    # --verbose goes to stderr (stdout belongs to the command).
    xrun 0 flock --verbose lock true
    assert_output --partial "getting lock took"
    flx 0 --verbose lock true
    assert_output ""
    [[ "$stderr" == *"got exclusive lock"* ]]
    # A write error on stdout: 74, not flock's 1 (a conflict's status).
    run -1 timeout 20 bash -c 'exec flock -V >/dev/full'
    # shellcheck disable=SC2016 # $0 is the inner shell's
    run -74 timeout 20 bash -c 'exec "$0" -V >/dev/full' "$FILELOCK"
}

@test "started with stdin, stdout and stderr closed: nothing is written into the lock file" {
    # The lock's descriptor must not land on 0-2, where the command (which
    # inherits it) and our own messages would write into the lock file.
    # flock(1)'s lands there read-only, so writes fail; ours stays above 2.
    for impl in "${IMPLS[@]}"; do
        rm -f lock
        run -3 timeout 20 bash -c "exec <&- >&- 2>&-; exec '$impl' lock sh -c 'echo out; echo err >&2; exit 3'"
        assert_equal "$(stat -c %s lock)" 0
    done
    # The soft marker (open while held) and --verbose's messages on stderr.
    run -0 timeout 20 bash -c "exec 2>&-; exec '$FILELOCK' --soft --verbose slock sh -c 'cat slock > copy'"
    [[ "$(cat copy)" != *filelock:* ]] || fail "a message went into the marker: $(cat copy)"
    xrun 0 "$FILELOCK" --soft -n slock true
}

@test "a tight open-files limit: the command runs where it runs under flock(1)" {
    # flock(1) needs one descriptor (the lock's); so does filelock once the
    # kernel lock is won: the command inherits the same room.
    for impl in "${IMPLS[@]}"; do
        run -0 timeout 20 bash -c "for f in /proc/\$\$/fd/*; do n=\${f##*/}; [ \$n -gt 2 ] && eval \"exec \$n>&-\"; done; ulimit -n 5; exec '$impl' lock sh -c 'echo ran'"
        assert_output ran
    done
}
