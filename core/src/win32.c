/*
 * Windows backend: LockFileEx on one byte of a separate lock file (the
 * kernel lock), a CREATE_NEW marker file (the soft lock), and wake-ups from
 * a pending overlapped LockFileEx (kernel) or a directory change
 * notification (soft).
 *
 * Why byte 0, length 1: that is the range msvcrt's _locking() takes, which
 * is what py-filelock's WindowsFileLock uses, so the two exclude each other.
 * Byte-range locks belong to the file handle: two handles in one process
 * contend exactly like two processes, as flock does on POSIX.
 *
 * Why a waiter leaves its own LockFileEx pending instead of re-trying: the
 * pending request *is* the wait. The kernel grants it the moment the holder
 * unlocks (no polling, and the waiter keeps its place in the queue); on a
 * timeout or a cancel it is withdrawn with CancelIoEx.
 *
 * Wine (through at least 11.0) never completes a LockFileEx that has to wait
 * on a handle opened for overlapped I/O ("Async I/O lock wait not
 * implemented" in its ntdll), and it does not fill the OVERLAPPED either, so
 * a pending request would look granted or hang. Under Wine the backend
 * therefore opens the lock file for synchronous I/O: waiting forever is a
 * blocking LockFileEx (woken by the release), a timed wait re-tries at the
 * poll interval.
 *
 * Paths arrive in UTF-8 and are converted to UTF-16 for the W functions;
 * long ones get the \\?\ prefix. Every Win32 error becomes a library code in
 * one place, win_code().
 */
#define WIN32_LEAN_AND_MEAN
#include "internal.h"
#include "seconds.h"

#include <windows.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>

/* The locked range: byte 0, one byte (see above). */
#define FL__LOCK_OFFSET 0u
#define FL__LOCK_LENGTH 1u

/* lock_issue(): the request is queued in the kernel. */
#define FL__PENDING 3

/* Grace for a marker without a valid record (the holder is between its
 * create and its write), and how often a waiter judges a marker again. */
#define FL__MALFORMED_GRACE 2.0
#define FL__STALE_RECHECK   0.5
/* How long release and break retry a marker another handle keeps open. */
#define FL__DELETE_RETRY 1.0

/* What a kernel-lock attempt keeps between calls (hold->win). It lives on
 * the heap because the OVERLAPPED must not move while a request is pending,
 * and the core copies holds by value. */
typedef struct win_kernel {
    HANDLE file;
    HANDLE event; /* manual-reset, signalled when the request completes */
    OVERLAPPED ov;
    int pending; /* a LockFileEx request is queued */
    int locked;  /* the range is ours */
    wchar_t *wpath;
} win_kernel;

/* ---------------------------------------------------------------------- */
/* The system-call seam                                                    */
/* ---------------------------------------------------------------------- */

static void *sys_create_file(const wchar_t *path, unsigned long access, unsigned long share,
                             unsigned long disposition, unsigned long flags) {
    return CreateFileW(path, access, share, NULL, disposition, flags, NULL);
}
static int sys_lock_file(void *h, unsigned long flags, void *ov) {
    return LockFileEx(h, flags, 0, FL__LOCK_LENGTH, 0, ov);
}
static int sys_unlock_file(void *h, void *ov) { return UnlockFileEx(h, 0, FL__LOCK_LENGTH, 0, ov); }
static int sys_close_handle(void *h) { return CloseHandle(h); }
static int sys_create_directory(const wchar_t *path) { return CreateDirectoryW(path, NULL); }
static int sys_write_file(void *h, const void *buf, unsigned long n, unsigned long *written) {
    DWORD w = 0;
    BOOL ok = WriteFile(h, buf, n, &w, NULL);
    *written = w;
    return ok;
}

static const fl__syscalls real_syscalls = {
    sys_create_file,  sys_lock_file,        sys_unlock_file,
    sys_close_handle, sys_create_directory, sys_write_file,
};

fl__syscalls fl__sys = {
    sys_create_file,  sys_lock_file,        sys_unlock_file,
    sys_close_handle, sys_create_directory, sys_write_file,
};

void fl__sys_reset(void) { fl__sys = real_syscalls; }

double fl__now(void) {
    static LARGE_INTEGER freq; /* constant since boot; a racing first write stores the same */
    LARGE_INTEGER now;
    if (freq.QuadPart == 0)
        QueryPerformanceFrequency(&freq);
    QueryPerformanceCounter(&now);
    return (double)now.QuadPart / (double)freq.QuadPart;
}

/* ---------------------------------------------------------------------- */
/* Errors: the one place where a Win32 error becomes a library code        */
/* ---------------------------------------------------------------------- */

static int win_code(DWORD e) {
    switch (e) {
    case ERROR_ACCESS_DENIED:
    case ERROR_SHARING_VIOLATION:
    case ERROR_LOCK_VIOLATION:
    case ERROR_PRIVILEGE_NOT_HELD:
    case ERROR_NETWORK_ACCESS_DENIED:
        return FL_EACCES;
    case ERROR_WRITE_PROTECT:
        return FL_EROFS;
    case ERROR_FILENAME_EXCED_RANGE:
    case ERROR_BUFFER_OVERFLOW:
        return FL_ENAMETOOLONG;
    case ERROR_FILE_NOT_FOUND:
    case ERROR_PATH_NOT_FOUND:
    case ERROR_INVALID_DRIVE:
    case ERROR_BAD_NETPATH:
    case ERROR_BAD_NET_NAME:
        return FL_ENOENT;
    case ERROR_DIRECTORY:
        return FL_ENOTDIR;
    case ERROR_CANT_RESOLVE_FILENAME:
    case 681: /* ERROR_STOPPED_ON_SYMLINK, missing from mingw-w64's headers */
        return FL_ELOOP;
    case ERROR_DISK_FULL:
    case ERROR_HANDLE_DISK_FULL:
    case 1295: /* ERROR_DISK_QUOTA_EXCEEDED, missing from mingw-w64's headers */
        return FL_ENOSPC;
    case ERROR_NOT_ENOUGH_MEMORY:
    case ERROR_OUTOFMEMORY:
        return FL_ENOMEM;
    case ERROR_NOT_SUPPORTED:
    case ERROR_INVALID_FUNCTION:
    case ERROR_CALL_NOT_IMPLEMENTED:
        return FL_ENOTSUP;
    case ERROR_INVALID_NAME:
    case ERROR_BAD_PATHNAME:
    case ERROR_INVALID_PARAMETER:
    case ERROR_NO_UNICODE_TRANSLATION:
        return FL_EINVAL;
    case ERROR_OPERATION_ABORTED:
        return FL_ECANCELED;
    case ERROR_CRC:
    case ERROR_READ_FAULT:
    case ERROR_WRITE_FAULT:
    case ERROR_GEN_FAILURE:
    case ERROR_IO_DEVICE:
    case ERROR_NETNAME_DELETED:
    case ERROR_UNEXP_NET_ERR:
        return FL_EIO;
    default:
        return FL_EOS;
    }
}

