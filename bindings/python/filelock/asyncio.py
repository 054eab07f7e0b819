"""
Asynchronous locks for asyncio, woken by the kernel.

The same names and constructor as the pure-Python package's
``filelock.asyncio`` (``AsyncFileLock``, ``AsyncSoftFileLock``, ...), but a
wait neither polls nor occupies an executor thread: every wait of an event
loop goes to one wait hub of the C core (``fl_hub_*``), whose descriptor the
loop watches with ``loop.add_reader``. A release that closes the lock file
wakes the waiting task at once; a per-file re-check timer catches releases
that close nothing.

Ownership is per task: recursion (``thread_local=True``) and the
self-deadlock check know which task holds the lock, so another task on the
same loop waits instead of failing with a false deadlock.

.. code-block:: python

    from filelock import AsyncFileLock

    async def main():
        async with AsyncFileLock("data.txt.lock", timeout=10):
            ...
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import sys
import threading
import weakref
from concurrent import futures
from types import TracebackType
from typing import Any, AsyncIterator, Callable, Coroutine

from . import _api
from . import _filelock_core as _core
from ._api import (
    _UNSET_FILE_MODE,
    BaseFileLock,
    CloseErrorPolicy,
    ContextErrorPolicy,
    PathLike,
)
from ._error import Timeout
from . import _lease as _lease_mod
from ._lease import LeaseCompromise, SoftFileLease

# This process's id, kept current by a fork handler: os.getpid() is a system
# call, and a handoff between two tasks would otherwise make several.
_pid = os.getpid()


def _after_fork_in_child() -> None:
    global _pid
    _pid = os.getpid()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)

# ---- owner tokens ----------------------------------------------------------

# Each task gets a token of its own from a counter (never id(task), which a
# later task may reuse while the first one's hold is still recorded). Outside
# a task the owner is the calling thread (token 0). The map is keyed by
# id(task) and checked against a weak reference to the task: a
# WeakKeyDictionary lookup makes a weak reference per call, twice per
# handoff. Only the task's own thread assigns its token; the entry goes
# with the task (its weak reference's callback runs before the id can be
# reused).
_task_tokens: dict[int, tuple[weakref.ref[asyncio.Task[Any]], int]] = {}
_next_token = itertools.count(1)


def _forget_task(key: int, ref: weakref.ref[Any]) -> None:
    entry = _task_tokens.get(key)
    if entry is not None and entry[0] is ref:
        del _task_tokens[key]


def _token_of(task: asyncio.Task[Any]) -> int:
    """The owner token of *task*."""
    key = id(task)
    entry = _task_tokens.get(key)
    if entry is not None and entry[0]() is task:
        return entry[1]
    token = next(_next_token)
    _task_tokens[key] = (weakref.ref(task, lambda ref, key=key: _forget_task(key, ref)), token)
    return token


def _current(loop: asyncio.AbstractEventLoop | None = None) -> asyncio.Task[Any] | None:
    try:
        # With the loop given, no get_running_loop() (and its getpid()).
        return asyncio.current_task(loop)
    except RuntimeError:  # no running loop
        return None


def _owner(loop: asyncio.AbstractEventLoop | None = None) -> int:
    task = _current(loop)
    return 0 if task is None else _token_of(task)


# Whose hold an acquire makes: the task that *called* acquire(), not the
# task that runs its coroutine. Python 3.11's asyncio.wait_for() runs
# `lock.acquire()` in an inner task that is done once the lock is won, and
# so do `await create_task(lock.acquire())`, ensure_future and gather; the
# caller is the one in the critical section and the one that releases. So
# acquire() and release() are plain functions that note the calling task
# and return the coroutine, which acts for it wherever it runs on that loop.
def _caller() -> asyncio.Task[Any] | None:
    return _current()


def _for(
    caller: asyncio.Task[Any] | None,
    loop: asyncio.AbstractEventLoop | None,
    holders: dict | None,
) -> asyncio.Task[Any] | None:
    """The task an operation acts for: for a thread-local lock (*holders*
    not None; also AsyncReadWriteLock's) its caller when that is a task of the running loop, else the
    task running it (None outside a task). A lock that is not thread-local
    is held by every task alike; its owner token only names the task for
    the self-deadlock check, which is the running task's (as in the pure
    package, where `create_task(lock.acquire())` makes a contender)."""
    if (
        holders is not None
        and caller is not None
        and loop is not None
        and caller.get_loop() is loop
        and not caller.done()  # an ended caller holds nothing: the runner does
    ):
        return caller
    return _current(loop)


def _coroutine_function(f: Callable[..., Any]) -> Callable[..., Any]:
    # acquire()/release() return a coroutine: say so to the introspection
    # that asks (inspect from 3.12, asyncio's own check before).
    mark = getattr(__import__("inspect"), "markcoroutinefunction", None)
    if mark is not None:
        return mark(f)  # type: ignore[no-any-return]
    f._is_coroutine = asyncio.coroutines._is_coroutine  # type: ignore[attr-defined]
    return f


# A thread-local lock's holds are per task, and a task may end while holding
# one that another task is meant to release (a task whose body acquires and
# returns). Nobody could release such a hold; the pure package's
# thread_local context is per thread, so any code of that thread does. So
# each thread-local lock object records which task of which thread holds it
# under which token, and a task of the same thread that holds nothing of it
# itself takes over the hold of a task that has ended: it acts under that
# token from then on (a task pending on a closed loop has ended too: it can
# never run again). A hold of a task still running is never taken over
# (the task-scoped deadlock check and exclusion between tasks stay), nor one
# made on another thread (threads exclude each other, as in the pure
# package).
def _acting_owner(
    h: Any,
    holders: dict | None,
    loop: asyncio.AbstractEventLoop | None = None,
    task: asyncio.Task[Any] | None = None,
    claim: bool = True,
) -> int:
    """The owner token *task* (default: the current task) acts under for the
    lock handle *h*: its own, or the token of an ended task's hold that it
    takes over (with *claim*; without, as for is_locked, it only says which
    hold it would act under: looking must not make a task the holder)."""
    if task is None:
        task = _current(loop)
        if task is None:
            return 0
    token = _token_of(task)
    if not holders or token in holders:
        return token
    me = threading.get_ident()
    for held, (ref, ident) in list(holders.items()):
        other = ref()
        if other is task:
            return held
        if ident != me:
            continue  # another thread's hold: never ours
        # Ended: done, collected, or pending on a closed loop (which never
        # runs again: a closed loop cannot be restarted).
        if other is None or other.done() or other.get_loop().is_closed():
            if _core.flpy_lock_counter_as(h, held) > 0:
                if _core.flpy_lock_counter_as(h, token) > 0:
                    return token  # this task holds it itself: its own hold first
                if claim:
                    holders[held] = (weakref.ref(task), me)
                return held
            del holders[held]  # released meanwhile (force, close)
    return token


def _note_holder(
    h: Any,
    holders: dict | None,
    owner: int,
    loop: asyncio.AbstractEventLoop | None = None,
    task: asyncio.Task[Any] | None = None,
) -> None:
    """Records (or forgets, once released) *task*'s hold under *owner*."""
    if holders is None or owner == 0:
        return
    if _core.flpy_lock_counter_as(h, owner) > 0:
        if owner not in holders:
            if task is None:
                task = _current(loop)
            if task is not None:
                holders[owner] = (weakref.ref(task), threading.get_ident())
    else:
        holders.pop(owner, None)


