/*
 * Bad-input runner, C edition: runs one case of bad_inputs.tsv against the
 * core (the static library, for the fl__sys fault-injection seam).
 *
 *   bad_runner <table.tsv> <case id> <lock path in hex> <warm-up lock path>
 *
 * Output (read by bad_inputs.py): "FD0 <n>" (descriptors before), then
 * for each of three repetitions "RUN <i> <OK|CODE@STEP> <descriptors after>",
 * and "MSG <message>" for the first failure. The path is passed in hex so
 * that it may hold any byte, NUL included (fl_lock_new_n).
 */
#define _POSIX_C_SOURCE 200809L

#include "internal.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REPEAT 3

static char path[8192];
static size_t path_len;
static fl_lock *handles[2];
static char msg[1024];

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
    return n - 1;
}

static int fake_flock(int fd, int op) {
    (void)fd;
    (void)op;
    errno = ENOSYS;
    return -1;
}

/* Reads "k=v" from a comma-separated option list; 1 if found. */
static int opt(const char *opts, const char *key, char *val, size_t cap) {
    size_t klen = strlen(key);
    const char *p = opts;
    while (p && *p) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n > klen && strncmp(p, key, klen) == 0 && p[klen] == '=') {
            size_t vl = n - klen - 1;
            if (vl >= cap)
                vl = cap - 1;
            memcpy(val, p + klen + 1, vl);
            val[vl] = '\0';
            return 1;
        }
        p = end ? end + 1 : NULL;
    }
    return 0;
}

static double num(const char *s) {
    if (strcmp(s, "nan") == 0)
        return NAN;
    if (strcmp(s, "inf") == 0)
        return INFINITY;
    if (strcmp(s, "-inf") == 0)
        return -INFINITY;
    return strtod(s, NULL);
}

static void *release_thread(void *arg) {
    fl_release((fl_lock *)arg, 0);
    return NULL;
}

/* Runs one step; 0, a negative core code, or 1 for a failed assertion. */
static int step(const char *tok, int kind) {
    char name[64], val[64];
    const char *opts;
    int h = 0, rc;
    if (strncmp(tok, "b.", 2) == 0) {
        h = 1;
        tok += 2;
    }
    opts = strchr(tok, ':');
    snprintf(name, sizeof name, "%.*s", (int)(opts ? (size_t)(opts - tok) : strlen(tok)), tok);
    if (opts)
        opts++;
    if (strcmp(name, "new") == 0) {
        fl_options o = FL_OPTIONS_INIT;
        o.kind = kind;
        if (opt(opts, "timeout", val, sizeof val))
            o.timeout = num(val);
        if (opt(opts, "poll", val, sizeof val))
            o.poll_interval = num(val);
        if (opt(opts, "mode", val, sizeof val))
            o.mode = atoi(val);
        if (opt(opts, "fallback", val, sizeof val))
            o.soft_fallback = atoi(val);
        return fl_lock_new_n(&handles[h], path, path_len, &o);
    }
    if (strcmp(name, "acq") == 0) {
        double timeout = 1.0, poll = 0.05;
        int blocking = 1;
        if (opt(opts, "timeout", val, sizeof val))
            timeout = num(val);
        if (opt(opts, "poll", val, sizeof val))
            poll = num(val);
        if (opt(opts, "blocking", val, sizeof val))
            blocking = atoi(val);
        return fl_acquire_ex(handles[h], timeout, blocking, poll);
    }
    if (strcmp(name, "rel") == 0)
        return fl_release(handles[h], 0);
    if (strcmp(name, "relf") == 0)
        return fl_release(handles[h], 1);
    if (strcmp(name, "relthread") == 0) {
        pthread_t t;
        if (pthread_create(&t, NULL, release_thread, handles[0]) != 0)
            return 1;
        pthread_join(t, NULL);
        return 0;
    }
    if (strcmp(name, "free") == 0) {
        fl_lock_free(handles[h]);
        handles[h] = NULL;
        return 0;
    }
    if (strcmp(name, "noflock") == 0) {
        fl__sys.flock = fake_flock;
        return 0;
    }
    if (strcmp(name, "assert") == 0) {
        if (opt(opts, "locked", val, sizeof val))
            rc = fl_is_locked(handles[0]) == atoi(val);
        else if (opt(opts, "counter", val, sizeof val))
            rc = fl_lock_counter(handles[0]) == atoi(val);
        else if (opt(opts, "kind", val, sizeof val))
            rc = (fl_lock_kind(handles[0]) == FL_SOFT) == (strcmp(val, "soft") == 0);
        else
            rc = 0;
        if (!rc)
            snprintf(msg, sizeof msg, "assertion %s failed", tok);
        return rc ? 0 : 1;
    }
    fprintf(stderr, "bad_runner: unknown step '%s'\n", tok);
    exit(2);
}

