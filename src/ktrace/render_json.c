/* render_json.c: a trace as JSON, added to doctor's document: the top-level "resets"
 * array (the contract: destination, direction, the kernel's reason name, state,
 * count) and "trace" with the summary and the other tables. Every row is rendered;
 * unknown values are null. */
#include <stdio.h>
#include <string.h>

#include "diag/diag_internal.h"
#include "ktrace_internal.h"

static void endpoint(tp__buf *b, const tp_diag_endpoint *e)
{
    char ep[TP_DIAG_ENDPOINT_STRLEN];
    tp__buf_json_str(b, tp_diag_endpoint_format(e, ep, sizeof ep));
}

static void process(tp__buf *b, const tp_ktrace_process *p)
{
    if (p->pid == 0) {
        tp__buf_printf(b, "null");
        return;
    }
    tp__buf_printf(b, "{\"pid\":%d,\"comm\":", p->pid);
    tp__buf_json_str(b, p->comm);
    tp__buf_printf(b, "}");
}

static void idle(tp__buf *b, uint64_t samples, uint32_t min, double avg, uint32_t max)
{
    if (samples == 0)
        tp__buf_printf(b, "null");
    else
        tp__buf_printf(b, "{\"samples\":%llu,\"min\":%u,\"avg\":%.1f,\"max\":%u}",
                       (unsigned long long)samples, min, avg, max);
}

static void state(tp__buf *b, int s)
{
    if (s == 0)
        tp__buf_printf(b, "null");
    else
        tp__buf_json_str(b, tp_diag_state_name(s));
}

static void resets(tp__buf *b, const tp_ktrace *t)
{
    tp__buf_printf(b, "\"resets\":[");
    for (size_t i = 0; i < t->nresets; i++) {
        const tp_ktrace_reset *r = &t->resets[i];
        tp__buf_printf(b, "%s{\"destination\":", i ? "," : "");
        endpoint(b, &r->dest);
        tp__buf_printf(b, ",\"inbound\":%s,\"direction\":\"%s\",\"reason\":",
                       r->inbound ? "true" : "false", r->sent ? "sent" : "received");
        if (r->reason_name != NULL)
            tp__buf_json_str(b, r->reason_name);
        else
            tp__buf_printf(b, "null");
        tp__buf_printf(b, ",\"reason_code\":");
        if (r->reason >= 0)
            tp__buf_printf(b, "%d", r->reason);
        else
            tp__buf_printf(b, "null");
        tp__buf_printf(b, ",\"reason_text\":");
        tp__buf_json_str(b, r->reason_text);
        tp__buf_printf(b, ",\"state\":");
        state(b, r->state);
        tp__buf_printf(b, ",\"count\":%llu,\"process\":", (unsigned long long)r->count);
        process(b, &r->process);
        tp__buf_printf(b, ",\"processes\":%u,\"idle_ms\":", r->processes);
        idle(b, r->idle_samples, r->idle_min_ms, r->idle_avg_ms, r->idle_max_ms);
        tp__buf_printf(b, "}");
    }
    tp__buf_printf(b, "]");
}

static void closes(tp__buf *b, const tp_ktrace *t)
{
    tp__buf_printf(b, "\"closes\":[");
    for (size_t i = 0; i < t->ncloses; i++) {
        const tp_ktrace_closes *c = &t->closes[i];
        tp__buf_printf(b, "%s{\"process\":", i ? "," : "");
        process(b, &c->process);
        tp__buf_printf(b, ",\"destination\":");
        endpoint(b, &c->dest);
        tp__buf_printf(b,
                       ",\"inbound\":%s,\"active\":%llu,\"time_wait\":%llu,\"passive\":%llu,"
                       "\"by_peer\":%llu,\"peer_idle_ms\":",
                       c->inbound ? "true" : "false", (unsigned long long)c->active,
                       (unsigned long long)c->time_wait, (unsigned long long)c->passive,
                       (unsigned long long)c->peer);
        idle(b, c->idle_samples, c->idle_min_ms, c->idle_avg_ms, c->idle_max_ms);
        tp__buf_printf(b, "}");
    }
    tp__buf_printf(b, "]");
}

