/* test_pool_async.c (label: concurrency): tp_acquire_async() and cancel.
 *
 * The contract: TP_OK with the lease when one is idle (callback never called), else
 * TP_ACQUIRED_PENDING and the callback runs exactly once: with a released connection (on the
 * releasing thread), with a connection opened on a pool-owned thread, or with an error
 * (timeout, 0, close, open failure). Cancel wins only while the request is still queued.
 * Callbacks run outside pool locks, so they may call back into the pool. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <tidepool/tidepool.h>

#include "support/fake_connector.h"
#include "support/pool_fixture.h"
#include "support/test_util.h"

typedef pool_fx fx;

/* What one callback saw. reenter asks it to call back into the pool. */
typedef struct cb_rec {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int calls;
    tp_err status;
    tp_conn *conn;
    char msg[TP_ERRMSG_SIZE];
    pthread_t thread;
    int64_t at_ns;
    /* re-entrancy */
    tp_pool *p;
    bool reenter;
    bool release_in_cb;
    tp_err inner_try, inner_acquire;
    bool inner_stats_done;
} cb_rec;

static void cb_init(cb_rec *r)
{
    memset(r, 0, sizeof *r);
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    r->status = 12345; /* not a tp_err: shows the callback never ran */
}

static void cb_fini(cb_rec *r)
{
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
}

static void on_acquired(void *ud, tp_err status, tp_acquired kind, tp_conn *conn,
                        const tp_errinfo *err)
{
    (void)kind;
    cb_rec *r = ud;
    if (r->reenter) {
        /* All of these take pool locks; they would deadlock if the callback ran under
         * one. */
        tp_stats st;
        tp_pool_stats(r->p, &st);
        r->inner_stats_done = true;
        tp_conn *other = NULL;
        r->inner_try = tu_try(r->p, KEY("k"), &other);
        if (r->inner_try == TP_OK)
            tp_conn_release(other, 0);
        other = NULL;
        r->inner_acquire = tp_pool_acquire(r->p, KEY("other"), 0, &other, NULL);
        if (r->inner_acquire == TP_OK)
            tp_conn_release(other, 0);
        if (r->release_in_cb && conn != NULL) {
            tp_conn_release(conn, 0);
            conn = NULL;
        }
    }
    pthread_mutex_lock(&r->mu);
    r->calls++;
    r->status = status;
    r->conn = conn;
    r->thread = pthread_self();
    r->at_ns = tu_now_ns();
    if (err != NULL)
        snprintf(r->msg, sizeof r->msg, "%s", err->msg);
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

static int cb_calls(cb_rec *r)
{
    pthread_mutex_lock(&r->mu);
    int n = r->calls;
    pthread_mutex_unlock(&r->mu);
    return n;
}

static bool cb_wait(cb_rec *r, int64_t timeout_ms)
{
    bool ok = false;
    TU_WAIT_UNTIL(ok, cb_calls(r) >= 1, timeout_ms);
    return ok;
}

static tp_pool *pool_of_one(fx *x, bool thread)
{
    tp_pool_options o;
    fake_pool_options(&x->f, &o);
    o.max_per_key = 1;
    o.max_idle_per_key = 1;
    o.maintenance_thread = thread;
    x->p = tu_pool_create(&o);
    return x->p;
}

static int async(tp_pool *p, int64_t timeout, cb_rec *r, tp_conn **out, uint64_t *ticket)
{
    tp_errinfo err;
    return tu_async(p, KEY("k"), timeout, 0, on_acquired, r, out, ticket, &err);
}

static void test_immediate_when_idle(void **state)
{
    fx *x = *state;
    tp_pool *p = pool_of_one(x, true);
    tp_conn *c = tu_acquire(p, "k", 0);
    fake_conn *fc = fake_of(c);
    tp_conn_release(c, 0);
    cb_rec r;
    cb_init(&r);
    tp_conn *out = NULL;
    uint64_t ticket = 0;
    assert_int_equal(async(p, MS(1000), &r, &out, &ticket), TP_OK);
    assert_non_null(out);
    assert_ptr_equal(fake_of(out), fc);
    tu_sleep_ms(50);
    assert_int_equal(cb_calls(&r), 0); /* TP_OK means the callback is never called */
    tp_conn_release(out, 0);
    cb_fini(&r);
}

static void test_pending_then_served_by_release(void **state)
{
    fx *x = *state;
    tp_pool *p = pool_of_one(x, true);
    tp_conn *held = tu_acquire(p, "k", 0);
    fake_conn *fc = fake_of(held);
    cb_rec r;
    cb_init(&r);
    tp_conn *out = NULL;
    uint64_t ticket = 0;
    assert_int_equal(async(p, MS(5000), &r, &out, &ticket), TP_ACQUIRED_PENDING);
    tu_sleep_ms(20);
    assert_int_equal(cb_calls(&r), 0);
    assert_int_equal(tu_key_waiters(p, "k"), 1);
    tp_conn_release(held, 0);
    assert_true(cb_wait(&r, 1000));
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.status, TP_OK);
    assert_non_null(r.conn);
    assert_ptr_equal(fake_of(r.conn), fc);
    /* Documented: a released connection is delivered on the releasing thread. */
    assert_true(pthread_equal(r.thread, pthread_self()));
    tp_conn_release(r.conn, 0);
    tu_sleep_ms(20);
    assert_int_equal(cb_calls(&r), 1); /* exactly once */
    tp_stats st = tu_pool_stats(p);
    assert_int_equal(st.acquires, 2);
    assert_int_equal(st.waiters, 0);
    cb_fini(&r);
}

