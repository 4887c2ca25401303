/* test_pool_basic.c: the basic lease cycle of the keyed pool: open on demand, reuse
 * (most recently used first, whichever thread released), try_acquire, release flags,
 * reset/check failures, max_uses, stats arithmetic, argument checks, close. Keys have
 * their own file (test_pool_keys.c). The maintenance thread is off so that nothing
 * happens behind the test's back. */
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

static void test_acquire_opens_then_reuses(void **state)
{
    fx *x = *state;
    tp_pool *p = pool_fx_pool(x);
    tp_conn *c = tu_acquire(p, "a", MS(2000));
    fake_conn *fc = fake_of(c);
    assert_non_null(fc);
    assert_int_equal(fc->id, 1);
    assert_true(fake_conn_key_is(fc, KEY("a")));
    assert_int_equal(x->f.opens, 1);
    assert_int_equal(tp_conn_uses(c), 1);
    tp_conn_release(c, 0);
    assert_int_equal(x->f.resets, 1); /* reset runs on a release that intends reuse */
    assert_int_equal(x->f.closes, 0);

    tp_conn *c2 = tu_acquire(p, "a", MS(2000));
    assert_ptr_equal(fake_of(c2), fc);
    assert_int_equal(x->f.opens, 1);
    assert_int_equal(tp_conn_uses(c2), 2);
    /* Every reuse is checked (check_after_idle is 0 by default: check() is a poll). */
    assert_int_equal(x->f.checks, 1);

    tp_stats st = tu_pool_stats(p);
    assert_int_equal(st.acquires, 2);
    assert_int_equal(st.reuses, 1);
    assert_int_equal(st.opens, 1);
    assert_int_equal(st.waits, 0);
    tp_conn_release(c2, 0);
}

static void test_zero_timeout_still_opens(void **state)
{
    /* timeout 0 means "do not queue", not "do not open": a free slot is still used. */
    fx *x = *state;
    tp_pool *p = pool_fx_pool(x);
    tp_conn *c = NULL;
    assert_int_equal(tp_pool_acquire(p, KEY("a"), 0, &c, NULL), TP_OK);
    assert_int_equal(x->f.opens, 1);
    tp_conn_release(c, 0);
    /* And that open is bounded by connect_timeout, not by the zero acquire timeout: a
     * connector that needs 20 ms still succeeds. */
    fake_set_open_delay_ms(&x->f, 20);
    tp_conn *d = NULL;
    tp_errinfo err;
    memset(&err, 0, sizeof err);
    tp_conn *held = tu_acquire(p, "a", 0); /* takes the idle one */
    tp_err r = tp_pool_acquire(p, KEY("a"), 0, &d, &err);
    if (r != TP_OK)
        print_error("slow open with timeout 0: %s: %s\n", tp_err_name(r), err.msg);
    assert_int_equal(r, TP_OK);
    assert_int_equal(x->f.opens, 2);
    tp_conn_release(d, 0);
    tp_conn_release(held, 0);
}

static void test_lifo_reuse(void **state)
{
    fx *x = *state;
    tp_pool *p = pool_fx_pool(x);
    tp_conn *a = tu_acquire(p, "k", MS(2000));
    tp_conn *b = tu_acquire(p, "k", MS(2000));
    tp_conn *c = tu_acquire(p, "k", MS(2000));
    uint64_t ia = fake_of(a)->id, ib = fake_of(b)->id, ic = fake_of(c)->id;
    tp_conn_release(a, 0);
    tp_conn_release(b, 0);
    tp_conn_release(c, 0);
    /* Most recently used first: the warmest connection, and the cold ones age out. */
    tp_conn *r1 = tu_acquire(p, "k", MS(2000));
    tp_conn *r2 = tu_acquire(p, "k", MS(2000));
    tp_conn *r3 = tu_acquire(p, "k", MS(2000));
    assert_int_equal(fake_of(r1)->id, ic);
    assert_int_equal(fake_of(r2)->id, ib);
    assert_int_equal(fake_of(r3)->id, ia);
    assert_int_equal(x->f.opens, 3);
    tp_conn_release(r1, 0);
    tp_conn_release(r2, 0);
    tp_conn_release(r3, 0);
}

