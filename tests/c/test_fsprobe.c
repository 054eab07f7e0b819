/*
 * Mounts where flock is local to this host (issue 20): NFS local_lock= and
 * nolock, SMB nobrl, Lustre localflock/noflock, GFS2/OCFS2 localflocks. A
 * kernel lock there would exclude nobody on another host, so it must fail
 * closed with FL_ENOTSUP naming the path, the mount and the option (or turn
 * into the soft lock when soft_fallback asks for it). This machine has no
 * such mount: the mount table is a fake one, given through the test hook
 * fl__mountinfo_path, with a line for the real device of the test
 * directory.
 */
#define _GNU_SOURCE
#include "testutil.h"

#include "fsprobe.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#ifdef FL__LINUX
/* The mount-table judgement is the Linux half's (fsprobe.c); the generic
 * build takes every file system as local (generic.c). */
static char table[4200];

/* A mount table whose line for the test directory's device has type
 * `type` and super-block options `sopts`, after unrelated lines (another
 * device with a forbidding option, a malformed line). */
static void fake_table(const char *type, const char *mopts, const char *sopts) {
    struct stat st;
    FILE *f;
    ck_assert_int_eq(stat(fl_tdir, &st), 0);
    snprintf(table, sizeof table, "%s/mountinfo", fl_tdir);
    f = fopen(table, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f, "22 1 0:99999 / /elsewhere rw,relatime shared:1 - nfs4 srv:/x "
               "rw,vers=4.2,local_lock=all\n");
    fprintf(f, "garbage line\n\n");
    fprintf(f, "36 22 %u:%u / /fake/mnt %s shared:7 master:2 - %s srv:/export %s\n",
            major(st.st_dev), minor(st.st_dev), mopts, type, sopts);
    fclose(f);
    fl__mountinfo_path = table;
}

static void restore(void) {
    fl__mountinfo_path = NULL;
    fl__kernel_release = NULL;
}

static int acquire_kernel(const char *rel, int fallback, fl_lock **out) {
    fl_options o = FL_OPTIONS_INIT;
    fl_lock *l;
    int rc;
    o.timeout = 0;
    o.soft_fallback = fallback;
    ck_assert_int_eq(fl_lock_new(&l, P(rel), &o), 0);
    rc = fl_acquire(l);
    *out = l;
    return rc;
}

/* Each forbidding option refuses the kernel lock; the message names the
 * path, the mount point and the option, and the file created for the
 * attempt is gone again. */
START_TEST(local_only_mounts_fail_closed) {
    static const struct {
        const char *type, *mopts, *sopts, *option;
    } cases[] = {
        {"nfs4", "rw,relatime", "rw,vers=4.2,hard,local_lock=flock,addr=10.0.0.1",
         "local_lock=flock"},
        {"nfs", "rw,relatime", "rw,vers=3,local_lock=all,addr=10.0.0.1", "local_lock=all"},
        {"nfs", "rw,relatime", "rw,vers=3,nolock,proto=tcp", "nolock"},
        {"cifs", "rw,relatime", "rw,vers=3.1.1,cache=strict,nobrl,actimeo=1", "nobrl"},
        {"smb3", "rw,relatime", "rw,nobrl", "nobrl"},
        {"lustre", "rw,localflock", "rw,localflock,lazystatfs", "localflock"},
        {"lustre", "rw", "rw,noflock", "noflock"},
        {"gfs2", "rw,relatime", "rw,localflocks", "localflocks"},
        {"ocfs2", "rw,localflocks", "rw", "localflocks"}, /* per-mount options count too */
        {"afs", "rw", "rw,flock=local", "flock=local"},
    };
    size_t i;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char rel[32];
        fl_lock *l;
        snprintf(rel, sizeof rel, "case%zu.lock", i);
        fake_table(cases[i].type, cases[i].mopts, cases[i].sopts);
        ck_assert_msg(acquire_kernel(rel, 0, &l) == FL_ENOTSUP, "%s %s: not refused", cases[i].type,
                      cases[i].option);
        ck_assert_msg(strstr(fl_last_error(), P(rel)) != NULL, "no path: %s", fl_last_error());
        ck_assert_msg(strstr(fl_last_error(), "/fake/mnt") != NULL, "no mount: %s",
                      fl_last_error());
        ck_assert_msg(strstr(fl_last_error(), cases[i].option) != NULL, "no option: %s",
                      fl_last_error());
        ck_assert_msg(strstr(fl_last_error(), "another host") != NULL, "%s", fl_last_error());
        ck_assert_msg(!fl_exists(P(rel)), "%s: the lock file created for the attempt is left",
                      cases[i].option);
        ck_assert(!fl_is_locked(l));
        fl_lock_free(l);
        restore();
    }
}
END_TEST

