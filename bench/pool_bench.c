/* pool_bench: the acquire/release hot path of the keyed pool, with a no-op connector.
 * One op = tp_pool_acquire + tp_conn_release of an idle connection on one key.
 *
 * usage: pool_bench [-t THREADS] [-size N] [-d SECONDS] [--live]
 * Prints one JSON line (the contract of shared/bench/compare-pool.sh):
 *   {"tool":"tidepool","threads":T,"ops":N,"seconds":S,"ns_per_op":X}
 * where ns_per_op = wall seconds * 1e9 / ops summed over all threads. With --live, a
 * line of pool statistics goes to stderr every second while it runs. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nop_connector.h"
#include "tidepool/tidepool.h"

static tp_pool *pool;
static atomic_bool stop;
static atomic_long total_ops;
static atomic_long errors;
static const char key[] = "bench:127.0.0.1:5432";

static void *worker(void *arg)
{
    (void)arg;
    long n = 0;
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        for (int k = 0; k < 1000; k++) {
            tp_conn *c;
            if (tp_pool_acquire(pool, key, sizeof key - 1, TP_DURATION_DEFAULT, &c, NULL) !=
                TP_OK) {
                atomic_fetch_add(&errors, 1);
                continue;
            }
            tp_conn_release(c, 0);
        }
        n += 1000;
    }
    atomic_fetch_add(&total_ops, n);
    return NULL;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void usage(void)
{
    fprintf(stderr, "usage: pool_bench [-t THREADS] [-size N] [-d SECONDS] [--live]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    int threads = 1, live = 0;
    long size = 16;
    double dur = 3;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-t") == 0 && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (strcmp(argv[i], "-size") == 0 && i + 1 < argc)
            size = atol(argv[++i]);
        else if (strcmp(argv[i], "-d") == 0 && i + 1 < argc)
            dur = atof(argv[++i]);
        else if (strcmp(argv[i], "--live") == 0)
            live = 1;
        else
            usage();
    }
    if (threads < 1 || threads > 4096 || size < 1 || dur <= 0)
        usage();

    tp_pool_options o;
    tp_pool_options_init(&o);
    o.connector = nop_connector();
    o.max_per_key = size;
    o.max_idle_per_key = size;
    o.min_idle_per_key = size; /* like the peers' benchmarks: a full, warm pool */
    tp_errinfo err;
    if (tp_pool_create(&o, &pool, &err) != TP_OK) {
        fprintf(stderr, "pool_bench: %s\n", err.msg);
        return 1;
    }
    /* Warm up: open every connection once, release them all idle. */
    tp_conn **held = calloc((size_t)size, sizeof *held);
    for (long i = 0; i < size; i++)
        if (tp_pool_acquire(pool, key, sizeof key - 1, TP_DURATION_DEFAULT, &held[i], &err) !=
            TP_OK) {
            fprintf(stderr, "pool_bench: warm-up: %s\n", err.msg);
            return 1;
        }
    for (long i = 0; i < size; i++)
        tp_conn_release(held[i], 0);
    free(held);

    pthread_t *t = calloc((size_t)threads, sizeof *t);
    double start = now_s();
    for (int i = 0; i < threads; i++)
        pthread_create(&t[i], NULL, worker, NULL);
    tp_stats prev;
    tp_pool_stats(pool, &prev);
    for (double el = 0; el < dur;) {
        double step = dur - el < 1.0 ? dur - el : 1.0;
        struct timespec ts = {(time_t)step, (long)((step - (double)(time_t)step) * 1e9)};
        nanosleep(&ts, NULL);
        el = now_s() - start;
        if (live) {
            tp_stats st;
            tp_pool_stats(pool, &st);
            fprintf(stderr,
                    "[%5.1fs] %10.0f acq/s  idle %lld  in use %lld  waiters %lld  reused %.1f%%  "
                    "waits %llu  p99 wait %.1f us  p99 hold %.1f us  opens %llu\n",
                    el, (double)(st.acquires - prev.acquires) / step, (long long)st.idle,
                    (long long)st.in_use, (long long)st.waiters,
                    st.acquires ? 100.0 * (double)st.reuses / (double)st.acquires : 0.0,
                    (unsigned long long)st.waits,
                    (double)tp_histogram_quantile(&st.acquire_wait, 0.99) / 1e3,
                    (double)tp_histogram_quantile(&st.hold_time, 0.99) / 1e3,
                    (unsigned long long)st.opens);
            prev = st;
        }
    }
    atomic_store(&stop, true);
    for (int i = 0; i < threads; i++)
        pthread_join(t[i], NULL);
    double secs = now_s() - start;
    free(t);
    long ops = atomic_load(&total_ops);
    tp_pool_destroy(pool);
    printf("{\"tool\":\"tidepool\",\"threads\":%d,\"ops\":%ld,\"seconds\":%.3f,\"ns_per_op\":%.1f,"
           "\"errors\":%ld}\n",
           threads, ops, secs, ops > 0 ? secs * 1e9 / (double)ops : 0.0, atomic_load(&errors));
    return 0;
}
