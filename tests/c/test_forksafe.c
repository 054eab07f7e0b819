/*
 * Fork from a multi-threaded process (issue 14, items 1 and 2): a child
 * forked at any moment, whatever the other threads are doing inside the
 * library, must be able to use every inherited handle at once (no mutex
 * inherited locked, no condition variable with ghost waiters), and must
 * never close a descriptor that the library inherited, because the child
 * may have closed it and reused the number for its own file. Children
 * report through their exit code (no Check assertions in a child).
 */
#define _GNU_SOURCE
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- item 1: fork stress --------------------------------------------------- */

typedef struct churn {
    fl_lock *shared; /* one handle shared by every thread */
    const char *path;
    int kind;
    int stop;
} churn;

/* Acquire/release/queries on the shared handle and on a thread-local one
 * of the same file (so that attempts contend and wait: the OS wait, the
 * wait for another thread's attempt on the condition variable, the wait
 * hub), plus handle creation (the registry). */
static void *churn_thread(void *arg) {
    churn *c = arg;
    fl_options o = FL_OPTIONS_INIT;
    fl_lock *mine, *tmp;
    unsigned i = 0;
    o.kind = (fl_kind)c->kind;
    if (fl_lock_new(&mine, c->path, &o) != 0)
        return NULL;
    while (!__atomic_load_n(&c->stop, __ATOMIC_ACQUIRE)) {
        if (fl_acquire_ex(c->shared, 0.05, 1, 0.01) == 0) {
            (void)fl_is_locked(c->shared);
            (void)fl_lock_counter(c->shared);
            fl_release(c->shared, 0);
        }
        if (fl_acquire_ex(mine, 0.05, 1, 0.01) == 0)
            fl_release(mine, 0);
        (void)fl_held_by_this_process(c->shared);
        if (i++ % 8 == 0 && fl_lock_new(&tmp, c->path, &o) == 0)
            fl_lock_free(tmp);
    }
    fl_lock_free(mine);
    return NULL;
}

/* The child: every call on the inherited handles must return at once. */
static int stress_child(churn *c, int n) {
    fl_lock *fresh;
    int rc;
    if (fl_is_locked(c->shared) || fl_lock_counter(c->shared) != 0)
        return 10; /* the parent's hold is not the child's */
    (void)fl_held_by_this_process(c->shared);
    /* Every 16th child also waits (the hub and the wait paths). */
    rc = fl_acquire_ex(c->shared, n % 16 == 0 ? 0.02 : 0, 1, 0.01);
    if (rc == 0) {
        if (fl_lock_counter(c->shared) != 1 || fl_release(c->shared, 0) != 0)
            return 11;
    } else if (rc != FL_ETIMEOUT) {
        return 12;
    }
    if (fl_lock_new(&fresh, c->path, NULL) != 0)
        return 13;
    fl_lock_free(fresh);
    return 0;
}

/* _i: the lock kind. 2000 forks while 4 threads churn (fewer under
 * valgrind and the sanitizers, which slow every fork down by 10-100x). */
START_TEST(fork_while_threads_churn) {
    enum { NTHREADS = 4 };
    churn c;
    pthread_t t[NTHREADS];
    int i, n, forks, hung = 0, failed = 0, first_fail = 0;
    fl_options o = FL_OPTIONS_INIT;
#ifdef FL_ASAN
    /* Seen with GCC 12: ASan's allocator takes no lock across fork, so a
     * child forked while another thread is inside malloc hangs in libasan
     * (backtrace: __asan::Allocator::Allocate -> Mutex::Lock). glibc's
     * malloc is fork-safe; the TSan and normal lanes run this test. */
    fprintf(stderr, "skipped: ASan's allocator is not fork-safe with threads running\n");
    return;
#endif
#ifdef FL_SANITIZED
    forks = 300;
#else
    forks = getenv("FL_TEST_VALGRIND") ? 60 : 2000;
#endif
    memset(&c, 0, sizeof c);
    c.kind = _i;
    c.path = P("x.lock");
    o.kind = (fl_kind)_i;
    o.thread_local = 0;
    ck_assert_int_eq(fl_lock_new(&c.shared, c.path, &o), 0);
    for (i = 0; i < NTHREADS; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, churn_thread, &c), 0);
    for (n = 0; n < forks && hung < 3; n++) {
        pid_t pid = fork();
        int rc;
        ck_assert(pid >= 0);
        if (pid == 0)
            fl_child_exit(stress_child(&c, n));
        rc = fl_wait_child(pid, 10);
        if (rc == -1)
            hung++;
        else if (!fl_child_ok(rc) && failed++ == 0)
            first_fail = rc;
    }
    __atomic_store_n(&c.stop, 1, __ATOMIC_RELEASE);
    for (i = 0; i < NTHREADS; i++)
        fl_join(t[i], 30);
    fl_lock_free(c.shared);
    ck_assert_msg(hung == 0, "%d of %d children hung (killed after 10 s)", hung, n);
    ck_assert_msg(failed == 0, "%d of %d children failed; the first exited with %d", failed, n,
                  first_fail);
}
END_TEST

