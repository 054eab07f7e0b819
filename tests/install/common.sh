# shellcheck shell=bash
# Shared by the install tests (sourced).

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

# fl_copy_source SRC DEST: a copy of the checkout's files (tracked and
# untracked but not ignored), so that a build tool that writes into its
# source tree never touches the real one.
fl_copy_source() {
    local src=$1 dest=$2
    mkdir -p "$dest"
    if git -C "$src" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
        # Files deleted but not yet committed are listed too: skip them.
        (cd "$src" && git ls-files -z --cached --others --exclude-standard |
            while IFS= read -r -d '' f; do [ -f "$f" ] && printf '%s\0' "$f"; done |
            tar --null --no-recursion -T - -cf -) | tar -C "$dest" -xf -
    else
        tar -C "$src" --exclude='./build*' --exclude=./.git -cf - . | tar -C "$dest" -xf -
    fi
    [ -f "$dest/core/include/filelock.h" ] || fail "copying $src to $dest failed"
}
