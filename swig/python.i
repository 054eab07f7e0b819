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
#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifndef _WIN32
#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>
#endif

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

%typemap(in) fl_lock *, const fl_lock * {
    $1 = ($1_ltype)PyCapsule_GetPointer($input, FLPY_CAPSULE);
    if (!$1)
        SWIG_fail;
}

/* fl_options (filelock.i) travels as a capsule too, for the same reason:
 * SWIG's pointer objects without proxy classes find no destructor. */
%ignore fl_options::~fl_options;
%typemap(out) fl_options *, struct fl_options * {
    if (!$1) {
        PyErr_NoMemory();
        SWIG_fail;
    }
    $result = PyCapsule_New($1, FLPY_OPTIONS_CAPSULE, flpy_options_free);
    if (!$result) {
        free($1);
        SWIG_fail;
    }
}
%typemap(in) fl_options *, const fl_options *, struct fl_options *, const struct fl_options * {
    $1 = ($1_ltype)PyCapsule_GetPointer($input, FLPY_OPTIONS_CAPSULE);
    if (!$1)
        SWIG_fail;
}

/* The functions filelock.i lists as FL_RAISING raise instead of returning
 * a code (all take the handle first: the error names its path). */
%typemap(out) int FL_RAISING {
    /* FL_ELOST (fl_release only): the hold is released all the same, and
     * the pure-Python filelock's release never raises for it -- a
     * SoftFileLock whose lifetime let a contender take it over is released
     * silently; a SoftFileLease learns it through flpy_release_lease. */
    if ($1 < 0 && $1 != FL_ELOST) {
        flpy_raise($1, arg1);
        SWIG_fail;
    }
    $result = Py_None;
    Py_INCREF(Py_None);
}

/* fl_options_check: raises the core's error (ValueError for FL_EINVAL). */
%typemap(out) int FL_CHECKED {
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
#define FLPY_OPTIONS_CAPSULE "filelock.fl_options"

/* Set once from Python (flpy_setup): the Timeout class and the callable
 * receiving formatted log lines. Strong references for the process life. */
static PyObject *flpy_timeout_cls;
static PyObject *flpy_log_sink;
static PyObject *flpy_log_sync; /* re-reads the "filelock" logger's level */
/* filelock.LeaseSettingsMismatch and the callable that hands a lease's loss
 * to its objects, set by flpy_setup_lease (filelock/_lease.py). One sink
 * for the process, never freed: a singleton core handle is shared by
 * objects of several classes (one registry each), so nothing one of them
 * owned may stay installed in the handle after it is gone. */
static PyObject *flpy_mismatch_cls;
static PyObject *flpy_compromise_sink;
static int flpy_logging_on;

static PyObject *flpy_path_obj(fl_lock *l) {
    const char *p = l ? fl_lock_path(l) : NULL;
    return PyUnicode_DecodeFSDefault(p ? p : "");
}

/* Sets OSError for errno @p err on @p filename (a new reference is not
 * taken) as Python's own file functions do -- OSError(errno, strerror,
 * filename), so the subclass (FileNotFoundError, ...), str() and the
 * attributes are what open() gives -- and adds the core's message (which
 * says what the library was doing) as a note where notes exist (3.11+). */
static void flpy_set_oserror(int err, PyObject *filename, const char *core_msg) {
    PyObject *exc = PyObject_CallFunction(PyExc_OSError, "isO", err, strerror(err), filename);
    if (!exc)
        return;
#if PY_VERSION_HEX >= 0x030B0000
    if (core_msg && core_msg[0]) {
        PyObject *r = PyObject_CallMethod(exc, "add_note", "s", core_msg);
        if (!r) {
            Py_DECREF(exc);
            return;
        }
        Py_DECREF(r);
    }
#else
    (void)core_msg;
#endif
    PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
    Py_DECREF(exc);
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
    case FL_ENOTREG:
        /* The core's own check (a FIFO, socket or device at the lock path)
         * has no OS errno; an OSError must still carry one and the path,
         * as every other: EINVAL, what flock(2) gives the pure package's
         * FileLock on a FIFO; the note is the core's reason with its code,
         * as the message of an OSError without an errno would end. */
        if (err == 0) {
            PyObject *note = PyUnicode_FromFormat("%s (%s)", msg, fl_err_name(code));
            path = flpy_path_obj(l);
            if (note && path)
                flpy_set_oserror(EINVAL, path, PyUnicode_AsUTF8(note));
            Py_XDECREF(note);
            Py_XDECREF(path);
            return NULL;
        }
        break;
    default:
        break;
    }
    if (err != 0) {
        /* OSError(errno, message, filename) picks the subclass users catch:
         * FileNotFoundError, PermissionError, IsADirectoryError, ... */
        path = l ? flpy_path_obj(l) : (Py_INCREF(Py_None), Py_None);
        if (!path)
            return NULL;
        flpy_set_oserror(err, path, msg);
        Py_DECREF(path);
        return NULL;
    }
    if (code == FL_EINVAL) {
        PyErr_SetString(PyExc_ValueError, msg);
        return NULL;
    }
    PyErr_Format(PyExc_OSError, "%s (%s)", msg, fl_err_name(code));
    return NULL;
}

