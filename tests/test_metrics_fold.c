/* test_metrics_fold.c: bounded cardinality and the registry's contract. Keys beyond
 * max_keys_per_pool fold into key="other" with counters, gauges and histogram buckets
 * that are the sums of the folded keys; a sum over key equals the pool-wide stats; a
 * custom key-label hook that maps keys together merges their series (never a duplicate);
 * the default hook's rules (query strings, URL user info, hex escapes, the 128-byte
 * bound); registry and exporter argument errors, including the refusal of a
 * non-loopback address. */
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

static md_pool g_pool; /* driven once, shared by the tests (read only) */

static int group_setup(void **state)
{
    (void)state;
    md_start(&g_pool);
    md_drive(&g_pool);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    md_stop(&g_pool);
    return 0;
}

static char *render_with(const tp_metrics_options *o)
{
    tp_metrics *m = NULL;
    tp_errinfo err;
    assert_int_equal(tp_metrics_create(o, &m, &err), TP_OK);
    assert_int_equal(tp_metrics_register(m, "p", g_pool.p, &err), TP_OK);
    char *text = NULL;
    assert_int_equal(tp_metrics_render(m, TP_METRICS_PROMETHEUS, &text, NULL), TP_OK);
    tp_metrics_destroy(m);
    return text;
}

static double get(const char *text, const char *name, const char *key, const char *extra)
{
    char series[512];
    snprintf(series, sizeof series, "%s{pool=\"p\",key=\"%s\"%s}", name, key,
             extra != NULL ? extra : "");
    double v = 0;
    if (!mu_prom_value(text, series, &v))
        fail_msg("no sample %s", series);
    return v;
}

/* Series (name, extra labels) compared between the folded and the full rendering. */
static const struct {
    const char *name, *extra;
} checked[] = {
    {"tidepool_acquires_total", NULL},
    {"tidepool_opens_total", NULL},
    {"tidepool_reuses_total", NULL},
    {"tidepool_open_failures_total", NULL},
    {"tidepool_rejects_total", ",reason=\"breaker\""},
    {"tidepool_closes_total", ",reason=\"evicted\""},
    {"tidepool_connections", ",state=\"idle\""},
    {"tidepool_limit_max_per_key", NULL},
    {"tidepool_hold_seconds_count", NULL},
    {"tidepool_hold_seconds_bucket", ",le=\"0.000512\""},
    {"tidepool_hold_seconds_bucket", ",le=\"+Inf\""},
    {"tidepool_open_seconds_bucket", ",le=\"0.000001\""},
};

static void test_cap_folds_into_other(void **state)
{
    (void)state;
    char *full = render_with(NULL);
    tp_metrics_options o;
    tp_metrics_options_init(&o);
    o.max_keys_per_pool = 2;
    char *folded = render_with(&o);

    /* The two keys with the most acquires keep their series: MD_KA (13) and MD_KS (3). */
    assert_non_null(strstr(folded, md_keys[MD_KA].text));
    assert_non_null(strstr(folded, md_keys[MD_KS].text));
    for (int k = 0; k < MD_NKEYS; k++)
        if (k != MD_KA && k != MD_KS)
            assert_null(strstr(folded, md_keys[k].text));
    double v = 0;
    assert_true(mu_prom_value(folded, "tidepool_keys_folded{pool=\"p\"}", &v) && v == 4);
    assert_true(mu_prom_value(full, "tidepool_keys_folded{pool=\"p\"}", &v) && v == 0);
    /* Breakers of folded keys still show in the pool-wide gauge. */
    assert_true(mu_prom_value(folded, "tidepool_breakers_open{pool=\"p\"}", &v) && v == 1);

    for (size_t c = 0; c < sizeof checked / sizeof checked[0]; c++) {
        const char *n = checked[c].name, *x = checked[c].extra;
        double sum = get(full, n, "other", x);
        for (int k = 0; k < MD_NKEYS; k++)
            if (k != MD_KA && k != MD_KS)
                sum += get(full, n, md_keys[k].text, x);
        double got = get(folded, n, "other", x);
        if (got != sum)
            fail_msg("%s%s: other = %g, folded keys sum to %g", n, x != NULL ? x : "", got, sum);
        assert_true(get(folded, n, md_keys[MD_KA].text, x) == get(full, n, md_keys[MD_KA].text, x));
    }
    /* Summed over key, counters equal the pool-wide stats. */
    tp_stats st = tu_pool_stats(g_pool.p);
    assert_true(get(folded, "tidepool_acquires_total", "other", NULL) +
                    get(folded, "tidepool_acquires_total", md_keys[MD_KA].text, NULL) +
                    get(folded, "tidepool_acquires_total", md_keys[MD_KS].text, NULL) ==
                (double)st.acquires);
    free(full);
    free(folded);

    /* A cap of 0: only "other", holding everything. */
    o.max_keys_per_pool = 0;
    char *none = render_with(&o);
    assert_true(get(none, "tidepool_opens_total", "other", NULL) == (double)st.opens);
    assert_true(get(none, "tidepool_closes_total", "other", ",reason=\"discarded\"") ==
                (double)st.closes[TP_CLOSE_DISCARDED]);
    assert_null(strstr(none, "tidepool_breaker_state{"));
    free(none);
}

