/*
 * Internal declarations shared by the platform-independent core (lock.c,
 * errors.c, owner.c) and the platform backends (posix.c with linux.c or
 * generic.c, see platform.h; win32.c; one per build). Names here carry the fl__ / FL__ prefix
 * (names that begin with two underscores are reserved for the C implementation; older code was
 * renamed by scripts/rename-internal.sh) and hidden visibility. The lock order and what each mutex
 * guards are written down above struct fl_lock.
 */
#ifndef FL_INTERNAL_H
#define FL_INTERNAL_H

#include "filelock.h"

#include <pthread.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>

#if defined(__GNUC__) && defined(_WIN32)
/* PE has no visibility attribute: a DLL exports only dllexport names. The
 * messages are formatted by mingw's C99 printf (__USE_MINGW_ANSI_STDIO). */
#define FL__HIDDEN
#define FL__PRINTF(a, b) __attribute__((format(gnu_printf, a, b)))
#elif defined(__GNUC__)
#define FL__HIDDEN       __attribute__((visibility("hidden")))
#define FL__PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define FL__HIDDEN
#define FL__PRINTF(a, b)
#endif

/* Backend results besides 0 and the negative public codes. */
#define FL__BUSY  1 /* held by someone else: wait and try again */
#define FL__RETRY 2 /* raced with an unlink/replace: try again at once */

/* Re-check floors, so that poll_interval 0 never spins a core: a waiter
 * must stay under 2 ms of CPU per second, and a wake-up costs ~30-50 us of
 * CPU on a virtual machine. Without a wake-up source (no inotify) the lock
 * is re-tried at least every FL__MIN_POLL; with a watch armed, releases
 * that close the file wake the waiter at once, and the re-check (for a
 * holder that unlocks without closing) comes at most every
 * FL__WATCHED_MIN_POLL, or poll_interval when that is longer. */
#define FL__MIN_POLL         0.05
#define FL__WATCHED_MIN_POLL 0.1
/* A soft marker is always released by deleting it, which the directory
 * watch reports; its re-check only serves network file systems and the
 * stale-marker judgement (itself at most twice a second). */
#define FL__WATCHED_MIN_POLL_SOFT 0.25
/* The cancel callback is consulted at least this often. */
#define FL__CANCEL_SLICE 0.05
/* A close raises its inotify event before it drops the flock (__fput:
 * fsnotify_close, then locks_remove_file), so a waiter woken by it may find
 * the lock still held for a few microseconds; it re-tries after this
 * instead of at its next re-check (0.1 s or more). */
#define FL__EVENT_RETRY 0.001

/* An open file of the soft lock (and of the POSIX kernel lock): a
 * descriptor on POSIX, a HANDLE on Windows. FL__NO_FH is "none" on both
 * (-1, INVALID_HANDLE_VALUE). */
#ifdef _WIN32
typedef void *fl__fh;
#else
typedef int fl__fh;
#endif
#define FL__NO_FH ((fl__fh)(intptr_t)-1)

/* What a backend holds for one acquisition. */
typedef struct fl__hold {
    fl__fh fd;    /* POSIX kernel lock: the locked (or opened, while trying) file; soft lock:
                     the marker, open for the whole hold */
    uint64_t dev; /* identity of the lock file / marker we opened or saw */
    uint64_t ino;
    int have_id;       /* dev/ino are valid */
    int shared;        /* kernel lock: LOCK_SH instead of LOCK_EX */
    double recheck_at; /* soft lock: when to judge the contended marker again */
    char *path;        /* soft lock: the marker's absolute path, fixed at the first attempt */
#ifdef _WIN32
    void *win; /* kernel lock: the file handle and its pending LockFileEx (win32.c) */
#endif
    struct fl__lease *lease; /* lease / lifetime hold: its heartbeat entry (lease.c), or NULL */
    int aged;                /* soft hold that contenders may take by age (lease or lifetime) */
} fl__hold;

#ifdef _WIN32
#define FL__HOLD_INIT                                                                              \
    { FL__NO_FH, 0, 0, 0, 0, 0.0, NULL, NULL, NULL, 0 }
#else
#define FL__HOLD_INIT                                                                              \
    { -1, 0, 0, 0, 0, 0.0, NULL, NULL, 0 }
#endif

