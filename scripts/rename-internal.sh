#!/usr/bin/env bash
# Renames the internal identifiers __fl_* / __FL_* to fl__* / FL__*.
#
# Why: identifiers that begin with two underscores are reserved for the C
# implementation (C99 7.1.3); fl__ is the libuv-style internal prefix.
# The rename is purely textual, so the same script can be run on any branch
# before it is merged (it is idempotent: a second run changes nothing).
#
# Usage: bash scripts/rename-internal.sh [repository root, default: this checkout]
set -euo pipefail
root=${1:-$(git -C "$(dirname "$0")" rev-parse --show-toplevel)}
cd "$root"
self=scripts/rename-internal.sh
# Every tracked file that mentions the old prefix, except this script.
mapfile -t files < <(git grep -lE '(^|[^A-Za-z0-9_])__(fl|FL)_' -- . ":!$self" || true)
if [ "${#files[@]}" -eq 0 ]; then
    echo "rename-internal: nothing to rename"
    exit 0
fi
sed -i -E 's/(^|[^A-Za-z0-9_])__fl_/\1fl__/g; s/(^|[^A-Za-z0-9_])__FL_/\1FL__/g' "${files[@]}"
printf 'rename-internal: %s\n' "${files[@]}"
# The new prefix is one character shorter, so continuation lines aligned
# under a renamed call move: re-format the C files that changed.
mapfile -t cfiles < <(printf '%s\n' "${files[@]}" | grep -E '\.(c|h)$' || true)
if [ "${#cfiles[@]}" -gt 0 ]; then
    if command -v clang-format >/dev/null; then
        clang-format -i "${cfiles[@]}"
    else
        echo "rename-internal: clang-format not found; run it on the C files above" >&2
    fi
fi
