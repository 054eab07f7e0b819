"""Threads: the GIL is released while waiting, thread-local vs shared state."""

from __future__ import annotations

import threading
import time

import pytest

from conftest import DEADLINE
from filelock import FileLock, SoftFileLock, Timeout


def run_threads(n: int, target) -> list[BaseException]:
    errors: list[BaseException] = []

    def wrap(i: int) -> None:
        try:
            target(i)
        except BaseException as exc:  # noqa: BLE001 - collected and re-raised below
            errors.append(exc)

    threads = [threading.Thread(target=wrap, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(DEADLINE)
        assert not t.is_alive(), "a thread did not finish before the deadline"
    return errors


class Critical:
    """Detects two threads inside at once, and lost updates."""

    def __init__(self) -> None:
        self.inside = 0
        self.overlaps = 0
        self.count = 0

    def enter(self) -> None:
        self.inside += 1
        if self.inside != 1:
            self.overlaps += 1
        value = self.count
        time.sleep(0)  # yield the GIL: without the lock, updates would be lost
        self.count = value + 1
        self.inside -= 1


@pytest.mark.parametrize("cls", [FileLock, SoftFileLock])
def test_shared_object_100_threads(cls, lock_path: str) -> None:
    lock = cls(lock_path, timeout=DEADLINE)  # thread_local: each thread holds it alone
    crit = Critical()
    per_thread = 5

    def work(_: int) -> None:
        for _ in range(per_thread):
            with lock:
                assert lock.lock_counter == 1
                crit.enter()

    assert run_threads(100, work) == []
    assert crit.overlaps == 0
    assert crit.count == 100 * per_thread
    assert not lock.is_locked


def test_two_objects_one_path_many_threads(lock_path: str) -> None:
    locks = [FileLock(lock_path, timeout=DEADLINE), FileLock(lock_path, timeout=DEADLINE)]
    crit = Critical()

    def work(i: int) -> None:
        lock = locks[i % 2]
        for _ in range(10):
            with lock:
                crit.enter()

    assert run_threads(40, work) == []
    assert crit.overlaps == 0 and crit.count == 400


def test_gil_released_while_waiting(lock_path: str) -> None:
    holder, waiter = FileLock(lock_path), FileLock(lock_path)
    holder.acquire()
    started = threading.Event()
    result: list[object] = []

    def wait() -> None:
        started.set()
        try:
            waiter.acquire(timeout=DEADLINE)
            result.append("acquired")
            waiter.release()
        except BaseException as exc:  # noqa: BLE001
            result.append(exc)

    t = threading.Thread(target=wait)
    t.start()
    started.wait(DEADLINE)
    # While the other thread waits, this one keeps running Python code.
    spins = 0
    end = time.monotonic() + 0.3
    while time.monotonic() < end:
        spins += 1
    assert spins > 1000
    assert result == []
    holder.release()
    t.join(DEADLINE)
    assert result == ["acquired"]


def test_thread_local_release_from_other_thread_is_noop(lock_path: str) -> None:
    lock = FileLock(lock_path)
    lock.acquire()
    seen: list[object] = []

    def other() -> None:
        seen.append(lock.is_locked)
        lock.release()  # not this thread's: nothing happens
        seen.append(lock.lock_counter)

    assert run_threads(1, lambda _: other()) == []
    assert seen == [False, 0]
    assert lock.is_locked and lock.lock_counter == 1
    lock.release()


def test_shared_state_when_not_thread_local(lock_path: str) -> None:
    lock = FileLock(lock_path, thread_local=False)
    assert not lock.is_thread_local()
    lock.acquire()
    seen: list[object] = []

    def other() -> None:
        seen.append(lock.is_locked)
        lock.acquire(timeout=0)  # joins the hold: counter 2
        seen.append(lock.lock_counter)
        lock.release()
        lock.release()  # another thread may release the shared state

    assert run_threads(1, lambda _: other()) == []
    assert seen == [True, 2]
    assert not lock.is_locked


def test_thread_local_excludes_threads(lock_path: str) -> None:
    lock = FileLock(lock_path)
    lock.acquire()
    got: list[object] = []

    def other() -> None:
        try:
            lock.acquire(timeout=0.05)
            got.append("acquired")
        except Timeout:
            got.append("timeout")

    assert run_threads(1, lambda _: other()) == []
    assert got == ["timeout"]
    lock.release()


def test_many_threads_with_timeouts_keep_counters_consistent(lock_path: str) -> None:
    lock = FileLock(lock_path)
    outcomes: list[str] = []
    mu = threading.Lock()

    def work(_: int) -> None:
        for _ in range(20):
            try:
                with lock.acquire(timeout=0.001):
                    assert lock.lock_counter == 1
                    with mu:
                        outcomes.append("ok")
            except Timeout:
                assert lock.lock_counter == 0
                with mu:
                    outcomes.append("timeout")

    assert run_threads(16, work) == []
    assert len(outcomes) == 320 and "ok" in outcomes
    assert not lock.is_locked
