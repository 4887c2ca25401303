/* test_timer.c: the timer heap (base/timer.h): after any mix of arming, moving and
 * cancelling, the first timer is always the earliest armed one, cancelled timers never
 * come back, and popping everything yields the due times in order. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "base/timer.h"

#define N 500

static int64_t earliest(const tp__timer *t, const bool *armed)
{
    int64_t m = INT64_MAX;
    for (int i = 0; i < N; i++)
        if (armed[i] && t[i].due < m)
            m = t[i].due;
    return m;
}

static void test_random_operations_keep_the_order(void **state)
{
    (void)state;
    tp__timer t[N];
    bool armed[N] = {false};
    tp__timers ts;
    tp__timers_init(&ts);
    for (int i = 0; i < N; i++)
        tp__timer_init(&t[i]);
    srand(12345);
    for (int step = 0; step < 20000; step++) {
        int i = rand() % N;
        if (rand() % 3 == 0) {
            tp__timers_cancel(&ts, &t[i]);
            armed[i] = false;
            assert_false(tp__timer_armed(&t[i]));
        } else {
            assert_int_equal(tp__timers_set(&ts, &t[i], (int64_t)(rand() % 100000)), TP_OK);
            armed[i] = true;
        }
        tp__timer *first = tp__timers_first(&ts);
        int64_t want = earliest(t, armed);
        if (want == INT64_MAX)
            assert_null(first);
        else
            assert_int_equal(first->due, want);
    }
    int64_t last = INT64_MIN;
    size_t left = ts.n;
    for (tp__timer *f; (f = tp__timers_first(&ts)) != NULL; left--) {
        assert_true(f->due >= last);
        last = f->due;
        int i = (int)(f - t);
        assert_true(armed[i]);
        armed[i] = false;
        tp__timers_cancel(&ts, f);
    }
    assert_int_equal(left, 0);
    for (int i = 0; i < N; i++)
        assert_false(armed[i]);
    tp__timers_free(&ts);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_operations_keep_the_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
