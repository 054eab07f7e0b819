/*
 * Leases and lifetimes of the soft lock (core/src/lease.c, soft.c): a
 * live holder is never reclaimed, a frozen one is and learns it when it
 * wakes, every step of the refresh and of the reclaim fails cleanly
 * (faults through the fl__sys seam), and a forked child has no heartbeat
 * of its parent's.
 *
 * Durations are short but the assertions are about outcomes, never about
 * how long something took.
 */
#define _GNU_SOURCE
#include "testutil.h"

#include "soft.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

static fl_lock *new_lease(const char *path, double duration, double heartbeat) {
    fl_lock *l;
    fl_options o = FL_OPTIONS_INIT;
    o.kind = FL_SOFT;
    o.lease_duration = duration;
    o.heartbeat_interval = heartbeat;
    ck_assert_msg(fl_lock_new(&l, path, &o) == 0, "%s", fl_last_error());
    return l;
}

static fl_lock *new_lifetime(const char *path, double lifetime) {
    fl_lock *l;
    fl_options o = FL_OPTIONS_INIT;
    o.kind = FL_SOFT;
    o.lifetime = lifetime;
    ck_assert_msg(fl_lock_new(&l, path, &o) == 0, "%s", fl_last_error());
    return l;
}

/* What the compromise callback saw. */
typedef struct seen {
    int calls;  /* atomic */
    int reason; /* atomic */
    int os_errno;
    char path[512];
} seen;

static void on_compromise(void *data, fl_lock *lock, fl_lease_loss reason, int os_errno,
                          const char *path) {
    seen *s = data;
    (void)lock;
    s->os_errno = os_errno;
    snprintf(s->path, sizeof s->path, "%s", path);
    __atomic_store_n(&s->reason, (int)reason, __ATOMIC_SEQ_CST);
    __atomic_add_fetch(&s->calls, 1, __ATOMIC_SEQ_CST);
}

/* The library's heartbeat threads in this process (named "fl-lease").
 * Only the Linux half names threads (platform.h): the generic build's
 * tests do not count them (0, and skipped where a count is asserted). */
static int heartbeats(void) {
#ifndef FL__LINUX
    return 0;
#else
    DIR *d = opendir("/proc/self/task");
    struct dirent *e;
    int n = 0;
    if (!d)
        return -1;
    while ((e = readdir(d)) != NULL) {
        char p[300], comm[64] = "";
        if (e->d_name[0] == '.')
            continue;
        snprintf(p, sizeof p, "/proc/self/task/%s/comm", e->d_name);
        if (fl_read_file(p, comm, sizeof comm) > 0 && strcmp(comm, "fl-lease\n") == 0)
            n++;
    }
    closedir(d);
    return n;
#endif
}

/* Waits (bounded) until this process has n heartbeat threads. */
static int wait_heartbeats(int n, double timeout) {
    double end = fl_mono() + timeout;
    while (heartbeats() != n && fl_mono() < end)
        fl_sleep(0.01);
    return heartbeats() == n;
}

/* Writes a marker by hand, as a holder on this host with pid `pid` would,
 * and ages it by `age` seconds. */
static void plant(const char *path, const char *text, double age) {
    struct timeval tv[2];
    struct timespec now;
    fl_write_file(path, text);
    clock_gettime(CLOCK_REALTIME, &now);
    tv[0].tv_sec = tv[1].tv_sec = now.tv_sec - (time_t)age;
    tv[0].tv_usec = tv[1].tv_usec = (suseconds_t)(now.tv_nsec / 1000);
    ck_assert_int_eq(utimes(path, tv), 0);
}

static void lease_text(char *buf, size_t size, long pid, double duration) {
    char host[256];
    gethostname(host, sizeof host);
    host[sizeof host - 1] = '\0';
    snprintf(buf, size, "filelock/2\npid=%ld\nhost=%s\nmode=lease\ntoken=%032d\nduration=%g\n", pid,
             host, 7, duration);
}

static int ino_of(const char *path, ino_t *ino) {
    struct stat st;
    if (lstat(path, &st) != 0)
        return -1;
    *ino = st.st_ino;
    return 0;
}

/* ---- settings ------------------------------------------------------------ */

START_TEST(lease_settings_validated) {
    fl_lock *l;
    fl_options o = FL_OPTIONS_INIT;
    const char *p = P("a.lock");
    o.kind = FL_SOFT;
    o.lifetime = -1;
    ck_assert_int_eq(fl_lock_new(&l, p, &o), FL_EINVAL);
    ck_assert_ptr_nonnull(strstr(fl_last_error(), "lifetime must be finite and non-negative"));
    o.lifetime = NAN;
    ck_assert_int_eq(fl_lock_new(&l, p, &o), FL_EINVAL);
    o.lifetime = INFINITY;
    ck_assert_int_eq(fl_lock_new(&l, p, &o), FL_EINVAL);
    o.lifetime = 0;
    o.lease_duration = -2;
    ck_assert_int_eq(fl_lock_new(&l, p, &o), FL_EINVAL);
    ck_assert_ptr_nonnull(strstr(fl_last_error(), "lease_duration must be positive"));
    o.lease_duration = NAN;
    ck_assert_int_eq(fl_lock_new(&l, p, &o), FL_EINVAL);
    o.lease_duration = 3;
    o.heartbeat_interval = 3;
    ck_assert_int_eq(fl_lock_new(&l, p, &o), FL_EINVAL);
    ck_assert_ptr_nonnull(strstr(fl_last_error(), "heartbeat_interval must be positive and below"));
    o.heartbeat_interval = -1;
    ck_assert_int_eq(fl_lock_new(&l, p, &o), FL_EINVAL);
    o.heartbeat_interval = 0;
    o.lifetime = 5;
    ck_assert_int_eq(fl_lock_new(&l, p, &o), FL_EINVAL);
    o.lifetime = 0;
    o.kind = FL_KERNEL;
    ck_assert_int_eq(fl_lock_new(&l, p, &o), FL_EINVAL);
    ck_assert_ptr_nonnull(strstr(fl_last_error(), "a lease needs the soft lock"));
    o.kind = FL_SOFT;
    o.lease_duration = 0;
    o.heartbeat_interval = 1;
    ck_assert_int_eq(fl_lock_new(&l, p, &o), FL_EINVAL);
    /* Defaults: a third of the duration. */
    l = new_lease(p, 3.0, 0);
    ck_assert(fl_get_lease_duration(l) == 3.0);
    ck_assert(fl_get_heartbeat_interval(l) == 1.0);
    ck_assert(fl_get_lifetime(l) == 0);
    fl_lock_free(l);
    /* A lifetime on the kernel lock is accepted (it applies after a fallback). */
    o.kind = FL_KERNEL;
    o.heartbeat_interval = 0;
    o.lifetime = 2;
    ck_assert_int_eq(fl_lock_new(&l, p, &o), 0);
    ck_assert(fl_get_lifetime(l) == 2.0);
    fl_lock_free(l);
    ck_assert_str_eq(fl_lease_loss_name(FL_LEASE_OWNER_CHANGED), "owner-changed");
    ck_assert_str_eq(fl_lease_loss_name(FL_LEASE_MARKER_MISSING), "marker-missing");
    ck_assert_str_eq(fl_lease_loss_name(FL_LEASE_REFRESH_FAILED), "refresh-failed");
    ck_assert_str_eq(fl_err_name(FL_ELOST), "ELOST");
    ck_assert_str_eq(fl_err_name(FL_ELEASEMISMATCH), "ELEASEMISMATCH");
}
END_TEST

