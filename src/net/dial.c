/* dial.c: the dialer every connector uses (net.h): Happy Eyeballs over the resolved
 * addresses, one deadline for all of them, the socket options set before connect
 * (TCP_NODELAY, TCP_USER_TIMEOUT, a local address without its port), keepalive after,
 * and Unix domain sockets. A non-blocking step for event loops; the blocking call runs
 * the same step between polls.
 *
 * Happy Eyeballs v2 (RFC 8305): addresses alternate between families, IPv6 first; an
 * attempt that has not connected after attempt_delay (250 ms) gets a second one beside
 * it, and so on; an attempt that fails starts the next at once; the first to connect
 * wins and the others are closed. So a black-holed address costs 250 ms, not the
 * connect timeout, and the deadline is the caller's for the whole dial (Go's dialer
 * splits it per address instead, curl races two families on a timer: this is both). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include "net/net.h"

#define DEFAULT_ATTEMPT_DELAY (250 * TP_NSEC_PER_MSEC)

/* "127.0.0.1:80" or "[::1]:80" for an address; prefixed by the host name when the host
 * is not that literal ("localhost (127.0.0.1:80)"), so an error names both what the
 * user asked for and what was actually tried. */
static void format_dest(const char *host, const struct sockaddr *sa, uint16_t port, char *buf,
                        size_t cap)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, ip,
                  sizeof ip);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, ip,
                  sizeof ip);
    const char *lb = sa->sa_family == AF_INET6 ? "[" : "";
    const char *rb = sa->sa_family == AF_INET6 ? "]" : "";
    if (strcmp(host, ip) == 0)
        snprintf(buf, cap, "%s%s%s:%u", lb, ip, rb, (unsigned)port);
    else
        snprintf(buf, cap, "%s (%s%s%s:%u)", host, lb, ip, rb, (unsigned)port);
}

/* RFC 8305 section 4: IPv6 first, then the families alternate, each in the resolver's
 * order (which already sorted them by RFC 6724). Addresses of a family the local
 * address cannot bind are left out. */
static void order_addresses(tp__dial *d, const tp__addrs *addrs)
{
    const tp__addr *v6[TP__DIAL_MAX_ADDRS], *v4[TP__DIAL_MAX_ADDRS];
    int n6 = 0, n4 = 0;
    for (int k = 0; addrs != NULL && k < addrs->n; k++) {
        const tp__addr *a = &addrs->a[k];
        int family = a->u.sa.sa_family;
        if (d->local_family != AF_UNSPEC && family != d->local_family)
            continue;
        if (family == AF_INET6 && n6 < TP__DIAL_MAX_ADDRS)
            v6[n6++] = a;
        else if (family == AF_INET && n4 < TP__DIAL_MAX_ADDRS)
            v4[n4++] = a;
    }
    d->naddrs = 0;
    for (int i = 0; d->naddrs < TP__DIAL_MAX_ADDRS && (i < n6 || i < n4); i++) {
        if (i < n6)
            d->order[d->naddrs++] = *v6[i];
        if (i < n4 && d->naddrs < TP__DIAL_MAX_ADDRS)
            d->order[d->naddrs++] = *v4[i];
    }
}

