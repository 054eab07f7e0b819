# --owner for the kernel lock: the holder's pid from /proc/locks, whoever
# took the lock (filelock, util-linux flock, a descriptor); exit 1 if free.
. "$(dirname "$0")/lib.sh"

[ -r /proc/locks ] || skip "/proc/locks is not readable"

fl_expect 1 "missing lock file" --owner nothing-here
equals "no output for a missing file" "$OUT" ""
: >lock
fl_expect 1 "free lock file" --owner lock
equals "no output for a free lock" "$OUT" ""

start_holder A "$FILELOCK" lock sh -c "$(hold_script A)"
fl_expect 0 "held by filelock" --owner lock
equals "owner is the holding filelock" "$OUT" "$HOLDER_PID $HOST"
# A lock on another file does not count.
fl_expect 1 "other file free" --owner other
stop_holder A
fl_expect 1 "free again" --owner lock

start_holder B flock lock sh -c "$(hold_script B)"
fl_expect 0 "held by util-linux flock" --owner lock
equals "owner is the holding flock" "$OUT" "$HOLDER_PID $HOST"
stop_holder B

# A descriptor locked by this shell: the pid is the filelock that locked
# it (the process that called flock), as /proc/locks records it.
exec 9>lock
"$FILELOCK" 9 &
locker=$!
wait "$locker"
fl_expect 0 "held through a descriptor" --owner lock
equals "owner of the fd lock" "$OUT" "$locker $HOST"
exec 9>&-
fl_expect 1 "free after closing" --owner lock

# The lock path itself is looked up: a symlink is not followed.
start_holder C flock lock sh -c "$(hold_script C)"
ln -s lock lock-link
fl_expect 1 "--owner on a symlink to a held file" --owner lock-link
stop_holder C
# flock(1) can lock a directory; --owner sees that too.
mkdir adir
start_holder D flock adir sh -c "$(hold_script D)"
fl_expect 0 "--owner on a directory held by flock" --owner adir
equals "directory holder" "$OUT" "$HOLDER_PID $HOST"
stop_holder D

finish
