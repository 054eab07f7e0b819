/*
 * The event-loop wait hub (fl_hub_* in filelock.h): many waits in one
 * thread, woken by the kernel, without a thread or a descriptor per waiter.
 *
 * A hub keeps one entry per distinct lock file (its path as the handle
 * spells it, and the kind), each with a FIFO of waiters, one open probe
 * (the open lock file the attempts re-use: re-opening and closing it on
 * every attempt would raise the very close event the watch waits for), at
 * most one inotify watch, and a re-check timer. On Linux every watch lives
 * in the hub's own inotify instance, whose descriptor the loop polls.
 * Events are coalesced: a dispatch marks the entries they concern and
 * tries each of those once per dispatch, for its first waiter (then the
 * next, while they win: shared holders, recursion).
 *
 * The timer exists because Linux has no "lock released" event: a holder
 * that unlocks without closing, or a parent whose forked child still has
 * the descriptor, raises nothing. It starts at the entry's shortest poll
 * interval (with the floors of internal.h) and doubles while re-checks find
 * nothing, up to FL__HUB_MAX_RECHECK; an event resets it. With no watch
 * (no inotify, limits reached, a file system other hosts share, whose
 * releases no local watch sees) the timer keeps the caller's cadence.
 *
 * Windows has no implementation yet (fl_hub_new fails with FL_ENOTSUP).
 */
#ifndef _WIN32
#define _GNU_SOURCE
#endif
#include "internal.h"
#ifndef _WIN32
#include "platform.h"
#endif

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifdef _WIN32

int fl_hub_new(fl_hub **out) {
    if (out)
        *out = NULL;
    return fl__error(FL_ENOTSUP, 0, "fl_hub_new: the wait hub is not available on Windows yet");
}
void fl_hub_free(fl_hub *hub) { (void)hub; }
int fl_hub_fd(const fl_hub *hub) {
    (void)hub;
    return -1;
}
double fl_hub_timeout(fl_hub *hub) {
    (void)hub;
    return -1;
}
int fl_hub_acquire(fl_hub *hub, fl_lock *lock, uint64_t owner, const fl_acquire_args *args,
                   fl_hub_done_fn done, void *data, fl_hub_waiter **waiter) {
    (void)hub, (void)lock, (void)owner, (void)args, (void)done, (void)data;
    if (waiter)
        *waiter = NULL;
    return fl__error(FL_ENOTSUP, 0, "fl_hub_acquire: the wait hub is not available on Windows yet");
}
int fl_hub_dispatch(fl_hub *hub) {
    (void)hub;
    return fl__error(FL_ENOTSUP, 0, "fl_hub_dispatch: not available on Windows yet");
}
int fl_hub_cancel(fl_hub_waiter *waiter) {
    (void)waiter;
    return fl__error(FL_ENOTSUP, 0, "fl_hub_cancel: not available on Windows yet");
}
int fl_hub_release(fl_hub *hub, fl_lock *lock, uint64_t owner, int force) {
    (void)hub;
    return fl_release_as(lock, owner, force);
}

#else

#include <unistd.h>
#ifdef FL__LINUX
#include "fsprobe.h"
#include <sys/inotify.h>
#endif

/* The longest a watched entry goes between re-checks once nothing has
 * happened for a while: the worst-case delay for a release that closes
 * nothing (the common release, close(), is an event). */
#define FL__HUB_MAX_RECHECK 1.0

/* How soon an entry is tried again after an event whose attempt found the
 * lock still held. The kernel queues a close's IN_CLOSE_* event before it
 * removes the closing file's locks (__fput: fsnotify_close(), then
 * locks_remove_file()), so a waiter woken at once can try in between and
 * lose; nothing else would then wake it before the re-check interval (0.1 s
 * and more). Seen with a loaded machine preempting the closer there. */
#define FL__HUB_EVENT_RETRY 0.001

typedef struct hub_file hub_file;

struct fl_hub_waiter {
    hub_file *file;
    fl_lock *lock;
    uint64_t owner;
    int shared;
    double deadline; /* fl__now() clock; +inf: forever */
    double poll;
    unsigned long seq; /* the dispatch round it joined in: not tried in that round */
    /* Read/write locks (the lock has a writers' gate): 0 while waiting for
     * the gate (in the gate's entry), 1 while holding the gate and waiting
     * for the lock itself (in the lock's entry), as lock.c's gated_acquire
     * does in one thread. Always 0 for other locks. */
    int phase;
    fl_hub_done_fn done;
    void *data;
    fl_hub_waiter *prev, *next;
};

