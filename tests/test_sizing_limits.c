/* test_sizing_limits.c: what bounds and shapes a sizing recommendation
 * (tidepool/sizing.h) beyond the Erlang C search of test_sizing.c: the port budget and
 * the server's limit cap it and say so, the idle timeout stays under the server's
 * keep-alive, loads in the thousands and near zero stay finite and sensible, and bad
 * input fails with TP_EINVAL naming the field. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <tidepool/tidepool.h>
#include <tidepool/sizing.h>

/* |got - want| within rel of want (or within rel absolutely near 0). */
#define assert_close(got, want, rel)                                                               \
    do {                                                                                           \
        double g_ = (got), w_ = (want);                                                            \
        double tol_ = (rel) * (fabs(w_) > 1 ? fabs(w_) : 1);                                       \
        if (!(fabs(g_ - w_) <= tol_))                                                              \
            fail_msg("%s = %.12g, want %.12g (tolerance %.3g)", #got, g_, w_, tol_);               \
    } while (0)

/* Recommends for rate and hold with a P(wait) target; asserts TP_OK. */
static tp_sizing_result recommend(double rate, double hold_s, double eps)
{
    tp_sizing_input in;
    tp_sizing_input_init(&in);
    in.rate = rate;
    in.hold_s = hold_s;
    in.target_wait_prob = eps;
    tp_sizing_result r;
    tp_errinfo e;
    tp_err rc = tp_sizing_recommend(&in, &r, &e);
    if (rc != TP_OK)
        fail_msg("recommend(%g, %g, %g): %s", rate, hold_s, eps, e.msg);
    return r;
}

/* Does any explanation line contain needle? */
static bool explains(const tp_sizing_result *r, const char *needle)
{
    for (int i = 0; i < r->nlines; i++)
        if (strstr(r->line[i], needle) != NULL)
            return true;
    return false;
}

static void test_recommend_bounds(void **state)
{
    tp_sizing_input in;
    tp_sizing_input_init(&in);
    in.rate = 1000;
    in.hold_s = 0.010; /* 10 erlangs: 17 wanted */
    tp_sizing_result r;
    tp_errinfo e;

    /* The server accepts 12: capped, the target missed, and said so. */
    in.server_max_conns = 12;
    assert_int_equal(tp_sizing_recommend(&in, &r, &e), TP_OK);
    assert_int_equal(r.max_per_key, 12);
    assert_int_equal(r.needed_per_key, 17);
    assert_true(r.flags & TP_SIZING_BOUND_SERVER);
    assert_true(r.flags & TP_SIZING_TARGET_MISSED);
    assert_false(r.flags & (TP_SIZING_BOUND_PORTS | TP_SIZING_OVERLOADED));
    assert_close(r.p_wait, 0.449388224, 1e-8);
    assert_true(explains(&r, "server") && explains(&r, "17"));
    /* A cap above the need changes nothing. */
    in.server_max_conns = 100;
    assert_int_equal(tp_sizing_recommend(&in, &r, &e), TP_OK);
    assert_int_equal(r.max_per_key, 17);
    assert_int_equal(r.flags & (TP_SIZING_BOUND_SERVER | TP_SIZING_TARGET_MISSED), 0);
    /* Below the load: overloaded, waits unbounded. */
    in.server_max_conns = 8;
    assert_int_equal(tp_sizing_recommend(&in, &r, &e), TP_OK);
    assert_int_equal(r.max_per_key, 8);
    assert_true(r.flags & TP_SIZING_OVERLOADED);
    assert_true(r.p_wait == 1.0 && isinf(r.mean_wait_s) && isinf(r.quantile_wait_s));
    assert_true(explains(&r, "overloaded"));

    /* Ports: 1000 ports, 15 closes/s x 60 s = 900 in TIME_WAIT: room for 100. */
    in.server_max_conns = TP_UNLIMITED;
    in.rate = 9500; /* 95 erlangs: about 112 wanted */
    in.port_range = 1000;
    in.close_rate = 15;
    assert_int_equal(tp_sizing_recommend(&in, &r, &e), TP_OK);
    assert_close(r.ports_time_wait, 900, 1e-12);
    assert_int_equal(r.port_cap, 100);
    assert_int_equal(r.max_per_key, 100);
    assert_true(r.needed_per_key > 100);
    assert_true(r.flags & TP_SIZING_BOUND_PORTS);
    assert_true(r.flags & TP_SIZING_TARGET_MISSED);
    assert_true(explains(&r, "ports") && explains(&r, "port budget"));
    /* With tcp_tw_reuse (about 1 s) the same churn leaves room: no cap. */
    in.time_wait_s = 1;
    assert_int_equal(tp_sizing_recommend(&in, &r, &e), TP_OK);
    assert_int_equal(r.max_per_key, r.needed_per_key);
    assert_false(r.flags & TP_SIZING_BOUND_PORTS);
    /* Churn alone fills the default range: 500/s x 60 s > 28232. */
    tp_sizing_input_init(&in);
    in.rate = 1000;
    in.hold_s = 0.010;
    in.close_rate = 500;
    assert_int_equal(tp_sizing_recommend(&in, &r, &e), TP_OK);
    assert_true(r.flags & TP_SIZING_PORTS_EXHAUSTED);
    assert_int_equal(r.port_cap, 0);
    assert_int_equal(r.max_per_key, 17);
    assert_true(explains(&r, "TIME_WAIT"));
    /* Both caps: the smaller wins. */
    tp_sizing_input_init(&in);
    in.rate = 1000;
    in.hold_s = 0.010;
    in.port_range = 15;
    in.server_max_conns = 14;
    assert_int_equal(tp_sizing_recommend(&in, &r, &e), TP_OK);
    assert_int_equal(r.max_per_key, 14);
    assert_true(r.flags & TP_SIZING_BOUND_SERVER);
    assert_false(r.flags & TP_SIZING_BOUND_PORTS);
}

static void test_recommend_idle_timeout(void **state)
{
    tp_sizing_input in;
    tp_sizing_input_init(&in);
    in.rate = 100;
    in.hold_s = 0.010;
    tp_sizing_result r;
    static const struct {
        double k, idle;
    } k[] = {{75, 67.5}, {10, 9}, {5, 4}, {2, 1}, {1.5, 0.75}, {0.2, 0.1}, {15, 13.5}};
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++) {
        in.keepalive_s = k[i].k;
        assert_int_equal(tp_sizing_recommend(&in, &r, NULL), TP_OK);
        /* to the microsecond, rounded down */
        assert_true(llabs(r.idle_timeout - (int64_t)llround(k[i].idle * 1e9)) <= TP_NSEC_PER_USEC);
        assert_true(((r.flags & TP_SIZING_KEEPALIVE_SHORT) != 0) == (k[i].k < 2));
        assert_false(r.flags & TP_SIZING_KEEPALIVE_UNKNOWN);
    }
    for (double ka = 0.05; ka < 5000; ka *= 1.1) {
        in.keepalive_s = ka;
        assert_int_equal(tp_sizing_recommend(&in, &r, NULL), TP_OK);
        assert_true(r.idle_timeout > 0);
        assert_true((double)r.idle_timeout < ka * 1e9);
        if (ka >= 2) /* at least 1 s of margin once there is room for it */
            assert_true((double)r.idle_timeout <= (ka - 1) * 1e9);
    }
    in.keepalive_s = TP_SIZING_UNSET;
    assert_int_equal(tp_sizing_recommend(&in, &r, NULL), TP_OK);
    assert_int_equal(r.idle_timeout, 30 * TP_NSEC_PER_SEC);
    assert_true(r.flags & TP_SIZING_KEEPALIVE_UNKNOWN);
    assert_true(explains(&r, "unknown"));
}

