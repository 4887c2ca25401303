/* test_h2_pool.c (label: concurrency): HTTP/2 connections in a tidepool pool (the
 * connector of src/h2/pooled.c) against a real nghttpd: sixteen threads share one
 * connection, each request a stream on its own lease; the server's
 * SETTINGS_MAX_CONCURRENT_STREAMS bounds the streams out at every sample; a second
 * connection opens only when the first is full and max_per_key allows; the capacity the
 * pool sees is the server's from the start (the open waits for its SETTINGS). */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "h2/h2.h"
#include "support/h2_bad.h"
#include "support/nghttpd_env.h"
#include "support/test_util.h"

#define THREADS 16
#define PER_THREAD 25

typedef struct rig {
    nghttpd_env e; /* the server, or ... */
    h2_bad *bad;   /* ... a misbehaving one */
    tp_connector cn;
    tp_pool *p;
    char key[32];
    _Atomic int failures, done;
    _Atomic int64_t max_streams;   /* the most streams out at one sample */
    char why[TP_ERRMSG_SIZE + 32]; /* the first failure */
} rig;

/* The pool with the HTTP/2 connector, its key the server on port. */
static void rig_pool(rig *r, uint16_t port, int64_t max_per_key)
{
    tp_errinfo ei;
    assert_int_equal(tp__h2_connector_new(NULL, &r->cn, &ei), TP_OK);
    tp_pool_options o;
    tp_pool_options_init(&o);
    o.connector = r->cn;
    o.max_per_key = max_per_key;
    r->p = tu_pool_create(&o);
    snprintf(r->key, sizeof r->key, "127.0.0.1:%u", port);
}

static void rig_start(rig *r, int server_streams, int64_t max_per_key)
{
    memset(r, 0, sizeof *r);
    int rc = nghttpd_start(&r->e, false, server_streams);
    if (rc == 77)
        skip();
    assert_int_equal(rc, 0);
    rig_pool(r, r->e.port, max_per_key);
}

static void rig_start_bad(rig *r, h2_bad_mode mode, int64_t max_per_key)
{
    memset(r, 0, sizeof *r);
    uint16_t port;
    assert_int_equal(h2_bad_start(mode, &r->bad, &port), 0);
    rig_pool(r, port, max_per_key);
}

static void rig_stop(rig *r)
{
    tp_pool_destroy(r->p);
    tp__h2_connector_free(&r->cn);
    if (r->bad != NULL)
        h2_bad_stop(r->bad);
    else
        nghttpd_stop(&r->e);
}

static void fail_once(rig *r, const char *what, const tp_errinfo *ei)
{
    if (atomic_fetch_add(&r->failures, 1) == 0)
        snprintf(r->why, sizeof r->why, "%s: %s", what, ei->msg);
}

/* One request on its own lease: GET /hello, the whole body read and checked. */
static void one_request(rig *r)
{
    tp_conn *lease;
    tp_errinfo ei;
    if (tp_pool_acquire(r->p, r->key, strlen(r->key), MS(5000), &lease, &ei) != TP_OK) {
        fail_once(r, "acquire", &ei);
        return;
    }
    tp__h2_request rq = {.method = "GET", .scheme = "http", .authority = r->key, .path = "/hello"};
    tp__h2_stream *st;
    int64_t deadline = tp_deadline_after(MS(5000));
    if (tp__h2_lease_request(lease, &rq, deadline, &st, NULL, &ei) != TP_OK) {
        fail_once(r, "request", &ei);
        tp_conn_release(lease, TP_RELEASE_BROKEN);
        return;
    }
    char body[64];
    size_t n = 0, got;
    tp_err rc;
    while ((rc = tp__h2_lease_read(lease, st, body + n, sizeof body - n, &got, deadline, &ei)) ==
               TP_OK &&
           got > 0)
        n += got;
    if (rc != TP_OK)
        fail_once(r, "body", &ei);
    else if (tp__h2_stream_status(st) != 200 || n != 13 || memcmp(body, "hello, world\n", 13))
        fail_once(r, "answer", &(tp_errinfo){.msg = "not 200 \"hello, world\""});
    tp__h2_lease_done(lease, st);
    tp_conn_release(lease, tp__h2_lease_alive(lease) ? 0 : TP_RELEASE_BROKEN);
}

static void *client(void *arg)
{
    rig *r = arg;
    for (int i = 0; i < PER_THREAD; i++)
        one_request(r);
    atomic_fetch_add(&r->done, 1);
    return NULL;
}

