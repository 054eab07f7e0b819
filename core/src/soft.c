/*
 * The soft lock: an exclusive-create marker file holding its owner's
 * record, and the one protocol that takes over a marker whose owner is
 * provably gone. Platform-independent: the backend supplies the primitives
 * declared in soft.h. The states, steps, invariants and crash points are
 * in docs/soft-lock-protocol.md; the comments here say why each step is
 * where it is.
 *
 * The root problem: no file system offers "replace this name only if it
 * still names inode X", and RENAME_EXCHANGE is missing on FUSE, NFS,
 * GlusterFS and SMB. So everyone who wants to take over one judged file X
 * is serialised by an exclusive-create *claim* whose name is derived from
 * X's identity (dev, ino). Only the claim's winner touches the name, and
 * only with one atomic step: rename() of a fully written file over it (the
 * name never stands empty) or, for a dead claim, unlink(). Nobody else can
 * change the name meanwhile: X's owner is dead, other takers lose the
 * claim, exclusive creators fail while the name exists, and releasers only
 * remove their own marker. Every taker keeps X open, so X's identity cannot
 * be handed to a new file while it is being judged (on Windows, where an
 * open file cannot be replaced, X is closed instead and its identity is one
 * no new file repeats: see fl__prim_read in soft.h).
 */
#include "soft.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Grace for a file without a valid record: it covers the moment between an
 * owner's exclusive create and its write. The same 2 s as the pure-Python
 * filelock uses for markers. */
#define FL__MALFORMED_GRACE 2.0
/* How often a waiter judges an unchanged marker again. */
#define FL__STALE_RECHECK 0.5
/* A claim on a claim on a claim...: each level needs a crashed taker; past
 * this depth the waiter waits (and re-judges later) instead of recursing. */
#define FL__MAX_CLAIM_DEPTH 8
/* Longest name this protocol adds beside the lock file:
 * "." + 16 + "." + 16 + ".claim" = 40 bytes. */
#define FL__AUX_NAME_MAX 64

static int record_valid(const fl__record *rec) {
    fl_owner o;
    uint64_t ns;
    return fl__parse_record(rec->text, rec->len, &o, &ns) == 0;
}

static int same_id(const fl__fid *a, const fl__fid *b) {
    return a->dev == b->dev && a->ino == b->ino;
}

/* Splits path into the length of its directory part (with the slash) and
 * its final component. */
static const char *base_of(const char *path, size_t *dirlen) {
    const char *slash = strrchr(path, '/');
#ifdef _WIN32
    const char *bs = strrchr(path, '\\');
    if (bs && (!slash || bs > slash))
        slash = bs;
#endif
    *dirlen = slash ? (size_t)(slash - path + 1) : 0;
    return slash ? slash + 1 : path;
}

static int aux_name(const char *path, const char *tail, char *out, size_t cap) {
    size_t dirlen;
    const char *base = base_of(path, &dirlen);
    int n;
    if (dirlen + FL__AUX_NAME_MAX >= cap)
        return -1;
    memcpy(out, path, dirlen);
    n = snprintf(out + dirlen, cap - dirlen, ".%016llx.%s", (unsigned long long)fl__name_hash(base),
                 tail);
    return n < 0 || (size_t)n >= cap - dirlen ? -1 : 0;
}

/* The claim names the inode number only. The device number is the client's
 * own: two mounts of one network file system (NFS clients on two hosts,
 * GlusterFS FUSE clients) see one file with different st_dev, and a claim
 * named by it would let each client claim the same file under its own name
 * -- two takers, two holders. The claim sits in the file's directory, so
 * the file system is implied; two files of one directory sharing an inode
 * number on different devices (overlayfs layers) share a claim, which only
 * serialises their takers. The identity checks still compare (dev, ino),
 * each on one client. */
int fl__soft_claim_name(const char *path, const fl__fid *id, char *out, size_t cap) {
    char tail[48];
    snprintf(tail, sizeof tail, "%llx.claim", (unsigned long long)id->ino);
    return aux_name(path, tail, out, cap);
}

static int private_name(const char *path, char *out, size_t cap) {
    char tail[48];
    snprintf(tail, sizeof tail, "%016llx.new", (unsigned long long)fl__prim_random());
    return aux_name(path, tail, out, cap);
}

/* A permanent failure while taking over a file: an error naming both the
 * lock file and the file the step failed on, never "someone else won". */