struct hub_file {
    fl_hub *hub;
    char *path; /* the lock path as its handles spell it */
    int kind;
    const char *name; /* soft lock: the marker's name in the watched directory */
    fl__hold probe;   /* the attempts' open file (kernel lock), kept while busy */
    int wd;           /* -1: no watch (timer only) */
    uint64_t wdev, wino;
    int have_wid;
    int shared_fs; /* other hosts may share the file system: their releases raise nothing */
    int dirty;     /* an event or a local release: try at the next dispatch */
    double next_check;
    double interval; /* current re-check interval (backs off) */
    /* Kept as waiters come and go, so that nothing scans the FIFO per
     * dispatch (a thousand waiters would make every handoff cost a
     * thousand steps): the shortest poll interval of the waiters (only
     * lowered until the FIFO empties: a re-check too many, never one too
     * few), and the earliest deadline (recomputed once the waiter that had
     * it leaves). */
    double min_poll;
    double earliest;
    int earliest_stale;
    fl_hub_waiter *head, *tail;
    hub_file *next;
};

struct fl_hub {
    int fd;       /* inotify, or -1 */
    unsigned gen; /* fork generation it was made in */
    hub_file *files;
    int depth;         /* dispatches (and callbacks) under way: entries are not freed */
    unsigned long seq; /* dispatch round */
};

static int forked_error(const char *fn) {
    return fl__error(FL_ECANCELED, ECANCELED,
                     "%s: this wait hub belongs to the parent process (the process forked); "
                     "a child makes its own hub",
                     fn);
}

static int is_forked(const fl_hub *hub) { return hub->gen != fl__current_gen(); }

int fl_hub_new(fl_hub **out) {
    fl_hub *hub;
    if (!out)
        return fl__error(FL_EINVAL, 0, "fl_hub_new: NULL output pointer");
    *out = NULL;
    hub = calloc(1, sizeof *hub);
    if (!hub)
        return fl__error(FL_ENOMEM, ENOMEM, "out of memory creating a wait hub");
    hub->gen = fl__current_gen();
    hub->seq = 1; /* 0 marks waiters that joined outside a dispatch */
    hub->fd = -1;
#ifdef FL__LINUX
    /* EMFILE (the user's 128 instances are used up) and the like: the hub
     * works on its timers alone. */
    hub->fd = fl__px_above_stdio(fl__sys.inotify_init1(IN_NONBLOCK | IN_CLOEXEC), 1);
#endif
    *out = hub;
    return 0;
}

int fl_hub_fd(const fl_hub *hub) { return hub ? hub->fd : -1; }

/* ---------------------------------------------------------------------- */
/* Entries and watches                                                     */
/* ---------------------------------------------------------------------- */

static hub_file *find_file(fl_hub *hub, const fl_lock *l, int kind) {
    hub_file *f;
    const char *path = fl_lock_path(l);
    for (f = hub->files; f; f = f->next)
        if (f->kind == kind && strcmp(f->path, path) == 0)
            return f;
    return NULL;
}

static void unwatch(hub_file *f) {
#ifdef FL__LINUX
    hub_file *o;
    if (f->wd >= 0) {
        /* One watch per inode: another entry (the same file by another
         * spelling) may share it. */
        for (o = f->hub->files; o; o = o->next)
            if (o != f && o->wd == f->wd)
                break;
        if (!o)
            (void)inotify_rm_watch(f->hub->fd, f->wd);
    }
#endif
    f->wd = -1;
    f->have_wid = 0;
}

/* Arms (or moves) the entry's watch on what is at its path now. Falls back
 * to the timer (wd -1) when there is no instance or the watch cannot be had
 * (ENOSPC: the user's watches are used up). */
