/* prom.c: a snapshot as Prometheus text exposition, format version 0.0.4.
 *
 * Each family is written once, HELP and TYPE first, then its samples for every pool and
 * series, so families are grouped as the format requires even with several pools.
 * Values are integers or exact decimals; limits that do not apply are +Inf. Histograms
 * are cumulative: a bucket with bound le counts every value <= le, the +Inf bucket
 * equals _count, and _count is computed from the buckets themselves so that the two
 * agree even when the counters were read while connections were updating them. The
 * fleet budgets' families (fleet.c) come last. */
#include <string.h>

#include "internal.h"

void tp__mprom_family(tp__buf *b, const char *name, const char *type, const char *help)
{
    tp__buf_puts(b, "# HELP ");
    tp__buf_puts(b, name);
    tp__buf_putc(b, ' ');
    tp__buf_puts(b, help);
    tp__buf_puts(b, "\n# TYPE ");
    tp__buf_puts(b, name);
    tp__buf_putc(b, ' ');
    tp__buf_puts(b, type);
    tp__buf_putc(b, '\n');
}

/* Writes `name{pool="..",key="..",xk="xv"} ` (key and xk optional). */
static void sample(tp__buf *b, const char *name, const char *suffix, const tp__mpool *p,
                   const tp__mseries *s, const char *xk, const char *xv)
{
    tp__buf_puts(b, name);
    if (suffix != NULL)
        tp__buf_puts(b, suffix);
    tp__buf_puts(b, "{pool=\"");
    tp__mesc_prom(b, p->name);
    if (s != NULL) {
        tp__buf_puts(b, "\",key=\"");
        tp__mesc_prom(b, s->label);
    }
    if (xk != NULL) {
        tp__buf_puts(b, "\",");
        tp__buf_puts(b, xk);
        tp__buf_puts(b, "=\"");
        tp__mesc_prom(b, xv);
    }
    tp__buf_puts(b, "\"} ");
}

static void value_i64(tp__buf *b, int64_t v)
{
    if (v == TP_UNLIMITED)
        tp__buf_puts(b, "+Inf");
    else
        tp__buf_i64(b, v);
    tp__buf_putc(b, '\n');
}

static void value_u64(tp__buf *b, uint64_t v)
{
    tp__buf_u64(b, v);
    tp__buf_putc(b, '\n');
}

/* A per-key gauge family read from the series' stats at byte offset off. */
static void gauge_family(tp__buf *b, const tp__msnap *s, const char *name, const char *help,
                         size_t off)
{
    tp__mprom_family(b, name, "gauge", help);
    for (size_t i = 0; i < s->npools; i++) {
        const tp__mpool *p = &s->pools[i];
        for (size_t j = 0; j < p->nseries; j++) {
            sample(b, name, NULL, p, p->series[j], NULL, NULL);
            value_i64(b, *(const int64_t *)(const void *)((const char *)&p->series[j]->st + off));
        }
    }
}

static void gauges(tp__buf *b, const tp__msnap *s)
{
    static const struct {
        const char *state;
        size_t off;
    } states[] = {{"idle", offsetof(tp_stats, idle)},
                  {"in_use", offsetof(tp_stats, in_use)},
                  {"opening", offsetof(tp_stats, opening)}};
    tp__mprom_family(b, "tidepool_connections", "gauge", "Connections by state.");
    for (size_t i = 0; i < s->npools; i++) {
        const tp__mpool *p = &s->pools[i];
        for (size_t j = 0; j < p->nseries; j++) {
            for (size_t k = 0; k < sizeof states / sizeof states[0]; k++) {
                sample(b, "tidepool_connections", NULL, p, p->series[j], "state", states[k].state);
                value_i64(b, *(const int64_t *)(const void *)((const char *)&p->series[j]->st +
                                                              states[k].off));
            }
        }
    }
    gauge_family(b, s, "tidepool_waiters", "Acquires queued for a connection.",
                 offsetof(tp_stats, waiters));
    gauge_family(b, s, "tidepool_streams_in_use", "Leases on multiplexed connections.",
                 offsetof(tp_stats, streams_in_use));
    gauge_family(b, s, "tidepool_stream_capacity",
                 "Streams the multiplexed connections may carry (draining ones excluded).",
                 offsetof(tp_stats, stream_capacity));
    gauge_family(b, s, "tidepool_connections_draining",
                 "Multiplexed connections taking no new stream, closing after their last "
                 "(GOAWAY, lifetime, eviction).",
                 offsetof(tp_stats, draining));
    gauge_family(b, s, "tidepool_limit_max_per_key",
                 "Limit on connections per key (for key=\"other\": the sum over its keys).",
                 offsetof(tp_stats, max_per_key));
    gauge_family(b, s, "tidepool_limit_max_idle_per_key",
                 "Limit on idle connections per key (key=\"other\": summed).",
                 offsetof(tp_stats, max_idle_per_key));
    gauge_family(b, s, "tidepool_limit_min_idle_per_key",
                 "Idle connections kept warm per key (key=\"other\": summed).",
                 offsetof(tp_stats, min_idle_per_key));
    gauge_family(b, s, "tidepool_limit_adaptive",
                 "In-use limit the adaptive controller sets per key; 0 when adaptive sizing is "
                 "off (key=\"other\": summed).",
                 offsetof(tp_stats, adaptive_limit));

    tp__mprom_family(
        b, "tidepool_breaker_state", "gauge",
        "Circuit breaker of the key: 0 closed, 1 open, 2 half-open (not for key=\"other\").");
    for (size_t i = 0; i < s->npools; i++) {
        const tp__mpool *p = &s->pools[i];
        for (size_t j = 0; j < p->nseries; j++) {
            if (p->series[j]->other)
                continue;
            sample(b, "tidepool_breaker_state", NULL, p, p->series[j], NULL, NULL);
            value_i64(b, (int64_t)p->series[j]->st.breaker);
        }
    }
}

