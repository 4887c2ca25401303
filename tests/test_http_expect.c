/* test_http_expect.c: TP_HTTP_EXPECT_CONTINUE in the blocking call and the engine.
 *
 * Against the fixture's nginx: /echo answers "100 Continue" when it starts reading the
 * body, so the body goes at once (well before a 5 s expect_continue_timeout) and comes
 * back intact, from a buffer or from a source of unknown length; a 2 MiB body is
 * refused with 413 before the 100, so the answer comes without the body ever being sent
 * (info.early) and the next request opens a new connection. Against the test server,
 * which ignores Expect (as old servers do): the body goes after the client's wait, the
 * server saw "Expect: 100-continue" and the whole body; a server answering the header
 * at once gets a 1 MiB body never sent (info.early, where without Expect it is usually
 * all in the socket first); a request without a body sends no Expect and does not
 * wait. The nginx cases skip without the fixture. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <tidepool/tidepool.h>

#include "support/http_test_server.h"
#include "support/nginx_env.h"
#include "support/test_util.h"

#define KIB 1024
#define MIB (1024 * 1024)

static nginx_env env;
static bool have_nginx;
static char *body; /* 2 MiB of a pattern */

static char pattern(size_t i)
{
    return (char)('a' + (i * 11 + i / 4093) % 26);
}

typedef struct got {
    bool done;
    tp_err rc;
    int status;
    size_t len;
    bool intact; /* the body is body's first len bytes */
    char msg[256];
    tp_http_response_info info;
    int64_t ms;
} got;

static void on_done(void *ud, tp_err rc, tp_http_response *r, const tp_errinfo *err)
{
    got *g = ud;
    g->done = true;
    g->rc = rc;
    if (rc == TP_OK) {
        g->status = tp_http_response_status(r);
        const char *b = tp_http_response_body(r, &g->len);
        g->intact = g->len <= 2 * MIB && memcmp(b, body, g->len) == 0;
        tp_http_response_get_info(r, &g->info);
    } else if (err != NULL) {
        snprintf(g->msg, sizeof g->msg, "%s", err->msg);
    }
    tp_http_response_free(r);
}

static tp_http_client *client(int64_t expect_timeout)
{
    tp_http_client_options o;
    tp_http_client_options_init(&o);
    o.expect_continue_timeout = expect_timeout;
    tp_http_client *c = NULL;
    tp_errinfo e;
    assert_int_equal(tp_http_client_create(&o, &c, &e), TP_OK);
    return c;
}

/* A source of unknown length giving body's first total bytes. */
typedef struct source {
    size_t total, given;
} source;

static int produce(void *ud, char *buf, size_t cap, size_t *len)
{
    source *s = ud;
    size_t n = s->total - s->given < cap ? s->total - s->given : cap;
    memcpy(buf, body + s->given, n);
    s->given += n;
    *len = n;
    return 0;
}

static got run_flags(tp_http_client *c, bool engine, const char *method, const char *url,
                     size_t len, source *src, unsigned flags)
{
    tp_http_request req = {.method = method,
                           .url = url,
                           .body = len > 0 ? body : NULL,
                           .body_len = len,
                           .timeout = 20 * TP_NSEC_PER_SEC,
                           .flags = flags};
    if (src != NULL) {
        req.body = NULL;
        req.body_len = 0;
        req.body_source = produce;
        req.body_source_ud = src;
        req.body_source_len = -1;
    }
    got g = {0};
    tp_errinfo err = {0};
    int64_t t0 = tu_now_ns();
    if (!engine) {
        tp_http_response *r = NULL;
        tp_err rc = tp_http_client_do(c, &req, &r, &err);
        on_done(&g, rc, r, &err);
    } else {
        tp_http_engine *e = NULL;
        assert_int_equal(tp_http_engine_create(c, &e, &err), TP_OK);
        assert_int_equal(tp_http_engine_submit(e, &req, on_done, &g, NULL, &err), TP_OK);
        while (!g.done && tu_now_ns() - t0 < 25 * TP_NSEC_PER_SEC)
            (void)tp_http_engine_poll(e, 50 * TP_NSEC_PER_MSEC);
        tp_http_engine_destroy(e);
    }
    g.ms = tu_ms_since(t0);
    return g;
}

static got run(tp_http_client *c, bool engine, const char *method, const char *url, size_t len,
               source *src)
{
    return run_flags(c, engine, method, url, len, src, TP_HTTP_EXPECT_CONTINUE);
}

static void nginx_url(char *url, size_t cap, const char *path)
{
    snprintf(url, cap, "http://127.0.0.1:%u%s", (unsigned)env.http_port, path);
}

static void test_nginx_continues(void **state)
{
    (void)state;
    if (!have_nginx)
        skip();
    char url[128];
    nginx_url(url, sizeof url, "/echo");
    tp_http_client *c = client(5 * TP_NSEC_PER_SEC);
    for (int engine = 0; engine < 2; engine++)
        for (int from_source = 0; from_source < 2; from_source++) {
            source src = {.total = 512 * KIB};
            got g = run(c, engine, "POST", url, 512 * KIB, from_source ? &src : NULL);
            if (g.rc != TP_OK)
                fail_msg("%s: %s: %s", engine ? "engine" : "blocking", tp_err_name(g.rc), g.msg);
            assert_int_equal(g.status, 200);
            assert_int_equal(g.len, 512 * KIB);
            assert_true(g.intact);
            assert_false(g.info.early);
            /* nginx's 100 sent the body, not the end of the 5 s wait. */
            assert_true(g.ms < 2500);
            printf("%s, %s: 512 KiB echoed in %lld ms\n", engine ? "engine" : "blocking",
                   from_source ? "source" : "buffer", (long long)g.ms);
        }
    tp_http_client_destroy(c);
}

