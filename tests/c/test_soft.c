/*
 * The soft lock: an exclusive-create marker holding "<pid>\n<hostname>\n",
 * deleted on release only while it is still the marker we created.
 */
#define _GNU_SOURCE
#include "testutil.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

START_TEST(marker_is_exclusive) {
    const char *p = P("x.lock");
    char buf[64];
    fl_lock *l = fl_new_kind(p, FL_SOFT);
    fl_write_file(p, "someone else\n");
    ck_assert_int_eq(fl_acquire_ex(l, 0, 1, 0.05), FL_ETIMEOUT);
    ck_assert_int_eq(fl_lock_counter(l), 0);
    fl_lock_free(l);
    ck_assert_int_eq(fl_read_file(p, buf, sizeof buf), 13);
    ck_assert_str_eq(buf, "someone else\n");
}
END_TEST

START_TEST(marker_counts_create_attempts) {
    const char *p = P("x.lock");
    fl_lock *l = fl_new_kind(p, FL_SOFT);
    fl_write_file(p, "x");
    fl_count_syscalls();
    ck_assert_int_eq(fl_acquire_ex(l, 0, 1, 0.05), FL_ETIMEOUT);
    ck_assert_int_eq(fl_calls.excl_open, 1);
    ck_assert_int_eq(fl_calls.unlink, 0);
    fl_lock_free(l);
}
END_TEST

START_TEST(marker_contents) {
    const char *p = P("x.lock");
    char buf[512], want[512], host[256];
    const char *rest;
    fl_lock *l = fl_new_kind(p, FL_SOFT);
    ck_assert_int_eq(gethostname(host, sizeof host), 0);
    host[sizeof host - 1] = '\0';
    snprintf(want, sizeof want, "%ld\n%s\n", (long)getpid(), host);
    ck_assert_int_eq(fl_acquire(l), 0);
    ck_assert(fl_is_reg(p));
    ck_assert(fl_read_file(p, buf, sizeof buf) > 0);
    ck_assert_msg(strncmp(buf, want, strlen(want)) == 0, "marker holds '%s', want '%s...'", buf,
                  want);
    /* An optional third line is the owner's start token (decimal). */
    rest = buf + strlen(want);
    if (*rest) {
        ck_assert_msg(strspn(rest, "0123456789") == strlen(rest) - 1, "bad token line '%s'", rest);
        ck_assert(rest[strlen(rest) - 1] == '\n');
    }
    ck_assert_int_eq(fl_release(l, 0), 0);
    ck_assert_msg(!fl_exists(p), "the marker must be removed on release");
    fl_lock_free(l);
}
END_TEST

START_TEST(marker_kept_while_recursion_held) {
    const char *p = P("x.lock");
    fl_lock *l = fl_new_kind(p, FL_SOFT);
    ck_assert_int_eq(fl_acquire(l), 0);
    ck_assert_int_eq(fl_acquire(l), 0);
    ck_assert_int_eq(fl_lock_counter(l), 2);
    ck_assert_int_eq(fl_release(l, 0), 0);
    ck_assert(fl_is_reg(p));
    ck_assert_int_eq(fl_release(l, 0), 0);
    ck_assert(!fl_exists(p));
    fl_lock_free(l);
}
END_TEST

START_TEST(replaced_marker_not_deleted) {
    const char *p = P("x.lock");
    char buf[64];
    fl_lock *l = fl_new_kind(p, FL_SOFT);
    ck_assert_int_eq(fl_acquire(l), 0);
    /* Someone broke our marker and took the lock with a new file (renamed
     * over it, so it is surely another inode). */
    fl_write_file(P("other"), "theirs\n");
    ck_assert_int_eq(rename(P("other"), p), 0);
    ck_assert_int_eq(fl_release(l, 0), 0);
    ck_assert_int_eq(fl_lock_counter(l), 0);
    ck_assert_msg(fl_is_reg(p), "release deleted a marker that is not ours");
    ck_assert_int_eq(fl_read_file(p, buf, sizeof buf), 7);
    ck_assert_str_eq(buf, "theirs\n");
    fl_lock_free(l);
    ck_assert(fl_is_reg(p));
}
END_TEST

START_TEST(removed_marker_release_ok) {
    const char *p = P("x.lock");
    fl_lock *l = fl_new_kind(p, FL_SOFT);
    ck_assert_int_eq(fl_acquire(l), 0);
    ck_assert_int_eq(unlink(p), 0);
    ck_assert_int_eq(fl_release(l, 0), 0);
    ck_assert(!fl_exists(p));
    ck_assert_int_eq(fl_acquire(l), 0);
    ck_assert(fl_is_reg(p));
    fl_lock_free(l);
    ck_assert(!fl_exists(p));
}
END_TEST

