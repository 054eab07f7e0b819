/*
 * Cross-process behaviour: helper processes (fl_win_helper.exe, started
 * with CreateProcess) hold or try the lock while this process does the
 * opposite.
 */
#include "wintest.h"

#include <stdio.h>
#include <string.h>

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

/* The soft lock's protocol (soft.c) across processes: a holder killed
 * while another process waits leaves a marker that waiter takes over, and
 * nothing else behind. */
START_TEST(soft_dead_holder_reclaimed_by_waiting_process) {
    const char *path = wt_path("dw.lock");
    wt_proc holder, waiter;
    hold(&holder, "s", path);
    ck_assert_int_eq(wt_spawn(&waiter, "wait", "s", path), 0);
    ck_assert(wt_expect(&waiter, "waiting", 30));
    /* A live holder is never broken. */
    ck_assert_int_eq(WaitForSingleObject(waiter.process, 700), WAIT_TIMEOUT);
    TerminateProcess(holder.process, 9);
    wt_finish(&holder, 30);
    ck_assert_int_eq(wt_finish(&waiter, 40), 0); /* won within its 30 s timeout */
    ck_assert(!wt_exists(path));                 /* and released */
    ck_assert_int_eq(wt_count("."), 0);          /* no claim, no private marker */
}
END_TEST

START_TEST(soft_dead_holder_reclaimed) {
    const char *path = wt_path("dr.lock");
    fl_lock *l = wt_lock(path, FL_SOFT);
    char buf[512], expect[32];
    fl_owner o;
    wt_proc p;
    hold(&p, "s", path);
    TerminateProcess(p.process, 9);
    wt_finish(&p, 30);
    ck_assert(wt_exists(path));
    ck_assert_msg(fl_acquire_ex(l, 10, 1, 0.05) == 0, "%s", fl_last_error());
    /* The marker at the path is ours now, complete. */
    ck_assert_int_gt(wt_read(path, buf, sizeof buf), 0);
    snprintf(expect, sizeof expect, "%lu\n", (unsigned long)GetCurrentProcessId());
    ck_assert_msg(strncmp(buf, expect, strlen(expect)) == 0, "record: %s", buf);
    ck_assert_int_eq(fl_get_owner(l, &o), 0);
    ck_assert_int_eq(o.this_process, 1);
    ck_assert_int_eq(helper_try("s", path), 1);
    ck_assert_int_eq(wt_count("."), 0);
    ck_assert_int_eq(fl_release(l, 0), 0);
    ck_assert(!wt_exists(path));
    fl_lock_free(l);
}
END_TEST

START_TEST(soft_live_holder_kept) {
    const char *path = wt_path("live.lock");
    fl_lock *l = wt_lock(path, FL_SOFT);
    char before[512], after[512];
    fl_owner o;
    wt_proc p;
    hold(&p, "s", path);
    ck_assert_int_gt(wt_read(path, before, sizeof before), 0);
    ck_assert_int_eq(fl_acquire_ex(l, 1.0, 1, 0.05), FL_ETIMEOUT);
    ck_assert_int_eq(fl_get_owner(l, &o), 0);
    ck_assert_int_eq(o.pid, (long)p.pid);
    ck_assert_int_gt(wt_read(path, after, sizeof after), 0);
    ck_assert_str_eq(before, after); /* the same marker, untouched */
    ck_assert_int_eq(wt_count("."), 0);
    ck_assert_int_eq(wt_finish(&p, 30), 0); /* its release found its own marker */
    ck_assert(!wt_exists(path));
    ck_assert_int_eq(fl_acquire_ex(l, 0, 1, 0.05), 0);
    fl_lock_free(l);
}
END_TEST

/* An operator's break frees the name at once although the holder keeps
 * its marker open (Windows keeps a deleted file's name until its last
 * handle closes: the marker is renamed away first), and the holder's
 * release later leaves the new holder's marker alone. */
START_TEST(soft_break_of_other_process) {
    const char *path = wt_path("brk.lock");
    fl_lock *l = wt_lock(path, FL_SOFT);
    fl_owner o;
    wt_proc p;
    hold(&p, "s", path);
    ck_assert_msg(fl_break_lock(l) == 0, "%s", fl_last_error());
    ck_assert(!wt_exists(path));
    ck_assert_msg(fl_acquire_ex(l, 0, 1, 0.05) == 0, "%s", fl_last_error());
    ck_assert_int_eq(wt_finish(&p, 30), 0);
    ck_assert(wt_exists(path));
    ck_assert_int_eq(fl_get_owner(l, &o), 0);
    ck_assert_int_eq(o.this_process, 1);
    ck_assert_int_eq(fl_release(l, 0), 0);
    ck_assert(!wt_exists(path));
    ck_assert_int_eq(wt_count("."), 0);
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
    tcase_add_test(t, soft_dead_holder_reclaimed_by_waiting_process);
    tcase_add_test(t, soft_dead_holder_reclaimed);
    tcase_add_test(t, soft_live_holder_kept);
    tcase_add_test(t, soft_break_of_other_process);
    suite_add_tcase(s, t);
    return s;
}