/* SMB before Linux 5.5 kept flock local whatever the options. */
START_TEST(smb_before_5_5_fails_closed) {
    fl_lock *l;
    fake_table("cifs", "rw", "rw,vers=3.1.1,cache=strict");
    fl__kernel_release = "5.4.0-150-generic";
    ck_assert_int_eq(acquire_kernel("old.lock", 0, &l), FL_ENOTSUP);
    ck_assert_msg(strstr(fl_last_error(), "5.5") && strstr(fl_last_error(), P("old.lock")), "%s",
                  fl_last_error());
    fl_lock_free(l);
    fl__kernel_release = "5.5.0";
    ck_assert_int_eq(acquire_kernel("new.lock", 0, &l), 0);
    ck_assert_int_eq(fl_release(l, 0), 0);
    fl_lock_free(l);
    fl__kernel_release = "6.1.0-13-amd64";
    ck_assert_int_eq(acquire_kernel("new2.lock", 0, &l), 0);
    ck_assert_int_eq(fl_release(l, 0), 0);
    fl_lock_free(l);
    restore();
}
END_TEST

/* A lock file that existed before is refused too, and left alone. */
START_TEST(existing_lock_file_is_kept) {
    fl_lock *l;
    fl_write_file(P("kept.lock"), "data");
    fake_table("nfs4", "rw", "rw,vers=4.1,local_lock=flock");
    ck_assert_int_eq(acquire_kernel("kept.lock", 0, &l), FL_ENOTSUP);
    ck_assert(fl_exists(P("kept.lock")));
    fl_lock_free(l);
    restore();
}
END_TEST

/* The same mounts without the option, other options that only look alike,
 * and file system types the rules do not name: the kernel lock works. */
START_TEST(coherent_mounts_lock) {
    static const struct {
        const char *type, *sopts;
    } cases[] = {
        {"nfs4", "rw,vers=4.2,local_lock=none,addr=10.0.0.1"},
        {"nfs", "rw,vers=3,lock,proto=tcp"},
        {"nfs", "rw,vers=3,nolockd"}, /* not "nolock" */
        {"cifs", "rw,vers=3.1.1,cache=strict"},
        {"lustre", "rw,flock"},
        {"gfs2", "rw"},
        {"ext4", "rw,nolock,nobrl,localflocks"}, /* options of other types do not count */
        {"fuse.glusterfs", "rw,user_id=0,group_id=0"},
    };
    size_t i;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char rel[32];
        fl_lock *l;
        snprintf(rel, sizeof rel, "ok%zu.lock", i);
        fake_table(cases[i].type, "rw,relatime", cases[i].sopts);
        fl__kernel_release = "6.1.0"; /* SMB: after 5.5, whatever this machine runs */
        ck_assert_msg(acquire_kernel(rel, 0, &l) == 0, "%s %s: %s", cases[i].type, cases[i].sopts,
                      fl_last_error());
        ck_assert_int_eq(fl_release(l, 0), 0);
        fl_lock_free(l);
        restore();
    }
}
END_TEST

/* soft_fallback: the refused kernel lock becomes the soft lock, whose
 * marker (with our owner record) excludes every host. */
START_TEST(fallback_takes_the_soft_lock) {
    fl_lock *l;
    char buf[512], want[32];
    fake_table("nfs4", "rw", "rw,vers=4.2,local_lock=flock");
    ck_assert_int_eq(acquire_kernel("fb.lock", 1, &l), 0);
    ck_assert_int_eq(__atomic_load_n(&l->kind, __ATOMIC_RELAXED), FL_SOFT);
    /* the marker holds our owner record: "<pid>\n<hostname>..." */
    ck_assert(fl_read_file(P("fb.lock"), buf, sizeof buf) > 0);
    snprintf(want, sizeof want, "%ld\n", (long)getpid());
    ck_assert_msg(strncmp(buf, want, strlen(want)) == 0, "marker: %s", buf);
    ck_assert_int_eq(fl_release(l, 0), 0);
    ck_assert(!fl_exists(P("fb.lock")));
    fl_lock_free(l);
    restore();
}
END_TEST

