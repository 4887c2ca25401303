/* test_redis_outage.c: the Redis pool under load through a server restart, and idle
 * connections the server kills just before they are used, against a throwaway
 * redis-server (scripts/redis-test.sh).
 *
 * Restart: failures only for commands in flight plus at most one reconnect round (twice
 * the workers), never TP_EBREAKER, and the first command after the server answers again
 * succeeds within RECOVERY_BOUND_MS of that moment (figures printed).
 *
 * Idle kill: an idle pooled connection killed (CLIENT KILL) 0, 10, 100 or 400 ms before
 * the next acquire is polled at reuse and replaced: the command succeeds every time (it
 * used to fail with TP_ECONNRESET whenever the connection had been idle less than 500 ms,
 * the old check_after_idle). Skipped (77) without redis-server. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "redis_test_env.h"
#include "support/outage_load.h"
#include "support/test_util.h"

#define WORKERS 8
#define RECOVERY_BOUND_MS 150.0

static rt_env env;

static tp_redis_pool *make_pool(void)
{
    char url[256];
    tp_pool_options po;
    tp_pool_options_init(&po);
    po.maintenance_interval = MS(100);
    tp_redis_pool *rp = NULL;
    tp_errinfo err = {0};
    tp_err rc = tp_redis_pool_create_url(rt_url(&env, url, sizeof url, NULL, 0), &po, &rp, &err);
    if (rc != TP_OK)
        fail_msg("create: %s", err.msg);
    return rp;
}

static tp_err ping_once(void *ud, int worker)
{
    (void)worker;
    return rt_ping_through(ud, TP_DURATION_DEFAULT);
}

static bool probe(void *ud)
{
    (void)ud;
    struct timeval tv = {0, 100 * 1000};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", env.port, tv);
    bool up = false;
    if (c != NULL && c->err == 0 && redisSetTimeout(c, tv) == REDIS_OK) {
        redisReply *r = redisCommand(c, "PING");
        up = r != NULL && r->type == REDIS_REPLY_STATUS && strcmp(r->str, "PONG") == 0;
        if (r != NULL)
            freeReplyObject(r);
    }
    if (c != NULL)
        redisFree(c);
    return up;
}

static int restart(void *ud)
{
    (void)ud;
    return rt_script(&env, "restart");
}

static void test_restart_under_load(void **state)
{
    (void)state;
    tp_redis_pool *rp = make_pool();
    ol_result r;
    ol_run(WORKERS, 300, 1000, ping_once, probe, restart, rp, &r);
    ol_print("redis restart", &r);
    tp_stats st = tu_pool_stats(tp_redis_pool_tp(rp));
    tp_redis_pool_destroy(rp);
    ol_assert_restart(&r, WORKERS, 1000, st.rejects_breaker, RECOVERY_BOUND_MS, false);
}

/* The server-side id of the pool's one connection (CLIENT ID reads, changes nothing). */
static long long client_id(tp_redis_pool *rp)
{
    tp_redis_lease *l = NULL;
    assert_int_equal(tp_redis_acquire(rp, MS(5000), &l, NULL), TP_OK);
    redisReply *r = NULL;
    assert_int_equal(tp_redis_command(l, &r, NULL, "CLIENT ID"), TP_OK);
    long long id = rt_int(r);
    freeReplyObject(r);
    tp_redis_release(l, 0);
    assert_true(id > 0);
    return id;
}

static void test_idle_kill_before_use(void **state)
{
    (void)state;
    tp_redis_pool *rp = make_pool();
    struct timeval tv = {2, 0};
    redisContext *admin = redisConnectWithTimeout("127.0.0.1", env.port, tv);
    assert_true(admin != NULL && admin->err == 0);
    const int delays_ms[] = {0, 10, 100, 400};
    for (size_t i = 0; i < sizeof delays_ms / sizeof delays_ms[0]; i++) {
        long long id = client_id(rp);
        redisReply *k = redisCommand(admin, "CLIENT KILL ID %lld", id);
        assert_int_equal(rt_int(k), 1); /* one connection killed */
        freeReplyObject(k);
        tu_sleep_ms(delays_ms[i]);
        uint64_t failed_before = tu_pool_stats(tp_redis_pool_tp(rp)).checks_failed;
        tp_err rc = ping_once(rp, 0);
        if (rc != TP_OK)
            fail_msg("killed %d ms before use: %s", delays_ms[i], tp_err_name(rc));
        /* The dead one was found by the poll at reuse, not by a failed command. */
        assert_int_equal(tu_pool_stats(tp_redis_pool_tp(rp)).checks_failed, failed_before + 1);
    }
    redisFree(admin);
    tp_stats st = tu_pool_stats(tp_redis_pool_tp(rp));
    assert_int_equal(st.closes[TP_CLOSE_BROKEN], 0);
    tp_redis_pool_destroy(rp);
}

int main(void)
{
    tu_watchdog(150);
    int rc = rt_start(&env);
    if (rc != 0)
        return rc;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_restart_under_load),
        cmocka_unit_test(test_idle_kill_before_use),
    };
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    rt_stop(&env);
    return rc;
}
