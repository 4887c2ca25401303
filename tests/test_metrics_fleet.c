/* test_metrics_fleet.c: fleet budgets (tidepool/fleet.h) through the metrics registry.
 *
 * A real fleet on a throwaway Redis (cap 5, heartbeat 100 ms, lease 1 s) serves a pool
 * on the fake connector; with two leases out and the fleet's view settled (held 2, seen
 * by Redis as the whole budget's), the Prometheus text carries every tidepool_fleet_*
 * family once, with the exact values and the budget and instance labels, and passes
 * promtool when it is installed; the JSON document's "fleets" array has the same numbers
 * under the documented keys, in order. Unregistering removes both. Registry argument
 * errors: NULL, a fleet registered twice, unregistering one that is not registered.
 * Exits 77 (skipped) without redis-server. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <tidepool/fleet.h>
#include <tidepool/metrics.h>
#include <tidepool/tidepool.h>

#include "redis_test_env.h"
#include "support/fake_connector.h"
#include "support/metrics_util.h"
#include "support/test_util.h"

#define CAP 5
#define BUDGET "m1"
#define INSTANCE "metrics-a"
#define LABELS "{budget=\"" BUDGET "\",instance=\"" INSTANCE "\"}"

static rt_env g_redis;

typedef struct fx {
    fake_connector fc;
    tp_fleet *f;
    tp_pool *p;
    tp_conn *c[2];
    tp_metrics *m;
} fx;

/* The fleet's own view, settled: both leases' permits held and reported. */
static bool settled(tp_fleet *f)
{
    tp_fleet_stats st;
    tp_fleet_stats_get(f, &st);
    return st.held == 2 && st.fleet_held == 2 && st.instances == 1 && st.demand == 2 &&
           st.heartbeats > 0;
}

static int setup(void **state)
{
    fx *x = calloc(1, sizeof *x);
    assert_non_null(x);
    char url[96];
    tp_fleet_options fo;
    tp_fleet_options_init(&fo);
    fo.redis_url = rt_url(&g_redis, url, sizeof url, NULL, 0);
    fo.name = BUDGET;
    fo.instance = INSTANCE;
    fo.cap = CAP;
    fo.heartbeat = MS(100);
    fo.lease = MS(1000);
    tp_errinfo err;
    if (tp_fleet_create(&fo, &x->f, &err) != TP_OK)
        fail_msg("tp_fleet_create: %s", err.msg);

    fake_init(&x->fc);
    tp_pool_options o;
    fake_pool_options(&x->fc, &o);
    o.permits = tp_fleet_hook(x->f);
    x->p = tu_pool_create(&o);
    assert_int_equal(tp_fleet_attach(x->f, x->p), TP_OK);
    x->c[0] = tu_acquire(x->p, "k", MS(5000));
    x->c[1] = tu_acquire(x->p, "k", MS(5000));
    bool ok;
    TU_WAIT_UNTIL(ok, settled(x->f), 5000);
    if (!ok) {
        tp_fleet_stats st;
        tp_fleet_stats_get(x->f, &st);
        fail_msg("fleet not settled: held %lld, fleet_held %lld, instances %lld, demand %lld",
                 (long long)st.held, (long long)st.fleet_held, (long long)st.instances,
                 (long long)st.demand);
    }
    assert_int_equal(tp_metrics_create(NULL, &x->m, &err), TP_OK);
    *state = x;
    return 0;
}

static int teardown(void **state)
{
    fx *x = *state;
    tp_metrics_destroy(x->m);
    for (int i = 0; i < 2; i++)
        tp_conn_release(x->c[i], 0);
    tp_pool_destroy(x->p);
    tp_fleet_destroy(x->f);
    fake_destroy(&x->fc);
    free(x);
    return 0;
}

static double sample(const char *text, const char *family)
{
    char series[160];
    snprintf(series, sizeof series, "%s" LABELS, family);
    double v = -1;
    if (!mu_prom_value(text, series, &v))
        fail_msg("no series %s in:\n%s", series, text);
    return v;
}

