/*
 * POSIX backend, the portable half: flock(2) on a separate lock file (the
 * kernel lock), an O_CREAT|O_EXCL marker file (the soft lock), owner
 * records. Wake-ups, process identity and what the file system promises
 * come from the platform half (platform.h: linux.c or generic.c).
 *
 * Why flock and not fcntl record locks: fcntl locks belong to the process,
 * so two handles in one process never exclude each other, and closing *any*
 * descriptor of the file drops them. flock locks belong to the open file
 * description: two opens contend, as two processes do.
 */
/* flock(2) is BSD, not POSIX: glibc and macOS declare it only when asked. */
#define _GNU_SOURCE
#define _DARWIN_C_SOURCE
#include "fsprobe.h"
#include "internal.h"
#include "platform.h"
#include "soft.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

/* A file's modification time as a struct timespec: POSIX 2008 names it
 * st_mtim, macOS st_mtimespec. */
#ifdef __APPLE__
#define FL__MTIM(st) ((st).st_mtimespec)
#else
#define FL__MTIM(st) ((st).st_mtim)
#endif

/* ---------------------------------------------------------------------- */
/* The system-call seam                                                    */
/* ---------------------------------------------------------------------- */

static int sys_open(const char *path, int flags, mode_t mode) { return open(path, flags, mode); }
static int sys_lstat(const char *path, struct stat *st) { return lstat(path, st); }
static int sys_fstat(int fd, struct stat *st) { return fstat(fd, st); }

/* One list for both the table tests override and the pristine copy. */
#define FL__REAL_SYSCALLS                                                                          \
    {                                                                                              \
        sys_open, close, flock, sys_fstat, sys_lstat, mkdir, unlink, write, fchmod,                \
            fl__plat_inotify_init1, fl__plat_inotify_add_watch, rename, kill, fl__plat_pidfd_open, \
            futimens                                                                               \
    }

static const fl__syscalls real_syscalls = FL__REAL_SYSCALLS;
fl__syscalls fl__sys = FL__REAL_SYSCALLS;

void fl__sys_reset(void) { fl__sys = real_syscalls; }

double fl__now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---------------------------------------------------------------------- */
/* Helpers                                                                 */
/* ---------------------------------------------------------------------- */

/* Moves a new descriptor that landed on 0, 1 or 2 (the program started
 * with them closed) above them, as SQLite's robust_open does: there, any
 * printf, perror or child process using its standard streams would read or
 * write the lock file or the soft marker's owner record, and a child
 * inheriting the lock's descriptor would get it as its stdin or stdout.
 * Returns the descriptor to use, or -1 with errno set (fd closed). */
int fl__px_above_stdio(int fd, int cloexec) {
    int hi, e;
    if (fd < 0 || fd > 2)
        return fd;
    hi = fcntl(fd, cloexec ? F_DUPFD_CLOEXEC : F_DUPFD, 3);
    /* EINVAL: the limit on open files is 3 or less, i.e. none is left. */
    e = hi < 0 && errno == EINVAL ? EMFILE : errno;
    (void)close(fd);
    errno = e;
    return hi;
}

/* ESTALE: on a network file system (NFS, GlusterFS) the name was resolved
 * to a file that another host has just removed or replaced. Resolving the
 * name again is the answer (the VFS itself retries once); measured on
 * GlusterFS with two clients racing on one soft marker. */
#define FL__ESTALE_TRIES 4

int fl__px_open(const char *path, int flags, mode_t mode) {
    int fd, stale = 0;
    do
        fd = fl__sys.open(path, flags, mode);
    while (fd < 0 && (errno == EINTR || (errno == ESTALE && ++stale < FL__ESTALE_TRIES)));
    return fl__px_above_stdio(fd, (flags & O_CLOEXEC) != 0);
}

/* close() is not retried on EINTR: on Linux the descriptor is gone anyway,
 * and a retry could close a descriptor another thread just opened. */
