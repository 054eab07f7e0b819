-- Lua 5.4 `<close>` scenarios, kept out of the spec files because the syntax
-- does not parse on 5.1-5.3; close_spec.lua loads this only on 5.4. Each
-- function runs one scope and reports what it observed.

local M = {}

-- Normal scope exit.
function M.scope(lock, opts)
    local inside
    do
        local held <close> = lock:acquire(opts)
        inside = lock:lock_counter()
    end
    return inside, lock:lock_counter()
end

-- An error raised inside the scope: __close gets (guard, err).
function M.scope_error(lock, err)
    do
        local held <close> = lock:acquire()
        error(err, 0)
    end
end

-- Nested scopes on one lock, the inner one left by an error.
function M.nested(lock, err)
    local levels = {}
    do
        local outer <close> = lock:acquire()
        levels[#levels + 1] = lock:lock_counter()
        local ok, e = pcall(function()
            local inner <close> = lock:acquire()
            levels[#levels + 1] = lock:lock_counter()
            error(err, 0)
        end)
        levels[#levels + 1] = lock:lock_counter()
        levels.inner_ok, levels.inner_err = ok, e
    end
    levels[#levels + 1] = lock:lock_counter()
    return levels
end

-- A guard released by hand before the scope ends is not released twice.
function M.early_release(lock)
    lock:acquire() -- an outer level held by hand
    do
        local held <close> = lock:acquire()
        held:release()
    end
    return lock:lock_counter()
end

-- An error from a `with` body inside a `<close>` scope.
function M.with_inside(lock, err)
    do
        local held <close> = lock:acquire()
        lock:with(function() error(err, 0) end)
    end
end

-- ReadWriteLock guards: acquire_read / acquire_write in a `<close>` scope.
-- Returns the mode and counter seen inside, and the mode after.
function M.rw_scope(lock, mode, opts)
    local inside, count
    do
        local held <close> = mode == "read" and lock:acquire_read(opts) or lock:acquire_write(opts)
        inside, count = lock:held_mode(), lock:lock_counter()
    end
    return inside, count, lock:held_mode()
end

-- An error raised inside a ReadWriteLock scope, nested in another level.
function M.rw_scope_error(lock, mode, err)
    local acquire = mode == "read" and lock.acquire_read or lock.acquire_write
    do
        local outer <close> = acquire(lock)
        do
            local inner <close> = acquire(lock)
            error(err, 0)
        end
    end
end

-- Asking for write inside a read scope.
function M.rw_scope_upgrade(lock)
    do
        local held <close> = lock:acquire_read()
        lock:acquire_write({ timeout = 0 })
    end
end

return M
