#!/usr/bin/python3
"""Cross-language torture worker, Python edition (same protocol as worker.c).

    worker.py [--pyfl] hold <lockfile> <counter> <log> <count> <min_us> <max_us> <kind> <timeout>
    worker.py cycles <lockfile> <n> <kind>

Without --pyfl it must import our binding (PYTHONPATH=<build>/bindings/python/pkg);
with --pyfl it must import Debian's pure-Python filelock (python3-filelock)
and refuses to run on anything else, so a mix-up cannot pass unnoticed.
Times are time.monotonic_ns(): CLOCK_MONOTONIC, the clock of every worker.
"""

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


def main(argv):
    pyfl = "--pyfl" in argv
    argv = [a for a in argv if a != "--pyfl"]
    fl = load(pyfl)
    if len(argv) == 9 and argv[0] == "hold":
        return hold(fl, pyfl, argv[1:])
    if len(argv) == 4 and argv[0] == "cycles":
        return cycles(fl, argv[1:])
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
