/* test_http_parse.c: the HTTP/1.1 response reader (src/http/response.c, resp_headers.c)
 * on top of http-parser: every framing rule of RFC 9112 6.3 the client relies on, each
 * ambiguity it must refuse, size caps, eof handling, sticky errors, and the property
 * that the outcome does not depend on how the bytes are split across feeds (every case
 * is run whole, one byte at a time, and in 2-, 3- and 7-byte pieces).
 * Targeted reader tests (header storage, trailers, stop, sticky errors, eof messages,
 * large headers) are in test_http_parse_reader.c; URL parsing and request serialisation
 * in test_http_parse_req.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cmocka.h>

#include "http/parse.h"

/* Error cases list only the fields up to the expected error; the rest are zero. */
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

#define NONE (-1)
#define DEF_MAX_HDR 8192

/* One response case and its exact expected outcome. */
typedef struct rcase {
    const char *name;
    const char *method; /* "GET" unless given */
    const char *in;
    bool eof;   /* signal end of stream after the bytes */
    tp_err rc;  /* the first error of feed, else eof's result, else TP_OK */
    int status; /* checked when rc is TP_OK */
    bool done;
    bool keep_alive;
    const char *body;
    int64_t content_length;
    int64_t ka_timeout;
    size_t unused;  /* trailing bytes not consumed (rc TP_OK only) */
    size_t max_hdr; /* 0: DEF_MAX_HDR */
} rcase;

