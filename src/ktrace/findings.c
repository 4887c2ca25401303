/* findings.c: the patterns of a trace as findings with remedies, in the house's form
 * (tp_diag_finding: severity, kind, destination, diagnosis, remedy). Each rule reads one
 * table; the thresholds are TP_KTRACE_* of include/tidepool/ktrace.h. The remedies name
 * the pool's settings (include/tidepool/pool.h, http.h) since that is what a tidepool
 * user changes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ktrace_internal.h"

/* "curl[1234]", or "(process unknown or several)" when the rows had no process or several. */
static const char *who(const tp_ktrace_process *p, char *buf, size_t size)
{
    return tp__ktrace_process_name(p, "(process unknown or several)", buf, size);
}

static tp_diag_finding *add(tp_ktrace *t, tp_diag_severity sev, const char *kind,
                            const tp_diag_endpoint *dest)
{
    if (t->nfindings == t->capfindings) {
        size_t ncap = t->capfindings ? t->capfindings * 2 : 8;
        tp_diag_finding *nv = tp__realloc(t->findings, ncap * sizeof *nv);
        if (nv == NULL)
            return NULL;
        t->findings = nv;
        t->capfindings = ncap;
    }
    tp_diag_finding *f = &t->findings[t->nfindings++];
    memset(f, 0, sizeof *f);
    f->severity = sev;
    f->kind = kind;
    if (dest != NULL) {
        f->has_dest = true;
        f->dest = *dest;
    }
    return f;
}

static bool resets_rules(tp_ktrace *t)
{
    char ep[TP_DIAG_ENDPOINT_STRLEN], pr[48];
    for (size_t i = 0; i < t->nresets; i++) {
        const tp_ktrace_reset *r = &t->resets[i];
        tp_diag_endpoint_format(&r->dest, ep, sizeof ep);
        const char *name = r->reason_name != NULL ? r->reason_name : "";
        tp_diag_finding *f = NULL;
        if (r->sent && !r->inbound &&
            (strcmp(name, "TCP_ABORT_ON_CLOSE") == 0 ||
             strcmp(name, "TCP_DISCONNECT_WITH_DATA") == 0)) {
            if ((f = add(t, TP_DIAG_WARNING, "rst_unread_data", &r->dest)) == NULL)
                return false;
            snprintf(f->diagnosis, sizeof f->diagnosis,
                     "%llu connections to %s were closed with unread data by %s: the kernel "
                     "sent RST (%s) instead of FIN, so the server sees ECONNRESET and "
                     "the response it was sending is lost",
                     (unsigned long long)r->count, ep, who(&r->process, pr, sizeof pr), name);
            snprintf(f->remedy, sizeof f->remedy,
                     "read each response to its end before closing, or let the pool drain "
                     "it (tidepool drains up to http drain_max_bytes within drain_timeout "
                     "and then keeps the connection); look for code paths that abandon a "
                     "response on an error or a timeout");
        } else if (!r->sent && !r->inbound &&
                   (r->state == TP_DIAG_ESTABLISHED || r->state == TP_DIAG_CLOSE_WAIT)) {
            bool idle = r->idle_samples > 0 && r->idle_min_ms >= TP_KTRACE_IDLE_TIMEOUT_MIN_MS;
            if ((f = add(t, TP_DIAG_WARNING, idle ? "rst_received_idle" : "rst_received",
                         &r->dest)) == NULL)
                return false;
            if (idle) {
                snprintf(f->diagnosis, sizeof f->diagnosis,
                         "%llu connections to %s were reset by the peer in %s after "
                         "%.1f-%.1f s without data (avg %.1f s): a server or middlebox (NAT, "
                         "load balancer, firewall) drops connections idle that long, while "
                         "the pool kept them",
                         (unsigned long long)r->count, ep, tp_diag_state_name(r->state),
                         r->idle_min_ms / 1000.0, r->idle_max_ms / 1000.0, r->idle_avg_ms / 1000.0);
                snprintf(f->remedy, sizeof f->remedy,
                         "set the pool's idle_timeout below %.1f s (say %.1f s) so the pool "
                         "closes idle connections before the other side drops them, or "
                         "TCP keepalive shorter than that to keep the middlebox's state",
                         r->idle_min_ms / 1000.0, r->idle_min_ms * 0.8 / 1000.0);
            } else {
                snprintf(f->diagnosis, sizeof f->diagnosis,
                         "%llu connections to %s were reset by the peer in %s%s: the "
                         "server aborts connections (a close with SO_LINGER 0, a crash or "
                         "restart, an overload shedding connections)",
                         (unsigned long long)r->count, ep, tp_diag_state_name(r->state),
                         r->idle_samples ? " while in use or shortly after" : "");
                snprintf(f->remedy, sizeof f->remedy,
                         "check the server's logs and restarts; the pool retries idempotent "
                         "requests on a fresh connection, other requests surface "
                         "TP_ECONNRESET to the caller");
            }
        }
    }
    return true;
}

