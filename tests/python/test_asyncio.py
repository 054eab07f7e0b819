"""The asyncio locks (filelock.asyncio): the pure-Python package's API and
cancellation rules, waits woken by the kernel through one hub per loop (no
thread, no polling), task-scoped ownership, and exclusion against
synchronous holders, other processes and the C CLI."""

from __future__ import annotations

import asyncio
import gc
import os
import subprocess
import sys
import threading
import time
import warnings
import weakref
from pathlib import Path

import pytest

import filelock
from filelock import (
    AsyncAcquireReturnProxy,
    AsyncFileLock,
    AsyncSoftFileLock,
    AsyncUnixFileLock,
    AsyncWindowsFileLock,
    BaseAsyncFileLock,
    FileLock,
    Timeout,
)
from filelock import _filelock_core as _core
from filelock import asyncio as fl_asyncio

from conftest import DEADLINE, ours_env

KINDS = [AsyncFileLock, AsyncSoftFileLock]


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, DEADLINE))


def other_process_can_take(path: str, soft: bool = False) -> bool:
    """Whether another process wins the lock at once (so we hold nothing)."""
    cls = "SoftFileLock" if soft else "FileLock"
    code = (
        f"import filelock,sys\n"
        f"l=filelock.{cls}(sys.argv[1], timeout=0)\n"
        f"try:\n l.acquire()\nexcept filelock.Timeout:\n sys.exit(3)\nl.release()\n"
    )
    rc = subprocess.run(
        [sys.executable, "-c", code, path], env=ours_env(), timeout=DEADLINE, check=False
    ).returncode
    assert rc in (0, 3), rc
    return rc == 0


def hub_idle() -> bool:
    """The running loop's hub has no pending wait."""
    hub = fl_asyncio._hubs.get(asyncio.get_running_loop())
    return hub is None or _core.flpy_hub_timeout(hub.hub) == -1


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_names_and_types() -> None:
    for name in (
        "AsyncFileLock",
        "AsyncSoftFileLock",
        "AsyncUnixFileLock",
        "AsyncWindowsFileLock",
        "BaseAsyncFileLock",
        "AsyncAcquireReturnProxy",
    ):
        assert name in filelock.__all__
        assert getattr(filelock, name) is getattr(fl_asyncio, name)
    assert issubclass(AsyncFileLock, BaseAsyncFileLock)
    assert issubclass(BaseAsyncFileLock, filelock.BaseFileLock)


@pytest.mark.parametrize("cls", KINDS)
def test_async_with_and_recursion(cls, lock_path: str) -> None:
    async def main() -> None:
        lock = cls(lock_path)
        assert not lock.is_locked
        async with lock:
            assert lock.is_locked and lock.lock_counter == 1
            proxy = await lock.acquire()
            assert isinstance(proxy, AsyncAcquireReturnProxy)
            async with proxy as inner:
                assert inner is lock
                assert lock.lock_counter == 2
            assert lock.lock_counter == 1
            assert not other_process_can_take(lock_path, cls is AsyncSoftFileLock)
        assert not lock.is_locked
        assert other_process_can_take(lock_path, cls is AsyncSoftFileLock)

    run(main())


def test_constructor_rules(lock_path: str) -> None:
    with pytest.raises(ValueError, match="run_in_executor is not supported when thread_local is True"):
        AsyncFileLock(lock_path, thread_local=True)
    lock = AsyncFileLock(lock_path, thread_local=True, run_in_executor=False)
    assert lock.is_thread_local() and not lock.run_in_executor
    lock = AsyncFileLock(lock_path, timeout=3, poll_interval=0.2, blocking=False)
    assert lock.timeout == 3 and lock.poll_interval == 0.2 and not lock.blocking
    assert not lock.is_thread_local() and lock.run_in_executor and lock.executor is None
    assert lock.loop is None


def test_plain_with_raises(lock_path: str) -> None:
    lock = AsyncFileLock(lock_path)
    with pytest.raises(NotImplementedError, match="async with"):
        with lock:
            pass
    assert not lock.is_locked


def test_windows_lock_is_refused_elsewhere(lock_path: str) -> None:
    async def main() -> None:
        with pytest.raises(NotImplementedError, match="only available on Windows"):
            await AsyncWindowsFileLock(lock_path).acquire()

    if sys.platform != "win32":
        run(main())


@pytest.mark.parametrize("cls", KINDS)
def test_woken_by_sync_release(cls, lock_path: str) -> None:
    sync_cls = filelock.SoftFileLock if cls is AsyncSoftFileLock else FileLock

    async def main() -> None:
        holder = sync_cls(lock_path, thread_local=False)
        holder.acquire()
        threads = threading.active_count()
        lock = cls(lock_path)
        task = asyncio.create_task(lock.acquire())
        await asyncio.sleep(0.2)
        assert not task.done()
        assert threading.active_count() == threads  # no thread waits
        holder.release()
        await task
        assert lock.is_locked
        await lock.release()
        assert hub_idle()

    run(main())


