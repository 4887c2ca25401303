/* tables.c: each event, once attributed to a process and a destination, is counted into
 * one of four tables: resets (by direction, reason and state), closes (by process),
 * errors (by errno), retransmissions (by connection). The tables are small (one row per
 * distinct key, not per event), so rows are found by a linear scan. */
#include <stdlib.h>
#include <string.h>

#include "diag/diag_internal.h"
#include "ktrace_internal.h"

/* Grows *v (of *cap elements of size sz) to hold n + 1. */
static bool grow(void **v, size_t *cap, size_t n, size_t sz)
{
    if (n < *cap)
        return true;
    size_t ncap = *cap ? *cap * 2 : 16;
    void *nv = tp__realloc(*v, ncap * sz);
    if (nv == NULL)
        return false;
    memset((char *)nv + *cap * sz, 0, (ncap - *cap) * sz);
    *v = nv;
    *cap = ncap;
    return true;
}

static void who_add(tp__ktrace_who *w, const tp_ktrace_process *p)
{
    if (p->pid == 0)
        return;
    if (w->distinct == 0) {
        w->first = *p;
        w->distinct = 1;
    } else if (w->first.pid != p->pid) {
        w->distinct = 2;
    }
}

static void idle_add(uint64_t *samples, uint32_t *min, uint32_t *max, double *sum, uint32_t ms)
{
    if (*samples == 0 || ms < *min)
        *min = ms;
    if (*samples == 0 || ms > *max)
        *max = ms;
    *sum += ms;
    (*samples)++;
}

static bool process_context(const tp_ktrace *t, const struct tp_ktrace_event *e)
{
    switch (e->kind) {
    case TP_KTEV_ACTIVE_CLOSE:
    case TP_KTEV_PASSIVE_CLOSE:
        return true;
    case TP_KTEV_RST_SENT:
        return e->reason < t->nreasons && tp__ktrace_reason_process_context(t->reasons[e->reason]);
    default:
        return false;
    }
}

/* The task the kernel was running when the event fired. */
static tp_ktrace_process current_task(const struct tp_ktrace_event *e)
{
    tp_ktrace_process p = {.pid = (int)e->pid};
    memcpy(p.comm, e->comm, sizeof p.comm);
    p.comm[sizeof p.comm - 1] = '\0';
    return p;
}

/* Who the event belongs to: the current task where the kernel runs in the caller's
 * context; else who connected or closed first (the program's maps), else the owner in a
 * sock_diag sample; else unknown (for an accepted connection, tp__ktrace_event() then
 * asks its listener). */
static tp_ktrace_process attribute(const tp_ktrace *t, const struct tp_ktrace_event *e)
{
    if (process_context(t, e))
        return current_task(e);
    tp_ktrace_process p = {0};
    if (e->owner_pid != TP_KTEV_NO_PID) {
        p.pid = (int)e->owner_pid;
        memcpy(p.comm, e->owner_comm, sizeof p.comm);
    } else {
        const tp_ktrace_process *o = tp__ktrace_owner_of(t, e->cookie);
        if (o != NULL)
            p = *o;
    }
    p.comm[sizeof p.comm - 1] = '\0';
    return p;
}

static tp_err count_reset(tp_ktrace *t, const struct tp_ktrace_event *e,
                          const tp_diag_endpoint *dest, bool inbound, const tp_ktrace_process *p)
{
    bool sent = e->kind == TP_KTEV_RST_SENT;
    int reason = sent ? (int)e->reason : -1;
    int state = (e->flags & TP_KTEV_HAS_SOCKET) ? (int)e->state : 0;
    size_t i = 0;
    for (; i < t->nresets; i++) {
        const tp_ktrace_reset *r = &t->resets[i];
        if (r->sent == sent && r->reason == reason && r->state == state && r->inbound == inbound &&
            tp_diag_endpoint_equal(&r->dest, dest))
            break;
    }
    if (i == t->nresets) {
        if (!grow((void **)&t->resets, &t->capresets, t->nresets, sizeof *t->resets) ||
            !grow((void **)&t->reset_who, &t->capreset_who, t->nresets, sizeof *t->reset_who))
            return TP_ENOMEM;
        tp_ktrace_reset *r = &t->resets[t->nresets++];
        r->dest = *dest;
        r->inbound = inbound;
        r->sent = sent;
        r->reason = reason;
        r->state = state;
        if (sent) {
            r->reason_name = (size_t)reason < t->nreasons ? t->reasons[reason] : NULL;
            r->reason_text = tp_ktrace_reason_text(r->reason_name);
        } else {
            r->reason_text = "reset by the peer";
        }
    }
    tp_ktrace_reset *r = &t->resets[i];
    r->count++;
    who_add(&t->reset_who[i], p);
    if (!sent && (e->flags & TP_KTEV_HAS_IDLE))
        idle_add(&r->idle_samples, &r->idle_min_ms, &r->idle_max_ms, &r->idle_avg_ms, e->idle_ms);
    return TP_OK;
}

