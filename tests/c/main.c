/*
 * One Check runner over every suite of the C core. CTest runs it once per
 * suite with CK_RUN_SUITE=<name>, so suites run in parallel and fail
 * separately; run it bare to get all of them.
 */
#define _GNU_SOURCE
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>

int main(void) {
    SRunner *sr = srunner_create(NULL);
    int failed;
    srunner_add_suite(sr, suite_kernel());
    srunner_add_suite(sr, suite_soft());
    srunner_add_suite(sr, suite_acquire());
    srunner_add_suite(sr, suite_process());
    srunner_add_suite(sr, suite_threads());
    srunner_add_suite(sr, suite_deadlock());
    srunner_add_suite(sr, suite_singleton());
    srunner_add_suite(sr, suite_fork());
    srunner_add_suite(sr, suite_interrupt());
    srunner_add_suite(sr, suite_faults());
    srunner_add_suite(sr, suite_logging());
    srunner_add_suite(sr, suite_errors());
    srunner_add_suite(sr, suite_leak());
    srunner_add_suite(sr, suite_owner());
    srunner_add_suite(sr, suite_rwlock());
    srunner_add_suite(sr, suite_forksafe());
    srunner_add_suite(sr, suite_waits());
    srunner_add_suite(sr, suite_interleave());
    srunner_add_suite(sr, suite_interleave_lease());
    srunner_add_suite(sr, suite_fsprobe());
    srunner_add_suite(sr, suite_hostile());
    srunner_add_suite(sr, suite_descriptor());
    srunner_add_suite(sr, suite_lease());
    srunner_add_suite(sr, suite_hub());
    /* CK_FORK=no (valgrind) runs every test in this process: tests that
     * need their own process check this and say why they skip. */
    fl_test_forking = srunner_fork_status(sr) != CK_NOFORK;
    if (!fl_test_forking)
        fprintf(stderr, "note: CK_FORK=no: every test runs in this process and Check's per-test "
                        "timer is off; CTest's TIMEOUT is the hard deadline\n");
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
