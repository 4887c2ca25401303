/* cmd_bench.c: `tidepool bench`: loads an HTTP server (or PostgreSQL, or Redis) through
 * a tidepool pool, with a live line each second, a final summary, and with --json the
 * one line that shared/bench/compare-http.sh and compare-db.sh read. With no URL it
 * starts a built-in loopback HTTP server, so `make demo` needs no setup. The drivers are
 * in bench_http.c (event engines) and bench_db.c (a thread per client). */
#include <errno.h>
#include <getopt.h>
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

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: tidepool bench [URL] [options]   (URL: http://, https://, postgres://, redis://)\n"
        "  -c, --concurrency N   requests in flight (default 16)\n"
        "  -t, --threads N       event loops, one per thread (default 1)\n"
        "  -r, --rate R          open loop: start R requests per second whatever the\n"
        "                        server does; latency counts from each scheduled start\n"
        "  -d, --duration D      how long: 10, 10s, 500ms, 2m (default 10s)\n"
        "  -n, --requests N      stop after N requests (with -d: whichever first)\n"
        "  -m, --method M        request method (default GET)\n"
        "  -H, --header 'N: V'   add a request header (repeatable)\n"
        "  -b, --body STR        request body\n"
        "      --max-per-host N  connections per destination (default 64)\n"
        "      --idle-timeout D  close connections idle this long (default 30s)\n"
        "      --timeout D       whole-request timeout (default none)\n"
        "      --cacert FILE     trust this CA for https\n"
        "      --insecure        do not verify the server's certificate\n"
        "      --json            print one JSON line at the end\n"
        "      --heatmap FILE    write an SVG heat map of latency over time, with\n"
        "                        connection opens marked\n"
        "      --query SQL       postgres:// URLs: the statement (default SELECT 1)\n"
        "      --command CMD     redis:// URLs: the command (default PING)\n"
        "      --metrics ADDR    serve the pool's metrics on ADDR (loopback, e.g.\n"
        "                        127.0.0.1:9464) at /metrics and /debug/pools\n"
        "      --adaptive        HTTP: let the pool's adaptive limit size each\n"
        "                        destination (at most --max-per-host)\n"
        "      --server-phases S built-in server only: its capacity over time, phases\n"
        "                        AT_MS:WORKERS:SERVICE_US separated by commas, e.g.\n"
        "                        0:8:2000,5000:4:2000 (WORKERS 0: no limit)\n"
        "      --plot FILE       write an SVG of the limit, leases in use and p50/p99\n"
        "                        over time, with the server's phases marked\n"
        "  -q, --quiet           no live line\n"
        "With no URL, a built-in loopback server is started and benchmarked.\n");
}

