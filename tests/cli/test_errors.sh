# Lock errors: the core's message and the documented exit codes (66 for a
# missing, inaccessible or invalid lock file).
. "$(dirname "$0")/lib.sh"

mkdir adir
fl_expect 66 "a directory as lock file" adir true
contains "core message names the path" "$ERR" "adir"
: >afile
fl_expect 66 "a regular file as parent" afile/lock true
contains "not a directory" "$ERR" "afile"
fl_expect 66 "an empty path" "" true
echo precious >target
ln -s target link
fl_expect 66 "a symlink as lock file" link true
contains "symlink refused" "$ERR" "symbolic link"
equals "symlink target untouched" "$(cat target)" "precious"
mkfifo fifo
fl_expect 66 "a FIFO as lock file (no hang)" fifo true
fl_expect 66 "a trailing slash" adir/ true
ok "no command ran" test ! -e ran

# Permission denied, as an unprivileged user (root bypasses the checks).
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null &&
    setpriv --reuid=65534 --regid=65534 --clear-groups "$FILELOCK" -V >/dev/null 2>&1; then
    mkdir -m 700 private
    expect 66 "permission denied" setpriv --reuid=65534 --regid=65534 --clear-groups \
        "$FILELOCK" private/lock true
    contains "permission message" "$ERR" "ermission denied"
    mkdir -m 755 ro
    : >ro/lock
    chmod 644 ro/lock
    expect 66 "existing lock file not writable" setpriv --reuid=65534 --regid=65534 \
        --clear-groups "$FILELOCK" ro/lock true
else
    echo "$TEST_NAME: (permission checks skipped: need root, setpriv and a world-readable build)"
fi

finish
