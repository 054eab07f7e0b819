/*
 * The common part of the SWIG interface, shared by Python, Ruby and Lua.
 * Each language has its own file (swig/python.i, swig/ruby.i, swig/lua.i)
 * that sets the module name, %includes this file and adds what only that
 * runtime needs: the exception mapping, releasing the GIL/GVL around waits,
 * signal handling and the log bridge.
 *
 * Contract of this layer (all semantics stay in the C core):
 *   - fl_lock is an opaque object; the wrapper owns one reference and its
 *     destructor calls fl_lock_free() (which force-releases a held lock,
 *     or, in a forked child, only closes descriptors).
 *   - Functions returning int error codes are wrapped by each language so
 *     that a negative code raises that language's error built from
 *     fl_err_name(code), fl_last_errno() and fl_last_error().
 *   - No acquire is wrapped here: every language wraps the wait itself
 *     (GIL/GVL release, signals, cancellation) over fl_acquire_with(), with
 *     fl_acquire_args fields set only for the arguments its caller passed
 *     (the core resolves the rest to the handle's defaults).
 */
%{
#include "filelock.h"
%}

%include <stdint.i>

/* The handle: opaque, destroyed by fl_lock_free. */
%nodefaultctor fl_lock;
%nodefaultdtor fl_lock;
typedef struct fl_lock {
} fl_lock;
%extend fl_lock {
    ~fl_lock() { fl_lock_free($self); }
}

/* Names the languages must wrap themselves, or that make no sense there. */
%ignore fl_acquire;
%ignore fl_acquire_ex;
%ignore fl_acquire_shared;
%ignore fl_lock_new;
%ignore fl_lock_new_n;
%ignore fl_lock_free;
%ignore fl_set_cancel;
%ignore fl_set_log_handler;
%ignore fl_format_log;
%ignore fl_options_init;
%ignore fl_options;
%ignore fl_acquire_args;
%ignore fl_acquire_args_init;
%ignore fl_acquire_with;
%ignore fl_acquire_args_resolve;
%ignore FL__ERROR_END;
/* fl_get_owner fills a C struct: every language wraps it by hand (flpy_owner,
 * fl_rb_owner, fl_lua_owner) and decides there what "free" and "held, owner
 * unknown" look like (answers, not errors). */
%ignore fl_get_owner;
%ignore fl_owner;
/* For a program that runs a command holding the lock (the filelock CLI). */
%ignore fl_lock_fd;
%ignore fl_set_owner_pid;
%ignore fl_set_read_only_open;
/* Owner tokens and the event-loop wait hub: each language wraps what its
 * event loop needs by hand (callbacks, its loop's reader; python.i). */
%ignore fl_try_acquire_as;
%ignore fl_release_as;
%ignore fl_lock_counter_as;
%ignore fl_hub;
%ignore fl_hub_waiter;
%ignore fl_hub_done_fn;
%ignore fl_hub_new;
%ignore fl_hub_free;
%ignore fl_hub_fd;
%ignore fl_hub_timeout;
%ignore fl_hub_acquire;
%ignore fl_hub_dispatch;
%ignore fl_hub_cancel;
%ignore fl_hub_release;

%include "filelock.h"
