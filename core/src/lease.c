/*
 * Leases: the heartbeat that keeps a leased soft marker fresh, and the
 * record of how a lease was lost. A lease is a soft lock whose marker any
 * contender may take over once it is older than the lease duration
 * (soft.c); the holder keeps it young by touching it every
 * heartbeat_interval. The protocol and what it proves:
 * docs/soft-lock-protocol.md, "Leases".
 *
 * One heartbeat thread per process, not one per lock: a program with many
 * leases must not pay a thread for each, and the thread exists only while
 * a lease is held (it ends when the last one is released, and a forked
 * child has none until it takes a lease of its own). The thread blocks
 * every signal, so that a signal meant for the program's threads (a
 * waiter's EINTR, a language's handler) is never delivered to it.
 *
 * A refresh touches the marker only while the name still holds our file
 * (dev, ino), checked and touched under the claim of that identity (the
 * one a taker holds while it replaces the marker): a marker replaced by a
 * contender, or removed, is never recreated or touched back to life. The hold is then lost for
 * good: the compromise callback is told once, and fl_release() returns FL_ELOST.
 */
#include "internal.h"
#include "soft.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#ifndef _WIN32
#include "platform.h"

#include <signal.h>
#endif

struct fl__lease {
    fl_lock *lock;
    char *path; /* the marker's absolute path (the hold's) */
    fl__fid id; /* our marker's identity; the hold keeps it open */
    fl__fh fd;  /* the hold's descriptor: valid while the entry is listed */
    double duration, interval;
    double due;               /* next refresh, fl__boottime() */
    double last_ok;           /* last successful refresh (or the acquire), fl__boottime() */
    int busy;                 /* the heartbeat is refreshing it (or calling its callback) */
    int calling;              /* its callback runs on a thread of its own (call_out) */
    fl_compromise_fn call_fn; /* what call_out calls, taken under g_lease_mu */
    void *call_data;
    int stopping; /* a releaser waits for its refresh: the heartbeat takes it no more */
    int dead;     /* released while busy or calling: whoever finishes last frees it */
    int lost;     /* fl_lease_loss, 0 while held */
    int lost_errno;
    struct fl__lease *next;
};

/* The shortest time between two refreshes of one lease (seconds), as the
 * heartbeat's shortest sleep below. */
#define FL__LEASE_MIN_STEP 0.001

static pthread_mutex_t g_lease_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_wake; /* the heartbeat: a new lease, or the list changed */
static pthread_cond_t g_idle; /* a releaser: a refresh or callback finished */
static pthread_once_t g_cond_once = PTHREAD_ONCE_INIT;
static struct fl__lease *g_leases;
static int g_running; /* a heartbeat thread exists (in this process) */
static __thread int t_in_heartbeat;
static __thread int t_in_callback; /* a callback thread (call_out) */

double fl__boottime(void) {
#ifdef _WIN32
    /* Leases are refused on Windows; a lifetime ages by the monotonic clock. */
    return fl__now();
#else
    /* A lease's age is the time the world saw pass: a suspended host's
     * contenders (other hosts) kept counting, so the holder must too. The
     * platform half says which clock does (platform.h). */
    return fl__plat_boottime();
#endif
}

static void init_conds(void) {
#ifndef _WIN32
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(&g_wake, &a);
    pthread_cond_init(&g_idle, &a);
    pthread_condattr_destroy(&a);
#else
    pthread_cond_init(&g_wake, NULL);
    pthread_cond_init(&g_idle, NULL);
#endif
}

const char *fl_lease_loss_name(int reason) {
    switch (reason) {
    case FL_LEASE_MARKER_MISSING:
        return "marker-missing";
    case FL_LEASE_OWNER_CHANGED:
        return "owner-changed";
    case FL_LEASE_REFRESH_FAILED:
        return "refresh-failed";
    default:
        return "";
    }
}

void fl_set_compromise_callback(fl_lock *l, fl_compromise_fn fn, void *data) {
    if (!l)
        return;
    pthread_once(&g_cond_once, init_conds);
    pthread_mutex_lock(&g_lease_mu);
    l->compromise = fn;
    l->compromise_data = data;
    pthread_mutex_unlock(&g_lease_mu);
}

/* Removes e from the list (g_lease_mu held) and frees it. */
static void unlist(struct fl__lease *e) {
    struct fl__lease **pp;
    for (pp = &g_leases; *pp; pp = &(*pp)->next)
        if (*pp == e) {
            *pp = e->next;
            break;
        }
    free(e->path);
    free(e);
}

#ifndef _WIN32
/* One refresh, without the mutex (e is busy: nobody frees it or closes its
 * descriptor meanwhile), through the claim of the marker (soft.c). Returns
 * 0 (refreshed), a fl_lease_loss (lost), or -1 with *err set (a transient
 * failure: an NFS ESTALE, an EIO, a server away, a taker's claim; retried
 * until the lease could have expired). */
