"""
The soft lock's age-based settings, checked before the core sees them:
``lifetime`` (every lock class) and a lease's ``lease_duration`` and
``heartbeat_interval`` (:class:`~filelock.SoftFileLease`). The names, rules
and messages are the pure-Python ``filelock``'s (3.32); the expiry itself is
the C core's (``fl_options.lifetime``, ``fl_options.lease_duration``).
"""

from __future__ import annotations

import math
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
    if lifetime < 0 or (isinstance(lifetime, float) and not math.isfinite(lifetime)):
        msg = f"lifetime must be finite and non-negative, not {lifetime!r}"
        raise ValueError(msg)
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


def lease_settings(duration: Any, heartbeat: Any) -> tuple[float, float]:
    """A lease's ``(lease_duration, heartbeat_interval)``, checked; the heartbeat
    defaults to a third of the duration."""
    if isinstance(duration, bool) or not isinstance(duration, (int, float)):
        msg = f"lease_duration must be a number, not {type(duration).__name__}"
        raise TypeError(msg)
    if not duration > 0 or not math.isfinite(duration):
        msg = f"lease_duration must be positive, got {duration!r}"
        raise ValueError(msg)
    if heartbeat is None:
        heartbeat = duration / 3
    if not 0 < heartbeat < duration:
        msg = f"heartbeat_interval must be positive and below lease_duration, got {heartbeat!r}"
        raise ValueError(msg)
    return float(duration), float(heartbeat)
