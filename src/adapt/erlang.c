/* erlang.c: the queueing formulas behind pool sizing: Erlang B by its stable recursion,
 * Erlang C from B, the M/M/c wait (probability, tail, mean, quantile) and Little's law.
 * See tidepool/sizing.h for the model and reference/adaptive.md section 2 for where the
 * formulas come from. */
#include <math.h>

#include "sizing_internal.h"

/* Load and server count a formula can work with: finite, non-negative. */
static bool load_ok(int64_t c, double a)
{
    return c >= 0 && isfinite(a) && a >= 0;
}

double tp_erlang_b(int64_t c, double a)
{
    if (!load_ok(c, a))
        return NAN;
    /* The textbook ratio a^c/c! over a sum of a^k/k! overflows for c past 170; the
     * recursion never leaves [0, 1]. Once B underflows to 0 it stays 0, so stop there:
     * a very large c then costs only as many steps as it takes B to vanish. */
    double b = 1.0;
    for (int64_t n = 1; n <= c && b > 0; n++)
        b = tp__erlang_b_next(b, n, a);
    return b;
}

double tp__erlang_c_from_b(int64_t c, double a, double b)
{
    if ((double)c <= a)
        return 1.0;
    double dc = (double)c;
    return dc * b / ((dc - a) + a * b);
}

double tp_erlang_c(int64_t c, double a)
{
    if (!load_ok(c, a))
        return NAN;
    return tp__erlang_c_from_b(c, a, tp_erlang_b(c, a));
}

double tp__wait_tail_from_c(double C, int64_t c, double a, double hold_s, double t)
{
    return C * exp(-((double)c - a) * t / hold_s);
}

double tp__wait_quantile_from_c(double C, int64_t c, double a, double hold_s, double q)
{
    /* A fraction 1 - C of arrivals finds a free connection: below that, the wait is 0. */
    if (C <= 1.0 - q)
        return 0.0;
    return hold_s / ((double)c - a) * log(C / (1.0 - q));
}

/* The M/M/c wait needs a positive, finite mean hold time as well. */
static bool mmc_ok(int64_t c, double a, double hold_s)
{
    return load_ok(c, a) && isfinite(hold_s) && hold_s > 0;
}

double tp_mmc_wait_tail(int64_t c, double a, double hold_s, double t)
{
    if (!mmc_ok(c, a, hold_s) || !(t >= 0))
        return NAN;
    if ((double)c <= a)
        return 1.0;
    return tp__wait_tail_from_c(tp_erlang_c(c, a), c, a, hold_s, t);
}

double tp_mmc_mean_wait(int64_t c, double a, double hold_s)
{
    if (!mmc_ok(c, a, hold_s))
        return NAN;
    if ((double)c <= a)
        return INFINITY;
    return tp_erlang_c(c, a) * hold_s / ((double)c - a);
}

double tp_mmc_wait_quantile(int64_t c, double a, double hold_s, double q)
{
    if (!mmc_ok(c, a, hold_s) || !(q > 0 && q < 1))
        return NAN;
    if ((double)c <= a)
        return INFINITY;
    return tp__wait_quantile_from_c(tp_erlang_c(c, a), c, a, hold_s, q);
}

double tp_littles_law(double rate, double mean_s)
{
    if (!(isfinite(rate) && rate >= 0 && isfinite(mean_s) && mean_s >= 0))
        return NAN;
    return rate * mean_s;
}