int fl__px_close(int fd) {
    int rc = fl__sys.close(fd);
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
        return fl__error(FL_ENAMETOOLONG, ENAMETOOLONG,
                         "cannot create parent directory of lock file '%s': %s", l->path,
                         strerror(ENAMETOOLONG));
    memcpy(buf, l->dir, n + 1);
    for (i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != '\0')
            continue;
        buf[i] = '\0';
        if (fl__sys.mkdir(buf, 0777) != 0 && errno != EEXIST) {
            int e = errno;
            return fl__error(fl__code_from_errno(e), e,
                             "cannot create directory '%s' for lock file '%s': %s", buf, l->path,
                             strerror(e));
        }
        if (i < n)
            buf[i] = '/';
    }
    /* mkdir's EEXIST also covers a regular file in the way. */
    if (fl__sys.lstat(l->dir, &st) == 0 && !S_ISDIR(st.st_mode) && !S_ISLNK(st.st_mode))
        return fl__error(FL_ENOTDIR, ENOTDIR,
                         "cannot create lock file '%s': '%s' is not a "
                         "directory",
                         l->path, l->dir);
    return 0;
}

static int symlink_error(const fl_lock *l) {
    return fl__error(FL_ELOOP, ELOOP,
                     "refusing to use lock file '%s': it is a symbolic link (its target is not "
                     "touched)",
                     l->path);
}

/* Turns an open() failure into an error naming what is at the path. */
static int open_error(const fl_lock *l, int e) {
    struct stat st;
    if (e == ELOOP && fl__sys.lstat(l->path, &st) == 0 && S_ISLNK(st.st_mode))
        return symlink_error(l);
    return fl__os_error(e, "cannot open lock file", l->path);
}

static int not_regular_error(const fl_lock *l, mode_t m) {
    if (S_ISDIR(m))
        return fl__error(FL_EISDIR, EISDIR, "cannot use lock file '%s': %s", l->path,
                         strerror(EISDIR));
    if (S_ISLNK(m))
        return symlink_error(l);
    return fl__error(FL_ENOTREG, 0,
                     "cannot use lock file '%s': not a regular file (a FIFO, socket or device)",
                     l->path);
}

/* ---------------------------------------------------------------------- */
/* Owner records (identity and proof of death: the platform half)          */
/* ---------------------------------------------------------------------- */

static void host_name(char *buf, size_t size) {
    if (gethostname(buf, size) != 0)
        buf[0] = '\0';
    buf[size - 1] = '\0';
}

/* This process's owner record; its length, or -1. The hostname line carries
 * " pidns=<inode>" when we are not in the initial pid namespace (see
 * docs/soft-lock-protocol.md): readers elsewhere then cannot mistake our pid
 * for one of theirs, and the pure-Python filelock, comparing the line with
 * its hostname, treats the marker as another host's (never reclaimed). */
static int owner_record(long owner_pid, const fl__lease_rec *lease, char *buf, size_t size) {
    char host[256], ns[48] = "";
    fl__self me;
    int n;
    host_name(host, sizeof host);
    fl__plat_self(&me);
    if (owner_pid > 0) {
        /* fl_set_owner_pid: a process run on the caller's behalf (a child,
         * so in our pid namespace); its token is read each time, not
         * cached, and only where /proc shows our namespace. */
        me.pid = owner_pid;
        if (!me.can_token || fl__plat_start_token(owner_pid, me.token, sizeof me.token) != 0)
            me.token[0] = '\0';
    }
    if (me.pidns != 0 && me.pidns != FL__INIT_PIDNS)
        snprintf(ns, sizeof ns, " pidns=%llu", (unsigned long long)me.pidns);
    if (lease) {
        char tagged[320];
        snprintf(tagged, sizeof tagged, "%s%s", host, ns);
        return fl__format_lease(buf, size, me.pid, tagged, me.token, lease);
    }
    if (me.token[0])
        n = snprintf(buf, size, "%ld\n%s%s\n%s\n", me.pid, host, ns, me.token);
    else
        n = snprintf(buf, size, "%ld\n%s%s\n", me.pid, host, ns);
    return n < 0 || (size_t)n >= size ? -1 : n;
}

