/* test_ktrace_nginx.c: the kernel trace against the fixture's real nginx, driven by
 * tidepool's own HTTP client. nginx's 1 s keep-alive closes the pool's idle connections
 * first: the trace sees the peer's FINs after about 1 s of idle and says to keep
 * idle_timeout below that. Responses abandoned half read (1 MiB, more than the pool
 * drains) end in resets this process sends, which the kernel names "closed with unread
 * data" (or an SO_LINGER 0 close when the drain had just emptied the receive queue).
 * "Connection: close" responses: each connection closed first by exactly one side, all by
 * nginx when the pool reads late, and closed passively by the pool after nginx's FIN. As
 * root with eBPF; skipped (77) otherwise. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <tidepool/tidepool.h>

#include "support/ktrace_run.h"
#include "support/nginx_env.h"
#include "support/test_util.h"

static nginx_env env;

static tp_http_client *client(void)
{
    tp_http_client_options o;
    tp_http_client_options_init(&o);
    tp_http_client *c = NULL;
    tp_errinfo e;
    assert_int_equal(tp_http_client_create(&o, &c, &e), TP_OK);
    return c;
}

static tp_http_response *stream(tp_http_client *c, const char *url)
{
    tp_http_request req = {
        .method = "GET", .url = url, .timeout = TP_DURATION_DEFAULT, .flags = TP_HTTP_STREAM};
    tp_http_response *r = NULL;
    tp_errinfo e;
    tp_err rc = tp_http_client_do(c, &req, &r, &e);
    if (rc != TP_OK)
        fail_msg("GET %s: %s", url, e.msg);
    assert_int_equal(tp_http_response_status(r), 200);
    return r;
}

static void read_all(tp_http_response *r)
{
    char buf[4096];
    size_t got = 1;
    tp_errinfo e;
    while (got > 0)
        assert_int_equal(tp_http_response_read(r, buf, sizeof buf, &got, &e), TP_OK);
}

static tp_diag_endpoint nginx(uint16_t port)
{
    char s[32];
    snprintf(s, sizeof s, "127.0.0.1:%u", (unsigned)port);
    tp_diag_endpoint e;
    assert_int_equal(tp_diag_endpoint_parse(s, &e), TP_OK);
    return e;
}

static void test_short_keepalive_is_found(void **state)
{
    (void)state;
    tp_http_client *c = client();
    char u[96];
    snprintf(u, sizeof u, "http://127.0.0.1:%u/", (unsigned)env.http_short_ka_port);
    tp_diag_endpoint d = nginx(env.http_short_ka_port);
    tp_ktrace *t = kr_start(getpid());
    /* Three connections at once (each response holds its own), then idle. */
    tp_http_response *r[3];
    for (int i = 0; i < 3; i++)
        r[i] = stream(c, u);
    for (int i = 0; i < 3; i++) {
        read_all(r[i]);
        tp_http_response_free(r[i]);
    }
    tu_sleep_ms(1600);
    kr_finish(t, 100);
    const tp_ktrace_closes *cl = kr_find_closes(t, &d, getpid());
    assert_non_null(cl);
    assert_int_equal(cl->peer, 3);
    assert_int_equal(cl->active, 0);
    assert_true(cl->idle_min_ms >= 950 && cl->idle_max_ms < 1600);
    const tp_diag_finding *f = kr_find_finding(t, "peer_idle_close", &d);
    assert_non_null(f);
    assert_non_null(strstr(f->remedy, "keep the pool's idle_timeout below 1."));
    tp_ktrace_destroy(t);
    tp_http_client_destroy(c);
}

