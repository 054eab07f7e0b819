/*
 * Internal declarations of the filelock command-line program (not part of
 * the library's API). The program is split by concern: main.c parses the
 * command line and runs a command under a lock taken through the core;
 * fdlock.c implements the flock(1)-style "<fd>" form; owner.c asks the
 * library who holds a lock and prints it safely (--owner, --verbose).
 */
#ifndef FL_CLI_H
#define FL_CLI_H

#include <stddef.h>
#include <sys/types.h>

/* Exit codes (sysexits.h values, spelled out so the program does not depend
 * on that header being present). A lock conflict (-n, -w) exits with the
 * conflict code (1 unless -E says otherwise), as flock(1) does. */
#define CLI_EX_OK          0
#define CLI_EX_CONFLICT    1
#define CLI_EX_USAGE       64 /* bad usage, unsupported option (-s) */
#define CLI_EX_DATAERR     65 /* flock(2) failed on a descriptor (bad descriptor, ...) */
#define CLI_EX_NOINPUT     66 /* lock file not found / not accessible / invalid */
#define CLI_EX_UNAVAILABLE 69 /* the file system cannot lock; the command cannot be run */
#define CLI_EX_SOFTWARE    70 /* internal error */
#define CLI_EX_OSERR       71 /* fork failed, out of memory, other OS error */
#define CLI_EX_CANTCREAT   73 /* cannot create the lock file (read-only fs, disk full) */
#define CLI_EX_IOERR       74 /* input/output error */

/* The program name used in messages. */
extern const char *cli_prog;

/* Prints "filelock: <message>\n" to stderr. */
void cli_error(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;

/* Holder of a lock (owner.c) ---------------------------------------------- */

struct fl_owner;

/* Asks the library who holds the lock file at path (kernel lock, or the
 * soft marker when soft != 0). Returns fl_get_owner()'s code: 0 with *out
 * filled, FL_ENOENT when free, FL_ENOTSUP when the holder cannot be told,
 * or an error (message in fl_last_error()). */
int cli_lookup_owner(const char *path, int soft, struct fl_owner *out);

/* The same for the file open on descriptor fd (found through
 * /proc/self/fd). */
int cli_lookup_fd_owner(int fd, struct fl_owner *out);

/* Copies src into dst (NUL-terminated, at most size bytes) up to a newline,
 * replacing every byte that is not printable ASCII, and spaces, with '?':
 * owner records may be written by anybody and must not reach a terminal
 * raw, nor split the "PID HOST" output. */
void cli_clean(char *dst, size_t size, const char *src);

/* --verbose: writes "filelock: <what> is held by pid N (comm) on host H". */
void cli_describe_owner(const char *what, int rc, const struct fl_owner *o);

/* The <fd> form ----------------------------------------------------------- */

typedef struct cli_fd_request {
    int fd;
    int unlock;        /* -u */
    int shared;        /* -s */
    int nonblock;      /* -n */
    double timeout;    /* -w, <0 forever (above CLI_MAX_TIMER: forever too) */
    int conflict_code; /* -E */
    int verbose;       /* --verbose */
} cli_fd_request;

/* The longest -w an interval timer is armed for (about 31.7 years); a
 * longer wait is a wait forever. setitimer() cannot take every double, and
 * no one can tell the difference. */
#define CLI_MAX_TIMER 1e9

/* Locks or unlocks an inherited descriptor with flock(2); returns the exit
 * code. */
int cli_fd_lock(const cli_fd_request *req);

#endif
