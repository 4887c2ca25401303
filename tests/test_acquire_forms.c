/* test_acquire_forms.c (label: concurrency): every form of acquire decides alike (one
 * decision step): the asynchronous form with a tenant (waits in the tenant's queue, is
 * served when a place frees, times out with TP_EQUOTA, fails fast, can be cancelled, is
 * failed by close), a TP_ACQUIRE_FRESH waiter never handed a reused connection, the
 * idle-only form, and one wording of a timeout whichever form ran out. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <tidepool/tidepool.h>

#include "support/fake_connector.h"
#include "support/pool_fixture.h"
#include "support/test_util.h"

typedef pool_fx fx;

/* What one asynchronous acquire's callback saw. */
typedef struct cb_rec {
    atomic_int calls;
    _Atomic int status;
    _Atomic int kind;
    _Atomic(tp_conn *) conn;
    char msg[TP_ERRMSG_SIZE];
} cb_rec;

static void on_done(void *ud, tp_err status, tp_acquired kind, tp_conn *conn, const tp_errinfo *err)
{
    cb_rec *r = ud;
    if (err != NULL)
        snprintf(r->msg, sizeof r->msg, "%s", err->msg);
    atomic_store(&r->status, status);
    atomic_store(&r->kind, kind);
    atomic_store(&r->conn, conn);
    atomic_fetch_add(&r->calls, 1);
}

static tp_pool *make_pool(fx *x, int64_t max_per_key)
{
    tp_pool_options o;
    pool_fx_options(x, &o);
    o.max_per_key = max_per_key;
    o.max_idle_per_key = max_per_key;
    return x->p = tu_pool_create(&o);
}

static int async_for(fx *x, const char *tenant, int64_t timeout, unsigned flags, cb_rec *r,
                     tp_conn **out, uint64_t *ticket)
{
    tp_acquire_req req = tp_acquire_req_for(KEY("k"), timeout, flags);
    req.tenant = tenant;
    tp_acquire_result res;
    tp_err rc = tp_acquire_async(x->p, &req, on_done, r, &res, NULL);
    if (out != NULL)
        *out = rc == TP_OK ? res.conn : NULL;
    if (ticket != NULL)
        *ticket = rc == TP_OK ? res.ticket : 0;
    return rc != TP_OK ? (int)rc : (int)res.kind;
}

static tp_tenant_stats tenant(fx *x, const char *name)
{
    tp_tenant_stats st;
    assert_int_equal(tp_pool_tenant_stats(x->p, name, &st), TP_OK);
    return st;
}

static void test_async_tenant_waits_for_a_place(void **state)
{
    fx *x = *state;
    make_pool(x, 8);
    assert_int_equal(tp_pool_tenant_set(x->p, "a", 1, true), TP_OK);
    tp_conn *held = NULL, *c = NULL;
    assert_int_equal(tu_acquire_tenant(x->p, "a", KEY("k"), MS(1000), 0, &held, NULL), TP_OK);
    cb_rec r = {0};
    uint64_t ticket = 0;
    /* The key has room for seven more: only the quota holds this one back. */
    assert_int_equal(async_for(x, "a", MS(5000), 0, &r, &c, &ticket), TP_ACQUIRED_PENDING);
    assert_true(ticket != 0);
    assert_int_equal(tenant(x, "a").waiters, 1);
    assert_int_equal(tenant(x, "a").waits, 1);
    assert_int_equal(atomic_load(&r.calls), 0);
    /* Its place goes to the queued request, which the key has room to open for (on a
     * worker: the place is given back before the connection itself is idle). */
    tp_conn_release(held, 0);
    bool done = false;
    TU_WAIT_UNTIL(done, atomic_load(&r.calls) == 1, 3000);
    assert_true(done);
    assert_int_equal(atomic_load(&r.status), TP_OK);
    assert_int_equal(atomic_load(&r.kind), TP_ACQUIRED_LEASE);
    tp_conn *got = atomic_load(&r.conn);
    assert_non_null(got);
    tp_tenant_stats st = tenant(x, "a");
    assert_int_equal(st.in_use, 1);
    assert_int_equal(st.waiters, 0);
    assert_int_equal(st.acquires, 2);
    tp_conn_release(got, 0);
    assert_int_equal(tenant(x, "a").in_use, 0);
}

