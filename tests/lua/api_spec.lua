-- In-process behaviour of the Lua binding: construction, options, fields,
-- acquire/release/with, errors, garbage collection. Runs on every Lua.

package.path = os.getenv("FL_SOURCE_DIR") .. "/tests/lua/?.lua;" .. package.path
local H = require("helpers")
local filelock = require("filelock")

-- Calls f and returns the error object it raised (fails if it did not).
local function raised(f, ...)
    local ok, err = pcall(f, ...)
    assert(not ok, "expected an error, the call succeeded")
    return err
end

describe("filelock (" .. _VERSION .. ", " .. H.tag .. ")", function()
    local dir, path

    before_each(function()
        dir = H.tmpdir()
        path = dir .. "/high_ground.txt.lock"
    end)

    after_each(function()
        collectgarbage()
        collectgarbage()
        H.cleanup()
    end)

    it("loads from the build directory of this Lua version", function()
        local where = package.searchpath and package.searchpath("filelock.core", package.cpath)
        if where then
            assert.are.equal(H.lua_dir .. "/filelock/core.so", where)
        end
        assert.is_string(filelock.version)
        assert.truthy(filelock.version:match("^%d+%.%d+%.%d+$"))
    end)

    describe("FileLock()", function()
        it("has the documented fields and defaults", function()
            local lock = filelock.FileLock(path)
            assert.are.equal(path, lock.lock_file)
            assert.is_true(lock.timeout == -1)
            assert.is_true(lock.blocking)
            assert.is_nil(lock.mode)
            assert.is_true(lock.thread_local)
            assert.is_false(lock.singleton)
            assert.are.equal("kernel", lock.kind)
            assert.is_false(lock:is_locked())
            assert.is_true(lock:lock_counter() == 0)
            assert.is_true(filelock.is_lock(lock))
            assert.are.equal('FileLock("' .. path .. '")', tostring(lock))
            -- nothing is created before the first acquire
            assert.is_false(H.exists(path))
        end)

        it("takes every option of the options table", function()
            local lock = filelock.FileLock(path, {
                timeout = 1.5, mode = 384, thread_local = false, blocking = false,
                singleton = true, poll_interval = 0.02,
            })
            assert.is_true(lock.timeout == 1.5)
            assert.is_true(lock.mode == 384)
            assert.is_false(lock.thread_local)
            assert.is_false(lock.blocking)
            assert.is_true(lock.singleton)
            assert.is_true(math.abs(lock.poll_interval - 0.02) < 1e-12)
        end)

        it("creates the lock file with an explicit mode", function()
            local lock = filelock.FileLock(path, { mode = 416 }) -- 0640
            lock:with(function() end)
            local out = H.run("stat -c %a " .. H.q(path))
            assert.are.equal("640", out:match("%d+"))
        end)

        it("rejects unknown options and wrong types as invalid_argument", function()
            local e = raised(filelock.FileLock, path, { timout = 1 })
            assert.are.equal("invalid_argument", e.kind)
            assert.truthy(tostring(e):find("timout", 1, true))
            e = raised(filelock.FileLock, path, { timeout = "1" })
            assert.are.equal("invalid_argument", e.kind)
            e = raised(filelock.FileLock, path, { mode = 1.5 })
            assert.are.equal("invalid_argument", e.kind)
            -- beyond a C int: refused, never cast into some other mode
            e = raised(filelock.FileLock, path, { mode = 2 ^ 40 + 384 })
            assert.are.equal("invalid_argument", e.kind)
            e = raised(filelock.ReadWriteLock, path, { mode = -2 ^ 33 })
            assert.are.equal("invalid_argument", e.kind)
            e = raised(filelock.FileLock, path, 5)
            assert.are.equal("invalid_argument", e.kind)
            e = raised(filelock.FileLock, 42)
            assert.are.equal("invalid_argument", e.kind)
        end)

        it("reports core validation errors (empty path, NUL in path, NaN)", function()
            local e = raised(filelock.FileLock, "")
            assert.are.equal("invalid_argument", e.kind)
            assert.are.equal("EINVAL", e.code)
            e = raised(filelock.FileLock, dir .. "/a\0b.lock")
            assert.are.equal("invalid_argument", e.kind)
            e = raised(filelock.FileLock, path, { timeout = 0 / 0 })
            assert.are.equal("invalid_argument", e.kind)
            e = raised(filelock.FileLock, path, { poll_interval = -1 })
            assert.are.equal("invalid_argument", e.kind)
        end)
    end)

    describe("settable fields", function()
        it("timeout and blocking can be changed, the rest is read-only", function()
            local lock = filelock.FileLock(path)
            lock.timeout = 3
            assert.is_true(lock.timeout == 3)
            lock.blocking = false
            assert.is_false(lock.blocking)
            lock.poll_interval = 0.1
            assert.is_true(math.abs(lock.poll_interval - 0.1) < 1e-12)
            local e = raised(function() lock.timeout = 0 / 0 end)
            assert.are.equal("invalid_argument", e.kind)
            e = raised(function() lock.blocking = 1 end)
            assert.are.equal("invalid_argument", e.kind)
            e = raised(function() lock.lock_file = "x" end)
            assert.are.equal("invalid_argument", e.kind)
            e = raised(function() lock.mode = 448 end)
            assert.are.equal("invalid_argument", e.kind)
            assert.are.equal(path, lock.lock_file)
        end)

        it("a changed timeout/blocking is what acquire uses", function()
            local holder = filelock.FileLock(path)
            holder:acquire()
            local other = filelock.FileLock(path) -- another open file: contends
            other.timeout = 0
            assert.is_true(filelock.is_timeout(raised(other.acquire, other)))
            other.timeout = -1
            other.blocking = false -- one attempt whatever the timeout
            assert.is_true(filelock.is_timeout(raised(other.acquire, other)))
            holder:release()
            other:acquire()
            assert.is_true(other:is_locked())
            other:release()
        end)
    end)

    describe("acquire and release", function()
        it("count recursion and release one level or all", function()
            local lock = filelock.FileLock(path)
            lock:acquire()
            lock:acquire()
            assert.is_true(lock:is_locked())
            assert.is_true(lock:lock_counter() == 2)
            assert.is_true(H.exists(path))
            lock:release()
            assert.is_true(lock:lock_counter() == 1)
            lock:acquire()
            lock:acquire()
            lock:release({ force = true })
            assert.is_true(lock:lock_counter() == 0)
            assert.is_false(lock:is_locked())
            -- releasing an unheld lock is a no-op; the kernel lock file stays
            lock:release()
            assert.is_true(H.exists(path))
        end)

        it("acquire returns a guard that releases its level once", function()
            local lock = filelock.FileLock(path)
            local outer = lock:acquire()
            local inner = lock:acquire({ timeout = 5 })
            assert.is_true(lock:lock_counter() == 2)
            inner:release()
            inner:release() -- second call does nothing
            assert.is_true(lock:lock_counter() == 1)
            assert.are.equal(lock, outer.lock)
            outer:release()
            assert.is_false(lock:is_locked())
        end)

        it("acquire options are checked", function()
            local lock = filelock.FileLock(path)
            assert.are.equal("invalid_argument", raised(lock.acquire, lock, { mode = 1 }).kind)
            assert.are.equal("invalid_argument", raised(lock.acquire, lock, { timeout = 0 / 0 }).kind)
            assert.are.equal("invalid_argument",
                raised(lock.acquire, lock, { poll_interval = -2 }).kind)
            assert.are.equal("invalid_argument", raised(lock.release, lock, { forse = true }).kind)
            assert.is_false(lock:is_locked())
        end)
    end)

    describe("with", function()
        it("acquires, calls, releases and returns the results", function()
            local lock = filelock.FileLock(path)
            local seen
            local a, b, c = lock:with(function(x, y)
                seen = lock:lock_counter()
                return x + y, "two", nil
            end, 1, 2)
            assert.is_true(seen == 1)
            assert.is_true(a == 3)
            assert.are.equal("two", b)
            assert.is_nil(c)
            assert.is_false(lock:is_locked())
        end)

        it("takes an options table first", function()
            local holder = filelock.FileLock(path)
            holder:acquire()
            local other = filelock.FileLock(path)
            local called = false
            local e = raised(other.with, other, { timeout = 0.1 }, function() called = true end)
            assert.is_true(filelock.is_timeout(e))
            assert.is_false(called)
            holder:release()
            assert.is_true(other:with({ timeout = 5 }, function() return other:is_locked() end))
            assert.is_false(other:is_locked())
        end)

        it("re-raises the function's error unchanged and releases", function()
            local lock = filelock.FileLock(path)
            local mine = setmetatable({}, { __tostring = function() return "mine" end })
            local e = raised(lock.with, lock, function() error(mine) end)
            assert.are.equal(mine, e) -- the very same object
            assert.is_false(lock:is_locked())
            e = raised(lock.with, lock, function() error("plain message", 0) end)
            assert.are.equal("plain message", e) -- no position added
            assert.is_false(lock:is_locked())
            -- also inside an outer hold: only the level taken by with is dropped
            lock:acquire()
            raised(lock.with, lock, function() error(mine) end)
            assert.is_true(lock:lock_counter() == 1)
            lock:release()
        end)

        it("needs a function", function()
            local lock = filelock.FileLock(path)
            assert.are.equal("invalid_argument", raised(lock.with, lock, { timeout = 1 }).kind)
            assert.is_false(lock:is_locked())
        end)
    end)

    describe("errors", function()
        it("Timeout has kind, lock_file, message and is_timeout", function()
            local holder = filelock.FileLock(path)
            holder:acquire()
            local other = filelock.FileLock(path, { timeout = 1 })
            local ok, err = pcall(other.acquire, other, { timeout = 0 })
            assert.is_false(ok)
            assert.is_true(filelock.is_timeout(err))
            assert.is_true(filelock.is_error(err))
            assert.are.equal(filelock.Timeout, getmetatable(err))
            assert.are.equal("timeout", err.kind)
            assert.are.equal("ETIMEOUT", err.code)
            assert.are.equal(path, err.lock_file)
            assert.is_nil(err.errno)
            assert.are.equal("The file lock '" .. path .. "' could not be acquired.", tostring(err))
            -- a wait with a timeout also ends in Timeout, counter unchanged
            err = raised(other.acquire, other, { timeout = 0.2 })
            assert.is_true(filelock.is_timeout(err))
            assert.is_true(other:lock_counter() == 0)
            holder:release()
        end)

        it("other errors are not timeouts", function()
            assert.is_false(filelock.is_timeout("The file lock 'x' could not be acquired."))
            assert.is_false(filelock.is_timeout(nil))
            local e = raised(filelock.FileLock, "")
            assert.is_false(filelock.is_timeout(e))
            assert.is_true(filelock.is_error(e))
            assert.are.equal(filelock.Error, getmetatable(e))
        end)

        it("is_directory with errno", function()
            local lock = filelock.FileLock(dir)
            local e = raised(lock.acquire, lock)
            assert.are.equal("is_directory", e.kind)
            assert.are.equal(dir, e.lock_file)
            assert.is_true(e.errno == 21) -- EISDIR on Linux
            assert.truthy(tostring(e):find(dir, 1, true))
            assert.is_false(lock:is_locked())
        end)

        it("deadlock instead of hanging: two handles, one thread, wait forever", function()
            local a = filelock.FileLock(path)
            local b = filelock.FileLock(path)
            a:acquire()
            local e = raised(b.acquire, b) -- timeout -1
            assert.are.equal("deadlock", e.kind)
            assert.are.equal(path, e.lock_file)
            assert.is_true(e.errno == 35) -- EDEADLK on Linux
            assert.is_false(b:is_locked())
            -- with a timeout it is an ordinary timeout
            assert.is_true(filelock.is_timeout(raised(b.acquire, b, { timeout = 0.05 })))
            a:release()
        end)

        it("maps every core code to a kind exactly once", function()
            local names = {}
            for code = -1, -40, -1 do
                local name = require("filelock.core").fl_err_name(code)
                if not name or name == "" or name:match("^UNKNOWN") or name == "OK" then
                    break
                end
                names[#names + 1] = name
            end
            assert.is_true(#names >= 18)
            for _, name in ipairs(names) do
                assert.is_string(filelock.KINDS[name], "no kind for " .. name)
            end
        end)
    end)

    describe("SoftFileLock", function()
        it("is a marker file, exclusive, removed on release", function()
            local lock = filelock.SoftFileLock(path, { timeout = 0 })
            assert.are.equal("soft", lock.kind)
            assert.are.equal('SoftFileLock("' .. path .. '")', tostring(lock))
            lock:with(function()
                assert.is_true(H.exists(path))
                local other = filelock.SoftFileLock(path)
                local e = raised(other.acquire, other, { timeout = 0.1 })
                assert.is_true(filelock.is_timeout(e))
            end)
            assert.is_false(H.exists(path))
        end)
    end)

    describe("singleton", function()
        it("two objects share one handle and its state", function()
            local a = filelock.FileLock(path, { singleton = true })
            local b = filelock.FileLock(path, { singleton = true })
            a:acquire()
            assert.is_true(b:is_locked())
            b:acquire()
            assert.is_true(a:lock_counter() == 2)
            a:release({ force = true })
            assert.is_false(b:is_locked())
            -- different settings for the same lock file are refused
            local e = raised(filelock.FileLock, path, { singleton = true, timeout = 7 })
            assert.are.equal("invalid_argument", e.kind)
        end)

        it("is one object per class and lock file, the core deciding sameness", function()
            local a = filelock.FileLock(path, { singleton = true })
            local dir, name = path:match("^(.*)/([^/]+)$")
            local b = filelock.FileLock(dir .. "/./" .. name, { singleton = true })
            assert.is_true(rawequal(a, b))
            assert.is_false(rawequal(a, filelock.FileLock(path)))
            -- the pure-Python package's words, from the core
            local e = raised(filelock.FileLock, path, { singleton = true, timeout = 7 })
            assert.are.equal(1, e.message:find(
                "Singleton lock instances cannot be initialized with differing arguments", 1, true))
            -- the spare handle references of the lookups never release a's hold
            a:acquire()
            b = nil
            collectgarbage()
            collectgarbage()
            assert.is_true(a:is_locked())
            a:release()
            -- gone with its last reference: other settings are fine then
            a = nil
            collectgarbage()
            collectgarbage()
            local c = filelock.FileLock(path, { singleton = true, timeout = 7 })
            assert.are.equal(7, c.timeout)
        end)
    end)

    describe("garbage collection", function()
        it("releases a held lock without raising", function()
            do
                local lost = filelock.FileLock(path)
                lost:acquire()
                lost:acquire()
            end
            collectgarbage()
            collectgarbage()
            local other = filelock.FileLock(path, { timeout = 0 })
            other:acquire() -- would be a Timeout if the lost handle still held it
            assert.is_true(other:is_locked())
            other:release()
        end)

        it("of a guard does not release", function()
            local lock = filelock.FileLock(path)
            do
                local _ = lock:acquire()
            end
            collectgarbage()
            collectgarbage()
            assert.is_true(lock:is_locked())
            lock:release()
        end)
    end)
end)
