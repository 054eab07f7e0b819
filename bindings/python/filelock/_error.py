"""The exception raised when a lock is not won in time."""

from __future__ import annotations

from typing import Any


class Timeout(TimeoutError):
    """Raised when the lock could not be acquired within *timeout* seconds."""

    def __init__(self, lock_file: str) -> None:
        # args stays empty, as in the pure-Python package.
        super().__init__()
        self._lock_file = lock_file

    def __reduce__(self) -> tuple[Any, ...]:
        # The path rebuilds the exception; the instance dict carries what was
        # added to it (add_note's __notes__, attributes set by handlers), which
        # copy, deepcopy and pickle would otherwise drop.
        return self.__class__, (self._lock_file,), self.__dict__ or None

    def __str__(self) -> str:
        return f"The file lock '{self._lock_file}' could not be acquired."

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.lock_file!r})"

    @property
    def lock_file(self) -> str:
        """The path of the lock file."""
        return self._lock_file


__all__ = ["Timeout"]
