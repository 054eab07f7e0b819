/*
 * The soft lock's protocol (soft.c) and the primitives a backend supplies
 * for it (posix.c). The protocol is written once, here; a backend only knows
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
    int fd;         /* kept open (so the identity stays unique), or -1 */
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

/* FNV-1a of a file name (owner.c). */
FL__HIDDEN uint64_t fl__name_hash(const char *s);

/* ---- primitives (posix.c) --------------------------------------------- */

/* Creates path with O_EXCL semantics, writes the owner record (of this
 * process, or of owner_pid when > 0: fl_set_owner_pid) in
 * full, applies an explicit mode exactly (mode != FL_MODE_DEFAULT; the umask
 * does not apply to it). Returns the open descriptor and fills id, or -1
 * with errno set (EEXIST: the name is taken). On a failed write the file is
 * removed again. */
FL__HIDDEN int fl__prim_create(const char *path, int mode, long owner_pid, fl__fid *id);
/* Reads a regular file without following links or blocking on a FIFO;
 * the descriptor stays open in rec->fd. Returns 0 or an errno value
 * (ENOENT: no such file; EINVAL: not a regular file, rec->id then holds
 * the lstat mode in dev; EAGAIN: replaced while reading). */
FL__HIDDEN int fl__prim_read(const char *path, fl__record *rec);
/* lstat identity: 0, or an errno value. */
FL__HIDDEN int fl__prim_id(const char *path, fl__fid *id);
/* rename(from, to), replacing to atomically: 0 or an errno value. */
FL__HIDDEN int fl__prim_replace(const char *from, const char *to);
/* unlink: 0 or an errno value (ENOENT included). */
FL__HIDDEN int fl__prim_remove(const char *path);
/* close: 0 or an errno value (EINTR counts as closed). */
FL__HIDDEN int fl__prim_close(int fd);
/* Whether the process named by an owner record is gone (FL__GONE), alive
 * (FL__ALIVE) or cannot be told (FL__UNKNOWN); a record that does not parse
 * is FL__GONE once older than grace seconds (the create-to-write moment),
 * else FL__ALIVE. */
FL__HIDDEN int fl__prim_judge(const fl__record *rec, double grace);
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
/* Reclaim-name of the file whose identity is id, beside path (used by the
 * tests to plant and find claims). Returns 0, or -1 when it does not fit. */
FL__HIDDEN int fl__soft_claim_name(const char *path, const fl__fid *id, char *out, size_t cap);

#endif