static tp_err count_close(tp_ktrace *t, const struct tp_ktrace_event *e,
                          const tp_diag_endpoint *dest, bool inbound, const tp_ktrace_process *p)
{
    size_t i = 0;
    for (; i < t->ncloses; i++) {
        const tp_ktrace_closes *c = &t->closes[i];
        if (c->process.pid == p->pid && c->inbound == inbound &&
            tp_diag_endpoint_equal(&c->dest, dest))
            break;
    }
    if (i == t->ncloses) {
        if (!grow((void **)&t->closes, &t->capcloses, t->ncloses, sizeof *t->closes))
            return TP_ENOMEM;
        tp_ktrace_closes *c = &t->closes[t->ncloses++];
        c->process = *p;
        c->dest = *dest;
        c->inbound = inbound;
    }
    tp_ktrace_closes *c = &t->closes[i];
    switch (e->kind) {
    case TP_KTEV_ACTIVE_CLOSE:
        c->active++;
        break;
    case TP_KTEV_TIME_WAIT:
        c->time_wait++;
        break;
    case TP_KTEV_PASSIVE_CLOSE:
        c->passive++;
        break;
    default: /* TP_KTEV_PEER_CLOSE */
        c->peer++;
        if (e->flags & TP_KTEV_HAS_IDLE)
            idle_add(&c->idle_samples, &c->idle_min_ms, &c->idle_max_ms, &c->idle_avg_ms,
                     e->idle_ms);
        break;
    }
    return TP_OK;
}

static tp_err count_error(tp_ktrace *t, const struct tp_ktrace_event *e,
                          const tp_diag_endpoint *dest, const tp_ktrace_process *p)
{
    bool connect = e->kind == TP_KTEV_CONNECT_FAILED;
    int err = (int)e->reason;
    size_t i = 0;
    for (; i < t->nerrors; i++) {
        const tp_ktrace_error *x = &t->errors[i];
        if (x->connect == connect && x->err == err && tp_diag_endpoint_equal(&x->dest, dest))
            break;
    }
    if (i == t->nerrors) {
        if (!grow((void **)&t->errors, &t->caperrors, t->nerrors, sizeof *t->errors) ||
            !grow((void **)&t->error_who, &t->caperror_who, t->nerrors, sizeof *t->error_who))
            return TP_ENOMEM;
        tp_ktrace_error *x = &t->errors[t->nerrors++];
        x->dest = *dest;
        x->connect = connect;
        x->err = err;
        x->name = tp__ktrace_errno_name(err);
    }
    t->errors[i].count++;
    who_add(&t->error_who[i], p);
    return TP_OK;
}

static tp_err count_retrans(tp_ktrace *t, const struct tp_ktrace_event *e,
                            const tp_diag_endpoint *local, const tp_diag_endpoint *dest,
                            const tp_ktrace_process *p)
{
    size_t i = 0;
    for (; i < t->nretrans; i++)
        if (t->retrans[i].pub.cookie == e->cookie)
            break;
    if (i == t->nretrans) {
        if (t->nretrans >= TP__KTRACE_RETRANS_MAX) {
            t->retrans_dropped++;
            return TP_OK;
        }
        if (!grow((void **)&t->retrans, &t->capretrans, t->nretrans, sizeof *t->retrans))
            return TP_ENOMEM;
        tp__ktrace_retrans *r = &t->retrans[t->nretrans++];
        r->pub.cookie = e->cookie;
        r->pub.local = *local;
        r->pub.dest = *dest;
    }
    tp__ktrace_retrans *r = &t->retrans[i];
    if (r->pub.process.pid == 0)
        r->pub.process = *p;
    r->pub.count++;
    r->pub.state = (int)e->state;
    /* The burst: how many of the kept timestamps lie within 1 s of this one. */
    int64_t now = (int64_t)e->ts_ns;
    r->ts[r->head] = now;
    r->head = (r->head + 1) % TP__KTRACE_BURST_RING;
    if (r->n < TP__KTRACE_BURST_RING)
        r->n++;
    uint32_t burst = 0;
    for (unsigned k = 0; k < r->n; k++)
        if (now - r->ts[k] < 1000000000LL)
            burst++;
    if (burst > r->pub.max_burst)
        r->pub.max_burst = burst;
    return TP_OK;
}

