/* test_h2_session.c: the HTTP/2 session layer (src/h2/) against a real nghttpd on
 * loopback, cleartext with prior knowledge and TLS with ALPN: requests and their bodies
 * byte for byte, many streams on one connection, a stream window that bounds what an
 * unread body holds, capacity from the server's SETTINGS, a full connection, our GOAWAY,
 * PING round trips, a stream given up while open, an oversized header block, a server
 * that dies under open streams, and ALPN's answers. Skipped without nghttpd. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "h2/h2.h"
#include "net/net.h"
#include "support/h2_steps.h"
#include "support/nghttpd_env.h"
#include "support/test_util.h"

#define DEADLINE() tp_deadline_after(MS(5000))

/* A connected stream to e: TLS offering alpn when e is TLS (NULL: "h2"). */
static tp_err dial(const nghttpd_env *e, const char *alpn, tp__stream *s, tp__tls_ctx **tls,
                   tp_errinfo *ei)
{
    int fd = -1;
    *tls = NULL;
    tp_err rc = tp__tcp_connect("127.0.0.1", e->port, DEADLINE(), &fd, NULL, NULL, ei);
    if (rc != TP_OK)
        return rc;
    tp__stream_init(s, fd);
    if (!e->tls)
        return TP_OK;
    tp__tls_options o = {.ca_file = e->cert, .alpn = alpn != NULL ? alpn : "h2"};
    rc = tp__tls_ctx_create(&o, tls, ei);
    if (rc == TP_OK)
        rc = tp__tls_start(s, *tls, "127.0.0.1", NULL, ei);
    if (rc == TP_OK)
        rc = tp__tls_handshake(s, DEADLINE(), ei);
    if (rc != TP_OK)
        tp__stream_close(s);
    return rc;
}

/* Starts nghttpd for a test, or skips the test when it is not installed. */
static void serve(nghttpd_env *e, bool tls, int max_streams)
{
    int rc = nghttpd_start(e, tls, max_streams);
    if (rc == 77)
        skip();
    assert_int_equal(rc, 0);
}

typedef struct conn {
    tp__h2 *h;
    tp__tls_ctx *tls;
} conn;

static conn session(const nghttpd_env *e, const tp__h2_options *o)
{
    conn c = {0};
    tp__stream s;
    tp_errinfo ei;
    tp_err rc = dial(e, NULL, &s, &c.tls, &ei);
    if (rc != TP_OK)
        fail_msg("dial: %s", ei.msg);
    if (e->tls)
        assert_string_equal(s.alpn, "h2");
    rc = tp__h2_new(&s, o, &c.h, &ei);
    if (rc != TP_OK)
        fail_msg("tp__h2_new: %s", ei.msg);
    return c;
}

static void conn_close(conn *c)
{
    tp__h2_free(c->h);
    tp__tls_ctx_destroy(c->tls);
}

static tp__h2_stream *get(conn *c, const char *path)
{
    return h2t_get(c->h, path);
}

/* Waits for st and reads its whole body into a new buffer (*len bytes). */
static unsigned char *body_of(conn *c, tp__h2_stream *st, size_t *len)
{
    size_t cap = 1 << 16, n = 0;
    unsigned char *buf = malloc(cap);
    assert_non_null(buf);
    int64_t deadline = DEADLINE();
    tp_errinfo ei;
    for (;;) {
        size_t got;
        do {
            if (n == cap) {
                cap *= 2;
                buf = realloc(buf, cap);
                assert_non_null(buf);
            }
            tp__h2_stream_read(c->h, st, buf + n, cap - n, &got);
            n += got;
        } while (got > 0);
        if (tp__h2_stream_done(st) && tp__h2_stream_buffered(st) == 0)
            break;
        int want = 0;
        tp_err rc = tp__h2_step(c->h, &want, &ei);
        if (rc != TP_OK)
            fail_msg("step: %s", ei.msg);
        if (tp__h2_stream_buffered(st) == 0 && !tp__h2_stream_done(st) &&
            tp__net_wait(tp__h2_fd(c->h), want, deadline, "test", "nghttpd", &ei) != TP_OK)
            fail_msg("waiting: %s", ei.msg);
    }
    assert_int_equal(tp__h2_stream_result(st, &ei), TP_OK);
    *len = n;
    return buf;
}

static void hello_on(bool tls)
{
    nghttpd_env e;
    serve(&e, tls, 0);
    conn c = session(&e, NULL);
    tp__h2_stream *st = get(&c, "/hello");
    size_t len;
    unsigned char *b = body_of(&c, st, &len);
    assert_int_equal(tp__h2_stream_status(st), 200);
    assert_int_equal(len, 13);
    assert_memory_equal(b, "hello, world\n", 13);
    assert_string_equal(tp__h2_stream_header(st, "content-length"), "13");
    assert_null(tp__h2_stream_header(st, "no-such-field"));
    assert_true(tp__h2_settings_seen(c.h));
    assert_int_equal(tp__h2_capacity(c.h), 100);
    assert_int_equal(tp__h2_open_streams(c.h), 0);
    assert_int_equal(tp__h2_stream_id(st), 1);
    free(b);
    tp__h2_stream_free(c.h, st);
    conn_close(&c);
    nghttpd_stop(&e);
}

