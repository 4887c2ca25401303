/* cmd_bench.c: `tidepool bench`: loads an HTTP server through a tidepool client, with a
 * live line each second, a final summary, and with --json the one line that
 * shared/bench/compare-http.sh reads. With no URL it starts a built-in loopback server,
 * so `make demo` needs no setup. Each of the -c workers is a thread running requests
 * back to back (closed loop). */
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
#include "latency.h"

#define MAX_HEADERS 32
/* A wait of at least 0 ns and at most 100 ms (so the stop flag is seen). */
#define TP__MIN_I(a, b) ((a) < (b) ? (a) : (b))
#define TP__CLAMP_WAIT(ns) ((ns) < 0 ? 0 : (ns) > 100000000 ? 100000000 : (ns))

typedef struct bench_cfg {
    const char *url;
    int64_t concurrency, total;
    int64_t threads;
    double rate;
    double seconds;
    int64_t max_per_host;
    double idle_timeout_s;
    double timeout_s;
    const char *method;
    const char *body;
    const char *hnames[MAX_HEADERS], *hvalues[MAX_HEADERS];
    char *hstore[MAX_HEADERS];
    size_t nheaders;
    bool json, quiet, insecure;
    const char *cacert;
} bench_cfg;

typedef struct worker worker;

/* One request in flight: which worker, and when it was due to start (open loop: its
 * scheduled instant, so a stalled server cannot hide its queueing delay). */
typedef struct inflight {
    worker *w;
    int64_t start;
} inflight;

struct worker {
    pthread_t thread;
    const bench_cfg *cfg;
    tp_http_client *client;
    tp_http_engine *engine;
    tp_http_request req;
    int64_t concurrency; /* closed loop: requests kept in flight by this worker */
    double rate;         /* open loop: requests per second from this worker (0: closed) */
    pthread_mutex_t mu;  /* guards interval (the reporter swaps it each second) */
    latency interval;
    latency total; /* owned by the worker until it is joined */
    uint64_t requests, errors;
    uint64_t err_by_code[32];
    uint64_t bad_status;
    uint64_t submit_errors;
};

static atomic_bool stop_flag;
static atomic_llong issued;
static atomic_llong finished; /* workers that ran out of requests (-n) */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* May another request start? Counts it against -n when one is given. */
static bool may_issue(const bench_cfg *cfg)
{
    if (atomic_load_explicit(&stop_flag, memory_order_relaxed))
        return false;
    return cfg->total <= 0 || atomic_fetch_add(&issued, 1) < cfg->total;
}

static void submit_one(worker *w, int64_t start);

static void on_done(void *ud, tp_err rc, tp_http_response *r, const tp_errinfo *err)
{
    (void)err;
    inflight *f = ud;
    worker *w = f->w;
    int64_t us = (tp_clock_now() - f->start) / 1000;
    bool ok = rc == TP_OK && tp_http_response_status(r) < 400;
    if (rc == TP_OK && !ok)
        w->bad_status++;
    tp_http_response_free(r);
    if (rc == TP_ECANCELED && atomic_load(&stop_flag)) {
        free(f); /* cut off by the end of the run: neither a result nor an error */
        return;
    }
    pthread_mutex_lock(&w->mu);
    w->requests++;
    if (ok)
        latency_add(&w->interval, us);
    else
        w->errors++;
    if (rc != TP_OK)
        w->err_by_code[(-rc) & 31]++;
    pthread_mutex_unlock(&w->mu);
    if (ok)
        latency_add(&w->total, us);
    /* Closed loop: the finished request's slot starts the next one. */
    if (w->rate == 0 && may_issue(w->cfg)) {
        f->start = tp_clock_now();
        if (tp_http_engine_submit(w->engine, &w->req, on_done, f, NULL, NULL) != TP_OK)
            w->submit_errors++;
        return;
    }
    free(f);
}

static void submit_one(worker *w, int64_t start)
{
    inflight *f = malloc(sizeof *f);
    if (f == NULL) {
        w->submit_errors++;
        return;
    }
    f->w = w;
    f->start = start;
    tp_errinfo e;
    if (tp_http_engine_submit(w->engine, &w->req, on_done, f, NULL, &e) != TP_OK) {
        w->submit_errors++;
        free(f);
    }
}

/* One event loop: keeps its share of requests in flight (closed loop), or starts them
 * on a fixed schedule (open loop, --rate). */
