/* test_chaos_pg.c: the PostgreSQL pool behind the fault proxy (tidepool/chaos.h) in front
 * of the throwaway cluster of scripts/pg-test.sh: idle connections reset while pooled
 * (no statement fails), a half-open peer (bounded by query_timeout; before that option a
 * statement on such a connection waited forever), a slow statement past query_timeout,
 * latency on every statement, refused connects; query_timeout also sets the socket's
 * TCP_USER_TIMEOUT. Skipped (77) without libpq/PostgreSQL. */
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include "pg_common.h"
#include "support/chaos_cli.h"
#include "support/chaos_rig.h"
#include "tidepool/chaos.h"

#ifdef PG_TESTS_HAVE_LIBPQ

typedef struct rig {
    tp_chaos *proxy;
    tp_pg_pool *pp;
} rig;

static void rig_start(rig *r, int64_t query_timeout)
{
    r->proxy = chaos_rig_start((uint16_t)env.port, 13);
    tp_errinfo e;
    tp_pg_options po;
    tp_pg_options_init(&po);
    po.query_timeout = query_timeout;
    po.pool.breaker_threshold = 1000; /* the faults are the point here, not the breaker */
    po.pool.maintenance_interval = MS(100);
    assert_int_equal(tp_pg_pool_create(&po, &r->pp, &e), TP_OK);
    char ci[256];
    snprintf(ci, sizeof ci, "host=127.0.0.1 port=%u user=postgres dbname=postgres",
             (unsigned)tp_chaos_port(r->proxy));
    tp_pg_target *t;
    assert_int_equal(tp_pg_pool_add(r->pp, ci, &t, &e), TP_OK);
}

static void rig_stop(rig *r)
{
    tp_stats st;
    tp_pool_stats(tp_pg_pool_tp(r->pp), &st);
    assert_int_equal(st.in_use, 0);
    assert_int_equal(st.idle + st.in_use + st.opening, st.total);
    tp_pg_pool_destroy(r->pp);
    tp_chaos_stop(r->proxy);
}

static tp_err select_one(rig *r)
{
    tp_errinfo e;
    tp_err rc = tp_pg_exec(r->pp, NULL, "SELECT 1", NULL, &e);
    if (rc != TP_OK)
        print_message("SELECT 1: %s (%s)\n", tp_err_name(rc), e.msg);
    return rc;
}

static void test_idle_connections_reset(void **state)
{
    (void)state;
    rig r;
    rig_start(&r, TP_DURATION_INFINITE);
    for (int i = 0; i < 3; i++)
        assert_int_equal(select_one(&r), TP_OK);
    tp_chaos_fault f;
    tp_chaos_fault_init(&f);
    f.reset_after = 0;
    chaos_rig_set(r.proxy, &f);
    chaos_rig_wait_open(r.proxy, 0);
    chaos_rig_clear(r.proxy);
    for (int i = 0; i < 10; i++)
        assert_int_equal(select_one(&r), TP_OK);
    rig_stop(&r);
}

static void test_half_open_bounded_by_query_timeout(void **state)
{
    (void)state;
    rig r;
    rig_start(&r, MS(300));
    assert_int_equal(select_one(&r), TP_OK);
    tp_chaos_fault f;
    tp_chaos_fault_init(&f);
    f.half_open = true;
    chaos_rig_set(r.proxy, &f);
    int64_t t0 = tp_clock_now();
    tp_err rc = select_one(&r);
    int64_t took = tp_clock_now() - t0;
    print_message("SELECT 1 on a half-open connection: %s after %.1f ms\n", tp_err_name(rc),
                  (double)took / 1e6);
    assert_int_equal(rc, TP_EREQTIMEDOUT);
    assert_true(took >= MS(300));
    assert_true(took < MS(3000));
    chaos_rig_clear(r.proxy);
    assert_int_equal(select_one(&r), TP_OK); /* on a new connection */
    tp_stats st;
    tp_pool_stats(tp_pg_pool_tp(r.pp), &st);
    assert_int_equal(st.opens, 2);
    assert_int_equal(st.closes[TP_CLOSE_BROKEN], 1);
    rig_stop(&r);
}

static void test_slow_statement_past_query_timeout(void **state)
{
    (void)state;
    rig r;
    rig_start(&r, MS(200));
    tp_errinfo e;
    int64_t t0 = tp_clock_now();
    assert_int_equal(tp_pg_exec(r.pp, NULL, "SELECT pg_sleep(2)", NULL, &e), TP_EREQTIMEDOUT);
    assert_true(tp_clock_now() - t0 < MS(1500));
    assert_non_null(strstr(e.msg, "query_timeout"));
    assert_int_equal(select_one(&r), TP_OK); /* what follows is not the late reply */
    rig_stop(&r);
}

