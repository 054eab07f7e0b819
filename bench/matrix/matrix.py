#!/usr/bin/python3
"""
The benchmark matrix of issue 7: libfilelock from C, Python, Ruby and Lua
next to Debian's pure-Python filelock and the bare system calls, in one run.
Started by bench/matrix.sh, which builds the C worker and passes the paths;
run `bench/matrix.sh --help` for the options.

How noise is fought on a small shared machine:
- every language has a long-lived worker process that times its own loops
  with CLOCK_MONOTONIC; the driver asks them in turn for one batch of each
  case (C case 1, Python case 1, ..., C case 1 again, ...), so a burst of
  noise from elsewhere hits all cases alike; the median batch is reported;
- wake-up and CPU rounds alternate between the cases, contention runs too;
- nothing is asserted: a benchmark reports, the targets are met or missed.

Parts (one table each, all figures also in the TSV):
  1. uncontended acquire+release, floors, reentrant acquire, construction,
     read/write lock uncontended
  2. wake-up latency (C from fl_bench; Python ours vs pure, measured here
     the same way: the holder stamps the clock and releases, the waiter
     stamps it when its acquire returns)
  3. CPU per second of waiting (C from fl_bench; Python ours vs pure)
  4. contention: P processes x M acquisitions, each incrementing a counter
     in a data file inside the lock (checked at the end)
  5. read/write: readers' throughput, writer wait under reader load
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import random
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from tabulate import tabulate  # Debian: python3-tabulate

CTR_LEN = 20


# --------------------------------------------------------------------------
# Workers
# --------------------------------------------------------------------------


class WorkerError(RuntimeError):
    pass


class Worker:
    """A child speaking the line protocol; every read has a deadline so that
    a stuck worker fails the run instead of hanging it."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str] | None = None, deadline: float = 120.0):
        self.name = name
        self.deadline = deadline
        self.buf = b""
        self.p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)

    def send(self, line: str) -> None:
        assert self.p.stdin is not None
        self.p.stdin.write((line + "\n").encode())
        self.p.stdin.flush()

    def readline(self) -> str:
        assert self.p.stdout is not None
        fd = self.p.stdout.fileno()
        end = time.monotonic() + self.deadline
        while b"\n" not in self.buf:
            left = end - time.monotonic()
            if left <= 0:
                raise WorkerError(f"{self.name}: no answer within {self.deadline:.0f} s")
            r, _, _ = select.select([fd], [], [], left)
            if r:
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise WorkerError(f"{self.name}: exited (status {self.p.wait()})")
                self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode()

    def request(self, line: str) -> str:
        self.send(line)
        return self.readline()

    def close(self) -> None:
        try:
            if self.p.stdin:
                self.p.stdin.close()
        except OSError:
            pass
        try:
            self.p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.p.kill()  # our own child, by its pid
            self.p.wait()


class Env:
    """Where everything is, and how to start each language's worker."""

    def __init__(self, args: argparse.Namespace):
        self.here = os.path.dirname(os.path.abspath(__file__))
        self.build = os.path.abspath(args.build)
        self.mx_c = args.mx_c
        self.fl_bench = os.path.join(self.build, "bench", "fl_bench")
        self.py = "/usr/bin/python3"
        self.py_pkg = os.path.join(self.build, "bindings", "python", "pkg")
        self.rb_lib = os.path.join(self.build, "bindings", "ruby", "lib")
        self.lua_dir = os.path.join(self.build, "bindings", "lua", "5.4")
        self.ruby = shutil.which("ruby")
        self.lua = shutil.which("lua5.4")
        self.have_pure = os.path.exists("/usr/lib/python3/dist-packages/filelock/__init__.py")
        self.have_ruby = bool(self.ruby) and os.path.exists(os.path.join(self.rb_lib, "filelock_ext.so"))
        self.have_lua = bool(self.lua) and os.path.exists(os.path.join(self.lua_dir, "filelock", "core.so"))
        base = dict(os.environ)
        for k in ("PYTHONPATH", "PYTHONHOME", "RUBYLIB", "RUBYOPT", "LUA_PATH", "LUA_CPATH", "LUA_INIT"):
            base.pop(k, None)
        self.env_plain = base
        self.env_ours = dict(base, PYTHONPATH=self.py_pkg)
        self.env_lua = dict(
            base,
            LUA_CPATH=f"{self.lua_dir}/?.so;;",
            LUA_PATH=f"{self.lua_dir}/?.lua;;",
        )

    def argv(self, lang: str, *rest: str) -> tuple[list[str], dict[str, str]]:
        if lang == "c":
            return [self.mx_c, *rest], self.env_plain
        if lang == "py":
            return [self.py, os.path.join(self.here, "py_worker.py"), "ours", *rest], self.env_ours
        if lang == "pure":
            # -S and only Debian's directory: an installed copy of ours
            # (/usr/local/lib/python3.X/dist-packages) must not stand in.
            return ([self.py, "-S", os.path.join(self.here, "py_worker.py"), "pure", *rest],
                    dict(self.env_plain, PYTHONPATH="/usr/lib/python3/dist-packages"))
        if lang == "rb":
            assert self.ruby
            return [self.ruby, "-I", self.rb_lib, os.path.join(self.here, "rb_worker.rb"), *rest], self.env_plain
        if lang == "lua":
            assert self.lua
            return [self.lua, os.path.join(self.here, "lua_worker.lua"), *rest], self.env_lua
        raise ValueError(lang)

    def available(self, lang: str) -> bool:
        return {"c": True, "py": True, "pure": self.have_pure, "rb": self.have_ruby, "lua": self.have_lua}[lang]

    def start(self, name: str, lang: str, *rest: str) -> Worker:
        argv, env = self.argv(lang, *rest)
        return Worker(name, argv, env)


