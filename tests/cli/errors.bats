#!/usr/bin/env bats
# Lock errors: the core's message and the documented exit codes (66 for a
# missing, inaccessible or invalid lock file).
load common

@test "invalid lock files: 66, the message names the path, no command runs" {
    mkdir adir
    flx 66 adir true
    [[ "$stderr" == *adir* ]]
    : >afile
    flx 66 afile/lock true
    [[ "$stderr" == *afile* ]]
    flx 66 "" true
    flx 66 adir/ true
    [ ! -e ran ]
}

@test "a symlink is refused, its target untouched" {
    echo precious >target
    ln -s target link
    flx 66 link true
    [[ "$stderr" == *"symbolic link"* ]]
    assert_equal "$(cat target)" "precious"
}

@test "a FIFO is refused without hanging" {
    mkfifo fifo
    flx 66 fifo true
}

@test "permission denied (as user nobody)" {
    nobody_or_skip
    mkdir -m 700 private
    xrun 66 "${AS_NOBODY[@]}" "$FILELOCK" private/lock true
    [[ "$stderr" == *"ermission denied"* ]]
}
