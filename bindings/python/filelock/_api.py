"""
The idiomatic layer over the C core (``_filelock_core``).

Every lock decision (waiting, recursion counters, the thread model, the
singleton registry, self-deadlock detection, fork safety, the log events)
is made by libfilelock. This module maps Python's names, arguments,
scoping constructs and logging onto it; errors are mapped in the extension
(swig/python.i, ``flpy_raise``).
"""

from __future__ import annotations

import builtins
import contextlib
import inspect
import logging
import operator
import os
import sys
import threading
import warnings
import weakref
from types import TracebackType
from typing import Any, Callable, ClassVar, Literal, NamedTuple, NoReturn, TypedDict, Union

from . import _filelock_core as _core
from . import _lease_opts
from ._error import Timeout

_LOGGER = logging.getLogger("filelock")
_DEBUG = logging.DEBUG

# Mode value meaning "let the umask and default ACLs decide" (the core's
# FL_MODE_DEFAULT); the `mode` property still reports 0o644 for it, as the
# pure-Python package does.
_UNSET_FILE_MODE = _core.FL_MODE_DEFAULT
_REPORTED_DEFAULT_MODE = 0o644

_KERNEL = _core.FL_KERNEL
_SOFT = _core.FL_SOFT

# Bound once: the `with lock:` path is a handful of calls, each counted.
_acquire = _core.flpy_acquire
_release = _core.fl_release
_acquire_cancel = _core.flpy_acquire_cancel
_set_log_id = _core.fl_set_log_id
_is_debug = _LOGGER.isEnabledFor


def _log_sink(line: str) -> None:
    # Called by the core (through the extension) with the formatted line;
    # logging checks the level again, so a logger switched off mid-wait logs
    # nothing more.
    _LOGGER.debug(line)


# Whether the core's log bridge is installed; mirrors the "filelock" logger's
# DEBUG state as last seen at an event (acquire, release, a wake-up).
_log_on = False
_log_mutex = threading.Lock()


def _sync_logging() -> None:
    """Install or remove the core's log bridge to follow the logger's level.

    Checked before each acquire and release and at each wake-up of a wait
    (the extension calls :func:`_follow_log_level`): when DEBUG is off the core
    has no handler and formats nothing.
    """
    global _log_on
    with _log_mutex:
        on = _is_debug(_DEBUG)
        if on != _log_on:
            _core.flpy_set_logging(on)
            _log_on = on


def _follow_log_level() -> None:
    if _is_debug(_DEBUG) is not _log_on:
        _sync_logging()


_core.flpy_setup(Timeout, _log_sink, _follow_log_level)


class LockOwner(NamedTuple):
    """Who holds a lock: the owner record of a soft lock's marker, or what
    the OS reports for the kernel lock (Linux: ``/proc/locks``)."""

    #: The holder's process id.
    pid: int
    #: The holder's host name (this host's name for the kernel lock).
    hostname: str
    #: The holder's process start token (on Linux ``(boot_id << 64) | starttime``
    #: in decimal), or None when none was recorded (kernel lock, older writers).
    start_token: str | None
    #: True if the holder is this process on this host.
    this_process: bool


def _owner_of(h: Any) -> LockOwner | None:
    rec = _core.flpy_owner(h)
    return None if rec is None else LockOwner(*rec)


_new_options = _core.new_fl_options
_flpy_new = _core.flpy_new
_fsencode = os.fsencode


def _core_default(name: str) -> Any:
    return getattr(_core, f"fl_options_{name}_get")(_core.new_fl_options())


# The core's defaults (fl_options_init), read once: the only place they live.
_D_TIMEOUT = _core_default("timeout")
_D_POLL = _core_default("poll_interval")
_D_BLOCKING = bool(_core_default("blocking"))
_D_MODE = _core_default("mode")
_D_THREAD_LOCAL = bool(_core_default("thread_local"))
_set_kind = _core.fl_options_kind_set
_set_timeout = _core.fl_options_timeout_set
_set_poll = _core.fl_options_poll_interval_set
_set_blocking = _core.fl_options_blocking_set
_set_mode = _core.fl_options_mode_set
_set_thread_local = _core.fl_options_thread_local_set
_set_singleton = _core.fl_options_singleton_set
_set_read_write = _core.fl_options_read_write_set
_set_soft_fallback = _core.fl_options_soft_fallback_set
_set_on_acquired = _core.flpy_options_on_acquired
_set_scope = _core.flpy_options_singleton_scope
_set_lifetime = _core.fl_options_lifetime_set
_set_lease_duration = _core.fl_options_set_lease_duration
_set_heartbeat = _core.fl_options_set_heartbeat_interval


