/* test_pool_outage.c: the pool through the faults servers have: a restart (every open
 * failing together, then a short outage), a server at its connection limit, a process
 * out of descriptors, and a breaker open while the key still holds connections.
 *
 * What must hold: a burst of opens that fail together counts once for the breaker; a
 * failing key opens one connection at a time; an acquire waits through a restart's
 * refusals (at a destination reached before) instead of failing, and the breaker opens
 * only once the failures have lasted breaker_min_outage; "too many clients" and a local
 * shortage never open the breaker and never fail an acquire that a held connection can
 * serve; an open breaker stops opening, not serving, in every form of acquire, and its
 * message carries the last open error. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <tidepool/tidepool.h>

#include "support/fake_connector.h"
#include "support/pool_fixture.h"
#include "support/test_util.h"

static tp_breaker_state breaker_of(tp_pool *p, const char *key)
{
    tp_stats st;
    tu_key_stats(p, key, &st);
    return st.breaker;
}

/* The fake's pool, maintenance driven by hand, with a breaker that the count alone opens
 * (breaker_min_outage 0) unless the test says otherwise. */
static tp_pool *make_pool(pool_fx *x, int64_t threshold, int64_t min_outage, int64_t max_per_key)
{
    tp_pool_options o;
    pool_fx_options(x, &o);
    o.max_per_key = max_per_key;
    o.max_idle_per_key = max_per_key;
    o.breaker_threshold = threshold;
    o.breaker_min_outage = min_outage;
    o.breaker_cooldown = MS(200);
    return x->p = tu_pool_create(&o);
}

/* Opens one connection for key and closes it again: the key has reached its destination
 * once (a later refusal looks like a restart) and holds nothing. */
static void reach(pool_fx *x, const char *key)
{
    tp_conn *c = tu_acquire(x->p, key, MS(1000));
    tp_conn_release(c, TP_RELEASE_DISCARD);
}

/* Reaches "k", then one open fails: the key is in a failing streak, holding nothing. */
static void start_streak(pool_fx *x)
{
    reach(x, "k");
    fake_fail_next(&x->f, 1, TP_EOPEN);
    tp_conn *c = NULL;
    assert_int_equal(tp_pool_acquire(x->p, KEY("k"), 0, &c, NULL), TP_EOPEN);
}

static void test_burst_of_failures_counts_once(void **state)
{
    pool_fx *x = *state;
    tp_pool *p = make_pool(x, 3, 0, 8);
    reach(x, "k");
    /* Eight opens start together and fail together, as when a server restarts. */
    fake_fail_all(&x->f, TP_ECONNREFUSED);
    fake_gate_close(&x->f);
    tu_acq_job jobs[8];
    pthread_t t[8];
    for (int i = 0; i < 8; i++) {
        jobs[i] = (tu_acq_job){.p = p, .key = "k", .timeout = 0};
        tu_thread_start(&t[i], tu_acquire_thread, &jobs[i]);
    }
    bool all = false;
    TU_WAIT_UNTIL(all, fake_gate_waiting(&x->f) == 8, 3000);
    assert_true(all);
    fake_gate_open(&x->f);
    for (int i = 0; i < 8; i++) {
        tu_thread_join(t[i]);
        assert_int_equal(jobs[i].result, TP_ECONNREFUSED); /* timeout 0: no waiting */
    }
    tp_stats st;
    tu_key_stats(p, "k", &st);
    assert_int_equal(st.open_failures, 8);
    /* One event, not eight: threshold 3 is not reached. */
    assert_int_equal(st.breaker, TP_BREAKER_CLOSED);
    /* Two more failures, each its own attempt, make three. */
    uint64_t calls = x->f.open_calls;
    int64_t t0 = tu_now_ns();
    while (x->f.open_calls < calls + 2 && tu_ms_since(t0) < 2000.0) {
        tp_conn *c = NULL;
        if (tp_pool_acquire(p, KEY("k"), 0, &c, NULL) == TP_OK)
            tp_conn_release(c, TP_RELEASE_DISCARD);
        tu_sleep_ms(1);
    }
    assert_int_equal(breaker_of(p, "k"), TP_BREAKER_OPEN);
}

