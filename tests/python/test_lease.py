"""SoftFileLease and SoftFileLock(lifetime=...): the pure-Python filelock's
names over the C core's leases (docs/soft-lock-protocol.md, "Leases")."""

from __future__ import annotations

import gc
import os
import signal
import time
import warnings
from pathlib import Path

import pytest

import filelock
from filelock import (
    FileLock,
    LeaseCompromise,
    LeaseSettingsMismatch,
    SoftFileLease,
    SoftFileLock,
    SoftFileLockLifetimeWarning,
    Timeout,
)

from conftest import DEADLINE

# The newest pure-Python release, when one is at hand (FL_PURE_FILELOCK_DIR:
# its src directory): its SoftFileLease and ours must reclaim each other.
PURE_NEW = os.environ.get("FL_PURE_FILELOCK_DIR", "/work/pure/newest/src")


def wait_for(pred, timeout: float = DEADLINE) -> bool:
    end = time.monotonic() + timeout
    while not pred() and time.monotonic() < end:
        time.sleep(0.01)
    return pred()


def test_names_and_defaults(lock_path: str) -> None:
    lease = SoftFileLease(lock_path)
    assert lease.lease_duration == 30.0
    assert lease.heartbeat_interval == 10.0
    assert lease.token is None and lease.compromise is None
    assert isinstance(lease, SoftFileLock)
    for name in ("SoftFileLease", "LeaseCompromise", "LeaseSettingsMismatch", "SoftFileLockLifetimeWarning"):
        assert name in filelock.__all__


@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf")])
def test_bad_duration(lock_path: str, bad: float) -> None:
    with pytest.raises(ValueError, match="lease_duration must be positive"):
        SoftFileLease(lock_path, lease_duration=bad)


@pytest.mark.parametrize("bad", [0, -1, 3, 5])
def test_bad_heartbeat(lock_path: str, bad: float) -> None:
    with pytest.raises(ValueError, match="heartbeat_interval must be positive and below lease_duration"):
        SoftFileLease(lock_path, lease_duration=3, heartbeat_interval=bad)


def test_marker_is_a_lease_record_with_token(lock_path: str) -> None:
    lease = SoftFileLease(lock_path, lease_duration=5)
    with lease:
        text = Path(lock_path).read_text()
        assert text.startswith(f"filelock/2\npid={os.getpid()}\n")
        assert "\nmode=lease\n" in text and "\nduration=5\n" in text
        assert lease.token and f"\ntoken={lease.token}\n" in text
        assert lease.owner is not None and lease.owner.pid == os.getpid()
    assert lease.token is None
    assert not os.path.exists(lock_path)


def test_removed_marker_is_reported_once_and_release_does_not_raise(lock_path: str) -> None:
    seen: list[LeaseCompromise] = []
    lease = SoftFileLease(lock_path, lease_duration=0.6, heartbeat_interval=0.1, on_compromise=seen.append)
    lease.acquire()
    token = lease.token
    os.unlink(lock_path)
    assert wait_for(lambda: seen)
    time.sleep(0.3)
    assert seen == [LeaseCompromise(lock_path, token, "marker-missing", None)]
    assert lease.compromise == seen[0]
    lease.release()  # recorded, not raised (as the pure package)
    assert not lease.is_locked
    assert not os.path.exists(lock_path)
    # The next acquire starts a fresh claim.
    with lease:
        assert lease.compromise is None


def test_loss_during_acquire_is_kept_and_told_once(lock_path: str, monkeypatch) -> None:
    # The claim is lost before acquire() returns (the heartbeat runs from
    # the moment the core wins): acquire must not then reset the record of
    # it, nor may release tell it a second time.
    import filelock._api as api

    seen: list[LeaseCompromise] = []
    lease = SoftFileLease(lock_path, lease_duration=0.6, heartbeat_interval=0.1, on_compromise=seen.append)
    core_acquire = api._acquire

    def acquire_then_lose(*args):
        core_acquire(*args)
        os.unlink(lock_path)
        assert wait_for(lambda: seen)

    monkeypatch.setattr(api, "_acquire", acquire_then_lose)
    lease.acquire()
    monkeypatch.setattr(api, "_acquire", core_acquire)
    assert len(seen) == 1 and seen[0].reason == "marker-missing"
    assert lease.compromise == seen[0]
    lease.release()
    assert len(seen) == 1
    assert not lease.is_locked