START_TEST(lease_given_settings_and_check) {
    fl_lock *l;
    fl_options o = FL_OPTIONS_INIT;
    const char *p = P("a.lock");
    o.kind = FL_SOFT;
    ck_assert_uint_eq(o.given, 0);
    /* Given explicitly, 0 is an error, not "no lease" / "the default". */
    fl_options_set_lease_duration(&o, 0);
    ck_assert_int_eq(fl_options_check(&o), FL_EINVAL);
    ck_assert_str_eq(fl_last_error(), "lease_duration must be positive, got 0");
    ck_assert_int_eq(fl_lock_new(&l, p, &o), FL_EINVAL);
    ck_assert_ptr_nonnull(
        strstr(fl_last_error(), "lease_duration must be positive, got 0 (lock file '"));
    ck_assert_ptr_nonnull(strstr(fl_last_error(), p));
    fl_options_set_lease_duration(&o, INFINITY);
    ck_assert_int_eq(fl_options_check(&o), FL_EINVAL);
    ck_assert_str_eq(fl_last_error(), "lease_duration must be positive, got inf");
    fl_options_set_lease_duration(&o, FL_LEASE_DEFAULT_DURATION);
    ck_assert_int_eq(fl_options_check(&o), 0);
    fl_options_set_heartbeat_interval(&o, 0);
    ck_assert_int_eq(fl_options_check(&o), FL_EINVAL);
    ck_assert_str_eq(fl_last_error(),
                     "heartbeat_interval must be positive and below lease_duration, got 0");
    /* Shortest round-trip digits, as the pure package's repr(). */
    fl_options_set_heartbeat_interval(&o, 0.1 + 0.2 + 30);
    ck_assert_int_eq(fl_options_check(&o), FL_EINVAL);
    ck_assert_str_eq(fl_last_error(),
                     "heartbeat_interval must be positive and below lease_duration, got 30.3");
    fl_options_set_heartbeat_interval(&o, 0.1);
    ck_assert_int_eq(fl_options_check(&o), 0);
    /* The default duration and heartbeat are the core's. */
    o.given &= ~FL_OPT_HEARTBEAT_INTERVAL;
    o.heartbeat_interval = 0;
    ck_assert_int_eq(fl_lock_new(&l, p, &o), 0);
    ck_assert(fl_get_lease_duration(l) == 30.0);
    ck_assert(fl_get_heartbeat_interval(l) == 30.0 / FL_LEASE_HEARTBEAT_DIVISOR);
    fl_lock_free(l);
    /* A heartbeat without a lease; a lifetime alone, checked without a path. */
    fl_options_init(&o);
    fl_options_set_heartbeat_interval(&o, 1);
    ck_assert_int_eq(fl_options_check(&o), FL_EINVAL);
    ck_assert_str_eq(fl_last_error(), "heartbeat_interval needs lease_duration");
    fl_options_init(&o);
    o.lifetime = -1;
    ck_assert_int_eq(fl_options_check(&o), FL_EINVAL);
    ck_assert_str_eq(fl_last_error(), "lifetime must be finite and non-negative, not -1");
    o.lifetime = 2.5;
    ck_assert_int_eq(fl_options_check(&o), 0);
    o.given = 0x80;
    ck_assert_int_eq(fl_options_check(&o), FL_EINVAL);
    ck_assert_int_eq(fl_lock_new(&l, p, &o), FL_EINVAL);
    ck_assert_int_eq(fl_options_check(NULL), FL_EINVAL);
}
END_TEST

/* Numbers in the lease messages and records read as Python's repr() (the
 * pure package's words): printf's %g wrote "1e+02" for 100 and "3e+01" for
 * 30, and the mismatch message's six digits made two different durations
 * read as equal. */
static void heartbeat_message(double lease, double hb, const char *want) {
    fl_options o = FL_OPTIONS_INIT;
    char expect[200];
    o.kind = FL_SOFT;
    fl_options_set_lease_duration(&o, lease);
    fl_options_set_heartbeat_interval(&o, hb);
    ck_assert_int_eq(fl_options_check(&o), FL_EINVAL);
    snprintf(expect, sizeof expect,
             "heartbeat_interval must be positive and below lease_duration, got %s", want);
    ck_assert_str_eq(fl_last_error(), expect);
}

START_TEST(lease_numbers_read_as_python_repr) {
    const char *p = P("a.lock");
    char text[600];
    fl_lock *l, *w;
    heartbeat_message(30, 30, "30");
    heartbeat_message(5, 100, "100");
    heartbeat_message(5, 1500, "1500");
    heartbeat_message(5, 123456.789, "123456.789");
    heartbeat_message(5, 1e16, "1e+16");
    heartbeat_message(5, 1.2345e22, "1.2345e+22");
    heartbeat_message(5, -1.5e-5, "-1.5e-05");
    heartbeat_message(5, -0.0001, "-0.0001");
    heartbeat_message(5, -1e-300, "-1e-300");
    heartbeat_message(5, 5.000000000000001, "5.000000000000001");
    heartbeat_message(5, NAN, "nan");
    /* The record a lease publishes: what the pure package's float() reads. */
    l = new_lease(p, 30, 0);
    ck_assert_int_eq(fl_acquire(l), 0);
    ck_assert_int_gt(fl_read_file(p, text, sizeof text), 0);
    ck_assert_msg(strstr(text, "\nduration=30\n") != NULL, "%s", text);
    ck_assert_int_eq(fl_release(l, 0), 0);
    fl_lock_free(l);
    /* Durations that differ past the sixth digit: both named exactly. */
    l = new_lease(p, 1.0 / 3, 0);
    w = new_lease(p, 0.333333, 0);
    ck_assert_int_eq(fl_acquire(l), 0);
    ck_assert_int_eq(fl_acquire_ex(w, 0, 0, 0.05), FL_ELEASEMISMATCH);
    ck_assert_msg(strstr(fl_last_error(), "holds a lease of 0.3333333333333333s but this contender "
                                          "configured 0.333333s") != NULL,
                  "%s", fl_last_error());
    ck_assert_int_eq(fl_release(l, 0), 0);
    fl_lock_free(w);
    fl_lock_free(l);
}
END_TEST

/* A caller built against the version-1 header passes a struct that ends at
 * heartbeat_interval. It is placed against a PROT_NONE page, so that a read
 * of `given` (past its end) faults; its lease fields keep their version-1
 * meaning (0: no lease / the default heartbeat). Before, version 1 was
 * refused outright, and the message did not name the lock file. */
typedef struct v1_options {
    unsigned version;
    fl_kind kind;
    double timeout, poll_interval;
    int blocking, mode, thread_local, singleton, soft_fallback, read_write;
    fl_acquired_fn on_acquired;
    void *on_acquired_data;
    double lifetime, lease_duration, heartbeat_interval;
} v1_options;