/* A thread that runs lease operations on request, so a test can choose which thread
 * does what (the pool may keep per-thread state; the contract does not depend on it). */
typedef enum { ACT_NONE, ACT_RELEASE, ACT_CYCLE, ACT_QUIT } act_cmd;

typedef struct actor {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    act_cmd cmd;
    tp_pool *p;
    tp_conn *c;      /* ACT_RELEASE: the lease to release */
    uint64_t got_id; /* ACT_CYCLE: the fake id it was given */
    tp_err result;
    pthread_t t;
} actor;

static void *actor_main(void *arg)
{
    actor *a = arg;
    pthread_mutex_lock(&a->mu);
    for (;;) {
        while (a->cmd == ACT_NONE)
            pthread_cond_wait(&a->cv, &a->mu);
        if (a->cmd == ACT_QUIT)
            break;
        if (a->cmd == ACT_RELEASE) {
            tp_conn_release(a->c, 0);
        } else { /* ACT_CYCLE: acquire and release at once */
            tp_conn *c = NULL;
            a->result = tp_pool_acquire(a->p, KEY("k"), 0, &c, NULL);
            a->got_id = a->result == TP_OK ? fake_of(c)->id : 0;
            if (a->result == TP_OK)
                tp_conn_release(c, 0);
        }
        a->cmd = ACT_NONE;
        pthread_cond_broadcast(&a->cv);
    }
    pthread_mutex_unlock(&a->mu);
    return NULL;
}

static void actor_start(actor *a, tp_pool *p)
{
    memset(a, 0, sizeof *a);
    pthread_mutex_init(&a->mu, NULL);
    pthread_cond_init(&a->cv, NULL);
    a->p = p;
    tu_thread_start(&a->t, actor_main, a);
}

/* Runs one command on the actor and waits for it to finish. */
static void actor_do(actor *a, act_cmd cmd, tp_conn *c)
{
    pthread_mutex_lock(&a->mu);
    a->c = c;
    a->cmd = cmd;
    pthread_cond_broadcast(&a->cv);
    while (cmd != ACT_QUIT && a->cmd != ACT_NONE)
        pthread_cond_wait(&a->cv, &a->mu);
    pthread_mutex_unlock(&a->mu);
}

static void actor_stop(actor *a)
{
    actor_do(a, ACT_QUIT, NULL);
    tu_thread_join(a->t);
    pthread_mutex_destroy(&a->mu);
    pthread_cond_destroy(&a->cv);
}

/* Runs one acquire-and-release cycle on a brand-new thread (one with no history in the
 * pool) and returns the fake id it was given. */
static uint64_t cycle_on_fresh_thread(tp_pool *p)
{
    actor t;
    actor_start(&t, p);
    actor_do(&t, ACT_CYCLE, NULL);
    actor_stop(&t);
    assert_int_equal(t.result, TP_OK);
    return t.got_id;
}

static void test_mru_reuse_across_threads(void **state)
{
    /* The contract (pool.h): a thread first gets back the connection it released last
     * if that one is idle; otherwise the most recently released idle connection, whoever
     * released it. t1 releases A, then main releases B, so B is the most recent. */
    fx *x = *state;
    tp_pool *p = pool_fx_pool(x);
    actor t1;
    actor_start(&t1, p);
    tp_conn *a = tu_acquire(p, "k", 0);
    tp_conn *b = tu_acquire(p, "k", 0);
    uint64_t ia = fake_of(a)->id;
    uint64_t ib = fake_of(b)->id;
    actor_do(&t1, ACT_RELEASE, a); /* leases may move between threads */
    tp_conn_release(b, 0);

    /* A thread with no history gets B, the most recently released. */
    uint64_t fresh1 = cycle_on_fresh_thread(p);
    /* t1 gets back A, the connection it released last (thread affinity). */
    actor_do(&t1, ACT_CYCLE, NULL);
    assert_int_equal(t1.result, TP_OK);
    uint64_t t1_got = t1.got_id;
    /* t1 released A again without a lock, in place in the idle list: it is now the most
     * recently released, and the next fresh thread must get it, not B. */
    uint64_t fresh2 = cycle_on_fresh_thread(p);
    actor_stop(&t1);
    print_message("A is %llu, B is %llu: fresh thread got %llu; t1 got %llu; a fresh thread "
                  "after t1's cycle got %llu\n",
                  (unsigned long long)ia, (unsigned long long)ib, (unsigned long long)fresh1,
                  (unsigned long long)t1_got, (unsigned long long)fresh2);
    assert_int_equal(fresh1, ib);
    assert_int_equal(t1_got, ia);
    assert_int_equal(fresh2, ia);
    assert_int_equal(x->f.opens, 2);
}

