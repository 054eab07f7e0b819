/**
 * @file filelock.h
 * @brief libfilelock: a platform-independent file lock (kernel lock and soft
 *        lock) shared by C, Python, Ruby and Lua processes.
 *
 * Every public name starts with `fl_` (types, functions) or `FL_` (macros,
 * constants). Functions that can fail return an `int`: 0 on success or a
 * negative `FL_E*` code. On failure a per-thread message naming the lock
 * file and the operating system's reason is available from
 * fl_last_error(). Handles are opaque; free them with fl_lock_free() and
 * never free() anything the library returns.
 *
 * No function of the library is a thread cancellation point: while a call
 * runs (even a wait without a timeout), pthread_cancel() is deferred, and
 * acted upon at the thread's next cancellation point after the call
 * returns. End a wait early with the cancel callback (fl_set_cancel()) or a
 * timeout. No function is async-signal-safe: a signal handler must not call
 * the library (the interrupted thread may hold one of its mutexes); the
 * cancel callback is where signal-driven work belongs, and it may fork.
 *
 * Quick example:
 * @code
 * fl_lock *lock;
 * fl_options opts = FL_OPTIONS_INIT;
 * opts.timeout = 10.0;
 * if (fl_lock_new(&lock, "data.txt.lock", &opts) != 0) {
 *     fprintf(stderr, "%s\n", fl_last_error());
 *     return 1;
 * }
 * if (fl_acquire(lock) == 0) {
 *     ... critical section ...
 *     fl_release(lock, 0);
 * }
 * fl_lock_free(lock);
 * @endcode
 */
#ifndef FILELOCK_H
#define FILELOCK_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** @cond INTERNAL */
#if defined(_WIN32) && defined(FL_BUILDING_DLL)
#define FL_EXTERN __declspec(dllexport)
#elif defined(_WIN32) && !defined(FL_STATIC)
#define FL_EXTERN __declspec(dllimport)
#elif defined(__GNUC__)
#define FL_EXTERN __attribute__((visibility("default")))
#else
#define FL_EXTERN
#endif
/** @endcond */

/** Major version of the library (API breaks). */
#define FL_VERSION_MAJOR 0
/** Minor version of the library (additions). */
#define FL_VERSION_MINOR 1
/** Patch version of the library (fixes). */
#define FL_VERSION_PATCH 0

/**
 * The error codes, as an X-macro table: X(NAME, value, description).
 * Each expands to a constant `FL_<NAME>` of ::fl_error (which documents
 * when each is returned); fl_strerror() and fl_err_name() are generated
 * from the same table.
 */
#define FL_ERROR_TABLE(X)                                                                          \
    X(OK, 0, "success")                                                                            \
    X(EINVAL, -1, "invalid argument")                                                              \
    X(EISDIR, -2, "is a directory")                                                                \
    X(EACCES, -3, "permission denied")                                                             \
    X(EROFS, -4, "read-only file system")                                                          \
    X(ENAMETOOLONG, -5, "file name too long")                                                      \
    X(ENOTSUP, -6, "locking is not supported on this file system")                                 \
    X(ETIMEOUT, -7, "timed out waiting for the lock")                                              \
    X(EDEADLK, -8, "acquiring would deadlock")                                                     \
    X(EINTR, -9, "interrupted by a signal")                                                        \
    X(ECANCELED, -10, "cancelled")                                                                 \
    X(EIO, -11, "input/output error")                                                              \
    X(ENOENT, -12, "no such file or directory")                                                    \
    X(ENOTDIR, -13, "a path component is not a directory")                                         \
    X(ELOOP, -14, "the lock path is a symbolic link")                                              \
    X(ENOTREG, -15, "the lock path is not a regular file")                                         \
    X(ENOSPC, -16, "no space left on device")                                                      \
    X(ENOMEM, -17, "out of memory")                                                                \
    X(EOS, -18, "operating system error")                                                          \
    X(ELOCKMODE, -19, "the lock is held in the other mode (no upgrade or downgrade)")              \
    X(ELOST, -20, "the lease or lifetime expired and another holder may have taken the lock")      \
    X(ELEASEMISMATCH, -21, "the holder's lease duration differs from this contender's")

/** @cond INTERNAL */
#define FL__ERROR_ENUM(name, value, text) FL_##name = value,
/** @endcond */

/**
 * Error codes returned by the library: 0 or one of these negative values.
 * The table is ::FL_ERROR_TABLE; fl_err_name() gives the name without the
 * `FL_` prefix, fl_strerror() the description, and fl_last_error() the
 * calling thread's full message (the lock file and the OS reason).
 * OS errors map as: EACCES and EPERM to ::FL_EACCES, ENXIO to ::FL_ENOTREG,
 * ENOSPC and EDQUOT to ::FL_ENOSPC, ENOSYS, EOPNOTSUPP and ENOTSUP to
 * ::FL_ENOTSUP, any errno without its own code to ::FL_EOS; fl_last_errno()
 * keeps the original errno.
 *
 * - ::FL_OK (0): success.
 * - ::FL_EINVAL (-1): a bad argument: empty path, NUL byte in the path (fl_lock_new_n()), NaN
 *   timeout, negative poll interval, bad mode or options version, a singleton's other settings
 *   differ, a negative or non-finite lifetime or lease_duration, a heartbeat_interval not in
 *   (0, lease_duration), a lease_duration or heartbeat_interval given (fl_options.given) as 0,
 *   unknown fl_options.given bits, a lease on the kernel lock or with a lifetime or read_write
 *   (all of these also from fl_options_check()), or the OS rejected an argument (EINVAL).
 * - ::FL_EISDIR (-2): the lock path is a directory.
 * - ::FL_EACCES (-3): the lock file or its directory may not be opened or created.
 * - ::FL_EROFS (-4): the lock file would have to be created on a read-only file system.
 * - ::FL_ENAMETOOLONG (-5): the path or one of its names is too long.
 * - ::FL_ENOTSUP (-6): the file system has no OS locks, or its mount keeps them local to this
 *   host so that they would not exclude another host (NFS `local_lock=flock|all` or `nolock`,
 *   SMB `nobrl` or Linux before 5.5, Lustre `localflock`/`noflock`, GFS2/OCFS2 `localflocks`,
 *   AFS `flock=local`; read from /proc/self/mountinfo, see docs/filesystems.md) (and
 *   fl_options.soft_fallback is 0);
 *   fl_acquire_shared() on a soft lock; fl_break_lock() on a kernel lock; fl_get_owner() when the
 *   holder cannot be told; fl_lock_new() of a lease on Windows.
 * - ::FL_ETIMEOUT (-7): the lock was not won in time, or the single attempt of a non-blocking or
 *   zero-timeout acquire failed.
 * - ::FL_EDEADLK (-8): waiting forever for a lock file this thread already holds through another
 *   handle.
 * - ::FL_EINTR (-9): a signal interrupted a wait and no cancel callback is set.
 * - ::FL_ECANCELED (-10): the cancel callback (fl_set_cancel()) ended the wait; or, in a child
 *   forked by the log handler after the lock was won, the call's lock (which is the parent's).
 * - ::FL_EIO (-11): the OS reported an I/O error, e.g. closing the lock file after the unlock in
 *   fl_release() (the lock is released all the same), or fl_release() found that a network file
 *   system had already dropped the lock.
 * - ::FL_ENOENT (-12): fl_get_owner(): the lock is free; otherwise a missing path component.
 * - ::FL_ENOTDIR (-13): a path component is not a directory.
 * - ::FL_ELOOP (-14): the lock path is a symbolic link (refused, never followed).
 * - ::FL_ENOTREG (-15): the lock path is not a regular file (FIFO, socket, device).
 * - ::FL_ENOSPC (-16): no space or quota left to create the lock file or write the marker.
 * - ::FL_ENOMEM (-17): out of memory.
 * - ::FL_EOS (-18): any other OS error (see fl_last_errno()).
 * - ::FL_ELOCKMODE (-19): a read/write lock asked for the other mode while held (no upgrade or
 *   downgrade).
 * - ::FL_ELOST (-20): fl_release() of a lease (fl_options.lease_duration) or of a soft lock with
 *   a lifetime (fl_options.lifetime) whose marker was replaced or removed while held (another
 *   contender reclaimed it by age, or an operator broke it), or a lease whose refreshes kept
 *   failing until a contender could take it; the handle is released all the same, and the
 *   marker is deleted only if it is still ours. Also from a nested fl_acquire() of a hold whose
 *   lease the heartbeat found lost: a lost hold is never entered again (the hold is unchanged;
 *   release it, then acquire anew).
 * - ::FL_ELEASEMISMATCH (-21): a lease's acquire found the lock held by a lease published with
 *   another lease_duration (every contender must agree on it, as the pure-Python filelock's
 *   LeaseSettingsMismatch demands).
 */
