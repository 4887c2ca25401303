/* test_pool_timers.c: the pool's clocks: idle_timeout (down to min_idle_per_key),
 * max_lifetime (idle ones at maintenance, in-use ones only on release), lifetime jitter,
 * check_after_idle, keeping min_idle_per_key warm, tp_pool_maintain()'s return value,
 * and scheduled maintenance doing the same on its own, where an open that hangs does
 * not hold up the next passes.
 *
 * Most tests turn the maintenance thread off and call tp_pool_maintain() themselves, so
 * that what happens and when is decided by the test. Timings use wide margins: a pass
 * that should close something is run well after the deadline, and a pass that must not
 * close something is run well before it. */
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
    trace_recorder_init(&x->tr, 4096);
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
    return 0;
}

static void opts(fx *x, tp_pool_options *o)
{
    fake_pool_options(&x->f, o);
    o->maintenance_thread = false;
}

static void test_idle_timeout_closes_idle_not_in_use(void **state)
{
    fx *x = *state;
    tp_pool_options o;
    opts(x, &o);
    o.idle_timeout = MS(50);
    tp_pool *p = x->p = tu_pool_create(&o);
    tp_conn *c[4];
    for (int i = 0; i < 4; i++)
        c[i] = tu_acquire(p, "k", 0);
    for (int i = 0; i < 3; i++)
        tp_conn_release(c[i], 0);
    (void)tp_pool_maintain(p); /* nothing has been idle 50 ms yet */
    assert_int_equal(x->f.closes, 0);

    tu_sleep_ms(120);
    (void)tp_pool_maintain(p);
    assert_int_equal(x->f.closes, 3);
    assert_int_equal(x->f.close_reasons[TP_CLOSE_IDLE_TIMEOUT], 3);
    /* The one in use is never idle-timed-out, however long it is held. */
    assert_int_equal(fake_close_count_for(&x->f, fake_of(c[3])->id), 0);
    tp_stats st = tu_pool_stats(p);
    assert_int_equal(st.idle, 0);
    assert_int_equal(st.in_use, 1);
    assert_int_equal(st.closes[TP_CLOSE_IDLE_TIMEOUT], 3);
    tp_conn_release(c[3], 0);
}

static void test_idle_timeout_keeps_min_idle(void **state)
{
    fx *x = *state;
    tp_pool_options o;
    opts(x, &o);
    o.idle_timeout = MS(50);
    o.min_idle_per_key = 1;
    tp_pool *p = x->p = tu_pool_create(&o);
    tp_conn *c[3];
    for (int i = 0; i < 3; i++)
        c[i] = tu_acquire(p, "k", 0);
    for (int i = 0; i < 3; i++)
        tp_conn_release(c[i], 0);
    tu_sleep_ms(120);
    (void)tp_pool_maintain(p);
    (void)tp_pool_maintain(p);
    /* Two closed, one kept: the floor is kept, not closed and reopened. */
    assert_int_equal(x->f.close_reasons[TP_CLOSE_IDLE_TIMEOUT], 2);
    assert_int_equal(x->f.opens, 3);
    tp_stats st;
    tu_key_stats(p, "k", &st);
    assert_int_equal(st.idle, 1);
    assert_int_equal(st.total, 1);
}

static void test_lifetime_closes_idle_at_maintenance(void **state)
{
    fx *x = *state;
    tp_pool_options o;
    opts(x, &o);
    o.max_lifetime = MS(200);
    o.idle_timeout = MS(200);
    o.lifetime_jitter = 0.0;
    tp_pool *p = x->p = tu_pool_create(&o);
    int64_t t0 = tu_now_ns();
    tp_conn *c = tu_acquire(p, "k", 0);
    uint64_t id = fake_of(c)->id;
    tu_sleep_ms(120);
    tp_conn_release(c, 0);
    if (tu_ms_since(t0) < 190.0) /* released well before it expired: kept */
        assert_int_equal(x->f.closes, 0);
    tu_sleep_ms(130); /* now ~250 ms old, idle ~130 ms (< idle_timeout) */
    (void)tp_pool_maintain(p);
    tp_close_reason r;
    assert_true(fake_close_reason_for(&x->f, id, &r));
    assert_int_equal(r, TP_CLOSE_LIFETIME);
    assert_int_equal(tu_pool_stats(p).closes[TP_CLOSE_LIFETIME], 1);
}

