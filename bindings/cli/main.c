/*
 * filelock(1): run a command while holding a lock on a lock file, with
 * util-linux flock(1)'s usage and options, through libfilelock.
 *
 * The lock is taken by this process through the library and held until the
 * command ends. Unlike flock(1), the command does not inherit the lock's
 * descriptor (the library opens it close-on-exec and does not expose it), so
 * this process must outlive the command: signals that would kill it while
 * the command runs are caught and passed on to the command instead, and the
 * exit status is the command's. Only SIGKILL can separate the two.
 */
#define _GNU_SOURCE
#include "cli.h"

#include <filelock.h>

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

const char *cli_prog = "filelock";

void cli_error(const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "%s: ", cli_prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

double cli_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
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
           "Compatible with util-linux flock(1); the lock excludes flock(1), flock(2)\n"
           "and every libfilelock user (C, Python, Ruby, Lua).\n"
           "\n"
           "Options:\n"
           "  -x, -e, --exclusive          exclusive lock (the default)\n"
           "  -s, --shared                 shared lock (not with --soft)\n"
           "  -n, --nb, --nonblock         fail at once if the lock is held\n"
           "  -w, --timeout, --wait SECS   give up after SECS seconds (fractions allowed)\n"
           "  -E, --conflict-exit-code N   exit code for -n / -w failures (default 1)\n"
           "  -o, --close                  accepted; the command never inherits the lock\n"
           "  -u, --unlock                 unlock <fd>\n"
           "  -c, --command CMD            run CMD with \"$SHELL -c\" (default /bin/sh)\n"
           "      --soft                   use the soft lock (a marker file)\n"
           "      --mode OCTAL             permission bits of a new lock file\n"
           "      --owner LOCKFILE         print \"PID HOST\" of the holder; exit 1 if free\n"
           "      --verbose                report the wait and the holder on stderr\n"
           "  -h, --help                   show this help\n"
           "  -V, --version                show the version\n"
           "\n"
           "Exit status: the command's (128+N if signal N killed it); 1 (or -E) when\n"
           "the lock is held (-n) or the wait timed out (-w); 64 bad usage; 66 lock\n"
           "file missing, inaccessible or invalid; 69 locking unsupported here; 70\n"
           "internal error; 71 system error; 73 cannot create the lock file; 74 I/O\n"
           "error; 126/127 the command cannot be run / was not found.\n"
           "See filelock(1).\n",
           cli_prog, cli_prog, cli_prog, cli_prog);
}

/* ---------------------------------------------------------------------- */
/* Argument parsing                                                        */
/* ---------------------------------------------------------------------- */

enum { OPT_SOFT = 256, OPT_VERBOSE, OPT_OWNER, OPT_MODE };

typedef struct cli_args {
    int shared, nonblock, unlock, soft, verbose;
    double timeout; /* <0: forever */
    int conflict_code;
    int mode; /* FL_MODE_DEFAULT or 0..07777 */
    const char *command_string;
    const char *owner;
} cli_args;