typedef enum fl_error { FL_ERROR_TABLE(FL__ERROR_ENUM) FL__ERROR_END = -22 } fl_error;

/** Which lock implementation a handle uses. */
typedef enum fl_kind {
    /** Operating-system lock on the lock file (flock / LockFileEx). */
    FL_KERNEL = 0,
    /** Exclusive-create marker file, for file systems without OS locks. */
    FL_SOFT = 1
} fl_kind;

/** Value of fl_options.mode meaning "0666 filtered by the umask and ACLs". */
#define FL_MODE_DEFAULT (-1)

/** An open lock handle (opaque). */
typedef struct fl_lock fl_lock;

/**
 * Hook run once per physical acquisition of a kernel lock (fl_options.on_acquired),
 * with the locked descriptor, before the acquire returns (a re-entry does not run
 * it). Return 0 to keep the lock; a negative ::fl_error code (e.g. ::FL_ECANCELED)
 * releases the lock (unlock and close) and makes the acquire return that code with
 * the counter unchanged. It runs on the acquiring thread; @p fd stays the library's:
 * do not close or unlock it. It must not call the library for the same handle. A
 * wait without a timeout that it starts for the same lock file (through any handle)
 * returns ::FL_EDEADLK at once: the win it runs for is recorded only after it returns.
 */
typedef int (*fl_acquired_fn)(void *data, fl_lock *lock, int fd);

/**
 * Current version of ::fl_options. fl_lock_new() and fl_options_check() also
 * read the earlier versions, each an exact prefix of this struct, reading
 * nothing past their end: version 1 (up to heartbeat_interval, before
 * `given`: taken as 0) and version 2 (up to `given`, before
 * `singleton_scope`: taken as NULL, process-wide).
 */
#define FL_OPTIONS_VERSION 3

/**
 * The lease duration in seconds of a lease whose caller gives none: the
 * pure-Python filelock's SoftFileLease default (3.30+). The bindings' lease
 * classes read it for their signatures; the core applies no lease unless
 * fl_options.lease_duration is set.
 */
#define FL_LEASE_DEFAULT_DURATION 30.0

/**
 * A lease's heartbeat interval when none is given is lease_duration divided
 * by this: two refreshes may fail before a contender can take the lease
 * (the pure-Python filelock's rule).
 */
#define FL_LEASE_HEARTBEAT_DIVISOR 3

/** fl_options.given: lease_duration was given (fl_options_set_lease_duration()). */
#define FL_OPT_LEASE_DURATION 0x1u
/** fl_options.given: heartbeat_interval was given (fl_options_set_heartbeat_interval()). */
#define FL_OPT_HEARTBEAT_INTERVAL 0x2u

/**
 * Settings of a lock handle, fixed at creation (timeout, blocking and
 * poll_interval can be changed later). Initialise with ::FL_OPTIONS_INIT or
 * fl_options_init() and then set the fields you need.
 */
typedef struct fl_options {
    unsigned version; /**< Must be ::FL_OPTIONS_VERSION. */
    fl_kind kind;     /**< ::FL_KERNEL (default) or ::FL_SOFT. */
    double timeout;   /**< Default timeout in seconds: <0 forever (default -1), 0 one attempt. */
    double
        poll_interval; /**< Ceiling between re-checks where no wake-up exists (default 0.05 s). */
    int blocking;      /**< Default blocking flag: 0 means one attempt whatever the timeout. */
    int mode;          /**< Permission bits for a new lock file, or ::FL_MODE_DEFAULT. */
    int thread_local;  /**< 1 (default): lock state per thread; 0: shared by all threads. A
                            thread that ends holding the lock keeps it held until the handle is
                            freed; no later thread inherits that hold. */
    int singleton;     /**< 1: one shared handle per lock file (see fl_lock_new()). */
    int soft_fallback; /**< 1: use the soft lock where the file system lacks OS locks or keeps them
                          local to this host. */
    int read_write;    /**< 1: a read/write lock whose waiting writers are not starved by
                            readers: they close a gate (the file "<path>.gate") to new readers.
                            Kernel lock only. */
    fl_acquired_fn on_acquired; /**< NULL, or the hook run once per physical acquisition of the
                                     kernel lock (see ::fl_acquired_fn); not run after a soft
                                     fallback. fl_lock_new(): ::FL_EINVAL with ::FL_SOFT,
                                     ::FL_ENOTSUP on Windows. */
    void *on_acquired_data;     /**< Passed to @p on_acquired. */
    double lifetime; /**< Soft lock: seconds after which a marker is stale even while its holder
                          lives (age on the file system's clock); 0 (default): never by age.
                          Ignored by the kernel lock (its holder cannot be superseded), applies
                          after a soft fallback. Finite and >= 0; not with lease_duration.
                          POSIX: on Windows a marker is never judged by age. */
    double lease_duration;     /**< Soft lock: > 0 makes the hold a lease of this many seconds,
                                    refreshed by the library's heartbeat thread, and reclaimed by
                                    any contender once its marker is older; 0 (default): no
                                    lease. See docs/soft-lock-protocol.md. */
    double heartbeat_interval; /**< Lease: seconds between refreshes, 0 < it < lease_duration;
                                    0 (default): lease_duration /
                                    ::FL_LEASE_HEARTBEAT_DIVISOR. */
    unsigned given;            /**< FL_OPT_* bits of the lease fields given explicitly (set by
                                    fl_options_set_lease_duration() and
                                    fl_options_set_heartbeat_interval()): a given field must be
                                    positive, where 0 would otherwise mean "no lease" / "the
                                    default heartbeat". 0 (default): none. */

    /** Singleton only: handles are shared only between calls with the same
     * scope (compared as a pointer, never dereferenced); NULL (default): the
     * process-wide scope. A binding whose singleton registry is per class
     * passes its class, so that two classes' singletons on one lock file are
     * separate locks (neither shares the other's hold nor is refused for its
     * settings). The scope must stay valid while handles made with it live. */
    const void *singleton_scope;
} fl_options;