static const rcase k_cases[] = {
    {"content-length", NULL, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", false, TP_OK, 200,
     true, true, "hello", 5, NONE, 0, 0},
    {"content-length 0", NULL, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false, TP_OK, 200,
     true, true, "", 0, NONE, 0, 0},
    {"content-length trailing OWS", NULL, "HTTP/1.1 200 OK\r\nContent-Length: 2  \r\n\r\nok", false,
     TP_OK, 200, true, true, "ok", 2, NONE, 0, 0},
    {"chunked, extensions, trailers", NULL,
     "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;name=val\r\nhello\r\n"
     "6;x;y=\"q\"\r\n world\r\n0\r\nX-Trailer: t\r\nX-Other: u\r\n\r\n",
     false, TP_OK, 200, true, true, "hello world", NONE, NONE, 0, 0},
    {"chunked after gzip (two headers)", NULL,
     "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n"
     "3\r\nabc\r\n0\r\n\r\n",
     false, TP_OK, 200, true, true, "abc", NONE, NONE, 0, 0},
    {"read until close, eof completes", NULL, "HTTP/1.1 200 OK\r\n\r\nabc", true, TP_OK, 200, true,
     false, "abc", NONE, NONE, 0, 0},
    {"read until close, no eof yet", NULL, "HTTP/1.1 200 OK\r\n\r\nabc", false, TP_OK, 200, false,
     false, "abc", NONE, NONE, 0, 0},
    {"TE without chunked: until close", NULL,
     "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nzz", true, TP_OK, 200, true, false, "zz",
     NONE, NONE, 0, 0},
    {"TE chunked not last: until close", NULL,
     "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n1\r\nz", true, TP_OK, 200, true,
     false, "1\r\nz", NONE, NONE, 0, 0},
    {"HEAD with Content-Length", "HEAD", "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", false,
     TP_OK, 200, true, true, "", 100, NONE, 0, 0},
    {"HEAD with chunked", "HEAD", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", false,
     TP_OK, 200, true, true, "", NONE, NONE, 0, 0},
    {"204", NULL, "HTTP/1.1 204 No Content\r\n\r\n", false, TP_OK, 204, true, true, "", NONE, NONE,
     0, 0},
    {"304 with Content-Length", NULL, "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n",
     false, TP_OK, 304, true, true, "", 10, NONE, 0, 0},
    {"100 Continue then 200", NULL,
     "HTTP/1.1 100 Continue\r\nX-Interim: 1\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
     false, TP_OK, 200, true, true, "ok", 2, NONE, 0, 0},
    {"103 with Content-Length then 204", NULL,
     "HTTP/1.1 103 Early Hints\r\nContent-Length: 3\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n", false,
     TP_OK, 204, true, true, "", NONE, NONE, 0, 0},
    {"HTTP/1.0 without keep-alive", NULL, "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", false,
     TP_OK, 200, true, false, "ok", 2, NONE, 0, 0},
    {"HTTP/1.0 with keep-alive", NULL,
     "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok", false, TP_OK, 200,
     true, true, "ok", 2, NONE, 0, 0},
    {"HTTP/1.0 chunked: not reused", NULL,
     "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n"
     "2\r\nok\r\n0\r\n\r\n",
     false, TP_OK, 200, true, false, "ok", NONE, NONE, 0, 0},
    {"HTTP/1.1 Connection: close", NULL,
     "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", false, TP_OK, 200, true,
     false, "ok", 2, NONE, 0, 0},
    {"Connection list with close", NULL,
     "HTTP/1.1 200 OK\r\nConnection: foo, close\r\nContent-Length: 0\r\n\r\n", false, TP_OK, 200,
     true, false, "", 0, NONE, 0, 0},
    {"Keep-Alive timeout", NULL,
     "HTTP/1.1 200 OK\r\nKeep-Alive: timeout=5, max=100\r\nContent-Length: 0\r\n\r\n", false, TP_OK,
     200, true, true, "", 0, 5, 0, 0},
    {"Keep-Alive spaces, quotes, shortest wins", NULL,
     "HTTP/1.1 200 OK\r\nKeep-Alive: max=3, Timeout = \"30\"\r\nKeep-Alive: timeout=7\r\n"
     "Content-Length: 0\r\n\r\n",
     false, TP_OK, 200, true, true, "", 0, 7, 0, 0},
    {"Keep-Alive timeout capped at a day", NULL,
     "HTTP/1.1 200 OK\r\nKeep-Alive: timeout=99999999999999999999999\r\nContent-Length: 0\r\n\r\n",
     false, TP_OK, 200, true, true, "", 0, 86400, 0, 0},
    {"Keep-Alive bad timeout ignored", NULL,
     "HTTP/1.1 200 OK\r\nKeep-Alive: timeout=5s, timeout=-1\r\nContent-Length: 0\r\n\r\n", false,
     TP_OK, 200, true, true, "", 0, NONE, 0, 0},
    {"duplicate Content-Length, same value", NULL,
     "HTTP/1.1 200 OK\r\nContent-Length: 3\r\ncontent-length: 3\r\n\r\nabc", false, TP_OK, 200,
     true, true, "abc", 3, NONE, 0, 0},
    {"duplicate Content-Length, different", NULL,
     "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", false, TP_EPROTO},
    {"duplicate Content-Length, last header differs", NULL,
     "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nX-A: b\r\nContent-Length: 30\r\n\r\nabc", false,
     TP_EPROTO},
    {"Content-Length list", NULL, "HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\n\r\nabc", false,
     TP_EPROTO},
    {"CL then TE", NULL,
     "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: "
     "chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
     false, TP_EPROTO},
    {"TE then CL", NULL,
     "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", false,
     TP_EPROTO},
    {"CL with TE gzip", NULL,
     "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nX: y\r\nContent-Length: 3\r\n\r\nabc", false,
     TP_EPROTO},
    {"CL with TE, HEAD", "HEAD",
     "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", false,
     TP_EPROTO},
    {"empty Transfer-Encoding", NULL, "HTTP/1.1 200 OK\r\nTransfer-Encoding: \r\n\r\n", false,
     TP_EPROTO},
    {"invalid CL letters", NULL, "HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n", false,
     TP_EPROTO},
    {"invalid CL sign", NULL, "HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\nhello", false,
     TP_EPROTO},
    {"invalid CL negative", NULL, "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", false,
     TP_EPROTO},
    {"invalid CL overflow", NULL, "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
     false, TP_EPROTO},
    {"invalid CL above INT64_MAX", NULL,
     "HTTP/1.1 200 OK\r\nContent-Length: 9223372036854775808\r\n\r\n", false, TP_EPROTO},
    {"invalid CL empty", NULL, "HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\n", false, TP_EPROTO},
    {"invalid CL inner space", NULL, "HTTP/1.1 200 OK\r\nContent-Length: 1 2\r\n\r\n", false,
     TP_EPROTO},
    {"bad chunk size", NULL,
     "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", false,
     TP_EPROTO},
    {"eof mid-body (Content-Length)", NULL, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
     true, TP_ECONNRESET},
    {"eof mid-body (chunked)", NULL, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
     true, TP_ECONNRESET},
    {"eof mid-header", NULL, "HTTP/1.1 200 OK\r\nContent-Le", true, TP_ECONNRESET},
    {"eof after 100 Continue", NULL, "HTTP/1.1 100 Continue\r\n\r\n", true, TP_ECONNRESET},
    {"eof before any byte", NULL, "", true, TP_ECONNRESET},
    {"garbage instead of a status line", NULL, "SSH-2.0-OpenSSH_9.2\r\n\r\n", false, TP_EPROTO},
    {"HTTP/0.9-style body", NULL, "<html>hello</html>", true, TP_EPROTO},
    {"101 refused", NULL, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n", false,
     TP_EPROTO},
    {"one-digit status", NULL, "HTTP/1.1 2 OK\r\nContent-Length: 0\r\n\r\n", false, TP_EPROTO},
    {"HTTP/2.0 status line", NULL, "HTTP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n", false,
     TP_EPROTO},
    {"space before colon", NULL, "HTTP/1.1 200 OK\r\nContent-Length : 3\r\n\r\nabc", false,
     TP_EPROTO},
    {"space in a header name", NULL, "HTTP/1.1 200 OK\r\nX Y: 1\r\nContent-Length: 0\r\n\r\n",
     false, TP_EPROTO},
    {"space before colon, TE", NULL,
     "HTTP/1.1 200 OK\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n", false, TP_EPROTO},
    {"bytes after the message not consumed", NULL,
     "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n\r\n", false, TP_OK, 200,
     true, true, "ok", 2, NONE, 19},
    {"bytes after a chunked message not consumed", NULL,
     "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nXYZ", false, TP_OK, 200, true,
     true, "", NONE, NONE, 3},
    {"bytes after a 204 not consumed", NULL, "HTTP/1.1 204 No Content\r\n\r\nabcd", false, TP_OK,
     204, true, true, "", NONE, NONE, 4},
    {"header size cap", NULL,
     "HTTP/1.1 200 OK\r\nX-A: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n"
     "X-B: bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\r\nContent-Length: 0\r\n\r\n",
     false, TP_ETOOBIG, 0, false, false, NULL, 0, 0, 0, 80},
    {"header exactly at the cap", NULL, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false,
     TP_OK, 200, true, true, "", 0, NONE, 0, 38},
    {"header one byte over the cap", NULL, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false,
     TP_ETOOBIG, 0, false, false, NULL, 0, 0, 0, 37},
    {"oversized status line", NULL,
     "HTTP/1.1 200 OKOKOKOKOKOKOKOKOKOKOKOKOKOKOKOKOKOKOKOKOKOKOKOKOKOKOKOKOKOKOKOKOKOKOKOK"
     "OKOKOKOKOKOKOKOKOKOKOKOKOKOKOKOKOKOKOKOKOKOKOKOKOKOKOK\r\n\r\n",
     false, TP_ETOOBIG, 0, false, false, NULL, 0, 0, 0, 100},
    {"trailers count against the cap", NULL,
     "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n"
     "X-Trailer: ttttttttttttttttttttttttttttttttttttttttttttttttttt\r\n\r\n",
     false, TP_ETOOBIG, 0, false, false, NULL, 0, 0, 0, 100},
};
#define N_CASES (sizeof k_cases / sizeof k_cases[0])

