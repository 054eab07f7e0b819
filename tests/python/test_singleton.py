"""is_singleton: one object per lock file, never re-initialised."""

from __future__ import annotations

import gc
import sys
import threading
from pathlib import Path

import pytest

from filelock import FileLock, SoftFileLock, Timeout


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


PURE_PREFIX = "Singleton lock instances cannot be initialized with differing arguments"


def test_differing_arguments_message_is_the_pure_packages(lock_path: str) -> None:
    a = FileLock(lock_path, timeout=1, is_singleton=True)
    with pytest.raises(ValueError) as info:
        FileLock(lock_path, timeout=2, is_singleton=True)
    # 3.32's text exactly (each differing argument, the values as given);
    # the core's refusal, naming the lock file, as a note.
    assert str(info.value) == (
        PURE_PREFIX + "\nNon-matching arguments: \n\ttimeout (existing lock has 1 but 2 was passed)"
    )
    if sys.version_info >= (3, 11):
        assert lock_path in info.value.__notes__[0]
    del a, info
    gc.collect()
    # Nothing left to differ from.
    assert FileLock(lock_path, timeout=2, is_singleton=True).timeout == 2


def test_registry_shape_per_class(lock_path: str) -> None:
    import weakref

    class MyLock(FileLock):
        pass

    assert isinstance(FileLock._instances, weakref.WeakValueDictionary)
    assert MyLock._instances is not FileLock._instances
    assert SoftFileLock._instances is not FileLock._instances
    a = FileLock(lock_path, is_singleton=True)
    key = str(Path(lock_path).parent.resolve() / Path(lock_path).name)
    assert FileLock._instances.get(key) is a
    # A subclass keeps its own object, and its own lock (test_other_class_is_another_lock).
    m = MyLock(lock_path, is_singleton=True)
    assert m is not a and MyLock._instances.get(key) is m
    # Non-singletons are never registered.
    FileLock(lock_path + ".other")
    assert list(FileLock._instances.keys()) == [key]
    del a
    gc.collect()
    assert key not in FileLock._instances
    assert MyLock._instances.get(key) is m


def test_spare_reference_never_releases(lock_path: str) -> None:
    a = FileLock(lock_path, is_singleton=True)
    a.acquire()
    for _ in range(3):
        assert FileLock(lock_path, is_singleton=True) is a
    gc.collect()
    # The objects built and dropped by the lookups did not release a's hold.
    assert a.is_locked and a.lock_counter == 1
    probe = FileLock(lock_path, timeout=0)
    with pytest.raises(Exception):  # noqa: B017 - Timeout or deadlock refusal, both mean "held"
        probe.acquire()
    a.release()


def test_key_is_the_cores(lock_path: str, tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "alias").symlink_to(real)
    a = FileLock(str(tmp_path / "alias" / "x.lock"), is_singleton=True)
    b = FileLock(str(real / "x.lock"), is_singleton=True)
    assert a is b
    assert list(FileLock._instances.keys()) == [str(real.resolve() / "x.lock")]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"context_error_policy": "group"},
        {"close_error_policy": "suppress"},
        {"close_error_policy": "raise"},
        {"fallback_to_soft": False},
        {"preserve_lock_file": True},
        {"on_acquired": lambda fd: None},
    ],
    ids=lambda kw: next(iter(kw)),
)
def test_differing_new_options_raise(lock_path: str, kwargs: dict) -> None:
    """The options the Python layer keeps (context/close policies) and those
    the core keeps (soft fallback, on_acquired) both refuse a second,
    different construction, and leave the first object as it was."""
    a = FileLock(lock_path, is_singleton=True)
    with pytest.raises(ValueError) as info:
        FileLock(lock_path, is_singleton=True, **kwargs)
    assert str(info.value).startswith(PURE_PREFIX)
    assert FileLock(lock_path, is_singleton=True) is a
    assert (a.context_error_policy, a.close_error_policy, a.fallback_to_soft, a.preserve_lock_file) == (
        "chain",
        "default",
        True,
        False,
    )
    assert a.on_acquired is None
    with a:
        assert a.lock_counter == 1


def test_python_only_option_lists_the_argument_as_pure(lock_path: str) -> None:
    a = FileLock(lock_path, is_singleton=True, close_error_policy="raise")
    with pytest.raises(ValueError) as info:
        FileLock(lock_path, is_singleton=True, close_error_policy="suppress", context_error_policy="group")
    assert str(info.value) == (
        PURE_PREFIX + "\nNon-matching arguments: "
        "\n\tcontext_error_policy (existing lock has chain but group was passed)"
        "\n\tclose_error_policy (existing lock has raise but suppress was passed)"
    )
    assert FileLock(lock_path, is_singleton=True, close_error_policy="raise") is a


def test_same_on_acquired_object_is_the_same_singleton(lock_path: str) -> None:
    seen: list[int] = []
    hook = seen.append
    a = FileLock(lock_path, is_singleton=True, on_acquired=hook)
    assert FileLock(lock_path, is_singleton=True, on_acquired=hook) is a
    with a:
        pass
    assert len(seen) == 1 and a.on_acquired is hook


def test_singleton_logs_id_of_the_registered_object(lock_path: str, caplog: pytest.LogCaptureFixture) -> None:
    import logging

    caplog.set_level(logging.DEBUG, logger="filelock")
    a = FileLock(lock_path, is_singleton=True)
    # Each lookup builds (and drops) a spare object around the same core handle:
    # the log id must stay that of the object the caller gets.
    for _ in range(3):
        assert FileLock(lock_path, is_singleton=True) is a
    gc.collect()
    with a:
        pass
    got = [r.getMessage() for r in caplog.records if r.name == "filelock"]
    assert got and all(f" {id(a)} " in m for m in got), got


@pytest.mark.parametrize("other_cls", ["subclass", "SoftFileLock"])
def test_other_class_is_another_lock(lock_path: str, other_cls: str) -> None:
    # As 3.32, whose registries are per class: a singleton of another class on
    # the same lock file is another lock object with its own hold and
    # settings. Sharing the core handle across classes let the other object
    # see (is_locked), release (force) and re-configure (close_error_policy)
    # a hold it never made.
    class MyLock(FileLock):
        pass

    a = FileLock(lock_path, is_singleton=True, close_error_policy="raise", timeout=1)
    if other_cls == "subclass":
        b = MyLock(lock_path, is_singleton=True, close_error_policy="suppress", timeout=2)
    else:
        b = SoftFileLock(lock_path, is_singleton=True, timeout=2)  # no ValueError: another class
    assert b is not a and b.timeout == 2 and a.timeout == 1
    assert type(b)(lock_path, is_singleton=True, timeout=2, **(
        {"close_error_policy": "suppress"} if other_cls == "subclass" else {}
    )) is b
    a.acquire()
    try:
        assert not b.is_locked and b.lock_counter == 0
        b.release(force=True)  # not b's hold: nothing to release
        assert a.is_locked and a.lock_counter == 1
        if other_cls == "subclass":
            # Another descriptor on the file: the kernel lock excludes it.
            with pytest.raises(Timeout):
                b.acquire(timeout=0)
            assert a.close_error_policy == "raise" and b.close_error_policy == "suppress"
    finally:
        a.release()
    if other_cls == "subclass":  # (a soft marker would be the kernel lock's file here)
        with b:
            assert b.is_locked and not a.is_locked
