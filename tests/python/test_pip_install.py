"""`pip install ./bindings/python` builds a self-contained package (offline,
with Debian's setuptools) into a virtualenv, and it works there."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import SOURCE_DIR, pure_env

pytestmark = pytest.mark.slow

CHECK = r"""
import os, sys, filelock
assert filelock.__file__.startswith(sys.prefix), (filelock.__file__, sys.prefix)
import filelock._filelock_core as core
assert filelock.__version__ == core.fl_version()
path = sys.argv[1]
a, b = filelock.FileLock(path), filelock.FileLock(path)
with a:
    try:
        b.acquire(timeout=0)
    except filelock.Timeout:
        print("excluded")
with filelock.SoftFileLock(path + ".soft") as soft:
    assert soft.owner.pid == os.getpid()
rw = filelock.ReadWriteLock(path + ".rw")
with rw.read_lock():
    assert rw.held_mode == "read"
assert os.path.exists(os.path.join(os.path.dirname(filelock.__file__), "py.typed"))
print("ok", filelock.__file__)
"""


def test_pip_install_into_venv(tmp_path: Path) -> None:
    if shutil.which("swig") is None and shutil.which("swig4.0") is None:
        pytest.fail("swig is needed to build the package")
    # Build from a copy: pip builds in tree and would leave build/ and
    # *.egg-info in the source directory.
    src = tmp_path / "src"
    ignore = shutil.ignore_patterns("build", "*.egg-info", "__pycache__")
    shutil.copytree(SOURCE_DIR / "core", src / "core", ignore=ignore)
    shutil.copytree(SOURCE_DIR / "swig", src / "swig", ignore=ignore)
    shutil.copytree(SOURCE_DIR / "bindings" / "python", src / "bindings" / "python", ignore=ignore)

    venv = tmp_path / "venv"
    env = pure_env()  # no PYTHONPATH: the venv must find only what pip put there
    subprocess.run(
        [sys.executable, "-m", "venv", "--system-site-packages", str(venv)],
        check=True, env=env, timeout=300,
    )
    py = venv / "bin" / "python"
    install = subprocess.run(
        [str(py), "-m", "pip", "install", "--no-build-isolation", "--no-index",
         "--disable-pip-version-check", str(src / "bindings" / "python")],
        env=env, capture_output=True, text=True, timeout=600,
    )
    assert install.returncode == 0, install.stdout + install.stderr

    run = subprocess.run(
        [str(py), "-c", CHECK, str(tmp_path / "x.lock")],
        env=env, capture_output=True, text=True, timeout=120, cwd=str(tmp_path),
    )
    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    assert lines[0] == "excluded"
    assert lines[1].startswith(f"ok {venv}")
