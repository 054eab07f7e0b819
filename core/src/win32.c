/*
 * Windows backend: LockFileEx on one byte of a separate lock file (the
 * kernel lock), the primitives of the soft lock's protocol (soft.c; the
 * protocol itself is written once, there), and wake-ups from a pending
 * overlapped LockFileEx (kernel) or a directory change notification (soft).
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

#include "soft.h"

#include <windows.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>

/* The locked range: byte 0, one byte (see above). */
#define FL__LOCK_OFFSET 0u
#define FL__LOCK_LENGTH 1u

/* lock_issue(): the request is queued in the kernel. */
#define FL__PENDING 3

/* How long a remove or a replace retries a file another handle keeps open
 * without sharing delete (a reader such as Python's open()). */
#define FL__DELETE_RETRY 1.0

/* What a kernel-lock attempt keeps between calls (hold->win). It lives on
 * the heap because the OVERLAPPED must not move while a request is pending,
 * and the core copies holds by value. */
typedef struct win_kernel {
    HANDLE file;
    HANDLE event; /* manual-reset, signalled when the request completes */
    OVERLAPPED ov;
    int pending;    /* a LockFileEx request is queued */
    int locked;     /* the range is ours */
    int req_shared; /* the mode of the last request (the wait hub compares it) */
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
static int sys_move_file(const wchar_t *from, const wchar_t *to, unsigned long flags) {
    return MoveFileExW(from, to, flags);
}
static int sys_cancel_io(void *h, void *ov) { return CancelIoEx(h, ov); }

/* 1 where a LockFileEx on an overlapped handle can wait (Windows), 0 under
 * Wine (see the top of this file). Computed once; a racing first call
 * stores the same value. */
static int sys_async_lock_waits(void) {
    static volatile LONG state; /* 0 unknown, 1 yes, 2 no */
    LONG v = state;
    if (v == 0) {
        HMODULE ntdll = GetModuleHandleW(L"ntdll.dll");
        v = ntdll && GetProcAddress(ntdll, "wine_get_version") ? 2 : 1;
        state = v;
    }
    return v == 1;
}

static const fl__syscalls real_syscalls = {
    sys_create_file,      sys_lock_file,  sys_unlock_file,       sys_close_handle,
    sys_create_directory, sys_write_file, sys_move_file,         sys_cancel_io,
    sys_async_lock_waits, fl__hub_socket, fl__hub_register_wait,
};

fl__syscalls fl__sys = {
    sys_create_file,      sys_lock_file,  sys_unlock_file,       sys_close_handle,
    sys_create_directory, sys_write_file, sys_move_file,         sys_cancel_io,
    sys_async_lock_waits, fl__hub_socket, fl__hub_register_wait,
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

/* The owner record, written in full: a failed or short write is an error
 * (the caller removes the file again). */
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

/* FILE_RENAME_INFO for the full path `to`, and its size (caller frees). */
static FILE_RENAME_INFO *rename_info(const wchar_t *to, DWORD *size) {
    size_t n = wcslen(to);
    FILE_RENAME_INFO *ri;
    /* The name is counted in bytes and, on some systems, also read up to a
     * terminating NUL: give it both. */
    *size = (DWORD)(sizeof *ri + (n + 1) * sizeof(wchar_t));
    ri = calloc(1, *size);
    if (!ri)
        return NULL;
    ri->ReplaceIfExists = FALSE;
    ri->RootDirectory = NULL;
    ri->FileNameLength = (DWORD)(n * sizeof(wchar_t));
    memcpy(ri->FileName, to, (n + 1) * sizeof(wchar_t));
    return ri;
}

/* Deletes, through a handle, the file at wpath if it is still the one
 * identified by (dev, ino) (check != 0), else whatever is there. The handle
 * pins the identity between the check and the delete.
 *
 * A file deleted on Windows keeps its name ("delete pending") until the
 * last handle on it closes, and until then an exclusive create of that name
 * fails: the holder's own handle, a waiter reading the marker or an
 * operator's break of a live holder would keep the lock looking held. So
 * when trash is given, the file is first renamed through the same handle
 * to that private name beside it, which frees the name at once (a rename
 * works while other handles that share delete are open), and then deleted
 * there. (Through the same handle: Wine forgets a delete set on one handle
 * of a file renamed through another.) If the rename is refused, the plain
 * delete still happens.
 *
 * Another handle without FILE_SHARE_DELETE (a reader such as Python's
 * open()) makes the open fail with a sharing violation for a moment:
 * retried for up to FL__DELETE_RETRY seconds. Returns 0 (deleted, gone, or
 * not ours: *deleted tells) or a Win32 error. */
static DWORD delete_if_same(const wchar_t *wpath, int check, uint64_t dev, uint64_t ino,
                            const wchar_t *trash, int *deleted) {
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
        if (trash) {
            DWORD size;
            FILE_RENAME_INFO *ri = rename_info(trash, &size);
            if (ri)
                (void)SetFileInformationByHandle(f, FileRenameInfo, ri, size);
            free(ri);
        }
        disp.DeleteFile = TRUE;
        if (!SetFileInformationByHandle(f, FileDispositionInfo, &disp, sizeof disp))
            e = GetLastError();
        fl__sys.close_handle(f);
        *deleted = e == 0;
        return e;
    }
}

/* ---------------------------------------------------------------------- */
/* Soft lock primitives (the protocol is in soft.c)                        */
/* ---------------------------------------------------------------------- */

/* The primitives speak errno (soft.h). The Win32 error behind the last
 * errno value a primitive returned on this thread is kept, so that
 * fl__prim_path_error can give the system's own reason and code. */
static __thread DWORD t_prim_win;
static __thread int t_prim_errno;

static int prim_fail(DWORD e) {
    int r;
    switch (e) {
    case ERROR_FILE_EXISTS:
    case ERROR_ALREADY_EXISTS:
        r = EEXIST;
        break;
    default:
        switch (win_code(e)) {
        case FL_EACCES:
            r = EACCES;
            break;
        case FL_EROFS:
            r = EROFS;
            break;
        case FL_ENAMETOOLONG:
            r = ENAMETOOLONG;
            break;
        case FL_ENOENT:
            r = ENOENT;
            break;
        case FL_ENOTDIR:
            r = ENOTDIR;
            break;
        case FL_ELOOP:
            r = ELOOP;
            break;
        case FL_ENOSPC:
            r = ENOSPC;
            break;
        case FL_ENOMEM:
            r = ENOMEM;
            break;
        case FL_ENOTSUP:
            r = ENOTSUP;
            break;
        case FL_EINVAL:
            r = EINVAL;
            break;
        default:
            r = EIO;
            break;
        }
    }
    t_prim_win = e;
    t_prim_errno = r;
    return r;
}

/* An errno value without a Win32 error behind it. */
static int prim_fail_errno(int r) {
    t_prim_win = 0;
    t_prim_errno = r;
    return r;
}

/* wide_path for a primitive: the library error it sets is replaced by the
 * caller's, so only errno is kept. */
static wchar_t *prim_wide(const char *path) {
    fl__error_state saved;
    wchar_t *w;
    fl__error_save(&saved);
    w = wide_path(path);
    if (!w)
        prim_fail_errno(fl_last_code() == FL_ENOMEM ? ENOMEM : EINVAL);
    fl__error_restore(&saved);
    return w;
}

/* Whether the name still exists as far as a delete is concerned: a file
 * whose delete is pending (real Windows refuses to open it, ACCESS_DENIED)
 * is on its way out. */
static int delete_pending(const wchar_t *wpath) {
    return GetFileAttributesW(wpath) == INVALID_FILE_ATTRIBUTES &&
           GetLastError() == ERROR_ACCESS_DENIED;
}

/* A private name beside path for a file being removed: the protocol's own
 * ".<hash>." prefix (soft.c) when path has one, else the hash of its name,
 * and ".new", so that the protocol's garbage collection finds a leftover
 * of a crash between the rename and the delete. NULL when it does not fit. */
static wchar_t *trash_name(const char *path) {
    const char *base = path, *p;
    char buf[4096], prefix[20];
    size_t dirlen, i;
    int hashed = base[0] == '.';
    wchar_t *w;
    for (p = path; *p; p++)
        if (*p == '/' || *p == '\\')
            base = p + 1;
    dirlen = (size_t)(base - path);
    for (i = 1; hashed && i <= 16; i++)
        hashed = (base[i] >= '0' && base[i] <= '9') || (base[i] >= 'a' && base[i] <= 'f');
    if (hashed && base[17] == '.') {
        memcpy(prefix, base + 1, 16);
        prefix[16] = '\0';
    } else {
        snprintf(prefix, sizeof prefix, "%016llx", (unsigned long long)fl__name_hash(base));
    }
    if (dirlen + 64 >= sizeof buf)
        return NULL;
    memcpy(buf, path, dirlen);
    snprintf(buf + dirlen, sizeof buf - dirlen, ".%s.%016llx.new", prefix,
             (unsigned long long)fl__prim_random());
    {
        fl__error_state saved;
        fl__error_save(&saved);
        w = wide_path(buf);
        fl__error_restore(&saved);
    }
    return w;
}

fl__fh fl__prim_create(const char *path, int mode, long owner_pid, const fl__lease_rec *lease,
                       fl__fid *id) {
    /* Share delete: a waiter may replace or remove the file while we hold
     * it (only once we are gone, or by an operator's break). */
    const DWORD share = FILE_SHARE_READ | FILE_SHARE_DELETE;
    BY_HANDLE_FILE_INFORMATION info;
    wchar_t *wpath;
    HANDLE f, keep;
    DWORD e;
    (void)mode;      /* Windows files have ACLs (inherited), not modes */
    (void)owner_pid; /* fl_set_owner_pid is not available on Windows */
    (void)lease;     /* leases are refused on Windows (fl_lock_new) */
    if (!(wpath = prim_wide(path))) {
        errno = t_prim_errno;
        return FL__NO_FH;
    }
    f = fl__sys.create_file(wpath, GENERIC_WRITE, share, CREATE_NEW,
                            FILE_ATTRIBUTE_NORMAL | FILE_FLAG_OPEN_REPARSE_POINT);
    if (f == INVALID_HANDLE_VALUE) {
        e = GetLastError();
        if (e == ERROR_ACCESS_DENIED) {
            /* Also what a directory, or a file whose delete is pending,
             * answers: "taken" unless nothing is there (a real refusal). */
            DWORD attr = GetFileAttributesW(wpath), e2 = GetLastError();
            if (attr != INVALID_FILE_ATTRIBUTES ||
                (e2 != ERROR_FILE_NOT_FOUND && e2 != ERROR_PATH_NOT_FOUND))
                e = ERROR_FILE_EXISTS;
        }
        free(wpath);
        errno = prim_fail(e);
        return FL__NO_FH;
    }
    e = write_owner(f);
    if (e == 0 && !GetFileInformationByHandle(f, &info))
        e = GetLastError();
    if (e != 0) {
        /* Never leave a file nobody owns: it would read as a marker. */
        int deleted;
        fl__sys.close_handle(f);
        (void)delete_if_same(wpath, 0, 0, 0, NULL, &deleted);
        free(wpath);
        errno = prim_fail(e);
        return FL__NO_FH;
    }
    free(wpath);
    /* Kept for the hold: a handle with attribute access only, which pins
     * the file's identity without limiting how others may open it (a
     * reader that shares only reading, as the written handle would). */
    keep = ReOpenFile(f, FILE_READ_ATTRIBUTES,
                      FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, 0);
    if (keep != INVALID_HANDLE_VALUE) {
        fl__sys.close_handle(f);
        f = keep;
    }
    id->dev = info_dev(&info);
    id->ino = info_ino(&info);
    return f;
}

static double filetime_seconds(FILETIME t) {
    return (double)(((uint64_t)t.dwHighDateTime << 32) | t.dwLowDateTime) / 1e7;
}

int fl__prim_read(const char *path, fl__record *rec) {
    BY_HANDLE_FILE_INFORMATION info;
    FILETIME now;
    wchar_t *wpath;
    HANDLE f;
    DWORD e = 0, n, got = 0;
    rec->fd = FL__NO_FH;
    rec->len = 0;
    rec->text[0] = '\0';
    if (!(wpath = prim_wide(path)))
        return t_prim_errno;
    f = fl__sys.create_file(wpath, GENERIC_READ,
                            FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, OPEN_EXISTING,
                            FILE_FLAG_OPEN_REPARSE_POINT | FILE_FLAG_BACKUP_SEMANTICS);
    if (f == INVALID_HANDLE_VALUE) {
        int r;
        e = GetLastError();
        if (e == ERROR_SHARING_VIOLATION || (e == ERROR_ACCESS_DENIED && delete_pending(wpath))) {
            /* Opened exclusively for a moment (a taker checking that a
             * dead marker is free), or on its way out: look again soon. */
            Sleep(1);
            r = prim_fail_errno(EAGAIN);
        } else {
            r = prim_fail(e);
        }
        free(wpath);
        return r;
    }
    if (GetFileType(f) != FILE_TYPE_DISK)
        e = ERROR_BAD_FILE_TYPE;
    else if (!GetFileInformationByHandle(f, &info))
        e = GetLastError();
    else if ((info.dwFileAttributes & (FILE_ATTRIBUTE_REPARSE_POINT | FILE_ATTRIBUTE_DIRECTORY)) ||
             reparse_at(wpath))
        e = ERROR_BAD_FILE_TYPE;
    while (e == 0 && got < sizeof rec->text - 1) {
        if (!ReadFile(f, rec->text + got, (DWORD)(sizeof rec->text - 1 - got), &n, NULL)) {
            e = GetLastError();
            break;
        }
        if (n == 0)
            break;
        got += n;
    }
    /* Closed at once: on Windows an open file cannot be replaced (the
     * taker's own handle would stop its rename). The identity needs no
     * handle to stay unique: the file index (with NTFS's sequence number)
     * and the creation time are not given to a new file together. */
    fl__sys.close_handle(f);
    free(wpath);
    if (e == ERROR_BAD_FILE_TYPE)
        return prim_fail_errno(EINVAL);
    if (e != 0)
        return prim_fail(e);
    rec->text[got] = '\0';
    rec->len = got;
    rec->id.dev = info_dev(&info);
    rec->id.ino = info_ino(&info);
    GetSystemTimeAsFileTime(&now);
    rec->age = filetime_seconds(now) - filetime_seconds(info.ftLastWriteTime);
    rec->mtime = filetime_seconds(info.ftLastWriteTime);
    return 0;
}

int fl__prim_id(const char *path, fl__fid *id) {
    BY_HANDLE_FILE_INFORMATION info;
    wchar_t *wpath = prim_wide(path);
    DWORD e;
    if (!wpath)
        return t_prim_errno;
    e = path_info(wpath, &info, NULL);
    /* A file whose delete is pending is no longer anybody's marker. */
    if (e == ERROR_ACCESS_DENIED && delete_pending(wpath))
        e = ERROR_FILE_NOT_FOUND;
    free(wpath);
    if (e != 0)
        return prim_fail(e);
    id->dev = info_dev(&info);
    id->ino = info_ino(&info);
    return 0;
}

/* Replacing a file fails (ACCESS_DENIED) while any handle on it is open,
 * even one that shares delete: on the dead marker that is a waiter reading
 * it for a moment, so it is retried; past FL__DELETE_RETRY a file still
 * open is EBUSY (the protocol waits and judges again), anything else the
 * error it is. */
int fl__prim_replace(const char *from, const char *to) {
    double until = fl__now() + FL__DELETE_RETRY;
    wchar_t *wfrom = prim_wide(from), *wto = wfrom ? prim_wide(to) : NULL;
    DWORD e = 0, sleep_ms = 1;
    int r = 0;
    if (!wto) {
        free(wfrom);
        return t_prim_errno;
    }
    for (;;) {
        if (fl__sys.move_file(wfrom, wto, MOVEFILE_REPLACE_EXISTING)) {
            e = 0;
            break;
        }
        e = GetLastError();
        if ((e != ERROR_ACCESS_DENIED && e != ERROR_SHARING_VIOLATION) || fl__now() >= until)
            break;
        Sleep(sleep_ms);
        if (sleep_ms < 50)
            sleep_ms *= 2;
    }
    if (e == ERROR_ACCESS_DENIED || e == ERROR_SHARING_VIOLATION) {
        /* In use, or refused? An open without sharing tells: it fails
         * while anyone has the file open for data (a reader; a pure-Python
         * holder keeps its marker open). A handle for attributes only,
         * which our own holders keep, does not show here; only a live
         * holder has one, and a live holder is never judged gone, so the
         * refusal that follows is then an error, never a second holder. */
        HANDLE t = fl__sys.create_file(wto, DELETE, 0, OPEN_EXISTING, FILE_FLAG_OPEN_REPARSE_POINT);
        if (t == INVALID_HANDLE_VALUE && GetLastError() == ERROR_SHARING_VIOLATION) {
            r = prim_fail_errno(EBUSY);
        } else {
            if (t != INVALID_HANDLE_VALUE)
                fl__sys.close_handle(t);
            /* Free now: one more try, then its answer stands. */
            r = fl__sys.move_file(wfrom, wto, MOVEFILE_REPLACE_EXISTING)
                    ? 0
                    : prim_fail(GetLastError());
        }
    } else if (e != 0) {
        r = prim_fail(e);
    }
    free(wfrom);
    free(wto);
    return r;
}

int fl__prim_exited(long pid) {
    (void)pid; /* fl_set_owner_pid is POSIX only */
    return 0;
}

/* Leases are refused on Windows: a marker a holder keeps open cannot be
 * replaced there, so an expired lease could not be reclaimed while its
 * holder lives, which is the case leases exist for. */
int fl__prim_touch(fl__fh fd) {
    (void)fd;
    return ENOSYS;
}

int fl__prim_remove(const char *path) {
    wchar_t *wpath = prim_wide(path), *trash;
    int deleted;
    DWORD e;
    if (!wpath)
        return t_prim_errno;
    trash = trash_name(path);
    e = delete_if_same(wpath, 0, 0, 0, trash, &deleted);
    free(trash);
    free(wpath);
    if (e != 0)
        return prim_fail(e);
    return deleted ? 0 : prim_fail_errno(ENOENT);
}

int fl__prim_close(fl__fh fd) {
    if (fd == FL__NO_FH)
        return 0;
    return fl__sys.close_handle(fd) ? 0 : prim_fail(GetLastError());
}

/* Proof of death on Windows: the pid names no process (OpenProcess:
 * ERROR_INVALID_PARAMETER), or one that has exited (its object lives on
 * while someone holds a handle to it), or a process created at another
 * time than the record says (a reused pid). Windows has no pid namespaces:
 * a record written in one (a Linux container with our hostname) cannot be
 * told. Our own pid is judged like any other (a different start token is
 * a previous process that had our pid). */
int fl__prim_judge(const fl__record *rec, double grace) {
    char host[256], token[96];
    uint64_t ns = 0;
    fl_owner o;
    HANDLE proc;
    DWORD code;
    int r = FL__ALIVE;
    if (fl__parse_record(rec->text, rec->len, &o, &ns) != 0)
        return rec->age >= grace ? FL__GONE : FL__ALIVE;
    host_name(host, sizeof host);
    if (strcmp(o.hostname, host) != 0 || ns != 0)
        return FL__UNKNOWN;
    proc = OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION | SYNCHRONIZE, FALSE, (DWORD)o.pid);
    if (!proc && GetLastError() == ERROR_ACCESS_DENIED)
        proc = OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, FALSE, (DWORD)o.pid);
    if (!proc)
        return GetLastError() == ERROR_INVALID_PARAMETER ? FL__GONE : FL__ALIVE;
    if (GetExitCodeProcess(proc, &code) && code != STILL_ACTIVE)
        r = FL__GONE;
    else if (WaitForSingleObject(proc, 0) == WAIT_OBJECT_0)
        r = FL__GONE; /* exited with the code STILL_ACTIVE stands for */
    else if (o.start_token[0] && start_token_of(proc, token, sizeof token) == 0 &&
             strcmp(token, o.start_token) != 0)
        r = FL__GONE;
    CloseHandle(proc);
    return r;
}