static void test_nginx_refuses_before_the_body(void **state)
{
    (void)state;
    if (!have_nginx)
        skip();
    char url[128];
    nginx_url(url, sizeof url, "/echo");
    tp_http_client *c = client(5 * TP_NSEC_PER_SEC);
    for (int engine = 0; engine < 2; engine++) {
        got g = run(c, engine, "POST", url, 2 * MIB, NULL); /* /echo takes 1 MiB at most */
        assert_int_equal(g.rc, TP_OK);
        assert_int_equal(g.status, 413);
        assert_true(g.info.early); /* answered before a byte of the body went */
        assert_false(g.info.keep_alive);
        assert_true(g.ms < 2500);
        /* That connection was closed, not reused. */
        got next = run(c, engine, "POST", url, 100, NULL);
        assert_int_equal(next.rc, TP_OK);
        assert_int_equal(next.status, 200);
        assert_true(next.intact);
        assert_false(next.info.reused);
    }
    tp_http_client_destroy(c);
}

static void test_silent_server_gets_the_body_after_the_wait(void **state)
{
    (void)state;
    hts_options so;
    hts_options_init(&so);
    hts_server *srv = NULL;
    assert_int_equal(hts_start(&so, &srv), 0);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/upload", (unsigned)hts_port(srv));
    tp_http_client *c = client(300 * TP_NSEC_PER_MSEC);
    static char seen[64 * KIB + 4096];
    /* The same request without the flag first: a head remembered from it (the engine
     * keeps the last header-less request's) must not stand in for the one with Expect. */
    got plain = run_flags(c, false, "PUT", url, 64 * KIB, NULL, 0);
    assert_int_equal(plain.rc, TP_OK);
    hts_last_request(srv, seen, sizeof seen);
    assert_null(strstr(seen, "Expect"));
    for (int engine = 0; engine < 2; engine++) {
        got g = run(c, engine, "PUT", url, 64 * KIB, NULL);
        assert_int_equal(g.rc, TP_OK);
        assert_int_equal(g.status, 200);
        assert_false(g.info.early);
        assert_true(g.ms >= 290); /* it waited for a 100 that never came */
        assert_true(g.ms < 3000);
        size_t n = hts_last_request(srv, seen, sizeof seen);
        assert_non_null(strstr(seen, "\r\nExpect: 100-continue\r\n"));
        const char *end = strstr(seen, "\r\n\r\n");
        assert_non_null(end);
        assert_int_equal(n - (size_t)(end + 4 - seen), 64 * KIB);
        assert_memory_equal(end + 4, body, 64 * KIB);
    }
    /* No body: no Expect, no wait. */
    for (int engine = 0; engine < 2; engine++) {
        tp_http_client *slow = client(3 * TP_NSEC_PER_SEC);
        got g = run(slow, engine, "GET", url, 0, NULL);
        assert_int_equal(g.rc, TP_OK);
        assert_true(g.ms < 2000);
        hts_last_request(srv, seen, sizeof seen);
        assert_null(strstr(seen, "Expect"));
        tp_http_client_destroy(slow);
    }
    tp_http_client_destroy(c);
    hts_stop(srv);
}

static void test_early_server_never_gets_the_body(void **state)
{
    (void)state;
    hts_options so;
    hts_options_init(&so);
    so.behavior.mode = HTS_EARLY_RESPONSE; /* a 413 as soon as the header is in */
    hts_server *srv = NULL;
    assert_int_equal(hts_start(&so, &srv), 0);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/upload", (unsigned)hts_port(srv));
    tp_http_client *c = client(5 * TP_NSEC_PER_SEC);
    for (int engine = 0; engine < 2; engine++) {
        got g = run(c, engine, "POST", url, 1 * MIB, NULL);
        assert_int_equal(g.rc, TP_OK);
        assert_int_equal(g.status, 413);
        assert_true(g.info.early); /* a 1 MiB body without Expect is often all sent first */
        assert_false(g.info.retried);
        assert_true(g.ms < 2500);
    }
    assert_int_equal(hts_connections(srv), 2);
    tp_http_client_destroy(c);
    hts_stop(srv);
}

int main(void)
{
    body = malloc(2 * MIB);
    if (body == NULL)
        return 1;
    for (size_t i = 0; i < 2 * MIB; i++)
        body[i] = pattern(i);
    have_nginx = nginx_env_load(&env) == 0;
    tu_watchdog(120);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nginx_continues),
        cmocka_unit_test(test_nginx_refuses_before_the_body),
        cmocka_unit_test(test_silent_server_gets_the_body_after_the_wait),
        cmocka_unit_test(test_early_server_never_gets_the_body),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    free(body);
    return rc;
}
