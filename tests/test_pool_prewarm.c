/* test_pool_prewarm.c: opening ahead of need (prewarm_waiters). Under an adaptive limit
 * with acquires queued beyond the bound, maintenance opens idle spares, and while it
 * does, sampled continuously: a key never holds more than max_per_key connections, idle
 * ones never exceed max_idle_per_key, the pool never exceeds max_total, leases stay
 * within the adaptive limit (prewarm opens are not leases), another key's idle
 * connections are never closed to make room, nothing opens during a backoff, and
 * prewarming is off by default. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <tidepool/tidepool.h>

#include "support/fake_connector.h"
#include "support/test_util.h"

typedef struct fx {
    fake_connector f;
    tp_pool *p;
    tp_adapt_options ao;
} fx;

/* A pool whose key "hot" is held back by its adaptive limit (at most 6 leases) far below
 * max_per_key, so waiters queue while there is room for spares. */
static tp_pool *make_pool(fx *x, int64_t prewarm_waiters, int64_t max_total)
{
    tp_adapt_options_init(&x->ao);
    x->ao.min_limit = 3;
    x->ao.initial_limit = 6;
    x->ao.max_limit = 6;
    tp_pool_options o;
    fake_pool_options(&x->f, &o);
    o.max_per_key = 12;
    o.max_idle_per_key = 10;
    o.max_total = max_total;
    o.adaptive = &x->ao;
    o.prewarm_waiters = prewarm_waiters;
    o.maintenance_interval = 20 * TP_NSEC_PER_MSEC;
    return tu_pool_create(&o);
}

static int setup(void **state)
{
    fx *x = calloc(1, sizeof *x);
    if (x == NULL)
        return -1;
    fake_init(&x->f);
    *state = x;
    return 0;
}

static int teardown(void **state)
{
    fx *x = *state;
    tp_pool_destroy(x->p);
    fake_destroy(&x->f);
    free(x);
    return 0;
}

typedef struct load {
    fx *x;
    atomic_int *stop;
} load;

static void *load_main(void *arg)
{
    load *l = arg;
    while (!atomic_load(l->stop)) {
        tp_conn *c = NULL;
        if (tp_pool_acquire(l->x->p, KEY("hot"), MS(2000), &c, NULL) != TP_OK)
            continue;
        tu_sleep_ms(3);
        tp_conn_release(c, 0);
    }
    return NULL;
}

typedef struct observed {
    int64_t max_key_total, max_idle, max_pool_total, max_idle_while_waiting;
    int samples, leases_within;
} observed;

/* Runs T threads on "hot" for ms while sampling every limit. */
static observed run_load(fx *x, int ms)
{
    enum { T = 20 };
    atomic_int stop = 0;
    pthread_t th[T];
    load ld[T];
    for (int i = 0; i < T; i++) {
        ld[i] = (load){.x = x, .stop = &stop};
        tu_thread_start(&th[i], load_main, &ld[i]);
    }
    observed ob = {0};
    for (int64_t t0 = tu_now_ns(); tu_ms_since(t0) < ms; tu_sleep_ms(1)) {
        tp_stats k, all;
        if (tp_pool_key_stats(x->p, KEY("hot"), &k) != TP_OK)
            continue; /* not yet created, or reclaimed while empty (failing opens) */
        tp_pool_stats(x->p, &all);
        ob.samples++;
        ob.leases_within += k.in_use <= k.adaptive_limit;
        ob.max_key_total = k.total > ob.max_key_total ? k.total : ob.max_key_total;
        ob.max_idle = k.idle > ob.max_idle ? k.idle : ob.max_idle;
        ob.max_pool_total = all.total > ob.max_pool_total ? all.total : ob.max_pool_total;
        if (k.waiters > 0 && k.idle > ob.max_idle_while_waiting)
            ob.max_idle_while_waiting = k.idle;
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < T; i++)
        tu_thread_join(th[i]);
    return ob;
}

