/*
 * Acquire semantics shared by both kinds (_i = kind): timeout < 0 waits
 * forever, 0 makes one attempt, > 0 is bounded, blocking = 0 wins over any
 * timeout; per-handle defaults and setters; recursion, force release, the
 * no-op release; the timeout message. Timing bounds are loose: they only
 * catch hangs or a wait that gave up before its timeout.
 */
#define _GNU_SOURCE
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* Attempts made, counted through the seam: flock calls for the kernel lock,
 * exclusive creates of the marker for the soft lock. */
static int attempts(int kind) { return kind == FL_KERNEL ? fl_calls.flock : fl_calls.excl_open; }

START_TEST(timeout_zero_is_one_attempt) {
    const char *p = P("x.lock");
    fl_lock *a = fl_new_kind(p, _i), *b = fl_new_kind(p, _i);
    ck_assert_int_eq(fl_acquire(a), 0);
    fl_count_syscalls();
    ck_assert_int_eq(fl_acquire_ex(b, 0, 1, 0.05), FL_ETIMEOUT);
    ck_assert_int_eq(attempts(_i), 1);
    ck_assert_int_eq(fl_lock_counter(b), 0);
    ck_assert(!fl_is_locked(b));
    fl__sys_reset();
    fl_lock_free(b);
    fl_lock_free(a);
}
END_TEST

START_TEST(nonblocking_wins_over_timeout) {
    const char *p = P("x.lock");
    fl_lock *a = fl_new_kind(p, _i), *b = fl_new_kind(p, _i);
    double t0;
    ck_assert_int_eq(fl_acquire(a), 0);
    fl_count_syscalls();
    t0 = fl_mono();
    ck_assert_int_eq(fl_acquire_ex(b, 30, 0, 0.05), FL_ETIMEOUT);
    ck_assert_int_eq(fl_acquire_ex(b, -1, 0, 0.05), FL_ETIMEOUT);
    ck_assert_msg(fl_mono() - t0 < 10, "blocking=0 waited");
    ck_assert_int_eq(attempts(_i), 2);
    fl__sys_reset();
    fl_lock_free(b);
    fl_lock_free(a);
}
END_TEST

START_TEST(positive_timeout_is_bounded) {
    const char *p = P("x.lock");
    char want[4200];
    fl_lock *a = fl_new_kind(p, _i), *b = fl_new_kind(p, _i);
    double t0, took;
    ck_assert_int_eq(fl_acquire(a), 0);
    t0 = fl_mono();
    ck_assert_int_eq(fl_acquire_ex(b, 0.3, 1, 0.05), FL_ETIMEOUT);
    took = fl_mono() - t0;
    ck_assert_msg(took >= 0.3, "gave up after %.3f s, before the 0.3 s timeout", took);
    ck_assert_msg(took < 10, "0.3 s timeout took %.1f s", took);
    ck_assert_int_eq(fl_last_code(), FL_ETIMEOUT);
    snprintf(want, sizeof want, "The file lock '%s' could not be acquired.", p);
    ck_assert_str_eq(fl_last_error(), want);
    ck_assert_int_eq(fl_lock_counter(b), 0);
    /* poll_interval 0 is floored, not a spin, and still honours the timeout. */
    t0 = fl_mono();
    ck_assert_int_eq(fl_acquire_ex(b, 0.1, 1, 0), FL_ETIMEOUT);
    ck_assert(fl_mono() - t0 >= 0.1);
    fl_lock_free(b);
    fl_lock_free(a);
}
END_TEST

typedef struct forever_waiter {
    fl_lock *lock;
    double timeout;
    int rc;
    int finished; /* atomic */
} forever_waiter;

static void *forever_main(void *arg) {
    forever_waiter *w = arg;
    w->rc = fl_acquire_ex(w->lock, w->timeout, 1, 0.05);
    __atomic_store_n(&w->finished, 1, __ATOMIC_RELEASE);
    if (w->rc == 0)
        fl_release(w->lock, 0);
    return NULL;
}

