/*
 * The event-loop wait hub (fl_hub_* in filelock.h): many waits in one
 * thread, woken by the kernel, without a thread or a descriptor per waiter.
 *
 * A hub keeps one entry per distinct lock file (its path as the handle
 * spells it, and the kind), each with a FIFO of waiters, one open probe
 * (the open lock file the attempts re-use: re-opening and closing it on
 * every attempt would raise the very close event the watch waits for), at
 * most one inotify watch, and a re-check timer. On Linux every watch lives
 * in the hub's own inotify instance, whose descriptor the loop polls.
 * Events are coalesced: a dispatch marks the entries they concern and
 * tries each of those once per dispatch, for its first waiter (then the
 * next, while they win: shared holders, recursion).
 *
 * The timer exists because Linux has no "lock released" event: a holder
 * that unlocks without closing, or a parent whose forked child still has
 * the descriptor, raises nothing. It starts at the entry's shortest poll
 * interval (with the floors of internal.h) and doubles while re-checks find
 * nothing, up to FL__HUB_MAX_RECHECK; an event resets it. With no watch
 * (no inotify, limits reached, a file system other hosts share, whose
 * releases no local watch sees) the timer keeps the caller's cadence.
 *
 * Windows: the same entries, FIFOs and timers; what wakes the loop is a
 * connected pair of loopback TCP sockets (the one kind of descriptor every
 * Windows event loop can poll: select(), WSAPoll, asyncio's selector loop,
 * libuv's uv_poll_init_socket), whose reading end fl_hub_fd() returns. A
 * busy kernel entry leaves a waiting LockFileEx queued on its probe (the
 * pending request is the wait: the kernel grants it at the release, in
 * order) and a soft entry keeps a change notification on its directory; a
 * thread-pool wait (RegisterWaitForSingleObject, once) on that event marks
 * the entry and writes one byte to the writing end, at most one byte per
 * dispatch. A request granted to an entry whose waiters are gone is given
 * back when the entry goes (fl__os_abandon: CancelIoEx, then UnlockFileEx
 * if the grant won the race), so the lock passes on. Under Wine no
 * overlapped LockFileEx can wait (win32.c): kernel entries re-check on the
 * timer there, at the caller's cadence (docs/windows.md).
 */
#ifndef _WIN32
#define _GNU_SOURCE
#endif
#include "internal.h"
#ifndef _WIN32
#include "platform.h"
#endif

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifdef _WIN32
/* winsock2.h first: windows.h would otherwise bring in the old winsock.h. */
#include <winsock2.h>
/* (kept apart so that include sorting keeps this order) */
#include <windows.h>
#include <ws2tcpip.h>
#else
#include <unistd.h>
#endif
#ifdef FL__LINUX
#include "fsprobe.h"
#include <sys/epoll.h>
#include <sys/inotify.h>
#endif

/* The longest a watched entry goes between re-checks once nothing has
 * happened for a while: the worst-case delay for a release that closes
 * nothing (the common release, close(), is an event). */
#define FL__HUB_MAX_RECHECK 1.0

typedef struct hub_file hub_file;
static void holder_unwatch(hub_file *f);

struct fl_hub_waiter {
    hub_file *file;
    fl_lock *lock;
    uint64_t owner;
    int shared;
    double deadline; /* fl__now() clock; +inf: forever */
    double poll;
    unsigned long seq; /* the dispatch round it joined in: not tried in that round */
    /* Read/write locks (the lock has a writers' gate): 0 while waiting for
     * the gate (in the gate's entry), 1 while holding the gate and waiting
     * for the lock itself (in the lock's entry), as lock.c's gated_acquire
     * does in one thread. Always 0 for other locks. */
    int phase;
    fl_hub_done_fn done;
    void *data;
    /* fl_hub_cancel() was called for it while its attempt was under way
     * (from the lock's on_acquired hook or the log handler): the dispatch
     * frees it once the attempt returned, giving back what it won. */
    int cancelled;
    /* complete() is under way for it: letting its gate go runs the log
     * handler, for which the wait is still pending (no callback yet); a
     * fl_hub_cancel() from there is honoured as above. */
    int ending;
    fl_hub_waiter *prev, *next;
};

struct hub_file {
    fl_hub *hub;
    char *path; /* the lock path as its handles spell it */
    int kind;
    char *name;     /* soft lock: the marker's name in the watched directory (a copy: the
                       handle that made the entry may be freed while others wait) */
    fl__hold probe; /* the attempts' open file (kernel lock), kept while busy */
    int wd;         /* -1: no watch (timer only); Windows: 1 while a wake-up is armed */
    uint64_t wdev, wino;
    int have_wid;
    /* Soft lock on Linux: a pidfd of the contended marker's holder in the
     * hub's epoll set, so that its death wakes the loop at once instead of
     * at the next re-check; then, while the holder may be an unreaped
     * zombie (whose marker is still valid), re-judged at reap_poll
     * (FL__HUB_REAP_MIN doubling up to FL__HUB_REAP_MAX). */
    int pidfd;
    int pid_armed;
    uint64_t pid_dev, pid_ino;
    double reap_poll;
    int shared_fs;  /* other hosts may share the file system: their releases raise nothing */
    int dirty;      /* an event or a local release: try at the next dispatch */
    int just_armed; /* kernel lock: the watch came with this acquire (see first_attempts) */
    /* An attempt on this entry is under way: the code it calls back (the
     * on_acquired hook, the log handler) may call the hub, which must not
     * use the entry's probe (the attempt's open file, maybe won already)
     * nor free or complete the waiter being tried (trying). */
    int attempting;
    fl_hub_waiter *trying;
    double next_check;
    double interval; /* current re-check interval (backs off) */
    /* Kept as waiters come and go, so that nothing scans the FIFO per
     * dispatch (a thousand waiters would make every handoff cost a
     * thousand steps): the shortest poll interval of the waiters (only
     * lowered until the FIFO empties: a re-check too many, never one too
     * few), and the earliest deadline (recomputed once the waiter that had
     * it leaves). */
    double min_poll;
    double earliest;
    int earliest_stale;
    fl_hub_waiter *head, *tail;
    hub_file *next;
#ifdef _WIN32
    HANDLE wait;         /* the registered thread-pool wait, or NULL */
    HANDLE change;       /* soft entry: the directory's change notification, or NULL */
    volatile LONG fired; /* set by the wait's callback, taken by read_events */
#endif
};