def test_timeout_and_nonblocking(lock_path: str) -> None:
    async def main() -> None:
        holder = FileLock(lock_path, thread_local=False)
        holder.acquire()
        lock = AsyncFileLock(lock_path)
        with pytest.raises(Timeout):
            await lock.acquire(timeout=0.1)
        with pytest.raises(Timeout):
            await lock.acquire(blocking=False)
        with pytest.raises(Timeout):
            await AsyncFileLock(lock_path, timeout=0).acquire()
        assert not lock.is_locked and hub_idle()
        holder.release()

    run(main())


def test_cancel_check_gives_up(lock_path: str) -> None:
    async def main() -> None:
        holder = FileLock(lock_path, thread_local=False)
        holder.acquire()
        calls = 0

        def stop() -> bool:
            nonlocal calls
            calls += 1
            return calls >= 3

        with pytest.raises(Timeout):
            await AsyncFileLock(lock_path).acquire(poll_interval=0.01, cancel_check=stop)
        assert calls == 3 and hub_idle()
        holder.release()

    run(main())


def test_deadlock_is_task_scoped(lock_path: str) -> None:
    async def main() -> None:
        first, second = AsyncFileLock(lock_path), AsyncFileLock(lock_path)
        await first.acquire()
        # The same task waiting forever through another object: a deadlock.
        with pytest.raises(RuntimeError, match="deadlock"):
            await second.acquire()
        assert not second.is_locked

        # Another task on the same thread simply waits for the release.
        async def other() -> bool:
            await second.acquire()
            held = second.is_locked
            await second.release()
            return held

        task = asyncio.create_task(other())
        await asyncio.sleep(0.1)
        assert not task.done()
        await first.release()
        assert await task

    run(main())


def test_thread_local_is_per_task(lock_path: str) -> None:
    async def main() -> None:
        lock = AsyncFileLock(lock_path, thread_local=True, run_in_executor=False)
        await lock.acquire()

        async def other() -> None:
            assert not lock.is_locked
            with pytest.raises(Timeout):
                await lock.acquire(timeout=0)

        await asyncio.create_task(other())
        assert lock.lock_counter == 1
        await lock.release()

    run(main())


def test_cancelled_wait_leaves_nothing(lock_path: str) -> None:
    async def main() -> None:
        holder = FileLock(lock_path, thread_local=False)
        holder.acquire()
        lock = AsyncFileLock(lock_path)
        task = asyncio.create_task(lock.acquire())
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert hub_idle()
        holder.release()
        assert not lock.is_locked
        assert other_process_can_take(lock_path)

    run(main())


def test_win_landing_after_cancel_is_passed_on(lock_path: str) -> None:
    """The hub completes the wait (the lock is won) and then the task is
    cancelled before it resumes: the win is released and the next waiter
    gets it."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        holder = FileLock(lock_path, thread_local=False)
        holder.acquire()
        first, second = AsyncFileLock(lock_path), AsyncFileLock(lock_path)
        t1 = asyncio.create_task(first.acquire())
        await asyncio.sleep(0.05)
        t2 = asyncio.create_task(second.acquire())
        await asyncio.sleep(0.05)
        holder.release()
        # Dispatch now, from here: t1's wait completes (won) while t1 has
        # not run yet; then cancel it.
        hub = fl_asyncio._hubs[loop]
        for _ in range(100):
            hub.dispatch()
            if first.is_locked:
                break
            await asyncio.sleep(0)  # not awaiting t1: it stays un-resumed
        assert first.is_locked
        t1.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t1
        assert not first.is_locked
        await asyncio.wait_for(t2, 10)
        assert second.is_locked
        await second.release()
        assert other_process_can_take(lock_path)

    run(main())


def test_asyncio_timeout_leaves_nothing(lock_path: str) -> None:
    if sys.version_info < (3, 11):
        pytest.skip("asyncio.timeout() is Python 3.11+")

    async def main() -> None:
        holder = FileLock(lock_path, thread_local=False)
        holder.acquire()
        lock = AsyncFileLock(lock_path)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.2):
                await lock.acquire()
        assert hub_idle() and not lock.is_locked
        holder.release()
        assert other_process_can_take(lock_path)

    run(main())


def test_release_completes_under_cancellation(lock_path: str) -> None:
    async def main() -> None:
        lock = AsyncFileLock(lock_path)
        entered = asyncio.Event()

        async def body() -> None:
            async with lock:
                entered.set()
                await asyncio.sleep(60)

        task = asyncio.create_task(body())
        await entered.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not lock.is_locked
        assert other_process_can_take(lock_path)

    run(main())


def test_del_without_running_loop(lock_path: str) -> None:
    kept = []

    async def main() -> None:
        lock = AsyncFileLock(lock_path)
        await lock.acquire()
        kept.append(lock)

    run(main())  # the loop is closed now, the lock still held
    assert not other_process_can_take(lock_path)
    kept.clear()
    gc.collect()
    assert other_process_can_take(lock_path)


def test_many_tasks_one_thread_few_descriptors(lock_path: str) -> None:
    async def main() -> None:
        holder = FileLock(lock_path, thread_local=False)
        base = fd_count()
        holder.acquire()  # + 1 (held)
        await AsyncFileLock(lock_path + ".other").acquire(timeout=0)  # makes the loop's hub
        base += 1  # the other lock stays held
        threads = threading.active_count()
        locks = [AsyncFileLock(lock_path) for _ in range(500)]
        order: list[int] = []

        async def worker(i: int) -> None:
            async with locks[i]:
                order.append(i)
                await asyncio.sleep(0)

        tasks = []
        for i in range(500):
            tasks.append(asyncio.create_task(worker(i)))
        await asyncio.sleep(0.2)
        # One inotify instance + one open lock file, whatever the number of
        # waiting tasks (+ the holder's descriptor).
        assert fd_count() - base <= 1 + 2
        assert threading.active_count() == threads
        holder.release()
        await asyncio.gather(*tasks)
        assert sorted(order) == list(range(500))
        assert order == list(range(500))  # first come, first served

    run(main())


COUNT_SYNC = """
import filelock, sys
lock = filelock.FileLock(sys.argv[1])
for _ in range(int(sys.argv[3])):
    with lock:
        with open(sys.argv[2]) as f:
            v = int(f.read())
        with open(sys.argv[2], "w") as f:
            f.write(str(v + 1))
