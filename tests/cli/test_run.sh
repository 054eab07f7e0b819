# Running the command: exit status, arguments, -c and $SHELL, signals,
# exec failures, the lock file's life, and that the lock is held meanwhile.
. "$(dirname "$0")/lib.sh"

fl_expect 0 "true" lock true
ok "lock file created" test -f lock
ok "lock file kept after the command" test -f lock
fl_expect 3 "exit 3 passed through" lock sh -c 'exit 3'
fl_expect 255 "exit 255 passed through" lock sh -c 'exit 255'
fl_expect 1 "false" lock false

fl_expect 0 "arguments kept intact" lock printf '%s|' "a b" "" 'c$d'
equals "arguments" "$OUT" 'a b||c$d|'

fl_expect 7 "-c" lock -c 'echo via-c; exit 7' && equals "-c output" "$OUT" "via-c"
fl_expect 6 "--command" lock --command 'exit 6'

# -c runs "$SHELL -c", as flock(1) does, and /bin/sh without $SHELL.
cat >fakesh <<'SH'
#!/bin/sh
echo "fakesh $1 $2"
SH
chmod +x fakesh
expect 0 "-c uses \$SHELL" env SHELL="$TMP/fakesh" "$FILELOCK" lock -c 'the command'
equals "\$SHELL -c" "$OUT" "fakesh -c the command"
expect 0 "-c without \$SHELL" env -u SHELL "$FILELOCK" lock -c 'echo $0'
equals "/bin/sh by default" "$OUT" "/bin/sh"

# Death by signal: 128 + N, as flock(1) reports it.
fl_expect 137 "command killed by SIGKILL" lock sh -c 'kill -KILL $$'
fl_expect 143 "command killed by SIGTERM" lock sh -c 'kill -TERM $$'

# Exec failures: shell conventions.
fl_expect 127 "command not found" lock ./no-such-command
contains "names the command" "$ERR" "no-such-command"
echo 'echo hi' >not-executable
fl_expect 126 "command not executable" lock ./not-executable

# stdin and stdout pass through.
checks=$((checks + 1))
got=$(echo piped | timeout 20 "$FILELOCK" lock cat)
[ "$got" = "piped" ] || fail "stdin/stdout pass through: got '$got'"

# Missing parent directories are created.
fl_expect 0 "parents created" sub/dir/lock true
ok "nested lock file exists" test -f sub/dir/lock

# While the command runs, the lock is held: another filelock, util-linux
# flock and a second open all see it.
fl_expect 0 "held during the command" lock sh -c "\"$FILELOCK\" -n lock true; echo \$?; flock -n lock true; echo \$?"
equals "others conflict while the command runs" "$(echo $OUT)" "1 1"

# The command does not inherit the lock's descriptor (what -o asks for).
fl_expect 0 "no inherited lock descriptor" lock sh -c 'for f in /proc/$$/fd/*; do readlink "$f"; done; :'
lacks "lock file not open in the command" "$OUT" "$TMP/lock"
fl_expect 0 "lock free after the command" -n lock true

finish