static v1_options *v1_at_page_end(void **map, size_t *maplen) {
    long page = sysconf(_SC_PAGESIZE);
    char *m =
        mmap(NULL, (size_t)page * 2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    v1_options *o;
    ck_assert(m != MAP_FAILED);
    ck_assert_int_eq(mprotect(m + page, (size_t)page, PROT_NONE), 0);
    o = (v1_options *)(m + page - sizeof(v1_options));
    memset(o, 0, sizeof *o);
    o->version = 1;
    o->kind = FL_SOFT;
    o->timeout = -1;
    o->poll_interval = 0.05;
    o->blocking = 1;
    o->mode = FL_MODE_DEFAULT;
    o->thread_local = 1;
    *map = m;
    *maplen = (size_t)page * 2;
    return o;
}

START_TEST(options_versions_1_and_2_read_as_they_were) {
    const char *p = P("a.lock");
    void *map;
    size_t maplen;
    v1_options *o = v1_at_page_end(&map, &maplen);
    fl_options cur = FL_OPTIONS_INIT;
    fl_lock *l;
    ck_assert_uint_eq(sizeof(v1_options), offsetof(fl_options, given));
    /* Not a lease (0 meant none), a soft lock. */
    ck_assert_int_eq(fl_options_check((const fl_options *)o), 0);
    ck_assert_int_eq(fl_lock_new(&l, p, (const fl_options *)o), 0);
    ck_assert_int_eq(fl_lock_kind(l), FL_SOFT);
    ck_assert(fl_get_lease_duration(l) == 0);
    fl_lock_free(l);
    /* A lease with the default heartbeat, as version 1 read 0. */
    o->lease_duration = 0.9;
    ck_assert_int_eq(fl_options_check((const fl_options *)o), 0);
    ck_assert_int_eq(fl_lock_new(&l, p, (const fl_options *)o), 0);
    ck_assert(fl_get_lease_duration(l) == 0.9);
    ck_assert(fl_get_heartbeat_interval(l) == 0.9 / FL_LEASE_HEARTBEAT_DIVISOR);
    ck_assert_int_eq(fl_acquire(l), 0);
    ck_assert_int_eq(fl_release(l, 0), 0);
    fl_lock_free(l);
    /* Version 1's bad values get version 2's errors, with the path. */
    o->lease_duration = -1;
    ck_assert_int_eq(fl_lock_new(&l, p, (const fl_options *)o), FL_EINVAL);
    ck_assert_ptr_nonnull(strstr(fl_last_error(), "lease_duration must be positive, got -1"));
    ck_assert_ptr_nonnull(strstr(fl_last_error(), p));
    o->lease_duration = 1;
    o->heartbeat_interval = 2;
    ck_assert_int_eq(fl_options_check((const fl_options *)o), FL_EINVAL);
    ck_assert_int_eq(munmap(map, maplen), 0);
    /* Version 2 (before singleton_scope) ends at a page end too: read up
     * to there, process-wide singletons, its `given` bits kept. */
    {
        long page = sysconf(_SC_PAGESIZE);
        size_t v2len = offsetof(fl_options, singleton_scope);
        char *m = mmap(NULL, (size_t)page * 2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                       -1, 0);
        fl_options *v2;
        ck_assert(m != MAP_FAILED);
        ck_assert_int_eq(mprotect(m + page, (size_t)page, PROT_NONE), 0);
        v2 = (fl_options *)(m + page - v2len);
        memcpy(v2, &cur, v2len);
        v2->version = 2;
        v2->kind = FL_SOFT;
        fl_options_set_lease_duration(v2, 0.9);
        ck_assert_int_eq(fl_options_check(v2), 0);
        ck_assert_int_eq(fl_lock_new(&l, p, v2), 0);
        ck_assert(fl_get_lease_duration(l) == 0.9);
        fl_lock_free(l);
        fl_options_set_heartbeat_interval(v2, 0); /* given 0: refused, as in version 3 */
        ck_assert_int_eq(fl_options_check(v2), FL_EINVAL);
        ck_assert_int_eq(munmap(m, (size_t)page * 2), 0);
    }
    /* Any other version: refused, naming the lock file. */
    cur.version = 99;
    ck_assert_int_eq(fl_lock_new(&l, p, &cur), FL_EINVAL);
    ck_assert_ptr_null(l);
    ck_assert_ptr_nonnull(strstr(fl_last_error(), "fl_options.version 99"));
    ck_assert_ptr_nonnull(strstr(fl_last_error(), p));
    ck_assert_int_eq(fl_options_check(&cur), FL_EINVAL);
    ck_assert_ptr_nonnull(strstr(fl_last_error(), "fl_options.version 99"));
}
END_TEST

/* A lease whose heartbeat is due again as soon as a refresh ends (an
 * interval shorter than a refresh: 1e-300 s is accepted, as by the pure
 * package): the heartbeat took the entry again before a releaser woken by
 * the end of the refresh could get the mutex, so release() waited forever
 * (the CLI's `--lease 1e-300` hung, deaf to SIGTERM). A releaser now waits
 * for at most the refresh in progress. Several leases at once, so that one
 * release also finds the others' refreshes due. */
START_TEST(release_of_a_lease_always_due_returns) {
    static const double durations[] = {3e-6, 1e-9, 1e-300};
    fl_lock *l[3];
    char name[32];
    int i;
    for (i = 0; i < 3; i++) {
        snprintf(name, sizeof name, "due%d.lock", i);
        l[i] = new_lease(P(name), durations[i], 0);
        ck_assert_msg(fl_acquire_ex(l[i], 0, 0, 0.05) == 0, "%s", fl_last_error());
    }
    /* The heartbeat is refreshing them back to back by now. */
    usleep(100 * 1000);
    for (i = 0; i < 3; i++) {
        ck_assert_msg(fl_release(l[i], 0) == 0, "%s", fl_last_error());
        ck_assert(!fl_exists(fl_lock_path(l[i])));
        fl_lock_free(l[i]);
    }
}
END_TEST

START_TEST(lease_record_is_protocol_2) {
    const char *p = P("a.lock");
    fl_lock *l = new_lease(p, 0.5, 0);
    char text[600], want[64];
    fl_owner o;
    ck_assert_int_eq(fl_acquire(l), 0);
    ck_assert_int_gt(fl_read_file(p, text, sizeof text), 0);
    snprintf(want, sizeof want, "filelock/2\npid=%ld\n", (long)getpid());
    ck_assert_msg(strncmp(text, want, strlen(want)) == 0, "%s", text);
    ck_assert_ptr_nonnull(strstr(text, "\nmode=lease\n"));
    ck_assert_ptr_nonnull(strstr(text, "\nduration=0.5\n"));
    ck_assert_ptr_nonnull(strstr(text, "\ntoken="));
    ck_assert_int_eq(fl_get_owner(l, &o), 0);
    ck_assert_int_eq(o.pid, (long)getpid());
    ck_assert_int_eq(o.this_process, 1);
    ck_assert_int_eq(fl_release(l, 0), 0);
    ck_assert(!fl_exists(p));
    fl_lock_free(l);
}
END_TEST

/* ---- the heartbeat ------------------------------------------------------ */

START_TEST(live_holder_never_reclaimed) {
    const char *p = P("a.lock");
    fl_lock *holder = new_lease(p, 1.0, 0.1), *waiter = new_lease(p, 1.0, 0.1);
    seen s = {0};
    ino_t before, after;
    fl_set_compromise_callback(holder, on_compromise, &s);
    ck_assert_int_eq(fl_acquire(holder), 0);
    ck_assert_int_eq(ino_of(p, &before), 0);
    /* Four durations of a contender trying all the time. */
    ck_assert_int_eq(fl_acquire_ex(waiter, 4.0, 1, 0.05), FL_ETIMEOUT);
    ck_assert_int_eq(ino_of(p, &after), 0);
    ck_assert_int_eq(before, after);
    ck_assert_int_eq(__atomic_load_n(&s.calls, __ATOMIC_SEQ_CST), 0);
    ck_assert_int_eq(fl_release(holder, 0), 0);
    ck_assert_int_eq(fl_acquire_ex(waiter, 0, 1, 0.05), 0);
    ck_assert_int_eq(fl_release(waiter, 0), 0);
    fl_lock_free(holder);
    fl_lock_free(waiter);
}
END_TEST

START_TEST(one_heartbeat_thread_per_process) {
    fl_lock *a, *b;
    FL_NEEDS_LINUX("the heartbeat thread's name (the generic half names no threads)");
    a = new_lease(P("a.lock"), 1.0, 0);
    b = new_lease(P("b.lock"), 1.0, 0);
    ck_assert(wait_heartbeats(0, 10)); /* an earlier test's (CK_FORK=no) has ended */
    ck_assert_int_eq(fl_acquire(a), 0);
    ck_assert_int_eq(fl_acquire(b), 0);
    /* (The thread names itself when it starts running.) */
    ck_assert(wait_heartbeats(1, 10));
    fl_sleep(0.1);
    ck_assert_int_eq(heartbeats(), 1);
    ck_assert_int_eq(fl_release(a, 0), 0);
    ck_assert_int_eq(heartbeats(), 1); /* b's */
    ck_assert_int_eq(fl_release(b, 0), 0);
    /* With no lease left the thread ends. */
    ck_assert(wait_heartbeats(0, 10));
    fl_lock_free(a);
    fl_lock_free(b);
}
END_TEST

static int g_touch_fail_left; /* atomic; <0: forever */
static int g_touch_errno;
static int bad_futimens(int fd, const struct timespec t[2]) {
    int left = __atomic_load_n(&g_touch_fail_left, __ATOMIC_SEQ_CST);
    if (left != 0) {
        if (left > 0)
            __atomic_sub_fetch(&g_touch_fail_left, 1, __ATOMIC_SEQ_CST);
        errno = g_touch_errno;
        return -1;
    }
    return futimens(fd, t);
}

START_TEST(refresh_failing_past_the_duration_is_a_loss) {
    const char *p = P("a.lock");
    fl_lock *l = new_lease(p, 0.6, 0.1);
    seen s = {0};
    fl_set_compromise_callback(l, on_compromise, &s);
    g_touch_fail_left = -1;
    g_touch_errno = EIO;
    fl__sys.futimens = bad_futimens;
    ck_assert_int_eq(fl_acquire(l), 0);
    ck_assert_int_eq(fl_wait_flag(&s.calls, 20), 1);
    ck_assert_int_eq(s.reason, FL_LEASE_REFRESH_FAILED);
    ck_assert_int_eq(s.os_errno, EIO);
    ck_assert_str_eq(s.path, p);
    /* Told once, never won back. */
    fl_sleep(0.3);
    ck_assert_int_eq(__atomic_load_n(&s.calls, __ATOMIC_SEQ_CST), 1);
    ck_assert_int_eq(fl_release(l, 0), FL_ELOST);
    ck_assert_ptr_nonnull(strstr(fl_last_error(), "refresh-failed"));
    ck_assert_ptr_nonnull(strstr(fl_last_error(), p));
    ck_assert_int_eq(fl_last_errno(), EIO);
    /* The marker was still ours: it goes. */
    ck_assert(!fl_exists(p));
    ck_assert_int_eq(fl_is_locked(l), 0);
    fl_lock_free(l);
}
END_TEST

START_TEST(transient_refresh_failures_are_ridden_out) {
    const char *p = P("a.lock");
    fl_lock *l = new_lease(p, 1.5, 0.1);
    seen s = {0};
    fl_set_compromise_callback(l, on_compromise, &s);
    g_touch_fail_left = 3;
    g_touch_errno = ESTALE;
    fl__sys.futimens = bad_futimens;
    ck_assert_int_eq(fl_acquire(l), 0);
    /* Until the three failures are spent, then two more refreshes. */
    while (__atomic_load_n(&g_touch_fail_left, __ATOMIC_SEQ_CST) > 0)
        fl_sleep(0.02);
    fl_sleep(0.3);
    ck_assert_int_eq(__atomic_load_n(&s.calls, __ATOMIC_SEQ_CST), 0);
    ck_assert_int_eq(fl_release(l, 0), 0);
    fl_lock_free(l);
}
END_TEST

/* lstat of the marker failing (a server away): transient until the
 * lease could have expired, then refresh-failed with its errno. */
static char g_lstat_path[512];
static int g_lstat_errno;
static int bad_lstat(const char *path, struct stat *st) {
    int e = __atomic_load_n(&g_lstat_errno, __ATOMIC_SEQ_CST);
    if (e && strcmp(path, g_lstat_path) == 0) {
        errno = e;
        return -1;
    }
    return lstat(path, st);
}

START_TEST(marker_stat_failing_is_a_refresh_failure) {
    const char *p = P("a.lock");
    fl_lock *l = new_lease(p, 0.6, 0.1);
    seen s = {0};
    fl_set_compromise_callback(l, on_compromise, &s);
    /* The seam is set before the heartbeat exists; only the errno changes. */
    snprintf(g_lstat_path, sizeof g_lstat_path, "%s", p);
    fl__sys.lstat = bad_lstat;
    ck_assert_int_eq(fl_acquire(l), 0);
    __atomic_store_n(&g_lstat_errno, ENOTCONN, __ATOMIC_SEQ_CST);
    ck_assert_int_eq(fl_wait_flag(&s.calls, 20), 1);
    ck_assert_int_eq(s.reason, FL_LEASE_REFRESH_FAILED);
    ck_assert_int_eq(s.os_errno, ENOTCONN);
    __atomic_store_n(&g_lstat_errno, 0, __ATOMIC_SEQ_CST);
    ck_assert_int_eq(fl_release(l, 0), FL_ELOST);
    ck_assert_int_eq(fl_last_errno(), ENOTCONN);
    /* Still ours, so removed; and never refreshed back to life. */
    ck_assert(!fl_exists(p));
    fl_lock_free(l);
}
END_TEST

START_TEST(marker_removed_is_a_loss) {
    const char *p = P("a.lock");
    fl_lock *l = new_lease(p, 0.6, 0.1), *op = new_lease(p, 0.6, 0);
    seen s = {0};
    fl_set_compromise_callback(l, on_compromise, &s);
    ck_assert_int_eq(fl_acquire(l), 0);
    ck_assert_int_eq(fl_break_lock(op), 0);
    ck_assert_int_eq(fl_wait_flag(&s.calls, 20), 1);
    ck_assert_int_eq(s.reason, FL_LEASE_MARKER_MISSING);
    /* Never recreated by the heartbeat. */
    fl_sleep(0.3);
    ck_assert(!fl_exists(p));
    ck_assert_int_eq(fl_release(l, 0), FL_ELOST);
    ck_assert_ptr_nonnull(strstr(fl_last_error(), "marker-missing"));
    fl_lock_free(l);
    fl_lock_free(op);
}
END_TEST

START_TEST(marker_replaced_is_a_loss_and_not_touched) {
    const char *p = P("a.lock");
    fl_lock *l = new_lease(p, 0.6, 0.1);
    seen s = {0};
    struct stat st;
    fl_set_compromise_callback(l, on_compromise, &s);
    ck_assert_int_eq(fl_acquire(l), 0);
    /* Another holder's marker in its place, aged: a refresh must not make
     * it young. */
    plant(P("other"), "1\nelsewhere\n", 100);
    ck_assert_int_eq(rename(P("other"), p), 0);
    ck_assert_int_eq(fl_wait_flag(&s.calls, 20), 1);
    ck_assert_int_eq(s.reason, FL_LEASE_OWNER_CHANGED);
    ck_assert_int_eq(lstat(p, &st), 0);
    ck_assert_int_gt((long)(time(NULL) - st.st_mtime), 50);
    ck_assert_int_eq(fl_release(l, 0), FL_ELOST);
    /* Not ours: left alone. */
    ck_assert(fl_exists(p));
    fl_lock_free(l);
}
END_TEST

/* A hold whose lease is lost is never entered again: a nested acquire says
 * FL_ELOST instead of counting itself in (the caller would run a critical
 * section believing it holds a lock that another process may hold); the
 * hold stays lost until released. Thread-local and shared handles alike. */
START_TEST(lost_hold_is_never_reentered) {
    const char *p = P("a.lock");
    int k;
    for (k = 0; k < 2; k++) {
        fl_lock *l, *op = new_lease(p, 0.6, 0);
        fl_options o = FL_OPTIONS_INIT;
        seen s = {0};
        o.kind = FL_SOFT;
        o.lease_duration = 0.6;
        o.heartbeat_interval = 0.1;
        o.thread_local = k;
        ck_assert_int_eq(fl_lock_new(&l, p, &o), 0);
        fl_set_compromise_callback(l, on_compromise, &s);
        ck_assert_int_eq(fl_acquire(l), 0);
        ck_assert_int_eq(fl_acquire(l), 0); /* nested while it holds */
        ck_assert_int_eq(fl_break_lock(op), 0);
        ck_assert_int_eq(fl_wait_flag(&s.calls, 20), 1);
        ck_assert_int_eq(fl_acquire(l), FL_ELOST);
        ck_assert_ptr_nonnull(strstr(fl_last_error(), "marker-missing"));
        ck_assert_int_eq(fl_release(l, 0), 0); /* the inner level */
        ck_assert_int_eq(fl_release(l, 0), FL_ELOST);
        ck_assert_int_eq(fl_is_locked(l), 0);
        /* Released: a new acquire is a new claim. */
        ck_assert_int_eq(fl_acquire(l), 0);
        ck_assert_int_eq(fl_release(l, 0), 0);
        fl_lock_free(l);
        fl_lock_free(op);
    }
}
END_TEST

/* The callback may release a shared handle from the heartbeat thread. */
static void release_from_callback(void *data, fl_lock *lock, fl_lease_loss reason, int os_errno,
                                  const char *path) {
    int *rc = data;
    (void)reason, (void)os_errno, (void)path;
    __atomic_store_n(rc, fl_release(lock, 0) == FL_ELOST ? 1 : 2, __ATOMIC_SEQ_CST);
}

START_TEST(callback_may_release_a_shared_handle) {
    const char *p = P("a.lock");
    fl_lock *l, *op = new_lease(p, 0.6, 0);
    fl_options o = FL_OPTIONS_INIT;
    int rc = 0;
    o.kind = FL_SOFT;
    o.lease_duration = 0.6;
    o.thread_local = 0;
    ck_assert_int_eq(fl_lock_new(&l, p, &o), 0);
    fl_set_compromise_callback(l, release_from_callback, &rc);
    ck_assert_int_eq(fl_acquire(l), 0);
    ck_assert_int_eq(fl_break_lock(op), 0);
    ck_assert_int_eq(fl_wait_flag(&rc, 20), 1);
    ck_assert_int_eq(fl_is_locked(l), 0);
    fl_lock_free(l);
    fl_lock_free(op);
}
END_TEST

/* A slow compromise callback of one lease (a program's cleanup; Python's
 * waiting for the interpreter lock) must not stall the refreshes of the
 * process's other leases: they would expire and be taken while their
 * holders run. */
static int g_slow_entered, g_slow_may_return; /* atomic */
static void slow_callback(void *data, fl_lock *lock, fl_lease_loss reason, int os_errno,
                          const char *path) {
    (void)data, (void)lock, (void)reason, (void)os_errno, (void)path;
    __atomic_store_n(&g_slow_entered, 1, __ATOMIC_SEQ_CST);
    (void)fl_wait_flag(&g_slow_may_return, 30);
}

START_TEST(slow_callback_never_stalls_other_leases) {
    fl_lock *a = new_lease(P("a.lock"), 0.6, 0.1), *b = new_lease(P("b.lock"), 0.6, 0.1);
    fl_lock *op = new_lease(P("a.lock"), 0.6, 0), *waiter = new_lease(P("b.lock"), 0.6, 0.1);
    seen sb = {0};
    ino_t before, after;
    fl_set_compromise_callback(a, slow_callback, NULL);
    fl_set_compromise_callback(b, on_compromise, &sb);
    ck_assert_int_eq(fl_acquire(a), 0);
    ck_assert_int_eq(fl_acquire(b), 0);
    ck_assert_int_eq(ino_of(P("b.lock"), &before), 0);
    /* a is lost; its callback runs (and waits) from now on. */
    ck_assert_int_eq(fl_break_lock(op), 0);
    ck_assert_int_eq(fl_wait_flag(&g_slow_entered, 20), 1);
    /* Several of b's durations of a contender trying: b lives. */
    ck_assert_int_eq(fl_acquire_ex(waiter, 2.5, 1, 0.05), FL_ETIMEOUT);
    ck_assert_int_eq(ino_of(P("b.lock"), &after), 0);
    ck_assert_int_eq(before, after);
    ck_assert_int_eq(__atomic_load_n(&sb.calls, __ATOMIC_SEQ_CST), 0);
    __atomic_store_n(&g_slow_may_return, 1, __ATOMIC_SEQ_CST);
    ck_assert_int_eq(fl_release(a, 0), FL_ELOST);
    ck_assert_int_eq(fl_release(b, 0), 0);
    fl_lock_free(a);
    fl_lock_free(b);
    fl_lock_free(op);
    fl_lock_free(waiter);
}
END_TEST

/* ---- reclaim -------------------------------------------------------------- */

/* A frozen holder (SIGSTOP: its heartbeat stops with it) loses its lease to
 * a waiter once the marker is older than the duration, and learns it when
 * it runs again: its callback says owner-changed, its release FL_ELOST. */
START_TEST(frozen_holder_loses_and_learns_it) {
    const char *p = P("a.lock");
    int pipefd[2];
    pid_t pid;
    char c;
    fl_lock *w;
    ck_assert_int_eq(pipe(pipefd), 0);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        fl_lock *l;
        seen s = {0};
        fl_options o = FL_OPTIONS_INIT;
        int ok;
        close(pipefd[0]);
        o.kind = FL_SOFT;
        o.lease_duration = 1.0;
        if (fl_lock_new(&l, p, &o) != 0 || fl_acquire(l) != 0)
            fl_child_exit(10);
        fl_set_compromise_callback(l, on_compromise, &s);
        if (write(pipefd[1], "x", 1) != 1)
            fl_child_exit(11);
        /* Stopped here by the parent; after SIGCONT the heartbeat finds
         * the marker replaced. */
        if (!fl_wait_flag(&s.calls, 30))
            fl_child_exit(12);
        ok = s.reason == FL_LEASE_OWNER_CHANGED;
        if (fl_release(l, 0) != FL_ELOST)
            fl_child_exit(13);
        fl_lock_free(l);
        fl_child_exit(ok ? 0 : 14);
    }
    close(pipefd[1]);
    ck_assert_int_eq(read(pipefd[0], &c, 1), 1);
    close(pipefd[0]);
    ck_assert_int_eq(kill(pid, SIGSTOP), 0);
    w = new_lease(p, 1.0, 0);
    ck_assert_msg(fl_acquire_ex(w, 20, 1, 0.05) == 0, "%s", fl_last_error());
    ck_assert_int_eq(fl_held_by_this_process(w), 1);
    ck_assert_int_eq(kill(pid, SIGCONT), 0);
    ck_assert(fl_child_ok(fl_wait_child(pid, 40)));
    /* The loser's release left our marker alone. */
    ck_assert_int_eq(fl_held_by_this_process(w), 1);
    ck_assert_int_eq(fl_release(w, 0), 0);
    ck_assert(!fl_exists(p));
    fl_lock_free(w);
}
END_TEST