static void run(char *steps, int kind, char *result, size_t cap) {
    char *save = NULL, *tok;
    int i = 0, rc = 0;
    snprintf(result, cap, "OK");
    for (tok = strtok_r(steps, " ", &save); tok; tok = strtok_r(NULL, " ", &save), i++) {
        rc = step(tok, kind);
        if (rc != 0) {
            if (rc < 0 && !msg[0])
                snprintf(msg, sizeof msg, "%s", fl_last_error());
            snprintf(result, cap, "%s@%d", rc > 0 ? "ASSERT" : fl_err_name(rc), i);
            break;
        }
    }
    /* Clean up whatever the steps left: force release and free. */
    for (i = 0; i < 2; i++) {
        if (handles[i]) {
            fl_release(handles[i], 1);
            fl_lock_free(handles[i]);
            handles[i] = NULL;
        }
    }
    fl__sys_reset();
}

static int hexval(int c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

int main(int argc, char **argv) {
    char line[4096], steps[2048] = "", result[128];
    int kind = FL_KERNEL, found = 0, r, fd0;
    size_t i;
    FILE *f;
    fl_lock *w;
    if (argc != 5) {
        fprintf(stderr, "usage: bad_runner <table> <case> <hexpath> <warm-up path>\n");
        return 2;
    }
    if (!(f = fopen(argv[1], "r")))
        return 2;
    while (fgets(line, sizeof line, f)) {
        char *cols[7] = {0}, *save = NULL, *p;
        int n = 0;
        line[strcspn(line, "\n")] = '\0';
        if (line[0] == '#' || !line[0])
            continue;
        for (p = strtok_r(line, "\t", &save); p && n < 7; p = strtok_r(NULL, "\t", &save))
            cols[n++] = p;
        if (n >= 6 && strcmp(cols[0], argv[2]) == 0) {
            kind = strcmp(cols[1], "soft") == 0 ? FL_SOFT : FL_KERNEL;
            snprintf(steps, sizeof steps, "%s", cols[4]);
            found = 1;
        }
    }
    fclose(f);
    if (!found) {
        fprintf(stderr, "bad_runner: no case '%s'\n", argv[2]);
        return 2;
    }
    for (i = 0; argv[3][2 * i] && argv[3][2 * i + 1] && i < sizeof path - 1; i++)
        path[i] = (char)(hexval(argv[3][2 * i]) * 16 + hexval(argv[3][2 * i + 1]));
    path_len = i;
    path[i] = '\0';

    /* Warm-up, so that what the core keeps for the whole process is not
     * counted as a leak: a timed-out wait, kernel and soft, leaves one
     * inotify instance in the core's pool (posix.c, pool_give). */
    for (i = 0; i < 2; i++) {
        fl_options o = FL_OPTIONS_INIT;
        fl_lock *w2;
        char wpath[4200];
        o.kind = i ? FL_SOFT : FL_KERNEL;
        snprintf(wpath, sizeof wpath, "%s%s", argv[4], i ? ".soft" : "");
        if (fl_lock_new(&w, wpath, &o) == 0 && fl_lock_new(&w2, wpath, &o) == 0) {
            fl_acquire_ex(w, 0, 0, 0.05);
            fl_acquire_ex(w2, 0.03, 1, 0.01);
            fl_release(w, 0);
            fl_lock_free(w2);
        }
        fl_lock_free(w);
    }
    fd0 = count_fds();
    printf("FD0 %d\n", fd0);
    for (r = 0; r < REPEAT; r++) {
        char copy[2048];
        snprintf(copy, sizeof copy, "%s", steps);
        run(copy, kind, result, sizeof result);
        printf("RUN %d %s %d\n", r, result, count_fds());
    }
    if (msg[0])
        printf("MSG %s\n", msg);
    return 0;
}
