-- lock:acquire_async on a plain luv loop (lua-luv): the loop keeps running
-- during the wait (a timer keeps firing), timeouts and cancels end the wait
-- through the callback's contract, and the loop ends once nothing waits.
-- Skipped where luv is not installed for this Lua.

package.path = os.getenv("FL_SOURCE_DIR") .. "/tests/lua/?.lua;" .. package.path
local H = require("helpers")
local filelock = require("filelock")
local has_luv, uv = pcall(require, "luv")

describe("acquire_async (" .. _VERSION .. ", " .. H.tag .. ")", function()
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

    it("waits without blocking the loop, then wins", function()
        local holder = filelock.FileLock(path, { thread_local = false })
        holder:acquire()
        local lock = filelock.FileLock(path)
        local ticks, got = 0, nil
        local ticker = uv.new_timer()
        -- The holder lets go only once the loop has run the timer 10 times
        -- during the wait (not after a fixed time: a loaded machine may run
        -- the loop fewer times than 10 ms steps would give). A wait that
        -- blocked the loop would end only at its 15 s timeout, with an error.
        ticker:start(10, 10, function()
            ticks = ticks + 1
            if ticks == 10 and got == nil then
                holder:release() -- closes the lock file: the hub's watch fires
            end
        end)
        lock:acquire_async({ timeout = 15, loop = uv }, function(err, guard)
            got = { err = err, ticks = ticks, held = lock:is_locked() }
            assert.is_nil(err)
            guard:release()
            ticker:stop()
            ticker:close()
        end)
        run_loop()
        assert.is_not_nil(got, "the callback never ran")
        assert.is_true(got.ticks >= 10, "the timer fired " .. got.ticks .. " times during the wait")
        local other = filelock.FileLock(path, { timeout = 0 })
        other:acquire()
        other:release()
    end)

    it("reports a timeout through the callback", function()
        local holder = filelock.FileLock(path, { thread_local = false })
        holder:acquire()
        local got
        filelock.FileLock(path):acquire_async({ timeout = 0.2, loop = uv }, function(err, guard)
            got = { err = err, guard = guard }
        end)
        run_loop()
        assert.is_true(filelock.is_timeout(got.err))
        assert.is_nil(got.guard)
        holder:release()
    end)

    it("cancel withdraws the wait: no callback, nothing held", function()
        local holder = filelock.FileLock(path, { thread_local = false })
        holder:acquire()
        local lock = filelock.FileLock(path)
        local called = false
        local cancel = lock:acquire_async({ loop = uv }, function() called = true end)
        local t = uv.new_timer()
        t:start(100, 0, function()
            t:close()
            cancel()
            holder:release()
        end)
        run_loop()
        assert.is_false(called)
        local other = filelock.FileLock(path, { timeout = 0 })
        other:acquire()
        other:release()
    end)

    -- ReadWriteLock through the hub: readers share, a waiting writer holds
    -- later readers back (the gate), and the loop keeps running.
    it("read/write: a writer waits for the readers, a later reader for the writer", function()
        local reader = filelock.ReadWriteLock(path, { thread_local = false })
        reader:acquire_read()
        local rw = filelock.ReadWriteLock(path)
        local order = {}
        local shared_guard
        -- Readers share: won while another reader holds.
        rw:acquire_read_async({ timeout = 15, loop = uv }, function(err, guard)
            assert.is_nil(err)
            assert.are.equal("read", guard.mode)
            order[#order + 1] = "reader2"
            shared_guard = guard
        end)
        rw:acquire_write_async({ timeout = 15, loop = uv }, function(err, guard)
            assert.is_nil(err)
            assert.are.equal("write", guard.mode)
            order[#order + 1] = "writer"
            guard:release()
        end)
        local t = uv.new_timer()
        t:start(200, 0, function()
            t:close()
            -- The writer waits (it closed the gate); a reader asked now
            -- waits behind it.
            rw:acquire_read_async({ timeout = 15, loop = uv }, function(err, guard)
                assert.is_nil(err)
                order[#order + 1] = "late_reader"
                guard:release()
            end)
            local t2 = uv.new_timer()
            t2:start(200, 0, function()
                t2:close()
                order[#order + 1] = "readers_out"
                shared_guard:release()
                reader:release()
            end)
        end)
        run_loop()
        assert.are.same({ "reader2", "readers_out", "writer", "late_reader" }, order)
        local other = filelock.ReadWriteLock(path)
        other:acquire_write({ timeout = 0 })
        other:release()
    end)

    it("read/write: a timeout and a cancel leave nothing held (nor the gate)", function()
        local writer = filelock.ReadWriteLock(path, { thread_local = false })
        writer:acquire_write()
        local rw = filelock.ReadWriteLock(path)
        local got
        rw:acquire_read_async({ timeout = 0.2, loop = uv }, function(err, guard)
            got = { err = err, guard = guard }
        end)
        local called = false
        local cancel = rw:acquire_write_async({ loop = uv }, function() called = true end)
        local t = uv.new_timer()
        t:start(100, 0, function()
            t:close()
            cancel()
        end)
        run_loop()
        assert.is_true(filelock.is_timeout(got.err))
        assert.is_nil(got.guard)
        assert.is_false(called)
        writer:release()
        local other = filelock.ReadWriteLock(path)
        other:acquire_read({ timeout = 0 })
        other:release()
        other:acquire_write({ timeout = 0 })
        other:release()
        assert.has_error(function() rw:acquire_read_async({ loop = uv }) end)
    end)

    it("rejects a missing callback and unknown options", function()
        local lock = filelock.FileLock(path)
        assert.has_error(function() lock:acquire_async({ loop = uv }) end)
        assert.has_error(function() lock:acquire_async({ timout = 1, loop = uv }, print) end)
    end)

    -- on_acquired through the hub: async_hook_spec.lua.
end)