START_TEST(free_releases_marker) {
    const char *p = P("x.lock");
    fl_lock *l = fl_new_kind(p, FL_SOFT);
    ck_assert_int_eq(fl_acquire(l), 0);
    fl_lock_free(l);
    ck_assert(!fl_exists(p));
    /* Freeing an unheld handle touches nothing. */
    fl_write_file(p, "");
    l = fl_new_kind(p, FL_SOFT);
    fl_lock_free(l);
    ck_assert(fl_is_reg(p));
}
END_TEST

START_TEST(two_soft_handles_exclude) {
    /* Two soft handles in one process exclude each other. */
    const char *p = P("x.lock");
    fl_lock *a = fl_new_kind(p, FL_SOFT), *b = fl_new_kind(p, FL_SOFT);
    ck_assert_int_eq(fl_acquire(a), 0);
    ck_assert_int_eq(fl_acquire_ex(b, 0.1, 1, 0.01), FL_ETIMEOUT);
    ck_assert_int_eq(fl_release(a, 0), 0);
    ck_assert_int_eq(fl_acquire_ex(b, 0, 1, 0.01), 0);
    ck_assert_int_eq(fl_lock_kind(b), FL_SOFT);
    fl_lock_free(a);
    fl_lock_free(b);
}
END_TEST

/* fl_set_owner_pid: the marker names another process (a command run on the
 * caller's behalf); it is not stale while that process lives, even though
 * the caller's pid is not in it, and is reclaimed once it is gone. */
START_TEST(owner_pid_names_another_process) {
    const char *p = P("x.lock");
    fl_lock *a = fl_new_kind(p, FL_SOFT), *b = fl_new_kind(p, FL_SOFT);
    fl_owner o;
    int st;
    pid_t child = fork();
    ck_assert_int_ge(child, 0);
    if (child == 0) {
        pause();
        _exit(0);
    }
    ck_assert_int_eq(fl_set_owner_pid(a, -1), FL_EINVAL);
    ck_assert_int_eq(fl_set_owner_pid(a, (long)child), 0);
    ck_assert_int_eq(fl_acquire_ex(a, 0, 1, 0.05), 0);
    ck_assert_int_eq(fl_get_owner(b, &o), 0);
    ck_assert_int_eq(o.pid, (long)child);
    ck_assert_int_eq(o.this_process, 0);
    ck_assert_msg(o.start_token[0] != '\0', "no start token for the named process");
    /* Alive: never judged stale (the stale check runs on every new marker). */
    ck_assert_int_eq(fl_acquire_ex(b, 0, 1, 0.05), FL_ETIMEOUT);
    /* Gone (killed and reaped): the next acquirer reclaims the marker. */
    ck_assert_int_eq(kill(child, SIGKILL), 0);
    ck_assert_int_eq(waitpid(child, &st, 0), child);
    ck_assert_int_eq(fl_acquire_ex(b, 5, 1, 0.05), 0);
    ck_assert_int_eq(fl_get_owner(a, &o), 0);
    ck_assert_int_eq(o.pid, (long)getpid());
    /* a's release leaves b's marker alone. */
    ck_assert_int_eq(fl_release(a, 1), 0);
    ck_assert(fl_exists(p));
    ck_assert_int_eq(fl_release(b, 1), 0);
    ck_assert(!fl_exists(p));
    /* 0 restores the caller as the holder. */
    ck_assert_int_eq(fl_set_owner_pid(a, 0), 0);
    ck_assert_int_eq(fl_acquire_ex(a, 0, 1, 0.05), 0);
    ck_assert_int_eq(fl_get_owner(b, &o), 0);
    ck_assert_int_eq(o.pid, (long)getpid());
    fl_lock_free(a);
    fl_lock_free(b);
}
END_TEST

Suite *suite_soft(void) {
    Suite *s = suite_create("soft");
    TCase *tc = fl_tcase("marker");
    tcase_add_test(tc, marker_is_exclusive);
    tcase_add_test(tc, marker_counts_create_attempts);
    tcase_add_test(tc, marker_contents);
    tcase_add_test(tc, marker_kept_while_recursion_held);
    tcase_add_test(tc, replaced_marker_not_deleted);
    tcase_add_test(tc, removed_marker_release_ok);
    tcase_add_test(tc, free_releases_marker);
    tcase_add_test(tc, two_soft_handles_exclude);
    tcase_add_test(tc, owner_pid_names_another_process);
    suite_add_tcase(s, tc);
    return s;
}
