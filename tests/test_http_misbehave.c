/* test_http_misbehave.c: the HTTP client against a server of ours that misbehaves on
 * purpose (tests/support/http_test_server.h): unsolicited bytes on an idle connection,
 * closes and resets at every point, stalls, a black hole, malformed and ambiguous
 * framing, huge headers. Each case asserts the exact outcome: the error code, whether
 * the request was retried, and that the bad connection was closed, never reused. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <tidepool/tidepool.h>

#include "support/http_test_server.h"
#include "support/test_util.h"

typedef struct fx {
    hts_server *srv;
    tp_http_client *c;
    char url[128];
    int retries_traced;
} fx;

static void on_trace(void *ud, const tp_http_trace_event *ev)
{
    fx *x = ud;
    if (ev->type == TP_HTTP_TRACE_RETRY)
        x->retries_traced++;
}

static int setup(void **state)
{
    fx *x = calloc(1, sizeof *x);
    *state = x;
    return x == NULL ? -1 : 0;
}

static int teardown(void **state)
{
    fx *x = *state;
    tp_http_client_destroy(x->c);
    hts_stop(x->srv);
    free(x);
    return 0;
}

/* Starts the server with behaviours per request (the rest normal) and a client. */
static void start(fx *x, const hts_behavior *per, size_t n, tp_http_client_options *co)
{
    hts_options so;
    hts_options_init(&so);
    so.per_request = per;
    so.n_per_request = n;
    assert_int_equal(hts_start(&so, &x->srv), 0);
    snprintf(x->url, sizeof x->url, "http://127.0.0.1:%u/", (unsigned)hts_port(x->srv));
    tp_http_client_options o;
    if (co == NULL) {
        tp_http_client_options_init(&o);
        co = &o;
    }
    co->trace = on_trace;
    co->trace_ud = x;
    tp_errinfo e;
    assert_int_equal(tp_http_client_create(co, &x->c, &e), TP_OK);
}

static tp_err get(fx *x, const char *method, const char *body, unsigned flags,
                  tp_http_response **out, tp_errinfo *e)
{
    tp_http_request req = {.method = method,
                           .url = x->url,
                           .body = body,
                           .body_len = body != NULL ? strlen(body) : 0,
                           .timeout = TP_DURATION_DEFAULT,
                           .flags = flags};
    return tp_http_client_do(x->c, &req, out, e);
}

/* A GET that must succeed with the default body; returns the response info. */
static tp_http_response_info get_ok(fx *x)
{
    tp_http_response *r = NULL;
    tp_errinfo e;
    tp_err rc = get(x, "GET", NULL, 0, &r, &e);
    if (rc != TP_OK)
        print_error("GET %s: %s: %s\n", x->url, tp_err_name(rc), e.msg);
    assert_int_equal(rc, TP_OK);
    assert_int_equal(tp_http_response_status(r), 200);
    size_t len;
    const char *body = tp_http_response_body(r, &len);
    assert_int_equal(len, strlen(HTS_DEFAULT_BODY));
    assert_memory_equal(body, HTS_DEFAULT_BODY, len);
    tp_http_response_info info;
    tp_http_response_get_info(r, &info);
    tp_http_response_free(r);
    return info;
}

static tp_stats stats(fx *x)
{
    tp_stats st;
    tp_pool_stats(tp_http_client_pool(x->c), &st);
    return st;
}

static void test_reuse_one_connection(void **state)
{
    fx *x = *state;
    start(x, NULL, 0, NULL);
    for (int i = 0; i < 20; i++) {
        tp_http_response_info info = get_ok(x);
        assert_int_equal(info.reused, i > 0);
    }
    assert_int_equal(hts_connections(x->srv), 1);
    assert_int_equal(stats(x).opens, 1);
}

