/* h2_bench: HTTP/2 requests through the pool's HTTP/2 connector (src/h2/pooled.c, an
 * internal layer: the HTTP client does not speak HTTP/2 yet), STREAMS threads each
 * keeping one request in flight on a lease of the same connection, against a server
 * such as ../shared/bench/servers/nginx-h2.sh (TLS) or nghttpd --no-tls. Read it beside
 * h2load -c 1 -m STREAMS on the same server: what the session layer and the threads
 * that share one connection cost per request, before the engine drives HTTP/2.
 *
 * usage: h2_bench [-c STREAMS] [-d SECONDS] [--cacert FILE] [--h2c] [--max-per-key N]
 *                 HOST:PORT [PATH]
 * Prints one JSON line with the fields compare-h2.sh reads: tool, requests, errors,
 * seconds, rps, p50_us, p99_us, connects, protocol ("h2"), and cpu_us_per_req (the
 * process's user + system time over requests). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "h2/h2.h"
#include "tidepool/tidepool.h"

#define MAX_SAMPLES (1 << 20)

static tp_pool *pool;
static const char *key, *path = "/";
static atomic_bool stop;
static atomic_long requests, errors, nsamples;
static int32_t *samples; /* latencies in us, the first MAX_SAMPLES */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static bool one(void)
{
    tp_conn *lease;
    if (tp_pool_acquire(pool, key, strlen(key), TP_DURATION_DEFAULT, &lease, NULL) != TP_OK)
        return false;
    tp__h2_request rq = {.method = "GET", .scheme = "https", .authority = key, .path = path};
    tp__h2_stream *st;
    int64_t deadline = tp_deadline_after(10 * TP_NSEC_PER_SEC);
    bool ok = tp__h2_lease_request(lease, &rq, deadline, &st, NULL, NULL) == TP_OK;
    if (ok) {
        char buf[16384];
        size_t got;
        tp_err rc;
        while ((rc = tp__h2_lease_read(lease, st, buf, sizeof buf, &got, deadline, NULL)) ==
                   TP_OK &&
               got > 0) {
        }
        ok = rc == TP_OK && tp__h2_stream_status(st) == 200;
        tp__h2_lease_done(lease, st);
    }
    tp_conn_release(lease, tp__h2_lease_alive(lease) ? 0 : TP_RELEASE_BROKEN);
    return ok;
}

static void *worker(void *arg)
{
    (void)arg;
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        int64_t t0 = tp_clock_now();
        bool ok = one();
        int64_t us = (tp_clock_now() - t0) / 1000;
        if (!ok) {
            atomic_fetch_add(&errors, 1);
            continue;
        }
        atomic_fetch_add(&requests, 1);
        long i = atomic_fetch_add(&nsamples, 1);
        if (i < MAX_SAMPLES)
            samples[i] = us > INT32_MAX ? INT32_MAX : (int32_t)us;
    }
    return NULL;
}

static int cmp_i32(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static void usage(void)
{
    fprintf(stderr, "usage: h2_bench [-c STREAMS] [-d SECONDS] [--cacert FILE] [--h2c] "
                    "[--max-per-key N] HOST:PORT [PATH]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    int streams = 64;
    long max_per_key = 1;
    double dur = 5;
    tp__h2_connector_options co = {.tls = true};
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-c") == 0 && i + 1 < argc)
            streams = atoi(argv[++i]);
        else if (strcmp(argv[i], "-d") == 0 && i + 1 < argc)
            dur = atof(argv[++i]);
        else if (strcmp(argv[i], "--cacert") == 0 && i + 1 < argc)
            co.ca_file = argv[++i];
        else if (strcmp(argv[i], "--h2c") == 0)
            co.tls = false;
        else if (strcmp(argv[i], "--max-per-key") == 0 && i + 1 < argc)
            max_per_key = atol(argv[++i]);
        else if (key == NULL && argv[i][0] != '-')
            key = argv[i];
        else if (argv[i][0] == '/')
            path = argv[i];
        else
            usage();
    }
    if (key == NULL || streams < 1 || streams > 4096 || dur <= 0 || max_per_key < 1)
        usage();
    samples = calloc(MAX_SAMPLES, sizeof *samples);
    tp_connector cn;
    tp_errinfo err;
    if (samples == NULL || tp__h2_connector_new(&co, &cn, &err) != TP_OK) {
        fprintf(stderr, "h2_bench: %s\n", samples == NULL ? "out of memory" : err.msg);
        return 1;
    }
    tp_pool_options o;
    tp_pool_options_init(&o);
    o.connector = cn;
    o.max_per_key = max_per_key;
    if (tp_pool_create(&o, &pool, &err) != TP_OK) {
        fprintf(stderr, "h2_bench: %s\n", err.msg);
        return 1;
    }
    if (!one()) { /* the connection, and a first request, before the clock starts */
        fprintf(stderr, "h2_bench: the first request to %s failed\n", key);
        return 1;
    }
    pthread_t *t = calloc((size_t)streams, sizeof *t);
    double cpu0 = cpu_s(), start = now_s();
    for (int i = 0; i < streams; i++)
        pthread_create(&t[i], NULL, worker, NULL);
    struct timespec ts = {(time_t)dur, (long)((dur - (double)(time_t)dur) * 1e9)};
    nanosleep(&ts, NULL);
    atomic_store(&stop, true);
    for (int i = 0; i < streams; i++)
        pthread_join(t[i], NULL);
    double secs = now_s() - start, cpu = cpu_s() - cpu0;
    long n = atomic_load(&requests);
    long ns = n < MAX_SAMPLES ? n : MAX_SAMPLES;
    qsort(samples, (size_t)ns, sizeof *samples, cmp_i32);
    tp_stats st;
    tp_pool_stats(pool, &st);
    printf("{\"tool\": \"tidepool\", \"layer\": \"h2 pool connector\", \"requests\": %ld, "
           "\"errors\": %ld, \"seconds\": %.3f, \"rps\": %.0f, \"p50_us\": %d, \"p99_us\": %d, "
           "\"connects\": %llu, \"protocol\": \"h2\", \"streams\": %d, \"cpu_us_per_req\": "
           "%.2f}\n",
           n, atomic_load(&errors), secs, (double)n / secs, ns ? samples[ns / 2] : 0,
           ns ? samples[ns * 99 / 100] : 0, (unsigned long long)st.opens, streams,
           n ? cpu * 1e6 / (double)n : 0.0);
    tp_pool_destroy(pool);
    tp__h2_connector_free(&cn);
    free(t);
    free(samples);
    return 0;
}