static tp_err parse_local(tp__dial *d, const char *local, tp_errinfo *err)
{
    struct sockaddr_in *in = (struct sockaddr_in *)(void *)&d->local;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)(void *)&d->local;
    memset(&d->local, 0, sizeof d->local);
    if (inet_pton(AF_INET, local, &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
        d->local_len = sizeof *in;
        d->local_family = AF_INET;
        return TP_OK;
    }
    if (inet_pton(AF_INET6, local, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        d->local_len = sizeof *in6;
        d->local_family = AF_INET6;
        return TP_OK;
    }
    return tp_errinfo_set(err, TP_EINVAL, 0, "local_address: %.64s is not an IP address", local);
}

tp_err tp__dial_begin(tp__dial *d, const char *host, uint16_t port, const tp__addrs *addrs,
                      const tp__dial_options *o, int64_t deadline, tp_errinfo *err)
{
    memset(d, 0, sizeof *d);
    d->o = o != NULL ? *o : (tp__dial_options){0};
    d->o.local_address = NULL; /* parsed below; the caller's string is not kept */
    d->o.unix_path = NULL;
    if (d->o.attempt_delay <= 0)
        d->o.attempt_delay = DEFAULT_ATTEMPT_DELAY;
    snprintf(d->host, sizeof d->host, "%s", host != NULL ? host : "");
    d->port = port;
    d->deadline = deadline;
    d->rc = TP_OK;
    for (int i = 0; i < TP__DIAL_MAX_INFLIGHT; i++)
        d->live[i].fd = -1;
    tp_err rc = TP_OK;
    if (o != NULL && o->unix_path != NULL) {
        struct sockaddr_un *un = (struct sockaddr_un *)(void *)&d->unix_addr;
        size_t n = strlen(o->unix_path);
        if (n == 0 || n >= sizeof un->sun_path)
            rc = tp_errinfo_set(err, TP_EINVAL, 0, "unix socket path: 1 to %zu bytes",
                                sizeof un->sun_path - 1);
        else {
            un->sun_family = AF_UNIX;
            memcpy(un->sun_path, o->unix_path, n + 1);
            d->unix_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
            snprintf(d->host, sizeof d->host, "%s", o->unix_path);
            d->naddrs = 1;
        }
    } else {
        d->local_family = AF_UNSPEC;
        if (o != NULL && o->local_address != NULL)
            rc = parse_local(d, o->local_address, err);
        if (rc == TP_OK) {
            order_addresses(d, addrs);
            if (d->naddrs == 0)
                rc = tp_errinfo_set(err, TP_ERESOLVE, 0,
                                    d->local_family != AF_UNSPEC
                                        ? "%s: no address of the local address's family"
                                        : "%s: no address",
                                    d->host);
        }
    }
    return rc;
}

/* What a socket gets before its connect: no Nagle (request/response protocols write
 * small messages and wait: with delayed ACKs it would add up to 40 ms), the user
 * timeout, and the local address with its port left to connect(): bind() alone would
 * pick a port for every destination at once and run out at 28,000 connections;
 * IP_BIND_ADDRESS_NO_PORT lets connect() choose it per destination (the 4-tuple). */
static tp_err prepare(tp__dial *d, int s, bool inet, const char *dest, tp_errinfo *err)
{
    if (!inet)
        return TP_OK;
    int one = 1;
    if (setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0)
        return tp__net_error(errno, "setsockopt TCP_NODELAY", dest, err);
    if (d->o.user_timeout > 0) {
        int64_t ms64 = (d->o.user_timeout + TP_NSEC_PER_MSEC - 1) / TP_NSEC_PER_MSEC;
        unsigned ms = ms64 > (int64_t)UINT32_MAX / 2 ? UINT32_MAX / 2 : (unsigned)ms64;
        if (setsockopt(s, IPPROTO_TCP, TCP_USER_TIMEOUT, &ms, sizeof ms) != 0)
            return tp__net_error(errno, "setsockopt TCP_USER_TIMEOUT", dest, err);
    }
    if (d->local_family != AF_UNSPEC) {
        if (setsockopt(s, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one) != 0)
            return tp__net_error(errno, "setsockopt IP_BIND_ADDRESS_NO_PORT", dest, err);
        if (bind(s, (const struct sockaddr *)&d->local, d->local_len) != 0)
            return tp__net_error(errno, "bind to the local address", dest, err);
    }
    return TP_OK;
}

/* After the connect: keepalive, so an idle connection to a peer that vanished is found
 * even when nothing is sent. */
static tp_err finish_options(tp__dial *d, int s, tp_errinfo *err)
{
    if (d->unix_len > 0 || d->o.keepalive_idle_s <= 0)
        return TP_OK;
    int idle = d->o.keepalive_idle_s;
    if (tp__tcp_keepalive(s, idle, TP__MAX(1, idle / 3), 3) != TP_OK)
        return tp__net_error(errno, "setsockopt SO_KEEPALIVE", d->host, err);
    return TP_OK;
}

/* What an error names for the attempt at order[idx]: "unix:PATH" or the address. */
static void attempt_dest(const tp__dial *d, int idx, char *buf, size_t cap)
{
    if (d->unix_len > 0)
        snprintf(buf, cap, "unix:%s", d->host);
    else
        format_dest(d->host, &d->order[idx].u.sa, d->port, buf, cap);
}

static void drop_live(tp__dial *d, int i)
{
    if (d->o.on_socket != NULL)
        d->o.on_socket(d->o.ud, d->live[i].fd, false);
    close(d->live[i].fd);
    d->live[i] = d->live[--d->nlive];
    d->live[d->nlive].fd = -1;
}

/* Starts the next address's attempt. TP_OK: connected at once (*fd); TP_PENDING: in
 * flight (or failed, the next may go: d->rc has why); else a local failure that no
 * other address can help (descriptors, memory, ports, a bad local address). */
static tp_err start_next(tp__dial *d, int64_t now, int *fd)
{
    const struct sockaddr *sa;
    socklen_t len;
    char dest[320];
    attempt_dest(d, d->next, dest, sizeof dest);
    if (d->unix_len > 0) {
        sa = (const struct sockaddr *)&d->unix_addr;
        len = d->unix_len;
    } else {
        sa = &d->order[d->next].u.sa;
        len = d->order[d->next].len;
    }
    d->next++;
    d->next_start = tp__saturating_add(now, d->o.attempt_delay);
    int s = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                   d->unix_len > 0 ? 0 : IPPROTO_TCP);
    if (s < 0)
        return d->rc = tp__net_error(errno, "socket", dest, &d->err);
    tp_err rc = prepare(d, s, d->unix_len == 0, dest, &d->err);
    if (rc == TP_OK && connect(s, sa, len) != 0) {
        int e = errno;
        /* EINTR on a non-blocking connect: it still proceeds, as with EINPROGRESS.
           A Unix socket whose listener's backlog is full says EAGAIN: wait likewise. */
        if (e == EINPROGRESS || e == EINTR || (e == EAGAIN && d->unix_len > 0)) {
            rc = TP_PENDING;
        } else {
            rc = tp__net_error(e, "connect to", dest, &d->err);
        }
    }
    if (rc == TP_OK) {
        *fd = s;
        return TP_OK;
    }
    if (rc != TP_PENDING) {
        close(s);
        d->rc = rc;
        if (rc == TP_ENOFD || rc == TP_ENOMEM || rc == TP_EPORTS || rc == TP_EINVAL)
            return rc;
        d->next_start = now; /* RFC 8305 section 5: a failure starts the next at once */
        return TP_PENDING;
    }
    d->live[d->nlive].fd = s;
    d->live[d->nlive].idx = d->next - 1;
    d->nlive++;
    if (d->o.on_socket != NULL)
        d->o.on_socket(d->o.ud, s, true);
    return TP_PENDING;
}

