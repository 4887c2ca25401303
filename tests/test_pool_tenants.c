/* test_pool_tenants.c: tenant quotas: a tenant never holds more leases than its quota;
 * over it, an acquire fails at once (TP_EQUOTA) or waits for one of the tenant's leases;
 * a noisy tenant cannot take a quiet one's share; quotas change live without losing
 * waiters; closing the pool wakes them; counters add up. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
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
} fx;

static int setup(void **state)
{
    fx *x = calloc(1, sizeof *x);
    if (x == NULL)
        return -1;
    fake_init(&x->f);
    tp_pool_options o;
    fake_pool_options(&x->f, &o);
    o.maintenance_thread = false;
    o.max_per_key = 8;
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

static tp_err acq(fx *x, const char *tenant, int64_t timeout, tp_conn **c)
{
    return tu_acquire_tenant(x->p, tenant, KEY("k"), timeout, 0, c, NULL);
}

static void test_quota_fails_fast(void **state)
{
    fx *x = *state;
    assert_int_equal(tp_pool_tenant_set(x->p, "a", 2, false), TP_OK);
    tp_conn *c1, *c2, *c3 = NULL;
    assert_int_equal(acq(x, "a", MS(1000), &c1), TP_OK);
    assert_int_equal(acq(x, "a", MS(1000), &c2), TP_OK);
    int64_t t0 = tu_now_ns();
    tp_errinfo e;
    assert_int_equal(tu_acquire_tenant(x->p, "a", KEY("k"), MS(1000), 0, &c3, &e), TP_EQUOTA);
    assert_true(tu_ms_since(t0) < 100); /* at once, not after the timeout */
    assert_non_null(strstr(e.msg, "\"a\""));
    assert_null(c3);
    tp_conn_release(c1, 0);
    assert_int_equal(acq(x, "a", 0, &c3), TP_OK);
    tp_tenant_stats st;
    assert_int_equal(tp_pool_tenant_stats(x->p, "a", &st), TP_OK);
    assert_int_equal(st.in_use, 2);
    assert_int_equal(st.max_in_use, 2);
    assert_int_equal(st.acquires, 3);
    assert_int_equal(st.rejects, 1);
    tp_conn_release(c2, 0);
    tp_conn_release(c3, 0);
    assert_int_equal(tp_pool_tenant_stats(x->p, "a", &st), TP_OK);
    assert_int_equal(st.in_use, 0);
}

