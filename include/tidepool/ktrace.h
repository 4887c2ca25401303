/* tidepool/ktrace.h: what the kernel's TCP tracepoints show and sock_diag cannot, the
 * library side of `tidepool doctor --trace`.
 *
 * For as long as a trace runs, an eBPF program (CO-RE, attached by name to six
 * tracepoints: tcp_send_reset, tcp_receive_reset, inet_sock_set_state,
 * inet_sk_error_report, tcp_retransmit_skb, tcp_destroy_sock) reports every TCP event
 * of the host's network namespace that explains churn and resets, and the library
 * counts them per destination and per process:
 *   - resets sent, by the kernel's own reason (enum sk_rst_reason: TCP_ABORT_ON_CLOSE
 *     is "closed with unread data", NO_SOCKET a segment for a connection this host no
 *     longer has, ...), and resets received, with the socket's state and how long the
 *     connection had carried no data;
 *   - active closes (we sent the first FIN; each leaves a TIME_WAIT entry, counted when
 *     the socket becomes one), passive closes, and the peer's closes with the idle
 *     time before them (a server's idle timeout shows there);
 *   - failed connects by errno, errors on established connections, retransmissions per
 *     connection with the largest burst within one second.
 * Which process: connect(), close() and shutdown() run in the caller's context, so the
 * program remembers per socket who connected and who closed first; sockets that were
 * already open when the trace began are joined with the sock_diag view by socket cookie
 * (idiag_cookie), and their owner found through /proc/PID/fd. Findings with remedies
 * follow from the counts (see TP_KTRACE_* thresholds).
 *
 * Needs: a build with the eBPF part (libbpf, bpftool and clang found at build time; else
 * TP_ESTATE "built without eBPF"), the kernel's BTF (/sys/kernel/btf/vmlinux), and root
 * or CAP_BPF with CAP_PERFMON (TP_ESYS with errno EPERM otherwise). tp_ktrace_probe()
 * says which is missing without loading anything.
 *
 * Threads: a tp_ktrace is used by one thread at a time; distinct traces are independent
 * (each loads its own program). The report accessors may be called from several threads
 * once tp_ktrace_stop() has returned.
 * Memory: the trace owns everything its accessors return; tp_ktrace_destroy() frees it.
 * Rendered text is freed by the caller with tp_diag_free(). */
#ifndef TIDEPOOL_KTRACE_H
#define TIDEPOOL_KTRACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "diag.h"
#include "errors.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- thresholds: when a pattern becomes a finding ------------------------------------ */

/* Active closes by one process towards one destination within the trace: info from
 * this many, warning from this rate (closes per second). */
#define TP_KTRACE_CHURN_COUNT 20
#define TP_KTRACE_CHURN_WARN_RATE 10.0
/* Resets received or peer closes after at least this much idle time point to an idle
 * timeout on the other side (server or middlebox). */
#define TP_KTRACE_IDLE_TIMEOUT_MIN_MS 1000
/* Retransmissions of one connection within one second that make a burst. */
#define TP_KTRACE_RETRANS_BURST 3

/* The ring buffer's default size, and the sock_diag join's default period. */
#define TP_KTRACE_RING_BYTES_DEFAULT (8u << 20)
#define TP_KTRACE_JOIN_EVERY_NS_DEFAULT 1000000000LL

/* A process: pid 0 when unknown (an event in softirq context on a socket opened before
 * the trace and gone before the next sock_diag join). comm as the kernel had it. */
typedef struct tp_ktrace_process {
    int pid;
    char comm[16];
} tp_ktrace_process;

/* What a trace watches. Fill with tp_ktrace_options_init(), then change fields. */
typedef struct tp_ktrace_options {
    /* Only events attributed to this process; 0: all. */
    int pid;
    /* Only connections with this remote end (or, for connections accepted by a local
     * listener, this local end); family 0: all. */
    tp_diag_endpoint dest;
    /* Bytes of the ring buffer (a power of two from 4096; rounded up). Events beyond
     * what it holds between two polls are lost, and counted. */
    size_t ring_bytes;
    /* How often tp_ktrace_poll() reads sock_diag to learn the owners of sockets opened
     * before the trace, in ns; 0: only at start and stop. */
    int64_t join_every_ns;
} tp_ktrace_options;

