/* render_text.c: a report for people: what was read and the host's port settings, a
 * table with one line per destination (worst first), then the findings, each with its
 * remedy on the next line. */
#include <stdio.h>
#include <string.h>

#include "diag_internal.h"

static const char *reuse_meaning(int v)
{
    switch (v) {
    case 0:
        return "off";
    case 1:
        return "on";
    case 2:
        return "loopback only";
    default:
        return "unknown";
    }
}

static void header(tp__buf *b, const tp_diag_report *r)
{
    const tp_diag_host *h = &r->host;
    tp__buf_printf(b,
                        "tidepool doctor: %u TCP sockets via %s (%u listening, %u inbound, %u "
                        "TIME_WAIT), %u destinations",
                        h->sockets, h->source == TP_DIAG_SOURCE_NETLINK ? "netlink" : "/proc",
                        h->listeners, h->inbound, h->timewait, h->dests);
    if (h->pid != 0)
        tp__buf_printf(b, " of pid %d", h->pid);
    tp__buf_printf(b,
                        "\nports %u-%u (%u usable), tcp_tw_reuse=%d (%s, after %d ms), "
                        "tcp_fin_timeout=%d s, TIME_WAIT lasts %d s\n",
                        h->port_lo, h->port_hi, h->port_range, h->tw_reuse,
                        reuse_meaning(h->tw_reuse), h->tw_reuse_delay_ms, h->fin_timeout_s,
                        TP_DIAG_TIME_WAIT_S);
    if (h->interval_s > 0)
        tp__buf_printf(b, "close rates: TIME_WAIT arrivals over the last %.1f s\n",
                            h->interval_s);
    else
        tp__buf_printf(b, "close rates: estimated from TIME_WAIT ages (last %d s)\n",
                            TP_DIAG_RATE_WINDOW_S);
    if (h->pid != 0)
        tp__buf_printf(b,
                            "pid %d: TIME_WAIT entries have no owner; they are counted towards "
                            "destinations where pid %d holds sockets%s\n",
                            h->pid, h->pid,
                            h->interval_s > 0 ? " (now or in an earlier sample)"
                                              : " now (sample twice to catch short connections)");
    if (h->note[0] != '\0')
        tp__buf_printf(b, "note: %s\n", h->note);
}

static void fmt_rate(char *buf, size_t size, double rate)
{
    if (rate < 0)
        snprintf(buf, size, "-");
    else
        snprintf(buf, size, "%.1f", rate);
}

static void fmt_exhaustion(char *buf, size_t size, const tp_diag_dest *d)
{
    if (d->close_rate < 0)
        snprintf(buf, size, "-");
    else if (d->exhaustion_s == TP_DIAG_NEVER)
        snprintf(buf, size, "never");
    else if (d->exhaustion_s <= 0)
        snprintf(buf, size, "NOW");
    else if (d->exhaustion_s < 120)
        snprintf(buf, size, "%.0f s", d->exhaustion_s);
    else
        snprintf(buf, size, "%.1f min", d->exhaustion_s / 60);
}

static void fmt_rtt(char *buf, size_t size, const tp_diag_dest *d)
{
    if (d->rtt_samples == 0)
        snprintf(buf, size, "-");
    else
        snprintf(buf, size, "%.3f/%.3f", d->rtt_avg_us / 1000.0, d->rtt_max_us / 1000.0);
}