/* The age of a record-less file by the file system's clock: the write time
 * of a file we have just written (fresh). The reader holds no handle to the
 * judged file (see fl__prim_read), so "unchanged since it was read" rests on
 * the replace's own identity check here. */
int fl__prim_still_old(const fl__record *rec, fl__fh fresh, double grace) {
    BY_HANDLE_FILE_INFORMATION info;
    if (fresh == FL__NO_FH || !GetFileInformationByHandle((HANDLE)fresh, &info))
        return 0;
    return filetime_seconds(info.ftLastWriteTime) - rec->mtime >= grace;
}

char *fl__prim_absolute(const char *path) {
    int n = MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, path, -1, NULL, 0);
    wchar_t *w, *full;
    DWORD len;
    char *out = NULL;
    if (n <= 0) {
        errno = EINVAL;
        return NULL;
    }
    if (!(w = malloc((size_t)n * sizeof *w))) {
        errno = ENOMEM;
        return NULL;
    }
    MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, path, -1, w, n);
    if (wcsncmp(w, L"\\\\?\\", 4) == 0 || wcsncmp(w, L"\\\\.\\", 4) == 0) {
        free(w);
        return strdup(path); /* already absolute, and not to be normalised */
    }
    len = GetFullPathNameW(w, 0, NULL, NULL);
    full = len ? malloc(((size_t)len + 1) * sizeof *full) : NULL;
    if (full && GetFullPathNameW(w, len + 1, full, NULL) != 0)
        out = utf8_path(full);
    if (!out)
        errno = full ? EINVAL : ENOMEM;
    free(full);
    free(w);
    return out;
}

