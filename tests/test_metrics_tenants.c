/* test_metrics_tenants.c: the exported numbers of issue 7's features: the adaptive limit
 * per key (tidepool_limit_adaptive, 0 when adaptive sizing is off) and the per-tenant
 * families (in use, limit, waiters, acquires, waits, rejects), in the Prometheus text and
 * in the JSON document, against the pool's own tenant and key stats; no tenant families
 * at all for a pool without tenants. */
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

#include "support/fake_connector.h"
#include "support/metrics_util.h"
#include "support/test_util.h"

typedef struct fx {
    fake_connector f;
    tp_pool *p;
    tp_adapt_options ao;
    tp_metrics *m;
} fx;

static int setup(void **state)
{
    fx *x = calloc(1, sizeof *x);
    if (x == NULL)
        return -1;
    fake_init(&x->f);
    tp_adapt_options_init(&x->ao);
    x->ao.min_limit = 2;
    x->ao.initial_limit = 16;
    x->ao.max_limit = 32;
    tp_pool_options o;
    fake_pool_options(&x->f, &o);
    o.max_per_key = 64;
    o.adaptive = &x->ao;
    x->p = tu_pool_create(&o);
    tp_errinfo err;
    if (tp_metrics_create(NULL, &x->m, &err) != TP_OK ||
        tp_metrics_register(x->m, "t", x->p, &err) != TP_OK)
        return -1;
    *state = x;
    return 0;
}

static int teardown(void **state)
{
    fx *x = *state;
    tp_metrics_destroy(x->m);
    tp_pool_destroy(x->p);
    fake_destroy(&x->f);
    free(x);
    return 0;
}

static char *render(fx *x, tp_metrics_format f)
{
    char *text = NULL;
    assert_int_equal(tp_metrics_render(x->m, f, &text, NULL), TP_OK);
    return text;
}

static double prom(const char *text, const char *series)
{
    double v = NAN;
    if (!mu_prom_value(text, series, &v))
        fail_msg("no sample %s in:\n%s", series, text);
    return v;
}

static void test_no_tenant_families_without_tenants(void **state)
{
    fx *x = *state;
    char *text = render(x, TP_METRICS_PROMETHEUS);
    assert_null(strstr(text, "tidepool_tenant_"));
    tp_free(text);
    text = render(x, TP_METRICS_JSON);
    assert_non_null(strstr(text, "\"tenants\":{}"));
    tp_free(text);
}

static void test_adaptive_limit_exported(void **state)
{
    fx *x = *state;
    tp_conn *c = NULL;
    assert_int_equal(tp_pool_acquire(x->p, KEY("k"), 0, &c, NULL), TP_OK);
    tp_conn_release(c, 0);
    tp_stats st;
    tu_key_stats(x->p, "k", &st);
    assert_true(st.adaptive_limit >= 2 && st.adaptive_limit <= 32);
    char *text = render(x, TP_METRICS_PROMETHEUS);
    assert_true(prom(text, "tidepool_limit_adaptive{pool=\"t\",key=\"k\"}") ==
                (double)st.adaptive_limit);
    assert_true(prom(text, "tidepool_limit_max_per_key{pool=\"t\",key=\"k\"}") == 64);
    tp_free(text);
    char want[64];
    snprintf(want, sizeof want, "\"adaptive_limit\":%lld", (long long)st.adaptive_limit);
    text = render(x, TP_METRICS_JSON);
    assert_non_null(strstr(text, want));
    tp_free(text);
}

static void test_adaptive_limit_zero_when_off(void **state)
{
    (void)state;
    fake_connector f;
    fake_init(&f);
    tp_pool_options o;
    fake_pool_options(&f, &o);
    tp_pool *p = tu_pool_create(&o);
    tp_metrics *m = NULL;
    assert_int_equal(tp_metrics_create(NULL, &m, NULL), TP_OK);
    assert_int_equal(tp_metrics_register(m, "off", p, NULL), TP_OK);
    tp_conn *c = NULL;
    assert_int_equal(tp_pool_acquire(p, KEY("k"), 0, &c, NULL), TP_OK);
    tp_conn_release(c, 0);
    char *text = NULL;
    assert_int_equal(tp_metrics_render(m, TP_METRICS_PROMETHEUS, &text, NULL), TP_OK);
    assert_true(prom(text, "tidepool_limit_adaptive{pool=\"off\",key=\"k\"}") == 0);
    tp_free(text);
    tp_metrics_destroy(m);
    tp_pool_destroy(p);
    fake_destroy(&f);
}