/* A wake-up source for a waiter.
 *
 * Linux: the process's wait hub (linux.c). One inotify instance per process
 * (a forked child makes its own and leaves the inherited one alone), one
 * watch per watched inode shared by every waiter on it (reference counted),
 * and one eventfd per waiting thread. A waiter polls both the hub's inotify
 * descriptor and its own eventfd with ppoll(), so a signal still ends the
 * wait with EINTR; whichever waiter sees the hub readable reads the events
 * and signals the eventfds of the waiters they concern. When the instance,
 * the watch or the eventfd cannot be had (limits reached), the waiter falls
 * back to timed re-checks (fd == -1). Before each wait the watch is moved
 * to the file or directory now at the path if that was replaced, renamed
 * away or removed (a release there would otherwise go unseen). */
typedef struct fl__watch {
    int fd; /* the hub's inotify descriptor to poll; -1: plain sleeping */
    int wd;
    /* On a file system other hosts may share (fsprobe.c), the watch sees
     * none of their releases: the re-check keeps the caller's cadence,
     * max(poll_interval, FL__MIN_POLL), instead of the watched floor. */
    int shared_fs;
#ifdef _WIN32
    /* The kernel lock's wake-up is the attempt's own pending LockFileEx, so
     * the watch needs the hold; the soft lock's is a change notification. */
    struct fl__hold *hold;
    void *change;
#else
    int efd;      /* this waiter's eventfd, signalled by the hub */
    unsigned gen; /* fork generation of the hub this waiter joined */
    void *waiter; /* the hub's record of this waiter (linux.c) */
    /* The attempt's hold: a soft waiter's contended marker, whose holder's
     * death is a wake-up on Linux (linux.c, holder_pidfd). */
    struct fl__hold *hold;
    /* The acquire's wake-up descriptor (FL_ARG_WAKE_FD), polled with the
     * watch where FL__POLLS_WAKE_FD; -1: none. Set by lock.c after
     * fl__os_watch_open. */
    int xfd;
#endif
} fl__watch;

/* The backend polls fl__watch.xfd (fl__os_watch_wait returns
 * FL__WOKEN_BY_FD when it is readable), so the cancel callback needs no
 * FL__CANCEL_SLICE cadence of its own for signals. */
#if defined(__linux__) && !defined(FL_GENERIC_POSIX)
#define FL__POLLS_WAKE_FD 1
#endif
#define FL__WOKEN_BY_FD 2

#ifdef _WIN32
#define FL__WATCH_INIT                                                                             \
    { -1, -1, 0, NULL, NULL }
#else
#define FL__WATCH_INIT                                                                             \
    { -1, -1, 0, -1, 0, NULL, NULL, -1 }
#endif

/* Per-thread (or, for shared handles, the one) lock state. */
typedef struct fl__state {
    uint64_t thread; /* fl__thread_serial() of the holding thread (never reused) */
    int counter;
    fl__hold hold;
    struct fl__state *next;
} fl__state;

/*
 * Mutexes, what they guard, and the lock order.
 *
 *   g_mu (lock.c, "registry")   the singleton list (g_singletons and every
 *                               handle's next_singleton and refs) and the
 *                               list of live handles (g_handles, every
 *                               handle's next_handle / prev_handle).
 *   fl_lock.mu (one per handle) acquiring, shared, states, cancel and
 *                               cancel_data, gen; cond is used with it.
 *   g_held_mu (lock.c)          the held-lock table of the deadlock check.
 *   owner_mu (linux.c)          the cache of this process's owner record.
 *   boot_mu (linux.c)           the cache of the boot id.
 *   hub_mu (linux.c)            the wait hub: its inotify descriptor, watch
 *                               table and waiter list.
 *   g_lease_mu (lease.c)        the heartbeat's lease list and thread state,
 *                               and every handle's compromise callback.
 *
 * Lock order: g_mu, then handles' mu (any number, in the order of the
 * g_handles list), then g_held_mu, then g_lease_mu, then owner_mu, boot_mu, hub_mu (the
 * backend's, taken by fl__os_atfork). Every mutex of the library is in this
 * list; a new one must be added here and to the fork handlers. A thread holding a handle's
 * mu never takes g_mu; nothing is held while calling out (cancel callback,
 * log handler) or while sleeping in the OS, except that a handle's mu is
 * released by pthread_cond_timedwait on its cond. Thread cancellation is
 * disabled inside every public call that can reach a cancellation point
 * (cancel_off in lock.c), so no mutex is left held by a cancelled thread.
 *
 * Fork: the pthread_atfork prepare handler takes every mutex above in this
 * order (so none can be held by a thread that does not exist in the child,
 * and every structure is consistent when copied); the parent and child
 * handlers release them. The child also re-initialises every handle's cond
 * (waiters of the parent's threads would otherwise stay counted in it) and
 * bumps the fork generation; the child's first use of a handle then forgets
 * the parent's holds without touching their descriptors (see
 * forget_after_fork in lock.c), and the hub forgets the parent's inotify
 * instance the same way.
 *
 * Fields without a mutex: path, dir, base, key, id, mode, thread_local,
 * singleton, soft_fallback and gate are fixed at creation; kind, timeout,
 * poll_interval and blocking are read and written with atomics.
 */
