/*
 * Error codes, their names and texts (generated from FL_ERROR_TABLE), and the
 * per-thread last error. The message buffer is a fixed thread-local array so
 * that reporting an error never allocates (it must work when memory is short).
 */
#include "internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

typedef struct fl__tls_error {
    int code;
    int os_errno;
    char msg[1024];
} fl__tls_error;

#ifndef _WIN32
static __thread fl__tls_error tls_err;
#else
/* Windows: one block per thread in fiber-local storage, freed by the FLS
 * callback when the thread ends (also in a DLL, where __thread would need
 * emulation). Allocated at a thread's first use; if that fails, the thread
 * shares a static block rather than failing to report. */
#define WIN32_LEAN_AND_MEAN
#include <windows.h>
static DWORD tls_slot = FLS_OUT_OF_INDEXES;
static INIT_ONCE tls_once = INIT_ONCE_STATIC_INIT;
static fl__tls_error tls_fallback;

static void WINAPI tls_free(void *p) {
    if (p != &tls_fallback)
        HeapFree(GetProcessHeap(), 0, p);
}

static BOOL CALLBACK tls_init(PINIT_ONCE once, void *param, void **ctx) {
    (void)once, (void)param, (void)ctx;
    tls_slot = FlsAlloc(tls_free);
    return TRUE;
}

static fl__tls_error *tls_block(void) {
    DWORD saved = GetLastError(); /* callers may be about to read it */
    fl__tls_error *b;
    InitOnceExecuteOnce(&tls_once, tls_init, NULL, NULL);
    if (tls_slot == FLS_OUT_OF_INDEXES)
        return &tls_fallback;
    b = FlsGetValue(tls_slot);
    if (!b) {
        b = HeapAlloc(GetProcessHeap(), HEAP_ZERO_MEMORY, sizeof *b);
        if (!b || !FlsSetValue(tls_slot, b)) {
            if (b)
                HeapFree(GetProcessHeap(), 0, b);
            b = &tls_fallback;
        }
    }
    SetLastError(saved);
    return b;
}
#define tls_err (*tls_block())
#endif

const char *fl_strerror(int code) {
    switch (code) {
#define FL__CASE_TEXT(name, value, text)                                                           \
    case value:                                                                                    \
        return text;
        FL_ERROR_TABLE(FL__CASE_TEXT)
#undef FL__CASE_TEXT
    default:
        return "unknown error";
    }
}

const char *fl_err_name(int code) {
    switch (code) {
#define FL__CASE_NAME(name, value, text)                                                           \
    case value:                                                                                    \
        return #name;
        FL_ERROR_TABLE(FL__CASE_NAME)
#undef FL__CASE_NAME
    default:
        return "UNKNOWN";
    }
}

const char *fl_last_error(void) { return tls_err.msg; }

int fl_last_code(void) { return tls_err.code; }

int fl_last_errno(void) { return tls_err.os_errno; }

int fl__error(int code, int os_errno, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tls_err.msg, sizeof tls_err.msg, fmt, ap);
    va_end(ap);
    tls_err.code = code;
    tls_err.os_errno = os_errno;
    return code;
}

/* The one place where an OS errno becomes a library code. */
int fl__code_from_errno(int e) {
    switch (e) {
    case EACCES:
    case EPERM:
        return FL_EACCES;
    case EISDIR:
        return FL_EISDIR;
    case EROFS:
        return FL_EROFS;
    case ENAMETOOLONG:
        return FL_ENAMETOOLONG;
    case ENOENT:
        return FL_ENOENT;
    case ENOTDIR:
        return FL_ENOTDIR;
    case ELOOP:
        return FL_ELOOP;
    case ENXIO: /* open() of a socket, or of a device with no driver */
        return FL_ENOTREG;
    case ENOSPC:
#ifdef EDQUOT
    case EDQUOT:
#endif
        return FL_ENOSPC;
    case ENOMEM:
        return FL_ENOMEM;
    case EIO:
        return FL_EIO;
    case EINTR:
        return FL_EINTR;
    case ENOSYS:
#if defined(EOPNOTSUPP) && EOPNOTSUPP != ENOTSUP
    case EOPNOTSUPP:
#endif
    case ENOTSUP:
        return FL_ENOTSUP;
    case EINVAL:
        return FL_EINVAL;
    default:
        return FL_EOS;
    }
}

int fl__os_error(int os_errno, const char *what, const char *path) {
    return fl__error(fl__code_from_errno(os_errno), os_errno, "%s '%s': %s", what, path,
                     strerror(os_errno));
}

void fl__error_save(fl__error_state *st) {
    st->code = tls_err.code;
    st->os_errno = tls_err.os_errno;
    memcpy(st->msg, tls_err.msg, sizeof st->msg);
}

void fl__error_restore(const fl__error_state *st) {
    tls_err.code = st->code;
    tls_err.os_errno = st->os_errno;
    memcpy(tls_err.msg, st->msg, sizeof tls_err.msg);
}