static void watch(hub_file *f, const fl_lock *l) {
#ifdef FL__LINUX
    struct stat st;
    uint32_t mask;
    const char *target;
    int wd;
    if (f->hub->fd < 0)
        return;
    if (f->kind == FL_KERNEL) {
        mask = IN_CLOSE_WRITE | IN_CLOSE_NOWRITE | IN_DELETE_SELF | IN_MOVE_SELF | IN_ATTRIB |
               IN_DONT_FOLLOW;
        target = f->path;
        if (fl__sys.lstat(target, &st) != 0)
            return;
    } else {
        mask = IN_DELETE | IN_MOVED_FROM | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR;
        target = l->dir;
        if (stat(target, &st) != 0)
            return;
    }
    if (f->wd >= 0 && f->have_wid && f->wdev == (uint64_t)st.st_dev &&
        f->wino == (uint64_t)st.st_ino)
        return;
    /* IN_MASK_ADD: another entry's watch on the same inode keeps its events. */
    wd = fl__sys.inotify_add_watch(f->hub->fd, target, mask | IN_MASK_ADD);
    if (wd != f->wd)
        unwatch(f);
    if (wd < 0)
        return;
    f->wd = wd;
    f->wdev = (uint64_t)st.st_dev;
    f->wino = (uint64_t)st.st_ino;
    f->have_wid = 1;
    f->shared_fs = fl__fs_is_shared(target);
#else
    (void)f, (void)l;
#endif
}

static hub_file *new_file(fl_hub *hub, const fl_lock *l, int kind) {
    hub_file *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    f->path = strdup(fl_lock_path(l));
    if (!f->path) {
        free(f);
        return NULL;
    }
    f->hub = hub;
    f->kind = kind;
    f->name = kind == FL_KERNEL ? NULL : l->base;
    f->probe = (fl__hold)FL__HOLD_INIT;
    f->wd = -1;
    f->min_poll = INFINITY;
    f->earliest = INFINITY;
    f->next = hub->files;
    hub->files = f;
    return f;
}

static void unlink_waiter(fl_hub_waiter *w) {
    hub_file *f = w->file;
    /* Only a waiter that had the earliest deadline makes it stale. Not one
     * waiting forever when all do (+inf <= +inf): that rescanned the whole
     * FIFO at every handoff (10,000 waiting tasks: 72k handoffs/s at 1,000
     * fell to 30k/s). */
    if (w->deadline <= f->earliest && !isinf(w->deadline))
        f->earliest_stale = 1;
    if (w->prev)
        w->prev->next = w->next;
    else
        f->head = w->next;
    if (w->next)
        w->next->prev = w->prev;
    else
        f->tail = w->prev;
    w->prev = w->next = NULL;
    if (!f->head) {
        f->min_poll = INFINITY;
        f->earliest = INFINITY;
        f->earliest_stale = 0;
    }
}

static double earliest(hub_file *f) {
    if (f->earliest_stale) {
        fl_hub_waiter *w;
        f->earliest = INFINITY;
        for (w = f->head; w; w = w->next)
            if (w->deadline < f->earliest)
                f->earliest = w->deadline;
        f->earliest_stale = 0;
    }
    return f->earliest;
}

static void free_file(hub_file *f) {
    hub_file **pp;
    for (pp = &f->hub->files; *pp; pp = &(*pp)->next)
        if (*pp == f) {
            *pp = f->next;
            break;
        }
    while (f->head) {
        fl_hub_waiter *w = f->head;
        unlink_waiter(w);
        free(w);
    }
    if (!is_forked(f->hub)) {
        unwatch(f);
        fl__os_abandon(&f->probe);
    } else {
        /* The parent's descriptors: forget them, never close them. */
        free(f->probe.path);
    }
    free(f->path);
    free(f);
}

/* Frees the entries nobody waits for, unless a dispatch is walking them. */
static void reap(fl_hub *hub) {
    hub_file *f, *next;
    if (hub->depth > 0)
        return;
    for (f = hub->files; f; f = next) {
        next = f->next;
        if (!f->head)
            free_file(f);
    }
}

/* The re-check interval an entry starts from: its waiters' shortest poll
 * interval, with the floors that keep poll_interval 0 from spinning. */
static double base_interval(const hub_file *f) {
    double poll = f->min_poll, floor;
    if (f->wd >= 0 && !f->shared_fs)
        floor = f->kind == FL_SOFT ? FL__WATCHED_MIN_POLL_SOFT : FL__WATCHED_MIN_POLL;
    else
        floor = FL__MIN_POLL;
    return poll < floor ? floor : poll;
}

static void schedule(hub_file *f, double now, int backoff) {
    double base = base_interval(f);
    if (!backoff || f->interval < base)
        f->interval = base;
    else if (f->wd >= 0 && !f->shared_fs) {
        double cap = base > FL__HUB_MAX_RECHECK ? base : FL__HUB_MAX_RECHECK;
        f->interval = f->interval * 2 > cap ? cap : f->interval * 2;
    }
    f->next_check = now + f->interval;
}