/* ---------------------------------------------------------------------- */
/* Soft lock primitives (the protocol is in soft.c)                        */
/* ---------------------------------------------------------------------- */

static int write_owner(long owner_pid, const fl__lease_rec *lease, int fd) {
    char buf[512];
    int n = owner_record(owner_pid, lease, buf, sizeof buf);
    size_t off = 0;
    if (n < 0)
        return EOVERFLOW;
    while (off < (size_t)n) {
        ssize_t w = fl__sys.write(fd, buf + off, (size_t)n - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return w < 0 ? errno : EIO;
        off += (size_t)w;
    }
    return 0;
}

int fl__prim_create(const char *path, int mode, long owner_pid, const fl__lease_rec *lease,
                    fl__fid *id) {
    const int flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY;
    mode_t perm = mode == FL_MODE_DEFAULT ? 0666 : (mode_t)mode;
    struct stat st;
    int fd = fl__px_open(path, flags, perm), e = 0, written;
    if (fd < 0) {
        /* Still stale: another host keeps changing the name; the caller
         * treats EEXIST as "look at what is there" (and retries). */
        if (errno == ESTALE)
            errno = EEXIST;
        return -1;
    }
    /* An explicit mode is applied exactly: the umask only shapes the
     * default. Another user must be able to read a marker to judge it. */
    if (mode != FL_MODE_DEFAULT && fl__sys.fchmod(fd, (mode_t)mode) != 0)
        e = errno;
    if (e == 0)
        e = write_owner(owner_pid, lease, fd);
    written = e == 0;
    if (e == 0 && fl__sys.fstat(fd, &st) != 0)
        e = errno;
    if (e != 0) {
        /* Never leave a file nobody owns: it would read as a marker (with
         * our full record, a live one). But a file without a record is
         * taken over after its grace, and a write can fail late (a network
         * file system), when the name holds the taker's marker: then only
         * while the name is still ours. */
        struct stat there;
        if (written || (fl__sys.fstat(fd, &st) == 0 && fl__sys.lstat(path, &there) == 0 &&
                        there.st_dev == st.st_dev && there.st_ino == st.st_ino))
            (void)fl__sys.unlink(path);
        fl__px_close(fd);
        errno = e == EEXIST ? EIO : e;
        return -1;
    }
    id->dev = (uint64_t)st.st_dev;
    id->ino = (uint64_t)st.st_ino;
    return fd;
}

int fl__prim_read(const char *path, fl__record *rec) {
    struct stat st, st2;
    ssize_t n, total = 0;
    struct timespec now;
    int fd;
    rec->fd = -1;
    rec->len = 0;
    rec->text[0] = '\0';
    /* ESTALE: another host removed or replaced the file under the name
     * (fl__px_open): like a change seen between lstat and fstat, EAGAIN. */
    if (fl__sys.lstat(path, &st) != 0)
        return errno == ESTALE ? EAGAIN : errno;
    if (!S_ISREG(st.st_mode))
        return EINVAL;
    fd = fl__px_open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY, 0);
    if (fd < 0)
        return errno == ELOOP || errno == ESTALE ? EAGAIN : errno;
    if (fl__sys.fstat(fd, &st2) != 0 || st2.st_dev != st.st_dev || st2.st_ino != st.st_ino) {
        fl__px_close(fd);
        return EAGAIN;
    }
    while ((size_t)total < sizeof rec->text - 1) {
        n = read(fd, rec->text + total, sizeof rec->text - 1 - (size_t)total);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        total += n;
    }
    rec->text[total] = '\0';
    rec->len = (size_t)total;
    rec->fd = fd;
    rec->id.dev = (uint64_t)st2.st_dev;
    rec->id.ino = (uint64_t)st2.st_ino;
    clock_gettime(CLOCK_REALTIME, &now);
    rec->mtime = (double)FL__MTIM(st2).tv_sec + (double)FL__MTIM(st2).tv_nsec / 1e9;
    rec->age = (double)(now.tv_sec - FL__MTIM(st2).tv_sec) +
               (double)(now.tv_nsec - FL__MTIM(st2).tv_nsec) / 1e9;
    return 0;
}

