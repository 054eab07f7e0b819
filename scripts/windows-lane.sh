#!/usr/bin/env bash
# The Windows lane: cross-builds filelock.dll and the Windows suites with
# mingw-w64 and runs them under Wine.
#
#   bash scripts/windows-lane.sh <build-dir>
#
# 1. Installs what is missing (gcc-mingw-w64-x86-64, wine, wine64, dpkg-dev)
#    with apt-get; without root/sudo, or with FL_SKIP_INSTALL=1, it prints
#    "SKIPPED: <reason>" and exits 0 instead.
# 2. Builds Check for the mingw target from Debian's source package
#    (apt-get source, with a deb-src list used for that one step only, in a
#    private apt state directory: /etc/apt is not touched) into
#    <build-dir>/check-mingw. Skipped when already there.
# 3. Cross-builds the library (cmake/mingw-w64-x86_64.cmake), installs it
#    into <build-dir>/prefix, builds tests/windows against it.
# 4. Runs the suites under Wine (private WINEPREFIX, WINEDEBUG=-all) through
#    ctest, every program with a hard timeout. Exits non-zero on failure.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${1:-}
if [ -z "$build" ]; then
  echo "usage: bash scripts/windows-lane.sh <build-dir>" >&2
  exit 64
fi
mkdir -p "$build"
build=$(cd "$build" && pwd)
jobs=$(nproc 2>/dev/null || echo 2)
triplet=x86_64-w64-mingw32
check_prefix=$build/check-mingw

skip() {
  echo "SKIPPED: $*"
  exit 0
}

# ---------------------------------------------------------------- tools --
packages=(gcc-mingw-w64-x86-64 wine wine64 dpkg-dev cmake)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "${FL_SKIP_INSTALL:-0}" = 1 ]; then
    skip "missing Debian packages ${missing[*]} (FL_SKIP_INSTALL=1; install them with apt-get install -y ${missing[*]})"
  fi
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || skip "missing Debian packages ${missing[*]} and not root (no sudo)"
    sudo="sudo -n"
  fi
  echo "windows-lane: installing ${missing[*]}"
  if ! { $sudo apt-get update -qq &&
         DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
           "${missing[@]}"; }; then
    skip "could not install ${missing[*]} with apt-get"
  fi
fi
command -v "$triplet-gcc-posix" >/dev/null || command -v "$triplet-gcc" >/dev/null ||
  skip "no $triplet-gcc after installing gcc-mingw-w64-x86-64"
wine=$(command -v wine || command -v wine64 || true)
[ -n "$wine" ] || skip "no wine program after installing wine"

# ------------------------------------------------------ Check for mingw --
if [ ! -f "$check_prefix/lib/libcheck.a" ]; then
  echo "windows-lane: building Check for $triplet from Debian's source package"
  src=$build/check-src
  rm -rf "$src"
  mkdir -p "$src/lists/partial"
  # The deb-src entry lives only in this private list, for this one step.
  suite=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
  echo "deb-src http://deb.debian.org/debian $suite main" >"$src/sources.list"
  apt_src=(-o "Dir::Etc::SourceList=$src/sources.list" -o "Dir::Etc::SourceParts=/nonexistent"
           -o "Dir::State::Lists=$src/lists" -o "APT::Sandbox::User=root")
  if ! (cd "$src" && apt-get "${apt_src[@]}" update -qq &&
        apt-get "${apt_src[@]}" source --download-only check >/dev/null 2>&1); then
    skip "cannot download Debian's source package of check (deb-src unreachable)"
  fi
  (cd "$src" && dpkg-source -x check_*.dsc check >/dev/null)
  (cd "$src/check" &&
    ./configure --host="$triplet" --prefix="$check_prefix" --disable-shared --enable-static \
      --disable-subunit --enable-timeout-tests=no >"$src/configure.log" 2>&1 &&
    make -j"$jobs" -C lib >"$src/make.log" 2>&1 &&
    make -j"$jobs" -C src >>"$src/make.log" 2>&1 &&
    make -C src install >>"$src/make.log" 2>&1) ||
    { echo "windows-lane: building Check failed; see $src/*.log" >&2; exit 1; }
  install -m 644 "$src/check/check_stdint.h" "$check_prefix/include/"
  # Check formats its messages with its own C99 vsnprintf (rpl_vsnprintf), so
  # its printf-like API is gnu_printf, not mingw's default ms_printf (which
  # rejects %jd and would fail -Werror in every test file).
  sed -i 's/__attribute__ ((format (a, b, c)))/__attribute__ ((format (gnu_printf, b, c)))/' \
    "$check_prefix/include/check.h"
  rm -rf "$src"
fi

# ---------------------------------------------------------------- build --
echo "windows-lane: cross-building filelock.dll"
cmake -S "$root" -B "$build/lib" -DCMAKE_TOOLCHAIN_FILE="$root/cmake/mingw-w64-x86_64.cmake" \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFL_BUILD_TESTS=OFF -DFL_BUILD_BENCH=OFF \
  -DFL_PYTHON=OFF -DFL_RUBY=OFF -DFL_LUA=OFF -DFL_CLI=OFF >/dev/null
cmake --build "$build/lib" -j"$jobs"
cmake --install "$build/lib" --prefix "$build/prefix" >/dev/null

echo "windows-lane: cross-building the Windows suites"
cmake -S "$root/tests/windows" -B "$build/tests" \
  -DCMAKE_TOOLCHAIN_FILE="$root/cmake/mingw-w64-x86_64.cmake" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -Dfilelock_DIR="$build/prefix/lib/cmake/filelock" -DFL_CHECK_PREFIX="$check_prefix" >/dev/null
cmake --build "$build/tests" -j"$jobs"

# ------------------------------------------------------------------ run --
export WINEPREFIX=$build/wineprefix WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml="
export FL_WIN_WATCHDOG=300
if [ ! -f "$WINEPREFIX/system.reg" ]; then
  echo "windows-lane: creating the Wine prefix (first start takes a while)"
  timeout 300 "$wine" wineboot -i >/dev/null 2>&1 || skip "Wine could not create its prefix"
fi
echo "windows-lane: running the Windows suites under Wine ($("$wine" --version 2>/dev/null))"
rc=0
ctest --test-dir "$build/tests" --output-on-failure --timeout 400 || rc=$?
# Leave no wineserver behind for the next step of the caller.
timeout 30 wineserver -k >/dev/null 2>&1 || true
exit $rc
