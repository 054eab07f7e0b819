#!/usr/bin/env bats
# filelock and Debian's pure-Python filelock (py-filelock, flock(2) based)
# exclude each other in both directions; soft locks too.
load common

PY=/usr/bin/python3

setup() {
    { [ -x "$PY" ] && "$PY" -c 'import filelock' 2>/dev/null; } ||
        skip "/usr/bin/python3 with the filelock module (python3-filelock) is needed"
    common_setup
    cat >holder.py <<'PYEOF'
import os, sys, time, filelock
kind, path, name = sys.argv[1], sys.argv[2], sys.argv[3]
cls = filelock.SoftFileLock if kind == "soft" else filelock.FileLock
lock = cls(path, timeout=10)
with lock:
    with open(name + ".pid", "w") as f:
        f.write(str(os.getpid()))
    open(name + ".ready", "w").close()
    deadline = time.monotonic() + 15
    while not os.path.exists(name + ".go") and time.monotonic() < deadline:
        time.sleep(0.02)
    with open("log", "a") as f:
        f.write(name + " done\n")
PYEOF
    cat >try.py <<'PYEOF'
import sys, filelock
kind, path, timeout = sys.argv[1], sys.argv[2], float(sys.argv[3])
cls = filelock.SoftFileLock if kind == "soft" else filelock.FileLock
try:
    with cls(path, timeout=timeout):
        pass
except filelock.Timeout:
    sys.exit(3)
PYEOF
}

@test "Python holds, filelock tries and waits" {
    start_holder P "$PY" holder.py kernel lock P
    flx 1 -n lock true
    flx 1 -w 0.2 lock true
    flx 0 --owner lock
    assert_output "$HOLDER_PID $HOST"
    bg "$FILELOCK" -w 15 lock sh -c "echo 'filelock done' >> '$TMP/log'"
    waiter=$BG_PID
    sleep 0.3
    stop_holder P
    assert_equal "$HOLDER_RC" 0
    wait_rc "$waiter"
    assert_equal "$RC" 0
    assert_equal "$(cat log)" "P done
filelock done"
}

@test "filelock holds, Python tries" {
    start_holder L "$FILELOCK" lock sh -c "$(hold_script L)"
    xrun 3 "$PY" try.py kernel lock 0
    xrun 3 "$PY" try.py kernel lock 0.2
    stop_holder L
    xrun 0 "$PY" try.py kernel lock 0
}

@test "soft locks: py-filelock's SoftFileLock and filelock --soft share the marker" {
    start_holder PS "$PY" holder.py soft slock PS
    flx 1 --soft -n slock true
    flx 0 --soft --owner slock
    stop_holder PS
    flx 0 --soft -n slock true
    start_holder LS "$FILELOCK" --soft slock sh -c "$(hold_script LS)"
    xrun 3 "$PY" try.py soft slock 0
    stop_holder LS
    xrun 0 "$PY" try.py soft slock 0
}