static void test_unsolicited_bytes_on_idle_connection(void **state)
{
    /* After the first response the server writes a 408 on the idle connection. The next
     * request must not read it: the idle check sees it and the connection is closed. */
    fx *x = *state;
    hts_behavior per[] = {{.mode = HTS_UNSOLICITED, .delay_ms = 30}};
    start(x, per, 1, NULL);
    get_ok(x);
    tu_sleep_ms(120);
    tp_http_response_info info = get_ok(x); /* 200, not the 408 */
    assert_false(info.reused);
    assert_int_equal(hts_connections(x->srv), 2);
    assert_int_equal(stats(x).closes[TP_CLOSE_CHECK_FAILED], 1);
}

static void test_close_after_response_without_header(void **state)
{
    /* The server closes after responding, without saying so. After a pause the FIN is
     * seen by the idle check; without one the request may go out on the dead
     * connection: either way the caller gets a 200 (a GET is retried on a fresh one). */
    fx *x = *state;
    hts_behavior per[] = {{.mode = HTS_CLOSE_AFTER_RESPONSE},
                          {.mode = HTS_CLOSE_AFTER_RESPONSE},
                          {.mode = HTS_CLOSE_AFTER_RESPONSE}};
    start(x, per, 3, NULL);
    get_ok(x);
    tu_sleep_ms(50);
    get_ok(x); /* stale connection detected before reuse */
    get_ok(x); /* no pause: detected, or retried */
    get_ok(x);
    assert_int_equal(stats(x).open_failures, 0);
}

static void test_eof_before_response_on_reused_connection_is_retried(void **state)
{
    /* Second request (on the reused connection): the server reads it and closes without
     * a byte. A GET is retried once on a fresh connection, visibly. */
    fx *x = *state;
    hts_behavior per[] = {{.mode = HTS_NORMAL}, {.mode = HTS_CLOSE_BEFORE_RESPONSE}};
    start(x, per, 2, NULL);
    get_ok(x);
    tp_http_response_info info = get_ok(x);
    assert_true(info.retried);
    assert_false(info.reused);
    assert_int_equal(x->retries_traced, 1);
    assert_int_equal(hts_connections(x->srv), 2);
}

static void test_post_with_body_is_not_retried(void **state)
{
    fx *x = *state;
    hts_behavior per[] = {{.mode = HTS_NORMAL}, {.mode = HTS_CLOSE_BEFORE_RESPONSE}};
    start(x, per, 2, NULL);
    get_ok(x);
    tp_http_response *r = NULL;
    tp_errinfo e;
    assert_int_equal(get(x, "POST", "payload", 0, &r, &e), TP_ECONNRESET);
    assert_null(r);
    assert_int_equal(x->retries_traced, 0);
    assert_int_equal(hts_requests(x->srv), 2); /* sent once, never twice */
}

static void test_no_retry_flag_and_fresh_connection(void **state)
{
    fx *x = *state;
    hts_behavior per[] = {{.mode = HTS_CLOSE_BEFORE_RESPONSE},
                          {.mode = HTS_NORMAL},
                          {.mode = HTS_RESET_BEFORE_RESPONSE}};
    start(x, per, 3, NULL);
    tp_http_response *r = NULL;
    tp_errinfo e;
    /* A fresh connection is never retried: the failure is the server's answer. */
    assert_int_equal(get(x, "GET", NULL, 0, &r, &e), TP_ECONNRESET);
    get_ok(x);
    /* Reused, GET, but the caller said no retry. */
    assert_int_equal(get(x, "GET", NULL, TP_HTTP_NO_RETRY, &r, &e), TP_ECONNRESET);
    assert_int_equal(x->retries_traced, 0);
}

static void test_reset_mid_body(void **state)
{
    fx *x = *state;
    hts_behavior per[] = {{.mode = HTS_RESET_MID_BODY}};
    start(x, per, 1, NULL);
    tp_http_response *r = NULL;
    tp_errinfo e;
    tp_err rc = get(x, "GET", NULL, 0, &r, &e);
    assert_int_equal(rc, TP_ECONNRESET);
    assert_int_equal(x->retries_traced, 0); /* bytes arrived: never retried */
    get_ok(x);                              /* a new connection, intact */
    assert_int_equal(hts_connections(x->srv), 2);
    assert_int_equal(stats(x).closes[TP_CLOSE_BROKEN], 1);
}

