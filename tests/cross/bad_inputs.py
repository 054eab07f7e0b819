#!/usr/bin/python3
"""Runs the bad-input table (bad_inputs.tsv) in one language.

    bad_inputs.py --build B --lang c|py|rb|lua [--only ID,ID]

For each case: builds the fixture in a fresh directory (SETUPS below), runs
that language's runner (bad_runner.*), which reads its steps from the same
table, under a hard deadline (a hang fails the case), and checks

  * the result of the first of the runner's three repetitions against the
    table (OK, or the error code and the step that failed), and that the
    other two repetitions gave the same result;
  * that the runner's descriptor count after each repetition equals the
    count before the first (no descriptor leak on any path);
  * that nothing in the fixture changed except the lock path and the
    parents it needed (the victim file, symlink targets, FIFOs: untouched).

Prints one line per case and "N passed, N failed, N skipped"; exits 1 on any
failure.
"""

import argparse
import hashlib
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import langs as langs_mod  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
TABLE = os.path.join(HERE, "bad_inputs.tsv")
NOBODY = 65534
DEADLINE = 30  # seconds per case and language: a hang fails, never blocks the suite
VICTIM = b"victim content: must never change\n"


def read_table(path):
    cases = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line or line.startswith("#"):
                continue
            cols = line.split("\t")
            if len(cols) < 6:
                raise SystemExit("bad_inputs.tsv: short row %r" % line)
            skip = {}
            if len(cols) > 6 and cols[6].strip():
                for part in cols[6].split(" | "):
                    lang, _, why = part.partition(":")
                    skip[lang.strip()] = why.strip()
            cases.append(dict(id=cols[0], kind=cols[1], user=cols[2], setup=cols[3],
                              steps=cols[4], expect=cols[5], skip=skip))
    return cases


# --------------------------------------------------------------------------
# Fixtures: each returns the lock path (bytes) inside directory d
# --------------------------------------------------------------------------

def _marker(path, content, future=False):
    with open(path, "wb") as f:
        f.write(content)
    if future:
        # Malformed markers are reclaimed once older than 2 s; dating this
        # one ahead keeps it "fresh" however slowly the runner starts.
        t = time.time() + 3600
        os.utime(path, (t, t))


def setup(name, d):
    j = lambda *p: os.path.join(d, *p).encode()
    host = socket.gethostname().encode()
    if name == "plain":
        return j("x.lock")
    if name == "empty":
        return b""
    if name == "nul":
        return j("a") + b"\0b.lock"
    if name == "dir":
        os.mkdir(j("x.lock"))
        _marker(j("x.lock", "inner"), b"inner\n")
        return j("x.lock")
    if name == "trailing_slash":
        return j("newdir") + b"/"
    if name == "rofile":
        _marker(j("x.lock"), b"read-only lock file\n")
        os.chmod(j("x.lock"), 0o444)
        return j("x.lock")
    if name == "rodir":
        os.mkdir(j("ro"), 0o555)
        os.chmod(j("ro"), 0o555)
        return j("ro", "x.lock")
    if name == "rodir_existing":
        os.mkdir(j("ro"))
        _marker(j("ro", "x.lock"), b"")
        os.chown(j("ro", "x.lock"), NOBODY, NOBODY)
        os.chmod(j("ro", "x.lock"), 0o644)
        os.chmod(j("ro"), 0o555)
        return j("ro", "x.lock")
    if name == "missing_parent":
        return j("p1", "p2", "x.lock")
    if name == "parent_file":
        return j("victim", "x.lock")
    if name == "long_name":
        return j("n" * 300)
    if name == "long_path":
        return j(*(["p" * 200] * 25 + ["x.lock"]))
    if name == "symlink_victim":
        os.symlink("victim", j("x.lock"))
        return j("x.lock")
    if name == "dangling":
        os.symlink("ghost", j("x.lock"))
        return j("x.lock")
    if name == "symlink_parent":
        os.mkdir(j("real"))
        os.symlink("real", j("link"))
        return j("link", "x.lock")
    if name == "fifo":
        os.mkfifo(j("x.lock"))
        return j("x.lock")
    if name == "socket":
        s = socket.socket(socket.AF_UNIX)
        s.bind(j("x.lock"))
        s.close()
        return j("x.lock")
    if name == "existing_content":
        _marker(j("x.lock"), b"content a lock must never truncate\n")
        return j("x.lock")
    if name == "marker_dead":
        # pid_max is far below 4,000,000 (the kernel's hard limit is 2^22).
        _marker(j("x.lock"), b"4194304\n" + host + b"\n")
        return j("x.lock")
    if name == "marker_live":
        _marker(j("x.lock"), b"%d\n" % os.getpid() + host + b"\n")
        return j("x.lock")
    if name == "marker_other_host":
        _marker(j("x.lock"), b"4194304\nsome-other-host.invalid\n")
        return j("x.lock")
    if name == "marker_garbage":
        _marker(j("x.lock"), b"this is not an owner record", future=True)
        return j("x.lock")
    raise SystemExit("bad_inputs.tsv: unknown setup %r" % name)


