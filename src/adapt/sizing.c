/* sizing.c: tp_sizing_recommend(): validates the input, searches the smallest pool that
 * meets the waiting targets (Erlang C, walking c upwards with the B recursion), caps it
 * by the destination's port budget and the server's limit, and derives min-idle and the
 * idle timeout. The explanation is written by sizing_explain.c. */
#include <math.h>
#include <string.h>

#include "sizing_internal.h"

#define BAD(...) (tp_errinfo_set(err, TP_EINVAL, 0, __VA_ARGS__))

/* The default idle timeout when the server's keep-alive is unknown (the pool's own
 * default), and the longest one recommended (the pool's default max_lifetime: a longer
 * idle timeout would be rejected next to it). */
#define DEFAULT_IDLE_S 30.0
#define MAX_IDLE_S 1800.0

void tp_sizing_input_init(tp_sizing_input *in)
{
    if (in == NULL)
        return;
    *in = (tp_sizing_input){0};
    in->version = TP_SIZING_INPUT_VERSION;
    in->target_wait_prob = 0.05;
    in->target_wait_s = TP_SIZING_UNSET;
    in->target_quantile = 0.99;
    in->port_range = TP_SIZING_DEFAULT_PORT_RANGE;
    in->close_rate = 0;
    in->time_wait_s = TP_SIZING_DEFAULT_TIME_WAIT_S;
    in->server_max_conns = TP_UNLIMITED;
    in->keepalive_s = TP_SIZING_UNSET;
}

static bool is_unset(double v)
{
    return v == TP_SIZING_UNSET;
}

/* validate: TP_OK or TP_EINVAL naming the first bad field. NaN fails every comparison
 * below, so each check is written as "must be in range" rather than "is out of range". */
static tp_err validate(const tp_sizing_input *in, tp_errinfo *err)
{
    if (in == NULL)
        return BAD("input: NULL");
    if (in->version != TP_SIZING_INPUT_VERSION)
        return BAD("version: %u is not TP_SIZING_INPUT_VERSION (%u); call tp_sizing_input_init()",
                   in->version, (unsigned)TP_SIZING_INPUT_VERSION);
    if (!(isfinite(in->rate) && in->rate > 0))
        return BAD("rate: %g acquisitions per second; want a positive number", in->rate);
    if (!(isfinite(in->hold_s) && in->hold_s > 0))
        return BAD("hold_s: %g s mean hold time; want a positive number", in->hold_s);
    if (!is_unset(in->target_wait_prob) && !(in->target_wait_prob > 0 && in->target_wait_prob < 1))
        return BAD("target_wait_prob: %g; want a probability in (0, 1) or TP_SIZING_UNSET",
                   in->target_wait_prob);
    if (!is_unset(in->target_wait_s) && !(isfinite(in->target_wait_s) && in->target_wait_s >= 0))
        return BAD("target_wait_s: %g s; want >= 0 or TP_SIZING_UNSET", in->target_wait_s);
    if (is_unset(in->target_wait_prob) && is_unset(in->target_wait_s))
        return BAD("target_wait_prob, target_wait_s: both unset; set at least one target");
    if (!(in->target_quantile > 0 && in->target_quantile < 1))
        return BAD("target_quantile: %g; want a fraction in (0, 1) such as 0.99",
                   in->target_quantile);
    if (in->port_range < 1 || in->port_range > 65536)
        return BAD("port_range: %lld ports; want 1..65536", (long long)in->port_range);
    if (!(isfinite(in->close_rate) && in->close_rate >= 0))
        return BAD("close_rate: %g closes per second; want >= 0", in->close_rate);
    if (!(isfinite(in->time_wait_s) && in->time_wait_s >= 0))
        return BAD("time_wait_s: %g s; want >= 0", in->time_wait_s);
    if (in->server_max_conns < 1)
        return BAD("server_max_conns: %lld; want >= 1, or TP_UNLIMITED when unknown",
                   (long long)in->server_max_conns);
    if (!is_unset(in->keepalive_s) && !(in->keepalive_s > 0 && in->keepalive_s <= 1e9))
        return BAD("keepalive_s: %g s; want a positive number or TP_SIZING_UNSET", in->keepalive_s);
    double a = in->rate * in->hold_s;
    if (!(a <= (double)(TP_SIZING_MAX_CONNS / 2)))
        return BAD("rate, hold_s: offered load %g erlangs (%g/s x %g s) is beyond %lld "
                   "connections per key",
                   a, in->rate, in->hold_s, (long long)(TP_SIZING_MAX_CONNS / 2));
    return TP_OK;
}

/* Do c connections with Erlang C = C meet every target that is set? */
static bool meets(const tp_sizing_input *in, double C, int64_t c, double a)
{
    if (!is_unset(in->target_wait_prob) && !(C <= in->target_wait_prob))
        return false;
    if (!is_unset(in->target_wait_s) &&
        !(tp__wait_tail_from_c(C, c, a, in->hold_s, in->target_wait_s) <= 1 - in->target_quantile))
        return false;
    return true;
}