def _new_handle(
    lock_file: str,
    kind: int,
    timeout: float,
    blocking: bool,
    poll_interval: float = _D_POLL,
    mode: int = _D_MODE,
    thread_local: bool = _D_THREAD_LOCAL,
    singleton: bool = False,
    read_write: bool = False,
    soft_fallback: bool = False,
    on_acquired: Callable[[int], None] | None = None,
    lifetime: float = 0.0,
    lease: tuple[float, float | None] | None = None,
    scope: type | None = None,
) -> Any:
    """A core handle for *lock_file* (already ``os.fspath``'d). A new
    ``fl_options`` holds the core's defaults; only what differs from them is
    set (written out: this runs for every lock created). The core validates
    the values (ValueError) and, with *singleton*, decides whether an
    existing handle is the same lock file or conflicts with it; *scope* (the
    lock class) makes the singleton one per class, as the pure-Python
    package's registries are: another class's singleton on the same lock file
    is another lock."""
    opts = _new_options()
    if kind:
        _set_kind(opts, kind)
    if timeout != _D_TIMEOUT:
        _set_timeout(opts, timeout)
    if blocking is not _D_BLOCKING:
        _set_blocking(opts, blocking)
    if poll_interval != _D_POLL:
        _set_poll(opts, poll_interval)
    if mode != _D_MODE:
        _set_mode(opts, mode)
    if thread_local is not _D_THREAD_LOCAL:
        _set_thread_local(opts, thread_local)
    if singleton:
        _set_singleton(opts, True)
        if scope is not None:
            _set_scope(opts, scope)
    if read_write:
        _set_read_write(opts, True)
    if soft_fallback:
        _set_soft_fallback(opts, True)
    if on_acquired is not None:
        _set_on_acquired(opts, on_acquired)
    if lifetime:
        _set_lifetime(opts, lifetime)
    if lease is not None:  # (lease_duration, heartbeat_interval or None): filelock/_lease.py
        _set_lease_duration(opts, lease[0])
        if lease[1] is not None:  # else the core's default (a third of the duration)
            _set_heartbeat(opts, lease[1])
    return _flpy_new(_fsencode(lock_file), opts)


class _SingletonMeta(type):
    """One object per class and singleton lock file, as the pure-Python
    package keeps it: ``cls._instances`` maps the lock file's key to the
    object, weakly (the entry goes with the last reference). Which paths are
    the same lock file, and which settings conflict, the core decides: the
    instance's ``__init__`` asks it for a handle, and the key is the one the
    core shares that handle by (``fl_singleton_key``)."""

    _instances: weakref.WeakValueDictionary[str, Any]
    _instances_lock: threading.Lock

    def __init__(
        cls, name: str, bases: tuple[type, ...], ns: dict[str, Any], **kwargs: Any
    ) -> None:
        super().__init__(name, bases, ns, **kwargs)
        cls._instances = weakref.WeakValueDictionary()
        cls._instances_lock = threading.Lock()
        _singleton_classes.add(cls)

    @property
    def __signature__(cls) -> inspect.Signature:
        # inspect.signature(FileLock) and help() would otherwise show this
        # metaclass's (*args, **kwargs): give the constructor's parameters, as
        # the pure-Python package's metaclass does. A property of the
        # metaclass: instances (callable as decorators) keep their own.
        sig = inspect.signature(cls.__init__)
        return sig.replace(parameters=list(sig.parameters.values())[1:])

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        self = super().__call__(*args, **kwargs)
        h = self.__dict__.get("_h")
        key = None if h is None else _core.fl_singleton_key(h)
        if key is None:
            # Log messages name id(lock), as the pure-Python package's do.
            if h is not None:
                _set_log_id(h, id(self))
            return self
        with cls._instances_lock:
            existing = cls._instances.get(key)
            if existing is None:
                cls._instances[key] = self
                _set_log_id(h, id(self))
                options = self.__dict__.get("_fl_options")
                if options is not None:
                    # Only the first object of a shared handle sets it: a later,
                    # differing one is refused below without touching the handle.
                    _core.fl_set_close_errors(h, _CLOSE_ERRORS[options[1]])
                return self
        # The core gave this call another reference to the same handle:
        # drop it with the spare object (never a release: the handle is
        # shared, and the core frees it with its last reference). The core
        # compared its own settings; the options only this layer keeps
        # (context_error_policy, ...) are compared here.
        self.__dict__["_h"] = None
        _check_same_options(existing, self)
        return existing


