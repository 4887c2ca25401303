/* sizing_internal.h: what the files of src/adapt/ share for pool sizing (never
 * installed): the Erlang helpers that work from an already computed Erlang B or C, so
 * a search walking c upwards pays O(1) per step instead of restarting the recursion,
 * and the explanation writer of tp_sizing_recommend(). */
#ifndef TP_ADAPT_SIZING_INTERNAL_H
#define TP_ADAPT_SIZING_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "tidepool/sizing.h"

/* tp__erlang_b_next: B(n) from B(n-1) under a erlangs. Every value stays in [0, 1]. */
static inline double tp__erlang_b_next(double b_prev, int64_t n, double a)
{
    double ab = a * b_prev;
    return ab / ((double)n + ab);
}

/* tp__erlang_c_from_b: Erlang C for c servers under a erlangs, given b = B(c, a);
 * 1 when c <= a. The denominator (c - a) + a b is positive whenever c > a. */
double tp__erlang_c_from_b(int64_t c, double a, double b);

/* tp__wait_tail_from_c: P(wait > t) given C = C(c, a); requires c > a, hold_s > 0. */
double tp__wait_tail_from_c(double C, int64_t c, double a, double hold_s, double t);

/* tp__wait_quantile_from_c: the q-quantile of the wait given C; requires c > a. */
double tp__wait_quantile_from_c(double C, int64_t c, double a, double hold_s, double q);

/* tp__sizing_explain: appends the human explanation of a finished recommendation to
 * out->line[] (at most TP_SIZING_MAX_LINES lines). in was validated; below_p_wait and
 * below_q_wait are the predictions one connection below the recommendation (NaN when
 * that pool would be overloaded or there is none). */
void tp__sizing_explain(const tp_sizing_input *in, tp_sizing_result *out, double below_p_wait,
                        double below_q_wait);

#endif
