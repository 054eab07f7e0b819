/*
 * The platform-independent lock semantics: handles, options, the singleton
 * registry, recursion counters, the per-thread / shared state model, the
 * self-deadlock check, fork safety, the acquire loop (attempt, watch, wait)
 * and logging. Everything that touches the file system is in the backend.
 */
#include "internal.h"
#include "seconds.h"
#include "soft.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifndef _WIN32
#include <sys/file.h>
#endif

/* ---------------------------------------------------------------------- */
/* Process-wide state                                                      */
/* ---------------------------------------------------------------------- */

/* The registry (singletons and the list of live handles) and the table of
 * held locks (for the deadlock check) have one mutex each; the lock order
 * and what each mutex guards are written down in internal.h. */
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static fl_lock *g_singletons;
static fl_lock *g_handles;

typedef struct fl__held {
    uint64_t dev, ino;
    uint64_t gate_dev, gate_ino; /* read/write locks: the gate passed to get here */
    int have_gate;
    unsigned gen; /* entries inherited from the parent do not count */
    int shared;
    uint64_t thread;
    const fl_lock *lock;
    struct fl__held *next;
} fl__held;
static pthread_mutex_t g_held_mu = PTHREAD_MUTEX_INITIALIZER;
static fl__held *g_held;

static uint64_t g_next_id = 1;

/* ---------------------------------------------------------------------- */
/* Thread identity                                                         */
/* ---------------------------------------------------------------------- */

static uint64_t g_next_thread = 1;
/* mingw-w64 emulates __thread (emutls), which also works inside a DLL. */
static __thread uint64_t t_serial;
/* The owner token a call acts for (fl_try_acquire_as() and friends: a task
 * or fiber of an event loop), as an identity with FL__OWNER_BIT set so that
 * it never equals a thread's serial; 0 while the call acts for the thread. */
static __thread uint64_t t_owner;
/* The wake-up descriptor (FL_ARG_WAKE_FD) of the acquire under way in this
 * thread, -1 for none: set by acquire_mode for the call, read by os_acquire
 * (a thread-local rather than one more argument through every layer of the
 * acquire; a nested acquire from a callback sets its own). */
static __thread int t_wake_fd = -1;
#define FL__OWNER_BIT (UINT64_C(1) << 63)

uint64_t fl__thread_serial(void) {
    uint64_t s = t_owner;
    if (s)
        return s;
    s = t_serial;
    if (__builtin_expect(s == 0, 0))
        t_serial = s = __atomic_fetch_add(&g_next_thread, 1, __ATOMIC_RELAXED);
    return s;
}

/* ---------------------------------------------------------------------- */
/* Thread cancellation                                                     */
/* ---------------------------------------------------------------------- */

/* No call of the library is a cancellation point: every entry point that
 * can reach one (open, read, close, nanosleep, ppoll, the condition wait,
 * and the user's callbacks) defers cancellation until it returns. Acted
 * upon inside, a cancel would leave a mutex locked for good (boot_mu around
 * a read, a handle's mu re-taken by the cancelled condition wait; the
 * atfork handler then hangs every later fork), a shared handle marked as
 * acquiring by a thread that is gone, and a waiter in the hub with its
 * eventfd. A waiting thread is ended by the cancel callback instead; a
 * pending pthread_cancel takes effect at the caller's next cancellation
 * point after the call. */
static int cancel_off(void) {
    int old = 0;
#ifndef _WIN32
    (void)pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old);
#endif
    return old;
}

static void cancel_restore(int old) {
#ifndef _WIN32
    int ignored;
    (void)pthread_setcancelstate(old, &ignored);
#else
    (void)old;
#endif
}

/* ---------------------------------------------------------------------- */
/* Fork safety                                                             */
/* ---------------------------------------------------------------------- */

unsigned fl__fork_gen;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void init_cond(pthread_cond_t *c) {
#ifndef _WIN32
    /* Waits measure time on the monotonic clock: a step of the wall clock
     * must neither stretch nor cut a timeout. */
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(c, &a);
    pthread_condattr_destroy(&a);
#else
    pthread_cond_init(c, NULL);
#endif
}

/* Every mutex of the library is taken before fork() in the documented lock
 * order (internal.h), so the child never inherits one held by a thread
 * that does not exist there, nor a structure caught half-updated. */
static void before_fork(void) {
    fl_lock *l;
    pthread_mutex_lock(&g_mu);
    for (l = g_handles; l; l = l->next_handle)
        pthread_mutex_lock(&l->mu);
    pthread_mutex_lock(&g_held_mu);
    fl__lease_atfork(FL__FORK_PREPARE);
    fl__os_atfork(FL__FORK_PREPARE);
}

static void after_fork_parent(void) {
    fl_lock *l;
    fl__os_atfork(FL__FORK_PARENT);
    fl__lease_atfork(FL__FORK_PARENT);
    pthread_mutex_unlock(&g_held_mu);
    for (l = g_handles; l; l = l->next_handle)
        pthread_mutex_unlock(&l->mu);
    pthread_mutex_unlock(&g_mu);
}

static void after_fork_child(void) {
    fl_lock *l;
    __atomic_add_fetch(&fl__fork_gen, 1, __ATOMIC_RELAXED);
    fl__os_atfork(FL__FORK_CHILD);
    fl__lease_atfork(FL__FORK_CHILD);
    pthread_mutex_unlock(&g_held_mu);
    for (l = g_handles; l; l = l->next_handle) {
        /* Threads of the parent may have been waiting on it; none exist
         * here, and nobody can use it while we hold the mutex. */
        init_cond(&l->cond);
        pthread_mutex_unlock(&l->mu);
    }
    pthread_mutex_unlock(&g_mu);
}

/* glibc unregisters the handlers when the library is unloaded. Windows has
 * no fork (and winpthreads no pthread_atfork): the generation never moves. */
#ifndef _WIN32
static void init_once(void) { pthread_atfork(before_fork, after_fork_parent, after_fork_child); }
#else
static void init_once(void) {
    (void)before_fork;
    (void)after_fork_parent;
    (void)after_fork_child;
}
#endif

unsigned fl__current_gen(void) { return __atomic_load_n(&fl__fork_gen, __ATOMIC_RELAXED); }

static fl_log_fn g_log_fn;
static void *g_log_data;

/* ---------------------------------------------------------------------- */
/* Logging                                                                 */
/* ---------------------------------------------------------------------- */

void fl_set_log_handler(fl_log_fn fn, void *data) {
    __atomic_store_n(&g_log_data, data, __ATOMIC_RELEASE);
    __atomic_store_n(&g_log_fn, fn, __ATOMIC_RELEASE);
}

void fl__log(const fl_lock *l, fl_log_event ev, double seconds) {
    fl_log_fn fn = __atomic_load_n(&g_log_fn, __ATOMIC_ACQUIRE);
    if (fn) {
        uint64_t id = __atomic_load_n(&l->log_id, __ATOMIC_RELAXED);
        fn(__atomic_load_n(&g_log_data, __ATOMIC_ACQUIRE), ev, id ? id : l->id, l->path, seconds);
    }
}

/* @p v as Python's repr() of a float prints it (the seconds py-filelock
 * logs): fl__fmt_double() with ".0" added to an integral value. */
static void python_float(char out[FL__DOUBLE_BUF + 2], double v) {
    fl__fmt_double(out, v);
    if (!strpbrk(out, ".en"))
        strcat(out, ".0");
}

int fl_format_log(char *buf, size_t size, fl_log_event event, uint64_t id, const char *path,
                  double seconds) {
    char secs[FL__DOUBLE_BUF + 2];
    unsigned long long i = (unsigned long long)id;
    if (!path)
        path = "";
    switch (event) {
    case FL_LOG_ATTEMPT:
        return snprintf(buf, size, "Attempting to acquire lock %llu on %s", i, path);
    case FL_LOG_ACQUIRED:
        return snprintf(buf, size, "Lock %llu acquired on %s", i, path);
    case FL_LOG_FAILED:
        return snprintf(buf, size, "Failed to immediately acquire lock %llu on %s", i, path);
    case FL_LOG_TIMEOUT:
        return snprintf(buf, size, "Timeout on acquiring lock %llu on %s", i, path);
    case FL_LOG_WAITING:
        python_float(secs, seconds);
        return snprintf(buf, size, "Lock %llu not acquired on %s, waiting %s seconds ...", i, path,
                        secs);
    case FL_LOG_RELEASE_ATTEMPT:
        return snprintf(buf, size, "Attempting to release lock %llu on %s", i, path);
    case FL_LOG_RELEASED:
        return snprintf(buf, size, "Lock %llu released on %s", i, path);
    case FL_LOG_CANCELLED:
        return snprintf(buf, size, "Cancellation requested for lock %llu on %s", i, path);
    }
    return snprintf(buf, size, "Lock %llu: unknown event on %s", i, path);
}

const char *fl_version(void) {
#define FL__STR2(x) #x
#define FL__STR(x)  FL__STR2(x)
    return FL__STR(FL_VERSION_MAJOR) "." FL__STR(FL_VERSION_MINOR) "." FL__STR(FL_VERSION_PATCH);
}

/* ---------------------------------------------------------------------- */
/* Options and handles                                                     */
/* ---------------------------------------------------------------------- */

void fl_options_init(fl_options *opts) {
    static const fl_options defaults = FL_OPTIONS_INIT;
    if (opts)
        *opts = defaults;
}

