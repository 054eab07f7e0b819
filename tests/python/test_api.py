"""The public API shape and single-threaded behaviour (issue 3, API section)."""

from __future__ import annotations

import os
import pickle
import stat
import sys
import warnings
from pathlib import Path

import pytest

import filelock
from filelock import (
    AcquireReturnProxy,
    BaseFileLock,
    FileLock,
    SoftFileLock,
    Timeout,
    UnixFileLock,
    WindowsFileLock,
    __version__,
)

LOCKS = [FileLock, SoftFileLock]


def test_imports_our_package() -> None:
    assert "dist-packages" not in filelock.__file__ or "bindings" in filelock.__file__
    assert filelock._filelock_core.__file__.endswith(".so")
    # <pure-Python API level>.<libfilelock version>, e.g. 3.14.0.0.1.0
    assert __version__ == f"{filelock.version.api_version}.{filelock.core_version}"
    assert filelock.core_version == filelock._filelock_core.fl_version()
    assert __version__.count(".") == 5
    assert FileLock is UnixFileLock
    for name in filelock.__all__:
        assert hasattr(filelock, name)


def test_base_is_abstract(lock_path: str) -> None:
    with pytest.raises(TypeError):
        BaseFileLock(lock_path)


def test_windows_lock_not_implemented_here(lock_path: str) -> None:
    lock = WindowsFileLock(lock_path)
    # The pure-Python package raises NotImplementedError too (no message);
    # ours says why: the backend is the build's, and its call is flock.
    with pytest.raises(NotImplementedError, match="LockFileEx.*POSIX backend.*UnixFileLock"):
        lock.acquire()
    with pytest.raises(NotImplementedError):
        with lock:
            pass
    assert not lock.is_locked


@pytest.mark.parametrize("cls", LOCKS)
def test_constructor_and_properties(cls: type[BaseFileLock], tmp_path: Path) -> None:
    path = tmp_path / "p.lock"
    lock = cls(path, 2.5, 0o600, False, blocking=False, poll_interval=0.2)
    assert lock.lock_file == str(path)
    assert lock.timeout == 2.5
    assert lock.mode == 0o600
    assert lock.is_thread_local() is False
    assert lock.blocking is False
    assert lock.poll_interval == pytest.approx(0.2)
    assert lock.is_singleton is False
    assert lock.is_locked is False and lock.lock_counter == 0
    lock.timeout = "7"  # anything float() takes
    assert lock.timeout == 7.0
    lock.timeout = 1
    assert isinstance(lock.timeout, float)
    with pytest.raises(ValueError):
        lock.timeout = "soon"
    lock.blocking = True
    assert lock.blocking is True
    default = cls(str(path) + "2")
    assert default.timeout == -1 and default.blocking is True and default.is_thread_local()
    assert default.mode == 0o644  # reported default, as the pure package does


def test_subclass_may_add_keyword_arguments(lock_path: str) -> None:
    class Tagged(FileLock):
        def __init__(self, lock_file, *, tag: str = "", **kwargs) -> None:
            super().__init__(lock_file, **kwargs)
            self.tag = tag

    lock = Tagged(lock_path, tag="x", timeout=3)
    assert lock.tag == "x" and lock.timeout == 3
    with lock:
        assert lock.is_locked


def test_unknown_keyword_rejected(lock_path: str) -> None:
    with pytest.raises(TypeError):
        FileLock(lock_path, no_such_option=1)


@pytest.mark.parametrize("cls", LOCKS)
def test_acquire_release_counter(cls: type[BaseFileLock], lock_path: str) -> None:
    lock = cls(lock_path)
    proxy = lock.acquire()
    assert isinstance(proxy, AcquireReturnProxy)
    assert lock.is_locked and lock.lock_counter == 1
    lock.acquire()
    assert lock.lock_counter == 2
    lock.release()
    assert lock.is_locked and lock.lock_counter == 1
    lock.release()
    assert not lock.is_locked and lock.lock_counter == 0
    lock.release()  # not held: a no-op
    lock.acquire()
    lock.acquire()
    lock.release(force=True)
    assert lock.lock_counter == 0


@pytest.mark.parametrize("cls", LOCKS)
def test_with_returns_lock_and_proxy_releases(cls: type[BaseFileLock], lock_path: str) -> None:
    lock = cls(lock_path)
    with lock as got:
        assert got is lock and lock.is_locked
        with lock.acquire() as inner:
            assert inner is lock and lock.lock_counter == 2
        assert lock.lock_counter == 1
    assert not lock.is_locked


