/*
 * Python part of the SWIG interface: the low-level extension module
 * `filelock._filelock_core`. The idiomatic layer (bindings/python/filelock/
 * _api.py) is the only user; it maps names and scoping, never semantics.
 *
 * Built with `swig -python -noproxy`: no generated .py shadow module. The
 * handle travels as a PyCapsule whose destructor calls fl_lock_free() (the
 * destructor contract of filelock.i): without proxy classes SWIG's own
 * pointer objects would never run the destructor, and the capsule is also
 * the cheapest object to convert back (the `with lock: pass` budget is
 * about 2 us).
 *
 * What only Python needs lives here:
 *   - flpy_acquire*: the wait (exclusive or shared, one wrapper for both,
 *     flpy_acquire_impl) runs with the GIL released; a cancel callback
 *     briefly retakes the GIL to run Python's signal handlers, so Ctrl-C
 *     ends a wait with KeyboardInterrupt (the core rolls the counter back).
 *   - flpy_raise: the one mapping from the core's error (code, errno,
 *     message) to Python exceptions.
 *   - the log bridge: the core's log events go to a Python callable that
 *     logs to logging.getLogger("filelock") at DEBUG; it is installed only
 *     while that logger is enabled for DEBUG.
 */
%module(package="filelock") _filelock_core

%{
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Py_IsFinalizing() became public in 3.13; earlier versions spell it with
 * an underscore. */
#if PY_VERSION_HEX >= 0x030D0000
#define flpy_finalizing() Py_IsFinalizing()
#else
#define flpy_finalizing() _Py_IsFinalizing()
#endif
%}

/* The handle is a capsule here (see above), so SWIG's destructor wrapper
 * must not exist, and the wait functions are wrapped below by hand. */
%ignore fl_lock::~fl_lock;
/* Wrapped by hand below (flpy_break_lock): a code-returning function is not
 * what Python callers should see. */
%ignore fl_break_lock;

%typemap(in) fl_lock *, const fl_lock * {
    $1 = ($1_ltype)PyCapsule_GetPointer($input, FLPY_CAPSULE);
    if (!$1)
        SWIG_fail;
}

/* The integer-returning setters raise instead of returning a code. */
%typemap(out) int fl_set_timeout, int fl_set_poll_interval {
    if ($1 < 0) {
        flpy_raise($1, NULL);
        SWIG_fail;
    }
    $result = Py_None;
    Py_INCREF(Py_None);
}

%include "filelock.i"

