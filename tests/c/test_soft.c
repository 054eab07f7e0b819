/*
 * The soft lock: an exclusive-create marker holding "<pid>\n<hostname>\n",
 * deleted on release only while it is still the marker we created.
 */
#define _GNU_SOURCE
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
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
#ifdef FL__LINUX
    ck_assert_msg(o.start_token[0] != '\0', "no start token for the named process");
#else
    ck_assert_str_eq(o.start_token, ""); /* generic.c: records carry no token */
#endif
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

/* ---- the numbered cases of issue 13 ---------------------------------------- */

/* A marker left by a process that is gone (forked, exited, reaped). */
static void plant_dead(const char *path) {
    char rec[512], host[256];
    pid_t pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0)
        _exit(0);
    ck_assert_int_eq(fl_wait_child(pid, 10), 0);
    ck_assert_int_eq(gethostname(host, sizeof host), 0);
    host[sizeof host - 1] = '\0';
    snprintf(rec, sizeof rec, "%ld\n%s\n", (long)pid, host);
    fl_write_file(path, rec);
}

typedef struct perm_case {
    const char *path;
    int expect;
} perm_case;

/* In a child as nobody: waiting forever must end at once with the error. */
static int wait_forever_as_nobody(void *arg) {
    const perm_case *c = arg;
    fl_lock *l;
    fl_options o = FL_OPTIONS_INIT;
    int rc;
    if (fl_drop_privileges() != 0)
        return 10;
    o.kind = FL_SOFT;
    if (fl_lock_new(&l, c->path, &o) != 0)
        return 11;
    rc = fl_acquire_ex(l, -1, 1, 0.05);
    if (rc != c->expect) {
        fprintf(stderr, "acquire: %s (%s), want %s\n", fl_err_name(rc), fl_last_error(),
                fl_err_name(c->expect));
        return 12;
    }
    if (!strstr(fl_last_error(), c->path)) {
        fprintf(stderr, "message does not name the path: %s\n", fl_last_error());
        return 13;
    }
    return 0;
}

/* Item 5: a stale marker the waiter cannot remove is a prompt permission
 * error naming the path (never a forever-wait or a Timeout): a directory
 * the waiter cannot write, and a sticky world-writable directory with
 * another user's marker. */
START_TEST(item5_unremovable_stale_marker_is_an_error) {
    perm_case c;
    char dir[2048], path[4096];
    if (!fl_running_as_root() || !fl_test_forking) {
        fprintf(stderr, "note: item5 test needs root (to become nobody) and fork mode: skipped\n");
        return;
    }
    ck_assert_int_eq(chmod(fl_tdir, 0755), 0);
    /* read-only (for nobody) directory */
    snprintf(dir, sizeof dir, "%s/ro", fl_tdir);
    ck_assert_int_eq(mkdir(dir, 0755), 0);
    snprintf(path, sizeof path, "%s/x.lock", dir);
    plant_dead(path);
    ck_assert_int_eq(chmod(path, 0644), 0);
    c.path = path;
    c.expect = FL_EACCES;
    ck_assert_int_eq(fl_run_in_child(wait_forever_as_nobody, &c, 10), 0);
    ck_assert(fl_is_reg(path));
    /* sticky, world-writable, root's marker */
    snprintf(dir, sizeof dir, "%s/sticky", fl_tdir);
    ck_assert_int_eq(mkdir(dir, 0755), 0);
    ck_assert_int_eq(chmod(dir, 01777), 0);
    snprintf(path, sizeof path, "%s/x.lock", dir);
    plant_dead(path);
    ck_assert_int_eq(chmod(path, 0644), 0);
    c.path = path;
    ck_assert_int_eq(fl_run_in_child(wait_forever_as_nobody, &c, 10), 0);
    ck_assert(fl_is_reg(path));
}
END_TEST

static int fail_claims_errno;
static int (*real_open)(const char *, int, mode_t);
static int open_failing_claims(const char *path, int flags, mode_t mode) {
    size_t n = strlen(path);
    if ((flags & O_EXCL) && n > 6 && strcmp(path + n - 6, ".claim") == 0) {
        errno = fail_claims_errno;
        return -1;
    }
    return real_open(path, flags, mode);
}