/* The system's text for e in UTF-8, without the trailing period and CRLF. */
static void win_text(DWORD e, char *buf, size_t size) {
    wchar_t w[512];
    DWORD n =
        FormatMessageW(FORMAT_MESSAGE_FROM_SYSTEM | FORMAT_MESSAGE_IGNORE_INSERTS, NULL, e,
                       MAKELANGID(LANG_NEUTRAL, SUBLANG_DEFAULT), w, sizeof w / sizeof w[0], NULL);
    int r;
    while (n > 0 &&
           (w[n - 1] == L'\r' || w[n - 1] == L'\n' || w[n - 1] == L'.' || w[n - 1] == L' '))
        n--;
    r = n ? WideCharToMultiByte(CP_UTF8, 0, w, (int)n, buf, (int)size - 1, NULL, NULL) : 0;
    if (r <= 0)
        snprintf(buf, size, "Windows error %lu", (unsigned long)e);
    else
        buf[r] = '\0';
}

/* "<what> '<path>': <system text> (error <n>)"; fl_last_errno() is the
 * Win32 error code. */
static int win_error(DWORD e, const char *what, const char *path) {
    char text[400];
    win_text(e, text, sizeof text);
    return fl__error(win_code(e), (int)e, "%s '%s': %s (Windows error %lu)", what, path, text,
                     (unsigned long)e);
}

static int isdir_error(const fl_lock *l) {
    return fl__error(FL_EISDIR, (int)ERROR_DIRECTORY, "cannot use lock file '%s': is a directory",
                     l->path);
}

static int reparse_error(const fl_lock *l) {
    return fl__error(FL_ELOOP, (int)ERROR_CANT_RESOLVE_FILENAME,
                     "refusing to use lock file '%s': it is a symbolic link, junction or other "
                     "reparse point (its target is not touched)",
                     l->path);
}

static int not_regular_error(const fl_lock *l) {
    return fl__error(FL_ENOTREG, 0,
                     "cannot use lock file '%s': not a regular file (a device or pipe)", l->path);
}

/* ---------------------------------------------------------------------- */
/* Paths                                                                   */
/* ---------------------------------------------------------------------- */

static int is_sep(wchar_t c) { return c == L'\\' || c == L'/'; }

/* UTF-8 -> UTF-16 (caller frees); NULL with the error set. Paths too long
 * for the classic API are made absolute and given the \\?\ prefix. */
static wchar_t *wide_path(const char *path) {
    int n = MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, path, -1, NULL, 0);
    wchar_t *w, *full, *out;
    DWORD len;
    if (n <= 0)
        return fl__error(FL_EINVAL, (int)GetLastError(),
                         "invalid lock file path '%s': not valid UTF-8", path),
               NULL;
    w = malloc((size_t)n * sizeof *w);
    if (!w)
        return fl__error(FL_ENOMEM, (int)ERROR_NOT_ENOUGH_MEMORY,
                         "out of memory converting lock file path '%s'", path),
               NULL;
    MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, path, -1, w, n);
    /* 248: CreateDirectoryW's limit, a little below MAX_PATH. */
    if (n < 248 || wcsncmp(w, L"\\\\?\\", 4) == 0 || wcsncmp(w, L"\\\\.\\", 4) == 0)
        return w;
    len = GetFullPathNameW(w, 0, NULL, NULL);
    full = len ? malloc(((size_t)len + 8) * sizeof *full) : NULL;
    if (!full || GetFullPathNameW(w, len, full, NULL) == 0) {
        free(full);
        return w; /* let the call itself report the problem */
    }
    out = malloc(((size_t)len + 8) * sizeof *out);
    if (!out) {
        free(full);
        return w;
    }
    if (full[0] == L'\\' && full[1] == L'\\') /* \\server\share -> \\?\UNC\server\share */
        swprintf(out, (size_t)len + 8, L"\\\\?\\UNC\\%ls", full + 2);
    else
        swprintf(out, (size_t)len + 8, L"\\\\?\\%ls", full);
    free(full);
    free(w);
    return out;
}

/* UTF-16 -> UTF-8 (caller frees), or NULL. */
static char *utf8_path(const wchar_t *w) {
    int n = WideCharToMultiByte(CP_UTF8, 0, w, -1, NULL, 0, NULL, NULL);
    char *s;
    if (n <= 0)
        return NULL;
    s = malloc((size_t)n);
    if (s)
        WideCharToMultiByte(CP_UTF8, 0, w, -1, s, n, NULL, NULL);
    return s;
}

/* Creates dir and its missing parents (parents first). Returns 0 or a
 * Win32 error; ERROR_DIRECTORY when a non-directory is in the way. */
