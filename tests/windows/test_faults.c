/*
 * Fault injection through the Windows system-call seam (fl__sys, static
 * core only): failures the real system rarely produces on demand.
 */
#include "wintest.h"

#include <winsock2.h>

#include "internal.h"
#include "soft.h"

#include <stdio.h>

#include <string.h>

static int fake_lock_unsupported(void *h, unsigned long flags, void *ov) {
    (void)h, (void)flags, (void)ov;
    SetLastError(ERROR_NOT_SUPPORTED);
    return 0;
}

static int fake_close_fails(void *h) {
    CloseHandle(h);
    SetLastError(ERROR_IO_DEVICE);
    return 0;
}

static int g_delete_refusals;
static void *(*real_create)(const wchar_t *, unsigned long, unsigned long, unsigned long,
                            unsigned long);
/* Refuses the first two opens for DELETE with a sharing violation. */
static void *fake_create_busy(const wchar_t *p, unsigned long access, unsigned long share,
                              unsigned long disp, unsigned long flags) {
    if ((access & DELETE) && g_delete_refusals > 0) {
        g_delete_refusals--;
        SetLastError(ERROR_SHARING_VIOLATION);
        return INVALID_HANDLE_VALUE;
    }
    return real_create(p, access, share, disp, flags);
}

static void reset(void) {
    fl__sys_reset();
    wt_teardown();
}

START_TEST(lockfileex_unsupported) {
    const char *p = wt_path("nl.lock");
    fl_lock *l = wt_lock(p, FL_KERNEL);
    fl__sys.lock_file = fake_lock_unsupported;
    ck_assert_int_eq(fl_acquire_ex(l, 0, 1, 0.05), FL_ENOTSUP);
    ck_assert_msg(strstr(fl_last_error(), "soft") != NULL, "%s", fl_last_error());
    ck_assert_int_eq(fl_last_errno(), ERROR_NOT_SUPPORTED);
    ck_assert(!wt_exists(p)); /* the file it created is removed again */
    fl_lock_free(l);
}
END_TEST

START_TEST(soft_fallback) {
    const char *p = wt_path("fb.lock");
    fl_options o = FL_OPTIONS_INIT;
    fl_lock *l;
    o.soft_fallback = 1;
    ck_assert_int_eq(fl_lock_new(&l, p, &o), 0);
    fl__sys.lock_file = fake_lock_unsupported;
    ck_assert_msg(fl_acquire_ex(l, 0, 1, 0.05) == 0, "%s", fl_last_error());
    ck_assert_int_eq(fl_lock_kind(l), FL_SOFT);
    ck_assert(wt_exists(p)); /* now the marker */
    ck_assert_int_eq(fl_release(l, 0), 0);
    ck_assert(!wt_exists(p));
    fl_lock_free(l);
}
END_TEST

START_TEST(close_error_still_releases) {
    const char *p = wt_path("ce.lock");
    fl_lock *a = wt_lock(p, FL_KERNEL), *b = wt_lock(p, FL_KERNEL);
    ck_assert_int_eq(fl_acquire(a), 0);
    fl__sys.close_handle = fake_close_fails;
    ck_assert_int_eq(fl_release(a, 0), FL_EIO);
    ck_assert_msg(strstr(fl_last_error(), "released") != NULL, "%s", fl_last_error());
    fl__sys_reset();
    ck_assert_int_eq(fl_is_locked(a), 0);
    ck_assert_int_eq(fl_acquire_ex(b, 0, 1, 0.05), 0);
    fl_lock_free(b);
    fl_lock_free(a);
}
END_TEST

START_TEST(marker_delete_retried) {
    const char *p = wt_path("dr.lock");
    fl_lock *l = wt_lock(p, FL_SOFT);
    ck_assert_int_eq(fl_acquire(l), 0);
    real_create = fl__sys.create_file;
    g_delete_refusals = 2;
    fl__sys.create_file = fake_create_busy;
    ck_assert_msg(fl_release(l, 0) == 0, "%s", fl_last_error());
    ck_assert_int_eq(g_delete_refusals, 0);
    ck_assert(!wt_exists(p));
    fl_lock_free(l);
}
END_TEST

START_TEST(marker_delete_gives_up) {
    const char *p = wt_path("dg.lock");
    fl_lock *l = wt_lock(p, FL_SOFT);
    ck_assert_int_eq(fl_acquire(l), 0);
    real_create = fl__sys.create_file;
    g_delete_refusals = 1000000;
    fl__sys.create_file = fake_create_busy;
    ck_assert_int_eq(fl_release(l, 0), FL_EACCES); /* after about a second */
    ck_assert_msg(strstr(fl_last_error(), p) != NULL, "%s", fl_last_error());
    fl__sys_reset();
    ck_assert(wt_exists(p));
    fl_lock_free(l);
}
END_TEST

static int fake_mkdir_denied(const wchar_t *path) {
    (void)path;
    SetLastError(ERROR_ACCESS_DENIED);
    return 0;
}

START_TEST(mkdir_failure_reported) {
    const char *p = wt_path("deny/x.lock");
    fl_lock *l = wt_lock(p, FL_KERNEL);
    fl__sys.create_directory = fake_mkdir_denied;
    ck_assert_int_eq(fl_acquire_ex(l, 0, 1, 0.05), FL_EACCES);
    ck_assert_msg(strstr(fl_last_error(), p) != NULL, "%s", fl_last_error());
    ck_assert_int_eq(fl_last_errno(), ERROR_ACCESS_DENIED);
    fl_lock_free(l);
}
END_TEST

/* A dead holder's marker (pid 4194303 cannot exist: Windows pids are
 * multiples of 4 below 2^22 here) with this host's name. */
static void plant_dead(const char *path) {
    char rec[400];
    snprintf(rec, sizeof rec, "4194303\n%s\n", wt_host());
    wt_plant(path, rec);
}

/* The claim soft.c would make on the file now at path. */
static void claim_of(const char *path, char *claim, size_t cap) {
    fl__record rec;
    ck_assert_int_eq(fl__prim_read(path, &rec), 0);
    ck_assert_int_eq(fl__soft_claim_name(path, &rec.id, claim, cap), 0);
    fl__prim_close(rec.fd);
}

/* A taker that died holding its claim on a dead marker, and another that
 * died with its private marker not yet moved: the next waiter takes the
 * dead claim over, then the marker, and collects the private marker. */
START_TEST(dead_takers_leftovers_resolved) {
    const char *p = wt_path("dt.lock");
    fl_lock *l = wt_lock(p, FL_SOFT);
    char claim[4096], priv[4096], rec[400];
    plant_dead(p);
    claim_of(p, claim, sizeof claim);
    snprintf(rec, sizeof rec, "4194299\n%s\n", wt_host());
    wt_plant(claim, rec);
    snprintf(priv, sizeof priv, "%.*s.%016llx.00000000deadbeef.new", (int)(strrchr(p, '/') - p + 1),
             p, (unsigned long long)fl__name_hash("dt.lock"));
    wt_plant(priv, rec);
    ck_assert_int_eq(wt_count("."), 2);
    ck_assert_msg(fl_acquire_ex(l, 10, 1, 0.05) == 0, "%s", fl_last_error());
    ck_assert(!wt_exists(claim));
    ck_assert(!wt_exists(priv));
    ck_assert_int_eq(wt_count("."), 0);
    ck_assert_int_eq(fl_release(l, 0), 0);
    fl_lock_free(l);
}
END_TEST

/* A claim of a live taker (this process, no token: alive) means someone
 * is at work: the waiter waits and touches nothing. */
START_TEST(live_claim_waited_for) {
    const char *p = wt_path("lc.lock");
    fl_lock *l = wt_lock(p, FL_SOFT);
    char claim[4096], rec[400];
    plant_dead(p);
    claim_of(p, claim, sizeof claim);
    snprintf(rec, sizeof rec, "%lu\n%s\n", (unsigned long)GetCurrentProcessId(), wt_host());
    wt_plant(claim, rec);
    ck_assert_int_eq(fl_acquire_ex(l, 0.6, 1, 0.05), FL_ETIMEOUT);
    ck_assert(wt_exists(claim));
    ck_assert(DeleteFileW(wt_wide(claim)));
    ck_assert_msg(fl_acquire_ex(l, 10, 1, 0.05) == 0, "%s", fl_last_error());
    fl_lock_free(l);
}
END_TEST

static int fake_move_denied(const wchar_t *from, const wchar_t *to, unsigned long flags) {
    (void)from, (void)to, (void)flags;
    SetLastError(ERROR_ACCESS_DENIED);
    return 0;
}

