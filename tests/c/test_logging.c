/*
 * Logging: the handler receives each step py-filelock logs, with the
 * handle's id and path, and fl_format_log renders py-filelock's messages.
 */
#define _GNU_SOURCE
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static void expect_seq(fl_logrec *rec, uint64_t id, const char *path, const fl_log_event *want,
                       int n) {
    int i;
    ck_assert_msg(rec->n == n, "got %d events, want %d", rec->n, n);
    for (i = 0; i < n; i++) {
        ck_assert_msg(rec->ev[i] == want[i], "event %d is %d, want %d", i, (int)rec->ev[i],
                      (int)want[i]);
        ck_assert(rec->id[i] == id);
        ck_assert_str_eq(rec->path[i], path);
    }
}

START_TEST(events_acquire_release) {
    const char *p = P("x.lock");
    fl_lock *l = fl_new_kind(p, _i);
    fl_logrec rec;
    /* py-filelock logs a re-entry as "acquired" (no attempt); an inner
     * release logs nothing. */
    static const fl_log_event want[] = {FL_LOG_ATTEMPT, FL_LOG_ACQUIRED, FL_LOG_ACQUIRED,
                                        FL_LOG_RELEASE_ATTEMPT, FL_LOG_RELEASED};
    fl_log_record(&rec);
    ck_assert_int_eq(fl_acquire(l), 0);
    ck_assert_int_eq(fl_acquire(l), 0);
    ck_assert_int_eq(fl_release(l, 0), 0);
    ck_assert_int_eq(fl_release(l, 0), 0);
    ck_assert_int_eq(fl_release(l, 0), 0); /* no-op logs nothing */
    fl_set_log_handler(NULL, NULL);
    expect_seq(&rec, fl_lock_id(l), p, want, 5);
    fl_lock_free(l);
}
END_TEST

START_TEST(events_failed_and_timeout) {
    const char *p = P("x.lock");
    fl_lock *a = fl_new_kind(p, _i), *b = fl_new_kind(p, _i);
    fl_logrec rec;
    static const fl_log_event failed[] = {FL_LOG_ATTEMPT, FL_LOG_FAILED};
    static const fl_log_event zero[] = {FL_LOG_ATTEMPT, FL_LOG_TIMEOUT};
    static const fl_log_event timeout[] = {FL_LOG_ATTEMPT, FL_LOG_WAITING, FL_LOG_TIMEOUT};
    ck_assert_int_eq(fl_acquire(a), 0);
    fl_log_record(&rec);
    ck_assert_int_eq(fl_acquire_ex(b, 5, 0, 0.05), FL_ETIMEOUT);
    fl_set_log_handler(NULL, NULL);
    expect_seq(&rec, fl_lock_id(b), p, failed, 2);

    /* A zero timeout (blocking) is a timeout to py-filelock, not a
     * non-blocking failure: "Timeout on acquiring", no waiting line. */
    fl_log_record(&rec);
    ck_assert_int_eq(fl_acquire_ex(b, 0, 1, 0.05), FL_ETIMEOUT);
    fl_set_log_handler(NULL, NULL);
    expect_seq(&rec, fl_lock_id(b), p, zero, 2);

    fl_log_record(&rec);
    ck_assert_int_eq(fl_acquire_ex(b, 0.2, 1, 0.07), FL_ETIMEOUT);
    fl_set_log_handler(NULL, NULL);
    expect_seq(&rec, fl_lock_id(b), p, timeout, 3);
    ck_assert_msg(rec.seconds[1] == 0.07, "WAITING reports %g s", rec.seconds[1]);
    fl_lock_free(b);
    fl_lock_free(a);
}
END_TEST

START_TEST(no_handler_no_calls) {
    fl_lock *l = fl_new_kind(P("x.lock"), FL_KERNEL);
    fl_logrec rec;
    fl_log_record(&rec);
    fl_set_log_handler(NULL, NULL);
    ck_assert_int_eq(fl_acquire(l), 0);
    ck_assert_int_eq(fl_release(l, 0), 0);
    ck_assert_int_eq(rec.n, 0);
    fl_lock_free(l);
}
END_TEST

