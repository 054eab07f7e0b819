/*
 * The lock file on disk: creation, what is refused (symlinks, FIFOs,
 * directories, permissions, bad paths, bad options), what is never done to
 * it (truncation, deletion, chmod before winning) and the re-check after
 * winning when the file was unlinked or replaced under a waiter. Loop tests
 * run once per kind (_i = FL_KERNEL, FL_SOFT) where the rule is shared.
 */
#define _GNU_SOURCE
#include "testutil.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

START_TEST(creates_file_and_missing_parents) {
    const char *p = P("a/b/c/x.lock");
    fl_lock *l = fl_new_kind(p, _i);
    ck_assert_msg(!fl_exists(P("a")), "nothing may be created before the first acquire");
    ck_assert_msg(fl_acquire(l) == 0, "%s", fl_last_error());
    ck_assert(fl_is_dir(P("a/b/c")));
    ck_assert(fl_is_reg(p));
    ck_assert_int_eq(fl_release(l, 0), 0);
    fl_lock_free(l);
}
END_TEST

START_TEST(relative_path_in_cwd) {
    char old[PATH_MAX];
    fl_lock *l = fl_new_kind("rel.lock", _i);
    ck_assert(getcwd(old, sizeof old) != NULL);
    ck_assert_int_eq(chdir(fl_tdir), 0);
    ck_assert_msg(fl_acquire(l) == 0, "%s", fl_last_error());
    ck_assert(fl_is_reg(P("rel.lock")));
    ck_assert_int_eq(fl_release(l, 0), 0);
    fl_lock_free(l);
    ck_assert_int_eq(chdir(old), 0);
}
END_TEST

START_TEST(symlink_refused_target_untouched) {
    const char *p = P("x.lock");
    char buf[64];
    fl_lock *l;
    fl_write_file(P("target"), "precious\n");
    ck_assert_int_eq(chmod(P("target"), 0600), 0);
    ck_assert_int_eq(symlink("target", p), 0);
    l = fl_new_kind(p, _i);
    /* Waiting forever must not turn the refusal into a retry loop. */
    ck_assert_int_eq(fl_acquire_ex(l, -1, 1, 0.05), FL_ELOOP);
    ck_assert_msg(strstr(fl_last_error(), p) && strstr(fl_last_error(), "symbolic link"), "%s",
                  fl_last_error());
    ck_assert_int_eq(fl_lock_counter(l), 0);
    ck_assert(fl_is_symlink(p));
    ck_assert_int_eq(fl_read_file(P("target"), buf, sizeof buf), 9);
    ck_assert_str_eq(buf, "precious\n");
    ck_assert_int_eq(fl_file_mode(P("target")), 0600);
    fl_lock_free(l);
    ck_assert(fl_is_symlink(p));
}
END_TEST

START_TEST(dangling_symlink_refused) {
    const char *p = P("x.lock");
    fl_lock *l;
    ck_assert_int_eq(symlink("nowhere", p), 0);
    l = fl_new_kind(p, _i);
    ck_assert_int_eq(fl_acquire_ex(l, 0, 1, 0.05), FL_ELOOP);
    ck_assert_msg(!fl_exists(P("nowhere")), "the symlink's target must not be created");
    ck_assert(fl_is_symlink(p));
    fl_lock_free(l);
}
END_TEST

START_TEST(kernel_never_truncates) {
    const char *p = P("x.lock");
    char buf[64];
    fl_lock *l;
    fl_write_file(p, "keep me\n");
    ck_assert_int_eq(chmod(p, 0600), 0);
    l = fl_new_kind(p, FL_KERNEL);
    ck_assert_int_eq(fl_acquire(l), 0);
    ck_assert_int_eq(fl_read_file(p, buf, sizeof buf), 8);
    ck_assert_str_eq(buf, "keep me\n");
    ck_assert_int_eq(fl_release(l, 0), 0);
    fl_lock_free(l);
    ck_assert_int_eq(fl_read_file(p, buf, sizeof buf), 8);
    ck_assert_str_eq(buf, "keep me\n");
    /* Default mode: an existing file's permissions are left alone. */
    ck_assert_int_eq(fl_file_mode(p), 0600);
}
END_TEST