# ---- one hub per event loop ------------------------------------------------



def _check_executor(thread_local: bool, run_in_executor: bool) -> None:
    """The pure package's rule (3.15+): a thread-local lock cannot hand its
    waits to an executor thread. Raises ValueError with its words."""
    if thread_local and run_in_executor:
        msg = "run_in_executor is not supported when thread_local is True"
        raise ValueError(msg)

class _LoopHub:
    """The core's wait hub of one event loop: its descriptor is watched with
    ``add_reader`` and its next re-check is a ``call_at`` timer, both
    re-armed after every call into the hub."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        # Weak: _hubs maps the loop to this object, and a strong reference
        # back would keep both (and the hub's inotify instance, of which a
        # user has 128) alive after the loop is gone.
        self._loop = weakref.ref(loop)
        self.hub = _core.flpy_hub_new()
        self.pid = _pid
        self.timer: asyncio.TimerHandle | None = None
        self.timer_at = -1.0
        self.retired = False
        fd = _core.flpy_hub_fd(self.hub)
        self.fd = fd
        if fd >= 0:
            loop.add_reader(fd, self.dispatch)

    def dispatch(self) -> None:
        try:
            # One call into the core per wake-up: the dispatch, then the
            # next re-check. Raises what a completion callback raised
            # (KeyboardInterrupt from a signal handler): the win it reported
            # went back.
            t = _core.flpy_hub_run(self.hub)
        except BaseException:
            self.rearm()
            raise
        self._arm(t)

    def _on_timer(self) -> None:
        self.timer = None
        self.dispatch()

    def rearm(self, retire_if_idle: bool = False) -> None:
        """Arms the timer for the hub's next re-check or deadline. Retires
        the hub when its loop is closed (its waits can never be collected),
        and when idle if asked: not after every wait, because closing an
        inotify instance waits for the kernel's SRCU grace period
        (milliseconds, measured: wake-up median 0.4 ms -> 6.7 ms)."""
        self._arm(_core.flpy_hub_timeout(self.hub), retire_if_idle)

    def _arm(self, t: float, retire_if_idle: bool = False) -> None:
        # rearm() for the hub's next re-check *t* seconds from now (-1: none).
        loop = self._loop()
        closed = loop is None or loop.is_closed()
        if t < 0 or closed:
            if self.timer is not None:
                self.timer.cancel()
                self.timer = None
            if closed or retire_if_idle:
                self._retire(loop)
            return
        when = loop.time() + t
        if self.timer is not None:
            if abs(self.timer_at - when) < 0.001:
                return
            self.timer.cancel()
        self.timer_at = when
        self.timer = loop.call_at(when, self._on_timer)

    def _retire(self, loop: asyncio.AbstractEventLoop | None) -> None:
        # Let the loop forget the hub so that its inotify instance (128 per
        # user) goes now, not with the loop object, which a program may keep
        # long after closing it. The next wait makes a new hub; a finished
        # wait still referring to this one finds no waiter in it.
        if self.retired:
            return
        self.retired = True
        if loop is not None:
            if self.fd >= 0 and not loop.is_closed():
                loop.remove_reader(self.fd)
            if _hubs.get(loop) is self:
                del _hubs[loop]


_hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopHub] = weakref.WeakKeyDictionary()
# The hub looked up last, weakly (it must go with its loop): a loop's waits
# and releases come in runs, and each WeakKeyDictionary lookup makes a weak
# reference to the loop.
_last_hub: weakref.ref[_LoopHub] | None = None


def _loop_hub(loop: asyncio.AbstractEventLoop) -> _LoopHub | None:
    """The loop's usable hub, or None (none yet, retired, or the parent's
    after a fork)."""
    global _last_hub
    hub = _last_hub() if _last_hub is not None else None
    if hub is not None and hub._loop() is loop and not hub.retired and hub.pid == _pid:
        return hub
    hub = _hubs.get(loop)
    if hub is None or hub.pid != _pid or hub.retired:
        return None
    _last_hub = weakref.ref(hub)
    return hub


def _hub_for(loop: asyncio.AbstractEventLoop) -> _LoopHub:
    hub = _loop_hub(loop)
    if hub is None:
        # The hubs of loops closed since (their timers never run again, and
        # a closed loop object may be kept for long) go before a new one is
        # made: at most one closed loop's hub lingers.
        for other, old in list(_hubs.items()):
            if other is not loop and other.is_closed():
                old.rearm()
        # A forked child cannot use its parent's hub: it makes its own.
        hub = _LoopHub(loop)
        _hubs[loop] = hub
    return hub


# ---- waiting ---------------------------------------------------------------


def _the_loop(bound: asyncio.AbstractEventLoop | None) -> asyncio.AbstractEventLoop:
    running = asyncio.get_running_loop()
    if bound is not None and bound is not running:
        msg = "the lock is bound to another event loop than the running one"
        raise RuntimeError(msg)
    return running


async def _wait(
    h: Any,
    lock_file: str,
    bound: asyncio.AbstractEventLoop | None,
    shared: int,
    timeout: float | None,
    blocking: bool | None,
    poll_interval: float | None,
    cancel_check: Callable[[], bool] | None,
    default_poll: float,
    holders: dict | None = None,
    caller: asyncio.Task[Any] | None = None,
) -> None:
    """Acquires the core handle *h* for *caller* (see _for) through the loop's
    hub: at once when free, else parked on a future that the hub's dispatch
    resolves. Nothing is left held or queued when this raises."""
    if _api._is_debug(_api._DEBUG) is not _api._log_on:
        _api._sync_logging()
    loop = _the_loop(bound)
    task = _for(caller, loop, holders)
    owner = _acting_owner(h, holders, loop, task) if task is not None else 0
    hub = _loop_hub(loop)
    fresh = hub is None
    # A win at once runs the on_acquired hook inside the call below, in this
    # task: a hook that cancels it gets the win given back (the task would
    # end cancelled with the hold, which nobody would release).
    running = asyncio.current_task(loop)
    asked = _cancel_requests(running)
    if fresh:
        # No wait of this loop can be queued: try before making its hub
        # (an uncontended lock never needs one).
        if blocking is False or timeout is not None and float(timeout) == 0:
            pass  # the hub's one attempt raises Timeout with the message
        elif _core.flpy_try_acquire_as(h, owner, shared):
            _won_at_once(h, None, owner, running, asked)
            _note_holder(h, holders, owner, loop, task)
            return
        hub = _hub_for(loop)
    fut: asyncio.Future[None] = loop.create_future()
    # The hub holds the callback strongly, from a capsule the collector
    # cannot see into: a strong reference to the future (and through it the
    # task, whose frame holds the capsule) would make a cycle nothing
    # collects, keeping an abandoned waiting task, its hub and descriptors
    # forever.
    fut_ref = weakref.ref(fut)

    def done(exc: BaseException | None) -> None:
        # Called from the hub's dispatch on the loop thread.
        fut = fut_ref()
        if fut is None or fut.done():
            # Cancelled meanwhile: a win nobody will collect is passed on.
            if exc is None:
                _core.flpy_hub_release(hub.hub, h, owner, False)
            return
        try:
            if exc is None:
                fut.set_result(None)
            else:
                fut.set_exception(exc)
        except RuntimeError:  # the loop is closed: nobody will collect it
            if exc is None:
                _core.flpy_hub_release(hub.hub, h, owner, False)

    try:
        # A win sets the future's result from C (no Python call on the
        # wake-up path); *done* gets the failures and a win the future
        # cannot take.
        wait = _core.flpy_hub_acquire_fut(
            hub.hub,
            h,
            owner,
            shared,
            None if timeout is None else float(timeout),
            None if blocking is None else bool(blocking),
            None if poll_interval is None else float(poll_interval),
            done,
            fut,
        )
    except BaseException:
        # Failed at once (Timeout of a single try, deadlock): a hub made for
        # this call has nothing to wait for.
        hub.rearm(retire_if_idle=fresh)
        raise
    if wait is None:
        hub.rearm(retire_if_idle=fresh)  # won at once
        _won_at_once(h, hub, owner, running, asked)
        _note_holder(h, holders, owner, loop, task)
        return
    hub.rearm()
    try:
        if cancel_check is None:
            await fut
        else:
            step = default_poll if poll_interval is None else float(poll_interval)
            step = max(step, 0.001)
            while True:
                finished, _ = await asyncio.wait({fut}, timeout=step)
                if finished:
                    fut.result()
                    break
                if cancel_check():
                    raise Timeout(lock_file)
    except BaseException:
        # Cancelled, timed out by cancel_check, or the wait failed: leave
        # nothing behind. Still pending: withdraw it. Won but not
        # collected: release it, which passes it on.
        if not _core.flpy_hub_cancel(wait):
            if fut.done() and not fut.cancelled() and fut.exception() is None:
                _core.flpy_hub_release(hub.hub, h, owner, False)
        hub.rearm()
        if not fut.done():
            # A coroutine closed by the collector after its loop was closed
            # lands here too: no callback can be scheduled then.
            with contextlib.suppress(RuntimeError):
                fut.cancel()
        raise
    _note_holder(h, holders, owner, loop, task)


def _cancel_requests(task: asyncio.Task[Any] | None) -> int:
    """How many cancellations of *task* are pending (0 for no task)."""
    if task is None:
        return 0
    cancelling = getattr(task, "cancelling", None)  # Python 3.11+
    if cancelling is not None:
        return int(cancelling())
    return int(bool(getattr(task, "_must_cancel", False)))


def _won_at_once(h: Any, hub: _LoopHub | None, owner: int, running: asyncio.Task[Any] | None, asked: int) -> None:
    """After a win at once: when the acquire's own on_acquired hook
    cancelled the running task, the win goes back and CancelledError is
    raised, as for a hook that cancels the task while it waits."""
    if running is None or _cancel_requests(running) <= asked:
        return
    _core.flpy_hub_release(None if hub is None else hub.hub, h, owner, False)
    if hub is not None:
        hub.dispatch()
    raise asyncio.CancelledError


def _release_now(
    h: Any,
    force: bool,
    holders: dict | None = None,
    lease: bool = False,
    caller: asyncio.Task[Any] | None = None,
) -> str | None:
    """Releases *caller*'s hold of *h* (see _for) and hands the lock to the
    loop's next waiter at once (its future is resolved; the task runs at
    the loop's next turn) instead of after a timer or the file system's
    event. Awaits nothing, so it completes under cancellation too. For a
    *lease*, returns the core's message when the claim had been lost (the
    hold is released all the same), else None."""
    try:
        loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    hub = _loop_hub(loop) if loop is not None else None
    task = _for(caller, loop, holders) if loop is not None else None
    owner = _acting_owner(h, holders, loop, task) if task is not None else 0
    lost = None
    if lease:
        lost = _core.flpy_hub_release_lease(None if hub is None else hub.hub, h, owner, bool(force))
    else:
        _core.flpy_hub_release(None if hub is None else hub.hub, h, owner, bool(force))
    if holders:
        _note_holder(h, holders, owner, loop, task)
    if hub is not None:
        hub.dispatch()
    return lost


# ---- the lock classes --------------------------------------------------------


class AsyncAcquireReturnProxy:
    """The context manager :meth:`BaseAsyncFileLock.acquire` returns:
    ``async with await lock.acquire():`` releases the level acquired."""

    def __init__(self, lock: BaseAsyncFileLock) -> None:
        self.lock = lock

    async def __aenter__(self) -> BaseAsyncFileLock:
        return self.lock

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.lock.release()


_SYNC_MSG = "Use `async with`: acquire/release are coroutines and cannot be awaited in a sync context manager."


class BaseAsyncFileLock(BaseFileLock):
    """Base class of the asynchronous locks: ``await acquire()``,
    ``await release()`` and ``async with``; waits run on the event loop
    without a thread."""

    _loop: asyncio.AbstractEventLoop | None
    _run_in_executor: bool
    _executor: futures.Executor | None

    # The sync classes' constructor path: BaseFileLock.__init__ asks the core
    # for the handle (_new_handle) and _SingletonMeta keeps one object per
    # class and lock file (a second call's spare object is dropped).
    def __init__(
        self,
        lock_file: PathLike,
        timeout: float = -1,
        mode: int = _UNSET_FILE_MODE,
        thread_local: bool = False,
        *,
        blocking: bool = True,
        is_singleton: bool = False,
        poll_interval: float = 0.05,
        context_error_policy: ContextErrorPolicy = "chain",
        close_error_policy: CloseErrorPolicy = "default",
        fallback_to_soft: bool = True,
        preserve_lock_file: bool = False,
        on_acquired: Callable[[int], None] | None = None,
        lifetime: float | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
        run_in_executor: bool = True,
        executor: futures.Executor | None = None,
    ) -> None:
        """
        Create an asynchronous lock; nothing is opened until the first acquire.

        :param lock_file: path of the lock file
        :param timeout: default timeout in seconds; negative waits forever, 0 tries once
        :param mode: permission bits for a new lock file (default: umask and ACLs decide)
        :param thread_local: False (default): one lock state for every task (a
            second task acquiring through the same object re-enters it, as with
            threads); True: each task holds it on its own, and a task that
            ended holding it (the inner task of Python 3.11's
            ``asyncio.wait_for(lock.acquire())``) leaves its hold to the next
            task that uses the object, which can then release it. Not with
            *run_in_executor* (ValueError, as in the pure-Python package)
        :param blocking: default for :meth:`acquire`; False tries once
        :param is_singleton: one object per lock file path
        :param poll_interval: the shortest re-check interval for releases that
            raise no file-system event (at least 0.1 s while watched)
        :param context_error_policy: as for the sync locks (:class:`~filelock.BaseFileLock`)
        :param close_error_policy: as for the sync locks
        :param fallback_to_soft: as for the sync locks
        :param preserve_lock_file: as for the sync locks
        :param on_acquired: as for the sync locks; for the kernel lock it runs on the
            event loop's thread when a wait on the loop wins
        :param lifetime: as for the sync locks (soft locks only)
        :param loop: the event loop to use; None: the running loop
        :param run_in_executor: accepted for compatibility; waits never use an
            executor (they run on the loop, woken by the kernel)
        :param executor: accepted for compatibility (see *run_in_executor*)
        """
        _check_executor(thread_local, run_in_executor)
        super().__init__(
            lock_file,
            timeout,
            mode,
            thread_local,
            blocking=blocking,
            is_singleton=is_singleton,
            poll_interval=poll_interval,
            context_error_policy=context_error_policy,
            close_error_policy=close_error_policy,
            fallback_to_soft=fallback_to_soft,
            preserve_lock_file=preserve_lock_file,
            on_acquired=on_acquired,
            lifetime=lifetime,
        )
        self._loop = loop
        self._run_in_executor = bool(run_in_executor)
        self._executor = executor
        self._creator_pid = _pid
        # thread_local: which task holds it under which owner token (see
        # _acting_owner); None when the hold is shared by every task.
        self._holders: dict[int, weakref.ref[asyncio.Task[Any]]] | None = {} if thread_local else None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # BaseFileLock swaps __enter__/__exit__ for subclasses overriding
        # acquire/release; here plain `with` must raise instead.
        super().__init_subclass__(**kwargs)
        cls.__enter__ = BaseAsyncFileLock.__enter__  # type: ignore[method-assign]
        cls.__exit__ = BaseAsyncFileLock.__exit__  # type: ignore[method-assign]
        # release() returns a coroutine (a plain function since it notes its
        # caller): a finalizer could not await it, so __del__ never calls it.
        cls._fl_release_hook = False

    # -- properties ------------------------------------------------------------

    @property
    def run_in_executor(self) -> bool:
        """Whether the lock was asked to run in an executor (it never needs to)."""
        return self._run_in_executor

    @property
    def executor(self) -> futures.Executor | None:
        """The executor given (unused: waits run on the loop)."""
        return self._executor

    @executor.setter
    def executor(self, value: futures.Executor | None) -> None:
        self._executor = value

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The event loop given to the constructor, or None (the running loop)."""
        return self._loop

    @property
    def is_locked(self) -> bool:
        """Whether the current task holds the lock (any task when not thread-local)."""
        return _core.flpy_lock_counter_as(self._h, _acting_owner(self._h, self._holders, claim=False)) > 0

    @property
    def lock_counter(self) -> int:
        """How many times the current task holds the lock (recursion)."""
        return _core.flpy_lock_counter_as(self._h, _acting_owner(self._h, self._holders, claim=False))

    # -- acquire and release ---------------------------------------------------

    def _check_platform(self) -> None:
        """Hook for AsyncWindowsFileLock."""

    @_coroutine_function
    def acquire(  # type: ignore[override]
        self,
        timeout: float | None = None,
        poll_interval: float | None = None,
        *,
        blocking: bool | None = None,
        cancel_check: Callable[[], bool] | None = None,
    ) -> Coroutine[Any, Any, AsyncAcquireReturnProxy]:
        """
        Acquire the lock without blocking the event loop; a coroutine.

        :param timeout: seconds to wait; None: the default :attr:`timeout`; negative: forever;
            0: one attempt
        :param poll_interval: shortest re-check interval for releases no event reports;
            None: the default
        :param blocking: False: one attempt; None: the default :attr:`blocking`
        :param cancel_check: called at least every *poll_interval* while waiting; True
            ends the wait with :class:`Timeout`
        :raises Timeout: not won in time (or *cancel_check* said so)
        :raises RuntimeError: waiting forever for a lock file this task holds
            through another object (a deadlock)
        :return: a proxy for ``async with``

        Cancelling the task (also through ``asyncio.timeout()``) never leaves
        the lock held: a win that lands after the cancellation is released
        and passed on to the next waiter.

        The hold is the calling task's even when another task runs the
        coroutine (``asyncio.wait_for(lock.acquire())`` on Python 3.11,
        ``create_task(lock.acquire())``): the caller releases it.
        """
        return self._acquire_for(_caller(), timeout, poll_interval, blocking, cancel_check)

    async def _acquire_for(
        self,
        caller: asyncio.Task[Any] | None,
        timeout: float | None,
        poll_interval: float | None,
        blocking: bool | None,
        cancel_check: Callable[[], bool] | None,
    ) -> AsyncAcquireReturnProxy:
        self._check_platform()
        await _wait(
            self._h, self.lock_file, self._loop, 0, timeout, blocking, poll_interval, cancel_check,
            self.poll_interval, self._holders, caller,
        )
        return AsyncAcquireReturnProxy(lock=self)

    def _counter_for(self, caller: asyncio.Task[Any] | None) -> int:
        # lock_counter for the task *caller* acts for (see _for).
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        task = _for(caller, loop, self._holders) if loop is not None else None
        owner = _acting_owner(self._h, self._holders, loop, task, claim=False) if task else 0
        return _core.flpy_lock_counter_as(self._h, owner)

    @_coroutine_function
    def release(self, force: bool = False) -> Coroutine[Any, Any, None]:  # type: ignore[override]
        """
        Release one level of the calling task's hold (all with *force*); the
        lock file is unlocked when the counter reaches zero, and the next
        waiter of this loop is tried at once. Does nothing when not held.
        Completes even when the task is being cancelled (nothing is awaited).
        A coroutine, acting for the task that called it.
        """
        return self._release_for(_caller(), force)

    async def _release_for(self, caller: asyncio.Task[Any] | None, force: bool) -> None:
        if self._creator_pid != _pid:
            return
        _release_now(self._h, force, self._holders, caller=caller)

    def __enter__(self) -> BaseFileLock:
        """Plain ``with`` is not supported: use ``async with``."""
        raise NotImplementedError(_SYNC_MSG)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Plain ``with`` is not supported: use ``async with``."""
        raise NotImplementedError(_SYNC_MSG)

    async def __aenter__(self) -> BaseAsyncFileLock:
        await self.acquire()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.release()

    # __del__ is BaseFileLock's: it needs no loop (the core releases every
    # hold of the handle when the last reference goes).


class AsyncUnixFileLock(BaseAsyncFileLock):
    """The operating system's lock (flock), acquired without blocking the loop."""

    _fl_kind = _api._KERNEL