/* The signal wake-up of a wait in the main thread (issue 17). Python's C
 * signal handler writes a byte to the descriptor of signal.set_wakeup_fd()
 * whichever thread the signal lands on; the core polls it with the lock's
 * own wake-ups (FL_ARG_WAKE_FD), so Ctrl-C ends the wait at once, and the
 * cancel callback (a GIL round-trip) runs only on real wake-ups instead of
 * every 50 ms. The descriptor is a pipe of our own (an eventfd would refuse
 * the handler's one-byte write), installed only for the wait. A program's
 * own wake-up descriptor (asyncio's, trio's) is the "target": every byte
 * the handler writes during the wait is passed on to it (its loop is not
 * running while this thread waits: it reads them when it resumes), and it
 * is put back when the wait ends. A program that sets (or clears) its
 * descriptor during the wait (a signal handler, cancel_check) changes the
 * target: the callback re-installs our pipe after running Python code, or
 * the rest of the wait would be deaf to signals. One pipe per process: a
 * forked child gets a fresh pipe at the same descriptor numbers (the
 * parent's is shared with it, so each would steal the other's bytes).
 * Limit: signal.set_wakeup_fd cannot read warn_on_full_buffer, so the
 * target is put back with the default (True). */
static unsigned long flpy_cancel_calls; /* how often the cancel callback ran (tests) */
static int flpy_wake_rfd = -1;
/* Waits of the main thread on our pipe under way: a signal handler run by
 * the cancel callback may itself wait for a lock (nested, same pipe). */
static int flpy_wake_depth;
static int flpy_wake_target = -1; /* the program's descriptor during a wait */
#ifdef _WIN32
/* No Python lane on Windows: the core ignores FL_ARG_WAKE_FD there anyway. */
static void flpy_wake_drain(int forward) { (void)forward; }
static int flpy_wake_begin(void) { return -1; }
static void flpy_wake_end(int rfd) { (void)rfd; }
static void flpy_wake_recheck(void) {}
static void flpy_wake_child(void) {}
#else
static int flpy_wake_wfd = -1;
static dev_t flpy_wake_dev; /* our pipe's identity: the program may close */
static ino_t flpy_wake_ino; /* our numbers and open its own files there */
static pthread_t flpy_wake_thread; /* the thread whose wait installed our pipe */
/* Set in a forked child whose fork did not come from the waiting thread:
 * the wait is the parent's, the child puts the target back (Python's
 * after-fork hook, flpy_wake_child). */
static int flpy_wake_stale;
static pthread_once_t flpy_wake_once = PTHREAD_ONCE_INIT;

static int flpy_wake_is_ours(int fd);

/* pthread_atfork child handler (async-signal-safe calls only). The pipe is
 * shared with the parent (each would steal the other's bytes): while a wait
 * has it as Python's wake-up descriptor, the child gets its own pipe at the
 * same numbers (Python's descriptor, and a wait the child continues after a
 * fork from the cancel callback, then use the child's pipe); otherwise the
 * child closes its copies and makes a pipe at its first wait. Numbers that
 * are no longer our pipe (the program closed them, maybe reused them) are
 * forgotten, never touched. */
static void flpy_wake_forked(void) {
    int fds[2];
    struct stat st;
    if (flpy_wake_rfd < 0)
        return;
    if (!flpy_wake_is_ours(flpy_wake_rfd) || !flpy_wake_is_ours(flpy_wake_wfd)) {
        flpy_wake_rfd = flpy_wake_wfd = -1;
        return;
    }
    if (flpy_wake_depth == 0) {
        (void)close(flpy_wake_rfd);
        (void)close(flpy_wake_wfd);
        flpy_wake_rfd = flpy_wake_wfd = -1;
        return;
    }
    if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) == 0) {
        (void)dup3(fds[0], flpy_wake_rfd, O_CLOEXEC);
        (void)dup3(fds[1], flpy_wake_wfd, O_CLOEXEC);
        if (fstat(fds[0], &st) == 0) {
            flpy_wake_dev = st.st_dev;
            flpy_wake_ino = st.st_ino;
        }
        (void)close(fds[0]);
        (void)close(fds[1]);
    }
    if (!pthread_equal(pthread_self(), flpy_wake_thread))
        flpy_wake_stale = 1;
}
static void flpy_wake_register(void) { (void)pthread_atfork(NULL, NULL, flpy_wake_forked); }

/* signal.set_wakeup_fd(fd): the previous descriptor, or -2 (error cleared:
 * the wait then keeps the 50 ms cadence). */
static int flpy_set_wakeup_fd(int fd) {
    static PyObject *setter;
    PyObject *r, *arg;
    long old;
    if (!setter) {
        PyObject *mod = PyImport_ImportModule("signal");
        setter = mod ? PyObject_GetAttrString(mod, "set_wakeup_fd") : NULL;
        Py_XDECREF(mod);
        if (!setter) {
            PyErr_Clear();
            return -2;
        }
    }
    arg = PyLong_FromLong(fd);
    r = arg ? PyObject_CallOneArg(setter, arg) : NULL;
    Py_XDECREF(arg);
    old = r ? PyLong_AsLong(r) : -2;
    Py_XDECREF(r);
    if (PyErr_Occurred()) {
        PyErr_Clear();
        return -2;
    }
    return (int)old;
}

/* Reads what the signal handler wrote; with @p forward >= 0, passes it on to
 * that descriptor (the program's own wake-up descriptor). GIL held. */