struct fl_lock {
    char *path; /* as given */
    char *dir;  /* parent directory of path ("." if none) */
    char *base; /* final component */
    char *key;  /* singleton registry key (canonical dir + base), or NULL */
    uint64_t id;
    int kind; /* fl_kind; may switch to FL_SOFT on fallback (atomic access) */
    int mode;
    int thread_local;
    int singleton;
    const void *scope; /* fl_options.singleton_scope (singleton registry only) */
    int soft_fallback;
    long owner_pid;       /* soft marker names this pid (0: the caller); atomic access */
    int read_only_open;   /* kernel lock: open a read-only lock file O_RDONLY */
    int close_errors;     /* fl_close_errors (fl_set_close_errors); atomic access */
    struct fl_lock *gate; /* read/write locks: the writers' gate, else NULL */
    int refs;             /* singleton references (g_mu) */
    unsigned gen;         /* fork generation that owns the state (mu); differs in a forked child */

    /* Lease and lifetime (fixed at creation): seconds, 0 when off. */
    double lifetime;
    double lease_duration;
    double heartbeat_interval;
    fl_compromise_fn compromise; /* g_lease_mu */
    void *compromise_data;       /* g_lease_mu */

    /* Defaults, read and written atomically. */
    double timeout;
    double poll_interval;
    int blocking;

    pthread_mutex_t mu; /* guards the fields below (see the lock order above) */
    fl_cancel_fn cancel;
    void *cancel_data;
    pthread_cond_t cond; /* shared handles: an acquiring thread finished (CLOCK_MONOTONIC) */
    int acquiring;       /* shared handles: a thread is inside the OS wait */
    fl__state shared;    /* state of a shared handle */
    fl__state *states;   /* thread-local handles: one per holding thread */

    /* Under g_mu. */
    struct fl_lock *next_singleton;
    struct fl_lock *next_handle, *prev_handle;
    int listed; /* on the g_handles list */

    uint64_t log_id; /* id named in log events, 0: id (fl_set_log_id; atomic access) */

    fl_acquired_fn on_acquired; /* fixed at creation */
    void *on_acquired_data;
};

/* A 64-bit serial number of the calling thread, from a process-wide
 * counter: unlike pthread_t (recycled as soon as a thread is joined), it is
 * never given to another thread, so a new thread cannot inherit the state
 * of a dead one. */
FL__HIDDEN uint64_t fl__thread_serial(void);

/* errors.c ------------------------------------------------------------- */
FL__HIDDEN int fl__error(int code, int os_errno, const char *fmt, ...) FL__PRINTF(3, 4);
FL__HIDDEN int fl__code_from_errno(int e);
FL__HIDDEN int fl__os_error(int os_errno, const char *what, const char *path);
/* A copy of the thread's last error, so that a query whose internal steps
 * fail on the way to a successful answer leaves the error as it was. */
typedef struct fl__error_state {
    int code;
    int os_errno;
    char msg[1024];
} fl__error_state;
FL__HIDDEN void fl__error_save(fl__error_state *st);
FL__HIDDEN void fl__error_restore(const fl__error_state *st);

/* owner.c -------------------------------------------------------------- */
FL__HIDDEN int fl__decimal192(uint64_t hi, uint64_t mid, uint64_t lo, char *buf, size_t size);
/* Parses an owner record; 0, or -1 when malformed (out->pid is then -1). */
FL__HIDDEN int fl__parse_owner(const char *buf, size_t len, fl_owner *out);
/* d as Python's repr() writes a float (shortest round-trip digits, "30"
 * for 30.0, "0.1", "1e-300", "nan"): numbers in messages and lease records. */
#define FL__DOUBLE_BUF 40
FL__HIDDEN const char *fl__fmt_double(char buf[FL__DOUBLE_BUF], double d);

/* Fork generation (lock.c): bumped in the child by a pthread_atfork
 * handler, so that fork detection costs a load, not a getpid() call. */
extern FL__HIDDEN unsigned fl__fork_gen;
FL__HIDDEN unsigned fl__current_gen(void);

