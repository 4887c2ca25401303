/* test_pool_wait.c (label: concurrency): blocking acquires and the waiter queue: wake-up
 * by release, deadline accuracy, strict FIFO with fair_after = 0, no starvation with the
 * default fair_after, close waking every waiter, close with leases outstanding, and
 * destroy with leases and opens still in flight (memory freed by the last one out).
 *
 * Worker threads never call cmocka assertions (they longjmp into the runner); they store
 * results that the main thread checks after joining them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <tidepool/tidepool.h>

#include "support/fail_alloc.h"
#include "support/fake_connector.h"
#include "support/pool_fixture.h"
#include "support/test_util.h"

typedef pool_fx fx;

/* One connection per key: every second acquire has to wait. */
static tp_pool *pool_of_one(fx *x, int64_t fair_after)
{
    tp_pool_options o;
    fake_pool_options(&x->f, &o);
    o.max_per_key = 1;
    o.max_idle_per_key = 1;
    o.fair_after = fair_after;
    x->p = tu_pool_create(&o);
    return x->p;
}

static bool wait_waiters(tp_pool *p, const char *key, int64_t n)
{
    bool ok = false;
    TU_WAIT_UNTIL(ok, tu_key_waiters(p, key) == n, 3000);
    return ok;
}

static void test_release_wakes_waiter(void **state)
{
    fx *x = *state;
    tp_pool *p = pool_of_one(x, MS(1));
    tp_conn *held = tu_acquire(p, "k", 0);
    fake_conn *fc = fake_of(held);
    tu_acq_job job = {.p = p, .key = "k", .timeout = MS(5000)};
    pthread_t t;
    tu_thread_start(&t, tu_acquire_thread, &job);
    assert_true(wait_waiters(p, "k", 1));
    tu_sleep_ms(50);
    assert_false(atomic_load(&job.done));
    tp_conn_release(held, 0);
    tu_thread_join(t);
    assert_int_equal(job.result, TP_OK);
    assert_ptr_equal(fake_of(job.conn), fc); /* the same connection, handed over */
    assert_true(job.end_ns - job.start_ns >= MS(45));
    assert_int_equal(x->f.opens, 1);
    tp_stats st = tu_pool_stats(p);
    assert_int_equal(st.waits, 1);
    assert_int_equal(st.waiters, 0);
    tp_conn_release(job.conn, 0);
}

static void test_discard_lets_waiter_open(void **state)
{
    /* A discarded connection frees a slot: the waiter gets a new connection. */
    fx *x = *state;
    tp_pool *p = pool_of_one(x, MS(1));
    tp_conn *held = tu_acquire(p, "k", 0);
    tu_acq_job job = {.p = p, .key = "k", .timeout = MS(5000)};
    pthread_t t;
    tu_thread_start(&t, tu_acquire_thread, &job);
    assert_true(wait_waiters(p, "k", 1));
    tp_conn_release(held, TP_RELEASE_DISCARD);
    tu_thread_join(t);
    assert_int_equal(job.result, TP_OK);
    assert_int_equal(fake_of(job.conn)->id, 2);
    assert_true((double)(job.end_ns - job.start_ns) / 1e6 < 3000.0);
    tp_conn_release(job.conn, 0);
}

static void test_deadline_accuracy(void **state)
{
    fx *x = *state;
    tp_pool *p = pool_of_one(x, MS(1));
    tp_conn *held = tu_acquire(p, "k", 0);
    tp_conn *c = NULL;
    tp_errinfo err;
    memset(&err, 0, sizeof err);
    int64_t t0 = tu_now_ns();
    assert_int_equal(tp_pool_acquire(p, KEY("k"), MS(100), &c, &err), TP_ETIMEDOUT);
    double ms = tu_ms_since(t0);
    assert_true(ms >= 99.0);
    assert_true(ms <= 250.0);
    assert_null(c);
    assert_int_equal(err.code, TP_ETIMEDOUT);
    assert_true(strlen(err.msg) > 0); /* says what was in use */

    tp_stats st;
    tu_key_stats(p, "k", &st);
    assert_int_equal(st.timeouts, 1);
    assert_int_equal(st.waiters, 0); /* the timed-out waiter left the queue */
    tp_conn_release(held, 0);
}

static void test_default_timeout_is_acquire_timeout(void **state)
{
    fx *x = *state;
    tp_pool_options o;
    fake_pool_options(&x->f, &o);
    o.max_per_key = 1;
    o.max_idle_per_key = 1;
    o.acquire_timeout = MS(80);
    tp_pool *p = x->p = tu_pool_create(&o);
    tp_conn *held = tu_acquire(p, "k", 0);
    tp_conn *c = NULL;
    int64_t t0 = tu_now_ns();
    assert_int_equal(tp_pool_acquire(p, KEY("k"), TP_DURATION_DEFAULT, &c, NULL), TP_ETIMEDOUT);
    double ms = tu_ms_since(t0);
    assert_true(ms >= 79.0);
    assert_true(ms <= 230.0);
    tp_conn_release(held, 0);
}