static int validate_timeout(double t, const char *path) {
    if (isnan(t))
        return fl__error(FL_EINVAL, 0, "invalid timeout for lock file '%s': NaN", path);
    return 0;
}

static int validate_poll(double p, const char *path) {
    if (isnan(p) || p < 0)
        return fl__error(FL_EINVAL, 0,
                         "invalid poll interval for lock file '%s': %g (must be >= 0)", path, p);
    return 0;
}

static char *dup_range(const char *s, size_t n) {
    char *r = malloc(n + 1);
    if (r) {
        memcpy(r, s, n);
        r[n] = '\0';
    }
    return r;
}

/* Splits path into parent directory and final component. Trailing slashes
 * are kept on the base so that "dir/" is later reported as a directory. */
static int split_path(fl_lock *l) {
    const char *p = l->path;
    const char *slash = strrchr(p, '/');
#ifdef _WIN32
    /* Windows also separates with '\\'; a drive root ("C:\x") keeps its
     * separator, since "C:" alone means that drive's current directory. */
    const char *back = strrchr(p, '\\');
    if (back && (!slash || back > slash))
        slash = back;
    if (slash && slash == p + 2 && p[1] == ':') {
        l->dir = dup_range(p, 3);
        l->base = dup_range(slash + 1, strlen(slash + 1));
        return (l->dir && l->base) ? 0 : -1;
    }
#endif
    if (!slash) {
        l->dir = dup_range(".", 1);
        l->base = dup_range(p, strlen(p));
    } else if (slash == p) {
        l->dir = dup_range("/", 1);
        l->base = dup_range(slash + 1, strlen(slash + 1));
    } else {
        l->dir = dup_range(p, (size_t)(slash - p));
        l->base = dup_range(slash + 1, strlen(slash + 1));
    }
    return (l->dir && l->base) ? 0 : -1;
}

/* Caller holds g_mu. */
static void link_handle(fl_lock *l) {
    l->prev_handle = NULL;
    l->next_handle = g_handles;
    if (g_handles)
        g_handles->prev_handle = l;
    g_handles = l;
    l->listed = 1;
}

static void unlink_handle(fl_lock *l) {
    pthread_mutex_lock(&g_mu);
    if (l->listed) {
        if (l->prev_handle)
            l->prev_handle->next_handle = l->next_handle;
        else
            g_handles = l->next_handle;
        if (l->next_handle)
            l->next_handle->prev_handle = l->prev_handle;
        l->listed = 0;
    }
    pthread_mutex_unlock(&g_mu);
}

static void destroy(fl_lock *l) {
    unlink_handle(l);
    fl_lock_free(l->gate);
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->cond);
    free(l->path);
    free(l->dir);
    free(l->base);
    free(l->key);
    free(l);
}

static double heartbeat_of(const fl_options *o);

static int same_settings(const fl_lock *l, const fl_options *o) {
    return l->kind == (int)o->kind && l->mode == o->mode && l->thread_local == !!o->thread_local &&
           fl_get_timeout(l) == o->timeout && fl_get_blocking(l) == !!o->blocking &&
           fl_get_poll_interval(l) == o->poll_interval && l->soft_fallback == !!o->soft_fallback &&
           (l->gate != NULL) == !!o->read_write && l->on_acquired == o->on_acquired &&
           l->on_acquired_data == o->on_acquired_data && l->lifetime == o->lifetime &&
           l->lease_duration == o->lease_duration && l->heartbeat_interval == heartbeat_of(o);
}

/* lifetime, lease_duration and heartbeat_interval: the one place their
 * rules live (the pure-Python filelock's rules and words, 3.32). With a
 * path, the message names the lock file after the pure package's words. */
static int validate_lease(const fl_options *o, const char *path, size_t len) {
    char num[FL__DOUBLE_BUF], where[64 + 4096];
    int lease = (o->given & FL_OPT_LEASE_DURATION) || o->lease_duration != 0;
    double hb = o->heartbeat_interval;
    int hb_given = (o->given & FL_OPT_HEARTBEAT_INTERVAL) || hb != 0;

    where[0] = '\0';
    if (path)
        snprintf(where, sizeof where, " (lock file '%.*s')", (int)(len > 4000 ? 4000 : len), path);
    if (!(o->lifetime >= 0) || isinf(o->lifetime))
        return fl__error(FL_EINVAL, 0, "lifetime must be finite and non-negative, not %s%s",
                         fl__fmt_double(num, o->lifetime), where);
    if (lease && (!(o->lease_duration > 0) || isinf(o->lease_duration)))
        return fl__error(FL_EINVAL, 0, "lease_duration must be positive, got %s%s",
                         fl__fmt_double(num, o->lease_duration), where);
    if (!lease) {
        if (hb_given)
            return fl__error(FL_EINVAL, 0, "heartbeat_interval needs lease_duration%s", where);
        return 0;
    }
    if (hb_given && !(hb > 0 && hb < o->lease_duration))
        return fl__error(FL_EINVAL, 0,
                         "heartbeat_interval must be positive and below lease_duration, got %s%s",
                         fl__fmt_double(num, hb), where);
    if (o->kind != FL_SOFT)
        return fl__error(FL_EINVAL, 0, "a lease needs the soft lock (kind FL_SOFT)%s", where);
    if (o->lifetime > 0)
        return fl__error(FL_EINVAL, 0,
                         "lifetime cannot be combined with lease_duration (lease_duration sets "
                         "when a lease expires)%s",
                         where);
    if (o->read_write)
        return fl__error(FL_EINVAL, 0, "a lease cannot be a read/write lock%s", where);
#ifdef _WIN32
    return fl__error(FL_ENOTSUP, 0,
                     "leases are not supported on Windows (a marker its holder keeps open "
                     "cannot be replaced there)%s",
                     where);
#else
    return 0;
#endif
}

/* The heartbeat interval a lease of these options gets (0: not a lease). */
static double heartbeat_of(const fl_options *o) {
    if (o->lease_duration <= 0)
        return 0;
    return o->heartbeat_interval > 0 ? o->heartbeat_interval
                                     : o->lease_duration / FL_LEASE_HEARTBEAT_DIVISOR;
}

void fl_options_set_lease_duration(fl_options *opts, double seconds) {
    if (opts) {
        opts->lease_duration = seconds;
        opts->given |= FL_OPT_LEASE_DURATION;
    }
}

void fl_options_set_heartbeat_interval(fl_options *opts, double seconds) {
    if (opts) {
        opts->heartbeat_interval = seconds;
        opts->given |= FL_OPT_HEARTBEAT_INTERVAL;
    }
}

/* Reads the caller's options into *out (the current version). Each older
 * version is an exact prefix of the current struct, so an old binary's
 * struct is read up to its end and nothing past it: version 1 (before
 * `given` and its setters: its lease fields mean what they meant then, 0 =
 * no lease / the default heartbeat, which is `given` == 0) and version 2
 * (before `singleton_scope`: NULL, process-wide). Any other version is
 * refused, naming the lock file when there is one. */
static int options_of(const fl_options *in, fl_options *out, const char *what, const char *path,
                      size_t len) {
    size_t prefix;
    if (in->version == FL_OPTIONS_VERSION) {
        *out = *in;
        return 0;
    }
    prefix = in->version == 1   ? offsetof(fl_options, given)
             : in->version == 2 ? offsetof(fl_options, singleton_scope)
                                : 0;
    if (prefix) {
        fl_options_init(out);
        memcpy(out, in, prefix);
        out->version = FL_OPTIONS_VERSION;
        return 0;
    }
    if (path)
        return fl__error(
            FL_EINVAL, 0, "%s: fl_options.version %u for lock file '%.*s', expected %u (or 1, 2)",
            what, in->version, (int)(len > 4000 ? 4000 : len), path, FL_OPTIONS_VERSION);
    return fl__error(FL_EINVAL, 0, "%s: fl_options.version %u, expected %u (or 1, 2)", what,
                     in->version, FL_OPTIONS_VERSION);
}

int fl_options_check(const fl_options *in) {
    fl_options o, *opts = &o;
    int rc;
    if (!in)
        return fl__error(FL_EINVAL, 0, "fl_options_check: NULL options");
    if ((rc = options_of(in, &o, "fl_options_check", NULL, 0)) != 0)
        return rc;
    if (opts->given & ~(FL_OPT_LEASE_DURATION | FL_OPT_HEARTBEAT_INTERVAL))
        return fl__error(FL_EINVAL, 0, "fl_options_check: unknown bits 0x%x in fl_options.given",
                         opts->given);
    return validate_lease(opts, NULL, 0);
}