/* The hub's attempts (lock.c, for hub.c) -------------------------------- */
#define FL__PROBE          1 /* one attempt that keeps its open file when busy */
#define FL__PROBE_DEADLOCK 2 /* busy on a file this owner holds elsewhere: FL_EDEADLK */
#define FL__PROBE_QUIET    4 /* no log events (a re-check) */
#define FL__PROBE_NOGATE   8 /* read/write lock: the caller holds the writers' gate already */
/* One attempt for owner (0: the calling thread), starting from the open
 * file in *ph. Returns 0 (won: a probe the win used is emptied; a win by
 * recursion leaves it), FL__BUSY (*ph keeps the open file and names the
 * contended file), or a negative code (*ph emptied, the error set). */
FL__HIDDEN int fl__try_as(fl_lock *l, uint64_t owner, int shared, int probe, fl__hold *ph);

/* Logging (lock.c) ------------------------------------------------------ */
FL__HIDDEN void fl__log(const fl_lock *l, fl_log_event ev, double seconds);

/* Clock (backend) ------------------------------------------------------- */
FL__HIDDEN double fl__now(void);

/* Backend: one attempt. block != 0 (kernel lock only) sleeps in the OS
 * until won. Returns 0 (won), FL__BUSY, FL__RETRY or a negative code with
 * the thread's error set. On FL__BUSY, hold->dev/ino name the contended file
 * when known (used by the deadlock check). */
FL__HIDDEN int fl__os_try(fl_lock *l, int kind, fl__hold *hold, int block);
/* Drops what a failed attempt left open. */
FL__HIDDEN void fl__os_abandon(fl__hold *hold);
/* Releases a held lock; owner == 0 only closes descriptors, never unlocks
 * or unlinks (lock.c no longer uses it: a forked child leaves the parent's
 * descriptors alone). Returns 0 or a negative code. */
FL__HIDDEN int fl__os_release(fl_lock *l, int kind, fl__hold *hold, int owner);

/* Backend: wake-ups. open never fails (falls back to sleeping); wait
 * returns 1 after a wake-up worth re-trying the lock for, 0 when the time
 * ran out without one, FL_EINTR on a signal. */
FL__HIDDEN void fl__os_watch_open(fl_lock *l, int kind, fl__watch *w);
FL__HIDDEN int fl__os_watch_wait(fl_lock *l, int kind, fl__watch *w, double seconds);
FL__HIDDEN void fl__os_watch_close(fl__watch *w);

/* Backend: fork handlers for its own mutexes (called from lock.c's
 * pthread_atfork handlers, last in the lock order). */
#define FL__FORK_PREPARE 0
#define FL__FORK_PARENT  1
#define FL__FORK_CHILD   2
FL__HIDDEN void fl__os_atfork(int phase);

/* Backend: owner records and inspection (soft markers, kernel holders). */
FL__HIDDEN int fl__os_get_owner(fl_lock *l, int kind, fl_owner *out);

/* Leases (lease.c) ------------------------------------------------------ */
/* Registers a won soft hold with the heartbeat (a lease) or only marks it as
 * one contenders may take by age (lifetime): 0 or a negative code. */
FL__HIDDEN int fl__lease_start(fl_lock *l, fl__hold *h);
/* Unregisters the hold (waiting for a refresh or callback in progress, unless
 * called from the heartbeat thread): 1 if the lease was found lost (with the
 * reason in *reason and errno in *os_errno), else 0. *fresh: 1 when a lease's
 * last refresh landed less than lease_duration - heartbeat_interval ago (no
 * contender can have taken it by age), else 0. */
FL__HIDDEN int fl__lease_stop(fl__hold *h, int *reason, int *os_errno, int *fresh);
/* A held lease found lost (the heartbeat told its callback): a nested
 * acquire of that hold must fail (FL_ELOST, message set) instead of counting
 * itself in silently. 0 when not a lease or not lost. */
FL__HIDDEN int fl__lease_check_reentry(const fl_lock *l, const fl__hold *h);
/* Fork handlers of g_lease_mu (lock.c calls them in the lock order). */
FL__HIDDEN void fl__lease_atfork(int phase);
/* A clock that counts through suspend where the platform has one
 * (fl__plat_boottime in platform.h; Windows: fl__now). */
FL__HIDDEN double fl__boottime(void);

/* Backend: canonical registry key for a path (caller frees). */
FL__HIDDEN char *fl__os_canonical_key(const char *dir, const char *base);

