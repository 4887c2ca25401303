/* cmd_bench.c: `tidepool bench`: loads an HTTP server (or PostgreSQL, or Redis) through
 * a tidepool pool, with a live line each second, a final summary, and with --json the
 * one line that shared/bench/compare-http.sh and compare-db.sh read. With no URL it
 * starts a built-in loopback HTTP server, so `make demo` needs no setup. The options are
 * parsed in cmd_bench_args.c; the drivers are in bench_http.c (event engines) and
 * bench_db.c (a thread per client). */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tidepool/tidepool.h"

#include "bench_server.h"
#include "cli.h"
#include "bench_plot.h"
#include "heatmap.h"
#include "latency.h"

#include "bench.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void print_live(double el, double step, const tp_stats *st, const tp_stats *prev, worker *ws,
                       int64_t n)
{
    latency iv;
    latency_reset(&iv);
    uint64_t errs = 0;
    static uint64_t prev_errs;
    for (int64_t i = 0; i < n; i++) {
        pthread_mutex_lock(&ws[i].mu);
        latency_merge(&iv, &ws[i].interval);
        latency_reset(&ws[i].interval);
        errs += ws[i].errors;
        pthread_mutex_unlock(&ws[i].mu);
    }
    uint64_t acq = st->acquires - prev->acquires;
    uint64_t reu = st->reuses - prev->reuses;
    fprintf(stderr,
            "[%5.1fs] %9.0f req/s  p50 %6lld us  p99 %7lld us  conns %lld open, %lld idle  "
            "reuse %5.1f%%  opens %llu  errors %llu\n",
            el, (double)iv.count / step, (long long)latency_quantile(&iv, 0.5),
            (long long)latency_quantile(&iv, 0.99), (long long)(st->total), (long long)st->idle,
            acq ? 100.0 * (double)reu / (double)acq : 0.0, (unsigned long long)st->opens,
            (unsigned long long)(errs - prev_errs));
    prev_errs = errs;
}

/* The client's connections in both its pools (HTTP/1.1, and HTTP/2 when it has one):
 * the counters this command reports, summed. */
static void bench_stats(tp_pool *pool, tp_pool *h2, tp_stats *st)
{
    tp_pool_stats(pool, st);
    if (h2 == NULL)
        return;
    tp_stats s2;
    tp_pool_stats(h2, &s2);
    st->total += s2.total;
    st->idle += s2.idle;
    st->in_use += s2.in_use;
    st->opens += s2.opens;
    st->acquires += s2.acquires;
    st->reuses += s2.reuses;
}

