#!/usr/bin/python3
"""Issue 17's proof, the Python side: asyncio tasks and sync threads in one
process (driven by test_proof.py; needs PYTHONPATH=<build>/bindings/python/pkg).

    proof_async.py hold <lock> <counter> <log> <kind> <tasks> <threads> <per_thread>
    proof_async.py cancel <lock> <kind>
    proof_async.py storm <lock> <counter> <log> <kind> <tasks>
    proof_async.py fork <lock> <counter> <log> <kind> <parent_tasks> <child_tasks>

hold: <tasks> asyncio tasks (every other one with its own AsyncFileLock /
AsyncSoftFileLock, the rest sharing one thread_local object) take the lock
once each while <threads> threads take it <per_thread> times
each with the blocking FileLock / SoftFileLock, all at the same time. Every
hold reads the counter (a fixed-width decimal, as tests/cross/worker.c),
logs "S <t0_ns> <value> <holder>", pauses (a task yields to the loop, so
the other tasks run and must wait), writes value+1 and logs "E <t1_ns>
<holder>". Each log line is one write(2) on an O_APPEND descriptor.

cancel: a task waits for the lock (held elsewhere), prints "waiting", and is
cancelled when the driver writes "cancel"; it prints "cancelled" and keeps
its loop running (a leaked wait would be dispatched and win) until stdin
closes. Then, in the same process, a holder object is released and a second
waiter cancelled in the same loop step (before any dispatch can complete
it): "race-cancelled". Exits 0 when every check held.

storm: <tasks> tasks arrive over 0.2 s, each waiting at most 0-50 ms
(asyncio.wait_for or asyncio.timeout) while other processes take the lock;
the winners hold it as in hold mode. Timed-out waits must hold nothing: the
process prints "done <holds>" with its loop still running and an idle hub,
then waits for stdin to close, so the driver checks from outside that the
lock is free while this process lives.

fork: <parent_tasks> tasks wait for the lock (held by the driver), then the
process forks. The child checks that its parent's hub refuses it (the fork
is named) and, in a new loop in a new thread, makes its own hub and has
<child_tasks> tasks wait there too. Both print "ready"; the driver then
releases; every hold is logged as in hold mode.
"""

import asyncio
import os
import random
import sys
import threading
import time

import filelock
from filelock import asyncio as fl_asyncio
from filelock import _filelock_core as core

WIDTH = 21
DEADLINE = 60.0  # every wait: a stuck one fails, never hangs



def has_inotify(fd: int) -> int:
    """1 if the hub's descriptor is an inotify instance or an epoll set
    holding one (Linux: /proc/self/fdinfo lists an epoll set's targets)."""
    if fd < 0:
        return 0
    def kind(n: int) -> str:
        try:
            return os.readlink("/proc/self/fd/%d" % n)
        except OSError:
            return ""
    if kind(fd) == "anon_inode:inotify":
        return 1
    with open("/proc/self/fdinfo/%d" % fd) as info:
        for line in info:
            if line.startswith("tfd:") and kind(int(line.split()[1])) == "anon_inode:inotify":
                return 1
    return 0

