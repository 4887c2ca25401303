/* test_pool_permits.c: the open-permit hook (tp_permit_hook): every open, whichever path
 * starts it, takes a permit once the pool's own limits allow it; every slot that ends
 * gives one back exactly once; "wait" queues the acquire like any limit (a release or
 * tp_pool_permits_changed() serves it), "refused" fails it with TP_ENOPERMIT only when
 * the key holds nothing to wait for; tp_pool_shed() closes idle connections and then releasing
 * ones. The budget here is a counter with an allowance the test moves, as a fleet's thread would.
 */
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

/* The budget: held < allowance grants. */
typedef struct budget {
    _Atomic int64_t allowance;
    _Atomic int64_t held;
    _Atomic int64_t min_held; /* lowest held ever seen: a give without a take goes < 0 */
    _Atomic uint64_t takes, gives, waits;
    atomic_bool refuse;
} budget;

static tp_permit take(void *ctx, const void *key, size_t keylen)
{
    (void)key;
    (void)keylen;
    budget *b = ctx;
    if (atomic_load(&b->refuse))
        return TP_PERMIT_REFUSED;
    if (atomic_load(&b->held) >= atomic_load(&b->allowance)) {
        atomic_fetch_add(&b->waits, 1);
        return TP_PERMIT_WAIT;
    }
    atomic_fetch_add(&b->held, 1);
    atomic_fetch_add(&b->takes, 1);
    return TP_PERMIT_GRANTED;
}

static void give(void *ctx, const void *key, size_t keylen)
{
    (void)key;
    (void)keylen;
    budget *b = ctx;
    int64_t now = atomic_fetch_sub(&b->held, 1) - 1;
    if (now < atomic_load(&b->min_held))
        atomic_store(&b->min_held, now);
    atomic_fetch_add(&b->gives, 1);
}

typedef struct fx {
    fake_connector f;
    budget b;
    tp_permit_hook hook;
    tp_pool *p;
} fx;

static int setup(void **state)
{
    fx *x = calloc(1, sizeof *x);
    if (x == NULL)
        return -1;
    fake_init(&x->f);
    x->hook = (tp_permit_hook){.ctx = &x->b, .take = take, .give = give};
    *state = x;
    return 0;
}

/* After the pool is gone, every permit taken came back once. */
static int teardown(void **state)
{
    fx *x = *state;
    tp_pool_destroy(x->p);
    int bad = atomic_load(&x->b.held) != 0 || atomic_load(&x->b.min_held) < 0 ||
              atomic_load(&x->b.takes) != atomic_load(&x->b.gives);
    if (bad)
        print_error("permits: held %lld, lowest %lld, takes %llu, gives %llu\n",
                    (long long)atomic_load(&x->b.held), (long long)atomic_load(&x->b.min_held),
                    (unsigned long long)atomic_load(&x->b.takes),
                    (unsigned long long)atomic_load(&x->b.gives));
    fake_destroy(&x->f);
    free(x);
    return bad ? -1 : 0;
}

static tp_pool *make_pool(fx *x, int64_t allowance, void (*tweak)(tp_pool_options *))
{
    atomic_store(&x->b.allowance, allowance);
    tp_pool_options o;
    fake_pool_options(&x->f, &o);
    o.maintenance_thread = false;
    o.max_per_key = 8;
    o.permits = &x->hook;
    if (tweak != NULL)
        tweak(&o);
    return x->p = tu_pool_create(&o);
}

static void grant_more(fx *x, int64_t n)
{
    atomic_fetch_add(&x->b.allowance, n);
    tp_pool_permits_changed(x->p);
}

/* Opens stop at the allowance; the acquire beyond it waits and is served when the budget
 * grants more (not by opening behind its back). */
static void test_wait_for_permit(void **state)
{
    fx *x = *state;
    make_pool(x, 2, NULL);
    tp_conn *a = tu_acquire(x->p, "k", MS(1000));
    tp_conn *b = tu_acquire(x->p, "k", MS(1000));
    tu_acq_job job = {.p = x->p, .key = "k", .timeout = MS(5000)};
    pthread_t t;
    tu_thread_start(&t, tu_acquire_thread, &job);
    bool ok;
    TU_WAIT_UNTIL(ok, tu_key_waiters(x->p, "k") == 1, 5000);
    assert_true(ok);
    tu_sleep_ms(50);
    assert_false(atomic_load(&job.done));
    assert_int_equal(atomic_load(&x->f.opens), 2);
    grant_more(x, 1);
    tu_thread_join(t);
    assert_int_equal(job.result, TP_OK);
    assert_int_equal(atomic_load(&x->f.opens), 3);
    assert_int_equal(atomic_load(&x->b.held), 3);
    tp_stats st = tu_pool_stats(x->p);
    assert_true(st.permit_waits >= 1);
    assert_int_equal(st.permit_refusals, 0);
    tp_conn_release(a, 0);
    tp_conn_release(b, 0);
    tp_conn_release(job.conn, 0);
}