static int refresh(struct fl__lease *e, int *err) {
    return fl__soft_refresh(e->lock, e->path, &e->id, e->fd, err);
}

/* A compromise callback runs on a thread of its own: it is the program's
 * code (cleanup, a language waiting for its interpreter lock) and may take
 * long, while the heartbeat must go on refreshing the process's other
 * leases, which would otherwise expire and be taken while their holders
 * run. Created by the heartbeat, it inherits its blocked signals. */
static void *call_out(void *arg) {
    struct fl__lease *e = arg;
    t_in_callback = 1;
    fl__plat_name_thread("fl-lease-call");
    /* Fixed once lost; e stays listed (path allocated) while calling. */
    e->call_fn(e->call_data, e->lock, (fl_lease_loss)e->lost, e->lost_errno, e->path);
    pthread_mutex_lock(&g_lease_mu);
    e->calling = 0;
    if (e->dead && !e->busy)
        unlist(e);
    pthread_cond_broadcast(&g_idle);
    pthread_cond_broadcast(&g_wake);
    pthread_mutex_unlock(&g_lease_mu);
    return NULL;
}

static void *heartbeat(void *arg) {
    (void)arg;
    t_in_heartbeat = 1;
    /* Named, so that ps and a debugger show whose thread it is. */
    fl__plat_name_thread("fl-lease");
    pthread_mutex_lock(&g_lease_mu);
    for (;;) {
        struct fl__lease *e, *due = NULL;
        double now = fl__boottime(), next = -1;
        int live = 0;
        for (e = g_leases; e; e = e->next) {
            if (e->dead || e->lost || e->stopping)
                continue;
            live = 1;
            if (e->due <= now) {
                due = e;
                break;
            }
            if (next < 0 || e->due < next)
                next = e->due;
        }
        if (!g_leases) {
            /* The last lease is gone: end, so that an idle process has no
             * thread of ours; the next lease starts a new one. */
            g_running = 0;
            pthread_mutex_unlock(&g_lease_mu);
            return NULL;
        }
        if (due) {
            int err = 0, r, reason = 0;
            due->busy = 1;
            pthread_mutex_unlock(&g_lease_mu);
            r = refresh(due, &err);
            pthread_mutex_lock(&g_lease_mu);
            now = fl__boottime();
            if (r == 0) {
                due->last_ok = now;
            } else if (r > 0) {
                reason = r;
            } else if (now - due->last_ok >= due->duration - due->interval) {
                /* Failing for so long that a contender may take the marker
                 * before the next success would land: report it now, a
                 * margin before it really ages out. */
                reason = FL_LEASE_REFRESH_FAILED;
            }
            /* Never due again at once: an interval shorter than a refresh
             * (1e-300 s is accepted) would keep this thread refreshing one
             * lease back to back, and the mutex barely free. */
            due->due =
                now + (due->interval > FL__LEASE_MIN_STEP ? due->interval : FL__LEASE_MIN_STEP);
            if (reason && !due->dead) {
                fl_compromise_fn fn = due->lock->compromise;
                void *data = due->lock->compromise_data;
                fl_lock *lock = due->lock;
                char *path = due->path;
                due->lost = reason;
                due->lost_errno = reason == FL_LEASE_REFRESH_FAILED ? err : 0;
                if (fn) {
                    pthread_t t;
                    pthread_attr_t attr;
                    int rc;
                    /* Calling: a release waits for the callback, so the
                     * handle and its data outlive it. */
                    due->calling = 1;
                    due->call_fn = fn;
                    due->call_data = data;
                    pthread_attr_init(&attr);
                    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
                    rc = pthread_create(&t, &attr, call_out, due);
                    pthread_attr_destroy(&attr);
                    if (rc == 0)
                        fn = NULL;
                    else
                        due->calling = 0; /* no thread: called here, still busy */
                }
                if (fn) {
                    pthread_mutex_unlock(&g_lease_mu);
                    fn(data, lock, (fl_lease_loss)reason,
                       reason == FL_LEASE_REFRESH_FAILED ? err : 0, path);
                    pthread_mutex_lock(&g_lease_mu);
                }
            }
            due->busy = 0;
            if (due->dead && !due->calling)
                unlist(due);
            pthread_cond_broadcast(&g_idle);
            continue;
        }
        {
            /* Sleep until the next refresh, at most a second at a time:
             * the wait runs on the monotonic clock, which stops during a
             * suspend, while the deadlines are on the boot-time clock. */
            double slice = live && next >= 0 ? next - now : 1.0;
            struct timespec ts;
            if (slice > 1.0)
                slice = 1.0;
            if (slice < 0.001)
                slice = 0.001;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            ts.tv_sec += (time_t)slice;
            ts.tv_nsec += (long)((slice - (double)(time_t)slice) * 1e9);
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&g_wake, &g_lease_mu, &ts);
        }
    }
}
#endif