static void test_hello_cleartext(void **state)
{
    (void)state;
    hello_on(false);
}

static void test_hello_tls_alpn(void **state)
{
    (void)state;
    hello_on(true);
}

/* Twenty 1 MiB bodies at once on one connection, through 64 KiB stream windows: every
 * byte right, and no stream ever holds more unread than its window. */
static void test_many_streams_bounded_windows(void **state)
{
    (void)state;
    nghttpd_env e;
    serve(&e, false, 0);
    tp__h2_options o = {.stream_window = 65536, .conn_window = 1 << 20};
    conn c = session(&e, &o);
    enum { N = 20 };
    tp__h2_stream *st[N];
    size_t got[N] = {0};
    for (int i = 0; i < N; i++)
        st[i] = get(&c, "/big");
    assert_int_equal(tp__h2_open_streams(c.h), N);
    unsigned char *buf = malloc(1 << 16);
    assert_non_null(buf);
    int64_t deadline = tp_deadline_after(MS(20000));
    tp_errinfo ei;
    for (int left = N; left > 0;) {
        int want = 0;
        assert_int_equal(tp__h2_step(c.h, &want, &ei), TP_OK); /* sends window updates too */
        bool read_some = false;
        left = 0;
        for (int i = 0; i < N; i++) {
            assert_true(tp__h2_stream_buffered(st[i]) <= 65536);
            size_t n;
            do {
                tp__h2_stream_read(c.h, st[i], buf, 1 << 16, &n);
                assert_true(nghttpd_big_ok(buf, n, got[i]));
                got[i] += n;
                read_some |= n > 0;
            } while (n > 0);
            if (!tp__h2_stream_done(st[i]))
                left++;
        }
        /* After reading, step first: the windows it opened must reach the server. */
        if (left > 0 && !read_some)
            assert_int_equal(tp__net_wait(tp__h2_fd(c.h), want, deadline, "test", "ng", &ei),
                             TP_OK);
    }
    for (int i = 0; i < N; i++) {
        assert_int_equal(tp__h2_stream_result(st[i], &ei), TP_OK);
        assert_int_equal(got[i], NGHTTPD_BIG_SIZE);
        tp__h2_stream_free(c.h, st[i]);
    }
    free(buf);
    conn_close(&c);
    nghttpd_stop(&e);
}

/* A 300 KiB POST comes back exactly (nghttpd --echo-upload). */
static void test_post_body_echoed(void **state)
{
    (void)state;
    nghttpd_env e;
    serve(&e, false, 0);
    conn c = session(&e, NULL);
    size_t n = 300 * 1024;
    unsigned char *body = malloc(n);
    assert_non_null(body);
    for (size_t i = 0; i < n; i++)
        body[i] = (unsigned char)(i * 131 + 7);
    tp__h2_header h[] = {{"content-type", "application/octet-stream"}};
    tp__h2_request rq = {.method = "POST",
                         .scheme = "http",
                         .authority = "127.0.0.1",
                         .path = "/echo",
                         .headers = h,
                         .nheaders = 1,
                         .body = body,
                         .bodylen = n};
    tp__h2_stream *st;
    tp_errinfo ei;
    assert_int_equal(tp__h2_submit(c.h, &rq, &st, &ei), TP_OK);
    size_t len;
    unsigned char *back = body_of(&c, st, &len);
    assert_int_equal(tp__h2_stream_status(st), 200);
    assert_int_equal(len, n);
    assert_memory_equal(back, body, n);
    free(back);
    free(body);
    tp__h2_stream_free(c.h, st);
    conn_close(&c);
    nghttpd_stop(&e);
}

/* The server's SETTINGS_MAX_CONCURRENT_STREAMS (3) is the capacity once it arrives: a
 * fourth stream is refused with TP_EAGAIN until one ends. */