_SINGLETON_MISMATCH = "Singleton lock instances cannot be initialized with differing arguments"


def _current(existing: Any, name: str, given: Any) -> Any:
    """*existing*'s setting *name* as the pure-Python package reports it: the
    value given to its constructor (``-1``, not the core's ``-1.0``) unless it
    was changed since through a property."""
    if name in ("timeout", "blocking", "poll_interval"):
        now = getattr(existing, name)
        return given if now == given else now
    return given


def _differing_arguments(existing: Any, args: dict[str, Any], on_acquired: Any) -> str | None:
    """The pure-Python package's ValueError text for a singleton constructed
    again with other arguments than *existing* (3.32: each differing
    argument listed, in its order), or None when all match."""
    mine = existing.__dict__.get("_fl_args")
    if mine is None:
        return None
    lines = []
    for name, passed in args.items():
        have = _current(existing, name, mine[name])
        if passed != have:
            lines.append(f"\n\t{name} (existing lock has {have} but {passed} was passed)")
    hook = existing.__dict__.get("_fl_on_acquired")
    if on_acquired is not hook:
        lines.append(f"\n\ton_acquired (existing lock has {hook} but {on_acquired} was passed)")
    if not lines:
        return None
    return _SINGLETON_MISMATCH + "\nNon-matching arguments: " + "".join(lines)


def _check_same_options(existing: Any, new: Any) -> None:
    """ValueError in the pure-Python package's words when *new* (the spare
    object of a singleton construction, whose handle the core shared: its own
    settings matched) was given other binding-level options than *existing*."""
    theirs = new.__dict__.get("_fl_args")
    if theirs is None:
        return
    msg = _differing_arguments(existing, theirs, new.__dict__.get("_fl_on_acquired"))
    if msg is not None:
        raise ValueError(msg)


def _singleton_refused(cls: type, path: str, args: dict[str, Any], on_acquired: Any, error: ValueError) -> ValueError:
    """The core refused a singleton for *path* (its settings differ from the
    existing handle's): list the differing arguments as 3.32 does when this
    class's registry has the existing object (same absolute path), else keep
    the core's message (the other object is of another class, or reached
    through another spelling)."""
    if not str(error).startswith(_SINGLETON_MISMATCH):
        return error
    want = os.path.abspath(path)
    for existing in list(cls._instances.values()):  # type: ignore[attr-defined]
        if os.path.abspath(existing.__dict__.get("_lock_file", "")) == want:
            msg = _differing_arguments(existing, args, on_acquired)
            if msg is not None:
                new = ValueError(msg)
                if hasattr(new, "add_note"):
                    new.add_note(str(error))
                return new
    return error


# Every class with a registry, to give each a fresh mutex in a forked child.
_singleton_classes: weakref.WeakSet[_SingletonMeta] = weakref.WeakSet()


def _reset_mutexes_in_child() -> None:
    """A forked child has only the forking thread: a mutex that another thread
    held at the fork would stay locked forever there (the core's own mutexes are
    handled by its pthread_atfork handlers)."""
    global _log_mutex
    _log_mutex = threading.Lock()
    for cls in list(_singleton_classes):
        cls._instances_lock = threading.Lock()
    # Another thread forked during the main thread's wait: that wait's
    # signal wake-up pipe is not the child's business.
    _core.flpy_wake_after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_mutexes_in_child)


def _finalize(
    obj: Any, force_release: Any = _core.fl_release, is_singleton: Any = _core.fl_is_singleton
) -> None:
    # A finalizer: must never raise, and must work while the interpreter
    # tears module globals down (hence the functions bound as defaults). A
    # singleton handle is shared with other objects and released by the core
    # with its last reference; a private one drops this thread's hold here.
    try:
        h = obj.__dict__.get("_h")
        if h is not None and not is_singleton(h):
            if getattr(type(obj), "_fl_release_hook", False):
                # A subclass's release() is called, as the pure-Python
                # package's __del__ calls release(force=True).
                try:
                    obj.release(force=True)
                except Exception:  # noqa: BLE001 - as 3.32: a finalizer swallows it
                    pass
            force_release(h, True)
    except BaseException:  # noqa: BLE001 - a finalizer must never raise
        pass


