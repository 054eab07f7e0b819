"""What users of the pure-Python ``filelock`` can observe, compared with it.

Each scenario runs in a child process once per implementation: ours (the
build's package), Debian's ``python3-filelock`` (3.9) and the newest release
(3.32, from ``FL_PURE_NEWEST_DIR``, default /work/pure/newest/src); a
scenario is compared with each release that has the behaviour, and skipped
for one that is not installed (CI has Debian's; the newest is optional).
"""

from __future__ import annotations

import copy
import json
import logging
import os
import pickle
import pydoc
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

import filelock
from filelock import FileLock, SoftFileLock, Timeout, _filelock_core

from conftest import DEADLINE, PURE_DIR, ours_env, pure_env

NEWEST_DIR = os.environ.get("FL_PURE_NEWEST_DIR", "/work/pure/newest/src")


def impl_available(impl: str) -> str | None:
    """None when *impl* can run here, else the reason to skip."""
    if impl == "debian" and not os.path.exists(os.path.join(PURE_DIR, "filelock", "__init__.py")):
        return "Debian's python3-filelock is not installed"
    if impl == "newest" and not os.path.exists(os.path.join(NEWEST_DIR, "filelock", "__init__.py")):
        return f"the newest pure-Python filelock is not unpacked at {NEWEST_DIR} (FL_PURE_NEWEST_DIR)"
    return None


def prelude(impl: str) -> str:
    """Code that imports *impl*'s filelock and proves it is that one."""
    code = "import sys, json\n"
    if impl == "newest":
        code += f"sys.path.insert(0, {NEWEST_DIR!r})\n"
    code += "import filelock\n"
    if impl == "ours":
        code += "assert hasattr(filelock, '_filelock_core'), filelock.__file__\n"
    elif impl == "newest":
        code += f"assert filelock.__file__.startswith({NEWEST_DIR!r}), filelock.__file__\n"
    else:
        code += f"assert filelock.__file__.startswith({PURE_DIR!r}), filelock.__file__\n"
    return code


def run(impl: str, code: str) -> Any:
    """Runs *code* (which sets ``result``) under *impl*; returns ``result`` via JSON."""
    reason = impl_available(impl)
    if reason:
        pytest.skip(reason)
    full = prelude(impl) + code + "\nprint(json.dumps(result))\n"
    args = [sys.executable, "-c", full] if impl == "ours" else [sys.executable, "-I", "-c", full]
    proc = subprocess.run(
        args,
        env=ours_env() if impl == "ours" else pure_env(),
        capture_output=True,
        text=True,
        timeout=DEADLINE * 2,
        check=False,
    )
    assert proc.returncode == 0, f"{impl}: exit {proc.returncode}\n{proc.stderr}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ---- log messages ----------------------------------------------------------

LOG_SETUP = """
import logging, re
msgs = []
class Collect(logging.Handler):
    def emit(self, record):
        msgs.append(record.getMessage())
log = logging.getLogger("filelock")
log.addHandler(Collect())
log.setLevel(logging.DEBUG)
from filelock import FileLock, SoftFileLock, Timeout
ids = {}
def named(lock, name):
    ids[str(id(lock))] = name
    return lock
def attempt(lock, **kw):
    try:
        lock.acquire(**kw)
    except Timeout:
        msgs.append("-- Timeout")
def normalised():
    # The ids as names; within one acquire, each distinct line once (the
    # pure package repeats "Attempting"/"waiting" at every poll, ours waits
    # for the release and logs them once).
    out, seen = [], set()
    for m in msgs:
        for k, v in ids.items():
            m = m.replace(" " + k + " ", " " + v + " ")
        if m in seen:
            continue
        seen.add(m)
        out.append(m)
        if m.startswith(("--", "Cancellation", "Timeout on", "Failed to")) \\
                or re.match(r"Lock \\S+ (acquired|released) on ", m):
            seen = set()
    return out
"""

IMPLS = ["debian", "newest"]
KINDS = ["FileLock", "SoftFileLock"]


