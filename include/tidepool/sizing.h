/* tidepool/sizing.h: pool sizing from queueing theory, for `tidepool recommend` and for
 * programs that size their own pools.
 *
 * A pool for one key behaves like an M/M/c queue: acquisitions arrive at a rate lambda,
 * each holds a connection for a mean time h, and c = max_per_key connections serve them.
 * The offered load A = lambda * h (in erlangs) is the mean number of connections in use
 * (Little's law); Erlang C gives the probability that an acquire has to wait and the tail
 * of that wait. tp_sizing_recommend() picks the smallest c that meets a waiting target,
 * caps it by the destination's ephemeral-port budget and the server's connection limit,
 * and derives min-idle and an idle timeout below the server's keep-alive.
 *
 * Units: rates are per second and the statistical inputs and predictions (hold time,
 * waits) are double seconds, as measured; the recommended idle timeout is int64_t
 * nanoseconds like every tidepool duration, ready for tp_pool_options.idle_timeout.
 *
 * Threads: every function here is pure (no global state, no allocation, no I/O) and so
 * thread-safe. */
#ifndef TIDEPOOL_SIZING_H
#define TIDEPOOL_SIZING_H

#include <stdint.h>

#include "clock.h"
#include "errors.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- the formulas ------------------------------------------------------------------- */

/* tp_erlang_b: the Erlang B blocking probability of c servers under a erlangs, by the
 * recursion B(0) = 1, B(n) = a B(n-1) / (n + a B(n-1)), whose every step stays in [0, 1]
 * (no factorials, no overflow; O(c)). c >= 0, a >= 0; NaN otherwise. */
TP_EXTERN double tp_erlang_b(int64_t c, double a);

/* tp_erlang_c: the Erlang C probability that an arrival waits, with c servers under a
 * erlangs: c B / (c - a (1 - B)) for c > a, and 1 when c <= a (the queue never empties).
 * c >= 0, a >= 0; NaN otherwise. */
TP_EXTERN double tp_erlang_c(int64_t c, double a);

/* tp_mmc_wait_tail: P(wait > t) in an M/M/c queue with c servers, a erlangs and mean
 * hold time hold_s: C(c, a) exp(-(c - a) t / hold_s). 1 when c <= a. t >= 0,
 * hold_s > 0; NaN otherwise. */
TP_EXTERN double tp_mmc_wait_tail(int64_t c, double a, double hold_s, double t);

/* tp_mmc_mean_wait: the mean wait of all arrivals (those that wait and those that do
 * not), C(c, a) hold_s / (c - a), in seconds; INFINITY when c <= a. NaN for bad input. */
TP_EXTERN double tp_mmc_mean_wait(int64_t c, double a, double hold_s);

/* tp_mmc_wait_quantile: the q-quantile (0 < q < 1) of the wait in seconds:
 * hold_s / (c - a) ln(C / (1 - q)) when C > 1 - q, else 0 (that many arrivals do not
 * wait at all); INFINITY when c <= a. NaN for bad input. */
TP_EXTERN double tp_mmc_wait_quantile(int64_t c, double a, double hold_s, double q);

/* tp_littles_law: L = lambda W, the mean number in a stable system (here: connections in
 * use) from the arrival rate per second and the mean time each spends inside. Holds for
 * any distribution. NaN for negative or non-finite input. */
TP_EXTERN double tp_littles_law(double rate, double mean_s);

/* ---- the recommendation ------------------------------------------------------------- */

#define TP_SIZING_INPUT_VERSION 1

/* An optional double input that was not given (a target not asked for, a keep-alive not
 * known). 0 is never "unset": a zero wait target means "no wait at that quantile". */
#define TP_SIZING_UNSET (-1.0)

/* Linux's default ephemeral port range, 32768-60999, and its fixed TIME_WAIT length. */
#define TP_SIZING_DEFAULT_PORT_RANGE INT64_C(28232)
#define TP_SIZING_DEFAULT_TIME_WAIT_S 60.0

/* The largest pool the search considers. It bounds the work (the search is O(c)) and
 * is far above any per-destination pool a port range allows. */
#define TP_SIZING_MAX_CONNS INT64_C(1048576)

/* tp_sizing_input: fill with tp_sizing_input_init(), then set rate and hold_s and what
 * else is known. Everything is about one key (one destination). */
