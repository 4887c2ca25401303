/* test_pool_adaptive.c: the adaptive limit applied by the pool: a key's leases plus opens
 * never exceed the controller's limit (below max_per_key), the limit follows the hold
 * times the pool measures (down when leases get slower), drops reported on release back
 * it off, waiters held back by the limit are served as leases end, running out of
 * ephemeral ports caps the limit at the connections held, and the options are
 * validated. */
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

static int setup(void **state)
{
    fx *x = calloc(1, sizeof *x);
    if (x == NULL)
        return -1;
    fake_init(&x->f);
    tp_adapt_options_init(&x->ao);
    x->ao.min_limit = 2;
    x->ao.initial_limit = 16;
    x->ao.max_limit = 32;
    tp_pool_options o;
    fake_pool_options(&x->f, &o);
    o.max_per_key = 64;
    o.adaptive = &x->ao;
    x->p = tu_pool_create(&o);
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

static int64_t limit_of(fx *x)
{
    tp_stats st;
    tu_key_stats(x->p, "k", &st);
    return st.adaptive_limit;
}

static void test_limit_caps_leases(void **state)
{
    fx *x = *state;
    tp_conn *c[64];
    int n = 0;
    /* Start-up probe: the limit starts at max(3, initial/4) = 4, far below max_per_key. */
    while (n < 64 && tp_pool_acquire(x->p, KEY("k"), 0, &c[n], NULL) == TP_OK)
        n++;
    int64_t l = limit_of(x);
    print_message("leases granted %d, adaptive limit %lld\n", n, (long long)l);
    assert_true(l >= 2 && l <= 32);
    assert_int_equal(n, l);
    tp_conn *more = NULL;
    assert_int_equal(tp_pool_acquire(x->p, KEY("k"), MS(30), &more, NULL), TP_ETIMEDOUT);
    assert_int_equal(tu_try(x->p, KEY("k"), &more), TP_EAGAIN);
    tp_conn_release(c[--n], 0);
    assert_int_equal(tp_pool_acquire(x->p, KEY("k"), 0, &more, NULL), TP_OK);
    tp_conn_release(more, 0);
    while (n > 0)
        tp_conn_release(c[--n], 0);
}

typedef struct load {
    fx *x;
    atomic_int *stop;
    atomic_int *hold_ms;
} load;

static void *load_main(void *arg)
{
    load *l = arg;
    while (!atomic_load(l->stop)) {
        tp_conn *c = NULL;
        if (tp_pool_acquire(l->x->p, KEY("k"), MS(2000), &c, NULL) != TP_OK)
            continue;
        tu_sleep_ms(atomic_load(l->hold_ms));
        tp_conn_release(c, 0);
    }
    return NULL;
}

static void test_limit_follows_latency(void **state)
{
    fx *x = *state;
    atomic_int stop = 0, hold = 1;
    enum { T = 24 };
    pthread_t th[T];
    load ld[T];
    for (int i = 0; i < T; i++) {
        ld[i] = (load){.x = x, .stop = &stop, .hold_ms = &hold};
        tu_thread_start(&th[i], load_main, &ld[i]);
    }
    tu_sleep_ms(2500);
    int64_t fast = limit_of(x);
    atomic_store(&hold, 12); /* the "server" got 12x slower */
    tu_sleep_ms(2000);
    /* A limit that drops does not take leases away, but no new lease starts above it:
     * sampled over the last second, leases stay within the limit nearly always. */
    int samples = 0, within = 0;
    for (int64_t t0 = tu_now_ns(); tu_ms_since(t0) < 1000; tu_sleep_ms(5)) {
        tp_stats st;
        tu_key_stats(x->p, "k", &st);
        samples++;
        within += st.in_use + st.opening <= st.adaptive_limit;
    }
    int64_t slow = limit_of(x);
    atomic_store(&stop, 1);
    for (int i = 0; i < T; i++)
        tu_thread_join(th[i]);
    print_message("leases within the limit in %d of %d samples\n", within, samples);
    print_message("limit with 1 ms holds: %lld; with 12 ms holds: %lld\n", (long long)fast,
                  (long long)slow);
    assert_true(fast >= 2 && fast <= 32);
    assert_true(slow >= 2 && slow <= 32);
    assert_true(slow < fast);
    assert_true(within * 10 >= samples * 9);
    assert_true(tu_pool_stats(x->p).total <= 32);
}

/* Without a maintenance thread, only releases serve waiters: when a release grows the
 * limit, every waiter the larger limit admits must be served then, not just the one the
 * ending lease frees, or the leases out would stay at the start-up probe's size. */
static void test_growth_serves_waiters_at_once(void **state)
{
    fx *x = *state;
    tp_pool_destroy(x->p);
    tp_pool_options o;
    fake_pool_options(&x->f, &o);
    o.max_per_key = 64;
    o.adaptive = &x->ao;
    o.maintenance_thread = false;
    x->p = tu_pool_create(&o);
    atomic_int stop = 0, hold = 2;
    enum { T = 24 };
    pthread_t th[T];
    load ld[T];
    for (int i = 0; i < T; i++) {
        ld[i] = (load){.x = x, .stop = &stop, .hold_ms = &hold};
        tu_thread_start(&th[i], load_main, &ld[i]);
    }
    tu_sleep_ms(2000);
    int64_t most = 0, limit = 0;
    for (int64_t t0 = tu_now_ns(); tu_ms_since(t0) < 500; tu_sleep_ms(5)) {
        tp_stats st;
        tu_key_stats(x->p, "k", &st);
        most = st.in_use > most ? st.in_use : most;
        limit = st.adaptive_limit;
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < T; i++)
        tu_thread_join(th[i]);
    print_message("limit %lld, most leases out %lld (probe size 4)\n", (long long)limit,
                  (long long)most);
    assert_true(limit > 4);
    assert_true(most > 4);
    assert_true(most * 2 >= limit);
}

static void test_drops_back_off(void **state)
{
    fx *x = *state;
    /* Finish the start-up probe with quick leases, then report drops. */
    for (int i = 0; i < 80; i++) {
        tp_conn *c = tu_acquire(x->p, "k", MS(1000));
        tp_conn_release(c, 0);
    }
    tu_sleep_ms(120);
    tp_pool_maintain(x->p);
    int64_t before = limit_of(x);
    for (int round = 0; round < 6; round++) {
        for (int i = 0; i < 12; i++) {
            tp_conn *c = tu_acquire(x->p, "k", MS(1000));
            tp_conn_release(c, TP_RELEASE_DROPPED); /* kept, but a capacity failure */
        }
        tu_sleep_ms(120);
        tp_pool_maintain(x->p);
    }
    int64_t after = limit_of(x);
    print_message("limit before drops %lld, after %lld\n", (long long)before, (long long)after);
    assert_true(after < before);
    assert_true(after >= 2);
    /* Dropped leases keep their connection. */
    assert_int_equal(tu_pool_stats(x->p).closes[TP_CLOSE_DISCARDED], 0);
}

static void test_ports_exhausted_caps_limit(void **state)
{
    fx *x = *state;
    /* Three leases under the start-up limit (4), then the destination's ports run out. */
    tp_conn *c[3];
    for (int i = 0; i < 3; i++)
        c[i] = tu_acquire(x->p, "k", MS(1000));
    int64_t before = limit_of(x);
    assert_true(before >= 4);
    fake_fail_next(&x->f, 1, TP_EPORTS);
    tp_conn *more = NULL;
    tp_errinfo e;
    /* No port for a fourth connection: the acquire waits for one of the three (none comes
     * back here), and its timeout names the open's error. */
    assert_int_equal(tp_pool_acquire(x->p, KEY("k"), MS(100), &more, &e), TP_ETIMEDOUT);
    assert_non_null(strstr(e.msg, "last open error"));
    assert_int_equal(atomic_load(&x->f.open_calls), 4);
    /* The key can have what it holds and no more: a fourth lease waits for one of the
     * three instead of dialing into EADDRNOTAVAIL again. */
    assert_int_equal(limit_of(x), 3);
    tu_sleep_ms(30); /* past the open failure's backoff */
    tp_pool_maintain(x->p);
    assert_int_equal(limit_of(x), 3); /* held for the TIME_WAIT period, not one tick */
    uint64_t calls = atomic_load(&x->f.open_calls);
    assert_int_equal(tp_pool_acquire(x->p, KEY("k"), MS(40), &more, NULL), TP_ETIMEDOUT);
    assert_int_equal(atomic_load(&x->f.open_calls), calls);
    tp_conn_release(c[2], 0);
    assert_int_equal(tp_pool_acquire(x->p, KEY("k"), MS(1000), &more, NULL), TP_OK);
    assert_int_equal(atomic_load(&x->f.open_calls), calls); /* the released one, reused */
    tp_conn_release(more, 0);
    tp_conn_release(c[1], 0);
    tp_conn_release(c[0], 0);
}

static void test_invalid_adaptive_options(void **state)
{
    fx *x = *state;
    tp_adapt_options bad;
    tp_adapt_options_init(&bad);
    bad.min_limit = 0;
    tp_pool_options o;
    fake_pool_options(&x->f, &o);
    o.adaptive = &bad;
    tp_pool *p = NULL;
    tp_errinfo e;
    assert_int_equal(tp_pool_create(&o, &p, &e), TP_EINVAL);
    assert_null(p);
    assert_non_null(strstr(e.msg, "min_limit"));
}

int main(void)
{
    tu_watchdog(90);
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_limit_caps_leases),
        T(test_limit_follows_latency),
        T(test_growth_serves_waiters_at_once),
        T(test_drops_back_off),
        T(test_ports_exhausted_caps_limit),
        T(test_invalid_adaptive_options),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
