/* sidecar.c: proxies in the path. A service mesh puts a proxy beside each process and
 * sends its outgoing connections through it, often without the process knowing: an
 * nft/iptables rule redirects every connect() to the sidecar's port. The pool's
 * settings then govern the hop to the sidecar only. From one sock_diag dump: an outgoing
 * connection (local L -> remote R) whose other end is on this host shows as a socket a
 * local listener accepted with remote L; when that socket's local end P differs from R,
 * the host rewrote the destination on the way (REDIRECT/DNAT), and SO_ORIGINAL_DST on the
 * proxy's accepted socket (read through pidfd_getfd) says what it had been. Only pairs
 * that look like a proxy are kept: redirected, on a sidecar port, or held by a process
 * with a proxy's name; a client talking to a local database it dialled directly is not
 * reported. */
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "diag_internal.h"

/* netfilter's getsockopt for the pre-NAT destination (linux/netfilter_ipv4.h and
 * linux/netfilter_ipv6/ip6_tables.h), defined here to spare their header clashes. */
#define TP_SO_ORIGINAL_DST 80
#define TP_IP6T_SO_ORIGINAL_DST 80

static const struct {
    const char *comm; /* prefix of /proc/PID/comm (15 characters at most) */
    const char *product;
} g_proxies[] = {
    {"envoy", "Envoy (Istio, Consul, Kuma)"},
    {"pilot-agent", "Envoy (Istio)"},
    {"istio-proxy", "Envoy (Istio)"},
    {"cilium-envoy", "Envoy (Cilium)"},
    {"linkerd2-proxy", "Linkerd"},
    {"linkerd-proxy", "Linkerd"},
    {"haproxy", "HAProxy"},
    {"traefik", "Traefik"},
    {"mosn", "MOSN"},
};

static const char *product_of(const char *comm)
{
    for (size_t i = 0; i < sizeof g_proxies / sizeof g_proxies[0]; i++)
        if (strncmp(comm, g_proxies[i].comm, strlen(g_proxies[i].comm)) == 0)
            return g_proxies[i].product;
    return NULL;
}

static bool sidecar_port(uint16_t port)
{
    static const uint16_t ports[] = TP_DIAG_SIDECAR_PORTS;
    for (size_t i = 0; i < sizeof ports / sizeof ports[0]; i++)
        if (ports[i] == port)
            return true;
    return false;
}

static const char *product_by_port(uint16_t port)
{
    if (port == 15001 || port == 15006)
        return "Envoy (Istio)";
    if (port == 4140 || port == 4143)
        return "Linkerd";
    return NULL;
}

/* The listeners of a dump: their local ends, few next to the sockets. */
typedef struct listeners {
    tp_diag_endpoint *v;
    size_t n;
} listeners;

static bool collect_listeners(const tp__diag_vec *all, listeners *out)
{
    out->n = 0;
    out->v = tp__malloc((all->n ? all->n : 1) * sizeof *out->v);
    if (out->v == NULL)
        return false;
    for (size_t i = 0; i < all->n; i++)
        if (all->v[i].s.state == TP_DIAG_LISTEN)
            out->v[out->n++] = all->v[i].s.local;
    return true;
}

static bool is_listener_of(const listeners *l, const tp_diag_endpoint *local)
{
    for (size_t i = 0; i < l->n; i++)
        if (l->v[i].port == local->port && tp__diag_addr_matches(&l->v[i], local))
            return true;
    return false;
}

/* The fd number under which process pid holds the socket with this inode, or -1. */
static int fd_of_inode(int pid, uint32_t inode)
{
    char dir[64], want[48];
    snprintf(dir, sizeof dir, "/proc/%d/fd", pid);
    snprintf(want, sizeof want, "socket:[%u]", inode);
    DIR *d = opendir(dir);
    if (d == NULL)
        return -1;
    int fd = -1;
    struct dirent *de;
    while (fd < 0 && (de = readdir(d)) != NULL) {
        char target[64];
        ssize_t n = readlinkat(dirfd(d), de->d_name, target, sizeof target - 1);
        if (n <= 0)
            continue;
        target[n] = '\0';
        if (strcmp(target, want) == 0)
            fd = atoi(de->d_name);
    }
    closedir(d);
    return fd;
}