typedef struct outcome {
    tp_err rc;
    int status;
    bool done, headers_done, keep_alive;
    int64_t content_length, ka_timeout;
    uint64_t body_bytes;
    size_t used;
    char body[512];
    size_t body_len;
    char msg[TP_ERRMSG_SIZE];
} outcome;

static int collect(void *ud, const char *data, size_t len)
{
    outcome *o = ud;
    assert_true(o->body_len + len < sizeof o->body);
    memcpy(o->body + o->body_len, data, len);
    o->body_len += len;
    return 0;
}

/* run: feeds in pieces of step bytes (0: all at once), keeps feeding after done (to
 * check nothing more is consumed), then eof if asked. */
static void run(const rcase *c, size_t step, outcome *o)
{
    memset(o, 0, sizeof *o);
    tp__http_resp r;
    tp_errinfo ei;
    tp_errinfo_clear(&ei);
    tp__http_resp_init(&r, c->method ? c->method : "GET", c->max_hdr ? c->max_hdr : DEF_MAX_HDR,
                       collect, o);
    size_t len = strlen(c->in), off = 0;
    tp_err rc = TP_OK;
    while (off < len && rc == TP_OK) {
        size_t n = step == 0 || step > len - off ? len - off : step, used = 0;
        rc = tp__http_resp_feed(&r, c->in + off, n, &used, &ei);
        assert_true(used <= n);
        if (rc == TP_OK && used < n)
            assert_true(r.done); /* only a complete message leaves bytes unconsumed */
        o->used += used;
        off += n;
    }
    if (rc == TP_OK && c->eof)
        rc = tp__http_resp_eof(&r, &ei);
    o->rc = rc;
    if (rc != TP_OK) {
        assert_int_equal(ei.code, rc);
        assert_true(ei.msg[0] != '\0');
        snprintf(o->msg, sizeof o->msg, "%s", ei.msg);
        assert_int_equal(r.err, rc);
    }
    o->status = r.status;
    o->done = r.done;
    o->headers_done = r.headers_done;
    o->keep_alive = r.keep_alive;
    o->content_length = r.content_length;
    o->ka_timeout = r.keepalive_timeout_s;
    o->body_bytes = r.body_bytes;
    tp__http_resp_free(&r);
}

