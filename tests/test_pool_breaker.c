/* test_pool_breaker.c: open failures, per-key backoff and the per-key circuit breaker.
 *
 * An open error reaches the caller quickly; consecutive failures back off (attempts in
 * the backoff window do not call open); breaker_threshold consecutive failures open the
 * breaker (breaker_min_outage 0 here: the count alone decides; test_pool_outage covers
 * the rest) and acquires with nothing to wait for fail fast with TP_EBREAKER, while the
 * key's idle and released connections still serve; after the cool-down one trial (an
 * acquire, or probe() from maintenance when the connector has one) closes or re-opens it,
 * with the cool-down doubling after a failed trial; a success resets the failure count
 * and the backoff. Maintenance is driven by hand so probes happen exactly when the test
 * says. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <tidepool/tidepool.h>

#include "support/fake_connector.h"
#include "support/test_util.h"
#include "support/trace_recorder.h"

typedef struct fx {
    fake_connector f;
    trace_recorder tr;
    tp_pool *p;
} fx;

static int setup(void **state)
{
    fx *x = calloc(1, sizeof *x);
    if (x == NULL)
        return -1;
    fake_init(&x->f);
    trace_recorder_init(&x->tr, 8192);
    *state = x;
    return 0;
}

static int teardown(void **state)
{
    fx *x = *state;
    fake_gate_open(&x->f);
    fake_fail_all(&x->f, TP_OK);
    tp_pool_destroy(x->p);
    trace_recorder_destroy(&x->tr);
    fake_destroy(&x->f);
    free(x);
    return 0;
}

/* Breaker after 3 failures, 200 ms cool-down; backoff tiny so it does not get in the
 * way of tripping the breaker. */
static void opts(fx *x, tp_pool_options *o, bool with_probe)
{
    fake_pool_options(&x->f, o);
    o->connector = fake_vtable(&x->f, with_probe);
    o->maintenance_thread = false;
    o->backoff_initial = MS(1);
    o->backoff_max = MS(2);
    o->breaker_threshold = 3;
    o->breaker_min_outage = 0; /* the count alone decides (breaker_min_outage: its own test) */
    o->breaker_cooldown = MS(200);
    o->breaker_cooldown_max = MS(2000);
    trace_recorder_attach(&x->tr, o);
}

static tp_breaker_state breaker_of(tp_pool *p, const char *key)
{
    tp_stats st;
    tu_key_stats(p, key, &st);
    return st.breaker;
}

/* Acquires with timeout 0 (never waiting out a backoff) until open() has been called
 * `target` times in total. Main thread only. */
static void drive_opens(fx *x, const char *key, uint64_t target)
{
    int64_t t0 = tu_now_ns();
    while (x->f.open_calls < target && tu_ms_since(t0) < 3000.0) {
        tp_conn *c = NULL;
        if (tp_pool_acquire(x->p, key, strlen(key), 0, &c, NULL) == TP_OK)
            tp_conn_release(c, TP_RELEASE_DISCARD);
        tu_sleep_ms(2);
    }
    assert_true(x->f.open_calls >= target);
}

static void trip(fx *x, const char *key)
{
    fake_fail_all(&x->f, TP_EOPEN);
    drive_opens(x, key, x->f.open_calls + 3);
    assert_int_equal(breaker_of(x->p, key), TP_BREAKER_OPEN);
}

/* Whether the trace holds a BREAKER event with `state` at index >= from; returns its index
 * or -1. */
static long breaker_event(fx *x, tp_breaker_state bstate, size_t from)
{
    trace_rec ev;
    long i = (long)from - 1;
    while ((i = trace_find(&x->tr, TP_TRACE_BREAKER, (size_t)(i + 1), &ev)) >= 0)
        if (ev.breaker_state == bstate)
            return i;
    return -1;
}

