/* test_pool_slots.c: open slots for callers that open connections themselves
 * (TP_ACQUIRE_CALLER_OPENS, as the HTTP event engine does): a slot counts as "opening"
 * against the limits until tp_conn_open_done() turns it into a lease or
 * tp_conn_open_failed() gives it back with backoff and breaker accounting; slots are
 * also granted to queued callers through the callback. */
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
    int calls;
    int last_status;
    tp_conn *last_conn;
} fx;

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

static tp_pool *make_pool(fx *x, int64_t max_per_key)
{
    tp_pool_options o;
    fake_pool_options(&x->f, &o);
    o.maintenance_thread = false;
    o.max_per_key = max_per_key;
    o.max_idle_per_key = max_per_key;
    o.breaker_threshold = 2;
    o.breaker_min_outage = 0;
    return x->p = tu_pool_create(&o);
}

static void on_acquired(void *ud, tp_err status, tp_acquired kind, tp_conn *conn,
                        const tp_errinfo *err)
{
    (void)err;
    fx *x = ud;
    x->calls++;
    x->last_status = status != TP_OK ? (int)status : (int)kind;
    x->last_conn = conn;
}

static int acq(fx *x, tp_conn **out)
{
    return tu_async(x->p, KEY("k"), MS(5000), TP_ACQUIRE_CALLER_OPENS, on_acquired, x, out,
                    NULL, NULL);
}

static void *dummy_conn(fx *x)
{
    /* A connection the "caller" made: open one through the fake so close() accepts it. */
    void *c = NULL;
    tp_errinfo e;
    assert_int_equal(fake_open(&x->f, "k", 1, TP_DURATION_INFINITE, &c, &e), TP_OK);
    return c;
}

static void test_slot_then_done_is_a_lease(void **state)
{
    fx *x = *state;
    make_pool(x, 2);
    tp_conn *slot = NULL;
    assert_int_equal(acq(x, &slot), TP_ACQUIRED_OPEN_SLOT);
    assert_non_null(slot);
    size_t klen;
    const void *k = tp_conn_key(slot, &klen);
    assert_int_equal(klen, 1);
    assert_memory_equal(k, "k", 1);
    tp_stats st = tu_pool_stats(x->p);
    assert_int_equal(st.opening, 1);
    assert_int_equal(st.total, 1);
    assert_int_equal(x->f.open_calls, 0); /* the pool did not open anything itself */

    assert_int_equal(tp_conn_open_done(slot, dummy_conn(x), &slot), TP_OK);
    st = tu_pool_stats(x->p);
    assert_int_equal(st.opening, 0);
    assert_int_equal(st.in_use, 1);
    assert_int_equal(st.opens, 1);
    assert_int_equal(st.acquires, 1);
    tp_conn_release(slot, 0);
    /* Now idle: the next acquire gets it back as a plain connection. */
    tp_conn *c = NULL;
    assert_int_equal(acq(x, &c), TP_OK);
    assert_ptr_equal(c, slot);
    tp_conn_release(c, 0);
    assert_int_equal(x->calls, 0);
}

static void test_slots_count_against_limits_and_queue(void **state)
{
    fx *x = *state;
    make_pool(x, 1);
    tp_conn *slot = NULL, *c = NULL;
    assert_int_equal(acq(x, &slot), TP_ACQUIRED_OPEN_SLOT);
    /* The only slot is opening: the next request queues. */
    assert_int_equal(acq(x, &c), TP_ACQUIRED_PENDING);
    assert_int_equal(tp_conn_open_done(slot, dummy_conn(x), &slot), TP_OK);
    tp_conn_release(slot, 0);
    assert_int_equal(x->calls, 1);
    assert_int_equal(x->last_status, TP_OK);
    assert_ptr_equal(x->last_conn, slot);
    tp_conn_release(x->last_conn, 0);
}

static void test_failed_slot_backs_off_and_is_granted_to_waiter(void **state)
{
    fx *x = *state;
    make_pool(x, 1);
    tp_conn *slot = NULL, *c = NULL;
    tp_errinfo e;
    /* A destination never reached: a refusal is the caller's answer at once. */
    assert_int_equal(acq(x, &slot), TP_ACQUIRED_OPEN_SLOT);
    tp_errinfo_set(&e, TP_ECONNREFUSED, 111, "connect to k: refused");
    assert_int_equal(tp_conn_open_failed(slot, TP_ECONNREFUSED, &e), TP_ECONNREFUSED);
    tu_sleep_ms(30); /* past the backoff */
    /* Reached once, then refusing (a restart): the caller should acquire again. */
    assert_int_equal(acq(x, &slot), TP_ACQUIRED_OPEN_SLOT);
    assert_int_equal(tp_conn_open_done(slot, dummy_conn(x), &slot), TP_OK);
    tp_conn_release(slot, TP_RELEASE_DISCARD);
    assert_int_equal(acq(x, &slot), TP_ACQUIRED_OPEN_SLOT);
    assert_int_equal(acq(x, &c), TP_ACQUIRED_PENDING);
    tp_errinfo_set(&e, TP_ECONNREFUSED, 111, "connect to k: refused");
    assert_int_equal(tp_conn_open_failed(slot, TP_ECONNREFUSED, &e), TP_EAGAIN);
    tp_stats st = tu_pool_stats(x->p);
    assert_int_equal(st.open_failures, 2);
    assert_int_equal(st.total, 0);
    /* The waiter gets the slot once the backoff (10 ms) is over: maintenance grants it. */
    tu_sleep_ms(30);
    tp_pool_maintain(x->p);
    assert_int_equal(x->calls, 1);
    assert_int_equal(x->last_status, TP_ACQUIRED_OPEN_SLOT);
    tp_errinfo_set(&e, TP_ECONNREFUSED, 111, "connect to k: refused");
    /* The second opens the breaker: no more waiting through it. */
    assert_int_equal(tp_conn_open_failed(x->last_conn, TP_ECONNREFUSED, &e), TP_ECONNREFUSED);
    /* Two failures: the breaker (threshold 2) is open, callers fail fast. */
    tp_stats ks;
    assert_int_equal(tp_pool_key_stats(x->p, KEY("k"), &ks), TP_OK);
    assert_int_equal(ks.breaker, TP_BREAKER_OPEN);
    tp_conn *d = NULL;
    assert_int_equal(acq(x, &d), TP_EBREAKER);
}

static void test_slot_done_after_close(void **state)
{
    fx *x = *state;
    make_pool(x, 1);
    tp_conn *slot = NULL;
    assert_int_equal(acq(x, &slot), TP_ACQUIRED_OPEN_SLOT);
    tp_pool_close(x->p);
    uint64_t closes = x->f.closes;
    assert_int_equal(tp_conn_open_done(slot, dummy_conn(x), &slot), TP_ECLOSED);
    assert_int_equal(x->f.closes, closes + 1);
    assert_int_equal(tu_pool_stats(x->p).total, 0);
}

int main(void)
{
    tu_watchdog(60);
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_slot_then_done_is_a_lease),
        T(test_slots_count_against_limits_and_queue),
        T(test_failed_slot_backs_off_and_is_granted_to_waiter),
        T(test_slot_done_after_close),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
