-- Issue 6 from Lua: owner records in soft markers, recovery of markers whose
-- holder is provably gone (and only those), lock:owner(), is_held_by_us(),
-- break_lock(), and the kernel lock's owner from /proc/locks. Holders are
-- child processes (H.holder) under the kill deadline; every acquire that
-- may wait has a timeout.

package.path = os.getenv("FL_SOURCE_DIR") .. "/tests/lua/?.lua;" .. package.path
local H = require("helpers")
local filelock = require("filelock")

local function raised(f, ...)
    local ok, err = pcall(f, ...)
    assert(not ok, "expected an error, the call succeeded")
    return err
end

-- The owner record of a marker: pid, hostname, start token.
local function parse_record(text)
    local pid, host, token = text:match("^(%d+)\n([^\n]*)\n([^\n]*)\n$")
    return tonumber(pid), host, token
end

-- A pid that existed a moment ago and is gone now (reaped by its shell).
local function dead_pid()
    local out = H.run("sh -c 'echo $$'")
    local pid = tonumber(out:match("%d+"))
    assert(pid, out)
    assert(not H.exists("/proc/" .. pid .. "/stat"), "pid " .. pid .. " still exists")
    return pid
end

describe("owner records and stale markers (" .. _VERSION .. ", " .. H.tag .. ")", function()
    local dir, path, go

    before_each(function()
        dir = H.tmpdir()
        path = dir .. "/owned.lock"
        go = dir .. "/go"
    end)
    after_each(function()
        H.write(go, "") -- lets any holder still running go
        collectgarbage()
        H.cleanup()
    end)

    describe("lock:owner()", function()
        it("of a soft lock held by a child process: its pid and this host", function()
            local child, pid = H.holder(dir, "soft", path, go)
            local lock = filelock.SoftFileLock(path)
            local o = lock:owner()
            assert.is_table(o)
            assert.is_true(o.pid == pid)
            assert.are.equal(H.hostname(), o.hostname)
            assert.is_false(o.this_process)
            assert.truthy(tostring(o.start_token):match("^%d+$"), tostring(o.start_token))
            assert.is_false(lock:is_held_by_us())
            -- the table is what the marker says
            local rpid, rhost, rtoken = parse_record(H.read(path))
            assert.is_true(rpid == pid)
            assert.are.equal(rhost, o.hostname)
            assert.are.equal(rtoken, o.start_token)
            H.write(go, "")
            local rest, code = child:finish()
            assert.are.equal(0, code, rest)
            -- free: nil and nothing else
            assert.is_nil(lock:owner())
            assert.are.equal(1, select("#", lock:owner()))
            assert.is_false(lock:is_held_by_us())
        end)

        it("of our own soft lock: this process, through any handle", function()
            local lock = filelock.SoftFileLock(path)
            lock:acquire()
            local o = lock:owner()
            assert.is_true(o.pid == H.pid())
            assert.is_true(o.this_process)
            assert.are.equal(H.hostname(), o.hostname)
            assert.is_true(lock:is_held_by_us())
            assert.is_true(filelock.SoftFileLock(path):is_held_by_us())
            lock:release()
            assert.is_false(lock:is_held_by_us())
            assert.is_nil(lock:owner())
        end)

        it("of a marker without an owner record: nil and the reason", function()
            local lock = filelock.SoftFileLock(path)
            for _, text in ipairs({ "", "not an owner record" }) do
                H.write(path, text)
                local o, why = lock:owner()
                assert.is_nil(o)
                assert.is_string(why)
                assert.truthy(why:find(path, 1, true), why)
                assert.truthy(why:find("owner record", 1, true), why)
                assert.is_false(lock:is_held_by_us())
            end
        end)

        it("raises for a marker planted as a symlink or FIFO, following neither", function()
            local target = dir .. "/target"
            H.write(target, "keep")
            os.execute("ln -s " .. H.q(target) .. " " .. H.q(path))
            local lock = filelock.SoftFileLock(path)
            assert.are.equal("symlink", raised(lock.owner, lock).kind)
            assert.are.equal("symlink", raised(lock.acquire, lock, { timeout = 0.3 }).kind)
            assert.are.equal("keep", H.read(target))
            local fifo = dir .. "/fifo.lock"
            os.execute("mkfifo " .. H.q(fifo))
            local f = filelock.SoftFileLock(fifo)
            assert.are.equal("not_regular_file", raised(f.owner, f).kind)
            assert.are.equal("not_regular_file", raised(f.acquire, f, { timeout = 0.3 }).kind)
        end)

        it("of a kernel lock held by a child process: its pid (from /proc/locks)", function()
            local child, pid = H.holder(dir, "kernel", path, go)
            local lock = filelock.FileLock(path)
            local o = lock:owner()
            assert.is_table(o)
            assert.is_true(o.pid == pid)
            assert.are.equal(H.hostname(), o.hostname)
            assert.is_false(o.this_process)
            assert.is_nil(o.start_token)
            assert.is_false(lock:is_held_by_us())
            H.write(go, "")
            local rest, code = child:finish()
            assert.are.equal(0, code, rest)
            assert.is_nil(lock:owner()) -- the file stays, unlocked
            assert.is_true(H.exists(path))
        end)

        it("of our own kernel lock: this process", function()
            local lock = filelock.FileLock(path)
            assert.is_nil(lock:owner()) -- no file yet
            lock:acquire()
            local o = lock:owner()
            assert.is_true(o.pid == H.pid())
            assert.is_true(o.this_process)
            assert.is_true(lock:is_held_by_us())
            lock:release()
            assert.is_nil(lock:owner())
        end)
    end)

    describe("stale soft markers", function()
        it("a marker left by a SIGKILLed child is reclaimed by acquire", function()
            local child, pid = H.holder(dir, "soft", path, go)
            os.execute("kill -KILL " .. pid)
            local rest, code = child:finish() -- returns once the child is reaped
            assert.are_not.equal(0, code, rest)
            assert.is_nil(rest:find("released", 1, true))
            -- the marker is still there, naming the dead holder
            assert.is_true(H.exists(path))
            assert.is_true(parse_record(H.read(path)) == pid)
            assert.is_true(filelock.SoftFileLock(path):owner().pid == pid)
            local lock = filelock.SoftFileLock(path)
            local started = H.now()
            lock:acquire({ timeout = 10 })
            assert.is_true(H.now() - started < 10)
            assert.is_true(lock:owner().this_process)
            lock:release()
            assert.is_false(H.exists(path))
        end)

        it("a live holder's marker is not reclaimed, even after more than 2 s", function()
            local child, pid = H.holder(dir, "soft", path, go)
            local record = H.read(path)
            local lock = filelock.SoftFileLock(path)
            local err = raised(lock.acquire, lock, { timeout = 2.5 })
            assert.is_true(filelock.is_timeout(err))
            assert.is_false(lock:is_locked())
            assert.are.equal(record, H.read(path)) -- untouched
            assert.is_true(lock:owner().pid == pid)
            H.write(go, "")
            local rest, code = child:finish()
            assert.are.equal(0, code, rest)
            assert.are.equal("released\n", rest)
            lock:acquire({ timeout = 10 })
            lock:release()
        end)

        it("this host, a live pid, another start token (a recycled pid): reclaimed", function()
            local child, pid = H.holder(dir, "soft", path, go)
            local record = H.read(path)
            local rpid, host, token = parse_record(record)
            assert.is_true(rpid == pid)
            assert.truthy(token:match("^%d+$"), token)
            local last = tonumber(token:sub(-1))
            local other_token = token:sub(1, -2) .. tostring((last + 1) % 10)
            -- control: the very same record elsewhere is a live holder
            local same = dir .. "/same.lock"
            H.write(same, record)
            local s = filelock.SoftFileLock(same)
            assert.is_true(filelock.is_timeout(raised(s.acquire, s, { timeout = 0.3 })))
            assert.are.equal(record, H.read(same))
            -- the same live pid with a different start token is another process
            local recycled = dir .. "/recycled.lock"
            H.write(recycled, string.format("%d\n%s\n%s\n", pid, host, other_token))
            local r = filelock.SoftFileLock(recycled)
            r:acquire({ timeout = 10 })
            assert.is_true(r:owner().this_process)
            r:release()
            H.write(go, "")
            local rest, code = child:finish()
            assert.are.equal(0, code, rest)
        end)

        it("a marker from another hostname is never reclaimed, even with a dead pid", function()
            local pid = dead_pid()
            local record = string.format("%d\n%s\n%s\n", pid, "not-" .. H.hostname() .. ".invalid",
                "12345")
            H.write(path, record)
            local lock = filelock.SoftFileLock(path)
            local o = lock:owner()
            assert.is_true(o.pid == pid)
            assert.are.equal("not-" .. H.hostname() .. ".invalid", o.hostname)
            assert.is_false(o.this_process)
            assert.is_true(filelock.is_timeout(raised(lock.acquire, lock, { timeout = 0.5 })))
            assert.are.equal(record, H.read(path))
            -- control: the same dead pid on this host is reclaimed
            local mine = dir .. "/mine.lock"
            H.write(mine, string.format("%d\n%s\n%s\n", pid, H.hostname(), "12345"))
            local m = filelock.SoftFileLock(mine)
            m:acquire({ timeout = 10 })
            assert.is_true(m:owner().this_process)
            m:release()
        end)

        it("a malformed marker is reclaimed only once older than the 2 s grace", function()
            H.write(path, "garbage")
            -- fresh: a holder may be between create and write (stamped 30 s
            -- ahead, so it stays younger than the 2 s grace for 32 s, not
            -- just 2 s: a test stalled on a loaded machine finds it old)
            os.execute("touch -d @" .. tostring(os.time() + 30) .. " " .. H.q(path))
            local lock = filelock.SoftFileLock(path)
            assert.is_true(filelock.is_timeout(raised(lock.acquire, lock, { blocking = false })))
            assert.are.equal("garbage", H.read(path))
            os.execute("touch -d @" .. tostring(os.time() - 10) .. " " .. H.q(path))
            lock:acquire({ timeout = 10 })
            assert.is_true(lock:owner().this_process)
            lock:release()
        end)
    end)

    describe("with Debian's pure-Python SoftFileLock (3.9: no owner record)", function()
        local function python_hold(kill)
            local script = dir .. "/soft.py"
            H.write(script, [[
import os, sys, time, filelock
lock = filelock.SoftFileLock(sys.argv[1])
lock.acquire(timeout=20)
print("held", os.getpid(), flush=True)
deadline = time.monotonic() + 20
while not os.path.exists(sys.argv[2]) and time.monotonic() < deadline:
    time.sleep(0.02)
lock.release()
print("released", flush=True)
]])
            local child = H.spawn(H.python_cmd(script, path, go))
            local line = child:line() or ""
            local pid = tonumber(line:match("^held (%d+)$"))
            assert(pid, "python holder: " .. line)
            return child, pid
        end

        it("its crashed holder's empty marker is reclaimed after the grace period", function()
            local child, pid = python_hold()
            os.execute("kill -KILL " .. pid)
            local _, code = child:finish()
            assert.are_not.equal(0, code)
            assert.are.equal("", H.read(path))
            local lock = filelock.SoftFileLock(path)
            local o, why = lock:owner()
            assert.is_nil(o)
            assert.truthy(why:find("owner record", 1, true), why)
            local started = H.now()
            lock:acquire({ timeout = 15 })
            assert.is_true(H.now() - started < 15)
            lock:release()
        end)

        it("a LIVE holder's empty marker is reclaimed too after 2 s (no proof of life)", function()
            -- Documented interop hazard: a 3.9 marker cannot tell a live
            -- holder from a crashed one, so the grace period is all it gets.
            local child = python_hold()
            local lock = filelock.SoftFileLock(path)
            -- Fresh: respected (stamped 30 s ahead for the check, which a
            -- test stalled 2 s after the holder's create would overrun) ...
            os.execute("touch -d @" .. tostring(os.time() + 30) .. " " .. H.q(path))
            assert.is_true(filelock.is_timeout(raised(lock.acquire, lock, { blocking = false })))
            -- ... and taken once older than the grace, its holder alive.
            os.execute("touch -d @" .. tostring(os.time() - 10) .. " " .. H.q(path))
            lock:acquire({ timeout = 15 })
            assert.is_true(lock:owner().this_process)
            lock:release()
            H.write(go, "")
            local rest, code = child:finish()
            assert.are.equal(0, code, rest)
        end)

        it("our marker (with an owner record) excludes a Python SoftFileLock", function()
            -- our marker (with an owner record) excludes a Python SoftFileLock
            local script = dir .. "/try.py"
            H.write(script, [[
import sys, filelock
try:
    with filelock.SoftFileLock(sys.argv[1], timeout=float(sys.argv[2])):
        print("acquired")
except filelock.Timeout:
    print("timeout")
]])
            local lock = filelock.SoftFileLock(path)
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

    describe("lock:break_lock()", function()
        it("deletes a live holder's marker (voiding mutual exclusion)", function()
            local child = H.holder(dir, "soft", path, go)
            local lock = filelock.SoftFileLock(path)
            assert.is_true(filelock.is_timeout(raised(lock.acquire, lock, { timeout = 0 })))
            lock:break_lock()
            assert.is_false(H.exists(path))
            lock:acquire({ timeout = 0 }) -- while the child still believes it holds it
            assert.is_true(lock:owner().this_process)
            lock:release()
            assert.is_false(H.exists(path))
            lock:break_lock() -- no marker: not an error
            H.write(go, "")
            local rest, code = child:finish()
            assert.are.equal(0, code, rest)
        end)

        -- The holder keeps its marker open, so a new marker can never get
        -- the broken one's inode number: release must leave it alone.
        it("the broken holder's later release leaves the new holder's marker alone", function()
            local child = H.holder(dir, "soft", path, go)
            local lock = filelock.SoftFileLock(path)
            lock:break_lock()
            lock:acquire({ timeout = 0 })
            H.write(go, "")
            local rest, code = child:finish()
            assert.are.equal(0, code, rest)
            local o = lock:owner()
            assert.is_table(o, "the new holder's marker was deleted")
            assert.is_true(o.this_process)
            lock:release()
        end)

        it("is not supported on the kernel lock", function()
            local lock = filelock.FileLock(path)
            lock:acquire()
            local err = raised(lock.break_lock, lock)
            assert.are.equal("not_supported", err.kind)
            assert.are.equal(path, err.lock_file)
            assert.is_true(lock:is_locked())
            lock:release()
        end)
    end)
end)