/* Item 5, every permanent error of the take-over (injected): the error
 * itself, never a wait. */
START_TEST(item5_permanent_takeover_errors) {
    static const int errs[] = {EROFS, EACCES, EPERM, ENAMETOOLONG, ENOSPC, EIO};
    static const int codes[] = {FL_EROFS, FL_EACCES, FL_EACCES, FL_ENAMETOOLONG, FL_ENOSPC, FL_EIO};
    const char *p = P("x.lock");
    size_t i;
    for (i = 0; i < sizeof errs / sizeof errs[0]; i++) {
        fl_lock *l = fl_new_kind(p, FL_SOFT);
        double t0;
        int rc;
        plant_dead(p);
        fail_claims_errno = errs[i];
        real_open = fl__sys.open;
        fl__sys.open = open_failing_claims;
        t0 = fl_mono();
        rc = fl_acquire_ex(l, 5, 1, 0.05);
        fl__sys_reset();
        ck_assert_msg(rc == codes[i], "%s: got %s (%s)", strerror(errs[i]), fl_err_name(rc),
                      fl_last_error());
        ck_assert_msg(fl_mono() - t0 < 2, "%s: the error took a wait", strerror(errs[i]));
        ck_assert_msg(strstr(fl_last_error(), p) != NULL, "message names no path: %s",
                      fl_last_error());
        fl_lock_free(l);
        ck_assert_int_eq(unlink(p), 0);
    }
}
END_TEST

/* A write of our record that fails after a taker replaced our (still
 * record-less, so after 2 s fair game) marker: the cleanup must not unlink
 * the name, which now holds the taker's marker. The write hook plays the
 * taker (a rename over the name) and then fails. */
static const char *replaced_path, *replacement;
static ssize_t write_after_takeover(int fd, const void *buf, size_t n) {
    (void)buf;
    (void)n;
    (void)fd;
    if (rename(replacement, replaced_path) != 0)
        return -1;
    errno = ENOSPC;
    return -1;
}

START_TEST(failed_record_write_leaves_takers_marker) {
    const char *p = P("x.lock"), *q = P("taker");
    char rec[512];
    fl_lock *l = fl_new_kind(p, FL_SOFT);
    int rc;
    snprintf(rec, sizeof rec, "%ld\nsome-other-host.invalid\n", (long)getppid());
    fl_write_file(q, rec);
    replaced_path = p;
    replacement = q;
    fl__sys.write = write_after_takeover;
    rc = fl_acquire_ex(l, 0, 1, 0.05);
    fl__sys_reset();
    ck_assert_msg(rc == FL_ENOSPC, "got %s (%s)", fl_err_name(rc), fl_last_error());
    ck_assert_msg(fl_exists(p), "the taker's marker was unlinked by a failed create's cleanup");
    fl_lock_free(l);
}
END_TEST

/* Item 6: lock file names up to NAME_MAX: a stale marker is reclaimed (the
 * helper names are fixed-length). */
START_TEST(item6_long_names_reclaimed) {
    char name[256], path[4096];
    size_t n = 230 + (size_t)_i * 5; /* 230 .. 255 */
    fl_lock *l;
    if (n > 255)
        n = 255;
    memset(name, 'n', n);
    name[n] = '\0';
    snprintf(path, sizeof path, "%s/%s", fl_tdir, name);
    plant_dead(path);
    l = fl_new_kind(path, FL_SOFT);
    ck_assert_msg(fl_acquire_ex(l, 5, 1, 0.05) == 0, "%zu-byte name: %s", n, fl_last_error());
    ck_assert_int_eq(fl_release(l, 0), 0);
    ck_assert(!fl_exists(path));
    fl_lock_free(l);
}
END_TEST

/* Item 6: a read/write lock on a 251-255-byte name: its gate would be
 * "<name>.gate", past NAME_MAX; it is ".<hash>.gate" then. */