class AsyncSoftFileLock(BaseAsyncFileLock):
    """The soft lock (an exclusively created marker file), acquired without
    blocking the loop; its deletion wakes the waiters."""

    _fl_kind = _api._SOFT


class _AsyncLeaseBase(BaseAsyncFileLock):
    """Takes the constructor call SoftFileLease.__init__ passes on (the sync
    lock's arguments) and adds the asynchronous options the outer
    constructor kept aside, so AsyncSoftFileLease reuses SoftFileLease's
    constructor as it is."""

    _fl_async_kwargs: dict[str, Any]

    def __init__(self, lock_file: PathLike, timeout: float, mode: int, thread_local: bool, **kwargs: Any) -> None:
        kwargs.update(self.__dict__.pop("_fl_async_kwargs", {}))
        BaseAsyncFileLock.__init__(self, lock_file, timeout, mode, thread_local, **kwargs)


class AsyncSoftFileLease(SoftFileLease, _AsyncLeaseBase):
    """
    :class:`~filelock.SoftFileLease` for asyncio: a soft lock whose claim
    expires (refreshed by a thread of the library while held, taken over by
    any contender once ``lease_duration`` seconds old), acquired without
    blocking the loop -- the marker's deletion wakes the waiters through the
    loop's wait hub. ``await acquire()``, ``await release()``, ``async
    with``; :attr:`token`, :attr:`compromise` and ``on_compromise`` (called
    on a library thread, as for the sync lease) as for SoftFileLease. A
    release of a lost claim records it in :attr:`compromise` and does not
    raise. The pure package's constructor: the async locks' options plus
    ``lease_duration``, ``heartbeat_interval`` and ``on_compromise``.
    """

    def __init__(
        self,
        lock_file: PathLike,
        timeout: float = -1,
        mode: int = _UNSET_FILE_MODE,
        thread_local: bool = False,
        *,
        blocking: bool = True,
        is_singleton: bool = False,
        poll_interval: float = 0.05,
        lifetime: float | None = None,
        context_error_policy: ContextErrorPolicy = "chain",
        close_error_policy: CloseErrorPolicy = "default",
        fallback_to_soft: bool = True,
        preserve_lock_file: bool = False,
        on_acquired: Callable[[int], None] | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
        run_in_executor: bool = True,
        executor: futures.Executor | None = None,
        lease_duration: float = _core.FL_LEASE_DEFAULT_DURATION,
        heartbeat_interval: float | None = None,
        on_compromise: Callable[[LeaseCompromise], None] | None = None,
    ) -> None:
        """
        Create an asynchronous lease; nothing is opened until the first acquire.

        :param lease_duration: seconds of marker staleness after which a contender may take the
            claim; every contender for the path must pass the same value
        :param heartbeat_interval: seconds between refreshes; default a third of
            ``lease_duration``; must be below it
        :param on_compromise: called from a library thread with a
            :class:`~filelock.LeaseCompromise` when the claim is lost

        The other parameters are :class:`BaseAsyncFileLock`'s (``lifetime`` is
        ignored with a warning: ``lease_duration`` sets the expiry).
        """
        _check_executor(thread_local, run_in_executor)
        self._fl_async_kwargs = {
            "context_error_policy": context_error_policy,
            "close_error_policy": close_error_policy,
            "fallback_to_soft": fallback_to_soft,
            "preserve_lock_file": preserve_lock_file,
            "on_acquired": on_acquired,
            "loop": loop,
            "run_in_executor": run_in_executor,
            "executor": executor,
        }
        SoftFileLease.__init__(
            self,
            lock_file,
            timeout,
            mode,
            thread_local,
            blocking=blocking,
            is_singleton=is_singleton,
            poll_interval=poll_interval,
            lifetime=lifetime,
            lease_duration=lease_duration,
            heartbeat_interval=heartbeat_interval,
            on_compromise=on_compromise,
        )

    @_coroutine_function
    def acquire(  # type: ignore[override]
        self,
        timeout: float | None = None,
        poll_interval: float | None = None,
        *,
        blocking: bool | None = None,
        cancel_check: Callable[[], bool] | None = None,
    ) -> Coroutine[Any, Any, AsyncAcquireReturnProxy]:
        """As :meth:`BaseAsyncFileLock.acquire`; a first hold starts a new
        claim (:attr:`token`; :attr:`compromise` reset)."""
        return self._acquire_for(_caller(), timeout, poll_interval, blocking, cancel_check)

    async def _acquire_for(
        self,
        caller: asyncio.Task[Any] | None,
        timeout: float | None,
        poll_interval: float | None,
        blocking: bool | None,
        cancel_check: Callable[[], bool] | None,
    ) -> AsyncAcquireReturnProxy:
        if not self._watching:
            _lease_mod._watchers.setdefault(_core.fl_lock_id(self._h), weakref.WeakSet()).add(self)
            _core.flpy_set_compromise(self._h)
            self._watching = True
        first = self._counter_for(caller) == 0
        if first:
            # Before winning: a loss the heartbeat reports before this
            # returns is kept (as SoftFileLease.acquire does).
            self._compromise = None
            self._token = None
        proxy = await BaseAsyncFileLock._acquire_for(self, caller, timeout, poll_interval, blocking, cancel_check)
        if first:
            self._token = self._read_token()
        return proxy

    @_coroutine_function
    def release(self, force: bool = False) -> Coroutine[Any, Any, None]:  # type: ignore[override]
        """Release one level (all with *force*); a claim lost meanwhile is
        recorded in :attr:`compromise`, never raised. Completes under
        cancellation (nothing is awaited)."""
        return self._release_for(_caller(), force)

    async def _release_for(self, caller: asyncio.Task[Any] | None, force: bool) -> None:
        if self._creator_pid != _pid:
            return
        lost = _release_now(self._h, force, self._holders, lease=True, caller=caller)
        if lost is not None:
            reason = next(
                (r for r in ("marker-missing", "owner-changed", "refresh-failed") if f"({r}" in lost),
                "owner-changed",
            )
            self._record(reason, None)
        if self._counter_for(caller) == 0:
            self._token = None