def check_ready(w: Worker, lang: str, env: Env) -> str:
    hello = w.readline()
    if not hello.startswith("ready"):
        raise WorkerError(f"{w.name}: unexpected greeting {hello!r}")
    # Refuse a mix-up: our Python must come from the build, the pure one from Debian.
    if lang == "py" and env.py_pkg not in hello:
        raise WorkerError(f"{w.name}: loaded the wrong filelock: {hello}")
    if lang == "pure" and "/usr/lib/python3/dist-packages/filelock" not in hello:
        raise WorkerError(f"{w.name}: loaded the wrong filelock: {hello}")
    return hello[len("ready ") :]


# --------------------------------------------------------------------------
# Statistics and output
# --------------------------------------------------------------------------


def pct(values: list[float], p: int) -> float:
    """The p-th percentile (1 <= p <= 99), interpolated between the samples
    (statistics.quantiles, method "inclusive": the sample's own range)."""
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1]


class Report:
    def __init__(self) -> None:
        self.rows: list[tuple[str, str, str, str, float, str]] = []  # part, case, lang, metric, value, unit
        self.text: list[str] = []
        self.md: list[str] = []
        self.verdicts: list[tuple[bool, str]] = []
        self.versions: dict[str, str] = {}

    def tsv(self, part: str, case: str, lang: str, metric: str, value: float, unit: str) -> None:
        self.rows.append((part, case, lang, metric, value, unit))

    def table(self, title: str, header: list[str], rows: list[list[str]], note: str = "") -> None:
        """One table, printed as aligned text and kept for matrix.txt and
        (as a pipe table) matrix.md; figures are right-aligned."""
        cells = [[str(c) for c in r] for r in rows]

        def numeric(i: int) -> bool:  # a column of figures ("-" for none)
            col = [r[i].replace(" ", "").replace("-", "") for r in cells if r[i].strip()]
            return bool(col) and all(c.replace(".", "", 1).isdigit() for c in col)

        align = ["right" if numeric(i) else "left" for i in range(len(header))]
        opts = dict(headers=header, disable_numparse=True, colalign=align)
        text = tabulate(cells, tablefmt="simple", **opts).splitlines()
        lines = ["", f"== {title} =="] + text + ([note] if note else [])
        for ln in lines:
            print(ln)
        sys.stdout.flush()
        self.text += lines
        md_cells = [[c.replace("|", "\\|") for c in r] for r in cells]
        self.md += ["", f"### {title}", ""] + tabulate(md_cells, tablefmt="pipe", **opts).splitlines()
        if note:
            self.md += ["", note]

    def verdict(self, ok: bool, text: str) -> None:
        self.verdicts.append((ok, text))


def f(x: float, digits: int = 2) -> str:
    if x != x:  # NaN
        return "-"
    if abs(x) >= 1000:
        return f"{x:,.0f}".replace(",", " ")
    return f"{x:.{digits}f}"


T0 = time.monotonic()


