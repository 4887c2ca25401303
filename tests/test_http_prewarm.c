/* test_http_prewarm.c: prewarming over real loopback TCP. The HTTP client, with the
 * adaptive limit and prewarm_waiters on, loads the built-in benchmark server (4 workers
 * of 3 ms, so leases queue at the client); sampled throughout, the destination never
 * holds more than max_per_key connections nor more idle than max_idle_per_key, the pool
 * never more than max_total, spares are opened ahead of need, and every request
 * succeeds. */
#include <pthread.h>
#include <stdatomic.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <tidepool/tidepool.h>

#include "../tools/bench_server.h"
#include "support/test_util.h"

typedef struct load {
    tp_http_client *client;
    const char *url;
    atomic_int *stop;
    atomic_int failures;
    atomic_int ok;
} load;

static void *load_main(void *arg)
{
    load *l = arg;
    while (!atomic_load(l->stop)) {
        tp_http_response *r = NULL;
        tp_errinfo e;
        if (tp_http_get(l->client, l->url, &r, &e) != TP_OK) {
            atomic_fetch_add(&l->failures, 1);
            continue;
        }
        if (tp_http_response_status(r) == 200)
            atomic_fetch_add(&l->ok, 1);
        else
            atomic_fetch_add(&l->failures, 1);
        tp_http_response_free(r);
    }
    return NULL;
}

static void max_of(int64_t *m, int64_t v)
{
    if (v > *m)
        *m = v;
}

typedef struct sampled {
    int64_t key_total, idle, pool_total;
} sampled;

static void on_key(void *ud, const void *key, size_t keylen, const tp_stats *st)
{
    (void)key;
    (void)keylen;
    sampled *s = ud;
    max_of(&s->key_total, st->total);
    max_of(&s->idle, st->idle);
}

static void test_prewarm_over_loopback_within_limits(void **state)
{
    (void)state;
    bench_server_options so;
    bench_server_options_init(&so);
    so.workers = 4;
    so.service_us = 3000;
    uint16_t port = 0;
    assert_int_equal(bench_server_start_ex(&so, &port), 0);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/", (unsigned)port);

    tp_adapt_options ao;
    tp_adapt_options_init(&ao);
    ao.min_limit = 2;
    ao.initial_limit = 6;
    ao.max_limit = 6;
    tp_http_client_options ho;
    tp_http_client_options_init(&ho);
    ho.pool.max_per_key = 10;
    ho.pool.max_idle_per_key = 8;
    ho.pool.max_total = 10;
    ho.pool.adaptive = &ao;
    ho.pool.prewarm_waiters = 1;
    ho.pool.maintenance_interval = 20 * TP_NSEC_PER_MSEC;
    tp_http_client *client = NULL;
    tp_errinfo e;
    assert_int_equal(tp_http_client_create(&ho, &client, &e), TP_OK);
    tp_pool *pool = tp_http_client_pool(client);

    enum { T = 16 };
    atomic_int stop = 0;
    load l = {.client = client, .url = url, .stop = &stop};
    pthread_t th[T];
    for (int i = 0; i < T; i++)
        tu_thread_start(&th[i], load_main, &l);
    sampled s = {0, 0, 0};
    for (int64_t t0 = tu_now_ns(); tu_ms_since(t0) < 1500; tu_sleep_ms(2)) {
        tp_pool_key_visit(pool, on_key, &s);
        max_of(&s.pool_total, tu_pool_stats(pool).total);
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < T; i++)
        tu_thread_join(th[i]);
    tp_stats st = tu_pool_stats(pool);
    print_message("requests %d ok, %d failed; prewarms %llu, opens %llu; most connections %lld "
                  "(limit 10), most idle %lld (limit 8)\n",
                  atomic_load(&l.ok), atomic_load(&l.failures),
                  (unsigned long long)st.prewarms, (unsigned long long)st.opens,
                  (long long)s.key_total, (long long)s.idle);
    assert_int_equal(atomic_load(&l.failures), 0);
    assert_true(atomic_load(&l.ok) > 100);
    assert_true(st.prewarms >= 1);
    assert_true(s.key_total <= 10);
    assert_true(s.pool_total <= 10);
    assert_true(s.idle <= 8);
    assert_int_equal(st.open_failures, 0);
    tp_http_client_destroy(client);
    bench_server_stop();
}

int main(void)
{
    tu_watchdog(60);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prewarm_over_loopback_within_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
