# --soft: the marker file's life and content, conflicts, waiting, a marker
# written by someone else, and hostile markers.
. "$(dirname "$0")/lib.sh"

# While the command runs the marker holds "<pid of filelock>\n<host>\n".
# (A third line, the process start token, follows on Linux.)
fl_expect 0 "soft lock runs the command" --soft slock sh -c 'echo "parent $PPID"; cat slock'
parent=$(printf '%s\n' "$OUT" | sed -n 1p)
pid_line=$(printf '%s\n' "$OUT" | sed -n 2p)
host_line=$(printf '%s\n' "$OUT" | sed -n 3p)
equals "marker pid is filelock's" "parent $pid_line" "$parent"
equals "marker host" "$host_line" "$HOST"
ok "marker removed after the command" test ! -e slock
fl_expect 3 "soft lock passes the exit status" --soft slock sh -c 'exit 3'
ok "marker removed after a failing command" test ! -e slock

start_holder A "$FILELOCK" --soft slock sh -c "$(hold_script A)"
ok "marker exists while held" test -f slock
fl_expect 1 "--soft -n against a soft holder" --soft -n slock true
fl_expect 7 "--soft -n -E 7" --soft -n -E 7 slock true
t0=$(now)
fl_expect 1 "--soft -w 0.3" --soft -w 0.3 slock true
t1=$(now)
elapsed_between "$t0" "$t1" 0.25 10 "--soft -w 0.3"
fl_expect 0 "--soft --owner while held" --soft --owner slock
equals "--soft --owner output" "$OUT" "$HOLDER_PID $HOST"
"$FILELOCK" --soft -w 15 slock sh -c "echo 'B done' >> '$TMP/log'" &
waiter=$!
BG_PIDS="$BG_PIDS $waiter"
sleep 0.3
ok "soft waiter blocked" test ! -e log
stop_holder A
checks=$((checks + 1))
wait "$waiter" || fail "soft waiter exit $?"
equals "soft critical sections in order" "$(cat log)" "A done
B done"
ok "no marker left" test ! -e slock
fl_expect 1 "--soft --owner when free" --soft --owner slock
equals "--owner prints nothing when free" "$OUT" ""

# A marker written by another program: respected, reported, never removed.
printf '4242\nelsewhere.example\n' >slock
fl_expect 1 "foreign marker conflicts" --soft -n slock true
fl_expect 0 "foreign marker owner" --soft --owner slock
equals "foreign owner" "$OUT" "4242 elsewhere.example"
equals "foreign marker untouched" "$(cat slock)" "4242
elsewhere.example"

# A marker without an owner record (e.g. py-filelock's SoftFileLock).
: >slock
fl_expect 0 "empty marker is held" --soft --owner slock
equals "holder unknown" "$OUT" "unknown"

# A hostile marker cannot put escape sequences on the terminal.
printf '12\nevil\033[31mhost\n' >slock
fl_expect 0 "hostile marker" --soft --owner slock
lacks "no escape byte printed" "$OUT" "$(printf '\033')"
contains "host kept, control bytes replaced" "$OUT" "12 evil?[31mhost"

# A huge marker is read only in part (and is not a valid record).
{ printf '77\nbig\n'; head -c 1000000 /dev/zero | tr '\0' x; } >slock
fl_expect 0 "big marker" --soft --owner slock
equals "big marker holder unknown" "$OUT" "unknown"
rm -f slock

# A stale marker (its process is dead, on this host) is reclaimed.
sh -c 'exit 0' &
dead=$!
wait "$dead"
printf '%s\n%s\n' "$dead" "$HOST" >slock
fl_expect 0 "stale marker reclaimed" --soft -n slock true
ok "no marker after the reclaiming run" test ! -e slock

# A symlink at the marker path: refused, target untouched.
echo precious >target
ln -s target slink
fl_expect 66 "soft lock on a symlink" --soft -n slink true
fl_expect 66 "--soft --owner on a symlink" --soft --owner slink
equals "symlink target untouched" "$(cat target)" "precious"
# A FIFO at the marker path: refused without hanging.
mkfifo sfifo
fl_expect 66 "--soft --owner on a FIFO" --soft --owner sfifo

# The soft lock and the kernel lock are different locks: a kernel holder
# leaves the soft marker path alone.
start_holder K "$FILELOCK" klock sh -c "$(hold_script K)"
fl_expect 0 "soft lock under another name is free" --soft -n klock.soft true
stop_holder K

finish