/* SO_ORIGINAL_DST of the socket inode held by pid, borrowed through pidfd_getfd (needs
 * the right to ptrace pid: root, or the same user without restrictions). false when it
 * cannot be read. */
static bool original_dst(int pid, uint32_t inode, int family, tp_diag_endpoint *out)
{
#if defined(SYS_pidfd_open) && defined(SYS_pidfd_getfd)
    int target = fd_of_inode(pid, inode);
    if (target < 0)
        return false;
    int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (pidfd < 0)
        return false;
    int fd = (int)syscall(SYS_pidfd_getfd, pidfd, target, 0);
    close(pidfd);
    if (fd < 0)
        return false;
    bool ok = false;
    if (family == AF_INET) {
        struct sockaddr_in sa;
        socklen_t len = sizeof sa;
        if (getsockopt(fd, SOL_IP, TP_SO_ORIGINAL_DST, &sa, &len) == 0) {
            tp__diag_endpoint_set(out, AF_INET, (const uint8_t *)&sa.sin_addr, ntohs(sa.sin_port));
            ok = true;
        }
    } else {
        struct sockaddr_in6 sa;
        socklen_t len = sizeof sa;
        if (getsockopt(fd, SOL_IPV6, TP_IP6T_SO_ORIGINAL_DST, &sa, &len) == 0) {
            tp__diag_endpoint_set(out, AF_INET6, (const uint8_t *)&sa.sin6_addr,
                                  ntohs(sa.sin6_port));
            ok = true;
        }
    }
    close(fd);
    return ok;
#else
    (void)pid;
    (void)inode;
    (void)family;
    (void)out;
    return false;
#endif
}

/* An outgoing socket and the accepted socket at its other end. */
typedef struct pair {
    const tp_diag_socket *client, *accepted;
} pair;

static int cmp_remote(const void *a, const void *b)
{
    const tp_diag_socket *x = *(const tp_diag_socket *const *)a;
    const tp_diag_socket *y = *(const tp_diag_socket *const *)b;
    return tp__diag_endpoint_cmp(&x->remote, &y->remote);
}

/* The accepted sockets of all (their local end is a listener's), sorted by remote. */
static const tp_diag_socket **accepted_sockets(const tp__diag_vec *all, const listeners *l,
                                               size_t *n)
{
    *n = 0;
    const tp_diag_socket **v = tp__malloc((all->n ? all->n : 1) * sizeof *v);
    if (v == NULL)
        return NULL;
    for (size_t i = 0; i < all->n; i++) {
        const tp_diag_socket *s = &all->v[i].s;
        if (s->state != TP_DIAG_LISTEN && s->state != TP_DIAG_TIME_WAIT && s->inode != 0 &&
            is_listener_of(l, &s->local))
            v[(*n)++] = s;
    }
    if (*n > 1)
        qsort(v, *n, sizeof *v, cmp_remote);
    return v;
}

static const tp_diag_socket *accepted_from(const tp_diag_socket **acc, size_t n,
                                           const tp_diag_endpoint *client_local)
{
    tp_diag_socket key;
    memset(&key, 0, sizeof key);
    key.remote = *client_local;
    const tp_diag_socket *kp = &key;
    const tp_diag_socket **hit = bsearch(&kp, acc, n, sizeof *acc, cmp_remote);
    return hit != NULL ? *hit : NULL;
}

static bool wanted(const tp_diag_report *r, const tp_diag_sidecar *c)
{
    if (r->opts.pid != 0 && c->client_pid != r->opts.pid)
        return false;
    if (r->opts.dest.family != 0 && !tp_diag_endpoint_equal(&r->opts.dest, &c->dialed))
        return false;
    return true;
}

