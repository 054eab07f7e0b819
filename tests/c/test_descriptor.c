/*
 * The pieces of the pure-Python filelock 3.15-3.32 API that are lock logic
 * and so live in the core: caller-owned descriptors (fl_lock_descriptor /
 * fl_unlock_descriptor), a cancel callback per acquire (FL_ARG_CANCEL) and
 * its log event, the id a binding names in log messages, and the on_acquired
 * hook.
 */
#define _GNU_SOURCE
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

static int open_rw(const char *p) {
    int fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    ck_assert_int_ge(fd, 0);
    return fd;
}

START_TEST(descriptor_contends_with_handle) {
    const char *p = P("x.lock");
    int fd = open_rw(p);
    fl_lock *l = fl_new_kind(p, FL_KERNEL);
    ck_assert_int_eq(fl_lock_descriptor(fd, 0, 0.05, NULL, NULL), 0);
    /* A handle (another open file description) cannot win it ... */
    ck_assert_int_eq(fl_acquire_ex(l, 0, 1, 0.05), FL_ETIMEOUT);
    /* ... nor another process. */
    ck_assert_int_eq(fl_helper_try(p, FL_KERNEL), 3);
    ck_assert_int_eq(fl_unlock_descriptor(fd), 0);
    ck_assert_int_eq(fl_acquire_ex(l, 0, 1, 0.05), 0);
    /* The reverse: the handle holds, the descriptor sees contention. */
    ck_assert_int_eq(fl_lock_descriptor(fd, 0, 0.05, NULL, NULL), FL_ETIMEOUT);
    ck_assert_int_eq(fl_last_errno(), 0);
    ck_assert_int_eq(fl_release(l, 0), 0);
    ck_assert_int_eq(fl_lock_descriptor(fd, 1, 0.05, NULL, NULL), 0);
    /* The descriptor is the caller's: still open after every call. */
    ck_assert_int_ne(fcntl(fd, F_GETFD), -1);
    ck_assert_int_eq(fl_unlock_descriptor(fd), 0);
    ck_assert_int_eq(fl_unlock_descriptor(fd), 0); /* not locked: still 0 */
    fl_lock_free(l);
    close(fd);
}
END_TEST

START_TEST(descriptor_bad_arguments) {
    const char *p = P("x.lock");
    int fd = open_rw(p);
    static const double bad[] = {0.0, -1.0, NAN, INFINITY};
    size_t i;
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_int_eq(fl_lock_descriptor(fd, 1, bad[i], NULL, NULL), FL_EINVAL);
        ck_assert_msg(strstr(fl_last_error(), "poll_interval must be finite and greater than 0"),
                      "%s", fl_last_error());
        /* Not blocking: the interval is not used, so not checked. */
        ck_assert_int_eq(fl_lock_descriptor(fd, 0, bad[i], NULL, NULL), 0);
        ck_assert_int_eq(fl_unlock_descriptor(fd), 0);
    }
    close(fd);
    /* A closed descriptor: the OS error, errno kept, no retry. */
    ck_assert_int_eq(fl_lock_descriptor(fd, 1, 0.05, NULL, NULL), FL_EOS);
    ck_assert_int_eq(fl_last_errno(), EBADF);
    ck_assert_int_eq(fl_unlock_descriptor(fd), FL_EOS);
    ck_assert_int_eq(fl_last_errno(), EBADF);
    ck_assert_int_eq(fl_lock_descriptor(-1, 0, 0.05, NULL, NULL), FL_EOS);
}
END_TEST

/* A blocking descriptor wait is woken by a signal: without a callback it
 * ends with FL_EINTR; a callback decides (0 goes on waiting). */
static volatile sig_atomic_t got_usr1;
static void on_usr1(int sig) {
    (void)sig;
    got_usr1++;
}
static int cancel_calls;
static int cancel_second(void *data, int interrupted) {
    (void)data;
    ck_assert_int_eq(interrupted, 1);
    return ++cancel_calls >= 2;
}
typedef struct {
    pthread_t target;
    int stop;
} kicker;
static void *kick(void *arg) {
    kicker *k = arg;
    while (!__atomic_load_n(&k->stop, __ATOMIC_ACQUIRE)) {
        fl_sleep(0.02);
        pthread_kill(k->target, SIGUSR1);
    }
    return NULL;
}

