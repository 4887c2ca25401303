/* test_http_h2_retry.c: tp_http_client over HTTP/2 (h2c, TP_HTTP_VERSION_2) against the
 * misbehaving server of tests/support/h2_bad: POSTs above a GOAWAY's last stream id are
 * sent again on a new connection and the server processes each exactly once; a
 * REFUSED_STREAM is sent again; a stream whose body stalls ends at the request's timeout
 * while the others on its connection finish; an unanswered header ends at
 * response_header_timeout with TP_EHDRTIMEDOUT; the GOAWAY case through the engine too; a
 * connection silent past http2_ping_idle is PINGed before reuse, and one whose PING goes
 * unanswered is replaced; a peer gone silent under a waiting request is declared dead
 * by PING (blocking and engine). GOAWAYs are counted by code, PING round trips in the
 * pool's histogram. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <tidepool/tidepool.h>

#include "support/h2_bad.h"
#include "support/test_util.h"

typedef struct rig {
    h2_bad *server;
    uint16_t port;
    tp_http_client *c;
} rig;

static rig start_with(h2_bad_mode mode, int64_t header_timeout, int64_t ping_idle,
                      int64_t ping_timeout)
{
    rig r = {0};
    assert_int_equal(h2_bad_start(mode, &r.server, &r.port), 0);
    tp_http_client_options o;
    tp_http_client_options_init(&o);
    o.http_version = TP_HTTP_VERSION_2;
    o.response_header_timeout = header_timeout;
    o.http2_ping_idle = ping_idle;
    o.http2_ping_timeout = ping_timeout;
    tp_errinfo e;
    if (tp_http_client_create(&o, &r.c, &e) != TP_OK)
        fail_msg("create: %s", e.msg);
    return r;
}

static rig start(h2_bad_mode mode, int64_t header_timeout)
{
    return start_with(mode, header_timeout, 0, 0);
}

static void stop(rig *r)
{
    tp_http_client_destroy(r->c);
    h2_bad_stop(r->server);
}

typedef struct job {
    rig *r;
    const char *path;
    int64_t timeout;
    tp_err rc;
    char body[128];
    bool retried;
    char msg[256];
} job;

static void *post_main(void *arg)
{
    job *j = arg;
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%u%s", (unsigned)j->r->port, j->path);
    tp_http_request rq = {.method = "POST",
                          .url = url,
                          .body = "x",
                          .body_len = 1,
                          .timeout = j->timeout > 0 ? j->timeout : MS(5000)};
    tp_http_response *resp = NULL;
    tp_errinfo e;
    j->rc = tp_http_client_do(j->r->c, &rq, &resp, &e);
    if (j->rc == TP_OK) {
        size_t n;
        const char *b = tp_http_response_body(resp, &n);
        snprintf(j->body, sizeof j->body, "%.*s", (int)n, b);
        tp_http_response_info info;
        tp_http_response_get_info(resp, &info);
        j->retried = info.retried;
    } else {
        snprintf(j->msg, sizeof j->msg, "%s", e.msg);
    }
    tp_http_response_free(resp);
    return NULL;
}

static void run_all(job *j, int n)
{
    pthread_t th[8];
    for (int i = 0; i < n; i++)
        pthread_create(&th[i], NULL, post_main, &j[i]);
    for (int i = 0; i < n; i++)
        pthread_join(th[i], NULL);
}

static void expect_answer(const job *j)
{
    if (j->rc != TP_OK)
        fail_msg("%s: %s: %s", j->path, tp_err_name(j->rc), j->msg);
    char want[80];
    snprintf(want, sizeof want, "ok %s", j->path);
    assert_string_equal(j->body, want);
}

/* Three POSTs in flight; the server answers the first and sends GOAWAY naming it as the
 * last it processed. The other two go again on a second connection: all three answered,
 * each processed once (three answers in all), two of them retried. */