/* No mount table (no /proc, or unreadable): nothing to tell, the lock goes
 * on as before rather than failing everywhere. */
START_TEST(missing_table_is_not_an_error) {
    fl_lock *l;
    char missing[4200];
    snprintf(missing, sizeof missing, "%s/no-such-mountinfo", fl_tdir);
    fl__mountinfo_path = missing;
    ck_assert_int_eq(acquire_kernel("nt.lock", 0, &l), 0);
    ck_assert_int_eq(fl_release(l, 0), 0);
    fl_lock_free(l);
    restore();
}
END_TEST

/* ---- ESTALE: a name resolved to a file another host just removed ------- */

/* The next `stale_left` opens matching `stale_mask` (all of its flag bits
 * set; 0: every open) fail with ESTALE, as on NFS or GlusterFS when another
 * client removed or replaced the file between the lookup and the open. */
#endif /* FL__LINUX */

static int stale_left, stale_mask, stale_seen;

static int stale_open(const char *path, int flags, mode_t mode) {
    if (stale_left != 0 && (flags & stale_mask) == stale_mask) {
        if (stale_left > 0)
            stale_left--;
        stale_seen++;
        errno = ESTALE;
        return -1;
    }
    return open(path, flags, mode);
}

static void inject_stale(int n, int mask) {
    stale_left = n;
    stale_mask = mask;
    stale_seen = 0;
    fl__sys.open = stale_open;
}

START_TEST(kernel_open_retries_estale) {
    fl_lock *l = fl_new_kind(P("k.lock"), FL_KERNEL);
    inject_stale(3, 0);
    ck_assert_msg(fl_acquire(l) == 0, "%s", fl_last_error());
    ck_assert_int_eq(stale_seen, 3);
    ck_assert_int_eq(fl_release(l, 0), 0);
    fl_lock_free(l);
}
END_TEST

/* Stale for good: a clear error naming the path and the reason, never a
 * loop. */
START_TEST(kernel_open_persistent_estale_fails) {
    fl_lock *l = fl_new_kind(P("k.lock"), FL_KERNEL);
    int rc;
    inject_stale(-1, 0);
    rc = fl_acquire_ex(l, 1.0, 1, 0.05);
    ck_assert_msg(rc < 0 && rc != FL_ETIMEOUT, "rc %d: %s", rc, fl_last_error());
    ck_assert_msg(strstr(fl_last_error(), P("k.lock")) != NULL, "%s", fl_last_error());
    ck_assert_msg(strstr(fl_last_error(), strerror(ESTALE)) != NULL, "%s", fl_last_error());
    ck_assert_int_eq(fl_last_errno(), ESTALE);
    fl_lock_free(l);
}
END_TEST

/* The soft lock's exclusive create stays stale past the retries: that is
 * "another host is changing this name", so the attempt looks at what is
 * there (nothing) and creates again, and wins. */
START_TEST(soft_create_estale_is_a_race) {
    fl_lock *l = fl_new_kind(P("s.lock"), FL_SOFT);
    inject_stale(6, O_CREAT | O_EXCL);
    ck_assert_msg(fl_acquire_ex(l, 0, 1, 0.05) == 0, "%s", fl_last_error());
    ck_assert_int_eq(stale_seen, 6);
    ck_assert(fl_exists(P("s.lock")));
    ck_assert_int_eq(fl_release(l, 0), 0);
    ck_assert(!fl_exists(P("s.lock")));
    fl_lock_free(l);
}
END_TEST

/* Reading a marker that another host replaces while we open it: the
 * attempt re-reads; the lock is held, so the answer is a timeout, not an
 * error. */
START_TEST(soft_read_estale_is_a_race) {
    fl_lock *a = fl_new_kind(P("r.lock"), FL_SOFT), *b = fl_new_kind(P("r.lock"), FL_SOFT);
    int rc;
    ck_assert_int_eq(fl_acquire(a), 0);
    inject_stale(8, O_NOFOLLOW | O_NONBLOCK); /* the marker reads, not the creates */
    rc = fl_acquire_ex(b, 0, 1, 0.05);
    ck_assert_msg(rc == FL_ETIMEOUT, "rc %d: %s", rc, fl_last_error());
    ck_assert_int_gt(stale_seen, 0);
    fl__sys_reset();
    ck_assert_int_eq(fl_release(a, 0), 0);
    fl_lock_free(a);
    fl_lock_free(b);
}
END_TEST