static void test_slow_headers_hit_header_timeout(void **state)
{
    fx *x = *state;
    hts_behavior per[] = {{.mode = HTS_SLOW_HEADERS, .delay_ms = 1500}};
    tp_http_client_options o;
    tp_http_client_options_init(&o);
    o.response_header_timeout = 100 * TP_NSEC_PER_MSEC;
    start(x, per, 1, &o);
    tp_http_response *r = NULL;
    tp_errinfo e;
    int64_t t0 = tu_now_ns();
    assert_int_equal(get(x, "GET", NULL, 0, &r, &e), TP_EHDRTIMEDOUT);
    double ms = tu_ms_since(t0);
    assert_true(ms >= 95 && ms < 1000);
    get_ok(x); /* the stalled connection was closed, a new one works */
    assert_int_equal(hts_connections(x->srv), 2);
}

static void test_request_timeout(void **state)
{
    fx *x = *state;
    hts_behavior per[] = {{.mode = HTS_NO_RESPONSE}};
    start(x, per, 1, NULL);
    tp_http_request req = {.url = x->url, .timeout = 150 * TP_NSEC_PER_MSEC};
    tp_http_response *r = NULL;
    tp_errinfo e;
    int64_t t0 = tu_now_ns();
    assert_int_equal(tp_http_client_do(x->c, &req, &r, &e), TP_EREQTIMEDOUT);
    double ms = tu_ms_since(t0);
    assert_true(ms >= 145 && ms < 1000);
}

static void test_black_hole_connect_timeout(void **state)
{
    fx *x = *state;
    hts_blackhole bh;
    if (hts_blackhole_open(&bh) != 0) {
        print_message("black hole not reproducible here: skipped\n");
        skip();
    }
    tp_http_client_options o;
    tp_http_client_options_init(&o);
    o.pool.connect_timeout = 200 * TP_NSEC_PER_MSEC;
    tp_errinfo e;
    assert_int_equal(tp_http_client_create(&o, &x->c, &e), TP_OK);
    snprintf(x->url, sizeof x->url, "http://127.0.0.1:%u/", (unsigned)bh.port);
    tp_http_response *r = NULL;
    int64_t t0 = tu_now_ns();
    tp_err rc = get(x, "GET", NULL, 0, &r, &e);
    double ms = tu_ms_since(t0);
    hts_blackhole_close(&bh);
    assert_int_equal(rc, TP_ECONNTIMEDOUT);
    assert_true(ms >= 190 && ms < 1500);
    assert_non_null(strstr(e.msg, "127.0.0.1"));
}

static void test_connection_refused_then_recovers(void **state)
{
    fx *x = *state;
    start(x, NULL, 0, NULL);
    char good[128];
    snprintf(good, sizeof good, "%s", x->url);
    hts_stop(x->srv);
    x->srv = NULL;
    tp_http_response *r = NULL;
    tp_errinfo e;
    int64_t t0 = tu_now_ns();
    assert_int_equal(get(x, "GET", NULL, 0, &r, &e), TP_ECONNREFUSED);
    assert_true(tu_ms_since(t0) < 500);
    assert_int_equal(e.sys_errno, ECONNREFUSED);
    /* The client stays usable: a server on another port answers. */
    hts_options so;
    hts_options_init(&so);
    assert_int_equal(hts_start(&so, &x->srv), 0);
    snprintf(x->url, sizeof x->url, "http://127.0.0.1:%u/", (unsigned)hts_port(x->srv));
    get_ok(x);
}

/* A raw response that must fail with want, close its connection, and leave the next
 * request (on a new connection) intact. */
static void raw_case(fx *x, const char *raw, tp_err want)
{
    hts_behavior per[] = {{.mode = HTS_RAW, .raw = raw, .close_after = false}};
    start(x, per, 1, NULL);
    tp_http_response *r = NULL;
    tp_errinfo e;
    tp_err rc = get(x, "GET", NULL, 0, &r, &e);
    if (rc != want)
        print_error("got %s (%s), want %s\n", tp_err_name(rc), e.msg, tp_err_name(want));
    assert_int_equal(rc, want);
    assert_null(r);
    get_ok(x);
    assert_int_equal(hts_connections(x->srv), 2); /* never reused */
}

