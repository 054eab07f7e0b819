#!/usr/bin/python3
"""
ReadWriteLock from Python, in one run:

  uncontended  - acquire+release per iteration: read and write through
                 acquire_*()/release() and through the read_lock()/write_lock()
                 context managers, beside FileLock's `with lock: pass`
  writer wait  - how long acquire_write() waits while 3 reader processes
                 (3 threads each) re-acquire read locks back to back; the
                 median and worst of --trials attempts

Usage:
  PYTHONPATH=<build>/bindings/python/pkg /usr/bin/python3 bench/bench_python_rw.py \
      [--iterations N] [--repeat R] [--trials T]

Uncontended figures are the best of R runs of N iterations. Debian's
pure-Python filelock (3.9) has no ReadWriteLock; when an installed pure
package has one, it is measured beside ours. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Callable

READER = r"""
import random, select, sys, threading, time, filelock
lock = filelock.ReadWriteLock(sys.argv[1])
stop = threading.Event()
def read():
    while not stop.is_set():
        with lock.read_lock(timeout=30):
            time.sleep(random.uniform(0.01, 0.03))
threads = [threading.Thread(target=read) for _ in range(3)]
for t in threads:
    t.start()
time.sleep(0.3)
print("reading", flush=True)
select.select([sys.stdin], [], [], 600)
stop.set()
for t in threads:
    t.join()
"""


def load_pure_filelock():
    """Debian's pure-Python filelock under another name, beside ours."""
    init = "/usr/lib/python3/dist-packages/filelock/__init__.py"
    if not os.path.exists(init):
        return None
    spec = importlib.util.spec_from_file_location(
        "pure_filelock", init, submodule_search_locations=[os.path.dirname(init)]
    )
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["pure_filelock"] = mod
    spec.loader.exec_module(mod)
    return mod


def best_of(fn: Callable[[int], None], n: int, repeat: int) -> float:
    fn(max(1, n // 10))  # warm up
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn(n)
        best = min(best, time.perf_counter() - t0)
    return best / n * 1e6


def uncontended(ours, pure, tmp: str, n: int, repeat: int) -> list[tuple[str, float]]:
    rw = ours.ReadWriteLock(os.path.join(tmp, "rw.lock"))
    fl = ours.FileLock(os.path.join(tmp, "fl.lock"))

    def acquire_read(k: int) -> None:
        acq, rel = rw.acquire_read, rw.release
        for _ in range(k):
            acq()
            rel()

    def acquire_write(k: int) -> None:
        acq, rel = rw.acquire_write, rw.release
        for _ in range(k):
            acq()
            rel()

    def read_lock(k: int) -> None:
        for _ in range(k):
            with rw.read_lock():
                pass

    def write_lock(k: int) -> None:
        for _ in range(k):
            with rw.write_lock():
                pass

    def filelock_with(k: int) -> None:
        for _ in range(k):
            with fl:
                pass

    results = [
        ("ours acquire_read+release", best_of(acquire_read, n, repeat)),
        ("ours acquire_write+release", best_of(acquire_write, n, repeat)),
        ("ours with read_lock()", best_of(read_lock, n, repeat)),
        ("ours with write_lock()", best_of(write_lock, n, repeat)),
        ("ours FileLock with (reference)", best_of(filelock_with, n, repeat)),
    ]
    if pure is not None and hasattr(pure, "ReadWriteLock"):
        prw = pure.ReadWriteLock(os.path.join(tmp, "pure-rw.lock"))

        def pure_read(k: int) -> None:
            for _ in range(k):
                with prw.read_lock():
                    pass

        results.append((f"pure {pure.__version__} with read_lock()", best_of(pure_read, n, repeat)))
    return results


def writer_wait(ours, tmp: str, trials: int) -> tuple[float, float, int]:
    path = os.path.join(tmp, "load.lock")
    readers = [
        subprocess.Popen(
            [sys.executable, "-c", READER, path], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        for _ in range(3)
    ]
    waits: list[float] = []
    timeouts = 0
    try:
        for r in readers:
            assert r.stdout is not None
            r.stdout.readline()
        writer = ours.ReadWriteLock(path, is_singleton=False)
        for _ in range(trials):
            t0 = time.perf_counter()
            try:
                writer.acquire_write(timeout=30)
            except ours.Timeout:
                timeouts += 1
                continue
            waits.append(time.perf_counter() - t0)
            writer.release()
            time.sleep(0.05)  # let the readers pile up again
    finally:
        for r in readers:
            assert r.stdin is not None
            r.stdin.write("stop\n")
            r.stdin.flush()
        for r in readers:
            r.wait(timeout=60)
    if not waits:
        return float("nan"), float("nan"), timeouts
    return statistics.median(waits) * 1e3, max(waits) * 1e3, timeouts


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--iterations", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--trials", type=int, default=40)
    args = ap.parse_args()

    import filelock as ours

    pure = load_pure_filelock()
    tmp = tempfile.mkdtemp(prefix="fl-bench-py-rw-")
    results = uncontended(ours, pure, tmp, args.iterations, args.repeat)

    print(f"python {sys.version.split()[0]}, ours from {os.path.dirname(ours.__file__)}")
    if pure is not None and not hasattr(pure, "ReadWriteLock"):
        print(f"(pure filelock {pure.__version__} has no ReadWriteLock)")
    print(f"{'uncontended':36} {'us/iter':>8}")
    for name, us in results:
        print(f"{name:36} {us:8.2f}")
    med, worst, timeouts = writer_wait(ours, tmp, args.trials)
    print(
        f"writer wait under 3 reader processes x 3 threads (holds 10-30 ms), {args.trials} trials: "
        f"median {med:.1f} ms, worst {worst:.1f} ms, timeouts {timeouts}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
