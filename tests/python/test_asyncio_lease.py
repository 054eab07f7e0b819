"""AsyncSoftFileLease: the pure-Python filelock's asyncio lease (3.30+) over
the C core's lease and the event loop's wait hub."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest

import filelock
from filelock import (
    AsyncSoftFileLease,
    BaseAsyncFileLock,
    LeaseCompromise,
    LeaseSettingsMismatch,
    SoftFileLease,
    Timeout,
)

from conftest import DEADLINE, ours_env


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, DEADLINE))


async def until(pred, timeout: float = DEADLINE) -> bool:
    end = time.monotonic() + timeout
    while not pred() and time.monotonic() < end:
        await asyncio.sleep(0.01)
    return pred()


def other_process_can_take(path: str, duration: float) -> bool:
    code = (
        "import filelock,sys\n"
        f"l=filelock.SoftFileLease(sys.argv[1], timeout=0, lease_duration={duration!r})\n"
        "try:\n l.acquire()\nexcept filelock.Timeout:\n sys.exit(3)\nl.release()\n"
    )
    rc = subprocess.run(
        [sys.executable, "-c", code, path], env=ours_env(), timeout=DEADLINE, check=False
    ).returncode
    assert rc in (0, 3), rc
    return rc == 0


def test_names_defaults_and_constructor(lock_path: str) -> None:
    assert "AsyncSoftFileLease" in filelock.__all__
    assert filelock.AsyncSoftFileLease is filelock.asyncio.AsyncSoftFileLease
    lease = AsyncSoftFileLease(lock_path)
    assert isinstance(lease, SoftFileLease) and isinstance(lease, BaseAsyncFileLock)
    assert lease.lease_duration == 30.0 and lease.heartbeat_interval == 10.0
    assert lease.token is None and lease.compromise is None
    # The async locks' defaults (the pure package's AsyncFileLockMeta).
    assert not lease.is_thread_local() and lease.run_in_executor and lease.loop is None
    with pytest.raises(ValueError, match="run_in_executor is not supported"):
        AsyncSoftFileLease(lock_path, thread_local=True)
    assert AsyncSoftFileLease(lock_path, thread_local=True, run_in_executor=False).is_thread_local()
    with pytest.raises(ValueError, match="lease_duration must be positive"):
        AsyncSoftFileLease(lock_path, lease_duration=0)
    with pytest.raises(ValueError, match="heartbeat_interval must be positive and below"):
        AsyncSoftFileLease(lock_path, lease_duration=3, heartbeat_interval=3)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        AsyncSoftFileLease(lock_path, lifetime=5)
    assert any("lease_duration sets when a lease expires" in str(w.message) for w in seen)
    with pytest.raises(NotImplementedError):
        with lease:
            pass


def test_signature_defaults_follow_the_lease_and_the_async_locks() -> None:
    """The constructor's defaults are SoftFileLease's (checked against the
    core in test_options) and the async locks' (thread_local=False, ...)."""
    import inspect

    mine = inspect.signature(AsyncSoftFileLease.__init__).parameters
    lease = inspect.signature(SoftFileLease.__init__).parameters
    async_ = inspect.signature(filelock.AsyncSoftFileLock.__init__).parameters
    for name in ("timeout", "mode", "blocking", "is_singleton", "poll_interval"):
        assert mine[name].default == lease[name].default == async_[name].default, name
    for name in ("lease_duration", "heartbeat_interval", "on_compromise"):
        assert mine[name].default == lease[name].default, name
    for name in async_:
        assert name in mine, name
        assert mine[name].default == async_[name].default, name


def test_async_with_publishes_a_claim_and_removes_it(lock_path: str) -> None:
    async def main() -> None:
        lease = AsyncSoftFileLease(lock_path, lease_duration=5)
        async with lease:
            text = Path(lock_path).read_text()
            assert "\nmode=lease\n" in text and "\nduration=5\n" in text
            assert lease.token and f"\ntoken={lease.token}\n" in text
            assert lease.is_locked
            assert not other_process_can_take(lock_path, 5)
        assert lease.token is None and not lease.is_locked
        assert not os.path.exists(lock_path)
        async with await lease.acquire():
            assert lease.lock_counter == 1
        assert other_process_can_take(lock_path, 5)

    run(main())