static void flpy_wake_drain(int forward) {
    char buf[64];
    ssize_t n;
    if (forward == flpy_wake_wfd)
        forward = -1; /* never back into our own pipe */
    while ((n = read(flpy_wake_rfd, buf, sizeof buf)) > 0)
        if (forward >= 0)
            (void)!write(forward, buf, (size_t)n);
}

/* Whether @p fd is still one end of our pipe: a program may have closed
 * every descriptor (a daemon after its fork) and opened its own files at
 * our numbers; a signal byte must never go into them, nor our drain read
 * them. One fstat per end, on the contended path only. */
static int flpy_wake_is_ours(int fd) {
    struct stat st;
    return fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode) && st.st_dev == flpy_wake_dev &&
           st.st_ino == flpy_wake_ino;
}

/* Called with the GIL held before a wait: our read end when our pipe is now
 * the wake-up descriptor (flpy_wake_end must follow), else -1 (not the
 * main thread, no pipe, set_wakeup_fd failed). */
static int flpy_wake_begin(void) {
    int fds[2], old;
    if (!_PyOS_IsMainThread())
        return -1;
    if (flpy_wake_depth > 0) {
        flpy_wake_depth++; /* an outer wait installed it */
        return flpy_wake_rfd;
    }
    if (flpy_wake_rfd >= 0 && !(flpy_wake_is_ours(flpy_wake_rfd) && flpy_wake_is_ours(flpy_wake_wfd)))
        flpy_wake_rfd = flpy_wake_wfd = -1; /* not closed: the numbers are the program's now */
    if (flpy_wake_rfd < 0) {
        struct stat st;
        (void)pthread_once(&flpy_wake_once, flpy_wake_register);
        if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0)
            return -1;
        if (fstat(fds[0], &st) != 0) {
            (void)close(fds[0]);
            (void)close(fds[1]);
            return -1;
        }
        flpy_wake_dev = st.st_dev;
        flpy_wake_ino = st.st_ino;
        flpy_wake_rfd = fds[0];
        flpy_wake_wfd = fds[1];
    }
    /* signal.set_wakeup_fd (PySignal_SetWakeupFd is not exported): it
     * answers the descriptor it replaces, the program's. */
    old = flpy_set_wakeup_fd(flpy_wake_wfd);
    if (old == -2)
        return -1;
    flpy_wake_target = old == flpy_wake_wfd ? -1 : old;
    flpy_wake_thread = pthread_self();
    flpy_wake_depth = 1;
    return flpy_wake_rfd;
}

/* After Python code ran during a wait (signal handlers, cancel_check): if
 * it set or cleared the wake-up descriptor, that is the new target, and our
 * pipe goes back (else later signals would not end the wait). GIL held. */
static void flpy_wake_recheck(void) {
    PyObject *et, *ev, *tb;
    int prev;
    if (flpy_wake_depth <= 0 || !_PyOS_IsMainThread())
        return;
    PyErr_Fetch(&et, &ev, &tb);
    prev = flpy_set_wakeup_fd(flpy_wake_wfd);
    if (prev != -2 && prev != flpy_wake_wfd)
        flpy_wake_target = prev;
    PyErr_Restore(et, ev, tb);
}

/* Ends a wait begun by flpy_wake_begin: the target goes back, with the bytes
 * a signal wrote to our pipe since the last drain. A byte left while there
 * is no target (a signal during a wait that won first) costs the next wait
 * one spare callback, which drains it: not drained here, which would be a
 * system call on every contended acquire. */
static void flpy_wake_end(int rfd) {
    PyObject *et, *ev, *tb;
    int prev;
    if (rfd < 0 || --flpy_wake_depth > 0)
        return;
    PyErr_Fetch(&et, &ev, &tb); /* the wait's own error stays */
    prev = flpy_set_wakeup_fd(flpy_wake_target);
    if (prev == -2 && flpy_wake_target >= 0) {
        /* Refused (the program closed its descriptor during the wait):
         * none rather than our pipe, which nobody would drain. */
        flpy_wake_target = -1;
        prev = flpy_set_wakeup_fd(-1);
    }
    if (prev >= 0 && prev != flpy_wake_wfd) {
        /* Set by Python code after the last callback: keep it. */
        (void)flpy_set_wakeup_fd(prev);
        flpy_wake_target = prev;
    }
    if (flpy_wake_target >= 0)
        flpy_wake_drain(flpy_wake_target);
    flpy_wake_target = -1;
    PyErr_Restore(et, ev, tb);
}

/* Python's after-fork hook in the child: a wait of the parent's main thread
 * was on our pipe when another thread forked: the child has no such wait,
 * so the program's descriptor goes back. */
static void flpy_wake_child(void) {
    if (!flpy_wake_stale)
        return;
    flpy_wake_stale = 0;
    flpy_wake_depth = 0;
    if (flpy_set_wakeup_fd(flpy_wake_target) == -2)
        (void)flpy_set_wakeup_fd(-1); /* refused: see flpy_wake_end */
    flpy_wake_target = -1;
}
#endif

/* Cancel callback, run on the waiting thread without the GIL (at every
 * wake-up, on EINTR and at least every 50 ms). Python's signal handlers
 * only run with the GIL held, so take it briefly and let them run; if one
 * raised (KeyboardInterrupt), stop waiting and leave the exception pending
 * in this thread's state for flpy_acquire to return. */
