/*
 * fl_test_helper: a second process for the cross-process tests.
 *
 *   hold  PATH KIND MS        acquire (waiting forever), print "held", keep the
 *                             lock MS milliseconds (MS < 0: until stdin closes),
 *                             release, print "released"
 *   try   PATH KIND           one attempt: exit 0 if won (then release),
 *                             3 if held elsewhere, 4 on any other error
 *   count PATH KIND FILE N    N times: acquire, read the integer in FILE, yield,
 *                             write it back plus one, release
 *
 * KIND is "kernel" or "soft". Exit 2 means bad usage or an unexpected error.
 *
 * Read/write and owner-record commands (MODE is shared, exclusive,
 * rw-shared or rw-exclusive; the rw- forms set fl_options.read_write):
 *
 *   rhold  PATH MODE MS       like hold, in that mode
 *   rtry   PATH MODE          like try, in that mode
 *   reader PATH MS            read_write reader: shared acquire, hold MS ms,
 *                             release, again at once, until stdin has data
 *                             or closes; prints "reading" after the first
 *                             hold and the number of holds at the end
 *   race   PATH WITNESS MS T  soft lock: wait for a byte on stdin, acquire
 *                             with timeout T s; if won, create WITNESS with
 *                             O_EXCL (proof that nobody else holds), hold MS
 *                             ms, remove it, release and print
 *                             "won <t0> <t1>" (CLOCK_MONOTONIC ns); print
 *                             "lost" (exit 3) or "clash" (exit 5)
 */
