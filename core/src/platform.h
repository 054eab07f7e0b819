/*
 * The POSIX backend in two halves.
 *
 * posix.c is the portable half: flock(2) on the lock file, the soft
 * marker's primitives (soft.c's protocol), owner records, the singleton
 * key. Everything it cannot do with POSIX alone it asks of the platform
 * half through this interface:
 *
 *   linux.c    inotify wait hub + eventfd + ppoll, pidfd wake-ups, start
 *              tokens from /proc/<pid>/stat and the boot id, the pid
 *              namespace, /proc/locks; with fsprobe.c (statfs f_type and
 *              /proc/self/mountinfo) for what the file system promises.
 *   generic.c  what macOS and the BSDs use (and Linux with
 *              -DFL_GENERIC_POSIX=ON): waits are timed re-checks, liveness
 *              is kill(pid, 0) alone, records carry no start token and no
 *              pid namespace, file systems are taken as local.
 *
 * One of the two is linked (core/CMakeLists.txt). The wait functions
 * (fl__os_watch_open / wait / close) and the fork handler (fl__os_atfork)
 * of internal.h are the platform half's too: their state is its own.
 */
#ifndef FL_PLATFORM_H
#define FL_PLATFORM_H

#include "internal.h"

#include <stddef.h>
#include <time.h>

/* FL__LINUX: the Linux half is built (tests check it to skip what needs
 * inotify, pidfd or /proc). */
#if defined(__linux__) && !defined(FL_GENERIC_POSIX)
#define FL__LINUX 1
#endif

/* posix.c: helpers the platform half shares ------------------------------ */

/* A new descriptor that landed on 0, 1 or 2 moved above them; -1 with errno
 * set (fd closed) when none is left. fd < 0 is passed through. */
FL__HIDDEN int fl__px_above_stdio(int fd, int cloexec);
/* open(2) through the seam, retried on EINTR and ESTALE, above stdio. */
FL__HIDDEN int fl__px_open(const char *path, int flags, mode_t mode);
/* close(2) through the seam; EINTR counts as closed. */
FL__HIDDEN int fl__px_close(int fd);
/* Sleeps ts without a wake-up source: 0, or FL_EINTR (error set, naming
 * the lock file) when a signal ended it. */
FL__HIDDEN int fl__px_sleep(const fl_lock *l, const struct timespec *ts);

/* A watch that wakes nobody (fd -1: the waiter sleeps), of this fork
 * generation: where fl__os_watch_open starts, and what close leaves. */
FL__HIDDEN void fl__px_watch_none(fl__watch *w);

/* Platform half: who we are, and is that process still the same one ----- */

/* The pid namespace of the initial namespace (PROC_PID_INIT_INO, fixed
 * since Linux 3.8): records written there carry no " pidns=". */
#define FL__INIT_PIDNS 0xEFFFFFFCULL
/* Linux, but our pid namespace cannot be read (no /proc in a sandbox or
 * chroot, a tmpfs over it): we may be in any pid namespace. Our records
 * then carry " pidns=1" -- no namespace has inode 1 (the kernel numbers
 * them from 0xF0000000, the initial one aside) -- so that no reader takes
 * our pid for one of its own, and we judge nobody's pid either. */
#define FL__NO_PIDNS 1ULL

/* The calling process as its owner records name it. */
typedef struct fl__self {
    long pid;
    /* Its pid namespace (an inode number); 0 on systems without pid
     * namespaces (generic.c: pids are judged as the initial namespace's),
     * FL__NO_PIDNS on Linux when it cannot be read. */
    uint64_t pidns;
    /* Start tokens of processes of our pid namespace can be read
     * (fl__plat_start_token); 0 on generic.c. */
    int can_token;
    char token[96]; /* our own start token, "" when there is none */
} fl__self;

/* This process's identity, cached per pid (a forked child reads its own). */
FL__HIDDEN void fl__plat_self(fl__self *out);

/* The start token of process pid: a decimal number that differs between
 * two processes that had the same pid (Linux: (boot id << 64) | start time
 * in clock ticks, from /proc). Returns 0 (out filled), 1 when the process
 * does not exist, -1 when it cannot be told (always on generic.c). */
FL__HIDDEN int fl__plat_start_token(long pid, char *out, size_t size);

/* Whether process pid (of our pid namespace) has exited, an unreaped
 * zombie included: 1, 0 (running), or -1 when this cannot be told (posix.c
 * then asks kill(pid, 0), which still finds a zombie). linux.c: a pidfd,
 * readable once the whole thread group has exited (Linux 5.3). generic.c:
 * always -1. */
FL__HIDDEN int fl__plat_exited(long pid);
#ifdef FL__LINUX
/* A pidfd (above stdio, close-on-exec) of the live holder of the soft
 * marker the hold h contends for, on this host and in our pid namespace,
 * confirmed by its start token; -1: none can be had (another host, no
 * token, no pidfd_open); FL__HOLDER_GONE: the holder is gone already. */
#define FL__HOLDER_GONE (-2)
FL__HIDDEN int fl__plat_holder_pidfd(const fl_lock *l, const struct fl__hold *h);
#endif

/* The pid of a process holding a flock(2) lock on the file dev/ino (path
 * names it in messages). 0 with *pid set; FL_ENOENT (error set) when no
 * holder is seen; FL_ENOTSUP when the system cannot tell (generic.c, or no
 * /proc/locks). */
FL__HIDDEN int fl__plat_flock_holder(const char *path, uint64_t dev, uint64_t ino, long *pid);

/* Leases (lease.c) ------------------------------------------------------- */

/* Seconds on a clock that keeps counting while the host is suspended, as
 * the contenders on other hosts do (a lease's age is theirs to judge).
 * linux.c: CLOCK_BOOTTIME. generic.c: the monotonic clock (fl__now), the
 * only one POSIX names; where it stops during suspend, a holder that slept
 * refreshes late by the time slept, a contender may have reclaimed the
 * expired lease meanwhile, and the holder then learns it at its next
 * refresh (owner-changed or marker-missing, docs/soft-lock-protocol.md). */
FL__HIDDEN double fl__plat_boottime(void);

/* Names the calling thread (at most 15 bytes) for ps and debuggers.
 * linux.c: prctl(PR_SET_NAME). generic.c: nothing (each system spells
 * pthread_setname_np differently; a name is a convenience only). */
FL__HIDDEN void fl__plat_name_thread(const char *name);

/* The real functions behind the seam entries that only Linux has (ENOSYS
 * on generic.c): posix.c puts them in fl__sys. */
FL__HIDDEN int fl__plat_inotify_init1(int flags);
FL__HIDDEN int fl__plat_inotify_add_watch(int fd, const char *path, uint32_t mask);
FL__HIDDEN int fl__plat_pidfd_open(pid_t pid, unsigned int flags);

#endif
