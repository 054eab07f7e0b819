/*
 * Interruption and cancellation. A signal whose handler is installed
 * WITHOUT SA_RESTART ends a wait with FL_EINTR and leaves the counter
 * alone; a cancel callback returning 1 ends it with FL_ECANCELED; one
 * returning 0 when told of a signal keeps the wait going (PEP 475).
 *
 * The signal is sent with pthread_kill to the waiting (main) thread, again
 * every 20 ms until the wait returns, because a signal that lands before
 * the thread is inside the wait is simply absorbed by the handler.
 */
#define _GNU_SOURCE
#include "testutil.h"

#include <errno.h>
#include <signal.h>
#include <string.h>

static volatile sig_atomic_t g_signals;

static void on_usr1(int sig) {
    (void)sig;
    g_signals++;
}

static void install_handler(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sa.sa_flags = 0; /* no SA_RESTART: the wait must see EINTR */
    sigemptyset(&sa.sa_mask);
    ck_assert_int_eq(sigaction(SIGUSR1, &sa, NULL), 0);
}

/* A thread that holds the lock (through its own handle) and, once the main
 * thread waits, signals it until told to stop; it releases when `release`
 * is set (or at the end). */
typedef struct ctl {
    const char *path;
    int kind;
    pthread_t target;
    fl_logrec *rec;
    int held;       /* atomic */
    int stop;       /* atomic: stop signalling */
    int release;    /* atomic: release the lock now */
    int saw_intr;   /* atomic: the cancel callback saw interrupted = 1 */
    int cancel_calls; /* atomic */
    int cancel_after; /* cancel callback returns 1 from this call on (0: never) */
} ctl;

static void *signaller_main(void *arg) {
    ctl *c = arg;
    fl_lock *l;
    fl_options o = FL_OPTIONS_INIT;
    double end = fl_mono() + 30;
    o.kind = (fl_kind)c->kind;
    if (fl_lock_new(&l, c->path, &o) != 0)
        return NULL;
    if (fl_acquire(l) != 0) {
        fl_lock_free(l);
        return NULL;
    }
    __atomic_store_n(&c->held, 1, __ATOMIC_RELEASE);
    fl_wait_flag(&c->rec->waiting, 20);
    while (!__atomic_load_n(&c->stop, __ATOMIC_ACQUIRE) && fl_mono() < end) {
        if (__atomic_load_n(&c->release, __ATOMIC_ACQUIRE))
            break;
        pthread_kill(c->target, SIGUSR1);
        fl_sleep(0.02);
    }
    fl_wait_flag(&c->release, 30);
    fl_lock_free(l);
    return NULL;
}

static void start(ctl *c, fl_logrec *rec, int kind, pthread_t *t) {
    memset(c, 0, sizeof *c);
    c->path = P("x.lock");
    c->kind = kind;
    c->target = pthread_self();
    c->rec = rec;
    install_handler();
    fl_log_record(rec);
    ck_assert_int_eq(pthread_create(t, NULL, signaller_main, c), 0);
    ck_assert(fl_wait_flag(&c->held, 20));
}

static void finish(ctl *c, pthread_t t) {
    __atomic_store_n(&c->stop, 1, __ATOMIC_RELEASE);
    __atomic_store_n(&c->release, 1, __ATOMIC_RELEASE);
    fl_join(t, 30);
    fl_set_log_handler(NULL, NULL);
}