START_TEST(kernel_never_deleted_on_release) {
    const char *p = P("x.lock");
    fl_lock *l = fl_new_kind(p, FL_KERNEL);
    ck_assert_int_eq(fl_acquire(l), 0);
    ck_assert_int_eq(fl_acquire(l), 0);
    ck_assert_int_eq(fl_release(l, 0), 0);
    ck_assert(fl_is_reg(p));
    ck_assert_int_eq(fl_release(l, 0), 0);
    ck_assert_msg(fl_is_reg(p), "deleting the lock file splits waiters across inodes");
    ck_assert_int_eq(fl_acquire(l), 0);
    ck_assert_int_eq(fl_release(l, 1), 0);
    ck_assert(fl_is_reg(p));
    ck_assert_int_eq(fl_acquire(l), 0);
    fl_lock_free(l); /* releases */
    ck_assert(fl_is_reg(p));
}
END_TEST

/* ---- unlink / replace under a waiter --------------------------------- */

typedef struct waiter {
    const char *path;
    double timeout;
    int rc;
    int acquired; /* atomic */
    int done;     /* atomic: main finished checking */
} waiter;

static void *waiter_main(void *arg) {
    waiter *w = arg;
    fl_lock *l;
    if (fl_lock_new(&l, w->path, NULL) != 0) {
        w->rc = -100;
        __atomic_store_n(&w->acquired, 1, __ATOMIC_RELEASE);
        return NULL;
    }
    w->rc = fl_acquire_ex(l, w->timeout, 1, 0.05);
    __atomic_store_n(&w->acquired, 1, __ATOMIC_RELEASE);
    fl_wait_flag(&w->done, 30);
    fl_lock_free(l);
    return NULL;
}

/* _i bit 0: the waiter waits forever (blocking flock) or with a timeout
 * (inotify); bit 1: the path is unlinked or replaced by another file. */
START_TEST(kernel_recheck_inode_after_winning) {
    const char *p = P("x.lock");
    fl_lock *holder = fl_new_kind(p, FL_KERNEL), *third;
    fl_logrec rec;
    waiter w = {p, (_i & 1) ? 20.0 : -1.0, 0, 0, 0};
    pthread_t t;
    int rc;

    ck_assert_int_eq(fl_acquire(holder), 0);
    fl_log_record(&rec);
    ck_assert_int_eq(pthread_create(&t, NULL, waiter_main, &w), 0);
    ck_assert_msg(fl_wait_flag(&rec.waiting, 10), "the waiter never started waiting");
    fl_sleep(0.05); /* let it reach the blocking call */
    ck_assert_msg(!__atomic_load_n(&w.acquired, __ATOMIC_ACQUIRE), "waiter won a held lock");
    if (_i & 2) {
        fl_write_file(P("x.lock.new"), "");
        ck_assert_int_eq(rename(P("x.lock.new"), p), 0);
    } else {
        ck_assert_int_eq(unlink(p), 0);
    }
    ck_assert_int_eq(fl_release(holder, 0), 0);
    ck_assert_msg(fl_wait_flag(&w.acquired, 20), "waiter did not acquire after the release");
    ck_assert_msg(w.rc == 0, "waiter rc %d", w.rc);
    ck_assert(fl_is_reg(p));
    /* The waiter must hold the file now at the path, not the orphan: a
     * third handle cannot get it. */
    third = fl_new_kind(p, FL_KERNEL);
    rc = fl_acquire_ex(third, 0, 1, 0.05);
    ck_assert_msg(rc == FL_ETIMEOUT, "third handle got %s: the waiter locked an orphan inode",
                  fl_err_name(rc));
    __atomic_store_n(&w.done, 1, __ATOMIC_RELEASE);
    fl_join(t, 20);
    ck_assert_int_eq(fl_acquire_ex(third, 0, 1, 0.05), 0);
    fl_lock_free(third);
    fl_lock_free(holder);
}
END_TEST

