-- The Lua worker of the benchmark matrix (bench/matrix.sh):
--
--   LUA_CPATH=<build>/bindings/lua/5.4/?.so LUA_PATH=<build>/bindings/lua/5.4/?.lua \
--       lua5.4 lua_worker.lua serve DIR
--   ... lua_worker.lua contend CASE LOCK DATA ITERS
--
-- Same line protocol as mx_c.c (see matrix.py). The clock is lua-system's
-- monotime() (CLOCK_MONOTONIC); Lua's standard library has none, and no
-- flock either, so there is no "bare flock from Lua" floor.

local filelock = require("filelock")
local system = require("system")

local mono = system.monotime
local CTR_LEN = 20

local function out(text)
    io.stdout:write(text, "\n")
    io.stdout:flush()
end

local function noop() end

local function serve(dir)
    local lock = filelock.FileLock(dir .. "/lua.lock")
    local reent = filelock.FileLock(dir .. "/lua_reent.lock")
    local soft = filelock.SoftFileLock(dir .. "/lua_soft.lock")
    local rw = filelock.ReadWriteLock(dir .. "/lua_rw.lock")
    local new_path = dir .. "/lua_new.lock"
    local FileLock = filelock.FileLock
    local cases = {
        with = function(n)
            for _ = 1, n do lock:with(noop) end
        end,
        acq_rel = function(n)
            for _ = 1, n do
                lock:acquire()
                lock:release()
            end
        end,
        soft = function(n)
            for _ = 1, n do soft:with(noop) end
        end,
        reentrant = function(n)
            for _ = 1, n do reent:with(noop) end
        end,
        construct = function(n)
            for _ = 1, n do FileLock(new_path) end
        end,
        rw_read = function(n)
            for _ = 1, n do
                rw:acquire_read()
                rw:release()
            end
        end,
    }
    out(string.format("ready %s filelock %s", _VERSION, filelock.version))
    for line in io.stdin:lines() do
        if line:sub(1, 4) == "quit" then break end
        local name, n = line:match("^(%S+)%s+(%d+)")
        local fn = assert(cases[name], "unknown case " .. tostring(name))
        n = tonumber(n)
        if name == "reentrant" then reent:acquire() end
        local t = mono()
        fn(n)
        t = mono() - t
        if name == "reentrant" then reent:release() end
        out(string.format("%d", math.floor(t * 1e9 + 0.5)))
    end
end

local function contend(kase, path, data_path, iters)
    local data = assert(io.open(data_path, "r+b"))
    data:setvbuf("no")
    local lock = (kase == "soft" and filelock.SoftFileLock or filelock.FileLock)(path)
    local opts = { timeout = kase == "timed" and 60 or -1 }
    local waits, seq = {}, {}
    local fmt = "%0" .. CTR_LEN .. "d"
    out("ready")
    io.stdin:read("l")
    for i = 1, iters do
        local t0 = mono()
        lock:acquire(opts)
        waits[i] = string.format("%.1f", (mono() - t0) * 1e6)
        data:seek("set", 0)
        local v = tonumber(data:read(CTR_LEN))
        seq[i] = string.format("%d", v)
        data:seek("set", 0)
        data:write(string.format(fmt, v + 1))
        lock:release()
    end
    out("done")
    out("waits " .. table.concat(waits, " "))
    out("seq " .. table.concat(seq, " "))
end

local mode = arg[1]
if mode == "serve" then
    serve(arg[2])
elseif mode == "contend" then
    contend(arg[2], arg[3], arg[4], tonumber(arg[5]))
else
    error("lua_worker: unknown mode " .. tostring(mode))
end