static void test_lifetime_never_while_in_use(void **state)
{
    fx *x = *state;
    tp_pool_options o;
    opts(x, &o);
    o.max_lifetime = MS(50);
    o.idle_timeout = MS(50);
    o.lifetime_jitter = 0.0;
    tp_pool *p = x->p = tu_pool_create(&o);
    tp_conn *c = tu_acquire(p, "k", 0);
    fake_conn *fc = fake_of(c);
    int expected = 0;
    assert_true(atomic_compare_exchange_strong(&fc->held, &expected, 1));
    tu_sleep_ms(150); /* three lifetimes */
    for (int i = 0; i < 3; i++)
        (void)tp_pool_maintain(p);
    /* Expired, but leased: untouched until the holder gives it back. */
    assert_int_equal(x->f.closes, 0);
    assert_int_equal(fc->id, 1); /* still valid memory (ASan would object otherwise) */
    assert_ptr_equal(fake_of(c), fc);
    tp_stats st;
    tu_key_stats(p, "k", &st);
    assert_int_equal(st.in_use, 1);
    atomic_store(&fc->held, 0);
    tp_conn_release(c, 0);
    assert_int_equal(x->f.closes, 1);
    assert_int_equal(x->f.close_reasons[TP_CLOSE_LIFETIME], 1);
    assert_int_equal(x->f.closed_while_held, 0);
    c = tu_acquire(p, "k", 0);
    assert_int_equal(fake_of(c)->id, 2);
    tp_conn_release(c, 0);
}

static void test_expired_idle_not_handed_out(void **state)
{
    /* Even with no maintenance pass at all, acquire must not hand out a connection past
     * its lifetime or idle timeout. */
    fx *x = *state;
    tp_pool_options o;
    opts(x, &o);
    o.max_lifetime = MS(100);
    o.idle_timeout = MS(100);
    o.lifetime_jitter = 0.0;
    tp_pool *p = x->p = tu_pool_create(&o);
    tp_conn *c = tu_acquire(p, "k", 0);
    tp_conn_release(c, 0);
    tu_sleep_ms(180);
    c = tu_acquire(p, "k", 0);
    assert_int_equal(fake_of(c)->id, 2);
    assert_int_equal(fake_close_count_for(&x->f, 1), 1);
    tp_close_reason r;
    assert_true(fake_close_reason_for(&x->f, 1, &r));
    assert_true(r == TP_CLOSE_LIFETIME || r == TP_CLOSE_IDLE_TIMEOUT);
    tp_conn_release(c, 0);
}

static void test_jitter_spreads_expiry(void **state)
{
    enum { N = 8 };
    fx *x = *state;
    tp_pool_options o;
    opts(x, &o);
    o.max_lifetime = MS(200);
    o.idle_timeout = MS(200);
    o.lifetime_jitter = 0.5; /* each lifetime in [100, 200] ms */
    trace_recorder_attach(&x->tr, &o);
    tp_pool *p = x->p = tu_pool_create(&o);
    tp_conn *c[N];
    int64_t t_open = tu_now_ns();
    for (int i = 0; i < N; i++)
        c[i] = tu_acquire(p, "k", 0);
    for (int i = 0; i < N; i++)
        tp_conn_release(c[i], 0);
    /* Frequent passes, so a close time is the expiry instant within a few ms. */
    while (trace_count(&x->tr, TP_TRACE_CLOSE) < N && tu_ms_since(t_open) < 800.0) {
        (void)tp_pool_maintain(p);
        tu_sleep_ms(2);
    }
    assert_int_equal(trace_count(&x->tr, TP_TRACE_CLOSE), N);
    int64_t first = INT64_MAX, last = 0;
    trace_rec ev;
    size_t from = 0;
    for (int i = 0; i < N; i++) {
        long at = trace_find(&x->tr, TP_TRACE_CLOSE, from, &ev);
        assert_true(at >= 0);
        from = (size_t)at + 1;
        assert_true(ev.reason == TP_CLOSE_LIFETIME || ev.reason == TP_CLOSE_IDLE_TIMEOUT);
        int64_t rel = ev.at_ns - t_open;
        if (rel < first)
            first = rel;
        if (rel > last)
            last = rel;
    }
    /* Never before the shortest possible lifetime, never long after the longest. */
    assert_true(first >= MS(99));
    assert_true(last <= MS(200) + MS(150));
    /* Not a mass expiry: the instants are spread out, and some came early. */
    assert_true(last - first >= MS(15));
    assert_true(first < MS(185));
}

