/* test_pool_stress.c (label: concurrency): many threads, random operations, invariants.
 *
 * 8 threads each run ~20k random operations over 4 keys: blocking acquires with small
 * timeouts, try_acquire, async acquire (with cancel), release (plain, DISCARD, BROKEN),
 * stats and key stats, manual maintenance, while the maintenance thread runs too and the
 * connector fails some checks and resets. Limits are tight (max_per_key 3, max_total 8,
 * max_idle_per_key 2) so that waiting, handoff, overflow and eviction all happen.
 *
 * Checked during the run (counted, since workers cannot assert): a connection is never
 * held by two threads (CAS on the fake's `held` flag), its key is the requested key, its
 * use count matches tp_conn_uses (no lease lost or duplicated), stats never exceed the
 * limits and their gauges add up, and calls only return errors they are allowed to. At
 * the end: the pool's acquire count equals the threads' successful acquires, the fake's
 * opens equal the pool's opens, everything is closed, and closes by reason add up.
 *
 * TP_STRESS_OPS overrides the per-thread operation count; the run also stops after
 * TIME_BUDGET_MS so that it stays within ~20 s under ThreadSanitizer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <time.h>

#include <cmocka.h>

#include <tidepool/tidepool.h>

#include "support/fake_connector.h"
#include "support/test_util.h"

#define NTHREADS 8
#define NKEYS 4
#define MAX_HELD 2
#define MAX_TOTAL 8
#define MAX_PER_KEY 3
#define MAX_IDLE_PER_KEY 2
#define TIME_BUDGET_MS 15000

static const char *const k_keys[NKEYS] = {"alpha", "beta", "gamma", "delta"};

typedef struct shared {
    tp_pool *p;
    fake_connector *f;
    int ops;
    int64_t stop_at_ns;
    _Atomic uint64_t acquired; /* leases the threads received */
    _Atomic uint64_t ops_done;
    _Atomic uint64_t bad_double; /* held by two at once */
    _Atomic uint64_t bad_key;
    _Atomic uint64_t bad_uses;
    _Atomic uint64_t bad_limits;
    _Atomic uint64_t bad_gauges;
    _Atomic uint64_t bad_status;
    _Atomic uint64_t bad_release; /* released a lease not marked held */
    _Atomic uint64_t async_immediate, async_served, async_canceled, async_errors;
    _Atomic uint64_t timeouts;
} shared;

typedef struct lease {
    tp_conn *c;
    int key;
} lease;

typedef struct async_req {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    tp_err status;
    tp_conn *conn;
} async_req;

typedef struct worker {
    shared *sh;
    uint32_t rng;
    lease held[MAX_HELD];
    int nheld;
    async_req req;
} worker;

static uint32_t next_rand(worker *w)
{
    /* xorshift32: cheap, per thread, reproducible from the seed. */
    uint32_t x = w->rng;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return w->rng = x;
}

/* A lease arrived: check it and take ownership. */
static void take(worker *w, tp_conn *c, int key)
{
    shared *sh = w->sh;
    fake_conn *fc = fake_of(c);
    int expected = 0;
    if (fc == NULL || !atomic_compare_exchange_strong(&fc->held, &expected, 1))
        atomic_fetch_add(&sh->bad_double, 1);
    size_t kl = 0;
    const void *kb = tp_conn_key(c, &kl);
    size_t want = strlen(k_keys[key]);
    if (fc == NULL || !fake_conn_key_is(fc, k_keys[key], want) || kl != want ||
        memcmp(kb, k_keys[key], want) != 0)
        atomic_fetch_add(&sh->bad_key, 1);
    if (fc != NULL && atomic_fetch_add(&fc->uses, 1) + 1 != tp_conn_uses(c))
        atomic_fetch_add(&sh->bad_uses, 1);
    atomic_fetch_add(&sh->acquired, 1);
    w->held[w->nheld].c = c;
    w->held[w->nheld].key = key;
    w->nheld++;
}

static void give(worker *w, int i, unsigned flags)
{
    tp_conn *c = w->held[i].c;
    w->held[i] = w->held[--w->nheld];
    int expected = 1;
    if (!atomic_compare_exchange_strong(&fake_of(c)->held, &expected, 0))
        atomic_fetch_add(&w->sh->bad_release, 1);
    tp_conn_release(c, flags);
}

static void on_async(void *ud, tp_err status, tp_acquired kind, tp_conn *conn,
                        const tp_errinfo *err)
{
    (void)kind;
    async_req *req = ud;
    (void)err;
    pthread_mutex_lock(&req->mu);
    req->status = status;
    req->conn = conn;
    req->done = true;
    pthread_cond_signal(&req->cv);
    pthread_mutex_unlock(&req->mu);
}

