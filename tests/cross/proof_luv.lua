-- Issue 17's proof, the Lua side: lock:acquire_async on a plain luv loop
-- (lua-luv). Driven by test_proof.py.
--
--   lua proof_luv.lua hold <lock> <counter> <log> <kind> <waiters> <per_waiter>
--   lua proof_luv.lua cancel <lock> <kind>
--   lua proof_luv.lua storm <lock> <counter> <log> <kind> <waiters>
--   lua proof_luv.lua clock
--
-- hold: <waiters> chains of acquire_async run at once on one loop (each call
-- is its own owner), <per_waiter> holds each; a hold pauses on a loop timer
-- inside the lock (the loop runs the other waits meanwhile, which must keep
-- waiting). Holds are logged as in proof_async.py ("S <t0_ns> <value>
-- <holder>", "E <t1_ns> <holder>", one write(2) each: the log is unbuffered)
-- with uv.hrtime() (libuv: CLOCK_MONOTONIC in ns, checked by the driver
-- through "clock").
--
-- cancel: as proof_async.py's, with the cancel() acquire_async returns; the
-- loop keeps running (a timer) while the driver checks from outside; the
-- driver's lines arrive on stdin through a luv pipe.
--
-- storm: as proof_async.py's; each wait is cancelled (its cancel function)
-- after 0-50 ms unless it has won by then.
--
-- Exit 77 with the reason when luv is missing for this Lua (Debian: lua-luv).

local has_luv, uv = pcall(require, "luv")
if not has_luv then
    print("SKIP: luv is not installed for " .. _VERSION .. " (Debian: lua-luv)")
    os.exit(77)
end
local filelock = require("filelock")

local DEADLINE = 60

local function ns()
    return string.format("%.0f", uv.hrtime())
end

local function fail(msg)
    io.stderr:write("proof_luv.lua: ", tostring(msg), "\n")
    os.exit(1)
end

local function say(line)
    io.stdout:write(line, "\n")
    io.stdout:flush()
end

local function lock_class(kind)
    return kind == "soft" and filelock.SoftFileLock or filelock.FileLock
end

-- The loop with a hard deadline: a wait that never ends fails the worker.
local function run_loop()
    local guard = uv.new_timer()
    guard:start(DEADLINE * 1000, 0, function()
        fail("the loop did not finish within " .. DEADLINE .. " s")
    end)
    guard:unref()
    uv.run()
end

local function after(ms, fn)
    local t = uv.new_timer()
    t:start(ms, 0, function()
        t:close()
        fn()
    end)
end

local function hold(lock, counter, log, kind, waiters, per_waiter)
    waiters, per_waiter = tonumber(waiters), tonumber(per_waiter)
    local logf = assert(io.open(log, "ab"))
    logf:setvbuf("no")
    local cls = lock_class(kind)
    -- Every other chain shares one lock object: each call is its own owner,
    -- so sharing it must not let two waits in.
    local shared = cls(lock)
    local done = 0
    local function chain(i, left)
        if left == 0 then
            done = done + 1
            return
        end
        local who = "lua-async-" .. i
        local obj = i % 2 == 0 and shared or cls(lock)
        obj:acquire_async({ timeout = DEADLINE }, function(err, guard)
            if err then
                fail(who .. ": " .. tostring(err))
            end
            local t0 = ns()
            local f = assert(io.open(counter, "r+b"))
            local value = tonumber(f:read(21))
            if not value then
                fail("bad counter")
            end
            logf:write(string.format("S %s %d %s\n", t0, value, who))
            after(math.random(0, 1), function()
                f:seek("set", 0)
                f:write(string.format("%020d\n", value + 1))
                f:close()
                logf:write(string.format("E %s %s\n", ns(), who))
                guard:release()
                chain(i, left - 1)
            end)
        end)
    end
    for i = 1, waiters do
        chain(i, per_waiter)
    end
    run_loop()
    if done ~= waiters then
        fail(string.format("%d of %d chains finished", done, waiters))
    end
    logf:close()
end

-- stdin lines, through the loop (a luv pipe on descriptor 0).
local function lines_from_stdin(on_line)
    local pipe = uv.new_pipe(false)
    pipe:open(0)
    local buf = ""
    pipe:read_start(function(err, data)
        if err then
            fail(err)
        end
        if not data then
            pipe:close()
            on_line(nil)
            return
        end
        buf = buf .. data
        while true do
            local nl = buf:find("\n", 1, true)
            if not nl then
                break
            end
            local line = buf:sub(1, nl - 1)
            buf = buf:sub(nl + 1)
            on_line(line)
        end
    end)
end

local function cancel(lock, kind)
    local cls = lock_class(kind)
    local ticker = uv.new_timer()
    ticker:start(10, 10, function() end) -- the loop keeps running
    local won = false
    local waiter = cls(lock)
    local cancel_wait = waiter:acquire_async({ timeout = DEADLINE }, function()
        won = true
    end)
    local step = "waiting"
    local second
    after(100, function()
        if won then
            fail("the waiter did not wait")
        end
        say("waiting")
    end)
    lines_from_stdin(function(line)
        if step == "waiting" then
            if line ~= "cancel" then
                fail("expected 'cancel', got " .. tostring(line))
            end
            cancel_wait()
            if won or waiter:is_locked() then
                fail("cancelled, yet won")
            end
            step = "cancelled"
            say("cancelled")
        elseif step == "cancelled" then
            if line ~= "next" then
                fail("expected 'next', got " .. tostring(line))
            end
            if won or waiter:is_locked() then
                fail("a cancelled wait won the lock later")
            end
            step = "race"
            local holder = cls(lock, { thread_local = false, timeout = 0 })
            holder:acquire()
            second = cls(lock)
            local cancel2 = second:acquire_async({ timeout = DEADLINE }, function()
                won = true
            end)
            after(50, function()
                -- Released (the hub's event is pending) and cancelled in
                -- the same callback, before the loop can dispatch.
                holder:release()
                cancel2()
                after(300, function()
                    if won or second:is_locked() then
                        fail("the racing cancel left the lock held")
                    end
                    step = "done"
                    say("race-cancelled")
                end)
            end)
        elseif line == nil then
            if step ~= "done" then
                fail("stdin closed at step " .. step)
            end
            ticker:close()
        end
    end)
    run_loop()
end

local function storm(lock, counter, log, kind, waiters)
    waiters = tonumber(waiters)
    local logf = assert(io.open(log, "ab"))
    logf:setvbuf("no")
    local cls = lock_class(kind)
    local won, settled = 0, 0
    for i = 1, waiters do
        local who = "lua-storm-" .. i
        after(math.random(0, 200), function()
            local obj = cls(lock)
            local state = "waiting"
            local cancel_wait = obj:acquire_async({ timeout = DEADLINE }, function(err, guard)
                if state ~= "waiting" then
                    fail(who .. ": the callback ran after the cancel")
                end
                if err then
                    fail(who .. ": " .. tostring(err))
                end
                state = "won"
                local t0 = ns()
                local f = assert(io.open(counter, "r+b"))
                local value = tonumber(f:read(21))
                logf:write(string.format("S %s %d %s\n", t0, value, who))
                after(math.random(0, 1), function()
                    f:seek("set", 0)
                    f:write(string.format("%020d\n", value + 1))
                    f:close()
                    logf:write(string.format("E %s %s\n", ns(), who))
                    guard:release()
                    won, settled = won + 1, settled + 1
                end)
            end)
            after(math.random(0, 50), function()
                if state == "waiting" then
                    cancel_wait()
                    state = "cancelled"
                    if obj:is_locked() then
                        fail(who .. ": cancelled, yet holds the lock")
                    end
                    settled = settled + 1
                end
            end)
        end)
    end
    local ticker = uv.new_timer()
    ticker:start(10, 10, function()
        if settled == waiters then
            ticker:stop()
            after(300, function() -- a win left behind would land here
                say("done " .. won)
                lines_from_stdin(function(line)
                    if line == nil then
                        ticker:close()
                    end
                end)
            end)
        end
    end)
    run_loop()
    logf:close()
end

if arg[1] == "hold" and #arg == 7 then
    hold(arg[2], arg[3], arg[4], arg[5], arg[6], arg[7])
elseif arg[1] == "storm" and #arg == 6 then
    storm(arg[2], arg[3], arg[4], arg[5], arg[6])
elseif arg[1] == "cancel" and #arg == 3 then
    cancel(arg[2], arg[3])
elseif arg[1] == "clock" then
    io.write(ns())
else
    io.stderr:write("usage: proof_luv.lua hold <lock> <counter> <log> <kind> <waiters> <per_waiter>\n")
    io.stderr:write("       proof_luv.lua cancel <lock> <kind> | clock\n")
    io.stderr:write("       proof_luv.lua storm <lock> <counter> <log> <kind> <waiters>\n")
    os.exit(2)
end
