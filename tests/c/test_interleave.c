/*
 * Deterministic interleavings of the soft lock's protocol
 * (docs/soft-lock-protocol.md), forced through the system-call seam.
 *
 * Two actors, A and B, are forked processes running the real library. Each
 * counts the file-system calls it makes through the seam (create, open,
 * lstat, fstat, write, fchmod, rename, unlink, kill, close) during acquire
 * and release; at its chosen step it stops *before* the call, reports where
 * it is, and waits for the test to resume it or to SIGKILL it (its files
 * stay exactly as a crash at that point leaves them). Every step of A is
 * crossed with every step of B (B stopped at step j, or run to the end),
 * then A is resumed or killed, then B is resumed:
 *
 *   - setup "stale": the lock path holds the marker of a dead process, so
 *     both actors are reclaimers (and releasers once they win);
 *   - setup "free": A is an acquirer (its create, its write, its hold, its
 *     release) and B a waiter and reclaimer.
 *
 * Invariants checked at every point:
 *   1. never two holders: a holder creates a sentinel with O_EXCL inside
 *      its critical section, and reports "D" if it already exists;
 *   2. a live holder's marker is never removed or replaced: a holder checks
 *      on winning and again before releasing that the marker at the path
 *      is its own (by record and by identity), else reports "X";
 *   3. recovery: after the actors end (released, timed out or killed), a
 *      fresh waiter wins within 10 s (a crash at any step leaves a state
 *      the next waiter resolves; 2 s is the grace of a record-less file,
 *      the rest is room for a loaded machine).
 * No RENAME_EXCHANGE is used anywhere in the protocol, so there is no
 * "with/without" variant to run: the one path is the one every file system
 * has (rename replacing, O_EXCL create, unlink).
 */
#define _GNU_SOURCE
#include "soft.h"
#include "testutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* Steps enumerated per actor: more than a reclaim plus a release makes. */
#define MAX_STEP 30

/* ---- the actor (a forked child) ------------------------------------------ */

static int g_step, g_pause_at, g_ev, g_ctl, g_counting;
/* Added to every st_dev the actor sees: a second client of a network file
 * system, whose mount has its own device number for the same files. */
static dev_t g_dev_offset;
static fl__syscalls g_real;

/* The lease setup (see "Leases" below); all 0 for the plain soft lock.
 * Set by the test before it forks an actor. */
static double g_lease_d, g_lease_i; /* lease_duration, heartbeat_interval */
static int g_lease_holder;          /* this actor is A: its heartbeat's refresh is counted */
static int g_hold_after_refresh;    /* A holds on after that refresh ("F") until told */
/* In the actor: */
static pthread_t g_main;    /* the actor's main thread (not the heartbeat) */
static int g_hb_armed;      /* atomic: count the heartbeat's next refresh */
static int g_hb_state;      /* atomic: 0 before that refresh, 1 in it, 2 after it */
static int g_hb_claim_gone; /* the heartbeat removed its claim (only it touches this) */
static int g_hb_busy;       /* atomic: the heartbeat found a claim on its marker */
static int g_releasing;     /* the main thread is in fl_release */
static int g_wait_told;     /* "W" reported */
static int g_attempts;      /* exclusive creates of the lock path (acquire attempts) */
static long g_took_pid;     /* the live holder whose expired marker we replaced */
static int g_unlinked_mine; /* our release removed our own marker */
static const char *g_path, *g_sentinel;
static struct stat g_mine; /* our marker, once won */

static int is_main(void) { return !g_lease_d || pthread_equal(pthread_self(), g_main); }

/* A's first refresh after the test armed it starts (the heartbeat's claim
 * create, or its lstat of the marker for a refresh without a claim); the
 * later ones are never counted. */