"""


def cli_path() -> Path | None:
    pkg = os.environ.get("FL_PYTHON_PKG_DIR")
    if not pkg:
        return None
    cli = Path(pkg).resolve().parent.parent / "cli" / "filelock"
    return cli if cli.exists() else None


def test_exclusion_with_sync_threads_processes_and_c(lock_path: str, tmp_path: Path) -> None:
    counter = tmp_path / "counter"
    counter.write_text("0")
    cli = cli_path()
    n_tasks, n_sync, n_proc, n_cli = 200, 50, 100, 20

    def bump() -> None:
        v = int(counter.read_text())
        counter.write_text(str(v + 1))

    def sync_thread() -> None:
        lock = FileLock(lock_path)
        for _ in range(n_sync):
            with lock:
                bump()

    async def main() -> None:
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", COUNT_SYNC, lock_path, str(counter), str(n_proc)],
                env=ours_env(),
            )
        ]
        if cli is not None:
            script = 'v=$(cat "$1"); echo $((v + 1)) > "$1"'
            for _ in range(n_cli):
                procs.append(
                    subprocess.Popen(
                        [str(cli), "-w", "60", lock_path, "sh", "-c", script, "sh", str(counter)]
                    )
                )
        thread = threading.Thread(target=sync_thread)
        thread.start()

        async def task() -> None:
            async with AsyncFileLock(lock_path):
                v = int(counter.read_text())
                await asyncio.sleep(0)  # other tasks run meanwhile
                counter.write_text(str(v + 1))

        await asyncio.gather(*(task() for _ in range(n_tasks)))
        await asyncio.to_thread(thread.join, DEADLINE)
        for p in procs:
            assert await asyncio.to_thread(p.wait, DEADLINE) == 0

    run(main())
    want = n_tasks + n_sync + n_proc + (n_cli if cli is not None else 0)
    assert int(counter.read_text()) == want


def test_loops_leave_no_descriptors(lock_path: str) -> None:
    """A hub (an inotify instance: 128 per user) goes with its loop, and an
    uncontended acquire makes none."""

    async def once(contended: bool) -> None:
        if contended:
            holder = FileLock(lock_path, thread_local=False)
            holder.acquire()
            task = asyncio.create_task(AsyncFileLock(lock_path).acquire())
            await asyncio.sleep(0.01)
            holder.release()
            await task
        else:
            async with AsyncFileLock(lock_path):
                assert asyncio.get_running_loop() not in fl_asyncio._hubs

    gc.collect()
    base = fd_count()
    for contended in (False, True):
        for _ in range(30):
            run(once(contended))
    gc.collect()
    assert fd_count() == base


def other_process_reads(path: str) -> bool:
    """Whether another process's ReadWriteLock gets a read lock at once."""
    code = (
        "import filelock,sys\n"
        "l=filelock.ReadWriteLock(sys.argv[1])\n"
        "try:\n l.acquire_read(timeout=0)\nexcept filelock.Timeout:\n sys.exit(3)\nl.release()\n"
    )
    rc = subprocess.run(
        [sys.executable, "-c", code, path], env=ours_env(), timeout=DEADLINE, check=False
    ).returncode
    assert rc in (0, 3), rc
    return rc == 0