/* A thread inside the hub (its mutex held) at the moment of fork: the
 * child still waits on its own hub. The thread is held there through the
 * seam's inotify_add_watch. */
static int gate_in_add_watch;
static int inside_add_watch;

static int slow_add_watch(int fd, const char *path, uint32_t mask) {
    __atomic_store_n(&inside_add_watch, 1, __ATOMIC_RELEASE);
    while (__atomic_load_n(&gate_in_add_watch, __ATOMIC_ACQUIRE))
        fl_sleep(0.001);
    return inotify_add_watch(fd, path, mask);
}

typedef struct hub_case {
    const char *path;
    fl_lock *waiter;
    int rc;
} hub_case;

static void *hub_waiter(void *arg) {
    hub_case *h = arg;
    h->rc = fl_acquire_ex(h->waiter, 0.3, 1, 0.01);
    return NULL;
}

static void *open_gate_later(void *arg) {
    (void)arg;
    fl_sleep(0.2);
    __atomic_store_n(&gate_in_add_watch, 0, __ATOMIC_RELEASE);
    return NULL;
}

static int hub_child(void *arg) {
    hub_case *h = arg;
    fl_lock *l;
    int rc;
    fl__sys_reset();
    if (fl_lock_new(&l, h->path, NULL) != 0)
        return 10;
    rc = fl_acquire_ex(l, 0.05, 1, 0.01); /* held by the parent: waits on the hub */
    fl_lock_free(l);
    fl_child_exit(rc == FL_ETIMEOUT ? 0 : 11);
    return 12;
}

START_TEST(fork_while_a_thread_is_inside_the_hub) {
    FL_NEEDS_LINUX("the inotify wait hub");
    hub_case h;
    fl_lock *holder;
    pthread_t t, opener;
    int rc;
    h.path = P("x.lock");
    holder = fl_new_kind(h.path, FL_KERNEL);
    ck_assert_int_eq(fl_acquire(holder), 0);
    h.waiter = fl_new_kind(h.path, FL_KERNEL);
    gate_in_add_watch = 1;
    inside_add_watch = 0;
    fl__sys.inotify_add_watch = slow_add_watch;
    ck_assert_int_eq(pthread_create(&t, NULL, hub_waiter, &h), 0);
    ck_assert_msg(fl_wait_flag(&inside_add_watch, 10), "the waiter never armed its watch");
    ck_assert_int_eq(pthread_create(&opener, NULL, open_gate_later, NULL), 0);
    /* fork() waits in the prepare handler until the waiter leaves the hub. */
    rc = fl_run_in_child(hub_child, &h, 20);
    ck_assert_msg(fl_child_ok(rc), "child forked while a thread was inside the hub exited with %d",
                  rc);
    fl_join(opener, 10);
    fl_join(t, 10);
    ck_assert_int_eq(h.rc, FL_ETIMEOUT);
    fl_lock_free(h.waiter);
    fl_lock_free(holder);
}
END_TEST

/* The same with a thread inside the owner-record and boot-id caches (a
 * soft lock's first attempt reads /proc through the seam's open). */
static int slow_proc_open(const char *path, int flags, mode_t mode) {
    if (strncmp(path, "/proc/", 6) == 0) {
        __atomic_store_n(&inside_add_watch, 1, __ATOMIC_RELEASE);
        while (__atomic_load_n(&gate_in_add_watch, __ATOMIC_ACQUIRE))
            fl_sleep(0.001);
    }
    return open(path, flags, mode);
}

static void *soft_taker(void *arg) {
    hub_case *h = arg;
    h->rc = fl_acquire_ex(h->waiter, 0, 1, 0.01);
    if (h->rc == 0)
        fl_release(h->waiter, 0);
    return NULL;
}

static int owner_child(void *arg) {
    hub_case *h = arg;
    fl_lock *l;
    int rc;
    fl__sys_reset();
    if (fl_lock_new(&l, h->path, NULL) != 0)
        return 10;
    fl_lock_free(l);
    l = fl_new_kind(h->path, FL_SOFT);
    rc = fl_acquire_ex(l, 5, 1, 0.01); /* writes the child's owner record */
    if (rc == 0)
        fl_release(l, 0);
    fl_lock_free(l);
    fl_child_exit(rc == 0 ? 0 : 11);
    return 12;
}