static void test_failing_key_opens_one_at_a_time(void **state)
{
    pool_fx *x = *state;
    tp_pool *p = make_pool(x, TP_UNLIMITED, 0, 8);
    start_streak(x);
    /* Failing now: four acquires arrive; one open goes out, the others wait for it. */
    uint64_t calls = x->f.open_calls;
    fake_gate_close(&x->f);
    tu_acq_job jobs[4];
    pthread_t t[4];
    for (int i = 0; i < 4; i++) {
        jobs[i] = (tu_acq_job){.p = p, .key = "k", .timeout = MS(3000)};
        tu_thread_start(&t[i], tu_acquire_thread, &jobs[i]);
    }
    bool one = false;
    TU_WAIT_UNTIL(one, fake_gate_waiting(&x->f) == 1, 2000);
    assert_true(one);
    tu_sleep_ms(50);
    assert_int_equal(fake_gate_waiting(&x->f), 1);
    assert_int_equal(x->f.open_calls, calls + 1);
    /* It succeeds: the streak is over and the others open at once. */
    fake_gate_open(&x->f);
    for (int i = 0; i < 4; i++) {
        tu_thread_join(t[i]);
        assert_int_equal(jobs[i].result, TP_OK);
        assert_true((double)(jobs[i].end_ns - jobs[i].start_ns) / 1e6 < 1500.0);
    }
    for (int i = 0; i < 4; i++)
        tp_conn_release(jobs[i].conn, 0);
    assert_int_equal(x->f.opens, 1 + 4);
}

static void test_restart_refusals_are_waited_through(void **state)
{
    pool_fx *x = *state;
    tp_pool *p = make_pool(x, 5, MS(1000), 8);
    reach(x, "k");
    /* The server restarts: three refusals, then it is back. */
    fake_fail_next(&x->f, 3, TP_ECONNREFUSED);
    tp_conn *c = NULL;
    tp_errinfo e;
    int64_t t0 = tu_now_ns();
    tp_err rc = tp_pool_acquire(p, KEY("k"), MS(3000), &c, &e);
    double ms = tu_ms_since(t0);
    print_message("acquire through 3 refusals: %s after %.1f ms\n", tp_err_name(rc), ms);
    assert_int_equal(rc, TP_OK);
    assert_int_equal(x->f.open_calls, 1 + 4);
    /* Backoffs of 5-10 ms each (a quarter of a few ms of outage is below the minimum). */
    assert_true(ms < 500.0);
    assert_int_equal(breaker_of(p, "k"), TP_BREAKER_CLOSED);
    tp_conn_release(c, 0);
}

static void test_never_reached_refusal_fails_at_once(void **state)
{
    pool_fx *x = *state;
    tp_pool *p = make_pool(x, 5, MS(1000), 8);
    /* A wrong address, most likely: the caller learns it now, not after a wait. */
    fake_fail_all(&x->f, TP_ECONNREFUSED);
    tp_conn *c = NULL;
    tp_errinfo e;
    int64_t t0 = tu_now_ns();
    assert_int_equal(tp_pool_acquire(p, KEY("k"), MS(3000), &c, &e), TP_ECONNREFUSED);
    assert_true(tu_ms_since(t0) < 200.0);
    assert_int_equal(x->f.open_calls, 1);
}