/* _i: kind * 2 + (1: default timeout through fl_acquire with INFINITY) */
START_TEST(negative_timeout_waits_until_release) {
    int kind = _i / 2;
    const char *p = P("x.lock");
    fl_lock *a = fl_new_kind(p, kind), *b = fl_new_kind(p, kind);
    forever_waiter w = {b, (_i & 1) ? INFINITY : -1.0, -100, 0};
    fl_logrec rec;
    pthread_t t;
    ck_assert_int_eq(fl_acquire(a), 0);
    fl_log_record(&rec);
    ck_assert_int_eq(pthread_create(&t, NULL, forever_main, &w), 0);
    ck_assert_msg(fl_wait_flag(&rec.waiting, 10), "waiter never waited");
    /* Still waiting well after any poll interval: it does not give up. */
    fl_sleep(0.3);
    ck_assert(!__atomic_load_n(&w.finished, __ATOMIC_ACQUIRE));
    ck_assert_int_eq(fl_release(a, 0), 0);
    ck_assert_msg(fl_wait_flag(&w.finished, 20), "waiter missed the release");
    fl_join(t, 20);
    ck_assert_int_eq(w.rc, 0);
    fl_set_log_handler(NULL, NULL);
    fl_lock_free(b);
    fl_lock_free(a);
}
END_TEST

START_TEST(defaults_and_setters) {
    fl_options o = FL_OPTIONS_INIT;
    fl_lock *l, *other;
    const char *p = P("x.lock");
    double t0;
    o.kind = (fl_kind)_i;
    o.timeout = 2.5;
    o.blocking = 0;
    o.poll_interval = 0.2;
    o.mode = 0600;
    o.thread_local = 0;
    ck_assert_int_eq(fl_lock_new(&l, p, &o), 0);
    ck_assert(fl_get_timeout(l) == 2.5);
    ck_assert_int_eq(fl_get_blocking(l), 0);
    ck_assert(fl_get_poll_interval(l) == 0.2);
    ck_assert_int_eq(fl_get_mode(l), 0600);
    ck_assert_int_eq(fl_is_thread_local(l), 0);
    ck_assert_int_eq(fl_is_singleton(l), 0);
    ck_assert_int_eq(fl_lock_kind(l), _i);
    ck_assert_str_eq(fl_lock_path(l), p);
    ck_assert(fl_lock_id(l) != 0);

    other = fl_new_kind(p, _i);
    ck_assert(fl_lock_id(other) != fl_lock_id(l));
    ck_assert(fl_get_timeout(other) < 0);
    ck_assert_int_eq(fl_get_blocking(other), 1);
    ck_assert(fl_get_poll_interval(other) == 0.05);
    ck_assert_int_eq(fl_get_mode(other), FL_MODE_DEFAULT);
    ck_assert_int_eq(fl_is_thread_local(other), 1);
    ck_assert_int_eq(fl_acquire(other), 0);

    /* fl_acquire uses the defaults: blocking 0 gives one attempt even with
     * a timeout of 2.5 s ... */
    t0 = fl_mono();
    ck_assert_int_eq(fl_acquire(l), FL_ETIMEOUT);
    ck_assert(fl_mono() - t0 < 2);
    /* ... and the setters change them. */
    fl_set_blocking(l, 7);
    ck_assert_int_eq(fl_get_blocking(l), 1);
    ck_assert_int_eq(fl_set_timeout(l, 0.2), 0);
    ck_assert(fl_get_timeout(l) == 0.2);
    ck_assert_int_eq(fl_set_poll_interval(l, 0.01), 0);
    ck_assert(fl_get_poll_interval(l) == 0.01);
    t0 = fl_mono();
    ck_assert_int_eq(fl_acquire(l), FL_ETIMEOUT);
    ck_assert(fl_mono() - t0 >= 0.2);
    ck_assert_int_eq(fl_set_timeout(l, 0), 0);
    ck_assert_int_eq(fl_acquire(l), FL_ETIMEOUT);
    ck_assert_int_eq(fl_release(other, 0), 0);
    ck_assert_int_eq(fl_acquire(l), 0);
    ck_assert_int_eq(fl_release(l, 0), 0);
    fl_lock_free(other);
    fl_lock_free(l);

    /* NULL handles are rejected or ignored, never crash. */
    ck_assert_int_eq(fl_acquire(NULL), FL_EINVAL);
    ck_assert_int_eq(fl_acquire_ex(NULL, 0, 1, 0), FL_EINVAL);
    ck_assert_int_eq(fl_release(NULL, 0), FL_EINVAL);
    ck_assert_int_eq(fl_set_timeout(NULL, 1), FL_EINVAL);
    ck_assert_int_eq(fl_set_poll_interval(NULL, 1), FL_EINVAL);
    ck_assert_int_eq(fl_is_locked(NULL), 0);
    ck_assert_ptr_null(fl_lock_path(NULL));
    fl_set_blocking(NULL, 1);
    fl_set_cancel(NULL, NULL, NULL);
    fl_lock_free(NULL);
}
END_TEST