static int g_move_busy;
static int fake_move_busy(const wchar_t *from, const wchar_t *to, unsigned long flags) {
    if (g_move_busy > 0) {
        g_move_busy--;
        SetLastError(ERROR_SHARING_VIOLATION);
        return 0;
    }
    return MoveFileExW(from, to, flags);
}

/* A replace the system refuses for good (the file is not in use) is a
 * prompt error naming the lock, never a Timeout; the dead marker stays and
 * nothing of the attempt is left behind. */
START_TEST(replace_refused_is_an_error) {
    const char *p = wt_path("rf.lock");
    fl_lock *l = wt_lock(p, FL_SOFT);
    char buf[400], rec[400];
    int rc;
    plant_dead(p);
    wt_read(p, rec, sizeof rec);
    fl__sys.move_file = fake_move_denied;
    rc = fl_acquire_ex(l, 30, 1, 0.05);
    ck_assert_msg(rc == FL_EACCES, "rc %d: %s", rc, fl_last_error());
    ck_assert_msg(strstr(fl_last_error(), p) != NULL, "%s", fl_last_error());
    fl__sys_reset();
    ck_assert_int_gt(wt_read(p, buf, sizeof buf), 0);
    ck_assert_str_eq(buf, rec);
    ck_assert_int_eq(wt_count("."), 0);
    fl_lock_free(l);
}
END_TEST

/* A replace refused for a moment (a sharing violation) is retried. */
START_TEST(replace_retried) {
    const char *p = wt_path("rt.lock");
    fl_lock *l = wt_lock(p, FL_SOFT);
    plant_dead(p);
    g_move_busy = 3;
    fl__sys.move_file = fake_move_busy;
    ck_assert_msg(fl_acquire_ex(l, 10, 1, 0.05) == 0, "%s", fl_last_error());
    ck_assert_int_eq(g_move_busy, 0);
    ck_assert_int_eq(wt_count("."), 0);
    ck_assert_int_eq(fl_release(l, 0), 0);
    ck_assert(!wt_exists(p));
    fl_lock_free(l);
}
END_TEST

/* ---- a kernel whose overlapped LockFileEx waits -------------------------
 *
 * Wine never completes a LockFileEx that has to wait (win32.c), so the
 * hub's Windows wake-up (a queued request, granted at the release) cannot
 * run there for real. This model of the kernel's byte-range lock table (one
 * range, one process: every handle of these tests) queues waiting requests
 * FIFO, grants them at UnlockFileEx or CloseHandle by completing their
 * OVERLAPPED (status, then the event, as the kernel does), and withdraws
 * them at CancelIoEx (each file its own range: a read/write lock's gate and
 * lock are two); with async_lock_waits saying yes, the backend and the
 * hub take their Windows path under Wine. */
#define MODEL_MAX       64
#define MODEL_PENDING   0x00000103UL /* STATUS_PENDING */
#define MODEL_CANCELLED 0xC0000120UL /* STATUS_CANCELLED */
typedef struct model_req {
    HANDLE h;
    OVERLAPPED *ov;
    int excl;
    unsigned long long file; /* which file: each has its own range */
} model_req;
static CRITICAL_SECTION g_model_mu;
static model_req g_held[MODEL_MAX], g_queue[MODEL_MAX];
static int g_nheld, g_nqueue, g_cancels, g_unlocks;
/* Releases leave the queue alone, and the next CancelIoEx finds its request
 * granted instead: the grant that wins the race with the cancel. */
static int g_grant_at_cancel;

/* The file a handle is open on (volume and file index). */
static unsigned long long model_file(HANDLE h) {
    BY_HANDLE_FILE_INFORMATION info;
    ck_assert(GetFileInformationByHandle(h, &info));
    return ((unsigned long long)info.dwVolumeSerialNumber << 48) ^
           ((unsigned long long)info.nFileIndexHigh << 32) ^ info.nFileIndexLow;
}

static int model_free_for(unsigned long long file, int excl) {
    int i;
    for (i = 0; i < g_nheld; i++)
        if (g_held[i].file == file && (excl || g_held[i].excl))
            return 0;
    return 1;
}

static int model_queued_before(int n, unsigned long long file) {
    int i;
    for (i = 0; i < n; i++)
        if (g_queue[i].file == file)
            return 1;
    return 0;
}

static void model_complete(OVERLAPPED *ov, unsigned long status) {
    ov->InternalHigh = 0;
    ov->Internal = status;
    if (ov->hEvent)
        SetEvent(ov->hEvent);
}

/* Grants queued requests in order while they fit, per file. */
static void model_grant(void) {
    int i = 0;
    while (i < g_nqueue) {
        if (!model_queued_before(i, g_queue[i].file) &&
            model_free_for(g_queue[i].file, g_queue[i].excl)) {
            g_held[g_nheld++] = g_queue[i];
            model_complete(g_queue[i].ov, 0);
            memmove(g_queue + i, g_queue + i + 1, (size_t)(--g_nqueue - i) * sizeof g_queue[0]);
            i = 0;
        } else {
            i++;
        }
    }
}

static int model_unlock_handle(HANDLE h) {
    int i, found = 0;
    for (i = 0; i < g_nheld; i++)
        if (g_held[i].h == h) {
            memmove(g_held + i, g_held + i + 1, (size_t)(g_nheld - i - 1) * sizeof g_held[0]);
            g_nheld--;
            found = 1;
            break;
        }
    if (found && !g_grant_at_cancel)
        model_grant();
    return found;
}

static int model_lock(void *h, unsigned long flags, void *ovp) {
    OVERLAPPED *ov = ovp;
    int excl = (flags & LOCKFILE_EXCLUSIVE_LOCK) != 0, rc = 0;
    unsigned long long file = model_file(h);
    EnterCriticalSection(&g_model_mu);
    if (!model_queued_before(g_nqueue, file) && model_free_for(file, excl)) {
        g_held[g_nheld].h = h;
        g_held[g_nheld].ov = NULL;
        g_held[g_nheld].file = file;
        g_held[g_nheld++].excl = excl;
        model_complete(ov, 0);
        rc = 1;
    } else if (flags & LOCKFILE_FAIL_IMMEDIATELY) {
        SetLastError(ERROR_LOCK_VIOLATION);
    } else {
        ck_assert_int_lt(g_nqueue, MODEL_MAX);
        g_queue[g_nqueue].h = h;
        g_queue[g_nqueue].ov = ov;
        g_queue[g_nqueue].file = file;
        g_queue[g_nqueue++].excl = excl;
        ov->Internal = MODEL_PENDING;
        SetLastError(ERROR_IO_PENDING);
    }
    LeaveCriticalSection(&g_model_mu);
    return rc;
}

static int model_unlock(void *h, void *ov) {
    int found;
    EnterCriticalSection(&g_model_mu);
    found = model_unlock_handle(h);
    if (found) {
        g_unlocks++;
        model_complete(ov, 0);
    }
    LeaveCriticalSection(&g_model_mu);
    if (!found)
        SetLastError(ERROR_NOT_LOCKED);
    return found;
}

static int model_cancel(void *h, void *ovp) {
    int i, found = 0;
    EnterCriticalSection(&g_model_mu);
    if (g_grant_at_cancel) {
        g_grant_at_cancel = 0;
        model_grant(); /* the kernel got there first */
    }
    for (i = 0; i < g_nqueue; i++)
        if (g_queue[i].h == h && (!ovp || (void *)g_queue[i].ov == ovp)) {
            model_complete(g_queue[i].ov, MODEL_CANCELLED);
            memmove(g_queue + i, g_queue + i + 1, (size_t)(g_nqueue - i - 1) * sizeof g_queue[0]);
            g_nqueue--;
            g_cancels++;
            found = 1;
            break;
        }
    if (found)
        model_grant(); /* a request behind it may fit now */
    LeaveCriticalSection(&g_model_mu);
    if (!found)
        SetLastError(ERROR_NOT_FOUND);
    return found;
}

/* Closing a handle drops its range and its queued requests. */
static int model_close(void *h) {
    int i;
    EnterCriticalSection(&g_model_mu);
    for (i = 0; i < g_nqueue;)
        if (g_queue[i].h == h) {
            model_complete(g_queue[i].ov, MODEL_CANCELLED);
            memmove(g_queue + i, g_queue + i + 1, (size_t)(g_nqueue - i - 1) * sizeof g_queue[0]);
            g_nqueue--;
        } else {
            i++;
        }
    while (model_unlock_handle(h))
        ;
    LeaveCriticalSection(&g_model_mu);
    return CloseHandle(h);
}

static int model_async(void) { return 1; }

static void model_install(void) {
    InitializeCriticalSection(&g_model_mu);
    g_nheld = g_nqueue = g_cancels = g_unlocks = g_grant_at_cancel = 0;
    fl__sys.lock_file = model_lock;
    fl__sys.unlock_file = model_unlock;
    fl__sys.cancel_io = model_cancel;
    fl__sys.close_handle = model_close;
    fl__sys.async_lock_waits = model_async;
}

