/* report.c: tp_diag_collect() (options, the choice between netlink and the /proc
 * fallback, the pid's inodes, then aggregation and findings), the report's accessors and
 * its memory, including the socket vector the dumpers fill. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tidepool/clock.h"

#include "diag_internal.h"

tp_diag_socket *tp__diag_vec_push(tp__diag_vec *vec)
{
    if (vec->n == vec->cap) {
        size_t ncap = vec->cap ? vec->cap * 2 : 256;
        tp__diag_sock *nv = tp__realloc(vec->v, ncap * sizeof *nv);
        if (nv == NULL)
            return NULL;
        vec->v = nv;
        vec->cap = ncap;
    }
    tp__diag_sock *s = &vec->v[vec->n++];
    memset(s, 0, sizeof *s);
    return &s->s;
}

void tp__diag_vec_free(tp__diag_vec *vec)
{
    tp__free(vec->v);
    vec->v = NULL;
    vec->n = vec->cap = 0;
}

void tp_diag_options_init(tp_diag_options *o)
{
    if (o == NULL)
        return;
    memset(o, 0, sizeof *o);
    o->pid_include_orphans = true;
    o->source = TP_DIAG_SOURCE_AUTO;
}

static tp_err check_options(const tp_diag_options *o, tp_errinfo *err)
{
    if (o->pid < 0)
        return tp_errinfo_set(err, TP_EINVAL, 0, "pid: %d is negative", o->pid);
    if (o->source != TP_DIAG_SOURCE_AUTO && o->source != TP_DIAG_SOURCE_NETLINK &&
        o->source != TP_DIAG_SOURCE_PROCFS)
        return tp_errinfo_set(err, TP_EINVAL, 0, "source: unknown value %d", (int)o->source);
    if (o->dest.family != 0 && o->dest.family != AF_INET && o->dest.family != AF_INET6)
        return tp_errinfo_set(err, TP_EINVAL, 0, "dest: family %d is not AF_INET(6)",
                              o->dest.family);
    return TP_OK;
}

/* Dumps the sockets into all from the source the options ask for, falling back from
 * netlink to /proc under AUTO, and records the source and why in r->host. */
static tp_err dump(tp_diag_report *r, tp__diag_vec *all, tp_errinfo *err)
{
    tp_diag_host *h = &r->host;
    if (r->opts.source != TP_DIAG_SOURCE_PROCFS) {
        tp_errinfo nlerr;
        tp_errinfo_clear(&nlerr);
        tp_err rc = tp__diag_netlink_dump(all, &nlerr);
        if (rc == TP_OK) {
            h->source = TP_DIAG_SOURCE_NETLINK;
            return TP_OK;
        }
        if (rc != TP_ESYS || r->opts.source == TP_DIAG_SOURCE_NETLINK) {
            if (err != NULL)
                *err = nlerr;
            return rc;
        }
        snprintf(h->note, sizeof h->note,
                 "NETLINK_SOCK_DIAG unavailable (%.150s): sockets read from /proc/net/tcp{,6}, "
                 "without RTT or retransmission data",
                 nlerr.msg);
        all->n = 0; /* a partial netlink dump must not be counted twice */
    } else {
        snprintf(h->note, sizeof h->note,
                 "source forced to /proc/net/tcp{,6}: no RTT or retransmission data");
    }
    h->source = TP_DIAG_SOURCE_PROCFS;
    return tp__diag_procfs_dump(all, err);
}