static int parse_args(int argc, char **argv, bench_cfg *cfg)
{
    static const struct option longs[] = {{"concurrency", required_argument, NULL, 'c'},
                                          {"duration", required_argument, NULL, 'd'},
                                          {"threads", required_argument, NULL, 't'},
                                          {"rate", required_argument, NULL, 'r'},
                                          {"requests", required_argument, NULL, 'n'},
                                          {"method", required_argument, NULL, 'm'},
                                          {"header", required_argument, NULL, 'H'},
                                          {"body", required_argument, NULL, 'b'},
                                          {"max-per-host", required_argument, NULL, 1},
                                          {"idle-timeout", required_argument, NULL, 2},
                                          {"timeout", required_argument, NULL, 3},
                                          {"cacert", required_argument, NULL, 4},
                                          {"insecure", no_argument, NULL, 5},
                                          {"json", no_argument, NULL, 6},
                                          {"quiet", no_argument, NULL, 'q'},
                                          {"help", no_argument, NULL, 'h'},
                                          {"heatmap", required_argument, NULL, 7},
                                          {"query", required_argument, NULL, 8},
                                          {"command", required_argument, NULL, 9},
                                          {"metrics", required_argument, NULL, 10},
                                          {"adaptive", no_argument, NULL, 11},
                                          {"server-phases", required_argument, NULL, 12},
                                          {"plot", required_argument, NULL, 13},
                                          {NULL, 0, NULL, 0}};
    *cfg = (bench_cfg){
        .concurrency = 16, .threads = 1, .seconds = 10, .method = "GET", .idle_timeout_s = -1};
    bool have_d = false, have_n = false;
    int o;
    optind = 1;
    while ((o = getopt_long(argc, argv, "c:t:r:d:n:m:H:b:qh", longs, NULL)) != -1) {
        switch (o) {
        case 't':
            if (!parse_count(optarg, &cfg->threads) || cfg->threads < 1 || cfg->threads > 256)
                return fprintf(stderr, "bench: -t: want 1..256\n"), -1;
            break;
        case 'r': {
            char *end;
            cfg->rate = strtod(optarg, &end);
            if (end == optarg || *end != '\0' || !(cfg->rate > 0 && cfg->rate <= 1e7))
                return fprintf(stderr, "bench: --rate: want requests per second in (0, 1e7]\n"), -1;
            break;
        }
        case 'c':
            if (!parse_count(optarg, &cfg->concurrency) || cfg->concurrency < 1 ||
                cfg->concurrency > 100000)
                return fprintf(stderr, "bench: -c: want 1..100000\n"), -1;
            break;
        case 'd':
            if (!parse_duration_s(optarg, &cfg->seconds) || cfg->seconds <= 0)
                return fprintf(stderr, "bench: -d: bad duration '%s'\n", optarg), -1;
            have_d = true;
            break;
        case 'n':
            if (!parse_count(optarg, &cfg->total) || cfg->total < 1)
                return fprintf(stderr, "bench: -n: want a positive count\n"), -1;
            have_n = true;
            break;
        case 'm':
            cfg->method = optarg;
            break;
        case 'H': {
            const char *colon = strchr(optarg, ':');
            if (colon == NULL || colon == optarg || cfg->nheaders == MAX_HEADERS)
                return fprintf(stderr, "bench: -H: want 'Name: value' (at most %d)\n", MAX_HEADERS),
                       -1;
            char *name = strndup(optarg, (size_t)(colon - optarg));
            if (name == NULL)
                return -1;
            const char *v = colon + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            cfg->hstore[cfg->nheaders] = name;
            cfg->hnames[cfg->nheaders] = name;
            cfg->hvalues[cfg->nheaders] = v;
            cfg->nheaders++;
            break;
        }
        case 'b':
            cfg->body = optarg;
            break;
        case 1:
            if (!parse_count(optarg, &cfg->max_per_host) || cfg->max_per_host < 1)
                return fprintf(stderr, "bench: --max-per-host: want a positive count\n"), -1;
            break;
        case 2:
            if (!parse_duration_s(optarg, &cfg->idle_timeout_s))
                return fprintf(stderr, "bench: --idle-timeout: bad duration\n"), -1;
            break;
        case 3:
            if (!parse_duration_s(optarg, &cfg->timeout_s) || cfg->timeout_s <= 0)
                return fprintf(stderr, "bench: --timeout: bad duration\n"), -1;
            break;
        case 4:
            cfg->cacert = optarg;
            break;
        case 5:
            cfg->insecure = true;
            break;
        case 6:
            cfg->json = true;
            break;
        case 7:
            cfg->heatmap = optarg;
            break;
        case 8:
            cfg->query = optarg;
            break;
        case 9:
            cfg->command = optarg;
            break;
        case 10:
            cfg->metrics = optarg;
            break;
        case 11:
            cfg->adaptive = true;
            break;
        case 12:
            cfg->server_phases = optarg;
            break;
        case 13:
            cfg->plot = optarg;
            break;
        case 'q':
            cfg->quiet = true;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            return -1;
        }
    }
    if (optind < argc)
        cfg->url = argv[optind++];
    if (optind < argc)
        return fprintf(stderr, "bench: unexpected argument '%s'\n", argv[optind]), -1;
    if (have_n && !have_d)
        cfg->seconds = 1e9; /* -n alone: run until the count */
    return 0;
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

int cmd_bench(int argc, char **argv)
{
    bench_cfg cfg;
    if (parse_args(argc, argv, &cfg) != 0)
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
        if (bench_server_phase_parse(cfg.server_phases, phases, BENCH_SERVER_MAX_PHASES,
                                     &nphases, perr, sizeof perr) != 0)
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

    tp_http_client *client = NULL;
    void *db = NULL; /* postgres:// or redis://: a database pool, one thread per client */
    tp_pool *pool = NULL;
    tp_errinfo e;
    tp_err rc;
    bool dbmode = bench_db_url(cfg.url);
    if (dbmode) {
        if (cfg.rate > 0 || cfg.adaptive) {
            fprintf(stderr, "bench: --%s is for HTTP URLs\n", cfg.rate > 0 ? "rate" : "adaptive");
            return 2;
        }
        rc = bench_db_open(&cfg, cfg.max_per_host > 0 ? cfg.max_per_host : cfg.concurrency, &db,
                           &pool, &e);
    } else {
        tp_http_client_options o;
        tp_http_client_options_init(&o);
        if (cfg.max_per_host > 0)
            o.pool.max_per_key = cfg.max_per_host;
        if (cfg.idle_timeout_s >= 0)
            o.pool.idle_timeout = (int64_t)(cfg.idle_timeout_s * 1e9);
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
        rc = tp_http_client_create(&o, &client, &e);
        if (rc == TP_OK)
            pool = tp_http_client_pool(client);
    }
    if (rc != TP_OK) {
        fprintf(stderr, "bench: %s: %s\n", tp_err_name(rc), e.msg);
        return 1;
    }

    tp_metrics *metrics = NULL;
    tp_metrics_exporter *exporter = NULL;
    if (cfg.metrics != NULL) {
        if (tp_metrics_create(NULL, &metrics, &e) != TP_OK ||
            tp_metrics_register(metrics, "bench", pool, &e) != TP_OK ||
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
    tp_pool_stats(pool, &prev);
    /* Tick every 10 ms (to notice -n finishing), report every second. */
    double el = 0, last = 0;
    while (el < cfg.seconds && atomic_load(&bench_finished) < started) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
        el = now_s() - start;
        if (cfg.plot != NULL)
            bench_plot_tick(&bp, pool, ws, started, tp_clock_now());
        if (el - last >= 1.0 || el >= cfg.seconds) {
            tp_pool_stats(pool, &st);
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
    tp_pool_stats(pool, &st);
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

    printf("%llu requests in %.2f s: %.0f req/s, %llu errors (%llu bad status)\n",
           (unsigned long long)requests, secs, (double)requests / secs, (unsigned long long)errors,
           (unsigned long long)bad_status);
    printf("latency us: p50 %lld  p90 %lld  p99 %lld  p99.9 %lld  max %llu\n",
           (long long)latency_quantile(&all, 0.5), (long long)latency_quantile(&all, 0.9),
           (long long)latency_quantile(&all, 0.99), (long long)latency_quantile(&all, 0.999),
           (unsigned long long)all.max_us);
    printf("connections: %llu opened, %llu reuses of %llu acquires (%.2f%%), %lld open at "
           "the end\n",
           (unsigned long long)st.opens, (unsigned long long)st.reuses,
           (unsigned long long)st.acquires,
           st.acquires ? 100.0 * (double)st.reuses / (double)st.acquires : 0.0,
           (long long)st.total);
    for (int k = 1; k < 32; k++)
        if (by_code[k] > 0)
            printf("  %llu x %s\n", (unsigned long long)by_code[k], tp_err_name(-k));
    if (cfg.json)
        printf("{\"tool\":\"tidepool\",\"requests\":%llu,\"errors\":%llu,\"seconds\":%.3f,"
               "\"rps\":%.1f,\"p50_us\":%lld,\"p90_us\":%lld,\"p99_us\":%lld,\"max_us\":%llu,"
               "\"connects\":%llu,\"reuses\":%llu,\"concurrency\":%lld,\"threads\":%lld}\n",
               (unsigned long long)requests, (unsigned long long)errors, secs,
               (double)requests / secs, (long long)latency_quantile(&all, 0.5),
               (long long)latency_quantile(&all, 0.9), (long long)latency_quantile(&all, 0.99),
               (unsigned long long)all.max_us, (unsigned long long)st.opens,
               (unsigned long long)st.reuses, (long long)cfg.concurrency, (long long)nt);
    tp_metrics_exporter_stop(exporter); /* before the pool it reads goes */
    tp_metrics_destroy(metrics);
    if (dbmode)
        bench_db_close(&cfg, db);
    else
        tp_http_client_destroy(client);
    free(ws);
    for (size_t i = 0; i < cfg.nheaders; i++)
        free(cfg.hstore[i]);
    if (builtin)
        bench_server_stop();
    return errors > 0 ? 1 : 0;
}