/* ---- what is at the path ------------------------------------------- */

START_TEST(fifo_refused_without_hanging) {
    const char *p = P("x.lock");
    fl_lock *l;
    double t0;
    ck_assert_int_eq(mkfifo(p, 0666), 0);
    l = fl_new_kind(p, _i);
    t0 = fl_mono();
    ck_assert_int_eq(fl_acquire_ex(l, -1, 1, 0.05), FL_ENOTREG);
    ck_assert(fl_mono() - t0 < 10);
    ck_assert_msg(strstr(fl_last_error(), p) && strstr(fl_last_error(), "not a regular file"),
                  "%s", fl_last_error());
    ck_assert_int_eq(fl_lock_counter(l), 0);
    fl_lock_free(l);
}
END_TEST

START_TEST(directory_refused) {
    const char *p = P("d.lock");
    fl_lock *l;
    ck_assert_int_eq(mkdir(p, 0755), 0);
    l = fl_new_kind(p, _i);
    ck_assert_int_eq(fl_acquire_ex(l, -1, 1, 0.05), FL_EISDIR);
    ck_assert_msg(strstr(fl_last_error(), p) != NULL, "%s", fl_last_error());
    fl_lock_free(l);
    /* A trailing slash names a directory too, even a missing one. */
    l = fl_new_kind(P("missing/"), _i);
    ck_assert_int_eq(fl_acquire_ex(l, 0, 1, 0.05), FL_EISDIR);
    fl_lock_free(l);
    ck_assert(fl_is_dir(p));
}
END_TEST

/* Permission cases run as nobody in a child when the tests run as root
 * (root bypasses permission bits). */
typedef struct perm_case {
    const char *path;
    int kind;
} perm_case;

static int expect_eacces(void *arg) {
    perm_case *c = arg;
    fl_lock *l;
    int rc;
    if (fl_drop_privileges() != 0)
        return 10;
    {
        fl_options o = FL_OPTIONS_INIT;
        o.kind = (fl_kind)c->kind;
        if (fl_lock_new(&l, c->path, &o) != 0)
            return 11;
    }
    rc = fl_acquire_ex(l, -1, 1, 0.05);
    if (rc != FL_EACCES)
        return 20 - rc; /* 21.. encodes the wrong code */
    if (fl_last_errno() != EACCES)
        return 12;
    if (!strstr(fl_last_error(), c->path) || !strstr(fl_last_error(), strerror(EACCES)))
        return 13;
    if (fl_lock_counter(l) != 0)
        return 14;
    fl_lock_free(l);
    return 0;
}

static void check_eacces(perm_case *c) {
    int rc;
    if (fl_running_as_root())
        fprintf(stderr, "note: running as root: permission case for %s runs as uid 65534\n",
                c->path);
    rc = fl_run_in_child(expect_eacces, c, 20);
    ck_assert_msg(rc == 0, "permission case %s (%s): child status %d (21+ = wrong code)", c->path,
                  fl_kind_name(c->kind), rc);
}

START_TEST(kernel_read_only_file) {
    perm_case c = {P("ro.lock"), FL_KERNEL};
    ck_assert_int_eq(chmod(fl_tdir, 0777), 0);
    fl_write_file(c.path, "");
    ck_assert_int_eq(chmod(c.path, 0444), 0);
    check_eacces(&c);
    ck_assert_int_eq(fl_file_mode(c.path), 0444);
}
END_TEST

START_TEST(read_only_directory) {
    perm_case c = {P("rodir/x.lock"), _i};
    ck_assert_int_eq(chmod(fl_tdir, 0777), 0);
    ck_assert_int_eq(mkdir(P("rodir"), 0555), 0);
    ck_assert_int_eq(chmod(P("rodir"), 0555), 0);
    check_eacces(&c);
    ck_assert(!fl_exists(c.path));
}
END_TEST

