#!/usr/bin/python3
"""
asyncio waiting, ours (the C core's wait hub) against the pure-Python
package's AsyncFileLock, in one run. Each implementation runs in its own
child process (both packages are called `filelock`):

  wake-up   a task waits for a lock that a thread of the same process holds
            with a bare os.open + fcntl.flock; the thread notes the time and
            closes the file; the task notes when its acquire returned. The
            median and 90th percentile of that delay over --rounds rounds.
  crowd     --tasks tasks of one event loop wait for one lock file held by
            a thread: the process's CPU use while they wait (percent of one
            core over --idle seconds), its open descriptors and threads; then
            the thread releases and every task takes the lock in turn
            (`async with lock: pass`): handoffs per second (stopped after
            --budget seconds).
  floor     the wake-up of the least an asyncio lock woken by the kernel
            can do (one inotify descriptor watched with add_reader, one
            flock(LOCK_NB) per event, a future): what the loop and the
            kernel cost on this machine, below which no design gets.

Usage:
  PYTHONPATH=<build>/bindings/python/pkg FL_PURE_FILELOCK_DIR=/work/pure/newest/src \\
      /usr/bin/python3 bench/bench_asyncio.py [--rounds 200] [--tasks 10000]

FL_PURE_FILELOCK_DIR: the directory holding the pure package's `filelock/`
(default: Debian's dist-packages, whose 3.9 has no asyncio locks). Nothing is
asserted: the figures are for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def hold(path: str) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


async def wake_up(mod, path: str, rounds: int) -> list[float]:
    delays = []
    for _ in range(rounds):
        fd = hold(path)
        lock = mod.AsyncFileLock(path)
        released = []

        def closer() -> None:
            time.sleep(0.02)  # let the task start waiting
            released.append(time.perf_counter())
            os.close(fd)

        t = threading.Thread(target=closer)
        t.start()
        await lock.acquire()
        woke = time.perf_counter()
        await lock.release()
        t.join()
        delays.append((woke - released[0]) * 1e3)
    return delays


async def crowd(mod, path: str, tasks: int, idle: float, budget: float) -> dict:
    fd = hold(path)
    locks = [mod.AsyncFileLock(path) for _ in range(tasks)]
    done = 0
    last = 0.0

    async def worker(lock) -> None:
        nonlocal done, last
        async with lock:
            done += 1
        # The rate's end is the last handoff itself, not the check loop's
        # next 50 ms tick below (at 10k+ handoffs/s that tick was a third of
        # the whole time: 2,000 handoffs read as 38.9k/s or 19.9k/s by
        # whether they ended just before or just after a tick).
        last = time.perf_counter()

    running = [asyncio.create_task(worker(lock)) for lock in locks]
    await asyncio.sleep(1.0)  # every task is waiting now
    fds = len(os.listdir("/proc/self/fd")) - 1  # minus the holder's
    threads = threading.active_count()
    c0, w0 = cpu_seconds(), time.perf_counter()
    await asyncio.sleep(idle)
    cpu = (cpu_seconds() - c0) / (time.perf_counter() - w0) * 100
    t0, c1 = time.perf_counter(), cpu_seconds()
    os.close(fd)
    end = t0 + budget
    while done < tasks and time.perf_counter() < end:
        await asyncio.sleep(0.05)
    elapsed = (last if done == tasks else time.perf_counter()) - t0
    handoff_cpu = cpu_seconds() - c1
    finished = done
    for t in running:
        t.cancel()
    await asyncio.gather(*running, return_exceptions=True)
    return {
        "tasks": tasks,
        "waiting_cpu_percent": cpu,
        "fds_while_waiting": fds,
        "threads_while_waiting": threads,
        "handoffs": finished,
        "handoffs_per_s": finished / elapsed,
        "cpu_us_per_handoff": handoff_cpu / max(finished, 1) * 1e6,
    }


class _FloorLock:
    """The least an asyncio lock woken by the kernel can do, for the floor
    row: one inotify descriptor (ctypes; kept, as closing one waits for the
    kernel's SRCU grace period) watched with add_reader, and on each event
    one flock(LOCK_NB) attempt that completes a future (and a retry timer).
    No owner tracking, no deadlines, no cancellation: not a lock to use,
    only the measure of what the loop and the kernel cost on this machine."""

    libc: Any = None
    ino = -1

    def __init__(self, path: str) -> None:
        import ctypes

        if _FloorLock.libc is None:
            _FloorLock.libc = ctypes.CDLL(None, use_errno=True)
            _FloorLock.ino = _FloorLock.libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        self.path = path

    async def acquire(self) -> None:
        loop = asyncio.get_running_loop()
        ino = self.ino
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        wd = self.libc.inotify_add_watch(ino, self.path.encode(), 0x8 | 0x10)  # IN_CLOSE_*
        fut = loop.create_future()
        timer: list[asyncio.TimerHandle] = []

        def ready() -> None:
            event = True
            try:
                os.read(ino, 4096)
            except BlockingIOError:
                event = False
            for t in timer:
                t.cancel()
            timer.clear()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                # The close's event comes before the kernel removes its
                # locks: an attempt at once may lose; try again soon (as the
                # core's hub does), else the next event could be never.
                timer.append(loop.call_later(0.001 if event else 0.05, ready))
                return
            if not fut.done():
                fut.set_result(None)

        loop.add_reader(ino, ready)
        ready()
        try:
            await fut
        finally:
            for t in timer:
                t.cancel()
            loop.remove_reader(ino)
            self.libc.inotify_rm_watch(ino, wd)
        self.fd = fd

    async def release(self) -> None:
        os.close(self.fd)


class _FloorModule:
    __version__ = "floor"
    __file__ = "bench_asyncio.py (_FloorLock)"
    AsyncFileLock = _FloorLock


def child(args: argparse.Namespace) -> None:
    if args.child == "floor":
        floor(args)
        return
    if args.child == "pure":
        base = os.environ.get("FL_PURE_FILELOCK_DIR", "/usr/lib/python3/dist-packages")
        sys.path.insert(0, base)
        os.environ.pop("PYTHONPATH", None)
        sys.path = [p for p in sys.path if "bindings/python/pkg" not in p]
    import filelock as mod

    if not hasattr(mod, "AsyncFileLock"):
        print(json.dumps({"error": f"{mod.__file__} has no AsyncFileLock"}))
        return
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "x.lock")
        async def main() -> dict:
            # The loop's own descriptors are not counted.
            fd0 = len(os.listdir("/proc/self/fd"))
            delays = await wake_up(mod, path, args.rounds)
            res = {
                "version": getattr(mod, "__version__", "?"),
                "file": mod.__file__,
                "fds_at_start": fd0,
                "wake_median_ms": statistics.median(delays),
                "wake_p90_ms": statistics.quantiles(delays, n=10)[-1],
            }
            res.update(await crowd(mod, path + ".crowd", args.tasks, args.idle, args.budget))
            return res

        print(json.dumps(asyncio.run(main())))


def floor(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "x.lock")

        async def run() -> dict:
            delays = await wake_up(_FloorModule, path, args.rounds)
            return {
                "version": "floor",
                "wake_median_ms": statistics.median(delays),
                "wake_p90_ms": statistics.quantiles(delays, n=10)[-1],
            }

        print(json.dumps(asyncio.run(run())))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=200)
    ap.add_argument("--tasks", type=int, default=10000)
    ap.add_argument("--idle", type=float, default=3.0)
    ap.add_argument("--budget", type=float, default=60.0)
    ap.add_argument("--child", choices=["ours", "pure", "floor"])
    args = ap.parse_args()
    if args.child:
        child(args)
        return 0
    rows = {}
    for impl in ("floor", "ours", "pure"):
        out = subprocess.run(
            [sys.executable, __file__, "--child", impl, "--rounds", str(args.rounds), "--tasks",
             str(args.tasks), "--idle", str(args.idle), "--budget", str(args.budget)],
            capture_output=True, text=True, check=False,
        )
        if out.returncode != 0:
            print(f"{impl}: failed\n{out.stderr}", file=sys.stderr)
            continue
        rows[impl] = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"{'':8} {'version':>12} {'wake med':>9} {'wake p90':>9} {'tasks':>6} {'CPU %':>7} "
          f"{'fds':>5} {'threads':>7} {'handoffs/s':>10} {'CPU us/handoff':>14}")
    for impl, r in rows.items():
        if "error" in r:
            print(f"{impl:8} {r['error']}")
            continue
        if impl == "floor":
            print(f"{impl:8} {r['version']:>12} {r['wake_median_ms']:8.3f}ms {r['wake_p90_ms']:8.3f}ms"
                  "  (asyncio + inotify + flock, nothing else)")
            continue
        print(f"{impl:8} {r['version']:>12} {r['wake_median_ms']:8.3f}ms {r['wake_p90_ms']:8.3f}ms "
              f"{r['tasks']:>6} {r['waiting_cpu_percent']:7.2f} "
              f"{r['fds_while_waiting'] - r['fds_at_start']:>+5} {r['threads_while_waiting']:>7} "
              f"{r['handoffs_per_s']:10.0f} {r['cpu_us_per_handoff']:14.1f}  ({r['handoffs']} in budget)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
