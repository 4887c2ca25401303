/* findings.c: the doctor's rules. Each turns a destination's (or the host's) numbers
 * into a finding with a severity, a one-line diagnosis and a remedy phrased in terms of
 * the pool's options and the sysctls, using the thresholds documented in diag.h. Then
 * findings are ordered most severe first and destinations worst first. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diag_internal.h"

#define REUSE_ADVICE "reuse connections (raise the pool's max_idle_per_key to its max_per_key)"

tp_diag_finding *tp__diag_finding_add(tp_diag_report *r, int sev, const char *kind,
                                      const tp_diag_endpoint *dest)
{
    if (r->nfindings == r->capfindings) {
        size_t ncap = r->capfindings ? r->capfindings * 2 : 16;
        tp_diag_finding *nf = tp__realloc(r->findings, ncap * sizeof *nf);
        if (nf == NULL)
            return NULL;
        r->findings = nf;
        r->capfindings = ncap;
    }
    tp_diag_finding *f = &r->findings[r->nfindings++];
    memset(f, 0, sizeof *f);
    f->severity = (tp_diag_severity)sev;
    f->kind = kind;
    if (dest != NULL) {
        f->has_dest = true;
        f->dest = *dest;
    }
    return f;
}

static int level(double v, double warn, double crit)
{
    return v >= crit ? TP_DIAG_CRITICAL : v >= warn ? TP_DIAG_WARNING : -1;
}

/* What tcp_tw_reuse could still do for connects towards d, as a remedy clause. */
static void tw_reuse_clause(const tp_diag_host *h, const tp_diag_dest *d, char *buf, size_t size)
{
    if (d->tw_reuse_applies)
        snprintf(buf, size,
                 "; ports are safe: tcp_tw_reuse=%d lets connect() take TIME_WAIT "
                 "ports older than %d ms, but each close still costs a handshake",
                 h->tw_reuse, h->tw_reuse_delay_ms);
    else if (h->tw_reuse == 2)
        snprintf(buf, size,
                 ", or set net.ipv4.tcp_tw_reuse=1 (now 2: loopback only) for "
                 "outgoing connections");
    else
        snprintf(buf, size, ", or enable net.ipv4.tcp_tw_reuse=1 for outgoing connections");
}

