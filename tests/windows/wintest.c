/* Helpers of the Windows suites (see wintest.h). */
#include "wintest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char g_dir[MAX_PATH * 3];
static unsigned g_seq;

const char *wt_dir(void) { return g_dir; }

const char *wt_path(const char *name) {
    static char bufs[4][MAX_PATH * 4];
    static int next;
    char *b = bufs[next++ % 4];
    snprintf(b, sizeof bufs[0], "%s/%s", g_dir, name);
    return b;
}

const wchar_t *wt_wide(const char *s) {
    static wchar_t w[4096];
    if (MultiByteToWideChar(CP_UTF8, 0, s, -1, w, 4096) <= 0)
        w[0] = L'\0';
    return w;
}

static void remove_tree(const wchar_t *dir) {
    wchar_t pat[4096], child[4096];
    WIN32_FIND_DATAW fd;
    HANDLE f;
    swprintf(pat, 4096, L"%ls\\*", dir);
    f = FindFirstFileW(pat, &fd);
    if (f != INVALID_HANDLE_VALUE) {
        do {
            if (!wcscmp(fd.cFileName, L".") || !wcscmp(fd.cFileName, L".."))
                continue;
            swprintf(child, 4096, L"%ls\\%ls", dir, fd.cFileName);
            if ((fd.dwFileAttributes & FILE_ATTRIBUTE_DIRECTORY) &&
                !(fd.dwFileAttributes & FILE_ATTRIBUTE_REPARSE_POINT))
                remove_tree(child);
            else if (fd.dwFileAttributes & FILE_ATTRIBUTE_DIRECTORY)
                RemoveDirectoryW(child);
            else {
                SetFileAttributesW(child, FILE_ATTRIBUTE_NORMAL);
                DeleteFileW(child);
            }
        } while (FindNextFileW(f, &fd));
        FindClose(f);
    }
    RemoveDirectoryW(dir);
}

void wt_setup(void) {
    wchar_t tmp[MAX_PATH], dir[MAX_PATH * 2];
    GetTempPathW(MAX_PATH, tmp);
    swprintf(dir, MAX_PATH * 2, L"%lsfl-wintest-%lu-%u", tmp, (unsigned long)GetCurrentProcessId(),
             ++g_seq);
    /* Wine gives every run the same pid: a directory an earlier, killed
     * run left under this name is not ours to fail on. */
    if (!CreateDirectoryW(dir, NULL)) {
        ck_assert_msg(GetLastError() == ERROR_ALREADY_EXISTS, "cannot create the test directory");
        remove_tree(dir);
        ck_assert_msg(CreateDirectoryW(dir, NULL), "cannot re-create the test directory");
    }
    WideCharToMultiByte(CP_UTF8, 0, dir, -1, g_dir, sizeof g_dir, NULL, NULL);
}

void wt_teardown(void) {
    wchar_t w[MAX_PATH * 2];
    MultiByteToWideChar(CP_UTF8, 0, g_dir, -1, w, MAX_PATH * 2);
    remove_tree(w);
}

int wt_exists(const char *path) {
    return GetFileAttributesW(wt_wide(path)) != INVALID_FILE_ATTRIBUTES;
}

int wt_read(const char *path, char *buf, int cap) {
    HANDLE f = CreateFileW(wt_wide(path), GENERIC_READ,
                           FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, NULL,
                           OPEN_EXISTING, 0, NULL);
    DWORD n = 0;
    if (f == INVALID_HANDLE_VALUE)
        return -1;
    if (!ReadFile(f, buf, (DWORD)cap - 1, &n, NULL))
        n = 0;
    CloseHandle(f);
    buf[n] = '\0';
    return (int)n;
}

const char *wt_host(void) {
    static char host[256];
    wchar_t w[256];
    DWORD n = sizeof w / sizeof w[0];
    ck_assert(GetComputerNameExW(ComputerNameDnsHostname, w, &n));
    WideCharToMultiByte(CP_UTF8, 0, w, -1, host, sizeof host, NULL, NULL);
    return host;
}

void wt_plant(const char *path, const char *content) {
    HANDLE f = CreateFileW(wt_wide(path), GENERIC_WRITE, 0, NULL, CREATE_NEW, 0, NULL);
    DWORD w = 0;
    ck_assert_msg(f != INVALID_HANDLE_VALUE, "cannot create %s (error %lu)", path,
                  (unsigned long)GetLastError());
    ck_assert(WriteFile(f, content, (DWORD)strlen(content), &w, NULL));
    ck_assert_int_eq((int)w, (int)strlen(content));
    CloseHandle(f);
}

int wt_count(const char *prefix) {
    wchar_t pat[4096], wprefix[256];
    WIN32_FIND_DATAW fd;
    HANDLE f;
    int n = 0;
    MultiByteToWideChar(CP_UTF8, 0, prefix, -1, wprefix, 256);
    swprintf(pat, 4096, L"%ls", wt_wide(wt_path("*")));
    f = FindFirstFileW(pat, &fd);
    if (f == INVALID_HANDLE_VALUE)
        return 0;
    do
        n += !(fd.dwFileAttributes & FILE_ATTRIBUTE_DIRECTORY) && wcscmp(fd.cFileName, L".") &&
             wcscmp(fd.cFileName, L"..") && wcsncmp(fd.cFileName, wprefix, wcslen(wprefix)) == 0;
    while (FindNextFileW(f, &fd));
    FindClose(f);
    return n;
}