static DWORD create_dirs(wchar_t *dir, int depth) {
    DWORD e, attr;
    wchar_t *sep, saved;
    if (fl__sys.create_directory(dir))
        return 0;
    e = GetLastError();
    if (e == ERROR_ALREADY_EXISTS) {
        attr = GetFileAttributesW(dir);
        return attr != INVALID_FILE_ATTRIBUTES && !(attr & FILE_ATTRIBUTE_DIRECTORY)
                   ? ERROR_DIRECTORY
                   : 0;
    }
    if (e != ERROR_PATH_NOT_FOUND || depth > 512)
        return e;
    for (sep = dir + wcslen(dir); sep > dir && !is_sep(sep[-1]); sep--) {
    }
    if (sep <= dir + 1)
        return e;
    sep--;
    saved = *sep;
    *sep = L'\0';
    e = create_dirs(dir, depth + 1);
    *sep = saved;
    if (e != 0)
        return e;
    if (fl__sys.create_directory(dir) || GetLastError() == ERROR_ALREADY_EXISTS)
        return 0;
    return GetLastError();
}

/* Creates the missing parent directories of the lock file (inheriting the
 * parent's ACL, as mode 0777 under the umask does on POSIX). */
static int make_parents(const fl_lock *l, const wchar_t *wpath) {
    size_t n = wcslen(wpath);
    wchar_t *dir;
    DWORD e;
    while (n > 0 && !is_sep(wpath[n - 1]))
        n--;
    while (n > 1 && is_sep(wpath[n - 1]))
        n--; /* the parent without its trailing separator(s) */
    if (n == 0)
        return 0;
    dir = malloc((n + 1) * sizeof *dir);
    if (!dir)
        return fl__error(FL_ENOMEM, (int)ERROR_NOT_ENOUGH_MEMORY,
                         "out of memory creating the parents of lock file '%s'", l->path);
    memcpy(dir, wpath, n * sizeof *dir);
    dir[n] = L'\0';
    e = create_dirs(dir, 0);
    free(dir);
    if (e == ERROR_DIRECTORY)
        return fl__error(FL_ENOTDIR, (int)e,
                         "cannot create lock file '%s': '%s' is not a directory", l->path, l->dir);
    if (e != 0)
        return win_error(e, "cannot create the parent directories of lock file", l->path);
    return 0;
}

/* Identity and type of what the path names now, without following a final
 * reparse point. Returns 0 or a Win32 error. */
static DWORD path_info(const wchar_t *wpath, BY_HANDLE_FILE_INFORMATION *info, DWORD *type) {
    HANDLE f = fl__sys.create_file(
        wpath, FILE_READ_ATTRIBUTES, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE,
        OPEN_EXISTING, FILE_FLAG_OPEN_REPARSE_POINT | FILE_FLAG_BACKUP_SEMANTICS);
    DWORD e = 0;
    if (f == INVALID_HANDLE_VALUE)
        return GetLastError();
    if (type)
        *type = GetFileType(f);
    if (!GetFileInformationByHandle(f, info))
        e = GetLastError();
    fl__sys.close_handle(f);
    return e;
}

static uint64_t info_ino(const BY_HANDLE_FILE_INFORMATION *i) {
    return ((uint64_t)i->nFileIndexHigh << 32) | i->nFileIndexLow;
}

/* The "device" half of a file's identity: the volume serial number, with
 * the creation time folded into the high bits. File systems that reuse a
 * file index at once (Wine on ext4 reuses inode numbers) would otherwise let
 * a new marker pass for the deleted one, and its holder's release delete
 * the next holder's marker. */
static uint64_t info_dev(const BY_HANDLE_FILE_INFORMATION *i) {
    return (uint64_t)i->dwVolumeSerialNumber | ((uint64_t)i->ftCreationTime.dwLowDateTime << 32);
}

/* 1 if the path itself (not a target) is a reparse point. */
static int reparse_at(const wchar_t *wpath) {
    DWORD attr = GetFileAttributesW(wpath);
    return attr != INVALID_FILE_ATTRIBUTES && (attr & FILE_ATTRIBUTE_REPARSE_POINT);
}

/* Rejects what must not be used as a lock file or marker. */
static int check_kind(const fl_lock *l, DWORD attr, DWORD type) {
    if (attr & FILE_ATTRIBUTE_REPARSE_POINT)
        return reparse_error(l);
    if (attr & FILE_ATTRIBUTE_DIRECTORY)
        return isdir_error(l);
    if (type != FILE_TYPE_DISK)
        return not_regular_error(l);
    return 0;
}

/* An open failure, reported as what is at the path when that explains it
 * (opening a directory as a file says "access denied"). */
static int open_error(const fl_lock *l, const wchar_t *wpath, DWORD e, const char *what) {
    DWORD attr = GetFileAttributesW(wpath);
    if (attr != INVALID_FILE_ATTRIBUTES) {
        if (attr & FILE_ATTRIBUTE_REPARSE_POINT)
            return reparse_error(l);
        if (attr & FILE_ATTRIBUTE_DIRECTORY)
            return isdir_error(l);
    }
    return win_error(e, what, l->path);
}

/* ---------------------------------------------------------------------- */
/* Owner records and proof of death                                        */
/* ---------------------------------------------------------------------- */

static void host_name(char *buf, size_t size) {
    wchar_t w[256];
    DWORD n = sizeof w / sizeof w[0];
    buf[0] = '\0';
    if (GetComputerNameExW(ComputerNameDnsHostname, w, &n) && n > 0 &&
        WideCharToMultiByte(CP_UTF8, 0, w, -1, buf, (int)size, NULL, NULL) <= 0)
        buf[0] = '\0';
    buf[size - 1] = '\0';
}

/* A process's start token: its creation time (100 ns units since 1601) in
 * decimal, unique across reboots, so a recycled pid has another token.
 * Returns 0, 1 when no such process runs, -1 when it cannot be told. */
static int start_token_of(HANDLE proc, char *out, size_t size) {
    FILETIME created, exited, kernel, user;
    if (!GetProcessTimes(proc, &created, &exited, &kernel, &user))
        return -1;
    snprintf(out, size, "%llu",
             ((unsigned long long)created.dwHighDateTime << 32) | created.dwLowDateTime);
    return 0;
}

