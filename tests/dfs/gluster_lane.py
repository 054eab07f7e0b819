#!/usr/bin/python3
"""Locks across two hosts on a real distributed file system (issue 20).

Stands up GlusterFS with one server and two clients in their own network,
UTS and mount namespaces (cluster.py), then runs the cross-host cases:

  counter.<lang>.<kind>   2 hosts x 4 processes of one language (C, Python,
                          Ruby, Lua, the CLI) increment one counter on the
                          volume under one FileLock / SoftFileLock: the count
                          is exact, no two hold intervals overlap and the
                          values read are 0, 1, 2...
  wakeup.<kind>           waiters on host 2 (waiting forever, timed, CLI) all
                          win after host 1 releases: inotify sees nothing of
                          another host, so this proves the re-check timer
  killed_holder.<kind>    SIGKILL of the holder on host 1: the kernel lock
                          passes to host 2; the soft marker is NOT reclaimed
                          by host 2 (death on another host cannot be proven)
                          but is by host 1, where the death is provable
  killed_client.<kind>    SIGKILL of host 1's FUSE client while its process
                          holds: the kernel lock passes to host 2; the soft
                          marker stays
  owner.soft              host 2 reads the owner record of host 1's holder
                          (CLI --owner, Python .owner): it names flhost1
  lease.live              a live SoftFileLease on host 1 is never taken by
                          host 2 (Python, CLI --lease) over several durations
  lease.frozen            host 1's lease holder frozen (SIGSTOP): host 2
                          takes it after the duration; woken, host 1 learns
                          owner-changed and leaves host 2's marker alone
  lease.killed_client     host 1's FUSE client killed under its lease: host
                          2 takes it; host 1 is told refresh-failed

Exit 0: all passed; 1: a case failed; 77: skipped (not root, no /dev/fuse,
no GlusterFS), with the reason on stdout. Every wait has a deadline, so a
hang fails; no case asserts a duration.

    gluster_lane.py --build BUILD [--only SUBSTRING] [--keep]
"""

import argparse
import os
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "cross"))
sys.path.insert(0, HERE)

import cluster as cluster_mod  # noqa: E402
import langs as langs_mod  # noqa: E402
import torture  # noqa: E402  (log parsing and the interval check)

PER_PROC = 12  # increments per process: 2 hosts x 4 processes x 12 = 96
DEADLINE = 60  # seconds any one step may take before it is a hang
RECONNECT = 8  # seconds after a partition heals: the client reconnects every ~3 s


class Failure(Exception):
    pass


def note(msg):
    print(msg, flush=True)


