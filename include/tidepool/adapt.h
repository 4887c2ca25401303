/* tidepool/adapt.h: the adaptive concurrency limit of one key (one destination).
 *
 * A delay-gradient controller (Envoy's adaptive-concurrency rule with Netflix's
 * application-limited guard and loss back-off; docs/adaptive.md explains the choice):
 * every window it compares a low-load latency baseline (minRTT) with the window's
 * latency percentile (sampleRTT) and sets
 *
 *     g  = clamp((1 + tolerance) * minRTT / sampleRTT, gradient_min, gradient_max)
 *     Ln = g L + sqrt(g L)                      (sqrt: headroom for bursts)
 *     no growth if the window's max in-flight < app_limited_ratio L
 *     Ln = min(Ln, drop_backoff L)              if the window saw a drop
 *     L  = clamp(L + smoothing (Ln - L), min_limit, min(max_limit, port_budget))
 *
 * minRTT is re-measured at start and every probe_interval (+/- probe_jitter) by pinning
 * the limit to max(probe_min_concurrency, L probe_fraction) for probe_samples requests.
 *
 * The controller is a pure function of (state, samples, clock): it never reads a clock,
 * never allocates, never locks and does no I/O. Time comes in as `now` (nanoseconds on
 * any monotonic clock, normally tp_clock_now()), randomness from a generator inside the
 * state seeded by the caller, so identical inputs give identical limits.
 *
 * Threads: thread-compatible, not thread-safe. A tp_adapt_state is touched by one
 * thread at a time; the caller serialises every call on the same state (the pool calls
 * it under its key's lock). Different states are independent. */
#ifndef TIDEPOOL_ADAPT_H
#define TIDEPOOL_ADAPT_H

#include <stdbool.h>
#include <stdint.h>

#include "clock.h"
#include "errors.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The outcome of one completed request (lease), as reported to tp_adapt_sample(). */
typedef enum tp_adapt_outcome {
    /* Completed normally: its latency is a sample of the destination's delay. */
    TP_ADAPT_OK = 0,
    /* An explicit overload signal: a timeout, a refused or reset fresh connection, a
     * 503/429 or "overloaded" reply. Backs the limit off; its latency is not used. */
    TP_ADAPT_DROP = 1,
    /* Says nothing about capacity (a 4xx, a constraint violation, a canceled request):
     * not counted at all. */
    TP_ADAPT_IGNORE = 2
} tp_adapt_outcome;

/* tp_adapt_options: fill with tp_adapt_options_init(), then change what you need.
 * Durations are nanoseconds; counts are requests. */
typedef struct tp_adapt_options {
    int64_t min_limit;      /* floor of the limit (>= 1); default 3 */
    int64_t max_limit;      /* ceiling, e.g. the pool's max_per_key; default 1000 */
    int64_t initial_limit;  /* limit before the first window; default 20 */
    int64_t port_budget;    /* caller's cap from the destination's ephemeral-port
                             * budget, or TP_UNLIMITED (default); it wins over
                             * min_limit, since connections need ports */
    double tolerance;       /* b: sampleRTT may exceed minRTT by this fraction before
                             * the limit shrinks; default 0.25 */
    double gradient_min;    /* lower clamp of g: one window at most halves L;
                             * default 0.5 */
    double gradient_max;    /* upper clamp of g: one window at most doubles L (plus
                             * headroom); default 2.0 */
    double percentile;      /* window quantile used as sampleRTT and minRTT, in
                             * (0, 1); default 0.5 (p50 is robust to tail noise) */
    double smoothing;       /* fraction of the step taken per window, in (0, 1];
                             * default 0.5 (halves the jitter of a noisy p50; the
                             * fixed point is unchanged) */
    double drop_backoff;    /* multiplier after a window with a drop, in (0, 1);
                             * default 0.9 */
    double app_limited_ratio; /* no growth while the window's max in-flight is below
                               * this fraction of L, in [0, 1]; default 0.5 */
    int64_t window_min;     /* window length is clamp(2 minRTT, window_min,
                             * window_max); defaults 100 ms and 1 s */
    int64_t window_max;
    int64_t min_window_samples; /* a window closes only with this many samples (OK +
                                 * drops); one still short at window_max is discarded;
                                 * default 10 */
    int64_t probe_interval; /* minRTT re-measure period, or TP_DURATION_INFINITE (only
                             * the start-up probe and the floor re-trigger); 60 s */
    double probe_jitter;    /* +/- fraction of probe_interval, in [0, 1); default 0.15 */
    int64_t probe_min_concurrency; /* probe limit is max(this, L probe_fraction), never
                                    * above L nor below min_limit; default 3 */
    double probe_fraction;  /* in (0, 1]; default 0.25 */
    int64_t probe_samples;  /* OK samples that end a probe; default 50 */
    int64_t probe_timeout;  /* a probe still short of samples after this ends with
                             * what it has (>= min_window_samples) or keeps the old
                             * minRTT; default 5 s */
    int64_t floor_windows;  /* this many consecutive windows at the floor start a probe
                             * at once (the baseline is probably stale); 0 disables;
                             * default 5 */
} tp_adapt_options;

/* Number of latency buckets in the state's histogram: 16 per power of two (about 3-6 %
 * resolution) from 1 ns to about 36 minutes. */