static void test_posts_above_goaway_resent_once(void **state)
{
    (void)state;
    rig r = start(H2B_GOAWAY_LOW, MS(5000));
    job j[3] = {{.r = &r, .path = "/a"}, {.r = &r, .path = "/b"}, {.r = &r, .path = "/c"}};
    run_all(j, 3);
    int retried = 0;
    for (int i = 0; i < 3; i++) {
        expect_answer(&j[i]);
        retried += j[i].retried;
    }
    assert_int_equal(retried, 2);
    assert_int_equal(h2_bad_answered(r.server), 3);
    tp_stats st;
    tp_pool_stats(tp_http_client_h2_pool(r.c), &st);
    assert_int_equal(st.opens, 2);
    /* The GOAWAY is counted by its code, and the drained connection is gone. */
    assert_int_equal(st.goaways[0], 1);
    for (int c = 1; c < TP_GOAWAY_CODES; c++)
        assert_int_equal(st.goaways[c], 0);
    assert_int_equal(st.draining, 0);
    stop(&r);
}

static void test_refused_stream_resent(void **state)
{
    (void)state;
    rig r = start(H2B_REFUSE_SECOND, MS(5000));
    job j[2] = {{.r = &r, .path = "/one"}, {.r = &r, .path = "/two"}};
    run_all(&j[0], 1);
    run_all(&j[1], 1);
    expect_answer(&j[0]);
    expect_answer(&j[1]);
    assert_false(j[0].retried);
    assert_true(j[1].retried);
    assert_int_equal(h2_bad_answered(r.server), 2);
    stop(&r);
}

/* The first stream gets its header and never its body: it ends at its own timeout,
 * TP_EREQTIMEDOUT, while the two beside it on the same connection are answered. */
static void test_stalled_body_times_out_alone(void **state)
{
    (void)state;
    rig r = start(H2B_STALL_FIRST, MS(5000));
    job first = {.r = &r, .path = "/stall", .timeout = MS(400)};
    run_all(&first, 1);
    assert_int_equal(first.rc, TP_EREQTIMEDOUT);
    job j[2] = {{.r = &r, .path = "/x"}, {.r = &r, .path = "/y"}};
    run_all(j, 2);
    expect_answer(&j[0]);
    expect_answer(&j[1]);
    tp_stats st;
    tp_pool_stats(tp_http_client_h2_pool(r.c), &st);
    assert_int_equal(st.opens, 1);
    stop(&r);
}

/* The server never answers the first request: TP_EHDRTIMEDOUT at the header timeout
 * (300 ms), not later; the connection serves the next request. */
static void test_header_timeout(void **state)
{
    (void)state;
    rig r = start(H2B_SECOND_LATE, MS(300));
    job first = {.r = &r, .path = "/never"};
    int64_t t0 = tp_clock_now();
    run_all(&first, 1);
    int64_t took = tp_clock_now() - t0;
    assert_int_equal(first.rc, TP_EHDRTIMEDOUT);
    assert_non_null(strstr(first.msg, "300 ms"));
    assert_true(took >= MS(290) && took < MS(2000));
    stop(&r);
}

/* A connection silent past http2_ping_idle is PINGed before it is reused: the server
 * that never answers a PING costs the check http2_ping_timeout (200 ms), then the
 * request goes on a new connection; one that answers keeps its connection. */
static void ping_before_reuse(h2_bad_mode mode, bool answers)
{
    rig r = start_with(mode, MS(5000), MS(100), MS(200));
    job a = {.r = &r, .path = "/first"};
    run_all(&a, 1);
    expect_answer(&a);
    tu_sleep_ms(250);
    job b = {.r = &r, .path = "/second"};
    int64_t t0 = tp_clock_now();
    run_all(&b, 1);
    int64_t took = tp_clock_now() - t0;
    expect_answer(&b);
    tp_stats st;
    tp_pool_stats(tp_http_client_h2_pool(r.c), &st);
    assert_true(h2_bad_pings(r.server) >= 1);
    if (answers) {
        assert_int_equal(st.opens, 1);
        assert_true(took < MS(200));
        assert_int_equal(st.ping_rtt.count, 1); /* the check's PING, its round trip */
        assert_true(st.ping_rtt.sum_ns > 0 && st.ping_rtt.sum_ns < (uint64_t)MS(200));
    } else {
        assert_int_equal(st.opens, 2);
        assert_int_equal(st.checks_failed, 1);
        assert_true(took >= MS(190));
    }
    stop(&r);
}