static void *worker_main(void *arg)
{
    worker *w = arg;
    const bench_cfg *cfg = w->cfg;
    w->req = (tp_http_request){.method = cfg->method,
                               .url = cfg->url,
                               .header_names = cfg->hnames,
                               .header_values = cfg->hvalues,
                               .nheaders = cfg->nheaders,
                               .body = cfg->body,
                               .body_len = cfg->body != NULL ? strlen(cfg->body) : 0,
                               .timeout = cfg->timeout_s > 0 ? (int64_t)(cfg->timeout_s * 1e9)
                                                             : TP_DURATION_DEFAULT};
    if (w->rate == 0) {
        for (int64_t i = 0; i < w->concurrency && may_issue(cfg); i++)
            submit_one(w, tp_clock_now());
    } else {
        int64_t step = (int64_t)(1e9 / w->rate);
        int64_t next = tp_clock_now();
        for (;;) {
            int64_t now = tp_clock_now();
            bool more = true;
            while (now >= next && (more = may_issue(cfg))) {
                submit_one(w, next); /* latency counts from the scheduled start */
                next += step;
            }
            if (!more)
                break;
            tp_http_engine_poll(w->engine, TP__CLAMP_WAIT(next - tp_clock_now()));
        }
    }
    /* Let what is in flight finish, for at most 2 s after the end of the run; the rest is
     * cancelled when the engine goes. */
    int64_t stopped = -1;
    while (tp_http_engine_pending(w->engine) > 0) {
        if (atomic_load(&stop_flag) && stopped < 0)
            stopped = tp_clock_now();
        if (stopped >= 0 && tp_clock_now() - stopped > 2 * TP_NSEC_PER_SEC)
            break;
        tp_http_engine_poll(w->engine, 100 * TP_NSEC_PER_MSEC);
    }
    atomic_fetch_add(&finished, 1);
    tp_http_engine_destroy(w->engine);
    w->engine = NULL;
    return NULL;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: tidepool bench [URL] [options]\n"
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
    if (builtin) {
        uint16_t port = 0;
        if (bench_server_start(1, &port) != 0) {
            fprintf(stderr, "bench: could not start the built-in server: %s\n", strerror(errno));
            return 1;
        }
        snprintf(builtin_url, sizeof builtin_url, "http://127.0.0.1:%u/", (unsigned)port);
        cfg.url = builtin_url;
        if (!cfg.quiet)
            fprintf(stderr, "bench: no URL given: built-in server at %s\n", cfg.url);
    }

    tp_http_client_options o;
    tp_http_client_options_init(&o);
    if (cfg.max_per_host > 0)
        o.pool.max_per_key = cfg.max_per_host;
    if (cfg.idle_timeout_s >= 0)
        o.pool.idle_timeout = (int64_t)(cfg.idle_timeout_s * 1e9);
    o.ca_file = cfg.cacert;
    o.tls_insecure_skip_verify = cfg.insecure;
    tp_http_client *client;
    tp_errinfo e;
    tp_err rc = tp_http_client_create(&o, &client, &e);
    if (rc != TP_OK) {
        fprintf(stderr, "bench: %s: %s\n", tp_err_name(rc), e.msg);
        return 1;
    }

    /* One engine per thread; the concurrency (or rate) is shared out between them. */
    int64_t nt = TP__MIN_I(cfg.threads, cfg.rate > 0 ? cfg.threads : cfg.concurrency);
    worker *ws = calloc((size_t)nt, sizeof *ws);
    if (ws == NULL)
        return 1;
    for (int64_t i = 0; i < nt; i++) {
        ws[i].cfg = &cfg;
        ws[i].client = client;
        ws[i].concurrency = cfg.concurrency / nt + (i < cfg.concurrency % nt ? 1 : 0);
        ws[i].rate = cfg.rate / (double)nt;
        pthread_mutex_init(&ws[i].mu, NULL);
        rc = tp_http_engine_create(client, &ws[i].engine, &e);
        if (rc != TP_OK) {
            fprintf(stderr, "bench: %s: %s\n", tp_err_name(rc), e.msg);
            return 1;
        }
    }
    double start = now_s();
    int64_t started = 0;
    for (int64_t i = 0; i < nt; i++) {
        if (pthread_create(&ws[i].thread, NULL, worker_main, &ws[i]) != 0) {
            fprintf(stderr, "bench: could only start %lld event loops\n", (long long)i);
            for (int64_t k = i; k < nt; k++)
                tp_http_engine_destroy(ws[k].engine); /* never ran: no request inside */
            break;
        }
        started++;
    }

    tp_stats prev, st;
    tp_pool_stats(tp_http_client_pool(client), &prev);
    /* Tick every 10 ms (to notice -n finishing), report every second. */
    double el = 0, last = 0;
    while (el < cfg.seconds && atomic_load(&finished) < started) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
        el = now_s() - start;
        if (el - last >= 1.0 || el >= cfg.seconds) {
            tp_pool_stats(tp_http_client_pool(client), &st);
            if (!cfg.quiet)
                print_live(el, el - last, &st, &prev, ws, started);
            prev = st;
            last = el;
        }
    }
    atomic_store(&stop_flag, true);
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
    tp_pool_stats(tp_http_client_pool(client), &st);

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
    tp_http_client_destroy(client);
    free(ws);
    for (size_t i = 0; i < cfg.nheaders; i++)
        free(cfg.hstore[i]);
    if (builtin)
        bench_server_stop();
    return errors > 0 ? 1 : 0;
}
