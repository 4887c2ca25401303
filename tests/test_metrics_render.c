/* test_metrics_render.c: the Prometheus text and the JSON document of a registry, for a
 * pool driven through every counted event (support/metrics_drive.c): exact values of
 * chosen series against the pool's own stats, label escaping and redaction (no query
 * string, no secret, non-printable bytes hex-escaped), HELP and TYPE once per family with
 * families grouped, cumulative monotonic histogram buckets with _count equal to the +Inf
 * bucket, and the JSON (parsed by python3 when it is installed) carrying the same values.
 * Folding keys beyond the cap is in test_metrics_fold.c. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <tidepool/metrics.h>
#include <tidepool/tidepool.h>

#include "support/metrics_drive.h"
#include "support/metrics_util.h"
#include "support/test_util.h"

typedef struct fx {
    md_pool d;
    tp_metrics *m;
    char *text; /* the Prometheus rendering after the scenario */
} fx;

static int setup(void **state)
{
    fx *x = calloc(1, sizeof *x);
    if (x == NULL)
        return -1;
    md_start(&x->d);
    md_drive(&x->d);
    tp_errinfo err;
    if (tp_metrics_create(NULL, &x->m, &err) != TP_OK ||
        tp_metrics_register(x->m, "test", x->d.p, &err) != TP_OK ||
        tp_metrics_render(x->m, TP_METRICS_PROMETHEUS, &x->text, NULL) != TP_OK)
        return -1;
    *state = x;
    return 0;
}

static int teardown(void **state)
{
    fx *x = *state;
    tp_free(x->text);
    tp_metrics_destroy(x->m);
    md_stop(&x->d);
    free(x);
    return 0;
}

/* The value of `name{pool="test",key="<key's text>"<extra>}`; fails if absent. */
static double val(const fx *x, const char *name, int key, const char *extra)
{
    char series[512];
    snprintf(series, sizeof series, "%s{pool=\"test\",key=\"%s\"%s}", name, md_keys[key].text,
             extra != NULL ? extra : "");
    double v = NAN;
    if (!mu_prom_value(x->text, series, &v))
        fail_msg("no sample %s", series);
    return v;
}

static tp_stats key_stats(const fx *x, int key)
{
    tp_stats st;
    assert_int_equal(tp_pool_key_stats(x->d.p, md_keys[key].bytes, md_keys[key].len, &st), TP_OK);
    return st;
}

