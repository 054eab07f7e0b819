-- Uncontended cost of the Lua binding, per iteration (measured, never asserted).
--
--   LUA_CPATH='<build>/bindings/lua/5.4/?.so;;' LUA_PATH='<build>/bindings/lua/5.4/?.lua;;' \
--       lua5.4 bench/bench_lua.lua [iterations] [lock dir]
--
-- Prints one line per case: microseconds per iteration (median of 5 runs).
-- Wall time comes from LuaSocket's gettime when installed, else CPU time
-- (os.clock), which is what an uncontended loop spends anyway.

local filelock = require("filelock")

local N = tonumber(arg[1]) or 100000
local dir = arg[2] or os.getenv("TMPDIR") or "/tmp"
local path = dir .. "/fl-bench-lua-" .. tostring(os.time()) .. ".lock"

local clock, clock_name = os.clock, "cpu"
do
    local ok, socket = pcall(require, "socket")
    if ok and type(socket) == "table" and socket.gettime then
        clock, clock_name = socket.gettime, "wall"
    end
end

local function median(t)
    table.sort(t)
    return t[math.ceil(#t / 2)]
end

local function bench(name, n, body)
    body(math.min(n, 1000)) -- warm up (JIT, first open of the lock file)
    local runs = {}
    for r = 1, 5 do
        local t0 = clock()
        body(n)
        runs[r] = (clock() - t0) / n * 1e6
    end
    print(string.format("%-42s %9.3f us/iter", name, median(runs)))
end

print(string.format("%s, filelock %s, %d iterations, %s clock", _VERSION,
    filelock.version, N, clock_name))

local function noop() end
local lock = filelock.FileLock(path)
local soft = filelock.SoftFileLock(path .. ".soft")

bench("empty loop calling noop()", N, function(n)
    for _ = 1, n do noop() end
end)
bench("FileLock lock:with(fn)", N, function(n)
    for _ = 1, n do lock:with(noop) end
end)
bench("FileLock acquire() + release()", N, function(n)
    for _ = 1, n do
        lock:acquire()
        lock:release()
    end
end)
bench("FileLock with(fn), already held", N, function(n)
    lock:acquire()
    for _ = 1, n do lock:with(noop) end
    lock:release()
end)
bench("SoftFileLock lock:with(fn)", math.max(1, math.floor(N / 10)), function(n)
    for _ = 1, n do soft:with(noop) end
end)

-- Owner inspection: reads the marker (soft) or scans /proc/locks (kernel),
-- so it is priced per call; it is not on any acquire path.
soft:acquire()
bench("SoftFileLock lock:owner()", math.max(1, math.floor(N / 10)), function(n)
    for _ = 1, n do soft:owner() end
end)
soft:release()
lock:acquire()
bench("FileLock lock:owner() (/proc/locks)", math.max(1, math.floor(N / 100)), function(n)
    for _ = 1, n do lock:owner() end
end)
lock:release()

-- ReadWriteLock: each first-level acquire also passes the writers' gate
-- (one more open+flock+unlock+close on "<path>.gate").
local rw = filelock.ReadWriteLock(path .. ".rw")
bench("ReadWriteLock read(fn)", N, function(n)
    for _ = 1, n do rw:read(noop) end
end)
bench("ReadWriteLock acquire_read() + release()", N, function(n)
    for _ = 1, n do
        rw:acquire_read()
        rw:release()
    end
end)
bench("ReadWriteLock write(fn)", N, function(n)
    for _ = 1, n do rw:write(noop) end
end)
bench("ReadWriteLock read(fn), already read", N, function(n)
    rw:acquire_read()
    for _ = 1, n do rw:read(noop) end
    rw:release()
end)

os.remove(path)
os.remove(path .. ".rw")
os.remove(path .. ".rw.gate")