/* Adds one connection to its group (client pid, dialled, proxy), or a new group. */
static tp_err add_connection(tp_diag_report *r, const tp_diag_sidecar *c, size_t *cap)
{
    for (size_t i = 0; i < r->nsidecars; i++) {
        tp_diag_sidecar *g = &r->sidecars[i];
        if (g->client_pid == c->client_pid && tp_diag_endpoint_equal(&g->dialed, &c->dialed) &&
            tp_diag_endpoint_equal(&g->proxy, &c->proxy)) {
            g->connections++;
            if (g->original_dst.family == 0)
                g->original_dst = c->original_dst;
            return TP_OK;
        }
    }
    if (r->nsidecars == *cap) {
        size_t ncap = *cap ? *cap * 2 : 8;
        tp_diag_sidecar *nv = tp__realloc(r->sidecars, ncap * sizeof *nv);
        if (nv == NULL)
            return TP_ENOMEM;
        r->sidecars = nv;
        *cap = ncap;
    }
    r->sidecars[r->nsidecars] = *c;
    r->sidecars[r->nsidecars].connections = 1;
    r->nsidecars++;
    return TP_OK;
}

static int cmp_sidecar(const void *a, const void *b)
{
    const tp_diag_sidecar *x = a, *y = b;
    if (x->connections != y->connections)
        return x->connections > y->connections ? -1 : 1;
    return tp__diag_endpoint_cmp(&x->dialed, &y->dialed);
}

tp_err tp__diag_sidecars(tp_diag_report *r, const tp__diag_vec *all)
{
    listeners l;
    if (!collect_listeners(all, &l))
        return TP_ENOMEM;
    size_t nacc = 0;
    const tp_diag_socket **acc = l.n > 0 ? accepted_sockets(all, &l, &nacc) : NULL;
    if (l.n > 0 && acc == NULL) {
        tp__free(l.v);
        return TP_ENOMEM;
    }
    /* Pairs first; the process scan (every /proc/PID/fd) only if there is one. */
    pair *pairs = NULL;
    size_t npairs = 0, cappairs = 0;
    tp_err rc = TP_OK;
    for (size_t i = 0; i < all->n && nacc > 0 && rc == TP_OK; i++) {
        const tp_diag_socket *s = &all->v[i].s;
        if (s->state == TP_DIAG_LISTEN || s->state == TP_DIAG_TIME_WAIT || s->inode == 0 ||
            is_listener_of(&l, &s->local))
            continue;
        const tp_diag_socket *a = accepted_from(acc, nacc, &s->local);
        if (a == NULL || a->local.family != s->remote.family)
            continue;
        if (npairs == cappairs) {
            size_t ncap = cappairs ? cappairs * 2 : 16;
            pair *nv = tp__realloc(pairs, ncap * sizeof *nv);
            if (nv == NULL) {
                rc = TP_ENOMEM;
                break;
            }
            pairs = nv;
            cappairs = ncap;
        }
        pairs[npairs++] = (pair){s, a};
    }
    tp__diag_inode_pid *owners = NULL;
    size_t nowners = 0, cap = 0;
    int cached_pid = 0;
    char cached_comm[16] = "";
    if (rc == TP_OK && npairs > 0)
        rc = tp__diag_inode_owners(&owners, &nowners);
    for (size_t i = 0; i < npairs && rc == TP_OK; i++) {
        const tp_diag_socket *s = pairs[i].client, *a = pairs[i].accepted;
        tp_diag_sidecar c;
        memset(&c, 0, sizeof c);
        c.dialed = s->remote;
        c.proxy = a->local;
        c.redirected = !tp_diag_endpoint_equal(&s->remote, &a->local);
        c.sidecar_port = sidecar_port(a->local.port);
        c.proxy_pid = tp__diag_inode_owner(owners, nowners, a->inode);
        if (c.proxy_pid != 0 && c.proxy_pid != cached_pid) {
            /* Many connections share a server: read its name once. */
            tp__diag_read_comm(c.proxy_pid, cached_comm);
            cached_pid = c.proxy_pid;
        }
        if (c.proxy_pid != 0)
            memcpy(c.proxy_comm, cached_comm, sizeof c.proxy_comm);
        c.product = product_of(c.proxy_comm);
        if (c.product == NULL && c.sidecar_port)
            c.product = product_by_port(a->local.port);
        if (!c.redirected && !c.sidecar_port && product_of(c.proxy_comm) == NULL)
            continue; /* a local server the client dialled itself */
        c.client_pid = tp__diag_inode_owner(owners, nowners, s->inode);
        if (c.client_pid != 0)
            tp__diag_read_comm(c.client_pid, c.client_comm);
        if (c.client_pid != 0 && c.client_pid == c.proxy_pid)
            continue; /* a process talking to itself */
        if (!wanted(r, &c))
            continue;
        if (c.redirected && c.proxy_pid != 0)
            (void)original_dst(c.proxy_pid, a->inode, a->local.family, &c.original_dst);
        rc = add_connection(r, &c, &cap);
    }
    tp__free(owners);
    tp__free(pairs);
    tp__free(acc);
    tp__free(l.v);
    if (rc == TP_OK && r->nsidecars > 1)
        qsort(r->sidecars, r->nsidecars, sizeof *r->sidecars, cmp_sidecar);
    return rc;
}

