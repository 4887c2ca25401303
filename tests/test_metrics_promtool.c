/* test_metrics_promtool.c: Prometheus's own linter accepts the exposition. The text of
 * two registered pools (one driven through every counted event, one idle) goes through
 * `promtool check metrics`, which parses it as Prometheus does and lints names, units,
 * HELP and TYPE: it must exit 0 and report nothing. Exits 77 (skipped) without promtool
 * (Debian package prometheus, scripts/install-deps.sh). */
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

static char g_promtool[512];

/* Runs promtool check metrics on text; asserts a clean pass. */
static void check(const char *text)
{
    char dir[256], path[300];
    assert_int_equal(mu_tmpdir(dir, sizeof dir), 0);
    snprintf(path, sizeof path, "%s/metrics.txt", dir);
    assert_int_equal(mu_write_file(path, text, strlen(text)), 0);
    char *argv[] = {g_promtool, "check", "metrics", NULL};
    char *out = NULL;
    int rc = mu_run_stdin(argv, path, &out);
    mu_rmtree(dir);
    assert_non_null(out);
    if (rc != 0 || out[0] != '\0')
        fail_msg("promtool check metrics: exit %d, output:\n%s", rc, out);
    free(out);
}

static void test_promtool_accepts_the_exposition(void **state)
{
    (void)state;
    md_pool busy, idle;
    md_start(&busy);
    md_drive(&busy);
    md_start(&idle);
    tp_metrics *m = NULL;
    tp_errinfo err;
    assert_int_equal(tp_metrics_create(NULL, &m, &err), TP_OK);
    assert_int_equal(tp_metrics_register(m, "busy", busy.p, &err), TP_OK);
    assert_int_equal(tp_metrics_register(m, "idle", idle.p, &err), TP_OK);
    char *text = NULL;
    assert_int_equal(tp_metrics_render(m, TP_METRICS_PROMETHEUS, &text, NULL), TP_OK);
    check(text);
    tp_free(text);
    tp_metrics_destroy(m);

    /* Every bucket bound, and keys folded into "other". */
    tp_metrics_options o;
    tp_metrics_options_init(&o);
    o.bucket_step = 1;
    o.max_keys_per_pool = 1;
    assert_int_equal(tp_metrics_create(&o, &m, &err), TP_OK);
    assert_int_equal(tp_metrics_register(m, "busy", busy.p, &err), TP_OK);
    assert_int_equal(tp_metrics_render(m, TP_METRICS_PROMETHEUS, &text, NULL), TP_OK);
    assert_int_equal(mu_count(text, "tidepool_hold_seconds_bucket{pool=\"busy\",key=\"other\""),
                     64);
    check(text);
    tp_free(text);
    tp_metrics_destroy(m);
    md_stop(&idle);
    md_stop(&busy);
}

int main(void)
{
    tu_watchdog(120);
    if (!mu_which("promtool", g_promtool, sizeof g_promtool)) {
        printf("promtool not on PATH (Debian package prometheus): skipped\n");
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_promtool_accepts_the_exposition),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
