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

    -- Runs the loop with a hard deadline: a broken wait fails the test.
    local function run_loop()
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
        assert.is_false(expired, "the loop did not finish")
    end

    it("waits without blocking the loop, then wins", function()
        local holder = filelock.FileLock(path, { thread_local = false })
        holder:acquire()
        local lock = filelock.FileLock(path)
        local ticks, got = 0, nil
        local ticker = uv.new_timer()
        ticker:start(10, 10, function() ticks = ticks + 1 end)
        lock:acquire_async({ timeout = 15, loop = uv }, function(err, guard)
            got = { err = err, ticks = ticks, held = lock:is_locked() }
            assert.is_nil(err)
            guard:release()
            ticker:stop()
            ticker:close()
        end)
        local release = uv.new_timer()
        release:start(500, 0, function()
            release:close()
            holder:release() -- closes the lock file: the hub's watch fires
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

    it("rejects a missing callback and unknown options", function()
        local lock = filelock.FileLock(path)
        assert.has_error(function() lock:acquire_async({ loop = uv }) end)
        assert.has_error(function() lock:acquire_async({ timout = 1, loop = uv }, print) end)
    end)
end)
