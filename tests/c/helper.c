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
 */
#define _GNU_SOURCE
#include "filelock.h"

#include <errno.h>
#include <fcntl.h>
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

int main(int argc, char **argv) {
    fl_lock *l;
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
