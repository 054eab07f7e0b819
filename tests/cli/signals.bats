#!/usr/bin/env bats
# Signals: the lock lives exactly as long as the command. A signal sent to
# filelock while the command runs is passed on to the command (or, for the
# job-control ones, stops or continues filelock), and no other holder gets
# in until the command ends; a signal during the wait ends filelock as it
# would have (128+N) and leaves nothing. util-linux flock(1) runs the same
# cases: it dies from most signals, but its command keeps the lock.
load common

# Background jobs of a non-interactive shell start with INT and QUIT
# ignored, which filelock (like any program) would keep: every process under
# test starts with all signals at their defaults.
bgd() { bg env --default-signal "$@"; }

@test "SIGTERM to filelock reaches the command; the status says so; the lock is free after" {
    bgd "$FILELOCK" lock sh -c "echo \$\$ > cpid; touch T.ready; exec sleep 30"
    fl=$BG_PID
    wait_for T.ready
    kill -TERM "$fl"
    wait_rc "$fl"
    assert_equal "$RC" 143
    ! kill -0 "$(cat cpid)" 2>/dev/null || fail "the command survived"
    flx 0 -n lock true
}

@test "the lock stays held while the command handles the signal" {
    cat >trapper.sh <<'SH'
trap 'touch got_term; i=0; while [ ! -e go2 ] && [ $i -lt 750 ]; do sleep 0.02; i=$((i+1)); done; exit 5' TERM
touch R.ready
i=0
while [ $i -lt 750 ]; do sleep 0.02; i=$((i+1)); done
SH
    bgd "$FILELOCK" lock sh trapper.sh
    fl=$BG_PID
    wait_for R.ready
    kill -TERM "$fl"
    wait_for got_term
    flx 1 -n lock true
    xrun 1 flock -n lock true
    touch go2
    wait_rc "$fl"
    assert_equal "$RC" 5
}

@test "SIGHUP and SIGUSR1 are passed on too" {
    for sig in HUP USR1; do
        rm -f S.ready
        bgd "$FILELOCK" lock sh -c "touch S.ready; exec sleep 30"
        fl=$BG_PID
        wait_for S.ready
        kill -"$sig" "$fl"
        wait_rc "$fl"
        assert_equal "$RC" "$((128 + $(kill -l "$sig")))"
    done
}

@test "soft lock: killed with SIGTERM, the marker is still removed" {
    bgd "$FILELOCK" --soft slock sh -c "touch M.ready; exec sleep 30"
    fl=$BG_PID
    wait_for M.ready
    kill -TERM "$fl"
    wait_rc "$fl"
    assert_equal "$RC" 143
    [ ! -e slock ]
}

@test "a signal while waiting for the lock ends the wait at once (kernel and soft)" {
    for kind in kernel soft; do
        opt=()
        [ "$kind" = soft ] && opt=(--soft)
        start_holder W "$FILELOCK" "${opt[@]}" wlock sh -c "$(hold_script W)"
        bgd "$FILELOCK" "${opt[@]}" wlock sh -c 'touch waiter-ran'
        waiter=$BG_PID
        sleep 0.3
        kill -TERM "$waiter"
        wait_rc "$waiter"
        assert_equal "$RC" 143
        # It ended while the holder still held the lock, and never ran.
        kill -0 "$HOLDER_PID" || fail "$kind: the holder ended first"
        [ ! -e waiter-ran ]
        if [ "$kind" = soft ]; then
            flx 0 --soft --owner wlock
            assert_output "$CMD_PID $HOST"
        fi
        stop_holder W
        assert_equal "$HOLDER_RC" 0
    done
}

