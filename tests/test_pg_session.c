/* test_pg_session.c: the PostgreSQL connector against a real throwaway cluster
 * (scripts/pg-test.sh): reuse, the reset on release (open and failed transactions, SET,
 * TEMP tables, LISTEN, unread results), isolation between users, credentials kept out
 * of keys, errors and traces, and tp_pg_exec's retry rule. Skipped (77) without libpq
 * or PostgreSQL. */
#include "pg_common.h"

#ifdef PG_TESTS_HAVE_LIBPQ
#include <pthread.h>

/* Many statements, one connection. */
static void test_reuse(void **state)
{
    (void)state;
    tp_pg_target *t;
    tp_pg_pool *pp = pg_pool(NULL, "postgres", NULL, "postgres", &t);
    long first = -1;
    for (int i = 0; i < 200; i++) {
        tp_conn *l = pg_lease(pp, t);
        long pid = pg_pid(l);
        if (first < 0)
            first = pid;
        assert_int_equal(pid, first);
        tp_pg_release(l, 0);
    }
    for (int i = 0; i < 50; i++) {
        PGresult *r = NULL;
        tp_errinfo err = {0};
        assert_int_equal(tp_pg_exec(pp, NULL, "SELECT pg_backend_pid()", &r, &err), TP_OK);
        assert_int_equal(atol(PQgetvalue(r, 0, 0)), first);
        PQclear(r);
    }
    tp_stats st;
    tp_pool_stats(tp_pg_pool_tp(pp), &st);
    assert_int_equal(st.opens, 1);
    assert_int_equal(st.acquires, 250);
    tp_pg_pool_destroy(pp);
}

/* Each case: a lease leaves state behind, the next lease (same backend) sees none. */
static void test_reset(void **state)
{
    (void)state;
    pg_admin_exec("CREATE TABLE IF NOT EXISTS roll_t(x int)");
    tp_pg_target *t;
    tp_pg_pool *pp = pg_pool(NULL, "postgres", NULL, "postgres", &t);
    char b[128];

    /* An open transaction is rolled back. */
    tp_conn *l = pg_lease(pp, t);
    long pid = pg_pid(l);
    pg_ok(l, "BEGIN");
    pg_ok(l, "INSERT INTO roll_t VALUES (1)");
    char xact_start[64];
    pg_value(l, "SELECT now()::text", xact_start, sizeof xact_start);
    tp_pg_release(l, 0);
    l = pg_lease(pp, t);
    assert_int_equal(pg_pid(l), pid);
    assert_int_equal(PQtransactionStatus(tp_pg_conn_get(l)), PQTRANS_IDLE);
    assert_string_equal(pg_value(l, "SELECT count(*) FROM roll_t", b, sizeof b), "0");
    assert_string_not_equal(pg_value(l, "SELECT now()::text", b, sizeof b), xact_start);
    tp_pg_release(l, 0);

    /* A failed transaction too. */
    l = pg_lease(pp, t);
    pg_ok(l, "BEGIN");
    tp_errinfo err = {0};
    assert_int_equal(tp_pg_query_simple(l, "SELECT 1/0", &err), TP_EIO);
    char ss[6];
    assert_string_equal(tp_pg_sqlstate(err.backend_code, ss), "22012");
    assert_int_equal(PQtransactionStatus(tp_pg_conn_get(l)), PQTRANS_INERROR);
    tp_pg_release(l, 0);
    l = pg_lease(pp, t);
    assert_int_equal(pg_pid(l), pid);
    assert_string_equal(pg_value(l, "SELECT 42", b, sizeof b), "42");

    /* SET, a TEMP table and LISTEN through the helpers: the reset statement runs. */
    pg_ok(l, "SET search_path = pg_catalog");
    pg_ok(l, "SET application_name = 'leaky'");
    pg_ok(l, "CREATE TEMP TABLE tt(x int)");
    pg_ok(l, "LISTEN chan_a");
    tp_pg_release(l, 0);
    l = pg_lease(pp, t);
    assert_int_equal(pg_pid(l), pid);
    assert_string_not_equal(pg_value(l, "SHOW application_name", b, sizeof b), "leaky");
    assert_string_equal(pg_value(l, "SHOW search_path", b, sizeof b), "\"$user\", public");
    assert_string_equal(pg_value(l, "SELECT to_regclass('tt') IS NULL", b, sizeof b), "t");
    assert_string_equal(pg_value(l, "SELECT count(*) FROM pg_listening_channels()", b, sizeof b),
                        "0");

    /* With the caller's own PQexec, tp_pg_mark_dirty() asks for the reset. */
    PQclear(PQexec(tp_pg_conn_get(l), "SET application_name = 'raw'"));
    tp_pg_mark_dirty(l);
    tp_pg_release(l, 0);
    l = pg_lease(pp, t);
    assert_string_not_equal(pg_value(l, "SHOW application_name", b, sizeof b), "raw");

    /* Results left unread (a query in progress): the connection is closed, not reused. */
    assert_int_equal(PQsendQuery(tp_pg_conn_get(l), "SELECT pg_sleep(0.05)"), 1);
    tp_pg_release(l, 0);
    l = pg_lease(pp, t);
    assert_int_not_equal(pg_pid(l), pid);
    tp_pg_release(l, 0);
    tp_stats st;
    tp_pool_stats(tp_pg_pool_tp(pp), &st);
    assert_int_equal(st.closes[TP_CLOSE_RESET_FAILED], 1);
    tp_pg_pool_destroy(pp);
}