static void test_async_tenant_times_out_and_fails_fast(void **state)
{
    fx *x = *state;
    make_pool(x, 8);
    assert_int_equal(tp_pool_tenant_set(x->p, "a", 1, true), TP_OK);
    tp_conn *held = NULL;
    assert_int_equal(tu_acquire_tenant(x->p, "a", KEY("k"), MS(1000), 0, &held, NULL), TP_OK);
    cb_rec r = {0};
    assert_int_equal(async_for(x, "a", MS(30), 0, &r, NULL, NULL), TP_ACQUIRED_PENDING);
    tu_sleep_ms(40);
    (void)tp_pool_maintain(x->p); /* the pass that fails requests past their deadline */
    assert_int_equal(atomic_load(&r.calls), 1);
    assert_int_equal(atomic_load(&r.status), TP_EQUOTA);
    assert_null(atomic_load(&r.conn));
    assert_non_null(strstr(r.msg, "tenant \"a\" holds 1 of its 1 leases"));
    assert_int_equal(tenant(x, "a").rejects, 1);
    assert_int_equal(tenant(x, "a").in_use, 1); /* the held lease's only */
    /* A tenant that does not wait: at once, and the callback never runs. */
    assert_int_equal(tp_pool_tenant_set(x->p, "a", 1, false), TP_OK);
    cb_rec r2 = {0};
    int64_t t0 = tu_now_ns();
    assert_int_equal(async_for(x, "a", MS(5000), 0, &r2, NULL, NULL), TP_EQUOTA);
    assert_true(tu_ms_since(t0) < 100);
    assert_int_equal(atomic_load(&r2.calls), 0);
    tp_conn_release(held, 0);
    assert_int_equal(tenant(x, "a").in_use, 0);
    assert_int_equal(atomic_load(&r.calls), 1); /* exactly once */
}

static void test_async_tenant_cancel_and_close(void **state)
{
    fx *x = *state;
    make_pool(x, 8);
    assert_int_equal(tp_pool_tenant_set(x->p, "a", 1, true), TP_OK);
    tp_conn *held = NULL;
    assert_int_equal(tu_acquire_tenant(x->p, "a", KEY("k"), MS(1000), 0, &held, NULL), TP_OK);
    cb_rec r = {0}, r2 = {0};
    uint64_t ticket = 0;
    assert_int_equal(async_for(x, "a", MS(5000), 0, &r, NULL, &ticket), TP_ACQUIRED_PENDING);
    assert_int_equal(tp_acquire_cancel(x->p, ticket), TP_OK);
    assert_int_equal(tp_acquire_cancel(x->p, ticket), TP_ESTATE);
    assert_int_equal(tenant(x, "a").waiters, 0);
    assert_int_equal(async_for(x, "a", MS(5000), 0, &r2, NULL, NULL), TP_ACQUIRED_PENDING);
    tp_pool_close(x->p);
    assert_int_equal(atomic_load(&r2.calls), 1);
    assert_int_equal(atomic_load(&r2.status), TP_ECLOSED);
    tp_conn_release(held, 0);
    assert_int_equal(atomic_load(&r.calls), 0); /* cancelled: never called */
    assert_int_equal(tenant(x, "a").in_use, 0);
}

/* A request on behalf of a tenant whose key is full queues on the key with its place
 * held; the place goes back if the request fails there. */