static int model_count(int *n) {
    int v;
    EnterCriticalSection(&g_model_mu);
    v = *n;
    LeaveCriticalSection(&g_model_mu);
    return v;
}

/* 1 if the hub's socket is readable within seconds. */
static int hub_readable(fl_hub *hub, double seconds) {
    fd_set rd;
    struct timeval tv;
    SOCKET s = (SOCKET)(intptr_t)fl_hub_fd(hub);
    FD_ZERO(&rd);
    FD_SET(s, &rd);
    tv.tv_sec = (long)seconds;
    tv.tv_usec = (long)((seconds - (double)tv.tv_sec) * 1e6);
    return select(0, &rd, NULL, NULL, &tv) == 1;
}

typedef struct hub_record {
    int n;
    uint64_t owner[8];
    int rc[8];
} hub_record;

static void hub_done(void *data, fl_lock *l, uint64_t owner, int rc) {
    hub_record *r = data;
    (void)l;
    r->owner[r->n] = owner;
    r->rc[r->n] = rc;
    r->n++;
}

static fl_lock *local_lock(const char *path) {
    fl_lock *l;
    fl_options o = FL_OPTIONS_INIT;
    o.thread_local = 1;
    ck_assert_msg(fl_lock_new(&l, path, &o) == 0, "%s", fl_last_error());
    return l;
}

static fl_acquire_args hub_args(int shared) {
    fl_acquire_args a;
    fl_acquire_args_init(&a);
    a.set = FL_ARG_TIMEOUT;
    a.timeout = -1;
    a.shared = shared;
    return a;
}

/* The wait is the queued request (a dispatch before the release leaves it
 * queued, issues no other), the release completes it, the thread pool's
 * wait makes the socket readable, the dispatch collects the win. */
START_TEST(hub_wait_is_the_queued_request) {
    const char *p = wt_path("q.lock");
    fl_lock *holder, *a;
    fl_acquire_args fa = hub_args(0);
    fl_hub_waiter *w;
    fl_hub *hub;
    hub_record r;
    memset(&r, 0, sizeof r);
    model_install();
    holder = wt_lock(p, FL_KERNEL);
    a = local_lock(p);
    ck_assert_int_eq(fl_acquire_ex(holder, 0, 1, 0.05), 0);
    ck_assert_int_eq(fl_hub_new(&hub), 0);
    ck_assert_int_eq(fl_hub_acquire(hub, a, 1, &fa, hub_done, &r, &w), 0);
    ck_assert_ptr_nonnull(w);
    ck_assert_int_eq(model_count(&g_nqueue), 1);
    ck_assert_int_eq(g_queue[0].excl, 1);
    ck_assert(!hub_readable(hub, 0));
    ck_assert_int_eq(fl_hub_dispatch(hub), 0);
    ck_assert_int_eq(model_count(&g_nqueue), 1); /* still the one request */
    ck_assert_int_eq(fl_release(holder, 0), 0);
    ck_assert_msg(hub_readable(hub, 10), "the grant did not make the socket readable");
    ck_assert_int_eq(fl_hub_dispatch(hub), 1);
    ck_assert_int_eq(r.rc[0], 0);
    ck_assert_int_eq(fl_lock_counter_as(a, 1), 1);
    ck_assert_int_eq(model_count(&g_nheld), 1);
    ck_assert(fl_hub_timeout(hub) == -1);
    ck_assert_int_eq(fl_release_as(a, 1, 0), 0);
    ck_assert_int_eq(model_count(&g_nheld), 0);
    fl_hub_free(hub);
    fl_lock_free(a);
    fl_lock_free(holder);
}
END_TEST

/* The kernel granted the request, no dispatch collected it, the wait is
 * cancelled: the grant is given back (UnlockFileEx), so others get the
 * lock; no callback runs. */
START_TEST(hub_cancel_after_the_grant_gives_it_back) {
    const char *p = wt_path("g.lock");
    fl_lock *holder, *a;
    fl_acquire_args fa = hub_args(0);
    fl_hub_waiter *w;
    fl_hub *hub;
    hub_record r;
    memset(&r, 0, sizeof r);
    model_install();
    holder = wt_lock(p, FL_KERNEL);
    a = local_lock(p);
    ck_assert_int_eq(fl_acquire_ex(holder, 0, 1, 0.05), 0);
    ck_assert_int_eq(fl_hub_new(&hub), 0);
    ck_assert_int_eq(fl_hub_acquire(hub, a, 1, &fa, hub_done, &r, &w), 0);
    ck_assert_int_eq(fl_release(holder, 0), 0);
    ck_assert_int_eq(model_count(&g_nheld), 1); /* granted to the hub's request */
    ck_assert_int_eq(model_count(&g_nqueue), 0);
    ck_assert_int_eq(fl_hub_cancel(w), 0);
    ck_assert_int_eq(model_count(&g_nheld), 0);
    ck_assert_int_eq(model_count(&g_unlocks), 2); /* the holder's, then the give-back */
    ck_assert_int_eq(fl_acquire_ex(holder, 0, 1, 0.05), 0);
    ck_assert_int_eq(fl_hub_dispatch(hub), 0);
    ck_assert_int_eq(r.n, 0);
    ck_assert_int_eq(fl_lock_counter_as(a, 1), 0);
    ck_assert_int_eq(fl_release(holder, 0), 0);
    fl_hub_free(hub);
    fl_lock_free(a);
    fl_lock_free(holder);
}
END_TEST

/* Cancelled while still queued: the request is withdrawn (CancelIoEx), the
 * holder's release grants nothing to the hub. */
START_TEST(hub_cancel_while_queued_withdraws) {
    const char *p = wt_path("c.lock");
    fl_lock *holder, *a;
    fl_acquire_args fa = hub_args(0);
    fl_hub_waiter *w;
    fl_hub *hub;
    hub_record r;
    memset(&r, 0, sizeof r);
    model_install();
    holder = wt_lock(p, FL_KERNEL);
    a = local_lock(p);
    ck_assert_int_eq(fl_acquire_ex(holder, 0, 1, 0.05), 0);
    ck_assert_int_eq(fl_hub_new(&hub), 0);
    ck_assert_int_eq(fl_hub_acquire(hub, a, 1, &fa, hub_done, &r, &w), 0);
    ck_assert_int_eq(model_count(&g_nqueue), 1);
    ck_assert_int_eq(fl_hub_cancel(w), 0);
    ck_assert_int_eq(model_count(&g_nqueue), 0);
    ck_assert_int_eq(model_count(&g_cancels), 1);
    ck_assert_int_eq(fl_release(holder, 0), 0);
    ck_assert_int_eq(model_count(&g_nheld), 0);
    ck_assert(fl_hub_timeout(hub) == -1);
    fl_hub_free(hub);
    fl_lock_free(a);
    fl_lock_free(holder);
}
END_TEST

/* The first in line (a writer) is cancelled; the next is a reader: the
 * writer's queued exclusive request is withdrawn and a shared one queued,
 * so the reader's grant leaves room for other readers. */
START_TEST(hub_request_follows_the_first_waiters_mode) {
    const char *p = wt_path("m.lock");
    fl_lock *holder, *reader, *a, *b;
    fl_acquire_args ex = hub_args(0), sh = hub_args(1);
    fl_hub_waiter *wa, *wb;
    fl_hub *hub;
    hub_record r;
    memset(&r, 0, sizeof r);
    model_install();
    holder = wt_lock(p, FL_KERNEL);
    reader = wt_lock(p, FL_KERNEL);
    a = local_lock(p);
    b = local_lock(p);
    ck_assert_int_eq(fl_acquire_ex(holder, 0, 1, 0.05), 0);
    ck_assert_int_eq(fl_hub_new(&hub), 0);
    ck_assert_int_eq(fl_hub_acquire(hub, a, 1, &ex, hub_done, &r, &wa), 0);
    ck_assert_int_eq(fl_hub_acquire(hub, b, 2, &sh, hub_done, &r, &wb), 0);
    ck_assert_int_eq(model_count(&g_nqueue), 1);
    ck_assert_int_eq(g_queue[0].excl, 1);
    ck_assert_int_eq(fl_hub_cancel(wa), 0);
    ck_assert(fl_hub_timeout(hub) == 0);
    ck_assert_int_eq(fl_hub_dispatch(hub), 0);
    ck_assert_int_eq(model_count(&g_nqueue), 1);
    ck_assert_int_eq(g_queue[0].excl, 0);
    ck_assert_int_eq(model_count(&g_cancels), 1);
    ck_assert_int_eq(fl_acquire_shared(reader, 0, 1, 0.05), FL_ETIMEOUT);
    ck_assert_int_eq(fl_release(holder, 0), 0);
    ck_assert_msg(hub_readable(hub, 10), "the grant did not make the socket readable");
    ck_assert_int_eq(fl_hub_dispatch(hub), 1);
    ck_assert(r.owner[0] == 2 && r.rc[0] == 0);
    ck_assert_int_eq(fl_acquire_shared(reader, 0, 1, 0.05), 0); /* readers share */
    ck_assert_int_eq(fl_acquire_ex(holder, 0, 1, 0.05), FL_ETIMEOUT);
    ck_assert_int_eq(fl_release(reader, 0), 0);
    ck_assert_int_eq(fl_release_as(b, 2, 0), 0);
    ck_assert_int_eq(model_count(&g_nheld), 0);
    fl_hub_free(hub);
    fl_lock_free(a);
    fl_lock_free(b);
    fl_lock_free(reader);
    fl_lock_free(holder);
}
END_TEST