START_TEST(descriptor_wait_interrupted) {
    const char *p = P("x.lock");
    int fd = open_rw(p);
    fl_lock *l = fl_new_kind(p, FL_KERNEL);
    struct sigaction sa;
    kicker k;
    pthread_t t;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1; /* no SA_RESTART: flock returns EINTR */
    sigaction(SIGUSR1, &sa, NULL);
    ck_assert_int_eq(fl_acquire(l), 0);
    k.target = pthread_self();
    k.stop = 0;
    pthread_create(&t, NULL, kick, &k);
    ck_assert_int_eq(fl_lock_descriptor(fd, 1, 0.05, NULL, NULL), FL_EINTR);
    cancel_calls = 0;
    ck_assert_int_eq(fl_lock_descriptor(fd, 1, 0.05, cancel_second, NULL), FL_ECANCELED);
    ck_assert_int_eq(cancel_calls, 2);
    __atomic_store_n(&k.stop, 1, __ATOMIC_RELEASE);
    fl_join(t, 10);
    ck_assert_int_eq(fl_release(l, 0), 0);
    fl_lock_free(l);
    close(fd);
}
END_TEST

/* ---- per-call cancel callback ------------------------------------------ */

static int call_cancel_hits, handle_cancel_hits;
static int call_cancel(void *data, int interrupted) {
    (void)interrupted;
    ck_assert_ptr_eq(data, &call_cancel_hits);
    return ++call_cancel_hits >= 3;
}
static int handle_cancel(void *data, int interrupted) {
    (void)data;
    (void)interrupted;
    handle_cancel_hits++;
    return 0;
}

START_TEST(per_call_cancel_replaces_handle_cancel) {
    const char *p = P("x.lock");
    fl_lock *a = fl_new_kind(p, _i), *b = fl_new_kind(p, _i);
    fl_acquire_args args;
    fl_logrec rec;
    ck_assert_int_eq(fl_acquire(a), 0);
    fl_set_cancel(b, handle_cancel, NULL);
    fl_acquire_args_init(&args);
    args.set = FL_ARG_CANCEL | FL_ARG_TIMEOUT;
    args.timeout = 30;
    args.cancel = call_cancel;
    args.cancel_data = &call_cancel_hits;
    call_cancel_hits = handle_cancel_hits = 0;
    fl_log_record(&rec);
    ck_assert_int_eq(fl_acquire_with(b, &args), FL_ECANCELED);
    fl_set_log_handler(NULL, NULL);
    ck_assert_int_eq(call_cancel_hits, 3);
    ck_assert_int_eq(handle_cancel_hits, 0);
    ck_assert_int_eq(fl_lock_counter(b), 0);
    ck_assert_int_eq(fl_log_count(&rec, FL_LOG_CANCELLED, fl_lock_id(b)), 1);
    ck_assert_int_eq(fl_log_count(&rec, FL_LOG_TIMEOUT, fl_lock_id(b)), 0);
    /* NULL with the bit set: no callback at all for this call (a timeout
     * ends it), the handle's is not consulted either. */
    args.cancel = NULL;
    args.timeout = 0.15;
    ck_assert_int_eq(fl_acquire_with(b, &args), FL_ETIMEOUT);
    ck_assert_int_eq(handle_cancel_hits, 0);
    /* Without the bit the handle's callback is used. */
    args.set = FL_ARG_TIMEOUT;
    ck_assert_int_eq(fl_acquire_with(b, &args), FL_ETIMEOUT);
    ck_assert_int_gt(handle_cancel_hits, 0);
    ck_assert_int_eq(fl_release(a, 0), 0);
    fl_lock_free(a);
    fl_lock_free(b);
}
END_TEST

START_TEST(cancel_format_and_log_id) {
    const char *p = P("x.lock");
    fl_lock *l = fl_new_kind(p, FL_KERNEL);
    fl_logrec rec;
    char buf[256];
    fl_format_log(buf, sizeof buf, FL_LOG_CANCELLED, 140234, "/t/a.lock", 0);
    ck_assert_str_eq(buf, "Cancellation requested for lock 140234 on /t/a.lock");
    fl_set_log_id(l, 987654321987ULL);
    fl_log_record(&rec);
    ck_assert_int_eq(fl_acquire(l), 0);
    ck_assert_int_eq(fl_release(l, 0), 0);
    fl_set_log_id(l, 0);
    ck_assert_int_eq(fl_acquire(l), 0);
    ck_assert_int_eq(fl_release(l, 0), 0);
    fl_set_log_handler(NULL, NULL);
    ck_assert_int_eq(fl_log_count(&rec, FL_LOG_ACQUIRED, 987654321987ULL), 1);
    ck_assert_int_eq(fl_log_count(&rec, FL_LOG_RELEASED, 987654321987ULL), 1);
    ck_assert_int_eq(fl_log_count(&rec, FL_LOG_ACQUIRED, fl_lock_id(l)), 1);
    fl_set_log_id(NULL, 1); /* ignored */
    fl_lock_free(l);
}
END_TEST

