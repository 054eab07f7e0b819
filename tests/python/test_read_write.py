"""ReadWriteLock: many readers or one writer (issue 10).

Readers share the kernel lock, a writer holds it alone, and a waiting
writer closes the gate file "<path>.gate" to new readers so that it is not
starved. Threads of one process behave like separate processes (each
thread holds on its own).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import filelock
from conftest import DEADLINE, Child, ours_env
from filelock import FileLock, ReadWriteLock, Timeout


def rw(path: str, **kw) -> ReadWriteLock:
    # Independent objects unless a test is about the singleton.
    kw.setdefault("is_singleton", False)
    return ReadWriteLock(path, **kw)


def run_threads(n: int, target) -> None:
    errors: list[BaseException] = []

    def wrap(i: int) -> None:
        try:
            target(i)
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            errors.append(exc)

    threads = [threading.Thread(target=wrap, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(DEADLINE)
        assert not t.is_alive(), "a thread did not finish before the deadline"
    if errors:
        raise errors[0]


def holder(path: str, mode: str) -> str:
    """A child that holds the ReadWriteLock in *mode* until told to release."""
    return (
        "import os, sys, filelock\n"
        f"lock = filelock.ReadWriteLock({path!r})\n"
        f"lock.acquire_{mode}(timeout=30)\n"
        "print('held', os.getpid(), lock.held_mode, flush=True)\n"
        "sys.stdin.readline(); lock.release(); print('released', flush=True)\n"
    )


# -- basics -------------------------------------------------------------------


def test_modes_counters_and_proxy(lock_path: str) -> None:
    lock = rw(lock_path)
    assert lock.lock_file == lock_path
    assert lock.held_mode is None and not lock.is_locked and lock.lock_counter == 0
    with lock.acquire_read() as got:
        assert got is lock
        assert lock.held_mode == "read" and lock.is_read_locked and not lock.is_write_locked
        with lock.read_lock():
            assert lock.lock_counter == 2  # recursion within the mode
        assert lock.lock_counter == 1
    assert lock.held_mode is None and not lock.is_locked
    with lock.write_lock() as got:
        assert got is lock
        assert lock.held_mode == "write" and lock.is_write_locked and not lock.is_read_locked
        lock.acquire_write()
        assert lock.lock_counter == 2
        lock.release()
    assert lock.lock_counter == 0
    assert os.path.exists(lock_path)  # the lock file is never deleted


def test_release_force_and_no_op(lock_path: str) -> None:
    lock = rw(lock_path)
    # Not held: the pure-Python package's RuntimeError (3.32), unless forced.
    with pytest.raises(RuntimeError) as info:
        lock.release()
    assert str(info.value) == f"Cannot release a lock on {lock_path} (lock id: {id(lock)}) that is not held"
    lock.release(force=True)
    for _ in range(3):
        lock.acquire_read()
    lock.release(force=True)
    assert lock.lock_counter == 0 and not lock.is_locked
    lock.acquire_write(timeout=0)  # really released
    lock.release()


def test_upgrade_and_downgrade_are_errors(lock_path: str) -> None:
    lock = rw(lock_path)
    # The pure-Python package's words (3.32); the core's reason in a note.
    head = f"Cannot acquire {{}} lock on {lock_path} (lock id: {id(lock)}): "
    with lock.read_lock():
        with pytest.raises(RuntimeError) as info:
            lock.acquire_write()
        assert str(info.value) == head.format("write") + "already holding a read lock (upgrade not allowed)"
        if sys.version_info >= (3, 11):
            assert "held in shared mode" in info.value.__notes__[0]
        with pytest.raises(RuntimeError, match="upgrade not allowed"):
            with lock.write_lock(timeout=0):
                pass
        # Nothing was dropped or converted.
        assert lock.held_mode == "read" and lock.lock_counter == 1
    with lock.write_lock():
        with pytest.raises(RuntimeError) as info:
            lock.acquire_read(timeout=0, blocking=False)
        assert str(info.value) == head.format("read") + "already holding a write lock (downgrade not allowed)"
        if sys.version_info >= (3, 11):
            assert "held in exclusive mode" in info.value.__notes__[0]
        assert lock.held_mode == "write" and lock.lock_counter == 1
    assert lock.held_mode is None


def test_defaults_from_constructor(lock_path: str) -> None:
    writer = rw(lock_path)
    writer.acquire_write()
    try:
        results: list[str] = []

        def read_with_defaults() -> None:
            lock = rw(lock_path, timeout=0.2)
            assert lock.timeout == 0.2 and lock.blocking is True
            try:
                with lock.read_lock():
                    results.append("acquired")
            except Timeout:
                results.append("timeout")
            lock2 = rw(lock_path, blocking=False)
            assert lock2.blocking is False
            t0 = time.monotonic()
            try:
                with lock2.write_lock():
                    results.append("acquired")
            except Timeout:
                results.append("timeout")
            assert time.monotonic() - t0 < 10  # loose: blocking=False tries once
            lock2.timeout = 5
            lock2.blocking = True
            assert lock2.timeout == 5 and lock2.blocking

        # Another thread: this one holds the write lock (a read here would
        # be a downgrade).
        th = threading.Thread(target=read_with_defaults)
        th.start()
        th.join(DEADLINE)
        assert not th.is_alive()
        assert results == ["timeout", "timeout"]
    finally:
        writer.release()


def test_singleton(lock_path: str, tmp_path: Path) -> None:
    a = ReadWriteLock(lock_path)
    assert ReadWriteLock(lock_path) is a and a.is_singleton
    with pytest.raises(ValueError):
        ReadWriteLock(lock_path, timeout=5)  # other settings for the same file
    b = ReadWriteLock(lock_path, is_singleton=False)
    assert b is not a and not b.is_singleton
    other = str(tmp_path / "other.lock")
    f = FileLock(other, is_singleton=True)
    # A FileLock singleton is another class's: another lock on that file (its
    # own handle, one singleton registry per class), which the kernel lock
    # makes exclude this one.
    rw = ReadWriteLock(other, timeout=0)
    with f:
        with pytest.raises(Timeout):
            rw.acquire_write(timeout=0)
    with rw.write_lock():
        with pytest.raises(Timeout):
            f.acquire(timeout=0)
    del f


def test_close(lock_path: str) -> None:
    a = ReadWriteLock(lock_path)
    a.acquire_read()
    a.acquire_read()
    a.close()
    assert not a.is_locked and a.held_mode is None and a.lock_counter == 0
    with pytest.raises(RuntimeError, match="closed"):
        a.acquire_read()
    with pytest.raises(RuntimeError, match="closed"):
        a.acquire_write()
    a.close()  # again: nothing
    with pytest.raises(RuntimeError, match="that is not held"):
        a.release()  # nothing to release: an error, as the pure-Python package's
    a.release(force=True)  # forced: nothing
    b = ReadWriteLock(lock_path)
    assert b is not a
    b.acquire_write(timeout=0)  # a's read hold is gone
    b.close()


def test_exported() -> None:
    assert filelock.ReadWriteLock is ReadWriteLock
    assert "ReadWriteLock" in filelock.__all__


# -- readers share, a writer excludes --------------------------------------------


def test_many_reader_threads_at_once(lock_path: str) -> None:
    lock = rw(lock_path)
    n = 6
    all_in = threading.Barrier(n, timeout=DEADLINE)

    def read(_: int) -> None:
        with lock.read_lock(timeout=DEADLINE):
            assert lock.held_mode == "read"
            all_in.wait()  # only passes if all n hold at the same time

    run_threads(n, read)


def test_many_reader_processes_at_once_and_writer_excluded(spawn, lock_path: str) -> None:
    readers = [spawn(holder(lock_path, "read")) for _ in range(3)]
    pids = {int(r.expect("held").split()[1]) for r in readers}
    lock = rw(lock_path)
    # One more reader (us) gets in at once; a writer does not.
    lock.acquire_read(timeout=0)
    lock.release()
    with pytest.raises(Timeout):
        lock.acquire_write(timeout=0.3)
    with pytest.raises(Timeout):
        lock.acquire_write(blocking=False)
    owner = lock.owner
    assert owner is not None and owner.pid in pids and not owner.this_process
    for r in readers:
        r.send()
        r.expect("released")
        r.finish()
    lock.acquire_write(timeout=DEADLINE)
    lock.release()


@pytest.mark.parametrize("mode", ["read", "write"])
def test_writer_process_excludes_everyone(spawn, lock_path: str, mode: str) -> None:
    child = spawn(holder(lock_path, "write"))
    child.expect("held")
    lock = rw(lock_path)
    acquire = getattr(lock, f"acquire_{mode}")
    with pytest.raises(Timeout):
        acquire(timeout=0.3)
    with pytest.raises(Timeout):
        acquire(timeout=0)
    with pytest.raises(Timeout):
        acquire(timeout=-1, blocking=False)
    assert lock.lock_counter == 0 and lock.held_mode is None
    # A waiter gets in once the writer releases.
    got = threading.Event()

    def wait() -> None:
        acquire(timeout=DEADLINE)
        got.set()
        lock.release()

    t = threading.Thread(target=wait)
    t.start()
    child.send()
    child.expect("released")
    t.join(DEADLINE)
    assert got.is_set()
    child.finish()


def test_writer_thread_excludes_reader_and_writer_threads(lock_path: str) -> None:
    lock = rw(lock_path)  # one object, threads hold on their own
    lock.acquire_write()
    try:
        outcomes: list[str] = []

        def other(i: int) -> None:
            try:
                if i == 0:
                    lock.acquire_read(timeout=0.2)
                else:
                    lock.acquire_write(timeout=0.2)
                outcomes.append("acquired")
                lock.release()
            except Timeout:
                outcomes.append("timeout")

        run_threads(2, other)
        assert outcomes == ["timeout", "timeout"]
    finally:
        lock.release()


def test_readers_and_writers_never_overlap(lock_path: str) -> None:
    # Several threads mixing reads and writes: a writer is always alone.
    lock = rw(lock_path, timeout=DEADLINE)
    state = {"readers": 0, "writers": 0, "bad": 0, "reads": 0, "writes": 0}
    mu = threading.Lock()

    def work(i: int) -> None:
        for k in range(30):
            if (i + k) % 4 == 0:
                with lock.write_lock():
                    with mu:
                        state["writers"] += 1
                        state["bad"] += state["readers"] > 0 or state["writers"] > 1
                    time.sleep(0.0005)
                    with mu:
                        state["writers"] -= 1
                        state["writes"] += 1
            else:
                with lock.read_lock():
                    with mu:
                        state["readers"] += 1
                        state["bad"] += state["writers"] > 0
                    time.sleep(0.0005)
                    with mu:
                        state["readers"] -= 1
                        state["reads"] += 1

    run_threads(5, work)
    assert state["bad"] == 0
    assert state["reads"] + state["writes"] == 150


def test_filelock_counts_as_writer(lock_path: str) -> None:
    lock = rw(lock_path)
    with lock.read_lock():
        with pytest.raises(Timeout):
            FileLock(lock_path).acquire(timeout=0.2)


# -- waits: GIL and signals ------------------------------------------------------


def in_poll(tid: int) -> bool:
    """Whether thread *tid* of this process sleeps in poll (the library's
    wait), by /proc/self/task/<tid>/wchan; where wchan is hidden, whether it
    sleeps at all."""
    try:
        wchan = Path("/proc/self/task/%d/wchan" % tid).read_text()
        state = Path("/proc/self/task/%d/stat" % tid).read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state == "S" and ("poll" in wchan or wchan in ("", "0"))


def test_read_wait_releases_the_gil(lock_path: str) -> None:
    """A reader thread waiting for the writer lets this thread run Python
    code meanwhile. Event-driven, not timed: this thread (running Python,
    which needs the GIL) waits until the reader sleeps in the library's
    poll, runs on for 10 more steps while it still waits, and only then lets
    the writer go. A wait that kept the GIL would stall this thread until
    the reader's own timeout: the outcome would be that timeout."""
    writer = rw(lock_path)
    writer.acquire_write()
    reader = rw(lock_path)
    outcome: list[str] = []
    tid: list[int] = []

    def read() -> None:
        tid.append(threading.get_native_id())
        try:
            reader.acquire_read(timeout=DEADLINE)
            outcome.append("acquired")
            reader.release()
        except Timeout:
            outcome.append("timeout")

    t = threading.Thread(target=read)
    t.start()
    try:
        end = time.monotonic() + DEADLINE
        while not outcome and not (tid and in_poll(tid[0])):
            assert time.monotonic() < end, "the reader never started its wait"
            time.sleep(0.001)
        steps = 0
        while steps < 10 and not outcome:
            steps += 1
            time.sleep(0.001)
        assert outcome == [], "the reader's wait ended while the writer held the lock: %s" % outcome
    finally:
        writer.release()
        t.join(DEADLINE)
    assert not t.is_alive()
    assert outcome == ["acquired"]


