/*
 * The soft lock's protocol (soft.c) and the primitives a backend supplies
 * for it (posix.c, win32.c). The protocol is written once, here; a backend only knows
 * how to create a file exclusively, read a record, replace a name, remove a
 * name and tell whether a recorded process is gone. The protocol and its
 * proof: docs/soft-lock-protocol.md.
 */
#ifndef FL_SOFT_H
#define FL_SOFT_H

#include "internal.h"

#include <stddef.h>
#include <stdint.h>

/* The identity of a file: while one of its descriptors is open, no other
 * file can be given the same pair. */
typedef struct fl__fid {
    uint64_t dev;
    uint64_t ino;
} fl__fid;

/* A file read by fl__prim_read: identity, age and (bounded) content. */
typedef struct fl__record {
    fl__fid id;
    double age;     /* seconds since the last modification (wall clock) */
    double mtime;   /* the last modification, seconds (the file system's clock) */
    fl__fh fd;      /* kept open (so the identity stays unique), or FL__NO_FH */
    size_t len;     /* bytes of text */
    char text[512]; /* NUL-terminated; an owner record is well under this */
} fl__record;

/* Verdicts of fl__prim_judge. */
#define FL__ALIVE   0  /* the recorded process is running: keep its file */
#define FL__GONE    1  /* proven gone: its file may be taken over */
#define FL__UNKNOWN -1 /* cannot be told (other host, other pid namespace) */

/* Parses an owner record (owner.c): "<pid>\n<hostname>[ pidns=<n>]\n
 * [<start token>\n]". The hostname goes to out->hostname without the
 * namespace, which goes to *pidns (0 when not recorded). 0, or -1 when
 * malformed (out->pid is then -1). */
FL__HIDDEN int fl__parse_record(const char *buf, size_t len, fl_owner *out, uint64_t *pidns);

/* What a lease publishes in its marker besides the owner: the pure-Python
 * filelock's protocol 2 record ("filelock/2\npid=..\nhost=..\nmode=lease\n
 * token=..\nduration=..\n[start=..\n]"), so that its SoftFileLease and ours
 * judge each other's leases. */
typedef struct fl__lease_rec {
    double duration; /* seconds */
    char token[33];  /* 32 hex digits naming the claim */
} fl__lease_rec;

/* Formats a protocol 2 lease record (owner.c); its length, or -1. host may
 * carry the " pidns=<n>" tag, start may be "". */
FL__HIDDEN int fl__format_lease(char *buf, size_t size, long pid, const char *host,
                                const char *start, const fl__lease_rec *lease);
/* Whether a record is a protocol 2 lease record; its duration in *duration. */
FL__HIDDEN int fl__record_lease(const char *buf, size_t len, double *duration);

/* FNV-1a of a file name (owner.c). */
FL__HIDDEN uint64_t fl__name_hash(const char *s);

/* ---- primitives (posix.c, win32.c) ----------------------------------- */

/* errno values are the primitives' language on every platform; win32.c
 * maps its Win32 errors to them and keeps the Win32 text for the message
 * (fl__prim_path_error). */

/* Creates path with O_EXCL semantics, writes the owner record (of this
 * process, or of owner_pid when > 0: fl_set_owner_pid; as a protocol 2 lease
 * record when lease is not NULL) in full, applies an explicit mode exactly (mode !=
 * FL_MODE_DEFAULT; the umask does not apply to it). Returns the open file and fills id, or
 * FL__NO_FH with errno set (EEXIST: the name is taken). On a failed write the file is removed
 * again. The file stays open for as long as it is held: a file that is open keeps its identity (no
 * other file can be given it). */
FL__HIDDEN fl__fh fl__prim_create(const char *path, int mode, long owner_pid,
                                  const fl__lease_rec *lease, fl__fid *id);
/* Whether process pid (of this host and pid namespace) has exited, a zombie
 * not yet reaped included: 1, or 0 (running, or cannot be told). */
FL__HIDDEN int fl__prim_exited(long pid);
/* Sets an open file's modification time to now (a lease's refresh): 0 or an
 * errno value. */
