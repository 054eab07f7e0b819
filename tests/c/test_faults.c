/*
 * Fault injection through the internal fl__sys seam: a file system without
 * flock (ENOSYS / EOPNOTSUPP) and the soft fallback, EIO on close at
 * release, ENOSPC and short writes on the marker, EINTR, EROFS, a failing
 * inotify. Each injected error must come back as its documented code, with
 * the counter unchanged and no descriptor or marker left behind.
 */
#define _GNU_SOURCE
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

static int g_errno;     /* what the injected call fails with */
static int g_fail_left; /* how many more calls fail (-1: all) */

static int take_fault(void) {
    if (g_fail_left == 0)
        return 0;
    if (g_fail_left > 0)
        g_fail_left--;
    return 1;
}

static void inject(int e, int times) {
    g_errno = e;
    g_fail_left = times;
}

static int bad_flock(int fd, int op) {
    if ((op & LOCK_UN) == 0 && take_fault()) {
        errno = g_errno;
        return -1;
    }
    return flock(fd, op);
}

/* Closes for real (no leak) and then reports the error. */
static int bad_close(int fd) {
    int rc = close(fd);
    if (rc == 0 && take_fault()) {
        errno = g_errno;
        return -1;
    }
    return rc;
}

static ssize_t bad_write(int fd, const void *b, size_t n) {
    if (take_fault()) {
        errno = g_errno;
        return -1;
    }
    return write(fd, b, n);
}

static ssize_t short_write(int fd, const void *b, size_t n) { return write(fd, b, n ? 1 : 0); }

static int bad_open(const char *p, int f, mode_t m) {
    if (take_fault()) {
        errno = g_errno;
        return -1;
    }
    return open(p, f, m);
}

static int bad_inotify_init1(int flags) {
    (void)flags;
    errno = EMFILE;
    return -1;
}

/* _i: 0 ENOSYS, 1 EOPNOTSUPP */
START_TEST(no_flock_is_enotsup) {
    const char *p = P("x.lock");
    fl_lock *l = fl_new_kind(p, FL_KERNEL);
    int fds = fl_open_fd_count(), rc;
    inject(_i ? EOPNOTSUPP : ENOSYS, -1);
    fl__sys.flock = bad_flock;
    rc = fl_acquire_ex(l, -1, 1, 0.05);
    ck_assert_msg(rc == FL_ENOTSUP, "got %s", fl_err_name(rc));
    /* Language-neutral: "the soft lock", not one binding's class name. */
    ck_assert_msg(strstr(fl_last_error(), "SoftFileLock") == NULL, "%s", fl_last_error());
    ck_assert_int_eq(fl_last_errno(), _i ? EOPNOTSUPP : ENOSYS);
    ck_assert_msg(strstr(fl_last_error(), "soft") && strstr(fl_last_error(), p), "%s",
                  fl_last_error());
    ck_assert_int_eq(fl_lock_counter(l), 0);
    ck_assert_int_eq(fl_lock_kind(l), FL_KERNEL);
    ck_assert_int_eq(fl_open_fd_count(), fds);
    /* The file this attempt created is not left behind as a fake marker... */
    ck_assert_msg(!fl_exists(p), "an unusable lock file was left at the path");
    /* ... but a file that was already there is not ours to remove. */
    fl_write_file(p, "theirs\n");
    ck_assert_int_eq(fl_acquire_ex(l, 0, 1, 0.05), FL_ENOTSUP);
    ck_assert(fl_is_reg(p));
    fl_lock_free(l);
}
END_TEST

START_TEST(no_flock_soft_fallback) {
    const char *p = P("x.lock");
    fl_options o = FL_OPTIONS_INIT;
    fl_lock *l, *other;
    char buf[64], want[32];
    int rc;
    o.soft_fallback = 1;
    ck_assert_int_eq(fl_lock_new(&l, p, &o), 0);
    inject(ENOSYS, -1);
    fl__sys.flock = bad_flock;
    /* Nobody holds it: a single attempt must win through the fallback. */
    rc = fl_acquire_ex(l, 0, 1, 0.05);
    ck_assert_msg(rc == 0, "fallback failed: %s (%s)", fl_err_name(rc), fl_last_error());
    ck_assert_int_eq(fl_lock_kind(l), FL_SOFT);
    ck_assert(fl_is_reg(p));
    snprintf(want, sizeof want, "%ld\n", (long)getpid());
    ck_assert(fl_read_file(p, buf, sizeof buf) > 0);
    ck_assert_msg(strncmp(buf, want, strlen(want)) == 0, "marker holds '%s'", buf);
    /* It excludes like a soft lock. */
    other = fl_new_kind(p, FL_SOFT);
    ck_assert_int_eq(fl_acquire_ex(other, 0, 1, 0.05), FL_ETIMEOUT);
    ck_assert_int_eq(fl_release(l, 0), 0);
    ck_assert_msg(!fl_exists(p), "the fallback marker must be removed on release");
    ck_assert_int_eq(fl_lock_kind(l), FL_SOFT);
    ck_assert_int_eq(fl_acquire_ex(l, 0, 1, 0.05), 0);
    fl_lock_free(l);
    ck_assert(!fl_exists(p));
    fl_lock_free(other);
}
END_TEST

