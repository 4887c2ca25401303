/* test_pg_server.c: the PostgreSQL connector when the server misbehaves: a restart under
 * idle connections and under one in use, connections the server closes itself
 * (idle_session_timeout = 1 s for tenant_b in database idle_db), and max_connections
 * reached (too many clients). Each case uses the throwaway cluster of scripts/pg-test.sh;
 * skipped (77) without libpq or PostgreSQL. */
#include "pg_common.h"

#ifdef PG_TESTS_HAVE_LIBPQ
#include <pthread.h>

static void test_restart_idle(void **state)
{
    (void)state;
    tp_pg_target *t;
    tp_pg_pool *pp = pg_pool(NULL, "postgres", NULL, "postgres", &t);
    tp_conn *l[3];
    for (int i = 0; i < 3; i++)
        l[i] = pg_lease(pp, t);
    for (int i = 0; i < 3; i++)
        tp_pg_release(l[i], 0);
    assert_int_equal(pg_env_restart(&env), 0);
    /* Every new acquire works; the dead idle connections are closed on the way. */
    for (int i = 0; i < 10; i++) {
        tp_errinfo err = {0};
        tp_err rc = tp_pg_exec(pp, t, "SELECT 1", NULL, &err);
        if (rc != TP_OK)
            fail_msg("exec %d after restart: %s: %s", i, tp_err_name(rc), err.msg);
    }
    tp_stats st;
    tp_pool_stats(tp_pg_pool_tp(pp), &st);
    assert_true(st.closes[TP_CLOSE_CHECK_FAILED] + st.closes[TP_CLOSE_BROKEN] >= 1);
    assert_int_equal(st.open_failures, 0);
    tp_pg_pool_destroy(pp);
}

typedef struct sleeper {
    tp_pg_pool *pp;
    tp_conn *lease;
    tp_err rc;
    tp_errinfo err;
} sleeper;

static void *run_sleep(void *arg)
{
    sleeper *s = arg;
    s->rc = tp_pg_query_simple(s->lease, "SELECT pg_sleep(60)", &s->err);
    return NULL;
}

static void test_restart_in_use(void **state)
{
    (void)state;
    tp_pg_target *t;
    tp_pg_pool *pp = pg_pool(NULL, "postgres", NULL, "postgres", &t);
    sleeper s = {.pp = pp, .lease = pg_lease(pp, t)};
    tp_conn *held = pg_lease(pp, t); /* in use but idle in the protocol */
    pthread_t th;
    tu_thread_start(&th, run_sleep, &s);
    tu_sleep_ms(300);
    assert_int_equal(pg_env_restart(&env), 0);
    tu_thread_join(th);
    assert_int_equal(s.rc, TP_ECONNRESET);
    assert_non_null(strstr(s.err.msg, "bad connection"));
    tp_pg_release(s.lease, 0);
    tp_errinfo err = {0};
    assert_int_equal(tp_pg_query_simple(held, "SELECT 1", &err), TP_ECONNRESET);
    tp_pg_release(held, 0);
    tp_stats st;
    tp_pool_stats(tp_pg_pool_tp(pp), &st);
    assert_int_equal(st.closes[TP_CLOSE_BROKEN], 2);
    assert_int_equal(st.in_use, 0);
    assert_int_equal(tp_pg_exec(pp, t, "SELECT 1", NULL, &err), TP_OK);
    tp_pg_pool_destroy(pp);
}

/* idle_session_timeout = 1 s: whether the pool learnt it (and closes first) or not (and
 * the check finds the server's FATAL), the next statement just works. */