struct fl_hub {
    int fd;       /* what the loop polls: the epoll set (inotify + holders' pidfds), or
                     inotify alone (no epoll), or -1; Windows: the reading socket */
    int ino;      /* inotify, or -1 (always -1 on Windows) */
    int npidfds;  /* holders' pidfds in the epoll set (none: no epoll_wait per dispatch) */
    unsigned gen; /* fork generation it was made in */
    hub_file *files;
    int depth;     /* dispatches (and callbacks) under way: entries are not freed */
    int acquiring; /* fl_hub_acquire() calls under way: entries are not freed either */
    /* fl_hub_free() was called: from a callback of a hub call under way
     * (done, on_acquired, the log handler), it takes effect when the
     * outermost call returns (settle()); meanwhile nothing new starts. */
    int freeing;
    unsigned long seq; /* dispatch round */
#ifdef _WIN32
    SOCKET rd, wr;           /* the loop polls rd; the waits' callbacks write to wr */
    volatile LONG signalled; /* a byte is on its way since the last read_events */
    int wsa;                 /* WSAStartup succeeded */
#endif
};

/* 1 if another thread of this process is acquiring l, a handle the
 * threads share (thread_local off, as an AsyncFileLock by default): the
 * hub's attempt on l can only say busy until that thread is done, and joins
 * its hold then. Whatever the hub keeps meanwhile stands in that thread's
 * way: on Windows a request queued or granted to a kernel entry's probe
 * (that thread's own kernel wait queues behind the probe's grant, which
 * only the hub's attempt can collect), for a read/write lock the writers'
 * gate a waiter passed (that thread waits for it). Such a waiter keeps
 * neither (yield_gate(), stand_aside()) and re-checks on its timer or at
 * the gate's release. */
static int thread_acquiring(fl_lock *l) {
    int v;
    if (l->thread_local)
        return 0;
    pthread_mutex_lock(&l->mu);
    v = l->acquiring;
    pthread_mutex_unlock(&l->mu);
    return v;
}

static int freeing_error(const char *fn, const fl_lock *l) {
    return fl__error(FL_ECANCELED, ECANCELED,
                     "%s: the wait hub is being freed (fl_hub_free() was called from one of its "
                     "callbacks)%s%s",
                     fn, l ? "; not waiting for lock file " : "", l ? fl_lock_path(l) : "");
}

static int forked_error(const char *fn) {
    return fl__error(FL_ECANCELED, ECANCELED,
                     "%s: this wait hub belongs to the parent process (the process forked); "
                     "a child makes its own hub",
                     fn);
}

static int is_forked(const fl_hub *hub) { return hub->gen != fl__current_gen(); }

#ifdef _WIN32
static void no_inherit(SOCKET s) {
    /* A child process started meanwhile must not keep the hub's sockets. */
    (void)SetHandleInformation((HANDLE)s, HANDLE_FLAG_INHERIT, 0);
}

/* A connected pair of loopback TCP sockets: 0 and rd/wr, or -1 (both
 * INVALID_SOCKET). Windows has no socketpair(); the listener is bound to
 * 127.0.0.1 on a port of the system's choosing, and the accepted peer must
 * be our own connecting socket (another local program could connect first). */
static int socket_pair(SOCKET *rd, SOCKET *wr) {
    struct sockaddr_in addr, peer, mine;
    int len = sizeof addr, plen = sizeof peer, mlen = sizeof mine, one = 1;
    u_long nb = 1;
    SOCKET ls = INVALID_SOCKET, c = INVALID_SOCKET, a = INVALID_SOCKET;
    *rd = *wr = INVALID_SOCKET;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    ls = (SOCKET)fl__sys.socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
    if (ls == INVALID_SOCKET || bind(ls, (struct sockaddr *)&addr, sizeof addr) != 0 ||
        listen(ls, 1) != 0 || getsockname(ls, (struct sockaddr *)&addr, &len) != 0)
        goto fail;
    c = (SOCKET)fl__sys.socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
    if (c == INVALID_SOCKET || connect(c, (struct sockaddr *)&addr, sizeof addr) != 0)
        goto fail;
    a = accept(ls, (struct sockaddr *)&peer, &plen);
    if (a == INVALID_SOCKET || getsockname(c, (struct sockaddr *)&mine, &mlen) != 0 ||
        peer.sin_port != mine.sin_port || peer.sin_addr.s_addr != mine.sin_addr.s_addr)
        goto fail;
    closesocket(ls);
    /* Neither end ever blocks: the callback writes at most one byte per
     * dispatch, the dispatch reads until there is nothing. */
    if (ioctlsocket(a, FIONBIO, &nb) != 0 || ioctlsocket(c, FIONBIO, &nb) != 0) {
        ls = INVALID_SOCKET;
        goto fail;
    }
    (void)setsockopt(c, IPPROTO_TCP, TCP_NODELAY, (const char *)&one, sizeof one);
    no_inherit(a);
    no_inherit(c);
    *rd = a;
    *wr = c;
    return 0;
fail:
    if (ls != INVALID_SOCKET)
        closesocket(ls);
    if (c != INVALID_SOCKET)
        closesocket(c);
    if (a != INVALID_SOCKET)
        closesocket(a);
    return -1;
}

/* The thread-pool wait's callback (a pool thread): mark the entry, wake
 * the loop. The entry outlives it: disarm() waits for a running callback. */
static VOID CALLBACK on_signal(PVOID ctx, BOOLEAN timed_out) {
    hub_file *f = ctx;
    fl_hub *hub = f->hub;
    (void)timed_out;
    InterlockedExchange(&f->fired, 1);
    if (InterlockedExchange(&hub->signalled, 1) == 0 && hub->wr != INVALID_SOCKET)
        (void)send(hub->wr, "!", 1, 0);
}

/* Ends the entry's registered wait, waiting for its callback if running. */
static void disarm(hub_file *f) {
    if (f->wait) {
        (void)UnregisterWaitEx(f->wait, INVALID_HANDLE_VALUE);
        f->wait = NULL;
    }
    f->wd = -1;
}