START_TEST(options_init_matches_macro) {
    fl_options a = FL_OPTIONS_INIT, b;
    memset(&b, 0x5a, sizeof b);
    fl_options_init(&b);
    ck_assert_int_eq(a.version, b.version);
    ck_assert_int_eq(a.kind, b.kind);
    ck_assert(a.timeout == b.timeout && b.timeout < 0);
    ck_assert(a.poll_interval == b.poll_interval);
    ck_assert_int_eq(a.blocking, b.blocking);
    ck_assert_int_eq(a.mode, b.mode);
    ck_assert_int_eq(a.thread_local, b.thread_local);
    ck_assert_int_eq(a.singleton, b.singleton);
    ck_assert_int_eq(a.soft_fallback, b.soft_fallback);
    fl_options_init(NULL);
}
END_TEST

/* fl_acquire_with: a field whose FL_ARG_* bit is clear is the handle's
 * default, resolved by the core; a given field wins over the handle's. */
START_TEST(acquire_with_resolves_defaults) {
    const char *p = P("x.lock");
    fl_lock *a = fl_new_kind(p, _i), *b = fl_new_kind(p, _i);
    fl_acquire_args args;
    ck_assert_int_eq(fl_acquire(a), 0);

    /* Nothing given: the handle's timeout 0 makes one attempt. */
    ck_assert_int_eq(fl_set_timeout(b, 0), 0);
    fl_acquire_args_init(&args);
    fl_count_syscalls();
    ck_assert_int_eq(fl_acquire_with(b, &args), FL_ETIMEOUT);
    ck_assert_int_eq(attempts(_i), 1);
    fl__sys_reset();

    /* The handle waits forever, the call says non-blocking: one attempt. */
    ck_assert_int_eq(fl_set_timeout(b, -1), 0);
    args.set = FL_ARG_BLOCKING;
    args.blocking = 0;
    fl_count_syscalls();
    ck_assert_int_eq(fl_acquire_with(b, &args), FL_ETIMEOUT);
    ck_assert_int_eq(attempts(_i), 1);
    fl__sys_reset();

    /* The handle is non-blocking; the call's fields without their bit are ignored. */
    fl_set_blocking(b, 0);
    args.set = FL_ARG_TIMEOUT;
    args.timeout = -1;
    args.blocking = 1;
    fl_count_syscalls();
    ck_assert_int_eq(fl_acquire_with(b, &args), FL_ETIMEOUT);
    ck_assert_int_eq(attempts(_i), 1);
    fl__sys_reset();
    ck_assert_int_eq(fl_lock_counter(b), 0);

    /* NULL arguments: as fl_acquire. */
    ck_assert_int_eq(fl_release(a, 0), 0);
    ck_assert_int_eq(fl_acquire_with(b, NULL), 0);
    ck_assert_int_eq(fl_acquire_with(b, NULL), 0);
    ck_assert_int_eq(fl_lock_counter(b), 2);
    ck_assert_int_eq(fl_release(b, 1), 0);
    fl_lock_free(b);
    fl_lock_free(a);
}
END_TEST