/* The families that exist once per pool. */
static void pool_gauges(tp__buf *b, const tp__msnap *s)
{
    static const struct {
        const char *name, *help;
        size_t off;
    } fams[] = {
        {"tidepool_keys", "Live keys of the pool.", offsetof(tp__mpool, total.keys)},
        {"tidepool_keys_folded", "Live keys beyond the cap, counted under key=\"other\".",
         offsetof(tp__mpool, keys_folded)},
        {"tidepool_breakers_open", "Live keys whose breaker is open or half-open.",
         offsetof(tp__mpool, breakers_open)},
        {"tidepool_limit_max_connections", "Limit on connections across keys (max_total).",
         offsetof(tp__mpool, max_total)},
        {"tidepool_limit_max_idle_connections",
         "Limit on idle connections across keys (max_idle_total).",
         offsetof(tp__mpool, max_idle_total)},
    };
    for (size_t f = 0; f < sizeof fams / sizeof fams[0]; f++) {
        tp__mprom_family(b, fams[f].name, "gauge", fams[f].help);
        for (size_t i = 0; i < s->npools; i++) {
            sample(b, fams[f].name, NULL, &s->pools[i], NULL, NULL, NULL);
            value_i64(b,
                      *(const int64_t *)(const void *)((const char *)&s->pools[i] + fams[f].off));
        }
    }
}

static void counters(tp__buf *b, const tp__msnap *s)
{
    for (size_t f = 0; f < tp__mcounters_n; f++) {
        const tp__mfield *fd = &tp__mcounters[f];
        tp__mprom_family(b, fd->prom, "counter", fd->help);
        for (size_t i = 0; i < s->npools; i++) {
            const tp__mpool *p = &s->pools[i];
            for (size_t j = 0; j < p->nseries; j++) {
                sample(b, fd->prom, NULL, p, p->series[j], NULL, NULL);
                value_u64(b, TP__MFIELD_U64(&p->series[j]->st, fd));
            }
        }
        if (strcmp(fd->prom, "tidepool_acquire_timeouts_total") != 0)
            continue;
        /* Refusals sit next to timeouts: both are acquires that got no connection. */
        tp__mprom_family(b, "tidepool_rejects_total", "counter",
                         "Acquires refused at once: waiter queue full (busy) or breaker open.");
        for (size_t i = 0; i < s->npools; i++) {
            const tp__mpool *p = &s->pools[i];
            for (size_t j = 0; j < p->nseries; j++) {
                sample(b, "tidepool_rejects_total", NULL, p, p->series[j], "reason", "busy");
                value_u64(b, p->series[j]->st.rejects_busy);
                sample(b, "tidepool_rejects_total", NULL, p, p->series[j], "reason", "breaker");
                value_u64(b, p->series[j]->st.rejects_breaker);
            }
        }
    }
    tp__mprom_family(b, "tidepool_closes_total", "counter", "Connections closed, by reason.");
    for (size_t i = 0; i < s->npools; i++) {
        const tp__mpool *p = &s->pools[i];
        for (size_t j = 0; j < p->nseries; j++) {
            for (int r = 0; r < TP_CLOSE__COUNT; r++) {
                sample(b, "tidepool_closes_total", NULL, p, p->series[j], "reason",
                       tp_close_reason_name(r));
                value_u64(b, p->series[j]->st.closes[r]);
            }
        }
    }
    tp__mprom_family(b, "tidepool_goaways_received_total", "counter",
                     "GOAWAY frames the peers sent, by HTTP/2 error code (a code appears once "
                     "received).");
    for (size_t i = 0; i < s->npools; i++) {
        const tp__mpool *p = &s->pools[i];
        for (size_t j = 0; j < p->nseries; j++) {
            for (int c = 0; c < TP_GOAWAY_CODES; c++) {
                if (p->series[j]->st.goaways[c] == 0)
                    continue;
                sample(b, "tidepool_goaways_received_total", NULL, p, p->series[j], "code",
                       tp__mgoaway_name(c));
                value_u64(b, p->series[j]->st.goaways[c]);
            }
        }
    }
}

