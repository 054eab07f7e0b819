/*
 * Ruby part of the SWIG interface: the extension `filelock_ext` (module
 * Filelock_ext). The idiomatic API (module Filelock) is written in Ruby in
 * bindings/ruby/lib/filelock.rb on top of the few entry points below.
 *
 * What only Ruby needs, and why it is done by hand:
 *   - SWIG never releases the GVL. The wait (exclusive and shared mode
 *     alike, fl_rb_acquire) runs through
 *     rb_thread_call_without_gvl2() with an unblocking function; the core's
 *     cancel callback reads the flag that function sets, so Thread#raise,
 *     Thread#kill, Timeout.timeout and Ctrl-C end a wait within one cancel
 *     slice (50 ms at most), and the lock state is rolled back by the core.
 *   - Ruby code may not run while the core is inside a call (the core may
 *     hold its own mutexes, and an exception would unwind through it), nor
 *     inside the garbage collector. Log events are therefore queued per
 *     thread and handed to Ruby after the core call returned.
 *   - Error codes become Ruby exceptions in exactly one place,
 *     fl_rb_error_new().
 */
%module filelock_ext

/* The handle is freed by our own function so that the release done by a
 * garbage-collected, still-held lock never calls into Ruby. */
%freefunc fl_lock "fl_rb_free_lock";

/* The functions filelock.i lists as FL_RAISING raise instead of returning
 * a code (after delivering their log messages); nil on success. */
%typemap(out) int FL_RAISING {
    fl_rb_check($1);
    $result = Qnil;
}

/* fl_options_check: raises the core's error (ArgumentError for FL_EINVAL). */
%typemap(out) int FL_CHECKED {
    fl_rb_check($1);
    $result = Qnil;
}

/* Ruby class names must be constants. */
%rename(Handle) fl_lock;
%rename(Options) fl_options;

%include "filelock.i"