/* FL_ARG_DEADLINE: absolute time on fl_monotonic(); a deadline already past
 * is one attempt (so is -infinity), and it replaces a given timeout. */
START_TEST(acquire_with_deadline) {
    const char *p = P("x.lock");
    fl_lock *a = fl_new_kind(p, _i), *b = fl_new_kind(p, _i);
    fl_acquire_args args;
    double start;
    ck_assert_int_eq(fl_acquire(a), 0);
    fl_acquire_args_init(&args);

    args.set = FL_ARG_DEADLINE | FL_ARG_TIMEOUT;
    args.timeout = -1; /* would wait forever; the deadline wins */
    args.deadline = fl_monotonic() - 1.0;
    fl_count_syscalls();
    ck_assert_int_eq(fl_acquire_with(b, &args), FL_ETIMEOUT);
    ck_assert_int_eq(attempts(_i), 1);
    fl__sys_reset();

    args.deadline = -INFINITY;
    fl_count_syscalls();
    ck_assert_int_eq(fl_acquire_with(b, &args), FL_ETIMEOUT);
    ck_assert_int_eq(attempts(_i), 1);
    fl__sys_reset();

    /* A deadline in the future is waited for, not skipped. */
    start = fl_monotonic();
    args.deadline = start + 0.3;
    ck_assert_int_eq(fl_acquire_with(b, &args), FL_ETIMEOUT);
    ck_assert(fl_monotonic() >= args.deadline);
    ck_assert_str_eq(fl_err_name(fl_last_code()), "ETIMEOUT");

    args.deadline = NAN;
    ck_assert_int_eq(fl_acquire_with(b, &args), FL_EINVAL);
    ck_assert_ptr_nonnull(strstr(fl_last_error(), p));

    args.set = 0x100u;
    ck_assert_int_eq(fl_acquire_with(b, &args), FL_EINVAL);
    ck_assert_int_eq(fl_acquire_with(NULL, &args), FL_EINVAL);

    /* Released: a deadline far ahead wins at once. */
    ck_assert_int_eq(fl_release(a, 0), 0);
    args.set = FL_ARG_DEADLINE;
    args.deadline = INFINITY;
    ck_assert_int_eq(fl_acquire_with(b, &args), 0);
    ck_assert_int_eq(fl_release(b, 0), 0);
    fl_lock_free(b);
    fl_lock_free(a);
}
END_TEST

/* args.shared is fl_acquire_shared: two shared holders on the kernel lock,
 * and the soft lock refuses it. */
START_TEST(acquire_with_shared) {
    const char *p = P("x.lock");
    fl_lock *a = fl_new_kind(p, _i), *b = fl_new_kind(p, _i);
    fl_acquire_args args;
    fl_acquire_args_init(&args);
    args.shared = 1;
    args.set = FL_ARG_TIMEOUT;
    args.timeout = 0;
    if (_i == FL_SOFT) {
        ck_assert_int_eq(fl_acquire_with(a, &args), FL_ENOTSUP);
    } else {
        ck_assert_int_eq(fl_acquire_with(a, &args), 0);
        ck_assert_int_eq(fl_acquire_with(b, &args), 0);
        ck_assert(fl_is_shared(a) && fl_is_shared(b));
        ck_assert_int_eq(fl_release(b, 0), 0);
        ck_assert_int_eq(fl_release(a, 0), 0);
    }
    fl_lock_free(b);
    fl_lock_free(a);
}
END_TEST

START_TEST(recursion_counter) {
    const char *p = P("x.lock");
    fl_lock *a = fl_new_kind(p, _i), *b = fl_new_kind(p, _i);
    int i;
    for (i = 1; i <= 3; i++) {
        ck_assert_int_eq(fl_acquire_ex(a, 0, 1, 0.05), 0);
        ck_assert_int_eq(fl_lock_counter(a), i);
    }
    ck_assert(fl_is_locked(a));
    ck_assert_int_eq(fl_release(a, 0), 0);
    ck_assert_int_eq(fl_lock_counter(a), 2);
    ck_assert_int_eq(fl_acquire_ex(b, 0, 1, 0.05), FL_ETIMEOUT);
    ck_assert_int_eq(fl_release(a, 0), 0);
    ck_assert_int_eq(fl_acquire_ex(b, 0, 1, 0.05), FL_ETIMEOUT);
    ck_assert_int_eq(fl_release(a, 0), 0);
    ck_assert_int_eq(fl_lock_counter(a), 0);
    ck_assert(!fl_is_locked(a));
    ck_assert_int_eq(fl_acquire_ex(b, 0, 1, 0.05), 0);
    fl_lock_free(b);
    fl_lock_free(a);
}
END_TEST

