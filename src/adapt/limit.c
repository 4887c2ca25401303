/* limit.c: the adaptive concurrency limit of one key: samples into the window's
 * histogram, the per-window gradient update, and the minRTT probe (start-up, periodic
 * with jitter, and re-triggered when the limit sits on its floor). The rule and its
 * defaults are explained in tidepool/adapt.h and docs/adaptive.md; options are in
 * limit_options.c, the histogram in limit_hist.c. */
#include <math.h>
#include <string.h>

#include "limit_internal.h"

/* ---- small helpers ----------------------------------------------------------------- */

/* splitmix64: a tiny, well-mixed generator; any seed (0 included) is fine. It only
 * draws probe jitter, so quality beyond "not all hosts in step" does not matter. */
static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

/* A uniform double in [0, 1) from the top 53 bits. */
static double rng_unit(uint64_t *s)
{
    return (double)(rng_next(s) >> 11) * (1.0 / 9007199254740992.0);
}

/* The ceiling in force: the configured max, lowered by the port budget. */
static double upper(const tp_adapt_state *st)
{
    int64_t hi = st->opt.max_limit < st->port_budget ? st->opt.max_limit : st->port_budget;
    return (double)hi;
}

/* The floor in force: min_limit, unless the port budget is even lower (a connection
 * without a port cannot be opened, whatever the floor says). */
static double lower(const tp_adapt_state *st)
{
    double hi = upper(st);
    double lo = (double)st->opt.min_limit;
    return lo < hi ? lo : hi;
}

static double clampd(double v, double lo, double hi)
{
    return v < lo ? lo : (v > hi ? hi : v);
}

/* now + d without overflow; INT64_MAX stands for "never". */
static int64_t add_sat(int64_t now, double d)
{
    double t = (double)now + d;
    return t >= 9.0e18 ? INT64_MAX : (int64_t)t;
}

/* ---- windows and probes ------------------------------------------------------------ */

/* window_reset: empties the histogram and counters and opens a window at now whose
 * nominal length is twice the baseline (long enough for requests started in it to
 * finish), within [window_min, window_max]. */
static void window_reset(tp_adapt_state *st, int64_t now)
{
    memset(st->hist, 0, sizeof st->hist);
    st->win_count = 0;
    st->win_drops = 0;
    st->win_max_inflight = 0;
    double len = st->min_rtt > 0 ? 2.0 * (double)st->min_rtt : 0;
    len = clampd(len, (double)st->opt.window_min, (double)st->opt.window_max);
    st->window_start = now;
    st->window_end = add_sat(now, len);
}

/* schedule_probe: the next periodic probe, interval * (1 +/- jitter) from now, drawn
 * from the state's generator so that hosts started together drift apart. */
static void schedule_probe(tp_adapt_state *st, int64_t now)
{
    if (st->opt.probe_interval == TP_DURATION_INFINITE) {
        st->next_probe = INT64_MAX;
        return;
    }
    double j = st->opt.probe_jitter * (2.0 * rng_unit(&st->rng) - 1.0);
    st->next_probe = add_sat(now, (double)st->opt.probe_interval * (1.0 + j));
}

/* probe_start: pins the limit to max(probe_min_concurrency, L probe_fraction) (never
 * above L, never below the floor) so that the samples taken see little queueing, and
 * remembers L for the end. Requests already running are excluded by the epoch: they
 * were started under the old, higher concurrency. */
static void probe_start(tp_adapt_state *st, int64_t now)
{
    double l = st->limit;
    double pc = floor(l * st->opt.probe_fraction);
    if (pc < (double)st->opt.probe_min_concurrency)
        pc = (double)st->opt.probe_min_concurrency;
    if (pc > l)
        pc = l;
    st->deferred = l;
    st->limit = clampd(pc, lower(st), upper(st));
    st->probing = true;
    st->probe_epoch = now;
    st->floor_run = 0;
    window_reset(st, now);
}

/* probe_end: takes the probe's percentile as the new baseline (when use is set),
 * restores the remembered limit (backed off if the probe saw drops) and opens a fresh
 * window. */
static void probe_end(tp_adapt_state *st, int64_t now, int use)
{
    if (use) {
        st->min_rtt = tp__adapt_hist_quantile(st->hist, st->win_count, st->opt.percentile);
        st->probes++;
    }
    double l = st->deferred;
    if (st->win_drops > 0)
        l *= st->opt.drop_backoff;
    st->limit = clampd(l, lower(st), upper(st));
    st->probing = false;
    schedule_probe(st, now);
    window_reset(st, now);
}

