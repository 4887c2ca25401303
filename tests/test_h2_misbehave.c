/* test_h2_misbehave.c (label: concurrency): the HTTP/2 session layer against a server
 * that misbehaves on purpose (support/h2_bad): a GOAWAY below streams in flight (those
 * streams fail as unprocessed, the server answered only the first), REFUSED_STREAM
 * (unprocessed), SETTINGS_MAX_CONCURRENT_STREAMS 1 then 10 (capacity follows), a server
 * that never answers PING (the PING stays pending, requests still work), a stream whose
 * body stalls (its deadline passes, the others finish), a header field over our bound
 * (the stream fails with TP_ETOOBIG, the connection lives) and one over what HPACK
 * takes (a connection error), a DATA frame on stream 0 (a connection error: TP_EPROTO,
 * every stream fails), a CONTINUATION flood (a connection error within a few frames). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "h2/h2.h"
#include "net/net.h"
#include "support/h2_bad.h"
#include "support/h2_steps.h"
#include "support/test_util.h"

typedef struct rig {
    h2_bad *server;
    tp__h2 *h;
} rig;

static rig start(h2_bad_mode mode, const tp__h2_options *o)
{
    rig r = {0};
    uint16_t port;
    assert_int_equal(h2_bad_start(mode, &r.server, &port), 0);
    int fd;
    tp_errinfo ei;
    tp_err rc =
        tp__tcp_connect("127.0.0.1", port, tp_deadline_after(MS(2000)), &fd, NULL, NULL, &ei);
    if (rc != TP_OK)
        fail_msg("connect: %s", ei.msg);
    tp__stream s;
    tp__stream_init(&s, fd);
    rc = tp__h2_new(&s, o, &r.h, &ei);
    if (rc != TP_OK)
        fail_msg("tp__h2_new: %s", ei.msg);
    return r;
}

static void stop(rig *r)
{
    tp__h2_free(r->h);
    h2_bad_stop(r->server);
}

static tp__h2_stream *get(rig *r, const char *path)
{
    return h2t_get(r->h, path);
}

/* Waits for st (2 s at most) and checks a complete "ok <path>" answer. */
static void expect_ok(rig *r, tp__h2_stream *st, const char *path)
{
    tp_errinfo ei;
    assert_int_equal(tp__h2_wait(r->h, st, tp_deadline_after(MS(2000)), &ei), TP_OK);
    tp_err rc = tp__h2_stream_result(st, &ei);
    if (rc != TP_OK)
        fail_msg("%s: %s", path, ei.msg);
    assert_int_equal(tp__h2_stream_status(st), 200);
    char want[80], got[80];
    snprintf(want, sizeof want, "ok %s", path);
    size_t n;
    tp__h2_stream_read(r->h, st, got, sizeof got - 1, &n);
    got[n] = '\0';
    assert_string_equal(got, want);
}

static void test_goaway_below_streams_in_flight(void **state)
{
    (void)state;
    rig r = start(H2B_GOAWAY_LOW, NULL);
    tp__h2_stream *st[3] = {get(&r, "/a"), get(&r, "/b"), get(&r, "/c")};
    expect_ok(&r, st[0], "/a");
    tp_errinfo ei;
    for (int i = 1; i < 3; i++) {
        assert_int_equal(tp__h2_wait(r.h, st[i], tp_deadline_after(MS(2000)), &ei), TP_OK);
        assert_int_equal(tp__h2_stream_result(st[i], &ei), TP_ERESET);
        assert_true(tp__h2_stream_unprocessed(st[i])); /* safe to send again, POST or not */
        assert_non_null(strstr(ei.msg, "safe to retry"));
    }
    assert_false(tp__h2_stream_unprocessed(st[0]));
    assert_true(tp__h2_draining(r.h));
    assert_int_equal(tp__h2_goaway_code(r.h), 0); /* NO_ERROR */
    assert_int_equal(tp__h2_capacity(r.h), 0);
    tp__h2_request rq = {.method = "GET", .scheme = "http", .authority = "x", .path = "/d"};
    tp__h2_stream *more = NULL;
    assert_int_equal(tp__h2_submit(r.h, &rq, &more, &ei), TP_ESTATE);
    assert_int_equal(h2_bad_answered(r.server), 1); /* what the server processed */
    for (int i = 0; i < 3; i++)
        tp__h2_stream_free(r.h, st[i]);
    stop(&r);
}