/* Waiting for a permit is an ordinary wait: a released connection serves it. */
static void test_release_serves_permit_waiter(void **state)
{
    fx *x = *state;
    make_pool(x, 1, NULL);
    tp_conn *a = tu_acquire(x->p, "k", MS(1000));
    fake_conn *fa = tp_conn_get(a);
    tu_acq_job job = {.p = x->p, .key = "k", .timeout = MS(5000)};
    pthread_t t;
    tu_thread_start(&t, tu_acquire_thread, &job);
    bool ok;
    TU_WAIT_UNTIL(ok, tu_key_waiters(x->p, "k") == 1, 5000);
    assert_true(ok);
    tp_conn_release(a, 0);
    tu_thread_join(t);
    assert_int_equal(job.result, TP_OK);
    assert_ptr_equal(tp_conn_get(job.conn), fa);
    assert_int_equal(atomic_load(&x->f.opens), 1);
    tp_conn_release(job.conn, 0);
}

/* Past its timeout a permit waiter times out with the pool's usual error. */
static void test_permit_wait_times_out(void **state)
{
    fx *x = *state;
    make_pool(x, 0, NULL);
    tp_conn *c = NULL;
    tp_errinfo err;
    int64_t t0 = tu_now_ns();
    assert_int_equal(tu_acquire_ex(x->p, KEY("k"), MS(80), 0, &c, &err), TP_ETIMEDOUT);
    assert_true(tu_ms_since(t0) >= 70);
    assert_null(c);
    assert_non_null(strstr(err.msg, "waiting for a permit"));
    assert_int_equal(atomic_load(&x->f.open_calls), 0);
}

/* Refused: nothing to wait for fails at once with TP_ENOPERMIT; with a connection held,
 * the acquire waits for it instead. */
static void test_refused(void **state)
{
    fx *x = *state;
    make_pool(x, 1, NULL);
    tp_conn *a = tu_acquire(x->p, "k", MS(1000));
    atomic_store(&x->b.refuse, true);
    tp_conn *c = NULL;
    tp_errinfo err;
    int64_t t0 = tu_now_ns();
    assert_int_equal(tu_acquire_ex(x->p, KEY("other"), MS(2000), 0, &c, &err), TP_ENOPERMIT);
    assert_true(tu_ms_since(t0) < 1000);
    assert_non_null(strstr(err.msg, "refused"));
    tu_acq_job job = {.p = x->p, .key = "k", .timeout = MS(5000)};
    pthread_t t;
    tu_thread_start(&t, tu_acquire_thread, &job);
    bool ok;
    TU_WAIT_UNTIL(ok, tu_key_waiters(x->p, "k") == 1, 5000);
    assert_true(ok);
    tp_conn_release(a, 0);
    tu_thread_join(t);
    assert_int_equal(job.result, TP_OK);
    tp_stats st = tu_pool_stats(x->p);
    assert_true(st.permit_refusals >= 1);
    tp_conn_release(job.conn, 0);
}

/* Failed opens, a failed check, broken releases, idle timeouts and the pool's close
 * each give their permit back once (checked in teardown too). */
static void short_idle(tp_pool_options *o)
{
    o->idle_timeout = MS(20);
    o->breaker_threshold = TP_UNLIMITED;
}