/* The grant lands between the cancel's CancelIoEx and its collection
 * (CancelIoEx finds nothing to cancel, the OVERLAPPED says granted): the
 * range is unlocked again and passes on. */
START_TEST(hub_grant_racing_the_cancel_is_given_back) {
    const char *p = wt_path("r.lock");
    fl_lock *holder, *a;
    fl_acquire_args fa = hub_args(0);
    fl_hub_waiter *w;
    fl_hub *hub;
    hub_record r;
    memset(&r, 0, sizeof r);
    model_install();
    holder = wt_lock(p, FL_KERNEL);
    a = local_lock(p);
    ck_assert_int_eq(fl_acquire_ex(holder, 0, 1, 0.05), 0);
    ck_assert_int_eq(fl_hub_new(&hub), 0);
    ck_assert_int_eq(fl_hub_acquire(hub, a, 1, &fa, hub_done, &r, &w), 0);
    g_grant_at_cancel = 1;
    ck_assert_int_eq(fl_release(holder, 0), 0);
    ck_assert_int_eq(model_count(&g_nqueue), 1); /* not granted yet */
    ck_assert_int_eq(fl_hub_cancel(w), 0);
    ck_assert_int_eq(model_count(&g_cancels), 0); /* nothing was left to cancel */
    ck_assert_int_eq(model_count(&g_nheld), 0);   /* the grant went back */
    ck_assert_int_eq(model_count(&g_unlocks), 2);
    ck_assert_int_eq(fl_acquire_ex(holder, 0, 1, 0.05), 0);
    ck_assert_int_eq(r.n, 0);
    ck_assert_int_eq(fl_release(holder, 0), 0);
    fl_hub_free(hub);
    fl_lock_free(a);
    fl_lock_free(holder);
}
END_TEST

/* The blocking calls' overlapped wait (win32.c: lock_issue, lock_collect,
 * lock_withdraw), which Wine cannot run either: a timed wait queues one
 * request and wins when another thread releases; a timed-out one leaves
 * nothing queued or held. */
typedef struct release_later {
    fl_lock *holder;
} release_later;

static int release_when_queued(void *arg) {
    release_later *rl = arg;
    int i;
    for (i = 0; i < 10000 && model_count(&g_nqueue) == 0; i++)
        Sleep(1);
    return fl_release(rl->holder, 0);
}

START_TEST(blocking_wait_is_the_queued_request) {
    const char *p = wt_path("b.lock");
    fl_lock *holder, *a;
    release_later rl;
    HANDLE t;
    fl_options o = FL_OPTIONS_INIT;
    model_install();
    o.thread_local = 0; /* released by another thread */
    ck_assert_int_eq(fl_lock_new(&holder, p, &o), 0);
    a = wt_lock(p, FL_KERNEL);
    ck_assert_int_eq(fl_acquire_ex(holder, 0, 1, 0.05), 0);
    ck_assert_int_eq(fl_acquire_ex(a, 0.2, 1, 0.05), FL_ETIMEOUT);
    ck_assert_int_eq(model_count(&g_nqueue), 0); /* withdrawn */
    ck_assert_int_eq(model_count(&g_nheld), 1);  /* the holder only */
    rl.holder = holder;
    t = wt_thread(release_when_queued, &rl);
    ck_assert_msg(fl_acquire_ex(a, 30, 1, 0.05) == 0, "%s", fl_last_error());
    ck_assert_int_eq(wt_join(t, 30), 0);
    ck_assert_int_eq(model_count(&g_nheld), 1);
    ck_assert_int_eq(fl_release(a, 0), 0);
    ck_assert_int_eq(model_count(&g_nheld), 0);
    fl_lock_free(a);
    fl_lock_free(holder);
}
END_TEST

/* Freeing the hub with a granted, uncollected request: the wait ends with
 * FL_ECANCELED and the grant is given back. */
