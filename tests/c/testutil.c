#define _GNU_SOURCE
#include "testutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int fl_test_forking = 1;
char fl_tdir[PATH_MAX];
fl_sys_counts fl_calls;

static mode_t saved_umask;

/* ---- fixture ------------------------------------------------------------ */

void fl_setup(void) {
    const char *base = getenv("TMPDIR");
    char tmpl[PATH_MAX];
    if (!base || !*base)
        base = "/tmp";
    snprintf(tmpl, sizeof tmpl, "%s/fltest.XXXXXX", base);
    ck_assert_msg(mkdtemp(tmpl) != NULL, "mkdtemp: %s", strerror(errno));
    /* Resolve it so that paths compare equal to canonical spellings. */
    ck_assert(realpath(tmpl, fl_tdir) != NULL);
    saved_umask = umask(022);
    umask(saved_umask);
    fl__sys_reset();
    memset(&fl_calls, 0, sizeof fl_calls);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st;
    (void)ftw;
    if (flag == FTW_DP)
        return rmdir(path) != 0 ? 0 : 0;
    return unlink(path) != 0 ? 0 : 0;
}

static int unprotect(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)ftw;
    if (flag == FTW_D)
        chmod(path, (st->st_mode & 07777) | 0700);
    return 0;
}

void fl_teardown(void) {
    struct sigaction sa;
    fl__sys_reset();
    fl_set_log_handler(NULL, NULL);
    umask(saved_umask);
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL;
    sigaction(SIGUSR1, &sa, NULL);
    if (fl_tdir[0]) {
        nftw(fl_tdir, unprotect, 16, FTW_PHYS);
        nftw(fl_tdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
        fl_tdir[0] = '\0';
    }
}

TCase *fl_tcase(const char *name) {
    TCase *tc = tcase_create(name);
    tcase_add_checked_fixture(tc, fl_setup, fl_teardown);
    tcase_set_timeout(tc, FL_TEST_TIMEOUT);
    return tc;
}

const char *P(const char *rel) {
    static char bufs[16][2 * PATH_MAX];
    static int next;
    char *b = bufs[next++ % 16];
    size_t d = strlen(fl_tdir), r = strlen(rel);
    ck_assert(d + 1 + r < sizeof bufs[0]);
    memcpy(b, fl_tdir, d);
    b[d] = '/';
    memcpy(b + d + 1, rel, r + 1);
    return b;
}

/* ---- files -------------------------------------------------------------- */

int fl_exists(const char *path) {
    struct stat st;
    return lstat(path, &st) == 0;
}

int fl_is_reg(const char *path) {
    struct stat st;
    return lstat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int fl_is_dir(const char *path) {
    struct stat st;
    return lstat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int fl_is_symlink(const char *path) {
    struct stat st;
    return lstat(path, &st) == 0 && S_ISLNK(st.st_mode);
}

int fl_file_mode(const char *path) {
    struct stat st;
    if (lstat(path, &st) != 0)
        return -1;
    return (int)(st.st_mode & 07777);
}

void fl_write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    ck_assert_msg(f != NULL, "cannot write %s: %s", path, strerror(errno));
    fputs(text, f);
    ck_assert_int_eq(fclose(f), 0);
}

ssize_t fl_read_file(const char *path, char *buf, size_t size) {
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    ssize_t n, total = 0;
    if (fd < 0)
        return -1;
    while ((size_t)total + 1 < size && (n = read(fd, buf + total, size - 1 - (size_t)total)) > 0)
        total += n;
    close(fd);
    buf[total] = '\0';
    return total;
}

int fl_open_fd_count(void) {
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    int n = 0;
    ck_assert(d != NULL);
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1; /* the directory stream's own descriptor */
}

/* ---- time ----------------------------------------------------------------- */

double fl_mono(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void fl_sleep(double s) {
    struct timespec ts;
    ts.tv_sec = (time_t)s;
    ts.tv_nsec = (long)((s - (double)ts.tv_sec) * 1e9);
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

int fl_wait_flag(const int *flag, double timeout) {
    double end = fl_mono() + timeout;
    int v;
    while (!(v = __atomic_load_n(flag, __ATOMIC_ACQUIRE)) && fl_mono() < end)
        fl_sleep(0.001);
    return v;
}

void fl_join(pthread_t t, double timeout) {
    struct timespec ts;
    double end;
    int rc;
    clock_gettime(CLOCK_REALTIME, &ts);
    end = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9 + timeout;
    ts.tv_sec = (time_t)end;
    ts.tv_nsec = (long)((end - (double)ts.tv_sec) * 1e9);
    rc = pthread_timedjoin_np(t, NULL, &ts);
    ck_assert_msg(rc == 0, "thread did not finish within %.0f s (rc %d)", timeout, rc);
}

/* ---- processes ------------------------------------------------------------ */

pid_t fl_helper_start(const char *const args[], int *out_fd, int *in_fd) {
    int out[2], in[2] = {-1, -1};
    const char *argv[16];
    pid_t pid;
    int i;
    argv[0] = FL_TEST_HELPER;
    for (i = 0; args[i] && i < 14; i++)
        argv[i + 1] = args[i];
    argv[i + 1] = NULL;
    ck_assert(pipe2(out, O_CLOEXEC) == 0);
    if (in_fd)
        ck_assert(pipe2(in, O_CLOEXEC) == 0);
    pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0) {
        dup2(out[1], 1);
        if (in_fd)
            dup2(in[0], 0);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(out[1]);
    *out_fd = out[0];
    if (in_fd) {
        close(in[0]);
        *in_fd = in[1];
    }
    return pid;
}

int fl_read_line(int fd, char *buf, size_t size, double timeout) {
    double end = fl_mono() + timeout;
    size_t n = 0;
    while (n + 1 < size) {
        struct pollfd p = {fd, POLLIN, 0};
        int left = (int)((end - fl_mono()) * 1000);
        char c;
        if (left <= 0 || poll(&p, 1, left) <= 0)
            return -1;
        if (read(fd, &c, 1) != 1)
            return -1;
        if (c == '\n')
            break;
        buf[n++] = c;
    }
    buf[n] = '\0';
    return 0;
}

void fl_child_exit(int code) {
    if (code == 0 && getenv("FL_TEST_VALGRIND"))
        raise(SIGKILL);
    _exit(code);
}

int fl_child_ok(int rc) { return rc == 0 || (getenv("FL_TEST_VALGRIND") && rc == 128 + SIGKILL); }

int fl_wait_child(pid_t pid, double timeout) {
    double end = fl_mono() + timeout;
    int st;
    for (;;) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        if (r < 0 && errno != EINTR)
            return -1;
        if (fl_mono() > end) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            return -1;
        }
        fl_sleep(0.002);
    }
}

int fl_run_in_child(int (*fn)(void *), void *arg, double timeout) {
    pid_t pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0)
        _exit(fn(arg));
    return fl_wait_child(pid, timeout);
}

int fl_helper_try(const char *path, int kind) {
    const char *args[] = {"try", path, fl_kind_name(kind), NULL};
    int out;
    pid_t pid = fl_helper_start(args, &out, NULL);
    int rc = fl_wait_child(pid, 20);
    close(out);
    return rc;
}

int fl_running_as_root(void) { return geteuid() == 0; }

int fl_drop_privileges(void) {
    if (geteuid() != 0)
        return 0;
    if (setgroups(0, NULL) != 0 || setgid(65534) != 0 || setuid(65534) != 0)
        return -1;
    return geteuid() == 0 ? -1 : 0;
}

/* ---- handles ---------------------------------------------------------------- */

fl_lock *fl_new_kind(const char *path, int kind) {
    fl_options o = FL_OPTIONS_INIT;
    fl_lock *l = NULL;
    o.kind = (fl_kind)kind;
    ck_assert_msg(fl_lock_new(&l, path, &o) == 0, "fl_lock_new(%s): %s", path, fl_last_error());
    ck_assert(l != NULL);
    return l;
}

const char *fl_kind_name(int kind) { return kind == FL_SOFT ? "soft" : "kernel"; }

/* ---- logging ---------------------------------------------------------------- */

static void record(void *data, fl_log_event ev, uint64_t id, const char *path, double seconds) {
    fl_logrec *r = data;
    pthread_mutex_lock(&r->mu);
    if (r->n < FL_LOG_MAX) {
        r->ev[r->n] = ev;
        r->id[r->n] = id;
        snprintf(r->path[r->n], sizeof r->path[r->n], "%s", path);
        r->seconds[r->n] = seconds;
        r->n++;
    }
    pthread_mutex_unlock(&r->mu);
    if (ev == FL_LOG_WAITING)
        __atomic_add_fetch(&r->waiting, 1, __ATOMIC_RELEASE);
}

void fl_log_record(fl_logrec *rec) {
    memset(rec, 0, sizeof *rec);
    pthread_mutex_init(&rec->mu, NULL);
    fl_set_log_handler(record, rec);
}

int fl_log_count(fl_logrec *rec, fl_log_event ev, uint64_t id) {
    int i, n = 0;
    pthread_mutex_lock(&rec->mu);
    for (i = 0; i < rec->n; i++)
        n += rec->ev[i] == ev && rec->id[i] == id;
    pthread_mutex_unlock(&rec->mu);
    return n;
}

/* ---- syscall counting ---------------------------------------------------------- */

static int count_open(const char *p, int f, mode_t m) {
    __atomic_add_fetch(&fl_calls.open, 1, __ATOMIC_RELAXED);
    if (f & O_EXCL)
        __atomic_add_fetch(&fl_calls.excl_open, 1, __ATOMIC_RELAXED);
    return open(p, f, m);
}
static int count_close(int fd) {
    __atomic_add_fetch(&fl_calls.close, 1, __ATOMIC_RELAXED);
    return close(fd);
}
static int count_flock(int fd, int op) {
    __atomic_add_fetch(&fl_calls.flock, 1, __ATOMIC_RELAXED);
    return flock(fd, op);
}
static ssize_t count_write(int fd, const void *b, size_t n) {
    __atomic_add_fetch(&fl_calls.write, 1, __ATOMIC_RELAXED);
    return write(fd, b, n);
}
static int count_unlink(const char *p) {
    __atomic_add_fetch(&fl_calls.unlink, 1, __ATOMIC_RELAXED);
    return unlink(p);
}

void fl_count_syscalls(void) {
    memset(&fl_calls, 0, sizeof fl_calls);
    fl__sys.open = count_open;
    fl__sys.close = count_close;
    fl__sys.flock = count_flock;
    fl__sys.write = count_write;
    fl__sys.unlink = count_unlink;
}
