/* render_json.c: a report as one JSON document, the machine-readable output of
 * `tidepool doctor --json`. Unknown values are null (never NaN); rates are per second,
 * times in seconds, RTTs in microseconds. The "schema" member names the layout's
 * version so consumers can detect a change. */
#include <math.h>
#include <stdio.h>

#include "diag_internal.h"

/* A double, or null when unknown (negative where negatives mean "unknown", or not
 * finite). */
static void num_or_null(tp__buf *b, double v, bool known)
{
    if (known && isfinite(v))
        tp__buf_printf(b, "%.3f", v);
    else
        tp__buf_printf(b, "null");
}

static void int_or_null(tp__buf *b, long long v)
{
    if (v < 0)
        tp__buf_printf(b, "null");
    else
        tp__buf_printf(b, "%lld", v);
}

static void endpoint(tp__buf *b, const tp_diag_endpoint *e)
{
    char ep[TP_DIAG_ENDPOINT_STRLEN];
    tp__buf_json_str(b, tp_diag_endpoint_format(e, ep, sizeof ep));
}

static void host_json(tp__buf *b, const tp_diag_host *h)
{
    tp__buf_printf(b,
                        "\"host\":{\"port_range\":{\"lo\":%u,\"hi\":%u,\"reserved\":%u,"
                        "\"ports\":%u},\"tcp_tw_reuse\":",
                        h->port_lo, h->port_hi, h->port_reserved, h->port_range);
    int_or_null(b, h->tw_reuse);
    tp__buf_printf(b, ",\"tcp_tw_reuse_delay_ms\":");
    int_or_null(b, h->tw_reuse_delay_ms);
    tp__buf_printf(b, ",\"tcp_fin_timeout_s\":");
    int_or_null(b, h->fin_timeout_s);
    tp__buf_printf(b, ",\"tcp_max_tw_buckets\":");
    int_or_null(b, h->max_tw_buckets);
    tp__buf_printf(b, ",\"time_wait_s\":%d},", TP_DIAG_TIME_WAIT_S);
    tp__buf_printf(b,
                        "\"totals\":{\"sockets\":%u,\"listeners\":%u,\"inbound\":%u,"
                        "\"time_wait\":%u,\"destinations\":%u},",
                        h->sockets, h->listeners, h->inbound, h->timewait, h->dests);
}

static void dest_json(tp__buf *b, const tp_diag_dest *d)
{
    tp__buf_printf(b, "{\"dest\":");
    endpoint(b, &d->remote);
    tp__buf_printf(b, ",\"sockets\":%u,\"states\":{", d->sockets);
    const char *sep = "";
    for (int s = 1; s < TP_DIAG_NSTATES; s++) {
        if (d->states[s] == 0)
            continue;
        tp__buf_printf(b, "%s\"%s\":%u", sep, tp_diag_state_name(s), d->states[s]);
        sep = ",";
    }
    tp__buf_printf(b, "},\"rtt_us\":{\"samples\":%u,\"avg\":", d->rtt_samples);
    num_or_null(b, d->rtt_avg_us, d->rtt_samples > 0);
    tp__buf_printf(b, ",\"max\":");
    int_or_null(b, d->rtt_samples > 0 ? (long long)d->rtt_max_us : -1);
    tp__buf_printf(b, ",\"rttvar_avg\":");
    num_or_null(b, d->rttvar_avg_us, d->rtt_samples > 0);
    tp__buf_printf(b,
                        "},\"retrans\":{\"total\":%llu,\"segs_out\":%llu,\"in_backoff\":%u},"
                        "\"unacked\":%u,",
                        (unsigned long long)d->total_retrans, (unsigned long long)d->segs_out,
                        d->in_backoff, d->unacked);
    tp__buf_printf(b,
                        "\"ports\":{\"used\":%u,\"open\":%u,\"time_wait\":%u,\"headroom\":%lld,"
                        "\"used_pct\":%.3f},",
                        d->ports_used, d->ports_open, d->ports_timewait, (long long)d->headroom,
                        d->ports_used_pct);
    tp__buf_printf(
        b, "\"tw_reuse_applies\":%s,\"time_wait_hold_s\":", d->tw_reuse_applies ? "true" : "false");
    num_or_null(b, d->tw_hold_s, true);
    tp__buf_printf(b, ",\"time_wait_arrivals\":%u,\"close_rate_per_s\":", d->tw_arrivals);
    num_or_null(b, d->close_rate, d->close_rate >= 0);
    tp__buf_printf(b, ",\"close_rate_sampled\":%s,\"critical_close_rate_per_s\":",
                        d->close_rate_sampled ? "true" : "false");
    num_or_null(b, d->critical_rate, d->critical_rate >= 0);
    tp__buf_printf(b, ",\"exhaustion_s\":");
    num_or_null(b, d->exhaustion_s, d->exhaustion_s >= 0);
    tp__buf_printf(b, ",\"severity\":");
    if (d->severity >= 0)
        tp__buf_json_str(b, tp_diag_severity_name(d->severity));
    else
        tp__buf_printf(b, "null");
    tp__buf_printf(b, "}");
}

