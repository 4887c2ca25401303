/* tidepool/chaos.h: a fault-injecting TCP proxy, for tests and for users (`tidepool
 * chaos`). It listens on one address and forwards every connection to one upstream,
 * applying faults per direction and per connection: latency and jitter, a bandwidth
 * cap, small writes, a reset after so many bytes or so long, a cap on the data after
 * which it closes, a slow close, a black hole, a peer that vanishes (half-open), a peer
 * that stops reading, and refused connects. These machines' kernels have no netem and
 * Toxiproxy is not packaged; this covers its toxics and what it lacks.
 *
 * The proxy runs on a thread of its own (one epoll loop for every connection) from
 * tp_chaos_start() to tp_chaos_stop(). Faults can be changed while it runs
 * (tp_chaos_set_fault), and apply at once to the connections already open: a latency
 * spike reaches pooled connections too. Randomness (jitter, which connections a
 * probability picks) comes from one seeded generator, so a run can be replayed.
 *
 * Threads: every function may be called from any thread; tp_chaos_stop() not from two
 * at once for the same proxy. */
#ifndef TIDEPOOL_CHAOS_H
#define TIDEPOOL_CHAOS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "errors.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TP_CHAOS_OPTIONS_VERSION 1

/* Directions a fault applies to. */
#define TP_CHAOS_UP 0x1   /* client to upstream */
#define TP_CHAOS_DOWN 0x2 /* upstream to client */
#define TP_CHAOS_BOTH (TP_CHAOS_UP | TP_CHAOS_DOWN)

/* One set of faults. Durations in ns; -1 switches a bound off. */
typedef struct tp_chaos_fault {
    unsigned direction;        /* TP_CHAOS_UP, _DOWN or _BOTH. BOTH */
    double probability;        /* chance that a connection is faulted (drawn when it is
                                  accepted, and again when the faults change). 1 */
    int64_t latency;           /* added to the delivery of each direction's data. 0 */
    int64_t jitter;            /* latency varies by up to this, either way (never below
                                  0; data keeps its order). 0 */
    int64_t bandwidth;         /* bytes per second, per connection and direction; 0: no
                                  cap */
    size_t slice;              /* at most this many bytes per write (small segments);
                                  0: as much as can go */
    int64_t reset_after_bytes; /* once this many bytes went through a faulted
                                  direction: reset both sides (RST). -1 */
    int64_t reset_after;       /* this long after a connection was accepted: reset both
                                  sides. -1 */
    int64_t limit_data;        /* once this many bytes went through a faulted direction:
                                  close both sides (FIN). -1 */
    int64_t slow_close;        /* a FIN from one side reaches the other this much later.
                                  0 */
    bool blackhole;            /* faulted directions forward nothing: data is read and
                                  dropped, nothing answers */
    bool half_open;            /* the peer vanishes: nothing more goes either way, and no
                                  FIN or RST ever comes (connections made half-open stay
                                  so until the proxy stops) */
    bool stop_reading;         /* the proxy stops reading from the sender of a faulted
                                  direction: its send buffer fills */
    bool refuse;               /* the listening socket is closed: connects are refused
                                  (ECONNREFUSED) until this is cleared */
} tp_chaos_fault;

typedef struct tp_chaos_options {
    unsigned version;          /* TP_CHAOS_OPTIONS_VERSION */
    const char *listen_host;   /* numeric address to listen on. "127.0.0.1" */
    uint16_t listen_port;      /* 0: any free port (tp_chaos_port says which) */
    const char *upstream_host; /* where connections go (a name is resolved once, at
                                  start). Required */
    uint16_t upstream_port;    /* required */
    tp_chaos_fault fault;      /* the faults at start. None */
    uint64_t seed;             /* the generator's seed; 0: from the clock (see
                                  tp_chaos_counters.seed) */
    int64_t connect_timeout;   /* for each upstream connect (the client is reset when it
                                  fails). 5 s */
    size_t buffer;             /* bytes a direction holds before the proxy stops reading
                                  its sender. 256 KiB */
} tp_chaos_options;

typedef struct tp_chaos_counters {
    uint64_t seed;              /* the seed in use */
    uint64_t accepted;          /* connections accepted */
    uint64_t open;              /* connections open now (half-open ones included) */
    uint64_t upstream_failures; /* upstream connects that failed (client reset) */
    uint64_t bytes_up;          /* delivered to the upstream */
    uint64_t bytes_down;        /* delivered to clients */
    uint64_t bytes_dropped;     /* read and dropped by a black hole */
    uint64_t faulted;           /* connections a draw picked for the faults */
    uint64_t resets;            /* connections reset by a fault (after bytes or time) */
    uint64_t limits;            /* connections closed by limit_data */
    uint64_t half_opened;       /* connections made half-open */
    uint64_t refused;           /* times the listener was closed to refuse connects */
} tp_chaos_counters;

typedef struct tp_chaos tp_chaos;

/* tp_chaos_fault_init: no fault (direction BOTH, probability 1, bounds off). */
TP_EXTERN void tp_chaos_fault_init(tp_chaos_fault *f);

/* tp_chaos_options_init: the defaults above, upstream unset, no fault. */
TP_EXTERN void tp_chaos_options_init(tp_chaos_options *o);

/* tp_chaos_start: binds, resolves the upstream and starts the proxy's thread. Errors:
 * TP_EINVAL (an option out of range, named in err), TP_ERESOLVE, TP_EIO (bind or listen
 * failed, with errno), TP_ENOMEM, TP_ESYS (a thread or an eventfd). */
TP_EXTERN tp_err tp_chaos_start(const tp_chaos_options *o, tp_chaos **out, tp_errinfo *err);

/* tp_chaos_port: the port the proxy listens on (the one bound at start, kept across
 * refusals). */
TP_EXTERN uint16_t tp_chaos_port(const tp_chaos *c);

/* tp_chaos_set_fault: replaces the faults; open connections are drawn again against the
 * new probability. Returns once the proxy's loop has applied them (a refusal is in
 * force, or lifted, when this returns). Errors: TP_EINVAL (a value out of range), TP_EIO
 * (the listener could not be bound again after a refusal). */
TP_EXTERN tp_err tp_chaos_set_fault(tp_chaos *c, const tp_chaos_fault *f, tp_errinfo *err);

/* tp_chaos_counters_read: a snapshot of the counters. */
TP_EXTERN void tp_chaos_counters_read(const tp_chaos *c, tp_chaos_counters *out);

/* tp_chaos_stop: stops the loop, closes every connection (half-open ones too) and the
 * listener, and frees the proxy. NULL is a no-op. */
TP_EXTERN void tp_chaos_stop(tp_chaos *c);

#ifdef __cplusplus
}
#endif
#endif