static void histogram(tp__buf *b, const char *name, const tp__mpool *p, const tp__mseries *se,
                      const tp_histogram *h, int step)
{
    uint64_t cum = 0;
    for (int i = 0; i < TP_HIST_BUCKETS - 1; i++) {
        cum += h->buckets[i];
        if (i % step != 0)
            continue;
        char le[TP__MSECONDS_CAP];
        tp__mfmt_seconds((uint64_t)tp_histogram_bucket_upper(i), le);
        sample(b, name, "_bucket", p, se, "le", le);
        value_u64(b, cum);
    }
    cum += h->buckets[TP_HIST_BUCKETS - 1];
    sample(b, name, "_bucket", p, se, "le", "+Inf");
    value_u64(b, cum);
    sample(b, name, "_sum", p, se, NULL, NULL);
    tp__mput_seconds(b, h->sum_ns);
    tp__buf_putc(b, '\n');
    sample(b, name, "_count", p, se, NULL, NULL);
    value_u64(b, cum);
}

static void histograms(tp__buf *b, const tp__msnap *s)
{
    for (size_t f = 0; f < tp__mhists_n; f++) {
        const tp__mfield *fd = &tp__mhists[f];
        tp__mprom_family(b, fd->prom, "histogram", fd->help);
        for (size_t i = 0; i < s->npools; i++) {
            const tp__mpool *p = &s->pools[i];
            for (size_t j = 0; j < p->nseries; j++)
                if (!fd->sparse || TP__MFIELD_HIST(&p->series[j]->st, fd)->count > 0)
                    histogram(b, fd->prom, p, p->series[j], TP__MFIELD_HIST(&p->series[j]->st, fd),
                              s->bucket_step);
        }
    }
}

/* Per-tenant families, labelled pool and tenant; written only when some pool has
 * tenants, so a program without them sees no empty families. */
static void tenants(tp__buf *b, const tp__msnap *s)
{
    bool any = false;
    for (size_t i = 0; i < s->npools && !any; i++)
        any = s->pools[i].ntenants > 0;
    if (!any)
        return;
    static const struct {
        const char *name, *type, *help;
        size_t off;
        bool u64;
    } fams[] = {
        {"tidepool_tenant_in_use", "gauge", "Leases the tenant holds now.",
         offsetof(tp_tenant_stats, in_use), false},
        {"tidepool_tenant_limit", "gauge", "The tenant's quota on leases held at once.",
         offsetof(tp_tenant_stats, max_in_use), false},
        {"tidepool_tenant_waiters", "gauge", "Acquires of the tenant waiting for its quota.",
         offsetof(tp_tenant_stats, waiters), false},
        {"tidepool_tenant_acquires_total", "counter", "Leases granted to the tenant.",
         offsetof(tp_tenant_stats, acquires), true},
        {"tidepool_tenant_waits_total", "counter",
         "Acquires of the tenant that waited for its quota.", offsetof(tp_tenant_stats, waits),
         true},
        {"tidepool_tenant_rejects_total", "counter",
         "Acquires of the tenant refused or timed out over its quota.",
         offsetof(tp_tenant_stats, rejects), true},
    };
    for (size_t f = 0; f < sizeof fams / sizeof fams[0]; f++) {
        tp__mprom_family(b, fams[f].name, fams[f].type, fams[f].help);
        for (size_t i = 0; i < s->npools; i++) {
            const tp__mpool *p = &s->pools[i];
            for (size_t t = 0; t < p->ntenants; t++) {
                const char *st = (const char *)&p->tenants[t].st + fams[f].off;
                sample(b, fams[f].name, NULL, p, NULL, "tenant", p->tenants[t].label);
                if (fams[f].u64)
                    value_u64(b, *(const uint64_t *)(const void *)st);
                else
                    value_i64(b, *(const int64_t *)(const void *)st);
            }
        }
    }
}

void tp__mrender_prom(tp__buf *b, const tp__msnap *s)
{
    /* Without pools no pool family is written at all: an empty family says nothing. */
    if (s->npools > 0) {
        gauges(b, s);
        pool_gauges(b, s);
        counters(b, s);
        histograms(b, s);
        tenants(b, s);
    }
    tp__mrender_prom_fleets(b, s);
}