static void test_every_end_gives_back(void **state)
{
    fx *x = *state;
    make_pool(x, 4, short_idle);
    fake_fail_next(&x->f, 2, TP_EPROTO);
    tp_conn *c = NULL;
    assert_int_equal(tu_acquire_ex(x->p, KEY("k"), MS(1000), 0, &c, NULL), TP_EPROTO);
    assert_int_equal(atomic_load(&x->b.held), 0);
    assert_int_equal(tu_acquire_ex(x->p, KEY("k2"), MS(1000), 0, &c, NULL), TP_EPROTO);
    assert_int_equal(atomic_load(&x->b.held), 0);
    tp_conn *l[4];
    for (int i = 0; i < 4; i++)
        l[i] = tu_acquire(x->p, i < 2 ? "k" : "k2", MS(1000));
    assert_int_equal(atomic_load(&x->b.held), 4);
    tp_conn_release(l[0], TP_RELEASE_BROKEN);
    tp_conn_release(l[1], TP_RELEASE_DISCARD);
    assert_int_equal(atomic_load(&x->b.held), 2);
    tp_conn_release(l[2], 0);
    tp_conn_release(l[3], 0);
    tu_sleep_ms(40);
    tp_pool_maintain(x->p); /* both idle past idle_timeout */
    assert_int_equal(atomic_load(&x->b.held), 0);
    assert_int_equal(atomic_load(&x->b.takes), atomic_load(&x->b.gives));
    /* The last one stays open for tp_pool_destroy() to give back. */
    tp_conn_release(tu_acquire(x->p, "k", MS(1000)), 0);
    assert_int_equal(atomic_load(&x->b.held), 1);
}

/* Maintenance's opens (min_idle_per_key) are held to the allowance too, and do not
 * count as permit waits: no request waited. */
static void warm(tp_pool_options *o)
{
    o->min_idle_per_key = 3;
    o->max_idle_per_key = 8;
}

static void test_min_idle_within_allowance(void **state)
{
    fx *x = *state;
    make_pool(x, 2, warm);
    tp_conn_release(tu_acquire(x->p, "k", MS(1000)), 0);
    tp_pool_maintain(x->p);
    tp_pool_maintain(x->p);
    assert_int_equal(atomic_load(&x->f.opens), 2);
    tp_stats st = tu_pool_stats(x->p);
    assert_int_equal(st.permit_waits, 0);
    assert_true(atomic_load(&x->b.waits) >= 1);
    grant_more(x, 1);
    tp_pool_maintain(x->p);
    assert_int_equal(atomic_load(&x->f.opens), 3);
}

/* The asynchronous forms: a worker's open and a caller's own open (an event loop) wait
 * for the permit as queued requests, and are served by permits_changed. */
typedef struct cb_rec {
    atomic_int calls;
    atomic_int status;
    atomic_int kind;
    _Atomic(tp_conn *) conn;
} cb_rec;

static void on_acquired(void *ud, tp_err status, tp_acquired kind, tp_conn *conn,
                        const tp_errinfo *err)
{
    (void)err;
    cb_rec *r = ud;
    atomic_store(&r->status, status);
    atomic_store(&r->kind, kind);
    atomic_store(&r->conn, conn);
    atomic_fetch_add(&r->calls, 1);
}

static void test_async_forms_wait_for_permit(void **state)
{
    fx *x = *state;
    make_pool(x, 0, NULL);
    cb_rec worker = {0}, caller = {0};
    assert_int_equal(tu_async(x->p, KEY("k"), MS(5000), 0, on_acquired, &worker, NULL, NULL, NULL),
                     TP_ACQUIRED_PENDING);
    assert_int_equal(tu_async(x->p, KEY("k"), MS(5000), TP_ACQUIRE_CALLER_OPENS, on_acquired,
                              &caller, NULL, NULL, NULL),
                     TP_ACQUIRED_PENDING);
    tu_sleep_ms(30);
    assert_int_equal(atomic_load(&worker.calls) + atomic_load(&caller.calls), 0);
    grant_more(x, 2);
    bool ok;
    TU_WAIT_UNTIL(ok, atomic_load(&worker.calls) == 1 && atomic_load(&caller.calls) == 1, 5000);
    assert_true(ok);
    assert_int_equal(atomic_load(&worker.status), TP_OK);
    assert_int_equal(atomic_load(&worker.kind), TP_ACQUIRED_LEASE);
    assert_int_equal(atomic_load(&caller.status), TP_OK);
    assert_int_equal(atomic_load(&caller.kind), TP_ACQUIRED_OPEN_SLOT);
    assert_int_equal(atomic_load(&x->b.held), 2);
    /* The caller's open fails: the slot's permit comes back. */
    assert_int_equal(tp_conn_open_failed(atomic_load(&caller.conn), TP_EPROTO, NULL), TP_EPROTO);
    assert_int_equal(atomic_load(&x->b.held), 1);
    tp_conn_release(atomic_load(&worker.conn), 0);
}