START_TEST(eio_on_close_at_release) {
    const char *p = P("x.lock");
    fl_lock *l = fl_new_kind(p, FL_KERNEL);
    int fds = fl_open_fd_count();
    ck_assert_int_eq(fl_acquire(l), 0);
    inject(EIO, 1);
    fl__sys.close = bad_close;
    ck_assert_int_eq(fl_release(l, 0), FL_EIO);
    ck_assert_int_eq(fl_last_errno(), EIO);
    ck_assert_msg(strstr(fl_last_error(), p) && strstr(fl_last_error(), "released"), "%s",
                  fl_last_error());
    ck_assert_int_eq(fl_lock_counter(l), 0);
    ck_assert_int_eq(fl_open_fd_count(), fds);
    fl__sys_reset();
    ck_assert_msg(fl_helper_try(p, FL_KERNEL) == 0, "the lock stayed held after EIO on close");
    fl_lock_free(l);
}
END_TEST

/* fl_set_close_errors(): each policy on each kind, with every close failing
 * (EIO after closing for real, so nothing leaks). The lock is released
 * whatever the policy says about the error. */
START_TEST(close_error_policies) {
    static const struct {
        int kind, policy, rc;
    } cases[] = {
        {FL_KERNEL, FL_CLOSE_REPORT, FL_EIO},   {FL_KERNEL, FL_CLOSE_IGNORE, 0},
        {FL_KERNEL, FL_CLOSE_IGNORE_KERNEL, 0}, {FL_SOFT, FL_CLOSE_REPORT, FL_EIO},
        {FL_SOFT, FL_CLOSE_IGNORE, 0},          {FL_SOFT, FL_CLOSE_IGNORE_KERNEL, FL_EIO},
    };
    const char *p = P("x.lock");
    fl_lock *l = fl_new_kind(p, cases[_i].kind);
    int fds = fl_open_fd_count();
    ck_assert_int_eq(fl_set_close_errors(l, cases[_i].policy), 0);
    ck_assert_int_eq(fl_acquire(l), 0);
    inject(EIO, -1);
    fl__sys.close = bad_close;
    ck_assert_int_eq(fl_release(l, 0), cases[_i].rc);
    if (cases[_i].rc)
        ck_assert_msg(strstr(fl_last_error(), p) && strstr(fl_last_error(), "released"), "%s",
                      fl_last_error());
    fl__sys_reset();
    ck_assert_int_eq(fl_lock_counter(l), 0);
    ck_assert_int_eq(fl_open_fd_count(), fds);
    ck_assert_msg(fl_helper_try(p, cases[_i].kind) == 0, "the lock stayed held");
    fl_lock_free(l);
}
END_TEST

static int unlock_fails(int fd, int op) {
    if (op & LOCK_UN) {
        errno = EIO;
        return -1;
    }
    return flock(fd, op);
}

/* A lock the file system dropped (the unlock fails) is reported whatever the
 * close policy: it is not a close failure. Bad policies are refused. */
START_TEST(close_policy_never_hides_a_lost_lock) {
    const char *p = P("x.lock");
    fl_lock *l = fl_new_kind(p, FL_KERNEL);
    ck_assert_int_eq(fl_set_close_errors(l, FL_CLOSE_IGNORE), 0);
    ck_assert_int_eq(fl_acquire(l), 0);
    fl__sys.flock = unlock_fails;
    ck_assert_int_eq(fl_release(l, 0), FL_EIO);
    ck_assert_msg(strstr(fl_last_error(), "lost"), "%s", fl_last_error());
    fl__sys_reset();
    ck_assert_int_eq(fl_set_close_errors(l, 3), FL_EINVAL);
    ck_assert_msg(strstr(fl_last_error(), p), "%s", fl_last_error());
    ck_assert_int_eq(fl_set_close_errors(l, -1), FL_EINVAL);
    ck_assert_int_eq(fl_set_close_errors(NULL, FL_CLOSE_IGNORE), FL_EINVAL);
    fl_lock_free(l);
}
END_TEST

START_TEST(enospc_on_marker_write) {
    const char *p = P("x.lock");
    fl_lock *l = fl_new_kind(p, FL_SOFT);
    int fds = fl_open_fd_count();
    inject(ENOSPC, 1);
    fl__sys.write = bad_write;
    ck_assert_int_eq(fl_acquire_ex(l, -1, 1, 0.05), FL_ENOSPC);
    ck_assert_int_eq(fl_last_errno(), ENOSPC);
    ck_assert_msg(strstr(fl_last_error(), p) != NULL, "%s", fl_last_error());
    ck_assert_msg(!fl_exists(p), "a half-written marker was left behind");
    ck_assert_int_eq(fl_lock_counter(l), 0);
    ck_assert_int_eq(fl_open_fd_count(), fds);
    ck_assert_int_eq(fl_acquire_ex(l, 0, 1, 0.05), 0); /* fault used up */
    fl_lock_free(l);
}
END_TEST