# signal_case IMPL SIG: runs a command under IMPL (flock, filelock,
# filelock-o, soft) that records the signals it gets, sends SIG to IMPL,
# and checks that the lock stays held until the command ends.
signal_case() {
    local impl=$1 n=$2 name pid cls rc
    name=$(kill -l "$n")
    case "$name" in
    TSTP | TTIN | TTOU) cls=stop ;;
    CHLD | CONT) cls=ignored ;;
    URG | WINCH) cls=ignorable ;; # ignored by default, forwarded by filelock
    *) cls=fatal ;;
    esac
    local -a cmd probe
    case "$impl" in
    flock) cmd=(flock lock) probe=(flock -n lock true) ;;
    filelock) cmd=("$FILELOCK" lock) probe=(flock -n lock true) ;;
    filelock-o) cmd=("$FILELOCK" -o lock) probe=(flock -n lock true) ;;
    soft) cmd=("$FILELOCK" --soft slock) probe=("$FILELOCK" --soft -n slock true) ;;
    esac
    rm -f ready got go
    bgd "${cmd[@]}" bash -c "trap 'touch got' $n; touch ready; i=0; while [ ! -e go ] && [ \$i -lt 1500 ]; do sleep 0.01; i=\$((i+1)); done; exit 7"
    pid=$BG_PID
    wait_for ready
    kill -s "$name" "$pid"
    # Wait until the signal has done its work.
    local died=0
    if [ "$cls" = stop ]; then
        wait_stopped "$pid"
    elif [ "$impl" = flock ] && [ "$cls" = fatal ]; then
        wait_rc "$pid"
        [ "$RC" = $((128 + n)) ] || fail "flock, SIG$name: status $RC"
        died=1
    elif [ "$impl" != flock ] && [ "$cls" != ignored ]; then
        # Passed on to the command (or, wrongly, fatal to filelock).
        local i=0
        while [ ! -e got ] && kill -0 "$pid" 2>/dev/null && [ "$(awk '{ sub(/.*\) /, ""); print $1 }' "/proc/$pid/stat")" != Z ]; do
            i=$((i + 1))
            [ $i -le 1000 ] || fail "$impl, SIG$name: the command never got the signal"
            sleep 0.01
        done
    fi
    rc=0
    timeout 20 "${probe[@]}" || rc=$?
    [ "$rc" = 1 ] || fail "$impl, SIG$name: another holder got in while the command ran (probe status $rc)"
    [ "$died" = 1 ] || kill -0 "$pid" || fail "$impl, SIG$name: ended before the command"
    [ "$cls" = stop ] && kill -CONT "$pid"
    touch go
    if [ "$died" = 0 ]; then
        wait_rc "$pid"
        [ "$RC" = 7 ] || fail "$impl, SIG$name: status $RC, not the command's 7"
    fi
    # Free once the command has ended (its descriptor closes when it exits).
    if [ "$impl" = soft ]; then
        xrun 0 "$FILELOCK" --soft -n slock true
    else
        xrun 0 flock -w 10 lock true
    fi
}

all_signals() {
    local n
    for n in $(seq 1 31) $(kill -l RTMIN) $(($(kill -l RTMIN) + 3)) $(kill -l RTMAX); do
        [ "$n" = 9 ] || [ "$n" = 19 ] || echo "$n" # KILL and STOP cannot be caught
    done
}

@test "every catchable signal to filelock: no other holder until the command ends" {
    for n in $(all_signals); do signal_case filelock "$n"; done
}

@test "every catchable signal to filelock -o (filelock alone holds the lock)" {
    for n in $(all_signals); do signal_case filelock-o "$n"; done
}

@test "every catchable signal to filelock --soft" {
    for n in $(all_signals); do signal_case soft "$n"; done
}

@test "the same signals to util-linux flock: its command keeps the lock too" {
    command -v flock >/dev/null || skip "util-linux flock is not installed"
    for n in $(all_signals); do signal_case flock "$n"; done
}

# SIGKILL cannot be caught: what survives is what the command holds.
kill_case() {
    local want=$1
    shift
    rm -f ready go cpid
    bgd "$@" bash -c "echo \$\$ > cpid; touch ready; i=0; while [ ! -e go ] && [ \$i -lt 1500 ]; do sleep 0.01; i=\$((i+1)); done"
    pid=$BG_PID
    wait_for ready
    kill -KILL "$pid"
    wait_rc "$pid"
    assert_equal "$RC" 137
    xrun "$want" flock -n lock true
    touch go
    xrun 0 flock -w 10 lock true
}

@test "SIGKILL: the command keeps the kernel lock (as with flock); with -o it is lost (as with flock -o)" {
    command -v flock >/dev/null || skip "util-linux flock is not installed"
    kill_case 1 flock lock
    kill_case 1 "$FILELOCK" lock
    kill_case 0 flock -o lock
    kill_case 0 "$FILELOCK" -o lock
}

@test "SIGKILL with --soft: the marker names the command, kept while it runs, reclaimed after" {
    rm -f ready go
    bgd "$FILELOCK" --soft slock bash -c "echo \$\$ > cpid; touch ready; i=0; while [ ! -e go ] && [ \$i -lt 1500 ]; do sleep 0.01; i=\$((i+1)); done"
    pid=$BG_PID
    wait_for ready
    kill -KILL "$pid"
    wait_rc "$pid"
    assert_equal "$RC" 137
    flx 1 --soft -n slock true
    flx 0 --soft --owner slock
    assert_output "$(cat cpid) $HOST"
    touch go
    wait_gone "$(cat cpid)"
    flx 0 --soft -w 10 slock true
    [ ! -e slock ]
}

