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
 * A schedule (tp_chaos_schedule) is a timeline of faults: at 5 s reset every connection,
 * from 8 s add 200 ms of latency for 3 s, at 12 s take the upstream down for 2 s.
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
    int64_t accept_delay;      /* the proxy accepts one connection per accept_delay and
                                  shrinks the kernel's accept queue to one: the
                                  connection waiting there has its handshake done but is
                                  served late, further connects get no SYN-ACK (connect
                                  timeouts; they complete at a SYN retransmission once
                                  there is room). 0: none */
} tp_chaos_fault;

/* tp_chaos_fault_set: sets one field of f from text, as the command line and the JSON
 * forms name them: "latency", "jitter", "slow_close" (a duration: "50ms", "2s", "1.5";
 * a bare number is seconds), "bandwidth" (bytes per second: "1MB/s", "65536"), "slice",
 * "limit_data" (bytes: "10KB"; K, M, G are powers of 1024), "reset_after" (bytes, or a
 * duration when it carries a time unit: "10KB", "2s"), "accept_delay" (a duration),
 * "direction" ("up", "down",
 * "both"), "probability" ("0.3"), and the flags "blackhole", "half_open",
 * "stop_reading", "refuse" ("true", "false"; NULL or "" means true). A '-' in a name
 * reads as '_'. Errors: TP_EINVAL naming the field and the value. */
TP_EXTERN tp_err tp_chaos_fault_set(tp_chaos_fault *f, const char *name, const char *value,
                                    tp_errinfo *err);

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
    bool control;              /* serve the control API (libmicrohttpd) on control_host:
                                  control_port, loopback only:
                                    GET /counters       the counters (JSON)
                                    PUT /fault          a fault as tp_chaos_fault_parse
                                                        reads it, in force at once
                                    DELETE /fault       no fault
                                    POST /schedule      a schedule as
                                                        tp_chaos_schedule_parse reads it
                                    DELETE /schedule    stops the schedule
                                  answers 200 {"ok": true} or 4xx {"error": "..."}.
                                  false */
    const char *control_host;  /* "127.0.0.1" */
    uint16_t control_port;     /* 0: any free port (tp_chaos_control_port) */
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
    uint64_t steps;             /* schedule steps applied */
} tp_chaos_counters;

typedef struct tp_chaos tp_chaos;

/* One step of a schedule. */
typedef struct tp_chaos_step {
    int64_t at;           /* ns from the schedule's start */
    int64_t duration;     /* the step lasts this long, then the faults in force before the
                             schedule return; -1: until a later step */
    bool set_fault;       /* the step puts `fault` in force (replacing the faults before
                             it); false: those in force stay */
    tp_chaos_fault fault;
    bool reset_all;       /* at `at`, every open connection is reset */
    bool down;            /* the upstream is down for `duration`: connects are refused and
                             every open connection is reset */
} tp_chaos_step;

/* tp_chaos_fault_init: no fault (direction BOTH, probability 1, bounds off). */
TP_EXTERN void tp_chaos_fault_init(tp_chaos_fault *f);

/* tp_chaos_options_init: the defaults above, upstream unset, no fault. */
TP_EXTERN void tp_chaos_options_init(tp_chaos_options *o);

/* tp_chaos_start: binds, resolves the upstream and starts the proxy's thread. Errors:
 * TP_EINVAL (an option out of range, named in err; a control address not on loopback),
 * TP_ERESOLVE, TP_EIO (bind or listen failed, with errno), TP_ENOMEM, TP_ESYS (a thread,
 * an eventfd, or the control API's daemon), TP_ESTATE (control asked for, built without
 * libmicrohttpd). */
TP_EXTERN tp_err tp_chaos_start(const tp_chaos_options *o, tp_chaos **out, tp_errinfo *err);

/* tp_chaos_control_port: the control API's port; 0 without one. */
TP_EXTERN uint16_t tp_chaos_control_port(const tp_chaos *c);

/* tp_chaos_counters_json: n as one JSON object (the CLI's and the control API's form),
 * written to buf as snprintf does: the length it needs, truncated to cap. */
TP_EXTERN size_t tp_chaos_counters_json(const tp_chaos_counters *n, char *buf, size_t cap);

/* tp_chaos_port: the port the proxy listens on (the one bound at start, kept across
 * refusals). */
TP_EXTERN uint16_t tp_chaos_port(const tp_chaos *c);

/* tp_chaos_set_fault: replaces the faults; open connections are drawn again against the
 * new probability. Returns once the proxy's loop has applied them (a refusal is in
 * force, or lifted, when this returns). A schedule still running replaces them in turn
 * at its next step, or when its running step ends. Errors: TP_EINVAL (a value out of range), TP_EIO
 * (the listener could not be bound again after a refusal). */
TP_EXTERN tp_err tp_chaos_set_fault(tp_chaos *c, const tp_chaos_fault *f, tp_errinfo *err);

/* tp_chaos_schedule: starts a timeline of n steps now (sorted by `at` here; copied),
 * replacing any schedule still running; n = 0 stops one. Returns once the loop has it.
 * Errors: TP_EINVAL (a step's fault or times out of range), TP_ENOMEM. */
TP_EXTERN tp_err tp_chaos_schedule(tp_chaos *c, const tp_chaos_step *steps, size_t n,
                                   tp_errinfo *err);

/* tp_chaos_fault_parse: a fault from one JSON object of the fields tp_chaos_fault_set
 * names (strings, numbers or booleans: {"latency": "200ms", "direction": "down"}); the
 * fields not named stay as tp_chaos_fault_init leaves them. Errors: TP_EINVAL (not JSON,
 * not an object, an unknown field or a bad value, named), TP_ESTATE (built without
 * jansson). */
TP_EXTERN tp_err tp_chaos_fault_parse(const char *json, tp_chaos_fault *f, tp_errinfo *err);

/* tp_chaos_schedule_parse: a schedule from a JSON array of steps, each an object with
 * "at" (a duration), optionally "for" (its duration), "reset_all": true, "down": DURATION
 * (the upstream down that long), and fault fields as in tp_chaos_fault_parse (a step
 * that names any sets its faults, one that names none leaves those in force):
 *   [{"at": "5s", "reset_all": true}, {"at": "8s", "for": "3s", "latency": "200ms"},
 *    {"at": "12s", "down": "2s"}]
 * *steps (n of them) is freed with tp_free(). Errors as tp_chaos_fault_parse, and
 * TP_ENOMEM. */
TP_EXTERN tp_err tp_chaos_schedule_parse(const char *json, tp_chaos_step **steps, size_t *n,
                                         tp_errinfo *err);

/* tp_chaos_counters_read: a snapshot of the counters. */
TP_EXTERN void tp_chaos_counters_read(const tp_chaos *c, tp_chaos_counters *out);

/* tp_chaos_stop: stops the loop, closes every connection (half-open ones too) and the
 * listener, and frees the proxy. NULL is a no-op. */
TP_EXTERN void tp_chaos_stop(tp_chaos *c);

#ifdef __cplusplus
}
#endif
#endif
