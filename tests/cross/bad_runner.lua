-- Bad-input runner, Lua edition (our binding): runs one case of
-- bad_inputs.tsv. Same arguments and output as bad_runner.c:
--
--   lua bad_runner.lua <table.tsv> <case id> <hex path> <warm-up path>
--
-- Errors of the binding carry the core's error name in err.code; anything
-- else (a Lua error string) is reported as LUAERROR, which matches no
-- expectation.

local filelock = require("filelock")

local REPEAT = 3

local function num(s)
    if s == "nan" then
        return 0 / 0
    elseif s == "inf" then
        return math.huge
    elseif s == "-inf" then
        return -math.huge
    end
    return assert(tonumber(s), "bad number " .. s)
end

local function parse(tok)
    local name, opts = tok:match("^([^:]+):?(.*)$")
    local kv = {}
    for k, v in opts:gmatch("([^,=]+)=([^,]*)") do
        kv[k] = v
    end
    return name, kv
end

local ASSERT = {}

local function new_case(path, kind)
    local cls = kind == "soft" and filelock.SoftFileLock or filelock.FileLock
    local c = { h = {} }

    function c.step(tok)
        local which = "a"
        if tok:sub(1, 2) == "b." then
            which, tok = "b", tok:sub(3)
        end
        local name, kv = parse(tok)
        if name == "new" then
            local opts = {}
            if kv.timeout then opts.timeout = num(kv.timeout) end
            if kv.poll then opts.poll_interval = num(kv.poll) end
            if kv.mode then opts.mode = num(kv.mode) end
            if kv.fallback then opts.soft_fallback = kv.fallback == "1" end
            c.h[which] = cls(path, opts)
        elseif name == "acq" then
            c.h[which]:acquire({
                timeout = num(kv.timeout or "1"),
                poll_interval = num(kv.poll or "0.05"),
                blocking = (kv.blocking or "1") == "1",
            })
        elseif name == "rel" then
            c.h[which]:release()
        elseif name == "relf" then
            c.h[which]:release({ force = true })
        elseif name == "free" then
            -- Dropping the last reference: the collector frees the handle,
            -- which releases the lock.
            c.h[which] = nil
            collectgarbage()
            collectgarbage()
        elseif name == "assert" then
            local key, want = next(kv)
            local lock = c.h.a
            local got
            if key == "locked" then
                got = lock:is_locked() and "1" or "0"
            elseif key == "counter" then
                got = string.format("%d", lock:lock_counter())
            elseif key == "kind" then
                got = lock.kind
            end
            if got ~= want then
                error({ [ASSERT] = true, message = "assertion " .. tok .. " failed (got " .. tostring(got) .. ")" })
            end
        else
            io.stderr:write("bad_runner.lua: unknown step ", tok, "\n")
            os.exit(2)
        end
    end

    function c.cleanup()
        for _, lock in pairs(c.h) do
            lock:release({ force = true })
        end
        c.h = {}
        collectgarbage()
        collectgarbage()
    end

    return c
end

local function run(path, kind, steps, msgs)
    local c = new_case(path, kind)
    local result = "OK"
    local i = 0
    for tok in steps:gmatch("%S+") do
        local ok, err = pcall(c.step, tok)
        if not ok then
            if type(err) == "table" and err[ASSERT] then
                result = "ASSERT@" .. i
                msgs[#msgs + 1] = err.message
            elseif filelock.is_error(err) then
                result = err.code .. "@" .. i
                msgs[#msgs + 1] = err.code .. ": " .. tostring(err)
            else
                result = "LUAERROR@" .. i
                msgs[#msgs + 1] = tostring(err)
            end
            break
        end
        i = i + 1
    end
    c.cleanup()
    return result
end

-- Lua has no directory listing: probe /proc/self/fdinfo/<n>, which exists
-- exactly for open descriptors. The probe's own descriptor is counted too
-- (always the lowest free number), so the count is consistently one high.
local function count_fds()
    local n = 0
    for fd = 0, 1023 do
        local f = io.open("/proc/self/fdinfo/" .. fd, "r")
        if f then
            n = n + 1
            f:close()
        end
    end
    return n
end

local table_path, case_id, hexpath, warm = arg[1], arg[2], arg[3], arg[4]
local row
for line in io.lines(table_path) do
    if line:sub(1, 1) ~= "#" then
        local cols = {}
        for col in (line .. "\t"):gmatch("([^\t]*)\t") do
            cols[#cols + 1] = col
        end
        if #cols >= 6 and cols[1] == case_id then
            row = cols
        end
    end
end
if not row then
    io.stderr:write("bad_runner.lua: no case ", tostring(case_id), "\n")
    os.exit(2)
end
local path = hexpath:gsub("%x%x", function(h) return string.char(tonumber(h, 16)) end)

-- Warm-up: a timed-out wait, kernel and soft, leaves one inotify instance in
-- the core's process-wide pool; it is not a leak.
for _, v in ipairs({ { filelock.FileLock, "" }, { filelock.SoftFileLock, ".soft" } }) do
    local a, b = v[1](warm .. v[2]), v[1](warm .. v[2])
    a:acquire({ timeout = 0 })
    pcall(b.acquire, b, { timeout = 0.03 })
    a:release()
end
collectgarbage()
collectgarbage()
print("FD0 " .. count_fds())
local msgs = {}
for r = 0, REPEAT - 1 do
    local res = run(path, row[2], row[5], msgs)
    print(string.format("RUN %d %s %d", r, res, count_fds()))
end
if msgs[1] then
    print("MSG " .. msgs[1]:gsub("\n", " "))
end