static void test_timeout_with_maintenance_thread(void **state)
{
    fx *x = *state;
    tp_pool *p = pool_of_one(x, true); /* default interval 1 s: must wake for the deadline */
    tp_conn *held = tu_acquire(p, "k", 0);
    cb_rec r;
    cb_init(&r);
    tp_conn *out = NULL;
    uint64_t ticket = 0;
    int64_t t0 = tu_now_ns();
    assert_int_equal(async(p, MS(100), &r, &out, &ticket), TP_ACQUIRED_PENDING);
    assert_true(cb_wait(&r, 3000));
    double ms = (double)(r.at_ns - t0) / 1e6;
    print_message("async timeout fired after %.1f ms (timeout 100 ms)\n", ms);
    assert_int_equal(r.status, TP_ETIMEDOUT);
    assert_null(r.conn);
    assert_true(ms >= 99.0);
    assert_true(ms <= 100.0 + 100.0);
    assert_true(strlen(r.msg) > 0);
    tp_stats st;
    tu_key_stats(p, "k", &st);
    assert_int_equal(st.timeouts, 1);
    assert_int_equal(st.waiters, 0);
    tp_conn_release(held, 0);
    tu_sleep_ms(20);
    assert_int_equal(cb_calls(&r), 1);
    cb_fini(&r);
}

static void test_timeout_driven_by_manual_maintain(void **state)
{
    fx *x = *state;
    tp_pool *p = pool_of_one(x, false);
    tp_conn *held = tu_acquire(p, "k", 0);
    cb_rec r;
    cb_init(&r);
    tp_conn *out = NULL;
    uint64_t ticket = 0;
    assert_int_equal(async(p, MS(50), &r, &out, &ticket), TP_ACQUIRED_PENDING);
    /* An event loop driving maintenance must be told to come back by the deadline. */
    int64_t next = tp_pool_maintain(p);
    assert_true(next > 0);
    assert_true(next <= MS(60));
    tu_sleep_ms(100);
    (void)tp_pool_maintain(p);
    /* Fired in the caller of tp_pool_maintain, before it returned. */
    assert_int_equal(cb_calls(&r), 1);
    assert_int_equal(r.status, TP_ETIMEDOUT);
    assert_true(pthread_equal(r.thread, pthread_self()));
    tp_conn_release(held, 0);
    cb_fini(&r);
}