typedef struct tp_sizing_input {
    unsigned version;         /* TP_SIZING_INPUT_VERSION */
    double rate;              /* acquisitions per second. Required, > 0 */
    double hold_s;            /* mean time a connection is held per acquisition (acquire to
                                 release, not the network RTT), seconds. Required, > 0 */
    double target_wait_prob;  /* P(an acquire waits) at most this, in (0, 1). 0.05;
                                 TP_SIZING_UNSET: no such target */
    double target_wait_s;     /* the target_quantile of the wait at most this, seconds,
                                 >= 0. TP_SIZING_UNSET (no such target) */
    double target_quantile;   /* which quantile target_wait_s bounds, in (0, 1). 0.99 */
    int64_t port_range;       /* ephemeral ports usable toward the destination (hi - lo + 1
                                 of ip_local_port_range), 1..65536. 28232 */
    double close_rate;        /* connections per second the client closes first toward the
                                 destination (each leaves its port in TIME_WAIT), >= 0. 0 */
    double time_wait_s;       /* how long such a port stays unusable, >= 0. 60 (Linux;
                                 about 1 with tcp_tw_reuse and timestamps) */
    int64_t server_max_conns; /* connections the server accepts from this client, >= 1.
                                 TP_UNLIMITED (not known) */
    double keepalive_s;       /* the server closes connections idle this long, > 0.
                                 TP_SIZING_UNSET (not known) */
} tp_sizing_input;

/* tp_sizing_input_init: the defaults above (rate and hold_s 0: the caller must set them). */
TP_EXTERN void tp_sizing_input_init(tp_sizing_input *in);

/* Flags of a recommendation: why it is what it is. */
#define TP_SIZING_BOUND_PORTS 0x01u   /* the port budget capped max_per_key */
#define TP_SIZING_BOUND_SERVER 0x02u  /* the server's connection limit capped it */
#define TP_SIZING_TARGET_MISSED 0x04u /* a cap keeps the targets from being met */
#define TP_SIZING_OVERLOADED                                                                       \
    0x08u                                 /* even the cap is <= the offered load: the              \
                                             wait queue grows without bound */
#define TP_SIZING_PORTS_EXHAUSTED 0x10u   /* TIME_WAIT alone fills the port range */
#define TP_SIZING_KEEPALIVE_UNKNOWN 0x20u /* idle_timeout is a default, not derived */
#define TP_SIZING_KEEPALIVE_SHORT 0x40u   /* keep-alive under 2 s: less than 1 s margin */

#define TP_SIZING_MAX_LINES 8
#define TP_SIZING_LINE_SIZE 200

/* tp_sizing_result: a recommendation, the predictions at it, and its reasons. */
typedef struct tp_sizing_result {
    double offered_load;      /* A = rate * hold_s: mean connections in use (Little) */
    int64_t max_per_key;      /* recommended limit: the smallest c > A meeting the
                                 targets, capped by ports and server */
    int64_t needed_per_key;   /* the c the targets need without any cap (may exceed
                                 max_per_key; then TP_SIZING_TARGET_MISSED) */
    int64_t min_idle_per_key; /* ceil(A), at most max_per_key: the connections busy on
                                 average, kept warm so a burst does not dial */
    int64_t max_idle_per_key; /* = max_per_key: closing what a burst opened churns */
    int64_t idle_timeout;     /* nanoseconds: below the server's keep-alive (the smaller
                                 of 90 % of it and 1 s less), or 30 s when unknown */
    int64_t port_cap;         /* connections the port budget leaves room for */
    double ports_time_wait;   /* close_rate * time_wait_s: ports held in TIME_WAIT */
    double utilisation;       /* A / max_per_key */
    double p_wait;            /* predicted P(an acquire waits) at max_per_key */
    double mean_wait_s;       /* predicted mean wait (INFINITY when overloaded) */
    double quantile_wait_s;   /* predicted target_quantile of the wait (INFINITY when
                                 overloaded) */
    unsigned flags;           /* TP_SIZING_* */
    int nlines;               /* lines of explanation in line[] */
    char line[TP_SIZING_MAX_LINES][TP_SIZING_LINE_SIZE]; /* NUL-terminated English */
} tp_sizing_result;

/* tp_sizing_recommend: sizes one key's pool from in and fills *out.
 * Errors: TP_EINVAL when a field is out of range or not finite, when no target is set
 * (both target_wait_prob and target_wait_s unset), or when the offered load rate *
 * hold_s is beyond TP_SIZING_MAX_CONNS; err's message names the field. *out is
 * zeroed on failure. A cap that keeps the target from being met is not an error: the
 * result says so in flags and lines. Pure and thread-safe; in and out are the caller's. */
TP_EXTERN tp_err tp_sizing_recommend(const tp_sizing_input *in, tp_sizing_result *out,
                                     tp_errinfo *err) TP_WARN_UNUSED;

#ifdef __cplusplus
}
#endif
#endif