static void test_async_tenant_place_returns_on_key_timeout(void **state)
{
    fx *x = *state;
    make_pool(x, 1);
    assert_int_equal(tp_pool_tenant_set(x->p, "a", 4, true), TP_OK);
    tp_conn *held = tu_acquire(x->p, "k", MS(1000)); /* no tenant: fills the key */
    cb_rec r = {0};
    assert_int_equal(async_for(x, "a", MS(30), 0, &r, NULL, NULL), TP_ACQUIRED_PENDING);
    assert_int_equal(tenant(x, "a").in_use, 1); /* the queued request holds its place */
    tu_sleep_ms(40);
    (void)tp_pool_maintain(x->p);
    assert_int_equal(atomic_load(&r.calls), 1);
    assert_int_equal(atomic_load(&r.status), TP_ETIMEDOUT);
    assert_int_equal(tenant(x, "a").in_use, 0);
    tp_conn_release(held, 0);
}

/* Regression: a release handed its connection straight to a queued TP_ACQUIRE_FRESH
 * request, the very reuse the flag exists to avoid (a retry after a reused connection
 * failed). Now the connection goes idle and the request gets a new one. */
static void test_fresh_waiter_never_gets_a_reused_connection(void **state)
{
    fx *x = *state;
    make_pool(x, 1);
    tp_conn *held = tu_acquire(x->p, "k", MS(1000));
    uint64_t held_id = fake_of(held)->id;
    cb_rec r = {0};
    assert_int_equal(async_for(x, NULL, MS(5000), TP_ACQUIRE_FRESH, &r, NULL, NULL),
                     TP_ACQUIRED_PENDING);
    tp_conn_release(held, 0);
    bool done = false;
    TU_WAIT_UNTIL(done, atomic_load(&r.calls) == 1, 3000); /* opened on a worker */
    assert_true(done);
    assert_int_equal(atomic_load(&r.status), TP_OK);
    tp_conn *got = atomic_load(&r.conn);
    assert_true(fake_of(got)->id != held_id);
    assert_int_equal(atomic_load(&x->f.close_reasons[TP_CLOSE_IDLE_OVERFLOW]), 1);
    tp_conn_release(got, 0);

    /* The blocking form likewise. */
    held = tu_acquire(x->p, "k", MS(1000));
    held_id = fake_of(held)->id;
    tu_acq_job job = {.p = x->p, .key = "k", .timeout = MS(5000), .flags = TP_ACQUIRE_FRESH};
    pthread_t t;
    tu_thread_start(&t, tu_acquire_thread, &job);
    bool queued = false;
    TU_WAIT_UNTIL(queued, tu_key_waiters(x->p, "k") == 1, 2000);
    assert_true(queued);
    tp_conn_release(held, 0);
    tu_thread_join(t);
    assert_int_equal(job.result, TP_OK);
    assert_true(fake_of(job.conn)->id != held_id);
    tp_conn_release(job.conn, 0);
}

static void test_idle_only_never_dials_nor_makes_keys(void **state)
{
    fx *x = *state;
    make_pool(x, 2);
    tp_conn *c = NULL;
    assert_int_equal(tu_try(x->p, KEY("unseen"), &c), TP_EAGAIN);
    assert_null(c);
    tp_stats st;
    assert_int_equal(tp_pool_key_stats(x->p, KEY("unseen"), &st), TP_EINVAL); /* not made */
    tp_conn *a = tu_acquire(x->p, "k", MS(1000));
    assert_int_equal(tu_try(x->p, KEY("k"), &c), TP_EAGAIN); /* room to dial: not its job */
    assert_int_equal(atomic_load(&x->f.open_calls), 1);
    tp_conn_release(a, 0);
    assert_int_equal(tu_try(x->p, KEY("k"), &c), TP_OK);
    assert_ptr_equal(c, a);
    tp_conn_release(c, 0);
    tu_key_stats(x->p, "k", &st);
    assert_int_equal(st.timeouts, 0); /* a miss is not a timeout */
}

