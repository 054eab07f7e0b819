#!/usr/bin/env python3
"""The Python package installs the way pip installs, offline.

  pip_install.py --source DIR --scratch DIR --python PYTHON [--system-site]

1. An sdist is built from a copy of the checkout (`python3 -m build --sdist`,
   Debian's python3-build); it must hold the C core, the SWIG interface and
   LICENSE, and build on its own.
2. In a fresh venv of PYTHON: `pip wheel --no-build-isolation` of that
   sdist with the venv's own setuptools (from the interpreter's ensurepip)
   and `wheel` installed from Debian's /usr/share/python-wheels
   (python3-wheel-whl) -- the documented offline recipe -- then `pip install`
   of the wheel, and the package is used from the venv. (Debian's
   setuptools wheel there is patched for Debian's interpreter and fails on
   others: "AttributeError: install_layout", so it is never used here.)
   --system-site instead makes the venv with Debian's system site-packages
   (Debian's setuptools and python3-wheel), the recipe for /usr/bin/python3.
3. The version resolves as documented: `filelock>=3.14` is satisfied by it,
   `filelock>=3.15` is not.
4. `pip install -e` builds in the copy and leaves its git status clean.

Exit 77 (CTest: skipped) with the reason when PYTHON or a tool is missing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

SKIP = 77
WHEELS = Path("/usr/share/python-wheels")

CHECK = r"""
import importlib.metadata, os, sys
import filelock
venv, path = sys.argv[1], sys.argv[2]
assert filelock.__file__.startswith(venv), (filelock.__file__, venv)
dist = importlib.metadata.distribution("filelock")
assert dist.version == filelock.__version__, (dist.version, filelock.__version__)
assert filelock.__version__ == filelock.version.api_version + "." + filelock.core_version
assert dist.metadata["License"] == "MIT", dist.metadata["License"]
assert any(str(f).endswith("LICENSE") for f in dist.files), "no LICENSE in the dist-info"
a, b = filelock.FileLock(path), filelock.FileLock(path, is_singleton=False)
with a:
    try:
        b.acquire(timeout=0)
        sys.exit("not excluded")
    except filelock.Timeout:
        pass
with filelock.SoftFileLock(path + ".soft") as soft:
    assert soft.owner.pid == os.getpid()
rw = filelock.ReadWriteLock(path + ".rw")
with rw.read_lock():
    assert rw.held_mode == "read"
