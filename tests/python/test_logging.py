"""Logging through logging.getLogger("filelock") at DEBUG, bridged from the core."""

from __future__ import annotations

import logging
import re

import pytest

from filelock import FileLock, SoftFileLock, Timeout, _filelock_core

ID = r"\d+"


def messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "filelock"]


def test_logger_level_left_unset() -> None:
    assert logging.getLogger("filelock").level == logging.NOTSET


@pytest.mark.parametrize("cls", [FileLock, SoftFileLock])
def test_acquire_release_messages(cls, caplog: pytest.LogCaptureFixture, lock_path: str) -> None:
    caplog.set_level(logging.DEBUG, logger="filelock")
    lock = cls(lock_path)
    with lock:
        pass
    got = messages(caplog)
    expected = [
        f"Attempting to acquire lock {ID} on {re.escape(lock_path)}",
        f"Lock {ID} acquired on {re.escape(lock_path)}",
        f"Attempting to release lock {ID} on {re.escape(lock_path)}",
        f"Lock {ID} released on {re.escape(lock_path)}",
    ]
    assert len(got) == 4, got
    for pattern, msg in zip(expected, got):
        assert re.fullmatch(pattern, msg), (pattern, msg)
    assert all(r.levelno == logging.DEBUG for r in caplog.records if r.name == "filelock")
    # One id per lock object, in every message.
    assert len({re.search(ID, m).group() for m in got}) == 1


def test_failed_and_timeout_messages(caplog: pytest.LogCaptureFixture, lock_path: str) -> None:
    caplog.set_level(logging.DEBUG, logger="filelock")
    holder, other = FileLock(lock_path), FileLock(lock_path)
    with holder:
        caplog.clear()
        with pytest.raises(Timeout):
            other.acquire(blocking=False)
        assert any(re.fullmatch(f"Failed to immediately acquire lock {ID} on .*", m) for m in messages(caplog))
        caplog.clear()
        with pytest.raises(Timeout):
            other.acquire(timeout=0.05, poll_interval=0.02)
        got = messages(caplog)
        assert any(
            re.fullmatch(f"Lock {ID} not acquired on {re.escape(lock_path)}, waiting 0.02 seconds ...", m)
            for m in got
        ), got
        assert any(re.fullmatch(f"Timeout on acquiring lock {ID} on .*", m) for m in got), got


def test_nothing_when_debug_off(caplog: pytest.LogCaptureFixture, lock_path: str) -> None:
    caplog.set_level(logging.INFO, logger="filelock")
    lock = FileLock(lock_path)
    with lock:
        pass
    assert messages(caplog) == []
    # The core has no handler installed: it formats nothing.
    assert _filelock_core.flpy_logging_enabled() == 0


def test_bridge_follows_level_changes(caplog: pytest.LogCaptureFixture, lock_path: str) -> None:
    lock = FileLock(lock_path)
    caplog.set_level(logging.DEBUG, logger="filelock")
    with lock:
        pass
    assert _filelock_core.flpy_logging_enabled() == 1
    caplog.set_level(logging.WARNING, logger="filelock")
    caplog.clear()
    with lock:
        pass
    assert messages(caplog) == []
    assert _filelock_core.flpy_logging_enabled() == 0


def test_broken_handler_does_not_break_locking(lock_path: str) -> None:
    class Boom(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            raise RuntimeError("handler failure")

    logger = logging.getLogger("filelock")
    handler = Boom()
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    old_raise = logging.raiseExceptions
    logging.raiseExceptions = False
    try:
        lock = FileLock(lock_path)
        with lock:
            assert lock.is_locked
        assert not lock.is_locked
    finally:
        logging.raiseExceptions = old_raise
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)
        with FileLock(lock_path):  # resync the bridge to "off"
            pass