static int takeover_error(const fl_lock *l, int e, const char *step, const char *file) {
    return fl__error(fl__code_from_errno(e), e,
                     "cannot reclaim soft lock '%s' from its dead holder: %s '%s': %s", l->path,
                     step, file, strerror(e));
}

/* The lease record a new marker of l publishes (a fresh token for each
 * claim), or NULL for a plain soft lock. */
static const fl__lease_rec *lease_rec(const fl_lock *l, fl__lease_rec *buf) {
    if (l->lease_duration <= 0)
        return NULL;
    buf->duration = l->lease_duration;
    snprintf(buf->token, sizeof buf->token, "%016llx%016llx", (unsigned long long)fl__prim_random(),
             (unsigned long long)fl__prim_random());
    return buf;
}

/* Results of take_over besides 0 (done) and negative codes. */
#define TAKE_BUSY  FL__BUSY  /* a live taker is at work: wait */
#define TAKE_RETRY FL__RETRY /* the name changed under us: start over */

static int take_over(const fl_lock *l, const char *path, const fl__record *judged, int replace,
                     fl__hold *h, int depth, int forced, double max_age);

/* Someone holds the claim `claim`: wait for it, or take it over when its
 * owner is gone (a taker that crashed). */
static int contend_claim(const fl_lock *l, const char *claim, int depth) {
    fl__record rec;
    int e = fl__prim_read(claim, &rec), r;
    if (e == ENOENT || e == EAGAIN)
        return TAKE_RETRY; /* finished meanwhile */
    if (e == EINVAL)
        return fl__error(FL_ENOTREG, 0, "cannot reclaim soft lock '%s': '%s' is not a regular file",
                         l->path, claim);
    if (e != 0)
        return takeover_error(l, e, "cannot read claim", claim);
    r = TAKE_BUSY;
    if (depth < FL__MAX_CLAIM_DEPTH && fl__prim_judge(&rec, FL__MALFORMED_GRACE) == FL__GONE) {
        r = take_over(l, claim, &rec, 0, NULL, depth + 1, 0, 0);
        if (r == 0)
            r = TAKE_RETRY; /* the dead claim is gone: claim again */
    }
    fl__prim_close(rec.fd);
    return r;
}

/* Takes over the file judged at `path` (its owner proven gone; judged->fd
 * keeps it open). replace != 0: a marker, replaced by our own fully written
 * one (h receives the hold); replace == 0: a dead claim, removed. Returns 0
 * when done, TAKE_BUSY, TAKE_RETRY, or a negative code. forced: an
 * operator's break, which does not judge. max_age > 0: the owner may live,
 * but its marker is older than that (an expired lease or lifetime): taken
 * only if still that old by the file system's clock and unchanged. */
