/*
 * Lua part of the SWIG interface: module `filelock.core` (SWIG module name
 * filelock_core, hence luaopen_filelock_core), the C half of the Lua
 * binding. Users never require it directly; bindings/lua/filelock.lua
 * builds the documented API (FileLock, SoftFileLock, with, acquire, ...) on
 * top of it. The generated wrapper is compiled once per Lua version (5.1,
 * 5.3, 5.4, LuaJIT): everything version-dependent is decided by the
 * preprocessor through LUA_VERSION_NUM.
 *
 * What lives here and not in the Lua layer:
 *   - the wait (fl_lua_acquire_mode, for both the exclusive and the shared
 *     mode): it must talk to the interpreter while it blocks, which only C
 *     can do (cancel callback, hooks);
 *   - owner inspection (fl_lua_owner): fl_owner is a C struct with
 *     fixed-size buffers, turned into a plain Lua table here;
 *   - handle creation from a core.fl_options with the path's length, so an
 *     embedded NUL is an error instead of a silently shortened path;
 *   - turning a negative core code into a raised error object, built by a
 *     factory function the Lua layer registers (set_error_factory), so that
 *     the code -> kind table exists exactly once (in filelock.lua).
 */
%module filelock_core

%{
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <lua.h>
#include <lauxlib.h>
#include "filelock.h"

/* The module's entry point, defined by SWIG; declared so that the wrapper
 * compiles cleanly under -Wmissing-prototypes. */
SWIGEXPORT int luaopen_filelock_core(lua_State *L);
%}

/* SWIG-Lua pushes every `int` as a float (lua_pushnumber); on 5.3+ that
 * prints as "1.0". Integers stay integers, and the yes/no getters become
 * booleans (0 is true in Lua, so a number would be a trap). */
%typemap(out) int "lua_pushinteger(L, (lua_Integer)$1); SWIG_arg++;"
%typemap(out) int fl_is_locked, int fl_get_blocking, int fl_is_thread_local,
              int fl_is_singleton, int fl_is_shared "lua_pushboolean(L, $1 != 0); SWIG_arg++;"

/* The functions filelock.i lists as FL_RAISING raise an error object on
 * failure and return nothing on success (all take the handle first). */
%typemap(out) int FL_RAISING {
    if ($1 < 0)
        fl_lua_raise(L, $1, fl_lock_path(arg1));
}

/* fl_options_check: raises the core's error (no lock file yet). */
%typemap(out) int FL_CHECKED {
    if ($1 < 0)
        fl_lua_raise(L, $1, NULL);
}

/* The handle's path is what error objects call lock_file. */
%{
/* Registry key of the Lua function that turns (code name, errno, message,
 * lock file) into an error object; its address is the unique key. */
static char fl_lua_factory_key;

/* Raises the error for core code `code`. Everything is copied out of the
 * core's per-thread error state before any Lua code runs, because Lua code
 * (the factory) may call into the core again and overwrite it. */
static int fl_lua_raise_msg(lua_State *L, const char *name, int err, const char *msg,
                            const char *path) {
    lua_pushlightuserdata(L, &fl_lua_factory_key);
    lua_rawget(L, LUA_REGISTRYINDEX);
    if (lua_isfunction(L, -1)) {
        lua_pushstring(L, name);
        if (err)
            lua_pushinteger(L, err);
        else
            lua_pushnil(L);
        lua_pushstring(L, msg);
        if (path)
            lua_pushstring(L, path);
        else
            lua_pushnil(L);
        lua_call(L, 4, 1);
    } else {
        /* The core module used on its own: a plain message still says it all. */
        lua_pop(L, 1);
        lua_pushstring(L, msg);
    }
    return lua_error(L);
}

static int fl_lua_raise(lua_State *L, int code, const char *path) {
    return fl_lua_raise_msg(L, fl_err_name(code), fl_last_errno(), fl_last_error(), path);
}
%}

%include "filelock.i"

/* ---------------------------------------------------------------------- */
/* Hand-written functions                                                  */
/* ---------------------------------------------------------------------- */