static void test_abandoned_responses_are_resets_sent(void **state)
{
    (void)state;
    tp_http_client *c = client();
    char u[96];
    snprintf(u, sizeof u, "http://127.0.0.1:%u/big", (unsigned)env.http_port);
    tp_diag_endpoint d = nginx(env.http_port);
    tp_ktrace *t = kr_start(getpid());
    for (int i = 0; i < 5; i++) {
        tp_http_response *r = stream(c, u);
        char buf[4096];
        size_t got = 0;
        tp_errinfo e;
        assert_int_equal(tp_http_response_read(r, buf, sizeof buf, &got, &e), TP_OK);
        assert_true(got > 0);
        tp_http_response_free(r); /* 1 MiB is past drain_max_bytes: the pool closes it */
    }
    kr_finish(t, 200);
    /* The pool resets a connection abandoned mid-body on purpose (SO_LINGER 0: no late
     * byte may reach a later connection); the kernel names the reason by what it finds:
     * TCP_ABORT_ON_CLOSE with the unread bytes in the receive queue, TCP_STATE when the
     * pool's drain had just emptied it. Every one of the 5 is one or the other, ours. */
    uint64_t unread = 0, aborted = 0;
    for (size_t i = 0; i < tp_ktrace_reset_count(t); i++) {
        const tp_ktrace_reset *r = tp_ktrace_reset_get(t, i);
        if (!r->sent || r->inbound || !tp_diag_endpoint_equal(&r->dest, &d) ||
            r->reason_name == NULL)
            continue;
        assert_int_equal(r->process.pid, getpid());
        if (strcmp(r->reason_name, "TCP_ABORT_ON_CLOSE") == 0)
            unread += r->count;
        else if (strcmp(r->reason_name, "TCP_STATE") == 0)
            aborted += r->count;
    }
    assert_int_equal(unread + aborted, 5);
    assert_true(unread >= 1);
    assert_non_null(kr_find_finding(t, "rst_unread_data", &d));
    tp_ktrace_destroy(t);
    tp_http_client_destroy(c);
}

/* Ten GETs of nginx's "Connection: close" location through one trace; with wait_ms, each
 * response sits that long before it is read, so nginx's FIN is in first. */
static const tp_ktrace_closes *close_ten(tp_http_client *c, int wait_ms, tp_ktrace **t)
{
    char u[96];
    snprintf(u, sizeof u, "http://127.0.0.1:%u/close", (unsigned)env.http_port);
    tp_diag_endpoint d = nginx(env.http_port);
    *t = kr_start(getpid());
    for (int i = 0; i < 10; i++) {
        tp_http_response *r = stream(c, u);
        tu_sleep_ms(wait_ms);
        read_all(r);
        tp_http_response_free(r);
    }
    kr_finish(*t, 300);
    const tp_ktrace_closes *cl = kr_find_closes(*t, &d, getpid());
    assert_non_null(cl);
    return cl;
}

static void test_connection_close_is_counted_once(void **state)
{
    (void)state;
    tp_http_client *c = client();
    /* Read at once, who sends the first FIN is a race on loopback (nginx closes after the
     * response; the pool closes as soon as it has read it), but each connection is closed
     * first by exactly one side, and after nginx's FIN we close passively. */
    tp_ktrace *t = NULL;
    const tp_ktrace_closes *cl = close_ten(c, 0, &t);
    assert_int_equal(cl->peer + cl->active, 10);
    assert_int_equal(cl->passive, cl->peer);
    tp_ktrace_destroy(t);
    /* Read late, every close is nginx's: no TIME_WAIT is ours. */
    cl = close_ten(c, 200, &t);
    assert_int_equal(cl->peer, 10);
    assert_int_equal(cl->passive, 10);
    assert_int_equal(cl->active, 0);
    tp_ktrace_destroy(t);
    tp_http_client_destroy(c);
}

int main(void)
{
    if (nginx_env_load(&env) != 0) {
        fprintf(stderr, "test_ktrace_nginx: no nginx fixture (run through ctest): skipped\n");
        return 77;
    }
    if (!kr_can_trace())
        return 77;
    tu_watchdog(120);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_short_keepalive_is_found),
        cmocka_unit_test(test_abandoned_responses_are_resets_sent),
        cmocka_unit_test(test_connection_close_is_counted_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