class AsyncWindowsFileLock(BaseAsyncFileLock):
    """The Windows lock; elsewhere acquiring raises NotImplementedError, as
    :class:`~filelock.WindowsFileLock` does."""

    _fl_kind = _api._KERNEL

    def _check_platform(self) -> None:
        if sys.platform != "win32":
            raise NotImplementedError("AsyncWindowsFileLock is only available on Windows")


class AsyncAcquireReadWriteReturnProxy:
    """What :meth:`AsyncReadWriteLock.acquire_read` / ``acquire_write``
    return: ``async with`` releases the level acquired."""

    def __init__(self, lock: AsyncReadWriteLock) -> None:
        self.lock = lock

    async def __aenter__(self) -> AsyncReadWriteLock:
        return self.lock

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.lock.release()


class AsyncReadWriteLock:
    """
    Many readers or one writer, for asyncio: :class:`~filelock.ReadWriteLock`
    (the kernel lock plus the writers' gate ``<lock_file>.gate``, so it
    excludes the synchronous lock and other processes) acquired without
    blocking the loop. A waiting writer holds new readers back while it
    waits, as the synchronous lock does. Holds are per task.

    :param lock_file: path of the lock file
    :param timeout: default timeout in seconds; -1 waits forever, 0 tries once
    :param blocking: default blocking flag; False tries once
    :param is_singleton: share the core handle of other read/write locks on this path
    :param loop: the event loop to use; None: the running loop
    :param executor: accepted for compatibility; waits never use an executor
    """

    def __init__(
        self,
        lock_file: PathLike,
        timeout: float = -1,
        *,
        blocking: bool = True,
        is_singleton: bool = True,
        loop: asyncio.AbstractEventLoop | None = None,
        executor: futures.Executor | None = None,
    ) -> None:
        from ._read_write import ReadWriteLock

        self._lock = ReadWriteLock(lock_file, timeout, blocking=blocking, is_singleton=is_singleton)
        # Which task of which thread holds it, as for a thread-local
        # BaseAsyncFileLock (_acting_owner): holds are per task, and an ended
        # task's (`asyncio.run(rw.acquire_write())`) goes to the next task of
        # that thread using the object.
        self._holders: dict[int, Any] = {}
        self._loop = loop
        self._executor = executor
        self._creator_pid = _pid

    @property
    def lock_file(self) -> str:
        """The path of the lock file."""
        return self._lock.lock_file

    @property
    def timeout(self) -> float:
        """The default timeout."""
        return self._lock.timeout

    @property
    def blocking(self) -> bool:
        """The default blocking flag."""
        return self._lock.blocking

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The event loop given, or None (the running loop)."""
        return self._loop

    @property
    def executor(self) -> futures.Executor | None:
        """The executor given (unused)."""
        return self._executor

    def _handle(self) -> Any:
        h = self._lock._h
        if h is None:
            msg = f"AsyncReadWriteLock({self.lock_file!r}) is closed"
            raise RuntimeError(msg)
        return h

    # Holds are the calling task's, as for a thread-local BaseAsyncFileLock:
    # the inner task of 3.11's asyncio.wait_for(rw.acquire_write()) wins for
    # its caller, which releases it (else the hold stayed with the ended
    # inner task: nobody could release it, and this task's next acquire
    # waited for it forever); an ended task's hold is taken over.
    async def _acquire(
        self, shared: int, timeout: float | None, blocking: bool | None, caller: asyncio.Task[Any] | None = None
    ) -> AsyncAcquireReadWriteReturnProxy:
        await _wait(
            self._handle(), self.lock_file, self._loop, shared, timeout, blocking, None, None, 0.05, self._holders,
            caller,
        )
        return AsyncAcquireReadWriteReturnProxy(self)

    @_coroutine_function
    def acquire_read(
        self, timeout: float | None = -1, *, blocking: bool | None = True
    ) -> Coroutine[Any, Any, AsyncAcquireReadWriteReturnProxy]:
        """Acquire as a reader (recursively per task: the calling task's
        hold, whichever task runs the coroutine). Raises Timeout, or
        RuntimeError when this task holds it as the writer (no downgrade)."""
        return self._acquire(1, timeout, blocking, _caller())

    @_coroutine_function
    def acquire_write(
        self, timeout: float | None = -1, *, blocking: bool | None = True
    ) -> Coroutine[Any, Any, AsyncAcquireReadWriteReturnProxy]:
        """Acquire as the writer (recursively per task: the calling task's
        hold); new readers wait while it waits. Raises Timeout, or
        RuntimeError when this task holds it as a reader (no upgrade)."""
        return self._acquire(0, timeout, blocking, _caller())

    @contextlib.asynccontextmanager
    async def read_lock(
        self, timeout: float | None = None, *, blocking: bool | None = None
    ) -> AsyncIterator[None]:
        """Hold the lock as a reader for an ``async with`` block."""
        await self._acquire(1, timeout, blocking)
        try:
            yield
        finally:
            await self.release()

    @contextlib.asynccontextmanager
    async def write_lock(
        self, timeout: float | None = None, *, blocking: bool | None = None
    ) -> AsyncIterator[None]:
        """Hold the lock as the writer for an ``async with`` block."""
        await self._acquire(0, timeout, blocking)
        try:
            yield
        finally:
            await self.release()

    @_coroutine_function
    def release(self, *, force: bool = False) -> Coroutine[Any, Any, None]:
        """Release one level of the calling task's hold (all with *force*)."""
        return self._release(force, _caller())

    async def _release(self, force: bool, caller: asyncio.Task[Any] | None) -> None:
        h = self._lock._h
        if h is not None and self._creator_pid == _pid:
            _release_now(h, force, self._holders, caller=caller)

    async def close(self) -> None:
        """Release and let go of the lock (as ReadWriteLock.close)."""
        await self.release(force=True)
        self._lock.close()


if sys.platform == "win32":  # pragma: no cover - no Python lane on Windows
    AsyncFileLock = AsyncWindowsFileLock
else:
    #: The kernel lock of this platform, for asyncio.
    AsyncFileLock = AsyncUnixFileLock

__all__ = [
    "AsyncAcquireReadWriteReturnProxy",
    "AsyncAcquireReturnProxy",
    "AsyncReadWriteLock",
    "AsyncFileLock",
    "AsyncSoftFileLease",
    "AsyncSoftFileLock",
    "AsyncUnixFileLock",
    "AsyncWindowsFileLock",
    "BaseAsyncFileLock",
]
