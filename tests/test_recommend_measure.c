/* test_recommend_measure.c: `tidepool recommend --measure` against a running bench (its
 * built-in loopback server, 8 requests in flight, metrics served on loopback). The
 * formula's answer must follow from the inputs it reports (alpha = hold / RTT, N =
 * min(ceil(rate x RTT x alpha), ports / destinations)) and stay within what a closed
 * loop of 8 allows by hand (Little's law: at most 8 in use, at least 1); the RTT is the
 * destination's live sockets' (sock_diag), 8 of them; Erlang C is trusted and is at
 * least the formula. Also its usage errors. Runs the CLI (TIDEPOOL_CLI). */
#include <math.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "support/test_util.h"

static const char *cli;

static int run(const char *cmd, char *out, size_t cap)
{
    FILE *f = popen(cmd, "r");
    if (f == NULL)
        return -1;
    size_t n = fread(out, 1, cap - 1, f);
    out[n] = '\0';
    int st = pclose(f);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

/* The number after "key": at or after from; NAN if absent. */
static double num(const char *from, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(from, pat);
    return p != NULL ? strtod(p + strlen(pat), NULL) : NAN;
}

static void test_formula_matches_the_measured_inputs(void **state)
{
    (void)state;
    uint16_t port16 = 0;
    int lfd = tu_listen_loopback(AF_INET, 1, &port16);
    assert_true(lfd >= 0);
    close(lfd); /* a free port for the bench's metrics */
    int port = port16;
    char cmd[512], out[65536];
    snprintf(cmd, sizeof cmd, "'%s' bench -c 8 -d 10 --metrics 127.0.0.1:%d >/dev/null 2>&1", cli,
             port);
    FILE *bench = popen(cmd, "r");
    assert_non_null(bench);
    snprintf(cmd, sizeof cmd,
             "'%s' recommend --measure --from-metrics http://127.0.0.1:%d/metrics --sample 500ms "
             "--json 2>&1",
             cli, port);
    int rc = -1;
    for (int i = 0; i < 30 && rc != 0; i++) {
        tu_sleep_ms(200);
        rc = run(cmd, out, sizeof out);
    }
    assert_int_equal(rc, 0);
    const char *m = strstr(out, "\"measure\":{");
    assert_non_null(m);
    double rate = num(out, "rate"), hold = num(out, "hold_s");
    double rtt = num(m, "rtt_s"), alpha = num(m, "alpha");
    double formula = num(m, "formula"), cap = num(m, "port_cap");
    double range = num(m, "port_range"), dests = num(m, "destinations");
    double erlang = num(out, "max_per_key");
    assert_true(rate > 0 && hold > 0);
    assert_true(rtt > 0 && rtt < 0.005); /* loopback */
    assert_true(fabs(alpha - hold / rtt) <= 1e-3 * alpha);
    assert_true(cap == floor(range / dests));
    /* By hand: ceil(rate x RTT x alpha) = ceil(rate x hold), within the rounding of the
     * printed inputs, and a closed loop of 8 holds at most 8. */
    double by_hand = ceil(rate * rtt * alpha);
    assert_true(fabs(formula - fmin(by_hand, cap)) <= 1);
    assert_true(formula >= 1 && formula <= 8);
    assert_int_equal((int)num(m, "sockets"), 8);
    assert_non_null(strstr(m, "\"trust\":\"erlang_c\""));
    assert_true(erlang >= formula);
    assert_int_equal((int)num(m, "erlang_c"), (int)erlang);
    /* The text shows both answers. */
    snprintf(cmd, sizeof cmd,
             "'%s' recommend --measure --from-metrics http://127.0.0.1:%d/metrics --sample 300ms "
             "2>&1",
             cli, port);
    assert_int_equal(run(cmd, out, sizeof out), 0);
    assert_non_null(strstr(out, "formula   N = min(ceil("));
    assert_non_null(strstr(out, "trust     Erlang C"));
    pclose(bench);
}

static void test_usage_errors(void **state)
{
    (void)state;
    char cmd[512], out[8192];
    snprintf(cmd, sizeof cmd, "'%s' recommend --measure --rate 100 --hold-ms 5 2>&1", cli);
    assert_int_equal(run(cmd, out, sizeof out), 2);
    assert_non_null(strstr(out, "--measure needs --from-metrics"));
    snprintf(cmd, sizeof cmd, "'%s' recommend --rate 100 --hold-ms 5 --dest 127.0.0.1:1 2>&1", cli);
    assert_int_equal(run(cmd, out, sizeof out), 2);
    snprintf(cmd, sizeof cmd,
             "'%s' recommend --measure --from-metrics http://127.0.0.1:1/m --dest nope 2>&1", cli);
    assert_int_equal(run(cmd, out, sizeof out), 2);
}

int main(void)
{
    cli = getenv("TIDEPOOL_CLI");
    if (cli == NULL || access(cli, X_OK) != 0) {
        printf("skipped: TIDEPOOL_CLI not set\n");
        return 77;
    }
    tu_watchdog(120);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_formula_matches_the_measured_inputs),
        cmocka_unit_test(test_usage_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
