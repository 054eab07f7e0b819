/*
 * POSIX backend: flock(2) on a separate lock file (the kernel lock), an
 * O_CREAT|O_EXCL marker file (the soft lock), and inotify(7) wake-ups.
 *
 * Why flock and not fcntl record locks: fcntl locks belong to the process,
 * so two handles in one process never exclude each other, and closing *any*
 * descriptor of the file drops them. flock locks belong to the open file
 * description: two opens contend, as two processes do.
 */
#define _GNU_SOURCE
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#ifdef __linux__
#include <sys/inotify.h>
#endif

/* ---------------------------------------------------------------------- */
/* The system-call seam                                                    */
/* ---------------------------------------------------------------------- */

static int sys_open(const char *path, int flags, mode_t mode) { return open(path, flags, mode); }
static int sys_lstat(const char *path, struct stat *st) { return lstat(path, st); }
static int sys_fstat(int fd, struct stat *st) { return fstat(fd, st); }
#ifdef __linux__
static int sys_inotify_add_watch(int fd, const char *path, uint32_t mask) {
    return inotify_add_watch(fd, path, mask);
}
#else
static int sys_inotify_init1(int flags) {
    (void)flags;
    errno = ENOSYS;
    return -1;
}
static int sys_inotify_add_watch(int fd, const char *path, uint32_t mask) {
    (void)fd, (void)path, (void)mask;
    errno = ENOSYS;
    return -1;
}
#define inotify_init1 sys_inotify_init1
#endif

static const __fl_syscalls real_syscalls = {
    sys_open,
    close,
    flock,
    sys_fstat,
    sys_lstat,
    mkdir,
    unlink,
    write,
    fchmod,
    inotify_init1,
    sys_inotify_add_watch,
};

__fl_syscalls __fl_sys = {
    sys_open,
    close,
    flock,
    sys_fstat,
    sys_lstat,
    mkdir,
    unlink,
    write,
    fchmod,
    inotify_init1,
    sys_inotify_add_watch,
};

void __fl_sys_reset(void) { __fl_sys = real_syscalls; }

double __fl_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---------------------------------------------------------------------- */
/* Helpers                                                                 */
/* ---------------------------------------------------------------------- */

static int open_retry(const char *path, int flags, mode_t mode) {
    int fd;
    do
        fd = __fl_sys.open(path, flags, mode);
    while (fd < 0 && errno == EINTR);
    return fd;
}

/* close() is not retried on EINTR: on Linux the descriptor is gone anyway,
 * and a retry could close a descriptor another thread just opened. */
static int close_fd(int fd) {
    int rc = __fl_sys.close(fd);
    if (rc != 0 && errno == EINTR)
        rc = 0;
    return rc;
}

/* Creates the missing parent directories of the lock file (mode 0777, so
 * the umask and default ACLs decide). */
static int make_parents(const fl_lock *l) {
    char buf[PATH_MAX];
    size_t n = strlen(l->dir), i;
    struct stat st;
    if (n >= sizeof buf)
        return __fl_error(FL_ENAMETOOLONG, ENAMETOOLONG,
                          "cannot create parent directory of lock file '%s': %s", l->path,
                          strerror(ENAMETOOLONG));
    memcpy(buf, l->dir, n + 1);
    for (i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != '\0')
            continue;
        buf[i] = '\0';
        if (__fl_sys.mkdir(buf, 0777) != 0 && errno != EEXIST) {
            int e = errno;
            return __fl_error(__fl_code_from_errno(e), e,
                              "cannot create directory '%s' for lock file '%s': %s", buf, l->path,
                              strerror(e));
        }
        if (i < n)
            buf[i] = '/';
    }
    /* mkdir's EEXIST also covers a regular file in the way. */
    if (__fl_sys.lstat(l->dir, &st) == 0 && !S_ISDIR(st.st_mode) && !S_ISLNK(st.st_mode))
        return __fl_error(FL_ENOTDIR, ENOTDIR,
                          "cannot create lock file '%s': '%s' is not a "
                          "directory",
                          l->path, l->dir);
    return 0;
}

static int symlink_error(const fl_lock *l) {
    return __fl_error(FL_ELOOP, ELOOP,
                      "refusing to use lock file '%s': it is a symbolic link (its target is not "
                      "touched)",
                      l->path);
}

