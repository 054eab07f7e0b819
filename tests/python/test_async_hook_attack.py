"""Hostile on_acquired hooks of asyncio waits: the hook runs inside the
core's wait hub (fl_hub_acquire for a win at once, fl_hub_dispatch after a
wait) and calls back into it -- cancels or ends the very wait being won,
another wait, starts or releases other holds, nests the loop, raises
BaseExceptions, forks. Each runs in its own process (hook_attack_child.py):
it must not crash or hang, and the lock must end up held by exactly whom
the API says (checked with flock(1) from another process) or free."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import DEADLINE, ours_env

CHILD = Path(__file__).resolve().parent / "hook_attack_child.py"

# scenario -> what the waiting task gets (the RESULT line's first word)
EXPECTED = {
    "cancel_own": "CancelledError",
    # The coroutine ended under its task: asyncio reports that (the task
    # steps a closed coroutine; in "once" mode the coroutine is running
    # and close() raises ValueError in the hook, which refuses the lock).
    "close_own": None,
    "close_own_drop": None,
    "cancel_other": "won",
    "close_other": "won",
    "create_task": "won",
    "step_acquire_same": "won",
    "step_acquire_other": "won",
    "sync_timeout0": "won",
    "sync_forever": "won",
    "release_other_hold": "won",
    "release_self": "won",
    "keyboard_interrupt": "loop",
    "system_exit": "loop",
    "run_until_complete": "won",
    "asyncio_run": "won",
    "fork": "won",
}

pytestmark = pytest.mark.skipif(
    sys.platform == "win32" or not shutil.which("flock"), reason="needs flock(1) and a POSIX hub"
)


@pytest.mark.parametrize("when", ["dispatch", "once"])
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_hostile_hook(tmp_path: Path, name: str, when: str) -> None:
    path = str(tmp_path / "attack.lock")
    proc = subprocess.run(
        [sys.executable, str(CHILD), name, path, when],
        env=ours_env(),
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        check=False,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"rc {proc.returncode}: {out}"
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert lines, out
    got = lines[-1].split()[1:]
    want = EXPECTED[name]
    if want is not None:
        assert got[0] == want, out
    if name == "cancel_own" or name.startswith("close_own"):
        assert got[0] != "won", out
    if name == "sync_timeout0":
        assert "sync='Timeout'" in lines[-1], out
    if name == "sync_forever":
        assert "deadlock" in lines[-1], out
    if name in ("run_until_complete", "asyncio_run"):
        assert "nested=" in lines[-1], out
    if name == "fork":
        assert "child=0" in lines[-1], out
    if name in ("cancel_other", "close_other"):
        other = "other_task=" if when == "dispatch" else "parked="
        assert any(w.startswith(other) and not w.endswith("=won") for w in got), out
    if name in ("create_task", "step_acquire_other"):
        # The hook's own new waits went through once the hub was free.
        assert any(w in ("spawned=won", "other_lock=held") for w in got), out
    # The child exited 10 if anything of it still held the file; check
    # again from here now that it is gone.
    assert subprocess.run(["flock", "-n", path, "true"], check=False).returncode == 0