/* A hook that names tenants: keys of 127.0.0.1 are "local", MD_KQ is "other". */
static size_t tenant_hook(void *ud, const void *key, size_t keylen, char *out, size_t cap)
{
    (*(int *)ud)++;
    const char *name =
        keylen >= 16 && memcmp(key, "http://127.0.0.1", 16) == 0 ? "local"
        : keylen == md_keys[MD_KQ].len && memcmp(key, md_keys[MD_KQ].bytes, keylen) == 0
            ? "other"
            : "misc\n\xc3";
    size_t n = strlen(name);
    memcpy(out, name, n < cap ? n : cap);
    return n < cap ? n : cap;
}

static void test_custom_hook_merges(void **state)
{
    (void)state;
    int calls = 0;
    tp_metrics_options o;
    tp_metrics_options_init(&o);
    o.key_label = tenant_hook;
    o.key_label_ud = &calls;
    char *text = render_with(&o);
    assert_int_equal(calls, MD_NKEYS);
    tp_stats a, s, f;
    assert_int_equal(tp_pool_key_stats(g_pool.p, md_keys[MD_KA].bytes, md_keys[MD_KA].len, &a), 0);
    assert_int_equal(tp_pool_key_stats(g_pool.p, md_keys[MD_KS].bytes, md_keys[MD_KS].len, &s), 0);
    assert_int_equal(tp_pool_key_stats(g_pool.p, md_keys[MD_KF].bytes, md_keys[MD_KF].len, &f), 0);
    assert_true(get(text, "tidepool_acquires_total", "local", NULL) ==
                (double)(a.acquires + s.acquires + f.acquires));
    /* The worst breaker of the merged keys. */
    assert_true(get(text, "tidepool_breaker_state", "local", NULL) == 1);
    /* Non-printable bytes from a hook are hex-escaped by the renderer. */
    assert_true(get(text, "tidepool_acquires_total", "misc\\\\x0a\\\\xc3", NULL) == 2);
    assert_int_equal(mu_count(text, "tidepool_acquires_total{pool=\"p\",key=\"other\"}"), 1);
    assert_true(get(text, "tidepool_acquires_total", "other", NULL) == 2); /* MD_KQ's */
    tp_free(text);
}