/* Reuse and eviction follow the exact order of release, however each release was made:
 * under the lock (a lease from the idle list's slow path) or without it (a thread
 * getting back its own connection and returning it in place). Four threads own one
 * connection each; some cycle theirs lock-free; then a thread must be given them newest
 * first, and with one too many idle the least recently released must close. */
static void test_exact_order_mixed_releases(void **state)
{
    fx *x = *state;
    tp_pool_options o;
    pool_fx_options(x, &o);
    o.max_idle_per_key = 4;
    assert_int_equal(tp_pool_create(&o, &x->p, NULL), TP_OK);
    tp_pool *p = x->p;
    enum { N = 4 };
    actor t[N];
    tp_conn *c[N];
    uint64_t id[N];
    for (int i = 0; i < N; i++) {
        actor_start(&t[i], p);
        c[i] = tu_acquire(p, "k", 0);
        id[i] = fake_of(c[i])->id;
    }
    tp_conn *extra = tu_acquire(p, "k", 0); /* held: the one too many, at the end */
    for (int i = 0; i < N; i++)
        actor_do(&t[i], ACT_RELEASE, c[i]); /* newest first: 3 2 1 0 */
    /* Lock-free cycles: each thread gets its own back and returns it (now the newest). */
    const int cycles[] = {1, 3, 0, 1, 2, 0};
    int order[N] = {3, 2, 1, 0};
    for (size_t j = 0; j < sizeof cycles / sizeof *cycles; j++) {
        int who = cycles[j];
        actor_do(&t[who], ACT_CYCLE, NULL);
        assert_int_equal(t[who].result, TP_OK);
        assert_int_equal(t[who].got_id, id[who]);
        int at = 0;
        while (order[at] != who)
            at++;
        memmove(&order[1], &order[0], sizeof *order * (size_t)at);
        order[0] = who;
    }
    /* Newest first: 0 2 1 3. This thread released nothing, so it has no own one. */
    tp_conn *got[N];
    for (int i = 0; i < N; i++) {
        assert_int_equal(tp_pool_acquire(p, KEY("k"), 0, &got[i], NULL), TP_OK);
        print_message("reuse %d: id %llu, want %llu\n", i,
                      (unsigned long long)fake_of(got[i])->id, (unsigned long long)id[order[i]]);
        assert_int_equal(fake_of(got[i])->id, id[order[i]]);
    }
    assert_int_equal(x->f.opens, N + 1);
    /* Back through their own threads, oldest first: newest first is
     * order[] again. Then the oldest cycles lock-free and becomes the newest, which
     * leaves order[N - 2] the least recently released. */
    for (int i = N - 1; i >= 0; i--)
        actor_do(&t[order[i]], ACT_RELEASE, got[i]);
    actor_do(&t[order[N - 1]], ACT_CYCLE, NULL);
    assert_int_equal(t[order[N - 1]].got_id, id[order[N - 1]]);
    tp_conn_release(extra, 0); /* five idle, room for four */
    for (int i = 0; i < N; i++)
        actor_stop(&t[i]);
    uint64_t lru = id[order[N - 2]];
    tp_close_reason why;
    assert_int_equal(fake_close_count_for(&x->f, lru), 1);
    assert_true(fake_close_reason_for(&x->f, lru, &why));
    assert_int_equal(why, TP_CLOSE_IDLE_OVERFLOW);
    assert_int_equal(x->f.closes, 1);
}

/* An idle connection leased under the lock keeps its place in the idle list (so that its
 * release is lock-free): max_idle_per_key must still count only what is idle. */
