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
 *   - fl_options is wrapped as it is: a new one holds the core's defaults
 *     (fl_options_init), and each language sets only the fields its caller
 *     gave before passing it to its one constructor entry.
 *   - The functions whose negative return is an error are listed once, below
 *     (FL_RAISING): each language writes only the typemap `int FL_RAISING`
 *     that raises its own error, before it %includes this file.
 *   - The holder (fl_get_owner) is read once, by fl__swig_owner() below;
 *     each language only builds its value from the result.
 *   - No acquire is wrapped here: every language wraps the wait itself
 *     (GIL/GVL release, signals, cancellation) over fl_acquire_with(), with
 *     fl_acquire_args fields set only for the arguments its caller passed
 *     (the core resolves the rest to the handle's defaults).
 */
%{
#include "filelock.h"

#include <stdlib.h>

/* fl_get_owner() as every binding answers it: 1 and `o` filled (both
 * strings NUL-terminated) when the holder is known; 0 when there is no
 * answer, which is not an error: the lock is free (*unknown = 0) or held
 * by a holder that cannot be told (*unknown = 1: a marker without an
 * owner record, no /proc/locks; fl_last_error() says why); a negative code
 * for a real failure (e.g. a FIFO at the marker path). */
static int fl__swig_owner(fl_lock *l, fl_owner *o, int *unknown) {
    int rc = fl_get_owner(l, o);
    *unknown = rc == FL_ENOTSUP;
    if (rc == FL_ENOENT || rc == FL_ENOTSUP)
        return 0;
    if (rc != 0)
        return rc;
    o->hostname[sizeof o->hostname - 1] = '\0';
    o->start_token[sizeof o->start_token - 1] = '\0';
    return 1;
}
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

/* The options: a new one is filled by the core (the defaults live only
 * there); the version is the core's business. */
%immutable fl_options::version;
/* Set with fl_options_set_lease_duration() / fl_options_set_heartbeat_interval(),
 * which mark the field given (so that 0 is refused, not read as the default). */
%immutable fl_options::given;
%immutable fl_options::lease_duration;
%immutable fl_options::heartbeat_interval;
%extend fl_options {
    fl_options() {
        fl_options *o = (fl_options *)malloc(sizeof *o);
        if (o)
            fl_options_init(o);
        return o;
    }
    ~fl_options() { free($self); }
}
/* A C hook and its data: each language sets them itself, with its own
 * callable as the data, kept alive by its handle object. */
%ignore fl_options::on_acquired;
%ignore fl_options::on_acquired_data;
/* A pointer compared by the core: set by a binding for its own classes
 * (Python: flpy_options_singleton_scope); the other languages keep the
 * process-wide scope (NULL). */
%ignore fl_options::singleton_scope;

/* Every wrapped function whose negative return is an error (all take the
 * handle first): the language's `int FL_RAISING` typemap raises. */
%apply int FL_RAISING { int fl_release, int fl_set_timeout, int fl_set_poll_interval, int fl_set_close_errors,
                        int fl_break_lock };
/* The same for the one that takes an options object (no lock file yet):
 * the language's `int FL_CHECKED` typemap raises. */
%apply int FL_CHECKED { int fl_options_check };

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
%ignore fl_acquire_args;
%ignore fl_acquire_args_init;
%ignore fl_acquire_with;
%ignore fl_acquire_args_resolve;
%ignore FL__ERROR_END;
%ignore FL_OPTIONS_INIT;
/* Read through fl__swig_owner() above. */
%ignore fl_get_owner;
%ignore fl_owner;
/* For a program that runs a command holding the lock (the filelock CLI). */
%ignore fl_lock_fd;
%ignore fl_set_owner_pid;
%ignore fl_set_read_only_open;
/* Take a cancel callback (a C function pointer): each language wraps them
 * by hand with its own interruption rules. */
%ignore fl_lock_descriptor;
%ignore fl_unlock_descriptor;
/* A C callback: each language installs its own bridge (flpy_set_compromise, ...). */
%ignore fl_set_compromise_callback;
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
