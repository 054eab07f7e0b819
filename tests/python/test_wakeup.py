"""How a synchronous wait learns of signals (issue 17): the main thread waits
on a signal wake-up pipe of ours (signal.set_wakeup_fd semantics), with no
50 ms slices; a program's own wake-up descriptor is never taken over."""

from __future__ import annotations

import fcntl
import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

from filelock import FileLock, Timeout
from filelock import _filelock_core as _core

pytestmark = [
    pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and flock"),
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the core polls the wake-up descriptor on Linux only"),
]


class Interrupted(Exception):
    pass


def hold(path: Path) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def kick_later(delay: float) -> threading.Thread:
    """SIGUSR1 to a thread other than the main one, after *delay*: it
    interrupts no system call of the waiting main thread, so only the
    wake-up descriptor its C handler writes can end the wait."""

    def run() -> None:
        time.sleep(delay)
        signal.pthread_kill(threading.get_ident(), signal.SIGUSR1)

    t = threading.Thread(target=run)
    t.start()
    return t


@pytest.fixture
def usr1_raises():
    def handler(signum, frame):
        raise Interrupted

    old = signal.signal(signal.SIGUSR1, handler)
    yield
    signal.signal(signal.SIGUSR1, old)


def test_signal_on_another_thread_ends_the_wait_without_slices(tmp_path: Path, usr1_raises) -> None:
    # poll_interval=60: no re-check falls before the timeout, so without the
    # wake-up descriptor the wait would end in Timeout, and with 50 ms slices
    # the callback would have run about 10 times before the signal.
    path = tmp_path / "a.lock"
    fd = hold(path)
    lock = FileLock(str(path))
    try:
        calls = _core.flpy_cancel_count()
        t = kick_later(0.5)
        with pytest.raises(Interrupted):
            lock.acquire(timeout=20, poll_interval=60)
        t.join()
        assert _core.flpy_cancel_count() - calls <= 2  # the signal's wake (+1 spare)
        assert not lock.is_locked and lock.lock_counter == 0
        # The pipe was ours for the wait only.
        assert signal.set_wakeup_fd(-1) == -1
    finally:
        os.close(fd)
    with lock:  # still usable
        assert lock.is_locked


def test_wait_ends_on_release_and_leaves_no_wakeup_fd(tmp_path: Path) -> None:
    path = tmp_path / "b.lock"
    fd = hold(path)
    threading.Timer(0.2, os.close, (fd,)).start()
    lock = FileLock(str(path))
    lock.acquire(timeout=20, poll_interval=60)  # the close wakes it (inotify)
    assert lock.is_locked
    lock.release()
    assert signal.set_wakeup_fd(-1) == -1


def test_the_programs_own_wakeup_fd_is_kept(tmp_path: Path) -> None:
    """A descriptor set by the program (asyncio, trio) stays set, and the
    signal bytes of a wait reach it, not us."""
    path = tmp_path / "c.lock"
    fd = hold(path)
    r, w = os.pipe()
    os.set_blocking(r, False)
    os.set_blocking(w, False)
    old_handler = signal.signal(signal.SIGUSR1, lambda *a: None)
    old = signal.set_wakeup_fd(w)
    try:
        t = kick_later(0.1)
        with pytest.raises(Timeout):
            FileLock(str(path)).acquire(timeout=0.5)
        t.join()
        assert signal.set_wakeup_fd(w) == w
        assert os.read(r, 16) == bytes([signal.SIGUSR1])
    finally:
        signal.set_wakeup_fd(old)
        signal.signal(signal.SIGUSR1, old_handler)
        for x in (r, w, fd):
            os.close(x)


def test_a_signal_handler_may_wait_too(tmp_path: Path) -> None:
    """The callback runs signal handlers during a wait; one that waits for
    another lock shares the wake-up pipe (and must not loop on it), and the
    outer wait still ends on its release."""
    a, b = tmp_path / "a.lock", tmp_path / "b.lock"
    fa, fb = hold(a), hold(b)
    inner: list[str] = []

    def handler(signum, frame):
        try:
            FileLock(str(b)).acquire(timeout=0.3)
        except Timeout:
            inner.append("timeout")

    old = signal.signal(signal.SIGUSR1, handler)
    try:
        t = kick_later(0.2)
        threading.Timer(1.0, os.close, (fa,)).start()
        lock = FileLock(str(a))
        lock.acquire(timeout=20, poll_interval=60)
        t.join()
        assert inner == ["timeout"]
        assert lock.is_locked
        lock.release()
        assert signal.set_wakeup_fd(-1) == -1
    finally:
        signal.signal(signal.SIGUSR1, old)
        os.close(fb)


def test_the_program_may_set_its_own_fd_during_a_wait(tmp_path: Path) -> None:
    """A signal handler that sets the program's wake-up descriptor during a
    wait keeps it after the wait."""
    path = tmp_path / "e.lock"
    fd = hold(path)
    r, w = os.pipe()
    os.set_blocking(w, False)

    def handler(signum, frame):
        signal.set_wakeup_fd(w)

    old = signal.signal(signal.SIGUSR1, handler)
    try:
        t = kick_later(0.2)
        with pytest.raises(Timeout):
            FileLock(str(path)).acquire(timeout=0.6, poll_interval=60)
        t.join()
        assert signal.set_wakeup_fd(-1) == w
    finally:
        signal.signal(signal.SIGUSR1, old)
        for x in (r, w, fd):
            os.close(x)