def snapshot(d):
    """Every entry under d: (type, mode, uid, size, content hash / link target)."""
    snap = {}
    for root, dirs, files in os.walk(d):
        if root == d:
            dirs.remove("warm")  # the runner's warm-up lock, not part of the case
        for name in dirs + files:
            p = os.path.join(root, name)
            st = os.lstat(p)
            if stat.S_ISREG(st.st_mode):
                with open(p, "rb") as f:
                    extra = hashlib.sha256(f.read()).hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                extra = os.readlink(p)
            else:
                extra = None
            snap[os.path.relpath(p, d)] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode),
                                           st.st_uid, st.st_size if extra else 0, extra)
    return snap


def changes(before, after, d, lock_path, may_touch_lock):
    """Entries that changed, other than the lock path (and, when the lock was
    taken, its marker) and the parent directories created for it."""
    lock_rel = os.path.relpath(os.fsdecode(lock_path), d) if lock_path else None
    allowed = set()
    if lock_rel and not lock_rel.startswith(".."):
        parts = lock_rel.split(os.sep)
        for i in range(1, len(parts)):
            allowed.add(os.sep.join(parts[:i]))
        # Through a symlinked parent directory the file lands in the target.
        if may_touch_lock:
            real = os.path.realpath(os.fsdecode(lock_path))
            allowed.add(os.path.relpath(real, os.path.realpath(d)))
    bad = []
    for k in sorted(set(before) | set(after)):
        if k == lock_rel and (may_touch_lock or k not in before):
            continue
        if k in allowed and k not in before:
            continue  # a parent created for the lock, or the file behind a symlinked parent
        if k.startswith((lock_rel or "\0") + ".stale."):
            bad.append("%s left behind" % k)
            continue
        if before.get(k) != after.get(k):
            bad.append("%s: %s -> %s" % (k, before.get(k), after.get(k)))
    return bad


# --------------------------------------------------------------------------

def runner_lang(build, name):
    langs = langs_mod.discover(build, os.path.join(build, "tests", "cross", "fl_cross_bad_runner"),
                               "bad_runner")
    return langs[name]


def parse_output(text):
    runs, fd0, msg = [], None, ""
    for line in text.splitlines():
        parts = line.split(" ", 2)
        if parts[0] == "FD0":
            fd0 = int(parts[1])
        elif parts[0] == "RUN" and len(parts) == 3:
            res, fds = parts[2].rsplit(" ", 1)
            runs.append((res, int(fds)))
        elif parts[0] == "MSG" and not msg:
            msg = line[4:]
    return runs, fd0, msg


def matches(expect, result):
    if expect == "OK" or result == "OK":
        return expect == result
    codes, _, step = expect.partition("@")
    rcode, _, rstep = result.partition("@")
    return rcode in codes.split("|") and rstep == step


