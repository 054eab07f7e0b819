-- lock:acquire_async runs a FileLock's on_acquired for every win, as the
-- blocking acquire does: inside acquire_async for a win at once, inside the
-- loop's dispatch for a win after a wait. A raising hook refuses the lock:
-- the core releases it and callback(err) gets what the hook raised. Then
-- what a hostile hook can do: yield, raise nil, release or cancel, start
-- more waits, run the loop, acquire the same handle. "Free" and "held" are
-- checked from another process (util-linux flock -n).
-- Skipped where luv is not installed for this Lua.

package.path = os.getenv("FL_SOURCE_DIR") .. "/tests/lua/?.lua;" .. package.path
local H = require("helpers")
local filelock = require("filelock")
local has_luv, uv = pcall(require, "luv")

-- true when another process can take the lock file now (flock -n).
local function free_elsewhere(path)
    local _, code = H.run(H.deadline_cmd("flock -n " .. H.q(path) .. " true"))
    assert(code == 0 or code == 1, "flock(1) failed with " .. tostring(code))
    return code == 0
end

-- The file a descriptor of this process is open on.
local function fd_target(fd)
    local out, code = H.run("readlink /proc/" .. H.pid() .. "/fd/" .. fd)
    assert(code == 0, out)
    return (out:gsub("%s+$", ""))
end