/* Runs promtool check metrics on text when it is installed; asserts a clean pass. */
static void promtool_check(const char *text)
{
    char promtool[512];
    if (!mu_which("promtool", promtool, sizeof promtool))
        return;
    char dir[256], path[300];
    assert_int_equal(mu_tmpdir(dir, sizeof dir), 0);
    snprintf(path, sizeof path, "%s/metrics.txt", dir);
    assert_int_equal(mu_write_file(path, text, strlen(text)), 0);
    char *argv[] = {promtool, "check", "metrics", NULL};
    char *out = NULL;
    int rc = mu_run_stdin(argv, path, &out);
    mu_rmtree(dir);
    assert_non_null(out);
    if (rc != 0 || out[0] != '\0')
        fail_msg("promtool check metrics: exit %d, output:\n%s", rc, out);
    free(out);
}

static const char *const families[] = {
    "tidepool_fleet_cap",
    "tidepool_fleet_held",
    "tidepool_fleet_share",
    "tidepool_fleet_demand",
    "tidepool_fleet_budget_held",
    "tidepool_fleet_instances",
    "tidepool_fleet_degraded",
    "tidepool_fleet_degraded_seconds_total",
    "tidepool_fleet_permit_waits_total",
    "tidepool_fleet_grants_total",
    "tidepool_fleet_sheds_total",
    "tidepool_fleet_heartbeats_total",
    "tidepool_fleet_rebirths_total",
    "tidepool_fleet_redis_commands_total",
    "tidepool_fleet_redis_errors_total",
};
#define NFAMILIES (sizeof families / sizeof families[0])

static void test_prometheus(void **state)
{
    fx *x = *state;
    tp_errinfo err;
    assert_int_equal(tp_metrics_register_fleet(x->m, x->f, &err), TP_OK);
    tp_fleet_stats before, after;
    tp_fleet_stats_get(x->f, &before);
    char *text = NULL;
    assert_int_equal(tp_metrics_render(x->m, TP_METRICS_PROMETHEUS, &text, NULL), TP_OK);
    tp_fleet_stats_get(x->f, &after);

    /* Only fleet families without a pool, each with its HELP, TYPE and one series. */
    assert_true(strncmp(text, "# HELP tidepool_fleet_cap ", 26) == 0);
    assert_null(strstr(text, "pool=\""));
    for (size_t i = 0; i < NFAMILIES; i++) {
        char line[128];
        snprintf(line, sizeof line, "# TYPE %s %s\n", families[i],
                 strstr(families[i], "_total") != NULL ? "counter" : "gauge");
        assert_int_equal(mu_count(text, line), 1);
        snprintf(line, sizeof line, "\n%s{", families[i]);
        assert_int_equal(mu_count(text, line), 1);
        (void)sample(text, families[i]);
    }
    assert_non_null(strstr(text, "\ntidepool_fleet_cap" LABELS " 5\n"));
    assert_non_null(strstr(text, "\ntidepool_fleet_held" LABELS " 2\n"));
    assert_true(sample(text, "tidepool_fleet_cap") == CAP);
    assert_true(sample(text, "tidepool_fleet_held") == 2);
    assert_true(sample(text, "tidepool_fleet_demand") == 2);
    assert_true(sample(text, "tidepool_fleet_budget_held") == 2);
    assert_true(sample(text, "tidepool_fleet_instances") == 1);
    assert_true(sample(text, "tidepool_fleet_degraded") == 0);
    assert_true(sample(text, "tidepool_fleet_degraded_seconds_total") == 0);
    assert_true(sample(text, "tidepool_fleet_redis_errors_total") == 0);
    double share = sample(text, "tidepool_fleet_share");
    assert_true(share >= 2 && share <= CAP);
    /* Counters move with the heartbeats: the render lies between the two reads. */
    static const struct {
        const char *family;
        size_t off;
    } counters[] = {
        {"tidepool_fleet_permit_waits_total", offsetof(tp_fleet_stats, permit_waits)},
        {"tidepool_fleet_grants_total", offsetof(tp_fleet_stats, grants)},
        {"tidepool_fleet_sheds_total", offsetof(tp_fleet_stats, sheds)},
        {"tidepool_fleet_heartbeats_total", offsetof(tp_fleet_stats, heartbeats)},
        {"tidepool_fleet_rebirths_total", offsetof(tp_fleet_stats, rebirths)},
        {"tidepool_fleet_redis_commands_total", offsetof(tp_fleet_stats, redis_commands)},
    };
    for (size_t i = 0; i < sizeof counters / sizeof counters[0]; i++) {
        uint64_t lo = *(const uint64_t *)(const void *)((const char *)&before + counters[i].off);
        uint64_t hi = *(const uint64_t *)(const void *)((const char *)&after + counters[i].off);
        double v = sample(text, counters[i].family);
        if (v < (double)lo || v > (double)hi)
            fail_msg("%s: %.0f not in [%llu, %llu]", counters[i].family, v, (unsigned long long)lo,
                     (unsigned long long)hi);
    }
    assert_true(sample(text, "tidepool_fleet_grants_total") >= 1);
    assert_true(sample(text, "tidepool_fleet_heartbeats_total") >= 1);
    promtool_check(text);
    tp_free(text);

    /* With a pool: the pool's families first, the fleet's after, both valid. */
    assert_int_equal(tp_metrics_register(x->m, "p", x->p, &err), TP_OK);
    assert_int_equal(tp_metrics_render(x->m, TP_METRICS_PROMETHEUS, &text, NULL), TP_OK);
    const char *pool_fam = strstr(text, "# TYPE tidepool_connections gauge");
    const char *fleet_fam = strstr(text, "# TYPE tidepool_fleet_cap gauge");
    assert_non_null(pool_fam);
    assert_non_null(fleet_fam);
    assert_true(pool_fam < fleet_fam);
    assert_true(sample(text, "tidepool_fleet_held") == 2);
    assert_non_null(
        strstr(text, "tidepool_connections{pool=\"p\",key=\"k\",state=\"in_use\"} 2\n"));
    promtool_check(text);
    tp_free(text);

    /* Gone once unregistered; the pool stays. */
    assert_int_equal(tp_metrics_unregister_fleet(x->m, x->f), TP_OK);
    assert_int_equal(tp_metrics_render(x->m, TP_METRICS_PROMETHEUS, &text, NULL), TP_OK);
    assert_null(strstr(text, "tidepool_fleet"));
    assert_non_null(strstr(text, "tidepool_keys{pool=\"p\"} 1\n"));
    tp_free(text);
    assert_int_equal(tp_metrics_unregister(x->m, "p"), TP_OK);
    assert_int_equal(tp_metrics_render(x->m, TP_METRICS_PROMETHEUS, &text, NULL), TP_OK);
    assert_string_equal(text, "");
    tp_free(text);
}