#define _GNU_SOURCE
#include "filelock.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static fl_lock *open_lock(const char *path, const char *kind) {
    fl_options o = FL_OPTIONS_INIT;
    fl_lock *l;
    o.kind = strcmp(kind, "soft") == 0 ? FL_SOFT : FL_KERNEL;
    if (fl_lock_new(&l, path, &o) != 0) {
        fprintf(stderr, "helper: %s\n", fl_last_error());
        exit(2);
    }
    return l;
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static int bump(const char *file) {
    char buf[64];
    ssize_t n;
    long v;
    int fd = open(file, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    n = pread(fd, buf, sizeof buf - 1, 0);
    if (n < 0) {
        close(fd);
        return -1;
    }
    buf[n] = '\0';
    v = strtol(buf, NULL, 10);
    /* Widen the window between read and write so that a lock that does not
     * exclude shows up as lost increments. */
    sched_yield();
    n = snprintf(buf, sizeof buf, "%ld\n", v + 1);
    if (ftruncate(fd, 0) != 0 || pwrite(fd, buf, (size_t)n, 0) != n) {
        close(fd);
        return -1;
    }
    return close(fd);
}

/* ---- read/write and owner-record commands ------------------------------ */

static fl_lock *open_mode(const char *path, const char *mode, int *shared) {
    fl_options o = FL_OPTIONS_INIT;
    fl_lock *l;
    if (strncmp(mode, "rw-", 3) == 0) {
        o.read_write = 1;
        mode += 3;
    }
    if (strcmp(mode, "shared") == 0)
        *shared = 1;
    else if (strcmp(mode, "exclusive") == 0)
        *shared = 0;
    else
        exit(2);
    if (fl_lock_new(&l, path, &o) != 0) {
        fprintf(stderr, "helper: %s\n", fl_last_error());
        exit(2);
    }
    return l;
}

static int acquire_in(fl_lock *l, int shared, double timeout) {
    return shared ? fl_acquire_shared(l, timeout, 1, 0.05) : fl_acquire_ex(l, timeout, 1, 0.05);
}

static void say(const char *text) {
    printf("%s\n", text);
    fflush(stdout);
}

/* 1 when stdin has data or was closed (the test's "stop"). */
static int stdin_says_stop(void) {
    struct pollfd p = {0, POLLIN, 0};
    return poll(&p, 1, 0) > 0;
}

static long long mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int cmd_rhold(const char *path, const char *mode, long ms) {
    int shared;
    fl_lock *l = open_mode(path, mode, &shared);
    if (acquire_in(l, shared, -1) != 0) {
        fprintf(stderr, "helper: %s\n", fl_last_error());
        return 2;
    }
    say("held");
    if (ms >= 0) {
        sleep_ms(ms);
    } else {
        char c;
        while (read(0, &c, 1) > 0)
            ;
    }
    if (fl_release(l, 0) != 0)
        return 2;
    say("released");
    fl_lock_free(l);
    return 0;
}

static int cmd_rtry(const char *path, const char *mode) {
    int shared, rc;
    fl_lock *l = open_mode(path, mode, &shared);
    rc = acquire_in(l, shared, 0);
    if (rc == 0)
        fl_release(l, 0);
    fl_lock_free(l);
    return rc == 0 ? 0 : rc == FL_ETIMEOUT ? 3 : 4;
}

static int cmd_reader(const char *path, long ms) {
    int shared;
    long n = 0;
    fl_lock *l = open_mode(path, "rw-shared", &shared);
    while (!stdin_says_stop()) {
        /* Re-acquire at once, so that two readers keep the lock read-held
         * all the time: only the gate lets a writer in. */
        if (fl_acquire_shared(l, 60, 1, 0.05) != 0) {
            fprintf(stderr, "helper: %s\n", fl_last_error());
            return 2;
        }
        if (n++ == 0)
            say("reading");
        sleep_ms(ms);
        if (fl_release(l, 0) != 0)
            return 2;
    }
    printf("%ld\n", n);
    fflush(stdout);
    fl_lock_free(l);
    return 0;
}

static int cmd_race(const char *path, const char *witness, long ms, double timeout) {
    fl_options o = FL_OPTIONS_INIT;
    fl_lock *l;
    long long t0, t1;
    char c;
    int rc, fd;
    o.kind = FL_SOFT;
    if (fl_lock_new(&l, path, &o) != 0)
        return 2;
    if (read(0, &c, 1) != 1) /* the starting shot */
        return 2;
    rc = fl_acquire_ex(l, timeout, 1, 0.01);
    if (rc == FL_ETIMEOUT) {
        say("lost");
        fl_lock_free(l);
        return 3;
    }
    if (rc != 0) {
        fprintf(stderr, "helper: %s\n", fl_last_error());
        return 2;
    }
    t0 = mono_ns();
    fd = open(witness, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        say(errno == EEXIST ? "clash" : "witness error");
        return errno == EEXIST ? 5 : 2;
    }
    close(fd);
    sleep_ms(ms);
    unlink(witness);
    t1 = mono_ns();
    if (fl_release(l, 0) != 0)
        return 2;
    printf("won %lld %lld\n", t0, t1);
    fflush(stdout);
    fl_lock_free(l);
    return 0;
}

int main(int argc, char **argv) {
    fl_lock *l;
    if (argc == 5 && strcmp(argv[1], "rhold") == 0)
        return cmd_rhold(argv[2], argv[3], strtol(argv[4], NULL, 10));
    if (argc == 4 && strcmp(argv[1], "rtry") == 0)
        return cmd_rtry(argv[2], argv[3]);
    if (argc == 4 && strcmp(argv[1], "reader") == 0)
        return cmd_reader(argv[2], strtol(argv[3], NULL, 10));
    if (argc == 6 && strcmp(argv[1], "race") == 0)
        return cmd_race(argv[2], argv[3], strtol(argv[4], NULL, 10), strtod(argv[5], NULL));
    if (argc < 4)
        return 2;
    l = open_lock(argv[2], argv[3]);
    if (strcmp(argv[1], "hold") == 0 && argc == 5) {
        long ms = strtol(argv[4], NULL, 10);
        if (fl_acquire_ex(l, -1, 1, 0.05) != 0) {
            fprintf(stderr, "helper: %s\n", fl_last_error());
            return 2;
        }
        printf("held\n");
        fflush(stdout);
        if (ms >= 0) {
            sleep_ms(ms);
        } else {
            char c;
            while (read(0, &c, 1) > 0)
                ;
        }
        if (fl_release(l, 0) != 0)
            return 2;
        printf("released\n");
        fflush(stdout);
        fl_lock_free(l);
        return 0;
    }
    if (strcmp(argv[1], "try") == 0 && argc == 4) {
        int rc = fl_acquire_ex(l, 0, 1, 0.05);
        if (rc == 0) {
            fl_release(l, 0);
            fl_lock_free(l);
            return 0;
        }
        fl_lock_free(l);
        return rc == FL_ETIMEOUT ? 3 : 4;
    }
    if (strcmp(argv[1], "count") == 0 && argc == 6) {
        long i, n = strtol(argv[5], NULL, 10);
        for (i = 0; i < n; i++) {
            if (fl_acquire_ex(l, 60, 1, 0.05) != 0) {
                fprintf(stderr, "helper: %s\n", fl_last_error());
                return 2;
            }
            if (bump(argv[4]) != 0)
                return 2;
            if (fl_release(l, 0) != 0)
                return 2;
        }
        fl_lock_free(l);
        return 0;
    }
    return 2;
}
