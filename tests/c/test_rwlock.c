/*
 * Read/write locks on the kernel lock (issue 10): many shared holders or
 * one exclusive holder, across handles, threads and processes; timeouts
 * and non-blocking tries in both modes; recursion within one mode and
 * FL_ELOCKMODE (never a silent conversion) across modes; the shared mode's
 * limits (no soft lock); the self-deadlock check per mode; a writer that is
 * not starved by readers re-acquiring all the time (read_write gate).
 *
 * Variants (_i in the loop tests): 0 a plain thread-local handle, 1 with
 * read_write (the writers' gate), 2 a handle shared by threads.
 */
#define _GNU_SOURCE
#include "testutil.h"

#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define N_VARIANTS 3

static fl_lock *new_rw(const char *path, int variant) {
    fl_options o = FL_OPTIONS_INIT;
    fl_lock *l = NULL;
    o.read_write = variant == 1;
    o.thread_local = variant != 2;
    ck_assert_msg(fl_lock_new(&l, path, &o) == 0, "fl_lock_new(%s): %s", path, fl_last_error());
    return l;
}

/* The helper's mode argument matching a variant. */
static const char *hmode(int variant, int shared) {
    if (variant == 1)
        return shared ? "rw-shared" : "rw-exclusive";
    return shared ? "shared" : "exclusive";
}

/* `fl_test_helper rtry`: 0 won (and released), 3 held elsewhere. */
static int helper_rtry(const char *path, const char *mode) {
    const char *args[] = {"rtry", path, mode, NULL};
    int out, rc;
    pid_t pid = fl_helper_start(args, &out, NULL);
    rc = fl_wait_child(pid, 20);
    close(out);
    return rc;
}

typedef struct rholder {
    pid_t pid;
    int out, in;
} rholder;

/* A helper holding in `mode` until its stdin closes (ms < 0) or for ms. */
static rholder rhold_start(const char *path, const char *mode, const char *ms) {
    const char *args[] = {"rhold", path, mode, ms, NULL};
    rholder h;
    h.pid = fl_helper_start(args, &h.out, &h.in);
    return h;
}

static void expect_line(int fd, const char *want, double timeout) {
    char line[64];
    ck_assert_msg(fl_read_line(fd, line, sizeof line, timeout) == 0, "helper did not say '%s'",
                  want);
    ck_assert_str_eq(line, want);
}

static void rhold_finish(rholder *h) {
    close(h->in);
    expect_line(h->out, "released", 20);
    ck_assert_int_eq(fl_wait_child(h->pid, 20), 0);
    close(h->out);
}

/* ---- many readers, one writer ------------------------------------------------- */

START_TEST(two_shared_handles) {
    const char *p = P("x.lock");
    fl_lock *a = new_rw(p, _i), *b = new_rw(p, _i), *w = new_rw(p, _i);
    double t0;
    ck_assert_int_eq(fl_acquire_shared(a, 0, 1, 0.05), 0);
    ck_assert_int_eq(fl_acquire_shared(b, 0, 1, 0.05), 0);
    ck_assert(fl_is_shared(a) && fl_is_shared(b));
    ck_assert_int_eq(fl_lock_counter(a), 1);
    ck_assert_int_eq(helper_rtry(p, hmode(_i, 1)), 0); /* a third reader, elsewhere */
    ck_assert_int_eq(helper_rtry(p, hmode(_i, 0)), 3); /* no writer */
    ck_assert_int_eq(fl_acquire_ex(w, 0, 1, 0.05), FL_ETIMEOUT);
    ck_assert_int_eq(fl_acquire_ex(w, 0.2, 1, 0.05), FL_ETIMEOUT);
    t0 = fl_mono();
    ck_assert_int_eq(fl_acquire_ex(w, 10, 0, 0.05), FL_ETIMEOUT); /* blocking=0: one try */
    ck_assert_msg(fl_mono() - t0 < 5, "blocking=0 must not wait out the timeout");
    ck_assert_int_eq(fl_lock_counter(w), 0);
    ck_assert_int_eq(fl_release(a, 0), 0);
    ck_assert_int_eq(fl_acquire_ex(w, 0, 1, 0.05), FL_ETIMEOUT); /* b still reads */
    ck_assert_int_eq(fl_release(b, 0), 0);
    ck_assert_int_eq(fl_acquire_ex(w, 0, 1, 0.05), 0);
    ck_assert(!fl_is_shared(w));
    ck_assert_int_eq(helper_rtry(p, hmode(_i, 1)), 3);
    ck_assert_int_eq(fl_release(w, 0), 0);
    fl_lock_free(a);
    fl_lock_free(b);
    fl_lock_free(w);
}
END_TEST