/* strict_reset: DISCARD ALL after every lease, even raw PQexec SETs and LISTEN. */
static void test_strict_reset(void **state)
{
    (void)state;
    tp_pg_options o;
    tp_pg_options_init(&o);
    o.strict_reset = true;
    tp_pg_target *t;
    tp_pg_pool *pp = pg_pool(&o, "postgres", NULL, "postgres", &t);
    char b[64];
    tp_conn *l = pg_lease(pp, t);
    long pid = pg_pid(l);
    PQclear(PQexec(tp_pg_conn_get(l), "SET statement_timeout = '123s'"));
    PQclear(PQexec(tp_pg_conn_get(l), "LISTEN chan_b"));
    PQclear(PQexec(tp_pg_conn_get(l), "CREATE TEMP TABLE tt2(x int)"));
    tp_pg_release(l, 0);
    l = pg_lease(pp, t);
    assert_int_equal(pg_pid(l), pid);
    assert_string_equal(pg_value(l, "SHOW statement_timeout", b, sizeof b), "0");
    assert_string_equal(pg_value(l, "SELECT count(*) FROM pg_listening_channels()", b, sizeof b),
                        "0");
    assert_string_equal(pg_value(l, "SELECT to_regclass('tt2') IS NULL", b, sizeof b), "t");
    tp_pg_release(l, 0);
    tp_pg_pool_destroy(pp);
}

/* Two users in one pool: different keys, never each other's connections. */
static void test_tenants(void **state)
{
    (void)state;
    tp_pg_target *ta, *tb, *tb2;
    tp_pg_pool *pp = pg_pool(NULL, "postgres", NULL, "postgres", &ta);
    char ci[256], b[64];
    tp_errinfo err = {0};
    assert_int_equal(tp_pg_pool_add(pp,
                                    pg_env_conninfo(&env, ci, sizeof ci, "tenant_b",
                                                    PG_ENV_TENANT_PASSWORD, "tenant_b"),
                                    &tb, &err),
                     TP_OK);
    assert_int_equal(tp_pg_pool_add(pp, ci, &tb2, &err), TP_OK);
    assert_ptr_equal(tb, tb2); /* the same conninfo is the same target */
    assert_string_not_equal(tp_pg_target_key(ta, NULL), tp_pg_target_key(tb, NULL));
    for (int i = 0; i < 40; i++) {
        tp_conn *la = pg_lease(pp, ta), *lb = pg_lease(pp, tb);
        assert_string_equal(pg_value(la, "SELECT current_user", b, sizeof b), "postgres");
        assert_string_equal(pg_value(lb, "SELECT current_user", b, sizeof b), "tenant_b");
        tp_pg_release(i % 2 ? la : lb, 0);
        tp_pg_release(i % 2 ? lb : la, 0);
    }
    /* A different application_name is a different session: another key. */
    tp_pg_target *tc;
    char ci2[300];
    snprintf(ci2, sizeof ci2, "%s application_name=other", ci);
    assert_int_equal(tp_pg_pool_add(pp, ci2, &tc, &err), TP_OK);
    assert_string_not_equal(tp_pg_target_key(tc, NULL), tp_pg_target_key(tb, NULL));
    tp_stats st;
    tp_pool_stats(tp_pg_pool_tp(pp), &st);
    assert_int_equal(st.opens, 2);
    tp_pg_pool_destroy(pp);
}