static void table(tp__buf *b, const tp_diag_report *r, size_t shown)
{
    int w = 11;
    char ep[TP_DIAG_ENDPOINT_STRLEN];
    for (size_t i = 0; i < shown; i++) {
        int l = (int)strlen(tp_diag_endpoint_format(&r->dests[i].remote, ep, sizeof ep));
        if (l > w)
            w = l;
    }
    tp__buf_printf(b, "\n%-*s %6s %6s %9s %10s %8s %8s %5s %15s %8s %14s %8s %8s %10s\n", w,
                        "DESTINATION", "SOCKS", "ESTAB", "TIME_WAIT", "CLOSE_WAIT", "SYN_SENT",
                        "FIN_WAIT", "OTHER", "RTT avg/max ms", "RETRANS", "PORTS USED", "HEADROOM",
                        "CLOSES/s", "EXHAUSTION");
    for (size_t i = 0; i < shown; i++) {
        const tp_diag_dest *d = &r->dests[i];
        const uint32_t *s = d->states;
        uint32_t fin = s[TP_DIAG_FIN_WAIT1] + s[TP_DIAG_FIN_WAIT2];
        uint32_t other = d->sockets - s[TP_DIAG_ESTABLISHED] - s[TP_DIAG_TIME_WAIT] -
                         s[TP_DIAG_CLOSE_WAIT] - s[TP_DIAG_SYN_SENT] - fin;
        char rtt[32], used[32], rate[24], exh[24];
        fmt_rtt(rtt, sizeof rtt, d);
        snprintf(used, sizeof used, "%u (%.1f%%)", d->ports_used, d->ports_used_pct);
        fmt_rate(rate, sizeof rate, d->close_rate);
        fmt_exhaustion(exh, sizeof exh, d);
        tp__buf_printf(
            b, "%-*s %6u %6u %9u %10u %8u %8u %5u %15s %8llu %14s %8lld %8s %10s\n", w,
            tp_diag_endpoint_format(&d->remote, ep, sizeof ep), d->sockets, s[TP_DIAG_ESTABLISHED],
            s[TP_DIAG_TIME_WAIT], s[TP_DIAG_CLOSE_WAIT], s[TP_DIAG_SYN_SENT], fin, other, rtt,
            (unsigned long long)d->total_retrans, used, (long long)d->headroom, rate, exh);
    }
    if (shown < r->ndests)
        tp__buf_printf(b, "... and %zu more destinations (--top)\n", r->ndests - shown);
}

static void sidecars(tp__buf *b, const tp_diag_report *r)
{
    if (r->nsidecars == 0)
        return;
    char d[TP_DIAG_ENDPOINT_STRLEN], p[TP_DIAG_ENDPOINT_STRLEN], o[TP_DIAG_ENDPOINT_STRLEN];
    tp__buf_printf(b, "\nproxies in the path:\n");
    for (size_t i = 0; i < r->nsidecars; i++) {
        const tp_diag_sidecar *c = &r->sidecars[i];
        tp__buf_printf(b, "  %u connections of %s[%d] to %s -> %s %s[%d]%s%s%s%s\n",
                       c->connections, c->client_pid ? c->client_comm : "?", c->client_pid,
                       tp_diag_endpoint_format(&c->dialed, d, sizeof d),
                       tp_diag_endpoint_format(&c->proxy, p, sizeof p),
                       c->proxy_pid ? c->proxy_comm : "?", c->proxy_pid,
                       c->product ? " (" : "", c->product ? c->product : "", c->product ? ")" : "",
                       c->redirected ? ", redirected" : "");
        if (c->original_dst.family != 0)
            tp__buf_printf(b, "    SO_ORIGINAL_DST %s\n",
                           tp_diag_endpoint_format(&c->original_dst, o, sizeof o));
    }
}

/* Every warning and critical finding; info findings (churn that endangers nothing yet)
 * only up to `top` (0: all), so that a host full of small TIME_WAIT piles stays
 * readable. The JSON keeps them all. */
static void findings(tp__buf *b, const tp_diag_report *r, size_t top)
{
    if (r->nfindings == 0) {
        tp__buf_printf(b, "\nno findings.\n");
        return;
    }
    tp__buf_printf(b, "\nfindings:\n");
    size_t infos = 0, hidden = 0;
    for (size_t i = 0; i < r->nfindings; i++) {
        const tp_diag_finding *f = &r->findings[i];
        if (f->severity == TP_DIAG_INFO && top != 0 && infos++ >= top) {
            hidden++;
            continue;
        }
        tp__buf_printf(b, "  %-8s %s\n           remedy: %s\n",
                            tp_diag_severity_name((int)f->severity), f->diagnosis, f->remedy);
    }
    if (hidden > 0)
        tp__buf_printf(b, "  ... and %zu more info findings (--top 0 shows all)\n", hidden);
}

tp_err tp_diag_report_text(const tp_diag_report *r, size_t top, char **out, size_t *len)
{
    if (r == NULL || out == NULL)
        return TP_EINVAL;
    *out = NULL;
    size_t shown = top == 0 || top > r->ndests ? r->ndests : top;
    tp__buf b = {0};
    header(&b, r);
    if (r->ndests == 0)
        tp__buf_printf(&b, "\nno outgoing TCP connections%s.\n",
                            r->opts.dest.family != 0 ? " towards that destination" : "");
    else
        table(&b, r, shown);
    sidecars(&b, r);
    findings(&b, r, top);
    return tp__buf_finish(&b, out, len);
}