def _finalizer_method(finalize: Callable[[Any], None] = _finalize) -> Callable[[Any], None]:
    """A ``__del__(self)`` calling *finalize* through a closure (not a module
    global, gone at interpreter teardown; not a default argument, which
    help() and inspect.signature would show)."""

    def __del__(self) -> None:  # type: ignore[no-untyped-def]
        finalize(self)

    return __del__


PathLike = Union[str, "os.PathLike[str]"]

#: How ``with lock:`` reports a body failure together with a release failure:
#: "chain" (the release error, the body's in its ``__context__``) or "group"
#: (a ``BaseExceptionGroup`` of both).
ContextErrorPolicy = Literal["chain", "group"]
#: What a failure to close the lock file after the unlock does (the lock is
#: released either way): "default" (ignored for the POSIX kernel lock, raised
#: for the soft lock and on Windows), "raise" (OSError) or "suppress".
CloseErrorPolicy = Literal["default", "raise", "suppress"]

# The core decides, at each release, by the kind being released (a FileLock
# that fell back to the soft lock reports as the soft lock): fl_close_errors.
_CLOSE_ERRORS = {
    "default": _core.FL_CLOSE_IGNORE_KERNEL,
    "raise": _core.FL_CLOSE_REPORT,
    "suppress": _core.FL_CLOSE_IGNORE,
}


class LockOptions(TypedDict, total=False):
    """The constructor's options after *lock_file*, for typing what a
    subclass passes through (``**kwargs: Unpack[LockOptions]``), as the
    pure-Python package's ``LockOptions``."""

    timeout: float
    mode: int
    thread_local: bool
    blocking: bool
    is_singleton: bool
    poll_interval: float
    lifetime: float | None
    context_error_policy: ContextErrorPolicy
    close_error_policy: CloseErrorPolicy
    fallback_to_soft: bool
    preserve_lock_file: bool
    on_acquired: Callable[[int], None] | None


def _exception_group() -> Any:
    """BaseExceptionGroup (builtin since 3.11, else the backport), or None."""
    group = getattr(builtins, "BaseExceptionGroup", None)
    if group is None:  # pragma: no cover - Python 3.10 only
        try:
            from exceptiongroup import BaseExceptionGroup as group  # type: ignore[no-redef]
        except ImportError:
            return None
    return group


def _check_options(
    cls: type,
    context_error_policy: str,
    close_error_policy: str,
    preserve_lock_file: bool,
    on_acquired: Callable[[int], None] | None,
) -> None:
    # The pure-Python package's checks and words, in its order.
    if context_error_policy not in ("chain", "group"):
        msg = f"context_error_policy must be 'chain' or 'group', got {context_error_policy!r}"
        raise ValueError(msg)
    if context_error_policy == "group" and _exception_group() is None:
        msg = "context_error_policy='group' requires Python 3.11+ or the 'exceptiongroup' backport installed"
        raise ValueError(msg)
    if close_error_policy not in ("default", "raise", "suppress"):
        msg = f"close_error_policy must be 'default', 'raise', or 'suppress', got {close_error_policy!r}"
        raise ValueError(msg)
    soft = getattr(cls, "_fl_kind", None) == _SOFT
    if preserve_lock_file and soft:
        msg = f"preserve_lock_file=True is not supported by {cls.__name__}: unlinking its marker is how it releases"
        raise ValueError(msg)
    if on_acquired is not None and soft:
        msg = f"on_acquired is not supported by {cls.__name__}: only native locks expose the lock descriptor"
        raise ValueError(msg)
    if on_acquired is not None and not callable(on_acquired):
        msg = f"on_acquired must be callable, not {type(on_acquired).__name__}"
        raise TypeError(msg)


class AcquireReturnProxy:
    """A context manager returned by :meth:`BaseFileLock.acquire`: leaving
    the ``with`` block releases the level acquired, without acquiring again
    on entry."""

    def __init__(self, lock: BaseFileLock) -> None:
        self.lock = lock

    def __enter__(self) -> BaseFileLock:
        return self.lock

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.lock.release()