/* Per-call state of acquire(cancel_check=...). */
typedef struct flpy_cancel_call {
    PyObject *check;  /* the callable, or NULL */
    int by_check;     /* 1: check() returned true (the wait ends as a Timeout) */
} flpy_cancel_call;

/* Runs with the GIL held: follows the logger's level (a wake-up is an event
 * too: "waiting"/"timeout" must be logged if DEBUG was switched on during
 * the wait), runs signal handlers, then the caller's cancel_check. */
static int flpy_cancel_locked(flpy_cancel_call *call, int interrupted) {
    PyObject *r;
    int truth;
    flpy_cancel_calls++;
    if (interrupted && flpy_wake_rfd >= 0 && _PyOS_IsMainThread())
        /* Before the check: a later signal writes again. */
        flpy_wake_drain(flpy_wake_depth > 0 ? flpy_wake_target : -1);
    if (PyErr_CheckSignals() != 0)
        return 1;
    if (flpy_log_sync) {
        /* Logging must not break locking: an error here is reported as
         * unraisable and the wait goes on. What a signal handler raised
         * while it ran (KeyboardInterrupt: not an Exception) ends the wait. */
        r = PyObject_CallNoArgs(flpy_log_sync);
        if (r) {
            Py_DECREF(r);
        } else if (PyErr_ExceptionMatches(PyExc_Exception)) {
            PyErr_WriteUnraisable(flpy_log_sync);
        } else {
            return 1;
        }
    }
    if (!call || !call->check)
        return 0;
    r = PyObject_CallNoArgs(call->check);
    if (!r)
        return 1; /* what cancel_check raised is what the caller sees */
    truth = PyObject_IsTrue(r);
    Py_DECREF(r);
    if (truth < 0)
        return 1;
    if (truth)
        call->by_check = 1;
    return truth;
}

static int flpy_cancel(void *data, int interrupted) {
    PyGILState_STATE st;
    int stop;
    if (flpy_finalizing())
        return 0;
    st = PyGILState_Ensure();
    stop = flpy_cancel_locked((flpy_cancel_call *)data, interrupted);
    if (!stop)
        flpy_wake_recheck(); /* the Python code it ran may have set a wake-up descriptor */
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
    /* The on_acquired callable (if any) is the capsule's context: one
     * reference per capsule, dropped after the core reference it guards. */
    PyObject *hook = (PyObject *)PyCapsule_GetContext(capsule);
    fl_lock *l = (fl_lock *)PyCapsule_GetPointer(capsule, FLPY_CAPSULE);
    if (l && fl_get_lease_duration(l) > 0) {
        /* Freeing a lease waits for a compromise callback in progress,
         * which needs the GIL (flpy_compromise). */
        Py_BEGIN_ALLOW_THREADS
        fl_lock_free(l);
        Py_END_ALLOW_THREADS
    } else {
        fl_lock_free(l);
    }
    Py_XDECREF(hook);
}

/* Set (under the GIL) when the on_acquired hook raised: a hub wait's done
 * callback (flpy_hub_done) then hands that exception to the waiting task
 * instead of leaving it pending in fl_hub_dispatch. */
static int flpy_hook_raised;

/* fl_options.on_acquired: calls the Python hook with the locked descriptor.
 * Runs on the acquiring thread without the GIL; a raising hook leaves its
 * exception pending for flpy_acquire (the core has released the lock). */
static int flpy_on_acquired(void *data, fl_lock *lock, int fd) {
    PyGILState_STATE st;
    PyObject *r;
    int rc = 0;
    (void)lock;
    if (flpy_finalizing())
        return 0;
    st = PyGILState_Ensure();
    r = PyObject_CallFunction((PyObject *)data, "i", fd);
    if (r) {
        Py_DECREF(r);
    } else {
        rc = FL_ECANCELED;
        flpy_hook_raised = 1;
    }
    PyGILState_Release(st);
    return rc;
}

/* Compromise callback (a thread of the core's, one per loss): hands (lock id, reason,
 * errno, path) to the process's sink (filelock/_lease.py), which finds the
 * objects of that handle. */
static void flpy_compromise(void *data, fl_lock *lock, fl_lease_loss reason, int os_errno,
                            const char *path) {
    PyObject *fn = flpy_compromise_sink, *res, *p;
    PyGILState_STATE st;
    (void)data;
    if (!fn || flpy_finalizing())
        return;
    st = PyGILState_Ensure();
    p = PyUnicode_DecodeFSDefault(path);
    res = p ? PyObject_CallFunction(fn, "KsiO", (unsigned long long)fl_lock_id(lock),
                                    fl_lease_loss_name(reason), os_errno, p)
            : NULL;
    Py_XDECREF(p);
    if (!res)
        PyErr_WriteUnraisable(fn); /* a callback's error must not kill the heartbeat */
    Py_XDECREF(res);
    PyGILState_Release(st);
}

