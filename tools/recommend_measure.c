/* recommend_measure.c: `tidepool recommend --measure`: the seeds' sizing formula
 * calibrated on live data, beside the Erlang C answer. The rate and the mean hold time
 * come from the pool's metrics (recommend_fetch.c); the destination's RTT and
 * retransmissions from its live sockets, as doctor reads them (sock_diag's tcp_info).
 * The formula N = min(ceil(QPS x RTT x alpha), usable ports / destinations) takes alpha,
 * the hold time in RTTs, from the measurement itself (alpha = hold / RTT), so its first
 * term is the mean number of connections in use (Little's law). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tidepool/tidepool.h"

#include "recommend.h"

/* The destination of a pool key such as "http://127.0.0.1:8080" or "postgres://[::1]"
 * (default ports by scheme; localhost is 127.0.0.1). false for keys that name no IP
 * literal. */
static bool key_endpoint(const char *key, tp_diag_endpoint *out)
{
    static const struct {
        const char *scheme;
        unsigned port;
    } schemes[] = {{"http", 80},         {"https", 443},  {"postgres", 5432},
                   {"postgresql", 5432}, {"redis", 6379}, {"rediss", 6379}};
    const char *sep = strstr(key, "://");
    if (sep == NULL)
        return false;
    unsigned port = 0;
    for (size_t i = 0; i < sizeof schemes / sizeof schemes[0]; i++)
        if ((size_t)(sep - key) == strlen(schemes[i].scheme) &&
            strncmp(key, schemes[i].scheme, (size_t)(sep - key)) == 0)
            port = schemes[i].port;
    const char *host = sep + 3, *at = strchr(host, '@');
    const char *slash = strpbrk(host, "/?#");
    if (at != NULL && (slash == NULL || at < slash))
        host = at + 1;
    size_t len = slash != NULL ? (size_t)(slash - host) : strlen(host);
    char hp[96];
    if (len == 0 || len >= sizeof hp - 8)
        return false;
    memcpy(hp, host, len);
    hp[len] = '\0';
    if (strncmp(hp, "localhost", 9) == 0 && (hp[9] == '\0' || hp[9] == ':')) {
        char tmp[96];
        snprintf(tmp, sizeof tmp, "127.0.0.1%s", hp + 9);
        snprintf(hp, sizeof hp, "%s", tmp);
    }
    const char *close = strrchr(hp, ']');
    const char *colon = strrchr(hp, ':');
    bool has_port =
        colon != NULL && (close == NULL || colon > close) && (hp[0] != '[' || close != NULL);
    if (hp[0] != '[' && colon != NULL && strchr(hp, ':') != colon)
        return false; /* a bare IPv6 address needs brackets */
    if (!has_port) {
        if (port == 0)
            return false;
        size_t l = strlen(hp);
        snprintf(hp + l, sizeof hp - l, ":%u", port);
    }
    return tp_diag_endpoint_parse(hp, out) == TP_OK;
}

/* Reads the value of the label `key` in one series line into out. */
static bool series_key(const char *line, const char *end, char *out, size_t cap)
{
    const char *k = strstr(line, "key=\"");
    if (k == NULL || k >= end)
        return false;
    k += 5;
    size_t n = 0;
    while (k < end && *k != '"' && n + 1 < cap) {
        if (*k == '\\' && k + 1 < end)
            k++;
        out[n++] = *k++;
    }
    out[n] = '\0';
    return k < end && *k == '"';
}

/* The busiest key of tidepool_acquires_total that names an IP destination, and how many
 * such keys saw acquires. */
static bool busiest_key(const char *body, tp_diag_endpoint *dest, int *ndest)
{
    static const char name[] = "tidepool_acquires_total{";
    double best = 0;
    bool found = false;
    *ndest = 0;
    for (const char *p = body; p != NULL && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        if (strncmp(p, name, sizeof name - 1) != 0)
            continue;
        const char *end = strchr(p, '}');
        if (end == NULL)
            break;
        char key[160];
        tp_diag_endpoint e;
        if (!series_key(p, end, key, sizeof key) || !key_endpoint(key, &e))
            continue;
        double v = strtod(end + 1, NULL);
        if (!(v > 0))
            continue;
        (*ndest)++;
        if (!found || v > best) {
            best = v;
            *dest = e;
            found = true;
        }
    }
    return found;
}

static bool find_dest(tp_http_client *cl, rec_cfg *c)
{
    tp_http_response *r = NULL;
    tp_errinfo e;
    if (tp_http_get(cl, c->metrics_url, &r, &e) != TP_OK) {
        fprintf(stderr, "recommend: GET %s: %s\n", c->metrics_url, e.msg);
        return false;
    }
    tp_diag_endpoint busiest;
    int n = 0;
    bool found = busiest_key(tp_http_response_body(r, NULL), &busiest, &n);
    tp_http_response_free(r);
    c->m.destinations = n > 0 ? n : 1;
    if (c->m.have_dest)
        return true;
    if (!found) {
        fprintf(stderr,
                "recommend: --measure: no key of %s names an IP:port destination; "
                "give --dest IP:PORT\n",
                c->metrics_url);
        return false;
    }
    c->m.dest = busiest;
    return true;
}