def test_live_holder_is_never_reclaimed(lock_path: str) -> None:
    holder = SoftFileLease(lock_path, lease_duration=1.0, heartbeat_interval=0.1)
    waiter = SoftFileLease(lock_path, lease_duration=1.0, heartbeat_interval=0.1)
    with holder:
        with pytest.raises(Timeout):
            waiter.acquire(timeout=3.5)
        assert holder.compromise is None
    with waiter.acquire(timeout=0):
        pass


def test_settings_mismatch(lock_path: str) -> None:
    with SoftFileLease(lock_path, lease_duration=2):
        with pytest.raises(LeaseSettingsMismatch, match="every contender for a path must agree"):
            SoftFileLease(lock_path, lease_duration=3).acquire(timeout=1)


HOLD_OURS = """
import sys, time
from filelock import SoftFileLease
lost = []
lease = SoftFileLease(sys.argv[1] if len(sys.argv) > 1 else {path!r}, lease_duration=1.0,
                      on_compromise=lost.append)
lease.acquire()
print("held", flush=True)
end = time.monotonic() + 30
while not lost and time.monotonic() < end:
    time.sleep(0.02)
print("lost", lost[0].reason if lost else None, flush=True)
lease.release()
print("compromise", lease.compromise.reason if lease.compromise else None, flush=True)
"""


def test_frozen_holder_is_reclaimed_and_learns_it(lock_path: str, spawn) -> None:
    child = spawn(HOLD_OURS.format(path=lock_path))
    child.expect("held")
    os.kill(child.proc.pid, signal.SIGSTOP)
    try:
        waiter = SoftFileLease(lock_path, lease_duration=1.0)
        waiter.acquire(timeout=DEADLINE)
        assert waiter.is_lock_held_by_us
    finally:
        os.kill(child.proc.pid, signal.SIGCONT)
    assert child.expect("lost") == "lost owner-changed"
    assert child.expect("compromise") == "compromise owner-changed"
    child.finish()
    assert waiter.is_lock_held_by_us  # the loser left our marker alone
    waiter.release()


def test_singleton_lease_reports_to_the_object_kept(lock_path: str) -> None:
    # The second call's object is dropped by the registry: it must not take
    # the compromise report from the object both calls returned.
    seen: list[LeaseCompromise] = []
    opts = {"lease_duration": 0.6, "heartbeat_interval": 0.1, "is_singleton": True}
    a = SoftFileLease(lock_path, on_compromise=seen.append, **opts)
    b = SoftFileLease(lock_path, **opts)
    assert a is b
    a.acquire()
    os.unlink(lock_path)
    assert wait_for(lambda: seen)
    assert seen[0].reason == "marker-missing" and a.compromise == seen[0]
    a.release()
    assert not a.is_locked


def test_lease_objects_of_two_classes_are_two_locks(lock_path: str) -> None:
    # Each class keeps its own singleton registry and (as 3.32) its own lock:
    # the other class's object neither shares the hold nor gets its reports.
    class Mine(SoftFileLease):
        pass

    seen_a: list[LeaseCompromise] = []
    seen_b: list[LeaseCompromise] = []
    opts = {"lease_duration": 0.6, "heartbeat_interval": 0.1, "is_singleton": True}
    a = SoftFileLease(lock_path, on_compromise=seen_a.append, **opts)
    b = Mine(lock_path, on_compromise=seen_b.append, **opts)
    assert a is not b
    a.acquire()
    assert not b.is_locked
    with pytest.raises(Timeout):
        b.acquire(timeout=0)  # the marker is a's
    del b
    gc.collect()
    os.unlink(lock_path)
    assert wait_for(lambda: seen_a)
    assert seen_a[0].reason == "marker-missing"
    assert not seen_b
    a.release(force=True)
    assert not a.is_locked


def test_lifetime_warnings_name_the_caller(lock_path: str) -> None:
    with pytest.warns(SoftFileLockLifetimeWarning) as rec:
        SoftFileLock(lock_path, lifetime=1)
    with pytest.warns(UserWarning) as rec2:
        SoftFileLease(lock_path, lifetime=1)
    assert [w.filename for w in [*rec, *rec2]] == [__file__, __file__]


