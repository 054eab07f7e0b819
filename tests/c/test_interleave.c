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

static void step(const char *what, const char *path) {
    char c;
    if (!g_counting)
        return;
    if (++g_step != g_pause_at)
        return;
    dprintf(g_ev, "P %d %s %s\n", g_step, what, path ? path : "");
    if (read(g_ctl, &c, 1) != 1)
        _exit(5);
}

static int w_open(const char *p, int f, mode_t m) {
    step((f & O_EXCL) ? "create" : "open", p);
    return g_real.open(p, f, m);
}
static int w_close(int fd) {
    step("close", NULL);
    return g_real.close(fd);
}
static int w_lstat(const char *p, struct stat *st) {
    int rc;
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
static int w_rename(const char *a, const char *b) {
    step("rename", a);
    return g_real.rename(a, b);
}
static int w_unlink(const char *p) {
    step("unlink", p);
    return g_real.unlink(p);
}
static int w_kill(pid_t pid, int sig) {
    step("kill", NULL);
    return g_real.kill(pid, sig);
}

/* 1 if the marker at path is this process's (record and identity). */
static int marker_is_mine(const char *path, const struct stat *mine) {
    char buf[512];
    struct stat st;
    long pid = -1;
    if (lstat(path, &st) != 0 || st.st_dev != mine->st_dev || st.st_ino != mine->st_ino)
        return 0;
    if (fl_read_file(path, buf, sizeof buf) <= 0 || sscanf(buf, "%ld", &pid) != 1)
        return 0;
    return pid == (long)getpid();
}

static void actor_main(const char *path, const char *sentinel, int pause_at, double timeout, int ev,
                       int ctl) {
    fl_lock *l;
    fl_options o = FL_OPTIONS_INIT;
    struct stat mine;
    int rc, fd;
    char c;
    g_ev = ev;
    g_ctl = ctl;
    g_pause_at = pause_at;
    g_real = fl__sys;
    fl__sys.open = w_open;
    fl__sys.close = w_close;
    fl__sys.lstat = w_lstat;
    fl__sys.fstat = w_fstat;
    fl__sys.write = w_write;
    fl__sys.fchmod = w_fchmod;
    fl__sys.rename = w_rename;
    fl__sys.unlink = w_unlink;
    fl__sys.kill = w_kill;
    o.kind = FL_SOFT;
    if (fl_lock_new(&l, path, &o) != 0)
        _exit(6);
    g_counting = 1;
    rc = fl_acquire_ex(l, timeout, 1, 0.01);
    g_counting = 0;
    if (rc != 0) {
        dprintf(ev, "T %s\n", fl_err_name(rc));
        _exit(0);
    }
    fd = open(sentinel, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        dprintf(ev, "D\n");
        _exit(99);
    }
    close(fd);
    if (stat(path, &mine) != 0 || !marker_is_mine(path, &mine)) {
        dprintf(ev, "X won, but the marker is not mine\n");
        _exit(98);
    }
    dprintf(ev, "H\n");
    if (read(ctl, &c, 1) != 1)
        _exit(5);
    if (!marker_is_mine(path, &mine)) {
        dprintf(ev, "X my marker was replaced or removed while I held the lock\n");
        _exit(98);
    }
    unlink(sentinel);
    g_counting = 1;
    rc = fl_release(l, 0);
    g_counting = 0;
    dprintf(ev, "R %s\n", rc == 0 ? "OK" : fl_err_name(rc));
    _exit(0);
}

typedef struct actor {
    pid_t pid;
    int ev, ctl;
    char last[256];
    int state; /* 'P' paused, 'H' holding, 'T' timed out, 'R' released, 'K' killed */
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
}

/* Reads the actor's next event; fails the test on a broken invariant. */
static char actor_next(actor *a, const char *where) {
    if (fl_read_line(a->ev, a->last, sizeof a->last, 10) != 0) {
        int st = fl_wait_child(a->pid, 0.5);
        ck_abort_msg("%s: actor %ld said nothing (exit %d)", where, (long)a->pid, st);
    }
    ck_assert_msg(a->last[0] != 'D', "%s: two holders at once (actor %ld)", where, (long)a->pid);
    ck_assert_msg(a->last[0] != 'X', "%s: actor %ld: %s", where, (long)a->pid, a->last);
    a->state = a->last[0];
    if (getenv("FL_TEST_VERBOSE"))
        fprintf(stderr, "  %.3f %ld: %s\n", fl_mono(), (long)a->pid, a->last);
    return a->last[0];
}

static void actor_send(actor *a, char c) { ck_assert(write(a->ctl, &c, 1) == 1); }

static void actor_kill(actor *a) {
    kill(a->pid, SIGKILL);
    fl_wait_child(a->pid, 5);
    a->state = 'K';
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
        return e;
    }
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
enum { THEN_RESUME, THEN_CRASH };

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
