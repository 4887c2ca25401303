/* test_http_nginx_fork.c: an HTTP client across fork(), against the real nginx of the
 * "nginx" fixture. A parent holding an idle keep-alive connection (plain, TLS) forks;
 * the child makes ten GETs, all on connections of its own (none of the parent's is
 * reused there, and letting go of them sends nothing: no FIN, no close_notify); then
 * the parent makes ten GETs on its own idle connections: zero errors, zero new
 * connects. Skipped (77) when the fixture is not there. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include <tidepool/tidepool.h>

#include "support/nginx_env.h"
#include "support/test_util.h"

static nginx_env env;

/* n GETs of url; returns how many failed or found a reused connection where they should
 * not (want_reused: every one must be reused). */
static int gets(tp_http_client *c, const char *url, int n, bool want_reused)
{
    int bad = 0;
    for (int i = 0; i < n; i++) {
        tp_http_response *r = NULL;
        tp_errinfo e;
        tp_err rc = tp_http_get(c, url, &r, &e);
        if (rc != TP_OK || tp_http_response_status(r) != 200) {
            fprintf(stderr, "GET %s: %s %s\n", url, tp_err_name(rc), rc != TP_OK ? e.msg : "");
            bad++;
        } else {
            tp_http_response_info info;
            tp_http_response_get_info(r, &info);
            if (want_reused && !info.reused)
                bad++;
        }
        tp_http_response_free(r);
    }
    return bad;
}

/* In the child: ten GETs on new connections, then the client goes (its inherited idle
 * connections included). Exit status: 0, or what went wrong. */
static int child(tp_http_client *c, const char *url)
{
    tp_stats before;
    tp_pool_stats(tp_http_client_pool(c), &before);
    int bad = gets(c, url, 10, false);
    tp_stats after;
    tp_pool_stats(tp_http_client_pool(c), &after);
    /* The inherited connections were let go of, and what served is the child's own. */
    uint64_t opened = after.opens - before.opens;
    if (opened < 1 || after.closes[TP_CLOSE_INHERITED] != 1)
        bad += fprintf(stderr, "child: %llu opens, %llu inherited closes\n",
                       (unsigned long long)opened,
                       (unsigned long long)after.closes[TP_CLOSE_INHERITED]) > 0;
    tp_http_client_destroy(c);
    return bad == 0 ? 0 : 1;
}

static void fork_case(bool tls)
{
    tp_http_client_options o;
    tp_http_client_options_init(&o);
    o.ca_file = env.ca_file;
    tp_http_client *c = NULL;
    tp_errinfo e;
    assert_int_equal(tp_http_client_create(&o, &c, &e), TP_OK);
    char url[128];
    snprintf(url, sizeof url, "%s://127.0.0.1:%u/", tls ? "https" : "http",
             (unsigned)(tls ? env.https_port : env.http_port));
    /* One idle keep-alive connection in the parent. */
    tp_pool *p = tp_http_client_pool(c);
    assert_int_equal(gets(c, url, 1, false), 0);
    tp_stats st;
    tp_pool_stats(p, &st);
    assert_int_equal(st.idle, 1);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(child(c, url));
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    /* The parent's connection survived the child: reused ten times, nothing opened. */
    assert_int_equal(gets(c, url, 10, true), 0);
    tp_stats after;
    tp_pool_stats(p, &after);
    assert_int_equal(after.opens, st.opens);
    assert_int_equal(after.open_failures, 0);
    assert_int_equal(after.closes[TP_CLOSE_INHERITED], 0);
    tp_http_client_destroy(c);
}

static void test_fork_plain(void **state)
{
    (void)state;
    fork_case(false);
}

static void test_fork_tls(void **state)
{
    (void)state;
    fork_case(true);
}

int main(void)
{
    if (nginx_env_load(&env) != 0)
        return 77;
    tu_watchdog(60);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fork_plain),
        cmocka_unit_test(test_fork_tls),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
