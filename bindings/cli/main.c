/*
 * filelock(1): run a command while holding a lock on a lock file, with
 * util-linux flock(1)'s usage and options, through libfilelock.
 *
 * The lock is taken through the library, and it lives exactly as long as
 * the command, not as long as this process: the command inherits the kernel
 * lock's descriptor (fl_lock_fd), as with flock(1), and a soft marker names
 * the command's pid (fl_set_owner_pid), so killing filelock, even with
 * SIGKILL, cannot free the lock while the command runs. Signals sent to
 * filelock meanwhile are passed on to the command, and the exit status is
 * the command's. Exit statuses and messages follow flock(1) 2.38; the man
 * page lists every difference with its reason.
 */
#define _GNU_SOURCE
#include "cli.h"

#include <filelock.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

const char *cli_prog = "filelock";

void cli_error(const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "%s: ", cli_prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* ---------------------------------------------------------------------- */
/* Usage                                                                   */
/* ---------------------------------------------------------------------- */

static void short_usage(void) {
    fprintf(stderr,
            "Usage: %s [options] <lockfile> <command> [<argument>...]\n"
            "       %s [options] <lockfile> -c <command string>\n"
            "       %s [options] <fd>\n"
            "       %s [--soft] --owner <lockfile>\n"
            "Try '%s --help' for more information.\n",
            cli_prog, cli_prog, cli_prog, cli_prog, cli_prog);
}

static int usage_error(const char *fmt, ...) {
    va_list ap;
    if (fmt) {
        fprintf(stderr, "%s: ", cli_prog);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
    }
    short_usage();
    return CLI_EX_USAGE;
}

static void help(void) {
    printf("Usage:\n"
           "  %s [options] <lockfile> <command> [<argument>...]\n"
           "  %s [options] <lockfile> -c <command string>\n"
           "  %s [options] <fd>\n"
           "  %s [--soft] --owner <lockfile>\n"
           "\n"
           "Run a command while holding a lock on <lockfile> (created if\n"
           "missing, never deleted), or lock an open file descriptor of the shell.\n"
           "The lock lasts as long as the command; signals are passed on to it.\n"
           "Compatible with util-linux flock(1); the lock excludes flock(1), flock(2)\n"
           "and every libfilelock user (C, Python, Ruby, Lua).\n"
           "\n"
           "Options:\n"
           "  -x, -e, --exclusive          exclusive lock (the default)\n"
           "  -s, --shared                 shared lock (not with --soft)\n"
           "  -n, --nb, --nonblock         fail at once if the lock is held\n"
           "  -w, --timeout, --wait SECS   give up after SECS seconds (fractions allowed)\n"
           "  -E, --conflict-exit-code N   exit code for -n / -w failures (default 1)\n"
           "  -o, --close                  do not pass the lock's descriptor to the command\n"
           "  -F, --no-fork                exec the command in place of filelock\n"
           "  -u, --unlock                 unlock <fd>\n"
           "  -c, --command CMD            run CMD with \"$SHELL -c\" (default /bin/sh)\n"
           "      --soft                   use the soft lock (a marker file)\n"
           "      --lease SECS             hold the soft lock as a lease of SECS seconds,\n"
           "                               refreshed while the command runs; signal the\n"
           "                               command if the lease is lost\n"
           "      --lease-signal SIG       the signal for a lost lease (default TERM)\n"
           "      --mode OCTAL             permission bits of a new lock file\n"
           "      --owner LOCKFILE         print \"PID HOST\" of the holder; exit 1 if free\n"
           "      --verbose                report the wait and the holder on stderr\n"
           "  -h, --help                   show this help\n"
           "  -V, --version                show the version\n"
           "\n"
           "Exit status: the command's (128+N if signal N killed it); 1 (or -E) when\n"
           "the lock is held (-n) or the wait timed out (-w); 64 bad usage; 65 bad\n"
           "file descriptor; 66 lock file missing, inaccessible or invalid; 69 the\n"
           "command cannot be run, or locking unsupported here; 70 internal error;\n"
           "71 system error; 73 cannot create the lock file; 74 I/O error, or the\n"
           "lease was lost (--lease) and the command exited 0.\n"
           "See filelock(1).\n",
           cli_prog, cli_prog, cli_prog, cli_prog);
}

/* ---------------------------------------------------------------------- */
/* Argument parsing                                                        */
/* ---------------------------------------------------------------------- */

enum { OPT_SOFT = 256, OPT_VERBOSE, OPT_OWNER, OPT_MODE, OPT_LEASE, OPT_LEASE_SIGNAL };

typedef struct cli_args {
    int shared, nonblock, unlock, soft, verbose, close, no_fork;
    double timeout; /* <0: forever */
    int conflict_code;
    int mode; /* FL_MODE_DEFAULT or 0..07777 */
    const char *command_string;
    const char *owner;
    double lease;     /* --lease: seconds, 0 when not a lease */
    int lease_signal; /* --lease-signal */
} cli_args;

/* The signals --lease-signal takes by name (with or without "SIG"). */
static const struct {
    const char *name;
    int sig;
} k_signals[] = {{"HUP", SIGHUP},   {"INT", SIGINT},   {"QUIT", SIGQUIT}, {"KILL", SIGKILL},
                 {"USR1", SIGUSR1}, {"USR2", SIGUSR2}, {"ALRM", SIGALRM}, {"TERM", SIGTERM}};

static int parse_signal(const char *s, int *out) {
    size_t i;
    char *end;
    long v;
    if (strncmp(s, "SIG", 3) == 0)
        s += 3;
    for (i = 0; i < sizeof k_signals / sizeof k_signals[0]; i++)
        if (strcmp(s, k_signals[i].name) == 0) {
            *out = k_signals[i].sig;
            return 0;
        }
    errno = 0;
    v = strtol(s, &end, 10);
    if (end == s || *end != '\0' || errno != 0 || v < 1 || v >= NSIG)
        return -1;
    *out = (int)v;
    return 0;
}

static int parse_seconds(const char *s, double *out) {
    char *end;
    double v;
    errno = 0;
    v = strtod(s, &end);
    /* ERANGE also reports an underflow (5e-324 and the like), whose result
     * is a usable tiny or zero duration; only an overflow is refused. */
    if (end == s || *end != '\0' || (errno == ERANGE && fabs(v) > 1.0) || isnan(v) || isinf(v) ||
        v < 0)
        return -1;
    *out = v;
    return 0;
}

static int parse_exit_code(const char *s, int *out) {
    char *end;
    long v;
    errno = 0;
    v = strtol(s, &end, 10);
    if (end == s || *end != '\0' || errno != 0 || v < 0 || v > 255)
        return -1;
    *out = (int)v;
    return 0;
}

static int parse_mode(const char *s, int *out) {
    long v = 0;
    const char *p = s;
    if (*p == '\0')
        return -1;
    for (; *p; p++) {
        if (*p < '0' || *p > '7')
            return -1;
        v = v * 8 + (*p - '0');
        if (v > 07777)
            return -1;
    }
    *out = (int)v;
    return 0;
}

static int all_digits(const char *s) {
    if (!*s)
        return 0;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return 0;
    return 1;
}

/* ---------------------------------------------------------------------- */
/* Signals                                                                 */
/* ---------------------------------------------------------------------- */

/* Every catchable signal is handled, except the job-control ones (TSTP,
 * TTIN, TTOU, CONT: stopping or continuing filelock never releases the
 * lock) and SIGCHLD. Before the command starts, a signal whose default
 * action is fatal cancels the wait; while the command runs, a signal that a
 * process sent to filelock is passed on to the command, and filelock goes
 * on waiting for it. */
static volatile sig_atomic_t g_signal; /* fatal signal caught before the command started */
static volatile sig_atomic_t g_child;  /* the command's pid once started */
/* A signal the kernel sent us while the command ran (a terminal's ^C, ^\\,
 * hangup): it reached the command too, and is not passed on. */
static volatile sig_atomic_t g_terminal_signal[NSIG];
static unsigned char g_was_ignored[NSIG];

static int handled(int sig) {
    switch (sig) {
    case SIGKILL:
    case SIGSTOP:
    case SIGCHLD:
    case SIGCONT:
    case SIGTSTP:
    case SIGTTIN:
    case SIGTTOU:
        return 0;
    default:
        /* glibc keeps the first real-time signals for itself. */
        return sig < 32 || (sig >= SIGRTMIN && sig <= SIGRTMAX);
    }
}

static int default_ignored(int sig) { return sig == SIGURG || sig == SIGWINCH; }

static int is_fault(int sig) {
    return sig == SIGSEGV || sig == SIGBUS || sig == SIGFPE || sig == SIGILL || sig == SIGTRAP ||
           sig == SIGSYS;
}

static void on_signal(int sig, siginfo_t *info, void *ctx) {
    int saved = errno;
    pid_t child = (pid_t)g_child;
    /* Sent by another process (kill, sigqueue, tkill), not by the kernel
     * (a terminal, a fault) nor by ourselves (abort). */
    int from_process = info && info->si_code <= 0 && info->si_pid != getpid();
    (void)ctx;
    if (is_fault(sig) && !from_process) {
        /* A real fault in filelock: returning re-runs the faulting
         * instruction with the default action, which ends us. */
        signal(sig, SIG_DFL);
    } else if (child > 0) {
        /* A terminal's ^C, ^\\ or hangup already reaches the whole
         * foreground group, the command included: not sent twice. */
        if (from_process)
            kill(child, sig);
        else if (info && info->si_code > 0)
            g_terminal_signal[sig] = 1;
    } else if (!default_ignored(sig) && !g_signal && (!info || info->si_code > 0 || from_process)) {
        /* Not one we raised ourselves: a SIGPIPE from our own write to a
         * closed pipe is an EPIPE we handle, and abort() re-raises. */
        g_signal = sig;
    }
    errno = saved;
}

static void handled_set(sigset_t *set) {
    int sig;
    sigemptyset(set);
    for (sig = 1; sig < NSIG; sig++)
        if (handled(sig))
            sigaddset(set, sig);
}

static void catch_signals(void) {
    struct sigaction sa, old;
    int sig;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_signal;
    /* The lock wait still sees the signal: the cancel callback is
     * consulted at least every 50 ms. */
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    handled_set(&sa.sa_mask);
    for (sig = 1; sig < NSIG; sig++) {
        if (!handled(sig))
            continue;
        /* A signal ignored by whoever started us (nohup, a background job)
         * stays ignored, for us and for the command. */
        if (sigaction(sig, NULL, &old) == 0 && old.sa_handler == SIG_IGN) {
            g_was_ignored[sig] = 1;
            continue;
        }
        sigaction(sig, &sa, NULL);
    }
}

static void default_signals(void) {
    int sig;
    for (sig = 1; sig < NSIG; sig++)
        if (handled(sig) && !g_was_ignored[sig])
            signal(sig, SIG_DFL);
}

/* Ends this process the way the signal would have, so that the caller's
 * shell sees "killed by SIG" (status 128+N). */
static int die_by_signal(int sig) {
    sigset_t set;
    signal(sig, SIG_DFL);
    sigemptyset(&set);
    sigaddset(&set, sig);
    sigprocmask(SIG_UNBLOCK, &set, NULL);
    raise(sig);
    return 128 + sig; /* not reached: g_signal only holds signals whose default is fatal */
}

static int cancel_on_signal(void *data, int interrupted) {
    (void)data;
    (void)interrupted;
    return g_signal != 0;
}

/* ---------------------------------------------------------------------- */
/* Library errors                                                          */
/* ---------------------------------------------------------------------- */

/* Maps a library error code to the documented exit code (sysexits.h). */
static int exit_code_for(int rc) {
    switch (rc) {
    case FL_EACCES:
    case FL_ENOENT:
    case FL_ENOTDIR:
    case FL_EISDIR:
    case FL_ELOOP:
    case FL_ENOTREG:
    case FL_ENAMETOOLONG:
    case FL_EINVAL:
        return CLI_EX_NOINPUT;
    case FL_EROFS:
    case FL_ENOSPC:
        return CLI_EX_CANTCREAT;
    case FL_ENOTSUP:
        return CLI_EX_UNAVAILABLE;
    case FL_EIO:
    case FL_ELOST:
        return CLI_EX_IOERR;
    case FL_ELEASEMISMATCH:
        return CLI_EX_USAGE; /* --lease differs from the holder's: every user must agree */
    case FL_ENOMEM:
    case FL_EOS:
        return CLI_EX_OSERR;
    default:
        return CLI_EX_SOFTWARE;
    }
}

/* Prints the library's message for a failed call; hint_soft adds the way
 * out for file systems without flock(2). Returns the exit code. */
static int lock_error(int rc, int hint_soft) {
    const char *msg = fl_last_error();
    cli_error("%s%s", *msg ? msg : fl_strerror(rc),
              hint_soft && rc == FL_ENOTSUP ? " (try --soft)" : "");
    return exit_code_for(rc);
}

/* ---------------------------------------------------------------------- */
/* --owner                                                                 */
/* ---------------------------------------------------------------------- */

/* Prints "PID HOST" of the holder: exit 0 if held, 1 if free. */
static int print_owner(const char *path, int soft) {
    fl_owner o;
    char host[256];
    int rc = cli_lookup_owner(path, soft, &o);
    if (rc == FL_ENOENT)
        return 1;
    if (rc == FL_ENOTSUP && soft) {
        /* A marker without an owner record: held, holder unknown. */
        printf("unknown\n");
    } else if (rc != 0) {
        return lock_error(rc, 0);
    } else if (o.pid <= 0) {
        printf("unknown\n");
    } else {
        cli_clean(host, sizeof host, o.hostname);
        printf("%ld %s\n", o.pid, host[0] ? host : "unknown");
    }
    return fflush(stdout) == 0 ? 0 : CLI_EX_IOERR;
}

/* ---------------------------------------------------------------------- */
/* Running the command                                                     */
/* ---------------------------------------------------------------------- */

static void verbose_holder(const char *path, int soft) {
    fl_owner o;
    char what[4200]; /* the quoted path, cut if very long */
    int rc = cli_lookup_owner(path, soft, &o);
    snprintf(what, sizeof what, "'%s'", path);
    if (rc == 0 || (rc == FL_ENOTSUP && soft))
        cli_describe_owner(what, rc, &o);
}

/* flock(1) creates the lock file but not its directory: a missing parent is
 * an error (66), not created as the library would. */
static int check_parent(const char *path) {
    struct stat st;
    char *copy = strdup(path);
    int e = 0;
    if (!copy) {
        cli_error("out of memory");
        return CLI_EX_OSERR;
    }
    if (*path && stat(dirname(copy), &st) != 0)
        e = errno;
    free(copy);
    if (e == 0)
        return 0;
    cli_error("cannot open lock file '%s': %s", path, strerror(e));
    return e == ENOMEM ? CLI_EX_OSERR : CLI_EX_NOINPUT;
}

/* Acquires per the options. Returns 1 when won, else 0 with *exit_code set
 * (a conflict code may be 0, so it cannot double as the success value). */
static int acquire(fl_lock *lock, const cli_args *a, int *exit_code) {
    double start = fl_monotonic();
    int one_attempt = a->nonblock || a->timeout == 0;
    fl_acquire_args args;
    int rc;

    /* The poll interval is the handle's; the deadline is taken now. */
    fl_acquire_args_init(&args);
    args.shared = a->shared;
    args.set = FL_ARG_TIMEOUT | FL_ARG_BLOCKING;
    args.timeout = a->timeout;
    args.blocking = !a->nonblock;
    rc = fl_acquire_args_resolve(lock, &args, &args);
    if (rc == 0 && !a->verbose) {
        rc = fl_acquire_with(lock, &args);
    } else if (rc == 0) {
        /* One attempt first, so that a conflict can be reported with its
         * holder before the wait starts; then the rest until the deadline
         * (past it: one more attempt, never "forever"). */
        fl_acquire_args once = args;
        once.deadline = -INFINITY;
        rc = fl_acquire_with(lock, &once);
        if (rc == FL_ETIMEOUT) {
            verbose_holder(fl_lock_path(lock), a->soft);
            if (!one_attempt)
                rc = fl_acquire_with(lock, &args);
        }
    }
    if (rc == FL_ETIMEOUT) {
        if (a->verbose) {
            if (one_attempt)
                cli_error("failed to get lock on '%s'", fl_lock_path(lock));
            else
                cli_error("timed out after %.3f s waiting for '%s'", fl_monotonic() - start,
                          fl_lock_path(lock));
        }
        *exit_code = a->conflict_code;
        return 0;
    }
    if ((rc == FL_ECANCELED || rc == FL_EINTR) && g_signal) {
        *exit_code = 128 + g_signal; /* the caller dies by it */
        return 0;
    }
    if (rc != 0) {
        *exit_code = lock_error(rc, !a->soft);
        return 0;
    }
    if (a->verbose)
        cli_error("got %s lock on '%s' after %.3f s", a->shared ? "shared" : "exclusive",
                  fl_lock_path(lock), fl_monotonic() - start);
    return 1;
}

/* The command, started but held back until the lock is ours. */
typedef struct cli_child {
    pid_t pid;
    int go_fd; /* write end: one byte lets the command run; closing it ends the child */
} cli_child;

/* --lease: the signal the command gets if filelock dies before it (0: none),
 * and filelock's pid, set before the fork. */
static int g_orphan_signal;
static pid_t g_parent_pid;

/* In the child: waits for the go byte, then runs the command with keep_fd
 * (the lock's descriptor, or -1) inherited. Never returns. */
static void child_main(char *const *cmd, int go_read, int keep_fd) {
    char b;
    ssize_t n = 1;
    int e;
    while (go_read >= 0 && (n = read(go_read, &b, 1)) < 0 && errno == EINTR)
        ;
    if (n != 1)
        _exit(0); /* the lock was not won: filelock reports why */
#ifdef __linux__
    /* A lease lives only as long as filelock's heartbeat: once filelock is
     * gone (even by SIGKILL), a waiter takes the lease when it expires
     * while the command may still run. Tell the command at once, as for
     * any lost lease. Checked after arming: filelock may have died already. */
    if (g_orphan_signal > 0 &&
        (prctl(PR_SET_PDEATHSIG, g_orphan_signal, 0, 0, 0) != 0 || getppid() != g_parent_pid))
        kill(getpid(), g_orphan_signal);
#endif
    if (keep_fd >= 0 && fcntl(keep_fd, F_SETFD, 0) != 0) {
        cli_error("cannot pass the lock to '%s': %s", cmd[0], strerror(errno));
        _exit(CLI_EX_OSERR);
    }
    execvp(cmd[0], cmd);
    e = errno;
    cli_error("failed to execute %s: %s", cmd[0], strerror(e));
    _exit(e == ENOMEM ? CLI_EX_OSERR : CLI_EX_UNAVAILABLE);
}

/* Occupies each of descriptors 0-2 that the caller left closed with
 * /dev/null, close-on-exec: nothing filelock opens (the start gate's pipe,
 * the library's files, /proc) can land there, where our messages to stderr
 * would go into it (a byte in the gate's pipe would start the command
 * before the lock is won), and the command still inherits them closed. */
static unsigned char g_guarded[3]; /* closed by the caller, now /dev/null */

static void guard_stdio(void) {
    int fd;
    for (fd = 0; fd <= 2; fd++) {
        int g;
        if (fcntl(fd, F_GETFD) != -1 || errno != EBADF)
            continue;
        g = open("/dev/null", O_RDWR | O_CLOEXEC | O_NOCTTY);
        if (g == fd)
            g_guarded[fd] = 1;
        else if (g >= 0)
            close(g); /* cannot happen: the lowest free descriptor is fd */
    }
}

/* Moves a descriptor above 2 (close-on-exec) if it is not already; -1 if
 * that fails (fd closed). For when guard_stdio could not open /dev/null. */
static int above_stdio(int fd) {
    int hi;
    if (fd > 2)
        return fd;
    hi = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    close(fd);
    return hi;
}

/* Forks the child that will run the command: held back until go() when
 * gated (the lock is not won yet), else running at once. Returns 0, an exit
 * code, or -1 when a signal arrived since the lock was won (ungated only:
 * nothing was started; the caller releases and dies by it). */
static int spawn(char *const *cmd, int keep_fd, int gated, cli_child *c) {
    sigset_t handled, old_mask;
    int p[2] = {-1, -1};
    /* The gate costs two descriptors: only when the lock is still to be
     * won, so that a command runs under as tight a descriptor limit as
     * with flock(1). */
    if (gated && (pipe2(p, O_CLOEXEC) != 0 || (p[0] = above_stdio(p[0])) < 0 ||
                  (p[1] = above_stdio(p[1])) < 0)) {
        int e = errno;
        if (p[0] >= 0)
            close(p[0]);
        if (p[1] >= 0)
            close(p[1]);
        cli_error("cannot start '%s': %s", cmd[0], strerror(e));
        return CLI_EX_OSERR;
    }
    /* Blocked across fork, so that the child runs no handler of ours
     * before it has put the defaults back, and (ungated) so that a signal
     * is either seen here or passed on to the started command. */
    handled_set(&handled);
    sigprocmask(SIG_BLOCK, &handled, &old_mask);
    if (!gated && g_signal) {
        sigprocmask(SIG_SETMASK, &old_mask, NULL);
        return -1;
    }
    fflush(NULL);
    g_parent_pid = getpid();
    c->pid = fork();
    if (c->pid == 0) {
        if (gated)
            close(p[1]);
        default_signals();
        sigprocmask(SIG_SETMASK, &old_mask, NULL);
        child_main(cmd, p[0], keep_fd);
    }
    if (!gated && c->pid > 0)
        g_child = (sig_atomic_t)c->pid;
    sigprocmask(SIG_SETMASK, &old_mask, NULL);
    if (gated)
        close(p[0]);
    if (c->pid < 0) {
        int e = errno;
        if (gated)
            close(p[1]);
        cli_error("fork failed: %s", strerror(e));
        return CLI_EX_OSERR;
    }
    c->go_fd = p[1];
    return 0;
}

/* Reaps the child (after waiting for it to end). */
static void reap(pid_t pid) {
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
}

/* A child that never got the go byte ends at once: closing the pipe tells
 * it. The caller reaps it after releasing the lock (a soft marker may name
 * it). */
static void abandon(cli_child *c) { close(c->go_fd); }

/* Lets the command run, unless a signal arrived since the lock was won
 * (then returns -1: the caller releases and dies by it). From here on,
 * signals are forwarded to the command. */
static int go(cli_child *c) {
    sigset_t handled, old_mask;
    if (c->go_fd < 0)
        return 0; /* started ungated: already running */
    handled_set(&handled);
    sigprocmask(SIG_BLOCK, &handled, &old_mask);
    if (g_signal) {
        sigprocmask(SIG_SETMASK, &old_mask, NULL);
        return -1;
    }
    while (write(c->go_fd, "g", 1) < 0 && errno == EINTR)
        ;
    close(c->go_fd);
    g_child = (sig_atomic_t)c->pid;
    sigprocmask(SIG_SETMASK, &old_mask, NULL);
    return 0;
}

/* Waits until the command has ended, leaving it unreaped (a zombie keeps
 * its pid, so a soft marker naming it stays valid until we release), and
 * returns its exit status, 128+N if signal N killed it (*killed_by = N). */
static int wait_command(const cli_child *c, char *const *cmd, int *killed_by) {
    siginfo_t si;
    for (;;) {
        memset(&si, 0, sizeof si);
        if (waitid(P_PID, (id_t)c->pid, &si, WEXITED | WNOWAIT) == 0)
            break;
        if (errno != EINTR) {
            cli_error("waitpid failed for '%s': %s", cmd[0], strerror(errno));
            return CLI_EX_OSERR;
        }
    }
    if (si.si_code == CLD_EXITED)
        return si.si_status;
    if (si.si_code == CLD_KILLED || si.si_code == CLD_DUMPED) {
        *killed_by = si.si_status;
        return 128 + si.si_status;
    }
    return CLI_EX_OSERR;
}

/* --lease: the core's callback thread reports a lost lease here. The command is
 * told with --lease-signal; if it has not started yet, go() tells it. It
 * is never reaped before fl_release() returns (which waits for this
 * callback), so its pid cannot name another process meanwhile. */
static volatile sig_atomic_t g_lease_lost;
static int g_lease_signal = SIGTERM;

static void lease_lost(void *data, fl_lock *lock, fl_lease_loss reason, int os_errno,
                       const char *path) {
    pid_t child = (pid_t)g_child;
    (void)data, (void)lock;
    cli_error("lease on '%s' lost (%s%s%s): %s", path, fl_lease_loss_name(reason),
              os_errno ? ": " : "", os_errno ? strerror(os_errno) : "",
              child > 0 ? "signalling the command" : "the command will not run");
    g_lease_lost = 1;
    if (child > 0)
        kill(child, g_lease_signal);
}

/* filelock(1)'s path form. The command holds the lock as long as it runs:
 * - kernel lock: the command inherits the locked descriptor, as with
 *   flock(1), so the lock lives until the command (and any process it
 *   left holding the descriptor) is gone, whatever happens to filelock;
 *   -o keeps it from the command (filelock alone holds it then);
 * - soft lock: the marker names the command's pid, so it is not judged
 *   stale while the command runs, even if filelock is killed; filelock
 *   deletes it when the command ends.
 * Signals sent to filelock while the command runs are passed on to it. */
static int path_form(const char *path, char *const *cmd, const cli_args *a) {
    fl_options opts = FL_OPTIONS_INIT;
    fl_lock *lock;
    cli_child child;
    int rc, status, have_child = 0, killed_by = 0;

    if ((rc = check_parent(path)) != 0)
        return rc;
    opts.kind = a->soft ? FL_SOFT : FL_KERNEL;
    opts.mode = a->mode;
    opts.timeout = a->timeout;
    opts.blocking = !a->nonblock;
    opts.lease_duration = a->lease;
    rc = fl_lock_new(&lock, path, &opts);
    if (rc != 0)
        return lock_error(rc, 0);
    if (a->lease > 0) {
        g_lease_signal = a->lease_signal;
        g_orphan_signal = a->lease_signal;
        fl_set_compromise_callback(lock, lease_lost, NULL);
    }
    /* flock(2) needs only read access, and flock(1) opens read-only. */
    fl_set_read_only_open(lock, 1);

    catch_signals();
    fl_set_cancel(lock, cancel_on_signal, NULL);
    if (a->soft && !a->no_fork) {
        /* The marker must name the command, so it exists first. */
        if ((rc = spawn(cmd, -1, 1, &child)) != 0) {
            fl_lock_free(lock);
            return rc;
        }
        have_child = 1;
        fl_set_owner_pid(lock, (long)child.pid);
    }
    if (!acquire(lock, a, &rc)) {
        if (have_child)
            abandon(&child);
        fl_lock_free(lock);
        if (have_child)
            reap(child.pid);
        if (g_signal)
            return die_by_signal(g_signal);
        return rc;
    }
    if (a->no_fork) {
        /* -F: this process becomes the command and keeps the descriptor. */
        sigset_t handled, old_mask;
        int fd = fl_lock_fd(lock), e;
        if (fd < 0 || fcntl(fd, F_SETFD, 0) != 0) {
            cli_error("cannot pass the lock to '%s': %s", cmd[0],
                      fd < 0 ? fl_last_error() : strerror(errno));
            return CLI_EX_OSERR;
        }
        /* A signal caught since the lock was won would be lost by exec
         * (the handler records it, the command never hears of it): with
         * them blocked, either it was caught and we die by it, or it stays
         * pending and, once the defaults are back, acts on us or the command. */
        handled_set(&handled);
        sigprocmask(SIG_BLOCK, &handled, &old_mask);
        if (g_signal) {
            fl_lock_free(lock);
            return die_by_signal(g_signal);
        }
        default_signals();
        sigprocmask(SIG_SETMASK, &old_mask, NULL);
        execvp(cmd[0], cmd);
        e = errno;
        cli_error("failed to execute %s: %s", cmd[0], strerror(e));
        return e == ENOMEM ? CLI_EX_OSERR : CLI_EX_UNAVAILABLE;
    }
    if (!have_child) {
        int keep = a->close ? -1 : fl_lock_fd(lock);
        if (!a->close && keep < 0) {
            cli_error("%s", fl_last_error());
            fl_lock_free(lock);
            return CLI_EX_SOFTWARE;
        }
        if ((rc = spawn(cmd, keep, 0, &child)) != 0) {
            fl_lock_free(lock);
            return rc < 0 ? die_by_signal(g_signal) : rc;
        }
    }
    if (go(&child) != 0) {
        /* A signal arrived between winning the lock and starting. */
        abandon(&child);
        fl_lock_free(lock);
        reap(child.pid);
        return die_by_signal(g_signal);
    }
    if (g_lease_lost)
        kill(child.pid, g_lease_signal); /* lost before the command started */
    status = wait_command(&child, cmd, &killed_by);
    if (a->soft || a->close) {
        int rr = fl_release(lock, 1);
        /* The release may find a lost lease before the heartbeat did (a
         * frozen filelock woken after its command ended): lost all the same. */
        if (rr == FL_ELOST)
            g_lease_lost = 1;
        if (rr != 0)
            cli_error("warning: %s", fl_last_error());
        fl_lock_free(lock);
    }
    /* Without -o the kernel lock is not unlocked: like flock(1), we only
     * drop our descriptor (at exit), so a process the command left running
     * with the inherited descriptor keeps the lock. */
    /* Nothing is passed on once the pid can be reused by another process. */
    g_child = 0;
    reap(child.pid);
    /* The terminal's signal killed the command, and would have killed us
     * (as it kills flock(1)): die by it too, so that the shell that runs
     * us sees it. A shell script stops at ^C only if its child was killed
     * by SIGINT; an exit status of 130 lets its loop go on. */
    if (killed_by > 0 && killed_by < NSIG && g_terminal_signal[killed_by] &&
        !default_ignored(killed_by))
        return die_by_signal(killed_by);
    /* A lost lease is never a success, even if the command ignored the
     * signal: another process may have held the lock meanwhile. */
    if (g_lease_lost && status == 0)
        return CLI_EX_IOERR;
    return status;
}

/* ---------------------------------------------------------------------- */
/* main                                                                    */
/* ---------------------------------------------------------------------- */

int main(int argc, char **argv) {
    static const struct option longopts[] = {
        {"shared", no_argument, NULL, 's'},
        {"exclusive", no_argument, NULL, 'x'},
        {"nonblocking", no_argument, NULL, 'n'},
        {"nonblock", no_argument, NULL, 'n'},
        {"nb", no_argument, NULL, 'n'},
        {"close", no_argument, NULL, 'o'},
        {"no-fork", no_argument, NULL, 'F'},
        {"unlock", no_argument, NULL, 'u'},
        {"command", required_argument, NULL, 'c'},
        {"timeout", required_argument, NULL, 'w'},
        {"wait", required_argument, NULL, 'w'},
        {"conflict-exit-code", required_argument, NULL, 'E'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {"soft", no_argument, NULL, OPT_SOFT},
        {"verbose", no_argument, NULL, OPT_VERBOSE},
        {"owner", required_argument, NULL, OPT_OWNER},
        {"mode", required_argument, NULL, OPT_MODE},
        {"lease", required_argument, NULL, OPT_LEASE},
        {"lease-signal", required_argument, NULL, OPT_LEASE_SIGNAL},
        {NULL, 0, NULL, 0},
    };
    cli_args a;
    int c, nargs, mode_given = 0, signal_given = 0;
    char *shell_cmd[4];
    char **cmd = NULL;
    const char *target;

    memset(&a, 0, sizeof a);
    a.timeout = -1;
    a.conflict_code = CLI_EX_CONFLICT;
    a.mode = FL_MODE_DEFAULT;
    a.lease_signal = SIGTERM;

    /* waitpid() needs SIGCHLD not to be ignored (an inherited SIG_IGN
     * makes children vanish without a status). */
    signal(SIGCHLD, SIG_DFL);
    guard_stdio();

    /* "+": options end at the first operand, as in flock(1), so that the
     * command's own options are left alone. */
    /* getopt's own messages (every kind: unknown, ambiguous, missing or
     * unexpected argument, in flock(1)'s words), starting with the program
     * name like every other message, not with argv[0]'s path. */
    argv[0] = (char *)cli_prog;
    while ((c = getopt_long(argc, argv, "+sxenoFuc:w:E:hV", longopts, NULL)) != -1) {
        switch (c) {
        case 's':
            a.shared = 1;
            break;
        case 'x':
        case 'e':
            a.shared = 0;
            break;
        case 'n':
            a.nonblock = 1;
            break;
        case 'o':
            a.close = 1;
            break;
        case 'F':
            a.no_fork = 1;
            break;
        case 'u':
            a.unlock = 1;
            break;
        case 'c':
            a.command_string = optarg;
            break;
        case 'w':
            if (parse_seconds(optarg, &a.timeout) != 0)
                return usage_error("invalid timeout '%s' (seconds, >= 0)", optarg);
            break;
        case 'E':
            if (parse_exit_code(optarg, &a.conflict_code) != 0)
                return usage_error("invalid conflict exit code '%s' (0-255)", optarg);
            break;
        case 'h':
            help();
            return fflush(stdout) == 0 ? CLI_EX_OK : CLI_EX_IOERR;
        case 'V':
            printf("%s (libfilelock) %s\n", cli_prog, fl_version());
            return fflush(stdout) == 0 ? CLI_EX_OK : CLI_EX_IOERR;
        case OPT_SOFT:
            a.soft = 1;
            break;
        case OPT_VERBOSE:
            a.verbose = 1;
            break;
        case OPT_OWNER:
            a.owner = optarg;
            break;
        case OPT_MODE:
            if (parse_mode(optarg, &a.mode) != 0)
                return usage_error("invalid mode '%s' (octal, 0-7777)", optarg);
            mode_given = 1;
            break;
        case OPT_LEASE:
            if (parse_seconds(optarg, &a.lease) != 0 || a.lease <= 0)
                return usage_error("invalid lease '%s' (seconds, > 0)", optarg);
            a.soft = 1; /* a lease is a soft lock */
            break;
        case OPT_LEASE_SIGNAL:
            if (parse_signal(optarg, &a.lease_signal) != 0)
                return usage_error("invalid signal '%s' (a name such as TERM, or a number)",
                                   optarg);
            signal_given = 1;
            break;
        default: /* getopt has said what is wrong */
            return usage_error(NULL);
        }
    }
    if (a.no_fork && a.close)
        return usage_error("the --no-fork and --close options are incompatible");
    if (signal_given && a.lease <= 0)
        return usage_error("--lease-signal needs --lease");
    if (a.no_fork && a.soft)
        return usage_error("--no-fork is not available with --soft (nobody would remove the "
                           "marker after the command)");

    if (a.shared && a.soft)
        return usage_error("shared locks are not supported by the soft lock (--soft); use an "
                           "exclusive lock (-x, the default)");

    nargs = argc - optind;
    if (a.owner) {
        if (nargs != 0 || a.command_string)
            return usage_error("--owner takes only a lock file");
        return print_owner(a.owner, a.soft);
    }
    if (nargs == 0)
        return usage_error("no lock file or file descriptor given");
    target = argv[optind];

    if (a.command_string) {
        /* "filelock -c CMD lockfile" */
        if (nargs != 1)
            return usage_error("with -c before the lock file, give only the lock file");
    } else if (nargs >= 2 && (strcmp(argv[optind + 1], "-c") == 0 ||
                              strcmp(argv[optind + 1], "--command") == 0)) {
        /* "filelock lockfile -c CMD", flock(1)'s spelling */
        if (nargs != 3)
            return usage_error("%s requires exactly one command argument", argv[optind + 1]);
        a.command_string = argv[optind + 2];
    } else if (nargs >= 2) {
        cmd = argv + optind + 1;
    }

    if (a.command_string) {
        const char *sh = getenv("SHELL");
        shell_cmd[0] = (char *)(sh && *sh ? sh : "/bin/sh");
        shell_cmd[1] = (char *)"-c";
        shell_cmd[2] = (char *)a.command_string;
        shell_cmd[3] = NULL;
        cmd = shell_cmd;
    }

    if (!cmd) {
        cli_fd_request req;
        long fd;
        if (!all_digits(target))
            return usage_error("no command given for lock file '%s' (to lock an open file "
                               "descriptor, give its number)",
                               target);
        if (a.soft || mode_given)
            return usage_error("--soft and --mode need a lock file, not a file descriptor");
        /* Any int may be an open descriptor (the limit is nr_open, up to
         * INT_MAX): fstat tells. Beyond an int, bad usage, as in flock(1). */
        errno = 0;
        fd = strtol(target, NULL, 10);
        if (errno == ERANGE || fd > INT_MAX)
            return usage_error("invalid file descriptor '%s'", target);
        /* A descriptor the caller left closed is still closed to us, even
         * though guard_stdio put /dev/null there. */
        if (fd <= 2 && g_guarded[fd]) {
            cli_error("file descriptor %ld: %s", fd, strerror(EBADF));
            return CLI_EX_DATAERR;
        }
        req.fd = (int)fd;
        req.unlock = a.unlock;
        req.shared = a.shared;
        req.nonblock = a.nonblock;
        req.timeout = a.timeout;
        req.conflict_code = a.conflict_code;
        req.verbose = a.verbose;
        return cli_fd_lock(&req);
    }
    if (a.unlock)
        return usage_error("-u/--unlock works only on a file descriptor");
    return path_form(target, cmd, &a);
}