START_TEST(item6_read_write_long_names) {
    char name[256], path[4096];
    size_t n = 250 + (size_t)_i; /* 250 .. 255 */
    fl_options o = FL_OPTIONS_INIT;
    fl_lock *l;
    memset(name, 'r', n);
    name[n] = '\0';
    snprintf(path, sizeof path, "%s/%s", fl_tdir, name);
    o.read_write = 1;
    ck_assert_int_eq(fl_lock_new(&l, path, &o), 0);
    ck_assert_msg(fl_acquire_ex(l, 2, 1, 0.05) == 0, "%zu-byte name, write: %s", n,
                  fl_last_error());
    ck_assert_int_eq(fl_release(l, 0), 0);
    ck_assert_msg(fl_acquire_shared(l, 2, 1, 0.05) == 0, "%zu-byte name, read: %s", n,
                  fl_last_error());
    ck_assert_int_eq(fl_release(l, 0), 0);
    fl_lock_free(l);
}
END_TEST

/* Item 7: an explicit mode is applied exactly to the marker, whether
 * created directly or by a take-over; the umask does not apply to it. */
START_TEST(item7_explicit_mode_exact) {
    const char *p = P("x.lock");
    fl_options o = FL_OPTIONS_INIT;
    fl_lock *l;
    int round;
    o.kind = FL_SOFT;
    o.mode = 0644;
    umask(077);
    ck_assert_int_eq(fl_lock_new(&l, p, &o), 0);
    for (round = 0; round < 2; round++) {
        if (round == 1)
            plant_dead(p);
        ck_assert_int_eq(fl_acquire_ex(l, 5, 1, 0.05), 0);
        ck_assert_msg(fl_file_mode(p) == 0644, "round %d: marker mode %o", round, fl_file_mode(p));
        ck_assert_int_eq(fl_release(l, 0), 0);
    }
    fl_lock_free(l);
    /* The default mode still follows the umask. */
    l = fl_new_kind(p, FL_SOFT);
    ck_assert_int_eq(fl_acquire(l), 0);
    ck_assert_int_eq(fl_file_mode(p), 0600);
    fl_lock_free(l);
}
END_TEST

/* Item 8: relative path, chdir between acquire and release: release removes
 * the marker it created. */
START_TEST(item8_relative_path_chdir) {
    char old[4096];
    fl_lock *l;
    ck_assert(getcwd(old, sizeof old) != NULL);
    ck_assert_int_eq(chdir(fl_tdir), 0);
    l = fl_new_kind("rel.lock", FL_SOFT);
    ck_assert_int_eq(fl_acquire(l), 0);
    ck_assert_int_eq(chdir("/"), 0);
    ck_assert_int_eq(fl_release(l, 0), 0);
    ck_assert_msg(!fl_exists(P("rel.lock")), "release left the marker behind");
    ck_assert_int_eq(chdir(fl_tdir), 0);
    ck_assert_int_eq(fl_acquire_ex(l, 0, 1, 0.05), 0);
    ck_assert_int_eq(fl_release(l, 0), 0);
    fl_lock_free(l);
    ck_assert_int_eq(chdir(old), 0);
}
END_TEST

/* Item 9: a soft wait with exactly one free descriptor falls back to timed
 * re-checks instead of failing with EMFILE. */
static int one_free_fd_waiter(void *arg) {
    const char *p = arg;
    struct rlimit rl;
    fl_lock *l = fl_new_kind(p, FL_SOFT);
    int lowest = 0, rc;
    while (fcntl(lowest, F_GETFD) != -1)
        lowest++;
    rl.rlim_cur = (rlim_t)lowest + 1; /* only `lowest` is free */
    rl.rlim_max = RLIM_INFINITY;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return 10;
    rl.rlim_cur = (rlim_t)lowest + 1;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
        return 11;
    rc = fl_acquire_ex(l, 10, 1, 0.05);
    if (rc != 0) {
        fprintf(stderr, "one free descriptor: %s (%s)\n", fl_err_name(rc), fl_last_error());
        return 12;
    }
    return 0;
}

