"""One hostile on_acquired hook of an asyncio wait, in its own process
(test_async_hook_attack.py runs it: a crash or a hang must not take pytest
with it). argv: scenario name, lock path, "dispatch" (the win comes after a
wait, inside the hub's dispatch) or "once" (won at once inside
fl_hub_acquire, the loop's hub already made by a pending wait).

Each scenario ends with the lock released by whoever the API says holds
it; the parent then checks from another process that the file is free.
Prints "RESULT <what the waiting task got>" on success."""

from __future__ import annotations

import asyncio
import gc
import os
import subprocess
import sys

import filelock
from filelock import AsyncFileLock, FileLock

NAME, PATH, WHEN = sys.argv[1], sys.argv[2], sys.argv[3]
OTHER = PATH + ".other"


def taken_elsewhere(path: str = PATH) -> bool:
    """Whether another process finds the file locked (flock(1), no wait)."""
    return subprocess.run(["flock", "-n", path, "true"], check=False).returncode != 0


def step(coro) -> None:
    """Runs a coroutine by hand up to its first suspension: the way a sync
    hook reaches the async API's synchronous parts."""
    try:
        coro.send(None)
    except StopIteration:
        return
    coro.close()


async def main() -> str:
    loop = asyncio.get_running_loop()
    state: dict = {}

    def hook(fd: int) -> None:
        state["calls"] = state.get("calls", 0) + 1
        if state["calls"] > 1:
            return
        task = state["task"]
        if NAME == "cancel_own":
            task.cancel()
        elif NAME == "close_own":
            # The waiting coroutine ends here: its wait is cancelled (and
            # its frame freed) while the hub is winning that very wait.
            task.get_coro().close()
        elif NAME == "close_own_drop":
            task.get_coro().close()
            state.pop("lock", None)
            gc.collect()
        elif NAME == "cancel_other":
            (state.get("other_task") or state["parked"]).cancel()
        elif NAME == "close_other":
            (state.get("other_task") or state["parked"]).get_coro().close()
        elif NAME == "create_task":
            state["spawned_lock"] = AsyncFileLock(PATH)
            state["spawned"] = loop.create_task(state["spawned_lock"].acquire())
        elif NAME == "step_acquire_same":
            state["stepped_lock"] = AsyncFileLock(PATH)
            step(state["stepped_lock"].acquire())
        elif NAME == "step_acquire_other":
            other = AsyncFileLock(OTHER)
            state["other_lock"] = other
            step(other.acquire())
        elif NAME == "sync_timeout0":
            try:
                FileLock(PATH, timeout=0).acquire()
            except filelock.Timeout:
                state["sync"] = "Timeout"
        elif NAME == "sync_forever":
            try:
                FileLock(PATH).acquire()
            except RuntimeError as exc:
                state["sync"] = f"RuntimeError {exc}"
        elif NAME == "release_other_hold":
            # Another task's hold of another file, released by hand: the
            # release re-enters the hub (release, then its dispatch).
            step(state["other_lock"].release())
        elif NAME == "release_self":
            step(state["lock"].release())
        elif NAME == "keyboard_interrupt":
            raise KeyboardInterrupt
        elif NAME == "system_exit":
            raise SystemExit(7)
        elif NAME == "run_until_complete":
            try:
                loop.run_until_complete(asyncio.sleep(0))
            except RuntimeError as exc:
                state["nested"] = str(exc)
        elif NAME == "asyncio_run":
            coro = asyncio.sleep(0)
            try:
                asyncio.run(coro)
            except RuntimeError as exc:
                coro.close()
                state["nested"] = str(exc)
        elif NAME == "fork":
            pid = os.fork()
            if pid == 0:
                state["child"] = True
            else:
                state["pid"] = pid
        else:
            raise AssertionError(NAME)

    lock = AsyncFileLock(PATH, on_acquired=hook)
    state["lock"] = lock
    if NAME in ("cancel_other", "close_other", "release_other_hold"):
        other_lock = AsyncFileLock(OTHER if NAME == "release_other_hold" else PATH)
        state["other_lock"] = other_lock
    holder = FileLock(PATH, thread_local=False)
    parked = None
    if WHEN == "dispatch":
        holder.acquire()
    else:
        # A pending wait on another file makes the loop's hub, so that the
        # acquire below goes through fl_hub_acquire and wins there at once.
        side = FileLock(PATH + ".side", thread_local=False)
        side.acquire()
        parked = asyncio.ensure_future(AsyncFileLock(PATH + ".side").acquire())
        state["parked"] = parked
        await asyncio.sleep(0.05)
    if NAME == "release_other_hold":
        await state["other_lock"].acquire()
    task = asyncio.ensure_future(lock.acquire())
    state["task"] = task
    if NAME in ("cancel_other", "close_other") and WHEN == "dispatch":
        # Waits behind the task being won (in "once" mode the hook picks
        # the wait parked on the side file instead).
        await asyncio.sleep(0.05)
        state["other_task"] = asyncio.ensure_future(state["other_lock"].acquire())
    await asyncio.sleep(0.05)
    if WHEN == "dispatch":
        holder.release()
    got = "?"
    try:
        await asyncio.wait_for(asyncio.shield(task), 10)
        got = "won"
    except asyncio.CancelledError:
        got = "CancelledError"
    except BaseException as exc:  # noqa: BLE001 - reported
        got = type(exc).__name__
    if state.get("child"):
        # The hook forked and this is the child: it must not hold (nor
        # release) the parent's lock.
        os._exit(0 if got != "won" or not lock.is_locked else 5)
    if "pid" in state:
        _, status = os.waitpid(state["pid"], 0)
        got += f" child={os.waitstatus_to_exitcode(status)}"
        assert taken_elsewhere() == (got.startswith("won")), "the parent's hold after the fork"
    held = got.startswith("won")
    if held:
        assert lock.is_locked
        assert taken_elsewhere(), "the API says held, the file is free"
        await lock.release()
    for key, owner in (("spawned", "spawned_lock"), ("other_task", "other_lock")):
        t = state.get(key)
        if t is not None:
            try:
                await asyncio.wait_for(t, 10)
                got += f" {key}=won"
            except BaseException as exc:  # noqa: BLE001
                got += f" {key}={type(exc).__name__}"
            if t.done() and not t.cancelled() and t.exception() is None:
                # That task's hold: released for it (its own object).
                await state[owner]._release_for(t, False)
    for key in ("other_lock", "stepped_lock"):
        o = state.get(key)
        if o is not None and o.is_locked:
            got += f" {key}=held"
            await o.release(force=True)
    for key in ("sync", "nested"):
        if key in state:
            got += f" {key}={state[key]!r}"
    if parked is not None:
        side.release()
        try:
            await asyncio.wait_for(parked, 10)
            got += " parked=won"
        except BaseException as exc:  # noqa: BLE001
            got += f" parked={type(exc).__name__}"
    got += f" calls={state.get('calls', 0)}"
    return got


def run() -> None:
    try:
        got = asyncio.run(main())
    except BaseException as exc:  # noqa: BLE001 - reported
        got = f"loop raised {type(exc).__name__}"
    print("RESULT", got, flush=True)
    gc.collect()
    # Nothing of ours may still hold the files once everything was released.
    sys.exit(10 if taken_elsewhere() else 0)


run()