static void test_tenant_families(void **state)
{
    fx *x = *state;
    assert_int_equal(tp_pool_tenant_set(x->p, "gold", 2, false), TP_OK);
    assert_int_equal(tp_pool_tenant_set(x->p, "bronze \"b\"", 1, true), TP_OK);
    assert_int_equal(tp_pool_tenant_set(x->p, "free", TP_UNLIMITED, false), TP_OK);
    tp_conn *g[2], *b = NULL, *extra = NULL;
    for (int i = 0; i < 2; i++)
        assert_int_equal(tu_acquire_tenant(x->p, "gold", KEY("k"), 0, 0, &g[i], NULL),
                         TP_OK);
    /* Over quota without waiting: refused at once. */
    assert_int_equal(tu_acquire_tenant(x->p, "gold", KEY("k"), 0, 0, &extra, NULL),
                     TP_EQUOTA);
    assert_int_equal(tu_acquire_tenant(x->p, "bronze \"b\"", KEY("k"), 0, 0, &b, NULL),
                     TP_OK);
    /* Over quota with waiting: waits, then times out. */
    assert_int_equal(
        tu_acquire_tenant(x->p, "bronze \"b\"", KEY("k"), MS(20), 0, &extra, NULL),
        TP_EQUOTA);

    tp_tenant_stats gs, bs;
    assert_int_equal(tp_pool_tenant_stats(x->p, "gold", &gs), TP_OK);
    assert_int_equal(tp_pool_tenant_stats(x->p, "bronze \"b\"", &bs), TP_OK);
    char *text = render(x, TP_METRICS_PROMETHEUS);
    assert_true(prom(text, "tidepool_tenant_in_use{pool=\"t\",tenant=\"gold\"}") == 2);
    assert_true(prom(text, "tidepool_tenant_limit{pool=\"t\",tenant=\"gold\"}") == 2);
    assert_true(prom(text, "tidepool_tenant_acquires_total{pool=\"t\",tenant=\"gold\"}") ==
                (double)gs.acquires);
    assert_true(prom(text, "tidepool_tenant_rejects_total{pool=\"t\",tenant=\"gold\"}") == 1);
    assert_true(prom(text, "tidepool_tenant_waits_total{pool=\"t\",tenant=\"gold\"}") == 0);
    const char *bl = "{pool=\"t\",tenant=\"bronze \\\"b\\\"\"}";
    char series[128];
    snprintf(series, sizeof series, "tidepool_tenant_in_use%s", bl);
    assert_true(prom(text, series) == 1);
    snprintf(series, sizeof series, "tidepool_tenant_waits_total%s", bl);
    assert_true(prom(text, series) == (double)bs.waits);
    assert_true(bs.waits >= 1);
    snprintf(series, sizeof series, "tidepool_tenant_rejects_total%s", bl);
    assert_true(prom(text, series) == 1);
    snprintf(series, sizeof series, "tidepool_tenant_waiters%s", bl);
    assert_true(prom(text, series) == 0);
    double v = 0;
    assert_true(mu_prom_value(text, "tidepool_tenant_limit{pool=\"t\",tenant=\"free\"}", &v));
    assert_true(isinf(v) && v > 0);
    /* HELP and TYPE once per tenant family. */
    const char *at = text;
    int helps = 0;
    while ((at = strstr(at, "# TYPE tidepool_tenant_")) != NULL) {
        helps++;
        at++;
    }
    assert_int_equal(helps, 6);
    tp_free(text);

    text = render(x, TP_METRICS_JSON);
    assert_non_null(strstr(
        text, "\"gold\":{\"in_use\":2,\"limit\":2,\"waiters\":0,\"acquires\":2,\"waits\":0,"
              "\"rejects\":1}"));
    assert_non_null(strstr(text, "\"free\":{\"in_use\":0,\"limit\":null"));
    assert_non_null(strstr(text, "\"bronze \\\"b\\\"\":{\"in_use\":1,\"limit\":1"));
    tp_free(text);

    for (int i = 0; i < 2; i++)
        tp_conn_release(g[i], 0);
    tp_conn_release(b, 0);
    text = render(x, TP_METRICS_PROMETHEUS);
    assert_true(prom(text, "tidepool_tenant_in_use{pool=\"t\",tenant=\"gold\"}") == 0);
    tp_free(text);
}

int main(void)
{
    tu_watchdog(60);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_no_tenant_families_without_tenants, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_adaptive_limit_exported, setup, teardown),
        cmocka_unit_test(test_adaptive_limit_zero_when_off),
        cmocka_unit_test_setup_teardown(test_tenant_families, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
