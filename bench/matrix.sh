#!/usr/bin/env bash
# The benchmark matrix of issue 7, in one command:
#
#   bash bench/matrix.sh <build-dir> [--quick] [--out DIR] [--parts LIST]
#
# Compares, in one run, libfilelock from C, Python, Ruby and Lua with
# Debian's pure-Python filelock and the bare flock system calls:
# uncontended cost, wake-up latency, CPU while waiting, contention,
# construction, reentrant acquire and the read/write lock. Prints the
# tables and writes matrix.tsv, matrix.txt, matrix.md and matrix.png to
# DIR (default <build-dir>/bench-matrix). About 2-3 minutes; --quick is
# a smoke run of well under a minute. Never run as a test: timings are not
# pass/fail material on a shared machine.
#
# Needs: a configured and built tree (cmake -S . -B <build-dir> && cmake
# --build <build-dir>), a C compiler, /usr/bin/python3; optional: ruby,
# lua5.4 with lua-system (Debian: lua-system), python3-filelock (the pure
# package compared against), gnuplot (Debian: gnuplot-nox) for the chart.
set -euo pipefail

usage() {
    sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'
}

if [[ $# -lt 1 || "$1" == "-h" || "$1" == "--help" ]]; then
    usage
    [[ $# -ge 1 ]] && exit 0 || exit 2
fi

build=$(cd "$1" && pwd)
shift
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
src=$(dirname "$here")
out="$build/bench-matrix"
extra=()
while [[ $# -gt 0 ]]; do
    case "$1" in
    --out) out=$2; shift 2 ;;
    --out=*) out=${1#--out=}; shift ;;
    --quick) extra+=(--quick); shift ;;
    --parts) extra+=(--parts "$2"); shift 2 ;;
    --parts=*) extra+=("$1"); shift ;;
    *) echo "matrix.sh: unknown option '$1'" >&2; usage >&2; exit 2 ;;
    esac
done

for f in "$build/core/libfilelock.so" "$build/bench/fl_bench" \
    "$build/bindings/python/pkg/filelock/__init__.py"; do
    if [[ ! -e "$f" ]]; then
        echo "matrix.sh: $f is missing: build first (cmake --build $build)" >&2
        exit 2
    fi
done

# The C worker, linked with the build's shared library (as users link it).
# Built here rather than by CMake so the matrix stays out of the build.
mkdir -p "$out"
cc=${CC:-cc}
mx_c="$out/mx_c"
if [[ ! -x "$mx_c" || "$here/matrix/mx_c.c" -nt "$mx_c" || "$build/core/libfilelock.so" -nt "$mx_c" ]]; then
    "$cc" -std=c99 -O2 -Wall -Wextra -Werror -I"$src/core/include" \
        "$here/matrix/mx_c.c" -o "$mx_c" -L"$build/core" -lfilelock -Wl,-rpath,"$build/core"
fi

exec /usr/bin/python3 "$here/matrix/matrix.py" --build "$build" --mx-c "$mx_c" --out "$out" "${extra[@]}"
