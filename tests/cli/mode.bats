#!/usr/bin/env bats
# --mode: exact permission bits for a new lock file (umask ignored), the
# default (0666 filtered by the umask), and the soft marker's mode.
load common

mode_of() { stat -c %a "$1"; }

@test "--mode is applied exactly, whatever the umask" {
    umask 022
    flx 0 --mode 600 m1 true
    assert_equal "$(mode_of m1)" 600
    flx 0 --mode 0640 m2 true
    assert_equal "$(mode_of m2)" 640
    umask 077
    flx 0 --mode 666 m3 true
    assert_equal "$(mode_of m3)" 666
}

@test "the default mode respects the umask" {
    umask 077
    flx 0 m4 true
    assert_equal "$(mode_of m4)" 600
    umask 022
    flx 0 m5 true
    assert_equal "$(mode_of m5)" 644
}

@test "an existing lock file is set to the explicit mode once the lock is won" {
    umask 022
    flx 0 m5 true
    flx 0 --mode 604 m5 true
    assert_equal "$(mode_of m5)" 604
}

@test "the soft marker gets the mode too" {
    flx 0 --soft --mode 640 s1 stat -c %a s1
    assert_output 640
}
