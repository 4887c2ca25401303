/* test_pool_hooks.c: trace events and re-entrancy.
 *
 * Every event type is emitted, in a sensible order, with sensible fields (durations that
 * cover the sleeps the test made, reasons that match what happened). And because hooks
 * and connector functions are documented to run outside every pool lock, a hook or a
 * connector that calls back into the same pool (acquire, try_acquire, release, stats)
 * must not deadlock: those tests run under a watchdog that kills a hung process. */
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
    trace_recorder_init(&x->tr, 1 << 16);
    *state = x;
    return 0;
}

static int teardown(void **state)
{
    fx *x = *state;
    tp_pool_destroy(x->p);
    trace_recorder_destroy(&x->tr);
    fake_destroy(&x->f);
    free(x);
    tu_watchdog(120);
    return 0;
}

static tp_pool *pool_traced(fx *x, int64_t max_per_key)
{
    tp_pool_options o;
    fake_pool_options(&x->f, &o);
    o.maintenance_thread = false;
    o.max_per_key = max_per_key;
    o.max_idle_per_key = max_per_key;
    trace_recorder_attach(&x->tr, &o);
    x->p = tu_pool_create(&o);
    return x->p;
}

static bool key_is(const trace_rec *ev, const char *key)
{
    return ev->keylen == strlen(key) && memcmp(ev->key, key, ev->keylen) == 0;
}

static void test_connect_acquire_release_close_events(void **state)
{
    fx *x = *state;
    tp_pool *p = pool_traced(x, 64);
    fake_set_open_delay_ms(&x->f, 10);
    tp_conn *c = tu_acquire(p, "k", MS(2000));

    trace_rec start, done, acq;
    long i_start = trace_find(&x->tr, TP_TRACE_CONNECT_START, 0, &start);
    long i_done = trace_find(&x->tr, TP_TRACE_CONNECT_DONE, 0, &done);
    long i_acq = trace_find(&x->tr, TP_TRACE_ACQUIRE, 0, &acq);
    assert_true(i_start >= 0 && i_done > i_start && i_acq > i_done);
    assert_true(key_is(&start, "k") && key_is(&done, "k") && key_is(&acq, "k"));
    assert_int_equal(done.err, TP_OK);
    assert_true(done.duration_ns >= MS(9));
    assert_true(done.duration_ns < MS(5000));
    assert_false(acq.reused);
    assert_true(acq.has_conn);
    assert_int_equal(acq.conn_id, 1);

    tu_sleep_ms(20);
    tp_conn_release(c, 0);
    trace_rec rel;
    long i_rel = trace_find(&x->tr, TP_TRACE_RELEASE, 0, &rel);
    assert_true(i_rel > i_acq);
    assert_true(key_is(&rel, "k"));
    assert_true(rel.has_conn);
    assert_false(rel.closed);
    assert_true(rel.duration_ns >= MS(19)); /* hold time */
    assert_true(rel.duration_ns < MS(5000));

    tu_sleep_ms(15);
    c = tu_acquire(p, "k", MS(2000));
    trace_rec acq2;
    long i_acq2 = trace_find(&x->tr, TP_TRACE_ACQUIRE, (size_t)i_acq + 1, &acq2);
    assert_true(i_acq2 > i_rel);
    assert_true(acq2.reused);
    assert_int_equal(acq2.conn_id, 1);
    assert_true(acq2.idle_ns >= MS(14));
    assert_true(acq2.idle_ns < MS(5000));
    assert_int_equal(trace_count(&x->tr, TP_TRACE_CONNECT_START), 1); /* no second open */

    tp_conn_release(c, TP_RELEASE_DISCARD);
    trace_rec rel2, cl;
    long i_rel2 = trace_find(&x->tr, TP_TRACE_RELEASE, (size_t)i_rel + 1, &rel2);
    long i_cl = trace_find(&x->tr, TP_TRACE_CLOSE, 0, &cl);
    assert_true(i_rel2 > i_acq2);
    assert_true(rel2.closed);
    assert_int_equal(rel2.reason, TP_CLOSE_DISCARDED);
    assert_true(i_cl >= 0);
    assert_int_equal(cl.reason, TP_CLOSE_DISCARDED);
    assert_true(key_is(&cl, "k"));
    assert_int_equal(x->tr.bad_types, 0);
}

