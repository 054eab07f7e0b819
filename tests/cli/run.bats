#!/usr/bin/env bats
# Running the command: exit status, arguments, -c and $SHELL, exec
# failures, the lock file's life, and that the lock is held meanwhile.
load common

@test "exit status passed through; lock file created and kept" {
    flx 0 lock true
    [ -f lock ]
    flx 3 lock sh -c 'exit 3'
    flx 255 lock sh -c 'exit 255'
    flx 1 lock false
    [ -f lock ]
}

@test "arguments kept intact" {
    flx 0 lock printf '%s|' "a b" "" 'c$d'
    assert_output 'a b||c$d|'
}

@test "-c and --command" {
    flx 7 lock -c 'echo via-c; exit 7'
    assert_output "via-c"
    flx 6 lock --command 'exit 6'
}

@test "-c runs \"\$SHELL -c\", /bin/sh without \$SHELL" {
    printf '#!/bin/sh\necho "fakesh $1 $2"\n' >fakesh
    chmod +x fakesh
    xrun 0 env SHELL="$TMP/fakesh" "$FILELOCK" lock -c 'the command'
    assert_output "fakesh -c the command"
    xrun 0 env -u SHELL "$FILELOCK" lock -c 'echo $0'
    assert_output "/bin/sh"
}

@test "death by signal: 128 + N, as flock(1) reports it" {
    flx 137 lock sh -c 'kill -KILL $$'
    flx 143 lock sh -c 'kill -TERM $$'
}

@test "exec failures: 69 and flock(1)'s message" {
    flx 69 lock ./no-such-command
    assert_equal "$stderr" "filelock: failed to execute ./no-such-command: No such file or directory"
    echo 'echo hi' >not-executable
    flx 69 lock ./not-executable
    [[ "$stderr" == *"not-executable: Permission denied"* ]]
}

@test "stdin and stdout pass through" {
    run -0 bash -c "echo piped | timeout 20 '$FILELOCK' lock cat"
    assert_output "piped"
}

@test "a missing parent directory is an error (66), not created" {
    flx 66 sub/dir/lock true
    assert_equal "$stderr" "filelock: cannot open lock file 'sub/dir/lock': No such file or directory"
    [ ! -e sub ]
    flx 66 --soft sub/dir/lock true
    [ ! -e sub ]
}

@test "while the command runs, filelock and flock(1) both see the lock held" {
    flx 0 lock sh -c "\"$FILELOCK\" -n lock true; echo \$?; flock -n lock true; echo \$?"
    assert_equal "$(echo $output)" "1 1"
}

@test "the command inherits the lock's descriptor; -o keeps it from it" {
    flx 0 lock sh -c 'for f in /proc/$$/fd/*; do readlink "$f"; done; :'
    assert_output --partial "$TMP/lock"
    flx 0 -o lock sh -c 'for f in /proc/$$/fd/*; do readlink "$f"; done; :'
    refute_output --partial "$TMP/lock"
    flx 0 -n lock true
}

@test "-F: filelock becomes the command (same pid), the lock still held" {
    bg "$FILELOCK" -F lock sh -c "echo \$\$ > cpid; \"$FILELOCK\" -n lock true; echo \$? > probe"
    wait_rc "$BG_PID"
    assert_equal "$RC" 0
    assert_equal "$(cat cpid)" "$BG_PID"
    assert_equal "$(cat probe)" 1
    flx 0 -n lock true
}
