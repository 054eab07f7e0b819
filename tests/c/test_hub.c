/*
 * Owner tokens and the event-loop wait hub (hub.c): recursion and the
 * deadlock check per owner, first come first served, cancelling passes the
 * lock on, a thousand waiters with exact mutual exclusion against another
 * process, the descriptor budget, the timer fallbacks (no inotify, no
 * watch, a release that closes nothing) and fork.
 */
#define _GNU_SOURCE
#include "platform.h"
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

/* The hub has an inotify instance only in the Linux build. */
#ifdef FL__LINUX
#define HAS_INOTIFY 1
#else
#define HAS_INOTIFY 0
#endif

/* Runs the loop a test would: poll the hub's descriptor for its timeout,
 * dispatch, until *count reaches want or limit seconds pass. */
static void drive(fl_hub *hub, const int *count, int want, double limit) {
    double end = fl_mono() + limit;
    while (__atomic_load_n(count, __ATOMIC_RELAXED) < want && fl_mono() < end) {
        double t = fl_hub_timeout(hub);
        int ms = t < 0 || t > 0.1 ? 100 : (int)(t * 1000) + 1;
        struct pollfd p;
        p.fd = fl_hub_fd(hub);
        p.events = POLLIN;
        p.revents = 0;
        (void)poll(&p, p.fd >= 0 ? 1 : 0, ms);
        ck_assert_int_ge(fl_hub_dispatch(hub), 0);
    }
}

static fl_lock *new_local(const char *path, int kind) {
    fl_lock *l;
    fl_options o = FL_OPTIONS_INIT;
    o.kind = (fl_kind)kind;
    o.thread_local = 1;
    ck_assert_int_eq(fl_lock_new(&l, path, &o), 0);
    return l;
}

/* A done callback that records the order and the result. */
typedef struct record {
    int n;
    uint64_t owner[2048];
    int rc[2048];
} record;

static void on_done(void *data, fl_lock *l, uint64_t owner, int rc) {
    record *r = data;
    (void)l;
    r->owner[r->n] = owner;
    r->rc[r->n] = rc;
    r->n++;
}

static fl_acquire_args forever_args(void) {
    fl_acquire_args a;
    fl_acquire_args_init(&a);
    a.set = FL_ARG_TIMEOUT;
    a.timeout = -1;
    return a;
}

START_TEST(owner_recursion) {
    const char *p = P("x.lock");
    fl_lock *l = new_local(p, _i);
    ck_assert_int_eq(fl_try_acquire_as(l, 1, 0), 0);
    ck_assert_int_eq(fl_try_acquire_as(l, 1, 0), 0);
    ck_assert_int_eq(fl_lock_counter_as(l, 1), 2);
    /* Another task on the same thread is someone else. */
    ck_assert_int_eq(fl_try_acquire_as(l, 2, 0), FL_ETIMEOUT);
    ck_assert_msg(strstr(fl_last_error(), p) != NULL, "%s", fl_last_error());
    ck_assert_int_eq(fl_lock_counter_as(l, 2), 0);
    ck_assert_int_eq(fl_lock_counter(l), 0);     /* nor is the thread itself */
    ck_assert_int_eq(fl_release_as(l, 2, 0), 0); /* not held by 2: no-op */
    ck_assert_int_eq(fl_lock_counter_as(l, 1), 2);
    ck_assert_int_eq(fl_release_as(l, 1, 0), 0);
    ck_assert_int_eq(fl_try_acquire_as(l, 2, 0), FL_ETIMEOUT);
    ck_assert_int_eq(fl_release_as(l, 1, 0), 0);
    ck_assert_int_eq(fl_lock_counter_as(l, 1), 0);
    ck_assert_int_eq(fl_try_acquire_as(l, 2, 0), 0);
    ck_assert_int_eq(fl_helper_try(p, _i), 3);
    ck_assert_int_eq(fl_release_as(l, 2, 1), 0);
    ck_assert_int_eq(fl_helper_try(p, _i), 0);
    /* Bit 63 is the library's. */
    ck_assert_int_eq(fl_try_acquire_as(l, UINT64_C(1) << 63, 0), FL_EINVAL);
    ck_assert_int_eq(fl_release_as(l, UINT64_C(1) << 63, 0), FL_EINVAL);
    fl_lock_free(l);
}
END_TEST

START_TEST(owner_deadlock_is_per_task) {
    const char *p = P("x.lock");
    fl_lock *a = new_local(p, _i), *b = new_local(p, _i), *c = new_local(p, _i);
    fl_acquire_args fa = forever_args(), nb;
    fl_hub *hub;
    fl_hub_waiter *w = NULL;
    record r;
    memset(&r, 0, sizeof r);
    ck_assert_int_eq(fl_hub_new(&hub), 0);
    ck_assert_int_eq(fl_try_acquire_as(a, 7, 0), 0);
    /* Task 7 waiting forever for what it holds through another handle. */
    ck_assert_int_eq(fl_hub_acquire(hub, b, 7, &fa, on_done, &r, &w), FL_EDEADLK);
    ck_assert_ptr_null(w);
    ck_assert_msg(strstr(fl_last_error(), p) != NULL, "%s", fl_last_error());
    ck_assert_msg(strstr(fl_last_error(), "held by this task") != NULL, "%s", fl_last_error());
    /* With a timeout it is a plain timeout; as one attempt, at once. */
    fl_acquire_args_init(&nb);
    nb.set = FL_ARG_BLOCKING;
    nb.blocking = 0;
    ck_assert_int_eq(fl_hub_acquire(hub, b, 7, &nb, on_done, &r, &w), FL_ETIMEOUT);
    /* Task 8 on the same thread simply waits. */
    ck_assert_int_eq(fl_hub_acquire(hub, c, 8, &fa, on_done, &r, &w), 0);
    ck_assert_ptr_nonnull(w);
    ck_assert_int_eq(fl_hub_dispatch(hub), 0);
    ck_assert_int_eq(r.n, 0);
    ck_assert_int_eq(fl_hub_release(hub, a, 7, 0), 0);
    ck_assert(fl_hub_timeout(hub) == 0);
    drive(hub, &r.n, 1, 10);
    ck_assert_int_eq(r.n, 1);
    ck_assert_int_eq(r.rc[0], 0);
    ck_assert(r.owner[0] == 8);
    ck_assert_int_eq(fl_lock_counter_as(c, 8), 1);
    ck_assert_int_eq(fl_helper_try(p, _i), 3);
    ck_assert(fl_hub_timeout(hub) == -1);
    ck_assert_int_eq(fl_release_as(c, 8, 0), 0);
    fl_hub_free(hub);
    fl_lock_free(a);
    fl_lock_free(b);
    fl_lock_free(c);
}
END_TEST

/* Waits on one file are served in the order they began; each winner
 * releases after its callback, from the loop. */
typedef struct fifo {
    record r;
    fl_hub *hub;
    fl_lock *locks[8];
    int release_next; /* index into r of the next win to release */
} fifo;

START_TEST(first_come_first_served) {
    const char *p = P("x.lock");
    fl_lock *holder = fl_new_kind(p, _i);
    fl_acquire_args fa = forever_args();
    fl_hub_waiter *w;
    fifo f;
    int i;
    memset(&f, 0, sizeof f);
    ck_assert_int_eq(fl_hub_new(&f.hub), 0);
    ck_assert_int_eq(fl_acquire(holder), 0);
    for (i = 0; i < 8; i++) {
        f.locks[i] = new_local(p, _i);
        ck_assert_int_eq(
            fl_hub_acquire(f.hub, f.locks[i], (uint64_t)(100 + i), &fa, on_done, &f.r, &w), 0);
        ck_assert_ptr_nonnull(w);
    }
    ck_assert_int_eq(fl_release(holder, 0), 0); /* closes: an inotify event */
    while (f.release_next < 8) {
        int before = f.r.n;
        drive(f.hub, &f.r.n, before + 1, 10);
        ck_assert_int_eq(f.r.n, before + 1); /* one winner at a time */
        ck_assert_int_eq(f.r.rc[before], 0);
        ck_assert(f.r.owner[before] == (uint64_t)(100 + before));
        /* Exclusive: nobody else got in meanwhile. */
        ck_assert_int_eq(fl_hub_dispatch(f.hub), 0);
        ck_assert_int_eq(fl_hub_release(f.hub, f.locks[before], f.r.owner[before], 0), 0);
        f.release_next++;
    }
    for (i = 0; i < 8; i++)
        fl_lock_free(f.locks[i]);
    fl_hub_free(f.hub);
    fl_lock_free(holder);
}
END_TEST

START_TEST(cancel_passes_the_lock_on) {
    const char *p = P("x.lock");
    fl_lock *holder = fl_new_kind(p, _i), *a = new_local(p, _i), *b = new_local(p, _i);
    fl_acquire_args fa = forever_args();
    fl_hub_waiter *wa, *wb;
    fl_hub *hub;
    record r;
    memset(&r, 0, sizeof r);
    ck_assert_int_eq(fl_hub_new(&hub), 0);
    ck_assert_int_eq(fl_acquire(holder), 0);
    ck_assert_int_eq(fl_hub_acquire(hub, a, 1, &fa, on_done, &r, &wa), 0);
    ck_assert_int_eq(fl_hub_acquire(hub, b, 2, &fa, on_done, &r, &wb), 0);
    /* The first in line gives up: the second is next. */
    ck_assert_int_eq(fl_hub_cancel(wa), 0);
    ck_assert_int_eq(fl_release(holder, 0), 0);
    drive(hub, &r.n, 1, 10);
    ck_assert_int_eq(r.n, 1);
    ck_assert(r.owner[0] == 2);
    ck_assert_int_eq(fl_lock_counter_as(a, 1), 0);
    /* A win whose task was cancelled before it saw it: released through
     * the hub, the next waiter is tried at once (timeout 0), without
     * waiting for the file system's event. */
    ck_assert_int_eq(fl_hub_acquire(hub, a, 1, &fa, on_done, &r, &wa), 0);
    ck_assert_ptr_nonnull(wa);
    ck_assert_int_eq(fl_hub_release(hub, b, 2, 0), 0);
    ck_assert(fl_hub_timeout(hub) == 0);
    ck_assert_int_eq(fl_hub_dispatch(hub), 1);
    ck_assert(r.owner[1] == 1);
    ck_assert_int_eq(r.rc[1], 0);
    ck_assert_int_eq(fl_helper_try(p, _i), 3);
    ck_assert_int_eq(fl_release_as(a, 1, 0), 0);
    ck_assert_int_eq(fl_helper_try(p, _i), 0);
    fl_hub_free(hub);
    fl_lock_free(a);
    fl_lock_free(b);
    fl_lock_free(holder);
}
END_TEST

START_TEST(timeout_and_free_end_waits) {
    const char *p = P("x.lock");
    fl_lock *holder = fl_new_kind(p, _i), *a = new_local(p, _i), *b = new_local(p, _i);
    fl_acquire_args t;
    fl_acquire_args fa = forever_args();
    fl_hub_waiter *w;
    fl_hub *hub;
    record r;
    memset(&r, 0, sizeof r);
    ck_assert_int_eq(fl_hub_new(&hub), 0);
    ck_assert_int_eq(fl_acquire(holder), 0);
    fl_acquire_args_init(&t);
    t.set = FL_ARG_TIMEOUT;
    t.timeout = 0.2;
    ck_assert_int_eq(fl_hub_acquire(hub, a, 1, &t, on_done, &r, &w), 0);
    /* A deadline is reported (not -1), no later than the wait's own; 0
     * (due now) when this thread was descheduled for 0.2 s meanwhile. */
    ck_assert(fl_hub_timeout(hub) >= 0 && fl_hub_timeout(hub) <= 0.2);
    drive(hub, &r.n, 1, 10);
    ck_assert_int_eq(r.n, 1);
    ck_assert_int_eq(r.rc[0], FL_ETIMEOUT);
    ck_assert_int_eq(fl_lock_counter_as(a, 1), 0);
    /* Freeing the hub ends a pending wait with FL_ECANCELED. */
    ck_assert_int_eq(fl_hub_acquire(hub, b, 2, &fa, on_done, &r, &w), 0);
    fl_hub_free(hub);
    ck_assert_int_eq(r.n, 2);
    ck_assert_int_eq(r.rc[1], FL_ECANCELED);
    ck_assert_int_eq(fl_lock_counter_as(b, 2), 0);
    fl_lock_free(a);
    fl_lock_free(b);
    fl_lock_free(holder);
}
END_TEST