static void hb_refresh_starts(void) {
    int zero = 0;
    if (!is_main() && __atomic_load_n(&g_hb_armed, __ATOMIC_SEQ_CST))
        __atomic_compare_exchange_n(&g_hb_state, &zero, 1, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
}

static int counting(void) {
    if (is_main())
        return g_counting;
    /* Another thread: the heartbeat (or a compromise callback). Only A's
     * first refresh after the test armed it is counted: the later ones
     * run at the heartbeat's pace, which no test controls. */
    return __atomic_load_n(&g_hb_state, __ATOMIC_SEQ_CST) == 1;
}

static void step(const char *what, const char *path) {
    char c;
    int n;
    if (!counting())
        return;
    n = __atomic_add_fetch(&g_step, 1, __ATOMIC_SEQ_CST);
    if (n != g_pause_at)
        return;
    dprintf(g_ev, "P %d %s %s %d\n", n, what, path ? path : "", g_attempts);
    if (read(g_ctl, &c, 1) != 1)
        _exit(5);
}

static int ends_with(const char *s, const char *tail) {
    size_t n = strlen(s), t = strlen(tail);
    return n >= t && strcmp(s + n - t, tail) == 0;
}

/* The pid a marker or claim names (protocol 1 or 2 record), or -1. */
static long record_pid(const char *path) {
    char buf[512];
    const char *p;
    long pid = -1;
    if (fl_read_file(path, buf, sizeof buf) <= 0)
        return -1;
    if (strncmp(buf, "filelock/2\n", 11) == 0) {
        p = strstr(buf, "\npid=");
        return p ? strtol(p + 5, NULL, 10) : -1;
    }
    return sscanf(buf, "%ld", &pid) == 1 ? pid : -1;
}

/* The file system's "now": the modification time of a file just created. */
static double fs_now(void) {
    char probe[4200];
    struct stat st;
    int fd;
    snprintf(probe, sizeof probe, "%s.probe.%ld", g_path ? g_path : P("x.lock"), (long)getpid());
    fd = open(probe, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || fstat(fd, &st) != 0)
        return -1;
    close(fd);
    unlink(probe);
    return (double)st.st_mtim.tv_sec + (double)st.st_mtim.tv_nsec / 1e9;
}

static double mtime_of(const struct stat *st) {
    return (double)st->st_mtim.tv_sec + (double)st->st_mtim.tv_nsec / 1e9;
}

static int w_open(const char *p, int f, mode_t m) {
    int fd;
    if (g_lease_d && (f & O_EXCL)) {
        if (is_main() && strcmp(p, g_path) == 0)
            g_attempts++;
        if (ends_with(p, ".claim"))
            hb_refresh_starts();
    }
    step((f & O_EXCL) ? "create" : "open", p);
    fd = g_real.open(p, f, m);
    /* A refresh that finds a taker's claim ends there (EBUSY). */
    if (fd < 0 && errno == EEXIST && g_lease_d && !is_main() && ends_with(p, ".claim")) {
        __atomic_store_n(&g_hb_busy, 1, __ATOMIC_SEQ_CST);
        errno = EEXIST;
    }
    /* A release waiting for a claim on its marker (a taker at work) tells
     * the test, which then lets the taker go on. */
    if (fd < 0 && errno == EEXIST && g_lease_d && is_main() && g_releasing &&
        ends_with(p, ".claim") && !g_wait_told) {
        g_wait_told = 1;
        dprintf(g_ev, "W %s\n", p);
        errno = EEXIST;
    }
    return fd;
}
static int w_close(int fd) {
    int rc;
    step("close", NULL);
    rc = g_real.close(fd);
    /* The refresh ends by closing its claim, after removing it. */
    if (!is_main() && g_hb_claim_gone && __atomic_load_n(&g_hb_state, __ATOMIC_SEQ_CST) == 1)
        __atomic_store_n(&g_hb_state, 2, __ATOMIC_SEQ_CST);
    return rc;
}
static int w_lstat(const char *p, struct stat *st) {
    int rc;
    if (g_lease_d && strcmp(p, g_path) == 0)
        hb_refresh_starts();
    step("lstat", p);
    rc = g_real.lstat(p, st);
    if (rc == 0)
        st->st_dev += g_dev_offset;
    return rc;
}
static int w_fstat(int fd, struct stat *st) {
    int rc;
    step("fstat", NULL);
    rc = g_real.fstat(fd, st);
    if (rc == 0)
        st->st_dev += g_dev_offset;
    return rc;
}
static ssize_t w_write(int fd, const void *b, size_t n) {
    step("write", NULL);
    return g_real.write(fd, b, n);
}
static int w_fchmod(int fd, mode_t m) {
    step("fchmod", NULL);
    return g_real.fchmod(fd, m);
}
static long sentinel_pid(void);

/* A lease taker replaces a marker: if its owner lives, the marker must
 * have expired (not refreshed for lease_duration by the file system's
 * clock). The taker holds the marker's claim here, so nothing changes it
 * between this check and the rename. */
static void check_expired(const char *b) {
    struct stat st;
    long pid;
    double age;
    if (!g_lease_d || strcmp(b, g_path) != 0 || lstat(b, &st) != 0)
        return;
    pid = record_pid(b);
    if (pid <= 0 || pid == (long)getpid() || kill((pid_t)pid, 0) != 0)
        return; /* a dead owner's: taken for that reason */
    age = fs_now() - mtime_of(&st);
    if (age < g_lease_d) {
        dprintf(g_ev, "X replaced the marker of live holder %ld, refreshed %.3fs ago (< %gs)\n",
                pid, age, g_lease_d);
        _exit(98);
    }
    g_took_pid = pid;
}

static int w_rename(const char *a, const char *b) {
    int rc;
    step("rename", a);
    check_expired(b);
    rc = g_real.rename(a, b);
    if (rc != 0)
        g_took_pid = 0;
    return rc;
}
static int w_unlink(const char *p) {
    step("unlink", p);
    if (g_lease_d && !is_main() && ends_with(p, ".claim"))
        g_hb_claim_gone = 1;
    if (g_lease_d && is_main() && g_releasing && strcmp(p, g_path) == 0) {
        /* A release removes the marker only while it is its own; its
         * critical section (the sentinel) ends just before. */
        struct stat st;
        if (lstat(p, &st) == 0 && (st.st_dev != g_mine.st_dev || st.st_ino != g_mine.st_ino)) {
            dprintf(g_ev, "X release removed a marker that is not its own (holder %ld)\n",
                    record_pid(p));
            _exit(98);
        }
        if (sentinel_pid() == (long)getpid())
            unlink(g_sentinel);
        g_unlinked_mine = 1;
    }
    return g_real.unlink(p);
}
static int w_kill(pid_t pid, int sig) {
    step("kill", NULL);
    return g_real.kill(pid, sig);
}
/* A's refresh: a touch must land on the marker still at the path (the
 * claim keeps takers out meanwhile); touching one a taker replaced would
 * renew a lost lease. */
static int w_futimens(int fd, const struct timespec t[2]) {
    struct stat mine, there;
    int rc;
    step("futimens", NULL);
    rc = g_real.futimens(fd, t);
    if (rc == 0 && g_path && fstat(fd, &mine) == 0 &&
        (lstat(g_path, &there) != 0 || there.st_dev != mine.st_dev ||
         there.st_ino != mine.st_ino)) {
        dprintf(g_ev, "X refreshed a marker that is no longer at the path\n");
        _exit(98);
    }
    return rc;
}

/* 1 if the marker at path is this process's (record and identity). */
static int marker_is_mine(const char *path, const struct stat *mine) {
    struct stat st;
    if (lstat(path, &st) != 0 || st.st_dev != mine->st_dev || st.st_ino != mine->st_ino)
        return 0;
    return record_pid(path) == (long)getpid();
}

/* The sentinel names the holder in its critical section. */
static long sentinel_pid(void) {
    char buf[64];
    long pid = -1;
    if (fl_read_file(g_sentinel, buf, sizeof buf) <= 0 || sscanf(buf, "%ld", &pid) != 1)
        return -1;
    return pid;
}

/* Enters the critical section: 0, or -1 when another holder is in it. A
 * lease taker that replaced the expired marker of a live (frozen) holder
 * supersedes it: that holder's critical section ended when its lease
 * expired (it learns so when it runs again), so the sentinel becomes ours. */
static int sentinel_enter(void) {
    char tmp[4200], rec[32];
    int fd = open(g_sentinel, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    snprintf(rec, sizeof rec, "%ld\n", (long)getpid());
    if (fd >= 0) {
        ssize_t w = write(fd, rec, strlen(rec));
        close(fd);
        return w > 0 ? 0 : -1;
    }
    if (!g_lease_d || g_took_pid <= 0 || sentinel_pid() != g_took_pid)
        return -1;
    snprintf(tmp, sizeof tmp, "%s.%ld", g_sentinel, (long)getpid());
    fl_write_file(tmp, rec);
    return rename(tmp, g_sentinel) == 0 ? 0 : -1;
}

static void actor_main(const char *path, const char *sentinel, int pause_at, double timeout, int ev,
                       int ctl) {
    fl_lock *l;
    fl_options o = FL_OPTIONS_INIT;
    int rc;
    char c;
    g_ev = ev;
    g_ctl = ctl;
    g_pause_at = pause_at;
    g_path = path;
    g_sentinel = sentinel;
    g_main = pthread_self();
    g_real = fl__sys;
    /* The seam is set before any thread of the library exists (TSan). */
    fl__sys.open = w_open;
    fl__sys.close = w_close;
    fl__sys.lstat = w_lstat;
    fl__sys.fstat = w_fstat;
    fl__sys.write = w_write;
    fl__sys.fchmod = w_fchmod;
    fl__sys.rename = w_rename;
    fl__sys.unlink = w_unlink;
    fl__sys.kill = w_kill;
    fl__sys.futimens = w_futimens;
    o.kind = FL_SOFT;
    if (g_lease_d > 0) {
        fl_options_set_lease_duration(&o, g_lease_d);
        fl_options_set_heartbeat_interval(&o, g_lease_i);
    }
    if (fl_lock_new(&l, path, &o) != 0)
        _exit(6);
    g_counting = !g_lease_holder; /* A's acquire is not enumerated: its refresh is */
    rc = fl_acquire_ex(l, timeout, 1, 0.01);
    g_counting = 0;
    if (rc != 0) {
        dprintf(ev, "T %s\n", fl_err_name(rc));
        _exit(0);
    }
    if (sentinel_enter() != 0) {
        dprintf(ev, "D\n");
        _exit(99);
    }
    if (stat(path, &g_mine) != 0 || !marker_is_mine(path, &g_mine)) {
        dprintf(ev, "X won, but the marker is not mine\n");
        _exit(98);
    }
    dprintf(ev, "H%s\n", g_took_pid > 0 ? " took" : "");
    if (read(ctl, &c, 1) != 1)
        _exit(5);
    if (!marker_is_mine(path, &g_mine)) {
        dprintf(ev, "X my marker was replaced or removed while I held the lock\n");
        _exit(98);
    }
    if (!g_lease_d) {
        unlink(sentinel);
    } else if (g_lease_holder) {
        /* A: its heartbeat's next refresh is enumerated first, then this
         * release (which waits for that refresh to end before its own
         * steps: fl__lease_stop). */
        double end = fl_mono() + 10;
        __atomic_store_n(&g_hb_armed, 1, __ATOMIC_SEQ_CST);
        while (__atomic_load_n(&g_hb_state, __ATOMIC_SEQ_CST) == 0 && fl_mono() < end)
            fl_sleep(0.001);
        if (__atomic_load_n(&g_hb_state, __ATOMIC_SEQ_CST) == 0)
            _exit(8);
        if (g_hold_after_refresh) {
            /* The refresh ends (the heartbeat goes on refreshing, not
             * counted); A holds until the test says. */
            while (__atomic_load_n(&g_hb_state, __ATOMIC_SEQ_CST) == 1 &&
                   !__atomic_load_n(&g_hb_busy, __ATOMIC_SEQ_CST) && fl_mono() < end)
                fl_sleep(0.001);
            dprintf(ev, "F\n");
            if (read(ctl, &c, 1) != 1)
                _exit(5);
        }
    }
    g_releasing = 1;
    g_counting = 1;
    rc = fl_release(l, 0);
    g_counting = 0;
    if (g_lease_d) {
        const char *e = fl_last_error();
        if (sentinel_pid() == (long)getpid())
            unlink(sentinel);
        /* The loss is told exactly when the marker was not ours to remove
         * (or the heartbeat could not refresh for a lease's length). */
        if (rc == 0 && !g_unlinked_mine) {
            dprintf(ev, "X release returned 0 without removing its marker\n");
            _exit(98);
        }
        if (rc == FL_ELOST) {
            const char *why = strstr(e, "marker-missing")   ? "marker-missing"
                              : strstr(e, "owner-changed")  ? "owner-changed"
                              : strstr(e, "refresh-failed") ? "refresh-failed"
                                                            : "?";
            if (g_unlinked_mine && strcmp(why, "refresh-failed") != 0) {
                dprintf(ev, "X release removed its marker but says %s\n", why);
                _exit(98);
            }
            dprintf(ev, "R FL_ELOST %s\n", why);
            _exit(0);
        }
    }
    dprintf(ev, "R %s\n", rc == 0 ? "OK" : fl_err_name(rc));
    _exit(0);
}

typedef struct actor {
    pid_t pid;
    int ev, ctl;
    char last[256];
    int state; /* 'P' paused, 'H' holding, 'T' timed out, 'R' released, 'K' killed */
    int waits; /* reported "W": its release waits for a claim on its marker */
    int took;  /* won by replacing the expired marker of a live holder */
} actor;

static void actor_start(actor *a, const char *path, int pause_at, double timeout) {
    int evp[2], ctlp[2];
    ck_assert(pipe(evp) == 0 && pipe(ctlp) == 0);
    a->pid = fork();
    ck_assert(a->pid >= 0);
    if (a->pid == 0) {
        close(evp[0]);
        close(ctlp[1]);
        actor_main(path, P("sentinel"), pause_at, timeout, evp[1], ctlp[0]);
        _exit(7);
    }
    close(evp[1]);
    close(ctlp[0]);
    a->ev = evp[0];
    a->ctl = ctlp[1];
    a->state = 0;
    a->waits = 0;
    a->took = 0;
}

/* Reads the actor's next event; fails the test on a broken invariant. */
static char actor_next(actor *a, const char *where) {
    if (fl_read_line(a->ev, a->last, sizeof a->last, 10) != 0) {
        int st = fl_wait_child(a->pid, 0.5);
        ck_abort_msg("%s: actor %ld said nothing (exit %d)", where, (long)a->pid, st);
    }
    if (a->last[0] == 'W') {
        /* Not a state: its release waits for another actor's claim. */
        a->waits = 1;
        return 'W';
    }
    if (strcmp(a->last, "H took") == 0)
        a->took = 1;
    ck_assert_msg(a->last[0] != 'D', "%s: two holders at once (actor %ld)", where, (long)a->pid);
    ck_assert_msg(a->last[0] != 'X', "%s: actor %ld: %s", where, (long)a->pid, a->last);
    a->state = a->last[0];
    if (getenv("FL_TEST_VERBOSE"))
        fprintf(stderr, "  %.3f %ld: %s\n", fl_mono(), (long)a->pid, a->last);
    return a->last[0];
}

static void actor_send(actor *a, char c) { ck_assert(write(a->ctl, &c, 1) == 1); }

static void actor_kill(actor *a) {
    char buf[64];
    long pid = -1;
    kill(a->pid, SIGKILL);
    fl_wait_child(a->pid, 5);
    a->state = 'K';
    /* A dead holder's critical section is over (a lease holder keeps its
     * sentinel through its refresh and release). */
    if (fl_read_file(P("sentinel"), buf, sizeof buf) > 0 && sscanf(buf, "%ld", &pid) == 1 &&
        pid == (long)a->pid)
        unlink(P("sentinel"));
}

static void actor_reap(actor *a, const char *where) {
    int st = fl_wait_child(a->pid, 10);
    ck_assert_msg(st == 0, "%s: actor exited with %d (%s)", where, st, a->last);
}

static void actor_close(actor *a) {
    close(a->ev);
    close(a->ctl);
}

/* Drives a (resumed or fresh) actor until it holds, times out, or ends;
 * a paused one is resumed (it pauses at most once). */
static char actor_run(actor *a, const char *where) {
    for (;;) {
        char e = actor_next(a, where);
        if (e == 'P') {
            actor_send(a, 'r');
            continue;
        }
        if (e == 'W')
            continue;
        return e;
    }
}

/* Sends c, then drives the actor until it holds, times out, or ends. */
static char actor_run_after(actor *a, char c, const char *where) {
    actor_send(a, c);
    return actor_run(a, where);
}

/* Releases a holder and drives it to its end. */
static void actor_release(actor *a, const char *where) {
    char e;
    actor_send(a, 'u');
    e = actor_run(a, where);
    ck_assert_msg(e == 'R', "%s: release ended with '%s'", where, a->last);
    ck_assert_msg(strcmp(a->last, "R OK") == 0, "%s: release failed: %s", where, a->last);
    actor_reap(a, where);
}

/* ---- scenarios ------------------------------------------------------------- */

/* A marker left by a process that is gone. */
static void plant_stale(const char *path) {
    char rec[512], host[256];
    pid_t pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0)
        _exit(0);
    ck_assert_int_eq(fl_wait_child(pid, 10), 0);
    ck_assert_int_eq(gethostname(host, sizeof host), 0);
    host[sizeof host - 1] = '\0';
    snprintf(rec, sizeof rec, "%ld\n%s\n", (long)pid, host);
    fl_write_file(path, rec);
}

/* The next waiter resolves whatever the actors left. */
/* The deadline only bounds a wait that would never end: a record-less
 * leftover is taken once 2 s old, and a loaded machine adds its stalls
 * (a recovery took 6.2 s of a 3.5 s timeout on 2 cores at load 22, won by
 * the attempt past the deadline; a little later it would have failed). */
static void assert_recovers(const char *path, const char *where) {
    fl_lock *l = fl_new_kind(path, FL_SOFT);
    int rc = fl_acquire_ex(l, 10, 1, 0.01);
    ck_assert_msg(rc == 0, "%s: the next waiter never won: %s (%s)", where, fl_err_name(rc),
                  fl_last_error());
    ck_assert_int_eq(fl_release(l, 0), 0);
    ck_assert_msg(!fl_exists(path), "%s: release left the marker", where);
    fl_lock_free(l);
}

/* Every case starts from an empty directory: a record-less leftover of the
 * previous case (a taker killed between its create and its write) is kept
 * for 2 s and would add the collector's steps to this case's count. */
static void empty_dir(void) {
    DIR *d = opendir(fl_tdir);
    struct dirent *e;
    ck_assert(d != NULL);
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            unlink(P(e->d_name));
    closedir(d);
}

enum { SETUP_STALE, SETUP_FREE };
/* THEN_HOLD (leases only): A resumed ends its refresh and holds on while
 * B goes on, then releases. */
/* THEN_KILL_B (leases only): B is killed where it stopped, then A resumed. */
enum { THEN_RESUME, THEN_CRASH, THEN_HOLD, THEN_KILL_B };

/* One interleaving. Returns 0 when A ended before step i (the enumeration
 * over i is complete), 2 when B stopped at step j, 1 otherwise. */
static int run_case(int setup, int i, int j, int then) {
    const char *path = P("x.lock");
    char where[160];
    actor a, b;
    char ea, eb;
    int paused_b;
    empty_dir();
    if (setup == SETUP_STALE)
        plant_stale(path);
    snprintf(where, sizeof where, "%s, A stopped at step %d, B at %d, then A %s",
             setup == SETUP_STALE ? "stale marker" : "free lock", i, j,
             then == THEN_RESUME ? "resumed" : "killed");

    if (getenv("FL_TEST_VERBOSE"))
        fprintf(stderr, "%.3f %s\n", fl_mono(), where);
    /* A runs to its step i. When A is acquiring a free lock it holds: ask
     * it to release, so that its release steps are enumerated too. */
    actor_start(&a, path, i, 0.3);
    ea = actor_next(&a, where);
    if (ea == 'H') {
        actor_send(&a, 'u');
        ea = actor_next(&a, where);
    }
    if (ea != 'P') {
        /* A finished before step i. */
        ck_assert_msg(ea == 'R' || ea == 'T', "%s: A ended with '%s'", where, a.last);
        actor_reap(&a, where);
        actor_close(&a);
        return 0;
    }

    /* B runs to its step j (or to holding / timing out). */
    actor_start(&b, path, j, 0.15);
    eb = actor_next(&b, where);
    paused_b = eb == 'P';

    /* A goes on, or dies here. */
    if (then == THEN_CRASH) {
        actor_kill(&a);
    } else {
        actor_send(&a, 'r');
        ea = actor_run(&a, where);
        if (ea == 'H') {
            ck_assert_msg(eb != 'H', "%s: A won while B holds", where);
            actor_release(&a, where);
        } else {
            ck_assert_msg(ea == 'R' || ea == 'T', "%s: A ended with '%s'", where, a.last);
            actor_reap(&a, where);
        }
    }

    /* B goes on. */
    if (eb == 'P') {
        actor_send(&b, 'r');
        eb = actor_run(&b, where);
    }
    if (eb == 'H')
        actor_release(&b, where);
    else {
        ck_assert_msg(eb == 'T' || eb == 'R', "%s: B ended with '%s'", where, b.last);
        actor_reap(&b, where);
    }
    actor_close(&a);
    actor_close(&b);
    assert_recovers(path, where);
    return paused_b ? 2 : 1;
}

/* Every step of A, against B run to its end, A then resumed or killed. */
START_TEST(stale_each_step_resume_or_crash) {
    int i, n = 0;
    for (i = 1; i <= MAX_STEP; i++) {
        if (!run_case(SETUP_STALE, i, 0, _i))
            break;
        n++;
    }
    ck_assert_msg(n >= 10 && n < MAX_STEP, "enumerated %d steps of a reclaim", n);
}
END_TEST

START_TEST(free_each_step_resume_or_crash) {
    int i, n = 0;
    for (i = 1; i <= MAX_STEP; i++) {
        if (!run_case(SETUP_FREE, i, 0, _i))
            break;
        n++;
    }
    ck_assert_msg(n >= 4 && n < MAX_STEP, "enumerated %d steps of an acquire", n);
}
END_TEST

/* Every pair (i, j): A stopped at i, B stopped at j; then A resumed (loop
 * index = i) or killed; B resumed last. */
static void pairs(int setup, int i, int then) {
    int j;
    for (j = 1; j <= MAX_STEP; j++)
        if (run_case(setup, i, j, then) != 2)
            return; /* A has no step i, or B no step j: done */
}

START_TEST(stale_pairs_resume) { pairs(SETUP_STALE, _i, THEN_RESUME); }
END_TEST

START_TEST(stale_pairs_crash) { pairs(SETUP_STALE, _i, THEN_CRASH); }
END_TEST

START_TEST(free_pairs_resume) { pairs(SETUP_FREE, _i, THEN_RESUME); }
END_TEST

/* A claim left by a taker that died (a crash between its claim and its
 * rename, the state every crash in the middle of a reclaim leaves): the
 * next waiter removes it one level up and reclaims the marker. */
START_TEST(dead_claim_is_taken_over) {
    const char *path = P("x.lock");
    char claim[4096], rec[512], host[256];
    struct stat st;
    fl__fid id;
    pid_t dead;
    plant_stale(path);
    ck_assert_int_eq(lstat(path, &st), 0);
    id.dev = (uint64_t)st.st_dev;
    id.ino = (uint64_t)st.st_ino;
    ck_assert_int_eq(fl__soft_claim_name(path, &id, claim, sizeof claim), 0);
    dead = fork();
    if (dead == 0)
        _exit(0);
    ck_assert_int_eq(fl_wait_child(dead, 10), 0);
    gethostname(host, sizeof host);
    host[sizeof host - 1] = '\0';
    snprintf(rec, sizeof rec, "%ld\n%s\n", (long)dead, host);
    fl_write_file(claim, rec);
    assert_recovers(path, "dead claim");
    ck_assert_msg(!fl_exists(claim), "the dead claim was left behind");
}
END_TEST

/* A claim held by a live process: the waiter must not touch the marker. */
START_TEST(live_claim_is_respected) {
    const char *path = P("x.lock");
    char claim[4096], rec[512], host[256];
    struct stat st;
    fl__fid id;
    fl_lock *l;
    plant_stale(path);
    ck_assert_int_eq(lstat(path, &st), 0);
    id.dev = (uint64_t)st.st_dev;
    id.ino = (uint64_t)st.st_ino;
    ck_assert_int_eq(fl__soft_claim_name(path, &id, claim, sizeof claim), 0);
    gethostname(host, sizeof host);
    host[sizeof host - 1] = '\0';
    snprintf(rec, sizeof rec, "%ld\n%s\n", (long)getppid(), host);
    fl_write_file(claim, rec);
    l = fl_new_kind(path, FL_SOFT);
    ck_assert_int_eq(fl_acquire_ex(l, 0.3, 1, 0.01), FL_ETIMEOUT);
    fl_lock_free(l);
    ck_assert_int_eq(lstat(path, &st), 0);
    ck_assert_msg((uint64_t)st.st_ino == id.ino, "the marker under a live claim was replaced");
}
END_TEST

/* The file server's clock, as this client sees it through fstat, is 60 s
 * behind its own. */
static int fstat_server_behind(int fd, struct stat *st) {
    int rc = fstat(fd, st);
    if (rc == 0)
        st->st_mtim.tv_sec -= 60;
    return rc;
}

/* Stamps path 30 s ahead: with the server 60 s behind, it looks 30 s old to
 * the reader's clock (well past the 2 s grace), while by the file system's
 * own clock it stays younger than the grace for the next 32 s -- not just
 * for the 2 s after its write, which a test stalled on a loaded machine
 * could overrun (the file would then be old by every clock, and rightly
 * taken). */
static void stamp_just_written(const char *path) {
    struct timespec t[2];
    clock_gettime(CLOCK_REALTIME, &t[0]);
    t[0].tv_sec += 30;
    t[1] = t[0];
    ck_assert_int_eq(utimensat(AT_FDCWD, path, t, AT_SYMLINK_NOFOLLOW), 0);
}

/* A claim without a record, just created: a live taker between its create
 * and its write. With the file server's clock behind ours it looks 30 s old
 * to us; it must still be respected (the grace is measured with the file
 * system's clock), and the marker under it left alone. */
START_TEST(fresh_record_less_claim_respected_under_clock_skew) {
    const char *path = P("x.lock");
    char claim[4096];
    struct stat st;
    fl__fid id;
    fl_lock *l;
    plant_stale(path);
    ck_assert_int_eq(lstat(path, &st), 0);
    id.dev = (uint64_t)st.st_dev;
    id.ino = (uint64_t)st.st_ino;
    ck_assert_int_eq(fl__soft_claim_name(path, &id, claim, sizeof claim), 0);
    fl_write_file(claim, "");
    stamp_just_written(claim);
    fl__sys.fstat = fstat_server_behind;
    l = fl_new_kind(path, FL_SOFT);
    ck_assert_int_eq(fl_acquire_ex(l, 0.6, 1, 0.01), FL_ETIMEOUT);
    fl_lock_free(l);
    fl__sys_reset();
    ck_assert_msg(fl_exists(claim), "a live taker's fresh claim was removed");
    ck_assert_int_eq(lstat(path, &st), 0);
    ck_assert_msg((uint64_t)st.st_ino == id.ino, "the marker under a live claim was replaced");
}
END_TEST

/* Two clients of one network file system (NFS, GlusterFS over FUSE) see
 * the same file with different st_dev (each mount has its own device
 * number), the same inode number. Both judge a record-less dead marker
 * gone; A has its claim and stops just before its rename; B, the other
 * client, must find A's claim -- the claim cannot name the device. Before
 * the fix B claimed under its own device number, renamed, held, and A's
 * rename then replaced B's live marker: two holders. */
START_TEST(claim_shared_by_clients_with_different_st_dev) {
    char path[4096]; /* P()'s buffers rotate: the probes below call it often */
    char where[] = "record-less dead marker, A before its rename, B on another client";
    actor a, b;
    char eb;
    int k;
    struct timespec old[2];
    snprintf(path, sizeof path, "%s", P("x.lock"));
    for (k = 1; k <= MAX_STEP; k++) {
        empty_dir();
        fl_write_file(path, "");
        clock_gettime(CLOCK_REALTIME, &old[0]);
        old[0].tv_sec -= 10;
        old[1] = old[0];
        ck_assert_int_eq(utimensat(AT_FDCWD, path, old, AT_SYMLINK_NOFOLLOW), 0);
        actor_start(&a, path, k, 5);
        ck_assert_msg(actor_next(&a, where) == 'P', "A ended before a rename: %s", a.last);
        if (strstr(a.last, " rename ") != NULL)
            break;
        actor_kill(&a);
        actor_close(&a);
    }
    ck_assert_msg(k <= MAX_STEP, "no rename step found");
    g_dev_offset = 1; /* inherited by B only: A is already forked */
    actor_start(&b, path, 0, 0.6);
    g_dev_offset = 0;
    eb = actor_next(&b, where);
    ck_assert_msg(eb == 'T', "B, on the other client, did not wait for A's claim: %s", b.last);
    actor_reap(&b, where);
    actor_send(&a, 'r');
    ck_assert_msg(actor_run(&a, where) == 'H', "A: %s", a.last);
    actor_release(&a, where);
    actor_close(&a);
    actor_close(&b);
    assert_recovers(path, where);
}
END_TEST

/* A private marker without a record, just created: a live taker between
 * its create and its write. The collector (run after our take-over of a
 * dead marker) must keep it although, with the file server's clock behind
 * ours, it looks 30 s old. */
START_TEST(fresh_record_less_private_marker_kept_under_clock_skew) {
    const char *path = P("x.lock");
    char claim[4096], priv[4096];
    fl__fid fake = {1, 111};
    size_t dl = strlen(fl_tdir) + 1;
    fl_lock *l;
    ck_assert_int_eq(fl__soft_claim_name(path, &fake, claim, sizeof claim), 0);
    snprintf(priv, sizeof priv, "%.*s0000000000000003.new", (int)(dl + 18), claim);
    fl_write_file(priv, "");
    stamp_just_written(priv);
    plant_stale(path);
    fl__sys.fstat = fstat_server_behind;
    l = fl_new_kind(path, FL_SOFT);
    ck_assert_int_eq(fl_acquire_ex(l, 5, 1, 0.01), 0);
    fl__sys_reset();
    ck_assert_msg(fl_exists(priv), "a live taker's fresh private marker was collected");
    ck_assert_int_eq(fl_release(l, 0), 0);
    fl_lock_free(l);
}
END_TEST

/* What crashed takers leave (claims and private markers of dead owners) is
 * collected after the next take-over; files of live owners are kept. */
START_TEST(leftovers_of_dead_takers_collected) {
    const char *path = P("x.lock");
    char dead_claim[4096], live_claim[4096], dead_new[4096], live_new[4096];
    char dead_rec[512], live_rec[512], host[256];
    fl__fid fake1 = {1, 111}, fake2 = {1, 222};
    size_t dl = strlen(fl_tdir) + 1;
    pid_t dead = fork();
    if (dead == 0)
        _exit(0);
    ck_assert_int_eq(fl_wait_child(dead, 10), 0);
    gethostname(host, sizeof host);
    host[sizeof host - 1] = '\0';
    snprintf(dead_rec, sizeof dead_rec, "%ld\n%s\n", (long)dead, host);
    snprintf(live_rec, sizeof live_rec, "%ld\n%s\n", (long)getppid(), host);
    ck_assert_int_eq(fl__soft_claim_name(path, &fake1, dead_claim, sizeof dead_claim), 0);
    ck_assert_int_eq(fl__soft_claim_name(path, &fake2, live_claim, sizeof live_claim), 0);
    /* private names: the claim's prefix (".<hash>.") and a ".new" tail */
    snprintf(dead_new, sizeof dead_new, "%.*s0000000000000001.new", (int)(dl + 18), dead_claim);
    snprintf(live_new, sizeof live_new, "%.*s0000000000000002.new", (int)(dl + 18), dead_claim);
    fl_write_file(dead_claim, dead_rec);
    fl_write_file(live_claim, live_rec);
    fl_write_file(dead_new, dead_rec);
    fl_write_file(live_new, live_rec);
    plant_stale(path);
    assert_recovers(path, "leftovers");
    ck_assert_msg(!fl_exists(dead_claim), "dead claim %s kept", dead_claim);
    ck_assert_msg(!fl_exists(dead_new), "dead private marker %s kept", dead_new);
    ck_assert_msg(fl_exists(live_claim), "a live claim was removed");
    ck_assert_msg(fl_exists(live_new), "a live private marker was removed");
}
END_TEST

/* ---- leases ------------------------------------------------------------------ */

/* A lease (docs/soft-lock-protocol.md, "Leases and lifetimes") adds two
 * paths that run while a contender may act: the heartbeat's refresh (claim
 * of the marker's identity, lstat, futimens, claim removed) and a release
 * through the same claim. Setup "lease": A holds a lease; its heartbeat's
 * next refresh and then its release are the steps enumerated (the refresh
 * first: the release waits for a refresh in progress). While A is stopped
 * at step i nothing refreshes its marker, so it expires; B, a contender with
 * the same lease, starts then and reclaims it (or finds A's claim and
 * waits), stopped at its step j or run to its end; then A is resumed or
 * killed, then B resumed. A resumed whose release waits for B's claim ("W")
 * lets B go on first.
 *
 * Invariants, besides the three above (the sentinel and the marker checks
 * hold, with one documented change: a taker that replaced the expired
 * marker of a frozen holder supersedes it, so the sentinel becomes its):
 *   4. a live holder's marker is replaced only when it is expired: checked
 *      by the taker just before its rename (under the claim), as the file
 *      system's clock sees it;
 *   5. a refresh never touches a marker that is not at the path (a lost
 *      lease is never renewed), and a release never removes another's;
 *   6. A learns the loss: when B replaced A's marker (A alive), A's
 *      release returns FL_ELOST (owner-changed, or marker-missing when B
 *      had released already, or refresh-failed when the heartbeat had
 *      found B's claim for a lease's length first); when A's release
 *      removed its own marker it returns 0, or FL_ELOST refresh-failed only
 *      (a refresh blocked for that long is reported, as documented); the
 *      reason of an owner-changed or marker-missing loss is real (B took).
 *
 * Time: an enumerated case must see A's marker expire. The "each step"
 * tests wait for it (a 0.1 s lease); the pairs age A's marker by hand to
 * lease_duration + 1 s old (a 1 s lease), which is what a frozen holder
 * leaves, and age record-less leftovers past their 2 s grace before the
 * fresh waiter's check (the "each step" tests wait that grace for real). */

#define LEASE_MAX_STEP 45
/* A's steps (a refresh and a release) are fewer: each is a pairs test. */
#define LEASE_A_MAX_STEP 24

static void set_lease(double duration, double heartbeat, int holder) {
    g_lease_d = duration;
    g_lease_i = heartbeat;
    g_lease_holder = holder;
}

/* A stopped: its marker (if it is still A's) ages past the lease. */
static void expire_marker(const char *path, pid_t holder, int by_hand) {
    struct stat st;
    if (lstat(path, &st) != 0 || record_pid(path) != (long)holder)
        return;
    if (by_hand) {
        struct timespec t[2];
        clock_gettime(CLOCK_REALTIME, &t[0]);
        t[0].tv_sec -= (time_t)g_lease_d + 1;
        t[1] = t[0];
        ck_assert_int_eq(utimensat(AT_FDCWD, path, t, AT_SYMLINK_NOFOLLOW), 0);
    } else {
        double end = fl_mono() + 10;
        while (lstat(path, &st) == 0 && fs_now() - mtime_of(&st) < g_lease_d + 0.01 &&
               fl_mono() < end)
            fl_sleep(0.005);
    }
}

/* Record-less files (a create killed before its write) as they are after
 * their 2 s grace. */
static void age_record_less(void) {
    DIR *d = opendir(fl_tdir);
    struct dirent *e;
    struct stat st;
    struct timespec t[2];
    ck_assert(d != NULL);
    clock_gettime(CLOCK_REALTIME, &t[0]);
    t[0].tv_sec -= 3;
    t[1] = t[0];
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0 &&
            lstat(P(e->d_name), &st) == 0 && S_ISREG(st.st_mode) && st.st_size == 0)
            utimensat(AT_FDCWD, P(e->d_name), t, AT_SYMLINK_NOFOLLOW);
    closedir(d);
}