uint64_t fl__prim_random(void) {
    static volatile LONG64 counter;
    LARGE_INTEGER t;
    uint64_t x;
    QueryPerformanceCounter(&t);
    /* Unique per process by pid and counter; the clock makes a name of a
     * previous process with the same pid unlikely to repeat. splitmix64. */
    x = ((uint64_t)GetCurrentProcessId() << 40) ^ (uint64_t)t.QuadPart ^
        ((uint64_t)InterlockedIncrement64(&counter) * 0x9E3779B97F4A7C15ULL);
    x ^= x >> 30;
    x *= 0xBF58476D1CE4E5B9ULL;
    x ^= x >> 27;
    x *= 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}

int fl__prim_make_parents(const fl_lock *l) {
    wchar_t *wpath = wide_path(l->path);
    int rc;
    if (!wpath)
        return fl_last_code();
    rc = make_parents(l, wpath);
    free(wpath);
    return rc;
}

int fl__prim_path_error(const fl_lock *l, int e) {
    wchar_t *wpath = wide_path(l->path);
    int rc;
    if (!wpath)
        return fl_last_code();
    if (e == EINVAL && t_prim_win == 0) {
        /* Not a regular file: say what is there. */
        DWORD attr = GetFileAttributesW(wpath);
        rc = attr != INVALID_FILE_ATTRIBUTES && (attr & FILE_ATTRIBUTE_REPARSE_POINT)
                 ? reparse_error(l)
             : attr != INVALID_FILE_ATTRIBUTES && (attr & FILE_ATTRIBUTE_DIRECTORY)
                 ? isdir_error(l)
                 : not_regular_error(l);
    } else if (e == t_prim_errno && t_prim_win != 0) {
        rc = open_error(l, wpath, t_prim_win, "cannot use soft lock marker");
    } else {
        rc = fl__os_error(e, "cannot use soft lock marker", l->path);
    }
    free(wpath);
    return rc;
}