def test_compromise_callback_and_release_of_the_lost_lease(lock_path: str) -> None:
    """The heartbeat finds the marker gone: on_compromise is told once (on
    a library thread), compromise keeps it, and the release records rather
    than raises; the next acquire starts a fresh claim."""

    async def main() -> None:
        seen: list[LeaseCompromise] = []
        lease = AsyncSoftFileLease(
            lock_path, lease_duration=0.6, heartbeat_interval=0.1, on_compromise=seen.append
        )
        await lease.acquire()
        token = lease.token
        os.unlink(lock_path)
        assert await until(lambda: seen)
        await asyncio.sleep(0.3)
        assert seen == [LeaseCompromise(lock_path, token, "marker-missing", None)]
        assert lease.compromise == seen[0]
        await lease.release()
        assert not lease.is_locked and lease.token is None
        assert len(seen) == 1
        async with lease:
            assert lease.compromise is None and lease.token != token

    run(main())


def test_release_learns_a_loss_the_heartbeat_has_not_seen(lock_path: str) -> None:
    """The claim is lost between two refreshes: the release itself learns
    it from the core (FL_ELOST) and records it, without raising."""

    async def main() -> None:
        seen: list[LeaseCompromise] = []
        lease = AsyncSoftFileLease(lock_path, lease_duration=30, on_compromise=seen.append)
        await lease.acquire()
        token = lease.token
        os.unlink(lock_path)
        await lease.release()
        assert [c.reason for c in seen] == ["marker-missing"] and seen[0].token == token
        assert lease.compromise == seen[0]
        assert not lease.is_locked
        assert other_process_can_take(lock_path, 30)

    run(main())


def test_waiter_wakes_on_release_and_cancel_leaves_nothing(lock_path: str) -> None:
    async def main() -> None:
        holder = SoftFileLease(lock_path, lease_duration=5)
        holder.acquire()
        lease = AsyncSoftFileLease(lock_path, lease_duration=5)
        with pytest.raises(Timeout):
            await lease.acquire(timeout=0)
        waiter = asyncio.create_task(lease.acquire())
        await asyncio.sleep(0.1)
        assert not waiter.done()
        # The loop runs while the task waits: the release comes from it.
        holder.release()
        await asyncio.wait_for(waiter, DEADLINE)
        assert lease.is_locked and lease.token
        await lease.release()
        # A cancelled wait leaves no hold and no claim behind.
        holder.acquire()
        waiter = asyncio.create_task(lease.acquire())
        await asyncio.sleep(0.1)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        holder.release()
        assert not lease.is_locked and lease.token is None
        assert other_process_can_take(lock_path, 5)

    run(main())


def test_settings_mismatch_raises(lock_path: str) -> None:
    async def main() -> None:
        holder = SoftFileLease(lock_path, lease_duration=5)
        holder.acquire()
        try:
            with pytest.raises(LeaseSettingsMismatch):
                await AsyncSoftFileLease(lock_path, lease_duration=7).acquire(timeout=DEADLINE)
        finally:
            holder.release()

    run(main())


FROZEN_HOLDER = """
import sys, time
from filelock import SoftFileLease
lost = []
lease = SoftFileLease(sys.argv[1], lease_duration=1.0, on_compromise=lost.append)
lease.acquire()
print("held", flush=True)
end = time.monotonic() + 30
while not lost and time.monotonic() < end:
    time.sleep(0.02)
print("lost", lost[0].reason if lost else None, flush=True)
lease.release()
"""


def test_frozen_holder_is_taken_over_by_a_waiting_task(lock_path: str) -> None:
    """A holder that stops refreshing (SIGSTOP) is taken over once its
    claim is lease_duration old, by a task waiting on the loop; the holder
    learns it when it runs again."""
    child = subprocess.Popen(
        [sys.executable, "-c", FROZEN_HOLDER, lock_path],
        env=ours_env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "held"
        os.kill(child.pid, signal.SIGSTOP)

        async def main() -> None:
            lease = AsyncSoftFileLease(lock_path, lease_duration=1.0)
            ticks = 0

            async def ticker() -> None:
                nonlocal ticks
                while True:
                    await asyncio.sleep(0.05)
                    ticks += 1

            t = asyncio.create_task(ticker())
            await lease.acquire(timeout=DEADLINE)
            t.cancel()
            assert ticks > 5  # the loop ran all along
            assert lease.is_lock_held_by_us
            os.kill(child.pid, signal.SIGCONT)
            assert child.stdout is not None
            line = await asyncio.get_running_loop().run_in_executor(None, child.stdout.readline)
            assert line.strip() == "lost owner-changed"
            assert lease.is_lock_held_by_us  # the loser left our marker alone
            await lease.release()

        run(main())
        assert child.wait(timeout=DEADLINE) == 0
    finally:
        if child.poll() is None:
            os.kill(child.pid, signal.SIGCONT)
            child.kill()
            child.wait()
        assert child.stdout is not None
        child.stdout.close()
