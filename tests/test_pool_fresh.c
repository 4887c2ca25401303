/* test_pool_fresh.c: the two pool features connectors use to stay ahead of servers:
 * TP_ACQUIRE_FRESH (a new connection, never an idle one, making room by closing the
 * least recently used idle one when the key is full) and
 * tp_pool_key_limit_idle_timeout (a key's idle timeout lowered, never raised, applied
 * both at reuse and by maintenance). */
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

typedef pool_fx fx;

static tp_pool *make_pool(fx *x, int64_t max_per_key)
{
    tp_pool_options o;
    fake_pool_options(&x->f, &o);
    o.maintenance_thread = false;
    o.max_per_key = max_per_key;
    o.max_idle_per_key = max_per_key;
    return x->p = tu_pool_create(&o);
}

static void test_fresh_never_reuses(void **state)
{
    fx *x = *state;
    tp_pool *p = make_pool(x, 4);
    tp_conn *a = tu_acquire(p, "k", 0);
    uint64_t ia = fake_of(a)->id;
    tp_conn_release(a, 0);
    tp_conn *b;
    assert_int_equal(tu_acquire_ex(p, KEY("k"), 0, TP_ACQUIRE_FRESH, &b, NULL), TP_OK);
    assert_int_not_equal(fake_of(b)->id, ia);
    assert_int_equal(tp_conn_uses(b), 1);
    assert_int_equal(x->f.opens, 2);
    /* The idle one is still there for ordinary acquires. */
    tp_conn *c = tu_acquire(p, "k", 0);
    assert_int_equal(fake_of(c)->id, ia);
    tp_conn_release(b, 0);
    tp_conn_release(c, 0);
}

static void test_fresh_makes_room_from_idle(void **state)
{
    /* max_per_key 2, both idle: a fresh acquire closes the least recently released one
     * (idle_overflow) instead of waiting for a slot that idle connections occupy. */
    fx *x = *state;
    tp_pool *p = make_pool(x, 2);
    tp_conn *a = tu_acquire(p, "k", 0);
    tp_conn *b = tu_acquire(p, "k", 0);
    uint64_t ia = fake_of(a)->id, ib = fake_of(b)->id;
    tp_conn_release(a, 0); /* a is the least recently released */
    tu_sleep_ms(2);
    tp_conn_release(b, 0);
    tp_conn *c;
    int64_t t0 = tu_now_ns();
    assert_int_equal(tu_acquire_ex(p, KEY("k"), MS(1000), TP_ACQUIRE_FRESH, &c, NULL), TP_OK);
    assert_true(tu_ms_since(t0) < 500.0);
    assert_true(fake_of(c)->id != ia && fake_of(c)->id != ib);
    tp_close_reason r;
    assert_true(fake_close_reason_for(&x->f, ia, &r));
    assert_int_equal(r, TP_CLOSE_IDLE_OVERFLOW);
    assert_int_equal(fake_close_count_for(&x->f, ib), 0);
    tp_stats st = tu_pool_stats(p);
    assert_int_equal(st.total, 2);
    tp_conn_release(c, 0);
}

static void test_fresh_waits_when_all_in_use(void **state)
{
    fx *x = *state;
    tp_pool *p = make_pool(x, 1);
    tp_conn *a = tu_acquire(p, "k", 0);
    tp_conn *b = NULL;
    assert_int_equal(tu_acquire_ex(p, KEY("k"), MS(50), TP_ACQUIRE_FRESH, &b, NULL),
                     TP_ETIMEDOUT);
    assert_null(b);
    tp_conn_release(a, 0);
}

static void test_fresh_rejects_unknown_flags(void **state)
{
    fx *x = *state;
    tp_pool *p = make_pool(x, 1);
    tp_conn *c = NULL;
    tp_errinfo e;
    assert_int_equal(tu_acquire_ex(p, KEY("k"), 0, 0x80u, &c, &e), TP_EINVAL);
    assert_non_null(strstr(e.msg, "flags"));
    assert_null(c);
}

static void test_key_idle_timeout_lowered_at_reuse(void **state)
{
    fx *x = *state;
    tp_pool *p = make_pool(x, 2);
    tp_conn *a = tu_acquire(p, "k", 0);
    uint64_t ia = fake_of(a)->id;
    assert_int_equal(tp_pool_key_limit_idle_timeout(p, KEY("k"), MS(30)), TP_OK);
    /* Raising it is ignored. */
    assert_int_equal(tp_pool_key_limit_idle_timeout(p, KEY("k"), MS(60000)), TP_OK);
    tp_conn_release(a, 0);
    tu_sleep_ms(60);
    /* Idle 60 ms > 30 ms: not handed out, closed as idle_timeout, a new one opened. */
    tp_conn *b = tu_acquire(p, "k", 0);
    assert_int_not_equal(fake_of(b)->id, ia);
    tp_close_reason r;
    assert_true(fake_close_reason_for(&x->f, ia, &r));
    assert_int_equal(r, TP_CLOSE_IDLE_TIMEOUT);
    tp_conn_release(b, 0);
    /* Other keys keep the pool's idle timeout. */
    tp_conn *o = tu_acquire(p, "other", 0);
    uint64_t io = fake_of(o)->id;
    tp_conn_release(o, 0);
    tu_sleep_ms(60);
    tp_conn *o2 = tu_acquire(p, "other", 0);
    assert_int_equal(fake_of(o2)->id, io);
    tp_conn_release(o2, 0);
}

static void test_key_idle_timeout_applied_by_maintenance(void **state)
{
    fx *x = *state;
    tp_pool *p = make_pool(x, 2);
    tp_conn *a = tu_acquire(p, "k", 0);
    tp_conn_release(a, 0);
    assert_int_equal(tp_pool_key_limit_idle_timeout(p, KEY("k"), MS(20)), TP_OK);
    tu_sleep_ms(40);
    tp_pool_maintain(p);
    tp_stats st;
    assert_int_equal(tp_pool_key_stats(p, KEY("k"), &st), TP_OK);
    assert_int_equal(st.idle, 0);
    assert_int_equal(st.closes[TP_CLOSE_IDLE_TIMEOUT], 1);
}

static void test_key_idle_timeout_bad_args(void **state)
{
    fx *x = *state;
    tp_pool *p = make_pool(x, 2);
    assert_int_equal(tp_pool_key_limit_idle_timeout(NULL, KEY("k"), MS(1)), TP_EINVAL);
    assert_int_equal(tp_pool_key_limit_idle_timeout(p, NULL, 3, MS(1)), TP_EINVAL);
    assert_int_equal(tp_pool_key_limit_idle_timeout(p, KEY("k"), -5), TP_EINVAL);
}

int main(void)
{
    tu_watchdog(60);
#define T(f) cmocka_unit_test_setup_teardown(f, pool_fx_setup, pool_fx_teardown)
    const struct CMUnitTest tests[] = {
        T(test_fresh_never_reuses),
        T(test_fresh_makes_room_from_idle),
        T(test_fresh_waits_when_all_in_use),
        T(test_fresh_rejects_unknown_flags),
        T(test_key_idle_timeout_lowered_at_reuse),
        T(test_key_idle_timeout_applied_by_maintenance),
        T(test_key_idle_timeout_bad_args),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
