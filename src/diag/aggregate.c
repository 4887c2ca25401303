/* aggregate.c: turns a raw socket dump into a report's sockets and destinations:
 * listeners are dropped after marking the sockets they accepted "inbound", the pid
 * filter selects sockets, sockets are sorted by (remote, local) so that a destination is
 * one run and each local address one sub-run of it, and each destination gets its state
 * counts, RTT and retransmissions (selected sockets), its port usage (every process:
 * ports are a host-wide resource), and its close rate. */
#include <stdlib.h>
#include <string.h>

#include "diag_internal.h"

static int cmp_sock(const void *a, const void *b)
{
    const tp_diag_socket *x = &((const tp__diag_sock *)a)->s;
    const tp_diag_socket *y = &((const tp__diag_sock *)b)->s;
    int c = tp__diag_endpoint_cmp(&x->remote, &y->remote);
    return c != 0 ? c : tp__diag_endpoint_cmp(&x->local, &y->local);
}

static int cmp_port(const void *a, const void *b)
{
    uint16_t x = ((const tp_diag_endpoint *)a)->port, y = ((const tp_diag_endpoint *)b)->port;
    return x < y ? -1 : x > y;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* The end of the run of sockets towards v[b]'s remote (v sorted by cmp_sock). */
static size_t run_end(const tp__diag_sock *v, size_t n, size_t b)
{
    size_t e = b + 1;
    while (e < n && tp__diag_endpoint_cmp(&v[e].s.remote, &v[b].s.remote) == 0)
        e++;
    return e;
}

/* True if a listener on s's local port and address exists (listeners sorted by port). */
static bool accepted_locally(const tp_diag_endpoint *ls, size_t nls, const tp_diag_socket *s)
{
    size_t lo = 0, hi = nls;
    while (lo < hi) { /* the first listener with port >= s->local.port */
        size_t mid = lo + (hi - lo) / 2;
        if (ls[mid].port < s->local.port)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (; lo < nls && ls[lo].port == s->local.port; lo++)
        if (tp__diag_addr_matches(&ls[lo], &s->local))
            return true;
    return false;
}

/* Drops listeners from all, counting them, and marks the sockets they accepted. A
 * socket accepted by a listener that has since closed looks outgoing: acceptable, the
 * doctor is about live services. */
static tp_err split_listeners(tp__diag_vec *all, uint32_t *nlisteners)
{
    size_t n = 0;
    for (size_t i = 0; i < all->n; i++)
        n += all->v[i].s.state == TP_DIAG_LISTEN;
    *nlisteners = (uint32_t)n;
    if (n == 0)
        return TP_OK;
    tp_diag_endpoint *ls = tp__malloc(n * sizeof *ls);
    if (ls == NULL)
        return TP_ENOMEM;
    size_t k = 0, w = 0;
    for (size_t i = 0; i < all->n; i++) {
        if (all->v[i].s.state == TP_DIAG_LISTEN)
            ls[k++] = all->v[i].s.local;
        else
            all->v[w++] = all->v[i];
    }
    all->n = w;
    qsort(ls, n, sizeof *ls, cmp_port);
    for (size_t i = 0; i < all->n; i++)
        all->v[i].s.inbound = accepted_locally(ls, n, &all->v[i].s);
    tp__free(ls);
    return TP_OK;
}

/* Neither /proc/net/tcp (read a page at a time) nor a netlink dump (resumed bucket by
 * bucket) is an atomic snapshot: under churn a socket can be listed twice. Two live
 * sockets never share a 4-tuple, so after sorting equal neighbours are one socket. */
static void dedupe(tp_diag_report *r)
{
    tp__diag_sock *v = r->socks;
    size_t w = 0;
    for (size_t i = 0; i < r->nsocks; i++) {
        if (w > 0 && v[i].s.remote.port != 0 && cmp_sock(&v[w - 1], &v[i]) == 0) {
            r->host.sockets--;
            r->host.inbound -= v[i].s.inbound;
            r->host.timewait -= v[i].s.state == TP_DIAG_TIME_WAIT;
            continue;
        }
        v[w++] = v[i];
    }
    r->nsocks = w;
}

static int cmp_endpoint(const void *a, const void *b)
{
    return tp__diag_endpoint_cmp(a, b);
}

/* True if the run [b, e) holds a socket of the pid (an inode of its own). */
static bool run_owned(const tp__diag_sock *v, size_t b, size_t e)
{
    for (size_t i = b; i < e; i++)
        if (v[i].s.owned && v[i].s.inode != 0)
            return true;
    return false;
}

/* r->pid_remotes: the remotes of the runs the pid owns sockets in, plus prev's (the
 * set only grows over a --watch, so a process that churns through short connections
 * keeps its TIME_WAIT entries even in a sample where none is open). */
static tp_err pid_remotes(tp_diag_report *r, const tp_diag_report *prev)
{
    const tp__diag_sock *v = r->socks;
    size_t carried = prev != NULL && prev->opts.pid == r->opts.pid ? prev->npid_remotes : 0;
    size_t n = carried;
    for (size_t b = 0, e; b < r->nsocks; b = e) {
        e = run_end(v, r->nsocks, b);
        n += run_owned(v, b, e);
    }
    if (n == 0)
        return TP_OK;
    tp_diag_endpoint *set = tp__malloc(n * sizeof *set);
    if (set == NULL)
        return TP_ENOMEM;
    size_t k = 0;
    for (size_t i = 0; i < carried; i++)
        set[k++] = prev->pid_remotes[i];
    for (size_t b = 0, e; b < r->nsocks; b = e) {
        e = run_end(v, r->nsocks, b);
        if (run_owned(v, b, e))
            set[k++] = v[b].s.remote;
    }
    qsort(set, k, sizeof *set, cmp_endpoint);
    size_t w = 0;
    for (size_t i = 0; i < k; i++)
        if (w == 0 || tp__diag_endpoint_cmp(&set[w - 1], &set[i]) != 0)
            set[w++] = set[i];
    r->pid_remotes = set;
    r->npid_remotes = w;
    return TP_OK;
}

/* Marks the selected sockets in one destination run [b, e). */
static void select_run(const tp_diag_report *r, tp__diag_sock *v, size_t b, size_t e)
{
    const tp_diag_options *o = &r->opts;
    bool known = o->pid != 0 && o->pid_include_orphans && r->npid_remotes > 0 &&
                 bsearch(&v[b].s.remote, r->pid_remotes, r->npid_remotes, sizeof *r->pid_remotes,
                         cmp_endpoint) != NULL;
    for (size_t i = b; i < e; i++) {
        const tp_diag_socket *s = &v[i].s;
        bool sel = !s->inbound || o->include_inbound;
        if (o->pid != 0)
            sel = sel && (s->owned || (known && s->inode == 0));
        v[i].selected = sel;
    }
}

/* Port usage of a destination run: for each local address (a sub-run), the outgoing
 * sockets hold one local port each; the busiest address is the one that runs out. */
static void count_ports(const tp__diag_sock *v, size_t b, size_t e, tp_diag_dest *d)
{
    size_t i = b;
    while (i < e) {
        size_t j = i;
        uint32_t used = 0, tw = 0;
        for (; j < e && v[j].s.local.family == v[i].s.local.family &&
               memcmp(v[j].s.local.addr, v[i].s.local.addr, 16) == 0;
             j++) {
            if (v[j].s.inbound)
                continue;
            used++;
            tw += v[j].s.state == TP_DIAG_TIME_WAIT;
        }
        if (used > d->ports_used) {
            d->ports_used = used;
            d->ports_timewait = tw;
            d->ports_open = used - tw;
        }
        i = j;
    }
}

/* True if s entered TIME_WAIT after prev was taken (prev->socks is sorted the same way):
 * its 4-tuple was not in TIME_WAIT then, or its timer is longer now. A TIME_WAIT timer
 * only counts down, so a longer one means tcp_tw_reuse handed the 4-tuple to a new
 * connection, which has closed since: a 4-tuple comparison alone would miss it. */
static bool tw_arrived(const tp_diag_report *prev, const tp__diag_sock *s)
{
    if (prev->nsocks == 0)
        return true; /* and bsearch() must not be given a NULL array */
    const tp__diag_sock *hit = bsearch(s, prev->socks, prev->nsocks, sizeof *s, cmp_sock);
    return hit == NULL || hit->s.state != TP_DIAG_TIME_WAIT || s->s.timer_ms > hit->s.timer_ms;
}

/* TIME_WAIT arrivals towards the run and the close rate they give: since prev when
 * there is one, else the entries younger than TP_DIAG_RATE_WINDOW_S by their timers. */
static void close_rate(const tp_diag_report *r, const tp_diag_report *prev, const tp__diag_sock *v,
                       size_t b, size_t e, tp_diag_dest *d)
{
    const uint32_t life_ms = TP_DIAG_TIME_WAIT_S * 1000;
    uint32_t arrivals = 0, timed = 0, tw = 0;
    for (size_t i = b; i < e; i++) {
        const tp_diag_socket *s = &v[i].s;
        if (s->state != TP_DIAG_TIME_WAIT || s->inbound)
            continue;
        tw++;
        if (prev != NULL) {
            arrivals += tw_arrived(prev, &v[i]);
        } else if (s->timer_ms > 0 && s->timer_ms <= life_ms) {
            timed++;
            arrivals += life_ms - s->timer_ms < TP_DIAG_RATE_WINDOW_S * 1000u;
        }
    }
    d->tw_arrivals = arrivals;
    d->close_rate_sampled = prev != NULL;
    if (prev != NULL)
        d->close_rate = tp_diag_close_rate(arrivals, r->host.interval_s);
    else if (tw > 0 && timed == 0)
        d->close_rate = -1.0; /* TIME_WAIT entries without timers: no way to tell */
    else
        d->close_rate = tp_diag_close_rate(arrivals, TP_DIAG_RATE_WINDOW_S);
}

/* Fills a destination from the run [b, e) of r->socks. */
static void build_dest(tp_diag_report *r, const tp_diag_report *prev, size_t b, size_t e,
                       tp_diag_dest *d)
{
    const tp__diag_sock *v = r->socks;
    const tp_diag_host *h = &r->host;
    uint64_t rtt_sum = 0, rttvar_sum = 0;
    memset(d, 0, sizeof *d);
    d->remote = v[b].s.remote;
    d->severity = -1;
    for (size_t i = b; i < e; i++) {
        const tp_diag_socket *s = &v[i].s;
        if (!v[i].selected)
            continue;
        d->sockets++;
        if (s->state > 0 && s->state < TP_DIAG_NSTATES)
            d->states[s->state]++;
        if (!s->has_tcp_info)
            continue;
        if (s->rtt_us > 0) {
            d->rtt_samples++;
            rtt_sum += s->rtt_us;
            rttvar_sum += s->rttvar_us;
            if (s->rtt_us > d->rtt_max_us)
                d->rtt_max_us = s->rtt_us;
        }
        d->total_retrans += s->total_retrans;
        d->segs_out += s->segs_out;
        d->unacked += s->unacked;
        d->in_backoff += s->retransmits > 0 || s->backoff > 0;
    }
    if (d->rtt_samples > 0) {
        d->rtt_avg_us = (double)rtt_sum / d->rtt_samples;
        d->rttvar_avg_us = (double)rttvar_sum / d->rtt_samples;
    }
    count_ports(v, b, e, d);
    d->headroom = tp_diag_port_headroom(h->port_range, d->ports_used);
    d->ports_used_pct = h->port_range ? 100.0 * d->ports_used / h->port_range : 100.0;
    /* tcp_tw_reuse (with TCP timestamps, the default) lets connect() take over a
     * TIME_WAIT 4-tuple older than the reuse delay: 1 everywhere, 2 on loopback only. */
    d->tw_reuse_applies =
        h->tw_reuse == 1 || (h->tw_reuse == 2 && tp_diag_endpoint_is_loopback(&d->remote));
    d->tw_hold_s = d->tw_reuse_applies ? h->tw_reuse_delay_ms / 1000.0 : TP_DIAG_TIME_WAIT_S;
    close_rate(r, prev, v, b, e, d);
    d->critical_rate = tp_diag_critical_rate(h->port_range, d->ports_open, d->tw_hold_s);
    d->exhaustion_s = tp_diag_exhaustion_seconds(h->port_range, d->ports_open, d->ports_timewait,
                                                 d->close_rate, d->tw_hold_s);
}

tp_err tp__diag_aggregate(tp_diag_report *r, tp__diag_vec *all, const uint32_t *inodes,
                          size_t ninodes, const tp_diag_report *prev)
{
    const tp_diag_options *o = &r->opts;
    r->host.sockets = (uint32_t)all->n;
    tp_err rc = split_listeners(all, &r->host.listeners);
    if (rc != TP_OK)
        return rc;
    r->socks = all->v;
    r->nsocks = all->n;
    all->v = NULL;
    all->n = all->cap = 0;
    tp__diag_sock *v = r->socks;
    for (size_t i = 0; i < r->nsocks; i++) {
        tp_diag_socket *s = &v[i].s;
        s->owned = o->pid == 0 || (s->inode != 0 && ninodes > 0 &&
                                   bsearch(&s->inode, inodes, ninodes, sizeof *inodes, cmp_u32));
        r->host.inbound += s->inbound;
        r->host.timewait += s->state == TP_DIAG_TIME_WAIT;
    }
    if (r->nsocks > 1)
        qsort(v, r->nsocks, sizeof *v, cmp_sock);
    dedupe(r);

    if (o->pid != 0 && (rc = pid_remotes(r, prev)) != TP_OK)
        return rc;
    /* Two passes over the runs: selection first (it sizes sel), then destinations. */
    size_t nruns = 0;
    for (size_t b = 0, e; b < r->nsocks; b = e) {
        e = run_end(v, r->nsocks, b);
        select_run(r, v, b, e);
        nruns++;
    }
    r->sel = tp__malloc((r->nsocks ? r->nsocks : 1) * sizeof *r->sel);
    r->dests = tp__malloc((nruns ? nruns : 1) * sizeof *r->dests);
    if (r->sel == NULL || r->dests == NULL)
        return TP_ENOMEM;
    for (size_t i = 0; i < r->nsocks; i++)
        if (v[i].selected)
            r->sel[r->nsel++] = i;
    for (size_t b = 0, e; b < r->nsocks; b = e) {
        bool any = false;
        e = run_end(v, r->nsocks, b);
        for (size_t i = b; i < e; i++)
            any |= v[i].selected;
        /* A remote port 0 is no connection (a socket bound but never connected). */
        if (!any || v[b].s.remote.port == 0 ||
            (o->dest.family != 0 && tp__diag_endpoint_cmp(&o->dest, &v[b].s.remote) != 0))
            continue;
        build_dest(r, prev, b, e, &r->dests[r->ndests++]);
    }
    r->host.dests = (uint32_t)r->ndests;
    return TP_OK;
}
