/* test_pg_fork.c: a PostgreSQL pool across fork(), against the throwaway cluster of
 * scripts/pg-test.sh. A child must never write on its parent's libpq connection (the
 * two would interleave on one session, and the child's PQfinish would send Terminate
 * and end it). The parent holds an idle connection and forks; the child's ten
 * statements run on a backend of its own, and its pool's destruction says nothing to
 * the parent's backend; then the parent's ten statements all run on its own backend,
 * with zero errors and zero new connections. Skipped (77) without libpq or PostgreSQL. */
#include "pg_common.h"

#ifdef PG_TESTS_HAVE_LIBPQ
#include <sys/wait.h>
#include <unistd.h>

/* The backend pid of a lease, or -1 (no cmocka here: the child uses it too). */
static long backend_pid(tp_conn *l)
{
    PGresult *r = PQexec(tp_pg_conn_get(l), "SELECT pg_backend_pid()");
    long pid = PQresultStatus(r) == PGRES_TUPLES_OK ? atol(PQgetvalue(r, 0, 0)) : -1;
    PQclear(r);
    return pid;
}

/* n statements through the pool; counts those that failed or ran on a backend other
 * than want (want > 0) or on want itself (want < 0). */
static int statements(tp_pg_pool *pp, tp_pg_target *t, int n, long want)
{
    int bad = 0;
    for (int i = 0; i < n; i++) {
        tp_conn *l = NULL;
        tp_errinfo e;
        if (tp_pg_acquire(pp, t, MS(5000), 0, &l, &e) != TP_OK) {
            fprintf(stderr, "acquire: %s\n", e.msg);
            bad++;
            continue;
        }
        long pid = backend_pid(l);
        if (pid < 0 || (want > 0 && pid != want) || (want < 0 && pid == -want))
            bad++;
        tp_pg_release(l, 0);
    }
    return bad;
}

static void test_fork_keeps_the_parents_session(void **state)
{
    (void)state;
    tp_pg_target *t;
    tp_pg_pool *pp = pg_pool(NULL, "postgres", NULL, "postgres", &t);
    tp_conn *l = pg_lease(pp, t);
    long parent_pid = backend_pid(l);
    assert_true(parent_pid > 0);
    tp_pg_release(l, 0);
    tp_stats before;
    tp_pool_stats(tp_pg_pool_tp(pp), &before);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int bad = statements(pp, t, 10, -parent_pid);
        tp_pg_pool_destroy(pp);
        _exit(bad == 0 ? 0 : 1);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_int_equal(statements(pp, t, 10, parent_pid), 0);
    tp_stats after;
    tp_pool_stats(tp_pg_pool_tp(pp), &after);
    assert_int_equal(after.opens, before.opens);
    assert_int_equal(after.checks_failed, before.checks_failed);
    tp_pg_pool_destroy(pp);
}
#endif

int main(void)
{
#ifdef PG_TESTS_HAVE_LIBPQ
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fork_keeps_the_parents_session),
    };
    PG_MAIN("pg_fork", tests);
#else
    fprintf(stderr, "libpq headers not installed: skipped\n");
    return 77;
#endif
}
