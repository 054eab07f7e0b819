# Usage, help, version and every option's argument checking (exit 64).
. "$(dirname "$0")/lib.sh"

fl_expect 64 "no arguments" && contains "usage on stderr" "$ERR" "Usage:"
fl_expect 0 "-h" -h && contains "-h lists --owner" "$OUT" "--owner"
fl_expect 0 "--help" --help && contains "--help shows usage" "$OUT" "Usage:"
fl_expect 0 "-V" -V && contains "-V shows the library version" "$OUT" "libfilelock"
fl_expect 0 "--version" --version
fl_expect 64 "unknown short option" -z lock true && contains "short usage" "$ERR" "Usage:"
fl_expect 64 "unknown long option" --bogus lock true

# -s: the soft lock has no shared mode.
fl_expect 64 "--soft -s" --soft -s slock true && contains "-s message" "$ERR" "shared locks are not supported by the soft lock"
ok "--soft -s did not run the command" test ! -e slock
fl_expect 0 "-s" -s lock true
fl_expect 0 "--shared" --shared lock true

# -w
fl_expect 64 "-w without a number" -w abc lock true
fl_expect 64 "-w negative" -w -1 lock true
fl_expect 64 "-w nan" -w nan lock true
fl_expect 64 "-w inf" -w inf lock true
fl_expect 64 "-w trailing junk" -w 1s lock true
fl_expect 64 "-w missing argument" -w
fl_expect 0 "-w fractional" -w 0.25 lock true
fl_expect 0 "--timeout" --timeout 1.5 lock true
fl_expect 0 "--wait (flock(1) alias)" --wait 2 lock true

# -E
fl_expect 64 "-E 256" -E 256 lock true
fl_expect 64 "-E not a number" -E x lock true
fl_expect 64 "-E negative" -E -3 lock true
fl_expect 0 "-E 0 accepted" -E 0 lock true
fl_expect 0 "--conflict-exit-code" --conflict-exit-code 12 lock true

# --mode
fl_expect 64 "--mode with a non-octal digit" --mode 0685 lock true
fl_expect 64 "--mode too large" --mode 17777 lock true
fl_expect 64 "--mode empty" --mode "" lock true
fl_expect 0 "--mode 600" --mode 600 lock true

# Forms
fl_expect 64 "lock file without a command" lock && contains "hint about fds" "$ERR" "file descriptor"
fl_expect 64 "-c without a command string" lock -c
fl_expect 64 "-c with two arguments" lock -c "true" extra
fl_expect 64 "--command with two arguments" lock --command "true" extra
fl_expect 64 "-c before the lock file with extra operands" -c true lock extra
fl_expect 4 "-c before the lock file" -c "exit 4" lock
fl_expect 64 "-u with a lock file" -u lock true
fl_expect 64 "--soft with a descriptor" --soft 0
fl_expect 64 "--mode with a descriptor" --mode 600 0
fl_expect 64 "--owner with extra operands" --owner lock true
fl_expect 64 "--owner without argument" --owner

# Accepted flock(1) options.
fl_expect 0 "-x" -x lock true
fl_expect 0 "-e" -e lock true
fl_expect 0 "--exclusive" --exclusive lock true
fl_expect 0 "-o" -o lock true
fl_expect 0 "--close" --close lock true
fl_expect 0 "-n on a free lock" -n lock true
fl_expect 0 "--nb" --nb lock true
fl_expect 0 "--nonblock" --nonblock lock true
# Options stop at the lock file: the command's own options are its own.
fl_expect 0 "command options are not ours" lock ls -n /
fl_expect 0 "-- ends options" -- lock true

finish