static void test_wait_events(void **state)
{
    fx *x = *state;
    tp_pool *p = pool_traced(x, 1);
    tp_conn *held = tu_acquire(p, "k", 0);
    tp_conn *c = NULL;
    assert_int_equal(tp_pool_acquire(p, KEY("k"), MS(50), &c, NULL), TP_ETIMEDOUT);
    trace_rec ws, wt;
    long i_ws = trace_find(&x->tr, TP_TRACE_WAIT_START, 0, &ws);
    long i_wt = trace_find(&x->tr, TP_TRACE_WAIT_TIMEOUT, 0, &wt);
    assert_true(i_ws >= 0 && i_wt > i_ws);
    assert_true(key_is(&ws, "k") && key_is(&wt, "k"));
    assert_true(wt.waited_ns >= MS(49));
    assert_true(wt.waited_ns < MS(1000));

    /* A wait that succeeds: the ACQUIRE event says how long it waited. */
    tu_acq_job job = {.p = p, .key = "k", .timeout = MS(5000)};
    pthread_t t;
    tu_thread_start(&t, tu_acquire_thread, &job);
    bool ok = false;
    TU_WAIT_UNTIL(ok, tu_key_waiters(p, "k") == 1, 2000);
    assert_true(ok);
    /* The event is emitted just after the waiter is queued, outside the lock. */
    TU_WAIT_UNTIL(ok, trace_count(&x->tr, TP_TRACE_WAIT_START) == 2, 2000);
    assert_true(ok);
    tu_sleep_ms(30);
    tp_conn_release(held, 0);
    tu_thread_join(t);
    assert_int_equal(job.result, TP_OK);
    trace_rec acq;
    long i = -1, last = -1;
    while ((i = trace_find(&x->tr, TP_TRACE_ACQUIRE, (size_t)(i + 1), &acq)) >= 0)
        last = i;
    assert_true(last > i_wt);
    trace_find(&x->tr, TP_TRACE_ACQUIRE, (size_t)last, &acq);
    assert_true(acq.reused);
    assert_true(acq.waited_ns >= MS(25));
    assert_int_equal(trace_count(&x->tr, TP_TRACE_WAIT_TIMEOUT), 1);
    tp_conn_release(job.conn, 0);
}

static void test_connect_failure_event(void **state)
{
    fx *x = *state;
    tp_pool *p = pool_traced(x, 64);
    fake_fail_next(&x->f, 1, TP_EOPEN);
    tp_conn *c = NULL;
    assert_int_equal(tp_pool_acquire(p, KEY("k"), 0, &c, NULL), TP_EOPEN);
    trace_rec done;
    assert_true(trace_find(&x->tr, TP_TRACE_CONNECT_DONE, 0, &done) >= 0);
    assert_int_equal(done.err, TP_EOPEN);
    assert_int_equal(trace_count(&x->tr, TP_TRACE_ACQUIRE), 0);
}

static void test_close_event_reasons(void **state)
{
    fx *x = *state;
    tp_pool_options o;
    fake_pool_options(&x->f, &o);
    o.maintenance_thread = false;
    o.idle_timeout = MS(30);
    trace_recorder_attach(&x->tr, &o);
    tp_pool *p = x->p = tu_pool_create(&o);
    tp_conn *a = tu_acquire(p, "k", 0);
    tp_conn *b = tu_acquire(p, "k", 0);
    tp_conn_release(a, 0);
    tu_sleep_ms(80);
    (void)tp_pool_maintain(p);
    trace_rec cl;
    long i_cl = trace_find(&x->tr, TP_TRACE_CLOSE, 0, &cl);
    assert_true(i_cl >= 0);
    assert_int_equal(cl.reason, TP_CLOSE_IDLE_TIMEOUT);
    tp_pool_close(p);
    tp_conn_release(b, 0);
    trace_rec cl2;
    assert_true(trace_find(&x->tr, TP_TRACE_CLOSE, (size_t)i_cl + 1, &cl2) > i_cl);
    assert_int_equal(cl2.reason, TP_CLOSE_POOL_CLOSED);
    /* One CLOSE event per connection closed. */
    assert_int_equal(trace_count(&x->tr, TP_TRACE_CLOSE), x->f.closes);
}

/* A hook that calls back into the pool from every event, guarded against recursing into
 * itself (an inner call emits events too). */
typedef struct reenter_ctx {
    _Atomic(tp_pool *) p;
    _Atomic uint64_t inner_calls;
    _Atomic uint64_t inner_bad;
} reenter_ctx;

static _Thread_local int t_depth;

static void reentrant_hook(void *ud, const tp_trace_event *ev)
{
    reenter_ctx *rc = ud;
    tp_pool *p = atomic_load(&rc->p);
    if (p == NULL || t_depth > 0)
        return;
    t_depth++;
    tp_stats st;
    tp_pool_stats(p, &st);
    tp_conn *c = NULL;
    tp_err r;
    switch (ev->type) {
    case TP_TRACE_ACQUIRE:
        r = tu_try(p, KEY("side"), &c);
        if (r == TP_OK)
            tp_conn_release(c, 0);
        else if (r != TP_EAGAIN && r != TP_ECLOSED)
            atomic_fetch_add(&rc->inner_bad, 1);
        break;
    case TP_TRACE_RELEASE:
    case TP_TRACE_CLOSE:
    case TP_TRACE_WAIT_START:
        r = tp_pool_acquire(p, KEY("side"), 0, &c, NULL);
        if (r == TP_OK)
            tp_conn_release(c, 0);
        break;
    default:
        if (ev->key != NULL)
            (void)tp_pool_key_stats(p, ev->key, ev->keylen, &st);
        break;
    }
    atomic_fetch_add(&rc->inner_calls, 1);
    t_depth--;
}