/* FIFO test: each waiter, once served, records its rank and hands its lease back to the
 * main thread through a mailbox (leases may move between threads), so the main thread
 * is the only releaser and decides when the next waiter can be served. */
typedef struct fifo_ctx {
    tp_pool *p;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    tp_conn *mailbox;
    int order[8];
    int norder;
    tp_err errs[8];
} fifo_ctx;

typedef struct fifo_waiter {
    fifo_ctx *ctx;
    int id;
} fifo_waiter;

static void *fifo_thread(void *arg)
{
    fifo_waiter *w = arg;
    fifo_ctx *ctx = w->ctx;
    tp_conn *c = NULL;
    tp_err r = tp_pool_acquire(ctx->p, KEY("k"), MS(10000), &c, NULL);
    pthread_mutex_lock(&ctx->mu);
    ctx->errs[w->id] = r;
    ctx->order[ctx->norder++] = w->id;
    while (r == TP_OK && ctx->mailbox != NULL)
        pthread_cond_wait(&ctx->cv, &ctx->mu);
    if (r == TP_OK)
        ctx->mailbox = c;
    pthread_cond_broadcast(&ctx->cv);
    pthread_mutex_unlock(&ctx->mu);
    return NULL;
}

static void test_strict_fifo_when_fair_after_zero(void **state)
{
    enum { N = 5 };
    fx *x = *state;
    tp_pool *p = pool_of_one(x, 0);
    fifo_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.p = p;
    pthread_mutex_init(&ctx.mu, NULL);
    pthread_cond_init(&ctx.cv, NULL);
    tp_conn *held = tu_acquire(p, "k", 0);

    fifo_waiter w[N + 1];
    pthread_t t[N + 1];
    for (int i = 1; i <= N; i++) {
        w[i].ctx = &ctx;
        w[i].id = i;
        tu_thread_start(&t[i], fifo_thread, &w[i]);
        /* Start the next only once this one is visibly queued: arrival order is known. */
        assert_true(wait_waiters(p, "k", i));
    }
    for (int i = 1; i <= N; i++) {
        tp_conn_release(held, 0);
        /* Strictly FIFO: the connection went straight to the oldest waiter, so a newcomer
         * cannot grab it, even right after the release. */
        tp_conn *barger = NULL;
        tp_err r = tu_try(p, KEY("k"), &barger);
        assert_int_equal(r, TP_EAGAIN);
        pthread_mutex_lock(&ctx.mu);
        while (ctx.mailbox == NULL)
            pthread_cond_wait(&ctx.cv, &ctx.mu);
        held = ctx.mailbox;
        ctx.mailbox = NULL;
        pthread_cond_broadcast(&ctx.cv);
        pthread_mutex_unlock(&ctx.mu);
    }
    for (int i = 1; i <= N; i++)
        tu_thread_join(t[i]);
    tp_conn_release(held, 0);
    assert_int_equal(ctx.norder, N);
    for (int i = 0; i < N; i++) {
        assert_int_equal(ctx.errs[i + 1], TP_OK);
        assert_int_equal(ctx.order[i], i + 1);
    }
    assert_int_equal(x->f.opens, 1);
    pthread_mutex_destroy(&ctx.mu);
    pthread_cond_destroy(&ctx.cv);
}

/* Starvation test: a releaser that re-acquires immediately (the classic barging
 * pattern) competes with waiters that each want the connection repeatedly. */
typedef struct starve_ctx {
    tp_pool *p;
    atomic_bool stop;
} starve_ctx;

typedef struct starve_waiter {
    starve_ctx *ctx;
    int served;
    int failures;
    int64_t max_wait_ns;
} starve_waiter;

static void *starve_thread(void *arg)
{
    starve_waiter *w = arg;
    while (!atomic_load(&w->ctx->stop)) {
        tp_conn *c = NULL;
        int64_t t0 = tu_now_ns();
        tp_err r = tp_pool_acquire(w->ctx->p, KEY("k"), MS(1500), &c, NULL);
        int64_t waited = tu_now_ns() - t0;
        if (waited > w->max_wait_ns)
            w->max_wait_ns = waited;
        if (r != TP_OK) {
            w->failures++;
            continue;
        }
        w->served++;
        tu_sleep_ns(100 * TP_NSEC_PER_USEC);
        tp_conn_release(c, 0);
        tu_sleep_ms(1);
    }
    return NULL;
}