%{
#define FLPY_CAPSULE "filelock.fl_lock"

/* Set once from Python (flpy_setup): the Timeout class and the callable
 * receiving formatted log lines. Strong references for the process life. */
static PyObject *flpy_timeout_cls;
static PyObject *flpy_log_sink;
static int flpy_logging_on;

static PyObject *flpy_path_obj(fl_lock *l) {
    const char *p = l ? fl_lock_path(l) : NULL;
    return PyUnicode_DecodeFSDefault(p ? p : "");
}

/* Raises the Python exception for a failed core call (code < 0), built from
 * the calling thread's last error. Returns NULL for convenience. */
static PyObject *flpy_raise(int code, fl_lock *l) {
    int err = fl_last_errno();
    const char *msg = fl_last_error();
    PyObject *path, *exc;

    /* The cancel callback left the real reason (KeyboardInterrupt or what a
     * signal handler raised) pending: that is what the caller must see. */
    if (PyErr_Occurred())
        return NULL;
    switch (code) {
    case FL_ETIMEOUT:
        path = flpy_path_obj(l);
        if (!path)
            return NULL;
        if (flpy_timeout_cls) {
            exc = PyObject_CallOneArg(flpy_timeout_cls, path);
            if (exc) {
                PyErr_SetObject(flpy_timeout_cls, exc);
                Py_DECREF(exc);
            }
        } else {
            PyErr_SetString(PyExc_TimeoutError, msg);
        }
        Py_DECREF(path);
        return NULL;
    case FL_EDEADLK:
        /* The core's message is language-neutral; name Python's option. */
        PyErr_Format(PyExc_RuntimeError, "%s [in Python: is_singleton=True]", msg);
        return NULL;
    case FL_ENOTSUP:
        /* What py-filelock raises when flock is unavailable; for a kernel
         * lock the core suggests the soft lock, which Python calls
         * SoftFileLock. */
        if (l && fl_lock_kind(l) == FL_KERNEL)
            PyErr_Format(PyExc_NotImplementedError, "%s [in Python: SoftFileLock]", msg);
        else
            PyErr_SetString(PyExc_NotImplementedError, msg);
        return NULL;
    case FL_ENOMEM:
        PyErr_SetString(PyExc_MemoryError, msg);
        return NULL;
    case FL_ECANCELED:
        PyErr_SetString(PyExc_RuntimeError, msg);
        return NULL;
    case FL_ELOCKMODE:
        /* Upgrade or downgrade on one handle: a usage error, like
         * EDEADLK; the message names the held and the asked mode. */
        PyErr_SetString(PyExc_RuntimeError, msg);
        return NULL;
    default:
        break;
    }
    if (err != 0) {
        /* OSError(errno, message, filename) picks the subclass users catch:
         * FileNotFoundError, PermissionError, IsADirectoryError, ... */
        path = l ? flpy_path_obj(l) : (Py_INCREF(Py_None), Py_None);
        if (!path)
            return NULL;
        exc = PyObject_CallFunction(PyExc_OSError, "isO", err, msg, path);
        Py_DECREF(path);
        if (exc) {
            PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
            Py_DECREF(exc);
        }
        return NULL;
    }
    if (code == FL_EINVAL) {
        PyErr_SetString(PyExc_ValueError, msg);
        return NULL;
    }
    PyErr_Format(PyExc_OSError, "%s (%s)", msg, fl_err_name(code));
    return NULL;
}

/* Cancel callback, run on the waiting thread without the GIL (at every
 * wake-up, on EINTR and at least every 50 ms). Python's signal handlers
 * only run with the GIL held, so take it briefly and let them run; if one
 * raised (KeyboardInterrupt), stop waiting and leave the exception pending
 * in this thread's state for flpy_acquire to return. */
static int flpy_cancel(void *data, int interrupted) {
    PyGILState_STATE st;
    int stop;
    (void)data;
    (void)interrupted;
    if (flpy_finalizing())
        return 0;
    st = PyGILState_Ensure();
    stop = PyErr_CheckSignals() != 0;
    PyGILState_Release(st);
    return stop;
}

/* Log handler: formats with the core's formatter (so every binding prints
 * the same text) and hands the line to the Python sink. */
static void flpy_log(void *data, fl_log_event ev, uint64_t id, const char *path, double seconds) {
    char small[512], *buf = small;
    int n;
    PyGILState_STATE st;
    PyObject *sink, *line, *res, *et, *ev_, *tb;
    (void)data;

    n = fl_format_log(small, sizeof small, ev, id, path, seconds);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof small) {
        buf = malloc((size_t)n + 1);
        if (!buf)
            return;
        fl_format_log(buf, (size_t)n + 1, ev, id, path, seconds);
    }
    if (!flpy_finalizing()) {
        st = PyGILState_Ensure();
        sink = flpy_log_sink;
        if (sink) {
            /* Events also fire from fl_lock_free in a deallocator, possibly
             * while an exception propagates: keep it intact. */
            PyErr_Fetch(&et, &ev_, &tb);
            line = PyUnicode_DecodeFSDefault(buf);
            res = line ? PyObject_CallOneArg(sink, line) : NULL;
            Py_XDECREF(line);
            Py_XDECREF(res);
            /* Logging failures must not break locking (nor raise from
             * __del__): the logging module reports its own handler errors. */
            PyErr_Clear();
            PyErr_Restore(et, ev_, tb);
        }
        PyGILState_Release(st);
    }
    if (buf != small)
        free(buf);
}