%{
#include <ruby/thread.h>

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---------------------------------------------------------------------- */
/* Log bridge                                                              */
/* ---------------------------------------------------------------------- */

/* A formatted message waiting for the GVL. */
typedef struct fl_rb_msg {
    struct fl_rb_msg *next;
    char text[];
} fl_rb_msg;

/* Events of one thread, in order. Bounded so that a thread that never
 * returns to Ruby cannot grow it without limit. */
#define FL_RB_LOG_MAX 256
static __thread fl_rb_msg *fl_rb_log_head;
static __thread fl_rb_msg *fl_rb_log_tail;
static __thread unsigned fl_rb_log_len;
/* Set while the garbage collector frees a handle: drop the events. */
static __thread int fl_rb_log_mute;

/* The Ruby callable receiving each message (nil: logging off). */
static VALUE fl_rb_log_sink = Qnil;

static void fl_rb_log_handler(void *data, fl_log_event event, uint64_t id, const char *path,
                              double seconds) {
    fl_rb_msg *m;
    int n;
    (void)data;
    if (fl_rb_log_mute || fl_rb_log_len >= FL_RB_LOG_MAX)
        return;
    n = fl_format_log(NULL, 0, event, id, path, seconds);
    if (n < 0)
        return;
    m = malloc(sizeof *m + (size_t)n + 1);
    if (!m)
        return;
    fl_format_log(m->text, (size_t)n + 1, event, id, path, seconds);
    m->next = NULL;
    if (fl_rb_log_tail)
        fl_rb_log_tail->next = m;
    else
        fl_rb_log_head = m;
    fl_rb_log_tail = m;
    fl_rb_log_len++;
}

/* Frees a detached list of messages (also the undelivered rest when a
 * logger raised or a string could not be allocated). */
static VALUE fl_rb_free_msgs(VALUE arg) {
    fl_rb_msg **rest = (fl_rb_msg **)arg;
    while (*rest) {
        fl_rb_msg *m = *rest;
        *rest = m->next;
        free(m);
    }
    return Qnil;
}

static VALUE fl_rb_deliver_msgs(VALUE arg) {
    static ID id_call;
    fl_rb_msg **rest = (fl_rb_msg **)arg;
    if (!id_call)
        id_call = rb_intern("call");
    while (*rest) {
        fl_rb_msg *m = *rest;
        VALUE s = rb_str_new_cstr(m->text);
        *rest = m->next;
        free(m);
        if (!NIL_P(fl_rb_log_sink))
            rb_funcall(fl_rb_log_sink, id_call, 1, s);
    }
    return Qnil;
}

/* Delivers this thread's queued messages; GVL held, no core call active.
 * The queue is detached first and always left empty, even when delivery
 * raises: Ruby reuses native threads for new Ruby threads, so anything left
 * in this thread-local queue would surface later as another thread's
 * messages. */
static void fl_rb_flush_log(void) {
    fl_rb_msg *rest = fl_rb_log_head;
    if (!rest)
        return;
    fl_rb_log_head = fl_rb_log_tail = NULL;
    fl_rb_log_len = 0;
    rb_ensure(fl_rb_deliver_msgs, (VALUE)&rest, fl_rb_free_msgs, (VALUE)&rest);
}

/* ---------------------------------------------------------------------- */
/* Errors                                                                  */
/* ---------------------------------------------------------------------- */

/* Exception classes defined by lib/filelock.rb (nil until registered). */
static VALUE fl_rb_cls_timeout = Qnil;
static VALUE fl_rb_cls_deadlock = Qnil;
static VALUE fl_rb_cls_lockmode = Qnil;
static VALUE fl_rb_cls_error = Qnil;

/* The one mapping from a core error to a Ruby exception.
 * ETIMEOUT -> Filelock::Timeout, EDEADLK -> Filelock::DeadlockError,
 * ELOCKMODE -> Filelock::LockModeError (a Filelock::Error), an OS errno ->
 * the matching SystemCallError subclass (Errno::EACCES, ...), EINVAL without
 * errno -> ArgumentError, anything else (ELOST, ELEASEMISMATCH, ...) ->
 * Filelock::Error with #code. */
static VALUE fl_rb_error_new(int code, int err, VALUE msg, VALUE path) {
    /* A lost lease is Filelock::Error (:ELOST) whatever errno its last
     * refresh met (that is in the message). */
    if (code == FL_ELOST)
        err = 0;
    if (code == FL_ETIMEOUT && !NIL_P(fl_rb_cls_timeout))
        return rb_funcall(fl_rb_cls_timeout, rb_intern("new"), 2, path, msg);
    if (code == FL_EDEADLK && !NIL_P(fl_rb_cls_deadlock))
        return rb_exc_new_str(fl_rb_cls_deadlock, msg);
    if (code == FL_ELOCKMODE && !NIL_P(fl_rb_cls_lockmode))
        return rb_funcall(fl_rb_cls_lockmode, rb_intern("new"), 2, msg,
                          ID2SYM(rb_intern(fl_err_name(code))));
    if (err != 0) {
        /* SystemCallError prefixes the OS reason itself ("Permission denied
         * - ..."); drop the core's ": <reason>" suffix to say it once. */
        const char *reason = strerror(err);
        long n = RSTRING_LEN(msg), r = (long)strlen(reason);
        if (n > r + 2 && memcmp(RSTRING_PTR(msg) + n - r - 2, ": ", 2) == 0 &&
            memcmp(RSTRING_PTR(msg) + n - r, reason, (size_t)r) == 0)
            msg = rb_str_substr(msg, 0, n - r - 2);
        return rb_syserr_new_str(err, msg);
    }
    if (code == FL_EINVAL)
        return rb_exc_new_str(rb_eArgError, msg);
    if (!NIL_P(fl_rb_cls_error))
        return rb_funcall(fl_rb_cls_error, rb_intern("new"), 2, msg,
                          ID2SYM(rb_intern(fl_err_name(code))));
    return rb_exc_new_str(rb_eRuntimeError, msg);
}

/* Turns the calling thread's last error into an exception object. Must run
 * before any Ruby code (a logger, a trap handler) could use another lock
 * and overwrite the thread's last error. */
static VALUE fl_rb_last_error(int code, const char *path) {
    VALUE msg = rb_str_new_cstr(fl_last_error());
    VALUE vpath = path ? rb_str_new_cstr(path) : Qnil;
    return fl_rb_error_new(code, fl_last_errno(), msg, vpath);
}

/* After a core call: deliver its log messages, then raise if it failed. */
static void fl_rb_check(int rc) {
    VALUE exc = Qnil;
    if (rc < 0)
        exc = fl_rb_last_error(rc, NULL);
    fl_rb_flush_log();
    if (!NIL_P(exc))
        rb_exc_raise(exc);
}

/* ---------------------------------------------------------------------- */
/* Handles                                                                 */
/* ---------------------------------------------------------------------- */

/* Per-wait state shared by the waiting thread, its cancel callback and the
 * unblocking function Ruby calls from the interrupting thread. */
typedef struct fl_rb_wait {
    fl_lock *lock;
    fl_acquire_args args; /* resolved by the core: mode, deadline, blocking, poll */
    int ran;    /* Ruby did call fl_rb_wait_fn (it skips it on a pending interrupt) */
    int cancel; /* set by fl_rb_ubf, read by fl_rb_cancel */
    int rc;
} fl_rb_wait;

/* The wait of the calling thread: the cancel callback is per handle, but
 * several threads may wait on one handle, each with its own flag. */
static __thread fl_rb_wait *fl_rb_current_wait;

static int fl_rb_cancel(void *data, int interrupted) {
    fl_rb_wait *w = fl_rb_current_wait;
    (void)data;
    if (!w)
        return 0;
    /* A signal hit this thread: return to Ruby so it can run its handler
     * (Interrupt, trap); the wait resumes afterwards if nothing raised. */
    return interrupted || __atomic_load_n(&w->cancel, __ATOMIC_ACQUIRE);
}

static void fl_rb_ubf(void *arg) {
    __atomic_store_n(&((fl_rb_wait *)arg)->cancel, 1, __ATOMIC_RELEASE);
}

/* 1 while this thread runs core code without the GVL (fl_rb_wait_fn):
 * a Ruby block called back from the core must then take the GVL first. */
static __thread int fl_rb_nogvl;

static void *fl_rb_wait_fn(void *arg) {
    fl_rb_wait *w = arg;
    w->ran = 1;
    fl_rb_current_wait = w;
    fl_rb_nogvl = 1;
    w->rc = fl_acquire_with(w->lock, &w->args);
    fl_rb_nogvl = 0;
    fl_rb_current_wait = NULL;
    return NULL;
}

/* The Ruby blocks of one acquire: cancel_check (consulted at every wake-up
 * of the wait) and the lock's on_acquired hook (called with the locked
 * descriptor). They run from inside the core, so they are protected: what
 * they raise (or a throw, Thread#kill) is kept here and re-raised once the
 * core call has returned, never unwound through it. On this stack, so the
 * exception is seen by the garbage collector. */
typedef struct fl_rb_blocks {
    VALUE check, hook; /* nil when absent */
    int which;         /* 0: check, 1: hook */
    int fd;
    VALUE result;
    int state;   /* rb_protect state of a block that raised, else 0 */
    VALUE exc;   /* its exception */
    int by_check; /* check returned true: the wait ends as a Timeout */
} fl_rb_blocks;
static __thread fl_rb_blocks *fl_rb_current_blocks;

static VALUE fl_rb_blocks_body(VALUE p) {
    fl_rb_blocks *b = (fl_rb_blocks *)p;
    if (b->which)
        return rb_funcall(b->hook, rb_intern("call"), 1, INT2NUM(b->fd));
    return rb_funcall(b->check, rb_intern("call"), 0);
}

static void *fl_rb_blocks_run(void *p) {
    fl_rb_blocks *b = p;
    int state = 0;
    b->result = rb_protect(fl_rb_blocks_body, (VALUE)b, &state);
    if (state) {
        b->state = state;
        b->exc = rb_errinfo();
        /* An exception is kept in b->exc; a Thread#kill's errinfo (not an
         * exception) stays where it is: the jump that resumes the kill
         * needs it (cleared, Ruby 3.1 crashes at the jump). */
        if (rb_obj_is_kind_of(b->exc, rb_eException))
            rb_set_errinfo(Qnil);
    }
    return NULL;
}

/* 0, or non-zero when the block raised. */
static int fl_rb_blocks_call(fl_rb_blocks *b, int which) {
    b->which = which;
    if (fl_rb_nogvl)
        rb_thread_call_with_gvl(fl_rb_blocks_run, b);
    else
        fl_rb_blocks_run(b);
    return b->state;
}

/* The per-call cancel callback when acquire has a cancel_check. */
static int fl_rb_cancel_check(void *data, int interrupted) {
    fl_rb_blocks *b = data;
    if (fl_rb_cancel(NULL, interrupted) || b->state)
        return 1;
    if (fl_rb_blocks_call(b, 0))
        return 1;
    if (RTEST(b->result)) {
        b->by_check = 1;
        return 1;
    }
    return 0;
}

/* fl_options.on_acquired: the option's data is only the block's identity
 * (the singleton comparison); the block itself comes with each acquire. */
static int fl_rb_hub_on_acquired(fl_lock *lock, int fd);

static int fl_rb_on_acquired(void *data, fl_lock *lock, int fd) {
    fl_rb_blocks *b = fl_rb_current_blocks;
    (void)data;
    if (!b)
        return fl_rb_hub_on_acquired(lock, fd); /* a wait of a Fiber scheduler's (the hub) */
    if (NIL_P(b->hook))
        return 0;
    b->fd = fd;
    return fl_rb_blocks_call(b, 1) ? FL_ECANCELED : 0;
}

static void fl_rb_free_lock(void *p) {
    /* Runs inside the garbage collector: no Ruby calls, no raising. */
    fl_rb_log_mute++;
    fl_lock_free((fl_lock *)p);
    fl_rb_log_mute--;
}

/* Sets fl_options.on_acquired on `opts` to run the lock's on_acquired
 * callable (fl_rb_on_acquired). The option's data is only the callable's
 * identity (the singleton comparison): lib/filelock.rb keeps the callable
 * referenced by the lock object and passes it to every acquire. */
static VALUE fl_rb_options_on_acquired(fl_options *opts, VALUE hook) {
    opts->on_acquired = fl_rb_on_acquired;
    opts->on_acquired_data = (void *)hook;
    return Qnil;
}

/* A new handle for `path` with the options the caller set on `opts` (an
 * Options filled with the core's defaults). */
static fl_lock *fl_rb_lock_new(VALUE path, const fl_options *opts) {
    fl_lock *l = NULL;
    int rc;
    StringValue(path);
    /* With the length, so that a NUL byte inside is an error, not a cut. */
    rc = fl_lock_new_n(&l, RSTRING_PTR(path), (size_t)RSTRING_LEN(path), opts);
    if (rc != 0) {
        VALUE exc = fl_rb_last_error(rc, NULL);
        fl_rb_flush_log();
        rb_exc_raise(exc);
    }
    fl_set_cancel(l, fl_rb_cancel, NULL);
    return l;
}

/* Frees the handle now instead of at garbage collection (used when a
 * singleton lookup found an existing Ruby object). */
static void fl_rb_lock_dispose(VALUE obj) {
    void *p = NULL;
    if (SWIG_IsOK(SWIG_ConvertPtr(obj, &p, SWIGTYPE_p_fl_lock,
                                  SWIG_POINTER_DISOWN | SWIG_POINTER_CLEAR)) &&
        p) {
        fl_lock_free((fl_lock *)p);
        fl_rb_flush_log();
    }
}

/* Acquires in exclusive mode (shared == 0) or shared mode (shared != 0),
 * releasing the GVL while waiting; both modes share this one wait. nil
 * arguments take the handle's defaults. When the lock is won and `token`
 * is an Array, token[0] becomes true before anything else can run on this
 * thread, so a caller's `ensure` knows whether to release even if an
 * interrupt is delivered right after this returns. */
static VALUE fl_rb_acquire(fl_lock *l, int shared, VALUE vtimeout, VALUE vblocking, VALUE vpoll,
                           VALUE token, VALUE cancel_check, VALUE on_acquired) {
    fl_acquire_args given, args;
    fl_rb_blocks blocks, *saved_blocks = fl_rb_current_blocks;
    int one_attempt;
    int rc;

    blocks.check = cancel_check;
    blocks.hook = on_acquired;
    blocks.result = Qnil;
    blocks.exc = Qnil;
    blocks.state = 0;
    blocks.by_check = 0;
    if (!NIL_P(cancel_check) && !rb_respond_to(cancel_check, rb_intern("call")))
        rb_raise(rb_eTypeError, "cancel_check must respond to #call");

    /* nil: the handle's default, resolved by the core. */
    fl_acquire_args_init(&given);
    given.shared = shared;
    if (!NIL_P(vtimeout)) {
        given.timeout = NUM2DBL(vtimeout);
        given.set |= FL_ARG_TIMEOUT;
    }
    if (!NIL_P(vblocking)) {
        given.blocking = RTEST(vblocking);
        given.set |= FL_ARG_BLOCKING;
    }
    if (!NIL_P(vpoll)) {
        given.poll_interval = NUM2DBL(vpoll);
        given.set |= FL_ARG_POLL_INTERVAL;
    }
    if (!NIL_P(cancel_check)) {
        given.cancel = fl_rb_cancel_check;
        given.cancel_data = &blocks;
        given.set |= FL_ARG_CANCEL;
    }
    fl_rb_current_blocks = &blocks;
    rc = fl_acquire_args_resolve(l, &given, &args);
    if (rc != 0)
        goto done;
    one_attempt = isinf(args.deadline) && args.deadline < 0;

    /* Uncontended fast path: one non-blocking attempt needs no GVL release.
     * Skipped while logging, which would report the attempt twice. */
    if (one_attempt || NIL_P(fl_rb_log_sink)) {
        fl_acquire_args once = args;
        once.deadline = -INFINITY;
        rc = fl_acquire_with(l, &once);
        if (rc == 0 || one_attempt || rc != FL_ETIMEOUT)
            goto done;
    }
    for (;;) {
        fl_rb_wait w;
        w.lock = l;
        w.args = args;
        w.ran = 0;
        w.cancel = 0;
        w.rc = 0;
        /* The "2" variant does not check interrupts after the wait: a won
         * lock must be recorded (token) before Ruby may raise. */
        rb_thread_call_without_gvl2(fl_rb_wait_fn, &w, fl_rb_ubf, &w);
        if (w.ran && (w.rc != FL_ECANCELED || blocks.state || blocks.by_check)) {
            rc = w.rc;
            break;
        }
        /* Interrupted: the core rolled back. Let Ruby raise (Thread#raise,
         * Thread#kill, Timeout.timeout, Interrupt) or run a trap handler,
         * then go on waiting until the same deadline (after it: one last
         * attempt, then the usual Timeout). */
        fl_rb_flush_log();
        rb_thread_check_ints();
    }
done:
    fl_rb_current_blocks = saved_blocks;
    if (rc != 0 && blocks.state) {
        /* What cancel_check or on_acquired raised (the core rolled back). */
        fl_rb_flush_log();
        if (rb_obj_is_kind_of(blocks.exc, rb_eException))
            rb_exc_raise(blocks.exc);
        rb_jump_tag(blocks.state);
    }
    if (rc == FL_ECANCELED && blocks.by_check) {
        /* As an expired timeout (py-filelock's cancel_check). */
        VALUE msg = rb_sprintf("The file lock '%s' could not be acquired.", fl_lock_path(l));
        VALUE exc = fl_rb_error_new(FL_ETIMEOUT, 0, msg, rb_str_new_cstr(fl_lock_path(l)));
        fl_rb_flush_log();
        rb_exc_raise(exc);
    }
    if (rc == 0) {
        if (RB_TYPE_P(token, T_ARRAY))
            rb_ary_store(token, 0, Qtrue);
        fl_rb_flush_log();
        return Qtrue;
    } else {
        VALUE exc = fl_rb_last_error(rc, fl_lock_path(l));
        fl_rb_flush_log();
        rb_exc_raise(exc);
    }
    return Qnil;
}

/* The holder as [pid, hostname, start_token, this_process] (pid and token
 * nil when unknown), or nil when fl__swig_owner() has no answer (free, or
 * a holder that cannot be told). Other failures raise through the one
 * mapping. */
static VALUE fl_rb_owner(fl_lock *l) {
    fl_owner o;
    int unknown;
    int rc = fl__swig_owner(l, &o, &unknown);
    if (rc == 0)
        return Qnil;
    fl_rb_check(rc);
    return rb_ary_new_from_args(4, o.pid < 0 ? Qnil : LONG2NUM(o.pid),
                                rb_str_new_cstr(o.hostname),
                                o.start_token[0] ? rb_str_new_cstr(o.start_token) : Qnil,
                                o.this_process ? Qtrue : Qfalse);
}

/* lock_descriptor(fd, blocking, poll_interval) -> true / false (held
 * elsewhere, blocking false): the core's fl_lock_descriptor on a
 * descriptor the caller owns. The blocking wait runs without the GVL;
 * Ruby's interrupt (Thread#raise, Timeout.timeout, Ctrl-C) signals the
 * thread, the wait returns, Ruby runs its interrupts, and the wait resumes. */
typedef struct fl_rb_desc {
    int fd;
    double poll;
    int rc;
} fl_rb_desc;

static int fl_rb_desc_cancel(void *data, int interrupted) {
    (void)data;
    return interrupted; /* back to Ruby on every signal */
}

static void *fl_rb_desc_fn(void *arg) {
    fl_rb_desc *d = arg;
    d->rc = fl_lock_descriptor(d->fd, 1, d->poll, fl_rb_desc_cancel, NULL);
    return NULL;
}

static VALUE fl_rb_lock_descriptor(int fd, VALUE blocking, double poll_interval) {
    fl_rb_desc d;
    int rc;
    if (RTEST(blocking) && !(isfinite(poll_interval) && poll_interval > 0))
        rc = fl_lock_descriptor(fd, 1, poll_interval, NULL, NULL); /* the core refuses it */
    else
        rc = fl_lock_descriptor(fd, 0, poll_interval, NULL, NULL);
    if (rc == FL_ETIMEOUT && RTEST(blocking)) {
        d.fd = fd;
        d.poll = poll_interval;
        for (;;) {
            d.rc = FL_ECANCELED;
            rb_thread_call_without_gvl2(fl_rb_desc_fn, &d, RUBY_UBF_IO, NULL);
            if (d.rc != FL_ECANCELED)
                break;
            rb_thread_check_ints();
        }
        rc = d.rc;
    }
    if (rc == 0)
        return Qtrue;
    if (rc == FL_ETIMEOUT && !RTEST(blocking))
        return Qfalse;
    fl_rb_check(rc);
    return Qnil;
}

static VALUE fl_rb_unlock_descriptor(int fd) {
    fl_rb_check(fl_unlock_descriptor(fd));
    return Qnil;
}

/* Logging on (a callable taking the message) or off (nil). */
static VALUE fl_rb_set_log_sink(VALUE sink) {
    fl_rb_log_sink = sink;
    fl_set_log_handler(NIL_P(sink) ? NULL : fl_rb_log_handler, NULL);
    return Qnil;
}

/* ---------------------------------------------------------------------- */
/* Leases                                                                  */
/* ---------------------------------------------------------------------- */

/* The core's callback thread is not a Ruby thread and may not call Ruby: it
 * writes a record {lock id, reason, errno} to a pipe, read by a Ruby thread
 * of lib/filelock.rb that calls the lease's on_compromise. The write end is
 * non-blocking (a full pipe must never stop the callback thread) and the pipe is
 * per process (a forked child makes its own). */
static int fl_rb_lease_fds[2] = {-1, -1};
static pid_t fl_rb_lease_pid;

typedef struct fl_rb_loss {
    uint64_t id;
    int32_t reason;
    int32_t os_errno;
} fl_rb_loss;

static void fl_rb_compromise(void *data, fl_lock *lock, fl_lease_loss reason, int os_errno,
                             const char *path) {
    fl_rb_loss rec;
    int fd = __atomic_load_n(&fl_rb_lease_fds[1], __ATOMIC_ACQUIRE);
    (void)data, (void)path;
    rec.id = fl_lock_id(lock);
    rec.reason = (int32_t)reason;
    rec.os_errno = (int32_t)os_errno;
    if (fd >= 0)
        (void)!write(fd, &rec, sizeof rec); /* <= PIPE_BUF: one piece */
}

/* The read end of this process's loss pipe (created on first use), for
 * IO.for_fd; the handle's losses go there from now on. */
static VALUE fl_rb_watch_lease(fl_lock *l) {
    if (fl_rb_lease_fds[0] < 0 || fl_rb_lease_pid != getpid()) {
        int fds[2];
        if (pipe(fds) != 0)
            rb_sys_fail("cannot create the lease notification pipe");
        (void)fcntl(fds[0], F_SETFD, FD_CLOEXEC);
        (void)fcntl(fds[1], F_SETFD, FD_CLOEXEC);
        (void)fcntl(fds[1], F_SETFL, O_NONBLOCK);
        fl_rb_lease_fds[0] = fds[0];
        __atomic_store_n(&fl_rb_lease_fds[1], fds[1], __ATOMIC_RELEASE);
        fl_rb_lease_pid = getpid();
    }
    fl_set_compromise_callback(l, fl_rb_compromise, NULL);
    return INT2NUM(fl_rb_lease_fds[0]);
}

static VALUE fl_rb_register_errors(VALUE timeout, VALUE deadlock, VALUE lockmode, VALUE error) {
    fl_rb_cls_timeout = timeout;
    fl_rb_cls_deadlock = deadlock;
    fl_rb_cls_lockmode = lockmode;
    fl_rb_cls_error = error;
    return Qnil;
}
%}