/* Made not inheritable from the start: a process another thread starts
 * between socket() and SetHandleInformation() would keep a copy. Systems
 * before Windows 7 SP1 refuse the flag; no_inherit() then closes what it
 * can of the window. */
uintptr_t fl__hub_socket(int af, int type, int protocol) {
    SOCKET s =
        WSASocketW(af, type, protocol, NULL, 0, WSA_FLAG_OVERLAPPED | WSA_FLAG_NO_HANDLE_INHERIT);
    if (s == INVALID_SOCKET && WSAGetLastError() == WSAEINVAL)
        s = socket(af, type, protocol);
    return (uintptr_t)s;
}

int fl__hub_register_wait(void **wait, void *object, void *ctx) {
    return RegisterWaitForSingleObject((HANDLE *)wait, object, on_signal, ctx, INFINITE,
                                       WT_EXECUTEONLYONCE | WT_EXECUTEINWAITTHREAD);
}

static void arm(hub_file *f, HANDLE ev) {
    if (!f->wait && !fl__sys.register_wait(&f->wait, ev, f)) {
        f->wait = NULL;
        return; /* the timer re-checks */
    }
    f->wd = 1;
}
#endif

int fl_hub_new(fl_hub **out) {
    fl_hub *hub;
    if (!out)
        return fl__error(FL_EINVAL, 0, "fl_hub_new: NULL output pointer");
    *out = NULL;
    hub = calloc(1, sizeof *hub);
    if (!hub)
        return fl__error(FL_ENOMEM, ENOMEM, "out of memory creating a wait hub");
    hub->gen = fl__current_gen();
    hub->seq = 1; /* 0 marks waiters that joined outside a dispatch */
    hub->fd = hub->ino = -1;
#ifdef FL__LINUX
    /* EMFILE (the user's 128 instances are used up) and the like: the hub
     * works on its timers alone. */
    hub->ino = fl__px_above_stdio(fl__sys.inotify_init1(IN_NONBLOCK | IN_CLOEXEC), 1);
    hub->fd = hub->ino;
    {
        /* One descriptor for the loop whatever it waits for: the inotify
         * instance and the soft holders' pidfds in an epoll set. Without
         * one, inotify alone (dead holders then wait for the timer). */
        int ep = fl__px_above_stdio(epoll_create1(EPOLL_CLOEXEC), 1);
        struct epoll_event ev;
        memset(&ev, 0, sizeof ev);
        ev.events = EPOLLIN;
        ev.data.ptr = NULL; /* NULL: the inotify instance */
        if (ep >= 0 && (hub->ino < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, hub->ino, &ev) == 0))
            hub->fd = ep;
        else if (ep >= 0)
            fl__px_close(ep);
    }
#endif
#ifdef _WIN32
    {
        WSADATA wd;
        hub->rd = hub->wr = INVALID_SOCKET;
        /* Without sockets the hub works on its timers alone, as without
         * inotify. A SOCKET is a kernel handle, whose value fits 32 bits
         * (Windows keeps handles interoperable with 32-bit processes). */
        hub->wsa = WSAStartup(MAKEWORD(2, 2), &wd) == 0;
        if (hub->wsa && socket_pair(&hub->rd, &hub->wr) == 0) {
            if (hub->rd <= (SOCKET)INT_MAX) {
                hub->fd = (int)hub->rd;
            } else { /* not representable: timers alone, as said above */
                closesocket(hub->rd);
                closesocket(hub->wr);
                hub->rd = hub->wr = INVALID_SOCKET;
            }
        }
    }
#endif
    *out = hub;
    return 0;
}

int fl_hub_fd(const fl_hub *hub) { return hub ? hub->fd : -1; }

/* ---------------------------------------------------------------------- */
/* Entries and watches                                                     */
/* ---------------------------------------------------------------------- */

static hub_file *find_file(fl_hub *hub, const fl_lock *l, int kind) {
    hub_file *f;
    const char *path = fl_lock_path(l);
    for (f = hub->files; f; f = f->next)
        if (f->kind == kind && strcmp(f->path, path) == 0)
            return f;
    return NULL;
}

static void unwatch(hub_file *f) {
#ifdef FL__LINUX
    hub_file *o;
    if (f->wd >= 0) {
        /* One watch per inode: another entry (the same file by another
         * spelling) may share it. */
        for (o = f->hub->files; o; o = o->next)
            if (o != f && o->wd == f->wd)
                break;
        if (!o)
            (void)inotify_rm_watch(f->hub->ino, f->wd);
    }
#endif
#ifdef _WIN32
    disarm(f);
    if (f->change)
        FindCloseChangeNotification(f->change);
    f->change = NULL;
#endif
    f->wd = -1;
    f->have_wid = 0;
}

/* Arms (or moves) the entry's watch on what is at its path now. Falls back
 * to the timer (wd -1) when there is no instance or the watch cannot be had
 * (ENOSPC: the user's watches are used up). */
static void watch(hub_file *f, const fl_lock *l) {
#ifdef FL__LINUX
    struct stat st;
    uint32_t mask;
    const char *target;
    int wd;
    if (f->hub->ino < 0)
        return;
    if (f->kind == FL_KERNEL) {
        mask = IN_CLOSE_WRITE | IN_CLOSE_NOWRITE | IN_DELETE_SELF | IN_MOVE_SELF | IN_ATTRIB |
               IN_DONT_FOLLOW;
        target = f->path;
        if (fl__sys.lstat(target, &st) != 0)
            return;
    } else {
        mask = IN_DELETE | IN_MOVED_FROM | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR;
        target = l->dir;
        if (stat(target, &st) != 0)
            return;
    }
    if (f->wd >= 0 && f->have_wid && f->wdev == (uint64_t)st.st_dev &&
        f->wino == (uint64_t)st.st_ino)
        return;
    /* IN_MASK_ADD: another entry's watch on the same inode keeps its events. */
    wd = fl__sys.inotify_add_watch(f->hub->ino, target, mask | IN_MASK_ADD);
    if (wd != f->wd)
        unwatch(f);
    if (wd < 0)
        return;
    f->wd = wd;
    f->wdev = (uint64_t)st.st_dev;
    f->wino = (uint64_t)st.st_ino;
    f->have_wid = 1;
    f->shared_fs = fl__fs_is_shared(target);
#elif defined(_WIN32)
    /* A kernel entry: the waiting LockFileEx on its probe (issued here if
     * none is queued); a soft entry: the directory's change notification
     * (a release deletes the marker: a file-name change). */
    HANDLE ev;
    int ready = 0;
    /* Without the socket pair nothing can wake the loop: the timers alone
     * drive the hub, at the waiters' cadence (a wait armed here would only
     * back the timer off, base_interval()). */
    if (f->wait || f->hub->rd == INVALID_SOCKET)
        return;
    if (f->kind == FL_KERNEL) {
        if (thread_acquiring((fl_lock *)l))
            return;
        ev = fl__os_hub_arm(&f->probe, &ready);
        if (ready)
            f->dirty = 1;
    } else {
        if (!f->change)
            f->change = fl__os_dir_notify(l->dir);
        ev = f->change;
    }
    if (ev)
        arm(f, ev);
#else
    (void)f, (void)l;
#endif
}

