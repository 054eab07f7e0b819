-- Builds the Lua binding of libfilelock from a checkout, offline:
--
--   cd <checkout> && luarocks make bindings/lua/filelock-0.1.0-1.rockspec
--       [--local | --tree <dir>] [--lua-version 5.4]
--
-- `luarocks make` builds in the current directory, which must be the root
-- of the checkout: CMake builds the core and, with FL_LUA_ROCK, one Lua
-- module for the Lua luarocks runs for, with the core linked in statically.
-- Needs cmake, a C compiler and swig (the wrapper is generated at build time).
rockspec_format = "3.0"
package = "filelock"
version = "0.1.0-1"
source = {
   -- Only `luarocks make` (from a checkout) is supported for now; there is
   -- no published source archive.
   url = "git+file://.",
}
description = {
   summary = "A platform-independent file lock shared by C, Python, Ruby and Lua processes",
   detailed = [[
      FileLock (flock on a lock file), SoftFileLock (exclusive-create
      marker with an owner record, recovered when its holder is provably
      dead) and ReadWriteLock (many readers or one writer) with timeouts,
      recursion, lock:with(fn) and Lua 5.4 <close> guards; waiters wake as
      soon as the lock is released.
   ]],
}
dependencies = {
   "lua >= 5.1",
}
build = {
   type = "cmake",
   variables = {
      CMAKE_BUILD_TYPE = "Release",
      FL_LUA_ROCK = "ON",
      FL_LUA_INCDIR = "$(LUA_INCDIR)",
      FL_BUILD_TESTS = "OFF",
      FL_BUILD_BENCH = "OFF",
      FL_PYTHON = "OFF",
      FL_RUBY = "OFF",
      FL_CLI = "OFF",
   },
   -- The project's own install rules install the C library for C users;
   -- the rock only needs the two module files, copied by luarocks below.
   install_pass = false,
   install = {
      lua = { filelock = "bindings/lua/filelock.lua" },
      lib = { filelock_core = "build.luarocks/bindings/lua/rock/filelock_core.so" },
   },
}
