/* test_redis_server.c: the Redis pool when the server misbehaves: restarted while the
 * pool's connections are idle (the pool recovers, no error surfaces) and while one is in
 * use (that command fails clearly, the lease is released broken), idle connections
 * killed by the server's `timeout` (never an error on the next acquire), and the
 * server's maxclients reached (a clear open error, and the pool backs off). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "redis_test_env.h"
#include "support/test_util.h"

static rt_env env;

static tp_redis_pool *make_pool(tp_pool_options *po)
{
    char url[256];
    tp_redis_pool *rp = NULL;
    tp_errinfo err = {0};
    tp_err rc = tp_redis_pool_create_url(rt_url(&env, url, sizeof url, NULL, 0), po, &rp, &err);
    if (rc != TP_OK)
        fail_msg("create: %s", err.msg);
    return rp;
}

static tp_redis_lease *lease(tp_redis_pool *rp)
{
    tp_redis_lease *l = NULL;
    tp_errinfo err = {0};
    tp_err rc = tp_redis_acquire(rp, MS(10000), &l, &err);
    if (rc != TP_OK)
        fail_msg("acquire: %s: %s", tp_err_name(rc), err.msg);
    return l;
}

static void ping(tp_redis_lease *l)
{
    redisReply *r = NULL;
    tp_errinfo err = {0};
    tp_err rc = tp_redis_command(l, &r, &err, "PING");
    if (rc != TP_OK)
        fail_msg("PING: %s: %s", tp_err_name(rc), err.msg);
    assert_string_equal(r->str, "PONG");
    freeReplyObject(r);
}

/* Leases n connections at once, pings on each, releases all: n idle connections. */
static void warm(tp_redis_pool *rp, int n)
{
    tp_redis_lease *l[8];
    for (int i = 0; i < n; i++)
        l[i] = lease(rp);
    for (int i = 0; i < n; i++) {
        ping(l[i]);
        tp_redis_release(l[i], 0);
    }
}

static void test_restart_idle(void **state)
{
    (void)state;
    tp_redis_pool *rp = make_pool(NULL);
    warm(rp, 4);
    assert_int_equal(rt_script(&env, "restart"), 0);
    tu_sleep_ms(600); /* past check_after_idle (500 ms): the dead ones are polled */
    for (int round = 0; round < 3; round++)
        warm(rp, 4);
    tp_stats st = tu_pool_stats(tp_redis_pool_tp(rp));
    assert_int_equal(st.checks_failed, 4);
    assert_int_equal(st.closes[TP_CLOSE_CHECK_FAILED], 4);
    assert_int_equal(st.opens, 8);
    tp_redis_pool_destroy(rp);
}

static void test_restart_in_use(void **state)
{
    (void)state;
    tp_redis_pool *rp = make_pool(NULL);
    tp_redis_lease *l = lease(rp);
    ping(l);
    assert_int_equal(rt_script(&env, "restart"), 0);
    redisReply *r = NULL;
    tp_errinfo err = {0};
    tp_err rc = tp_redis_command(l, &r, &err, "PING");
    assert_int_equal(rc, TP_ECONNRESET);
    assert_null(r);
    assert_non_null(strstr(err.msg, "closed the connection"));
    tp_redis_release(l, 0);
    tp_stats st = tu_pool_stats(tp_redis_pool_tp(rp));
    assert_int_equal(st.closes[TP_CLOSE_BROKEN], 1);
    assert_int_equal(st.total, 0);
    l = lease(rp);
    ping(l);
    tp_redis_release(l, 0);
    tp_redis_pool_destroy(rp);
}

static void test_server_timeout(void **state)
{
    (void)state;
    tp_redis_pool *rp = make_pool(NULL);
    tp_redis_lease *l = lease(rp);
    redisReply *r = NULL;
    assert_int_equal(tp_redis_command(l, &r, NULL, "CONFIG SET timeout 1"), TP_OK);
    freeReplyObject(r);
    tp_redis_release(l, 0);
    for (int round = 0; round < 2; round++) {
        warm(rp, 4);
        tu_sleep_ms(2500); /* the server closes clients idle for more than 1 s */
    }
    warm(rp, 4);
    tp_stats st = tu_pool_stats(tp_redis_pool_tp(rp));
    assert_true(st.checks_failed >= 4);
    l = lease(rp);
    assert_int_equal(tp_redis_command(l, &r, NULL, "CONFIG SET timeout 0"), TP_OK);
    freeReplyObject(r);
    tp_redis_release(l, 0);
    tp_redis_pool_destroy(rp);
}

static void test_maxclients(void **state)
{
    (void)state;
    tp_pool_options po;
    tp_pool_options_init(&po);
    po.backoff_initial = MS(100);
    tp_redis_pool *rp = make_pool(&po);
    /* Fill the server with connections outside the pool until it refuses. */
    redisContext *held[64];
    int n = 0;
    bool full = false;
    struct timeval tv = {2, 0};
    while (n < 64 && !full) {
        redisContext *c = redisConnectWithTimeout("127.0.0.1", env.port, tv);
        assert_non_null(c);
        redisReply *r = c->err == 0 ? redisCommand(c, "PING") : NULL;
        full = r == NULL || r->type == REDIS_REPLY_ERROR;
        if (r != NULL)
            freeReplyObject(r);
        if (full)
            redisFree(c);
        else
            held[n++] = c;
    }
    assert_true(full);
    assert_true(n <= env.maxclients);

    tp_redis_lease *l = NULL;
    tp_errinfo err = {0};
    tp_err rc = tp_redis_acquire(rp, MS(3000), &l, &err);
    assert_int_equal(rc, TP_ESERVERFULL); /* at once: the pool holds nothing to wait for */
    assert_non_null(strstr(err.msg, "max number of clients reached"));
    /* Backing off: twenty quick acquires cause far fewer opens. */
    int64_t t0 = tu_now_ns();
    for (int i = 0; i < 20; i++) {
        rc = tp_redis_acquire(rp, MS(20), &l, &err);
        if (!(rc == TP_ESERVERFULL || rc == TP_ETIMEDOUT))
            fail_msg("acquire %d while full: %s: %s", i, tp_err_name(rc), err.msg);
    }
    tp_stats st = tu_pool_stats(tp_redis_pool_tp(rp));
    print_message("%llu open failures\n", (unsigned long long)st.open_failures);
    assert_true(st.open_failures < 12);
    assert_int_equal(st.rejects_breaker, 0); /* a full server is up: no breaker */
    (void)t0;
    for (int i = 0; i < n; i++)
        redisFree(held[i]);
    /* Room again: the pool gets a connection once the backoff or breaker lets it. */
    bool ok = false;
    int64_t end = tu_now_ns() + MS(15000);
    while (!ok && tu_now_ns() < end) {
        rc = tp_redis_acquire(rp, MS(2000), &l, &err);
        ok = rc == TP_OK;
        if (!ok)
            tu_sleep_ms(100);
    }
    assert_true(ok);
    ping(l);
    tp_redis_release(l, 0);
    tp_redis_pool_destroy(rp);
}

int main(void)
{
    tu_watchdog(150);
    int rc = rt_start(&env);
    if (rc != 0)
        return rc;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_restart_idle),
        cmocka_unit_test(test_restart_in_use),
        cmocka_unit_test(test_server_timeout),
        cmocka_unit_test(test_maxclients),
    };
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    rt_stop(&env);
    return rc;
}
