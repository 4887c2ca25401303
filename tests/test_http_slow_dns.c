/* test_http_slow_dns.c: name lookups against a resolver of the test's own (a DNS server
 * on loopback that answers "slow.test" after 2 s, other ".test" names at once, and
 * "nx.test" with NXDOMAIN; tests/support/slow_dns.h), in a mount namespace whose
 * /etc/resolv.conf names it, with the fixture's nginx behind every name:
 *
 * - the engine looks names up off its loop: while slow.test takes 2 s, requests to
 *   other names and to an address literal on the same engine finish at once (before,
 *   the loop called getaddrinfo() itself and every one of them waited the 2 s);
 * - a request that gives up while its name is being looked up fails on time, and the
 *   engine goes away with the lookup still running;
 * - the client's lookup cache: a later open to the name asks the resolver nothing
 *   (and does not wait the 2 s again); with the cache off every open asks; NXDOMAIN is
 *   kept for dns_negative_ttl, then asked again.
 *
 * Skipped (77) without the fixture, without root or without unshare(1). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <tidepool/tidepool.h>

#include "support/nginx_env.h"
#include "support/slow_dns.h"
#include "support/test_util.h"

#define SLOW_MS 2000

static nginx_env env;

static tp_http_client *client(tp_http_client_options *o)
{
    tp_http_client *c = NULL;
    tp_errinfo e;
    tp_err rc = tp_http_client_create(o, &c, &e);
    if (rc != TP_OK)
        fail_msg("create: %s", e.msg);
    return c;
}

typedef struct got {
    bool done;
    tp_err rc;
    int status;
    int64_t at; /* when it finished, tu_now_ns() */
    char msg[256];
} got;

static void on_done(void *ud, tp_err rc, tp_http_response *r, const tp_errinfo *err)
{
    got *g = ud;
    g->done = true;
    g->rc = rc;
    g->at = tu_now_ns();
    if (rc == TP_OK)
        g->status = tp_http_response_status(r);
    else if (err != NULL)
        snprintf(g->msg, sizeof g->msg, "%s", err->msg);
    tp_http_response_free(r);
}

static got get_blocking(tp_http_client *c, const char *host, const char *path)
{
    char url[256];
    snprintf(url, sizeof url, "http://%s:%u%s", host, env.http_port, path);
    tp_http_request req = {.url = url, .timeout = 10 * TP_NSEC_PER_SEC};
    tp_http_response *r = NULL;
    tp_errinfo err = {0};
    got g = {0};
    tp_err rc = tp_http_client_do(c, &req, &r, &err);
    on_done(&g, rc, r, &err);
    return g;
}

static void submit(tp_http_engine *e, const char *host, int64_t timeout, got *g)
{
    char url[256];
    snprintf(url, sizeof url, "http://%s:%u/", host, env.http_port);
    tp_http_request req = {.url = url, .timeout = timeout};
    tp_errinfo err;
    assert_int_equal(tp_http_engine_submit(e, &req, on_done, g, NULL, &err), TP_OK);
}

static bool all_done(const got *g, int n)
{
    for (int i = 0; i < n; i++)
        if (!g[i].done)
            return false;
    return true;
}

/* While slow.test takes 2 s to resolve, requests to other destinations on the same
 * engine are not held up. */
static void test_engine_not_stalled_by_slow_name(void **state)
{
    (void)state;
    tp_http_client_options o;
    tp_http_client_options_init(&o);
    tp_http_client *c = client(&o);
    tp_http_engine *e = NULL;
    tp_errinfo err;
    assert_int_equal(tp_http_engine_create(c, &e, &err), TP_OK);
    enum { N = 9 };
    got g[N] = {0};
    int64_t t0 = tu_now_ns();
    submit(e, "slow.test", 10 * TP_NSEC_PER_SEC, &g[0]);
    for (int i = 1; i < N; i++)
        submit(e, i % 2 ? "fast.test" : "127.0.0.1", 10 * TP_NSEC_PER_SEC, &g[i]);
    while (!all_done(g, N) && tu_now_ns() - t0 < 15 * TP_NSEC_PER_SEC)
        (void)tp_http_engine_poll(e, 50 * TP_NSEC_PER_MSEC);
    for (int i = 0; i < N; i++) {
        assert_true(g[i].done);
        if (g[i].rc != TP_OK)
            fail_msg("request %d: %s: %s", i, tp_err_name(g[i].rc), g[i].msg);
        assert_int_equal(g[i].status, 200);
    }
    double slow_ms = (double)(g[0].at - t0) / 1e6;
    assert_true(slow_ms >= SLOW_MS - 100);
    for (int i = 1; i < N; i++) {
        double ms = (double)(g[i].at - t0) / 1e6;
        if (ms > SLOW_MS / 2)
            fail_msg("request %d to %s took %.0f ms beside the slow lookup", i,
                     i % 2 ? "fast.test" : "127.0.0.1", ms);
    }
    assert_int_equal(slow_dns_queries("slow.test"), 1);
    tp_http_engine_destroy(e);
    tp_http_client_destroy(c);
}

/* A request whose timeout passes while its name is looked up fails on time; the
 * engine is destroyed while that lookup still runs (nothing leaks: the ASan build). */