/** Default options: kernel lock, wait forever, blocking, 50 ms poll ceiling, no lease. */
#define FL_OPTIONS_INIT                                                                            \
    {                                                                                              \
        FL_OPTIONS_VERSION, FL_KERNEL, -1.0, 0.05, 1, FL_MODE_DEFAULT, 1, 0, 0, 0, NULL, NULL,     \
            0.0, 0.0, 0.0, 0u, NULL                                                                \
    }

/**
 * Cancel callback, consulted while an acquire waits: at every wake-up, at
 * least every 50 ms, and when a signal interrupts the wait (@p interrupted
 * is then 1). Returning non-zero ends the wait with ::FL_ECANCELED; returning
 * 0 goes on waiting (also after a signal, as PEP 475 retries). It runs on
 * the waiting thread. Without a callback a signal ends the wait with
 * ::FL_EINTR. It may fork: in the child the wait goes on with a descriptor
 * of its own (never the parent's), and what it wins there is the child's.
 */
typedef int (*fl_cancel_fn)(void *data, int interrupted);

/** The steps reported to the log handler (the messages py-filelock logs). */
typedef enum fl_log_event {
    FL_LOG_ATTEMPT = 0,         /**< "Attempting to acquire lock <id> on <path>" */
    FL_LOG_ACQUIRED = 1,        /**< "Lock <id> acquired on <path>" (also for a re-entry) */
    FL_LOG_FAILED = 2,          /**< "Failed to immediately acquire lock <id> on <path>" */
    FL_LOG_TIMEOUT = 3,         /**< "Timeout on acquiring lock <id> on <path>" */
    FL_LOG_WAITING = 4,         /**< "Lock <id> not acquired on <path>, waiting <s> seconds ..." */
    FL_LOG_RELEASE_ATTEMPT = 5, /**< "Attempting to release lock <id> on <path>" */
    FL_LOG_RELEASED = 6,        /**< "Lock <id> released on <path>" */
    FL_LOG_CANCELLED = 7        /**< "Cancellation requested for lock <id> on <path>": the cancel
                                     callback ended the wait */
} fl_log_event;

/**
 * Log handler: receives each step with the handle's id, its lock file path
 * and, for ::FL_LOG_WAITING, the seconds until the next re-check. It may be
 * called from any thread that uses a lock, and must not call back into the
 * library for the same handle.
 */
typedef void (*fl_log_fn)(void *data, fl_log_event event, uint64_t id, const char *path,
                          double seconds);

/* ---------------------------------------------------------------------- */
/* Errors                                                                  */
/* ---------------------------------------------------------------------- */

/** A fixed description of an error code (never NULL). */
FL_EXTERN const char *fl_strerror(int code);

/** The constant's name of an error code without the prefix, e.g. "ETIMEOUT". */
FL_EXTERN const char *fl_err_name(int code);

/**
 * The calling thread's last error message, naming the lock file and the OS
 * reason, e.g. "cannot open lock file '/x/y.lock': Permission denied".
 * Never NULL; "" if no error happened yet in this thread.
 */
FL_EXTERN const char *fl_last_error(void);

/** The code of the calling thread's last error (0 if none). */
FL_EXTERN int fl_last_code(void);

/**
 * The operating system's error number behind the calling thread's last
 * error (errno on POSIX), or 0 when the error did not come from the OS.
 * Bindings use it to raise the matching OSError / Errno class.
 */
FL_EXTERN int fl_last_errno(void);

/* ---------------------------------------------------------------------- */
/* Handles                                                                 */
/* ---------------------------------------------------------------------- */

/** Fills @p opts with the defaults (same as ::FL_OPTIONS_INIT). */
FL_EXTERN void fl_options_init(fl_options *opts);

/**
 * Makes @p opts a lease of @p seconds (fl_options.lease_duration, with
 * ::FL_OPT_LEASE_DURATION in fl_options.given, so that 0 is refused rather
 * than read as "no lease"). A binding's lease class calls it with the
 * caller's value or ::FL_LEASE_DEFAULT_DURATION. Checked by fl_lock_new()
 * and fl_options_check().
 */
FL_EXTERN void fl_options_set_lease_duration(fl_options *opts, double seconds);

/**
 * Sets a lease's heartbeat interval to @p seconds (with
 * ::FL_OPT_HEARTBEAT_INTERVAL, so that 0 is refused rather than read as
 * "the default"). Not calling it means lease_duration /
 * ::FL_LEASE_HEARTBEAT_DIVISOR.
 */
FL_EXTERN void fl_options_set_heartbeat_interval(fl_options *opts, double seconds);

/**
 * Checks the settings of @p opts that need no lock file: lifetime,
 * lease_duration, heartbeat_interval and which of them combine, with the
 * rules and words of the pure-Python filelock (3.32), e.g. "lease_duration
 * must be positive, got 0" (numbers in their shortest round-trip form).
 * fl_lock_new() runs the same checks and appends " (lock file '<path>')" to
 * the message; a binding that must check before it has a lock file (Python's
 * lifetime, validated before the class decides to ignore it) calls this.
 *
 * @return 0, or ::FL_EINVAL: a negative or non-finite lifetime; a given
 *         (::FL_OPT_LEASE_DURATION) or negative lease_duration that is not
 *         positive and finite; a heartbeat_interval given or non-zero that is
 *         not in (0, lease_duration), or without a lease; a lease with a
 *         lifetime, on the kernel lock, or read_write; a NULL @p opts, a
 *         version other than ::FL_OPTIONS_VERSION or 1, unknown bits in
 *         fl_options.given. ::FL_ENOTSUP: a lease on
 *         Windows.
 */
FL_EXTERN int fl_options_check(const fl_options *opts);

/**
 * Creates a lock handle for the lock file @p path (NUL-terminated). Nothing
 * is opened or created until the first acquire.
 *
 * With `opts->singleton` set, a second call for the same lock file (same
 * canonical parent directory and final name) and the same
 * `opts->singleton_scope` returns the same handle with a reference count; it
 * fails with ::FL_EINVAL when the other settings differ. Singletons of other
 * scopes on that lock file are separate handles (separate holds).
 *
 * @param[out] out  receives the handle; set to NULL on failure.
 * @param path      the lock file; missing parent directories are created on acquire.
 * @param opts      settings, or NULL for the defaults.
 * @return 0, ::FL_EINVAL (empty path, NaN timeout, negative poll interval,
 *         bad mode, a version other than ::FL_OPTIONS_VERSION or 1 (the
 *         message names the lock file), singleton settings differ, or a
 *         lease or lifetime setting fl_options_check() refuses),
 *         ::FL_ENOTSUP (a lease on Windows, on_acquired on Windows) or
 *         ::FL_ENOMEM.
 */
FL_EXTERN int fl_lock_new(fl_lock **out, const char *path, const fl_options *opts);

/**
 * Same as fl_lock_new() for a path given with its length, so that a NUL byte
 * inside it is reported as ::FL_EINVAL instead of silently cutting the path.
 */