def log_scenario(kind: str, path: str) -> str:
    return LOG_SETUP + f"""
a, b = named({kind}({path!r}), "A"), named({kind}({path!r}), "B")
with a:
    with a:
        pass
    attempt(b, blocking=False)
    attempt(b, timeout=0)
    attempt(b, timeout=0.12, poll_interval=0.05)
attempt(b, timeout=0)
b.release()
b.release()
# The level switched while the lock is held: the release is logged ...
log.setLevel(logging.INFO)
a.acquire()
log.setLevel(logging.DEBUG)
a.release()
# ... and switched off: nothing.
a.acquire()
log.setLevel(logging.INFO)
a.release()
result = normalised()
"""


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("kind", KINDS)
def test_log_messages_identical(tmp_path: Path, impl: str, kind: str) -> None:
    path = str(tmp_path / "log.lock")
    theirs = run(impl, log_scenario(kind, path))
    ours = run("ours", log_scenario(kind, path))
    assert ours == theirs
    # The scenario saw every kind of line, so the comparison covers them.
    text = "\n".join(ours)
    for needle in (
        "Attempting to acquire lock A",
        "Lock A acquired on",
        "Failed to immediately acquire lock B",
        "Timeout on acquiring lock B",
        "Lock B not acquired on " + path + ", waiting 0.05 seconds ...",
        "Attempting to release lock A",
        "Lock A released on",
    ):
        assert needle in text, ours


def test_cancellation_message_as_newest(tmp_path: Path) -> None:
    path = str(tmp_path / "cancel.lock")
    code = LOG_SETUP + f"""
a, b = named(FileLock({path!r}), "A"), named(FileLock({path!r}), "B")
calls = []
def check():
    calls.append(1)
    return len(calls) >= 3
with a:
    attempt(b, timeout=60, poll_interval=0.02, cancel_check=check)
result = dict(msgs=normalised(), calls=len(calls), counter=b.lock_counter, locked=b.is_locked)
"""
    theirs = run("newest", code)
    ours = run("ours", code)
    assert ours == theirs
    i = ours["msgs"].index("Cancellation requested for lock B on " + path)
    assert ours["msgs"][i + 1] == "-- Timeout"


def test_log_id_is_id_of_lock(lock_path: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="filelock")
    lock = FileLock(lock_path)
    with lock:
        pass
    got = [r.getMessage() for r in caplog.records if r.name == "filelock"]
    assert got == [
        f"Attempting to acquire lock {id(lock)} on {lock_path}",
        f"Lock {id(lock)} acquired on {lock_path}",
        f"Attempting to release lock {id(lock)} on {lock_path}",
        f"Lock {id(lock)} released on {lock_path}",
    ]


def test_log_level_switched_on_during_wait(lock_path: str) -> None:
    """DEBUG switched on while a thread waits: its "acquired" line is logged."""
    log = logging.getLogger("filelock")
    seen: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    handler = Collect()
    log.addHandler(handler)
    old = log.level
    log.setLevel(logging.INFO)
    holder, waiter = FileLock(lock_path), FileLock(lock_path)
    try:
        holder.acquire()
        errors: list[BaseException] = []

        def wait() -> None:
            try:
                waiter.acquire(timeout=DEADLINE)
                waiter.release()
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        t = threading.Thread(target=wait)
        t.start()
        log.setLevel(logging.DEBUG)
        # The waiter follows the level at its next wake-up (the core wakes
        # it at least every 50 ms to run signal handlers): wait until it did.
        deadline = DEADLINE
        import time

        start = time.monotonic()
        while not _filelock_core.flpy_logging_enabled():
            assert time.monotonic() - start < deadline, "the waiter never re-read the level"
            time.sleep(0.01)
        holder.release()
        t.join(DEADLINE)
        assert not t.is_alive() and not errors, errors
    finally:
        log.setLevel(old)
        log.removeHandler(handler)
        holder.release(force=True)
    assert f"Lock {id(waiter)} acquired on {lock_path}" in seen, seen
    assert f"Lock {id(waiter)} released on {lock_path}" in seen, seen


# ---- bad paths ----------------------------------------------------------------

ERR = """
def err(f):
    try:
        f()
    except BaseException as e:
        return [type(e).__name__, str(e), getattr(e, "errno", None), getattr(e, "filename", None)]
    return None
"""