static void test_unknown_tenant_and_bad_args(void **state)
{
    fx *x = *state;
    tp_conn *c = NULL;
    assert_int_equal(acq(x, "nobody", 0, &c), TP_EINVAL);
    assert_int_equal(tp_pool_tenant_set(x->p, "", 1, false), TP_EINVAL);
    assert_int_equal(tp_pool_tenant_set(x->p, "a", -1, false), TP_EINVAL);
    char longname[100];
    memset(longname, 'n', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    assert_int_equal(tp_pool_tenant_set(x->p, longname, 1, false), TP_EINVAL);
    /* NULL tenant: an ordinary acquire. */
    assert_int_equal(acq(x, NULL, 0, &c), TP_OK);
    tp_conn_release(c, 0);
}

typedef struct noisy {
    fx *x;
    const char *tenant;
    atomic_int *stop;
    atomic_int max_seen, held;
    int ok, quota;
} noisy;

static void *noisy_main(void *arg)
{
    noisy *n = arg;
    while (!atomic_load(n->stop)) {
        tp_conn *c = NULL;
        if (acq(n->x, n->tenant, MS(50), &c) != TP_OK)
            continue;
        int h = atomic_fetch_add(&n->held, 1) + 1;
        int m = atomic_load(&n->max_seen);
        while (h > m && !atomic_compare_exchange_weak(&n->max_seen, &m, h))
            ;
        n->ok++;
        tu_sleep_ms(1);
        atomic_fetch_sub(&n->held, 1);
        tp_conn_release(c, 0);
    }
    return NULL;
}

static void test_noisy_tenant_cannot_take_others_share(void **state)
{
    /* The key allows 8; "noisy" may hold 4 and runs 12 threads; "quiet" may hold 4 and
     * must get each of its leases promptly while the noisy one hammers. */
    fx *x = *state;
    assert_int_equal(tp_pool_tenant_set(x->p, "noisy", 4, true), TP_OK);
    assert_int_equal(tp_pool_tenant_set(x->p, "quiet", 4, true), TP_OK);
    atomic_int stop = 0;
    enum { N = 12 };
    pthread_t th[N];
    noisy nz[N];
    for (int i = 0; i < N; i++) {
        nz[i] = (noisy){.x = x, .tenant = "noisy", .stop = &stop};
        tu_thread_start(&th[i], noisy_main, &nz[i]);
    }
    tu_sleep_ms(50);
    for (int round = 0; round < 20; round++) {
        tp_conn *q[4];
        int64_t t0 = tu_now_ns();
        for (int i = 0; i < 4; i++)
            assert_int_equal(acq(x, "quiet", MS(2000), &q[i]), TP_OK);
        assert_true(tu_ms_since(t0) < 500);
        tp_tenant_stats st;
        assert_int_equal(tp_pool_tenant_stats(x->p, "noisy", &st), TP_OK);
        assert_true(st.in_use <= 4);
        for (int i = 0; i < 4; i++)
            tp_conn_release(q[i], 0);
    }
    atomic_store(&stop, 1);
    int total_ok = 0;
    for (int i = 0; i < N; i++) {
        tu_thread_join(th[i]);
        total_ok += nz[i].ok;
    }
    tp_tenant_stats st;
    assert_int_equal(tp_pool_tenant_stats(x->p, "noisy", &st), TP_OK);
    assert_int_equal(st.in_use, 0);
    assert_true(st.waits > 0);
    assert_int_equal(st.acquires, (uint64_t)total_ok);
    assert_true(tu_pool_stats(x->p).total <= 8);
}

typedef struct waiter {
    fx *x;
    tp_err rc;
    tp_conn *c;
    int64_t timeout;
} waiter;

static void *waiter_main(void *arg)
{
    waiter *w = arg;
    w->rc = acq(w->x, "a", w->timeout, &w->c);
    return NULL;
}

static int64_t tenant_waiters(fx *x, const char *name)
{
    tp_tenant_stats st;
    tp_pool_tenant_stats(x->p, name, &st);
    return st.waiters;
}

/* A thread whose last connection of the key is idle, waiting for its tenant's quota:
 * once a place frees, it takes that connection without the lock, and the lease still
 * says how long it waited (its lease info and acquire_wait); it used to say 0. */
typedef struct hinted {
    fx *x;
    atomic_int phase; /* 1: its connection is idle (its hint); 2: may acquire again */
    tp_err rc;
    tp_lease_info li;
    tp_conn *c;
} hinted;

static void *hinted_main(void *arg)
{
    hinted *h = arg;
    tp_conn *c;
    h->rc = acq(h->x, "a", MS(2000), &c);
    if (h->rc != TP_OK)
        return NULL;
    h->c = c;
    tp_conn_release(c, 0);
    atomic_store(&h->phase, 1);
    while (atomic_load(&h->phase) != 2)
        tu_sleep_ms(1);
    h->rc = acq(h->x, "a", MS(5000), &c);
    if (h->rc == TP_OK) {
        tp_conn_lease_info(c, &h->li);
        h->c = c;
        tp_conn_release(c, 0);
    }
    return NULL;
}

static void test_quota_wait_counted_on_the_lock_free_path(void **state)
{
    fx *x = *state;
    assert_int_equal(tp_pool_tenant_set(x->p, "a", 1, true), TP_OK);
    hinted h = {.x = x};
    pthread_t th;
    tu_thread_start(&th, hinted_main, &h);
    bool ok = false;
    TU_WAIT_UNTIL(ok, atomic_load(&h.phase) == 1, 2000);
    assert_true(ok);
    tp_conn *first = h.c;
    /* The tenant's one place, on another connection (FRESH: the idle one stays idle). */
    tp_conn *held;
    assert_int_equal(
        tu_acquire_tenant(x->p, "a", KEY("k"), MS(2000), TP_ACQUIRE_FRESH, &held, NULL), TP_OK);
    assert_ptr_not_equal(held, first);
    atomic_store(&h.phase, 2);
    TU_WAIT_UNTIL(ok, tenant_waiters(x, "a") == 1, 2000);
    assert_true(ok);
    tu_sleep_ms(50);
    tp_stats before;
    tu_key_stats(x->p, "k", &before);
    tp_conn_release(held, 0);
    tu_thread_join(th);
    assert_int_equal(h.rc, TP_OK);
    assert_ptr_equal(h.c, first); /* its own idle connection, through its hint */
    assert_true(h.li.reused);
    assert_true(h.li.waited_ns >= MS(40));
    tp_stats after;
    tu_key_stats(x->p, "k", &after);
    assert_int_equal(after.acquire_wait.count, before.acquire_wait.count + 1);
    assert_true(after.acquire_wait.sum_ns - before.acquire_wait.sum_ns >= (uint64_t)MS(40));
    assert_int_equal(after.acquire_wait.count, after.acquires);
}

static void test_quota_raised_live_wakes_waiters(void **state)
{
    fx *x = *state;
    assert_int_equal(tp_pool_tenant_set(x->p, "a", 1, true), TP_OK);
    tp_conn *held;
    assert_int_equal(acq(x, "a", 0, &held), TP_OK);
    enum { N = 3 };
    waiter w[N];
    pthread_t th[N];
    for (int i = 0; i < N; i++) {
        w[i] = (waiter){.x = x, .timeout = MS(5000)};
        tu_thread_start(&th[i], waiter_main, &w[i]);
    }
    bool ok = false;
    TU_WAIT_UNTIL(ok, tenant_waiters(x, "a") == N, 2000);
    assert_true(ok);
    int64_t t0 = tu_now_ns();
    assert_int_equal(tp_pool_tenant_set(x->p, "a", 1 + N, true), TP_OK);
    for (int i = 0; i < N; i++) {
        tu_thread_join(th[i]);
        assert_int_equal(w[i].rc, TP_OK);
    }
    assert_true(tu_ms_since(t0) < 1000);
    for (int i = 0; i < N; i++)
        tp_conn_release(w[i].c, 0);
    tp_conn_release(held, 0);
}

static void test_waiter_served_by_release_and_times_out(void **state)
{
    fx *x = *state;
    assert_int_equal(tp_pool_tenant_set(x->p, "a", 1, true), TP_OK);
    tp_conn *held;
    assert_int_equal(acq(x, "a", 0, &held), TP_OK);
    /* Times out over quota: TP_EQUOTA after about the timeout. */
    tp_conn *c = NULL;
    int64_t t0 = tu_now_ns();
    assert_int_equal(acq(x, "a", MS(100), &c), TP_EQUOTA);
    double ms = tu_ms_since(t0);
    assert_true(ms >= 95 && ms < 1000);
    /* Served when the tenant's lease ends. */
    waiter w = {.x = x, .timeout = MS(5000)};
    pthread_t th;
    tu_thread_start(&th, waiter_main, &w);
    bool ok = false;
    TU_WAIT_UNTIL(ok, tenant_waiters(x, "a") == 1, 2000);
    assert_true(ok);
    tp_conn_release(held, 0);
    tu_thread_join(th);
    assert_int_equal(w.rc, TP_OK);
    tp_conn_release(w.c, 0);
}

static void test_close_wakes_tenant_waiters(void **state)
{
    fx *x = *state;
    assert_int_equal(tp_pool_tenant_set(x->p, "a", 1, true), TP_OK);
    tp_conn *held;
    assert_int_equal(acq(x, "a", 0, &held), TP_OK);
    waiter w = {.x = x, .timeout = MS(10000)};
    pthread_t th;
    tu_thread_start(&th, waiter_main, &w);
    bool ok = false;
    TU_WAIT_UNTIL(ok, tenant_waiters(x, "a") == 1, 2000);
    assert_true(ok);
    int64_t t0 = tu_now_ns();
    tp_pool_close(x->p);
    tu_thread_join(th);
    assert_int_equal(w.rc, TP_ECLOSED);
    assert_true(tu_ms_since(t0) < 1000);
    tp_conn_release(held, 0);
}

static void visit(void *ud, const char *name, const tp_tenant_stats *st)
{
    int *n = ud;
    if (strcmp(name, "a") == 0 || strcmp(name, "b") == 0)
        (*n)++;
    assert_true(st->in_use >= 0);
}

static void test_visit(void **state)
{
    fx *x = *state;
    assert_int_equal(tp_pool_tenant_set(x->p, "a", 1, false), TP_OK);
    assert_int_equal(tp_pool_tenant_set(x->p, "b", TP_UNLIMITED, false), TP_OK);
    int n = 0;
    tp_pool_tenant_visit(x->p, visit, &n);
    assert_int_equal(n, 2);
}

int main(void)
{
    tu_watchdog(60);
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_quota_fails_fast),
        T(test_unknown_tenant_and_bad_args),
        T(test_noisy_tenant_cannot_take_others_share),
        T(test_quota_raised_live_wakes_waiters),
        T(test_waiter_served_by_release_and_times_out),
        T(test_quota_wait_counted_on_the_lock_free_path),
        T(test_close_wakes_tenant_waiters),
        T(test_visit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