FL_EXTERN int fl_lock_new_n(fl_lock **out, const char *path, size_t len, const fl_options *opts);

/**
 * Releases the lock if held (by any thread) and frees the handle; for a
 * singleton, drops one reference. In a process forked from the one that
 * created the handle, the parent's holds are forgotten and their
 * descriptors are left open (never closed: the child may have closed them
 * and reused the numbers for its own files); the parent's lock stays.
 * NULL is ignored.
 */
FL_EXTERN void fl_lock_free(fl_lock *lock);

/* ---------------------------------------------------------------------- */
/* Acquire and release                                                     */
/* ---------------------------------------------------------------------- */

/** Acquires with the handle's default timeout, blocking flag and poll interval. */
FL_EXTERN int fl_acquire(fl_lock *lock);

/**
 * Acquires the lock.
 *
 * If the calling thread (or, for a shared handle, any thread) already holds
 * it, the counter is incremented. Otherwise: @p blocking == 0 or
 * @p timeout == 0 make exactly one attempt; @p timeout < 0 waits forever;
 * @p timeout > 0 waits at most that many seconds. A waiter wakes as soon as
 * the holder releases (blocking flock, or inotify close/delete events), and
 * re-checks for releases no event reports every max(@p poll_interval, 100 ms)
 * with an inotify watch armed (250 ms for the soft lock), or every
 * max(@p poll_interval, 50 ms) without one, so that a waiter never spins.
 * Durations of any size are accepted (@p timeout or @p poll_interval of
 * 1e19 or infinity: no overflow, no busy loop); time is measured on the
 * monotonic clock, so a step of the wall clock neither stretches nor cuts a
 * wait. The waiters of one process share one inotify instance (Linux); when
 * the user's instances or watches are exhausted, waiters fall back to the
 * timed re-checks above.
 *
 * @return 0; ::FL_ETIMEOUT when not won in time (message "The file lock
 *         '<path>' could not be acquired."); ::FL_EDEADLK when waiting forever
 *         for a lock file this thread holds through another handle, or
 *         (read/write locks) behind the writers' gate while this thread holds
 *         the lock through another handle and a writer waits for it;
 *         ::FL_EINTR when a signal interrupted the wait; ::FL_ECANCELED when
 *         the cancel callback asked to stop (or, in a child forked by the
 *         log handler after the lock was won, because that lock is the
 *         parent's); ::FL_ENOTSUP when the file system has no OS locks or
 *         keeps them local to this host (see ::FL_ENOTSUP);
 *         or another error code for a permanent failure,
 *         which is never retried. The counter is unchanged on failure.
 */
FL_EXTERN int fl_acquire_ex(fl_lock *lock, double timeout, int blocking, double poll_interval);

/**
 * Acquires the lock in shared (read) mode: any number of shared holders, or
 * one exclusive holder (fl_acquire_ex). Same timeout, blocking, recursion,
 * thread-model and interruption rules as fl_acquire_ex(). Recursion stays
 * within one mode: asking for shared while holding exclusive (or the
 * reverse) fails with ::FL_ELOCKMODE instead of converting the lock, since
 * flock's conversion is not atomic. With fl_options.read_write set, a
 * waiting writer closes a gate to new readers so it is not starved.
 *
 * @return as fl_acquire_ex(), and ::FL_ENOTSUP for the soft lock.
 */
FL_EXTERN int fl_acquire_shared(fl_lock *lock, double timeout, int blocking, double poll_interval);

/** fl_acquire_args.set: the call gives its own timeout (else the handle's). */
#define FL_ARG_TIMEOUT 0x1u
/** fl_acquire_args.set: the call gives its own blocking flag (else the handle's). */
#define FL_ARG_BLOCKING 0x2u
/** fl_acquire_args.set: the call gives its own poll interval (else the handle's). */
#define FL_ARG_POLL_INTERVAL 0x4u
/** fl_acquire_args.set: the call gives an absolute deadline, which replaces any timeout. */
#define FL_ARG_DEADLINE 0x8u
/** fl_acquire_args.set: the call gives its own cancel callback (else the handle's,
 * fl_set_cancel()). */
#define FL_ARG_CANCEL 0x10u
/** fl_acquire_args.set: the call gives a wake-up descriptor (fl_acquire_args.wake_fd). */
#define FL_ARG_WAKE_FD 0x20u

/**
 * Arguments of one acquire (fl_acquire_with()). Each of timeout, blocking,
 * poll_interval and deadline counts only when its FL_ARG_* bit is in @p set;
 * a field whose bit is clear means "the handle's default" (fl_get_timeout(),
 * fl_get_blocking(), fl_get_poll_interval()), resolved when the call starts.
 * So a binding fills in only what its caller passed. Initialise with
 * fl_acquire_args_init().
 */
typedef struct fl_acquire_args {
    unsigned set;         /**< FL_ARG_* bits of the fields below that are given. */
    double timeout;       /**< Seconds, as fl_acquire_ex(): <0 forever, 0 one attempt. */
    int blocking;         /**< As fl_acquire_ex(): 0 means one attempt whatever the timeout. */
    double poll_interval; /**< Seconds, as fl_acquire_ex(). */
    double deadline;      /**< Absolute time on the fl_monotonic() clock, in seconds: the wait
                               ends then (a deadline already past means one attempt;
                               +infinity waits forever). */
    int shared;           /**< 1: shared (read) mode, as fl_acquire_shared(); 0: exclusive. */
    fl_cancel_fn cancel;  /**< With ::FL_ARG_CANCEL: the cancel callback of this call only (NULL:
                               none), used instead of the handle's (fl_set_cancel()); consulted as
                               described at ::fl_cancel_fn. */
    void *cancel_data;    /**< Passed to @p cancel. */
    int wake_fd;          /**< With ::FL_ARG_WAKE_FD: a descriptor the wait also polls for
                               reading (a binding's signal wake-up pipe, e.g. Python's
                               signal.set_wakeup_fd()); -1: none. When it becomes readable the
                               cancel callback runs at once with @p interrupted 1, and must drain
                               it (a descriptor left readable makes the wait spin through the
                               callback). Where the platform polls it (Linux), the callback is
                               no longer also asked every 50 ms: only when @p wake_fd is
                               readable, on a signal, and at the wait's own re-checks (every
                               max(poll_interval, 0.05 s), 0.1 s with an inotify watch armed).
                               Elsewhere (other POSIX systems, Windows) it is ignored and the
                               callback keeps its 50 ms cadence. Where it is polled, a
                               descriptor that is not open (or is closed during the wait), or
                               that hung up or is in error with nothing to read, ends the wait
                               with ::FL_EINVAL naming it (it would be ready for ever). */
} fl_acquire_args;

/** Fills @p args with "every field is the handle's default, exclusive mode". */
FL_EXTERN void fl_acquire_args_init(fl_acquire_args *args);

/**
 * The library's monotonic clock in seconds (CLOCK_MONOTONIC on POSIX,
 * QueryPerformanceCounter on Windows), from an unspecified origin: the clock
 * of fl_acquire_args.deadline and of every wait of the library.
 */
FL_EXTERN double fl_monotonic(void);

