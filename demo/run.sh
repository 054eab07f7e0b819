#!/usr/bin/env bash
# demo/run.sh <build-dir> [--count N] [--no-control]
#
# The README demo. Several processes, in every language that is available,
# append lines to high_ground.txt under ONE lock file (high_ground.txt.lock)
# with a deliberately fragile read-modify-write (see demo/README.md). The
# demo prints the file and checks that no line is torn or lost, first with
# the kernel lock (FileLock), then with the soft lock (SoftFileLock). It
# exits non-zero on any problem. A last, informational round runs the C
# writers without the lock to show the damage the lock prevents.
#
#   --count N      lines per writer (default 20, or $FL_DEMO_COUNT)
#   --no-control   skip the unlocked round
#
# Output files go to <build-dir>/demo/run/{kernel,soft,unlocked}/.
set -u

usage() {
    echo "usage: demo/run.sh <build-dir> [--count N] [--no-control]" >&2
    exit 2
}
[[ $# -ge 1 ]] || usage
[[ -d $1 ]] || { echo "demo: build directory '$1' does not exist (configure and build first)" >&2; exit 2; }
BUILD_DIR=$(cd "$1" && pwd)
shift
DEMO_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
COUNT=${FL_DEMO_COUNT:-20}
CONTROL=1
while [[ $# -gt 0 ]]; do
    case $1 in
    --count) [[ $# -ge 2 && $2 =~ ^[1-9][0-9]*$ ]] || usage; COUNT=$2; shift 2 ;;
    --no-control) CONTROL=0; shift ;;
    *) usage ;;
    esac
done

# ---------------------------------------------------------------------------
# Writer discovery: one small function per language.
#
# Every writer takes the same command line,
#     <writer> <file> <lockfile> <count> <tag> [--soft]
# and follows the protocol in demo/README.md. A find_* function either sets
#     WRITER=(program and leading arguments...)
#     WRITER_ENV=(NAME=value ...)     # extra environment, may be empty
# and returns 0, or sets SKIP to the reason and returns 1 (the demo then
# prints a note and goes on without that language). Binding engineers: adjust
# your own function when your build layout or module name changes.
# ---------------------------------------------------------------------------

# C: the program built from demo/writer.c.
find_c() {
    WRITER=("$BUILD_DIR/demo/writer")
    WRITER_ENV=()
    [[ -x ${WRITER[0]} ]] || { SKIP="${WRITER[0]} not built (cmake --build $BUILD_DIR)"; return 1; }
}

# Python: demo/writer.py on our binding, the package in bindings/python/pkg.
# The import must resolve to the build tree: Debian's python3-filelock has
# the same module name and must not stand in for ours.
find_python() {
    local script=$DEMO_DIR/writer.py pkg=$BUILD_DIR/bindings/python/pkg module=filelock
    [[ -f $script ]] || { SKIP="demo/writer.py not written yet"; return 1; }
    [[ -d $pkg ]] || { SKIP="Python binding not built ($pkg missing)"; return 1; }
    if ! PYTHONPATH=$pkg /usr/bin/python3 -c '
import importlib, os, sys
m = importlib.import_module(sys.argv[1])
sys.exit(0 if os.path.realpath(m.__file__).startswith(os.path.realpath(sys.argv[2])) else 1)
' "$module" "$pkg" >/dev/null 2>&1; then
        SKIP="'import $module' with PYTHONPATH=$pkg fails or does not load the build tree's package"
        return 1
    fi
    WRITER=(/usr/bin/python3 "$script")
    WRITER_ENV=("PYTHONPATH=$pkg")
}

# Ruby: demo/writer.rb on our binding, `ruby -I <build>/bindings/ruby/lib`.
find_ruby() {
    local script=$DEMO_DIR/writer.rb lib=$BUILD_DIR/bindings/ruby/lib feature=filelock
    [[ -f $script ]] || { SKIP="demo/writer.rb not written yet"; return 1; }
    command -v ruby >/dev/null || { SKIP="ruby not installed (apt-get install ruby)"; return 1; }
    [[ -d $lib ]] || { SKIP="Ruby binding not built ($lib missing)"; return 1; }
    ruby -I "$lib" -e "require '$feature'" >/dev/null 2>&1 ||
        { SKIP="ruby -I $lib -e \"require '$feature'\" fails"; return 1; }
    WRITER=(ruby -I "$lib" "$script")
    WRITER_ENV=()
}

# Lua: demo/writer.lua on our binding. bindings/lua builds one directory
# per Lua version, <build>/bindings/lua/<v>/{filelock.lua,filelock/core.so},
# and lists "<v> <interpreter>" pairs in versions.txt: use the first pair
# whose interpreter is installed (5.4 comes first).
find_lua() {
    local script=$DEMO_DIR/writer.lua base=$BUILD_DIR/bindings/lua module=filelock v lua dir=""
    [[ -f $script ]] || { SKIP="demo/writer.lua not written yet"; return 1; }
    [[ -f $base/versions.txt ]] || { SKIP="Lua binding not built ($base/versions.txt missing)"; return 1; }
    while read -r v lua; do
        if [[ -x $lua && -d $base/$v ]]; then
            dir=$base/$v
            break
        fi
    done <"$base/versions.txt"
    [[ -n $dir ]] || { SKIP="no Lua interpreter listed in $base/versions.txt is installed"; return 1; }
    WRITER_ENV=("LUA_CPATH=$dir/?.so;;" "LUA_PATH=$dir/?.lua;;")
    env "${WRITER_ENV[@]}" "$lua" -e "require('$module')" >/dev/null 2>&1 ||
        { SKIP="$lua cannot require('$module') from $dir"; return 1; }
    WRITER=("$lua" "$script")
}

# Interop: Debian's pure-Python filelock (python3-filelock) on the same lock
# file. Python runs without the site module (-S) and with only Debian's
# package directory on PYTHONPATH, so that neither a PYTHONPATH of ours nor
# our package installed by `cmake --install` (e.g. in
# /usr/local/lib/python3.X/dist-packages) can shadow it.
find_pyfilelock() {
    local script=$DEMO_DIR/writer_pyfilelock.py deb=/usr/lib/python3/dist-packages
    [[ -f $script ]] || { SKIP="demo/writer_pyfilelock.py missing"; return 1; }
    [[ -f $deb/filelock/__init__.py ]] ||
        { SKIP="Debian's python3-filelock is not installed (apt-get install python3-filelock)"; return 1; }
    PYTHONPATH=$deb /usr/bin/python3 -S -c '
import sys, filelock
sys.exit(0 if filelock.__file__.startswith(sys.argv[1] + "/") else 1)' "$deb" >/dev/null 2>&1 ||
        { SKIP="python3 -S with PYTHONPATH=$deb does not import Debian's filelock"; return 1; }
    WRITER=(env PYTHONPATH="$deb" /usr/bin/python3 -S "$script")
    WRITER_ENV=()
}

# ---------------------------------------------------------------------------
# The writers of one round: "<tag> <language>" pairs.
# ---------------------------------------------------------------------------
WRITERS=("c1 c" "c2 c" "c3 c" "py python" "rb ruby" "lua lua" "pyfl pyfilelock")
declare -A LABEL=([c]="C" [python]="Python binding" [ruby]="Ruby binding" [lua]="Lua binding"
    [pyfilelock]="py-filelock (Debian's, interop)")
declare -A CMD=() # language -> shell-quoted command line, for the ones found

echo "== filelock demo: several processes, one lock, one file =="
for lang in c python ruby lua pyfilelock; do
    SKIP=""
    if "find_$lang"; then
        CMD[$lang]=$(printf '%q ' env "${WRITER_ENV[@]}" "${WRITER[@]}")
    else
        echo "note: skipping the ${LABEL[$lang]} writer: $SKIP"
    fi
done
if [[ -z ${CMD[c]:-} ]]; then
    echo "demo: FAILED: the C writer is required" >&2
    exit 1
fi

WORK=$BUILD_DIR/demo/run
FAILED=0

# run_round <name> <extra writer flag or ""> <languages to use...>
# Starts the writers together, waits (each under a hard deadline), checks.
run_round() {
    local name=$1 flag=$2 dir file lock spec tag lang expect="" pids=() tags=() i rc who=()
    shift 2
    dir=$WORK/$name
    rm -rf "$dir"
    mkdir -p "$dir"
    file=$dir/high_ground.txt
    # shellcheck disable=SC2034 # used in the eval below
    lock=$file.lock
    for spec in "${WRITERS[@]}"; do
        tag=${spec% *}
        lang=${spec#* }
        [[ -n ${CMD[$lang]:-} ]] || continue
        [[ " $* " == *" $lang "* ]] || continue
        # shellcheck disable=SC2086 # CMD holds a %q-quoted command line
        eval "timeout 60 ${CMD[$lang]}" '"$file" "$lock" "$COUNT" "$tag"' $flag \
            '2>"$dir/$tag.stderr" &'
        pids+=($!)
        tags+=("$tag")
        who+=("$tag(${LABEL[$lang]%% *})")
        expect+="$tag:$COUNT "
    done
    echo
    echo "-- $name: ${#tags[@]} writers x $COUNT lines into $file --"
    echo "   writers: ${who[*]}"
    for i in "${!pids[@]}"; do
        wait "${pids[$i]}"
        rc=$?
        if [[ $rc -ne 0 ]]; then
            if [[ $rc -eq 124 ]]; then
                echo "   writer ${tags[$i]} did not finish within 60 s and was killed:"
            else
                echo "   writer ${tags[$i]} failed (exit status $rc):"
            fi
            sed 's/^/     /' "$dir/${tags[$i]}.stderr"
            ROUND_WRITER_FAILED=1
        fi
    done
    ROUND_FILE=$file
    ROUND_EXPECT=$expect
}

show_file() { # <file> <all|excerpt>
    local n
    n=$(wc -l <"$1")
    if [[ $2 == all || $n -le 12 ]]; then
        sed 's/^/   | /' "$1"
    else
        head -n 5 "$1" | sed 's/^/   | /'
        echo "   | ... ($((n - 10)) more lines) ..."
        tail -n 5 "$1" | sed 's/^/   | /'
    fi
}

LANGS_ALL=(c python ruby lua pyfilelock)
START=$SECONDS
SUMMARY=()

for round in kernel soft; do
    ROUND_WRITER_FAILED=0
    if [[ $round == kernel ]]; then
        run_round kernel "" "${LANGS_ALL[@]}"
        show_file "$ROUND_FILE" all
    else
        run_round soft --soft "${LANGS_ALL[@]}"
        show_file "$ROUND_FILE" excerpt
    fi
    echo "   check:"
    if out=$(bash "$DEMO_DIR/check.sh" "$ROUND_FILE" "$ROUND_EXPECT") && [[ $ROUND_WRITER_FAILED -eq 0 ]]; then
        echo "$out"
        SUMMARY+=("$round lock: $(echo "$out" | tail -n 1 | sed 's/^ *//')")
    else
        echo "$out"
        SUMMARY+=("$round lock: FAILED ($(echo "$out" | tail -n 1 | sed 's/^ *//'))")
        FAILED=1
    fi
done

if [[ $CONTROL -eq 1 ]]; then
    ROUND_WRITER_FAILED=0
    run_round unlocked --no-lock c
    echo "   (control: the same C writers with the lock switched off)"
    if out=$(bash "$DEMO_DIR/check.sh" "$ROUND_FILE" "$ROUND_EXPECT"); then
        echo "   no damage this time: the race depends on timing; the locked rounds do not"
    else
        echo "$out" | tail -n 1 | sed 's/^ */   without the lock: /'
    fi
fi

echo
echo "== summary ($((SECONDS - START)) s) =="
for s in "${SUMMARY[@]}"; do
    echo "   $s"
done
if [[ $FAILED -ne 0 ]]; then
    echo "demo: FAILED"
    exit 1
fi
echo "demo: OK"
