"""
Builds the `filelock` package with its SWIG extension compiled together with
the C core's sources, so that a wheel is self-contained (no libfilelock.so
needed at run time). The sources are taken from the repository this
directory lives in (../../core, ../../swig); `swig` must be installed.

    python3 -m pip install --no-build-isolation ./bindings/python
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
CORE = ROOT / "core"
SWIG_DIR = ROOT / "swig"


def core_version() -> str:
    header = (CORE / "include" / "filelock.h").read_text()
    parts = [re.search(rf"#define FL_VERSION_{p} (\d+)", header) for p in ("MAJOR", "MINOR", "PATCH")]
    if not all(parts):
        raise RuntimeError("cannot read the version from core/include/filelock.h")
    return ".".join(m.group(1) for m in parts)  # type: ignore[union-attr]


def core_sources() -> list[str]:
    # The common sources plus the POSIX backend (the only one so far).
    srcs = sorted(str(p) for p in (CORE / "src").glob("*.c"))
    return [s for s in srcs if not s.endswith(("win32.c", "windows.c"))]


class BuildSwigExt(build_ext):
    """Runs SWIG on swig/python.i into the build directory, then compiles
    the wrapper with the core's sources."""

    def run(self) -> None:
        swig = shutil.which("swig") or shutil.which("swig4.0")
        if not swig:
            raise RuntimeError("swig is required to build filelock (apt-get install swig)")
        out_dir = Path(self.build_temp) / "swig"
        out_dir.mkdir(parents=True, exist_ok=True)
        wrapper = out_dir / "filelock_python_wrap.c"
        subprocess.check_call(
            [swig, "-python", "-noproxy", "-Wall", f"-I{CORE / 'include'}", f"-I{SWIG_DIR}",
             "-o", str(wrapper), str(SWIG_DIR / "python.i")]
        )
        for ext in self.extensions:
            # Objects of sources outside this directory would be written
            # outside build_temp: copy the core's sources in first.
            src_copy = Path(self.build_temp) / "core-src"
            src_copy.mkdir(parents=True, exist_ok=True)
            copied = []
            for src in core_sources():
                dst = src_copy / Path(src).name
                shutil.copyfile(src, dst)
                copied.append(str(dst))
            ext.sources = [str(wrapper), *copied]
        super().run()


ext = Extension(
    "filelock._filelock_core",
    sources=[],  # filled in by BuildSwigExt
    include_dirs=[str(CORE / "include"), str(CORE / "src")],
    # The compiler's default (GNU) dialect exposes POSIX for the core and
    # agrees with what Python.h defines for the wrapper.
    define_macros=[("FL_BUILDING_DLL", "1")],
    extra_compile_args=["-fvisibility=hidden"],
    libraries=["pthread", "m"],
)

setup(
    version=core_version(),
    packages=["filelock"],
    package_data={"filelock": ["py.typed"]},
    ext_modules=[ext],
    cmdclass={"build_ext": BuildSwigExt},
    zip_safe=False,
)