static const char *who(int pid, const char *comm, char *buf, size_t size)
{
    if (pid == 0)
        snprintf(buf, size, "a process (unknown: run as root to see it)");
    else
        snprintf(buf, size, "%s[%d]", comm, pid);
    return buf;
}

bool tp__diag_sidecar_rules(tp_diag_report *r)
{
    char dialed[TP_DIAG_ENDPOINT_STRLEN], proxy[TP_DIAG_ENDPOINT_STRLEN];
    char orig[TP_DIAG_ENDPOINT_STRLEN + 40], cl[64], px[64], how[TP_DIAG_ENDPOINT_STRLEN + 96];
    for (size_t i = 0; i < r->nsidecars; i++) {
        const tp_diag_sidecar *c = &r->sidecars[i];
        tp_diag_finding *f = tp__diag_finding_add(r, c->redirected ? TP_DIAG_WARNING : TP_DIAG_INFO,
                                                  "sidecar", &c->dialed);
        if (f == NULL)
            return false;
        tp_diag_endpoint_format(&c->dialed, dialed, sizeof dialed);
        tp_diag_endpoint_format(&c->proxy, proxy, sizeof proxy);
        if (c->original_dst.family != 0) {
            char o[TP_DIAG_ENDPOINT_STRLEN];
            snprintf(orig, sizeof orig, "; the proxy sees SO_ORIGINAL_DST %s",
                     tp_diag_endpoint_format(&c->original_dst, o, sizeof o));
        } else {
            orig[0] = '\0';
        }
        if (c->redirected)
            snprintf(how, sizeof how,
                     "redirected on this host (an nft/iptables REDIRECT or DNAT rule) to %s%s",
                     proxy, orig);
        else
            snprintf(how, sizeof how, "dialled directly, on %s port %u",
                     c->product ? c->product : "a sidecar", c->proxy.port);
        snprintf(f->diagnosis, sizeof f->diagnosis,
                 "%u connections of %s to %s end at a local proxy, %s%s%s: %s", c->connections,
                 who(c->client_pid, c->client_comm, cl, sizeof cl), dialed,
                 who(c->proxy_pid, c->proxy_comm, px, sizeof px), c->product ? ", " : "",
                 c->product ? c->product : "", how);
        snprintf(f->remedy, sizeof f->remedy,
                 "the pool's idle_timeout and max_per_key now govern the hop to the proxy: keep "
                 "idle_timeout below the proxy's downstream idle timeout (Envoy: 1 h); the "
                 "server sees the proxy's own pool (Envoy: upstream idle 1 h, breakers at "
                 "1024 connections), so tune that in the mesh (Istio DestinationRule "
                 "connectionPool)");
    }
    return true;
}
