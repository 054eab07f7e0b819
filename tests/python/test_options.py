"""The option defaults live in the core (fl_options_init); the Python
signatures keep the pure-Python package's literals, so they are checked
against the core here."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys

import pytest

from filelock import AsyncFileLock, AsyncSoftFileLock, FileLock, ReadWriteLock, SoftFileLease, SoftFileLock
from filelock import _filelock_core as core
from filelock import _lease_opts


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


# A lease's settings: the default duration is the core's constant, the
# heartbeat's default the core's rule, and the checks the core's
# (fl_options_check), in the pure package's words with the lock file after.
PURE_NEW = os.environ.get("FL_PURE_FILELOCK_DIR", "/work/pure/newest/src")


def test_lease_defaults_are_the_cores(lock_path: str) -> None:
    params = inspect.signature(SoftFileLease.__init__).parameters
    assert params["lease_duration"].default == core.FL_LEASE_DEFAULT_DURATION
    assert params["heartbeat_interval"].default is None
    lease = SoftFileLease(lock_path)
    assert lease.lease_duration == core.FL_LEASE_DEFAULT_DURATION
    assert lease.heartbeat_interval == core.FL_LEASE_DEFAULT_DURATION / core.FL_LEASE_HEARTBEAT_DIVISOR
    # No heartbeat given: the handle's options leave the field to the core.
    o = core.new_fl_options()
    core.fl_options_kind_set(o, core.FL_SOFT)
    core.fl_options_set_lease_duration(o, 7.5)
    assert core.fl_options_given_get(o) == core.FL_OPT_LEASE_DURATION
    h = core.flpy_new(lock_path.encode(), o)
    assert core.fl_get_heartbeat_interval(h) == 7.5 / core.FL_LEASE_HEARTBEAT_DIVISOR


def test_lease_values_are_checked_by_the_core_only(lock_path: str) -> None:
    # The binding maps types only: values it would once have refused pass
    # through it untouched, and the core refuses them.
    assert _lease_opts.lease_settings(0, 0) == (0.0, 0.0)
    assert _lease_opts.lease_settings(-1, None) == (-1.0, None)
    with pytest.raises(TypeError, match="lease_duration must be a number, not str"):
        _lease_opts.lease_settings("30", None)
    o = core.new_fl_options()
    core.fl_options_set_heartbeat_interval(o, 0.0)
    with pytest.raises(ValueError, match="^heartbeat_interval needs lease_duration$"):
        core.fl_options_check(o)
    # The fields are set through the core's setters only (which mark them given).
    assert not hasattr(core, "fl_options_lease_duration_set")
    assert not hasattr(core, "fl_options_heartbeat_interval_set")


@pytest.mark.parametrize(
    ("kwargs", "value"),
    [
        ({"lease_duration": 0}, "0"),
        ({"lease_duration": -1}, "-1"),
        ({"lease_duration": -0.5}, "-0.5"),
        ({"lease_duration": 3, "heartbeat_interval": 0}, "0"),
        ({"lease_duration": 3, "heartbeat_interval": 5}, "5"),
        ({"lease_duration": 3, "heartbeat_interval": 3.0000000000000004}, "3.0000000000000004"),
        # printf's %g once wrote these "1e+02", "3e+01" and "1.5e+03".
        ({"lease_duration": 5, "heartbeat_interval": 100}, "100"),
        ({"lease_duration": 30, "heartbeat_interval": 30}, "30"),
        ({"lease_duration": 5, "heartbeat_interval": 1500}, "1500"),
    ],
)
def test_lease_messages_are_the_pure_packages(lock_path: str, kwargs: dict[str, float], value: str) -> None:
    with pytest.raises(ValueError) as ours:
        SoftFileLease(lock_path, **kwargs)
    code = (
        f"import sys; sys.path.insert(0, {PURE_NEW!r})\n"
        "from filelock import SoftFileLease\n"
        f"try:\n    SoftFileLease({lock_path!r}, **{kwargs!r})\n"
        "except ValueError as e:\n    print(e)\n"
    )
    if not os.path.isdir(PURE_NEW):
        pytest.skip(f"the pure package 3.32 is not at {PURE_NEW}")
    pure = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, timeout=60, check=True)
    words = pure.stdout.strip()
    assert words.endswith(f"got {value}"), words
    assert str(ours.value) == f"{words} (lock file '{lock_path}')"


def test_lifetime_value_checked_by_the_core(lock_path: str) -> None:
    # Refused for a class that would ignore it, too (the pure package checks first).
    with pytest.raises(ValueError, match="^lifetime must be finite and non-negative, not -2.5$"):
        FileLock(lock_path, lifetime=-2.5)
    with pytest.raises(ValueError, match="^lifetime must be finite and non-negative, not nan$"):
        SoftFileLock(lock_path, lifetime=float("nan"))


# A lease setting of the wrong type, or an int no double holds: the error
# names the setting and the lock file (the bare "must be a number" and
# float()'s "int too large to convert to float" named neither); the
# exception classes are the pure package's for the huge ints.
@pytest.mark.parametrize(
    ("kwargs", "exc", "words"),
    [
        ({"lease_duration": "30"}, TypeError, "lease_duration must be a number, not str"),
        ({"heartbeat_interval": 1j}, TypeError, "heartbeat_interval must be a number, not complex"),
        ({"lease_duration": 10**400}, OverflowError, "lease_duration too large for a float"),
        (
            {"lease_duration": 5, "heartbeat_interval": 10**400},
            ValueError,
            f"heartbeat_interval must be positive and below lease_duration, got {10**400!r}",
        ),
    ],
)
def test_lease_bad_types_name_the_lock_file(lock_path: str, kwargs: dict[str, object], exc: type, words: str) -> None:
    with pytest.raises(exc) as err:
        SoftFileLease(lock_path, **kwargs)
    assert str(err.value) == f"{words} (lock file '{lock_path}')"