def bad_path_scenario(kind: str, directory: str) -> str:
    return ERR + f"""
from filelock import {kind} as cls
result = dict(
    empty=err(lambda: cls("").acquire(timeout=0)),
    nul=err(lambda: cls("a\\0b").acquire(timeout=0)),
    directory=err(lambda: cls({directory!r}).acquire(timeout=0)),
    parent_is_file=err(lambda: cls("/proc/self/status/x.lock").acquire(timeout=0)),
)
"""


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("kind", KINDS)
def test_bad_paths_as_pure(tmp_path: Path, impl: str, kind: str) -> None:
    theirs = run(impl, bad_path_scenario(kind, str(tmp_path)))
    ours = run("ours", bad_path_scenario(kind, str(tmp_path)))
    assert ours["empty"] == theirs["empty"] == ["FileNotFoundError", "[Errno 2] No such file or directory: ''", 2, ""]
    assert ours["nul"] == theirs["nul"] == ["ValueError", "embedded null byte", None, None]
    if impl == "newest" or kind == "FileLock":
        # 3.9's SoftFileLock reports a directory as a Timeout (a bug fixed since).
        assert ours["directory"] == theirs["directory"]
        assert ours["directory"][0] == "IsADirectoryError"
    if impl == "debian" and kind == "FileLock":
        # The newest release reports what its makedirs of the parent hit
        # (FileExistsError on the parent); we report the lock path, as 3.9.
        assert ours["parent_is_file"] == theirs["parent_is_file"]
        assert ours["parent_is_file"][0] == "NotADirectoryError"


def test_oserror_keeps_core_reason_as_note(tmp_path: Path) -> None:
    with pytest.raises(IsADirectoryError) as info:
        FileLock(str(tmp_path)).acquire(timeout=0)
    assert info.value.strerror == os.strerror(info.value.errno)
    assert info.value.filename == str(tmp_path)
    if sys.version_info >= (3, 11):
        assert any(str(tmp_path) in n for n in info.value.__notes__), info.value.__notes__


# ---- Timeout ----------------------------------------------------------------------


TIMEOUT_SCENARIO = """
import copy, pickle
from filelock import Timeout
t = Timeout("x.lock")
def show(e):
    return [type(e).__name__, repr(e), str(e), list(e.args), e.lock_file, isinstance(e, TimeoutError)]
result = dict(plain=show(t), copy=show(copy.copy(t)), deep=show(copy.deepcopy(t)),
              pickled=show(pickle.loads(pickle.dumps(t))))
"""


@pytest.mark.parametrize("impl", ["newest"])
def test_timeout_as_pure(impl: str) -> None:
    assert run("ours", TIMEOUT_SCENARIO) == run(impl, TIMEOUT_SCENARIO)


@pytest.mark.skipif(sys.version_info < (3, 11), reason="add_note is Python 3.11+")
@pytest.mark.parametrize(
    "clone",
    [copy.copy, copy.deepcopy, lambda e: pickle.loads(pickle.dumps(e))],
    ids=["copy", "deepcopy", "pickle"],
)
def test_timeout_keeps_notes_and_attributes(clone: Any) -> None:
    t = Timeout("/x/y.lock")
    t.add_note("while updating the cache")
    t.retry_after = 5
    got = clone(t)
    assert type(got) is Timeout
    assert got.lock_file == "/x/y.lock"
    assert str(got) == "The file lock '/x/y.lock' could not be acquired."
    assert got.__notes__ == ["while updating the cache"]
    assert got.retry_after == 5
    assert got.args == ()


# ---- introspection, pickling ---------------------------------------------------------


def test_help_shows_no_internals() -> None:
    text = pydoc.render_doc(FileLock, renderer=pydoc.plaintext)
    assert "_force_release" not in text
    assert "built-in function" not in text
    assert "flpy_" not in text
    assert "cancel_check" in text


def test_annotations() -> None:
    import inspect

    sig = inspect.signature(FileLock.acquire)
    assert sig.parameters["cancel_check"].annotation == "Callable[[], bool] | None"
    assert sig.return_annotation == "AcquireReturnProxy"
    hints = inspect.get_annotations(FileLock.acquire)
    assert set(hints) == {"timeout", "poll_interval", "poll_intervall", "blocking", "cancel_check", "return"}


PICKLE_SCENARIO = ERR + """
import copy, pickle
from filelock import FileLock
lock = FileLock(LOCK_PATH)
result = dict(pickle=err(lambda: pickle.dumps(lock))[0], deepcopy=err(lambda: copy.deepcopy(lock))[0])
"""


@pytest.mark.parametrize("impl", IMPLS)
def test_pickle_and_deepcopy_are_type_errors(lock_path: str, impl: str) -> None:
    code = f"LOCK_PATH = {lock_path!r}\n" + PICKLE_SCENARIO
    assert run("ours", code) == run(impl, code) == {"pickle": "TypeError", "deepcopy": "TypeError"}