/* ---- credentials never leak ---- */

static pthread_mutex_t trace_mu = PTHREAD_MUTEX_INITIALIZER;
static int trace_events, trace_leaks;

static bool has_secret(const void *p, size_t n, const char *secret)
{
    return n >= strlen(secret) && memmem(p, n, secret, strlen(secret)) != NULL;
}

static void trace(void *ud, const tp_trace_event *ev)
{
    pthread_mutex_lock(&trace_mu);
    trace_events++;
    trace_leaks += has_secret(ev->key, ev->keylen, (const char *)ud);
    pthread_mutex_unlock(&trace_mu);
}

static void visit(void *ud, const void *key, size_t keylen, const tp_stats *st)
{
    (void)st;
    *(int *)ud += has_secret(key, keylen, PG_ENV_TENANT_PASSWORD) || has_secret(key, keylen, "Wr0ng-Pass");
}

static void test_credentials(void **state)
{
    (void)state;
    tp_pg_options o;
    tp_pg_options_init(&o);
    o.pool.trace = trace;
    o.pool.trace_ud = (void *)PG_ENV_TENANT_PASSWORD;
    tp_pg_target *tb, *bad;
    tp_pg_pool *pp = pg_pool(&o, "tenant_b", PG_ENV_TENANT_PASSWORD, "tenant_b", &tb);
    size_t klen;
    const char *key = tp_pg_target_key(tb, &klen);
    assert_false(has_secret(key, klen, PG_ENV_TENANT_PASSWORD));
    assert_non_null(strstr(key, "pg://tenant_b@127.0.0.1:"));
    tp_errinfo err = {0};
    assert_int_equal(tp_pg_exec(pp, tb, "SELECT 1", NULL, &err), TP_OK);

    /* A wrong password: TP_EOPEN, a clear message, no password. */
    char ci[256];
    assert_int_equal(tp_pg_pool_add(pp,
                                    pg_env_conninfo(&env, ci, sizeof ci, "tenant_b",
                                                    "Wr0ng-Pass", "tenant_b"),
                                    &bad, &err),
                     TP_OK);
    tp_conn *l = NULL;
    memset(&err, 0, sizeof err);
    assert_int_equal(tp_pg_acquire(pp, bad, MS(10000), 0, &l, &err), TP_EOPEN);
    assert_non_null(strstr(err.msg, "authentication failed for user"));
    assert_non_null(strstr(err.msg, "tenant_b"));
    assert_null(strstr(err.msg, "Wr0ng-Pass"));
    assert_null(strstr(err.msg, PG_ENV_TENANT_PASSWORD));
    char ss[6];
    assert_string_equal(tp_pg_sqlstate(err.backend_code, ss), "28P01");
    /* Then the breaker/backoff path: its messages name the last error, still scrubbed. */
    memset(&err, 0, sizeof err);
    tp_err rc = tp_pg_acquire(pp, bad, 0, 0, &l, &err);
    assert_int_not_equal(rc, TP_OK);
    assert_null(strstr(err.msg, "Wr0ng-Pass"));

    /* A conninfo libpq cannot parse: its fragment (here the password) is not quoted. */
    tp_pg_target *unparsable = NULL;
    memset(&err, 0, sizeof err);
    assert_int_equal(tp_pg_pool_add(pp, "host=127.0.0.1 password Wr0ng-Pass", &unparsable, &err),
                     TP_EINVAL);
    assert_null(strstr(err.msg, "Wr0ng-Pass"));

    /* Keys as metrics see them. */
    int leaks = 0;
    tp_pool_key_visit(tp_pg_pool_tp(pp), visit, &leaks);
    assert_int_equal(leaks, 0);
    tp_pg_pool_destroy(pp);
    assert_true(trace_events > 0);
    assert_int_equal(trace_leaks, 0);
}

/* ---- tp_pg_exec: retry only a statement that never left ---- */