static void flpy_capsule_free(PyObject *capsule) {
    fl_lock_free((fl_lock *)PyCapsule_GetPointer(capsule, FLPY_CAPSULE));
}

/* Turns an optional argument into its fl_acquire_args field: None leaves the
 * bit clear (the core takes the handle's default). */
static int flpy_opt_double(PyObject *o, unsigned bit, double *field, unsigned *set) {
    if (o == Py_None)
        return 0;
    *field = PyFloat_AsDouble(o);
    if (*field == -1.0 && PyErr_Occurred())
        return -1;
    *set |= bit;
    return 0;
}
%}

/* A new handle: the path as bytes (os.fsencode'd by the caller) so that a
 * NUL byte reaches the core, which rejects it (ValueError). The result owns
 * one reference to the core handle. */
%newobject flpy_new;
%typemap(in) (const char *path_bytes, Py_ssize_t path_len) {
    char *p;
    if (PyBytes_AsStringAndSize($input, &p, &$2) < 0)
        SWIG_fail;
    $1 = p;
}

%inline %{
/* Module setup from the Python layer: the Timeout class and the log sink. */
static PyObject *flpy_setup(PyObject *timeout_cls, PyObject *log_sink) {
    PyObject *old_cls = flpy_timeout_cls, *old_sink = flpy_log_sink;
    Py_INCREF(timeout_cls);
    Py_INCREF(log_sink);
    flpy_timeout_cls = timeout_cls;
    flpy_log_sink = log_sink;
    Py_XDECREF(old_cls);
    Py_XDECREF(old_sink);
    Py_RETURN_NONE;
}

static PyObject *flpy_new(const char *path_bytes, Py_ssize_t path_len, int kind, double timeout,
                          int blocking, double poll_interval, int mode, int thread_local,
                          int singleton, int read_write) {
    fl_options o;
    fl_lock *l = NULL;
    int rc;
    fl_options_init(&o);
    o.kind = kind ? FL_SOFT : FL_KERNEL;
    o.timeout = timeout;
    o.blocking = blocking;
    o.poll_interval = poll_interval;
    o.mode = mode;
    o.thread_local = thread_local;
    o.singleton = singleton;
    o.read_write = read_write;
    rc = fl_lock_new_n(&l, path_bytes, (size_t)path_len, &o);
    if (rc != 0) {
        /* No handle yet: name the path in the error from the bytes given. */
        int err = fl_last_errno();
        if (err != 0) {
            PyObject *p = PyUnicode_DecodeFSDefaultAndSize(path_bytes, path_len);
            PyObject *exc = p ? PyObject_CallFunction(PyExc_OSError, "isO", err,
                                                      fl_last_error(), p)
                              : NULL;
            Py_XDECREF(p);
            if (exc) {
                PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
                Py_DECREF(exc);
            }
            return NULL;
        }
        return flpy_raise(rc, NULL);
    }
    /* Consulted only while this handle waits; runs Python's signal
     * handlers. Also makes wait-forever interruptible in the core. */
    fl_set_cancel(l, flpy_cancel, NULL);
    {
        PyObject *cap = PyCapsule_New(l, FLPY_CAPSULE, flpy_capsule_free);
        if (!cap)
            fl_lock_free(l);
        return cap;
    }
}

/* The one wait wrapper of every acquire: exclusive or shared (read) mode;
 * None for timeout, blocking or poll_interval means the handle's default.
 * The GIL is released for the wait and the handle's cancel callback
 * (flpy_cancel) runs signal handlers. */
static PyObject *flpy_acquire(fl_lock *l, int shared, PyObject *timeout, PyObject *blocking,
                              PyObject *poll_interval) {
    fl_acquire_args a;
    int rc;
    fl_acquire_args_init(&a);
    a.shared = shared;
    if (flpy_opt_double(timeout, FL_ARG_TIMEOUT, &a.timeout, &a.set) < 0 ||
        flpy_opt_double(poll_interval, FL_ARG_POLL_INTERVAL, &a.poll_interval, &a.set) < 0)
        return NULL;
    if (blocking != Py_None) {
        if ((a.blocking = PyObject_IsTrue(blocking)) < 0)
            return NULL;
        a.set |= FL_ARG_BLOCKING;
    }
    Py_BEGIN_ALLOW_THREADS
    rc = fl_acquire_with(l, &a);
    Py_END_ALLOW_THREADS
    if (rc != 0)
        return flpy_raise(rc, l);
    Py_RETURN_NONE;
}

/* The holder as (pid, hostname, start_token or None, this_process), or
 * None when the lock is free (FL_ENOENT) or held by a holder that cannot be
 * told (FL_ENOTSUP: a marker without an owner record, no /proc/locks).
 * Other failures (e.g. a FIFO at the marker path) raise. */
static PyObject *flpy_owner(fl_lock *l) {
    fl_owner o;
    int rc = fl_get_owner(l, &o);
    if (rc == FL_ENOENT || rc == FL_ENOTSUP)
        Py_RETURN_NONE;
    if (rc != 0)
        return flpy_raise(rc, l);
    /* The record's bytes are whatever the holder wrote: decode like a
     * path, so that no byte sequence makes inspection fail. */
    {
        PyObject *host = PyUnicode_DecodeFSDefault(o.hostname), *token;
        if (!host)
            return NULL;
        if (o.start_token[0]) {
            token = PyUnicode_DecodeFSDefault(o.start_token);
            if (!token) {
                Py_DECREF(host);
                return NULL;
            }
        } else {
            token = Py_None;
            Py_INCREF(token);
        }
        /* N steals host and token, also when building fails. */
        return Py_BuildValue("(lNNO)", o.pid, host, token, o.this_process ? Py_True : Py_False);
    }
}

/* Deletes the soft marker whoever holds it (fl_break_lock). */
static PyObject *flpy_break_lock(fl_lock *l) {
    int rc = fl_break_lock(l);
    if (rc != 0)
        return flpy_raise(rc, l);
    Py_RETURN_NONE;
}

/* Release one level, or all with force. The GIL stays held: the core never
 * waits here, and taking it back would cost more than the unlock. */
static PyObject *flpy_release(fl_lock *l, int force) {
    int rc = fl_release(l, force);
    if (rc != 0)
        return flpy_raise(rc, l);
    Py_RETURN_NONE;
}

/* Turns the log bridge on or off (called when the "filelock" logger's
 * DEBUG state changes); off means the core formats nothing. */
static void flpy_set_logging(int on) {
    on = !!on;
    if (on == flpy_logging_on)
        return;
    fl_set_log_handler(on ? flpy_log : NULL, NULL);
    flpy_logging_on = on;
}

static int flpy_logging_enabled(void) {
    return flpy_logging_on;
}
%}