void fl__prim_scan(const char *path, const char *prefix, void (*fn)(const char *file, void *arg),
                   void *arg) {
    char pattern[4096], file[4096], *name;
    const char *base = path, *p;
    size_t dirlen, pl = strlen(prefix);
    WIN32_FIND_DATAW fd;
    wchar_t *wpattern;
    HANDLE find;
    for (p = path; *p; p++)
        if (*p == '/' || *p == '\\')
            base = p + 1;
    dirlen = (size_t)(base - path);
    if ((size_t)snprintf(pattern, sizeof pattern, "%.*s%s*", (int)dirlen, path, prefix) >=
        sizeof pattern)
        return;
    {
        fl__error_state saved;
        fl__error_save(&saved);
        wpattern = wide_path(pattern);
        fl__error_restore(&saved);
    }
    if (!wpattern)
        return;
    find = FindFirstFileW(wpattern, &fd);
    free(wpattern);
    if (find == INVALID_HANDLE_VALUE)
        return;
    do {
        /* The pattern also matches 8.3 short names: check the long one. */
        if (fd.dwFileAttributes & FILE_ATTRIBUTE_DIRECTORY || !(name = utf8_path(fd.cFileName)))
            continue;
        if (strncmp(name, prefix, pl) == 0 &&
            (size_t)snprintf(file, sizeof file, "%.*s%s", (int)dirlen, path, name) < sizeof file)
            fn(file, arg);
        free(name);
    } while (FindNextFileW(find, &fd));
    FindClose(find);
}

