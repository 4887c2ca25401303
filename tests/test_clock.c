/* test_clock.c: the library's monotonic clock and deadline arithmetic. Every timeout and
 * expiry in the pool is computed with these, so they must never go backwards, must
 * agree with real elapsed time, and deadlines must saturate instead of overflowing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <tidepool/tidepool.h>

#include "support/test_util.h"

static void test_clock_never_goes_backwards(void **state)
{
    int64_t prev = tp_clock_now();
    for (int i = 0; i < 100000; i++) {
        int64_t now = tp_clock_now();
        assert_true(now >= prev);
        prev = now;
    }
}

static void test_clock_tracks_real_time(void **state)
{
    /* Against the tests' own CLOCK_MONOTONIC: 50 ms of sleep is about 50 ms on both. */
    int64_t a0 = tp_clock_now(), b0 = tu_now_ns();
    tu_sleep_ms(50);
    int64_t a = tp_clock_now() - a0, b = tu_now_ns() - b0;
    assert_true(a >= MS(49));
    int64_t diff = a > b ? a - b : b - a;
    assert_true(diff < MS(20)); /* generous: a preemption between reads */
}

static void test_deadline_after(void **state)
{
    int64_t before = tp_clock_now();
    int64_t d = tp_deadline_after(MS(100));
    int64_t after = tp_clock_now();
    assert_true(d >= before + MS(100));
    assert_true(d <= after + MS(100));
    assert_true(tp_deadline_after(0) >= before);
    /* Saturation: never wraps into the past. */
    assert_true(tp_deadline_after(TP_DURATION_INFINITE) == TP_DURATION_INFINITE);
    assert_true(tp_deadline_after(TP_DURATION_INFINITE - 1) == TP_DURATION_INFINITE);
    assert_true(tp_deadline_after(INT64_MAX / 2 + INT64_MAX / 4) >= before);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_clock_never_goes_backwards),
        cmocka_unit_test(test_clock_tracks_real_time),
        cmocka_unit_test(test_deadline_after),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
