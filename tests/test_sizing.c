/* test_sizing.c: the queueing formulas (Erlang B and C, the M/M/c wait, Little's law)
 * and the pool size tp_sizing_recommend() picks (tidepool/sizing.h). Expected values were
 * computed independently of the code under test: exact rational arithmetic over the
 * factorial formulas for small loads, and log-space sums (lgamma, log-sum-exp) for loads
 * in the thousands (python3 fractions/math, by hand where noted). Beyond values, more
 * load must never mean a smaller pool and a looser target never a bigger one.
 * test_sizing_limits.c covers the caps, the idle timeout, extremes and bad input. */
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

typedef struct erlang_case {
    int64_t c;
    double a, b, cc;
} erlang_case;

static void test_erlang_known_values(void **state)
{
    /* The values, to the stated 1e-6. */
    assert_true(fabs(tp_erlang_b(12, 10) - 0.119739) < 1e-6);
    assert_true(fabs(tp_erlang_c(12, 10) - 0.449388) < 1e-6);

    static const erlang_case k[] = {
        {1, 0.5, 1.0 / 3, 0.5}, /* by hand: B = a/(1+a), C = a */
        {2, 1, 0.2, 1.0 / 3},   /* by hand: B = (1/2)/(1+1+1/2) */
        {5, 3, 0.110054347826, 0.236151603499},
        {6, 2, 0.012084592145, 0.018018018018},
        {16, 10, 0.022301872040, 0.057340330903},
        {17, 10, 0.012948875225, 0.030876109981},
        {30, 20, 0.008457498340, 0.024950458105},
        {100, 90, 0.026957380464, 0.216940480906},
        {1050, 1000, 0.003813135985, 0.07440177404},
        {5100, 5000, 0.002243579296, 0.1028814136},
        {5200, 5000, 0.000107023746, 0.002775192109},
        {10100, 10000, 0.002862357221, 0.2247629065},
    };
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++) {
        assert_close(tp_erlang_b(k[i].c, k[i].a) / k[i].b, 1.0, 1e-8);
        assert_close(tp_erlang_c(k[i].c, k[i].a) / k[i].cc, 1.0, 1e-8);
    }
    /* A tiny load: relative accuracy holds far below 1. */
    assert_close(tp_erlang_b(3, 0.01) / 1.6500830569306707e-07, 1.0, 1e-9);
    assert_close(tp_erlang_c(3, 0.01) / 1.6556017284482044e-07, 1.0, 1e-9);
}

static void test_erlang_edges(void **state)
{
    /* c <= a: the queue never drains, every arrival waits. */
    assert_true(tp_erlang_c(10, 10) == 1.0);
    assert_true(tp_erlang_c(5, 7.5) == 1.0);
    assert_true(tp_erlang_c(0, 0) == 1.0);
    assert_true(tp_erlang_c(4999, 5000) == 1.0);
    /* No servers block everything; no load blocks nothing. */
    assert_true(tp_erlang_b(0, 3) == 1.0);
    assert_true(tp_erlang_b(5, 0) == 0.0);
    assert_true(tp_erlang_c(5, 0) == 0.0);
    /* Far more servers than load: B underflows to 0, never NaN. */
    assert_true(tp_erlang_b(INT64_C(1) << 40, 2) == 0.0);
    /* Huge loads stay finite and in range (the factorial form overflows past 170). */
    for (double a = 1000; a <= 50000; a *= 2.5) {
        for (int64_t c = (int64_t)a - 50; c <= (int64_t)a + 400; c += 50) {
            double b = tp_erlang_b(c, a), cc = tp_erlang_c(c, a);
            assert_true(isfinite(b) && b > 0 && b <= 1);
            assert_true(isfinite(cc) && cc >= b && cc <= 1);
        }
    }
    /* Bad input is NaN, not a crash or a plausible number. */
    assert_true(isnan(tp_erlang_b(-1, 1)));
    assert_true(isnan(tp_erlang_b(3, -1)));
    assert_true(isnan(tp_erlang_c(3, NAN)));
    assert_true(isnan(tp_erlang_c(3, INFINITY)));
    assert_true(isnan(tp_mmc_mean_wait(3, 1, 0)));
    assert_true(isnan(tp_mmc_wait_tail(3, 1, 0.01, -1)));
    assert_true(isnan(tp_mmc_wait_quantile(3, 1, 0.01, 1.0)));
    assert_true(isnan(tp_littles_law(-1, 2)));
}