/* Resets towards (or from) one destination, for one direction, reason and state. */
typedef struct tp_ktrace_reset {
    tp_diag_endpoint dest;   /* the peer; for an accepted connection our listener's end */
    bool inbound;            /* on a connection a local listener accepted */
    bool sent;               /* we sent it (else we received it) */
    int reason;              /* sent: the kernel's enum sk_rst_reason value; received: -1 */
    const char *reason_name; /* sent: the kernel's name without "SK_RST_REASON_", e.g.
                              * "TCP_ABORT_ON_CLOSE"; received: NULL */
    const char *reason_text; /* in words, e.g. "closed with unread data"; static */
    int state;               /* tp_diag_state at the event; 0: no socket (NO_SOCKET) */
    uint64_t count;
    tp_ktrace_process process; /* the one process they belong to; pid 0: unknown or
                                * several (see processes) */
    uint32_t processes;        /* distinct known processes */
    /* Received: how long the connections had carried no data (idle_samples of them). */
    uint64_t idle_samples;
    uint32_t idle_min_ms, idle_max_ms;
    double idle_avg_ms;
} tp_ktrace_reset;

/* Closes by one process of its connections to one destination. */
typedef struct tp_ktrace_closes {
    tp_ktrace_process process;
    tp_diag_endpoint dest;
    bool inbound;
    uint64_t active;    /* we sent the first FIN (ESTABLISHED -> FIN_WAIT1) */
    uint64_t time_wait; /* of those, became TIME_WAIT entries during the trace */
    uint64_t passive;   /* we closed after the peer's FIN (CLOSE_WAIT -> LAST_ACK) */
    uint64_t peer;      /* the peer sent the first FIN (ESTABLISHED -> CLOSE_WAIT) */
    /* Idle time before the peer's FIN (idle_samples of the peer closes). */
    uint64_t idle_samples;
    uint32_t idle_min_ms, idle_max_ms;
    double idle_avg_ms;
} tp_ktrace_closes;

/* Socket errors towards one destination with one errno. */
typedef struct tp_ktrace_error {
    tp_ktrace_process process; /* pid 0: unknown or several */
    tp_diag_endpoint dest;
    bool connect;     /* the connect failed (else an established connection's error) */
    int err;          /* errno: ECONNREFUSED, ETIMEDOUT, ECONNRESET, ... */
    const char *name; /* "ECONNREFUSED"; static */
    uint64_t count;
} tp_ktrace_error;

/* Retransmissions of one connection. */
typedef struct tp_ktrace_retrans {
    uint64_t cookie;
    tp_diag_endpoint local, dest;
    tp_ktrace_process process;
    uint64_t count;
    uint32_t max_burst; /* most retransmissions within one second */
    int state;          /* at the last one */
} tp_ktrace_retrans;

/* Totals of a trace. */
typedef struct tp_ktrace_summary {
    double duration_s; /* from start to stop */
    uint64_t events;   /* the program wrote */
    uint64_t lost;     /* the ring buffer had no room for */
    uint64_t missed;   /* the kernel skipped: the program was already running on that CPU */
    uint64_t filtered; /* read but outside the pid or destination filter */
    uint64_t joins;    /* sock_diag samples joined */
    unsigned int hz;   /* kernel HZ the idle times were converted with; 0: no idle times */
} tp_ktrace_summary;

typedef struct tp_ktrace tp_ktrace;

/* tp_ktrace_options_init: every process and destination, default ring and join period. */
TP_EXTERN void tp_ktrace_options_init(tp_ktrace_options *o);

/* tp_ktrace_probe: whether a trace can start here, without starting one. TP_OK;
 * TP_ESTATE (built without eBPF); TP_ESYS (no kernel BTF: errno ENOENT; no privilege:
 * EPERM), err saying which and what to do. */
TP_EXTERN tp_err tp_ktrace_probe(tp_errinfo *err);