START_TEST(fork_while_a_thread_is_inside_the_owner_cache) {
    FL_NEEDS_LINUX("the /proc owner cache");
    hub_case h;
    pthread_t t, opener;
    int rc;
    if (!fl_test_forking) {
        fprintf(stderr, "skipped: the owner cache is warm when tests share one process\n");
        return;
    }
    h.path = P("s.lock");
    h.waiter = fl_new_kind(h.path, FL_SOFT);
    gate_in_add_watch = 1;
    inside_add_watch = 0;
    fl__sys.open = slow_proc_open;
    ck_assert_int_eq(pthread_create(&t, NULL, soft_taker, &h), 0);
    ck_assert_msg(fl_wait_flag(&inside_add_watch, 10), "the soft lock never read /proc");
    ck_assert_int_eq(pthread_create(&opener, NULL, open_gate_later, NULL), 0);
    rc = fl_run_in_child(owner_child, &h, 20);
    ck_assert_msg(fl_child_ok(rc),
                  "child forked while a thread was inside the owner cache exited with %d", rc);
    fl_join(opener, 10);
    fl_join(t, 10);
    ck_assert_int_eq(h.rc, 0);
    fl_lock_free(h.waiter);
}
END_TEST

/* ---- item 2: inherited descriptors are left alone ----------------------------- */

enum { NREUSE = 48 };

typedef struct reuse_case {
    fl_lock *lock;
    int kind;
} reuse_case;

/* The child closes every descriptor from 3 up (as daemons and closefrom()
 * users do), opens its own files, which reuse the numbers the library's
 * descriptors had, then uses the inherited handle (forgetting the parent's
 * hold) and waits on it (the hub). Its files must all still be its own. */
static int reuse_child(void *arg) {
    reuse_case *c = arg;
    int fds[NREUSE], i, rc;
    struct stat before[NREUSE], after;
    closefrom(3);
    for (i = 0; i < NREUSE; i++) {
        fds[i] = memfd_create("child-file", MFD_CLOEXEC);
        if (fds[i] < 0 || fstat(fds[i], &before[i]) != 0)
            return 10;
    }
    if (fds[0] != 3)
        return 11; /* the numbers were not reused: the test proves nothing */
    if (fl_is_locked(c->lock) || fl_lock_counter(c->lock) != 0)
        return 12;
    if (fl_release(c->lock, 1) != 0)
        return 13;
    /* Contended (the parent holds it): arms a watch in the child's hub. */
    rc = fl_acquire_ex(c->lock, 0.15, 1, 0.01);
    if (rc != FL_ETIMEOUT)
        return 14;
    for (i = 0; i < NREUSE; i++) {
        if (fstat(fds[i], &after) != 0)
            return 20 + (i > 9 ? 9 : i); /* closed by the library */
        if (after.st_dev != before[i].st_dev || after.st_ino != before[i].st_ino)
            return 30; /* closed and reopened as something else */
        if (write(fds[i], "x", 1) != 1)
            return 31;
    }
    fl_lock_free(c->lock);
    for (i = 0; i < NREUSE; i++)
        if (fstat(fds[i], &after) != 0 || after.st_size != 1)
            return 32;
    return 0;
}

/* _i: kind (bit 0), thread_local (bit 1). */
START_TEST(child_keeps_its_reused_descriptors) {
    const char *p = P("x.lock");
    fl_options o = FL_OPTIONS_INIT;
    reuse_case c;
    fl_lock *other;
    int rc;
    c.kind = _i & 1;
    o.kind = (fl_kind)c.kind;
    o.thread_local = (_i >> 1) & 1;
    ck_assert_int_eq(fl_lock_new(&c.lock, p, &o), 0);
    ck_assert_int_eq(fl_acquire(c.lock), 0);
    /* The parent's hub gets its instance through a contended wait. */
    ck_assert_int_eq(fl_lock_new(&other, p, &o), 0);
    ck_assert_int_eq(fl_acquire_ex(other, 0.05, 1, 0.01), FL_ETIMEOUT);
    rc = fl_run_in_child(reuse_child, &c, 20);
    ck_assert_msg(rc == 0, "child (%s, %s handle) exited with %d", fl_kind_name(c.kind),
                  o.thread_local ? "thread-local" : "shared", rc);
    /* The parent's lock survived the child. */
    ck_assert_int_eq(fl_lock_counter(c.lock), 1);
    ck_assert_int_eq(fl_helper_try(p, c.kind), 3);
    ck_assert_int_eq(fl_release(c.lock, 0), 0);
    ck_assert_int_eq(fl_acquire_ex(other, 0, 1, 0.01), 0);
    fl_lock_free(other);
    fl_lock_free(c.lock);
}
END_TEST

Suite *suite_forksafe(void) {
    Suite *s = suite_create("forksafe");
    TCase *tc = fl_tcase("forksafe");
    /* The stress has a per-child deadline; give the whole test room. */
    tcase_set_timeout(tc, 240);
    tcase_add_loop_test(tc, fork_while_threads_churn, FL_KERNEL, FL_SOFT + 1);
    tcase_add_test(tc, fork_while_a_thread_is_inside_the_hub);
    tcase_add_test(tc, fork_while_a_thread_is_inside_the_owner_cache);
    tcase_add_loop_test(tc, child_keeps_its_reused_descriptors, 0, 4);
    suite_add_tcase(s, tc);
    return s;
}