/* The earliest deadline of an entry is kept as waiters come and go (never
 * rescanned for a waiter that waits forever leaving): after forever waiters
 * and the earliest timed one leave, the next timed one still times out, and
 * no later than its deadline allows. */
START_TEST(deadlines_kept_as_waiters_leave) {
    const char *p = P("x.lock");
    fl_lock *holder = fl_new_kind(p, _i), *l[4];
    fl_acquire_args fa = forever_args(), t1, t2;
    fl_hub_waiter *w[4];
    fl_hub *hub;
    record r;
    double t0;
    int i;
    memset(&r, 0, sizeof r);
    for (i = 0; i < 4; i++)
        l[i] = new_local(p, _i);
    ck_assert_int_eq(fl_hub_new(&hub), 0);
    ck_assert_int_eq(fl_acquire(holder), 0);
    fl_acquire_args_init(&t1);
    t1.set = FL_ARG_TIMEOUT;
    t1.timeout = 60;
    t2 = t1;
    t2.timeout = 0.3;
    ck_assert_int_eq(fl_hub_acquire(hub, l[0], 1, &fa, on_done, &r, &w[0]), 0);
    ck_assert_int_eq(fl_hub_acquire(hub, l[1], 2, &t1, on_done, &r, &w[1]), 0);
    ck_assert_int_eq(fl_hub_acquire(hub, l[2], 3, &fa, on_done, &r, &w[2]), 0);
    ck_assert_int_eq(fl_hub_acquire(hub, l[3], 4, &t2, on_done, &r, &w[3]), 0);
    /* Forever waiters leave: nothing about the deadlines changes. */
    ck_assert_int_eq(fl_hub_cancel(w[0]), 0);
    ck_assert_int_eq(fl_hub_cancel(w[2]), 0);
    t0 = fl_mono();
    drive(hub, &r.n, 1, 10);
    ck_assert_int_eq(r.n, 1);
    ck_assert_uint_eq(r.owner[0], 4);
    ck_assert_int_eq(r.rc[0], FL_ETIMEOUT);
    ck_assert(fl_mono() - t0 < 5); /* the 0.3 s one, not the 60 s one */
    /* The earliest left (timed out): the 60 s one is next, not past. */
    ck_assert(fl_hub_timeout(hub) > 0);
    ck_assert_int_eq(fl_hub_cancel(w[1]), 0);
    ck_assert(fl_hub_timeout(hub) == -1);
    ck_assert_int_eq(r.n, 1);
    fl_hub_free(hub);
    for (i = 0; i < 4; i++)
        fl_lock_free(l[i]);
    fl_lock_free(holder);
}
END_TEST

/* The kernel queues a close's event before it removes the closing file's
 * locks, so the attempt an event triggers can still find the lock held:
 * then the entry is tried again soon, not after the re-check interval.
 * Forced here: a close that releases nothing (another descriptor of the
 * holder's) raises the event while the lock stays held. */
START_TEST(event_that_finds_the_lock_held_is_retried_soon) {
    const char *p = P("x.lock");
    fl_lock *holder = fl_new_kind(p, FL_KERNEL), *a = new_local(p, FL_KERNEL);
    fl_acquire_args fa = forever_args();
    fl_hub_waiter *w;
    fl_hub *hub;
    struct pollfd pf;
    record r;
    double next = 0;
    int fd, i;
    if (!HAS_INOTIFY)
        return;
    memset(&r, 0, sizeof r);
    ck_assert_int_eq(fl_hub_new(&hub), 0);
    ck_assert_int_eq(fl_acquire(holder), 0);
    ck_assert_int_eq(fl_hub_acquire(hub, a, 1, &fa, on_done, &r, &w), 0);
    /* The watch came with this wait: its first re-check is soon, since a
     * close may have raised its event before the watch existed and not yet
     * unlocked at the attempt after it (no event would follow; the forced
     * interleaving of this is test_waits.c's
     * close_before_the_watch_is_retried_soon). */
    ck_assert(fl_hub_timeout(hub) <= 0.002);
    usleep(3000);
    ck_assert_int_eq(fl_hub_dispatch(hub), 0); /* still held */
    ck_assert(fl_hub_timeout(hub) > 0.05);     /* then the plain re-check interval */
    fd = open(p, O_RDONLY | O_CLOEXEC);
    ck_assert_int_ge(fd, 0);
    close(fd); /* IN_CLOSE_NOWRITE, the lock still held */
    pf.fd = fl_hub_fd(hub);
    pf.events = POLLIN;
    pf.revents = 0;
    ck_assert_int_eq(poll(&pf, 1, 10000), 1);
    ck_assert_int_eq(fl_hub_dispatch(hub), 0);
    ck_assert_int_eq(r.n, 0);
    ck_assert(fl_hub_timeout(hub) <= 0.002);
    /* The retry that finds it still held backs off as before. */
    /* (One reading per step: a second one, taken later, could find the
     * same backed-off timer nearer than 2 ms.) */
    for (i = 0; i < 100 && (next = fl_hub_timeout(hub)) <= 0.002; i++) {
        usleep(2000);
        ck_assert_int_eq(fl_hub_dispatch(hub), 0);
    }
    ck_assert_msg(next > 0.002, "no back-off after %d retries: next in %.4f s", i, next);
    fl_release(holder, 0);
    drive(hub, &r.n, 1, 10);
    ck_assert_int_eq(r.n, 1);
    ck_assert_int_eq(r.rc[0], 0);
    ck_assert_int_eq(fl_release_as(a, 1, 0), 0);
    fl_hub_free(hub);
    fl_lock_free(a);
    fl_lock_free(holder);
}
END_TEST

/* ---- a thousand waiters ------------------------------------------------- */

#define NTASKS 1000
typedef struct crowd {
    fl_hub *hub;
    const char *counter;
    int won;     /* wins seen */
    int inside;  /* wins not yet released: never above 1 */
    int max_fds; /* descriptors seen while waiting */
    int failed;
    int pending_release; /* index of the lock to release from the loop, -1 */
    fl_lock *locks[NTASKS];
} crowd;

static void bump_file(const char *path) {
    char buf[32] = "0";
    long v;
    (void)fl_read_file(path, buf, sizeof buf);
    v = strtol(buf, NULL, 10);
    snprintf(buf, sizeof buf, "%ld", v + 1);
    fl_write_file(path, buf);
}

static void crowd_done(void *data, fl_lock *l, uint64_t owner, int rc) {
    crowd *c = data;
    (void)l;
    if (rc != 0 || c->inside != 0 || c->pending_release != -1) {
        c->failed++;
        return;
    }
    c->inside = 1;
    c->won++;
    bump_file(c->counter); /* read-modify-write: a lost update shows a second holder */
    c->pending_release = (int)owner - 1; /* owners are index + 1 (0 is the thread) */
}

START_TEST(thousand_waiters_exclude_exactly) {
    const char *p = P("x.lock"), *counter = P("counter");
    fl_lock *holder = fl_new_kind(p, _i);
    fl_acquire_args fa = forever_args();
    crowd *c = calloc(1, sizeof *c);
    int i, base, n = getenv("FL_TEST_VALGRIND") ? 100 : NTASKS, helper_n = 200;
    char nbuf[16], buf[32];
    const char *args[7];
    int out;
    pid_t pid;
    double end;
    ck_assert_ptr_nonnull(c);
    fl_write_file(counter, "0");
    c->counter = counter;
    c->pending_release = -1;
    ck_assert_int_eq(fl_acquire(holder), 0);
    /* Another process bumps the same counter under the same lock. Started
     * before the thousand handles exist: the fork handlers take every
     * handle's mutex, more than TSan's deadlock detector can track. */
    snprintf(nbuf, sizeof nbuf, "%d", helper_n);
    args[0] = "count";
    args[1] = p;
    args[2] = fl_kind_name(_i);
    args[3] = counter;
    args[4] = nbuf;
    args[5] = NULL;
    pid = fl_helper_start(args, &out, NULL);
    base = fl_open_fd_count();
    ck_assert_int_eq(fl_hub_new(&c->hub), 0);
    for (i = 0; i < n; i++) {
        fl_hub_waiter *w;
        c->locks[i] = new_local(p, _i);
        ck_assert_int_eq(
            fl_hub_acquire(c->hub, c->locks[i], (uint64_t)i + 1, &fa, crowd_done, c, &w), 0);
        ck_assert_ptr_nonnull(w);
    }
    /* The loop's epoll set and the inotify instance in it (Linux), plus one
     * open lock file, whatever the number of waiters (a soft holder's pidfd
     * would be one more per contended file). */
    ck_assert_int_le(fl_open_fd_count() - base, HAS_INOTIFY ? 3 : 1);
    ck_assert_int_eq(fl_release(holder, 0), 0);
    end = fl_mono() + 120;
    while (c->won < n && c->failed == 0 && fl_mono() < end) {
        drive(c->hub, &c->won, c->won + 1, 5);
        if (c->pending_release >= 0) {
            int k = c->pending_release;
            c->pending_release = -1;
            c->inside = 0;
            ck_assert_int_eq(fl_hub_release(c->hub, c->locks[k], (uint64_t)k + 1, 0), 0);
        }
    }
    ck_assert_int_eq(c->failed, 0);
    ck_assert_int_eq(c->won, n);
    ck_assert_int_eq(fl_wait_child(pid, 120), 0);
    close(out);
    ck_assert_int_ge(fl_read_file(counter, buf, sizeof buf), 1);
    ck_assert_int_eq((int)strtol(buf, NULL, 10), n + helper_n);
    ck_assert(fl_hub_timeout(c->hub) == -1);
    fl_hub_free(c->hub);
    /* The hub closed all it opened (the holder released, the pipe closed). */
    ck_assert_int_eq(fl_open_fd_count(), base - 2);
    for (i = 0; i < n; i++)
        fl_lock_free(c->locks[i]);
    fl_lock_free(holder);
    free(c);
}
END_TEST

/* ---- timer fallbacks -------------------------------------------------- */

static int fake_init_emfile(int flags) {
    (void)flags;
    errno = EMFILE;
    return -1;
}

static int fake_watch_enospc(int fd, const char *path, uint32_t mask) {
    (void)fd, (void)path, (void)mask;
    errno = ENOSPC;
    return -1;
}

/* 0: inotify as it is; 1: no instance (EMFILE); 2: no watch (ENOSPC). A
 * holder in another process releases after 300 ms. */
START_TEST(waits_complete_without_inotify) {
    const char *p = P("x.lock");
    const char *args[] = {"hold", p, "kernel", "300", NULL};
    fl_lock *l = new_local(p, FL_KERNEL);
    fl_acquire_args fa = forever_args();
    fl_hub_waiter *w;
    fl_hub *hub;
    record r;
    char line[64];
    int out;
    pid_t pid;
    memset(&r, 0, sizeof r);
    if (_i == 1)
        fl__sys.inotify_init1 = fake_init_emfile;
    if (_i == 2)
        fl__sys.inotify_add_watch = fake_watch_enospc;
    ck_assert_int_eq(fl_hub_new(&hub), 0);
    if (!HAS_INOTIFY)
        ck_assert_int_eq(fl_hub_fd(hub), -1);
    else
        ck_assert_int_ge(fl_hub_fd(hub), 0); /* without inotify: the epoll set, for pidfds */
    pid = fl_helper_start(args, &out, NULL);
    ck_assert_int_eq(fl_read_line(out, line, sizeof line, 10), 0);
    ck_assert_str_eq(line, "held");
    ck_assert_int_eq(fl_hub_acquire(hub, l, 1, &fa, on_done, &r, &w), 0);
    ck_assert_ptr_nonnull(w);
    ck_assert(fl_hub_timeout(hub) >= 0);
    drive(hub, &r.n, 1, 20);
    ck_assert_int_eq(r.n, 1);
    ck_assert_int_eq(r.rc[0], 0);
    ck_assert_int_eq(fl_wait_child(pid, 10), 0);
    close(out);
    ck_assert_int_eq(fl_release_as(l, 1, 0), 0);
    fl_hub_free(hub);
    fl_lock_free(l);
}
END_TEST

