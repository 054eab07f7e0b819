#!/usr/bin/env bash
# `cmake --install <build> --prefix X` writes only under X, in the standard
# layout, and everything installed works from there after X is moved:
# C consumers built with pkg-config and with find_package (and the version
# rule: 0.1 accepts no other minor while the major is 0), the CLI (rpath),
# man pages, Python (PYTHONPATH + importlib.metadata), Ruby (RUBYLIB) and Lua
# (every version built, LUA_PATH/LUA_CPATH).
#
#   cmake_install.sh BUILD SCRATCH LIBDIR [python=EXE] [pydir=DIR] [ruby=EXE]
#                    [rblib=DIR] [rbarch=DIR]
#
# Named, because CMake drops empty arguments: python/ruby are empty or
# missing when that binding is not built.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/common.sh"
build=$1 scratch=$2 libdir=$3
python='' pydir='' ruby='' rblib='' rbarch=''
shift 3
for arg in "$@"; do
    case $arg in
    python=* | pydir=* | ruby=* | rblib=* | rbarch=*) printf -v "${arg%%=*}" '%s' "${arg#*=}" ;;
    *) fail "unknown argument: $arg" ;;
    esac
done

# An absolute directory in the configuration would make the install below
# write outside the scratch prefix: refuse before installing anything.
for d in "$libdir" "$pydir" "$rblib" "$rbarch"; do
    case $d in /*) fail "configured with an absolute install directory ($d): reconfigure with a relative one" ;; esac
done

rm -rf "$scratch"
mkdir -p "$scratch"
prefix=$scratch/prefix
stamp=$scratch/stamp
touch "$stamp"
cmake --install "$build" --prefix "$prefix" >"$scratch/install.log" ||
    fail "cmake --install failed: $(cat "$scratch/install.log")"

# 1. Nothing outside the prefix: every file CMake installed is under it, and
#    no file with one of our names appeared in the system's directories.
manifest=$build/install_manifest.txt
[ -s "$manifest" ] || fail "no $manifest"
while IFS= read -r f; do
    case $f in "$prefix"/*) ;; *) fail "installed outside the prefix: $f" ;; esac
done <"$manifest"
outside=$(find /usr /etc /opt -xdev -newer "$stamp" \
    \( -iname '*filelock*' -o -name 'fl_*' -o -name 'FL_*' \) -print 2>/dev/null || true)
[ -z "$outside" ] || fail "written outside the prefix: $outside"
echo "installed $(wc -l <"$manifest") files, all under the prefix"

# 2. Relocatable: move the tree, then use it only from its new place.
moved=$scratch/moved
mv "$prefix" "$moved"
unset LD_LIBRARY_PATH PYTHONPATH PYTHONHOME RUBYLIB RUBYOPT LUA_PATH LUA_CPATH LUA_INIT || true
[ -f "$moved/include/filelock.h" ] || fail "no include/filelock.h"
[ -f "$moved/$libdir/libfilelock.so" ] || fail "no $libdir/libfilelock.so"

# pkg-config: the .pc file names its prefix relative to itself.
export PKG_CONFIG_PATH=$moved/$libdir/pkgconfig
got=$(pkg-config --variable=libdir filelock)
[ "$(cd "$got" && pwd -P)" = "$(cd "$moved/$libdir" && pwd -P)" ] ||
    fail "pkg-config libdir is $got, not under the moved prefix $moved"
# shellcheck disable=SC2046
cc -std=c99 -Wall -Wextra -Werror -o "$scratch/consumer_pc" "$here/consumer.c" \
    $(pkg-config --cflags --libs filelock) -Wl,-rpath,"$(pkg-config --variable=libdir filelock)"
out=$("$scratch/consumer_pc" "$scratch/pc.lock")
echo "pkg-config consumer: $out"
case $out in "ok $(pkg-config --modversion filelock)") ;; *) fail "pkg-config consumer said: $out" ;; esac

# find_package: the requested version decides (SameMinorVersion while 0.x).
version=$(pkg-config --modversion filelock)
major_minor=${version%.*}
cmake -S "$here/consumer" -B "$scratch/consumer" -DCMAKE_PREFIX_PATH="$moved" \
    -DFL_WANT="$major_minor" >"$scratch/consumer.log" 2>&1 ||
    fail "find_package(filelock $major_minor) failed: $(cat "$scratch/consumer.log")"
cmake --build "$scratch/consumer" >>"$scratch/consumer.log" 2>&1 ||
    fail "building the find_package consumer failed: $(cat "$scratch/consumer.log")"
out=$("$scratch/consumer/consumer" "$scratch/cmake.lock")
echo "find_package consumer: $out"
[ "$out" = "ok $version" ] || fail "find_package consumer said: $out"
major=${version%%.*} rest=${version#*.}
minor=${rest%%.*}
if [ "$major" = 0 ]; then
    rejects=("0.$((minor + 1))" "1.0")
    [ "$minor" -gt 0 ] && rejects+=("0.$((minor - 1))")
else
    rejects=("$((major + 1)).0" "$((major - 1)).0")
fi
for want in "${rejects[@]}"; do
    rm -rf "$scratch/reject"
    if cmake -S "$here/consumer" -B "$scratch/reject" -DCMAKE_PREFIX_PATH="$moved" \
        -DFL_WANT="$want" >"$scratch/reject.log" 2>&1; then
        fail "find_package(filelock $want) accepted the installed $version"
    fi
    grep -q "not compatible\|version.*$version" "$scratch/reject.log" ||
        fail "find_package(filelock $want) failed for another reason: $(cat "$scratch/reject.log")"
    echo "find_package(filelock $want) rejects $version"
done

# The CLI finds libfilelock through its $ORIGIN rpath.
if [ -x "$moved/bin/filelock" ]; then
    "$moved/bin/filelock" -n "$scratch/cli.lock" true || fail "installed filelock CLI failed"
    echo "CLI runs from the moved prefix"
fi

# Man pages: ours only (not Doxygen's per-member pages such as timeout.3).
if [ -d "$moved/share/man/man3" ]; then
    [ -f "$moved/share/man/man3/fl_acquire.3" ] || fail "no man3/fl_acquire.3"
    foreign=$(find "$moved/share/man/man3" -type f ! -name 'fl_*' ! -name 'FL_*' ! -name 'filelock.h.3')
    [ -z "$foreign" ] || fail "man pages with foreign names installed: $foreign"
    echo "man pages: $(find "$moved/share/man/man3" -type f | wc -l) in man3"
fi

# Python: PYTHONPATH=<prefix>/<scheme dir>; metadata reports this copy.
if [ -n "$python" ]; then
    [ -d "$moved/$pydir/filelock" ] || fail "no $pydir/filelock under the prefix"
    PYTHONPATH=$moved/$pydir "$python" - "$moved" "$scratch/py.lock" <<'PY' || fail "Python from the prefix"
import importlib.metadata, os, sys
import filelock
prefix, path = sys.argv[1], sys.argv[2]
assert filelock.__file__.startswith(prefix), filelock.__file__
dist = importlib.metadata.distribution("filelock")
assert dist.version == filelock.__version__, (dist.version, filelock.__version__)
assert str(dist.locate_file("filelock/__init__.py")) == filelock.__file__, dist.locate_file("")
with filelock.FileLock(path, timeout=0):
    try:
        filelock.FileLock(path, timeout=0, is_singleton=False).acquire()
        sys.exit("not excluded")
    except filelock.Timeout:
        pass
print("python:", filelock.__version__, "from", os.path.dirname(filelock.__file__))
PY
fi

# Ruby: RUBYLIB=<prefix>/<vendor lib dir>:<prefix>/<vendor arch dir>.
if [ -n "$ruby" ]; then
    RUBYLIB=$moved/$rblib:$moved/$rbarch "$ruby" -e '
      require "libfilelock"
      feats = $LOADED_FEATURES.grep(%r{/(lib)?filelock(_ext\.so|\.rb)\z})
      abort "loaded #{feats} not from #{ARGV[0]}" unless feats.size == 3 && feats.all? { |f| f.start_with?(ARGV[0]) }
      Filelock::FileLock.new(ARGV[1], timeout: 0).synchronize { }
      puts "ruby: #{Filelock::VERSION} from #{File.dirname(feats.first)}"' "$moved" "$scratch/rb.lock" ||
        fail "Ruby from the prefix"
fi

# Lua: every version built, from <prefix>/lib/lua/<v> + share/lua/<v>
# (LuaJIT reads the 5.1 directories).
versions=$build/bindings/lua/versions.txt
if [ -f "$versions" ]; then
    while read -r tag exe; do
        abi=$tag
        [ "$tag" = jit ] && abi=5.1
        [ -f "$moved/lib/lua/$abi/filelock/core.so" ] || fail "no lib/lua/$abi/filelock/core.so"
        cat >"$scratch/use.lua" <<'LUA'
local filelock = require("filelock")
local where = package.searchpath and package.searchpath("filelock.core", package.cpath) or "?"
local lock = filelock.FileLock(arg[1], { timeout = 0 })
lock:with(function() end)
print("lua " .. arg[2] .. ": " .. filelock.version .. " " .. where)
LUA
        LUA_PATH="$moved/share/lua/$abi/?.lua" LUA_CPATH="$moved/lib/lua/$abi/?.so" \
            "$exe" "$scratch/use.lua" "$scratch/lua.lock" "$tag" </dev/null ||
            fail "Lua $tag from the prefix"
    done <"$versions"
fi
echo "cmake --install: OK"