int fl__prim_id(const char *path, fl__fid *id) {
    struct stat st;
    if (fl__sys.lstat(path, &st) != 0)
        return errno;
    id->dev = (uint64_t)st.st_dev;
    id->ino = (uint64_t)st.st_ino;
    return 0;
}

int fl__prim_replace(const char *from, const char *to) {
    return fl__sys.rename(from, to) == 0 ? 0 : errno;
}

int fl__prim_touch(int fd) { return fl__sys.futimens(fd, NULL) == 0 ? 0 : errno; }

int fl__prim_exited(long pid) {
    int r = fl__plat_exited(pid);
    if (r >= 0)
        return r;
    /* kill() finds a zombie too: an exited, unreaped child counts as running. */
    return fl__sys.kill((pid_t)pid, 0) != 0 && errno == ESRCH;
}

int fl__prim_remove(const char *path) { return fl__sys.unlink(path) == 0 ? 0 : errno; }

int fl__prim_close(int fd) {
    if (fd < 0)
        return 0;
    return fl__px_close(fd) == 0 ? 0 : errno;
}

int fl__prim_judge(const fl__record *rec, double grace) {
    char host[256], token[96];
    uint64_t ns = 0;
    fl__self me;
    fl_owner o;
    if (fl__parse_record(rec->text, rec->len, &o, &ns) != 0)
        return rec->age >= grace ? FL__GONE : FL__ALIVE;
    host_name(host, sizeof host);
    if (strcmp(o.hostname, host) != 0)
        return FL__UNKNOWN;
    fl__plat_self(&me);
    /* A pid names a process only in its own namespace. A record without a
     * namespace was written in the initial one (by us) or by a writer that
     * does not record it (the pure-Python filelock): judge it only from the
     * initial namespace. */
    if (me.pidns == FL__NO_PIDNS || (ns != 0 ? (me.pidns == 0 || ns != me.pidns)
                                             : (me.pidns != 0 && me.pidns != FL__INIT_PIDNS)))
        return FL__UNKNOWN;
    /* Our own pid is judged like any other: with a different start token it
     * is a previous process that had our pid (e.g. the same service after a
     * container restart), not another handle of ours. */
    if (fl__sys.kill((pid_t)o.pid, 0) != 0 && errno == ESRCH)
        return FL__GONE;
    if (o.start_token[0] && me.can_token) {
        int r = fl__plat_start_token(o.pid, token, sizeof token);
        /* No /proc/<pid>: the process exited since kill() (it is reaped,
         * so kill now says ESRCH) -- or /proc hides other users' processes
         * (hidepid=2), which says nothing about them. Only kill can tell. */
        if (r == 1)
            return fl__sys.kill((pid_t)o.pid, 0) != 0 && errno == ESRCH ? FL__GONE : FL__ALIVE;
        if (r == 0 && strcmp(token, o.start_token) != 0)
            return FL__GONE;
    }
    /* A zombie (exited, not yet reaped) is alive here: a program that holds
     * the lock for a child it runs (fl_set_owner_pid, the filelock command)
     * keeps the child unreaped until its release has removed the marker.
     * Taken over earlier, that release (lstat: ours ... unlink) could remove
     * the taker's marker and let a third process in beside the taker. */
    return FL__ALIVE;
}

int fl__prim_still_old(const fl__record *rec, fl__fh fresh_fd, double grace) {
    struct stat judged, fresh;
    double then, now;
    if (rec->fd < 0 || fl__sys.fstat(rec->fd, &judged) != 0 || fl__sys.fstat(fresh_fd, &fresh) != 0)
        return 0;
    then = (double)FL__MTIM(judged).tv_sec + (double)FL__MTIM(judged).tv_nsec / 1e9;
    now = (double)FL__MTIM(fresh).tv_sec + (double)FL__MTIM(fresh).tv_nsec / 1e9;
    /* Written since we read it: its owner is at work. */
    if (then != rec->mtime || judged.st_size != (off_t)rec->len)
        return 0;
    return now - then >= grace;
}