static void test_breaker_waits_for_min_outage(void **state)
{
    pool_fx *x = *state;
    tp_pool *p = make_pool(x, 3, MS(300), 8);
    reach(x, "k");
    fake_fail_all(&x->f, TP_ECONNREFUSED);
    /* Two acquires wait through the refusals; the breaker opens once they have lasted
     * 300 ms, and both learn it then. */
    tu_acq_job other = {.p = p, .key = "k", .timeout = MS(5000)};
    pthread_t t;
    tu_thread_start(&t, tu_acquire_thread, &other);
    tp_conn *c = NULL;
    tp_errinfo e;
    int64_t t0 = tu_now_ns();
    tp_err rc = tp_pool_acquire(p, KEY("k"), MS(5000), &c, &e);
    double ms = tu_ms_since(t0);
    tu_thread_join(t);
    print_message("%s after %.1f ms (%llu opens); other: %s: %s\n", tp_err_name(rc), ms,
                  (unsigned long long)x->f.open_calls, tp_err_name(other.result),
                  other.err.msg);
    assert_true(rc == TP_ECONNREFUSED || rc == TP_EBREAKER);
    assert_true(other.result == TP_ECONNREFUSED || other.result == TP_EBREAKER);
    assert_true(rc == TP_EBREAKER || other.result == TP_EBREAKER);
    assert_true(ms >= 300.0 && ms < 3000.0);
    assert_int_equal(breaker_of(p, "k"), TP_BREAKER_OPEN);
    /* Whoever got TP_EBREAKER was told why. */
    const tp_errinfo *be = rc == TP_EBREAKER ? &e : &other.err;
    assert_non_null(strstr(be->msg, "last open error: fake connector: injected open failure"));
}

/* Workers that lease for about 100 us in a loop and count what they get. */
typedef struct loop_job {
    tp_pool *p;
    int64_t run_ms;
    uint64_t ok;
    uint64_t errors[64];  /* by -code */
    int64_t max_wait_ns;  /* the longest acquire after the first 300 ms */
} loop_job;

static void *lease_loop(void *arg)
{
    loop_job *j = arg;
    int64_t start = tu_now_ns();
    int64_t end = start + MS(j->run_ms);
    while (tu_now_ns() < end) {
        tp_conn *c = NULL;
        int64_t t0 = tu_now_ns();
        tp_err rc = tp_pool_acquire(j->p, KEY("k"), TP_DURATION_DEFAULT, &c, NULL);
        int64_t waited = tu_now_ns() - t0;
        if (rc != TP_OK) {
            j->errors[(-rc) & 63]++;
            continue;
        }
        if (t0 - start > MS(300) && waited > j->max_wait_ns)
            j->max_wait_ns = waited;
        j->ok++;
        tu_sleep_ns(100 * TP_NSEC_PER_USEC);
        tp_conn_release(c, 0);
    }
    return NULL;
}

/* Runs four lease loops for ms; returns the leases granted and asserts no error. The
 * longest acquire after the first 300 ms goes to *max_wait_ms (may be NULL). */
static uint64_t run_loops(tp_pool *p, int64_t ms, double *max_wait_ms)
{
    loop_job jobs[4];
    pthread_t t[4];
    for (int i = 0; i < 4; i++) {
        jobs[i] = (loop_job){.p = p, .run_ms = ms};
        tu_thread_start(&t[i], lease_loop, &jobs[i]);
    }
    uint64_t ok = 0, errors = 0;
    int64_t max_wait = 0;
    for (int i = 0; i < 4; i++) {
        tu_thread_join(t[i]);
        ok += jobs[i].ok;
        max_wait = jobs[i].max_wait_ns > max_wait ? jobs[i].max_wait_ns : max_wait;
        for (int k = 0; k < 64; k++) {
            if (jobs[i].errors[k] > 0)
                print_error("%llu x %s\n", (unsigned long long)jobs[i].errors[k],
                            tp_err_name(-k));
            errors += jobs[i].errors[k];
        }
    }
    print_message("%llu leases, %llu errors, longest acquire %.1f ms\n", (unsigned long long)ok,
                  (unsigned long long)errors, (double)max_wait / 1e6);
    assert_int_equal(errors, 0);
    if (max_wait_ms != NULL)
        *max_wait_ms = (double)max_wait / 1e6;
    return ok;
}