static bool dest_rules(tp_diag_report *r, const tp_diag_dest *d)
{
    const tp_diag_host *h = &r->host;
    char ep[TP_DIAG_ENDPOINT_STRLEN], clause[200], rate[64] = "";
    tp_diag_endpoint_format(&d->remote, ep, sizeof ep);
    tw_reuse_clause(h, d, clause, sizeof clause);
    double range = h->port_range ? (double)h->port_range : 1.0;
    if (d->close_rate > 0)
        snprintf(rate, sizeof rate, ", %.1f closes/s", d->close_rate);
    tp_diag_finding *f;

    uint32_t tw = d->states[TP_DIAG_TIME_WAIT];
    double tw_pct = 100.0 * tw / range;
    int sev = level(tw_pct, TP_DIAG_TW_WARN_PCT, TP_DIAG_TW_CRIT_PCT);
    if (sev < 0 && tw >= TP_DIAG_TW_INFO_COUNT)
        sev = TP_DIAG_INFO;
    if (sev > TP_DIAG_INFO && d->tw_reuse_applies)
        sev = TP_DIAG_INFO; /* churn, but the ports are reusable after the delay */
    if (sev >= 0) {
        if ((f = tp__diag_finding_add(r, sev, "time_wait", &d->remote)) == NULL)
            return false;
        snprintf(f->diagnosis, sizeof f->diagnosis,
                 "TIME_WAIT pile-up towards %s: %u sockets, %.1f %% of the port range%s", ep, tw,
                 tw_pct, rate);
        snprintf(f->remedy, sizeof f->remedy, "%s%s", REUSE_ADVICE, clause);
    }

    uint32_t cw = d->states[TP_DIAG_CLOSE_WAIT];
    sev = level(cw, TP_DIAG_CLOSE_WAIT_WARN, TP_DIAG_CLOSE_WAIT_CRIT);
    if (sev >= 0) {
        char who[48] = "a local process";
        if (h->pid != 0)
            snprintf(who, sizeof who, "process %d", h->pid);
        if ((f = tp__diag_finding_add(r, sev, "close_wait", &d->remote)) == NULL)
            return false;
        snprintf(f->diagnosis, sizeof f->diagnosis,
                 "%u sockets towards %s in CLOSE_WAIT: the peer closed but %s holds the socket", cw,
                 ep, who);
        snprintf(f->remedy, sizeof f->remedy,
                 "a pool holding dead connections: check idle connections before reuse "
                 "(check_after_idle), lower idle_timeout below the server's keep-alive, and "
                 "close a connection as soon as a read returns EOF");
    }

    /* With tcp_tw_reuse covering d, TIME_WAIT ports are reusable: only open ones count. */
    uint32_t busy = d->tw_reuse_applies ? d->ports_open : d->ports_used;
    sev = level(100.0 * busy / range, TP_DIAG_PORTS_WARN_PCT, TP_DIAG_PORTS_CRIT_PCT);
    if (sev >= 0) {
        if ((f = tp__diag_finding_add(r, sev, "ports", &d->remote)) == NULL)
            return false;
        snprintf(f->diagnosis, sizeof f->diagnosis,
                 "local ports towards %s near exhaustion: %u of %u in use (%.1f %%), %u in "
                 "TIME_WAIT, headroom %lld",
                 ep, d->ports_used, h->port_range, d->ports_used_pct, d->ports_timewait,
                 (long long)d->headroom);
        snprintf(f->remedy, sizeof f->remedy,
                 "keep connections open and reuse them (max_idle_per_key = max_per_key), "
                 "spread load over more destination or source addresses, or widen "
                 "net.ipv4.ip_local_port_range (now %u %u)",
                 h->port_lo, h->port_hi);
    }

    if (d->exhaustion_s != TP_DIAG_NEVER && d->exhaustion_s >= 0) {
        sev = d->exhaustion_s < TP_DIAG_EXHAUST_CRIT_S   ? TP_DIAG_CRITICAL
              : d->exhaustion_s < TP_DIAG_EXHAUST_WARN_S ? TP_DIAG_WARNING
                                                         : -1;
        if (sev >= 0) {
            if ((f = tp__diag_finding_add(r, sev, "exhaustion", &d->remote)) == NULL)
                return false;
            snprintf(f->diagnosis, sizeof f->diagnosis,
                     "at %.1f closes/s the local ports towards %s run out in about %.0f s "
                     "(they sustain %.0f closes/s)",
                     d->close_rate, ep, d->exhaustion_s, d->critical_rate);
            snprintf(f->remedy, sizeof f->remedy,
                     "lower the close rate: %s, with idle_timeout below the server's "
                     "keep-alive%s",
                     REUSE_ADVICE, clause);
        }
    }

    double rt_pct = d->segs_out ? 100.0 * (double)d->total_retrans / (double)d->segs_out : 0.0;
    sev = d->segs_out >= TP_DIAG_RETRANS_MIN_SEGS
              ? level(rt_pct, TP_DIAG_RETRANS_WARN_PCT, TP_DIAG_RETRANS_CRIT_PCT)
              : -1;
    if (sev < 0 && d->in_backoff > 0)
        sev = TP_DIAG_WARNING;
    if (sev >= 0) {
        if ((f = tp__diag_finding_add(r, sev, "retransmissions", &d->remote)) == NULL)
            return false;
        snprintf(f->diagnosis, sizeof f->diagnosis,
                 "retransmissions towards %s: %llu of %llu segments (%.2f %%), %u connections "
                 "in backoff, RTT avg %.2f ms max %.2f ms",
                 ep, (unsigned long long)d->total_retrans, (unsigned long long)d->segs_out, rt_pct,
                 d->in_backoff, d->rtt_avg_us / 1000.0, d->rtt_max_us / 1000.0);
        snprintf(f->remedy, sizeof f->remedy,
                 "loss or congestion on the path, or an overloaded peer: check interface "
                 "errors and MTU, and the peer's load; keep timeouts above RTT + 4 x rttvar "
                 "and let the pool's breaker back off instead of opening more connections");
    }

    uint32_t syn = d->states[TP_DIAG_SYN_SENT];
    if (syn >= TP_DIAG_SYN_SENT_WARN) {
        if ((f = tp__diag_finding_add(r, TP_DIAG_WARNING, "syn_sent", &d->remote)) == NULL)
            return false;
        snprintf(f->diagnosis, sizeof f->diagnosis,
                 "%u connects towards %s waiting for the server's SYN-ACK", syn, ep);
        snprintf(f->remedy, sizeof f->remedy,
                 "the server accepts too slowly or SYNs are dropped (full listen backlog, "
                 "firewall): lower connect_timeout so the pool's breaker fails fast, and "
                 "check the server's accept queue");
    }
    return true;
}