START_TEST(item9_one_free_descriptor) {
    const char *p = P("x.lock");
    fl_lock *l;
    pid_t pid;
    int st;
    if (!fl_test_forking)
        return; /* the waiter's descriptor limit would bind the whole runner */
    l = fl_new_kind(p, FL_SOFT);
    ck_assert_int_eq(fl_acquire(l), 0);
    pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0)
        _exit(one_free_fd_waiter((void *)p));
    fl_sleep(0.4); /* the waiter is waiting by now */
    ck_assert_int_eq(fl_release(l, 0), 0);
    st = fl_wait_child(pid, 15);
    ck_assert_msg(st == 0, "waiter exited %d", st);
    fl_lock_free(l);
}
END_TEST

/* ---- pid namespaces (item 1) ------------------------------------------------ */

static int have_unshare(void) {
    static int state; /* 0 unknown, 1 yes, -1 no */
    if (state == 0)
        state = fl_running_as_root() &&
                        system("unshare --pid --fork --mount-proc true >/dev/null 2>&1") == 0
                    ? 1
                    : -1;
    return state == 1;
}

/* Starts the helper, in a new pid namespace when ns != 0, its stdout on
 * *out. */
static pid_t spawn_helper(int ns, const char *const args[], int *out) {
    int fds[2];
    pid_t pid;
    ck_assert_int_eq(pipe(fds), 0);
    pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0) {
        const char *argv[16];
        int n = 0, i;
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        if (ns) {
            argv[n++] = "unshare";
            argv[n++] = "--pid";
            argv[n++] = "--fork";
            argv[n++] = "--mount-proc";
            argv[n++] = "--kill-child";
        }
        argv[n++] = FL_TEST_HELPER;
        for (i = 0; args[i]; i++)
            argv[n++] = args[i];
        argv[n] = NULL;
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(fds[1]);
    *out = fds[0];
    return pid;
}

static int run_helper(int ns, const char *const args[]) {
    int out;
    pid_t pid = spawn_helper(ns, args, &out);
    int st = fl_wait_child(pid, 20);
    close(out);
    return st;
}

/* A live holder in another pid namespace (it is pid 1 there; on the host
 * pid 1 is init, alive with another start token) is never broken: not from
 * the initial namespace, not from a third one. */
START_TEST(pidns_live_holder_in_child_kept) {
    FL_NEEDS_LINUX("pid namespaces");
    const char *p = P("x.lock");
    const char *hold[] = {"hold", p, "soft", "60000", NULL};
    const char *try_[] = {"try", p, "soft", NULL};
    char line[64], buf[512];
    fl_lock *l;
    int out, st;
    pid_t holder;
    if (!have_unshare()) {
        fprintf(stderr, "note: pid namespace tests need root and unshare(1): skipped\n");
        return;
    }
    holder = spawn_helper(1, hold, &out);
    ck_assert_msg(fl_read_line(out, line, sizeof line, 10) == 0 && strcmp(line, "held") == 0,
                  "holder in a new namespace did not start");
    ck_assert(fl_read_file(p, buf, sizeof buf) > 0);
    ck_assert_msg(strncmp(buf, "1\n", 2) == 0 && strstr(buf, " pidns=") != NULL,
                  "the record names no pid namespace: '%s'", buf);
    l = fl_new_kind(p, FL_SOFT);
    ck_assert_int_eq(fl_acquire_ex(l, 1.2, 1, 0.05), FL_ETIMEOUT);
    fl_lock_free(l);
    ck_assert_int_eq(run_helper(1, try_), 3); /* from another child namespace */
    ck_assert_int_eq(run_helper(0, try_), 3); /* a helper in ours */
    ck_assert(fl_read_file(p, line, sizeof line) > 0);
    ck_assert_msg(strncmp(line, "1\n", 2) == 0, "the holder's marker was replaced");
    kill(holder, SIGTERM);
    st = fl_wait_child(holder, 10);
    (void)st;
    close(out);
}
END_TEST

/* A live holder in the initial namespace, seen from a child namespace,
 * where its pid names nothing (or another process): kept. */