def test_read_write_lock(lock_path: str) -> None:
    async def main() -> None:
        rw = filelock.AsyncReadWriteLock(lock_path)
        events: list[str] = []
        first_in = asyncio.Event()
        release_readers = asyncio.Event()

        async def reader(name: str) -> None:
            async with rw.read_lock():
                events.append(f"{name} in")
                first_in.set()
                await release_readers.wait()
            events.append(f"{name} out")

        async def writer() -> None:
            async with rw.write_lock():
                events.append("writer in")
            events.append("writer out")

        r1 = asyncio.create_task(reader("r1"))
        r2 = asyncio.create_task(reader("r2"))
        await first_in.wait()
        await asyncio.sleep(0.05)
        assert events.count("r1 in") + events.count("r2 in") == 2  # readers share
        w = asyncio.create_task(writer())
        await asyncio.sleep(0.1)
        assert "writer in" not in events
        # The waiting writer holds new readers back, here and in other processes.
        late = asyncio.create_task(reader("late"))
        await asyncio.sleep(0.1)
        assert "late in" not in events
        assert not await asyncio.to_thread(other_process_reads, lock_path)
        release_readers.set()
        await asyncio.gather(r1, r2, w, late)
        assert events.index("writer in") < events.index("late in")
        assert events.index("writer out") < events.index("late in")
        assert await asyncio.to_thread(other_process_reads, lock_path)
        with pytest.raises(Timeout):
            async with rw.write_lock(timeout=0):
                async with filelock.AsyncReadWriteLock(lock_path, is_singleton=False).write_lock(timeout=0):
                    pass
        await rw.close()

    run(main())


def test_async_singleton_uses_the_sync_registry(lock_path: str) -> None:
    # The async classes are built by the sync constructor path (_new_handle
    # and _SingletonMeta): one object per class and lock file, settings
    # checked by the core, and the object returned by a second call works.
    a = AsyncFileLock(lock_path, timeout=1, is_singleton=True)
    b = AsyncFileLock(lock_path, timeout=1, is_singleton=True)
    assert a is b and a.is_singleton
    assert AsyncFileLock._instances.get(_core.fl_singleton_key(a._h)) is a
    assert FileLock._instances.get(_core.fl_singleton_key(a._h)) is None  # one registry per class
    with pytest.raises(ValueError, match="timeout"):
        AsyncFileLock(lock_path, timeout=2, is_singleton=True)
    # Another class is another registry and another lock (as 3.32): no conflict.
    assert AsyncSoftFileLock(lock_path, timeout=1, is_singleton=True) is not a
    with pytest.raises(ValueError, match="run_in_executor"):
        AsyncFileLock(lock_path, thread_local=True, is_singleton=True)
    assert AsyncFileLock(lock_path, timeout=1, is_singleton=True) is a

    async def main() -> None:
        async with b:
            assert a.is_locked and not other_process_can_take(lock_path)
        assert not a.is_locked

    run(main())
    assert other_process_can_take(lock_path)


# ---- the sync locks' constructor options (issues 16 and 20) ------------------------


def test_constructor_passes_the_sync_options(lock_path: str) -> None:
    lock = AsyncFileLock(
        lock_path,
        context_error_policy="group",
        close_error_policy="suppress",
        fallback_to_soft=False,
        preserve_lock_file=True,
    )
    assert lock.context_error_policy == "group" and lock.close_error_policy == "suppress"
    assert not lock.fallback_to_soft and lock.preserve_lock_file
    with pytest.warns(filelock.SoftFileLockLifetimeWarning):
        soft = AsyncSoftFileLock(lock_path + ".soft", lifetime=5)
    assert soft.lifetime == 5
    with pytest.raises(ValueError):
        AsyncSoftFileLock(lock_path + ".soft2", lifetime=-1)


def test_on_acquired_runs_for_hub_wins(lock_path: str) -> None:
    fds: list[int] = []
    holder = filelock.FileLock(lock_path)

    async def main() -> None:
        lock = AsyncFileLock(lock_path, on_acquired=fds.append)
        await lock.acquire()  # at once
        assert len(fds) == 1 and fds[0] >= 0
        await lock.release()
        holder.acquire()
        task = asyncio.ensure_future(lock.acquire())
        await asyncio.sleep(0.2)
        assert not task.done() and len(fds) == 1
        holder.release()
        await task  # won in a dispatch of the loop's hub
        assert len(fds) == 2
        assert not other_process_can_take(lock_path)
        await lock.release()

    run(main())


