/*
 * What the file system under a lock file can promise.
 *
 * Two questions, both answered from what the kernel tells about the mount:
 *
 * 1. May other hosts share it? Then inotify reports none of their releases
 *    (measured on GlusterFS: a client sees nothing of another client's
 *    closes or unlinks), so a waiter must not rely on events and re-checks
 *    at its own cadence. Answered by fstatfs's f_type.
 *
 * 2. Does flock() reach the other hosts? Several network and cluster file
 *    systems can be mounted so that flock is only local to this host: the
 *    lock then "works" in every test on one machine and excludes nobody on
 *    the next. Answered by the mount's options in /proc/self/mountinfo
 *    (proc(5)), read only for the file system types that have such an
 *    option, so a lock on a local file system costs one fstatfs.
 *
 * Sources for each option: docs/filesystems.md.
 *
 * Part of the Linux half of the POSIX backend (platform.h); generic.c
 * answers "local, nothing to check" on other systems.
 */
#define _GNU_SOURCE
#include "fsprobe.h"
#include "platform.h"

/* Built with linux.c only (see there); empty elsewhere. */
#ifdef FL__LINUX

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <sys/utsname.h>

const char *fl__mountinfo_path = NULL;
const char *fl__kernel_release = NULL;

/* f_type values (statfs(2), <linux/magic.h>, and the file systems' own
 * headers for those not in it). */
#define FL__NFS_MAGIC    0x6969
#define FL__SMB_MAGIC    0x517B
#define FL__CIFS_MAGIC   0xFF534D42
#define FL__SMB2_MAGIC   0xFE534D42
#define FL__FUSE_MAGIC   0x65735546
#define FL__CEPH_MAGIC   0x00C36400
#define FL__LUSTRE_MAGIC 0x0BD00BD0
#define FL__GFS2_MAGIC   0x01161970
#define FL__OCFS2_MAGIC  0x7461636F
#define FL__AFS_MAGIC    0x5346414F
#define FL__KAFS_MAGIC   0x6B414653
#define FL__V9FS_MAGIC   0x01021997
#define FL__CODA_MAGIC   0x73757245
#define FL__NCP_MAGIC    0x564C
#define FL__GPFS_MAGIC   0x47504653
#define FL__ORANGE_MAGIC 0x13661366
#define FL__BEEGFS_MAGIC 0x19830326

static int shared_type(unsigned long t) {
    switch (t) {
    case FL__NFS_MAGIC:
    case FL__SMB_MAGIC:
    case FL__CIFS_MAGIC:
    case FL__SMB2_MAGIC:
    case FL__FUSE_MAGIC: /* GlusterFS, sshfs, ceph-fuse, ... (and local ones: bindfs) */
    case FL__CEPH_MAGIC:
    case FL__LUSTRE_MAGIC:
    case FL__GFS2_MAGIC:
    case FL__OCFS2_MAGIC:
    case FL__AFS_MAGIC:
    case FL__KAFS_MAGIC:
    case FL__V9FS_MAGIC:
    case FL__CODA_MAGIC:
    case FL__NCP_MAGIC:
    case FL__GPFS_MAGIC:
    case FL__ORANGE_MAGIC:
    case FL__BEEGFS_MAGIC:
        return 1;
    default:
        return 0;
    }
}

/* The types whose mount options can make flock local (question 2). */
static int option_type(unsigned long t) {
    switch (t) {
    case FL__NFS_MAGIC:
    case FL__SMB_MAGIC:
    case FL__CIFS_MAGIC:
    case FL__SMB2_MAGIC:
    case FL__LUSTRE_MAGIC:
    case FL__GFS2_MAGIC:
    case FL__OCFS2_MAGIC:
        return 1;
    default:
        return 0;
    }
}

int fl__fs_is_shared(const char *path) {
    struct statfs sf;
    if (statfs(path, &sf) != 0)
        return 0;
    return shared_type((unsigned long)sf.f_type);
}

/* Is `opt` one of the comma-separated options in `list`? */
static int has_option(const char *list, const char *opt) {
    size_t n = strlen(opt);
    const char *p = list;
    while (p && *p) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == n && strncmp(p, opt, n) == 0)
            return 1;
        p = end ? end + 1 : NULL;
    }
    return 0;
}

/* The rules: file system types (mountinfo's field after " - "), an option
 * that makes flock local to this host or absent, and why. */
static const struct rule {
    const char *types; /* space-separated */
    const char *option;
    const char *why;
} rules[] = {
    {"nfs nfs4", "local_lock=flock", "flock is local to this host"},
    {"nfs nfs4", "local_lock=all", "flock and fcntl locks are local to this host"},
    {"nfs nfs4", "nolock", "no lock manager: locks are local to this host"},
    /* the kernel shows the synonym "nolock" as nobrl */
    {"cifs smb3", "nobrl", "byte-range locks (which carry flock) are not sent to the server"},
    {"lustre", "localflock", "flock is local to this host"},
    {"lustre", "noflock", "flock is not supported"},
    {"gfs2 ocfs2", "localflocks", "flock is local to this host"},
    {"afs", "flock=local", "flock is local to this host"},
};

/* Before Linux 5.5 the SMB client kept flock() local (flock(2), NOTES);
 * since then it sends a whole-file byte-range lock to the server. */
static int kernel_before(int want_major, int want_minor) {
    struct utsname u;
    const char *r = fl__kernel_release;
    int a = 0, b = 0;
    if (!r) {
        if (uname(&u) != 0)
            return 0;
        r = u.release;
    }
    if (sscanf(r, "%d.%d", &a, &b) != 2)
        return 0;
    return a < want_major || (a == want_major && b < want_minor);
}

