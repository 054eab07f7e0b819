/*
 * mx_c: the C worker of the benchmark matrix (bench/matrix.sh). The driver
 * (matrix.py) starts one per role and talks to it over stdin/stdout, so
 * that C cases can be interleaved with the Python, Ruby and Lua workers'
 * cases in the same run. Built by matrix.sh against the build's
 * libfilelock.so (the shared library, as users link it).
 *
 *   mx_c serve DIR                       uncontended server (see serve())
 *   mx_c contend CASE LOCK DATA ITERS    one contention worker
 *   mx_c rwreader LOCK HOLD_US GATE      reader load until stdin closes
 *   mx_c rwwriter LOCK TRIALS GATE TMO   writer wait under that load
 *
 * The same line protocol is spoken by py_worker.py, rb_worker.rb and
 * lua_worker.lua; see matrix.py for the driver's side.
 */
#define _DEFAULT_SOURCE
#define _XOPEN_SOURCE 700

#include <filelock.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

static void die(const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "mx_c: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n");
    exit(2);
}

/* CLOCK_MONOTONIC: one clock for the whole machine, the same one Python's
 * time.monotonic_ns() and Ruby's CLOCK_MONOTONIC read. */
static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void sleep_us(long us) {
    struct timespec ts;
    ts.tv_sec = us / 1000000;
    ts.tv_nsec = (us % 1000000) * 1000;
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static fl_lock *new_lock(const char *path, fl_kind kind, int read_write) {
    fl_lock *l;
    fl_options o = FL_OPTIONS_INIT;
    o.kind = kind;
    o.read_write = read_write;
    if (fl_lock_new(&l, path, &o) != 0)
        die("fl_lock_new(%s): %s", path, fl_last_error());
    return l;
}

static void check(int rc, const char *what) {
    if (rc != 0)
        die("%s: %s", what, fl_last_error());
}

/* ---------------------------------------------------------------------- */
/* serve: "CASE N" -> runs N cycles of CASE, answers the elapsed ns.      */
/* ---------------------------------------------------------------------- */

static void serve(const char *dir) {
    char kpath[4096], spath[4096], rwpath[4096], rawpath[4096], newpath[4096], line[256];
    fl_lock *kernel, *soft, *reent, *rw;
    int rawfd;

    snprintf(kpath, sizeof kpath, "%s/c_kernel.lock", dir);
    snprintf(spath, sizeof spath, "%s/c_soft.lock", dir);
    snprintf(rwpath, sizeof rwpath, "%s/c_rw.lock", dir);
    snprintf(rawpath, sizeof rawpath, "%s/c_raw.lock", dir);
    snprintf(newpath, sizeof newpath, "%s/c_new.lock", dir);
    kernel = new_lock(kpath, FL_KERNEL, 0);
    reent = new_lock(kpath, FL_KERNEL, 0);
    soft = new_lock(spath, FL_SOFT, 0);
    rw = new_lock(rwpath, FL_KERNEL, 1);
    rawfd = open(rawpath, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    if (rawfd < 0)
        die("open %s: %s", rawpath, strerror(errno));
    printf("ready C libfilelock %s\n", fl_version());
    fflush(stdout);

    while (fgets(line, sizeof line, stdin)) {
        char name[64];
        long n, i;
        int64_t t;
        if (strncmp(line, "quit", 4) == 0)
            break;
        if (sscanf(line, "%63s %ld", name, &n) != 2 || n <= 0)
            die("bad request '%s'", line);
        if (strcmp(name, "reentrant") == 0) /* the first level is held outside */
            check(fl_acquire(reent), "acquire");
        t = now_ns();
        if (strcmp(name, "acq_rel") == 0) {
            for (i = 0; i < n; i++) {
                check(fl_acquire(kernel), "acquire");
                fl_release(kernel, 0);
            }
        } else if (strcmp(name, "soft") == 0) {
            for (i = 0; i < n; i++) {
                check(fl_acquire(soft), "acquire soft");
                fl_release(soft, 0);
            }
        } else if (strcmp(name, "reentrant") == 0) {
            for (i = 0; i < n; i++) {
                check(fl_acquire(reent), "acquire");
                fl_release(reent, 0);
            }
        } else if (strcmp(name, "construct") == 0) {
            for (i = 0; i < n; i++) {
                fl_lock *l;
                check(fl_lock_new(&l, newpath, NULL), "fl_lock_new");
                fl_lock_free(l);
            }
        } else if (strcmp(name, "rw_read") == 0) {
            for (i = 0; i < n; i++) {
                check(fl_acquire_shared(rw, -1, 1, 0.05), "acquire shared");
                fl_release(rw, 0);
            }
        } else if (strcmp(name, "rw_write") == 0) {
            for (i = 0; i < n; i++) {
                check(fl_acquire(rw), "acquire rw");
                fl_release(rw, 0);
            }
        } else if (strcmp(name, "floor") == 0) {
            /* What a kernel-lock cycle cannot avoid. */
            for (i = 0; i < n; i++) {
                int fd = open(rawpath, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
                if (fd < 0 || flock(fd, LOCK_EX) != 0)
                    die("floor: %s", strerror(errno));
                flock(fd, LOCK_UN);
                close(fd);
            }
        } else if (strcmp(name, "floor_excl") == 0) {
            /* What a soft-lock cycle cannot avoid: create and delete a file. */
            for (i = 0; i < n; i++) {
                int fd = open(newpath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
                if (fd < 0)
                    die("floor_excl: %s", strerror(errno));
                close(fd);
                unlink(newpath);
            }
        } else if (strcmp(name, "floor_pair") == 0) {
            for (i = 0; i < n; i++) {
                if (flock(rawfd, LOCK_EX) != 0)
                    die("floor_pair: %s", strerror(errno));
                flock(rawfd, LOCK_UN);
            }
        } else {
            die("unknown case '%s'", name);
        }
        t = now_ns() - t;
        if (strcmp(name, "reentrant") == 0)
            fl_release(reent, 0);
        printf("%lld\n", (long long)t);
        fflush(stdout);
    }
    fl_lock_free(kernel);
    fl_lock_free(reent);
    fl_lock_free(soft);
    fl_lock_free(rw);
    close(rawfd);
}

/* ---------------------------------------------------------------------- */
/* contend: one of N processes taking the lock ITERS times.               */
/* ---------------------------------------------------------------------- */

/* The shared counter lives in the data file as 20 decimal digits at offset
 * 0: every worker, whatever its language, reads it, adds one and writes it
 * back inside the lock. A lost increment would show two holders at once. */
#define CTR_LEN 20

static long read_counter(int fd) {
    char buf[CTR_LEN + 1];
    ssize_t r = pread(fd, buf, CTR_LEN, 0);
    if (r < 0)
        die("pread: %s", strerror(errno));
    buf[r] = '\0';
    return strtol(buf, NULL, 10);
}

static void write_counter(int fd, long v) {
    char buf[CTR_LEN + 1];
    snprintf(buf, sizeof buf, "%0*ld", CTR_LEN, v);
    if (pwrite(fd, buf, CTR_LEN, 0) != CTR_LEN)
        die("pwrite: %s", strerror(errno));
}

static void contend(const char *kase, const char *path, const char *data_path, int iters) {
    fl_lock *l = NULL;
    double *waits = calloc((size_t)iters, sizeof *waits);
    long *seq = calloc((size_t)iters, sizeof *seq);
    char line[64];
    int i, data, floor_case = strcmp(kase, "floor") == 0, reader = strcmp(kase, "rw_read") == 0;
    double timeout = strcmp(kase, "timed") == 0 ? 60 : -1;

    if (!waits || !seq)
        die("out of memory");
    if (strcmp(kase, "soft") == 0)
        l = new_lock(path, FL_SOFT, 0);
    else if (reader || strcmp(kase, "rw_write") == 0)
        l = new_lock(path, FL_KERNEL, 1);
    else if (!floor_case)
        l = new_lock(path, FL_KERNEL, 0);
    data = open(data_path, O_RDWR | O_CLOEXEC);
    if (data < 0)
        die("open %s: %s", data_path, strerror(errno));
    printf("ready\n");
    fflush(stdout);
    if (!fgets(line, sizeof line, stdin)) /* start barrier: "go" */
        die("no go");
    for (i = 0; i < iters; i++) {
        int64_t t0 = now_ns();
        int fd = -1;
        long v;
        if (floor_case) {
            fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
            if (fd < 0 || flock(fd, LOCK_EX) != 0)
                die("floor: %s", strerror(errno));
        } else if (reader) {
            check(fl_acquire_shared(l, -1, 1, 0.05), "acquire shared");
        } else {
            check(fl_acquire_ex(l, timeout, 1, 0.05), "acquire");
        }
        waits[i] = (double)(now_ns() - t0) / 1e3;
        v = read_counter(data);
        seq[i] = v;
        if (!reader)
            write_counter(data, v + 1);
        if (floor_case) {
            flock(fd, LOCK_UN);
            close(fd);
        } else {
            fl_release(l, 0);
        }
    }
    printf("done\n");
    fflush(stdout);
    printf("waits");
    for (i = 0; i < iters; i++)
        printf(" %.1f", waits[i]);
    printf("\nseq");
    for (i = 0; i < iters; i++)
        printf(" %ld", seq[i]);
    printf("\n");
    fflush(stdout);
    fl_lock_free(l);
    close(data);
    free(waits);
    free(seq);
}

/* ---------------------------------------------------------------------- */
/* Read/write: reader load and a writer's wait under it.                  */
/* ---------------------------------------------------------------------- */

static int stdin_closed(void) {
    struct pollfd p;
    char c;
    p.fd = 0;
    p.events = POLLIN;
    if (poll(&p, 1, 0) <= 0)
        return 0;
    return read(0, &c, 1) <= 0;
}

static void rwreader(const char *path, long hold_us, int gate) {
    fl_lock *l = new_lock(path, FL_KERNEL, gate);
    long n = 0;
    int said = 0;
    while (!stdin_closed()) {
        check(fl_acquire_shared(l, 60, 1, 0.05), "reader acquire");
        sleep_us(hold_us);
        fl_release(l, 0);
        if (!said) {
            printf("reading\n");
            fflush(stdout);
            said = 1;
        }
        n++;
    }
    printf("reads %ld\n", n);
    fflush(stdout);
    fl_lock_free(l);
}

static void rwwriter(const char *path, int trials, int gate, double timeout) {
    fl_lock *l = new_lock(path, FL_KERNEL, gate);
    int i, timeouts = 0;
    printf("waits");
    for (i = 0; i < trials; i++) {
        int64_t t0 = now_ns();
        int rc = fl_acquire_ex(l, timeout, 1, 0.05);
        double w = (double)(now_ns() - t0) / 1e3;
        if (rc == FL_ETIMEOUT) {
            timeouts++;
            printf(" -%.1f", w); /* negative: timed out after that long */
        } else {
            check(rc, "writer acquire");
            printf(" %.1f", w);
            sleep_us(1000); /* write something */
            fl_release(l, 0);
        }
        sleep_us(20000); /* let the readers pile up again */
    }
    printf("\ntimeouts %d\n", timeouts);
    fflush(stdout);
    fl_lock_free(l);
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "serve") == 0)
        serve(argv[2]);
    else if (argc == 6 && strcmp(argv[1], "contend") == 0)
        contend(argv[2], argv[3], argv[4], atoi(argv[5]));
    else if (argc == 5 && strcmp(argv[1], "rwreader") == 0)
        rwreader(argv[2], atol(argv[3]), atoi(argv[4]));
    else if (argc == 6 && strcmp(argv[1], "rwwriter") == 0)
        rwwriter(argv[2], atoi(argv[3]), atoi(argv[4]), atof(argv[5]));
    else
        die("usage: mx_c serve DIR | contend CASE LOCK DATA ITERS | rwreader LOCK HOLD_US GATE "
            "| rwwriter LOCK TRIALS GATE TIMEOUT");
    return 0;
}
