-- Shared helpers of the Lua test suite (not a spec: busted runs *_spec.lua).
--
-- The suite runs under every Lua CTest finds (lua_<v>), with the
-- environment set by bindings/lua/CMakeLists.txt:
--   FL_LUA_EXE     the interpreter running the suite (children use it too)
--   FL_LUA_TAG     5.4, 5.3, 5.1 or jit
--   FL_LUA_DIR     the build directory holding filelock.lua + filelock/core.so
--   FL_SOURCE_DIR  the source tree
-- LUA_PATH/LUA_CPATH point at FL_LUA_DIR, so child processes find the module.
--
-- Every child process runs under `timeout -s KILL`, so a test that would
-- wait forever fails instead of hanging the suite.

local H = {}

H.lua = assert(os.getenv("FL_LUA_EXE"), "FL_LUA_EXE is not set (run the suite through ctest)")
H.tag = os.getenv("FL_LUA_TAG") or "?"
H.lua_dir = os.getenv("FL_LUA_DIR")
H.source_dir = assert(os.getenv("FL_SOURCE_DIR"), "FL_SOURCE_DIR is not set")
H.python = "/usr/bin/python3" -- Debian's, which has python3-filelock
H.has_close = _VERSION == "Lua 5.4"
H.CHILD_DEADLINE = 30 -- seconds before a child process is killed

--- Quotes a string for /bin/sh.
function H.q(s)
    return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

--- Runs a shell command; returns its stdout+stderr and its exit status.
-- The status comes from the shell itself (io.popen's close reports none on
-- Lua 5.1/LuaJIT).
function H.run(cmd)
    local p = assert(io.popen("( " .. cmd .. " ) 2>&1; echo \"@@exit:$?\""))
    local out = p:read("*a")
    p:close()
    local body, code = out:match("^(.-)@@exit:(%d+)%s*$")
    return body or out, tonumber(code)
end

--- Starts a command in the background and returns a reader: :line() reads
-- one line (nil at EOF), :finish() reads the rest and returns it with the
-- exit status.
function H.spawn(cmd)
    local p = assert(io.popen("( " .. cmd .. " ) 2>&1; echo \"@@exit:$?\""))
    local r = {}
    function r:line()
        local l = p:read("*l")
        if l and l:match("^@@exit:") then
            self.exit = tonumber(l:match("(%d+)"))
            return nil
        end
        return l
    end
    function r:finish()
        local rest = p:read("*a")
        p:close()
        if self.exit then
            return rest, self.exit
        end
        local body, code = rest:match("^(.-)@@exit:(%d+)%s*$")
        return body or rest, tonumber(code)
    end
    return r
end