START_TEST(short_writes_complete_the_marker) {
    const char *p = P("x.lock");
    char buf[300], want[32];
    fl_lock *l = fl_new_kind(p, FL_SOFT);
    fl__sys.write = short_write;
    ck_assert_int_eq(fl_acquire(l), 0);
    snprintf(want, sizeof want, "%ld\n", (long)getpid());
    ck_assert(fl_read_file(p, buf, sizeof buf) > (ssize_t)strlen(want));
    ck_assert(strncmp(buf, want, strlen(want)) == 0);
    ck_assert(buf[strlen(buf) - 1] == '\n');
    fl_lock_free(l);
}
END_TEST

START_TEST(eintr_from_flock) {
    const char *p = P("x.lock");
    fl_lock *l = fl_new_kind(p, FL_KERNEL);
    int fds = fl_open_fd_count();
    inject(EINTR, 1);
    fl__sys.flock = bad_flock;
    ck_assert_int_eq(fl_acquire_ex(l, 5, 1, 0.05), FL_EINTR);
    ck_assert_int_eq(fl_lock_counter(l), 0);
    ck_assert_int_eq(fl_open_fd_count(), fds);
    ck_assert_int_eq(fl_acquire_ex(l, 5, 1, 0.05), 0);
    fl_lock_free(l);
}
END_TEST

/* EINTR from open and write is retried, not reported. */
START_TEST(eintr_from_open_and_write_retried) {
    const char *p = P("x.lock");
    fl_lock *l = fl_new_kind(p, _i);
    inject(EINTR, 2);
    fl__sys.open = bad_open;
    ck_assert_msg(fl_acquire_ex(l, 0, 1, 0.05) == 0, "%s", fl_last_error());
    ck_assert_int_eq(g_fail_left, 0);
    fl_release(l, 0);
    if (_i == FL_SOFT) {
        fl__sys_reset();
        inject(EINTR, 1);
        fl__sys.write = bad_write;
        ck_assert_msg(fl_acquire_ex(l, 0, 1, 0.05) == 0, "%s", fl_last_error());
        ck_assert_int_eq(g_fail_left, 0);
        fl_release(l, 0);
    }
    fl_lock_free(l);
}
END_TEST

START_TEST(erofs_and_eio_are_reported) {
    const char *p = P("x.lock");
    fl_lock *l = fl_new_kind(p, _i);
    inject(EROFS, -1);
    fl__sys.open = bad_open;
    ck_assert_int_eq(fl_acquire_ex(l, -1, 1, 0.05), FL_EROFS);
    ck_assert_msg(strstr(fl_last_error(), strerror(EROFS)) != NULL, "%s", fl_last_error());
    fl__sys_reset();
    if (_i == FL_KERNEL) {
        inject(EIO, -1);
        fl__sys.flock = bad_flock;
        ck_assert_int_eq(fl_acquire_ex(l, -1, 1, 0.05), FL_EIO);
    } else {
        inject(EIO, -1);
        fl__sys.write = bad_write;
        ck_assert_int_eq(fl_acquire_ex(l, -1, 1, 0.05), FL_EIO);
        ck_assert(!fl_exists(p));
    }
    ck_assert_int_eq(fl_lock_counter(l), 0);
    fl_lock_free(l);
}
END_TEST

/* Without a wake-up source (inotify failing) a timed wait still notices
 * the release by re-checking every poll interval. */
START_TEST(no_inotify_still_wakes) {
    const char *p = P("x.lock");
    fl_lock *b = fl_new_kind(p, _i);
    const char *args[] = {"hold", p, fl_kind_name(_i), "300", NULL};
    char line[32];
    int out;
    pid_t pid;
    fl__sys.inotify_init1 = bad_inotify_init1;
    pid = fl_helper_start(args, &out, NULL);
    ck_assert_int_eq(fl_read_line(out, line, sizeof line, 20), 0);
    ck_assert_msg(fl_acquire_ex(b, 20, 1, 0.02) == 0, "%s", fl_last_error());
    ck_assert_int_eq(fl_wait_child(pid, 20), 0);
    close(out);
    fl_lock_free(b);
}
END_TEST

Suite *suite_faults(void) {
    Suite *s = suite_create("faults");
    TCase *tc = fl_tcase("inject");
    tcase_add_loop_test(tc, no_flock_is_enotsup, 0, 2);
    tcase_add_test(tc, no_flock_soft_fallback);
    tcase_add_test(tc, eio_on_close_at_release);
    tcase_add_loop_test(tc, close_error_policies, 0, 6);
    tcase_add_test(tc, close_policy_never_hides_a_lost_lock);
    tcase_add_test(tc, enospc_on_marker_write);
    tcase_add_test(tc, short_writes_complete_the_marker);
    tcase_add_test(tc, eintr_from_flock);
    tcase_add_loop_test(tc, eintr_from_open_and_write_retried, FL_KERNEL, FL_SOFT + 1);
    tcase_add_loop_test(tc, erofs_and_eio_are_reported, FL_KERNEL, FL_SOFT + 1);
    tcase_add_loop_test(tc, no_inotify_still_wakes, FL_KERNEL, FL_SOFT + 1);
    suite_add_tcase(s, tc);
    return s;
}
