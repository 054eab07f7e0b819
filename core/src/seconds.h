/*
 * The one conversion from a duration in seconds (a double, as every API of
 * the library and the CLI takes it) to what the OS calls want: struct
 * timespec, struct timeval, milliseconds (int). Header-only and free of
 * library state so that the CLI, which links only the public API, uses the
 * same checked code as the core.
 *
 * Why it exists: (time_t)x is undefined for x = inf, NaN or anything beyond
 * the range of time_t (~9.2e18 s with 64 bits), and in practice yields
 * INT64_MIN, so a wait of "1e19 seconds" became a negative timeout (EINVAL)
 * or a busy loop. Every duration is therefore clamped to FL__SECONDS_MAX,
 * which every caller treats as "wait, then look again": all waits in the
 * library loop until their own deadline, so a clamped slice only costs one
 * extra wake-up every ~31 years.
 */
#ifndef FL_SECONDS_H
#define FL_SECONDS_H

#include <limits.h>
#include <math.h>
#include <time.h>

#ifndef _WIN32
#include <sys/time.h>
#endif

/* 1e9 s (31.7 years): fits a 32-bit time_t, and now + this fits any clock. */
#define FL__SECONDS_MAX 1e9

/* Clamps a duration to [0, FL__SECONDS_MAX]. Returns -1 for NaN (never a
 * valid duration), else 0; a negative duration (a deadline already passed)
 * becomes 0, +inf and anything huge becomes FL__SECONDS_MAX. */
static inline int fl__seconds_clamp(double s, double *out) {
    if (isnan(s))
        return -1;
    if (s < 0)
        s = 0;
    if (s > FL__SECONDS_MAX)
        s = FL__SECONDS_MAX;
    *out = s;
    return 0;
}

/* Duration -> struct timespec (clamped as above); -1 for NaN. The
 * nanoseconds are always in [0, 1e9). */
/* A finite, non-negative number of seconds (already clamped) split into a
 * timespec whose nanoseconds stay in [0, 1e9) whatever the rounding. */
static inline void fl__split_seconds(double s, struct timespec *ts) {
    double whole = floor(s);
    long ns = (long)((s - whole) * 1e9);
    if (ns >= 1000000000L)
        ns = 999999999L;
    if (ns < 0)
        ns = 0;
    ts->tv_sec = (time_t)whole;
    ts->tv_nsec = ns;
}

static inline int fl__seconds_to_timespec(double s, struct timespec *ts) {
    if (fl__seconds_clamp(s, &s) != 0)
        return -1;
    fl__split_seconds(s, ts);
    return 0;
}

#ifndef _WIN32
/* Duration -> struct timeval (clamped as above); -1 for NaN. */
static inline int fl__seconds_to_timeval(double s, struct timeval *tv) {
    struct timespec ts;
    if (fl__seconds_to_timespec(s, &ts) != 0)
        return -1;
    tv->tv_sec = ts.tv_sec;
    tv->tv_usec = (suseconds_t)(ts.tv_nsec / 1000);
    return 0;
}
#endif

/* Duration -> milliseconds, rounded up (a wait never ends before its time)
 * and clamped to [0, INT_MAX - 1] (~24.8 days, below every "infinite"
 * sentinel: -1 for poll, 0xFFFFFFFF for WaitForMultipleObjects); -1 for NaN. */
static inline int fl__seconds_to_ms(double s, int *ms) {
    double m;
    if (fl__seconds_clamp(s, &s) != 0)
        return -1;
    m = ceil(s * 1000.0);
    if (m > (double)(INT_MAX - 1))
        m = (double)(INT_MAX - 1);
    *ms = (int)m;
    return 0;
}

/* Absolute time `seconds` after `now` (both on the same clock, seconds as
 * a double; `now` is a clock reading, far below any time_t limit) as a
 * timespec; used for the monotonic condition variables. The duration is
 * clamped as above, the sum is not. -1 for NaN. */
static inline int fl__deadline_timespec(double now, double seconds, struct timespec *ts) {
    double rel;
    if (fl__seconds_clamp(seconds, &rel) != 0 || isnan(now) || now < 0)
        return -1;
    fl__split_seconds(now + rel, ts);
    return 0;
}

#endif