static int owner_record(char *buf, size_t size) {
    char host[256], token[96] = "";
    int n;
    host_name(host, sizeof host);
    if (start_token_of(GetCurrentProcess(), token, sizeof token) != 0)
        token[0] = '\0';
    if (token[0])
        n = snprintf(buf, size, "%lu\n%s\n%s\n", (unsigned long)GetCurrentProcessId(), host, token);
    else
        n = snprintf(buf, size, "%lu\n%s\n", (unsigned long)GetCurrentProcessId(), host);
    return n < 0 || (size_t)n >= size ? -1 : n;
}

/* Opens and reads a marker (at most cap-1 bytes), refusing reparse points
 * and non-files. Returns 0 or a Win32 error (ERROR_FILE_NOT_FOUND when
 * there is none; ERROR_DIRECTORY / ERROR_CANT_RESOLVE_FILENAME /
 * ERROR_BAD_FILE_TYPE for what is not a marker). */
static DWORD read_marker(const wchar_t *wpath, BY_HANDLE_FILE_INFORMATION *info, char *buf,
                         size_t cap, size_t *len) {
    HANDLE f = fl__sys.create_file(
        wpath, GENERIC_READ, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, OPEN_EXISTING,
        FILE_FLAG_OPEN_REPARSE_POINT | FILE_FLAG_BACKUP_SEMANTICS);
    DWORD e = 0, got = 0, n;
    if (f == INVALID_HANDLE_VALUE)
        return GetLastError();
    if (GetFileType(f) != FILE_TYPE_DISK)
        e = ERROR_BAD_FILE_TYPE;
    else if (!GetFileInformationByHandle(f, info))
        e = GetLastError();
    else if ((info->dwFileAttributes & FILE_ATTRIBUTE_REPARSE_POINT) || reparse_at(wpath))
        e = ERROR_CANT_RESOLVE_FILENAME;
    else if (info->dwFileAttributes & FILE_ATTRIBUTE_DIRECTORY)
        e = ERROR_DIRECTORY;
    while (e == 0 && got < cap - 1) {
        if (!ReadFile(f, buf + got, (DWORD)(cap - 1 - got), &n, NULL)) {
            e = GetLastError();
            break;
        }
        if (n == 0)
            break;
        got += n;
    }
    fl__sys.close_handle(f);
    buf[got] = '\0';
    *len = got;
    return e;
}

static int marker_error(const fl_lock *l, DWORD e, const char *what) {
    if (e == ERROR_CANT_RESOLVE_FILENAME)
        return reparse_error(l);
    if (e == ERROR_DIRECTORY)
        return isdir_error(l);
    if (e == ERROR_BAD_FILE_TYPE)
        return not_regular_error(l);
    return win_error(e, what, l->path);
}

static double filetime_seconds(FILETIME t) {
    return (double)(((uint64_t)t.dwHighDateTime << 32) | t.dwLowDateTime) / 1e7;
}

/* 1 only with proof that the marker's holder is gone: same host and no
 * such process, or one that has exited, or a live one with another start
 * token (a recycled pid). A live holder, one that cannot be inspected and
 * another host's are kept. */
static int holder_is_gone(const BY_HANDLE_FILE_INFORMATION *info, const char *buf, size_t len) {
    char host[256], token[96];
    fl_owner o;
    HANDLE proc;
    int gone = 0;
    if (fl__parse_owner(buf, len, &o) != 0) {
        FILETIME now;
        GetSystemTimeAsFileTime(&now);
        return filetime_seconds(now) - filetime_seconds(info->ftLastWriteTime) >=
               FL__MALFORMED_GRACE;
    }
    host_name(host, sizeof host);
    if (strcmp(o.hostname, host) != 0)
        return 0;
    if ((unsigned long)o.pid == (unsigned long)GetCurrentProcessId())
        return 0;
    proc = OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION | SYNCHRONIZE, FALSE, (DWORD)o.pid);
    if (!proc)
        return GetLastError() == ERROR_INVALID_PARAMETER; /* no such process */
    if (WaitForSingleObject(proc, 0) == WAIT_OBJECT_0)
        gone = 1; /* exited; someone still holds a handle to it */
    else if (o.start_token[0] && start_token_of(proc, token, sizeof token) == 0 &&
             strcmp(token, o.start_token) != 0)
        gone = 1;
    CloseHandle(proc);
    return gone;
}

/* Deletes, through a handle, the file at wpath if it is still the one
 * identified by (dev, ino). The handle pins the identity: no other file can
 * take the name between the check and the delete, so no rename dance is
 * needed as on POSIX. Another handle without FILE_SHARE_DELETE (a reader)
 * makes the open fail with a sharing violation for a moment: retried for
 * up to FL__DELETE_RETRY seconds. Returns 0 (deleted, gone, or not ours:
 * *deleted tells) or a Win32 error. */
static DWORD delete_if_same(const wchar_t *wpath, int check, uint64_t dev, uint64_t ino,
                            int *deleted) {
    double until = fl__now() + FL__DELETE_RETRY;
    DWORD sleep_ms = 1;
    *deleted = 0;
    for (;;) {
        HANDLE f = fl__sys.create_file(wpath, DELETE | FILE_READ_ATTRIBUTES,
                                       FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE,
                                       OPEN_EXISTING, FILE_FLAG_OPEN_REPARSE_POINT);
        BY_HANDLE_FILE_INFORMATION info;
        FILE_DISPOSITION_INFO disp;
        DWORD e = 0;
        if (f == INVALID_HANDLE_VALUE) {
            e = GetLastError();
            if (e == ERROR_FILE_NOT_FOUND || e == ERROR_PATH_NOT_FOUND)
                return 0;
            if ((e == ERROR_SHARING_VIOLATION || e == ERROR_ACCESS_DENIED) && fl__now() < until) {
                Sleep(sleep_ms);
                if (sleep_ms < 50)
                    sleep_ms *= 2;
                continue;
            }
            return e;
        }
        if (check && (!GetFileInformationByHandle(f, &info) || info_dev(&info) != dev ||
                      info_ino(&info) != ino)) {
            fl__sys.close_handle(f);
            return 0;
        }
        disp.DeleteFile = TRUE;
        if (!SetFileInformationByHandle(f, FileDispositionInfo, &disp, sizeof disp))
            e = GetLastError();
        fl__sys.close_handle(f);
        *deleted = e == 0;
        return e;
    }
}