%{
#if defined(_MSC_VER)
#define FL_LUA_TLS __declspec(thread)
#else
#define FL_LUA_TLS __thread
#endif

/* What the cancel callback needs to know about the acquire in progress on
 * this thread. Thread-local rather than per handle: a handle can be shared
 * (singleton) and waited on from several Lua states in several threads,
 * and the callback is installed once per handle so the fast path pays
 * nothing for it. */
typedef struct fl_lua_wait {
    lua_State *L;
    lua_Hook hook; /* the hook in place when the wait began */
    int mask, count;
    int check;     /* stack index of this call's cancel_check function, or 0 */
    int by_check;  /* cancel_check returned true */
    int hook_fn;   /* stack index of the lock's on_acquired function, or 0 */
    int hooks;     /* hub_dispatch: stack index of the table {[hub_key] = on_acquired}, or 0 */
    struct fl_lua_hub *hub; /* inside hub_acquire / hub_dispatch: the hub, else NULL */
    int failed;    /* a Lua function raised: its error is on the stack top */
} fl_lua_wait;
static FL_LUA_TLS fl_lua_wait fl_lua_current;

/* Consulted by the core while it waits. The standalone interpreters
 * (lua.c, luajit.c) answer Ctrl-C by installing a hook that raises
 * "interrupted!" at the next Lua instruction; no Lua instruction runs while
 * we wait, so the wait has to end by itself:
 *   - a signal that interrupts the wait (interrupted == 1) ends it: the
 *     core's sleep is ppoll, which SA_RESTART never restarts;
 *   - a signal delivered between two sleeps leaves no EINTR behind, but it
 *     leaves the interpreter's hook, so a hook that appeared during the wait
 *     ends it too. */
static int fl_lua_on_cancel(void *data, int interrupted) {
    fl_lua_wait *w = &fl_lua_current;
    (void)data;
    if (interrupted)
        return 1;
    return w->L && lua_gethook(w->L) != w->hook;
}

/* The per-call cancel callback of acquire{cancel_check = fn}: Ctrl-C as
 * above, then fn() (protected: its error ends the wait and is re-raised). */
static int fl_lua_on_cancel_check(void *data, int interrupted) {
    fl_lua_wait *w = &fl_lua_current;
    int stop;
    (void)data;
    if (fl_lua_on_cancel(NULL, interrupted))
        return 1;
    if (!w->L || !w->check || w->failed)
        return w->failed;
    lua_pushvalue(w->L, w->check);
    if (lua_pcall(w->L, 0, 1, 0) != 0) {
        w->failed = 1; /* the error stays on the stack */
        return 1;
    }
    stop = lua_toboolean(w->L, -1);
    lua_pop(w->L, 1);
    if (stop)
        w->by_check = 1;
    return stop;
}

static void fl_lua_hub_hook_failed(lua_State *L, struct fl_lua_hub *h);

/* fl_options.on_acquired: calls the lock's on_acquired(fd). The option's
 * data is only the function's identity (the singleton comparison); the
 * function itself comes with the call that runs the core: acquire() and
 * hub_acquire() pass it (hook_fn), hub_dispatch() a table of the hooks of
 * its pending waits by handle (hooks). A raising function refuses the lock
 * (the core releases it): a blocking acquire re-raises the error, which
 * stays on the stack; inside the hub it is kept for the wait (see
 * fl_lua_hub_hook_failed). Protected: a Lua error never unwinds through
 * the core (a yield in the hook is such an error, as it cannot cross this
 * C call). */
static int fl_lua_on_acquired(void *data, fl_lock *lock, int fd) {
    fl_lua_wait *w = &fl_lua_current;
    (void)data;
    if (!w->L)
        return 0;
    if (w->hook_fn) {
        lua_pushvalue(w->L, w->hook_fn);
    } else if (w->hooks) {
        lua_pushlightuserdata(w->L, lock);
        lua_rawget(w->L, w->hooks);
        if (!lua_isfunction(w->L, -1)) {
            lua_pop(w->L, 1);
            return 0;
        }
    } else {
        return 0;
    }
    lua_pushinteger(w->L, fd);
    if (lua_pcall(w->L, 1, 0, 0) != 0) {
        if (w->hub)
            fl_lua_hub_hook_failed(w->L, w->hub); /* pops the error */
        else
            w->failed = 1;
        return FL_ECANCELED;
    }
    return 0;
}

/* options_on_acquired(options, fn): sets fl_options.on_acquired on a
 * core.fl_options to run the lock's on_acquired (fl_lua_on_acquired). The
 * option's data is only the function's identity (the singleton comparison):
 * the lock object keeps the function and passes it to every acquire. */
static int fl_lua_options_on_acquired(lua_State *L) {
    void *opts = NULL;
    if (!SWIG_IsOK(SWIG_ConvertPtr(L, 1, &opts, SWIGTYPE_p_fl_options, 0)) || !opts)
        return luaL_argerror(L, 1, "filelock options expected");
    luaL_checktype(L, 2, LUA_TFUNCTION);
    ((fl_options *)opts)->on_acquired = fl_lua_on_acquired;
    ((fl_options *)opts)->on_acquired_data = (void *)lua_topointer(L, 2);
    return 0;
}

/* Leases. Lua has no threads: the core's callback thread may not touch a Lua
 * state, so it records the loss here (by the handle's id; a small ring,
 * the newest kept), and filelock.lua asks with lease_lost(handle) when the
 * program next uses the lease (release, compromise()), then calls its
 * on_compromise function on the program's own thread. */
#define FL_LUA_LOSSES 64
static pthread_mutex_t fl_lua_loss_mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
    uint64_t id;
    int reason, err;
} fl_lua_losses[FL_LUA_LOSSES];
static unsigned fl_lua_loss_next;

