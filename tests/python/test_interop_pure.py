"""Ours and the pure-Python ``filelock`` exclude each other, in both
directions, for every lock kind both have: FileLock (flock on the lock
file), SoftFileLock (the exclusive-create marker) and, with the newest
release, ``lock_descriptor`` against FileLock.

Run against Debian's python3-filelock (3.9, what CI installs) and the newest
release (``FL_PURE_NEWEST_DIR``, default /work/pure/newest/src); each is
skipped with the reason when it is not there. ReadWriteLock is not a shared
kind: the pure package's is SQLite-based, ours is flock-based
(docs/python-compat.md).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import filelock
from filelock import Timeout, lock_descriptor, unlock_descriptor

from conftest import DEADLINE
from test_compat import impl_available, prelude

IMPLS = ["debian", "newest"]
KINDS = ["FileLock", "SoftFileLock"]

HOLD = """
lock = {lock}
{acquire}
print("held", flush=True)
sys.stdin.readline()
{release}
print("released", flush=True)
"""

PROBE = """
lock = {lock}
try:
    {try_once}
    print("acquired", flush=True)
except {busy}:
    print("busy", flush=True)
sys.stdin.readline()
{acquire}
print("acquired", flush=True)
{release}
"""


def need(impl: str) -> None:
    reason = impl_available(impl)
    if reason:
        pytest.skip(reason)


def forms(kind: str, path: str) -> dict[str, str]:
    """The pure side's code for one kind."""
    if kind == "descriptor":
        return dict(
            lock=f"os.open({path!r}, os.O_RDWR | os.O_CREAT)",
            acquire="filelock.lock_descriptor(lock)",
            try_once="assert filelock.lock_descriptor(lock, blocking=False)",
            busy="AssertionError",
            release="filelock.unlock_descriptor(lock)",
        )
    return dict(
        lock=f"filelock.{kind}({path!r})",
        acquire=f"lock.acquire(timeout={DEADLINE})",
        try_once="lock.acquire(timeout=0.2)",
        busy="filelock.Timeout",
        release="lock.release()",
    )


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("kind", KINDS)
def test_exclude_each_other(spawn, tmp_path: Path, impl: str, kind: str) -> None:
    need(impl)
    path = str(tmp_path / "interop.lock")
    ours = getattr(filelock, kind)(path)
    f = forms(kind, path)

    theirs = spawn(prelude(impl) + "import os\n" + HOLD.format(**f), pure=True)
    theirs.expect("held")
    with pytest.raises(Timeout):
        ours.acquire(timeout=0.2)
    theirs.send()
    theirs.expect("released")
    theirs.finish()
    ours.acquire(timeout=DEADLINE)

    probe = spawn(prelude(impl) + "import os\n" + PROBE.format(**f), pure=True)
    probe.expect("busy")
    ours.release()
    probe.send()
    probe.expect("acquired")
    probe.finish()


@pytest.mark.parametrize("impl", IMPLS)
def test_descriptor_against_pure_filelock(spawn, tmp_path: Path, impl: str) -> None:
    """Our lock_descriptor against the pure package's FileLock (both flock)."""
    need(impl)
    path = str(tmp_path / "fd.lock")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        theirs = spawn(prelude(impl) + "import os\n" + HOLD.format(**forms("FileLock", path)), pure=True)
        theirs.expect("held")
        assert lock_descriptor(fd, blocking=False) is False
        theirs.send()
        theirs.expect("released")
        theirs.finish()
        assert lock_descriptor(fd) is True
        probe = spawn(prelude(impl) + "import os\n" + PROBE.format(**forms("FileLock", path)), pure=True)
        probe.expect("busy")
        unlock_descriptor(fd)
        probe.send()
        probe.expect("acquired")
        probe.finish()
    finally:
        os.close(fd)


def test_pure_descriptor_against_our_filelock(spawn, tmp_path: Path) -> None:
    """The newest release's lock_descriptor against our FileLock."""
    need("newest")
    path = str(tmp_path / "fd2.lock")
    ours = filelock.FileLock(path)
    f = forms("descriptor", path)
    theirs = spawn(prelude("newest") + "import os\n" + HOLD.format(**f), pure=True)
    theirs.expect("held")
    with pytest.raises(Timeout):
        ours.acquire(timeout=0.2)
    theirs.send()
    theirs.expect("released")
    theirs.finish()
    with ours:
        probe = spawn(prelude("newest") + "import os\n" + PROBE.format(**f), pure=True)
        probe.expect("busy")
    probe.send()
    probe.expect("acquired")
    probe.finish()
