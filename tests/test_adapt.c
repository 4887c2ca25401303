/* test_adapt.c: the adaptive concurrency limit (tidepool/adapt.h) with a fake clock:
 * option defaults and validation, the start-up probe, bounds, loss back-off, the
 * application-limited guard, determinism, the periodic and floor-triggered minRTT
 * probes, short windows, the port-budget cap, and the histogram's resolution. The
 * closed-loop behaviour is in test_adapt_sim.c. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <tidepool/adapt.h>
#include "adapt/limit_internal.h"
#include "support/test_util.h"

/* A tiny deterministic generator for the tests' random streams. */
static uint64_t trand(uint64_t *s)
{
    *s = *s * UINT64_C(6364136223846793005) + UINT64_C(1442695040888963407);
    return *s >> 33;
}

/* feed: n samples of latency lat spread over span ns from *now (each completing at
 * its time), then advances *now to the end of the span. */
static void feed(tp_adapt_state *st, int64_t *now, int n, int64_t lat, int64_t inflight,
                 tp_adapt_outcome oc, int64_t span)
{
    int64_t t0 = *now;
    for (int i = 1; i <= n; i++)
        tp_adapt_sample(st, lat, inflight, oc, t0 + span * i / (n + 1));
    *now = t0 + span;
}

/* start: a state with options o at t = 0 whose start-up probe measured base_lat. */
static void start(tp_adapt_state *st, const tp_adapt_options *o, int64_t *now, int64_t base_lat)
{
    *now = 0;
    assert_int_equal(tp_adapt_init(st, o, 1234, *now, NULL), TP_OK);
    assert_true(tp_adapt_probing(st));
    *now = base_lat; /* so the first samples started inside the probe */
    feed(st, now, (int)o->probe_samples, base_lat, 3, TP_ADAPT_OK, MS(50));
    tp_adapt_tick(st, *now);
    assert_false(tp_adapt_probing(st));
}

/* window: one 100 ms window (the length for a 10 ms baseline) of n samples, closed by a
 * tick at its end; returns the limit. */
static int64_t window(tp_adapt_state *st, int64_t *now, int n, int64_t lat, int64_t inflight,
                      int drops)
{
    feed(st, now, n, lat, inflight, TP_ADAPT_OK, MS(100) - 1);
    for (int i = 0; i < drops; i++)
        tp_adapt_sample(st, lat, inflight, TP_ADAPT_DROP, *now);
    *now += 1;
    return tp_adapt_tick(st, *now);
}

static void test_defaults_and_startup_probe(void **state)
{
    (void)state;
    tp_adapt_options o;
    tp_adapt_options_init(&o);
    assert_int_equal(o.min_limit, 3);
    assert_int_equal(o.initial_limit, 20);
    assert_true(o.tolerance == 0.25 && o.gradient_min == 0.5 && o.gradient_max == 2.0);
    assert_int_equal(o.window_min, MS(100));
    assert_int_equal(o.window_max, MS(1000));
    assert_int_equal(o.probe_interval, MS(60000));
    assert_int_equal(o.probe_samples, 50);
    assert_true(o.drop_backoff == 0.9 && o.app_limited_ratio == 0.5 && o.port_budget == TP_UNLIMITED);
    assert_int_equal(tp_adapt_options_validate(&o, NULL), TP_OK);

    tp_adapt_state st;
    int64_t now = 0;
    assert_int_equal(tp_adapt_init(&st, &o, 1, now, NULL), TP_OK); /* probe at 5 = max(3, 20/4) */
    assert_true(tp_adapt_probing(&st));
    assert_int_equal(tp_adapt_limit(&st), 5);
    assert_int_equal(tp_adapt_min_rtt(&st), 0);
    now = MS(10);
    feed(&st, &now, 49, MS(10), 5, TP_ADAPT_OK, MS(100));
    assert_int_equal(tp_adapt_tick(&st, now), 5);
    feed(&st, &now, 1, MS(10), 5, TP_ADAPT_OK, MS(1));
    assert_int_equal(tp_adapt_tick(&st, now), 20);
    assert_false(tp_adapt_probing(&st));
    assert_true(llabs(tp_adapt_min_rtt(&st) - MS(10)) <= MS(10) / 16);

    /* Latency at the baseline under full use: g = 1.25, the limit grows (smoothed). */
    int64_t l = window(&st, &now, 100, MS(10), 20, 0);
    assert_true(l > 20);
    assert_true(tp_adapt_gradient(&st) > 1.2 && tp_adapt_gradient(&st) < 1.3);
    assert_int_equal(tp_adapt_windows(&st), 1);
    /* Latency at 4x the baseline: g clamps at 0.5, the limit shrinks. */
    int64_t l2 = window(&st, &now, 100, MS(40), l, 0);
    assert_true(l2 < l);
    assert_true(tp_adapt_gradient(&st) == 0.5);
    assert_true(llabs(tp_adapt_sample_rtt(&st) - MS(40)) <= MS(40) / 16);
}

