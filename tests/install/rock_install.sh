#!/usr/bin/env bash
# The rock, the documented way: at the root of (a copy of) the checkout,
#   luarocks lint filelock-<v>.rockspec
#   luarocks --lua-version V make --tree TREE        (no rockspec argument)
# installs filelock.lua and filelock/core.so (module `filelock.core`, the
# core linked in statically) into TREE, and Lua V uses them through
# `luarocks path`.
#
#   rock_install.sh SOURCE SCRATCH LUA_VERSION
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/common.sh"
source=$1 scratch=$2 v=$3
lua=lua$v
for tool in luarocks "$lua" cmake swig cc git; do
    command -v "$tool" >/dev/null || { echo "SKIPPED: $tool not found"; exit 77; }
done
incdir=$(luarocks --lua-version "$v" config variables.LUA_INCDIR 2>/dev/null || true)
if [ ! -f "$incdir/lua.h" ]; then
    echo "SKIPPED: no Lua $v headers for luarocks (Debian: liblua5.4-dev, liblua5.1-0-dev)"
    exit 77
fi

rm -rf "$scratch"
fl_copy_source "$source" "$scratch/src"
tree=$scratch/tree
cd "$scratch/src"
rockspecs=(*.rockspec)
[ ${#rockspecs[@]} -eq 1 ] || fail "expected one rockspec at the root, found: ${rockspecs[*]}"
luarocks lint "${rockspecs[0]}" || fail "luarocks lint ${rockspecs[0]}"
# One version source: the rockspec's upstream version is the header's.
version=$(sed -n 's/^#define FL_VERSION_\(MAJOR\|MINOR\|PATCH\) \([0-9]*\)$/\2/p' \
    core/include/filelock.h | paste -sd.)
case ${rockspecs[0]} in "filelock-$version-"*.rockspec) ;; *) fail "${rockspecs[0]} is not version $version (core/include/filelock.h)" ;; esac
grep -q "^version = \"$version-[0-9]*\"" "${rockspecs[0]}" || fail "version field of ${rockspecs[0]} is not $version-N"
echo "luarocks lint ${rockspecs[0]}: clean"
timeout -s KILL 500 luarocks --lua-version "$v" make --tree "$tree" >"$scratch/make.log" 2>&1 ||
    fail "luarocks make: $(tail -40 "$scratch/make.log")"
for f in "lib/lua/$v/filelock/core.so" "share/lua/$v/filelock.lua"; do
    [ -f "$tree/$f" ] || fail "no $f in the tree: $(cd "$tree" && find . -type f)"
done
luarocks --lua-version "$v" --tree "$tree" list | grep -q '^filelock$' || fail "luarocks list lacks filelock"
if ldd "$tree/lib/lua/$v/filelock/core.so" | grep -q libfilelock; then
    fail "the rock's module needs libfilelock.so"
fi

cd "$scratch"
unset LUA_PATH LUA_CPATH LUA_INIT "LUA_PATH_${v/./_}" "LUA_CPATH_${v/./_}" || true
eval "$(luarocks --lua-version "$v" --tree "$tree" path)"
cat >"$scratch/use.lua" <<'LUA'
local filelock = require("filelock")
local lock = filelock.FileLock(arg[1], { timeout = 0 })
local other = filelock.FileLock(arg[1], { timeout = 0 })
local inner = lock:with(function()
    local ok, err = pcall(other.acquire, other)
    return (not ok and filelock.is_timeout(err)) and "excluded" or "NOT EXCLUDED"
end)
print(inner, package.loaded["filelock.core"] and "filelock.core" or "no filelock.core", filelock.version)
LUA
out=$("$lua" "$scratch/use.lua" "$scratch/x.lock")
echo "lua$v: $out"
case $out in excluded$'\t'filelock.core$'\t'[0-9]*.[0-9]*.[0-9]*) ;; *) fail "unexpected: $out" ;; esac
echo OK