/* tp_ktrace_start: loads and attaches the program, takes the first sock_diag sample and
 * returns the running trace in *out. opts NULL: the defaults. Errors: those of
 * tp_ktrace_probe, TP_EINVAL (bad options), TP_ENOMEM, TP_ESYS (the kernel refused the
 * program: err has libbpf's reason). */
TP_EXTERN tp_err tp_ktrace_start(const tp_ktrace_options *opts, tp_ktrace **out, tp_errinfo *err);

/* tp_ktrace_poll: waits timeout_ms (0: not at all; -1: until woken), then reads the
 * events that arrived, and joins sock_diag when it is due. The program wakes a waiting
 * poll early only once its ring is a quarter full: a wakeup per event would cost a busy
 * host more than the trace, so events are read in batches, at the end of each wait. TP_OK,
 * or TP_ESYS (err) when the ring buffer cannot be read; EINTR is TP_OK. */
TP_EXTERN tp_err tp_ktrace_poll(tp_ktrace *t, int timeout_ms, tp_errinfo *err);

/* tp_ktrace_stop: detaches the program, reads what is left, joins sock_diag a last time
 * and derives the findings. The accessors below are valid after it. Idempotent. */
TP_EXTERN tp_err tp_ktrace_stop(tp_ktrace *t, tp_errinfo *err);

/* tp_ktrace_destroy: stops if running and frees t (NULL: no-op). */
TP_EXTERN void tp_ktrace_destroy(tp_ktrace *t);

/* ---- the results (after tp_ktrace_stop) ----------------------------------------------- */

TP_EXTERN const tp_ktrace_summary *tp_ktrace_summary_get(const tp_ktrace *t);
/* Most first. i < count. */
TP_EXTERN size_t tp_ktrace_reset_count(const tp_ktrace *t);
TP_EXTERN const tp_ktrace_reset *tp_ktrace_reset_get(const tp_ktrace *t, size_t i);
TP_EXTERN size_t tp_ktrace_closes_count(const tp_ktrace *t);
TP_EXTERN const tp_ktrace_closes *tp_ktrace_closes_get(const tp_ktrace *t, size_t i);
TP_EXTERN size_t tp_ktrace_error_count(const tp_ktrace *t);
TP_EXTERN const tp_ktrace_error *tp_ktrace_error_get(const tp_ktrace *t, size_t i);
TP_EXTERN size_t tp_ktrace_retrans_count(const tp_ktrace *t);
TP_EXTERN const tp_ktrace_retrans *tp_ktrace_retrans_get(const tp_ktrace *t, size_t i);
/* Findings, most severe first; kinds: "rst_unread_data", "rst_received_idle",
 * "rst_received", "peer_idle_close", "connect_refused", "connect_failed", "churn",
 * "retrans_burst", "events_lost", "events_missed". */
TP_EXTERN size_t tp_ktrace_finding_count(const tp_ktrace *t);
TP_EXTERN const tp_diag_finding *tp_ktrace_finding_get(const tp_ktrace *t, size_t i);

/* tp_ktrace_text: renders the trace for people (resets in words, closes, failed
 * connects, retransmissions, findings with remedies), the first `top` rows of each
 * table (0: all). Same contract as tp_diag_report_text. */
TP_EXTERN tp_err tp_ktrace_text(const tp_ktrace *t, size_t top, char **out, size_t *len);

/* tp_ktrace_json: one JSON document: diag's (tp_diag_report_json of r, when r is not
 * NULL) with two members added, "trace" (summary, closes, errors, retransmissions and
 * findings) and the top-level array "resets" (destination, direction "sent" or
 * "received", reason, state, count, ...). Every row is rendered. Same contract. */
TP_EXTERN tp_err tp_ktrace_json(const tp_ktrace *t, const tp_diag_report *r, char **out,
                                size_t *len);

/* tp_ktrace_reason_text: the words for a reset reason's kernel name ("TCP_ABORT_ON_CLOSE"
 * gives "closed with unread data"); "unrecognised reason" for others. Static. */
TP_EXTERN const char *tp_ktrace_reason_text(const char *reason_name);

#ifdef __cplusplus
}
#endif
#endif