static int take_over(const fl_lock *l, const char *path, const fl__record *judged, int replace,
                     fl__hold *h, int depth, int forced, double max_age) {
    fl__lease_rec lease;
    char claim[4096], priv[4096];
    fl__fid cid, now, mine;
    fl__fh cfd, pfd = FL__NO_FH;
    int e, rc;
    if (fl__soft_claim_name(path, &judged->id, claim, sizeof claim) != 0 ||
        (replace && private_name(path, priv, sizeof priv) != 0))
        return fl__error(FL_ENAMETOOLONG, ENAMETOOLONG, "cannot reclaim soft lock '%s': %s",
                         l->path, strerror(ENAMETOOLONG));
    /* Step 1: the claim, a compare-and-swap from "no such name". */
    cfd = fl__prim_create(claim, l->mode, 0, NULL, &cid);
    if (cfd == FL__NO_FH) {
        e = errno;
        if (e == EEXIST)
            return contend_claim(l, claim, depth);
        return takeover_error(l, e, "cannot create claim", claim);
    }
    /* Step 2: is the name still the file we judged? Only a claim holder may
     * change it now, and we are the one for this identity. */
    e = fl__prim_id(path, &now);
    if (e != 0 || !same_id(&now, &judged->id)) {
        rc = e == 0 || e == ENOENT ? TAKE_RETRY : takeover_error(l, e, "cannot stat", path);
        goto drop_claim;
    }
    /* A file judged gone for want of a record was judged by our clock; our
     * claim's modification time is the file system's "now": measure the
     * grace with that (a client clock ahead of the server's, or stepped
     * forward, would break a live owner between its create and its write
     * at once), and see that nobody wrote the file since we read it. */
    if (!forced && !record_valid(judged) && !fl__prim_still_old(judged, cfd, FL__MALFORMED_GRACE)) {
        rc = TAKE_BUSY;
        goto drop_claim;
    }
    /* An expired lease: the reader's clock said so; the file system's must
     * agree, and the holder must not have refreshed it since we read it (a
     * refresh changes its modification time). A holder that refreshes on
     * time is never older than one heartbeat_interval. */
    if (!forced && max_age > 0 && !fl__prim_still_old(judged, cfd, max_age)) {
        rc = TAKE_BUSY;
        goto drop_claim;
    }
    if (replace) {
        /* Step 3: our marker, complete, at a private name... */
        pfd = fl__prim_create(priv, l->mode, __atomic_load_n(&l->owner_pid, __ATOMIC_RELAXED),
                              lease_rec(l, &lease), &mine);
        if (pfd == FL__NO_FH) {
            rc = takeover_error(l, errno, "cannot create", priv);
            goto drop_claim;
        }
        /* Step 4: ...moved over the dead one in one step: the name never
         * stands empty, so no exclusive creator can slip in. */
        e = fl__prim_replace(priv, path);
        if (e != 0) {
            (void)fl__prim_remove(priv);
            fl__prim_close(pfd);
            /* EBUSY (Windows): another process has the dead marker open,
             * which stops a replace there; wait and judge again. */
            rc = e == EBUSY
                     ? TAKE_BUSY
                     : takeover_error(l, e, "cannot replace the dead holder's marker with", priv);
            goto drop_claim;
        }
        h->fd = pfd;
        h->dev = mine.dev;
        h->ino = mine.ino;
        h->have_id = 1;
    } else {
        /* Step 3': a dead claim may leave its name empty: an empty claim
         * name only means the next taker's create wins. */
        e = fl__prim_remove(path);
        if (e != 0 && e != ENOENT) {
            rc = takeover_error(l, e, depth ? "cannot remove dead claim" : "cannot remove marker",
                                path);
            goto drop_claim;
        }
    }
    rc = 0;
drop_claim:
    /* Step 5: the claim goes last; a crash before this leaves a claim of a
     * dead owner, which the next taker removes one level up. */
    e = fl__prim_remove(claim);
    fl__prim_close(cfd);
    if (e != 0 && e != ENOENT && rc >= 0 && !replace)
        rc = takeover_error(l, e, "cannot remove claim", claim);
    return rc;
}

/* The path the hold works on: absolute, resolved at the first attempt, so
 * that a chdir between acquire and release cannot make release look in the
 * wrong directory. */
static const char *hold_path(fl_lock *l, fl__hold *h) {
    if (!h->path)
        h->path = fl__prim_absolute(l->path);
    return h->path;
}

/* Garbage collection of what crashed takers left: private markers (only
 * their owner ever renames one, so a dead owner's can simply go) and claims
 * (taken over like any claim). Files of live or unknown owners are kept. */
typedef struct gc_ctx {
    const fl_lock *l;
    fl__fh fresh_fd; /* our marker, just written: the file system's "now" */
} gc_ctx;

static void gc_one(const char *file, void *arg) {
    const gc_ctx *g = arg;
    size_t n = strlen(file);
    int claim = n > 6 && strcmp(file + n - 6, ".claim") == 0;
    int priv = n > 4 && strcmp(file + n - 4, ".new") == 0;
    fl__record rec;
    if ((!claim && !priv) || fl__prim_read(file, &rec) != 0)
        return;
    if (fl__prim_judge(&rec, FL__MALFORMED_GRACE) == FL__GONE) {
        /* A record-less private marker: old by the file system's clock too
         * (a taker between its create and its write is not dead). */
        if (!priv)
            (void)take_over(g->l, file, &rec, 0, NULL, 1, 0, 0);
        else if (record_valid(&rec) || fl__prim_still_old(&rec, g->fresh_fd, FL__MALFORMED_GRACE))
            (void)fl__prim_remove(file);
    }
    fl__prim_close(rec.fd);
}

static void collect_garbage(const fl_lock *l, const char *path, fl__fh fresh_fd) {
    char prefix[32];
    size_t dirlen;
    gc_ctx g;
    snprintf(prefix, sizeof prefix, ".%016llx.",
             (unsigned long long)fl__name_hash(base_of(path, &dirlen)));
    g.l = l;
    g.fresh_fd = fresh_fd;
    fl__prim_scan(path, prefix, gc_one, &g);
}