void fl__prim_sleep(double seconds) { Sleep((DWORD)(seconds * 1000.0 + 0.999)); }

int fl__os_get_owner(fl_lock *l, int kind, fl_owner *out) {
    char host[256];
    uint64_t ns = 0;
    fl__record rec;
    int e;
    memset(out, 0, sizeof *out);
    out->pid = -1;
    if (kind != FL_SOFT) {
        /* Windows does not say who holds a byte-range lock. */
        BY_HANDLE_FILE_INFORMATION info;
        wchar_t *wpath = wide_path(l->path);
        DWORD we;
        if (!wpath)
            return fl_last_code();
        we = path_info(wpath, &info, NULL);
        free(wpath);
        if (we == ERROR_FILE_NOT_FOUND || we == ERROR_PATH_NOT_FOUND)
            return fl__error(FL_ENOENT, 0, "lock '%s' is not held", l->path);
        return fl__error(FL_ENOTSUP, 0,
                         "cannot tell who holds '%s': Windows does not report the holder of a "
                         "file lock",
                         l->path);
    }
    e = fl__prim_read(l->path, &rec);
    if (e == ENOENT)
        return fl__error(FL_ENOENT, 0, "soft lock '%s' is not held", l->path);
    if (e != 0)
        return fl__prim_path_error(l, e);
    if (fl__parse_record(rec.text, rec.len, out, &ns) != 0) {
        memset(out, 0, sizeof *out);
        out->pid = -1;
        return fl__error(FL_ENOTSUP, 0,
                         "soft lock '%s' is held, but its marker has no owner record", l->path);
    }
    host_name(host, sizeof host);
    out->this_process = (unsigned long)out->pid == (unsigned long)GetCurrentProcessId() &&
                        strcmp(out->hostname, host) == 0 && ns == 0;
    return 0;
}