static void test_refused_stream_is_unprocessed(void **state)
{
    (void)state;
    rig r = start(H2B_REFUSE_SECOND, NULL);
    tp__h2_stream *a = get(&r, "/a");
    expect_ok(&r, a, "/a");
    tp__h2_stream *b = get(&r, "/b");
    tp_errinfo ei;
    assert_int_equal(tp__h2_wait(r.h, b, tp_deadline_after(MS(2000)), &ei), TP_OK);
    assert_int_equal(tp__h2_stream_result(b, &ei), TP_ERESET);
    assert_int_equal(ei.sys_errno, 7); /* REFUSED_STREAM, the code in the error */
    assert_non_null(strstr(ei.msg, "REFUSED_STREAM"));
    assert_true(tp__h2_stream_unprocessed(b));
    tp__h2_stream *c = get(&r, "/c"); /* the connection goes on */
    expect_ok(&r, c, "/c");
    assert_false(tp__h2_draining(r.h));
    tp__h2_stream_free(r.h, a);
    tp__h2_stream_free(r.h, b);
    tp__h2_stream_free(r.h, c);
    stop(&r);
}

static void test_capacity_follows_settings(void **state)
{
    (void)state;
    rig r = start(H2B_SETTINGS_1_10, NULL);
    tp__h2_stream *a = get(&r, "/a"); /* before SETTINGS: 100 assumed */
    expect_ok(&r, a, "/a");
    assert_true(tp__h2_settings_seen(r.h));
    /* The raise follows the first answer: step until it arrives. */
    H2T_STEP_UNTIL(r.h, tp__h2_capacity(r.h) == 10, 2000);
    tp_errinfo ei;
    tp__h2_stream *st[10];
    for (int i = 0; i < 10; i++) {
        char p[16];
        snprintf(p, sizeof p, "/%d", i);
        st[i] = get(&r, p);
    }
    tp__h2_request rq = {.method = "GET", .scheme = "http", .authority = "x", .path = "/x"};
    tp__h2_stream *more = NULL;
    assert_int_equal(tp__h2_submit(r.h, &rq, &more, &ei), TP_EAGAIN);
    for (int i = 0; i < 10; i++) {
        char p[16];
        snprintf(p, sizeof p, "/%d", i);
        expect_ok(&r, st[i], p);
        tp__h2_stream_free(r.h, st[i]);
    }
    tp__h2_stream_free(r.h, a);
    stop(&r);
}

static void test_unanswered_ping_stays_pending(void **state)
{
    (void)state;
    rig r = start(H2B_NO_PING_ACK, NULL);
    tp_errinfo ei;
    assert_int_equal(tp__h2_ping(r.h, &ei), TP_OK);
    tp__h2_stream *a = get(&r, "/a");
    expect_ok(&r, a, "/a"); /* a request's round trip: the PING went out before it */
    assert_int_equal(h2_bad_pings(r.server), 1);
    assert_true(tp__h2_ping_pending(r.h)); /* what a health check times out on */
    assert_int_equal(tp__h2_ping_rtt(r.h), -1);
    assert_int_equal(tp__h2_ping(r.h, &ei), TP_EBUSY);
    tp__h2_stream_free(r.h, a);
    stop(&r);
}

static void test_stalled_stream_does_not_block_others(void **state)
{
    (void)state;
    rig r = start(H2B_STALL_FIRST, NULL);
    tp__h2_stream *slow = get(&r, "/slow");
    tp__h2_stream *b = get(&r, "/b"), *c = get(&r, "/c");
    expect_ok(&r, b, "/b");
    expect_ok(&r, c, "/c");
    tp_errinfo ei;
    int64_t t0 = tu_now_ns();
    assert_int_equal(tp__h2_wait(r.h, slow, tp_deadline_after(MS(200)), &ei), TP_ETIMEDOUT);
    assert_true(tu_ms_since(t0) >= 150);
    assert_int_equal(tp__h2_stream_status(slow), 200); /* its header came, no body */
    assert_false(tp__h2_stream_done(slow));
    tp__h2_stream_free(r.h, slow); /* reset: CANCEL */
    tp__h2_stream *d = get(&r, "/d");
    expect_ok(&r, d, "/d");
    tp__h2_stream_free(r.h, b);
    tp__h2_stream_free(r.h, c);
    tp__h2_stream_free(r.h, d);
    stop(&r);
}

/* Over our bound (4 KiB here) but within what HPACK takes: the stream fails with
 * TP_ETOOBIG, the connection lives. */
static void test_big_header_field(void **state)
{
    (void)state;
    tp__h2_options o = {.max_header_list = 4096};
    rig r = start(H2B_BIG_HEADER, &o);
    tp__h2_stream *a = get(&r, "/a");
    tp_errinfo ei;
    assert_int_equal(tp__h2_wait(r.h, a, tp_deadline_after(MS(2000)), &ei), TP_OK);
    assert_int_equal(tp__h2_stream_result(a, &ei), TP_ETOOBIG);
    assert_false(tp__h2_stream_unprocessed(a));
    tp__h2_stream_free(r.h, a);
    /* The connection is alive: a PING still round-trips. */
    assert_int_equal(tp__h2_ping(r.h, &ei), TP_OK);
    H2T_STEP_UNTIL(r.h, !tp__h2_ping_pending(r.h), 2000);
    assert_true(tp__h2_ping_rtt(r.h) >= 0);
    stop(&r);
}