static void test_default_hook(void **state)
{
    (void)state;
    char out[TP_METRICS_KEY_LABEL_MAX + 1];
    struct {
        const char *key, *want;
    } cases[] = {
        {"http://127.0.0.1:8080", "http://127.0.0.1:8080"},
        {"https://user:pa55@db.example:5432/x?password=p", "https://db.example:5432/x"},
        {"https://h/p@q", "https://h/p@q"}, /* an '@' in the path is no user info */
        {"?only", ""},
        {"tab\there", "tab\\x09here"},
        {"", ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n = tp_metrics_key_label_default(NULL, cases[i].key, strlen(cases[i].key), out,
                                                TP_METRICS_KEY_LABEL_MAX);
        out[n] = '\0';
        assert_string_equal(out, cases[i].want);
    }
    /* Truncated to 128 bytes, never inside an escape. */
    char longkey[300];
    memset(longkey, 'a', sizeof longkey);
    size_t n =
        tp_metrics_key_label_default(NULL, longkey, sizeof longkey, out, TP_METRICS_KEY_LABEL_MAX);
    assert_int_equal(n, 128);
    longkey[126] = '\x01';
    n = tp_metrics_key_label_default(NULL, longkey, sizeof longkey, out, TP_METRICS_KEY_LABEL_MAX);
    assert_int_equal(n, 126);
    assert_int_equal(tp_metrics_key_label_default(NULL, NULL, 3, out, 10), 0);
}

static void test_registry_errors(void **state)
{
    (void)state;
    tp_metrics *m = NULL;
    tp_errinfo err;
    tp_metrics_options o;
    tp_metrics_options_init(&o);
    o.max_keys_per_pool = -1;
    assert_int_equal(tp_metrics_create(&o, &m, &err), TP_EINVAL);
    assert_null(m);
    assert_non_null(strstr(err.msg, "max_keys_per_pool"));
    tp_metrics_options_init(&o);
    o.bucket_step = 0;
    assert_int_equal(tp_metrics_create(&o, &m, &err), TP_EINVAL);
    assert_non_null(strstr(err.msg, "bucket_step"));
    o.bucket_step = 1;
    o.version = 99;
    assert_int_equal(tp_metrics_create(&o, &m, &err), TP_EINVAL);

    assert_int_equal(tp_metrics_create(NULL, &m, &err), TP_OK);
    char *text = NULL;
    assert_int_equal(tp_metrics_render(m, TP_METRICS_PROMETHEUS, &text, NULL), TP_OK);
    assert_string_equal(text, ""); /* nothing registered */
    tp_free(text);
    assert_int_equal(tp_metrics_render(m, TP_METRICS_JSON, &text, NULL), TP_OK);
    assert_non_null(strstr(text, "\"pools\":{}"));
    tp_free(text);

    assert_int_equal(tp_metrics_register(m, "a", g_pool.p, &err), TP_OK);
    assert_int_equal(tp_metrics_register(m, "a", g_pool.p, &err), TP_EINVAL);
    assert_non_null(strstr(err.msg, "already registered"));
    assert_int_equal(tp_metrics_register(m, "", g_pool.p, &err), TP_EINVAL);
    assert_int_equal(tp_metrics_register(m, "bad\nname", g_pool.p, &err), TP_EINVAL);
    assert_int_equal(tp_metrics_register(m, "b", NULL, &err), TP_EINVAL);
    assert_int_equal(tp_metrics_register(m, "b \"quoted\"", g_pool.p, &err), TP_OK);
    assert_int_equal(tp_metrics_render(m, TP_METRICS_PROMETHEUS, &text, NULL), TP_OK);
    assert_non_null(strstr(text, "tidepool_keys{pool=\"a\"}"));
    assert_non_null(strstr(text, "tidepool_keys{pool=\"b \\\"quoted\\\"\"}"));
    assert_int_equal(mu_count(text, "# HELP tidepool_opens_total "), 1);
    tp_free(text);
    assert_int_equal(tp_metrics_unregister(m, "a"), TP_OK);
    assert_int_equal(tp_metrics_unregister(m, "a"), TP_EINVAL);
    assert_int_equal(tp_metrics_render(m, TP_METRICS_PROMETHEUS, &text, NULL), TP_OK);
    assert_null(strstr(text, "pool=\"a\""));
    tp_free(text);
    assert_int_equal(tp_metrics_render(NULL, TP_METRICS_PROMETHEUS, &text, NULL), TP_EINVAL);
    assert_null(text);
    tp_metrics_destroy(m);
    tp_metrics_destroy(NULL);
}

static void test_serve_argument_errors(void **state)
{
    (void)state;
    tp_metrics *m = NULL;
    tp_errinfo err;
    assert_int_equal(tp_metrics_create(NULL, &m, &err), TP_OK);
    tp_metrics_exporter *e = (tp_metrics_exporter *)&err; /* must be reset to NULL */
    assert_int_equal(tp_metrics_serve(m, "0.0.0.0:0", &e, &err), TP_EINVAL);
    assert_null(e);
    assert_non_null(strstr(err.msg, "not a loopback address"));
    assert_non_null(strstr(err.msg, "allow_non_loopback"));
    assert_int_equal(tp_metrics_serve(m, "10.1.2.3:9464", &e, &err), TP_EINVAL);
    static const char *const bad[] = {
        "127.0.0.1", "127.0.0.1:x", "127.0.0.1:70000", "::1:9464", "example.com:80", "[::1:80", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(tp_metrics_serve(m, bad[i], &e, &err), TP_EINVAL);
        assert_null(e);
    }
    tp_metrics_serve_options so;
    tp_metrics_serve_options_init(&so);
    so.max_connections = 0;
    assert_int_equal(tp_metrics_serve_ex(m, "127.0.0.1:0", &so, &e, &err), TP_EINVAL);
    assert_int_equal(tp_metrics_serve(NULL, "127.0.0.1:0", &e, &err), TP_EINVAL);
    tp_metrics_exporter_stop(NULL);
    assert_int_equal(tp_metrics_exporter_port(NULL), 0);
    tp_metrics_destroy(m);
}

int main(void)
{
    tu_watchdog(120);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cap_folds_into_other),  cmocka_unit_test(test_custom_hook_merges),
        cmocka_unit_test(test_default_hook),          cmocka_unit_test(test_registry_errors),
        cmocka_unit_test(test_serve_argument_errors),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
