/* test_fleet_cli.c: the fleet budget from the command line, against the throwaway
 * redis-server of scripts/redis-test.sh (which is both the budget's home and the bench's
 * target): two `tidepool bench redis://... --fleet ...` processes with a cap of 3 share
 * it (never more than 3 open between them, as `tidepool fleet status --json` shows while
 * they run, no request fails, each reports the budget in its --json line); wrong input
 * gets a clear error and exit status 2 (a cap of 0, --fleet without a name, a name too
 * long); an unreachable Redis exits 1 saying so; the status of an unknown budget says
 * there is none. Skipped (77) without redis-server or the CLI. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "redis_test_env.h"
#include "support/test_util.h"

static rt_env env;
static const char *cli;
static char url[96];

/* Runs cmd through sh, its stdout and stderr into out; the exit status. */
static int run(const char *cmd, char *out, size_t cap)
{
    char line[1024];
    snprintf(line, sizeof line, "%s 2>&1", cmd);
    FILE *f = popen(line, "r");
    if (f == NULL)
        return -1;
    size_t n = fread(out, 1, cap - 1, f);
    out[n] = '\0';
    int st = pclose(f);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

/* The integer after "key": in a JSON text (first occurrence after from), or -1. */
static long long json_int(const char *s, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(s, pat);
    return p != NULL ? atoll(p + strlen(pat)) : -1;
}

static void test_two_benches_share_the_cap(void **state)
{
    (void)state;
    char cmd[2][512];
    FILE *b[2];
    for (int i = 0; i < 2; i++) {
        snprintf(cmd[i], sizeof cmd[i],
                 "'%s' bench %s -c 8 -d 3 --json -q --fleet %s --fleet-name clitest "
                 "--fleet-cap 3 --fleet-instance bench-%d 2>&1",
                 cli, url, url, i);
        b[i] = popen(cmd[i], "r");
        assert_non_null(b[i]);
    }
    /* While they run: never more than 3 held between them. */
    int64_t most = 0, members = 0;
    char st[4096];
    int64_t t0 = tu_now_ns();
    while (tu_ms_since(t0) < 2500) {
        char c[512];
        snprintf(c, sizeof c, "'%s' fleet status %s clitest --json", cli, url);
        if (run(c, st, sizeof st) == 0) {
            long long held = json_int(st, "held");
            long long n = json_int(st, "instances");
            most = held > most ? held : most;
            members = n > members ? n : members;
        }
        tu_sleep_ms(100);
    }
    char out[2][8192];
    for (int i = 0; i < 2; i++) {
        size_t n = fread(out[i], 1, sizeof out[i] - 1, b[i]);
        out[i][n] = '\0';
        int status = pclose(b[i]);
        print_message("bench %d: %s", i,
                      strstr(out[i], "{\"tool\"") ? strstr(out[i], "{\"tool\"") : out[i]);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        const char *j = strstr(out[i], "{\"tool\"");
        assert_non_null(j);
        assert_int_equal(json_int(j, "errors"), 0);
        assert_true(json_int(j, "requests") > 0);
        const char *fl = strstr(j, "\"fleet\":{");
        assert_non_null(fl);
        assert_int_equal(json_int(fl, "cap"), 3);
        assert_true(json_int(fl, "held") >= 0 && json_int(fl, "held") <= 3);
    }
    print_message("fleet status: at most %lld held by %lld instances\n", (long long)most,
                  (long long)members);
    assert_true(most >= 1 && most <= 3);
    assert_int_equal(members, 2);
}

static void test_wrong_input(void **state)
{
    (void)state;
    char out[4096], c[768];
    snprintf(c, sizeof c, "'%s' bench %s -d 1 --fleet %s --fleet-name x --fleet-cap 0", cli, url,
             url);
    assert_int_equal(run(c, out, sizeof out), 2);
    assert_non_null(strstr(out, "--fleet-cap"));
    snprintf(c, sizeof c, "'%s' bench %s -d 1 --fleet %s --fleet-cap 3", cli, url, url);
    assert_int_equal(run(c, out, sizeof out), 2);
    assert_non_null(strstr(out, "--fleet-name"));
    snprintf(c, sizeof c, "'%s' bench %s -d 1 --fleet-name x --fleet-cap 3", cli, url);
    assert_int_equal(run(c, out, sizeof out), 2);
    char longname[100];
    memset(longname, 'n', 99);
    longname[99] = '\0';
    snprintf(c, sizeof c, "'%s' bench %s -d 1 --fleet %s --fleet-name %s --fleet-cap 3", cli, url,
             url, longname);
    assert_int_equal(run(c, out, sizeof out), 1);
    assert_non_null(strstr(out, "TP_EINVAL"));
    assert_non_null(strstr(out, "name"));
    /* Nothing listens on port 1. */
    snprintf(c, sizeof c,
             "'%s' bench %s -d 1 --fleet redis://127.0.0.1:1 --fleet-name x --fleet-cap 3", cli,
             url);
    assert_int_equal(run(c, out, sizeof out), 1);
    assert_non_null(strstr(out, "TP_EUNAVAIL"));
    assert_non_null(strstr(out, "127.0.0.1:1"));
    snprintf(c, sizeof c, "'%s' fleet status %s no-such-budget", cli, url);
    assert_int_equal(run(c, out, sizeof out), 1);
    assert_non_null(strstr(out, "TP_ESTATE"));
    snprintf(c, sizeof c, "'%s' fleet status %s", cli, url);
    assert_int_equal(run(c, out, sizeof out), 2);
    assert_non_null(strstr(out, "usage"));
}

int main(void)
{
    cli = getenv("TIDEPOOL_CLI");
    if (cli == NULL || access(cli, X_OK) != 0) {
        fprintf(stderr, "TIDEPOOL_CLI not set: skipped\n");
        return 77;
    }
    tu_watchdog(120);
    int rc = rt_start(&env);
    if (rc != 0)
        return rc;
    rt_url(&env, url, sizeof url, NULL, 0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_two_benches_share_the_cap),
        cmocka_unit_test(test_wrong_input),
    };
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    rt_stop(&env);
    return rc;
}
