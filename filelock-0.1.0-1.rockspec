-- The Lua binding of libfilelock as a rock: module `filelock` (filelock.lua)
-- and its C half `filelock.core` (filelock/core.so, with the C core linked
-- in statically, so the rock needs no libfilelock.so).
--
--   luarocks make [--local | --tree DIR] [--lua-version 5.1|5.3|5.4]
--
-- run at the root of a checkout (luarocks builds in the current directory).
-- Needs cmake, a C compiler, swig >= 4 and the headers of the Lua in use;
-- nothing is downloaded. See bindings/lua/README.md.
rockspec_format = "3.0"
package = "filelock"
version = "0.1.0-1"
source = {
   url = "git+https://github.com/libfilelock/filelock.git",
   tag = "v0.1.0",
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
   homepage = "https://github.com/libfilelock/filelock",
   license = "MIT",
   labels = { "filesystem", "lock", "concurrency" },
}
dependencies = {
   "lua >= 5.1",
}
build = {
   type = "cmake",
   variables = {
      CMAKE_BUILD_TYPE = "Release",
      CMAKE_INSTALL_PREFIX = "$(PREFIX)",
      FL_LUA_ROCK = "ON",
      FL_LUA_INCDIR = "$(LUA_INCDIR)",
      FL_LUA_LUADIR = "$(LUADIR)",
      FL_LUA_LIBDIR = "$(LIBDIR)",
      -- Only the Lua module: no C library, tests, other bindings or docs.
      FL_INSTALL_CORE = "OFF",
      FL_BUILD_TESTS = "OFF",
      FL_BUILD_BENCH = "OFF",
      FL_DOCS = "OFF",
      FL_PYTHON = "OFF",
      FL_RUBY = "OFF",
      FL_CLI = "OFF",
      -- A user's newer compiler must not fail the install on a new warning.
      FL_WERROR = "OFF",
   },
}
