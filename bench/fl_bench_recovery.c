/*
 * How long a soft-lock waiter takes to win after the holder is killed:
 * SIGKILL of the holder (which the parent then reaps, as a shell does) to
 * the waiting process's acquire returning. Two variants interleaved in one
 * run: the pidfd wake-up (Linux 5.3+), and pidfd_open answering ENOSYS,
 * which is the timed re-check alone (what every waiter did before it).
 * Linked with the static core to reach the system-call seam. Not a test.
 *
 *   fl_bench_recovery [rounds per variant, default 20]
 */
#define _GNU_SOURCE
#include "filelock.h"
#include "internal.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int no_pidfd_open(pid_t pid, unsigned int flags) {
    (void)pid, (void)flags;
    errno = ENOSYS;
    return -1;
}

static fl_lock *soft_lock(const char *path) {
    fl_options o = FL_OPTIONS_INIT;
    fl_lock *l;
    o.kind = FL_SOFT;
    if (fl_lock_new(&l, path, &o) != 0) {
        fprintf(stderr, "%s\n", fl_last_error());
        exit(1);
    }
    return l;
}

/* One round: seconds from the kill to the waiter's win. */
static double round_once(const char *path, int pidfd, double settle, volatile double *won) {
    int hp[2], wp[2];
    char c;
    pid_t holder, waiter;
    double t0;
    if (pipe(hp) != 0 || pipe(wp) != 0)
        exit(1);
    holder = fork();
    if (holder == 0) {
        fl_lock *l = soft_lock(path);
        if (fl_acquire_ex(l, 10, 1, 0.05) != 0)
            _exit(2);
        (void)!write(hp[1], "h", 1);
        for (;;)
            pause();
    }
    if (read(hp[0], &c, 1) != 1)
        exit(1);
    waiter = fork();
    if (waiter == 0) {
        fl_lock *l = soft_lock(path);
        if (!pidfd)
            fl__sys.pidfd_open = no_pidfd_open;
        if (fl_acquire_ex(l, 0, 1, 0.05) != FL_ETIMEOUT)
            _exit(2);
        (void)!write(wp[1], "w", 1);
        if (fl_acquire_ex(l, 10, 1, 0.05) != 0)
            _exit(3);
        *won = now();
        fl_release(l, 0);
        _exit(0);
    }
    if (read(wp[0], &c, 1) != 1)
        exit(1);
    /* Let the waiter settle into its wait, at a varying phase of its
     * re-check cycle. */
    usleep((useconds_t)(settle * 1e6));
    t0 = now();
    kill(holder, SIGKILL);
    waitpid(holder, NULL, 0);
    if (waitpid(waiter, NULL, 0) != waiter)
        exit(1);
    close(hp[0]), close(hp[1]), close(wp[0]), close(wp[1]);
    return *won - t0;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    int rounds = argc > 1 ? atoi(argv[1]) : 20, i, v;
    char dir[] = "/tmp/fl-recovery-XXXXXX", path[64];
    double *t[2];
    volatile double *won =
        mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (rounds < 1 || !mkdtemp(dir) || won == MAP_FAILED)
        return 1;
    snprintf(path, sizeof path, "%s/x.lock", dir);
    t[0] = calloc((size_t)rounds, sizeof(double));
    t[1] = calloc((size_t)rounds, sizeof(double));
    srand((unsigned)getpid());
    for (i = 0; i < rounds; i++)
        for (v = 0; v < 2; v++)
            t[v][i] = round_once(path, v, 0.05 + 0.5 * rand() / (double)RAND_MAX, won);
    printf("kill -> waiter wins, %d rounds per variant (ms): median / p90 / max\n", rounds);
    for (v = 0; v < 2; v++) {
        qsort(t[v], (size_t)rounds, sizeof(double), cmp);
        printf("  %-34s %8.3f / %8.3f / %8.3f\n",
               v ? "pidfd wake-up" : "timed re-check only (no pidfd)", t[v][rounds / 2] * 1e3,
               t[v][(rounds * 9) / 10 < rounds ? (rounds * 9) / 10 : rounds - 1] * 1e3,
               t[v][rounds - 1] * 1e3);
    }
    rmdir(dir);
    return 0;
}