static void test_recommend_extremes(void **state)
{
    /* 5000 erlangs: the recursion stays stable and the answer is square-root sized. */
    tp_sizing_input in;
    tp_sizing_input_init(&in);
    in.rate = 500000;
    in.hold_s = 0.010;
    in.port_range = 65536;
    tp_sizing_result r;
    tp_errinfo e;
    assert_int_equal(tp_sizing_recommend(&in, &r, &e), TP_OK);
    assert_true(r.max_per_key > 5000 + 1.5 * sqrt(5000) && r.max_per_key < 5000 + 2 * sqrt(5000));
    assert_true(isfinite(r.p_wait) && r.p_wait <= 0.05 && r.p_wait > 0.03);
    assert_true(isfinite(r.mean_wait_s) && isfinite(r.quantile_wait_s));
    assert_true(tp_erlang_c(r.max_per_key - 1, 5000) > 0.05);
    /* The largest load accepted: capped by the port range, overloaded, still finite work. */
    in.rate = (double)(TP_SIZING_MAX_CONNS / 2);
    in.hold_s = 1;
    assert_int_equal(tp_sizing_recommend(&in, &r, &e), TP_OK);
    assert_int_equal(r.max_per_key, 65536);
    assert_true(r.flags & TP_SIZING_OVERLOADED);
    assert_true(r.needed_per_key > TP_SIZING_MAX_CONNS / 2);

    /* A tiny load: one connection, nothing kept warm (requests are rarer than idle expiry). */
    tp_sizing_input_init(&in);
    in.rate = 0.001;
    in.hold_s = 0.001;
    assert_int_equal(tp_sizing_recommend(&in, &r, &e), TP_OK);
    assert_int_equal(r.max_per_key, 1);
    assert_int_equal(r.min_idle_per_key, 0);
    assert_close(r.p_wait / 1e-6, 1.0, 1e-9); /* by hand: C(1, a) = a, M/M/1's rho */
    assert_true(isfinite(r.mean_wait_s) && r.mean_wait_s < 1e-8);
    assert_true(explains(&r, "min_idle_per_key 0"));

    /* Every line is a non-empty, terminated sentence; the reasons are named. */
    r = recommend(1000, 0.010, 0.05);
    assert_true(r.nlines >= 5 && r.nlines <= TP_SIZING_MAX_LINES);
    for (int i = 0; i < r.nlines; i++) {
        size_t n = strnlen(r.line[i], TP_SIZING_LINE_SIZE);
        assert_true(n > 10 && n < TP_SIZING_LINE_SIZE);
    }
    assert_true(explains(&r, "Little"));
    assert_true(explains(&r, "Erlang C"));
}