START_TEST(shared_with_helper_process) {
    const char *p = P("x.lock");
    fl_lock *l = new_rw(p, _i), *w = new_rw(p, _i);
    rholder r = rhold_start(p, hmode(_i, 1), "-1"), x;
    char line[64];
    expect_line(r.out, "held", 20);
    ck_assert_int_eq(fl_acquire_shared(l, 0, 1, 0.05), 0); /* two readers, two processes */
    ck_assert_int_eq(fl_acquire_ex(w, 0.2, 1, 0.05), FL_ETIMEOUT);
    /* A writer in another process waits for both readers. */
    x = rhold_start(p, hmode(_i, 0), "0");
    ck_assert_int_eq(fl_read_line(x.out, line, sizeof line, 0.3), -1);
    ck_assert_int_eq(fl_release(l, 0), 0);
    ck_assert_int_eq(fl_read_line(x.out, line, sizeof line, 0.3), -1); /* helper still reads */
    rhold_finish(&r);
    expect_line(x.out, "held", 20);
    expect_line(x.out, "released", 20);
    ck_assert_int_eq(fl_wait_child(x.pid, 20), 0);
    close(x.out);
    close(x.in);
    ck_assert_int_eq(fl_acquire_ex(w, 0, 1, 0.05), 0);
    fl_lock_free(l);
    fl_lock_free(w);
}
END_TEST

START_TEST(exclusive_excludes_both) {
    const char *p = P("x.lock");
    fl_lock *a = new_rw(p, _i), *b = new_rw(p, _i);
    double t0;
    ck_assert_int_eq(fl_acquire_ex(a, 0, 1, 0.05), 0);
    ck_assert_int_eq(fl_acquire_shared(b, 0, 1, 0.05), FL_ETIMEOUT);
    ck_assert_msg(strstr(fl_last_error(), p) != NULL, "%s", fl_last_error());
    ck_assert_int_eq(fl_acquire_shared(b, 0.2, 1, 0.05), FL_ETIMEOUT);
    ck_assert_int_eq(fl_acquire_ex(b, 0, 1, 0.05), FL_ETIMEOUT);
    ck_assert_int_eq(fl_acquire_ex(b, 0.2, 1, 0.05), FL_ETIMEOUT);
    t0 = fl_mono();
    ck_assert_int_eq(fl_acquire_shared(b, 10, 0, 0.05), FL_ETIMEOUT);
    ck_assert_int_eq(fl_acquire_ex(b, 10, 0, 0.05), FL_ETIMEOUT);
    ck_assert_msg(fl_mono() - t0 < 5, "blocking=0 must not wait out the timeout");
    ck_assert_int_eq(fl_lock_counter(b), 0);
    ck_assert(!fl_is_shared(b) && !fl_is_locked(b));
    ck_assert_int_eq(helper_rtry(p, hmode(_i, 1)), 3);
    ck_assert_int_eq(helper_rtry(p, hmode(_i, 0)), 3);
    ck_assert_int_eq(fl_release(a, 0), 0);
    ck_assert_int_eq(fl_acquire_shared(b, 0, 1, 0.05), 0);
    ck_assert_int_eq(helper_rtry(p, hmode(_i, 1)), 0);
    fl_lock_free(a);
    fl_lock_free(b);
}
END_TEST