describe("acquire_async with on_acquired (" .. _VERSION .. ", " .. H.tag .. ")", function()
    local dir, path

    before_each(function()
        dir = H.tmpdir()
        path = dir .. "/x.lock"
    end)

    after_each(function()
        collectgarbage()
        collectgarbage()
        H.cleanup()
    end)

    if not has_luv then
        pending("luv is not installed for " .. _VERSION .. " (Debian: lua-luv)")
        return
    end

    local function run_loop()
        H.run_loop(uv)
    end

    -- A holder in this process (another handle: the hub's waits are other
    -- owners) released after `ms` milliseconds of loop time.
    local function hold_for(ms)
        local holder = filelock.FileLock(path, { thread_local = false })
        holder:acquire()
        local t = uv.new_timer()
        t:start(ms, 0, function()
            t:close()
            holder:release()
        end)
        return holder
    end

    -- What the hook sees of its descriptor: the lock file, and the flock
    -- on it is ours (taking it again on the same open file succeeds).
    local function inspect(fd)
        return {
            fd = fd,
            integer = math.type == nil and fd == math.floor(fd) or math.type(fd) == "integer",
            target = fd_target(fd),
            relock = filelock.lock_descriptor(fd, { blocking = false }),
            free = free_elsewhere(path),
        }
    end

    local function check_seen(seen)
        assert.is_true(seen.fd >= 0)
        assert.is_true(seen.integer, "fd is not an integer: " .. tostring(seen.fd))
        assert.are.equal(path, seen.target)
        assert.is_true(seen.relock)
        assert.is_false(seen.free, "the lock was free while its hook ran")
    end

    it("runs the hook once for a win at once, with the locked descriptor", function()
        local seen = {}
        local lock = filelock.FileLock(path, { on_acquired = function(fd)
            seen[#seen + 1] = inspect(fd)
        end })
        local got
        lock:acquire_async({ loop = uv }, function(err, guard)
            got = { err = err, calls = #seen, free = free_elsewhere(path) }
            guard:release()
        end)
        assert.are.equal(1, #seen, "the hook runs inside acquire_async for a win at once")
        run_loop()
        assert.is_nil(got.err)
        assert.are.equal(1, got.calls)
        assert.is_false(got.free)
        assert.are.equal(1, #seen)
        check_seen(seen[1])
        assert.is_true(free_elsewhere(path))
    end)

    it("runs the hook once for a win after a wait, not before the release", function()
        local seen, released = {}, false
        local holder = hold_for(300)
        local lock = filelock.FileLock(path, { on_acquired = function(fd)
            local s = inspect(fd)
            s.released = not holder:is_locked()
            seen[#seen + 1] = s
        end })
        local got
        lock:acquire_async({ loop = uv, timeout = 15 }, function(err, guard)
            got = { err = err, calls = #seen, free = free_elsewhere(path) }
            guard:release()
            released = true
        end)
        assert.are.equal(0, #seen)
        run_loop()
        assert.is_nil(got.err)
        assert.is_true(released)
        assert.are.equal(1, got.calls)
        assert.is_false(got.free)
        assert.are.equal(1, #seen)
        assert.is_true(seen[1].released)
        check_seen(seen[1])
        assert.is_true(free_elsewhere(path))
    end)

    -- The same lock object waited on twice: two owners, two wins, two calls.
    it("runs once per win for several waits of one object", function()
        local calls = 0
        local lock = filelock.FileLock(path, { on_acquired = function() calls = calls + 1 end })
        hold_for(100)
        local order = {}
        for i = 1, 3 do
            lock:acquire_async({ loop = uv, timeout = 15 }, function(err, guard)
                assert.is_nil(err)
                order[#order + 1] = { i, calls }
                local t = uv.new_timer()
                t:start(20, 0, function()
                    t:close()
                    guard:release()
                end)
            end)
        end
        run_loop()
        assert.are.same({ { 1, 1 }, { 2, 2 }, { 3, 3 } }, order)
        assert.are.equal(3, calls)
        assert.is_true(free_elsewhere(path))
    end)

    -- The error value itself reaches the callback (a table stays that table).
    for _, case in ipairs({ { "at once", nil }, { "after a wait", 200 } }) do
        local when, wait_ms = case[1], case[2]
        it("a raising hook refuses the lock " .. when .. ": callback(err), lock free", function()
            local calls = 0
            local raised = setmetatable({ why = "no" }, { __tostring = function() return "no" end })
            local lock = filelock.FileLock(path, { on_acquired = function()
                calls = calls + 1
                error(raised)
            end })
            if wait_ms then
                hold_for(wait_ms)
            end
            local got = {}
            lock:acquire_async({ loop = uv, timeout = 15 }, function(err, guard)
                got[#got + 1] = { err = err, guard = guard, free = free_elsewhere(path),
                    locked = lock:is_locked() }
            end)
            run_loop()
            assert.are.equal(1, #got, "the callback runs once")
            assert.are.equal(raised, got[1].err)
            assert.is_nil(got[1].guard)
            assert.is_true(got[1].free)
            assert.is_false(got[1].locked)
            assert.are.equal(1, calls)
            -- The hook's error left nothing behind: a string error, the
            -- blocking acquire re-raises the same way.
            local ok, err = pcall(lock.acquire, lock, { timeout = 0 })
            assert.is_false(ok)
            assert.are.equal(raised, err)
            assert.are.equal(2, calls)
            assert.is_true(free_elsewhere(path))
        end)

        it("a string error " .. when .. " arrives as acquire() raises it", function()
            local lock = filelock.FileLock(path, { on_acquired = function() error("refused", 0) end })
            if wait_ms then
                hold_for(wait_ms)
            end
            local got
            lock:acquire_async({ loop = uv, timeout = 15 }, function(err) got = err end)
            run_loop()
            assert.are.equal("refused", got)
            assert.is_true(free_elsewhere(path))
        end)

        -- error(nil) / error(false) would read as a win without a guard:
        -- the wait ends with the core's refusal error instead.
        it("a hook raising nil or false " .. when .. " ends with the core's error", function()
            for _, v in ipairs({ "nil", "false" }) do
                local value = v == "false" and false or nil
                local lock = filelock.FileLock(path, { on_acquired = function() error(value) end })
                if wait_ms then
                    hold_for(wait_ms)
                end
                local got = {}
                lock:acquire_async({ loop = uv, timeout = 15 }, function(err, guard)
                    got[#got + 1] = { err = err, guard = guard }
                end)
                run_loop()
                assert.are.equal(1, #got)
                assert.is_true(filelock.is_error(got[1].err), v)
                assert.are.equal("interrupted", got[1].err.kind)
                assert.are.equal(path, got[1].err.lock_file)
                assert.truthy(got[1].err.message:find("on_acquired", 1, true))
                assert.is_nil(got[1].guard)
                assert.is_true(free_elsewhere(path))
            end
        end)
    end

    -- A yield cannot cross the core's C call: an error, so a refusal.
    it("a hook that yields refuses the lock (at once, in a coroutine; after a wait)", function()
        local lock = filelock.FileLock(path, { on_acquired = function() coroutine.yield(1) end })
        local got = {}
        local co = coroutine.create(function()
            lock:acquire_async({ loop = uv }, function(err, guard)
                got[#got + 1] = { err = err, guard = guard }
            end)
            return "done"
        end)
        local ok, res = coroutine.resume(co)
        assert.is_true(ok, tostring(res))
        assert.are.equal("done", res, "the hook's yield must not suspend acquire_async")
        run_loop()
        hold_for(200)
        lock:acquire_async({ loop = uv, timeout = 15 }, function(err, guard)
            got[#got + 1] = { err = err, guard = guard }
        end)
        run_loop()
        assert.are.equal(2, #got)
        for i = 1, 2 do
            assert.is_nil(got[i].guard)
            assert.truthy(tostring(got[i].err):find("yield", 1, true), tostring(got[i].err))
        end
        assert.is_true(free_elsewhere(path))
    end)

    -- cancel() during the wait withdraws it from the hub: no attempt is
    -- made for it any more, so a later release runs no hook.
    it("cancel during the wait: the hook never runs, nothing is held", function()
        local calls = 0
        local lock = filelock.FileLock(path, { on_acquired = function() calls = calls + 1 end })
        local holder = hold_for(300)
        local called = false
        local cancel = lock:acquire_async({ loop = uv }, function() called = true end)
        local t = uv.new_timer()
        t:start(100, 0, function()
            t:close()
            cancel()
        end)
        run_loop()
        assert.is_false(holder:is_locked())
        assert.is_false(called)
        assert.are.equal(0, calls)
        assert.is_true(free_elsewhere(path))
    end)

    -- A win at once has run the hook inside acquire_async; cancel() before
    -- the loop reports it gives the lock back.
    it("cancel after a win at once: the hook ran, the lock is released", function()
        local calls = 0
        local lock = filelock.FileLock(path, { on_acquired = function() calls = calls + 1 end })
        local called = false
        local cancel = lock:acquire_async({ loop = uv }, function() called = true end)
        assert.are.equal(1, calls)
        assert.is_false(free_elsewhere(path))
        cancel()
        run_loop()
        assert.is_false(called)
        assert.are.equal(1, calls)
        assert.is_true(free_elsewhere(path))
    end)

    -- on_acquired is FileLock-only; a ReadWriteLock waiting in the same hub
    -- as a hooked FileLock runs no hook and works as before.
    it("ReadWriteLock: refused at creation, unaffected in a hub with hooks", function()
        assert.has_error(function()
            filelock.ReadWriteLock(path .. ".rw", { on_acquired = print })
        end)
        local calls = 0
        local lock = filelock.FileLock(path, { on_acquired = function() calls = calls + 1 end })
        local writer = filelock.ReadWriteLock(path .. ".rw", { thread_local = false })
        writer:acquire_write()
        hold_for(100)
        local rw = filelock.ReadWriteLock(path .. ".rw")
        local order = {}
        lock:acquire_async({ loop = uv, timeout = 15 }, function(err, guard)
            assert.is_nil(err)
            order[#order + 1] = "file"
            guard:release()
        end)
        rw:acquire_read_async({ loop = uv, timeout = 15 }, function(err, guard)
            assert.is_nil(err)
            assert.are.equal("read", guard.mode)
            order[#order + 1] = "read"
            guard:release()
        end)
        local t = uv.new_timer()
        t:start(200, 0, function()
            t:close()
            writer:release()
        end)
        run_loop()
        assert.are.same({ "file", "read" }, order)
        assert.are.equal(1, calls)
        assert.is_true(free_elsewhere(path))
        assert.is_true(free_elsewhere(path .. ".rw"))
    end)

    ---------------------------------------------------------------------------
    -- Hostile hooks
    ---------------------------------------------------------------------------

    -- lock:release() from the hook: the hub's owner is not the thread's, and
    -- its hold is not recorded before the hook returned, so the release
    -- finds nothing of the caller's to release; the win stands.
    for _, case in ipairs({ { "at once", nil }, { "after a wait", 200 } }) do
        local when, wait_ms = case[1], case[2]
        it("a hook that releases the lock itself " .. when, function()
            local lock
            local results = {}
            lock = filelock.FileLock(path, { on_acquired = function()
                results[#results + 1] = { pcall(lock.release, lock) }
                results[#results + 1] = { pcall(lock.release, lock, { force = true }) }
            end })
            if wait_ms then
                hold_for(wait_ms)
            end
            local got
            lock:acquire_async({ loop = uv, timeout = 15 }, function(err, guard)
                got = { err = err, free = free_elsewhere(path) }
                if guard then
                    guard:release()
                end
            end)
            run_loop()
            assert.is_nil(got.err)
            assert.is_false(got.free, "the win must stand (the hook released nothing of it)")
            assert.are.equal(2, #results)
            assert.is_true(free_elsewhere(path))
            -- The blocking acquire: the same (its hold is not recorded yet).
            local g = lock:acquire({ timeout = 0 })
            assert.is_false(free_elsewhere(path))
            g:release()
            assert.is_true(free_elsewhere(path))
        end)
    end

    -- acquire_async from the hook: started once the core returned (the hub
    -- is not re-entrant); it waits for the first win's release and runs the
    -- hook again for its own win.
    for _, case in ipairs({ { "at once", nil }, { "after a wait", 200 } }) do
        local when, wait_ms = case[1], case[2]
        it("a hook that starts another acquire_async on the same lock " .. when, function()
            local lock
            local calls, order = 0, {}
            lock = filelock.FileLock(path, { on_acquired = function()
                calls = calls + 1
                if calls == 1 then
                    lock:acquire_async({ loop = uv, timeout = 15 }, function(err, guard)
                        assert.is_nil(err)
                        order[#order + 1] = { "second", calls }
                        guard:release()
                    end)
                end
            end })
            if wait_ms then
                hold_for(wait_ms)
            end
            lock:acquire_async({ loop = uv, timeout = 15 }, function(err, guard)
                assert.is_nil(err)
                order[#order + 1] = { "first", calls }
                local t = uv.new_timer()
                t:start(50, 0, function()
                    t:close()
                    guard:release()
                end)
            end)
            run_loop()
            assert.are.same({ { "first", 1 }, { "second", 2 } }, order)
            assert.is_true(free_elsewhere(path))
        end)
    end

    -- A hook that cancels its own wait (inside the dispatch that is winning
    -- it) or another pending wait: done once the core returned; the win it
    -- was running for is given back, no callback runs.
    it("a hook that cancels its own wait or another one", function()
        local cancels, calls = {}, 0
        local lock = filelock.FileLock(path, { on_acquired = function()
            calls = calls + 1
            cancels[1]()
            cancels[2]()
        end })
        local other = filelock.FileLock(path)
        hold_for(200)
        local called = {}
        cancels[1] = lock:acquire_async({ loop = uv, timeout = 15 }, function()
            called[#called + 1] = "own"
        end)
        cancels[2] = other:acquire_async({ loop = uv, timeout = 15 }, function()
            called[#called + 1] = "other"
        end)
        run_loop()
        assert.are.equal(1, calls)
        assert.are.same({}, called)
        assert.is_true(free_elsewhere(path))
        -- The hub is still good.
        local won
        lock:acquire_async({ loop = uv }, function(err, guard)
            won = err == nil
            guard:release()
        end)
        run_loop()
        assert.is_true(won)
    end)

    -- A hook that releases another async guard, or runs the loop (uv.run:
    -- the poll callback would dispatch inside the dispatch): the release
    -- waits for the core to return, the nested dispatch does nothing.
    it("a hook that releases another guard and runs the loop", function()
        local path2 = dir .. "/y.lock"
        local g2
        filelock.FileLock(path2):acquire_async({ loop = uv }, function(err, guard)
            assert.is_nil(err)
            g2 = guard
        end)
        run_loop()
        assert.is_false(free_elsewhere(path2))
        local during
        local lock = filelock.FileLock(path, { on_acquired = function()
            g2:release()
            during = free_elsewhere(path2)
            uv.run("nowait")
        end })
        hold_for(100)
        local got
        lock:acquire_async({ loop = uv, timeout = 15 }, function(err, guard)
            got = { err = err, free2 = free_elsewhere(path2) }
            guard:release()
        end)
        run_loop()
        assert.is_nil(got.err)
        assert.is_false(during, "released inside the core")
        assert.is_true(got.free2)
        assert.is_true(free_elsewhere(path))
        assert.is_true(free_elsewhere(path2))
    end)

    -- The blocking acquire of the same file from its hook (same handle or
    -- another one): the win is recorded only once the hook returned, so a
    -- wait for it would wait for itself. Once hung the process; waiting
    -- forever is now a `deadlock` error at once, timeout 0 a timeout; the
    -- win stands either way.
    for _, tl in ipairs({ true, false }) do
        it("a hook that acquires its own lock file (thread_local=" .. tostring(tl) .. ")", function()
            local lock, other
            local inner = {}
            lock = filelock.FileLock(path, { thread_local = tl, on_acquired = function()
                for _, target in ipairs({ lock, other }) do
                    for _, timeout in ipairs({ 0, -1 }) do
                        local ok, err = pcall(target.acquire, target, { timeout = timeout })
                        inner[#inner + 1] = ok and "won" or err.kind
                        if ok then
                            err:release()
                        end
                    end
                end
            end })
            other = filelock.FileLock(path)
            local got
            lock:acquire_async({ loop = uv }, function(err, guard)
                got = { err = err, free = free_elsewhere(path) }
                if guard then
                    guard:release()
                end
            end)
            run_loop()
            hold_for(100)
            lock:acquire_async({ loop = uv, timeout = 15 }, function(err, guard)
                got.err2 = err
                guard:release()
            end)
            run_loop()
            assert.is_nil(got.err)
            assert.is_nil(got.err2)
            assert.is_false(got.free)
            local want = { "timeout", "deadlock", "timeout", "deadlock" }
            assert.are.same({ want[1], want[2], want[3], want[4], want[1], want[2], want[3], want[4] },
                inner)
            -- The blocking acquire's hook: the same rule.
            inner = {}
            lock:acquire():release()
            assert.are.same(want, inner)
            assert.is_true(free_elsewhere(path))
        end)
    end
end)
