-- SoftFileLease (lease_duration, heartbeat_interval, on_compromise) and
-- SoftFileLock's lifetime from Lua, over the core's leases. A frozen holder
-- is a child Lua process stopped with SIGSTOP; every wait has a timeout.

package.path = os.getenv("FL_SOURCE_DIR") .. "/tests/lua/?.lua;" .. package.path
local H = require("helpers")
local filelock = require("filelock")

local function raised(f, ...)
    local ok, err = pcall(f, ...)
    assert(not ok, "expected an error, the call succeeded")
    return err
end

describe("leases (" .. _VERSION .. ", " .. H.tag .. ")", function()
    local dir, path

    before_each(function()
        dir = H.tmpdir()
        path = dir .. "/lease.lock"
    end)
    after_each(function()
        os.execute("rm -rf " .. H.q(dir))
    end)

    it("has the pure-Python defaults and validates them", function()
        local l = filelock.SoftFileLease(path)
        assert.are.equal(30, l:lease_duration())
        assert.are.equal(10, l:heartbeat_interval())
        assert.is_true(filelock.is_lock(l))
        assert.are.equal("invalid_argument",
            raised(filelock.SoftFileLease, path, { lease_duration = 0 }).kind)
        assert.are.equal("invalid_argument",
            raised(filelock.SoftFileLease, path, { lease_duration = 2, heartbeat_interval = 2 }).kind)
        assert.are.equal("invalid_argument",
            raised(filelock.SoftFileLock, path, { lifetime = -1 }).kind)
        assert.are.equal("invalid_argument",
            raised(filelock.SoftFileLease, path, { on_compromise = 3 }).kind)
    end)

    it("takes its default and its checks from the core", function()
        local core = require("filelock.core")
        assert.are.equal(core.FL_LEASE_DEFAULT_DURATION, filelock.LEASE_DEFAULT_DURATION)
        assert.are.equal(core.FL_LEASE_DEFAULT_DURATION, filelock.SoftFileLease(path):lease_duration())
        local l = filelock.SoftFileLease(path .. "2", { lease_duration = 7.5 })
        assert.are.equal(7.5 / core.FL_LEASE_HEARTBEAT_DIVISOR, l:heartbeat_interval())
        -- The core's message (the pure-Python package's words), unchanged.
        local err = raised(filelock.SoftFileLease, path, { lease_duration = 0 })
        assert.are.equal("lease_duration must be positive, got 0 (lock file '" .. path .. "')",
            err.message)
        assert.are.equal(path, err.lock_file)
        err = raised(filelock.SoftFileLease, path, { lease_duration = 3, heartbeat_interval = 0 })
        assert.are.equal("heartbeat_interval must be positive and below lease_duration, got 0 "
            .. "(lock file '" .. path .. "')", err.message)
        err = raised(filelock.SoftFileLease, path, { lease_duration = 0 / 0 })
        assert.is_truthy(err.message:find("lease_duration must be positive, got nan", 1, true))
    end)

    it("writes a lease record and removes it on release", function()
        local l = filelock.SoftFileLease(path, { lease_duration = 5 })
        l:with(function()
            local text = H.read(path)
            assert.truthy(text:find("^filelock/2\npid=" .. H.pid() .. "\n"), text)
            assert.truthy(text:find("\nmode=lease\n", 1, true))
        end)
        assert.is_false(H.exists(path))
    end)

    it("tells a lost lease to on_compromise once, and release raises lease_lost", function()
        local seen = {}
        local l = filelock.SoftFileLease(path, {
            lease_duration = 0.6, heartbeat_interval = 0.1,
            on_compromise = function(c) seen[#seen + 1] = c end,
        })
        l:acquire()
        os.remove(path)
        local deadline = H.now() + 20
        while not l:compromise() and H.now() < deadline do
            H.sleep(0.02)
        end
        assert.are.equal(1, #seen)
        assert.are.equal("marker-missing", seen[1].reason)
        assert.are.equal(path, seen[1].lock_file)
        local err = raised(l.release, l)
        assert.are.equal("lease_lost", err.kind)
        assert.are.equal(1, #seen)
        assert.is_false(l:is_locked())
        l:with(function() assert.is_nil(l:compromise()) end)
    end)

    it("never takes a live lease; takes a frozen one, whose holder learns it", function()
        local go = dir .. "/go"
        local script = H.child_script(dir, "lease-holder.lua", [[
local path, go = arg[1], arg[2]
local l = filelock.SoftFileLease(path, { lease_duration = 1.0 })
l:acquire()
local f = assert(io.open("/proc/self/stat"))
say("held", f:read("*n"))
f:close()
local t = os.time() + 25
while not io.open(go) and os.time() < t do os.execute("sleep 0.05") end
local c = l:compromise()
say("lost", c and c.reason or "nil")
local ok, err = pcall(l.release, l)
say("release", ok and "ok" or err.kind)
]])
        local child = H.spawn(H.deadline_cmd(H.q(H.lua) .. " " .. H.q(script) .. " "
            .. H.q(path) .. " " .. H.q(go) .. "; echo"))
        local pid = tonumber((child:line() or ""):match("^held (%d+)$"))
        assert.truthy(pid)
        local waiter = filelock.SoftFileLease(path, { lease_duration = 1.0 })
        assert.is_true(filelock.is_timeout(raised(waiter.acquire, waiter, { timeout = 3.5 })))
        os.execute("kill -STOP " .. pid)
        local ok, err = pcall(waiter.acquire, waiter, { timeout = 25 })
        os.execute("kill -CONT " .. pid)
        assert.is_true(ok, tostring(err))
        -- Let the child's heartbeat see the marker replaced.
        H.sleep(0.8)
        H.write(go, "")
        local lost, released = child:line(), child:line()
        local rest, code = child:finish()
        assert.are.equal("lost owner-changed", lost, tostring(lost) .. " " .. tostring(rest))
        assert.are.equal("release lease_lost", released)
        assert.are.equal(0, code)
        assert.is_true(waiter:is_held_by_us())
        waiter:release()
    end)

    it("a lifetime supersedes a live holder", function()
        local a = filelock.SoftFileLock(path, { lifetime = 0.4 })
        local b = filelock.SoftFileLock(path, { lifetime = 0.4 })
        a:acquire()
        b:acquire({ timeout = 20 })
        assert.are.equal("lease_lost", raised(a.release, a).kind)
        assert.is_true(b:is_held_by_us())
        b:release()
    end)

    -- One rule across languages (docs/soft-lock-protocol.md): a scoped hold
    -- whose lease was lost re-raises the body's own error, not the loss.
    it("never hides the body's error behind a lost lease", function()
        local l = filelock.SoftFileLease(path, { lease_duration = 5 })
        local ok, err = pcall(l.with, l, function()
            os.remove(path) -- release finds the marker gone: FL_ELOST
            error("the body's own", 0)
        end)
        assert.is_false(ok)
        assert.are.equal("the body's own", err)
        assert.is_false(l:is_locked())
        -- Without an error in flight the loss is raised.
        err = raised(l.with, l, function() os.remove(path) end)
        assert.are.equal("lease_lost", err.kind)
        assert.is_false(l:is_locked())
    end)

    it("refuses a lease of another duration", function()
        local a = filelock.SoftFileLease(path, { lease_duration = 2 })
        a:acquire()
        local err = raised(function()
            filelock.SoftFileLease(path, { lease_duration = 3 }):acquire({ timeout = 1 })
        end)
        assert.are.equal("lease_mismatch", err.kind)
        a:release()
    end)
end)
