"""Shared fixtures for the Python binding tests.

The tests must exercise OUR package (the build's filelock, found through
PYTHONPATH), never Debian's pure-Python one that /usr/bin/python3 also sees.
"""

from __future__ import annotations

import importlib
import os
import queue
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import filelock

PURE_DIR = "/usr/lib/python3/dist-packages"
HERE = Path(__file__).resolve().parent
SOURCE_DIR = Path(os.environ.get("FL_SOURCE_DIR", HERE.parent.parent))

# Every blocking step in these tests has a hard deadline so a bug fails the
# run instead of hanging it.
DEADLINE = 30.0


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: builds or installs (pip into a venv)")


def pytest_sessionstart(session: pytest.Session) -> None:
    try:
        importlib.import_module("filelock._filelock_core")
    except ImportError as exc:
        raise pytest.UsageError(
            f"imported {filelock.__file__}, not the C-backed package: set PYTHONPATH "
            f"to <build>/bindings/python/pkg ({exc})"
        ) from exc


@pytest.fixture()
def lock_path(tmp_path: Path) -> str:
    return str(tmp_path / "test.lock")


def ours_env() -> dict[str, str]:
    """Environment for a child process that must import our package."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(Path(filelock.__file__).resolve().parent.parent)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def pure_env() -> dict[str, str]:
    """Environment for a child that must import Debian's pure-Python package."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


class Child:
    """A Python child process spoken to line by line, with deadlines."""

    def __init__(self, code: str, *, pure: bool = False) -> None:
        # -I for the pure one: no PYTHONPATH, user site or current
        # directory can bring ours in.
        args = [sys.executable, "-I", "-c", code] if pure else [sys.executable, "-c", code]
        self.proc = subprocess.Popen(
            args,
            env=pure_env() if pure else ours_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def expect(self, prefix: str, timeout: float = DEADLINE) -> str:
        """The child's next line, which must start with *prefix*."""
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            self.kill()
            pytest.fail(f"child gave no line within {timeout}s (wanted {prefix!r}); stderr: {self.stderr()}")
        if line is None or not line.startswith(prefix):
            self.kill()
            pytest.fail(f"child said {line!r}, wanted {prefix!r}; stderr: {self.stderr()}")
        return line

    def send(self, text: str = "go") -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()

    def finish(self, timeout: float = DEADLINE) -> list[str]:
        """Wait for a clean exit; returns the remaining output lines."""
        try:
            if self.proc.stdin:
                self.proc.stdin.close()
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"child did not finish within {timeout}s; stderr: {self.stderr()}")
        self._reader.join(timeout)
        rest = []
        while True:
            line = self.lines.get_nowait() if not self.lines.empty() else None
            if line is None:
                break
            rest.append(line)
        assert self.proc.returncode == 0, f"child exited {self.proc.returncode}: {rest} {self.stderr()}"
        return rest

    def stderr(self) -> str:
        try:
            assert self.proc.stderr is not None
            if self.proc.poll() is None:
                return "(still running)"
            return self.proc.stderr.read()
        except Exception as exc:  # noqa: BLE001 - only for a failure message
            return f"(stderr unavailable: {exc})"

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=DEADLINE)


@pytest.fixture()
def spawn():
    """Factory for Child processes; every one is killed at teardown."""
    children: list[Child] = []

    def make(code: str, *, pure: bool = False) -> Child:
        child = Child(code, pure=pure)
        children.append(child)
        return child

    yield make
    for child in children:
        child.kill()