static void fl_lua_compromise(void *data, fl_lock *lock, fl_lease_loss reason, int os_errno,
                              const char *path) {
    unsigned i;
    (void)data, (void)path;
    pthread_mutex_lock(&fl_lua_loss_mu);
    i = fl_lua_loss_next++ % FL_LUA_LOSSES;
    fl_lua_losses[i].id = fl_lock_id(lock);
    fl_lua_losses[i].reason = (int)reason;
    fl_lua_losses[i].err = os_errno;
    pthread_mutex_unlock(&fl_lua_loss_mu);
}

/* lease_lost(handle) -> reason name, errno; or nothing. Each loss is
 * reported once. */
static fl_lock *fl_lua_check(lua_State *L, int idx);
static int fl_lua_lease_lost(lua_State *L) {
    uint64_t id = fl_lock_id(fl_lua_check(L, 1));
    int i, reason = 0, err = 0;
    pthread_mutex_lock(&fl_lua_loss_mu);
    for (i = 0; i < FL_LUA_LOSSES; i++)
        if (fl_lua_losses[i].id == id) {
            reason = fl_lua_losses[i].reason;
            err = fl_lua_losses[i].err;
            fl_lua_losses[i].id = 0;
        }
    pthread_mutex_unlock(&fl_lua_loss_mu);
    if (!reason)
        return 0;
    lua_pushstring(L, fl_lease_loss_name(reason));
    lua_pushinteger(L, err);
    return 2;
}

/* create(path, options) -> handle: `options` is a core.fl_options (the
 * core's defaults, with the fields the caller gave set by the Lua layer);
 * the core validates the values. */
static int fl_lua_create(lua_State *L) {
    size_t len;
    const char *path = luaL_checklstring(L, 1, &len);
    void *opts = NULL;
    fl_lock *lock = NULL;
    int rc;

    if (!SWIG_IsOK(SWIG_ConvertPtr(L, 2, &opts, SWIGTYPE_p_fl_options, 0)) || !opts)
        return luaL_argerror(L, 2, "filelock options expected");
    rc = fl_lock_new_n(&lock, path, len, (const fl_options *)opts);
    if (rc != 0)
        return fl_lua_raise(L, rc, path);
    fl_set_cancel(lock, fl_lua_on_cancel, NULL);
    if (fl_get_lease_duration(lock) > 0)
        fl_set_compromise_callback(lock, fl_lua_compromise, NULL);
    /* Owned: the userdata's __gc runs the destructor, fl_lock_free(), which
     * releases a held lock and never reports an error. */
    SWIG_NewPointerObj(L, lock, SWIGTYPE_p_fl_lock, 1);
    return 1;
}

static fl_lock *fl_lua_check(lua_State *L, int idx) {
    void *p = NULL;
    if (!SWIG_IsOK(SWIG_ConvertPtr(L, idx, &p, SWIGTYPE_p_fl_lock, 0)) || !p)
        luaL_argerror(L, idx, "filelock handle expected");
    return (fl_lock *)p;
}

/* The one wait wrapper, for both modes: (handle [, timeout [, blocking
 * [, poll_interval [, cancel_check [, on_acquired]]]]]), nil meaning the
 * handle's default (cancel_check: none; on_acquired: the lock's hook). `shared` picks
 * fl_acquire_shared (read) over fl_acquire_ex (write/exclusive); the
 * cancel and Ctrl-C handling around the wait is the same. Raises on
 * failure (FL_ELOCKMODE for an upgrade or downgrade, from the core). */