static void test_values_match_the_pool(void **state)
{
    fx *x = *state;
    tp_stats a = key_stats(x, MD_KA);
    /* What the scenario did to MD_KA, counted by hand. */
    assert_int_equal(a.opens, 5);
    assert_true(a.waits >= 1); /* the queued acquire (the timed-out one may count too) */
    assert_int_equal(a.timeouts, 1);
    assert_int_equal(a.rejects_busy, 1);
    assert_int_equal(a.checks_failed, 1);
    assert_true(val(x, "tidepool_opens_total", MD_KA, NULL) == 5);
    assert_true(val(x, "tidepool_acquires_total", MD_KA, NULL) == (double)a.acquires);
    assert_true(val(x, "tidepool_reuses_total", MD_KA, NULL) == (double)a.reuses);
    assert_true(val(x, "tidepool_waits_total", MD_KA, NULL) == (double)a.waits);
    assert_true(val(x, "tidepool_acquire_timeouts_total", MD_KA, NULL) == 1);
    assert_true(val(x, "tidepool_checks_failed_total", MD_KA, NULL) == 1);
    assert_true(val(x, "tidepool_rejects_total", MD_KA, ",reason=\"busy\"") == 1);
    assert_true(val(x, "tidepool_rejects_total", MD_KA, ",reason=\"breaker\"") == 0);
    static const char *const one[] = {"discarded", "broken", "reset_failed", "check_failed",
                                      "evicted"};
    for (size_t i = 0; i < 5; i++) {
        char extra[64];
        snprintf(extra, sizeof extra, ",reason=\"%s\"", one[i]);
        assert_true(val(x, "tidepool_closes_total", MD_KA, extra) == 1);
    }
    assert_true(val(x, "tidepool_closes_total", MD_KA, ",reason=\"idle_timeout\"") == 0);
    assert_true(val(x, "tidepool_connections", MD_KA, ",state=\"idle\"") == 0);
    assert_true(val(x, "tidepool_limit_max_per_key", MD_KA, NULL) == 2);
    assert_true(val(x, "tidepool_open_seconds_count", MD_KA, NULL) == 5);
    uint64_t waited = 0; /* leases and timed-out waits */
    for (int i = 0; i < TP_HIST_BUCKETS; i++)
        waited += a.acquire_wait.buckets[i];
    assert_true(waited >= a.acquires);
    assert_true(val(x, "tidepool_acquire_wait_seconds_count", MD_KA, NULL) == (double)waited);

    /* Every key, every plain counter and gauge, against tp_pool_key_stats(). */
    for (int k = 0; k < MD_NKEYS; k++) {
        tp_stats st = key_stats(x, k);
        assert_true(val(x, "tidepool_acquires_total", k, NULL) == (double)st.acquires);
        assert_true(val(x, "tidepool_opens_total", k, NULL) == (double)st.opens);
        assert_true(val(x, "tidepool_open_failures_total", k, NULL) == (double)st.open_failures);
        assert_true(val(x, "tidepool_connections", k, ",state=\"idle\"") == (double)st.idle);
        assert_true(val(x, "tidepool_hold_seconds_count", k, NULL) == (double)st.hold_time.count);
        assert_true(val(x, "tidepool_breaker_state", k, NULL) == (double)st.breaker);
    }
    tp_stats f = key_stats(x, MD_KF);
    assert_int_equal(f.breaker, TP_BREAKER_OPEN);
    assert_true(val(x, "tidepool_open_failures_total", MD_KF, NULL) == 1);
    assert_true(val(x, "tidepool_rejects_total", MD_KF, ",reason=\"breaker\"") == 1);
    assert_true(val(x, "tidepool_breaker_state", MD_KF, NULL) == 1);
    double v = 0;
    assert_true(mu_prom_value(x->text, "tidepool_breakers_open{pool=\"test\"}", &v) && v == 1);
    assert_true(mu_prom_value(x->text, "tidepool_keys{pool=\"test\"}", &v) && v == MD_NKEYS);
    assert_true(mu_prom_value(x->text, "tidepool_limit_max_connections{pool=\"test\"}", &v) &&
                isinf(v));
    /* Nothing is folded: "other" exists and is empty. */
    assert_true(
        mu_prom_value(x->text, "tidepool_acquires_total{pool=\"test\",key=\"other\"}", &v) &&
        v == 0);
}

static void test_labels_escaped_and_redacted(void **state)
{
    fx *x = *state;
    assert_null(strstr(x->text, "secret"));
    assert_null(strstr(x->text, "token"));
    assert_null(strstr(x->text, "?"));
    assert_non_null(strstr(x->text, "key=\"db \\\"main\\\" \\\\ shard\""));
    assert_non_null(strstr(x->text, "key=\"line1\\\\x0aline2\""));
    assert_non_null(strstr(x->text, "key=\"\\\\x01\\\\x00bin\\\\xff\""));
    assert_non_null(strstr(x->text, "key=\"http://127.0.0.1:9090/path\""));
    /* Only printable ASCII and newlines. */
    for (const unsigned char *p = (const unsigned char *)x->text; *p != '\0'; p++)
        assert_true(*p == '\n' || (*p >= 0x20 && *p < 0x7f));
}

/* The family a sample belongs to: its name, less a histogram suffix. */
static void family_of(const char *line, char *fam, size_t cap)
{
    size_t n = strcspn(line, "{ ");
    snprintf(fam, cap, "%.*s", (int)n, line);
}