/* flock(LOCK_UN) with the descriptor kept open raises no inotify event:
 * the re-check timer wins it. */
START_TEST(release_without_close) {
    const char *p = P("x.lock");
    fl_lock *l = new_local(p, FL_KERNEL);
    fl_acquire_args fa = forever_args();
    fl_hub_waiter *w;
    fl_hub *hub;
    record r;
    int fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    memset(&r, 0, sizeof r);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(flock(fd, LOCK_EX), 0);
    ck_assert_int_eq(fl_hub_new(&hub), 0);
    ck_assert_int_eq(fl_hub_acquire(hub, l, 1, &fa, on_done, &r, &w), 0);
    drive(hub, &r.n, 1, 0.5); /* back off a while first */
    ck_assert_int_eq(r.n, 0);
    ck_assert_int_eq(flock(fd, LOCK_UN), 0);
    drive(hub, &r.n, 1, 10);
    ck_assert_int_eq(r.n, 1);
    ck_assert_int_eq(r.rc[0], 0);
    ck_assert_int_eq(fl_release_as(l, 1, 0), 0);
    close(fd);
    fl_hub_free(hub);
    fl_lock_free(l);
}
END_TEST

/* ---- threads: sync holders against hub waiters (TSan) ----------------- */

typedef struct sync_case {
    const char *path;
    const char *counter;
    int kind;
    int rounds;
    int failed;
} sync_case;

static void *sync_holder(void *arg) {
    sync_case *s = arg;
    fl_lock *l;
    int i;
    if (fl_lock_new(&l, s->path, NULL) != 0) {
        __atomic_add_fetch(&s->failed, 1, __ATOMIC_RELAXED);
        return NULL;
    }
    for (i = 0; i < s->rounds; i++) {
        if (fl_acquire_ex(l, 60, 1, 0.01) != 0) {
            __atomic_add_fetch(&s->failed, 1, __ATOMIC_RELAXED);
            break;
        }
        bump_file(s->counter);
        fl_release(l, 0);
    }
    fl_lock_free(l);
    return NULL;
}

START_TEST(sync_threads_and_hub_tasks_exclude) {
    sync_case s;
    pthread_t t[2];
    crowd *c = calloc(1, sizeof *c);
    fl_acquire_args fa = forever_args();
    int i, n = 100;
    char buf[32];
    double end;
    ck_assert_ptr_nonnull(c);
    memset(&s, 0, sizeof s);
    s.path = P("x.lock");
    s.counter = P("counter");
    s.rounds = 100;
    fl_write_file(s.counter, "0");
    c->counter = s.counter;
    c->pending_release = -1;
    ck_assert_int_eq(fl_hub_new(&c->hub), 0);
    for (i = 0; i < n; i++)
        c->locks[i] = new_local(s.path, FL_KERNEL);
    for (i = 0; i < 2; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, sync_holder, &s), 0);
    for (i = 0; i < n; i++) {
        fl_hub_waiter *w;
        int rc = fl_hub_acquire(c->hub, c->locks[i], (uint64_t)i + 1, &fa, crowd_done, c, &w);
        ck_assert_int_eq(rc, 0);
        if (!w) /* won at once: as if its callback ran */
            crowd_done(c, c->locks[i], (uint64_t)i + 1, 0);
        if (c->pending_release >= 0) {
            int k = c->pending_release;
            c->pending_release = -1;
            c->inside = 0;
            ck_assert_int_eq(fl_hub_release(c->hub, c->locks[k], (uint64_t)k + 1, 0), 0);
        }
    }
    end = fl_mono() + 60;
    while (c->won < n && c->failed == 0 && fl_mono() < end) {
        drive(c->hub, &c->won, c->won + 1, 5);
        if (c->pending_release >= 0) {
            int k = c->pending_release;
            c->pending_release = -1;
            c->inside = 0;
            ck_assert_int_eq(fl_hub_release(c->hub, c->locks[k], (uint64_t)k + 1, 0), 0);
        }
    }
    for (i = 0; i < 2; i++)
        fl_join(t[i], 60);
    ck_assert_int_eq(s.failed, 0);
    ck_assert_int_eq(c->failed, 0);
    ck_assert_int_eq(c->won, n);
    ck_assert_int_ge(fl_read_file(s.counter, buf, sizeof buf), 1);
    ck_assert_int_eq((int)strtol(buf, NULL, 10), n + 2 * s.rounds);
    fl_hub_free(c->hub);
    for (i = 0; i < n; i++)
        fl_lock_free(c->locks[i]);
    free(c);
}
END_TEST

/* ---- hostile interleavings ------------------------------------------- */

/* Callbacks may call the hub: the first winner cancels a later waiter,
 * releases, and queues itself again; the hub stays consistent and every
 * remaining wait completes once. */
typedef struct reentrant {
    fl_hub *hub;
    fl_lock *locks[4];
    fl_hub_waiter *w[4];
    int calls[4];
    int requeued;
    int done;
} reentrant;

static void reentrant_done(void *data, fl_lock *l, uint64_t owner, int rc) {
    reentrant *r = data;
    int i = (int)owner - 1;
    fl_acquire_args fa = forever_args();
    (void)l;
    r->calls[i]++;
    r->w[i] = NULL;
    r->done++;
    if (rc != 0)
        return;
    if (i == 0 && !r->requeued) {
        r->requeued = 1;
        (void)fl_hub_cancel(r->w[2]); /* a later waiter gives up */
        r->w[2] = NULL;
        r->done++; /* counted as ended */
        (void)fl_hub_release(r->hub, r->locks[0], owner, 0);
        (void)fl_hub_acquire(r->hub, r->locks[0], owner, &fa, reentrant_done, r, &r->w[0]);
        return;
    }
    (void)fl_hub_release(r->hub, r->locks[i], owner, 0);
}

START_TEST(callbacks_reenter_the_hub) {
    const char *p = P("x.lock");
    fl_lock *holder = fl_new_kind(p, _i);
    fl_acquire_args fa = forever_args();
    reentrant r;
    int i;
    memset(&r, 0, sizeof r);
    ck_assert_int_eq(fl_hub_new(&r.hub), 0);
    ck_assert_int_eq(fl_acquire(holder), 0);
    for (i = 0; i < 4; i++) {
        r.locks[i] = new_local(p, _i);
        ck_assert_int_eq(
            fl_hub_acquire(r.hub, r.locks[i], (uint64_t)i + 1, &fa, reentrant_done, &r, &r.w[i]),
            0);
    }
    ck_assert_int_eq(fl_release(holder, 0), 0);
    drive(r.hub, &r.done, 5, 20); /* 4 waits + the requeued one, the cancelled one counted */
    ck_assert_int_eq(r.done, 5);
    ck_assert_int_eq(r.calls[0], 2);
    ck_assert_int_eq(r.calls[1], 1);
    ck_assert_int_eq(r.calls[2], 0);
    ck_assert_int_eq(r.calls[3], 1);
    ck_assert(fl_hub_timeout(r.hub) == -1);
    ck_assert_int_eq(fl_helper_try(p, _i), 0); /* nothing left held */
    fl_hub_free(r.hub);
    for (i = 0; i < 4; i++)
        fl_lock_free(r.locks[i]);
    fl_lock_free(holder);
}
END_TEST

/* The lock file is replaced while a waiter waits (its watch is on the old
 * inode, which nobody will release): the waiter still wins the new one. */
START_TEST(lock_file_replaced_while_waiting) {
    const char *p = P("x.lock"), *tmp = P("new.lock");
    fl_lock *l = new_local(p, FL_KERNEL);
    fl_acquire_args fa = forever_args();
    fl_hub_waiter *w;
    fl_hub *hub;
    record r;
    int fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    memset(&r, 0, sizeof r);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(flock(fd, LOCK_EX), 0); /* held for ever on the old inode */
    ck_assert_int_eq(fl_hub_new(&hub), 0);
    ck_assert_int_eq(fl_hub_acquire(hub, l, 1, &fa, on_done, &r, &w), 0);
    drive(hub, &r.n, 1, 0.3);
    ck_assert_int_eq(r.n, 0);
    fl_write_file(tmp, "");
    ck_assert_int_eq(rename(tmp, p), 0);
    drive(hub, &r.n, 1, 10);
    ck_assert_int_eq(r.n, 1);
    ck_assert_int_eq(r.rc[0], 0);
    ck_assert_int_eq(fl_helper_try(p, FL_KERNEL), 3); /* the new file is held */
    ck_assert_int_eq(fl_release_as(l, 1, 0), 0);
    close(fd);
    fl_hub_free(hub);
    fl_lock_free(l);
}
END_TEST

/* A soft lock's holder is killed: its marker stays, and the waiter reclaims
 * it once the holder is provably gone (the hub's re-check judges it). */
START_TEST(killed_soft_holder_is_reclaimed) {
    const char *p = P("x.lock");
    const char *args[] = {"hold", p, "soft", "-1", NULL};
    fl_lock *l = new_local(p, FL_SOFT);
    fl_acquire_args fa = forever_args();
    fl_hub_waiter *w;
    fl_hub *hub;
    record r;
    char line[64];
    int out, in;
    pid_t pid;
    memset(&r, 0, sizeof r);
    pid = fl_helper_start(args, &out, &in);
    ck_assert_int_eq(fl_read_line(out, line, sizeof line, 10), 0);
    ck_assert_str_eq(line, "held");
    ck_assert_int_eq(fl_hub_new(&hub), 0);
    ck_assert_int_eq(fl_hub_acquire(hub, l, 1, &fa, on_done, &r, &w), 0);
    drive(hub, &r.n, 1, 0.3);
    ck_assert_int_eq(r.n, 0);
    ck_assert_int_eq(kill(pid, SIGKILL), 0);
    ck_assert_int_eq(fl_wait_child(pid, 10), 128 + SIGKILL);
    drive(hub, &r.n, 1, 20);
    ck_assert_int_eq(r.n, 1);
    ck_assert_int_eq(r.rc[0], 0);
    ck_assert_int_eq(fl_release_as(l, 1, 0), 0);
    close(out);
    close(in);
    fl_hub_free(hub);
    fl_lock_free(l);
}
END_TEST

/* The hub's wake-up set includes the soft holder's pidfd (Linux): with the
 * re-check timer 30 s away and no file-system event (a dead holder's marker
 * stays), only the pidfd can wake the loop in time. While the holder is an
 * unreaped zombie its marker is still valid; once reaped, the short
 * re-judgements after the pidfd fired reclaim it. The generic POSIX build
 * has no pidfd: there the 30 s timer is the only wake-up, which
 * killed_soft_holder_is_reclaimed covers with the default cadence. */
