#!/usr/bin/python3
"""Bad-input runner, Python edition (our binding): runs one case of
bad_inputs.tsv. Same arguments and output as bad_runner.c:

    bad_runner.py <table.tsv> <case id> <lock path in hex> <warm-up lock path>

The binding's exceptions are mapped back to the core's error names here
(name_of), the one place that knows how Python spells them.
"""

import errno
import gc
import math
import os
import sys
import threading

import filelock
from filelock import FileLock, SoftFileLock, Timeout

REPEAT = 3

# The core's errno -> code mapping (core/src/errors.c), for OSError.
ERRNO_NAMES = {
    errno.EACCES: "EACCES", errno.EPERM: "EACCES", errno.EISDIR: "EISDIR",
    errno.EROFS: "EROFS", errno.ENAMETOOLONG: "ENAMETOOLONG", errno.ENOENT: "ENOENT",
    errno.ENOTDIR: "ENOTDIR", errno.ELOOP: "ELOOP", errno.ENOSPC: "ENOSPC",
    errno.EDQUOT: "ENOSPC", errno.ENOMEM: "ENOMEM", errno.EIO: "EIO", errno.EINTR: "EINTR",
    errno.ENOSYS: "ENOTSUP", errno.EOPNOTSUPP: "ENOTSUP",
}


def name_of(exc):
    if isinstance(exc, Timeout):
        return "ETIMEOUT"
    if isinstance(exc, NotImplementedError):
        return "ENOTSUP"
    if isinstance(exc, ValueError):
        return "EINVAL"
    if isinstance(exc, MemoryError):
        return "ENOMEM"
    if isinstance(exc, RuntimeError):
        return "EDEADLK" if "deadlock" in str(exc) or "already held" in str(exc) else "RUNTIME"
    if isinstance(exc, OSError):
        # The core's code where the errno is the binding's stand-in (a FIFO:
        # EINVAL, with "<reason> (ENOTREG)" as the note).
        for note in getattr(exc, "__notes__", ()):
            if note.endswith(")") and " (E" in note:
                return note[note.rindex(" (E") + 2:-1]
        if exc.errno:
            return ERRNO_NAMES.get(exc.errno, "EOS")
        text = str(exc)  # "<message> (ENOTREG)" when no errno is behind it
        if text.endswith(")") and " (E" in text:
            return text[text.rindex(" (E") + 2:-1]
        return "EOS"
    return type(exc).__name__


def num(s):
    return float(s)  # float() reads nan, inf, -inf


def parse(tok):
    name, _, opts = tok.partition(":")
    kv = dict(o.split("=", 1) for o in opts.split(",") if o)
    return name, kv


class Case:
    def __init__(self, path, kind):
        self.path = path
        self.cls = SoftFileLock if kind == "soft" else FileLock
        self.h = {}

    def step(self, tok):
        which = "a"
        if tok.startswith("b."):
            which, tok = "b", tok[2:]
        name, kv = parse(tok)
        if name == "new":
            args = {}
            if "timeout" in kv:
                args["timeout"] = num(kv["timeout"])
            if "poll" in kv:
                args["poll_interval"] = num(kv["poll"])
            if "mode" in kv:
                args["mode"] = int(kv["mode"])
            if "fallback" in kv:
                raise SystemExit("soft_fallback is not exposed by the Python binding")
            self.h[which] = self.cls(self.path, **args)
        elif name == "acq":
            self.h[which].acquire(timeout=num(kv.get("timeout", "1")),
                                  poll_interval=num(kv.get("poll", "0.05")),
                                  blocking=kv.get("blocking", "1") == "1")
        elif name == "rel":
            self.h[which].release()
        elif name == "relf":
            self.h[which].release(force=True)
        elif name == "relthread":
            t = threading.Thread(target=self.h["a"].release)
            t.start()
            t.join(20)
        elif name == "free":
            # Dropping the last reference closes the handle (releasing it).
            del self.h[which]
            gc.collect()
        elif name == "assert":
            (k, v), = kv.items()
            lock = self.h["a"]
            got = {"locked": lambda: str(int(lock.is_locked)),
                   "counter": lambda: str(lock.lock_counter),
                   "kind": lambda: "soft" if isinstance(lock, SoftFileLock) else "kernel"}[k]()
            if got != v:
                raise AssertionError("assertion %s failed (got %s)" % (tok, got))
        else:
            raise SystemExit("bad_runner.py: unknown step %r" % tok)

    def cleanup(self):
        for lock in self.h.values():
            lock.release(force=True)
        self.h.clear()
        gc.collect()


def run(path, kind, steps, msgs):
    case = Case(path, kind)
    result = "OK"
    for i, tok in enumerate(steps.split()):
        try:
            case.step(tok)
        except AssertionError as e:
            msgs.append(str(e))
            result = "ASSERT@%d" % i
            break
        except Exception as e:  # noqa: BLE001 - every failure is mapped and reported
            msgs.append("%s: %s" % (type(e).__name__, e))
            result = "%s@%d" % (name_of(e), i)
            break
    case.cleanup()
    return result


def count_fds():
    return len(os.listdir("/proc/self/fd")) - 1


def main(argv):
    table, case_id, hexpath, warm = argv
    row = None
    with open(table, encoding="utf-8") as f:
        for line in f:
            cols = line.rstrip("\n").split("\t")
            if not line.startswith("#") and len(cols) >= 6 and cols[0] == case_id:
                row = cols
    if row is None:
        raise SystemExit("bad_runner.py: no case %r" % case_id)
    path = os.fsdecode(bytes.fromhex(hexpath))
    # Warm-up: a timed-out wait, kernel and soft, leaves one inotify
    # instance in the core's process-wide pool; it is not a leak.
    for cls, suffix in ((FileLock, ""), (SoftFileLock, ".soft")):
        a, b = cls(warm + suffix), cls(warm + suffix)
        a.acquire(timeout=0)
        try:
            b.acquire(timeout=0.03)
        except Timeout:
            pass
        a.release()
        del a, b
    gc.collect()
    fd0 = count_fds()
    print("FD0 %d" % fd0)
    msgs = []
    for r in range(REPEAT):
        res = run(path, row[1], row[4], msgs)
        print("RUN %d %s %d" % (r, res, count_fds()))
    if msgs:
        print("MSG %s" % msgs[0].replace("\n", " "))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    # Our binding, not Debian's pure-Python package of the same name.
    if not os.path.exists(os.path.join(os.path.dirname(filelock.__file__), "_api.py")) or not any(
            n.startswith("_filelock_core") for n in os.listdir(os.path.dirname(filelock.__file__))):
        raise SystemExit("bad_runner.py: imported %s, not our binding" % filelock.__file__)
    sys.exit(main(sys.argv[1:]))
