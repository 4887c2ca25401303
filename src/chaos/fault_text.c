/* fault_text.c: a fault's fields from text (tp_chaos_fault_set), the one parser of
 * durations and sizes behind the command line, the JSON schedules and the control API,
 * so that "50ms" or "1MB/s" means the same everywhere. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chaos.h"

/* A duration: a number with an optional unit (ns, us, ms, s, m; none: seconds). */
bool tp__chaos_parse_duration(const char *s, int64_t *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || errno != 0 || !(v >= 0))
        return false;
    double mult;
    if (*end == '\0' || strcmp(end, "s") == 0)
        mult = 1e9;
    else if (strcmp(end, "ms") == 0)
        mult = 1e6;
    else if (strcmp(end, "us") == 0)
        mult = 1e3;
    else if (strcmp(end, "ns") == 0)
        mult = 1;
    else if (strcmp(end, "m") == 0)
        mult = 60e9;
    else
        return false;
    if (v * mult > 9e18)
        return false;
    *out = (int64_t)(v * mult);
    return true;
}

/* A size: a number with an optional unit (B, K/KB/KiB, M..., G...; powers of 1024). */
bool tp__chaos_parse_bytes(const char *s, int64_t *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || errno != 0 || !(v >= 0))
        return false;
    double mult = 1;
    if (*end == 'K' || *end == 'k')
        mult = 1024.0, end++;
    else if (*end == 'M')
        mult = 1024.0 * 1024.0, end++;
    else if (*end == 'G')
        mult = 1024.0 * 1024.0 * 1024.0, end++;
    if (mult > 1 && *end == 'i')
        end++;
    if (*end == 'B')
        end++;
    if (*end != '\0' || v * mult > 9e18)
        return false;
    *out = (int64_t)(v * mult);
    return true;
}

static bool parse_flag(const char *v, bool *out)
{
    if (v == NULL || *v == '\0' || strcmp(v, "true") == 0 || strcmp(v, "1") == 0) {
        *out = true;
        return true;
    }
    if (strcmp(v, "false") == 0 || strcmp(v, "0") == 0) {
        *out = false;
        return true;
    }
    return false;
}

tp_err tp_chaos_fault_set(tp_chaos_fault *f, const char *name, const char *value,
                          tp_errinfo *err)
{
    if (f == NULL || name == NULL)
        return tp_errinfo_set(err, TP_EINVAL, 0, "fault and name are required");
    char key[32];
    size_t n = strlen(name);
    if (n >= sizeof key)
        return tp_errinfo_set(err, TP_EINVAL, 0, "unknown fault field \"%.40s\"", name);
    for (size_t i = 0; i <= n; i++)
        key[i] = name[i] == '-' ? '_' : name[i];
    const char *v = value != NULL ? value : "";
    bool ok;
    if (strcmp(key, "blackhole") == 0)
        ok = parse_flag(value, &f->blackhole);
    else if (strcmp(key, "half_open") == 0)
        ok = parse_flag(value, &f->half_open);
    else if (strcmp(key, "stop_reading") == 0)
        ok = parse_flag(value, &f->stop_reading);
    else if (strcmp(key, "refuse") == 0)
        ok = parse_flag(value, &f->refuse);
    else if (strcmp(key, "latency") == 0)
        ok = tp__chaos_parse_duration(v, &f->latency);
    else if (strcmp(key, "jitter") == 0)
        ok = tp__chaos_parse_duration(v, &f->jitter);
    else if (strcmp(key, "slow_close") == 0)
        ok = tp__chaos_parse_duration(v, &f->slow_close);
    else if (strcmp(key, "accept_delay") == 0)
        ok = tp__chaos_parse_duration(v, &f->accept_delay);
    else if (strcmp(key, "bandwidth") == 0) {
        char rate[64];
        size_t len = strlen(v);
        ok = len < sizeof rate;
        if (ok) {
            memcpy(rate, v, len + 1);
            if (len > 2 && strcmp(rate + len - 2, "/s") == 0)
                rate[len - 2] = '\0';
            ok = tp__chaos_parse_bytes(rate, &f->bandwidth);
        }
    } else if (strcmp(key, "slice") == 0) {
        int64_t b;
        ok = tp__chaos_parse_bytes(v, &b);
        if (ok)
            f->slice = (size_t)b;
    } else if (strcmp(key, "limit_data") == 0)
        ok = tp__chaos_parse_bytes(v, &f->limit_data);
    else if (strcmp(key, "reset_after") == 0) {
        /* bytes, unless it carries a time unit */
        int64_t b, t;
        if (tp__chaos_parse_bytes(v, &b)) {
            f->reset_after_bytes = b;
            ok = true;
        } else if ((ok = tp__chaos_parse_duration(v, &t)))
            f->reset_after = t;
    } else if (strcmp(key, "direction") == 0) {
        ok = true;
        if (strcmp(v, "up") == 0)
            f->direction = TP_CHAOS_UP;
        else if (strcmp(v, "down") == 0)
            f->direction = TP_CHAOS_DOWN;
        else if (strcmp(v, "both") == 0)
            f->direction = TP_CHAOS_BOTH;
        else
            ok = false;
    } else if (strcmp(key, "probability") == 0) {
        char *end;
        errno = 0;
        double p = strtod(v, &end);
        ok = end != v && *end == '\0' && errno == 0 && p >= 0.0 && p <= 1.0;
        if (ok)
            f->probability = p;
    } else {
        return tp_errinfo_set(err, TP_EINVAL, 0, "unknown fault field \"%s\"", name);
    }
    if (!ok)
        return tp_errinfo_set(err, TP_EINVAL, 0, "%s: bad value \"%.64s\"", name, v);
    return TP_OK;
}