static void test_check_after_idle(void **state)
{
    fx *x = *state;
    tp_pool_options o;
    opts(x, &o);
    o.check_after_idle = MS(100);
    tp_pool *p = x->p = tu_pool_create(&o);
    tp_conn *c = tu_acquire(p, "k", 0);
    tp_conn_release(c, 0);
    c = tu_acquire(p, "k", 0); /* idle for microseconds: no check */
    assert_int_equal(x->f.checks, 0);
    tp_conn_release(c, 0);
    tu_sleep_ms(150);
    c = tu_acquire(p, "k", 0); /* idle 150 ms >= 100 ms: checked once */
    assert_int_equal(x->f.checks, 1);
    assert_true(x->f.last_check_idle_ns >= MS(99));
    assert_true(x->f.last_check_idle_ns < MS(5000));
    assert_int_equal(fake_of(c)->id, 1);
    tp_conn_release(c, 0);
}

static void test_check_after_idle_zero_checks_always(void **state)
{
    fx *x = *state;
    tp_pool_options o;
    opts(x, &o);
    o.check_after_idle = 0;
    tp_pool *p = x->p = tu_pool_create(&o);
    tp_conn *c = tu_acquire(p, "k", 0);
    assert_int_equal(x->f.checks, 0); /* a fresh connection is not checked */
    tp_conn_release(c, 0);
    for (int i = 1; i <= 3; i++) {
        c = tu_acquire(p, "k", 0);
        assert_int_equal(x->f.checks, (uint64_t)i);
        tp_conn_release(c, 0);
    }
}

static void test_min_idle_kept_warm(void **state)
{
    fx *x = *state;
    tp_pool_options o;
    opts(x, &o);
    o.min_idle_per_key = 2;
    tp_pool *p = x->p = tu_pool_create(&o);
    tp_conn *c = tu_acquire(p, "k", 0); /* makes the key known */
    tp_conn_release(c, 0);
    tp_stats st;
    for (int i = 0; i < 5; i++) {
        (void)tp_pool_maintain(p);
        tu_key_stats(p, "k", &st);
        if (st.idle >= 2)
            break;
    }
    assert_int_equal(st.idle, 2);
    assert_int_equal(x->f.opens, 2);
    (void)tp_pool_maintain(p); /* at the floor: nothing more */
    assert_int_equal(x->f.opens, 2);

    /* Both leased: idle is 0 again, so maintenance opens two more. */
    tp_conn *a = tu_acquire(p, "k", 0);
    tp_conn *b = tu_acquire(p, "k", 0);
    for (int i = 0; i < 5; i++) {
        (void)tp_pool_maintain(p);
        tu_key_stats(p, "k", &st);
        if (st.idle >= 2)
            break;
    }
    assert_int_equal(st.idle, 2);
    assert_int_equal(st.in_use, 2);
    assert_int_equal(x->f.opens, 4);
    tp_conn_release(a, 0);
    tp_conn_release(b, 0);
}

static void test_min_idle_respects_max_per_key(void **state)
{
    fx *x = *state;
    tp_pool_options o;
    opts(x, &o);
    o.max_per_key = 2;
    o.max_idle_per_key = 2;
    o.min_idle_per_key = 2;
    tp_pool *p = x->p = tu_pool_create(&o);
    tp_conn *a = tu_acquire(p, "k", 0);
    tp_conn *b = tu_acquire(p, "k", 0);
    for (int i = 0; i < 3; i++)
        (void)tp_pool_maintain(p);
    assert_int_equal(x->f.opens, 2);
    tp_stats st;
    tu_key_stats(p, "k", &st);
    assert_int_equal(st.total, 2);
    tp_conn_release(a, 0);
    tp_conn_release(b, 0);
}

static void test_maintain_returns_next_due(void **state)
{
    fx *x = *state;
    tp_pool_options o;
    opts(x, &o);
    o.maintenance_interval = MS(200);
    o.idle_timeout = MS(50);
    tp_pool *p = x->p = tu_pool_create(&o);
    int64_t r = tp_pool_maintain(p);
    assert_true(r > 0);
    assert_true(r <= MS(200));
    tp_conn *c = tu_acquire(p, "k", 0);
    tp_conn_release(c, 0);
    r = tp_pool_maintain(p);
    assert_true(r > 0);
    assert_true(r <= MS(200));
}