SIGINT_READER = r"""
import signal, sys, filelock
# (As in test_processes.py: SIGINT may have been ignored at our start.)
signal.signal(signal.SIGINT, signal.default_int_handler)
lock = filelock.ReadWriteLock(sys.argv[1])
try:
    print("waiting", flush=True)  # in the try: an early SIGINT ends it the same way
    lock.acquire_read()  # forever: only Ctrl-C ends it
except KeyboardInterrupt:
    print("interrupted", lock.is_locked, lock.lock_counter, flush=True)
else:
    print("acquired?!", flush=True)
    sys.exit(1)
sys.stdin.readline()
lock.acquire_read(timeout=30)
print("acquired-after", lock.held_mode, flush=True)
"""


def test_sigint_interrupts_read_wait(lock_path: str) -> None:
    writer = rw(lock_path)
    writer.acquire_write()
    child = Child(SIGINT_READER.replace("sys.argv[1]", repr(lock_path)))
    try:
        child.expect("waiting")
        time.sleep(0.3)  # let it enter the wait (correctness does not depend on it)
        os.kill(child.proc.pid, signal.SIGINT)
        child.expect("interrupted False 0")
        writer.release()
        child.send()
        child.expect("acquired-after read")
        child.finish()
    finally:
        child.kill()
        writer.release(force=True)