char *fl__prim_absolute(const char *path) {
    char cwd[PATH_MAX];
    size_t a, b;
    char *out;
    if (path[0] == '/')
        return strdup(path);
    if (!getcwd(cwd, sizeof cwd))
        return NULL;
    a = strlen(cwd);
    b = strlen(path);
    out = malloc(a + b + 2);
    if (!out)
        return NULL;
    memcpy(out, cwd, a);
    out[a] = '/';
    memcpy(out + a + 1, path, b + 1);
    return out;
}

uint64_t fl__prim_random(void) {
    static uint64_t counter;
    struct timespec ts;
    uint64_t x;
    clock_gettime(CLOCK_REALTIME, &ts);
    /* Unique per process by pid and counter; the clock makes a name of a
     * previous process with the same pid unlikely to repeat. splitmix64. */
    x = ((uint64_t)getpid() << 40) ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^
        (__atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED) * 0x9E3779B97F4A7C15ULL);
    x ^= x >> 30;
    x *= 0xBF58476D1CE4E5B9ULL;
    x ^= x >> 27;
    x *= 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}

int fl__prim_make_parents(const fl_lock *l) { return make_parents(l); }

int fl__prim_path_error(const fl_lock *l, int e) {
    struct stat st;
    if (e == EINVAL && fl__sys.lstat(l->path, &st) == 0)
        return not_regular_error(l, st.st_mode);
    return open_error(l, e);
}

void fl__prim_scan(const char *path, const char *prefix, void (*fn)(const char *file, void *arg),
                   void *arg) {
    char dir[PATH_MAX], file[PATH_MAX];
    const char *slash = strrchr(path, '/');
    size_t dl = slash ? (size_t)(slash - path) + 1 : 0, pl = strlen(prefix);
    struct dirent *e;
    DIR *d;
    if (dl + 1 >= sizeof dir)
        return;
    if (dl) {
        memcpy(dir, path, dl);
        dir[dl] = '\0';
    } else {
        snprintf(dir, sizeof dir, ".");
    }
    d = opendir(dir);
    if (!d)
        return;
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, prefix, pl) != 0)
            continue;
        if ((size_t)snprintf(file, sizeof file, "%.*s%s", (int)dl, path, e->d_name) >= sizeof file)
            continue;
        fn(file, arg);
    }
    closedir(d);
}

void fl__prim_sleep(double seconds) {
    struct timespec ts;
    ts.tv_sec = (time_t)seconds;
    ts.tv_nsec = (long)((seconds - (double)ts.tv_sec) * 1e9);
    nanosleep(&ts, NULL);
}

void fl__px_watch_none(fl__watch *w) {
    w->fd = -1;
    w->wd = -1;
    w->efd = -1;
    w->waiter = NULL;
    w->gen = fl__current_gen();
    w->shared_fs = 0;
}

int fl__px_sleep(const fl_lock *l, const struct timespec *ts) {
    if (nanosleep(ts, NULL) != 0 && errno == EINTR)
        return fl__error(FL_EINTR, EINTR, "waiting for lock file '%s' was interrupted by a signal",
                         l->path);
    return 0;
}