static void check_case(const rcase *c, const outcome *o)
{
    if (o->rc != c->rc)
        fail_msg("case \"%s\": got %s (%s), want %s", c->name, tp_err_name(o->rc), o->msg,
                 tp_err_name(c->rc));
    if (c->rc != TP_OK)
        return;
    assert_int_equal(o->status, c->status);
    assert_int_equal(o->done, c->done);
    assert_true(o->headers_done);
    if (c->done)
        assert_int_equal(o->keep_alive, c->keep_alive);
    assert_int_equal(o->content_length, c->content_length);
    assert_int_equal(o->ka_timeout, c->ka_timeout);
    assert_int_equal(o->body_len, strlen(c->body));
    assert_memory_equal(o->body, c->body, o->body_len);
    assert_int_equal(o->body_bytes, o->body_len);
    assert_int_equal(o->used, strlen(c->in) - c->unused);
}

static void test_response_cases(void **state)
{
    for (size_t i = 0; i < N_CASES; i++) {
        outcome o;
        run(&k_cases[i], 0, &o);
        check_case(&k_cases[i], &o);
    }
}

/* The same outcome, field by field, whatever the split. */
static void test_response_cases_split(void **state)
{
    static const size_t steps[] = {1, 2, 3, 7};
    for (size_t i = 0; i < N_CASES; i++) {
        outcome whole;
        run(&k_cases[i], 0, &whole);
        for (size_t s = 0; s < sizeof steps / sizeof steps[0]; s++) {
            outcome o;
            run(&k_cases[i], steps[s], &o);
            if (o.rc != whole.rc)
                fail_msg("case \"%s\" in %zu-byte pieces: %s (%s), whole: %s", k_cases[i].name,
                         steps[s], tp_err_name(o.rc), o.msg, tp_err_name(whole.rc));
            check_case(&k_cases[i], &o);
            assert_int_equal(o.status, whole.status);
            assert_int_equal(o.done, whole.done);
            assert_int_equal(o.headers_done, whole.headers_done);
            assert_int_equal(o.keep_alive, whole.keep_alive);
            assert_int_equal(o.body_bytes, whole.body_bytes);
            if (o.rc == TP_OK)
                assert_int_equal(o.used, whole.used);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_response_cases),
        cmocka_unit_test(test_response_cases_split),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