START_TEST(pidns_live_host_holder_kept_from_child) {
    FL_NEEDS_LINUX("pid namespaces");
    const char *p = P("x.lock");
    const char *try_[] = {"try", p, "soft", NULL};
    fl_lock *l = fl_new_kind(p, FL_SOFT);
    if (!have_unshare()) {
        fprintf(stderr, "note: pid namespace tests need root and unshare(1): skipped\n");
        fl_lock_free(l);
        return;
    }
    ck_assert_int_eq(fl_acquire(l), 0);
    ck_assert_int_eq(run_helper(1, try_), 3);
    ck_assert_int_eq(fl_release(l, 0), 0);
    fl_lock_free(l);
}
END_TEST

/* A dead holder inside a namespace is reclaimed by a waiter in the same
 * namespace; a dead holder of ours by us. */
START_TEST(pidns_dead_holder_same_namespace_reclaimed) {
    FL_NEEDS_LINUX("pid namespaces");
    const char *p = P("x.lock");
    char script[8192];
    if (!have_unshare()) {
        fprintf(stderr, "note: pid namespace tests need root and unshare(1): skipped\n");
        return;
    }
    snprintf(script, sizeof script,
             "unshare --pid --fork --mount-proc sh -c '"
             "%s hold %s soft 60000 >/dev/null & h=$!; "
             "while [ ! -s %s ]; do sleep 0.01; done; kill -9 $h; wait $h 2>/dev/null; "
             "grep -q pidns= %s || exit 7; %s try %s soft'",
             FL_TEST_HELPER, p, p, p, FL_TEST_HELPER, p);
    ck_assert_int_eq(WEXITSTATUS(system(script)), 0);
    ck_assert(!fl_exists(p));
    plant_dead(p);
    {
        fl_lock *l = fl_new_kind(p, FL_SOFT);
        ck_assert_int_eq(fl_acquire_ex(l, 5, 1, 0.05), 0);
        fl_lock_free(l);
    }
}
END_TEST

/* A process that cannot read its pid namespace (/proc hidden by a tmpfs,
 * as in a sandbox or chroot without /proc) in a new pid namespace: before
 * the fix it judged our pid in its namespace (ESRCH: "gone") and took our
 * live lock over, and its own record looked like one of the initial
 * namespace. Now it judges nobody, and its record carries " pidns=1" (no
 * namespace has inode 1), which nobody else judges either. */
START_TEST(pidns_unreadable_judges_nobody) {
    FL_NEEDS_LINUX("pid namespaces");
    const char *p = P("x.lock"), *copy = P("sandbox-record");
    char script[8192], rec[512], h[256];
    fl_lock *l = fl_new_kind(p, FL_SOFT);
#if defined(__SANITIZE_ADDRESS__)
    /* The helper runs without /proc, where the sanitizer's runtime cannot
     * work (LeakSanitizer fails the process whatever its options). */
    fprintf(stderr, "note: the /proc-less pid namespace test cannot run under ASan: skipped\n");
    fl_lock_free(l);
    return;
#endif
    if (!have_unshare()) {
        fprintf(stderr, "note: pid namespace tests need root and unshare(1): skipped\n");
        fl_lock_free(l);
        return;
    }
    ck_assert_int_eq(fl_acquire(l), 0);
    snprintf(script, sizeof script,
             "unshare --pid --fork --mount --propagation private sh -c '"
             "mount -t tmpfs none /proc || exit 9; %s try %s soft'",
             FL_TEST_HELPER, p);
    ck_assert_int_eq(WEXITSTATUS(system(script)), 3);
    ck_assert_int_eq(fl_release(l, 0), 0);
    /* Its own holder, from a second process of the same sandbox: busy. */
    snprintf(script, sizeof script,
             "unshare --pid --fork --mount --propagation private sh -c '"
             "mount -t tmpfs none /proc || exit 9; %s hold %s soft 60000 >/dev/null & h=$!; "
             "while [ ! -s %s ]; do sleep 0.01; done; cp %s %s; %s try %s soft; r=$?; "
             "kill $h; wait $h; exit $r'",
             FL_TEST_HELPER, p, p, p, copy, FL_TEST_HELPER, p);
    ck_assert_int_eq(WEXITSTATUS(system(script)), 3);
    ck_assert(fl_read_file(copy, rec, sizeof rec) > 0);
    ck_assert_msg(strstr(rec, " pidns=1\n") != NULL, "sandbox record: '%s'", rec);
    /* Such a record, of a pid dead here: not ours to judge. */
    ck_assert_int_eq(gethostname(h, sizeof h), 0);
    h[sizeof h - 1] = '\0';
    snprintf(rec, sizeof rec, "999999\n%s pidns=1\n", h);
    fl_write_file(p, rec);
    ck_assert_int_eq(fl_acquire_ex(l, 0.8, 1, 0.05), FL_ETIMEOUT);
    fl_lock_free(l);
    ck_assert_int_eq(unlink(p), 0);
}
END_TEST