START_TEST(dead_soft_holder_wakes_the_hub_by_pidfd) {
    const char *p = P("x.lock");
    const char *args[] = {"hold", p, "soft", "-1", NULL};
    fl_lock *l;
    fl_acquire_args fa = forever_args();
    fl_hub_waiter *w;
    fl_hub *hub;
    record r;
    char line[64];
    int out, in;
    pid_t pid;
    FL_NEEDS_LINUX("pidfd");
#ifdef FL__LINUX
    {
        int probe = fl__plat_pidfd_open(getpid(), 0);
        if (probe < 0) {
            fprintf(stderr, "skipped %s: pidfd_open refused here (valgrind?): %s\n", __func__,
                    strerror(errno));
            return;
        }
        close(probe);
    }
#endif
    l = new_local(p, FL_SOFT);
    fa.set |= FL_ARG_POLL_INTERVAL;
    fa.poll_interval = 30;
    memset(&r, 0, sizeof r);
    pid = fl_helper_start(args, &out, &in);
    ck_assert_int_eq(fl_read_line(out, line, sizeof line, 10), 0);
    ck_assert_str_eq(line, "held");
    ck_assert_int_eq(fl_hub_new(&hub), 0);
    ck_assert_int_eq(fl_hub_acquire(hub, l, 1, &fa, on_done, &r, &w), 0);
    drive(hub, &r.n, 1, 0.3);
    ck_assert_int_eq(r.n, 0);
    ck_assert_int_eq(kill(pid, SIGKILL), 0);
    /* Exited, not reaped: the zombie's marker is valid, the wait goes on. */
    drive(hub, &r.n, 1, 0.5);
    ck_assert_int_eq(r.n, 0);
    ck_assert_int_eq(fl_wait_child(pid, 10), 128 + SIGKILL);
    drive(hub, &r.n, 1, 10); /* the timer alone would take 30 s */
    ck_assert_int_eq(r.n, 1);
    ck_assert_int_eq(r.rc[0], 0);
    ck_assert_int_eq(fl_release_as(l, 1, 0), 0);
    close(out);
    close(in);
    fl_hub_free(hub);
    fl_lock_free(l);
}
END_TEST

/* A child forked while the hub watched a soft holder's pidfd keeps a copy
 * of it: closing ours then does not take the pidfd out of the epoll set
 * (an epoll item lives as long as its open file). When the holder later
 * dies, the stale item (level-triggered: a dead process's pidfd stays
 * readable) would keep the hub's descriptor readable for ever, a busy
 * event loop, and hand read_holders a freed file. The pidfd must leave
 * the set explicitly before it is closed. */
START_TEST(pidfd_leaves_the_epoll_set_though_a_child_has_a_copy) {
    const char *p = P("y.lock");
    const char *args[] = {"hold", p, "soft", "-1", NULL};
    fl_lock *l;
    fl_acquire_args fa = forever_args();
    fl_hub_waiter *w;
    fl_hub *hub;
    record r;
    char line[64];
    int out, in, gate[2];
    pid_t pid, kid;
    struct pollfd pf;
    FL_NEEDS_LINUX("pidfd");
#ifdef FL__LINUX
    {
        int probe = fl__plat_pidfd_open(getpid(), 0);
        if (probe < 0) {
            fprintf(stderr, "skipped %s: pidfd_open refused here (valgrind?): %s\n", __func__,
                    strerror(errno));
            return;
        }
        close(probe);
    }
#endif
    l = new_local(p, FL_SOFT);
    fa.set |= FL_ARG_POLL_INTERVAL;
    fa.poll_interval = 30;
    memset(&r, 0, sizeof r);
    pid = fl_helper_start(args, &out, &in);
    ck_assert_int_eq(fl_read_line(out, line, sizeof line, 10), 0);
    ck_assert_str_eq(line, "held");
    ck_assert_int_eq(fl_hub_new(&hub), 0);
    ck_assert_int_eq(fl_hub_acquire(hub, l, 1, &fa, on_done, &r, &w), 0);
    drive(hub, &r.n, 1, 0.2); /* busy: the holder's pidfd is armed */
    ck_assert_int_eq(r.n, 0);
    ck_assert_int_eq(pipe(gate), 0);
    kid = fork();
    ck_assert_int_ge(kid, 0);
    if (kid == 0) {
        char c;
        close(gate[1]);
        (void)!read(gate[0], &c, 1); /* keeps the copies until the parent is done */
        _exit(0);
    }
    close(gate[0]);
    ck_assert_int_eq(fl_hub_cancel(w), 0);
    drive(hub, &r.n, 1, 0.2); /* drains the watch's removal event */
    ck_assert_int_eq(kill(pid, SIGKILL), 0);
    ck_assert_int_eq(fl_wait_child(pid, 10), 128 + SIGKILL);
    /* Nothing is waited for: the hub's descriptor must stay quiet. */
    pf.fd = fl_hub_fd(hub);
    pf.events = POLLIN;
    pf.revents = 0;
    ck_assert_int_eq(poll(&pf, 1, 300), 0);
    close(gate[1]);
    ck_assert_int_eq(fl_wait_child(kid, 10), 0);
    close(out);
    close(in);
    fl_hub_free(hub);
    fl_lock_free(l);
}
END_TEST

/* ---- read/write locks ---------------------------------------------------- */

static fl_lock *new_rw(const char *path) {
    fl_lock *l;
    fl_options o = FL_OPTIONS_INIT;
    o.read_write = 1;
    ck_assert_int_eq(fl_lock_new(&l, path, &o), 0);
    return l;
}

static fl_acquire_args mode_args(int shared) {
    fl_acquire_args a = forever_args();
    a.shared = shared;
    return a;
}

/* Readers share; a waiting writer holds new readers back (it holds the
 * writers' gate while it waits, as the blocking acquire does), so the
 * reader that came after it waits until the writer is through. Another
 * process using the blocking read/write lock sees the same states. */
START_TEST(read_write_through_the_hub) {
    const char *p = P("rw.lock");
    fl_lock *l[4];
    fl_acquire_args rd = mode_args(1), wr = mode_args(0);
    fl_hub_waiter *w;
    fl_hub *hub;
    record r;
    int i;
    memset(&r, 0, sizeof r);
    for (i = 0; i < 4; i++)
        l[i] = new_rw(p);
    ck_assert_int_eq(fl_hub_new(&hub), 0);
    ck_assert_int_eq(fl_hub_acquire(hub, l[0], 1, &rd, on_done, &r, &w), 0);
    ck_assert_ptr_null(w); /* reader 1 in */
    ck_assert_int_eq(fl_hub_acquire(hub, l[1], 2, &rd, on_done, &r, &w), 0);
    ck_assert_ptr_null(w);                   /* reader 2 in beside it */
    ck_assert_int_eq(fl_is_shared(l[0]), 0); /* the calling thread holds nothing */
    ck_assert_int_eq(fl_lock_counter_as(l[1], 2), 1);
    ck_assert_int_eq(fl_hub_acquire(hub, l[2], 3, &wr, on_done, &r, &w), 0);
    ck_assert_ptr_nonnull(w); /* the writer waits, holding the gate */
    ck_assert_int_eq(fl_hub_acquire(hub, l[3], 4, &rd, on_done, &r, &w), 0);
    ck_assert_ptr_nonnull(w); /* a later reader waits behind the writer */
    {
        const char *args[] = {"rtry", p, "rw-shared", NULL};
        int out;
        pid_t pid = fl_helper_start(args, &out, NULL);
        ck_assert_int_eq(fl_wait_child(pid, 10), 3); /* another process's reader too */
        close(out);
    }
    drive(hub, &r.n, 1, 0.3);
    ck_assert_int_eq(r.n, 0);
    ck_assert_int_eq(fl_hub_release(hub, l[0], 1, 0), 0);
    drive(hub, &r.n, 1, 0.3);
    ck_assert_int_eq(r.n, 0); /* one reader still in */
    ck_assert_int_eq(fl_hub_release(hub, l[1], 2, 0), 0);
    drive(hub, &r.n, 1, 10);
    ck_assert_int_eq(r.n, 1);
    ck_assert(r.owner[0] == 3 && r.rc[0] == 0); /* the writer */
    drive(hub, &r.n, 2, 0.3);
    ck_assert_int_eq(r.n, 1); /* the reader still waits */
    ck_assert_int_eq(fl_hub_release(hub, l[2], 3, 0), 0);
    drive(hub, &r.n, 2, 10);
    ck_assert_int_eq(r.n, 2);
    ck_assert(r.owner[1] == 4 && r.rc[1] == 0);
    ck_assert_int_eq(fl_hub_release(hub, l[3], 4, 0), 0);
    ck_assert(fl_hub_timeout(hub) == -1);
    ck_assert_int_eq(fl_helper_try(p, FL_KERNEL), 0); /* nothing left, gate included */
    fl_hub_free(hub);
    for (i = 0; i < 4; i++)
        fl_lock_free(l[i]);
}
END_TEST

/* A writer cancelled while it waits (holding the gate) lets the gate go:
 * readers get in again. */
START_TEST(cancelled_writer_opens_the_gate) {
    const char *p = P("rw.lock");
    fl_lock *a = new_rw(p), *b = new_rw(p), *c = new_rw(p);
    fl_acquire_args rd = mode_args(1), wr = mode_args(0);
    fl_hub_waiter *w;
    fl_hub *hub;
    record r;
    memset(&r, 0, sizeof r);
    ck_assert_int_eq(fl_hub_new(&hub), 0);
    ck_assert_int_eq(fl_hub_acquire(hub, a, 1, &rd, on_done, &r, &w), 0);
    ck_assert_int_eq(fl_hub_acquire(hub, b, 2, &wr, on_done, &r, &w), 0);
    ck_assert_ptr_nonnull(w);
    ck_assert_int_eq(fl_hub_cancel(w), 0);
    ck_assert_int_eq(fl_hub_acquire(hub, c, 3, &rd, on_done, &r, &w), 0);
    ck_assert_ptr_null(w); /* the gate is open again */
    ck_assert_int_eq(fl_hub_release(hub, a, 1, 0), 0);
    ck_assert_int_eq(fl_hub_release(hub, c, 3, 0), 0);
    ck_assert_int_eq(r.n, 0);
    ck_assert_int_eq(fl_helper_try(p, FL_KERNEL), 0);
    fl_hub_free(hub);
    fl_lock_free(a);
    fl_lock_free(b);
    fl_lock_free(c);
}
END_TEST

/* One read/write handle shared by the threads (thread_local off), as an
 * AsyncFileLock's: a hub writer passed the writers' gate and waits for the
 * lock (another handle holds it); a thread then asks the same handle for
 * the write lock and waits for the gate. The hub's attempt on the handle
 * can only say busy while that thread leads the handle's attempt, so a hub
 * waiter that kept the gate would wait for the thread and the thread for
 * it, until the thread's timeout (forever with -1). The hub must give the
 * gate back and join the thread's hold once it is won, keeping its place
 * ahead of a reader that came after it (no writer starvation), and no
 * reader gets in while they hold the lock (read/write locks are kernel
 * locks). */
typedef struct shared_writer {
    fl_lock *l;
    int rc;
} shared_writer;

static void *blocking_writer(void *arg) {
    shared_writer *s = arg;
    s->rc = fl_acquire_ex(s->l, 5, 1, 0.05);
    return NULL;
}

static int handle_acquiring(fl_lock *l) {
    int v;
    pthread_mutex_lock(&l->mu);
    v = l->acquiring;
    pthread_mutex_unlock(&l->mu);
    return v;
}

