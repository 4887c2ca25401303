/* tidepool/diag.h: host TCP diagnostics, the library side of `tidepool doctor`.
 *
 * tp_diag_collect() reads every TCP socket of the host's network namespace (IPv4 and
 * IPv6) through NETLINK_SOCK_DIAG, as `ss` does, with struct tcp_info for each full
 * socket. If netlink is unavailable it falls back to /proc/net/tcp and /proc/net/tcp6
 * (no RTT or retransmission data then) and says so in tp_diag_host.note. It groups the
 * outgoing sockets by remote ip:port ("destination"), counts them by TCP state, averages
 * RTT, sums retransmissions, reads the ephemeral port range and the TIME_WAIT sysctls,
 * computes each destination's port headroom and time to exhaustion, and derives findings:
 * a severity, a one-line diagnosis and a concrete remedy each.
 *
 * The port model (see ../shared/reference/adaptive.md 3.6): a local port is unique per
 * 4-tuple, so ports run out per (local address, destination ip:port). Every socket
 * towards a destination holds one local port, TIME_WAIT included; a TIME_WAIT entry holds
 * it for 60 s (TCP_TIMEWAIT_LEN, not tunable) unless tcp_tw_reuse lets connect() take it
 * over (1: always, 2: loopback only; after tcp_tw_reuse_delay, 1 s by default).
 *
 * Threads: every function is thread-safe; the library keeps no global state. A report is
 * immutable once returned and may be read from several threads at once.
 * Memory: a report owns everything its accessors return; tp_diag_report_destroy() frees
 * it. Rendered text is malloc'ed and freed by the caller with tp_diag_free(). */
#ifndef TIDEPOOL_DIAG_H
#define TIDEPOOL_DIAG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "errors.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- thresholds: when a condition becomes a finding ---------------------------------
 * Percentages are of the effective ephemeral port range (tp_diag_host.port_range). */

/* How long a TIME_WAIT entry lives on Linux, in seconds (TCP_TIMEWAIT_LEN). */
#define TP_DIAG_TIME_WAIT_S 60
/* Without a previous sample, the close rate is estimated from the TIME_WAIT entries that
 * appeared within this many seconds (their age is 60 s minus the remaining timer). */
#define TP_DIAG_RATE_WINDOW_S 10
/* TIME_WAIT towards one destination: info from this many sockets (connection churn)... */
#define TP_DIAG_TW_INFO_COUNT 100
/* ...warning from this share of the port range, critical from the next. */
#define TP_DIAG_TW_WARN_PCT 10.0
#define TP_DIAG_TW_CRIT_PCT 25.0
/* Local ports in use towards one destination (any state): warning, critical. */
#define TP_DIAG_PORTS_WARN_PCT 50.0
#define TP_DIAG_PORTS_CRIT_PCT 80.0
/* Projected port exhaustion at the observed close rate within this many seconds:
 * warning, critical. */
#define TP_DIAG_EXHAUST_WARN_S 600.0
#define TP_DIAG_EXHAUST_CRIT_S 60.0
/* CLOSE_WAIT sockets towards one destination: warning from, critical from. */
#define TP_DIAG_CLOSE_WAIT_WARN 1
#define TP_DIAG_CLOSE_WAIT_CRIT 16
/* SYN_SENT sockets towards one destination (connects not answered yet): warning from. */
#define TP_DIAG_SYN_SENT_WARN 4
/* Retransmitted share of the segments sent towards one destination (judged only from
 * TP_DIAG_RETRANS_MIN_SEGS segments on): warning, critical. A connection currently in
 * retransmission backoff is a warning on its own. */
#define TP_DIAG_RETRANS_MIN_SEGS 1000
#define TP_DIAG_RETRANS_WARN_PCT 1.0
#define TP_DIAG_RETRANS_CRIT_PCT 5.0
/* Host: TIME_WAIT entries over this share of net.ipv4.tcp_max_tw_buckets: warning. */
#define TP_DIAG_TW_BUCKETS_WARN_PCT 80.0
/* Host: an ephemeral range smaller than this many ports: info. */
#define TP_DIAG_RANGE_SMALL 10000

/* tp_diag_exhaustion_seconds() result when the ports never run out at that rate. */
#define TP_DIAG_NEVER (-1.0)

