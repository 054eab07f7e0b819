#!/usr/bin/python3
"""Demo writer that uses Debian's pure-Python ``filelock`` package
(python3-filelock), not ours: it shows that the two interoperate.

    writer_pyfilelock.py <file> <lockfile> <count> <tag> [--soft]

py-filelock's FileLock also takes flock(LOCK_EX) on the lock file, and its
SoftFileLock also creates the lock path with O_CREAT|O_EXCL, so it excludes
(and is excluded by) libfilelock's FileLock / SoftFileLock on the same path.
The line format and the fragile read-modify-write follow demo/README.md.
"""
import os
import random
import sys
import time

import filelock  # Debian's python3-filelock; run.sh makes sure it is not ours

TEXT = "its-over-anakin-i-have-the-high-ground"


def main(argv):
    args = [a for a in argv[1:] if not a.startswith("--")]
    flags = [a for a in argv[1:] if a.startswith("--")]
    if len(args) != 4 or any(f != "--soft" for f in flags):
        sys.stderr.write("usage: writer_pyfilelock.py <file> <lockfile> <count> <tag> [--soft]\n")
        return 2
    path, lockfile, count, tag = args[0], args[1], int(args[2]), args[3]
    cls = filelock.SoftFileLock if "--soft" in flags else filelock.FileLock
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
