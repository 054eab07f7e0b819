/*
 * The thread model: a thread-local handle (default) shared by two threads
 * contends like two handles; a shared handle (thread_local = 0) is
 * recursive across threads; many threads hammering one handle keep exact
 * mutual exclusion and a consistent counter (run under TSan too). The
 * "inside" counters are atomics because TSan cannot see that flock orders
 * the threads.
 */
#define _GNU_SOURCE
#include "testutil.h"

#include <stdio.h>
#include <string.h>

typedef struct probe {
    fl_lock *lock;
    int rc_try, locked_seen, counter_seen, rc_release, rc_wait;
    int started; /* atomic */
} probe;

static void *probe_main(void *arg) {
    probe *pr = arg;
    pr->locked_seen = fl_is_locked(pr->lock);
    pr->counter_seen = fl_lock_counter(pr->lock);
    pr->rc_release = fl_release(pr->lock, 1); /* not ours: a no-op */
    pr->rc_try = fl_acquire_ex(pr->lock, 0, 1, 0.05);
    if (pr->rc_try == 0)
        fl_release(pr->lock, 0);
    return NULL;
}

START_TEST(thread_local_handle_contends) {
    fl_lock *l = fl_new_kind(P("x.lock"), _i);
    probe pr;
    pthread_t t;
    memset(&pr, 0, sizeof pr);
    pr.lock = l;
    ck_assert_int_eq(fl_acquire(l), 0);
    ck_assert_int_eq(pthread_create(&t, NULL, probe_main, &pr), 0);
    fl_join(t, 20);
    ck_assert_int_eq(pr.locked_seen, 0);
    ck_assert_int_eq(pr.counter_seen, 0);
    ck_assert_int_eq(pr.rc_release, 0);
    ck_assert_msg(pr.rc_try == FL_ETIMEOUT, "other thread got %s", fl_err_name(pr.rc_try));
    /* Its release was a no-op: we still hold. */
    ck_assert_int_eq(fl_lock_counter(l), 1);
    ck_assert_int_eq(fl_helper_try(P("x.lock"), _i), 3);
    ck_assert_int_eq(fl_release(l, 0), 0);
    /* Free now: the other thread can win. */
    memset(&pr, 0, sizeof pr);
    pr.lock = l;
    ck_assert_int_eq(pthread_create(&t, NULL, probe_main, &pr), 0);
    fl_join(t, 20);
    ck_assert_int_eq(pr.rc_try, 0);
    fl_lock_free(l);
}
END_TEST

static void *shared_main(void *arg) {
    probe *pr = arg;
    pr->locked_seen = fl_is_locked(pr->lock);
    pr->rc_try = fl_acquire_ex(pr->lock, 0, 1, 0.05); /* joins the hold */
    pr->counter_seen = fl_lock_counter(pr->lock);
    pr->rc_release = fl_release(pr->lock, 0);
    return NULL;
}

START_TEST(shared_handle_recursive_across_threads) {
    fl_options o = FL_OPTIONS_INIT;
    fl_lock *l;
    probe pr;
    pthread_t t;
    o.kind = (fl_kind)_i;
    o.thread_local = 0;
    ck_assert_int_eq(fl_lock_new(&l, P("x.lock"), &o), 0);
    ck_assert_int_eq(fl_is_thread_local(l), 0);
    memset(&pr, 0, sizeof pr);
    pr.lock = l;
    ck_assert_int_eq(fl_acquire(l), 0);
    ck_assert_int_eq(pthread_create(&t, NULL, shared_main, &pr), 0);
    fl_join(t, 20);
    ck_assert_int_eq(pr.locked_seen, 1);
    ck_assert_int_eq(pr.rc_try, 0);
    ck_assert_int_eq(pr.counter_seen, 2);
    ck_assert_int_eq(pr.rc_release, 0);
    ck_assert_int_eq(fl_lock_counter(l), 1);
    ck_assert_int_eq(fl_helper_try(P("x.lock"), _i), 3);
    ck_assert_int_eq(fl_release(l, 0), 0);
    ck_assert_int_eq(fl_lock_counter(l), 0);
    ck_assert_int_eq(fl_helper_try(P("x.lock"), _i), 0);
    fl_lock_free(l);
}
END_TEST