/* A 100 KiB field is more than nghttp2's HPACK decoder takes: a connection error
 * (COMPRESSION_ERROR), clear, bounded, every stream failed. */
static void test_huge_header_field(void **state)
{
    (void)state;
    rig r = start(H2B_HUGE_HEADER, NULL);
    tp__h2_stream *a = get(&r, "/a");
    tp_errinfo ei;
    assert_int_equal(tp__h2_wait(r.h, a, tp_deadline_after(MS(2000)), &ei), TP_OK);
    assert_int_equal(tp__h2_stream_result(a, &ei), TP_EPROTO);
    assert_non_null(strstr(ei.msg, "COMPRESSION_ERROR"));
    assert_int_equal(tp__h2_capacity(r.h), 0);
    tp__h2_stream_free(r.h, a);
    stop(&r);
}

/* An upload the server's window holds back, given up: the stream is reset and its
 * body, freed by the caller at once, is never read again (ASan would see it); the
 * connection answers the next request. */
static void test_abandoned_upload_never_reads_body(void **state)
{
    (void)state;
    rig r = start(H2B_NO_WINDOW, NULL);
    size_t n = 1 << 20;
    unsigned char *body = malloc(n);
    assert_non_null(body);
    memset(body, 'u', n);
    tp__h2_request rq = {.method = "POST",
                         .scheme = "http",
                         .authority = "127.0.0.1",
                         .path = "/up",
                         .body = body,
                         .bodylen = n};
    tp__h2_stream *st;
    tp_errinfo ei;
    assert_int_equal(tp__h2_submit(r.h, &rq, &st, &ei), TP_OK);
    assert_int_equal(tp__h2_wait(r.h, st, tp_deadline_after(MS(200)), &ei), TP_ETIMEDOUT);
    assert_false(tp__h2_stream_done(st)); /* stalled on the server's window */
    tp__h2_stream_free(r.h, st);
    free(body);
    tp__h2_stream *next = get(&r, "/next");
    expect_ok(&r, next, "/next");
    tp__h2_stream_free(r.h, next);
    stop(&r);
}

static void test_data_on_stream_zero(void **state)
{
    (void)state;
    rig r = start(H2B_DATA_ON_ZERO, NULL);
    tp__h2_stream *a = get(&r, "/a");
    tp_errinfo ei;
    assert_int_equal(tp__h2_wait(r.h, a, tp_deadline_after(MS(2000)), &ei), TP_OK);
    assert_int_equal(tp__h2_stream_result(a, &ei), TP_EPROTO);
    assert_non_null(strstr(ei.msg, "HTTP/2 connection to 127.0.0.1:"));
    assert_non_null(strstr(ei.msg, "PROTOCOL_ERROR"));
    int want;
    assert_int_equal(tp__h2_step(r.h, &want, &ei), TP_EPROTO);
    assert_int_equal(tp__h2_capacity(r.h), 0);
    tp__h2_stream_free(r.h, a);
    stop(&r);
}

/* A header block that never ends (HEADERS without END_HEADERS, then CONTINUATION after
 * CONTINUATION): nghttp2 stops it after a few frames, a connection error, clear and
 * bounded in time, every stream failed, and the session takes no new stream. */
static void test_continuation_flood(void **state)
{
    (void)state;
    rig r = start(H2B_CONTINUATION_FLOOD, NULL);
    int64_t t0 = tu_now_ns();
    tp__h2_stream *a = get(&r, "/a");
    tp_errinfo ei;
    assert_int_equal(tp__h2_wait(r.h, a, tp_deadline_after(MS(2000)), &ei), TP_OK);
    assert_true(tu_now_ns() - t0 < MS(1000));
    assert_int_equal(tp__h2_stream_result(a, &ei), TP_EPROTO);
    assert_non_null(strstr(ei.msg, "HTTP/2 connection to 127.0.0.1:"));
    assert_int_equal(tp__h2_stream_status(a), 0); /* no header of it was delivered */
    assert_int_equal(tp__h2_capacity(r.h), 0);
    int want;
    assert_int_equal(tp__h2_step(r.h, &want, &ei), TP_EPROTO);
    tp__h2_stream_free(r.h, a);
    stop(&r);
}

int main(void)
{
    tu_watchdog(120);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_goaway_below_streams_in_flight),
        cmocka_unit_test(test_refused_stream_is_unprocessed),
        cmocka_unit_test(test_capacity_follows_settings),
        cmocka_unit_test(test_unanswered_ping_stays_pending),
        cmocka_unit_test(test_stalled_stream_does_not_block_others),
        cmocka_unit_test(test_big_header_field),
        cmocka_unit_test(test_huge_header_field),
        cmocka_unit_test(test_abandoned_upload_never_reads_body),
        cmocka_unit_test(test_data_on_stream_zero),
        cmocka_unit_test(test_continuation_flood),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
