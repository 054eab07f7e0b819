/*
 * Hostile use of fork, threads and waits (attack on issue 14): a fork from
 * inside the library's own call-outs (the cancel callback), pthread_cancel
 * of a waiting thread, and a lock file replaced under a waiter that relies
 * on its inotify watch. Children report through their exit code.
 */
#define _GNU_SOURCE
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- fork from the cancel callback ------------------------------------- */

/* The process forks from the cancel callback of a waiting acquire. The
 * parent cancels its own wait and releases the holder; the child keeps
 * waiting, wins the lock after the fork, and must then own it: counter 1,
 * and its release must free the file for other processes. */
typedef struct fork_cb {
    pid_t child; /* in the parent: the child's pid; 0 in the child */
    int forked;
} fork_cb;

static int fork_from_cancel(void *data, int interrupted) {
    fork_cb *f = data;
    (void)interrupted;
    if (f->forked)
        return f->child != 0; /* the parent stops, the child keeps waiting */
    f->forked = 1;
    f->child = fork();
    if (f->child < 0)
        abort();
    return 0;
}

/* _i 0-3: kind (bit 0), thread-local handle (bit 1). _i 4-5: soft lock,
 * thread-local (bit 0), with a long poll interval: the child then relies on
 * a watch in its own hub (the parent's is unusable there). The kernel lock
 * has no such variant: the child's inherited copy of the holder's
 * descriptor keeps the holder's close from raising an event, so only the
 * re-check interval can notice that release. */
START_TEST(child_forked_in_cancel_callback_owns_what_it_wins) {
    const char *p = P("x.lock");
    fl_options o = FL_OPTIONS_INIT;
    fl_lock *holder, *w;
    fork_cb f = {0, 0};
    int kind = _i < 4 ? _i & 1 : FL_SOFT, rc;
    double poll = _i < 4 ? 0.01 : 1000.0;
    if (_i >= 4)
        FL_NEEDS_LINUX("a wake-up source for the release (the generic build re-checks only every "
                       "poll_interval, here 1000 s)");
    o.kind = (fl_kind)kind;
    o.thread_local = _i < 4 ? (_i >> 1) & 1 : _i & 1;
    ck_assert_int_eq(fl_lock_new(&holder, p, &o), 0);
    ck_assert_int_eq(fl_lock_new(&w, p, &o), 0);
    ck_assert_int_eq(fl_acquire(holder), 0);
    fl_set_cancel(w, fork_from_cancel, &f);
    rc = fl_acquire_ex(w, 100, 1, poll);
    if (f.child == 0) {
        /* The child: it won after the fork, so the hold is its own. */
        int code = 0;
        if (rc != 0)
            code = 10;
        else if (fl_lock_counter(w) != 1)
            code = 11; /* forgotten as if it were the parent's */
        else if (fl_release(w, 0) != 0)
            code = 12;
        else if (fl_acquire_ex(w, 0, 1, 0.01) != 0)
            code = 13;
        else if (fl_release(w, 0) != 0)
            code = 14;
        fl_child_exit(code);
    }
    ck_assert_int_eq(rc, FL_ECANCELED);
    ck_assert_int_eq(fl_release(holder, 0), 0);
    rc = fl_wait_child(f.child, 20); /* its own timeout is 100 s */
    ck_assert_msg(fl_child_ok(rc), "child (%s, %s, poll %d s) exited with %d (-1: hung)",
                  fl_kind_name(kind), o.thread_local ? "thread-local" : "shared", (int)poll, rc);
    /* Nobody holds it any more (the child released what it won). */
    ck_assert_int_eq(fl_helper_try(p, kind), 0);
    fl_lock_free(w);
    fl_lock_free(holder);
}
END_TEST

/* A shared handle: thread T leads an attempt (waiting for the holder), the
 * main thread waits for T's attempt on the handle's condition variable
 * and forks from its cancel callback. In the child T does not exist: its
 * attempt must not keep the child waiting (it used to until the timeout,
 * or forever with no timeout). */
typedef struct lead_arg {
    fl_lock *l;
    int rc;
} lead_arg;

static void *lead_thread(void *arg) {
    lead_arg *a = arg;
    a->rc = fl_acquire_ex(a->l, 20, 1, 0.01);
    return NULL;
}

static int fork_once_from_cancel(void *data, int interrupted) {
    fork_cb *f = data;
    (void)interrupted;
    if (f->forked)
        return f->child != 0;
    f->forked = 1;
    f->child = fork();
    if (f->child < 0)
        abort();
    return 0;
}