bool rec_measure_sockets(tp_http_client *cl, rec_cfg *c)
{
    rec_measured *m = &c->m;
    if (!find_dest(cl, c))
        return false;
    tp_diag_options o;
    tp_diag_options_init(&o);
    o.dest = m->dest;
    o.pid = m->pid;
    tp_diag_report *r = NULL;
    tp_errinfo e;
    tp_errinfo_clear(&e);
    if (tp_diag_collect(&o, NULL, &r, &e) != TP_OK) {
        fprintf(stderr, "recommend: --measure: reading the sockets: %s\n", e.msg);
        return false;
    }
    char ep[TP_DIAG_ENDPOINT_STRLEN];
    tp_diag_endpoint_format(&m->dest, ep, sizeof ep);
    const tp_diag_dest *d = tp_diag_report_find_dest(r, &m->dest);
    const tp_diag_host *h = tp_diag_report_host(r);
    bool ok = d != NULL && d->rtt_samples > 0;
    if (!ok) {
        fprintf(stderr,
                "recommend: --measure: no live socket to %s with an RTT (is the pool holding "
                "connections to it now?%s)\n",
                ep, h->source == TP_DIAG_SOURCE_PROCFS ? " and netlink is unavailable" : "");
    } else {
        m->sockets = d->sockets;
        m->rtt_samples = d->rtt_samples;
        m->rtt_s = d->rtt_avg_us / 1e6;
        m->rttvar_s = d->rttvar_avg_us / 1e6;
        m->retrans = d->total_retrans;
        m->segs_out = d->segs_out;
        m->retrans_pct =
            d->segs_out > 0 ? 100.0 * (double)d->total_retrans / (double)d->segs_out : 0;
        m->port_range = h->port_range;
        /* The seeds' port term: the range shared by the pool's destinations. Linux picks
         * ephemeral ports per 4-tuple for a plain connect(), so this is conservative. */
        m->port_cap = m->port_range / (m->destinations > 0 ? m->destinations : 1);
        m->alpha = c->in.hold_s / m->rtt_s;
        double in_use = ceil(c->in.rate * m->rtt_s * m->alpha - 1e-9);
        m->formula = (int64_t)in_use < m->port_cap ? (int64_t)in_use : m->port_cap;
        if (m->formula < 1)
            m->formula = 1;
        m->port_bound = (int64_t)in_use >= m->port_cap;
        rec_note(c, "live sockets to %s: %u (%u with an RTT), RTT %.4g ms, %.2f %% retransmitted",
                 ep, m->sockets, m->rtt_samples, m->rtt_s * 1e3, m->retrans_pct);
    }
    tp_diag_report_destroy(r);
    return ok;
}

void rec_measure_compare(rec_cfg *c, const tp_sizing_result *r)
{
    rec_measured *m = &c->m;
    if (m->port_bound) {
        m->trust = "formula";
        snprintf(m->why[0], sizeof m->why[0],
                 "the port term decides: %lld usable ports over %d destinations cap the pool "
                 "at %lld, below what the load needs; Erlang C's %lld cannot be reached",
                 (long long)m->port_range, m->destinations, (long long)m->port_cap,
                 (long long)r->max_per_key);
    } else {
        m->trust = "erlang_c";
        snprintf(m->why[0], sizeof m->why[0],
                 "trust Erlang C (%lld): the formula's %lld is the mean in use (QPS x hold, "
                 "alpha = %.3g RTTs per hold) with no room for bursts, so at that size most "
                 "acquires would wait; use it as min_idle_per_key",
                 (long long)r->max_per_key, (long long)m->formula, m->alpha);
    }
    if (m->retrans_pct >= 1.0)
        snprintf(m->why[1], sizeof m->why[1],
                 "%.2f %% of the segments to this destination were retransmitted: the RTT is "
                 "inflated by loss and alpha with it; measure again when the path is clean",
                 m->retrans_pct);
    else if (m->alpha >= 10)
        snprintf(m->why[1], sizeof m->why[1],
                 "alpha %.3g: a connection is held for many RTTs, so the server's time, not "
                 "the network, sets the size; a faster server shrinks the pool, a shorter "
                 "RTT barely does",
                 m->alpha);
    else
        snprintf(m->why[1], sizeof m->why[1],
                 "alpha %.3g: a connection is held for about %s RTT%s, so the network sets the "
                 "size; fewer round trips per request (reuse, pipelining, HTTP/2) shrink it",
                 m->alpha, m->alpha < 1.5 ? "one" : "a few", m->alpha < 1.5 ? "" : "s");
}