static int fl_lua_acquire_mode(lua_State *L, int shared) {
    fl_lock *lock = fl_lua_check(L, 1);
    fl_acquire_args args;
    fl_lua_wait saved = fl_lua_current; /* restored after: keeps the state exact */
    int rc;

    /* nil: the handle's default, resolved by the core. */
    fl_acquire_args_init(&args);
    args.shared = shared;
    if (!lua_isnoneornil(L, 2)) {
        args.timeout = (double)luaL_checknumber(L, 2);
        args.set |= FL_ARG_TIMEOUT;
    }
    if (!lua_isnoneornil(L, 3)) {
        args.blocking = lua_toboolean(L, 3);
        args.set |= FL_ARG_BLOCKING;
    }
    if (!lua_isnoneornil(L, 4)) {
        args.poll_interval = (double)luaL_checknumber(L, 4);
        args.set |= FL_ARG_POLL_INTERVAL;
    }
    fl_lua_current.check = 0;
    fl_lua_current.hook_fn = 0;
    fl_lua_current.hooks = 0;
    fl_lua_current.hub = NULL;
    if (!lua_isnoneornil(L, 5)) {
        luaL_checktype(L, 5, LUA_TFUNCTION);
        fl_lua_current.check = 5;
        args.cancel = fl_lua_on_cancel_check;
        args.set |= FL_ARG_CANCEL;
    }
    if (!lua_isnoneornil(L, 6)) {
        luaL_checktype(L, 6, LUA_TFUNCTION);
        fl_lua_current.hook_fn = 6;
    }
    lua_settop(L, 6); /* the functions stay at 5 and 6; errors go above */
    fl_lua_current.by_check = 0;
    fl_lua_current.failed = 0;

    fl_lua_current.L = L;
    fl_lua_current.hook = lua_gethook(L);
    fl_lua_current.mask = lua_gethookmask(L);
    fl_lua_current.count = lua_gethookcount(L);
    rc = fl_acquire_with(lock, &args);
    if (rc == FL_ECANCELED && lua_gethook(L) != fl_lua_current.hook) {
        /* The interpreter's stop hook would raise its generic "interrupted!"
         * at the next instruction, inside whatever handles our error (even
         * inside __tostring when lua.c prints it, losing our message). Our
         * error reports the interruption and unwinds the same way, so the
         * request is consumed: the previous hook goes back. (A host that
         * stops scripts by installing a hook from another thread gets our
         * "interrupted" error in place of its own.) */
        lua_sethook(L, fl_lua_current.hook, fl_lua_current.mask, fl_lua_current.count);
    }
    {
        int failed = fl_lua_current.failed, by_check = fl_lua_current.by_check;
        fl_lua_current = saved;
        if (failed && rc != 0)
            return lua_error(L); /* what cancel_check or on_acquired raised */
        if (by_check && rc == FL_ECANCELED) {
            /* As an expired timeout, as py-filelock's cancel_check does. */
            char msg[512];
            snprintf(msg, sizeof msg, "The file lock '%s' could not be acquired.",
                     fl_lock_path(lock));
            return fl_lua_raise_msg(L, "ETIMEOUT", 0, msg, fl_lock_path(lock));
        }
    }
    if (rc == 0)
        return 0;
    if (rc == FL_ECANCELED) {
        /* Only our callback cancels, and only for a signal. */
        char msg[512];
        snprintf(msg, sizeof msg, "interrupted while waiting for lock file '%s'",
                 fl_lock_path(lock));
        return fl_lua_raise_msg(L, "EINTR", EINTR, msg, fl_lock_path(lock));
    }
    return fl_lua_raise(L, rc, fl_lock_path(lock));
}

/* acquire(...): exclusive; acquire_shared(...): shared. See above. */
static int fl_lua_acquire(lua_State *L) {
    return fl_lua_acquire_mode(L, 0);
}

static int fl_lua_acquire_shared(lua_State *L) {
    return fl_lua_acquire_mode(L, 1);
}

/* owner(handle) -> {pid=, hostname=, start_token=, this_process=}; nil when
 * the lock is free; nil and the core's message when it is held but the
 * holder cannot be told (fl__swig_owner: answers, not failures); anything
 * else raises. An empty start token (none recorded, or the kernel lock) is
 * left out of the table. */
