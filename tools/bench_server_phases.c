/* tools/bench_server_phases.c: bench_server_phase_parse(), the CLI's schedule spec for the
 * built-in benchmark server (see bench_server.h). Kept apart from the server: it is pure
 * text handling, tested on its own. */
#include "bench_server.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>

/* Bounds that catch typos (a service time in ms taken for us stays legal, a stray digit
 * does not): a day, a million workers, a minute of service. */
#define MAX_AT_MS (24LL * 3600 * 1000)
#define MAX_WORKERS 1000000
#define MAX_SERVICE_US (60LL * 1000000)

static void fail(char *err, size_t errlen, const char *fmt, ...)
{
    if (err == NULL || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* Reads a decimal number in [0, max] at *pp, with optional spaces around it, and moves *pp
 * past it. Returns -1 when there is none or it is too large. */
static int number(const char **pp, long long max, long long *out)
{
    const char *p = *pp;
    long long x = 0;
    while (*p == ' ' || *p == '\t')
        p++;
    if (!isdigit((unsigned char)*p))
        return -1;
    for (; isdigit((unsigned char)*p); p++) {
        x = x * 10 + (*p - '0');
        if (x > max)
            return -1;
    }
    while (*p == ' ' || *p == '\t')
        p++;
    *pp = p;
    *out = x;
    return 0;
}

int bench_server_phase_parse(const char *spec, bench_server_phase *out, size_t cap, size_t *n_out,
                             char *err, size_t errlen)
{
    static const char *const field[3] = {"at_ms", "workers", "service_us"};
    static const long long max[3] = {MAX_AT_MS, MAX_WORKERS, MAX_SERVICE_US};
    const char *p = spec;
    size_t n = 0;
    if (spec == NULL || *spec == '\0') {
        fail(err, errlen, "empty schedule: expected at_ms:workers:service_us[,...]");
        return -1;
    }
    for (;;) {
        long long v[3];
        const char *start = p;
        int len = 0;
        while (start[len] != '\0' && start[len] != ',')
            len++;
        if (n == cap) {
            fail(err, errlen, "too many phases (at most %zu)", cap);
            return -1;
        }
        for (int f = 0; f < 3; f++) {
            bool ok =
                number(&p, max[f], &v[f]) == 0 && (f < 2 ? *p == ':' : (*p == ',' || *p == '\0'));
            if (!ok) {
                fail(err, errlen,
                     "phase %zu \"%.*s\": bad %s (expected at_ms:workers:service_us, "
                     "whole numbers, %s <= %lld)",
                     n + 1, len, start, field[f], field[f], max[f]);
                return -1;
            }
            if (f < 2)
                p++;
        }
        if (n > 0 && v[0] <= out[n - 1].at_ms) {
            fail(err, errlen, "phase %zu \"%.*s\": at_ms %lld is not after the previous %lld",
                 n + 1, len, start, v[0], (long long)out[n - 1].at_ms);
            return -1;
        }
        out[n++] = (bench_server_phase){.at_ms = v[0], .workers = (int)v[1], .service_us = v[2]};
        if (*p == '\0')
            break;
        p++; /* the comma; a trailing one leaves an empty phase, reported above */
    }
    *n_out = n;
    return 0;
}
