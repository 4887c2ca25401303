/* test_oom_db.c: out-of-memory torture (tests/support/oom_torture.h) of the database
 * pools against real servers: a PostgreSQL acquire + query + release (the cluster of
 * scripts/pg-test.sh) and a Redis acquire + command + release (scripts/redis-test.sh),
 * each scenario creating and destroying its own pool. A server the machine lacks skips
 * its case. */
#include "pg_common.h"

#include "redis_test_env.h"
#include "support/oom_torture.h"

#ifdef PG_TESTS_HAVE_LIBPQ
static char pg_ci[256];

static tp_err pg_scenario(void *ud)
{
    (void)ud;
    tp_pg_options o;
    tp_pg_options_init(&o);
    o.pool.maintenance_thread = false;
    tp_pg_pool *pp = NULL;
    tp_err rc = tp_pg_pool_create(&o, &pp, NULL);
    if (rc != TP_OK)
        return rc;
    tp_pg_target *t = NULL;
    rc = tp_pg_pool_add(pp, pg_ci, &t, NULL);
    tp_conn *l = NULL;
    if (rc == TP_OK)
        rc = tp_pg_acquire(pp, t, MS(5000), 0, &l, NULL);
    if (rc == TP_OK) {
        rc = tp_pg_query_simple(l, "SELECT 1", NULL);
        tp_pg_release(l, 0);
    }
    tp_pg_pool_destroy(pp);
    return rc;
}

static void test_oom_pg_query(void **state)
{
    (void)state;
    pg_env_conninfo(&env, pg_ci, sizeof pg_ci, "postgres", NULL, "postgres");
    oom_report r;
    oom_torture("postgres acquire, query, release", pg_scenario, NULL, NULL, 0, &r);
}
#endif

static rt_env renv;
static bool have_redis;

static tp_err redis_scenario(void *ud)
{
    (void)ud;
    char url[256];
    tp_pool_options po;
    tp_pool_options_init(&po);
    po.maintenance_thread = false;
    tp_redis_pool *rp = NULL;
    tp_err rc = tp_redis_pool_create_url(rt_url(&renv, url, sizeof url, NULL, 0), &po, &rp, NULL);
    if (rc != TP_OK)
        return rc;
    rc = rt_ping_through(rp, MS(5000));
    tp_redis_pool_destroy(rp);
    return rc;
}

static void test_oom_redis_command(void **state)
{
    (void)state;
    if (!have_redis)
        skip();
    oom_report r;
    oom_torture("redis acquire, PING, release", redis_scenario, NULL, NULL, 0, &r);
}

int main(void)
{
    have_redis = rt_start(&renv) == 0;
    const struct CMUnitTest tests[] = {
#ifdef PG_TESTS_HAVE_LIBPQ
        cmocka_unit_test(test_oom_pg_query),
#endif
        cmocka_unit_test(test_oom_redis_command),
    };
#ifdef PG_TESTS_HAVE_LIBPQ
    int rc = pg_main("oom_db", tests, sizeof tests / sizeof tests[0]);
#else
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
#endif
    if (have_redis)
        rt_stop(&renv);
    return rc;
}