/* Samples the streams out until every client is done. */
static void *sampler(void *arg)
{
    rig *r = arg;
    while (atomic_load(&r->done) < THREADS) {
        tp_stats st;
        tp_pool_stats(r->p, &st);
        if (st.streams_in_use > atomic_load(&r->max_streams))
            atomic_store(&r->max_streams, st.streams_in_use);
        tu_sleep_ms(1);
    }
    return NULL;
}

static void run(rig *r)
{
    pthread_t th[THREADS], s;
    tu_thread_start(&s, sampler, r);
    for (int i = 0; i < THREADS; i++)
        tu_thread_start(&th[i], client, r);
    for (int i = 0; i < THREADS; i++)
        tu_thread_join(th[i]);
    tu_thread_join(s);
    if (atomic_load(&r->failures) != 0)
        fail_msg("%d failures, the first: %s", atomic_load(&r->failures), r->why);
}

static void test_sixteen_threads_one_connection(void **state)
{
    (void)state;
    rig r;
    rig_start(&r, 100, 8);
    run(&r);
    tp_stats st;
    tp_pool_stats(r.p, &st);
    assert_int_equal(st.opens, 1); /* 16 streams fit one connection */
    assert_int_equal(st.total, 1);
    assert_int_equal(st.acquires, THREADS * PER_THREAD);
    assert_int_equal(st.streams_in_use, 0);
    assert_int_equal(st.stream_capacity, 100);
    assert_true(atomic_load(&r.max_streams) > 1); /* they did share it */
    rig_stop(&r);
}

static void test_server_limit_bounds_streams(void **state)
{
    (void)state;
    rig r;
    rig_start(&r, 4, 1);
    run(&r);
    tp_stats st;
    tp_pool_stats(r.p, &st);
    assert_int_equal(st.opens, 1);
    assert_int_equal(st.stream_capacity, 4); /* the server's word from the open on */
    assert_true(atomic_load(&r.max_streams) <= 4);
    assert_true(st.waits > 0); /* over four, acquires waited for a stream */
    rig_stop(&r);
}

static void test_full_connection_opens_a_second(void **state)
{
    (void)state;
    rig r;
    rig_start(&r, 2, 2);
    run(&r);
    tp_stats st;
    tp_pool_stats(r.p, &st);
    assert_int_equal(st.opens, 2); /* the first full, max_per_key 2 */
    assert_true(atomic_load(&r.max_streams) <= 4);
    rig_stop(&r);
}

/* Two leases of one connection: A drives it (polls the socket) and gives up at its
 * deadline; B, waiting for A's steps, must take over the socket then, or it sleeps
 * through the answer that arrives at 300 ms (it used to, until its own deadline). */
typedef struct lease_job {
    tp_pool *p;
    const char *key, *path;
    int64_t timeout;
    tp_err rc;
    double ms;
} lease_job;

static void *lease_job_main(void *arg)
{
    lease_job *j = arg;
    int64_t t0 = tu_now_ns();
    tp_conn *lease;
    tp_errinfo ei;
    j->rc = tp_pool_acquire(j->p, j->key, strlen(j->key), MS(2000), &lease, &ei);
    if (j->rc != TP_OK)
        return NULL;
    tp__h2_request rq = {.method = "GET", .scheme = "http", .authority = j->key, .path = j->path};
    tp__h2_stream *st = NULL;
    j->rc = tp__h2_lease_request(lease, &rq, tp_deadline_after(j->timeout), &st, NULL, &ei);
    j->ms = tu_ms_since(t0);
    if (st != NULL)
        tp__h2_lease_done(lease, st);
    tp_conn_release(lease, 0);
    return NULL;
}

static void test_reader_hands_over_at_its_deadline(void **state)
{
    (void)state;
    rig r;
    rig_start_bad(&r, H2B_SECOND_LATE, 64);
    tp_pool *p = r.p;
    const char *key = r.key;
    lease_job a = {.p = p, .key = key, .path = "/a", .timeout = MS(150)};
    lease_job b = {.p = p, .key = key, .path = "/b", .timeout = MS(3000)};
    pthread_t ta, tb;
    tu_thread_start(&ta, lease_job_main, &a);
    tu_sleep_ms(40); /* A has the connection and polls it */
    tu_thread_start(&tb, lease_job_main, &b);
    tu_thread_join(ta);
    tu_thread_join(tb);
    assert_int_equal(a.rc, TP_ETIMEDOUT);
    assert_int_equal(b.rc, TP_OK);
    assert_true(b.ms < 1500); /* about 300 ms, not its 3 s deadline */
    tp_stats st;
    tp_pool_stats(p, &st);
    assert_int_equal(st.opens, 1);
    rig_stop(&r);
}