/* python3 checks that the document parses and prints the fleet's members in order. */
static const char json_keys[] = "import json, sys\n"
                                "d = json.load(sys.stdin)\n"
                                "assert list(d) == ['format', 'version', 'pools', 'fleets']\n"
                                "assert len(d['fleets']) == 1\n"
                                "for k, v in d['fleets'][0].items():\n"
                                "  print(k, json.dumps(v))\n";

static void test_json(void **state)
{
    fx *x = *state;
    tp_errinfo err;
    char *json = NULL;
    size_t len = 0;
    assert_int_equal(tp_metrics_render(x->m, TP_METRICS_JSON, &json, &len), TP_OK);
    assert_non_null(strstr(json, "\"pools\":{},\"fleets\":[]}")); /* always there */
    tp_free(json);

    assert_int_equal(tp_metrics_register_fleet(x->m, x->f, &err), TP_OK);
    assert_int_equal(tp_metrics_render(x->m, TP_METRICS_JSON, &json, &len), TP_OK);
    assert_int_equal(strlen(json), len);
    assert_non_null(strstr(json, "\"fleets\":[{\"budget\":\"m1\",\"instance\":\"metrics-a\","
                                 "\"cap\":5,\"held\":2,\"share\":"));
    assert_non_null(strstr(json, ",\"demand\":2,\"fleet_held\":2,\"instances\":1,"
                                 "\"degraded\":false,\"degraded_seconds\":0,\"permit_waits\":"));
    assert_non_null(strstr(json, ",\"redis_errors\":0}]}\n"));

    char py[512];
    if (mu_which("python3", py, sizeof py)) {
        char dir[256], path[300];
        assert_int_equal(mu_tmpdir(dir, sizeof dir), 0);
        snprintf(path, sizeof path, "%s/pools.json", dir);
        assert_int_equal(mu_write_file(path, json, len), 0);
        char *argv[] = {py, "-c", (char *)json_keys, NULL};
        char *out = NULL;
        int rc = mu_run_stdin(argv, path, &out);
        mu_rmtree(dir);
        assert_non_null(out);
        if (rc != 0)
            fail_msg("python3 could not read the JSON (exit %d):\n%s", rc, out);
        static const char *const keys[] = {
            "budget",         "instance",    "cap",       "held",       "share",
            "demand",         "fleet_held",  "instances", "degraded",   "degraded_seconds",
            "permit_waits",   "grants",      "sheds",     "heartbeats", "rebirths",
            "redis_commands", "redis_errors"};
        size_t n = 0;
        for (char *save = NULL, *line = strtok_r(out, "\n", &save); line != NULL;
             line = strtok_r(NULL, "\n", &save), n++) {
            assert_true(n < sizeof keys / sizeof keys[0]);
            char *sp = strchr(line, ' ');
            assert_non_null(sp);
            *sp = '\0';
            assert_string_equal(line, keys[n]);
        }
        assert_int_equal(n, sizeof keys / sizeof keys[0]);
        free(out);
    }
    tp_free(json);

    assert_int_equal(tp_metrics_unregister_fleet(x->m, x->f), TP_OK);
    assert_int_equal(tp_metrics_render(x->m, TP_METRICS_JSON, &json, &len), TP_OK);
    assert_non_null(strstr(json, "\"fleets\":[]}"));
    assert_null(strstr(json, "metrics-a"));
    tp_free(json);
}

