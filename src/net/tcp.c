/* tcp.c: TCP connections: a non-blocking connect split into start and finish for event
 * loops, the blocking connect over every resolved address bounded by a deadline, and
 * keepalive settings.
 *
 * Sockets are created non-blocking and close-on-exec in one call (no window in which a
 * fork+exec elsewhere in the process inherits them), with TCP_NODELAY because request/
 * response protocols write small messages and wait for the answer: Nagle's algorithm
 * combined with delayed ACKs would add up to 40 ms per request. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "net/net.h"

/* Go's dialer gives each address at least this much of a shared deadline. */
#define ATTEMPT_MIN_NS (2 * TP_NSEC_PER_SEC)

tp_err tp__tcp_connect_start(const struct sockaddr *addr, socklen_t addrlen, int *fd,
                             const char *dest, tp_errinfo *err)
{
    *fd = -1;
    int s = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
    if (s < 0)
        return tp__net_error(errno, "socket", dest, err);
    int one = 1;
    if (setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0) {
        int e = errno;
        close(s);
        return tp__net_error(e, "setsockopt", dest, err);
    }
    if (connect(s, addr, addrlen) == 0) {
        *fd = s;
        return TP_OK;
    }
    int e = errno;
    /* EINTR on a non-blocking connect: the connection still proceeds asynchronously,
     * exactly as with EINPROGRESS; calling connect() again would fail with EALREADY. */
    if (e == EINPROGRESS || e == EINTR) {
        *fd = s;
        return TP_PENDING;
    }
    close(s);
    return tp__net_error(e, "connect", dest, err);
}

tp_err tp__tcp_connect_finish(int fd, const char *dest, tp_errinfo *err)
{
    int e = 0;
    socklen_t len = sizeof e;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len) != 0)
        e = errno;
    if (e == 0)
        return TP_OK;
    return tp__net_error(e, "connect", dest, err);
}

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

/* The deadline of one attempt when `left` addresses remain (this one included). */
static int64_t attempt_deadline(int64_t deadline, int64_t now, int left)
{
    if (deadline == TP_DURATION_INFINITE || left <= 1)
        return deadline;
    int64_t remaining = deadline - now;
    int64_t share = remaining / left;
    if (share < ATTEMPT_MIN_NS)
        share = remaining < ATTEMPT_MIN_NS ? remaining : ATTEMPT_MIN_NS;
    return now + share;
}

/* One address: start, wait for writability until until, finish. Closes the socket on
 * every failure. */
static tp_err connect_one(const struct addrinfo *ai, const char *dest, int64_t until, int *fd,
                          tp_errinfo *err)
{
    int s;
    tp_err rc = tp__tcp_connect_start(ai->ai_addr, ai->ai_addrlen, &s, dest, err);
    if (rc == TP_PENDING) {
        rc = tp__net_wait(s, TP__WANT_WRITE, until, "connect to", dest, err);
        if (rc == TP_OK)
            rc = tp__tcp_connect_finish(s, dest, err);
        if (rc != TP_OK)
            close(s);
    }
    if (rc == TP_OK)
        *fd = s;
    return rc;
}

tp_err tp__tcp_connect(const char *host, uint16_t port, int64_t deadline, int *fd,
                       int64_t *trace_dns_ns, int64_t *trace_connect_ns, tp_errinfo *err)
{
    *fd = -1;
    if (trace_dns_ns != NULL)
        *trace_dns_ns = 0;
    if (trace_connect_ns != NULL)
        *trace_connect_ns = 0;
    int64_t t0 = tp_clock_now();
    struct addrinfo *list;
    tp_err rc = tp__resolve_until(host, port, deadline, &list, err);
    int64_t t1 = tp_clock_now();
    if (trace_dns_ns != NULL)
        *trace_dns_ns = t1 - t0;
    if (rc != TP_OK)
        return rc;

    int left = 0;
    for (const struct addrinfo *ai = list; ai != NULL; ai = ai->ai_next)
        left++;
    for (const struct addrinfo *ai = list; ai != NULL; ai = ai->ai_next, left--) {
        char dest[320];
        format_dest(host, ai->ai_addr, port, dest, sizeof dest);
        int64_t now = tp_clock_now();
        if (now >= deadline) {
            rc = tp_errinfo_set(err, TP_ETIMEDOUT, 0, "connect to %s: timed out", dest);
            break;
        }
        rc = connect_one(ai, dest, attempt_deadline(deadline, now, left), fd, err);
        /* Running out of descriptors or memory is local: another address cannot help. */
        if (rc == TP_OK || rc == TP_ENOFD || rc == TP_ENOMEM)
            break;
    }
    freeaddrinfo(list);
    if (trace_connect_ns != NULL)
        *trace_connect_ns = tp_clock_now() - t1;
    return rc;
}

tp_err tp__tcp_keepalive(int fd, int idle_s, int interval_s, int count)
{
    if (idle_s <= 0 || interval_s <= 0 || count <= 0)
        return TP_EINVAL;
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one) != 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle_s, sizeof idle_s) != 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval_s, sizeof interval_s) != 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof count) != 0)
        return tp__net_error(errno, "setsockopt", NULL, NULL);
    return TP_OK;
}