static tp_err won(tp__dial *d, int s, int *fd, tp_errinfo *err)
{
    tp__dial_abort(d); /* the other attempts and the addresses: s is no longer among them */
    tp_err rc = finish_options(d, s, err);
    if (rc != TP_OK) {
        close(s);
        return rc;
    }
    *fd = s;
    return TP_OK;
}

tp_err tp__dial_step(tp__dial *d, int64_t now, int *fd, tp_errinfo *err)
{
    *fd = -1;
    /* Attempts in flight first: one may have connected, or failed. */
    for (int i = 0; i < d->nlive;) {
        struct pollfd p = {.fd = d->live[i].fd, .events = POLLOUT};
        if (poll(&p, 1, 0) != 1) {
            i++;
            continue;
        }
        int e = 0;
        socklen_t elen = sizeof e;
        if (getsockopt(p.fd, SOL_SOCKET, SO_ERROR, &e, &elen) != 0)
            e = errno;
        if (e == 0) {
            int s = p.fd;
            /* the winner leaves the list without being closed */
            if (d->o.on_socket != NULL)
                d->o.on_socket(d->o.ud, s, false);
            d->live[i] = d->live[--d->nlive];
            d->live[d->nlive].fd = -1;
            return won(d, s, fd, err);
        }
        char dest[320];
        attempt_dest(d, d->live[i].idx, dest, sizeof dest);
        d->rc = tp__net_error(e, "connect to", dest, &d->err);
        drop_live(d, i);
        d->next_start = now;
    }
    /* Then what is due: the first attempt, the next after a failure or a delay. */
    while (d->next < d->naddrs && d->nlive < TP__DIAL_MAX_INFLIGHT &&
           (d->nlive == 0 || now >= d->next_start) && now < d->deadline) {
        int s = -1;
        tp_err rc = start_next(d, now, &s);
        if (rc == TP_OK)
            return won(d, s, fd, err);
        if (rc != TP_PENDING) {
            tp__dial_abort(d);
            if (err != NULL)
                *err = d->err;
            return rc;
        }
    }
    if (d->nlive == 0 && d->next >= d->naddrs) {
        tp__dial_abort(d);
        if (err != NULL)
            *err = d->err;
        return d->rc != TP_OK ? d->rc
                              : tp_errinfo_set(err, TP_ERESOLVE, 0, "%s: no address", d->host);
    }
    if (now >= d->deadline) {
        int tried = d->next;
        tp__dial_abort(d);
        return tp_errinfo_set(err, TP_ETIMEDOUT, 0,
                              "connect to %s port %u: timed out (%d of "
                              "%d addresses tried)",
                              d->host, (unsigned)d->port, tried, d->naddrs);
    }
    return TP_PENDING;
}

