/* recommend.h: the pieces of `tidepool recommend` (cmd_recommend.c) kept in their own
 * files: where the inputs come from (recommend_fetch.c: a pool's metrics endpoint, a
 * keep-alive probe) and how the answer is printed (recommend_print.c). */
#ifndef TP_TOOLS_RECOMMEND_H
#define TP_TOOLS_RECOMMEND_H

#include <stdbool.h>
#include <stdint.h>

#include "tidepool/http.h"
#include "tidepool/sizing.h"

#define REC_MAX_NOTES 4

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

/* rec_print_text, rec_print_json: the recommendation on stdout, for people or for
 * programs (one JSON object; unbounded waits are null). */
void rec_print_text(const rec_cfg *c, const tp_sizing_result *r);
void rec_print_json(const rec_cfg *c, const tp_sizing_result *r);

#endif
