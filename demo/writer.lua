-- The demo's Lua writer: appends <count> lines to <file> under the lock file
-- <lockfile>, one read-modify-write per line (same protocol as writer.c).
--
--   lua writer.lua <file> <lockfile> <count> <tag> [--soft] [--no-lock]
--
-- Each line is "<tag> <seq> <tag>/<seq>/<text>" for seq = 1..count. The
-- update is fragile on purpose: read the whole file, pause, write it back in
-- two pieces with another pause between them. Two writers inside that window
-- lose a line or tear one; only the lock keeps the file intact. Runs on Lua
-- 5.1-5.4 and LuaJIT with `filelock` on package.path/cpath.

local filelock = require("filelock")

local TEXT = "its-over-anakin-i-have-the-high-ground"

local function usage()
    io.stderr:write("usage: writer.lua <file> <lockfile> <count> <tag> [--soft] [--no-lock]\n")
    os.exit(2)
end

-- Lua has no sleep; use LuaSocket's when installed, else spin on the CPU
-- clock (the pauses are well under a millisecond or a few milliseconds).
local sleep
do
    local ok, socket = pcall(require, "socket")
    if ok and type(socket) == "table" and socket.sleep then
        sleep = socket.sleep
    else
        sleep = function(seconds)
            local stop = os.clock() + seconds
            repeat until os.clock() >= stop
        end
    end
end

local file, lockfile, count_arg, tag = arg[1], arg[2], arg[3], arg[4]
if not tag then
    usage()
end
local count = tonumber(count_arg)
if not count or count < 0 or count > 1000000 or count % 1 ~= 0 or tag == ""
    or tag:find("[ /\n]") then
    usage()
end
local soft, nolock = false, false
for i = 5, #arg do
    if arg[i] == "--soft" then
        soft = true
    elseif arg[i] == "--no-lock" then
        nolock = true
    else
        usage()
    end
end

local function fail(msg)
    io.stderr:write("writer.lua ", tag, ": ", tostring(msg), "\n")
    os.exit(1)
end

-- One read-modify-write: the critical section.
local function append(line)
    local f = io.open(file, "r+b") or io.open(file, "w+b")
    if not f then
        fail("cannot open " .. file)
    end
    local old = f:read("*a") or ""
    local new = old .. line
    sleep(0.0005)
    local cut = #new - math.floor(#line / 2) -- in the middle of the new line
    f:seek("set", 0)
    f:write(new:sub(1, cut))
    f:flush()
    sleep(0.0002)
    f:write(new:sub(cut + 1))
    f:close()
end

-- A demo must end: give up (and fail) after 30 s instead of hanging.
local ok, lock = pcall(soft and filelock.SoftFileLock or filelock.FileLock, lockfile,
    { timeout = 30 })
if not ok then
    fail(lock)
end

math.randomseed(os.time() + math.floor(os.clock() * 1e6) + #tag)
for seq = 1, count do
    local line = string.format("%s %d %s/%d/%s\n", tag, seq, tag, seq, TEXT)
    if nolock then
        append(line)
    else
        local done, err = pcall(lock.with, lock, append, line)
        if not done then
            fail(err)
        end
    end
    -- Outside the lock, so that the writers take turns.
    sleep(0.001 + math.random() * 0.003)
end
