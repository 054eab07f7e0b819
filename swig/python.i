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
/* filelock.LeaseSettingsMismatch, set by flpy_setup_lease (filelock/_lease.py). */
static PyObject *flpy_mismatch_cls;
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
    case FL_ELEASEMISMATCH:
        PyErr_SetString(flpy_mismatch_cls ? flpy_mismatch_cls : PyExc_ValueError, msg);
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
    fl_lock *l = (fl_lock *)PyCapsule_GetPointer(capsule, FLPY_CAPSULE);
    PyObject *cb = (PyObject *)PyCapsule_GetContext(capsule);
    if (l && fl_get_lease_duration(l) > 0) {
        /* Freeing a lease waits for a compromise callback in progress,
         * which needs the GIL (flpy_compromise). */
        Py_BEGIN_ALLOW_THREADS
        fl_lock_free(l);
        Py_END_ALLOW_THREADS
    } else {
        fl_lock_free(l);
    }
    Py_XDECREF(cb);
}

/* Compromise callback (a thread of the core's, one per loss): hands (reason, errno, path)
 * to the callable stored as the capsule's context (filelock/_lease.py). */
static void flpy_compromise(void *data, fl_lock *lock, fl_lease_loss reason, int os_errno,
                            const char *path) {
    PyObject *fn = data, *res, *p;
    PyGILState_STATE st;
    (void)lock;
    if (flpy_finalizing())
        return;
    st = PyGILState_Ensure();
    p = PyUnicode_DecodeFSDefault(path);
    res = p ? PyObject_CallFunction(fn, "siO", fl_lease_loss_name(reason), os_errno, p) : NULL;
    Py_XDECREF(p);
    if (!res)
        PyErr_WriteUnraisable(fn); /* a callback's error must not kill the heartbeat */
    Py_XDECREF(res);
    PyGILState_Release(st);
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

/* The soft lock with a lifetime, or a lease (filelock/_lease.py): the
 * options besides flpy_new's. */
static PyObject *flpy_new_lease(const char *path_bytes, Py_ssize_t path_len, int kind,
                                double timeout, int blocking, double poll_interval, int mode,
                                int thread_local, int singleton, double lifetime,
                                double lease_duration, double heartbeat_interval) {
    fl_options o;
    fl_lock *l = NULL;
    int rc;
    PyObject *cap;
    fl_options_init(&o);
    o.kind = kind ? FL_SOFT : FL_KERNEL;
    o.timeout = timeout;
    o.blocking = blocking;
    o.poll_interval = poll_interval;
    o.mode = mode;
    o.thread_local = thread_local;
    o.singleton = singleton;
    o.lifetime = lifetime;
    o.lease_duration = lease_duration;
    o.heartbeat_interval = heartbeat_interval;
    rc = fl_lock_new_n(&l, path_bytes, (size_t)path_len, &o);
    if (rc != 0)
        return flpy_raise(rc, NULL);
    fl_set_cancel(l, flpy_cancel, NULL);
    cap = PyCapsule_New(l, FLPY_CAPSULE, flpy_capsule_free);
    if (!cap)
        fl_lock_free(l);
    return cap;
}

/* Installs fn (a callable taking (reason, errno, path)) as the lease's
 * compromise callback; the capsule keeps it alive. */
static PyObject *flpy_set_compromise(PyObject *capsule, PyObject *fn) {
    fl_lock *l = (fl_lock *)PyCapsule_GetPointer(capsule, FLPY_CAPSULE);
    PyObject *old;
    if (!l)
        return NULL;
    old = (PyObject *)PyCapsule_GetContext(capsule);
    Py_INCREF(fn);
    if (PyCapsule_SetContext(capsule, fn) != 0) {
        Py_DECREF(fn);
        return NULL;
    }
    fl_set_compromise_callback(l, flpy_compromise, fn);
    Py_XDECREF(old);
    Py_RETURN_NONE;
}

static PyObject *flpy_setup_lease(PyObject *mismatch_cls) {
    Py_INCREF(mismatch_cls);
    Py_XSETREF(flpy_mismatch_cls, mismatch_cls);
    Py_RETURN_NONE;
}

/* Release of a lease or lifetime hold: the GIL is released (the core waits
 * for a compromise callback in progress, which takes it); FL_ELOST is
 * returned as its message instead of raised (the pure-Python filelock's
 * release never raises for it; the holder learns it from the compromise),
 * None otherwise. */
static PyObject *flpy_release_lease(fl_lock *l, int force) {
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = fl_release(l, force);
    Py_END_ALLOW_THREADS
    if (rc == FL_ELOST)
        return PyUnicode_DecodeFSDefault(fl_last_error());
    if (rc != 0)
        return flpy_raise(rc, l);
    Py_RETURN_NONE;
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
    /* A SoftFileLock whose lifetime let a contender take it over: released
     * all the same, and silently, as the pure-Python filelock does. */
    if (rc != 0 && rc != FL_ELOST)
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