def run_case(case, lang, base):
    d = tempfile.mkdtemp(prefix="case-", dir=base)
    os.chmod(d, 0o755)
    with open(os.path.join(d, "victim"), "wb") as f:
        f.write(VICTIM)
    os.chmod(os.path.join(d, "victim"), 0o640)
    warm = os.path.join(d, "warm")
    os.mkdir(warm)
    if case["user"] == "nobody":
        os.chown(warm, NOBODY, NOBODY)
    path = setup(case["setup"], d)
    before = snapshot(d)
    argv = lang.argv + [TABLE, case["id"], path.hex(), os.path.join(warm, "w.lock")]
    if case["user"] == "nobody":
        argv = ["setpriv", "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY, "--clear-groups"] + argv
    try:
        out = subprocess.run(argv, env=lang.env, stdin=subprocess.DEVNULL, capture_output=True,
                             timeout=DEADLINE)
    except subprocess.TimeoutExpired:
        return "hang: no result within %d s" % DEADLINE, ""
    text = out.stdout.decode(errors="replace")
    runs, fd0, msg = parse_output(text)
    if out.returncode != 0 or len(runs) != 3 or fd0 is None:
        err = out.stderr.decode(errors="replace").strip()
        return "runner failed (exit %d): %s %s" % (out.returncode, text.strip()[-1000:],
                                                   err[-2000:]), ""
    problems = []
    if not matches(case["expect"], runs[0][0]):
        problems.append("expected %s, got %s (%s)" % (case["expect"], runs[0][0], msg))
    if any(r[0] != runs[0][0] for r in runs[1:]):
        problems.append("repetitions differ: %s" % [r[0] for r in runs])
    if any(r[1] != fd0 for r in runs):
        problems.append("descriptor leak: %d before, %s after each repetition"
                        % (fd0, [r[1] for r in runs]))
    after = snapshot(d)
    took = case["expect"] == "OK" or case["kind"] == "soft" and case["setup"].startswith("marker")
    bad = changes(before, after, d, path, took and case["setup"] != "existing_content")
    if bad:
        problems.append("fixture changed: " + "; ".join(bad))
    return "; ".join(problems), "%s (%s)" % (runs[0][0], msg[:100]) if msg else runs[0][0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    ap.add_argument("--lang", required=True, choices=["c", "py", "rb", "lua"])
    ap.add_argument("--only", default="")
    args = ap.parse_args()
    lang = runner_lang(args.build, args.lang)
    if lang.missing:
        print("SKIP: %s" % lang.missing)
        return 77
    cases = read_table(TABLE)
    ids = [c["id"] for c in cases]
    if len(set(ids)) != len(ids):
        raise SystemExit("bad_inputs.tsv: duplicate ids")
    if args.only:
        want = set(args.only.split(","))
        cases = [c for c in cases if c["id"] in want]
    base = tempfile.mkdtemp(prefix="fl-bad-%s-" % args.lang)
    os.chmod(base, 0o755)  # the nobody cases must reach their fixtures
    passed = failed = skipped = 0
    started = time.monotonic()
    try:
        for case in cases:
            if args.lang in case["skip"]:
                skipped += 1
                print("SKIP %-32s %s" % (case["id"], case["skip"][args.lang]))
                continue
            if case["user"] == "nobody" and os.geteuid() != 0:
                skipped += 1
                print("SKIP %-32s needs root to switch to uid %d" % (case["id"], NOBODY))
                continue
            problem, got = run_case(case, lang, base)
            if problem:
                failed += 1
                print("FAIL %-32s %s" % (case["id"], problem))
            else:
                passed += 1
                print("ok   %-32s %s" % (case["id"], got))
    finally:
        subprocess.run(["chmod", "-R", "u+rwx", base], check=False)
        shutil.rmtree(base, ignore_errors=True)
    print("bad inputs (%s): %.1f s" % (args.lang, time.monotonic() - started))
    print("%d passed, %d failed, %d skipped" % (passed, failed, skipped))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