START_TEST(child_forked_while_waiting_for_another_threads_attempt) {
    const char *p = P("x.lock");
    fl_lock *holder, *shared;
    fl_options o = FL_OPTIONS_INIT;
    fork_cb f = {0, 0};
    lead_arg a;
    pthread_t t;
    int rc;
    o.thread_local = 0;
    holder = fl_new_kind(p, FL_KERNEL);
    ck_assert_int_eq(fl_lock_new(&shared, p, &o), 0);
    ck_assert_int_eq(fl_acquire(holder), 0);
    a.l = shared;
    a.rc = -999;
    ck_assert_int_eq(pthread_create(&t, NULL, lead_thread, &a), 0);
    /* T is inside its attempt once the handle reports a thread acquiring;
     * that field is internal: watch it under the handle's mutex. */
    for (;;) {
        int acq;
        pthread_mutex_lock(&shared->mu);
        acq = shared->acquiring;
        pthread_mutex_unlock(&shared->mu);
        if (acq)
            break;
        fl_sleep(0.001);
    }
    fl_set_cancel(shared, fork_once_from_cancel, &f);
    rc = fl_acquire_ex(shared, -1, 1, 0.01); /* forever: only the callback ends it */
    if (f.child == 0) {
        int code = 0;
        /* The holder's lock is the parent's, released by the parent. */
        if (rc != 0)
            code = 20 + (rc < 0 ? -rc : rc) % 20;
        else if (fl_lock_counter(shared) != 1)
            code = 41;
        else if (fl_release(shared, 0) != 0)
            code = 42;
        fl_child_exit(code);
    }
    ck_assert_int_eq(rc, FL_ECANCELED);
    ck_assert_int_eq(fl_release(holder, 0), 0);
    fl_join(t, 30);
    ck_assert_int_eq(a.rc, 0);
    ck_assert_int_eq(fl_release(shared, 0), 0);
    rc = fl_wait_child(f.child, 15);
    ck_assert_msg(fl_child_ok(rc), "child exited with %d (-1: hung)", rc);
    fl_lock_free(shared);
    fl_lock_free(holder);
}
END_TEST

/* Parent and child both go on waiting after a fork from the cancel
 * callback. The attempt's descriptor is one open file description shared
 * by both, and flock belongs to the description: if both kept using it,
 * both would be granted the lock at once. Shared memory tells each process
 * whether the other is inside; the winner stays inside until the other has
 * re-tried several times (its callback counts its wake-ups). */
typedef struct both_wait {
    int inside;   /* processes holding the lock (atomic) */
    int overlap;  /* set when a winner saw the other inside */
    int ticks[2]; /* cancel-callback calls: [0] parent, [1] child */
    int done[2];  /* finished its turn (or its wait) */
    int forked;   /* the fork happened: the holder may release */
    pid_t child;
} both_wait;

static both_wait *g_bw;
static int g_in_child; /* process-local, unlike *g_bw */

static int fork_and_keep_waiting(void *data, int interrupted) {
    both_wait *b = data;
    (void)interrupted;
    if (!__atomic_load_n(&b->forked, __ATOMIC_ACQUIRE)) {
        pid_t pid = fork();
        if (pid < 0)
            abort();
        if (pid > 0) {
            b->child = pid;
            __atomic_store_n(&b->forked, 1, __ATOMIC_RELEASE);
        } else {
            g_in_child = 1;
        }
    }
    __atomic_add_fetch(&b->ticks[g_in_child], 1, __ATOMIC_RELAXED);
    return 0;
}

static void *release_after_fork(void *arg) {
    fl_lock *holder = arg;
    (void)fl_wait_flag(&g_bw->forked, 30);
    (void)fl_release(holder, 0);
    return NULL;
}

/* The winner's side; returns 0 when it was alone inside. */
static int inside_alone(both_wait *b, int me) {
    int other = 1 - me, start, rc = 0;
    if (__atomic_add_fetch(&b->inside, 1, __ATOMIC_ACQ_REL) != 1)
        rc = 1;
    start = __atomic_load_n(&b->ticks[other], __ATOMIC_RELAXED);
    while (!rc && !__atomic_load_n(&b->done[other], __ATOMIC_ACQUIRE) &&
           __atomic_load_n(&b->ticks[other], __ATOMIC_RELAXED) < start + 8) {
        if (__atomic_load_n(&b->inside, __ATOMIC_ACQUIRE) != 1)
            rc = 1;
        fl_sleep(0.005);
    }
    if (rc)
        __atomic_store_n(&b->overlap, 1, __ATOMIC_RELEASE);
    __atomic_sub_fetch(&b->inside, 1, __ATOMIC_ACQ_REL);
    return rc;
}