/* ---------------------------------------------------------------------- */
/* Kernel lock                                                             */
/* ---------------------------------------------------------------------- */

/* Through the seam, so that the fault suite can model a kernel whose
 * overlapped LockFileEx waits (tests/windows/test_faults.c) under Wine. */
static int async_lock_waits(void) { return fl__sys.async_lock_waits(); }

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
    k->req_shared = h->shared != 0;
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
    fl__sys.cancel_io(k->file, &k->ov);
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
            (void)delete_if_same(wpath, 1, dev, ino, NULL, &deleted);
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
    int rc, created = 0, reused = h->win != NULL;

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
    if (rc == FL__BUSY) {
        /* A waiter re-tries on the handle of its first attempt (and keeps
         * its request queued there). If the lock file was deleted or
         * replaced since, the lock lives on another file now (perhaps
         * free) while the old one may be held for ever: withdraw, and open
         * the current file. */
        if (reused) {
            e = path_info(k->wpath, &info, NULL);
            if (e == ERROR_FILE_NOT_FOUND || e == ERROR_PATH_NOT_FOUND ||
                (e == 0 && (info_dev(&info) != h->dev || info_ino(&info) != h->ino))) {
                fl__os_abandon(h);
                return FL__RETRY;
            }
        }
        return FL__BUSY;
    }
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
/* Backend entry points                                                    */
/* ---------------------------------------------------------------------- */

