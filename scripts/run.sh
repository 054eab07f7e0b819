#!/usr/bin/env bash
# The README's Quick start: on Debian 12, install what is missing, build, and
#   bash scripts/run.sh demo   run the demo (writers in every language under one lock)
#   bash scripts/run.sh test   run every test suite: the normal build (C, Python, Ruby, Lua,
#                              CLI, demo, cross-language), then the C suites under ASan+UBSan,
#                              TSan and valgrind, on the generic POSIX backend, then the
#                              Windows lane (mingw-w64 + Wine)
# Environment: FL_BUILD_DIR (default ./build), FL_PYTHON_EXECUTABLE (default /usr/bin/python3),
# FL_SKIP_INSTALL=1 to never call apt-get, FL_QUICK=1 to skip the sanitizer/valgrind lanes.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${FL_BUILD_DIR:-$root/build}
python=${FL_PYTHON_EXECUTABLE:-/usr/bin/python3}
jobs=$(nproc 2>/dev/null || echo 2)

# Everything the build and the tests use, from Debian's archive only.
packages=(
  build-essential cmake pkg-config check swig clang libclang-rt-14-dev valgrind util-linux
  python3 python3-dev python3-pytest python3-filelock python3-venv python3-pip python3-setuptools
  python3-wheel
  ruby ruby-dev ruby-async
  lua5.4 liblua5.4-dev lua5.3 liblua5.3-dev lua5.1 liblua5.1-0-dev luajit libluajit-5.1-dev
  lua-busted luarocks lua-luv
  git doxygen neovim python3-build python3-wheel-whl python3-matplotlib python3-tabulate
  bats bats-support bats-assert
  glusterfs-server glusterfs-client iproute2
  bindfs fuse3
)

install_deps() {
  local missing=() p
  for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "${FL_SKIP_INSTALL:-0}" = 1 ]; then
    echo "run.sh: missing Debian packages (FL_SKIP_INSTALL=1, not installing): ${missing[*]}" >&2
    return 0
  fi
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null; then sudo="sudo"; else
      echo "run.sh: these Debian packages are missing and I am not root (no sudo):" >&2
      echo "  apt-get install -y ${missing[*]}" >&2
      exit 1
    fi
  fi
  echo "run.sh: installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

configure_and_build() { # dir [cmake args...]
  local dir=$1; shift
  cmake -S "$root" -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DFL_PYTHON_EXECUTABLE="$python" "$@" >/dev/null
  cmake --build "$dir" -j"$jobs"
}

# Some tests drop to the user 'nobody' (root ignores permission bits), and
# that user must be able to read the sources and the build. A checkout under
# /root is not readable: then build and test from a copy in /tmp.
if [ "$(id -u)" -eq 0 ] && command -v setpriv >/dev/null &&
   ! setpriv --reuid=65534 --regid=65534 --clear-groups test -r "$root/CMakeLists.txt" 2>/dev/null; then
  copy=$(mktemp -d /tmp/filelock-src.XXXXXX)
  chmod 755 "$copy"
  tar -C "$root" --exclude='./build*' -cf - . | tar -C "$copy" -xf -
  echo "run.sh: $root is not readable by unprivileged users; working in a copy, $copy"
  [ -n "${FL_BUILD_DIR:-}" ] || build=$copy/build
  root=$copy
fi

c_only=(-DFL_PYTHON=OFF -DFL_RUBY=OFF -DFL_LUA=OFF -DFL_CLI=OFF -DFL_BUILD_BENCH=OFF)

case "${1:-}" in
demo)
  install_deps
  configure_and_build "$build"
  bash "$root/demo/run.sh" "$build"
  ;;
test)
  install_deps
  configure_and_build "$build"
  echo "== all suites (normal build) =="
  ctest --test-dir "$build" --output-on-failure -j"$jobs"
  if [ "${FL_QUICK:-0}" != 1 ]; then
    echo "== C suites under ASan+UBSan =="
    configure_and_build "$build-asan" -DFL_SANITIZE=address "${c_only[@]}"
    # In parallel like the other lanes (c.waits is RUN_SERIAL): 450 s -> 224 s
    # on 2 cores; the suites were stress-run under a load of 6-22.
    ctest --test-dir "$build-asan" --output-on-failure -j"$jobs" -L '^c$'
    echo "== C suites under TSan =="
    configure_and_build "$build-tsan" -DFL_SANITIZE=thread "${c_only[@]}"
    ctest --test-dir "$build-tsan" --output-on-failure -j"$jobs" -L '^c$'
    echo "== C suites under valgrind memcheck =="
    configure_and_build "$build-valgrind" -DFL_VALGRIND=ON "${c_only[@]}"
    ctest --test-dir "$build-valgrind" --output-on-failure -L valgrind
    echo "== C suites on the generic POSIX backend (-DFL_GENERIC_POSIX=ON: no inotify, pidfd, /proc) =="
    # What macOS and the BSDs build (core/src/generic.c), forced on Linux.
    # Tests of Linux-only features say "skipped ... (generic POSIX build)".
    # c.interleave and c.interleave_lease are left to the other lanes: ~3 min
    # and ~1 min on 2 cores, and their soft-lock interleavings run the same
    # posix.c/soft.c/lease.c code here.
    configure_and_build "$build-generic" -DFL_GENERIC_POSIX=ON "${c_only[@]}"
    ctest --test-dir "$build-generic" --output-on-failure -j"$jobs" -L '^c$' -E '^c[.]interleave(_lease)?$'
    echo "== Windows lane: mingw-w64 build, Check suites under Wine =="
    bash "$root/scripts/windows-lane.sh" "$build-windows"
  fi
  ;;
*)
  echo "usage: bash scripts/run.sh demo|test" >&2
  exit 64
  ;;
esac
