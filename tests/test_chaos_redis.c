/* test_chaos_redis.c: the Redis pool behind the fault proxy (tidepool/chaos.h) in front
 * of the throwaway redis-server of scripts/redis-test.sh: idle connections reset while
 * pooled (no command fails), a half-open peer (bounded by command_timeout, the pool then
 * opens afresh), latency on every command, refused connects (a clear error, then
 * service back). Skipped (77) without redis-server. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <unistd.h>

#include <cmocka.h>

#include "redis_test_env.h"
#include "support/chaos_cli.h"
#include "support/chaos_rig.h"
#include "support/test_util.h"
#include "tidepool/chaos.h"

#define MS(x) ((int64_t)(x) * TP_NSEC_PER_MSEC)

static rt_env env;

typedef struct rig {
    tp_chaos *proxy;
    tp_redis_pool *rp;
} rig;

static void rig_start(rig *r, int64_t command_timeout)
{
    r->proxy = chaos_rig_start((uint16_t)env.port, 11);
    tp_errinfo e;
    char url[128];
    snprintf(url, sizeof url, "redis://127.0.0.1:%u/0", (unsigned)tp_chaos_port(r->proxy));
    tp_redis_options ro;
    tp_redis_options_init(&ro);
    ro.url = url;
    ro.command_timeout = command_timeout;
    ro.pool.breaker_threshold = 1000; /* the faults are the point here, not the breaker */
    assert_int_equal(tp_redis_pool_create(&ro, &r->rp, &e), TP_OK);
}

static void rig_stop(rig *r)
{
    tp_stats st;
    tp_pool_stats(tp_redis_pool_tp(r->rp), &st);
    assert_int_equal(st.in_use, 0);
    assert_int_equal(st.idle + st.in_use + st.opening, st.total);
    tp_redis_pool_destroy(r->rp);
    tp_chaos_stop(r->proxy);
}

static void test_idle_connections_reset(void **state)
{
    (void)state;
    rig r;
    rig_start(&r, TP_DURATION_INFINITE);
    for (int i = 0; i < 3; i++)
        assert_int_equal(rt_ping_through(r.rp, MS(5000)), TP_OK);
    tp_chaos_fault f;
    tp_chaos_fault_init(&f);
    f.reset_after = 0; /* every connection open now */
    chaos_rig_set(r.proxy, &f);
    chaos_rig_wait_open(r.proxy, 0);
    chaos_rig_clear(r.proxy);
    for (int i = 0; i < 10; i++)
        assert_int_equal(rt_ping_through(r.rp, MS(5000)), TP_OK);
    tp_stats st;
    tp_pool_stats(tp_redis_pool_tp(r.rp), &st);
    assert_true(st.closes[TP_CLOSE_CHECK_FAILED] >= 1); /* caught before a command went out */
    rig_stop(&r);
}

static void test_half_open_bounded_by_command_timeout(void **state)
{
    (void)state;
    rig r;
    rig_start(&r, MS(300));
    assert_int_equal(rt_ping_through(r.rp, MS(5000)), TP_OK);
    tp_chaos_fault f;
    tp_chaos_fault_init(&f);
    f.half_open = true;
    chaos_rig_set(r.proxy, &f);
    int64_t t0 = tp_clock_now();
    tp_err rc = rt_ping_through(r.rp, MS(5000));
    int64_t took = tp_clock_now() - t0;
    print_message("PING on a half-open connection: %s after %.1f ms\n", tp_err_name(rc),
                  (double)took / 1e6);
    assert_int_equal(rc, TP_EREQTIMEDOUT);
    assert_true(took >= MS(300));
    assert_true(took < MS(3000));
    chaos_rig_clear(r.proxy);
    assert_int_equal(rt_ping_through(r.rp, MS(5000)), TP_OK); /* on a new connection */
    tp_stats st;
    tp_pool_stats(tp_redis_pool_tp(r.rp), &st);
    assert_int_equal(st.opens, 2);
    rig_stop(&r);
}

static void test_latency(void **state)
{
    (void)state;
    rig r;
    rig_start(&r, TP_DURATION_INFINITE);
    assert_int_equal(rt_ping_through(r.rp, MS(5000)), TP_OK);
    tp_chaos_fault f;
    tp_chaos_fault_init(&f);
    f.latency = MS(20);
    chaos_rig_set(r.proxy, &f);
    for (int i = 0; i < 3; i++) {
        int64_t t0 = tp_clock_now();
        assert_int_equal(rt_ping_through(r.rp, MS(5000)), TP_OK);
        assert_true(tp_clock_now() - t0 >= 2 * f.latency);
    }
    rig_stop(&r);
}

static void test_refused(void **state)
{
    (void)state;
    rig r;
    rig_start(&r, TP_DURATION_INFINITE);
    tp_chaos_fault f;
    tp_chaos_fault_init(&f);
    f.refuse = true;
    chaos_rig_set(r.proxy, &f);
    assert_int_equal(rt_ping_through(r.rp, MS(1000)), TP_ECONNREFUSED);
    chaos_rig_clear(r.proxy);
    int64_t end = tp_clock_now() + 5 * TP_NSEC_PER_SEC;
    tp_err rc;
    while ((rc = rt_ping_through(r.rp, MS(1000))) != TP_OK && tp_clock_now() < end)
        usleep(20000); /* the open's backoff after the refusal */
    assert_int_equal(rc, TP_OK);
    rig_stop(&r);
}

/* The database scenarios of scenarios/db, through `tidepool chaos run`. */
static void test_db_scenarios(void **state)
{
    (void)state;
    const char *cli = chaos_cli_path();
    if (cli == NULL) {
        print_message("TIDEPOOL_CLI not set: skipped\n");
        return;
    }
    char url[128];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/0", env.port);
    int failed;
    char restart[600]; /* scenarios/db/restart.json restarts the real server */
    snprintf(restart, sizeof restart, "bash '%s/scripts/redis-test.sh' restart '%s'",
             TIDEPOOL_SOURCE_DIR, env.dir);
    int ran = chaos_cli_run_dir(cli, "scenarios/db",
                                &(chaos_cli_opts){.url = url, .restart_cmd = restart}, &failed);
    assert_int_equal(failed, 0);
    assert_true(ran >= 4); /* half-open, latency spike, restart, upstream down */
}

int main(void)
{
    tu_watchdog(150);
    int rc = rt_start(&env);
    if (rc != 0)
        return rc;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_idle_connections_reset),
        cmocka_unit_test(test_half_open_bounded_by_command_timeout),
        cmocka_unit_test(test_latency),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_db_scenarios),
    };
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    rt_stop(&env);
    return rc;
}