int wt_spawn(wt_proc *p, const char *mode, const char *kind, const char *path) {
    SECURITY_ATTRIBUTES sa = {sizeof sa, NULL, TRUE};
    HANDLE in_r, in_w, out_r, out_w;
    STARTUPINFOW si;
    PROCESS_INFORMATION pi;
    wchar_t exe[MAX_PATH], *slash, cmd[8192];
    memset(p, 0, sizeof *p);
    GetModuleFileNameW(NULL, exe, MAX_PATH);
    slash = wcsrchr(exe, L'\\');
    if (!slash)
        return -1;
    wcscpy(slash + 1, L"fl_win_helper.exe");
    if (!CreatePipe(&in_r, &in_w, &sa, 0) || !CreatePipe(&out_r, &out_w, &sa, 0))
        return -1;
    SetHandleInformation(in_w, HANDLE_FLAG_INHERIT, 0);
    SetHandleInformation(out_r, HANDLE_FLAG_INHERIT, 0);
    swprintf(cmd, 8192, L"\"%ls\" %hs %hs \"%ls\"", exe, mode, kind, wt_wide(path));
    memset(&si, 0, sizeof si);
    si.cb = sizeof si;
    si.dwFlags = STARTF_USESTDHANDLES;
    si.hStdInput = in_r;
    si.hStdOutput = out_w;
    si.hStdError = GetStdHandle(STD_ERROR_HANDLE);
    if (!CreateProcessW(exe, cmd, NULL, NULL, TRUE, 0, NULL, NULL, &si, &pi))
        return -1;
    CloseHandle(pi.hThread);
    CloseHandle(in_r);
    CloseHandle(out_w);
    p->process = pi.hProcess;
    p->pid = pi.dwProcessId;
    p->in = in_w;
    p->out = out_r;
    return 0;
}

int wt_expect(wt_proc *p, const char *prefix, double seconds) {
    char line[256];
    size_t n = 0;
    ULONGLONG end = GetTickCount64() + (ULONGLONG)(seconds * 1000);
    while (GetTickCount64() < end) {
        DWORD avail = 0, got = 0;
        char c;
        if (!PeekNamedPipe(p->out, NULL, 0, NULL, &avail, NULL))
            return 0; /* the helper ended */
        if (avail == 0) {
            Sleep(5);
            continue;
        }
        if (!ReadFile(p->out, &c, 1, &got, NULL) || got == 0)
            return 0;
        if (c == '\n') {
            line[n] = '\0';
            if (strncmp(line, prefix, strlen(prefix)) == 0)
                return 1;
            n = 0;
        } else if (n < sizeof line - 1) {
            line[n++] = c;
        }
    }
    return 0;
}

int wt_finish(wt_proc *p, double seconds) {
    DWORD code = (DWORD)-1;
    int rc;
    if (p->in) {
        CloseHandle(p->in);
        p->in = NULL;
    }
    if (WaitForSingleObject(p->process, (DWORD)(seconds * 1000)) != WAIT_OBJECT_0) {
        TerminateProcess(p->process, 99);
        WaitForSingleObject(p->process, 5000);
        rc = -1;
    } else {
        GetExitCodeProcess(p->process, &code);
        rc = (int)code;
    }
    CloseHandle(p->process);
    CloseHandle(p->out);
    p->process = p->out = NULL;
    return rc;
}

typedef struct wt_call {
    wt_fn fn;
    void *arg;
    int result;
} wt_call;

static DWORD WINAPI thread_main(void *arg) {
    wt_call *c = arg;
    c->result = c->fn(c->arg);
    return 0;
}

/* The call record rides in the thread's slot of a small table, so wt_join
 * can read the result without the caller allocating. */
static wt_call g_calls[64];
static HANDLE g_threads[64];

HANDLE wt_thread(wt_fn fn, void *arg) {
    int i;
    for (i = 0; i < 64; i++)
        if (!g_threads[i])
            break;
    ck_assert_int_lt(i, 64);
    g_calls[i].fn = fn;
    g_calls[i].arg = arg;
    g_calls[i].result = 0;
    g_threads[i] = CreateThread(NULL, 0, thread_main, &g_calls[i], 0, NULL);
    ck_assert_ptr_nonnull(g_threads[i]);
    return g_threads[i];
}

int wt_join(HANDLE t, double seconds) {
    int i, r;
    for (i = 0; i < 64; i++)
        if (g_threads[i] == t)
            break;
    ck_assert_int_lt(i, 64);
    if (WaitForSingleObject(t, (DWORD)(seconds * 1000)) != WAIT_OBJECT_0)
        return -1000; /* the thread is left running; the test fails */
    r = g_calls[i].result;
    CloseHandle(t);
    g_threads[i] = NULL;
    return r;
}

fl_lock *wt_lock(const char *path, fl_kind kind) {
    fl_options o = FL_OPTIONS_INIT;
    fl_lock *l = NULL;
    o.kind = kind;
    ck_assert_msg(fl_lock_new(&l, path, &o) == 0, "fl_lock_new(%s): %s", path, fl_last_error());
    return l;
}
