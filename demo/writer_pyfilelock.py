#!/usr/bin/python3
"""Demo writer that uses Debian's pure-Python ``filelock`` package
(python3-filelock), not ours: it shows that the two interoperate.

    writer_pyfilelock.py <file> <lockfile> <count> <tag> [--soft]

py-filelock's FileLock also takes flock(LOCK_EX) on the lock file, and its
SoftFileLock also creates the lock path with O_CREAT|O_EXCL, so it excludes
(and is excluded by) libfilelock's FileLock / SoftFileLock on the same path.
The line format and the fragile read-modify-write follow demo/README.md.
"""
import argparse
import os
import random
import sys
import time

import filelock  # Debian's python3-filelock; run.sh makes sure it is not ours

TEXT = "its-over-anakin-i-have-the-high-ground"


def main(argv):
    ap = argparse.ArgumentParser(prog="writer_pyfilelock.py",
                                 description="append lines to FILE under LOCKFILE with py-filelock")
    ap.add_argument("file")
    ap.add_argument("lockfile")
    ap.add_argument("count", type=int)
    ap.add_argument("tag")
    ap.add_argument("--soft", action="store_true", help="SoftFileLock instead of FileLock")
    a = ap.parse_args(argv[1:])
    path, lockfile, count, tag = a.file, a.lockfile, a.count, a.tag
    cls = filelock.SoftFileLock if a.soft else filelock.FileLock
    # py-filelock waits by polling; 50 ms (its default) would make this writer
    # lose nearly every race against writers that are woken on release.
    lock = cls(lockfile, timeout=30)
    for seq in range(1, count + 1):
        line = "%s %d %s/%d/%s\n" % (tag, seq, tag, seq, TEXT)
        with lock.acquire(poll_interval=0.002):
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                with os.fdopen(os.dup(fd), "rb") as f:
                    content = f.read()
                data = content + line.encode()
                time.sleep(0.0005)
                cut = len(data) - len(line) // 2
                os.pwrite(fd, data[:cut], 0)
                time.sleep(0.0002)
                os.pwrite(fd, data[cut:], cut)
            finally:
                os.close(fd)
        time.sleep(0.001 + random.random() * 0.003)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
