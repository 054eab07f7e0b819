#!/usr/bin/env bats
# -s/--shared: shared holders coexist, exclude an exclusive one and are
# excluded by it; util-linux flock -s interoperates; the descriptor form.
load common

@test "shared holders coexist and exclude an exclusive one" {
    start_holder S1 "$FILELOCK" -s lock sh -c "$(hold_script S1)"
    flx 0 -s -n lock true
    xrun 0 flock -s -n lock true
    flx 1 -n lock true
    xrun 1 flock -x -n lock true
    flx 0 --owner lock
    assert_output --partial "$HOST"
    # An exclusive waiter gets the lock when the readers leave.
    bg "$FILELOCK" -w 15 lock sh -c "echo 'X done' >> '$TMP/log'"
    waiter=$BG_PID
    sleep 0.3
    [ ! -e log ] || fail "exclusive waiter ran beside a reader"
    stop_holder S1
    wait_rc "$waiter"
    assert_equal "$RC" 0
    assert_equal "$(cat log)" "S1 done
X done"
}

@test "an exclusive holder excludes shared ones" {
    start_holder X1 "$FILELOCK" lock sh -c "$(hold_script X1)"
    flx 1 -s -n lock true
    flx 1 -s -w 0.2 lock true
    stop_holder X1
}

@test "flock -s interoperates" {
    start_holder F flock -s lock sh -c "$(hold_script F)"
    flx 0 -s -n lock true
    flx 1 -n lock true
    stop_holder F
}

@test "descriptor form: shared, then converted to exclusive" {
    exec 9>lock
    flx 0 -s 9
    flx 0 -s -n lock true
    flx 1 -n lock true
    flx 0 -n 9
    flx 1 -s -n lock true
    exec 9>&-
}