static void test_waits_and_little(void **state)
{
    double h = 0.010, C = 0.030876109981; /* C(17, 10) */
    assert_close(tp_mmc_wait_tail(17, 10, h, 0), C, 1e-9);
    assert_close(tp_mmc_mean_wait(17, 10, h), C * h / 7, 1e-9);
    assert_close(tp_mmc_wait_tail(17, 10, h, 0.002), C * exp(-7 * 0.002 / h), 1e-9);
    assert_close(tp_mmc_wait_quantile(17, 10, h, 0.99), h / 7 * log(C / 0.01), 1e-9);
    /* The quantile and the tail agree: P(W > w_q) = 1 - q. */
    double w = tp_mmc_wait_quantile(17, 10, h, 0.999);
    assert_close(tp_mmc_wait_tail(17, 10, h, w), 0.001, 1e-9);
    /* Fewer than 1 - q wait at all: that quantile is 0. */
    assert_true(tp_mmc_wait_quantile(30, 20, h, 0.5) == 0.0);
    /* The tail decreases with t. */
    double prev = 2;
    for (double t = 0; t < 0.05; t += 0.001) {
        double p = tp_mmc_wait_tail(12, 10, h, t);
        assert_true(p < prev);
        prev = p;
    }
    /* Overloaded: waits are unbounded. */
    assert_true(isinf(tp_mmc_mean_wait(10, 10, h)));
    assert_true(isinf(tp_mmc_wait_quantile(9, 10, h, 0.99)));
    assert_true(tp_mmc_wait_tail(9, 10, h, 1) == 1.0);
    assert_close(tp_littles_law(1000, 0.010), 10, 1e-12);
    assert_close(tp_littles_law(800, 0.0116), 9.28, 1e-12);
}

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

static void test_recommend_known(void **state)
{
    /* Smallest c with C(c, a) <= 5 %, exact search (reference/adaptive.md 2.4, rechecked). */
    static const struct {
        double a;
        int64_t c;
    } k[] = {{2, 6}, {5, 10}, {10, 17}, {20, 29}, {50, 64}, {200, 226}, {1000, 1056}};
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++) {
        tp_sizing_result r = recommend(k[i].a * 100, 0.010, 0.05);
        assert_int_equal(r.max_per_key, k[i].c);
        assert_int_equal(r.needed_per_key, k[i].c);
        assert_true(r.p_wait <= 0.05);
        assert_true(tp_erlang_c(k[i].c - 1, k[i].a) > 0.05); /* and one fewer does not */
        assert_close(r.offered_load, k[i].a, 1e-12);
    }
    /* 10 % targets: 250 erlangs -> 274, 200 -> 221. */
    assert_int_equal(recommend(5000, 0.050, 0.10).max_per_key, 274);
    assert_int_equal(recommend(2000, 0.100, 0.10).max_per_key, 221);

    /* 1000/s x 10 ms: the CLI's example. Predictions at 17. */
    tp_sizing_result r = recommend(1000, 0.010, 0.05);
    assert_int_equal(r.max_per_key, 17);
    assert_int_equal(r.min_idle_per_key, 10);
    assert_int_equal(r.max_idle_per_key, 17);
    assert_close(r.p_wait, 0.030876109981, 1e-9);
    assert_close(r.mean_wait_s, 0.030876109981 * 0.010 / 7, 1e-9);
    assert_close(r.quantile_wait_s, 0.010 / 7 * log(0.030876109981 / 0.01), 1e-9);
    assert_close(r.utilisation, 10.0 / 17, 1e-12);
    assert_int_equal(r.flags & (TP_SIZING_TARGET_MISSED | TP_SIZING_OVERLOADED), 0);

    /* A tail target alone: p99 wait <= 1 ms at 20 erlangs of 20 ms holds needs 31 (the
     * smallest c with C e^-(c-a)t/h <= 1 %); p99 <= 0 is P(wait) <= 1 %: 19 for 10. */
    tp_sizing_input in;
    tp_sizing_input_init(&in);
    in.rate = 1000;
    in.hold_s = 0.020;
    in.target_wait_prob = TP_SIZING_UNSET;
    in.target_wait_s = 0.001;
    tp_errinfo e;
    assert_int_equal(tp_sizing_recommend(&in, &r, &e), TP_OK);
    assert_int_equal(r.max_per_key, 31);
    assert_true(r.quantile_wait_s <= 0.001);
    in.hold_s = 0.010;
    in.target_wait_s = 0;
    assert_int_equal(tp_sizing_recommend(&in, &r, &e), TP_OK);
    assert_int_equal(r.max_per_key, 19);
    /* Both targets: the stricter wins. */
    in.target_wait_prob = 0.001;
    assert_int_equal(tp_sizing_recommend(&in, &r, &e), TP_OK);
    assert_true(r.max_per_key > 19 && r.p_wait <= 0.001);
}