/* One wording of a timeout, whichever form ran out of time. */
static void test_timeouts_read_alike(void **state)
{
    fx *x = *state;
    make_pool(x, 1);
    tp_conn *held = tu_acquire(x->p, "k", MS(1000));
    tp_conn *c = NULL;
    tp_errinfo e;
    assert_int_equal(tu_acquire_ex(x->p, KEY("k"), MS(20), 0, &c, &e), TP_ETIMEDOUT);
    cb_rec r = {0};
    assert_int_equal(async_for(x, NULL, MS(20), 0, &r, NULL, NULL), TP_ACQUIRED_PENDING);
    tu_sleep_ms(30);
    (void)tp_pool_maintain(x->p);
    assert_int_equal(atomic_load(&r.status), TP_ETIMEDOUT);
    const char *tail = "open of max 1 for this key (0 idle, 0 opening)";
    assert_non_null(strstr(e.msg, tail));
    assert_non_null(strstr(r.msg, tail));
    assert_int_equal(strncmp(r.msg, "no connection after ", 20), 0);
    assert_int_equal(strncmp(e.msg, "no connection after ", 20), 0);
    tp_conn_release(held, 0);
}

typedef struct looper {
    tp_pool *p;
    int n, ok;
} looper;

static void *loop_main(void *arg)
{
    looper *l = arg;
    for (int i = 0; i < l->n; i++) {
        tp_conn *c = NULL;
        if (tu_acquire_ex(l->p, KEY("k"), MS(2000), 0, &c, NULL) != TP_OK)
            continue;
        l->ok++;
        tp_conn_release(c, 0);
    }
    return NULL;
}

/* Leases are counted exactly whichever path served them: the lock-free reuse (in the
 * thread's own shard of the key), the locked paths (in the key's shared shard), or a
 * lease begun on one path and ended on the other. */
static void test_counts_add_up_across_paths_and_threads(void **state)
{
    fx *x = *state;
    make_pool(x, 3); /* fewer connections than threads: both paths, and waits */
    enum { T = 8, N = 3000 };
    looper l[T];
    pthread_t t[T];
    for (int i = 0; i < T; i++) {
        l[i] = (looper){.p = x->p, .n = N};
        tu_thread_start(&t[i], loop_main, &l[i]);
    }
    int ok = 0;
    for (int i = 0; i < T; i++) {
        tu_thread_join(t[i]);
        ok += l[i].ok;
    }
    assert_int_equal(ok, T * N);
    tp_stats st;
    tu_key_stats(x->p, "k", &st);
    assert_int_equal(st.acquires, (uint64_t)ok);
    assert_int_equal(st.hold_time.count, (uint64_t)ok);
    assert_int_equal(st.acquire_wait.count, (uint64_t)ok);
    assert_int_equal(st.reuses + st.opens, (uint64_t)ok); /* every lease: reused or new */
    assert_int_equal(st.idle_time.count, st.reuses);
    tp_stats ps;
    tp_pool_stats(x->p, &ps);
    assert_int_equal(ps.acquires, (uint64_t)ok);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_async_tenant_waits_for_a_place, pool_fx_setup,
                                        pool_fx_teardown),
        cmocka_unit_test_setup_teardown(test_async_tenant_times_out_and_fails_fast, pool_fx_setup,
                                        pool_fx_teardown),
        cmocka_unit_test_setup_teardown(test_async_tenant_cancel_and_close, pool_fx_setup,
                                        pool_fx_teardown),
        cmocka_unit_test_setup_teardown(test_async_tenant_place_returns_on_key_timeout,
                                        pool_fx_setup, pool_fx_teardown),
        cmocka_unit_test_setup_teardown(test_fresh_waiter_never_gets_a_reused_connection,
                                        pool_fx_setup, pool_fx_teardown),
        cmocka_unit_test_setup_teardown(test_idle_only_never_dials_nor_makes_keys, pool_fx_setup,
                                        pool_fx_teardown),
        cmocka_unit_test_setup_teardown(test_timeouts_read_alike, pool_fx_setup, pool_fx_teardown),
        cmocka_unit_test_setup_teardown(test_counts_add_up_across_paths_and_threads,
                                        pool_fx_setup, pool_fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