/* Removes a stale marker. Returns 1 if a marker went. */
static int reclaim_if_stale(const wchar_t *wpath) {
    char buf[4096];
    BY_HANDLE_FILE_INFORMATION judged;
    size_t len = 0;
    int deleted = 0;
    if (read_marker(wpath, &judged, buf, sizeof buf, &len) != 0)
        return 0;
    if (!holder_is_gone(&judged, buf, len))
        return 0;
    if (delete_if_same(wpath, 1, info_dev(&judged), info_ino(&judged), &deleted) != 0)
        return 0;
    return deleted;
}

int fl__os_get_owner(fl_lock *l, int kind, fl_owner *out) {
    char buf[4096], host[256];
    BY_HANDLE_FILE_INFORMATION info;
    wchar_t *wpath;
    size_t len = 0;
    DWORD e;
    memset(out, 0, sizeof *out);
    out->pid = -1;
    if (!(wpath = wide_path(l->path)))
        return fl_last_code();
    if (kind != FL_SOFT) {
        /* Windows does not say who holds a byte-range lock. */
        e = path_info(wpath, &info, NULL);
        free(wpath);
        if (e == ERROR_FILE_NOT_FOUND || e == ERROR_PATH_NOT_FOUND)
            return fl__error(FL_ENOENT, 0, "lock '%s' is not held", l->path);
        return fl__error(FL_ENOTSUP, 0,
                         "cannot tell who holds '%s': Windows does not report the holder of a "
                         "file lock",
                         l->path);
    }
    e = read_marker(wpath, &info, buf, sizeof buf, &len);
    free(wpath);
    if (e == ERROR_FILE_NOT_FOUND || e == ERROR_PATH_NOT_FOUND)
        return fl__error(FL_ENOENT, 0, "soft lock '%s' is not held", l->path);
    if (e != 0)
        return marker_error(l, e, "cannot read soft lock marker");
    if (fl__parse_owner(buf, len, out) != 0) {
        memset(out, 0, sizeof *out);
        out->pid = -1;
        return fl__error(FL_ENOTSUP, 0,
                         "soft lock '%s' is held, but its marker has no owner record", l->path);
    }
    host_name(host, sizeof host);
    out->this_process = (unsigned long)out->pid == (unsigned long)GetCurrentProcessId() &&
                        strcmp(out->hostname, host) == 0;
    return 0;
}

int fl__os_break(fl_lock *l, int kind) {
    wchar_t *wpath;
    DWORD attr, e;
    int deleted;
    if (kind != FL_SOFT)
        return fl__error(FL_ENOTSUP, 0,
                         "cannot break kernel lock '%s': the OS releases it when its holder "
                         "exits",
                         l->path);
    if (!(wpath = wide_path(l->path)))
        return fl_last_code();
    attr = GetFileAttributesW(wpath);
    if (attr == INVALID_FILE_ATTRIBUTES) {
        e = GetLastError();
        free(wpath);
        return e == ERROR_FILE_NOT_FOUND || e == ERROR_PATH_NOT_FOUND
                   ? 0
                   : win_error(e, "cannot inspect soft lock marker", l->path);
    }
    if (attr & (FILE_ATTRIBUTE_REPARSE_POINT | FILE_ATTRIBUTE_DIRECTORY)) {
        free(wpath);
        return (attr & FILE_ATTRIBUTE_REPARSE_POINT) ? reparse_error(l) : isdir_error(l);
    }
    e = delete_if_same(wpath, 0, 0, 0, &deleted);
    free(wpath);
    return e ? win_error(e, "cannot remove soft lock marker", l->path) : 0;
}

/* ---------------------------------------------------------------------- */
/* Kernel lock                                                             */
/* ---------------------------------------------------------------------- */

/* 1 where a LockFileEx on an overlapped handle can wait (Windows), 0 under
 * Wine (see the top of this file). Computed once; a racing first call
 * stores the same value. */
static int async_lock_waits(void) {
    static volatile LONG state; /* 0 unknown, 1 yes, 2 no */
    LONG v = state;
    if (v == 0) {
        HMODULE ntdll = GetModuleHandleW(L"ntdll.dll");
        v = ntdll && GetProcAddress(ntdll, "wine_get_version") ? 2 : 1;
        state = v;
    }
    return v == 1;
}

static void kernel_free(win_kernel *k) {
    if (k->event)
        CloseHandle(k->event);
    free(k->wpath);
    free(k);
}

/* Opens (creating if needed, never truncating) the lock file with every
 * sharing mode, so that other handles and deletion are not refused; a
 * final reparse point is opened as itself and rejected, its target never
 * touched. *created tells whether this call made the file. */
