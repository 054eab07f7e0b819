#!/usr/bin/python3
"""
The Python worker of the benchmark matrix (bench/matrix.sh).

    py_worker.py LIB serve DIR
    py_worker.py LIB role DIR
    py_worker.py LIB contend CASE LOCK DATA ITERS

LIB is "ours" (this project's binding, found through PYTHONPATH) or "pure"
(Debian's pure-Python filelock, /usr/lib/python3/dist-packages); the driver
starts the two in separate interpreters so that neither shadows the other.
The first line printed says which module was loaded, so the driver can
refuse a mix-up. The line protocol is the one of mx_c.c; see matrix.py.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import resource
import sys
import time

import filelock

mono = time.monotonic_ns  # CLOCK_MONOTONIC, the clock mx_c and fl_bench use
CTR_LEN = 20


def out(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def serve(lib: str, d: str) -> None:
    """Uncontended cases: "CASE N" runs N cycles and answers the elapsed ns."""
    lock = filelock.FileLock(os.path.join(d, f"py_{lib}.lock"))
    reent = filelock.FileLock(os.path.join(d, f"py_{lib}_reent.lock"))
    soft = filelock.SoftFileLock(os.path.join(d, f"py_{lib}_soft.lock"))
    rw = filelock.ReadWriteLock(os.path.join(d, f"py_{lib}_rw.lock")) if hasattr(filelock, "ReadWriteLock") else None
    new_path = os.path.join(d, f"py_{lib}_new.lock")
    floor_path = os.path.join(d, f"py_{lib}_floor.lock")
    floor_fd = os.open(floor_path, os.O_RDWR | os.O_CREAT, 0o666)
    FileLock = filelock.FileLock

    def with_(n: int) -> None:
        for _ in range(n):
            with lock:
                pass

    def acq_rel(n: int) -> None:
        acq, rel = lock.acquire, lock.release
        for _ in range(n):
            acq()
            rel()

    def soft_with(n: int) -> None:
        for _ in range(n):
            with soft:
                pass

    def reentrant(n: int) -> None:
        for _ in range(n):
            with reent:
                pass

    def construct(n: int) -> None:
        for _ in range(n):
            FileLock(new_path)

    def rw_read(n: int) -> None:
        acq, rel = rw.acquire_read, rw.release  # type: ignore[union-attr]
        for _ in range(n):
            acq()
            rel()

    def floor(n: int) -> None:
        o, fl, cl = os.open, fcntl.flock, os.close
        flags, ex, un = os.O_RDWR | os.O_CREAT, fcntl.LOCK_EX, fcntl.LOCK_UN
        for _ in range(n):
            fd = o(floor_path, flags, 0o666)
            fl(fd, ex)
            fl(fd, un)
            cl(fd)

    def floor_pair(n: int) -> None:
        fl, fd, ex, un = fcntl.flock, floor_fd, fcntl.LOCK_EX, fcntl.LOCK_UN
        for _ in range(n):
            fl(fd, ex)
            fl(fd, un)

    cases = {
        "with": with_,
        "acq_rel": acq_rel,
        "soft": soft_with,
        "reentrant": reentrant,
        "construct": construct,
        "floor": floor,
        "floor_pair": floor_pair,
    }
    if rw is not None:
        cases["rw_read"] = rw_read
    out(f"ready python {sys.version.split()[0]} filelock {filelock.__version__} {filelock.__file__}")
    for line in sys.stdin:
        if line.startswith("quit"):
            break
        name, n = line.split()
        fn = cases[name]
        if name == "reentrant":
            reent.acquire()
        t = mono()
        fn(int(n))
        t = mono() - t
        if name == "reentrant":
            reent.release()
        out(str(t))


def role(lib: str, d: str) -> None:
    """Holder or waiter of the wake-up and CPU parts, on request:

    hold CASE           acquire the case's lock, answer "ok"
    release CASE PAUSE  sleep PAUSE seconds, stamp the clock, release, sleep
                        5 ms (so that this process is asleep, as the waiter
                        wakes, like fl_bench's holder), answer the stamp (ns)
    wait CASE           answer "r", acquire (blocking), stamp, release, answer the stamp
    cpuwait CASE POLL   answer "r", acquire with poll_interval POLL, answer "cpu_s wall_s"

    Case "floor" is a bare blocking fcntl.flock on a descriptor of this
    process: what Python itself adds to a wake-up.
    """
    locks = {
        "kernel": (filelock.FileLock(os.path.join(d, f"w_{lib}_kernel.lock")), -1),
        "timed": (filelock.FileLock(os.path.join(d, f"w_{lib}_timed.lock")), 10),
        "soft": (filelock.SoftFileLock(os.path.join(d, f"w_{lib}_soft.lock")), 10),
    }
    floor_fd = os.open(os.path.join(d, f"w_{lib}_floor.lock"), os.O_RDWR | os.O_CREAT, 0o666)
    out(f"ready python {sys.version.split()[0]} filelock {filelock.__version__} {filelock.__file__}")
    for line in sys.stdin:
        words = line.split()
        if not words or words[0] == "quit":
            break
        cmd, case = words[0], words[1]
        floor = case == "floor"
        lock, timeout = (None, -1) if floor else locks[case]
        if cmd == "hold":
            if floor:
                fcntl.flock(floor_fd, fcntl.LOCK_EX)
            else:
                lock.acquire()
            out("ok")
        elif cmd == "release":
            time.sleep(float(words[2]))
            t0 = mono()
            if floor:
                fcntl.flock(floor_fd, fcntl.LOCK_UN)
            else:
                lock.release()
            time.sleep(0.005)
            out(str(t0))
        elif cmd == "wait":
            out("r")
            if floor:
                fcntl.flock(floor_fd, fcntl.LOCK_EX)
                t1 = mono()
                fcntl.flock(floor_fd, fcntl.LOCK_UN)
            else:
                lock.acquire(timeout=timeout)
                t1 = mono()
                lock.release()
            out(str(t1))
        elif cmd == "cpuwait":
            poll = float(words[2])
            out("r")
            r0 = resource.getrusage(resource.RUSAGE_SELF)
            w0 = mono()
            lock.acquire(timeout=30, poll_interval=poll)
            wall = (mono() - w0) / 1e9
            r1 = resource.getrusage(resource.RUSAGE_SELF)
            lock.release()
            cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
            out(f"{cpu:.6f} {wall:.6f}")
        else:
            raise SystemExit(f"py_worker: unknown command {line!r}")


def contend(lib: str, case: str, path: str, data_path: str, iters: int) -> None:
    """One of N processes: ITERS acquisitions, each incrementing the shared
    counter in the data file (see mx_c.c), with the wait of each recorded."""
    data = os.open(data_path, os.O_RDWR)
    pread, pwrite = os.pread, os.pwrite
    waits = [0.0] * iters
    seq = [0] * iters
    if case == "floor":
        o, fl, cl = os.open, fcntl.flock, os.close
        flags, ex, un = os.O_RDWR | os.O_CREAT, fcntl.LOCK_EX, fcntl.LOCK_UN
        out("ready")
        sys.stdin.readline()
        for i in range(iters):
            t0 = mono()
            fd = o(path, flags, 0o666)
            fl(fd, ex)
            waits[i] = (mono() - t0) / 1e3
            v = int(pread(data, CTR_LEN, 0))
            seq[i] = v
            pwrite(data, b"%0*d" % (CTR_LEN, v + 1), 0)
            fl(fd, un)
            cl(fd)
    else:
        lock = (filelock.SoftFileLock if case == "soft" else filelock.FileLock)(path)
        timeout = 60 if case == "timed" else -1
        acq, rel = lock.acquire, lock.release
        out("ready")
        sys.stdin.readline()
        for i in range(iters):
            t0 = mono()
            acq(timeout=timeout)
            waits[i] = (mono() - t0) / 1e3
            v = int(pread(data, CTR_LEN, 0))
            seq[i] = v
            pwrite(data, b"%0*d" % (CTR_LEN, v + 1), 0)
            rel()
    out("done")
    out("waits " + " ".join(f"{w:.1f}" for w in waits))
    out("seq " + " ".join(map(str, seq)))


def main() -> None:
    ap = argparse.ArgumentParser(prog="py_worker.py", description="benchmark matrix worker (Python)")
    ap.add_argument("lib", choices=["ours", "pure"], help="which filelock the worker uses")
    sub = ap.add_subparsers(dest="mode", required=True)
    sub.add_parser("serve").add_argument("dir")
    sub.add_parser("role").add_argument("dir")
    c = sub.add_parser("contend")
    for name in ("case", "lockfile", "data"):
        c.add_argument(name)
    c.add_argument("iters", type=int)
    a = ap.parse_args()
    if a.mode == "serve":
        serve(a.lib, a.dir)
    elif a.mode == "role":
        role(a.lib, a.dir)
    else:
        contend(a.lib, a.case, a.lockfile, a.data, a.iters)


if __name__ == "__main__":
    main()