class BaseFileLock(contextlib.ContextDecorator, metaclass=_SingletonMeta):
    """A lock on a lock file, shared with other threads and processes.

    Not instantiated directly: use :class:`FileLock` (the platform's kernel
    lock) or :class:`SoftFileLock` (an exclusive-create marker file).
    """

    #: The core's lock kind; None marks an abstract class.
    _fl_kind: int | None = None
    #: Whether release() is overridden (set by __init_subclass__): __del__ calls it.
    _fl_release_hook: bool = False
    #: A lease's option names (filelock/_lease.py); None: not a lease.
    _fl_lease_options: tuple[str, ...] | None = None

    _h: Any
    _lock_file: str
    _mode: int
    # (context_error_policy, close_error_policy, fallback_to_soft, preserve_lock_file)
    _fl_options: tuple[str, str, bool, bool]
    # The constructor's arguments as given (for a singleton's differing-arguments error).
    _fl_args: dict[str, Any]
    _fl_on_acquired: Callable[[int], None] | None

    # The defaults are the pure-Python package's; tests/python/test_options.py
    # checks that they are the core's (fl_options_init).
    def __init__(
        self,
        lock_file: str | os.PathLike[str],
        timeout: float = -1,
        mode: int = _UNSET_FILE_MODE,
        thread_local: bool = True,
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
    ) -> None:
        """
        Create a lock object; nothing is opened or created until the first
        acquire.

        :param lock_file: path of the lock file (missing parent directories are created)
        :param timeout: default timeout in seconds; negative waits forever, 0 tries once
        :param mode: permission bits for a new lock file; by default the umask and default
            ACLs decide
        :param thread_local: True: each thread holds the lock on its own (it excludes the
            other threads); False: the lock state is shared by all threads
        :param blocking: default for :meth:`acquire`; False tries once whatever the timeout
        :param is_singleton: return the same object for every lock of this class on this
            lock file; differing arguments raise ValueError
        :param poll_interval: default ceiling between re-checks where the OS gives no
            wake-up (waiters are otherwise woken when the holder releases)
        :param context_error_policy: ``with`` exit when the body and the release both fail:
            "chain" raises the release error (the body's in its ``__context__``), "group" a
            ``BaseExceptionGroup("lock body and release both failed", [body, release])``
        :param close_error_policy: a failure to close the lock file after the unlock (the
            lock is released all the same): "raise" raises OSError, "suppress" ignores it,
            "default" ignores it for the kernel lock on POSIX and raises for the soft lock
            and on Windows (as the pure-Python package). A failed unlock (the file system
            dropped the lock) always raises.
        :param fallback_to_soft: FileLock only: where the file system has no OS locks (or
            keeps them local to this host), use the soft lock (with a UserWarning) instead of
            raising NotImplementedError; never with *preserve_lock_file* or *on_acquired*
        :param preserve_lock_file: never delete the lock file (the kernel lock never does;
            SoftFileLock rejects True: deleting its marker is how it releases)
        :param on_acquired: FileLock only: called with the locked file descriptor once per
            acquisition (not on re-entry), before :meth:`acquire` returns; if it raises, the
            lock is released and the error propagates. Do not close the descriptor.
        :param lifetime: :class:`SoftFileLock` only: seconds after which a marker is stale even
            while its holder lives (None: never); ignored with a warning elsewhere
        """
        kind = type(self)._fl_kind
        if kind is None:
            raise TypeError(f"Can't instantiate abstract class {type(self).__name__}")
        _check_options(type(self), context_error_policy, close_error_policy, preserve_lock_file, on_acquired)
        path = os.fspath(lock_file)
        # operator.index: an int (or an object that is one), as os.open takes;
        # a str or float is the TypeError the pure package's os.open raises.
        mode_value = _UNSET_FILE_MODE if mode is None else operator.index(mode)
        # As the pure-Python package: no soft fallback for a caller who asked
        # to keep the lock file or to be handed the locked descriptor.
        soft_fallback = bool(fallback_to_soft) and not preserve_lock_file and on_acquired is None
        if lifetime is not None:
            # (resolve_lifetime <- here <- _SingletonMeta.__call__ <- the caller)
            lifetime = _lease_opts.resolve_lifetime(lifetime, type(self), stacklevel=4)
        # As given, in the pure package's order: a singleton constructed
        # again with other arguments lists them (_differing_arguments).
        args = {
            "thread_local": thread_local,
            "timeout": timeout,
            "mode": mode,
            "blocking": blocking,
            "poll_interval": poll_interval,
            "lifetime": lifetime,
            "context_error_policy": context_error_policy,
            "close_error_policy": close_error_policy,
            "fallback_to_soft": fallback_to_soft,
            "preserve_lock_file": preserve_lock_file,
        }
        try:
            self._h = _new_handle(
                path,
                kind,
                float(timeout),
                bool(blocking),
                float(poll_interval),
                mode_value,
                bool(thread_local),
                bool(is_singleton),
                False,  # read_write: only ReadWriteLock
                soft_fallback and kind == _KERNEL,
                on_acquired,
                lifetime=lifetime or 0.0,
                lease=self.__dict__.get("_fl_lease"),
                scope=type(self),
            )
        except ValueError as e:
            if not is_singleton:
                raise
            raise _singleton_refused(type(self), path, args, on_acquired, e) from None
        self._fl_args = args
        self._lock_file = path
        self._mode = mode_value
        self._fl_options = (context_error_policy, close_error_policy, bool(fallback_to_soft), bool(preserve_lock_file))
        if not is_singleton:  # a singleton's shared handle: _SingletonMeta.__call__
            _core.fl_set_close_errors(self._h, _CLOSE_ERRORS[close_error_policy])
        self._fl_on_acquired = on_acquired

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # The fast `with` path calls the core directly; a subclass that
        # overrides acquire()/release() gets them called by `with` instead.
        if cls.acquire is not BaseFileLock.acquire and "__enter__" not in cls.__dict__:
            cls.__enter__ = BaseFileLock._enter_via_acquire  # type: ignore[method-assign]
        if cls.release is not BaseFileLock.release and "__exit__" not in cls.__dict__:
            cls.__exit__ = BaseFileLock._exit_via_release  # type: ignore[method-assign]
        # ... and __del__ calls it (_finalize); not a coroutine (the async
        # locks' release), which a finalizer could not await.
        cls._fl_release_hook = cls.release is not BaseFileLock.release and not inspect.iscoroutinefunction(
            cls.release
        )

    # -- properties ---------------------------------------------------------

    @property
    def lock_file(self) -> str:
        """The path of the lock file."""
        return self._lock_file

    @property
    def timeout(self) -> float:
        """The default timeout in seconds (negative: wait forever)."""
        return _core.fl_get_timeout(self._h)

    @timeout.setter
    def timeout(self, value: float | str) -> None:
        _core.fl_set_timeout(self._h, float(value))

    @property
    def blocking(self) -> bool:
        """The default blocking flag of :meth:`acquire`."""
        return bool(_core.fl_get_blocking(self._h))

    @blocking.setter
    def blocking(self, value: bool) -> None:
        _core.fl_set_blocking(self._h, bool(value))

    @property
    def poll_interval(self) -> float:
        """The default ceiling between re-checks, in seconds."""
        return _core.fl_get_poll_interval(self._h)

    @poll_interval.setter
    def poll_interval(self, value: float) -> None:
        _core.fl_set_poll_interval(self._h, float(value))

    @property
    def mode(self) -> int:
        """The permission bits for a new lock file (0o644 reported when left to the umask)."""
        return _REPORTED_DEFAULT_MODE if self._mode == _UNSET_FILE_MODE else self._mode

    @property
    def context_error_policy(self) -> ContextErrorPolicy:
        """How ``with`` reports a body failure together with a release failure."""
        return self._fl_options[0]  # type: ignore[return-value]

    @property
    def close_error_policy(self) -> CloseErrorPolicy:
        """What a failure to close the lock file after the unlock does."""
        return self._fl_options[1]  # type: ignore[return-value]

    @property
    def fallback_to_soft(self) -> bool:
        """Whether a FileLock uses the soft lock where the file system has no OS locks."""
        return self._fl_options[2]

    @property
    def preserve_lock_file(self) -> bool:
        """Whether the lock file is promised to stay (the kernel lock never deletes it)."""
        return self._fl_options[3]

    @property
    def on_acquired(self) -> Callable[[int], None] | None:
        """The hook called with the locked descriptor once per acquisition, or None."""
        return self._fl_on_acquired

    @property
    def has_explicit_mode(self) -> bool:
        """Whether *mode* was given (else the umask and default ACLs decide a new file's mode)."""
        return self._mode != _UNSET_FILE_MODE

    @property
    def lifetime(self) -> float | None:
        """Seconds after which a soft marker is stale even while its holder lives, or None."""
        return _core.fl_get_lifetime(self._h) or None

    @property
    def is_singleton(self) -> bool:
        """Whether this object is the one shared lock for its path."""
        return bool(_core.fl_is_singleton(self._h))

    def is_thread_local(self) -> bool:
        """Whether the lock state is per thread."""
        return bool(_core.fl_is_thread_local(self._h))

    @property
    def is_locked(self) -> bool:
        """Whether this thread (any thread, when not thread-local) holds the lock."""
        return bool(_core.fl_is_locked(self._h))

    @property
    def lock_counter(self) -> int:
        """How many times the lock is held (recursion), as seen by this thread."""
        return _core.fl_lock_counter(self._h)

    # -- owner inspection (issue 6) ----------------------------------------

    @property
    def owner(self) -> LockOwner | None:
        """
        The current holder of the lock file, by whatever process or handle,
        or None when it is free or the holder cannot be told.

        Soft lock: read from the marker's owner record
        (``<pid>\n<hostname>\n<start token>\n``); a marker without one (e.g.
        written by an older pure-Python ``filelock``) gives None. Kernel lock:
        the holding process as the OS reports it (Linux: ``/proc/locks``);
        with several shared holders, one of them. Raises OSError when the
        lock path cannot be inspected (e.g. a FIFO or symlink planted there).
        """
        return _owner_of(self._h)

    @property
    def pid(self) -> int | None:
        """
        The holder's process id (see :attr:`owner`), or None when the lock is
        free, the holder cannot be told, or the lock file cannot be read (as
        the pure-Python package's ``SoftFileLock.pid``: never raises OSError).
        """
        try:
            rec = _core.flpy_owner(self._h)
        except OSError:
            return None
        return None if rec is None else rec[0]

    @property
    def is_lock_held_by_us(self) -> bool:
        """
        Whether this process holds the lock file. Soft lock: the marker's
        owner record names this process on this host (as the pure-Python
        package's ``SoftFileLock.is_lock_held_by_us``; False after
        :meth:`break_lock`, or when the marker cannot be read). Kernel lock:
        through this object in this thread (:attr:`is_locked`), or through any
        handle or thread of this process according to :attr:`owner`.
        """
        return bool(_core.fl_held_by_this_process(self._h))

    def break_lock(self) -> None:
        """
        Delete the soft lock's marker, whoever holds it. For operators only:
        this **voids mutual exclusion** for the current holder, who goes on
        believing it holds the lock while the next acquire succeeds too.
        Use it only when the holder is known to be gone; markers of dead
        holders on this host are reclaimed by :meth:`acquire` on its own.

        Does nothing when no marker exists.

        :raises NotImplementedError: for the kernel lock (:class:`FileLock`):
            the OS releases it when its holder exits, and nobody else can
        :raises OSError: the marker path is not a regular file, or cannot be removed
        """
        _core.fl_break_lock(self._h)

    # -- acquire and release -----------------------------------------------

    def acquire(
        self,
        timeout: float | None = None,
        poll_interval: float | None = None,
        *,
        poll_intervall: float | None = None,
        blocking: bool | None = None,
        cancel_check: Callable[[], bool] | None = None,
    ) -> AcquireReturnProxy:
        """
        Acquire the lock (again, if this thread holds it: the counter grows).

        :param timeout: seconds to wait; None: the default :attr:`timeout`; negative: forever;
            0: one attempt
        :param poll_interval: ceiling between re-checks where the OS gives no wake-up;
            None: the default :attr:`poll_interval` (0.05 s unless set)
        :param poll_intervall: deprecated spelling of *poll_interval*
        :param blocking: False: one attempt whatever the timeout; None: the default
            :attr:`blocking`
        :param cancel_check: called (without arguments) at every wake-up of the wait, and
            at least every 50 ms; a true result ends the wait with :class:`Timeout`, as an
            expired timeout would ("Cancellation requested" is logged); what it raises
            propagates. Not called when the lock is won at once.
        :raises Timeout: the lock was not won in time, or *cancel_check* asked to stop
        :return: a context manager that releases on exit
        """
        if poll_intervall is not None:
            warnings.warn(
                "use poll_interval instead of poll_intervall", DeprecationWarning, stacklevel=2
            )
            poll_interval = poll_intervall
        if _is_debug(_DEBUG) is not _log_on:
            _sync_logging()
        # None: the handle's default, resolved by the core.
        t = None if timeout is None else float(timeout)
        b = None if blocking is None else bool(blocking)
        p = None if poll_interval is None else float(poll_interval)
        if cancel_check is None:
            _acquire(self._h, 0, t, b, p)
        else:
            _acquire_cancel(self._h, 0, t, b, p, cancel_check)
        return AcquireReturnProxy(lock=self)

    def release(self, force: bool = False) -> None:
        """
        Release one level of the lock; the lock file is unlocked when the
        counter reaches zero (at once with *force*). Releasing a lock this
        thread does not hold does nothing. The lock file is not deleted.
        """
        if _is_debug(_DEBUG) is not _log_on:
            _sync_logging()
        # A close failure after the unlock is raised or not by the core, per
        # close_error_policy (set on the handle at construction).
        _release(self._h, bool(force))

    def __enter__(self) -> BaseFileLock:
        if _is_debug(_DEBUG) is not _log_on:
            _sync_logging()
        _acquire(self._h, 0, None, None, None)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if _is_debug(_DEBUG) is not _log_on:
            _sync_logging()
        if exc_value is None:
            _release(self._h, False)
            return
        self._release_in_context(exc_value)

    def _release_in_context(self, body_error: BaseException | None) -> None:
        try:
            self.release()
        except BaseException as release_error:
            if body_error is None or self._fl_options[0] == "chain":
                raise
            group = _exception_group()("lock body and release both failed", [body_error, release_error])
            raise group from None

    def _enter_via_acquire(self) -> BaseFileLock:
        self.acquire()
        return self

    def _exit_via_release(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._release_in_context(exc_value)

    # A closure over _finalize, so that it still works while the interpreter
    # tears module globals down, without an extra parameter in help(). The
    # handle's own deallocation then frees it (releasing what other threads
    # may still hold).
    __del__ = _finalizer_method()

    def __reduce_ex__(self, protocol: Any) -> NoReturn:
        # The pure-Python package cannot be pickled either (TypeError); say why.
        msg = (
            f"cannot pickle {type(self).__name__!r} object: it owns an OS lock handle; "
            f"create a new lock for the same path in the other process"
        )
        raise TypeError(msg)

    def __copy__(self) -> NoReturn:
        msg = (
            f"cannot copy {type(self).__name__!r} object: it owns an OS lock handle; "
            f"create another lock for the same path (is_singleton=True to share one)"
        )
        raise TypeError(msg)

    def __deepcopy__(self, memo: Any) -> NoReturn:
        self.__copy__()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._lock_file!r})"


