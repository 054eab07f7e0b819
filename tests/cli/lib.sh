# Shared helpers of the filelock CLI tests (sourced by test_*.sh).
#
# Usage of a test script: bash test_x.sh /path/to/filelock
# Each script works in its own temporary directory, counts its checks,
# prints one line per failure and exits 1 if any check failed (77: skipped).
# Every command that could block runs under timeout(1), and every background
# holder gives up by itself after HOLD_LIMIT seconds, so nothing can hang.

set -u

FILELOCK=$(readlink -f "${1:?usage: $0 /path/to/filelock}")
[ -x "$FILELOCK" ] || { echo "not executable: $FILELOCK"; exit 2; }
TEST_NAME=$(basename "$0" .sh)
TMP=$(mktemp -d "/tmp/fl-cli-$TEST_NAME.XXXXXX")
chmod 755 "$TMP"
cd "$TMP" || exit 2
HOST=$(hostname)
HOLD_LIMIT=15 # seconds a holder waits for its "go" file before giving up
DEADLINE=20   # hard deadline of each command under test

checks=0
failures=0
BG_PIDS=""

cleanup() {
    local p
    for p in $BG_PIDS; do kill -KILL "$p" 2>/dev/null; done
    cd / && rm -rf "$TMP"
}
trap cleanup EXIT

fail() {
    failures=$((failures + 1))
    echo "FAIL [$TEST_NAME]: $*"
    if [ -s "$TMP/.err" ]; then sed 's/^/    stderr: /' "$TMP/.err" | head -5; fi
}

pass() { :; }

# ok DESCRIPTION COMMAND...: the command must succeed.
ok() {
    local desc=$1
    shift
    checks=$((checks + 1))
    if "$@"; then pass; else fail "$desc"; fi
}

# run COMMAND...: runs with the hard deadline; sets RC, OUT, ERR.
run() {
    timeout -k 2 "$DEADLINE" "$@" >"$TMP/.out" 2>"$TMP/.err"
    RC=$?
    OUT=$(cat "$TMP/.out")
    ERR=$(cat "$TMP/.err")
}

# expect WANT_RC DESCRIPTION COMMAND...: runs it and checks the exit code.
expect() {
    local want=$1 desc=$2
    shift 2
    checks=$((checks + 1))
    run "$@"
    if [ "$RC" -ne "$want" ]; then
        fail "$desc: exit code $RC, expected $want"
        return 1
    fi
    return 0
}

# fl_expect WANT_RC DESCRIPTION ARGS...: expect on the filelock binary.
fl_expect() {
    local want=$1 desc=$2
    shift 2
    expect "$want" "$desc" "$FILELOCK" "$@"
}

# contains DESCRIPTION HAYSTACK NEEDLE
contains() {
    checks=$((checks + 1))
    case "$2" in
    *"$3"*) pass ;;
    *) fail "$1: '$3' not found in: $2" ;;
    esac
}

# lacks DESCRIPTION HAYSTACK NEEDLE
lacks() {
    checks=$((checks + 1))
    case "$2" in
    *"$3"*) fail "$1: unexpected '$3' in: $2" ;;
    *) pass ;;
    esac
}

# equals DESCRIPTION ACTUAL EXPECTED
equals() {
    checks=$((checks + 1))
    if [ "$2" = "$3" ]; then pass; else fail "$1: got '$2', expected '$3'"; fi
}

# wait_for FILE: waits (at most 10 s) until FILE exists.
wait_for() {
    local i=0
    while [ ! -e "$1" ]; do
        i=$((i + 1))
        if [ $i -gt 500 ]; then
            fail "timed out waiting for $1"
            return 1
        fi
        sleep 0.02
    done
    return 0
}

# A shell snippet for a holder's critical section: announce NAME.ready, wait
# for NAME.go (at most HOLD_LIMIT s), then append "NAME done" to log.
hold_script() {
    local name=$1
    echo "touch '$TMP/$name.ready'; i=0; while [ ! -e '$TMP/$name.go' ] && [ \$i -lt $((HOLD_LIMIT * 50)) ]; do sleep 0.02; i=\$((i+1)); done; echo '$name done' >> '$TMP/log'"
}

# start_holder NAME COMMAND...: starts COMMAND (which must run
# "$(hold_script NAME)") in the background and waits until it holds the lock.
# HOLDER_PID is the pid of COMMAND itself (not of a wrapper).
start_holder() {
    local name=$1
    shift
    rm -f "$TMP/$name.ready" "$TMP/$name.go"
    "$@" &
    HOLDER_PID=$!
    BG_PIDS="$BG_PIDS $HOLDER_PID"
    wait_for "$TMP/$name.ready"
}

# stop_holder NAME: lets the holder finish; sets HOLDER_RC.
stop_holder() {
    touch "$TMP/$1.go"
    wait "$HOLDER_PID"
    HOLDER_RC=$?
}

# now: seconds since the epoch, with microseconds.
now() { echo "${EPOCHREALTIME/,/.}"; }

# elapsed_between START END LOW HIGH DESCRIPTION: loose bounds only.
elapsed_between() {
    checks=$((checks + 1))
    if awk -v s="$1" -v e="$2" -v lo="$3" -v hi="$4" 'BEGIN { d = e - s; exit !(d >= lo && d < hi) }'; then
        pass
    else
        fail "$5: took $(awk -v s="$1" -v e="$2" 'BEGIN { print e - s }') s, expected [$3, $4)"
    fi
}

finish() {
    if [ "$failures" -ne 0 ]; then
        echo "$TEST_NAME: $failures of $checks checks FAILED"
        exit 1
    fi
    echo "$TEST_NAME: all $checks checks passed"
    exit 0
}

skip() {
    echo "$TEST_NAME: SKIPPED: $*"
    exit 77
}
