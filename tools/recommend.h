/* recommend.h: the pieces of `tidepool recommend` (cmd_recommend.c) kept in their own
 * files: where the inputs come from (recommend_fetch.c: a pool's metrics endpoint, a
 * keep-alive probe) and how the answer is printed (recommend_print.c). */
#ifndef TP_TOOLS_RECOMMEND_H
#define TP_TOOLS_RECOMMEND_H

#include <stdbool.h>
#include <stdint.h>

#include "tidepool/diag.h"
#include "tidepool/http.h"
#include "tidepool/sizing.h"

#define REC_MAX_NOTES 4

/* --measure: the destination's live sockets and the seeds' formula
 * N = min(ceil(QPS x RTT x alpha), usable ports / destinations), alpha = hold / RTT. */
typedef struct rec_measured {
    bool on;        /* --measure */
    bool have_dest; /* --dest given (else the busiest key of the metrics) */
    int pid;        /* --pid: only that process's sockets (0: all) */
    tp_diag_endpoint dest;
    int destinations; /* keys of the pool that saw acquires */
    uint32_t sockets, rtt_samples;
    double rtt_s, rttvar_s; /* averaged over the sockets with an RTT */
    uint64_t retrans, segs_out;
    double retrans_pct;
    int64_t port_range, port_cap; /* usable ports, and that over destinations */
    double alpha;                 /* mean hold over RTT */
    int64_t formula;              /* N */
    bool port_bound;              /* the port term decided N */
    const char *trust;            /* "erlang_c" or "formula" */
    char why[2][240];             /* which to trust, and why */
} rec_measured;

/* The command line, the sizing input it builds, and notes on where inputs came from. */
typedef struct rec_cfg {
    tp_sizing_input in;
    bool have_rate, have_hold, have_close, have_ports, have_keepalive, json;
    const char *metrics_url, *probe_url; /* loopback http:// URLs, or NULL */
    char label[160];                     /* key="value" from --label, or "" */
    double sample_s;                     /* between the two scrapes */
    int64_t port_lo, port_hi;
    char notes[REC_MAX_NOTES][200];
    int nnotes;
    rec_measured m;
} rec_cfg;

/* rec_note: appends a printf-style note (dropped past REC_MAX_NOTES). */
void rec_note(rec_cfg *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* rec_measure: scrapes c->metrics_url twice, c->sample_s apart, and sets the rate, mean
 * hold time and client close rate that the command line did not give. Prints why and
 * returns false on failure. */
bool rec_measure(tp_http_client *cl, rec_cfg *c);

/* rec_probe: one GET of c->probe_url; a "Keep-Alive: timeout=N" header sets the
 * keep-alive unless the command line gave one. Prints why and returns false when the
 * request failed. */
bool rec_probe(tp_http_client *cl, rec_cfg *c);

/* rec_measure_sockets (recommend_measure.c): for --measure, after rec_measure: finds
 * the destination (--dest, else the pool's busiest key in the metrics), reads its live
 * sockets through sock_diag (RTT, retransmissions) and computes the formula. Prints why
 * and returns false when there is no destination or no socket with an RTT. */
bool rec_measure_sockets(tp_http_client *cl, rec_cfg *c);
/* rec_measure_compare: with the Erlang C answer r, says which to trust (c->m.trust and
 * c->m.why). */
void rec_measure_compare(rec_cfg *c, const tp_sizing_result *r);

/* rec_print_text, rec_print_json: the recommendation on stdout, for people or for
 * programs (one JSON object; unbounded waits are null). */
void rec_print_text(const rec_cfg *c, const tp_sizing_result *r);
void rec_print_json(const rec_cfg *c, const tp_sizing_result *r);

#endif