int64_t tp__dial_due(const tp__dial *d)
{
    int64_t due = d->deadline;
    if (d->next < d->naddrs && d->nlive < TP__DIAL_MAX_INFLIGHT)
        due = TP__MIN(due, d->nlive == 0 ? 0 : d->next_start);
    return due;
}

int tp__dial_fds(const tp__dial *d, int *fds, int cap)
{
    int n = 0;
    for (int i = 0; i < d->nlive && n < cap; i++)
        fds[n++] = d->live[i].fd;
    return n;
}

void tp__dial_abort(tp__dial *d)
{
    while (d->nlive > 0)
        drop_live(d, 0);
    d->next = d->naddrs;
}

tp_err tp__dial_run(tp__dial *d, int *fd, tp_errinfo *err)
{
    for (;;) {
        int64_t now = tp_clock_now();
        tp_err rc = tp__dial_step(d, now, fd, err);
        if (rc != TP_PENDING)
            return rc;
        int fds[TP__DIAL_MAX_INFLIGHT];
        int n = tp__dial_fds(d, fds, TP__DIAL_MAX_INFLIGHT);
        struct pollfd p[TP__DIAL_MAX_INFLIGHT];
        for (int i = 0; i < n; i++)
            p[i] = (struct pollfd){.fd = fds[i], .events = POLLOUT};
        int64_t due = tp__dial_due(d), wait_ns = due - tp_clock_now();
        int ms = wait_ns <= 0 ? 0
                 : wait_ns >= (int64_t)INT32_MAX * TP_NSEC_PER_MSEC
                     ? INT32_MAX
                     : (int)((wait_ns + TP_NSEC_PER_MSEC - 1) / TP_NSEC_PER_MSEC);
        if (due == TP_DURATION_INFINITE && n > 0)
            ms = -1;
        if (poll(p, (nfds_t)n, ms) < 0 && errno != EINTR) {
            int e = errno;
            tp__dial_abort(d);
            return tp__net_error(e, "poll", d->host, err);
        }
    }
}

tp_err tp__dial_host(const char *host, uint16_t port, const tp__dial_options *o, int64_t deadline,
                     int *fd, int64_t *trace_dns_ns, int64_t *trace_connect_ns, tp_errinfo *err)
{
    *fd = -1;
    int64_t t0 = tp_clock_now();
    struct addrinfo *list = NULL;
    tp__addrs addrs = {0};
    tp_err rc = TP_OK;
    if (o == NULL || o->unix_path == NULL)
        rc = tp__resolve_until(host, port, deadline, &list, err);
    if (list != NULL) {
        tp__addrs_from_ai(list, &addrs);
        freeaddrinfo(list);
    }
    int64_t t1 = tp_clock_now();
    if (trace_dns_ns != NULL)
        *trace_dns_ns = t1 - t0;
    if (trace_connect_ns != NULL)
        *trace_connect_ns = 0;
    if (rc != TP_OK)
        return rc;
    tp__dial d;
    rc = tp__dial_begin(&d, host, port, &addrs, o, deadline, err);
    if (rc == TP_OK)
        rc = tp__dial_run(&d, fd, err);
    if (trace_connect_ns != NULL)
        *trace_connect_ns = tp_clock_now() - t1;
    return rc;
}
