/*
 * The Linux half of the POSIX backend (platform.h): the inotify wait hub,
 * eventfd and ppoll wake-ups, pidfd wake-ups when a soft lock's holder
 * dies, start tokens from /proc/<pid>/stat and the boot id, the pid
 * namespace, and the holder of a flock from /proc/locks. What the file
 * system promises is fsprobe.c's. Built on Linux unless FL_GENERIC_POSIX
 * asks for generic.c.
 */
#define _GNU_SOURCE
#include "platform.h"

/* Packagers that compile every .c file of core/src (setup.py, the gem's extconf)
 * get exactly one platform half: this file is empty unless FL__LINUX. */
#ifdef FL__LINUX

#include "fsprobe.h"
#include "internal.h"
#include "seconds.h"
#include "soft.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

/* ---------------------------------------------------------------------- */
/* The Linux-only entries of the system-call seam                          */
/* ---------------------------------------------------------------------- */

int fl__plat_inotify_init1(int flags) { return inotify_init1(flags); }

int fl__plat_inotify_add_watch(int fd, const char *path, uint32_t mask) {
    return inotify_add_watch(fd, path, mask);
}

/* pidfd_open(2) (Linux 5.3) through syscall(): glibc has a wrapper only
 * since 2.36. */
int fl__plat_pidfd_open(pid_t pid, unsigned int flags) {
#ifdef SYS_pidfd_open
    return (int)syscall(SYS_pidfd_open, pid, flags);
#else
    (void)pid, (void)flags;
    errno = ENOSYS;
    return -1;
#endif
}

/* A pidfd tells an exited zombie from a running process; kill() does not. */
int fl__plat_exited(long pid) {
    struct pollfd p;
    int r, fd = fl__sys.pidfd_open((pid_t)pid, 0);
    if (fd < 0)
        return errno == ESRCH ? 1 : -1;
    p.fd = fd;
    p.events = POLLIN;
    p.revents = 0;
    r = poll(&p, 1, 0);
    fl__px_close(fd);
    return r < 0 ? -1 : r == 1;
}

/* ---------------------------------------------------------------------- */
/* Leases: the suspend-counting clock, the heartbeat's name                */
/* ---------------------------------------------------------------------- */

double fl__plat_boottime(void) {
    struct timespec ts;
    /* CLOCK_BOOTTIME since Linux 2.6.39; an older kernel answers EINVAL. */
    if (clock_gettime(CLOCK_BOOTTIME, &ts) == 0)
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
    return fl__now();
}

void fl__plat_name_thread(const char *name) { (void)prctl(PR_SET_NAME, name, 0, 0, 0); }

/* ---------------------------------------------------------------------- */
/* Process identity: start tokens, boot id, pid namespace                  */
/* ---------------------------------------------------------------------- */

/* Reads a small /proc file into buf (NUL-terminated); -1 on failure. */
static ssize_t read_small(const char *path, char *buf, size_t cap) {
    int fd = fl__px_open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY, 0);
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
    fl__px_close(fd);
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

/* The pid namespace of the calling process (the inode number of
 * /proc/self/ns/pid), 0 when it cannot be read. A pid means something only
 * within its namespace: a holder started by `unshare --pid` writes pid 1,
 * which on the host is init. Cached per pid, like the start token: a
 * process's namespace never changes, a forked child may be in a new one.
 * can_token: /proc shows our pid namespace (it was mounted for it). */
static void read_self_ident(fl__self *s, long pid) {
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
    if (s->pidns == 0)
        s->pidns = FL__NO_PIDNS;
    /* /proc/self names us by our pid in the namespace /proc was mounted
     * for; when that is not ours (unshare --pid without --mount-proc), the
     * /proc/<pid> files describe other processes than our pids name. */
    n = readlink("/proc/self", link, sizeof link - 1);
    snprintf(want, sizeof want, "%ld", pid);
    s->can_token = n > 0 && (size_t)n == strlen(want) && memcmp(link, want, (size_t)n) == 0;
    if (!s->can_token || start_token(pid, s->token, sizeof s->token) != 0)
        s->token[0] = '\0';
}

void fl__plat_self(fl__self *out) {
    /* owner_mu: taken across fork by fl__os_atfork (see the lock order). */
    static fl__self cached;
    long pid = (long)getpid();
    pthread_mutex_lock(&owner_mu);
    if (cached.pid != pid)
        read_self_ident(&cached, pid);
    *out = cached;
    pthread_mutex_unlock(&owner_mu);
}

int fl__plat_start_token(long pid, char *out, size_t size) { return start_token(pid, out, size); }

/* ---------------------------------------------------------------------- */
/* Who holds a flock                                                       */
/* ---------------------------------------------------------------------- */

/* /proc/locks (proc(5)) lists every lock of the system: a FLOCK line for
 * the file's device and inode names its holder. */