/**
 * Resolves @p in (NULL: nothing given) against the handle's defaults into
 * @p out, with every FL_ARG_* bit set and the wait turned into an absolute
 * deadline taken now: +infinity waits forever, -infinity (also for
 * blocking == 0 or timeout == 0) is one attempt. A binding that must re-enter
 * the wait (to run its signal handlers) resolves once and passes @p out to
 * fl_acquire_with() each time, so the time left is computed by the core.
 *
 * @return 0, or ::FL_EINVAL for a NaN timeout or deadline, a negative poll
 *         interval or unknown bits (naming the lock file).
 */
FL_EXTERN int fl_acquire_args_resolve(fl_lock *lock, const fl_acquire_args *in,
                                      fl_acquire_args *out);

/**
 * Acquires the lock with the arguments in @p args (NULL: as fl_acquire()).
 * With ::FL_ARG_DEADLINE the remaining time is computed here, so a binding
 * that re-enters the wait (after a signal handler ran, say) passes the same
 * deadline again instead of doing the arithmetic itself.
 *
 * @return as fl_acquire_ex() (or fl_acquire_shared() with @p args->shared);
 *         ::FL_EINVAL also for a NaN deadline or unknown bits in @p args->set.
 */
FL_EXTERN int fl_acquire_with(fl_lock *lock, const fl_acquire_args *args);

/** 1 if the calling thread (any thread, for a shared handle) holds the lock in shared mode. */
FL_EXTERN int fl_is_shared(fl_lock *lock);

/**
 * Releases one level of the lock (all levels when @p force is non-zero); the
 * lock file is unlocked when the counter reaches zero. Releasing a lock the
 * calling thread does not hold is a no-op returning 0. The kernel lock file
 * is never deleted; the soft marker is deleted only if it is still ours.
 *
 * @return 0, or ::FL_EIO when closing failed after the unlock (the lock is
 *         released all the same), or when the file system had already
 *         dropped the kernel lock (a network partition longer than the
 *         server's timeout, a server restart: the unlock fails with EBADFD,
 *         ESTALE, EIO, ENOTCONN or ENOLCK, kept in fl_last_errno()), so that
 *         another process may have held it meanwhile; the handle is released.
 */
FL_EXTERN int fl_release(fl_lock *lock, int force);

/**
 * Sets the cancel callback consulted while this handle waits (NULL removes
 * it). While one is set, waiting forever re-checks at least every 50 ms
 * instead of sleeping in a blocking flock.
 */
FL_EXTERN void fl_set_cancel(fl_lock *lock, fl_cancel_fn fn, void *data);

/* ---------------------------------------------------------------------- */
/* State and settings                                                      */
/* ---------------------------------------------------------------------- */

/** 1 if the calling thread (any thread, for a shared handle) holds the lock. */
FL_EXTERN int fl_is_locked(fl_lock *lock);

/** The recursion counter seen by the calling thread (0 when not held). */
FL_EXTERN int fl_lock_counter(fl_lock *lock);

/** The lock file path as given at creation (owned by the handle). */
FL_EXTERN const char *fl_lock_path(const fl_lock *lock);

/** A process-unique id of the handle (the default id of its log messages). */
FL_EXTERN uint64_t fl_lock_id(const fl_lock *lock);

/**
 * Sets the id that this handle's log events carry (the `<id>` of
 * ::fl_log_event messages) instead of fl_lock_id(): a binding names its own
 * object there, as the pure-Python filelock logs `id(lock)`. 0 restores
 * fl_lock_id(). NULL is ignored.
 */
FL_EXTERN void fl_set_log_id(fl_lock *lock, uint64_t log_id);

/** The kind in use: ::FL_SOFT after a fallback from the kernel lock. */
FL_EXTERN fl_kind fl_lock_kind(const fl_lock *lock);

/** The default timeout in seconds. */
FL_EXTERN double fl_get_timeout(const fl_lock *lock);

/** Changes the default timeout; ::FL_EINVAL for NaN. */
FL_EXTERN int fl_set_timeout(fl_lock *lock, double timeout);

/** The default blocking flag (1 or 0). */
FL_EXTERN int fl_get_blocking(const fl_lock *lock);

/** Changes the default blocking flag. */
FL_EXTERN void fl_set_blocking(fl_lock *lock, int blocking);

/** The default poll interval in seconds. */
FL_EXTERN double fl_get_poll_interval(const fl_lock *lock);

/** Changes the default poll interval; ::FL_EINVAL for NaN or negative values. */
FL_EXTERN int fl_set_poll_interval(fl_lock *lock, double poll_interval);

/** The explicit mode for a new lock file, or ::FL_MODE_DEFAULT. */
FL_EXTERN int fl_get_mode(const fl_lock *lock);

/** 1 if the lock state is per thread. */
FL_EXTERN int fl_is_thread_local(const fl_lock *lock);

/** 1 if the handle came from the singleton registry. */
FL_EXTERN int fl_is_singleton(const fl_lock *lock);

/**
 * What decides "the same lock file" for the singleton registry: the lock
 * file's parent directory resolved to an absolute path without symlinks
 * (lexically where it does not exist yet), then the final name as given, so
 * a symlink at the lock path itself is never followed. Two singleton handles
 * are the same handle exactly when their keys are equal; a binding that
 * keeps one language object per singleton keys its table with this string.
 * Owned by the handle; NULL for a handle created without
 * fl_options.singleton.
 */
FL_EXTERN const char *fl_singleton_key(const fl_lock *lock);

/* ---------------------------------------------------------------------- */
/* Holding a lock on behalf of a child process                             */
/* ---------------------------------------------------------------------- */

/**
 * The descriptor of the kernel lock the calling thread holds (any thread,
 * for a shared handle), so that a program can hand the lock to a command it
 * starts, as util-linux flock(1) does: a child that inherits a duplicate
 * shares the lock (one open file description), so the lock outlives this
 * process while the child runs. The lock then lasts until fl_release()
 * unlocks it (for every duplicate) or, when this process exits without
 * releasing, until the last duplicate is closed.
 *
 * The descriptor stays the handle's: do not close or unlock it. It is
 * close-on-exec; clear FD_CLOEXEC only in the child after fork(). POSIX only.
 *
 * @return the descriptor (>= 0); ::FL_EINVAL when the calling thread does
 *         not hold the lock (or @p lock is NULL); ::FL_ENOTSUP for the soft
 *         lock and on Windows.
 */
FL_EXTERN int fl_lock_fd(fl_lock *lock);

/**
 * Takes the exclusive kernel lock (flock(2), the lock ::FL_KERNEL handles
 * take, so the two contend) on @p fd, a descriptor the caller opened and
 * owns. Nothing else is done to it: it is never opened, closed, truncated or
 * re-checked, and there is no recursion counter, thread model or deadlock
 * check (use a handle for those). Taking the lock on a descriptor whose open
 * file description already holds it succeeds again (flock semantics).
 *
 * @param fd            an open descriptor (any access mode).
 * @param blocking      0: one attempt; otherwise wait in the kernel's queue
 *                      until the lock is granted (woken at once by the release).
 * @param poll_interval seconds; must be finite and > 0 when @p blocking
 *                      (kept for the pure-Python filelock's signature: the wait
 *                      needs no polling), ignored otherwise.
 * @param cancel        NULL, or consulted when a signal interrupts the wait
 *                      (@p interrupted 1): non-zero ends it with ::FL_ECANCELED.
 * @param cancel_data   passed to @p cancel.
 * @return 0 when locked; ::FL_ETIMEOUT when @p blocking is 0 and another
 *         description holds the lock (flock's EWOULDBLOCK, or EACCES as some
 *         file systems report it); ::FL_EINVAL for a bad @p poll_interval;
 *         ::FL_EINTR when a signal interrupted the wait and @p cancel is NULL;
 *         ::FL_ECANCELED; ::FL_ENOTSUP on Windows and where flock is missing;
 *         otherwise the code of the OS error (EBADF: ::FL_EOS), with the errno in
 *         fl_last_errno(). The descriptor is left open in every case.
 */
