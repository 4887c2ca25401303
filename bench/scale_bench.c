/* scale_bench: the keyed pool at scale, through the public API with a no-op connector:
 * KEYS keys with CONNS_PER_KEY idle connections each.
 *
 * usage: scale_bench KEYS CONNS_PER_KEY
 * Prints one JSON line:
 *   bytes_per_idle_conn   the library's live heap bytes (tp_set_allocator) over idle
 *                         connections, keys included
 *   bytes_per_extra_conn  each connection beyond a key's first (CONNS_PER_KEY > 1)
 *   bytes_per_key         a key with one connection, less one extra connection
 *   bytes_per_idle_conn_after_traffic   bytes_per_idle_conn again after the hot and
 *                         random phases (a key's histograms grow once its durations
 *                         spread over more than a few buckets)
 *   hot_ns, random_ns     acquire + release on one key, and on a random key each time
 *   pass_nothing_due_us   a maintenance pass when nothing is due (median of 21)
 *   max_stall_us          the longest acquire + release on another thread while those
 *                         passes ran: how long a pass keeps acquires out
 *   max_stall_quiet_us    the same over as long a time without passes: the machine's
 *                         own noise, to read max_stall_us against
 *   cancel_us             withdrawing a queued asynchronous acquire (tp_acquire_cancel),
 *                         median of 101: what an event loop pays per request timeout
 *   expire_all_ms         the pass that closes every connection at its idle timeout
 * Heap bytes are counted with malloc_usable_size, so they include the allocator's
 * rounding (what the process pays). */
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "nop_connector.h"
#include "tidepool/tidepool.h"

static _Atomic long long live_bytes;

static void *count_malloc(void *ud, size_t n)
{
    (void)ud;
    void *p = malloc(n);
    if (p != NULL)
        atomic_fetch_add(&live_bytes, (long long)malloc_usable_size(p));
    return p;
}

static void *count_realloc(void *ud, void *old, size_t n)
{
    (void)ud;
    long long before = old != NULL ? (long long)malloc_usable_size(old) : 0;
    void *p = realloc(old, n);
    if (p != NULL)
        atomic_fetch_add(&live_bytes, (long long)malloc_usable_size(p) - before);
    return p;
}

static void count_free(void *ud, void *p)
{
    (void)ud;
    if (p != NULL)
        atomic_fetch_sub(&live_bytes, (long long)malloc_usable_size(p));
    free(p);
}

static long keys, per_key;
static char (*names)[24];
static tp_pool *pool;

static void die(const char *what, tp_err rc)
{
    fprintf(stderr, "scale_bench: %s: %s\n", what, tp_err_name(rc));
    exit(1);
}

static void acq_rel(long k)
{
    tp_conn *c;
    tp_err rc = tp_pool_acquire(pool, names[k], strlen(names[k]), TP_DURATION_DEFAULT, &c, NULL);
    if (rc != TP_OK)
        die("acquire", rc);
    tp_conn_release(c, 0);
}

/* Gives every key n idle connections (it has fewer). */
static void fill(long n)
{
    tp_conn **held = malloc(sizeof *held * (size_t)n);
    if (held == NULL)
        die("memory", TP_ENOMEM);
    for (long k = 0; k < keys; k++) {
        for (long i = 0; i < n; i++) {
            tp_err rc = tp_pool_acquire(pool, names[k], strlen(names[k]), TP_DURATION_DEFAULT,
                                        &held[i], NULL);
            if (rc != TP_OK)
                die("acquire", rc);
        }
        for (long i = 0; i < n; i++)
            tp_conn_release(held[i], 0);
    }
    free(held);
}

static double ns_per_op(bool random_key)
{
    uint64_t x = 88172645463325252ull;
    long ops = 0;
    int64_t t0 = tp_clock_now(), end = t0 + TP_NSEC_PER_SEC;
    while (tp_clock_now() < end) {
        for (int i = 0; i < 1000; i++) {
            long k = 0;
            if (random_key) {
                x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                k = (long)(x % (uint64_t)keys);
            }
            acq_rel(k);
        }
        ops += 1000;
    }
    return (double)(tp_clock_now() - t0) / (double)ops;
}

static atomic_bool stalls_stop;
static _Atomic int64_t max_stall;

/* Acquires and releases key 0 in a loop, keeping the longest one. */
static void *stall_probe(void *arg)
{
    (void)arg;
    while (!atomic_load(&stalls_stop)) {
        int64_t t = tp_clock_now();
        acq_rel(0);
        int64_t d = tp_clock_now() - t;
        if (d > atomic_load(&max_stall))
            atomic_store(&max_stall, d);
    }
    return NULL;
}

static void never_called(void *ud, tp_err status, tp_acquired kind, tp_conn *conn,
                         const tp_errinfo *err)
{
    (void)ud, (void)status, (void)kind, (void)conn, (void)err;
    fprintf(stderr, "scale_bench: a cancelled acquire completed\n");
    exit(1);
}

static int cmp_i64(const void *a, const void *b);