static void test_requests_started_before_probe_are_ignored(void **state)
{
    (void)state;
    tp_adapt_options o;
    tp_adapt_options_init(&o);
    tp_adapt_state st;
    assert_int_equal(tp_adapt_init(&st, &o, 1, MS(1000), NULL), TP_OK);
    /* 100 samples that started before the probe (latency longer than the time since). */
    int64_t now = MS(1000);
    feed(&st, &now, 100, MS(500), 20, TP_ADAPT_OK, MS(100));
    tp_adapt_tick(&st, now);
    assert_true(tp_adapt_probing(&st));
}

/* Random streams (latency 1-400 ms, any in-flight, some drops, some silent windows):
 * the limit never leaves [min_limit, max_limit], and a window with a drop never raises
 * it (outside probes, which pin it down and then restore it). */
static void test_bounds_and_drops(void **state)
{
    (void)state;
    tp_adapt_options o;
    tp_adapt_options_init(&o);
    o.min_limit = 5, o.max_limit = 40, o.probe_interval = MS(5000);
    tp_adapt_state st;
    int64_t now;
    start(&st, &o, &now, MS(10));
    uint64_t r = 99;
    int drop_windows = 0;
    for (int w = 0; w < 3000; w++) {
        int64_t before = tp_adapt_limit(&st);
        bool probing_before = tp_adapt_probing(&st);
        int64_t lat = MS(1) + (int64_t)(trand(&r) % 400) * MS(1);
        int n = (int)(trand(&r) % 40);
        int drops = trand(&r) % 3 == 0 ? 1 + (int)(trand(&r) % 3) : 0;
        int64_t l = window(&st, &now, n, lat, (int64_t)(trand(&r) % 60), drops);
        assert_true(l >= o.min_limit && l <= o.max_limit);
        assert_int_equal(l, tp_adapt_limit(&st));
        if (drops > 0 && !probing_before && !tp_adapt_probing(&st) &&
            tp_adapt_window_drops(&st) > 0) {
            drop_windows++;
            if (l > before)
                fail_msg("window %d: a drop raised the limit from %lld to %lld", w,
                         (long long)before, (long long)l);
        }
    }
    assert_true(drop_windows > 100);
}

/* Pure function of its inputs: two states fed the same stream with the same seed
 * follow the same trajectory, window by window, probes included. */
static void test_determinism(void **state)
{
    (void)state;
    tp_adapt_options o;
    tp_adapt_options_init(&o);
    o.probe_interval = MS(2000);
    tp_adapt_state a, b;
    int64_t na, nb;
    start(&a, &o, &na, MS(10));
    start(&b, &o, &nb, MS(10));
    uint64_t ra = 7, rb = 7;
    for (int w = 0; w < 2000; w++) {
        int64_t lat_a = MS(5) + (int64_t)(trand(&ra) % 30) * MS(1);
        int64_t lat_b = MS(5) + (int64_t)(trand(&rb) % 30) * MS(1);
        int64_t la = window(&a, &na, 30, lat_a, (int64_t)(trand(&ra) % 50), w % 17 == 0);
        int64_t lb = window(&b, &nb, 30, lat_b, (int64_t)(trand(&rb) % 50), w % 17 == 0);
        assert_int_equal(la, lb);
        assert_int_equal(tp_adapt_min_rtt(&a), tp_adapt_min_rtt(&b));
        assert_true(tp_adapt_probing(&a) == tp_adapt_probing(&b));
    }
    assert_int_equal(memcmp(&a, &b, sizeof a), 0);
}

