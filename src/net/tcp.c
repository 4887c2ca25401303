/* tcp.c: TCP connections: a non-blocking connect to one address split into start and
 * finish (the fault proxy's upstream), the blocking connect with the dialer's defaults
 * (dial.c), and keepalive settings.
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

tp_err tp__tcp_connect(const char *host, uint16_t port, int64_t deadline, int *fd,
                       int64_t *trace_dns_ns, int64_t *trace_connect_ns, tp_errinfo *err)
{
    return tp__dial_host(host, port, NULL, deadline, fd, trace_dns_ns, trace_connect_ns, err);
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
