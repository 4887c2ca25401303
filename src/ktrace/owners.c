/* owners.c: the join between the trace's events and the sock_diag view. An event on a
 * socket the program did not see connect (opened before the trace began, or accepted)
 * and run in softirq context carries no useful pid; its cookie does. A sample of
 * sock_diag gives each socket's cookie and inode, /proc/PID/fd gives each inode's
 * process: together, cookie -> process. Owners are kept once learned, since the
 * interesting sockets (reset, closed) are gone by the next sample. The same sample gives
 * the local listeners, which tell accepted connections from outgoing ones. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diag/diag_internal.h"
#include "ktrace_internal.h"

static int cmp_cookie(const void *a, const void *b)
{
    uint64_t x = ((const tp__ktrace_owner *)a)->cookie, y = ((const tp__ktrace_owner *)b)->cookie;
    return x < y ? -1 : x > y;
}

const tp_ktrace_process *tp__ktrace_owner_of(const tp_ktrace *t, uint64_t cookie)
{
    if (cookie == 0 || t->nowners == 0)
        return NULL;
    tp__ktrace_owner key = {.cookie = cookie};
    const tp__ktrace_owner *o = bsearch(&key, t->owners, t->nowners, sizeof *o, cmp_cookie);
    return o != NULL ? &o->process : NULL;
}

static bool listener_matches(const tp__ktrace_listener *l, const tp_diag_endpoint *local)
{
    return l->local.port == local->port && tp__diag_addr_matches(&l->local, local);
}

bool tp__ktrace_is_listener(const tp_ktrace *t, const tp_diag_endpoint *local)
{
    for (size_t i = 0; i < t->nlisteners; i++)
        if (listener_matches(&t->listeners[i], local))
            return true;
    return false;
}

const tp_ktrace_process *tp__ktrace_listener_owner(const tp_ktrace *t,
                                                   const tp_diag_endpoint *local)
{
    const tp_ktrace_process *owner = NULL;
    for (size_t i = 0; i < t->nlisteners; i++) {
        const tp__ktrace_listener *l = &t->listeners[i];
        if (!listener_matches(l, local))
            continue;
        if (l->process.pid == 0 || (owner != NULL && owner->pid != l->process.pid))
            return NULL;
        owner = &l->process;
    }
    return owner;
}

static tp__ktrace_listener *find_listener(tp_ktrace *t, const tp_diag_endpoint *local,
                                          uint64_t cookie)
{
    for (size_t j = 0; j < t->nlisteners; j++) {
        tp__ktrace_listener *l = &t->listeners[j];
        if (l->cookie == cookie && tp_diag_endpoint_equal(&l->local, local))
            return l;
    }
    return NULL;
}

tp_err tp__ktrace_add_listener(tp_ktrace *t, const tp_diag_endpoint *local, uint64_t cookie,
                               const tp_ktrace_process *p)
{
    tp__ktrace_listener *known = find_listener(t, local, cookie);
    if (known != NULL) {
        if (known->process.pid == 0 && p != NULL)
            known->process = *p;
        return TP_OK;
    }
    tp__ktrace_listener *nv = tp__realloc(t->listeners, (t->nlisteners + 1) * sizeof *nv);
    if (nv == NULL)
        return TP_ENOMEM;
    t->listeners = nv;
    tp__ktrace_listener *l = &t->listeners[t->nlisteners++];
    memset(l, 0, sizeof *l);
    l->local = *local;
    l->cookie = cookie;
    if (p != NULL)
        l->process = *p;
    return TP_OK;
}

/* Adds the listeners of the sample not known yet, with the process holding each. */
static tp_err add_listeners(tp_ktrace *t, const tp__diag_vec *all, const tp__diag_inode_pid *procs,
                            size_t nprocs)
{
    for (size_t i = 0; i < all->n; i++) {
        const tp_diag_socket *s = &all->v[i].s;
        if (s->state != TP_DIAG_LISTEN)
            continue;
        const tp__ktrace_listener *known = find_listener(t, &s->local, s->cookie);
        if (known != NULL && known->process.pid != 0)
            continue; /* its owner is read once */
        tp_ktrace_process p = {.pid = tp__diag_inode_owner(procs, nprocs, s->inode)};
        if (p.pid != 0)
            tp__diag_read_comm(p.pid, p.comm);
        tp_err rc = tp__ktrace_add_listener(t, &s->local, s->cookie, p.pid != 0 ? &p : NULL);
        if (rc != TP_OK)
            return rc;
    }
    return TP_OK;
}

/* Adds (or refreshes) the owners of the sample's sockets. */
static tp_err add_owners(tp_ktrace *t, const tp__diag_vec *all, const tp__diag_inode_pid *procs,
                         size_t nprocs)
{
    size_t fresh = 0;
    for (size_t i = 0; i < all->n; i++)
        if (all->v[i].s.cookie != 0 && all->v[i].s.inode != 0)
            fresh++;
    if (fresh == 0)
        return TP_OK;
    tp__ktrace_owner *nv = tp__realloc(t->owners, (t->nowners + fresh) * sizeof *nv);
    if (nv == NULL)
        return TP_ENOMEM;
    t->owners = nv;
    size_t old = t->nowners, n = old;
    int last_pid = -1;
    char last_comm[16] = "";
    for (size_t i = 0; i < all->n; i++) {
        const tp_diag_socket *s = &all->v[i].s;
        if (s->cookie == 0 || s->inode == 0 || s->state == TP_DIAG_LISTEN)
            continue;
        int pid = tp__diag_inode_owner(procs, nprocs, s->inode);
        if (pid == 0)
            continue;
        tp__ktrace_owner key = {.cookie = s->cookie};
        tp__ktrace_owner *known =
            old ? bsearch(&key, t->owners, old, sizeof key, cmp_cookie) : NULL;
        tp__ktrace_owner *o = known != NULL ? known : &t->owners[n++];
        o->cookie = s->cookie;
        o->process.pid = pid;
        if (pid != last_pid) {
            tp__diag_read_comm(pid, last_comm);
            last_pid = pid;
        }
        memcpy(o->process.comm, last_comm, sizeof o->process.comm);
    }
    t->nowners = n;
    if (n > old)
        qsort(t->owners, n, sizeof *t->owners, cmp_cookie);
    return TP_OK;
}

tp_err tp__ktrace_join(tp_ktrace *t, tp_errinfo *err)
{
    tp__diag_vec all = {0};
    tp_err rc = tp__diag_netlink_dump(&all, err);
    if (rc != TP_OK) {
        tp__diag_vec_free(&all);
        return rc;
    }
    tp__diag_inode_pid *procs = NULL;
    size_t nprocs = 0;
    if ((rc = tp__diag_inode_owners(&procs, &nprocs)) == TP_OK &&
        (rc = add_listeners(t, &all, procs, nprocs)) == TP_OK)
        rc = add_owners(t, &all, procs, nprocs);
    tp__free(procs);
    tp__diag_vec_free(&all);
    if (rc != TP_OK)
        return tp_errinfo_set(err, rc, 0, "out of memory joining sock_diag");
    t->sum.joins++;
    return TP_OK;
}