static void test_open_error_reaches_caller_quickly(void **state)
{
    fx *x = *state;
    tp_pool_options o;
    opts(x, &o, false);
    tp_pool *p = x->p = tu_pool_create(&o);
    fake_fail_all(&x->f, TP_EOPEN);
    tp_conn *c = NULL;
    tp_errinfo err;
    memset(&err, 0, sizeof err);
    int64_t t0 = tu_now_ns();
    assert_int_equal(tp_pool_acquire(p, KEY("k"), MS(2000), &c, &err), TP_EOPEN);
    assert_true(tu_ms_since(t0) < 500.0); /* not held until the 2 s timeout */
    assert_null(c);
    assert_int_equal(err.code, TP_EOPEN);
    assert_true(strlen(err.msg) > 0);
    tp_stats st;
    tu_key_stats(p, "k", &st);
    assert_int_equal(st.open_failures, 1);
    assert_int_equal(st.total, 0); /* the failed open's slot is given back */
    assert_int_equal(st.opening, 0);
    assert_int_equal(st.breaker, TP_BREAKER_CLOSED);
}

static void test_backoff_skips_opens(void **state)
{
    fx *x = *state;
    tp_pool_options o;
    opts(x, &o, false);
    o.backoff_initial = MS(50);
    o.backoff_max = MS(200);
    o.breaker_threshold = TP_UNLIMITED; /* backoff only */
    tp_pool *p = x->p = tu_pool_create(&o);
    fake_fail_all(&x->f, TP_EOPEN);
    tp_conn *c = NULL;
    assert_int_equal(tp_pool_acquire(p, KEY("k"), 0, &c, NULL), TP_EOPEN);
    assert_int_equal(x->f.open_calls, 1);
    /* Right after a failure: refused without touching the network. */
    for (int i = 0; i < 10; i++) {
        tp_err r = tp_pool_acquire(p, KEY("k"), 0, &c, NULL);
        assert_int_not_equal(r, TP_OK);
    }
    assert_int_equal(x->f.open_calls, 1);
    /* Hammer for 400 ms: each open waits at least half of max(50 ms, a quarter of the
     * streak's age), so at most 9 in the first 200 ms and 6 in the next 200: a handful
     * against the hundreds of attempts. */
    int attempts = 0;
    int64_t t0 = tu_now_ns();
    while (tu_ms_since(t0) < 400.0) {
        if (tp_pool_acquire(p, KEY("k"), 0, &c, NULL) == TP_OK)
            tp_conn_release(c, 0);
        attempts++;
        tu_sleep_ms(1);
    }
    print_message("%d attempts, %d opens\n", attempts, (int)x->f.open_calls);
    assert_true(attempts >= 100);
    assert_true(x->f.open_calls >= 2); /* it does retry after the window */
    assert_true(x->f.open_calls <= 16);
    assert_int_equal(breaker_of(p, "k"), TP_BREAKER_CLOSED);

    fake_fail_all(&x->f, TP_OK);
    tu_sleep_ms(600);
    c = tu_acquire(p, "k", 0);
    tp_conn_release(c, 0);
}

static void test_breaker_opens_and_fails_fast(void **state)
{
    fx *x = *state;
    tp_pool_options o;
    opts(x, &o, false);
    tp_pool *p = x->p = tu_pool_create(&o);
    trip(x, "k");
    uint64_t calls = x->f.open_calls;
    tp_conn *c = NULL;
    tp_errinfo err;
    memset(&err, 0, sizeof err);
    int64_t t0 = tu_now_ns();
    assert_int_equal(tp_pool_acquire(p, KEY("k"), MS(5000), &c, &err), TP_EBREAKER);
    assert_true(tu_ms_since(t0) < 20.0);
    assert_int_equal(err.code, TP_EBREAKER);
    assert_true(strlen(err.msg) > 0);
    assert_int_equal(x->f.open_calls, calls);
    tp_stats st;
    tu_key_stats(p, "k", &st);
    assert_int_equal(st.breaker, TP_BREAKER_OPEN);
    assert_true(st.rejects_breaker >= 1);
    assert_int_equal(st.open_failures, 3);
    assert_true(breaker_event(x, TP_BREAKER_OPEN, 0) >= 0);
}