START_TEST(parent_is_a_file) {
    fl_lock *l;
    fl_write_file(P("f"), "x");
    l = fl_new_kind(P("f/x.lock"), _i);
    ck_assert_int_eq(fl_acquire_ex(l, -1, 1, 0.05), FL_ENOTDIR);
    ck_assert_int_eq(fl_last_errno(), ENOTDIR);
    fl_lock_free(l);
    l = fl_new_kind(P("f/sub/x.lock"), _i);
    ck_assert_int_eq(fl_acquire_ex(l, -1, 1, 0.05), FL_ENOTDIR);
    fl_lock_free(l);
    ck_assert(fl_is_reg(P("f")));
}
END_TEST

START_TEST(name_too_long) {
    char name[NAME_MAX + 64], old[PATH_MAX], *deep;
    fl_lock *l;
    size_t i, n;
    memset(name, 'a', sizeof name - 1);
    name[sizeof name - 1] = '\0';
    l = fl_new_kind(P(name), _i);
    ck_assert_int_eq(fl_acquire_ex(l, -1, 1, 0.05), FL_ENAMETOOLONG);
    ck_assert_int_eq(fl_last_errno(), ENAMETOOLONG);
    fl_lock_free(l);
    /* A whole path longer than PATH_MAX of short, missing components. */
    n = PATH_MAX + 64;
    deep = malloc(n + 1);
    ck_assert(deep != NULL);
    for (i = 0; i < n; i++)
        deep[i] = (i % 2) ? '/' : 'd';
    memcpy(deep + n - 6, "x.lock", 6);
    deep[n] = '\0';
    ck_assert(getcwd(old, sizeof old) != NULL);
    ck_assert_int_eq(chdir(fl_tdir), 0);
    l = fl_new_kind(deep, _i);
    ck_assert_int_eq(fl_acquire_ex(l, -1, 1, 0.05), FL_ENAMETOOLONG);
    fl_lock_free(l);
    free(deep);
    ck_assert_int_eq(chdir(old), 0);
}
END_TEST

START_TEST(bad_paths) {
    fl_lock *l = (fl_lock *)1;
    ck_assert_int_eq(fl_lock_new(&l, "", NULL), FL_EINVAL);
    ck_assert_ptr_null(l);
    ck_assert_msg(strstr(fl_last_error(), "empty") != NULL, "%s", fl_last_error());
    ck_assert_int_eq(fl_lock_new(&l, NULL, NULL), FL_EINVAL);
    ck_assert_int_eq(fl_lock_new(NULL, "x", NULL), FL_EINVAL);
    ck_assert_int_eq(fl_lock_new_n(&l, "abc", 0, NULL), FL_EINVAL);
    ck_assert_int_eq(fl_lock_new_n(&l, "a.lock\0b", 8, NULL), FL_EINVAL);
    ck_assert_ptr_null(l);
    ck_assert_msg(strstr(fl_last_error(), "NUL") != NULL, "%s", fl_last_error());
    /* The length delimits the path: no NUL terminator is needed. */
    ck_assert_int_eq(fl_lock_new_n(&l, "abc.lockXYZ", 8, NULL), 0);
    ck_assert_str_eq(fl_lock_path(l), "abc.lock");
    fl_lock_free(l);
}
END_TEST

