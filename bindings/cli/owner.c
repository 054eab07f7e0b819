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

#include <errno.h>
#include <stdio.h>
#include <string.h>
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

int cli_lookup_owner(const char *path, int soft, fl_owner *out) {
    fl_options opts = FL_OPTIONS_INIT;
    fl_lock *lock;
    int rc;
    opts.kind = soft ? FL_SOFT : FL_KERNEL;
    rc = fl_lock_new(&lock, path, &opts);
    if (rc != 0)
        return rc;
    rc = fl_get_owner(lock, out);
    fl_lock_free(lock); /* never acquired: frees only */
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