/* ---------------------------------------------------------------------- */
/* asyncio: the event-loop wait hub (filelock/asyncio.py)                  */
/* ---------------------------------------------------------------------- */

/* One hub per event loop, as a capsule (fl_hub_free on collection). A wait
 * is a capsule around flpy_wait, which keeps the Python callback alive
 * until the core calls it (from fl_hub_dispatch, with the GIL held: the
 * hub calls never wait, so the GIL is never released around them) or the
 * wait is cancelled. The callback receives None (won) or the exception the
 * synchronous acquire would have raised. */
%{
#define FLPY_HUB_CAPSULE  "filelock.fl_hub"
#define FLPY_WAIT_CAPSULE "filelock.fl_hub_wait"

typedef struct flpy_wait {
    fl_hub_waiter *w; /* NULL once completed or cancelled */
    PyObject *cb;     /* strong reference while pending */
} flpy_wait;

static void flpy_hub_capsule_free(PyObject *capsule) {
    fl_hub *hub = (fl_hub *)PyCapsule_GetPointer(capsule, FLPY_HUB_CAPSULE);
    /* Pending waits end with FL_ECANCELED through their callbacks, which
     * must not run Python code while the interpreter is going away. */
    if (hub && !flpy_finalizing())
        fl_hub_free(hub);
}

static void flpy_wait_capsule_free(PyObject *capsule) {
    flpy_wait *fw = (flpy_wait *)PyCapsule_GetPointer(capsule, FLPY_WAIT_CAPSULE);
    if (!fw)
        return;
    if (fw->w)
        (void)fl_hub_cancel(fw->w);
    Py_XDECREF(fw->cb);
    free(fw);
}

/* The first exception a completion callback raised during a dispatch (an
 * asynchronous KeyboardInterrupt: ours raise nothing else), re-raised by
 * flpy_hub_dispatch once the core's dispatch is over. The GIL guards it. */
static PyObject *flpy_cb_et, *flpy_cb_ev, *flpy_cb_tb;
static int flpy_dispatching;

static void flpy_hub_done(void *data, fl_lock *l, uint64_t owner, int rc) {
    flpy_wait *fw = data;
    PyObject *cb = fw->cb, *arg, *res, *et, *ev, *tb;
    fw->w = NULL;
    fw->cb = NULL;
    if (!cb)
        return;
    /* Keep an exception already propagating (a hub freed by a deallocator)
     * intact. */
    PyErr_Fetch(&et, &ev, &tb);
    if (rc == 0) {
        arg = Py_None;
        Py_INCREF(arg);
    } else {
        PyObject *t, *v, *b;
        flpy_raise(rc, l);
        PyErr_Fetch(&t, &v, &b);
        PyErr_NormalizeException(&t, &v, &b);
        Py_XDECREF(t);
        Py_XDECREF(b);
        arg = v ? v : (Py_INCREF(Py_None), Py_None);
    }
    res = PyObject_CallOneArg(cb, arg);
    if (!res) {
        /* The callback is ours and does not raise, but an asynchronous
         * exception (KeyboardInterrupt from a signal handler) can land in
         * it: then nobody learnt of the win, so nobody would release it.
         * Give it back, as for any win that cannot be collected. */
        if (rc == 0)
            (void)fl_release_as(l, owner, 0);
        if (flpy_dispatching && !flpy_cb_et)
            PyErr_Fetch(&flpy_cb_et, &flpy_cb_ev, &flpy_cb_tb);
        else
            PyErr_WriteUnraisable(cb);
    }
    Py_XDECREF(res);
    Py_DECREF(arg);
    Py_DECREF(cb);
    PyErr_Restore(et, ev, tb);
}

static fl_hub *flpy_hub_get(PyObject *o) {
    return (fl_hub *)PyCapsule_GetPointer(o, FLPY_HUB_CAPSULE);
}
%}