static void test_maintenance_thread_closes_idle(void **state)
{
    fx *x = *state;
    tp_pool_options o;
    fake_pool_options(&x->f, &o);
    o.maintenance_thread = true;
    o.maintenance_interval = MS(20);
    o.idle_timeout = MS(50);
    tp_pool *p = x->p = tu_pool_create(&o);
    tp_conn *c = tu_acquire(p, "k", 0);
    int64_t released = tu_now_ns();
    tp_conn_release(c, 0);
    bool ok = false;
    TU_WAIT_UNTIL(ok, x->f.closes == 1, 2000);
    assert_true(ok);
    assert_int_equal(x->f.close_reasons[TP_CLOSE_IDLE_TIMEOUT], 1);
    fake_close_rec rec;
    assert_int_equal(fake_close_log(&x->f, &rec, 1), 1);
    /* Not before its idle timeout, and not much later than timeout + interval. */
    assert_true(rec.at_ns - released >= MS(49));
    assert_true(rec.at_ns - released <= MS(50 + 20 + 200));
}

static void test_hung_open_does_not_stall_maintenance(void **state)
{
    /* A scheduled pass hands its warm-up opens to the workers: while one hangs (the
     * gate), later passes still run, so another key's connection closes at its
     * lifetime. (A pass that opened in place would wait at the gate with it.) */
    fx *x = *state;
    tp_pool_options o;
    fake_pool_options(&x->f, &o);
    o.maintenance_thread = true;
    o.maintenance_interval = MS(20);
    o.min_idle_per_key = 1;
    o.max_lifetime = MS(300);
    o.lifetime_jitter = 0;
    o.idle_timeout = MS(300);
    o.connect_timeout = 30 * TP_NSEC_PER_SEC; /* the gate holds the open that long */
    tp_pool *p = x->p = tu_pool_create(&o);
    int64_t b_opened = tu_now_ns(); /* before its open: its lifetime starts after */
    tp_conn *b = tu_acquire(p, "b", 0);
    tp_conn_release(b, 0);
    tp_conn *a = tu_acquire(p, "a", 0);
    fake_gate_close(&x->f);
    /* Key a loses its only connection: the next pass's warm-up open for it hangs. */
    tp_conn_release(a, TP_RELEASE_BROKEN);
    bool hung = false;
    TU_WAIT_UNTIL(hung, fake_gate_waiting(&x->f) >= 1, 2000);
    assert_true(hung);
    bool closed = false;
    TU_WAIT_UNTIL(closed, x->f.close_reasons[TP_CLOSE_LIFETIME] == 1, 3000);
    assert_true(closed);
    assert_true(tu_now_ns() - b_opened >= MS(300));
    fake_gate_open(&x->f);
    /* The opens finish before the fixture's connector goes. */
    bool settled = false;
    TU_WAIT_UNTIL(settled, tu_pool_stats(p).opening == 0, 3000);
    assert_true(settled);
}

typedef struct destroy_arg {
    tp_pool *p;
    atomic_bool done;
} destroy_arg;

static void *destroy_thread(void *arg)
{
    destroy_arg *d = arg;
    tp_pool_destroy(d->p);
    atomic_store(&d->done, true);
    return NULL;
}

static void test_destroy_waits_for_maintenance_opens(void **state)
{
    /* A warm-up open maintenance handed to a worker hangs at the gate: destroy returns
     * only after it ends, so no connector call comes after destroy (the caller may free
     * the connector then). */
    fx *x = *state;
    tp_pool_options o;
    fake_pool_options(&x->f, &o);
    o.maintenance_thread = true;
    o.maintenance_interval = MS(20);
    o.min_idle_per_key = 1;
    o.connect_timeout = 30 * TP_NSEC_PER_SEC;
    tp_pool *p = tu_pool_create(&o);
    tp_conn *c = tu_acquire(p, "k", 0);
    fake_gate_close(&x->f);
    tp_conn_release(c, TP_RELEASE_BROKEN); /* the next pass reopens one, at the gate */
    bool hung = false;
    TU_WAIT_UNTIL(hung, fake_gate_waiting(&x->f) == 1, 2000);
    assert_true(hung);
    destroy_arg d = {.p = p};
    pthread_t t;
    tu_thread_start(&t, destroy_thread, &d);
    tu_sleep_ms(100);
    assert_false(atomic_load(&d.done)); /* the open is still in the connector */
    fake_gate_open(&x->f);
    tu_thread_join(t);
    assert_true(atomic_load(&d.done));
    assert_int_equal(x->f.opening, 0);
    assert_int_equal(x->f.live, 0); /* the late connection was closed, not kept */
}