static void test_engine_gives_up_while_resolving(void **state)
{
    (void)state;
    int fds = tu_count_fds();
    tp_http_client_options o;
    tp_http_client_options_init(&o);
    tp_http_client *c = client(&o);
    tp_http_engine *e = NULL;
    tp_errinfo err;
    assert_int_equal(tp_http_engine_create(c, &e, &err), TP_OK);
    got g = {0}, other = {0};
    int64_t t0 = tu_now_ns();
    submit(e, "slow.test", 300 * TP_NSEC_PER_MSEC, &g);
    submit(e, "slow.test", 10 * TP_NSEC_PER_SEC, &other); /* still resolving at destroy */
    while (!g.done && tu_now_ns() - t0 < 5 * TP_NSEC_PER_SEC)
        (void)tp_http_engine_poll(e, 20 * TP_NSEC_PER_MSEC);
    double ms = (double)(g.at - t0) / 1e6;
    assert_true(g.done);
    if (g.rc != TP_EREQTIMEDOUT)
        fail_msg("want TP_EREQTIMEDOUT, got %s: %s", tp_err_name(g.rc), g.msg);
    assert_true(ms >= 250 && ms < 1500);
    assert_false(other.done);
    tp_http_engine_destroy(e); /* the other request is canceled, its lookup outstanding */
    assert_true(other.done);
    assert_int_equal(other.rc, TP_ECANCELED);
    tp_http_client_destroy(c);
    /* The abandoned lookups hold the resolver's sockets until their answers come. */
    int64_t t1 = tu_now_ns();
    while (tu_count_fds() != fds && tu_now_ns() - t1 < 2 * SLOW_MS * TP_NSEC_PER_MSEC)
        tu_sleep_ms(20);
    assert_int_equal(tu_count_fds(), fds);
}

/* A second open to a name uses the cached answer: no query, no 2 s wait. */
static void test_cache_serves_next_open(void **state)
{
    (void)state;
    tp_http_client_options o;
    tp_http_client_options_init(&o);
    tp_http_client *c = client(&o);
    int before = slow_dns_queries("slow.test");
    got g = get_blocking(c, "slow.test", "/close"); /* nginx closes: the next one opens */
    assert_int_equal(g.rc, TP_OK);
    assert_int_equal(slow_dns_queries("slow.test"), before + 1);
    int64_t t0 = tu_now_ns();
    g = get_blocking(c, "slow.test", "/");
    assert_int_equal(g.rc, TP_OK);
    assert_true((double)(tu_now_ns() - t0) / 1e6 < SLOW_MS / 2);
    assert_int_equal(slow_dns_queries("slow.test"), before + 1);
    tp_stats ps;
    tp_pool_stats(tp_http_client_pool(c), &ps);
    assert_int_equal(ps.opens, 2); /* two opens, one lookup */
    tp_http_client_destroy(c);

    /* The cache off: every open asks. */
    tp_http_client_options_init(&o);
    o.dns_cache_off = true;
    c = client(&o);
    before = slow_dns_queries("fast.test");
    for (int i = 0; i < 3; i++)
        assert_int_equal(get_blocking(c, "fast.test", "/close").rc, TP_OK);
    assert_int_equal(slow_dns_queries("fast.test"), before + 3);
    tp_http_client_destroy(c);
}

/* NXDOMAIN is kept for dns_negative_ttl (the engine and the blocking call alike), then
 * the resolver is asked again. */
static void test_negative_answer_kept_briefly(void **state)
{
    (void)state;
    tp_http_client_options o;
    tp_http_client_options_init(&o);
    o.dns_negative_ttl = 400 * TP_NSEC_PER_MSEC;
    tp_http_client *c = client(&o);
    int before = slow_dns_queries("nx.test");
    got g = get_blocking(c, "nx.test", "/");
    assert_int_equal(g.rc, TP_ERESOLVE);
    assert_int_equal(slow_dns_queries("nx.test"), before + 1);

    tp_http_engine *e = NULL;
    tp_errinfo err;
    assert_int_equal(tp_http_engine_create(c, &e, &err), TP_OK);
    got eg = {0};
    submit(e, "nx.test", 5 * TP_NSEC_PER_SEC, &eg);
    while (!eg.done)
        (void)tp_http_engine_poll(e, 20 * TP_NSEC_PER_MSEC);
    tp_http_engine_destroy(e);
    assert_int_equal(eg.rc, TP_ERESOLVE);
    assert_non_null(strstr(eg.msg, "cached"));
    assert_int_equal(slow_dns_queries("nx.test"), before + 1);

    tu_sleep_ms(500);
    g = get_blocking(c, "nx.test", "/");
    assert_int_equal(g.rc, TP_ERESOLVE);
    assert_null(strstr(g.msg, "cached"));
    assert_int_equal(slow_dns_queries("nx.test"), before + 2);
    tp_http_client_destroy(c);
}

int main(int argc, char **argv)
{
    (void)argc;
    if (nginx_env_load(&env) != 0)
        return 77;
    int rc = slow_dns_enter_namespace(argv);
    if (rc != 0)
        return rc;
    if (!slow_dns_start(SLOW_MS))
        return 1;
    tu_watchdog(50);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_engine_not_stalled_by_slow_name),
        cmocka_unit_test(test_engine_gives_up_while_resolving),
        cmocka_unit_test(test_cache_serves_next_open),
        cmocka_unit_test(test_negative_answer_kept_briefly),
    };
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    slow_dns_stop();
    return rc;
}