@pytest.mark.parametrize("cls", [FileLock, SoftFileLock])
def test_pickle_and_copy_say_why(lock_path: str, cls: type) -> None:
    lock = cls(lock_path)
    with pytest.raises(TypeError, match=f"cannot pickle '{cls.__name__}' object: it owns an OS lock"):
        pickle.dumps(lock)
    # A shallow copy would share (and on collection force-release) the handle.
    with pytest.raises(TypeError, match=f"cannot copy '{cls.__name__}' object"):
        copy.copy(lock)
    with lock:
        with pytest.raises(TypeError):
            copy.deepcopy(lock)
        assert lock.is_locked


# ---- cancel_check ----------------------------------------------------------------


@pytest.mark.parametrize("cls", [FileLock, SoftFileLock])
def test_cancel_check_ends_wait_with_timeout(lock_path: str, cls: type) -> None:
    holder, waiter = cls(lock_path), cls(lock_path)
    calls = 0

    def check() -> bool:
        nonlocal calls
        calls += 1
        return calls >= 3

    with holder:
        with pytest.raises(Timeout) as info:
            waiter.acquire(timeout=DEADLINE, cancel_check=check)
        assert info.value.lock_file == lock_path
    assert calls == 3
    assert waiter.lock_counter == 0 and not waiter.is_locked
    # The handle's own behaviour is untouched: it still acquires.
    with waiter.acquire(timeout=DEADLINE, cancel_check=check):
        assert waiter.is_locked


def test_cancel_check_not_called_when_free(lock_path: str) -> None:
    def check() -> bool:
        raise AssertionError("called although the lock was free")

    lock = FileLock(lock_path)
    with lock.acquire(cancel_check=check):
        with lock.acquire(cancel_check=check):  # recursion: no wait either
            assert lock.lock_counter == 2


def test_cancel_check_exception_propagates(lock_path: str) -> None:
    holder, waiter = FileLock(lock_path), FileLock(lock_path)

    class Stop(Exception):
        pass

    def check() -> bool:
        raise Stop("from cancel_check")

    with holder:
        with pytest.raises(Stop, match="from cancel_check"):
            waiter.acquire(timeout=DEADLINE, cancel_check=check)
    assert waiter.lock_counter == 0


def test_cancel_check_must_be_callable(lock_path: str) -> None:
    holder, waiter = FileLock(lock_path), FileLock(lock_path)
    with holder:
        with pytest.raises(TypeError, match="cancel_check must be callable"):
            waiter.acquire(timeout=0, cancel_check=42)  # type: ignore[arg-type]


def test_cancel_check_shared_handle_waiting_for_other_thread(lock_path: str) -> None:
    """A thread of a non-thread-local lock waiting for another thread's attempt
    is cancelled by its own cancel_check too."""
    holder = FileLock(lock_path)
    shared = FileLock(lock_path, thread_local=False)
    holder.acquire()
    started = threading.Event()
    errors: list[BaseException] = []

    def first() -> None:
        started.set()
        try:
            shared.acquire(timeout=DEADLINE)
            shared.release()
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    t = threading.Thread(target=first)
    t.start()
    started.wait(DEADLINE)
    calls = 0

    def check() -> bool:
        nonlocal calls
        calls += 1
        return calls >= 2

    try:
        with pytest.raises(Timeout):
            shared.acquire(timeout=DEADLINE, cancel_check=check)
        assert calls >= 2
    finally:
        holder.release()
        t.join(DEADLINE)
    assert not errors, errors


# ---- lock_descriptor ---------------------------------------------------------------


DESCRIPTOR_ERRORS = ERR + """
import os
from filelock import lock_descriptor, unlock_descriptor
fd = os.open(LOCK_PATH, os.O_RDWR | os.O_CREAT)
result = {}
for value in (0, 0.0, -1, -0.5, float("nan"), float("inf")):
    result[repr(value)] = err(lambda: lock_descriptor(fd, poll_interval=value))
result["nonblocking_bad_poll"] = err(lambda: (lock_descriptor(fd, blocking=False, poll_interval=0), unlock_descriptor(fd)))
os.close(fd)
result["closed"] = err(lambda: lock_descriptor(fd))
result["closed_nb"] = err(lambda: lock_descriptor(fd, blocking=False))
result["closed_unlock"] = err(lambda: unlock_descriptor(fd))
result["negative"] = err(lambda: lock_descriptor(-1))
result["str"] = err(lambda: lock_descriptor("3"))[0]
"""


def test_lock_descriptor_errors_as_newest(lock_path: str) -> None:
    code = f"LOCK_PATH = {lock_path!r}\n" + DESCRIPTOR_ERRORS
    ours, theirs = run("ours", code), run("newest", code)
    assert ours == theirs
    assert ours["0.0"] == ["ValueError", "poll_interval must be finite and greater than 0, got 0.0", None, None]
    assert ours["closed"][:3] == ["OSError", "[Errno 9] Bad file descriptor", 9]