@pytest.mark.parametrize("cls", LOCKS)
def test_release_on_exception(cls: type[BaseFileLock], lock_path: str) -> None:
    lock = cls(lock_path)
    with pytest.raises(ZeroDivisionError):
        with lock:
            1 / 0
    assert not lock.is_locked
    with pytest.raises(KeyError):
        with lock.acquire():
            raise KeyError("x")
    assert not lock.is_locked


@pytest.mark.parametrize("cls", LOCKS)
def test_decorator(cls: type[BaseFileLock], lock_path: str) -> None:
    lock = cls(lock_path)

    @lock
    def work(x: int) -> int:
        assert lock.is_locked
        return x * 2

    assert work(21) == 42
    assert not lock.is_locked


@pytest.mark.parametrize("cls", LOCKS)
def test_second_object_times_out(cls: type[BaseFileLock], lock_path: str) -> None:
    a, b = cls(lock_path), cls(lock_path)
    with a:
        with pytest.raises(Timeout) as info:
            b.acquire(timeout=0)
        assert info.value.lock_file == lock_path
        with pytest.raises(Timeout):
            b.acquire(timeout=0.05)
        with pytest.raises(Timeout):
            b.acquire(blocking=False)
        b.blocking = False
        with pytest.raises(Timeout):
            b.acquire(timeout=-1)  # blocking=False wins over any timeout
        assert b.lock_counter == 0  # rolled back
    b.acquire(timeout=0)
    assert b.is_locked
    b.release()


def test_default_timeout_used(lock_path: str) -> None:
    a, b = FileLock(lock_path), FileLock(lock_path, timeout=0.05)
    with a:
        with pytest.raises(Timeout):
            with b:
                pass
        with pytest.raises(Timeout):
            b.acquire()