def _open_fds() -> list[str]:
    out = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            out.append(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            pass
    return out


def test_closed_loops_kept_alive_hold_no_hub(lock_path: str) -> None:
    """A program may keep a closed loop object: its hub (an inotify instance,
    128 per user) must not live as long as that object. Closed loops' hubs
    go when the next hub is made: at most one lingers."""

    async def contended() -> None:
        holder = FileLock(lock_path, thread_local=False)
        holder.acquire()
        task = asyncio.create_task(AsyncFileLock(lock_path).acquire())
        await asyncio.sleep(0.01)
        holder.release()
        await task
        assert hub_idle()

    gc.collect()
    base = _open_fds().count("anon_inode:inotify")
    kept = []
    for _ in range(20):
        loop = asyncio.new_event_loop()
        loop.run_until_complete(asyncio.wait_for(contended(), DEADLINE))
        loop.close()
        kept.append(loop)
    gc.collect()
    assert _open_fds().count("anon_inode:inotify") <= base + 1
    assert not any(loop in fl_asyncio._hubs for loop in kept[:-1])


def test_abandoned_waiting_task_is_collected(lock_path: str) -> None:
    """A task still waiting when its loop is closed and dropped is collected
    (the hub's callback must not make a cycle the collector cannot see):
    its wait, hub and descriptors go with it."""
    holder = FileLock(lock_path, thread_local=False)
    holder.acquire()
    gc.collect()
    base = sorted(_open_fds())
    for _ in range(5):
        loop = asyncio.new_event_loop()
        task = loop.create_task(AsyncFileLock(lock_path).acquire())
        loop.run_until_complete(asyncio.sleep(0.02))
        assert not task.done()
        loop.close()
        ref = weakref.ref(task)
        del loop, task
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            gc.collect()
        assert ref() is None
    assert sorted(_open_fds()) == base
    holder.release()
    assert other_process_can_take(lock_path)


def test_failed_single_try_leaves_no_hub(lock_path: str) -> None:
    """blocking=False, timeout=0 and a deadlock fail at once: the loop keeps
    no hub (no inotify instance) for a wait that never was."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        holder = FileLock(lock_path, thread_local=False)
        holder.acquire()
        for kwargs in ({"blocking": False}, {"timeout": 0}):
            with pytest.raises(Timeout):
                await AsyncFileLock(lock_path).acquire(**kwargs)
            assert loop not in fl_asyncio._hubs
        holder.release()
        first, second = AsyncFileLock(lock_path), AsyncFileLock(lock_path)
        await first.acquire()
        with pytest.raises(RuntimeError, match="deadlock"):
            await second.acquire()
        assert loop not in fl_asyncio._hubs
        await first.release()

    run(main())


def test_on_acquired_refusal_after_a_wait(lock_path: str) -> None:
    holder = filelock.FileLock(lock_path)

    def refuse(fd: int) -> None:
        raise RuntimeError("no")

    async def main() -> None:
        lock = AsyncFileLock(lock_path, on_acquired=refuse)
        with pytest.raises(RuntimeError, match="no"):
            await lock.acquire()
        holder.acquire()
        task = asyncio.ensure_future(lock.acquire())
        await asyncio.sleep(0.2)
        holder.release()
        with pytest.raises(RuntimeError, match="no"):
            await task
        assert not lock.is_locked
        assert other_process_can_take(lock_path)
        assert hub_idle()

    run(main())


def test_thread_local_acquire_through_wait_for_is_released(lock_path: str) -> None:
    """Python 3.11's asyncio.wait_for() runs the acquire in an inner task,
    which is done once the lock is won: the hold is the caller's (it called
    acquire()), so it sees it and releases it (the pure package's
    per-thread context does the same)."""

    async def main() -> None:
        lock = AsyncFileLock(lock_path, thread_local=True, run_in_executor=False)
        await asyncio.wait_for(lock.acquire(), DEADLINE)
        assert lock.is_locked and lock.lock_counter == 1
        await lock.release()
        assert not lock.is_locked
        assert other_process_can_take(lock_path)
        # And with recursion: the taken-over hold counts on.
        await asyncio.wait_for(lock.acquire(), DEADLINE)
        await lock.acquire()
        assert lock.lock_counter == 2
        await lock.release()
        assert lock.is_locked and not other_process_can_take(lock_path)
        await lock.release()
        assert other_process_can_take(lock_path)

    run(main())


def test_thread_local_hold_of_an_ended_task_is_taken_over(lock_path: str) -> None:
    """A task whose body acquires ends holding the lock: the task of that
    thread that uses the object next releases it, instead of the lock
    staying held by a task nobody can release for."""

    async def main() -> None:
        lock = AsyncFileLock(lock_path, thread_local=True, run_in_executor=False)

        async def grab() -> None:
            await lock.acquire()

        await asyncio.create_task(grab())
        assert not other_process_can_take(lock_path)

        async def releaser() -> None:
            assert lock.is_locked
            await lock.release()

        await asyncio.create_task(releaser())
        assert not lock.is_locked
        assert other_process_can_take(lock_path)

    run(main())


def test_thread_local_hold_of_a_running_task_is_not_taken_over(lock_path: str) -> None:
    """Only an ended task's hold is taken over: another task still running
    keeps its own, so a second task waits for it (exclusion between tasks)
    and its release() releases nothing of the first's."""

    async def main() -> None:
        lock = AsyncFileLock(lock_path, thread_local=True, run_in_executor=False)
        held, go = asyncio.Event(), asyncio.Event()

        async def holder() -> None:
            await lock.acquire()
            held.set()
            await go.wait()
            assert lock.is_locked
            await lock.release()

        first = asyncio.create_task(holder())
        await held.wait()
        assert not lock.is_locked
        await lock.release()  # not ours: nothing happens
        assert not other_process_can_take(lock_path)
        with pytest.raises(filelock.Timeout):
            await lock.acquire(timeout=0.05)
        second = asyncio.create_task(lock.acquire())
        await asyncio.sleep(0.05)
        assert not second.done()
        go.set()
        await first
        await asyncio.wait_for(second, DEADLINE)
        # second ended holding it: this task takes it over and releases.
        assert lock.is_locked
        await lock.release()
        assert other_process_can_take(lock_path)

    run(main())