static void test_no_starvation_with_default_fair_after(void **state)
{
    enum { NW = 4 };
    fx *x = *state;
    tp_pool *p = pool_of_one(x, MS(1));
    starve_ctx ctx = {.p = p};
    starve_waiter w[NW];
    pthread_t t[NW];
    memset(w, 0, sizeof w);
    for (int i = 0; i < NW; i++) {
        w[i].ctx = &ctx;
        tu_thread_start(&t[i], starve_thread, &w[i]);
    }
    /* The busy releaser: release and re-acquire back to back for ~1 s. */
    int64_t t0 = tu_now_ns();
    int busy_served = 0;
    while (tu_ms_since(t0) < 1000.0) {
        tp_conn *c = NULL;
        if (tp_pool_acquire(p, KEY("k"), MS(1500), &c, NULL) == TP_OK) {
            busy_served++;
            tu_sleep_ns(200 * TP_NSEC_PER_USEC);
            tp_conn_release(c, 0);
        }
    }
    atomic_store(&ctx.stop, true);
    for (int i = 0; i < NW; i++)
        tu_thread_join(t[i]);
    for (int i = 0; i < NW; i++) {
        print_message("waiter %d: served %d, max wait %.1f ms, failures %d\n", i,
                      w[i].served, (double)w[i].max_wait_ns / 1e6, w[i].failures);
        assert_int_equal(w[i].failures, 0);
        assert_true(w[i].served >= 5);
        assert_true(w[i].max_wait_ns < MS(1000));
    }
    assert_true(busy_served > 0);
}

typedef struct close_waiter {
    tu_acq_job job;
    pthread_t t;
} close_waiter;

static void test_close_wakes_all_waiters(void **state)
{
    enum { N = 4 };
    fx *x = *state;
    tp_pool *p = pool_of_one(x, MS(1));
    tp_conn *held = tu_acquire(p, "k", 0);
    close_waiter w[N];
    memset(w, 0, sizeof w);
    for (int i = 0; i < N; i++) {
        w[i].job.p = p;
        w[i].job.key = "k";
        w[i].job.timeout = MS(10000);
        tu_thread_start(&w[i].t, tu_acquire_thread, &w[i].job);
    }
    assert_true(wait_waiters(p, "k", N));
    int64_t t0 = tu_now_ns();
    tp_pool_close(p);
    for (int i = 0; i < N; i++)
        tu_thread_join(w[i].t);
    assert_true(tu_ms_since(t0) < 500.0); /* promptly, not at their 10 s deadline */
    for (int i = 0; i < N; i++) {
        assert_int_equal(w[i].job.result, TP_ECLOSED);
        assert_null(w[i].job.conn);
    }
    tp_conn_release(held, 0);
    assert_int_equal(x->f.close_reasons[TP_CLOSE_POOL_CLOSED], 1);
}

static void test_close_with_lease_in_use(void **state)
{
    fx *x = *state;
    tp_pool *p = pool_of_one(x, MS(1));
    tp_conn *c = tu_acquire(p, "k", 0);
    uint64_t id = fake_of(c)->id;
    tp_pool_close(p);
    tp_pool_close(p); /* idempotent */
    /* In use: not closed under the holder's feet. */
    assert_int_equal(fake_close_count_for(&x->f, id), 0);
    assert_int_equal(fake_of(c)->id, id);
    tp_conn_release(c, 0);
    tp_close_reason r;
    assert_true(fake_close_reason_for(&x->f, id, &r));
    assert_int_equal(r, TP_CLOSE_POOL_CLOSED);
    assert_int_equal(x->f.resets, 0); /* not meant for reuse any more */
    tp_conn *c2 = NULL;
    tp_errinfo err;
    assert_int_equal(tp_pool_acquire(p, KEY("k"), MS(100), &c2, &err), TP_ECLOSED);
    assert_int_equal(tu_try(p, KEY("k"), &c2), TP_ECLOSED);
    assert_int_equal(x->f.open_calls, 1);
    tp_stats st = tu_pool_stats(p); /* still valid until destroy */
    assert_int_equal(st.total, 0);
    assert_int_equal(st.closes[TP_CLOSE_POOL_CLOSED], 1);
}

static void test_close_during_open(void **state)
{
    /* An open in flight when the pool closes: its connection must not be handed out or
     * kept; it is closed (pool_closed) as soon as open() returns. */
    fx *x = *state;
    tp_pool *p = pool_of_one(x, MS(1));
    fake_gate_close(&x->f);
    tu_acq_job job = {.p = p, .key = "k", .timeout = MS(5000)};
    pthread_t t;
    tu_thread_start(&t, tu_acquire_thread, &job);
    bool ok = false;
    TU_WAIT_UNTIL(ok, fake_gate_waiting(&x->f) == 1, 2000);
    assert_true(ok);
    tp_pool_close(p);
    fake_gate_open(&x->f);
    tu_thread_join(t);
    assert_int_equal(job.result, TP_ECLOSED);
    assert_null(job.conn);
    assert_int_equal(x->f.opens, 1);
    assert_int_equal(x->f.closes, 1);
    assert_int_equal(x->f.close_reasons[TP_CLOSE_POOL_CLOSED], 1);
    tp_stats st = tu_pool_stats(p);
    assert_int_equal(st.total, 0);
}