/* _i: 0 helper writes / we read, 1 helper reads / we write, 2-3 same with read_write */
START_TEST(waiter_wins_after_release) {
    const char *p = P("x.lock");
    int variant = _i >= 2 ? 1 : 0, we_share = _i % 2 == 0;
    fl_lock *l = new_rw(p, variant);
    rholder h = rhold_start(p, hmode(variant, !we_share), "300");
    int rc;
    expect_line(h.out, "held", 20);
    rc = we_share ? fl_acquire_shared(l, 0, 1, 0.05) : fl_acquire_ex(l, 0, 1, 0.05);
    ck_assert_int_eq(rc, FL_ETIMEOUT);
    rc = we_share ? fl_acquire_shared(l, 20, 1, 0.05) : fl_acquire_ex(l, 20, 1, 0.05);
    ck_assert_msg(rc == 0, "%s", fl_last_error());
    ck_assert_int_eq(fl_is_shared(l), we_share);
    expect_line(h.out, "released", 20);
    ck_assert_int_eq(fl_wait_child(h.pid, 20), 0);
    close(h.out);
    close(h.in);
    ck_assert_int_eq(fl_release(l, 0), 0);
    /* waiting forever works in both modes too */
    h = rhold_start(p, hmode(variant, !we_share), "200");
    expect_line(h.out, "held", 20);
    rc = we_share ? fl_acquire_shared(l, -1, 1, 0.05) : fl_acquire_ex(l, -1, 1, 0.05);
    ck_assert_int_eq(rc, 0);
    ck_assert_int_eq(fl_wait_child(h.pid, 20), 0);
    close(h.out);
    close(h.in);
    fl_lock_free(l);
}
END_TEST

/* ---- recursion and modes ------------------------------------------------------- */

START_TEST(recursion_within_mode) {
    const char *p = P("x.lock");
    fl_lock *l = new_rw(p, _i);
    ck_assert_int_eq(fl_acquire_shared(l, 0, 1, 0.05), 0);
    ck_assert_int_eq(fl_acquire_shared(l, -1, 1, 0.05), 0);
    ck_assert_int_eq(fl_acquire_shared(l, 0, 0, 0.05), 0);
    ck_assert_int_eq(fl_lock_counter(l), 3);
    /* upgrade: refused, counter and mode unchanged, the lock still held */
    ck_assert_int_eq(fl_acquire_ex(l, 0, 1, 0.05), FL_ELOCKMODE);
    ck_assert_int_eq(fl_acquire_ex(l, -1, 1, 0.05), FL_ELOCKMODE);
    ck_assert_int_eq(fl_acquire(l), FL_ELOCKMODE);
    ck_assert_int_eq(fl_last_code(), FL_ELOCKMODE);
    ck_assert_msg(strstr(fl_last_error(), p) != NULL, "%s", fl_last_error());
    ck_assert_int_eq(fl_lock_counter(l), 3);
    ck_assert(fl_is_shared(l));
    ck_assert_int_eq(helper_rtry(p, hmode(_i, 0)), 3);
    ck_assert_int_eq(helper_rtry(p, hmode(_i, 1)), 0);
    ck_assert_int_eq(fl_release(l, 0), 0);
    ck_assert_int_eq(fl_release(l, 0), 0);
    ck_assert_int_eq(fl_lock_counter(l), 1);
    ck_assert_int_eq(helper_rtry(p, hmode(_i, 0)), 3);
    ck_assert_int_eq(fl_release(l, 0), 0);
    ck_assert_int_eq(fl_lock_counter(l), 0);
    ck_assert_int_eq(helper_rtry(p, hmode(_i, 0)), 0);

    /* downgrade: the same */
    ck_assert_int_eq(fl_acquire_ex(l, 0, 1, 0.05), 0);
    ck_assert_int_eq(fl_acquire(l), 0);
    ck_assert_int_eq(fl_acquire_shared(l, 0, 1, 0.05), FL_ELOCKMODE);
    ck_assert_int_eq(fl_acquire_shared(l, -1, 1, 0.05), FL_ELOCKMODE);
    ck_assert_int_eq(fl_lock_counter(l), 2);
    ck_assert(!fl_is_shared(l));
    ck_assert(fl_is_locked(l));
    ck_assert_int_eq(helper_rtry(p, hmode(_i, 1)), 3);
    ck_assert_int_eq(fl_release(l, 1), 0); /* force: all levels */
    ck_assert_int_eq(fl_lock_counter(l), 0);
    ck_assert_int_eq(helper_rtry(p, hmode(_i, 1)), 0);
    /* Released, either mode is fine again. */
    ck_assert_int_eq(fl_acquire_shared(l, 0, 1, 0.05), 0);
    ck_assert_int_eq(fl_release(l, 0), 0);
    fl_lock_free(l);
}
END_TEST