static void test_families_once_and_grouped(void **state)
{
    fx *x = *state;
    char *copy = strdup(x->text);
    char current[128] = "", type[16] = "";
    char seen[64][128];
    size_t nseen = 0, samples = 0;
    for (char *save = NULL, *line = strtok_r(copy, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        char name[128];
        if (strncmp(line, "# HELP ", 7) == 0) {
            family_of(line + 7, name, sizeof name);
            for (size_t i = 0; i < nseen; i++)
                if (strcmp(seen[i], name) == 0)
                    fail_msg("family %s announced twice", name);
            assert_true(nseen < 64);
            strcpy(seen[nseen++], name);
            strcpy(current, name);
            type[0] = '\0';
            continue;
        }
        if (strncmp(line, "# TYPE ", 7) == 0) {
            family_of(line + 7, name, sizeof name);
            assert_string_equal(name, current);
            assert_int_equal(sscanf(line + 7 + strlen(name), " %15s", type), 1);
            continue;
        }
        family_of(line, name, sizeof name);
        size_t cl = strlen(current);
        bool ok = strcmp(name, current) == 0;
        if (!ok && strcmp(type, "histogram") == 0 && strncmp(name, current, cl) == 0)
            ok = strcmp(name + cl, "_bucket") == 0 || strcmp(name + cl, "_sum") == 0 ||
                 strcmp(name + cl, "_count") == 0;
        if (!ok)
            fail_msg("sample %s outside its family (current %s)", line, current);
        samples++;
    }
    free(copy);
    assert_true(nseen >= 20);
    assert_true(samples > 100);
    assert_int_equal(mu_count(x->text, "# TYPE tidepool_closes_total counter\n"), 1);
}

/* Checks one histogram series: `name_bucket{labels,le=...}` lines in order. */
static void check_histogram(const fx *x, const char *name, int key)
{
    char prefix[512];
    snprintf(prefix, sizeof prefix, "%s_bucket{pool=\"test\",key=\"%s\",le=\"", name,
             md_keys[key].text);
    double last_le = -1, last = -1, inf = -1;
    int n = 0;
    for (const char *p = strstr(x->text, prefix); p != NULL; p = strstr(p + 1, prefix)) {
        const char *le = p + strlen(prefix);
        double count = strtod(strstr(le, "} ") + 2, NULL);
        assert_true(count >= last);
        last = count;
        if (strncmp(le, "+Inf\"", 5) == 0) {
            inf = count;
        } else {
            double b = strtod(le, NULL);
            assert_true(b > last_le);
            assert_true(inf < 0); /* +Inf comes last */
            last_le = b;
        }
        n++;
    }
    assert_int_equal(n, 33); /* 32 bounds (factor 2, 1 us .. 2147 s) and +Inf */
    char count_name[256];
    snprintf(count_name, sizeof count_name, "%s_count", name);
    assert_true(val(x, count_name, key, NULL) == inf);
}

static void test_histograms_cumulative(void **state)
{
    fx *x = *state;
    static const char *const names[] = {"tidepool_acquire_wait_seconds", "tidepool_open_seconds",
                                        "tidepool_hold_seconds",
                                        "tidepool_idle_before_reuse_seconds"};
    for (size_t i = 0; i < 4; i++)
        for (int k = 0; k < MD_NKEYS; k++)
            check_histogram(x, names[i], k);
    assert_non_null(strstr(x->text, "le=\"0.000001\"}"));
    assert_non_null(strstr(x->text, "le=\"2147.483648\"}"));
    /* The wait of the queued acquire (>= 2 ms) lies above the 1 ms bucket. */
    char s[256];
    snprintf(s, sizeof s,
             "tidepool_acquire_wait_seconds_bucket{pool=\"test\",key=\"%s\",le=\"0.001024\"}",
             md_keys[MD_KA].text);
    double le1ms = 0;
    assert_true(mu_prom_value(x->text, s, &le1ms));
    assert_true(le1ms < val(x, "tidepool_acquire_wait_seconds_count", MD_KA, NULL));
}

/* python3 reads the JSON from stdin and prints, for every key and the numbers the text
 * also has, the text's series line; the test then finds each in the text. */
static const char json_to_prom[] =
    "import json, sys\n"
    "d = json.load(sys.stdin)\n"
    "assert d['format'] == 'tidepool-metrics' and d['version'] == 1\n"
    "e = lambda s: s.replace('\\\\', '\\\\\\\\').replace('\"', '\\\\\"').replace('\\n', '\\\\n')\n"
    "H = {'acquire_wait': 'acquire_wait', 'open': 'open', 'hold': 'hold',\n"
    "     'idle_before_reuse': 'idle_before_reuse', 'ping_rtt': 'ping_rtt'}\n"
    "for pn, p in d['pools'].items():\n"
    "  for kn, k in p['keys'].items():\n"
    "    L = 'pool=\"%s\",key=\"%s\"' % (e(pn), e(kn))\n"
    "    for c, v in k['counters'].items():\n"
    "      if c.startswith('rejects_'):\n"
    "        print('tidepool_rejects_total{%s,reason=\"%s\"} %d' % (L, c[8:], v))\n"
    "      else:\n"
    "        print('tidepool_%s_total{%s} %d' % (c, L, v))\n"
    "    for r, v in k['closes'].items():\n"
    "      print('tidepool_closes_total{%s,reason=\"%s\"} %d' % (L, r, v))\n"
    "    g = k['gauges']\n"
    "    for s in ('idle', 'in_use', 'opening'):\n"
    "      print('tidepool_connections{%s,state=\"%s\"} %d' % (L, s, g[s]))\n"
    "    print('tidepool_waiters{%s} %d' % (L, g['waiters']))\n"
    "    print('tidepool_streams_in_use{%s} %d' % (L, g['streams_in_use']))\n"
    "    print('tidepool_stream_capacity{%s} %d' % (L, g['stream_capacity']))\n"
    "    print('tidepool_connections_draining{%s} %d' % (L, g['draining']))\n"
    "    for c, v in k['goaways'].items():\n"
    "      print('tidepool_goaways_received_total{%s,code=\"%s\"} %d' % (L, c, v))\n"
    "    for h, v in k['histograms'].items():\n"
    "      if h == 'ping_rtt' and v['count'] == 0:\n"
    "        continue  # sparse in the text: no series until a PING came back\n"
    "      print('tidepool_%s_seconds_count{%s} %d' % (H[h], L, v['count']))\n"
    "      print('tidepool_%s_seconds_sum{%s} %r' % (H[h], L, v['sum_seconds']))\n"
    "      assert v['count'] == sum(b['count'] for b in v['buckets'])\n"
    "      assert v['p50'] <= v['p90'] <= v['p99']\n";

static void test_json_matches_text(void **state)
{
    fx *x = *state;
    char *json = NULL;
    size_t len = 0;
    assert_int_equal(tp_metrics_render(x->m, TP_METRICS_JSON, &json, &len), TP_OK);
    assert_int_equal(strlen(json), len);
    assert_null(strstr(json, "secret"));
    assert_non_null(strstr(json, "\"db \\\"main\\\" \\\\ shard\":{"));
    char py[512];
    if (!mu_which("python3", py, sizeof py)) {
        tp_free(json);
        skip();
    }
    char dir[256], path[300];
    assert_int_equal(mu_tmpdir(dir, sizeof dir), 0);
    snprintf(path, sizeof path, "%s/pools.json", dir);
    assert_int_equal(mu_write_file(path, json, len), 0);
    tp_free(json);
    char *argv[] = {py, "-c", (char *)json_to_prom, NULL};
    char *out = NULL;
    int rc = mu_run_stdin(argv, path, &out);
    mu_rmtree(dir);
    assert_non_null(out);
    if (rc != 0)
        fail_msg("python3 could not read the JSON (exit %d):\n%s", rc, out);
    size_t lines = 0;
    for (char *save = NULL, *line = strtok_r(out, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save), lines++) {
        char *sp = strrchr(line, ' ');
        assert_non_null(sp);
        *sp = '\0';
        double want = strtod(sp + 1, NULL), got = NAN;
        if (!mu_prom_value(x->text, line, &got))
            fail_msg("the JSON has %s, the text has not", line);
        if (fabs(got - want) > 1e-9 * (fabs(want) + 1))
            fail_msg("%s: text %.9g, JSON %.9g", line, got, want);
    }
    free(out);
    assert_true(lines >= (MD_NKEYS + 1) * 30);
}

static void test_render_buf(void **state)
{
    fx *x = *state;
    size_t need = 0;
    char small[16];
    assert_int_equal(tp_metrics_render_buf(x->m, TP_METRICS_PROMETHEUS, small, sizeof small, &need),
                     TP_ETOOBIG);
    assert_string_equal(small, "");
    assert_int_equal(need, strlen(x->text));
    char *big = malloc(need + 1);
    assert_int_equal(tp_metrics_render_buf(x->m, TP_METRICS_PROMETHEUS, big, need + 1, &need),
                     TP_OK);
    assert_string_equal(big, x->text);
    free(big);
    assert_int_equal(tp_metrics_render_buf(x->m, TP_METRICS_PROMETHEUS, NULL, 0, &need),
                     TP_ETOOBIG);
    assert_int_equal(tp_metrics_render_buf(x->m, (tp_metrics_format)7, small, 16, &need),
                     TP_EINVAL);
}

int main(void)
{
    tu_watchdog(120);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_values_match_the_pool),
        cmocka_unit_test(test_labels_escaped_and_redacted),
        cmocka_unit_test(test_families_once_and_grouped),
        cmocka_unit_test(test_histograms_cumulative),
        cmocka_unit_test(test_json_matches_text),
        cmocka_unit_test(test_render_buf),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