START_TEST(hub_free_gives_a_grant_back) {
    const char *p = wt_path("f.lock");
    fl_lock *holder, *a;
    fl_acquire_args fa = hub_args(0);
    fl_hub_waiter *w;
    fl_hub *hub;
    hub_record r;
    memset(&r, 0, sizeof r);
    model_install();
    holder = wt_lock(p, FL_KERNEL);
    a = local_lock(p);
    ck_assert_int_eq(fl_acquire_ex(holder, 0, 1, 0.05), 0);
    ck_assert_int_eq(fl_hub_new(&hub), 0);
    ck_assert_int_eq(fl_hub_acquire(hub, a, 1, &fa, hub_done, &r, &w), 0);
    ck_assert_int_eq(fl_release(holder, 0), 0);
    ck_assert_int_eq(model_count(&g_nheld), 1);
    fl_hub_free(hub);
    ck_assert_int_eq(r.n, 1);
    ck_assert_int_eq(r.rc[0], FL_ECANCELED);
    ck_assert_int_eq(model_count(&g_nheld), 0);
    ck_assert_int_eq(fl_lock_counter_as(a, 1), 0);
    fl_lock_free(a);
    fl_lock_free(holder);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* Attacks on the hub's Windows path (model kernel)                        */
/* ---------------------------------------------------------------------- */

/* Drives the hub the way a loop does (select on the socket for the hub's
 * timeout, then dispatch) until *count reaches want, stop() says so, or
 * limit seconds pass; returns the number of dispatches. */
static int drive_until(fl_hub *hub, const int *count, int want, volatile LONG *stop, double limit) {
    ULONGLONG end = GetTickCount64() + (ULONGLONG)(limit * 1000);
    int n = 0;
    while (*count < want && !(stop && *stop) && GetTickCount64() < end) {
        double t = fl_hub_timeout(hub);
        if (fl_hub_fd(hub) >= 0)
            (void)hub_readable(hub, t < 0 || t > 0.1 ? 0.1 : t);
        else
            Sleep(t < 0 || t > 0.1 ? 100 : (DWORD)(t * 1000));
        ck_assert_int_ge(fl_hub_dispatch(hub), 0);
        n++;
    }
    return n;
}

typedef struct same_object {
    fl_lock *l;
    volatile LONG done;
    int rc;
} same_object;

static int blocking_acquire(void *arg) {
    same_object *s = arg;
    s->rc = fl_acquire_ex(s->l, 20, 1, 0.05);
    InterlockedExchange(&s->done, 1);
    return s->rc;
}

/* One lock object shared by the threads (thread_local off, as an
 * AsyncFileLock is by default): a hub waiter queued its request first, then
 * a thread of the same process blocked on the same object, its request
 * queued behind. The release grants the hub's request, but the hub's
 * attempt can only say busy (the other thread leads the object's attempt)
 * while that thread waits in the kernel behind the hub's grant: each
 * waited for the other (the hub spinning on a grant it could not take)
 * until the thread's timeout. The hub must give the grant back so the
 * thread wins, and join its hold. */
START_TEST(hub_yields_to_a_thread_of_the_same_object) {
    const char *p = wt_path("o.lock");
    fl_lock *holder, *l;
    fl_acquire_args fa = hub_args(0);
    fl_options o = FL_OPTIONS_INIT;
    fl_hub_waiter *w;
    fl_hub *hub;
    hub_record r;
    same_object s;
    HANDLE t;
    int i;
    memset(&r, 0, sizeof r);
    memset(&s, 0, sizeof s);
    model_install();
    holder = wt_lock(p, FL_KERNEL);
    o.thread_local = 0;
    ck_assert_int_eq(fl_lock_new(&l, p, &o), 0);
    ck_assert_int_eq(fl_acquire_ex(holder, 0, 1, 0.05), 0);
    ck_assert_int_eq(fl_hub_new(&hub), 0);
    ck_assert_int_eq(fl_hub_acquire(hub, l, 1, &fa, hub_done, &r, &w), 0);
    ck_assert_int_eq(model_count(&g_nqueue), 1);
    s.l = l;
    t = wt_thread(blocking_acquire, &s);
    for (i = 0; i < 10000 && model_count(&g_nqueue) < 2; i++)
        Sleep(1);
    ck_assert_int_eq(model_count(&g_nqueue), 2); /* the thread's request, behind */
    ck_assert_int_eq(fl_release(holder, 0), 0);
    (void)drive_until(hub, &r.n, 1, NULL, 30);
    ck_assert_int_eq(wt_join(t, 30), 0);
    ck_assert_msg(s.rc == 0, "the thread behind the hub's grant did not win: %d", s.rc);
    ck_assert_int_eq(r.n, 1);
    ck_assert_int_eq(r.rc[0], 0); /* joined the thread's hold */
    ck_assert_int_eq(model_count(&g_nheld), 1);
    ck_assert_int_eq(fl_release_as(l, 1, 0), 0);
    ck_assert_int_eq(fl_release(l, 0), 0);
    ck_assert_int_eq(model_count(&g_nheld), 0);
    ck_assert_int_eq(model_count(&g_nqueue), 0);
    fl_hub_free(hub);
    fl_lock_free(l);
    fl_lock_free(holder);
}
END_TEST

/* The read/write kind of the case above: a hub writer of a read/write
 * object shared by the threads waits for the writers' gate (its probe's
 * request queued first), then a thread of the same object waits for the
 * gate, its request behind. The gate's release grants the hub's request,
 * but the hub's waiter stands aside while that thread acquires (it could
 * only say busy on the object afterwards): it must give the grant back so
 * the thread passes the gate and wins, and then join the thread's hold. */
START_TEST(rw_hub_gate_waiter_yields_to_a_thread_of_the_same_object) {
    const char *p = wt_path("og.lock");
    char gate[MAX_PATH];
    fl_lock *holder, *l;
    fl_acquire_args fa = hub_args(0);
    fl_options o = FL_OPTIONS_INIT;
    fl_hub_waiter *w;
    fl_hub *hub;
    hub_record r;
    same_object s;
    HANDLE t;
    int i;
    memset(&r, 0, sizeof r);
    memset(&s, 0, sizeof s);
    model_install();
    snprintf(gate, sizeof gate, "%s.gate", p);
    holder = wt_lock(gate, FL_KERNEL); /* holds the gate itself */
    o.thread_local = 0;
    o.read_write = 1;
    ck_assert_int_eq(fl_lock_new(&l, p, &o), 0);
    ck_assert_int_eq(fl_acquire_ex(holder, 0, 1, 0.05), 0);
    ck_assert_int_eq(fl_hub_new(&hub), 0);
    ck_assert_int_eq(fl_hub_acquire(hub, l, 1, &fa, hub_done, &r, &w), 0);
    ck_assert_ptr_nonnull(w);
    ck_assert_int_eq(model_count(&g_nqueue), 1); /* the hub's request for the gate */
    s.l = l;
    t = wt_thread(blocking_acquire, &s);
    for (i = 0; i < 10000 && model_count(&g_nqueue) < 2; i++)
        Sleep(1);
    ck_assert_int_eq(model_count(&g_nqueue), 2); /* the thread's request, behind */
    ck_assert_int_eq(fl_release(holder, 0), 0);
    (void)drive_until(hub, &r.n, 1, NULL, 30);
    ck_assert_int_eq(wt_join(t, 30), 0);
    ck_assert_msg(s.rc == 0, "the thread behind the hub's grant of the gate did not win: %d", s.rc);
    ck_assert_int_eq(r.n, 1);
    ck_assert_int_eq(r.rc[0], 0);               /* joined the thread's hold */
    ck_assert_int_eq(model_count(&g_nheld), 1); /* the lock; the gate is open */
    ck_assert_int_eq(model_count(&g_nqueue), 0);
    ck_assert_int_eq(fl_release_as(l, 1, 0), 0);
    ck_assert_int_eq(fl_release(l, 0), 0);
    ck_assert_int_eq(model_count(&g_nheld), 0);
    fl_hub_free(hub);
    fl_lock_free(l);
    fl_lock_free(holder);
}
END_TEST

static uintptr_t fail_socket(int af, int type, int protocol) {
    (void)af, (void)type, (void)protocol;
    WSASetLastError(WSAEMFILE);
    return (uintptr_t)INVALID_SOCKET;
}

static int fail_register_wait(void **wait, void *object, void *ctx) {
    (void)object, (void)ctx;
    *wait = NULL;
    SetLastError(ERROR_NOT_ENOUGH_MEMORY);
    return 0;
}

/* The re-check interval a busy entry keeps: at most the waiter's poll
 * interval (0.05 s) while nothing can wake the loop. */
static void busy_dispatches_keep(fl_hub *hub, double most) {
    int i;
    for (i = 0; i < 6; i++) {
        double t = fl_hub_timeout(hub);
        ck_assert_msg(t >= 0 && t <= most + 1e-6,
                      "dispatch %d: the hub's timeout is %g s, more than %g s", i, t, most);
        Sleep((DWORD)(t * 1000) + 1);
        ck_assert_int_eq(fl_hub_dispatch(hub), 0);
    }
}

/* No socket pair (socket() fails): fl_hub_fd() is -1 and the timers alone
 * drive the hub (docs/windows.md), at the waiter's cadence. A queued
 * request or change notification behind a thread-pool wait that can reach
 * no socket must not count as a watch: it backed the timer off to 1 s with
 * nothing left to wake the loop. */
START_TEST(hub_without_sockets_keeps_the_callers_cadence) {
    const char *p = wt_path(_i == FL_SOFT ? "ns.lock" : "nk.lock");
    fl_lock *holder, *a;
    fl_acquire_args fa = hub_args(0);
    fl_options o = FL_OPTIONS_INIT;
    fl_hub_waiter *w;
    fl_hub *hub;
    hub_record r;
    memset(&r, 0, sizeof r);
    model_install();
    fl__sys.socket = fail_socket;
    holder = wt_lock(p, (fl_kind)_i);
    o.kind = (fl_kind)_i;
    o.thread_local = 1;
    ck_assert_int_eq(fl_lock_new(&a, p, &o), 0);
    ck_assert_int_eq(fl_acquire_ex(holder, 0, 1, 0.05), 0);
    ck_assert_int_eq(fl_hub_new(&hub), 0);
    ck_assert_int_eq(fl_hub_fd(hub), -1);
    ck_assert_int_eq(fl_hub_acquire(hub, a, 1, &fa, hub_done, &r, &w), 0);
    busy_dispatches_keep(hub, 0.05);
    ck_assert_int_eq(fl_release(holder, 0), 0);
    (void)drive_until(hub, &r.n, 1, NULL, 30);
    ck_assert_int_eq(r.n, 1);
    ck_assert_int_eq(r.rc[0], 0);
    ck_assert_int_eq(fl_release_as(a, 1, 0), 0);
    if (_i == FL_KERNEL)
        ck_assert_int_eq(model_count(&g_nheld) + model_count(&g_nqueue), 0);
    fl_hub_free(hub);
    fl_lock_free(a);
    fl_lock_free(holder);
}
END_TEST

/* RegisterWaitForSingleObject fails: the entry re-checks on its timer at
 * the waiter's cadence and still wins after the release; a kernel entry's
 * request queued meanwhile is collected by that re-check. */
START_TEST(hub_without_thread_pool_wait_keeps_the_callers_cadence) {
    const char *p = wt_path(_i == FL_SOFT ? "ws.lock" : "wk.lock");
    fl_lock *holder, *a;
    fl_acquire_args fa = hub_args(0);
    fl_options o = FL_OPTIONS_INIT;
    fl_hub_waiter *w;
    fl_hub *hub;
    hub_record r;
    memset(&r, 0, sizeof r);
    model_install();
    fl__sys.register_wait = fail_register_wait;
    holder = wt_lock(p, (fl_kind)_i);
    o.kind = (fl_kind)_i;
    o.thread_local = 1;
    ck_assert_int_eq(fl_lock_new(&a, p, &o), 0);
    ck_assert_int_eq(fl_acquire_ex(holder, 0, 1, 0.05), 0);
    ck_assert_int_eq(fl_hub_new(&hub), 0);
    ck_assert_int_ge(fl_hub_fd(hub), 0);
    ck_assert_int_eq(fl_hub_acquire(hub, a, 1, &fa, hub_done, &r, &w), 0);
    busy_dispatches_keep(hub, 0.05);
    ck_assert_int_eq(fl_release(holder, 0), 0);
    (void)drive_until(hub, &r.n, 1, NULL, 30);
    ck_assert_int_eq(r.n, 1);
    ck_assert_int_eq(r.rc[0], 0);
    ck_assert_int_eq(fl_release_as(a, 1, 0), 0);
    if (_i == FL_KERNEL)
        ck_assert_int_eq(model_count(&g_nheld) + model_count(&g_nqueue), 0);
    fl_hub_free(hub);
    fl_lock_free(a);
    fl_lock_free(holder);
}
END_TEST

/* LockFileEx errors other than ERROR_IO_PENDING: a request that would
 * have to wait fails at once with g_wait_error (a fail-now request still
 * says ERROR_LOCK_VIOLATION). model_fail_first() below completes a queued
 * request with an error status instead. */
static unsigned long g_wait_error;
static int (*model_lock_real)(void *h, unsigned long flags, void *ov);
static int model_lock_wait_fails(void *h, unsigned long flags, void *ov) {
    int busy;
    EnterCriticalSection(&g_model_mu);
    {
        unsigned long long file = model_file(h);
        busy = model_queued_before(g_nqueue, file) ||
               !model_free_for(file, (flags & LOCKFILE_EXCLUSIVE_LOCK) != 0);
    }
    LeaveCriticalSection(&g_model_mu);
    if (busy && !(flags & LOCKFILE_FAIL_IMMEDIATELY)) {
        SetLastError(g_wait_error);
        return 0;
    }
    return model_lock_real(h, flags, ov);
}

/* The waiting request cannot be queued (ERROR_INVALID_PARAMETER,
 * ERROR_NOT_ENOUGH_MEMORY, ...): the hub re-checks on its timer at the
 * waiter's cadence and wins after the release; nothing is left queued. */
START_TEST(hub_request_refused_falls_back_to_the_timer) {
    const char *p = wt_path("e.lock");
    fl_lock *holder, *a;
    fl_acquire_args fa = hub_args(0);
    fl_hub_waiter *w;
    fl_hub *hub;
    hub_record r;
    memset(&r, 0, sizeof r);
    model_install();
    model_lock_real = fl__sys.lock_file;
    fl__sys.lock_file = model_lock_wait_fails;
    g_wait_error = ERROR_INVALID_PARAMETER;
    holder = wt_lock(p, FL_KERNEL);
    a = local_lock(p);
    ck_assert_int_eq(fl_acquire_ex(holder, 0, 1, 0.05), 0);
    ck_assert_int_eq(fl_hub_new(&hub), 0);
    ck_assert_int_eq(fl_hub_acquire(hub, a, 1, &fa, hub_done, &r, &w), 0);
    ck_assert_int_eq(model_count(&g_nqueue), 0);
    busy_dispatches_keep(hub, 0.05);
    ck_assert_int_eq(fl_release(holder, 0), 0);
    (void)drive_until(hub, &r.n, 1, NULL, 30);
    ck_assert_int_eq(r.n, 1);
    ck_assert_int_eq(r.rc[0], 0);
    ck_assert_int_eq(fl_release_as(a, 1, 0), 0);
    ck_assert_int_eq(model_count(&g_nheld) + model_count(&g_nqueue), 0);
    fl_hub_free(hub);
    fl_lock_free(a);
    fl_lock_free(holder);
}
END_TEST

/* Completes the first queued request with status (not a grant). */
static void model_fail_first(unsigned long status) {
    EnterCriticalSection(&g_model_mu);
    ck_assert_int_gt(g_nqueue, 0);
    model_complete(g_queue[0].ov, status);
    memmove(g_queue, g_queue + 1, (size_t)--g_nqueue * sizeof g_queue[0]);
    LeaveCriticalSection(&g_model_mu);
}

typedef struct err_record {
    int n, rc;
    char msg[512];
} err_record;

static void err_done(void *data, fl_lock *l, uint64_t owner, int rc) {
    err_record *e = data;
    (void)l, (void)owner;
    e->n++;
    e->rc = rc;
    snprintf(e->msg, sizeof e->msg, "%s", rc < 0 ? fl_last_error() : "");
}

/* The queued request ends in an I/O error (STATUS_UNEXPECTED_IO_ERROR):
 * the socket wakes the loop and the first waiter fails with an error that
 * names the path (never a Timeout, never a hang); the next waiter goes on
 * waiting with a new request and wins after the release. */
START_TEST(hub_request_failing_is_reported) {
    const char *p = wt_path("x.lock");
    fl_lock *holder, *a, *b;
    fl_acquire_args fa = hub_args(0);
    fl_hub_waiter *wa, *wb;
    fl_hub *hub;
    err_record e;
    hub_record r;
    memset(&e, 0, sizeof e);
    memset(&r, 0, sizeof r);
    model_install();
    holder = wt_lock(p, FL_KERNEL);
    a = local_lock(p);
    b = local_lock(p);
    ck_assert_int_eq(fl_acquire_ex(holder, 0, 1, 0.05), 0);
    ck_assert_int_eq(fl_hub_new(&hub), 0);
    ck_assert_int_eq(fl_hub_acquire(hub, a, 1, &fa, err_done, &e, &wa), 0);
    ck_assert_int_eq(fl_hub_acquire(hub, b, 2, &fa, hub_done, &r, &wb), 0);
    ck_assert_int_eq(model_count(&g_nqueue), 1);
    model_fail_first(0xC00000E9UL); /* STATUS_UNEXPECTED_IO_ERROR */
    ck_assert_msg(hub_readable(hub, 10), "the failed request did not wake the loop");
    (void)drive_until(hub, &e.n, 1, NULL, 10);
    ck_assert_int_eq(e.n, 1);
    ck_assert_int_lt(e.rc, 0);
    ck_assert_int_ne(e.rc, FL_ETIMEOUT);
    ck_assert_msg(strstr(e.msg, "x.lock") != NULL, "the message names no path: %s", e.msg);
    ck_assert_int_eq(r.n, 0);
    ck_assert_int_eq(fl_release(holder, 0), 0);
    (void)drive_until(hub, &r.n, 1, NULL, 30);
    ck_assert_int_eq(r.n, 1);
    ck_assert_int_eq(r.rc[0], 0);
    ck_assert_int_eq(fl_release_as(b, 2, 0), 0);
    ck_assert_int_eq(model_count(&g_nheld) + model_count(&g_nqueue), 0);
    fl_hub_free(hub);
    fl_lock_free(a);
    fl_lock_free(b);
    fl_lock_free(holder);
}
END_TEST

/* The queued request is cancelled by the system (as Windows cancels a
 * thread's I/O when the thread that issued it exits: STATUS_CANCELLED):
 * the loop wakes, the hub queues a new request, and the waiter wins after
 * the release. */
START_TEST(hub_request_aborted_is_queued_again) {
    const char *p = wt_path("t.lock");
    fl_lock *holder, *a;
    fl_acquire_args fa = hub_args(0);
    fl_hub_waiter *w;
    fl_hub *hub;
    hub_record r;
    memset(&r, 0, sizeof r);
    model_install();
    holder = wt_lock(p, FL_KERNEL);
    a = local_lock(p);
    ck_assert_int_eq(fl_acquire_ex(holder, 0, 1, 0.05), 0);
    ck_assert_int_eq(fl_hub_new(&hub), 0);
    ck_assert_int_eq(fl_hub_acquire(hub, a, 1, &fa, hub_done, &r, &w), 0);
    model_fail_first(MODEL_CANCELLED);
    ck_assert_msg(hub_readable(hub, 10), "the aborted request did not wake the loop");
    ck_assert_int_eq(fl_hub_dispatch(hub), 0);
    ck_assert_int_eq(model_count(&g_nqueue), 1); /* queued again */
    ck_assert_int_eq(fl_release(holder, 0), 0);
    ck_assert_msg(hub_readable(hub, 10), "the grant did not make the socket readable");
    ck_assert_int_eq(fl_hub_dispatch(hub), 1);
    ck_assert_int_eq(r.rc[0], 0);
    ck_assert_int_eq(fl_release_as(a, 1, 0), 0);
    ck_assert_int_eq(model_count(&g_nheld) + model_count(&g_nqueue), 0);
    fl_hub_free(hub);
    fl_lock_free(a);
    fl_lock_free(holder);
}
END_TEST

/* Two hubs wait on one file; the first hub's request is granted, its
 * waiter cancelled before any dispatch: the grant is given back and passes
 * to the second hub's request, whose socket becomes readable. */
START_TEST(hub_cancelled_grant_wakes_another_hub) {
    const char *p = wt_path("h.lock");
    fl_lock *holder, *a, *b;
    fl_acquire_args fa = hub_args(0);
    fl_hub_waiter *wa, *wb;
    fl_hub *h1, *h2;
    hub_record r1, r2;
    memset(&r1, 0, sizeof r1);
    memset(&r2, 0, sizeof r2);
    model_install();
    holder = wt_lock(p, FL_KERNEL);
    a = local_lock(p);
    b = local_lock(p);
    ck_assert_int_eq(fl_acquire_ex(holder, 0, 1, 0.05), 0);
    ck_assert_int_eq(fl_hub_new(&h1), 0);
    ck_assert_int_eq(fl_hub_new(&h2), 0);
    ck_assert_int_eq(fl_hub_acquire(h1, a, 1, &fa, hub_done, &r1, &wa), 0);
    ck_assert_int_eq(fl_hub_acquire(h2, b, 2, &fa, hub_done, &r2, &wb), 0);
    ck_assert_int_eq(model_count(&g_nqueue), 2);
    ck_assert_int_eq(fl_release(holder, 0), 0);
    ck_assert(hub_readable(h1, 10));
    ck_assert(!hub_readable(h2, 0));
    ck_assert_int_eq(fl_hub_cancel(wa), 0);
    ck_assert_msg(hub_readable(h2, 10), "the given-back grant did not wake the other hub");
    ck_assert_int_eq(fl_hub_dispatch(h2), 1);
    ck_assert_int_eq(r2.rc[0], 0);
    ck_assert_int_eq(fl_hub_dispatch(h1), 0);
    ck_assert_int_eq(r1.n, 0);
    ck_assert_int_eq(model_count(&g_nheld), 1);
    ck_assert_int_eq(fl_release_as(b, 2, 0), 0);
    ck_assert_int_eq(model_count(&g_nheld) + model_count(&g_nqueue), 0);
    fl_hub_free(h1);
    fl_hub_free(h2);
    fl_lock_free(a);
    fl_lock_free(b);
    fl_lock_free(holder);
}
END_TEST

/* The mode switch's withdrawal loses the race with the grant (CancelIoEx
 * finds the writer's request granted): the exclusive grant is given back
 * and the reader behind wins in shared mode, so other readers still
 * share; nothing else stays held. */
START_TEST(hub_mode_switch_racing_the_grant) {
    const char *p = wt_path("s.lock");
    fl_lock *holder, *reader, *a, *b;
    fl_acquire_args ex = hub_args(0), sh = hub_args(1);
    fl_hub_waiter *wa, *wb;
    fl_hub *hub;
    hub_record r;
    memset(&r, 0, sizeof r);
    model_install();
    holder = wt_lock(p, FL_KERNEL);
    reader = wt_lock(p, FL_KERNEL);
    a = local_lock(p);
    b = local_lock(p);
    ck_assert_int_eq(fl_acquire_ex(holder, 0, 1, 0.05), 0);
    ck_assert_int_eq(fl_hub_new(&hub), 0);
    ck_assert_int_eq(fl_hub_acquire(hub, a, 1, &ex, hub_done, &r, &wa), 0);
    ck_assert_int_eq(fl_hub_acquire(hub, b, 2, &sh, hub_done, &r, &wb), 0);
    g_grant_at_cancel = 1;
    ck_assert_int_eq(fl_release(holder, 0), 0);
    ck_assert_int_eq(fl_hub_cancel(wa), 0);
    (void)drive_until(hub, &r.n, 1, NULL, 10);
    ck_assert_int_eq(r.n, 1);
    ck_assert(r.owner[0] == 2 && r.rc[0] == 0);
    ck_assert_int_eq(fl_acquire_shared(reader, 0, 1, 0.05), 0);
    ck_assert_int_eq(fl_acquire_ex(holder, 0, 1, 0.05), FL_ETIMEOUT);
    ck_assert_int_eq(fl_release(reader, 0), 0);
    ck_assert_int_eq(fl_release_as(b, 2, 0), 0);
    ck_assert_int_eq(model_count(&g_nheld) + model_count(&g_nqueue), 0);
    fl_hub_free(hub);
    fl_lock_free(a);
    fl_lock_free(b);
    fl_lock_free(reader);
    fl_lock_free(holder);
}
END_TEST

/* Handles (files, events, waits, sockets) before and after hubs that wait,
 * win, are cancelled with a grant pending and are freed with waiters. */
static DWORD handle_count(void) {
    /* Wine's GetProcessHandleCount says 0: count the values that name an
     * open handle instead (handle values are multiples of 4). */
    DWORD n = 0, flags;
    uintptr_t v;
    for (v = 4; v < 0x20000; v += 4)
        if (GetHandleInformation((HANDLE)v, &flags))
            n++;
    ck_assert_uint_gt(n, 0);
    return n;
}

static void hub_round(const char *p, fl_lock *holder) {
    fl_lock *a = local_lock(p), *b = local_lock(p), *c = local_lock(p);
    fl_acquire_args fa = hub_args(0);
    fl_hub_waiter *wa, *wb, *wc;
    fl_hub *hub;
    hub_record r;
    memset(&r, 0, sizeof r);
    ck_assert_int_eq(fl_acquire_ex(holder, 0, 1, 0.05), 0);
    ck_assert_int_eq(fl_hub_new(&hub), 0);
    ck_assert_int_eq(fl_hub_acquire(hub, a, 1, &fa, hub_done, &r, &wa), 0);
    ck_assert_int_eq(fl_hub_acquire(hub, b, 2, &fa, hub_done, &r, &wb), 0);
    ck_assert_int_eq(fl_hub_acquire(hub, c, 3, &fa, hub_done, &r, &wc), 0);
    ck_assert_int_eq(fl_release(holder, 0), 0);
    ck_assert(hub_readable(hub, 10));
    ck_assert_int_eq(fl_hub_cancel(wa), 0); /* granted, not collected */
    (void)drive_until(hub, &r.n, 1, NULL, 10);
    ck_assert(r.n == 1 && r.owner[0] == 2 && r.rc[0] == 0);
    ck_assert_int_eq(fl_release_as(b, 2, 0), 0);
    (void)drive_until(hub, &r.n, 2, NULL, 10);
    ck_assert(r.n == 2 && r.owner[1] == 3 && r.rc[1] == 0);
    ck_assert_int_eq(fl_acquire_ex(holder, 0, 1, 0.05), FL_ETIMEOUT);
    ck_assert_int_eq(fl_release_as(c, 3, 0), 0);
    ck_assert_int_eq(fl_acquire_ex(holder, 0, 1, 0.05), 0);
    ck_assert_int_eq(fl_hub_acquire(hub, a, 1, &fa, hub_done, &r, &wa), 0);
    fl_hub_free(hub); /* with a queued waiter */
    ck_assert_int_eq(r.n, 3);
    ck_assert_int_eq(r.rc[2], FL_ECANCELED);
    ck_assert_int_eq(fl_release(holder, 0), 0);
    fl_lock_free(a);
    fl_lock_free(b);
    fl_lock_free(c);
}

START_TEST(hub_leaks_no_handles) {
    const char *p = wt_path("n.lock");
    fl_lock *holder;
    DWORD before, after;
    int i;
    model_install();
    holder = wt_lock(p, FL_KERNEL);
    hub_round(p, holder); /* first use: Winsock's and the thread pool's own */
    before = handle_count();
    for (i = 0; i < 20; i++)
        hub_round(p, holder);
    after = handle_count();
    ck_assert_msg(after <= before, "handles: %lu before 20 rounds, %lu after",
                  (unsigned long)before, (unsigned long)after);
    ck_assert_int_eq(model_count(&g_nheld) + model_count(&g_nqueue), 0);
    fl_lock_free(holder);
}
END_TEST

/* The hub's sockets are never inheritable, not even for the moment before
 * SetHandleInformation(): a process another thread starts then (with
 * handle inheritance, as every CreateProcess that redirects a child's
 * standard handles) would keep them. Checked on each socket as it is made;
 * the accepted one, and both ends once the hub stands. */
static int g_inheritable, g_sockets;
static uintptr_t checked_socket(int af, int type, int protocol) {
    uintptr_t s = fl__hub_socket(af, type, protocol);
    DWORD flags = 0;
    if ((SOCKET)s != INVALID_SOCKET) {
        g_sockets++;
        if (!GetHandleInformation((HANDLE)s, &flags) || (flags & HANDLE_FLAG_INHERIT))
            g_inheritable++;
    }
    return s;
}

START_TEST(hub_sockets_never_inheritable) {
    fl_hub *hub;
    DWORD flags = 0;
    g_inheritable = g_sockets = 0;
    fl__sys.socket = checked_socket;
    ck_assert_int_eq(fl_hub_new(&hub), 0);
    ck_assert_int_ge(fl_hub_fd(hub), 0);
    ck_assert_int_eq(g_sockets, 2);
    ck_assert_int_eq(g_inheritable, 0);
    ck_assert(GetHandleInformation((HANDLE)(intptr_t)fl_hub_fd(hub), &flags));
    ck_assert(!(flags & HANDLE_FLAG_INHERIT));
    fl_hub_free(hub);
}
END_TEST

static fl_lock *rw_local(const char *path) {
    fl_lock *l;
    fl_options o = FL_OPTIONS_INIT;
    o.read_write = 1;
    o.thread_local = 1;
    ck_assert_msg(fl_lock_new(&l, path, &o) == 0, "%s", fl_last_error());
    return l;
}

/* A read/write lock through the hub against the model kernel: the writer
 * passes the gate and queues an exclusive request on the lock; a reader
 * queues a shared request on the gate it shuts; the reader's release hands
 * the lock to the writer's request (socket), the writer's win reopens the
 * gate (socket again: the reader's gate request granted), the reader then
 * queues on the lock and wins at the writer's release. Never a writer with
 * a reader, readers together. */
START_TEST(hub_read_write_queued_requests) {
    const char *p = wt_path("rw.lock");
    fl_lock *r1 = rw_local(p), *wr = rw_local(p), *r2 = rw_local(p), *probe = rw_local(p);
    fl_acquire_args ex = hub_args(0), sh = hub_args(1);
    fl_hub_waiter *w;
    fl_hub *hub;
    hub_record r;
    memset(&r, 0, sizeof r);
    model_install();
    ck_assert_int_eq(fl_acquire_shared(r1, 0, 1, 0.05), 0);
    ck_assert_int_eq(fl_hub_new(&hub), 0);
    ck_assert_int_eq(fl_hub_acquire(hub, wr, 2, &ex, hub_done, &r, &w), 0);
    ck_assert_ptr_nonnull(w);
    ck_assert_int_eq(fl_hub_acquire(hub, r2, 3, &sh, hub_done, &r, &w), 0);
    ck_assert_ptr_nonnull(w);
    ck_assert_int_eq(model_count(&g_nqueue),
                     2); /* the writer's on the lock, the reader's on the gate */
    ck_assert_int_eq(fl_acquire_shared(probe, 0, 1, 0.05), FL_ETIMEOUT); /* the gate is shut */
    ck_assert_int_eq(fl_release(r1, 0), 0);
    ck_assert_msg(hub_readable(hub, 10), "the grant did not make the socket readable");
    ck_assert_int_eq(fl_hub_dispatch(hub), 1);
    ck_assert(r.owner[0] == 2 && r.rc[0] == 0);
    ck_assert_int_eq(fl_acquire_shared(probe, 0, 1, 0.05), FL_ETIMEOUT); /* a writer holds */
    ck_assert_msg(hub_readable(hub, 10), "the reopened gate did not make the socket readable");
    ck_assert_int_eq(fl_hub_dispatch(hub), 0); /* the reader past the gate, queued on the lock */
    ck_assert_int_eq(fl_hub_release(hub, wr, 2, 0), 0);
    (void)drive_until(hub, &r.n, 2, NULL, 10);
    ck_assert_int_eq(r.n, 2);
    ck_assert(r.owner[1] == 3 && r.rc[1] == 0);
    ck_assert_int_eq(fl_acquire_shared(probe, 0, 1, 0.05), 0); /* readers share */
    ck_assert_int_eq(fl_release(probe, 0), 0);
    ck_assert_int_eq(fl_acquire_ex(probe, 0, 1, 0.05), FL_ETIMEOUT);
    ck_assert_int_eq(fl_release_as(r2, 3, 0), 0);
    ck_assert_int_eq(fl_acquire_ex(probe, 0, 1, 0.05), 0);
    ck_assert_int_eq(fl_release(probe, 0), 0);
    ck_assert_int_eq(model_count(&g_nheld) + model_count(&g_nqueue), 0);
    fl_hub_free(hub);
    fl_lock_free(r1);
    fl_lock_free(wr);
    fl_lock_free(r2);
    fl_lock_free(probe);
}
END_TEST

/* The grant lands after the waiter's deadline, before any dispatch: the
 * dispatch either collects it as the waiter's win or ends the wait with
 * FL_ETIMEOUT and gives the grant back; never a grant left on the probe
 * (another handle then wins at once once the outcome is released). */
START_TEST(hub_grant_after_the_deadline) {
    const char *p = wt_path("d.lock");
    fl_lock *holder, *a;
    fl_acquire_args fa = hub_args(0);
    fl_hub_waiter *w;
    fl_hub *hub;
    hub_record r;
    memset(&r, 0, sizeof r);
    model_install();
    fa.timeout = 0.2;
    holder = wt_lock(p, FL_KERNEL);
    a = local_lock(p);
    ck_assert_int_eq(fl_acquire_ex(holder, 0, 1, 0.05), 0);
    ck_assert_int_eq(fl_hub_new(&hub), 0);
    ck_assert_int_eq(fl_hub_acquire(hub, a, 1, &fa, hub_done, &r, &w), 0);
    Sleep(400); /* past the deadline */
    ck_assert_int_eq(fl_release(holder, 0), 0);
    ck_assert_int_eq(model_count(&g_nheld), 1); /* granted to the hub's request */
    ck_assert_int_eq(fl_hub_dispatch(hub), 1);
    ck_assert_int_eq(r.n, 1);
    if (r.rc[0] == 0) {
        ck_assert_int_eq(fl_lock_counter_as(a, 1), 1);
        ck_assert_int_eq(fl_acquire_ex(holder, 0, 1, 0.05), FL_ETIMEOUT);
        ck_assert_int_eq(fl_release_as(a, 1, 0), 0);
    } else {
        ck_assert_int_eq(r.rc[0], FL_ETIMEOUT);
        ck_assert_int_eq(fl_lock_counter_as(a, 1), 0);
    }
    ck_assert(fl_hub_timeout(hub) == -1);
    ck_assert_int_eq(fl_acquire_ex(holder, 0, 1, 0.05), 0);
    ck_assert_int_eq(fl_release(holder, 0), 0);
    ck_assert_int_eq(model_count(&g_nheld) + model_count(&g_nqueue), 0);
    fl_hub_free(hub);
    fl_lock_free(a);
    fl_lock_free(holder);
}
END_TEST

Suite *wt_suite_faults(void) {
    Suite *s = suite_create("faults");
    TCase *t = tcase_create("seam");
    WSADATA wd;
    (void)WSAStartup(MAKEWORD(2, 2), &wd); /* select() in the hub cases */
    tcase_add_checked_fixture(t, wt_setup, reset);
    tcase_add_test(t, lockfileex_unsupported);
    tcase_add_test(t, soft_fallback);
    tcase_add_test(t, close_error_still_releases);
    tcase_add_test(t, marker_delete_retried);
    tcase_add_test(t, marker_delete_gives_up);
    tcase_add_test(t, mkdir_failure_reported);
    tcase_add_test(t, dead_takers_leftovers_resolved);
    tcase_add_test(t, live_claim_waited_for);
    tcase_add_test(t, replace_refused_is_an_error);
    tcase_add_test(t, replace_retried);
    tcase_add_test(t, hub_wait_is_the_queued_request);
    tcase_add_test(t, hub_cancel_after_the_grant_gives_it_back);
    tcase_add_test(t, hub_cancel_while_queued_withdraws);
    tcase_add_test(t, hub_request_follows_the_first_waiters_mode);
    tcase_add_test(t, hub_free_gives_a_grant_back);
    tcase_add_test(t, hub_grant_racing_the_cancel_is_given_back);
    tcase_add_test(t, blocking_wait_is_the_queued_request);
    tcase_add_test(t, hub_yields_to_a_thread_of_the_same_object);
    tcase_add_test(t, rw_hub_gate_waiter_yields_to_a_thread_of_the_same_object);
    tcase_add_loop_test(t, hub_without_sockets_keeps_the_callers_cadence, FL_KERNEL, FL_SOFT + 1);
    tcase_add_loop_test(t, hub_without_thread_pool_wait_keeps_the_callers_cadence, FL_KERNEL,
                        FL_SOFT + 1);
    tcase_add_test(t, hub_request_refused_falls_back_to_the_timer);
    tcase_add_test(t, hub_request_failing_is_reported);
    tcase_add_test(t, hub_request_aborted_is_queued_again);
    tcase_add_test(t, hub_cancelled_grant_wakes_another_hub);
    tcase_add_test(t, hub_mode_switch_racing_the_grant);
    tcase_add_test(t, hub_leaks_no_handles);
    tcase_add_test(t, hub_sockets_never_inheritable);
    tcase_add_test(t, hub_read_write_queued_requests);
    tcase_add_test(t, hub_grant_after_the_deadline);
    suite_add_tcase(s, t);
    return s;
}