/* Released from another thread, a shared handle's lock is unlocked. */
static void *shared_release_main(void *arg) {
    probe *pr = arg;
    pr->rc_release = fl_release(pr->lock, 0);
    return NULL;
}

START_TEST(shared_handle_released_by_other_thread) {
    fl_options o = FL_OPTIONS_INIT;
    fl_lock *l;
    probe pr;
    pthread_t t;
    o.kind = (fl_kind)_i;
    o.thread_local = 0;
    ck_assert_int_eq(fl_lock_new(&l, P("x.lock"), &o), 0);
    memset(&pr, 0, sizeof pr);
    pr.lock = l;
    ck_assert_int_eq(fl_acquire(l), 0);
    ck_assert_int_eq(pthread_create(&t, NULL, shared_release_main, &pr), 0);
    fl_join(t, 20);
    ck_assert_int_eq(pr.rc_release, 0);
    ck_assert_int_eq(fl_lock_counter(l), 0);
    ck_assert_int_eq(fl_helper_try(P("x.lock"), _i), 0);
    /* and the held-lock table forgot it: waiting forever is no deadlock */
    {
        fl_lock *b = fl_new_kind(P("x.lock"), _i);
        ck_assert_int_eq(fl_acquire_ex(b, -1, 1, 0.05), 0);
        fl_lock_free(b);
    }
    fl_lock_free(l);
}
END_TEST

/* ---- hammering ---------------------------------------------------------- */

#define HAMMER_THREADS 4

typedef struct hammer {
    fl_lock *lock;
    int iters;
    double timeout;
    int inside;   /* atomic: threads inside the critical section */
    int overlaps; /* atomic: times two were inside at once */
    int total;    /* atomic */
    int errors;   /* atomic */
    int exclusive;
} hammer;

typedef struct hammer_arg {
    hammer *h;
    double timeout;
} hammer_arg;

static void *hammer_main(void *arg) {
    hammer_arg *a = arg;
    hammer *h = a->h;
    int i;
    for (i = 0; i < h->iters; i++) {
        int rc = fl_acquire_ex(h->lock, a->timeout, 1, 0.05);
        if (rc != 0) {
            __atomic_add_fetch(&h->errors, 1, __ATOMIC_RELAXED);
            continue;
        }
        if (h->exclusive && __atomic_add_fetch(&h->inside, 1, __ATOMIC_ACQ_REL) != 1)
            __atomic_add_fetch(&h->overlaps, 1, __ATOMIC_RELAXED);
        if (fl_lock_counter(h->lock) < 1)
            __atomic_add_fetch(&h->errors, 1, __ATOMIC_RELAXED);
        __atomic_add_fetch(&h->total, 1, __ATOMIC_RELAXED);
        if (h->exclusive)
            __atomic_sub_fetch(&h->inside, 1, __ATOMIC_ACQ_REL);
        if (fl_release(h->lock, 0) != 0)
            __atomic_add_fetch(&h->errors, 1, __ATOMIC_RELAXED);
    }
    return NULL;
}

static void run_hammer(hammer *h) {
    pthread_t t[HAMMER_THREADS];
    hammer_arg a[HAMMER_THREADS];
    int i;
    for (i = 0; i < HAMMER_THREADS; i++) {
        a[i].h = h;
        /* half wait forever (blocking flock), half with a timeout (inotify) */
        a[i].timeout = (i % 2) ? 60.0 : -1.0;
        ck_assert_int_eq(pthread_create(&t[i], NULL, hammer_main, &a[i]), 0);
    }
    for (i = 0; i < HAMMER_THREADS; i++)
        fl_join(t[i], 120);
    ck_assert_int_eq(h->errors, 0);
    ck_assert_int_eq(h->overlaps, 0);
    ck_assert_int_eq(h->total, HAMMER_THREADS * h->iters);
}

START_TEST(hammer_thread_local_handle) {
    hammer h;
    memset(&h, 0, sizeof h);
    h.lock = fl_new_kind(P("x.lock"), _i);
    h.iters = _i == FL_KERNEL ? 500 : 100;
    h.exclusive = 1;
    run_hammer(&h);
    ck_assert_int_eq(fl_lock_counter(h.lock), 0);
    ck_assert_int_eq(fl_helper_try(P("x.lock"), _i), 0);
    fl_lock_free(h.lock);
}
END_TEST

