# Cross-compiling libfilelock for 64-bit Windows with Debian's mingw-w64
# (package gcc-mingw-w64-x86-64):
#
#   cmake -S . -B build-win -DCMAKE_TOOLCHAIN_FILE=cmake/mingw-w64-x86_64.cmake \
#         -DFL_BUILD_TESTS=OFF -DFL_BUILD_BENCH=OFF -DFL_PYTHON=OFF -DFL_RUBY=OFF \
#         -DFL_LUA=OFF -DFL_CLI=OFF
#
# produces filelock.dll, its import library filelock.dll.a and the static
# libfilelock_static.a. scripts/windows-lane.sh builds and tests all of it
# under Wine.
set(CMAKE_SYSTEM_NAME Windows)
set(CMAKE_SYSTEM_PROCESSOR x86_64)

set(FL_MINGW_TRIPLET x86_64-w64-mingw32 CACHE STRING "mingw-w64 target triplet")
# Debian ships two thread models; the POSIX one (winpthreads) is the one the
# common code needs, so prefer the explicit -posix driver when it exists.
find_program(FL_MINGW_GCC NAMES ${FL_MINGW_TRIPLET}-gcc-posix ${FL_MINGW_TRIPLET}-gcc REQUIRED)
set(CMAKE_C_COMPILER ${FL_MINGW_GCC})
find_program(CMAKE_RC_COMPILER NAMES ${FL_MINGW_TRIPLET}-windres)

set(CMAKE_FIND_ROOT_PATH /usr/${FL_MINGW_TRIPLET})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# Link libgcc and winpthreads statically, so that filelock.dll and the test
# programs run without libwinpthread-1.dll / libgcc_s_seh-1.dll beside them.
set(CMAKE_EXE_LINKER_FLAGS_INIT "-static")
set(CMAKE_SHARED_LINKER_FLAGS_INIT "-static")
set(CMAKE_MODULE_LINKER_FLAGS_INIT "-static")

# Run cross-built programs (try_run, tests) through Wine when it exists.
find_program(FL_WINE NAMES wine wine64)
if(FL_WINE)
  set(CMAKE_CROSSCOMPILING_EMULATOR ${FL_WINE})
endif()