static void errors(tp__buf *b, const tp_ktrace *t)
{
    tp__buf_printf(b, "\"errors\":[");
    for (size_t i = 0; i < t->nerrors; i++) {
        const tp_ktrace_error *x = &t->errors[i];
        tp__buf_printf(b, "%s{\"destination\":", i ? "," : "");
        endpoint(b, &x->dest);
        tp__buf_printf(b, ",\"phase\":\"%s\",\"errno\":%d,\"error\":",
                       x->connect ? "connect" : "established", x->err);
        tp__buf_json_str(b, x->name);
        tp__buf_printf(b, ",\"count\":%llu,\"process\":", (unsigned long long)x->count);
        process(b, &x->process);
        tp__buf_printf(b, "}");
    }
    tp__buf_printf(b, "]");
}

static void retrans(tp__buf *b, const tp_ktrace *t)
{
    tp__buf_printf(b, "\"retransmissions\":[");
    for (size_t i = 0; i < t->nretrans; i++) {
        const tp_ktrace_retrans *r = &t->retrans[i].pub;
        tp__buf_printf(b, "%s{\"cookie\":%llu,\"local\":", i ? "," : "",
                       (unsigned long long)r->cookie);
        endpoint(b, &r->local);
        tp__buf_printf(b, ",\"destination\":");
        endpoint(b, &r->dest);
        tp__buf_printf(b, ",\"count\":%llu,\"max_burst_1s\":%u,\"state\":",
                       (unsigned long long)r->count, r->max_burst);
        state(b, r->state);
        tp__buf_printf(b, ",\"process\":");
        process(b, &r->process);
        tp__buf_printf(b, "}");
    }
    tp__buf_printf(b, "]");
}

static void findings(tp__buf *b, const tp_ktrace *t)
{
    tp__buf_printf(b, "\"findings\":[");
    for (size_t i = 0; i < t->nfindings; i++) {
        if (i > 0)
            tp__buf_printf(b, ",");
        tp__diag_finding_json(b, &t->findings[i]);
    }
    tp__buf_printf(b, "]");
}

tp_err tp_ktrace_json(const tp_ktrace *t, const tp_diag_report *r, char **out, size_t *len)
{
    if (t == NULL || out == NULL || !t->stopped)
        return TP_EINVAL;
    *out = NULL;
    tp__buf b = {0};
    char *diag = NULL;
    size_t dlen = 0;
    if (r != NULL) {
        tp_err rc = tp_diag_report_json(r, 0, &diag, &dlen);
        if (rc != TP_OK)
            return rc;
        /* diag's document is one object: reopen it before its last brace. */
        while (dlen > 0 && diag[dlen - 1] != '}')
            dlen--;
        if (dlen == 0) {
            tp_diag_free(diag);
            return TP_EINVAL;
        }
        tp__buf_put(&b, diag, dlen - 1);
        tp__buf_printf(&b, ",");
        tp_diag_free(diag);
    } else {
        tp__buf_printf(&b, "{\"schema\":\"tidepool.doctor/1\",");
    }
    const tp_ktrace_summary *s = &t->sum;
    tp__buf_printf(&b,
                   "\"trace\":{\"duration_s\":%.3f,\"events\":%llu,\"lost\":%llu,"
                   "\"missed\":%llu,\"filtered\":%llu,\"joins\":%llu,\"hz\":%u,\"pid\":",
                   s->duration_s, (unsigned long long)s->events, (unsigned long long)s->lost,
                   (unsigned long long)s->missed, (unsigned long long)s->filtered,
                   (unsigned long long)s->joins, s->hz);
    if (t->opts.pid > 0)
        tp__buf_printf(&b, "%d", t->opts.pid);
    else
        tp__buf_printf(&b, "null");
    tp__buf_printf(&b, ",");
    closes(&b, t);
    tp__buf_printf(&b, ",");
    errors(&b, t);
    tp__buf_printf(&b, ",");
    retrans(&b, t);
    tp__buf_printf(&b, ",");
    findings(&b, t);
    tp__buf_printf(&b, "},");
    resets(&b, t);
    tp__buf_printf(&b, "}\n");
    return tp__buf_finish(&b, out, len);
}
