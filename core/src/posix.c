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
#include "fsprobe.h"
#include "internal.h"
#include "seconds.h"
#include "soft.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#ifdef __linux__
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/syscall.h>
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
/* pidfd_open(2) (Linux 5.3) through syscall(): glibc has a wrapper only
 * since 2.36. */
static int sys_pidfd_open(pid_t pid, unsigned int flags) {
#if defined(__linux__) && defined(SYS_pidfd_open)
    return (int)syscall(SYS_pidfd_open, pid, flags);
#else
    (void)pid, (void)flags;
    errno = ENOSYS;
    return -1;
#endif
}

/* One list for both the table tests override and the pristine copy. */
#define FL__REAL_SYSCALLS                                                                          \
    {                                                                                              \
        sys_open, close, flock, sys_fstat, sys_lstat, mkdir, unlink, write, fchmod, inotify_init1, \
            sys_inotify_add_watch, rename, kill, sys_pidfd_open, futimens                          \
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
static int above_stdio(int fd, int cloexec) {
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

static int open_retry(const char *path, int flags, mode_t mode) {
    int fd, stale = 0;
    do
        fd = fl__sys.open(path, flags, mode);
    while (fd < 0 && (errno == EINTR || (errno == ESTALE && ++stale < FL__ESTALE_TRIES)));
    return above_stdio(fd, (flags & O_CLOEXEC) != 0);
}

/* close() is not retried on EINTR: on Linux the descriptor is gone anyway,
 * and a retry could close a descriptor another thread just opened. */
static int close_fd(int fd) {
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
/* Owner records and proof of death                                        */
/* ---------------------------------------------------------------------- */

/* Reads a small /proc file into buf (NUL-terminated); -1 on failure. */
static ssize_t read_small(const char *path, char *buf, size_t cap) {
    int fd = open_retry(path, O_RDONLY | O_CLOEXEC | O_NOCTTY, 0);
    ssize_t n, total = 0;
    if (fd < 0)
        return -1;
    while ((size_t)total < cap - 1) {
        n = read(fd, buf + total, cap - 1 - (size_t)total);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        total += n;
    }
    close_fd(fd);
    buf[total] = '\0';
    return total;
}

/* The caches of the boot id and of our own owner record. File-scope, so
 * that the fork handlers (fl__os_atfork) can take them: a child forked
 * while another thread held one would otherwise hang on its first soft
 * lock. Lock order: owner_mu, then boot_mu (owner_record reads the boot
 * id), both after lock.c's mutexes and before hub_mu; see internal.h. */
static pthread_mutex_t owner_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t boot_mu = PTHREAD_MUTEX_INITIALIZER;

/* The boot id never changes while we run: read it once. */
static int boot_id_uncached(uint64_t *hi, uint64_t *lo);
static int boot_id(uint64_t *hi, uint64_t *lo) {
    pthread_mutex_t *mu = &boot_mu;
    static int state; /* 0 unread, 1 read, -1 unreadable */
    static uint64_t c_hi, c_lo;
    int r;
    pthread_mutex_lock(mu);
    if (state == 0)
        state = boot_id_uncached(&c_hi, &c_lo) == 0 ? 1 : -1;
    *hi = c_hi;
    *lo = c_lo;
    r = state == 1 ? 0 : -1;
    pthread_mutex_unlock(mu);
    return r;
}

static int boot_id_uncached(uint64_t *hi, uint64_t *lo) {
    char buf[128];
    int digits = 0;
    const char *p;
    *hi = *lo = 0;
    if (read_small("/proc/sys/kernel/random/boot_id", buf, sizeof buf) < 32)
        return -1;
    for (p = buf; *p && *p != '\n'; p++) {
        int v;
        if (*p == '-')
            continue;
        if (*p >= '0' && *p <= '9')
            v = *p - '0';
        else if (*p >= 'a' && *p <= 'f')
            v = *p - 'a' + 10;
        else if (*p >= 'A' && *p <= 'F')
            v = *p - 'A' + 10;
        else
            return -1;
        *hi = (*hi << 4) | (*lo >> 60);
        *lo = (*lo << 4) | (uint64_t)v;
        digits++;
    }
    return digits == 32 ? 0 : -1;
}

/* The start token of a process: (boot_id << 64) | starttime, in decimal.
 * Returns 0, 1 when the process does not exist, -1 when it cannot be told. */
static int start_token(long pid, char *out, size_t size) {
    char path[64], buf[1024], *p;
    uint64_t hi, lo, start = 0;
    int field;
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    if (read_small(path, buf, sizeof buf) <= 0)
        return errno == ENOENT || errno == ESRCH ? 1 : -1;
    /* The command name may hold spaces and parentheses: fields are counted
     * after the last ')', where field 3 (the state) begins. */
    p = strrchr(buf, ')');
    if (!p)
        return -1;
    p++;
    for (field = 3; field <= 22; field++) {
        while (*p == ' ')
            p++;
        if (*p == '\0')
            return -1;
        if (field == 22) {
            char *end;
            start = strtoull(p, &end, 10);
            if (end == p)
                return -1;
            break;
        }
        while (*p && *p != ' ')
            p++;
    }
    if (boot_id(&hi, &lo) != 0)
        return -1;
    return fl__decimal192(hi, lo, start, out, size) == 0 ? 0 : -1;
}

static void host_name(char *buf, size_t size) {
    if (gethostname(buf, size) != 0)
        buf[0] = '\0';
    buf[size - 1] = '\0';
}

/* The pid namespace of the calling process (the inode number of
 * /proc/self/ns/pid), 0 when it cannot be read. A pid means something only
 * within its namespace: a holder started by `unshare --pid` writes pid 1,
 * which on the host is init. Cached per pid, like the start token: a
 * process's namespace never changes, a forked child may be in a new one. */
#define FL__INIT_PIDNS 0xEFFFFFFCULL /* PROC_PID_INIT_INO, fixed since Linux 3.8 */
/* Linux, but /proc/self/ns/pid cannot be read (no /proc in a sandbox or
 * chroot, a tmpfs over it): we may be in any pid namespace. Our records
 * then carry " pidns=1" -- no namespace has inode 1 (the kernel numbers
 * them from 0xF0000000, the initial one aside) -- so that no reader takes
 * our pid for one of its own, and we judge nobody's pid either. */
#define FL__NO_PIDNS 1ULL

typedef struct self_ident {
    long pid;
    uint64_t pidns;   /* 0: unknown */
    int proc_is_ours; /* /proc shows our pid namespace (mounted for it) */
    char token[96];
} self_ident;

static void read_self_ident(self_ident *s, long pid) {
    char link[64], want[32];
    ssize_t n;
    s->pid = pid;
    s->pidns = 0;
    n = readlink("/proc/self/ns/pid", link, sizeof link - 1);
    if (n > 0) {
        unsigned long long v;
        link[n] = '\0';
        if (sscanf(link, "pid:[%llu]", &v) == 1)
            s->pidns = (uint64_t)v;
    }
#ifdef __linux__
    if (s->pidns == 0)
        s->pidns = FL__NO_PIDNS;
#endif
    /* /proc/self names us by our pid in the namespace /proc was mounted
     * for; when that is not ours (unshare --pid without --mount-proc), the
     * /proc/<pid> files describe other processes than our pids name. */
    n = readlink("/proc/self", link, sizeof link - 1);
    snprintf(want, sizeof want, "%ld", pid);
    s->proc_is_ours = n > 0 && (size_t)n == strlen(want) && memcmp(link, want, (size_t)n) == 0;
    if (!s->proc_is_ours || start_token(pid, s->token, sizeof s->token) != 0)
        s->token[0] = '\0';
}

static void self_identity(self_ident *out) {
    /* owner_mu: taken across fork by fl__os_atfork (see the lock order). */
    static self_ident cached;
    long pid = (long)getpid();
    pthread_mutex_lock(&owner_mu);
    if (cached.pid != pid)
        read_self_ident(&cached, pid);
    *out = cached;
    pthread_mutex_unlock(&owner_mu);
}

/* This process's owner record; its length, or -1. The hostname line carries
 * " pidns=<inode>" when we are not in the initial pid namespace (see
 * docs/soft-lock-protocol.md): readers elsewhere then cannot mistake our pid
 * for one of theirs, and the pure-Python filelock, comparing the line with
 * its hostname, treats the marker as another host's (never reclaimed). */
static int owner_record(long owner_pid, const fl__lease_rec *lease, char *buf, size_t size) {
    char host[256], ns[48] = "";
    self_ident me;
    int n;
    host_name(host, sizeof host);
    self_identity(&me);
    if (owner_pid > 0) {
        /* fl_set_owner_pid: a process run on the caller's behalf (a child,
         * so in our pid namespace); its token is read each time, not
         * cached, and only where /proc shows our namespace. */
        me.pid = owner_pid;
        if (!me.proc_is_ours || start_token(owner_pid, me.token, sizeof me.token) != 0)
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
    int fd = open_retry(path, flags, perm), e = 0, written;
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
        close_fd(fd);
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
     * (open_retry): like a change seen between lstat and fstat, EAGAIN. */
    if (fl__sys.lstat(path, &st) != 0)
        return errno == ESTALE ? EAGAIN : errno;
    if (!S_ISREG(st.st_mode))
        return EINVAL;
    fd = open_retry(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY, 0);
    if (fd < 0)
        return errno == ELOOP || errno == ESTALE ? EAGAIN : errno;
    if (fl__sys.fstat(fd, &st2) != 0 || st2.st_dev != st.st_dev || st2.st_ino != st.st_ino) {
        close_fd(fd);
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
    rec->mtime = (double)st2.st_mtim.tv_sec + (double)st2.st_mtim.tv_nsec / 1e9;
    rec->age = (double)(now.tv_sec - st2.st_mtim.tv_sec) +
               (double)(now.tv_nsec - st2.st_mtim.tv_nsec) / 1e9;
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
#ifdef __linux__
    /* A pidfd is readable once the whole thread group has exited, zombie
     * or not (kill() still finds a zombie). */
    int fd = fl__sys.pidfd_open((pid_t)pid, 0);
    if (fd >= 0) {
        struct pollfd p;
        int r;
        p.fd = fd;
        p.events = POLLIN;
        p.revents = 0;
        r = poll(&p, 1, 0);
        close_fd(fd);
        return r == 1;
    }
    if (errno == ESRCH)
        return 1;
#endif
    return fl__sys.kill((pid_t)pid, 0) != 0 && errno == ESRCH;
}

int fl__prim_remove(const char *path) { return fl__sys.unlink(path) == 0 ? 0 : errno; }

int fl__prim_close(int fd) {
    if (fd < 0)
        return 0;
    return close_fd(fd) == 0 ? 0 : errno;
}

static int holder_exited(long pid, const char *token);

int fl__prim_judge(const fl__record *rec, double grace) {
    char host[256], token[96];
    uint64_t ns = 0;
    self_ident me;
    fl_owner o;
    if (fl__parse_record(rec->text, rec->len, &o, &ns) != 0)
        return rec->age >= grace ? FL__GONE : FL__ALIVE;
    host_name(host, sizeof host);
    if (strcmp(o.hostname, host) != 0)
        return FL__UNKNOWN;
    self_identity(&me);
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
    if (o.start_token[0] && me.proc_is_ours) {
        int r = start_token(o.pid, token, sizeof token);
        /* No /proc/<pid>: the process exited since kill() (it is reaped,
         * so kill now says ESRCH) -- or /proc hides other users' processes
         * (hidepid=2), which says nothing about them. Only kill can tell. */
        if (r == 1)
            return fl__sys.kill((pid_t)o.pid, 0) != 0 && errno == ESRCH ? FL__GONE : FL__ALIVE;
        if (r == 0 && strcmp(token, o.start_token) != 0)
            return FL__GONE;
        /* Exited, but not yet reaped: its pidfd told this thread. */
        if (r == 0 && holder_exited(o.pid, o.start_token))
            return FL__GONE;
    }
    return FL__ALIVE;
}

int fl__prim_still_old(const fl__record *rec, fl__fh fresh_fd, double grace) {
    struct stat judged, fresh;
    double then, now;
    if (rec->fd < 0 || fl__sys.fstat(rec->fd, &judged) != 0 || fl__sys.fstat(fresh_fd, &fresh) != 0)
        return 0;
    then = (double)judged.st_mtim.tv_sec + (double)judged.st_mtim.tv_nsec / 1e9;
    now = (double)fresh.st_mtim.tv_sec + (double)fresh.st_mtim.tv_nsec / 1e9;
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
            self_ident me;
            self_identity(&me);
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
        FILE *f = fopen("/proc/locks", "re");
        char line[256];
        if (!f)
            return fl__error(FL_ENOTSUP, errno,
                             "cannot tell who holds '%s': /proc/locks is not readable", l->path);
        while (fgets(line, sizeof line, f)) {
            char type[16], mode[16], rw[16];
            long pid;
            unsigned maj, min;
            unsigned long long ino;
            if (strstr(line, "->"))
                continue; /* a blocked waiter, not a holder */
            if (sscanf(line, "%*d: %15s %15s %15s %ld %x:%x:%llu", type, mode, rw, &pid, &maj, &min,
                       &ino) != 7)
                continue;
            if (strcmp(type, "FLOCK") != 0 || ino != (unsigned long long)st.st_ino ||
                maj != major(st.st_dev) || min != minor(st.st_dev))
                continue;
            fclose(f);
            out->pid = pid;
            snprintf(out->hostname, sizeof out->hostname, "%s", host);
            out->this_process = pid == (long)getpid();
            return 0;
        }
        fclose(f);
    }
    return fl__error(FL_ENOENT, 0, "lock '%s' is not held", l->path);
}

int fl__os_break(fl_lock *l, int kind) {
    if (kind != FL_SOFT)
        return fl__error(FL_ENOTSUP, 0,
                         "cannot break kernel lock '%s': the OS releases it when its holder "
                         "exits",
                         l->path);
    return fl__soft_break(l);
}

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
        fd = open_retry(l->path, base, 0);
        if (fd >= 0 || errno != ENOENT || tries == 3)
            break;
        fd = open_retry(l->path, base | O_CREAT | O_EXCL, perm);
        if (fd < 0 && errno == ENOENT && l->base[0] != '\0') {
            int rc = make_parents(l);
            if (rc < 0)
                return rc;
            fd = open_retry(l->path, base | O_CREAT | O_EXCL, perm);
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
        fd = open_retry(l->path, base, 0);
        if (fd < 0)
            errno = e;
    }
    if (fd < 0 && (errno == EACCES || errno == EROFS) &&
        __atomic_load_n(&l->read_only_open, __ATOMIC_RELAXED)) {
        /* flock(2) needs no write access (fl_set_read_only_open). A missing
         * file keeps the original error. */
        int e = errno;
        fd = open_retry(l->path, (base & ~O_RDWR) | O_RDONLY, 0);
        if (fd < 0)
            errno = e;
    }
    if (fd < 0)
        return open_error(l, errno);
    if (fl__sys.fstat(fd, &st) != 0) {
        int e = errno;
        close_fd(fd);
        return fl__os_error(e, "cannot stat lock file", l->path);
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
        close_fd(h->fd);
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
        if (e == EBADFD || e == ESTALE || e == EIO || e == ENOTCONN || e == ENOLCK) {
            (void)close_fd(h->fd);
            h->fd = -1;
            return fl__error(FL_EIO, e,
                             "the lock on '%s' was lost before this release: the file system "
                             "dropped it (%s), so another process may have held it meanwhile",
                             l->path, strerror(e));
        }
    }
    if (close_fd(h->fd) != 0)
        rc = fl__os_error(errno, "error closing lock file (the lock is released)", l->path);
    h->fd = -1;
    return rc;
}

/* ---------------------------------------------------------------------- */
/* Wake-ups                                                                */
/* ---------------------------------------------------------------------- */

#ifdef __linux__
/* The wait hub: every waiter of the process shares one inotify instance
 * (the default limit is 128 instances per user, shared with the user's
 * editors and file managers), each watched inode has one watch however
 * many threads wait for it, and each waiter has its own eventfd. See
 * fl__watch in internal.h for the protocol. The instance is kept for the
 * life of the process (closing one waits for an RCU grace period, 70 us
 * to 16 ms here). A forked child leaves the inherited instance and
 * eventfds alone (they are the parent's, and the child may have reused
 * their numbers) and makes its own instance on its first wait.
 *
 * hub_mu guards everything below; it is last in the lock order and held
 * only for non-blocking calls (inotify_add_watch resolves a path, like the
 * lock attempt before it). The instance is pollable, so an event loop can
 * later wait on it too (the asynchronous waiters build on this). */
typedef struct fl__waiter {
    int wd;
    int efd;
    uint64_t dev, ino; /* the watched file or directory, seen just before arming */
    int have_id;
    int stale;        /* its watch was removed by the kernel (IN_IGNORED); atomic */
    const char *name; /* soft lock: the marker's name in the watched directory;
                         NULL: every event of the watch concerns the waiter */
    struct fl__waiter *prev, *next;
    /* Soft lock: the contended marker's holder (holder_pidfd), used by the
     * waiting thread only. Armed once per marker identity. */
    int pidfd; /* -1: none */
    int pid_armed;
    uint64_t pid_dev, pid_ino;
    long pid;
    char token[96];
} fl__waiter;

typedef struct fl__hub_watch {
    int wd;
    unsigned refs; /* waiters using it */
} fl__hub_watch;

static pthread_mutex_t hub_mu = PTHREAD_MUTEX_INITIALIZER;
static int hub_fd = -1;
static fl__waiter *hub_waiters;
static fl__hub_watch *hub_watches;
static size_t hub_nwatches, hub_capwatches;

static void wake(const fl__waiter *wt) {
    uint64_t one = 1;
    /* EAGAIN means the counter is already non-zero: woken anyway. */
    (void)!write(wt->efd, &one, sizeof one);
}

/* Reads every pending event of the instance and wakes the waiters they
 * concern. The calling waiter (self) is told by the return value (1: an
 * event concerns it) instead of through its eventfd, which would cost two
 * system calls on its wake-up path. Caller holds hub_mu. */
static int hub_dispatch(const fl__waiter *self) {
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    fl__waiter *wt;
    int mine = 0;
    if (hub_fd < 0)
        return 0;
    for (;;) {
        ssize_t n = read(hub_fd, buf, sizeof buf), off = 0;
        if (n <= 0)
            break;
        while (off < n) {
            const struct inotify_event *ev = (const struct inotify_event *)(buf + off);
            for (wt = hub_waiters; wt; wt = wt->next) {
                if (ev->wd == wt->wd && (ev->mask & IN_IGNORED))
                    __atomic_store_n(&wt->stale, 1, __ATOMIC_RELAXED);
                if ((ev->mask & IN_Q_OVERFLOW) ||
                    (ev->wd == wt->wd &&
                     (!wt->name || (ev->mask & (IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF)) ||
                      (ev->len && strcmp(ev->name, wt->name) == 0)))) {
                    if (wt == self)
                        mine = 1;
                    else
                        wake(wt);
                }
            }
            off += (ssize_t)sizeof *ev + ev->len;
        }
    }
    return mine;
}

/* Adds a reference to the watch wd (new or existing). Caller holds hub_mu.
 * Returns 0, or -1 when out of memory. */
static int hub_ref(int wd) {
    size_t i;
    for (i = 0; i < hub_nwatches; i++)
        if (hub_watches[i].wd == wd) {
            hub_watches[i].refs++;
            return 0;
        }
    if (hub_nwatches == hub_capwatches) {
        size_t cap = hub_capwatches ? hub_capwatches * 2 : 8;
        fl__hub_watch *p = realloc(hub_watches, cap * sizeof *p);
        if (!p)
            return -1;
        hub_watches = p;
        hub_capwatches = cap;
    }
    hub_watches[hub_nwatches].wd = wd;
    hub_watches[hub_nwatches].refs = 1;
    hub_nwatches++;
    return 0;
}

/* Drops a reference; the last one removes the watch from the instance.
 * Caller holds hub_mu. */
static void hub_unref(int wd) {
    size_t i;
    for (i = 0; i < hub_nwatches; i++)
        if (hub_watches[i].wd == wd) {
            if (--hub_watches[i].refs == 0) {
                /* EINVAL if the kernel already dropped it (file deleted). */
                (void)inotify_rm_watch(hub_fd, wd);
                hub_watches[i] = hub_watches[--hub_nwatches];
            }
            return;
        }
}
#endif

/* ---------------------------------------------------------------------- */
/* Faster recovery: a soft waiter wakes when the holder dies (Linux pidfd)  */
/* ---------------------------------------------------------------------- */

/* A holder's death is not a file-system event: without this, a soft waiter
 * learns of it at its next judgement of the marker (every 0.5 s). A pidfd
 * (pidfd_open(2), Linux 5.3) of the holder becomes readable the moment its
 * whole thread group has exited, so the waiter adds it to what it polls.
 * Armed only for a holder judged alive whose record carries a start token
 * that /proc (of our own pid namespace) still confirms once the pidfd is
 * open: the pidfd is then certainly the holder's. Anything else (another
 * host or namespace, no token, no pidfd_open: ENOSYS, EMFILE) leaves the
 * timed re-check as it was. The death a pidfd reports is final even while
 * the holder is a zombie not yet reaped (kill() and /proc still show it):
 * the judge of this thread is told (holder_exited). */
static __thread long t_exited_pid;
static __thread char t_exited_token[96];
static int g_no_pidfd; /* pidfd_open answered ENOSYS: not tried again (atomic) */

#define FL__HOLDER_GONE (-2)

static int holder_exited(long pid, const char *token) {
    return pid == t_exited_pid && token[0] && strcmp(token, t_exited_token) == 0;
}

#ifdef __linux__
static void holder_unwatch(fl__waiter *wt) {
    if (wt->pidfd >= 0)
        close_fd(wt->pidfd);
    wt->pidfd = -1;
}

/* The pidfd to poll for the holder of the marker the attempt contends for
 * (w->hold names it), opened at most once per marker; -1 for none;
 * FL__HOLDER_GONE when the holder is found gone already. */
static int holder_pidfd(fl_lock *l, fl__watch *w) {
    fl__waiter *wt = w->waiter;
    const fl__hold *h = w->hold;
    char token[96];
    self_ident me;
    fl__record rec;
    fl_owner o;
    uint64_t ns;
    int fd, r;
    if (!wt || !h || !h->have_id)
        return -1;
    if (wt->pid_armed && wt->pid_dev == h->dev && wt->pid_ino == h->ino)
        return wt->pidfd;
    holder_unwatch(wt);
    wt->pid_armed = 1;
    wt->pid_dev = h->dev;
    wt->pid_ino = h->ino;
    if (__atomic_load_n(&g_no_pidfd, __ATOMIC_RELAXED))
        return -1;
    self_identity(&me);
    if (!me.proc_is_ours || fl__prim_read(h->path ? h->path : l->path, &rec) != 0)
        return -1;
    (void)fl__prim_close(rec.fd);
    /* Another marker by now: the next attempt judges that one. */
    if (rec.id.dev != h->dev || rec.id.ino != h->ino ||
        fl__parse_record(rec.text, rec.len, &o, &ns) != 0 || !o.start_token[0] ||
        fl__prim_judge(&rec, 0) != FL__ALIVE)
        return -1;
    fd = fl__sys.pidfd_open((pid_t)o.pid, 0);
    if (fd < 0) {
        if (errno == ENOSYS)
            __atomic_store_n(&g_no_pidfd, 1, __ATOMIC_RELAXED);
        return errno == ESRCH ? FL__HOLDER_GONE : -1;
    }
    /* The pid may have passed to another process between the judgement
     * and the open: the pidfd is the holder's only if the pid still has
     * the holder's start token. */
    r = start_token(o.pid, token, sizeof token);
    if (r != 0 || strcmp(token, o.start_token) != 0) {
        close_fd(fd);
        return r == -1 ? -1 : FL__HOLDER_GONE;
    }
    wt->pidfd = above_stdio(fd, 1);
    wt->pid = o.pid;
    snprintf(wt->token, sizeof wt->token, "%s", o.start_token);
    return wt->pidfd;
}

/* The holder is gone (exited = its pidfd said so): judge the marker at the
 * next attempt instead of at its next scheduled judgement. */
static void holder_gone(fl__watch *w, int exited) {
    fl__waiter *wt = w->waiter;
    if (exited) {
        t_exited_pid = wt->pid;
        snprintf(t_exited_token, sizeof t_exited_token, "%s", wt->token);
    }
    holder_unwatch(wt);
    w->hold->recheck_at = 0;
}
#endif

void fl__os_atfork(int phase) {
    switch (phase) {
    case FL__FORK_PREPARE:
        pthread_mutex_lock(&owner_mu);
        pthread_mutex_lock(&boot_mu);
#ifdef __linux__
        pthread_mutex_lock(&hub_mu);
#endif
        break;
    case FL__FORK_PARENT:
#ifdef __linux__
        pthread_mutex_unlock(&hub_mu);
#endif
        pthread_mutex_unlock(&boot_mu);
        pthread_mutex_unlock(&owner_mu);
        break;
    default:
#ifdef __linux__
        /* The instance and the waiters are the parent's: forget them,
         * without closing anything (and without calling free here). */
        hub_fd = -1;
        hub_waiters = NULL;
        hub_nwatches = 0;
        pthread_mutex_unlock(&hub_mu);
#endif
        pthread_mutex_unlock(&boot_mu);
        pthread_mutex_unlock(&owner_mu);
        break;
    }
}

#ifdef __linux__
/* What a waiter watches: the lock file itself (kernel lock: the holder's
 * release ends with close(); unlink, rename and link-count changes also
 * wake us so we reopen the current file), or its directory (soft lock: the
 * marker's deletion; the directory itself renamed away or deleted also
 * wakes us, since the marker is then looked for in another directory). */
static const char *watch_target(const fl_lock *l, int kind, uint32_t *mask) {
    if (kind == FL_KERNEL) {
        *mask = IN_CLOSE_WRITE | IN_CLOSE_NOWRITE | IN_DELETE_SELF | IN_MOVE_SELF | IN_ATTRIB |
                IN_DONT_FOLLOW;
        return l->path;
    }
    *mask = IN_DELETE | IN_MOVED_FROM | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR;
    return l->dir;
}

/* The identity of the watch target now (the kernel lock's final symlink is
 * not followed, like the watch; the directory is). 0, or -1 when missing. */
static int target_id(const fl_lock *l, int kind, uint64_t *dev, uint64_t *ino) {
    struct stat st;
    if ((kind == FL_KERNEL ? fl__sys.lstat(l->path, &st) : stat(l->dir, &st)) != 0)
        return -1;
    *dev = (uint64_t)st.st_dev;
    *ino = (uint64_t)st.st_ino;
    return 0;
}

/* The waiter's watch is on a file or directory that is no longer the one
 * at its path (replaced, renamed away, deleted: a release there would never
 * be seen): move it to the current one. Returns 0 when the watch is good,
 * -1 when there is nothing to watch now (the path is missing). */
static int rearm_if_moved(fl_lock *l, int kind, fl__watch *w) {
    fl__waiter *wt = w->waiter;
    uint64_t dev, ino;
    uint32_t mask;
    const char *target = watch_target(l, kind, &mask);
    int wd, have = target_id(l, kind, &dev, &ino) == 0;
    if (have && wt->have_id && dev == wt->dev && ino == wt->ino &&
        !__atomic_load_n(&wt->stale, __ATOMIC_RELAXED))
        return 0;
    if (!have)
        return -1;
    pthread_mutex_lock(&hub_mu);
    wd = fl__sys.inotify_add_watch(hub_fd, target, mask | IN_MASK_ADD);
    if (wd >= 0 && wd != wt->wd) {
        if (hub_ref(wd) != 0) {
            (void)inotify_rm_watch(hub_fd, wd);
            wd = -1;
        } else {
            hub_unref(wt->wd);
            wt->wd = wd;
            w->wd = wd;
        }
    }
    if (wd >= 0) {
        wt->dev = dev;
        wt->ino = ino;
        wt->have_id = 1;
        __atomic_store_n(&wt->stale, 0, __ATOMIC_RELAXED);
    }
    pthread_mutex_unlock(&hub_mu);
    return wd >= 0 ? 0 : -1;
}
#endif

void fl__os_watch_open(fl_lock *l, int kind, fl__watch *w) {
    w->fd = -1;
    w->wd = -1;
    w->efd = -1;
    w->waiter = NULL;
    w->gen = fl__current_gen();
    w->shared_fs = 0;
#ifdef __linux__
    {
        uint32_t mask;
        const char *target;
        fl__waiter *wt;
        int efd, wd = -1;
        target = watch_target(l, kind, &mask);
        efd = above_stdio(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC), 1);
        if (efd < 0)
            return; /* no wake-up of our own: timed re-checks */
        wt = calloc(1, sizeof *wt);
        if (!wt) {
            close_fd(efd);
            return;
        }
        wt->efd = efd;
        wt->pidfd = -1;
        wt->name = kind == FL_KERNEL ? NULL : l->base;
        /* Seen before the watch is added: if the target is replaced in
         * between, the next wait sees a mismatch and moves the watch (a
         * spare move, never a missed one). */
        wt->have_id = target_id(l, kind, &wt->dev, &wt->ino) == 0;
        pthread_mutex_lock(&hub_mu);
        if (hub_fd < 0)
            hub_fd = above_stdio(fl__sys.inotify_init1(IN_NONBLOCK | IN_CLOEXEC), 1);
        if (hub_fd >= 0) {
            /* IN_MASK_ADD: another waiter's watch on the same inode keeps
             * the events it asked for. */
            wd = fl__sys.inotify_add_watch(hub_fd, target, mask | IN_MASK_ADD);
            if (wd >= 0 && hub_ref(wd) != 0) {
                (void)inotify_rm_watch(hub_fd, wd); /* new (hub_ref fails only then) */
                wd = -1;
            }
        }
        if (wd < 0) {
            /* No instance (EMFILE: the user's instances are exhausted) or
             * no watch (ENOSPC: watches exhausted): timed re-checks. */
            pthread_mutex_unlock(&hub_mu);
            close_fd(efd);
            free(wt);
            return;
        }
        wt->wd = wd;
        wt->prev = NULL;
        wt->next = hub_waiters;
        if (hub_waiters)
            hub_waiters->prev = wt;
        hub_waiters = wt;
        w->fd = hub_fd;
        w->wd = wd;
        w->efd = efd;
        w->waiter = wt;
        pthread_mutex_unlock(&hub_mu);
        if (kind == FL_SOFT) {
            /* A soft attempt needs a descriptor of its own (its create, or
             * reading the marker): if the watch took the last one, give it
             * up and wait by timed re-checks instead of failing with
             * EMFILE. */
            int probe = fcntl(efd, F_DUPFD_CLOEXEC, 0);
            if (probe < 0) {
                fl__os_watch_close(w);
                return;
            }
            close_fd(probe);
        }
        /* Another host's release raises no event here: re-check at the
         * caller's cadence, not at the floor meant for a silent local
         * holder (lock.c). */
        w->shared_fs = fl__fs_is_shared(target);
    }
#else
    (void)l;
    (void)kind;
#endif
}

/* Sleeps the slice ts without a wake-up source. */
static int sleep_slice(fl_lock *l, const struct timespec *ts) {
    if (nanosleep(ts, NULL) != 0 && errno == EINTR)
        return fl__error(FL_EINTR, EINTR, "waiting for lock file '%s' was interrupted by a signal",
                         l->path);
    return 0;
}

int fl__os_watch_wait(fl_lock *l, int kind, fl__watch *w, double seconds) {
    double end;
    (void)kind;
    if (fl__seconds_clamp(seconds, &seconds) != 0)
        seconds = 0;
#ifdef __linux__
    if (w->fd >= 0 && w->gen == fl__current_gen() && rearm_if_moved(l, kind, w) != 0) {
        /* Nothing at the path to watch (renamed away or deleted, not yet
         * re-created; the next attempt re-creates it): re-try soon. */
        struct timespec ts;
        if (seconds > FL__MIN_POLL)
            seconds = FL__MIN_POLL;
        (void)fl__seconds_to_timespec(seconds, &ts);
        return sleep_slice(l, &ts) < 0 ? FL_EINTR : 1;
    }
#endif
    end = fl__now() + seconds;
    for (;;) {
        double left = end - fl__now();
        struct timespec ts;
        if (left <= 0)
            return 0;
        (void)fl__seconds_to_timespec(left, &ts);
        /* A watch armed before a fork (from the cancel callback) is the
         * parent's: its numbers may be the child's files by now. */
        if (w->fd < 0 || w->gen != fl__current_gen())
            return sleep_slice(l, &ts);
#ifdef __linux__
        {
            struct pollfd p[3];
            uint64_t count;
            int rc, n = 2, hp = kind == FL_SOFT ? holder_pidfd(l, w) : -1;
            if (hp == FL__HOLDER_GONE) {
                holder_gone(w, 0);
                return 1;
            }
            p[0].fd = w->fd;
            p[0].events = POLLIN;
            p[0].revents = 0;
            p[1].fd = w->efd;
            p[1].events = POLLIN;
            p[1].revents = 0;
            if (hp >= 0) {
                p[2].fd = hp;
                p[2].events = POLLIN;
                p[2].revents = 0;
                n = 3;
            }
            rc = ppoll(p, (nfds_t)n, &ts, NULL);
            if (rc < 0 && errno == EINTR)
                return fl__error(FL_EINTR, EINTR,
                                 "waiting for lock file '%s' was interrupted by a signal", l->path);
            if (rc < 0)
                return sleep_slice(l, &ts); /* cannot poll: re-check on time */
            if (rc == 0)
                return 0;
            if (n == 3 && p[2].revents) {
                holder_gone(w, (p[2].revents & POLLIN) != 0);
                return 1;
            }
            if (p[0].revents) {
                int mine;
                pthread_mutex_lock(&hub_mu);
                mine = hub_dispatch(w->waiter); /* same generation: checked above */
                pthread_mutex_unlock(&hub_mu);
                if (mine)
                    return 1; /* a count left in the eventfd costs one spare re-try */
            }
            if (p[1].revents && read(w->efd, &count, sizeof count) == (ssize_t)sizeof count)
                return 1;
            /* Events for other waiters only: keep waiting. */
        }
#endif
    }
}

void fl__os_watch_close(fl__watch *w) {
#ifdef __linux__
    fl__waiter *wt = w->waiter;
    if (wt) {
        pthread_mutex_lock(&hub_mu);
        if (w->gen == fl__current_gen()) {
            if (wt->prev)
                wt->prev->next = wt->next;
            else
                hub_waiters = wt->next;
            if (wt->next)
                wt->next->prev = wt->prev;
            hub_unref(wt->wd);
            pthread_mutex_unlock(&hub_mu);
            close_fd(wt->efd);
            holder_unwatch(wt);
        } else {
            /* Opened before a fork (a fork from the cancel callback): the
             * eventfd number may be the child's own file by now. */
            pthread_mutex_unlock(&hub_mu);
        }
        free(wt);
    }
#endif
    w->fd = -1;
    w->wd = -1;
    w->efd = -1;
    w->waiter = NULL;
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