static int fl_lua_owner(lua_State *L) {
    fl_lock *lock = fl_lua_check(L, 1);
    fl_owner o;
    int unknown;
    int rc = fl__swig_owner(lock, &o, &unknown);
    if (rc < 0)
        return fl_lua_raise(L, rc, fl_lock_path(lock));
    if (rc == 0) {
        lua_pushnil(L);
        if (!unknown)
            return 1;
        lua_pushstring(L, fl_last_error());
        return 2;
    }
    lua_createtable(L, 0, 4);
    lua_pushinteger(L, (lua_Integer)o.pid);
    lua_setfield(L, -2, "pid");
    lua_pushstring(L, o.hostname);
    lua_setfield(L, -2, "hostname");
    if (o.start_token[0]) {
        lua_pushstring(L, o.start_token);
        lua_setfield(L, -2, "start_token");
    }
    lua_pushboolean(L, o.this_process != 0);
    lua_setfield(L, -2, "this_process");
    return 1;
}

/* lock_descriptor(fd, blocking, poll_interval) -> true, or false when
 * blocking is false and the lock is held elsewhere: the core's
 * fl_lock_descriptor on a descriptor the caller owns. A signal ends a
 * blocking wait with the EINTR error, as acquire does. */
static int fl_lua_lock_descriptor(lua_State *L) {
    int fd = (int)luaL_checkinteger(L, 1);
    int blocking = lua_isnoneornil(L, 2) ? 1 : lua_toboolean(L, 2);
    double poll = luaL_optnumber(L, 3, 0.05);
    int rc = fl_lock_descriptor(fd, blocking, poll, NULL, NULL);
    if (rc == 0 || (rc == FL_ETIMEOUT && !blocking)) {
        lua_pushboolean(L, rc == 0);
        return 1;
    }
    return fl_lua_raise(L, rc, NULL);
}

/* unlock_descriptor(fd): releases it, the descriptor stays open. */
static int fl_lua_unlock_descriptor(lua_State *L) {
    int rc = fl_unlock_descriptor((int)luaL_checkinteger(L, 1));
    if (rc != 0)
        return fl_lua_raise(L, rc, NULL);
    return 0;
}

/* set_error_factory(fn): installs the function that builds error objects. */
static int fl_lua_set_error_factory(lua_State *L) {
    luaL_checktype(L, 1, LUA_TFUNCTION);
    lua_pushlightuserdata(L, &fl_lua_factory_key);
    lua_pushvalue(L, 1);
    lua_rawset(L, LUA_REGISTRYINDEX);
    return 0;
}

/* raise(code_name, errno, message, lock_file): raises through the factory,
 * for errors the Lua layer detects itself (bad option types). */
static int fl_lua_raise_from_lua(lua_State *L) {
    const char *name = luaL_checkstring(L, 1);
    int err = (int)luaL_optinteger(L, 2, 0);
    const char *msg = luaL_checkstring(L, 3);
    const char *path = luaL_optstring(L, 4, NULL);
    return fl_lua_raise_msg(L, name, err, msg, path);
}
%}

/* ---------------------------------------------------------------------- */
/* The event-loop wait hub, for libuv loops (luv, Neovim's vim.uv)         */
/* ---------------------------------------------------------------------- */

/* filelock.lua keeps one hub per Lua state and drives it from the loop: a
 * poll handle on hub_fd and a timer for hub_timeout, both calling
 * hub_dispatch. No Lua code runs inside the core: the done callback only
 * records (waiter, code, errno, message) in the hub, and hub_dispatch hands
 * the records to Lua after the core returned. */
