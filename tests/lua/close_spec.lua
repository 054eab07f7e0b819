-- Lua 5.4 `<close>` guards. Lua calls __close(guard, err) with two
-- arguments; the user's error must come through unchanged and the lock must
-- be released. Pending (not run) on Lua versions without `<close>`.

package.path = os.getenv("FL_SOURCE_DIR") .. "/tests/lua/?.lua;" .. package.path
local H = require("helpers")
local filelock = require("filelock")

describe("<close> guards (" .. _VERSION .. ", " .. H.tag .. ")", function()
    if not H.has_close then
        pending("this Lua has no <close> variables")
        return
    end
    local C = require("close54")
    local dir, path

    before_each(function()
        dir = H.tmpdir()
        path = dir .. "/close.lock"
    end)
    after_each(function()
        collectgarbage()
        H.cleanup()
    end)

    it("releases when the scope ends", function()
        local lock = filelock.FileLock(path)
        local inside, after = C.scope(lock)
        assert.is_true(inside == 1)
        assert.is_true(after == 0)
        -- a second handle (another open file) can take it now
        local other = filelock.FileLock(path, { timeout = 0 })
        other:with(function() end)
    end)

    it("passes acquire options through", function()
        local holder = filelock.FileLock(path)
        holder:acquire()
        local lock = filelock.FileLock(path)
        local ok, err = pcall(C.scope, lock, { timeout = 0.05 })
        assert.is_false(ok)
        assert.is_true(filelock.is_timeout(err))
        holder:release()
        assert.is_true(select(2, C.scope(lock, { timeout = 5 })) == 0)
    end)

    it("lets the user's error object through unchanged and releases", function()
        local lock = filelock.FileLock(path)
        local mine = setmetatable({ what = "the user's" }, {})
        local ok, err = pcall(C.scope_error, lock, mine)
        assert.is_false(ok)
        assert.are.equal(mine, err)
        assert.is_false(lock:is_locked())
        ok, err = pcall(C.scope_error, lock, "a string error")
        assert.is_false(ok)
        assert.are.equal("a string error", err)
        assert.is_false(lock:is_locked())
        -- released for other handles too
        filelock.FileLock(path, { timeout = 0 }):with(function() end)
    end)

    it("unwinds nested scopes level by level", function()
        local lock = filelock.FileLock(path)
        local mine = {}
        local levels = C.nested(lock, mine)
        assert.is_true(levels[1] == 1)
        assert.is_true(levels[2] == 2)
        assert.is_true(levels[3] == 1)
        assert.is_true(levels[4] == 0)
        assert.is_false(levels.inner_ok)
        assert.are.equal(mine, levels.inner_err)
    end)

    it("does not release twice after guard:release()", function()
        local lock = filelock.FileLock(path)
        assert.is_true(C.early_release(lock) == 1)
        lock:release()
        assert.is_false(lock:is_locked())
    end)

    it("works with `with` inside the scope", function()
        local lock = filelock.FileLock(path)
        local mine = {}
        local ok, err = pcall(C.with_inside, lock, mine)
        assert.is_false(ok)
        assert.are.equal(mine, err)
        assert.is_true(lock:lock_counter() == 0)
    end)

    it("the guard is closable and the lock object is not mistaken for one", function()
        local lock = filelock.FileLock(path)
        local g = lock:acquire()
        assert.is_function(getmetatable(g).__close)
        g:release()
        assert.is_nil(getmetatable(lock).__close)
    end)

    describe("ReadWriteLock guards", function()
        it("release the read or write level when the scope ends", function()
            local lock = filelock.ReadWriteLock(path)
            local mode, count, after = C.rw_scope(lock, "read")
            assert.are.equal("read", mode)
            assert.is_true(count == 1)
            assert.is_nil(after)
            mode, count, after = C.rw_scope(lock, "write", { timeout = 5 })
            assert.are.equal("write", mode)
            assert.is_true(count == 1)
            assert.is_nil(after)
            -- released for other handles too
            filelock.ReadWriteLock(path):write({ timeout = 0 }, function() end)
        end)

        it("a read scope shares with another reader and excludes a writer", function()
            local other = filelock.ReadWriteLock(path)
            other:acquire_read()
            local mode = C.rw_scope(filelock.ReadWriteLock(path), "read", { timeout = 0 })
            assert.are.equal("read", mode)
            local ok, err = pcall(C.rw_scope, filelock.ReadWriteLock(path), "write",
                { timeout = 0.1 })
            assert.is_false(ok)
            assert.is_true(filelock.is_timeout(err))
            other:release()
        end)

        it("let the user's error through unchanged and release every level", function()
            for _, mode in ipairs({ "read", "write" }) do
                local lock = filelock.ReadWriteLock(path)
                local mine = {}
                local ok, err = pcall(C.rw_scope_error, lock, mode, mine)
                assert.is_false(ok)
                assert.are.equal(mine, err)
                assert.is_true(lock:lock_counter() == 0)
                assert.is_nil(lock:held_mode())
            end
        end)

        it("an upgrade inside a read scope raises lock_mode and the scope still releases", function()
            local lock = filelock.ReadWriteLock(path)
            local ok, err = pcall(C.rw_scope_upgrade, lock)
            assert.is_false(ok)
            assert.are.equal("lock_mode", err.kind)
            assert.is_false(lock:is_locked())
        end)
    end)
end)
