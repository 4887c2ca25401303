/* recommend_print.c: how `tidepool recommend` shows its answer (see recommend.h): the
 * settings to copy into tp_pool_options, then the reasons, one per line; or one JSON
 * object for scripts. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "recommend.h"

/* A duration in seconds, in the unit that reads best ("unbounded" for INFINITY). */
static const char *dur(char *buf, size_t cap, double s)
{
    if (!isfinite(s))
        snprintf(buf, cap, "unbounded");
    else if (s < 1e-3 && s > 0)
        snprintf(buf, cap, "%.3g us", s * 1e6);
    else if (s < 1 && s > 0)
        snprintf(buf, cap, "%.3g ms", s * 1e3);
    else
        snprintf(buf, cap, "%.4g s", s);
    return buf;
}

/* s as a JSON string: quotes, backslashes and control bytes escaped. */
static void json_str(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            printf("\\%c", *s);
        else if ((unsigned char)*s < 0x20)
            printf("\\u%04x", (unsigned)*s);
        else
            putchar(*s);
    }
    putchar('"');
}

/* A JSON number, or null for what JSON cannot hold (INFINITY: unbounded waits). */
static void json_num(const char *key, double v)
{
    if (isfinite(v))
        printf("\"%s\":%.6g,", key, v);
    else
        printf("\"%s\":null,", key);
}

/* The "measure" member: the formula's inputs and answer beside Erlang C's. */
static void measure_json(const rec_measured *m, const tp_sizing_result *r)
{
    char ep[TP_DIAG_ENDPOINT_STRLEN];
    printf(",\"measure\":{\"destination\":");
    json_str(tp_diag_endpoint_format(&m->dest, ep, sizeof ep));
    printf(",\"destinations\":%d,\"sockets\":%u,\"rtt_samples\":%u,", m->destinations, m->sockets,
           m->rtt_samples);
    json_num("rtt_s", m->rtt_s);
    json_num("rttvar_s", m->rttvar_s);
    printf("\"retrans\":%llu,\"segs_out\":%llu,", (unsigned long long)m->retrans,
           (unsigned long long)m->segs_out);
    json_num("retrans_pct", m->retrans_pct);
    json_num("alpha", m->alpha);
    printf("\"port_range\":%lld,\"port_cap\":%lld,\"formula\":%lld,\"port_bound\":%s,"
           "\"erlang_c\":%lld,\"trust\":",
           (long long)m->port_range, (long long)m->port_cap, (long long)m->formula,
           m->port_bound ? "true" : "false", (long long)r->max_per_key);
    json_str(m->trust != NULL ? m->trust : "erlang_c");
    printf(",\"why\":[");
    json_str(m->why[0]);
    printf(",");
    json_str(m->why[1]);
    printf("]}");
}

void rec_print_json(const rec_cfg *c, const tp_sizing_result *r)
{
    static const struct {
        unsigned bit;
        const char *name;
    } flags[] = {{TP_SIZING_BOUND_PORTS, "bound_ports"},
                 {TP_SIZING_BOUND_SERVER, "bound_server"},
                 {TP_SIZING_TARGET_MISSED, "target_missed"},
                 {TP_SIZING_OVERLOADED, "overloaded"},
                 {TP_SIZING_PORTS_EXHAUSTED, "ports_exhausted"},
                 {TP_SIZING_KEEPALIVE_UNKNOWN, "keepalive_unknown"},
                 {TP_SIZING_KEEPALIVE_SHORT, "keepalive_short"}};
    printf("{");
    json_num("rate", c->in.rate);
    json_num("hold_s", c->in.hold_s);
    json_num("offered_load", r->offered_load);
    printf("\"max_per_key\":%lld,\"needed_per_key\":%lld,\"min_idle_per_key\":%lld,"
           "\"max_idle_per_key\":%lld,",
           (long long)r->max_per_key, (long long)r->needed_per_key, (long long)r->min_idle_per_key,
           (long long)r->max_idle_per_key);
    json_num("idle_timeout_s", (double)r->idle_timeout / 1e9);
    json_num("p_wait", r->p_wait);
    json_num("mean_wait_s", r->mean_wait_s);
    json_num("p99_wait_s", r->quantile_wait_s);
    json_num("utilisation", r->utilisation);
    printf("\"port_range\":%lld,\"port_cap\":%lld,", (long long)c->in.port_range,
           (long long)r->port_cap);
    json_num("close_rate", c->in.close_rate);
    json_num("keepalive_s", c->in.keepalive_s == TP_SIZING_UNSET ? NAN : c->in.keepalive_s);
    printf("\"flags\":[");
    const char *sep = "";
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++) {
        if (r->flags & flags[i].bit) {
            printf("%s\"%s\"", sep, flags[i].name);
            sep = ",";
        }
    }
    printf("],\"notes\":[");
    for (int i = 0; i < c->nnotes; i++) {
        fputs(i > 0 ? "," : "", stdout);
        json_str(c->notes[i]);
    }
    printf("],\"why\":[");
    for (int i = 0; i < r->nlines; i++) {
        fputs(i > 0 ? "," : "", stdout);
        json_str(r->line[i]);
    }
    printf("]");
    if (c->m.on)
        measure_json(&c->m, r);
    printf("}\n");
}

void rec_print_text(const rec_cfg *c, const tp_sizing_result *r)
{
    char d1[32], d2[32];
    printf("tidepool recommend: %.4g acquires/s x %s mean hold, per destination\n", c->in.rate,
           dur(d1, sizeof d1, c->in.hold_s));
    for (int i = 0; i < c->nnotes; i++)
        printf("  (%s)\n", c->notes[i]);
    printf("  max_per_key       %lld%s\n", (long long)r->max_per_key,
           (r->flags & TP_SIZING_TARGET_MISSED) ? "   (capped: see below)" : "");
    printf("  min_idle_per_key  %lld\n", (long long)r->min_idle_per_key);
    printf("  max_idle_per_key  %lld\n", (long long)r->max_idle_per_key);
    printf("  idle_timeout      %s\n", dur(d1, sizeof d1, (double)r->idle_timeout / 1e9));
    printf("  predicted         P(wait) %.3g %%, p99 wait %s\n", r->p_wait * 100,
           dur(d2, sizeof d2, r->quantile_wait_s));
    printf("why:\n");
    for (int i = 0; i < r->nlines; i++)
        printf("  - %s\n", r->line[i]);
    if (!c->m.on)
        return;
    const rec_measured *m = &c->m;
    char ep[TP_DIAG_ENDPOINT_STRLEN];
    printf("measured (--measure) towards %s: RTT %s over %u sockets, alpha = hold / RTT = %.4g\n",
           tp_diag_endpoint_format(&m->dest, ep, sizeof ep), dur(d1, sizeof d1, m->rtt_s),
           m->rtt_samples, m->alpha);
    printf("  formula   N = min(ceil(%.4g/s x %s x %.4g), %lld ports / %d destinations) = %lld\n",
           c->in.rate, dur(d2, sizeof d2, m->rtt_s), m->alpha, (long long)m->port_range,
           m->destinations, (long long)m->formula);
    printf("  Erlang C  max_per_key %lld (P(wait) target %.3g)\n", (long long)r->max_per_key,
           c->in.target_wait_prob);
    printf("  trust     %s: %s\n",
           m->trust != NULL && strcmp(m->trust, "formula") == 0 ? "the formula" : "Erlang C",
           m->why[0]);
    printf("            %s\n", m->why[1]);
}
