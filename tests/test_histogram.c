/* test_histogram.c: the stats histograms' bucket bounds and quantile estimate, as
 * documented in pool.h (bucket i counts upper(i-1) < v <= upper(i); sqrt(2) growth from
 * 1 us; the last bucket unbounded; quantile 0 for an empty histogram). Dashboards read
 * these numbers, so an off-by-one bucket is a wrong latency on a graph. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include <tidepool/tidepool.h>

static void test_bucket_bounds(void **state)
{
    int64_t first = tp_histogram_bucket_upper(0);
    assert_true(first >= 900 && first <= 1100); /* about 1 us */
    for (int i = 1; i < TP_HIST_BUCKETS - 1; i++) {
        int64_t lo = tp_histogram_bucket_upper(i - 1), hi = tp_histogram_bucket_upper(i);
        assert_true(hi > lo);
        double ratio = (double)hi / (double)lo;
        assert_true(fabs(ratio - sqrt(2.0)) < 0.01);
    }
    assert_true(tp_histogram_bucket_upper(TP_HIST_BUCKETS - 1) == INT64_MAX);
    /* The last bounded bucket is in the tens of minutes. */
    int64_t last = tp_histogram_bucket_upper(TP_HIST_BUCKETS - 2);
    assert_true(last >= 10 * 60 * TP_NSEC_PER_SEC);
    assert_true(last <= 60 * 60 * TP_NSEC_PER_SEC);
}

static void test_quantile(void **state)
{
    tp_histogram h;
    memset(&h, 0, sizeof h);
    assert_true(tp_histogram_quantile(&h, 0.5) == 0); /* empty */

    /* 90 samples in bucket 10, 10 in bucket 20. */
    h.buckets[10] = 90;
    h.buckets[20] = 10;
    h.count = 100;
    int64_t p50 = tp_histogram_quantile(&h, 0.5);
    int64_t p99 = tp_histogram_quantile(&h, 0.99);
    assert_true(p50 > tp_histogram_bucket_upper(9));
    assert_true(p50 <= tp_histogram_bucket_upper(10));
    assert_true(p99 > tp_histogram_bucket_upper(19));
    assert_true(p99 <= tp_histogram_bucket_upper(20));
    assert_true(tp_histogram_quantile(&h, 1.0) <= tp_histogram_bucket_upper(20));
    assert_true(tp_histogram_quantile(&h, 0.0) <= tp_histogram_bucket_upper(10));
    /* Monotone in q. */
    int64_t prev = 0;
    for (double q = 0.0; q <= 1.0; q += 0.05) {
        int64_t v = tp_histogram_quantile(&h, q);
        assert_true(v >= prev);
        prev = v;
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bucket_bounds),
        cmocka_unit_test(test_quantile),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