def say(msg: str) -> None:
    """Progress, on stderr, with the time since the start."""
    print(f"[{time.monotonic() - T0:6.1f} s] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# Part 1: uncontended
# --------------------------------------------------------------------------

# (group, label, worker, case). Labels are also the chart's (short) labels.
UNCONTENDED = [
    ("acquire+release", "C core fl_acquire+fl_release", "c", "acq_rel"),
    ("acquire+release", "Python ours: with FileLock", "py", "with"),
    ("acquire+release", "Python ours: acquire()+release()", "py", "acq_rel"),
    ("acquire+release", "Ruby ours: synchronize {}", "rb", "sync"),
    ("acquire+release", "Ruby ours: acquire+release", "rb", "acq_rel"),
    ("acquire+release", "Lua ours: lock:with(fn)", "lua", "with"),
    ("acquire+release", "Lua ours: acquire()+release()", "lua", "acq_rel"),
    ("acquire+release", "pure-Python filelock: with FileLock", "pure", "with"),
    ("acquire+release", "pure-Python filelock: acquire()+release()", "pure", "acq_rel"),
    ("floor", "floor C: open+flock(EX)+flock(UN)+close", "c", "floor"),
    ("floor", "floor Python: os.open+fcntl.flock x2+close", "py", "floor"),
    ("floor", "floor Ruby: File.open+File#flock x2+close", "rb", "floor"),
    ("floor", "floor C: flock(EX)+flock(UN), fd kept open", "c", "floor_pair"),
    ("floor", "floor Python: fcntl.flock x2, fd kept open", "py", "floor_pair"),
    ("floor", "floor Ruby: File#flock x2, file kept open", "rb", "floor_pair"),
    ("soft lock", "floor C: open(O_CREAT|O_EXCL)+close+unlink", "c", "floor_excl"),
    ("soft lock", "C core soft lock", "c", "soft"),
    ("soft lock", "Python ours: with SoftFileLock", "py", "soft"),
    ("soft lock", "Ruby ours: SoftFileLock synchronize {}", "rb", "soft"),
    ("soft lock", "Lua ours: SoftFileLock with(fn)", "lua", "soft"),
    ("soft lock", "pure-Python filelock: with SoftFileLock", "pure", "soft"),
    ("reentrant", "C core: 2nd-level acquire+release", "c", "reentrant"),
    ("reentrant", "Python ours: nested with", "py", "reentrant"),
    ("reentrant", "Ruby ours: nested synchronize", "rb", "reentrant"),
    ("reentrant", "Lua ours: nested with", "lua", "reentrant"),
    ("reentrant", "pure-Python filelock: nested with", "pure", "reentrant"),
    ("construction", "C core: fl_lock_new+fl_lock_free", "c", "construct"),
    ("construction", "Python ours: FileLock(path)", "py", "construct"),
    ("construction", "Ruby ours: FileLock.new(path)", "rb", "construct"),
    ("construction", "Lua ours: FileLock(path)", "lua", "construct"),
    ("construction", "pure-Python filelock: FileLock(path)", "pure", "construct"),
    ("read/write", "C core: shared (read) acquire+release", "c", "rw_read"),
    ("read/write", "C core: exclusive (write) acquire+release", "c", "rw_write"),
    ("read/write", "Python ours: ReadWriteLock acquire_read+release", "py", "rw_read"),
    ("read/write", "Lua ours: ReadWriteLock acquire_read+release", "lua", "rw_read"),
]


def part_uncontended(env: Env, rep: Report, scratch: str, reps: int, batch_s: float) -> dict[str, float]:
    say(f"[1/5] uncontended: {reps} interleaved batches of ~{batch_s * 1e3:.0f} ms per case")
    langs = [lang for lang in ("c", "py", "pure", "rb", "lua") if env.available(lang)]
    workers: dict[str, Worker] = {}
    versions: dict[str, str] = {}
    try:
        for lang in langs:
            d = os.path.join(scratch, f"u_{lang}")
            os.makedirs(d)
            workers[lang] = env.start(f"{lang} serve", lang, "serve", d)
        for lang in langs:
            versions[lang] = check_ready(workers[lang], lang, env)
        cases = [c for c in UNCONTENDED if c[2] in workers]
        iters: dict[int, int] = {}
        for k, (_, _, lang, case) in enumerate(cases):
            w = workers[lang]
            w.request(f"{case} 100")  # warm up: files exist, code paths hot
            ns = int(w.request(f"{case} 200"))
            iters[k] = max(20, int(batch_s * 1e9 * 200 / max(ns, 1)))
        samples: dict[int, list[float]] = {k: [] for k in range(len(cases))}
        for _ in range(reps):
            for k, (_, _, lang, case) in enumerate(cases):
                ns = int(workers[lang].request(f"{case} {iters[k]}"))
                samples[k].append(ns / 1e3 / iters[k])
    finally:
        for w in workers.values():
            try:
                w.send("quit")
            except OSError:
                pass
            w.close()

    results: dict[str, float] = {}
    floors = {"c": None, "py": None, "rb": None}
    for k, (_, label, lang, case) in enumerate(cases):
        if case == "floor":
            floors[lang] = statistics.median(samples[k])
    rows = []
    for k, (group, label, lang, case) in enumerate(cases):
        med, mn = statistics.median(samples[k]), min(samples[k])
        results[f"{lang}:{case}"] = med
        ratio = ""
        if group == "acquire+release":
            fl = floors.get("py" if lang == "pure" else lang) or floors["c"]
            if fl:
                ratio = f"{med / fl:.2f}"
        rows.append([group, label, f(med, 3), f(mn, 3), ratio])
        rep.tsv("uncontended", label, lang, "median", med, "us")
        rep.tsv("uncontended", label, lang, "min", mn, "us")
    rep.table(
        f"1. Uncontended, per cycle (us; median and min of {reps} interleaved batches of ~{batch_s * 1e3:.0f} ms)",
        ["group", "case", "median us", "min us", "x floor"],
        rows,
        "x floor: relative to the open+flock+flock+close floor of the same language "
        "(Lua has no flock in its standard library: C floor).",
    )
    skipped = [lang for lang in ("pure", "rb", "lua") if not env.available(lang)]
    if skipped:
        print(f"(skipped, not available: {', '.join(skipped)})")
    py = results.get("py:with", float("nan"))
    rep.verdict(py <= 2.0, f"Python uncontended `with FileLock`: {f(py, 3)} us (target <= 2 us)")
    rep.versions = versions
    return results


# --------------------------------------------------------------------------
# Parts 2 and 3 for C: fl_bench
# --------------------------------------------------------------------------


def run_fl_bench(env: Env, parts: str, rounds: int, cpu_reps: int, hold_s: float, settle_ms: float = 2) -> dict:
    say(
        f"[2-3/5] C core via fl_bench: {parts} ({rounds} rounds, pause {settle_ms:g} ms; "
        f"cpu {cpu_reps} x {hold_s:.1f} s)"
    )
    argv = [
        env.fl_bench,
        f"--parts={parts}",
        f"--rounds={rounds}",
        f"--settle-ms={settle_ms:g}",
        f"--cpu-reps={cpu_reps}",
        f"--hold={hold_s}",
        "--tsv",
    ]
    out = subprocess.run(argv, stdout=subprocess.PIPE, text=True, timeout=600, check=True).stdout
    recs: dict[tuple[str, str, str], float] = {}
    for line in out.splitlines():
        parts = line.split("\t")
        if len(parts) == 6 and parts[0] == "TSV":
            recs[(parts[1], parts[2], parts[3])] = float(parts[4])
    if not recs:
        raise WorkerError("fl_bench printed no TSV records")
    return recs


# --------------------------------------------------------------------------
# Part 2: wake-up latency, Python
# --------------------------------------------------------------------------

# (label, lang, case, pause): pause "short" is fl_bench's fixed 2 ms before
# the release; "random" is 2-52 ms, uniformly.
WAKE_PY = [
    ("Python floor: blocked fcntl.flock", "py", "floor", "short"),
    ("Python ours: FileLock, wait forever", "py", "kernel", "short"),
    ("Python ours: FileLock, timeout=10", "py", "timed", "short"),
    ("Python ours: SoftFileLock, timeout=10", "py", "soft", "short"),
    ("Python floor: blocked fcntl.flock", "py", "floor", "random"),
    ("Python ours: FileLock, wait forever", "py", "kernel", "random"),
    ("Python ours: FileLock, timeout=10", "py", "timed", "random"),
    ("Python ours: SoftFileLock, timeout=10", "py", "soft", "random"),
    ("pure-Python filelock: FileLock (polls every 50 ms)", "pure", "kernel", "random"),
    ("pure-Python filelock: SoftFileLock (polls every 50 ms)", "pure", "soft", "random"),
]

WAKE_C = [
    ("floor: blocked flock(LOCK_EX)", "C floor: blocked flock(LOCK_EX)"),
    ("floor: LOCK_NB + inotify, watch kept open", "C floor: LOCK_NB + inotify, watch kept open"),
    ("fl kernel, wait forever (blocking flock)", "C core: kernel, wait forever (blocking flock)"),
    ("fl kernel, timeout=10 (inotify)", "C core: kernel, timeout=10 (inotify)"),
    ("fl kernel, forever + cancel cb (inotify)", "C core: kernel, forever + cancel callback (inotify)"),
    ("fl soft, timeout=10 (inotify on dir)", "C core: soft, timeout=10 (inotify on the directory)"),
]

PAUSE = {"short": "2 ms", "random": "2-52 ms", "long": "27 ms"}


def part_wakeup(env: Env, rep: Report, scratch: str, rounds: int, c_recs: dict, c_long: dict, long_ms: float) -> None:
    say(f"[2/5] wake-up latency, Python ours vs pure: {rounds} interleaved rounds per case")
    langs = sorted({lang for _, lang, _, _ in WAKE_PY if env.available(lang)})
    d = os.path.join(scratch, "wake")
    os.makedirs(d)
    holders: dict[str, Worker] = {}
    waiters: dict[str, Worker] = {}
    lat: dict[int, list[float]] = {k: [] for k in range(len(WAKE_PY))}
    rng = random.Random(7)
    try:
        for lang in langs:
            holders[lang] = env.start(f"{lang} holder", lang, "role", d)
            waiters[lang] = env.start(f"{lang} waiter", lang, "role", d)
        for lang in langs:
            check_ready(holders[lang], lang, env)
            check_ready(waiters[lang], lang, env)
        for _ in range(rounds):
            for k, (_, lang, case, pause) in enumerate(WAKE_PY):
                if lang not in holders:
                    continue
                h, w = holders[lang], waiters[lang]
                if h.request(f"hold {case}") != "ok":
                    raise WorkerError("holder failed")
                if w.request(f"wait {case}") != "r":
                    raise WorkerError("waiter failed")
                # The holder lets the waiter fall asleep in its acquire, then
                # releases. A poller's latency depends on where in its sleep
                # the release falls, and a fixed pause would pick one phase
                # for it: the random pause spreads the release over its period.
                p = 0.002 if pause == "short" else 0.002 + rng.uniform(0, 0.05)
                t0 = int(h.request(f"release {case} {p:.6f}"))
                t1 = int(w.readline())
                lat[k].append((t1 - t0) / 1e3)
    finally:
        for w in list(holders.values()) + list(waiters.values()):
            try:
                w.send("quit")
            except OSError:
                pass
            w.close()

    rows = []
    for recs, pause in ((c_recs, "short"), (c_long, "long")):
        for src, label in WAKE_C:
            if ("wakeup", src, "median") not in recs:
                continue
            med = recs[("wakeup", src, "median")]
            p99 = recs.get(("wakeup", src, "p99"), float("nan"))
            shown = f"{label}, pause {PAUSE[pause] if pause == 'short' else f'{long_ms:g} ms'}"
            rows.append([shown, f(med, 1), f(p99, 1), "fl_bench"])
            rep.tsv("wakeup", shown, "c", "median", med, "us")
            rep.tsv("wakeup", shown, "c", "p99", p99, "us")
            if src.startswith("fl soft"):
                rep.verdict(med <= 1000, f"wake-up median, {shown}: {f(med, 1)} us (target <= 1000 us)")
            elif src.startswith("fl "):
                rep.verdict(med <= 50, f"wake-up median, {shown}: {f(med, 1)} us (target <= 50 us)")
    for k, (label, lang, case, pause) in enumerate(WAKE_PY):
        if not lat[k]:
            continue
        med, p99 = pct(lat[k], 50), pct(lat[k], 99)
        shown = f"{label}, pause {PAUSE[pause]}"
        rows.append([shown, f(med, 1), f(p99, 1), "matrix"])
        rep.tsv("wakeup", shown, lang, "median", med, "us")
        rep.tsv("wakeup", shown, lang, "p99", p99, "us")
        if lang == "py" and case != "floor":
            target = 1000 if case == "soft" else 50
            rep.verdict(med <= target, f"wake-up median, {shown}: {f(med, 1)} us (target <= {target} us)")
    rep.table(
        "2. Wake-up latency: holder releases -> blocked waiter's acquire returns (us)",
        ["case", "median", "p99", "by"],
        rows,
        "(pause: how long the waiter has been blocked when the holder releases. C rows: fl_bench; Python rows: "
        f"{rounds} rounds per case, interleaved; our Python binding always waits with a cancel callback "
        "(signal checks), i.e. on the inotify path, even 'forever')",
    )


# --------------------------------------------------------------------------
# Part 3: CPU while waiting, Python
# --------------------------------------------------------------------------

CPU_PY = [
    ("Python ours: FileLock timeout=30, poll_interval=0.05 (default)", "py", "timed", 0.05),
    ("Python ours: FileLock timeout=30, poll_interval=0", "py", "timed", 0.0),
    ("Python ours: SoftFileLock timeout=30, poll_interval=0", "py", "soft", 0.0),
    ("pure-Python filelock: FileLock, poll_interval=0.05 (default)", "pure", "timed", 0.05),
    ("pure-Python filelock: FileLock, poll_interval=0", "pure", "timed", 0.0),
    ("pure-Python filelock: SoftFileLock, poll_interval=0", "pure", "soft", 0.0),
]


def part_cpu(env: Env, rep: Report, scratch: str, reps: int, hold_s: float, c_recs: dict) -> None:
    say(f"[3/5] wait CPU, Python ours vs pure: {reps} x {hold_s:.1f} s per case")
    langs = sorted({lang for _, lang, _, _ in CPU_PY if env.available(lang)})
    d = os.path.join(scratch, "cpu")
    os.makedirs(d)
    holders: dict[str, Worker] = {}
    waiters: dict[str, Worker] = {}
    per_s: dict[int, list[float]] = {k: [] for k in range(len(CPU_PY))}
    try:
        for lang in langs:
            holders[lang] = env.start(f"{lang} holder", lang, "role", d)
            waiters[lang] = env.start(f"{lang} waiter", lang, "role", d)
        for lang in langs:
            check_ready(holders[lang], lang, env)
            check_ready(waiters[lang], lang, env)
        for _ in range(reps):
            for k, (_, lang, case, poll) in enumerate(CPU_PY):
                if lang not in holders:
                    continue
                h, w = holders[lang], waiters[lang]
                h.request(f"hold {case}")
                if w.request(f"cpuwait {case} {poll}") != "r":
                    raise WorkerError("waiter failed")
                h.request(f"release {case} {hold_s}")
                cpu, wall = map(float, w.readline().split())
                per_s[k].append(cpu * 1e3 / wall)
    finally:
        for w in list(holders.values()) + list(waiters.values()):
            try:
                w.send("quit")
            except OSError:
                pass
            w.close()

    rows = []
    c_names = [
        ("fl kernel, forever (blocking flock)", "C core: kernel, wait forever (blocking flock)"),
        ("fl kernel, forever + cancel cb, poll=0", "C core: kernel, forever + cancel callback, poll_interval=0"),
        ("fl kernel, timeout=30, poll=0.05", "C core: kernel, timeout=30, poll_interval=0.05 (default)"),
        ("fl kernel, timeout=30, poll=0", "C core: kernel, timeout=30, poll_interval=0"),
        ("fl soft, timeout=30, poll=0.05", "C core: soft, timeout=30, poll_interval=0.05 (default)"),
        ("fl soft, timeout=30, poll=0", "C core: soft, timeout=30, poll_interval=0"),
    ]
    for src, label in c_names:
        med = c_recs.get(("cpu", src, "median"), float("nan"))
        rows.append([label, f(med, 3), "fl_bench"])
        rep.tsv("cpu", label, "c", "median", med, "ms/s")
        rep.verdict(med <= 2.0, f"wait CPU, {label}: {f(med, 3)} ms/s (target <= 2 ms/s)")
    for k, (label, lang, _, _) in enumerate(CPU_PY):
        if not per_s[k]:
            continue
        med = statistics.median(per_s[k])
        rows.append([label, f(med, 3), "matrix"])
        rep.tsv("cpu", label, lang, "median", med, "ms/s")
        if lang == "py":
            rep.verdict(med <= 2.0, f"wait CPU, {label}: {f(med, 3)} ms/s (target <= 2 ms/s)")
    rep.table(
        f"3. CPU burnt by a waiter (ms of user+sys CPU per second of waiting; median)",
        ["case", "ms/s", "by"],
        rows,
        f"(waiter blocked while another process holds the lock ~{hold_s:.1f} s; getrusage around the acquire)",
    )


# --------------------------------------------------------------------------
# Part 4 (and 5a): contention
# --------------------------------------------------------------------------

CONTENTION = [
    ("C floor: open+flock+flock+close", "c", "floor"),
    ("C core: kernel, wait forever", "c", "kernel"),
    ("C core: kernel, timeout=60 (inotify)", "c", "timed"),
    ("C core: soft lock", "c", "soft"),
    ("Python floor: os.open+fcntl.flock", "py", "floor"),
    ("Python ours: FileLock", "py", "kernel"),
    ("Python ours: FileLock timeout=60", "py", "timed"),
    ("Python ours: SoftFileLock", "py", "soft"),
    ("Ruby ours: FileLock", "rb", "kernel"),
    ("Lua ours: FileLock", "lua", "kernel"),
    ("pure-Python filelock: FileLock", "pure", "kernel"),
    ("pure-Python filelock: SoftFileLock", "pure", "soft"),
]


def contention_run(env: Env, d: str, tag: str, lang: str, case: str, procs: int, iters: int) -> dict[str, float]:
    path = os.path.join(d, f"{tag}.lock")
    data = os.path.join(d, f"{tag}.data")
    with open(data, "wb") as fh:
        fh.write(b"0" * CTR_LEN)
    argv_rest = ("contend", case, path, data, str(iters))
    workers = [env.start(f"{lang} contend {case} #{i}", lang, *argv_rest) for i in range(procs)]
    try:
        for w in workers:
            if w.readline() != "ready":
                raise WorkerError(f"{w.name}: not ready")
        t_go = time.monotonic()
        for w in workers:
            w.send("go")
        for w in workers:
            if w.readline() != "done":
                raise WorkerError(f"{w.name}: not done")
        t_end = time.monotonic()
        waits: list[float] = []
        order: dict[int, int] = {}
        for i, w in enumerate(workers):
            ws = w.readline().split()
            sq = w.readline().split()
            if ws[0] != "waits" or sq[0] != "seq":
                raise WorkerError(f"{w.name}: bad report")
            waits += [float(x) for x in ws[1:]]
            for v in sq[1:]:
                order[int(v)] = i
    finally:
        for w in workers:
            w.close()
    with open(data, "rb") as fh:
        final = int(fh.read(CTR_LEN))
    n = procs * iters
    reader = case == "rw_read"
    exact = reader or (final == n and len(order) == n)
    handoffs = sum(1 for v in range(1, n) if v in order and v - 1 in order and order[v] != order[v - 1])
    return {
        "throughput": n / (t_end - t_go),
        "wait_med": pct(waits, 50),
        "wait_p99": pct(waits, 99),
        "worst": max(waits) / 1e3,
        "handoffs": float("nan") if reader else handoffs,
        "exact": exact,
        "final": final,
    }


def part_contention(env: Env, rep: Report, scratch: str, procs: int, iters: int, reps: int) -> None:
    say(f"[4/5] contention: {procs} processes x {iters} acquisitions, {reps} interleaved runs per case")
    d = os.path.join(scratch, "cont")
    os.makedirs(d)
    cases = [c for c in CONTENTION if env.available(c[1])]
    runs: dict[int, list[dict[str, float]]] = {k: [] for k in range(len(cases))}
    for r in range(reps):
        for k, (_, lang, case) in enumerate(cases):
            runs[k].append(contention_run(env, d, f"k{k}_{r}", lang, case, procs, iters))
    rows = []
    thr: dict[str, float] = {}
    broken = []
    for k, (label, lang, case) in enumerate(cases):
        rs = runs[k]
        t = statistics.median(x["throughput"] for x in rs)
        wm = statistics.median(x["wait_med"] for x in rs)
        wp = statistics.median(x["wait_p99"] for x in rs)
        worst = max(x["worst"] for x in rs)
        hand = statistics.median(x["handoffs"] for x in rs)
        if not all(x["exact"] for x in rs):
            broken.append(label)
        thr[f"{lang}:{case}"] = t
        rows.append([label, f(t, 0), f(wm, 1), f(wp, 1), f(worst, 1), f(hand, 0)])
        rep.tsv("contention", label, lang, "throughput", t, "acq/s")
        rep.tsv("contention", label, lang, "wait_median", wm, "us")
        rep.tsv("contention", label, lang, "wait_p99", wp, "us")
        rep.tsv("contention", label, lang, "worst_wait", worst, "ms")
        rep.tsv("contention", label, lang, "handoffs", hand, "count")
    n = procs * iters
    rep.table(
        f"4. Contention: {procs} processes x {iters} acquisitions on one lock (median of {reps} runs)",
        ["case", "acq/s", "wait median us", "wait p99 us", "worst wait ms", "handoffs"],
        rows,
        f"(critical section: read a counter from a data file, write it back + 1; handoffs: how often the "
        f"next holder was another process, at most {n - 1}; worst: the longest single wait over all runs;\n"
        + (
            f" the counter came out WRONG for: {', '.join(broken)})"
            if broken
            else " the counter came out exact in every run: no two holders overlapped)"
        ),
    )
    for broken_label in broken:
        rep.verdict(False, f"contention, {broken_label}: counter wrong (mutual exclusion broken)")
    pure_k, pure_s = thr.get("pure:kernel"), thr.get("pure:soft")
    for key, label, ref, ref_label in (
        ("c:kernel", "C core FileLock", pure_k, "pure FileLock"),
        ("py:kernel", "Python ours FileLock", pure_k, "pure FileLock"),
        ("py:timed", "Python ours FileLock timeout=60", pure_k, "pure FileLock"),
        ("py:soft", "Python ours SoftFileLock", pure_s, "pure SoftFileLock"),
    ):
        if key in thr and ref:
            ratio = thr[key] / ref
            rep.verdict(
                ratio >= 2.0,
                f"contention throughput, {label}: {f(thr[key], 0)}/s = {ratio:.1f}x {ref_label} "
                f"({f(ref, 0)}/s) (target >= 2x)",
            )


# --------------------------------------------------------------------------
# Part 5: read/write lock
# --------------------------------------------------------------------------


def writer_wait(env: Env, d: str, tag: str, readers: int, hold_us: int, gate: int, trials: int, timeout: float):
    path = os.path.join(d, f"{tag}.lock")
    rs = [env.start(f"reader {tag} #{i}", "c", "rwreader", path, str(hold_us), str(gate)) for i in range(readers)]
    try:
        for r in rs:
            if r.readline() != "reading":
                raise WorkerError(f"{r.name}: not reading")
        time.sleep(0.2)
        w = env.start(f"writer {tag}", "c", "rwwriter", path, str(trials), str(gate), str(timeout))
        w.deadline = trials * (timeout + 1) + 60
        try:
            waits = [float(x) for x in w.readline().split()[1:]]
            timeouts = int(w.readline().split()[1])
        finally:
            w.close()
    finally:
        for r in rs:
            r.close()
    ok = [x for x in waits if x >= 0]
    return ok, timeouts, [-x for x in waits if x < 0]


def part_rw(env: Env, rep: Report, scratch: str, readers: int, iters: int, reps: int, trials: int) -> None:
    say(f"[5/5] read/write: {readers} reader processes x {iters}; writer wait under reader load")
    d = os.path.join(scratch, "rw")
    os.makedirs(d)
    thr: dict[str, list[float]] = {"rw_read": [], "rw_write": []}
    for r in range(reps):
        for case in ("rw_read", "rw_write"):
            thr[case].append(contention_run(env, d, f"{case}_{r}", "c", case, readers, iters)["throughput"])
    hold_us = 1000
    gate_ok, gate_to, _ = writer_wait(env, d, "gate", readers, hold_us, 1, trials, 10.0)
    nogate_trials = max(3, trials // 2)
    ng_ok, ng_to, _ = writer_wait(env, d, "nogate", readers, hold_us, 0, nogate_trials, 0.5)
    rows = []
    tr, tw = statistics.median(thr["rw_read"]), statistics.median(thr["rw_write"])
    rows.append([f"{readers} processes x {iters} shared (read) acquisitions, C core", f(tr, 0) + " acq/s", ""])
    rows.append([f"{readers} processes x {iters} exclusive (write) acquisitions, C core", f(tw, 0) + " acq/s", ""])
    rep.tsv("rw", "readers throughput", "c", "throughput", tr, "acq/s")
    rep.tsv("rw", "writers throughput (same lock, exclusive)", "c", "throughput", tw, "acq/s")
    gm = pct(gate_ok, 50) / 1e3 if gate_ok else float("nan")
    gx = max(gate_ok) / 1e3 if gate_ok else float("nan")
    rows.append(
        [
            f"writer wait under {readers} readers (hold 1 ms each), read_write=1 (writers' gate)",
            f"median {f(gm, 2)} ms, max {f(gx, 2)} ms",
            f"{gate_to}/{trials} timed out (10 s)",
        ]
    )
    rep.tsv("rw", "writer wait, gate", "c", "median", gm, "ms")
    rep.tsv("rw", "writer wait, gate", "c", "max", gx, "ms")
    nm = pct(ng_ok, 50) / 1e3 if ng_ok else float("nan")
    nx = max(ng_ok) / 1e3 if ng_ok else float("nan")
    rows.append(
        [
            f"writer wait under {readers} readers, plain flock (read_write=0, no gate)",
            f"median {f(nm, 2)} ms, max {f(nx, 2)} ms" if ng_ok else "never acquired",
            f"{ng_to}/{nogate_trials} timed out (0.5 s)",
        ]
    )
    rep.tsv("rw", "writer wait, no gate", "c", "median", nm, "ms")
    rep.tsv("rw", "writer wait, no gate", "c", "timeouts", ng_to, "count")
    rep.table(
        f"5. Read/write lock (C core; median of {reps} runs for throughput, {trials} writer trials)",
        ["case", "result", "note"],
        rows,
        "(readers: shared acquire, read the counter, release; writers: the contention critical section)",
    )


# --------------------------------------------------------------------------
# Machine, chart, main
# --------------------------------------------------------------------------


def machine() -> list[str]:
    model = "?"
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    deb = "?"
    try:
        with open("/etc/debian_version") as fh:
            deb = fh.read().strip()
    except OSError:
        pass
    fs = "?"
    try:
        fs = subprocess.run(
            ["stat", "-f", "-c", "%T", tempfile.gettempdir()], stdout=subprocess.PIPE, text=True
        ).stdout.strip()
    except OSError:
        pass
    load = os.getloadavg()
    return [
        f"nproc: {os.cpu_count()}",
        f"cpu: {model}",
        f"kernel: {platform.release()}",
        f"debian: {deb}",
        f"scratch: {tempfile.gettempdir()} ({fs})",
        f"load average at start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}",
    ]


def write_chart(rep: Report, outdir: str, png: str, here: str, cont_title: str) -> bool:
    gnuplot = shutil.which("gnuplot")
    if not gnuplot:
        print("(no gnuplot: chart skipped; apt-get install -y gnuplot-nox)")
        return False

    def dat(name: str, rows: list[tuple[str, ...]]) -> str:
        p = os.path.join(outdir, f"chart_{name}.dat")
        with open(p, "w") as fh:
            for r in rows:
                fh.write(" ".join(f'"{x}"' if i == 0 else str(x) for i, x in enumerate(r)) + "\n")
        return p

    def pick(part: str, metric: str, pred=lambda case, lang: True):
        return [(c, v) for (pp, c, lang, m, v, _) in rep.rows if pp == part and m == metric and pred(c, lang)]

    def short(label: str) -> str:
        s = label
        for a, b in (
            ("pure-Python filelock", "pure"),
            ("Python ours", "Py"),
            ("Ruby ours", "Rb"),
            ("Lua ours", "Lua"),
            ("C core", "C"),
            ("poll_interval=0.05 (default)", "poll dflt"),
            ("poll_interval=0", "poll 0"),
            ("timeout=", "t="),
            ("wait forever", "forever"),
            (" (blocking flock)", ""),
            ("(polls every 50 ms)", ""),
            (", pause 2 ms", " (2ms)"),
            (", pause 2-52 ms", " (rnd)"),
            (", pause 27 ms", " (27ms)"),
            ("kernel, ", ""),
            (" (inotify on the directory)", ""),
            ("forever + cancel callback", "forever+cancel"),
            ("ReadWriteLock acquire_read+release", "RW read"),
            ("shared (read) acquire+release", "RW read"),
            ("exclusive (write) acquire+release", "RW write"),
            ("open(O_CREAT|O_EXCL)+close+unlink", "create+unlink"),
            ("acquire()+release()", "acq+rel"),
            ("acquire+release", "acq+rel"),
            ("fl_acquire+fl_release", "acquire"),
            ("open+flock(EX)+flock(UN)+close", "open+flock+close"),
            ("os.open+fcntl.flock x2+close", "open+flock+close"),
            ("File.open+File#flock x2+close", "open+flock+close"),
            (", fd kept open", ""),
            (", file kept open", ""),
        ):
            s = s.replace(a, b)
        return s.replace('"', "'").strip(" ,:")

    un = [
        (short(c), v)
        for c, v in pick("uncontended", "median")
        if not c.startswith(("C core: 2nd", "Python ours: nested", "Ruby ours: nested", "Lua ours: nested"))
        and "nested" not in c
    ]
    wake_med = {c: v for c, v in pick("wakeup", "median")}
    wake_p99 = {c: v for c, v in pick("wakeup", "p99")}
    wake = [(short(c), wake_med[c], wake_p99.get(c, wake_med[c])) for c in wake_med if "floor: LOCK_NB" not in c]
    cpu = [(short(c), max(v, 0.001)) for c, v in pick("cpu", "median")]
    cont = [(short(c), v) for c, v in pick("contention", "throughput")]
    worst = [(short(c), v) for c, v in pick("contention", "worst_wait")]
    files = [dat("uncontended", un), dat("wakeup", wake), dat("cpu", cpu), dat("contention", cont), dat("worst", worst)]
    cmd = [gnuplot, "-e", f"outfile='{png}'; d_un='{files[0]}'; d_wake='{files[1]}'; d_cpu='{files[2]}'; "
           f"d_cont='{files[3]}'; d_worst='{files[4]}'; cont_title='{cont_title}'", os.path.join(here, "chart.gp")]
    res = subprocess.run(cmd, stderr=subprocess.PIPE, text=True)
    if res.returncode != 0:
        print(f"(gnuplot failed: {res.stderr.strip()})")
        return False
    return True


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", required=True, help="the CMake build directory")
    ap.add_argument("--mx-c", required=True, help="the C worker built by matrix.sh")
    ap.add_argument("--out", required=True, help="directory for matrix.tsv, matrix.txt, matrix.md, matrix.png")
    ap.add_argument("--quick", action="store_true", help="small counts: a smoke run of ~40 s")
    ap.add_argument("--parts", default="uncontended,wakeup,cpu,contention,rw")
    args = ap.parse_args()

    env = Env(args)
    os.makedirs(args.out, exist_ok=True)
    parts = set(args.parts.split(","))
    bad = parts - {"uncontended", "wakeup", "cpu", "contention", "rw"}
    if bad:
        ap.error(f"unknown part(s): {', '.join(sorted(bad))}")
    q = args.quick
    rep = Report()
    t_start = time.monotonic()
    info = machine()
    print("filelock benchmark matrix")
    for line in info:
        print("  " + line)
    rep.text += ["filelock benchmark matrix"] + ["  " + x for x in info]
    scratch = tempfile.mkdtemp(prefix="fl-matrix.")
    try:
        if "uncontended" in parts:
            part_uncontended(env, rep, scratch, reps=4 if q else 11, batch_s=0.005 if q else 0.02)
            for lang, v in rep.versions.items():
                rep.text.append(f"  {lang}: {v}")
                print(f"  {lang}: {v}")
        c_recs: dict = {}
        c_long: dict = {}
        long_ms = 27.0
        fb_parts = ",".join(p for p in ("wakeup", "cpu") if p in parts)
        if fb_parts:
            c_recs = run_fl_bench(env, fb_parts, rounds=20 if q else 200, cpu_reps=1 if q else 3, hold_s=0.3 if q else 1.5)
        if "wakeup" in parts:
            # The same after a longer sleep (a poller's mean phase): an idle
            # virtual CPU can take longer to wake than a briefly idle one.
            c_long = run_fl_bench(env, "wakeup", rounds=10 if q else 60, cpu_reps=1, hold_s=1.0, settle_ms=long_ms)
            part_wakeup(env, rep, scratch, rounds=10 if q else 100, c_recs=c_recs, c_long=c_long, long_ms=long_ms)
        if "cpu" in parts:
            part_cpu(env, rep, scratch, reps=1 if q else 3, hold_s=0.3 if q else 1.5, c_recs=c_recs)
        if "contention" in parts:
            part_contention(env, rep, scratch, procs=8, iters=50 if q else 500, reps=1 if q else 5)
        if "rw" in parts:
            part_rw(env, rep, scratch, readers=4, iters=200 if q else 2000, reps=1 if q else 3, trials=6 if q else 20)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    lines = ["", "== Targets =="]
    for ok, text in rep.verdicts:
        lines.append(f"  {'met ' if ok else 'MISS'}  {text}")
    met = sum(ok for ok, _ in rep.verdicts)
    lines.append(f"  {met} of {len(rep.verdicts)} met")
    elapsed = time.monotonic() - t_start
    end_load = os.getloadavg()
    lines.append(f"\ntotal run time {elapsed:.1f} s; load average at the end: {end_load[0]:.2f} {end_load[1]:.2f} {end_load[2]:.2f}")
    for ln in lines:
        print(ln)
    rep.text += lines
    rep.md += ["", f"Run time {elapsed:.0f} s; load average at the end: {end_load[0]:.2f} {end_load[1]:.2f} {end_load[2]:.2f}."]
    rep.md += ["", "### Targets", "", "| | target |", "|---|---|"]
    rep.md += [f"| {'met' if ok else '**missed**'} | {text} |" for ok, text in rep.verdicts]

    tsv = os.path.join(args.out, "matrix.tsv")
    with open(tsv, "w", newline="") as fh:
        w = csv.writer(fh, dialect="excel-tab", lineterminator="\n")
        w.writerow(["part", "case", "lang", "metric", "value", "unit"])
        w.writerows([x if not isinstance(x, float) else f"{x:.6g}" for x in r] for r in rep.rows)
    with open(os.path.join(args.out, "matrix.txt"), "w") as fh:
        fh.write("\n".join(rep.text) + "\n")
    with open(os.path.join(args.out, "matrix.md"), "w") as fh:
        fh.write("\n".join(["Machine:", ""] + [f"- {x}" for x in info] + rep.md) + "\n")
    png = os.path.join(args.out, "matrix.png")
    charted = False
    if {"uncontended", "wakeup", "cpu", "contention"} <= parts:
        charted = write_chart(rep, args.out, png, env.here, f"8 processes x {50 if q else 500}")
    else:
        print("(chart skipped: it needs the parts uncontended, wakeup, cpu and contention)")
    print(f"\nwrote {tsv}, matrix.txt, matrix.md" + (f", {png}" if charted else "") + f" in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
