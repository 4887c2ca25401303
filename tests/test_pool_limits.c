/* test_pool_limits.c: every size limit of the pool: max_per_key, max_total (across keys,
 * counting opening connections), max_idle_per_key and max_idle_total (least recently
 * used idle closed first, reason idle_overflow), max_waiters_per_key (TP_EBUSY at once),
 * max_keys (TP_ELIMIT), and the rule that a pool full of another key's idle connections
 * makes room instead of timing out. Maintenance thread off: only the test acts. */
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

static void test_max_per_key(void **state)
{
    fx *x = *state;
    tp_pool_options o;
    pool_fx_options(x, &o);
    o.max_per_key = 2;
    o.max_idle_per_key = 2;
    tp_pool *p = x->p = tu_pool_create(&o);
    tp_conn *a1 = tu_acquire(p, "a", 0);
    tp_conn *a2 = tu_acquire(p, "a", 0);

    tp_conn *c = NULL;
    tp_errinfo err;
    int64_t t0 = tu_now_ns();
    assert_int_equal(tp_pool_acquire(p, KEY("a"), 0, &c, &err), TP_ETIMEDOUT);
    assert_true(tu_ms_since(t0) < 50.0); /* timeout 0 never queues */
    assert_null(c);
    assert_int_equal(x->f.open_calls, 2);

    /* With a real timeout it waits that long, then gives up. */
    t0 = tu_now_ns();
    assert_int_equal(tp_pool_acquire(p, KEY("a"), MS(60), &c, &err), TP_ETIMEDOUT);
    double ms = tu_ms_since(t0);
    assert_true(ms >= 59.0);
    assert_true(ms < 60.0 + 150.0);
    assert_int_equal(x->f.open_calls, 2);

    /* The limit is per key: another key is not affected. */
    tp_conn *b = tu_acquire(p, "b", 0);
    tp_stats st;
    tu_key_stats(p, "a", &st);
    assert_int_equal(st.total, 2);
    assert_int_equal(st.timeouts, 2);
    tp_conn_release(a1, 0);
    tp_conn_release(a2, 0);
    tp_conn_release(b, 0);
}

static void test_max_total_across_keys(void **state)
{
    fx *x = *state;
    tp_pool_options o;
    pool_fx_options(x, &o);
    o.max_total = 3;
    tp_pool *p = x->p = tu_pool_create(&o);
    tp_conn *a1 = tu_acquire(p, "a", 0);
    tp_conn *a2 = tu_acquire(p, "a", 0);
    tp_conn *b1 = tu_acquire(p, "b", 0);
    tp_conn *c = NULL;
    assert_int_equal(tp_pool_acquire(p, KEY("c"), 0, &c, NULL), TP_ETIMEDOUT);
    assert_int_equal(tp_pool_acquire(p, KEY("a"), 0, &c, NULL), TP_ETIMEDOUT);
    assert_int_equal(x->f.open_calls, 3);
    tp_stats st = tu_pool_stats(p);
    assert_int_equal(st.total, 3);
    assert_int_equal(st.timeouts, 2);
    /* A slot freed by a discard is usable by any key. */
    tp_conn_release(b1, TP_RELEASE_DISCARD);
    c = tu_acquire(p, "c", 0);
    assert_true(fake_conn_key_is(fake_of(c), KEY("c")));
    tp_conn_release(a1, 0);
    tp_conn_release(a2, 0);
    tp_conn_release(c, 0);
}

static void test_max_idle_per_key_closes_lru(void **state)
{
    fx *x = *state;
    tp_pool_options o;
    pool_fx_options(x, &o);
    o.max_per_key = 5;
    o.max_idle_per_key = 2;
    tp_pool *p = x->p = tu_pool_create(&o);
    tp_conn *c[5];
    for (int i = 0; i < 5; i++)
        c[i] = tu_acquire(p, "k", 0);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(fake_of(c[i])->id, (uint64_t)i + 1);
        tp_conn_release(c[i], 0);
    }
    /* Each release past two idle closed the least recently used: ids 1, 2, 3 in order. */
    fake_close_rec log[8];
    size_t n = fake_close_log(&x->f, log, 8);
    assert_int_equal(n, 3);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(log[i].id, i + 1);
        assert_int_equal(log[i].reason, TP_CLOSE_IDLE_OVERFLOW);
    }
    tp_stats st;
    tu_key_stats(p, "k", &st);
    assert_int_equal(st.idle, 2);
    assert_int_equal(st.total, 2);
    assert_int_equal(st.closes[TP_CLOSE_IDLE_OVERFLOW], 3);
    tp_conn *r1 = tu_acquire(p, "k", 0);
    tp_conn *r2 = tu_acquire(p, "k", 0);
    assert_int_equal(fake_of(r1)->id, 5);
    assert_int_equal(fake_of(r2)->id, 4);
    tp_conn_release(r1, 0);
    tp_conn_release(r2, 0);
}

