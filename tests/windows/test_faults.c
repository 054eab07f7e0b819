/*
 * Fault injection through the Windows system-call seam (fl__sys, static
 * core only): failures the real system rarely produces on demand.
 */
#include "wintest.h"

#include "internal.h"
#include "soft.h"

#include <stdio.h>

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

/* A dead holder's marker (pid 4194303 cannot exist: Windows pids are
 * multiples of 4 below 2^22 here) with this host's name. */
static void plant_dead(const char *path) {
    char rec[400];
    snprintf(rec, sizeof rec, "4194303\n%s\n", wt_host());
    wt_plant(path, rec);
}

/* The claim soft.c would make on the file now at path. */
static void claim_of(const char *path, char *claim, size_t cap) {
    fl__record rec;
    ck_assert_int_eq(fl__prim_read(path, &rec), 0);
    ck_assert_int_eq(fl__soft_claim_name(path, &rec.id, claim, cap), 0);
    fl__prim_close(rec.fd);
}

/* A taker that died holding its claim on a dead marker, and another that
 * died with its private marker not yet moved: the next waiter takes the
 * dead claim over, then the marker, and collects the private marker. */
START_TEST(dead_takers_leftovers_resolved) {
    const char *p = wt_path("dt.lock");
    fl_lock *l = wt_lock(p, FL_SOFT);
    char claim[4096], priv[4096], rec[400];
    plant_dead(p);
    claim_of(p, claim, sizeof claim);
    snprintf(rec, sizeof rec, "4194299\n%s\n", wt_host());
    wt_plant(claim, rec);
    snprintf(priv, sizeof priv, "%.*s.%016llx.00000000deadbeef.new", (int)(strrchr(p, '/') - p + 1),
             p, (unsigned long long)fl__name_hash("dt.lock"));
    wt_plant(priv, rec);
    ck_assert_int_eq(wt_count("."), 2);
    ck_assert_msg(fl_acquire_ex(l, 10, 1, 0.05) == 0, "%s", fl_last_error());
    ck_assert(!wt_exists(claim));
    ck_assert(!wt_exists(priv));
    ck_assert_int_eq(wt_count("."), 0);
    ck_assert_int_eq(fl_release(l, 0), 0);
    fl_lock_free(l);
}
END_TEST

/* A claim of a live taker (this process, no token: alive) means someone
 * is at work: the waiter waits and touches nothing. */
START_TEST(live_claim_waited_for) {
    const char *p = wt_path("lc.lock");
    fl_lock *l = wt_lock(p, FL_SOFT);
    char claim[4096], rec[400];
    plant_dead(p);
    claim_of(p, claim, sizeof claim);
    snprintf(rec, sizeof rec, "%lu\n%s\n", (unsigned long)GetCurrentProcessId(), wt_host());
    wt_plant(claim, rec);
    ck_assert_int_eq(fl_acquire_ex(l, 0.6, 1, 0.05), FL_ETIMEOUT);
    ck_assert(wt_exists(claim));
    ck_assert(DeleteFileW(wt_wide(claim)));
    ck_assert_msg(fl_acquire_ex(l, 10, 1, 0.05) == 0, "%s", fl_last_error());
    fl_lock_free(l);
}
END_TEST

static int fake_move_denied(const wchar_t *from, const wchar_t *to, unsigned long flags) {
    (void)from, (void)to, (void)flags;
    SetLastError(ERROR_ACCESS_DENIED);
    return 0;
}

static int g_move_busy;
static int fake_move_busy(const wchar_t *from, const wchar_t *to, unsigned long flags) {
    if (g_move_busy > 0) {
        g_move_busy--;
        SetLastError(ERROR_SHARING_VIOLATION);
        return 0;
    }
    return MoveFileExW(from, to, flags);
}

/* A replace the system refuses for good (the file is not in use) is a
 * prompt error naming the lock, never a Timeout; the dead marker stays and
 * nothing of the attempt is left behind. */
START_TEST(replace_refused_is_an_error) {
    const char *p = wt_path("rf.lock");
    fl_lock *l = wt_lock(p, FL_SOFT);
    char buf[400], rec[400];
    int rc;
    plant_dead(p);
    wt_read(p, rec, sizeof rec);
    fl__sys.move_file = fake_move_denied;
    rc = fl_acquire_ex(l, 30, 1, 0.05);
    ck_assert_msg(rc == FL_EACCES, "rc %d: %s", rc, fl_last_error());
    ck_assert_msg(strstr(fl_last_error(), p) != NULL, "%s", fl_last_error());
    fl__sys_reset();
    ck_assert_int_gt(wt_read(p, buf, sizeof buf), 0);
    ck_assert_str_eq(buf, rec);
    ck_assert_int_eq(wt_count("."), 0);
    fl_lock_free(l);
}
END_TEST

/* A replace refused for a moment (a sharing violation) is retried. */
START_TEST(replace_retried) {
    const char *p = wt_path("rt.lock");
    fl_lock *l = wt_lock(p, FL_SOFT);
    plant_dead(p);
    g_move_busy = 3;
    fl__sys.move_file = fake_move_busy;
    ck_assert_msg(fl_acquire_ex(l, 10, 1, 0.05) == 0, "%s", fl_last_error());
    ck_assert_int_eq(g_move_busy, 0);
    ck_assert_int_eq(wt_count("."), 0);
    ck_assert_int_eq(fl_release(l, 0), 0);
    ck_assert(!wt_exists(p));
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
    tcase_add_test(t, dead_takers_leftovers_resolved);
    tcase_add_test(t, live_claim_waited_for);
    tcase_add_test(t, replace_refused_is_an_error);
    tcase_add_test(t, replace_retried);
    suite_add_tcase(s, t);
    return s;
}
