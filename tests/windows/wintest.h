/*
 * Shared helpers of the Windows suites (Check, CK_FORK=no): a fresh
 * directory per test, helper processes, and threads. Every wait here has a
 * deadline so that a broken lock fails a test instead of hanging it; the
 * runner's watchdog ends a process that hangs anyway.
 */
#ifndef FL_WINTEST_H
#define FL_WINTEST_H

#define WIN32_LEAN_AND_MEAN
#include <windows.h>

#include <check.h>
#include <filelock.h>

/* The per-test directory (UTF-8, '/' separators work too). */
const char *wt_dir(void);
/* wt_dir() + "/" + name, in one of a few rotating static buffers. */
const char *wt_path(const char *name);
/* Creates / removes the per-test directory (Check fixture). */
void wt_setup(void);
void wt_teardown(void);

/* UTF-8 -> UTF-16 in a static buffer (one at a time). */
const wchar_t *wt_wide(const char *s);
/* 1 if something exists at the UTF-8 path (not following a final link). */
int wt_exists(const char *path);
/* The file's content (up to cap-1 bytes), or -1. */
int wt_read(const char *path, char *buf, int cap);

/* This machine's DNS host name in UTF-8 (what owner records carry). */
const char *wt_host(void);
/* Creates path with exactly this content (fails the test on error), as a
 * marker left by someone else. */
void wt_plant(const char *path, const char *content);
/* How many files of the per-test directory have a (long) name starting
 * with prefix ("." : the soft lock's claims and private markers). */
int wt_count(const char *prefix);

/* A helper process: fl_win_helper.exe <mode> <kind> <path>. */
typedef struct wt_proc {
    HANDLE process;
    HANDLE in;  /* its stdin (we write) */
    HANDLE out; /* its stdout (we read) */
    DWORD pid;
} wt_proc;
/* Starts the helper; 0 or -1. */
int wt_spawn(wt_proc *p, const char *mode, const char *kind, const char *path);
/* Waits up to seconds for a line starting with prefix; 1 if seen. */
int wt_expect(wt_proc *p, const char *prefix, double seconds);
/* Tells a holding helper to release (closes its stdin) and returns its exit
 * code, or -1 if it did not end within seconds (it is then killed). */
int wt_finish(wt_proc *p, double seconds);

/* Runs fn(arg) on a new thread; wt_join waits (deadline) and returns its
 * result, or -1000 on timeout. */
typedef int (*wt_fn)(void *arg);
HANDLE wt_thread(wt_fn fn, void *arg);
int wt_join(HANDLE t, double seconds);

/* A new kernel / soft lock handle (fails the test on error). */
fl_lock *wt_lock(const char *path, fl_kind kind);

Suite *wt_suite_api(void);
Suite *wt_suite_process(void);
Suite *wt_suite_hub(void);
Suite *wt_suite_faults(void);

#endif