static void test_breaker_is_per_key(void **state)
{
    fx *x = *state;
    tp_pool_options o;
    opts(x, &o, false);
    tp_pool *p = x->p = tu_pool_create(&o);
    trip(x, "bad");
    fake_fail_all(&x->f, TP_OK);
    tp_conn *c = NULL;
    assert_int_equal(tp_pool_acquire(p, KEY("bad"), 0, &c, NULL), TP_EBREAKER);
    c = tu_acquire(p, "good", 0);
    tp_conn_release(c, 0);
    assert_int_equal(breaker_of(p, "good"), TP_BREAKER_CLOSED);
    assert_int_equal(tu_pool_stats(p).breaker, TP_BREAKER_CLOSED); /* CLOSED for a pool */
}

static void test_half_open_trial_success_closes(void **state)
{
    fx *x = *state;
    tp_pool_options o;
    opts(x, &o, false);
    tp_pool *p = x->p = tu_pool_create(&o);
    trip(x, "k");
    long opened_at = breaker_event(x, TP_BREAKER_OPEN, 0);
    fake_fail_all(&x->f, TP_OK);
    uint64_t calls = x->f.open_calls;
    tu_sleep_ms(200 + 150);
    tp_conn *c = tu_acquire(p, "k", MS(1000)); /* the trial */
    assert_int_equal(x->f.open_calls, calls + 1);
    assert_int_equal(breaker_of(p, "k"), TP_BREAKER_CLOSED);
    assert_true(breaker_event(x, TP_BREAKER_CLOSED, (size_t)opened_at + 1) >= 0);
    /* Back to normal: more connections can be opened. */
    tp_conn *c2 = tu_acquire(p, "k", 0);
    assert_int_equal(x->f.opens, 2);
    tp_conn_release(c, 0);
    tp_conn_release(c2, 0);
}

static void test_half_open_trial_failure_reopens_longer(void **state)
{
    fx *x = *state;
    tp_pool_options o;
    opts(x, &o, false);
    tp_pool *p = x->p = tu_pool_create(&o);
    trip(x, "k");
    uint64_t calls = x->f.open_calls;
    tu_sleep_ms(200 + 150);
    tp_conn *c = NULL;
    tp_err r = tp_pool_acquire(p, KEY("k"), 0, &c, NULL); /* the trial, still failing */
    int64_t trial_at = tu_now_ns();
    assert_true(r == TP_EOPEN || r == TP_EBREAKER);
    assert_int_equal(x->f.open_calls, calls + 1); /* exactly one trial */
    assert_int_equal(breaker_of(p, "k"), TP_BREAKER_OPEN);
    assert_int_equal(tp_pool_acquire(p, KEY("k"), 0, &c, NULL), TP_EBREAKER);
    /* The cool-down doubled (400 ms): 250 ms later it is still open. */
    tu_sleep_ms(250);
    assert_int_equal(tp_pool_acquire(p, KEY("k"), 0, &c, NULL), TP_EBREAKER);
    assert_int_equal(x->f.open_calls, calls + 1);
    /* After the longer cool-down, a successful trial closes it. */
    fake_fail_all(&x->f, TP_OK);
    while (tu_ms_since(trial_at) < 400.0 + 200.0)
        tu_sleep_ms(10);
    c = tu_acquire(p, "k", MS(1000));
    assert_int_equal(breaker_of(p, "k"), TP_BREAKER_CLOSED);
    tp_conn_release(c, 0);
}

static void test_half_open_allows_one_trial(void **state)
{
    fx *x = *state;
    tp_pool_options o;
    opts(x, &o, false);
    tp_pool *p = x->p = tu_pool_create(&o);
    trip(x, "k");
    fake_fail_all(&x->f, TP_OK);
    uint64_t calls = x->f.open_calls;
    tu_sleep_ms(200 + 150);
    fake_gate_close(&x->f);
    tu_acq_job job = {.p = p, .key = "k", .timeout = MS(5000)};
    pthread_t t;
    tu_thread_start(&t, tu_acquire_thread, &job);
    bool ok = false;
    TU_WAIT_UNTIL(ok, fake_gate_waiting(&x->f) == 1, 2000);
    assert_true(ok);
    /* While the trial is in flight no second open is let through. */
    tp_conn *c = NULL;
    tp_err r = tp_pool_acquire(p, KEY("k"), 0, &c, NULL);
    assert_int_not_equal(r, TP_OK);
    assert_int_equal(x->f.open_calls, calls + 1);
    fake_gate_open(&x->f);
    tu_thread_join(t);
    assert_int_equal(job.result, TP_OK);
    assert_int_equal(breaker_of(p, "k"), TP_BREAKER_CLOSED);
    tp_conn_release(job.conn, 0);
}