static void test_errors(void **state)
{
    fx *x = *state;
    tp_errinfo err;
    assert_int_equal(tp_metrics_register_fleet(NULL, x->f, &err), TP_EINVAL);
    assert_non_null(strstr(err.msg, "required"));
    assert_int_equal(tp_metrics_register_fleet(x->m, NULL, &err), TP_EINVAL);
    assert_int_equal(tp_metrics_register_fleet(x->m, NULL, NULL), TP_EINVAL);
    assert_int_equal(tp_metrics_unregister_fleet(NULL, x->f), TP_EINVAL);
    assert_int_equal(tp_metrics_unregister_fleet(x->m, NULL), TP_EINVAL);
    assert_int_equal(tp_metrics_unregister_fleet(x->m, x->f), TP_EINVAL); /* not registered */

    assert_int_equal(tp_metrics_register_fleet(x->m, x->f, &err), TP_OK);
    assert_int_equal(tp_metrics_register_fleet(x->m, x->f, &err), TP_EINVAL);
    assert_non_null(strstr(err.msg, "already registered"));
    /* Another registry may export the same fleet. */
    tp_metrics *m2 = NULL;
    assert_int_equal(tp_metrics_create(NULL, &m2, &err), TP_OK);
    assert_int_equal(tp_metrics_register_fleet(m2, x->f, &err), TP_OK);
    char *text = NULL;
    assert_int_equal(tp_metrics_render(x->m, TP_METRICS_PROMETHEUS, &text, NULL), TP_OK);
    assert_int_equal(mu_count(text, "\ntidepool_fleet_held{"), 1); /* registered once */
    tp_free(text);
    assert_int_equal(tp_metrics_unregister_fleet(x->m, x->f), TP_OK);
    assert_int_equal(tp_metrics_unregister_fleet(x->m, x->f), TP_EINVAL);
    assert_int_equal(tp_metrics_render(m2, TP_METRICS_PROMETHEUS, &text, NULL), TP_OK);
    assert_true(sample(text, "tidepool_fleet_held") == 2);
    tp_free(text);
    /* Destroying a registry with a fleet still registered leaves the fleet alone. */
    tp_metrics_destroy(m2);
    tp_fleet_stats st;
    tp_fleet_stats_get(x->f, &st);
    assert_int_equal(st.held, 2);
}

int main(void)
{
    tu_watchdog(120);
    int rc = rt_start(&g_redis);
    if (rc != 0) {
        printf("redis-server could not be started: %s\n", rc == 77 ? "skipped" : "failed");
        return rc;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_prometheus, setup, teardown),
        cmocka_unit_test_setup_teardown(test_json, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
    };
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    rt_stop(&g_redis);
    return rc;
}
