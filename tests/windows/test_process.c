/*
 * Cross-process behaviour: helper processes (fl_win_helper.exe, started
 * with CreateProcess) hold or try the lock while this process does the
 * opposite.
 */
#include "wintest.h"

#include <stdio.h>

static void hold(wt_proc *p, const char *kind, const char *path) {
    ck_assert_msg(wt_spawn(p, "hold", kind, path) == 0, "cannot start the helper");
    ck_assert_msg(wt_expect(p, "held", 30), "the helper did not report holding the lock");
}

static int helper_try(const char *kind, const char *path) {
    wt_proc p;
    ck_assert_msg(wt_spawn(&p, "try", kind, path) == 0, "cannot start the helper");
    return wt_finish(&p, 30);
}

START_TEST(kernel_held_by_other_process) {
    const char *path = wt_path("x.lock");
    fl_lock *l = wt_lock(path, FL_KERNEL);
    wt_proc p;
    hold(&p, "k", path);
    ck_assert_int_eq(fl_acquire_ex(l, 0, 1, 0.05), FL_ETIMEOUT);
    ck_assert_int_eq(fl_acquire_ex(l, 0.3, 1, 0.05), FL_ETIMEOUT);
    ck_assert_int_eq(wt_finish(&p, 30), 0);
    ck_assert_int_eq(fl_acquire_ex(l, 10, 1, 0.05), 0);
    fl_lock_free(l);
}
END_TEST

START_TEST(kernel_held_by_this_process) {
    const char *path = wt_path("y.lock");
    fl_lock *l = wt_lock(path, FL_KERNEL);
    ck_assert_int_eq(fl_acquire(l), 0);
    ck_assert_int_eq(helper_try("k", path), 1);
    ck_assert_int_eq(fl_release(l, 0), 0);
    ck_assert_int_eq(helper_try("k", path), 0);
    fl_lock_free(l);
}
END_TEST

START_TEST(waiter_in_other_process_wakes) {
    const char *path = wt_path("z.lock");
    fl_lock *l = wt_lock(path, FL_KERNEL);
    wt_proc p;
    ck_assert_int_eq(fl_acquire(l), 0);
    ck_assert_int_eq(wt_spawn(&p, "wait", "k", path), 0);
    ck_assert(wt_expect(&p, "waiting", 30));
    Sleep(200); /* let it start waiting; correctness does not depend on it */
    ck_assert_int_eq(fl_release(l, 0), 0);
    ck_assert_int_eq(wt_finish(&p, 40), 0); /* won within its 30 s timeout */
    fl_lock_free(l);
}
END_TEST

START_TEST(dead_holder_releases_kernel_lock) {
    const char *path = wt_path("dead.lock");
    fl_lock *l = wt_lock(path, FL_KERNEL);
    wt_proc p;
    hold(&p, "k", path);
    ck_assert_int_eq(fl_acquire_ex(l, 0, 1, 0.05), FL_ETIMEOUT);
    TerminateProcess(p.process, 9);
    wt_finish(&p, 30);
    ck_assert_msg(fl_acquire_ex(l, 10, 1, 0.05) == 0, "%s", fl_last_error());
    fl_lock_free(l);
}
END_TEST

START_TEST(shared_across_processes) {
    const char *path = wt_path("sh.lock");
    fl_lock *r = wt_lock(path, FL_KERNEL), *w = wt_lock(path, FL_KERNEL);
    wt_proc p;
    hold(&p, "r", path);
    ck_assert_int_eq(fl_acquire_shared(r, 0, 1, 0.05), 0); /* two readers */
    ck_assert_int_eq(fl_acquire_ex(w, 0, 1, 0.05), FL_ETIMEOUT);
    ck_assert_int_eq(fl_release(r, 0), 0);
    ck_assert_int_eq(fl_acquire_ex(w, 0, 1, 0.05), FL_ETIMEOUT); /* the helper reads */
    ck_assert_int_eq(wt_finish(&p, 30), 0);
    ck_assert_int_eq(fl_acquire_ex(w, 10, 1, 0.05), 0);
    ck_assert_int_eq(helper_try("r", path), 1); /* writer excludes the helper's reader */
    fl_lock_free(w);
    fl_lock_free(r);
}
END_TEST

START_TEST(soft_across_processes) {
    const char *path = wt_path("s.lock");
    fl_lock *l = wt_lock(path, FL_SOFT);
    fl_owner o;
    wt_proc p;
    hold(&p, "s", path);
    ck_assert_int_eq(fl_acquire_ex(l, 0, 1, 0.05), FL_ETIMEOUT);
    ck_assert_int_eq(fl_get_owner(l, &o), 0);
    ck_assert_int_eq(o.pid, (long)p.pid);
    ck_assert_int_eq(o.this_process, 0);
    ck_assert_int_eq(wt_finish(&p, 30), 0);
    ck_assert_msg(fl_acquire_ex(l, 10, 1, 0.05) == 0, "%s", fl_last_error());
    ck_assert_int_eq(helper_try("s", path), 1);
    ck_assert_int_eq(fl_release(l, 0), 0);
    ck_assert_int_eq(helper_try("s", path), 0);
    fl_lock_free(l);
}
END_TEST

START_TEST(soft_marker_of_dead_process_reclaimed) {
    const char *path = wt_path("ds.lock");
    fl_lock *l = wt_lock(path, FL_SOFT);
    wt_proc p;
    hold(&p, "s", path); /* "hold" then kill: the marker stays behind */
    TerminateProcess(p.process, 9);
    wt_finish(&p, 30);
    ck_assert(wt_exists(path));
    ck_assert_msg(fl_acquire_ex(l, 10, 1, 0.05) == 0, "%s", fl_last_error());
    fl_lock_free(l);
}
END_TEST

Suite *wt_suite_process(void) {
    Suite *s = suite_create("process");
    TCase *t = tcase_create("helpers");
    tcase_add_checked_fixture(t, wt_setup, wt_teardown);
    tcase_add_test(t, kernel_held_by_other_process);
    tcase_add_test(t, kernel_held_by_this_process);
    tcase_add_test(t, waiter_in_other_process_wakes);
    tcase_add_test(t, dead_holder_releases_kernel_lock);
    tcase_add_test(t, shared_across_processes);
    tcase_add_test(t, soft_across_processes);
    tcase_add_test(t, soft_marker_of_dead_process_reclaimed);
    suite_add_tcase(s, t);
    return s;
}