def test_lifetime_supersedes_a_live_holder(lock_path: str) -> None:
    with pytest.warns(SoftFileLockLifetimeWarning, match="uses age-based expiry"):
        a = SoftFileLock(lock_path, lifetime=0.4)
    with pytest.warns(SoftFileLockLifetimeWarning):
        b = SoftFileLock(lock_path, lifetime=0.4)
    assert a.lifetime == 0.4
    a.acquire()
    b.acquire(timeout=DEADLINE)
    a.release()  # silently, as the pure package: the marker is b's
    assert os.path.exists(lock_path)
    b.release()
    assert not os.path.exists(lock_path)


def test_lifetime_validation_and_kernel_warning(lock_path: str) -> None:
    with pytest.raises(ValueError, match="lifetime must be finite and non-negative, not -1"):
        SoftFileLock(lock_path, lifetime=-1)
    with pytest.raises(ValueError, match="finite"):
        SoftFileLock(lock_path, lifetime=float("inf"))
    with pytest.raises(TypeError, match="not bool"):
        SoftFileLock(lock_path, lifetime=True)
    with pytest.warns(UserWarning, match="lifetime is ignored for UnixFileLock: a native OS lock"):
        k = FileLock(lock_path, lifetime=3)
    assert k.lifetime is None
    with pytest.warns(UserWarning, match="lease_duration sets when a lease expires"):
        SoftFileLease(lock_path, lifetime=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert SoftFileLock(lock_path).lifetime is None


HOLD_PURE = """
import sys, time
sys.path.insert(0, {pure!r})
import filelock
from filelock import SoftFileLease
assert hasattr(filelock, "SoftFileLease"), filelock.__file__
lost = []
lease = SoftFileLease({path!r}, lease_duration=1.0, on_compromise=lost.append)
lease.acquire()
print("held", flush=True)
end = time.monotonic() + 30
while not lost and time.monotonic() < end:
    time.sleep(0.02)
print("lost", lost[0].reason if lost else None, flush=True)
"""


@pytest.mark.skipif(not os.path.isdir(os.path.join(PURE_NEW, "filelock")),
                    reason=f"no pure-Python filelock 3.30+ at {PURE_NEW} (set FL_PURE_FILELOCK_DIR)")
def test_pure_lease_and_ours_reclaim_each_other(lock_path: str, spawn) -> None:
    # Theirs frozen, ours reclaims; theirs learns owner-changed.
    child = spawn(HOLD_PURE.format(pure=PURE_NEW, path=lock_path), pure=True)
    child.expect("held")
    os.kill(child.proc.pid, signal.SIGSTOP)
    try:
        ours = SoftFileLease(lock_path, lease_duration=1.0)
        ours.acquire(timeout=DEADLINE)
    finally:
        os.kill(child.proc.pid, signal.SIGCONT)
    assert child.expect("lost") == "lost owner-changed"
    child.finish()
    # Ours alive: theirs never takes it within several durations.
    probe = spawn(
        f"import sys; sys.path.insert(0, {PURE_NEW!r})\n"
        "from filelock import SoftFileLease, Timeout\n"
        f"l = SoftFileLease({lock_path!r}, lease_duration=1.0)\n"
        "try:\n    l.acquire(timeout=3.5); print('won')\nexcept Timeout:\n    print('timeout')\n",
        pure=True,
    )
    assert probe.expect("") == "timeout"
    probe.finish()
    ours.release()


def test_lost_lease_never_hides_the_bodys_error(lock_path: str) -> None:
    # One rule across languages (docs/soft-lock-protocol.md): the body's own
    # error goes on; Python's release never raises for the loss (the pure
    # package's), which is kept in `compromise`.
    lease = SoftFileLease(lock_path, lease_duration=5)
    with pytest.raises(KeyError, match="the body's own"):
        with lease:
            os.unlink(lock_path)  # release finds the marker gone
            raise KeyError("the body's own")
    assert not lease.is_locked
    assert lease.compromise is not None and lease.compromise.reason == "marker-missing"
    with lease:
        os.unlink(lock_path)
    assert not lease.is_locked
    assert lease.compromise is not None