int fl__lease_start(fl_lock *l, fl__hold *h) {
#ifndef _WIN32
    struct fl__lease *e;
    pthread_t t;
    pthread_attr_t attr;
    sigset_t all, old;
    int rc;
#endif
    if (l->lease_duration <= 0 && l->lifetime <= 0)
        return 0;
    h->aged = 1;
    if (l->lease_duration <= 0)
        return 0; /* a lifetime: nothing refreshes it */
#ifdef _WIN32
    return fl__error(FL_ENOTSUP, 0, "soft lock '%s': leases are not supported on Windows", l->path);
#else
    pthread_once(&g_cond_once, init_conds);
    e = calloc(1, sizeof *e);
    if (!e || !(e->path = strdup(h->path ? h->path : l->path))) {
        free(e);
        return fl__error(FL_ENOMEM, ENOMEM, "out of memory starting the lease on '%s'", l->path);
    }
    e->lock = l;
    e->id.dev = h->dev;
    e->id.ino = h->ino;
    e->fd = h->fd;
    e->duration = l->lease_duration;
    e->interval = l->heartbeat_interval;
    e->last_ok = fl__boottime();
    e->due = e->last_ok + e->interval;
    pthread_mutex_lock(&g_lease_mu);
    e->next = g_leases;
    g_leases = e;
    if (!g_running) {
        /* The thread inherits the creator's signal mask: block everything
         * while creating it. */
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        rc = pthread_create(&t, &attr, heartbeat, NULL);
        pthread_attr_destroy(&attr);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (rc != 0) {
            g_leases = e->next;
            pthread_mutex_unlock(&g_lease_mu);
            free(e->path);
            free(e);
            return fl__error(fl__code_from_errno(rc), rc,
                             "cannot start the lease heartbeat thread for '%s': %s", l->path,
                             strerror(rc));
        }
        g_running = 1;
    } else {
        pthread_cond_broadcast(&g_wake);
    }
    h->lease = e;
    pthread_mutex_unlock(&g_lease_mu);
    return 0;
#endif
}

int fl__lease_check_reentry(const fl_lock *l, const fl__hold *h) {
    int lost;
    if (!h->lease)
        return 0;
    pthread_mutex_lock(&g_lease_mu);
    lost = h->lease->lost;
    pthread_mutex_unlock(&g_lease_mu);
    if (!lost)
        return 0;
    return fl__error(FL_ELOST, 0,
                     "the lease on soft lock '%s' was lost while held (%s): a lost hold cannot be "
                     "entered again; release it, then acquire anew",
                     l->path, fl_lease_loss_name(lost));
}

int fl__lease_stop(fl__hold *h, int *reason, int *os_errno, int *fresh) {
    struct fl__lease *e = h->lease;
    int lost;
    *reason = 0;
    *os_errno = 0;
    *fresh = 0;
    if (!e)
        return 0;
    h->lease = NULL;
    pthread_mutex_lock(&g_lease_mu);
    /* The heartbeat may be touching our descriptor, which the caller closes
     * next, or a callback may be running, whose data the caller may free
     * next. Called from a callback (or the heartbeat), it is for the one
     * finishing last to free: waiting there could wait for ourselves, or
     * for a callback that waits for ours. */
    /* Stopping first: the heartbeat, which takes the mutex back right after
     * a refresh, must not start another one while we wait for the mutex
     * (a lease always due would make this wait forever). */
    e->stopping = 1;
    while ((e->busy && !t_in_heartbeat) || (e->calling && !t_in_heartbeat && !t_in_callback))
        pthread_cond_wait(&g_idle, &g_lease_mu);
    lost = e->lost != 0;
    *fresh = !lost && fl__boottime() - e->last_ok < e->duration - e->interval;
    *reason = e->lost;
    *os_errno = e->lost_errno;
    if (e->busy || e->calling)
        e->dead = 1;
    else
        unlist(e);
    pthread_cond_broadcast(&g_wake);
    pthread_mutex_unlock(&g_lease_mu);
    return lost;
}

/* Fork: the child has no heartbeat thread (only the forking thread is
 * copied), and the parent's leases are the parent's, which its own
 * heartbeat keeps refreshing. The child forgets the list without freeing
 * it (the parent's holds, copied into the child, point at the entries until
 * the child forgets them: see forget_after_fork in lock.c). */
void fl__lease_atfork(int phase) {
    if (phase == FL__FORK_PREPARE) {
        pthread_mutex_lock(&g_lease_mu);
    } else if (phase == FL__FORK_PARENT) {
        pthread_mutex_unlock(&g_lease_mu);
    } else {
        g_leases = NULL;
        g_running = 0;
        t_in_heartbeat = 0;
        t_in_callback = 0;
        init_conds();
        pthread_mutex_unlock(&g_lease_mu);
    }
}