/* Size of an endpoint's text form, "[v6 address]:port" and the NUL included. */
#define TP_DIAG_ENDPOINT_STRLEN 56
/* Size of a finding's diagnosis and remedy texts, the NUL included. */
#define TP_DIAG_TEXT_SIZE 384

/* TCP states, with the kernel's numbers (include/net/tcp_states.h). */
typedef enum tp_diag_state {
    TP_DIAG_ESTABLISHED = 1,
    TP_DIAG_SYN_SENT = 2,
    TP_DIAG_SYN_RECV = 3,
    TP_DIAG_FIN_WAIT1 = 4,
    TP_DIAG_FIN_WAIT2 = 5,
    TP_DIAG_TIME_WAIT = 6,
    TP_DIAG_CLOSE = 7,
    TP_DIAG_CLOSE_WAIT = 8,
    TP_DIAG_LAST_ACK = 9,
    TP_DIAG_LISTEN = 10,
    TP_DIAG_CLOSING = 11,
    TP_DIAG_NEW_SYN_RECV = 12,
    TP_DIAG_NSTATES = 13 /* size of per-state arrays, index = state */
} tp_diag_state;

typedef enum tp_diag_severity {
    TP_DIAG_INFO = 0,
    TP_DIAG_WARNING = 1,
    TP_DIAG_CRITICAL = 2
} tp_diag_severity;

/* Where the sockets come from. AUTO: netlink, else the /proc fallback. */
typedef enum tp_diag_source {
    TP_DIAG_SOURCE_AUTO = 0,
    TP_DIAG_SOURCE_NETLINK = 1,
    TP_DIAG_SOURCE_PROCFS = 2
} tp_diag_source;

/* An IP address and port. family is AF_INET or AF_INET6 (0: unset); addr is in network
 * byte order (IPv4 in the first 4 bytes); port in host byte order. IPv4-mapped IPv6
 * addresses are reported as AF_INET, since they share IPv4's 4-tuples. */
typedef struct tp_diag_endpoint {
    int family;
    uint16_t port;
    uint8_t addr[16];
} tp_diag_endpoint;

/* What tp_diag_collect() reads. Fill with tp_diag_options_init(), then change fields. */
typedef struct tp_diag_options {
    /* Only this process's sockets (matched by socket inode in /proc/PID/fd); 0: all. */
    int pid;
    /* TIME_WAIT and orphaned sockets belong to no process (inode 0). With a pid, keep
     * them for the destinations the process holds sockets to in this sample or, through
     * prev, held in an earlier one: most likely its own closes. A process that only
     * opens and closes short connections may hold none at the instant of one sample;
     * sample twice (prev) to see its TIME_WAIT. Default true. */
    bool pid_include_orphans;
    /* Only this destination (dest.family 0: all). */
    tp_diag_endpoint dest;
    /* Also report sockets accepted by local listeners, grouped by their client ip:port.
     * Default false: the doctor is about this host's outgoing connections. */
    bool include_inbound;
    /* Default TP_DIAG_SOURCE_AUTO. PROCFS forces the fallback (tests, comparison). */
    tp_diag_source source;
} tp_diag_options;

/* One socket (a report keeps those that pass the filters). */
typedef struct tp_diag_socket {
    tp_diag_endpoint local, remote;
    int state;       /* tp_diag_state */
    uint32_t inode;  /* 0 for TIME_WAIT and orphaned sockets */
    uint64_t cookie; /* the kernel's socket cookie (netlink only, else 0): the same as
                      * SO_COOKIE and as what tidepool's eBPF trace sees (trace.h) */
    uint32_t uid;
    uint32_t rqueue, wqueue; /* bytes; a CLOSE_WAIT socket shows rqueue 1 (the FIN) */
    int timer;               /* 0 none, 1 retransmit, 2 keepalive, 3 TIME_WAIT/FIN_WAIT2, 4 probe */
    uint32_t timer_ms;       /* until the timer fires (TIME_WAIT: until it is gone) */
    bool inbound;            /* accepted by a local listener */
    bool owned;              /* its inode belongs to the pid (always true without pid) */
    bool has_tcp_info;       /* the fields below are valid (netlink, full sockets only) */
    uint32_t rtt_us, rttvar_us, min_rtt_us, rto_us;
    uint32_t retransmits; /* consecutive RTOs now */
    uint32_t backoff, probes, unacked, lost;
    uint32_t total_retrans; /* over the connection's life */
    uint32_t segs_out, segs_in;
    uint32_t last_data_recv_ms;
} tp_diag_socket;