def test_lock_descriptor_contends_with_filelock(lock_path: str) -> None:
    from filelock import lock_descriptor, unlock_descriptor

    lock = FileLock(lock_path)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        assert lock_descriptor(fd) is True
        with pytest.raises(Timeout):
            lock.acquire(timeout=0)
        unlock_descriptor(fd)
        with lock:
            assert lock_descriptor(fd, blocking=False) is False
        # A file object works too (anything with fileno(), as fcntl.flock).
        with open(fd, "rb", closefd=False) as f:
            assert lock_descriptor(f, blocking=False) is True
            unlock_descriptor(f)
        # The descriptor is still the caller's, open.
        os.fstat(fd)
    finally:
        os.close(fd)


def test_lock_descriptor_blocking_wakes_on_release(lock_path: str) -> None:
    from filelock import lock_descriptor, unlock_descriptor

    lock = FileLock(lock_path)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    got: list[bool] = []
    lock.acquire()
    t = threading.Thread(target=lambda: got.append(lock_descriptor(fd)))
    t.start()
    try:
        t.join(0.2)
        assert t.is_alive() and not got  # waiting for the holder
    finally:
        lock.release()
    t.join(DEADLINE)
    assert got == [True]
    unlock_descriptor(fd)
    os.close(fd)


# ---- owner inspection --------------------------------------------------------------


OWNER_SCENARIO = ERR + """
import os
from filelock import SoftFileLock
lock = SoftFileLock(LOCK_PATH)
result = dict(free=[lock.pid, lock.is_lock_held_by_us, err(lock.break_lock)])
lock.acquire()
result["held"] = [lock.pid == os.getpid(), type(lock.pid).__name__, lock.is_lock_held_by_us]
lock.break_lock()
result["broken"] = [os.path.exists(LOCK_PATH), lock.pid, lock.is_lock_held_by_us]
with open(LOCK_PATH, "w") as f:
    f.write("garbage")
result["garbage"] = [lock.pid, lock.is_lock_held_by_us]
os.unlink(LOCK_PATH)
os.mkdir(LOCK_PATH)
result["directory"] = [lock.pid, lock.is_lock_held_by_us]
"""


def test_owner_inspection_as_newest(tmp_path: Path) -> None:
    def code(name: str) -> str:
        return f"LOCK_PATH = {str(tmp_path / name)!r}\n" + OWNER_SCENARIO

    assert run("ours", code("ours.lock")) == run("newest", code("newest.lock"))


# ---- public names ------------------------------------------------------------------


def test_all_lists_exactly_what_we_provide() -> None:
    for name in filelock.__all__:
        assert getattr(filelock, name, None) is not None, name
    public = {n for n in vars(filelock) if not n.startswith("_") and not isinstance(getattr(filelock, n), type(os))}
    public -= {"annotations", "TYPE_CHECKING", "sys"}
    assert public == set(filelock.__all__) - {"__version__"}


def test_no_name_we_do_not_implement() -> None:
    # The newest release's names we decided not to provide (strict and
    # marker soft locks: docs/soft-lock-protocol.md says why) are not
    # exported; everything we export is implemented (the test above).
    for name in (
        "StrictSoftFileLock",
        "AsyncStrictSoftFileLock",
        "StrictSoftFileClaim",
        "MarkerSoftFileLock",
    ):
        assert not hasattr(filelock, name), name
    # What issues 16, 17 and 20 added is exported.
    for name in (
        "lock_descriptor",
        "unlock_descriptor",
        "SoftFileLease",
        "LeaseCompromise",
        "AsyncFileLock",
        "AsyncSoftFileLock",
        "AsyncSoftFileLease",
        "AsyncReadWriteLock",
        "BaseAsyncFileLock",
    ):
        assert name in filelock.__all__, name


# ---- constructor options (3.30) ---------------------------------------------------


