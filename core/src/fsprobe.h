/*
 * What the file system under a lock file can promise (fsprobe.c): whether
 * other hosts may share it (then inotify sees none of their releases), and
 * whether its flock() reaches the other hosts at all. Sources and the
 * support matrix: docs/filesystems.md.
 */
#ifndef FL_FSPROBE_H
#define FL_FSPROBE_H

#include "internal.h"

/* 1 when the file system holding `path` may be shared with other hosts
 * (network, cluster or FUSE file systems, judged by statfs's f_type), 0
 * when it is local or cannot be told. */
FL__HIDDEN int fl__fs_is_shared(const char *path);

/* 0 when a flock() on `fd` (the lock file `path`, on device `dev`) excludes
 * the processes of every host that mounts the same file system, as far as
 * the mount tells; FL_ENOTSUP, with the message naming the path, the mount
 * and the option, when the mount keeps flock local to this host (NFS
 * local_lock=flock|all or nolock, SMB nobrl or any SMB mount before Linux
 * 5.5, Lustre localflock or noflock, GFS2/OCFS2 localflocks, AFS
 * flock=local). Errors reading the mount table are not errors:
 * the lock goes on as before. */
FL__HIDDEN int fl__fs_check_flock(const char *path, int fd, uint64_t dev);

/* Test hook: when not NULL, the mount table is read from this file instead
 * of /proc/self/mountinfo, and it is consulted for every file system (not
 * only for those whose f_type can keep locks local). */
extern FL__HIDDEN const char *fl__mountinfo_path;
/* Test hook: when not NULL, the kernel release (uname -r) to judge by. */
extern FL__HIDDEN const char *fl__kernel_release;

#endif