/* Gives keys "old0".."old<n-1>" two idle connections each. */
static void two_idle_per_key(tp_pool *p, int n)
{
    char key[32];
    for (int i = 0; i < n; i++) {
        snprintf(key, sizeof key, "old%d", i);
        tp_conn *a = tu_acquire(p, key, 0), *b = tu_acquire(p, key, 0);
        tp_conn_release(a, 0);
        tp_conn_release(b, 0);
    }
}

static void test_one_pass_expires_every_key_across_slices(void **state)
{
    /* A pass lets the lock go every few dozen keys and connections; it still closes
     * every expired connection of every key in one pass, and keeps the unexpired one. */
    fx *x = *state;
    tp_pool_options o;
    opts(x, &o);
    o.idle_timeout = MS(50);
    o.max_per_key = 2;
    tp_pool *p = x->p = tu_pool_create(&o);
    enum { KEYS = 400 };
    two_idle_per_key(p, KEYS);
    tu_sleep_ms(80);
    tp_conn *fresh = tu_acquire(p, "fresh", 0); /* not expired at the pass */
    tp_conn_release(fresh, 0);
    (void)tp_pool_maintain(p);
    assert_int_equal(x->f.close_reasons[TP_CLOSE_IDLE_TIMEOUT], 2 * KEYS);
    tp_stats st = tu_pool_stats(p);
    assert_int_equal(st.idle, 1);
    assert_int_equal(st.total, 1);
    assert_int_equal(x->f.live, 1);
}

static atomic_int fd_calls;

static int counting_fd(void *ctx, void *conn)
{
    (void)ctx;
    (void)conn;
    atomic_fetch_add(&fd_calls, 1);
    return -1; /* no socket: sampled, found nothing to judge */
}

/* A pass visits only the keys that are due: once every idle connection's health was
 * sampled, a pass right after does nothing per key or per connection (before, every
 * pass sampled the first 64 keys' idle connections again), and an idle timeout still
 * ends on time for the key that has one due. */
static void test_pass_visits_only_due_keys(void **state)
{
    fx *x = *state;
    tp_pool_options o;
    opts(x, &o);
    o.connector.fd = counting_fd;
    o.idle_timeout = MS(400);
    o.max_per_key = 2;
    tp_pool *p = x->p = tu_pool_create(&o);
    enum { KEYS = 50 };
    two_idle_per_key(p, KEYS);
    atomic_store(&fd_calls, 0);
    tu_sleep_ms(150); /* settled: due for their first health sample */
    (void)tp_pool_maintain(p);
    int sampled = atomic_load(&fd_calls);
    assert_int_equal(sampled, 2 * KEYS);
    (void)tp_pool_maintain(p); /* nothing due */
    (void)tp_pool_maintain(p);
    assert_int_equal(atomic_load(&fd_calls), sampled);
    assert_int_equal(x->f.closes, 0);
    int64_t left = tp_pool_maintain(p); /* next due: the idle timeouts, in ~250 ms */
    assert_true(left > MS(100) && left <= MS(400));
    tu_sleep_ms(left / TP_NSEC_PER_MSEC + 20);
    (void)tp_pool_maintain(p);
    assert_int_equal(x->f.close_reasons[TP_CLOSE_IDLE_TIMEOUT], 2 * KEYS);
}

typedef struct grow_arg {
    tp_pool *p;
    atomic_bool done;
} grow_arg;

/* Creates 16,384 new keys: the key table grows (its bucket array replaced) several
 * times under the passes' feet. */
static void *grow_keys(void *arg)
{
    grow_arg *g = arg;
    char key[32];
    for (int i = 0; i < 16384; i++) {
        snprintf(key, sizeof key, "new%d", i);
        tp_conn *c = NULL;
        if (tp_pool_acquire(g->p, key, strlen(key), MS(1000), &c, NULL) == TP_OK)
            tp_conn_release(c, TP_RELEASE_BROKEN); /* closed now, never idle-timed-out */
    }
    atomic_store(&g->done, true);
    return NULL;
}