static void test_cancel_pending(void **state)
{
    fx *x = *state;
    tp_pool *p = pool_of_one(x, true);
    tp_conn *held = tu_acquire(p, "k", 0);
    cb_rec r;
    cb_init(&r);
    tp_conn *out = NULL;
    uint64_t ticket = 0;
    assert_int_equal(async(p, MS(5000), &r, &out, &ticket), TP_ACQUIRED_PENDING);
    assert_int_equal(tp_acquire_cancel(p, ticket), TP_OK);
    assert_int_equal(tu_key_waiters(p, "k"), 0);
    tp_conn_release(held, 0);
    tu_sleep_ms(50);
    assert_int_equal(cb_calls(&r), 0); /* never, not even with an error */
    tp_stats st;
    tu_key_stats(p, "k", &st);
    assert_int_equal(st.idle, 1); /* the release went to idle, not to the canceled one */
    assert_int_equal(tp_acquire_cancel(p, ticket), TP_ESTATE);
    cb_fini(&r);
}

static void test_cancel_after_completion(void **state)
{
    fx *x = *state;
    tp_pool *p = pool_of_one(x, true);
    tp_conn *held = tu_acquire(p, "k", 0);
    cb_rec r;
    cb_init(&r);
    tp_conn *out = NULL;
    uint64_t ticket = 0;
    assert_int_equal(async(p, MS(5000), &r, &out, &ticket), TP_ACQUIRED_PENDING);
    tp_conn_release(held, 0);
    assert_true(cb_wait(&r, 1000));
    assert_int_equal(tp_acquire_cancel(p, ticket), TP_ESTATE);
    assert_int_equal(r.status, TP_OK);
    tp_conn_release(r.conn, 0);
    cb_fini(&r);
}

static void test_close_wakes_pending(void **state)
{
    enum { N = 3 };
    fx *x = *state;
    tp_pool *p = pool_of_one(x, true);
    tp_conn *held = tu_acquire(p, "k", 0);
    cb_rec r[N];
    for (int i = 0; i < N; i++) {
        cb_init(&r[i]);
        tp_conn *out = NULL;
        uint64_t ticket = 0;
        assert_int_equal(async(p, MS(10000), &r[i], &out, &ticket), TP_ACQUIRED_PENDING);
    }
    int64_t t0 = tu_now_ns();
    tp_pool_close(p);
    for (int i = 0; i < N; i++) {
        assert_true(cb_wait(&r[i], 1000));
        assert_int_equal(r[i].status, TP_ECLOSED);
        assert_null(r[i].conn);
    }
    assert_true(tu_ms_since(t0) < 500.0);
    /* After close: refused outright, no callback. */
    cb_rec late;
    cb_init(&late);
    tp_conn *out = NULL;
    assert_int_equal(async(p, MS(1000), &late, &out, NULL), TP_ECLOSED);
    tp_conn_release(held, 0);
    tu_sleep_ms(20);
    assert_int_equal(cb_calls(&late), 0);
    for (int i = 0; i < N; i++) {
        assert_int_equal(cb_calls(&r[i]), 1);
        cb_fini(&r[i]);
    }
    cb_fini(&late);
}

static void test_open_on_pool_thread(void **state)
{
    fx *x = *state;
    tp_pool *p = pool_of_one(x, true);
    fake_gate_close(&x->f);
    cb_rec r;
    cb_init(&r);
    tp_conn *out = NULL;
    uint64_t ticket = 0;
    int64_t t0 = tu_now_ns();
    /* Nothing idle: queued, and the open must not run in (or block) the caller. */
    assert_int_equal(async(p, MS(5000), &r, &out, &ticket), TP_ACQUIRED_PENDING);
    assert_true(tu_ms_since(t0) < 50.0);
    bool ok = false;
    TU_WAIT_UNTIL(ok, fake_gate_waiting(&x->f) == 1, 2000);
    assert_true(ok);
    tp_stats st;
    tu_key_stats(p, "k", &st);
    assert_int_equal(st.opening, 1);
    fake_gate_open(&x->f);
    assert_true(cb_wait(&r, 2000));
    assert_int_equal(r.status, TP_OK);
    assert_non_null(r.conn);
    assert_int_equal(fake_of(r.conn)->id, 1);
    assert_true(fake_conn_key_is(fake_of(r.conn), KEY("k")));
    assert_false(pthread_equal(r.thread, pthread_self()));
    assert_int_equal(x->f.opens, 1);
    tp_conn_release(r.conn, 0);
    cb_fini(&r);
}