static int lock_new_n(fl_lock **out, const char *path, size_t len, const fl_options *caller) {
    fl_options defaults = FL_OPTIONS_INIT, current;
    const fl_options *opts = caller;
    fl_lock *l;
    int rc;

    if (!out)
        return fl__error(FL_EINVAL, 0, "fl_lock_new: NULL output pointer");
    *out = NULL;
    if (!opts)
        opts = &defaults;
    if (!path)
        return fl__error(FL_EINVAL, 0, "fl_lock_new: NULL lock file path");
    if (len == 0)
        return fl__error(FL_EINVAL, ENOENT, "invalid lock file path '': the path is empty");
    if (memchr(path, '\0', len))
        return fl__error(FL_EINVAL, 0, "invalid lock file path '%s': embedded NUL byte", path);
    if ((rc = options_of(opts, &current, "fl_lock_new", path, len)) != 0)
        return rc;
    opts = &current;
    if (opts->kind != FL_KERNEL && opts->kind != FL_SOFT)
        return fl__error(FL_EINVAL, 0, "invalid lock kind %d for lock file '%.*s'", (int)opts->kind,
                         (int)len, path);
    if (opts->mode != FL_MODE_DEFAULT && (opts->mode < 0 || opts->mode > 07777))
        return fl__error(FL_EINVAL, 0, "invalid mode %o for lock file '%.*s'", opts->mode, (int)len,
                         path);
    if ((rc = validate_timeout(opts->timeout, path)) != 0 ||
        (rc = validate_poll(opts->poll_interval, path)) != 0 ||
        (rc = validate_lease(opts, path, len)) != 0)
        return rc;
    if (opts->given & ~(FL_OPT_LEASE_DURATION | FL_OPT_HEARTBEAT_INTERVAL))
        return fl__error(FL_EINVAL, 0, "unknown bits 0x%x in fl_options.given for lock file '%.*s'",
                         opts->given, (int)len, path);
    if (opts->on_acquired && opts->kind == FL_SOFT)
        return fl__error(FL_EINVAL, 0,
                         "on_acquired is not supported by the soft lock of '%.*s': only kernel "
                         "locks expose the lock descriptor",
                         (int)len, path);
#ifdef _WIN32
    if (opts->on_acquired)
        return fl__error(FL_ENOTSUP, 0, "on_acquired is not available on Windows yet ('%.*s')",
                         (int)len, path);
#endif

    l = calloc(1, sizeof *l);
    if (!l)
        return fl__error(FL_ENOMEM, ENOMEM, "out of memory creating lock '%.*s'", (int)len, path);
    l->path = dup_range(path, len);
    if (!l->path || split_path(l) != 0) {
        free(l->path);
        free(l->dir);
        free(l->base);
        free(l);
        return fl__error(FL_ENOMEM, ENOMEM, "out of memory creating lock '%.*s'", (int)len, path);
    }
    pthread_mutex_init(&l->mu, NULL);
    init_cond(&l->cond);
    l->kind = (int)opts->kind;
    l->mode = opts->mode;
    l->thread_local = !!opts->thread_local;
    l->singleton = !!opts->singleton;
    l->scope = opts->singleton_scope;
    l->soft_fallback = !!opts->soft_fallback;
    l->on_acquired = opts->on_acquired;
    l->on_acquired_data = opts->on_acquired_data;
    l->lifetime = opts->lifetime;
    l->lease_duration = opts->lease_duration;
    l->heartbeat_interval = heartbeat_of(opts);
    l->timeout = opts->timeout;
    l->poll_interval = opts->poll_interval;
    l->blocking = !!opts->blocking;
    l->refs = 1;
    if (opts->read_write) {
        fl_options gate_opts = FL_OPTIONS_INIT;
        char *gate_path;
        /* The soft lock has no shared mode: neither asked for nor as a
         * fallback (which would turn readers into exclusive holders). */
        if (opts->kind != FL_KERNEL || opts->soft_fallback) {
            rc = fl__error(FL_EINVAL, 0,
                           "read/write lock '%s' needs the kernel lock (the soft lock has no "
                           "shared mode%s)",
                           l->path, opts->soft_fallback ? ", so it cannot be a fallback" : "");
            destroy(l);
            return rc;
        }
        gate_path = malloc(len + 32);
        if (!gate_path) {
            destroy(l);
            return fl__error(FL_ENOMEM, ENOMEM, "out of memory creating lock '%s'", path);
        }
        memcpy(gate_path, path, len);
        if (strlen(l->base) + sizeof ".gate" - 1 <= 255) {
            memcpy(gate_path + len, ".gate", sizeof ".gate");
        } else {
            /* "<name>.gate" would pass NAME_MAX (255): the gate of a long
             * name is ".<hash of the name>.gate" beside it. */
            size_t dl = len - strlen(l->base);
            snprintf(gate_path + dl, 32, ".%016llx.gate",
                     (unsigned long long)fl__name_hash(l->base));
        }
        gate_opts.mode = opts->mode;
        rc = fl_lock_new(&l->gate, gate_path, &gate_opts);
        free(gate_path);
        if (rc != 0) {
            destroy(l);
            return rc;
        }
    }
    pthread_once(&g_once, init_once);
    l->gen = fl__current_gen();
    l->shared.hold = (fl__hold)FL__HOLD_INIT;

    if (l->singleton) {
        fl_lock *s;
        l->key = fl__os_canonical_key(l->dir, l->base);
        if (!l->key) {
            destroy(l);
            return fl__error(FL_ENOMEM, ENOMEM, "out of memory creating lock '%s'", path);
        }
        pthread_mutex_lock(&g_mu);
        for (s = g_singletons; s; s = s->next_singleton) {
            /* Another scope (a binding's other class) is another lock
             * on the same file: not shared, its settings not compared. */
            if (s->scope != l->scope || strcmp(s->key, l->key) != 0)
                continue;
            if (!same_settings(s, opts)) {
                pthread_mutex_unlock(&g_mu);
                rc = fl__error(FL_EINVAL, 0,
                               "Singleton lock instances cannot be initialized with differing "
                               "arguments: lock file '%s' already has a singleton handle with "
                               "different settings (timeout, mode, thread_local, blocking, "
                               "poll_interval, kind, soft_fallback, read_write or on_acquired)",
                               l->path);
                destroy(l);
                return rc;
            }
            s->refs++;
            pthread_mutex_unlock(&g_mu);
            destroy(l);
            *out = s;
            return 0;
        }
        l->id = __atomic_fetch_add(&g_next_id, 1, __ATOMIC_RELAXED);
        l->next_singleton = g_singletons;
        g_singletons = l;
        link_handle(l);
        pthread_mutex_unlock(&g_mu);
    } else {
        l->id = __atomic_fetch_add(&g_next_id, 1, __ATOMIC_RELAXED);
        pthread_mutex_lock(&g_mu);
        link_handle(l);
        pthread_mutex_unlock(&g_mu);
    }
    *out = l;
    return 0;
}

int fl_lock_new_n(fl_lock **out, const char *path, size_t len, const fl_options *opts) {
    int c = cancel_off();
    int rc = lock_new_n(out, path, len, opts);
    cancel_restore(c);
    return rc;
}

int fl_lock_new(fl_lock **out, const char *path, const fl_options *opts) {
    return fl_lock_new_n(out, path, path ? strlen(path) : 0, opts);
}

/* ---------------------------------------------------------------------- */
/* Held-lock table (self-deadlock detection)                               */
/* ---------------------------------------------------------------------- */

static void held_add(const fl_lock *l, const fl__hold *h, const fl__hold *gate, fl__held *node) {
    node->dev = h->dev;
    node->ino = h->ino;
    node->have_gate = gate && gate->have_id;
    node->gate_dev = gate ? gate->dev : 0;
    node->gate_ino = gate ? gate->ino : 0;
    node->shared = h->shared;
    node->gen = fl__current_gen();
    node->thread = fl__thread_serial();
    node->lock = l;
    pthread_mutex_lock(&g_held_mu);
    node->next = g_held;
    g_held = node;
    pthread_mutex_unlock(&g_held_mu);
}

static fl__held *held_remove(const fl_lock *l, uint64_t thread, int any_thread) {
    fl__held **pp, *found = NULL;
    pthread_mutex_lock(&g_held_mu);
    for (pp = &g_held; *pp; pp = &(*pp)->next) {
        if ((*pp)->lock == l && (any_thread || (*pp)->thread == thread)) {
            found = *pp;
            *pp = found->next;
            break;
        }
    }
    pthread_mutex_unlock(&g_held_mu);
    return found;
}

/* Whether waiting for the file of the failed attempt h would wait for this
 * thread itself: it holds that file through another handle in a
 * conflicting mode, or it holds a read/write lock whose writers' gate h is
 * (a writer that holds the gate is waiting for the lock this thread
 * holds, and lets nobody through the gate meanwhile). */
static int held_by_this_thread(const fl__hold *h) {
    fl__held *n;
    int found = 0;
    uint64_t self = fl__thread_serial();
    unsigned gen = fl__current_gen();
    if (!h->have_id)
        return 0;
    pthread_mutex_lock(&g_held_mu);
    for (n = g_held; n && !found; n = n->next) {
        if (n->thread != self || n->gen != gen)
            continue;
        found = (n->dev == h->dev && n->ino == h->ino &&
                 (!n->shared || !h->shared)) || /* two shared holds do not conflict */
                (n->have_gate && n->gate_dev == h->dev && n->gate_ino == h->ino);
    }
    pthread_mutex_unlock(&g_held_mu);
    return found;
}

/* The wins whose on_acquired hook is running on this thread, innermost
 * first (run_on_acquired). A hook that waits forever for the same file,
 * through any handle and for any owner, would wait for itself: the win it
 * runs for is only recorded, and can only be released, once it returned. */
typedef struct fl__hooking {
    const fl_lock *lock;
    uint64_t dev, ino;
    int have_id, shared;
    struct fl__hooking *next;
} fl__hooking;
static __thread fl__hooking *t_hooking;

static int hooking_handle(const fl_lock *l) {
    const fl__hooking *k;
    for (k = t_hooking; k; k = k->next)
        if (k->lock == l)
            return 1;
    return 0;
}