/* No growth while the key is application-limited: latency at the baseline (g = 1.25)
 * but at most 9 in flight under a limit of 20 (< L/2) leaves L alone; 10 lets it grow. */
static void test_app_limited_guard(void **state)
{
    (void)state;
    tp_adapt_options o;
    tp_adapt_options_init(&o);
    tp_adapt_state st;
    int64_t now;
    start(&st, &o, &now, MS(10));
    assert_int_equal(tp_adapt_limit(&st), 20);
    for (int w = 0; w < 50; w++)
        assert_int_equal(window(&st, &now, 50, MS(10), 9, 0), 20);
    assert_true(window(&st, &now, 50, MS(10), 10, 0) > 20);
    /* Shrinking is still allowed when app-limited: slow responses mean less room. */
    int64_t l = tp_adapt_limit(&st);
    assert_true(window(&st, &now, 50, MS(40), 2, 0) < l);
}

/* The periodic probe starts within 60 s +/- 15 % of the last one's end, pins the limit
 * to max(3, L/4), and re-measures a baseline that moved (10 ms -> 20 ms). */
static void test_probe_interval_and_rebaseline(void **state)
{
    (void)state;
    tp_adapt_options o;
    tp_adapt_options_init(&o);
    o.floor_windows = 0, o.min_limit = 1; /* only the periodic probe here */
    for (uint64_t seed = 1; seed <= 8; seed++) {
        tp_adapt_state st;
        int64_t now = 0;
        assert_int_equal(tp_adapt_init(&st, &o, seed, now, NULL), TP_OK);
        now = MS(10);
        feed(&st, &now, 50, MS(10), 3, TP_ADAPT_OK, MS(50));
        tp_adapt_tick(&st, now);
        int64_t probe_end = now;
        /* Steady use at the baseline, the limit around 20-60. */
        int64_t l = tp_adapt_limit(&st), prev = l;
        while (!tp_adapt_probing(&st) && now < MS(80000)) {
            int64_t inflight = l < 30 ? l : 30;
            prev = l;
            l = window(&st, &now, 50, MS(10), inflight, 0);
        }
        l = prev; /* the limit before the probe pinned it */
        double after = (double)(now - probe_end) / 1e9;
        if (!(after >= 51.0 - 0.2 && after <= 69.0 + 0.2))
            fail_msg("seed %llu: probe %.2f s after the last, want 60 s +/- 15 %%",
                     (unsigned long long)seed, after);
        assert_true(tp_adapt_limit(&st) >= 3);
        assert_true(tp_adapt_limit(&st) <= (l / 4 > 3 ? l / 4 : 3));
        /* The server got twice as slow: the probe measures 20 ms. */
        now += MS(20);
        feed(&st, &now, 50, MS(20), 3, TP_ADAPT_OK, MS(100));
        tp_adapt_tick(&st, now);
        assert_false(tp_adapt_probing(&st));
        assert_true(llabs(tp_adapt_min_rtt(&st) - MS(20)) <= MS(20) / 16);
    }
}

/* A stale baseline (latency 4x, so g = 0.5 whatever L is) drives the limit to its floor
 * (the fixed point of L = L/2 + sqrt(L/2) is 2); five windows there start a probe long
 * before the 60 s interval. (At 2x, L = 0.625 L + sqrt(0.625 L) settles at 4.4, above
 * the floor: the periodic probe re-measures that case.) */
