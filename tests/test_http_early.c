/* test_http_early.c: a server that answers before the request body is in (413, 401:
 * RFC 9112 section 9.5), in the blocking call and in the engine, with 1 MiB and 16 MiB
 * bodies, the server then either closing with the body unread (its kernel resets the
 * connection) or reading and dropping the rest (a lingering close, as nginx does).
 *
 * The caller gets the server's answer (status, body, info.early), not TP_ECONNRESET;
 * the rest of the body is not sent; the connection is never reused (the next request
 * opens a new one); nothing is retried. Before the client watched for an answer while
 * sending, the 16 MiB upload against the resetting server failed with TP_ECONNRESET. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <tidepool/tidepool.h>

#include "support/http_both.h"
#include "support/http_test_server.h"
#include "support/test_util.h"

#define MIB (1024 * 1024)

static char *body; /* 16 MiB of 'b' */

static hb_got post(tp_http_client *c, bool engine, const char *url, size_t len)
{
    tp_http_request req = {.method = "POST",
                           .url = url,
                           .body = body,
                           .body_len = len,
                           .timeout = 10 * TP_NSEC_PER_SEC};
    return hb_run(c, engine, &req);
}

/* Two uploads of len bytes against an early-answering server; reset: it closes with
 * the body unread, else it drains the rest. */
static void early(bool engine, size_t len, bool reset, int stall_ms)
{
    hts_options so;
    hts_options_init(&so);
    so.behavior.mode = HTS_EARLY_RESPONSE;
    so.behavior.close_after = reset;
    so.behavior.delay_ms = stall_ms;
    hts_server *srv = NULL;
    assert_int_equal(hts_start(&so, &srv), 0);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/upload", (unsigned)hts_port(srv));
    tp_http_client_options o;
    tp_http_client_options_init(&o);
    tp_http_client *c = NULL;
    tp_errinfo e;
    assert_int_equal(tp_http_client_create(&o, &c, &e), TP_OK);
    for (int i = 0; i < 2; i++) {
        int64_t t0 = tu_now_ns();
        hb_got g = post(c, engine, url, len);
        if (g.rc != TP_OK)
            fail_msg("%s %zu MiB, %s, upload %d: %s: %s", engine ? "engine" : "blocking",
                     len / MIB, reset ? "reset" : "lingering", i, tp_err_name(g.rc), g.msg);
        assert_int_equal(g.status, 413);
        assert_string_equal(g.body, "too large");
        assert_false(g.info.retried);
        assert_false(g.info.keep_alive);
        /* A body that fits in the socket buffers may be all sent before the answer is
         * read; a 16 MiB one never is. */
        if (len > 8 * MIB)
            assert_true(g.info.early);
        assert_true(tu_ms_since(t0) < 5000);
    }
    assert_int_equal(hts_connections(srv), 2); /* the first connection was not reused */
    assert_int_equal(hts_requests(srv), 2);
    tp_stats st;
    tp_pool_stats(tp_http_client_pool(c), &st);
    assert_int_equal(st.idle, 0);
    assert_int_equal(st.in_use, 0);
    tp_http_client_destroy(c);
    hts_stop(srv);
}

static void test_blocking_1m_reset(void **s) { (void)s; early(false, 1 * MIB, true, 0); }
static void test_blocking_16m_reset(void **s) { (void)s; early(false, 16 * MIB, true, 0); }
static void test_blocking_16m_reset_late(void **s) { (void)s; early(false, 16 * MIB, true, 200); }
static void test_blocking_16m_linger(void **s) { (void)s; early(false, 16 * MIB, false, 0); }
static void test_engine_1m_reset(void **s) { (void)s; early(true, 1 * MIB, true, 0); }
static void test_engine_16m_reset(void **s) { (void)s; early(true, 16 * MIB, true, 0); }
static void test_engine_16m_reset_late(void **s) { (void)s; early(true, 16 * MIB, true, 200); }
static void test_engine_16m_linger(void **s) { (void)s; early(true, 16 * MIB, false, 0); }

int main(void)
{
    body = malloc(16 * MIB);
    if (body == NULL)
        return 1;
    memset(body, 'b', 16 * MIB);
    tu_watchdog(120);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_blocking_1m_reset),  cmocka_unit_test(test_blocking_16m_reset),
        cmocka_unit_test(test_blocking_16m_reset_late), cmocka_unit_test(test_blocking_16m_linger),
        cmocka_unit_test(test_engine_1m_reset),    cmocka_unit_test(test_engine_16m_reset),
        cmocka_unit_test(test_engine_16m_reset_late), cmocka_unit_test(test_engine_16m_linger),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    free(body);
    return rc;
}
