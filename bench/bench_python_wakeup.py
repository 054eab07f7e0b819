#!/usr/bin/python3
"""
Synchronous wake-up latency in Python (issue 17): how long after a release
a thread blocked in `lock.acquire()` gets control back, for

  ours   - filelock from this project (the C core through SWIG)
  pure   - the pure-Python filelock: Debian's, or the one whose package
           directory FL_PURE_FILELOCK_DIR names (e.g. /work/pure/newest/src)
  floor  - Python blocked in a bare fcntl.flock on its own descriptor
  C      - build/bench/fl_bench --parts=wakeup in the same run (the C floor
           and the C core), when --fl-bench names it

Usage:
  PYTHONPATH=<build>/bindings/python/pkg /usr/bin/python3 bench/bench_python_wakeup.py \
      [--rounds N] [--fl-bench <build>/bench/fl_bench]

One holder process takes the lock with os.open + fcntl.flock, waits until the
waiter is asleep in its acquire, stamps CLOCK_MONOTONIC and closes the
descriptor (a release that closes, as every library's release does); the
waiter stamps the clock when its acquire returns. Each waiter is its own
interpreter (the two packages share a name), started once; cases are
interleaved round by round so that noise from other processes hits them
alike. The pause before the release is random in 2-52 ms: a poller's
latency depends on where in its period the release falls. Nothing is
asserted (timings are not pass/fail material on a shared machine): the
target for ours is a median <= 50 us.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.abspath(__file__)

# (label, worker, case): a case is what the waiter does (see waiter()).
CASES = [
    ("Python floor: blocked fcntl.flock", "floor", "flock"),
    ("Python floor: LOCK_NB + inotify (ctypes)", "floor", "inotify"),
    ("ours FileLock, timeout=10", "ours", "timed"),
    ("ours FileLock, wait forever", "ours", "forever"),
    ("ours FileLock, forever, in a thread", "ours", "thread"),
    ("pure FileLock, timeout=10", "pure", "timed"),
]


def waiter(lib: str, path: str) -> None:
    """Serves "wait CASE" lines: answers "r" once the acquire is about to
    start, then the clock (ns) when it returned."""
    if lib == "pure":
        base = os.environ.get("FL_PURE_FILELOCK_DIR", "/usr/lib/python3/dist-packages")
        sys.path = [base] + [p for p in sys.path if "bindings/python/pkg" not in p]
    mono = time.monotonic_ns
    if lib == "floor":
        import ctypes
        import select

        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        lock = None
        # A watch kept for the process's life, as libfilelock's waiter does:
        # close events (IN_CLOSE_WRITE | IN_CLOSE_NOWRITE).
        libc = ctypes.CDLL(None, use_errno=True)
        ino = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if ino < 0 or libc.inotify_add_watch(ino, os.fsencode(path), 0x8 | 0x10) < 0:
            raise OSError(ctypes.get_errno(), "inotify")
        poller = select.poll()
        poller.register(ino, select.POLLIN)
    else:
        import filelock

        lock = filelock.FileLock(path)
        print(f"ready {lib} {filelock.__version__} {os.path.dirname(filelock.__file__)}", flush=True)
    if lib == "floor":
        print("ready floor", flush=True)
    for line in sys.stdin:
        case = line.split()[1]
        out = []
        if case == "inotify":
            print("r", flush=True)
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    poller.poll(100)
                    try:
                        os.read(ino, 4096)
                    except BlockingIOError:
                        pass
            t = mono()
            fcntl.flock(fd, fcntl.LOCK_UN)
        elif case == "flock":
            print("r", flush=True)
            fcntl.flock(fd, fcntl.LOCK_EX)
            t = mono()
            fcntl.flock(fd, fcntl.LOCK_UN)
        elif case == "thread":
            import threading

            def run() -> None:
                lock.acquire()
                out.append(mono())
                lock.release()

            th = threading.Thread(target=run)
            print("r", flush=True)
            th.start()
            th.join()
            t = out[0]
        else:
            print("r", flush=True)
            lock.acquire(timeout=10 if case == "timed" else -1)
            t = mono()
            lock.release()
        print(t, flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=200)
    ap.add_argument("--fl-bench", help="fl_bench to run for the C rows (same machine, same run)")
    ap.add_argument("--ours-b", metavar="PKG_DIR",
                    help="also run ours from this package directory (an A/B of two builds in one run)")
    ap.add_argument("--waiter", nargs=2, metavar=("LIB", "PATH"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.waiter:
        waiter(*args.waiter)
        return 0

    cases = list(CASES)
    if args.ours_b:
        cases += [(label.replace("ours", "ours-b"), "ours-b", case) for label, lib, case in CASES if lib == "ours"]
    tmp = tempfile.mkdtemp(prefix="fl-bench-wake-")
    rng = random.Random(17)
    procs = {}
    for lib in sorted({w for _, w, _ in cases}):
        env = dict(os.environ)
        if lib == "ours-b":
            env["PYTHONPATH"] = args.ours_b
        p = subprocess.Popen([sys.executable, HERE, "--waiter", lib.replace("-b", ""), os.path.join(tmp, f"{lib}.lock")],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1, env=env)
        ready = p.stdout.readline().strip()
        if not ready.startswith("ready"):
            print(f"{lib}: waiter did not start", file=sys.stderr)
            return 1
        procs[lib] = (p, ready)
    lat = {k: [] for k in range(len(cases))}
    for _ in range(args.rounds):
        for k, (_, lib, case) in enumerate(cases):
            p = procs[lib][0]
            fd = os.open(os.path.join(tmp, f"{lib}.lock"), os.O_RDWR | os.O_CREAT, 0o644)
            fcntl.flock(fd, fcntl.LOCK_EX)
            p.stdin.write(f"wait {case}\n")
            if p.stdout.readline().strip() != "r":
                return 1
            time.sleep(0.002 + rng.uniform(0, 0.05))
            t0 = time.monotonic_ns()
            os.close(fd)
            t1 = int(p.stdout.readline())
            lat[k].append((t1 - t0) / 1e3)
    for p, _ in procs.values():
        p.stdin.close()
        p.wait()

    print(f"python {sys.version.split()[0]}; {args.rounds} rounds per case, release pause 2-52 ms; "
          f"load average {os.getloadavg()[0]:.2f}")
    for lib, (_, ready) in sorted(procs.items()):
        print(f"  {lib}: {ready[6:]}")
    print(f"{'case':44} {'median us':>10} {'p90 us':>10} {'p99 us':>10} {'> 1 ms':>7}")
    for k, (label, _, _) in enumerate(cases):
        v = sorted(lat[k])
        slow = sum(x > 1000 for x in v)
        print(f"{label:44} {statistics.median(v):10.1f} {v[int(len(v) * 0.9)]:10.1f} "
              f"{v[int(len(v) * 0.99)]:10.1f} {slow:7d}")
    if args.fl_bench:
        r = subprocess.run([args.fl_bench, "--parts=wakeup", f"--rounds={args.rounds}", "--tsv"],
                           capture_output=True, text=True, check=True)
        for line in r.stdout.splitlines():
            f = line.split("\t")
            if f[0] == "TSV" and f[1] == "wakeup" and f[3] == "median":
                print(f"{'C ' + f[2]:44} {float(f[4]):10.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