static void *setter_main(void *arg) {
    hammer *h = arg;
    int i;
    for (i = 0; i < 2000; i++) {
        fl_set_poll_interval(h->lock, (i % 2) ? 0.05 : 0.02);
        fl_set_blocking(h->lock, 1);
        (void)fl_get_timeout(h->lock);
        (void)fl_is_locked(h->lock);
    }
    return NULL;
}

START_TEST(hammer_shared_handle) {
    fl_options o = FL_OPTIONS_INIT;
    hammer h;
    pthread_t setter;
    memset(&h, 0, sizeof h);
    o.kind = (fl_kind)_i;
    o.thread_local = 0;
    ck_assert_int_eq(fl_lock_new(&h.lock, P("x.lock"), &o), 0);
    h.iters = _i == FL_KERNEL ? 1000 : 200;
    h.exclusive = 0; /* shared: threads join one another's hold */
    ck_assert_int_eq(pthread_create(&setter, NULL, setter_main, &h), 0);
    run_hammer(&h);
    fl_join(setter, 60);
    ck_assert_int_eq(fl_lock_counter(h.lock), 0);
    ck_assert_int_eq(fl_helper_try(P("x.lock"), _i), 0);
    fl_lock_free(h.lock);
}
END_TEST

/* Several handles (one per thread) on one path. */
typedef struct own_arg {
    hammer *h;
    const char *path;
    int kind;
    double timeout;
} own_arg;

static void *own_handle_main(void *arg) {
    own_arg *a = arg;
    hammer *h = a->h;
    fl_lock *l;
    int i;
    if (fl_lock_new(&l, a->path, NULL) != 0) {
        __atomic_add_fetch(&h->errors, 1, __ATOMIC_RELAXED);
        return NULL;
    }
    for (i = 0; i < h->iters; i++) {
        if (fl_acquire_ex(l, a->timeout, 1, 0.05) != 0) {
            __atomic_add_fetch(&h->errors, 1, __ATOMIC_RELAXED);
            continue;
        }
        if (__atomic_add_fetch(&h->inside, 1, __ATOMIC_ACQ_REL) != 1)
            __atomic_add_fetch(&h->overlaps, 1, __ATOMIC_RELAXED);
        __atomic_add_fetch(&h->total, 1, __ATOMIC_RELAXED);
        __atomic_sub_fetch(&h->inside, 1, __ATOMIC_ACQ_REL);
        fl_release(l, 0);
    }
    fl_lock_free(l);
    return NULL;
}

START_TEST(hammer_handle_per_thread) {
    hammer h;
    pthread_t t[HAMMER_THREADS];
    own_arg a[HAMMER_THREADS];
    const char *p = P("x.lock");
    int i;
    memset(&h, 0, sizeof h);
    h.iters = 500;
    for (i = 0; i < HAMMER_THREADS; i++) {
        a[i].h = &h;
        a[i].path = p;
        a[i].timeout = (i % 2) ? 60.0 : -1.0;
        ck_assert_int_eq(pthread_create(&t[i], NULL, own_handle_main, &a[i]), 0);
    }
    for (i = 0; i < HAMMER_THREADS; i++)
        fl_join(t[i], 120);
    ck_assert_int_eq(h.errors, 0);
    ck_assert_int_eq(h.overlaps, 0);
    ck_assert_int_eq(h.total, HAMMER_THREADS * h.iters);
}
END_TEST

Suite *suite_threads(void) {
    Suite *s = suite_create("threads");
    TCase *tc = fl_tcase("model");
    tcase_add_loop_test(tc, thread_local_handle_contends, FL_KERNEL, FL_SOFT + 1);
    tcase_add_loop_test(tc, shared_handle_recursive_across_threads, FL_KERNEL, FL_SOFT + 1);
    tcase_add_loop_test(tc, shared_handle_released_by_other_thread, FL_KERNEL, FL_SOFT + 1);
    suite_add_tcase(s, tc);
    tc = fl_tcase("hammer");
    tcase_add_loop_test(tc, hammer_thread_local_handle, FL_KERNEL, FL_SOFT + 1);
    tcase_add_loop_test(tc, hammer_shared_handle, FL_KERNEL, FL_SOFT + 1);
    tcase_add_test(tc, hammer_handle_per_thread);
    suite_add_tcase(s, tc);
    return s;
}
