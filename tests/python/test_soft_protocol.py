"""The soft lock's protocol from Python (issue 13; docs/soft-lock-protocol.md).

Each numbered case of the issue, seen through the binding: pid namespaces
(also through the `filelock` command), permanent errors during a reclaim,
long names, an explicit mode under a strict umask, a relative path with a
chdir, and a wait with a single free descriptor.
"""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

import filelock
from conftest import DEADLINE, ours_env
from filelock import SoftFileLock, Timeout

HOST = socket.gethostname()
BUILD = Path(filelock.__file__).resolve().parents[4]
CLI = BUILD / "bindings" / "cli" / "filelock"


def dead_record() -> str:
    """The record of a process that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(timeout=DEADLINE)
    return f"{proc.pid}\n{HOST}\n"


def can_unshare() -> bool:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "true"], check=False).returncode == 0


needs_unshare = pytest.mark.skipif(not can_unshare(), reason="pid namespaces need root and unshare(1)")
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="becoming another user needs root")

HOLDER = textwrap.dedent(
    """
    import sys
    from filelock import SoftFileLock
    lock = SoftFileLock(sys.argv[1])
    lock.acquire()
    print("held", flush=True)
    sys.stdin.read()
    lock.release()
    """
)

WAITER = textwrap.dedent(
    """
    import sys
    from filelock import SoftFileLock, Timeout
    try:
        SoftFileLock(sys.argv[1]).acquire(timeout=float(sys.argv[2]))
    except Timeout:
        sys.exit(3)
    sys.exit(0)
    """
)

UNSHARE = ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child"]


def start_holder(path: str, *, namespace: bool) -> subprocess.Popen[str]:
    cmd = [*(UNSHARE if namespace else []), sys.executable, "-c", HOLDER, path]
    proc = subprocess.Popen(cmd, env=ours_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "held"
    return proc


def stop(proc: subprocess.Popen[str]) -> None:
    assert proc.stdin is not None
    proc.stdin.close()
    proc.wait(timeout=DEADLINE)


def wait_in(path: str, timeout: float, *, namespace: bool) -> int:
    cmd = [*(UNSHARE if namespace else []), sys.executable, "-c", WAITER, path, str(timeout)]
    return subprocess.run(cmd, env=ours_env(), timeout=DEADLINE, check=False).returncode


# ---- item 1: pid namespaces -------------------------------------------------


@needs_unshare
def test_holder_in_child_namespace_never_broken(lock_path: str) -> None:
    holder = start_holder(lock_path, namespace=True)
    try:
        text = Path(lock_path).read_text()
        assert text.startswith("1\n") and " pidns=" in text, text
        with pytest.raises(Timeout):
            SoftFileLock(lock_path).acquire(timeout=1.2)
        assert wait_in(lock_path, 1.2, namespace=True) == 3  # from a second namespace
        assert Path(lock_path).read_text() == text
    finally:
        stop(holder)
    assert not Path(lock_path).exists()


@needs_unshare
def test_host_holder_never_broken_from_child_namespace(lock_path: str) -> None:
    with SoftFileLock(lock_path):
        assert wait_in(lock_path, 1.2, namespace=True) == 3


@needs_unshare
def test_cli_does_not_break_holder_in_child_namespace(lock_path: str) -> None:
    if not CLI.exists():
        pytest.skip(f"the filelock command is not built ({CLI})")
    holder = start_holder(lock_path, namespace=True)
    try:
        run = subprocess.run([str(CLI), "--soft", "-w", "1.5", lock_path, "true"], timeout=DEADLINE, check=False)
        assert run.returncode == 1, "the command took the lock of a live holder in another pid namespace"
    finally:
        stop(holder)


def test_dead_holder_in_our_namespace_still_reclaimed(lock_path: str) -> None:
    Path(lock_path).write_text(dead_record())
    with SoftFileLock(lock_path, timeout=5):
        assert Path(lock_path).read_text().startswith(f"{os.getpid()}\n")


# ---- item 5: permanent errors -------------------------------------------------


@needs_root
@pytest.mark.parametrize("layout", ["read-only directory", "sticky directory"])
def test_unremovable_stale_marker_is_a_prompt_error(layout: str) -> None:
    base = tempfile.mkdtemp(prefix="fl13-")
    try:
        os.chmod(base, 0o755)
        lock_dir = Path(base, "d")
        lock_dir.mkdir()
        os.chmod(lock_dir, 0o755 if layout == "read-only directory" else 0o1777)
        path = lock_dir / "x.lock"
        path.write_text(dead_record())
        os.chmod(path, 0o644)
        code = textwrap.dedent(
            """
            import sys
            from filelock import SoftFileLock
            try:
                SoftFileLock(sys.argv[1]).acquire(timeout=-1)
            except PermissionError as e:
                print("error", e.filename, flush=True)
                sys.exit(0)
            sys.exit(5)
            """
        )
        start = time.monotonic()
        run = subprocess.run(
            ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-c", code, str(path)],
            env=ours_env(),
            capture_output=True,
            text=True,
            timeout=DEADLINE,
            check=False,
        )
        assert run.returncode == 0, run.stderr
        assert str(path) in run.stdout + run.stderr
        assert time.monotonic() - start < 10
        assert path.exists()
    finally:
        subprocess.run(["rm", "-rf", base], check=False)


# ---- item 6: long names ---------------------------------------------------------


@pytest.mark.parametrize("length", [240, 250, 255])
def test_long_name_stale_marker_reclaimed(tmp_path: Path, length: int) -> None:
    path = tmp_path / ("n" * length)
    path.write_text(dead_record())
    with SoftFileLock(str(path), timeout=5):
        assert path.read_text().startswith(f"{os.getpid()}\n")
    assert not path.exists()


# ---- item 7: explicit mode --------------------------------------------------------


def test_explicit_mode_applied_under_umask_077(lock_path: str) -> None:
    old = os.umask(0o077)
    try:
        lock = SoftFileLock(lock_path, mode=0o644)
        with lock:
            assert stat.S_IMODE(os.stat(lock_path).st_mode) == 0o644
        Path(lock_path).write_text(dead_record())
        with lock:  # taken over: the replacing marker gets the mode too
            assert stat.S_IMODE(os.stat(lock_path).st_mode) == 0o644
    finally:
        os.umask(old)


# ---- item 8: relative path and chdir ---------------------------------------------


def test_relative_path_chdir_before_release(tmp_path: Path) -> None:
    old = os.getcwd()
    try:
        os.chdir(tmp_path)
        lock = SoftFileLock("rel.lock")
        lock.acquire()
        os.chdir("/")
        lock.release()
        assert not (tmp_path / "rel.lock").exists()
    finally:
        os.chdir(old)


# ---- item 9: one free descriptor ---------------------------------------------------


def test_wait_with_one_free_descriptor(lock_path: str) -> None:
    code = textwrap.dedent(
        """
        import os, resource, sys
        from filelock import SoftFileLock
        lock = SoftFileLock(sys.argv[1])
        lowest = 0
        while True:
            try:
                os.fstat(lowest)
                lowest += 1
            except OSError:
                break
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (lowest + 1, hard))
        print("waiting", flush=True)
        lock.acquire(timeout=10)
        print("won", flush=True)
        """
    )
    with SoftFileLock(lock_path):
        proc = subprocess.Popen(
            [sys.executable, "-c", code, lock_path], env=ours_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "waiting"
        time.sleep(0.4)
    out, err = proc.communicate(timeout=DEADLINE)
    assert proc.returncode == 0, err
    assert out.strip() == "won"


# ---- item 3: a crash in the middle of a take-over ---------------------------------


def claim_name(path: Path) -> Path:
    """The claim on the file now at *path* (docs/soft-lock-protocol.md)."""
    h = 1469598103934665603
    for b in path.name.encode():
        h = ((h ^ b) * 1099511628211) % 2**64
    st = os.lstat(path)
    return path.parent / f".{h:016x}.{st.st_ino:x}.claim"


def test_taker_killed_holding_its_claim_is_resolved(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    path.write_text(dead_record())
    claim = claim_name(path)
    claim.write_text(dead_record())  # the taker died right after claiming
    with SoftFileLock(str(path), timeout=5):
        assert path.read_text().startswith(f"{os.getpid()}\n")
    assert not claim.exists()


def test_live_taker_claim_is_respected(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    path.write_text(dead_record())
    ino = os.lstat(path).st_ino
    claim = claim_name(path)
    claim.write_text(f"{os.getppid()}\n{HOST}\n")  # a live taker is at work
    with pytest.raises(Timeout):
        SoftFileLock(str(path)).acquire(timeout=0.8)
    assert os.lstat(path).st_ino == ino


# ---- item 4: release never waits for a take-over ----------------------------------


def test_release_is_immediate_and_removes_only_our_marker(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    lock = SoftFileLock(str(path))
    lock.acquire()
    claim = claim_name(path)
    claim.write_text(f"{os.getppid()}\n{HOST}\n")  # e.g. an operator's break under way
    start = time.monotonic()
    lock.release()
    assert time.monotonic() - start < 0.05
    assert not path.exists()
    # A marker that is not ours (broken and re-created by another holder) stays.
    lock.acquire()
    other = tmp_path / "other"
    other.write_text(f"{os.getppid()}\n{HOST}\n")
    os.rename(other, path)
    lock.release()
    assert path.read_text() == f"{os.getppid()}\n{HOST}\n"


@pytest.mark.parametrize("length", [251, 255])
def test_read_write_lock_long_name(tmp_path: Path, length: int) -> None:
    lock = filelock.ReadWriteLock(str(tmp_path / ("r" * length)))
    with lock.write_lock():
        pass
    with lock.read_lock():
        pass