static int soft_try(fl_lock *l, fl__hold *h) {
    fl__record rec;
    fl__fid id;
    fl__lease_rec lease;
    const char *path = hold_path(l, h);
    fl__fh fd;
    int e, r, verdict;
    double max_age = 0, duration;
    if (!path)
        return fl__os_error(errno ? errno : ENOMEM, "cannot resolve soft lock path", l->path);
    fd = fl__prim_create(path, l->mode, __atomic_load_n(&l->owner_pid, __ATOMIC_RELAXED),
                         lease_rec(l, &lease), &id);
    if (fd == FL__NO_FH && errno == ENOENT) {
        int rc = fl__prim_make_parents(l);
        if (rc < 0)
            return rc;
        fd = fl__prim_create(path, l->mode, __atomic_load_n(&l->owner_pid, __ATOMIC_RELAXED),
                             lease_rec(l, &lease), &id);
    }
    if (fd != FL__NO_FH) {
        /* The descriptor stays open for the whole hold: an open inode
         * cannot be freed, so "same dev/ino" at release (and in a taker's
         * re-check) really means "our marker". */
        h->fd = fd;
        h->dev = id.dev;
        h->ino = id.ino;
        h->have_id = 1;
        return 0;
    }
    e = errno;
    if (e != EEXIST)
        return fl__prim_path_error(l, e);
    e = fl__prim_read(path, &rec);
    if (e == ENOENT || e == EAGAIN)
        return FL__RETRY; /* released in between */
    if (e != 0)
        return fl__prim_path_error(l, e);
    /* Judging costs a few reads of /proc: do it when a new marker appears,
     * then at most twice a second (a holder can die without touching its
     * marker, so never stop re-checking). */
    if (h->have_id && h->dev == rec.id.dev && h->ino == rec.id.ino && fl__now() < h->recheck_at) {
        fl__prim_close(rec.fd);
        return FL__BUSY;
    }
    h->dev = rec.id.dev;
    h->ino = rec.id.ino;
    h->have_id = 1;
    h->recheck_at = fl__now() + FL__STALE_RECHECK;
    r = FL__BUSY;
    verdict = fl__prim_judge(&rec, FL__MALFORMED_GRACE);
    if (verdict != FL__GONE && l->lease_duration > 0 &&
        fl__record_lease(rec.text, rec.len, &duration)) {
        /* Only a holder that published a lease agreed to be superseded by
         * age, and only on the duration it published. */
        if (duration != l->lease_duration) {
            char theirs[FL__DOUBLE_BUF], ours[FL__DOUBLE_BUF];
            fl__prim_close(rec.fd);
            h->have_id = 0;
            /* Shortest digits, not %g's six: durations that differ past
             * the sixth digit must not read as equal. */
            return fl__error(FL_ELEASEMISMATCH, 0,
                             "soft lock '%s' holds a lease of %ss but this contender configured "
                             "%ss; every contender for a path must agree on lease_duration",
                             l->path, fl__fmt_double(theirs, duration),
                             fl__fmt_double(ours, l->lease_duration));
        }
        if (rec.age >= duration)
            max_age = duration;
    } else if (verdict != FL__GONE && l->lifetime > 0 && rec.age >= l->lifetime) {
        max_age = l->lifetime;
    }
    if (verdict == FL__GONE || max_age > 0) {
        fl__hold won = *h;
        r = take_over(l, path, &rec, 1, &won, 0, 0, verdict == FL__GONE ? 0 : max_age);
        if (r == 0) {
            *h = won;
            /* A dead holder was found: maybe a crashed taker too. */
            collect_garbage(l, path, won.fd);
        } else if (r == TAKE_RETRY) {
            h->have_id = 0; /* judge whatever is there now at once */
        }
    }
    fl__prim_close(rec.fd);
    return r;
}

int fl__soft_try(fl_lock *l, fl__hold *h) {
    int r = soft_try(l, h), rc;
    if (r != 0)
        return r;
    /* Won: a lease starts its heartbeat now (a lifetime is only marked). */
    rc = fl__lease_start(l, h);
    if (rc < 0) {
        fl__error_state st;
        fl__error_save(&st);
        (void)fl__soft_release(l, h, 1);
        fl__error_restore(&st);
        return rc;
    }
    return 0;
}

/* Removes our marker (identity h) through the claim of that identity, as a
 * taker would: for a holder that takers may judge while it lives and
 * releases (a lease or lifetime taken by age; a marker naming another
 * process, fl_set_owner_pid, whose exit a waiter can see before we
 * release). A plain lstat-then-unlink there lets a taker that checked the
 * name before our unlink rename its marker over the name a third process
 * created after it: two holders. With the claim, a taker at work makes us
 * wait for it (it replaces our marker: not ours any more), and a taker
 * after us finds the name changed. *not_ours: the name no longer held our
 * marker (0 / ENOENT / other identity). Returns 0 or a negative code. */
