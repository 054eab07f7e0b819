#!/usr/bin/python3
"""
Demo writer on our Python binding: appends COUNT lines to FILE, each under
the lock LOCKFILE, by a deliberately fragile read-modify-write (the protocol
every demo writer follows, see demo/README.md):

  line  "<tag> <seq> <tag>/<seq>/its-over-anakin-i-have-the-high-ground", seq 1..COUNT
  under the lock: read the whole file, pause ~0.5 ms, write it back with the
  new line in two writes split in the middle of that line, ~0.2 ms apart;
  then pause 1-4 ms outside the lock.

Without the lock, concurrent writers lose each other's lines or tear them;
with it, every line of every writer survives intact.

Usage:
  PYTHONPATH=<build>/bindings/python/pkg /usr/bin/python3 demo/writer.py FILE LOCKFILE COUNT TAG [--soft]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time

from filelock import FileLock, SoftFileLock

TEXT = "its-over-anakin-i-have-the-high-ground"


def append_line(path: str, line: bytes) -> None:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        size = os.fstat(fd).st_size
        content = os.pread(fd, size, 0) if size else b""
        time.sleep(0.0005)  # widen the window a missing lock would expose
        data = content + line
        cut = len(data) - len(line) // 2  # in the middle of the new line
        os.pwrite(fd, data[:cut], 0)
        time.sleep(0.0002)
        os.pwrite(fd, data[cut:], cut)
    finally:
        os.close(fd)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description="append lines to FILE under LOCKFILE")
    ap.add_argument("file")
    ap.add_argument("lockfile")
    ap.add_argument("count", type=int)
    ap.add_argument("tag")
    ap.add_argument("--soft", action="store_true", help="use SoftFileLock instead of FileLock")
    args = ap.parse_args(argv)
    # A demo must fail rather than hang: give up after 30 s.
    lock = (SoftFileLock if args.soft else FileLock)(args.lockfile, timeout=30)
    for seq in range(1, args.count + 1):
        line = f"{args.tag} {seq} {args.tag}/{seq}/{TEXT}\n".encode()
        with lock:
            append_line(args.file, line)
        time.sleep(0.001 + random.random() * 0.003)  # let the writers take turns
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
