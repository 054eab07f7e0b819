"""The exception raised when a lock is not won in time."""

from __future__ import annotations

from typing import Any


class Timeout(TimeoutError):
    """Raised when the lock could not be acquired within *timeout* seconds."""

    def __init__(self, lock_file: str) -> None:
        # args carries the path so that the default pickling and copying
        # protocols rebuild the exception (TimeoutError's own __init__ would
        # otherwise leave args empty).
        super().__init__(lock_file)
        #: The path of the lock file.
        self.lock_file = lock_file

    def __reduce__(self) -> tuple[Any, ...]:
        return self.__class__, (self.lock_file,)

    def __str__(self) -> str:
        return f"The file lock '{self.lock_file}' could not be acquired."

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.lock_file!r})"


__all__ = ["Timeout"]
