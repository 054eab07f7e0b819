# filelock and Debian's pure-Python filelock (py-filelock, flock(2) based)
# exclude each other in both directions; soft locks too.
. "$(dirname "$0")/lib.sh"

PY=/usr/bin/python3
[ -x "$PY" ] && "$PY" -c 'import filelock' 2>/dev/null ||
    skip "/usr/bin/python3 with the filelock module (python3-filelock) is needed"

cat >holder.py <<'PYEOF'
import os, sys, time, filelock
kind, path, name = sys.argv[1], sys.argv[2], sys.argv[3]
cls = filelock.SoftFileLock if kind == "soft" else filelock.FileLock
lock = cls(path, timeout=10)
with lock:
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

# Python holds, filelock tries.
start_holder P "$PY" holder.py kernel lock P
fl_expect 1 "filelock -n vs Python" -n lock true
fl_expect 1 "filelock -w 0.2 vs Python" -w 0.2 lock true
fl_expect 0 "--owner finds the Python holder" --owner lock
equals "Python's pid" "$OUT" "$HOLDER_PID $HOST"
"$FILELOCK" -w 15 lock sh -c "echo 'filelock done' >> '$TMP/log'" &
waiter=$!
BG_PIDS="$BG_PIDS $waiter"
sleep 0.3
stop_holder P
equals "Python holder status" "$HOLDER_RC" 0
checks=$((checks + 1))
wait "$waiter" || fail "filelock waiter exit $?"
equals "order: Python then filelock" "$(cat log)" "P done
filelock done"
rm -f log

# filelock holds, Python tries.
start_holder L "$FILELOCK" lock sh -c "$(hold_script L)"
expect 3 "Python timeout=0 vs filelock" "$PY" try.py kernel lock 0
expect 3 "Python timeout=0.2 vs filelock" "$PY" try.py kernel lock 0.2
stop_holder L
expect 0 "Python after filelock released" "$PY" try.py kernel lock 0

# Soft locks: py-filelock's SoftFileLock and filelock --soft share the
# marker path.
start_holder PS "$PY" holder.py soft slock PS
fl_expect 1 "filelock --soft vs Python SoftFileLock" --soft -n slock true
fl_expect 0 "--soft --owner on Python's marker" --soft --owner slock
stop_holder PS
fl_expect 0 "filelock --soft after Python released" --soft -n slock true
start_holder LS "$FILELOCK" --soft slock sh -c "$(hold_script LS)"
expect 3 "Python SoftFileLock vs filelock --soft" "$PY" try.py soft slock 0
stop_holder LS
expect 0 "Python SoftFileLock after filelock released" "$PY" try.py soft slock 0

finish
