/*
 * Who holds a lock, for --owner and --verbose. The library finds the holder
 * (fl_get_owner: /proc/locks for the kernel lock, the owner record for the
 * soft marker); this file only adapts the descriptor form and prints the
 * answer. A soft marker may have been written by anybody, so nothing read
 * from it reaches the terminal unfiltered.
 */
#define _GNU_SOURCE
#include "cli.h"

#include <filelock.h>

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void cli_clean(char *dst, size_t size, const char *src) {
    size_t i;
    if (size == 0)
        return;
    for (i = 0; i + 1 < size && src[i] != '\n' && src[i] != '\0'; i++) {
        unsigned char c = (unsigned char)src[i];
        dst[i] = (c > 0x20 && c < 0x7f) ? (char)c : '?';
    }
    dst[i] = '\0';
}

/* 1 if the /proc/<pid>/fdinfo text shows a lock on that descriptor. */
static int fd_has_lock(long pid, const char *fd) {
    char p[384], buf[4096];
    size_t n;
    FILE *f;
    snprintf(p, sizeof p, "/proc/%ld/fdinfo/%.256s", pid, fd);
    if (!(f = fopen(p, "re")))
        return 0;
    n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    return strncmp(buf, "lock:", 5) == 0 || strstr(buf, "\nlock:") != NULL;
}

/* When the process started (clock ticks since boot), or ~0 if unknown. */
static unsigned long long start_time(long pid) {
    char p[64], buf[1024], *q;
    unsigned long long t = ~0ULL;
    size_t n;
    int field;
    FILE *f;
    snprintf(p, sizeof p, "/proc/%ld/stat", pid);
    if (!(f = fopen(p, "re")))
        return t;
    n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* Fields are counted after the command name's last ')'; 22 is the start. */
    if (!(q = strrchr(buf, ')')))
        return t;
    for (field = 2; q && field < 22; field++)
        q = strchr(q + 1, ' ');
    if (q)
        t = strtoull(q + 1, NULL, 10);
    return t;
}

/* A live process holding a kernel lock on the file st describes: one with a
 * descriptor on it that carries the lock (/proc/<pid>/fdinfo, Linux 3.8+);
 * of several (the command and its children share the descriptor), the one
 * that started first. Only the processes we may inspect are seen. Returns
 * the pid or -1. */
static long find_live_holder(const struct stat *st) {
    DIR *proc = opendir("/proc"), *fds;
    struct dirent *pe, *fe;
    long found = -1, self = (long)getpid();
    unsigned long long found_start = ~0ULL;
    if (!proc)
        return -1;
    while ((pe = readdir(proc)) != NULL) {
        char dir[64];
        long pid = atol(pe->d_name);
        if (pe->d_name[0] < '1' || pe->d_name[0] > '9' || pid == self)
            continue;
        snprintf(dir, sizeof dir, "/proc/%ld/fd", pid);
        if (!(fds = opendir(dir)))
            continue;
        while ((fe = readdir(fds)) != NULL) {
            char link[384];
            struct stat fst;
            if (fe->d_name[0] == '.')
                continue;
            snprintf(link, sizeof link, "%s/%.256s", dir, fe->d_name);
            if (stat(link, &fst) == 0 && fst.st_dev == st->st_dev && fst.st_ino == st->st_ino &&
                fd_has_lock(pid, fe->d_name)) {
                unsigned long long t = start_time(pid);
                if (found < 0 || t < found_start) {
                    found = pid;
                    found_start = t;
                }
                break;
            }
        }
        closedir(fds);
    }
    closedir(proc);
    return found;
}

int cli_lookup_owner(const char *path, int soft, fl_owner *out) {
    fl_options opts = FL_OPTIONS_INIT;
    fl_lock *lock;
    struct stat st;
    int rc;
    opts.kind = soft ? FL_SOFT : FL_KERNEL;
    rc = fl_lock_new(&lock, path, &opts);
    if (rc != 0)
        return rc;
    rc = fl_get_owner(lock, out);
    fl_lock_free(lock); /* never acquired: frees only */
    /* /proc/locks names the process that called flock(2), which may be gone
     * while a process that inherited the descriptor holds the lock (the
     * command of a filelock or flock(1) that was killed; the shell of
     * "exec 9>f; filelock 9"): name a live holder instead, or none. */
    if (rc == 0 && !soft && out->pid > 0 && kill((pid_t)out->pid, 0) != 0 && errno == ESRCH) {
        out->pid = lstat(path, &st) == 0 ? find_live_holder(&st) : -1;
        out->start_token[0] = '\0';
        out->this_process = 0;
    }
    return rc;
}

int cli_lookup_fd_owner(int fd, fl_owner *out) {
    char link[64], path[4096];
    ssize_t n;
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    n = readlink(link, path, sizeof path - 1);
    if (n <= 0 || path[0] != '/')
        return FL_ENOTSUP; /* no /proc, or not a file with a path */
    path[n] = '\0';
    return cli_lookup_owner(path, 0, out);
}

/* The holder's command name when it runs on this host ("" otherwise). */
static void command_name(const fl_owner *o, char *buf, size_t size) {
    char here[256], procpath[64], comm[64];
    FILE *f;
    buf[0] = '\0';
    if (gethostname(here, sizeof here) != 0)
        return;
    here[sizeof here - 1] = '\0';
    if (o->pid <= 0 || strcmp(o->hostname, here) != 0)
        return;
    snprintf(procpath, sizeof procpath, "/proc/%ld/comm", o->pid);
    f = fopen(procpath, "r");
    if (!f)
        return;
    if (fgets(comm, sizeof comm, f)) {
        char clean[64];
        cli_clean(clean, sizeof clean, comm);
        snprintf(buf, size, " (%s)", clean);
    }
    fclose(f);
}

void cli_describe_owner(const char *what, int rc, const fl_owner *o) {
    char host[256], note[96];
    if (rc != 0 || o->pid <= 0) {
        fprintf(stderr, "%s: %s is held (holder unknown)\n", cli_prog, what);
        return;
    }
    cli_clean(host, sizeof host, o->hostname);
    command_name(o, note, sizeof note);
    fprintf(stderr, "%s: %s is held by pid %ld%s on host %s\n", cli_prog, what, o->pid, note,
            host[0] ? host : "(unknown)");
}