static int hook_deadlock_error(const fl_lock *l) {
    return fl__error(FL_EDEADLK, EDEADLK,
                     "lock file '%s' is being acquired by this thread, whose on_acquired hook is "
                     "running: waiting forever for it from the hook would deadlock",
                     l->path);
}

static int hooked_on_this_thread(const fl__hold *h) {
    const fl__hooking *k;
    if (!h->have_id)
        return 0;
    for (k = t_hooking; k; k = k->next)
        if (k->have_id && k->dev == h->dev && k->ino == h->ino && (!k->shared || !h->shared))
            return 1;
    return 0;
}

/* ---------------------------------------------------------------------- */
/* State lookup and fork handling                                          */
/* ---------------------------------------------------------------------- */

/* Caller holds l->mu. */
static fl__state *find_state(fl_lock *l) {
    fl__state *s;
    uint64_t self;
    if (!l->thread_local)
        return &l->shared;
    self = fl__thread_serial();
    for (s = l->states; s; s = s->next)
        if (s->thread == self)
            return s;
    return NULL;
}

/* In a forked child the inherited state belongs to the parent: forget it.
 * Its descriptors are left open, never closed: the child may have closed
 * them itself (closefrom, daemonizing) and reused the numbers for its own
 * files, and no check can prove a number still refers to our open file
 * description (the same dev/ino is also what a reopen of the same lock
 * file gives). A leaked inherited descriptor is harmless: the parent's
 * release unlocks the shared open file description explicitly, and
 * O_CLOEXEC closes it at exec. Unlocking it here would release the
 * parent's lock; the soft marker is the parent's too.
 *
 * forget_locked is the same with l->mu held. Besides the first call in a
 * child, it runs wherever a call that began in the parent may continue in
 * the child (the calling thread forked from the cancel callback or the log
 * handler): the wait for another thread's attempt (that thread does not
 * exist in the child) and the recording of a hold won after the fork. */
/* Forgets an inherited hold: its memory is ours (a copy), its descriptor
 * is not closed (see above). */
static void forget_hold(fl__hold *h) {
    free(h->path);
    *h = (fl__hold)FL__HOLD_INIT;
}

static void forget_locked(fl_lock *l) {
    fl__state *s, *next;
    fl__held *h;
    if (l->gen == fl__current_gen())
        return;
    l->shared.counter = 0;
    forget_hold(&l->shared.hold);
    for (s = l->states; s; s = next) {
        next = s->next;
        forget_hold(&s->hold);
        free(s);
    }
    l->states = NULL;
    l->acquiring = 0;
    while ((h = held_remove(l, 0, 1)) != NULL)
        free(h);
    pthread_once(&g_once, init_once);
    l->gen = fl__current_gen();
}

static void forget_after_fork(fl_lock *l) {
    pthread_mutex_lock(&l->mu);
    forget_locked(l);
    pthread_mutex_unlock(&l->mu);
}

static inline void check_fork(fl_lock *l) {
    if (__builtin_expect(l->gen != fl__current_gen(), 0))
        forget_after_fork(l);
}

/* ---------------------------------------------------------------------- */
/* The acquire loop                                                        */
/* ---------------------------------------------------------------------- */

static int timeout_error(const fl_lock *l) {
    return fl__error(FL_ETIMEOUT, 0, "The file lock '%s' could not be acquired.", l->path);
}

/* Names the owner the check was made for: a wait through the hub acts for
 * a task or fiber (an owner token), and "this thread" would send its reader
 * looking at the wrong thing (other tasks of the thread simply wait). */
static int deadlock_error(const fl_lock *l) {
    return fl__error(FL_EDEADLK, EDEADLK,
                     "lock file '%s' is already held by this %s through another handle; "
                     "waiting forever would deadlock (share one handle, e.g. the singleton "
                     "option, or use a timeout)",
                     l->path, t_owner ? "task" : "thread");
}

/* The calling thread may fork from the log handler or the cancel callback
 * and go on waiting in the child. The attempt's descriptor it then holds is
 * the parent's open file description: a flock on it would be granted to
 * parent and child at once (flock belongs to the description), and the
 * callback may have closed the number and reused it. Forget it without
 * closing it (as forget_after_fork does) and open a fresh one. */
static int drop_if_forked(fl__hold *h, unsigned *gen) {
    unsigned now = fl__current_gen();
    if (__builtin_expect(*gen != now, 0)) {
        h->fd = FL__NO_FH;
        *gen = now;
        return 1;
    }
    return 0;
}

/* Wins the OS lock or fails; the caller has checked recursion. *won_gen is
 * the fork generation in which it was won. */
static int os_acquire(fl_lock *l, fl__hold *h, double timeout, int blocking, double poll,
                      fl_cancel_fn cancel, void *cancel_data, int log, unsigned *won_gen,
                      int probe) {
    int one_attempt = !blocking || timeout == 0;
    int forever = timeout < 0 || isinf(timeout);
    double deadline = forever ? 0 : fl__now() + timeout;
    double interval = poll < FL__MIN_POLL ? FL__MIN_POLL : poll;
    fl__watch w = FL__WATCH_INIT;
    double last_cancel = fl__now();
    unsigned gen = fl__current_gen();
    int watching = 0, logged_wait = 0, rc, kind, after_event = 0;
    /* A wake-up descriptor polled with the watch ends the wait for a signal
     * at once: the callback then needs no 50 ms slices (issue 17: each was
     * a GIL round-trip for Python). */
#ifdef FL__POLLS_WAKE_FD
    int wake_fd = cancel ? t_wake_fd : -1;
#else
    int wake_fd = -1;
#endif
    w.hold = h;

    if (log)
        fl__log(l, FL_LOG_ATTEMPT, 0);
    for (;;) {
        kind = __atomic_load_n(&l->kind, __ATOMIC_RELAXED);
        if (drop_if_forked(h, &gen) && watching) {
            /* The watch is the parent's hub's, unusable here (waits on it
             * fall back to sleeping through the whole re-check interval):
             * arm one in the child's own hub at the next busy attempt. */
            fl__os_watch_close(&w);
            watching = 0;
        }
        rc = fl__os_try(l, kind, h, 0);
        if (rc == 0)
            break;
        if (rc == FL__RETRY) {
            /* The kernel lock's watch is on the inode it was armed for; the
             * lock file is another one now: arm a new watch on it (at the
             * next busy attempt), or its releases would go unnoticed. */
            if (watching && kind == FL_KERNEL) {
                fl__os_watch_close(&w);
                watching = 0;
            }
            continue;
        }
        if (rc == FL_ENOTSUP && kind == FL_KERNEL && l->soft_fallback) {
            fl__os_abandon(h);
            __atomic_store_n(&l->kind, FL_SOFT, __ATOMIC_RELAXED);
            if (watching) {
                fl__os_watch_close(&w);
                watching = 0;
            }
            continue;
        }
        if (rc < 0)
            goto fail;
        /* Held by someone else. */
        if (probe & FL__PROBE) {
            /* The hub's attempt: the open file stays in h for its next
             * attempt (no close, which would wake its own watch). */
            if ((probe & FL__PROBE_DEADLOCK) && held_by_this_thread(h)) {
                rc = deadlock_error(l);
                goto fail;
            }
            if (log)
                fl__log(l, FL_LOG_FAILED, 0);
            return FL__BUSY;
        }
        if (one_attempt) {
            /* As py-filelock decides which of its two messages to log:
             * blocking=False "failed immediately", a zero timeout "timed
             * out". */
            if (log)
                fl__log(l, blocking ? FL_LOG_TIMEOUT : FL_LOG_FAILED, 0);
            rc = timeout_error(l);
            goto fail;
        }
        if (forever && held_by_this_thread(h)) {
            rc = deadlock_error(l);
            goto fail;
        }
        if (forever && hooked_on_this_thread(h)) {
            rc = hook_deadlock_error(l);
            goto fail;
        }
        if (!watching) {
            if (log && !logged_wait)
                fl__log(l, FL_LOG_WAITING, poll);
            logged_wait = 1;
            if (kind == FL_KERNEL && forever && !cancel) {
                /* Nothing to re-check: let the kernel queue us. */
                rc = fl__os_try(l, kind, h, 1);
                if (rc == 0)
                    break;
                if (rc < 0)
                    goto fail;
                continue;
            }
            /* Arm the watch, then try again: a release between the failed
             * attempt and the watch would otherwise be missed. And if that
             * attempt fails too, try once more soon (FL__EVENT_RETRY): a
             * close that raised its event before the watch existed may not
             * have unlocked yet at the attempt, and no event will follow
             * (test: close_before_the_watch_is_retried_soon). */
            fl__os_watch_open(l, kind, &w);
#ifndef _WIN32
            w.xfd = wake_fd;
#endif
            watching = 1;
            after_event = 1;
            continue;
        }
        /* Wait for a wake-up (an event, or the re-check interval), asking
         * the cancel callback at least every FL__CANCEL_SLICE; a wake that
         * is only for the callback does not re-try the lock. */
        {
            double floor = kind == FL_SOFT ? FL__WATCHED_MIN_POLL_SOFT : FL__WATCHED_MIN_POLL;
            double next_check = fl__now() + interval;
            int quick = 0; /* next_check is a quick re-try, not a re-check */
            if (w.fd >= 0 && !w.shared_fs && interval < floor)
                next_check += floor - interval;
            if (after_event && kind == FL_KERNEL && fl__now() + FL__EVENT_RETRY < next_check) {
                next_check = fl__now() + FL__EVENT_RETRY; /* the close may not have unlocked yet */
                quick = 1;
            }
            after_event = 0;
            for (;;) {
                double now = fl__now(), until = next_check, slice;
                if (!forever && now >= deadline) {
                    if (log)
                        fl__log(l, FL_LOG_TIMEOUT, 0);
                    rc = timeout_error(l);
                    goto fail;
                }
                if (!forever && deadline < until)
                    until = deadline;
                slice = until - now;
                if (cancel && wake_fd < 0 && slice > FL__CANCEL_SLICE)
                    slice = FL__CANCEL_SLICE;
                rc = fl__os_watch_wait(l, kind, &w, slice > 0 ? slice : 0);
                if (rc < 0 && !(rc == FL_EINTR && cancel))
                    goto fail;
                now = fl__now();
                /* A release event goes straight to the re-try (the waiter's
                 * latency), and so does the quick re-try's timer; the
                 * callback still runs on a signal (EINTR or the wake-up
                 * descriptor), on every other wake, and without a wake-up
                 * descriptor at least every FL__CANCEL_SLICE. */
                if (cancel && ((rc < 0 || (rc == 0 && !quick)) || rc == FL__WOKEN_BY_FD ||
                               (wake_fd < 0 && now - last_cancel >= FL__CANCEL_SLICE))) {
                    last_cancel = now;
                    if (cancel(cancel_data, rc == FL_EINTR || rc == FL__WOKEN_BY_FD)) {
                        if (log)
                            fl__log(l, FL_LOG_CANCELLED, 0);
                        rc = fl__error(FL_ECANCELED, ECANCELED,
                                       "waiting for lock file '%s' was cancelled", l->path);
                        goto fail;
                    }
                    if (fl__current_gen() != gen)
                        break; /* forked by the callback: re-try (and re-arm) at once */
                }
                if (rc == 1 || now >= next_check || (!forever && now >= deadline)) {
                    after_event = rc == 1;
                    break; /* re-try the lock (at the deadline: one last time) */
                }
            }
        }
    }
    /* Read before the log handler runs: it may fork, and a hold won before
     * a fork is the parent's. */
    *won_gen = fl__current_gen();
    if (watching)
        fl__os_watch_close(&w);
    if (log)
        fl__log(l, FL_LOG_ACQUIRED, 0);
    return 0;
fail:
    if (watching)
        fl__os_watch_close(&w);
    drop_if_forked(h, &gen);
    fl__os_abandon(h);
    return rc;
}

