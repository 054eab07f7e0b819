#!/usr/bin/env bash
# A Neovim plugin loads the module, under `nvim --headless` (Debian's neovim
# runs LuaJIT, so the module is built for Lua 5.1 with
# `luarocks --lua-version 5.1 make`), in the two documented ways:
#   shipped:  <plugin>/lua/filelock.lua + <plugin>/lua/filelock/core.so, the
#             plugin on 'runtimepath' (Neovim's require() searches lua/ there)
#   rock tree: package.path/package.cpath extended with the tree's
#             share/lua/5.1 and lib/lua/5.1 (e.g. a `--local` tree)
# and takes a lock that util-linux flock(1) in another process respects.
#
#   nvim_plugin.sh SOURCE SCRATCH
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/common.sh"
source=$1 scratch=$2
for tool in nvim luarocks flock cmake swig cc git; do
    command -v "$tool" >/dev/null || { echo "SKIPPED: $tool not found"; exit 77; }
done
[ -f "$(luarocks --lua-version 5.1 config variables.LUA_INCDIR 2>/dev/null)/lua.h" ] ||
    { echo "SKIPPED: no Lua 5.1 headers for luarocks (Debian: liblua5.1-0-dev)"; exit 77; }

rm -rf "$scratch"
fl_copy_source "$source" "$scratch/src"
tree=$scratch/tree
(cd "$scratch/src" && timeout -s KILL 500 luarocks --lua-version 5.1 make --tree "$tree") \
    >"$scratch/make.log" 2>&1 || fail "luarocks make: $(tail -40 "$scratch/make.log")"

plugin=$scratch/plugin
mkdir -p "$plugin/lua/filelock"
cp "$tree/share/lua/5.1/filelock.lua" "$plugin/lua/"
cp "$tree/lib/lua/5.1/filelock/core.so" "$plugin/lua/filelock/"

cat >"$scratch/check.lua" <<'LUA'
-- Run by nvim: take the lock, prove flock(1) is excluded while it is held.
local lockfile, out = _G.FL_LOCKFILE, _G.FL_OUT
local filelock = require("filelock")
local function flock_n()
    vim.fn.system({ "flock", "-n", lockfile, "true" })
    return vim.v.shell_error
end
local lock = filelock.FileLock(lockfile, { timeout = 1 })
local held = lock:with(flock_n)
local free = flock_n()
-- Where the two halves really came from: the Lua file's chunk name, and
-- the shared object as mapped into this process.
local lua_file = debug.getinfo(filelock.is_timeout, "S").source:gsub("^@", "")
local so_file = "?"
for line in io.lines("/proc/self/maps") do
    local p = line:match("(/%S*filelock/core%.so)$")
    if p then so_file = p end
end
local f = assert(io.open(out, "w"))
f:write(string.format("%s held=%d free=%d lua=%s\n%s\n%s\n", filelock.version, held, free,
    jit and jit.version or _VERSION, lua_file, so_file))
f:close()
LUA

run_nvim() { # name, directory the module must come from, then --cmd setup lines
    local name=$1 from=$2 result=$scratch/$1.out
    shift 2
    rm -f "$result"
    HOME=$scratch/home XDG_CONFIG_HOME=$scratch/xdg XDG_DATA_HOME=$scratch/xdg-data \
    timeout -s KILL 60 nvim --headless --clean -u NONE -i NONE "$@" \
        --cmd "lua FL_LOCKFILE = '$scratch/$name.lock'; FL_OUT = '$result'" \
        -c "lua local ok, err = pcall(dofile, '$scratch/check.lua') if not ok then io.stderr:write(tostring(err) .. '\n') vim.cmd('cquit') end" \
        -c 'qa!' </dev/null >"$scratch/$name.log" 2>&1 ||
        fail "nvim ($name): $(cat "$scratch/$name.log")"
    [ -f "$result" ] || fail "nvim ($name) wrote no result: $(cat "$scratch/$name.log")"
    local got lua_file so_file
    got=$(sed -n 1p "$result") lua_file=$(sed -n 2p "$result") so_file=$(sed -n 3p "$result")
    echo "nvim, $name: $got; $lua_file; $so_file"
    case $got in *" held=1 free=0 "*) ;; *) fail "nvim ($name): flock(1) not excluded while held: $got" ;; esac
    case $lua_file in "$from"/*) ;; *) fail "nvim ($name): filelock.lua loaded from $lua_file, not $from" ;; esac
    case $so_file in "$from"/*) ;; *) fail "nvim ($name): filelock/core.so loaded from $so_file, not $from" ;; esac
}

run_nvim shipped "$plugin" --cmd "set runtimepath^=$plugin"
run_nvim rock-tree "$tree" --cmd "lua package.path = '$tree/share/lua/5.1/?.lua;' .. package.path; package.cpath = '$tree/lib/lua/5.1/?.so;' .. package.cpath"
echo OK
