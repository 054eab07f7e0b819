"""Processes: contention, Ctrl-C during a wait, interop with the pure-Python filelock."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import filelock
from conftest import DEADLINE, PURE_DIR, SOURCE_DIR, ours_env
from filelock import FileLock, SoftFileLock, Timeout

KINDS = ["FileLock", "SoftFileLock"]


@pytest.mark.parametrize("soft", [False, True])
def test_demo_writers_lose_nothing(tmp_path: Path, soft: bool) -> None:
    data, lock = tmp_path / "data.txt", tmp_path / "data.lock"
    writer = SOURCE_DIR / "demo" / "writer.py"
    extra = ["--soft"] if soft else []
    procs = [
        subprocess.Popen(
            [sys.executable, str(writer), str(data), str(lock), "30", tag, *extra], env=ours_env()
        )
        for tag in ("a", "b", "c", "d")
    ]
    for p in procs:
        assert p.wait(timeout=120) == 0
    lines = data.read_text().splitlines()
    assert len(lines) == 120
    for tag in "abcd":
        seqs = [int(line.split()[1]) for line in lines if line.split()[0] == tag]
        assert seqs == list(range(1, 31))  # each writer's lines all there, in order
    # Untorn: "<tag> <seq> <tag>/<seq>/<text>" (the protocol of demo/README.md).
    for line in lines:
        tag, seq, payload = line.split(" ")
        assert payload.startswith(f"{tag}/{seq}/")


@pytest.mark.parametrize("kind", KINDS)
def test_process_contention_counter(tmp_path: Path, kind: str) -> None:
    counter, lock_path = tmp_path / "n", tmp_path / "n.lock"
    counter.write_text("0")
    code = (
        "import sys, time, filelock\n"
        f"lock = filelock.{kind}({str(lock_path)!r}, timeout=60)\n"
        "for _ in range(40):\n"
        "    with lock:\n"
        f"        v = int(open({str(counter)!r}).read())\n"
        "        time.sleep(0.0005)\n"
        f"        open({str(counter)!r}, 'w').write(str(v + 1))\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", code], env=ours_env()) for _ in range(4)]
    for p in procs:
        assert p.wait(timeout=120) == 0
    assert counter.read_text() == "160"


def test_other_process_holds(spawn, lock_path: str) -> None:
    child = spawn(
        "import sys, filelock\n"
        f"lock = filelock.FileLock({lock_path!r}); lock.acquire()\n"
        "print('held', flush=True); sys.stdin.readline(); lock.release(); print('released', flush=True)\n"
    )
    child.expect("held")
    lock = FileLock(lock_path)
    with pytest.raises(Timeout):
        lock.acquire(timeout=0.1)
    child.send()
    child.expect("released")
    lock.acquire(timeout=DEADLINE)
    lock.release()
    child.finish()


def test_waiter_wakes_when_holder_exits(spawn, lock_path: str) -> None:
    # The holder dies without releasing: the kernel drops its lock.
    child = spawn(
        "import os, sys, filelock\n"
        f"lock = filelock.FileLock({lock_path!r}); lock.acquire()\n"
        "print('held', flush=True); sys.stdin.readline(); os._exit(0)\n"
    )
    child.expect("held")
    child.send()
    lock = FileLock(lock_path)
    lock.acquire(timeout=DEADLINE)
    assert lock.is_locked
    lock.release()


SIGINT_CHILD = r"""
import signal, sys, threading, filelock
# Python raises KeyboardInterrupt only if SIGINT was not ignored when it
# started, and a background job of a non-interactive shell (a CI script's
# "ctest &") starts with it ignored: install the handler ourselves.
signal.signal(signal.SIGINT, signal.default_int_handler)
path, kind = sys.argv[1], sys.argv[2]
lock = getattr(filelock, kind)(path)
try:
    # Inside the try: a SIGINT landing before the wait has begun (a loaded
    # machine may deschedule us here for longer than the parent's pause)
    # must end the same way as one during it.
    print("waiting", flush=True)
    lock.acquire()  # forever: only Ctrl-C ends it
except KeyboardInterrupt:
    print("interrupted", lock.is_locked, lock.lock_counter, flush=True)
else:
    print("acquired?!", flush=True)
    sys.exit(1)