static hub_file *new_file(fl_hub *hub, const fl_lock *l, int kind) {
    hub_file *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    f->path = strdup(fl_lock_path(l));
    if (!f->path) {
        free(f);
        return NULL;
    }
    f->hub = hub;
    f->kind = kind;
    if (kind != FL_KERNEL && !(f->name = strdup(l->base))) {
        free(f->path);
        free(f);
        return NULL;
    }
    f->probe = (fl__hold)FL__HOLD_INIT;
    f->wd = -1;
    f->pidfd = -1;
    f->min_poll = INFINITY;
    f->earliest = INFINITY;
    f->next = hub->files;
    hub->files = f;
    return f;
}

static void unlink_waiter(fl_hub_waiter *w) {
    hub_file *f = w->file;
    /* Only a waiter that had the earliest deadline makes it stale. Not one
     * waiting forever when all do (+inf <= +inf): that rescanned the whole
     * FIFO at every handoff (10,000 waiting tasks: 72k handoffs/s at 1,000
     * fell to 30k/s). */
    if (w->deadline <= f->earliest && !isinf(w->deadline))
        f->earliest_stale = 1;
    if (w->prev)
        w->prev->next = w->next;
    else
        f->head = w->next;
    if (w->next)
        w->next->prev = w->prev;
    else
        f->tail = w->prev;
    w->prev = w->next = NULL;
    if (!f->head) {
        f->min_poll = INFINITY;
        f->earliest = INFINITY;
        f->earliest_stale = 0;
    }
}

static double earliest(hub_file *f) {
    if (f->earliest_stale) {
        fl_hub_waiter *w;
        f->earliest = INFINITY;
        for (w = f->head; w; w = w->next)
            if (w->deadline < f->earliest)
                f->earliest = w->deadline;
        f->earliest_stale = 0;
    }
    return f->earliest;
}

static void free_file(hub_file *f) {
    hub_file **pp;
    for (pp = &f->hub->files; *pp; pp = &(*pp)->next)
        if (*pp == f) {
            *pp = f->next;
            break;
        }
    while (f->head) {
        fl_hub_waiter *w = f->head;
        unlink_waiter(w);
        free(w);
    }
    if (!is_forked(f->hub)) {
        unwatch(f);
        holder_unwatch(f);
        fl__os_abandon(&f->probe);
    } else {
        /* The parent's descriptors: forget them, never close them. */
        free(f->probe.path);
    }
    free(f->name);
    free(f->path);
    free(f);
}

/* Frees the entries nobody waits for, unless a dispatch is walking them. */
static void reap(fl_hub *hub) {
    hub_file *f, *next;
    if (hub->depth > 0 || hub->acquiring > 0)
        return;
    for (f = hub->files; f; f = next) {
        next = f->next;
        if (!f->head)
            free_file(f);
    }
}

static void destroy(fl_hub *hub);

/* The end of a public call that may have run callbacks: once no call of
 * the hub is under way any more, what they left is done (entries nobody
 * waits for freed, or the whole hub if one of them called fl_hub_free()).
 * The hub may be gone when it returns. */
static void settle(fl_hub *hub) {
    if (hub->depth > 0 || hub->acquiring > 0)
        return;
    if (hub->freeing)
        destroy(hub);
    else
        reap(hub);
}

/* The re-check interval an entry starts from: its waiters' shortest poll
 * interval, with the floors that keep poll_interval 0 from spinning. */
static double base_interval(const hub_file *f) {
    double poll = f->min_poll, floor;
    if (f->wd >= 0 && !f->shared_fs)
        floor = f->kind == FL_SOFT ? FL__WATCHED_MIN_POLL_SOFT : FL__WATCHED_MIN_POLL;
    else
        floor = FL__MIN_POLL;
    return poll < floor ? floor : poll;
}

static void schedule(hub_file *f, double now, int backoff) {
    double base = base_interval(f);
    if (!backoff || f->interval < base)
        f->interval = base;
    else if (f->wd >= 0 && !f->shared_fs) {
        double cap = base > FL__HUB_MAX_RECHECK ? base : FL__HUB_MAX_RECHECK;
        f->interval = f->interval * 2 > cap ? cap : f->interval * 2;
    }
    f->next_check = now + f->interval;
}

/* ---------------------------------------------------------------------- */
/* Soft holders' deaths (Linux pidfd)                                      */
/* ---------------------------------------------------------------------- */

#define FL__HUB_REAP_MIN 0.001
#define FL__HUB_REAP_MAX 0.5

static void holder_unwatch(hub_file *f) {
#ifdef FL__LINUX
    if (f->pidfd >= 0) {
        /* Out of the set before the close: an epoll item lives as long as
         * its open file, which a child forked meanwhile still has open; a
         * stale item of a dead holder would keep the hub readable for ever
         * and point at a freed file. */
        (void)epoll_ctl(f->hub->fd, EPOLL_CTL_DEL, f->pidfd, NULL);
        fl__px_close(f->pidfd);
        f->hub->npidfds--;
    }
#endif
    f->pidfd = -1;
}

