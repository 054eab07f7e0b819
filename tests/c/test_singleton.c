/*
 * The singleton registry: one handle per lock file (canonical parent
 * directory + final name, a final symlink not followed), refcounted, and an
 * error when asked again with different settings.
 */
#define _GNU_SOURCE
#include "testutil.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static fl_options single(void) {
    fl_options o = FL_OPTIONS_INIT;
    o.singleton = 1;
    return o;
}

START_TEST(same_handle_for_same_path) {
    fl_options o = single();
    fl_lock *a, *b, *c, *d, *plain;
    ck_assert_int_eq(mkdir(P("dir"), 0755), 0);
    ck_assert_int_eq(fl_lock_new(&a, P("dir/x.lock"), &o), 0);
    ck_assert_int_eq(fl_is_singleton(a), 1);
    ck_assert_int_eq(fl_lock_new(&b, P("dir/x.lock"), &o), 0);
    ck_assert_ptr_eq(a, b);
    ck_assert_int_eq(fl_lock_new(&c, P("dir/../dir/x.lock"), &o), 0);
    ck_assert_ptr_eq(a, c);
    ck_assert_int_eq(fl_lock_new(&d, P("dir//./x.lock"), &o), 0);
    ck_assert_ptr_eq(a, d);
    /* A non-singleton handle is always a new one. */
    ck_assert_int_eq(fl_lock_new(&plain, P("dir/x.lock"), NULL), 0);
    ck_assert_ptr_ne(a, plain);
    ck_assert_int_eq(fl_is_singleton(plain), 0);
    ck_assert_ptr_null(fl_singleton_key(plain));
    fl_lock_free(plain);
    fl_lock_free(d);
    fl_lock_free(c);
    fl_lock_free(b);
    fl_lock_free(a);
}
END_TEST

START_TEST(symlinked_parent_same_handle_final_symlink_not) {
    fl_options o = single();
    fl_lock *a, *b, *c;
    ck_assert_int_eq(mkdir(P("real"), 0755), 0);
    ck_assert_int_eq(symlink("real", P("alias")), 0);
    ck_assert_int_eq(symlink("x.lock", P("real/link.lock")), 0);
    ck_assert_int_eq(fl_lock_new(&a, P("real/x.lock"), &o), 0);
    ck_assert_int_eq(fl_lock_new(&b, P("alias/x.lock"), &o), 0);
    ck_assert_ptr_eq(a, b);
    ck_assert_int_eq(fl_lock_new(&c, P("real/link.lock"), &o), 0);
    ck_assert_ptr_ne(a, c);
    /* The key bindings use for their per-language tables says the same:
     * the parent resolved, the final name (a symlink here) kept. */
    {
        char want[4096];
        ck_assert_ptr_nonnull(realpath(P("real"), want));
        strcat(want, "/x.lock");
        ck_assert_str_eq(fl_singleton_key(b), want);
        ck_assert_str_ne(fl_singleton_key(c), fl_singleton_key(a));
        ck_assert_ptr_nonnull(strstr(fl_singleton_key(c), "/link.lock"));
    }
    fl_lock_free(c);
    fl_lock_free(b);
    fl_lock_free(a);
}
END_TEST

START_TEST(different_settings_rejected) {
    fl_options o = single(), other;
    fl_lock *a, *b = (fl_lock *)1;
    ck_assert_int_eq(fl_lock_new(&a, P("x.lock"), &o), 0);
    other = o;
    other.timeout = 5;
    ck_assert_int_eq(fl_lock_new(&b, P("x.lock"), &other), FL_EINVAL);
    ck_assert_ptr_null(b);
    ck_assert_msg(strstr(fl_last_error(), "different settings") != NULL, "%s", fl_last_error());
    /* The same words as the pure-Python package's ValueError, for every binding. */
    ck_assert_msg(strncmp(fl_last_error(),
                          "Singleton lock instances cannot be initialized with differing arguments",
                          71) == 0,
                  "%s", fl_last_error());
    other = o;
    other.kind = FL_SOFT;
    ck_assert_int_eq(fl_lock_new(&b, P("x.lock"), &other), FL_EINVAL);
    other = o;
    other.mode = 0600;
    ck_assert_int_eq(fl_lock_new(&b, P("x.lock"), &other), FL_EINVAL);
    other = o;
    other.thread_local = 0;
    ck_assert_int_eq(fl_lock_new(&b, P("x.lock"), &other), FL_EINVAL);
    other = o;
    other.blocking = 0;
    ck_assert_int_eq(fl_lock_new(&b, P("x.lock"), &other), FL_EINVAL);
    other = o;
    other.poll_interval = 0.5;
    ck_assert_int_eq(fl_lock_new(&b, P("x.lock"), &other), FL_EINVAL);
    /* The failed calls took no reference: one free ends it. */
    fl_lock_free(a);
    ck_assert_int_eq(fl_lock_new(&b, P("x.lock"), &other), 0);
    ck_assert(fl_get_poll_interval(b) == 0.5);
    fl_lock_free(b);
}
END_TEST