# -- no writer starvation ----------------------------------------------------------

CHURNING_READER = r"""
import random, select, sys, threading, time, filelock
lock = filelock.ReadWriteLock(sys.argv[1])  # each thread holds on its own
deadline = time.monotonic() + 60  # never outlive a broken test
stop = threading.Event()
counts = [0, 0, 0]
started = threading.Barrier(4)

def read(i):
    started.wait()
    while not stop.is_set() and time.monotonic() < deadline:
        with lock.read_lock(timeout=30):
            counts[i] += 1
            # Held 10-30 ms, out of phase with the other readers: at almost
            # every instant one of the nine holds the lock.
            time.sleep(random.uniform(0.01, 0.03))

threads = [threading.Thread(target=read, args=(i,)) for i in range(3)]
for t in threads:
    t.start()
started.wait()
# Churning for real before the writer comes: three reads by each thread
# (counted, not timed: a loaded machine may fit fewer into a fixed pause).
while min(counts) < 3 and time.monotonic() < deadline:
    time.sleep(0.005)
print("reading", flush=True)
select.select([sys.stdin], [], [], 60)  # until told to stop (or stdin closes)
stop.set()
for t in threads:
    t.join(60)
print("reads", sum(counts), sum(t.is_alive() for t in threads), flush=True)
"""


