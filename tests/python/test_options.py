"""The option defaults live in the core (fl_options_init); the Python
signatures keep the pure-Python package's literals, so they are checked
against the core here."""

from __future__ import annotations

import inspect

import pytest

from filelock import AsyncFileLock, AsyncSoftFileLock, FileLock, ReadWriteLock, SoftFileLease, SoftFileLock
from filelock import _filelock_core as core


def _core_defaults() -> dict[str, object]:
    o = core.new_fl_options()
    return {
        "timeout": core.fl_options_timeout_get(o),
        "poll_interval": core.fl_options_poll_interval_get(o),
        "blocking": bool(core.fl_options_blocking_get(o)),
        "mode": core.fl_options_mode_get(o),
        "thread_local": bool(core.fl_options_thread_local_get(o)),
        "is_singleton": bool(core.fl_options_singleton_get(o)),
    }


@pytest.mark.parametrize("cls", [FileLock, SoftFileLock, SoftFileLease, AsyncFileLock, AsyncSoftFileLock])
def test_lock_signature_defaults_are_the_cores(cls: type) -> None:
    params = inspect.signature(cls.__init__).parameters
    want = _core_defaults()
    names = ["timeout", "poll_interval", "blocking", "mode", "is_singleton"]
    if not cls.__name__.startswith("Async"):
        # The async classes default to thread_local=False, as the pure
        # package's do (a hold belongs to the lock object, not to a task).
        names.append("thread_local")
    for name in names:
        assert params[name].default == want[name], name


def test_read_write_signature_defaults_are_the_cores() -> None:
    want = _core_defaults()
    params = inspect.signature(ReadWriteLock.__init__).parameters
    assert params["timeout"].default == want["timeout"]
    assert params["blocking"].default == want["blocking"]
    # acquire_read/acquire_write take the pure package's "forever, blocking".
    for meth in (ReadWriteLock.acquire_read, ReadWriteLock.acquire_write):
        p = inspect.signature(meth).parameters
        assert p["timeout"].default == want["timeout"]
        assert p["blocking"].default == want["blocking"]


def test_defaults_reach_the_handle(lock_path: str) -> None:
    want = _core_defaults()
    lock = FileLock(lock_path)
    assert lock.timeout == want["timeout"]
    assert lock.poll_interval == want["poll_interval"]
    assert lock.blocking is want["blocking"]
    assert lock.is_thread_local() is want["thread_local"]
    rw = ReadWriteLock(lock_path + ".rw", is_singleton=False)
    assert rw.timeout == want["timeout"] and rw.blocking is want["blocking"]
    # ReadWriteLock has no poll_interval argument: the core's default applies.
    assert core.fl_get_poll_interval(rw._h) == want["poll_interval"]


def test_options_object_is_the_cores(lock_path: str) -> None:
    o = core.new_fl_options()
    core.fl_options_timeout_set(o, 2.5)
    core.fl_options_kind_set(o, core.FL_SOFT)
    h = core.flpy_new(lock_path.encode(), o)
    assert core.fl_get_timeout(h) == 2.5
    assert core.fl_lock_kind(h) == core.FL_SOFT
    # The version is the core's business.
    assert not hasattr(core, "fl_options_version_set")
    core.fl_options_poll_interval_set(o, -1.0)
    with pytest.raises(ValueError, match="poll"):
        core.flpy_new(lock_path.encode(), o)
    with pytest.raises(ValueError):
        core.flpy_new(lock_path.encode(), h)  # a lock handle is not an options object