static void test_server_full_waits_for_held_connections(void **state)
{
    pool_fx *x = *state;
    /* A server that takes two connections and answers "too many clients" beyond. */
    tp_pool *p = make_pool(x, 2, 0, 4);
    fake_set_capacity(&x->f, 2);
    assert_true(run_loops(p, 1000, NULL) > 1000);
    tp_stats st;
    tu_key_stats(p, "k", &st);
    print_message("opens %llu, open failures %llu\n", (unsigned long long)st.opens,
                  (unsigned long long)st.open_failures);
    assert_int_equal(st.breaker, TP_BREAKER_CLOSED);
    assert_int_equal(st.rejects_breaker, 0);
    assert_int_equal(st.opens, 2);
    /* One try for a third connection at a time, paced: a handful per second. */
    assert_true(st.open_failures >= 1 && st.open_failures <= 40);
}

static void test_room_tries_are_not_paid_by_requests(void **state)
{
    /* The server takes two connections and needs 200 ms to refuse a third. Once the
     * first round is over, the pool's tries for a third connection are maintenance's:
     * no acquire waits for one of those 200 ms refusals. */
    pool_fx *x = *state;
    tp_pool_options o;
    pool_fx_options(x, &o);
    o.maintenance_thread = true;
    o.max_per_key = 4;
    o.max_idle_per_key = 4;
    x->p = tu_pool_create(&o);
    fake_set_capacity(&x->f, 2);
    fake_set_open_delay_ms(&x->f, 200);
    double max_wait_ms = 0;
    run_loops(x->p, 1500, &max_wait_ms);
    tp_stats st;
    tu_key_stats(x->p, "k", &st);
    print_message("open calls %llu, opens %llu\n", (unsigned long long)x->f.open_calls,
                  (unsigned long long)st.opens);
    assert_int_equal(st.opens, 2);
    assert_true(x->f.open_calls >= 5); /* it kept trying, paced */
    assert_true(max_wait_ms < 150.0);
}

static void test_local_shortage_never_opens_the_breaker(void **state)
{
    pool_fx *x = *state;
    tp_pool *p = make_pool(x, 2, 0, 8);
    tp_conn *a = tu_acquire(p, "k", 0);
    tp_conn *b = tu_acquire(p, "k", 0);
    tp_conn_release(a, 0);
    tp_conn_release(b, 0);
    /* The process is out of descriptors: the two connections it has serve everyone. */
    fake_fail_all(&x->f, TP_ENOFD);
    run_loops(p, 500, NULL);
    tp_stats st;
    tu_key_stats(p, "k", &st);
    assert_int_equal(st.breaker, TP_BREAKER_CLOSED);
    assert_true(st.open_failures >= 1);
    assert_int_equal(st.opens, 2);
    assert_int_equal(x->f.closes, 0); /* no healthy connection closed */
    assert_int_equal(tu_closes_total(&st), 0);
}

/* Completions of asynchronous acquires. */
typedef struct async_rec {
    atomic_int calls;
    _Atomic tp_err status;
    tp_conn *_Atomic conn;
} async_rec;

static void on_async(void *ud, tp_err status, tp_acquired kind, tp_conn *conn,
                        const tp_errinfo *err)
{
    (void)kind;
    (void)err;
    async_rec *r = ud;
    atomic_store(&r->status, status);
    atomic_store(&r->conn, conn);
    atomic_fetch_add(&r->calls, 1);
}

/* Opens the breaker of key "k" with opens failing TP_EOPEN. */
static void trip(pool_fx *x)
{
    fake_fail_all(&x->f, TP_EOPEN);
    int64_t t0 = tu_now_ns();
    while (breaker_of(x->p, "k") != TP_BREAKER_OPEN && tu_ms_since(t0) < 3000.0) {
        tp_conn *c = NULL;
        if (tp_pool_acquire(x->p, KEY("k"), 0, &c, NULL) == TP_OK)
            tp_conn_release(c, TP_RELEASE_DISCARD);
        tu_sleep_ms(1);
    }
    assert_int_equal(breaker_of(x->p, "k"), TP_BREAKER_OPEN);
}

