#!/usr/bin/python3
"""Cross-language torture worker, Python edition (same protocol as worker.c).

    worker.py [--pyfl] hold <lockfile> <counter> <log> <count> <min_us> <max_us> <kind> <timeout>
    worker.py cycles <lockfile> <n> <kind>

Without --pyfl it must import our binding (PYTHONPATH=<build>/bindings/python/pkg);
with --pyfl it must import Debian's pure-Python filelock (python3-filelock)
and refuses to run on anything else, so a mix-up cannot pass unnoticed.
Times are time.monotonic_ns(): CLOCK_MONOTONIC, the clock of every worker.
"""

import argparse
import os
import random
import sys
import time


def load(pyfl):
    import filelock

    where = os.path.realpath(filelock.__file__)
    # Only our package carries the SWIG extension _filelock_core.
    ours = any(n.startswith("_filelock_core") for n in os.listdir(os.path.dirname(where)))
    if pyfl and ours:
        sys.exit("worker.py: --pyfl but imported our binding from %s" % where)
    if not pyfl and not ours:
        sys.exit("worker.py: imported the pure-Python filelock from %s, not ours" % where)
    return filelock


def hold(fl, pyfl, args):
    lockfile, counter, log = args[0], args[1], args[2]
    count, min_us, max_us = int(args[3]), int(args[4]), int(args[5])
    cls = fl.SoftFileLock if args[6] == "soft" else fl.FileLock
    lock = cls(lockfile, timeout=float(args[7]))
    logfd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    # py-filelock polls (50 ms by default); poll quickly so it competes.
    acquire = (lambda: lock.acquire(poll_interval=0.001)) if pyfl else lock.acquire
    i = 0
    while count == 0 or i < count:
        i += 1
        acquire()
        try:
            t0 = time.monotonic_ns()
            fd = os.open(counter, os.O_RDWR)
            value = int(os.pread(fd, 21, 0))
            os.write(logfd, b"S %d %d\n" % (t0, value))
            time.sleep(random.randint(min_us, max_us) / 1e6)
            os.pwrite(fd, b"%020d\n" % (value + 1), 0)
            os.close(fd)
            os.write(logfd, b"E %d\n" % time.monotonic_ns())
        finally:
            lock.release()
        time.sleep(random.randint(0, 500) / 1e6)
    return 0


def count_fds():
    return len(os.listdir("/proc/self/fd")) - 1  # listdir's own descriptor


def rss_kb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def cycles(fl, args):
    import gc

    path, n, kind = args[0], int(args[1]), args[2]
    cls = fl.SoftFileLock if kind == "soft" else fl.FileLock
    lock = cls(path, timeout=10)
    slock = fl.SoftFileLock(path + ".soft", timeout=10)
    warm = n // 10
    fd_warm = rss_warm = 0
    for i in range(n):
        if i == warm:
            gc.collect()
            fd_warm, rss_warm = count_fds(), rss_kb()
        with lock:
            pass
        if i % 10 == 0:
            with cls(path, timeout=10):
                pass
            with slock:
                pass
    gc.collect()
    print("RES %d %d %d %d" % (fd_warm, count_fds(), rss_warm, rss_kb()))
    return 0


def parse_args(argv):
    ap = argparse.ArgumentParser(prog="worker.py", description=__doc__.splitlines()[0])
    ap.add_argument("--pyfl", action="store_true",
                    help="use Debian's pure-Python filelock (and refuse our binding)")
    sub = ap.add_subparsers(dest="mode", required=True)
    h = sub.add_parser("hold", help="take the lock COUNT times (0: until killed), logging each hold")
    for name in ("lockfile", "counter", "log"):
        h.add_argument(name)
    for name in ("count", "min_us", "max_us"):
        h.add_argument(name, type=int)
    h.add_argument("kind", help="soft, or anything else for the kernel lock")
    h.add_argument("timeout", type=float)
    c = sub.add_parser("cycles", help="N acquire/release cycles, then report fds and RSS")
    c.add_argument("lockfile")
    c.add_argument("n", type=int)
    c.add_argument("kind", help="soft, or anything else for the kernel lock")
    return ap.parse_args(argv)


def main(argv):
    a = parse_args(argv)
    fl = load(a.pyfl)
    if a.mode == "hold":
        return hold(fl, a.pyfl, [a.lockfile, a.counter, a.log, a.count, a.min_us, a.max_us,
                                 a.kind, a.timeout])
    return cycles(fl, [a.lockfile, a.n, a.kind])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