assert os.path.exists(os.path.join(os.path.dirname(filelock.__file__), "py.typed"))
print("ok", filelock.__version__, filelock.__file__)
"""


def skip(reason: str) -> None:
    print(f"SKIPPED: {reason}")
    sys.exit(SKIP)


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    res = subprocess.run([str(c) for c in cmd], text=True, capture_output=True, timeout=600, **kw)
    if res.returncode != 0:
        sys.exit(f"FAIL ({res.returncode}): {' '.join(str(c) for c in cmd)}\n{res.stdout}\n{res.stderr}")
    return res


def clean_env() -> dict[str, str]:
    env = dict(os.environ)
    for k in ("PYTHONPATH", "PYTHONHOME", "PIP_FIND_LINKS", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL"):
        env.pop(k, None)
    env["PIP_NO_INDEX"] = "1"  # offline: never ask an index
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def copy_checkout(source: Path, dest: Path) -> None:
    """Tracked and untracked-but-not-ignored files, as git sees them."""
    files = subprocess.run(
        ["git", "-C", str(source), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True, check=True,
    ).stdout.decode().split("\0")
    for name in filter(None, files):
        src = source / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--source", type=Path, required=True, help="the checkout")
    ap.add_argument("--scratch", type=Path, required=True, help="a directory to work in (emptied)")
    ap.add_argument("--python", required=True, help="the interpreter to install for")
    ap.add_argument("--system-site", action="store_true",
                    help="build in a venv with the system site-packages (Debian's setuptools, wheel)")
    args = ap.parse_args()

    python = shutil.which(args.python)
    if not python:
        skip(f"no interpreter {args.python!r}")
    for tool in ("swig", "git", "cc"):
        if not shutil.which(tool):
            skip(f"{tool} not found")
    if subprocess.run(["/usr/bin/python3", "-c", "import build"], capture_output=True, cwd="/").returncode:
        skip("Debian's python3-build is not installed (python3 -m build makes the sdist)")
    if not list(WHEELS.glob("wheel-*.whl")):
        skip(f"no wheel-*.whl in {WHEELS} (Debian: python3-wheel-whl)")

    scratch = args.scratch.resolve()
    shutil.rmtree(scratch, ignore_errors=True)
    src = scratch / "src"
    src.mkdir(parents=True)
    copy_checkout(args.source.resolve(), src)
    env = clean_env()

    # 1. sdist
    dist = scratch / "dist"
    run(["/usr/bin/python3", "-m", "build", "--sdist", "--no-isolation", "--outdir", dist,
         src / "bindings" / "python"], cwd=scratch, env=env)
    (sdist,) = dist.glob("filelock-*.tar.gz")
    with tarfile.open(sdist) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
        pkg_info = tar.extractfile(f"{sdist.name[:-len('.tar.gz')]}/PKG-INFO").read().decode()
    for need in ("csrc/core/include/filelock.h", "csrc/core/src/lock.c", "csrc/swig/python.i",
                 "csrc/swig/filelock.i", "LICENSE", "setup.py", "pyproject.toml", "filelock/_api.py"):
        if need not in names:
            sys.exit(f"FAIL: {need} missing from {sdist.name}: {sorted(names)}")
    version = sdist.name[len("filelock-"):-len(".tar.gz")]
    if f"Version: {version}" not in pkg_info or "License: MIT" not in pkg_info:
        sys.exit(f"FAIL: PKG-INFO lacks the version or the licence:\n{pkg_info}")
    print(f"sdist {sdist.name}: {len(names)} files, builds from its own copy of the C sources")

    # 2. venv, wheel from the sdist, install
    def build_venv(path: Path, system_site: bool) -> Path:
        run([python, "-m", "venv", *(["--system-site-packages"] if system_site else []), path],
            cwd=scratch, env=env)
        vpy = path / "bin" / "python"
        if not system_site:
            run([vpy, "-m", "pip", "install", "--find-links", WHEELS, "wheel"], cwd=scratch, env=env)
        return vpy

    vpy = build_venv(scratch / "venv", args.system_site)
    venv = scratch / "venv"
    wheelhouse = scratch / "wheelhouse"
    build = ["--no-build-isolation"]
    run([vpy, "-m", "pip", "wheel", "--no-deps", *build, "-w", wheelhouse, sdist], cwd=scratch, env=env)
    (wheel,) = wheelhouse.glob("filelock-*.whl")
    run([vpy, "-m", "pip", "install", wheel], cwd=scratch, env=env)
    out = run([vpy, "-c", CHECK, venv, scratch / "x.lock"], cwd=scratch, env=env).stdout
    print(f"{wheel.name}: {out.strip()}")

    # 3. What a dependent's requirement resolves to
    run([vpy, "-m", "pip", "install", "filelock>=3.14"], cwd=scratch, env=env)
    run([vpy, "-m", "pip", "install", "filelock>=3.10,<4"], cwd=scratch, env=env)
    newer = subprocess.run([str(vpy), "-m", "pip", "install", "filelock>=3.15"], cwd=scratch,
                           env=env, capture_output=True, text=True, timeout=300)
    if newer.returncode == 0:
        sys.exit(f"FAIL: filelock>=3.15 was satisfied by {version}")
    print(f"filelock>=3.14 and >=3.10,<4 resolve to {version}; >=3.15 does not")

    # 4. Editable install leaves the checkout's git status clean
    run(["git", "init", "-q"], cwd=src)
    run(["git", "add", "-A"], cwd=src)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "copy"], cwd=src)
    # A venv without system site-packages: setuptools' editable finder comes
    # after sys.path, so Debian's own filelock there would win.
    epy = build_venv(scratch / "venv-editable", False)
    run([epy, "-m", "pip", "install", *build, "-e", src / "bindings" / "python"], cwd=scratch, env=env)
    out = run([epy, "-c", "import filelock; print(filelock.__file__)"], cwd=scratch, env=env).stdout
    if not out.strip().startswith(str(src)):
        sys.exit(f"FAIL: the editable install imports {out.strip()}, not the copy in {src}")
    status = run(["git", "status", "--porcelain"], cwd=src).stdout
    if status.strip():
        sys.exit(f"FAIL: pip install -e left files git does not ignore:\n{status}")
    print("pip install -e: imports from the tree, git status clean")
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