/* needed_conns: the smallest c > a meeting the targets, by one pass of the B recursion
 * (O(c) in all). Bounded by TP_SIZING_MAX_CONNS, which validate() keeps at least twice
 * the load; a target so strict that even that does not meet it gets the bound. */
static int64_t needed_conns(const tp_sizing_input *in, double a)
{
    double b = 1.0;
    for (int64_t c = 1; c < TP_SIZING_MAX_CONNS; c++) {
        b = tp__erlang_b_next(b, c, a);
        if ((double)c <= a)
            continue;
        if (meets(in, tp__erlang_c_from_b(c, a, b), c, a))
            return c;
    }
    return TP_SIZING_MAX_CONNS;
}

/* predict: fills the predictions at c connections; overloaded pools wait forever. */
static void predict(const tp_sizing_input *in, double a, int64_t c, double *p_wait, double *mean,
                    double *quant)
{
    if ((double)c <= a) {
        *p_wait = 1.0;
        *mean = INFINITY;
        *quant = INFINITY;
        return;
    }
    double C = tp_erlang_c(c, a);
    *p_wait = C;
    *mean = C * in->hold_s / ((double)c - a);
    *quant = tp__wait_quantile_from_c(C, c, a, in->hold_s, in->target_quantile);
}

/* idle_timeout_s: below the server's keep-alive K by a margin (90 % of K, and at least
 * 1 s less), so the client, not the server, closes idle connections and never hands out
 * one the server is closing. Under 2 s no 1 s margin fits; half of K is the floor. */
static double idle_timeout_s(const tp_sizing_input *in, unsigned *flags)
{
    if (is_unset(in->keepalive_s)) {
        *flags |= TP_SIZING_KEEPALIVE_UNKNOWN;
        return DEFAULT_IDLE_S;
    }
    double k = in->keepalive_s;
    double idle = fmin(0.9 * k, k - 1.0);
    if (k < 2.0) {
        *flags |= TP_SIZING_KEEPALIVE_SHORT;
        idle = fmax(idle, 0.5 * k);
    }
    return fmin(idle, MAX_IDLE_S);
}

tp_err tp_sizing_recommend(const tp_sizing_input *in, tp_sizing_result *out, tp_errinfo *err)
{
    if (out == NULL)
        return BAD("out: NULL");
    memset(out, 0, sizeof *out);
    tp_err rc = validate(in, err);
    if (rc != TP_OK)
        return rc;

    double a = in->rate * in->hold_s;
    out->offered_load = a;
    out->needed_per_key = needed_conns(in, a);

    /* The caps. Each port a connection holds, or TIME_WAIT still holds, toward this
     * destination comes out of the same range (ports are per 4-tuple). When TIME_WAIT
     * alone fills it no limit helps: connects fail until the churn stops, so the port
     * cap is reported as 0 and left out of the limit. */
    out->ports_time_wait = in->close_rate * in->time_wait_s;
    double port_room = floor((double)in->port_range - out->ports_time_wait);
    int64_t cap = TP_SIZING_MAX_CONNS;
    if (port_room < 1) {
        out->flags |= TP_SIZING_PORTS_EXHAUSTED;
        out->port_cap = 0;
    } else {
        out->port_cap = (int64_t)port_room;
        cap = out->port_cap;
    }
    if (in->server_max_conns < cap)
        cap = in->server_max_conns;
    out->max_per_key = out->needed_per_key < cap ? out->needed_per_key : cap;
    if (out->max_per_key < out->needed_per_key) {
        out->flags |= TP_SIZING_TARGET_MISSED;
        if (out->port_cap > 0 && out->port_cap == cap)
            out->flags |= TP_SIZING_BOUND_PORTS;
        if (in->server_max_conns == cap)
            out->flags |= TP_SIZING_BOUND_SERVER;
    }
    if ((double)out->max_per_key <= a)
        out->flags |= TP_SIZING_OVERLOADED;

    predict(in, a, out->max_per_key, &out->p_wait, &out->mean_wait_s, &out->quantile_wait_s);
    out->utilisation = a / (double)out->max_per_key;

    double idle_s = idle_timeout_s(in, &out->flags);
    /* Rounded down to the microsecond: below the keep-alive means below, not equal. */
    out->idle_timeout = (int64_t)floor(idle_s * 1e6) * TP_NSEC_PER_USEC;
    out->max_idle_per_key = out->max_per_key;
    /* Keep the mean in use warm, but only when acquisitions come more often than idle
     * connections expire: otherwise maintenance would redial connections nobody uses. */
    double warm = ceil(a);
    if (in->rate * idle_s < 1.0)
        warm = 0;
    out->min_idle_per_key = warm < (double)out->max_per_key ? (int64_t)warm : out->max_per_key;

    double below_p = NAN, below_q = NAN, below_mean = NAN;
    if (out->max_per_key > 1 && (double)(out->max_per_key - 1) > a)
        predict(in, a, out->max_per_key - 1, &below_p, &below_mean, &below_q);
    tp__sizing_explain(in, out, below_p, below_q);
    return TP_OK;
}