typedef struct peek {
    fl_lock *lock;
    int shared_seen, counter_seen, rc_shared, rc_ex, counter_after;
} peek;

static void *peek_main(void *arg) {
    peek *k = arg;
    k->shared_seen = fl_is_shared(k->lock);
    k->counter_seen = fl_lock_counter(k->lock);
    k->rc_shared = fl_acquire_shared(k->lock, 0, 1, 0.05);
    k->rc_ex = fl_acquire_ex(k->lock, 0, 1, 0.05);
    k->counter_after = fl_lock_counter(k->lock);
    if (k->rc_shared == 0)
        fl_release(k->lock, 0);
    return NULL;
}

START_TEST(is_shared_states) {
    const char *p = P("x.lock");
    fl_lock *l = new_rw(p, 0);
    peek k;
    pthread_t t;
    ck_assert_int_eq(fl_is_shared(NULL), 0);
    ck_assert_int_eq(fl_is_shared(l), 0);
    ck_assert_int_eq(fl_acquire_ex(l, 0, 1, 0.05), 0);
    ck_assert_int_eq(fl_is_shared(l), 0);
    ck_assert_int_eq(fl_release(l, 0), 0);
    ck_assert_int_eq(fl_acquire_shared(l, 0, 1, 0.05), 0);
    ck_assert_int_eq(fl_is_shared(l), 1);
    ck_assert_int_eq(fl_is_locked(l), 1);
    /* A thread-local handle: another thread holds nothing, and its own
     * shared acquire is a second reader, not recursion. */
    memset(&k, 0, sizeof k);
    k.lock = l;
    ck_assert_int_eq(pthread_create(&t, NULL, peek_main, &k), 0);
    fl_join(t, 20);
    ck_assert_int_eq(k.shared_seen, 0);
    ck_assert_int_eq(k.counter_seen, 0);
    ck_assert_int_eq(k.rc_shared, 0);
    ck_assert_int_eq(k.rc_ex, FL_ELOCKMODE); /* that thread then held shared */
    ck_assert_int_eq(k.counter_after, 1);
    ck_assert_int_eq(fl_lock_counter(l), 1);
    ck_assert_int_eq(fl_release(l, 0), 0);
    ck_assert_int_eq(fl_is_shared(l), 0);
    fl_lock_free(l);
}
END_TEST