int fl__plat_flock_holder(const char *path, uint64_t dev, uint64_t ino, long *holder) {
    FILE *f = fopen("/proc/locks", "re");
    char line[256];
    if (!f)
        return fl__error(FL_ENOTSUP, errno,
                         "cannot tell who holds '%s': /proc/locks is not readable", path);
    while (fgets(line, sizeof line, f)) {
        char type[16], mode[16], rw[16];
        long pid;
        unsigned maj, min;
        unsigned long long i;
        if (strstr(line, "->"))
            continue; /* a blocked waiter, not a holder */
        if (sscanf(line, "%*d: %15s %15s %15s %ld %x:%x:%llu", type, mode, rw, &pid, &maj, &min,
                   &i) != 7)
            continue;
        if (strcmp(type, "FLOCK") != 0 || i != (unsigned long long)ino ||
            maj != major((dev_t)dev) || min != minor((dev_t)dev))
            continue;
        fclose(f);
        *holder = pid;
        return 0;
    }
    fclose(f);
    return fl__error(FL_ENOENT, 0, "lock '%s' is not held", path);
}

/* ---------------------------------------------------------------------- */
/* Wake-ups                                                                */
/* ---------------------------------------------------------------------- */

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
    int pidfd;        /* -1: none */
    double reap_poll; /* > 0: the holder exited (pidfd); re-judge after this */
    int pid_armed;
    uint64_t pid_dev, pid_ino;
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
/* The last watch whose waiters all left, kept (refs 0) instead of removed:
 * the next wait for the same file (a lock taken again and again) re-uses
 * it, and inotify_rm_watch stays off the wake-up path (it was ~14 us of a
 * ~100 us Python wake-up on a busy 2-core machine, issue 17). At most one
 * is kept (the user's watch limit); while nobody reads the instance, the
 * kernel merges its repeated close events into one queued event. Removed
 * when another watch takes its place, or when the kernel drops it. */