/* Sets one field bad, expects TP_EINVAL naming it, and a zeroed result. */
#define EXPECT_BAD(field, value, name)                                                             \
    do {                                                                                           \
        tp_sizing_input in_;                                                                       \
        tp_sizing_input_init(&in_);                                                                \
        in_.rate = 100;                                                                            \
        in_.hold_s = 0.01;                                                                         \
        in_.field = (value);                                                                       \
        tp_sizing_result r_;                                                                       \
        memset(&r_, 0x5a, sizeof r_);                                                              \
        tp_errinfo e_;                                                                             \
        tp_errinfo_clear(&e_);                                                                     \
        assert_int_equal(tp_sizing_recommend(&in_, &r_, &e_), TP_EINVAL);                          \
        assert_int_equal(e_.code, TP_EINVAL);                                                      \
        if (strstr(e_.msg, name) == NULL)                                                          \
            fail_msg("%s = %s: message '%s' does not name '%s'", #field, #value, e_.msg, name);    \
        assert_int_equal(r_.max_per_key, 0);                                                       \
        assert_int_equal(r_.nlines, 0);                                                            \
    } while (0)

static void test_invalid_inputs(void **state)
{
    EXPECT_BAD(rate, 0, "rate");
    EXPECT_BAD(rate, -5, "rate");
    EXPECT_BAD(rate, NAN, "rate");
    EXPECT_BAD(rate, INFINITY, "rate");
    EXPECT_BAD(rate, 1e12, "rate"); /* a load beyond any pool */
    EXPECT_BAD(hold_s, 0, "hold_s");
    EXPECT_BAD(hold_s, -0.01, "hold_s");
    EXPECT_BAD(target_wait_prob, 0, "target_wait_prob");
    EXPECT_BAD(target_wait_prob, 1, "target_wait_prob");
    EXPECT_BAD(target_wait_prob, -0.5, "target_wait_prob");
    EXPECT_BAD(target_wait_s, -2, "target_wait_s");
    EXPECT_BAD(target_wait_prob, TP_SIZING_UNSET, "target"); /* no target at all */
    EXPECT_BAD(target_quantile, 1, "target_quantile");
    EXPECT_BAD(target_quantile, 0, "target_quantile");
    EXPECT_BAD(port_range, 0, "port_range");
    EXPECT_BAD(port_range, 70000, "port_range");
    EXPECT_BAD(close_rate, -1, "close_rate");
    EXPECT_BAD(time_wait_s, -1, "time_wait_s");
    EXPECT_BAD(time_wait_s, NAN, "time_wait_s");
    EXPECT_BAD(server_max_conns, 0, "server_max_conns");
    EXPECT_BAD(keepalive_s, 0, "keepalive_s");
    EXPECT_BAD(keepalive_s, -3, "keepalive_s");
    EXPECT_BAD(version, 0, "version");

    tp_sizing_result r;
    tp_errinfo e;
    assert_int_equal(tp_sizing_recommend(NULL, &r, &e), TP_EINVAL);
    tp_sizing_input in;
    tp_sizing_input_init(&in);
    in.rate = 1;
    in.hold_s = 1;
    assert_int_equal(tp_sizing_recommend(&in, NULL, &e), TP_EINVAL);
    assert_int_equal(tp_sizing_recommend(&in, &r, NULL), TP_OK); /* err is optional */
    tp_sizing_input_init(NULL);                                  /* no-op */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_recommend_bounds),
        cmocka_unit_test(test_recommend_idle_timeout),
        cmocka_unit_test(test_recommend_extremes),
        cmocka_unit_test(test_invalid_inputs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
