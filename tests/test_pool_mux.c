/* test_pool_mux.c (label: concurrency): multiplexed connections, with a fake connector
 * whose streams() says how many leases a connection carries. Never more leases on a
 * connection than its capacity, under 16 threads; capacity lowered live (leases above it
 * finish, none start) and raised live (waiters served at once); a drained connection
 * closes after its last lease with reason drained; a broken stream retires its whole
 * connection; no second dial while a multiplexing key's first open is pending, and
 * parallel dials again once the key says "one lease"; tenants and the adaptive limit
 * count streams; a forked child lets the parent's streams go; stats
 * count streams in use and stream capacity. */
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include <tidepool/tidepool.h>

#include "support/fake_connector.h"
#include "support/pool_fixture.h"
#include "support/test_util.h"

typedef pool_fx fx;

static tp_pool *make_pool(fx *x, int64_t streams, int64_t max_per_key)
{
    atomic_store(&x->f.streams, streams);
    tp_pool_options o;
    pool_fx_options(x, &o);
    o.max_per_key = max_per_key;
    o.max_idle_per_key = max_per_key;
    return x->p = tu_pool_create(&o);
}

static tp_stats key_stats(fx *x)
{
    tp_stats st;
    tu_key_stats(x->p, "k", &st);
    return st;
}

static tp_err try_now(fx *x, tp_conn **c)
{
    return tu_acquire_ex(x->p, KEY("k"), 0, 0, c, NULL); /* never queue */
}

static void test_streams_share_one_connection(void **state)
{
    fx *x = *state;
    make_pool(x, 4, 2);
    tp_conn *l[5];
    for (int i = 0; i < 4; i++)
        l[i] = tu_acquire(x->p, "k", MS(1000));
    assert_int_equal(atomic_load(&x->f.opens), 1);
    for (int i = 1; i < 4; i++) {
        assert_ptr_not_equal(l[i], l[0]);               /* a lease each */
        assert_ptr_equal(fake_of(l[i]), fake_of(l[0])); /* on one connection */
    }
    tp_stats st = key_stats(x);
    assert_int_equal(st.total, 1);
    assert_int_equal(st.in_use, 1);
    assert_int_equal(st.streams_in_use, 4);
    assert_int_equal(st.stream_capacity, 4);
    tp_lease_info li;
    tp_conn_lease_info(l[0], &li);
    assert_false(li.reused);
    tp_conn_lease_info(l[3], &li);
    assert_true(li.reused);
    assert_int_equal(li.uses, 4);
    assert_int_equal(li.idle_ns, 0); /* added to a busy connection */
    /* Full: the fifth lease is a second connection. */
    l[4] = tu_acquire(x->p, "k", MS(1000));
    assert_ptr_not_equal(fake_of(l[4]), fake_of(l[0]));
    st = key_stats(x);
    assert_int_equal(st.total, 2);
    assert_int_equal(st.streams_in_use, 5);
    assert_int_equal(st.stream_capacity, 8);
    for (int i = 0; i < 5; i++)
        tp_conn_release(l[i], 0);
    st = key_stats(x);
    assert_int_equal(st.idle, 2);
    assert_int_equal(st.streams_in_use, 0);
    assert_int_equal(st.idle + st.in_use + st.opening, st.total);
    assert_int_equal(st.acquires, 5);
    /* At rest, a multiplexed connection is reused like any idle one. */
    tp_conn *again = tu_acquire(x->p, "k", MS(1000));
    tp_conn_lease_info(again, &li);
    assert_true(li.reused);
    assert_int_equal(atomic_load(&x->f.opens), 2);
    tp_conn_release(again, 0);
    assert_int_equal(atomic_load(&x->f.closes), 0);
}

typedef struct hammer {
    fx *x;
    atomic_int *stop;
    atomic_int *over; /* leases seen above a connection's capacity */
    int capacity;
    int ok;
} hammer;