%{
#define FL_LUA_HUB "filelock.hub"

typedef struct fl_lua_done {
    void *w;
    int rc, err;
    int hook_failed; /* the wait's on_acquired raised: its error is at hook_ref */
    int hook_ref;    /* a registry reference (LUA_REFNIL for a nil error) */
    char msg[512];
} fl_lua_done;

typedef struct fl_lua_hub {
    fl_hub *hub;
    fl_lua_done *done;
    size_t n, cap;
    int dropped; /* out of memory recording: those waits end as errors */
    /* Inside fl_hub_acquire() / fl_hub_dispatch(): the state running them.
     * The core is not re-entrant for one hub (a hook that cancels the wait
     * being won would free it under the dispatch), so the hub_* natives
     * refuse a busy hub; filelock.lua defers what hooks ask for instead. */
    lua_State *L;
    int busy;
    /* What an on_acquired hook raised inside the core, for the done
     * callback that follows it for the same wait (the core releases the
     * lock and completes that wait with FL_ECANCELED right after), or for
     * hub_acquire when the hook ran for a win at once. */
    int hook_failed, hook_ref;
} fl_lua_hub;

/* Called by fl_lua_on_acquired inside the core: keeps the error on the
 * stack top (popped) for the wait the core completes next. */
static void fl_lua_hub_hook_failed(lua_State *L, struct fl_lua_hub *h) {
    if (h->hook_failed)
        luaL_unref(L, LUA_REGISTRYINDEX, h->hook_ref);
    if (lua_toboolean(L, -1)) {
        h->hook_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    } else {
        /* error(nil) / error(false): a callback(nil) would read as a win
         * without a guard; the wait ends with the core's refusal error. */
        lua_pop(L, 1);
        h->hook_ref = LUA_NOREF;
    }
    h->hook_failed = 1;
}

/* Forgets a hook error no wait took (none is expected: defensive). */
static void fl_lua_hub_hook_drop(fl_lua_hub *h) {
    if (h->hook_failed && h->L)
        luaL_unref(h->L, LUA_REGISTRYINDEX, h->hook_ref);
    h->hook_failed = 0;
}

static void fl_lua_hub_done(void *data, fl_lock *l, uint64_t owner, int rc) {
    fl_lua_hub *h = ((void **)data)[0];
    void *w = ((void **)data)[1];
    fl_lua_done *d;
    (void)l, (void)owner;
    free(data);
    if (!h)
        return;
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 16;
        fl_lua_done *p = realloc(h->done, cap * sizeof *p);
        if (!p) {
            h->dropped++;
            if (rc == FL_ECANCELED)
                fl_lua_hub_hook_drop(h);
            return;
        }
        h->done = p;
        h->cap = cap;
    }
    d = &h->done[h->n++];
    d->w = w;
    d->rc = rc;
    d->err = rc ? fl_last_errno() : 0;
    d->hook_failed = 0;
    if (rc == FL_ECANCELED && h->hook_failed) {
        d->hook_failed = 1;
        d->hook_ref = h->hook_ref;
        h->hook_failed = 0;
    }
    snprintf(d->msg, sizeof d->msg, "%s", rc ? fl_last_error() : "");
}

/* Enters the core for hub h: the hooks it runs find their functions
 * through `current` (hook_fn or hooks, stack indices of L). */
static void fl_lua_hub_enter(lua_State *L, fl_lua_hub *h, fl_lua_wait *saved, int hook_fn,
                             int hooks) {
    if (h->busy)
        luaL_error(L, "filelock: the wait hub is busy (called from an on_acquired hook)");
    *saved = fl_lua_current;
    memset(&fl_lua_current, 0, sizeof fl_lua_current);
    fl_lua_current.L = L;
    fl_lua_current.hook = lua_gethook(L);
    fl_lua_current.mask = lua_gethookmask(L);
    fl_lua_current.count = lua_gethookcount(L);
    fl_lua_current.hook_fn = hook_fn;
    fl_lua_current.hooks = hooks;
    fl_lua_current.hub = h;
    h->L = L;
    h->busy = 1;
}

static void fl_lua_hub_leave(fl_lua_hub *h, const fl_lua_wait *saved) {
    h->busy = 0;
    fl_lua_current = *saved;
}

static fl_lua_hub *fl_lua_hub_check(lua_State *L, int idx) {
    fl_lua_hub *h = (fl_lua_hub *)luaL_checkudata(L, idx, FL_LUA_HUB);
    if (!h->hub)
        luaL_argerror(L, idx, "the hub is closed");
    return h;
}

static int fl_lua_hub_gc(lua_State *L) {
    fl_lua_hub *h = (fl_lua_hub *)luaL_checkudata(L, 1, FL_LUA_HUB);
    size_t i;
    if (h->hub) {
        fl_hub *hub = h->hub;
        h->hub = NULL;
        fl_hub_free(hub); /* pending waits end; nothing is recorded any more */
    }
    for (i = 0; i < h->n; i++)
        if (h->done[i].hook_failed)
            luaL_unref(L, LUA_REGISTRYINDEX, h->done[i].hook_ref);
    h->n = 0;
    h->L = L;
    fl_lua_hub_hook_drop(h);
    free(h->done);
    h->done = NULL;
    return 0;
}