# The lock stays usable: once the holder is gone it is won.
sys.stdin.readline()
lock.acquire(timeout=30)
print("acquired-after", lock.lock_counter, flush=True)
lock.release()
"""


@pytest.mark.parametrize("kind", KINDS)
def test_sigint_interrupts_wait(tmp_path: Path, kind: str) -> None:
    from conftest import Child

    lock_path = str(tmp_path / "int.lock")
    holder = getattr(filelock, kind)(lock_path)
    holder.acquire()
    child = Child(SIGINT_CHILD.replace("sys.argv[1], sys.argv[2]", f"{lock_path!r}, {kind!r}"))
    try:
        child.expect("waiting")
        time.sleep(0.3)  # let it enter the wait (correctness does not depend on it)
        t0 = time.monotonic()
        os.kill(child.proc.pid, signal.SIGINT)
        child.expect("interrupted False 0")
        # Loose bound, only so that "never interrupted" fails instead of hangs.
        assert time.monotonic() - t0 < 10
        holder.release()
        child.send()
        child.expect("acquired-after 1")
        child.finish()
    finally:
        child.kill()
        holder.release(force=True)


def test_sigint_handler_that_does_not_raise_keeps_waiting(tmp_path: Path) -> None:
    # PEP 475: a signal whose handler returns normally does not end the wait.
    from conftest import Child

    lock_path = str(tmp_path / "h.lock")
    holder = FileLock(lock_path)
    holder.acquire()
    code = (
        "import signal, filelock\n"
        "hits = []\n"
        "signal.signal(signal.SIGUSR1, lambda *a: hits.append(1))\n"
        f"lock = filelock.FileLock({lock_path!r})\n"
        "print('waiting', flush=True)\n"
        "lock.acquire(timeout=30)\n"
        "print('acquired', len(hits), flush=True)\n"
    )
    child = Child(code)
    try:
        child.expect("waiting")
        time.sleep(0.2)
        os.kill(child.proc.pid, signal.SIGUSR1)
        time.sleep(0.3)
        assert child.proc.poll() is None  # still waiting
        holder.release()
        child.expect("acquired 1")
        child.finish()
    finally:
        child.kill()
        holder.release(force=True)


PURE_CHECK = (
    "import filelock, sys\n"
    f"assert filelock.__file__.startswith({PURE_DIR!r}), filelock.__file__\n"
    "assert not hasattr(filelock, '_filelock_core')\n"
)


@pytest.mark.skipif(
    not os.path.exists(os.path.join(PURE_DIR, "filelock", "__init__.py")),
    reason="Debian's python3-filelock is not installed",
)
@pytest.mark.parametrize("kind", KINDS)
def test_interop_with_pure_python_filelock(spawn, tmp_path: Path, kind: str) -> None:
    assert not filelock.__file__.startswith(PURE_DIR)
    assert hasattr(filelock, "_filelock_core")
    lock_path = str(tmp_path / "interop.lock")
    ours = getattr(filelock, kind)(lock_path)

    # The pure one holds: ours cannot get in until it releases.
    pure = spawn(
        PURE_CHECK
        + f"lock = filelock.{kind}({lock_path!r}); lock.acquire()\n"
        "print('held', flush=True); sys.stdin.readline(); lock.release(); print('released', flush=True)\n",
        pure=True,
    )
    pure.expect("held")
    with pytest.raises(Timeout):
        ours.acquire(timeout=0.2)
    pure.send()
    pure.expect("released")
    ours.acquire(timeout=DEADLINE)

    # Ours holds: the pure one cannot get in until we release.
    pure2 = spawn(
        PURE_CHECK
        + f"lock = filelock.{kind}({lock_path!r})\n"
        "try:\n"
        "    lock.acquire(timeout=0.2)\n"
        "    print('acquired', flush=True)\n"
        "except filelock.Timeout:\n"
        "    print('timeout', flush=True)\n"
        "sys.stdin.readline()\n"
        "lock.acquire(timeout=30)\n"
        "print('acquired', flush=True); lock.release()\n",
        pure=True,
    )
    pure2.expect("timeout")
    ours.release()
    pure2.send()
    pure2.expect("acquired")
    pure2.finish()
    pure.finish()