START_TEST(thread_shared_handle_in_shared_mode) {
    /* thread_local=0: one hold for all threads, recursion across them. */
    const char *p = P("x.lock");
    fl_options o = FL_OPTIONS_INIT;
    fl_lock *l;
    peek k;
    pthread_t t;
    o.thread_local = 0;
    o.read_write = _i;
    ck_assert_int_eq(fl_lock_new(&l, p, &o), 0);
    ck_assert_int_eq(fl_acquire_shared(l, 0, 1, 0.05), 0);
    memset(&k, 0, sizeof k);
    k.lock = l;
    ck_assert_int_eq(pthread_create(&t, NULL, peek_main, &k), 0);
    fl_join(t, 20);
    ck_assert_int_eq(k.shared_seen, 1);
    ck_assert_int_eq(k.counter_seen, 1);
    ck_assert_int_eq(k.rc_shared, 0); /* joined our hold */
    ck_assert_int_eq(k.rc_ex, FL_ELOCKMODE);
    ck_assert_int_eq(k.counter_after, 2);
    ck_assert_int_eq(fl_lock_counter(l), 1); /* the thread released its level */
    ck_assert_int_eq(helper_rtry(p, _i ? "rw-exclusive" : "exclusive"), 3);
    ck_assert_int_eq(helper_rtry(p, _i ? "rw-shared" : "shared"), 0);
    ck_assert_int_eq(fl_release(l, 0), 0);
    ck_assert_int_eq(helper_rtry(p, _i ? "rw-exclusive" : "exclusive"), 0);
    fl_lock_free(l);
}
END_TEST

/* ---- what the shared mode does not do -------------------------------------------- */

START_TEST(soft_has_no_shared_mode) {
    const char *p = P("x.lock");
    fl_options o = FL_OPTIONS_INIT;
    fl_lock *l = fl_new_kind(p, FL_SOFT), *bad = (fl_lock *)&o;
    ck_assert_int_eq(fl_acquire_shared(l, 0, 1, 0.05), FL_ENOTSUP);
    ck_assert_int_eq(fl_acquire_shared(l, -1, 1, 0.05), FL_ENOTSUP);
    ck_assert_msg(strstr(fl_last_error(), p) != NULL, "%s", fl_last_error());
    ck_assert_int_eq(fl_lock_counter(l), 0);
    ck_assert_int_eq(fl_is_shared(l), 0);
    ck_assert_msg(!fl_exists(p), "a refused shared acquire created the marker");
    /* its exclusive mode is unaffected */
    ck_assert_int_eq(fl_acquire(l), 0);
    ck_assert_int_eq(fl_acquire_shared(l, 0, 1, 0.05), FL_ENOTSUP);
    ck_assert_int_eq(fl_lock_counter(l), 1);
    ck_assert_int_eq(fl_release(l, 0), 0);
    fl_lock_free(l);
    /* read_write needs the kernel lock */
    o.kind = FL_SOFT;
    o.read_write = 1;
    ck_assert_int_eq(fl_lock_new(&bad, p, &o), FL_EINVAL);
    ck_assert(bad == NULL);
    ck_assert_msg(strstr(fl_last_error(), p) != NULL, "%s", fl_last_error());
    /* nor falling back to it: a soft fallback would make readers exclusive */
    o.kind = FL_KERNEL;
    o.soft_fallback = 1;
    ck_assert_int_eq(fl_lock_new(&bad, p, &o), FL_EINVAL);
    ck_assert(bad == NULL);
    ck_assert_msg(strstr(fl_last_error(), "fallback") != NULL, "%s", fl_last_error());
    ck_assert(!fl_exists(p));
}
END_TEST

