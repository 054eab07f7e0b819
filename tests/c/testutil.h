/*
 * Shared helpers for the Check suites of libfilelock: a private temporary
 * directory per test, helper processes (fork+exec of fl_test_helper),
 * syscall fault injection through the internal fl__sys seam, a log-event
 * recorder, and bounded waits so that a broken lock fails a test instead of
 * hanging it.
 */
#ifndef FL_TESTUTIL_H
#define FL_TESTUTIL_H

#include <check.h>

#include "filelock.h"
#include "internal.h"
#include "platform.h"

#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>

/* Sanitizer builds (FL_SANITIZE=thread|address): FL_TSAN, FL_ASAN, and
 * FL_SANITIZED for either. Both runtimes (GCC 12's) are unsafe to start
 * threads in, or allocate from, in a child forked while another thread
 * runs: TSan refuses, and ASan's allocator takes no lock across fork, so a
 * child forked while a thread is inside malloc hangs in libasan
 * (__asan::Allocator::Allocate -> Mutex::Lock). glibc's malloc is fork-safe;
 * the normal lane runs what these builds must leave out. */
#if defined(__SANITIZE_THREAD__)
#define FL_SANITIZED 1
#define FL_TSAN      1
#elif defined(__SANITIZE_ADDRESS__)
#define FL_SANITIZED 1
#define FL_ASAN      1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define FL_SANITIZED 1
#define FL_TSAN      1
#elif __has_feature(address_sanitizer)
#define FL_SANITIZED 1
#define FL_ASAN      1
#endif
#endif

/* A test that needs the Linux half of the backend (inotify, eventfd, pidfd,
 * /proc: linux.c) returns at once in the generic POSIX build
 * (-DFL_GENERIC_POSIX=ON, what macOS and the BSDs use), saying why on
 * stderr. `why` names the Linux feature the test proves. */
#ifdef FL__LINUX
#define FL_NEEDS_LINUX(why) ((void)0)
#else
#define FL_NEEDS_LINUX(why)                                                                        \
    do {                                                                                           \
        fprintf(stderr, "skipped %s: needs %s (generic POSIX build)\n", __func__, why);            \
        return;                                                                                    \
    } while (0)
#endif

/* Every suite, one per area (CK_RUN_SUITE=<name> runs one of them). */
Suite *suite_kernel(void);
Suite *suite_soft(void);
Suite *suite_acquire(void);
Suite *suite_process(void);
Suite *suite_threads(void);
Suite *suite_deadlock(void);
Suite *suite_singleton(void);
Suite *suite_fork(void);
Suite *suite_interrupt(void);
Suite *suite_faults(void);
Suite *suite_logging(void);
Suite *suite_errors(void);
Suite *suite_leak(void);
Suite *suite_owner(void);
Suite *suite_rwlock(void);
Suite *suite_forksafe(void);
Suite *suite_waits(void);
Suite *suite_interleave(void);
Suite *suite_interleave_lease(void);
Suite *suite_fsprobe(void);
Suite *suite_hostile(void);
Suite *suite_descriptor(void);
Suite *suite_lease(void);
Suite *suite_hub(void);

/* 1 when Check forks a child per test (the default); 0 under CK_FORK=no. */
extern int fl_test_forking;

/* Generous per-test hard deadline (seconds) for Check's fork-mode timer. */
#define FL_TEST_TIMEOUT 60

/* ---- temporary directory fixture ------------------------------------- */

/* The current test's private directory (absolute). */
extern char fl_tdir[];
/* Checked fixture: creates fl_tdir; teardown removes it and restores the
 * syscall table, the log handler, the umask and SIGUSR1. */
void fl_setup(void);
void fl_teardown(void);
/* A TCase with the fixture and the hard deadline already set. */
TCase *fl_tcase(const char *name);

/* "<fl_tdir>/<rel>" in one of 16 rotating static buffers. Not for use
 * from several threads at once: compute paths before starting threads. */
const char *P(const char *rel);

/* ---- files ------------------------------------------------------------ */
int fl_exists(const char *path); /* lstat succeeds */
int fl_is_reg(const char *path);
int fl_is_dir(const char *path);
int fl_is_symlink(const char *path);
int fl_file_mode(const char *path); /* permission bits, -1 on error */
void fl_write_file(const char *path, const char *text);
/* Reads at most size-1 bytes into buf (NUL-terminated); -1 on error. */
ssize_t fl_read_file(const char *path, char *buf, size_t size);
int fl_open_fd_count(void); /* entries in /proc/self/fd */

/* ---- time and waiting ------------------------------------------------- */
double fl_mono(void);
void fl_sleep(double seconds);
/* Waits until *flag != 0 (atomic load) or the deadline; returns the flag. */
int fl_wait_flag(const int *flag, double timeout);
/* pthread_join with a deadline; fails the test when the thread is stuck. */
void fl_join(pthread_t t, double timeout);

/* ---- processes -------------------------------------------------------- */

/* Starts fl_test_helper with the given arguments (NULL-terminated), its
 * stdout on a pipe (*out_fd) and, when in_fd is not NULL, its stdin on a
 * pipe (*in_fd). */
pid_t fl_helper_start(const char *const args[], int *out_fd, int *in_fd);
/* Reads one line from fd within the timeout; 0 on success, -1 otherwise. */
int fl_read_line(int fd, char *buf, size_t size, double timeout);
/* Waits for pid; returns its exit code, 128+signal, or -1 after killing it
 * at the deadline. */
int fl_wait_child(pid_t pid, double timeout);
/* Ends a forked child with its result. Under valgrind (FL_TEST_VALGRIND) a
 * successful child ends by SIGKILL: it inherits blocks that only the
 * parent's other threads point to (from stacks the child does not have),
 * which memcheck's exit-time leak check would report as lost. */
void fl_child_exit(int code);
/* 1 when a child's status (fl_wait_child) means success, as fl_child_exit
 * ends it. */
int fl_child_ok(int rc);
/* Runs fn(arg) in a forked child and returns its exit status (as above). */
int fl_run_in_child(int (*fn)(void *), void *arg, double timeout);
/* Runs `fl_test_helper try <path> <kind>`: 0 acquired, 3 timed out. */
int fl_helper_try(const char *path, int kind);

int fl_running_as_root(void);
/* In a child: become nobody (65534), for permission tests run as root.
 * Returns 0 on success. */
int fl_drop_privileges(void);

/* ---- handles ------------------------------------------------------------ */

/* fl_lock_new with the given kind (other options default); fails the test
 * on error. */
fl_lock *fl_new_kind(const char *path, int kind);
const char *fl_kind_name(int kind);

/* ---- logging ------------------------------------------------------------ */

#define FL_LOG_MAX 256
typedef struct fl_logrec {
    pthread_mutex_t mu;
    int n;
    fl_log_event ev[FL_LOG_MAX];
    uint64_t id[FL_LOG_MAX];
    char path[FL_LOG_MAX][128];
    double seconds[FL_LOG_MAX];
    int waiting; /* WAITING events seen (atomic) */
} fl_logrec;

/* Installs a handler recording into rec (reset first). */
void fl_log_record(fl_logrec *rec);
/* Counts events of one kind for one id. */
int fl_log_count(fl_logrec *rec, fl_log_event ev, uint64_t id);

/* ---- fault injection ---------------------------------------------------- */

/* Counters of calls made through the seam while fl_count_syscalls() is on. */
typedef struct fl_sys_counts {
    int open, excl_open, close, flock, write, unlink; /* excl_open: O_EXCL creates */
} fl_sys_counts;
extern fl_sys_counts fl_calls;
void fl_count_syscalls(void);

#endif
