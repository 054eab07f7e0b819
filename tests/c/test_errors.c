/*
 * Errors: every code has a name and a description; the per-thread last
 * error names the path and the OS reason and carries the OS errno.
 */
#define _GNU_SOURCE
#include "testutil.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

START_TEST(names_and_texts) {
    static const struct {
        int code;
        const char *name;
    } codes[] = {{FL_OK, "OK"},
                 {FL_EINVAL, "EINVAL"},
                 {FL_EISDIR, "EISDIR"},
                 {FL_EACCES, "EACCES"},
                 {FL_EROFS, "EROFS"},
                 {FL_ENAMETOOLONG, "ENAMETOOLONG"},
                 {FL_ENOTSUP, "ENOTSUP"},
                 {FL_ETIMEOUT, "ETIMEOUT"},
                 {FL_EDEADLK, "EDEADLK"},
                 {FL_EINTR, "EINTR"},
                 {FL_ECANCELED, "ECANCELED"},
                 {FL_EIO, "EIO"},
                 {FL_ENOENT, "ENOENT"},
                 {FL_ENOTDIR, "ENOTDIR"},
                 {FL_ELOOP, "ELOOP"},
                 {FL_ENOTREG, "ENOTREG"},
                 {FL_ENOSPC, "ENOSPC"},
                 {FL_ENOMEM, "ENOMEM"},
                 {FL_EOS, "EOS"}};
    size_t i, j, n = sizeof codes / sizeof codes[0];
    for (i = 0; i < n; i++) {
        ck_assert_str_eq(fl_err_name(codes[i].code), codes[i].name);
        ck_assert_ptr_nonnull(fl_strerror(codes[i].code));
        ck_assert(strlen(fl_strerror(codes[i].code)) > 0);
        for (j = 0; j < i; j++)
            ck_assert_str_ne(fl_strerror(codes[i].code), fl_strerror(codes[j].code));
    }
    /* Every code in the table, including ones added later, has a name and
     * its own description. */
    for (i = 0; (int)i < -FL__ERROR_END; i++) {
        int c = -(int)i;
        ck_assert_str_ne(fl_err_name(c), "UNKNOWN");
        ck_assert_str_ne(fl_strerror(c), "unknown error");
        for (j = 0; j < i; j++)
            ck_assert_str_ne(fl_strerror(c), fl_strerror(-(int)j));
    }
    ck_assert_str_eq(fl_err_name(FL__ERROR_END), "UNKNOWN");
    ck_assert_str_eq(fl_err_name(-1000), "UNKNOWN");
    ck_assert_str_eq(fl_err_name(5), "UNKNOWN");
    ck_assert_str_eq(fl_strerror(-1000), "unknown error");
    ck_assert_str_eq(fl_strerror(FL_ETIMEOUT), "timed out waiting for the lock");
}
END_TEST

START_TEST(last_error_names_path_and_reason) {
    const char *p = P("f/x.lock");
    fl_lock *l;
    fl_write_file(P("f"), "");
    l = fl_new_kind(p, FL_KERNEL);
    ck_assert_int_eq(fl_acquire(l), FL_ENOTDIR);
    ck_assert_int_eq(fl_last_code(), FL_ENOTDIR);
    ck_assert_int_eq(fl_last_errno(), ENOTDIR);
    ck_assert_msg(strstr(fl_last_error(), p) != NULL, "no path in: %s", fl_last_error());
    ck_assert_msg(strstr(fl_last_error(), strerror(ENOTDIR)) != NULL, "no reason in: %s",
                  fl_last_error());
    fl_lock_free(l);
    /* Errors that do not come from the OS carry errno 0. */
    {
        fl_options o = FL_OPTIONS_INIT;
        o.version = 99;
        ck_assert_int_eq(fl_lock_new(&l, p, &o), FL_EINVAL);
        ck_assert_int_eq(fl_last_errno(), 0);
        ck_assert_int_eq(fl_last_code(), FL_EINVAL);
    }
}
END_TEST

typedef struct tls_probe {
    const char *initial;
    int initial_code;
    int code;
    char msg[256];
    const char *path;
} tls_probe;

static void *tls_main(void *arg) {
    tls_probe *t = arg;
    fl_lock *l;
    t->initial = fl_last_error();
    t->initial_code = fl_last_code();
    t->initial = t->initial[0] == '\0' ? "" : "not empty";
    ck_assert_int_eq(fl_lock_new(&l, t->path, NULL), 0);
    t->code = fl_acquire(l);
    snprintf(t->msg, sizeof t->msg, "%s", fl_last_error());
    fl_lock_free(l);
    return NULL;
}

START_TEST(last_error_is_per_thread) {
    tls_probe t;
    pthread_t th;
    fl_lock *l = NULL;
    memset(&t, 0, sizeof t);
    t.path = P("d.lock");
    ck_assert_int_eq(mkdir(t.path, 0755), 0);
    ck_assert_int_eq(fl_lock_new(&l, "", NULL), FL_EINVAL);
    ck_assert_int_eq(pthread_create(&th, NULL, tls_main, &t), 0);
    fl_join(th, 20);
    ck_assert_str_eq(t.initial, "");
    ck_assert_int_eq(t.initial_code, 0);
    ck_assert_int_eq(t.code, FL_EISDIR);
    ck_assert(strstr(t.msg, t.path) != NULL);
    /* Our own message is untouched by the other thread's error. */
    ck_assert_int_eq(fl_last_code(), FL_EINVAL);
    ck_assert(strstr(fl_last_error(), "empty") != NULL);
}
END_TEST

START_TEST(version) {
    char want[32];
    snprintf(want, sizeof want, "%d.%d.%d", FL_VERSION_MAJOR, FL_VERSION_MINOR,
             FL_VERSION_PATCH);
    ck_assert_str_eq(fl_version(), want);
}
END_TEST

Suite *suite_errors(void) {
    Suite *s = suite_create("errors");
    TCase *tc = fl_tcase("errors");
    tcase_add_test(tc, names_and_texts);
    tcase_add_test(tc, last_error_names_path_and_reason);
    tcase_add_test(tc, last_error_is_per_thread);
    tcase_add_test(tc, version);
    suite_add_tcase(s, tc);
    return s;
}