/* _i: 0 plain, 1 read_write */
START_TEST(self_deadlock_per_mode) {
    const char *p = P("x.lock");
    fl_lock *a = new_rw(p, _i), *b = new_rw(p, _i);
    double t0;
    ck_assert_int_eq(fl_acquire_shared(a, -1, 1, 0.05), 0);
    t0 = fl_mono();
    ck_assert_int_eq(fl_acquire_ex(b, -1, 1, 0.05), FL_EDEADLK);
    ck_assert_msg(fl_mono() - t0 < 5, "deadlock detection must not wait");
    ck_assert_int_eq(fl_lock_counter(b), 0);
    /* two shared holds in one thread do not conflict */
    ck_assert_int_eq(fl_acquire_shared(b, -1, 1, 0.05), 0);
    ck_assert_int_eq(fl_release(b, 0), 0);
    ck_assert_int_eq(fl_release(a, 0), 0);
    /* holding exclusive, waiting forever for shared */
    ck_assert_int_eq(fl_acquire_ex(a, -1, 1, 0.05), 0);
    ck_assert_int_eq(fl_acquire_shared(b, -1, 1, 0.05), FL_EDEADLK);
    ck_assert_int_eq(fl_acquire_ex(b, -1, 1, 0.05), FL_EDEADLK);
    /* with a timeout it is a plain timeout */
    ck_assert_int_eq(fl_acquire_shared(b, 0.1, 1, 0.05), FL_ETIMEOUT);
    ck_assert_int_eq(fl_release(a, 0), 0);
    ck_assert_int_eq(fl_acquire_ex(b, -1, 1, 0.05), 0);
    ck_assert_int_eq(fl_release(b, 0), 0);
    fl_lock_free(a);
    fl_lock_free(b);
}
END_TEST

/* ---- writers are not starved ------------------------------------------------------ */

/* Readers holding 20 ms each and re-acquiring at once overlap, so that
 * the lock is hardly ever free; without the gate a writer retrying waits
 * for a moment when all of them happen to be out at once. */
#define N_READERS 3

START_TEST(writer_not_starved) {
    const char *p = P("x.lock");
    const char *args[] = {"reader", p, "20", NULL};
    fl_lock *w = new_rw(p, 1);
    pid_t r[N_READERS];
    int out[N_READERS], in[N_READERS], i, rc;
    char line[64];
    double t0;
    for (i = 0; i < N_READERS; i++) {
        r[i] = fl_helper_start(args, &out[i], &in[i]);
        expect_line(out[i], "reading", 20);
    }
    /* Loose bound only. */
    t0 = fl_mono();
    rc = fl_acquire_ex(w, 10, 1, 0.05);
    ck_assert_msg(rc == 0, "the writer was starved: %s after %.1f s", fl_err_name(rc),
                  fl_mono() - t0);
    ck_assert(!fl_is_shared(w));
    ck_assert_int_eq(fl_release(w, 0), 0);
    for (i = 0; i < N_READERS; i++) {
        close(in[i]);
        ck_assert_int_eq(fl_read_line(out[i], line, sizeof line, 20), 0);
        ck_assert_msg(atol(line) > 0, "reader %d said '%s'", i, line);
        ck_assert_int_eq(fl_wait_child(r[i], 20), 0);
        close(out[i]);
    }
    fl_lock_free(w);
}
END_TEST

/* ---- threads: readers and writers exclude correctly ------------------------------- */

typedef struct rwshare {
    fl_lock *lock; /* a thread-local or thread-shared handle */
    int readers;   /* atomics: who is inside right now */
    int writers;
    int violations; /* atomic */
    int errors;     /* atomic */
    int err_code;
    int iterations;
} rwshare;

typedef struct rwthread {
    rwshare *sh;
    fl_lock *lock;
    int write_every;
} rwthread;

