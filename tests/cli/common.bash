# Shared setup of the filelock CLI tests (bats; loaded with "load common").
#
# CTest runs each file as: FILELOCK=/path/to/filelock bats --tap file.bats
# (under timeout(1)). Every test works in its own world-readable temporary
# directory (tests that drop to user nobody need that), every command that
# could block runs under timeout(1) through xrun/flx, and every background
# holder gives up by itself after HOLD_LIMIT seconds, so nothing can hang.

bats_require_minimum_version 1.5.0
bats_load_library bats-support
bats_load_library bats-assert

HOLD_LIMIT=15 # seconds a holder waits for its "go" file before giving up
DEADLINE=20   # hard deadline of each command under test

# A file that needs its own setup calls common_setup from it.
common_setup() {
    FILELOCK=$(readlink -f "${FILELOCK:?set FILELOCK to the filelock binary}")
    [ -x "$FILELOCK" ] || fail "not executable: $FILELOCK"
    TMP=$(mktemp -d /tmp/fl-cli.XXXXXX)
    chmod 755 "$TMP"
    cd "$TMP" || return 1
    HOST=$(hostname)
    BG_PIDS=()
}

setup() { common_setup; }

teardown() {
    local p
    for p in "${BG_PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || :; done
    cd / && rm -rf "$TMP"
}

# xrun STATUS COMMAND...: runs COMMAND under the deadline and checks its exit
# status; $output is its stdout, $stderr its stderr.
xrun() {
    local want=$1
    shift
    run "-$want" --separate-stderr timeout -k 2 "$DEADLINE" "$@"
}

# flx STATUS ARGS...: xrun on the filelock binary.
flx() {
    local want=$1
    shift
    xrun "$want" "$FILELOCK" "$@"
}

# bg COMMAND...: starts COMMAND in the background (without bats' own output
# descriptor, which would keep bats waiting); BG_PID is its pid.
bg() {
    "$@" 3>&- &
    BG_PID=$!
    BG_PIDS+=("$BG_PID")
}

# wait_for FILE: waits (at most 10 s) until FILE exists.
wait_for() {
    local i=0
    while [ ! -e "$1" ]; do
        i=$((i + 1))
        [ $i -le 1000 ] || fail "timed out waiting for $1"
        sleep 0.01
    done
}

# wait_gone PID: waits (at most 10 s) until no process PID exists (a
# process that is not our child: reaped by whoever adopted it).
wait_gone() {
    local i=0
    while kill -0 "$1" 2>/dev/null; do
        i=$((i + 1))
        [ $i -le 1000 ] || fail "process $1 still exists"
        sleep 0.01
    done
}

# wait_stopped PID: waits (at most 10 s) until PID is stopped.
wait_stopped() {
    local i=0
    while [ "$(awk '{ sub(/.*\) /, ""); print $1 }' "/proc/$1/stat" 2>/dev/null)" != T ]; do
        i=$((i + 1))
        [ $i -le 1000 ] || fail "process $1 did not stop"
        sleep 0.01
    done
}

# A shell snippet for a holder's critical section: write its pid to
# NAME.pid, announce NAME.ready, wait for NAME.go (at most HOLD_LIMIT s),
# then append "NAME done" to log.
hold_script() {
    local name=$1
    echo "echo \$\$ > '$TMP/$name.pid'; touch '$TMP/$name.ready'; i=0; while [ ! -e '$TMP/$name.go' ] && [ \$i -lt $((HOLD_LIMIT * 50)) ]; do sleep 0.02; i=\$((i+1)); done; echo '$name done' >> '$TMP/log'"
}

# start_holder NAME COMMAND...: starts COMMAND (which must run
# "$(hold_script NAME)") in the background and waits until it holds the
# lock. HOLDER_PID is the pid of COMMAND itself; CMD_PID the pid of the
# shell running the hold script.
start_holder() {
    local name=$1
    shift
    rm -f "$TMP/$name.ready" "$TMP/$name.go" "$TMP/$name.pid"
    bg "$@"
    HOLDER_PID=$BG_PID
    wait_for "$TMP/$name.ready"
    CMD_PID=$(cat "$TMP/$name.pid")
}

# stop_holder NAME: lets the holder finish; sets HOLDER_RC.
stop_holder() {
    touch "$TMP/$1.go"
    HOLDER_RC=0
    wait "$HOLDER_PID" || HOLDER_RC=$?
}

# wait_rc PID: waits for a background child; sets RC to its status.
wait_rc() {
    RC=0
    wait "$1" || RC=$?
}

# now: seconds since the epoch, with microseconds.
now() { echo "${EPOCHREALTIME/,/.}"; }

# not_before START END SECONDS DESCRIPTION: END - START >= SECONDS (a wait
# that must not give up early; no upper bound: speed belongs to bench/).
not_before() {
    awk -v s="$1" -v e="$2" -v lo="$3" 'BEGIN { exit !(e - s >= lo) }' ||
        fail "$4: gave up after $(awk -v s="$1" -v e="$2" 'BEGIN { print e - s }') s, before $3 s"
}

# nobody_or_skip: skips the test, with the reason, when it cannot run a
# command as user nobody (not root, no setpriv, a build nobody cannot run).
nobody_or_skip() {
    [ "$(id -u)" = 0 ] || skip "needs root to drop to user nobody"
    command -v setpriv >/dev/null || skip "needs setpriv (util-linux)"
    "${AS_NOBODY[@]}" "$FILELOCK" -V >/dev/null 2>&1 ||
        skip "user nobody cannot run $FILELOCK (build tree not world-readable)"
}
# "${AS_NOBODY[@]}" COMMAND...: runs COMMAND as uid/gid 65534.
AS_NOBODY=(setpriv --reuid=65534 --regid=65534 --clear-groups)