static void test_open_breaker_serves_async_waiters(void **state)
{
    pool_fx *x = *state;
    tp_pool *p = make_pool(x, 3, 0, 4);
    tp_conn *held = tu_acquire(p, "k", 0);
    trip(x);
    /* With a connection held, an asynchronous acquire queues for it. */
    async_rec r = {0};
    tp_conn *c = NULL;
    tp_errinfo e;
    assert_int_equal(tu_async(p, KEY("k"), MS(3000), 0, on_async, &r, &c, NULL, &e),
                     TP_ACQUIRED_PENDING);
    tp_conn_release(held, 0);
    bool done = false;
    TU_WAIT_UNTIL(done, atomic_load(&r.calls) == 1, 2000);
    assert_true(done);
    assert_int_equal(atomic_load(&r.status), TP_OK);
    /* With nothing held, it fails fast, and says why. */
    tp_conn_release(atomic_load(&r.conn), TP_RELEASE_DISCARD);
    memset(&e, 0, sizeof e);
    assert_int_equal(tu_async(p, KEY("k"), MS(3000), 0, on_async, &r, &c, NULL, &e),
                     TP_EBREAKER);
    assert_non_null(strstr(e.msg, "last open error: fake connector: injected open failure"));
    assert_int_equal(atomic_load(&r.calls), 1);
}

static void test_recovery_serves_queued_async_waiters(void **state)
{
    pool_fx *x = *state;
    tp_pool *p = make_pool(x, TP_UNLIMITED, 0, 8);
    start_streak(x);
    tu_sleep_ms(30); /* past the backoff: the next open is the streak's one attempt */
    fake_gate_close(&x->f);
    tu_acq_job first = {.p = p, .key = "k", .timeout = MS(3000)};
    pthread_t t;
    tu_thread_start(&t, tu_acquire_thread, &first);
    bool at_gate = false;
    TU_WAIT_UNTIL(at_gate, fake_gate_waiting(&x->f) == 1, 2000);
    assert_true(at_gate);
    async_rec r[3] = {0};
    tp_conn *c = NULL;
    for (int i = 0; i < 3; i++)
        assert_int_equal(
            tu_async(p, KEY("k"), MS(3000), 0, on_async, &r[i], &c, NULL, NULL),
            TP_ACQUIRED_PENDING);
    /* The attempt succeeds: the waiters it held back open now, with no maintenance pass
     * (this pool has no maintenance thread, and none is run by hand). */
    fake_gate_open(&x->f);
    tu_thread_join(t);
    assert_int_equal(first.result, TP_OK);
    bool done = false;
    TU_WAIT_UNTIL(done, atomic_load(&r[0].calls) + atomic_load(&r[1].calls) +
                                atomic_load(&r[2].calls) == 3, 2000);
    assert_true(done);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(atomic_load(&r[i].status), TP_OK);
        tp_conn_release(atomic_load(&r[i].conn), 0);
    }
    tp_conn_release(first.conn, 0);
}

static void test_min_outage_option_validated(void **state)
{
    pool_fx *x = *state;
    tp_pool_options o;
    pool_fx_options(x, &o);
    o.breaker_min_outage = -1;
    tp_errinfo e;
    assert_int_equal(tp_pool_create(&o, &x->p, &e), TP_EINVAL);
    assert_non_null(strstr(e.msg, "breaker_min_outage"));
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, pool_fx_setup, pool_fx_teardown)

int main(void)
{
    tu_watchdog(120);
    const struct CMUnitTest tests[] = {
        T(test_burst_of_failures_counts_once),
        T(test_failing_key_opens_one_at_a_time),
        T(test_restart_refusals_are_waited_through),
        T(test_never_reached_refusal_fails_at_once),
        T(test_breaker_waits_for_min_outage),
        T(test_server_full_waits_for_held_connections),
        T(test_room_tries_are_not_paid_by_requests),
        T(test_local_shortage_never_opens_the_breaker),
        T(test_open_breaker_serves_async_waiters),
        T(test_recovery_serves_queued_async_waiters),
        T(test_min_outage_option_validated),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