def test_win_whose_callback_raises_is_given_back(lock_path: str) -> None:
    """An asynchronous exception (KeyboardInterrupt from a signal handler)
    can land in the hub's completion callback: the win it was reporting
    reaches nobody, so the binding gives it back instead of leaving the lock
    held with no one to release it, and the dispatch raises the exception
    (not swallowed: the loop stops, its tasks get cancelled)."""
    holder = FileLock(lock_path, thread_local=False)
    holder.acquire()
    lock = FileLock(lock_path, thread_local=False)
    hub = _core.flpy_hub_new()
    calls = []

    def interrupted(exc: BaseException | None) -> None:
        calls.append(exc)
        raise KeyboardInterrupt

    wait = _core.flpy_hub_acquire(hub, lock._h, 7, 0, None, None, None, interrupted)
    assert wait is not None
    holder.release()
    raised = False
    for _ in range(400):
        if calls:
            break
        try:
            _core.flpy_hub_dispatch(hub)
        except KeyboardInterrupt:
            raised = True
        t = _core.flpy_hub_timeout(hub)
        if t > 0:
            time.sleep(min(t, 0.05))
    assert calls == [None]  # it won, and the report was lost
    assert raised  # not swallowed
    assert _core.flpy_lock_counter_as(lock._h, 7) == 0
    assert other_process_can_take(lock_path)


def test_win_for_a_future_cancelled_in_the_same_turn_is_given_back(lock_path: str) -> None:
    """The task is cancelled (its future with it) and, before it runs
    again, the hub's dispatch wins the lock for it: the future cannot take
    the result, so the win is given back, not left held."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        holder = FileLock(lock_path, thread_local=False)
        holder.acquire()
        lock = AsyncFileLock(lock_path)
        waiter = asyncio.create_task(lock.acquire())
        await asyncio.sleep(0.05)
        hub = fl_asyncio._hubs[loop]
        holder.release()
        # In one turn, with no await between: cancel, then dispatch.
        waiter.cancel()
        for _ in range(200):
            hub.dispatch()
            if hub_idle():
                break
            time.sleep(0.005)
        assert hub_idle()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert not lock.is_locked
        assert other_process_can_take(lock_path)

    run(main())


def test_interrupt_while_setting_the_result_gives_the_win_back(lock_path: str) -> None:
    """An asynchronous exception raised while the win is handed to the
    future (here its set_result raises KeyboardInterrupt) propagates out of
    the dispatch, and the win goes back: nobody learnt of it."""

    class Interrupted(asyncio.Future):  # type: ignore[type-arg]
        def set_result(self, result: object) -> None:
            raise KeyboardInterrupt

    async def main() -> None:
        loop = asyncio.get_running_loop()
        holder = FileLock(lock_path, thread_local=False)
        holder.acquire()
        lock = AsyncFileLock(lock_path)

        def once() -> asyncio.Future:  # type: ignore[type-arg]
            del loop.create_future  # only the wait's future
            return Interrupted(loop=loop)

        loop.create_future = once  # type: ignore[method-assign]
        waiter = asyncio.create_task(lock.acquire())
        for _ in range(10):
            await asyncio.sleep(0)  # no future made here
        assert "create_future" not in vars(loop) and not waiter.done()
        hub = fl_asyncio._hubs[loop]
        loop.remove_reader(hub.fd)  # dispatched below, by hand
        holder.release()
        raised = False
        for _ in range(200):
            try:
                hub.dispatch()
            except KeyboardInterrupt:
                raised = True
            if hub_idle():
                break
            time.sleep(0.005)
        assert raised and hub_idle()
        assert other_process_can_take(lock_path)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert not lock.is_locked
        loop.add_reader(hub.fd, hub.dispatch)

    run(main())


def test_read_write_cancelled_writer_leaves_nothing(lock_path: str) -> None:
    """A writer waiting past the gate (holding it, so new readers wait) is
    cancelled: the gate goes too. And a writer whose win lands before the
    cancel gives back the lock and the gate."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        rw = filelock.AsyncReadWriteLock(lock_path)
        release = asyncio.Event()
        reading = asyncio.Event()

        async def reader() -> None:
            async with rw.read_lock():
                reading.set()
                await release.wait()

        async def writer() -> None:
            # A contender of its own: acquire() called in this task (a
            # create_task(rw.acquire_write()) would be this test's hold).
            await rw.acquire_write()

        r = asyncio.create_task(reader())
        await reading.wait()
        w = asyncio.create_task(writer())
        await asyncio.sleep(0.05)
        assert not await asyncio.to_thread(other_process_reads, lock_path)  # gate held
        w.cancel()
        with pytest.raises(asyncio.CancelledError):
            await w
        assert hub_idle()
        assert await asyncio.to_thread(other_process_reads, lock_path)

        release.set()
        await r
        # The win lands, then the cancel: this task reads, the writer
        # waits; releasing (which awaits nothing) hands the lock over at
        # once, and the writer is cancelled before it resumes.
        await rw.acquire_read()
        w = asyncio.create_task(writer())
        await asyncio.sleep(0.05)
        assert loop in fl_asyncio._hubs and not w.done()
        await rw.release()
        assert _core.flpy_lock_counter_as(rw._handle(), fl_asyncio._task_tokens[id(w)][1]) == 1
        assert not w.done()
        w.cancel()
        with pytest.raises(asyncio.CancelledError):
            await w
        assert await asyncio.to_thread(other_process_reads, lock_path)
        async with rw.write_lock(timeout=0):
            pass
        await rw.close()

    run(main())