static int type_in(const char *type, const char *types) {
    size_t n = strlen(type);
    const char *p = types;
    while (*p) {
        const char *end = strchr(p, ' ');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == n && strncmp(p, type, n) == 0)
            return 1;
        if (!end)
            break;
        p = end + 1;
    }
    return 0;
}

/* Splits a mountinfo line in place: field 3 (major:minor), 5 (mount
 * point), 6 (per-mount options), and after the "-" separator the type and
 * the super-block options. 0 on success. */
static int split_line(char *line, char **devno, char **mnt, char **mopts, char **type,
                      char **sopts) {
    char *f[6] = {0}, *save = NULL, *tok;
    int i = 0;
    for (tok = strtok_r(line, " \n", &save); tok && i < 6; tok = strtok_r(NULL, " \n", &save))
        f[i++] = tok;
    if (i < 6)
        return -1;
    /* optional fields, then "-" */
    while (tok && strcmp(tok, "-") != 0)
        tok = strtok_r(NULL, " \n", &save);
    if (!tok)
        return -1;
    *type = strtok_r(NULL, " \n", &save);
    (void)strtok_r(NULL, " \n", &save); /* source */
    *sopts = strtok_r(NULL, " \n", &save);
    if (!*type)
        return -1;
    if (!*sopts)
        *sopts = (char *)"";
    *devno = f[2];
    *mnt = f[4];
    *mopts = f[5];
    return 0;
}

/* Devices whose file system type has no option that makes flock local,
 * seen in the last FL__PLAIN_TTL seconds: the fstatfs (~20 % of an
 * uncontended lock cycle) is skipped for them. A device number is reused
 * only after an unmount; within the TTL a new mount of another type on the
 * same number would be missed, so the TTL is kept short. Only trylock: a
 * busy table (or one a thread held when this process forked) just means
 * asking fstatfs, never waiting. */
#define FL__PLAIN_SLOTS 8
#define FL__PLAIN_TTL   1.0
static pthread_mutex_t plain_mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
    uint64_t dev;
    double at;
} plain[FL__PLAIN_SLOTS];
static unsigned plain_next;

static int plain_seen(uint64_t dev, double now) {
    int i, hit = 0;
    if (pthread_mutex_trylock(&plain_mu) != 0)
        return 0;
    for (i = 0; i < FL__PLAIN_SLOTS && !hit; i++)
        hit = plain[i].at > 0 && plain[i].dev == dev && now - plain[i].at < FL__PLAIN_TTL;
    pthread_mutex_unlock(&plain_mu);
    return hit;
}

static void plain_add(uint64_t dev, double now) {
    int i;
    if (pthread_mutex_trylock(&plain_mu) != 0)
        return;
    for (i = 0; i < FL__PLAIN_SLOTS; i++)
        if (plain[i].dev == dev && plain[i].at > 0)
            break;
    if (i == FL__PLAIN_SLOTS)
        i = (int)(plain_next++ % FL__PLAIN_SLOTS);
    plain[i].dev = dev;
    plain[i].at = now;
    pthread_mutex_unlock(&plain_mu);
}

int fl__fs_check_flock(const char *path, int fd, uint64_t dev) {
    const char *table = fl__mountinfo_path ? fl__mountinfo_path : "/proc/self/mountinfo";
    char want[64], *line = NULL;
    size_t cap = 0;
    FILE *f;
    int rc = 0;

    if (!fl__mountinfo_path) {
        struct statfs sf;
        double now = fl__now();
        if (plain_seen(dev, now))
            return 0;
        if (fstatfs(fd, &sf) != 0)
            return 0;
        if (!option_type((unsigned long)sf.f_type)) {
            plain_add(dev, now);
            return 0;
        }
    }
    f = fopen(table, "re");
    if (!f)
        return 0; /* no /proc: nothing to tell; flock itself still reports ENOSYS */
    snprintf(want, sizeof want, "%u:%u", major((dev_t)dev), minor((dev_t)dev));
    while (rc == 0 && getline(&line, &cap, f) > 0) {
        char *devno, *mnt, *mopts, *type, *sopts;
        size_t i;
        if (split_line(line, &devno, &mnt, &mopts, &type, &sopts) != 0 || strcmp(devno, want) != 0)
            continue;
        for (i = 0; i < sizeof rules / sizeof rules[0]; i++) {
            const struct rule *r = &rules[i];
            if (!type_in(type, r->types) ||
                !(has_option(sopts, r->option) || has_option(mopts, r->option)))
                continue;
            rc = fl__error(FL_ENOTSUP, 0,
                           "cannot lock '%s': it is on the %s mount %s with option %s (%s), so "
                           "a process on another host would not be excluded; remount without "
                           "it, or use the soft lock or the soft_fallback option",
                           path, type, mnt, r->option, r->why);
            break;
        }
        if (rc == 0 && type_in(type, "cifs smb3") && kernel_before(5, 5))
            rc = fl__error(FL_ENOTSUP, 0,
                           "cannot lock '%s': it is on the %s mount %s, and before Linux 5.5 "
                           "the SMB client keeps flock local to this host, so a process on "
                           "another host would not be excluded; use the soft lock "
                           "or the soft_fallback option",
                           path, type, mnt);
    }
    free(line);
    fclose(f);
    return rc;
}

#endif /* FL__LINUX */