static bool closes_rules(tp_ktrace *t)
{
    char ep[TP_DIAG_ENDPOINT_STRLEN], pr[48];
    double dur = t->sum.duration_s > 0 ? t->sum.duration_s : 1;
    for (size_t i = 0; i < t->ncloses; i++) {
        const tp_ktrace_closes *c = &t->closes[i];
        if (c->inbound)
            continue;
        tp_diag_endpoint_format(&c->dest, ep, sizeof ep);
        if (c->active >= TP_KTRACE_CHURN_COUNT) {
            double rate = (double)c->active / dur;
            tp_diag_finding *f =
                add(t, rate >= TP_KTRACE_CHURN_WARN_RATE ? TP_DIAG_WARNING : TP_DIAG_INFO, "churn",
                    &c->dest);
            if (f == NULL)
                return false;
            snprintf(f->diagnosis, sizeof f->diagnosis,
                     "%s closed %llu connections to %s first in %.1f s (%.1f/s; %llu became "
                     "TIME_WAIT entries, each holding a local port for 60 s): connection "
                     "churn, a new connection per request or so",
                     who(&c->process, pr, sizeof pr), (unsigned long long)c->active, ep, dur, rate,
                     (unsigned long long)c->time_wait);
            snprintf(f->remedy, sizeof f->remedy,
                     "keep connections pooled: max_idle_per_key 0 closes every connection "
                     "at release, so raise it to the concurrency (or TP_FOLLOW_MAX_PER_KEY); "
                     "raise idle_timeout above the gap between requests; make sure "
                     "responses are read to the end so connections can be reused");
        }
        if (c->peer > 0 && c->idle_samples > 0 && c->idle_min_ms >= TP_KTRACE_IDLE_TIMEOUT_MIN_MS) {
            tp_diag_finding *f = add(t, TP_DIAG_INFO, "peer_idle_close", &c->dest);
            if (f == NULL)
                return false;
            snprintf(f->diagnosis, sizeof f->diagnosis,
                     "the server closed %llu idle connections of %s to %s after %.1f-%.1f s "
                     "without data: its keep-alive timeout is about %.1f s",
                     (unsigned long long)c->peer, who(&c->process, pr, sizeof pr), ep,
                     c->idle_min_ms / 1000.0, c->idle_max_ms / 1000.0, c->idle_min_ms / 1000.0);
            snprintf(f->remedy, sizeof f->remedy,
                     "keep the pool's idle_timeout below %.1f s (say %.1f s) so that the pool "
                     "closes first and never hands out a connection the server is closing",
                     c->idle_min_ms / 1000.0, c->idle_min_ms * 0.8 / 1000.0);
        }
    }
    return true;
}

