#!/bin/sh
# Neovim keeps running while a plugin waits for a lock: under
# `nvim --headless` (Debian's neovim, LuaJIT), lock:acquire_async on the
# editor's loop (vim.uv / vim.loop) waits one second for a lock this process
# holds through another object, while an editor timer (timer_start) keeps
# firing; the blocking acquire would have frozen it for that second.
#   nvim_async.sh <directory with filelock.lua and filelock/core.so for LuaJIT>
set -eu
dir=$1
command -v nvim >/dev/null || { echo "SKIPPED: nvim is not installed"; exit 77; }
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
cat > "$scratch/test.lua" <<'LUA'
local dir, scratch = os.getenv("FL_LUA_DIR"), os.getenv("FL_SCRATCH")
package.path = dir .. "/?.lua;" .. package.path
package.cpath = dir .. "/?.so;" .. package.cpath
local filelock = require("filelock")
local path = scratch .. "/x.lock"
local out = assert(io.open(scratch .. "/result", "w"))
local holder = filelock.FileLock(path, { thread_local = false })
holder:acquire()
local ticks = 0
local timer = vim.fn.timer_start(10, function() ticks = ticks + 1 end, { ["repeat"] = -1 })
local waited_from = ticks
filelock.FileLock(path):acquire_async({ timeout = 20 }, function(err, guard)
  vim.schedule(function()
    vim.fn.timer_stop(timer)
    if err then
      out:write("error ", tostring(err), "\n")
    else
      out:write("won ticks=", ticks - waited_from, "\n")
      guard:release()
    end
    out:close()
    vim.cmd("qa!")
  end)
end)
vim.defer_fn(function() holder:release() end, 1000)
LUA
FL_LUA_DIR=$dir FL_SCRATCH=$scratch timeout -s KILL 60 \
    nvim --headless --clean -u NONE -i NONE -c "luafile $scratch/test.lua" >"$scratch/log" 2>&1 || {
    echo "FAIL: nvim exited with $?: $(cat "$scratch/log")"; exit 1; }
[ -f "$scratch/result" ] || { echo "FAIL: no result: $(cat "$scratch/log")"; exit 1; }
got=$(cat "$scratch/result")
echo "nvim: $got"
case $got in
won\ ticks=*) ticks=${got#won ticks=} ;;
*) echo "FAIL: $got"; exit 1 ;;
esac
# About 100 ticks fit in the one-second wait; a frozen editor gets none.
[ "$ticks" -ge 20 ] || { echo "FAIL: the editor timer fired only $ticks times during the wait"; exit 1; }
