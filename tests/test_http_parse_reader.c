/* test_http_parse_reader.c: targeted tests of the HTTP/1.1 response reader beyond the
 * table of framing cases in test_http_parse.c: header storage and look-up (duplicates,
 * trimming, growth while headers arrive byte by byte, interim 1xx headers forgotten),
 * trailers not kept, the body callback stopping the transfer, sticky errors, the eof
 * messages, NUL bytes in values, header caps both ours and http-parser's, init. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cmocka.h>

#include "http/parse.h"

#define DEF_MAX_HDR 8192

static tp_err feed_all(tp__http_resp *r, const char *s, size_t *used)
{
    return tp__http_resp_feed(r, s, strlen(s), used, NULL);
}

static void test_headers_kept(void **state)
{
    tp__http_resp r;
    tp__http_resp_init(&r, "GET", DEF_MAX_HDR, NULL, NULL);
    /* Enough headers to make the store and the index grow several times. */
    char in[4096];
    int n = snprintf(in, sizeof in,
                     "HTTP/1.1 100 Continue\r\nX-Interim: yes\r\n\r\n"
                     "HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nset-cookie: b=2\r\n"
                     "X-Space:   padded \t\r\nX-Empty:\r\n");
    for (int i = 0; i < 40; i++)
        n += snprintf(in + n, sizeof in - (size_t)n, "X-H%d: value-%d\r\n", i, i);
    n += snprintf(in + n, sizeof in - (size_t)n, "Content-Length: 3\r\n\r\nabc");
    size_t used;
    /* One byte at a time: header pieces arrive split everywhere. */
    for (int i = 0; i < n; i++)
        assert_int_equal(tp__http_resp_feed(&r, in + i, 1, &used, NULL), TP_OK);
    assert_true(r.done);
    assert_string_equal(tp__http_resp_header(&r, "SET-COOKIE"), "a=1");
    assert_string_equal(tp__http_resp_header(&r, "x-space"), "padded");
    assert_string_equal(tp__http_resp_header(&r, "X-Empty"), "");
    assert_string_equal(tp__http_resp_header(&r, "x-h39"), "value-39");
    assert_string_equal(tp__http_resp_header(&r, "Content-Length"), "3");
    assert_null(tp__http_resp_header(&r, "X-Interim")); /* the 1xx's headers are gone */
    assert_null(tp__http_resp_header(&r, "X-H"));
    assert_int_equal(r.nhdrs, 45);
    size_t cookies = 0;
    for (size_t i = 0; i < r.nhdrs; i++)
        if (strcasecmp(r.hdrs[i].name, "set-cookie") == 0)
            cookies++;
    assert_int_equal(cookies, 2);
    assert_int_equal(r.hdrs[1].value_len, 3);
    assert_string_equal(r.hdrs[1].value, "b=2");
    tp__http_resp_free(&r);
    tp__http_resp_free(&r); /* idempotent */
}

static void test_trailers_not_kept(void **state)
{
    tp__http_resp r;
    tp__http_resp_init(&r, "GET", DEF_MAX_HDR, NULL, NULL);
    size_t used;
    assert_int_equal(feed_all(&r,
                              "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                              "1\r\na\r\n0\r\nConnection: close\r\nX-T: 1\r\n\r\n",
                              &used),
                     TP_OK);
    assert_true(r.done);
    /* A trailer cannot pose as a header. (http-parser does act on a trailing
     * "Connection: close": closing is the safe side, so that is left alone.) */
    assert_null(tp__http_resp_header(&r, "X-T"));
    assert_null(tp__http_resp_header(&r, "Connection"));
    assert_false(r.keep_alive);
    assert_int_equal(r.body_bytes, 1);
    tp__http_resp_free(&r);
}

static int stop_at_first(void *ud, const char *data, size_t len)
{
    (*(int *)ud)++;
    return 1;
}

static void test_body_callback_stop_and_sticky(void **state)
{
    int calls = 0;
    tp__http_resp r;
    tp__http_resp_init(&r, "GET", DEF_MAX_HDR, stop_at_first, &calls);
    tp_errinfo ei;
    size_t used;
    const char *in = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789";
    assert_int_equal(tp__http_resp_feed(&r, in, strlen(in), &used, &ei), TP_ECANCELED);
    assert_int_equal(ei.code, TP_ECANCELED);
    assert_int_equal(calls, 1);
    assert_false(r.done);
    /* Sticky: nothing more is consumed, eof gives the same error. */
    assert_int_equal(tp__http_resp_feed(&r, "x", 1, &used, &ei), TP_ECANCELED);
    assert_int_equal(used, 0);
    assert_int_equal(tp__http_resp_eof(&r, &ei), TP_ECANCELED);
    assert_int_equal(ei.code, TP_ECANCELED);
    assert_int_equal(calls, 1);
    tp__http_resp_free(&r);
}

static void test_sticky_parse_error(void **state)
{
    tp__http_resp r;
    tp__http_resp_init(&r, "GET", DEF_MAX_HDR, NULL, NULL);
    tp_errinfo ei;
    size_t used;
    const char *bad = "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n";
    assert_int_equal(tp__http_resp_feed(&r, bad, strlen(bad), &used, &ei), TP_EPROTO);
    assert_non_null(strstr(ei.msg, "Content-Length"));
    const char *more = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    tp_errinfo_clear(&ei);
    assert_int_equal(tp__http_resp_feed(&r, more, strlen(more), &used, &ei), TP_EPROTO);
    assert_int_equal(used, 0);
    assert_int_equal(ei.code, TP_EPROTO);
    assert_false(r.done);
    tp__http_resp_free(&r);
}

