-- Cross-language torture worker, Lua edition (same protocol as worker.c).
--
--   lua worker.lua hold <lockfile> <counter> <log> <count> <min_us> <max_us> <kind> <timeout>
--   lua worker.lua cycles <lockfile> <n> <kind>
--
-- Lua has no monotonic clock of its own (os.clock is CPU time, os.time has
-- 1 s steps). The hold intervals are compared with those of the other
-- languages, so the worker needs CLOCK_MONOTONIC itself: it takes it from
-- lua-system (`system.monotime()`, clock_gettime(CLOCK_MONOTONIC), shipped
-- with busted as Debian's lua-system), which also gives a real sleep. The
-- driver checks this clock against Python's time.monotonic_ns() before use.

local filelock = require("filelock")
local system = require("system")

local function mono_ns()
    return string.format("%.0f", system.monotime() * 1e9)
end

local function lock_class(kind)
    return kind == "soft" and filelock.SoftFileLock or filelock.FileLock
end

local function fail(msg)
    io.stderr:write("worker.lua: ", tostring(msg), "\n")
    os.exit(1)
end

local function hold(lockfile, counter, log, count, min_us, max_us, kind, timeout)
    count, min_us, max_us = tonumber(count), tonumber(min_us), tonumber(max_us)
    local lock = lock_class(kind)(lockfile, { timeout = tonumber(timeout) })
    local logf = assert(io.open(log, "ab")) -- fopen "a": O_APPEND
    logf:setvbuf("no") -- one write(2) per line: survives SIGKILL
    math.randomseed(math.floor(system.monotime() * 1e6) % 2147483647)
    local function section()
        local t0 = mono_ns()
        local f = assert(io.open(counter, "r+b"))
        local value = tonumber(f:read(21))
        if not value then
            fail("bad counter")
        end
        logf:write(string.format("S %s %d\n", t0, value))
        system.sleep(math.random(min_us, max_us) / 1e6)
        f:seek("set", 0)
        f:write(string.format("%020d\n", value + 1))
        f:close()
        logf:write(string.format("E %s\n", mono_ns()))
    end
    local i = 0
    while count == 0 or i < count do
        i = i + 1
        local ok, err = pcall(lock.with, lock, section)
        if not ok then
            fail(err)
        end
        system.sleep(math.random(0, 500) / 1e6)
    end
    logf:close()
end

-- Counting descriptors without a directory API: probe each number with
-- /proc/self/fdinfo/<n>, which exists exactly for the open descriptors.
local function fd_count()
    local n = 0
    for fd = 0, 1023 do
        local f = io.open("/proc/self/fdinfo/" .. fd, "r")
        if f then
            n = n + 1
            f:close()
        end
    end
    return n
end

local function rss_kb()
    for line in io.lines("/proc/self/status") do
        local kb = line:match("^VmRSS:%s+(%d+)")
        if kb then
            return tonumber(kb)
        end
    end
    return -1
end

local function cycles(path, n, kind)
    n = tonumber(n)
    local cls = lock_class(kind)
    local lock = cls(path, { timeout = 10 })
    local slock = filelock.SoftFileLock(path .. ".soft", { timeout = 10 })
    local noop = function() end
    local warm = math.floor(n / 10)
    local fd_warm, rss_warm = 0, 0
    for i = 0, n - 1 do
        if i == warm then
            collectgarbage()
            collectgarbage()
            fd_warm, rss_warm = fd_count(), rss_kb()
        end
        lock:with(noop)
        if i % 10 == 0 then
            cls(path, { timeout = 10 }):with(noop)
            slock:with(noop)
        end
    end
    collectgarbage()
    collectgarbage()
    print(string.format("RES %d %d %d %d", fd_warm, fd_count(), rss_warm, rss_kb()))
end

if arg[1] == "hold" and #arg == 9 then
    hold(arg[2], arg[3], arg[4], arg[5], arg[6], arg[7], arg[8], arg[9])
elseif arg[1] == "cycles" and #arg == 4 then
    cycles(arg[2], arg[3], arg[4])
else
    io.stderr:write("usage: worker.lua hold <lockfile> <counter> <log> <count> <min_us> <max_us> <kind> <timeout>\n")
    io.stderr:write("       worker.lua cycles <lockfile> <n> <kind>\n")
    os.exit(2)
end