START_TEST(expired_planted_lease_is_reclaimed_live_owner_or_not) {
    const char *p = P("a.lock");
    char text[512];
    fl_lock *w = new_lease(p, 0.5, 0);
    /* Our own pid: alive. Only age makes it reclaimable. */
    lease_text(text, sizeof text, (long)getpid(), 0.5);
    plant(p, text, 30);
    ck_assert_msg(fl_acquire_ex(w, 0, 1, 0.05) == 0, "%s", fl_last_error());
    ck_assert_int_eq(fl_release(w, 0), 0);
    /* A young one is not. */
    plant(p, text, 0);
    ck_assert_int_eq(fl_acquire_ex(w, 0, 1, 0.05), FL_ETIMEOUT);
    fl_lock_free(w);
}
END_TEST

START_TEST(lease_duration_mismatch_is_an_error) {
    const char *p = P("a.lock");
    char text[512];
    fl_lock *w = new_lease(p, 0.5, 0);
    lease_text(text, sizeof text, (long)getpid(), 2);
    plant(p, text, 30);
    ck_assert_int_eq(fl_acquire_ex(w, 1, 1, 0.05), FL_ELEASEMISMATCH);
    ck_assert_ptr_nonnull(strstr(fl_last_error(), "every contender for a path must agree"));
    ck_assert_ptr_nonnull(strstr(fl_last_error(), p));
    ck_assert(fl_exists(p));
    fl_lock_free(w);
}
END_TEST