static int remove_claimed(const fl_lock *l, const char *path, const fl__hold *h, int *not_ours) {
    char claim[4096];
    fl__fid id, now, cid;
    int tries, e, rc;
    id.dev = h->dev;
    id.ino = h->ino;
    *not_ours = 0;
    if (fl__soft_claim_name(path, &id, claim, sizeof claim) != 0)
        return fl__error(FL_ENAMETOOLONG, ENAMETOOLONG, "cannot release soft lock '%s': %s",
                         l->path, strerror(ENAMETOOLONG));
    for (tries = 0; tries < 5000; tries++) {
        fl__fh cfd = fl__prim_create(claim, l->mode, 0, NULL, &cid);
        if (cfd == FL__NO_FH) {
            e = errno;
            if (e != EEXIST)
                return fl__error(fl__code_from_errno(e), e,
                                 "cannot release soft lock '%s': cannot create claim '%s': %s",
                                 l->path, claim, strerror(e));
            rc = contend_claim(l, claim, 0);
            if (rc < 0)
                return rc;
            if (rc == TAKE_BUSY)
                fl__prim_sleep(0.001); /* a taker is at work on our marker */
            continue;
        }
        rc = 0;
        e = fl__prim_id(path, &now);
        if (e == 0 && same_id(&now, &id)) {
            e = fl__prim_remove(path);
            if (e != 0 && e != ENOENT)
                rc = fl__os_error(e, "cannot remove soft lock marker", l->path);
        } else if (e == 0 || e == ENOENT) {
            *not_ours = 1;
        } else {
            rc = fl__os_error(e, "cannot stat soft lock marker", l->path);
        }
        (void)fl__prim_remove(claim);
        fl__prim_close(cfd);
        return rc;
    }
    return fl__error(FL_ETIMEOUT, 0,
                     "cannot release soft lock '%s': a taker kept its claim on our marker",
                     l->path);
}

/* A lease's refresh (lease.c's heartbeat), through the claim of our
 * marker's identity like a release: a taker that judged the lease expired
 * holds that claim from its check of the modification time to its rename,
 * and a touch in between would renew a marker that is about to be replaced
 * (the holder would go on as if renewed: two holders). With the claim, a
 * taker at work makes the refresh fail (we are that late: very likely lost,
 * the next refresh tells), and a taker after us finds the time changed.
 * Returns 0, a fl_lease_loss, or -1 with *err (transient; EBUSY: a taker's
 * claim). */
int fl__soft_refresh(const fl_lock *l, const char *path, const fl__fid *id, fl__fh fd, int *err) {
    char claim[4096];
    fl__fid now, cid;
    fl__fh cfd = FL__NO_FH;
    int e, r, tries;
    if (fl__soft_claim_name(path, id, claim, sizeof claim) != 0) {
        *err = ENAMETOOLONG;
        return -1;
    }
    for (tries = 0;; tries++) {
        cfd = fl__prim_create(claim, l->mode, 0, NULL, &cid);
        if (cfd != FL__NO_FH)
            break;
        e = errno;
        /* No room for a claim, or no directory: no taker can create its
         * claim (or its marker) either, so the plain re-check is safe. */
        if (e == ENOSPC || e == ENOENT || e == ENOTDIR)
            break;
#ifdef EDQUOT /* not in the Windows C runtime (leases are refused there) */
        if (e == EDQUOT)
            break;
#endif
        if (e != EEXIST) {
            *err = e;
            return -1;
        }
        r = contend_claim(l, claim, 0);
        if (r == TAKE_RETRY && tries < 3)
            continue; /* a taker finished, or a dead claim went */
        *err = r < 0 && fl_last_errno() ? fl_last_errno() : r < 0 ? EIO : EBUSY;
        return -1;
    }
    e = fl__prim_id(path, &now);
    if (e == ENOENT || e == ENOTDIR) {
        r = FL_LEASE_MARKER_MISSING;
    } else if (e != 0) {
        *err = e;
        r = -1;
    } else if (!same_id(&now, id)) {
        /* A taker renamed its marker over ours: never touch it. */
        r = FL_LEASE_OWNER_CHANGED;
    } else if ((e = fl__prim_touch(fd)) != 0) {
        *err = e;
        r = -1;
    } else {
        r = 0;
    }
    if (cfd != FL__NO_FH) {
        (void)fl__prim_remove(claim);
        fl__prim_close(cfd);
    }
    return r;
}