int fl__os_get_owner(fl_lock *l, int kind, fl_owner *out) {
    char host[256];
    struct stat st;
    uint64_t ns = 0;
    int e;
    memset(out, 0, sizeof *out);
    out->pid = -1;
    host_name(host, sizeof host);
    if (kind == FL_SOFT) {
        fl__record rec;
        e = fl__prim_read(l->path, &rec);
        if (e == ENOENT)
            return fl__error(FL_ENOENT, 0, "soft lock '%s' is not held", l->path);
        if (e != 0)
            return fl__prim_path_error(l, e);
        (void)fl__prim_close(rec.fd);
        if (fl__parse_record(rec.text, rec.len, out, &ns) != 0) {
            memset(out, 0, sizeof *out);
            out->pid = -1;
            return fl__error(FL_ENOTSUP, 0,
                             "soft lock '%s' is held, but its marker has no owner record", l->path);
        }
        {
            fl__self me;
            fl__plat_self(&me);
            out->this_process = out->pid == me.pid && strcmp(out->hostname, host) == 0 &&
                                (ns ? ns == me.pidns : me.pidns == 0 || me.pidns == FL__INIT_PIDNS);
        }
        return 0;
    }
    /* Kernel lock: find a FLOCK line for the file's device and inode. */
    if (fl__sys.lstat(l->path, &st) != 0) {
        if (errno == ENOENT)
            return fl__error(FL_ENOENT, 0, "lock '%s' is not held", l->path);
        return fl__os_error(errno, "cannot stat lock file", l->path);
    }
    {
        long pid;
        int rc = fl__plat_flock_holder(l->path, (uint64_t)st.st_dev, (uint64_t)st.st_ino, &pid);
        if (rc != 0)
            return rc;
        out->pid = pid;
        snprintf(out->hostname, sizeof out->hostname, "%s", host);
        out->this_process = pid == (long)getpid();
        return 0;
    }
}

/* EBADFD ("file descriptor in bad state") is Linux's; elsewhere no errno
 * means it. */
#ifdef EBADFD
#define FL__EBADFD EBADFD
#else
#define FL__EBADFD (-1)
#endif

/* ---------------------------------------------------------------------- */
/* Kernel lock                                                             */
/* ---------------------------------------------------------------------- */

/* Opens (creating if needed) the lock file without following a final
 * symlink, without truncating it and without blocking on a FIFO. An
 * existing file is opened first and a missing one created with O_EXCL, so
 * that *created tells whether this call made the file (kernel_try removes
 * it again when the file system turns out to have no flock). */
static int kernel_open(const fl_lock *l, fl__hold *h, int *created) {
    const int base = O_RDWR | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | O_NOCTTY;
    mode_t perm = l->mode == FL_MODE_DEFAULT ? 0666 : (mode_t)l->mode;
    struct stat st;
    int fd, tries;
    *created = 0;
    for (tries = 0;; tries++) {
        fd = fl__px_open(l->path, base, 0);
        if (fd >= 0 || errno != ENOENT || tries == 3)
            break;
        fd = fl__px_open(l->path, base | O_CREAT | O_EXCL, perm);
        if (fd < 0 && errno == ENOENT && l->base[0] != '\0') {
            int rc = make_parents(l);
            if (rc < 0)
                return rc;
            fd = fl__px_open(l->path, base | O_CREAT | O_EXCL, perm);
        }
        if (fd >= 0) {
            *created = 1;
            break;
        }
        if (errno != EEXIST)
            break;
        /* Another process created it in between (or a symlink is there,
         * which the next plain open reports): open what is there. */
    }
    if (fd < 0 && errno == EACCES) {
        /* A sticky directory (/tmp) refuses O_CREAT on another user's file
         * (fs.protected_regular) even when the file itself is writable. */
        int e = errno;
        fd = fl__px_open(l->path, base, 0);
        if (fd < 0)
            errno = e;
    }
    if (fd < 0 && (errno == EACCES || errno == EROFS) &&
        __atomic_load_n(&l->read_only_open, __ATOMIC_RELAXED)) {
        /* flock(2) needs no write access (fl_set_read_only_open). A missing
         * file keeps the original error. */
        int e = errno;
        fd = fl__px_open(l->path, (base & ~O_RDWR) | O_RDONLY, 0);
        if (fd < 0)
            errno = e;
    }
    if (fd < 0)
        return open_error(l, errno);
    if (fl__sys.fstat(fd, &st) != 0) {
        int e = errno;
        fl__px_close(fd);
        return fl__os_error(e, "cannot stat lock file", l->path);
    }
    if (!S_ISREG(st.st_mode)) {
        fl__px_close(fd);
        return not_regular_error(l, st.st_mode);
    }
    h->fd = fd;
    h->dev = (uint64_t)st.st_dev;
    h->ino = (uint64_t)st.st_ino;
    h->have_id = 1;
    return 0;
}

