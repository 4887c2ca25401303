/* sim_adapt_policy.c: the three concurrency policies the simulation compares, behind
 * one small interface (done / loss / tick -> limit). Included by test_adapt_sim.c (not
 * a support file: only that test needs it), so everything here is static.
 *
 * - ours:      tp_adapt_* with its defaults (what the pool will run);
 * - fixed:     a constant limit (swept by the test to find the best in hindsight);
 * - heuristic: the seeds' rule, read as: every 1 s window, N = min(ceil(QPS x RTT x
 *              1.2), ports) (QPS = completions/s, RTT = mean hold time), except that
 *              N = 0.7 N when errors > 30 % and p95 > 2 s, and N = N + 10 when errors
 *              < 5 % and p95 < 0.8 s. Errors are requests that failed the client:
 *              client-queue timeouts and responses past the deadline; p95 is the
 *              client-observed latency. */
#include <math.h>
#include <string.h>

#include <tidepool/adapt.h>
#include "adapt/limit_internal.h"

typedef enum sim_pol_kind { POL_OURS, POL_FIXED, POL_HEUR } sim_pol_kind;

#define HEUR_ALPHA 1.2
#define HEUR_PORTS 1000 /* ports / destinations: 28 232 ports over ~28 destinations */
#define HEUR_WINDOW_NS TP_NSEC_PER_SEC
#define HEUR_INITIAL 20

typedef struct sim_policy {
    sim_pol_kind kind;
    int64_t limit;
    tp_adapt_state ad; /* ours */
    /* heuristic window */
    int64_t h_start;
    uint64_t h_done, h_late, h_lost; /* responses, of which late; queue losses */
    double h_hold_sum;
    uint32_t h_count;
    uint32_t h_hist[TP_ADAPT_HIST_BUCKETS];
} sim_policy;

/* pol_init: a policy at time now. fixed is the limit of POL_FIXED; seed feeds ours. */
static void pol_init(sim_policy *p, sim_pol_kind kind, int64_t fixed, uint64_t seed, int64_t now)
{
    memset(p, 0, sizeof *p);
    p->kind = kind;
    p->h_start = now;
    if (kind == POL_FIXED) {
        p->limit = fixed;
    } else if (kind == POL_HEUR) {
        p->limit = HEUR_INITIAL;
    } else {
        tp_adapt_options o;
        tp_adapt_options_init(&o);
        tp_err rc = tp_adapt_init(&p->ad, &o, seed, now, NULL);
        (void)rc; /* defaults are valid; test_adapt.c checks it */
        p->limit = tp_adapt_limit(&p->ad);
    }
}

/* pol_done: a response arrived: hold_ns is the lease (dispatch to response), client_ns
 * the client-observed latency (queueing included), inflight the in-flight count at
 * dispatch, late whether it missed the deadline. */
static void pol_done(sim_policy *p, int64_t hold_ns, int64_t client_ns, int64_t inflight, int late,
                     int64_t now)
{
    if (p->kind == POL_OURS) {
        tp_adapt_sample(&p->ad, hold_ns, inflight, late ? TP_ADAPT_DROP : TP_ADAPT_OK, now);
    } else if (p->kind == POL_HEUR) {
        p->h_done++;
        p->h_late += late ? 1u : 0u;
        p->h_hold_sum += (double)hold_ns / 1e9;
        p->h_hist[tp__adapt_bucket(client_ns)]++;
        p->h_count++;
    }
}

/* pol_loss: a request gave up waiting in the client queue. Ours is not told: the wait
 * is the limit doing its job, not a sign of the server's capacity. */
static void pol_loss(sim_policy *p)
{
    if (p->kind == POL_HEUR)
        p->h_lost++;
}

static void heur_window(sim_policy *p)
{
    double attempts = (double)p->h_done + (double)p->h_lost;
    if (attempts == 0)
        return; /* no traffic, no evidence: keep N */
    double err = (double)(p->h_late + p->h_lost) / attempts;
    double p95 = (double)tp__adapt_hist_quantile(p->h_hist, p->h_count, 0.95) / 1e9;
    double secs = (double)HEUR_WINDOW_NS / 1e9;
    double qps = (double)p->h_done / secs;
    double rtt = p->h_done ? p->h_hold_sum / (double)p->h_done : 0;
    double sizing = ceil(qps * rtt * HEUR_ALPHA);
    double n = (double)p->limit;
    if (err > 0.30 && p95 > 2.0)
        n = floor(n * 0.7);
    else if (err < 0.05 && p95 < 0.8)
        n = n + 10;
    else
        n = sizing;
    if (n > HEUR_PORTS)
        n = HEUR_PORTS;
    if (n < 1)
        n = 1;
    p->limit = (int64_t)n;
}

/* pol_tick: advances the policy to now; returns the limit in force. */
static int64_t pol_tick(sim_policy *p, int64_t now)
{
    if (p->kind == POL_OURS) {
        p->limit = tp_adapt_tick(&p->ad, now);
    } else if (p->kind == POL_HEUR) {
        while (now - p->h_start >= HEUR_WINDOW_NS) {
            heur_window(p);
            p->h_start += HEUR_WINDOW_NS;
            p->h_done = p->h_late = p->h_lost = 0;
            p->h_hold_sum = 0;
            p->h_count = 0;
            memset(p->h_hist, 0, sizeof p->h_hist);
        }
    }
    return p->limit;
}