/* After a busy soft attempt: arm a pidfd for the holder of the contended
 * marker (once per marker identity), the way linux.c's blocking waiter
 * does (holder_pidfd). A holder found gone already: judge again at once. */
static void holder_watch(hub_file *f, const fl_lock *l) {
#ifdef FL__LINUX
    struct epoll_event ev;
    int fd;
    if (f->kind != FL_SOFT || !f->probe.have_id || f->hub->fd == f->hub->ino)
        return;
    if (f->pid_armed && f->pid_dev == f->probe.dev && f->pid_ino == f->probe.ino)
        return;
    holder_unwatch(f);
    f->pid_armed = 1;
    f->pid_dev = f->probe.dev;
    f->pid_ino = f->probe.ino;
    f->reap_poll = 0;
    fd = fl__plat_holder_pidfd(l, &f->probe);
    if (fd == FL__HOLDER_GONE) {
        f->probe.recheck_at = 0;
        f->dirty = 1;
        return;
    }
    if (fd < 0)
        return;
    memset(&ev, 0, sizeof ev);
    ev.events = EPOLLIN;
    ev.data.ptr = f;
    if (epoll_ctl(f->hub->fd, EPOLL_CTL_ADD, fd, &ev) != 0) {
        fl__px_close(fd);
        return;
    }
    f->pidfd = fd;
    f->hub->npidfds++;
#else
    (void)f, (void)l;
#endif
}

/* The pidfds that fired: their holders exited. The marker is judged at the
 * next attempt (this dispatch), then at short intervals while the holder
 * may be a zombie its parent has not reaped yet (fl__prim_judge). */
static void read_holders(fl_hub *hub) {
#ifdef FL__LINUX
    struct epoll_event evs[16];
    int n, i;
    if (hub->fd == hub->ino || hub->npidfds == 0)
        return;
    while ((n = epoll_wait(hub->fd, evs, 16, 0)) > 0) {
        for (i = 0; i < n; i++) {
            hub_file *f = (hub_file *)evs[i].data.ptr;
            if (!f)
                continue; /* the inotify instance: read_events */
            holder_unwatch(f);
            f->reap_poll = FL__HUB_REAP_MIN;
            f->probe.recheck_at = 0;
            f->dirty = 1;
        }
        if (n < 16)
            break;
    }
#else
    (void)hub;
#endif
}

/* ---------------------------------------------------------------------- */
/* Attempts                                                                */
/* ---------------------------------------------------------------------- */

static int timeout_error(const fl_lock *l) {
    return fl__error(FL_ETIMEOUT, 0, "The file lock '%s' could not be acquired.", fl_lock_path(l));
}

/* One attempt for w (or the caller's would-be waiter): 0, FL__BUSY or a
 * negative code. A busy attempt whose lock file is no longer the watched
 * one moves the watch. */
static int attempt(hub_file *f, fl_lock *l, uint64_t owner, int shared, int forever, int quiet,
                   int flags) {
    int rc;
    if (f->attempting)
        return FL__BUSY; /* called back from this entry's own attempt: see hub_file */
#ifdef _WIN32
    int armed = f->wd >= 0;
    if (f->kind == FL_KERNEL) {
        /* The attempt may win the probe's request (its event then goes
         * with the hold) or drop the probe: no wait may outlive them. */
        disarm(f);
        if (thread_acquiring(l))
            fl__os_hub_withdraw(&f->probe); /* see thread_acquiring() */
        else
            fl__os_hub_prepare(&f->probe, shared);
    }
#endif
    f->attempting = 1;
    rc = fl__try_as(l, owner, shared,
                    flags | (forever ? FL__PROBE_DEADLOCK : 0) | (quiet ? FL__PROBE_QUIET : 0),
                    &f->probe);
    f->attempting = 0;
#ifdef _WIN32
    if (rc == FL__BUSY && f->kind == FL_KERNEL && armed)
        watch(f, l);
#endif
    if (rc == FL__BUSY && f->kind == FL_KERNEL && f->probe.have_id && f->have_wid &&
        (f->probe.dev != f->wdev || f->probe.ino != f->wino))
        watch(f, l);
    if (rc == FL__BUSY && f->kind == FL_SOFT)
        holder_watch(f, l);
    return rc;
}

/* Lets go of the writers' gate owner passed for l, keeping the thread's
 * error (a callback or the caller reports the wait's own). */
static void release_gate(fl_lock *l, uint64_t owner) {
    fl__error_state saved;
    fl__error_save(&saved);
    (void)fl_release_as(l->gate, owner, 1);
    fl__error_restore(&saved);
}

/* A read/write waiter that passed the gate lets it go (won, failed,
 * cancelled or yielding alike). */
static void drop_gate(fl_hub_waiter *w) {
    if (w->phase == 1) {
        release_gate(w->lock, w->owner);
        w->phase = 0;
    }
}

/* Ends w with its callback. Out of the FIFO first: letting the gate go
 * runs the log handler, whose nested dispatch would try w again. */
static void complete(fl_hub_waiter *w, int rc) {
    hub_file *f = w->file;
    fl_hub *hub = f->hub;
    hub->depth++;
    unlink_waiter(w);
    w->ending = 1;
    drop_gate(w);
    if (!w->cancelled) {
        w->done(w->data, w->lock, w->owner, rc);
    } else if (rc == 0) {
        /* Cancelled from the log handler meanwhile: the win nobody will
         * collect is given back (to the entry's next waiter). */
        fl__error_state saved;
        fl__error_save(&saved);
        (void)fl_release_as(w->lock, w->owner, 0);
        fl__error_restore(&saved);
        if (f->head)
            f->dirty = 1;
    }
    hub->depth--;
    free(w);
}

/* ---------------------------------------------------------------------- */
/* The public calls                                                        */
/* ---------------------------------------------------------------------- */

static hub_file *entry_for(fl_hub *hub, fl_lock *l, int kind) {
    hub_file *f = find_file(hub, l, kind);
    return f ? f : new_file(hub, l, kind);
}

