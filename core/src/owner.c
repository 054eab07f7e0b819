/*
 * Owner records of soft markers: "<pid>\n<hostname>\n<start token>\n", the
 * format the newest pure-Python filelock writes, so that the two can judge
 * each other's markers; and its protocol 2 records (leases). Parsing is
 * strict: anything else is "malformed".
 */
#include "internal.h"
#include "soft.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Writes the decimal value of the 192-bit number hi:mid:lo. The start token
 * is (boot_id << 64) | starttime, wider than any C integer type. */
int fl__decimal192(uint64_t hi, uint64_t mid, uint64_t lo, char *buf, size_t size) {
    uint32_t limb[6];
    char tmp[64];
    size_t n = 0, i;
    int nonzero;
    limb[0] = (uint32_t)(hi >> 32);
    limb[1] = (uint32_t)hi;
    limb[2] = (uint32_t)(mid >> 32);
    limb[3] = (uint32_t)mid;
    limb[4] = (uint32_t)(lo >> 32);
    limb[5] = (uint32_t)lo;
    do {
        uint64_t rem = 0;
        nonzero = 0;
        for (i = 0; i < 6; i++) {
            uint64_t cur = (rem << 32) | limb[i];
            limb[i] = (uint32_t)(cur / 10);
            rem = cur % 10;
            nonzero |= limb[i] != 0;
        }
        tmp[n++] = (char)('0' + rem);
    } while (nonzero && n < sizeof tmp);
    if (n + 1 > size)
        return -1;
    for (i = 0; i < n; i++)
        buf[i] = tmp[n - 1 - i];
    buf[n] = '\0';
    return 0;
}

/* Copies one '\n'-terminated line; returns the position after it or NULL. */
static const char *take_line(const char *p, const char *end, char *dst, size_t cap) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    size_t n;
    if (!nl)
        return NULL;
    n = (size_t)(nl - p);
    if (n >= cap)
        return NULL;
    memcpy(dst, p, n);
    dst[n] = '\0';
    return nl + 1;
}

int fl__parse_owner(const char *buf, size_t len, fl_owner *out) {
    uint64_t ns;
    return fl__parse_record(buf, len, out, &ns);
}

/* The hostname line may end in " pidns=<decimal>": the writer's pid
 * namespace, written only outside the initial one. */
static uint64_t split_pidns(char *host) {
    char *sp = strrchr(host, ' ');
    const char *d;
    uint64_t v = 0;
    if (!sp || strncmp(sp, " pidns=", 7) != 0 || sp[7] < '1' || sp[7] > '9')
        return 0;
    for (d = sp + 7; *d; d++) {
        if (*d < '0' || *d > '9' || v > (UINT64_MAX - 9) / 10)
            return 0;
        v = v * 10 + (uint64_t)(*d - '0');
    }
    *sp = '\0';
    return v;
}

#define FL__PROTO2 "filelock/2\n"

/* A decimal pid that pid_t can hold, else -1. */
static long parse_pid(const char *pid) {
    char *stop;
    long v;
    if (pid[0] < '1' || pid[0] > '9')
        return -1;
    errno = 0;
    v = strtol(pid, &stop, 10);
    /* A pid that overflows, or that pid_t cannot hold, would alias another
     * process when passed to kill() (e.g. 2^32+1 -> 1, LONG_MAX -> -1). */
    if (*stop != '\0' || v <= 0 || errno == ERANGE || (long)(pid_t)v != v)
        return -1;
    return v;
}

static int all_digits(const char *s) {
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return 0;
    return 1;
}

/* The pure-Python filelock's protocol 2 record (its _marker.py): key=value
 * lines after "filelock/2"; pid, host and mode are required, unknown keys
 * are ignored (a newer writer's), a lease needs a token and a finite
 * positive duration. *duration is the lease's, or 0. */
static int parse_proto2(const char *buf, size_t len, fl_owner *out, uint64_t *pidns,
                        double *duration) {
    const char *p = buf + sizeof FL__PROTO2 - 1, *end = buf + len;
    char line[320], pid[32] = "", mode[32] = "", dur[64] = "";
    int have_host = 0, have_token = 0;
    long v;
    *duration = 0;
    while (p < end) {
        char *eq;
        if (!(p = take_line(p, end, line, sizeof line)))
            return -1;
        if (line[0] == '\0')
            continue;
        if (!(eq = strchr(line, '=')))
            return -1;
        *eq = '\0';
        if (strcmp(line, "pid") == 0 && strlen(eq + 1) < sizeof pid)
            strcpy(pid, eq + 1);
        else if (strcmp(line, "host") == 0 && strlen(eq + 1) < sizeof out->hostname) {
            strcpy(out->hostname, eq + 1);
            have_host = out->hostname[0] != '\0';
        } else if (strcmp(line, "mode") == 0 && strlen(eq + 1) < sizeof mode)
            strcpy(mode, eq + 1);
        else if (strcmp(line, "token") == 0)
            have_token = 1;
        else if (strcmp(line, "duration") == 0 && strlen(eq + 1) < sizeof dur)
            strcpy(dur, eq + 1);
        else if (strcmp(line, "start") == 0) {
            if (strlen(eq + 1) >= sizeof out->start_token || !all_digits(eq + 1))
                return -1;
            strcpy(out->start_token, eq + 1);
        }
    }
    if (!mode[0] || !have_host || (v = parse_pid(pid)) < 0)
        return -1;
    *pidns = split_pidns(out->hostname);
    if (out->hostname[0] == '\0' || strstr(out->hostname, " pidns="))
        return -1;
    if (strcmp(mode, "lease") == 0) {
        char *stop;
        double d = dur[0] ? strtod(dur, &stop) : 0;
        /* NaN and infinity parse, and would wedge or never end a lease. */
        if (!have_token || !dur[0] || *stop != '\0' || !(d > 0) || d > 1e300)
            return -1;
        *duration = d;
    }
    out->pid = v;
    return 0;
}