/* One destination: the sockets towards one remote ip:port. */
typedef struct tp_diag_dest {
    tp_diag_endpoint remote;
    uint32_t sockets;                 /* that pass the filters */
    uint32_t states[TP_DIAG_NSTATES]; /* of those, by tp_diag_state */
    /* RTT over the sockets with tcp_info and a measured RTT (rtt_samples of them). */
    uint32_t rtt_samples;
    double rtt_avg_us, rttvar_avg_us;
    uint32_t rtt_max_us;
    uint64_t total_retrans, segs_out; /* summed over the sockets with tcp_info */
    uint32_t in_backoff;              /* sockets with consecutive RTOs or backoff now */
    uint32_t unacked;                 /* summed */
    /* Ports: host-wide (every process), for the busiest local address. */
    uint32_t ports_used; /* sockets holding a local port towards remote */
    uint32_t ports_open; /* of which not in TIME_WAIT */
    uint32_t ports_timewait;
    int64_t headroom;      /* port_range - ports_used, at least 0 */
    double ports_used_pct; /* ports_used / port_range, in percent */
    bool tw_reuse_applies; /* tcp_tw_reuse covers connects to remote */
    double tw_hold_s;      /* how long TIME_WAIT blocks a port: 60 or the reuse delay */
    /* TIME_WAIT entries that appeared, and the rate (closes/s) they give. */
    uint32_t tw_arrivals;
    double close_rate;       /* -1: unknown (no TIME_WAIT timers) */
    bool close_rate_sampled; /* from two samples; else from TIME_WAIT ages */
    double critical_rate;    /* closes/s the ports sustain: (range - open) / hold */
    double exhaustion_s;     /* at close_rate; TP_DIAG_NEVER if never */
    int severity;            /* worst finding for it, -1 if none */
} tp_diag_dest;

/* Host settings and totals. -1 in an int field: could not be read. */
typedef struct tp_diag_host {
    uint32_t port_lo, port_hi;             /* net.ipv4.ip_local_port_range */
    uint32_t port_reserved;                /* ip_local_reserved_ports inside the range */
    uint32_t port_range;                   /* usable ports: hi - lo + 1 - reserved */
    int tw_reuse;                          /* net.ipv4.tcp_tw_reuse (0, 1, 2) */
    int tw_reuse_delay_ms;                 /* net.ipv4.tcp_tw_reuse_delay (1000 if absent) */
    int fin_timeout_s;                     /* net.ipv4.tcp_fin_timeout */
    int max_tw_buckets;                    /* net.ipv4.tcp_max_tw_buckets */
    tp_diag_source source;                 /* NETLINK or PROCFS: what was read */
    char note[256];                        /* why the fallback was used, "" otherwise */
    int pid;                               /* the pid filter, 0 if none */
    uint32_t sockets;                      /* every TCP socket seen, listeners included */
    uint32_t listeners, inbound, timewait; /* host-wide */
    uint32_t dests;                        /* destinations in the report */
    int64_t sampled_at_ns;                 /* tp_clock_now() at the dump */
    double interval_s;                     /* since the previous sample, 0 if none */
} tp_diag_host;

/* One finding. kind is a static identifier: "time_wait", "close_wait", "ports",
 * "exhaustion", "retransmissions", "syn_sent", "tw_buckets", "port_range", "sidecar". */
typedef struct tp_diag_finding {
    tp_diag_severity severity;
    const char *kind;
    bool has_dest;
    tp_diag_endpoint dest;
    char diagnosis[TP_DIAG_TEXT_SIZE];
    char remedy[TP_DIAG_TEXT_SIZE];
} tp_diag_finding;

/* Well-known ports of service-mesh sidecars: Envoy's (Istio) outbound and inbound
 * capture ports, Linkerd's outbound and inbound proxy ports. */
#define TP_DIAG_SIDECAR_PORTS                                                                      \
    {                                                                                              \
        15001, 15006, 4140, 4143                                                                   \
    }

