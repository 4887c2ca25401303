/* tests/support/hts_blackhole.c: hts_blackhole_open() (declared in http_test_server.h),
 * a loopback port where connect() hangs, for connect-timeout tests.
 *
 * Loopback never loses a SYN by itself and nothing routable may be used, so the hang is
 * made with the listen queue: Linux counts a listener's accept queue as full once it
 * holds more than `backlog` connections, and while it is full it drops incoming SYNs
 * (ListenOverflows) instead of answering or refusing them. With backlog 0 one unaccepted
 * connection fills it. The connecting side then sees nothing but its own SYN
 * retransmissions (1 s, 3 s, 7 s, ...), exactly like a silent, firewalled host. The
 * filling is verified, not assumed: we connect until one attempt stays pending. */
#include "support/http_test_server.h"

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* A connection that has not completed after this long is considered dropped. */
#define PENDING_MS 100

/* Starts a non-blocking connect to 127.0.0.1:port. Returns the socket, its state in
 * *connected (1 established, 0 still pending), or -1. */
static int connect_probe(uint16_t port, int *connected)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a = {
        .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0) {
        *connected = 1;
        return fd;
    }
    if (errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    struct pollfd p = {.fd = fd, .events = POLLOUT};
    int r;
    while ((r = poll(&p, 1, PENDING_MS)) < 0 && errno == EINTR) {
    }
    int err = 0;
    socklen_t el = sizeof err;
    if (r > 0 && (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0 || err != 0)) {
        close(fd);
        errno = err != 0 ? err : errno;
        return -1;
    }
    *connected = r > 0;
    return fd;
}

int hts_blackhole_open(hts_blackhole *bh)
{
    memset(bh, 0, sizeof *bh);
    bh->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (bh->listen_fd < 0)
        return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    if (bind(bh->listen_fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        listen(bh->listen_fd, 0) != 0 ||
        getsockname(bh->listen_fd, (struct sockaddr *)&a, &al) != 0)
        goto fail;
    bh->port = ntohs(a.sin_port);
    /* Fill the accept queue; the first attempt left pending proves SYNs are now dropped.
     * It is kept too: closing it is harmless, keeping it changes nothing. */
    while (bh->n_fds < (int)(sizeof bh->fds / sizeof bh->fds[0])) {
        int connected = 0;
        int fd = connect_probe(bh->port, &connected);
        if (fd < 0)
            goto fail;
        bh->fds[bh->n_fds++] = fd;
        if (!connected)
            return 0;
    }
    errno = EAGAIN; /* every attempt completed: this kernel does not drop SYNs here */
fail:;
    int e = errno;
    hts_blackhole_close(bh);
    errno = e;
    return -1;
}

void hts_blackhole_close(hts_blackhole *bh)
{
    for (int i = 0; i < bh->n_fds; i++)
        close(bh->fds[i]);
    if (bh->listen_fd >= 0)
        close(bh->listen_fd);
    bh->n_fds = 0;
    bh->listen_fd = -1;
}
