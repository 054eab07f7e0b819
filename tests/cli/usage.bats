#!/usr/bin/env bats
# Usage, help, version and every option's argument checking (exit 64);
# getopt's complaints start with the program name, as flock(1)'s do.
load common

@test "no arguments: usage on stderr" {
    flx 64
    assert_equal "$output" ""
    [[ "$stderr" == *"Usage:"* ]]
}

@test "help and version" {
    flx 0 -h
    assert_output --partial "--owner"
    flx 0 --help
    assert_output --partial "Usage:"
    flx 0 -V
    assert_output --partial "libfilelock"
    flx 0 --version
}

@test "unknown options: 64, messages start with 'filelock:' like flock's start with 'flock:'" {
    flx 64 -z lock true
    [[ "$stderr" == "filelock: invalid option -- 'z'"* ]] || fail "stderr: $stderr"
    [[ "$stderr" == *"Usage:"* ]]
    flx 64 --bogus lock true
    [[ "$stderr" == "filelock: unrecognized option '--bogus'"* ]] || fail "stderr: $stderr"
    flx 64 -w
    [[ "$stderr" == "filelock: option requires an argument -- 'w'"* ]] || fail "stderr: $stderr"
    flx 64 --timeout
    [[ "$stderr" == "filelock: option '--timeout' requires an argument"* ]] || fail "stderr: $stderr"
    # util-linux flock: same statuses, same wording after the program name.
    command -v flock >/dev/null || skip "util-linux flock is not installed"
    for args in "-z lock true" "--bogus lock true" "-w" "--timeout" "--shared=1 lock true" \
        "--no lock true" "--conflict-exit-code" "-E"; do
        # shellcheck disable=SC2086
        xrun 64 flock $args
        local theirs=${stderr%%$'\n'*}
        # shellcheck disable=SC2086
        flx 64 $args
        assert_equal "${stderr%%$'\n'*}" "filelock:${theirs#flock:}"
    done
}

@test "-s is refused with --soft" {
    flx 64 --soft -s slock true
    [[ "$stderr" == *"shared locks are not supported by the soft lock"* ]]
    [ ! -e slock ]
    flx 0 -s lock true
    flx 0 --shared lock true
}

@test "-w: seconds, fractions allowed" {
    flx 64 -w abc lock true
    flx 64 -w -1 lock true
    flx 64 -w nan lock true
    flx 64 -w inf lock true
    flx 64 -w 1s lock true
    flx 0 -w 0.25 lock true
    flx 0 --timeout 1.5 lock true
    flx 0 --wait 2 lock true
    flx 0 -w 1e19 lock true
    flx 64 -w 1e999 lock true
    flx 0 -w 5e-324 lock true  # an underflow is a (tiny) duration, not an error
    flx 0 -w -0 lock true
}

@test "-E: 0 to 255" {
    flx 64 -E 256 lock true
    flx 64 -E x lock true
    flx 64 -E -3 lock true
    flx 0 -E 0 lock true
    flx 0 --conflict-exit-code 12 lock true
}

@test "--mode: octal, at most 07777" {
    flx 64 --mode 0685 lock true
    flx 64 --mode 17777 lock true
    flx 64 --mode "" lock true
    flx 0 --mode 600 lock true
}

@test "forms and their argument checks" {
    flx 64 lock
    [[ "$stderr" == *"file descriptor"* ]]
    flx 64 lock -c
    flx 64 lock -c "true" extra
    flx 64 lock --command "true" extra
    flx 64 -c true lock extra
    flx 4 -c "exit 4" lock
    flx 64 -u lock true
    flx 64 --soft 0
    flx 64 --mode 600 0
    flx 64 --owner lock true
    flx 64 --owner
    flx 64 -F -o lock true
    [[ "$stderr" == *"incompatible"* ]]
    flx 64 -F --soft slock true
    [ ! -e slock ]
}

@test "flock(1)'s options are accepted" {
    flx 0 -x lock true
    flx 0 -e lock true
    flx 0 --exclusive lock true
    flx 0 -o lock true
    flx 0 --close lock true
    flx 0 -n lock true
    flx 0 --nb lock true
    flx 0 --nonblock lock true
    flx 0 --nonblocking lock true
    flx 0 -F lock true
    flx 0 --no-fork lock true
}

@test "options end at the lock file; -- ends them too" {
    flx 0 lock ls -n /
    flx 0 -- lock true
}