int fl_acquire(fl_lock *l) {
    if (!l)
        return fl__error(FL_EINVAL, 0, "fl_acquire: NULL lock handle");
    return fl_acquire_ex(l, fl_get_timeout(l), fl_get_blocking(l), fl_get_poll_interval(l));
}

static int mode_error(const fl_lock *l, int shared) {
    return fl__error(FL_ELOCKMODE, 0,
                     "lock file '%s' is held in %s mode; acquiring it in %s mode would convert "
                     "the lock, which is not atomic: release it first",
                     l->path, shared ? "exclusive" : "shared", shared ? "shared" : "exclusive");
}

/* The absolute time for pthread_cond_timedwait on l->cond, `seconds` from
 * the monotonic `now` (fl__now). Windows: winpthreads measures condition
 * variables on the wall clock only; the slice is at most FL__CANCEL_SLICE
 * and is recomputed each time, so a step can stretch one slice only. */
static void cond_deadline(double now, double seconds, struct timespec *ts) {
#ifndef _WIN32
    (void)fl__deadline_timespec(now, seconds, ts);
#else
    struct timespec rt;
    (void)now;
    clock_gettime(CLOCK_REALTIME, &rt);
    (void)fl__deadline_timespec((double)rt.tv_sec + (double)rt.tv_nsec / 1e9, seconds, ts);
#endif
}

/* Handles shared by threads: wait until no other thread is inside the OS
 * wait, then either join the hold it won (counter > 0) or lead the next
 * attempt. Caller holds l->mu. Returns 0 to lead, 1 if joined, or an error. */
static int join_or_lead(fl_lock *l, int shared, double timeout, int one_attempt,
                        fl_cancel_fn cancel, void *cancel_data) {
    int forever = timeout < 0 || isinf(timeout);
    double deadline = forever ? 0 : fl__now() + timeout;
    /* The attempt under way is this thread's, in its on_acquired hook. */
    if (l->acquiring && forever && !one_attempt && hooking_handle(l))
        return hook_deadlock_error(l);
    while (l->acquiring) {
        struct timespec ts;
        double until, now = fl__now();
        if (one_attempt || (!forever && now >= deadline))
            return timeout_error(l);
        until = now + FL__CANCEL_SLICE;
        if (!forever && deadline < until)
            until = deadline;
        cond_deadline(now, until - now, &ts);
        pthread_cond_timedwait(&l->cond, &l->mu, &ts);
        if (cancel && l->acquiring) {
            int stop;
            pthread_mutex_unlock(&l->mu);
            stop = cancel(cancel_data, 0);
            pthread_mutex_lock(&l->mu);
            if (stop) {
                fl__log(l, FL_LOG_CANCELLED, 0);
                return fl__error(FL_ECANCELED, ECANCELED,
                                 "waiting for lock file '%s' was cancelled", l->path);
            }
            /* The callback forked and this is the child: the attempt we
             * waited for belongs to a thread that does not exist here. */
            forget_locked(l);
        }
    }
    if (l->shared.counter > 0) {
        int rc;
        if (l->shared.hold.shared != shared)
            return mode_error(l, shared);
        if ((rc = fl__lease_check_reentry(l, &l->shared.hold)) != 0)
            return rc;
        l->shared.counter++;
        return 1;
    }
    l->acquiring = 1;
    return 0;
}

/* Read/write locks: pass the writers' gate first (exclusive for a writer,
 * shared for a reader), so that a waiting writer holds new readers back,
 * then take the lock itself and reopen the gate. Both waits share one
 * deadline. */
static int gated_acquire(fl_lock *l, fl__hold *h, fl__hold *gate_id, double timeout, int blocking,
                         double poll, fl_cancel_fn cancel, void *cancel_data, unsigned *won_gen,
                         int probe) {
    fl__hold g = FL__HOLD_INIT;
    double start, rest = timeout;
    unsigned gate_gen;
    int rc;
    if (!l->gate || (probe & FL__PROBE_NOGATE))
        return os_acquire(l, h, timeout, blocking, poll, cancel, cancel_data,
                          !(probe & FL__PROBE_QUIET), won_gen, probe);
    g.shared = h->shared;
    start = fl__now();
    rc = os_acquire(l->gate, &g, timeout, blocking, poll, cancel, cancel_data, 0, &gate_gen, 0);
    if (rc == FL_ETIMEOUT) {
        fl__log(l, FL_LOG_TIMEOUT, 0);
        return timeout_error(l);
    }
    if (rc == FL_ECANCELED)
        fl__log(l, FL_LOG_CANCELLED, 0);
    if (rc != 0)
        return rc;
    if (timeout > 0 && !isinf(timeout)) {
        rest = timeout - (fl__now() - start);
        if (rest <= 0)
            rest = 0; /* one last attempt */
    }
    rc = os_acquire(l, h, rest, blocking, poll, cancel, cancel_data, 1, won_gen, 0);
    /* Remembered with the hold: the deadlock check must know the gate. */
    gate_id->dev = g.dev;
    gate_id->ino = g.ino;
    gate_id->have_id = g.have_id;
    /* A gate won before a fork (from a callback) is the parent's, and so
     * is its open file description: only the parent reopens it. */
    if (gate_gen == fl__current_gen())
        fl__os_release(l->gate, FL_KERNEL, &g, 1);
    return rc;
}

/* The on_acquired hook, after a physical win of the kernel lock and before
 * anything is recorded: a refusal releases the lock (unlock, close) so the
 * failed acquire leaves nothing behind. */
static int run_on_acquired(fl_lock *l, fl__hold *h) {
    int rc, kind = __atomic_load_n(&l->kind, __ATOMIC_RELAXED);
    unsigned gen = fl__current_gen();
    if (!l->on_acquired || kind != FL_KERNEL)
        return 0;
#ifdef _WIN32
    rc = 0; /* refused at creation (the hold is a HANDLE, not a descriptor) */
    (void)h;
#else
    {
        fl__hooking self = {l, h->dev, h->ino, h->have_id, h->shared, t_hooking};
        t_hooking = &self;
        rc = l->on_acquired(l->on_acquired_data, l, h->fd);
        t_hooking = self.next;
    }
#endif
    if (rc == 0)
        return 0;
    if (rc > 0 || rc <= FL__ERROR_END)
        rc = FL_ECANCELED;
    /* The hook forked: the hold is the parent's (see release_hold). */
    if (gen == fl__current_gen())
        (void)fl__os_release(l, kind, h, 1);
    return fl__error(rc, rc == FL_ECANCELED ? ECANCELED : 0,
                     "the on_acquired hook of lock file '%s' refused the lock (%s); released",
                     l->path, fl_err_name(rc));
}

/* own_cancel: use @p cancel / @p cancel_data (the call's, FL_ARG_CANCEL)
 * instead of the handle's callback. probe (FL__PROBE* bits, the hub's
 * attempts): one attempt that starts from and, when busy, leaves its open
 * file in *ph and returns FL__BUSY. */