/* The acquire attempt a stopped actor is in ("P <step> <call> <path> <n>"). */
static int attempt_of(const char *line) {
    const char *sp = strrchr(line, ' ');
    return sp ? atoi(sp + 1) : 0;
}

/* Drives B, stopped or holding, to its end. */
static void finish_b(actor *b, char eb, const char *where) {
    if (eb == 'P') {
        actor_send(b, 'r');
        eb = actor_run(b, where);
    }
    if (eb == 'H')
        actor_release(b, where);
    else {
        ck_assert_msg(eb == 'T', "%s: B ended with '%s'", where, b->last);
        actor_reap(b, where);
    }
}

/* One lease interleaving. quick: the pairs' settings (see above). Returns
 * 0 when A ended before step i, 3 when B stopped at step j while waiting
 * in its third attempt (its later steps repeat the same busy attempt), 2
 * when B stopped at step j otherwise, 1 when B ran to its end first. */
static int run_case_lease(int i, int j, int then, int quick) {
    static char path[4096];
    char where[200], a_end[256] = "";
    actor a, b;
    char ea, eb;
    int paused_b, late_b, b_done = 0;
    double d = quick ? 1.0 : 0.1, hb = quick ? 0.01 : 0.02, tb = quick ? 0.05 : 0.15;
    snprintf(path, sizeof path, "%s", P("x.lock"));
    g_path = path; /* fs_now() in this process */
    empty_dir();
    snprintf(where, sizeof where,
             "lease, A stopped at step %d (refresh, release), B at %d, then A %s", i, j,
             then == THEN_RESUME   ? "resumed"
             : then == THEN_HOLD   ? "resumed, holding on after its refresh"
             : then == THEN_KILL_B ? "resumed after B was killed there"
                                   : "killed");
    if (getenv("FL_TEST_VERBOSE"))
        fprintf(stderr, "%.3f %s\n", fl_mono(), where);

    set_lease(d, hb, 1);
    g_hold_after_refresh = then == THEN_HOLD;
    actor_start(&a, path, i, 1.0);
    g_hold_after_refresh = 0;
    ea = actor_next(&a, where);
    ck_assert_msg(ea == 'H', "%s: A did not win the free lock: %s", where, a.last);
    actor_send(&a, 'u');
    ea = actor_next(&a, where);
    if (ea != 'P') {
        /* No step i (THEN_HOLD: none in the refresh). */
        if (ea == 'F')
            ea = actor_run_after(&a, 'u', where);
        ck_assert_msg(strcmp(a.last, "R OK") == 0, "%s: A ended with '%s'", where, a.last);
        actor_reap(&a, where);
        actor_close(&a);
        set_lease(0, 0, 0);
        return 0;
    }
    /* A is frozen: its lease runs out. */
    expire_marker(path, a.pid, quick);

    set_lease(d, hb, 0);
    actor_start(&b, path, j, tb);
    set_lease(0, 0, 0);
    eb = actor_next(&b, where);
    paused_b = eb == 'P';
    late_b = paused_b && attempt_of(b.last) >= 3;

    if (then == THEN_KILL_B) {
        /* B dies where it stopped: whatever it left, A's refresh and
         * release get past it. */
        if (paused_b)
            actor_kill(&b);
        else
            finish_b(&b, eb, where);
        b_done = 1;
    }
    if (then == THEN_CRASH) {
        actor_kill(&a);
    } else {
        actor_send(&a, 'r');
        if (then == THEN_HOLD) {
            /* A's refresh ends, and it holds on (refreshing) while B goes
             * on: B may win only if A's refresh found its marker taken. */
            ea = actor_next(&a, where);
            ck_assert_msg(ea == 'F', "%s: A's refresh ended with '%s'", where, a.last);
            finish_b(&b, eb, where);
            b_done = 1;
            actor_send(&a, 'u');
        }
        for (;;) {
            ea = actor_next(&a, where);
            if (ea != 'W')
                break;
            /* A's release waits for B's claim on A's marker: B goes on. */
            if (!b_done) {
                finish_b(&b, eb, where);
                b_done = 1;
            }
        }
        ck_assert_msg(ea == 'R', "%s: A ended with '%s'", where, a.last);
        snprintf(a_end, sizeof a_end, "%s", a.last);
        ck_assert_msg(strcmp(a_end, "R OK") == 0 || strncmp(a_end, "R FL_ELOST ", 11) == 0,
                      "%s: A's release failed: %s", where, a_end);
        actor_reap(&a, where);
    }
    if (!b_done)
        finish_b(&b, eb, where);

    /* 6: the loss is told exactly when it happened. */
    if (then != THEN_CRASH && b.state != 'K') {
        ck_assert_msg(!b.took || strncmp(a_end, "R FL_ELOST", 10) == 0,
                      "%s: B replaced A's expired marker, but A's release said '%s'", where, a_end);
        ck_assert_msg(b.took || (strcmp(a_end, "R FL_ELOST owner-changed") != 0 &&
                                 strcmp(a_end, "R FL_ELOST marker-missing") != 0),
                      "%s: A's release said '%s', but nobody took its marker", where, a_end);
    }
    actor_close(&a);
    actor_close(&b);
    if (quick)
        age_record_less();
    assert_recovers(path, where);
    return paused_b ? (late_b ? 3 : 2) : 1;
}