static void append_waiter(hub_file *f, fl_hub_waiter *w) {
    double now;
    w->file = f;
    w->next = NULL;
    w->prev = f->tail;
    if (f->tail)
        f->tail->next = w;
    else
        f->head = w;
    f->tail = w;
    if (w->poll < f->min_poll)
        f->min_poll = w->poll;
    if (w->deadline < f->earliest)
        f->earliest = w->deadline;
    if (f->wd < 0)
        watch(f, w->lock);
    now = fl__now();
    if (!f->head->next || now + base_interval(f) < f->next_check)
        schedule(f, now, 0);
    if (f->just_armed && f->kind == FL_KERNEL && now + FL__EVENT_RETRY < f->next_check)
        f->next_check = now + FL__EVENT_RETRY;
    f->just_armed = 0;
}

/* A waiter through the gate whose handle another thread is acquiring
 * (thread_acquiring()) gives the gate back and waits for it again, first
 * in line (it came before the gate's other waiters: a reader that came
 * later must not pass it; it stands aside there while that thread
 * acquires). 0, or FL_ENOMEM with the waiter where it was. */
static int yield_gate(fl_hub_waiter *w) {
    fl_hub *hub = w->file->hub;
    hub_file *g = entry_for(hub, w->lock->gate, FL_KERNEL);
    if (!g)
        return fl__error(FL_ENOMEM, ENOMEM, "out of memory waiting for lock '%s'", w->lock->path);
    drop_gate(w);
    unlink_waiter(w);
    w->seq = 0;
    append_waiter(g, w);
    if (g->head != w) {
        g->tail = w->prev;
        g->tail->next = NULL;
        w->prev = NULL;
        w->next = g->head;
        g->head->prev = w;
        g->head = w;
    }
    g->dirty = 1; /* Windows: a grant of the gate may await its probe (stand_aside) */
    return 0;
}

/* The gate entry f's first waiter stands aside while another thread
 * acquires its handle (thread_acquiring()): on Windows the probe's request
 * for the gate goes, a grant given back, or that thread's wait for the
 * gate would queue behind it. */
static void stand_aside(hub_file *f) {
#ifdef _WIN32
    disarm(f);
    fl__os_hub_withdraw(&f->probe);
#else
    (void)f;
#endif
}

/* The first attempts of a new acquire on entry f for lock t (the lock, or
 * for a read/write lock in phase 0 its gate): at once unless earlier
 * waiters of the entry come first, then with the watch armed. 0, FL__BUSY
 * or a negative code. */
static int first_attempts(hub_file *f, fl_lock *t, uint64_t owner, int shared, double deadline,
                          int flags) {
    int forever = isinf(deadline) && deadline > 0, rc;
    if (f->head && fl_lock_counter_as(t, owner) == 0)
        return FL__BUSY; /* first come, first served */
    f->just_armed = 0;
    rc = attempt(f, t, owner, shared, forever, 0, flags);
    if (rc == FL__BUSY && deadline > fl__now()) {
        /* Arm the watch, then try again: a release between the failed
         * attempt and the watch would otherwise be missed. If that attempt
         * fails too, the first re-check comes soon (FL__EVENT_RETRY, set
         * by append_waiter): a close that raised its event before the watch
         * existed may not have unlocked yet, and no event will follow
         * (test: close_before_the_watch_is_retried_soon). */
        if (f->wd < 0) {
            watch(f, t);
            f->just_armed = f->wd >= 0;
        }
        rc = attempt(f, t, owner, shared, forever, 1, flags);
    }
    return rc;
}

static int hub_acquire(fl_hub *hub, fl_lock *l, uint64_t owner, const fl_acquire_args *args,
                       fl_hub_done_fn done, void *data, fl_hub_waiter **waiter) {
    fl_acquire_args a;
    fl_hub_waiter *w;
    hub_file *f = NULL;
    int rc, kind, phase = 0;

    if (waiter)
        *waiter = NULL;
    if (!hub || !l || !done || !waiter)
        return fl__error(FL_EINVAL, 0, "fl_hub_acquire: NULL hub, lock, callback or waiter");
    if (is_forked(hub))
        return forked_error("fl_hub_acquire");
    if (hub->freeing)
        return freeing_error("fl_hub_acquire", l);
    if ((rc = fl_acquire_args_resolve(l, args, &a)) != 0)
        return rc;
    if (a.shared && __atomic_load_n(&l->kind, __ATOMIC_RELAXED) == FL_SOFT)
        return fl__error(FL_ENOTSUP, 0,
                         "cannot take a shared lock on '%s': the soft lock has no shared mode",
                         l->path);
    kind = __atomic_load_n(&l->kind, __ATOMIC_RELAXED);
    if (l->gate && fl_lock_counter_as(l, owner) == 0) {
        /* A read/write lock not held by this owner: the writers' gate
         * first (exclusive for a writer, shared for a reader). */
        f = entry_for(hub, l->gate, FL_KERNEL);
        if (!f)
            return fl__error(FL_ENOMEM, ENOMEM, "out of memory waiting for lock '%s'", l->path);
        rc = first_attempts(f, l->gate, owner, a.shared, a.deadline, 0);
        if (rc < 0)
            return rc;
        if (rc == 0)
            phase = 1; /* passed the gate; the lock itself next */
    }
    if (!l->gate || phase == 1 || fl_lock_counter_as(l, owner) > 0) {
        f = entry_for(hub, l, kind);
        if (!f) {
            rc = fl__error(FL_ENOMEM, ENOMEM, "out of memory waiting for lock '%s'", l->path);
            goto fail;
        }
        rc = first_attempts(f, l, owner, a.shared, a.deadline, phase ? FL__PROBE_NOGATE : 0);
        if (rc == FL__BUSY && phase == 1 && thread_acquiring(l)) {
            /* That thread waits for the gate: give it back, wait for it. */
            f = entry_for(hub, l->gate, FL_KERNEL);
            if (!f) {
                rc = fl__error(FL_ENOMEM, ENOMEM, "out of memory waiting for lock '%s'", l->path);
                goto fail;
            }
            release_gate(l, owner);
            phase = 0;
        } else if (rc != FL__BUSY) {
            goto fail; /* won (rc 0) or failed: either way the gate goes */
        }
    }
    if (hub->freeing) {
        /* fl_hub_free() from this call's own callbacks: no wait may start. */
        rc = freeing_error("fl_hub_acquire", l);
        goto fail;
    }
    if (a.deadline <= fl__now()) {
        rc = timeout_error(l);
        goto fail;
    }
    w = calloc(1, sizeof *w);
    if (!w) {
        rc = fl__error(FL_ENOMEM, ENOMEM, "out of memory waiting for lock '%s'", l->path);
        goto fail;
    }
    w->lock = l;
    w->owner = owner;
    w->shared = a.shared;
    w->deadline = a.deadline;
    w->poll = a.poll_interval;
    w->seq = hub->depth > 0 ? hub->seq : 0;
    w->done = done;
    w->data = data;
    w->phase = phase;
    append_waiter(f, w);
    *waiter = w;
    return 0;
fail:
    if (phase == 1)
        release_gate(l, owner);
    return rc;
}

