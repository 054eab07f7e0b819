/* A program that uses the installed libfilelock, built by the install
 * tests once with pkg-config and once with find_package(filelock). It
 * checks that the header and the library agree on the version and that a
 * lock excludes a second handle, then prints "ok <version>". */
#include <filelock.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
    char want[32];
    fl_lock *a, *b;
    fl_options opts = FL_OPTIONS_INIT;
    int rc;

    if (argc != 2) {
        fprintf(stderr, "usage: consumer LOCKFILE\n");
        return 2;
    }
    snprintf(want, sizeof want, "%d.%d.%d", FL_VERSION_MAJOR, FL_VERSION_MINOR, FL_VERSION_PATCH);
    if (strcmp(want, fl_version()) != 0) {
        fprintf(stderr, "header says %s, library says %s\n", want, fl_version());
        return 1;
    }
    opts.timeout = 0;
    if (fl_lock_new(&a, argv[1], &opts) != 0 || fl_lock_new(&b, argv[1], &opts) != 0) {
        fprintf(stderr, "%s\n", fl_last_error());
        return 1;
    }
    if (fl_acquire(a) != 0) {
        fprintf(stderr, "%s\n", fl_last_error());
        return 1;
    }
    rc = fl_acquire(b);
    if (rc != FL_ETIMEOUT || strcmp(fl_err_name(rc), "ETIMEOUT") != 0) {
        fprintf(stderr, "second handle: %d (%s), expected FL_ETIMEOUT\n", rc, fl_err_name(rc));
        return 1;
    }
    fl_release(a, 0);
    fl_lock_free(a);
    fl_lock_free(b);
    printf("ok %s\n", fl_version());
    return 0;
}