def test_writer_not_starved_by_three_reader_processes(lock_path: str) -> None:
    # Three processes with three reader threads each re-acquire read locks
    # back to back, out of phase, so that the lock is almost never free.
    # Without the gate a writer waits until all nine happen to be out at
    # once; a waiting writer closes the gate: it must get in (loose bound).
    readers = [
        subprocess.Popen(
            [sys.executable, "-c", CHURNING_READER, lock_path],
            env=ours_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    try:
        for r in readers:
            assert r.stdout is not None
            assert r.stdout.readline().strip() == "reading"
        writer = rw(lock_path)
        t0 = time.monotonic()
        writer.acquire_write(timeout=10)  # Timeout here means starvation
        waited = time.monotonic() - t0
        assert writer.held_mode == "write"
        writer.release()
        assert waited < 10
    finally:
        counts = []
        for r in readers:
            assert r.stdin is not None
            try:
                r.stdin.write("stop\n")
                r.stdin.flush()
            except BrokenPipeError:
                pass
        for r in readers:
            out, _ = r.communicate(timeout=DEADLINE)
            counts.append(out)
            assert r.returncode == 0
    # The readers read before the writer came, and none was left stuck
    # behind the gate after it left.
    for out in counts:
        n, stuck = (int(x) for x in out.split()[-2:])
        assert n >= 9
        assert stuck == 0


# -- interop with util-linux flock(1) -----------------------------------------------

needs_flock = pytest.mark.skipif(
    not os.path.exists("/usr/bin/flock"), reason="util-linux flock(1) is not installed"
)


def flock_holder(path: str, flag: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        ["flock", flag, path, "-c", "echo held; read line"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "held"
    return proc


def flock_try(path: str, flag: str) -> int:
    # -n: one attempt; exit 1 on conflict (flock's default conflict code).
    return subprocess.run(["flock", "-n", flag, path, "true"], timeout=DEADLINE).returncode


@needs_flock
def test_our_readers_with_flock_shared_and_exclusive(lock_path: str) -> None:
    lock = rw(lock_path)
    shared = flock_holder(lock_path, "-s")
    try:
        lock.acquire_read(timeout=0)  # readers together
        lock.release()
        with pytest.raises(Timeout):
            lock.acquire_write(timeout=0.2)
    finally:
        shared.communicate("go\n", timeout=DEADLINE)
    exclusive = flock_holder(lock_path, "-x")
    try:
        with pytest.raises(Timeout):
            lock.acquire_read(timeout=0.2)
        with pytest.raises(Timeout):
            lock.acquire_write(blocking=False)
    finally:
        exclusive.communicate("go\n", timeout=DEADLINE)
    with lock.write_lock(timeout=DEADLINE):
        pass


@needs_flock
def test_flock_against_our_reader_and_writer(lock_path: str) -> None:
    lock = rw(lock_path)
    with lock.read_lock():
        assert flock_try(lock_path, "-s") == 0
        assert flock_try(lock_path, "-x") == 1
    with lock.write_lock():
        assert flock_try(lock_path, "-s") == 1
        assert flock_try(lock_path, "-x") == 1
    assert flock_try(lock_path, "-x") == 0