int fl_hub_acquire(fl_hub *hub, fl_lock *l, uint64_t owner, const fl_acquire_args *args,
                   fl_hub_done_fn done, void *data, fl_hub_waiter **waiter) {
    int rc;
    if (!hub)
        return hub_acquire(hub, l, owner, args, done, data, waiter);
    /* A win at once runs the on_acquired hook in here: whatever it does to
     * the hub (cancel the last waiter of another entry, ...) must not free
     * the entry this call is using. */
    hub->acquiring++;
    rc = hub_acquire(hub, l, owner, args, done, data, waiter);
    hub->acquiring--;
    settle(hub);
    return rc;
}

/* Reads the pending events and marks the entries they concern. */
static void read_events(fl_hub *hub) {
#ifdef FL__LINUX
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    hub_file *f;
    int more = 1;
    if (hub->ino < 0)
        return;
    while (more) {
        ssize_t n = read(hub->ino, buf, sizeof buf), off = 0;
        if (n <= 0)
            break;
        /* A read that left room for another full event took everything
         * queued: skip the read that would only say EAGAIN. */
        if ((size_t)n <= sizeof buf - (sizeof(struct inotify_event) + NAME_MAX + 1))
            more = 0;
        while (off < n) {
            const struct inotify_event *ev = (const struct inotify_event *)(buf + off);
            for (f = hub->files; f; f = f->next) {
                if (ev->mask & IN_Q_OVERFLOW) {
                    f->dirty = 1;
                    continue;
                }
                if (ev->wd != f->wd)
                    continue;
                if (ev->mask & IN_IGNORED) {
                    /* The kernel dropped the watch (the file or directory
                     * is gone): re-arm on what is at the path now. */
                    f->wd = -1;
                    f->have_wid = 0;
                    f->dirty = 1;
                } else if (!f->name || (ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF)) ||
                           (ev->len && strcmp(ev->name, f->name) == 0)) {
                    f->dirty = 1;
                }
            }
            off += (ssize_t)sizeof *ev + ev->len;
        }
    }
#elif defined(_WIN32)
    char buf[64];
    hub_file *f;
    /* Drained, then cleared, then the marks taken: a callback that marks
     * an entry after the clear sends a byte this dispatch leaves for the
     * next (cleared before the drain, that byte would be read here, and a
     * later callback, finding the flag set, would send none: a lost mark
     * until the re-check). */
    if (hub->rd != INVALID_SOCKET)
        while (recv(hub->rd, buf, sizeof buf, 0) > 0)
            ;
    InterlockedExchange(&hub->signalled, 0);
    for (f = hub->files; f; f = f->next) {
        if (!InterlockedExchange(&f->fired, 0))
            continue;
        f->dirty = 1;
        /* The wait ran once: end it; a change notification is re-armed for
         * the next change, a kernel request after the next busy attempt. */
        disarm(f);
        if (f->change && !FindNextChangeNotification(f->change)) {
            /* A notification that cannot be re-armed may stay signalled:
             * waiting on it again would spin. watch() opens a new one. */
            FindCloseChangeNotification(f->change);
            f->change = NULL;
        }
        if (f->change)
            arm(f, f->change);
    }
#else
    (void)hub;
#endif
}

static int dispatch_file(hub_file *f, double now) {
    fl_hub_waiter *w, *next;
    int completed = 0, woke = f->dirty, busy = 0;
    int due = f->dirty || now >= f->next_check || earliest(f) <= now;
    /* A dispatch called back from this entry's own attempt (a hook): the
     * dispatch under way goes on with the entry, and the entry stays due. */
    if (f->attempting) {
        f->dirty = 1;
        return 0;
    }
    if (!due)
        return 0;
    f->dirty = 0;
    if (f->reap_poll > 0)
        f->probe.recheck_at = 0; /* an exited holder: judge its marker now */
    while ((w = f->head) != NULL && w->seq != f->hub->seq && !f->hub->freeing) {
        int forever = isinf(w->deadline) && w->deadline > 0;
        int gate = w->lock->gate && w->phase == 0, rc;
        if (gate && thread_acquiring(w->lock)) {
            stand_aside(f); /* the gate is that thread's first */
            busy = 1;
            break;
        }
        f->trying = w;
        rc = attempt(f, gate ? w->lock->gate : w->lock, w->owner, w->shared, forever, 1,
                     w->phase == 1 ? FL__PROBE_NOGATE : 0);
        f->trying = NULL;
        if (w->cancelled) {
            /* Cancelled by its own attempt's hook: nobody will collect a
             * win, which is given back (to the next waiter, tried next).
             * Out of the FIFO first: the release runs the log handler. */
            unlink_waiter(w);
            if (rc == 0 && gate) {
                release_gate(w->lock, w->owner);
            } else if (rc == 0) {
                fl__error_state saved;
                fl__error_save(&saved);
                (void)fl_release_as(w->lock, w->owner, 0);
                fl__error_restore(&saved);
            }
            drop_gate(w);
            free(w);
            continue;
        }
        if (rc == FL__BUSY && w->phase == 1 && thread_acquiring(w->lock)) {
            if ((rc = yield_gate(w)) != 0) {
                completed++;
                complete(w, rc);
            }
            continue;
        }
        if (rc == FL__BUSY) {
            busy = 1;
            break;
        }
        if (rc == 0 && gate) {
            /* Through the gate: wait for the lock itself, holding the gate
             * (a waiting writer holds new readers back). */
            hub_file *m =
                entry_for(f->hub, w->lock, __atomic_load_n(&w->lock->kind, __ATOMIC_RELAXED));
            w->phase = 1;
            if (!m) {
                completed++;
                complete(w, fl__error(FL_ENOMEM, ENOMEM, "out of memory waiting for lock '%s'",
                                      w->lock->path));
                continue;
            }
            unlink_waiter(w);
            w->seq = 0;
            append_waiter(m, w);
            m->dirty = 1;
            continue;
        }
        completed++;
        complete(w, rc);
    }
    /* Waits whose time is up (tried once more just above if first). */
    now = fl__now();
    for (w = earliest(f) <= now && !f->hub->freeing ? f->head : NULL; w; w = next) {
        next = w->next;
        if (w->deadline <= now && w->seq != f->hub->seq) {
            completed++;
            (void)timeout_error(w->lock);
            complete(w, FL_ETIMEOUT);
            next = f->hub->freeing ? NULL : f->head; /* the callback may have changed the list */
        }
    }
    if (f->wd < 0 && f->head)
        watch(f, f->head->lock);
    if (f->head) {
        schedule(f, now, busy && !woke);
        if (busy && woke && f->kind == FL_KERNEL && now + FL__EVENT_RETRY < f->next_check)
            f->next_check = now + FL__EVENT_RETRY; /* see internal.h */
        if (busy && f->reap_poll > 0) {
            /* Reaped yet? Again soon, less and less often. */
            if (now + f->reap_poll < f->next_check)
                f->next_check = now + f->reap_poll;
            f->reap_poll =
                f->reap_poll * 2 < FL__HUB_REAP_MAX ? f->reap_poll * 2 : FL__HUB_REAP_MAX;
        }
    }
    return completed;
}