static bool wait_req(async_req *req, int64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t ns = ts.tv_nsec + ms * TP_NSEC_PER_MSEC;
    ts.tv_sec += (time_t)(ns / TP_NSEC_PER_SEC);
    ts.tv_nsec = (long)(ns % TP_NSEC_PER_SEC);
    pthread_mutex_lock(&req->mu);
    while (!req->done)
        if (pthread_cond_timedwait(&req->cv, &req->mu, &ts) != 0)
            break;
    bool done = req->done;
    pthread_mutex_unlock(&req->mu);
    return done;
}

static void check_stats(worker *w, int key)
{
    shared *sh = w->sh;
    tp_stats st;
    tp_pool_stats(sh->p, &st);
    if (st.total > MAX_TOTAL)
        atomic_fetch_add(&sh->bad_limits, 1);
    if (st.idle + st.in_use + st.opening != st.total)
        atomic_fetch_add(&sh->bad_gauges, 1);
    if (tp_pool_key_stats(sh->p, k_keys[key], strlen(k_keys[key]), &st) == TP_OK) {
        if (st.total > MAX_PER_KEY || st.idle > MAX_IDLE_PER_KEY)
            atomic_fetch_add(&sh->bad_limits, 1);
        if (st.idle + st.in_use + st.opening != st.total)
            atomic_fetch_add(&sh->bad_gauges, 1);
    }
}

static void do_async(worker *w, int key)
{
    shared *sh = w->sh;
    async_req *req = &w->req;
    pthread_mutex_lock(&req->mu);
    req->done = false;
    req->conn = NULL;
    pthread_mutex_unlock(&req->mu);
    tp_conn *c = NULL;
    uint64_t ticket = 0;
    int r = tu_async(sh->p, k_keys[key], strlen(k_keys[key]), MS(2), 0, on_async, req,
                                  &c, &ticket, NULL);
    if (r == TP_OK) {
        atomic_fetch_add(&sh->async_immediate, 1);
        take(w, c, key);
        return;
    }
    if (r == TP_ETIMEDOUT) {
        /* Decided at once past its 2 ms deadline (a slow machine, a sanitizer): a
         * failure the caller learns from the return, the callback never runs. */
        atomic_fetch_add(&sh->async_errors, 1);
        return;
    }
    if (r != TP_ACQUIRED_PENDING) {
        atomic_fetch_add(&sh->bad_status, 1);
        return;
    }
    if (!wait_req(req, 1)) {
        tp_err cr = tp_acquire_cancel(sh->p, ticket);
        if (cr == TP_OK) {
            atomic_fetch_add(&sh->async_canceled, 1);
            return;
        }
        if (cr != TP_ESTATE || !wait_req(req, 10000)) {
            atomic_fetch_add(&sh->bad_status, 1);
            return;
        }
    }
    if (req->status == TP_OK) {
        atomic_fetch_add(&sh->async_served, 1);
        take(w, req->conn, key);
    } else if (req->status == TP_ETIMEDOUT) {
        atomic_fetch_add(&sh->async_errors, 1);
    } else {
        atomic_fetch_add(&sh->bad_status, 1);
    }
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    shared *sh = w->sh;
    for (int op = 0; op < sh->ops; op++) {
        if ((op & 63) == 0 && tu_now_ns() > sh->stop_at_ns)
            break;
        uint32_t r = next_rand(w);
        int key = (int)((r >> 8) % NKEYS);
        int what = (int)(r % 100);
        if (what < 30) {
            if (w->nheld >= MAX_HELD)
                continue;
            tp_conn *c = NULL;
            int64_t timeout = MS((r >> 16) % 3); /* 0, 1 or 2 ms */
            tp_err e = tp_pool_acquire(sh->p, k_keys[key], strlen(k_keys[key]), timeout, &c,
                                       NULL);
            if (e == TP_OK)
                take(w, c, key);
            else if (e == TP_ETIMEDOUT)
                atomic_fetch_add(&sh->timeouts, 1);
            else
                atomic_fetch_add(&sh->bad_status, 1);
        } else if (what < 40) {
            if (w->nheld >= MAX_HELD)
                continue;
            tp_conn *c = NULL;
            tp_err e = tu_try(sh->p, k_keys[key], strlen(k_keys[key]), &c);
            if (e == TP_OK)
                take(w, c, key);
            else if (e != TP_EAGAIN)
                atomic_fetch_add(&sh->bad_status, 1);
        } else if (what < 48) {
            if (w->nheld < MAX_HELD)
                do_async(w, key);
        } else if (what < 85) {
            if (w->nheld == 0)
                continue;
            int i = (int)((r >> 16) % (uint32_t)w->nheld);
            unsigned pick = (r >> 24) % 100;
            unsigned flags = pick < 10 ? TP_RELEASE_DISCARD : pick < 13 ? TP_RELEASE_BROKEN : 0;
            give(w, i, flags);
        } else if (what < 93) {
            check_stats(w, key);
        } else if (what < 96) {
            (void)tp_pool_maintain(sh->p);
        } else {
            sched_yield();
        }
        atomic_fetch_add(&sh->ops_done, 1);
    }
    while (w->nheld > 0)
        give(w, w->nheld - 1, 0);
    return NULL;
}

