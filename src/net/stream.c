/* stream.c: a connected byte stream over a socket, plain or TLS: non-blocking read and
 * write steps (dispatching to tls_io.c when s->ssl is set), their blocking forms bounded
 * by a deadline, the stale check for idle connections, and the two ways to close.
 *
 * Plain writes use send(MSG_NOSIGNAL): a write to a connection the peer reset must
 * come back as EPIPE, never as a SIGPIPE that kills a process which did not ignore it. */
#include <errno.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net/net.h"
#include "net/tls_internal.h"

void tp__stream_init(tp__stream *s, int fd)
{
    s->fd = fd;
    s->ssl = NULL;
    s->tls = NULL;
    s->session_key = NULL;
    s->resumed = false;
    s->alpn[0] = '\0';
}

static tp_err closed_error(const char *what, tp_errinfo *err)
{
    return tp_errinfo_set(err, TP_ESTATE, EBADF, "%s: the stream is closed", what);
}

tp_err tp__stream_read_step(tp__stream *s, void *buf, size_t cap, size_t *got, int *want,
                            tp_errinfo *err)
{
    *got = 0;
    *want = 0;
    if (s->fd < 0)
        return closed_error("read", err);
    if (cap == 0) /* a 0 result must mean end of stream, never "asked for nothing" */
        return tp_errinfo_set(err, TP_EINVAL, 0, "read: zero-sized buffer");
    if (s->ssl != NULL)
        return tp__tls_read_step(s, buf, cap, got, want, err);
    for (;;) {
        ssize_t n = recv(s->fd, buf, cap, 0);
        if (n >= 0) {
            *got = (size_t)n;
            return TP_OK;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            *want = TP__WANT_READ;
            return TP_PENDING;
        }
        if (errno != EINTR)
            return tp__net_error(errno, "read", NULL, err);
    }
}

tp_err tp__stream_read(tp__stream *s, void *buf, size_t cap, size_t *got, int64_t deadline,
                       tp_errinfo *err)
{
    for (;;) {
        int want;
        tp_err rc = tp__stream_read_step(s, buf, cap, got, &want, err);
        if (rc != TP_PENDING)
            return rc;
        rc = tp__net_wait(s->fd, want, deadline, "read", NULL, err);
        if (rc != TP_OK)
            return rc;
    }
}

tp_err tp__stream_write_step(tp__stream *s, const void *buf, size_t len, size_t *put, int *want,
                             tp_errinfo *err)
{
    *put = 0;
    *want = 0;
    if (s->fd < 0)
        return closed_error("write", err);
    if (s->ssl != NULL)
        return tp__tls_write_step(s, buf, len, put, want, err);
    size_t done = 0;
    while (done < len) {
        ssize_t n = send(s->fd, (const char *)buf + done, len - done, MSG_NOSIGNAL);
        if (n >= 0) {
            done += (size_t)n;
            continue;
        }
        *put = done;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            *want = TP__WANT_WRITE;
            return TP_PENDING;
        }
        if (errno != EINTR)
            return tp__net_error(errno, "write", NULL, err);
    }
    *put = done;
    return TP_OK;
}

tp_err tp__stream_write_all(tp__stream *s, const void *buf, size_t len, size_t *written,
                            int64_t deadline, tp_errinfo *err)
{
    *written = 0;
    for (;;) {
        size_t put;
        int want;
        tp_err rc = tp__stream_write_step(s, (const char *)buf + *written, len - *written, &put,
                                          &want, err);
        *written += put;
        if (rc != TP_PENDING)
            return rc;
        rc = tp__net_wait(s->fd, want, deadline, "write", NULL, err);
        if (rc != TP_OK)
            return rc;
    }
}

void tp__stream_read_ahead(tp__stream *s)
{
    if (s->ssl != NULL)
        tp__tls_read_ahead(s);
}

bool tp__stream_idle_ok(tp__stream *s)
{
    if (s->fd < 0)
        return false;
    if (s->ssl != NULL && tp__tls_has_pending(s))
        return false;
    /* POLLRDHUP reports the peer's FIN without reading (adaptive.md section 4.1). */
    struct pollfd p = {.fd = s->fd, .events = POLLIN | POLLRDHUP, .revents = 0};
    int r;
    do {
        r = poll(&p, 1, 0);
    } while (r < 0 && errno == EINTR);
    if (r < 0)
        return false;
    if (r == 0)
        return true;
    if (p.revents & (POLLERR | POLLHUP | POLLRDHUP | POLLNVAL))
        return false;
    /* Readable: on plain TCP any byte is an unsolicited one; TLS may be a ticket. */
    return s->ssl != NULL && tp__tls_idle_peek(s);
}

/* Closes the socket, keeping the caller's errno (close() may change it). */
static void close_fd(tp__stream *s)
{
    int saved = errno;
    close(s->fd);
    s->fd = -1;
    errno = saved;
}

void tp__stream_close(tp__stream *s)
{
    if (s->ssl != NULL)
        tp__tls_free(s, true);
    if (s->fd >= 0)
        close_fd(s);
}

void tp__stream_close_reset(tp__stream *s)
{
    if (s->ssl != NULL)
        tp__tls_free(s, false);
    if (s->fd < 0)
        return;
    /* Linger on with a zero timeout: close() discards unsent data and sends an RST,
     * leaving no TIME_WAIT and nothing for a late segment to be accepted into. */
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    (void)setsockopt(s->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close_fd(s);
}
