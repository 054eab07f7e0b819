/*
 * The demo's C writer: appends <count> lines to <file> under the lock file
 * <lockfile>, one read-modify-write per line.
 *
 *   writer <file> <lockfile> <count> <tag> [--soft] [--no-lock]
 *
 * Every writer of the demo, whatever its language, follows the protocol
 * described in demo/README.md. Each line is "<tag> <seq> <tag>/<seq>/<text>"
 * for seq = 1..count. The update is deliberately fragile: the whole file is
 * read, then, after a pause, written back with the new line in two write()
 * calls with another pause in between. Two writers inside that window at
 * once lose a line (both rewrite the same old content) or tear one (their
 * halves interleave). Only the lock keeps the file intact; --no-lock shows
 * what happens without it.
 */
#define _DEFAULT_SOURCE

#include <filelock.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define TEXT "its-over-anakin-i-have-the-high-ground"

static void pause_us(long us) {
    struct timespec ts;
    ts.tv_sec = us / 1000000;
    ts.tv_nsec = (us % 1000000) * 1000;
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static int pwrite_all(int fd, const char *buf, size_t n, off_t off) {
    while (n > 0) {
        ssize_t w = pwrite(fd, buf, n, off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        buf += w;
        n -= (size_t)w;
        off += w;
    }
    return 0;
}

/* Reads the whole file into a buffer with room for `extra` more bytes. */
static char *read_whole(int fd, size_t *len, size_t extra) {
    struct stat st;
    size_t size, n = 0;
    char *buf;
    if (fstat(fd, &st) != 0)
        return NULL;
    size = (size_t)st.st_size;
    if (!(buf = malloc(size + extra + 1)))
        return NULL;
    while (n < size) {
        ssize_t r = pread(fd, buf + n, size - n, (off_t)n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            free(buf);
            return NULL;
        }
        if (r == 0) /* shrank meanwhile (only possible without the lock) */
            break;
        n += (size_t)r;
    }
    *len = n;
    return buf;
}

static int usage(void) {
    fprintf(stderr, "usage: writer <file> <lockfile> <count> <tag> [--soft] [--no-lock]\n");
    return 2;
}

int main(int argc, char **argv) {
    const char *file, *lockfile, *tag;
    int soft = 0, nolock = 0, i, fd, rc;
    long count, seq;
    char *end;
    fl_lock *lock = NULL;
    fl_options opts = FL_OPTIONS_INIT;

    if (argc < 5)
        return usage();
    file = argv[1];
    lockfile = argv[2];
    tag = argv[4];
    count = strtol(argv[3], &end, 10);
    if (*argv[3] == '\0' || *end != '\0' || count < 0 || count > 1000000 || *tag == '\0' ||
        strpbrk(tag, " /\n"))
        return usage();
    for (i = 5; i < argc; i++) {
        if (strcmp(argv[i], "--soft") == 0)
            soft = 1;
        else if (strcmp(argv[i], "--no-lock") == 0)
            nolock = 1;
        else
            return usage();
    }

    /* A demo must end: give up (and fail) after 30 s instead of hanging. */
    opts.kind = soft ? FL_SOFT : FL_KERNEL;
    opts.timeout = 30.0;
    if (!nolock && fl_lock_new(&lock, lockfile, &opts) != 0) {
        fprintf(stderr, "writer %s: %s\n", tag, fl_last_error());
        return 1;
    }
    srand((unsigned)getpid());

    for (seq = 1; seq <= count; seq++) {
        char line[512];
        size_t len = 0, cut;
        char *buf;
        int n = snprintf(line, sizeof line, "%s %ld %s/%ld/%s\n", tag, seq, tag, seq, TEXT);
        if (n < 0 || (size_t)n >= sizeof line) {
            fprintf(stderr, "writer %s: tag too long\n", tag);
            return 2;
        }
        if (lock && fl_acquire(lock) != 0) {
            fprintf(stderr, "writer %s: %s\n", tag, fl_last_error());
            return 1;
        }
        /* --- critical section: read, think, write back in two pieces --- */
        fd = open(file, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
        if (fd < 0 || !(buf = read_whole(fd, &len, (size_t)n))) {
            fprintf(stderr, "writer %s: %s: %s\n", tag, file, strerror(errno));
            return 1;
        }
        memcpy(buf + len, line, (size_t)n);
        len += (size_t)n;
        pause_us(500);
        cut = len - (size_t)n / 2; /* in the middle of the new line */
        rc = pwrite_all(fd, buf, cut, 0);
        if (rc == 0) {
            pause_us(200);
            rc = pwrite_all(fd, buf + cut, len - cut, (off_t)cut);
        }
        if (rc != 0) {
            fprintf(stderr, "writer %s: write %s: %s\n", tag, file, strerror(errno));
            return 1;
        }
        free(buf);
        close(fd);
        /* --- end of critical section --- */
        if (lock && fl_release(lock, 0) != 0) {
            fprintf(stderr, "writer %s: %s\n", tag, fl_last_error());
            return 1;
        }
        /* Outside the lock, so that the writers take turns. */
        pause_us(1000 + rand() % 3000);
    }
    fl_lock_free(lock);
    return 0;
}
