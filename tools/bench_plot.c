/* bench_plot.c: sampling for `tidepool bench --plot` (see bench_plot.h). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "bench_plot.h"

int bench_plot_start(bench_plot *bp, const bench_cfg *cfg, int64_t t0,
                     const bench_server_phase *phases, size_t nphases)
{
    int64_t iv = bench_sample_interval(cfg);
    if (plot_init(&bp->p, t0, iv) != 0)
        return -1;
    bp->next = t0 + iv;
    for (size_t i = 0; i < nphases; i++) {
        char label[64];
        if (phases[i].workers == 0)
            snprintf(label, sizeof label, "no limit");
        else
            snprintf(label, sizeof label, "k=%d, %.3g ms", phases[i].workers,
                     (double)phases[i].service_us / 1000.0);
        if (plot_mark(&bp->p, t0 + phases[i].at_ms * TP_NSEC_PER_MSEC, label) != 0)
            return -1;
    }
    return 0;
}

typedef struct key_sum {
    int64_t limit, in_use;
} key_sum;

static void add_key(void *ud, const void *key, size_t keylen, const tp_stats *st)
{
    (void)key;
    (void)keylen;
    key_sum *s = ud;
    s->limit += st->adaptive_limit;
    s->in_use += st->in_use;
}

void bench_plot_tick(bench_plot *bp, tp_pool *pool, worker *ws, int64_t nws, int64_t now)
{
    if (now < bp->next)
        return;
    bp->next += bp->p.interval_ns;
    if (bp->next <= now) /* the sampler was late: skip, do not burst */
        bp->next = now + bp->p.interval_ns;
    key_sum s = {0, 0};
    tp_pool_key_visit(pool, add_key, &s);
    latency iv;
    latency_reset(&iv);
    for (int64_t i = 0; i < nws; i++) {
        pthread_mutex_lock(&ws[i].mu);
        latency_merge(&iv, &ws[i].plot_interval);
        latency_reset(&ws[i].plot_interval);
        pthread_mutex_unlock(&ws[i].mu);
    }
    /* A limit of 0 means adaptive sizing is off: no limit line. */
    int64_t p50 = iv.count > 0 ? latency_quantile(&iv, 0.5) : -1;
    int64_t p99 = iv.count > 0 ? latency_quantile(&iv, 0.99) : -1;
    (void)plot_add(&bp->p, now, s.limit > 0 ? (double)s.limit : -1.0, (double)s.in_use, p50,
                   p99); /* out of memory loses one sample, not the run */
}

void bench_plot_finish(bench_plot *bp, const bench_cfg *cfg)
{
    char title[512];
    snprintf(title, sizeof title, "tidepool bench %s -c %lld%s", cfg->url,
             (long long)cfg->concurrency, cfg->adaptive ? " --adaptive" : "");
    if (plot_write(&bp->p, cfg->plot, title) != 0)
        fprintf(stderr, "bench: --plot %s: %s\n", cfg->plot, strerror(errno));
    plot_free(&bp->p);
}