/* _i: thread-local handle. */
START_TEST(parent_and_child_waiting_after_a_fork_exclude_each_other) {
    const char *p = P("x.lock");
    fl_options o = FL_OPTIONS_INIT;
    fl_lock *holder, *w;
    pthread_t t;
    int rc;
    g_bw = mmap(NULL, sizeof *g_bw, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    ck_assert(g_bw != MAP_FAILED);
    memset(g_bw, 0, sizeof *g_bw);
    o.thread_local = 0; /* released by another thread */
    ck_assert_int_eq(fl_lock_new(&holder, p, &o), 0);
    o.thread_local = _i;
    ck_assert_int_eq(fl_lock_new(&w, p, &o), 0);
    ck_assert_int_eq(fl_acquire(holder), 0);
    ck_assert_int_eq(pthread_create(&t, NULL, release_after_fork, holder), 0);
    fl_set_cancel(w, fork_and_keep_waiting, g_bw);
    g_in_child = 0;
    rc = fl_acquire_ex(w, 30, 1, 0.01);
    if (g_in_child) {
        int code = rc != 0 ? 10 : inside_alone(g_bw, 1) ? 11 : fl_release(w, 0) != 0 ? 12 : 0;
        __atomic_store_n(&g_bw->done[1], 1, __ATOMIC_RELEASE);
        fl_child_exit(code);
    }
    ck_assert_int_eq(rc, 0);
    rc = inside_alone(g_bw, 0);
    ck_assert_int_eq(fl_release(w, 0), 0);
    __atomic_store_n(&g_bw->done[0], 1, __ATOMIC_RELEASE);
    ck_assert_msg(!rc, "parent and child held the lock at once");
    rc = fl_wait_child(g_bw->child, 40);
    ck_assert_msg(fl_child_ok(rc), "child exited with %d (11: both held the lock)", rc);
    ck_assert(!g_bw->overlap);
    fl_join(t, 10);
    fl_lock_free(w);
    fl_lock_free(holder);
    munmap(g_bw, sizeof *g_bw);
}
END_TEST

/* ---- fork from the log handler ------------------------------------------ */

/* The log handler forks when the lock has been won (FL_LOG_ACQUIRED),
 * before fl_acquire returns. The lock is the parent's: the child's call
 * must not report it as its own (a release there would unlock the parent's
 * open file description or delete its marker). */
static pid_t g_log_child = -1;

static void fork_on_acquired(void *data, fl_log_event ev, uint64_t id, const char *path,
                             double seconds) {
    (void)data;
    (void)id;
    (void)path;
    (void)seconds;
    if (ev == FL_LOG_ACQUIRED && g_log_child < 0) {
        g_log_child = fork();
        if (g_log_child < 0)
            abort();
    }
}

/* _i: kind (bit 0), thread-local (bit 1). */
START_TEST(child_forked_in_log_handler_does_not_own_the_parents_lock) {
    const char *p = P("x.lock");
    fl_options o = FL_OPTIONS_INIT;
    fl_lock *l;
    int kind = _i & 1, rc;
    o.kind = (fl_kind)kind;
    o.thread_local = (_i >> 1) & 1;
    ck_assert_int_eq(fl_lock_new(&l, p, &o), 0);
    g_log_child = -1;
    fl_set_log_handler(fork_on_acquired, NULL);
    rc = fl_acquire(l);
    if (g_log_child == 0) {
        int code = 0;
        fl_set_log_handler(NULL, NULL);
        if (rc != FL_ECANCELED)
            code = 20 + (rc < 0 ? -rc : rc) % 20;
        else if (fl_lock_counter(l) != 0)
            code = 41;
        else if (fl_release(l, 1) != 0)
            code = 42;
        fl_child_exit(code);
    }
    fl_set_log_handler(NULL, NULL);
    ck_assert_int_eq(rc, 0);
    rc = fl_wait_child(g_log_child, 20);
    ck_assert_msg(fl_child_ok(rc), "child exited with %d", rc);
    /* Still the parent's, and still held. */
    ck_assert_int_eq(fl_lock_counter(l), 1);
    ck_assert_int_eq(fl_helper_try(p, kind), 3);
    ck_assert_int_eq(fl_release(l, 0), 0);
    ck_assert_int_eq(fl_helper_try(p, kind), 0);
    fl_lock_free(l);
}
END_TEST

/* ---- pthread_cancel of a thread inside the library ------------------------ */

/* A thread waiting in fl_acquire_ex is cancelled with pthread_cancel. The
 * library's calls are not cancellation points (cancellation is deferred
 * until the call returns): a cancel acted upon inside the wait would leave
 * the handle's "a thread is acquiring" mark set (every later acquire of
 * the shared handle waits for a thread that is gone), its waiter in the
 * hub, its descriptors open, and - in the first soft acquire, which reads
 * the boot id under a mutex - that mutex locked for good, which also hangs
 * every later fork() in the atfork handler. */
typedef struct cancel_arg {
    fl_lock *l;
    int started;
    int returned; /* the call returned (cancellation is acted upon after it) */
} cancel_arg;

static void *wait_then_be_cancelled(void *arg) {
    cancel_arg *a = arg;
    __atomic_store_n(&a->started, 1, __ATOMIC_RELEASE);
    (void)fl_acquire_ex(a->l, 1.0, 1, 0.01);
    __atomic_store_n(&a->returned, 1, __ATOMIC_RELEASE);
    pthread_testcancel();
    return NULL;
}

/* _i: kind. */
START_TEST(pthread_cancel_of_a_waiter_leaves_the_library_consistent) {
    const char *p = P("x.lock");
    fl_options o = FL_OPTIONS_INIT;
    fl_lock *holder, *shared;
    cancel_arg a = {0, 0, 0};
    pthread_t t;
    void *res;
    int fds, kind = _i, i;
    o.kind = (fl_kind)kind;
    o.thread_local = 0;
    ck_assert_int_eq(fl_lock_new(&holder, p, &o), 0);
    ck_assert_int_eq(fl_lock_new(&shared, p, &o), 0);
    ck_assert_int_eq(fl_acquire(holder), 0);
    /* Warm up the caches and the hub, so that the count below compares
     * like with like. */
    ck_assert_int_eq(fl_acquire_ex(shared, 0.05, 1, 0.01), FL_ETIMEOUT);
    fds = fl_open_fd_count();
    a.l = shared;
    ck_assert_int_eq(pthread_create(&t, NULL, wait_then_be_cancelled, &a), 0);
    ck_assert(fl_wait_flag(&a.started, 10));
    /* Cancel it at several points of its wait. */
    for (i = 0; i < 5; i++)
        fl_sleep(0.02);
    ck_assert_int_eq(pthread_cancel(t), 0);
    ck_assert_int_eq(pthread_join(t, &res), 0);
    ck_assert(res == PTHREAD_CANCELED);
    ck_assert_msg(__atomic_load_n(&a.returned, __ATOMIC_ACQUIRE),
                  "cancelled inside fl_acquire_ex (a cancellation point)");
    ck_assert_int_eq(fl_open_fd_count(), fds);
    ck_assert_int_eq(fl_release(holder, 0), 0);
    /* The shared handle is usable at once: nobody is "acquiring". */
    ck_assert_int_eq(fl_acquire_ex(shared, 0, 1, 0.01), 0);
    ck_assert_int_eq(fl_release(shared, 0), 0);
    fl_lock_free(shared);
    fl_lock_free(holder);
}
END_TEST

/* ---- the lock file replaced under a waiter --------------------------------- */

/* A waiter with a long poll interval relies on its inotify watch. When the
 * lock file is replaced (rename over it, or renamed away and re-created),
 * the lock lives on the new inode: the waiter must follow it (a new watch,
 * a new descriptor), or it waits for an inode that nobody uses any more. */
typedef struct replace_arg {
    fl_lock *l;
    int rc;
} replace_arg;

static void *long_poll_waiter(void *arg) {
    replace_arg *a = arg;
    a->rc = fl_acquire_ex(a->l, 100, 1, 1000.0);
    return NULL;
}

/* The number of this process's descriptors open on inode ino. Through
 * /proc paths rather than fstat: other threads own these descriptors (and
 * TSan would call an fstat on them a race). */
static int fds_on_inode(ino_t ino) {
    int n = 0, fd;
    for (fd = 0; fd < 1024; fd++) {
        char path[64];
        struct stat st;
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        if (stat(path, &st) == 0 && S_ISREG(st.st_mode) && st.st_ino == ino)
            n++;
    }
    return n;
}

/* The holder of the old inode never releases: the path was renamed away
 * and re-created, and the new file is free. */
START_TEST(waiter_follows_a_lock_file_renamed_away) {
    FL_NEEDS_LINUX("the inotify watch that follows the lock file (the waiter polls every 1000 s)");
    const char *p = P("x.lock"), *old = P("x.lock.old");
    fl_lock *holder, *w;
    fl_logrec rec;
    replace_arg a;
    pthread_t t;
    holder = fl_new_kind(p, FL_KERNEL);
    w = fl_new_kind(p, FL_KERNEL);
    ck_assert_int_eq(fl_acquire(holder), 0);
    fl_log_record(&rec);
    a.l = w;
    a.rc = -999;
    ck_assert_int_eq(pthread_create(&t, NULL, long_poll_waiter, &a), 0);
    ck_assert(fl_wait_flag(&rec.waiting, 10));
    ck_assert_int_eq(rename(p, old), 0);
    fl_write_file(p, "");
    fl_join(t, 20); /* the waiter's own timeout is 100 s */
    ck_assert_msg(a.rc == 0, "waiter returned %d: %s", a.rc, fl_last_error());
    ck_assert_int_eq(fl_release(w, 0), 0);
    ck_assert_int_eq(fl_release(holder, 0), 0);
    fl_lock_free(w);
    fl_lock_free(holder);
}
END_TEST

/* A locked file is renamed over the lock path while the waiter waits; the
 * old inode's holder releases (the waiter wins it, sees it is no longer the
 * lock file, and starts over on the new one), and the new file's holder
 * releases later: that release must wake the waiter. */
START_TEST(waiter_follows_a_lock_file_replaced_by_rename) {
    FL_NEEDS_LINUX("the inotify watch that follows the lock file");
    const char *p = P("x.lock"), *tmp = P("x.lock.new");
    fl_lock *a_holder, *b_holder, *w;
    fl_logrec rec;
    replace_arg a;
    pthread_t t;
    struct stat st;
    int i, keep;
    fl_options o = FL_OPTIONS_INIT;
    o.thread_local = 0; /* released from this thread, inspected from others */
    ck_assert_int_eq(fl_lock_new(&a_holder, p, &o), 0);
    /* B locks the new file before it is renamed into place. */
    ck_assert_int_eq(fl_lock_new(&b_holder, tmp, &o), 0);
    w = fl_new_kind(p, FL_KERNEL);
    ck_assert_int_eq(fl_acquire(a_holder), 0);
    fl_log_record(&rec);
    a.l = w;
    a.rc = -999;
    ck_assert_int_eq(pthread_create(&t, NULL, long_poll_waiter, &a), 0);
    ck_assert(fl_wait_flag(&rec.waiting, 10));
    /* Keep the old inode alive (as any reader of the old file would), so
     * that its watch stays and only the new inode's events matter. */
    keep = open(p, O_RDONLY | O_CLOEXEC);
    ck_assert_int_ge(keep, 0);
    ck_assert_int_eq(fl_acquire_ex(b_holder, 0, 1, 0.01), 0); /* the new inode */
    ck_assert_int_eq(rename(tmp, p), 0);
    ck_assert_int_eq(stat(p, &st), 0);
    ck_assert_int_eq(fl_release(a_holder, 0), 0);
    /* The waiter moves to the new inode (its descriptor shows it there). */
    for (i = 0; i < 10000 && fds_on_inode(st.st_ino) < 2; i++)
        fl_sleep(0.001);
    ck_assert_int_ge(fds_on_inode(st.st_ino), 2);
    fl_sleep(0.05); /* let it fail its attempt and wait (no result depends on it) */
    ck_assert_int_eq(fl_release(b_holder, 0), 0);
    fl_join(t, 20); /* the waiter's own timeout is 100 s */
    close(keep);
    ck_assert_msg(a.rc == 0, "waiter returned %d: %s", a.rc, fl_last_error());
    ck_assert_int_eq(fl_release(w, 0), 0);
    fl_lock_free(w);
    fl_lock_free(b_holder);
    fl_lock_free(a_holder);
}
END_TEST

/* The soft lock watches the marker's directory. The directory is swapped
 * for another one (renameat2 RENAME_EXCHANGE) that holds another holder's
 * marker: the waiter must wake, see that marker, move its watch to the new
 * directory, and wake again when that marker is deleted. */
START_TEST(soft_waiter_follows_a_swapped_directory) {
    FL_NEEDS_LINUX("the inotify watch that follows the directory (the waiter polls every 1000 s)");
    const char *d = P("d"), *d2 = P("d2"), *p = P("d/x.lock"), *p2 = P("d2/x.lock");
    fl_lock *a_holder, *b_holder, *w;
    fl_logrec rec;
    replace_arg a;
    pthread_t t;
    a_holder = fl_new_kind(p, FL_SOFT);
    b_holder = fl_new_kind(p2, FL_SOFT);
    w = fl_new_kind(p, FL_SOFT);
    ck_assert_int_eq(fl_acquire(a_holder), 0);
    ck_assert_int_eq(fl_acquire(b_holder), 0);
    fl_log_record(&rec);
    a.l = w;
    a.rc = -999;
    ck_assert_int_eq(pthread_create(&t, NULL, long_poll_waiter, &a), 0);
    ck_assert(fl_wait_flag(&rec.waiting, 10));
    if (renameat2(AT_FDCWD, d, AT_FDCWD, d2, RENAME_EXCHANGE) != 0) {
        int e = errno;
        ck_assert_int_eq(unlink(p), 0); /* let the waiter finish */
        fl_join(t, 20);
        fl_lock_free(w);
        fl_lock_free(b_holder);
        fl_lock_free(a_holder);
        if (e == EINVAL || e == ENOSYS) {
            fprintf(stderr, "SKIP soft_waiter_follows_a_swapped_directory: %s\n", strerror(e));
            return;
        }
        ck_abort_msg("renameat2: %s", strerror(e));
    }
    /* The waiter has woken on the move; let it find B's marker and wait
     * again (no result depends on this pause), then delete that marker as
     * its holder's release would (B's own release would look for it in d2). */
    fl_sleep(0.1);
    ck_assert_int_eq(unlink(p), 0);
    fl_join(t, 20); /* the waiter's own timeout is 100 s */
    ck_assert_msg(a.rc == 0, "waiter returned %d", a.rc);
    ck_assert_int_eq(fl_release(w, 0), 0);
    fl_lock_free(w);
    fl_lock_free(b_holder);
    fl_lock_free(a_holder);
}
END_TEST

/* The directory of the marker is renamed away: the lock path is free (its
 * directory is re-created by the next attempt), and the waiter must notice
 * without waiting for its (long) poll interval. */
START_TEST(soft_waiter_follows_a_directory_renamed_away) {
    FL_NEEDS_LINUX("the inotify watch that follows the directory (the waiter polls every 1000 s)");
    const char *d = P("d"), *d2 = P("d.old"), *p = P("d/x.lock");
    fl_lock *holder, *w;
    fl_logrec rec;
    replace_arg a;
    pthread_t t;
    holder = fl_new_kind(p, FL_SOFT);
    w = fl_new_kind(p, FL_SOFT);
    ck_assert_int_eq(fl_acquire(holder), 0);
    fl_log_record(&rec);
    a.l = w;
    a.rc = -999;
    ck_assert_int_eq(pthread_create(&t, NULL, long_poll_waiter, &a), 0);
    ck_assert(fl_wait_flag(&rec.waiting, 10));
    ck_assert_int_eq(rename(d, d2), 0);
    fl_join(t, 20); /* the waiter's own timeout is 100 s */
    ck_assert_msg(a.rc == 0, "waiter returned %d", a.rc);
    ck_assert_int_eq(fl_release(w, 0), 0);
    fl_lock_free(w);
    fl_lock_free(holder);
}
END_TEST

Suite *suite_hostile(void) {
    Suite *s = suite_create("hostile");
    TCase *tc = fl_tcase("hostile");
    tcase_add_loop_test(tc, child_forked_in_cancel_callback_owns_what_it_wins, 0, 6);
    tcase_add_test(tc, child_forked_while_waiting_for_another_threads_attempt);
    tcase_add_loop_test(tc, parent_and_child_waiting_after_a_fork_exclude_each_other, 0, 2);
    tcase_add_loop_test(tc, child_forked_in_log_handler_does_not_own_the_parents_lock, 0, 4);
    tcase_add_loop_test(tc, pthread_cancel_of_a_waiter_leaves_the_library_consistent, FL_KERNEL,
                        FL_SOFT + 1);
    tcase_add_test(tc, waiter_follows_a_lock_file_renamed_away);
    tcase_add_test(tc, waiter_follows_a_lock_file_replaced_by_rename);
    tcase_add_test(tc, soft_waiter_follows_a_swapped_directory);
    tcase_add_test(tc, soft_waiter_follows_a_directory_renamed_away);
    suite_add_tcase(s, tc);
    return s;
}