/* _i: kind * 2 + (1: timed wait, 0: wait forever) */
START_TEST(signal_gives_eintr) {
    int kind = _i / 2, timed = _i % 2;
    ctl c;
    fl_logrec rec;
    pthread_t t;
    fl_lock *l;
    int rc;
    start(&c, &rec, kind, &t);
    l = fl_new_kind(c.path, kind);
    rc = fl_acquire_ex(l, timed ? 20.0 : -1.0, 1, 0.05);
    __atomic_store_n(&c.stop, 1, __ATOMIC_RELEASE);
    ck_assert_msg(rc == FL_EINTR, "got %s: %s", fl_err_name(rc), fl_last_error());
    ck_assert(g_signals > 0);
    ck_assert_int_eq(fl_last_errno(), EINTR);
    ck_assert_msg(strstr(fl_last_error(), c.path) != NULL, "%s", fl_last_error());
    ck_assert_int_eq(fl_lock_counter(l), 0);
    ck_assert(!fl_is_locked(l));
    finish(&c, t);
    /* State is consistent: the handle works afterwards. */
    ck_assert_int_eq(fl_acquire_ex(l, 10, 1, 0.05), 0);
    ck_assert_int_eq(fl_lock_counter(l), 1);
    fl_lock_free(l);
}
END_TEST

static int cancel_cb(void *data, int interrupted) {
    ctl *c = data;
    int n = __atomic_add_fetch(&c->cancel_calls, 1, __ATOMIC_ACQ_REL);
    if (interrupted && !__atomic_load_n(&c->saw_intr, __ATOMIC_ACQUIRE)) {
        __atomic_store_n(&c->saw_intr, 1, __ATOMIC_RELEASE);
        /* Seen: stop the signals and let the waiter win. */
        __atomic_store_n(&c->stop, 1, __ATOMIC_RELEASE);
        __atomic_store_n(&c->release, 1, __ATOMIC_RELEASE);
    }
    return c->cancel_after > 0 && n >= c->cancel_after;
}

/* _i: kind * 2 + (1: timed wait) */
START_TEST(cancel_returning_one_cancels) {
    int kind = _i / 2, timed = _i % 2;
    ctl c;
    fl_logrec rec;
    pthread_t t;
    fl_lock *l;
    int rc;
    start(&c, &rec, kind, &t);
    __atomic_store_n(&c.stop, 1, __ATOMIC_RELEASE); /* no signals here */
    c.cancel_after = 3;
    l = fl_new_kind(c.path, kind);
    fl_set_cancel(l, cancel_cb, &c);
    rc = fl_acquire_ex(l, timed ? 20.0 : -1.0, 1, 0.05);
    ck_assert_msg(rc == FL_ECANCELED, "got %s: %s", fl_err_name(rc), fl_last_error());
    ck_assert_int_ge(c.cancel_calls, 3);
    ck_assert_int_eq(fl_lock_counter(l), 0);
    ck_assert_msg(strstr(fl_last_error(), "cancel") != NULL, "%s", fl_last_error());
    finish(&c, t);
    fl_set_cancel(l, NULL, NULL);
    ck_assert_int_eq(fl_acquire_ex(l, 10, 1, 0.05), 0);
    fl_lock_free(l);
}
END_TEST

/* _i: kind * 2 + (1: timed wait) */
START_TEST(cancel_returning_zero_keeps_waiting) {
    int kind = _i / 2, timed = _i % 2;
    ctl c;
    fl_logrec rec;
    pthread_t t;
    fl_lock *l;
    int rc;
    start(&c, &rec, kind, &t);
    l = fl_new_kind(c.path, kind);
    fl_set_cancel(l, cancel_cb, &c);
    rc = fl_acquire_ex(l, timed ? 20.0 : -1.0, 1, 0.05);
    ck_assert_msg(rc == 0, "got %s: %s", fl_err_name(rc), fl_last_error());
    ck_assert_msg(c.saw_intr, "the cancel callback was never told of the signal");
    ck_assert_int_eq(fl_lock_counter(l), 1);
    finish(&c, t);
    fl_lock_free(l);
}
END_TEST

Suite *suite_interrupt(void) {
    Suite *s = suite_create("interrupt");
    TCase *tc = fl_tcase("signals");
    tcase_add_loop_test(tc, signal_gives_eintr, 0, 4);
    tcase_add_loop_test(tc, cancel_returning_one_cancels, 0, 4);
    tcase_add_loop_test(tc, cancel_returning_zero_keeps_waiting, 0, 4);
    suite_add_tcase(s, tc);
    return s;
}