FL_EXTERN int fl_lock_descriptor(int fd, int blocking, double poll_interval, fl_cancel_fn cancel,
                                 void *cancel_data);

/**
 * Releases the kernel lock fl_lock_descriptor() took on @p fd, leaving the
 * descriptor open (the caller still owns and closes it). Unlocking a
 * descriptor that holds no lock succeeds.
 *
 * @return 0; ::FL_ENOTSUP on Windows; otherwise the code of the OS error
 *         (errno in fl_last_errno()); the caller may retry.
 */
FL_EXTERN int fl_unlock_descriptor(int fd);

/**
 * Makes the owner record that later soft-lock acquires through this handle
 * write (see ::fl_owner) name process @p pid on this host, with that
 * process's start token, instead of the calling process. For a program
 * that holds the lock on behalf of a child it runs (the filelock command):
 * the marker is then judged stale only once that child is gone, even if
 * the caller dies first. Keep the child unreaped (no waitpid) until the
 * lock is released, so that its pid cannot be reused meanwhile. @p pid 0
 * restores the default. The kernel lock is not affected (the OS records
 * its holder). POSIX only.
 *
 * @return 0; ::FL_EINVAL for a negative @p pid or NULL @p lock;
 *         ::FL_ENOTSUP on Windows.
 */
FL_EXTERN int fl_set_owner_pid(fl_lock *lock, long pid);

/**
 * With @p allow non-zero, an existing kernel lock file that the caller may
 * read but not write (permission denied, read-only file system) is opened
 * read-only, which is all flock(2) needs, as util-linux flock(1) does. By
 * default (0) such a file fails with ::FL_EACCES or ::FL_EROFS, as the
 * pure-Python filelock does. A missing lock file is still created
 * read-write. The soft lock is not affected.
 *
 * @return 0, or ::FL_EINVAL for a NULL @p lock.
 */
FL_EXTERN int fl_set_read_only_open(fl_lock *lock, int allow);

/** What fl_release() does when closing the lock file (kernel lock) or the
 *  marker (soft lock) fails after the unlock; the lock is released either
 *  way. A failed unlock (::FL_EIO: a network file system dropped the lock)
 *  is always reported. */
typedef enum fl_close_errors {
    FL_CLOSE_REPORT = 0,       /**< Reported (the default): ::FL_EIO or the OS error's code, with
                                    a message naming the path. On NFS it can mean lost writes. */
    FL_CLOSE_IGNORE = 1,       /**< Ignored: fl_release() returns 0 (the pure-Python filelock's
                                    `close_error_policy="suppress"`). */
    FL_CLOSE_IGNORE_KERNEL = 2 /**< Ignored for the kernel lock on POSIX (FUSE and Docker bind
                                    mounts report EIO there), reported for the soft lock (also
                                    after a soft fallback) and on Windows: the pure-Python
                                    filelock's `close_error_policy="default"` (3.30+). */
} fl_close_errors;

/**
 * Sets what fl_release() does with a failure to close the lock file after
 * the unlock (see ::fl_close_errors; ::FL_CLOSE_REPORT until set). A shared
 * (singleton) handle has one setting: the last one set.
 *
 * @return 0, or ::FL_EINVAL for a NULL @p lock or an unknown @p policy.
 */
FL_EXTERN int fl_set_close_errors(fl_lock *lock, int policy);

/* ---------------------------------------------------------------------- */
/* Owner inspection and stale-marker recovery                              */
/* ---------------------------------------------------------------------- */

/**
 * Who holds a lock, as recorded in a soft marker's owner record
 * ("<pid>\n<hostname>\n<start token>\n", the format the pure-Python
 * filelock writes) or, for the kernel lock, as the OS reports it.
 */
typedef struct fl_owner {
    long pid;             /**< The holder's process id, or -1 when unknown. */
    char hostname[256];   /**< The holder's host (this host's name for the kernel lock). */
    char start_token[96]; /**< Process start token ("" when none was recorded). */
    int this_process;     /**< 1 if the holder is this process on this host. */
} fl_owner;

/**
 * Fills @p out with the current holder of the lock file.
 *
 * Soft lock: reads the marker safely (lstat first, regular files only,
 * O_NOFOLLOW|O_NONBLOCK, at most 4 KiB). Kernel lock (Linux): looks the
 * lock file's inode up in /proc/locks.
 *
 * @return 0 when a holder was found; ::FL_ENOENT when the lock is free;
 *         ::FL_ENOTSUP when held but the holder cannot be told (a marker
 *         without an owner record, or no /proc/locks); another code on error.
 */
FL_EXTERN int fl_get_owner(fl_lock *lock, fl_owner *out);

/**
 * 1 if this process holds the lock file. Kernel lock: through this handle
 * (any thread), or, according to fl_get_owner(), through any other handle or
 * thread of this process. Soft lock: the marker's owner record names this
 * process on this host (whatever this handle's counter says: a marker
 * broken by fl_break_lock() is no longer a hold). 0 when free, held by another process, or held by
 * a holder that cannot be told. The one definition every binding's "held by us" (Python
 * is_lock_held_by_us, Ruby owned_by_us?, Lua is_held_by_us) uses. A query, not an operation: the
 * calling thread's last error (fl_last_code(), fl_last_error()) is left as it was.
 */
FL_EXTERN int fl_held_by_this_process(fl_lock *lock);

/**
 * For operators: deletes the soft lock's marker whoever holds it. This voids
 * mutual exclusion for the current holder; use it only when the holder is
 * known to be gone. Stale markers of dead holders on this host are
 * reclaimed automatically by acquire, without this call.
 *
 * @return 0 (also when no marker existed), ::FL_ENOTSUP for the kernel lock
 *         (the OS drops it when its holder dies), or an error code.
 */
FL_EXTERN int fl_break_lock(fl_lock *lock);

/* ---------------------------------------------------------------------- */
/* Leases                                                                  */
/* ---------------------------------------------------------------------- */

/** Why a held lease was lost (the pure-Python filelock's CompromiseReason). */
typedef enum fl_lease_loss {
    FL_LEASE_MARKER_MISSING = 1, /**< "marker-missing": the marker was removed. */
    FL_LEASE_OWNER_CHANGED = 2,  /**< "owner-changed": another holder's marker replaced ours. */
    FL_LEASE_REFRESH_FAILED = 3  /**< "refresh-failed": refreshes failed for lease_duration minus
                                      one heartbeat_interval, so a contender may take it. */
} fl_lease_loss;