tp_err tp__ktrace_event(tp_ktrace *t, const struct tp_ktrace_event *e)
{
    tp_diag_endpoint local, remote;
    int family = e->family == 10 ? AF_INET6 : e->family == 2 ? AF_INET : 0;
    if (family == 0)
        return TP_OK; /* not an IP socket (or a segment we could not parse) */
    tp__diag_endpoint_set(&local, family, e->laddr, e->lport);
    tp__diag_endpoint_set(&remote, family, e->raddr, e->rport);
    if (e->kind == TP_KTEV_LISTEN) {
        tp_ktrace_process l = current_task(e); /* listen() runs in the caller's context */
        return tp__ktrace_add_listener(t, &local, e->cookie, &l);
    }
    if (e->rport == 0)
        return TP_OK; /* no peer: an error report after our own abort (SO_LINGER 0) */
    bool inbound = (e->flags & TP_KTEV_INBOUND) ||
                   (!(e->flags & TP_KTEV_OUTBOUND) && tp__ktrace_is_listener(t, &local));
    const tp_diag_endpoint *dest = inbound ? &local : &remote;
    tp_ktrace_process p = attribute(t, e);
    if (p.pid == 0 && inbound) {
        /* An accepted connection's event in softirq, on a socket too short-lived for a
         * sample: the process holding its listener (where that is one process) accepted
         * it. */
        const tp_ktrace_process *l = tp__ktrace_listener_owner(t, &local);
        if (l != NULL)
            p = *l;
    }
    if ((t->opts.pid != 0 && p.pid != t->opts.pid) ||
        (t->opts.dest.family != 0 && !tp_diag_endpoint_equal(&t->opts.dest, dest))) {
        t->sum.filtered++;
        return TP_OK;
    }
    switch (e->kind) {
    case TP_KTEV_RST_SENT:
    case TP_KTEV_RST_RECEIVED:
        return count_reset(t, e, dest, inbound, &p);
    case TP_KTEV_ACTIVE_CLOSE:
    case TP_KTEV_PASSIVE_CLOSE:
    case TP_KTEV_TIME_WAIT:
    case TP_KTEV_PEER_CLOSE:
        return count_close(t, e, dest, inbound, &p);
    case TP_KTEV_CONNECT_FAILED:
    case TP_KTEV_SOCKET_ERROR:
        return count_error(t, e, dest, &p);
    case TP_KTEV_RETRANSMIT:
        return count_retrans(t, e, &local, dest, &p);
    default:
        return TP_OK;
    }
}

static int cmp_resets(const void *a, const void *b)
{
    const tp_ktrace_reset *x = a, *y = b;
    if (x->count != y->count)
        return x->count > y->count ? -1 : 1;
    return tp__diag_endpoint_cmp(&x->dest, &y->dest);
}

static int cmp_closes(const void *a, const void *b)
{
    const tp_ktrace_closes *x = a, *y = b;
    uint64_t nx = x->active + x->passive + x->peer, ny = y->active + y->passive + y->peer;
    if (nx != ny)
        return nx > ny ? -1 : 1;
    return tp__diag_endpoint_cmp(&x->dest, &y->dest);
}

static int cmp_errors(const void *a, const void *b)
{
    const tp_ktrace_error *x = a, *y = b;
    if (x->count != y->count)
        return x->count > y->count ? -1 : 1;
    return tp__diag_endpoint_cmp(&x->dest, &y->dest);
}

static int cmp_retrans(const void *a, const void *b)
{
    const tp__ktrace_retrans *x = a, *y = b;
    if (x->pub.max_burst != y->pub.max_burst)
        return x->pub.max_burst > y->pub.max_burst ? -1 : 1;
    if (x->pub.count != y->pub.count)
        return x->pub.count > y->pub.count ? -1 : 1;
    return 0;
}

static void finish_who(tp_ktrace_process *p, uint32_t *distinct, const tp__ktrace_who *w)
{
    *distinct = w->distinct;
    if (w->distinct == 1)
        *p = w->first;
    else
        memset(p, 0, sizeof *p);
}

void tp__ktrace_tables_finish(tp_ktrace *t)
{
    for (size_t i = 0; i < t->nresets; i++) {
        tp_ktrace_reset *r = &t->resets[i];
        finish_who(&r->process, &r->processes, &t->reset_who[i]);
        r->idle_avg_ms = r->idle_samples ? r->idle_avg_ms / (double)r->idle_samples : 0;
    }
    for (size_t i = 0; i < t->ncloses; i++) {
        tp_ktrace_closes *c = &t->closes[i];
        c->idle_avg_ms = c->idle_samples ? c->idle_avg_ms / (double)c->idle_samples : 0;
    }
    for (size_t i = 0; i < t->nerrors; i++) {
        uint32_t distinct;
        finish_who(&t->errors[i].process, &distinct, &t->error_who[i]);
    }
    /* The who arrays are parallel to the rows: sorting ends their use. */
    if (t->nresets > 1)
        qsort(t->resets, t->nresets, sizeof *t->resets, cmp_resets);
    if (t->ncloses > 1)
        qsort(t->closes, t->ncloses, sizeof *t->closes, cmp_closes);
    if (t->nerrors > 1)
        qsort(t->errors, t->nerrors, sizeof *t->errors, cmp_errors);
    if (t->nretrans > 1)
        qsort(t->retrans, t->nretrans, sizeof *t->retrans, cmp_retrans);
}

void tp__ktrace_tables_free(tp_ktrace *t)
{
    tp__free(t->resets);
    tp__free(t->reset_who);
    tp__free(t->closes);
    tp__free(t->errors);
    tp__free(t->error_who);
    tp__free(t->retrans);
    tp__free(t->findings);
}