static void test_content_length_with_transfer_encoding(void **state)
{
    raw_case(*state,
             "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
             "5\r\nhello\r\n0\r\n\r\n",
             TP_EPROTO);
}

static void test_conflicting_content_length(void **state)
{
    raw_case(*state, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
             TP_EPROTO);
}

static void test_invalid_content_length(void **state)
{
    raw_case(*state, "HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\nhello", TP_EPROTO);
}

static void test_garbage_status_line(void **state)
{
    raw_case(*state, "HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n", TP_EPROTO);
}

static void test_bad_chunk(void **state)
{
    raw_case(*state, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n",
             TP_EPROTO);
}

static void test_huge_headers(void **state)
{
    fx *x = *state;
    size_t n = 100 * 1024;
    char *raw = malloc(n + 128);
    assert_non_null(raw);
    int off = sprintf(raw, "HTTP/1.1 200 OK\r\nX-Big: ");
    memset(raw + off, 'a', n);
    strcpy(raw + off + n, "\r\nContent-Length: 0\r\n\r\n");
    raw_case(x, raw, TP_ETOOBIG);
    free(raw);
}

static void test_extra_bytes_after_response_not_reused(void **state)
{
    /* Two responses in one write: the second is not an answer to anything. The first
     * request succeeds; its connection must be closed, not handed the surplus. */
    fx *x = *state;
    const char *raw = "HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\nhello, world\n"
                      "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nextra";
    hts_behavior per[] = {{.mode = HTS_RAW, .raw = raw}};
    start(x, per, 1, NULL);
    tp_http_response_info info = get_ok(x);
    (void)info;
    get_ok(x);
    assert_int_equal(hts_connections(x->srv), 2);
    assert_int_equal(stats(x).closes[TP_CLOSE_DISCARDED], 1);
}

static void test_http10_response_closes(void **state)
{
    fx *x = *state;
    hts_behavior per[] = {{.mode = HTS_RAW, .raw = "HTTP/1.0 200 OK\r\nContent-Length: 13\r\n\r\n"
                                                    "hello, world\n"}};
    start(x, per, 1, NULL);
    tp_http_response_info info = get_ok(x);
    assert_false(info.keep_alive);
    assert_int_equal(info.http_minor, 0);
    get_ok(x);
    assert_int_equal(hts_connections(x->srv), 2);
}

static void test_keep_alive_hint_lowers_idle_timeout(void **state)
{
    fx *x = *state;
    hts_behavior per[] = {{.mode = HTS_RAW,
                           .raw = "HTTP/1.1 200 OK\r\nKeep-Alive: timeout=1\r\nContent-Length: 13"
                                  "\r\n\r\nhello, world\n"}};
    start(x, per, 1, NULL);
    get_ok(x);
    tu_sleep_ms(800); /* past 1 s - 250 ms: the pool no longer trusts it */
    tp_http_response_info info = get_ok(x);
    assert_false(info.reused);
    assert_int_equal(stats(x).closes[TP_CLOSE_IDLE_TIMEOUT], 1);
}

static void test_unread_body_drained_or_closed(void **state)
{
    fx *x = *state;
    static char big[600 * 1024];
    memset(big, 'b', sizeof big);
    hts_behavior per[] = {{.mode = HTS_NORMAL, .body = big, .body_len = 100 * 1024},
                          {.mode = HTS_NORMAL},
                          {.mode = HTS_NORMAL, .body = big, .body_len = sizeof big},
                          {.mode = HTS_NORMAL}};
    start(x, per, 4, NULL);
    tp_http_response *r = NULL;
    tp_errinfo e;
    /* 100 KiB unread: drained on free, connection kept. */
    assert_int_equal(get(x, "GET", NULL, TP_HTTP_STREAM, &r, &e), TP_OK);
    tp_http_response_free(r);
    tp_http_response_info info = get_ok(x);
    assert_true(info.reused);
    /* 600 KiB unread (> drain_max_bytes): closed, and the next request is intact. */
    assert_int_equal(get(x, "GET", NULL, TP_HTTP_STREAM, &r, &e), TP_OK);
    char buf[100];
    size_t got;
    assert_int_equal(tp_http_response_read(r, buf, sizeof buf, &got, &e), TP_OK);
    assert_true(got > 0);
    tp_http_response_free(r);
    info = get_ok(x);
    assert_false(info.reused);
    assert_int_equal(hts_connections(x->srv), 2);
}