tp_err tp_diag_collect(const tp_diag_options *opts, const tp_diag_report *prev,
                       tp_diag_report **out, tp_errinfo *err)
{
    if (out == NULL)
        return tp_errinfo_set(err, TP_EINVAL, 0, "out is NULL");
    *out = NULL;
    tp_diag_options o;
    if (opts != NULL)
        o = *opts;
    else
        tp_diag_options_init(&o);
    tp_err rc = check_options(&o, err);
    if (rc != TP_OK)
        return rc;
    tp_diag_report *r = tp__calloc(1, sizeof *r);
    if (r == NULL)
        return tp_errinfo_set(err, TP_ENOMEM, ENOMEM, "out of memory");
    r->opts = o;
    r->host.pid = o.pid;
    tp__diag_read_host(&r->host);

    uint32_t *inodes = NULL;
    size_t ninodes = 0;
    tp__diag_vec all = {0};
    /* The inodes are read before the dump: a socket closed in between still shows as
     * TIME_WAIT (kept by the orphan rule); one opened in between is simply not seen. */
    if (o.pid != 0)
        rc = tp__diag_pid_inodes(o.pid, &inodes, &ninodes, err);
    if (rc == TP_OK)
        rc = dump(r, &all, err);
    if (rc == TP_OK) {
        r->host.sampled_at_ns = tp_clock_now();
        if (prev != NULL && prev->host.sampled_at_ns < r->host.sampled_at_ns)
            r->host.interval_s = (double)(r->host.sampled_at_ns - prev->host.sampled_at_ns) /
                                 (double)TP_NSEC_PER_SEC;
        else
            prev = NULL;
        /* Before aggregate takes the sockets over: it drops the listeners. */
        rc = tp__diag_sidecars(r, &all);
        if (rc == TP_OK)
            rc = tp__diag_aggregate(r, &all, inodes, ninodes, prev);
        if (rc == TP_OK)
            rc = tp__diag_findings(r);
        if (rc == TP_ENOMEM)
            tp_errinfo_set(err, TP_ENOMEM, ENOMEM, "out of memory");
    }
    tp__free(inodes);
    tp__diag_vec_free(&all);
    if (rc != TP_OK) {
        tp_diag_report_destroy(r);
        return rc;
    }
    *out = r;
    return TP_OK;
}

void tp_diag_report_destroy(tp_diag_report *r)
{
    if (r == NULL)
        return;
    tp__free(r->socks);
    tp__free(r->sel);
    tp__free(r->dests);
    tp__free(r->findings);
    tp__free(r->pid_remotes);
    tp__free(r->sidecars);
    tp__free(r);
}

void tp_diag_free(void *p)
{
    tp__free(p);
}

const tp_diag_host *tp_diag_report_host(const tp_diag_report *r)
{
    return r ? &r->host : NULL;
}

size_t tp_diag_report_dest_count(const tp_diag_report *r)
{
    return r ? r->ndests : 0;
}

const tp_diag_dest *tp_diag_report_dest(const tp_diag_report *r, size_t i)
{
    return r && i < r->ndests ? &r->dests[i] : NULL;
}

const tp_diag_dest *tp_diag_report_find_dest(const tp_diag_report *r,
                                             const tp_diag_endpoint *remote)
{
    if (r == NULL || remote == NULL)
        return NULL;
    for (size_t i = 0; i < r->ndests; i++)
        if (tp__diag_endpoint_cmp(&r->dests[i].remote, remote) == 0)
            return &r->dests[i];
    return NULL;
}

size_t tp_diag_report_finding_count(const tp_diag_report *r)
{
    return r ? r->nfindings : 0;
}

const tp_diag_finding *tp_diag_report_finding(const tp_diag_report *r, size_t i)
{
    return r && i < r->nfindings ? &r->findings[i] : NULL;
}

size_t tp_diag_report_socket_count(const tp_diag_report *r)
{
    return r ? r->nsel : 0;
}

const tp_diag_socket *tp_diag_report_socket(const tp_diag_report *r, size_t i)
{
    return r && i < r->nsel ? &r->socks[r->sel[i]].s : NULL;
}

size_t tp_diag_report_sidecar_count(const tp_diag_report *r)
{
    return r ? r->nsidecars : 0;
}

const tp_diag_sidecar *tp_diag_report_sidecar(const tp_diag_report *r, size_t i)
{
    return r && i < r->nsidecars ? &r->sidecars[i] : NULL;
}