static int acquire_core(fl_lock *l, int shared, double timeout, int blocking, double poll_interval,
                        int own_cancel, fl_cancel_fn cancel, void *cancel_data, int probe,
                        fl__hold *ph) {
    fl__state *s;
    fl__hold h = FL__HOLD_INIT, gate_id = FL__HOLD_INIT;
    fl__state *fresh = NULL;
    fl__held *node;
    unsigned won_gen = 0;
    int rc;

    if (!l)
        return fl__error(FL_EINVAL, 0, "fl_acquire: NULL lock handle");
    if ((rc = validate_timeout(timeout, l->path)) != 0 ||
        (rc = validate_poll(poll_interval, l->path)) != 0)
        return rc;
    if (shared && __atomic_load_n(&l->kind, __ATOMIC_RELAXED) == FL_SOFT)
        return fl__error(FL_ENOTSUP, 0,
                         "cannot take a shared lock on '%s': the soft lock has no shared mode",
                         l->path);
    check_fork(l);

    pthread_mutex_lock(&l->mu);
    if (!own_cancel) {
        cancel = l->cancel;
        cancel_data = l->cancel_data;
    }
    s = find_state(l);
    if (s && s->counter > 0) {
        if (s->hold.shared != shared) {
            pthread_mutex_unlock(&l->mu);
            return mode_error(l, shared);
        }
        if ((rc = fl__lease_check_reentry(l, &s->hold)) != 0) {
            pthread_mutex_unlock(&l->mu);
            return rc;
        }
        s->counter++;
        pthread_mutex_unlock(&l->mu);
        /* py-filelock logs a re-entry as "acquired" too (no attempt). */
        fl__log(l, FL_LOG_ACQUIRED, 0);
        return 0;
    }
    if (!l->thread_local) {
        double started = fl__now();
        rc = join_or_lead(l, shared, timeout, !blocking || timeout == 0, cancel, cancel_data);
        if (rc != 0) {
            pthread_mutex_unlock(&l->mu);
            /* Another thread's attempt is under way: busy for the hub. */
            if (rc == FL_ETIMEOUT && probe)
                return FL__BUSY;
            if (rc > 0)
                fl__log(l, FL_LOG_ACQUIRED, 0); /* joined another thread's hold */
            return rc > 0 ? 0 : rc;
        }
        /* Time spent waiting for another thread's attempt counts against
         * this call's timeout: one deadline for the whole call. */
        if (timeout > 0 && !isinf(timeout)) {
            timeout -= fl__now() - started;
            if (timeout <= 0)
                timeout = 0; /* one last attempt */
        }
    }
    pthread_mutex_unlock(&l->mu);

    /* Allocate before winning so that success cannot fail afterwards. */
    node = malloc(sizeof *node);
    if (l->thread_local)
        fresh = calloc(1, sizeof *fresh);
    if (!node || (l->thread_local && !fresh)) {
        free(node);
        free(fresh);
        node = NULL;
        fresh = NULL;
        rc = fl__error(FL_ENOMEM, ENOMEM, "out of memory acquiring lock '%s'", l->path);
    } else {
        if (probe)
            h = *ph;
        h.shared = shared;
        rc = gated_acquire(l, &h, &gate_id, timeout, blocking, poll_interval, cancel, cancel_data,
                           &won_gen, probe);
        if (probe) {
            /* Busy: the hub keeps the open file; otherwise it was consumed
             * (won: it is the hold now) or closed (failed). */
            if (rc == FL__BUSY)
                *ph = h;
            else
                *ph = (fl__hold)FL__HOLD_INIT;
        }
        if (rc == 0 && won_gen != fl__current_gen()) {
            /* Won, then the log handler forked: the lock (and its open file
             * description, or its marker) is the parent's, which releases
             * it. The child leaves it alone and does not count it. */
            rc = fl__error(FL_ECANCELED, ECANCELED,
                           "lock file '%s' was won by the parent process, which forked from the "
                           "log handler before the call returned; the child does not hold it",
                           l->path);
        } else if (rc == 0) {
            rc = run_on_acquired(l, &h);
            if (rc == 0 && won_gen != fl__current_gen())
                /* The hook forked and returned in the child: as above, the
                 * lock is the parent's (a child that counted it would think
                 * it holds the lock the parent holds: two holders). */
                rc = fl__error(FL_ECANCELED, ECANCELED,
                               "lock file '%s' was won by the parent process, which forked from "
                               "the on_acquired hook; the child does not hold it",
                               l->path);
        }
    }

    pthread_mutex_lock(&l->mu);
    /* The state may be the parent's (the calling thread forked from a
     * callback during the wait): forget it before recording ours. */
    forget_locked(l);
    if (rc == 0) {
        if (l->thread_local) {
            s = fresh;
            s->thread = fl__thread_serial();
            s->next = l->states;
            l->states = s;
        } else {
            s = &l->shared;
        }
        s->hold = h;
        s->counter = 1;
        held_add(l, &h, &gate_id, node);
    } else if (node) {
        free(node);
        free(fresh);
    }
    if (!l->thread_local) {
        l->acquiring = 0;
        pthread_cond_broadcast(&l->cond);
    }
    pthread_mutex_unlock(&l->mu);
    return rc;
}

static int acquire_mode(fl_lock *l, int shared, double timeout, int blocking, double poll_interval,
                        int own_cancel, fl_cancel_fn cancel, void *cancel_data, int wake_fd) {
    int saved = t_wake_fd, rc;
    t_wake_fd = wake_fd;
    rc = acquire_core(l, shared, timeout, blocking, poll_interval, own_cancel, cancel, cancel_data,
                      0, NULL);
    t_wake_fd = saved;
    return rc;
}

int fl_acquire_ex(fl_lock *l, double timeout, int blocking, double poll_interval) {
    int c = cancel_off();
    int rc = acquire_mode(l, 0, timeout, blocking, poll_interval, 0, NULL, NULL, -1);
    cancel_restore(c);
    return rc;
}

int fl_acquire_shared(fl_lock *l, double timeout, int blocking, double poll_interval) {
    int c = cancel_off();
    int rc = acquire_mode(l, 1, timeout, blocking, poll_interval, 0, NULL, NULL, -1);
    cancel_restore(c);
    return rc;
}

void fl_acquire_args_init(fl_acquire_args *a) {
    if (!a)
        return;
    memset(a, 0, sizeof *a);
    a->timeout = -1.0;
    a->blocking = 1;
    a->poll_interval = FL__MIN_POLL;
    a->deadline = INFINITY;
    a->wake_fd = -1;
}

double fl_monotonic(void) { return fl__now(); }

int fl_acquire_args_resolve(fl_lock *l, const fl_acquire_args *in, fl_acquire_args *out) {
    const unsigned known = FL_ARG_TIMEOUT | FL_ARG_BLOCKING | FL_ARG_POLL_INTERVAL |
                           FL_ARG_DEADLINE | FL_ARG_CANCEL | FL_ARG_WAKE_FD;
    fl_acquire_args a;
    int rc;

    if (!l || !out)
        return fl__error(FL_EINVAL, 0, "fl_acquire: NULL lock handle or arguments");
    if (in)
        a = *in;
    else
        fl_acquire_args_init(&a);
    if (a.set & ~known)
        return fl__error(FL_EINVAL, 0, "invalid acquire arguments for '%s': unknown bits 0x%x",
                         l->path, a.set & ~known);
    /* "Not given" is resolved here, once, for every binding. */
    if (!(a.set & FL_ARG_TIMEOUT))
        a.timeout = fl_get_timeout(l);
    if (!(a.set & FL_ARG_BLOCKING))
        a.blocking = fl_get_blocking(l);
    if (!(a.set & FL_ARG_POLL_INTERVAL))
        a.poll_interval = fl_get_poll_interval(l);
    if (!(a.set & FL_ARG_CANCEL)) {
        pthread_mutex_lock(&l->mu);
        a.cancel = l->cancel;
        a.cancel_data = l->cancel_data;
        pthread_mutex_unlock(&l->mu);
    }
    if (!(a.set & FL_ARG_WAKE_FD) || a.wake_fd < 0)
        a.wake_fd = -1;
    if (!(a.set & FL_ARG_DEADLINE) && (rc = validate_timeout(a.timeout, l->path)) != 0)
        return rc; /* checked in fl_acquire_ex's order: timeout, then poll interval */
    if ((rc = validate_poll(a.poll_interval, l->path)) != 0)
        return rc;
    if (a.set & FL_ARG_DEADLINE) {
        if (isnan(a.deadline))
            return fl__error(FL_EINVAL, 0, "invalid deadline for lock file '%s': NaN", l->path);
    } else {
        if (a.timeout < 0)
            a.deadline = INFINITY;
        else if (a.timeout == 0)
            a.deadline = -INFINITY;
        else
            a.deadline = fl__now() + a.timeout; /* +inf stays +inf */
    }
    if (!a.blocking)
        a.deadline = -INFINITY;
    a.set = known;
    *out = a;
    return 0;
}

/* The one place where a deadline becomes the time left. */
static double time_left(double deadline) {
    double left;
    if (isinf(deadline))
        return deadline > 0 ? -1.0 : 0.0;
    left = deadline - fl__now();
    return left > 0 ? left : 0.0; /* already past: one attempt, as a timeout of 0 */
}