START_TEST(rw_hub_writer_and_thread_of_the_same_handle) {
    const char *p = P("rs.lock");
    fl_lock *holder, *reader, *l;
    fl_options o = FL_OPTIONS_INIT;
    fl_acquire_args ex = mode_args(0), sh = mode_args(1);
    fl_hub_waiter *w;
    fl_hub *hub;
    shared_writer s;
    pthread_t t;
    record r;
    double end;
    memset(&r, 0, sizeof r);
    memset(&s, 0, sizeof s);
    o.read_write = 1;
    ck_assert_int_eq(fl_lock_new(&holder, p, &o), 0);
    ck_assert_int_eq(fl_lock_new(&reader, p, &o), 0);
    o.thread_local = 0;
    ck_assert_int_eq(fl_lock_new(&l, p, &o), 0);
    ck_assert_int_eq(fl_hub_new(&hub), 0);
    ck_assert_int_eq(fl_hub_acquire(hub, holder, 1, &ex, on_done, &r, &w), 0);
    ck_assert_ptr_null(w);
    ck_assert_int_eq(fl_hub_acquire(hub, l, 2, &ex, on_done, &r, &w), 0);
    ck_assert_ptr_nonnull(w); /* through the gate, waiting for the lock */
    /* A reader of another handle, after it. */
    ck_assert_int_eq(fl_hub_acquire(hub, reader, 3, &sh, on_done, &r, &w), 0);
    ck_assert_ptr_nonnull(w);
    s.l = l;
    ck_assert_int_eq(pthread_create(&t, NULL, blocking_writer, &s), 0);
    /* The thread leads the handle's attempt: from here it can only go
     * through the gate the hub's writer holds. */
    end = fl_mono() + 10;
    while (!handle_acquiring(l) && fl_mono() < end)
        usleep(1000);
    ck_assert_int_eq(handle_acquiring(l), 1);
    ck_assert_int_eq(fl_hub_release(hub, holder, 1, 0), 0);
    drive(hub, &r.n, 1, 10);
    fl_join(t, 30);
    ck_assert_msg(s.rc == 0, "the thread of the same handle did not win: %s", fl_err_name(s.rc));
    ck_assert_int_eq(r.n, 1);
    ck_assert(r.owner[0] == 2 && r.rc[0] == 0); /* the writer joined the thread's hold */
    ck_assert_int_eq(fl_lock_counter_as(l, 2), 2);
    drive(hub, &r.n, 2, 0.3);
    ck_assert_int_eq(r.n, 1); /* the reader waits: the writers hold the lock */
    ck_assert_int_eq(fl_helper_try(p, FL_KERNEL), 3);
    ck_assert_int_eq(fl_release(l, 0), 0);
    drive(hub, &r.n, 2, 0.3);
    ck_assert_int_eq(r.n, 1); /* the hub's writer still holds it */
    ck_assert_int_eq(fl_hub_release(hub, l, 2, 0), 0);
    drive(hub, &r.n, 2, 10);
    ck_assert_int_eq(r.n, 2);
    ck_assert(r.owner[1] == 3 && r.rc[1] == 0);
    ck_assert_int_eq(fl_hub_release(hub, reader, 3, 0), 0);
    ck_assert(fl_hub_timeout(hub) == -1);
    ck_assert_int_eq(fl_helper_try(p, FL_KERNEL), 0); /* nothing left, gate included */
    fl_hub_free(hub);
    fl_lock_free(l);
    fl_lock_free(reader);
    fl_lock_free(holder);
}
END_TEST

/* The other interleavings of a hub waiter and a thread of the same shared
 * handle (see above), each ending without a hang:
 * 0: a hub reader passed the gate (shared) and waits for the lock; the
 *    thread asks for the write lock and waits for the gate. The reader
 *    gives the gate back; the thread wins; the reader, joining a hold of
 *    the other mode, fails with FL_ELOCKMODE as a thread would.
 * 1: a hub writer waits for the gate behind a hub writer of another handle
 *    when the thread starts acquiring: it stands aside while the thread
 *    acquires (the thread goes through the gate first), then joins its
 *    hold; the other handle's writer came first and wins first. */
START_TEST(rw_hub_waiters_and_thread_of_the_same_handle) {
    const char *p = P("rt.lock");
    fl_lock *holder, *other, *l;
    fl_options o = FL_OPTIONS_INIT;
    fl_acquire_args ex = mode_args(0), sh = mode_args(1);
    fl_hub_waiter *w;
    fl_hub *hub;
    shared_writer s;
    pthread_t t;
    record r;
    double end;
    memset(&r, 0, sizeof r);
    memset(&s, 0, sizeof s);
    o.read_write = 1;
    ck_assert_int_eq(fl_lock_new(&holder, p, &o), 0);
    ck_assert_int_eq(fl_lock_new(&other, p, &o), 0);
    o.thread_local = 0;
    ck_assert_int_eq(fl_lock_new(&l, p, &o), 0);
    ck_assert_int_eq(fl_hub_new(&hub), 0);
    if (_i == 0) {
        ck_assert_int_eq(fl_hub_acquire(hub, holder, 1, &ex, on_done, &r, &w), 0);
        ck_assert_ptr_null(w);
        ck_assert_int_eq(fl_hub_acquire(hub, l, 2, &sh, on_done, &r, &w), 0);
        ck_assert_ptr_nonnull(w); /* through the gate (shared), waiting for the lock */
    } else {
        ck_assert_int_eq(fl_hub_acquire(hub, holder, 3, &sh, on_done, &r, &w), 0);
        ck_assert_ptr_null(w);
        ck_assert_int_eq(fl_hub_acquire(hub, other, 1, &ex, on_done, &r, &w), 0);
        ck_assert_ptr_nonnull(w); /* through the gate, waiting for the lock */
        ck_assert_int_eq(fl_hub_acquire(hub, l, 2, &ex, on_done, &r, &w), 0);
        ck_assert_ptr_nonnull(w); /* waiting for the gate */
    }
    s.l = l;
    ck_assert_int_eq(pthread_create(&t, NULL, blocking_writer, &s), 0);
    end = fl_mono() + 10;
    while (!handle_acquiring(l) && fl_mono() < end)
        usleep(1000);
    ck_assert_int_eq(handle_acquiring(l), 1);
    if (_i == 0) {
        ck_assert_int_eq(fl_hub_release(hub, holder, 1, 0), 0);
        drive(hub, &r.n, 1, 10);
        fl_join(t, 30);
        ck_assert_msg(s.rc == 0, "the thread did not win: %s", fl_err_name(s.rc));
        ck_assert_int_eq(r.n, 1);
        ck_assert(r.owner[0] == 2 && r.rc[0] == FL_ELOCKMODE);
        ck_assert_int_eq(fl_lock_counter_as(l, 2), 1); /* the thread's hold alone */
    } else {
        ck_assert_int_eq(fl_hub_release(hub, holder, 3, 0), 0);
        drive(hub, &r.n, 1, 10);
        ck_assert_int_eq(r.n, 1);
        ck_assert(r.owner[0] == 1 && r.rc[0] == 0); /* the writer that came first */
        drive(hub, &r.n, 2, 0.3);
        ck_assert_int_eq(r.n, 1); /* nobody beside it */
        ck_assert_int_eq(fl_hub_release(hub, other, 1, 0), 0);
        drive(hub, &r.n, 2, 10);
        fl_join(t, 30);
        ck_assert_msg(s.rc == 0, "the thread did not win: %s", fl_err_name(s.rc));
        ck_assert_int_eq(r.n, 2);
        ck_assert(r.owner[1] == 2 && r.rc[1] == 0); /* joined the thread's hold */
        ck_assert_int_eq(fl_lock_counter_as(l, 2), 2);
        ck_assert_int_eq(fl_release(l, 0), 0);
    }
    ck_assert_int_eq(fl_helper_try(p, FL_KERNEL), 3);
    ck_assert_int_eq(fl_release(l, 0), 0);
    ck_assert(fl_hub_timeout(hub) == -1);
    ck_assert_int_eq(fl_helper_try(p, FL_KERNEL), 0); /* nothing left, gate included */
    fl_hub_free(hub);
    fl_lock_free(l);
    fl_lock_free(other);
    fl_lock_free(holder);
}
END_TEST

/* ---- fork ---------------------------------------------------------------- */

typedef struct fork_case {
    fl_hub *hub;
    const char *path;
} fork_case;

static int child_uses_hubs(void *arg) {
    fork_case *fc = arg;
    fl_lock *l = new_local(fc->path, FL_KERNEL);
    fl_acquire_args fa = forever_args();
    fl_hub_waiter *w;
    fl_hub *mine;
    record r;
    int fd = fl_hub_fd(fc->hub);
    memset(&r, 0, sizeof r);
    if (fl_hub_acquire(fc->hub, l, 1, &fa, on_done, &r, &w) != FL_ECANCELED ||
        !strstr(fl_last_error(), "fork"))
        return 1;
    if (fl_hub_dispatch(fc->hub) != FL_ECANCELED)
        return 2;
    if (fl_hub_timeout(fc->hub) != -1)
        return 3;
    /* Freeing the parent's hub here leaves its descriptors alone and calls
     * no callback of the parent's waits. */
    fl_hub_free(fc->hub);
    if (fd >= 0 && fcntl(fd, F_GETFD) < 0)
        return 4;
    if (fl_hub_new(&mine) != 0)
        return 5;
    if (fl_hub_acquire(mine, l, 1, &fa, on_done, &r, &w) != 0 || w != NULL)
        return 6; /* free in the child: the parent waits, it does not hold */
    fl_release_as(l, 1, 0);
    fl_hub_free(mine);
    fl_lock_free(l);
    return 0;
}

START_TEST(fork_child_makes_its_own_hub) {
    fork_case fc;
    fl_lock *holder = fl_new_kind(P("x.lock"), FL_KERNEL);
    fl_lock *l;
    fl_acquire_args fa = forever_args();
    fl_hub_waiter *w;
    record r;
    if (!fl_test_forking)
        return; /* needs Check's fork mode: the test forks */
    memset(&r, 0, sizeof r);
    fc.path = P("y.lock");
    l = new_local(P("x.lock"), FL_KERNEL);
    ck_assert_int_eq(fl_hub_new(&fc.hub), 0);
    ck_assert_int_eq(fl_acquire(holder), 0);
    ck_assert_int_eq(fl_hub_acquire(fc.hub, l, 1, &fa, on_done, &r, &w), 0);
    ck_assert_int_eq(fl_run_in_child(child_uses_hubs, &fc, 30), 0);
    ck_assert_int_eq(r.n, 0);
    /* The parent's hub is untouched by the child. */
    ck_assert_int_eq(fl_release(holder, 0), 0);
    drive(fc.hub, &r.n, 1, 10);
    ck_assert_int_eq(r.n, 1);
    ck_assert_int_eq(r.rc[0], 0);
    ck_assert_int_eq(fl_release_as(l, 1, 0), 0);
    fl_hub_free(fc.hub);
    fl_lock_free(l);
    fl_lock_free(holder);
}
END_TEST

START_TEST(bad_arguments) {
    fl_lock *l = fl_new_kind(P("x.lock"), FL_KERNEL), *rw;
    fl_options o = FL_OPTIONS_INIT;
    fl_hub_waiter *w = (fl_hub_waiter *)1;
    fl_hub *hub;
    record r;
    ck_assert_int_eq(fl_hub_new(NULL), FL_EINVAL);
    ck_assert_int_eq(fl_hub_new(&hub), 0);
    ck_assert_int_eq(fl_hub_acquire(hub, NULL, 1, NULL, on_done, &r, &w), FL_EINVAL);
    ck_assert_ptr_null(w);
    ck_assert_int_eq(fl_hub_acquire(hub, l, 1, NULL, NULL, &r, &w), FL_EINVAL);
    ck_assert_int_eq(fl_hub_acquire(hub, l, UINT64_C(1) << 63, NULL, on_done, &r, &w), FL_EINVAL);
    o.read_write = 1;
    o.kind = FL_SOFT;
    ck_assert_int_eq(fl_lock_new(&rw, P("rw.lock"), &o), FL_EINVAL); /* no soft read/write */
    o.kind = FL_KERNEL;
    ck_assert_int_eq(fl_lock_new(&rw, P("rw.lock"), &o), 0);
    ck_assert_int_eq(fl_hub_cancel(NULL), FL_EINVAL);
    ck_assert_int_eq(fl_hub_dispatch(NULL), FL_EINVAL);
    ck_assert(fl_hub_timeout(hub) == -1);
    ck_assert_int_eq(fl_hub_dispatch(hub), 0);
    fl_hub_free(hub);
    fl_hub_free(NULL);
    fl_lock_free(rw);
    fl_lock_free(l);
}
END_TEST

/* ---- issue 16's on_acquired and issue 20's leases through the hub ---------- */