# ---- attacks on the thread-local hand-over (a-async) ----------------------


def test_thread_local_hold_won_by_an_inner_task_excludes_other_tasks(lock_path: str) -> None:
    """The inner task that Python 3.11's asyncio.wait_for() (or a
    create_task) runs lock.acquire() in ends once it has won, but the hold
    is its caller's, which is still in its critical section: another task of
    the same loop must wait for it, not take the hold over and enter too."""

    async def main() -> None:
        lock = AsyncFileLock(lock_path, thread_local=True, run_in_executor=False)
        entered, leave = asyncio.Event(), asyncio.Event()

        async def holder(make) -> None:
            await make(lock.acquire())
            entered.set()
            await leave.wait()
            assert lock.is_locked and lock.lock_counter == 1
            await lock.release()

        for make in (lambda c: asyncio.wait_for(c, DEADLINE), asyncio.ensure_future):
            entered.clear()
            leave.clear()
            first = asyncio.create_task(holder(make))
            await entered.wait()

            async def intruder() -> bool:
                seen = lock.is_locked
                with pytest.raises(filelock.Timeout):
                    await lock.acquire(timeout=0.05)
                await lock.release()  # not its hold: nothing happens
                return seen

            assert not await asyncio.create_task(intruder())
            assert not other_process_can_take(lock_path)
            leave.set()
            await first
            assert other_process_can_take(lock_path)

    run(main())


def test_thread_local_hold_is_never_handed_to_another_thread(lock_path: str) -> None:
    """A task that ended holding a thread-local lock on one thread's loop
    leaves its hold to that thread only (the pure package's context is per
    thread): a task on another thread's loop neither sees it nor enters."""
    lock = AsyncFileLock(lock_path, thread_local=True, run_in_executor=False)
    seen: dict[str, object] = {}

    async def grab() -> None:
        await lock.acquire()

    async def on_a() -> None:
        await asyncio.create_task(grab())  # ends holding it

    thread = threading.Thread(target=lambda: run(on_a()))
    thread.start()
    thread.join(DEADLINE)

    async def on_b() -> None:
        seen["locked"] = lock.is_locked
        seen["counter"] = lock.lock_counter
        with pytest.raises(filelock.Timeout):
            await lock.acquire(timeout=0.05)
        await lock.release()

    run(on_b())
    assert seen == {"locked": False, "counter": 0}
    assert not other_process_can_take(lock_path)


def test_acquire_and_release_are_coroutine_functions() -> None:
    """acquire()/release() note their caller and return the coroutine:
    asyncio's check (and inspect's from 3.12) still calls them coroutine
    functions, and a finalizer never calls them (it could not await)."""
    for cls in (AsyncFileLock, AsyncSoftFileLock, filelock.AsyncSoftFileLease):
        assert asyncio.iscoroutinefunction(cls.acquire) and asyncio.iscoroutinefunction(cls.release)
        if sys.version_info >= (3, 12):
            import inspect

            assert inspect.iscoroutinefunction(cls.acquire)
        assert not cls._fl_release_hook