/* ---- on_acquired ------------------------------------------------------------- */

typedef struct {
    int calls;
    int last_fd;
    int refuse;
    int other_could_lock; /* a second description could flock it: must stay 0 */
} hook_state;

static int hook(void *data, fl_lock *lock, int fd) {
    hook_state *st = data;
    int probe;
    ck_assert_ptr_nonnull(lock);
    st->calls++;
    st->last_fd = fd;
    /* The descriptor holds the lock when the hook runs. */
    probe = open(fl_lock_path(lock), O_RDWR | O_CLOEXEC);
    ck_assert_int_ge(probe, 0);
    if (flock(probe, LOCK_EX | LOCK_NB) == 0)
        st->other_could_lock = 1;
    close(probe);
    return st->refuse;
}

START_TEST(on_acquired_runs_once_per_physical_acquire) {
    const char *p = P("x.lock");
    fl_options o = FL_OPTIONS_INIT;
    hook_state st = {0, -1, 0, 0};
    fl_lock *l, *other = fl_new_kind(p, FL_KERNEL);
    o.on_acquired = hook;
    o.on_acquired_data = &st;
    ck_assert_int_eq(fl_lock_new(&l, p, &o), 0);
    ck_assert_int_eq(fl_acquire(l), 0);
    ck_assert_int_eq(fl_acquire(l), 0); /* re-entry: not again */
    ck_assert_int_eq(st.calls, 1);
    ck_assert_int_eq(st.last_fd, fl_lock_fd(l));
    ck_assert_int_eq(st.other_could_lock, 0);
    ck_assert_int_eq(fl_release(l, 1), 0);

    /* A refusal releases: the counter stays 0 and another handle wins. */
    st.refuse = FL_EIO;
    ck_assert_int_eq(fl_acquire(l), FL_EIO);
    ck_assert_msg(strstr(fl_last_error(), "on_acquired") != NULL, "%s", fl_last_error());
    ck_assert_int_eq(fl_lock_counter(l), 0);
    ck_assert_int_eq(fl_is_locked(l), 0);
    ck_assert_int_eq(fl_acquire_ex(other, 0, 1, 0.05), 0);
    ck_assert_int_eq(fl_release(other, 0), 0);
    /* A positive (not an error code) refusal is FL_ECANCELED. */
    st.refuse = 1;
    ck_assert_int_eq(fl_acquire(l), FL_ECANCELED);
    ck_assert_int_eq(st.calls, 3);
    ck_assert_int_eq(fl_acquire_ex(other, 0, 1, 0.05), 0);
    ck_assert_int_eq(fl_release(other, 0), 0);
    fl_lock_free(l);
    fl_lock_free(other);
}
END_TEST

START_TEST(on_acquired_settings) {
    const char *p = P("x.lock");
    fl_options o = FL_OPTIONS_INIT;
    hook_state st = {0, -1, 0, 0}, st2 = {0, -1, 0, 0};
    fl_lock *a, *b;
    o.on_acquired = hook;
    o.on_acquired_data = &st;
    o.kind = FL_SOFT;
    ck_assert_int_eq(fl_lock_new(&a, p, &o), FL_EINVAL);
    ck_assert_msg(strstr(fl_last_error(), "on_acquired is not supported"), "%s", fl_last_error());
    o.kind = FL_KERNEL;
    o.singleton = 1;
    ck_assert_int_eq(fl_lock_new(&a, p, &o), 0);
    ck_assert_int_eq(fl_lock_new(&b, p, &o), 0);
    ck_assert_ptr_eq(a, b);
    fl_lock_free(b);
    o.on_acquired_data = &st2; /* another hook: a differing setting */
    ck_assert_int_eq(fl_lock_new(&b, p, &o), FL_EINVAL);
    fl_lock_free(a);
}
END_TEST