static int kernel_open(fl_lock *l, fl__hold *h, int *created) {
    const DWORD share = FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE;
    const DWORD flags = FILE_ATTRIBUTE_NORMAL | FILE_FLAG_OPEN_REPARSE_POINT |
                        (async_lock_waits() ? FILE_FLAG_OVERLAPPED : 0);
    BY_HANDLE_FILE_INFORMATION info;
    win_kernel *k;
    HANDLE f;
    DWORD e;
    int rc;

    *created = 0;
    k = calloc(1, sizeof *k);
    if (!k)
        return fl__error(FL_ENOMEM, (int)ERROR_NOT_ENOUGH_MEMORY,
                         "out of memory opening lock file '%s'", l->path);
    if (!(k->wpath = wide_path(l->path))) {
        free(k);
        return fl_last_code();
    }
    k->event = CreateEventW(NULL, TRUE, FALSE, NULL);
    if (!k->event) {
        rc = win_error(GetLastError(), "cannot create an event for lock file", l->path);
        kernel_free(k);
        return rc;
    }
    /* Checked before the open too: an implementation that ignores
     * FILE_FLAG_OPEN_REPARSE_POINT (Wine) would create a dangling link's
     * target. */
    if (reparse_at(k->wpath)) {
        kernel_free(k);
        return reparse_error(l);
    }
    f = fl__sys.create_file(k->wpath, GENERIC_READ | GENERIC_WRITE, share, OPEN_ALWAYS, flags);
    if (f == INVALID_HANDLE_VALUE && GetLastError() == ERROR_PATH_NOT_FOUND && l->base[0]) {
        if ((rc = make_parents(l, k->wpath)) != 0) {
            kernel_free(k);
            return rc;
        }
        f = fl__sys.create_file(k->wpath, GENERIC_READ | GENERIC_WRITE, share, OPEN_ALWAYS, flags);
    }
    if (f == INVALID_HANDLE_VALUE && GetLastError() == ERROR_ACCESS_DENIED) {
        /* A read-only file, or no write permission on it: LockFileEx only
         * needs read access. */
        f = fl__sys.create_file(k->wpath, GENERIC_READ, share, OPEN_EXISTING, flags);
        if (f == INVALID_HANDLE_VALUE)
            SetLastError(ERROR_ACCESS_DENIED);
    }
    if (f == INVALID_HANDLE_VALUE) {
        rc = open_error(l, k->wpath, GetLastError(), "cannot open lock file");
        kernel_free(k);
        return rc;
    }
    *created = GetLastError() != ERROR_ALREADY_EXISTS;
    k->file = f;
    if (GetFileType(f) != FILE_TYPE_DISK) { /* NUL, CON, COM1, a pipe */
        fl__sys.close_handle(f);
        kernel_free(k);
        return not_regular_error(l);
    }
    if (!GetFileInformationByHandle(f, &info)) {
        e = GetLastError();
        fl__sys.close_handle(f);
        kernel_free(k);
        return win_error(e, "cannot inspect lock file", l->path);
    }
    if ((rc = check_kind(
             l, info.dwFileAttributes | (reparse_at(k->wpath) ? FILE_ATTRIBUTE_REPARSE_POINT : 0),
             FILE_TYPE_DISK)) != 0) {
        fl__sys.close_handle(f);
        kernel_free(k);
        return rc;
    }
    h->dev = info_dev(&info);
    h->ino = info_ino(&info);
    h->have_id = 1;
    h->win = k;
    return 0;
}

/* Queues a LockFileEx request for the range. fail_now: one attempt.
 * Returns 0 (won), FL__BUSY (fail_now only), FL__PENDING, or -1 with the
 * Win32 error in *err. */
static int lock_issue(fl__hold *h, win_kernel *k, int fail_now, DWORD *err) {
    DWORD flags =
        (h->shared ? 0 : LOCKFILE_EXCLUSIVE_LOCK) | (fail_now ? LOCKFILE_FAIL_IMMEDIATELY : 0);
    memset(&k->ov, 0, sizeof k->ov);
    k->ov.Offset = FL__LOCK_OFFSET; /* explicit: overlapped handles have no file position */
    k->ov.OffsetHigh = 0;
    k->ov.hEvent = k->event;
    ResetEvent(k->event);
    *err = 0;
    if (fl__sys.lock_file(k->file, flags, &k->ov)) {
        k->locked = 1;
        return 0;
    }
    *err = GetLastError();
    if (*err == ERROR_IO_PENDING) {
        k->pending = 1;
        return FL__PENDING;
    }
    if (*err == ERROR_LOCK_VIOLATION && fail_now)
        return FL__BUSY;
    return -1;
}

/* Collects the pending request, waiting up to ms. Returns 0 (won),
 * FL__BUSY (still queued, or refused), or -1 with the Win32 error. */
static int lock_collect(win_kernel *k, DWORD ms, DWORD *err) {
    DWORD n;
    *err = 0;
    if (ms == 0 ? !HasOverlappedIoCompleted(&k->ov)
                : WaitForSingleObject(k->event, ms) == WAIT_TIMEOUT)
        return FL__BUSY;
    k->pending = 0;
    if (GetOverlappedResult(k->file, &k->ov, &n, TRUE)) {
        k->locked = 1;
        return 0;
    }
    *err = GetLastError();
    if (*err == ERROR_LOCK_VIOLATION || *err == ERROR_OPERATION_ABORTED)
        return FL__BUSY;
    return -1;
}

/* Withdraws a queued request; if it was granted meanwhile, gives it back. */
static void lock_withdraw(win_kernel *k) {
    DWORD n;
    if (!k->pending)
        return;
    CancelIoEx(k->file, &k->ov);
    if (GetOverlappedResult(k->file, &k->ov, &n, TRUE))
        k->locked = 1;
    k->pending = 0;
}

static void lock_give_back(win_kernel *k) {
    OVERLAPPED ov;
    DWORD n;
    if (!k->locked)
        return;
    memset(&ov, 0, sizeof ov);
    ov.Offset = FL__LOCK_OFFSET;
    ov.hEvent = k->event;
    ResetEvent(k->event);
    if (!fl__sys.unlock_file(k->file, &ov) && GetLastError() == ERROR_IO_PENDING)
        GetOverlappedResult(k->file, &ov, &n, TRUE);
    k->locked = 0;
}

static int lock_error(fl_lock *l, fl__hold *h, DWORD e, int created) {
    win_kernel *k = h->win;
    if (e == ERROR_NOT_SUPPORTED || e == ERROR_INVALID_FUNCTION ||
        e == ERROR_CALL_NOT_IMPLEMENTED) {
        /* Left there, the empty file we just created would look like a soft
         * marker nobody owns: remove it if it is still ours. */
        uint64_t dev = h->dev, ino = h->ino;
        wchar_t *wpath = k->wpath;
        int deleted;
        k->wpath = NULL;
        fl__os_abandon(h);
        if (created)
            (void)delete_if_same(wpath, 1, dev, ino, &deleted);
        free(wpath);
        return fl__error(FL_ENOTSUP, (int)e,
                         "cannot lock '%s': the file system does not support LockFileEx; use "
                         "the soft lock or the soft_fallback option",
                         l->path);
    }
    fl__os_abandon(h);
    return win_error(e, "cannot lock", l->path);
}

