"""Version of the Python package and of the C core it wraps."""

from __future__ import annotations

from . import _filelock_core as _core

#: The package version; it follows the C core's version.
__version__: str = _core.fl_version()
version = __version__
#: The version of libfilelock compiled into the extension.
core_version: str = _core.fl_version()

__all__ = ["__version__", "version", "core_version"]