static int hub_cached_wd = -1;
static void hub_drop(int wd, int ignored);

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
    int mine = 0, more = 1;
    if (hub_fd < 0)
        return 0;
    while (more) {
        ssize_t n = read(hub_fd, buf, sizeof buf), off = 0;
        if (n <= 0)
            break;
        /* A read that left room for another full event took everything
         * queued: skip the read that would only say EAGAIN (a system call
         * on every waiter's wake-up path). */
        if ((size_t)n <= sizeof buf - (sizeof(struct inotify_event) + NAME_MAX + 1))
            more = 0;
        while (off < n) {
            const struct inotify_event *ev = (const struct inotify_event *)(buf + off);
            if ((ev->mask & IN_IGNORED) && ev->wd == hub_cached_wd)
                hub_drop(ev->wd, 1); /* the cached watch's file is gone */
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

/* Removes watch wd from the table, and from the instance unless the
 * kernel dropped it already (ignored: IN_IGNORED was read), if nobody uses
 * it. Caller holds hub_mu. */
static void hub_drop(int wd, int ignored) {
    size_t i;
    if (wd == hub_cached_wd)
        hub_cached_wd = -1;
    for (i = 0; i < hub_nwatches; i++)
        if (hub_watches[i].wd == wd) {
            if (hub_watches[i].refs == 0) {
                /* EINVAL if the kernel already dropped it (file deleted). */
                if (!ignored)
                    (void)inotify_rm_watch(hub_fd, wd);
                hub_watches[i] = hub_watches[--hub_nwatches];
            }
            return;
        }
}

/* Drops a reference. The last one keeps the watch as the cached one (see
 * hub_cached_wd), removing the one cached before. Caller holds hub_mu. */
static void hub_unref(int wd) {
    size_t i;
    for (i = 0; i < hub_nwatches; i++)
        if (hub_watches[i].wd == wd) {
            if (--hub_watches[i].refs == 0) {
                int old = hub_cached_wd;
                hub_cached_wd = wd;
                if (old >= 0 && old != wd)
                    hub_drop(old, 0);
            }
            return;
        }
}

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
 * timed re-check as it was. A pidfd says "exited", not "reaped": the
 * marker of a zombie is still valid (fl__prim_judge says why), so after the
 * pidfd fired the waiter re-judges at short, growing intervals
 * (FL__REAP_POLL_MIN doubling up to FL__REAP_POLL_MAX) until the zombie is
 * reaped or the marker is released; its parent reaps it (or releases)
 * moments later. */
static int g_no_pidfd; /* pidfd_open answered ENOSYS: not tried again (atomic) */

#define FL__REAP_POLL_MIN 0.001
#define FL__REAP_POLL_MAX 0.5

static void holder_unwatch(fl__waiter *wt) {
    if (wt->pidfd >= 0)
        fl__px_close(wt->pidfd);
    wt->pidfd = -1;
}

/* The pidfd to poll for the holder of the marker the attempt contends for
 * (w->hold names it), opened at most once per marker; -1 for none;
 * FL__HOLDER_GONE when the holder is found gone already. */
static int holder_pidfd(fl_lock *l, fl__watch *w) {
    fl__waiter *wt = w->waiter;
    const fl__hold *h = w->hold;
    int fd;
    if (!wt || !h || !h->have_id)
        return -1;
    if (wt->pid_armed && wt->pid_dev == h->dev && wt->pid_ino == h->ino)
        return wt->pidfd;
    holder_unwatch(wt);
    wt->reap_poll = 0;
    wt->pid_armed = 1;
    wt->pid_dev = h->dev;
    wt->pid_ino = h->ino;
    fd = fl__plat_holder_pidfd(l, h);
    wt->pidfd = fd >= 0 ? fd : -1;
    return fd;
}

int fl__plat_holder_pidfd(const fl_lock *l, const fl__hold *h) {
    char token[96];
    fl__self me;
    fl__record rec;
    fl_owner o;
    uint64_t ns;
    int fd, r;
    if (__atomic_load_n(&g_no_pidfd, __ATOMIC_RELAXED))
        return -1;
    fl__plat_self(&me);
    if (!me.can_token || fl__prim_read(h->path ? h->path : l->path, &rec) != 0)
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
        fl__px_close(fd);
        return r == -1 ? -1 : FL__HOLDER_GONE;
    }
    return fl__px_above_stdio(fd, 1);
}

/* The holder is gone (exited = its pidfd said so): judge the marker at the
 * next attempt instead of at its next scheduled judgement; after an exit,
 * also at short intervals until it is reaped (holder_reap_slice). */
static void holder_gone(fl__watch *w, int exited) {
    fl__waiter *wt = w->waiter;
    if (exited)
        wt->reap_poll = FL__REAP_POLL_MIN;
    holder_unwatch(wt);
    w->hold->recheck_at = 0;
}

/* While the exited holder of the contended marker may be an unreaped
 * zombie: the next short slice to wait before judging again (doubling up
 * to FL__REAP_POLL_MAX), else 0. */
static double holder_reap_slice(fl__watch *w) {
    fl__waiter *wt = w->waiter;
    const fl__hold *h = w->hold;
    if (!wt || !h || wt->reap_poll <= 0 || !h->have_id || wt->pid_dev != h->dev ||
        wt->pid_ino != h->ino)
        return 0;
    return wt->reap_poll;
}

void fl__os_atfork(int phase) {
    switch (phase) {
    case FL__FORK_PREPARE:
        pthread_mutex_lock(&owner_mu);
        pthread_mutex_lock(&boot_mu);
        pthread_mutex_lock(&hub_mu);
        break;
    case FL__FORK_PARENT:
        pthread_mutex_unlock(&hub_mu);
        pthread_mutex_unlock(&boot_mu);
        pthread_mutex_unlock(&owner_mu);
        break;
    default:
        /* The instance and the waiters are the parent's: forget them,
         * without closing anything (and without calling free here). */
        hub_fd = -1;
        hub_waiters = NULL;
        hub_nwatches = 0;
        hub_cached_wd = -1;
        pthread_mutex_unlock(&hub_mu);
        pthread_mutex_unlock(&boot_mu);
        pthread_mutex_unlock(&owner_mu);
        break;
    }
}

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

void fl__os_watch_open(fl_lock *l, int kind, fl__watch *w) {
    fl__px_watch_none(w);
    {
        uint32_t mask;
        const char *target;
        fl__waiter *wt;
        int efd, wd = -1;
        target = watch_target(l, kind, &mask);
        efd = fl__px_above_stdio(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC), 1);
        if (efd < 0)
            return; /* no wake-up of our own: timed re-checks */
        wt = calloc(1, sizeof *wt);
        if (!wt) {
            fl__px_close(efd);
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
            hub_fd = fl__px_above_stdio(fl__sys.inotify_init1(IN_NONBLOCK | IN_CLOEXEC), 1);
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
            fl__px_close(efd);
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
            fl__px_close(probe);
        }
        /* Another host's release raises no event here: re-check at the
         * caller's cadence, not at the floor meant for a silent local
         * holder (lock.c). */
        w->shared_fs = fl__fs_is_shared(target);
    }
}

/* A wake-up descriptor that poll reports closed (POLLNVAL: never open, or
 * closed during the wait) or hung up / in error with nothing to read stays
 * "ready" for ever: the wait would spin through the cancel callback until
 * its deadline (for ever without one). A permanent error: FL_EINVAL naming
 * the descriptor. 0 when it may still wake the wait. */
