# filelock and util-linux flock(1) exclude each other on the same file, in
# both directions, with -n, -w and blocking waiters.
. "$(dirname "$0")/lib.sh"

command -v flock >/dev/null || skip "util-linux flock is not installed"

# flock holds, filelock tries.
start_holder F flock lock sh -c "$(hold_script F)"
fl_expect 1 "filelock -n vs flock" -n lock true
fl_expect 1 "filelock -w 0.2 vs flock" -w 0.2 lock true
fl_expect 1 "filelock --verbose vs flock" --verbose -n lock true
contains "flock's pid reported" "$ERR" "held by pid $HOLDER_PID (flock)"
"$FILELOCK" lock sh -c "echo 'filelock done' >> '$TMP/log'" &
waiter=$!
BG_PIDS="$BG_PIDS $waiter"
sleep 0.3
ok "filelock waiter blocked by flock" test ! -e log
stop_holder F
checks=$((checks + 1))
wait "$waiter" || fail "filelock waiter exit $?"
equals "order: flock then filelock" "$(cat log)" "F done
filelock done"
rm -f log

# filelock holds, flock tries.
start_holder L "$FILELOCK" lock sh -c "$(hold_script L)"
expect 1 "flock -n vs filelock" flock -n lock true
expect 1 "flock -w 0.2 vs filelock" flock -w 0.2 lock true
expect 3 "flock -E 3 vs filelock" flock -n -E 3 lock true
flock lock sh -c "echo 'flock done' >> '$TMP/log'" &
waiter=$!
BG_PIDS="$BG_PIDS $waiter"
sleep 0.3
ok "flock waiter blocked by filelock" test ! -e log
stop_holder L
checks=$((checks + 1))
wait "$waiter" || fail "flock waiter exit $?"
equals "order: filelock then flock" "$(cat log)" "L done
flock done"

# The descriptor forms mix too: flock(1) on fd, filelock on the path.
exec 9>lock
expect 0 "flock locks fd 9" flock -n 9
fl_expect 1 "filelock vs flock's fd lock" -n lock true
expect 0 "flock -u 9" flock -u 9
fl_expect 0 "filelock locks fd 9" -n 9
expect 1 "flock vs filelock's fd lock" flock -n lock true
exec 9>&-
expect 0 "free again" flock -n lock true

finish
