"""is_singleton: one object per lock file, never re-initialised."""

from __future__ import annotations

import gc
import threading
from pathlib import Path

import pytest

from filelock import FileLock, SoftFileLock


def test_same_object(lock_path: str) -> None:
    a = FileLock(lock_path, is_singleton=True)
    b = FileLock(lock_path, is_singleton=True)
    assert a is b and a.is_singleton
    # Another spelling of the same file is the same lock.
    c = FileLock(str(Path(lock_path).parent / "." / Path(lock_path).name), is_singleton=True)
    assert c is a


def test_non_singleton_is_separate(lock_path: str) -> None:
    a = FileLock(lock_path, is_singleton=True)
    b = FileLock(lock_path)
    assert a is not b and not b.is_singleton


def test_differing_arguments_raise(lock_path: str) -> None:
    a = FileLock(lock_path, timeout=1, is_singleton=True)
    for kwargs in ({"timeout": 2}, {"mode": 0o600}, {"thread_local": False}, {"blocking": False}):
        with pytest.raises(ValueError):
            FileLock(lock_path, is_singleton=True, **{"timeout": 1, **kwargs})
    with pytest.raises(ValueError):
        SoftFileLock(lock_path, timeout=1, is_singleton=True)
    assert FileLock(lock_path, timeout=1, is_singleton=True) is a


def test_held_instance_not_reinitialised(lock_path: str) -> None:
    a = FileLock(lock_path, is_singleton=True)
    a.acquire()
    a.acquire()
    b = FileLock(lock_path, is_singleton=True)
    assert b is a and b.is_locked and b.lock_counter == 2
    b.release(force=True)


def test_fresh_object_after_last_reference_dropped(lock_path: str) -> None:
    a = FileLock(lock_path, is_singleton=True, timeout=1)
    a.acquire()
    del a
    gc.collect()
    # The old one is gone (and released): other settings are fine now.
    b = FileLock(lock_path, is_singleton=True, timeout=2)
    assert b.timeout == 2
    b.acquire(timeout=0)
    b.release()


def test_singleton_avoids_self_deadlock(lock_path: str) -> None:
    a = FileLock(lock_path, is_singleton=True)
    with a:
        with FileLock(lock_path, is_singleton=True):  # re-entrant, not a deadlock
            assert a.lock_counter == 2


def test_singleton_from_many_threads(lock_path: str) -> None:
    got: list[FileLock] = []
    mu = threading.Lock()

    def make() -> None:
        lock = FileLock(lock_path, is_singleton=True)
        with mu:
            got.append(lock)

    threads = [threading.Thread(target=make) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(got) == 20 and all(x is got[0] for x in got)