static void test_stress_invariants(void **state)
{
    fake_connector *f = calloc(1, sizeof *f);
    assert_non_null(f);
    fake_init(f);
    fake_fail_check_every(f, 50);
    fake_fail_reset_every(f, 40);

    tp_pool_options o;
    fake_pool_options(f, &o);
    o.max_total = MAX_TOTAL;
    o.max_per_key = MAX_PER_KEY;
    o.max_idle_per_key = MAX_IDLE_PER_KEY;
    o.check_after_idle = 0;     /* check on every reuse: exercises check failures */
    o.idle_timeout = MS(20);    /* maintenance closes idle ones during the run */
    o.max_lifetime = MS(300);   /* and expires some */
    o.lifetime_jitter = 0.3;
    o.maintenance_interval = MS(5);
    tp_pool *p = tu_pool_create(&o);

    shared sh;
    memset(&sh, 0, sizeof sh);
    sh.p = p;
    sh.f = f;
    sh.ops = 20000;
    const char *env = getenv("TP_STRESS_OPS");
    if (env != NULL && atoi(env) > 0)
        sh.ops = atoi(env);
    sh.stop_at_ns = tu_now_ns() + MS(TIME_BUDGET_MS);

    worker *w = calloc(NTHREADS, sizeof *w);
    assert_non_null(w);
    pthread_t t[NTHREADS];
    int64_t t0 = tu_now_ns();
    for (int i = 0; i < NTHREADS; i++) {
        w[i].sh = &sh;
        w[i].rng = 0x9e3779b9u * (uint32_t)(i + 1);
        pthread_mutex_init(&w[i].req.mu, NULL);
        pthread_cond_init(&w[i].req.cv, NULL);
        tu_thread_start(&t[i], worker_main, &w[i]);
    }
    for (int i = 0; i < NTHREADS; i++)
        tu_thread_join(t[i]);

    print_message("%.0f ms, %llu ops, %llu leases (async: %llu immediate, %llu served, "
                  "%llu canceled, %llu timed out), %llu acquire timeouts, %llu opens\n",
                  tu_ms_since(t0), (unsigned long long)sh.ops_done,
                  (unsigned long long)sh.acquired, (unsigned long long)sh.async_immediate,
                  (unsigned long long)sh.async_served, (unsigned long long)sh.async_canceled,
                  (unsigned long long)sh.async_errors, (unsigned long long)sh.timeouts,
                  (unsigned long long)f->opens);

    /* Invariants observed during the run. */
    assert_int_equal(sh.bad_double, 0);
    assert_int_equal(sh.bad_release, 0);
    assert_int_equal(sh.bad_key, 0);
    assert_int_equal(sh.bad_uses, 0);
    assert_int_equal(sh.bad_limits, 0);
    assert_int_equal(sh.bad_gauges, 0);
    assert_int_equal(sh.bad_status, 0);
    assert_int_equal(f->closed_while_held, 0);
    assert_int_equal(f->concurrent_calls, 0);
    assert_int_equal(f->bad_close_reasons, 0);
    /* The run did real work, including contention. */
    assert_true(sh.ops_done >= 1000);
    assert_true(sh.acquired >= 100);

    /* Everything is back: the books balance. */
    tp_stats st;
    tp_pool_stats(p, &st);
    assert_int_equal(st.in_use, 0);
    assert_int_equal(st.waiters, 0);
    assert_int_equal(st.opening, 0);
    assert_int_equal(st.acquires, sh.acquired);
    assert_int_equal(st.opens, f->opens);
    /* Every lease is a reuse or a fresh open; an open may also end up idle (its async
     * requester canceled, or min-idle), so opens can exceed the fresh leases. */
    assert_true(st.reuses <= st.acquires);
    assert_true(st.acquires <= st.reuses + st.opens);
    tp_pool_close(p);
    tp_pool_stats(p, &st);
    assert_int_equal(st.total, 0);
    assert_int_equal(tu_closes_total(&st), st.opens);
    tp_pool_destroy(p);

    assert_int_equal(f->live, 0);
    assert_int_equal(f->opens, f->closes);
    uint64_t by_reason = 0;
    for (int i = 0; i < TP_CLOSE__COUNT; i++)
        by_reason += f->close_reasons[i];
    assert_int_equal(by_reason, f->opens);
    for (int i = 0; i < NTHREADS; i++) {
        pthread_mutex_destroy(&w[i].req.mu);
        pthread_cond_destroy(&w[i].req.cv);
    }
    free(w);
    fake_destroy(f);
    free(f);
}

