# -s/--shared: shared holders coexist, exclude an exclusive one and are
# excluded by it; util-linux flock -s interoperates; the descriptor form.
. "$(dirname "$0")/lib.sh"

start_holder S1 "$FILELOCK" -s lock sh -c "$(hold_script S1)"
fl_expect 0 "a second shared lock" -s -n lock true
expect 0 "flock -s alongside" flock -s -n lock true
fl_expect 1 "exclusive vs shared" -n lock true
expect 1 "flock -x vs shared" flock -x -n lock true
fl_expect 0 "--owner on a shared lock" --owner lock
contains "a shared holder is named" "$OUT" "$HOST"
# An exclusive waiter gets the lock when the readers leave.
"$FILELOCK" -w 15 lock sh -c "echo 'X done' >> '$TMP/log'" &
waiter=$!
BG_PIDS="$BG_PIDS $waiter"
sleep 0.3
ok "exclusive waiter blocked by a reader" test ! -e log
stop_holder S1
checks=$((checks + 1))
wait "$waiter" || fail "exclusive waiter exit $?"
equals "reader then writer" "$(cat log)" "S1 done
X done"

start_holder X1 "$FILELOCK" lock sh -c "$(hold_script X1)"
fl_expect 1 "shared vs exclusive" -s -n lock true
fl_expect 1 "shared -w vs exclusive" -s -w 0.2 lock true
stop_holder X1

start_holder F flock -s lock sh -c "$(hold_script F)"
fl_expect 0 "shared alongside flock -s" -s -n lock true
fl_expect 1 "exclusive vs flock -s" -n lock true
stop_holder F

# Descriptor form.
exec 9>lock
fl_expect 0 "shared lock on fd 9" -s 9
fl_expect 0 "shared lock on the path alongside" -s -n lock true
fl_expect 1 "exclusive vs fd shared" -n lock true
fl_expect 0 "convert fd 9 to exclusive" -n 9
fl_expect 1 "shared vs fd exclusive" -s -n lock true
exec 9>&-

finish
