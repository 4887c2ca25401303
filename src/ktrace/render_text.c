/* render_text.c: a trace for people: one line of totals, then resets (in words, with
 * the kernel's reason name), closes per process, failed connects and socket errors,
 * retransmission bursts, and the findings with their remedies. */
#include <stdio.h>
#include <string.h>

#include "ktrace_internal.h"

/* "curl[1234]", or a dash in the tables' process column. */
static const char *who(const tp_ktrace_process *p, char *buf, size_t size)
{
    return tp__ktrace_process_name(p, "-", buf, size);
}

static size_t shown(size_t n, size_t top)
{
    return top == 0 || top > n ? n : top;
}

static void more(tp__buf *b, size_t n, size_t top)
{
    if (shown(n, top) < n)
        tp__buf_printf(b, "  ... and %zu more (--top)\n", n - shown(n, top));
}

static void resets(tp__buf *b, const tp_ktrace *t, size_t top)
{
    if (t->nresets == 0) {
        tp__buf_printf(b, "\nno resets.\n");
        return;
    }
    char ep[TP_DIAG_ENDPOINT_STRLEN], pr[40];
    tp__buf_printf(b, "\nresets:\n");
    for (size_t i = 0; i < shown(t->nresets, top); i++) {
        const tp_ktrace_reset *r = &t->resets[i];
        tp__buf_printf(b, "  %-8s %6llu %s %s: ", r->sent ? "sent" : "received",
                       (unsigned long long)r->count,
                       r->inbound ? "on connections our listener accepted at"
                       : r->sent  ? "to"
                                  : "from",
                       tp_diag_endpoint_format(&r->dest, ep, sizeof ep));
        if (r->sent)
            tp__buf_printf(b, "%s (%s)", r->reason_text,
                           r->reason_name != NULL ? r->reason_name : "?");
        else
            tp__buf_printf(b, "reset by the peer");
        tp__buf_printf(b, ", in %s", r->state != 0 ? tp_diag_state_name(r->state) : "no socket");
        if (r->idle_samples > 0)
            tp__buf_printf(b, ", idle %u-%u ms (avg %.0f)", r->idle_min_ms, r->idle_max_ms,
                           r->idle_avg_ms);
        tp__buf_printf(b, ", by %s\n", who(&r->process, pr, sizeof pr));
    }
    more(b, t->nresets, top);
}

static void closes(tp__buf *b, const tp_ktrace *t, size_t top)
{
    if (t->ncloses == 0)
        return;
    char ep[TP_DIAG_ENDPOINT_STRLEN], pr[40];
    tp__buf_printf(b, "\ncloses (active: we sent the first FIN and keep the TIME_WAIT entry):\n");
    tp__buf_printf(b, "  %-24s %-28s %8s %9s %8s %8s %s\n", "PROCESS", "DESTINATION", "ACTIVE",
                   "TIME_WAIT", "PASSIVE", "BY PEER", "PEER IDLE ms min/avg/max");
    for (size_t i = 0; i < shown(t->ncloses, top); i++) {
        const tp_ktrace_closes *c = &t->closes[i];
        char dest[TP_DIAG_ENDPOINT_STRLEN + 16];
        snprintf(dest, sizeof dest, "%s%s", tp_diag_endpoint_format(&c->dest, ep, sizeof ep),
                 c->inbound ? " (in)" : "");
        tp__buf_printf(b, "  %-24s %-28s %8llu %9llu %8llu %8llu ", who(&c->process, pr, sizeof pr),
                       dest, (unsigned long long)c->active, (unsigned long long)c->time_wait,
                       (unsigned long long)c->passive, (unsigned long long)c->peer);
        if (c->idle_samples > 0)
            tp__buf_printf(b, "%u/%.0f/%u\n", c->idle_min_ms, c->idle_avg_ms, c->idle_max_ms);
        else
            tp__buf_printf(b, "-\n");
    }
    more(b, t->ncloses, top);
}

static void errors(tp__buf *b, const tp_ktrace *t, size_t top)
{
    if (t->nerrors == 0)
        return;
    char ep[TP_DIAG_ENDPOINT_STRLEN], pr[40];
    tp__buf_printf(b, "\nsocket errors:\n");
    for (size_t i = 0; i < shown(t->nerrors, top); i++) {
        const tp_ktrace_error *x = &t->errors[i];
        tp__buf_printf(b, "  %6llu %-12s %s %s, by %s\n", (unsigned long long)x->count, x->name,
                       x->connect ? "connecting to" : "on a connection to",
                       tp_diag_endpoint_format(&x->dest, ep, sizeof ep),
                       who(&x->process, pr, sizeof pr));
    }
    more(b, t->nerrors, top);
}

static void retrans(tp__buf *b, const tp_ktrace *t, size_t top)
{
    if (t->nretrans == 0)
        return;
    char ep[TP_DIAG_ENDPOINT_STRLEN], lp[TP_DIAG_ENDPOINT_STRLEN], pr[40];
    tp__buf_printf(b, "\nretransmissions (per connection):\n");
    for (size_t i = 0; i < shown(t->nretrans, top); i++) {
        const tp_ktrace_retrans *r = &t->retrans[i].pub;
        tp__buf_printf(
            b, "  %6llu (most in 1 s: %u) %s -> %s, by %s\n", (unsigned long long)r->count,
            r->max_burst, tp_diag_endpoint_format(&r->local, lp, sizeof lp),
            tp_diag_endpoint_format(&r->dest, ep, sizeof ep), who(&r->process, pr, sizeof pr));
    }
    more(b, t->nretrans, top);
    if (t->retrans_dropped > 0)
        tp__buf_printf(b, "  (%llu retransmissions of further connections not itemised)\n",
                       (unsigned long long)t->retrans_dropped);
}

tp_err tp_ktrace_text(const tp_ktrace *t, size_t top, char **out, size_t *len)
{
    if (t == NULL || out == NULL || !t->stopped)
        return TP_EINVAL;
    *out = NULL;
    tp__buf b = {0};
    tp__buf_printf(&b,
                   "\ntrace: %.1f s of kernel TCP events (eBPF): %llu events, %llu lost, %llu "
                   "missed, %llu outside the filters; owners joined from %llu sock_diag "
                   "samples\n",
                   t->sum.duration_s, (unsigned long long)t->sum.events,
                   (unsigned long long)t->sum.lost, (unsigned long long)t->sum.missed,
                   (unsigned long long)t->sum.filtered, (unsigned long long)t->sum.joins);
    resets(&b, t, top);
    closes(&b, t, top);
    errors(&b, t, top);
    retrans(&b, t, top);
    if (t->nfindings == 0) {
        tp__buf_printf(&b, "\nno trace findings.\n");
    } else {
        tp__buf_printf(&b, "\ntrace findings:\n");
        for (size_t i = 0; i < t->nfindings; i++) {
            const tp_diag_finding *f = &t->findings[i];
            tp__buf_printf(&b, "  %-8s %s\n           remedy: %s\n",
                           tp_diag_severity_name((int)f->severity), f->diagnosis, f->remedy);
        }
    }
    return tp__buf_finish(&b, out, len);
}