void tp__diag_finding_json(tp__buf *b, const tp_diag_finding *f)
{
    tp__buf_printf(b, "{\"severity\":");
    tp__buf_json_str(b, tp_diag_severity_name((int)f->severity));
    tp__buf_printf(b, ",\"kind\":");
    tp__buf_json_str(b, f->kind);
    tp__buf_printf(b, ",\"dest\":");
    if (f->has_dest)
        endpoint(b, &f->dest);
    else
        tp__buf_printf(b, "null");
    tp__buf_printf(b, ",\"diagnosis\":");
    tp__buf_json_str(b, f->diagnosis);
    tp__buf_printf(b, ",\"remedy\":");
    tp__buf_json_str(b, f->remedy);
    tp__buf_printf(b, "}");
}

static void sidecar_json(tp__buf *b, const tp_diag_sidecar *c)
{
    tp__buf_printf(b, "{\"client\":");
    if (c->client_pid != 0) {
        tp__buf_printf(b, "{\"pid\":%d,\"comm\":", c->client_pid);
        tp__buf_json_str(b, c->client_comm);
        tp__buf_printf(b, "}");
    } else {
        tp__buf_printf(b, "null");
    }
    tp__buf_printf(b, ",\"dialed\":");
    endpoint(b, &c->dialed);
    tp__buf_printf(b, ",\"proxy\":");
    endpoint(b, &c->proxy);
    tp__buf_printf(b, ",\"proxy_process\":");
    if (c->proxy_pid != 0) {
        tp__buf_printf(b, "{\"pid\":%d,\"comm\":", c->proxy_pid);
        tp__buf_json_str(b, c->proxy_comm);
        tp__buf_printf(b, "}");
    } else {
        tp__buf_printf(b, "null");
    }
    tp__buf_printf(b, ",\"original_dst\":");
    if (c->original_dst.family != 0)
        endpoint(b, &c->original_dst);
    else
        tp__buf_printf(b, "null");
    tp__buf_printf(b, ",\"redirected\":%s,\"sidecar_port\":%s,\"product\":",
                   c->redirected ? "true" : "false", c->sidecar_port ? "true" : "false");
    if (c->product != NULL)
        tp__buf_json_str(b, c->product);
    else
        tp__buf_printf(b, "null");
    tp__buf_printf(b, ",\"connections\":%u}", c->connections);
}

tp_err tp_diag_report_json(const tp_diag_report *r, size_t top, char **out, size_t *len)
{
    if (r == NULL || out == NULL)
        return TP_EINVAL;
    *out = NULL;
    const tp_diag_host *h = &r->host;
    size_t shown = top == 0 || top > r->ndests ? r->ndests : top;
    tp__buf b = {0};
    tp__buf_printf(&b, "{\"schema\":\"tidepool.doctor/1\",\"source\":\"%s\",\"note\":",
                        h->source == TP_DIAG_SOURCE_NETLINK ? "netlink" : "procfs");
    if (h->note[0] != '\0')
        tp__buf_json_str(&b, h->note);
    else
        tp__buf_printf(&b, "null");
    tp__buf_printf(&b, ",\"pid\":");
    int_or_null(&b, h->pid > 0 ? h->pid : -1);
    tp__buf_printf(&b, ",\"interval_s\":");
    num_or_null(&b, h->interval_s, h->interval_s > 0);
    tp__buf_printf(&b, ",");
    host_json(&b, h);
    tp__buf_printf(&b, "\"destinations_shown\":%zu,\"destinations\":[", shown);
    for (size_t i = 0; i < shown; i++) {
        if (i > 0)
            tp__buf_printf(&b, ",");
        dest_json(&b, &r->dests[i]);
    }
    tp__buf_printf(&b, "],\"sidecars\":[");
    for (size_t i = 0; i < r->nsidecars; i++) {
        if (i > 0)
            tp__buf_printf(&b, ",");
        sidecar_json(&b, &r->sidecars[i]);
    }
    tp__buf_printf(&b, "],\"findings\":[");
    for (size_t i = 0; i < r->nfindings; i++) {
        if (i > 0)
            tp__buf_printf(&b, ",");
        tp__diag_finding_json(&b, &r->findings[i]);
    }
    tp__buf_printf(&b, "]}\n");
    return tp__buf_finish(&b, out, len);
}