#ifndef _WIN32
/* The system-call seam: every call the backend makes goes through this
 * table so tests can inject failures (ENOSYS from flock, EIO on close,
 * EINTR, ENOSPC). fl__sys_reset() restores the real functions. */
typedef struct fl__syscalls {
    int (*open)(const char *path, int flags, mode_t mode);
    int (*close)(int fd);
    int (*flock)(int fd, int op);
    int (*fstat)(int fd, struct stat *st);
    int (*lstat)(const char *path, struct stat *st);
    int (*mkdir)(const char *path, mode_t mode);
    int (*unlink)(const char *path);
    ssize_t (*write)(int fd, const void *buf, size_t n);
    int (*fchmod)(int fd, mode_t mode);
    int (*inotify_init1)(int flags);
    int (*inotify_add_watch)(int fd, const char *path, uint32_t mask);
    int (*rename)(const char *from, const char *to);
    int (*kill)(pid_t pid, int sig);
    int (*pidfd_open)(pid_t pid, unsigned int flags);        /* ENOSYS where there is none */
    int (*futimens)(int fd, const struct timespec times[2]); /* a lease's refresh */
} fl__syscalls;
#else
/* The Windows seam (win32.c), in plain C types so that this header does not
 * pull <windows.h> into the common code: void * is a HANDLE, unsigned long
 * a DWORD, int a BOOL, void *ov an OVERLAPPED *. A fake sets the thread's
 * last error (SetLastError) like the real call. */
typedef struct fl__syscalls {
    void *(*create_file)(const wchar_t *path, unsigned long access, unsigned long share,
                         unsigned long disposition, unsigned long flags);
    int (*lock_file)(void *h, unsigned long flags, void *ov);
    int (*unlock_file)(void *h, void *ov);
    int (*close_handle)(void *h);
    int (*create_directory)(const wchar_t *path);
    int (*write_file)(void *h, const void *buf, unsigned long n, unsigned long *written);
    int (*move_file)(const wchar_t *from, const wchar_t *to, unsigned long flags);
    int (*cancel_io)(void *h, void *ov); /* CancelIoEx */
    /* 1 where an overlapped LockFileEx can wait (Windows), 0 under Wine. */
    int (*async_lock_waits)(void);
    /* The wait hub's (hub.c): socket(), the SOCKET as uintptr_t, ~0
     * (INVALID_SOCKET) with WSASetLastError on failure; and its
     * RegisterWaitForSingleObject of object with the hub's callback for ctx
     * (once, in the wait thread), *wait the wait's handle. */
    uintptr_t (*socket)(int af, int type, int protocol);
    int (*register_wait)(void **wait, void *object, void *ctx);
} fl__syscalls;
#endif

#ifdef _WIN32
/* The event-loop hub's wake-ups (win32.c, for hub.c). fl__os_hub_arm leaves
 * a waiting LockFileEx queued on a busy kernel probe's open file (in the
 * mode of its last attempt) and returns the event (a HANDLE) set when that
 * request completes; NULL when there is nothing to wait for: *ready = 1 if
 * the range is the probe's already (the next attempt collects it), else no
 * request can wait (Wine; an error the next attempt reports) and the hub
 * re-checks on its timer. fl__os_hub_prepare withdraws a request queued
 * (or granted) in the other mode than shared, before an attempt in that
 * mode. fl__os_dir_notify: a change notification (file names) on dir, a
 * HANDLE for FindNextChangeNotification / FindCloseChangeNotification, or
 * NULL. */
FL__HIDDEN void *fl__os_hub_arm(fl__hold *probe, int *ready);
FL__HIDDEN void fl__os_hub_prepare(fl__hold *probe, int shared);
/* Withdraws the probe's queued request, giving a grant back (the probe's
 * open file stays). */
FL__HIDDEN void fl__os_hub_withdraw(fl__hold *probe);
FL__HIDDEN void *fl__os_dir_notify(const char *dir);
/* The real calls behind fl__sys.socket and fl__sys.register_wait (hub.c). */
FL__HIDDEN uintptr_t fl__hub_socket(int af, int type, int protocol);
FL__HIDDEN int fl__hub_register_wait(void **wait, void *object, void *ctx);
#endif

extern FL__HIDDEN fl__syscalls fl__sys;
FL__HIDDEN void fl__sys_reset(void);

/* Whether fl_release() reports a failure to close the lock file (kernel)
 * or marker (soft) after the unlock, per fl_set_close_errors(); when not,
 * the failure is dropped (the lock is released either way). */
FL__HIDDEN int fl__close_error_reported(fl_lock *l, int kind);

#endif