/* ---- a lock the file system dropped ------------------------------------- */

static int unlock_errno;

static int lost_flock(int fd, int op) {
    if ((op & ~LOCK_NB) == LOCK_UN) {
        (void)flock(fd, op);
        errno = unlock_errno;
        return -1;
    }
    return flock(fd, op);
}

/* GlusterFS after a partition longer than its ping-timeout: the holder's
 * descriptor is stale (EBADFD) and another host may have had the lock.
 * The release says so (FL_EIO, naming the path and the reason), and the
 * handle is left released, its descriptor closed. */
START_TEST(release_reports_a_lost_lock) {
    static const int errs[] = {EBADFD, ESTALE, EIO, ENOTCONN, ENOLCK};
    size_t i;
    for (i = 0; i < sizeof errs / sizeof errs[0]; i++) {
        fl_lock *l = fl_new_kind(P("lost.lock"), FL_KERNEL);
        int fds;
        ck_assert_int_eq(fl_acquire(l), 0);
        fds = fl_open_fd_count();
        unlock_errno = errs[i];
        fl__sys.flock = lost_flock;
        ck_assert_int_eq(fl_release(l, 0), FL_EIO);
        ck_assert_int_eq(fl_last_errno(), errs[i]);
        ck_assert_msg(strstr(fl_last_error(), "was lost") &&
                          strstr(fl_last_error(), P("lost.lock")) &&
                          strstr(fl_last_error(), strerror(errs[i])),
                      "%s", fl_last_error());
        fl__sys_reset();
        ck_assert_int_eq(fl_is_locked(l), 0);
        ck_assert_int_eq(fl_open_fd_count(), fds - 1);
        /* and the lock can be taken again */
        ck_assert_int_eq(fl_acquire(l), 0);
        ck_assert_int_eq(fl_release(l, 0), 0);
        fl_lock_free(l);
    }
}
END_TEST

/* Other unlock failures (EINTR, EINVAL...) keep the old behaviour: the
 * close releases the lock and the release succeeds. */
START_TEST(release_other_unlock_errors_pass) {
    fl_lock *l = fl_new_kind(P("other.lock"), FL_KERNEL);
    ck_assert_int_eq(fl_acquire(l), 0);
    unlock_errno = EINTR;
    fl__sys.flock = lost_flock;
    ck_assert_int_eq(fl_release(l, 0), 0);
    fl__sys_reset();
    fl_lock_free(l);
}
END_TEST

Suite *suite_fsprobe(void) {
    Suite *s = suite_create("fsprobe");
    TCase *tc;
#ifdef FL__LINUX
    tc = fl_tcase("fsprobe");
    tcase_add_test(tc, local_only_mounts_fail_closed);
    tcase_add_test(tc, existing_lock_file_is_kept);
    tcase_add_test(tc, smb_before_5_5_fails_closed);
    tcase_add_test(tc, coherent_mounts_lock);
    tcase_add_test(tc, fallback_takes_the_soft_lock);
    tcase_add_test(tc, missing_table_is_not_an_error);
    suite_add_tcase(s, tc);
#else
    if (!getenv("CK_RUN_SUITE") || strcmp(getenv("CK_RUN_SUITE"), "fsprobe") == 0)
        fprintf(stderr, "note: the mount-table tests need the Linux backend (/proc/self/mountinfo, "
                    "statfs f_type): skipped in the generic POSIX build\n");
#endif
    tc = fl_tcase("estale");
    tcase_add_test(tc, kernel_open_retries_estale);
    tcase_add_test(tc, kernel_open_persistent_estale_fails);
    tcase_add_test(tc, soft_create_estale_is_a_race);
    tcase_add_test(tc, soft_read_estale_is_a_race);
    suite_add_tcase(s, tc);
    tc = fl_tcase("lost");
    tcase_add_test(tc, release_reports_a_lost_lock);
    tcase_add_test(tc, release_other_unlock_errors_pass);
    suite_add_tcase(s, tc);
    return s;
}