/* Median time of tp_acquire_cancel() for an acquire queued on key 0 (held full). */
static int64_t cancel_ns(void)
{
    tp_conn **held = malloc(sizeof *held * (size_t)per_key);
    if (held == NULL)
        die("memory", TP_ENOMEM);
    for (long i = 0; i < per_key; i++) {
        tp_err rc = tp_pool_acquire(pool, names[0], strlen(names[0]), TP_DURATION_DEFAULT,
                                    &held[i], NULL);
        if (rc != TP_OK)
            die("acquire", rc);
    }
    int64_t t[101];
    tp_acquire_req req = {.key = names[0], .keylen = strlen(names[0])};
    for (int i = 0; i < 101; i++) {
        tp_acquire_result res;
        tp_err rc = tp_acquire_async(pool, &req, never_called, NULL, &res, NULL);
        if (rc != TP_OK || res.kind != TP_ACQUIRED_PENDING)
            die("queueing an acquire", rc != TP_OK ? rc : TP_ESTATE);
        int64_t t0 = tp_clock_now();
        rc = tp_acquire_cancel(pool, res.ticket);
        t[i] = tp_clock_now() - t0;
        if (rc != TP_OK)
            die("cancel", rc);
    }
    for (long i = 0; i < per_key; i++)
        tp_conn_release(held[i], 0);
    free(held);
    qsort(t, 101, sizeof t[0], cmp_i64);
    return t[50];
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    if (argc != 3 || (keys = atol(argv[1])) < 1 || (per_key = atol(argv[2])) < 1) {
        fprintf(stderr, "usage: scale_bench KEYS CONNS_PER_KEY\n");
        return 2;
    }
    tp_allocator a = {count_malloc, count_realloc, count_free, NULL};
    if (tp_set_allocator(&a) != TP_OK)
        die("tp_set_allocator", TP_ESTATE);
    names = malloc(sizeof *names * (size_t)keys);
    if (names == NULL)
        die("memory", TP_ENOMEM);
    for (long k = 0; k < keys; k++)
        snprintf(names[k], sizeof names[k], "k%07ld", k);

    const int64_t idle_timeout = 6 * TP_NSEC_PER_SEC;
    tp_pool_options o;
    tp_pool_options_init(&o);
    o.connector = nop_connector();
    o.max_per_key = per_key;
    o.max_idle_per_key = per_key;
    o.max_total = TP_UNLIMITED;
    o.idle_timeout = idle_timeout;
    o.max_lifetime = 10 * idle_timeout;
    o.maintenance_thread = false; /* the passes measured are ours */
    tp_errinfo err;
    tp_err rc = tp_pool_create(&o, &pool, &err);
    if (rc != TP_OK) {
        fprintf(stderr, "scale_bench: %s\n", err.msg);
        return 1;
    }
    long long base = atomic_load(&live_bytes);
    fill(1);
    long long one = atomic_load(&live_bytes);
    if (per_key > 1)
        fill(per_key);
    long long all = atomic_load(&live_bytes);
    double idle = (double)keys * (double)per_key;
    double per_conn = (double)(all - base) / idle;
    double extra = per_key > 1 ? (double)(all - one) / ((double)keys * (double)(per_key - 1)) : 0;
    double per_key_bytes = (double)(one - base) / (double)keys - extra;

    double hot = ns_per_op(false), rnd = ns_per_op(true);
    /* After traffic: the histograms of every key used have seen real durations. */
    double per_conn_used = (double)(atomic_load(&live_bytes) - base) / idle;
    int64_t cancel = cancel_ns();

    pthread_t probe;
    if (pthread_create(&probe, NULL, stall_probe, NULL) != 0)
        die("a thread", TP_ESYS);
    int64_t passes_start = tp_clock_now();
    int64_t pass[21];
    for (int i = 0; i < 21; i++) {
        int64_t t = tp_clock_now();
        (void)tp_pool_maintain(pool);
        pass[i] = tp_clock_now() - t;
        usleep(2000);
    }
    int64_t stall = atomic_load(&max_stall);
    atomic_store(&max_stall, 0);
    usleep((useconds_t)((tp_clock_now() - passes_start) / 1000)); /* as long, no passes */
    int64_t quiet = atomic_load(&max_stall);
    atomic_store(&stalls_stop, true);
    pthread_join(probe, NULL);
    int64_t last_use = tp_clock_now();
    qsort(pass, 21, sizeof pass[0], cmp_i64);

    /* Every connection comes due together: the pass that closes them all. */
    int64_t wait = last_use + idle_timeout + 100 * TP_NSEC_PER_MSEC - tp_clock_now();
    if (wait > 0)
        usleep((useconds_t)(wait / 1000));
    int64_t t = tp_clock_now();
    (void)tp_pool_maintain(pool);
    int64_t expire = tp_clock_now() - t;
    tp_stats st;
    tp_pool_stats(pool, &st);

    printf("{\"tool\": \"tidepool\", \"keys\": %ld, \"conns_per_key\": %ld, \"idle\": %.0f, "
           "\"bytes_per_idle_conn\": %.0f, \"bytes_per_extra_conn\": %.0f, "
           "\"bytes_per_key\": %.0f, \"bytes_per_idle_conn_after_traffic\": %.0f, \"hot_ns\": %.1f, \"random_ns\": %.1f, "
           "\"pass_nothing_due_us\": %.1f, \"max_stall_us\": %.1f, \"max_stall_quiet_us\": %.1f, "
           "\"cancel_us\": %.2f, \"expire_all_ms\": %.2f, "
           "\"left_idle_after_expiry\": %lld}\n",
           keys, per_key, idle, per_conn, extra, per_key_bytes, per_conn_used, hot, rnd, (double)pass[10] / 1e3,
           (double)stall / 1e3, (double)quiet / 1e3, (double)cancel / 1e3, (double)expire / 1e6,
           (long long)st.idle);
    tp_pool_destroy(pool);
    free(names);
    return 0;
}