/* Every step of A's refresh and release (B run to its end while A is
 * stopped), A then resumed or killed: waits for the real expiry. */
START_TEST(lease_each_step_resume_or_crash) {
    int i, n = 0;
    for (i = 1; i <= LEASE_MAX_STEP; i++) {
        if (!run_case_lease(i, 0, _i, 0))
            break;
        n++;
    }
    ck_assert_msg(n >= 10 && n < LEASE_A_MAX_STEP, "enumerated %d steps of a refresh and release",
                  n);
}
END_TEST

static int g_lease_cases;

static void lease_pairs(int i, int then) {
    int j, r;
    for (j = 1; j <= LEASE_MAX_STEP; j++) {
        r = run_case_lease(i, j, then, 1);
        g_lease_cases++;
        if (r != 2)
            return; /* A has no step i, B no step j, or B only repeats a busy attempt */
    }
    ck_abort_msg("B has more than %d steps", LEASE_MAX_STEP);
}

START_TEST(lease_pairs_resume) {
    lease_pairs(_i, THEN_RESUME);
    if (getenv("FL_TEST_VERBOSE"))
        fprintf(stderr, "A step %d: %d cases\n", _i, g_lease_cases);
}
END_TEST

START_TEST(lease_pairs_crash) { lease_pairs(_i, THEN_CRASH); }
END_TEST

