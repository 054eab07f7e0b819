/*
 * Cross-language torture worker, C edition. Every language has a worker
 * with the same command line and log format (see tests/cross/README.md):
 *
 *   worker hold <lockfile> <counter> <log> <count> <min_hold_us> <max_hold_us> <kind> <timeout>
 *   worker cycles <lockfile> <n> <kind>
 *
 * hold: <count> times (0: until killed) acquire the lock, read the counter
 * (a fixed-width decimal at offset 0), log "S <t0> <value>", pause inside
 * the lock, write value+1, log "E <t1>", release. t0/t1 are CLOCK_MONOTONIC
 * in nanoseconds, the clock every worker uses, so that the driver can
 * compare the hold intervals of different processes and languages. Each log
 * line is one write() on an O_APPEND descriptor, so it survives SIGKILL.
 *
 * cycles: <n> acquire/release cycles (with a new handle and a soft lock
 * every 10th cycle) and prints the descriptor count and VmRSS after a
 * warm-up tenth and at the end: "RES <fd_warm> <fd_end> <rss_warm_kb> <rss_end_kb>".
 */
#define _POSIX_C_SOURCE 200809L

#include <filelock.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define COUNTER_WIDTH 21 /* "%020ld\n" */

static long long mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void pause_us(long us) {
    struct timespec ts;
    if (us <= 0)
        return;
    ts.tv_sec = us / 1000000;
    ts.tv_nsec = (us % 1000000) * 1000;
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static void die(const char *what) {
    fprintf(stderr, "worker.c: %s: %s\n", what, fl_last_error()[0] ? fl_last_error() : strerror(errno));
    exit(1);
}

static void log_line(int fd, const char *line) {
    size_t n = strlen(line);
    if (write(fd, line, n) != (ssize_t)n)
        die("log write");
}

static long rand_between(long lo, long hi) {
    return hi > lo ? lo + rand() % (hi - lo + 1) : lo;
}

static int hold_mode(int argc, char **argv) {
    const char *lockfile, *counter, *logpath;
    long count, min_us, max_us, i;
    double timeout;
    fl_options opts = FL_OPTIONS_INIT;
    fl_lock *lock;
    int logfd;
    if (argc != 10)
        return 2;
    lockfile = argv[2];
    counter = argv[3];
    logpath = argv[4];
    count = atol(argv[5]);
    min_us = atol(argv[6]);
    max_us = atol(argv[7]);
    opts.kind = strcmp(argv[8], "soft") == 0 ? FL_SOFT : FL_KERNEL;
    timeout = atof(argv[9]);
    opts.timeout = timeout;
    if (fl_lock_new(&lock, lockfile, &opts) != 0)
        die("fl_lock_new");
    logfd = open(logpath, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (logfd < 0)
        die(logpath);
    srand((unsigned)(getpid() ^ mono_ns()));
    for (i = 0; count == 0 || i < count; i++) {
        char buf[COUNTER_WIDTH + 1], line[96];
        long value;
        int fd;
        ssize_t n;
        if (fl_acquire(lock) != 0)
            die("fl_acquire");
        long long t0 = mono_ns();
        fd = open(counter, O_RDWR | O_CLOEXEC);
        if (fd < 0)
            die(counter);
        n = pread(fd, buf, COUNTER_WIDTH, 0);
        if (n != COUNTER_WIDTH)
            die("counter read");
        buf[n] = '\0';
        value = atol(buf);
        snprintf(line, sizeof line, "S %lld %ld\n", t0, value);
        log_line(logfd, line);
        pause_us(rand_between(min_us, max_us));
        snprintf(buf, sizeof buf, "%020ld\n", value + 1);
        if (pwrite(fd, buf, COUNTER_WIDTH, 0) != COUNTER_WIDTH)
            die("counter write");
        close(fd);
        snprintf(line, sizeof line, "E %lld\n", mono_ns());
        log_line(logfd, line);
        if (fl_release(lock, 0) != 0)
            die("fl_release");
        pause_us(rand_between(0, 500));
    }
    fl_lock_free(lock);
    close(logfd);
    return 0;
}

static int count_fds(void) {
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    int n = 0;
    if (!d)
        return -1;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1; /* the directory stream's own descriptor */
}

static long rss_kb(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0)
            kb = atol(line + 6);
    fclose(f);
    return kb;
}

static int cycles_mode(int argc, char **argv) {
    fl_options opts = FL_OPTIONS_INIT, soft = FL_OPTIONS_INIT;
    fl_lock *lock, *slock, *tmp;
    char softpath[4096];
    long n, i, warm;
    int fd_warm = 0;
    long rss_warm = 0;
    if (argc != 5)
        return 2;
    n = atol(argv[3]);
    warm = n / 10;
    opts.kind = strcmp(argv[4], "soft") == 0 ? FL_SOFT : FL_KERNEL;
    opts.timeout = 10.0;
    soft.kind = FL_SOFT;
    soft.timeout = 10.0;
    snprintf(softpath, sizeof softpath, "%s.soft", argv[2]);
    if (fl_lock_new(&lock, argv[2], &opts) != 0 || fl_lock_new(&slock, softpath, &soft) != 0)
        die("fl_lock_new");
    for (i = 0; i < n; i++) {
        if (i == warm) {
            fd_warm = count_fds();
            rss_warm = rss_kb();
        }
        if (fl_acquire(lock) != 0 || fl_release(lock, 0) != 0)
            die("cycle");
        if (i % 10 == 0) {
            if (fl_lock_new(&tmp, argv[2], &opts) != 0 || fl_acquire(tmp) != 0 ||
                fl_release(tmp, 0) != 0)
                die("new handle cycle");
            fl_lock_free(tmp);
            if (fl_acquire(slock) != 0 || fl_release(slock, 0) != 0)
                die("soft cycle");
        }
    }
    printf("RES %d %d %ld %ld\n", fd_warm, count_fds(), rss_warm, rss_kb());
    fl_lock_free(lock);
    fl_lock_free(slock);
    return 0;
}

int main(int argc, char **argv) {
    int rc = 2;
    if (argc >= 2 && strcmp(argv[1], "hold") == 0)
        rc = hold_mode(argc, argv);
    else if (argc >= 2 && strcmp(argv[1], "cycles") == 0)
        rc = cycles_mode(argc, argv);
    if (rc == 2)
        fprintf(stderr, "usage: worker hold <lockfile> <counter> <log> <count> <min_us> <max_us> "
                        "<kernel|soft> <timeout>\n       worker cycles <lockfile> <n> <kind>\n");
    return rc;
}