static void *hammer_main(void *arg)
{
    hammer *h = arg;
    while (!atomic_load(h->stop)) {
        tp_conn *c = NULL;
        if (tu_acquire_ex(h->x->p, KEY("k"), MS(200), 0, &c, NULL) != TP_OK)
            continue;
        fake_conn *fc = fake_of(c);
        if (atomic_fetch_add(&fc->held, 1) + 1 > h->capacity)
            atomic_fetch_add(h->over, 1);
        h->ok++;
        sched_yield();
        atomic_fetch_sub(&fc->held, 1);
        tp_conn_release(c, 0);
    }
    return NULL;
}

static void test_never_more_leases_than_capacity(void **state)
{
    fx *x = *state;
    make_pool(x, 3, 2);
    atomic_int stop = 0, over = 0;
    enum { N = 16 };
    hammer h[N];
    pthread_t t[N];
    for (int i = 0; i < N; i++) {
        h[i] = (hammer){.x = x, .stop = &stop, .over = &over, .capacity = 3};
        tu_thread_start(&t[i], hammer_main, &h[i]);
    }
    tu_sleep_ms(TU_UNDER_TSAN ? 600 : 300);
    atomic_store(&stop, 1);
    int ok = 0;
    for (int i = 0; i < N; i++) {
        tu_thread_join(t[i]);
        ok += h[i].ok;
    }
    print_message("%d leases on %llu connections\n", ok,
                  (unsigned long long)atomic_load(&x->f.opens));
    assert_true(ok > 100);
    print_message("over capacity: %d\n", atomic_load(&over));
    assert_int_equal(atomic_load(&over), 0);
    assert_true(atomic_load(&x->f.opens) <= 2);
    assert_int_equal(atomic_load(&x->f.concurrent_calls), 0);
    tp_stats st = key_stats(x);
    assert_int_equal(st.streams_in_use, 0);
    assert_int_equal(st.in_use, 0);
    assert_int_equal(st.idle + st.in_use + st.opening, st.total);
    assert_int_equal(st.acquires, (uint64_t)ok);
}

/* Regression: a connection whose last stream ended stayed in its key's list of
 * connections with room while it rested in the idle list, so it was handed out from
 * both: three leases on a connection of two. */
static void test_rest_and_reuse_keep_the_capacity(void **state)
{
    fx *x = *state;
    make_pool(x, 2, 1);
    for (int round = 0; round < 3; round++) {
        tp_conn *a = NULL, *b = NULL, *c = NULL;
        assert_int_equal(try_now(x, &a), TP_OK);
        assert_int_equal(try_now(x, &b), TP_OK);
        assert_int_equal(try_now(x, &c), TP_ETIMEDOUT); /* full, and the key too */
        tp_stats st = key_stats(x);
        assert_int_equal(st.streams_in_use, 2);
        assert_int_equal(st.idle, 0);
        tp_conn_release(a, 0);
        tp_conn_release(b, 0); /* at rest */
        assert_int_equal(key_stats(x).idle, 1);
    }
    assert_int_equal(atomic_load(&x->f.opens), 1);
}

static void test_capacity_lowered_live(void **state)
{
    fx *x = *state;
    make_pool(x, 4, 1);
    tp_conn *l[4], *c = NULL;
    for (int i = 0; i < 4; i++)
        l[i] = tu_acquire(x->p, "k", MS(1000));
    assert_int_equal(tp_conn_set_capacity(l[0], 2), TP_OK);
    assert_int_equal(key_stats(x).stream_capacity, 2);
    tp_conn_release(l[3], 0); /* 3 out, capacity 2: none starts */
    assert_int_equal(try_now(x, &c), TP_ETIMEDOUT);
    tp_conn_release(l[2], 0); /* 2 out */
    assert_int_equal(try_now(x, &c), TP_ETIMEDOUT);
    tp_conn_release(l[1], 0); /* 1 out: room for one */
    assert_int_equal(try_now(x, &c), TP_OK);
    assert_ptr_equal(fake_of(c), fake_of(l[0]));
    assert_int_equal(try_now(x, &l[1]), TP_ETIMEDOUT);
    tp_conn_release(c, 0);
    tp_conn_release(l[0], 0);
    assert_int_equal(atomic_load(&x->f.opens), 1);
    assert_int_equal(tp_conn_set_capacity(NULL, 1), TP_EINVAL);
}