--- The command running a Lua file with the suite's interpreter, killed
-- after the deadline.
function H.lua_cmd(script, ...)
    local parts = { "timeout -s KILL", tostring(H.CHILD_DEADLINE), H.q(H.lua), H.q(script) }
    for _, a in ipairs({ ... }) do
        parts[#parts + 1] = H.q(a)
    end
    return table.concat(parts, " ")
end

function H.python_cmd(script, ...)
    local parts = { "timeout -s KILL", tostring(H.CHILD_DEADLINE), H.q(H.python), H.q(script) }
    for _, a in ipairs({ ... }) do
        parts[#parts + 1] = H.q(a)
    end
    return table.concat(parts, " ")
end

--- A fresh temporary directory, removed by H.cleanup().
local tmpdirs = {}
function H.tmpdir()
    local p = assert(io.popen("mktemp -d /tmp/fl-lua-test.XXXXXX"))
    local d = p:read("*l")
    p:close()
    assert(d and d ~= "", "mktemp failed")
    tmpdirs[#tmpdirs + 1] = d
    return d
end

function H.cleanup()
    for _, d in ipairs(tmpdirs) do
        os.execute("rm -rf " .. H.q(d))
    end
    tmpdirs = {}
end

function H.write(path, text)
    local f = assert(io.open(path, "wb"))
    f:write(text)
    f:close()
end

function H.read(path)
    local f = io.open(path, "rb")
    if not f then
        return nil
    end
    local s = f:read("*a")
    f:close()
    return s
end

function H.exists(path)
    local f = io.open(path, "rb")
    if f then
        f:close()
        return true
    end
    return false
end

function H.sleep(seconds)
    os.execute("sleep " .. tostring(seconds))
end

--- Whole seconds since the epoch (loose upper bounds only, never timing
-- assertions).
function H.now()
    return os.time()
end

--- Waits until a process sleeps in the kernel's poll (the lock wait), so
-- that a signal sent next lands in the wait and not before it. Returns
-- true when it did within `deadline` seconds.
function H.wait_until_polling(pid, deadline)
    local stop = os.time() + (deadline or 10)
    local sleeping = 0
    while os.time() <= stop do
        local wchan = H.read("/proc/" .. pid .. "/wchan") or ""
        local stat = H.read("/proc/" .. pid .. "/stat") or ""
        local state = stat:match("^%d+ %b() (%a)")
        if wchan:find("poll") and state == "S" then
            return true
        end
        -- Where wchan is hidden, several sleeping samples in a row will do.
        if wchan == "0" or wchan == "" then
            sleeping = state == "S" and sleeping + 1 or 0
            if sleeping >= 5 then
                return true
            end
        end
        H.sleep(0.05)
    end
    return false
end

--- Writes a Lua child script into `dir` and returns its path. The script
-- gets `filelock` and a `say` that prints and flushes.
function H.child_script(dir, name, body)
    local path = dir .. "/" .. name
    H.write(path, "local filelock = require('filelock')\n"
        .. "local function say(...) io.write(table.concat({...}, ' '), '\\n') io.flush() end\n"
        .. body)
    return path
end

--- This host's name as the core records it (gethostname, i.e. the UTS
-- nodename).
function H.hostname()
    return (assert(H.read("/proc/sys/kernel/hostname"), "no /proc/sys/kernel/hostname")
        :gsub("%s+$", ""))
end

--- The pid of this Lua process (/proc/self is whoever opens it).
function H.pid()
    local f = assert(io.open("/proc/self/stat"))
    local pid = f:read("*n")
    f:close()
    return pid
end

--- A command run under the kill deadline (e.g. util-linux flock).
function H.deadline_cmd(cmd)
    return "timeout -s KILL " .. tostring(H.CHILD_DEADLINE) .. " " .. cmd
end

--- Starts a child Lua process that takes the lock `path` in `how` ("soft",
-- "kernel": lock:acquire(); "read", "write": a ReadWriteLock) and holds it
-- until the file `go` exists. Returns the reader (H.spawn) and the child's
-- pid, once the child reported that it holds the lock; fails (no hang) if
-- it does not within its deadline. After `go`, the child prints "released".
function H.holder(dir, how, path, go)
    local script = dir .. "/holder-" .. how .. ".lua"
    if not H.exists(script) then
        H.child_script(dir, "holder-" .. how .. ".lua", [[
local how, path, go = arg[1], arg[2], arg[3]
local f = assert(io.open("/proc/self/stat"))
local pid = f:read("*n")
f:close()
local lock
if how == "soft" then
    lock = filelock.SoftFileLock(path)
    lock:acquire({ timeout = 20 })
elseif how == "kernel" then
    lock = filelock.FileLock(path)
    lock:acquire({ timeout = 20 })
elseif how == "read" then
    lock = filelock.ReadWriteLock(path)
    lock:acquire_read({ timeout = 20 })
else
    lock = filelock.ReadWriteLock(path)
    lock:acquire_write({ timeout = 20 })
end
say("held", pid)
while true do
    local g = io.open(go)
    if g then g:close() break end
    os.execute("sleep 0.02")
end
lock:release()
say("released")
]])
    end
    local child = H.spawn(H.lua_cmd(script, how, path, go))
    local line = child:line()
    local pid = line and tonumber(line:match("^held (%d+)$"))
    if not pid then
        local rest, code = child:finish()
        error(string.format("holder (%s) did not report: %s%s [exit %s]", how,
            tostring(line), rest, tostring(code)), 2)
    end
    return child, pid
end

-- Runs a luv loop until nothing is left to do, with a hard deadline of
-- 20 s: a broken wait (one that never completes) fails the test instead of
-- hanging it.
function H.run_loop(uv)
    local guard = uv.new_timer()
    local expired = false
    guard:start(20000, 0, function()
        expired = true
        uv.stop()
    end)
    guard:unref()
    uv.run()
    guard:close()
    uv.run("nowait") -- completes the close (a pending one would run at exit)
    assert(not expired, "the loop did not finish")
end

return H
