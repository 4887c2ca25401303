/* ktrace.c: the public side of a trace (include/tidepool/ktrace.h): options, start (load,
 * attach, first sock_diag join), poll (events, and the join when due), stop (drain,
 * last join, detach, tables and findings) and the accessors. */
#include <string.h>

#include "tidepool/clock.h"
#include "ktrace_internal.h"

void tp_ktrace_options_init(tp_ktrace_options *o)
{
    memset(o, 0, sizeof *o);
    o->ring_bytes = TP_KTRACE_RING_BYTES_DEFAULT;
    o->join_every_ns = TP_KTRACE_JOIN_EVERY_NS_DEFAULT;
}

tp_err tp_ktrace_probe(tp_errinfo *err)
{
    return tp__ktrace_bpf_probe(err);
}

/* The ring buffer's size: a power of two of at least a page (the kernel's rule). */
static size_t ring_size(size_t want)
{
    size_t n = 4096;
    while (n < want && n < ((size_t)1 << 30))
        n <<= 1;
    return n;
}

static void free_trace(tp_ktrace *t)
{
    tp__ktrace_bpf_close(t);
    for (size_t i = 0; i < t->nreasons; i++)
        tp__free(t->reasons[i]);
    tp__free(t->reasons);
    tp__free(t->owners);
    tp__free(t->listeners);
    tp__ktrace_tables_free(t);
    tp__free(t);
}

tp_err tp_ktrace_start(const tp_ktrace_options *opts, tp_ktrace **out, tp_errinfo *err)
{
    if (out == NULL)
        return tp_errinfo_set(err, TP_EINVAL, 0, "tp_ktrace_start: out is NULL");
    *out = NULL;
    tp_ktrace_options o;
    if (opts != NULL)
        o = *opts;
    else
        tp_ktrace_options_init(&o);
    if (o.pid < 0 || o.join_every_ns < 0 || o.ring_bytes == 0 ||
        (o.dest.family != 0 && o.dest.family != AF_INET && o.dest.family != AF_INET6))
        return tp_errinfo_set(err, TP_EINVAL, 0,
                              "tp_ktrace_start: bad options (pid %d, ring %zu bytes, join "
                              "every %lld ns)",
                              o.pid, o.ring_bytes, (long long)o.join_every_ns);
    tp_err rc = tp__ktrace_bpf_probe(err);
    if (rc != TP_OK)
        return rc;
    tp_ktrace *t = tp__calloc(1, sizeof *t);
    if (t == NULL)
        return tp_errinfo_set(err, TP_ENOMEM, 0, "out of memory");
    t->opts = o;
    /* Join first: the owners and listeners should be known before the first event. A
     * join that fails for want of netlink only costs attributions; memory does not. */
    tp_errinfo jerr;
    if ((rc = tp__ktrace_join(t, &jerr)) == TP_ENOMEM) {
        if (err != NULL)
            *err = jerr;
    } else {
        rc = tp__ktrace_bpf_open(t, ring_size(o.ring_bytes), err);
    }
    if (rc != TP_OK) {
        free_trace(t);
        return rc;
    }
    t->started_ns = tp_clock_now();
    t->next_join_ns = o.join_every_ns > 0 ? t->started_ns + o.join_every_ns : 0;
    *out = t;
    return TP_OK;
}

tp_err tp_ktrace_poll(tp_ktrace *t, int timeout_ms, tp_errinfo *err)
{
    if (t == NULL)
        return tp_errinfo_set(err, TP_EINVAL, 0, "tp_ktrace_poll: no trace");
    if (t->stopped)
        return tp_errinfo_set(err, TP_ESTATE, 0, "tp_ktrace_poll: the trace was stopped");
    tp_err rc = tp__ktrace_bpf_poll(t, timeout_ms, err);
    if (rc != TP_OK)
        return rc;
    if (t->next_join_ns != 0 && tp_clock_now() >= t->next_join_ns) {
        /* A failed join only loses attributions; the counts go on. */
        (void)tp__ktrace_join(t, NULL);
        t->next_join_ns = tp_clock_now() + t->opts.join_every_ns;
    }
    return TP_OK;
}

tp_err tp_ktrace_stop(tp_ktrace *t, tp_errinfo *err)
{
    if (t == NULL)
        return tp_errinfo_set(err, TP_EINVAL, 0, "tp_ktrace_stop: no trace");
    if (t->stopped)
        return TP_OK;
    t->stopped_ns = tp_clock_now();
    /* The owners of sockets that were opened during the trace and still live. */
    (void)tp__ktrace_join(t, NULL);
    tp_err rc = tp__ktrace_bpf_poll(t, 0, err);
    tp__ktrace_bpf_counters(t, &t->sum);
    tp__ktrace_bpf_close(t);
    t->stopped = true;
    t->sum.duration_s = (double)(t->stopped_ns - t->started_ns) / 1e9;
    tp__ktrace_tables_finish(t);
    tp_err frc = tp__ktrace_findings(t);
    if (rc == TP_OK && frc != TP_OK)
        rc = tp_errinfo_set(err, frc, 0, "out of memory deriving the findings");
    return rc;
}

void tp_ktrace_destroy(tp_ktrace *t)
{
    if (t != NULL)
        free_trace(t);
}

const tp_ktrace_summary *tp_ktrace_summary_get(const tp_ktrace *t)
{
    return t != NULL ? &t->sum : NULL;
}

/* Rows are only complete (averages, processes, order) once the trace stopped. */
#define ROWS(name, type, arr, n, field)                                                            \
    size_t tp_ktrace_##name##_count(const tp_ktrace *t)                                            \
    {                                                                                              \
        return t != NULL && t->stopped ? t->n : 0;                                                 \
    }                                                                                              \
    const type *tp_ktrace_##name##_get(const tp_ktrace *t, size_t i)                               \
    {                                                                                              \
        return t != NULL && t->stopped && i < t->n ? &t->arr[i] field : NULL;                      \
    }

ROWS(reset, tp_ktrace_reset, resets, nresets, )
ROWS(closes, tp_ktrace_closes, closes, ncloses, )
ROWS(error, tp_ktrace_error, errors, nerrors, )
ROWS(retrans, tp_ktrace_retrans, retrans, nretrans, .pub)
ROWS(finding, tp_diag_finding, findings, nfindings, )
