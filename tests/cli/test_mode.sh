# --mode: exact permission bits for a new lock file (umask ignored), the
# default (0666 filtered by the umask), and the soft marker's mode.
. "$(dirname "$0")/lib.sh"

mode_of() { stat -c %a "$1"; }

umask 022
fl_expect 0 "--mode 600" --mode 600 m1 true
equals "mode 600" "$(mode_of m1)" 600
fl_expect 0 "--mode 0640" --mode 0640 m2 true
equals "mode 640" "$(mode_of m2)" 640
umask 077
fl_expect 0 "--mode 666 under umask 077" --mode 666 m3 true
equals "explicit mode beats the umask" "$(mode_of m3)" 666
fl_expect 0 "default mode under umask 077" m4 true
equals "default respects the umask" "$(mode_of m4)" 600
umask 022
fl_expect 0 "default mode under umask 022" m5 true
equals "default 644" "$(mode_of m5)" 644
# An existing lock file is set to the explicit mode once the lock is won.
fl_expect 0 "--mode on an existing file" --mode 604 m5 true
equals "existing file re-moded" "$(mode_of m5)" 604
# The soft marker gets the mode too.
fl_expect 0 "--soft --mode" --soft --mode 640 s1 stat -c %a s1
equals "marker mode" "$OUT" 640

finish
