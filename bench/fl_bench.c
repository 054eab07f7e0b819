/*
 * fl_bench: what libfilelock costs, measured against the bare system calls
 * it is built from, in one run.
 *
 *   1. uncontended  acquire+release per cycle (and handle construction)
 *   2. wakeup       release in one process -> acquire returns in another
 *   3. cpu          CPU a waiter burns per second of waiting
 *   4. contention   N processes x M acquisitions on one lock
 *
 * The machines this runs on are small and noisy, so every figure is a
 * median over repetitions, and the cases of a part are interleaved (case A,
 * B, C, A, B, C, ...) so that a burst of noise hits all of them alike
 * instead of ruining one. Run `fl_bench --help` for the options.
 *
 * Cross-process timestamps use CLOCK_MONOTONIC, which is one clock for the
 * whole machine, so a time taken in the holder and one taken in the waiter
 * can be subtracted.
 */
#define _DEFAULT_SOURCE
#define _XOPEN_SOURCE 700

#include <filelock.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#ifdef __linux__
#include <sys/inotify.h>
#endif
#include <time.h>
#include <unistd.h>

/* ---------------------------------------------------------------------- */
/* Small helpers                                                           */
/* ---------------------------------------------------------------------- */

static char g_dir[4096];   /* scratch directory, removed at exit */
static int g_tsv;          /* also print machine-readable lines */
static int g_made_dir;     /* we created g_dir (and so remove it) */
static pid_t g_parent_pid; /* only the parent cleans up */