static void test_idle_cap_with_leased_links(void **state)
{
    fx *x = *state;
    tp_pool_options o;
    pool_fx_options(x, &o);
    o.max_per_key = 4;
    o.max_idle_per_key = 2;
    assert_int_equal(tp_pool_create(&o, &x->p, NULL), TP_OK);
    tp_pool *p = x->p;
    tp_conn *c[4];
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 4; i++)
            c[i] = tu_acquire(p, "k", 0); /* two idle ones reused, then two opened */
        tp_stats st;
        tp_pool_stats(p, &st);
        assert_int_equal(st.in_use, 4);
        assert_int_equal(st.idle, 0);
        for (int i = 0; i < 4; i++)
            tp_conn_release(c[i], 0);
        tp_pool_stats(p, &st);
        assert_int_equal(st.idle, 2);
        assert_int_equal(st.in_use, 0);
        assert_int_equal(st.total, 2);
        assert_int_equal(st.closes[TP_CLOSE_IDLE_OVERFLOW], 2 * (round + 1));
    }
    assert_int_equal(x->f.opens, 4 + 2 + 2);
    assert_int_equal(x->f.closes, 6);
}

static void test_try_acquire(void **state)
{
    fx *x = *state;
    tp_pool *p = pool_fx_pool(x);
    tp_conn *c = NULL;
    assert_int_equal(tu_try(p, KEY("a"), &c), TP_EAGAIN);
    assert_int_equal(x->f.open_calls, 0); /* never opens */
    tp_conn *a = tu_acquire(p, "a", MS(2000));
    assert_int_equal(tu_try(p, KEY("a"), &c), TP_EAGAIN); /* in use, none idle */
    tp_conn_release(a, 0);
    assert_int_equal(tu_try(p, KEY("a"), &c), TP_OK);
    assert_non_null(c);
    assert_int_equal(fake_of(c)->id, 1);
    assert_int_equal(x->f.open_calls, 1);
    tp_conn *other = NULL;
    assert_int_equal(tu_try(p, KEY("b"), &other), TP_EAGAIN); /* unknown key */
    assert_int_equal(tu_try(p, KEY("a"), NULL), TP_EINVAL);
    tp_conn_release(c, 0);
    tp_stats st = tu_pool_stats(p);
    assert_int_equal(st.reuses, 1);
    assert_int_equal(st.opens, 1);
}

static void test_release_discard_and_broken(void **state)
{
    fx *x = *state;
    tp_pool *p = pool_fx_pool(x);
    tp_conn *a = tu_acquire(p, "k", MS(2000));
    tp_conn *b = tu_acquire(p, "k", MS(2000));
    uint64_t ia = fake_of(a)->id, ib = fake_of(b)->id;
    tp_conn_release(a, TP_RELEASE_DISCARD);
    tp_conn_release(b, TP_RELEASE_BROKEN);
    tp_close_reason r;
    assert_true(fake_close_reason_for(&x->f, ia, &r));
    assert_int_equal(r, TP_CLOSE_DISCARDED);
    assert_true(fake_close_reason_for(&x->f, ib, &r));
    assert_int_equal(r, TP_CLOSE_BROKEN);
    /* Neither was meant for reuse, so neither was reset. */
    assert_int_equal(x->f.resets, 0);
    tp_stats st;
    tu_key_stats(p, "k", &st);
    assert_int_equal(st.closes[TP_CLOSE_DISCARDED], 1);
    assert_int_equal(st.closes[TP_CLOSE_BROKEN], 1);
    assert_int_equal(st.idle, 0);
    assert_int_equal(st.total, 0);
    /* Both flags: one close, whatever the reason. */
    tp_conn *c = tu_acquire(p, "k", MS(2000));
    tp_conn_release(c, TP_RELEASE_DISCARD | TP_RELEASE_BROKEN);
    assert_int_equal(x->f.closes, 3);
    tp_conn_release(NULL, 0); /* no-op */
}

static void test_reset_failure_closes(void **state)
{
    fx *x = *state;
    tp_pool *p = pool_fx_pool(x);
    tp_conn *c = tu_acquire(p, "k", MS(2000));
    uint64_t id = fake_of(c)->id;
    fake_fail_reset(&x->f, true);
    tp_conn_release(c, 0);
    tp_close_reason r;
    assert_true(fake_close_reason_for(&x->f, id, &r));
    assert_int_equal(r, TP_CLOSE_RESET_FAILED);
    fake_fail_reset(&x->f, false);
    c = tu_acquire(p, "k", MS(2000));
    assert_int_not_equal(fake_of(c)->id, id);
    assert_int_equal(x->f.opens, 2);
    tp_conn_release(c, 0);
    tp_stats st = tu_pool_stats(p);
    assert_int_equal(st.closes[TP_CLOSE_RESET_FAILED], 1);
}