/* window_close: the gradient update of one complete window (see adapt.h). */
static void window_close(tp_adapt_state *st, int64_t now)
{
    const tp_adapt_options *o = &st->opt;
    double l = st->limit, next = l, g = 1.0;
    if (st->win_count > 0 && st->min_rtt > 0) {
        int64_t srtt = tp__adapt_hist_quantile(st->hist, st->win_count, o->percentile);
        st->sample_rtt = srtt;
        g = (1.0 + o->tolerance) * (double)st->min_rtt / (double)(srtt > 0 ? srtt : 1);
        g = clampd(g, o->gradient_min, o->gradient_max);
        double gl = g * l;
        next = gl + sqrt(gl);
    }
    /* A key used well below its limit says nothing about whether more would fit:
     * growing there would inflate L without bound (AIMD's failure with no loss). */
    if ((double)st->win_max_inflight < o->app_limited_ratio * l && next > l)
        next = l;
    next = l + o->smoothing * (next - l);
    /* Loss is applied after smoothing so that an explicit overload signal takes its
     * full effect at once. */
    if (st->win_drops > 0 && next > o->drop_backoff * l)
        next = o->drop_backoff * l;
    st->limit = clampd(next, lower(st), upper(st));
    st->gradient = g;
    st->last_drops = st->win_drops;
    st->windows++;
    if ((double)tp_adapt_limit(st) <= lower(st))
        st->floor_run++;
    else
        st->floor_run = 0;
    window_reset(st, now);
}

/* ---- the public calls -------------------------------------------------------------- */

tp_err tp_adapt_init(tp_adapt_state *state, const tp_adapt_options *o, uint64_t seed, int64_t now,
                     tp_errinfo *err)
{
    if (state == NULL)
        return tp_errinfo_set(err, TP_EINVAL, 0, "state: NULL");
    tp_err rc = tp_adapt_options_validate(o, err);
    if (rc != TP_OK)
        return rc;
    memset(state, 0, sizeof *state);
    state->opt = *o;
    state->rng = seed;
    state->port_budget = o->port_budget;
    state->gradient = 1.0;
    state->limit = clampd((double)o->initial_limit, lower(state), upper(state));
    /* No baseline yet: measure one before the gradient means anything. */
    probe_start(state, now);
    return TP_OK;
}

void tp_adapt_sample(tp_adapt_state *st, int64_t latency_ns, int64_t inflight,
                     tp_adapt_outcome outcome, int64_t now)
{
    if (st == NULL || latency_ns < 0 || (outcome != TP_ADAPT_OK && outcome != TP_ADAPT_DROP))
        return;
    if (st->probing && now - latency_ns < st->probe_epoch)
        return; /* started before the probe, under the old concurrency */
    if (inflight > st->win_max_inflight)
        st->win_max_inflight = inflight;
    if (outcome == TP_ADAPT_DROP) {
        if (st->win_drops < UINT32_MAX)
            st->win_drops++;
        return;
    }
    if (st->win_count == UINT32_MAX)
        return;
    st->hist[tp__adapt_bucket(latency_ns)]++;
    st->win_count++;
}

int64_t tp_adapt_tick(tp_adapt_state *st, int64_t now)
{
    if (st == NULL)
        return 0;
    const tp_adapt_options *o = &st->opt;
    if (st->probing) {
        if (st->win_count >= (uint64_t)o->probe_samples)
            probe_end(st, now, 1);
        else if (now - st->probe_epoch >= o->probe_timeout) {
            /* A quiet key: settle for fewer samples, or keep the old baseline; with
             * none yet, keep probing (the pinned limit costs nothing without load). */
            if (st->win_count >= (uint64_t)o->min_window_samples)
                probe_end(st, now, 1);
            else if (st->min_rtt > 0)
                probe_end(st, now, 0);
        }
        return tp_adapt_limit(st);
    }
    if (now >= st->next_probe) {
        probe_start(st, now);
        return tp_adapt_limit(st);
    }
    if (now < st->window_end)
        return tp_adapt_limit(st);
    if ((uint64_t)st->win_count + st->win_drops < (uint64_t)o->min_window_samples) {
        /* Too few samples for a percentile that means anything: wait up to window_max,
         * then throw the window away (a few health checks must not steer the limit). */
        if (now - st->window_start >= o->window_max)
            window_reset(st, now);
        return tp_adapt_limit(st);
    }
    window_close(st, now);
    if (o->floor_windows > 0 && st->floor_run >= (uint64_t)o->floor_windows)
        probe_start(st, now); /* stuck on the floor: the baseline is probably stale */
    return tp_adapt_limit(st);
}

int64_t tp_adapt_limit(const tp_adapt_state *st)
{
    if (st == NULL)
        return 0;
    int64_t l = (int64_t)floor(st->limit);
    return l < 1 ? 1 : l;
}

tp_err tp_adapt_set_port_budget(tp_adapt_state *st, int64_t budget)
{
    if (st == NULL || budget < 1)
        return TP_EINVAL;
    st->port_budget = budget;
    st->limit = clampd(st->limit, lower(st), upper(st));
    st->deferred = clampd(st->deferred, lower(st), upper(st));
    return TP_OK;
}

int64_t tp_adapt_min_rtt(const tp_adapt_state *st)
{
    return st ? st->min_rtt : 0;
}

int64_t tp_adapt_sample_rtt(const tp_adapt_state *st)
{
    return st ? st->sample_rtt : 0;
}

double tp_adapt_gradient(const tp_adapt_state *st)
{
    return st ? st->gradient : 1.0;
}

uint32_t tp_adapt_window_drops(const tp_adapt_state *st)
{
    return st ? st->last_drops : 0;
}

bool tp_adapt_probing(const tp_adapt_state *st)
{
    return st ? st->probing : false;
}

uint64_t tp_adapt_windows(const tp_adapt_state *st)
{
    return st ? st->windows : 0;
}
