/*
 * The generic half of the POSIX backend (platform.h): what macOS and the
 * BSDs use, and what Linux builds with -DFL_GENERIC_POSIX=ON so that CI
 * tests it. Only POSIX: no inotify, eventfd, pidfd or /proc.
 *
 * What is weaker than on Linux, and why it stays correct:
 *
 * - Waits are timed re-checks: lock.c re-tries the lock every
 *   max(poll_interval, FL__MIN_POLL) seconds. A release is noticed at the
 *   next re-check instead of at once; nothing is missed, since every
 *   re-check is a real attempt.
 * - A soft marker's holder is proven gone only by kill(pid, 0) answering
 *   ESRCH. Records carry no start token, so a pid reused by another
 *   process after the holder died keeps the marker "alive": a stale marker
 *   may then wait for that process (or fl_break), but a live holder's
 *   marker is never taken. A pid is judged only on the same host name.
 * - No pid namespaces are known: pids are judged as the one namespace's.
 * - Who holds a kernel lock cannot be told (no lock table to read):
 *   fl_get_owner answers FL_ENOTSUP for it.
 * - File systems are taken as local: nothing reveals a mount that keeps
 *   flock on this host, so such a mount is not refused (docs/filesystems.md
 *   lists them; use the soft lock there).
 */
#include "platform.h"

/* The other half is linux.c: exactly one of the two has content in a
 * build, so that packagers may compile every .c file of core/src. */
#if !defined(FL__LINUX) && !defined(_WIN32)

#include "fsprobe.h"
#include "internal.h"
#include "seconds.h"

#include <errno.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---------------------------------------------------------------------- */
/* Seam entries Linux alone has                                            */
/* ---------------------------------------------------------------------- */

int fl__plat_inotify_init1(int flags) {
    (void)flags;
    errno = ENOSYS;
    return -1;
}

int fl__plat_inotify_add_watch(int fd, const char *path, uint32_t mask) {
    (void)fd, (void)path, (void)mask;
    errno = ENOSYS;
    return -1;
}

int fl__plat_pidfd_open(pid_t pid, unsigned int flags) {
    (void)pid, (void)flags;
    errno = ENOSYS;
    return -1;
}

/* ---------------------------------------------------------------------- */
/* Leases (platform.h says what these fallbacks cost)                      */
/* ---------------------------------------------------------------------- */

double fl__plat_boottime(void) { return fl__now(); }

int fl__plat_exited(long pid) {
    (void)pid; /* no pidfd: posix.c's kill(pid, 0) judges */
    return -1;
}

void fl__plat_name_thread(const char *name) { (void)name; }

/* ---------------------------------------------------------------------- */
/* Process identity                                                        */
/* ---------------------------------------------------------------------- */

void fl__plat_self(fl__self *out) {
    memset(out, 0, sizeof *out);
    out->pid = (long)getpid();
}

int fl__plat_start_token(long pid, char *out, size_t size) {
    (void)pid;
    if (size)
        out[0] = '\0';
    return -1;
}

int fl__plat_flock_holder(const char *path, uint64_t dev, uint64_t ino, long *pid) {
    (void)dev, (void)ino;
    *pid = -1;
    return fl__error(FL_ENOTSUP, ENOSYS,
                     "cannot tell who holds '%s': this system has no lock table to read (the "
                     "holder of a kernel lock is known only on Linux, from /proc/locks)",
                     path);
}

/* ---------------------------------------------------------------------- */
/* File systems                                                            */
/* ---------------------------------------------------------------------- */

int fl__fs_is_shared(const char *path) {
    (void)path;
    return 0;
}

int fl__fs_check_flock(const char *path, int fd, uint64_t dev) {
    (void)path, (void)fd, (void)dev;
    return 0;
}

/* ---------------------------------------------------------------------- */
/* Wake-ups: none, the wait is a sleep                                     */
/* ---------------------------------------------------------------------- */

void fl__os_watch_open(fl_lock *l, int kind, fl__watch *w) {
    (void)l, (void)kind;
    fl__px_watch_none(w);
}

int fl__os_watch_wait(fl_lock *l, int kind, fl__watch *w, double seconds) {
    struct timespec ts;
    (void)kind, (void)w;
    if (fl__seconds_clamp(seconds, &seconds) != 0)
        seconds = 0;
    if (seconds <= 0)
        return 0;
    (void)fl__seconds_to_timespec(seconds, &ts);
    return fl__px_sleep(l, &ts);
}

void fl__os_watch_close(fl__watch *w) { fl__px_watch_none(w); }

/* No mutex of its own: nothing to hold across fork. */
void fl__os_atfork(int phase) { (void)phase; }

#endif /* !FL__LINUX && !_WIN32 */
