/*
 * Fork safety: a child inherits the parent's handle and descriptors but
 * never unlocks or unlinks the parent's lock, whatever it does with the
 * handle; only the parent's release frees it for a third process. Children
 * report through their exit code (no Check assertions in a child).
 */
#define _GNU_SOURCE
#include "testutil.h"

#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct fork_case {
    fl_lock *lock;
    int what; /* 0: release(force) + free; 1: free only; 2: plain _exit */
} fork_case;

static int child_body(void *arg) {
    fork_case *c = arg;
    if (c->what == 2)
        return 0;
    /* The parent's hold is not the child's. */
    if (fl_is_locked(c->lock) || fl_lock_counter(c->lock) != 0)
        return 10;
    if (c->what == 0) {
        if (fl_release(c->lock, 1) != 0)
            return 11;
        /* Through the inherited handle the child contends like anyone. */
        if (fl_acquire_ex(c->lock, 0, 1, 0.05) != FL_ETIMEOUT)
            return 12;
    }
    fl_lock_free(c->lock);
    return 0;
}

/* _i: kind (bit 2), thread_local = 0 (bit 3), what the child does (0-2). */
START_TEST(child_never_unlocks_parent) {
    int kind = (_i >> 2) & 1, shared = (_i >> 3) & 1, what = _i & 3;
    const char *p = P("x.lock");
    fl_options o = FL_OPTIONS_INIT;
    fork_case c = {NULL, what};
    int rc;
    if (what == 3)
        return; /* not a case */
    o.kind = (fl_kind)kind;
    o.thread_local = !shared;
    ck_assert_int_eq(fl_lock_new(&c.lock, p, &o), 0);
    ck_assert_int_eq(fl_acquire(c.lock), 0);
    ck_assert_int_eq(fl_acquire(c.lock), 0);
    rc = fl_run_in_child(child_body, &c, 20);
    ck_assert_msg(rc == 0, "child (%s, %s handle, case %d) exited with %d", fl_kind_name(kind),
                  shared ? "shared" : "thread-local", what, rc);
    ck_assert_int_eq(fl_lock_counter(c.lock), 2);
    ck_assert_msg(fl_helper_try(p, kind) == 3, "a third process got the parent's lock");
    if (kind == FL_SOFT)
        ck_assert_msg(fl_is_reg(p), "the child removed the parent's marker");
    ck_assert_int_eq(fl_release(c.lock, 1), 0);
    ck_assert_int_eq(fl_helper_try(p, kind), 0);
    fl_lock_free(c.lock);
}
END_TEST

/* A child that waits on the inherited handle wins once the parent
 * releases: its state is its own. */
static int child_waits(void *arg) {
    fork_case *c = arg;
    int rc = fl_acquire_ex(c->lock, 20, 1, 0.05);
    if (rc != 0)
        return 20 - rc;
    if (fl_release(c->lock, 0) != 0)
        return 13;
    fl_lock_free(c->lock);
    return 0;
}

START_TEST(child_waits_for_parent) {
    const char *p = P("x.lock");
    fork_case c = {fl_new_kind(p, _i), 0};
    pid_t pid;
    ck_assert_int_eq(fl_acquire(c.lock), 0);
    pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0)
        _exit(child_waits(&c));
    fl_sleep(0.2);
    ck_assert_int_eq(fl_release(c.lock, 0), 0);
    ck_assert_int_eq(fl_wait_child(pid, 30), 0);
    fl_lock_free(c.lock);
}
END_TEST

Suite *suite_fork(void) {
    Suite *s = suite_create("fork");
    TCase *tc = fl_tcase("fork");
    tcase_add_loop_test(tc, child_never_unlocks_parent, 0, 16);
    tcase_add_loop_test(tc, child_waits_for_parent, FL_KERNEL, FL_SOFT + 1);
    suite_add_tcase(s, tc);
    return s;
}
