/* test_diag_model.c: the doctor's pure functions, with exact values: the port range
 * size, headroom, close rate, critical close rate and time to exhaustion (the model of
 * adaptive.md 3.6), endpoint parsing and formatting, and the state and severity names. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>

#include <tidepool/diag.h>

static void assert_near(double got, double want)
{
    double d = got - want;
    if (d < 0)
        d = -d;
    if (d > 1e-9) {
        print_error("got %.12f, want %.12f\n", got, want);
        fail();
    }
}

static void test_range_and_headroom(void **state)
{
    (void)state;
    assert_int_equal(tp_diag_port_range_size(32768, 60999), 28232); /* Linux default */
    assert_int_equal(tp_diag_port_range_size(1024, 65535), 64512);
    assert_int_equal(tp_diag_port_range_size(40000, 40001), 2);
    assert_int_equal(tp_diag_port_range_size(7, 7), 1);
    assert_int_equal(tp_diag_port_range_size(5, 4), 0);
    assert_int_equal(tp_diag_port_headroom(28232, 12100), 16132);
    assert_int_equal(tp_diag_port_headroom(28232, 0), 28232);
    assert_int_equal(tp_diag_port_headroom(28232, 28232), 0);
    assert_int_equal(tp_diag_port_headroom(100, 150), 0);
}

static void test_rates(void **state)
{
    (void)state;
    assert_near(tp_diag_close_rate(200, 2.0), 100.0);
    assert_near(tp_diag_close_rate(0, 2.0), 0.0);
    assert_near(tp_diag_close_rate(3, 0.5), 6.0);
    assert_near(tp_diag_close_rate(5, 0.0), -1.0);
    assert_near(tp_diag_close_rate(5, -1.0), -1.0);
    /* The default range sustains 28232 / 60 = 470.5 client closes per second. */
    assert_near(tp_diag_critical_rate(28232, 0, 60), 28232.0 / 60.0);
    assert_near(tp_diag_critical_rate(28232, 232, 60), 28000.0 / 60.0);
    /* With tcp_tw_reuse (1 s delay) it is 28 k/s. */
    assert_near(tp_diag_critical_rate(28232, 232, 1.0), 28000.0);
    assert_near(tp_diag_critical_rate(100, 100, 60), 0.0);
    assert_near(tp_diag_critical_rate(100, 10, 0), -1.0);
}

static void test_exhaustion(void **state)
{
    (void)state;
    /* 12000 in TIME_WAIT, 100 open: at 500/s the steady state (30100) overflows the range,
     * so the 16132 free ports last 16132 / 500 s. */
    assert_near(tp_diag_exhaustion_seconds(28232, 100, 12000, 500, 60), 32.264);
    /* At 300/s the steady state is 100 + 18000 < 28232: never. */
    assert_near(tp_diag_exhaustion_seconds(28232, 100, 12000, 300, 60), TP_DIAG_NEVER);
    /* Exactly at the critical rate the range fills: 28200 free ports at 470/s = 60 s. */
    assert_near(tp_diag_exhaustion_seconds(28232, 32, 0, 470, 60), 60.0);
    assert_near(tp_diag_exhaustion_seconds(28232, 32, 0, 469.9, 60), TP_DIAG_NEVER);
    /* Already exhausted. */
    assert_near(tp_diag_exhaustion_seconds(28232, 100, 28132, 1, 60), 0.0);
    assert_near(tp_diag_exhaustion_seconds(10, 20, 0, 0, 60), 0.0);
    /* No closes, unknown rate, or tcp_tw_reuse's 1 s hold: never. */
    assert_near(tp_diag_exhaustion_seconds(28232, 100, 12000, 0, 60), TP_DIAG_NEVER);
    assert_near(tp_diag_exhaustion_seconds(28232, 100, 12000, -1, 60), TP_DIAG_NEVER);
    assert_near(tp_diag_exhaustion_seconds(28232, 100, 12000, 500, 1.0), TP_DIAG_NEVER);
    /* A small range: 2 ports, 1 open, 0.5 closes/s held 60 s: 1 free port lasts 2 s. */
    assert_near(tp_diag_exhaustion_seconds(2, 1, 0, 0.5, 60), 2.0);
}