/* http-parser passes NUL bytes in values; the reader refuses them, and a refused
 * header is never visible. (Found by the fuzzer.) */
static void test_nul_in_header_value(void **state)
{
    static const char in[] = "HTTP/1.1 200 OK\r\nX-A: 1\r\nTransfer-Encoding:\0chunked\r\n"
                             "Content-Length: 3\r\n\r\nabc";
    tp__http_resp r;
    tp__http_resp_init(&r, "GET", DEF_MAX_HDR, NULL, NULL);
    tp_errinfo ei;
    size_t used;
    assert_int_equal(tp__http_resp_feed(&r, in, sizeof in - 1, &used, &ei), TP_EPROTO);
    assert_non_null(strstr(ei.msg, "NUL"));
    assert_string_equal(tp__http_resp_header(&r, "X-A"), "1");
    assert_null(tp__http_resp_header(&r, "Transfer-Encoding"));
    tp__http_resp_free(&r);
}

static void test_eof_messages(void **state)
{
    tp__http_resp r;
    tp_errinfo ei;
    tp__http_resp_init(&r, "GET", DEF_MAX_HDR, NULL, NULL);
    assert_int_equal(tp__http_resp_eof(&r, &ei), TP_ECONNRESET);
    assert_non_null(strstr(ei.msg, "without sending a response"));
    tp__http_resp_free(&r);

    /* Leading blank lines are not a response either (http-parser skips them). */
    size_t used;
    tp__http_resp_init(&r, "GET", DEF_MAX_HDR, NULL, NULL);
    assert_int_equal(tp__http_resp_feed(&r, "\r\n", 2, &used, NULL), TP_OK);
    assert_int_equal(tp__http_resp_eof(&r, &ei), TP_ECONNRESET);
    assert_non_null(strstr(ei.msg, "without sending a response"));
    tp__http_resp_free(&r);

    tp__http_resp_init(&r, "GET", DEF_MAX_HDR, NULL, NULL);
    assert_int_equal(feed_all(&r, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab", &used), TP_OK);
    assert_int_equal(tp__http_resp_eof(&r, &ei), TP_ECONNRESET);
    assert_non_null(strstr(ei.msg, "after 2 body bytes"));
    assert_int_equal(tp__http_resp_eof(&r, &ei), TP_ECONNRESET); /* sticky */
    tp__http_resp_free(&r);

    /* A complete message: eof is fine, and feeding after done consumes nothing. */
    tp__http_resp_init(&r, "GET", DEF_MAX_HDR, NULL, NULL);
    assert_int_equal(feed_all(&r, "HTTP/1.1 204 No Content\r\n\r\n", &used), TP_OK);
    assert_true(r.done);
    assert_int_equal(tp__http_resp_feed(&r, "HTTP", 4, &used, NULL), TP_OK);
    assert_int_equal(used, 0);
    assert_int_equal(tp__http_resp_eof(&r, NULL), TP_OK);
    tp__http_resp_free(&r);
}

static void test_large_headers(void **state)
{
    /* Many headers, cap exceeded at some header well past the first: TP_ETOOBIG, both
     * from our cap and from http-parser's own 80 KiB limit when ours is larger. */
    size_t cap = 200 * 1024, n = 0;
    char *in = malloc(cap);
    assert_non_null(in);
    n += (size_t)snprintf(in, cap, "HTTP/1.1 200 OK\r\n");
    while (n < 150 * 1024)
        n += (size_t)snprintf(in + n, cap - n, "X-Filler-%zu: %0100d\r\n", n, 7);
    n += (size_t)snprintf(in + n, cap - n, "Content-Length: 0\r\n\r\n");
    size_t limits[] = {1024, 16 * 1024, 1024 * 1024};
    for (size_t i = 0; i < 3; i++) {
        tp__http_resp r;
        tp_errinfo ei;
        size_t used;
        tp__http_resp_init(&r, "GET", limits[i], NULL, NULL);
        assert_int_equal(tp__http_resp_feed(&r, in, n, &used, &ei), TP_ETOOBIG);
        assert_true(used < n);
        assert_true(r.header_bytes <= limits[i]);
        tp__http_resp_free(&r);
    }
    free(in);
}

static void test_init_defaults(void **state)
{
    tp__http_resp r;
    tp__http_resp_init(&r, NULL, 100, NULL, NULL);
    assert_false(r.head);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.content_length, -1);
    assert_int_equal(r.keepalive_timeout_s, -1);
    assert_int_equal(r.err, TP_OK);
    assert_null(tp__http_resp_header(&r, "Anything"));
    size_t used = 99;
    assert_int_equal(tp__http_resp_feed(&r, "", 0, &used, NULL), TP_OK);
    assert_int_equal(used, 0);
    tp__http_resp_free(&r);
    tp__http_resp_init(&r, "HEAD", 100, NULL, NULL);
    assert_true(r.head);
    tp__http_resp_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_headers_kept),
        cmocka_unit_test(test_trailers_not_kept),
        cmocka_unit_test(test_body_callback_stop_and_sticky),
        cmocka_unit_test(test_sticky_parse_error),
        cmocka_unit_test(test_nul_in_header_value),
        cmocka_unit_test(test_eof_messages),
        cmocka_unit_test(test_large_headers),
        cmocka_unit_test(test_init_defaults),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