static void *rw_main(void *arg) {
    rwthread *t = arg;
    rwshare *sh = t->sh;
    int i;
    for (i = 0; i < sh->iterations; i++) {
        int write = t->write_every && i % t->write_every == 0;
        int rc =
            write ? fl_acquire_ex(t->lock, 30, 1, 0.05) : fl_acquire_shared(t->lock, 30, 1, 0.05);
        if (rc != 0) {
            __atomic_store_n(&sh->err_code, rc, __ATOMIC_RELAXED);
            __atomic_add_fetch(&sh->errors, 1, __ATOMIC_RELAXED);
            return NULL;
        }
        if (write) {
            int w = __atomic_add_fetch(&sh->writers, 1, __ATOMIC_SEQ_CST);
            if (w != 1 || __atomic_load_n(&sh->readers, __ATOMIC_SEQ_CST) != 0)
                __atomic_add_fetch(&sh->violations, 1, __ATOMIC_RELAXED);
            sched_yield();
            __atomic_sub_fetch(&sh->writers, 1, __ATOMIC_SEQ_CST);
        } else {
            __atomic_add_fetch(&sh->readers, 1, __ATOMIC_SEQ_CST);
            if (__atomic_load_n(&sh->writers, __ATOMIC_SEQ_CST) != 0)
                __atomic_add_fetch(&sh->violations, 1, __ATOMIC_RELAXED);
            sched_yield();
            __atomic_sub_fetch(&sh->readers, 1, __ATOMIC_SEQ_CST);
        }
        if (fl_release(t->lock, 0) != 0) {
            __atomic_add_fetch(&sh->errors, 1, __ATOMIC_RELAXED);
            return NULL;
        }
    }
    return NULL;
}

/* _i: 0 plain, 1 read_write. Four threads on one thread-local handle (each
 * thread its own hold) mix reads and writes; two more threads read through
 * one thread-shared handle. */
START_TEST(threads_readers_writers_exclude) {
    const char *p = P("x.lock");
    fl_options o = FL_OPTIONS_INIT;
    fl_lock *tl = new_rw(p, _i), *shared_handle;
    rwshare sh;
    rwthread th[6];
    pthread_t t[6];
    int i;
    o.thread_local = 0;
    o.read_write = _i;
    ck_assert_int_eq(fl_lock_new(&shared_handle, p, &o), 0);
    memset(&sh, 0, sizeof sh);
    sh.iterations = getenv("FL_TEST_VALGRIND") ? 40 : 200;
    for (i = 0; i < 6; i++) {
        th[i].sh = &sh;
        th[i].lock = i < 4 ? tl : shared_handle;
        th[i].write_every = i < 4 ? 3 + i : 0;
        ck_assert_int_eq(pthread_create(&t[i], NULL, rw_main, &th[i]), 0);
    }
    for (i = 0; i < 6; i++)
        fl_join(t[i], 120);
    ck_assert_msg(sh.errors == 0, "%d acquire/release errors (last %s)", sh.errors,
                  fl_err_name(sh.err_code));
    ck_assert_msg(sh.violations == 0, "%d times a writer and another holder were inside at once",
                  sh.violations);
    ck_assert_int_eq(fl_lock_counter(shared_handle), 0);
    ck_assert_int_eq(helper_rtry(p, _i ? "rw-exclusive" : "exclusive"), 0);
    fl_lock_free(shared_handle);
    fl_lock_free(tl);
}
END_TEST

Suite *suite_rwlock(void) {
    Suite *s = suite_create("rwlock");
    TCase *tc = fl_tcase("modes");
    tcase_add_loop_test(tc, two_shared_handles, 0, N_VARIANTS);
    tcase_add_loop_test(tc, shared_with_helper_process, 0, 2);
    tcase_add_loop_test(tc, exclusive_excludes_both, 0, N_VARIANTS);
    tcase_add_loop_test(tc, waiter_wins_after_release, 0, 4);
    suite_add_tcase(s, tc);

    tc = fl_tcase("recursion");
    tcase_add_loop_test(tc, recursion_within_mode, 0, N_VARIANTS);
    tcase_add_test(tc, is_shared_states);
    tcase_add_loop_test(tc, thread_shared_handle_in_shared_mode, 0, 2);
    tcase_add_test(tc, soft_has_no_shared_mode);
    tcase_add_loop_test(tc, self_deadlock_per_mode, 0, 2);
    suite_add_tcase(s, tc);

    tc = fl_tcase("fairness");
    tcase_add_test(tc, writer_not_starved);
    tcase_add_loop_test(tc, threads_readers_writers_exclude, 0, 2);
    suite_add_tcase(s, tc);
    return s;
}
