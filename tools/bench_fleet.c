/* bench_fleet.c: `tidepool bench ... --fleet redis://HOST:PORT --fleet-name NAME
 * --fleet-cap N`: the run's pool (both pools of an HTTP client) opens its connections
 * under a budget shared with every other process of the same name (tidepool/fleet.h),
 * and the summary says what the budget did. */
#include <stdio.h>

#include "bench.h"

int bench_fleet_start(const bench_cfg *cfg, tp_fleet **out)
{
    *out = NULL;
    if (cfg->fleet == NULL)
        return 0;
    tp_fleet_options o;
    tp_fleet_options_init(&o);
    o.redis_url = cfg->fleet;
    o.name = cfg->fleet_name;
    o.cap = cfg->fleet_cap;
    o.instance = cfg->fleet_instance;
    tp_errinfo e;
    tp_err rc = tp_fleet_create(&o, out, &e);
    if (rc != TP_OK) {
        fprintf(stderr, "bench: --fleet %s: %s: %s\n", cfg->fleet, tp_err_name(rc), e.msg);
        return -1;
    }
    if (!cfg->quiet)
        fprintf(stderr, "bench: fleet budget \"%s\" (cap %lld) as instance %s\n",
                tp_fleet_name(*out), (long long)cfg->fleet_cap, tp_fleet_instance(*out));
    return 0;
}

void bench_fleet_attach(tp_fleet *f, tp_pool *pool, tp_pool *h2)
{
    if (f == NULL)
        return;
    /* Attaching cannot fail for a fresh fleet and pools made with its hook. */
    (void)tp_fleet_attach(f, pool);
    if (h2 != NULL)
        (void)tp_fleet_attach(f, h2);
}

void bench_fleet_json(tp_fleet *f, char *buf, size_t cap)
{
    if (f == NULL) {
        snprintf(buf, cap, "%s", "");
        return;
    }
    tp_fleet_stats s;
    tp_fleet_stats_get(f, &s);
    snprintf(buf, cap,
             ",\"fleet\":{\"cap\":%lld,\"held\":%lld,\"share\":%lld,\"instances\":%lld,"
             "\"permit_waits\":%llu,\"grants\":%llu,\"sheds\":%llu,\"redis_commands\":%llu,"
             "\"redis_errors\":%llu,\"degraded_seconds\":%.3f}",
             (long long)s.cap, (long long)s.held, (long long)s.share, (long long)s.instances,
             (unsigned long long)s.permit_waits, (unsigned long long)s.grants,
             (unsigned long long)s.sheds, (unsigned long long)s.redis_commands,
             (unsigned long long)s.redis_errors, (double)s.degraded_ns / 1e9);
}
