/* tests/support/hts_modes.c: what the test server writes for each hts_mode (see the
 * mode comments in http_test_server.h); the threads and sockets around it are in
 * http_test_server.c. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "support/hts_internal.h"

/* Writes a 200 response with b's body: the status line first, then, after stall_ms when
 * that is positive, the rest. with_conn adds "Connection: close" when the client asked
 * for it; without it the response carries no Connection header at all. */
static int respond(hts_conn *c, const hts_behavior *b, const hts_req *req, bool with_conn,
                   int stall_ms)
{
    static const char status[] = "HTTP/1.1 200 OK\r\n";
    char head[160];
    int hl =
        snprintf(head, sizeof head, "Content-Length: %zu\r\nContent-Type: text/plain\r\n%s\r\n",
                 b->body_len, with_conn && req->close ? "Connection: close\r\n" : "");
    if (hts__write_all(c->s, c->fd, status, sizeof status - 1) != 0)
        return -1;
    if (stall_ms > 0 && hts__stall(c->s, stall_ms) != 0)
        return -1;
    if (hts__write_all(c->s, c->fd, head, (size_t)hl) != 0)
        return -1;
    if (!req->head && hts__write_all(c->s, c->fd, b->body, b->body_len) != 0)
        return -1;
    return 0;
}

/* Carries out behaviour b for the request just read. *idle_ms receives the idle limit
 * for the next request (-1: none). Returns HTS__KEEP, HTS__CLOSE or HTS__RESET. */
int hts__act(hts_conn *c, const hts_behavior *b, const hts_req *req, size_t pending, int *idle_ms)
{
    hts_server *s = c->s;
    int after = req->close ? HTS__CLOSE : HTS__KEEP;
    *idle_ms = -1;
    switch (b->mode) {
    case HTS_NORMAL:
        return respond(c, b, req, true, 0) == 0 ? after : HTS__CLOSE;
    case HTS_UNSOLICITED:
        if (respond(c, b, req, true, 0) != 0 || after == HTS__CLOSE)
            return HTS__CLOSE;
        if (pending > 0) /* the next request is already here */
            return HTS__KEEP;
        switch (hts__wait_fd(s, c->fd, POLLIN, b->delay_ms)) {
        case 1:
            return HTS__KEEP;
        case 0:
            if (hts__write_all(s, c->fd, b->raw, b->raw_len) != 0 || b->close_after)
                return HTS__CLOSE;
            return HTS__KEEP;
        default:
            return HTS__CLOSE;
        }
    case HTS_CLOSE_AFTER_RESPONSE:
        respond(c, b, req, false, 0);
        return HTS__CLOSE;
    case HTS_CLOSE_IDLE_AFTER:
        *idle_ms = b->delay_ms;
        return respond(c, b, req, true, 0) == 0 ? after : HTS__CLOSE;
    case HTS_RESET_MID_BODY: {
        static const char head[] = "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n"
                                   "Content-Type: application/octet-stream\r\n\r\n";
        char body[1000];
        memset(body, 'x', sizeof body);
        if (hts__write_all(s, c->fd, head, sizeof head - 1) == 0)
            hts__write_all(s, c->fd, body, sizeof body);
        return HTS__RESET;
    }
    case HTS_SLOW_HEADERS:
        return respond(c, b, req, true, b->delay_ms) == 0 ? after : HTS__CLOSE;
    case HTS_NO_RESPONSE: {
        char sink[4096];
        while (hts__wait_fd(s, c->fd, POLLIN, -1) == 1) {
            ssize_t n = recv(c->fd, sink, sizeof sink, 0);
            if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
                break;
        }
        return HTS__CLOSE;
    }
    case HTS_RAW:
        if (hts__write_all(s, c->fd, b->raw, b->raw_len) != 0 || b->close_after)
            return HTS__CLOSE;
        return HTS__KEEP;
    case HTS_CLOSE_BEFORE_RESPONSE:
        return HTS__CLOSE;
    case HTS_RESET_BEFORE_RESPONSE:
        return HTS__RESET;
    case HTS_EARLY_RESPONSE: /* served before any request is framed (conn_main) */
        return HTS__CLOSE;
    }
    return HTS__CLOSE;
}