#define TP_ADAPT_HIST_BUCKETS 608

/* tp_adapt_state: one key's controller. A plain struct so that callers can embed it
 * (no allocation); every field is private to src/adapt/ and may change between
 * versions: use the functions below, never the fields. About 2.6 KB. */
typedef struct tp_adapt_state {
    tp_adapt_options opt;
    double limit;              /* current limit, fractional between windows */
    double deferred;           /* limit to restore when the probe ends */
    double gradient;           /* g of the last closed window (1 before any) */
    uint64_t rng;              /* splitmix64 state */
    int64_t port_budget;       /* current cap (tp_adapt_set_port_budget) */
    int64_t window_start, window_end;
    int64_t win_max_inflight;  /* max in-flight seen by the window's samples */
    uint32_t win_count;        /* OK samples in the histogram */
    uint32_t win_drops;        /* drops in the open window (or probe) */
    uint32_t last_drops;       /* drops in the last closed window */
    uint32_t floor_run;        /* consecutive windows closed at the floor */
    int64_t min_rtt;           /* ns; 0 until the first probe ends */
    int64_t sample_rtt;        /* ns of the last closed window; 0 before */
    bool probing;
    int64_t probe_epoch;       /* probe start: earlier-started requests are ignored */
    int64_t next_probe;
    uint64_t windows;          /* windows closed (for stats) */
    uint64_t probes;           /* probes completed (for stats) */
    uint32_t hist[TP_ADAPT_HIST_BUCKETS];
} tp_adapt_state;

/* tp_adapt_options_init: fills o with the defaults documented on each field (NULL is a
 * no-op). Thread-safe. */
TP_EXTERN void tp_adapt_options_init(tp_adapt_options *o);

/* tp_adapt_options_validate: TP_OK, or TP_EINVAL with err (optional, caller-owned)
 * naming the first bad field and why, e.g. "max_limit: 2 is below min_limit (3)".
 * Thread-safe. */
TP_EXTERN tp_err tp_adapt_options_validate(const tp_adapt_options *o, tp_errinfo *err);

/* tp_adapt_init: validates o, copies it into *state (o is not kept), seeds the jitter
 * generator with seed, and starts the start-up minRTT probe at now: until the probe
 * has probe_samples samples the limit is the probe limit, then initial_limit.
 * Returns TP_OK or TP_EINVAL (state and o NULL included, state then untouched). */
TP_EXTERN tp_err tp_adapt_init(tp_adapt_state *state, const tp_adapt_options *o, uint64_t seed,
                               int64_t now, tp_errinfo *err);

/* tp_adapt_sample: records one completed request: latency_ns its hold time (acquire to
 * release), inflight the requests in flight on the key when it started (itself
 * included), outcome what it said about capacity, now its completion time. O(1), no
 * allocation. Negative latencies and unknown outcomes are ignored. Does not change the
 * limit; tp_adapt_tick() does. */
TP_EXTERN void tp_adapt_sample(tp_adapt_state *state, int64_t latency_ns, int64_t inflight,
                               tp_adapt_outcome outcome, int64_t now);

/* tp_adapt_tick: advances the controller to now: ends a probe that has its samples,
 * closes the window when it is due (updating the limit), starts a probe when one is
 * due. Cheap when nothing is due (a few comparisons), so it can run after every sample
 * and from a periodic maintenance pass. Returns the limit in force after the tick. */
TP_EXTERN int64_t tp_adapt_tick(tp_adapt_state *state, int64_t now);

/* tp_adapt_limit: the limit in force: in [min_limit, min(max_limit, port_budget)],
 * except that a port budget below min_limit wins. */
TP_EXTERN int64_t tp_adapt_limit(const tp_adapt_state *state);

/* tp_adapt_set_port_budget: changes the port-budget cap (>= 1, or TP_UNLIMITED) at run
 * time; the limit is clamped at once. TP_EINVAL for a bad budget. */
TP_EXTERN tp_err tp_adapt_set_port_budget(tp_adapt_state *state, int64_t budget);

/* Stats for metrics and `tidepool` output (Envoy's min_rtt, sample_rtt, gradient):
 * tp_adapt_min_rtt: the baseline in ns (0 before the first probe ends).
 * tp_adapt_sample_rtt: the last closed window's percentile in ns (0 before any).
 * tp_adapt_gradient: the last closed window's clamped g (1.0 before any).
 * tp_adapt_window_drops: drops in the last closed window.
 * tp_adapt_probing: whether a minRTT probe is running (the limit is pinned low).
 * tp_adapt_windows: windows closed so far. */
TP_EXTERN int64_t tp_adapt_min_rtt(const tp_adapt_state *state);
TP_EXTERN int64_t tp_adapt_sample_rtt(const tp_adapt_state *state);
TP_EXTERN double tp_adapt_gradient(const tp_adapt_state *state);
TP_EXTERN uint32_t tp_adapt_window_drops(const tp_adapt_state *state);
TP_EXTERN bool tp_adapt_probing(const tp_adapt_state *state);
TP_EXTERN uint64_t tp_adapt_windows(const tp_adapt_state *state);

#ifdef __cplusplus
}
#endif
#endif
