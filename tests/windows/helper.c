/*
 * Helper process of the Windows suites:
 *   fl_win_helper hold <k|s|r> <path>  acquire (kernel / soft / shared), print "held",
 *                                      release when stdin reaches EOF; exit 0
 *   fl_win_helper try  <k|s|r> <path>  one attempt: exit 0 won, 1 busy, 2 error
 *   fl_win_helper wait <k|s|r> <path>  print "waiting", acquire with a 30 s timeout:
 *                                      exit 0 won, 1 timed out, 2 error
 *   fl_win_helper die  <k|s>   <path>  acquire, print "held", exit without releasing
 */
#define WIN32_LEAN_AND_MEAN
#include <windows.h>

#include <filelock.h>
#include <stdio.h>
#include <string.h>

static int acquire(fl_lock *l, char kind, double timeout) {
    return kind == 'r' ? fl_acquire_shared(l, timeout, 1, 0.05)
                       : fl_acquire_ex(l, timeout, 1, 0.05);
}

int wmain(int argc, wchar_t **argv);
int wmain(int argc, wchar_t **argv) {
    char mode[16], kind, path[4096];
    fl_options o = FL_OPTIONS_INIT;
    fl_lock *l;
    int rc;
    if (argc != 4)
        return 3;
    WideCharToMultiByte(CP_UTF8, 0, argv[1], -1, mode, sizeof mode, NULL, NULL);
    kind = (char)argv[2][0];
    WideCharToMultiByte(CP_UTF8, 0, argv[3], -1, path, sizeof path, NULL, NULL);
    o.kind = kind == 's' ? FL_SOFT : FL_KERNEL;
    if (fl_lock_new(&l, path, &o) != 0) {
        fprintf(stderr, "helper: %s\n", fl_last_error());
        return 2;
    }
    if (!strcmp(mode, "try")) {
        rc = acquire(l, kind, 0);
        fl_lock_free(l);
        return rc == 0 ? 0 : rc == FL_ETIMEOUT ? 1 : 2;
    }
    if (!strcmp(mode, "wait")) {
        printf("waiting\n");
        fflush(stdout);
        rc = acquire(l, kind, 30);
        fl_lock_free(l);
        return rc == 0 ? 0 : rc == FL_ETIMEOUT ? 1 : 2;
    }
    if (acquire(l, kind, 30) != 0) {
        fprintf(stderr, "helper: %s\n", fl_last_error());
        return 2;
    }
    printf("held %lu\n", (unsigned long)GetCurrentProcessId());
    fflush(stdout);
    if (!strcmp(mode, "die"))
        ExitProcess(0); /* no release: the OS drops a kernel lock, a marker stays */
    {
        char c;
        DWORD n;
        while (ReadFile(GetStdHandle(STD_INPUT_HANDLE), &c, 1, &n, NULL) && n > 0) {
        }
    }
    rc = fl_release(l, 1);
    fl_lock_free(l);
    return rc == 0 ? 0 : 2;
}