int fl_hub_dispatch(fl_hub *hub) {
    hub_file *f;
    int completed = 0;
    double now;
    if (!hub)
        return fl__error(FL_EINVAL, 0, "fl_hub_dispatch: NULL hub");
    if (is_forked(hub))
        return forked_error("fl_hub_dispatch");
    if (hub->freeing)
        return freeing_error("fl_hub_dispatch", NULL);
    hub->depth++;
    hub->seq++;
    read_events(hub);
    read_holders(hub);
    now = fl__now();
    for (f = hub->files; f && !hub->freeing; f = f->next)
        completed += dispatch_file(f, now);
    hub->depth--;
    settle(hub);
    return completed;
}

double fl_hub_timeout(fl_hub *hub) {
    hub_file *f;
    double next = INFINITY, now;
    if (!hub || is_forked(hub))
        return -1;
    for (f = hub->files; f; f = f->next) {
        if (!f->head)
            continue;
        if (f->dirty)
            return 0;
        /* Joined during a dispatch, first in line: not tried yet. */
        if (f->head->seq == hub->seq && hub->depth == 0)
            return 0;
        if (f->next_check < next)
            next = f->next_check;
        if (earliest(f) < next)
            next = earliest(f);
    }
    if (isinf(next))
        return -1;
    now = fl__now();
    return next > now ? next - now : 0;
}

int fl_hub_cancel(fl_hub_waiter *w) {
    hub_file *f;
    fl_hub *hub;
    if (!w)
        return fl__error(FL_EINVAL, 0, "fl_hub_cancel: NULL waiter");
    f = w->file;
    hub = f->hub;
    if (w->cancelled)
        return 0; /* again, from the log handler of the win given back */
    if (w == f->trying || w->ending) {
        /* Its attempt is under way (this is its hook): dispatch_file()
         * frees it when the attempt returns, without calling back. */
        w->cancelled = 1;
        return 0;
    }
    /* The next in line may be able to win now (a shared holder behind a
     * cancelled exclusive waiter, or one held back only by order). */
    if (f->head == w && w->next)
        f->dirty = 1;
    /* Out of the FIFO before the gate goes: its release runs the log
     * handler, which may call the hub (a dispatch would try w). */
    hub->depth++;
    unlink_waiter(w);
    drop_gate(w);
    free(w);
    hub->depth--;
    settle(hub);
    return 0;
}

int fl_hub_release(fl_hub *hub, fl_lock *l, uint64_t owner, int force) {
    hub_file *f;
    int rc;
    if (!hub || is_forked(hub))
        return fl_release_as(l, owner, force);
    /* The release runs the log handler, which may call the hub (even
     * fl_hub_free()): the hub stays until this call is done with it. */
    hub->depth++;
    rc = fl_release_as(l, owner, force);
    if (l) {
        f = find_file(hub, l, __atomic_load_n(&l->kind, __ATOMIC_RELAXED));
        if (f && f->head)
            f->dirty = 1;
    }
    hub->depth--;
    settle(hub);
    return rc;
}

void fl_hub_free(fl_hub *hub) {
    if (!hub)
        return;
    if (is_forked(hub)) {
        /* Forget the parent's waiters and descriptors, call nothing. */
        while (hub->files)
            free_file(hub->files);
        free(hub);
        return;
    }
    if (hub->freeing)
        return; /* called again from a callback of the freeing under way */
    hub->freeing = 1;
    settle(hub); /* now, or when the hub's call under way returns */
}

/* fl_hub_free(), once no call of the hub is under way: every pending wait
 * ends with FL_ECANCELED (its callback may call the hub: new waits and
 * dispatches are refused, hub->freeing), then everything goes. */
static void destroy(fl_hub *hub) {
    hub_file *f;
    hub->depth++;
    for (f = hub->files; f; f = f->next)
        while (f->head) {
            (void)fl__error(FL_ECANCELED, ECANCELED,
                            "waiting for lock file '%s' was cancelled: its wait hub was freed",
                            f->head->lock->path);
            complete(f->head, FL_ECANCELED);
        }
    hub->depth--;
    while (hub->files)
        free_file(hub->files);
#ifdef _WIN32
    if (hub->rd != INVALID_SOCKET)
        closesocket(hub->rd);
    if (hub->wr != INVALID_SOCKET)
        closesocket(hub->wr);
    if (hub->wsa)
        WSACleanup();
#else
    if (hub->fd >= 0 && hub->fd != hub->ino)
        fl__px_close(hub->fd);
    if (hub->ino >= 0)
        fl__px_close(hub->ino);
#endif
    free(hub);
}
