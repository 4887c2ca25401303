/* owners.c: the join between the trace's events and the sock_diag view. An event on a
 * socket the program did not see connect (opened before the trace began, or accepted)
 * and run in softirq context carries no useful pid; its cookie does. A sample of
 * sock_diag gives each socket's cookie and inode, /proc/PID/fd gives each inode's
 * process: together, cookie -> process. Owners are kept once learned, since the
 * interesting sockets (reset, closed) are gone by the next sample. The same sample gives
 * the local listeners, which tell accepted connections from outgoing ones. */
#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diag/diag_internal.h"
#include "ktrace_internal.h"

typedef struct inode_pid {
    uint32_t inode;
    int pid;
} inode_pid;

static int cmp_inode(const void *a, const void *b)
{
    uint32_t x = ((const inode_pid *)a)->inode, y = ((const inode_pid *)b)->inode;
    return x < y ? -1 : x > y;
}

static int cmp_cookie(const void *a, const void *b)
{
    uint64_t x = ((const tp__ktrace_owner *)a)->cookie, y = ((const tp__ktrace_owner *)b)->cookie;
    return x < y ? -1 : x > y;
}

static void read_comm(int pid, char comm[16])
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/comm", pid);
    comm[0] = '\0';
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return;
    if (fgets(comm, 16, f) != NULL)
        comm[strcspn(comm, "\n")] = '\0';
    fclose(f);
}

/* Every process's socket inodes, sorted by inode. Processes that vanish or cannot be
 * read are skipped: the join is best effort by nature. */
static tp_err scan_processes(inode_pid **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    DIR *d = opendir("/proc");
    if (d == NULL)
        return TP_OK;
    inode_pid *v = NULL;
    size_t len = 0, cap = 0;
    tp_err rc = TP_OK;
    struct dirent *de;
    while (rc == TP_OK && (de = readdir(d)) != NULL) {
        if (!isdigit((unsigned char)de->d_name[0]))
            continue;
        int pid = atoi(de->d_name);
        uint32_t *inodes = NULL;
        size_t ni = 0;
        if (tp__diag_pid_inodes(pid, &inodes, &ni, NULL) != TP_OK)
            continue;
        if (len + ni > cap) {
            size_t ncap = cap ? cap : 256;
            while (ncap < len + ni)
                ncap *= 2;
            inode_pid *nv = tp__realloc(v, ncap * sizeof *nv);
            if (nv == NULL) {
                rc = TP_ENOMEM;
                tp__free(inodes);
                break;
            }
            v = nv;
            cap = ncap;
        }
        for (size_t i = 0; i < ni; i++)
            v[len++] = (inode_pid){inodes[i], pid};
        tp__free(inodes);
    }
    closedir(d);
    if (rc != TP_OK) {
        tp__free(v);
        return rc;
    }
    if (len > 1)
        qsort(v, len, sizeof *v, cmp_inode);
    *out = v;
    *n = len;
    return TP_OK;
}

static const inode_pid *find_inode(const inode_pid *v, size_t n, uint32_t inode)
{
    inode_pid key = {inode, 0};
    return bsearch(&key, v, n, sizeof *v, cmp_inode);
}

const tp_ktrace_process *tp__ktrace_owner_of(const tp_ktrace *t, uint64_t cookie)
{
    if (cookie == 0 || t->nowners == 0)
        return NULL;
    tp__ktrace_owner key = {.cookie = cookie};
    const tp__ktrace_owner *o = bsearch(&key, t->owners, t->nowners, sizeof *o, cmp_cookie);
    return o != NULL ? &o->process : NULL;
}

bool tp__ktrace_is_listener(const tp_ktrace *t, const tp_diag_endpoint *local)
{
    for (size_t i = 0; i < t->nlisteners; i++)
        if (t->listeners[i].port == local->port && tp__diag_addr_matches(&t->listeners[i], local))
            return true;
    return false;
}

tp_err tp__ktrace_add_listener(tp_ktrace *t, const tp_diag_endpoint *local)
{
    for (size_t j = 0; j < t->nlisteners; j++)
        if (tp_diag_endpoint_equal(&t->listeners[j], local))
            return TP_OK;
    tp_diag_endpoint *nv = tp__realloc(t->listeners, (t->nlisteners + 1) * sizeof *nv);
    if (nv == NULL)
        return TP_ENOMEM;
    t->listeners = nv;
    t->listeners[t->nlisteners++] = *local;
    return TP_OK;
}

/* Adds the listeners of the sample not known yet. */
static tp_err add_listeners(tp_ktrace *t, const tp__diag_vec *all)
{
    for (size_t i = 0; i < all->n; i++) {
        const tp_diag_socket *s = &all->v[i].s;
        if (s->state != TP_DIAG_LISTEN)
            continue;
        tp_err rc = tp__ktrace_add_listener(t, &s->local);
        if (rc != TP_OK)
            return rc;
    }
    return TP_OK;
}

/* Adds (or refreshes) the owners of the sample's sockets. */
static tp_err add_owners(tp_ktrace *t, const tp__diag_vec *all, const inode_pid *procs,
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
        const inode_pid *ip = find_inode(procs, nprocs, s->inode);
        if (ip == NULL)
            continue;
        tp__ktrace_owner key = {.cookie = s->cookie};
        tp__ktrace_owner *known =
            old ? bsearch(&key, t->owners, old, sizeof key, cmp_cookie) : NULL;
        tp__ktrace_owner *o = known != NULL ? known : &t->owners[n++];
        o->cookie = s->cookie;
        o->process.pid = ip->pid;
        if (ip->pid != last_pid) {
            read_comm(ip->pid, last_comm);
            last_pid = ip->pid;
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
    inode_pid *procs = NULL;
    size_t nprocs = 0;
    if ((rc = scan_processes(&procs, &nprocs)) == TP_OK && (rc = add_listeners(t, &all)) == TP_OK)
        rc = add_owners(t, &all, procs, nprocs);
    tp__free(procs);
    tp__diag_vec_free(&all);
    if (rc != TP_OK)
        return tp_errinfo_set(err, rc, 0, "out of memory joining sock_diag");
    t->sum.joins++;
    return TP_OK;
}
