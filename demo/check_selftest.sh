#!/usr/bin/env bash
# Shows that demo/check.sh can fail: it must accept an intact file and
# reject each kind of damage an unlocked read-modify-write produces.
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
T=its-over-anakin-i-have-the-high-ground
fails=0

line() { printf '%s %s %s/%s/%s\n' "$1" "$2" "$1" "$2" "$T"; }
good() { # a b interleaved, 1..3 each
    line a 1; line b 1; line a 2; line b 2; line b 3; line a 3
}

expect_result() { # <want: pass|fail> <name>   (content on stdin)
    local want=$1 name=$2 got
    cat >"$tmp/$name"
    if bash "$here/check.sh" "$tmp/$name" "a:3 b:3" >"$tmp/$name.out" 2>&1; then
        got=pass
    else
        got=fail
    fi
    if [[ $got == "$want" ]]; then
        echo "ok   $name ($got)"
    else
        echo "FAIL $name: expected $want, got $got"
        sed 's/^/     /' "$tmp/$name.out"
        fails=$((fails + 1))
    fi
}

good | expect_result pass intact
good | sed '3d' | expect_result fail lost_line
good | sed '$d' | expect_result fail lost_last_line
{ line a 1; line b 1; line a 3; line b 2; line b 3; line a 2; } | expect_result fail reordered
{ good; line a 3; } | expect_result fail duplicated
{ good; line a 4; } | expect_result fail extra_line
{ line a 1; line b 1; printf 'a 2 a/2/its-over-anab 2 b/2/%s\n' "$T"; line b 3; line a 3; } |
    expect_result fail torn_line
good | sed 's|a/2/|a/3/|' | expect_result fail wrong_payload
{ good; line z 1; } | expect_result fail foreign_writer
{ good | head -c -1; } | expect_result fail no_final_newline
{ line a 1; line b 1; printf '\000\000\000\n'; line a 2; line b 2; line b 3; line a 3; } |
    expect_result fail nul_bytes
printf '' | expect_result fail empty_file

if [[ $fails -ne 0 ]]; then
    echo "$fails checker self-test case(s) failed"
    exit 1
fi
echo "checker self-test: all cases behaved"