/* A capacity raise serves a queued asynchronous acquire on the thread that saw the
 * SETTINGS, in the middle of its own request; the callback starts a request on the same
 * connection. It must not find that connection's lock held (it did: a deadlock). */
typedef struct async_ud {
    const char *key;
    tp_err rc;
    atomic_bool done;
} async_ud;

static void on_stream(void *ud, tp_err status, tp_acquired kind, tp_conn *lease,
                      const tp_errinfo *err)
{
    (void)kind, (void)err;
    async_ud *a = ud;
    a->rc = status;
    if (status == TP_OK) {
        tp__h2_request rq = {
            .method = "GET", .scheme = "http", .authority = a->key, .path = "/async"};
        tp__h2_stream *st = NULL;
        a->rc = tp__h2_lease_request(lease, &rq, tp_deadline_after(MS(3000)), &st, NULL, NULL);
        if (st != NULL)
            tp__h2_lease_done(lease, st);
        tp_conn_release(lease, 0);
    }
    atomic_store(&a->done, true);
}

static void test_raise_serves_async_waiter_without_deadlock(void **state)
{
    (void)state;
    rig r;
    rig_start_bad(&r, H2B_SETTINGS_1_10, 1);
    tp_pool *p = r.p;
    const char *key = r.key;
    tp_errinfo ei;
    tp_conn *lease;
    assert_int_equal(tp_pool_acquire(p, key, strlen(key), MS(2000), &lease, &ei), TP_OK);
    tp_stats st;
    tp_pool_stats(p, &st);
    assert_int_equal(st.stream_capacity, 1); /* the server's first SETTINGS */
    async_ud a = {.key = key};
    tp_acquire_req req = tp_acquire_req_for(key, strlen(key), MS(3000), 0);
    tp_acquire_result res;
    assert_int_equal(tp_acquire_async(p, &req, on_stream, &a, &res, &ei), TP_OK);
    assert_int_equal(res.kind, TP_ACQUIRED_PENDING); /* the one stream is ours */
    tp__h2_request rq = {.method = "GET", .scheme = "http", .authority = key, .path = "/a"};
    tp__h2_stream *s1;
    /* The answer, then SETTINGS 10: seen by our steps, which serve the waiter. */
    assert_int_equal(tp__h2_lease_request(lease, &rq, tp_deadline_after(MS(3000)), &s1, NULL, &ei),
                     TP_OK);
    tp__h2_lease_done(lease, s1);
    tp__h2_stream *s2;
    rq.path = "/b"; /* steps on until the raise has come */
    assert_int_equal(tp__h2_lease_request(lease, &rq, tp_deadline_after(MS(3000)), &s2, NULL, &ei),
                     TP_OK);
    tp__h2_lease_done(lease, s2);
    bool ok = false;
    TU_WAIT_UNTIL(ok, atomic_load(&a.done), 3000);
    assert_true(ok);
    assert_int_equal(a.rc, TP_OK);
    tp_conn_release(lease, 0);
    tp_pool_stats(p, &st);
    assert_int_equal(st.stream_capacity, 10);
    assert_int_equal(st.opens, 1);
    assert_int_equal(h2_bad_answered(r.bad), 3);
    rig_stop(&r);
}

static void test_bad_keys(void **state)
{
    (void)state;
    tp_connector cn;
    tp_errinfo ei;
    assert_int_equal(tp__h2_connector_new(NULL, &cn, &ei), TP_OK);
    void *conn;
    static const char *const bad[] = {"no-port", "host:", ":80", "host:0", "host:65536", "host:8x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(
            cn.open(cn.ctx, bad[i], strlen(bad[i]), tp_deadline_after(MS(100)), &conn, &ei),
            TP_EINVAL);
        assert_non_null(strstr(ei.msg, "not host:port"));
    }
    tp__h2_connector_free(&cn);
}

int main(void)
{
    tu_watchdog(180);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sixteen_threads_one_connection),
        cmocka_unit_test(test_server_limit_bounds_streams),
        cmocka_unit_test(test_full_connection_opens_a_second),
        cmocka_unit_test(test_reader_hands_over_at_its_deadline),
        cmocka_unit_test(test_raise_serves_async_waiter_without_deadlock),
        cmocka_unit_test(test_bad_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
