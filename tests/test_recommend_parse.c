/* test_recommend_parse.c: the text parsing of `tidepool recommend` (tools/recommend_parse.h):
 * sums over a Prometheus exposition as the metrics exporter writes it (exact names, label
 * filters, skipped reasons), the loopback-only URL rule that keeps recommend from
 * talking to other hosts, the Keep-Alive header and the port range. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "../tools/recommend_parse.h"

static const char k_text[] =
    "# HELP tidepool_acquires_total Leases granted.\n"
    "# TYPE tidepool_acquires_total counter\n"
    "tidepool_acquires_total{pool=\"p\",key=\"http://10.0.0.5:8080\"} 1200\n"
    "tidepool_acquires_total{pool=\"p\",key=\"http://10.0.0.6:8080\"} 300\n"
    "tidepool_acquires_total{pool=\"p\",key=\"other\"} 0\n"
    "tidepool_acquires_total_created{pool=\"p\"} 17\n"
    "tidepool_hold_seconds_bucket{pool=\"p\",key=\"other\",le=\"+Inf\"} 99\n"
    "tidepool_hold_seconds_sum{pool=\"p\",key=\"a{b}\\\"c\"} 2.5\n"
    "tidepool_hold_seconds_sum{pool=\"p\",key=\"http://10.0.0.5:8080\"} 12.5 1700000000000\n"
    "tidepool_hold_seconds_count{pool=\"p\",key=\"http://10.0.0.5:8080\"} 1000\n"
    "tidepool_closes_total{pool=\"p\",key=\"k\",reason=\"idle_timeout\"} 4\n"
    "tidepool_closes_total{pool=\"p\",key=\"k\",reason=\"broken\"} 40\n"
    "tidepool_closes_total{pool=\"p\",key=\"k\",reason=\"check_failed\"} 400\n"
    "tidepool_closes_total{pool=\"p\",key=\"k\",reason=\"lifetime\"} 1\n"
    "tidepool_waiters NaN\n"
    "tidepool_keys 3";

static void test_prom_sum(void **state)
{
    double v;
    int n;
    assert_true(rp_prom_sum(k_text, "tidepool_acquires_total", NULL, NULL, &v, &n));
    assert_true(v == 1500); /* not the _created sample */
    assert_int_equal(n, 2); /* series with traffic */
    assert_true(rp_prom_sum(k_text, "tidepool_acquires_total", "key=\"http://10.0.0.5:8080\"", NULL,
                            &v, &n));
    assert_true(v == 1200 && n == 1);
    assert_false(
        rp_prom_sum(k_text, "tidepool_acquires_total", "key=\"http://10.0.0.5\"", NULL, &v, NULL));
    assert_false(rp_prom_sum(k_text, "tidepool_acquires_total", "ey=\"other\"", NULL, &v, NULL));
    /* Braces and escaped quotes inside a value; a timestamp after the value. */
    assert_true(rp_prom_sum(k_text, "tidepool_hold_seconds_sum", NULL, NULL, &v, NULL));
    assert_true(v == 15.0);
    static const char *const passive[] = {"reason=\"check_failed\"", "reason=\"broken\"", NULL};
    assert_true(rp_prom_sum(k_text, "tidepool_closes_total", NULL, passive, &v, NULL));
    assert_true(v == 5);
    /* No labels, no trailing newline; NaN skipped. */
    assert_true(rp_prom_sum(k_text, "tidepool_keys", NULL, NULL, &v, NULL) && v == 3);
    assert_false(rp_prom_sum(k_text, "tidepool_waiters", NULL, NULL, &v, NULL));
    assert_false(rp_prom_sum(k_text, "tidepool_missing", NULL, NULL, &v, NULL));
    assert_false(rp_prom_sum("", "tidepool_keys", NULL, NULL, &v, NULL));
}

static void test_loopback_urls(void **state)
{
    assert_true(rp_loopback_url("http://127.0.0.1:9100/metrics"));
    assert_true(rp_loopback_url("http://127.3.4.5/"));
    assert_true(rp_loopback_url("http://localhost:8080"));
    assert_true(rp_loopback_url("HTTP://LocalHost/x?y#z"));
    assert_true(rp_loopback_url("http://[::1]:9100/metrics"));
    assert_false(rp_loopback_url("https://127.0.0.1/"));
    assert_false(rp_loopback_url("http://10.0.0.1:9100/metrics"));
    assert_false(rp_loopback_url("http://example.com/"));
    assert_false(rp_loopback_url("http://127.0.0.1.example.com/"));
    assert_false(rp_loopback_url("http://localhost.evil/"));
    assert_false(rp_loopback_url("http://user@127.0.0.1/"));
    assert_false(rp_loopback_url("http://127.0.0.1@10.0.0.1/"));
    assert_false(rp_loopback_url("http://[::2]/"));
    assert_false(rp_loopback_url("http://[::1/"));
    assert_false(rp_loopback_url("http://127.0.0.1:0/"));
    assert_false(rp_loopback_url("http://127.0.0.1:99999/"));
    assert_false(rp_loopback_url("http://127.0.0.1:80x/"));
    assert_false(rp_loopback_url("http:///"));
    assert_false(rp_loopback_url("127.0.0.1:9100"));
}

static void test_keepalive_and_ports(void **state)
{
    double k;
    assert_true(rp_keepalive_timeout("timeout=5, max=1000", &k) && k == 5);
    assert_true(rp_keepalive_timeout("max=100, Timeout = 75", &k) && k == 75);
    assert_true(rp_keepalive_timeout("max=100,timeout=2.5", &k) && k == 2.5);
    assert_false(rp_keepalive_timeout("max=100", &k));
    assert_false(rp_keepalive_timeout("timeout=0", &k));
    assert_false(rp_keepalive_timeout("timeout=abc", &k));
    assert_false(rp_keepalive_timeout("", &k));

    int64_t lo, hi;
    assert_true(rp_port_range("32768\t60999\n", &lo, &hi) && lo == 32768 && hi == 60999);
    assert_true(rp_port_range("40000-40099", &lo, &hi) && lo == 40000 && hi == 40099);
    assert_true(rp_port_range("1024 65535", &lo, &hi) && hi - lo + 1 == 64512);
    assert_false(rp_port_range("5000-4000", &lo, &hi));
    assert_false(rp_port_range("0-10", &lo, &hi));
    assert_false(rp_port_range("1-70000", &lo, &hi));
    assert_false(rp_port_range("40000", &lo, &hi));
    assert_false(rp_port_range("a-b", &lo, &hi));
    assert_false(rp_port_range("", &lo, &hi));

    char pair[64];
    assert_true(rp_label_pair("key=http://a:1", pair, sizeof pair));
    assert_string_equal(pair, "key=\"http://a:1\"");
    assert_false(rp_label_pair("novalue", pair, sizeof pair));
    assert_false(rp_label_pair("=x", pair, sizeof pair));
    assert_false(rp_label_pair("k=a\"b", pair, sizeof pair));
    assert_false(rp_label_pair("k=0123456789012345678901234567890123456789012345678901234567890",
                               pair, sizeof pair));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prom_sum),
        cmocka_unit_test(test_loopback_urls),
        cmocka_unit_test(test_keepalive_and_ports),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
