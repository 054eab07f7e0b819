#!/usr/bin/env bash
# demo/check.sh <file> "<tag>:<count> <tag>:<count> ..."
#
# Verifies a demo output file (see demo/README.md for the line format):
# nothing torn, lost, repeated or reordered, and exact per-writer counts.
# Prints the problems and a one-line summary; exits 0 only if the file is
# intact.
set -u
if [[ $# -ne 2 ]]; then
    echo "usage: check.sh <file> \"<tag>:<count> ...\"" >&2
    exit 2
fi
file=$1
expect=$2
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
status=0

if [[ ! -f $file ]]; then
    echo "   problem: $file does not exist"
    exit 1
fi
# A NUL byte means two writers left a hole; awk implementations differ on
# NULs, so look for them here.
if [[ $(tr -d -c '\000' <"$file" | wc -c) -ne 0 ]]; then
    echo "   problem: $file contains NUL bytes (a write landed past the end)"
    status=1
fi
# The last line must be complete: awk would silently accept it otherwise.
if [[ -s $file && $(tail -c 1 "$file" | od -An -c | tr -d ' ') != '\n' ]]; then
    echo "   problem: the last line of $file has no newline (torn)"
    status=1
fi
tr -d '\000' <"$file" | awk -v expect="$expect" -f "$here/check.awk" || status=1
exit $status