/**
 * Compromise callback: a lease held through @p lock was lost for @p reason
 * (@p os_errno: the last refresh's errno for ::FL_LEASE_REFRESH_FAILED, else
 * 0; @p path: the lock file). Called once per lost hold, from a thread the
 * library starts for that call (all signals blocked), with no library mutex
 * held, so that a slow callback never delays the refreshes of the process's
 * other leases; it should make the holder stop using what the lock protects.
 * It may call fl_release() (which acts only for a handle with thread_local 0,
 * that thread holding nothing of a thread-local one). The hold stays lost: fl_release() then
 * returns
 * ::FL_ELOST.
 */
typedef void (*fl_compromise_fn)(void *data, fl_lock *lock, fl_lease_loss reason, int os_errno,
                                 const char *path);

/**
 * Sets the callback told when a lease of @p lock is lost (NULL removes it).
 * Setting it while a refresh reports a loss is safe: the old or the new one
 * is called. fl_release() and fl_lock_free() wait for a callback running for
 * their hold to return (unless called from it).
 */
FL_EXTERN void fl_set_compromise_callback(fl_lock *lock, fl_compromise_fn fn, void *data);

/** The name of a ::fl_lease_loss: "marker-missing", "owner-changed", "refresh-failed" ("" else). */
FL_EXTERN const char *fl_lease_loss_name(int reason);

/** The handle's lease duration in seconds (0: not a lease). */
FL_EXTERN double fl_get_lease_duration(const fl_lock *lock);

/** The handle's heartbeat interval in seconds (0: not a lease). */
FL_EXTERN double fl_get_heartbeat_interval(const fl_lock *lock);

/** The handle's soft-marker lifetime in seconds (0: none). */
FL_EXTERN double fl_get_lifetime(const fl_lock *lock);

/* ---------------------------------------------------------------------- */
/* Owner tokens and the event-loop wait hub                                */
/* ---------------------------------------------------------------------- */

/**
 * One attempt, never waiting, on behalf of @p owner: a token naming a task,
 * fiber or coroutine (any value below 2^63 the caller keeps unique while it
 * may hold the lock; 0 means the calling thread, as fl_acquire_ex()). For a
 * thread-local handle (fl_options.thread_local) the owner takes the thread's
 * place everywhere: its recursion counter, "held by this owner", and the
 * self-deadlock check, so tasks sharing one thread are told apart. A handle
 * that is not thread-local has one state for everyone, as with threads.
 *
 * @param lock   the handle.
 * @param owner  the task's token (below 2^63), or 0 for the calling thread.
 * @param shared 1: shared (read) mode, as fl_acquire_shared(); 0: exclusive.
 * @return 0 (won, or the owner already held it: the counter went up),
 *         ::FL_ETIMEOUT when someone else holds it, ::FL_EINVAL for a NULL
 *         handle or a token with bit 63 set, or any error of fl_acquire_ex().
 */
FL_EXTERN int fl_try_acquire_as(fl_lock *lock, uint64_t owner, int shared);

/**
 * Releases one level (@p force: every level) of @p owner's hold, as
 * fl_release() does for a thread. Releasing what @p owner does not hold is
 * a no-op returning 0.
 *
 * @return 0, ::FL_EINVAL (NULL handle, token with bit 63 set), or an error of
 *         fl_release() (the lock is released all the same).
 */
FL_EXTERN int fl_release_as(fl_lock *lock, uint64_t owner, int force);

/** @p owner's recursion level of @p lock (0: not held by it), as fl_lock_counter(). */
FL_EXTERN int fl_lock_counter_as(fl_lock *lock, uint64_t owner);

/**
 * An event-loop wait hub: waits for many locks in one thread without
 * blocking it. The loop watches fl_hub_fd() for readability and arms a timer
 * for fl_hub_timeout(); whenever either fires it calls fl_hub_dispatch(),
 * which re-tries the locks that may have come free and runs the callbacks of
 * the waits it ended. On Linux a hub holds an epoll set (the descriptor the
 * loop polls) with one inotify instance in it, plus one open lock file per
 * distinct lock file with waiters (the descriptor its attempts re-use), and
 * for a soft lock whose holder runs on this host, a pidfd of that holder,
 * whatever the number of waiters: the holder's death wakes the loop at once
 * (its marker is then judged, again at 1, 2, 4 ... ms while the dead holder
 * is an unreaped zombie, up to 0.5 s). A release that closes the lock
 * file wakes it at once, and a per-file re-check timer (starting at the
 * waiters' shortest poll interval, at least 0.1 s, doubling while nothing
 * happens up to 1 s) catches releases that close nothing (`flock(LOCK_UN)`
 * with the file kept open, a forked child keeping a copy). Without inotify
 * (other systems, `-DFL_GENERIC_POSIX=ON`, the user's instances or watches
 * exhausted) the timer alone re-tries, every poll interval (at least
 * 0.05 s). On Windows the loop is woken through a loopback socket: a busy
 * kernel lock file keeps one overlapped `LockFileEx` queued (granted at the
 * release), a soft lock a change notification on its directory; see
 * docs/windows.md. Waiters of one file are served first come, first served.
 *
 * A hub is used by one thread at a time (the loop's); its callbacks run
 * inside fl_hub_dispatch() (and fl_hub_free()) on that thread. A forked child
 * cannot use its parent's hub (every call fails with ::FL_ECANCELED naming
 * the fork; fl_hub_free() only frees its memory): it makes its own.
 */
typedef struct fl_hub fl_hub;

/** A pending wait of a hub: valid until its callback has been called or it was cancelled. */
typedef struct fl_hub_waiter fl_hub_waiter;

/**
 * Called once when a hub wait ends: @p rc is 0 (@p owner now holds @p lock,
 * release it with fl_release_as() or fl_hub_release()), ::FL_ETIMEOUT (the
 * deadline passed), ::FL_ECANCELED (fl_hub_free() with the wait pending), or
 * any error of fl_acquire_ex() (the thread's message is set). The callback
 * may call every hub function: acquire, release, cancel other waiters,
 * dispatch (a nested dispatch), fl_hub_timeout(), fl_hub_free() (see there),
 * and fl_lock_free() of @p lock once no other wait of the hub uses it.
 */
typedef void (*fl_hub_done_fn)(void *data, fl_lock *lock, uint64_t owner, int rc);

/**
 * Creates a hub.
 * @return 0, ::FL_EINVAL (@p out NULL), ::FL_ENOMEM.
 */
FL_EXTERN int fl_hub_new(fl_hub **out);

/**
 * Frees a hub: each pending wait ends with ::FL_ECANCELED (its callback is
 * called) and the hub's descriptors are closed (in a forked child they are
 * the parent's and are left alone). Locks won through the hub stay held.
 * Those callbacks may call the hub: fl_hub_acquire() and fl_hub_dispatch()
 * then fail with ::FL_ECANCELED (no new wait), a second fl_hub_free() does
 * nothing. Called from a callback of a hub call under way (a @p done
 * callback, the on_acquired hook, the log handler, inside fl_hub_acquire(),
 * fl_hub_dispatch(), fl_hub_cancel() or fl_hub_release()), it takes effect
 * when that call returns: the call finishes the attempt under way (a win is
 * reported as usual: returned by fl_hub_acquire() or through its callback),
 * tries nothing more, and the rest of the waits end with ::FL_ECANCELED as
 * it returns. Meanwhile fl_hub_acquire() and fl_hub_dispatch() fail with
 * ::FL_ECANCELED. Do not use the hub once that outermost call returned.
 */
