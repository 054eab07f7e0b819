/*
 * Fault injection through the Windows system-call seam (fl__sys, static
 * core only): failures the real system rarely produces on demand.
 */
#include "wintest.h"

#include "internal.h"

#include <string.h>

static int fake_lock_unsupported(void *h, unsigned long flags, void *ov) {
    (void)h, (void)flags, (void)ov;
    SetLastError(ERROR_NOT_SUPPORTED);
    return 0;
}

static int fake_close_fails(void *h) {
    CloseHandle(h);
    SetLastError(ERROR_IO_DEVICE);
    return 0;
}

static int g_delete_refusals;
static void *(*real_create)(const wchar_t *, unsigned long, unsigned long, unsigned long,
                            unsigned long);
/* Refuses the first two opens for DELETE with a sharing violation. */
static void *fake_create_busy(const wchar_t *p, unsigned long access, unsigned long share,
                              unsigned long disp, unsigned long flags) {
    if ((access & DELETE) && g_delete_refusals > 0) {
        g_delete_refusals--;
        SetLastError(ERROR_SHARING_VIOLATION);
        return INVALID_HANDLE_VALUE;
    }
    return real_create(p, access, share, disp, flags);
}

static void reset(void) {
    fl__sys_reset();
    wt_teardown();
}

START_TEST(lockfileex_unsupported) {
    const char *p = wt_path("nl.lock");
    fl_lock *l = wt_lock(p, FL_KERNEL);
    fl__sys.lock_file = fake_lock_unsupported;
    ck_assert_int_eq(fl_acquire_ex(l, 0, 1, 0.05), FL_ENOTSUP);
    ck_assert_msg(strstr(fl_last_error(), "soft") != NULL, "%s", fl_last_error());
    ck_assert_int_eq(fl_last_errno(), ERROR_NOT_SUPPORTED);
    ck_assert(!wt_exists(p)); /* the file it created is removed again */
    fl_lock_free(l);
}
END_TEST

START_TEST(soft_fallback) {
    const char *p = wt_path("fb.lock");
    fl_options o = FL_OPTIONS_INIT;
    fl_lock *l;
    o.soft_fallback = 1;
    ck_assert_int_eq(fl_lock_new(&l, p, &o), 0);
    fl__sys.lock_file = fake_lock_unsupported;
    ck_assert_msg(fl_acquire_ex(l, 0, 1, 0.05) == 0, "%s", fl_last_error());
    ck_assert_int_eq(fl_lock_kind(l), FL_SOFT);
    ck_assert(wt_exists(p)); /* now the marker */
    ck_assert_int_eq(fl_release(l, 0), 0);
    ck_assert(!wt_exists(p));
    fl_lock_free(l);
}
END_TEST

START_TEST(close_error_still_releases) {
    const char *p = wt_path("ce.lock");
    fl_lock *a = wt_lock(p, FL_KERNEL), *b = wt_lock(p, FL_KERNEL);
    ck_assert_int_eq(fl_acquire(a), 0);
    fl__sys.close_handle = fake_close_fails;
    ck_assert_int_eq(fl_release(a, 0), FL_EIO);
    ck_assert_msg(strstr(fl_last_error(), "released") != NULL, "%s", fl_last_error());
    fl__sys_reset();
    ck_assert_int_eq(fl_is_locked(a), 0);
    ck_assert_int_eq(fl_acquire_ex(b, 0, 1, 0.05), 0);
    fl_lock_free(b);
    fl_lock_free(a);
}
END_TEST

START_TEST(marker_delete_retried) {
    const char *p = wt_path("dr.lock");
    fl_lock *l = wt_lock(p, FL_SOFT);
    ck_assert_int_eq(fl_acquire(l), 0);
    real_create = fl__sys.create_file;
    g_delete_refusals = 2;
    fl__sys.create_file = fake_create_busy;
    ck_assert_msg(fl_release(l, 0) == 0, "%s", fl_last_error());
    ck_assert_int_eq(g_delete_refusals, 0);
    ck_assert(!wt_exists(p));
    fl_lock_free(l);
}
END_TEST

START_TEST(marker_delete_gives_up) {
    const char *p = wt_path("dg.lock");
    fl_lock *l = wt_lock(p, FL_SOFT);
    ck_assert_int_eq(fl_acquire(l), 0);
    real_create = fl__sys.create_file;
    g_delete_refusals = 1000000;
    fl__sys.create_file = fake_create_busy;
    ck_assert_int_eq(fl_release(l, 0), FL_EACCES); /* after about a second */
    ck_assert_msg(strstr(fl_last_error(), p) != NULL, "%s", fl_last_error());
    fl__sys_reset();
    ck_assert(wt_exists(p));
    fl_lock_free(l);
}
END_TEST

static int fake_mkdir_denied(const wchar_t *path) {
    (void)path;
    SetLastError(ERROR_ACCESS_DENIED);
    return 0;
}

START_TEST(mkdir_failure_reported) {
    const char *p = wt_path("deny/x.lock");
    fl_lock *l = wt_lock(p, FL_KERNEL);
    fl__sys.create_directory = fake_mkdir_denied;
    ck_assert_int_eq(fl_acquire_ex(l, 0, 1, 0.05), FL_EACCES);
    ck_assert_msg(strstr(fl_last_error(), p) != NULL, "%s", fl_last_error());
    ck_assert_int_eq(fl_last_errno(), ERROR_ACCESS_DENIED);
    fl_lock_free(l);
}
END_TEST

Suite *wt_suite_faults(void) {
    Suite *s = suite_create("faults");
    TCase *t = tcase_create("seam");
    tcase_add_checked_fixture(t, wt_setup, reset);
    tcase_add_test(t, lockfileex_unsupported);
    tcase_add_test(t, soft_fallback);
    tcase_add_test(t, close_error_still_releases);
    tcase_add_test(t, marker_delete_retried);
    tcase_add_test(t, marker_delete_gives_up);
    tcase_add_test(t, mkdir_failure_reported);
    suite_add_tcase(s, t);
    return s;
}