int cmd_bench(int argc, char **argv)
{
    bench_cfg cfg;
    if (bench_parse_args(argc, argv, &cfg) != 0)
        return 2;
    raise_nofile();
    char builtin_url[64];
    bool builtin = cfg.url == NULL;
    bench_server_phase phases[BENCH_SERVER_MAX_PHASES];
    size_t nphases = 0;
    if (cfg.server_phases != NULL) {
        char perr[160];
        if (!builtin)
            return fprintf(stderr, "bench: --server-phases is for the built-in server (no URL)\n"),
                   2;
        if (bench_server_phase_parse(cfg.server_phases, phases, BENCH_SERVER_MAX_PHASES, &nphases,
                                     perr, sizeof perr) != 0)
            return fprintf(stderr, "bench: --server-phases: %s\n", perr), 2;
    }
    int64_t t0 = tp_clock_now(); /* time 0 of the phases, the heat map and the plot */
    if (builtin) {
        uint16_t port = 0;
        bench_server_options so;
        bench_server_options_init(&so);
        so.phases = phases;
        so.nphases = nphases;
        t0 = tp_clock_now();
        if (bench_server_start_ex(&so, &port) != 0) {
            fprintf(stderr, "bench: could not start the built-in server: %s\n", strerror(errno));
            return 1;
        }
        snprintf(builtin_url, sizeof builtin_url, "http://127.0.0.1:%u/", (unsigned)port);
        cfg.url = builtin_url;
        if (!cfg.quiet)
            fprintf(stderr, "bench: no URL given: built-in server at %s\n", cfg.url);
    }

    tp_fleet *fleet = NULL; /* --fleet: before the pool, whose opens it counts */
    if (bench_fleet_start(&cfg, &fleet) != 0)
        return 1;
    const tp_permit_hook *permits = fleet != NULL ? tp_fleet_hook(fleet) : NULL;
    tp_http_client *client = NULL;
    void *db = NULL; /* postgres:// or redis://: a database pool, one thread per client */
    tp_pool *pool = NULL, *h2pool = NULL;
    tp_errinfo e;
    tp_err rc;
    bool dbmode = bench_db_url(cfg.url);
    if (dbmode) {
        if (cfg.rate > 0 || cfg.adaptive) {
            fprintf(stderr, "bench: --%s is for HTTP URLs\n", cfg.rate > 0 ? "rate" : "adaptive");
            return 2;
        }
        rc = bench_db_open(&cfg, cfg.max_per_host > 0 ? cfg.max_per_host : cfg.concurrency,
                           permits, &db, &pool, &e);
    } else {
        tp_http_client_options o;
        tp_http_client_options_init(&o);
        if (cfg.max_per_host > 0)
            o.pool.max_per_key = cfg.max_per_host;
        if (cfg.idle_timeout_s >= 0)
            o.pool.idle_timeout = (int64_t)(cfg.idle_timeout_s * 1e9);
        if (cfg.max_idle_per_host >= 0)
            o.pool.max_idle_per_key = cfg.max_idle_per_host;
        tp_adapt_options ao;
        if (cfg.adaptive) {
            tp_adapt_options_init(&ao);
            ao.max_limit = o.pool.max_per_key;
            if (ao.initial_limit > ao.max_limit)
                ao.initial_limit = ao.max_limit;
            o.pool.adaptive = &ao; /* copied by the pool at create */
        }
        o.ca_file = cfg.cacert;
        o.tls_insecure_skip_verify = cfg.insecure;
        o.unix_socket = cfg.unix_socket;
        o.tls_client_cert = cfg.cert;
        o.tls_client_key = cfg.key;
        o.tls_client_key_passphrase = cfg.pass;
        o.proxy = cfg.proxy;
        o.decompress = cfg.compressed;
        o.http_version = cfg.http_version;
        o.pool.permits = permits;
        rc = tp_http_client_create(&o, &client, &e);
        if (rc == TP_OK) {
            pool = tp_http_client_pool(client);
            h2pool = tp_http_client_h2_pool(client);
        }
    }
    if (rc != TP_OK) {
        fprintf(stderr, "bench: %s: %s\n", tp_err_name(rc), e.msg);
        tp_fleet_destroy(fleet);
        return 1;
    }
    bench_fleet_attach(fleet, pool, h2pool);

    tp_metrics *metrics = NULL;
    tp_metrics_exporter *exporter = NULL;
    if (cfg.metrics != NULL) {
        if (tp_metrics_create(NULL, &metrics, &e) != TP_OK ||
            tp_metrics_register(metrics, "bench", pool, &e) != TP_OK ||
            (fleet != NULL && tp_metrics_register_fleet(metrics, fleet, &e) != TP_OK) ||
            tp_metrics_serve(metrics, cfg.metrics, &exporter, &e) != TP_OK) {
            fprintf(stderr, "bench: --metrics %s: %s\n", cfg.metrics, e.msg);
            tp_metrics_destroy(metrics);
            return 2;
        }
        if (!cfg.quiet)
            fprintf(stderr, "bench: metrics at http://%s (port %d): /metrics, /debug/pools\n",
                    cfg.metrics, tp_metrics_exporter_port(exporter));
    }

    /* HTTP: one engine per thread, the concurrency (or rate) shared out between them.
     * Databases: one thread per concurrent client. */
    int64_t nt = dbmode ? cfg.concurrency
                        : TP__MIN_I(cfg.threads, cfg.rate > 0 ? cfg.threads : cfg.concurrency);
    worker *ws = calloc((size_t)nt, sizeof *ws);
    if (ws == NULL)
        return 1;
    for (int64_t i = 0; i < nt; i++) {
        ws[i].cfg = &cfg;
        ws[i].client = client;
        ws[i].db = db;
        ws[i].concurrency = cfg.concurrency / nt + (i < cfg.concurrency % nt ? 1 : 0);
        ws[i].rate = cfg.rate / (double)nt;
        pthread_mutex_init(&ws[i].mu, NULL);
        if (dbmode)
            continue;
        rc = tp_http_engine_create(client, &ws[i].engine, &e);
        if (rc != TP_OK) {
            fprintf(stderr, "bench: %s: %s\n", tp_err_name(rc), e.msg);
            return 1;
        }
    }
    bench_plot bp;
    if (cfg.plot != NULL && bench_plot_start(&bp, &cfg, t0, phases, nphases) != 0) {
        fprintf(stderr, "bench: --plot: out of memory\n");
        return 1;
    }
    for (int64_t i = 0; i < nt && cfg.heatmap != NULL; i++)
        if (heatmap_init(&ws[i].heat, t0, bench_sample_interval(&cfg)) != 0) {
            fprintf(stderr, "bench: --heatmap: out of memory\n");
            return 1;
        }
    double start = now_s();
    int64_t started = 0;
    for (int64_t i = 0; i < nt; i++) {
        if (pthread_create(&ws[i].thread, NULL, dbmode ? bench_db_worker : bench_http_worker,
                           &ws[i]) != 0) {
            fprintf(stderr, "bench: could only start %lld event loops\n", (long long)i);
            for (int64_t k = i; k < nt; k++)
                tp_http_engine_destroy(ws[k].engine); /* never ran: no request inside */
            break;
        }
        started++;
    }

    tp_stats prev, st;
    bench_stats(pool, h2pool, &prev);
    /* Tick every 10 ms (to notice -n finishing), report every second. */
    double el = 0, last = 0;
    while (el < cfg.seconds && atomic_load(&bench_finished) < started) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
        el = now_s() - start;
        if (cfg.plot != NULL)
            bench_plot_tick(&bp, pool, ws, started, tp_clock_now());
        if (el - last >= 1.0 || el >= cfg.seconds) {
            bench_stats(pool, h2pool, &st);
            if (!cfg.quiet)
                print_live(el, el - last, &st, &prev, ws, started);
            prev = st;
            last = el;
        }
    }
    atomic_store(&bench_stop, true);
    latency all;
    latency_reset(&all);
    uint64_t requests = 0, errors = 0, bad_status = 0, by_code[32] = {0};
    for (int64_t i = 0; i < started; i++) {
        pthread_join(ws[i].thread, NULL);
        latency_merge(&all, &ws[i].total);
        requests += ws[i].requests;
        errors += ws[i].errors;
        bad_status += ws[i].bad_status;
        for (int k = 0; k < 32; k++)
            by_code[k] += ws[i].err_by_code[k];
        pthread_mutex_destroy(&ws[i].mu);
    }
    double secs = now_s() - start;
    bench_stats(pool, h2pool, &st);
    if (cfg.heatmap != NULL) {
        for (int64_t i = 1; i < started; i++)
            heatmap_merge(&ws[0].heat, &ws[i].heat);
        char title[512];
        snprintf(title, sizeof title, "tidepool bench %s -c %lld", cfg.url,
                 (long long)cfg.concurrency);
        if (heatmap_write(&ws[0].heat, cfg.heatmap, title) != 0)
            fprintf(stderr, "bench: --heatmap %s: %s\n", cfg.heatmap, strerror(errno));
        for (int64_t i = 0; i < nt; i++)
            heatmap_free(&ws[i].heat);
    }

    if (cfg.plot != NULL)
        bench_plot_finish(&bp, &cfg);

    /* Requests per second counts successes only: a storm of fast failures must never
     * look like a fast server. Failures are reported beside it. */
    uint64_t ok = requests - errors;
    printf("%llu ok responses in %.2f s: %.0f req/s; %llu errors (%.0f/s, %llu bad status)\n",
           (unsigned long long)ok, secs, (double)ok / secs, (unsigned long long)errors,
           (double)errors / secs, (unsigned long long)bad_status);
    printf("latency us: p50 %lld  p90 %lld  p99 %lld  p99.9 %lld  max %llu\n",
           (long long)latency_quantile(&all, 0.5), (long long)latency_quantile(&all, 0.9),
           (long long)latency_quantile(&all, 0.99), (long long)latency_quantile(&all, 0.999),
           (unsigned long long)all.max_us);
    /* What served most of the responses (a server that chose HTTP/1.1 by ALPN: http/1.1;
     * the database targets have neither). */
    long long h2n = atomic_load(&bench_h2_responses);
    const char *protocol = dbmode ? "" : h2n * 2 > (long long)ok ? "h2" : "http/1.1";
    if (!dbmode)
        printf("protocol: %s (%lld of %llu responses over HTTP/2)\n", protocol, h2n,
               (unsigned long long)ok);
    printf("connections: %llu opened, %llu reuses of %llu acquires (%.2f%%), %lld open at "
           "the end\n",
           (unsigned long long)st.opens, (unsigned long long)st.reuses,
           (unsigned long long)st.acquires,
           st.acquires ? 100.0 * (double)st.reuses / (double)st.acquires : 0.0,
           (long long)st.total);
    for (int k = 1; k < 32; k++)
        if (by_code[k] > 0)
            printf("  %llu x %s\n", (unsigned long long)by_code[k], tp_err_name(-k));
    char fleet_json[512];
    bench_fleet_json(fleet, fleet_json, sizeof fleet_json);
    if (fleet != NULL && !cfg.json) {
        tp_fleet_stats fs;
        tp_fleet_stats_get(fleet, &fs);
        printf("fleet %s: cap %lld, held %lld (share %lld), %llu opens waited for a permit, "
               "%llu Redis round trips\n",
               tp_fleet_name(fleet), (long long)fs.cap, (long long)fs.held, (long long)fs.share,
               (unsigned long long)fs.permit_waits, (unsigned long long)fs.redis_commands);
    }
    if (cfg.json)
        printf("{\"tool\":\"tidepool\",\"requests\":%llu,\"errors\":%llu,\"seconds\":%.3f,"
               "\"rps\":%.1f,\"errors_per_s\":%.1f,\"p50_us\":%lld,\"p90_us\":%lld,"
               "\"p99_us\":%lld,\"max_us\":%llu,"
               "\"connects\":%llu,\"reuses\":%llu,\"concurrency\":%lld,\"threads\":%lld,"
               "\"protocol\":\"%s\"%s}\n",
               (unsigned long long)ok, (unsigned long long)errors, secs, (double)ok / secs,
               (double)errors / secs, (long long)latency_quantile(&all, 0.5),
               (long long)latency_quantile(&all, 0.9), (long long)latency_quantile(&all, 0.99),
               (unsigned long long)all.max_us, (unsigned long long)st.opens,
               (unsigned long long)st.reuses, (long long)cfg.concurrency, (long long)nt,
               protocol, fleet_json);
    tp_metrics_exporter_stop(exporter); /* before the pool it reads goes */
    tp_metrics_destroy(metrics);
    if (dbmode)
        bench_db_close(&cfg, db);
    else
        tp_http_client_destroy(client);
    tp_fleet_destroy(fleet); /* after its pools: their closes gave the permits back */
    free(ws);
    for (size_t i = 0; i < cfg.nheaders; i++)
        free(cfg.hstore[i]);
    if (builtin)
        bench_server_stop();
    return errors > 0 ? 1 : 0;
}
