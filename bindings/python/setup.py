"""
Builds the `filelock` package with its SWIG extension compiled together with
the C core's sources, so that a wheel is self-contained (no libfilelock.so
needed at run time). Build requirements: setuptools >= 61 (and `wheel` where
setuptools < 70.1 asks for it), swig >= 4, a C compiler and the
interpreter's headers. See README.md, "Installing with pip".

Where the C sources come from: in a checkout, ../../core, ../../swig and
../../LICENSE are copied into csrc/ and LICENSE here (both git-ignored) on
every run; an sdist carries those copies, so it builds on its own.

`python3 setup.py --fl-version` prints the package version (used by CMake).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
CSRC = HERE / "csrc"
CHECKOUT = HERE.parent.parent


def _in_checkout() -> bool:
    return (CHECKOUT / "core" / "include" / "filelock.h").is_file() and (
        CHECKOUT / "swig" / "python.i"
    ).is_file()


def sync_from_checkout() -> None:
    """Refresh csrc/ and LICENSE from the checkout this directory lives in.

    Files are copied, not linked: an sdist must hold real files."""
    if not _in_checkout():
        if not (CSRC / "core" / "include" / "filelock.h").is_file():
            raise SystemExit(
                f"filelock: no C sources: neither {CSRC} (an sdist) nor a checkout at {CHECKOUT}"
            )
        return
    if CSRC.exists():
        shutil.rmtree(CSRC)
    (CSRC / "core" / "include").mkdir(parents=True)
    (CSRC / "core" / "src").mkdir(parents=True)
    (CSRC / "swig").mkdir(parents=True)
    shutil.copyfile(CHECKOUT / "core" / "include" / "filelock.h", CSRC / "core" / "include" / "filelock.h")
    for src in sorted((CHECKOUT / "core" / "src").iterdir()):
        if src.suffix in (".c", ".h"):
            shutil.copyfile(src, CSRC / "core" / "src" / src.name)
    for src in sorted((CHECKOUT / "swig").glob("*.i")):
        shutil.copyfile(src, CSRC / "swig" / src.name)
    shutil.copyfile(CHECKOUT / "LICENSE", HERE / "LICENSE")


def core_version() -> str:
    root = CHECKOUT if _in_checkout() else CSRC
    header = (root / "core" / "include" / "filelock.h").read_text()
    parts = [re.search(rf"#define FL_VERSION_{p} (\d+)", header) for p in ("MAJOR", "MINOR", "PATCH")]
    if not all(parts):
        raise SystemExit("filelock: cannot read the version from filelock.h")
    return ".".join(m.group(1) for m in parts)  # type: ignore[union-attr]


def api_version() -> str:
    text = (HERE / "filelock" / "version.py").read_text()
    m = re.search(r'^api_version(?:: str)? = "(\d+\.\d+\.\d+)"$', text, re.M)
    if not m:
        raise SystemExit("filelock: cannot read api_version from filelock/version.py")
    return m.group(1)


def package_version() -> str:
    # <pure-Python filelock release whose API we implement>.<libfilelock
    # release>, e.g. 3.14.0.0.1.0: `filelock>=3.14` picks this package, and
    # `filelock>=3.15` (an API we do not have yet) does not. filelock/version.py
    # computes the same string at run time.
    return f"{api_version()}.{core_version()}"


if __name__ == "__main__" and sys.argv[1:] == ["--fl-version"]:
    print(package_version())
    sys.exit(0)

from setuptools import Extension, setup  # noqa: E402
from setuptools.command.build_ext import build_ext  # noqa: E402


def core_sources() -> list[Path]:
    # The common sources plus the POSIX backend (win32.c is for Windows) and
    # its platform half, as core/CMakeLists.txt picks it: linux.c and
    # fsprobe.c on Linux, generic.c elsewhere (both define the fl__plat_*).
    skip = {"win32.c"} | ({"generic.c"} if sys.platform.startswith("linux") else {"linux.c", "fsprobe.c"})
    return sorted(p for p in (CSRC / "core" / "src").glob("*.c") if p.name not in skip)


def _from_cwd(path: Path) -> str:
    """The path relative to the current directory when it lies below it:
    setuptools' editable build lists extension sources in SOURCES.txt and
    refuses absolute paths there (seen when the tree is outside /work)."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


class BuildSwigExt(build_ext):
    """Runs SWIG on swig/python.i into the build directory, then compiles
    the wrapper with the core's sources."""

    def run(self) -> None:
        swig = shutil.which("swig") or shutil.which("swig4.0")
        if not swig:
            raise SystemExit("filelock: swig >= 4 is required to build (Debian: apt-get install swig)")
        out_dir = Path(self.build_temp) / "swig"
        out_dir.mkdir(parents=True, exist_ok=True)
        wrapper = out_dir / "filelock_python_wrap.c"
        subprocess.check_call(
            [swig, "-python", "-noproxy", "-Wall",
             f"-I{CSRC / 'core' / 'include'}", f"-I{CSRC / 'swig'}",
             "-o", str(wrapper), str(CSRC / "swig" / "python.i")]
        )
        for ext in self.extensions:
            # Absolute paths: the objects still land inside build_temp
            # (distutils re-roots them there), whatever the current directory.
            ext.sources = [str(wrapper.resolve()), *(_from_cwd(p) for p in core_sources())]
        super().run()


sync_from_checkout()

ext = Extension(
    "filelock._filelock_core",
    sources=[],  # filled in by BuildSwigExt
    include_dirs=[str(CSRC / "core" / "include"), str(CSRC / "core" / "src")],
    # The compiler's default (GNU) dialect exposes POSIX for the core and
    # agrees with what Python.h defines for the wrapper.
    define_macros=[("FL_BUILDING_DLL", "1")],
    extra_compile_args=["-fvisibility=hidden"],
    libraries=["pthread", "m"],
)

setup(
    version=package_version(),
    packages=["filelock"],
    package_data={"filelock": ["py.typed"]},
    ext_modules=[ext],
    cmdclass={"build_ext": BuildSwigExt},
    zip_safe=False,
)