static void test_max_idle_total_closes_global_lru(void **state)
{
    fx *x = *state;
    tp_pool_options o;
    pool_fx_options(x, &o);
    o.max_idle_total = 3;
    tp_pool *p = x->p = tu_pool_create(&o);
    tp_conn *a1 = tu_acquire(p, "a", 0);
    tp_conn *a2 = tu_acquire(p, "a", 0);
    tp_conn *b1 = tu_acquire(p, "b", 0);
    tp_conn *b2 = tu_acquire(p, "b", 0);
    uint64_t ia1 = fake_of(a1)->id;
    tp_conn_release(a1, 0);
    tp_conn_release(a2, 0);
    tp_conn_release(b1, 0);
    assert_int_equal(x->f.closes, 0);
    tp_conn_release(b2, 0);
    /* Four idle over a limit of three: the oldest idle of any key goes (a1). */
    assert_int_equal(x->f.closes, 1);
    tp_close_reason r;
    assert_true(fake_close_reason_for(&x->f, ia1, &r));
    assert_int_equal(r, TP_CLOSE_IDLE_OVERFLOW);
    tp_stats st = tu_pool_stats(p);
    assert_int_equal(st.idle, 3);
    assert_int_equal(st.closes[TP_CLOSE_IDLE_OVERFLOW], 1);
}

static void test_max_waiters_per_key(void **state)
{
    fx *x = *state;
    tp_pool_options o;
    pool_fx_options(x, &o);
    o.max_per_key = 1;
    o.max_idle_per_key = 1;
    o.max_waiters_per_key = 1;
    tp_pool *p = x->p = tu_pool_create(&o);
    tp_conn *held = tu_acquire(p, "k", 0);

    tu_acq_job job = {.p = p, .key = "k", .timeout = MS(5000)};
    pthread_t t;
    tu_thread_start(&t, tu_acquire_thread, &job);
    bool ok = false;
    TU_WAIT_UNTIL(ok, tu_key_waiters(p, "k") == 1, 2000);
    assert_true(ok);

    /* The queue is full: refused at once, not after the 5 s timeout. */
    tp_conn *c = NULL;
    int64_t t0 = tu_now_ns();
    assert_int_equal(tp_pool_acquire(p, KEY("k"), MS(5000), &c, NULL), TP_EBUSY);
    assert_true(tu_ms_since(t0) < 50.0);
    tp_stats st;
    tu_key_stats(p, "k", &st);
    assert_int_equal(st.rejects_busy, 1);
    assert_int_equal(st.waiters, 1);

    /* The queued one is still served. */
    tp_conn_release(held, 0);
    tu_thread_join(t);
    assert_int_equal(job.result, TP_OK);
    tp_conn_release(job.conn, 0);
}

static void test_max_waiters_zero_never_queues(void **state)
{
    fx *x = *state;
    tp_pool_options o;
    pool_fx_options(x, &o);
    o.max_per_key = 1;
    o.max_idle_per_key = 1;
    o.max_waiters_per_key = 0;
    tp_pool *p = x->p = tu_pool_create(&o);
    tp_conn *held = tu_acquire(p, "k", 0);
    tp_conn *c = NULL;
    int64_t t0 = tu_now_ns();
    assert_int_equal(tp_pool_acquire(p, KEY("k"), MS(5000), &c, NULL), TP_EBUSY);
    assert_true(tu_ms_since(t0) < 50.0);
    tp_conn_release(held, 0);
    /* When something is idle no queue is needed, so the limit does not matter. */
    c = tu_acquire(p, "k", MS(5000));
    tp_conn_release(c, 0);
}

static void test_max_keys(void **state)
{
    fx *x = *state;
    tp_pool_options o;
    pool_fx_options(x, &o);
    o.max_keys = 2;
    tp_pool *p = x->p = tu_pool_create(&o);
    tp_conn *a = tu_acquire(p, "a", 0);
    tp_conn *b = tu_acquire(p, "b", 0);
    tp_conn *c = NULL;
    tp_errinfo err;
    memset(&err, 0, sizeof err);
    assert_int_equal(tp_pool_acquire(p, KEY("c"), MS(1000), &c, &err), TP_ELIMIT);
    assert_null(c);
    assert_int_equal(x->f.open_calls, 2);
    /* Known keys keep working. */
    tp_conn *a2 = tu_acquire(p, "a", 0);
    assert_int_equal(tu_pool_stats(p).keys, 2);
    tp_conn_release(a, 0);
    tp_conn_release(a2, 0);
    tp_conn_release(b, 0);
}

static void test_max_total_makes_room_from_other_keys_idle(void **state)
{
    fx *x = *state;
    tp_pool_options o;
    pool_fx_options(x, &o);
    o.max_total = 2;
    tp_pool *p = x->p = tu_pool_create(&o);
    tp_conn *a1 = tu_acquire(p, "a", 0);
    tp_conn *a2 = tu_acquire(p, "a", 0);
    uint64_t ia1 = fake_of(a1)->id;
    tp_conn_release(a1, 0);
    tp_conn_release(a2, 0);
    /* The pool is full of idle "a" connections; "b" must not wait for them to time out:
     * the least recently used idle one is closed to make room. */
    int64_t t0 = tu_now_ns();
    tp_conn *b = tu_acquire(p, "b", MS(1000));
    assert_true(tu_ms_since(t0) < 500.0);
    assert_true(fake_conn_key_is(fake_of(b), KEY("b")));
    assert_int_equal(x->f.closes, 1);
    tp_close_reason r;
    assert_true(fake_close_reason_for(&x->f, ia1, &r));
    assert_int_equal(r, TP_CLOSE_IDLE_OVERFLOW);
    tp_stats st = tu_pool_stats(p);
    assert_int_equal(st.total, 2);
    assert_int_equal(st.idle, 1);
    tp_conn_release(b, 0);
}