@test "a process the command leaves running keeps the kernel lock, as with flock; not with -o" {
    for impl in flock "$FILELOCK"; do
        for o in "" -o; do
            [ "$impl" = flock ] && ! command -v flock >/dev/null && continue
            rm -f bg.ready bg.go
            # shellcheck disable=SC2086
            xrun 0 "$impl" $o lock sh -c "(touch bg.ready; i=0; while [ ! -e bg.go ] && [ \$i -lt 1500 ]; do sleep 0.01; i=\$((i+1)); done) >/dev/null 2>&1 3>&- &"
            wait_for bg.ready
            if [ -z "$o" ]; then
                xrun 1 flock -n lock true
            else
                xrun 0 flock -n lock true
            fi
            touch bg.go
            xrun 0 flock -w 10 lock true
        done
    done
}

@test "a signal sent to the whole process group can reach the command twice (documented)" {
    # Pinned with a forced interleaving: filelock is stopped while the group
    # gets SIGUSR1, so the command has handled the direct one before filelock
    # passes its own on. flock(1) dies from it instead: the command gets one.
    for impl in flock "$FILELOCK"; do
        [ "$impl" = flock ] && ! command -v flock >/dev/null && continue
        rm -f ready got go ppid
        bgd setsid "$impl" lock bash -c "echo \$PPID > ppid; trap 'echo >> got' USR1; touch ready; i=0; while [ ! -e go ] && [ \$i -lt 1500 ]; do sleep 0.01; i=\$((i+1)); done"
        wait_for ready
        fl=$(cat ppid)
        pgid=$(ps -o pgid= -p "$fl" | tr -d ' ')
        assert_equal "$pgid" "$fl" # setsid made it the group's leader
        kill -STOP "$fl"
        wait_stopped "$fl"
        kill -USR1 -- "-$pgid"
        wait_for got
        kill -CONT "$fl"
        if [ "$impl" = flock ]; then
            wait_gone "$fl"
        else
            i=0
            while [ "$(wc -l <got)" -lt 2 ]; do
                i=$((i + 1))
                [ $i -le 1000 ] || fail "the command got SIGUSR1 only once"
                sleep 0.01
            done
        fi
        touch go
        wait "$BG_PID" || :
        expected=2
        [ "$impl" = flock ] && expected=1
        assert_equal "$(wc -l <got)" "$expected"
        # flock(1) died of the signal, but its command still holds the lock
        # (inherited descriptor) until it sees "go": let it end before the
        # next round removes "go" again.
        xrun 0 flock -w 10 lock true
    done
}

# on_terminal IMPL: runs a bash script whose loop runs IMPL three times, on
# a new pseudo-terminal, types ^C during the first run, and prints the
# loop's output.
on_terminal() {
    cat >loop.sh <<SH
for i in 1 2 3; do
    echo "iter \$i"
    "$1" lock sh -c 'touch ready; i=0; while [ \$i -lt 1500 ]; do sleep 0.01; i=\$((i+1)); done'
done
echo "loop finished"
SH
    rm -f ready
    timeout 60 python3 - <<'PY'
import os, pty, select, time
pid, fd = pty.fork()
if pid == 0:
    os.execvp("bash", ["bash", "loop.sh"])
out = b""
def drain(until):
    global out
    while time.time() < until:
        r, _, _ = select.select([fd], [], [], 0.05)
        if r:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                return
            if not chunk:
                return
            out += chunk
deadline = time.time() + 20
while not os.path.exists("ready") and time.time() < deadline:
    drain(time.time() + 0.01)
os.write(fd, b"\x03")  # ^C: SIGINT to the terminal's foreground group
drain(time.time() + 20)
os.waitpid(pid, 0)
print(" ".join(l.strip() for l in out.decode(errors="replace").splitlines() if "iter" in l or "finished" in l))
PY
}

@test "^C on a terminal stops the script that runs filelock, as with flock(1)" {
    # bash goes on with a loop after ^C unless its child was killed by
    # SIGINT: filelock, which leaves the terminal's SIGINT to the command,
    # must then die by it, not exit 130.
    command -v python3 >/dev/null || skip "needs python3 for a pseudo-terminal"
    for impl in flock "$FILELOCK"; do
        [ "$impl" = flock ] && ! command -v flock >/dev/null && continue
        run -0 on_terminal "$impl"
        assert_output "iter 1"
    done
}