typedef struct hub_hook {
    int calls;
    int last_fd;
    int refuse;
} hub_hook;

static int count_hook(void *data, fl_lock *lock, int fd) {
    hub_hook *st = data;
    (void)lock;
    st->calls++;
    st->last_fd = fd;
    return st->refuse;
}

/* A hook that calls back into the hub during the attempt it runs in. */
typedef struct hub_meddler {
    fl_hub *hub;
    fl_hub_waiter **cancel; /* cancels *cancel (then clears it) */
    int dispatch;           /* runs a nested dispatch */
    int calls, nested_rc;
} hub_meddler;

static int meddling_hook(void *data, fl_lock *lock, int fd) {
    hub_meddler *m = data;
    (void)lock;
    (void)fd;
    m->calls++;
    if (m->cancel && *m->cancel) {
        ck_assert_int_eq(fl_hub_cancel(*m->cancel), 0);
        *m->cancel = NULL;
    }
    if (m->dispatch)
        m->nested_rc = fl_hub_dispatch(m->hub);
    return 0;
}

/* The hook of a hub win cancels that very wait (the bindings' waiting
 * coroutine or fiber ended from the hook): the waiter goes without a
 * callback, the win is given back (the next waiter gets it in the same
 * dispatch); a nested dispatch from the hook does nothing to the entry
 * being tried; an at-once win whose hook cancels the last waiter of
 * another entry does not lose the entry it is using (ASan/valgrind lanes
 * see the use after free these were). */
START_TEST(hub_hook_reentry) {
    const char *p = P("x.lock"), *q = P("y.lock");
    fl_lock *holder = fl_new_kind(p, FL_KERNEL), *qholder = fl_new_kind(q, FL_KERNEL), *l, *ql;
    fl_options o = FL_OPTIONS_INIT;
    fl_acquire_args fa = forever_args();
    hub_meddler m;
    fl_hub_waiter *w, *w2, *wq, *target = NULL;
    record r;
    int i;
    memset(&r, 0, sizeof r);
    memset(&m, 0, sizeof m);
    o.thread_local = 1;
    o.on_acquired = meddling_hook;
    o.on_acquired_data = &m;
    ck_assert_int_eq(fl_lock_new(&l, p, &o), 0);
    ql = new_local(q, FL_KERNEL);
    ck_assert_int_eq(fl_hub_new(&m.hub), 0);
    m.cancel = &target;
    m.dispatch = 1;

    /* Cancelled by its own hook (with a nested dispatch), a second waiter
     * (no hook runs for it: the meddling is over) behind it. */
    ck_assert_int_eq(fl_acquire(holder), 0);
    ck_assert_int_eq(fl_hub_acquire(m.hub, l, 1, &fa, on_done, &r, &w), 0);
    ck_assert_int_eq(fl_hub_acquire(m.hub, l, 2, &fa, on_done, &r, &w2), 0);
    ck_assert_ptr_nonnull(w);
    ck_assert_ptr_nonnull(w2);
    target = w;
    ck_assert_int_eq(fl_release(holder, 0), 0);
    drive(m.hub, &r.n, 1, 10);
    ck_assert_int_eq(m.calls, 2); /* owner 1's win, then owner 2's */
    ck_assert_int_eq(m.nested_rc, 0);
    ck_assert_int_eq(r.n, 1);
    ck_assert_int_eq(r.owner[0], 2);
    ck_assert_int_eq(r.rc[0], 0);
    ck_assert_int_eq(fl_lock_counter_as(l, 1), 0);
    ck_assert_int_eq(fl_lock_counter_as(l, 2), 1);
    ck_assert_int_eq(fl_hub_release(m.hub, l, 2, 0), 0);
    ck_assert_int_eq(fl_helper_try(p, FL_KERNEL), 0);

    /* Won at once; the hook cancels the only waiter of another file. */
    ck_assert_int_eq(fl_acquire(qholder), 0);
    ck_assert_int_eq(fl_hub_acquire(m.hub, ql, 3, &fa, on_done, &r, &wq), 0);
    ck_assert_ptr_nonnull(wq);
    target = wq;
    m.dispatch = 0;
    ck_assert_int_eq(fl_hub_acquire(m.hub, l, 4, &fa, on_done, &r, &w), 0);
    ck_assert_ptr_null(w);
    ck_assert_ptr_null(target);
    ck_assert_int_eq(fl_lock_counter_as(l, 4), 1);
    ck_assert_int_eq(fl_helper_try(p, FL_KERNEL), 3);
    ck_assert_int_eq(fl_hub_release(m.hub, l, 4, 0), 0);
    ck_assert_int_eq(fl_release(qholder, 0), 0);
    for (i = 0; i < 3; i++)
        ck_assert_int_ge(fl_hub_dispatch(m.hub), 0);
    ck_assert_int_eq(r.n, 1);
    ck_assert_int_eq(fl_hub_timeout(m.hub), -1);
    ck_assert_int_eq(fl_helper_try(p, FL_KERNEL), 0);
    ck_assert_int_eq(fl_helper_try(q, FL_KERNEL), 0);
    fl_hub_free(m.hub);
    fl_lock_free(l);
    fl_lock_free(ql);
    fl_lock_free(holder);
    fl_lock_free(qholder);
}
END_TEST

/* A kernel-lock win through the hub runs on_acquired as the blocking
 * acquire does (in acquire_core, after the physical win): at once, after a
 * wait, and a refusal leaves the lock free and ends the wait with its code. */
START_TEST(hub_win_runs_on_acquired) {
    const char *p = P("x.lock");
    fl_lock *holder = fl_new_kind(p, FL_KERNEL), *l;
    fl_options o = FL_OPTIONS_INIT;
    fl_acquire_args fa = forever_args();
    hub_hook st = {0, -1, 0};
    fl_hub_waiter *w;
    fl_hub *hub;
    record r;
    memset(&r, 0, sizeof r);
    o.thread_local = 1;
    o.on_acquired = count_hook;
    o.on_acquired_data = &st;
    ck_assert_int_eq(fl_lock_new(&l, p, &o), 0);
    ck_assert_int_eq(fl_hub_new(&hub), 0);

    /* Won at once. */
    ck_assert_int_eq(fl_hub_acquire(hub, l, 1, &fa, on_done, &r, &w), 0);
    ck_assert_ptr_null(w);
    ck_assert_int_eq(st.calls, 1);
    ck_assert_int_ge(st.last_fd, 0);
    ck_assert_int_eq(fl_hub_release(hub, l, 1, 0), 0);

    /* Won after a wait, in a dispatch. */
    ck_assert_int_eq(fl_acquire(holder), 0);
    ck_assert_int_eq(fl_hub_acquire(hub, l, 2, &fa, on_done, &r, &w), 0);
    ck_assert_ptr_nonnull(w);
    ck_assert_int_eq(st.calls, 1); /* busy attempts do not run it */
    ck_assert_int_eq(fl_release(holder, 0), 0);
    drive(hub, &r.n, 1, 10);
    ck_assert_int_eq(r.n, 1);
    ck_assert_int_eq(r.rc[0], 0);
    ck_assert_int_eq(st.calls, 2);
    ck_assert_int_eq(fl_lock_counter_as(l, 2), 1);
    ck_assert_int_eq(fl_helper_try(p, FL_KERNEL), 3);
    ck_assert_int_eq(fl_hub_release(hub, l, 2, 0), 0);

    /* Refused at once: the call fails, nothing is held. */
    st.refuse = FL_EIO;
    ck_assert_int_eq(fl_hub_acquire(hub, l, 3, &fa, on_done, &r, &w), FL_EIO);
    ck_assert_msg(strstr(fl_last_error(), "on_acquired") != NULL, "%s", fl_last_error());
    ck_assert_int_eq(fl_lock_counter_as(l, 3), 0);
    ck_assert_int_eq(fl_helper_try(p, FL_KERNEL), 0);

    /* Refused after a wait: the wait ends with the code, nothing is held. */
    ck_assert_int_eq(fl_acquire(holder), 0);
    ck_assert_int_eq(fl_hub_acquire(hub, l, 4, &fa, on_done, &r, &w), 0);
    ck_assert_ptr_nonnull(w);
    ck_assert_int_eq(fl_release(holder, 0), 0);
    drive(hub, &r.n, 2, 10);
    ck_assert_int_eq(r.n, 2);
    ck_assert_int_eq(r.rc[1], FL_EIO);
    ck_assert_int_eq(st.calls, 4);
    ck_assert_int_eq(fl_lock_counter_as(l, 4), 0);
    ck_assert_int_eq(fl_helper_try(p, FL_KERNEL), 0);
    fl_hub_free(hub);
    fl_lock_free(l);
    fl_lock_free(holder);
}
END_TEST

/* A lease won through the hub publishes its lease record and is released
 * through it like a blocking acquire's. */
START_TEST(lease_through_the_hub) {
    const char *p = P("x.lock");
    fl_lock *holder, *l;
    fl_options o = FL_OPTIONS_INIT;
    fl_acquire_args fa = forever_args();
    fl_hub_waiter *w;
    fl_hub *hub;
    char text[512];
    record r;
    memset(&r, 0, sizeof r);
    o.kind = FL_SOFT;
    o.lease_duration = 30;
    ck_assert_msg(fl_lock_new(&holder, p, &o) == 0, "%s", fl_last_error());
    o.thread_local = 1;
    ck_assert_msg(fl_lock_new(&l, p, &o) == 0, "%s", fl_last_error());
    ck_assert_int_eq(fl_hub_new(&hub), 0);
    ck_assert_int_eq(fl_acquire(holder), 0);
    ck_assert_int_eq(fl_hub_acquire(hub, l, 1, &fa, on_done, &r, &w), 0);
    ck_assert_ptr_nonnull(w);
    ck_assert_int_eq(fl_release(holder, 0), 0);
    drive(hub, &r.n, 1, 10);
    ck_assert_int_eq(r.n, 1);
    ck_assert_int_eq(r.rc[0], 0);
    ck_assert_int_gt(fl_read_file(p, text, sizeof text), 0);
    ck_assert_msg(strstr(text, "mode=lease") != NULL, "%s", text);
    ck_assert_int_eq(fl_helper_try(p, FL_SOFT), 3);
    ck_assert_int_eq(fl_hub_release(hub, l, 1, 0), 0);
    ck_assert_int_ne(access(p, F_OK), 0);
    fl_hub_free(hub);
    fl_lock_free(l);
    fl_lock_free(holder);
}
END_TEST

/* A soft entry's watch matches events by the marker's name: the entry must
 * keep its own copy, not the handle's that made it, which may be freed
 * (its wait cancelled or ended) while other handles wait (ASan and
 * valgrind saw the read of freed memory at the release's event). */
START_TEST(soft_entry_outlives_the_handle_that_made_it) {
    const char *p = P("x.lock");
    fl_lock *holder = fl_new_kind(p, FL_SOFT), *a = new_local(p, FL_SOFT),
            *b = new_local(p, FL_SOFT);
    fl_acquire_args fa = forever_args();
    fl_hub_waiter *wa, *wb;
    fl_hub *hub;
    record r;
    memset(&r, 0, sizeof r);
    ck_assert_int_eq(fl_hub_new(&hub), 0);
    ck_assert_int_eq(fl_acquire(holder), 0);
    ck_assert_int_eq(fl_hub_acquire(hub, a, 1, &fa, on_done, &r, &wa), 0);
    ck_assert_int_eq(fl_hub_acquire(hub, b, 2, &fa, on_done, &r, &wb), 0);
    ck_assert_ptr_nonnull(wa);
    ck_assert_ptr_nonnull(wb);
    ck_assert_int_eq(fl_hub_cancel(wa), 0);
    fl_lock_free(a);
    ck_assert_int_eq(fl_release(holder, 0), 0); /* the marker's deletion: an event */
    drive(hub, &r.n, 1, 10);
    ck_assert_int_eq(r.n, 1);
    ck_assert(r.owner[0] == 2 && r.rc[0] == 0);
    ck_assert_int_eq(fl_helper_try(p, FL_SOFT), 3);
    ck_assert_int_eq(fl_hub_release(hub, b, 2, 0), 0);
    ck_assert_int_eq(fl_helper_try(p, FL_SOFT), 0);
    fl_hub_free(hub);
    fl_lock_free(b);
    fl_lock_free(holder);
}
END_TEST