static void test_probe_closes_breaker_without_user_failure(void **state)
{
    fx *x = *state;
    tp_pool_options o;
    opts(x, &o, true);
    tp_pool *p = x->p = tu_pool_create(&o);
    trip(x, "k");
    uint64_t failures = x->f.open_failures;
    (void)tp_pool_maintain(p); /* cool-down not over: no probe yet */
    assert_int_equal(x->f.probes, 0);
    fake_fail_all(&x->f, TP_OK);
    fake_set_probe_result(&x->f, TP_OK);
    tu_sleep_ms(200 + 150);
    (void)tp_pool_maintain(p);
    assert_int_equal(x->f.probes, 1);
    assert_int_equal(breaker_of(p, "k"), TP_BREAKER_CLOSED);
    assert_int_equal(x->f.open_failures, failures);
    /* The first user request after recovery simply works. */
    tp_conn *c = tu_acquire(p, "k", 0);
    tp_conn_release(c, 0);
    tp_stats st;
    tu_key_stats(p, "k", &st);
    assert_int_equal(st.open_failures, failures);
}

static void test_failed_probe_keeps_breaker_open(void **state)
{
    fx *x = *state;
    tp_pool_options o;
    opts(x, &o, true);
    tp_pool *p = x->p = tu_pool_create(&o);
    trip(x, "k");
    uint64_t calls = x->f.open_calls;
    fake_set_probe_result(&x->f, TP_ESYS);
    tu_sleep_ms(200 + 150);
    (void)tp_pool_maintain(p);
    assert_int_equal(x->f.probes, 1);
    assert_int_equal(breaker_of(p, "k"), TP_BREAKER_OPEN);
    tp_conn *c = NULL;
    assert_int_equal(tp_pool_acquire(p, KEY("k"), 0, &c, NULL), TP_EBREAKER);
    assert_int_equal(x->f.open_calls, calls);
}

static void test_success_resets_failure_count(void **state)
{
    fx *x = *state;
    tp_pool_options o;
    opts(x, &o, false);
    tp_pool *p = x->p = tu_pool_create(&o);
    /* 2 failures, a success, 2 failures: never 3 in a row, so never open. */
    for (int round = 0; round < 3; round++) {
        fake_fail_next(&x->f, 2, TP_EOPEN);
        drive_opens(x, "k", x->f.open_calls + 2);
        assert_int_equal(breaker_of(p, "k"), TP_BREAKER_CLOSED);
        tp_conn *c = NULL;
        tp_err r = TP_EOPEN;
        int64_t t0 = tu_now_ns();
        while (r != TP_OK && tu_ms_since(t0) < 2000.0) {
            r = tp_pool_acquire(p, KEY("k"), 0, &c, NULL);
            if (r != TP_OK)
                tu_sleep_ms(2);
        }
        assert_int_equal(r, TP_OK);
        tp_conn_release(c, TP_RELEASE_DISCARD); /* no idle: the next acquire must open */
    }
    assert_int_equal(breaker_of(p, "k"), TP_BREAKER_CLOSED);
    assert_int_equal(breaker_event(x, TP_BREAKER_OPEN, 0), -1);
}