static void test_unanswered_ping_before_reuse(void **state)
{
    (void)state;
    ping_before_reuse(H2B_NO_PING_ACK, false);
}

static void test_answered_ping_before_reuse(void **state)
{
    (void)state;
    ping_before_reuse(H2B_REFUSE_SECOND, true); /* its first request answered, PINGs too */
}

typedef struct eng_got {
    int done, ok, retried;
    char bodies[3][80];
} eng_got;

typedef struct eng_one {
    eng_got *g;
    int i;
} eng_one;

static void eng_done(void *ud, tp_err rc, tp_http_response *r, const tp_errinfo *err)
{
    (void)err;
    eng_one *o = ud;
    o->g->done++;
    if (rc == TP_OK) {
        o->g->ok++;
        size_t n;
        const char *b = tp_http_response_body(r, &n);
        snprintf(o->g->bodies[o->i], sizeof o->g->bodies[o->i], "%.*s", (int)n, b);
        tp_http_response_info info;
        tp_http_response_get_info(r, &info);
        o->g->retried += info.retried;
    }
    tp_http_response_free(r);
}

/* The same through the engine: three POSTs of one engine in flight, two above the GOAWAY. */
static void test_engine_posts_above_goaway_resent_once(void **state)
{
    (void)state;
    rig r = start(H2B_GOAWAY_LOW, MS(5000));
    tp_http_engine *e = NULL;
    assert_int_equal(tp_http_engine_create(r.c, &e, NULL), TP_OK);
    eng_got g = {0};
    eng_one one[3];
    static const char *const paths[3] = {"/a", "/b", "/c"};
    for (int i = 0; i < 3; i++) {
        one[i] = (eng_one){&g, i};
        char url[128];
        snprintf(url, sizeof url, "http://127.0.0.1:%u%s", (unsigned)r.port, paths[i]);
        tp_http_request rq = {
            .method = "POST", .url = url, .body = "x", .body_len = 1, .timeout = MS(5000)};
        assert_int_equal(tp_http_engine_submit(e, &rq, eng_done, &one[i], NULL, NULL), TP_OK);
    }
    tp_http_engine_run(e);
    assert_int_equal(g.done, 3);
    assert_int_equal(g.ok, 3);
    assert_int_equal(g.retried, 2);
    for (int i = 0; i < 3; i++) {
        char want[16];
        snprintf(want, sizeof want, "ok %s", paths[i]);
        assert_string_equal(g.bodies[i], want);
    }
    assert_int_equal(h2_bad_answered(r.server), 3);
    tp_http_engine_destroy(e);
    stop(&r);
}

/* A peer gone silent under a waiting request (no answer, no PING ACK): the request's
 * connection is PINGed after http2_ping_idle (100 ms) and declared dead when that PING
 * goes unanswered for http2_ping_timeout (200 ms), long before the 5 s header timeout;
 * the next request opens a new connection. Blocking call, or the engine (which steps a
 * connection only at its socket's edges, so a silent one needs the health timer). */
typedef struct one_result {
    int calls;
    tp_err rc;
    char msg[256];
} one_result;

static void one_done(void *ud, tp_err rc, tp_http_response *r, const tp_errinfo *err)
{
    one_result *o = ud;
    o->calls++;
    o->rc = rc;
    if (err != NULL)
        snprintf(o->msg, sizeof o->msg, "%s", err->msg);
    tp_http_response_free(r);
}