class Lane:
    def __init__(self, args, cl):
        self.args = args
        self.cl = cl
        self.build = os.path.abspath(args.build)
        self.helper = os.path.join(self.build, "tests", "fl_test_helper")
        self.cli = os.path.join(self.build, "bindings", "cli", "filelock")
        c_prog = os.path.join(self.build, "tests", "cross", "fl_cross_worker")
        self.langs = langs_mod.discover(self.build, c_prog, "worker")
        self.py = self.langs["py"]
        self.seq = 0
        self.local = os.path.join(cl.dir, "local")  # logs: on this machine's disk
        os.mkdir(self.local)

    def missing(self, lang):
        """Why a case in `lang` cannot run (None: it can). Without a language
        (the wake-up and kill cases) it needs the helper, Python and the CLI."""
        if lang == "cli" or lang is None:
            for what, path in (("the CLI", self.cli), ("fl_test_helper", self.helper)):
                if not os.access(path, os.X_OK):
                    return "%s is not built (%s)" % (what, path)
            return self.py.missing if lang is None else None
        return self.langs[lang].missing

    def path(self, name):
        """A fresh path on the volume."""
        self.seq += 1
        return os.path.join(self.cl.mnt, "%02d.%s" % (self.seq, name))

    def popen(self, host, argv, env=None, stdin=subprocess.DEVNULL, **kw):
        return subprocess.Popen(self.cl.ns(host) + argv, env=env or self.py.env, stdin=stdin,
                                **kw)

    def run(self, host, argv, env=None, timeout=DEADLINE):
        p = subprocess.run(self.cl.ns(host) + argv, env=env or self.py.env,
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
        return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")

    def pyrun(self, host, code, *args, timeout=DEADLINE):
        """Runs Python code with our binding on `host`."""
        if self.py.missing:
            raise Failure("Python binding: %s" % self.py.missing)
        return self.run(host, [langs_mod.DEBIAN_PYTHON, "-c", code] + list(args), timeout=timeout)

    # -- counter -------------------------------------------------------------

    def counter(self, lang, kind):
        lockfile = self.path("counter.lock")
        counter = self.path("counter")
        rc, _, err = self.run("c1", ["sh", "-c", "printf '%%020d\\n' 0 > %s" % counter])
        if rc != 0:
            raise Failure("cannot create the counter: %s" % err)
        procs = []
        started = time.monotonic()
        for i in range(8):
            host = "c1" if i % 2 == 0 else "c2"
            log = os.path.join(self.local, "log.%d.%s.%s.%d" % (self.seq, lang, kind, i))
            err = open(log + ".err", "wb")
            if lang == "cli":
                flag = "--soft " if kind == "soft" else ""
                # read-increment-write in the shell under the CLI's lock,
                # fixed width so the file never shrinks
                # (expr reads the leading zeros as decimal; dash's $(( )) would not)
                # Each hold is logged like the workers' (torture.py's "S t0
                # value" / "E t1" lines, on this machine's disk), so
                # overlapping holds show up as such, not only as a short
                # count. date(1) reads CLOCK_REALTIME, one clock for both
                # hosts (namespaces do not change it).
                body = ('t0=$(date +%s%N) && o=$(cat {c}) && v=$(expr "$o" + 1) && '
                        'printf "%020d\\n" "$v" > {c}.tmp.$$ && '
                        'cat {c}.tmp.$$ > {c} && rm -f {c}.tmp.$$ && '
                        'printf "S %s %s\\nE %s\\n" "$t0" "$(expr "$o" + 0)" '
                        '"$(date +%s%N)" >> {log}').format(c=counter, log=log)
                script = ('i=0; while [ $i -lt {n} ]; do {cli} {f}-w 60 {l} sh -c \'{b}\' '
                          '|| exit 1; i=$((i+1)); done').format(
                              n=PER_PROC, cli=self.cli, f=flag, l=lockfile, b=body)
                p = self.popen(host, ["sh", "-c", script], stdout=subprocess.DEVNULL, stderr=err)
                w = torture.Worker("cli@" + host, p, log, log + ".err")
            else:
                L = self.langs[lang]
                argv = L.argv + ["hold", lockfile, counter, log, str(PER_PROC), "0", "2000",
                                 kind, "60"]
                p = self.popen(host, argv, env=L.env, stdout=subprocess.DEVNULL, stderr=err)
                w = torture.Worker("%s@%s" % (lang, host), p, log, log + ".err")
            err.close()
            procs.append(w)
        try:
            for w in procs:
                left = started + DEADLINE * 2 - time.monotonic()
                try:
                    w.proc.wait(timeout=max(left, 0.1))
                except subprocess.TimeoutExpired:
                    raise Failure("workers still running after %d s" % (DEADLINE * 2))
                if w.proc.returncode != 0:
                    # Two holders at once also show as a worker reading a
                    # counter another is rewriting: say so if the logs do.
                    raise Failure("%s exited with %d: %s%s" % (w.lang, w.proc.returncode,
                                                              w.stderr_text(),
                                                              self._overlap(procs)))
        finally:
            torture.kill_all(procs)
        total = 8 * PER_PROC
        holds = []
        for w in procs:
            h = torture.parse_log(w)
            if len(h) != PER_PROC:
                raise Failure("%s logged %d holds, expected %d" % (w.lang, len(h), PER_PROC))
            holds.extend(h)
        torture.check_intervals(holds)
        if sorted(h[2] for h in holds) != list(range(total)):
            raise Failure("the values read are not exactly 0..%d" % (total - 1))
        rc, out, err = self.run("c2", ["cat", counter])
        final = int(out) if rc == 0 and out.strip() else -1
        if final != total:
            raise Failure("counter is %d, expected %d: increments were lost" % (final, total))
        what = "counter exact (%d), %d holds without overlap" % (total, len(holds))
        return "%s, %.1f s" % (what, time.monotonic() - started)

    @staticmethod
    def _overlap(procs):
        """"; overlapping holds: ..." when holds logged so far overlap."""
        holds = []
        for w in procs:
            try:
                holds.extend(h for h in torture.parse_log(w) if h[3])
            except torture.Failure:
                pass  # a log still being written: judge the others
        holds.sort(key=lambda h: h[0])
        for a, b in zip(holds, holds[1:]):
            if not a[1] < b[0]:
                return "; overlapping holds: %s read %d and %s read %d (%d ns overlap)" % (
                    a[4].lang, a[2], b[4].lang, b[2], a[1] - b[0])
        return ""

    # -- holders and waiters -------------------------------------------------

    def hold(self, host, lockfile, kind):
        """fl_test_helper holding `lockfile` on `host` until its stdin closes."""
        p = self.popen(host, [self.helper, "hold", lockfile, kind, "-1"], stdin=subprocess.PIPE,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        line = self._readline(p, "holder on %s" % host)
        if line != "held":
            raise Failure("holder on %s printed %r: %s" % (host, line, p.stderr.read()))
        return p

    @staticmethod
    def _readline(p, what, timeout=DEADLINE):
        import selectors
        sel = selectors.DefaultSelector()
        sel.register(p.stdout, selectors.EVENT_READ)
        if not sel.select(timeout):
            p.kill()
            raise Failure("%s: no output within %d s" % (what, timeout))
        return p.stdout.readline().decode(errors="replace").strip()

    def try_once(self, host, lockfile, kind):
        """0: won (and released), 3: held elsewhere, other: error."""
        rc, _, err = self.run(host, [self.helper, "try", lockfile, kind])
        if rc not in (0, 3):
            raise Failure("try on %s: exit %d: %s" % (host, rc, err))
        return rc

    def wakeup(self, kind):
        lockfile = self.path("wake.lock")
        holder = self.hold("c1", lockfile, kind)
        flag = ["--soft"] if kind == "soft" else []
        cls = "SoftFileLock" if kind == "soft" else "FileLock"
        py = ("import sys, filelock\n"
              "l = filelock.%s(sys.argv[1], timeout=%d)\n"
              "l.acquire(); print('won', flush=True); l.release()\n" % (cls, DEADLINE))
        waiters = {
            "C, waiting forever": self.popen("c2", [self.helper, "hold", lockfile, kind, "0"],
                                             stdout=subprocess.PIPE, stderr=subprocess.PIPE),
            "Python, timed": self.popen("c2", [langs_mod.DEBIAN_PYTHON, "-c", py, lockfile],
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE),
            "CLI -w": self.popen("c2", [self.cli] + flag + ["-w", str(DEADLINE), lockfile,
                                                            "echo", "won"],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE),
        }
        try:
            time.sleep(1.0)  # let them reach their wait; none may have won
            for name, p in waiters.items():
                if p.poll() is not None:
                    raise Failure("%s waiter on host 2 ended while host 1 held the lock: exit "
                                  "%d, %s %s" % (name, p.returncode, p.stdout.read(),
                                                 p.stderr.read()))
            t0 = time.monotonic()
            holder.stdin.close()
            if self._readline(holder, "holder") != "released":
                raise Failure("holder on host 1 did not release")
            for name, p in waiters.items():
                try:
                    out, err = p.communicate(timeout=DEADLINE)
                except subprocess.TimeoutExpired:
                    raise Failure("%s waiter on host 2 never noticed host 1's release" % name)
                if p.returncode != 0 or not (b"won" in out or b"held" in out):
                    raise Failure("%s waiter on host 2: exit %d, %s %s"
                                  % (name, p.returncode, out, err))
            return "3 waiters on host 2 won after host 1's release (last after %.2f s)" % (
                time.monotonic() - t0)
        finally:
            for p in list(waiters.values()) + [holder]:
                if p.poll() is None:
                    p.kill()
                p.wait()

    def killed_holder(self, kind):
        lockfile = self.path("killed.lock")
        holder = self.hold("c1", lockfile, kind)
        holder.kill()
        holder.wait()
        if kind == "kernel":
            # waiting forever: the kill must free it
            rc, out, err = self.run("c2", [self.helper, "hold", lockfile, kind, "0"])
            if rc != 0 or "held" not in out:
                raise Failure("host 2 did not get the lock of host 1's killed holder: %d %s %s"
                              % (rc, out, err))
            return "the killed holder's lock passed to host 2"
        if self.try_once("c2", lockfile, kind) != 3:
            raise Failure("host 2 reclaimed the marker of a holder on host 1: it cannot know "
                          "that the holder is dead")
        rc, out, err = self.pyrun("c2", "import sys, filelock\n"
                                  "try:\n"
                                  "    filelock.SoftFileLock(sys.argv[1], timeout=1).acquire()\n"
                                  "    print('won')\n"
                                  "except filelock.Timeout:\n"
                                  "    print('timeout')\n", lockfile)
        if out.strip() != "timeout":
            raise Failure("Python on host 2 with a timeout: %r %s" % (out, err))
        if self.try_once("c1", lockfile, kind) != 0:
            raise Failure("host 1 did not reclaim the marker of its own dead holder")
        return "host 2 kept the dead holder's marker (try, timed Python); host 1 reclaimed it"

    def killed_client(self, kind):
        lockfile = self.path("client.lock")
        holder = self.hold("c1", lockfile, kind)
        fuse = self.cl.client_pid("c1")
        if fuse is None:
            raise Failure("no glusterfs client process on host 1")
        os.kill(fuse, signal.SIGKILL)
        try:
            if kind == "kernel":
                rc, out, err = self.run("c2", [self.helper, "hold", lockfile, kind, "0"])
                if rc != 0 or "held" not in out:
                    raise Failure("host 2 did not get the lock after host 1's client died: "
                                  "%d %s %s" % (rc, out, err))
                return "host 1's client killed: its lock passed to host 2"
            if self.try_once("c2", lockfile, kind) != 3:
                raise Failure("host 2 reclaimed host 1's marker after host 1's client died")
            return "host 1's client killed: host 2 kept its marker"
        finally:
            holder.kill()
            holder.wait()
            self.cl.remount("c1")

    def partition(self, kind):
        """Host 1 holds the kernel lock and is cut off the network: the
        server frees its lock after network.ping-timeout (5 s here) and host
        2 wins. After the partition heals, host 1's release must not pass
        silently: with client.strict-locks on its descriptor is stale."""
        lockfile = self.path("part.lock")
        py = ("import sys, filelock\n"
              "l = filelock.FileLock(sys.argv[1])\n"
              "l.acquire(); print('held', flush=True)\n"
              "sys.stdin.read()\n"
              "try:\n"
              "    l.release(); print('released', flush=True)\n"
              "except Exception as e:\n"
              "    notes = ' '.join(getattr(e, '__notes__', []))\n"
              # str(e) is what open() would say (errno, strerror, path); the
              # core's reason ("... was lost ...") is the note.
              "    print('release failed: %s: %s %s' % (type(e).__name__, e, notes), flush=True)\n")
        holder = self.popen("c1", [langs_mod.DEBIAN_PYTHON, "-c", py, lockfile],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            if self._readline(holder, "holder on host 1") != "held":
                raise Failure("holder on host 1 did not report the lock")
            self.cl.sh("c1", "ip link set c1 down")
            t0 = time.monotonic()
            rc, out, err = self.run("c2", [self.helper, "hold", lockfile, kind, "0"])
            waited = time.monotonic() - t0
            self.cl.sh("c1", "ip link set c1 up")
            if rc != 0 or "held" not in out:
                raise Failure("host 2 did not get the lock of the partitioned host 1: %d %s %s"
                              % (rc, out, err))
            time.sleep(RECONNECT)  # let host 1's client reconnect (and re-open)
            holder.stdin.close()
            line = self._readline(holder, "holder on host 1")
            if not (line.startswith("release failed") and "was lost" in line):
                raise Failure("host 1's release after losing its lock in the partition passed "
                              "silently: %r" % line)
            return "host 2 won %.1f s after host 1 was cut off; host 1's release: %s" % (
                waited, line)
        finally:
            self.cl.sh("c1", "ip link set c1 up")
            if holder.poll() is None:
                holder.kill()
            holder.wait()

    def owner(self, kind):
        lockfile = self.path("owner.lock")
        holder = self.hold("c1", lockfile, kind)
        try:
            rc, out, err = self.run("c2", [self.cli, "--soft", "--owner", lockfile])
            if rc != 0 or out.split()[1:2] != [cluster_mod.HOSTNAMES[0]]:
                raise Failure("CLI --owner on host 2: exit %d, %r %s" % (rc, out, err))
            if out.split()[0] != str(self._pid_of(holder)):
                raise Failure("CLI --owner on host 2 names pid %s, the holder is %d"
                              % (out.split()[0], self._pid_of(holder)))
            rc, pout, err = self.pyrun("c2", "import sys, filelock\n"
                                       "o = filelock.SoftFileLock(sys.argv[1]).owner\n"
                                       "print(o.pid, o.hostname)\n", lockfile)
            if rc != 0 or pout.split() != out.split()[:2]:
                raise Failure("Python .owner on host 2: %r (CLI: %r) %s" % (pout, out, err))
            return "host 2 reads the owner record: %s" % out.strip()
        finally:
            holder.stdin.close()
            holder.wait()

    # -- leases -----------------------------------------------------------------

    LEASE = 1.5  # seconds; every holder and waiter uses the same duration

    def lease_holder(self, lockfile, until_lost):
        """A Python SoftFileLease holder on host 1. until_lost: it reports
        the loss as soon as its heartbeat sees it; else it waits for a line
        on stdin. Then it releases and reports the compromise."""
        py = ("import sys, time, filelock\n"
              "lost = []\n"
              "l = filelock.SoftFileLease(sys.argv[1], lease_duration=%r, on_compromise=lost.append)\n"
              "l.acquire(); print('held', flush=True)\n"
              "if sys.argv[2] == '1':\n"
              "    end = time.monotonic() + %d\n"
              "    while not lost and time.monotonic() < end:\n"
              "        time.sleep(0.02)\n"
              "else:\n"
              "    sys.stdin.readline()\n"
              "print('lost', lost[0].reason if lost else None, flush=True)\n"
              "l.release()\n"
              "print('compromise', l.compromise.reason if l.compromise else None, flush=True)\n"
              % (self.LEASE, DEADLINE))
        p = self.popen("c1", [langs_mod.DEBIAN_PYTHON, "-c", py, lockfile,
                              "1" if until_lost else "0"],
                       stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if self._readline(p, "lease holder on host 1") != "held":
            raise Failure("lease holder on host 1 did not report the lease: %s" % p.stderr.read())
        return p

    def lease_waiter(self, lockfile, timeout):
        """Python on host 2: 'won' or 'timeout'."""
        rc, out, err = self.pyrun("c2", "import sys, filelock\n"
                                  "l = filelock.SoftFileLease(sys.argv[1], lease_duration=%r)\n"
                                  "try:\n"
                                  "    l.acquire(timeout=float(sys.argv[2])); print('won')\n"
                                  "    l.release()\n"
                                  "except filelock.Timeout:\n"
                                  "    print('timeout')\n" % self.LEASE,
                                  lockfile, str(timeout), timeout=DEADLINE + timeout)
        if rc != 0:
            raise Failure("lease waiter on host 2: exit %d: %s" % (rc, err))
        return out.strip()

    def lease_live(self, kind):
        """A live lease on host 1 is never taken by host 2, over several
        durations of host 2 trying (the CLI and Python)."""
        lockfile = self.path("lease-live.lock")
        holder = self.lease_holder(lockfile, False)
        try:
            got = self.lease_waiter(lockfile, 4 * self.LEASE)
            if got != "timeout":
                raise Failure("host 2 took the live lease of host 1: %r" % got)
            rc, out, err = self.run("c2", [self.cli, "--lease", repr(self.LEASE), "-w",
                                           repr(3 * self.LEASE), lockfile, "echo", "won"])
            if rc != 1 or "won" in out:
                raise Failure("CLI --lease on host 2 against a live lease: exit %d %r %s"
                              % (rc, out, err))
            holder.stdin.write(b"done\n")
            holder.stdin.flush()
            if self._readline(holder, "lease holder") != "lost None":
                raise Failure("the live lease holder on host 1 was told it lost its lease")
            if self._readline(holder, "lease holder") != "compromise None":
                raise Failure("the live lease holder's release reported a compromise")
            return ("host 2 (Python %.1f s, CLI %.1f s) never took host 1's live %.1f s lease"
                    % (4 * self.LEASE, 3 * self.LEASE, self.LEASE))
        finally:
            if holder.poll() is None:
                holder.kill()
            holder.wait()

    def lease_frozen(self, kind):
        """Host 1's lease holder is frozen (SIGSTOP: its heartbeat stops):
        host 2 takes the lease after the duration; woken, host 1 learns it
        lost it (owner-changed), and its release leaves host 2's marker."""
        lockfile = self.path("lease-frozen.lock")
        holder = self.lease_holder(lockfile, True)
        try:
            os.kill(self._pid_of(holder), signal.SIGSTOP)
            t0 = time.monotonic()
            py = ("import sys, filelock\n"
                  "l = filelock.SoftFileLease(sys.argv[1], lease_duration=%r)\n"
                  "l.acquire(timeout=%d); print('won', flush=True)\n"
                  "sys.stdin.readline()\n"
                  "print('mine' if l.is_lock_held_by_us else 'not mine', flush=True)\n"
                  "l.release(); print('released', l.compromise, flush=True)\n"
                  % (self.LEASE, DEADLINE))
            waiter = self.popen("c2", [langs_mod.DEBIAN_PYTHON, "-c", py, lockfile],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
            try:
                if self._readline(waiter, "lease waiter on host 2") != "won":
                    raise Failure("host 2 did not take the frozen lease: %s"
                                  % waiter.stderr.read())
                waited = time.monotonic() - t0
                os.kill(self._pid_of(holder), signal.SIGCONT)
                line = self._readline(holder, "woken lease holder on host 1")
                if line != "lost owner-changed":
                    raise Failure("the woken holder on host 1 said %r, not 'lost owner-changed'"
                                  % line)
                line = self._readline(holder, "woken lease holder on host 1")
                if line != "compromise owner-changed":
                    raise Failure("the woken holder's release said %r" % line)
                waiter.stdin.write(b"go\n")
                waiter.stdin.flush()
                line = self._readline(waiter, "lease waiter on host 2")
                if line != "mine":
                    raise Failure("host 1's release touched host 2's marker: %r" % line)
                return ("host 2 took host 1's frozen %.1f s lease after %.1f s; host 1 woke, "
                        "learned owner-changed, left host 2's marker" % (self.LEASE, waited))
            finally:
                if waiter.poll() is None:
                    waiter.kill()
                waiter.wait()
        finally:
            if holder.poll() is None:
                os.kill(holder.pid, signal.SIGCONT)
                holder.kill()
            holder.wait()

    def lease_killed_client(self, kind):
        """Host 1's FUSE client dies under a live lease holder: its refreshes
        fail, host 2 takes the lease after the duration, and host 1 is told
        refresh-failed."""
        lockfile = self.path("lease-client.lock")
        holder = self.lease_holder(lockfile, True)
        fuse = self.cl.client_pid("c1")
        if fuse is None:
            raise Failure("no glusterfs client process on host 1")
        try:
            os.kill(fuse, signal.SIGKILL)
            got = self.lease_waiter(lockfile, DEADLINE)
            if got != "won":
                raise Failure("host 2 did not take the lease of host 1's dead client: %r" % got)
            line = self._readline(holder, "lease holder on host 1")
            if line != "lost refresh-failed":
                raise Failure("host 1's holder said %r, not 'lost refresh-failed'" % line)
            return "host 1's client killed: host 2 took the lease; host 1 told refresh-failed"
        finally:
            if holder.poll() is None:
                holder.kill()
            holder.wait()
            self.cl.remount("c1")

    @staticmethod
    def _pid_of(p):
        return p.pid  # nsenter without a pid namespace execs: same pid


def main():
    global PER_PROC
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    ap.add_argument("--only", default="", help="run only cases whose name contains this")
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory")
    ap.add_argument("--per-proc", type=int, default=12,
                    help="increments per process in the counter cases (default %(default)s)")
    ap.add_argument("--stock", action="store_true",
                    help="Gluster's default caching (shows lost updates; expect failures)")
    args = ap.parse_args()
    PER_PROC = args.per_proc
    reason = cluster_mod.why_not()
    if reason:
        note("SKIP: GlusterFS lane: %s" % reason)
        return 77
    cases = []
    for kind in ("kernel", "soft"):
        for lang in ("c", "py", "rb", "lua", "cli"):
            cases.append(("counter.%s.%s" % (lang, kind), "counter", (lang, kind)))
    for kind in ("kernel", "soft"):
        cases.append(("wakeup.%s" % kind, "wakeup", (kind,)))
        cases.append(("killed_holder.%s" % kind, "killed_holder", (kind,)))
        cases.append(("killed_client.%s" % kind, "killed_client", (kind,)))
    cases.append(("owner.soft", "owner", ("soft",)))
    cases.append(("lease.live", "lease_live", ("soft",)))
    cases.append(("lease.frozen", "lease_frozen", ("soft",)))
    cases.append(("lease.killed_client", "lease_killed_client", ("soft",)))
    cases.append(("partition.kernel", "partition", ("kernel",)))
    cases = [c for c in cases if args.only in c[0]]

    cl = cluster_mod.Cluster(note, stock=args.stock)
    failed = []
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(1))
    try:
        try:
            cl.up()
        except cluster_mod.Skip as e:
            note("SKIP: GlusterFS lane: %s" % e)
            return 77
        lane = Lane(args, cl)
        for name, meth, cargs in cases:
            lang = cargs[0] if meth == "counter" else None
            missing = lane.missing(lang)
            if missing:
                note("SKIP %s: %s" % (name, missing))
                continue
            try:
                note("PASS %s: %s" % (name, getattr(lane, meth)(*cargs)))
            except (Failure, torture.Failure, subprocess.TimeoutExpired) as e:
                note("FAIL %s: %s" % (name, e))
                failed.append(name)
    except cluster_mod.SetupError as e:
        note("FAIL: GlusterFS setup: %s (logs kept in %s)" % (e, cl.logs))
        args.keep = True
        failed.append("setup")
    finally:
        cl.down(keep=args.keep or bool(failed))
    if failed:
        note("FAILED: %s (scratch directory kept: %s)" % (", ".join(failed), cl.dir))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
