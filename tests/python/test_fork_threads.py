"""Fork from a threaded process, descriptors of a forked child, thread identity (issue 14).

1. A child forked while other threads churn ``with lock:`` can use the lock at once.
2. A child that closes its descriptors and reuses the numbers keeps its own files.
3. A new thread never inherits the hold of a dead thread (thread ids are recycled).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
import warnings
from pathlib import Path

import pytest

from conftest import DEADLINE
from filelock import FileLock, SoftFileLock, Timeout

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


def reap(pid: int, timeout: float) -> int | None:
    """Exit code of the child, or None if it was still running at the deadline (killed)."""
    end = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > end:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return None
        time.sleep(0.0005)


def fork_child(body) -> int:
    """Fork; the child runs body() and exits with its result (never raising)."""
    with warnings.catch_warnings():
        # Python 3.12+ warns about fork() with threads running: that is the test.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:
        code = 99
        try:
            code = body()
        finally:
            os._exit(code)
    return pid


@pytest.mark.parametrize("cls", [FileLock, SoftFileLock])
def test_fork_while_threads_churn(tmp_path: Path, cls) -> None:
    path = str(tmp_path / "x.lock")
    shared = cls(path, thread_local=False)
    stop = threading.Event()

    def churn() -> None:
        mine = cls(path)
        while not stop.is_set():
            try:
                with shared.acquire(timeout=0.05, poll_interval=0.01):
                    _ = shared.is_locked
            except Timeout:
                pass
            try:
                with mine.acquire(timeout=0.05, poll_interval=0.01):
                    pass
            except Timeout:
                pass

    def child() -> int:
        if shared.is_locked or shared.lock_counter != 0:
            return 10
        try:
            with shared.acquire(timeout=0.01, poll_interval=0.01):
                pass
        except Timeout:
            pass
        return 0

    threads = [threading.Thread(target=churn) for _ in range(3)]
    for t in threads:
        t.start()
    hung = failed = 0
    forks = 300
    try:
        for _ in range(forks):
            rc = reap(fork_child(child), 10)
            if rc is None:
                hung += 1
                if hung >= 3:
                    break
            elif rc != 0:
                failed += 1
    finally:
        stop.set()
        for t in threads:
            t.join(DEADLINE)
    assert hung == 0, f"{hung} forked children hung"
    assert failed == 0, f"{failed} forked children failed"


@pytest.mark.skipif(sys.platform != "linux", reason="closerange/number reuse checked on Linux")
@pytest.mark.parametrize("cls", [FileLock, SoftFileLock])
def test_child_keeps_its_reused_descriptors(tmp_path: Path, cls) -> None:
    path = str(tmp_path / "x.lock")
    lock = cls(path)
    other = cls(path)
    lock.acquire()
    with pytest.raises(Timeout):  # a contended wait: the process's wait hub exists
        other.acquire(timeout=0.05, poll_interval=0.01)
    names = [str(tmp_path / f"child{i}.log") for i in range(32)]

    def child() -> int:
        os.closerange(3, 1024)
        fds = [os.open(n, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600) for n in names]
        if fds[0] != 3:
            return 11
        if lock.is_locked:
            return 12
        lock.release(force=True)
        try:
            lock.acquire(timeout=0.1, poll_interval=0.01)  # the parent holds it
            return 13
        except Timeout:
            pass
        for fd in fds:
            try:
                if os.write(fd, b"mine\n") != 5:
                    return 14
            except OSError:
                return 15  # closed (EBADF) or replaced by the library
        return 0

    pid = fork_child(child)
    assert reap(pid, DEADLINE) == 0
    for n in names:
        assert Path(n).read_bytes() == b"mine\n"
    assert lock.is_locked and lock.lock_counter == 1
    lock.release()
    other.acquire(timeout=1)
    other.release()


def test_new_threads_never_inherit_a_dead_threads_hold(tmp_path: Path) -> None:
    path = str(tmp_path / "x.lock")
    lock = FileLock(path)  # thread-local (the default)

    def die_holding() -> None:
        lock.acquire()

    t = threading.Thread(target=die_holding)
    t.start()
    t.join(DEADLINE)
    seen: list[tuple[int, bool, int]] = []

    def fresh() -> None:
        seen.append((threading.get_ident(), lock.is_locked, lock.lock_counter))
        lock.release()  # not this thread's hold: does nothing

    for _ in range(20):
        t = threading.Thread(target=fresh)
        t.start()
        t.join(DEADLINE)
    inherited = [s for s in seen if s[1] or s[2]]
    assert not inherited, f"{len(inherited)} of 20 new threads saw the dead thread's hold"
    # The dead thread's hold is still there: nobody released it.
    probe = FileLock(path)
    with pytest.raises(Timeout):
        probe.acquire(timeout=0)


def test_fork_from_a_signal_handler_during_a_wait(tmp_path: Path) -> None:
    """A signal handler forks (as pre-fork servers spawn workers) while the main thread waits.

    Python runs the handler from the wait's cancel callback, so parent and child both go on
    waiting from the same point. Each must wait on a descriptor of its own: on the parent's
    (one open file description, which flock belongs to) both would be granted the lock at once.
    """
    path = str(tmp_path / "x.lock")
    inside = str(tmp_path / "inside")
    holder = FileLock(path, thread_local=False)
    waiter = FileLock(path)
    holder.acquire()
    state = {"child": None}

    def on_usr1(signum, frame) -> None:
        if state["child"] is None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                state["child"] = os.fork()

    def critical_section() -> int:
        # O_EXCL: fails if the other process is inside too. Stay until the other one has had
        # many chances to (wrongly) win as well.
        try:
            fd = os.open(inside, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return 11
        time.sleep(0.5)
        os.close(fd)
        os.unlink(inside)
        return 0

    old = signal.signal(signal.SIGUSR1, on_usr1)
    timer = threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGUSR1))
    release = threading.Thread(target=lambda: (time.sleep(0.5), holder.release()))
    timer.start()
    release.start()
    try:
        try:
            waiter.acquire(timeout=DEADLINE, poll_interval=0.01)
        except BaseException:
            if state["child"] == 0:
                os._exit(12)
            raise
        if state["child"] == 0:
            code = 13
            try:
                code = critical_section()
                waiter.release()
            finally:
                os._exit(code)
        assert critical_section() == 0, "the child was inside at the same time"
        waiter.release()
    finally:
        signal.signal(signal.SIGUSR1, old)
        timer.join()
        release.join()
    assert state["child"], "the signal handler did not fork"
    assert reap(state["child"], DEADLINE) == 0, "child failed (11: both held the lock)"