START_TEST(plain_marker_of_a_live_owner_never_aged_out_by_a_lease) {
    const char *p = P("a.lock");
    char text[512], host[256];
    fl_lock *w = new_lease(p, 0.5, 0);
    gethostname(host, sizeof host);
    host[sizeof host - 1] = '\0';
    snprintf(text, sizeof text, "%ld\n%s\n", (long)getpid(), host);
    plant(p, text, 30);
    ck_assert_int_eq(fl_acquire_ex(w, 1.2, 1, 0.05), FL_ETIMEOUT);
    ck_assert(fl_exists(p));
    fl_lock_free(w);
}
END_TEST

/* A refresh landing between the waiter's read and its claim: the claim's
 * re-check (mtime changed) makes the waiter back off. */
static int g_touch_on_claim; /* 1: touch the marker when a claim is created */
static char g_marker[512];
static int touching_open(const char *path, int flags, mode_t mode) {
    size_t n = strlen(path);
    if (g_touch_on_claim && (flags & O_EXCL) && n > 6 && strcmp(path + n - 6, ".claim") == 0)
        (void)utimes(g_marker, NULL);
    return open(path, flags, mode);
}

START_TEST(refresh_between_judgement_and_claim_wins) {
    const char *p = P("a.lock");
    char text[512];
    fl_lock *w = new_lease(p, 0.5, 0);
    lease_text(text, sizeof text, (long)getpid(), 0.5);
    plant(p, text, 30);
    snprintf(g_marker, sizeof g_marker, "%s", p);
    g_touch_on_claim = 1;
    fl__sys.open = touching_open;
    ck_assert_int_eq(fl_acquire_ex(w, 0, 1, 0.05), FL_ETIMEOUT);
    ck_assert(fl_exists(p));
    g_touch_on_claim = 0;
    fl_lock_free(w);
}
END_TEST