typedef struct cb_rec {
    atomic_int calls;
    _Atomic int status;
    _Atomic(tp_conn *) conn;
} cb_rec;

static void on_done(void *ud, tp_err status, tp_acquired kind, tp_conn *conn, const tp_errinfo *err)
{
    (void)kind;
    (void)err;
    cb_rec *r = ud;
    atomic_store(&r->status, status);
    atomic_store(&r->conn, conn);
    atomic_fetch_add(&r->calls, 1);
}

static void test_capacity_raised_serves_waiters_at_once(void **state)
{
    fx *x = *state;
    make_pool(x, 1, 1);
    tp_conn *a = tu_acquire(x->p, "k", MS(1000));
    cb_rec r[2] = {0};
    for (int i = 0; i < 2; i++)
        assert_int_equal(tu_async(x->p, KEY("k"), MS(5000), 0, on_done, &r[i], NULL, NULL, NULL),
                         TP_ACQUIRED_PENDING);
    assert_int_equal(tp_conn_set_capacity(a, 3), TP_OK); /* the peer's SETTINGS */
    for (int i = 0; i < 2; i++) {                        /* served in the call, not later */
        assert_int_equal(atomic_load(&r[i].calls), 1);
        assert_int_equal(atomic_load(&r[i].status), TP_OK);
        assert_ptr_equal(fake_of(atomic_load(&r[i].conn)), fake_of(a));
    }
    assert_int_equal(key_stats(x).streams_in_use, 3);
    tp_conn_release(atomic_load(&r[0].conn), 0);
    tp_conn_release(atomic_load(&r[1].conn), 0);
    tp_conn_release(a, 0);
    assert_int_equal(atomic_load(&x->f.opens), 1);
}

static void test_drain_closes_after_last_lease(void **state)
{
    fx *x = *state;
    make_pool(x, 4, 2);
    tp_conn *a = tu_acquire(x->p, "k", MS(1000));
    tp_conn *b = tu_acquire(x->p, "k", MS(1000));
    uint64_t drained_id = fake_of(a)->id;
    assert_int_equal(tp_conn_set_capacity(b, 0), TP_OK); /* GOAWAY */
    assert_int_equal(key_stats(x).stream_capacity, 0);
    assert_int_equal(key_stats(x).draining, 1);
    assert_int_equal(tp_conn_set_capacity(a, 0), TP_OK); /* told twice: counted once */
    assert_int_equal(key_stats(x).draining, 1);
    tp_conn *c = tu_acquire(x->p, "k", MS(1000)); /* not on the draining one */
    assert_true(fake_of(c)->id != drained_id);
    tp_conn_release(a, 0);
    assert_int_equal(atomic_load(&x->f.closes), 0); /* b is still out */
    tp_conn_release(b, 0);
    assert_int_equal(atomic_load(&x->f.closes), 1);
    assert_int_equal(atomic_load(&x->f.close_reasons[TP_CLOSE_DRAINED]), 1);
    tp_stats st = key_stats(x);
    assert_int_equal(st.closes[TP_CLOSE_DRAINED], 1);
    assert_int_equal(st.total, 1);
    assert_int_equal(st.draining, 0); /* closed: no longer draining */
    tp_conn_release(c, 0);
    assert_string_equal(tp_close_reason_name(TP_CLOSE_DRAINED), "drained");
}

static const char *fake_protocol(void *ctx, void *conn)
{
    (void)ctx, (void)conn;
    return "fake/2";
}

/* What a multiplexing connector records lands in its key's statistics, and a lease
 * says it is a stream and which protocol its connection speaks. */
