/* json.c: a snapshot as the /debug/pools JSON document:
 *
 *   {"format":"tidepool-metrics","version":1,"pools":{NAME:{
 *      "keys_live":N,"keys_folded":N,"breakers_open":N,
 *      "limits":{"max_total":N|null,"max_idle_total":..,"max_per_key":..,...},
 *      "total":SERIES,                      the pool-wide stats
 *      "keys":{LABEL:SERIES,...,"other":SERIES},
 *      "tenants":{NAME:{"in_use","limit","waiters","acquires","waits","rejects"},...}}},
 *    "fleets":[{"budget","instance","cap","held",...,"redis_errors"},...]}  (fleet.c)
 *   SERIES = {"keys":N,"gauges":{...},"counters":{...},"closes":{REASON:N,...},
 *             "histograms":{NAME:{"count","sum_seconds","p50","p90","p99",
 *                                 "buckets":[{"le":SECONDS|null,"count":N},...]}}}
 *
 * The series are the same as in the Prometheus text (same labels, same folding into
 * "other"), so the two can be compared value for value. Buckets are per bucket (not
 * cumulative), at the histogram's full resolution, empty ones left out; the last,
 * unbounded one has "le":null. A limit that does not apply is null. "fleets" is always
 * there, like "pools" ([] when no fleet budget is registered). */
#include <string.h>

#include "internal.h"

static void member(tp__buf *b, bool *first, const char *name)
{
    if (!*first)
        tp__buf_putc(b, ',');
    *first = false;
    tp__buf_json_str(b, name);
    tp__buf_putc(b, ':');
}

static void limit(tp__buf *b, int64_t v)
{
    if (v == TP_UNLIMITED)
        tp__buf_puts(b, "null");
    else
        tp__buf_i64(b, v);
}

static void hist(tp__buf *b, const tp_histogram *h)
{
    /* count from the buckets, as in the text format, so the quantiles use the same. */
    tp_histogram c = *h;
    c.count = 0;
    for (int i = 0; i < TP_HIST_BUCKETS; i++)
        c.count += c.buckets[i];
    tp__buf_puts(b, "{\"count\":");
    tp__buf_u64(b, c.count);
    tp__buf_puts(b, ",\"sum_seconds\":");
    tp__mput_seconds(b, c.sum_ns);
    static const struct {
        const char *name;
        double q;
    } qs[] = {{",\"p50\":", 0.5}, {",\"p90\":", 0.9}, {",\"p99\":", 0.99}};
    for (size_t i = 0; i < sizeof qs / sizeof qs[0]; i++) {
        tp__buf_puts(b, qs[i].name);
        tp__mput_seconds(b, (uint64_t)tp_histogram_quantile(&c, qs[i].q));
    }
    tp__buf_puts(b, ",\"buckets\":[");
    bool first = true;
    for (int i = 0; i < TP_HIST_BUCKETS; i++) {
        if (c.buckets[i] == 0)
            continue;
        tp__buf_puts(b, first ? "{\"le\":" : ",{\"le\":");
        first = false;
        if (i == TP_HIST_BUCKETS - 1)
            tp__buf_puts(b, "null");
        else
            tp__mput_seconds(b, (uint64_t)tp_histogram_bucket_upper(i));
        tp__buf_puts(b, ",\"count\":");
        tp__buf_u64(b, c.buckets[i]);
        tp__buf_putc(b, '}');
    }
    tp__buf_puts(b, "]}");
}

