#!/bin/bash
# SIGKILL chaos on the soft lock (torture.py chaos --kind soft: C, Python,
# Ruby and Lua workers, hold intervals that must never overlap and a counter
# that must never lose an increment) on one file system, mounted here:
#
#   fs_chaos.sh BUILD FS KILLS [long]   FS: ext4 | tmpfs | overlayfs | bindfs
#
# "long" makes it skip unless FL_LONG=1 (the 1,000-kill runs).
#
# ext4 is the build directory's file system (checked); tmpfs and overlayfs
# need root (mount); bindfs is a FUSE passthrough (Debian's bindfs, fuse3),
# the kind of file system that has no renameat2 flags. Exit 77 (CTest skip)
# with the reason when the file system cannot be had here.
set -u
build=${1:?usage: $0 BUILD FS KILLS}
fs=${2:?usage: $0 BUILD FS KILLS}
kills=${3:-200}
long=()
if [ "${4:-}" = long ]; then
  [ "${FL_LONG:-}" = 1 ] || { echo "SKIPPED: long run (set FL_LONG=1)"; exit 77; }
  long=(--long-only)
fi
here=$(cd "$(dirname "$0")" && pwd)

skip() {
  echo "SKIPPED: $fs: $*"
  exit 77
}

work=$(mktemp -d "$build/fl-fschaos-$fs.XXXXXX") || exit 1
mounted=()
cleanup() {
  local m
  for m in "${mounted[@]}"; do
    if [ "$fs" = bindfs ]; then fusermount3 -u "$m" 2>/dev/null || umount -l "$m"; else umount -l "$m"; fi
  done
  rm -rf "$work"
}
trap cleanup EXIT

case $fs in
ext4)
  t=$(stat -f -c %T "$build")
  [ "$t" = ext2/ext3 ] || skip "the build directory is on $t, not ext4"
  dir=$work
  ;;
tmpfs)
  [ "$(id -u)" = 0 ] || skip "mounting needs root"
  mkdir -p "$work/mnt"
  mount -t tmpfs -o size=64m tmpfs "$work/mnt" || skip "cannot mount tmpfs"
  mounted+=("$work/mnt")
  dir=$work/mnt
  ;;
overlayfs)
  [ "$(id -u)" = 0 ] || skip "mounting needs root"
  # The upper and work directories on tmpfs: overlayfs refuses some upper
  # file systems (e.g. another overlay, which a container's / may be).
  mkdir -p "$work/base"
  mount -t tmpfs -o size=64m tmpfs "$work/base" || skip "cannot mount tmpfs for the overlay"
  mounted+=("$work/base")
  mkdir -p "$work/base/lower" "$work/base/upper" "$work/base/work" "$work/mnt"
  mount -t overlay overlay \
    -o "lowerdir=$work/base/lower,upperdir=$work/base/upper,workdir=$work/base/work" "$work/mnt" ||
    skip "cannot mount overlayfs"
  mounted=("$work/mnt" "${mounted[@]}")
  dir=$work/mnt
  ;;
bindfs)
  [ -e /dev/fuse ] || skip "/dev/fuse is absent"
  command -v bindfs >/dev/null || skip "bindfs is not installed"
  mkdir -p "$work/src" "$work/mnt"
  bindfs "$work/src" "$work/mnt" || skip "bindfs cannot mount here"
  mounted+=("$work/mnt")
  dir=$work/mnt
  ;;
*)
  echo "unknown file system $fs" >&2
  exit 2
  ;;
esac

echo "$fs: $(stat -f -c %T "$dir") at $dir"
TMPDIR=$dir /usr/bin/python3 "$here/torture.py" --build "$build" "${long[@]}" --deadline 3000 chaos --kind soft --kills "$kills"
