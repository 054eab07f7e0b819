"""
The soft lock's age-based settings: ``lifetime`` (every lock class) and a
lease's ``lease_duration`` and ``heartbeat_interval``
(:class:`~filelock.SoftFileLease`). Their rules, messages (the pure-Python
``filelock``'s, 3.32) and defaults are the C core's (``fl_options_check``,
``FL_LEASE_DEFAULT_DURATION``; a ``ValueError`` is the core's ``FL_EINVAL``);
this module only maps Python types (``TypeError``, as the pure package
raises for a non-number) and decides which class ignores ``lifetime`` with a
warning, which is the pure package's behaviour, not a lock rule.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

from . import _filelock_core as _core


class SoftFileLockLifetimeWarning(DeprecationWarning):
    """The configured soft-lock lifetime permits overlapping live holders after expiry."""


class LeaseSettingsMismatch(ValueError):
    """A lease contender disagrees with the published claim about how long the lease lasts."""


# Why each class that cannot honour a lifetime ignores it (the warning's words).
_KERNEL_REASON = "a native OS lock cannot be broken safely by file age"
_LEASE_REASON = "lease_duration sets when a lease expires"


def resolve_lifetime(lifetime: Any, cls: type, stacklevel: int) -> float | None:
    """Validate ``lifetime``; None (with a warning) where the class cannot honour it."""
    if lifetime is None:
        return None
    if isinstance(lifetime, bool) or not isinstance(lifetime, (int, float)):
        msg = f"lifetime must be a finite non-negative number or None, not {type(lifetime).__name__}"
        raise TypeError(msg)
    # The value is checked before the class may ignore it (as the pure
    # package does), so here and not at the handle's creation.
    opts = _core.new_fl_options()
    _core.fl_options_lifetime_set(opts, float(lifetime))
    _core.fl_options_check(opts)
    reason = None
    if cls._fl_lease_options is not None:
        reason = _LEASE_REASON
    elif cls._fl_kind != _core.FL_SOFT:
        reason = _KERNEL_REASON
    if reason is not None:
        warnings.warn(
            f"lifetime is ignored for {cls.__name__}: {reason}; "
            f"only SoftFileLock supports lifetime-based expiry",
            stacklevel=stacklevel,
        )
        return None
    warnings.warn(
        f"{cls.__name__}(lifetime=...) uses age-based expiry and can overlap a live holder; "
        f"use SoftFileLease for expiry",
        SoftFileLockLifetimeWarning,
        stacklevel=stacklevel,
    )
    return float(lifetime)


def lease_settings(duration: Any, heartbeat: Any, lock_file: Any = None) -> tuple[float, float | None]:
    """A lease's ``(lease_duration, heartbeat_interval or None)`` as numbers for
    the core, which checks them and defaults the heartbeat
    (``_api._new_handle``). A non-number is a ``TypeError`` naming the
    setting and, when given, the lock file (as the core's ``ValueError`` does)."""
    where = ""
    if lock_file is not None:
        try:
            where = f" (lock file '{os.fsdecode(lock_file)}')"
        except TypeError:  # not a path: the handle's creation says so
            where = ""
    for name, value in (("lease_duration", duration), ("heartbeat_interval", heartbeat)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            msg = f"{name} must be a number, not {type(value).__name__}{where}"
            raise TypeError(msg)
    # An int beyond a double: the pure package's exceptions (its duration
    # arithmetic overflows; such a heartbeat is never below the duration),
    # naming the lock file.
    try:
        dur = float(duration)
    except OverflowError:
        msg = f"lease_duration too large for a float{where}"
        raise OverflowError(msg) from None
    try:
        return dur, None if heartbeat is None else float(heartbeat)
    except OverflowError:
        msg = f"heartbeat_interval must be positive and below lease_duration, got {heartbeat!r}{where}"
        raise ValueError(msg) from None
