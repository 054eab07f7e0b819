-- Issue 17's proof, Neovim: run by test_proof.py as
--   nvim --headless --clean -u NONE -i NONE -c "luafile proof_nvim.lua"
-- with FL_LUA_DIR (filelock.lua and filelock/core.so for LuaJIT), FL_LOCK,
-- FL_KIND (kernel|soft), FL_TIMEOUT (seconds), FL_READY (created once the
-- wait has started) and FL_OUT (the result) in the environment.
--
-- An editor timer (timer_start, 10 ms) records each firing with uv.hrtime()
-- (CLOCK_MONOTONIC ns) while lock:acquire_async waits on the editor's loop;
-- the driver checks that the firings cover the whole wait. The result:
--   start <ns> / end <ns> / result won|timeout|error <message> / ticks <ns>...
local dir = os.getenv("FL_LUA_DIR")
package.path = dir .. "/?.lua;" .. package.path
package.cpath = dir .. "/?.so;" .. package.cpath
local filelock = require("filelock")
local uv = vim.uv or vim.loop

local out = assert(io.open(os.getenv("FL_OUT"), "w"))
local function ns(t)
    return string.format("%.0f", t)
end
local ticks = {}
local timer = vim.fn.timer_start(10, function()
    ticks[#ticks + 1] = uv.hrtime()
end, { ["repeat"] = -1 })
local cls = os.getenv("FL_KIND") == "soft" and filelock.SoftFileLock or filelock.FileLock
local t_start = uv.hrtime()
cls(os.getenv("FL_LOCK")):acquire_async({ timeout = tonumber(os.getenv("FL_TIMEOUT")) },
    function(err, guard)
        local t_end = uv.hrtime()
        vim.schedule(function()
            vim.fn.timer_stop(timer)
            out:write("start ", ns(t_start), "\n", "end ", ns(t_end), "\n")
            if guard then
                out:write("result won\n")
                guard:release()
            elseif filelock.is_timeout(err) then
                out:write("result timeout\n")
            else
                out:write("result error ", tostring(err), "\n")
            end
            local s = {}
            for i = 1, #ticks do
                s[i] = ns(ticks[i])
            end
            out:write("ticks ", table.concat(s, " "), "\n")
            out:close()
            vim.cmd("qa!")
        end)
    end)
local ready = assert(io.open(os.getenv("FL_READY"), "w"))
ready:close()