START_TEST(bad_options) {
    fl_options o = FL_OPTIONS_INIT;
    fl_lock *l;
    const char *p = P("x.lock");
    o.timeout = NAN;
    ck_assert_int_eq(fl_lock_new(&l, p, &o), FL_EINVAL);
    ck_assert_msg(strstr(fl_last_error(), "NaN") && strstr(fl_last_error(), p), "%s",
                  fl_last_error());
    fl_options_init(&o);
    o.poll_interval = -0.5;
    ck_assert_int_eq(fl_lock_new(&l, p, &o), FL_EINVAL);
    o.poll_interval = NAN;
    ck_assert_int_eq(fl_lock_new(&l, p, &o), FL_EINVAL);
    fl_options_init(&o);
    o.version = 0;
    ck_assert_int_eq(fl_lock_new(&l, p, &o), FL_EINVAL);
    fl_options_init(&o);
    o.kind = (fl_kind)7;
    ck_assert_int_eq(fl_lock_new(&l, p, &o), FL_EINVAL);
    fl_options_init(&o);
    o.mode = 010000;
    ck_assert_int_eq(fl_lock_new(&l, p, &o), FL_EINVAL);
    o.mode = -2;
    ck_assert_int_eq(fl_lock_new(&l, p, &o), FL_EINVAL);
    fl_options_init(&o);
    o.timeout = INFINITY; /* infinity means forever, not an error */
    o.poll_interval = 0;  /* 0 is allowed (the floor keeps it from spinning) */
    ck_assert_int_eq(fl_lock_new(&l, p, &o), 0);

    /* Per-call and setter validation; nothing is created, nothing changes. */
    ck_assert_int_eq(fl_acquire_ex(l, NAN, 1, 0.05), FL_EINVAL);
    ck_assert_int_eq(fl_acquire_ex(l, 1, 1, -1), FL_EINVAL);
    ck_assert_int_eq(fl_acquire_ex(l, 1, 1, NAN), FL_EINVAL);
    ck_assert(!fl_exists(p));
    ck_assert_int_eq(fl_lock_counter(l), 0);
    ck_assert_int_eq(fl_set_timeout(l, NAN), FL_EINVAL);
    ck_assert(isinf(fl_get_timeout(l)));
    ck_assert_int_eq(fl_set_poll_interval(l, -0.001), FL_EINVAL);
    ck_assert_int_eq(fl_set_poll_interval(l, NAN), FL_EINVAL);
    ck_assert(fl_get_poll_interval(l) == 0);
    fl_lock_free(l);
}
END_TEST

/* ---- permissions ------------------------------------------------------ */

START_TEST(explicit_mode_applied_exactly) {
    fl_options o = FL_OPTIONS_INIT;
    fl_lock *l;
    const char *p = P("x.lock");
    mode_t before;
    umask(077);
    o.mode = 0646;
    ck_assert_int_eq(fl_lock_new(&l, p, &o), 0);
    ck_assert_int_eq(fl_get_mode(l), 0646);
    ck_assert_int_eq(fl_acquire(l), 0);
    ck_assert_msg(fl_file_mode(p) == 0646, "mode %o, want 0646 despite umask 077",
                  fl_file_mode(p));
    ck_assert_int_eq(fl_release(l, 0), 0);
    fl_lock_free(l);
    before = umask(077);
    ck_assert_msg(before == 077, "the library changed the umask to %o", (unsigned)before);

    /* An existing file gets the explicit mode once the lock is won. */
    ck_assert_int_eq(chmod(p, 0600), 0);
    o.mode = 0664;
    ck_assert_int_eq(fl_lock_new(&l, p, &o), 0);
    ck_assert_int_eq(fl_acquire(l), 0);
    ck_assert_int_eq(fl_file_mode(p), 0664);
    fl_lock_free(l);
}
END_TEST

START_TEST(explicit_mode_not_applied_before_winning) {
    fl_options o = FL_OPTIONS_INIT;
    fl_lock *holder = fl_new_kind(P("x.lock"), FL_KERNEL), *l;
    ck_assert_int_eq(fl_acquire(holder), 0);
    ck_assert_int_eq(chmod(P("x.lock"), 0600), 0);
    o.mode = 0644;
    ck_assert_int_eq(fl_lock_new(&l, P("x.lock"), &o), 0);
    ck_assert_int_eq(fl_acquire_ex(l, 0, 1, 0.05), FL_ETIMEOUT);
    ck_assert_msg(fl_file_mode(P("x.lock")) == 0600, "chmod'ed before the lock was won");
    ck_assert_int_eq(fl_release(holder, 0), 0);
    ck_assert_int_eq(fl_acquire_ex(l, 0, 1, 0.05), 0);
    ck_assert_int_eq(fl_file_mode(P("x.lock")), 0644);
    fl_lock_free(l);
    fl_lock_free(holder);
}
END_TEST