%init %{
    rb_gc_register_address(&fl_rb_log_sink);
    rb_gc_register_address(&fl_rb_cls_timeout);
    rb_gc_register_address(&fl_rb_cls_deadlock);
    rb_gc_register_address(&fl_rb_cls_lockmode);
    rb_gc_register_address(&fl_rb_cls_error);
%}

/* The entry points lib/filelock.rb uses besides the plain getters. */
%newobject fl_rb_lock_new;
fl_lock *fl_rb_lock_new(VALUE path, const fl_options *opts);
VALUE fl_rb_options_on_acquired(fl_options *opts, VALUE hook);
void fl_rb_lock_dispose(VALUE obj);
VALUE fl_rb_acquire(fl_lock *lock, int shared, VALUE timeout, VALUE blocking,
                    VALUE poll_interval, VALUE token, VALUE cancel_check, VALUE on_acquired);
VALUE fl_rb_lock_descriptor(int fd, VALUE blocking, double poll_interval);
VALUE fl_rb_unlock_descriptor(int fd);
VALUE fl_rb_owner(fl_lock *lock);
VALUE fl_rb_set_log_sink(VALUE sink);
VALUE fl_rb_register_errors(VALUE timeout, VALUE deadlock, VALUE lockmode, VALUE error);
VALUE fl_rb_watch_lease(fl_lock *lock);

