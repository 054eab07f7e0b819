-- `luarocks make` builds and installs the binding offline (tag #rock: run by
-- the lua_rock_<v> CTest tests, excluded from the ordinary runs because it
-- configures and compiles a copy of the project).

package.path = os.getenv("FL_SOURCE_DIR") .. "/tests/lua/?.lua;" .. package.path
local H = require("helpers")

local ROCKSPEC = "bindings/lua/filelock-0.1.0-1.rockspec"

describe("luarocks make #rock", function()
    after_each(function()
        H.cleanup()
    end)

    it("builds, installs into a tree, and the installed module works", function()
        local luarocks = assert(os.getenv("FL_LUAROCKS"), "FL_LUAROCKS is not set")
        local version = _VERSION:match("%d+%.%d+")
        local tmp = H.tmpdir()
        local src, tree = tmp .. "/src", tmp .. "/tree"
        -- A copy of the checkout, so the build never writes into the sources
        -- (luarocks builds in the current directory).
        local copy = table.concat({
            "mkdir -p " .. H.q(src .. "/bindings"),
            "cd " .. H.q(H.source_dir),
            "cp -r CMakeLists.txt core cmake swig " .. H.q(src),
            "cp -r bindings/lua " .. H.q(src .. "/bindings/"),
        }, " && ")
        local out, code = H.run(copy)
        assert.are.equal(0, code, out)

        out, code = H.run("cd " .. H.q(src) .. " && timeout -s KILL 300 " .. H.q(luarocks)
            .. " --lua-version " .. version .. " make --tree " .. H.q(tree) .. " " .. ROCKSPEC)
        assert.are.equal(0, code, out)
        local luadir = tree .. "/share/lua/" .. version
        local libdir = tree .. "/lib/lua/" .. version
        assert.is_true(H.exists(luadir .. "/filelock.lua"), out)
        assert.is_true(H.exists(libdir .. "/filelock_core.so"), out)
        out = H.run("luarocks --lua-version " .. version .. " --tree " .. H.q(tree) .. " list")
        assert.truthy(out:find("filelock", 1, true), out)

        -- The installed module alone (not the build tree's): lock, contend,
        -- and report where it was loaded from.
        local script = tmp .. "/use.lua"
        H.write(script, [[
local filelock = require("filelock")
local lock = filelock.FileLock(arg[1], { timeout = 0 })
local other = filelock.FileLock(arg[1], { timeout = 0 })
local inner = lock:with(function()
    local ok, err = pcall(other.acquire, other)
    return filelock.is_timeout(err) and "excluded" or "NOT EXCLUDED"
end)
print(inner, package.loaded.filelock_core and "core", filelock.version)
]])
        local env = "LUA_PATH=" .. H.q(luadir .. "/?.lua") .. " LUA_CPATH=" .. H.q(libdir .. "/?.so")
        out, code = H.run(env .. " " .. H.lua_cmd(script, tmp .. "/x.lock"))
        assert.are.equal(0, code, out)
        assert.truthy(out:match("^excluded\tcore\t%d+%.%d+%.%d+\n$"), out)
        -- self-contained: the rock's module does not need libfilelock.so
        out = H.run("ldd " .. H.q(libdir .. "/filelock_core.so"))
        assert.is_nil(out:find("libfilelock", 1, true), out)
    end)
end)
