/* sizing_explain.c: the few lines of English that come with a sizing recommendation,
 * so that a reader of `tidepool recommend` (or of a program's log) sees which formula
 * and which cap produced each number, and what to change when a cap wins. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>

#include "sizing_internal.h"

/* say: appends one formatted line; lines past TP_SIZING_MAX_LINES are dropped and long
 * ones truncated (snprintf), never overflowed. */
static void say(tp_sizing_result *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(tp_sizing_result *r, const char *fmt, ...)
{
    if (r->nlines >= TP_SIZING_MAX_LINES)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->line[r->nlines++], TP_SIZING_LINE_SIZE, fmt, ap);
    va_end(ap);
}

/* A duration in seconds, in the unit that reads best. */
static const char *dur(char *buf, size_t cap, double s)
{
    if (!isfinite(s))
        snprintf(buf, cap, "unbounded");
    else if (s == 0)
        snprintf(buf, cap, "0");
    else if (s < 1e-3)
        snprintf(buf, cap, "%.3g us", s * 1e6);
    else if (s < 1)
        snprintf(buf, cap, "%.3g ms", s * 1e3);
    else
        snprintf(buf, cap, "%.3g s", s);
    return buf;
}

/* A count or rate: whole numbers from 100 up (no "5e+03"), three digits below. */
static const char *num(char *buf, size_t cap, double v)
{
    if (fabs(v) >= 100)
        snprintf(buf, cap, "%.0f", v);
    else
        snprintf(buf, cap, "%.3g", v);
    return buf;
}

/* "p99", "p99.9": the name of the quantile the wait target bounds. */
static const char *qname(char *buf, size_t cap, double q)
{
    snprintf(buf, cap, "p%.4g", q * 100);
    return buf;
}

/* The targets in words: "P(wait) <= 5 %", "p99 wait <= 1 ms", or both. */
static const char *targets(char *buf, size_t cap, const tp_sizing_input *in)
{
    char d[32], q[16];
    bool prob = in->target_wait_prob != TP_SIZING_UNSET,
         tail = in->target_wait_s != TP_SIZING_UNSET;
    if (prob && tail)
        snprintf(buf, cap, "P(wait) <= %.3g %% and %s wait <= %s", in->target_wait_prob * 100,
                 qname(q, sizeof q, in->target_quantile), dur(d, sizeof d, in->target_wait_s));
    else if (prob)
        snprintf(buf, cap, "P(wait) <= %.3g %%", in->target_wait_prob * 100);
    else
        snprintf(buf, cap, "%s wait <= %s", qname(q, sizeof q, in->target_quantile),
                 dur(d, sizeof d, in->target_wait_s));
    return buf;
}

static void explain_limit(const tp_sizing_input *in, tp_sizing_result *out, double below_p,
                          double below_q)
{
    char t[96], d1[32], d2[32], q[16], n[32];
    long long c = (long long)out->max_per_key;
    targets(t, sizeof t, in);
    if (out->flags & TP_SIZING_TARGET_MISSED) {
        const char *by = (out->flags & TP_SIZING_BOUND_SERVER) ? "the server's connection limit"
                                                               : "the port budget";
        say(out, "max_per_key %lld: capped by %s; %s would take %lld.", c, by, t,
            (long long)out->needed_per_key);
    } else if (!isnan(below_p)) {
        say(out,
            "max_per_key %lld: the smallest pool with %s (Erlang C); %lld would give "
            "P(wait) %.3g %%, %s wait %s.",
            c, t, c - 1, below_p * 100, qname(q, sizeof q, in->target_quantile),
            dur(d1, sizeof d1, below_q));
    } else {
        say(out, "max_per_key %lld: the smallest pool with %s (Erlang C).", c, t);
    }
    if (out->flags & TP_SIZING_OVERLOADED) {
        say(out,
            "overloaded: %lld connections cannot carry %s erlangs: the wait queue grows "
            "without bound until the load drops or the cap rises.",
            c, num(n, sizeof n, out->offered_load));
        return;
    }
    say(out, "at %lld: P(wait) %.3g %%, mean wait %s, %s wait %s, utilisation %.0f %%.", c,
        out->p_wait * 100, dur(d1, sizeof d1, out->mean_wait_s),
        qname(q, sizeof q, in->target_quantile), dur(d2, sizeof d2, out->quantile_wait_s),
        out->utilisation * 100);
}

static void explain_caps(const tp_sizing_input *in, tp_sizing_result *out)
{
    if (out->flags & TP_SIZING_PORTS_EXHAUSTED)
        say(out,
            "ports: %.4g closes/s x %g s = %.0f ports in TIME_WAIT, more than the %lld-port "
            "range: connects fail whatever the limit; reuse connections, enable tcp_tw_reuse "
            "or widen the range.",
            in->close_rate, in->time_wait_s, out->ports_time_wait, (long long)in->port_range);
    else
        say(out,
            "ports: %lld-port range - %.0f in TIME_WAIT (%.4g closes/s x %g s) leaves room "
            "for %lld connections%s.",
            (long long)in->port_range, out->ports_time_wait, in->close_rate, in->time_wait_s,
            (long long)out->port_cap, (out->flags & TP_SIZING_BOUND_PORTS) ? ": the cap" : "");
    if (in->server_max_conns == TP_UNLIMITED)
        say(out, "server: connection limit not known, not applied.");
    else
        say(out, "server: accepts %lld connections from this client%s.",
            (long long)in->server_max_conns,
            (out->flags & TP_SIZING_BOUND_SERVER) ? ": the cap" : "");
}

static void explain_idle(const tp_sizing_input *in, tp_sizing_result *out)
{
    char d1[32], d2[32];
    if (out->min_idle_per_key == 0)
        say(out,
            "min_idle_per_key 0: acquisitions (%s/s) come less often than idle connections "
            "expire, so warm ones would be redialled unused.",
            num(d1, sizeof d1, in->rate));
    else
        say(out,
            "min_idle_per_key %lld keeps the mean in use warm; max_idle_per_key = "
            "max_per_key, so a burst's connections are reused, not closed and redialled.",
            (long long)out->min_idle_per_key);
    double idle = (double)out->idle_timeout / 1e9;
    if (out->flags & TP_SIZING_KEEPALIVE_UNKNOWN)
        say(out,
            "idle_timeout %s: the server's keep-alive is unknown; if it closes idle "
            "connections sooner (Node.js and Apache: 5 s), set it below that.",
            dur(d1, sizeof d1, idle));
    else if (out->flags & TP_SIZING_KEEPALIVE_SHORT)
        say(out,
            "idle_timeout %s: the server's %s keep-alive leaves no 1 s margin; the reuse "
            "check and retry will meet connections the server is closing.",
            dur(d1, sizeof d1, idle), dur(d2, sizeof d2, in->keepalive_s));
    else
        say(out,
            "idle_timeout %s: under the server's %s keep-alive (90 %%, at least 1 s less), "
            "so the client closes idle connections before the server does.",
            dur(d1, sizeof d1, idle), dur(d2, sizeof d2, in->keepalive_s));
}

void tp__sizing_explain(const tp_sizing_input *in, tp_sizing_result *out, double below_p,
                        double below_q)
{
    char d[32], r[32], a[32];
    say(out,
        "load: %s/s x %s hold = %s erlangs: %s connections in use on average "
        "(Little's law).",
        num(r, sizeof r, in->rate), dur(d, sizeof d, in->hold_s),
        num(a, sizeof a, out->offered_load), a);
    explain_limit(in, out, below_p, below_q);
    explain_caps(in, out);
    explain_idle(in, out);
}