static void flpy_options_free(PyObject *capsule) {
    /* The on_acquired callable (flpy_options_on_acquired), if any. */
    PyObject *hook = (PyObject *)PyCapsule_GetContext(capsule);
    free(PyCapsule_GetPointer(capsule, FLPY_OPTIONS_CAPSULE));
    Py_XDECREF(hook);
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

/* After a successful acquire: the warning the pure-Python package gives
 * when a FileLock falls back to the soft lock (fallback_to_soft). */
static PyObject *flpy_acquired(fl_lock *l, int kind_before) {
    if (kind_before == FL_KERNEL && fl_lock_kind(l) == FL_SOFT &&
        PyErr_WarnEx(PyExc_UserWarning,
                     "flock not supported on this filesystem, falling back to SoftFileLock",
                     2) < 0) {
        fl_release(l, 0);
        return NULL;
    }
    Py_RETURN_NONE;
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
/* How often the cancel callback has run in this process (the tests prove
 * with it that a wait is not sliced). */
static unsigned long flpy_cancel_count(void) { return flpy_cancel_calls; }

/* os.register_at_fork(after_in_child=...) (filelock/_api.py): a child forked
 * by another thread during the main thread's wait gets the program's signal
 * wake-up descriptor back. */
static void flpy_wake_after_fork(void) { flpy_wake_child(); }

/* Module setup from the Python layer: the Timeout class and the log sink. */
static PyObject *flpy_setup(PyObject *timeout_cls, PyObject *log_sink, PyObject *log_sync) {
    PyObject *old_cls = flpy_timeout_cls, *old_sink = flpy_log_sink, *old_sync = flpy_log_sync;
    Py_INCREF(timeout_cls);
    Py_INCREF(log_sink);
    Py_INCREF(log_sync);
    flpy_timeout_cls = timeout_cls;
    flpy_log_sink = log_sink;
    flpy_log_sync = log_sync;
    Py_XDECREF(old_cls);
    Py_XDECREF(old_sink);
    Py_XDECREF(old_sync);
    Py_RETURN_NONE;
}

/* Sets fl_options.singleton_scope on @p opts_cap to @p scope (a lock
 * class): the pure-Python package keeps one singleton per class, so a
 * subclass's singleton on a lock file is another lock than FileLock's. Not
 * referenced: the class outlives its handles, each held by its instances
 * (which keep their class alive), and the core only compares the pointer. */
static PyObject *flpy_options_singleton_scope(PyObject *opts_cap, PyObject *scope) {
    fl_options *o = (fl_options *)PyCapsule_GetPointer(opts_cap, FLPY_OPTIONS_CAPSULE);
    if (!o)
        return NULL;
    o->singleton_scope = scope;
    Py_RETURN_NONE;
}

/* Sets fl_options.on_acquired on @p opts_cap (a new options capsule) to call
 * @p hook with the locked descriptor. The options capsule keeps a reference
 * to the callable (its context) until it is freed; flpy_new takes one more
 * for the handle. The callable is the hook's data: equal settings for a
 * singleton mean the same callable object. */
static PyObject *flpy_options_on_acquired(PyObject *opts_cap, PyObject *hook) {
    fl_options *o = (fl_options *)PyCapsule_GetPointer(opts_cap, FLPY_OPTIONS_CAPSULE);
    PyObject *old;
    if (!o)
        return NULL;
    if (!PyCallable_Check(hook)) {
        PyErr_Format(PyExc_TypeError, "on_acquired must be callable, not %.200s",
                     Py_TYPE(hook)->tp_name);
        return NULL;
    }
    old = (PyObject *)PyCapsule_GetContext(opts_cap);
    Py_INCREF(hook);
    if (PyCapsule_SetContext(opts_cap, hook) < 0) {
        Py_DECREF(hook);
        return NULL;
    }
    Py_XDECREF(old);
    o->on_acquired = flpy_on_acquired;
    o->on_acquired_data = hook;
    Py_RETURN_NONE;
}

static PyObject *flpy_new(const char *path_bytes, Py_ssize_t path_len, const fl_options *opts) {
    fl_lock *l = NULL;
    int rc;
    rc = fl_lock_new_n(&l, path_bytes, (size_t)path_len, opts);
    if (rc != 0) {
        /* No handle yet: name the path in the error from the bytes given. */
        int err = fl_last_errno();
        if (err != 0) {
            PyObject *p = PyUnicode_DecodeFSDefaultAndSize(path_bytes, path_len);
            if (p)
                flpy_set_oserror(err, p, fl_last_error());
            Py_XDECREF(p);
            return NULL;
        }
        /* Python's own words for a NUL in a path (os.open, open()). */
        if (rc == FL_EINVAL && memchr(path_bytes, 0, (size_t)path_len)) {
            PyErr_SetString(PyExc_ValueError, "embedded null byte");
            return NULL;
        }
        return flpy_raise(rc, NULL);
    }
    /* Consulted only while this handle waits; runs Python's signal
     * handlers. Also makes wait-forever interruptible in the core. */
    fl_set_cancel(l, flpy_cancel, NULL);
    {
        PyObject *cap = PyCapsule_New(l, FLPY_CAPSULE, flpy_capsule_free);
        if (!cap) {
            fl_lock_free(l);
            return NULL;
        }
        /* Only flpy_options_on_acquired sets the hook: its data is a
         * callable, which the handle keeps alive as long as it lives. */
        if (opts->on_acquired == flpy_on_acquired) {
            Py_INCREF((PyObject *)opts->on_acquired_data);
            PyCapsule_SetContext(cap, opts->on_acquired_data);
        }
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
    int rc, kind_before = fl_lock_kind(l), wake = -1;
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
    if (a.blocking && (!(a.set & FL_ARG_TIMEOUT) || a.timeout != 0) && fl_lock_counter(l) == 0) {
        /* A wait may follow. Only the main thread runs signal handlers: it
         * waits on the signal wake-up pipe, set up only once one attempt
         * has failed (setting it costs two system calls, too many for every
         * uncontended acquire). With the log bridge on, the wait keeps the
         * 50 ms cadence (one attempt first would log twice). Other threads
         * keep it too: their callback follows the logger's level during
         * the wait (test_log_level_switched_on_during_wait). */
        if (_PyOS_IsMainThread() && !flpy_logging_on) {
            fl_acquire_args once;
            if ((rc = fl_acquire_args_resolve(l, &a, &a)) != 0)
                return flpy_raise(rc, l);
            if (isinf(a.deadline) && a.deadline < 0)
                goto wait; /* one attempt anyway */
            once = a;
            once.deadline = -INFINITY;
            Py_BEGIN_ALLOW_THREADS
            rc = fl_acquire_with(l, &once);
            Py_END_ALLOW_THREADS
            if (rc != FL_ETIMEOUT)
                goto done;
            if ((wake = flpy_wake_begin()) >= 0) {
                a.wake_fd = wake;
                /* A signal that landed before our pipe was installed (during
                 * the attempt above, the GIL released) wrote no byte to it:
                 * its handler runs now, or the wait would not see it. */
                if (PyErr_CheckSignals() != 0) {
                    flpy_wake_end(wake);
                    return NULL;
                }
                flpy_wake_recheck();
            }
        }
    }
wait:
    Py_BEGIN_ALLOW_THREADS
    rc = fl_acquire_with(l, &a);
    Py_END_ALLOW_THREADS
    flpy_wake_end(wake);
done:
    if (rc != 0)
        return flpy_raise(rc, l);
    return flpy_acquired(l, kind_before);
}

/* As flpy_acquire, with the caller's cancel_check (a callable) consulted
 * at every wake-up of this call only (FL_ARG_CANCEL): a true result ends
 * the wait and raises Timeout, as the pure-Python filelock does; what it
 * raises propagates. Signal handlers still run (Ctrl-C). */
static PyObject *flpy_acquire_cancel(fl_lock *l, int shared, PyObject *timeout,
                                     PyObject *blocking, PyObject *poll_interval,
                                     PyObject *cancel_check) {
    fl_acquire_args a;
    flpy_cancel_call call;
    int rc, kind_before = fl_lock_kind(l);
    if (!PyCallable_Check(cancel_check)) {
        PyErr_Format(PyExc_TypeError, "cancel_check must be callable, not %.200s",
                     Py_TYPE(cancel_check)->tp_name);
        return NULL;
    }
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
    call.check = cancel_check;
    call.by_check = 0;
    a.cancel = flpy_cancel;
    a.cancel_data = &call;
    a.set |= FL_ARG_CANCEL;
    Py_INCREF(cancel_check); /* alive while the wait runs without the GIL */
    Py_BEGIN_ALLOW_THREADS
    rc = fl_acquire_with(l, &a);
    Py_END_ALLOW_THREADS
    Py_DECREF(cancel_check);
    if (rc == FL_ECANCELED && call.by_check && !PyErr_Occurred())
        rc = FL_ETIMEOUT;
    if (rc != 0)
        return flpy_raise(rc, l);
    return flpy_acquired(l, kind_before);
}

/* lock_descriptor(fd, blocking, poll_interval) -> bool: the core's
 * fl_lock_descriptor on a descriptor the caller owns (anything
 * PyObject_AsFileDescriptor takes, as fcntl.flock does). The wait runs
 * without the GIL; signal handlers run when a signal interrupts it. OS
 * errors raise OSError(errno, strerror) as fcntl.flock does. */
static PyObject *flpy_descriptor_error(int rc, PyObject *poll_interval) {
    int err = fl_last_errno();
    if (PyErr_Occurred())
        return NULL;
    if (rc == FL_EINVAL) {
        /* The core judged it; the user's own value is shown, as str() shows it. */
        PyErr_Format(PyExc_ValueError, "poll_interval must be finite and greater than 0, got %S",
                     poll_interval);
        return NULL;
    }
    if (rc == FL_ENOTSUP && err == 0)
        err = ENOSYS;
    if (err != 0) {
        errno = err;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    return flpy_raise(rc, NULL);
}

static PyObject *flpy_lock_descriptor(PyObject *fd_obj, int blocking, PyObject *poll_interval) {
    int fd = PyObject_AsFileDescriptor(fd_obj), rc;
    double poll;
    if (fd < 0)
        return NULL;
    poll = PyFloat_AsDouble(poll_interval);
    if (poll == -1.0 && PyErr_Occurred())
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    rc = fl_lock_descriptor(fd, blocking, poll, flpy_cancel, NULL);
    Py_END_ALLOW_THREADS
    if (rc == 0)
        Py_RETURN_TRUE;
    if (rc == FL_ETIMEOUT && !blocking)
        Py_RETURN_FALSE;
    return flpy_descriptor_error(rc, poll_interval);
}

static PyObject *flpy_unlock_descriptor(PyObject *fd_obj) {
    int fd = PyObject_AsFileDescriptor(fd_obj), rc;
    if (fd < 0)
        return NULL;
    rc = fl_unlock_descriptor(fd);
    if (rc != 0)
        return flpy_descriptor_error(rc, Py_None);
    Py_RETURN_NONE;
}

/* The holder as (pid, hostname, start_token or None, this_process), or
 * None when fl__swig_owner() has no answer (free, or a holder that cannot
 * be told). Other failures raise. */
static PyObject *flpy_owner(fl_lock *l) {
    fl_owner o;
    int unknown;
    int rc = fl__swig_owner(l, &o, &unknown);
    PyObject *host, *token;
    if (rc == 0)
        Py_RETURN_NONE;
    if (rc < 0)
        return flpy_raise(rc, l);
    /* The record's bytes are whatever the holder wrote: decode like a
     * path, so that no byte sequence makes inspection fail. */
    host = PyUnicode_DecodeFSDefault(o.hostname);
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

/* Sends the handle's lease losses to the sink (flpy_setup_lease). */
static PyObject *flpy_set_compromise(fl_lock *l) {
    fl_set_compromise_callback(l, flpy_compromise, NULL);
    Py_RETURN_NONE;
}

static PyObject *flpy_setup_lease(PyObject *mismatch_cls, PyObject *sink) {
    Py_INCREF(mismatch_cls);
    Py_XSETREF(flpy_mismatch_cls, mismatch_cls);
    Py_INCREF(sink);
    Py_XSETREF(flpy_compromise_sink, sink);
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
    /* A weak reference to the asyncio future a win completes directly
     * (flpy_hub_acquire_fut), or NULL. Weak for the reason the callback
     * holds its future weakly (asyncio.py): the task holds this wait. */
    PyObject *fut;
    /* The lock's capsule while pending: a hook may end the waiting
     * coroutine (its frame held the lock) during the attempt on it. */
    PyObject *lock_cap;
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
    Py_XDECREF(fw->fut);
    Py_XDECREF(fw->lock_cap);
    free(fw);
}

/* The first exception a completion callback raised during a dispatch (an
 * asynchronous KeyboardInterrupt: ours raise nothing else), re-raised by
 * flpy_hub_dispatch once the core's dispatch is over. The GIL guards it. */
static PyObject *flpy_cb_et, *flpy_cb_ev, *flpy_cb_tb;
static int flpy_dispatching;

/* A win's fast path: the future's result set from here, without calling
 * the Python callback (a frame, a weak reference call and fut.done() less
 * on every wake-up). 1: done; 0: use the callback (no future, the future is
 * gone, done or its loop closed -- the callback gives the win back); -1: an
 * asynchronous exception (KeyboardInterrupt) landed in set_result: handled
 * as one landing in the callback. */
static int flpy_hub_set_result(flpy_wait *fw) {
    static PyObject *name;
    PyObject *fut, *res;
    if (!fw->fut)
        return 0;
    if (!name && !(name = PyUnicode_InternFromString("set_result"))) {
        PyErr_Clear();
        return 0;
    }
#if PY_VERSION_HEX >= 0x030D0000
    /* PyWeakref_GetObject is deprecated from 3.13 (a borrowed reference). */
    if (PyWeakref_GetRef(fw->fut, &fut) <= 0) {
        PyErr_Clear();
        return 0;
    }
#else
    fut = PyWeakref_GetObject(fw->fut);
    if (!fut || fut == Py_None) {
        PyErr_Clear();
        return 0;
    }
    Py_INCREF(fut);
#endif
    res = PyObject_CallMethodOneArg(fut, name, Py_None);
    Py_DECREF(fut);
    if (res) {
        Py_DECREF(res);
        return 1;
    }
    /* InvalidStateError (cancelled meanwhile) or RuntimeError (its loop is
     * closed) are Exceptions; KeyboardInterrupt and SystemExit are not. */
    if (PyErr_ExceptionMatches(PyExc_Exception)) {
        PyErr_Clear();
        return 0;
    }
    return -1;
}

static void flpy_hub_done_impl(flpy_wait *fw, fl_lock *l, uint64_t owner, int rc);

static void flpy_hub_done(void *data, fl_lock *l, uint64_t owner, int rc) {
    flpy_wait *fw = data;
    /* Dropped last: the callback may drop the other references to l. */
    PyObject *lock_cap = fw->lock_cap;
    fw->lock_cap = NULL;
    flpy_hub_done_impl(fw, l, owner, rc);
    Py_XDECREF(lock_cap);
}

static void flpy_hub_done_impl(flpy_wait *fw, fl_lock *l, uint64_t owner, int rc) {
    PyObject *cb = fw->cb, *arg, *res, *et, *ev, *tb;
    fw->w = NULL;
    fw->cb = NULL;
    if (!cb)
        return;
    if (rc == 0 && fw->fut) {
        int fast;
        PyErr_Fetch(&et, &ev, &tb);
        fast = flpy_hub_set_result(fw);
        Py_CLEAR(fw->fut);
        if (fast != 0) {
            if (fast < 0) {
                /* As for a callback that raised, below. */
                (void)fl_release_as(l, owner, 0);
                if (flpy_dispatching && !flpy_cb_et)
                    PyErr_Fetch(&flpy_cb_et, &flpy_cb_ev, &flpy_cb_tb);
                else
                    PyErr_WriteUnraisable(cb);
            }
            Py_DECREF(cb);
            PyErr_Restore(et, ev, tb);
            return;
        }
        PyErr_Restore(et, ev, tb);
    }
    if (rc != 0 && flpy_hook_raised && PyErr_Occurred()) {
        /* The on_acquired hook raised inside this dispatch: that exception
         * is the wait's result (the core released the lock). */
        PyObject *t, *b;
        flpy_hook_raised = 0;
        et = ev = tb = NULL;
        PyErr_Fetch(&t, &arg, &b);
        PyErr_NormalizeException(&t, &arg, &b);
        if (b && arg)
            PyException_SetTraceback(arg, b);
        Py_XDECREF(t);
        Py_XDECREF(b);
        if (!arg) {
            arg = Py_None;
            Py_INCREF(arg);
        }
        goto call;
    }
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
call:
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
    flpy_hook_raised = 0;
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

%}

%{
/* Starts an acquire for the owner token: None when won at once (or by
 * recursion), else the pending wait (a capsule for flpy_hub_cancel) whose
 * callback gets None or the exception. Raises what fl_acquire_with would. */
static PyObject *flpy_hub_acquire_impl(PyObject *hub_cap, PyObject *lock_cap,
                                       unsigned long long owner, int shared, PyObject *timeout,
                                       PyObject *blocking, PyObject *poll_interval, PyObject *cb,
                                       PyObject *fut) {
    fl_hub *hub = flpy_hub_get(hub_cap);
    fl_lock *l = (fl_lock *)PyCapsule_GetPointer(lock_cap, FLPY_CAPSULE);
    fl_acquire_args a;
    flpy_wait *fw;
    PyObject *cap;
    int rc;
    if (!hub || !l)
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
    if (fut && !(fw->fut = PyWeakref_NewRef(fut, NULL))) {
        Py_DECREF(cap);
        return NULL;
    }
    Py_INCREF(cb);
    fw->cb = cb;
    Py_INCREF(lock_cap);
    fw->lock_cap = lock_cap;
    flpy_hook_raised = 0;
    rc = fl_hub_acquire(hub, l, (uint64_t)owner, &a, flpy_hub_done, fw, &fw->w);
    if (rc != 0 || !fw->w) {
        Py_CLEAR(fw->cb);
        Py_CLEAR(fw->fut);
        Py_CLEAR(fw->lock_cap);
        Py_DECREF(cap);
        if (rc != 0)
            return flpy_raise(rc, l);
        Py_RETURN_NONE;
    }
    return cap;
}
%}

%inline %{
static PyObject *flpy_hub_acquire(PyObject *hub_cap, PyObject *lock_cap,
                                  unsigned long long owner, int shared, PyObject *timeout,
                                  PyObject *blocking, PyObject *poll_interval, PyObject *cb) {
    return flpy_hub_acquire_impl(hub_cap, lock_cap, owner, shared, timeout, blocking, poll_interval, cb,
                                 NULL);
}

/* flpy_hub_acquire whose win sets the asyncio future *fut*'s result from
 * C (held weakly); *cb* still gets every failure, and a win the future
 * cannot take (cancelled, its loop closed), which it gives back. */
static PyObject *flpy_hub_acquire_fut(PyObject *hub_cap, PyObject *lock_cap,
                                      unsigned long long owner, int shared, PyObject *timeout,
                                      PyObject *blocking, PyObject *poll_interval, PyObject *cb,
                                      PyObject *fut) {
    return flpy_hub_acquire_impl(hub_cap, lock_cap, owner, shared, timeout, blocking, poll_interval, cb,
                                 fut);
}

/* fl_hub_dispatch, then fl_hub_timeout: the loop's one call per wake-up
 * (the next re-check in seconds, -1 for none). Raises as flpy_hub_dispatch. */
static PyObject *flpy_hub_run(PyObject *hub_cap) {
    PyObject *r = flpy_hub_dispatch(hub_cap);
    if (!r)
        return NULL;
    Py_DECREF(r);
    return PyFloat_FromDouble(fl_hub_timeout(flpy_hub_get(hub_cap)));
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
    Py_CLEAR(fw->fut);
    Py_CLEAR(fw->lock_cap);
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

/* flpy_hub_release for a lease (AsyncSoftFileLease): FL_ELOST -- the claim
 * was lost, the hold is released all the same -- is returned as its message
 * instead of raised, as flpy_release_lease does; None otherwise. The GIL
 * goes around the release for the same reason as there: it stops the
 * heartbeat, whose compromise callback may be running and need the GIL. The
 * hub is the loop thread's own, touched by no other thread meanwhile. */
static PyObject *flpy_hub_release_lease(PyObject *hub_cap, fl_lock *l, unsigned long long owner,
                                        int force) {
    fl_hub *hub = hub_cap == Py_None ? NULL : flpy_hub_get(hub_cap);
    int rc;
    if (!hub && hub_cap != Py_None)
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    rc = hub ? fl_hub_release(hub, l, (uint64_t)owner, force)
             : fl_release_as(l, (uint64_t)owner, force);
    Py_END_ALLOW_THREADS
    if (rc == FL_ELOST)
        return PyUnicode_DecodeFSDefault(fl_last_error());
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