static void test_endpoint_parse_format(void **state)
{
    (void)state;
    tp_diag_endpoint e;
    char buf[TP_DIAG_ENDPOINT_STRLEN];
    assert_int_equal(tp_diag_endpoint_parse("127.0.0.1:5432", &e), TP_OK);
    assert_int_equal(e.family, AF_INET);
    assert_int_equal(e.port, 5432);
    assert_memory_equal(e.addr, "\x7f\x00\x00\x01", 4);
    assert_string_equal(tp_diag_endpoint_format(&e, buf, sizeof buf), "127.0.0.1:5432");
    assert_true(tp_diag_endpoint_is_loopback(&e));

    assert_int_equal(tp_diag_endpoint_parse("[::1]:80", &e), TP_OK);
    assert_int_equal(e.family, AF_INET6);
    assert_int_equal(e.port, 80);
    assert_string_equal(tp_diag_endpoint_format(&e, buf, sizeof buf), "[::1]:80");
    assert_true(tp_diag_endpoint_is_loopback(&e));

    assert_int_equal(tp_diag_endpoint_parse("[2001:db8::5]:65535", &e), TP_OK);
    assert_string_equal(tp_diag_endpoint_format(&e, buf, sizeof buf), "[2001:db8::5]:65535");
    assert_false(tp_diag_endpoint_is_loopback(&e));

    /* A v4-mapped address is the IPv4 destination it maps. */
    tp_diag_endpoint v4;
    assert_int_equal(tp_diag_endpoint_parse("[::ffff:10.0.0.5]:5432", &e), TP_OK);
    assert_int_equal(tp_diag_endpoint_parse("10.0.0.5:5432", &v4), TP_OK);
    assert_true(tp_diag_endpoint_equal(&e, &v4));
    assert_false(tp_diag_endpoint_is_loopback(&v4));

    /* The longest form fits TP_DIAG_ENDPOINT_STRLEN. */
    assert_int_equal(
        tp_diag_endpoint_parse("[ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255]:65535", &e), TP_OK);
    tp_diag_endpoint_format(&e, buf, sizeof buf);
    assert_true(strlen(buf) < sizeof buf);

    static const char *const bad[] = {
        "127.0.0.1", "127.0.0.1:0", "127.0.0.1:70000", "::1:80", "[::1]80", "[::1]:",
        "host:80",   "1.2.3.4:80x", "1.2.3.4:-1",      "",       "[::1:80", "1.2.3:80"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (tp_diag_endpoint_parse(bad[i], &e) != TP_EINVAL) {
            print_error("accepted \"%s\"\n", bad[i]);
            fail();
        }
        assert_int_equal(e.family, 0);
    }
    assert_int_equal(tp_diag_endpoint_parse(NULL, &e), TP_EINVAL);
    assert_string_equal(tp_diag_endpoint_format(NULL, buf, sizeof buf), "-");
}

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(tp_diag_state_name(TP_DIAG_ESTABLISHED), "ESTABLISHED");
    assert_string_equal(tp_diag_state_name(6), "TIME_WAIT");
    assert_string_equal(tp_diag_state_name(8), "CLOSE_WAIT");
    assert_string_equal(tp_diag_state_name(TP_DIAG_CLOSING), "CLOSING");
    assert_string_equal(tp_diag_state_name(0), "UNKNOWN");
    assert_string_equal(tp_diag_state_name(99), "UNKNOWN");
    assert_string_equal(tp_diag_severity_name(TP_DIAG_INFO), "info");
    assert_string_equal(tp_diag_severity_name(TP_DIAG_WARNING), "warning");
    assert_string_equal(tp_diag_severity_name(TP_DIAG_CRITICAL), "critical");
}

static void test_bad_options(void **state)
{
    (void)state;
    tp_diag_options o;
    tp_diag_options_init(&o);
    assert_true(o.pid_include_orphans);
    assert_int_equal(o.source, TP_DIAG_SOURCE_AUTO);
    tp_diag_report *r = (tp_diag_report *)&o; /* must be reset to NULL on failure */
    tp_errinfo err;
    o.pid = -5;
    assert_int_equal(tp_diag_collect(&o, NULL, &r, &err), TP_EINVAL);
    assert_null(r);
    assert_non_null(strstr(err.msg, "pid"));
    tp_diag_options_init(&o);
    o.source = (tp_diag_source)7;
    assert_int_equal(tp_diag_collect(&o, NULL, &r, &err), TP_EINVAL);
    assert_non_null(strstr(err.msg, "source"));
    tp_diag_options_init(&o);
    o.dest.family = 99;
    assert_int_equal(tp_diag_collect(&o, NULL, &r, &err), TP_EINVAL);
    assert_int_equal(tp_diag_collect(NULL, NULL, NULL, NULL), TP_EINVAL);
    /* NULL reports are harmless everywhere. */
    tp_diag_report_destroy(NULL);
    assert_null(tp_diag_report_host(NULL));
    assert_int_equal(tp_diag_report_dest_count(NULL), 0);
    assert_null(tp_diag_report_dest(NULL, 0));
    assert_int_equal(tp_diag_report_finding_count(NULL), 0);
    char *out;
    assert_int_equal(tp_diag_report_json(NULL, 0, &out, NULL), TP_EINVAL);
    assert_int_equal(tp_diag_report_text(NULL, 0, &out, NULL), TP_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_range_and_headroom),
        cmocka_unit_test(test_rates),
        cmocka_unit_test(test_exhaustion),
        cmocka_unit_test(test_endpoint_parse_format),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_bad_options),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