static void test_prewarm_opens_spares_within_limits(void **state)
{
    fx *x = *state;
    x->p = make_pool(x, 2, TP_UNLIMITED);
    observed ob = run_load(x, 1500);
    tp_stats st = tu_pool_stats(x->p);
    print_message("prewarms %llu, opens %llu; most connections %lld (max_per_key 12), most idle "
                  "%lld, idle while waiters queued %lld; leases within the limit in %d of %d\n",
                  (unsigned long long)st.prewarms, (unsigned long long)st.opens,
                  (long long)ob.max_key_total, (long long)ob.max_idle,
                  (long long)ob.max_idle_while_waiting, ob.leases_within, ob.samples);
    assert_true(st.prewarms >= 1);
    assert_true(st.opens > 6); /* spares beyond the at most 6 leases */
    assert_true(ob.max_idle_while_waiting >= 1);
    assert_true(ob.max_key_total <= 12);
    assert_true(ob.max_idle <= 10);
    /* Spares are at most one limit's worth: leases (<= 6) plus spares (<= 6). */
    assert_true(st.opens <= 12 + st.closes[TP_CLOSE_IDLE_TIMEOUT] + st.closes[TP_CLOSE_LIFETIME]);
    assert_true(ob.leases_within * 10 >= ob.samples * 9);
    assert_int_equal(st.open_failures, 0);
}

static void test_prewarm_respects_max_total(void **state)
{
    fx *x = *state;
    x->p = make_pool(x, 1, 9);
    /* Another key parks 2 idle connections; prewarming "hot" must not close them. */
    tp_conn *c1 = tu_acquire(x->p, "cold", MS(1000));
    tp_conn *c2 = tu_acquire(x->p, "cold", MS(1000));
    tp_conn_release(c1, 0);
    tp_conn_release(c2, 0);
    observed ob = run_load(x, 1000);
    tp_stats cold;
    tu_key_stats(x->p, "cold", &cold);
    tp_stats st = tu_pool_stats(x->p);
    print_message("pool at most %lld connections (max_total 9), cold idle %lld, prewarms %llu\n",
                  (long long)ob.max_pool_total, (long long)cold.idle,
                  (unsigned long long)st.prewarms);
    assert_true(ob.max_pool_total <= 9);
    assert_int_equal(cold.idle, 2);
    assert_int_equal(cold.closes[TP_CLOSE_IDLE_OVERFLOW], 0);
    assert_true(st.prewarms >= 1); /* room for 1 spare: 9 - 2 cold - 6 leases */
}

static void test_prewarm_off_by_default(void **state)
{
    fx *x = *state;
    tp_pool_options o;
    tp_pool_options_init(&o);
    assert_true(o.prewarm_waiters == TP_UNLIMITED);
    x->p = make_pool(x, TP_UNLIMITED, TP_UNLIMITED);
    (void)run_load(x, 500);
    tp_stats st = tu_pool_stats(x->p);
    assert_int_equal(st.prewarms, 0);
    assert_true(st.opens <= 6); /* only what the leases needed */
}

static void test_no_prewarm_into_backoff(void **state)
{
    fx *x = *state;
    x->p = make_pool(x, 0, TP_UNLIMITED);
    /* Every open fails: waiters see the failure, the key backs off and its breaker opens;
     * maintenance must not open ahead of them. */
    fake_fail_all(&x->f, TP_ECONNREFUSED);
    (void)run_load(x, 400);
    tp_stats st = tu_pool_stats(x->p);
    uint64_t calls = atomic_load(&x->f.open_calls);
    print_message("open calls %llu, failures %llu, prewarms %llu\n", (unsigned long long)calls,
                  (unsigned long long)st.open_failures, (unsigned long long)st.prewarms);
    /* A failing key opens one connection at a time, paced (a quarter of the streak's
     * age, at least 10 ms, at random half to all of it): about 25 in 400 ms, never a
     * prewarm among them. */
    assert_int_equal(st.prewarms, 0);
    assert_true(calls <= 45);
    assert_int_equal(st.total, 0);
}

static void test_invalid_prewarm_option(void **state)
{
    fx *x = *state;
    tp_pool_options o;
    fake_pool_options(&x->f, &o);
    o.prewarm_waiters = -3;
    tp_pool *p = NULL;
    tp_errinfo e;
    assert_int_equal(tp_pool_create(&o, &p, &e), TP_EINVAL);
    assert_null(p);
    assert_non_null(strstr(e.msg, "prewarm_waiters"));
}

int main(void)
{
    tu_watchdog(90);
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_prewarm_opens_spares_within_limits),
        T(test_prewarm_respects_max_total),
        T(test_prewarm_off_by_default),
        T(test_no_prewarm_into_backoff),
        T(test_invalid_prewarm_option),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