static void test_exec_retry_idle_kill(void **state)
{
    (void)state;
    tp_pg_options o;
    tp_pg_options_init(&o);
    o.pool.check_after_idle = TP_DURATION_INFINITE; /* no check: the retry must do it */
    o.pool.idle_timeout = TP_DURATION_INFINITE;
    tp_pg_target *t;
    tp_pg_pool *pp = pg_pool(&o, "postgres", NULL, "postgres", &t);
    PGresult *r = NULL;
    tp_errinfo err = {0};
    assert_int_equal(tp_pg_exec(pp, t, "SELECT pg_backend_pid()", &r, &err), TP_OK);
    long pid = atol(PQgetvalue(r, 0, 0));
    PQclear(r);
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT pg_terminate_backend(%ld, 10000)", pid);
    pg_admin_exec(sql);
    tu_sleep_ms(100); /* the FATAL and the FIN reach our socket */
    r = NULL;
    assert_int_equal(tp_pg_exec(pp, t, "SELECT pg_backend_pid()", &r, &err), TP_OK);
    assert_int_not_equal(atol(PQgetvalue(r, 0, 0)), pid);
    PQclear(r);
    tp_stats st;
    tp_pool_stats(tp_pg_pool_tp(pp), &st);
    assert_int_equal(st.opens, 2);
    assert_int_equal(st.closes[TP_CLOSE_BROKEN], 1);
    tp_pg_pool_destroy(pp);
}

typedef struct exec_job {
    tp_pg_pool *pp;
    tp_err rc;
    tp_errinfo err;
    atomic_bool done;
} exec_job;

static void *exec_sleep(void *arg)
{
    exec_job *j = arg;
    j->rc = tp_pg_exec(j->pp, NULL, "SELECT pg_sleep(60)", NULL, &j->err);
    atomic_store(&j->done, true);
    return NULL;
}

static void test_exec_no_retry_after_send(void **state)
{
    (void)state;
    tp_pg_target *t;
    tp_pg_pool *pp = pg_pool(NULL, "postgres", NULL, "postgres", &t);
    /* Warm one connection so the statement runs on a reused one (retry territory). */
    assert_int_equal(tp_pg_exec(pp, t, "SELECT 1", NULL, NULL), TP_OK);
    exec_job j = {.pp = pp};
    pthread_t th;
    tu_thread_start(&th, exec_sleep, &j);
    PGconn *admin = pg_admin();
    bool killed = false;
    for (int i = 0; i < 200 && !killed; i++) {
        PGresult *r = PQexec(admin, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                    "WHERE query = 'SELECT pg_sleep(60)' AND state = 'active'");
        killed = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1;
        PQclear(r);
        if (!killed)
            tu_sleep_ms(50);
    }
    PQfinish(admin);
    assert_true(killed);
    tu_thread_join(th);
    assert_int_equal(j.rc, TP_ECONNRESET);
    assert_non_null(strstr(j.err.msg, "bad connection"));
    char ss[6];
    assert_string_equal(tp_pg_sqlstate(j.err.backend_code, ss), "57P01");
    tp_stats st;
    tp_pool_stats(tp_pg_pool_tp(pp), &st);
    assert_int_equal(st.opens, 1); /* not retried */
    assert_int_equal(st.closes[TP_CLOSE_BROKEN], 1);
    tp_pg_pool_destroy(pp);
}

/* Internal (src/pg/query.c): the packing behind tp_errinfo.backend_code. */
int tp__pg_sqlstate_code(const char *sqlstate);

static void test_sqlstate_codec(void **state)
{
    (void)state;
    char ss[6];
    const char *codes[] = {"00000", "53300", "57P01", "28P01", "08006", "XX000", "22012"};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        int c = tp__pg_sqlstate_code(codes[i]);
        assert_int_not_equal(c, 0);
        assert_string_equal(tp_pg_sqlstate(c, ss), codes[i]);
    }
    assert_string_equal(tp_pg_sqlstate(0, ss), "");
}
#endif

int main(void)
{
#ifdef PG_TESTS_HAVE_LIBPQ
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sqlstate_codec),
        cmocka_unit_test(test_reuse),
        cmocka_unit_test(test_reset),
        cmocka_unit_test(test_strict_reset),
        cmocka_unit_test(test_tenants),
        cmocka_unit_test(test_credentials),
        cmocka_unit_test(test_exec_retry_idle_kill),
        cmocka_unit_test(test_exec_no_retry_after_send),
    };
    PG_MAIN("pg_session", tests);
#else
    fprintf(stderr, "libpq headers not installed: skipped\n");
    return 77;
#endif
}