static bool host_rules(tp_diag_report *r)
{
    const tp_diag_host *h = &r->host;
    tp_diag_finding *f;
    if (h->max_tw_buckets > 0 &&
        100.0 * h->timewait / h->max_tw_buckets >= TP_DIAG_TW_BUCKETS_WARN_PCT) {
        if ((f = tp__diag_finding_add(r, TP_DIAG_WARNING, "tw_buckets", NULL)) == NULL)
            return false;
        snprintf(f->diagnosis, sizeof f->diagnosis,
                 "%u TIME_WAIT entries of net.ipv4.tcp_max_tw_buckets=%d", h->timewait,
                 h->max_tw_buckets);
        snprintf(f->remedy, sizeof f->remedy,
                 "above the limit the kernel drops TIME_WAIT state early (TcpExt "
                 "TCPTimeWaitOverflow): cut client-side closes by reusing connections rather "
                 "than raising the limit");
    }
    if (h->port_range < TP_DIAG_RANGE_SMALL) {
        if ((f = tp__diag_finding_add(r, TP_DIAG_INFO, "port_range", NULL)) == NULL)
            return false;
        snprintf(f->diagnosis, sizeof f->diagnosis,
                 "the ephemeral port range %u-%u leaves only %u ports per destination", h->port_lo,
                 h->port_hi, h->port_range);
        snprintf(f->remedy, sizeof f->remedy,
                 "widen net.ipv4.ip_local_port_range (the default is 32768 60999)");
    }
    return true;
}

static int cmp_dest(const void *a, const void *b)
{
    const tp_diag_dest *x = a, *y = b;
    if (x->severity != y->severity)
        return x->severity > y->severity ? -1 : 1;
    if (x->ports_used != y->ports_used)
        return x->ports_used > y->ports_used ? -1 : 1;
    if (x->sockets != y->sockets)
        return x->sockets > y->sockets ? -1 : 1;
    return tp__diag_endpoint_cmp(&x->remote, &y->remote);
}

tp_err tp__diag_findings(tp_diag_report *r)
{
    /* Rank by pressure first (every severity is still -1), so that findings of equal
     * severity come out worst destination first; the final sort adds the severity. */
    if (r->ndests > 1)
        qsort(r->dests, r->ndests, sizeof *r->dests, cmp_dest);
    for (size_t i = 0; i < r->ndests; i++) {
        size_t first = r->nfindings;
        if (!dest_rules(r, &r->dests[i]))
            return TP_ENOMEM;
        for (size_t k = first; k < r->nfindings; k++)
            if ((int)r->findings[k].severity > r->dests[i].severity)
                r->dests[i].severity = (int)r->findings[k].severity;
    }
    if (!host_rules(r) || !tp__diag_sidecar_rules(r))
        return TP_ENOMEM;
    /* Most severe first, stably (each destination's findings stay in rule order): a
     * counting sort over the three severities. */
    if (r->nfindings > 1) {
        tp_diag_finding *sorted = tp__malloc(r->nfindings * sizeof *sorted);
        if (sorted == NULL)
            return TP_ENOMEM;
        size_t n = 0;
        for (int sev = TP_DIAG_CRITICAL; sev >= TP_DIAG_INFO; sev--)
            for (size_t i = 0; i < r->nfindings; i++)
                if ((int)r->findings[i].severity == sev)
                    sorted[n++] = r->findings[i];
        tp__free(r->findings);
        r->findings = sorted;
        r->capfindings = r->nfindings;
    }
    if (r->ndests > 1)
        qsort(r->dests, r->ndests, sizeof *r->dests, cmp_dest);
    return TP_OK;
}
