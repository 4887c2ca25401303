/* test_http_parse_req.c: the request side of src/http/parse.h: URL parsing (accepted
 * forms with their exact parts, and every refusal), request head serialisation to the
 * exact byte, header-injection and framing-header refusals, idempotent methods, and
 * the growable buffer. The response reader is in test_http_parse.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "http/parse.h"

typedef struct url_ok {
    const char *in;
    bool tls;
    const char *host;
    bool ipv6;
    uint16_t port;
    const char *target;
} url_ok;

static void test_url_good(void **state)
{
    static const url_ok cases[] = {
        {"http://Example.COM", false, "example.com", false, 80, "/"},
        {"HTTPS://example.com", true, "example.com", false, 443, "/"},
        {"https://example.com:8443/a/b?x=1&y=2#frag", true, "example.com", false, 8443,
         "/a/b?x=1&y=2"},
        {"http://h?q=1", false, "h", false, 80, "/?q=1"},
        {"http://h#only-fragment", false, "h", false, 80, "/"},
        {"http://h/a?b?c#d#e", false, "h", false, 80, "/a?b?c"},
        {"http://h/p%20q", false, "h", false, 80, "/p%20q"},
        {"http://[::1]:8080/x", false, "::1", true, 8080, "/x"},
        {"https://[2001:DB8::A]/", true, "2001:db8::a", true, 443, "/"},
        {"http://127.0.0.1:65535/", false, "127.0.0.1", false, 65535, "/"},
        {"http://h:08080/", false, "h", false, 8080, "/"},
        {"https://h:80/", true, "h", false, 80, "/"},
        {"http://my_host-1.example./", false, "my_host-1.example.", false, 80, "/"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tp__http_url u;
        tp_errinfo ei;
        tp_err rc = tp__http_url_parse(cases[i].in, &u, &ei);
        if (rc != TP_OK)
            fail_msg("\"%s\": %s (%s)", cases[i].in, tp_err_name(rc), ei.msg);
        assert_int_equal(u.tls, cases[i].tls);
        assert_string_equal(u.host, cases[i].host);
        assert_int_equal(u.host_is_ipv6, cases[i].ipv6);
        assert_int_equal(u.port, cases[i].port);
        assert_string_equal(u.target, cases[i].target);
    }
}

typedef struct url_bad {
    const char *in;
    const char *msg_part; /* a word the message must contain */
} url_bad;