/* Turns an open() failure into an error naming what is at the path. */
static int open_error(const fl_lock *l, int e) {
    struct stat st;
    if (e == ELOOP && __fl_sys.lstat(l->path, &st) == 0 && S_ISLNK(st.st_mode))
        return symlink_error(l);
    return __fl_os_error(e, "cannot open lock file", l->path);
}

static int not_regular_error(const fl_lock *l, mode_t m) {
    if (S_ISDIR(m))
        return __fl_error(FL_EISDIR, EISDIR, "cannot use lock file '%s': %s", l->path,
                          strerror(EISDIR));
    if (S_ISLNK(m))
        return symlink_error(l);
    return __fl_error(FL_ENOTREG, 0,
                      "cannot use lock file '%s': not a regular file (a FIFO, socket or device)",
                      l->path);
}

/* ---------------------------------------------------------------------- */
/* Kernel lock                                                             */
/* ---------------------------------------------------------------------- */

/* Opens (creating if needed) the lock file without following a final
 * symlink, without truncating it and without blocking on a FIFO. */
static int kernel_open(const fl_lock *l, __fl_hold *h) {
    const int base = O_RDWR | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | O_NOCTTY;
    mode_t perm = l->mode == FL_MODE_DEFAULT ? 0666 : (mode_t)l->mode;
    struct stat st;
    int fd = open_retry(l->path, base | O_CREAT, perm);
    if (fd < 0 && errno == ENOENT && l->base[0] != '\0') {
        int rc = make_parents(l);
        if (rc < 0)
            return rc;
        fd = open_retry(l->path, base | O_CREAT, perm);
    }
    if (fd < 0 && errno == EACCES) {
        /* A sticky directory (/tmp) refuses O_CREAT on another user's file
         * (fs.protected_regular) even when the file itself is writable. */
        int e = errno;
        fd = open_retry(l->path, base, 0);
        if (fd < 0)
            errno = e;
    }
    if (fd < 0)
        return open_error(l, errno);
    if (__fl_sys.fstat(fd, &st) != 0) {
        int e = errno;
        close_fd(fd);
        return __fl_os_error(e, "cannot stat lock file", l->path);
    }
    if (!S_ISREG(st.st_mode)) {
        close_fd(fd);
        return not_regular_error(l, st.st_mode);
    }
    h->fd = fd;
    h->dev = (uint64_t)st.st_dev;
    h->ino = (uint64_t)st.st_ino;
    h->have_id = 1;
    return 0;
}

static int kernel_try(fl_lock *l, __fl_hold *h, int block) {
    struct stat st;
    int rc, e;
    if (h->fd < 0 && (rc = kernel_open(l, h)) != 0)
        return rc;
    rc = __fl_sys.flock(h->fd, LOCK_EX | (block ? 0 : LOCK_NB));
    if (rc != 0) {
        e = errno;
        if (e == EWOULDBLOCK || e == EAGAIN)
            return FL__BUSY;
        __fl_os_abandon(h);
        if (e == EINTR)
            return __fl_error(FL_EINTR, EINTR,
                              "waiting for lock file '%s' was interrupted by a signal", l->path);
        if (e == ENOSYS || e == EOPNOTSUPP || e == ENOTSUP)
            return __fl_error(FL_ENOTSUP, e,
                              "cannot lock '%s': the file system does not support flock (%s); "
                              "use the soft lock (SoftFileLock) or the soft_fallback option",
                              l->path, strerror(e));
        return __fl_os_error(e, "cannot lock", l->path);
    }
    /* Won. If the path was unlinked or replaced meanwhile, we locked an
     * orphan inode that other processes no longer find: start over. */
    if (__fl_sys.lstat(l->path, &st) != 0 || (uint64_t)st.st_dev != h->dev ||
        (uint64_t)st.st_ino != h->ino) {
        __fl_os_abandon(h);
        return FL__RETRY;
    }
    /* An explicit mode is applied exactly, but only once the lock is ours;
     * EPERM means another user owns the file: leave it. */
    if (l->mode != FL_MODE_DEFAULT && (st.st_mode & 07777) != (mode_t)l->mode)
        (void)__fl_sys.fchmod(h->fd, (mode_t)l->mode);
    return 0;
}