typedef struct churn_arg {
    tp_pool *p;
    int ok;
} churn_arg;

static void *churn_thread(void *arg)
{
    churn_arg *a = arg;
    for (int i = 0; i < 200; i++) {
        tp_conn *c = NULL;
        if (tp_pool_acquire(a->p, KEY("k"), MS(200), &c, NULL) == TP_OK) {
            a->ok++;
            tp_conn_release(c, (i % 7 == 0) ? TP_RELEASE_DISCARD : 0);
        }
    }
    return NULL;
}

static void test_hook_may_reenter_pool(void **state)
{
    fx *x = *state;
    tu_watchdog(20);
    reenter_ctx rc;
    memset(&rc, 0, sizeof rc);
    tp_pool_options o;
    fake_pool_options(&x->f, &o);
    o.maintenance_thread = false;
    o.max_per_key = 2;
    o.max_idle_per_key = 2;
    o.trace = reentrant_hook;
    o.trace_ud = &rc;
    tp_pool *p = x->p = tu_pool_create(&o);
    atomic_store(&rc.p, p);

    tp_conn *a = tu_acquire(p, "k", 0);
    tp_conn *b = tu_acquire(p, "k", 0);
    tp_conn *c = NULL;
    assert_int_equal(tp_pool_acquire(p, KEY("k"), MS(20), &c, NULL), TP_ETIMEDOUT);
    tp_conn_release(a, 0);
    tp_conn_release(b, TP_RELEASE_DISCARD);

    /* The same with several threads emitting events at once. */
    churn_arg args[4];
    pthread_t t[4];
    for (int i = 0; i < 4; i++) {
        args[i].p = p;
        args[i].ok = 0;
        tu_thread_start(&t[i], churn_thread, &args[i]);
    }
    for (int i = 0; i < 4; i++)
        tu_thread_join(t[i]);
    for (int i = 0; i < 4; i++)
        assert_true(args[i].ok > 0);
    tp_pool_close(p);
    assert_true(rc.inner_calls > 0);
    assert_int_equal(rc.inner_bad, 0);
    /* rc lives on this stack frame: the pool (and its hook calls) must end here. */
    tp_pool_destroy(p);
    x->p = NULL;
}

static void connector_reenter(void *ud)
{
    reenter_ctx *rc = ud;
    tp_pool *p = atomic_load(&rc->p);
    if (p == NULL)
        return;
    tp_stats st;
    tp_pool_stats(p, &st);
    tp_conn *c = NULL;
    if (tu_try(p, KEY("other"), &c) == TP_OK)
        tp_conn_release(c, 0);
    atomic_fetch_add(&rc->inner_calls, 1);
}

static void test_connector_may_reenter_pool(void **state)
{
    fx *x = *state;
    tu_watchdog(20);
    reenter_ctx rc;
    memset(&rc, 0, sizeof rc);
    x->f.reenter = connector_reenter;
    x->f.reenter_ud = &rc;
    tp_pool_options o;
    fake_pool_options(&x->f, &o);
    o.maintenance_thread = false;
    o.check_after_idle = 0; /* check() runs on every reuse */
    tp_pool *p = x->p = tu_pool_create(&o);
    atomic_store(&rc.p, p);
    tp_conn *c = tu_acquire(p, "k", 0);  /* open */
    tp_conn_release(c, 0);               /* reset */
    c = tu_acquire(p, "k", 0);           /* check */
    tp_conn_release(c, TP_RELEASE_DISCARD); /* close */
    assert_int_equal(x->f.opens, 1);
    assert_true(x->f.checks >= 1);
    assert_true(x->f.resets >= 1);
    assert_int_equal(x->f.closes, 1);
    assert_true(rc.inner_calls >= 4);
    atomic_store(&rc.p, NULL);
    tp_pool_destroy(p);
    x->p = NULL;
    x->f.reenter = NULL;
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    tu_watchdog(120);
    const struct CMUnitTest tests[] = {
        T(test_connect_acquire_release_close_events),
        T(test_wait_events),
        T(test_connect_failure_event),
        T(test_close_event_reasons),
        T(test_hook_may_reenter_pool),
        T(test_connector_may_reenter_pool),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