static void test_check_failure_on_reuse(void **state)
{
    fx *x = *state;
    tp_pool_options o;
    pool_fx_options(x, &o);
    o.check_after_idle = 0; /* always check before reuse */
    tp_pool *p = x->p = tu_pool_create(&o);
    tp_conn *c = tu_acquire(p, "k", MS(2000));
    uint64_t id = fake_of(c)->id;
    tp_conn_release(c, 0);
    fake_fail_check_id(&x->f, id);
    /* The acquire must not fail because the idle one is dead: it opens a fresh one. */
    c = tu_acquire(p, "k", MS(2000));
    assert_int_not_equal(fake_of(c)->id, id);
    assert_int_equal(x->f.checks, 1);
    tp_close_reason r;
    assert_true(fake_close_reason_for(&x->f, id, &r));
    assert_int_equal(r, TP_CLOSE_CHECK_FAILED);
    tp_stats st = tu_pool_stats(p);
    assert_int_equal(st.checks_failed, 1);
    assert_int_equal(st.closes[TP_CLOSE_CHECK_FAILED], 1);
    assert_int_equal(st.opens, 2);
    tp_conn_release(c, 0);
}

static void test_check_failure_tries_every_idle(void **state)
{
    fx *x = *state;
    tp_pool_options o;
    pool_fx_options(x, &o);
    o.check_after_idle = 0;
    tp_pool *p = x->p = tu_pool_create(&o);
    tp_conn *a = tu_acquire(p, "k", MS(2000));
    tp_conn *b = tu_acquire(p, "k", MS(2000));
    tp_conn *c = tu_acquire(p, "k", MS(2000));
    uint64_t ic = fake_of(c)->id;
    tp_conn_release(a, 0);
    tp_conn_release(b, 0);
    tp_conn_release(c, 0);
    fake_fail_check_id(&x->f, ic); /* the MRU one is dead, the others fine */
    tp_conn *r = tu_acquire(p, "k", MS(2000));
    /* It moves on to the next idle one instead of opening. */
    assert_int_equal(x->f.opens, 3);
    assert_int_not_equal(fake_of(r)->id, ic);
    assert_int_equal(x->f.close_reasons[TP_CLOSE_CHECK_FAILED], 1);
    tp_conn_release(r, 0);
    /* All dead: all closed, a fresh one opened, still success. */
    fake_fail_check_all(&x->f, true);
    r = tu_acquire(p, "k", MS(2000));
    assert_int_equal(x->f.close_reasons[TP_CLOSE_CHECK_FAILED], 3);
    assert_int_equal(x->f.opens, 4);
    fake_fail_check_all(&x->f, false);
    tp_conn_release(r, 0);
}

static void test_max_uses(void **state)
{
    fx *x = *state;
    tp_pool_options o;
    pool_fx_options(x, &o);
    o.max_uses = 3;
    tp_pool *p = x->p = tu_pool_create(&o);
    for (uint64_t i = 1; i <= 3; i++) {
        tp_conn *c = tu_acquire(p, "k", MS(2000));
        assert_int_equal(fake_of(c)->id, 1);
        assert_int_equal(tp_conn_uses(c), i);
        tp_conn_release(c, 0);
    }
    /* The third lease was its last: closed on that release, not kept idle. */
    assert_int_equal(x->f.closes, 1);
    assert_int_equal(x->f.close_reasons[TP_CLOSE_MAX_USES], 1);
    tp_conn *c = tu_acquire(p, "k", MS(2000));
    assert_int_equal(fake_of(c)->id, 2);
    assert_int_equal(tp_conn_uses(c), 1);
    tp_conn_release(c, 0);
    assert_int_equal(tu_pool_stats(p).closes[TP_CLOSE_MAX_USES], 1);
}

