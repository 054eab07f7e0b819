-- Issue 10 from Lua: filelock.ReadWriteLock (many readers or one writer on
-- the kernel lock), in one process and between processes, against
-- util-linux flock(1), and a writer that readers cannot starve. Every wait
-- has a timeout or runs in a child under the kill deadline.

package.path = os.getenv("FL_SOURCE_DIR") .. "/tests/lua/?.lua;" .. package.path
local H = require("helpers")
local filelock = require("filelock")

local function raised(f, ...)
    local ok, err = pcall(f, ...)
    assert(not ok, "expected an error, the call succeeded")
    return err
end

local function timed_out(f, ...)
    return filelock.is_timeout(raised(f, ...))
end

describe("ReadWriteLock (" .. _VERSION .. ", " .. H.tag .. ")", function()
    local dir, path, go

    before_each(function()
        dir = H.tmpdir()
        path = dir .. "/rw.lock"
        go = dir .. "/go"
    end)
    after_each(function()
        H.write(go, "") -- lets any holder still running go
        H.write(dir .. "/stop", "") -- and any looping reader stop
        collectgarbage()
        H.cleanup()
    end)

    describe("in one process", function()
        it("has the documented fields; the gate file appears on first use", function()
            local lock = filelock.ReadWriteLock(path, { timeout = 3 })
            assert.is_true(filelock.is_read_write_lock(lock))
            assert.is_false(filelock.is_lock(lock))
            assert.is_false(filelock.is_read_write_lock(filelock.FileLock(path .. "2")))
            assert.are.equal('ReadWriteLock("' .. path .. '")', tostring(lock))
            assert.are.equal(path, lock.lock_file)
            assert.are.equal("kernel", lock.kind)
            assert.is_true(lock.timeout == 3)
            lock.timeout = 1
            assert.is_true(lock.timeout == 1)
            assert.is_nil(lock:held_mode())
            assert.is_false(lock:is_locked())
            assert.is_true(lock:lock_counter() == 0)
            lock:read(function() end)
            assert.is_true(H.exists(path))
            assert.is_true(H.exists(path .. ".gate"))
            assert.is_nil(lock.acquire) -- no mode-less acquire on a read/write lock
            assert.is_nil(lock.with)
        end)

        it("rejects soft_fallback, unknown options and wrong types", function()
            assert.are.equal("invalid_argument",
                raised(filelock.ReadWriteLock, path, { soft_fallback = true }).kind)
            assert.are.equal("invalid_argument",
                raised(filelock.ReadWriteLock, path, { timout = 1 }).kind)
            assert.are.equal("invalid_argument",
                raised(filelock.ReadWriteLock, path, { blocking = 0 }).kind)
            local lock = filelock.ReadWriteLock(path)
            assert.are.equal("invalid_argument",
                raised(lock.acquire_read, lock, { shared = true }).kind)
            assert.are.equal("invalid_argument", raised(lock.read, lock, { timeout = 1 }).kind)
            assert.is_false(lock:is_locked())
        end)

        it("read/write call the function, pass results through and release", function()
            local lock = filelock.ReadWriteLock(path)
            local mode, count
            local a, b = lock:read(function(x)
                mode, count = lock:held_mode(), lock:lock_counter()
                return x * 2, "r"
            end, 21)
            assert.are.equal("read", mode)
            assert.is_true(count == 1)
            assert.is_true(a == 42)
            assert.are.equal("r", b)
            assert.is_nil(lock:held_mode())
            local c = lock:write({ timeout = 5 }, function()
                mode = lock:held_mode()
                return "w"
            end)
            assert.are.equal("write", mode)
            assert.are.equal("w", c)
            assert.is_false(lock:is_locked())
            -- an error in the body is re-raised unchanged, the lock released
            local mine = {}
            assert.are.equal(mine, raised(lock.write, lock, function() error(mine) end))
            assert.is_false(lock:is_locked())
            assert.are.equal(mine, raised(lock.read, lock, { timeout = 1 }, function()
                error(mine)
            end))
            assert.is_false(lock:is_locked())
        end)

        it("recursion counts within one mode; guards release one level", function()
            local lock = filelock.ReadWriteLock(path)
            local g1 = lock:acquire_read()
            local g2 = lock:acquire_read({ timeout = 0 })
            assert.are.equal("read", g2.mode)
            assert.are.equal(lock, g2.lock)
            assert.is_true(lock:lock_counter() == 2)
            g2:release()
            g2:release() -- once only
            assert.is_true(lock:lock_counter() == 1)
            g1:release()
            assert.is_nil(lock:held_mode())
            lock:acquire_write()
            lock:acquire_write()
            assert.are.equal("write", lock:held_mode())
            lock:release({ force = true })
            assert.is_true(lock:lock_counter() == 0)
        end)

        it("upgrade and downgrade raise lock_mode and keep the lock as it was", function()
            local lock = filelock.ReadWriteLock(path)
            lock:acquire_read()
            local err = raised(lock.acquire_write, lock, { timeout = 0 })
            assert.are.equal("lock_mode", err.kind)
            assert.are.equal("ELOCKMODE", err.code)
            assert.are.equal(path, err.lock_file)
            assert.is_true(filelock.is_error(err))
            assert.is_false(filelock.is_timeout(err))
            assert.are.equal("lock_mode", raised(lock.write, lock, function() end).kind)
            assert.are.equal("read", lock:held_mode())
            assert.is_true(lock:lock_counter() == 1)
            lock:release()
            lock:acquire_write()
            assert.are.equal("lock_mode", raised(lock.acquire_read, lock).kind)
            local called = false
            assert.are.equal("lock_mode", raised(lock.read, lock, function() called = true end).kind)
            assert.is_false(called)
            assert.are.equal("write", lock:held_mode())
            assert.is_true(lock:lock_counter() == 1)
            lock:release()
            assert.is_false(lock:is_locked())
        end)

        it("two handles: readers share, a writer is excluded (timeouts, non-blocking)", function()
            local a = filelock.ReadWriteLock(path)
            local b = filelock.ReadWriteLock(path)
            a:acquire_read()
            b:acquire_read({ timeout = 0 }) -- another open file: shares
            b:release()
            assert.is_true(timed_out(b.acquire_write, b, { timeout = 0.2 }))
            assert.is_true(timed_out(b.acquire_write, b, { blocking = false }))
            assert.is_true(timed_out(b.acquire_write, b, { timeout = 0 }))
            assert.is_false(b:is_locked())
            a:release()
            a:acquire_write()
            assert.is_true(timed_out(b.acquire_read, b, { timeout = 0.2 }))
            assert.is_true(timed_out(b.acquire_read, b, { blocking = false, timeout = -1 }))
            assert.is_true(timed_out(b.acquire_write, b, { timeout = 0 }))
            b.blocking = false
            assert.is_true(timed_out(b.read, b, function() end))
            assert.is_true(b:lock_counter() == 0)
            a:release()
            b:write(function() end)
            b:read(function() end)
        end)

        it("owner() reports this process for a lock it holds", function()
            local lock = filelock.ReadWriteLock(path)
            lock:read(function()
                local o = lock:owner()
                assert.is_true(o.this_process)
                assert.is_true(lock:is_held_by_us())
            end)
            assert.is_nil(lock:owner())
        end)

        it("singleton objects share one handle and its mode", function()
            local a = filelock.ReadWriteLock(path, { singleton = true })
            local b = filelock.ReadWriteLock(path, { singleton = true })
            a:acquire_read()
            assert.are.equal("read", b:held_mode())
            assert.are.equal("lock_mode", raised(b.acquire_write, b).kind)
            a:release()
            -- a plain FileLock singleton on the same file is a different setting
            assert.are.equal("invalid_argument",
                raised(filelock.FileLock, path, { singleton = true }).kind)
        end)
    end)

    describe("between processes", function()
        it("several reader processes hold it at once; a writer waits them out", function()
            local readers, pids = {}, {}
            for i = 1, 3 do
                readers[i], pids[i] = H.holder(dir, "read", path, go)
            end
            -- all three report holding before any of them was let go
            assert.is_true(#pids == 3)
            local lock = filelock.ReadWriteLock(path)
            lock:read({ timeout = 5 }, function() end) -- a fourth reader
            assert.is_true(timed_out(lock.acquire_write, lock, { timeout = 0.3 }))
            assert.is_true(timed_out(lock.acquire_write, lock, { blocking = false }))
            -- the waiting writer gets in once they leave
            os.execute("(sleep 0.3; touch " .. H.q(go) .. ") &")
            lock:acquire_write({ timeout = 20 })
            assert.are.equal("write", lock:held_mode())
            lock:release()
            for i = 1, 3 do
                local rest, code = readers[i]:finish()
                assert.are.equal(0, code, rest)
                assert.are.equal("released\n", rest)
            end
        end)

        it("a writer process excludes readers and writers in both wait styles", function()
            local child = H.holder(dir, "write", path, go)
            local lock = filelock.ReadWriteLock(path)
            assert.is_true(timed_out(lock.acquire_read, lock, { timeout = 0.3 }))
            assert.is_true(timed_out(lock.acquire_read, lock, { blocking = false }))
            assert.is_true(timed_out(lock.acquire_write, lock, { timeout = 0.3 }))
            assert.is_true(timed_out(lock.acquire_write, lock, { timeout = 0 }))
            assert.is_false(lock:is_locked())
            -- a waiting reader gets in once the writer leaves
            os.execute("(sleep 0.3; touch " .. H.q(go) .. ") &")
            lock:acquire_read({ timeout = 20 })
            assert.are.equal("read", lock:held_mode())
            lock:release()
            local rest, code = child:finish()
            assert.are.equal(0, code, rest)
        end)

        it("owner() of a lock a writer process holds is that process", function()
            local child, pid = H.holder(dir, "write", path, go)
            local o = filelock.ReadWriteLock(path):owner()
            assert.is_true(o.pid == pid)
            assert.is_false(o.this_process)
            H.write(go, "")
            local rest, code = child:finish()
            assert.are.equal(0, code, rest)
        end)

        it("readers that never leave the lock free do not starve a writer (loose bound)", function()
            -- Each reader process hands the read lock over between two
            -- handles: it takes the other handle's read lock before dropping
            -- the one it holds, so without the writers' gate the lock is
            -- never free and a writer would wait forever. With the gate, a
            -- waiting writer makes the hand-over time out; the reader then
            -- steps back and queues behind the writer (counted as `yielded`).
            local script = H.child_script(dir, "handover.lua", [[
local a, b = filelock.ReadWriteLock(arg[1]), filelock.ReadWriteLock(arg[1])
local stop = arg[2]
local rounds, yielded = 0, 0
local cur = a
cur:acquire_read({ timeout = 20 })
say("looping")
local deadline = os.time() + 20
while os.time() < deadline do
    local f = io.open(stop)
    if f then f:close() break end
    os.execute("sleep 0.02")
    local nxt = cur == a and b or a
    local ok, err = pcall(nxt.acquire_read, nxt, { timeout = 0.2 })
    if ok then
        cur:release()
        rounds = rounds + 1
    else
        if not filelock.is_timeout(err) then error(err, 0) end
        cur:release()
        nxt:acquire_read({ timeout = 20 })
        yielded = yielded + 1
    end
    cur = nxt
end
cur:release()
say("rounds", rounds, "yielded", yielded)
]])
            local stop = dir .. "/stop"
            local readers = {}
            for i = 1, 2 do
                readers[i] = H.spawn(H.lua_cmd(script, path, stop))
            end
            for i = 1, 2 do
                assert.are.equal("looping", readers[i]:line())
            end
            local lock = filelock.ReadWriteLock(path)
            -- the lock is never free: a single try fails
            assert.is_true(timed_out(lock.acquire_write, lock, { blocking = false }))
            local started = H.now()
            lock:acquire_write({ timeout = 10 })
            assert.is_true(H.now() - started <= 10)
            assert.are.equal("write", lock:held_mode())
            H.write(stop, "")
            lock:release()
            local yielded = 0
            for i = 1, 2 do
                local rest, code = readers[i]:finish()
                assert.are.equal(0, code, rest)
                local r, y = rest:match("rounds (%d+) yielded (%d+)")
                assert.truthy(r, rest)
                yielded = yielded + tonumber(y)
            end
            assert.is_true(yielded >= 1) -- the writer got in by closing the gate
        end)
    end)

    describe("against util-linux flock(1)", function()
        -- flock(1) on the lock file itself (it knows nothing of the gate).
        local function flock(args)
            local _, code = H.run(H.deadline_cmd("flock " .. args .. " " .. H.q(path) .. " true"))
            return code
        end

        it("a Lua reader excludes flock -x and coexists with flock -s", function()
            local lock = filelock.ReadWriteLock(path)
            lock:acquire_read()
            assert.are.equal(1, flock("-x -w 0.3"))
            assert.are.equal(1, flock("-x -n"))
            assert.are.equal(0, flock("-s -n"))
            lock:release()
            assert.are.equal(0, flock("-x -n"))
        end)

        it("a Lua writer excludes flock -s and flock -x", function()
            local lock = filelock.ReadWriteLock(path)
            lock:write(function()
                assert.are.equal(1, flock("-s -n"))
                assert.are.equal(1, flock("-x -w 0.2"))
            end)
            assert.are.equal(0, flock("-s -n"))
        end)

        local function flock_holder(mode)
            local child = H.spawn(H.deadline_cmd("flock " .. mode .. " " .. H.q(path)
                .. " sh -c " .. H.q("echo held; while [ ! -e " .. H.q(go)
                .. " ]; do sleep 0.02; done; echo done")))
            assert.are.equal("held", child:line())
            return child
        end

        it("a flock -s holder shares with Lua readers and excludes a Lua writer", function()
            local child = flock_holder("-s")
            local lock = filelock.ReadWriteLock(path)
            lock:read({ timeout = 0 }, function() end)
            assert.is_true(timed_out(lock.acquire_write, lock, { timeout = 0.3 }))
            os.execute("(sleep 0.3; touch " .. H.q(go) .. ") &")
            lock:write({ timeout = 20 }, function() end)
            local rest, code = child:finish()
            assert.are.equal(0, code, rest)
        end)

        it("a flock -x holder excludes Lua readers until it leaves", function()
            local child = flock_holder("-x")
            local lock = filelock.ReadWriteLock(path)
            assert.is_true(timed_out(lock.acquire_read, lock, { timeout = 0.3 }))
            assert.is_true(timed_out(lock.acquire_read, lock, { blocking = false }))
            os.execute("(sleep 0.3; touch " .. H.q(go) .. ") &")
            lock:read({ timeout = 20 }, function() end)
            local rest, code = child:finish()
            assert.are.equal(0, code, rest)
        end)
    end)
end)