/* One series' body; breaker only for a real key (not "other", not the pool total). */
static void series(tp__buf *b, const tp_stats *st, int64_t nkeys, bool breaker)
{
    tp__buf_puts(b, "{\"keys\":");
    tp__buf_i64(b, nkeys);
    tp__buf_puts(b, ",\"gauges\":{");
    const struct {
        const char *name;
        int64_t v;
    } g[] = {{"idle", st->idle},
             {"in_use", st->in_use},
             {"opening", st->opening},
             {"total", st->total},
             {"waiters", st->waiters},
             {"streams_in_use", st->streams_in_use},
             {"stream_capacity", st->stream_capacity},
             {"draining", st->draining},
             {"max_per_key", st->max_per_key},
             {"max_idle_per_key", st->max_idle_per_key},
             {"min_idle_per_key", st->min_idle_per_key},
             {"adaptive_limit", st->adaptive_limit}};
    bool first = true;
    for (size_t i = 0; i < sizeof g / sizeof g[0]; i++) {
        member(b, &first, g[i].name);
        limit(b, g[i].v);
    }
    if (breaker) {
        member(b, &first, "breaker");
        tp__buf_json_str(b, tp__mbreaker_name(st->breaker));
    }
    tp__buf_puts(b, "},\"counters\":{");
    first = true;
    for (size_t i = 0; i < tp__mcounters_n; i++) {
        member(b, &first, tp__mcounters[i].json);
        tp__buf_u64(b, TP__MFIELD_U64(st, &tp__mcounters[i]));
    }
    member(b, &first, "rejects_busy");
    tp__buf_u64(b, st->rejects_busy);
    member(b, &first, "rejects_breaker");
    tp__buf_u64(b, st->rejects_breaker);
    tp__buf_puts(b, "},\"closes\":{");
    first = true;
    for (int r = 0; r < TP_CLOSE__COUNT; r++) {
        member(b, &first, tp_close_reason_name(r));
        tp__buf_u64(b, st->closes[r]);
    }
    tp__buf_puts(b, "},\"goaways\":{"); /* only the codes received */
    first = true;
    for (int c = 0; c < TP_GOAWAY_CODES; c++) {
        if (st->goaways[c] == 0)
            continue;
        member(b, &first, tp__mgoaway_name(c));
        tp__buf_u64(b, st->goaways[c]);
    }
    tp__buf_puts(b, "},\"histograms\":{");
    first = true;
    for (size_t i = 0; i < tp__mhists_n; i++) {
        member(b, &first, tp__mhists[i].json);
        hist(b, TP__MFIELD_HIST(st, &tp__mhists[i]));
    }
    tp__buf_puts(b, "}}");
}

static void pool(tp__buf *b, const tp__mpool *p)
{
    tp__buf_puts(b, "{\"keys_live\":");
    tp__buf_i64(b, p->total.keys);
    tp__buf_puts(b, ",\"keys_folded\":");
    tp__buf_i64(b, p->keys_folded);
    tp__buf_puts(b, ",\"breakers_open\":");
    tp__buf_i64(b, p->breakers_open);
    tp__buf_puts(b, ",\"limits\":{\"max_total\":");
    limit(b, p->max_total);
    tp__buf_puts(b, ",\"max_idle_total\":");
    limit(b, p->max_idle_total);
    tp__buf_puts(b, ",\"max_per_key\":");
    limit(b, p->total.max_per_key);
    tp__buf_puts(b, ",\"max_idle_per_key\":");
    limit(b, p->total.max_idle_per_key);
    tp__buf_puts(b, ",\"min_idle_per_key\":");
    limit(b, p->total.min_idle_per_key);
    tp__buf_puts(b, "},\"total\":");
    series(b, &p->total, p->total.keys, false);
    tp__buf_puts(b, ",\"keys\":{");
    bool first = true;
    for (size_t j = 0; j < p->nseries; j++) {
        member(b, &first, p->series[j]->label);
        series(b, &p->series[j]->st, p->series[j]->nkeys, !p->series[j]->other);
    }
    tp__buf_puts(b, "},\"tenants\":{");
    first = true;
    for (size_t t = 0; t < p->ntenants; t++) {
        const tp_tenant_stats *ts = &p->tenants[t].st;
        member(b, &first, p->tenants[t].label);
        tp__buf_puts(b, "{\"in_use\":");
        tp__buf_i64(b, ts->in_use);
        tp__buf_puts(b, ",\"limit\":");
        limit(b, ts->max_in_use);
        tp__buf_puts(b, ",\"waiters\":");
        tp__buf_i64(b, ts->waiters);
        tp__buf_puts(b, ",\"acquires\":");
        tp__buf_u64(b, ts->acquires);
        tp__buf_puts(b, ",\"waits\":");
        tp__buf_u64(b, ts->waits);
        tp__buf_puts(b, ",\"rejects\":");
        tp__buf_u64(b, ts->rejects);
        tp__buf_putc(b, '}');
    }
    tp__buf_puts(b, "}}");
}

void tp__mrender_json(tp__buf *b, const tp__msnap *s)
{
    tp__buf_puts(b, "{\"format\":\"tidepool-metrics\",\"version\":1,\"pools\":{");
    bool first = true;
    for (size_t i = 0; i < s->npools; i++) {
        member(b, &first, s->pools[i].name);
        pool(b, &s->pools[i]);
    }
    tp__buf_puts(b, "},\"fleets\":[");
    tp__mrender_json_fleets(b, s);
    tp__buf_puts(b, "]}\n");
}