FL_EXTERN void fl_hub_free(fl_hub *hub);

/**
 * The descriptor an event loop polls for readability: when readable,
 * call fl_hub_dispatch(). On Linux an epoll set (inotify and the soft
 * holders' pidfds; the inotify instance alone if no epoll set could be
 * made). -1 when the hub has none (generic POSIX, or on Linux neither an
 * epoll set nor an inotify instance could be made; Windows: no loopback
 * socket pair could be made); then fl_hub_timeout() alone drives it. Fixed
 * for the hub's life. On Windows it is a `SOCKET` (the reading end of a
 * connected loopback TCP pair) cast to int: poll it with `select()`/`WSAPoll`
 * or a socket-based loop after casting it back with `(SOCKET)(intptr_t)fd`;
 * never `close()` it.
 */
FL_EXTERN int fl_hub_fd(const fl_hub *hub);

/**
 * Seconds until fl_hub_dispatch() must be called even if fl_hub_fd() stays
 * quiet (the next re-check or deadline; 0: now), or -1 when no wait is
 * pending. Ask again after every call of the hub.
 */
FL_EXTERN double fl_hub_timeout(fl_hub *hub);

/**
 * Starts an acquire of @p lock for @p owner (see fl_try_acquire_as()) with
 * @p args (NULL: the handle's defaults; timeout, blocking, poll interval,
 * deadline and shared as for fl_acquire_with()). It first tries at once,
 * unless other waits of this hub for the same file came first (first come,
 * first served; an owner that already holds the lock is never queued). A
 * read/write lock (fl_options.read_write) waits as fl_acquire_shared() and
 * fl_acquire_ex() do: for the writers' gate first, then, holding the gate
 * (so that a waiting writer holds new readers back), for the lock itself;
 * the gate is let go when the wait ends, whichever way. While another
 * thread is acquiring the same handle (fl_options.thread_local off), the
 * wait keeps no gate (that thread would wait for it, and the wait for that
 * thread): it gives the gate back and waits for it again, first in line,
 * and joins that thread's hold once won (::FL_ELOCKMODE if that hold is of
 * the other mode, as for a thread).
 *
 * A win of a kernel lock runs fl_options.on_acquired, as the blocking calls
 * do (inside fl_hub_acquire() or fl_hub_dispatch(), on the loop's thread); a
 * refusal releases the lock and ends the wait with the hook's code. The hook
 * (and the log handler) may call every hub function: fl_hub_cancel() of the
 * very wait being won frees it once the attempt returned, without its
 * callback, and gives the win back (the next waiter gets it); an acquire of
 * the file being won finds it busy (queued, or ::FL_ETIMEOUT for a single
 * try), of another file works as from anywhere; a nested fl_hub_dispatch()
 * leaves that file to the dispatch under way; fl_hub_release() of the hold
 * being won does nothing in the hook (the win is recorded after it
 * returns); fl_hub_free() takes effect when the outermost hub call returns
 * (see there). Neither may free the handle being won (fl_lock_free()): the
 * hook and the log handler must not call the library for that handle, as
 * ::fl_acquired_fn says. A wait ending with a read/write lock lets its gate
 * go before its callback, which runs the log handler: a fl_hub_cancel() of
 * that wait from there is honoured (no callback, a win given back). A hook that
 * forks and returns in the child: the child does not hold the lock (the
 * parent does), the child's call fails with ::FL_ECANCELED. A lease
 * (fl_options.lease_duration) won here is held and refreshed like any other.
 * The per-call cancel callback (::FL_ARG_CANCEL in @p args) is not used: the
 * hub never blocks; end a wait with fl_hub_cancel().
 *
 * @param hub    the hub (of this thread's loop).
 * @param lock   the handle; it must outlive the wait.
 * @param owner  the task's token, as in fl_try_acquire_as().
 * @param args   the arguments, or NULL for the handle's defaults.
 * @param done   called once when the pending wait ends (not when the call
 *               itself finishes it).
 * @param data   passed to @p done.
 * @param waiter set to NULL when the call finished (won: returns 0), or to
 *        the pending wait, whose @p done callback fl_hub_dispatch() calls.
 * @return 0 (won now, or pending), ::FL_ETIMEOUT (non-blocking or timeout 0,
 *         and held), ::FL_EDEADLK (no timeout, and @p owner holds the file
 *         through another handle), ::FL_ECANCELED in a forked child of the
 *         hub's process or while the hub is being freed (fl_hub_free() from a
 *         callback; a win at once still returns 0), or any error of
 *         fl_acquire_ex() / fl_acquire_shared().
 */
FL_EXTERN int fl_hub_acquire(fl_hub *hub, fl_lock *lock, uint64_t owner,
                             const fl_acquire_args *args, fl_hub_done_fn done, void *data,
                             fl_hub_waiter **waiter);

/**
 * Reads the hub's pending events and re-tries the locks they (or the due
 * re-check timers) concern, completing won, timed-out and failed waits
 * through their callbacks. Never blocks.
 * @return the number of waits it completed, or ::FL_ECANCELED in a forked
 *         child or while the hub is being freed (fl_hub_free() from a
 *         callback), ::FL_EINVAL for a NULL hub.
 */
FL_EXTERN int fl_hub_dispatch(fl_hub *hub);

/**
 * Cancels a pending wait without calling its callback. If it was first in
 * line for its file, the next wait there is re-tried at the next dispatch.
 * Called from the on_acquired hook (or log handler) of the wait's own
 * attempt, or from the log handler while the wait is ending (its gate let
 * go before its callback), the wait goes when that returned, and a win is
 * released. A second cancel of the same wait from the log handler of that
 * release does nothing. Must not be called after the wait's callback has run.
 * @return 0, or ::FL_EINVAL (NULL).
 */
FL_EXTERN int fl_hub_cancel(fl_hub_waiter *waiter);

/**
 * fl_release_as(), then the hub's next waiter for the same file is re-tried
 * at the next dispatch (fl_hub_timeout() becomes 0), without waiting for the
 * file system's event. A win a cancelled task did not collect is passed on
 * this way.
 * @return as fl_release_as().
 */
FL_EXTERN int fl_hub_release(fl_hub *hub, fl_lock *lock, uint64_t owner, int force);

/* ---------------------------------------------------------------------- */
/* Logging                                                                 */
/* ---------------------------------------------------------------------- */

/**
 * Installs the process-wide log handler (NULL turns logging off, the
 * default). When unset, logging costs one load and branch per step.
 */
FL_EXTERN void fl_set_log_handler(fl_log_fn fn, void *data);

/**
 * Formats the message py-filelock logs for @p event into @p buf (always
 * NUL-terminated when @p size > 0), so that every binding prints the same
 * text; the seconds of ::FL_LOG_WAITING are printed as Python's repr() prints
 * a float (`0.05`, `1.0`, `1e-05`). Returns the length the full message needs, like snprintf().
 */
FL_EXTERN int fl_format_log(char *buf, size_t size, fl_log_event event, uint64_t id,
                            const char *path, double seconds);

/** The library's version as "major.minor.patch". */
FL_EXTERN const char *fl_version(void);

#ifdef __cplusplus
}
#endif

#endif /* FILELOCK_H */
