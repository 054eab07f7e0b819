/* LD_PRELOAD shim for test_wakeup_attack.py: the first flock() that finds
 * the lock held raises SIGUSR1 on the calling thread (once FL_SHIM_SIGNAL is
 * set), i.e. during the acquire's first attempt, before the wait installs
 * its signal wake-up pipe. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/file.h>
int flock(int fd, int op) {
    static int (*real)(int, int);
    static int done;
    int rc, e;
    if (!real)
        real = (int (*)(int, int))dlsym(RTLD_NEXT, "flock");
    rc = real(fd, op);
    e = errno;
    if (rc < 0 && e == EWOULDBLOCK && !done && getenv("FL_SHIM_SIGNAL")) {
        done = 1;
        raise(SIGUSR1);
    }
    errno = e;
    return rc;
}