static int kernel_try(fl_lock *l, fl__hold *h, int block) {
    struct stat st;
    int rc, e, created = 0, reused = h->fd >= 0;
    if (h->fd < 0) {
        if ((rc = kernel_open(l, h, &created)) != 0)
            return rc;
        /* A mount that keeps flock on this host would exclude nobody on the
         * others: fail closed (or let soft_fallback take over), and remove
         * the file we created, like below. */
        if ((rc = fl__fs_check_flock(l->path, h->fd, h->dev)) != 0) {
            if (created && fl__sys.lstat(l->path, &st) == 0 && (uint64_t)st.st_dev == h->dev &&
                (uint64_t)st.st_ino == h->ino)
                (void)fl__sys.unlink(l->path);
            fl__os_abandon(h);
            return rc;
        }
    }
    rc = fl__sys.flock(h->fd, (h->shared ? LOCK_SH : LOCK_EX) | (block ? 0 : LOCK_NB));
    if (rc != 0) {
        e = errno;
        if (e == EWOULDBLOCK || e == EAGAIN) {
            /* A waiter re-tries on the descriptor of its first attempt. If
             * the lock file was renamed away or replaced since, the lock
             * now lives on another inode (perhaps free) while the old one
             * may be held for ever: open the current file. */
            if (reused && (fl__sys.lstat(l->path, &st) != 0 || (uint64_t)st.st_dev != h->dev ||
                           (uint64_t)st.st_ino != h->ino)) {
                fl__os_abandon(h);
                return FL__RETRY;
            }
            return FL__BUSY;
        }
        fl__os_abandon(h);
        if (e == EINTR)
            return fl__error(FL_EINTR, EINTR,
                             "waiting for lock file '%s' was interrupted by a signal", l->path);
        if (e == ENOSYS || e == EOPNOTSUPP || e == ENOTSUP) {
            /* Left there, the empty file we just created would look like a
             * soft marker nobody owns, and the soft fallback (or any soft
             * lock on this path) would wait for it: remove it if it is
             * still ours. */
            if (created && fl__sys.lstat(l->path, &st) == 0 && (uint64_t)st.st_dev == h->dev &&
                (uint64_t)st.st_ino == h->ino)
                (void)fl__sys.unlink(l->path);
            return fl__error(FL_ENOTSUP, e,
                             "cannot lock '%s': the file system does not support flock (%s); "
                             "use the soft lock or the soft_fallback option",
                             l->path, strerror(e));
        }
        return fl__os_error(e, "cannot lock", l->path);
    }
    /* Won. If the path was unlinked or replaced meanwhile, we locked an
     * orphan inode that other processes no longer find: start over. */
    if (fl__sys.lstat(l->path, &st) != 0 || (uint64_t)st.st_dev != h->dev ||
        (uint64_t)st.st_ino != h->ino) {
        fl__os_abandon(h);
        return FL__RETRY;
    }
    /* An explicit mode is applied exactly, but only once the lock is ours;
     * EPERM means another user owns the file: leave it. */
    if (l->mode != FL_MODE_DEFAULT && (st.st_mode & 07777) != (mode_t)l->mode)
        (void)fl__sys.fchmod(h->fd, (mode_t)l->mode);
    return 0;
}

/* ---------------------------------------------------------------------- */
/* Backend entry points                                                    */
/* ---------------------------------------------------------------------- */

int fl__os_try(fl_lock *l, int kind, fl__hold *h, int block) {
    if (l->base[0] == '\0')
        return fl__error(FL_EISDIR, EISDIR, "cannot use lock file '%s': %s", l->path,
                         strerror(EISDIR));
    return kind == FL_KERNEL ? kernel_try(l, h, block) : fl__soft_try(l, h);
}

void fl__os_abandon(fl__hold *h) {
    if (h->fd >= 0)
        fl__px_close(h->fd);
    h->fd = -1;
    free(h->path);
    h->path = NULL;
}