/* ---------------------------------------------------------------------- */
/* Attempts                                                                */
/* ---------------------------------------------------------------------- */

static int timeout_error(const fl_lock *l) {
    return fl__error(FL_ETIMEOUT, 0, "The file lock '%s' could not be acquired.", fl_lock_path(l));
}

/* One attempt for w (or the caller's would-be waiter): 0, FL__BUSY or a
 * negative code. A busy attempt whose lock file is no longer the watched
 * one moves the watch. */
static int attempt(hub_file *f, fl_lock *l, uint64_t owner, int shared, int forever, int quiet,
                   int flags) {
    int rc = fl__try_as(l, owner, shared,
                        flags | (forever ? FL__PROBE_DEADLOCK : 0) | (quiet ? FL__PROBE_QUIET : 0),
                        &f->probe);
    if (rc == FL__BUSY && f->kind == FL_KERNEL && f->probe.have_id && f->have_wid &&
        (f->probe.dev != f->wdev || f->probe.ino != f->wino))
        watch(f, l);
    return rc;
}

/* A read/write waiter that passed the gate lets it go (won, failed or
 * cancelled alike), keeping the thread's error for its callback. */
static void drop_gate(fl_hub_waiter *w) {
    if (w->phase == 1) {
        fl__error_state saved;
        fl__error_save(&saved);
        (void)fl_release_as(w->lock->gate, w->owner, 1);
        fl__error_restore(&saved);
        w->phase = 0;
    }
}

static void complete(fl_hub_waiter *w, int rc) {
    fl_hub *hub = w->file->hub;
    drop_gate(w);
    unlink_waiter(w);
    hub->depth++;
    w->done(w->data, w->lock, w->owner, rc);
    hub->depth--;
    free(w);
}

/* ---------------------------------------------------------------------- */
/* The public calls                                                        */
/* ---------------------------------------------------------------------- */

static hub_file *entry_for(fl_hub *hub, fl_lock *l, int kind) {
    hub_file *f = find_file(hub, l, kind);
    return f ? f : new_file(hub, l, kind);
}

static void append_waiter(hub_file *f, fl_hub_waiter *w) {
    double now;
    w->file = f;
    w->next = NULL;
    w->prev = f->tail;
    if (f->tail)
        f->tail->next = w;
    else
        f->head = w;
    f->tail = w;
    if (w->poll < f->min_poll)
        f->min_poll = w->poll;
    if (w->deadline < f->earliest)
        f->earliest = w->deadline;
    if (f->wd < 0)
        watch(f, w->lock);
    now = fl__now();
    if (!f->head->next || now + base_interval(f) < f->next_check)
        schedule(f, now, 0);
}

/* The first attempts of a new acquire on entry f for lock t (the lock, or
 * for a read/write lock in phase 0 its gate): at once unless earlier
 * waiters of the entry come first, then with the watch armed. 0, FL__BUSY
 * or a negative code. */
static int first_attempts(hub_file *f, fl_lock *t, uint64_t owner, int shared, double deadline,
                          int flags) {
    int forever = isinf(deadline) && deadline > 0, rc;
    if (f->head && fl_lock_counter_as(t, owner) == 0)
        return FL__BUSY; /* first come, first served */
    rc = attempt(f, t, owner, shared, forever, 0, flags);
    if (rc == FL__BUSY && deadline > fl__now()) {
        /* Arm the watch, then try again: a release between the failed
         * attempt and the watch would otherwise be missed. */
        if (f->wd < 0)
            watch(f, t);
        rc = attempt(f, t, owner, shared, forever, 1, flags);
    }
    return rc;
}