/* hub_new() -> hub */
static int fl_lua_hub_new(lua_State *L) {
    fl_lua_hub *h = (fl_lua_hub *)lua_newuserdata(L, sizeof *h);
    int rc;
    memset(h, 0, sizeof *h);
    if (luaL_newmetatable(L, FL_LUA_HUB)) {
        lua_pushcfunction(L, fl_lua_hub_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2);
    rc = fl_hub_new(&h->hub);
    if (rc != 0)
        return fl_lua_raise(L, rc, NULL);
    return 1;
}

/* hub_fd(hub) -> descriptor or -1; hub_timeout(hub) -> seconds or -1 */
static int fl_lua_hub_fd(lua_State *L) {
    lua_pushinteger(L, fl_hub_fd(fl_lua_hub_check(L, 1)->hub));
    return 1;
}

static int fl_lua_hub_timeout(lua_State *L) {
    lua_pushnumber(L, fl_hub_timeout(fl_lua_hub_check(L, 1)->hub));
    return 1;
}

/* hub_acquire(hub, handle, owner, shared, timeout, blocking, poll [, hook])
 * -> true (won now) or the pending wait (a light userdata); or false and
 * the error hook (the lock's on_acquired, run for a win at once) raised,
 * nil included: the core released the lock. Raises on other failures. */
static int fl_lua_hub_acquire(lua_State *L) {
    fl_lua_hub *h = fl_lua_hub_check(L, 1);
    fl_lock *lock = fl_lua_check(L, 2);
    uint64_t owner = (uint64_t)luaL_checknumber(L, 3);
    fl_acquire_args args;
    fl_hub_waiter *w = NULL;
    fl_lua_wait saved;
    void **data;
    int rc;
    if (h->busy) /* before anything is allocated */
        return luaL_error(L, "filelock: the wait hub is busy (called from an on_acquired hook)");
    fl_acquire_args_init(&args);
    args.shared = lua_toboolean(L, 4);
    if (!lua_isnoneornil(L, 5)) {
        args.timeout = (double)luaL_checknumber(L, 5);
        args.set |= FL_ARG_TIMEOUT;
    }
    if (!lua_isnoneornil(L, 6)) {
        args.blocking = lua_toboolean(L, 6);
        args.set |= FL_ARG_BLOCKING;
    }
    if (!lua_isnoneornil(L, 7)) {
        args.poll_interval = (double)luaL_checknumber(L, 7);
        args.set |= FL_ARG_POLL_INTERVAL;
    }
    /* The callback's data: the hub and the wait itself (known only after
     * the call, filled in below; the callback runs in a later dispatch). */
    data = malloc(2 * sizeof *data);
    if (!data)
        return luaL_error(L, "out of memory");
    data[0] = h;
    data[1] = NULL;
    if (!lua_isnoneornil(L, 8))
        luaL_checktype(L, 8, LUA_TFUNCTION);
    lua_settop(L, 8); /* the hook stays at 8; its error goes above */
    fl_lua_hub_enter(L, h, &saved, lua_isnil(L, 8) ? 0 : 8, 0);
    rc = fl_hub_acquire(h->hub, lock, owner, &args, fl_lua_hub_done, data, &w);
    fl_lua_hub_leave(h, &saved);
    if (rc != 0 || !w) {
        free(data);
        if (rc == FL_ECANCELED && h->hook_failed && h->hook_ref != LUA_NOREF) {
            lua_pushboolean(L, 0);
            lua_rawgeti(L, LUA_REGISTRYINDEX, h->hook_ref);
            luaL_unref(L, LUA_REGISTRYINDEX, h->hook_ref);
            h->hook_failed = 0;
            return 2;
        }
        fl_lua_hub_hook_drop(h);
        if (rc != 0)
            return fl_lua_raise(L, rc, fl_lock_path(lock));
        lua_pushboolean(L, 1);
        return 1;
    }
    data[1] = w;
    lua_pushlightuserdata(L, w);
    return 1;
}

/* hub_dispatch(hub [, hooks]) -> { {wait, code_name or nil, errno,
 * message, hook_failed, hook_error}, ... }: hooks is { [hub_key(handle)] =
 * on_acquired } for the pending waits' handles that have one; a wait whose
 * hook raised has hook_failed true and hook_error what it raised (the lock
 * released). */
static int fl_lua_hub_dispatch(lua_State *L) {
    fl_lua_hub *h = fl_lua_hub_check(L, 1);
    fl_lua_wait saved;
    size_t i;
    int rc;
    if (!lua_isnoneornil(L, 2))
        luaL_checktype(L, 2, LUA_TTABLE);
    lua_settop(L, 2);
    fl_lua_hub_enter(L, h, &saved, 0, lua_istable(L, 2) ? 2 : 0);
    rc = fl_hub_dispatch(h->hub);
    fl_lua_hub_leave(h, &saved);
    fl_lua_hub_hook_drop(h);
    if (rc < 0)
        return fl_lua_raise(L, rc, NULL);
    lua_createtable(L, (int)h->n, 0);
    for (i = 0; i < h->n; i++) {
        fl_lua_done *d = &h->done[i];
        lua_createtable(L, 4, 0);
        lua_pushlightuserdata(L, d->w);
        lua_rawseti(L, -2, 1);
        if (d->rc) {
            lua_pushstring(L, fl_err_name(d->rc));
            lua_rawseti(L, -2, 2);
            lua_pushinteger(L, d->err);
            lua_rawseti(L, -2, 3);
            lua_pushstring(L, d->msg);
            lua_rawseti(L, -2, 4);
        }
        if (d->hook_failed && d->hook_ref != LUA_NOREF) {
            lua_pushboolean(L, 1);
            lua_rawseti(L, -2, 5);
            lua_rawgeti(L, LUA_REGISTRYINDEX, d->hook_ref);
            lua_rawseti(L, -2, 6);
            luaL_unref(L, LUA_REGISTRYINDEX, d->hook_ref);
        }
        d->hook_failed = 0;
        lua_rawseti(L, -2, (int)i + 1);
    }
    h->n = 0;
    return 1;
}

/* hub_key(handle) -> the key of the handle in hub_dispatch's hooks table
 * (a light userdata: the core names the handle by its address). */
static int fl_lua_hub_key(lua_State *L) {
    lua_pushlightuserdata(L, fl_lua_check(L, 1));
    return 1;
}

/* hub_cancel(hub, wait): the wait must still be pending (the Lua layer
 * knows: it forgets a wait when its result is handed out). */
static int fl_lua_hub_cancel(lua_State *L) {
    if (fl_lua_hub_check(L, 1)->busy)
        return luaL_error(L, "filelock: the wait hub is busy (called from an on_acquired hook)");
    luaL_checktype(L, 2, LUA_TLIGHTUSERDATA);
    (void)fl_hub_cancel((fl_hub_waiter *)lua_touserdata(L, 2));
    return 0;
}

/* hub_release(hub or nil, handle, owner, force) */
static int fl_lua_hub_release(lua_State *L) {
    fl_lock *lock = fl_lua_check(L, 2);
    uint64_t owner = (uint64_t)luaL_checknumber(L, 3);
    int force = lua_toboolean(L, 4), rc;
    if (!lua_isnoneornil(L, 1) && fl_lua_hub_check(L, 1)->busy)
        return luaL_error(L, "filelock: the wait hub is busy (called from an on_acquired hook)");
    rc = lua_isnoneornil(L, 1) ? fl_release_as(lock, owner, force)
                               : fl_hub_release(fl_lua_hub_check(L, 1)->hub, lock, owner, force);
    if (rc != 0)
        return fl_lua_raise(L, rc, fl_lock_path(lock));
    return 0;
}

/* counter_as(handle, owner) -> recursion level of that owner */
static int fl_lua_counter_as(lua_State *L) {
    fl_lock *lock = fl_lua_check(L, 1);
    lua_pushinteger(L, fl_lock_counter_as(lock, (uint64_t)luaL_checknumber(L, 2)));
    return 1;
}
%}