def test_thread_local_hold_of_a_task_whose_loop_closed_is_taken_over(lock_path: str) -> None:
    """A task holding a thread-local lock whose loop was closed stays
    pending forever (a closed loop never runs again): its hold is an ended
    task's, which a task of the same thread takes over and releases,
    instead of every later acquire waiting for a release that never comes."""
    lock = AsyncFileLock(lock_path, thread_local=True, run_in_executor=False)
    loop = asyncio.new_event_loop()
    entered = []

    async def grab() -> None:
        await lock.acquire()
        entered.append(True)
        await asyncio.sleep(3600)

    task = loop.create_task(grab())
    loop.run_until_complete(asyncio.sleep(0.05))
    assert entered
    loop.close()  # task stays pending, holding the lock

    async def after() -> None:
        assert lock.is_locked
        await lock.release()
        assert not lock.is_locked
        await lock.acquire(timeout=DEADLINE)
        await lock.release()

    run(after())
    assert other_process_can_take(lock_path)
    assert not task.done()  # kept alive to the end: not collected meanwhile
    # Gone now, not at a later test's collection (its lock's finalizer would
    # log into that test's records).
    task._log_destroy_pending = False  # the pending state is the point
    task.get_coro().close()
    del task, lock
    gc.collect()


def test_read_write_hold_won_by_an_inner_task_is_the_callers(lock_path: str) -> None:
    """AsyncReadWriteLock's holds are per task: one won by the inner task of
    Python 3.11's asyncio.wait_for() (or a create_task) is its caller's, so
    the caller's release() frees it (as in the pure package) instead of the
    hold staying with an ended task, and the caller's next acquire waiting
    for it forever."""

    def other_can_write() -> bool:
        code = (
            "import filelock,sys\nl=filelock.ReadWriteLock(sys.argv[1], is_singleton=False)\n"
            "try:\n l.acquire_write(timeout=0)\nexcept filelock.Timeout:\n sys.exit(3)\n"
        )
        rc = subprocess.run(
            [sys.executable, "-c", code, lock_path], env=ours_env(), timeout=DEADLINE, check=False
        ).returncode
        assert rc in (0, 3), rc
        return rc == 0

    async def main() -> None:
        rw = filelock.AsyncReadWriteLock(lock_path)
        await asyncio.wait_for(rw.acquire_write(), DEADLINE)
        assert not await asyncio.to_thread(other_can_write)
        await rw.release()
        assert await asyncio.to_thread(other_can_write)
        await asyncio.create_task(rw.acquire_read())
        await asyncio.wait_for(rw.acquire_read(timeout=DEADLINE), DEADLINE)  # recursion, no wait
        await rw.release()
        await rw.release()
        assert await asyncio.to_thread(other_can_write)
        await rw.close()

    run(main())


def test_thread_local_is_locked_does_not_claim_an_ended_hold(lock_path: str) -> None:
    """Reading is_locked / lock_counter reports an ended task's hold (the
    task would act under it) but does not take it: a task that only looks
    (a monitor that keeps running) must not become its holder, or the task
    that then releases it could not."""

    async def main() -> None:
        lock = AsyncFileLock(lock_path, thread_local=True, run_in_executor=False)

        async def grab() -> None:
            await lock.acquire()

        await asyncio.create_task(grab())
        looked, stop = asyncio.Event(), asyncio.Event()

        async def monitor() -> None:
            assert lock.is_locked and lock.lock_counter == 1
            looked.set()
            await stop.wait()

        m = asyncio.create_task(monitor())
        await looked.wait()
        assert lock.is_locked
        await lock.release()
        assert not lock.is_locked
        assert other_process_can_take(lock_path)
        stop.set()
        await m

    run(main())


def test_read_write_hold_of_an_ended_task_is_taken_over(lock_path: str) -> None:
    """`asyncio.run(rw.acquire_write())` ends the task holding the lock: the
    next task of this thread using the object releases it (the pure
    package's hold is the instance's), instead of the hold staying with a
    task nobody can release for; another thread's task never takes it."""
    rw = filelock.AsyncReadWriteLock(lock_path)
    asyncio.run(rw.acquire_write())
    assert not other_process_reads(lock_path)

    async def from_another_thread() -> None:
        with pytest.raises(filelock.Timeout):
            await rw.acquire_read(timeout=0.05)
        await rw.release()  # not its hold: nothing happens

    thread = threading.Thread(target=lambda: run(from_another_thread()))
    thread.start()
    thread.join(DEADLINE)
    assert not other_process_reads(lock_path)
    asyncio.run(rw.release())
    assert other_process_reads(lock_path)


def test_thread_local_acquire_called_by_an_ended_task_is_the_awaiters(lock_path: str) -> None:
    """acquire() called in a task that ended before the coroutine ran (a
    factory task returning it): the hold is the task that runs it, not the
    ended caller's (which any task could take over while the runner is in
    its critical section)."""

    async def main() -> None:
        lock = AsyncFileLock(lock_path, thread_local=True, run_in_executor=False)

        async def factory():
            return lock.acquire()

        coro = await asyncio.create_task(factory())
        await coro
        assert lock.is_locked

        async def intruder() -> None:
            assert not lock.is_locked
            with pytest.raises(filelock.Timeout):
                await lock.acquire(timeout=0.05)

        await asyncio.create_task(intruder())
        await lock.release()
        assert other_process_can_take(lock_path)

    run(main())