/* Each failing step of the reclaim: an error naming the lock file (or
 * contention), the expired marker untouched, no claim left behind; with the
 * fault gone the reclaim succeeds. */
static int g_rename_errno;
static int bad_rename(const char *a, const char *b) {
    if (g_rename_errno) {
        errno = g_rename_errno;
        return -1;
    }
    return rename(a, b);
}
static int g_excl_errno;
static const char *g_excl_suffix; /* fail only O_EXCL creates of names ending so */
static int bad_excl_open(const char *path, int flags, mode_t mode) {
    size_t n = strlen(path), k = strlen(g_excl_suffix);
    if (g_excl_errno && (flags & O_EXCL) && n > k && strcmp(path + n - k, g_excl_suffix) == 0) {
        errno = g_excl_errno;
        return -1;
    }
    return open(path, flags, mode);
}
static int g_write_errno;
static ssize_t bad_write(int fd, const void *b, size_t n) {
    if (g_write_errno) {
        errno = g_write_errno;
        return -1;
    }
    return write(fd, b, n);
}

static int leftovers(void) {
    DIR *d = opendir(fl_tdir);
    struct dirent *e;
    int n = 0;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if ((len > 6 && strcmp(e->d_name + len - 6, ".claim") == 0) ||
            (len > 4 && strcmp(e->d_name + len - 4, ".new") == 0))
            n++;
    }
    closedir(d);
    return n;
}

START_TEST(reclaim_step_faults) {
    const char *p = P("a.lock");
    char text[512];
    ino_t before, after;
    fl_lock *w = new_lease(p, 0.5, 0);
    int step;
    lease_text(text, sizeof text, (long)getpid(), 0.5);
    for (step = 0; step < 4; step++) {
        int rc;
        plant(p, text, 30);
        ck_assert_int_eq(ino_of(p, &before), 0);
        if (step == 0 || step == 3) {
            g_excl_errno = EIO; /* the claim's create; the new marker's create */
            g_excl_suffix = step == 0 ? ".claim" : ".new";
            fl__sys.open = bad_excl_open;
        } else if (step == 1) {
            g_write_errno = ENOSPC; /* writing the claim or the new marker */
            fl__sys.write = bad_write;
        } else {
            g_rename_errno = EIO; /* moving the new marker over the old */
            fl__sys.rename = bad_rename;
        }
        rc = fl_acquire_ex(w, 0, 1, 0.05);
        ck_assert_msg(rc < 0 && rc != FL_ETIMEOUT, "step %d: %d %s", step, rc, fl_last_error());
        ck_assert_ptr_nonnull(strstr(fl_last_error(), p));
        ck_assert_int_eq(fl_is_locked(w), 0);
        ck_assert_int_eq(ino_of(p, &after), 0);
        ck_assert_int_eq(before, after);
        ck_assert_int_eq(leftovers(), 0);
        fl__sys_reset();
        g_excl_errno = g_write_errno = g_rename_errno = 0;
        ck_assert_msg(fl_acquire_ex(w, 0, 1, 0.05) == 0, "%s", fl_last_error());
        ck_assert_int_eq(fl_release(w, 0), 0);
        ck_assert(!fl_exists(p));
    }
    fl_lock_free(w);
}
END_TEST