/* tp_pool_shed closes the least recently used idle connections across keys now, and the
 * rest of what it was asked for as leases end, even those a waiter would have had. */
static void test_shed(void **state)
{
    fx *x = *state;
    make_pool(x, 8, NULL);
    tp_conn *l[6];
    for (int i = 0; i < 6; i++)
        l[i] = tu_acquire(x->p, i % 2 ? "a" : "b", MS(1000));
    for (int i = 0; i < 4; i++)
        tp_conn_release(l[i], 0);
    assert_int_equal(tp_pool_shed(x->p, 3), 3);
    assert_int_equal(atomic_load(&x->b.held), 3);
    assert_int_equal(tp_pool_shed(x->p, 0), 0); /* cancels nothing: none pending */
    /* One idle left, two in use: one closes now, one at its release, the third never. */
    assert_int_equal(tp_pool_shed(x->p, 2), 1);
    tp_stats st = tu_pool_stats(x->p);
    assert_int_equal(st.closes[TP_CLOSE_SHED], 4);
    assert_int_equal(st.in_use, 2);
    tu_acq_job job = {.p = x->p, .key = "a", .timeout = MS(5000)};
    atomic_store(&x->b.allowance, 1); /* the waiter cannot open: it waits */
    pthread_t t;
    tu_thread_start(&t, tu_acquire_thread, &job);
    bool ok;
    TU_WAIT_UNTIL(ok, tu_key_waiters(x->p, "a") == 1, 5000);
    assert_true(ok);
    tp_conn_release(l[5], 0); /* "a", with a waiter: shed, not handed over */
    st = tu_pool_stats(x->p);
    assert_int_equal(st.closes[TP_CLOSE_SHED], 5);
    assert_int_equal(atomic_load(&x->f.close_reasons[TP_CLOSE_SHED]), 5);
    tu_sleep_ms(20);
    assert_false(atomic_load(&job.done));
    grant_more(x, 1); /* the budget gives the permit to whoever it chooses: here, back */
    tu_thread_join(t);
    if (job.result != TP_OK)
        fail_msg("the waiter: %s: %s", tp_err_name(job.result), job.err.msg);
    tp_conn_release(l[4], 0); /* nothing pending: kept */
    assert_int_equal(tu_pool_stats(x->p).closes[TP_CLOSE_SHED], 5);
    assert_int_equal(tu_pool_stats(x->p).idle, 1);
    /* The idle one now, three pending; n <= 0 cancels those. */
    assert_int_equal(tp_pool_shed(x->p, 4), 1);
    assert_int_equal(tp_pool_shed(x->p, 0), 0);
    tp_conn_release(job.conn, 0);
    assert_int_equal(tu_pool_stats(x->p).closes[TP_CLOSE_SHED], 6);
    assert_int_equal(tu_pool_stats(x->p).idle, 1);
    assert_int_equal(tp_pool_shed(NULL, 1), 0);
}

static void test_options(void **state)
{
    fx *x = *state;
    tp_pool_options o;
    fake_pool_options(&x->f, &o);
    tp_permit_hook half = {.ctx = &x->b, .take = take};
    o.permits = &half;
    tp_pool *p = NULL;
    tp_errinfo err;
    assert_int_equal(tp_pool_create(&o, &p, &err), TP_EINVAL);
    assert_null(p);
    assert_non_null(strstr(err.msg, "permits"));
    /* The hook is copied: the caller's struct may go away after create. */
    tp_permit_hook tmp = x->hook;
    o.permits = &tmp;
    o.maintenance_thread = false;
    x->p = tu_pool_create(&o);
    memset(&tmp, 0, sizeof tmp);
    atomic_store(&x->b.allowance, 1);
    tp_conn_release(tu_acquire(x->p, "k", MS(1000)), 0);
    assert_int_equal(atomic_load(&x->b.takes), 1);
    tp_pool_permits_changed(NULL); /* a no-op */
}

int main(void)
{
    tu_watchdog(60);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_wait_for_permit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_release_serves_permit_waiter, setup, teardown),
        cmocka_unit_test_setup_teardown(test_permit_wait_times_out, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_every_end_gives_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_min_idle_within_allowance, setup, teardown),
        cmocka_unit_test_setup_teardown(test_async_forms_wait_for_permit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_options, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
