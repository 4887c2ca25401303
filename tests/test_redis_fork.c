/* test_redis_fork.c: a Redis pool across fork(), against a throwaway redis-server
 * (scripts/redis-test.sh). The parent holds an idle connection and forks; the child's
 * ten commands run on a connection of its own (another CLIENT ID), and letting go of
 * the inherited one sends nothing on it; then the parent's ten commands all run on its
 * own connection, with zero errors and zero new connections. Skipped (77) without
 * redis-server. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "redis_test_env.h"
#include "support/test_util.h"

static rt_env env;

/* n CLIENT ID commands through the pool; counts those that failed or ran on another
 * connection than want (want > 0) or on want itself (want < 0). No cmocka: the child
 * runs it too. */
static int commands(tp_redis_pool *rp, int n, long long want, long long *seen)
{
    int bad = 0;
    for (int i = 0; i < n; i++) {
        tp_redis_lease *l = NULL;
        if (tp_redis_acquire(rp, MS(5000), &l, NULL) != TP_OK) {
            bad++;
            continue;
        }
        redisReply *r = NULL;
        long long id = tp_redis_command(l, &r, NULL, "CLIENT ID") == TP_OK ? rt_int(r) : -1;
        tp_redis_reply_free(r);
        tp_redis_release(l, 0);
        if (seen != NULL)
            *seen = id;
        if (id < 0 || (want > 0 && id != want) || (want < 0 && id == -want))
            bad++;
    }
    return bad;
}

static void test_fork_keeps_the_parents_connection(void **state)
{
    (void)state;
    char url[256];
    tp_redis_pool *rp = NULL;
    assert_int_equal(
        tp_redis_pool_create_url(rt_url(&env, url, sizeof url, NULL, 0), NULL, &rp, NULL), TP_OK);
    long long parent_id = 0;
    assert_int_equal(commands(rp, 1, 0, &parent_id), 0);
    tp_stats before = tu_pool_stats(tp_redis_pool_tp(rp));
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int bad = commands(rp, 10, -parent_id, NULL);
        tp_redis_pool_destroy(rp);
        _exit(bad == 0 ? 0 : 1);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_int_equal(commands(rp, 10, parent_id, NULL), 0);
    tp_stats after = tu_pool_stats(tp_redis_pool_tp(rp));
    assert_int_equal(after.opens, before.opens);
    assert_int_equal(after.checks_failed, before.checks_failed);
    tp_redis_pool_destroy(rp);
}

int main(void)
{
    tu_watchdog(60);
    int rc = rt_start(&env);
    if (rc != 0)
        return rc;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fork_keeps_the_parents_connection),
    };
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    rt_stop(&env);
    return rc;
}