/* ---- the re-entrancy matrix: every hub call from every callback ----------- */

/* Where the meddling runs: the on_acquired hook, the log handler, the done
 * callback. */
enum { MX_HOOK, MX_LOG, MX_DONE, MX_SITES };
/* When: the win at once (in fl_hub_acquire), the win in a dispatch after a
 * wait, for the done callback also a timeout and the hub being freed, for
 * the log handler also the holder's fl_hub_release() before that dispatch. */
enum { MX_AT_ONCE, MX_DISPATCH, MX_TIMEOUT, MX_FREE, MX_RELEASE };
/* What is waited for: a kernel lock, a soft lock, a read/write lock whose
 * gate, or whose lock itself, is held by someone else. */
enum { MX_KERNEL, MX_SOFT, MX_RW_GATE, MX_RW_LOCK, MX_KINDS };
/* The hub call made from there. */
enum {
    MX_NOTHING,
    MX_ACQ_SAME_OWNER,  /* the file being won, the owner winning it */
    MX_ACQ_OTHER_OWNER, /* the file being won, another owner and handle */
    MX_ACQ_FREE_FILE,   /* another file, free: won at once (in the callback) */
    MX_ACQ_BUSY_FILE,   /* another file, held: queued */
    MX_CANCEL_SELF,     /* the wait being won (or ended) */
    MX_CANCEL_NEXT,     /* the next wait of the same file */
    MX_CANCEL_LAST,     /* the last wait of another file */
    MX_RELEASE_SELF,    /* the hold being won */
    MX_RELEASE_OTHER,   /* another owner's hold of another file */
    MX_DISPATCH_NESTED,
    MX_TIMEOUT_ASK,
    MX_HUB_FREE,
    MX_LOCK_FREE, /* the handle whose wait ended (done callback only) */
    MX_ACTIONS
};
static const char *const mx_action_name[] = {"nothing",
                                             "acquire same file same owner",
                                             "acquire same file other owner",
                                             "acquire free file",
                                             "acquire busy file",
                                             "cancel the wait being won",
                                             "cancel next wait",
                                             "cancel last wait of another file",
                                             "release the hold being won",
                                             "release another hold",
                                             "dispatch",
                                             "timeout",
                                             "hub free",
                                             "lock free"};

#define MX_WAITS 16
typedef struct mx_wait {
    fl_lock *l;
    uint64_t owner;
    fl_hub_waiter *w; /* pending */
    int dones, rc, cancelled;
} mx_wait;

typedef struct mx_hold {
    fl_lock *l;
    uint64_t owner;
    int level; /* what the API reported: wins minus releases */
} mx_hold;

static struct {
    int site, when, kind, refuse, action;
    fl_log_event pick; /* log site: the event to meddle at */
    int armed, meddled;
    fl_hub *hub;
    int hub_freed; /* fl_hub_free() called from a callback: gone once the outer call returned */
    fl_lock *t, *t2, *t3, *qt, *qh, *rt, *ot, *oh, *blocker;
    const char *p, *q, *r, *o;
    mx_wait waits[MX_WAITS];
    int nwaits;
    mx_hold holds[MX_WAITS];
    int nholds;
    mx_wait *self; /* the target's wait (owner 1), next: owner 2's, last: another file's */
    mx_wait *next, *last;
} mx;

static mx_hold *mx_hold_of(fl_lock *l, uint64_t owner) {
    int i;
    for (i = 0; i < mx.nholds; i++)
        if (mx.holds[i].l == l && mx.holds[i].owner == owner)
            return &mx.holds[i];
    ck_assert_int_lt(mx.nholds, MX_WAITS);
    mx.holds[mx.nholds].l = l;
    mx.holds[mx.nholds].owner = owner;
    mx.holds[mx.nholds].level = 0;
    return &mx.holds[mx.nholds++];
}

static void mx_done(void *data, fl_lock *l, uint64_t owner, int rc);

/* A hub acquire (forever) recorded as a wait; returns the call's code. */
static int mx_acquire(fl_lock *l, uint64_t owner, double timeout, mx_wait **out) {
    fl_acquire_args a = forever_args();
    mx_wait *m;
    int rc;
    ck_assert_int_lt(mx.nwaits, MX_WAITS);
    m = &mx.waits[mx.nwaits++];
    memset(m, 0, sizeof *m);
    m->l = l;
    m->owner = owner;
    a.timeout = timeout;
    rc = fl_hub_acquire(mx.hub, l, owner, &a, mx_done, m, &m->w);
    if (rc == 0 && !m->w)
        mx_hold_of(l, owner)->level++; /* won at once */
    if (rc != 0 || !m->w)
        m->dones = -1; /* no wait: never called back */
    if (out)
        *out = m;
    return rc;
}

static void mx_cancel(mx_wait *m) {
    if (!m || !m->w || m->cancelled || m->dones != 0)
        return;
    ck_assert_int_eq(fl_hub_cancel(m->w), 0);
    m->cancelled = 1;
}

static void mx_release(fl_lock *l, uint64_t owner) {
    mx_hold *h = mx_hold_of(l, owner);
    if (h->level == 0)
        return;
    h->level--; /* first: the log handler may release it again (then a no-op) */
    if (mx.hub_freed)
        ck_assert_int_eq(fl_release_as(l, owner, 0), 0);
    else
        ck_assert_int_eq(fl_hub_release(mx.hub, l, owner, 0), 0);
}

/* The hub call under test, once. */
static void mx_meddle(mx_wait *ended) {
    mx_wait *m;
    if (!mx.armed)
        return;
    mx.armed = 0;
    mx.meddled = 1;
    switch (mx.action) {
    case MX_ACQ_SAME_OWNER:
        (void)mx_acquire(mx.t, 1, -1, NULL);
        break;
    case MX_ACQ_OTHER_OWNER:
        (void)mx_acquire(mx.t3, 3, -1, NULL);
        break;
    case MX_ACQ_FREE_FILE:
    case MX_ACQ_BUSY_FILE: {
        int busy = mx.action == MX_ACQ_BUSY_FILE;
        int rc = mx_acquire(busy ? mx.qt : mx.rt, busy ? 5 : 4, -1, &m);
        /* Refused only by a hub being freed (fl_hub_free() called back). */
        ck_assert_msg(rc == 0 || (rc == FL_ECANCELED && (mx.hub_freed || mx.when == MX_FREE)),
                      "rc %d: %s", rc, fl_last_error());
        if (rc == 0 && busy)
            ck_assert_ptr_nonnull(m->w);
        else if (rc == 0)
            ck_assert_ptr_null(m->w);
        break;
    }
    case MX_CANCEL_SELF:
        mx_cancel(ended ? ended : mx.self);
        break;
    case MX_CANCEL_NEXT:
        mx_cancel(mx.next);
        break;
    case MX_CANCEL_LAST:
        mx_cancel(mx.last);
        break;
    case MX_RELEASE_SELF:
        if (ended)
            mx_release(ended->l, ended->owner);
        else {
            /* From the hook the win is not counted yet: a no-op. From the
             * log handler once counted (the gate's release after an at-once
             * win): a release the API reports next. */
            int before = fl_lock_counter_as(mx.t, 1);
            ck_assert_int_eq(fl_hub_release(mx.hub, mx.t, 1, 0), 0);
            mx_hold_of(mx.t, 1)->level -= before - fl_lock_counter_as(mx.t, 1);
        }
        break;
    case MX_RELEASE_OTHER:
        mx_release(mx.ot, 6);
        break;
    case MX_DISPATCH_NESTED:
        (void)fl_hub_dispatch(mx.hub);
        break;
    case MX_TIMEOUT_ASK:
        (void)fl_hub_timeout(mx.hub);
        break;
    case MX_HUB_FREE:
        fl_hub_free(mx.hub);
        mx.hub_freed = 1;
        break;
    case MX_LOCK_FREE:
        if (ended && ended->l == mx.t) {
            /* Its wait ended; no other wait uses it. Its holds go with it. */
            int i;
            for (i = 0; i < mx.nholds; i++)
                if (mx.holds[i].l == mx.t)
                    mx.holds[i].l = NULL;
            fl_lock_free(mx.t);
            mx.t = NULL;
        }
        break;
    default:
        break;
    }
}

static void mx_done(void *data, fl_lock *l, uint64_t owner, int rc) {
    mx_wait *m = data;
    ck_assert_ptr_eq(l, m->l);
    ck_assert(owner == m->owner);
    ck_assert_int_eq(m->cancelled, 0); /* a cancelled wait is never called back */
    m->dones++;
    m->rc = rc;
    m->w = NULL;
    if (rc == 0)
        mx_hold_of(l, owner)->level++;
    if (mx.site == MX_DONE && m == mx.self)
        mx_meddle(m);
}

static int mx_hook(void *data, fl_lock *lock, int fd) {
    (void)data;
    (void)fd;
    if (mx.site == MX_HOOK && lock == mx.t)
        mx_meddle(NULL);
    return mx.refuse && lock == mx.t ? FL_ECANCELED : 0;
}

static void mx_log(void *data, fl_log_event ev, uint64_t id, const char *path, double s) {
    (void)data, (void)id, (void)path, (void)s;
    if (ev == mx.pick && mx.hub)
        mx_meddle(NULL);
}

static fl_lock *mx_lock(const char *path, int kind, int hook) {
    fl_lock *l;
    fl_options o = FL_OPTIONS_INIT;
    o.thread_local = 1;
    o.kind = kind == MX_SOFT ? FL_SOFT : FL_KERNEL;
    o.read_write = kind == MX_RW_GATE || kind == MX_RW_LOCK;
    if (hook && kind != MX_SOFT) {
        o.on_acquired = mx_hook;
        o.on_acquired_data = &mx;
    }
    ck_assert_msg(fl_lock_new(&l, path, &o) == 0, "%s", fl_last_error());
    return l;
}

/* The second process's view agrees with what the API reported. */
static void mx_check_file(const char *path, int kind) {
    int i, held = 0;
    for (i = 0; i < mx.nholds; i++)
        if (mx.holds[i].l && mx.holds[i].level > 0 &&
            strcmp(fl_lock_path(mx.holds[i].l), path) == 0)
            held = 1;
    ck_assert_msg(fl_helper_try(path, kind) == (held ? 3 : 0), "%s: held %d (%s)", path, held,
                  mx_action_name[mx.action]);
}

static void mx_check_counters(void) {
    int i;
    for (i = 0; i < mx.nholds; i++) {
        mx_hold *h = &mx.holds[i];
        if (!h->l)
            continue; /* freed with its holds */
        ck_assert_msg(fl_lock_counter_as(h->l, h->owner) == h->level,
                      "owner %d: counter %d, reported %d (%s)", (int)h->owner,
                      fl_lock_counter_as(h->l, h->owner), h->level, mx_action_name[mx.action]);
    }
}

static int mx_pending(void) {
    int i, n = 0;
    for (i = 0; i < mx.nwaits; i++)
        if (mx.waits[i].dones == 0 && !mx.waits[i].cancelled)
            n++;
    return n;
}

/* Releases every reported hold and dispatches until no wait is pending
 * (the hub freed from a callback: its waits ended then). */