/* A taker at work on our expired lease (it holds the claim of our marker's
 * identity) when we release: the release waits for it instead of unlinking
 * the name under it (a third process could create the name, and the taker
 * would then rename over it: two holders), and reports the loss. */
typedef struct taker {
    char path[512], claim[600], fresh[600];
} taker;

static void *finish_take_over(void *arg) {
    taker *t = arg;
    fl_sleep(0.3);
    /* The taker's marker replaces ours, then its claim goes. */
    ck_assert_int_eq(rename(t->fresh, t->path), 0);
    ck_assert_int_eq(unlink(t->claim), 0);
    return NULL;
}

START_TEST(release_waits_for_a_taker_of_its_lease) {
    const char *p = P("a.lock");
    fl_lock *l = new_lease(p, 0.6, 0);
    taker t;
    struct stat st;
    fl__fid id;
    pthread_t th;
    char text[512];
    ino_t fresh_ino, now;
    ck_assert_int_eq(fl_acquire(l), 0);
    ck_assert_int_eq(lstat(p, &st), 0);
    id.dev = (uint64_t)st.st_dev;
    id.ino = (uint64_t)st.st_ino;
    snprintf(t.path, sizeof t.path, "%s", p);
    ck_assert_int_eq(fl__soft_claim_name(p, &id, t.claim, sizeof t.claim), 0);
    snprintf(t.fresh, sizeof t.fresh, "%s", P("fresh"));
    /* A live taker's claim (this process's record) and its new marker. */
    lease_text(text, sizeof text, (long)getpid(), 0.6);
    fl_write_file(t.claim, text);
    fl_write_file(t.fresh, text);
    ck_assert_int_eq(ino_of(t.fresh, &fresh_ino), 0);
    ck_assert_int_eq(pthread_create(&th, NULL, finish_take_over, &t), 0);
    ck_assert_int_eq(fl_release(l, 0), FL_ELOST);
    ck_assert_ptr_nonnull(strstr(fl_last_error(), "owner-changed"));
    fl_join(th, 20);
    /* The taker's marker is untouched. */
    ck_assert_int_eq(ino_of(p, &now), 0);
    ck_assert_int_eq(now, fresh_ino);
    fl_lock_free(l);
}
END_TEST

/* A taker that judged our lease expired (a heartbeat late by a freeze, a
 * suspend, a stall) holds the claim of our marker and is about to rename its
 * own over it. A refresh in that window must not touch the marker and call
 * the lease renewed: the holder would go on for another interval after the
 * marker became the taker's (two holders). The refresh goes through the same
 * claim, so it waits for the taker and then finds the marker replaced. */
static char g_rc_claim[600], g_rc_path[512], g_rc_fresh[600];
static int g_rc_armed;        /* atomic (release/acquire): the names above are set */
static int g_rc_attempted;    /* atomic: the heartbeat tried to refresh */
static int g_rc_touched_held; /* atomic: touched while the taker held the claim */

static int rc_futimens(int fd, const struct timespec t[2]) {
    if (!__atomic_load_n(&g_rc_armed, __ATOMIC_ACQUIRE))
        return futimens(fd, t);
    if (access(g_rc_claim, F_OK) == 0)
        __atomic_add_fetch(&g_rc_touched_held, 1, __ATOMIC_SEQ_CST);
    __atomic_store_n(&g_rc_attempted, 1, __ATOMIC_SEQ_CST);
    return futimens(fd, t);
}

static int rc_open(const char *path, int flags, mode_t mode) {
    if (__atomic_load_n(&g_rc_armed, __ATOMIC_ACQUIRE) && (flags & O_EXCL) &&
        strcmp(path, g_rc_claim) == 0)
        __atomic_store_n(&g_rc_attempted, 1, __ATOMIC_SEQ_CST);
    return open(path, flags, mode);
}

static void *rc_finish_take_over(void *arg) {
    (void)arg;
    /* After the heartbeat's attempt: the interleaving, not a timing. */
    if (!fl_wait_flag(&g_rc_attempted, 20))
        return NULL;
    ck_assert_int_eq(rename(g_rc_fresh, g_rc_path), 0);
    ck_assert_int_eq(unlink(g_rc_claim), 0);
    return NULL;
}

START_TEST(refresh_never_races_a_taker_at_work) {
    const char *p = P("a.lock");
    fl_lock *l = new_lease(p, 3.0, 0.1);
    seen s = {0};
    struct stat st, after;
    fl__fid id;
    pthread_t th;
    char text[512];
    int reason;
    fl_set_compromise_callback(l, on_compromise, &s);
    /* The seam is set before the heartbeat exists (TSan), armed after. */
    fl__sys.futimens = rc_futimens;
    fl__sys.open = rc_open;
    ck_assert_int_eq(fl_acquire(l), 0);
    ck_assert_int_eq(lstat(p, &st), 0);
    id.dev = (uint64_t)st.st_dev;
    id.ino = (uint64_t)st.st_ino;
    snprintf(g_rc_path, sizeof g_rc_path, "%s", p);
    ck_assert_int_eq(fl__soft_claim_name(p, &id, g_rc_claim, sizeof g_rc_claim), 0);
    snprintf(g_rc_fresh, sizeof g_rc_fresh, "%s", P("fresh"));
    /* A live taker (this process's record): its claim and its new marker. */
    lease_text(text, sizeof text, (long)getpid(), 3.0);
    fl_write_file(g_rc_claim, text);
    fl_write_file(g_rc_fresh, text);
    ck_assert_int_eq(lstat(g_rc_fresh, &st), 0);
    __atomic_store_n(&g_rc_armed, 1, __ATOMIC_RELEASE);
    ck_assert_int_eq(pthread_create(&th, NULL, rc_finish_take_over, NULL), 0);
    ck_assert_int_eq(fl_wait_flag(&s.calls, 20), 1);
    fl_join(th, 20);
    ck_assert_int_eq(__atomic_load_n(&g_rc_touched_held, __ATOMIC_SEQ_CST), 0);
    /* owner-changed once the taker is done; refresh-failed (EBUSY) if its
     * claim outlived lease_duration - heartbeat_interval (a slow machine):
     * a loss told either way, never a renewal. */
    reason = __atomic_load_n(&s.reason, __ATOMIC_SEQ_CST);
    ck_assert_msg(reason == FL_LEASE_OWNER_CHANGED ||
                      (reason == FL_LEASE_REFRESH_FAILED && s.os_errno == EBUSY),
                  "reason %d errno %d", reason, s.os_errno);
    ck_assert_int_eq(fl_release(l, 0), FL_ELOST);
    /* The taker's marker: untouched by the loser. */
    ck_assert_int_eq(lstat(p, &after), 0);
    ck_assert_int_eq(after.st_ino, st.st_ino);
    ck_assert_int_eq(after.st_mtim.tv_sec, st.st_mtim.tv_sec);
    ck_assert_int_eq(after.st_mtim.tv_nsec, st.st_mtim.tv_nsec);
    fl_lock_free(l);
}
END_TEST