START_TEST(refcounted_free) {
    fl_options o = single();
    fl_lock *a, *b, *c;
    const char *p = P("x.lock");
    ck_assert_int_eq(fl_lock_new(&a, p, &o), 0);
    ck_assert_int_eq(fl_lock_new(&b, p, &o), 0);
    ck_assert_ptr_eq(a, b);
    ck_assert_int_eq(fl_acquire(a), 0);
    fl_lock_free(b); /* one reference left: still held and usable */
    ck_assert_int_eq(fl_lock_counter(a), 1);
    ck_assert_str_eq(fl_lock_path(a), p);
    ck_assert_int_eq(fl_helper_try(p, FL_KERNEL), 3);
    ck_assert_int_eq(fl_release(a, 0), 0);
    ck_assert_int_eq(fl_acquire(a), 0);
    fl_lock_free(a); /* last reference: released and gone */
    ck_assert_int_eq(fl_helper_try(p, FL_KERNEL), 0);
    o.timeout = 3; /* a fresh registration may use other settings */
    ck_assert_int_eq(fl_lock_new(&c, p, &o), 0);
    ck_assert(fl_get_timeout(c) == 3);
    fl_lock_free(c);
}
END_TEST

/* A binding keeps one singleton per class (Python's per-class _instances):
 * two scopes on one lock file are two locks -- each its own hold (one
 * excludes the other, even in one thread), settings never compared across
 * scopes -- while one scope still shares its handle. */
START_TEST(scopes_are_separate_locks) {
    static const int scope_a = 1, scope_b = 2;
    fl_options oa = single(), ob = single();
    fl_lock *a, *a2, *b, *plain_scope;
    const char *p = P("x.lock");
    oa.singleton_scope = &scope_a;
    ob.singleton_scope = &scope_b;
    ob.timeout = 7; /* differs from a's: refused within a scope, fine across */
    ck_assert_int_eq(fl_lock_new(&a, p, &oa), 0);
    ck_assert_int_eq(fl_lock_new(&b, p, &ob), 0);
    ck_assert_ptr_ne(a, b);
    ck_assert(fl_get_timeout(b) == 7);
    ck_assert_int_eq(fl_lock_new(&a2, p, &oa), 0);
    ck_assert_ptr_eq(a, a2);
    /* The process-wide scope (NULL) is a third one. */
    ck_assert_int_eq(fl_lock_new(&plain_scope, p, NULL), 0);
    ck_assert_int_eq(fl_acquire(a), 0);
    ck_assert_int_eq(fl_lock_counter(b), 0);
    ck_assert_int_eq(fl_is_locked(b), 0);
    ck_assert_int_eq(fl_acquire_ex(b, 0, 1, 0.05), FL_ETIMEOUT);
    /* b's release must not touch a's hold. */
    ck_assert_int_eq(fl_release(b, 1), 0);
    ck_assert_int_eq(fl_lock_counter(a), 1);
    ck_assert_int_eq(fl_helper_try(p, FL_KERNEL), 3);
    ck_assert_int_eq(fl_release(a, 0), 0);
    ck_assert_int_eq(fl_acquire_ex(b, 0, 1, 0.05), 0);
    ck_assert_int_eq(fl_release(b, 0), 0);
    fl_lock_free(plain_scope);
    fl_lock_free(a2);
    fl_lock_free(a);
    fl_lock_free(b);
}
END_TEST

Suite *suite_singleton(void) {
    Suite *s = suite_create("singleton");
    TCase *tc = fl_tcase("registry");
    tcase_add_test(tc, same_handle_for_same_path);
    tcase_add_test(tc, symlinked_parent_same_handle_final_symlink_not);
    tcase_add_test(tc, different_settings_rejected);
    tcase_add_test(tc, refcounted_free);
    tcase_add_test(tc, scopes_are_separate_locks);
    suite_add_tcase(s, tc);
    return s;
}
