"""Version of the Python package, of the API it implements and of the C core."""

from __future__ import annotations

from . import _filelock_core as _core

#: The release of the pure-Python ``filelock`` package whose API this
#: package implements (names, arguments, behaviour).
api_version: str = "3.14.0"
#: The version of libfilelock compiled into the extension.
core_version: str = _core.fl_version()
#: The package version, as pip and importlib.metadata report it:
#: ``<api_version>.<core_version>``, e.g. ``3.14.0.0.1.0``. Comparisons such
#: as ``Version(filelock.__version__) >= Version("3.12")`` written for the
#: pure-Python package keep working.
__version__: str = f"{api_version}.{core_version}"
version = __version__

__all__ = ["__version__", "version", "api_version", "core_version"]
