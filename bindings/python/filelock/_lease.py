"""
:class:`SoftFileLease`: a soft lock whose claim expires, so that a contender
(on any host) may take it once the holder stops refreshing it, with the
pure-Python ``filelock``'s names (3.30+). The heartbeat, the expiry and the
reclaim are the C core's (docs/soft-lock-protocol.md, "Leases"); this module
maps the names and turns the core's compromise report into
:class:`LeaseCompromise`.
"""

from __future__ import annotations

import os
import weakref
from dataclasses import dataclass
from typing import Any, Callable, Literal

from . import _filelock_core as _core
from ._api import AcquireReturnProxy, SoftFileLock, PathLike, _UNSET_FILE_MODE
from ._lease_opts import (
    LeaseSettingsMismatch,
    SoftFileLockLifetimeWarning,
    lease_settings,
    resolve_lifetime,
)

CompromiseReason = Literal["marker-missing", "owner-changed", "refresh-failed"]


@dataclass(frozen=True)
class LeaseCompromise:
    """Why a held lease stopped being this process's to hold."""

    #: The lock file.
    lock_file: str
    #: The token of the claim that was lost.
    token: str
    #: "marker-missing", "owner-changed" or "refresh-failed".
    reason: CompromiseReason
    #: The last refresh's error for "refresh-failed", else None.
    error: OSError | None = None


# The core's lock id -> the objects over that handle that have acquired: a
# singleton handle is shared by one object per class (each class keeps its
# own registry). Read and written under the GIL only (no lock: __del__ and
# the heartbeat's report must never wait).
_watchers: dict[int, weakref.WeakSet[SoftFileLease]] = {}


def _on_lost(lock_id: int, reason: str, err: int, path: str) -> None:
    # Runs on a thread of the core's, one per loss (with the GIL).
    error = OSError(err, os.strerror(err), path) if err else None
    for lease in list(_watchers.get(lock_id, ())):
        lease._record(reason, error)  # noqa: SLF001


_core.flpy_setup_lease(LeaseSettingsMismatch, _on_lost)


