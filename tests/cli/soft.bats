#!/usr/bin/env bats
# --soft: the marker file's life and content, conflicts, waiting, a marker
# written by someone else, and hostile markers.
load common

@test "the marker names the command (pid, host) while it runs, and is removed after" {
    # "<pid of the command>\n<host>\n" (a third line, the start token,
    # follows on Linux): the marker stays valid while the command runs,
    # whatever happens to filelock.
    flx 0 --soft slock sh -c 'echo "self $$"; cat slock'
    assert_equal "$(sed -n 1p <<<"$output")" "self $(sed -n 2p <<<"$output")"
    assert_equal "$(sed -n 3p <<<"$output")" "$HOST"
    [ ! -e slock ]
    flx 3 --soft slock sh -c 'exit 3'
    [ ! -e slock ]
}

@test "conflicts, --owner, and a waiter against a soft holder" {
    start_holder A "$FILELOCK" --soft slock sh -c "$(hold_script A)"
    [ -f slock ]
    flx 1 --soft -n slock true
    flx 7 --soft -n -E 7 slock true
    t0=$(now)
    flx 1 --soft -w 0.3 slock true
    not_before "$t0" "$(now)" 0.25 "--soft -w 0.3"
    flx 0 --soft --owner slock
    assert_output "$CMD_PID $HOST"
    bg "$FILELOCK" --soft -w 15 slock sh -c "echo 'B done' >> '$TMP/log'"
    waiter=$BG_PID
    sleep 0.3
    [ ! -e log ] || fail "soft waiter ran beside the holder"
    stop_holder A
    wait_rc "$waiter"
    assert_equal "$RC" 0
    assert_equal "$(cat log)" "A done
B done"
    [ ! -e slock ]
    flx 1 --soft --owner slock
    assert_output ""
}

@test "a marker written by another program: respected, reported, never removed" {
    printf '4242\nelsewhere.example\n' >slock
    flx 1 --soft -n slock true
    flx 0 --soft --owner slock
    assert_output "4242 elsewhere.example"
    assert_equal "$(cat slock)" "4242
elsewhere.example"
}

@test "a marker without an owner record (py-filelock's SoftFileLock) is held, holder unknown" {
    : >slock
    flx 0 --soft --owner slock
    assert_output "unknown"
}

@test "a hostile marker cannot put escape sequences on the terminal" {
    printf '12\nevil\033[31mhost\n' >slock
    flx 0 --soft --owner slock
    refute_output --partial "$(printf '\033')"
    assert_output --partial "12 evil?[31mhost"
}

@test "a huge marker is read only in part (and is not a valid record)" {
    { printf '77\nbig\n'; head -c 1000000 /dev/zero | tr '\0' x; } >slock
    flx 0 --soft --owner slock
    assert_output "unknown"
}

@test "a stale marker (its process is dead, on this host) is reclaimed" {
    sh -c 'exit 0' &
    dead=$!
    wait "$dead"
    printf '%s\n%s\n' "$dead" "$HOST" >slock
    flx 0 --soft -n slock true
    [ ! -e slock ]
}

@test "a symlink or FIFO at the marker path is refused, target untouched" {
    echo precious >target
    ln -s target slink
    flx 66 --soft -n slink true
    flx 66 --soft --owner slink
    assert_equal "$(cat target)" "precious"
    mkfifo sfifo
    flx 66 --soft --owner sfifo
}

@test "the soft lock and the kernel lock are different locks" {
    start_holder K "$FILELOCK" klock sh -c "$(hold_script K)"
    flx 0 --soft -n klock.soft true
    stop_holder K
}

@test "a process the command leaves running does not keep the soft lock (documented)" {
    rm -f bg.ready bg.go
    cat >bgjob.sh <<'SH'
echo $$ > bg.pid; touch bg.ready; i=0; while [ ! -e bg.go ] && [ $i -lt 1500 ]; do sleep 0.01; i=$((i+1)); done
SH
    flx 0 --soft slock sh -c "sh bgjob.sh >/dev/null 2>&1 3>&- &"
    wait_for bg.ready
    kill -0 "$(cat bg.pid)" || fail "the background process is gone"
    [ ! -e slock ]
    flx 0 --soft -n slock true
    touch bg.go
}

@test "stdout and stderr closed: the command never starts before the lock is won" {
    # The soft lock starts the command first and holds it back on a pipe
    # until the marker is ours; with 1 and 2 closed that pipe must not land
    # on them, where a --verbose message would be read as "go".
    start_holder S "$FILELOCK" --soft slock sh -c "$(hold_script S)"
    run -1 timeout 20 bash -c "exec >&- 2>&-; exec '$FILELOCK' --soft --verbose -w 0.3 slock sh -c 'touch ran'"
    [ ! -e ran ] || fail "the command ran while the lock was held"
    run -1 timeout 20 bash -c "exec <&- >&- 2>&-; exec '$FILELOCK' --soft --verbose -n slock sh -c 'touch ran'"
    [ ! -e ran ] || fail "the command ran while the lock was held"
    stop_holder S
    # Once won, the command still finds them closed, as it was given them.
    run -0 timeout 20 bash -c "exec >&- 2>&-; exec '$FILELOCK' --soft --verbose slock sh -c 'exec 9>fds; for f in 0 1 2; do [ -e /proc/\$\$/fd/\$f ] && echo \$f >&9; done; :'"
    assert_equal "$(cat fds)" 0
}

@test "a stale marker of another user in a sticky directory: an error at once, not a wait" {
    nobody_or_skip
    mkdir -m 1777 sticky
    sh -c 'exit 0' &
    dead=$!
    wait "$dead"
    printf '%s\n%s\n' "$dead" "$HOST" >sticky/slock # root's, its holder gone
    chmod 644 sticky/slock
    xrun 66 "${AS_NOBODY[@]}" "$FILELOCK" --soft sticky/slock true
    [[ "$stderr" == *"soft lock 'sticky/slock' from its dead holder"*"Operation not permitted"* ]] || fail "$stderr"
    [ -e sticky/slock ]
    # Whoever may remove it reclaims it.
    flx 0 --soft -n sticky/slock true
}
