"""
A platform-independent file lock with the ``with`` statement, backed by the
C library libfilelock (a drop-in replacement for the pure-Python
``filelock`` package: same names, same behaviour, no polling).

.. code-block:: python

    from filelock import FileLock, Timeout

    lock = FileLock("data.txt.lock", timeout=10)
    with lock:
        ...  # only one process at a time runs this
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from ._api import (
    AcquireReturnProxy,
    BaseFileLock,
    CloseErrorPolicy,
    ContextErrorPolicy,
    LockOptions,
    LockOwner,
    SoftFileLock,
    UnixFileLock,
    WindowsFileLock,
)
from ._descriptor import lock_descriptor, unlock_descriptor
from ._read_write import ReadWriteLock
from ._lease import LeaseCompromise, SoftFileLease
from ._lease_opts import LeaseSettingsMismatch, SoftFileLockLifetimeWarning
from .asyncio import (
    AsyncAcquireReadWriteReturnProxy,
    AsyncAcquireReturnProxy,
    AsyncFileLock,
    AsyncReadWriteLock,
    AsyncSoftFileLease,
    AsyncSoftFileLock,
    AsyncUnixFileLock,
    AsyncWindowsFileLock,
    BaseAsyncFileLock,
)
from ._error import Timeout
from .version import __version__, core_version

if TYPE_CHECKING:
    FileLock = UnixFileLock
elif sys.platform == "win32":  # pragma: no cover - CI runs the Windows core under Wine, not Python
    FileLock = WindowsFileLock
else:
    #: The kernel lock of this platform.
    FileLock = UnixFileLock

__all__ = [
    "__version__",
    "core_version",
    "FileLock",
    "SoftFileLock",
    "Timeout",
    "UnixFileLock",
    "WindowsFileLock",
    "BaseFileLock",
    "AcquireReturnProxy",
    "CloseErrorPolicy",
    "ContextErrorPolicy",
    "LockOptions",
    "LockOwner",
    "ReadWriteLock",
    "lock_descriptor",
    "unlock_descriptor",
    "SoftFileLease",
    "LeaseCompromise",
    "LeaseSettingsMismatch",
    "SoftFileLockLifetimeWarning",
    "AsyncAcquireReadWriteReturnProxy",
    "AsyncAcquireReturnProxy",
    "AsyncFileLock",
    "AsyncReadWriteLock",
    "AsyncSoftFileLease",
    "AsyncSoftFileLock",
    "AsyncUnixFileLock",
    "AsyncWindowsFileLock",
    "BaseAsyncFileLock",
]
