#!/usr/bin/env bats
# --lease SECS: the soft lock held as a lease, refreshed while the command
# runs; a lost lease signals the command (--lease-signal, default TERM); a
# frozen filelock loses its lease to a waiter, a live one never does.
load common

@test "the marker is a lease record naming the command, removed after" {
    flx 0 --lease 5 llock sh -c 'echo "self $$"; cat llock'
    assert_line --index 0 --regexp '^self [0-9]+$'
    self=${lines[0]#self }
    assert_line --index 1 "filelock/2"
    assert_line --index 2 "pid=$self"
    assert_line --index 3 "host=$HOST"
    assert_line --index 4 "mode=lease"
    assert_line --index 6 "duration=5"
    [ ! -e llock ]
}

@test "a lease always due for a refresh (1e-300 s, accepted) still ends with its command" {
    # Its release once waited forever for a heartbeat refreshing it back to
    # back (and SIGTERM did not end that wait).
    run timeout -k 2 20 "$FILELOCK" --lease 1e-300 llock true
    [ "$status" -ne 124 ]
    [ "$status" -ne 137 ]
    [ ! -e llock ]
}

@test "a removed marker signals the command with TERM; exit 143" {
    flx 143 --lease 0.6 llock sh -c 'rm llock; exec sleep 15'
    assert_regex "$stderr" "lease on '.*llock' lost \(marker-missing\): signalling the command"
}

@test "--lease-signal chooses the signal; a command that ignores it still fails (74)" {
    flx 9 --lease 0.6 --lease-signal USR1 llock sh -c 'trap "exit 9" USR1; rm llock; sleep 15 & wait'
    flx 74 --lease 0.6 --lease-signal SIGUSR2 llock sh -c 'trap "" USR2; rm llock; sleep 1.5'
    assert_regex "$stderr" "marker-missing"
}

@test "usage errors" {
    flx 64 --lease 0 llock true
    assert_regex "$stderr" "invalid lease '0'"
    flx 64 --lease -1 llock true
    flx 64 --lease abc llock true
    flx 64 --lease 1 --lease-signal BOGUS llock true
    assert_regex "$stderr" "invalid signal 'BOGUS'"
    flx 64 --lease-signal TERM llock true
    assert_regex "$stderr" "--lease-signal needs --lease"
    flx 64 --lease 1 -s llock true
    flx 64 --lease 1 --no-fork llock true
}

@test "a live lease is never taken; a frozen one is, and its command hears of it" {
    start_holder A "$FILELOCK" --lease 1 llock sh -c "$(hold_script A)"
    # Several durations of a waiter trying: never wins while A runs.
    flx 1 --lease 1 -w 3.5 llock true
    # Freeze filelock itself: its heartbeat stops, the command runs on.
    kill -STOP "$HOLDER_PID"
    wait_stopped "$HOLDER_PID"
    flx 0 --lease 1 -w 15 llock sh -c "echo B >> '$TMP/log'"
    kill -CONT "$HOLDER_PID"
    # A wakes up, finds the marker replaced, and TERMs its command.
    wait_rc "$HOLDER_PID"
    assert_equal "$RC" 143
    assert_equal "$(cat log)" "B"
    [ ! -e llock ]
}

# The lease lost while filelock was frozen, and the command ended meanwhile
# (exit 0): on waking, filelock's release may find the loss before its
# heartbeat does; either way the run is not a success (74).
@test "a lease lost while frozen is reported even when release finds it first" {
    start_holder A "$FILELOCK" --lease 1 llock sh -c "$(hold_script A)"
    kill -STOP "$HOLDER_PID"
    wait_stopped "$HOLDER_PID"
    flx 0 --lease 1 -w 15 llock sh -c "echo B >> '$TMP/log'"
    touch "$TMP/A.go"
    local i=0
    while [ "$(awk '{ sub(/.*\) /, ""); print $1 }' "/proc/$CMD_PID/stat" 2>/dev/null)" != Z ]; do
        i=$((i + 1))
        [ $i -le 1000 ] || fail "the command did not end"
        sleep 0.01
    done
    kill -CONT "$HOLDER_PID"
    wait_rc "$HOLDER_PID"
    assert_equal "$RC" 74
}

# filelock killed (SIGKILL): nobody refreshes the lease any more, so a waiter
# takes it once it expires while the command may still run. The command must
# hear of it (--lease-signal), never go on believing it holds the lock.
@test "a killed filelock signals its leased command; a waiter then gets the lease" {
    start_holder A "$FILELOCK" --lease 1 llock sh -c "trap 'echo TERM > \"$TMP/A.term\"; exit 3' TERM; $(hold_script A)"
    kill -KILL "$HOLDER_PID"
    wait_rc "$HOLDER_PID"
    wait_for "$TMP/A.term"
    wait_gone "$CMD_PID"
    flx 0 --lease 1 -w 15 llock sh -c "echo B >> '$TMP/log'"
    assert_equal "$(cat log)" "B"
}

@test "a lease waiter refuses another lease duration" {
    start_holder A "$FILELOCK" --lease 2 llock sh -c "$(hold_script A)"
    flx 64 --lease 3 -w 2 llock true
    assert_regex "$stderr" "every contender for a path must agree on lease_duration"
    stop_holder A
    assert_equal "$HOLDER_RC" 0
}

# Six processes increment a counter under the lock. The marker names the
# command, whose exit a waiter may see (pidfd) before filelock releases:
# the release goes through the marker's claim, or a waiter's take-over and
# a third process's create would both win (lost increments, a torn read);
# and a marker taken after the command exited is no lost lease.
@test "a counter stays exact under --soft and --lease (6 processes x 25)" {
    for flag in --soft "--lease 5"; do
        printf '%020d\n' 0 > c
        body='v=$(expr "$(cat c)" + 1) && printf "%020d\n" "$v" > c.tmp.$$ && cat c.tmp.$$ > c && rm -f c.tmp.$$'
        pids=()
        for p in 1 2 3 4 5 6; do
            (i=0; while [ $i -lt 25 ]; do
                timeout -k 2 "$DEADLINE" "$FILELOCK" $flag -w 15 clock sh -c "$body" || exit 1
                i=$((i + 1))
            done) 3>&- 2>>"$TMP/workers.err" &
            pids+=($!)
        done
        for p in "${pids[@]}"; do wait "$p" || fail "a worker failed ($flag)"; done
        assert_equal "$(cat c)" "00000000000000000150"
        # A waiter may take the marker once the command has exited (its
        # pidfd tells, before filelock releases): the end of the hold, never
        # reported as a lost lease.
        if grep -q lost "$TMP/workers.err"; then fail "$(cat "$TMP/workers.err")"; fi
    done
}