static void test_success_resets_backoff(void **state)
{
    fx *x = *state;
    tp_pool_options o;
    opts(x, &o, false);
    o.backoff_initial = MS(40);
    o.backoff_max = MS(2000);
    o.breaker_threshold = TP_UNLIMITED;
    tp_pool *p = x->p = tu_pool_create(&o);
    /* Four failures in a row grow the backoff to ~320 ms or more. */
    fake_fail_all(&x->f, TP_EOPEN);
    drive_opens(x, "k", 4);
    fake_fail_all(&x->f, TP_OK);
    tp_conn *c = NULL;
    tp_err r = TP_EOPEN;
    int64_t t0 = tu_now_ns();
    while (r != TP_OK && tu_ms_since(t0) < 3000.0) {
        r = tp_pool_acquire(p, KEY("k"), 0, &c, NULL);
        if (r != TP_OK)
            tu_sleep_ms(5);
    }
    assert_int_equal(r, TP_OK);
    tp_conn_release(c, TP_RELEASE_DISCARD);
    /* One failure after a success backs off from the start (~40 ms), not from ~640. */
    fake_fail_next(&x->f, 1, TP_EOPEN);
    assert_int_not_equal(tp_pool_acquire(p, KEY("k"), 0, &c, NULL), TP_OK);
    uint64_t calls = x->f.open_calls;
    tu_sleep_ms(130);
    r = tp_pool_acquire(p, KEY("k"), 0, &c, NULL);
    assert_int_equal(x->f.open_calls, calls + 1);
    assert_int_equal(r, TP_OK);
    tp_conn_release(c, 0);
}

static void test_breaker_stops_opening_not_serving(void **state)
{
    /* The breaker opens while the key holds one healthy idle connection (the failing
     * opens are maintenance's attempts to keep min_idle_per_key warm). The connection
     * stays, is handed out, and an acquire while it is leased waits for it instead of
     * failing with TP_EBREAKER. */
    fx *x = *state;
    tp_pool_options o;
    opts(x, &o, false);
    o.min_idle_per_key = 2;
    tp_pool *p = x->p = tu_pool_create(&o);
    tp_conn *c = tu_acquire(p, "k", 0);
    uint64_t id = fake_of(c)->id;
    tp_conn_release(c, 0);
    fake_fail_all(&x->f, TP_EOPEN);
    int64_t t0 = tu_now_ns();
    while (breaker_of(p, "k") != TP_BREAKER_OPEN && tu_ms_since(t0) < 3000.0) {
        (void)tp_pool_maintain(p);
        tu_sleep_ms(3);
    }
    assert_int_equal(breaker_of(p, "k"), TP_BREAKER_OPEN);
    assert_int_equal(fake_close_count_for(&x->f, id), 0);
    tp_stats st;
    tu_key_stats(p, "k", &st);
    assert_int_equal(st.closes[TP_CLOSE_BREAKER], 0);
    assert_int_equal(st.idle, 1);

    uint64_t calls = x->f.open_calls;
    c = tu_acquire(p, "k", 0); /* the idle one, breaker or not */
    assert_int_equal(fake_of(c)->id, id);
    tu_acq_job job = {.p = p, .key = "k", .timeout = MS(5000)};
    pthread_t t;
    tu_thread_start(&t, tu_acquire_thread, &job);
    tu_sleep_ms(50); /* it queues behind the lease */
    tp_conn_release(c, 0);
    tu_thread_join(t);
    assert_int_equal(job.result, TP_OK);
    assert_int_equal(fake_of(job.conn)->id, id);
    tp_conn_release(job.conn, 0);
    assert_int_equal(x->f.open_calls, calls); /* and the breaker let no open through */
    tu_key_stats(p, "k", &st);
    assert_int_equal(st.rejects_breaker, 0);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    tu_watchdog(120);
    const struct CMUnitTest tests[] = {
        T(test_open_error_reaches_caller_quickly),
        T(test_backoff_skips_opens),
        T(test_breaker_opens_and_fails_fast),
        T(test_breaker_is_per_key),
        T(test_half_open_trial_success_closes),
        T(test_half_open_trial_failure_reopens_longer),
        T(test_half_open_allows_one_trial),
        T(test_probe_closes_breaker_without_user_failure),
        T(test_failed_probe_keeps_breaker_open),
        T(test_success_resets_failure_count),
        T(test_success_resets_backoff),
        T(test_breaker_stops_opening_not_serving),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
