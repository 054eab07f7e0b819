/*
 * Cross-process contention through fl_test_helper (fork+exec): a holder in
 * another process, a waiter that wins after its release, and N processes
 * incrementing a counter file under the lock (the final count is exact only
 * if the lock excludes).
 */
#define _GNU_SOURCE
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

START_TEST(holder_in_other_process) {
    const char *p = P("x.lock");
    const char *args[] = {"hold", p, fl_kind_name(_i), "300", NULL};
    char line[64];
    fl_lock *l = fl_new_kind(p, _i);
    int out;
    pid_t pid = fl_helper_start(args, &out, NULL);
    ck_assert_msg(fl_read_line(out, line, sizeof line, 20) == 0, "helper did not report");
    ck_assert_str_eq(line, "held");
    ck_assert_int_eq(fl_acquire_ex(l, 0, 1, 0.05), FL_ETIMEOUT);
    /* The helper releases after 300 ms; a waiter gets the lock then. */
    ck_assert_msg(fl_acquire_ex(l, 20, 1, 0.05) == 0, "%s", fl_last_error());
    ck_assert_int_eq(fl_read_line(out, line, sizeof line, 20), 0);
    ck_assert_str_eq(line, "released");
    ck_assert_int_eq(fl_wait_child(pid, 20), 0);
    close(out);
    ck_assert_int_eq(fl_release(l, 0), 0);
    fl_lock_free(l);
}
END_TEST

START_TEST(other_process_waits_for_us) {
    const char *p = P("x.lock");
    const char *args[] = {"hold", p, fl_kind_name(_i), "0", NULL};
    char line[64];
    fl_lock *l = fl_new_kind(p, _i);
    int out;
    pid_t pid;
    ck_assert_int_eq(fl_acquire(l), 0);
    ck_assert_int_eq(fl_helper_try(p, _i), 3);
    pid = fl_helper_start(args, &out, NULL);
    /* The helper waits forever; it must not report "held" while we hold. */
    ck_assert_int_eq(fl_read_line(out, line, sizeof line, 0.3), -1);
    ck_assert_int_eq(fl_release(l, 0), 0);
    ck_assert_msg(fl_read_line(out, line, sizeof line, 20) == 0, "helper never got the lock");
    ck_assert_str_eq(line, "held");
    ck_assert_int_eq(fl_wait_child(pid, 20), 0);
    close(out);
    ck_assert_int_eq(fl_helper_try(p, _i), 0);
    fl_lock_free(l);
}
END_TEST

static void counter_test(int kind, int procs, int iters) {
    const char *p = P("x.lock"), *file = P("counter");
    char n[16], buf[64];
    const char *args[] = {"count", p, fl_kind_name(kind), file, n, NULL};
    pid_t pids[16];
    int outs[16], i, rc;
    snprintf(n, sizeof n, "%d", iters);
    fl_write_file(file, "0\n");
    for (i = 0; i < procs; i++)
        pids[i] = fl_helper_start(args, &outs[i], NULL);
    for (i = 0; i < procs; i++) {
        rc = fl_wait_child(pids[i], 120);
        close(outs[i]);
        ck_assert_msg(rc == 0, "counter helper %d exited with %d", i, rc);
    }
    ck_assert(fl_read_file(file, buf, sizeof buf) > 0);
    ck_assert_msg(atol(buf) == (long)procs * iters, "count %ld, want %ld: increments were lost",
                  atol(buf), (long)procs * iters);
}

START_TEST(mutual_exclusion_counter_kernel) { counter_test(FL_KERNEL, 4, 250); }
END_TEST

START_TEST(mutual_exclusion_counter_soft) { counter_test(FL_SOFT, 4, 100); }
END_TEST

Suite *suite_process(void) {
    Suite *s = suite_create("process");
    TCase *tc = fl_tcase("helpers");
    tcase_add_loop_test(tc, holder_in_other_process, FL_KERNEL, FL_SOFT + 1);
    tcase_add_loop_test(tc, other_process_waits_for_us, FL_KERNEL, FL_SOFT + 1);
    tcase_add_test(tc, mutual_exclusion_counter_kernel);
    tcase_add_test(tc, mutual_exclusion_counter_soft);
    suite_add_tcase(s, tc);
    return s;
}
