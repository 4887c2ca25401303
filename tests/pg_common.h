/* tests/pg_common.h: helpers shared by the test_pg_*.c programs (header-only, static):
 * pool creation for a cluster user, one-value queries on a lease, and the skip logic
 * (exit 77 without libpq headers, a libpq build, or PostgreSQL). Main thread only. */
#ifndef TP_TEST_PG_COMMON_H
#define TP_TEST_PG_COMMON_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <tidepool/pg.h>
#include <tidepool/tidepool.h>

#if defined(__has_include)
#if __has_include(<postgresql/libpq-fe.h>)
#include <postgresql/libpq-fe.h>
#define PG_TESTS_HAVE_LIBPQ 1
#endif
#endif

#include "support/pg_env.h"
#include "support/test_util.h"

#ifdef PG_TESTS_HAVE_LIBPQ
static pg_env env;

/* A pool with one target; options tweaked by the caller through o (may be NULL). */
__attribute__((unused)) static tp_pg_pool *pg_pool(const tp_pg_options *o, const char *user, const char *pw,
                           const char *db, tp_pg_target **t)
{
    tp_pg_options def;
    tp_pg_options_init(&def);
    def.pool.maintenance_interval = MS(100);
    tp_pg_pool *pp = NULL;
    tp_errinfo err = {0};
    tp_err rc = tp_pg_pool_create(o != NULL ? o : &def, &pp, &err);
    if (rc != TP_OK)
        fail_msg("tp_pg_pool_create: %s", err.msg);
    char ci[256];
    rc = tp_pg_pool_add(pp, pg_env_conninfo(&env, ci, sizeof ci, user, pw, db), t, &err);
    if (rc != TP_OK)
        fail_msg("tp_pg_pool_add: %s", err.msg);
    return pp;
}

__attribute__((unused)) static tp_conn *pg_lease(tp_pg_pool *pp, const tp_pg_target *t)
{
    tp_conn *l = NULL;
    tp_errinfo err = {0};
    tp_err rc = tp_pg_acquire(pp, t, MS(20000), 0, &l, &err);
    if (rc != TP_OK)
        fail_msg("tp_pg_acquire: %s: %s", tp_err_name(rc), err.msg);
    return l;
}

/* Runs sql (one row, one column expected) with PQexec; copies the value into buf. */
__attribute__((unused)) static const char *pg_value(tp_conn *l, const char *sql, char *buf, size_t cap)
{
    PGresult *r = PQexec(tp_pg_conn_get(l), sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        char m[256];
        snprintf(m, sizeof m, "%s", PQresultErrorMessage(r));
        PQclear(r);
        fail_msg("%s: %s", sql, m);
    }
    snprintf(buf, cap, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    return buf;
}

__attribute__((unused)) static long pg_pid(tp_conn *l)
{
    char b[32];
    return atol(pg_value(l, "SELECT pg_backend_pid()", b, sizeof b));
}

__attribute__((unused)) static void pg_ok(tp_conn *l, const char *sql)
{
    tp_errinfo err = {0};
    tp_err rc = tp_pg_query_simple(l, sql, &err);
    if (rc != TP_OK)
        fail_msg("%s: %s: %s", sql, tp_err_name(rc), err.msg);
}

/* A superuser connection outside any pool, for setup and for killing backends. */
static PGconn *pg_admin(void)
{
    char ci[256];
    PGconn *c = PQconnectdb(pg_env_conninfo(&env, ci, sizeof ci, "postgres", NULL, "postgres"));
    if (PQstatus(c) != CONNECTION_OK) {
        PQfinish(c);
        fail_msg("admin connect failed");
    }
    return c;
}

__attribute__((unused)) static void pg_admin_exec(const char *sql)
{
    PGconn *c = pg_admin();
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    PQclear(r);
    PQfinish(c);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        fail_msg("admin: %s failed", sql);
}

/* Starts the cluster and runs the tests; 77 when anything needed is missing. */
static int pg_main(const char *name, const struct CMUnitTest *tests, size_t n)
{
    tp_pg_pool *probe = NULL;
    tp_err rc = tp_pg_pool_create_uri("host=127.0.0.1", NULL, &probe, NULL);
    tp_pg_pool_destroy(probe);
    if (rc == TP_ESTATE) {
        fprintf(stderr, "built without libpq: skipped\n");
        return 77;
    }
    int st = pg_env_start(&env, name);
    if (st != 0) {
        fprintf(stderr, "pg-test.sh start failed (%d)\n", st);
        pg_env_stop(&env);
        return st == 77 ? 77 : 1;
    }
    tu_watchdog(170);
    int failed = _cmocka_run_group_tests(name, tests, n, NULL, NULL);
    pg_env_stop(&env);
    return failed == 0 ? 0 : 1;
}
#define PG_MAIN(name, tests) return pg_main(name, tests, sizeof(tests) / sizeof((tests)[0]))
#else
#define PG_MAIN(name, tests)                                                                 \
    do {                                                                                     \
        (void)(tests);                                                                       \
        fprintf(stderr, "libpq headers not installed: skipped\n");                           \
        return 77;                                                                           \
    } while (0)
#endif

#endif