/* Connections of one process that end at a local proxy: the outgoing connections whose
 * other end is a socket a local listener accepted (both ends on this host), when the
 * listener looks like a proxy in the path: the connection was redirected on the way
 * (nft/iptables REDIRECT or DNAT: the client dialled one address, the listener it reached
 * has another), the listener is on a sidecar port (TP_DIAG_SIDECAR_PORTS), or the
 * listening process is a known proxy (envoy, linkerd2-proxy, ...). A local server the
 * client dialled directly (a database on loopback) is not one. */
typedef struct tp_diag_sidecar {
    int client_pid; /* 0: unknown */
    char client_comm[16];
    tp_diag_endpoint dialed;       /* where the client's sockets point */
    tp_diag_endpoint proxy;        /* the local listener they reached */
    tp_diag_endpoint original_dst; /* SO_ORIGINAL_DST read on the proxy's accepted socket
                                    * (family 0: not redirected, or not readable) */
    int proxy_pid;                 /* 0: unknown */
    char proxy_comm[16];
    bool redirected;     /* dialed differs from proxy: NAT on this host */
    bool sidecar_port;   /* proxy's port is one of TP_DIAG_SIDECAR_PORTS */
    const char *product; /* "Envoy (Istio)", "Linkerd", "HAProxy", ...; NULL unknown */
    uint32_t connections;
} tp_diag_sidecar;

/* An opaque, immutable sample of the host's sockets. */
typedef struct tp_diag_report tp_diag_report;

/* tp_diag_options_init: all processes and destinations, orphans kept with a pid,
 * no inbound sockets, source AUTO. */
TP_EXTERN void tp_diag_options_init(tp_diag_options *o);

/* tp_diag_collect: dumps the host's TCP sockets and builds a report into *out (NULL on
 * error). opts NULL means the defaults. prev, if not NULL, is an earlier report of the
 * same host: the close rate of each destination is then the TIME_WAIT entries that
 * appeared since prev divided by the time between them (otherwise it is estimated from
 * TIME_WAIT ages, see TP_DIAG_RATE_WINDOW_S), and with the same pid the destinations
 * prev attributed to the pid stay attributed (see pid_include_orphans). prev is only
 * read; it may be destroyed once this returns.
 * Errors: TP_EINVAL (bad options, or no process opts->pid), TP_ENOMEM, TP_ESYS (neither
 * netlink nor /proc could be read; the source forced and unavailable). err (optional)
 * receives the detail. Thread-safe. */
TP_EXTERN tp_err tp_diag_collect(const tp_diag_options *opts, const tp_diag_report *prev,
                                 tp_diag_report **out, tp_errinfo *err);

/* tp_diag_report_destroy: frees r and everything its accessors returned (NULL: no-op). */
TP_EXTERN void tp_diag_report_destroy(tp_diag_report *r);

/* tp_diag_report_host: the host settings and totals; valid while r lives. */
TP_EXTERN const tp_diag_host *tp_diag_report_host(const tp_diag_report *r);

/* Destinations, worst first (severity, then ports used, then sockets). i < count. */
TP_EXTERN size_t tp_diag_report_dest_count(const tp_diag_report *r);
TP_EXTERN const tp_diag_dest *tp_diag_report_dest(const tp_diag_report *r, size_t i);
/* tp_diag_report_find_dest: the destination equal to remote, or NULL. */
TP_EXTERN const tp_diag_dest *tp_diag_report_find_dest(const tp_diag_report *r,
                                                       const tp_diag_endpoint *remote);

/* Sidecars in the path (see tp_diag_sidecar), most connections first. i < count. */
TP_EXTERN size_t tp_diag_report_sidecar_count(const tp_diag_report *r);
TP_EXTERN const tp_diag_sidecar *tp_diag_report_sidecar(const tp_diag_report *r, size_t i);

/* Findings, most severe first. i < count. */
TP_EXTERN size_t tp_diag_report_finding_count(const tp_diag_report *r);
TP_EXTERN const tp_diag_finding *tp_diag_report_finding(const tp_diag_report *r, size_t i);

/* The sockets that pass the filters (listeners excluded), ordered by remote then local
 * endpoint. i < count. */