static int kernel_try(fl_lock *l, fl__hold *h, int block) {
    BY_HANDLE_FILE_INFORMATION info;
    win_kernel *k;
    DWORD e = 0;
    int rc, created = 0;

    if (!h->win && (rc = kernel_open(l, h, &created)) != 0)
        return rc;
    k = h->win;
    if (k->locked) {
        rc = 0; /* granted while the watch waited */
    } else if (k->pending) {
        rc = lock_collect(k, block ? INFINITE : 0, &e);
    } else {
        rc = lock_issue(h, k, !block, &e);
        if (rc == FL__PENDING)
            rc = lock_collect(k, INFINITE, &e); /* block, or a fail-now answered late */
    }
    if (rc == FL__BUSY)
        return FL__BUSY;
    if (rc < 0)
        return lock_error(l, h, e, created);
    /* Won. If the path was deleted or replaced meanwhile (every handle
     * shares delete), we locked a file others no longer find: start over. */
    e = path_info(k->wpath, &info, NULL);
    if (((e == ERROR_FILE_NOT_FOUND || e == ERROR_PATH_NOT_FOUND)) ||
        (e == 0 && (info_dev(&info) != h->dev || info_ino(&info) != h->ino))) {
        fl__os_abandon(h);
        return FL__RETRY;
    }
    return 0;
}

/* ---------------------------------------------------------------------- */
/* Soft lock                                                               */
/* ---------------------------------------------------------------------- */

/* The marker's content, the owner record "<pid>\n<hostname>\n<token>\n",
 * written fully before reporting success. */
static DWORD write_owner(HANDLE f) {
    char buf[512];
    int n = owner_record(buf, sizeof buf);
    unsigned long off = 0, w;
    if (n < 0)
        return ERROR_BUFFER_OVERFLOW;
    while (off < (unsigned long)n) {
        if (!fl__sys.write_file(f, buf + off, (unsigned long)n - off, &w))
            return GetLastError();
        if (w == 0)
            return ERROR_WRITE_FAULT;
        off += w;
    }
    return 0;
}

static int soft_try(fl_lock *l, fl__hold *h) {
    const DWORD flags = FILE_ATTRIBUTE_NORMAL | FILE_FLAG_OPEN_REPARSE_POINT;
    const DWORD share = FILE_SHARE_READ | FILE_SHARE_DELETE;
    BY_HANDLE_FILE_INFORMATION info;
    wchar_t *wpath;
    HANDLE f;
    DWORD e, attr, type = FILE_TYPE_DISK;
    int rc;

    if (!(wpath = wide_path(l->path)))
        return fl_last_code();
    f = fl__sys.create_file(wpath, GENERIC_WRITE, share, CREATE_NEW, flags);
    if (f == INVALID_HANDLE_VALUE && GetLastError() == ERROR_PATH_NOT_FOUND && l->base[0]) {
        if ((rc = make_parents(l, wpath)) != 0) {
            free(wpath);
            return rc;
        }
        f = fl__sys.create_file(wpath, GENERIC_WRITE, share, CREATE_NEW, flags);
    }
    if (f == INVALID_HANDLE_VALUE) {
        e = GetLastError();
        if (e != ERROR_FILE_EXISTS && e != ERROR_ALREADY_EXISTS && e != ERROR_ACCESS_DENIED) {
            rc = open_error(l, wpath, e, "cannot create soft lock marker");
            free(wpath);
            return rc;
        }
        attr = GetFileAttributesW(wpath);
        if (attr == INVALID_FILE_ATTRIBUTES) {
            DWORD e2 = GetLastError();
            free(wpath);
            if (e2 == ERROR_FILE_NOT_FOUND || e2 == ERROR_PATH_NOT_FOUND) {
                if (e == ERROR_ACCESS_DENIED) /* nothing there: a real refusal */
                    return win_error(e, "cannot create soft lock marker", l->path);
                return FL__RETRY; /* released in between */
            }
            /* Delete pending: the holder's release is under way. */
            return FL__BUSY;
        }
        if (path_info(wpath, &info, &type) != 0)
            memset(&info, 0, sizeof info);
        if ((rc = check_kind(l, attr, type)) != 0) {
            free(wpath);
            return rc;
        }
        /* Judging a marker costs a dozen calls: do it when a new marker
         * appears, then at most twice a second (a holder can die without
         * touching its marker, so never stop re-checking). */
        if (!h->have_id || h->dev != info_dev(&info) || h->ino != info_ino(&info) ||
            fl__now() >= h->recheck_at) {
            if (reclaim_if_stale(wpath)) {
                free(wpath);
                return FL__RETRY;
            }
            h->recheck_at = fl__now() + FL__STALE_RECHECK;
        }
        free(wpath);
        h->dev = info_dev(&info);
        h->ino = info_ino(&info);
        h->have_id = 1;
        return FL__BUSY;
    }
    if ((e = write_owner(f)) != 0 || !GetFileInformationByHandle(f, &info)) {
        int deleted;
        if (e == 0)
            e = GetLastError();
        fl__sys.close_handle(f);
        (void)delete_if_same(wpath, 0, 0, 0, &deleted);
        free(wpath);
        return win_error(e, "cannot write soft lock marker", l->path);
    }
    if (!fl__sys.close_handle(f)) {
        int deleted;
        e = GetLastError();
        (void)delete_if_same(wpath, 0, 0, 0, &deleted);
        free(wpath);
        return win_error(e, "cannot write soft lock marker", l->path);
    }
    free(wpath);
    h->dev = info_dev(&info);
    h->ino = info_ino(&info);
    h->have_id = 1;
    return 0;
}

/* ---------------------------------------------------------------------- */
/* Backend entry points                                                    */
/* ---------------------------------------------------------------------- */

int fl__os_try(fl_lock *l, int kind, fl__hold *h, int block) {
    if (l->base[0] == '\0')
        return isdir_error(l);
    return kind == FL_KERNEL ? kernel_try(l, h, block) : soft_try(l, h);
}

