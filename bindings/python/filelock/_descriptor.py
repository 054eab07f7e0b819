"""The OS lock on a descriptor the caller owns (``lock_descriptor`` /
``unlock_descriptor``, as the pure-Python package names them since 3.30).

The core's ``fl_lock_descriptor`` does the work: the same exclusive flock
that :class:`FileLock` takes, so a descriptor lock and a path lock on the
same file exclude each other. Nothing else is done to the descriptor.
"""

from __future__ import annotations

from typing import Any

from . import _filelock_core as _core


def lock_descriptor(fd: int | Any, *, blocking: bool = True, poll_interval: float = 0.05) -> bool:
    """
    Take the exclusive OS lock on *fd*, a descriptor the caller opened and owns.

    It never opens, truncates, closes, unlinks or changes the file; the caller
    closes *fd*. No recursion counter, thread model, timeout or deadlock check:
    use :class:`FileLock` for those.

    :param fd: an open file descriptor (or an object with ``fileno()``)
    :param blocking: True (default): wait until the lock is granted -- woken by the
        release itself, no polling; Ctrl-C and signal handlers end the wait with their
        exception. False: one attempt.
    :param poll_interval: must be finite and greater than 0 when *blocking* (kept for
        the pure-Python package's signature; the wait does not poll); ignored otherwise
    :return: True once the lock is held; False on contention when *blocking* is False
    :raises OSError: a permanent OS failure (``EBADF`` for a closed descriptor,
        ``ENOSYS`` where the OS lock is missing); the descriptor is left open
    :raises ValueError: a blocking call with a non-finite or non-positive *poll_interval*,
        or a negative *fd*
    """
    return bool(_core.flpy_lock_descriptor(fd, bool(blocking), poll_interval))


def unlock_descriptor(fd: int | Any) -> None:
    """
    Release the OS lock :func:`lock_descriptor` took on *fd*, leaving *fd* open.

    :raises OSError: the OS refused the unlock (the caller may retry)
    """
    _core.flpy_unlock_descriptor(fd)


__all__ = ["lock_descriptor", "unlock_descriptor"]
