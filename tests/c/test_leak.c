/*
 * Descriptor leaks: 10,000 acquire/release cycles of each kind, and many
 * failing attempts and timed waits, leave /proc/self/fd as it was.
 */
#define _GNU_SOURCE
#include "testutil.h"

#include <stdio.h>
#include <sys/stat.h>

#define CYCLES 10000

START_TEST(cycles_leave_no_fd) {
    fl_lock *l = fl_new_kind(P("x.lock"), _i);
    int before, after, i;
    ck_assert_int_eq(fl_acquire(l), 0); /* create parents/file first */
    ck_assert_int_eq(fl_release(l, 0), 0);
    before = fl_open_fd_count();
    for (i = 0; i < CYCLES; i++) {
        ck_assert_int_eq(fl_acquire(l), 0);
        ck_assert_int_eq(fl_release(l, 0), 0);
    }
    after = fl_open_fd_count();
    ck_assert_msg(before == after, "%d fds before, %d after %d cycles", before, after, CYCLES);
    fl_lock_free(l);
    ck_assert_int_eq(fl_open_fd_count(), before);
}
END_TEST

START_TEST(failures_leave_no_fd) {
    const char *p = P("x.lock");
    fl_lock *a = fl_new_kind(p, _i), *b = fl_new_kind(p, _i), *bad;
    int before, i;
    ck_assert_int_eq(mkdir(P("dir.lock"), 0755), 0);
    bad = fl_new_kind(P("dir.lock"), _i);
    ck_assert_int_eq(fl_acquire(a), 0);
    /* Waiters share one inotify instance for the life of the process (the
     * wait hub; closing one costs an RCU grace period): the first wait that
     * gets as far as watching creates it, and later waits must reuse it, not
     * grow it. A loaded machine can time a 0.2 s wait out before it watches,
     * so warm up until a wait leaves the count unchanged. */
    for (i = 0, before = -1; i < 50; i++) {
        int n;
        ck_assert_int_eq(fl_acquire_ex(b, 0.2, 1, 0.01), FL_ETIMEOUT);
        n = fl_open_fd_count();
        if (n == before)
            break;
        before = n;
    }
    for (i = 0; i < 1000; i++) {
        ck_assert_int_eq(fl_acquire_ex(b, 0, 1, 0.05), FL_ETIMEOUT);
        ck_assert_int_eq(fl_acquire_ex(bad, -1, 1, 0.05), FL_EISDIR);
    }
    for (i = 0; i < 20; i++) /* timed waits open and close a watch */
        ck_assert_int_eq(fl_acquire_ex(b, 0.01, 1, 0.01), FL_ETIMEOUT);
    ck_assert_int_eq(fl_acquire_ex(b, -1, 1, 0.05), FL_EDEADLK);
    ck_assert_int_eq(fl_open_fd_count(), before);
    fl_lock_free(bad);
    fl_lock_free(b);
    fl_lock_free(a);
}
END_TEST

START_TEST(handles_leave_no_fd) {
    fl_options o = FL_OPTIONS_INIT;
    int before = fl_open_fd_count(), i;
    o.singleton = 1;
    for (i = 0; i < 2000; i++) {
        fl_lock *l;
        ck_assert_int_eq(fl_lock_new(&l, P("x.lock"), (i % 2) ? &o : NULL), 0);
        ck_assert_int_eq(fl_acquire(l), 0);
        fl_lock_free(l); /* frees a held lock */
    }
    ck_assert_int_eq(fl_open_fd_count(), before);
}
END_TEST

Suite *suite_leak(void) {
    Suite *s = suite_create("leak");
    TCase *tc = fl_tcase("fds");
    tcase_add_loop_test(tc, cycles_leave_no_fd, FL_KERNEL, FL_SOFT + 1);
    tcase_add_loop_test(tc, failures_leave_no_fd, FL_KERNEL, FL_SOFT + 1);
    tcase_add_test(tc, handles_leave_no_fd);
    suite_add_tcase(s, tc);
    return s;
}