int fl__os_release(fl_lock *l, int kind, fl__hold *h, int owner) {
    int rc = 0;
    if (kind == FL_SOFT)
        return fl__soft_release(l, h, owner);
    if (h->fd < 0)
        return 0;
    /* Unlock explicitly: a forked child may still hold a duplicate of this
     * descriptor, and close() alone would leave the lock held. The lock file
     * itself is never deleted: that would split waiters across two inodes. */
    if (owner && fl__sys.flock(h->fd, LOCK_UN) != 0) {
        int e = errno;
        /* A network file system that dropped our lock (a partition longer
         * than the server's timeout, a server restart: GlusterFS answers
         * EBADFD, NFS ESTALE or EIO) tells us only now. Another host may
         * have held the lock meanwhile: the caller must learn it. */
        if (e == FL__EBADFD || e == ESTALE || e == EIO || e == ENOTCONN || e == ENOLCK) {
            (void)fl__px_close(h->fd);
            h->fd = -1;
            return fl__error(FL_EIO, e,
                             "the lock on '%s' was lost before this release: the file system "
                             "dropped it (%s), so another process may have held it meanwhile",
                             l->path, strerror(e));
        }
    }
    if (fl__px_close(h->fd) != 0 && fl__close_error_reported(l, FL_KERNEL))
        rc = fl__os_error(errno, "error closing lock file (the lock is released)", l->path);
    h->fd = -1;
    return rc;
}

/* ---------------------------------------------------------------------- */
/* Singleton key                                                           */
/* ---------------------------------------------------------------------- */

/* The parent directory is resolved (it may be reached through symlinks);
 * the final component is not, so a symlink at the lock path is never
 * followed. A parent that does not exist yet is keyed by its absolute
 * spelling. */
char *fl__os_canonical_key(const char *dir, const char *base) {
    char abs[PATH_MAX], real[PATH_MAX], out[PATH_MAX];
    size_t cut, n, len;
    const char *p;
    char *key;
    /* Absolute spelling first. */
    if (dir[0] == '/') {
        n = (size_t)snprintf(abs, sizeof abs, "%s", dir);
    } else {
        if (!getcwd(real, sizeof real))
            return NULL;
        n = (size_t)snprintf(abs, sizeof abs, "%s/%s", real, dir);
    }
    if (n >= sizeof abs)
        return NULL;
    /* Resolve the deepest ancestor that exists; the rest does not exist
     * yet, so it holds no symlinks and "." / ".." are resolved lexically. */
    cut = strlen(abs);
    for (;;) {
        char save = abs[cut];
        abs[cut] = '\0';
        if (realpath(cut ? abs : "/", real)) {
            abs[cut] = save;
            break;
        }
        abs[cut] = save;
        while (cut > 0 && abs[cut - 1] != '/')
            cut--;
        if (cut > 0)
            cut--; /* drop the slash too */
        if (cut == 0) {
            snprintf(real, sizeof real, "/");
            break;
        }
    }
    len = strlen(real);
    memcpy(out, real, len + 1);
    for (p = abs + cut; *p;) {
        const char *e;
        size_t cl;
        while (*p == '/')
            p++;
        if (!*p)
            break;
        e = strchr(p, '/');
        cl = e ? (size_t)(e - p) : strlen(p);
        if (cl == 1 && p[0] == '.') {
            /* nothing */
        } else if (cl == 2 && p[0] == '.' && p[1] == '.') {
            while (len > 1 && out[len - 1] != '/')
                len--;
            if (len > 1)
                len--;
            out[len] = '\0';
        } else {
            if (len + cl + 2 >= sizeof out)
                return NULL;
            if (len > 1 || out[0] != '/')
                out[len++] = '/';
            memcpy(out + len, p, cl);
            len += cl;
            out[len] = '\0';
        }
        p += cl;
    }
    n = len + strlen(base) + 2;
    key = malloc(n);
    if (key)
        snprintf(key, n, "%s%s%s", out, (len == 1 && out[0] == '/') ? "" : "/", base);
    return key;
}