static void mx_drain(void) {
    double end = fl_mono() + 10;
    int i;
    for (;;) {
        for (i = 0; i < mx.nholds; i++)
            while (mx.holds[i].l && mx.holds[i].level > 0)
                mx_release(mx.holds[i].l, mx.holds[i].owner);
        if (mx.hub_freed)
            mx.hub = NULL;
        if (mx_pending() == 0 || mx.hub_freed || fl_mono() > end)
            break;
        {
            struct pollfd pf;
            double t = fl_hub_timeout(mx.hub);
            pf.fd = fl_hub_fd(mx.hub);
            pf.events = POLLIN;
            pf.revents = 0;
            (void)poll(&pf, 1, t < 0 || t > 0.05 ? 50 : (int)(t * 1000) + 1);
            ck_assert_int_ge(fl_hub_dispatch(mx.hub), 0);
        }
    }
    ck_assert_msg(mx_pending() == 0, "%s: %d waits never ended", mx_action_name[mx.action],
                  mx_pending());
}

static int mx_kernel_kind(void) { return mx.kind == MX_SOFT ? FL_SOFT : FL_KERNEL; }

static void mx_run(int action) {
    char name[5][80];
    mx_wait *self;
    int i, rc;
    int at_once = mx.when == MX_AT_ONCE;
    memset(&mx.waits, 0, sizeof mx.waits);
    memset(&mx.holds, 0, sizeof mx.holds);
    mx.nwaits = mx.nholds = 0;
    mx.action = action;
    mx.armed = mx.meddled = mx.hub_freed = 0;
    mx.self = mx.next = mx.last = NULL;
    for (i = 0; i < 4; i++)
        snprintf(name[i], sizeof name[i], "%c%d.lock", "pqro"[i], action % 100);
    mx.p = P(name[0]);
    mx.q = P(name[1]);
    mx.r = P(name[2]);
    mx.o = P(name[3]);
    snprintf(name[4], sizeof name[4], "p%d.lock.gate", action % 100);
    ck_assert_int_eq(fl_hub_new(&mx.hub), 0);
    mx.t = mx_lock(mx.p, mx.kind, 1);
    mx.t2 = mx_lock(mx.p, mx.kind, 1);
    mx.t3 = mx_lock(mx.p, mx.kind, 1);
    mx.qt = new_local(mx.q, FL_KERNEL);
    mx.qh = fl_new_kind(mx.q, FL_KERNEL);
    mx.rt = new_local(mx.r, FL_KERNEL);
    mx.ot = new_local(mx.o, FL_KERNEL);
    /* What the wait waits for: the lock, or the read/write lock's gate
     * (at once: the gate is free, the lock is held, the wait goes on for
     * the lock once through the gate). */
    mx.blocker =
        fl_new_kind(mx.kind == MX_RW_GATE && !at_once ? P(name[4]) : mx.p, mx_kernel_kind());

    /* Another owner holds another file; another file's last wait. */
    ck_assert_int_eq(mx_acquire(mx.ot, 6, -1, NULL), 0);
    ck_assert_int_eq(fl_acquire(mx.qh), 0);
    mx_hold_of(mx.qh, 0)->level = 1;
    ck_assert_int_eq(mx_acquire(mx.qt, 9, -1, &mx.last), 0);
    ck_assert_ptr_nonnull(mx.last->w);
    if (!at_once || mx.kind == MX_RW_GATE) {
        ck_assert_int_eq(fl_acquire(mx.blocker), 0);
        mx_hold_of(mx.blocker, 0)->level = 1;
    }

    /* The target's acquire (owner 1): the win at once runs in here. */
    mx.armed = at_once && mx.site != MX_DONE;
    rc = mx_acquire(mx.t, 1, mx.when == MX_TIMEOUT ? 0.02 : -1, &self);
    mx.self = self;
    if (mx.hub_freed) {
        mx.hub = NULL;
        /* Freed from its own hook or log handler: a win stands, a wait is
         * refused. */
        ck_assert_msg(rc == 0 || rc == FL_ECANCELED, "rc %d", rc);
        ck_assert_ptr_null(self->w);
    } else if (mx.refuse && at_once && mx.kind != MX_RW_GATE) {
        ck_assert_int_eq(rc, FL_ECANCELED);
    } else {
        ck_assert_msg(rc == 0, "%s: %s", mx_action_name[action], fl_last_error());
    }
    if (at_once)
        mx.armed = 0;
    mx_check_counters();
    mx_check_file(mx.p, mx_kernel_kind());
    if (!mx.hub_freed) {
        /* The next wait for the same file (another owner). */
        ck_assert_int_eq(mx_acquire(mx.t2, 2, -1, &mx.next), 0);
        if (!at_once || mx.kind == MX_RW_GATE)
            ck_assert_ptr_nonnull(self->w);
    }
    if (!mx.hub_freed && self->w) {
        /* The win after a wait (or the wait's end), in a dispatch; the
         * meddling there (MX_RELEASE: already in the holder's release). */
        if (mx.when == MX_TIMEOUT)
            fl_sleep(0.03);
        mx.armed = mx.when == MX_RELEASE;
        if (mx.when == MX_DISPATCH || mx.when == MX_RELEASE || at_once)
            mx_release(mx.blocker, 0);
        mx.armed = mx.armed || (!at_once && !mx.meddled);
        if (mx.when == MX_FREE && !mx.hub_freed) {
            fl_hub_free(mx.hub);
            mx.hub_freed = 1;
        }
        for (i = 0; i < 5 && self->dones == 0 && !self->cancelled && !mx.hub_freed; i++)
            ck_assert_int_ge(fl_hub_dispatch(mx.hub), 0);
        if (mx.hub_freed)
            mx.hub = NULL;
        if (!mx.hub_freed && !self->cancelled)
            ck_assert_msg(self->dones == 1, "%s: the wait did not end (%d)", mx_action_name[action],
                          self->dones);
        /* Right after the meddling: what the API said is what the kernel has. */
        mx_check_counters();
        mx_check_file(mx.p, mx_kernel_kind());
    }
    mx_drain();
    if (!mx.hub_freed) {
        mx.armed = 0;
        ck_assert(fl_hub_timeout(mx.hub) == -1);
        fl_hub_free(mx.hub);
    }
    mx.hub = NULL;
    /* Every wait ended exactly once, or was cancelled (then never). */
    for (i = 0; i < mx.nwaits; i++)
        ck_assert_msg(mx.waits[i].dones == -1 || mx.waits[i].cancelled ? mx.waits[i].dones <= 0
                                                                       : mx.waits[i].dones == 1,
                      "%s: wait %d (owner %d) ended %d times", mx_action_name[action], i,
                      (int)mx.waits[i].owner, mx.waits[i].dones);
    mx_check_counters();
    /* Nothing left held. */
    ck_assert_int_eq(fl_helper_try(mx.p, mx_kernel_kind()), 0);
    ck_assert_int_eq(fl_helper_try(mx.q, FL_KERNEL), 0);
    if (mx.t)
        fl_lock_free(mx.t);
    fl_lock_free(mx.t2);
    fl_lock_free(mx.t3);
    fl_lock_free(mx.qt);
    fl_lock_free(mx.qh);
    fl_lock_free(mx.rt);
    fl_lock_free(mx.ot);
    fl_lock_free(mx.blocker);
}

/* The matrix, one test per (site, when, kind, refusal[, log event]); each
 * runs every action on files of its own. */
static int mx_decode(int i) {
    static const int whens[MX_SITES][5] = {{MX_AT_ONCE, MX_DISPATCH, -1},
                                           {MX_AT_ONCE, MX_DISPATCH, MX_RELEASE, -1},
                                           {MX_DISPATCH, MX_TIMEOUT, MX_FREE, -1}};
    static const fl_log_event picks[] = {FL_LOG_ATTEMPT, FL_LOG_ACQUIRED, FL_LOG_FAILED,
                                         FL_LOG_RELEASE_ATTEMPT, FL_LOG_RELEASED};
    int site, w, kind, refuse, pick, n = 0;
    for (site = 0; site < MX_SITES; site++)
        for (w = 0; whens[site][w] >= 0; w++)
            for (kind = 0; kind < MX_KINDS; kind++)
                for (refuse = 0; refuse < 2; refuse++)
                    for (pick = 0; pick < (site == MX_LOG ? 5 : 1); pick++) {
                        if ((site == MX_HOOK || refuse) && kind == MX_SOFT)
                            continue; /* the soft lock has no hook */
                        if (n++ != i)
                            continue;
                        mx.site = site;
                        mx.when = whens[site][w];
                        mx.kind = kind;
                        mx.refuse = refuse;
                        mx.pick = picks[pick];
                        return 1;
                    }
    return i < 0 ? n : 0;
}

START_TEST(hub_reentry_matrix) {
    int a;
    memset(&mx, 0, sizeof mx);
    ck_assert(mx_decode(_i));
    fl_set_log_handler(mx.site == MX_LOG ? mx_log : NULL, NULL);
    for (a = 0; a < MX_ACTIONS; a++) {
        if (a == MX_LOCK_FREE && mx.site != MX_DONE)
            continue; /* the hook and the log handler must not free the handle */
        mx_run(a);
        if (getenv("FL_MX_VERBOSE"))
            fprintf(stderr, "mx site %d when %d kind %d refuse %d pick %d action %-33s %s\n",
                    mx.site, mx.when, mx.kind, mx.refuse, (int)mx.pick, mx_action_name[a],
                    mx.meddled ? "meddled" : "-");
    }
    fl_set_log_handler(NULL, NULL);
}
END_TEST

Suite *suite_hub(void) {
    Suite *s = suite_create("hub");
    TCase *tc = fl_tcase("owners");
    tcase_add_loop_test(tc, owner_recursion, FL_KERNEL, FL_SOFT + 1);
    tcase_add_loop_test(tc, owner_deadlock_is_per_task, FL_KERNEL, FL_SOFT + 1);
    tcase_add_test(tc, bad_arguments);
    suite_add_tcase(s, tc);
    tc = fl_tcase("waits");
    tcase_add_loop_test(tc, first_come_first_served, FL_KERNEL, FL_SOFT + 1);
    tcase_add_loop_test(tc, cancel_passes_the_lock_on, FL_KERNEL, FL_SOFT + 1);
    tcase_add_loop_test(tc, timeout_and_free_end_waits, FL_KERNEL, FL_SOFT + 1);
    tcase_add_loop_test(tc, deadlines_kept_as_waiters_leave, FL_KERNEL, FL_SOFT + 1);
    tcase_add_loop_test(tc, thousand_waiters_exclude_exactly, FL_KERNEL, FL_SOFT + 1);
    tcase_add_loop_test(tc, waits_complete_without_inotify, 0, 3);
    tcase_add_test(tc, release_without_close);
    tcase_add_test(tc, event_that_finds_the_lock_held_is_retried_soon);
    tcase_add_test(tc, sync_threads_and_hub_tasks_exclude);
    tcase_add_test(tc, fork_child_makes_its_own_hub);
    tcase_add_loop_test(tc, callbacks_reenter_the_hub, FL_KERNEL, FL_SOFT + 1);
    tcase_add_test(tc, lock_file_replaced_while_waiting);
    tcase_add_test(tc, killed_soft_holder_is_reclaimed);
    tcase_add_test(tc, dead_soft_holder_wakes_the_hub_by_pidfd);
    tcase_add_test(tc, pidfd_leaves_the_epoll_set_though_a_child_has_a_copy);
    tcase_add_test(tc, read_write_through_the_hub);
    tcase_add_test(tc, cancelled_writer_opens_the_gate);
    tcase_add_test(tc, rw_hub_writer_and_thread_of_the_same_handle);
    tcase_add_loop_test(tc, rw_hub_waiters_and_thread_of_the_same_handle, 0, 2);
    tcase_add_test(tc, hub_win_runs_on_acquired);
    tcase_add_test(tc, hub_hook_reentry);
    tcase_add_test(tc, lease_through_the_hub);
    tcase_add_test(tc, soft_entry_outlives_the_handle_that_made_it);
    suite_add_tcase(s, tc);
    tc = fl_tcase("reentry");
    tcase_add_loop_test(tc, hub_reentry_matrix, 0, mx_decode(-1));
    suite_add_tcase(s, tc);
    return s;
}