static void test_open_failure_reaches_callback(void **state)
{
    fx *x = *state;
    tp_pool *p = pool_of_one(x, true);
    fake_fail_all(&x->f, TP_EOPEN);
    cb_rec r;
    cb_init(&r);
    tp_conn *out = NULL;
    uint64_t ticket = 0;
    int rc = async(p, MS(2000), &r, &out, &ticket);
    if (rc == TP_ACQUIRED_PENDING) {
        assert_true(cb_wait(&r, 3000));
        assert_int_equal(r.status, TP_EOPEN);
        assert_null(r.conn);
    } else {
        /* An implementation may fail at once when it knows the outcome; then no
         * callback may follow. */
        assert_int_equal(rc, TP_EOPEN);
        tu_sleep_ms(50);
        assert_int_equal(cb_calls(&r), 0);
    }
    assert_true(x->f.open_failures >= 1);
    cb_fini(&r);
}

static void test_callback_may_reenter_pool(void **state)
{
    fx *x = *state;
    tp_pool *p = pool_of_one(x, true);
    tu_watchdog(15); /* a deadlock kills the test instead of hanging the run */
    tp_conn *held = tu_acquire(p, "k", 0);
    cb_rec r;
    cb_init(&r);
    r.p = p;
    r.reenter = true;
    r.release_in_cb = true;
    tp_conn *out = NULL;
    uint64_t ticket = 0;
    assert_int_equal(async(p, MS(5000), &r, &out, &ticket), TP_ACQUIRED_PENDING);
    tp_conn_release(held, 0); /* the callback runs here, on this thread */
    assert_true(cb_wait(&r, 2000));
    assert_int_equal(r.status, TP_OK);
    assert_true(r.inner_stats_done);
    assert_int_equal(r.inner_try, TP_EAGAIN); /* the callback itself holds the only one */
    assert_int_equal(r.inner_acquire, TP_OK);
    tp_stats st;
    tu_key_stats(p, "k", &st);
    assert_int_equal(st.idle, 1); /* released from inside the callback */
    assert_int_equal(st.in_use, 0);

    /* The same from the maintenance thread, through a timeout. */
    held = tu_acquire(p, "k", 0);
    cb_rec r2;
    cb_init(&r2);
    r2.p = p;
    r2.reenter = true;
    assert_int_equal(async(p, MS(50), &r2, &out, &ticket), TP_ACQUIRED_PENDING);
    assert_true(cb_wait(&r2, 3000));
    assert_int_equal(r2.status, TP_ETIMEDOUT);
    assert_true(r2.inner_stats_done);
    assert_int_equal(r2.inner_acquire, TP_OK);
    tp_conn_release(held, 0);
    tu_watchdog(120);
    cb_fini(&r);
    cb_fini(&r2);
}

typedef struct releaser {
    tp_conn *c;
    atomic_int *go;
    atomic_int ready;
    unsigned spin;
} releaser;

/* Spins for n iterations of a side-effect-free loop the compiler cannot remove. */
static void spin(unsigned n)
{
    for (volatile unsigned i = 0; i < n; i++) {
    }
}

static void *release_thread(void *arg)
{
    releaser *rl = arg;
    atomic_store(&rl->ready, 1);
    while (atomic_load(rl->go) == 0) {
    }
    spin(rl->spin);
    tp_conn_release(rl->c, 0);
    return NULL;
}

