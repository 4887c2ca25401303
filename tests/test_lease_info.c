/* test_lease_info.c: the facts of a lease live on the lease (tp_conn_lease_info): a
 * fresh connection, a reused one with its idle time, a queued acquire's wait, the
 * connection's uses and age; and the HTTP engine's GOT_CONN events carry each
 * request's own values even when a grant is made on another thread (a release by a
 * blocking request hands its connection to a queued engine request, while the engine's
 * loop thread last acquired for a different request with a long idle time). */
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
#include "support/http_test_server.h"
#include "support/test_util.h"

static void test_pool_lease_facts(void **state)
{
    (void)state;
    fake_connector f;
    fake_init(&f);
    tp_pool_options o;
    fake_pool_options(&f, &o);
    o.maintenance_thread = false;
    o.max_per_key = 1;
    tp_pool *p = tu_pool_create(&o);
    tp_lease_info li;

    tp_conn *c = tu_acquire(p, "k", 0); /* opened for this lease */
    tp_conn_lease_info(c, &li);
    assert_false(li.reused);
    assert_int_equal(li.idle_ns, 0);
    assert_int_equal(li.uses, 1);
    assert_true(li.age_ns >= 0 && li.age_ns < MS(1000));
    tp_conn_release(c, 0);

    tu_sleep_ms(40);
    c = tu_acquire(p, "k", 0); /* reused after 40 ms idle */
    tp_conn_lease_info(c, &li);
    assert_true(li.reused);
    assert_true(li.idle_ns >= MS(40) && li.idle_ns < MS(1000));
    assert_true(li.waited_ns < MS(40));
    assert_int_equal(li.uses, 2);
    assert_true(li.age_ns >= MS(40));

    /* A second acquire queues while c is held for 60 ms; handed over at release, it
     * waited that long and its connection sat idle for about nothing. */
    tu_acq_job job = {.p = p, .key = "k", .timeout = MS(5000)};
    pthread_t t;
    tu_thread_start(&t, tu_acquire_thread, &job);
    bool queued = false;
    TU_WAIT_UNTIL(queued, tu_key_waiters(p, "k") == 1, 2000);
    assert_true(queued);
    tu_sleep_ms(60);
    tp_conn_release(c, 0);
    tu_thread_join(t);
    assert_int_equal(job.result, TP_OK);
    tp_conn_lease_info(job.conn, &li);
    assert_true(li.reused);
    assert_true(li.waited_ns >= MS(60));
    assert_true(li.idle_ns < MS(30));
    assert_int_equal(li.uses, 3);
    tp_conn_release(job.conn, 0);

    tp_conn_lease_info(NULL, &li); /* zeroed, no crash */
    assert_false(li.reused);
    assert_int_equal(li.uses, 0);
    tp_pool_destroy(p);
    fake_destroy(&f);
}

/* GOT_CONN events as the engine's loop thread saw them. */
typedef struct got {
    pthread_mutex_t mu;
    pthread_t loop;
    bool loop_known;
    int n;
    struct {
        uint16_t port;
        bool reused;
        int64_t idle_ns, waited_ns;
    } ev[8];
} got;

static void on_trace(void *ud, const tp_http_trace_event *ev)
{
    got *g = ud;
    if (ev->type != TP_HTTP_TRACE_GOT_CONN)
        return;
    pthread_mutex_lock(&g->mu);
    if (g->loop_known && pthread_equal(pthread_self(), g->loop) && g->n < 8) {
        g->ev[g->n].port = ev->port;
        g->ev[g->n].reused = ev->reused;
        g->ev[g->n].idle_ns = ev->idle_ns;
        g->ev[g->n].waited_ns = ev->waited_ns;
        g->n++;
    }
    pthread_mutex_unlock(&g->mu);
}

typedef struct loop_arg {
    got *g;
    tp_http_engine *e;
} loop_arg;

static void *run_loop(void *arg)
{
    loop_arg *a = arg;
    pthread_mutex_lock(&a->g->mu);
    a->g->loop = pthread_self();
    a->g->loop_known = true;
    pthread_mutex_unlock(&a->g->mu);
    tp_http_engine_run(a->e);
    return NULL;
}

static atomic_int done_ok;