static void test_floor_retriggers_probe(void **state)
{
    (void)state;
    tp_adapt_options o;
    tp_adapt_options_init(&o);
    tp_adapt_state st;
    int64_t now;
    start(&st, &o, &now, MS(10));
    int w = 0;
    while (!tp_adapt_probing(&st) && w < 200) {
        window(&st, &now, 50, MS(40), tp_adapt_limit(&st), 0);
        w++;
    }
    assert_true(tp_adapt_probing(&st));
    assert_true(now < MS(10000));
    now += MS(40);
    feed(&st, &now, 50, MS(40), 3, TP_ADAPT_OK, MS(100));
    tp_adapt_tick(&st, now);
    assert_true(llabs(tp_adapt_min_rtt(&st) - MS(40)) <= MS(40) / 16);
}

/* Windows with fewer than min_window_samples samples do not move the limit: one waits
 * for more up to window_max, then is discarded. */
static void test_short_windows_ignored(void **state)
{
    (void)state;
    tp_adapt_options o;
    tp_adapt_options_init(&o);
    tp_adapt_state st;
    int64_t now;
    start(&st, &o, &now, MS(10));
    uint64_t windows = tp_adapt_windows(&st);
    /* 9 very slow samples per second (window_max): each would halve the limit if it
     * counted, but the window is discarded at window_max. */
    for (int i = 0; i < 30; i++) {
        feed(&st, &now, 9, MS(200), 20, TP_ADAPT_OK, MS(1000));
        assert_int_equal(tp_adapt_tick(&st, now), 20);
    }
    assert_int_equal(tp_adapt_windows(&st), windows);
    /* Short of samples at the nominal end, a window waits (up to window_max). */
    feed(&st, &now, 9, MS(200), 20, TP_ADAPT_OK, MS(300));
    assert_int_equal(tp_adapt_tick(&st, now), 20);
    assert_int_equal(tp_adapt_windows(&st), windows);
    /* 10 samples close a window. */
    assert_true(window(&st, &now, 10, MS(200), 20, 0) < 20);
    assert_int_equal(tp_adapt_windows(&st), windows + 1);
}

/* The port budget caps the limit (even below min_limit: no port, no connection), at
 * init and when changed at run time. */
static void test_port_budget_cap(void **state)
{
    (void)state;
    tp_adapt_options o;
    tp_adapt_options_init(&o);
    o.port_budget = 12;
    tp_adapt_state st;
    int64_t now;
    start(&st, &o, &now, MS(10));
    assert_int_equal(tp_adapt_limit(&st), 12);
    for (int w = 0; w < 100; w++)
        assert_true(window(&st, &now, 50, MS(5), tp_adapt_limit(&st), 0) <= 12);
    assert_int_equal(tp_adapt_limit(&st), 12);
    assert_int_equal(tp_adapt_set_port_budget(&st, 2), TP_OK);
    assert_int_equal(tp_adapt_limit(&st), 2);
    for (int w = 0; w < 20; w++)
        assert_int_equal(window(&st, &now, 50, MS(5), 2, 0), 2);
    assert_int_equal(tp_adapt_set_port_budget(&st, 0), TP_EINVAL);
    assert_int_equal(tp_adapt_set_port_budget(&st, TP_UNLIMITED), TP_OK);
    assert_true(window(&st, &now, 50, MS(5), 2, 0) >= 2);
}