static int parse_seconds(const char *s, double *out) {
    char *end;
    double v;
    errno = 0;
    v = strtod(s, &end);
    if (end == s || *end != '\0' || errno == ERANGE || isnan(v) || isinf(v) || v < 0)
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

/* Signals whose default action would end this process while it holds the
 * lock. Before the command starts they cancel the wait; while it runs they
 * are passed on to it. */
static const int k_caught[] = {SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGALRM};
#define N_CAUGHT (sizeof k_caught / sizeof k_caught[0])

static volatile sig_atomic_t g_signal; /* caught before the command started */
static volatile sig_atomic_t g_child;  /* the command's pid once started */
static int g_was_ignored[N_CAUGHT];

static void on_signal(int sig, siginfo_t *info, void *ctx) {
    int saved = errno;
    pid_t child = (pid_t)g_child;
    (void)ctx;
    if (child > 0) {
        /* Pass on only what a process sent to us alone (si_code <= 0:
         * kill, sigqueue, tkill). A terminal's ^C or ^\ (SI_KERNEL) already
         * reaches the whole foreground group, the command included. */
        if (!info || info->si_code <= 0)
            kill(child, sig);
    } else {
        g_signal = sig;
    }
    errno = saved;
}

static void catch_signals(void) {
    struct sigaction sa, old;
    size_t i;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_signal;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    for (i = 0; i < N_CAUGHT; i++)
        sigaddset(&sa.sa_mask, k_caught[i]);
    for (i = 0; i < N_CAUGHT; i++) {
        /* A signal ignored by whoever started us (nohup, a background job)
         * stays ignored, for us and for the command. */
        if (sigaction(k_caught[i], NULL, &old) == 0 && old.sa_handler == SIG_IGN) {
            g_was_ignored[i] = 1;
            continue;
        }
        sigaction(k_caught[i], &sa, NULL);
    }
}

static void default_signals(void) {
    size_t i;
    for (i = 0; i < N_CAUGHT; i++)
        if (!g_was_ignored[i])
            signal(k_caught[i], SIG_DFL);
}

static void caught_set(sigset_t *set) {
    size_t i;
    sigemptyset(set);
    for (i = 0; i < N_CAUGHT; i++)
        sigaddset(set, k_caught[i]);
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
    return 128 + sig; /* not reached: the default action of every caught signal is fatal */
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
        return CLI_EX_IOERR;
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

/* Acquires per the options. Returns 1 when won, else 0 with *exit_code set
 * (a conflict code may be 0, so it cannot double as the success value). */
static int acquire(fl_lock *lock, const cli_args *a, int *exit_code) {
    double start = cli_now();
    double poll = fl_get_poll_interval(lock);
    int one_attempt = a->nonblock || a->timeout == 0;
    int (*take)(fl_lock *, double, int, double) = a->shared ? fl_acquire_shared : fl_acquire_ex;
    int rc;

    if (!a->verbose) {
        rc = take(lock, a->timeout, !a->nonblock, poll);
    } else {
        /* One attempt first, so that a conflict can be reported with its
         * holder before the wait starts. */
        rc = take(lock, 0, 1, poll);
        if (rc == FL_ETIMEOUT) {
            verbose_holder(fl_lock_path(lock), a->soft);
            if (!one_attempt) {
                double left = -1;
                if (a->timeout >= 0) {
                    left = a->timeout - (cli_now() - start);
                    if (left < 0)
                        left = 0; /* one more attempt, never "forever" */
                }
                rc = take(lock, left, 1, poll);
            }
        }
    }
    if (rc == FL_ETIMEOUT) {
        if (a->verbose) {
            if (one_attempt)
                cli_error("failed to get lock on '%s'", fl_lock_path(lock));
            else
                cli_error("timed out after %.3f s waiting for '%s'", cli_now() - start,
                          fl_lock_path(lock));
        }
        *exit_code = a->conflict_code;
        return 0;
    }
    if ((rc == FL_ECANCELED || rc == FL_EINTR) && g_signal) {
        *exit_code = die_by_signal(g_signal);
        return 0;
    }
    if (rc != 0) {
        *exit_code = lock_error(rc, !a->soft);
        return 0;
    }
    if (a->verbose)
        cli_error("got %s lock on '%s' after %.3f s", a->shared ? "shared" : "exclusive",
                  fl_lock_path(lock), cli_now() - start);
    return 1;
}

/* Starts the command and waits for it; returns its exit status. */
static int run(char *const *cmd) {
    sigset_t caught, old_mask;
    pid_t pid;
    int status;

    /* Blocked across fork so that no signal is lost or misdirected before
     * g_child is set: the parent forwards everything that arrives after. */
    caught_set(&caught);
    sigprocmask(SIG_BLOCK, &caught, &old_mask);
    if (g_signal) {
        sigprocmask(SIG_SETMASK, &old_mask, NULL);
        return -1;
    }
    fflush(NULL);
    pid = fork();
    if (pid < 0) {
        int e = errno;
        sigprocmask(SIG_SETMASK, &old_mask, NULL);
        cli_error("cannot start '%s': %s", cmd[0], strerror(e));
        return CLI_EX_OSERR;
    }
    if (pid == 0) {
        int e;
        default_signals();
        sigprocmask(SIG_SETMASK, &old_mask, NULL);
        execvp(cmd[0], cmd);
        e = errno;
        cli_error("cannot run '%s': %s", cmd[0], strerror(e));
        _exit(e == ENOENT ? CLI_EX_NOTFOUND : CLI_EX_NOEXEC);
    }
    g_child = (sig_atomic_t)pid;
    sigprocmask(SIG_SETMASK, &old_mask, NULL);
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            cli_error("cannot wait for '%s': %s", cmd[0], strerror(errno));
            return CLI_EX_OSERR;
        }
    }
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return CLI_EX_SOFTWARE;
}

static int path_form(const char *path, char *const *cmd, const cli_args *a) {
    fl_options opts = FL_OPTIONS_INIT;
    fl_lock *lock;
    int rc, status;

    opts.kind = a->soft ? FL_SOFT : FL_KERNEL;
    opts.mode = a->mode;
    opts.timeout = a->timeout;
    opts.blocking = !a->nonblock;
    rc = fl_lock_new(&lock, path, &opts);
    if (rc != 0)
        return lock_error(rc, 0);

    catch_signals();
    fl_set_cancel(lock, cancel_on_signal, NULL);
    if (!acquire(lock, a, &rc)) {
        fl_lock_free(lock);
        return rc;
    }
    status = run(cmd);
    if (status < 0) {
        /* A signal arrived between winning the lock and starting. */
        fl_lock_free(lock);
        return die_by_signal(g_signal);
    }
    if (fl_release(lock, 1) != 0)
        cli_error("warning: %s", fl_last_error());
    fl_lock_free(lock);
    return status;
}

/* ---------------------------------------------------------------------- */
/* main                                                                    */
/* ---------------------------------------------------------------------- */

int main(int argc, char **argv) {
    static const struct option longopts[] = {
        {"shared", no_argument, NULL, 's'},
        {"exclusive", no_argument, NULL, 'x'},
        {"nonblock", no_argument, NULL, 'n'},
        {"nb", no_argument, NULL, 'n'},
        {"close", no_argument, NULL, 'o'},
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
        {NULL, 0, NULL, 0},
    };
    cli_args a;
    int c, nargs, mode_given = 0;
    char *shell_cmd[4];
    char **cmd = NULL;
    const char *target;

    memset(&a, 0, sizeof a);
    a.timeout = -1;
    a.conflict_code = CLI_EX_CONFLICT;
    a.mode = FL_MODE_DEFAULT;

    /* waitpid() needs SIGCHLD not to be ignored (an inherited SIG_IGN
     * makes children vanish without a status). */
    signal(SIGCHLD, SIG_DFL);

    /* "+": options end at the first operand, as in flock(1), so that the
     * command's own options are left alone. */
    while ((c = getopt_long(argc, argv, "+sxenouc:w:E:hV", longopts, NULL)) != -1) {
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
            /* The command never inherits the library's close-on-exec lock
             * descriptor, which is what -o asks for. */
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
        default:
            return usage_error(NULL); /* getopt has said what was wrong */
        }
    }

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
        fd = strtol(target, NULL, 10);
        if (fd > 1000000 || strlen(target) > 7)
            return usage_error("invalid file descriptor '%s'", target);
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