static void test_max_total_waiter_of_other_key_is_served(void **state)
{
    /* max_total 1, "a" in use, "b" waiting. Releasing "a" must let "b" proceed (its
     * connection closed to free the slot), not leave "b" stuck behind an idle "a". */
    fx *x = *state;
    tp_pool_options o;
    pool_fx_options(x, &o);
    o.max_total = 1;
    tp_pool *p = x->p = tu_pool_create(&o);
    tp_conn *a = tu_acquire(p, "a", 0);

    tu_acq_job job = {.p = p, .key = "b", .timeout = MS(3000)};
    pthread_t t;
    tu_thread_start(&t, tu_acquire_thread, &job);
    bool ok = false;
    TU_WAIT_UNTIL(ok, tu_key_waiters(p, "b") == 1, 2000);
    assert_true(ok);

    int64_t t0 = tu_now_ns();
    tp_conn_release(a, 0);
    tu_thread_join(t);
    double ms = (double)(job.end_ns - t0) / 1e6;
    print_message("waiter for \"b\" got %s %.1f ms after the release of \"a\"\n",
                  tp_err_name(job.result), ms);
    assert_int_equal(job.result, TP_OK);
    assert_true(ms < 1000.0);
    assert_true(fake_conn_key_is(fake_of(job.conn), KEY("b")));
    assert_int_equal(x->f.closes, 1);
    assert_int_equal(tu_pool_stats(p).total, 1);
    tp_conn_release(job.conn, 0);
}

/* Starts an acquire of key on a thread and waits until its open() is blocked at the
 * fake's gate (the connection is then "opening"). */
static void start_blocked_open(fx *x, tu_acq_job *job, pthread_t *t, const char *key)
{
    fake_gate_close(&x->f);
    job->p = x->p;
    job->key = key;
    job->timeout = MS(5000);
    tu_thread_start(t, tu_acquire_thread, job);
    bool ok = false;
    TU_WAIT_UNTIL(ok, fake_gate_waiting(&x->f) == 1, 2000);
    assert_true(ok);
}

static void finish_blocked_open(fx *x, tu_acq_job *job, pthread_t t)
{
    fake_gate_open(&x->f);
    tu_thread_join(t);
    assert_int_equal(job->result, TP_OK);
    tp_conn_release(job->conn, 0);
}

static void test_opening_counts_toward_max_per_key(void **state)
{
    fx *x = *state;
    tp_pool_options o;
    pool_fx_options(x, &o);
    o.max_per_key = 1;
    o.max_idle_per_key = 1;
    x->p = tu_pool_create(&o);
    tu_acq_job job;
    memset(&job, 0, sizeof job);
    pthread_t t;
    start_blocked_open(x, &job, &t, "a");
    /* The key's only slot is taken by the connection being opened. */
    tp_conn *c = NULL;
    assert_int_equal(tp_pool_acquire(x->p, KEY("a"), 0, &c, NULL), TP_ETIMEDOUT);
    assert_int_equal(x->f.open_calls, 1);
    finish_blocked_open(x, &job, t);
}

static void test_opening_counts_toward_max_total(void **state)
{
    fx *x = *state;
    tp_pool_options o;
    pool_fx_options(x, &o);
    o.max_total = 2;
    x->p = tu_pool_create(&o);
    tp_conn *b = tu_acquire(x->p, "b", 0);
    tu_acq_job job;
    memset(&job, 0, sizeof job);
    pthread_t t;
    start_blocked_open(x, &job, &t, "a");
    /* One in use plus one opening: the pool is full for every key. */
    tp_conn *c = NULL;
    assert_int_equal(tp_pool_acquire(x->p, KEY("c"), 0, &c, NULL), TP_ETIMEDOUT);
    assert_int_equal(tp_pool_acquire(x->p, KEY("a"), 0, &c, NULL), TP_ETIMEDOUT);
    assert_int_equal(x->f.open_calls, 2);
    finish_blocked_open(x, &job, t);
    tp_conn_release(b, 0);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, pool_fx_setup, pool_fx_teardown)

int main(void)
{
    tu_watchdog(120);
    const struct CMUnitTest tests[] = {
        T(test_max_per_key),
        T(test_max_total_across_keys),
        T(test_max_idle_per_key_closes_lru),
        T(test_max_idle_total_closes_global_lru),
        T(test_max_waiters_per_key),
        T(test_max_waiters_zero_never_queues),
        T(test_max_keys),
        T(test_max_total_makes_room_from_other_keys_idle),
        T(test_max_total_waiter_of_other_key_is_served),
        T(test_opening_counts_toward_max_per_key),
        T(test_opening_counts_toward_max_total),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