TP_EXTERN size_t tp_diag_report_socket_count(const tp_diag_report *r);
TP_EXTERN const tp_diag_socket *tp_diag_report_socket(const tp_diag_report *r, size_t i);

/* tp_diag_report_text: renders r for people: a header line with the host settings, a
 * table of the first `top` destinations (0: all), then the findings with their remedies:
 * every warning and critical one, info ones up to `top`.
 * *out receives a NUL-terminated malloc'ed string (free with tp_diag_free), *len (if not
 * NULL) its length. Errors: TP_EINVAL, TP_ENOMEM. Thread-safe. */
TP_EXTERN tp_err tp_diag_report_text(const tp_diag_report *r, size_t top, char **out, size_t *len);

/* tp_diag_report_json: renders r as one JSON document (an object; the first `top`
 * destinations, 0: all; every finding). Same contract as tp_diag_report_text. */
TP_EXTERN tp_err tp_diag_report_json(const tp_diag_report *r, size_t top, char **out, size_t *len);

/* tp_diag_free: frees a string returned by the renderers (NULL: no-op). */
TP_EXTERN void tp_diag_free(void *p);

/* ---- endpoints and names ------------------------------------------------------------- */

/* tp_diag_endpoint_parse: "1.2.3.4:80" or "[::1]:80" into *out. TP_EINVAL if malformed
 * (a port is required, 1 to 65535). */
TP_EXTERN tp_err tp_diag_endpoint_parse(const char *s, tp_diag_endpoint *out);
/* tp_diag_endpoint_format: writes "1.2.3.4:80" or "[::1]:80" into buf (size >=
 * TP_DIAG_ENDPOINT_STRLEN is always enough) and returns buf. */
TP_EXTERN char *tp_diag_endpoint_format(const tp_diag_endpoint *e, char *buf, size_t size);
/* tp_diag_endpoint_equal: same family, address and port. */
TP_EXTERN bool tp_diag_endpoint_equal(const tp_diag_endpoint *a, const tp_diag_endpoint *b);
/* tp_diag_endpoint_is_loopback: 127.0.0.0/8 or ::1. */
TP_EXTERN bool tp_diag_endpoint_is_loopback(const tp_diag_endpoint *e);
/* tp_diag_state_name: "ESTABLISHED", "TIME_WAIT", ... ("UNKNOWN" out of range). Static. */
TP_EXTERN const char *tp_diag_state_name(int state);
/* tp_diag_severity_name: "info", "warning", "critical". Static. */
TP_EXTERN const char *tp_diag_severity_name(int severity);

/* ---- the port model, as pure functions ----------------------------------------------- */

/* tp_diag_port_range_size: ports in [lo, hi] (hi - lo + 1), 0 if hi < lo. */
TP_EXTERN uint32_t tp_diag_port_range_size(uint32_t lo, uint32_t hi);
/* tp_diag_port_headroom: range - used, at least 0. */
TP_EXTERN int64_t tp_diag_port_headroom(uint32_t range, uint32_t used);
/* tp_diag_close_rate: arrivals / interval in closes per second; -1 if interval <= 0. */
TP_EXTERN double tp_diag_close_rate(uint32_t arrivals, double interval_s);
/* tp_diag_critical_rate: the close rate that fills the range in steady state,
 * (range - open) / tw_hold_s, where open counts the ports held outside TIME_WAIT;
 * 0 if open >= range; -1 if tw_hold_s <= 0. */
TP_EXTERN double tp_diag_critical_rate(uint32_t range, uint32_t open, double tw_hold_s);
/* tp_diag_exhaustion_seconds: how long until the ports towards one destination run out,
 * with `open` ports held outside TIME_WAIT, `timewait` in TIME_WAIT and new TIME_WAIT
 * entries arriving at close_rate per second, each held tw_hold_s. 0 if already
 * exhausted (open + timewait >= range); TP_DIAG_NEVER if close_rate <= 0 or the steady
 * state open + close_rate * tw_hold_s stays below range; otherwise the headroom divided
 * by the rate: a lower bound, as it assumes no current TIME_WAIT entry expires first. */
TP_EXTERN double tp_diag_exhaustion_seconds(uint32_t range, uint32_t open, uint32_t timewait,
                                            double close_rate, double tw_hold_s);

#ifdef __cplusplus
}
#endif
#endif