%inline %{
static PyObject *flpy_hub_new(void) {
    fl_hub *hub;
    PyObject *cap;
    int rc = fl_hub_new(&hub);
    if (rc != 0)
        return flpy_raise(rc, NULL);
    cap = PyCapsule_New(hub, FLPY_HUB_CAPSULE, flpy_hub_capsule_free);
    if (!cap)
        fl_hub_free(hub);
    return cap;
}

static PyObject *flpy_hub_fd(PyObject *hub_cap) {
    fl_hub *hub = flpy_hub_get(hub_cap);
    return hub ? PyLong_FromLong(fl_hub_fd(hub)) : NULL;
}

static PyObject *flpy_hub_timeout(PyObject *hub_cap) {
    fl_hub *hub = flpy_hub_get(hub_cap);
    return hub ? PyFloat_FromDouble(fl_hub_timeout(hub)) : NULL;
}

static PyObject *flpy_hub_dispatch(PyObject *hub_cap) {
    fl_hub *hub = flpy_hub_get(hub_cap);
    int rc;
    if (!hub)
        return NULL;
    flpy_dispatching++;
    rc = fl_hub_dispatch(hub);
    flpy_dispatching--;
    if (flpy_cb_et && !flpy_dispatching) {
        PyErr_Restore(flpy_cb_et, flpy_cb_ev, flpy_cb_tb);
        flpy_cb_et = flpy_cb_ev = flpy_cb_tb = NULL;
        return NULL;
    }
    if (rc < 0)
        return flpy_raise(rc, NULL);
    return PyLong_FromLong(rc);
}

/* Starts an acquire for the owner token: None when won at once (or by
 * recursion), else the pending wait (a capsule for flpy_hub_cancel) whose
 * callback gets None or the exception. Raises what fl_acquire_with would. */
static PyObject *flpy_hub_acquire(PyObject *hub_cap, fl_lock *l, unsigned long long owner,
                                  int shared, PyObject *timeout, PyObject *blocking,
                                  PyObject *poll_interval, PyObject *cb) {
    fl_hub *hub = flpy_hub_get(hub_cap);
    fl_acquire_args a;
    flpy_wait *fw;
    PyObject *cap;
    int rc;
    if (!hub)
        return NULL;
    fl_acquire_args_init(&a);
    a.shared = shared;
    if (flpy_opt_double(timeout, FL_ARG_TIMEOUT, &a.timeout, &a.set) < 0 ||
        flpy_opt_double(poll_interval, FL_ARG_POLL_INTERVAL, &a.poll_interval, &a.set) < 0)
        return NULL;
    if (blocking != Py_None) {
        if ((a.blocking = PyObject_IsTrue(blocking)) < 0)
            return NULL;
        a.set |= FL_ARG_BLOCKING;
    }
    fw = calloc(1, sizeof *fw);
    if (!fw)
        return PyErr_NoMemory();
    /* The capsule first: making it cannot fail once the wait is pending. */
    cap = PyCapsule_New(fw, FLPY_WAIT_CAPSULE, flpy_wait_capsule_free);
    if (!cap) {
        free(fw);
        return NULL;
    }
    Py_INCREF(cb);
    fw->cb = cb;
    rc = fl_hub_acquire(hub, l, (uint64_t)owner, &a, flpy_hub_done, fw, &fw->w);
    if (rc != 0 || !fw->w) {
        Py_CLEAR(fw->cb);
        Py_DECREF(cap);
        if (rc != 0)
            return flpy_raise(rc, l);
        Py_RETURN_NONE;
    }
    return cap;
}

/* Cancels a pending wait; nothing when it already completed. Returns
 * whether it was still pending. */
static PyObject *flpy_hub_cancel(PyObject *wait_cap) {
    flpy_wait *fw = (flpy_wait *)PyCapsule_GetPointer(wait_cap, FLPY_WAIT_CAPSULE);
    if (!fw)
        return NULL;
    if (!fw->w)
        Py_RETURN_FALSE;
    (void)fl_hub_cancel(fw->w);
    fw->w = NULL;
    Py_CLEAR(fw->cb);
    Py_RETURN_TRUE;
}

static PyObject *flpy_hub_release(PyObject *hub_cap, fl_lock *l, unsigned long long owner,
                                  int force) {
    fl_hub *hub = hub_cap == Py_None ? NULL : flpy_hub_get(hub_cap);
    int rc;
    if (!hub && hub_cap != Py_None)
        return NULL;
    rc = hub ? fl_hub_release(hub, l, (uint64_t)owner, force)
             : fl_release_as(l, (uint64_t)owner, force);
    if (rc != 0)
        return flpy_raise(rc, l);
    Py_RETURN_NONE;
}

/* One attempt for the owner token, never waiting: True (won, or held by
 * it already), False (held by someone else); other failures raise. */
static PyObject *flpy_try_acquire_as(fl_lock *l, unsigned long long owner, int shared) {
    int rc = fl_try_acquire_as(l, (uint64_t)owner, shared);
    if (rc == FL_ETIMEOUT)
        Py_RETURN_FALSE;
    if (rc != 0)
        return flpy_raise(rc, l);
    Py_RETURN_TRUE;
}

static int flpy_lock_counter_as(fl_lock *l, unsigned long long owner) {
    return fl_lock_counter_as(l, (uint64_t)owner);
}
%}