int fl_hub_acquire(fl_hub *hub, fl_lock *l, uint64_t owner, const fl_acquire_args *args,
                   fl_hub_done_fn done, void *data, fl_hub_waiter **waiter) {
    fl_acquire_args a;
    fl_hub_waiter *w;
    hub_file *f = NULL;
    int rc, kind, phase = 0;

    if (waiter)
        *waiter = NULL;
    if (!hub || !l || !done || !waiter)
        return fl__error(FL_EINVAL, 0, "fl_hub_acquire: NULL hub, lock, callback or waiter");
    if (is_forked(hub))
        return forked_error("fl_hub_acquire");
    if ((rc = fl_acquire_args_resolve(l, args, &a)) != 0)
        return rc;
    if (a.shared && __atomic_load_n(&l->kind, __ATOMIC_RELAXED) == FL_SOFT)
        return fl__error(FL_ENOTSUP, 0,
                         "cannot take a shared lock on '%s': the soft lock has no shared mode",
                         l->path);
    kind = __atomic_load_n(&l->kind, __ATOMIC_RELAXED);
    if (l->gate && fl_lock_counter_as(l, owner) == 0) {
        /* A read/write lock not held by this owner: the writers' gate
         * first (exclusive for a writer, shared for a reader). */
        f = entry_for(hub, l->gate, FL_KERNEL);
        if (!f)
            return fl__error(FL_ENOMEM, ENOMEM, "out of memory waiting for lock '%s'", l->path);
        rc = first_attempts(f, l->gate, owner, a.shared, a.deadline, 0);
        if (rc < 0) {
            reap(hub);
            return rc;
        }
        if (rc == 0)
            phase = 1; /* passed the gate; the lock itself next */
    }
    if (!l->gate || phase == 1 || fl_lock_counter_as(l, owner) > 0) {
        f = entry_for(hub, l, kind);
        if (!f) {
            rc = fl__error(FL_ENOMEM, ENOMEM, "out of memory waiting for lock '%s'", l->path);
            goto fail;
        }
        rc = first_attempts(f, l, owner, a.shared, a.deadline, phase ? FL__PROBE_NOGATE : 0);
        if (rc != FL__BUSY)
            goto fail; /* won (rc 0) or failed: either way the gate goes */
    }
    if (a.deadline <= fl__now()) {
        rc = timeout_error(l);
        goto fail;
    }
    w = calloc(1, sizeof *w);
    if (!w) {
        rc = fl__error(FL_ENOMEM, ENOMEM, "out of memory waiting for lock '%s'", l->path);
        goto fail;
    }
    w->lock = l;
    w->owner = owner;
    w->shared = a.shared;
    w->deadline = a.deadline;
    w->poll = a.poll_interval;
    w->seq = hub->depth > 0 ? hub->seq : 0;
    w->done = done;
    w->data = data;
    w->phase = phase;
    append_waiter(f, w);
    *waiter = w;
    return 0;
fail:
    if (phase == 1) {
        fl__error_state saved;
        fl__error_save(&saved);
        (void)fl_release_as(l->gate, owner, 1);
        fl__error_restore(&saved);
    }
    reap(hub);
    return rc;
}

/* Reads the pending events and marks the entries they concern. */
static void read_events(fl_hub *hub) {
#ifdef FL__LINUX
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    hub_file *f;
    int more = 1;
    if (hub->fd < 0)
        return;
    while (more) {
        ssize_t n = read(hub->fd, buf, sizeof buf), off = 0;
        if (n <= 0)
            break;
        /* A read that left room for another full event took everything
         * queued: skip the read that would only say EAGAIN. */
        if ((size_t)n <= sizeof buf - (sizeof(struct inotify_event) + NAME_MAX + 1))
            more = 0;
        while (off < n) {
            const struct inotify_event *ev = (const struct inotify_event *)(buf + off);
            for (f = hub->files; f; f = f->next) {
                if (ev->mask & IN_Q_OVERFLOW) {
                    f->dirty = 1;
                    continue;
                }
                if (ev->wd != f->wd)
                    continue;
                if (ev->mask & IN_IGNORED) {
                    /* The kernel dropped the watch (the file or directory
                     * is gone): re-arm on what is at the path now. */
                    f->wd = -1;
                    f->have_wid = 0;
                    f->dirty = 1;
                } else if (!f->name || (ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF)) ||
                           (ev->len && strcmp(ev->name, f->name) == 0)) {
                    f->dirty = 1;
                }
            }
            off += (ssize_t)sizeof *ev + ev->len;
        }
    }
#else
    (void)hub;
#endif
}