FL__HIDDEN int fl__prim_touch(fl__fh fd);
/* Reads a regular file without following links or blocking on a FIFO;
 * the file stays open in rec->fd where an open file does not stop
 * fl__prim_replace from replacing it (POSIX), else rec->fd is FL__NO_FH and
 * the identity is one that a new file cannot repeat (Windows: volume,
 * file index and creation time). Returns 0 or an errno value
 * (ENOENT: no such file; EINVAL: not a regular file, rec->id then holds
 * the lstat mode in dev; EAGAIN: replaced while reading). */
FL__HIDDEN int fl__prim_read(const char *path, fl__record *rec);
/* lstat identity: 0, or an errno value. */
FL__HIDDEN int fl__prim_id(const char *path, fl__fid *id);
/* rename(from, to), replacing to atomically: 0 or an errno value.
 * EBUSY: to cannot be replaced for now because another process has it open
 * (Windows only, after a short retry): not a permanent error. */
FL__HIDDEN int fl__prim_replace(const char *from, const char *to);
/* unlink: 0 or an errno value (ENOENT included). */
FL__HIDDEN int fl__prim_remove(const char *path);
/* close: 0 or an errno value (EINTR counts as closed); FL__NO_FH: 0. */
FL__HIDDEN int fl__prim_close(fl__fh fd);
/* Whether the process named by an owner record is gone (FL__GONE), alive
 * (FL__ALIVE) or cannot be told (FL__UNKNOWN); a record that does not parse
 * is FL__GONE once older than grace seconds (the create-to-write moment),
 * else FL__ALIVE. */
FL__HIDDEN int fl__prim_judge(const fl__record *rec, double grace);
/* Whether a file judged without a valid record (rec, still open in
 * rec->fd) is unchanged since it was read and at least grace seconds old by
 * the file system's own clock: the modification time of fresh_fd, a file we
 * have just written in the same directory, minus rec's. The reader's clock
 * (rec->age) may be ahead of a file server's, or stepped: it alone would
 * make a holder between its create and its write look old at once. 1 yes,
 * 0 no (also when it cannot be told). */
FL__HIDDEN int fl__prim_still_old(const fl__record *rec, fl__fh fresh_fd, double grace);
/* The absolute spelling of path (resolved against the current directory
 * now, so that a later chdir cannot move it); malloc'ed, NULL on error. */
FL__HIDDEN char *fl__prim_absolute(const char *path);
/* A random 64-bit value for private names. */
FL__HIDDEN uint64_t fl__prim_random(void);
/* Creates the lock file's missing parent directories: 0 or a public code. */
FL__HIDDEN int fl__prim_make_parents(const fl_lock *l);
/* An error for errno e met at the lock path itself (open, read): names the
 * path and what is there (EINVAL: not a regular file; ELOOP: a symlink). */
FL__HIDDEN int fl__prim_path_error(const fl_lock *l, int e);
/* Calls fn(name, arg) for each entry of the directory part of path (or
 * ".") whose name starts with prefix; fn gets the full path. Errors end the
 * scan silently (garbage collection only). */
FL__HIDDEN void fl__prim_scan(const char *path, const char *prefix,
                              void (*fn)(const char *file, void *arg), void *arg);
/* Sleeps (used only by an operator's break waiting for a live reclaimer). */
FL__HIDDEN void fl__prim_sleep(double seconds);

/* ---- the protocol (soft.c) -------------------------------------------- */

FL__HIDDEN int fl__soft_try(fl_lock *l, fl__hold *h);
FL__HIDDEN int fl__soft_release(fl_lock *l, fl__hold *h, int owner);
FL__HIDDEN int fl__soft_break(fl_lock *l);
/* A lease's refresh of our marker (identity id, open in fd) at path, through
 * the claim of that identity: 0, a fl_lease_loss, or -1 with *err set (a
 * transient failure; EBUSY: a taker holds the claim). */
FL__HIDDEN int fl__soft_refresh(const fl_lock *l, const char *path, const fl__fid *id, fl__fh fd,
                                int *err);
/* Reclaim-name of the file whose identity is id, beside path (used by the
 * tests to plant and find claims). Returns 0, or -1 when it does not fit. */
FL__HIDDEN int fl__soft_claim_name(const char *path, const fl__fid *id, char *out, size_t cap);

#endif