static void idle_timeout_case(bool learn)
{
    tp_pg_options o;
    tp_pg_options_init(&o);
    o.learn_idle_timeout = learn;
    o.pool.maintenance_interval = MS(100);
    tp_pg_target *t;
    tp_pg_pool *pp = pg_pool(&o, "tenant_b", PG_ENV_TENANT_PASSWORD, "idle_db", &t);
    for (int round = 0; round < 3; round++) {
        tp_conn *a = pg_lease(pp, t), *b = pg_lease(pp, t);
        pg_ok(a, "SELECT 1");
        pg_ok(b, "SELECT 1");
        tp_pg_release(a, 0);
        tp_pg_release(b, 0);
        tu_sleep_ms(1600);
        for (int i = 0; i < 3; i++) {
            tp_errinfo err = {0};
            tp_err rc = tp_pg_exec(pp, t, "SELECT current_user", NULL, &err);
            if (rc != TP_OK)
                fail_msg("learn=%d round %d: %s: %s", learn, round, tp_err_name(rc), err.msg);
        }
    }
    tp_stats st;
    tp_pool_stats(tp_pg_pool_tp(pp), &st);
    if (learn)
        assert_true(st.closes[TP_CLOSE_IDLE_TIMEOUT] >= 2);
    else
        assert_true(st.closes[TP_CLOSE_CHECK_FAILED] >= 2);
    tp_pg_pool_destroy(pp);
}

static void test_idle_session_timeout_learnt(void **state)
{
    (void)state;
    idle_timeout_case(true);
}

static void test_idle_session_timeout_checked(void **state)
{
    (void)state;
    idle_timeout_case(false);
}

static void test_too_many_clients(void **state)
{
    (void)state;
    /* Fill every slot (superuser reserved ones included) from outside the pool. */
    PGconn *hold[32];
    int n = 0;
    char ci[256];
    pg_env_conninfo(&env, ci, sizeof ci, "postgres", NULL, "postgres");
    for (; n < 32; n++) {
        hold[n] = PQconnectdb(ci);
        if (PQstatus(hold[n]) != CONNECTION_OK) {
            PQfinish(hold[n]);
            break;
        }
    }
    assert_true(n >= 10 && n < 32);

    tp_pg_options o;
    tp_pg_options_init(&o);
    o.pool.backoff_initial = MS(50);
    o.pool.breaker_cooldown = MS(500);
    tp_pg_target *t;
    tp_pg_pool *pp = pg_pool(&o, "postgres", NULL, "postgres", &t);
    tp_conn *l = NULL;
    tp_errinfo err = {0};
    tp_err rc = tp_pg_acquire(pp, t, MS(5000), 0, &l, &err);
    assert_int_equal(rc, TP_ESERVERFULL); /* at once: the pool holds nothing to wait for */
    assert_non_null(strstr(err.msg, "too many clients"));
    char ss[6];
    assert_string_equal(tp_pg_sqlstate(err.backend_code, ss), "53300");

    /* A tight loop of acquires for 2 s: one open at a time, each after a backoff of at
     * least half of max(50 ms, a quarter of the streak's age): at most 8 in the first
     * 200 ms and a factor 1.125 apart after that, under 30 in all (17 seen). */
    int64_t end = tu_now_ns() + MS(2000);
    int calls = 0;
    while (tu_now_ns() < end) {
        rc = tp_pg_acquire(pp, t, 0, 0, &l, NULL);
        assert_int_not_equal(rc, TP_OK);
        calls++;
    }
    tp_stats st;
    tp_pool_stats(tp_pg_pool_tp(pp), &st);
    print_message("%d acquires, %llu open failures\n", calls, (unsigned long long)st.open_failures);
    assert_true(calls > 100);
    assert_true(st.open_failures <= 30);

    for (int i = 0; i < n; i++)
        PQfinish(hold[i]);
    /* The server has room again: the pool recovers once its breaker lets a trial through. */
    bool ok = false;
    int64_t until = tu_now_ns() + MS(20000);
    while (!ok && tu_now_ns() < until) {
        ok = tp_pg_exec(pp, t, "SELECT 1", NULL, NULL) == TP_OK;
        if (!ok)
            tu_sleep_ms(100);
    }
    assert_true(ok);
    tp_pg_pool_destroy(pp);
}
#endif

int main(void)
{
#ifdef PG_TESTS_HAVE_LIBPQ
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_restart_idle),
        cmocka_unit_test(test_restart_in_use),
        cmocka_unit_test(test_idle_session_timeout_learnt),
        cmocka_unit_test(test_idle_session_timeout_checked),
        cmocka_unit_test(test_too_many_clients),
    };
    PG_MAIN("pg_server", tests);
#else
    fprintf(stderr, "libpq headers not installed: skipped\n");
    return 77;
#endif
}
