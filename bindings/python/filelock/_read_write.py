"""
Read/write locks: many readers or one writer, on the kernel lock.

The C core does the work (``fl_acquire_shared`` / ``fl_acquire_ex`` on a
handle created with ``read_write=1``): readers share the OS lock, a writer
takes it exclusively, and a waiting writer closes a gate file
(``<lock_file>.gate``) to new readers so that a stream of readers cannot
starve it. Recursion stays within one mode; asking for the other mode on
the same lock while holding one is refused (RuntimeError), because
converting an OS lock is not atomic. This module only maps names, the
``with`` forms; the singleton registry is the one of the lock classes
(``_api._SingletonMeta``).
"""

from __future__ import annotations

import contextlib
import os
import threading
from typing import Any, Iterator, NoReturn

from . import _api
from . import _filelock_core as _core
from ._api import (
    AcquireReturnProxy,
    LockOwner,
    _finalizer_method,
    _new_handle,
    _owner_of,
    _SingletonMeta,
)

_acquire = _core.flpy_acquire
_release = _core.fl_release
_is_shared = _core.fl_is_shared
_is_locked = _core.fl_is_locked

_KERNEL = _core.FL_KERNEL


class ReadWriteLock(metaclass=_SingletonMeta):
    """
    A lock file that any number of readers hold together, or one writer alone.

    .. code-block:: python

        rw = ReadWriteLock("cache.lock")
        with rw.read_lock():
            ...  # readers in any number of threads and processes
        with rw.write_lock(timeout=10):
            ...  # one writer, no reader

    Each thread holds the lock on its own (threads exclude each other like
    processes do). With ``is_singleton=True`` (the default) every
    ``ReadWriteLock`` for the same file in this process is the same object;
    other arguments for it raise ValueError. A :class:`FileLock` and a
    ``ReadWriteLock`` on one file exclude each other (the FileLock counts as
    a writer), but only ReadWriteLock writers close the gate to readers.
    """

    _h: Any
    _lock_file: str

    # The defaults are the pure-Python package's; tests/python/test_options.py
    # checks the ones the core also has (fl_options_init).
    def __init__(
        self,
        lock_file: str | os.PathLike[str],
        timeout: float = -1,
        *,
        blocking: bool = True,
        is_singleton: bool = True,
    ) -> None:
        """
        Create a read/write lock; nothing is opened until the first acquire.

        :param lock_file: path of the lock file; the writers' gate is ``<lock_file>.gate``
        :param timeout: default timeout in seconds for :meth:`read_lock` and
            :meth:`write_lock`; negative waits forever, 0 tries once
        :param blocking: default of :meth:`read_lock` / :meth:`write_lock`; False tries once
        :param is_singleton: return the same object for every ReadWriteLock on this path
        """
        path = os.fspath(lock_file)
        # Each thread reads or writes on its own (the core's default
        # thread_local); waiting writers close the gate to new readers.
        self._h = _new_handle(
            path,
            _KERNEL,
            float(timeout),
            bool(blocking),
            singleton=bool(is_singleton),
            read_write=True,
        )
        self._lock_file = path
        self._close_mutex = threading.Lock()

    def _handle(self) -> Any:
        h = self._h
        if h is None:
            raise RuntimeError(f"ReadWriteLock for {self._lock_file!r} is closed")
        return h

    # -- properties ---------------------------------------------------------

    @property
    def lock_file(self) -> str:
        """The path of the lock file."""
        return self._lock_file

    @property
    def timeout(self) -> float:
        """The default timeout in seconds (negative: wait forever)."""
        return _core.fl_get_timeout(self._handle())

    @timeout.setter
    def timeout(self, value: float) -> None:
        _core.fl_set_timeout(self._handle(), float(value))

    @property
    def blocking(self) -> bool:
        """The default blocking flag of :meth:`read_lock` and :meth:`write_lock`."""
        return bool(_core.fl_get_blocking(self._handle()))

    @blocking.setter
    def blocking(self, value: bool) -> None:
        _core.fl_set_blocking(self._handle(), bool(value))

    @property
    def is_singleton(self) -> bool:
        """Whether this object is the one ReadWriteLock for its path."""
        return self._h is not None and bool(_core.fl_is_singleton(self._h))

    @property
    def is_locked(self) -> bool:
        """Whether this thread holds the lock, in either mode."""
        h = self._h
        return h is not None and bool(_is_locked(h))

    @property
    def lock_counter(self) -> int:
        """How many times this thread holds the lock (recursion in its mode)."""
        h = self._h
        return 0 if h is None else _core.fl_lock_counter(h)

    @property
    def held_mode(self) -> str | None:
        """The mode this thread holds the lock in: ``"read"``, ``"write"`` or None."""
        h = self._h
        if h is None or not _is_locked(h):
            return None
        return "read" if _is_shared(h) else "write"

    @property
    def is_read_locked(self) -> bool:
        """Whether this thread holds the lock as a reader."""
        h = self._h
        return h is not None and bool(_is_shared(h))

    @property
    def is_write_locked(self) -> bool:
        """Whether this thread holds the lock as the writer."""
        h = self._h
        return h is not None and bool(_is_locked(h)) and not _is_shared(h)

    @property
    def owner(self) -> LockOwner | None:
        """A holder of the lock file as the OS reports it (one of them while
        several readers hold it), or None when it is free or cannot be told."""
        return _owner_of(self._handle())

    @property
    def pid(self) -> int | None:
        """The process id of :attr:`owner`, or None."""
        own = self.owner
        return None if own is None else own.pid

    @property
    def is_lock_held_by_us(self) -> bool:
        """Whether this process holds the lock file (this object, any thread, or any other
        handle of this process); the core decides."""
        h = self._h
        return h is not None and bool(_core.fl_held_by_this_process(h))

    # -- acquire and release -----------------------------------------------

    @staticmethod
    def _args(timeout: float | None, blocking: bool | None) -> tuple[float | None, bool | None]:
        # None: the handle's default, resolved by the core.
        return (
            None if timeout is None else float(timeout),
            None if blocking is None else bool(blocking),
        )

    def acquire_read(self, timeout: float | None = -1, *, blocking: bool | None = True) -> AcquireReturnProxy:
        """
        Acquire the lock as a reader (again, if this thread reads: the counter grows).

        :param timeout: seconds to wait; negative: forever; 0: one attempt; None: the
            lock's default :attr:`timeout`
        :param blocking: False: one attempt whatever the timeout; None: the lock's default
        :raises Timeout: not won in time (a writer holds it, or waits for it)
        :raises RuntimeError: this thread holds the lock as the writer (no downgrade)
        :return: a context manager that releases one level on exit
        """
        if _api._is_debug(_api._DEBUG) is not _api._log_on:
            _api._sync_logging()
        h = self._handle()
        t, b = self._args(timeout, blocking)
        try:
            _acquire(h, 1, t, b, None)
        except RuntimeError as e:
            self._mode_error(e, "read")
        return AcquireReturnProxy(lock=self)  # type: ignore[arg-type]

    def acquire_write(self, timeout: float | None = -1, *, blocking: bool | None = True) -> AcquireReturnProxy:
        """
        Acquire the lock as the writer (again, if this thread writes: the counter
        grows). While it waits, new readers are held back.

        :param timeout: seconds to wait; negative: forever; 0: one attempt; None: the
            lock's default :attr:`timeout`
        :param blocking: False: one attempt whatever the timeout; None: the lock's default
        :raises Timeout: not won in time
        :raises RuntimeError: this thread holds the lock as a reader (no upgrade)
        :return: a context manager that releases one level on exit
        """
        if _api._is_debug(_api._DEBUG) is not _api._log_on:
            _api._sync_logging()
        h = self._handle()
        t, b = self._args(timeout, blocking)
        try:
            _acquire(h, 0, t, b, None)
        except RuntimeError as e:
            self._mode_error(e, "write")
        return AcquireReturnProxy(lock=self)  # type: ignore[arg-type]

    def _mode_error(self, error: RuntimeError, mode: str) -> NoReturn:
        """Re-raise the core's refusal to convert the held mode (FL_ELOCKMODE)
        in the pure-Python package's words; the core's reason as a note."""
        held = self.held_mode
        if held is None or held == mode:
            raise error  # not a mode conflict: as the core said
        direction = "downgrade" if mode == "read" else "upgrade"
        msg = (
            f"Cannot acquire {mode} lock on {self._lock_file} (lock id: {id(self)}): "
            f"already holding a {held} lock ({direction} not allowed)"
        )
        new = RuntimeError(msg)
        if hasattr(new, "add_note"):
            new.add_note(str(error))
        raise new from None

    @contextlib.contextmanager
    def read_lock(self, timeout: float | None = None, *, blocking: bool | None = None) -> Iterator[ReadWriteLock]:
        """Hold the lock as a reader for a ``with`` block (defaults: the lock's own)."""
        self.acquire_read(timeout, blocking=blocking)
        try:
            yield self
        finally:
            self.release()

    @contextlib.contextmanager
    def write_lock(self, timeout: float | None = None, *, blocking: bool | None = None) -> Iterator[ReadWriteLock]:
        """Hold the lock as the writer for a ``with`` block (defaults: the lock's own)."""
        self.acquire_write(timeout, blocking=blocking)
        try:
            yield self
        finally:
            self.release()

    def release(self, *, force: bool = False) -> None:
        """
        Release one level of this thread's hold, in whichever mode (all levels
        with *force*). The lock and gate files are not deleted.

        :raises RuntimeError: this thread does not hold the lock and *force* is False
            (the pure-Python package's error and text)
        """
        if _api._is_debug(_api._DEBUG) is not _api._log_on:
            _api._sync_logging()
        h = self._h
        if not force and (h is None or not _is_locked(h)):
            msg = f"Cannot release a lock on {self._lock_file} (lock id: {id(self)}) that is not held"
            raise RuntimeError(msg)
        if h is not None:
            _release(h, bool(force))

    def close(self) -> None:
        """
        Release this thread's hold and let go of the lock: the object is
        unusable afterwards (acquires raise RuntimeError) and, for a
        singleton, the next ``ReadWriteLock(path)`` creates a fresh one. Holds
        of other threads end when the last reference to the core handle goes.
        Calling it again does nothing.
        """
        with self._close_mutex:
            h = self._h
            if h is None:
                return
            _release(h, True)
            key = _core.fl_singleton_key(h)
            if key is not None:
                cls = type(self)
                with cls._instances_lock:
                    if cls._instances.get(key) is self:
                        del cls._instances[key]
            self._h = None
        del h  # the capsule's destructor frees the core handle (one reference)

    # See BaseFileLock.__del__: must work during interpreter teardown.
    __del__ = _finalizer_method()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._lock_file!r})"


__all__ = ["ReadWriteLock"]