def say(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


class Holds:
    """The read-increment-write under the lock, logged."""

    def __init__(self, counter, log):
        self.counter = counter
        self.logfd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def enter(self, who):
        t0 = time.monotonic_ns()
        fd = os.open(self.counter, os.O_RDWR)
        value = int(os.pread(fd, WIDTH, 0))
        os.write(self.logfd, b"S %d %d %s\n" % (t0, value, who.encode()))
        return fd, value

    def leave(self, who, fd, value):
        os.pwrite(fd, b"%020d\n" % (value + 1), 0)
        os.close(fd)
        os.write(self.logfd, b"E %d %s\n" % (time.monotonic_ns(), who.encode()))


def classes(kind):
    if kind == "soft":
        return filelock.AsyncSoftFileLock, filelock.SoftFileLock
    return filelock.AsyncFileLock, filelock.FileLock


async def task_hold(holds, acls, lock, who, obj=None, stagger=0.0):
    # Staggered arrivals: some tasks come while a task holds a shared object.
    await asyncio.sleep(random.uniform(0, stagger))
    async with obj or acls(lock, timeout=DEADLINE):
        fd, value = holds.enter(who)
        # Other tasks run meanwhile and must find the lock taken.
        await asyncio.sleep(random.choice((0, 0, 0.0002)))
        holds.leave(who, fd, value)


def thread_holds(holds, scls, lock, who, n, errors):
    try:
        obj = scls(lock, timeout=DEADLINE)
        for _ in range(n):
            with obj:
                fd, value = holds.enter(who)
                time.sleep(random.uniform(0, 0.0003))
                holds.leave(who, fd, value)
            time.sleep(random.uniform(0, 0.001))
    except BaseException as e:  # reported by the main thread
        errors.append("%s: %r" % (who, e))


def hold(lock, counter, log, kind, tasks, threads, per_thread):
    acls, scls = classes(kind)
    holds = Holds(counter, log)
    errors = []
    ts = [threading.Thread(target=thread_holds,
                           args=(holds, scls, lock, "py-thread-%d" % i, per_thread, errors))
          for i in range(threads)]

    async def main():
        for t in ts:
            t.start()
        # Every other task shares one thread_local lock object: ownership
        # is per task, so sharing it must not let two tasks in.
        shared = acls(lock, timeout=DEADLINE, thread_local=True, run_in_executor=False)
        await asyncio.gather(*(task_hold(holds, acls, lock, "py-task-%d" % i,
                                         shared if i % 2 else None, 0.3)
                               for i in range(tasks)))
        hub = fl_asyncio._hubs.get(asyncio.get_running_loop())
        say("hub-fd %d inotify %d" % (hub.fd if hub else -2, has_inotify(hub.fd if hub else -1)))

    asyncio.run(main())
    for t in ts:
        t.join(DEADLINE)
        if t.is_alive():
            errors.append("%s still running" % t.name)
    if errors:
        sys.exit("proof_async.py hold: " + "; ".join(errors))


def cancel(lock, kind):
    acls, scls = classes(kind)

    async def main():
        loop = asyncio.get_running_loop()
        waiter = acls(lock)
        task = asyncio.create_task(waiter.acquire(timeout=DEADLINE))
        await asyncio.sleep(0.1)
        if task.done():
            raise SystemExit("the waiter did not wait: %r" % (task.exception() or "won"))
        say("waiting")
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if line.strip() != "cancel":
            raise SystemExit("expected 'cancel', got %r" % line)
        task.cancel()
        try:
            await task
            raise SystemExit("the cancelled acquire won")
        except asyncio.CancelledError:
            pass
        if waiter.is_locked:
            raise SystemExit("cancelled, yet is_locked")
        say("cancelled")
        # The loop keeps running: a wait left in the hub would win now.
        await loop.run_in_executor(None, sys.stdin.readline)  # "next"
        if waiter.is_locked:
            raise SystemExit("a cancelled wait won the lock later")
        # The race: a holder of this process lets go and the waiter is
        # cancelled in the same loop step, before any dispatch completes it.
        holder = scls(lock, thread_local=False, timeout=0)
        holder.acquire()
        second = acls(lock)
        task = asyncio.create_task(second.acquire(timeout=DEADLINE))
        await asyncio.sleep(0.05)
        holder.release()
        task.cancel()
        try:
            await task
            raise SystemExit("the cancelled acquire won")
        except asyncio.CancelledError:
            pass
        await asyncio.sleep(0.3)  # any late win would land here
        if second.is_locked:
            raise SystemExit("the racing cancel left the lock held")
        say("race-cancelled")
        await loop.run_in_executor(None, sys.stdin.readline)  # EOF: the driver is done

    asyncio.run(asyncio.wait_for(main(), DEADLINE))


def storm(lock, counter, log, kind, tasks):
    acls, _ = classes(kind)
    holds = Holds(counter, log)

    async def one(i):
        who = "py-storm-%d" % i
        obj = acls(lock)
        await asyncio.sleep(random.uniform(0, 0.2))
        limit = random.uniform(0, 0.05)
        try:
            # Half through wait_for (the acquire runs in its own task), half
            # through asyncio.timeout (cancelled in this task).
            if i % 2:
                await asyncio.wait_for(obj.acquire(timeout=DEADLINE), limit)
            else:
                async with asyncio.timeout(limit):
                    await obj.acquire(timeout=DEADLINE)
        except TimeoutError:
            if obj.is_locked:
                raise SystemExit("%s: timed out, yet holds the lock" % who)
            return 0
        try:
            fd, value = holds.enter(who)
            await asyncio.sleep(random.choice((0, 0.0005)))
            holds.leave(who, fd, value)
        finally:
            await obj.release()
        return 1

    async def main():
        loop = asyncio.get_running_loop()
        won = sum(await asyncio.gather(*(one(i) for i in range(tasks))))
        await asyncio.sleep(0.3)  # a win left behind would land here
        hub = fl_asyncio._hubs.get(loop)
        if hub is not None and core.flpy_hub_timeout(hub.hub) != -1:
            raise SystemExit("waits are left in the hub")
        say("done %d" % won)
        await loop.run_in_executor(None, sys.stdin.readline)  # EOF: the driver is done

    asyncio.run(asyncio.wait_for(main(), DEADLINE))


def fork(lock, counter, log, kind, parent_tasks, child_tasks):
    acls, _ = classes(kind)
    holds = Holds(counter, log)

    def child(parent_hub):
        # The parent's hub (its inotify instance and waiters) is not ours.
        try:
            core.flpy_hub_dispatch(parent_hub)
            raise SystemExit("child: the parent's hub dispatched")
        except RuntimeError as e:  # FL_ECANCELED
            if "fork" not in str(e):
                raise SystemExit("child: the refusal does not name the fork: %s" % e)
        result = []

        async def cmain():
            ts = [asyncio.create_task(task_hold(holds, acls, lock, "child-task-%d" % i))
                  for i in range(child_tasks)]
            await asyncio.sleep(0.2)
            mine = fl_asyncio._hubs.get(asyncio.get_running_loop())
            if mine is None or mine.hub is parent_hub:
                raise SystemExit("child: no hub of its own")
            say("child-ready")
            await asyncio.gather(*ts)
            result.append(True)

        def run():
            try:
                asyncio.run(asyncio.wait_for(cmain(), DEADLINE))
            except BaseException as e:
                result.append(e)

        t = threading.Thread(target=run)
        t.start()
        t.join(DEADLINE + 5)
        if result != [True]:
            sys.stderr.write("child failed: %r\n" % (result,))
            os._exit(1)
        os._exit(0)

    async def main():
        ts = [asyncio.create_task(task_hold(holds, acls, lock, "parent-task-%d" % i))
              for i in range(parent_tasks)]
        await asyncio.sleep(0.2)
        if any(t.done() for t in ts):
            raise SystemExit("a parent task did not wait")
        hub = fl_asyncio._hubs[asyncio.get_running_loop()]
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:
            try:
                child(hub.hub)
            finally:
                os._exit(3)
        say("parent-ready %d" % pid)
        await asyncio.gather(*ts)
        _, status = await asyncio.get_running_loop().run_in_executor(None, os.waitpid, pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit("the child failed: %d" % os.waitstatus_to_exitcode(status))

    asyncio.run(asyncio.wait_for(main(), DEADLINE))


def main(argv):
    mode = argv[0]
    if mode == "hold" and len(argv) == 8:
        hold(argv[1], argv[2], argv[3], argv[4], int(argv[5]), int(argv[6]), int(argv[7]))
    elif mode == "cancel" and len(argv) == 3:
        cancel(argv[1], argv[2])
    elif mode == "storm" and len(argv) == 6:
        storm(argv[1], argv[2], argv[3], argv[4], int(argv[5]))
    elif mode == "fork" and len(argv) == 7:
        fork(argv[1], argv[2], argv[3], argv[4], int(argv[5]), int(argv[6]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