/* /proc mounted with hidepid=2 (invisible): to another user our
 * /proc/<pid> does not exist although we live. Such a waiter (nobody, in
 * a directory it may write, no sticky bit) must not take our live marker
 * over. Before the fix it did: the missing /proc entry read as "exited". */
START_TEST(hidepid_waiter_keeps_live_holder) {
    const char *p = P("x.lock");
    char script[8192];
    fl_lock *l;
    if (!have_unshare()) {
        fprintf(stderr, "note: the hidepid test needs root and unshare(1): skipped\n");
        return;
    }
    ck_assert_int_eq(chmod(fl_tdir, 0777), 0);
    l = fl_new_kind(p, FL_SOFT);
    ck_assert_int_eq(fl_acquire(l), 0);
    snprintf(script, sizeof script,
             "unshare --mount --propagation private sh -c '"
             "mount -t proc -o hidepid=2 proc /proc || exit 9; "
             "[ -e /proc/%ld ] || exit 8; "
             "exec setpriv --reuid=65534 --regid=65534 --clear-groups sh -c "
             "\"[ -e /proc/%ld ] && exit 8; exec %s try %s soft\"'",
             (long)getpid(), (long)getpid(), FL_TEST_HELPER, p);
    ck_assert_int_eq(WEXITSTATUS(system(script)), 3);
    ck_assert_int_eq(fl_release(l, 0), 0);
    fl_lock_free(l);
}
END_TEST

/* ---- faster recovery: a soft holder's death wakes its waiter (pidfd) ----- */

/* Only the Linux half watches a holder through a pidfd (platform.h): the
 * generic build's waiters re-check on a timer, so "must have watched the
 * holder" is asserted there alone; the outcome is asserted everywhere.
 * Under valgrind (FL_TEST_VALGRIND) the pidfd may be refused (ENOSYS, and
 * then never tried again in that process), so only the outcome counts. */
#ifdef FL__LINUX
#define HAS_PIDFD (getenv("FL_TEST_VALGRIND") == NULL)
#else
#define HAS_PIDFD 0
#endif

static int g_pidfd_calls;
static int (*real_pidfd_open)(pid_t, unsigned int);
static int counting_pidfd_open(pid_t pid, unsigned int flags) {
    __atomic_add_fetch(&g_pidfd_calls, 1, __ATOMIC_RELAXED);
    return real_pidfd_open(pid, flags);
}
static int no_pidfd_open(pid_t pid, unsigned int flags) {
    (void)pid, (void)flags;
    errno = ENOSYS;
    return -1;
}

/* A process holding the soft lock path until it is killed. */
static pid_t start_soft_holder(const char *path) {
    int fds[2];
    char c = 0;
    pid_t pid;
    ck_assert_int_eq(pipe(fds), 0);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        fl_lock *l;
        close(fds[0]);
        l = fl_new_kind(path, FL_SOFT);
        if (fl_acquire_ex(l, 10, 1, 0.05) != 0)
            _exit(2);
        (void)!write(fds[1], "h", 1);
        for (;;)
            pause();
    }
    close(fds[1]);
    ck_assert_int_eq(read(fds[0], &c, 1), 1); /* 0: the holder failed */
    close(fds[0]);
    return pid;
}

