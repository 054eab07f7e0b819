#!/bin/sh
# Neovim keeps running while a plugin waits for a lock: under
# `nvim --headless` (Debian's neovim, LuaJIT), lock:acquire_async on the
# editor's loop (vim.uv / vim.loop) waits one second for a lock this process
# holds through another object, while an editor timer (timer_start) keeps
# firing; the blocking acquire would have frozen it for that second.
# Then on_acquired under Neovim: a hook that succeeds runs once per win
# (at once, and after a wait inside the loop's callback); a hook that
# raises, or that calls the editor's API from the loop's callback (E5560:
# not allowed in a fast event), refuses the lock: the callback gets the
# error, the lock is free for another process (flock -n), and the editor
# goes on.
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

cat > "$scratch/hook.lua" <<'LUA'
local dir, scratch = os.getenv("FL_LUA_DIR"), os.getenv("FL_SCRATCH")
package.path = dir .. "/?.lua;" .. package.path
package.cpath = dir .. "/?.so;" .. package.cpath
local filelock = require("filelock")
local path = scratch .. "/h.lock"
local out = assert(io.open(scratch .. "/hook_result", "w"))
local function say(...) out:write(table.concat({ ... }, " "), "\n") out:flush() end
local function free_elsewhere()
  return os.execute("flock -n '" .. path .. "' true") == 0 and "free" or "held"
end
local holder = filelock.FileLock(path, { thread_local = false })
local steps = {}
local function next_step()
  local f = table.remove(steps, 1)
  if f then f() else out:close() vim.cmd("qa!") end
end
-- 1. A hook that succeeds: at once, then after a wait.
local calls = 0
local ok_lock = filelock.FileLock(path, { on_acquired = function(fd) calls = calls + 1 end })
steps[#steps + 1] = function()
  ok_lock:acquire_async({}, function(err, guard)
    vim.schedule(function()
      say("ok-at-once", tostring(err), calls, free_elsewhere())
      guard:release()
      holder:acquire()
      ok_lock:acquire_async({ timeout = 20 }, function(err2, guard2)
        vim.schedule(function()
          say("ok-after-wait", tostring(err2), calls, free_elsewhere())
          guard2:release()
          next_step()
        end)
      end)
      vim.defer_fn(function() holder:release() end, 200)
    end)
  end)
end
-- 2. A hook that raises, after a wait.
steps[#steps + 1] = function()
  local lock = filelock.FileLock(path, { on_acquired = function() error({ why = "refused" }) end })
  holder:acquire()
  lock:acquire_async({ timeout = 20 }, function(err, guard)
    vim.schedule(function()
      say("raise", type(err) == "table" and err.why or tostring(err), tostring(guard), free_elsewhere())
      next_step()
    end)
  end)
  vim.defer_fn(function() holder:release() end, 200)
end
-- 3. A hook that calls the editor from the loop's callback (a fast event).
steps[#steps + 1] = function()
  local lock = filelock.FileLock(path, { on_acquired = function() vim.api.nvim_get_current_line() end })
  holder:acquire()
  lock:acquire_async({ timeout = 20 }, function(err, guard)
    vim.schedule(function()
      say("api", tostring(err):find("E5560", 1, true) and "E5560" or tostring(err), tostring(guard),
        free_elsewhere())
      next_step()
    end)
  end)
  vim.defer_fn(function() holder:release() end, 200)
end
next_step()
LUA
FL_LUA_DIR=$dir FL_SCRATCH=$scratch timeout -s KILL 60 \
    nvim --headless --clean -u NONE -i NONE -c "luafile $scratch/hook.lua" >"$scratch/log" 2>&1 || {
    echo "FAIL: nvim exited with $?: $(cat "$scratch/log")"; exit 1; }
got=$(cat "$scratch/hook_result" 2>/dev/null || true)
echo "nvim on_acquired:"; echo "$got"
want='ok-at-once nil 1 held
ok-after-wait nil 2 held
raise refused nil free
api E5560 nil free'
[ "$got" = "$want" ] || { echo "FAIL: expected:"; echo "$want"; echo "log: $(cat "$scratch/log")"; exit 1; }