static void test_cancel_races_release_exactly_once(void **state)
{
    /* Release (serving the request) and cancel race. Either cancel wins (TP_OK, the
     * callback never runs, the connection goes idle) or the release wins (TP_ESTATE,
     * the callback runs exactly once with the connection). Never both, never neither.
     * Both sides start from a shared flag, each after a varying spin, so that over the
     * iterations each of them wins some of the time. */
    fx *x = *state;
    tp_pool *p = pool_of_one(x, true);
    int won_cancel = 0, won_release = 0;
    uint32_t rng = 7;
    for (int i = 0; i < 400; i++) {
        tp_conn *held = tu_acquire(p, "k", 0);
        cb_rec r;
        cb_init(&r);
        tp_conn *out = NULL;
        uint64_t ticket = 0;
        assert_int_equal(async(p, MS(5000), &r, &out, &ticket), TP_ACQUIRED_PENDING);
        atomic_int go = 0;
        rng = rng * 1103515245u + 12345u;
        releaser rl = {.c = held, .go = &go, .spin = (rng >> 8) % 4000};
        rng = rng * 1103515245u + 12345u;
        unsigned my_spin = (rng >> 8) % 100000; /* cancel usually later */
        pthread_t t;
        tu_thread_start(&t, release_thread, &rl);
        while (atomic_load(&rl.ready) == 0) { /* the thread is at its starting line */
        }
        atomic_store(&go, 1);
        spin(my_spin);
        tp_err cr = tp_acquire_cancel(p, ticket);
        tu_thread_join(t);
        if (cr == TP_OK) {
            won_cancel++;
            tu_sleep_ns(200 * TP_NSEC_PER_USEC);
            assert_int_equal(cb_calls(&r), 0);
            tp_stats st;
            tu_key_stats(p, "k", &st);
            assert_int_equal(st.idle, 1);
        } else {
            assert_int_equal(cr, TP_ESTATE);
            won_release++;
            assert_true(cb_wait(&r, 2000));
            assert_int_equal(r.status, TP_OK);
            tp_conn_release(r.conn, 0);
        }
        assert_int_equal(tu_key_waiters(p, "k"), 0);
        tu_sleep_ns(50 * TP_NSEC_PER_USEC);
        assert_true(cb_calls(&r) <= 1);
        cb_fini(&r);
    }
    print_message("cancel won %d, release won %d\n", won_cancel, won_release);
    assert_int_equal(x->f.opens, 1); /* the one connection went round, never lost */
    assert_int_equal(x->f.closes, 0);
}

static void test_invalid_arguments(void **state)
{
    fx *x = *state;
    tp_pool *p = pool_of_one(x, false);
    tp_conn *out = NULL;
    uint64_t ticket = 0;
    cb_rec r;
    cb_init(&r);
    assert_int_equal(tu_async(p, KEY("k"), 0, 0, NULL, &r, &out, &ticket, NULL),
                     TP_EINVAL);
    assert_int_equal(tu_async(NULL, KEY("k"), 0, 0, on_acquired, &r, &out, &ticket,
                                           NULL),
                     TP_EINVAL);
    assert_int_equal(tu_async(p, NULL, 3, 0, 0, on_acquired, &r, &out, &ticket, NULL),
                     TP_EINVAL);
    tp_acquire_req req = {.key = "k", .keylen = 1};
    assert_int_equal(tp_acquire_async(p, &req, on_acquired, &r, NULL, NULL), TP_EINVAL);
    assert_int_equal(tp_acquire_async(p, NULL, on_acquired, &r, &(tp_acquire_result){0}, NULL),
                     TP_EINVAL);
    req.flags = TP_ACQUIRE_IDLE_ONLY; /* not an asynchronous flag */
    assert_int_equal(tp_acquire_async(p, &req, on_acquired, &r, &(tp_acquire_result){0}, NULL),
                     TP_EINVAL);
    assert_int_not_equal(tp_acquire_cancel(p, 987654321), TP_OK); /* unknown ticket */
    assert_int_equal(x->f.open_calls, 0);
    assert_int_equal(cb_calls(&r), 0);
    cb_fini(&r);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, pool_fx_setup, pool_fx_teardown)

int main(void)
{
    tu_watchdog(120);
    const struct CMUnitTest tests[] = {
        T(test_immediate_when_idle),
        T(test_pending_then_served_by_release),
        T(test_timeout_with_maintenance_thread),
        T(test_timeout_driven_by_manual_maintain),
        T(test_cancel_pending),
        T(test_cancel_after_completion),
        T(test_close_wakes_pending),
        T(test_open_on_pool_thread),
        T(test_open_failure_reaches_callback),
        T(test_callback_may_reenter_pool),
        T(test_cancel_races_release_exactly_once),
        T(test_invalid_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
