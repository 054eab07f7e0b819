-- The lock between processes: Lua children contending, Lua against Debian's
-- pure-Python filelock (flock too), Ctrl-C in the standalone interpreter,
-- permission errors, finalizers at exit and the demo writer. Every child
-- runs under `timeout -s KILL` (helpers.lua), so nothing can hang.

package.path = os.getenv("FL_SOURCE_DIR") .. "/tests/lua/?.lua;" .. package.path
local H = require("helpers")
local filelock = require("filelock")

describe("between processes (" .. _VERSION .. ", " .. H.tag .. ")", function()
    local dir, path

    before_each(function()
        dir = H.tmpdir()
        path = dir .. "/shared.lock"
    end)
    after_each(function()
        collectgarbage()
        H.cleanup()
    end)

    it("a child Lua process contends and wakes when we release", function()
        local script = H.child_script(dir, "child.lua", [[
local lock = filelock.FileLock(arg[1])
local ok, err = pcall(lock.acquire, lock, { timeout = 0 })
say("first", ok and "acquired" or err.kind)
lock:acquire({ timeout = 20 })
say("second", lock:is_locked() and "acquired" or "no")
lock:release()
]])
        local lock = filelock.FileLock(path)
        lock:acquire()
        local child = H.spawn(H.lua_cmd(script, path))
        assert.are.equal("first timeout", child:line())
        lock:release() -- the child is waiting (or about to): it must win now
        local rest, code = child:finish()
        assert.are.equal(0, code, rest)
        assert.are.equal("second acquired\n", rest)
    end)

    it("we are excluded while a child holds it, and not after", function()
        local script = H.child_script(dir, "holder.lua", [[
local lock = filelock.FileLock(arg[1])
lock:acquire()
say("held")
-- hold until the parent creates the go file (bounded by the kill deadline)
while not io.open(arg[2]) do os.execute("sleep 0.02") end
lock:release()
say("released")
]])
        local go = dir .. "/go"
        local child = H.spawn(H.lua_cmd(script, path, go))
        assert.are.equal("held", child:line())
        local lock = filelock.FileLock(path)
        local ok, err = pcall(lock.acquire, lock, { timeout = 0.1 })
        assert.is_false(ok)
        assert.is_true(filelock.is_timeout(err))
        H.write(go, "")
        lock:acquire({ timeout = 20 })
        assert.is_true(lock:is_locked())
        lock:release()
        local rest, code = child:finish()
        assert.are.equal(0, code, rest)
        assert.are.equal("released\n", rest)
    end)

    describe("with Debian's pure-Python filelock", function()
        local function python_ok()
            local out, code = H.run(H.q(H.python) .. " -c 'import filelock'")
            assert.are.equal(0, code, "python3-filelock is required: " .. out)
        end

        it("a Python holder excludes Lua", function()
            python_ok()
            local script = dir .. "/hold.py"
            H.write(script, [[
import os, sys, time, filelock
lock = filelock.FileLock(sys.argv[1])
lock.acquire()
print("held", flush=True)
deadline = time.monotonic() + 20
while not os.path.exists(sys.argv[2]) and time.monotonic() < deadline:
    time.sleep(0.02)
lock.release()
print("released", flush=True)
]])
            local go = dir .. "/go"
            local child = H.spawn(H.python_cmd(script, path, go))
            assert.are.equal("held", child:line())
            local lock = filelock.FileLock(path)
            local ok, err = pcall(lock.acquire, lock, { timeout = 0.1 })
            assert.is_false(ok)
            assert.is_true(filelock.is_timeout(err))
            H.write(go, "")
            lock:acquire({ timeout = 20 })
            lock:release()
            local rest, code = child:finish()
            assert.are.equal(0, code, rest)
            assert.are.equal("released\n", rest)
        end)

        it("a Lua holder excludes Python", function()
            python_ok()
            local script = dir .. "/try.py"
            H.write(script, [[
import sys, filelock
lock = filelock.FileLock(sys.argv[1], timeout=float(sys.argv[2]))
try:
    with lock:
        print("acquired")
except filelock.Timeout:
    print("timeout")
]])
            local lock = filelock.FileLock(path)
            lock:with(function()
                local out, code = H.run(H.python_cmd(script, path, "0.2"))
                assert.are.equal(0, code, out)
                assert.are.equal("timeout\n", out)
            end)
            local out, code = H.run(H.python_cmd(script, path, "5"))
            assert.are.equal(0, code, out)
            assert.are.equal("acquired\n", out)
        end)
    end)

    it("Ctrl-C (SIGINT) ends a waiting acquire in the standalone interpreter", function()
        -- The child prints its pid, then waits forever on a lock we hold.
        local script = H.child_script(dir, "waiter.lua", [[
local f = assert(io.open("/proc/self/stat"))
local pid = f:read("*n")
f:close()
say(pid)
local lock = filelock.FileLock(arg[1])
lock:acquire()
say("acquired") -- must not happen
]])
        local lock = filelock.FileLock(path)
        lock:acquire()
        local started = H.now()
        local child = H.spawn(H.lua_cmd(script, path))
        local pid = tonumber(child:line())
        assert.is_number(pid)
        assert.is_true(H.wait_until_polling(pid, 10), "the child never started waiting")
        os.execute("kill -INT " .. pid)
        local out, code = child:finish()
        -- Ended by the interrupted error, not by the kill deadline (137)
        -- nor by the signal's default action (130).
        assert.are.equal(1, code, out)
        assert.is_nil(out:find("acquired", 1, true))
        if H.tag ~= "5.1" then
            -- lua5.1 prints "(error object is not a string)" for any table
            assert.truthy(out:find("interrupted while waiting for lock file '" .. path .. "'", 1,
                true), out)
        end
        assert.is_true(H.now() - started < H.CHILD_DEADLINE, "not prompt")
        assert.is_true(lock:is_locked()) -- ours all along
        lock:release()
    end)

    it("the interrupted error is an error object with kind and errno", function()
        -- A SIGINT delivered to the waiting process itself (no interpreter
        -- hook involved): the error is catchable and the lock is not held.
        local script = H.child_script(dir, "waiter2.lua", [[
local f = assert(io.open("/proc/self/stat"))
local pid = f:read("*n")
f:close()
-- signal ourselves from a background shell once we are waiting in poll
os.execute("(for i in $(seq 200); do grep -q poll /proc/" .. pid .. "/wchan && break; "
    .. "sleep 0.05; done; kill -INT " .. pid .. ") &")
local lock = filelock.FileLock(arg[1])
local ok, err = pcall(lock.acquire, lock)
local kind = type(err) == "table" and err.kind or tostring(err)
io.stderr:write(string.format("result %s %s %s %s %s\n", tostring(ok), kind,
    tostring(type(err) == "table" and err.errno), tostring(lock:is_locked()),
    tostring(lock:lock_counter())))
]])
        local lock = filelock.FileLock(path)
        lock:acquire()
        local out = H.run(H.lua_cmd(script, path))
        lock:release()
        -- the interpreter may also report its own "interrupted!" afterwards;
        -- what matters is what acquire raised and that nothing is held
        assert.truthy(out:find("result false interrupted 4 false 0", 1, true), out)
    end)

    it("permission denied is an error object with kind permission", function()
        local ro = dir .. "/readonly"
        os.execute("mkdir " .. H.q(ro) .. " && chmod 0555 " .. H.q(ro) .. " && chmod 0755 "
            .. H.q(dir))
        local target = ro .. "/sub/x.lock"
        local script = H.child_script(dir, "perm.lua", [[
local lock = filelock.FileLock(arg[1])
local ok, err = pcall(lock.acquire, lock, { timeout = 0 })
say(tostring(ok), err.kind, tostring(err.errno), tostring(err.lock_file == arg[1]))
]])
        local cmd = H.lua_cmd(script, target)
        local uid = H.run("id -u"):match("%d+")
        if uid == "0" then
            -- root ignores permission bits: run the child as nobody, which
            -- needs a build tree that nobody can read
            local drop = "setpriv --reuid=nobody --regid=nogroup --clear-groups "
            local _, readable = H.run(drop .. "test -r " .. H.q(H.lua_dir .. "/filelock.lua"))
            if readable ~= 0 then
                pending("the build tree is not readable by 'nobody'; permission check skipped")
                return
            end
            cmd = drop .. cmd
            os.execute("chmod 0644 " .. H.q(script))
        end
        local out, code = H.run(cmd)
        assert.are.equal(0, code, out)
        assert.are.equal("false permission 13 true\n", out)
    end)

    it("finalizers release held locks at interpreter exit without raising", function()
        local script = H.child_script(dir, "exit.lua", [[
local lock = filelock.FileLock(arg[1])
lock:acquire()
lock:acquire()
local soft = filelock.SoftFileLock(arg[1] .. ".soft")
soft:acquire()
say("held")
-- no release: lua_close() collects the handles
]])
        local cmd = H.lua_cmd(script, path)
        if H.tag == "5.4" then
            -- -W prints warnings, which is how 5.4 reports errors in __gc
            cmd = table.concat({ "timeout -s KILL", H.CHILD_DEADLINE, H.q(H.lua), "-W",
                H.q(script), H.q(path) }, " ")
        end
        local out, code = H.run(cmd)
        assert.are.equal(0, code, out)
        assert.are.equal("held\n", out)
        assert.is_false(H.exists(path .. ".soft")) -- the marker was removed by the finalizer
        filelock.FileLock(path, { timeout = 0 }):with(function() end)
    end)

    describe("demo/writer.lua", function()
        local writer = H.source_dir .. "/demo/writer.lua"
        local check = H.source_dir .. "/demo/check.awk"

        local function writers(soft)
            local data = dir .. "/high_ground.txt"
            local lockfile = data .. ".lock"
            local flag = soft and " --soft" or ""
            local cmds = {}
            for i = 1, 3 do
                cmds[#cmds + 1] = H.lua_cmd(writer, data, lockfile, 25, "lua" .. i) .. flag .. " &"
            end
            local out, code = H.run(table.concat(cmds, " ") .. " wait")
            assert.are.equal(0, code, out)
            return H.run("awk -v expect='lua1:25 lua2:25 lua3:25' -f " .. H.q(check) .. " "
                .. H.q(data))
        end

        it("three writers under FileLock lose nothing", function()
            local out, code = writers(false)
            assert.are.equal(0, code, out)
        end)

        it("three writers under SoftFileLock lose nothing", function()
            local out, code = writers(true)
            assert.are.equal(0, code, out)
        end)

        it("rejects bad arguments", function()
            local _, code = H.run(H.lua_cmd(writer, dir .. "/f", dir .. "/f.lock", "x", "t"))
            assert.are.equal(2, code)
        end)
    end)
end)