OPTIONS_SCENARIO = ERR + """
from filelock import FileLock, SoftFileLock
p = LOCK_PATH
result = dict(
    ctx=err(lambda: FileLock(p, context_error_policy="nest")),
    close=err(lambda: FileLock(p, close_error_policy="loud")),
    preserve_soft=err(lambda: SoftFileLock(p, preserve_lock_file=True)),
    hook_soft=err(lambda: SoftFileLock(p, on_acquired=print)),
    singleton=err(lambda: (FileLock(p, is_singleton=True), FileLock(p, is_singleton=True, close_error_policy="raise"))),
)
lock = FileLock(p)
result["defaults"] = [lock.context_error_policy, lock.close_error_policy, lock.fallback_to_soft,
                      lock.preserve_lock_file, lock.on_acquired]
lock = FileLock(p, context_error_policy="group", close_error_policy="suppress", fallback_to_soft=False,
                preserve_lock_file=True)
result["set"] = [lock.context_error_policy, lock.close_error_policy, lock.fallback_to_soft, lock.preserve_lock_file]
"""


def test_constructor_options_as_newest(tmp_path: Path) -> None:
    def code(name: str) -> str:
        return f"LOCK_PATH = {str(tmp_path / name)!r}\n" + OPTIONS_SCENARIO

    ours, theirs = run("ours", code("a.lock")), run("newest", code("a.lock"))
    # The singleton message too: close_error_policy is kept by the Python
    # layer, which lists the differing arguments as the newest does.
    assert ours == theirs


def test_on_acquired_gets_the_locked_descriptor(lock_path: str) -> None:
    from filelock import lock_descriptor

    seen: list[tuple[int, bool]] = []

    def hook(fd: int) -> None:
        # Another open file description cannot take the lock: fd holds it.
        probe = os.open(lock_path, os.O_RDWR)
        try:
            seen.append((fd, lock_descriptor(probe, blocking=False)))
        finally:
            os.close(probe)

    lock = FileLock(lock_path, on_acquired=hook)
    assert lock.on_acquired is hook
    with lock:
        with lock:  # re-entry: not called again
            pass
    assert len(seen) == 1 and seen[0][1] is False


def test_on_acquired_failure_releases_and_reraises(lock_path: str) -> None:
    class Refused(Exception):
        pass

    def hook(fd: int) -> None:
        raise Refused(f"fd {fd}")

    lock = FileLock(lock_path, on_acquired=hook)
    with pytest.raises(Refused, match="fd "):
        lock.acquire()
    assert not lock.is_locked and lock.lock_counter == 0
    # Released: another lock gets it at once.
    other = FileLock(lock_path)
    other.acquire(timeout=0)
    other.release()
    with pytest.raises(Refused):
        with lock:
            pytest.fail("the body must not run")


def test_on_acquired_must_be_callable(lock_path: str) -> None:
    with pytest.raises(TypeError, match="on_acquired must be callable"):
        FileLock(lock_path, on_acquired=42)  # type: ignore[arg-type]


@pytest.mark.skipif(sys.version_info < (3, 11), reason="BaseExceptionGroup is Python 3.11+")
def test_context_error_policy(lock_path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    class Body(Exception):
        pass

    def failing_release(h: Any, force: bool) -> None:
        raise OSError(5, "Input/output error", lock_path)

    for policy in ("chain", "group"):
        lock = FileLock(lock_path, context_error_policy=policy)
        lock.acquire()
        # A release that fails (the core's FL_EIO: e.g. the server dropped the lock).
        monkeypatch.setattr("filelock._api._release", failing_release)
        with pytest.raises(BaseException) as info:
            with lock:
                raise Body("body")
        monkeypatch.undo()
        lock.release(force=True)
        if policy == "chain":
            assert type(info.value) is OSError
            assert isinstance(info.value.__context__, Body)
        else:
            assert isinstance(info.value, ExceptionGroup)
            assert str(info.value).startswith("lock body and release both failed")
            assert [type(e) for e in info.value.exceptions] == [Body, OSError]


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_failing_log_level_check_does_not_break_a_wait(lock_path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The level is re-read at each wake-up; if that fails, the wait goes on."""
    import filelock._api as api

    broken = False
    real = api._is_debug

    def is_debug(level: int) -> bool:
        if broken:
            raise RuntimeError("logging is broken")
        return real(level)

    calls = 0

    def check() -> bool:
        nonlocal calls, broken
        calls += 1
        broken = True
        return calls >= 3

    seen: list[str] = []
    monkeypatch.setattr(api, "_is_debug", is_debug)
    monkeypatch.setattr(sys, "unraisablehook", lambda u: seen.append(str(u.exc_value)))
    holder, waiter = FileLock(lock_path), FileLock(lock_path)
    with holder:
        with pytest.raises(Timeout):
            waiter.acquire(timeout=DEADLINE, cancel_check=check)
        broken = False
    assert calls == 3
    assert "logging is broken" in seen