static void test_passes_while_the_key_table_grows(void **state)
{
    /* Between a pass's slices another thread adds thousands of keys, so the bucket
     * array is replaced while the walk is out of the lock: the walk finds its place
     * again (ASan would see a stale bucket pointer), and every expired connection still
     * closes within a few passes. */
    fx *x = *state;
    tp_pool_options o;
    opts(x, &o);
    o.idle_timeout = MS(50);
    o.max_per_key = 2;
    tp_pool *p = x->p = tu_pool_create(&o);
    enum { KEYS = 300 };
    two_idle_per_key(p, KEYS);
    tu_sleep_ms(80);
    grow_arg g = {.p = p};
    pthread_t t;
    tu_thread_start(&t, grow_keys, &g);
    int passes = 0;
    while (!atomic_load(&g.done)) { /* passes all the while the table grows */
        (void)tp_pool_maintain(p);
        passes++;
    }
    tu_thread_join(t);
    (void)tp_pool_maintain(p);
    assert_true(passes > 1);
    assert_int_equal(x->f.close_reasons[TP_CLOSE_IDLE_TIMEOUT], 2 * KEYS);
}

static void test_connect_timeout_bounds_open(void **state)
{
    /* open() gets a deadline of at most connect_timeout, even when the acquire itself
     * would wait much longer; the connector's TP_ECONNTIMEDOUT comes back promptly. */
    fx *x = *state;
    tp_pool_options o;
    opts(x, &o);
    o.connect_timeout = MS(50);
    tp_pool *p = x->p = tu_pool_create(&o);
    fake_set_open_delay_ms(&x->f, 400);
    tp_conn *c = NULL;
    tp_errinfo err;
    int64_t t0 = tu_now_ns();
    tp_err r = tp_pool_acquire(p, KEY("k"), MS(5000), &c, &err);
    double ms = tu_ms_since(t0);
    assert_int_equal(r, TP_ECONNTIMEDOUT);
    assert_null(strstr(err.msg, "acquire deadline"));
    assert_true(ms >= 49.0);
    assert_true(ms < 50.0 + 200.0);
    assert_int_equal(tu_pool_stats(p).open_failures, 1);
}

static void test_acquire_deadline_bounds_open(void **state)
{
    /* The other way round: an acquire timeout shorter than connect_timeout is the
     * open's deadline, and running out of it is the caller's timeout (TP_ETIMEDOUT,
     * saying so), not the connection's: the connector's reason is kept in the detail. */
    fx *x = *state;
    tp_pool_options o;
    opts(x, &o);
    tp_pool *p = x->p = tu_pool_create(&o);
    fake_set_open_delay_ms(&x->f, 400);
    tp_conn *c = NULL;
    tp_errinfo err;
    int64_t t0 = tu_now_ns();
    tp_err r = tp_pool_acquire(p, KEY("k"), MS(60), &c, &err);
    double ms = tu_ms_since(t0);
    assert_int_equal(r, TP_ETIMEDOUT);
    assert_int_equal(err.code, TP_ETIMEDOUT);
    assert_non_null(strstr(err.msg, "acquire deadline reached"));
    assert_non_null(strstr(err.msg, "open delay passes the deadline"));
    assert_true(ms >= 59.0);
    assert_true(ms < 60.0 + 200.0);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    tu_watchdog(120);
    const struct CMUnitTest tests[] = {
        T(test_idle_timeout_closes_idle_not_in_use),
        T(test_idle_timeout_keeps_min_idle),
        T(test_lifetime_closes_idle_at_maintenance),
        T(test_lifetime_never_while_in_use),
        T(test_expired_idle_not_handed_out),
        T(test_jitter_spreads_expiry),
        T(test_check_after_idle),
        T(test_check_after_idle_zero_checks_always),
        T(test_min_idle_kept_warm),
        T(test_min_idle_respects_max_per_key),
        T(test_maintain_returns_next_due),
        T(test_maintenance_thread_closes_idle),
        T(test_hung_open_does_not_stall_maintenance),
        T(test_destroy_waits_for_maintenance_opens),
        T(test_pass_visits_only_due_keys),
        T(test_one_pass_expires_every_key_across_slices),
        T(test_passes_while_the_key_table_grows),
        T(test_connect_timeout_bounds_open),
        T(test_acquire_deadline_bounds_open),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