static void test_url_bad(void **state)
{
    static const url_bad cases[] = {
        {"", "scheme"},
        {"example.com/path", "scheme"},
        {"//example.com/", "scheme"},
        {"ftp://example.com/", "scheme"},
        {"http:/example.com", "scheme"},
        {"/relative", "scheme"},
        {"http://", "empty host"},
        {"http:///x", "empty host"},
        {"http://:80/", "empty host"},
        {"http://[]/", "empty host"},
        {"http://user:pw@example.com/", "userinfo"},
        {"http://user@example.com/", "userinfo"},
        {"http://h:0/", "port"},
        {"http://h:65536/", "port"},
        {"http://h:99999999999999999999/", "port"},
        {"http://h:/x", "port"},
        {"http://h:8x/", "port"},
        {"http://h:-1/", "port"},
        {"http://h/a b", "space"},
        {"http://h/a\tb", "control"},
        {"http://h/a\r\nHost: evil", "control"},
        {"http://h/\x7f", "control"},
        {"http://h/caf\xc3\xa9", "non-ASCII"},
        {"http://[::1/", "IPv6"},
        {"http://[::1]x/", "IPv6"},
        {"http://[fe80::1%25eth0]/", "zone"},
        {"http://bad!host/", "malformed"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tp__http_url u;
        memset(&u, 0x5a, sizeof u);
        tp_errinfo ei;
        tp_errinfo_clear(&ei);
        tp_err rc = tp__http_url_parse(cases[i].in, &u, &ei);
        if (rc != TP_EINVAL)
            fail_msg("\"%s\": %s, want TP_EINVAL", cases[i].in, tp_err_name(rc));
        assert_int_equal(ei.code, TP_EINVAL);
        if (strstr(ei.msg, cases[i].msg_part) == NULL)
            fail_msg("\"%s\": message \"%s\" lacks \"%s\"", cases[i].in, ei.msg, cases[i].msg_part);
        assert_int_equal(((unsigned char *)&u)[0], 0x5a); /* untouched on failure */
    }
    assert_int_equal(tp__http_url_parse(NULL, &(tp__http_url){0}, NULL), TP_EINVAL);
    assert_int_equal(tp__http_url_parse("http://h/", NULL, NULL), TP_EINVAL);
}

static void test_url_lengths(void **state)
{
    char url[4200];
    tp__http_url u;
    tp_errinfo ei;
    /* Target of exactly 2047 bytes fits, 2048 does not. */
    for (size_t tlen = 2046; tlen <= 2049; tlen++) {
        int n = snprintf(url, sizeof url, "http://h/");
        memset(url + n, 'a', tlen - 1);
        url[(size_t)n + tlen - 1] = '\0';
        tp_err rc = tp__http_url_parse(url, &u, &ei);
        if (tlen <= 2047) {
            assert_int_equal(rc, TP_OK);
            assert_int_equal(strlen(u.target), tlen);
        } else {
            assert_int_equal(rc, TP_EINVAL);
            assert_non_null(strstr(ei.msg, "target"));
        }
    }
    /* Host of 255 bytes fits, 256 does not. */
    for (size_t hlen = 255; hlen <= 256; hlen++) {
        int n = snprintf(url, sizeof url, "http://");
        memset(url + n, 'h', hlen);
        snprintf(url + (size_t)n + hlen, sizeof url - (size_t)n - hlen, "/x");
        assert_int_equal(tp__http_url_parse(url, &u, &ei), hlen == 255 ? TP_OK : TP_EINVAL);
    }
    /* Absurdly long URLs are refused before parsing. */
    char *huge = malloc(70000);
    assert_non_null(huge);
    memcpy(huge, "http://h/", 9);
    memset(huge + 9, 'a', 70000 - 10);
    huge[70000 - 1] = '\0';
    assert_int_equal(tp__http_url_parse(huge, &u, &ei), TP_EINVAL);
    assert_non_null(strstr(ei.msg, "too long"));
    free(huge);
}

/* build: one request head from a URL string; returns the rc, head in *out. */
static tp_err build(tp__buf *out, const char *method, const char *url, const char *const *names,
                    const char *const *values, size_t n, size_t body_len, bool ka, tp_errinfo *ei)
{
    tp__http_url u;
    assert_int_equal(tp__http_url_parse(url, &u, NULL), TP_OK);
    return tp__http_req_build(out, method, &u, names, values, n, body_len, ka, ei);
}

static void expect_head(const char *method, const char *url, const char *const *names,
                        const char *const *values, size_t n, size_t body_len, bool ka,
                        const char *want)
{
    tp__buf b;
    tp__buf_init(&b);
    tp_errinfo ei;
    tp_err rc = build(&b, method, url, names, values, n, body_len, ka, &ei);
    if (rc != TP_OK)
        fail_msg("%s %s: %s (%s)", method, url, tp_err_name(rc), ei.msg);
    assert_int_equal(b.len, strlen(want));
    assert_memory_equal(b.data, want, b.len);
    tp__buf_free(&b);
}

static void test_request_bytes(void **state)
{
    expect_head("GET", "http://Example.com/path?q=1#frag", NULL, NULL, 0, 0, true,
                "GET /path?q=1 HTTP/1.1\r\nHost: example.com\r\n\r\n");
    const char *names[] = {"Accept", "X-Trace-Id", "User-Agent"};
    const char *values[] = {"*/*", "abc 123", "tidepool/0.1"};
    expect_head("POST", "http://example.com:8080/submit", names, values, 3, 5, false,
                "POST /submit HTTP/1.1\r\nHost: example.com:8080\r\nAccept: */*\r\n"
                "X-Trace-Id: abc 123\r\nUser-Agent: tidepool/0.1\r\nContent-Length: 5\r\n"
                "Connection: close\r\n\r\n");
    /* Empty bodies of POST/PUT/PATCH are announced; GET/DELETE without a body are not. */
    expect_head("PUT", "http://h/", NULL, NULL, 0, 0, true,
                "PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n");
    expect_head("PATCH", "http://h/", NULL, NULL, 0, 0, true,
                "PATCH / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n");
    expect_head("DELETE", "http://h/", NULL, NULL, 0, 0, true,
                "DELETE / HTTP/1.1\r\nHost: h\r\n\r\n");
    expect_head("DELETE", "http://h/", NULL, NULL, 0, 12, true,
                "DELETE / HTTP/1.1\r\nHost: h\r\nContent-Length: 12\r\n\r\n");
    /* Default ports are left out of Host, others kept; IPv6 literals in brackets. */
    expect_head("GET", "https://h:443/", NULL, NULL, 0, 0, true,
                "GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    expect_head("GET", "https://h:80/", NULL, NULL, 0, 0, true,
                "GET / HTTP/1.1\r\nHost: h:80\r\n\r\n");
    expect_head("GET", "http://h:443/", NULL, NULL, 0, 0, true,
                "GET / HTTP/1.1\r\nHost: h:443\r\n\r\n");
    expect_head("HEAD", "http://[::1]:8080/x", NULL, NULL, 0, 0, true,
                "HEAD /x HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n");
    expect_head("OPTIONS", "https://[2001:db8::1]/", NULL, NULL, 0, 0, true,
                "OPTIONS / HTTP/1.1\r\nHost: [2001:db8::1]\r\n\r\n");
    const char *empty_n[] = {"X-Empty"}, *empty_v[] = {""};
    expect_head("M-SEARCH", "http://h/", empty_n, empty_v, 1, 0, true,
                "M-SEARCH / HTTP/1.1\r\nHost: h\r\nX-Empty: \r\n\r\n");
}

static void test_request_appends(void **state)
{
    tp__buf b;
    tp__buf_init(&b);
    assert_int_equal(tp__buf_append(&b, "PREFIX|", 7), TP_OK);
    assert_int_equal(build(&b, "GET", "http://h/", NULL, NULL, 0, 0, true, NULL), TP_OK);
    assert_string_equal(b.data, "PREFIX|GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    tp__buf_free(&b);
}

typedef struct refusal {
    const char *method, *name, *value;
    const char *msg_part;
} refusal;

static void test_request_refusals(void **state)
{
    static const refusal cases[] = {
        {"GE T", "X", "1", "method"},
        {"", "X", "1", "method"},
        {"GET\r\nX", "X", "1", "method"},
        {"GET", "Host", "evil.example", "Host"},
        {"GET", "host", "evil.example", "Host"},
        {"GET", "Content-Length", "0", "Content-Length"},
        {"GET", "content-LENGTH", "0", "Content-Length"},
        {"GET", "Transfer-Encoding", "chunked", "Transfer-Encoding"},
        {"GET", "Connection", "keep-alive", "Connection"},
        {"GET", "X-A", "1\r\nX-Injected: 1", "CR or LF"},
        {"GET", "X-A", "1\nX-Injected: 1", "CR or LF"},
        {"GET", "X-A", "1\r", "CR or LF"},
        {"GET", "Bad Name", "1", "token"},
        {"GET", "X-A:", "1", "token"},
        {"GET", "", "1", "token"},
        {"GET", "X\r\nY", "1", "token"},
        {"GET", "X-\xc3\xa9", "1", "token"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tp__buf b;
        tp__buf_init(&b);
        assert_int_equal(tp__buf_append(&b, "keep", 4), TP_OK);
        tp_errinfo ei;
        tp_errinfo_clear(&ei);
        const char *names[] = {"Accept", cases[i].name};
        const char *values[] = {"*/*", cases[i].value};
        tp_err rc = build(&b, cases[i].method, "http://h/", names, values, 2, 0, true, &ei);
        if (rc != TP_EINVAL)
            fail_msg("case %zu: %s, want TP_EINVAL", i, tp_err_name(rc));
        if (strstr(ei.msg, cases[i].msg_part) == NULL)
            fail_msg("case %zu: message \"%s\" lacks \"%s\"", i, ei.msg, cases[i].msg_part);
        assert_int_equal(b.len, 4); /* nothing appended */
        assert_string_equal(b.data, "keep");
        tp__buf_free(&b);
    }
    /* NULL arguments. */
    tp__http_url u;
    assert_int_equal(tp__http_url_parse("http://h/", &u, NULL), TP_OK);
    tp__buf b;
    tp__buf_init(&b);
    assert_int_equal(tp__http_req_build(&b, NULL, &u, NULL, NULL, 0, 0, true, NULL), TP_EINVAL);
    assert_int_equal(tp__http_req_build(&b, "GET", NULL, NULL, NULL, 0, 0, true, NULL), TP_EINVAL);
    assert_int_equal(tp__http_req_build(&b, "GET", &u, NULL, NULL, 1, 0, true, NULL), TP_EINVAL);
    const char *nn[] = {NULL}, *vv[] = {"x"};
    assert_int_equal(tp__http_req_build(&b, "GET", &u, nn, vv, 1, 0, true, NULL), TP_EINVAL);
    /* A hand-filled URL with a line break in the target is refused too. */
    snprintf(u.target, sizeof u.target, "/a\r\nX: y");
    assert_int_equal(tp__http_req_build(&b, "GET", &u, NULL, NULL, 0, 0, true, NULL), TP_EINVAL);
    assert_int_equal(b.len, 0);
    tp__buf_free(&b);
}

static void test_method_idempotent(void **state)
{
    const char *yes[] = {"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"};
    const char *no[] = {"POST", "PATCH", "CONNECT", "get", "", "GETX", NULL};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++)
        assert_true(tp__http_method_idempotent(yes[i]));
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
        assert_false(tp__http_method_idempotent(no[i]));
}

static void test_buf(void **state)
{
    tp__buf b;
    tp__buf_init(&b);
    assert_null(b.data);
    assert_int_equal(tp__buf_append(&b, NULL, 0), TP_OK);
    assert_int_equal(b.len, 0);
    char chunk[1000];
    for (size_t i = 0; i < sizeof chunk; i++)
        chunk[i] = (char)('a' + i % 26);
    for (int i = 0; i < 100; i++)
        assert_int_equal(tp__buf_append(&b, chunk, sizeof chunk), TP_OK);
    assert_int_equal(b.len, 100000);
    assert_true(b.cap > b.len);
    assert_int_equal(b.data[b.len], '\0');
    for (size_t i = 0; i < b.len; i++)
        if (b.data[i] != (char)('a' + (i % 1000) % 26))
            fail_msg("byte %zu differs", i);
    size_t cap = b.cap;
    char *mem = b.data;
    tp__buf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, cap);
    assert_ptr_equal(b.data, mem);
    /* An impossible size fails cleanly and leaves the buffer intact. */
    assert_int_equal(tp__buf_append(&b, "xy", 2), TP_OK);
    assert_int_equal(tp__buf_append(&b, chunk, SIZE_MAX), TP_ENOMEM);
    assert_int_equal(tp__buf_append(&b, chunk, SIZE_MAX - 2), TP_ENOMEM);
    assert_int_equal(b.len, 2);
    assert_string_equal(b.data, "xy");
    tp__buf_free(&b);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);
    tp__buf_free(&b); /* twice is fine */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_good),          cmocka_unit_test(test_url_bad),
        cmocka_unit_test(test_url_lengths),       cmocka_unit_test(test_request_bytes),
        cmocka_unit_test(test_request_appends),   cmocka_unit_test(test_request_refusals),
        cmocka_unit_test(test_method_idempotent), cmocka_unit_test(test_buf),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