/* Each bad option fails with TP_EINVAL and a message naming its field. */
static void test_option_validation(void **state)
{
    (void)state;
    tp_adapt_options o;
    tp_adapt_state st_;
    tp_errinfo err;
#define EXPECT_BAD(field, stmt)                                                                    \
    do {                                                                                           \
        tp_adapt_options_init(&o);                                                                 \
        stmt;                                                                                      \
        tp_errinfo_clear(&err);                                                                    \
        assert_int_equal(tp_adapt_options_validate(&o, &err), TP_EINVAL);                          \
        assert_int_equal(err.code, TP_EINVAL);                                                     \
        if (strncmp(err.msg, field ":", strlen(field ":")) != 0)                                   \
            fail_msg("want a message about %s, got \"%s\"", field, err.msg);                       \
        assert_int_equal(tp_adapt_init(&st_, &o, 1, 0, NULL), TP_EINVAL);                          \
    } while (0)
    EXPECT_BAD("min_limit", o.min_limit = 0);
    EXPECT_BAD("max_limit", o.max_limit = 2);
    EXPECT_BAD("initial_limit", o.initial_limit = 2000);
    EXPECT_BAD("port_budget", o.port_budget = 0);
    EXPECT_BAD("tolerance", o.tolerance = NAN);
    EXPECT_BAD("tolerance", o.tolerance = -0.1);
    EXPECT_BAD("gradient_min", o.gradient_min = 0);
    EXPECT_BAD("gradient_max", o.gradient_max = 0.9);
    EXPECT_BAD("percentile", o.percentile = 1.0);
    EXPECT_BAD("smoothing", o.smoothing = 0);
    EXPECT_BAD("drop_backoff", o.drop_backoff = 1.0);
    EXPECT_BAD("app_limited_ratio", o.app_limited_ratio = 1.5);
    EXPECT_BAD("window_min", o.window_min = 0);
    EXPECT_BAD("window_max", o.window_max = MS(50));
    EXPECT_BAD("min_window_samples", o.min_window_samples = 0);
    EXPECT_BAD("probe_interval", o.probe_interval = 0);
    EXPECT_BAD("probe_jitter", o.probe_jitter = 1.0);
    EXPECT_BAD("probe_min_concurrency", o.probe_min_concurrency = 0);
    EXPECT_BAD("probe_fraction", o.probe_fraction = 0);
    EXPECT_BAD("probe_samples", o.probe_samples = 5);
    EXPECT_BAD("probe_timeout", o.probe_timeout = 0);
    EXPECT_BAD("floor_windows", o.floor_windows = -1);
#undef EXPECT_BAD
    tp_errinfo_clear(&err);
    assert_int_equal(tp_adapt_options_validate(NULL, &err), TP_EINVAL);
    tp_adapt_options_init(&o);
    assert_int_equal(tp_adapt_init(NULL, &o, 1, 0, &err), TP_EINVAL);
    assert_non_null(strstr(err.msg, "state"));
    o.probe_interval = TP_DURATION_INFINITE;
    assert_int_equal(tp_adapt_options_validate(&o, NULL), TP_OK);
}

/* Every latency lands in a bucket whose middle is within 1/32 of it (16 sub-buckets
 * per power of two), and buckets are monotonic, so quantiles are too. */
static void test_histogram_resolution(void **state)
{
    (void)state;
    unsigned prev = 0;
    for (int64_t v = 16; v < (INT64_C(1) << 40); v += v / 7 + 1) {
        unsigned b = tp__adapt_bucket(v);
        assert_true(b >= prev);
        prev = b;
        double mid = (double)tp__adapt_bucket_mid(b);
        assert_true(fabs(mid - (double)v) <= (double)v / 32 + 1);
    }
    assert_int_equal(tp__adapt_bucket(-5), 0);
    assert_int_equal(tp__adapt_bucket(INT64_MAX), TP_ADAPT_HIST_BUCKETS - 1);
    uint32_t h[TP_ADAPT_HIST_BUCKETS] = {0};
    for (int i = 1; i <= 100; i++)
        h[tp__adapt_bucket(MS(i))]++;
    assert_true(llabs(tp__adapt_hist_quantile(h, 100, 0.5) - MS(50)) <= MS(50) / 16);
    assert_true(llabs(tp__adapt_hist_quantile(h, 100, 0.99) - MS(99)) <= MS(99) / 16);
    assert_int_equal(tp__adapt_hist_quantile(h, 0, 0.5), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_and_startup_probe),
        cmocka_unit_test(test_requests_started_before_probe_are_ignored),
        cmocka_unit_test(test_bounds_and_drops),
        cmocka_unit_test(test_determinism),
        cmocka_unit_test(test_app_limited_guard),
        cmocka_unit_test(test_probe_interval_and_rebaseline),
        cmocka_unit_test(test_floor_retriggers_probe),
        cmocka_unit_test(test_short_windows_ignored),
        cmocka_unit_test(test_port_budget_cap),
        cmocka_unit_test(test_option_validation),
        cmocka_unit_test(test_histogram_resolution),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
