#!/usr/bin/python3
"""
The soft lock from Python, side by side in one run (issue 13):

  uncontended  `with SoftFileLock(...): pass`, microseconds per iteration
               (best of R runs of N), for ours, Debian's pure-Python
               filelock, and a floor: Python's own os.open(O_EXCL) + write of
               a 3-line record + close + unlink
  contended    P processes x K acquisitions each of one soft lock (each hold
               increments a counter in a file), acquisitions per second over
               the whole run; the counter is checked (a lost increment would
               be a broken lock, reported as such)

Usage:
  PYTHONPATH=<build>/bindings/python/pkg /usr/bin/python3 bench/bench_soft.py \
      [--iterations N] [--repeat R] [--procs P] [--each K]

Nothing is asserted on speed: the figures go to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import socket
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_python import best_of, load_pure_filelock  # noqa: E402


def contended_worker(which: str, path: str, counter: str, each: int, start, done) -> None:
    if which == "ours":
        import filelock as mod
    else:
        mod = load_pure_filelock()
    lock = mod.SoftFileLock(path)
    start.wait()
    for _ in range(each):
        with lock:
            with open(counter, "r+") as f:
                n = int(f.read() or 0)
                f.seek(0)
                f.write(str(n + 1))
                f.truncate()
    done.put(os.getpid())


def contended(which: str, tmp: str, procs: int, each: int) -> float:
    ctx = mp.get_context("fork")
    path = os.path.join(tmp, f"contended-{which}.lock")
    counter = os.path.join(tmp, f"counter-{which}")
    with open(counter, "w") as f:
        f.write("0")
    start = ctx.Event()
    done = ctx.Queue()
    workers = [ctx.Process(target=contended_worker, args=(which, path, counter, each, start, done)) for _ in range(procs)]
    for w in workers:
        w.start()
    time.sleep(0.3)
    t0 = time.perf_counter()
    start.set()
    for _ in workers:
        done.get(timeout=600)
    elapsed = time.perf_counter() - t0
    for w in workers:
        w.join(timeout=60)
    with open(counter) as f:
        got = int(f.read())
    if got != procs * each:
        print(f"!! {which}: counter {got}, expected {procs * each}: the lock lost increments")
    return procs * each / elapsed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--iterations", type=int, default=20_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--procs", type=int, default=8)
    ap.add_argument("--each", type=int, default=500)
    args = ap.parse_args()

    import filelock as ours

    pure = load_pure_filelock()
    tmp = tempfile.mkdtemp(prefix="fl-bench-soft-")

    def run_with(lock):
        def loop(n: int) -> None:
            for _ in range(n):
                with lock:
                    pass

        return loop

    record = f"{os.getpid()}\n{socket.gethostname()}\n1234567890123456789012345678901234567890\n".encode()
    floor_path = os.path.join(tmp, "floor.lock")

    def floor(n: int) -> None:
        o, w, c, u = os.open, os.write, os.close, os.unlink
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
        for _ in range(n):
            fd = o(floor_path, flags, 0o644)
            w(fd, record)
            c(fd)
            u(floor_path)

    rows: list[tuple[str, float, float | None]] = []
    rows.append(("ours SoftFileLock", best_of(run_with(ours.SoftFileLock(os.path.join(tmp, "a.lock"))), args.iterations, args.repeat),
                 contended("ours", tmp, args.procs, args.each)))
    if pure is not None:
        rows.append((f"pure SoftFileLock {pure.__version__}",
                     best_of(run_with(pure.SoftFileLock(os.path.join(tmp, "b.lock"))), args.iterations, args.repeat),
                     contended("pure", tmp, args.procs, args.each)))
    rows.append(("floor O_EXCL+write+close+unlink", best_of(floor, args.iterations, args.repeat), None))

    print(f"python {sys.version.split()[0]}, ours from {os.path.dirname(ours.__file__)}, {os.cpu_count()} cpus")
    print(f"{'variant':34} {'uncontended us':>15} {f'{args.procs}x{args.each} acq/s':>14}")
    for name, us, rate in rows:
        print(f"{name:34} {us:15.2f} {'' if rate is None else f'{rate:14.0f}'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