static void assert_gauges_add_up(const tp_stats *st)
{
    assert_int_equal(st->idle + st->in_use + st->opening, st->total);
}

static void test_stats_gauges_and_counters(void **state)
{
    fx *x = *state;
    tp_pool *p = pool_fx_pool(x);
    tp_conn *a[3], *b[2];
    for (int i = 0; i < 3; i++)
        a[i] = tu_acquire(p, "a", MS(2000));
    for (int i = 0; i < 2; i++)
        b[i] = tu_acquire(p, "b", MS(2000));
    tp_conn_release(a[0], 0);

    tp_stats st = tu_pool_stats(p);
    assert_gauges_add_up(&st);
    assert_int_equal(st.total, 5);
    assert_int_equal(st.idle, 1);
    assert_int_equal(st.in_use, 4);
    assert_int_equal(st.opening, 0);
    assert_int_equal(st.keys, 2);
    assert_int_equal(st.breaker, TP_BREAKER_CLOSED);
    tp_stats sa;
    tu_key_stats(p, "a", &sa);
    assert_gauges_add_up(&sa);
    assert_int_equal(sa.total, 3);
    assert_int_equal(sa.idle, 1);
    assert_int_equal(sa.in_use, 2);
    assert_int_equal(sa.max_per_key, 64);
    assert_int_equal(sa.max_idle_per_key, 64);
    assert_int_equal(sa.min_idle_per_key, 0);

    /* A connection being opened counts as "opening" and in the total. */
    fake_gate_close(&x->f);
    tu_acq_job job = {.p = p, .key = "c", .timeout = MS(5000)};
    pthread_t t;
    tu_thread_start(&t, tu_acquire_thread, &job);
    bool ok = false;
    TU_WAIT_UNTIL(ok, fake_gate_waiting(&x->f) == 1, 2000);
    assert_true(ok);
    st = tu_pool_stats(p);
    assert_gauges_add_up(&st);
    assert_int_equal(st.opening, 1);
    assert_int_equal(st.total, 6);
    tp_stats sc;
    tu_key_stats(p, "c", &sc);
    assert_int_equal(sc.opening, 1);
    assert_int_equal(sc.total, 1);
    fake_gate_open(&x->f);
    tu_thread_join(t);
    assert_int_equal(job.result, TP_OK);
    tp_conn_release(job.conn, 0); /* a lease may move between threads */

    tp_conn_release(a[1], 0);
    tp_conn_release(a[2], 0);
    tp_conn_release(b[0], 0);
    tp_conn_release(b[1], 0);
    tp_conn *again = tu_acquire(p, "a", MS(2000));
    tp_conn_release(again, 0);

    st = tu_pool_stats(p);
    assert_gauges_add_up(&st);
    assert_int_equal(st.in_use, 0);
    assert_int_equal(st.idle, 6);
    assert_int_equal(st.acquires, 7);
    assert_int_equal(st.opens, 6);
    assert_int_equal(st.reuses, 1);
    assert_int_equal(st.acquires, st.reuses + st.opens);
    assert_int_equal(st.open_failures, 0);
    assert_int_equal(st.timeouts, 0);
    assert_int_equal(tu_closes_total(&st), 0);
    /* Histograms: one sample per successful open, per ended lease, per lease granted
     * (acquire_wait; 0 when not queued) and per reuse (idle_time). */
    assert_int_equal(st.open_time.count, 6);
    assert_int_equal(st.hold_time.count, 7);
    assert_int_equal(st.acquire_wait.count, st.acquires);
    assert_int_equal(st.idle_time.count, st.reuses);
}

static void never_called(void *ud, tp_err status, tp_acquired kind, tp_conn *conn,
                         const tp_errinfo *err)
{
    (void)ud, (void)status, (void)kind, (void)conn, (void)err;
    fail_msg("an acquire granted at once called its callback");
}

/* A lease taken from the idle list without queuing waited for nothing, whichever verb
 * took it: acquire_wait counts it at 0 ns and its lease info says 0 (the time spent
 * deciding under the lock used to be counted as a wait). */