START_TEST(default_mode_honours_umask) {
    fl_lock *l = fl_new_kind(P("x.lock"), _i);
    mode_t now;
    umask(027);
    ck_assert_int_eq(fl_get_mode(l), FL_MODE_DEFAULT);
    ck_assert_int_eq(fl_acquire(l), 0);
    ck_assert_msg(fl_file_mode(P("x.lock")) == 0640, "mode %o, want 0666 & ~027",
                  fl_file_mode(P("x.lock")));
    now = umask(027);
    ck_assert_msg(now == 027, "the library changed the umask to %o", (unsigned)now);
    fl_lock_free(l);
}
END_TEST

/* An explicit mode is applied exactly to a soft marker too (issue 13,
 * item 7): under umask 077 a 0640 marker is still readable by the group, so
 * that others can judge whether its holder is gone. */
START_TEST(soft_explicit_mode_ignores_umask) {
    fl_options o = FL_OPTIONS_INIT;
    fl_lock *l;
    o.kind = FL_SOFT;
    o.mode = 0640;
    umask(0);
    ck_assert_int_eq(fl_lock_new(&l, P("x.lock"), &o), 0);
    ck_assert_int_eq(fl_acquire(l), 0);
    ck_assert_int_eq(fl_file_mode(P("x.lock")), 0640);
    ck_assert_int_eq(fl_release(l, 0), 0);
    umask(077);
    ck_assert_int_eq(fl_acquire(l), 0);
    ck_assert_int_eq(fl_file_mode(P("x.lock")), 0640);
    fl_lock_free(l);
}
END_TEST

Suite *suite_kernel(void) {
    Suite *s = suite_create("kernel");
    TCase *tc = fl_tcase("files");
    tcase_add_loop_test(tc, creates_file_and_missing_parents, FL_KERNEL, FL_SOFT + 1);
    tcase_add_loop_test(tc, relative_path_in_cwd, FL_KERNEL, FL_SOFT + 1);
    tcase_add_loop_test(tc, symlink_refused_target_untouched, FL_KERNEL, FL_SOFT + 1);
    tcase_add_loop_test(tc, dangling_symlink_refused, FL_KERNEL, FL_SOFT + 1);
    tcase_add_test(tc, kernel_never_truncates);
    tcase_add_test(tc, kernel_never_deleted_on_release);
    tcase_add_loop_test(tc, kernel_recheck_inode_after_winning, 0, 4);
    suite_add_tcase(s, tc);

    tc = fl_tcase("refusals");
    tcase_add_loop_test(tc, fifo_refused_without_hanging, FL_KERNEL, FL_SOFT + 1);
    tcase_add_loop_test(tc, directory_refused, FL_KERNEL, FL_SOFT + 1);
    tcase_add_test(tc, kernel_read_only_file);
    tcase_add_loop_test(tc, read_only_directory, FL_KERNEL, FL_SOFT + 1);
    tcase_add_loop_test(tc, parent_is_a_file, FL_KERNEL, FL_SOFT + 1);
    tcase_add_loop_test(tc, name_too_long, FL_KERNEL, FL_SOFT + 1);
    tcase_add_test(tc, bad_paths);
    tcase_add_test(tc, bad_options);
    suite_add_tcase(s, tc);

    tc = fl_tcase("mode");
    tcase_add_test(tc, explicit_mode_applied_exactly);
    tcase_add_test(tc, explicit_mode_not_applied_before_winning);
    tcase_add_loop_test(tc, default_mode_honours_umask, FL_KERNEL, FL_SOFT + 1);
    tcase_add_test(tc, soft_explicit_mode_ignores_umask);
    suite_add_tcase(s, tc);
    return s;
}