static void test_capacity_from_settings(void **state)
{
    (void)state;
    nghttpd_env e;
    serve(&e, false, 3);
    conn c = session(&e, NULL);
    assert_false(tp__h2_settings_seen(c.h));
    assert_int_equal(tp__h2_capacity(c.h), TP__H2_ASSUMED_STREAMS);
    tp_errinfo ei;
    assert_int_equal(tp__h2_wait(c.h, NULL, DEADLINE(), &ei), TP_OK); /* preface out */
    H2T_STEP_UNTIL(c.h, tp__h2_settings_seen(c.h), 5000);
    assert_int_equal(tp__h2_capacity(c.h), 3);
    tp__h2_stream *st[3];
    for (int i = 0; i < 3; i++)
        st[i] = get(&c, "/hello");
    tp__h2_request rq = {
        .method = "GET", .scheme = "http", .authority = "127.0.0.1", .path = "/hello"};
    tp__h2_stream *more = NULL;
    assert_int_equal(tp__h2_submit(c.h, &rq, &more, &ei), TP_EAGAIN);
    assert_non_null(strstr(ei.msg, "3 streams of 3"));
    assert_null(more);
    size_t len;
    free(body_of(&c, st[0], &len));
    tp__h2_stream_free(c.h, st[0]);
    assert_int_equal(tp__h2_submit(c.h, &rq, &more, &ei), TP_OK);
    tp__h2_stream_free(c.h, more); /* open: reset, forgotten */
    for (int i = 1; i < 3; i++) {
        free(body_of(&c, st[i], &len));
        assert_int_equal(len, 13);
        tp__h2_stream_free(c.h, st[i]);
    }
    conn_close(&c);
    nghttpd_stop(&e);
}

/* A stream given up while its body is arriving is reset; the connection goes on, its
 * window intact (a later 1 MiB body through a 1 MiB connection window arrives whole). */
static void test_abandoned_stream_keeps_connection(void **state)
{
    (void)state;
    nghttpd_env e;
    serve(&e, false, 0);
    tp__h2_options o = {.stream_window = 1 << 20, .conn_window = 1 << 20};
    conn c = session(&e, &o);
    tp__h2_stream *st = get(&c, "/big");
    H2T_STEP_UNTIL(c.h, tp__h2_stream_buffered(st) >= 100000 || tp__h2_stream_done(st), 5000);
    tp__h2_stream_free(c.h, st); /* unread bytes and all */
    for (int i = 0; i < 2; i++) {
        tp__h2_stream *again = get(&c, "/big");
        size_t len;
        unsigned char *b = body_of(&c, again, &len);
        assert_int_equal(len, NGHTTPD_BIG_SIZE);
        assert_true(nghttpd_big_ok(b, len, 0));
        free(b);
        tp__h2_stream_free(c.h, again);
    }
    conn_close(&c);
    nghttpd_stop(&e);
}

/* Our GOAWAY: no new stream starts (TP_ESTATE), capacity 0. A PING is answered first. */
static void test_ping_then_goaway(void **state)
{
    (void)state;
    nghttpd_env e;
    serve(&e, true, 0);
    conn c = session(&e, NULL);
    tp_errinfo ei;
    assert_int_equal(tp__h2_ping_rtt(c.h), -1);
    assert_int_equal(tp__h2_ping(c.h, &ei), TP_OK);
    assert_int_equal(tp__h2_ping(c.h, &ei), TP_EBUSY);
    H2T_STEP_UNTIL(c.h, !tp__h2_ping_pending(c.h), 5000);
    assert_true(tp__h2_ping_rtt(c.h) > 0);
    assert_true(tp__h2_ping_rtt(c.h) < MS(1000));
    assert_int_equal(tp__h2_goaway(c.h, &ei), TP_OK);
    assert_true(tp__h2_draining(c.h));
    assert_int_equal(tp__h2_capacity(c.h), 0);
    tp__h2_request rq = {
        .method = "GET", .scheme = "https", .authority = "127.0.0.1", .path = "/hello"};
    tp__h2_stream *st = NULL;
    assert_int_equal(tp__h2_submit(c.h, &rq, &st, &ei), TP_ESTATE);
    assert_non_null(strstr(ei.msg, "draining"));
    assert_int_equal(tp__h2_wait(c.h, NULL, DEADLINE(), &ei), TP_OK);
    conn_close(&c);
    nghttpd_stop(&e);
}

/* A response header block over max_header_list fails its stream with TP_ETOOBIG; the
 * connection stays usable for a session with room. */
static void test_header_block_bound(void **state)
{
    (void)state;
    nghttpd_env e;
    serve(&e, false, 0);
    tp__h2_options o = {.max_header_list = 64};
    conn c = session(&e, &o);
    tp__h2_stream *st = get(&c, "/hello");
    tp_errinfo ei;
    assert_int_equal(tp__h2_wait(c.h, st, DEADLINE(), &ei), TP_OK);
    assert_int_equal(tp__h2_stream_result(st, &ei), TP_ETOOBIG);
    assert_non_null(strstr(ei.msg, "over 64 bytes"));
    assert_false(tp__h2_stream_unprocessed(st));
    tp__h2_stream_free(c.h, st);
    assert_int_equal(tp__h2_open_streams(c.h), 0);
    conn_close(&c);
    nghttpd_stop(&e);
}

/* The server dies with streams open: the step reports the connection's end, every open
 * stream fails with it, and nothing takes new streams. */