static int wake_fd_broken(const fl_lock *l, int fd, short revents) {
    if (revents & POLLNVAL)
        return fl__error(FL_EINVAL, EBADF,
                         "waiting for lock file '%s': the wake-up descriptor %d is not open",
                         l->path, fd);
    if ((revents & (POLLHUP | POLLERR)) && !(revents & POLLIN))
        return fl__error(FL_EINVAL, 0,
                         "waiting for lock file '%s': the wake-up descriptor %d hung up (no writer "
                         "left) or is in error: it can no longer wake the wait",
                         l->path, fd);
    return 0;
}

/* Sleeps for ts, or until the acquire's wake-up descriptor (w->xfd) is
 * readable: 0, FL__WOKEN_BY_FD or FL_EINTR. A descriptor opened before a
 * fork is still the caller's own here (it gave it for this call). */
static int sleep_or_wake_fd(const fl_lock *l, const fl__watch *w, const struct timespec *ts) {
    struct pollfd p;
    int rc;
    if (w->xfd < 0)
        return fl__px_sleep(l, ts);
    p.fd = w->xfd;
    p.events = POLLIN;
    p.revents = 0;
    rc = ppoll(&p, 1, ts, NULL);
    if (rc < 0 && errno == EINTR)
        return fl__error(FL_EINTR, EINTR, "waiting for lock file '%s' was interrupted by a signal",
                         l->path);
    if (rc < 0)
        return fl__px_sleep(l, ts);
    if (rc > 0 && (rc = wake_fd_broken(l, p.fd, p.revents)) < 0)
        return rc;
    return p.revents ? FL__WOKEN_BY_FD : 0;
}

int fl__os_watch_wait(fl_lock *l, int kind, fl__watch *w, double seconds) {
    double end;
    int rc;
    (void)kind;
    if (fl__seconds_clamp(seconds, &seconds) != 0)
        seconds = 0;
    if (w->fd >= 0 && w->gen == fl__current_gen() && rearm_if_moved(l, kind, w) != 0) {
        /* Nothing at the path to watch (renamed away or deleted, not yet
         * re-created; the next attempt re-creates it): re-try soon. */
        struct timespec ts;
        if (seconds > FL__MIN_POLL)
            seconds = FL__MIN_POLL;
        (void)fl__seconds_to_timespec(seconds, &ts);
        rc = sleep_or_wake_fd(l, w, &ts);
        return rc < 0 ? rc : rc == FL__WOKEN_BY_FD ? rc : 1;
    }
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
            return sleep_or_wake_fd(l, w, &ts);
        {
            struct pollfd p[4];
            uint64_t count;
            int n = 2, xi = -1, hp = kind == FL_SOFT ? holder_pidfd(l, w) : -1;
            double reap = kind == FL_SOFT ? holder_reap_slice(w) : 0;
            if (hp == FL__HOLDER_GONE) {
                holder_gone(w, 0);
                return 1;
            }
            if (reap > 0 && reap < left)
                (void)fl__seconds_to_timespec(reap, &ts);
            else
                reap = 0;
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
            if (w->xfd >= 0) {
                xi = n++;
                p[xi].fd = w->xfd;
                p[xi].events = POLLIN;
                p[xi].revents = 0;
            }
            rc = ppoll(p, (nfds_t)n, &ts, NULL);
            if (rc < 0 && errno == EINTR)
                return fl__error(FL_EINTR, EINTR,
                                 "waiting for lock file '%s' was interrupted by a signal", l->path);
            if (rc < 0)
                return fl__px_sleep(l, &ts); /* cannot poll: re-check on time */
            if (rc == 0 && reap > 0) {
                /* Judge the exited holder's marker again: reaped yet? */
                ((fl__waiter *)w->waiter)->reap_poll =
                    reap * 2 < FL__REAP_POLL_MAX ? reap * 2 : FL__REAP_POLL_MAX;
                w->hold->recheck_at = 0;
                return 1;
            }
            if (rc == 0)
                return 0;
            if (xi >= 0 && (rc = wake_fd_broken(l, p[xi].fd, p[xi].revents)) < 0)
                return rc;
            if (hp >= 0 && p[2].revents) {
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
            /* Only after the lock's own wake-ups: a release that came with
             * the signal is taken first (the callback runs on the way out,
             * or at the next wait). */
            if (xi >= 0 && p[xi].revents)
                return FL__WOKEN_BY_FD;
            /* Events for other waiters only: keep waiting. */
        }
    }
}

void fl__os_watch_close(fl__watch *w) {
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
            fl__px_close(wt->efd);
            holder_unwatch(wt);
        } else {
            /* Opened before a fork (a fork from the cancel callback): the
             * eventfd number may be the child's own file by now. */
            pthread_mutex_unlock(&hub_mu);
        }
        free(wt);
    }
    fl__px_watch_none(w);
}

#endif /* FL__LINUX */