static int dispatch_file(hub_file *f, double now) {
    fl_hub_waiter *w, *next;
    int completed = 0, woke = f->dirty, busy = 0;
    int due = f->dirty || now >= f->next_check || earliest(f) <= now;
    if (!due)
        return 0;
    f->dirty = 0;
    while ((w = f->head) != NULL && w->seq != f->hub->seq) {
        int forever = isinf(w->deadline) && w->deadline > 0;
        int gate = w->lock->gate && w->phase == 0;
        int rc = attempt(f, gate ? w->lock->gate : w->lock, w->owner, w->shared, forever, 1,
                         w->phase == 1 ? FL__PROBE_NOGATE : 0);
        if (rc == FL__BUSY) {
            busy = 1;
            break;
        }
        if (rc == 0 && gate) {
            /* Through the gate: wait for the lock itself, holding the gate
             * (a waiting writer holds new readers back). */
            hub_file *m =
                entry_for(f->hub, w->lock, __atomic_load_n(&w->lock->kind, __ATOMIC_RELAXED));
            w->phase = 1;
            if (!m) {
                completed++;
                complete(w, fl__error(FL_ENOMEM, ENOMEM, "out of memory waiting for lock '%s'",
                                      w->lock->path));
                continue;
            }
            unlink_waiter(w);
            w->seq = 0;
            append_waiter(m, w);
            m->dirty = 1;
            continue;
        }
        completed++;
        complete(w, rc);
    }
    /* Waits whose time is up (tried once more just above if first). */
    now = fl__now();
    for (w = earliest(f) <= now ? f->head : NULL; w; w = next) {
        next = w->next;
        if (w->deadline <= now && w->seq != f->hub->seq) {
            completed++;
            (void)timeout_error(w->lock);
            complete(w, FL_ETIMEOUT);
            next = f->head; /* the callback may have changed the list */
        }
    }
    if (f->wd < 0 && f->head)
        watch(f, f->head->lock);
    if (f->head) {
        schedule(f, now, busy && !woke);
        if (busy && woke && now + FL__HUB_EVENT_RETRY < f->next_check)
            f->next_check = now + FL__HUB_EVENT_RETRY;
    }
    return completed;
}

int fl_hub_dispatch(fl_hub *hub) {
    hub_file *f;
    int completed = 0;
    double now;
    if (!hub)
        return fl__error(FL_EINVAL, 0, "fl_hub_dispatch: NULL hub");
    if (is_forked(hub))
        return forked_error("fl_hub_dispatch");
    hub->depth++;
    hub->seq++;
    read_events(hub);
    now = fl__now();
    for (f = hub->files; f; f = f->next)
        completed += dispatch_file(f, now);
    hub->depth--;
    reap(hub);
    return completed;
}

double fl_hub_timeout(fl_hub *hub) {
    hub_file *f;
    double next = INFINITY, now;
    if (!hub || is_forked(hub))
        return -1;
    for (f = hub->files; f; f = f->next) {
        if (!f->head)
            continue;
        if (f->dirty)
            return 0;
        /* Joined during a dispatch, first in line: not tried yet. */
        if (f->head->seq == hub->seq && hub->depth == 0)
            return 0;
        if (f->next_check < next)
            next = f->next_check;
        if (earliest(f) < next)
            next = earliest(f);
    }
    if (isinf(next))
        return -1;
    now = fl__now();
    return next > now ? next - now : 0;
}

int fl_hub_cancel(fl_hub_waiter *w) {
    hub_file *f;
    if (!w)
        return fl__error(FL_EINVAL, 0, "fl_hub_cancel: NULL waiter");
    f = w->file;
    /* The next in line may be able to win now (a shared holder behind a
     * cancelled exclusive waiter, or one held back only by order). */
    if (f->head == w && w->next)
        f->dirty = 1;
    drop_gate(w);
    unlink_waiter(w);
    free(w);
    if (!f->head)
        reap(f->hub);
    return 0;
}

int fl_hub_release(fl_hub *hub, fl_lock *l, uint64_t owner, int force) {
    hub_file *f;
    int rc = fl_release_as(l, owner, force);
    if (hub && l && !is_forked(hub)) {
        f = find_file(hub, l, __atomic_load_n(&l->kind, __ATOMIC_RELAXED));
        if (f && f->head)
            f->dirty = 1;
    }
    return rc;
}

void fl_hub_free(fl_hub *hub) {
    hub_file *f;
    if (!hub)
        return;
    if (is_forked(hub)) {
        /* Forget the parent's waiters and descriptors, call nothing. */
        while (hub->files)
            free_file(hub->files);
        free(hub);
        return;
    }
    hub->depth++;
    for (f = hub->files; f; f = f->next)
        while (f->head) {
            (void)fl__error(FL_ECANCELED, ECANCELED,
                            "waiting for lock file '%s' was cancelled: its wait hub was freed",
                            f->head->lock->path);
            complete(f->head, FL_ECANCELED);
        }
    hub->depth--;
    while (hub->files)
        free_file(hub->files);
    if (hub->fd >= 0)
        fl__px_close(hub->fd);
    free(hub);
}

#endif
