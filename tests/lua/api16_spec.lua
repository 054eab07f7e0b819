-- The pure-Python filelock 3.15-3.32 API in Lua's idiom: acquire{cancel_check=fn},
-- FileLock(path, {on_acquired=fn}), filelock.lock_descriptor / unlock_descriptor.

package.path = os.getenv("FL_SOURCE_DIR") .. "/tests/lua/?.lua;" .. package.path
local H = require("helpers")
local filelock = require("filelock")

local function raised(f, ...)
    local ok, err = pcall(f, ...)
    assert(not ok, "expected an error, the call succeeded")
    return err
end

-- The number of a descriptor this process has open on `path`, found through
-- /proc (plain Lua has no way to get a file's descriptor).
local function fd_of(path)
    local stat = assert(io.open("/proc/self/stat")):read("*l")
    local pid = stat:match("^(%d+)")
    for fd = 3, 255 do
        local p = io.popen("readlink /proc/" .. pid .. "/fd/" .. fd .. " 2>/dev/null")
        local target = p:read("*l")
        p:close()
        if target == path then
            return fd
        end
    end
    error("no descriptor open on " .. path)
end

describe("3.15-3.32 API (" .. _VERSION .. ", " .. H.tag .. ")", function()
    local dir, path

    before_each(function()
        dir = H.tmpdir()
        path = dir .. "/api16.lock"
    end)

    after_each(function()
        collectgarbage()
        collectgarbage()
        H.cleanup()
    end)

    it("cancel_check ends a wait as a timeout", function()
        local holder, waiter = filelock.FileLock(path), filelock.FileLock(path)
        local calls = 0
        holder:acquire()
        local err = raised(function()
            waiter:acquire({ timeout = 30, cancel_check = function()
                calls = calls + 1
                return calls >= 3
            end })
        end)
        assert.is_true(filelock.is_timeout(err))
        assert.are.equal(3, calls)
        assert.is_false(waiter:is_locked())
        holder:release()
        -- Not called when the lock is free.
        waiter:acquire({ cancel_check = function() error("called") end })
        waiter:release()
    end)

    it("cancel_check's error propagates", function()
        local holder, waiter = filelock.SoftFileLock(path), filelock.SoftFileLock(path)
        holder:acquire()
        local err = raised(function()
            waiter:acquire({ timeout = 30, cancel_check = function() error("boom from check") end })
        end)
        assert.truthy(tostring(err):find("boom from check", 1, true))
        assert.are.equal(0, waiter:lock_counter())
        holder:release()
        assert.truthy(tostring(raised(function()
            waiter:acquire({ cancel_check = 42 })
        end)):find("cancel_check"))
    end)

    it("on_acquired gets the locked descriptor once per acquisition", function()
        local fds = {}
        local lock = filelock.FileLock(path, { on_acquired = function(fd)
            fds[#fds + 1] = fd
        end })
        local other = filelock.FileLock(path)
        lock:with(function()
            lock:with(function() end) -- re-entry: not called again
            assert.is_false(pcall(other.acquire, other, { timeout = 0 }))
        end)
        assert.are.equal(1, #fds)
        assert.are.equal("number", type(fds[1]))
    end)

    it("a failing on_acquired releases and re-raises", function()
        local lock = filelock.FileLock(path, { on_acquired = function(fd)
            error("refused fd " .. fd)
        end })
        local err = raised(function() lock:acquire() end)
        assert.truthy(tostring(err):find("refused fd", 1, true))
        assert.is_false(lock:is_locked())
        local other = filelock.FileLock(path)
        other:acquire({ timeout = 0 }) -- released: free at once
        other:release()
        assert.truthy(tostring(raised(function()
            filelock.SoftFileLock(path, { on_acquired = print })
        end)):find("on_acquired is not supported by SoftFileLock"))
        assert.truthy(tostring(raised(function()
            filelock.ReadWriteLock(path .. ".rw", { on_acquired = print })
        end)):find("on_acquired", 1, true))
    end)

    -- on_acquired travels on the shared fl_options object: a singleton is the
    -- same object for the same function and refuses another one.
    it("a singleton compares on_acquired by identity", function()
        local n = 0
        local hook = function() n = n + 1 end
        local lock = filelock.FileLock(path, { singleton = true, on_acquired = hook })
        assert.are.equal(lock, filelock.FileLock(path, { singleton = true, on_acquired = hook }))
        assert.is_true(filelock.is_error(raised(function()
            filelock.FileLock(path, { singleton = true, on_acquired = function() end })
        end)))
        assert.is_true(filelock.is_error(raised(function()
            filelock.FileLock(path, { singleton = true })
        end)))
        lock:with(function() end)
        assert.are.equal(1, n)
    end)

    it("lock_descriptor contends with FileLock", function()
        local f = assert(io.open(path, "w"))
        local fd = fd_of(path)
        local lock = filelock.FileLock(path)
        lock:acquire()
        assert.is_false(filelock.lock_descriptor(fd, { blocking = false }))
        lock:release()
        assert.is_true(filelock.lock_descriptor(fd))
        assert.is_false(pcall(lock.acquire, lock, { timeout = 0 }))
        filelock.unlock_descriptor(fd)
        lock:acquire({ timeout = 0 })
        lock:release()
        local err = raised(function() filelock.lock_descriptor(fd, { poll_interval = 0 }) end)
        assert.truthy(tostring(err):find("poll_interval must be finite and greater than 0", 1, true))
        f:close()
        assert.is_true(filelock.is_error(raised(function() filelock.lock_descriptor(fd) end)))
    end)
end)