class UnixFileLock(BaseFileLock):
    """The POSIX kernel lock (flock) on the lock file; the file is never deleted.
    The platform's FileLock everywhere but Windows."""

    _fl_kind = _KERNEL


class SoftFileLock(BaseFileLock):
    """A marker file created exclusively while held and deleted on release;
    for file systems without OS locks."""

    _fl_kind = _SOFT


class WindowsFileLock(BaseFileLock):
    """The Windows kernel lock (LockFileEx on the lock file). The platform's
    FileLock on Windows."""

    _fl_kind = _KERNEL


def _other_platforms(cls: type[BaseFileLock], reason: str) -> None:
    """Make *cls* refuse to lock, as the pure-Python package's class for the
    other platform does (NotImplementedError; it gives no message). Its
    objects can still be created and inspected."""

    def acquire(self: BaseFileLock, *args: Any, **kwargs: Any) -> AcquireReturnProxy:
        raise NotImplementedError(reason)

    cls.acquire = acquire  # type: ignore[method-assign]
    cls.__enter__ = BaseFileLock._enter_via_acquire  # type: ignore[method-assign]


# libfilelock is built with one backend per platform (posix.c or win32.c),
# and each kernel lock is a different system call, with different rules
# (flock: advisory, per open file; LockFileEx: a mandatory byte-range lock).
# Serving one class's name with the other's call would let two programs
# that both believe they use, say, WindowsFileLock fail to exclude one that
# really does; so the other platform's class refuses.
if sys.platform == "win32":  # pragma: no cover - no Python lane on Windows
    _other_platforms(
        UnixFileLock,
        "UnixFileLock locks with flock(2), which Windows does not have; this libfilelock "
        "is built with its Windows backend (LockFileEx): use FileLock, which is "
        "WindowsFileLock here",
    )
else:
    _other_platforms(
        WindowsFileLock,
        "WindowsFileLock locks with LockFileEx, which only Windows has; this libfilelock "
        "is built with its POSIX backend (flock): use FileLock, which is UnixFileLock here",
    )


__all__ = [
    "AcquireReturnProxy",
    "BaseFileLock",
    "LockOptions",
    "LockOwner",
    "SoftFileLock",
    "UnixFileLock",
    "WindowsFileLock",
]
