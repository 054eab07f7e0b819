/*
 * Self-deadlock: a thread that holds a lock file through one handle and
 * waits forever on it through another would hang; the library says
 * FL_EDEADLK at once instead. With a timeout it is an ordinary timeout, and
 * a lock held by *another* thread is simply waited for.
 */
#define _GNU_SOURCE
#include "testutil.h"

#include <string.h>

START_TEST(same_thread_forever_is_deadlock) {
    const char *p = P("x.lock");
    fl_lock *a = fl_new_kind(p, _i), *b = fl_new_kind(p, _i);
    double t0;
    ck_assert_int_eq(fl_acquire(a), 0);
    t0 = fl_mono();
    ck_assert_int_eq(fl_acquire_ex(b, -1, 1, 0.05), FL_EDEADLK);
    ck_assert_msg(fl_mono() - t0 < 10, "deadlock detection must not wait");
    ck_assert_msg(strstr(fl_last_error(), p) != NULL, "%s", fl_last_error());
    ck_assert_msg(strstr(fl_last_error(), "held by this thread") != NULL, "%s", fl_last_error());
    /* Language-neutral: a binding adds its own option name. */
    ck_assert_msg(strstr(fl_last_error(), "is_singleton") == NULL, "%s", fl_last_error());
    ck_assert_int_eq(fl_lock_counter(b), 0);
    ck_assert_int_eq(fl_lock_counter(a), 1);
    /* through fl_acquire with the default (forever) timeout too */
    ck_assert_int_eq(fl_acquire(b), FL_EDEADLK);
    ck_assert_int_eq(fl_helper_try(p, _i), 3);
    ck_assert_int_eq(fl_release(a, 0), 0);
    /* Released: no deadlock any more. */
    ck_assert_int_eq(fl_acquire_ex(b, -1, 1, 0.05), 0);
    fl_lock_free(b);
    fl_lock_free(a);
}
END_TEST

START_TEST(same_thread_with_timeout_is_timeout) {
    const char *p = P("x.lock");
    fl_lock *a = fl_new_kind(p, _i), *b = fl_new_kind(p, _i);
    ck_assert_int_eq(fl_acquire(a), 0);
    ck_assert_int_eq(fl_acquire_ex(b, 0.2, 1, 0.05), FL_ETIMEOUT);
    ck_assert_int_eq(fl_acquire_ex(b, 0, 1, 0.05), FL_ETIMEOUT);
    ck_assert_int_eq(fl_lock_counter(b), 0);
    fl_lock_free(b);
    fl_lock_free(a);
}
END_TEST

typedef struct holder {
    const char *path;
    int kind;
    fl_logrec *rec;
    int held; /* atomic */
} holder;

/* Holds the lock until the main thread is waiting for it, then releases. */
static void *holder_main(void *arg) {
    holder *h = arg;
    fl_lock *l;
    fl_options o = FL_OPTIONS_INIT;
    o.kind = (fl_kind)h->kind;
    if (fl_lock_new(&l, h->path, &o) != 0)
        return NULL;
    if (fl_acquire(l) != 0) {
        fl_lock_free(l);
        return NULL;
    }
    __atomic_store_n(&h->held, 1, __ATOMIC_RELEASE);
    fl_wait_flag(&h->rec->waiting, 20);
    fl_sleep(0.1);
    fl_lock_free(l);
    return NULL;
}

START_TEST(other_thread_holder_is_waited_for) {
    fl_logrec rec;
    holder h = {P("x.lock"), _i, &rec, 0};
    fl_lock *b = fl_new_kind(h.path, _i);
    pthread_t t;
    fl_log_record(&rec);
    ck_assert_int_eq(pthread_create(&t, NULL, holder_main, &h), 0);
    ck_assert(fl_wait_flag(&h.held, 20));
    ck_assert_msg(fl_acquire_ex(b, -1, 1, 0.05) == 0, "%s", fl_last_error());
    fl_join(t, 20);
    fl_set_log_handler(NULL, NULL);
    fl_lock_free(b);
}
END_TEST

Suite *suite_deadlock(void) {
    Suite *s = suite_create("deadlock");
    TCase *tc = fl_tcase("self");
    tcase_add_loop_test(tc, same_thread_forever_is_deadlock, FL_KERNEL, FL_SOFT + 1);
    tcase_add_loop_test(tc, same_thread_with_timeout_is_timeout, FL_KERNEL, FL_SOFT + 1);
    tcase_add_loop_test(tc, other_thread_holder_is_waited_for, FL_KERNEL, FL_SOFT + 1);
    suite_add_tcase(s, tc);
    return s;
}