static void die(const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "fl_bench: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n");
    exit(2);
}

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void sleep_s(double s) {
    struct timespec ts;
    ts.tv_sec = (time_t)s;
    ts.tv_nsec = (long)((s - (double)ts.tv_sec) * 1e9);
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static double cpu_seconds(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static void path_in_dir(char *out, size_t size, const char *name) {
    int n = snprintf(out, size, "%s/%s", g_dir, name);
    if (n < 0 || (size_t)n >= size)
        die("scratch path too long");
}

static void write_all(int fd, const void *buf, size_t n) {
    const char *p = buf;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            die("pipe write: %s", strerror(errno));
        p += w;
        n -= (size_t)w;
    }
}

static void read_all(int fd, void *buf, size_t n) {
    char *p = buf;
    while (n > 0) {
        ssize_t r = read(fd, p, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            die("pipe read: %s", r == 0 ? "peer exited" : strerror(errno));
        p += r;
        n -= (size_t)r;
    }
}

/* A page shared between the parent and its forked children. */
static void *shared_alloc(size_t size) {
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        die("mmap: %s", strerror(errno));
    memset(p, 0, size);
    return p;
}

static fl_lock *new_lock(const char *path, fl_kind kind, int thread_local, double timeout) {
    fl_lock *l;
    fl_options o = FL_OPTIONS_INIT;
    o.kind = kind;
    o.thread_local = thread_local;
    o.timeout = timeout;
    if (fl_lock_new(&l, path, &o) != 0)
        die("fl_lock_new(%s): %s", path, fl_last_error());
    return l;
}

static void must_acquire(fl_lock *l) {
    if (fl_acquire_ex(l, -1, 1, 0.05) != 0)
        die("acquire %s: %s", fl_lock_path(l), fl_last_error());
}

static void must_release(fl_lock *l) {
    if (fl_release(l, 0) != 0)
        die("release %s: %s", fl_lock_path(l), fl_last_error());
}

static int never_cancel(void *data, int interrupted) {
    (void)data;
    (void)interrupted;
    return 0;
}

static void wait_child(pid_t pid) {
    int st;
    while (waitpid(pid, &st, 0) < 0) {
        if (errno != EINTR)
            die("waitpid: %s", strerror(errno));
    }
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        die("a helper process failed (status %d)", st);
}

/* ---- statistics over a sample ---------------------------------------- */

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank percentile of an array (sorted in place). */
static double pct(double *v, size_t n, double p) {
    size_t i;
    if (n == 0)
        return 0;
    qsort(v, n, sizeof *v, cmp_double);
    i = (size_t)(p / 100.0 * (double)n + 0.999999);
    if (i < 1)
        i = 1;
    if (i > n)
        i = n;
    return v[i - 1];
}

/* Machine-readable records, printed together after the tables. */
#define MAX_TSV 128
static char g_tsv_lines[MAX_TSV][200];
static int g_ntsv;

static void tsv(const char *part, const char *name, const char *metric, double value,
                const char *unit) {
    if (g_tsv && g_ntsv < MAX_TSV)
        snprintf(g_tsv_lines[g_ntsv++], sizeof g_tsv_lines[0], "TSV\t%s\t%s\t%s\t%.6g\t%s", part,
                 name, metric, value, unit);
}

/* Verdicts collected for the summary at the end. */
#define MAX_VERDICTS 16
static struct {
    char text[200];
    int ok;
} g_verdicts[MAX_VERDICTS];
static int g_nverdicts;

static void verdict(int ok, const char *fmt, ...) {
    va_list ap;
    if (g_nverdicts == MAX_VERDICTS)
        return;
    va_start(ap, fmt);
    vsnprintf(g_verdicts[g_nverdicts].text, sizeof g_verdicts[0].text, fmt, ap);
    va_end(ap);
    g_verdicts[g_nverdicts++].ok = ok;
}

/* ---------------------------------------------------------------------- */
/* Part 1: uncontended acquire + release                                   */
/* ---------------------------------------------------------------------- */

enum {
    U_KERNEL,
    U_SHARED,
    U_SOFT,
    U_REENTRANT,
    U_NEWFREE,
    U_RAW_CYCLE,
    U_RAW_PAIR,
    U_RAW_EXCL,
    U_COUNT
};

static const char *const u_names[U_COUNT] = {
    "fl kernel lock (thread-local, default)",
    "fl kernel lock, shared handle",
    "fl soft lock",
    "fl reentrant acquire (2nd level)",
    "fl_lock_new + fl_lock_free",
    "floor: open+flock(EX)+flock(UN)+close",
    "floor: flock(EX)+flock(UN) on open fd",
    "floor: open(O_CREAT|O_EXCL)+close+unlink",
};

static struct {
    fl_lock *kernel, *shared, *soft, *reent;
    char kpath[4200], spath[4200], rawpath[4200], exclpath[4200], newpath[4200];
    int rawfd;
} U;

/* One batch of n cycles of case id. */
static void u_batch(int id, long n) {
    long i;
    switch (id) {
    case U_KERNEL:
        for (i = 0; i < n; i++) {
            if (fl_acquire(U.kernel) != 0)
                die("%s", fl_last_error());
            fl_release(U.kernel, 0);
        }
        break;
    case U_SHARED:
        for (i = 0; i < n; i++) {
            if (fl_acquire(U.shared) != 0)
                die("%s", fl_last_error());
            fl_release(U.shared, 0);
        }
        break;
    case U_SOFT:
        for (i = 0; i < n; i++) {
            if (fl_acquire(U.soft) != 0)
                die("%s", fl_last_error());
            fl_release(U.soft, 0);
        }
        break;
    case U_REENTRANT: /* the first level is held outside the batch */
        for (i = 0; i < n; i++) {
            if (fl_acquire(U.reent) != 0)
                die("%s", fl_last_error());
            fl_release(U.reent, 0);
        }
        break;
    case U_NEWFREE:
        for (i = 0; i < n; i++) {
            fl_lock *l;
            if (fl_lock_new(&l, U.newpath, NULL) != 0)
                die("%s", fl_last_error());
            fl_lock_free(l);
        }
        break;
    case U_RAW_CYCLE:
        for (i = 0; i < n; i++) {
            int fd = open(U.rawpath, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0666);
            if (fd < 0 || flock(fd, LOCK_EX) != 0)
                die("raw cycle: %s", strerror(errno));
            flock(fd, LOCK_UN);
            close(fd);
        }
        break;
    case U_RAW_PAIR:
        for (i = 0; i < n; i++) {
            if (flock(U.rawfd, LOCK_EX) != 0)
                die("raw pair: %s", strerror(errno));
            flock(U.rawfd, LOCK_UN);
        }
        break;
    case U_RAW_EXCL:
        for (i = 0; i < n; i++) {
            int fd = open(U.exclpath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0666);
            if (fd < 0)
                die("raw excl: %s", strerror(errno));
            close(fd);
            unlink(U.exclpath);
        }
        break;
    }
}

static void part_uncontended(int reps, double batch_s) {
    static double samples[U_COUNT][1000];
    long iters[U_COUNT];
    double floor_us = 0;
    int id, r;

    if (reps > 1000)
        reps = 1000;
    path_in_dir(U.kpath, sizeof U.kpath, "u_kernel.lock");
    path_in_dir(U.spath, sizeof U.spath, "u_soft.lock");
    path_in_dir(U.rawpath, sizeof U.rawpath, "u_raw.lock");
    path_in_dir(U.exclpath, sizeof U.exclpath, "u_excl.lock");
    path_in_dir(U.newpath, sizeof U.newpath, "u_new.lock");
    U.kernel = new_lock(U.kpath, FL_KERNEL, 1, -1);
    U.shared = new_lock(U.kpath, FL_KERNEL, 0, -1);
    U.soft = new_lock(U.spath, FL_SOFT, 1, -1);
    U.reent = new_lock(U.kpath, FL_KERNEL, 1, -1);
    U.rawfd = open(U.rawpath, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    if (U.rawfd < 0)
        die("open %s: %s", U.rawpath, strerror(errno));

    /* Calibrate: how many cycles make a batch of about batch_s seconds. */
    for (id = 0; id < U_COUNT; id++) {
        long n = 200;
        int64_t t;
        if (id == U_REENTRANT)
            must_acquire(U.reent);
        u_batch(id, n); /* warm up: files exist, caches are hot */
        t = now_ns();
        u_batch(id, n);
        t = now_ns() - t;
        if (id == U_REENTRANT)
            must_release(U.reent);
        iters[id] = t > 0 ? (long)(batch_s * 1e9 * (double)n / (double)t) : 100000;
        if (iters[id] < 50)
            iters[id] = 50;
    }

    for (r = 0; r < reps; r++) {
        for (id = 0; id < U_COUNT; id++) {
            int64_t t;
            if (id == U_REENTRANT)
                must_acquire(U.reent);
            t = now_ns();
            u_batch(id, iters[id]);
            t = now_ns() - t;
            if (id == U_REENTRANT)
                must_release(U.reent);
            samples[id][r] = (double)t / 1e3 / (double)iters[id];
        }
    }

    printf("\n== 1. Uncontended acquire + release (us per cycle; %d interleaved batches of "
           "~%.0f ms) ==\n",
           reps, batch_s * 1e3);
    printf("%-44s %10s %10s %10s\n", "case", "median", "min", "x floor");
    for (id = 0; id < U_COUNT; id++) {
        double med, mn;
        mn = pct(samples[id], (size_t)reps, 0);
        med = pct(samples[id], (size_t)reps, 50);
        if (id == U_RAW_CYCLE)
            floor_us = med;
        samples[id][0] = med; /* keep the median for the ratio column */
        samples[id][1] = mn;
    }
    for (id = 0; id < U_COUNT; id++) {
        double med = samples[id][0];
        printf("%-44s %10.3f %10.3f", u_names[id], med, samples[id][1]);
        if (id <= U_SHARED && floor_us > 0)
            printf(" %10.2f", med / floor_us);
        printf("\n");
        tsv("uncontended", u_names[id], "median", med, "us");
    }
    printf("(x floor: relative to open+flock+flock+close, the system calls a kernel-lock cycle "
           "cannot avoid)\n");

    fl_lock_free(U.kernel);
    fl_lock_free(U.shared);
    fl_lock_free(U.soft);
    fl_lock_free(U.reent);
    close(U.rawfd);
}

/* ---------------------------------------------------------------------- */
/* Part 2: wake-up latency                                                 */
/* ---------------------------------------------------------------------- */

enum { W_RAW, W_RAW_INO, W_FOREVER, W_TIMED, W_CANCEL, W_SOFT, W_COUNT };

static const char *const w_names[W_COUNT] = {
    "floor: blocked flock(LOCK_EX)",
    "floor: LOCK_NB + inotify, watch kept open",
    "fl kernel, wait forever (blocking flock)",
    "fl kernel, timeout=10 (inotify)",
    "fl kernel, forever + cancel cb (inotify)",
    "fl soft, timeout=10 (inotify on dir)",
};

typedef struct {
    volatile int64_t t_acquired; /* waiter: just after the acquire returned */
    volatile int rc;
} w_shared;

static void w_paths(char paths[W_COUNT][4200]) {
    static const char *const files[W_COUNT] = {"w_raw.lock",   "w_ino.lock",    "w_forever.lock",
                                               "w_timed.lock", "w_cancel.lock", "w_soft.lock"};
    int c;
    for (c = 0; c < W_COUNT; c++)
        path_in_dir(paths[c], sizeof paths[c], files[c]);
}

/* The floor for an inotify-driven waiter: one inotify instance for the
 * whole run (closing one costs an RCU grace period, see the docs), retry
 * LOCK_NB on every close event of the lock file. */
static int ino_floor_wait(int fd, int ino) {
#ifdef __linux__
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    for (;;) {
        struct pollfd p;
        if (flock(fd, LOCK_EX | LOCK_NB) == 0)
            return 0;
        if (errno != EWOULDBLOCK)
            return -1;
        p.fd = ino;
        p.events = POLLIN;
        if (poll(&p, 1, 1000) < 0 && errno != EINTR)
            return -1;
        while (read(ino, buf, sizeof buf) > 0) {
        }
    }
#else
    (void)ino; /* no inotify: this row then repeats the blocking floor */
    return flock(fd, LOCK_EX);
#endif
}

/* The waiter process: for each request byte (a case id), says it is about
 * to wait, waits, stamps the time, releases and reports. */
static void w_waiter(int in, int out, w_shared *sh) {
    char paths[W_COUNT][4200];
    fl_lock *locks[W_COUNT] = {NULL};
    int rawfd, inofd, ino, c;
    unsigned char req;

    w_paths(paths);
    for (c = W_FOREVER; c < W_COUNT; c++)
        locks[c] = new_lock(paths[c], c == W_SOFT ? FL_SOFT : FL_KERNEL, 1, -1);
    fl_set_cancel(locks[W_CANCEL], never_cancel, NULL);
    rawfd = open(paths[W_RAW], O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    inofd = open(paths[W_RAW_INO], O_RDWR | O_CREAT | O_CLOEXEC, 0666);
#ifdef __linux__
    ino = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (ino < 0 || inotify_add_watch(ino, paths[W_RAW_INO], IN_CLOSE_WRITE | IN_CLOSE_NOWRITE) < 0)
        die("inotify: %s", strerror(errno));
#else
    ino = -1;
#endif
    if (rawfd < 0 || inofd < 0)
        die("waiter setup: %s", strerror(errno));

    for (;;) {
        ssize_t r = read(in, &req, 1);
        int rc = 0;
        if (r == 0)
            break;
        if (r < 0) {
            if (errno == EINTR)
                continue;
            die("waiter read: %s", strerror(errno));
        }
        write_all(out, "r", 1); /* about to block */
        switch (req) {
        case W_RAW:
            rc = flock(rawfd, LOCK_EX);
            break;
        case W_RAW_INO:
            rc = ino_floor_wait(inofd, ino);
            break;
        case W_FOREVER:
        case W_CANCEL:
            rc = fl_acquire_ex(locks[req], -1, 1, 0.05);
            break;
        default:
            rc = fl_acquire_ex(locks[req], 10, 1, 0.05);
            break;
        }
        sh->t_acquired = now_ns();
        sh->rc = rc;
        if (req == W_RAW)
            flock(rawfd, LOCK_UN);
        else if (req == W_RAW_INO)
            flock(inofd, LOCK_UN);
        else if (rc == 0)
            fl_release(locks[req], 0);
        write_all(out, "d", 1);
    }
    for (c = 0; c < W_COUNT; c++)
        fl_lock_free(locks[c]);
    close(rawfd);
    close(inofd);
    if (ino >= 0)
        close(ino);
}

static void part_wakeup(int rounds, double settle_s) {
    char paths[W_COUNT][4200];
    fl_lock *locks[W_COUNT] = {NULL};
    double *lat[W_COUNT];
    int to_w[2], to_h[2], rawfd, c, r, failures = 0;
    w_shared *sh = shared_alloc(sizeof *sh);
    pid_t pid;

    w_paths(paths);
    rawfd = open(paths[W_RAW], O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    if (rawfd < 0)
        die("open: %s", strerror(errno));
    close(open(paths[W_RAW_INO], O_RDWR | O_CREAT | O_CLOEXEC, 0666));
    for (c = W_FOREVER; c < W_COUNT; c++)
        locks[c] = new_lock(paths[c], c == W_SOFT ? FL_SOFT : FL_KERNEL, 1, -1);
    for (c = 0; c < W_COUNT; c++) {
        lat[c] = calloc((size_t)rounds, sizeof(double));
        if (!lat[c])
            die("out of memory");
    }
    if (pipe(to_w) != 0 || pipe(to_h) != 0)
        die("pipe: %s", strerror(errno));
    fflush(stdout);
    pid = fork();
    if (pid < 0)
        die("fork: %s", strerror(errno));
    if (pid == 0) {
        close(to_w[1]);
        close(to_h[0]);
        close(rawfd);
        w_waiter(to_w[0], to_h[1], sh);
        _exit(0);
    }
    close(to_w[0]);
    close(to_h[1]);

    for (r = 0; r < rounds; r++) {
        for (c = 0; c < W_COUNT; c++) {
            unsigned char req = (unsigned char)c;
            char ack;
            int64_t t0;
            int inofd = -1;
            if (c == W_RAW) {
                if (flock(rawfd, LOCK_EX) != 0)
                    die("flock: %s", strerror(errno));
            } else if (c == W_RAW_INO) {
                /* Like a kernel-lock holder: open, lock ... unlock, close. */
                inofd = open(paths[c], O_RDWR | O_CLOEXEC);
                if (inofd < 0 || flock(inofd, LOCK_EX) != 0)
                    die("flock: %s", strerror(errno));
            } else {
                must_acquire(locks[c]);
            }
            write_all(to_w[1], &req, 1);
            read_all(to_h[0], &ack, 1);
            /* Give the waiter time to fall asleep in the kernel. */
            sleep_s(settle_s);
            t0 = now_ns();
            if (c == W_RAW) {
                flock(rawfd, LOCK_UN);
            } else if (c == W_RAW_INO) {
                flock(inofd, LOCK_UN);
                close(inofd);
            } else {
                must_release(locks[c]);
            }
            read_all(to_h[0], &ack, 1);
            if (sh->rc != 0)
                failures++;
            lat[c][r] = (double)(sh->t_acquired - t0) / 1e3;
        }
    }
    close(to_w[1]);
    wait_child(pid);
    close(to_h[0]);
    if (failures)
        die("%d wake-up rounds failed to acquire", failures);

    printf("\n== 2. Wake-up latency: holder releases -> blocked waiter's acquire returns (us; %d "
           "rounds, 2 processes) ==\n",
           rounds);
    printf("%-44s %10s %10s %10s %10s\n", "case", "median", "p99", "min", "max");
    for (c = 0; c < W_COUNT; c++) {
        double med = pct(lat[c], (size_t)rounds, 50);
        double p99 = pct(lat[c], (size_t)rounds, 99);
        double mn = pct(lat[c], (size_t)rounds, 0);
        double mx = pct(lat[c], (size_t)rounds, 100);
        printf("%-44s %10.1f %10.1f %10.1f %10.1f\n", w_names[c], med, p99, mn, mx);
        tsv("wakeup", w_names[c], "median", med, "us");
        tsv("wakeup", w_names[c], "p99", p99, "us");
        if (c == W_SOFT)
            verdict(med < 1000, "wake-up median, soft lock: %.1f us (target < 1000 us)", med);
        else if (c >= W_FOREVER)
            verdict(med < 50, "wake-up median, %s: %.1f us (target < 50 us)", w_names[c], med);
        free(lat[c]);
    }
    for (c = 0; c < W_COUNT; c++)
        fl_lock_free(locks[c]);
    close(rawfd);
    munmap(sh, sizeof *sh);
}

/* ---------------------------------------------------------------------- */
/* Part 3: CPU burnt while waiting                                         */
/* ---------------------------------------------------------------------- */

typedef struct {
    const char *name;
    fl_kind kind;
    double timeout; /* < 0: forever */
    double poll;
    int cancel;
} c_case;

static const c_case c_cases[] = {
    {"fl kernel, forever (blocking flock)", FL_KERNEL, -1, 0.05, 0},
    {"fl kernel, forever + cancel cb, poll=0", FL_KERNEL, -1, 0, 1},
    {"fl kernel, timeout=30, poll=0.05", FL_KERNEL, 30, 0.05, 0},
    {"fl kernel, timeout=30, poll=0", FL_KERNEL, 30, 0, 0},
    {"fl soft, timeout=30, poll=0.05", FL_SOFT, 30, 0.05, 0},
    {"fl soft, timeout=30, poll=0", FL_SOFT, 30, 0, 0},
};
#define C_COUNT ((int)(sizeof c_cases / sizeof c_cases[0]))

typedef struct {
    double cpu_s, wall_s;
    int rc;
} c_shared;

static void part_cpu(int reps, double hold_s) {
    double per_s[C_COUNT][64], wall[C_COUNT][64];
    c_shared *sh = shared_alloc(sizeof *sh);
    int c, r;

    if (reps > 64)
        reps = 64;
    for (r = 0; r < reps; r++) {
        for (c = 0; c < C_COUNT; c++) {
            char path[4200], name[64];
            fl_lock *l;
            int go[2], ready[2];
            char ack;
            pid_t pid;

            snprintf(name, sizeof name, "c_case%d.lock", c);
            path_in_dir(path, sizeof path, name);
            if (pipe(go) != 0 || pipe(ready) != 0)
                die("pipe: %s", strerror(errno));
            fflush(stdout);
            /* Fork before taking the lock: the waiter must not start life
             * as a copy of a process that holds it. */
            pid = fork();
            if (pid < 0)
                die("fork: %s", strerror(errno));
            if (pid == 0) {
                fl_lock *w;
                double c0, t0;
                close(go[1]);
                close(ready[0]);
                w = new_lock(path, c_cases[c].kind, 1, -1);
                if (c_cases[c].cancel)
                    fl_set_cancel(w, never_cancel, NULL);
                read_all(go[0], &ack, 1);
                write_all(ready[1], "r", 1);
                c0 = cpu_seconds();
                t0 = (double)now_ns() / 1e9;
                sh->rc = fl_acquire_ex(w, c_cases[c].timeout, 1, c_cases[c].poll);
                sh->wall_s = (double)now_ns() / 1e9 - t0;
                sh->cpu_s = cpu_seconds() - c0;
                if (sh->rc == 0)
                    fl_release(w, 0);
                fl_lock_free(w);
                _exit(0);
            }
            close(go[0]);
            close(ready[1]);
            l = new_lock(path, c_cases[c].kind, 1, -1);
            must_acquire(l);
            write_all(go[1], "g", 1);
            read_all(ready[0], &ack, 1);
            close(go[1]);
            close(ready[0]);
            sleep_s(hold_s);
            must_release(l);
            wait_child(pid);
            fl_lock_free(l);
            if (sh->rc != 0)
                die("cpu case '%s': acquire failed (%s)", c_cases[c].name, fl_err_name(sh->rc));
            per_s[c][r] = sh->cpu_s * 1e3 / sh->wall_s;
            wall[c][r] = sh->wall_s;
        }
    }

    printf("\n== 3. CPU burnt by a waiter (ms of user+sys CPU per second of waiting; %d x ~%.1f s "
           "each) ==\n",
           reps, hold_s);
    printf("%-44s %10s %10s %10s\n", "case", "median", "max", "waited s");
    for (c = 0; c < C_COUNT; c++) {
        double med = pct(per_s[c], (size_t)reps, 50), mx = pct(per_s[c], (size_t)reps, 100);
        double w = pct(wall[c], (size_t)reps, 50);
        printf("%-44s %10.3f %10.3f %10.2f\n", c_cases[c].name, med, mx, w);
        tsv("cpu", c_cases[c].name, "median", med, "ms/s");
        verdict(med < 2.0, "wait CPU, %s: %.3f ms/s (target < 2 ms/s)", c_cases[c].name, med);
    }
    munmap(sh, sizeof *sh);
}

/* ---------------------------------------------------------------------- */
/* Part 4: contention                                                      */
/* ---------------------------------------------------------------------- */

enum { K_RAW, K_FOREVER, K_TIMED, K_SOFT, K_COUNT };

static const char *const k_names[K_COUNT] = {
    "floor: open+flock(EX)+flock(UN)+close",
    "fl kernel, wait forever (blocking flock)",
    "fl kernel, timeout=60 (inotify)",
    "fl soft, timeout=60 (inotify on dir)",
};

typedef struct {
    volatile long counter; /* incremented non-atomically inside the lock */
    volatile int failures;
    size_t n_order;
    int *order;     /* holder of the n-th acquisition (fairness) */
    double waits[]; /* procs * iters, seconds */
} k_shared;

static void k_child(int c, const char *path, int start_fd, k_shared *sh, int idx, int iters) {
    fl_lock *l = NULL;
    char go, data_path[4300], rec[64];
    int i, data;
    if (c != K_RAW)
        l = new_lock(path, c == K_SOFT ? FL_SOFT : FL_KERNEL, 1, -1);
    /* The critical section writes one record into a shared data file, the
     * smallest realistic use of a file lock. */
    snprintf(data_path, sizeof data_path, "%s.data", path);
    data = open(data_path, O_WRONLY | O_CREAT | O_CLOEXEC, 0666);
    if (data < 0)
        die("open %s: %s", data_path, strerror(errno));
    memset(rec, '.', sizeof rec);
    rec[sizeof rec - 1] = '\n';
    /* Start barrier: the parent closes the pipe, every child wakes at once. */
    if (read(start_fd, &go, 1) != 0)
        die("start barrier broken");
    for (i = 0; i < iters; i++) {
        int64_t t0 = now_ns();
        int rc, fd = -1;
        long v;
        if (c == K_RAW) {
            fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
            rc = fd < 0 ? -1 : flock(fd, LOCK_EX);
        } else {
            rc = fl_acquire_ex(l, c == K_FOREVER ? -1 : 60, 1, 0.05);
        }
        sh->waits[idx * iters + i] = (double)(now_ns() - t0) / 1e9;
        if (rc != 0) {
            __atomic_add_fetch(&sh->failures, 1, __ATOMIC_SEQ_CST);
            if (fd >= 0)
                close(fd);
            continue;
        }
        /* A read-modify-write that only the lock protects. */
        v = sh->counter;
        __atomic_signal_fence(__ATOMIC_SEQ_CST);
        if (v >= 0 && v < (long)sh->n_order)
            sh->order[v] = idx;
        if (pwrite(data, rec, sizeof rec, (off_t)v * (off_t)sizeof rec) != (ssize_t)sizeof rec)
            die("pwrite: %s", strerror(errno));
        sh->counter = v + 1;
        if (c == K_RAW) {
            flock(fd, LOCK_UN);
            close(fd);
        } else {
            fl_release(l, 0);
        }
    }
    fl_lock_free(l);
    close(data);
}

/* One run of case c; fills the figures of that run. */
static void k_run(int c, int procs, int iters, k_shared *sh, size_t size, int *order, double *thr,
                  double *med, double *p99, double *worst, long *handoffs) {
    size_t n = (size_t)procs * (size_t)iters, k;
    char path[4200], name[64];
    int start[2], p;
    pid_t *pids = calloc((size_t)procs, sizeof(pid_t));
    int64_t t0, t1;
    if (!pids)
        die("out of memory");
    snprintf(name, sizeof name, "k_case%d.lock", c);
    path_in_dir(path, sizeof path, name);
    memset(sh, 0, size);
    sh->order = order;
    sh->n_order = n;
    if (pipe(start) != 0)
        die("pipe: %s", strerror(errno));
    fflush(stdout);
    for (p = 0; p < procs; p++) {
        pids[p] = fork();
        if (pids[p] < 0)
            die("fork: %s", strerror(errno));
        if (pids[p] == 0) {
            close(start[1]);
            k_child(c, path, start[0], sh, p, iters);
            _exit(0);
        }
    }
    close(start[0]);
    sleep_s(0.05); /* let every child reach the barrier */
    t0 = now_ns();
    close(start[1]);
    for (p = 0; p < procs; p++)
        wait_child(pids[p]);
    t1 = now_ns();
    free(pids);
    if (sh->failures)
        die("contention case '%s': %d acquisitions failed", k_names[c], sh->failures);
    if (sh->counter != (long)n)
        verdict(0, "contention, %s: counter %ld, expected %zu (mutual exclusion broken)",
                k_names[c], sh->counter, n);
    *handoffs = 0;
    for (k = 1; k < n && k < (size_t)sh->counter; k++)
        *handoffs += order[k] != order[k - 1];
    *thr = (double)n / ((double)(t1 - t0) / 1e9);
    *med = pct(sh->waits, n, 50) * 1e6;
    *p99 = pct(sh->waits, n, 99) * 1e6;
    *worst = pct(sh->waits, n, 100) * 1e3;
}

static void part_contention(int procs, int iters, int reps) {
    size_t n = (size_t)procs * (size_t)iters;
    size_t size = sizeof(k_shared) + n * sizeof(double);
    k_shared *sh = shared_alloc(size);
    int *order = shared_alloc(n * sizeof(int));
    double thr[K_COUNT][16], worst[K_COUNT][16], med[K_COUNT][16], p99[K_COUNT][16];
    double hand[K_COUNT][16];
    int c, r, lost = g_nverdicts;

    if (reps > 16)
        reps = 16;
    for (r = 0; r < reps; r++) {
        for (c = 0; c < K_COUNT; c++) {
            long h;
            k_run(c, procs, iters, sh, size, order, &thr[c][r], &med[c][r], &p99[c][r],
                  &worst[c][r], &h);
            hand[c][r] = (double)h;
        }
    }
    lost = g_nverdicts - lost;

    printf("\n== 4. Contention: %d processes x %d acquisitions on one lock (critical section: "
           "one 64-byte pwrite; median of %d runs) ==\n",
           procs, iters, reps);
    printf("%-44s %9s %9s %9s %9s %9s\n", "case", "acq/s", "wait med", "wait p99", "worst",
           "handoffs");
    printf("%-44s %9s %9s %9s %9s %9s\n", "", "", "us", "us", "ms max", "");
    for (c = 0; c < K_COUNT; c++) {
        double t = pct(thr[c], (size_t)reps, 50), w = pct(worst[c], (size_t)reps, 100);
        printf("%-44s %9.0f %9.1f %9.1f %9.2f %9.0f\n", k_names[c], t,
               pct(med[c], (size_t)reps, 50), pct(p99[c], (size_t)reps, 50), w,
               pct(hand[c], (size_t)reps, 50));
        tsv("contention", k_names[c], "throughput", t, "acq/s");
        tsv("contention", k_names[c], "worst_wait", w, "ms");
    }
    printf("(worst: the longest single wait over all runs; handoffs: how often the next holder "
           "was\n another process, at most %zu; the protected counter %s)\n",
           n - 1,
           lost ? "came out WRONG: see Targets"
                : "came out exact in every run: no two holders overlapped");
    munmap(order, n * sizeof(int));
    munmap(sh, size);
}

/* ---------------------------------------------------------------------- */
/* Driver                                                                  */
/* ---------------------------------------------------------------------- */

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st;
    (void)ftw;
    if (flag == FTW_DP)
        rmdir(path);
    else
        unlink(path);
    return 0;
}

static void cleanup(void) {
    if (g_made_dir && getpid() == g_parent_pid)
        nftw(g_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void usage(FILE *f) {
    fprintf(
        f, "usage: fl_bench [options]   (--opt=VALUE or --opt VALUE)\n"
           "  --parts=LIST     comma-separated: uncontended,wakeup,cpu,contention (default all)\n"
           "  --reps=N         uncontended: interleaved batches per case (default 15)\n"
           "  --batch-ms=MS    uncontended: length of one batch (default 20)\n"
           "  --rounds=N       wakeup: rounds per case (default 200)\n"
           "  --settle-ms=MS   wakeup: holder's pause before releasing (default 2)\n"
           "  --cpu-reps=N     cpu: repetitions per case (default 2)\n"
           "  --hold=S         cpu: seconds the lock is held while the waiter waits (default 4)\n"
           "  --procs=N        contention: processes (default 8)\n"
           "  --iters=N        contention: acquisitions per process (default 500)\n"
           "  --cont-reps=N    contention: runs per case, interleaved (default 3)\n"
           "  --dir=DIR        scratch directory (default: a new one under $TMPDIR or /tmp)\n"
           "  --quick          small counts, for a smoke run\n"
           "  --tsv            also print 'TSV<tab>part<tab>case<tab>metric<tab>value<tab>unit'\n");
}

static long to_long(const char *s, const char *opt) {
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v <= 0 || v > 100000000)
        die("bad value for %s: '%s'", opt, s);
    return v;
}

static double to_double(const char *s, const char *opt) {
    char *end;
    double v = strtod(s, &end);
    if (*s == '\0' || *end != '\0' || !(v > 0) || v > 3600)
        die("bad value for %s: '%s'", opt, s);
    return v;
}

int main(int argc, char **argv) {
    const char *parts = "uncontended,wakeup,cpu,contention", *dir = NULL, *v;
    int reps = 15, rounds = 200, cpu_reps = 2, procs = 8, iters = 500, cont_reps = 3;
    double batch_s = 0.02, settle_s = 0.002,
           hold_s = 4.0; /* long enough that one-time costs and tick-based CPU accounting fade */
    int64_t t_start = now_ns();

    {
        enum {
            O_PARTS = 256,
            O_REPS,
            O_BATCH,
            O_ROUNDS,
            O_SETTLE,
            O_CPU_REPS,
            O_HOLD,
            O_PROCS,
            O_ITERS,
            O_CONT_REPS,
            O_DIR,
            O_QUICK,
            O_TSV
        };
        static const struct option longopts[] = {
            {"help", no_argument, NULL, 'h'},
            {"tsv", no_argument, NULL, O_TSV},
            {"quick", no_argument, NULL, O_QUICK},
            {"parts", required_argument, NULL, O_PARTS},
            {"reps", required_argument, NULL, O_REPS},
            {"batch-ms", required_argument, NULL, O_BATCH},
            {"rounds", required_argument, NULL, O_ROUNDS},
            {"settle-ms", required_argument, NULL, O_SETTLE},
            {"cpu-reps", required_argument, NULL, O_CPU_REPS},
            {"hold", required_argument, NULL, O_HOLD},
            {"procs", required_argument, NULL, O_PROCS},
            {"iters", required_argument, NULL, O_ITERS},
            {"cont-reps", required_argument, NULL, O_CONT_REPS},
            {"dir", required_argument, NULL, O_DIR},
            {NULL, 0, NULL, 0}};
        int c;
        while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
            v = optarg;
            switch (c) {
            case 'h':
                usage(stdout);
                return 0;
            case O_TSV:
                g_tsv = 1;
                break;
            case O_QUICK:
                reps = 5;
                batch_s = 0.005;
                rounds = 20;
                cpu_reps = 1;
                hold_s = 0.3;
                iters = 50;
                cont_reps = 1;
                break;
            case O_PARTS:
                parts = v;
                break;
            case O_REPS:
                reps = (int)to_long(v, "--reps");
                break;
            case O_BATCH:
                batch_s = to_double(v, "--batch-ms") / 1e3;
                break;
            case O_ROUNDS:
                rounds = (int)to_long(v, "--rounds");
                break;
            case O_SETTLE:
                settle_s = to_double(v, "--settle-ms") / 1e3;
                break;
            case O_CPU_REPS:
                cpu_reps = (int)to_long(v, "--cpu-reps");
                break;
            case O_HOLD:
                hold_s = to_double(v, "--hold");
                break;
            case O_PROCS:
                procs = (int)to_long(v, "--procs");
                break;
            case O_ITERS:
                iters = (int)to_long(v, "--iters");
                break;
            case O_CONT_REPS:
                cont_reps = (int)to_long(v, "--cont-reps");
                break;
            case O_DIR:
                dir = v;
                break;
            default: /* getopt_long has said what was wrong */
                usage(stderr);
                return 2;
            }
        }
        if (optind < argc) {
            fprintf(stderr, "fl_bench: unexpected argument '%s'\n", argv[optind]);
            usage(stderr);
            return 2;
        }
    }
    {
        /* Validate the part names before spending minutes on the others. */
        char buf[256], *tok, *save = NULL;
        snprintf(buf, sizeof buf, "%s", parts);
        for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
            if (strcmp(tok, "uncontended") && strcmp(tok, "wakeup") && strcmp(tok, "cpu") &&
                strcmp(tok, "contention"))
                die("unknown part '%s' (see --help)", tok);
    }

    g_parent_pid = getpid();
    if (dir) {
        if (snprintf(g_dir, sizeof g_dir, "%s", dir) >= (int)sizeof g_dir)
            die("--dir too long");
        if (mkdir(g_dir, 0777) != 0 && errno != EEXIST)
            die("mkdir %s: %s", g_dir, strerror(errno));
    } else {
        const char *tmp = getenv("TMPDIR");
        snprintf(g_dir, sizeof g_dir, "%s/fl_bench.XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(g_dir))
            die("mkdtemp %s: %s", g_dir, strerror(errno));
        g_made_dir = 1;
    }
    atexit(cleanup);
    signal(SIGPIPE, SIG_IGN);

    printf("fl_bench: libfilelock %s, %ld CPUs online, scratch dir %s\n", fl_version(),
           sysconf(_SC_NPROCESSORS_ONLN), g_dir);
    fflush(stdout);

#define WANT(p) (strstr(parts, p) != NULL)
    if (WANT("uncontended"))
        part_uncontended(reps, batch_s);
    fflush(stdout);
    if (WANT("wakeup"))
        part_wakeup(rounds, settle_s);
    fflush(stdout);
    if (WANT("cpu"))
        part_cpu(cpu_reps, hold_s);
    fflush(stdout);
    if (WANT("contention"))
        part_contention(procs, iters, cont_reps);
#undef WANT

    if (g_nverdicts) {
        int k, missed = 0;
        printf("\n== Targets ==\n");
        for (k = 0; k < g_nverdicts; k++) {
            printf("  %-5s %s\n", g_verdicts[k].ok ? "met" : "MISS", g_verdicts[k].text);
            missed += !g_verdicts[k].ok;
        }
        printf("  %d of %d met\n", g_nverdicts - missed, g_nverdicts);
    }
    if (g_ntsv) {
        int k;
        printf("\n");
        for (k = 0; k < g_ntsv; k++)
            printf("%s\n", g_tsv_lines[k]);
    }
    printf("\ntotal run time %.1f s\n", (double)(now_ns() - t_start) / 1e9);
    /* A benchmark reports; it does not fail on a slow machine. */
    return 0;
}