int fl__soft_release(fl_lock *l, fl__hold *h, int owner) {
    const char *path = h->path ? h->path : l->path;
    int rc = 0, reason = 0, lost_errno = 0, lost, fresh;
    /* First stop the heartbeat: it must not touch the descriptor we close
     * below, and what it saw decides whether the lease held. */
    lost = fl__lease_stop(h, &reason, &lost_errno, &fresh);
    /* Delete the marker only if it is still the one we created: takers
     * never touch a live holder's marker, so a different file there can
     * only be an operator's break followed by a new holder -- or, for a
     * lease or a lifetime, a contender that took it by age. Our open
     * descriptor keeps our inode number unique, so "still ours" also
     * proves that nobody else held it meanwhile. */
    if (owner && h->have_id && h->fd != FL__NO_FH &&
        (h->aged || __atomic_load_n(&l->owner_pid, __ATOMIC_RELAXED) > 0)) {
        int not_ours;
        fl__fid now;
        long opid = __atomic_load_n(&l->owner_pid, __ATOMIC_RELAXED);
        rc = remove_claimed(l, path, h, &not_ours);
        /* Taken from a lease refreshed too recently to have expired, while
         * the process the marker names (fl_set_owner_pid: the filelock
         * command) has exited: a waiter took the marker of a holder that is
         * gone (a zombie's pidfd tells), after its work ended. The hold
         * ended with that process; it was not lost while held. */
        if (rc == 0 && not_ours && h->aged && !lost &&
            !(fresh && opid > 0 && fl__prim_exited(opid))) {
            lost = 1;
            reason = fl__prim_id(path, &now) == ENOENT ? FL_LEASE_MARKER_MISSING
                                                       : FL_LEASE_OWNER_CHANGED;
        }
    } else if (owner && h->have_id && h->fd != FL__NO_FH) {
        fl__fid now;
        int e = fl__prim_id(path, &now);
        if (e == 0 && now.dev == h->dev && now.ino == h->ino) {
            e = fl__prim_remove(path);
            if (e != 0 && e != ENOENT)
                rc = fl__os_error(e, "cannot remove soft lock marker", l->path);
        }
    }
    if (owner && lost) {
        if (l->lease_duration > 0)
            rc = fl__error(FL_ELOST, lost_errno,
                           "the lease on soft lock '%s' was lost while held (%s%s%s): another "
                           "process may have held the lock meanwhile; it is released",
                           l->path, fl_lease_loss_name(reason), lost_errno ? ": " : "",
                           lost_errno ? strerror(lost_errno) : "");
        else
            rc = fl__error(FL_ELOST, 0,
                           "soft lock '%s' outlived its lifetime of %gs and its marker was %s: "
                           "another process may have held the lock meanwhile; it is released",
                           l->path, l->lifetime,
                           reason == FL_LEASE_MARKER_MISSING ? "removed" : "taken over");
    }
    if (h->fd != FL__NO_FH) {
        int e = fl__prim_close(h->fd);
        h->fd = FL__NO_FH;
        if (e != 0 && rc == 0 && fl__close_error_reported(l, FL_SOFT))
            rc = fl__os_error(e, "error closing soft lock marker (the lock is released)", l->path);
    }
    h->have_id = 0;
    h->aged = 0;
    free(h->path);
    h->path = NULL;
    return rc;
}

int fl__soft_break(fl_lock *l) {
    int tries;
    /* Through the claim, like any taker: a break never races a reclaimer
     * into removing the marker that reclaimer just put in place. */
    for (tries = 0; tries < 2000; tries++) {
        fl__record rec;
        int e = fl__prim_read(l->path, &rec), r;
        if (e == ENOENT)
            return 0;
        if (e == EAGAIN)
            continue;
        if (e != 0)
            return fl__prim_path_error(l, e);
        r = take_over(l, l->path, &rec, 0, NULL, 0, 1, 0);
        fl__prim_close(rec.fd);
        if (r == 0)
            return 0;
        if (r < 0)
            return r;
        if (r == TAKE_BUSY)
            fl__prim_sleep(0.001); /* a live taker is finishing */
    }
    return fl__error(FL_ETIMEOUT, 0,
                     "cannot break soft lock '%s': another process keeps taking it over", l->path);
}