typedef struct recovery_case {
    const char *path;
    int pidfd;      /* 0: pidfd_open answers ENOSYS (the timed re-check only) */
    int need_pidfd; /* the waiter must have opened a pidfd to win */
    double timeout; /* of the waiter's acquire */
    int ready[2];   /* the waiter says "contending" here */
} recovery_case;

/* The waiter, in a child: contends once (the holder lives), says so, then
 * waits. 0: won and the marker is its own; 3: timed out. */
static pid_t start_soft_waiter(recovery_case *c) {
    char ch = 0;
    pid_t pid;
    ck_assert_int_eq(pipe(c->ready), 0);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        fl_lock *l;
        fl_owner o;
        int rc;
        close(c->ready[0]);
#ifndef FL__LINUX
        /* The generic POSIX build watches no pidfd: the timed re-checks
         * alone judge the holder, and a zombie must be kept there too. */
        c->need_pidfd = 0;
#endif
        real_pidfd_open = fl__sys.pidfd_open;
        fl__sys.pidfd_open = c->pidfd ? counting_pidfd_open : no_pidfd_open;
        l = fl_new_kind(c->path, FL_SOFT);
        if (fl_acquire_ex(l, 0, 1, 0.05) != FL_ETIMEOUT)
            _exit(20);
        (void)!write(c->ready[1], "w", 1);
        rc = fl_acquire_ex(l, c->timeout, 1, 0.05);
        if (rc == FL_ETIMEOUT) /* need_pidfd: the holder was watched (or tried) */
            _exit(c->need_pidfd && __atomic_load_n(&g_pidfd_calls, __ATOMIC_RELAXED) == 0 ? 23 : 3);
        if (rc != 0) {
            fprintf(stderr, "waiter: %s\n", fl_last_error());
            _exit(21);
        }
        if (fl_get_owner(l, &o) != 0 || !o.this_process)
            _exit(22);
        if (c->need_pidfd && __atomic_load_n(&g_pidfd_calls, __ATOMIC_RELAXED) == 0)
            _exit(23); /* won without ever watching the holder */
        _exit(fl_release(l, 0) == 0 ? 0 : 24);
    }
    close(c->ready[1]);
    ck_assert_int_eq(read(c->ready[0], &ch, 1), 1);
    close(c->ready[0]);
    return pid;
}

/* A holder killed by SIGKILL (and reaped, as a shell does) is reclaimed by
 * a process waiting for the lock: with the pidfd wake-up, and without it
 * (pidfd_open unavailable: the timed re-check alone). */
START_TEST(killed_holder_reclaimed_by_waiter) {
    recovery_case c;
    pid_t holder, waiter;
    int st;
    c.path = P(_i ? "k1.lock" : "k0.lock");
    c.pidfd = _i;
    c.need_pidfd = 0; /* the reap may come before the waiter's first wait */
    c.timeout = 30;
    holder = start_soft_holder(c.path);
    waiter = start_soft_waiter(&c);
    ck_assert_int_eq(kill(holder, SIGKILL), 0);
    ck_assert_int_eq(waitpid(holder, &st, 0), holder);
    ck_assert_int_eq(fl_wait_child(waiter, 40), 0);
    ck_assert(!fl_exists(c.path)); /* released by the waiter */
}
END_TEST

/* A holder killed but not yet reaped is a zombie. Its pidfd wakes the
 * waiter at once, but the zombie still counts as alive: a program holding
 * the lock for a child it runs (fl_set_owner_pid, the filelock command)
 * keeps that child unreaped precisely so that its marker stays valid while
 * it releases. The waiter wins only once the zombie is reaped (then
 * through the short re-checks after the pidfd reported the exit, well
 * within its timeout); without pidfd_open it wins too, by the timed
 * re-check. */
