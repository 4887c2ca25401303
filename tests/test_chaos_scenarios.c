/* test_chaos_scenarios.c: every scenario shipped under scenarios/ run by the CLI
 * (`tidepool chaos run FILE --url ... --client blocking|engine --json`) against the
 * fixture's nginx, through the blocking call and through the engine, with nginx's log of
 * what /echo received (so each POST must have reached it at most once) and the fixture's
 * script as the command that restarts it: each must exit 0
 * with every verdict passing. Then a scenario that must fail (no error allowed,
 * while every connection is reset five times under load) exits 1 with that verdict
 * failing: the verdicts can fail. Skipped (77) without the fixture or the CLI. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <tidepool/tidepool.h>

#include "support/chaos_cli.h"
#include "support/nginx_env.h"
#include "support/test_util.h"

static nginx_env env;
static const char *cli;

static void test_shipped_scenarios_pass(void **state)
{
    (void)state;
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/echo", (unsigned)env.http_port);
    char log[600];
    snprintf(log, sizeof log, "%s/echo.log", env.dir); /* nginx-test.sh: what /echo saw */
    int failed;
    char restart[1200]; /* the real server restarted (scenarios/server-restart.json) */
    snprintf(restart, sizeof restart, "bash '%s/scripts/nginx-test.sh' restart '%s'",
             TIDEPOOL_SOURCE_DIR, env.dir);
    chaos_cli_opts o = {
        .url = url, .client = "blocking", .server_log = log, .restart_cmd = restart};
    int ran = chaos_cli_run_dir(cli, "scenarios", &o, &failed);
    assert_int_equal(failed, 0);
    o.client = "engine";
    int ran_engine = chaos_cli_run_dir(cli, "scenarios", &o, &failed);
    assert_int_equal(failed, 0);
    assert_int_equal(ran_engine, ran);
    assert_true(ran >= 11); /* restart, upstream down, resets, latency, black hole, half-open,
                               stop-reading, bandwidth, refused and delayed accepts, mixed,
                               long outage */
}

static void test_a_failing_verdict_fails(void **state)
{
    (void)state;
    char path[] = "/tmp/tp-chaos-scenario-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *json = "{\"name\": \"no error allowed\", \"method\": \"POST\", \"concurrency\": 4,"
                       " \"duration\": \"1500ms\", \"allowed_errors\": [], \"schedule\": ["
                       "{\"at\": \"200ms\", \"reset_all\": true},"
                       "{\"at\": \"400ms\", \"reset_all\": true},"
                       "{\"at\": \"600ms\", \"reset_all\": true},"
                       "{\"at\": \"800ms\", \"reset_all\": true},"
                       "{\"at\": \"1s\", \"reset_all\": true}]}";
    assert_int_equal(write(fd, json, strlen(json)), (ssize_t)strlen(json));
    close(fd);
    static char out[65536];
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/echo", (unsigned)env.http_port);
    int st = chaos_cli_run(cli, path, &(chaos_cli_opts){.url = url}, out, sizeof out);
    unlink(path);
    print_message("exit %d: %s", st, out);
    assert_int_equal(st, 1);
    assert_non_null(strstr(out, "{\"name\": \"only_explained_errors\", \"pass\": false"));
    assert_non_null(strstr(out, "{\"name\": \"no_misdelivery\", \"pass\": true"));
}

/* A scenario that restarts its server needs the command that does it, and a restart
 * step says only when: each refused before any load runs (exit 2), with the reason. */
static void test_restart_steps_checked(void **state)
{
    (void)state;
    const char *cases[][2] = {
        {"{\"schedule\": [{\"at\": \"100ms\", \"restart\": true}]}", NULL}, /* no command */
        {"{\"schedule\": [{\"at\": \"100ms\", \"restart\": false}]}", "true"},
        {"{\"schedule\": [{\"at\": \"100ms\", \"restart\": true, \"for\": \"1s\"}]}", "true"},
    };
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/echo", (unsigned)env.http_port);
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char path[] = "/tmp/tp-chaos-scenario-XXXXXX";
        int fd = mkstemp(path);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, cases[i][0], strlen(cases[i][0])), (ssize_t)strlen(cases[i][0]));
        close(fd);
        static char out[4096];
        chaos_cli_opts o = {.url = url, .restart_cmd = cases[i][1]};
        int64_t t0 = tp_clock_now();
        int st = chaos_cli_run(cli, path, &o, out, sizeof out);
        unlink(path);
        assert_int_equal(st, 2);
        assert_true(tp_clock_now() - t0 < 2 * TP_NSEC_PER_SEC); /* no load ran */
    }
}

int main(void)
{
    if (nginx_env_load(&env) != 0)
        return 77;
    cli = chaos_cli_path();
    if (cli == NULL) {
        fprintf(stderr, "TIDEPOOL_CLI not set: skipped\n");
        return 77;
    }
    tu_watchdog(280);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shipped_scenarios_pass),
        cmocka_unit_test(test_a_failing_verdict_fails),
        cmocka_unit_test(test_restart_steps_checked),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