static void test_goaways_pings_and_lease_protocol(void **state)
{
    fx *x = *state;
    atomic_store(&x->f.streams, 4);
    tp_pool_options o;
    pool_fx_options(x, &o);
    o.connector.protocol = fake_protocol;
    x->p = tu_pool_create(&o);
    tp_conn *a = tu_acquire(x->p, "k", MS(1000));
    tp_lease_info li;
    tp_conn_lease_info(a, &li);
    assert_true(li.multiplexed);
    assert_string_equal(li.protocol, "fake/2");
    tp_conn_record_goaway(a, 0);    /* NO_ERROR */
    tp_conn_record_goaway(a, 0xb);  /* ENHANCE_YOUR_CALM */
    tp_conn_record_goaway(a, 0x77); /* unknown: the last slot */
    tp_conn_record_ping_rtt(a, MS(2));
    tp_conn_record_ping_rtt(a, MS(4));
    tp_conn_record_goaway(NULL, 0); /* no-ops */
    tp_conn_record_ping_rtt(NULL, 1);
    tp_stats st = key_stats(x);
    assert_int_equal(st.goaways[0], 1);
    assert_int_equal(st.goaways[0xb], 1);
    assert_int_equal(st.goaways[TP_GOAWAY_CODES - 1], 1);
    assert_int_equal(st.ping_rtt.count, 2);
    assert_int_equal(st.ping_rtt.sum_ns, (uint64_t)MS(6));
    tp_conn_release(a, 0);
    /* The pool-wide snapshot sums them over its keys. */
    tp_pool_stats(x->p, &st);
    assert_int_equal(st.goaways[0xb], 1);
    assert_int_equal(st.ping_rtt.count, 2);
}

static void test_broken_stream_retires_its_connection(void **state)
{
    fx *x = *state;
    make_pool(x, 4, 2);
    tp_conn *l[3];
    for (int i = 0; i < 3; i++)
        l[i] = tu_acquire(x->p, "k", MS(1000));
    uint64_t id = fake_of(l[0])->id;
    tp_conn_release(l[0], TP_RELEASE_BROKEN);
    tp_conn *c = tu_acquire(x->p, "k", MS(1000)); /* room on it, but it is retired */
    assert_true(fake_of(c)->id != id);
    tp_conn_release(l[1], 0);
    assert_int_equal(atomic_load(&x->f.closes), 0);
    tp_conn_release(l[2], 0);
    assert_int_equal(atomic_load(&x->f.close_reasons[TP_CLOSE_BROKEN]), 1);
    tp_conn_release(c, 0);
}

typedef struct blocker {
    fx *x;
    tp_err rc;
    tp_conn *c;
} blocker;

static void *blocker_main(void *arg)
{
    blocker *b = arg;
    b->rc = tu_acquire_ex(b->x->p, KEY("k"), MS(5000), 0, &b->c, NULL);
    return NULL;
}

static void test_one_dial_while_the_first_open_is_pending(void **state)
{
    fx *x = *state;
    make_pool(x, 10, 4);
    fake_gate_close(&x->f);
    enum { N = 5 };
    blocker b[N];
    pthread_t t[N];
    for (int i = 0; i < N; i++) {
        b[i] = (blocker){.x = x};
        tu_thread_start(&t[i], blocker_main, &b[i]);
    }
    bool queued = false;
    TU_WAIT_UNTIL(queued, tu_key_waiters(x->p, "k") == N - 1, 2000);
    assert_true(queued);
    tu_sleep_ms(20);
    assert_int_equal(fake_gate_waiting(&x->f), 1); /* one dial, not five */
    assert_int_equal(atomic_load(&x->f.open_calls), 1);
    fake_gate_open(&x->f);
    for (int i = 0; i < N; i++) {
        tu_thread_join(t[i]);
        assert_int_equal(b[i].rc, TP_OK);
        assert_ptr_equal(fake_of(b[i].c), fake_of(b[0].c));
    }
    assert_int_equal(atomic_load(&x->f.open_calls), 1);
    for (int i = 0; i < N; i++)
        tp_conn_release(b[i].c, 0);
}

