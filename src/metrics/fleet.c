/* fleet.c: the fleet budgets (tidepool/fleet.h) of a registry, snapshotted and rendered
 * in both formats.
 *
 * One table lists the exported fields of tp_fleet_stats with their Prometheus and JSON
 * names, so the two formats cannot drift apart. Each registered fleet is one series per
 * family, labelled budget and instance: the same budget seen from several instances is
 * several series, and `max by (budget)` of the budget-wide gauges (cap, budget_held,
 * instances) gives one value per budget, while a sum over instance of the per-instance
 * ones (held, demand, the counters) gives the fleet's. The numbers are the instance's view
 * as of its last Redis round trip: reading them never waits on Redis. */
#include <stddef.h>
#include <string.h>

#include "internal.h"

typedef enum kind {
    K_I64,    /* int64_t */
    K_U64,    /* uint64_t */
    K_BOOL,   /* bool: 0/1 in the text, true/false in JSON */
    K_SECONDS /* int64_t nanoseconds, as exact decimal seconds */
} kind;

typedef struct ffield {
    const char *prom, *type, *json, *help; /* help: no backslash, no newline */
    size_t off;                            /* offsetof(tp_fleet_stats, field) */
    kind k;
} ffield;

#define G(field, prom, json, help)                                                                 \
    {                                                                                              \
        prom, "gauge", json, help, offsetof(tp_fleet_stats, field), K_I64                          \
    }
#define C(field, prom, json, help)                                                                 \
    {                                                                                              \
        prom, "counter", json, help, offsetof(tp_fleet_stats, field), K_U64                        \
    }

/* tidepool_fleet_budget_held is what fleet.h calls fleet_held: a gauge may not end in
 * _total (promtool rejects it), so it is named after the budget rather than "held_total". */
static const ffield fields[] = {
    G(cap, "tidepool_fleet_cap", "cap",
      "The budget's cap in force: connections all instances may hold."),
    G(held, "tidepool_fleet_held", "held",
      "Permits this instance holds (its open and opening connections)."),
    G(share, "tidepool_fleet_share", "share", "This instance's fair share of the cap now."),
    G(demand, "tidepool_fleet_demand", "demand", "Connections this instance reported wanting."),
    G(fleet_held, "tidepool_fleet_budget_held", "fleet_held",
      "Permits held by all instances of the budget, as last seen."),
    G(instances, "tidepool_fleet_instances", "instances",
      "Instances with a live lease, as last seen."),
    {"tidepool_fleet_degraded", "gauge", "degraded", "1 while Redis is unreachable, else 0.",
     offsetof(tp_fleet_stats, degraded), K_BOOL},
    {"tidepool_fleet_degraded_seconds_total", "counter", "degraded_seconds",
     "Time this instance spent with Redis unreachable.", offsetof(tp_fleet_stats, degraded_ns),
     K_SECONDS},
    C(permit_waits, "tidepool_fleet_permit_waits_total", "permit_waits",
      "Opens that had to wait for a permit."),
    C(grants, "tidepool_fleet_grants_total", "grants", "Permits Redis granted this instance."),
    C(sheds, "tidepool_fleet_sheds_total", "sheds",
      "Idle connections given back because this instance held more than its share."),
    C(heartbeats, "tidepool_fleet_heartbeats_total", "heartbeats",
      "Heartbeats that reached Redis."),
    C(rebirths, "tidepool_fleet_rebirths_total", "rebirths",
      "Times this instance found the budget's state gone from Redis and re-asserted it."),
    C(redis_commands, "tidepool_fleet_redis_commands_total", "redis_commands",
      "Round trips to Redis."),
    C(redis_errors, "tidepool_fleet_redis_errors_total", "redis_errors",
      "Round trips to Redis that failed."),
};

tp_err tp__mfleets_take_locked(tp_metrics *m, tp__msnap *s)
{
    s->fleets = NULL;
    s->nfleets = 0;
    if (m->nfleets == 0)
        return TP_OK;
    s->fleets = tp__calloc(m->nfleets, sizeof *s->fleets);
    if (s->fleets == NULL)
        return TP_ENOMEM;
    for (size_t i = 0; i < m->nfleets; i++) {
        tp__mfleet *e = &s->fleets[i];
        const char *budget = tp_fleet_name(m->fleets[i]);
        const char *instance = tp_fleet_instance(m->fleets[i]);
        /* Both are restricted by fleet.h, but a label must never depend on that. */
        tp__mlabel_sanitize(budget != NULL ? budget : "", budget != NULL ? strlen(budget) : 0,
                            e->budget);
        tp__mlabel_sanitize(instance != NULL ? instance : "",
                            instance != NULL ? strlen(instance) : 0, e->instance);
        tp_fleet_stats_get(m->fleets[i], &e->st);
    }
    s->nfleets = m->nfleets;
    return TP_OK;
}

static const void *at(const tp__mfleet *e, const ffield *f)
{
    return (const char *)&e->st + f->off;
}

/* The field's value as a number; JSON writes bools as true/false itself. */
static void put_value(tp__buf *b, const tp__mfleet *e, const ffield *f)
{
    const void *p = at(e, f);
    switch (f->k) {
    case K_I64:
        tp__buf_i64(b, *(const int64_t *)p);
        break;
    case K_U64:
        tp__buf_u64(b, *(const uint64_t *)p);
        break;
    case K_BOOL:
        tp__buf_putc(b, *(const bool *)p ? '1' : '0');
        break;
    case K_SECONDS: {
        int64_t ns = *(const int64_t *)p;
        tp__mput_seconds(b, ns > 0 ? (uint64_t)ns : 0);
        break;
    }
    }
}

void tp__mrender_prom_fleets(tp__buf *b, const tp__msnap *s)
{
    if (s->nfleets == 0)
        return; /* no empty families for programs without fleets */
    for (size_t f = 0; f < sizeof fields / sizeof fields[0]; f++) {
        tp__mprom_family(b, fields[f].prom, fields[f].type, fields[f].help);
        for (size_t i = 0; i < s->nfleets; i++) {
            tp__buf_puts(b, fields[f].prom);
            tp__buf_puts(b, "{budget=\"");
            tp__mesc_prom(b, s->fleets[i].budget);
            tp__buf_puts(b, "\",instance=\"");
            tp__mesc_prom(b, s->fleets[i].instance);
            tp__buf_puts(b, "\"} ");
            put_value(b, &s->fleets[i], &fields[f]);
            tp__buf_putc(b, '\n');
        }
    }
}

void tp__mrender_json_fleets(tp__buf *b, const tp__msnap *s)
{
    for (size_t i = 0; i < s->nfleets; i++) {
        const tp__mfleet *e = &s->fleets[i];
        tp__buf_puts(b, i == 0 ? "{\"budget\":" : ",{\"budget\":");
        tp__buf_json_str(b, e->budget);
        tp__buf_puts(b, ",\"instance\":");
        tp__buf_json_str(b, e->instance);
        for (size_t f = 0; f < sizeof fields / sizeof fields[0]; f++) {
            tp__buf_putc(b, ',');
            tp__buf_json_str(b, fields[f].json);
            tp__buf_putc(b, ':');
            if (fields[f].k == K_BOOL)
                tp__buf_puts(b, *(const bool *)at(e, &fields[f]) ? "true" : "false");
            else
                put_value(b, e, &fields[f]);
        }
        tp__buf_putc(b, '}');
    }
}