int fl_acquire_with(fl_lock *l, const fl_acquire_args *in) {
    fl_acquire_args a;
    int rc;
    if (!l)
        return fl__error(FL_EINVAL, 0, "fl_acquire: NULL lock handle");
    if (!in)
        return fl_acquire(l);
    if ((rc = fl_acquire_args_resolve(l, in, &a)) != 0)
        return rc;
    {
        int c = cancel_off();
        rc = acquire_mode(l, in->shared != 0, time_left(a.deadline), a.blocking, a.poll_interval, 1,
                          a.cancel, a.cancel_data, (in->set & FL_ARG_WAKE_FD) ? in->wake_fd : -1);
        cancel_restore(c);
    }
    return rc;
}

/* ---------------------------------------------------------------------- */
/* Owner tokens (tasks, fibers, coroutines)                                */
/* ---------------------------------------------------------------------- */

/* Acting for an owner swaps the identity fl__thread_serial() gives for the
 * length of one call: recursion, thread-local state and the deadlock check
 * then work per task, with no change to the code that uses them. */
static int owner_check(const fl_lock *l, uint64_t owner, const char *fn) {
    if (!l)
        return fl__error(FL_EINVAL, 0, "%s: NULL lock handle", fn);
    if (owner & FL__OWNER_BIT)
        return fl__error(FL_EINVAL, 0, "%s: owner token %#llx of lock '%s' uses bit 63", fn,
                         (unsigned long long)owner, l->path);
    return 0;
}

static uint64_t owner_enter(uint64_t owner) {
    uint64_t old = t_owner;
    t_owner = owner ? owner | FL__OWNER_BIT : 0;
    return old;
}

static void owner_leave(uint64_t old) { t_owner = old; }

int fl__try_as(fl_lock *l, uint64_t owner, int shared, int probe, fl__hold *ph) {
    uint64_t old;
    int rc, c;
    if ((rc = owner_check(l, owner, "fl_hub_acquire")) != 0)
        return rc;
    c = cancel_off();
    old = owner_enter(owner);
    rc = acquire_core(l, shared, 0, 0, fl_get_poll_interval(l), 0, NULL, NULL, probe | FL__PROBE,
                      ph);
    owner_leave(old);
    cancel_restore(c);
    return rc;
}

int fl_try_acquire_as(fl_lock *l, uint64_t owner, int shared) {
    uint64_t old;
    int rc, c;
    if ((rc = owner_check(l, owner, "fl_try_acquire_as")) != 0)
        return rc;
    c = cancel_off();
    old = owner_enter(owner);
    rc = acquire_mode(l, shared != 0, 0, 0, fl_get_poll_interval(l), 0, NULL, NULL, -1);
    owner_leave(old);
    cancel_restore(c);
    return rc;
}

int fl_release_as(fl_lock *l, uint64_t owner, int force) {
    uint64_t old;
    int rc, c;
    if ((rc = owner_check(l, owner, "fl_release_as")) != 0)
        return rc;
    c = cancel_off();
    old = owner_enter(owner);
    rc = fl_release(l, force);
    owner_leave(old);
    cancel_restore(c);
    return rc;
}

int fl_lock_counter_as(fl_lock *l, uint64_t owner) {
    uint64_t old;
    int n;
    if (!l || (owner & FL__OWNER_BIT))
        return 0;
    old = owner_enter(owner);
    n = fl_lock_counter(l);
    owner_leave(old);
    return n;
}

int fl_is_shared(fl_lock *l) {
    fl__state *s;
    int r;
    if (!l)
        return 0;
    check_fork(l);
    pthread_mutex_lock(&l->mu);
    s = find_state(l);
    r = s && s->counter > 0 && s->hold.shared;
    pthread_mutex_unlock(&l->mu);
    return r;
}

/* ---------------------------------------------------------------------- */
/* Release and free                                                        */
/* ---------------------------------------------------------------------- */

/* Caller holds l->mu and has set s->counter to 0; detaches the hold. */
static fl__hold detach(fl_lock *l, fl__state *s) {
    fl__hold h = s->hold;
    fl__held *node;
    uint64_t thread = l->thread_local ? s->thread : 0;
    s->hold = (fl__hold)FL__HOLD_INIT;
    node = held_remove(l, thread, !l->thread_local);
    free(node);
    if (l->thread_local) {
        fl__state **pp;
        for (pp = &l->states; *pp; pp = &(*pp)->next)
            if (*pp == s) {
                *pp = s->next;
                break;
            }
        free(s);
    }
    return h;
}

static int release_hold(fl_lock *l, fl__hold *h) {
    unsigned gen = fl__current_gen();
    int rc = 0;
    fl__log(l, FL_LOG_RELEASE_ATTEMPT, 0);
    /* A fork from the log handler: the hold (its open file description,
     * its marker) is the parent's, which is releasing it; the child must
     * not unlock it nor close a number it may have reused. */
    if (gen == fl__current_gen())
        rc = fl__os_release(l, __atomic_load_n(&l->kind, __ATOMIC_RELAXED), h, 1);
    fl__log(l, FL_LOG_RELEASED, 0);
    return rc;
}

static int release(fl_lock *l, int force) {
    fl__state *s;
    fl__hold h;
    if (!l)
        return fl__error(FL_EINVAL, 0, "fl_release: NULL lock handle");
    check_fork(l);
    pthread_mutex_lock(&l->mu);
    s = find_state(l);
    if (!s || s->counter == 0) {
        pthread_mutex_unlock(&l->mu);
        return 0;
    }
    s->counter = force ? 0 : s->counter - 1;
    if (s->counter > 0) {
        pthread_mutex_unlock(&l->mu);
        return 0;
    }
    h = detach(l, s);
    pthread_mutex_unlock(&l->mu);
    return release_hold(l, &h);
}

int fl_release(fl_lock *l, int force) {
    int c = cancel_off();
    int rc = release(l, force);
    cancel_restore(c);
    return rc;
}

static void lock_free(fl_lock *l) {
    if (!l)
        return;
    if (l->singleton) {
        fl_lock **pp;
        pthread_mutex_lock(&g_mu);
        if (--l->refs > 0) {
            pthread_mutex_unlock(&g_mu);
            return;
        }
        for (pp = &g_singletons; *pp; pp = &(*pp)->next_singleton)
            if (*pp == l) {
                *pp = l->next_singleton;
                break;
            }
        pthread_mutex_unlock(&g_mu);
    }
    check_fork(l);
    /* One hold at a time: detached under the mutex, released after it
     * (releasing calls the log handler, which must not run under a library
     * mutex, see the lock order in internal.h). */
    for (;;) {
        fl__hold h;
        int found = 1;
        pthread_mutex_lock(&l->mu);
        if (l->shared.counter > 0) {
            l->shared.counter = 0;
            h = detach(l, &l->shared);
        } else if (l->states) {
            l->states->counter = 0;
            h = detach(l, l->states);
        } else {
            found = 0;
        }
        pthread_mutex_unlock(&l->mu);
        if (!found)
            break;
        release_hold(l, &h);
    }
    destroy(l);
}

void fl_lock_free(fl_lock *l) {
    int c = cancel_off();
    lock_free(l);
    cancel_restore(c);
}

static int get_owner(fl_lock *l, fl_owner *out) {
    if (!l || !out)
        return fl__error(FL_EINVAL, 0, "fl_get_owner: NULL argument");
    return fl__os_get_owner(l, __atomic_load_n(&l->kind, __ATOMIC_RELAXED), out);
}

int fl_get_owner(fl_lock *l, fl_owner *out) {
    int c = cancel_off();
    int rc = get_owner(l, out);
    cancel_restore(c);
    return rc;
}

static int held_by_this_process(fl_lock *l) {
    fl_owner o;
    fl__state *s;
    int held;
    int kind;
    if (!l)
        return 0;
    check_fork(l);
    kind = __atomic_load_n(&l->kind, __ATOMIC_RELAXED);
    /* The soft lock is only as held as its marker says: after a break_lock
     * (or a reclaim by another process) our handle's count is no longer a
     * hold, so the marker's owner record alone answers (py-filelock's
     * SoftFileLock.is_lock_held_by_us). */
    if (kind == FL_KERNEL) {
        pthread_mutex_lock(&l->mu);
        held = l->shared.counter > 0;
        for (s = l->states; s && !held; s = s->next)
            held = s->counter > 0;
        pthread_mutex_unlock(&l->mu);
        if (held)
            return 1;
    }
    /* The answer is a yes or no: the owner lookup's errors (ENOENT when
     * nobody holds it) are not the caller's. */
    {
        fl__error_state saved;
        fl__error_save(&saved);
        held = fl__os_get_owner(l, kind, &o) == 0 && o.this_process;
        fl__error_restore(&saved);
    }
    return held;
}

int fl_held_by_this_process(fl_lock *l) {
    int c = cancel_off();
    int rc = held_by_this_process(l);
    cancel_restore(c);
    return rc;
}