/* The allocator of the whole process (installed in main). */
static fail_alloc fa;

static void test_destroy_with_leases_outstanding(void **state)
{
    fx *x = *state;
    tp_pool_options o;
    fake_pool_options(&x->f, &o);
    tp_pool *p = tu_pool_create(&o);
    tp_conn *a = tu_acquire(p, "a", 0);
    tp_conn *b = tu_acquire(p, "b", 0);
    tp_conn *idle = tu_acquire(p, "a", 0);
    tp_conn_release(idle, 0);
    tp_pool_destroy(p);
    assert_int_equal(x->f.closes, 1); /* the idle one at once */
    /* The leases stay usable and releasable after destroy; the last one frees it all. */
    assert_true(fake_conn_key_is(fake_of(a), KEY("a")));
    tp_conn_release(a, 0);
    assert_true(fa.live > 0);
    tp_conn_release(b, TP_RELEASE_BROKEN);
    assert_int_equal(x->f.closes, 3);
    assert_int_equal(x->f.live, 0);
    assert_int_equal(fa.live, 0);
    assert_int_equal(fa.bad_frees, 0);
}

/* Async completion record for the in-flight open test. */
typedef struct open_cb {
    atomic_int calls;
    atomic_int status;
    _Atomic(tp_conn *) conn;
} open_cb;

static void on_open_cb(void *ud, tp_err status, tp_acquired kind, tp_conn *conn,
                        const tp_errinfo *err)
{
    (void)kind;
    open_cb *r = ud;
    (void)err;
    atomic_store(&r->conn, conn);
    atomic_store(&r->status, status);
    atomic_fetch_add(&r->calls, 1);
}

static void test_destroy_with_open_in_flight(void **state)
{
    /* destroy must not race with the caller's own calls, but an open the pool runs for
     * an async request may still be in flight: the pool lives until it ends, the
     * request still gets exactly one callback, and nothing leaks. */
    fx *x = *state;
    tp_pool_options o;
    fake_pool_options(&x->f, &o);
    tp_pool *p = tu_pool_create(&o);
    fake_gate_close(&x->f);
    open_cb r;
    memset(&r, 0, sizeof r);
    tp_conn *out = NULL;
    uint64_t ticket = 0;
    assert_int_equal(tu_async(p, KEY("k"), MS(5000), 0, on_open_cb, &r, &out, &ticket,
                                           NULL),
                     TP_ACQUIRED_PENDING);
    bool ok = false;
    TU_WAIT_UNTIL(ok, fake_gate_waiting(&x->f) == 1, 3000);
    assert_true(ok);
    tp_pool_destroy(p);
    /* The request may be failed by the close right away, or when its open returns. */
    fake_gate_open(&x->f);
    TU_WAIT_UNTIL(ok, atomic_load(&r.calls) >= 1, 3000);
    assert_true(ok);
    assert_true(atomic_load(&r.status) == TP_ECLOSED || atomic_load(&r.status) == TP_OK);
    if (atomic_load(&r.status) == TP_OK)
        tp_conn_release(atomic_load(&r.conn), 0);
    /* The open finished on a pool thread after destroy: wait for it to wind down. */
    TU_WAIT_UNTIL(ok, fa.live == 0 && x->f.live == 0, 3000);
    assert_int_equal(x->f.opens, x->f.closes);
    assert_int_equal(fa.live, 0);
    tu_sleep_ms(20);
    assert_int_equal(atomic_load(&r.calls), 1);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, pool_fx_setup, pool_fx_teardown)

int main(void)
{
    tu_watchdog(120);
    /* The process's allocator, so the tests can see what the library holds. */
    fail_alloc_init(&fa);
    if (tp_set_allocator(&fa.a) != TP_OK)
        return 1;
    const struct CMUnitTest tests[] = {
        T(test_release_wakes_waiter),
        T(test_discard_lets_waiter_open),
        T(test_deadline_accuracy),
        T(test_default_timeout_is_acquire_timeout),
        T(test_strict_fifo_when_fair_after_zero),
        T(test_no_starvation_with_default_fair_after),
        T(test_close_wakes_all_waiters),
        T(test_close_with_lease_in_use),
        T(test_close_during_open),
        T(test_destroy_with_leases_outstanding),
        T(test_destroy_with_open_in_flight),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