/* A hook that waits forever for the file it is being run for, through its
 * own handle, another handle, or a hub owner's handle: the win is recorded
 * (and can be released) only once the hook returned, so the wait would
 * wait for itself. Once hung the process; now FL_EDEADLK at once. A finite
 * wait still just times out, and after the hook the lock is held. */
typedef struct {
    fl_lock *self, *other;
    int rc_self, rc_other, rc_finite;
} self_wait_state;

static int self_wait_hook(void *data, fl_lock *lock, int fd) {
    self_wait_state *st = data;
    (void)lock, (void)fd;
    st->rc_self = fl_acquire_ex(st->self, -1, 1, 0.05);
    st->rc_other = fl_acquire_ex(st->other, -1, 1, 0.05);
    st->rc_finite = fl_acquire_ex(st->other, 0.1, 1, 0.05);
    return 0;
}

static void never_done(void *data, fl_lock *lock, uint64_t owner, int rc) {
    (void)data, (void)lock, (void)owner, (void)rc;
    ck_abort_msg("a win at once calls no callback");
}

START_TEST(on_acquired_waiting_for_itself_is_a_deadlock) {
    const char *p = P("x.lock");
    fl_options o = FL_OPTIONS_INIT;
    self_wait_state st = {NULL, NULL, 1, 1, 1};
    fl_lock *l;
    fl_hub *hub;
    fl_hub_waiter *w = NULL;
    o.on_acquired = self_wait_hook;
    o.on_acquired_data = &st;
    o.thread_local = _i;
    ck_assert_int_eq(fl_lock_new(&l, p, &o), 0);
    st.self = l;
    st.other = fl_new_kind(p, FL_KERNEL);
    ck_assert_int_eq(fl_acquire(l), 0);
    ck_assert_int_eq(st.rc_self, FL_EDEADLK);
    ck_assert_int_eq(st.rc_other, FL_EDEADLK);
    ck_assert_int_eq(st.rc_finite, FL_ETIMEOUT);
    ck_assert_int_eq(fl_lock_counter(l), 1);
    ck_assert_int_eq(fl_acquire_ex(st.other, 0, 1, 0.05), FL_ETIMEOUT);
    ck_assert_int_eq(fl_release(l, 0), 0);
    /* A hub's win at once runs the hook on the loop's thread for another
     * owner (a task): the thread's own wait would still wait for it. */
    st.rc_self = st.rc_other = st.rc_finite = 1;
    ck_assert_int_eq(fl_hub_new(&hub), 0);
    ck_assert_int_eq(fl_hub_acquire(hub, l, 42, NULL, never_done, NULL, &w), 0);
    ck_assert_ptr_null(w);
    ck_assert_int_eq(st.rc_self, FL_EDEADLK);
    ck_assert_int_eq(st.rc_other, FL_EDEADLK);
    ck_assert_int_eq(st.rc_finite, FL_ETIMEOUT);
    ck_assert_int_eq(fl_lock_counter_as(l, 42), 1);
    ck_assert_int_eq(fl_hub_release(hub, l, 42, 0), 0);
    fl_hub_free(hub);
    /* Outside the hook the ordinary rules hold again. */
    ck_assert_int_eq(fl_acquire_ex(st.other, -1, 1, 0.05), 0);
    ck_assert_int_eq(fl_release(st.other, 0), 0);
    fl_lock_free(st.other);
    fl_lock_free(l);
}
END_TEST

Suite *suite_descriptor(void) {
    Suite *s = suite_create("descriptor");
    TCase *tc = fl_tcase("descriptor");
    tcase_add_test(tc, descriptor_contends_with_handle);
    tcase_add_test(tc, descriptor_bad_arguments);
    tcase_add_test(tc, descriptor_wait_interrupted);
    tcase_add_loop_test(tc, per_call_cancel_replaces_handle_cancel, FL_KERNEL, FL_SOFT + 1);
    tcase_add_test(tc, cancel_format_and_log_id);
    tcase_add_test(tc, on_acquired_runs_once_per_physical_acquire);
    tcase_add_test(tc, on_acquired_settings);
    tcase_add_loop_test(tc, on_acquired_waiting_for_itself_is_a_deadlock, 0, 2);
    suite_add_tcase(s, tc);
    return s;
}