/* Hot key ping-pong: a few threads hammer one key with a single connection (and then
 * two), acquiring and releasing back to back. This maximises the races between the
 * lock-free reuse/release paths and the locked ones on the very same connection: a
 * lost race shows up as double ownership, and a lost wake-up as a waiter that sits out
 * its long timeout although the connection came back microseconds later. */
typedef struct pingpong {
    tp_pool *p;
    int64_t stop_at_ns;
    _Atomic uint64_t leases, bad_double, bad_release, bad_status, timeouts;
    _Atomic int64_t max_wait_ns;
} pingpong;

static void *pingpong_main(void *arg)
{
    pingpong *pp = arg;
    uint32_t n = 0;
    while (tu_now_ns() < pp->stop_at_ns) {
        tp_conn *c = NULL;
        int64_t t0 = tu_now_ns();
        tp_err e;
        if ((++n & 7) == 0)
            e = tu_try(pp->p, KEY("hot"), &c);
        else
            e = tp_pool_acquire(pp->p, KEY("hot"), MS(3000), &c, NULL);
        int64_t waited = tu_now_ns() - t0;
        int64_t prev = atomic_load(&pp->max_wait_ns);
        while (waited > prev && !atomic_compare_exchange_weak(&pp->max_wait_ns, &prev, waited)) {
        }
        if (e == TP_EAGAIN)
            continue;
        if (e == TP_ETIMEDOUT) {
            atomic_fetch_add(&pp->timeouts, 1);
            continue;
        }
        if (e != TP_OK) {
            atomic_fetch_add(&pp->bad_status, 1);
            continue;
        }
        atomic_fetch_add(&pp->leases, 1);
        fake_conn *fc = fake_of(c);
        int expected = 0;
        if (!atomic_compare_exchange_strong(&fc->held, &expected, 1))
            atomic_fetch_add(&pp->bad_double, 1);
        expected = 1;
        if (!atomic_compare_exchange_strong(&fc->held, &expected, 0))
            atomic_fetch_add(&pp->bad_release, 1);
        tp_conn_release(c, 0);
    }
    return NULL;
}

static void run_pingpong(int64_t conns, int nthreads, int64_t ms)
{
    fake_connector *f = calloc(1, sizeof *f);
    assert_non_null(f);
    fake_init(f);
    tp_pool_options o;
    fake_pool_options(f, &o);
    o.max_per_key = conns;
    o.max_idle_per_key = conns;
    tp_pool *p = tu_pool_create(&o);
    pingpong pp;
    memset(&pp, 0, sizeof pp);
    pp.p = p;
    pp.stop_at_ns = tu_now_ns() + MS(ms);
    pthread_t t[8];
    for (int i = 0; i < nthreads; i++)
        tu_thread_start(&t[i], pingpong_main, &pp);
    for (int i = 0; i < nthreads; i++)
        tu_thread_join(t[i]);
    print_message("%lld connection(s), %d threads: %llu leases, max wait %.1f ms\n",
                  (long long)conns, nthreads, (unsigned long long)pp.leases,
                  (double)pp.max_wait_ns / 1e6);
    assert_int_equal(pp.bad_double, 0);
    assert_int_equal(pp.bad_release, 0);
    assert_int_equal(pp.bad_status, 0);
    assert_int_equal(pp.timeouts, 0);
    assert_true(pp.max_wait_ns < MS(1000)); /* holds are microseconds long */
    assert_true(pp.leases > 100);
    assert_int_equal(f->closed_while_held, 0);
    assert_int_equal(f->concurrent_calls, 0);
    tp_pool_destroy(p);
    assert_int_equal(f->live, 0);
    fake_destroy(f);
    free(f);
}

static void test_hot_key_single_connection(void **state)
{
    run_pingpong(1, 4, 1500);
}

static void test_hot_key_two_connections(void **state)
{
    run_pingpong(2, 4, 1500);
}

int main(void)
{
    tu_watchdog(280);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stress_invariants),
        cmocka_unit_test(test_hot_key_single_connection),
        cmocka_unit_test(test_hot_key_two_connections),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