int fl__record_lease(const char *buf, size_t len, double *duration) {
    fl_owner o;
    uint64_t ns;
    memset(&o, 0, sizeof o);
    if (len < sizeof FL__PROTO2 - 1 || memcmp(buf, FL__PROTO2, sizeof FL__PROTO2 - 1) != 0 ||
        memchr(buf, '\0', len))
        return 0;
    return parse_proto2(buf, len, &o, &ns, duration) == 0 && *duration > 0;
}

/* Python's repr() of a float without its ".0" (integral values read as
 * the integer a caller most likely passed): the fewest significant digits
 * that read back as d, positional for exponents -4..15 and "1e+16"-style
 * beyond, "nan", "inf", "-inf". printf's %g alone switches to an exponent
 * as soon as the exponent reaches the precision ("1e+02" for 100). One
 * spelling for messages and lease records, so that a duration is written
 * as the pure-Python filelock reads and writes it (float() reads both). */
const char *fl__fmt_double(char buf[FL__DOUBLE_BUF], double d) {
    int prec, exp;
    if (isnan(d))
        return strcpy(buf, "nan");
    if (isinf(d))
        return strcpy(buf, d > 0 ? "inf" : "-inf");
    for (prec = 1; prec < 17; prec++) {
        snprintf(buf, FL__DOUBLE_BUF, "%.*e", prec - 1, d);
        if (strtod(buf, NULL) == d)
            break;
    }
    snprintf(buf, FL__DOUBLE_BUF, "%.*e", prec - 1, d);
    exp = atoi(strchr(buf, 'e') + 1);
    if (exp < -4 || exp >= 16) {
        /* "1.5e-05": the mantissa as %e wrote it, trailing zeros off. */
        char *e = strchr(buf, 'e'), *z = e;
        while (z > buf && z[-1] == '0')
            z--;
        if (z > buf && z[-1] == '.')
            z--;
        memmove(z, e, strlen(e) + 1);
        return buf;
    }
    snprintf(buf, FL__DOUBLE_BUF, "%.*f", prec - 1 - exp > 0 ? prec - 1 - exp : 0, d);
    return buf;
}

int fl__format_lease(char *buf, size_t size, long pid, const char *host, const char *start,
                     const fl__lease_rec *lease) {
    char dur[FL__DOUBLE_BUF], st[128] = "";
    int n;
    fl__fmt_double(dur, lease->duration);
    if (start && start[0])
        snprintf(st, sizeof st, "start=%s\n", start);
    n = snprintf(buf, size, FL__PROTO2 "pid=%ld\nhost=%s\nmode=lease\ntoken=%s\nduration=%s\n%s",
                 pid, host, lease->token, dur, st);
    return n < 0 || (size_t)n >= size ? -1 : n;
}

int fl__parse_record(const char *buf, size_t len, fl_owner *out, uint64_t *pidns) {
    const char *p = buf, *end = buf + len;
    char pid[32];
    long v;
    size_t i;
    memset(out, 0, sizeof *out);
    out->pid = -1;
    *pidns = 0;
    if (len == 0 || memchr(buf, '\0', len))
        return -1;
    if (len >= sizeof FL__PROTO2 - 1 && memcmp(buf, FL__PROTO2, sizeof FL__PROTO2 - 1) == 0) {
        double d;
        if (parse_proto2(buf, len, out, pidns, &d) == 0)
            return 0;
        memset(out, 0, sizeof *out);
        out->pid = -1;
        *pidns = 0;
        return -1;
    }
    if (!(p = take_line(p, end, pid, sizeof pid)) ||
        !(p = take_line(p, end, out->hostname, sizeof out->hostname)))
        return -1;
    if ((v = parse_pid(pid)) < 0)
        return -1;
    *pidns = split_pidns(out->hostname);
    /* A hostname that still carries a tag (" pidns=1 pidns=2") or is only
     * a tag is not a record anybody writes. */
    if (out->hostname[0] == '\0' || strstr(out->hostname, " pidns="))
        return -1;
    if (p < end) {
        if (!take_line(p, end, out->start_token, sizeof out->start_token))
            return -1;
        for (i = 0; out->start_token[i]; i++)
            if (out->start_token[i] < '0' || out->start_token[i] > '9')
                return -1;
    }
    out->pid = v; /* only now: a malformed record leaves pid -1 */
    return 0;
}

/* FNV-1a of a file name: names derived from a lock file's name at a fixed
 * length (the soft lock's claims and private markers, the read/write gate
 * of a long name), so that they fit NAME_MAX whatever the name's length. */
uint64_t fl__name_hash(const char *s) {
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h;
}