START_TEST(lease_pairs_hold) { lease_pairs(_i, THEN_HOLD); }
END_TEST

/* A stopped before its refresh; B, reclaiming A's expired lease, killed
 * at each of its steps; A then refreshes and releases past what B left. */
START_TEST(lease_taker_killed_at_each_step) { lease_pairs(1, THEN_KILL_B); }
END_TEST

Suite *suite_interleave(void) {
    Suite *s = suite_create("interleave");
    TCase *tc = fl_tcase("interleave");
    tcase_set_timeout(tc, 240);
    tcase_add_loop_test(tc, stale_each_step_resume_or_crash, THEN_RESUME, THEN_CRASH + 1);
    tcase_add_loop_test(tc, free_each_step_resume_or_crash, THEN_RESUME, THEN_CRASH + 1);
    tcase_add_loop_test(tc, stale_pairs_resume, 1, MAX_STEP + 1);
    tcase_add_loop_test(tc, stale_pairs_crash, 1, MAX_STEP + 1);
    tcase_add_loop_test(tc, free_pairs_resume, 1, MAX_STEP + 1);
    tcase_add_test(tc, dead_claim_is_taken_over);
    tcase_add_test(tc, live_claim_is_respected);
    tcase_add_test(tc, leftovers_of_dead_takers_collected);
    suite_add_tcase(s, tc);
    tc = fl_tcase("attack");
    tcase_add_test(tc, fresh_record_less_claim_respected_under_clock_skew);
    tcase_add_test(tc, fresh_record_less_private_marker_kept_under_clock_skew);
    tcase_add_test(tc, claim_shared_by_clients_with_different_st_dev);
    suite_add_tcase(s, tc);
    return s;
}

Suite *suite_interleave_lease(void) {
    Suite *s = suite_create("interleave_lease");
    TCase *tc = fl_tcase("lease");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, lease_each_step_resume_or_crash, THEN_RESUME, THEN_CRASH + 1);
    tcase_add_loop_test(tc, lease_pairs_resume, 1, LEASE_A_MAX_STEP + 1);
    tcase_add_loop_test(tc, lease_pairs_crash, 1, LEASE_A_MAX_STEP + 1);
    tcase_add_loop_test(tc, lease_pairs_hold, 1, LEASE_A_MAX_STEP + 1);
    suite_add_tcase(s, tc);
    tc = fl_tcase("lease_taker");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, lease_taker_killed_at_each_step);
    suite_add_tcase(s, tc);
    return s;
}