/* A lease held for a child (fl_set_owner_pid: the filelock command): the
 * child exits. While it is an unreaped zombie it is alive to a waiter (the
 * filelock command releases before it reaps), so the marker is not taken.
 * Once reaped before the release, a waiter rightly takes the marker of a
 * holder that is gone. That is the end of the hold, not a lease lost while
 * held: the release says 0, not FL_ELOST (attack-20 saw the CLI print "lost
 * ... another process may have held the lock meanwhile" when a zombie was
 * judged gone). The same marker replaced while the child still runs stays
 * a loss. */
START_TEST(owner_child_exit_then_taken_is_no_loss) {
    const char *p = P("a.lock");
    int k;
    for (k = 0; k < 2; k++) {
        int go[2];
        pid_t child;
        siginfo_t si;
        fl_lock *l = new_lease(p, 5.0, 0), *w = new_lease(p, 5.0, 0);
        ck_assert_int_eq(pipe(go), 0);
        child = fork();
        ck_assert_int_ge(child, 0);
        if (child == 0) {
            char c;
            close(go[1]);
            _exit(read(go[0], &c, 1) >= 0 ? 0 : 1);
        }
        close(go[0]);
        ck_assert_int_eq(fl_set_owner_pid(l, (long)child), 0);
        ck_assert_int_eq(fl_acquire(l), 0);
        if (k == 0) {
            /* The child ends: a zombie is alive (one attempt fails); reaped,
             * it is gone and a waiter takes over. */
            close(go[1]);
            ck_assert_int_eq(waitid(P_PID, (id_t)child, &si, WEXITED | WNOWAIT), 0);
            ck_assert_int_eq(fl_acquire_ex(w, 0, 0, 0.05), FL_ETIMEOUT);
            ck_assert(fl_child_ok(fl_wait_child(child, 20)));
            ck_assert_msg(fl_acquire_ex(w, 20, 1, 0.05) == 0, "%s", fl_last_error());
            ck_assert_int_eq(fl_release(l, 0), 0);
            ck_assert_int_eq(fl_held_by_this_process(w), 1);
            ck_assert_int_eq(fl_release(w, 0), 0);
        } else {
            /* The child runs; another marker replaces ours: a loss. */
            fl_write_file(P("other"), "1\nelsewhere\n");
            ck_assert_int_eq(rename(P("other"), p), 0);
            ck_assert_int_eq(fl_release(l, 0), FL_ELOST);
            ck_assert_int_eq(unlink(p), 0);
            close(go[1]);
            ck_assert(fl_child_ok(fl_wait_child(child, 20)));
        }
        fl_lock_free(l);
        fl_lock_free(w);
    }
}
END_TEST

/* ---- lifetime --------------------------------------------------------------- */

START_TEST(lifetime_supersedes_a_live_holder) {
    const char *p = P("a.lock");
    fl_lock *a = new_lifetime(p, 0.5), *b = new_lifetime(p, 0.5);
    ck_assert_int_eq(fl_acquire(a), 0);
    ck_assert_msg(fl_acquire_ex(b, 10, 1, 0.05) == 0, "%s", fl_last_error());
    /* a outlived its lifetime: its release says so and leaves b's marker. */
    ck_assert_int_eq(fl_release(a, 0), FL_ELOST);
    ck_assert_ptr_nonnull(strstr(fl_last_error(), "lifetime"));
    ck_assert_int_eq(fl_held_by_this_process(b), 1);
    ck_assert(fl_exists(p));
    ck_assert_int_eq(fl_release(b, 0), 0);
    ck_assert(!fl_exists(p));
    fl_lock_free(a);
    fl_lock_free(b);
}
END_TEST

/* ---- fork ------------------------------------------------------------------- */

static int child_has_no_heartbeat(void *arg) {
    const char *p2 = arg;
    fl_lock *l;
    int n = heartbeats();
    if (n != 0)
        return 20 + n;
#ifdef FL_SANITIZED
    /* The sanitizers cannot start a thread in a child of a multi-threaded
     * process (testutil.h): under ASan the new heartbeat hung in libasan's
     * allocator, locked at the fork by the parent's heartbeat. */
    (void)l;
    (void)p2;
    return 0;
#else
    /* Its own lease starts its own heartbeat. */
    l = new_lease(p2, 1.0, 0);
    if (fl_acquire(l) != 0)
        return 2;
#ifdef FL__LINUX
    if (!wait_heartbeats(1, 10))
        return 3;
#endif
    if (fl_release(l, 0) != 0)
        return 4;
    fl_lock_free(l);
    return 0;
#endif
}

START_TEST(fork_child_has_no_heartbeat_parent_keeps_its_own) {
    const char *p = P("a.lock"), *p2 = P("b.lock");
    fl_lock *l = new_lease(p, 0.6, 0.1);
    seen s = {0};
    int rc;
    if (!fl_test_forking)
        return; /* needs its own process: CK_FORK=no */
    fl_set_compromise_callback(l, on_compromise, &s);
    ck_assert_int_eq(fl_acquire(l), 0);
    rc = fl_run_in_child(child_has_no_heartbeat, (void *)p2, 30);
    ck_assert_msg(fl_child_ok(rc), "child: %d", rc);
    /* The parent's lease outlives two durations after the fork. */
    fl_sleep(1.3);
    ck_assert_int_eq(__atomic_load_n(&s.calls, __ATOMIC_SEQ_CST), 0);
    ck_assert_int_eq(fl_release(l, 0), 0);
    fl_lock_free(l);
}
END_TEST

Suite *suite_lease(void) {
    Suite *s = suite_create("lease");
    TCase *t = fl_tcase("lease");
    tcase_add_test(t, lease_settings_validated);
    tcase_add_test(t, lease_given_settings_and_check);
    tcase_add_test(t, lease_numbers_read_as_python_repr);
    tcase_add_test(t, options_versions_1_and_2_read_as_they_were);
    tcase_add_test(t, release_of_a_lease_always_due_returns);
    tcase_add_test(t, lease_record_is_protocol_2);
    tcase_add_test(t, live_holder_never_reclaimed);
    tcase_add_test(t, one_heartbeat_thread_per_process);
    tcase_add_test(t, refresh_failing_past_the_duration_is_a_loss);
    tcase_add_test(t, transient_refresh_failures_are_ridden_out);
    tcase_add_test(t, marker_stat_failing_is_a_refresh_failure);
    tcase_add_test(t, marker_removed_is_a_loss);
    tcase_add_test(t, marker_replaced_is_a_loss_and_not_touched);
    tcase_add_test(t, callback_may_release_a_shared_handle);
    tcase_add_test(t, lost_hold_is_never_reentered);
    tcase_add_test(t, slow_callback_never_stalls_other_leases);
    tcase_add_test(t, frozen_holder_loses_and_learns_it);
    tcase_add_test(t, expired_planted_lease_is_reclaimed_live_owner_or_not);
    tcase_add_test(t, lease_duration_mismatch_is_an_error);
    tcase_add_test(t, plain_marker_of_a_live_owner_never_aged_out_by_a_lease);
    tcase_add_test(t, refresh_between_judgement_and_claim_wins);
    tcase_add_test(t, reclaim_step_faults);
    tcase_add_test(t, release_waits_for_a_taker_of_its_lease);
    tcase_add_test(t, refresh_never_races_a_taker_at_work);
    tcase_add_test(t, owner_child_exit_then_taken_is_no_loss);
    tcase_add_test(t, lifetime_supersedes_a_live_holder);
    tcase_add_test(t, fork_child_has_no_heartbeat_parent_keeps_its_own);
    suite_add_tcase(s, t);
    return s;
}