static void test_server_dies_under_open_streams(void **state)
{
    (void)state;
    nghttpd_env e;
    serve(&e, false, 0);
    tp__h2_options o = {.stream_window = 65536, .conn_window = 65536};
    conn c = session(&e, &o);
    tp__h2_stream *a = get(&c, "/big"), *b = get(&c, "/big");
    tp_errinfo ei;
    H2T_STEP_UNTIL(c.h, tp__h2_stream_buffered(a) + tp__h2_stream_buffered(b) > 0, 5000);
    nghttpd_stop(&e); /* SIGKILL: the kernel closes its sockets */
    tp_err end = tp__h2_wait(c.h, a, DEADLINE(), &ei);
    assert_int_equal(end, TP_OK); /* a is over ... */
    assert_true(tp__h2_stream_done(b));
    assert_int_equal(tp__h2_stream_result(a, &ei), TP_ECONNRESET); /* ... with the connection */
    /* A FIN, or an RST when the killed server had unread bytes of ours: both name it. */
    if (strstr(ei.msg, "closed the connection") == NULL && strstr(ei.msg, "reset") == NULL)
        fail_msg("%s", ei.msg);
    assert_int_equal(tp__h2_stream_result(b, &ei), TP_ECONNRESET);
    assert_false(tp__h2_stream_unprocessed(a)); /* it may have been processed */
    assert_int_equal(tp__h2_capacity(c.h), 0);
    int want;
    assert_int_equal(tp__h2_step(c.h, &want, &ei), TP_ECONNRESET);
    tp__h2_stream_free(c.h, a);
    tp__h2_stream_free(c.h, b);
    conn_close(&c);
}

/* ALPN: a list we cannot send is refused when the context is made; a server that
 * speaks only h2 agrees to "h2" from "h2,http/1.1". */
static void test_alpn_lists(void **state)
{
    (void)state;
    tp__tls_ctx *t = NULL;
    tp_errinfo ei;
    tp__tls_options bad = {.alpn = "h2,,http/1.1"};
    assert_int_equal(tp__tls_ctx_create(&bad, &t, &ei), TP_EINVAL);
    assert_non_null(strstr(ei.msg, "ALPN"));
    tp__tls_options longer = {.alpn = "a-protocol-name-longer-than-31-bytes"};
    assert_int_equal(tp__tls_ctx_create(&longer, &t, &ei), TP_EINVAL);
    assert_null(t);
    nghttpd_env e;
    serve(&e, true, 0);
    tp__stream s;
    assert_int_equal(dial(&e, "h2,http/1.1", &s, &t, &ei), TP_OK);
    assert_string_equal(s.alpn, "h2");
    tp__stream_close(&s);
    tp__tls_ctx_destroy(t);
    nghttpd_stop(&e);
}

static void test_submit_checks_fields(void **state)
{
    (void)state;
    nghttpd_env e;
    serve(&e, false, 0);
    conn c = session(&e, NULL);
    tp__h2_stream *st = NULL;
    tp_errinfo ei;
    static const struct {
        tp__h2_header h;
        const char *why;
    } bad[] = {
        {{"Connection", "keep-alive"}, "lower case"},
        {{"connection", "close"}, "connection-specific"},
        {{"transfer-encoding", "chunked"}, "connection-specific"},
        {{"te", "gzip"}, "TE other than"},
        {{":path", "/x"}, "pseudo-header"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tp__h2_request rq = {.method = "GET",
                             .scheme = "http",
                             .authority = "127.0.0.1",
                             .path = "/hello",
                             .headers = &bad[i].h,
                             .nheaders = 1};
        assert_int_equal(tp__h2_submit(c.h, &rq, &st, &ei), TP_EINVAL);
        assert_non_null(strstr(ei.msg, bad[i].why));
    }
    tp__h2_request none = {.method = "GET", .scheme = "http", .path = "/"};
    assert_int_equal(tp__h2_submit(c.h, &none, &st, &ei), TP_EINVAL);
    assert_int_equal(tp__h2_open_streams(c.h), 0);
    conn_close(&c);
    nghttpd_stop(&e);
}

int main(void)
{
    tu_watchdog(120);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hello_cleartext),
        cmocka_unit_test(test_hello_tls_alpn),
        cmocka_unit_test(test_many_streams_bounded_windows),
        cmocka_unit_test(test_post_body_echoed),
        cmocka_unit_test(test_capacity_from_settings),
        cmocka_unit_test(test_abandoned_stream_keeps_connection),
        cmocka_unit_test(test_ping_then_goaway),
        cmocka_unit_test(test_header_block_bound),
        cmocka_unit_test(test_server_dies_under_open_streams),
        cmocka_unit_test(test_alpn_lists),
        cmocka_unit_test(test_submit_checks_fields),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