static bool errors_rules(tp_ktrace *t)
{
    char ep[TP_DIAG_ENDPOINT_STRLEN], pr[48];
    for (size_t i = 0; i < t->nerrors; i++) {
        const tp_ktrace_error *x = &t->errors[i];
        if (!x->connect)
            continue;
        tp_diag_endpoint_format(&x->dest, ep, sizeof ep);
        bool refused = strcmp(x->name, "ECONNREFUSED") == 0;
        tp_diag_finding *f =
            add(t, TP_DIAG_WARNING, refused ? "connect_refused" : "connect_failed", &x->dest);
        if (f == NULL)
            return false;
        if (refused) {
            snprintf(f->diagnosis, sizeof f->diagnosis,
                     "%llu connects of %s to %s were refused (ECONNREFUSED): nothing listens "
                     "there, or the server's accept queue overflowed with "
                     "tcp_abort_on_overflow",
                     (unsigned long long)x->count, who(&x->process, pr, sizeof pr), ep);
            snprintf(f->remedy, sizeof f->remedy,
                     "check the address, the port and that the server runs; let the pool's "
                     "breaker open on refusals instead of retrying at full rate");
        } else {
            snprintf(f->diagnosis, sizeof f->diagnosis,
                     "%llu connects of %s to %s failed with %s%s", (unsigned long long)x->count,
                     who(&x->process, pr, sizeof pr), ep, x->name,
                     strcmp(x->name, "ETIMEDOUT") == 0
                         ? ": SYNs went unanswered (a firewall drops them, or the "
                           "server's SYN queue is full)"
                         : "");
            snprintf(f->remedy, sizeof f->remedy,
                     "check the route and firewalls to %s; keep the connect timeout short so "
                     "that a lost SYN costs a retry, not a request",
                     ep);
        }
    }
    return true;
}

static bool retrans_rules(tp_ktrace *t)
{
    char ep[TP_DIAG_ENDPOINT_STRLEN], lp[TP_DIAG_ENDPOINT_STRLEN];
    for (size_t i = 0; i < t->nretrans; i++) {
        const tp_ktrace_retrans *r = &t->retrans[i].pub;
        if (r->max_burst < TP_KTRACE_RETRANS_BURST)
            continue;
        tp_diag_finding *f = add(t, TP_DIAG_WARNING, "retrans_burst", &r->dest);
        if (f == NULL)
            return false;
        snprintf(f->diagnosis, sizeof f->diagnosis,
                 "the connection %s -> %s retransmitted %llu times, %u within one second: "
                 "loss on the path or a peer that stopped reading",
                 tp_diag_endpoint_format(&r->local, lp, sizeof lp),
                 tp_diag_endpoint_format(&r->dest, ep, sizeof ep), (unsigned long long)r->count,
                 r->max_burst);
        snprintf(f->remedy, sizeof f->remedy,
                 "look at the path's loss (tidepool doctor shows retransmissions per "
                 "destination); set tcp_user_timeout (tp_http_options) so that a dead peer "
                 "fails a request in seconds, not after 15 minutes of backoff");
    }
    return true;
}

static int cmp_findings(const void *a, const void *b)
{
    const tp_diag_finding *x = a, *y = b;
    return (int)y->severity - (int)x->severity;
}

tp_err tp__ktrace_findings(tp_ktrace *t)
{
    t->nfindings = 0;
    if (!resets_rules(t) || !closes_rules(t) || !errors_rules(t) || !retrans_rules(t))
        return TP_ENOMEM;
    if (t->sum.lost > 0) {
        tp_diag_finding *f = add(t, TP_DIAG_WARNING, "events_lost", NULL);
        if (f == NULL)
            return TP_ENOMEM;
        snprintf(f->diagnosis, sizeof f->diagnosis,
                 "the ring buffer had no room for %llu events: every count above is a lower "
                 "bound",
                 (unsigned long long)t->sum.lost);
        snprintf(f->remedy, sizeof f->remedy,
                 "trace with a larger ring (tp_ktrace_options.ring_bytes, doctor --ring) or "
                 "for less time");
    }
    if (t->sum.missed > 0) {
        tp_diag_finding *f = add(t, TP_DIAG_WARNING, "events_missed", NULL);
        if (f == NULL)
            return TP_ENOMEM;
        snprintf(f->diagnosis, sizeof f->diagnosis,
                 "the kernel skipped the trace's program %llu times (it was already running "
                 "on that CPU when a segment arrived): every count above is a lower bound",
                 (unsigned long long)t->sum.missed);
        snprintf(f->remedy, sizeof f->remedy,
                 "trace again; if it persists, trace a quieter moment or one process (--pid)");
    }
    if (t->nfindings > 1)
        qsort(t->findings, t->nfindings, sizeof *t->findings, cmp_findings);
    return TP_OK;
}