static void on_done(void *ud, tp_err status, tp_http_response *r, const tp_errinfo *err)
{
    (void)ud;
    (void)err;
    if (status == TP_OK && tp_http_response_status(r) == 200)
        atomic_fetch_add(&done_ok, 1);
    tp_http_response_free(r);
}

static void test_engine_events_carry_each_requests_own_facts(void **state)
{
    (void)state;
    hts_options so;
    hts_options_init(&so);
    hts_server *s1 = NULL, *s2 = NULL;
    assert_int_equal(hts_start(&so, &s1), 0);
    assert_int_equal(hts_start(&so, &s2), 0);
    char u1[64], u2[64];
    snprintf(u1, sizeof u1, "http://127.0.0.1:%u/", (unsigned)hts_port(s1));
    snprintf(u2, sizeof u2, "http://127.0.0.1:%u/", (unsigned)hts_port(s2));
    got g = {.n = 0};
    pthread_mutex_init(&g.mu, NULL);
    tp_http_client_options co;
    tp_http_client_options_init(&co);
    co.pool.max_per_key = 1;
    co.trace = on_trace;
    co.trace_ud = &g;
    tp_http_client *c = NULL;
    tp_errinfo err;
    assert_int_equal(tp_http_client_create(&co, &c, &err), TP_OK);
    tp_http_engine *e = NULL;
    assert_int_equal(tp_http_engine_create(c, &e, &err), TP_OK);

    /* s2's connection: opened now, idle 300 ms when the engine reuses it. */
    tp_http_response *r = NULL;
    assert_int_equal(tp_http_get(c, u2, &r, &err), TP_OK);
    tp_http_response_free(r);
    tu_sleep_ms(300);
    /* s1's only connection is held by a streamed response on this thread. */
    tp_http_request held = {.url = u1, .timeout = TP_DURATION_DEFAULT, .flags = TP_HTTP_STREAM};
    assert_int_equal(tp_http_client_do(c, &held, &r, &err), TP_OK);

    /* The engine: a request to s1 (it queues: max_per_key 1), then one to s2 (it reuses
     * the idle connection at once, on the loop thread). */
    atomic_store(&done_ok, 0);
    tp_http_request q1 = {.url = u1, .timeout = TP_DURATION_DEFAULT};
    tp_http_request q2 = {.url = u2, .timeout = TP_DURATION_DEFAULT};
    assert_int_equal(tp_http_engine_submit(e, &q1, on_done, NULL, NULL, &err), TP_OK);
    assert_int_equal(tp_http_engine_submit(e, &q2, on_done, NULL, NULL, &err), TP_OK);
    loop_arg la = {&g, e};
    pthread_t loop;
    tu_thread_start(&loop, run_loop, &la);
    tu_sleep_ms(150);
    /* Finishing the held response releases s1's connection here, on this thread: the
     * queued engine request gets it handed over. */
    char buf[4096];
    size_t n = 0;
    do
        assert_int_equal(tp_http_response_read(r, buf, sizeof buf, &n, &err), TP_OK);
    while (n > 0);
    tp_http_response_free(r);
    tu_thread_join(loop);
    assert_int_equal(atomic_load(&done_ok), 2);

    assert_int_equal(g.n, 2);
    bool seen1 = false, seen2 = false;
    for (int i = 0; i < g.n; i++) {
        if (g.ev[i].port == hts_port(s2)) {
            seen2 = true;
            assert_true(g.ev[i].reused);
            assert_true(g.ev[i].idle_ns >= MS(300));
        } else {
            assert_int_equal(g.ev[i].port, hts_port(s1));
            seen1 = true;
            assert_true(g.ev[i].reused);
            assert_true(g.ev[i].idle_ns < MS(100)); /* handed over: not s2's 300 ms */
            assert_true(g.ev[i].waited_ns >= MS(100));
        }
    }
    assert_true(seen1 && seen2);
    tp_http_engine_destroy(e);
    tp_http_client_destroy(c);
    hts_stop(s1);
    hts_stop(s2);
    pthread_mutex_destroy(&g.mu);
}

int main(void)
{
    tu_watchdog(60);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pool_lease_facts),
        cmocka_unit_test(test_engine_events_carry_each_requests_own_facts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
