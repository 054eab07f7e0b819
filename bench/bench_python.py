#!/usr/bin/python3
"""
Uncontended `with lock: pass` cost per iteration, in one run, for:

  ours   - filelock from this project (the C core through SWIG)
  pure   - Debian's pure-Python filelock (python3-filelock), when installed
  floor  - a bare os.open + fcntl.flock + close loop in Python

Usage:
  PYTHONPATH=<build>/bindings/python/pkg /usr/bin/python3 bench/bench_python.py [--iterations N] [--repeat R]

Each figure is the best of R runs of N iterations (the minimum is the most
stable estimate of the cost itself on a shared machine). Nothing is asserted:
the target for ours is <= 2 us, the figures are for the report.
"""

from __future__ import annotations

import argparse
import fcntl
import importlib.util
import os
import sys
import tempfile
import time
from typing import Callable


def load_pure_filelock():
    """Import the pure-Python filelock under another name, beside ours:
    Debian's, or the package directory named by FL_PURE_FILELOCK_DIR (the
    directory holding `filelock/`, e.g. a checkout's `src`, to compare with
    another release in the same run)."""
    bases = [os.environ["FL_PURE_FILELOCK_DIR"]] if os.environ.get("FL_PURE_FILELOCK_DIR") else []
    for base in bases or ["/usr/lib/python3/dist-packages"]:
        init = os.path.join(base, "filelock", "__init__.py")
        if os.path.exists(init):
            spec = importlib.util.spec_from_file_location(
                "pure_filelock", init, submodule_search_locations=[os.path.dirname(init)]
            )
            assert spec is not None and spec.loader is not None
            mod = importlib.util.module_from_spec(spec)
            sys.modules["pure_filelock"] = mod
            spec.loader.exec_module(mod)
            return mod
    return None


def best_of(fn: Callable[[int], None], n: int, repeat: int) -> float:
    fn(max(1, n // 10))  # warm up (page cache, inode, code paths)
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn(n)
        best = min(best, time.perf_counter() - t0)
    return best / n * 1e6


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--iterations", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()

    import filelock as ours

    pure = load_pure_filelock()
    tmp = tempfile.mkdtemp(prefix="fl-bench-py-")
    results: list[tuple[str, float]] = []

    def run_with(lock) -> Callable[[int], None]:
        def loop(n: int) -> None:
            for _ in range(n):
                with lock:
                    pass

        return loop

    results.append(("ours FileLock", best_of(run_with(ours.FileLock(os.path.join(tmp, "a.lock"))), args.iterations, args.repeat)))
    results.append(("ours SoftFileLock", best_of(run_with(ours.SoftFileLock(os.path.join(tmp, "b.lock"))), args.iterations, args.repeat)))
    if pure is not None:
        results.append((f"pure FileLock {pure.__version__}", best_of(run_with(pure.FileLock(os.path.join(tmp, "c.lock"))), args.iterations, args.repeat)))
        results.append((f"pure SoftFileLock {pure.__version__}", best_of(run_with(pure.SoftFileLock(os.path.join(tmp, "d.lock"))), args.iterations, args.repeat)))

    floor_path = os.path.join(tmp, "e.lock")

    def floor(n: int) -> None:
        o, fl, cl = os.open, fcntl.flock, os.close
        flags = os.O_RDWR | os.O_CREAT
        ex, un = fcntl.LOCK_EX | fcntl.LOCK_NB, fcntl.LOCK_UN
        for _ in range(n):
            fd = o(floor_path, flags, 0o644)
            fl(fd, ex)
            fl(fd, un)
            cl(fd)

    results.append(("floor os.open+flock+close", best_of(floor, args.iterations, args.repeat)))

    print(f"python {sys.version.split()[0]}, ours from {os.path.dirname(ours.__file__)}")
    print(f"{'variant':32} {'us/iter':>8}")
    for name, us in results:
        print(f"{name:32} {us:8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