class SoftFileLease(SoftFileLock):
    """
    A soft lock whose claim expires: the holder's marker is refreshed every
    ``heartbeat_interval`` seconds by a thread of the library, and any
    contender (on this or another host sharing the file system) takes it
    over once it is ``lease_duration`` seconds old -- a frozen, partitioned
    or suspended holder included, whose process may still be running. Every
    contender for a path must use the same ``lease_duration``; one that
    differs raises :class:`LeaseSettingsMismatch`.

    A holder that lost its claim learns it: ``on_compromise`` is called (on
    a thread of the library's) with a :class:`LeaseCompromise`, and
    :attr:`compromise` keeps it. It should stop touching what the lock
    protects; the lease is never silently won back. Not on Windows.
    """

    _fl_lease_options = ("lease_duration", "heartbeat_interval", "on_compromise")

    def __init__(
        self,
        lock_file: PathLike,
        timeout: float = -1,
        mode: int = _UNSET_FILE_MODE,
        thread_local: bool = True,
        *,
        blocking: bool = True,
        is_singleton: bool = False,
        poll_interval: float = 0.05,
        lifetime: float | None = None,
        lease_duration: float = _core.FL_LEASE_DEFAULT_DURATION,
        heartbeat_interval: float | None = None,
        on_compromise: Callable[[LeaseCompromise], None] | None = None,
    ) -> None:
        """
        :param lease_duration: seconds of marker staleness after which a contender may take the
            claim; every contender for the path must pass the same value
        :param heartbeat_interval: seconds between refreshes; default a third of
            ``lease_duration``; must be below it
        :param on_compromise: called from a library thread with a :class:`LeaseCompromise`
            when the claim is lost
        """
        # The lease's fields of the handle's fl_options (BaseFileLock.__init__);
        # the core checks them (ValueError) and defaults the heartbeat.
        self._fl_lease = lease_settings(lease_duration, heartbeat_interval, lock_file)
        if lifetime is not None:  # ignored, with the warning (<- _SingletonMeta.__call__ <- caller)
            resolve_lifetime(lifetime, type(self), stacklevel=4)
        super().__init__(
            lock_file,
            timeout,
            mode,
            thread_local,
            blocking=blocking,
            is_singleton=is_singleton,
            poll_interval=poll_interval,
        )
        self._on_compromise = on_compromise
        self._compromise: LeaseCompromise | None = None
        self._token: str | None = None
        # Watched from the first acquire, not here: a singleton's second
        # object shares the handle and is dropped by _SingletonMeta unused.
        self._watching = False

    @property
    def lease_duration(self) -> float:
        """The staleness in seconds after which a contender may take this claim."""
        return _core.fl_get_lease_duration(self._h)

    @property
    def heartbeat_interval(self) -> float:
        """Seconds between the heartbeat's refreshes."""
        return _core.fl_get_heartbeat_interval(self._h)

    @property
    def token(self) -> str | None:
        """The token naming the claim this process published while held, else None."""
        return self._token

    @property
    def compromise(self) -> LeaseCompromise | None:
        """The loss of the claim, or None while it holds (reset by the next acquire)."""
        return self._compromise

    def force_break(self) -> None:
        """Remove the marker whoever holds it (voids mutual exclusion: operators only)."""
        self.break_lock()

    def _record(self, reason: str, error: OSError | None) -> None:
        if self._compromise is not None:
            return
        self._compromise = LeaseCompromise(self.lock_file, self._token or "", reason, error)  # type: ignore[arg-type]
        if self._on_compromise is not None:
            self._on_compromise(self._compromise)

    def _read_token(self) -> str | None:
        try:
            with open(self.lock_file, encoding="utf-8", errors="replace") as f:
                for line in f.read(4096).splitlines():
                    if line.startswith("token="):
                        return line[6:]
        except OSError:
            pass
        return None

    def acquire(
        self,
        timeout: float | None = None,
        poll_interval: float | None = None,
        *,
        poll_intervall: float | None = None,
        blocking: bool | None = None,
    ) -> AcquireReturnProxy:
        if not self._watching:
            _watchers.setdefault(_core.fl_lock_id(self._h), weakref.WeakSet()).add(self)
            _core.flpy_set_compromise(self._h)
            self._watching = True
        first = not self.is_locked
        if first:
            # Before winning, as the pure package does: the heartbeat runs
            # from the moment the core wins, and a loss it reports before
            # this returns must be kept (and told once), not reset after.
            self._compromise = None
            self._token = None
        proxy = super().acquire(timeout, poll_interval, poll_intervall=poll_intervall, blocking=blocking)
        if first:
            self._token = self._read_token()
        return proxy

    def release(self, force: bool = False) -> None:
        """Release; a claim lost meanwhile is recorded in :attr:`compromise`, never raised."""
        lost = _core.flpy_release_lease(self._h, bool(force))
        if lost is not None:
            reason = next(
                (r for r in ("marker-missing", "owner-changed", "refresh-failed") if f"({r}" in lost),
                "owner-changed",
            )
            self._record(reason, None)
        if not self.is_locked:
            self._token = None

    def __del__(
        self, _force_release: Any = _core.flpy_release_lease, _is_singleton: Any = _core.fl_is_singleton
    ) -> None:
        # As BaseFileLock's (_finalize), with the GIL released for the core.
        try:
            h = self.__dict__.get("_h")
            if h is not None and self.__dict__.get("_watching"):
                watchers = _watchers.get(_core.fl_lock_id(h))
                if watchers is not None:
                    watchers.discard(self)
                    if not watchers:
                        _watchers.pop(_core.fl_lock_id(h), None)
            if h is not None and not _is_singleton(h):
                _force_release(h, True)
        except BaseException:  # noqa: BLE001 - a finalizer must never raise
            pass


__all__ = [
    "CompromiseReason",
    "LeaseCompromise",
    "LeaseSettingsMismatch",
    "SoftFileLease",
    "SoftFileLockLifetimeWarning",
]