START_TEST(zombie_holder_kept_until_reaped) {
    recovery_case c;
    pid_t holder, waiter;
    int st, i;
    for (i = 0; i < 2; i++) {
        c.path = P(i ? "z1.lock" : "z0.lock");
        c.pidfd = i == 0;
        c.need_pidfd = c.pidfd && HAS_PIDFD;
        c.timeout = 1.5;
        holder = start_soft_holder(c.path);
        waiter = start_soft_waiter(&c);
        ck_assert_int_eq(kill(holder, SIGKILL), 0);
        ck_assert_int_eq(fl_wait_child(waiter, 40), 3); /* the zombie's marker kept */
        ck_assert(fl_exists(c.path));
        c.timeout = 10;
        c.need_pidfd = 0; /* the reap may come before its first wait */
        waiter = start_soft_waiter(&c);
        ck_assert_int_eq(waitpid(holder, &st, 0), holder); /* reaped only now */
        ck_assert_int_eq(fl_wait_child(waiter, 40), 0);
    }
}
END_TEST

/* The filelock command's shape: the marker names a child (the command),
 * which has exited but is not reaped, while the holder itself lives and has
 * not released yet. A waiter woken by the child's pidfd once took the
 * marker over; the holder's release (lstat: still ours ... unlink) could
 * then remove the taker's marker and let a third process in beside the
 * taker: two holders (seen as lost counter increments in the GlusterFS
 * lane's counter.cli.soft, CLI on two hosts). The waiter must wait until
 * the holder releases. */
START_TEST(owner_pid_exited_child_kept_until_release) {
    const char *p = P("cli.lock");
    fl_lock *a = fl_new_kind(p, FL_SOFT);
    recovery_case c;
    fl_owner o;
    siginfo_t si;
    int st;
    pid_t child, waiter;
    child = fork();
    ck_assert_int_ge(child, 0);
    if (child == 0) {
        pause(); /* the "command": runs until told to end */
        _exit(0);
    }
    ck_assert_int_eq(fl_set_owner_pid(a, (long)child), 0);
    ck_assert_int_eq(fl_acquire_ex(a, 0, 1, 0.05), 0);
    c.path = p;
    c.pidfd = 1;
    c.need_pidfd = HAS_PIDFD;
    c.timeout = 1.5;
    waiter = start_soft_waiter(&c);            /* contending: the child lives */
    ck_assert_int_eq(kill(child, SIGKILL), 0); /* the command ends ... */
    memset(&si, 0, sizeof si);
    ck_assert_int_eq(waitid(P_PID, (id_t)child, &si, WEXITED | WNOWAIT), 0); /* ... a zombie */
    ck_assert_int_eq(fl_wait_child(waiter, 40), 3);
    ck_assert_int_eq(fl_get_owner(a, &o), 0);
    ck_assert_int_eq(o.pid, (long)child); /* still our marker */
    ck_assert_int_eq(fl_release(a, 1), 0);
    ck_assert(!fl_exists(p));
    ck_assert_int_eq(waitpid(child, &st, 0), child);
    fl_lock_free(a);
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
    tc = fl_tcase("issue13");
    tcase_add_test(tc, item5_unremovable_stale_marker_is_an_error);
    tcase_add_test(tc, item5_permanent_takeover_errors);
    tcase_add_test(tc, failed_record_write_leaves_takers_marker);
    tcase_add_loop_test(tc, item6_long_names_reclaimed, 0, 6);
    tcase_add_loop_test(tc, item6_read_write_long_names, 0, 6);
    tcase_add_test(tc, item7_explicit_mode_exact);
    tcase_add_test(tc, item8_relative_path_chdir);
    tcase_add_test(tc, item9_one_free_descriptor);
    tcase_add_test(tc, pidns_live_holder_in_child_kept);
    tcase_add_test(tc, pidns_live_host_holder_kept_from_child);
    tcase_add_test(tc, pidns_dead_holder_same_namespace_reclaimed);
    tcase_add_test(tc, pidns_unreadable_judges_nobody);
    tcase_add_test(tc, hidepid_waiter_keeps_live_holder);
    tcase_add_loop_test(tc, killed_holder_reclaimed_by_waiter, 0, 2);
    tcase_add_test(tc, zombie_holder_kept_until_reaped);
    tcase_add_test(tc, owner_pid_exited_child_kept_until_release);
    suite_add_tcase(s, tc);
    return s;
}