START_TEST(format_messages) {
    char buf[256];
    struct {
        fl_log_event ev;
        const char *want;
    } cases[] = {
        {FL_LOG_ATTEMPT, "Attempting to acquire lock 42 on /t/a.lock"},
        {FL_LOG_ACQUIRED, "Lock 42 acquired on /t/a.lock"},
        {FL_LOG_FAILED, "Failed to immediately acquire lock 42 on /t/a.lock"},
        {FL_LOG_TIMEOUT, "Timeout on acquiring lock 42 on /t/a.lock"},
        {FL_LOG_WAITING, "Lock 42 not acquired on /t/a.lock, waiting 0.05 seconds ..."},
        {FL_LOG_RELEASE_ATTEMPT, "Attempting to release lock 42 on /t/a.lock"},
        {FL_LOG_RELEASED, "Lock 42 released on /t/a.lock"},
    };
    size_t i;
    int n;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        n = fl_format_log(buf, sizeof buf, cases[i].ev, 42, "/t/a.lock", 0.05);
        ck_assert_str_eq(buf, cases[i].want);
        ck_assert_int_eq(n, (int)strlen(cases[i].want));
    }
    /* The waiting seconds as Python's repr() of the float. */
    {
        static const struct {
            double v;
            const char *s;
        } secs[] = {{1.0, "1.0"},
                    {0.1, "0.1"},
                    {1e-05, "1e-05"},
                    {1234567.0, "1234567.0"},
                    {0.3, "0.3"},
                    {2.5, "2.5"},
                    {1e+16, "1e+16"},
                    {0.1 + 0.2, "0.30000000000000004"},
                    {INFINITY, "inf"},
                    {0.0, "0.0"},
                    /* %g's exponent as soon as it reaches the precision was wrong. */
                    {100.0, "100.0"},
                    {30.0, "30.0"},
                    {1500.0, "1500.0"},
                    {1e15, "1000000000000000.0"},
                    {-1.5e-5, "-1.5e-05"},
                    {120.5, "120.5"}};
        char want[128];
        for (i = 0; i < sizeof secs / sizeof secs[0]; i++) {
            fl_format_log(buf, sizeof buf, FL_LOG_WAITING, 7, "a", secs[i].v);
            snprintf(want, sizeof want, "Lock 7 not acquired on a, waiting %s seconds ...",
                     secs[i].s);
            ck_assert_str_eq(buf, want);
        }
    }
    /* Truncation: NUL-terminated, returns the full length (like snprintf). */
    memset(buf, 'z', sizeof buf);
    n = fl_format_log(buf, 8, FL_LOG_ACQUIRED, 42, "/t/a.lock", 0);
    ck_assert_int_eq(n, (int)strlen("Lock 42 acquired on /t/a.lock"));
    ck_assert_str_eq(buf, "Lock 42");
    ck_assert(buf[8] == 'z');
    n = fl_format_log(NULL, 0, FL_LOG_RELEASED, 7, "p", 0);
    ck_assert_int_eq(n, (int)strlen("Lock 7 released on p"));
    /* An unknown event still produces a message. */
    n = fl_format_log(buf, sizeof buf, (fl_log_event)99, 1, "p", 0);
    ck_assert(n > 0 && strstr(buf, "p") != NULL);
}
END_TEST

Suite *suite_logging(void) {
    Suite *s = suite_create("logging");
    TCase *tc = fl_tcase("log");
    tcase_add_loop_test(tc, events_acquire_release, FL_KERNEL, FL_SOFT + 1);
    tcase_add_loop_test(tc, events_failed_and_timeout, FL_KERNEL, FL_SOFT + 1);
    tcase_add_test(tc, no_handler_no_calls);
    tcase_add_test(tc, format_messages);
    suite_add_tcase(s, tc);
    return s;
}
