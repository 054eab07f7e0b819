/*
 * The "filelock [options] <fd>" form, for scripts that write
 *
 *     exec 9>/var/lock/job.lock
 *     filelock -n 9 || exit 1
 *     ... critical section; the lock lasts until fd 9 is closed ...
 *
 * The library locks paths, so it cannot serve this form: opening the path
 * again would lock a different open file description, and that lock would
 * vanish when this program exits. flock(1) locks the description the shell
 * passed in, which the shell keeps open after the program is gone; we do the
 * same by calling flock(2) on the inherited descriptor directly. The lock is
 * the same kind the library takes (flock on the whole file), so the two
 * exclude each other.
 *
 * A timeout (-w) waits in a blocking flock(2) that an interval timer
 * interrupts, as flock(1) does: the waiter wakes as soon as the lock is
 * free, whether the holder closes its descriptor or only unlocks it.
 */
#define _GNU_SOURCE
#include "cli.h"

#include <filelock.h>

#include "../../core/src/seconds.h" /* the one checked seconds conversion */

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/time.h>

/* After the deadline the timer keeps firing at this period, so that an
 * expiry landing just before we enter flock(2) is followed by another one
 * that interrupts it: a missed signal costs 10 ms, never a hang. */
#define REARM_USEC 10000

static void on_alarm(int sig) { (void)sig; }

/* Exit codes as flock(1)'s: 71 when the kernel is out of lock records or
 * memory, 65 for the rest (a bad descriptor, ...); 69 when the file system
 * cannot lock at all, as in the path form (see DIFFERENCES in the man page). */
static int flock_error(const cli_fd_request *req, int e) {
    cli_error("cannot lock file descriptor %d: %s", req->fd, strerror(e));
    if (e == ENOLCK || e == ENOMEM)
        return CLI_EX_OSERR;
    if (e == ENOSYS || e == EOPNOTSUPP)
        return CLI_EX_UNAVAILABLE;
    return CLI_EX_DATAERR;
}

static void verbose_holder(const cli_fd_request *req) {
    fl_owner o;
    char what[64];
    snprintf(what, sizeof what, "the file on descriptor %d", req->fd);
    if (cli_lookup_fd_owner(req->fd, &o) == 0)
        cli_describe_owner(what, 0, &o);
}

/* Waits in flock(2) until the lock is won or the timeout passes. Returns 0,
 * 1 on timeout, or -1 with errno set. */
static int timed_flock(int fd, int op, double timeout) {
    struct sigaction sa, old_sa;
    struct itimerval it, old_it;
    sigset_t alrm, old_mask;
    double deadline = fl_monotonic() + timeout;
    int rc, e = 0;

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: the signal must end the flock call */
    if (sigaction(SIGALRM, &sa, &old_sa) != 0)
        return -1;
    /* A SIGALRM blocked by whoever started us (the mask is inherited across
     * exec) would never interrupt flock(2): -w would wait forever. */
    sigemptyset(&alrm);
    sigaddset(&alrm, SIGALRM);
    sigprocmask(SIG_UNBLOCK, &alrm, &old_mask);
    memset(&it, 0, sizeof it);
    /* Clamped (a -w of 1e19 s must not overflow time_t): the loop below
     * keeps waiting until its own deadline anyway. */
    (void)fl__seconds_to_timeval(timeout, &it.it_value);
    if (it.it_value.tv_sec == 0 && it.it_value.tv_usec == 0)
        it.it_value.tv_usec = 1; /* a zero value would disarm the timer */
    it.it_interval.tv_usec = REARM_USEC;
    if (setitimer(ITIMER_REAL, &it, &old_it) != 0) {
        e = errno;
        sigprocmask(SIG_SETMASK, &old_mask, NULL);
        sigaction(SIGALRM, &old_sa, NULL);
        errno = e;
        return -1;
    }
    for (;;) {
        if (fl_monotonic() >= deadline) {
            rc = 1;
            break;
        }
        if (flock(fd, op) == 0) {
            rc = 0;
            break;
        }
        if (errno != EINTR) {
            e = errno;
            rc = -1;
            break;
        }
    }
    memset(&it, 0, sizeof it);
    setitimer(ITIMER_REAL, &it, NULL);
    sigprocmask(SIG_SETMASK, &old_mask, NULL);
    sigaction(SIGALRM, &old_sa, NULL);
    errno = e;
    return rc;
}

int cli_fd_lock(const cli_fd_request *req) {
    struct stat st;
    double start = fl_monotonic();
    int op = req->shared ? LOCK_SH : LOCK_EX;
    int rc;

    if (fstat(req->fd, &st) != 0) {
        cli_error("file descriptor %d: %s", req->fd, strerror(errno));
        return CLI_EX_DATAERR;
    }
    if (req->unlock) {
        while ((rc = flock(req->fd, LOCK_UN)) != 0 && errno == EINTR)
            ;
        return rc == 0 ? CLI_EX_OK : flock_error(req, errno);
    }
    while ((rc = flock(req->fd, op | LOCK_NB)) != 0 && errno == EINTR)
        ;
    if (rc != 0) {
        if (errno != EWOULDBLOCK && errno != EAGAIN)
            return flock_error(req, errno);
        if (req->verbose)
            verbose_holder(req);
        if (req->nonblock || req->timeout == 0) {
            if (req->verbose)
                cli_error("failed to get lock on file descriptor %d", req->fd);
            return req->conflict_code;
        }
        if (req->timeout < 0 || req->timeout > CLI_MAX_TIMER) {
            /* Waiting forever: a signal with its default action ends us. */
            while ((rc = flock(req->fd, op)) != 0 && errno == EINTR)
                ;
            if (rc != 0)
                return flock_error(req, errno);
        } else {
            rc = timed_flock(req->fd, op, req->timeout);
            if (rc < 0)
                return flock_error(req, errno);
            if (rc > 0) {
                if (req->verbose)
                    cli_error("timed out after %.3f s waiting for file descriptor %d",
                              fl_monotonic() - start, req->fd);
                return req->conflict_code;
            }
        }
    }
    if (req->verbose)
        cli_error("got %s lock on file descriptor %d after %.3f s",
                  req->shared ? "shared" : "exclusive", req->fd, fl_monotonic() - start);
    return CLI_EX_OK;
}