static void test_streamed_body_reads_exact_bytes(void **state)
{
    fx *x = *state;
    static char body[70000];
    for (size_t i = 0; i < sizeof body; i++)
        body[i] = (char)('a' + i % 26);
    hts_behavior per[] = {{.mode = HTS_NORMAL, .body = body, .body_len = sizeof body}};
    start(x, per, 1, NULL);
    tp_http_response *r = NULL;
    tp_errinfo e;
    assert_int_equal(get(x, "GET", NULL, TP_HTTP_STREAM, &r, &e), TP_OK);
    size_t total = 0, got;
    char buf[777];
    do {
        assert_int_equal(tp_http_response_read(r, buf, sizeof buf, &got, &e), TP_OK);
        assert_memory_equal(buf, body + total, got);
        total += got;
    } while (got > 0);
    assert_int_equal(total, sizeof body);
    tp_http_response_free(r);
    assert_true(get_ok(x).reused);
}

static void test_request_bytes_on_the_wire(void **state)
{
    fx *x = *state;
    start(x, NULL, 0, NULL);
    const char *names[] = {"X-Test"}, *values[] = {"1"};
    tp_http_request req = {.method = "PUT", .url = x->url, .header_names = names,
                           .header_values = values, .nheaders = 1, .body = "abc",
                           .body_len = 3, .timeout = TP_DURATION_DEFAULT};
    tp_http_response *r = NULL;
    tp_errinfo e;
    assert_int_equal(tp_http_client_do(x->c, &req, &r, &e), TP_OK);
    tp_http_response_free(r);
    char raw[2048];
    hts_last_request(x->srv, raw, sizeof raw);
    assert_non_null(strstr(raw, "PUT / HTTP/1.1\r\n"));
    assert_non_null(strstr(raw, "\r\nX-Test: 1\r\n"));
    assert_non_null(strstr(raw, "\r\nContent-Length: 3\r\n"));
    assert_non_null(strstr(raw, "\r\nUser-Agent: tidepool/"));
    assert_non_null(strstr(raw, "\r\n\r\nabc"));
    /* Header injection is refused before anything is sent. */
    const char *bad[] = {"1\r\nX-Evil: 1"};
    req.header_values = bad;
    assert_int_equal(tp_http_client_do(x->c, &req, &r, &e), TP_EINVAL);
    assert_int_equal(hts_requests(x->srv), 1);
}

int main(void)
{
    tu_watchdog(120);
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_reuse_one_connection),
        T(test_unsolicited_bytes_on_idle_connection),
        T(test_close_after_response_without_header),
        T(test_eof_before_response_on_reused_connection_is_retried),
        T(test_post_with_body_is_not_retried),
        T(test_no_retry_flag_and_fresh_connection),
        T(test_reset_mid_body),
        T(test_slow_headers_hit_header_timeout),
        T(test_request_timeout),
        T(test_black_hole_connect_timeout),
        T(test_connection_refused_then_recovers),
        T(test_content_length_with_transfer_encoding),
        T(test_conflicting_content_length),
        T(test_invalid_content_length),
        T(test_garbage_status_line),
        T(test_bad_chunk),
        T(test_huge_headers),
        T(test_extra_bytes_after_response_not_reused),
        T(test_http10_response_closes),
        T(test_keep_alive_hint_lowers_idle_timeout),
        T(test_unread_body_drained_or_closed),
        T(test_streamed_body_reads_exact_bytes),
        T(test_request_bytes_on_the_wire),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