/* ---------------------------------------------------------------------- */
/* Soft lock                                                               */
/* ---------------------------------------------------------------------- */

/* The marker's content: an owner record ("<pid>\n<hostname>\n") that the
 * stale-marker recovery reads. Written fully before reporting success. */
static int write_owner(int fd) {
    char host[256], buf[320];
    int n;
    size_t off = 0;
    if (gethostname(host, sizeof host) != 0)
        host[0] = '\0';
    host[sizeof host - 1] = '\0';
    n = snprintf(buf, sizeof buf, "%ld\n%s\n", (long)getpid(), host);
    if (n < 0 || (size_t)n >= sizeof buf)
        n = (int)strlen(buf);
    while (off < (size_t)n) {
        ssize_t w = __fl_sys.write(fd, buf + off, (size_t)n - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return w < 0 ? errno : EIO;
        off += (size_t)w;
    }
    return 0;
}

static int soft_try(fl_lock *l, __fl_hold *h) {
    const int flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY;
    mode_t perm = l->mode == FL_MODE_DEFAULT ? 0666 : (mode_t)l->mode;
    struct stat st;
    int fd, e;

    fd = open_retry(l->path, flags, perm);
    if (fd < 0 && errno == ENOENT && l->base[0] != '\0') {
        int rc = make_parents(l);
        if (rc < 0)
            return rc;
        fd = open_retry(l->path, flags, perm);
    }
    if (fd < 0) {
        e = errno;
        if (e != EEXIST)
            return open_error(l, e);
        if (__fl_sys.lstat(l->path, &st) != 0)
            return FL__RETRY; /* released in between */
        if (!S_ISREG(st.st_mode))
            return not_regular_error(l, st.st_mode);
        h->dev = (uint64_t)st.st_dev;
        h->ino = (uint64_t)st.st_ino;
        h->have_id = 1;
        return FL__BUSY;
    }
    if ((e = write_owner(fd)) != 0 || __fl_sys.fstat(fd, &st) != 0) {
        if (e == 0)
            e = errno;
        close_fd(fd);
        __fl_sys.unlink(l->path);
        return __fl_os_error(e, "cannot write soft lock marker", l->path);
    }
    if (close_fd(fd) != 0) {
        e = errno;
        __fl_sys.unlink(l->path);
        return __fl_os_error(e, "cannot write soft lock marker", l->path);
    }
    h->fd = -1;
    h->dev = (uint64_t)st.st_dev;
    h->ino = (uint64_t)st.st_ino;
    h->have_id = 1;
    return 0;
}

/* ---------------------------------------------------------------------- */
/* Backend entry points                                                    */
/* ---------------------------------------------------------------------- */

int __fl_os_try(fl_lock *l, int kind, __fl_hold *h, int block) {
    if (l->base[0] == '\0')
        return __fl_error(FL_EISDIR, EISDIR, "cannot use lock file '%s': %s", l->path,
                          strerror(EISDIR));
    return kind == FL_KERNEL ? kernel_try(l, h, block) : soft_try(l, h);
}

void __fl_os_abandon(__fl_hold *h) {
    if (h->fd >= 0)
        close_fd(h->fd);
    h->fd = -1;
}

int __fl_os_release(fl_lock *l, int kind, __fl_hold *h, int owner) {
    int rc = 0;
    if (kind == FL_KERNEL || h->fd >= 0) {
        if (h->fd < 0)
            return 0;
        /* Unlock explicitly: a forked child may still hold a duplicate of
         * this descriptor, and close() alone would leave the lock held. The
         * lock file itself is never deleted: that would split waiters
         * across two inodes. */
        if (owner)
            (void)__fl_sys.flock(h->fd, LOCK_UN);
        if (close_fd(h->fd) != 0)
            rc = __fl_os_error(errno, "error closing lock file (the lock is released)", l->path);
        h->fd = -1;
        return rc;
    }
    if (owner && h->have_id) {
        /* Delete the marker only if it is still the one we created. */
        struct stat st;
        if (__fl_sys.lstat(l->path, &st) == 0 && (uint64_t)st.st_dev == h->dev &&
            (uint64_t)st.st_ino == h->ino && __fl_sys.unlink(l->path) != 0 && errno != ENOENT)
            rc = __fl_os_error(errno, "cannot remove soft lock marker", l->path);
    }
    h->have_id = 0;
    return rc;
}

/* ---------------------------------------------------------------------- */
/* Wake-ups                                                                */
/* ---------------------------------------------------------------------- */

void __fl_os_watch_open(fl_lock *l, int kind, __fl_watch *w) {
    w->fd = -1;
    w->wd = -1;
#ifdef __linux__
    {
        int fd = __fl_sys.inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
        uint32_t mask;
        const char *target;
        if (fd < 0)
            return;
        if (kind == FL_KERNEL) {
            /* The holder's release ends with close(): that is the event.
             * Unlink/rename also wake us so we reopen the current file. */
            target = l->path;
            mask = IN_CLOSE_WRITE | IN_CLOSE_NOWRITE | IN_DELETE_SELF | IN_MOVE_SELF | IN_ATTRIB |
                   IN_DONT_FOLLOW;
        } else {
            target = l->dir;
            mask = IN_DELETE | IN_MOVED_FROM | IN_ONLYDIR;
        }
        w->wd = __fl_sys.inotify_add_watch(fd, target, mask);
        if (w->wd < 0) {
            close_fd(fd);
            return;
        }
        w->fd = fd;
    }
#else
    (void)l;
    (void)kind;
#endif
}

/* Reads pending events; returns 1 if one concerns the lock. */
static int drain(fl_lock *l, int kind, __fl_watch *w) {
#ifdef __linux__
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    int relevant = 0;
    for (;;) {
        ssize_t n = read(w->fd, buf, sizeof buf), off = 0;
        if (n <= 0)
            break;
        while (off < n) {
            const struct inotify_event *ev = (const struct inotify_event *)(buf + off);
            if (kind == FL_KERNEL || (ev->mask & IN_Q_OVERFLOW) ||
                (ev->len && strcmp(ev->name, l->base) == 0) || (ev->mask & IN_IGNORED))
                relevant = 1;
            off += (ssize_t)sizeof *ev + ev->len;
        }
    }
    return relevant;
#else
    (void)l;
    (void)kind;
    (void)w;
    return 1;
#endif
}

int __fl_os_watch_wait(fl_lock *l, int kind, __fl_watch *w, double seconds) {
    double end = __fl_now() + seconds;
    for (;;) {
        double left = end - __fl_now();
        struct timespec ts;
        int rc;
        if (left <= 0)
            return 0;
        ts.tv_sec = (time_t)left;
        ts.tv_nsec = (long)((left - (double)ts.tv_sec) * 1e9);
        if (w->fd < 0) {
            rc = nanosleep(&ts, NULL);
        } else {
            struct pollfd p;
            p.fd = w->fd;
            p.events = POLLIN;
            p.revents = 0;
            rc = ppoll(&p, 1, &ts, NULL);
        }
        if (rc < 0 && errno == EINTR)
            return __fl_error(FL_EINTR, EINTR,
                              "waiting for lock file '%s' was interrupted by a signal", l->path);
        if (w->fd < 0 || rc == 0)
            return 0;
        if (rc > 0 && drain(l, kind, w))
            return 0;
        /* Events about other files in the directory: keep waiting. */
    }
}

void __fl_os_watch_close(__fl_watch *w) {
    if (w->fd >= 0)
        close_fd(w->fd);
    w->fd = -1;
    w->wd = -1;
}

/* ---------------------------------------------------------------------- */
/* Singleton key                                                           */
/* ---------------------------------------------------------------------- */

/* The parent directory is resolved (it may be reached through symlinks);
 * the final component is not, so a symlink at the lock path is never
 * followed. A parent that does not exist yet is keyed by its absolute
 * spelling. */
char *__fl_os_canonical_key(const char *dir, const char *base) {
    char real[PATH_MAX], cwd[PATH_MAX];
    const char *d = dir, *prefix = "";
    size_t n;
    char *key;
    if (realpath(dir, real)) {
        d = real;
    } else if (dir[0] != '/' && getcwd(cwd, sizeof cwd)) {
        prefix = cwd;
    }
    n = strlen(prefix) + strlen(d) + strlen(base) + 3;
    key = malloc(n);
    if (key)
        snprintf(key, n, "%s%s%s/%s", prefix, *prefix ? "/" : "", d, base);
    return key;
}