int fl_lock_fd(fl_lock *l) {
    if (!l)
        return fl__error(FL_EINVAL, 0, "fl_lock_fd: NULL lock handle");
#ifdef _WIN32
    return fl__error(FL_ENOTSUP, 0, "fl_lock_fd: '%s': not available on Windows", l->path);
#else
    fl__state *s;
    int fd;
    if (__atomic_load_n(&l->kind, __ATOMIC_RELAXED) != FL_KERNEL)
        return fl__error(FL_ENOTSUP, 0, "fl_lock_fd: '%s' is a soft lock (no descriptor holds it)",
                         l->path);
    check_fork(l);
    pthread_mutex_lock(&l->mu);
    s = find_state(l);
    fd = s && s->counter > 0 ? s->hold.fd : -1;
    pthread_mutex_unlock(&l->mu);
    if (fd < 0)
        return fl__error(FL_EINVAL, 0, "fl_lock_fd: lock '%s' is not held by this thread", l->path);
    return fd;
#endif
}

int fl_set_owner_pid(fl_lock *l, long pid) {
    if (!l || pid < 0)
        return fl__error(FL_EINVAL, 0, "fl_set_owner_pid: NULL handle or negative pid %ld", pid);
#ifdef _WIN32
    return fl__error(FL_ENOTSUP, 0, "fl_set_owner_pid: '%s': not available on Windows", l->path);
#else
    __atomic_store_n(&l->owner_pid, pid, __ATOMIC_RELAXED);
    return 0;
#endif
}

int fl_set_read_only_open(fl_lock *l, int allow) {
    if (!l)
        return fl__error(FL_EINVAL, 0, "fl_set_read_only_open: NULL lock handle");
    __atomic_store_n(&l->read_only_open, !!allow, __ATOMIC_RELAXED);
    return 0;
}

int fl_set_close_errors(fl_lock *l, int policy) {
    if (!l)
        return fl__error(FL_EINVAL, 0, "fl_set_close_errors: NULL lock handle");
    if (policy != FL_CLOSE_REPORT && policy != FL_CLOSE_IGNORE && policy != FL_CLOSE_IGNORE_KERNEL)
        return fl__error(FL_EINVAL, 0, "fl_set_close_errors: invalid policy %d for lock file '%s'",
                         policy, l->path);
    __atomic_store_n(&l->close_errors, policy, __ATOMIC_RELAXED);
    return 0;
}

/* The kind is the one being released (a kernel lock that fell back to the
 * soft lock releases a marker), as the pure-Python filelock's class swap. */
int fl__close_error_reported(fl_lock *l, int kind) {
    int policy = __atomic_load_n(&l->close_errors, __ATOMIC_RELAXED);
    if (policy != FL_CLOSE_IGNORE_KERNEL)
        return policy == FL_CLOSE_REPORT;
#ifdef _WIN32
    (void)kind;
    return 1;
#else
    return kind != FL_KERNEL;
#endif
}

static int break_lock(fl_lock *l) {
    if (!l)
        return fl__error(FL_EINVAL, 0, "fl_break_lock: NULL lock handle");
    /* The same answer on every platform: only a soft marker can be removed
     * by someone else; a kernel lock ends only with its holder. */
    if (__atomic_load_n(&l->kind, __ATOMIC_RELAXED) != FL_SOFT)
        return fl__error(FL_ENOTSUP, 0,
                         "cannot break kernel lock '%s': the OS releases it when its holder "
                         "exits",
                         l->path);
    return fl__soft_break(l);
}

int fl_break_lock(fl_lock *l) {
    int c = cancel_off();
    int rc = break_lock(l);
    cancel_restore(c);
    return rc;
}

void fl_set_log_id(fl_lock *l, uint64_t log_id) {
    if (l)
        __atomic_store_n(&l->log_id, log_id, __ATOMIC_RELAXED);
}

/* ---------------------------------------------------------------------- */
/* Caller-owned descriptors                                                */
/* ---------------------------------------------------------------------- */

int fl_lock_descriptor(int fd, int blocking, double poll_interval, fl_cancel_fn cancel,
                       void *cancel_data) {
#ifdef _WIN32
    (void)fd;
    (void)blocking;
    (void)poll_interval;
    (void)cancel;
    (void)cancel_data;
    return fl__error(FL_ENOTSUP, 0, "fl_lock_descriptor: not available on Windows");
#else
    int c, rc = 0;
    /* Checked only when it would be used, as the pure-Python filelock does;
     * the value itself is not needed: the kernel queues the waiter and
     * wakes it at the release. */
    if (blocking && !(isfinite(poll_interval) && poll_interval > 0))
        return fl__error(FL_EINVAL, 0, "poll_interval must be finite and greater than 0, got %g",
                         poll_interval);
    c = cancel_off();
    for (;;) {
        int e;
        if (fl__sys.flock(fd, blocking ? LOCK_EX : LOCK_EX | LOCK_NB) == 0)
            break;
        e = errno;
        if (!blocking && (e == EWOULDBLOCK || e == EAGAIN || e == EACCES)) {
            rc = fl__error(FL_ETIMEOUT, 0, "descriptor %d: the lock is held elsewhere", fd);
            break;
        }
        if (e == EINTR) {
            if (!cancel) {
                rc = fl__error(FL_EINTR, EINTR, "locking descriptor %d was interrupted", fd);
                break;
            }
            if (cancel(cancel_data, 1)) {
                rc = fl__error(FL_ECANCELED, ECANCELED, "locking descriptor %d was cancelled", fd);
                break;
            }
            continue;
        }
        rc = fl__error(fl__code_from_errno(e), e, "cannot lock descriptor %d: %s", fd, strerror(e));
        break;
    }
    cancel_restore(c);
    return rc;
#endif
}

int fl_unlock_descriptor(int fd) {
#ifdef _WIN32
    (void)fd;
    return fl__error(FL_ENOTSUP, 0, "fl_unlock_descriptor: not available on Windows");
#else
    int c = cancel_off(), rc = 0;
    if (fl__sys.flock(fd, LOCK_UN) != 0) {
        int e = errno;
        rc = fl__error(fl__code_from_errno(e), e, "cannot unlock descriptor %d: %s", fd,
                       strerror(e));
    }
    cancel_restore(c);
    return rc;
#endif
}

void fl_set_cancel(fl_lock *l, fl_cancel_fn fn, void *data) {
    if (!l)
        return;
    pthread_mutex_lock(&l->mu);
    l->cancel = fn;
    l->cancel_data = data;
    pthread_mutex_unlock(&l->mu);
}

/* ---------------------------------------------------------------------- */
/* Getters and setters                                                     */
/* ---------------------------------------------------------------------- */

int fl_lock_counter(fl_lock *l) {
    fl__state *s;
    int n;
    if (!l)
        return 0;
    check_fork(l);
    pthread_mutex_lock(&l->mu);
    s = find_state(l);
    n = s ? s->counter : 0;
    pthread_mutex_unlock(&l->mu);
    return n;
}

int fl_is_locked(fl_lock *l) { return fl_lock_counter(l) > 0; }

const char *fl_lock_path(const fl_lock *l) { return l ? l->path : NULL; }

uint64_t fl_lock_id(const fl_lock *l) { return l ? l->id : 0; }

fl_kind fl_lock_kind(const fl_lock *l) {
    return l ? (fl_kind)__atomic_load_n(&l->kind, __ATOMIC_RELAXED) : FL_KERNEL;
}

/* Doubles are stored through their bit pattern so readers never see a torn
 * value while another thread sets them. */
static double load_double(const double *p) {
    uint64_t bits;
    double d;
    bits = __atomic_load_n((const uint64_t *)(const void *)p, __ATOMIC_RELAXED);
    memcpy(&d, &bits, sizeof d);
    return d;
}

static void store_double(double *p, double v) {
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    __atomic_store_n((uint64_t *)(void *)p, bits, __ATOMIC_RELAXED);
}

double fl_get_timeout(const fl_lock *l) { return l ? load_double(&l->timeout) : 0; }

int fl_set_timeout(fl_lock *l, double timeout) {
    int rc;
    if (!l)
        return fl__error(FL_EINVAL, 0, "fl_set_timeout: NULL lock handle");
    if ((rc = validate_timeout(timeout, l->path)) != 0)
        return rc;
    store_double(&l->timeout, timeout);
    return 0;
}

int fl_get_blocking(const fl_lock *l) {
    return l ? __atomic_load_n(&l->blocking, __ATOMIC_RELAXED) : 0;
}

void fl_set_blocking(fl_lock *l, int blocking) {
    if (l)
        __atomic_store_n(&l->blocking, !!blocking, __ATOMIC_RELAXED);
}

double fl_get_poll_interval(const fl_lock *l) { return l ? load_double(&l->poll_interval) : 0; }

int fl_set_poll_interval(fl_lock *l, double poll_interval) {
    int rc;
    if (!l)
        return fl__error(FL_EINVAL, 0, "fl_set_poll_interval: NULL lock handle");
    if ((rc = validate_poll(poll_interval, l->path)) != 0)
        return rc;
    store_double(&l->poll_interval, poll_interval);
    return 0;
}

int fl_get_mode(const fl_lock *l) { return l ? l->mode : FL_MODE_DEFAULT; }

int fl_is_thread_local(const fl_lock *l) { return l ? l->thread_local : 0; }

int fl_is_singleton(const fl_lock *l) { return l ? l->singleton : 0; }

const char *fl_singleton_key(const fl_lock *l) { return l ? l->key : NULL; }

double fl_get_lease_duration(const fl_lock *l) { return l ? l->lease_duration : 0; }

double fl_get_heartbeat_interval(const fl_lock *l) { return l ? l->heartbeat_interval : 0; }

double fl_get_lifetime(const fl_lock *l) { return l ? l->lifetime : 0; }