/* A key whose connection said "one lease" dials in parallel again. */
static void test_single_key_dials_in_parallel(void **state)
{
    fx *x = *state;
    make_pool(x, -1, 4);
    tp_conn *first = tu_acquire(x->p, "k", MS(1000)); /* learns: not multiplexed */
    fake_gate_close(&x->f);
    blocker b[2];
    pthread_t t[2];
    for (int i = 0; i < 2; i++) {
        b[i] = (blocker){.x = x};
        tu_thread_start(&t[i], blocker_main, &b[i]);
    }
    bool both = false;
    TU_WAIT_UNTIL(both, fake_gate_waiting(&x->f) == 2, 2000);
    assert_true(both);
    fake_gate_open(&x->f);
    for (int i = 0; i < 2; i++) {
        tu_thread_join(t[i]);
        assert_int_equal(b[i].rc, TP_OK);
        tp_conn_release(b[i].c, 0);
    }
    assert_int_equal(key_stats(x).streams_in_use, 0);
    assert_int_equal(key_stats(x).stream_capacity, 0);
    tp_conn_release(first, 0);
    tp_conn *c = tu_acquire(x->p, "k", MS(1000));
    assert_int_equal(tp_conn_set_capacity(c, 5), TP_ESTATE); /* not multiplexed */
    tp_conn_release(c, 0);
}

static void test_tenants_count_streams(void **state)
{
    fx *x = *state;
    make_pool(x, 10, 1);
    assert_int_equal(tp_pool_tenant_set(x->p, "t", 2, false), TP_OK);
    tp_conn *a = NULL, *b = NULL, *c = NULL;
    assert_int_equal(tu_acquire_tenant(x->p, "t", KEY("k"), MS(100), 0, &a, NULL), TP_OK);
    assert_int_equal(tu_acquire_tenant(x->p, "t", KEY("k"), MS(100), 0, &b, NULL), TP_OK);
    assert_int_equal(tu_acquire_tenant(x->p, "t", KEY("k"), MS(100), 0, &c, NULL), TP_EQUOTA);
    tp_tenant_stats ts;
    assert_int_equal(tp_pool_tenant_stats(x->p, "t", &ts), TP_OK);
    assert_int_equal(ts.in_use, 2);
    tp_conn_release(a, 0);
    assert_int_equal(tu_acquire_tenant(x->p, "t", KEY("k"), MS(100), 0, &c, NULL), TP_OK);
    tp_conn_release(b, 0);
    tp_conn_release(c, 0);
    assert_int_equal(tp_pool_tenant_stats(x->p, "t", &ts), TP_OK);
    assert_int_equal(ts.in_use, 0);
}

/* The adaptive limit counts leases, so streams: a connection with room to spare still
 * gives no lease beyond the limit. */
static void test_adaptive_limit_counts_streams(void **state)
{
    fx *x = *state;
    atomic_store(&x->f.streams, 10);
    tp_adapt_options ao;
    tp_adapt_options_init(&ao);
    ao.min_limit = 2;
    ao.initial_limit = 2;
    ao.max_limit = 4;
    tp_pool_options o;
    pool_fx_options(x, &o);
    o.max_per_key = 4;
    o.adaptive = &ao;
    x->p = tu_pool_create(&o);
    tp_conn *a = tu_acquire(x->p, "k", MS(1000));
    tp_conn *b = tu_acquire(x->p, "k", MS(1000));
    tp_conn *c = NULL;
    assert_int_equal(try_now(x, &c), TP_ETIMEDOUT); /* room for 8 more streams: the limit */
    tp_stats st = key_stats(x);
    assert_int_equal(st.adaptive_limit, 2);
    assert_int_equal(st.streams_in_use, 2);
    assert_int_equal(st.total, 1);
    tp_conn_release(a, 0);
    assert_int_equal(try_now(x, &c), TP_OK);
    assert_ptr_equal(fake_of(c), fake_of(b));
    tp_conn_release(b, 0);
    tp_conn_release(c, 0);
    assert_int_equal(atomic_load(&x->f.opens), 1);
}