/* ---------------------------------------------------------------------- */
/* Fiber scheduler waits: the core's event-loop wait hub                   */
/* ---------------------------------------------------------------------- */

/* Under a Fiber scheduler a wait must park only its fiber. Each thread has
 * one hub (Filelock::Hub in lib/filelock.rb); a driver fiber waits for its
 * descriptor with IO#wait_readable (which reaches the scheduler's io_wait)
 * and dispatches. The core calls the done callback inside that dispatch,
 * with the GVL held: it only records the result (true or the exception) in
 * the wait's status array and appends the array to the hub's list of
 * completed waits, for Ruby to wake the waiting fibers after the dispatch
 * returned (no Ruby code runs inside the core). */
%{
typedef struct fl_rb_hub {
    fl_hub *hub;
    VALUE done;     /* Array of completed status arrays */
    VALUE pending;  /* the status arrays the core points to: marked, hence pinned (never moved
                       by GC.compact) */
    VALUE hook_exc; /* what an on_acquired hook raised inside the core, for the done callback
                       (or fl_rb_hub_acquire) that follows it for the same wait; else nil */
    int hook_jump;  /* the rb_protect state of a hook ended by Thread#kill (not an
                       exception), resumed once the hub call returned; else 0 */
    VALUE hook_jump_info; /* its errinfo (the kill signal) */
} fl_rb_hub;

/* A status array: [result, waiter address, hub, Thread::Queue (Ruby's),
 * handle address, on_acquired hook or nil]. */
enum { FL_RB_ST_RESULT, FL_RB_ST_WAITER, FL_RB_ST_HUB, FL_RB_ST_QUEUE, FL_RB_ST_LOCK, FL_RB_ST_HOOK };

/* The hub inside fl_hub_acquire() / fl_hub_dispatch() on this thread, and
 * the status of the acquire in progress (not pending yet), for the
 * on_acquired hooks the core runs there. */
static __thread fl_rb_hub *fl_rb_hub_running;
static __thread VALUE fl_rb_hub_starting;

static int fl_rb_hub_freeing; /* inside fl_hub_free from the GC: record nothing */

static void fl_rb_hub_mark(void *p) {
    rb_gc_mark(((fl_rb_hub *)p)->done);
    rb_gc_mark(((fl_rb_hub *)p)->pending);
    rb_gc_mark(((fl_rb_hub *)p)->hook_exc);
    rb_gc_mark(((fl_rb_hub *)p)->hook_jump_info);
}

/* fl_options.on_acquired for a hub wait: the core won the lock inside
 * fl_hub_acquire() (the acquiring fiber) or fl_hub_dispatch() (the
 * driver fiber), with the GVL held. Every wait of one handle has the same
 * hook (a handle's hook is one callable: the singleton comparison), so the
 * handle finds it among the hub's waits. What it raises is kept for the
 * wait's completion (the core releases the lock and ends that wait with
 * FL_ECANCELED right after), never unwound through the core. */
static int fl_rb_hub_on_acquired(fl_lock *lock, int fd) {
    fl_rb_hub *h = fl_rb_hub_running;
    VALUE key, hook = Qnil, st = Qnil;
    fl_rb_blocks b;
    long i;
    if (!h || fl_rb_hub_freeing)
        return 0;
    key = ULL2NUM((unsigned long long)(uintptr_t)lock);
    if (RB_TYPE_P(fl_rb_hub_starting, T_ARRAY) &&
        rb_equal(rb_ary_entry(fl_rb_hub_starting, FL_RB_ST_LOCK), key))
        st = fl_rb_hub_starting;
    for (i = 0; NIL_P(st) && i < RARRAY_LEN(h->pending); i++) {
        VALUE p = rb_ary_entry(h->pending, i);
        if (rb_equal(rb_ary_entry(p, FL_RB_ST_LOCK), key))
            st = p;
    }
    if (!NIL_P(st))
        hook = rb_ary_entry(st, FL_RB_ST_HOOK);
    if (NIL_P(hook))
        return 0;
    memset(&b, 0, sizeof b);
    b.check = Qnil;
    b.hook = hook;
    b.result = Qnil;
    b.exc = Qnil;
    b.fd = fd;
    if (fl_rb_blocks_call(&b, 1) == 0)
        return 0;
    /* A Thread#kill cannot cross the core either: it ends the wait as an
     * error that says so, and goes on (kills the thread) once the hub call
     * returned (fl_rb_hub_resume_jump), as it does for a blocking acquire.
     * (A throw cannot reach a catch outside the hook's own fiber: it
     * raises UncaughtThrowError there; the kill is the one way out that is
     * not an exception.) */
    if (rb_obj_is_kind_of(b.exc, rb_eException)) {
        h->hook_exc = b.exc;
    } else {
        h->hook_exc =
            rb_exc_new_cstr(rb_eRuntimeError, "on_acquired ended without returning (throw or kill)");
        if (!h->hook_jump) {
            h->hook_jump = b.state;
            h->hook_jump_info = b.exc;
        }
    }
    return FL_ECANCELED;
}

/* After fl_hub_acquire() / fl_hub_dispatch() returned: a thread killed in
 * a hook is killed now, out of the core, by resuming the kill's jump (as
 * fl_rb_acquire does), with the kill's errinfo still in place (see
 * fl_rb_blocks_run). Thread#kill cannot simply be called again: the thread
 * is marked as being killed already, and Ruby ignores it. Should Ruby
 * code run by the hub call meanwhile (another wait's hook that raised)
 * have replaced that errinfo, the kill is dropped: the wait still ends
 * with the error fl_rb_hub_on_acquired made. */
static void fl_rb_hub_resume_jump(fl_rb_hub *h) {
    int state = h->hook_jump;
    VALUE info = h->hook_jump_info;
    if (!state)
        return;
    h->hook_jump = 0;
    h->hook_jump_info = Qnil;
    if (rb_errinfo() == info)
        rb_jump_tag(state);
}

/* The hook's exception for a wait that ended with rc, else nil (taken). */
static VALUE fl_rb_hub_take_hook_exc(fl_rb_hub *h, int rc) {
    VALUE exc = h->hook_exc;
    if (rc != FL_ECANCELED || NIL_P(exc))
        return Qnil;
    h->hook_exc = Qnil;
    return exc;
}

static void fl_rb_hub_dfree(void *p) {
    fl_rb_hub *h = p;
    if (h->hub) {
        fl_rb_hub_freeing = 1;
        fl_hub_free(h->hub);
        fl_rb_hub_freeing = 0;
    }
    xfree(h);
}

static const rb_data_type_t fl_rb_hub_type = {
    "Filelock::Hub", {fl_rb_hub_mark, fl_rb_hub_dfree, NULL}, NULL, NULL, 0};

static fl_rb_hub *fl_rb_hub_get(VALUE obj) {
    return (fl_rb_hub *)rb_check_typeddata(obj, &fl_rb_hub_type);
}

/* data: the wait's status array [result, waiter address, hub object]. */
static void fl_rb_hub_done(void *data, fl_lock *l, uint64_t owner, int rc) {
    VALUE status = (VALUE)data;
    fl_rb_hub *h;
    (void)owner;
    if (fl_rb_hub_freeing)
        return;
    h = fl_rb_hub_get(rb_ary_entry(status, 2));
    /* Deleted while its waiter address still tells it apart (rb_ary_delete
     * compares with ==). */
    rb_ary_delete(h->pending, status);
    {
        VALUE exc = rc == 0 ? Qnil : fl_rb_hub_take_hook_exc(h, rc);
        rb_ary_store(status, FL_RB_ST_RESULT,
                     rc == 0 ? Qtrue : (NIL_P(exc) ? fl_rb_last_error(rc, fl_lock_path(l)) : exc));
    }
    rb_ary_store(status, FL_RB_ST_WAITER, Qnil);
    rb_ary_push(h->done, status);
}

static uint64_t fl_rb_owner_token(VALUE owner) { return (uint64_t)NUM2ULL(owner); }

static VALUE fl_rb_hub_new(void) {
    fl_rb_hub *h;
    VALUE obj = TypedData_Make_Struct(rb_cObject, fl_rb_hub, &fl_rb_hub_type, h);
    int rc;
    h->done = rb_ary_new();
    h->pending = rb_ary_new();
    h->hook_exc = Qnil;
    h->hook_jump_info = Qnil;
    rc = fl_hub_new(&h->hub);
    if (rc != 0)
        rb_exc_raise(fl_rb_last_error(rc, ""));
    return obj;
}

static VALUE fl_rb_hub_fd(VALUE hub) { return INT2NUM(fl_hub_fd(fl_rb_hub_get(hub)->hub)); }

static VALUE fl_rb_hub_timeout(VALUE hub) {
    return DBL2NUM(fl_hub_timeout(fl_rb_hub_get(hub)->hub));
}

/* Dispatches; returns the completed status arrays (and forgets them). */
static VALUE fl_rb_hub_dispatch(VALUE hub) {
    fl_rb_hub *h = fl_rb_hub_get(hub);
    VALUE done;
    fl_rb_hub *saved = fl_rb_hub_running;
    fl_rb_blocks *saved_blocks = fl_rb_current_blocks;
    int rc;
    /* The hooks the core runs in there are this hub's waits' (none of a
     * blocking acquire's). */
    fl_rb_hub_running = h;
    fl_rb_current_blocks = NULL;
    h->hook_exc = Qnil;
    rc = fl_hub_dispatch(h->hub);
    fl_rb_hub_running = saved;
    fl_rb_current_blocks = saved_blocks;
    fl_rb_flush_log();
    if (rc < 0)
        rb_exc_raise(fl_rb_last_error(rc, ""));
    /* (The waits completed in there stay in h->done: the thread ends.) */
    fl_rb_hub_resume_jump(h);
    done = h->done;
    h->done = rb_ary_new();
    return done;
}

/* true: won now (or already held by the owner); false: pending, the
 * status array [nil, waiter address, hub] is filled in by a dispatch. */
static VALUE fl_rb_hub_acquire(VALUE hub, fl_lock *l, VALUE owner, int shared, VALUE vtimeout,
                               VALUE vblocking, VALUE vpoll, VALUE status, VALUE on_acquired) {
    fl_rb_hub *h = fl_rb_hub_get(hub);
    fl_acquire_args a;
    fl_hub_waiter *w = NULL;
    fl_rb_hub *saved = fl_rb_hub_running;
    fl_rb_blocks *saved_blocks = fl_rb_current_blocks;
    VALUE saved_starting = fl_rb_hub_starting;
    int rc;
    Check_Type(status, T_ARRAY);
    fl_acquire_args_init(&a);
    a.shared = shared;
    if (!NIL_P(vtimeout)) {
        a.timeout = NUM2DBL(vtimeout);
        a.set |= FL_ARG_TIMEOUT;
    }
    if (!NIL_P(vblocking)) {
        a.blocking = RTEST(vblocking);
        a.set |= FL_ARG_BLOCKING;
    }
    if (!NIL_P(vpoll)) {
        a.poll_interval = NUM2DBL(vpoll);
        a.set |= FL_ARG_POLL_INTERVAL;
    }
    rb_ary_store(status, FL_RB_ST_RESULT, Qnil);
    rb_ary_store(status, FL_RB_ST_HUB, hub);
    rb_ary_store(status, FL_RB_ST_LOCK, ULL2NUM((unsigned long long)(uintptr_t)l));
    rb_ary_store(status, FL_RB_ST_HOOK, on_acquired);
    fl_rb_hub_running = h;
    fl_rb_hub_starting = status;
    fl_rb_current_blocks = NULL;
    h->hook_exc = Qnil;
    rc = fl_hub_acquire(h->hub, l, fl_rb_owner_token(owner), &a, fl_rb_hub_done, (void *)status,
                        &w);
    fl_rb_hub_running = saved;
    fl_rb_hub_starting = saved_starting;
    fl_rb_current_blocks = saved_blocks;
    if (rc != 0) {
        VALUE exc = fl_rb_hub_take_hook_exc(h, rc);
        if (NIL_P(exc))
            exc = fl_rb_last_error(rc, fl_lock_path(l));
        fl_rb_flush_log();
        fl_rb_hub_resume_jump(h);
        rb_exc_raise(exc);
    }
    fl_rb_flush_log();
    if (!w)
        return Qtrue;
    rb_ary_store(status, FL_RB_ST_WAITER, ULL2NUM((unsigned long long)(uintptr_t)w));
    rb_ary_push(h->pending, status);
    return Qfalse;
}

/* Withdraws a pending wait; false when it had completed already. */
static VALUE fl_rb_hub_cancel(VALUE hub, VALUE status) {
    fl_rb_hub *h = fl_rb_hub_get(hub);
    VALUE addr;
    Check_Type(status, T_ARRAY);
    addr = rb_ary_entry(status, 1);
    if (NIL_P(addr) || !NIL_P(rb_ary_entry(status, 0)))
        return Qfalse;
    (void)fl_hub_cancel((fl_hub_waiter *)(uintptr_t)NUM2ULL(addr));
    rb_ary_delete(h->pending, status);
    rb_ary_store(status, 1, Qnil);
    return Qtrue;
}

/* Releases for the owner; with a hub, its next waiter is tried at once. */
static VALUE fl_rb_hub_release(VALUE hub, fl_lock *l, VALUE owner, VALUE force) {
    int rc = NIL_P(hub) ? fl_release_as(l, fl_rb_owner_token(owner), RTEST(force))
                        : fl_hub_release(fl_rb_hub_get(hub)->hub, l, fl_rb_owner_token(owner),
                                         RTEST(force));
    fl_rb_flush_log();
    fl_rb_check(rc);
    return Qnil;
}

static VALUE fl_rb_counter_as(fl_lock *l, VALUE owner) {
    return INT2NUM(fl_lock_counter_as(l, fl_rb_owner_token(owner)));
}
%}

VALUE fl_rb_hub_new(void);
VALUE fl_rb_hub_fd(VALUE hub);
VALUE fl_rb_hub_timeout(VALUE hub);
VALUE fl_rb_hub_dispatch(VALUE hub);
VALUE fl_rb_hub_acquire(VALUE hub, fl_lock *lock, VALUE owner, int shared, VALUE timeout,
                        VALUE blocking, VALUE poll_interval, VALUE status, VALUE on_acquired);
VALUE fl_rb_hub_cancel(VALUE hub, VALUE status);
VALUE fl_rb_hub_release(VALUE hub, fl_lock *lock, VALUE owner, VALUE force);
VALUE fl_rb_counter_as(fl_lock *lock, VALUE owner);