static void test_unqueued_reuse_waits_nothing(void **state)
{
    fx *x = *state;
    tp_pool *p = pool_fx_pool(x);
    tp_conn *first = tu_acquire(p, "w", MS(2000)); /* opens: its wait is the open */
    tp_conn_release(first, 0);
    tp_stats before;
    tu_key_stats(p, "w", &before);
    assert_int_equal(before.acquire_wait.count, 1);
    for (int i = 0; i < 2; i++) {
        /* Another key's lease in between: the thread's hint names it, so "w" is taken
         * on the locked path. */
        tp_conn *other = tu_acquire(p, "other", MS(2000));
        tp_conn_release(other, 0);
        tp_conn *c = NULL;
        if (i == 0) {
            c = tu_acquire(p, "w", MS(2000));
        } else {
            tp_acquire_req req = tp_acquire_req_for(KEY("w"), MS(2000), 0);
            tp_acquire_result res;
            assert_int_equal(tp_acquire_async(p, &req, never_called, NULL, &res, NULL), TP_OK);
            assert_int_equal(res.kind, TP_ACQUIRED_LEASE);
            c = res.conn;
        }
        tp_lease_info li;
        tp_conn_lease_info(c, &li);
        assert_true(li.reused);
        assert_int_equal(li.waited_ns, 0);
        tp_conn_release(c, 0);
    }
    tp_stats after;
    tu_key_stats(p, "w", &after);
    assert_int_equal(after.reuses, 2);
    assert_int_equal(after.acquire_wait.count, 3);
    assert_int_equal(after.acquire_wait.sum_ns, before.acquire_wait.sum_ns);
    assert_int_equal(after.acquire_wait.buckets[0], before.acquire_wait.buckets[0] + 2);
}

static void test_invalid_arguments(void **state)
{
    fx *x = *state;
    tp_pool *p = pool_fx_pool(x);
    tp_conn *c = NULL;
    assert_int_equal(tp_pool_acquire(NULL, KEY("a"), 0, &c, NULL), TP_EINVAL);
    assert_int_equal(tp_pool_acquire(p, KEY("a"), 0, NULL, NULL), TP_EINVAL);
    assert_int_equal(tp_pool_acquire(p, NULL, 3, 0, &c, NULL), TP_EINVAL);
    assert_int_equal(tu_try(NULL, KEY("a"), &c), TP_EINVAL);
    assert_int_equal(tu_try(p, NULL, 3, &c), TP_EINVAL);
    assert_int_equal(x->f.open_calls, 0);
    tp_pool_destroy(NULL); /* no-op */
}

static void test_close_closes_idle_and_refuses(void **state)
{
    fx *x = *state;
    tp_pool *p = pool_fx_pool(x);
    tp_conn *a = tu_acquire(p, "a", MS(2000));
    tp_conn *b = tu_acquire(p, "a", MS(2000));
    tp_conn_release(a, 0);
    tp_pool_close(p);
    assert_int_equal(x->f.close_reasons[TP_CLOSE_POOL_CLOSED], 1); /* idle: at once */
    tp_conn *c = NULL;
    assert_int_equal(tp_pool_acquire(p, KEY("a"), MS(100), &c, NULL), TP_ECLOSED);
    assert_int_equal(tu_try(p, KEY("a"), &c), TP_ECLOSED);
    tp_conn_release(b, 0); /* in use: on release */
    assert_int_equal(x->f.close_reasons[TP_CLOSE_POOL_CLOSED], 2);
    assert_int_equal(x->f.live, 0);
    tp_pool_close(p); /* idempotent */
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, pool_fx_setup, pool_fx_teardown)

int main(void)
{
    tu_watchdog(120);
    const struct CMUnitTest tests[] = {
        T(test_acquire_opens_then_reuses),
        T(test_zero_timeout_still_opens),
        T(test_lifo_reuse),
        T(test_mru_reuse_across_threads),
        T(test_exact_order_mixed_releases),
        T(test_idle_cap_with_leased_links),
        T(test_try_acquire),
        T(test_release_discard_and_broken),
        T(test_reset_failure_closes),
        T(test_check_failure_on_reuse),
        T(test_check_failure_tries_every_idle),
        T(test_max_uses),
        T(test_stats_gauges_and_counters),
        T(test_unqueued_reuse_waits_nothing),
        T(test_invalid_arguments),
        T(test_close_closes_idle_and_refuses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