static void test_recommend_monotone(void **state)
{
    int64_t prev = 0, prev_idle = 0;
    for (double rate = 0.01; rate < 300000; rate *= 1.13) {
        tp_sizing_result r = recommend(rate, 0.010, 0.05);
        assert_true(r.max_per_key >= prev);
        assert_true(r.min_idle_per_key >= prev_idle);
        assert_true((double)r.max_per_key > r.offered_load);
        prev = r.max_per_key;
        prev_idle = r.min_idle_per_key;
    }
    prev = 0;
    for (double hold = 1e-5; hold < 2.0; hold *= 1.17) {
        tp_sizing_result r = recommend(500, hold, 0.05);
        assert_true(r.max_per_key >= prev);
        prev = r.max_per_key;
    }
    /* Relaxing the target never asks for more connections. */
    prev = INT64_MAX;
    for (double eps = 0.0005; eps < 0.95; eps *= 1.2) {
        tp_sizing_result r = recommend(3000, 0.020, eps);
        assert_true(r.max_per_key <= prev);
        assert_true(r.p_wait <= eps);
        prev = r.max_per_key;
    }
    /* A tail target behaves alike, in rate and in the allowed wait. */
    tp_sizing_input in;
    tp_sizing_input_init(&in);
    in.target_wait_prob = TP_SIZING_UNSET;
    in.hold_s = 0.005;
    in.target_wait_s = 0.002;
    prev = 0;
    for (in.rate = 1; in.rate < 100000; in.rate *= 1.3) {
        tp_sizing_result r;
        assert_int_equal(tp_sizing_recommend(&in, &r, NULL), TP_OK);
        assert_true(r.max_per_key >= prev);
        prev = r.max_per_key;
    }
    in.rate = 4000;
    prev = INT64_MAX;
    for (in.target_wait_s = 0; in.target_wait_s < 0.1; in.target_wait_s += 0.0007) {
        tp_sizing_result r;
        assert_int_equal(tp_sizing_recommend(&in, &r, NULL), TP_OK);
        assert_true(r.max_per_key <= prev);
        prev = r.max_per_key;
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_erlang_known_values), cmocka_unit_test(test_erlang_edges),
        cmocka_unit_test(test_waits_and_little),    cmocka_unit_test(test_recommend_known),
        cmocka_unit_test(test_recommend_monotone),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