def test_poll_intervall_deprecated(lock_path: str) -> None:
    lock = FileLock(lock_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        lock.acquire(poll_intervall=0.01)
    lock.release()
    assert [w.category for w in caught] == [DeprecationWarning]
    # Reported at the caller's line, not inside the package.
    assert caught[0].filename == __file__


def test_timeout_exception() -> None:
    exc = Timeout("/some/file.lock")
    assert isinstance(exc, TimeoutError)
    assert str(exc) == "The file lock '/some/file.lock' could not be acquired."
    assert repr(exc) == "Timeout('/some/file.lock')"
    assert exc.lock_file == "/some/file.lock"
    for proto in range(pickle.HIGHEST_PROTOCOL + 1):
        back = pickle.loads(pickle.dumps(exc, protocol=proto))
        assert type(back) is Timeout
        assert back.lock_file == exc.lock_file and str(back) == str(exc)


def test_raised_timeout_pickles(lock_path: str) -> None:
    a, b = FileLock(lock_path), FileLock(lock_path)
    with a, pytest.raises(Timeout) as info:
        b.acquire(timeout=0)
    back = pickle.loads(pickle.dumps(info.value))
    assert repr(back) == f"Timeout({lock_path!r})"


@pytest.mark.parametrize("cls", LOCKS)
def test_pathlike_and_parent_creation(cls: type[BaseFileLock], tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "c.lock"
    lock = cls(path)
    with lock:
        assert path.parent.is_dir()
    assert lock.lock_file == str(path)


def test_kernel_lock_file_kept_soft_marker_removed(tmp_path: Path) -> None:
    k, s = tmp_path / "k.lock", tmp_path / "s.lock"
    with FileLock(k):
        assert k.exists()
    assert k.exists()  # deleting it would split waiters across inodes
    with SoftFileLock(s):
        assert s.exists()
    assert not s.exists()


def test_explicit_mode_applied(tmp_path: Path) -> None:
    path = tmp_path / "m.lock"
    with FileLock(path, mode=0o640):
        pass
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640


@pytest.mark.parametrize("cls", LOCKS)
def test_empty_path(cls: type[BaseFileLock]) -> None:
    with pytest.raises(FileNotFoundError):
        cls("").acquire()


@pytest.mark.parametrize("cls", LOCKS)
def test_nul_byte(cls: type[BaseFileLock], tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        cls(str(tmp_path / "a\0b.lock")).acquire()


@pytest.mark.parametrize("cls", LOCKS)
def test_directory(cls: type[BaseFileLock], tmp_path: Path) -> None:
    lock = cls(tmp_path)
    with pytest.raises(IsADirectoryError) as info:
        lock.acquire(timeout=5)
    assert info.value.filename == str(tmp_path)
    assert lock.lock_counter == 0


@pytest.mark.parametrize("cls", LOCKS)
def test_missing_parent_not_creatable(cls: type[BaseFileLock], tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(NotADirectoryError):
        cls(blocker / "x.lock").acquire(timeout=5)


READ_ONLY_CHILD = r"""
import os, sys
import filelock
kind, path = sys.argv[1], sys.argv[2]
if os.getuid() == 0:
    os.setgid(65534); os.setuid(65534)
cls = getattr(filelock, kind)
try:
    cls(path).acquire(timeout=5)
except PermissionError as e:
    print("PermissionError", e.filename)
except BaseException as e:
    print("other", type(e).__name__, e)
else:
    print("acquired")
"""


@pytest.mark.parametrize("cls", LOCKS)
@pytest.mark.parametrize("what", ["file", "folder"])
def test_read_only_file_or_folder(cls: type[BaseFileLock], what: str, tmp_path: Path) -> None:
    import subprocess

    from conftest import ours_env

    # Root ignores permissions: the check runs in a child that drops to
    # nobody when started as root.
    base = tmp_path / "ro"
    base.mkdir()
    os.chmod(tmp_path, 0o755)
    if what == "file":
        target = base / "ro.lock"
        target.write_text("")
        os.chmod(target, 0o444)
        os.chmod(base, 0o755 if cls is FileLock else 0o555)
    else:
        os.chmod(base, 0o555)
        target = base / "new.lock"
    if os.getuid() == 0:
        os.chown(tmp_path, 0, 0)
    out = subprocess.run(
        [sys.executable, "-c", READ_ONLY_CHILD, cls.__name__, str(target)],
        env=ours_env(),
        capture_output=True,
        text=True,
        timeout=30,
    )
    os.chmod(base, 0o755)
    assert out.stdout.strip() == f"PermissionError {target}", out.stderr


def test_self_deadlock_raises(lock_path: str) -> None:
    a, b = FileLock(lock_path), FileLock(lock_path)
    with a:
        with pytest.raises(RuntimeError, match="is_singleton=True"):
            b.acquire()  # waiting forever on ourselves: an error, never a hang
        assert b.lock_counter == 0
        with pytest.raises(Timeout):
            b.acquire(timeout=0.05)  # with a timeout it is a plain Timeout


def test_del_releases_and_never_raises(lock_path: str) -> None:
    a = FileLock(lock_path)
    a.acquire()
    a.acquire()
    del a
    b = FileLock(lock_path)
    b.acquire(timeout=0)
    b.release()
    # A half-built object (constructor failed) must not raise from __del__.
    with pytest.raises(ValueError):
        FileLock(lock_path, timeout=float("nan"))


def test_del_at_interpreter_shutdown(spawn, lock_path: str) -> None:
    code = (
        "import filelock, sys\n"
        f"held = filelock.FileLock({lock_path!r}); held.acquire(); held.acquire()\n"
        f"soft = filelock.SoftFileLock({lock_path!r} + '.soft'); soft.acquire()\n"
        "import logging; logging.basicConfig(level=logging.DEBUG)\n"
        f"logged = filelock.FileLock({lock_path!r} + '.2'); logged.acquire()\n"
        "class Cycle: pass\n"
        "c = Cycle(); c.self = c; c.lock = filelock.FileLock(" + repr(lock_path) + " + '.3'); c.lock.acquire()\n"
        "print('ready', flush=True)\n"
    )
    child = spawn(code)
    child.expect("ready")
    child.finish()
    err = child.stderr()
    assert "Exception ignored" not in err and "Traceback" not in err, err
    assert not os.path.exists(lock_path + ".soft")  # the soft marker was cleaned up
    FileLock(lock_path).acquire(timeout=0)


def test_nan_and_negative_poll_rejected(lock_path: str) -> None:
    with pytest.raises(ValueError):
        FileLock(lock_path, poll_interval=-1)
    lock = FileLock(lock_path)
    with pytest.raises(ValueError):
        lock.acquire(timeout=float("nan"))
    with pytest.raises(ValueError):
        lock.timeout = float("nan")
    assert lock.lock_counter == 0


def test_poll_interval_zero_works(lock_path: str) -> None:
    a, b = FileLock(lock_path), FileLock(lock_path)
    with a, pytest.raises(Timeout):
        b.acquire(timeout=0.1, poll_interval=0)