int fl__os_try(fl_lock *l, int kind, fl__hold *h, int block) {
    if (l->base[0] == '\0')
        return isdir_error(l);
    return kind == FL_KERNEL ? kernel_try(l, h, block) : fl__soft_try(l, h);
}

void fl__os_abandon(fl__hold *h) {
    win_kernel *k = h->win;
    /* Soft lock: what a failed attempt kept (soft.c). */
    if (h->fd != FL__NO_FH)
        (void)fl__prim_close(h->fd);
    h->fd = FL__NO_FH;
    free(h->path);
    h->path = NULL;
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
    if (kind == FL_SOFT && !k)
        return fl__soft_release(l, h, owner);
    if (k) {
        /* Unlock explicitly: closing alone releases the range only "at
         * some point" according to the LockFileEx documentation. The lock
         * file itself is never deleted: that would split waiters. */
        lock_withdraw(k);
        if (owner)
            lock_give_back(k);
        if (!fl__sys.close_handle(k->file) && fl__close_error_reported(l, FL_KERNEL))
            rc = win_error(GetLastError(), "error closing lock file (the lock is released)",
                           l->path);
        kernel_free(k);
        h->win = NULL;
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

/* ---------------------------------------------------------------------- */
/* The event-loop hub's wake-ups (hub.c)                                   */
/* ---------------------------------------------------------------------- */

void *fl__os_hub_arm(fl__hold *probe, int *ready) {
    win_kernel *k = probe->win;
    DWORD e;
    *ready = 0;
    if (!k)
        return NULL;
    if (k->locked) {
        *ready = 1;
        return NULL;
    }
    if (!async_lock_waits())
        return NULL; /* Wine: the timer re-checks (top of this file) */
    if (!k->pending) {
        int rc = lock_issue(probe, k, 0, &e);
        if (rc == 0) {
            *ready = 1;
            return NULL;
        }
        if (rc < 0)
            return NULL; /* the next attempt meets (and reports) the error */
    }
    return k->event;
}

void fl__os_hub_prepare(fl__hold *probe, int shared) {
    win_kernel *k = probe->win;
    /* A request queued (or granted) for the previous first waiter in the
     * other mode: an exclusive grant handed to a reader would shut the
     * other readers out. Withdraw it, giving a grant back. */
    if (k && (k->pending || k->locked) && k->req_shared != (shared != 0))
        fl__os_hub_withdraw(probe);
}

void fl__os_hub_withdraw(fl__hold *probe) {
    win_kernel *k = probe->win;
    if (k) {
        lock_withdraw(k);
        lock_give_back(k);
    }
}

void *fl__os_dir_notify(const char *dir) {
    wchar_t *wdir = wide_path(dir);
    HANDLE c;
    if (!wdir)
        return NULL;
    c = FindFirstChangeNotificationW(wdir, FALSE, FILE_NOTIFY_CHANGE_FILE_NAME);
    free(wdir);
    return c == INVALID_HANDLE_VALUE ? NULL : c;
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