static void silent_peer(bool engine)
{
    rig r = start_with(H2B_SILENT_AFTER_FIRST, MS(5000), MS(100), MS(200));
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/a", (unsigned)r.port);
    tp_http_response *resp = NULL;
    tp_errinfo e;
    assert_int_equal(tp_http_get(r.c, url, &resp, &e), TP_OK);
    tp_http_response_free(resp);
    snprintf(url, sizeof url, "http://127.0.0.1:%u/b", (unsigned)r.port);
    int64_t t0 = tu_now_ns();
    tp_err rc;
    char msg[256] = "";
    if (!engine) {
        rc = tp_http_get(r.c, url, &resp, &e);
        snprintf(msg, sizeof msg, "%s", e.msg);
        tp_http_response_free(resp);
    } else {
        tp_http_engine *en = NULL;
        assert_int_equal(tp_http_engine_create(r.c, &en, NULL), TP_OK);
        one_result got = {0};
        tp_http_request rq = {.method = "GET", .url = url, .timeout = MS(10000)};
        tp_errinfo se;
        rc = tp_http_engine_submit(en, &rq, one_done, &got, NULL, &se);
        if (rc != TP_OK)
            fail_msg("submit: %s", se.msg);
        tp_http_engine_run(en);
        assert_int_equal(got.calls, 1);
        rc = got.rc;
        snprintf(msg, sizeof msg, "%s", got.msg);
        tp_http_engine_destroy(en);
    }
    int64_t took = tu_now_ns() - t0;
    assert_int_equal(rc, TP_ETIMEDOUT);
    assert_non_null(strstr(msg, "PING"));
    assert_true(took >= MS(250) && took < MS(2500));
    snprintf(url, sizeof url, "http://127.0.0.1:%u/c", (unsigned)r.port);
    assert_int_equal(tp_http_get(r.c, url, &resp, &e), TP_OK);
    assert_int_equal(tp_http_response_status(resp), 200);
    tp_http_response_free(resp);
    tp_stats st;
    tp_pool_stats(tp_http_client_h2_pool(r.c), &st);
    assert_int_equal(st.opens, 2);
    stop(&r);
}

static void test_silent_peer_declared_dead(void **state)
{
    (void)state;
    silent_peer(false);
}

static void test_engine_silent_peer_declared_dead(void **state)
{
    (void)state;
    silent_peer(true);
}

/* A header block split across reads (HEADERS, then its CONTINUATION 100 ms later): the
 * response is the whole block, the field of the second part included. Before the fix
 * the status of the first part ended the wait and that field was missing. */
static void test_split_header_block_whole(void **state)
{
    (void)state;
    rig r = start(H2B_SPLIT_HEADER, MS(5000));
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/a", (unsigned)r.port);
    tp_http_response *resp = NULL;
    tp_errinfo e;
    if (tp_http_get(r.c, url, &resp, &e) != TP_OK)
        fail_msg("get: %s", e.msg);
    assert_int_equal(tp_http_response_status(resp), 200);
    const char *late = tp_http_response_header(resp, "x-late");
    assert_non_null(late);
    assert_string_equal(late, "yes");
    size_t n;
    const char *body = tp_http_response_body(resp, &n);
    assert_int_equal(n, 5);
    assert_memory_equal(body, "ok /a", 5);
    tp_http_response_free(resp);
    stop(&r);
}

int main(void)
{
    tu_watchdog(120);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_posts_above_goaway_resent_once),
        cmocka_unit_test(test_refused_stream_resent),
        cmocka_unit_test(test_stalled_body_times_out_alone),
        cmocka_unit_test(test_header_timeout),
        cmocka_unit_test(test_engine_posts_above_goaway_resent_once),
        cmocka_unit_test(test_unanswered_ping_before_reuse),
        cmocka_unit_test(test_answered_ping_before_reuse),
        cmocka_unit_test(test_silent_peer_declared_dead),
        cmocka_unit_test(test_engine_silent_peer_declared_dead),
        cmocka_unit_test(test_split_header_block_whole),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