%native(hub_new) int fl_lua_hub_new(lua_State *L);
%native(hub_fd) int fl_lua_hub_fd(lua_State *L);
%native(hub_timeout) int fl_lua_hub_timeout(lua_State *L);
%native(hub_acquire) int fl_lua_hub_acquire(lua_State *L);
%native(hub_dispatch) int fl_lua_hub_dispatch(lua_State *L);
%native(hub_cancel) int fl_lua_hub_cancel(lua_State *L);
%native(hub_release) int fl_lua_hub_release(lua_State *L);
%native(hub_key) int fl_lua_hub_key(lua_State *L);
%native(counter_as) int fl_lua_counter_as(lua_State *L);
%native(create) int fl_lua_create(lua_State *L);
%native(options_on_acquired) int fl_lua_options_on_acquired(lua_State *L);
%native(acquire) int fl_lua_acquire(lua_State *L);
%native(acquire_shared) int fl_lua_acquire_shared(lua_State *L);
%native(owner) int fl_lua_owner(lua_State *L);
%native(set_error_factory) int fl_lua_set_error_factory(lua_State *L);
%native(raise) int fl_lua_raise_from_lua(lua_State *L);
%native(lock_descriptor) int fl_lua_lock_descriptor(lua_State *L);
%native(unlock_descriptor) int fl_lua_unlock_descriptor(lua_State *L);
%native(lease_lost) int fl_lua_lease_lost(lua_State *L);