START_TEST(force_release) {
    const char *p = P("x.lock");
    fl_lock *a = fl_new_kind(p, _i), *b = fl_new_kind(p, _i);
    ck_assert_int_eq(fl_acquire(a), 0);
    ck_assert_int_eq(fl_acquire(a), 0);
    ck_assert_int_eq(fl_acquire(a), 0);
    ck_assert_int_eq(fl_release(a, 1), 0);
    ck_assert_int_eq(fl_lock_counter(a), 0);
    ck_assert_int_eq(fl_acquire_ex(b, 0, 1, 0.05), 0);
    ck_assert_int_eq(fl_release(b, 0), 0);
    fl_lock_free(b);
    fl_lock_free(a);
}
END_TEST

START_TEST(release_unheld_is_noop) {
    const char *p = P("x.lock");
    fl_lock *a = fl_new_kind(p, _i), *b = fl_new_kind(p, _i), *c = fl_new_kind(p, _i);
    ck_assert_int_eq(fl_release(a, 0), 0);
    ck_assert_int_eq(fl_release(a, 1), 0);
    ck_assert_int_eq(fl_lock_counter(a), 0);
    ck_assert(!fl_exists(p));
    ck_assert_int_eq(fl_acquire(b), 0);
    ck_assert_int_eq(fl_release(a, 0), 0);
    ck_assert_int_eq(fl_release(a, 1), 0);
    ck_assert_int_eq(fl_acquire_ex(c, 0, 1, 0.05), FL_ETIMEOUT);
    ck_assert_int_eq(fl_release(b, 0), 0);
    ck_assert_int_eq(fl_release(b, 0), 0);
    ck_assert_int_eq(fl_lock_counter(b), 0);
    ck_assert_int_eq(fl_acquire_ex(c, 0, 1, 0.05), 0);
    fl_lock_free(c);
    fl_lock_free(b);
    fl_lock_free(a);
}
END_TEST

Suite *suite_acquire(void) {
    Suite *s = suite_create("acquire");
    TCase *tc = fl_tcase("timeouts");
    tcase_add_loop_test(tc, timeout_zero_is_one_attempt, FL_KERNEL, FL_SOFT + 1);
    tcase_add_loop_test(tc, nonblocking_wins_over_timeout, FL_KERNEL, FL_SOFT + 1);
    tcase_add_loop_test(tc, positive_timeout_is_bounded, FL_KERNEL, FL_SOFT + 1);
    tcase_add_loop_test(tc, negative_timeout_waits_until_release, 0, 4);
    tcase_add_loop_test(tc, defaults_and_setters, FL_KERNEL, FL_SOFT + 1);
    tcase_add_test(tc, options_init_matches_macro);
    suite_add_tcase(s, tc);

    tc = fl_tcase("counter");
    tcase_add_loop_test(tc, acquire_with_resolves_defaults, FL_KERNEL, FL_SOFT + 1);
    tcase_add_loop_test(tc, acquire_with_deadline, FL_KERNEL, FL_SOFT + 1);
    tcase_add_loop_test(tc, acquire_with_shared, FL_KERNEL, FL_SOFT + 1);
    tcase_add_loop_test(tc, recursion_counter, FL_KERNEL, FL_SOFT + 1);
    tcase_add_loop_test(tc, force_release, FL_KERNEL, FL_SOFT + 1);
    tcase_add_loop_test(tc, release_unheld_is_noop, FL_KERNEL, FL_SOFT + 1);
    suite_add_tcase(s, tc);
    return s;
}
