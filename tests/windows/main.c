/*
 * Runner of the Windows suites. Check runs without fork (there is none on
 * Windows), so it cannot enforce its per-test timeouts: a watchdog thread
 * ends the process with exit code 99 if the run outlives FL_WIN_WATCHDOG
 * seconds (default 300). CK_RUN_SUITE / CK_RUN_CASE select as usual.
 */
#include "wintest.h"

#include <stdio.h>
#include <stdlib.h>

static DWORD WINAPI watchdog(void *arg) {
    DWORD seconds = (DWORD)(size_t)arg;
    Sleep(seconds * 1000);
    fprintf(stderr, "watchdog: the run did not finish within %lu s (a hang)\n",
            (unsigned long)seconds);
    fflush(stderr);
    ExitProcess(99);
    return 0;
}

int main(void) {
    const char *env = getenv("FL_WIN_WATCHDOG");
    DWORD seconds = env ? (DWORD)atoi(env) : 300;
    SRunner *sr;
    int failed;
    CloseHandle(CreateThread(NULL, 0, watchdog, (void *)(size_t)seconds, 0, NULL));
#ifdef FL_WIN_FAULTS
    sr = srunner_create(wt_suite_faults());
#else
    sr = srunner_create(wt_suite_api());
    srunner_add_suite(sr, wt_suite_process());
    srunner_add_suite(sr, wt_suite_hub());
#endif
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