static void test_latency(void **state)
{
    (void)state;
    rig r;
    rig_start(&r, TP_DURATION_INFINITE);
    assert_int_equal(select_one(&r), TP_OK);
    tp_chaos_fault f;
    tp_chaos_fault_init(&f);
    f.latency = MS(20);
    chaos_rig_set(r.proxy, &f);
    for (int i = 0; i < 3; i++) {
        int64_t t0 = tp_clock_now();
        assert_int_equal(select_one(&r), TP_OK);
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
    assert_int_equal(select_one(&r), TP_ECONNREFUSED);
    chaos_rig_clear(r.proxy);
    int64_t end = tp_clock_now() + 5 * TP_NSEC_PER_SEC;
    tp_err rc;
    while ((rc = select_one(&r)) != TP_OK && tp_clock_now() < end)
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
    snprintf(url, sizeof url, "postgres://postgres@127.0.0.1:%d/postgres", env.port);
    int failed;
    char restart[600]; /* scenarios/db/restart.json restarts the real server */
    snprintf(restart, sizeof restart, "bash '%s/scripts/pg-test.sh' restart '%s'",
             TIDEPOOL_SOURCE_DIR, env.dir);
    int ran = chaos_cli_run_dir(cli, "scenarios/db",
                                &(chaos_cli_opts){.url = url, .restart_cmd = restart}, &failed);
    assert_int_equal(failed, 0);
    assert_true(ran >= 4); /* half-open, latency spike, restart, upstream down */
}

/* The TCP_USER_TIMEOUT (ms; 0: none) of a connection made with query_timeout and the
 * conninfo options extra. */
static unsigned lease_user_timeout(int64_t query_timeout, const char *extra)
{
    tp_pg_options po;
    tp_pg_options_init(&po);
    po.query_timeout = query_timeout;
    tp_pg_pool *pp = NULL;
    tp_errinfo e;
    assert_int_equal(tp_pg_pool_create(&po, &pp, &e), TP_OK);
    char ci[256];
    snprintf(ci, sizeof ci, "host=127.0.0.1 port=%d user=postgres dbname=postgres %s", env.port,
             extra);
    tp_pg_target *t;
    assert_int_equal(tp_pg_pool_add(pp, ci, &t, &e), TP_OK);
    tp_conn *lease = NULL;
    assert_int_equal(tp_pg_acquire(pp, t, MS(5000), 0, &lease, &e), TP_OK);
    unsigned ut = 99;
    socklen_t len = sizeof ut;
    assert_int_equal(getsockopt(PQsocket(tp_pg_conn_get(lease)), IPPROTO_TCP, TCP_USER_TIMEOUT,
                                &ut, &len),
                     0);
    tp_conn_release(lease, 0);
    tp_pg_pool_destroy(pp);
    return ut;
}

/* A query_timeout also bounds unacknowledged sends (libpq's tcp_user_timeout), unless
 * the conninfo sets its own. */
static void test_query_timeout_sets_tcp_user_timeout(void **state)
{
    (void)state;
    assert_int_equal(lease_user_timeout(MS(1500), ""), 1500);
    assert_int_equal(lease_user_timeout(MS(1500), "tcp_user_timeout=700"), 700);
    assert_int_equal(lease_user_timeout(TP_DURATION_INFINITE, ""), 0);
    /* libpq takes an int of ms: 30 days (2,592,000,000 ms) is clamped, not wrapped. */
    assert_int_equal(lease_user_timeout(30 * 24 * 3600 * TP_NSEC_PER_SEC, ""), INT_MAX);
}

static void test_invalid_query_timeout(void **state)
{
    (void)state;
    tp_pg_options po;
    tp_pg_options_init(&po);
    assert_true(po.query_timeout == TP_DURATION_INFINITE);
    po.query_timeout = 0;
    tp_pg_pool *pp = NULL;
    tp_errinfo e;
    assert_int_equal(tp_pg_pool_create(&po, &pp, &e), TP_EINVAL);
    assert_non_null(strstr(e.msg, "query_timeout"));
    assert_null(pp);
}
#endif

int main(void)
{
#ifdef PG_TESTS_HAVE_LIBPQ
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_idle_connections_reset),
        cmocka_unit_test(test_half_open_bounded_by_query_timeout),
        cmocka_unit_test(test_slow_statement_past_query_timeout),
        cmocka_unit_test(test_latency),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_db_scenarios),
        cmocka_unit_test(test_query_timeout_sets_tcp_user_timeout),
        cmocka_unit_test(test_invalid_query_timeout),
    };
    PG_MAIN("chaos_pg", tests);
#else
    fprintf(stderr, "libpq headers not installed: skipped\n");
    return 77;
#endif
}