/* A child process never uses a multiplexed connection it inherited: the parent's
 * streams it releases are let go quietly (no stream goes back to that connection, no
 * close reaches the peer), and its own acquire dials a connection of its own. */
static void test_child_lets_inherited_streams_go(void **state)
{
    if (TU_UNDER_TSAN) {
        skip(); /* a child of a threaded process under TSan reports the runtime's locks */
        return;
    }
    fx *x = *state;
    make_pool(x, 4, 2);
    tp_conn *a = tu_acquire(x->p, "k", MS(1000));
    tp_conn *b = tu_acquire(x->p, "k", MS(1000));
    uint64_t parent_id = fake_of(a)->id;
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int bad = 0;
        tp_conn_release(a, 0);
        tp_conn_release(b, 0);
        tp_stats st;
        tp_pool_stats(x->p, &st);
        bad |= (st.streams_in_use != 0 || st.total != 0) << 0;
        tp_conn *c = NULL;
        bad |= (tu_acquire_ex(x->p, KEY("k"), MS(1000), 0, &c, NULL) != TP_OK) << 1;
        bad |= (c != NULL && fake_of(c)->id == parent_id) << 2;
        bad |= (atomic_load(&x->f.closes) != 0) << 3;
        tp_pool_stats(x->p, &st);
        bad |= (st.streams_in_use != 1 || st.total != 1) << 4;
        if (c != NULL)
            tp_conn_release(c, 0);
        _exit(bad);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    /* The parent's connection is intact, its streams still its own. */
    assert_int_equal(key_stats(x).streams_in_use, 2);
    tp_conn_release(a, 0);
    tp_conn_release(b, 0);
    assert_int_equal(key_stats(x).idle, 1);
    assert_int_equal(atomic_load(&x->f.closes), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_streams_share_one_connection, pool_fx_setup,
                                        pool_fx_teardown),
        cmocka_unit_test_setup_teardown(test_never_more_leases_than_capacity, pool_fx_setup,
                                        pool_fx_teardown),
        cmocka_unit_test_setup_teardown(test_rest_and_reuse_keep_the_capacity, pool_fx_setup,
                                        pool_fx_teardown),
        cmocka_unit_test_setup_teardown(test_capacity_lowered_live, pool_fx_setup,
                                        pool_fx_teardown),
        cmocka_unit_test_setup_teardown(test_capacity_raised_serves_waiters_at_once, pool_fx_setup,
                                        pool_fx_teardown),
        cmocka_unit_test_setup_teardown(test_goaways_pings_and_lease_protocol, pool_fx_setup,
                                        pool_fx_teardown),
        cmocka_unit_test_setup_teardown(test_drain_closes_after_last_lease, pool_fx_setup,
                                        pool_fx_teardown),
        cmocka_unit_test_setup_teardown(test_broken_stream_retires_its_connection, pool_fx_setup,
                                        pool_fx_teardown),
        cmocka_unit_test_setup_teardown(test_one_dial_while_the_first_open_is_pending,
                                        pool_fx_setup, pool_fx_teardown),
        cmocka_unit_test_setup_teardown(test_single_key_dials_in_parallel, pool_fx_setup,
                                        pool_fx_teardown),
        cmocka_unit_test_setup_teardown(test_tenants_count_streams, pool_fx_setup,
                                        pool_fx_teardown),
        cmocka_unit_test_setup_teardown(test_adaptive_limit_counts_streams, pool_fx_setup,
                                        pool_fx_teardown),
        cmocka_unit_test_setup_teardown(test_child_lets_inherited_streams_go, pool_fx_setup,
                                        pool_fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