void fl__os_abandon(fl__hold *h) {
    win_kernel *k = h->win;
    if (!k)
        return;
    lock_withdraw(k);
    lock_give_back(k);
    fl__sys.close_handle(k->file);
    kernel_free(k);
    h->win = NULL;
}

int fl__os_release(fl_lock *l, int kind, fl__hold *h, int owner) {
    int rc = 0;
    win_kernel *k = h->win;
    (void)kind;
    if (k) {
        /* Unlock explicitly: closing alone releases the range only "at
         * some point" according to the LockFileEx documentation. The lock
         * file itself is never deleted: that would split waiters. */
        lock_withdraw(k);
        if (owner)
            lock_give_back(k);
        if (!fl__sys.close_handle(k->file))
            rc = win_error(GetLastError(), "error closing lock file (the lock is released)",
                           l->path);
        kernel_free(k);
        h->win = NULL;
        return rc;
    }
    if (owner && h->have_id) {
        /* Delete the marker only if it is still the one we created. */
        wchar_t *wpath = wide_path(l->path);
        int deleted;
        DWORD e;
        if (!wpath)
            rc = fl_last_code();
        else if ((e = delete_if_same(wpath, 1, h->dev, h->ino, &deleted)) != 0)
            rc = win_error(e, "cannot remove soft lock marker", l->path);
        free(wpath);
    }
    h->have_id = 0;
    return rc;
}

/* ---------------------------------------------------------------------- */
/* Wake-ups                                                                */
/* ---------------------------------------------------------------------- */

void fl__os_watch_open(fl_lock *l, int kind, fl__watch *w) {
    w->change = NULL;
    if (kind == FL_SOFT) {
        /* A release deletes the marker: a file-name change in its directory. */
        wchar_t *wdir = wide_path(l->dir);
        HANDLE c;
        if (!wdir)
            return;
        c = FindFirstChangeNotificationW(wdir, FALSE, FILE_NOTIFY_CHANGE_FILE_NAME);
        free(wdir);
        if (c != INVALID_HANDLE_VALUE)
            w->change = c;
    }
    /* Kernel lock: the hold's own request, queued by watch_wait. */
}

/* Rounded up (never wake before the time) and clamped (seconds.h). */
static DWORD to_ms(double seconds) {
    int ms;
    if (fl__seconds_to_ms(seconds, &ms) != 0)
        return 0;
    return (DWORD)ms;
}

int fl__os_watch_wait(fl_lock *l, int kind, fl__watch *w, double seconds) {
    double end = fl__now() + seconds;
    win_kernel *k = w->hold ? w->hold->win : NULL;
    if (kind == FL_KERNEL && k && !k->locked && async_lock_waits()) {
        DWORD e = 0;
        if (!k->pending) {
            int rc = lock_issue(w->hold, k, 0, &e);
            if (rc == 0)
                return 1; /* granted at once; the next attempt sees it */
            if (rc < 0)
                return lock_error(l, w->hold, e, 0);
        }
        /* Granted, or the slice is over: the next attempt collects it. */
        return WaitForSingleObject(k->event, to_ms(seconds)) == WAIT_OBJECT_0;
    }
    if (kind == FL_SOFT && w->change) {
        wchar_t *wpath = wide_path(l->path);
        for (;;) {
            double left = end - fl__now();
            if (left <= 0 || WaitForSingleObject(w->change, to_ms(left)) != WAIT_OBJECT_0)
                break;
            /* Changes of other files in the directory: keep waiting. */
            if (!wpath || GetFileAttributesW(wpath) == INVALID_FILE_ATTRIBUTES)
                break;
            if (!FindNextChangeNotification(w->change))
                break;
        }
        free(wpath);
        return 1; /* a change, or the time: re-check either way */
    }
    Sleep(to_ms(seconds));
    return 0;
}

/* Windows has no fork. */
void fl__os_atfork(int phase) { (void)phase; }

void fl__os_watch_close(fl__watch *w) {
    if (w->change)
        FindCloseChangeNotification(w->change);
    w->change = NULL;
}

/* ---------------------------------------------------------------------- */
/* Singleton key                                                           */
/* ---------------------------------------------------------------------- */

/* The parent directory resolved to its final path (links and junctions in
 * it followed; the final component is not), folded to lower case since
 * Windows file names are case-insensitive. A parent that does not exist yet
 * is keyed by its absolute spelling. */
char *fl__os_canonical_key(const char *dir, const char *base) {
    const DWORD cap = 32768; /* the longest path Windows has */
    wchar_t *wdir = NULL, *wbase = NULL, *full = NULL, *d, *key = NULL;
    char *out = NULL;
    size_t n;
    HANDLE hd;
    DWORD len = 0;

    if (!(wdir = wide_path(dir)) || !(wbase = wide_path(base)) ||
        !(full = malloc(cap * sizeof *full)))
        goto done;
    d = full;
    hd = CreateFileW(wdir, 0, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, NULL,
                     OPEN_EXISTING, FILE_FLAG_BACKUP_SEMANTICS, NULL);
    if (hd != INVALID_HANDLE_VALUE) {
        len = GetFinalPathNameByHandleW(hd, full, cap, FILE_NAME_NORMALIZED | VOLUME_NAME_DOS);
        CloseHandle(hd);
        if (len >= cap)
            len = 0;
        if (len > 4 && wcsncmp(full, L"\\\\?\\", 4) == 0)
            d = full + 4;
    }
    if (len == 0) {
        len = GetFullPathNameW(wdir, cap, full, NULL);
        if (len == 0 || len >= cap)
            wcscpy(full, wdir); /* wdir is shorter than cap: it came from a C string */
        d = full;
    }
    n = wcslen(d) + wcslen(wbase) + 2;
    if (!(key = malloc(n * sizeof *key)))
        goto done;
    swprintf(key, n, L"%ls%ls%ls", d, (*d && is_sep(d[wcslen(d) - 1])) ? L"" : L"\\", wbase);
    CharLowerBuffW(key, (DWORD)wcslen(key));
    out = utf8_path(key);
done:
    free(key);
    free(full);
    free(wdir);
    free(wbase);
    return out;
}
