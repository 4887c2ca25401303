/* tools/bench_server_conn.c: one connection of the built-in benchmark server: reading
 * requests, answering them at once (no schedule), writing what the socket did not take,
 * and closing. Scheduled requests are handed to bench_server_scheduled.c.
 *
 * A connection normally owns no buffer at all: bytes are read into the loop's scratch,
 * complete requests are answered from it, and only an incomplete request's bytes (carried
 * to the next read) or output the socket did not take (sent on EPOLLOUT) are copied into
 * the connection. While output is pending the connection is not read, so a client that
 * does not read cannot make us buffer more. */
#include "bench_server_internal.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

static const char resp_keep[] = BENCH_SERVER_RESPONSE;
static const char resp_close[] = BENCH_SERVER_RESPONSE_CLOSE;

void bench_server__conn_close(sloop *w, bconn *c)
{
    close(c->fd); /* also leaves the epoll set: the fd is never duplicated */
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        w->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    free(c->keep);
    free(c->out);
    free(c);
}

int bench_server__set_interest(sloop *w, bconn *c, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.ptr = c};
    return epoll_ctl(w->ep, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Sends p[0..n); what the socket does not take is copied to c->out. Returns -1 on a
 * socket error or out of memory. */
int bench_server__send_or_keep(bconn *c, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t s = send(c->fd, p, n, MSG_NOSIGNAL);
        if (s > 0) {
            p += s;
            n -= (size_t)s;
        } else if (s < 0 && errno == EINTR) {
            continue;
        } else if (s < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            c->out = malloc(n);
            if (c->out == NULL)
                return -1;
            memcpy(c->out, p, n);
            c->out_len = n;
            c->out_off = 0;
            return 0;
        } else {
            return -1;
        }
    }
    return 0;
}

int bench_server__keep(bconn *c, const char *data, size_t n)
{
    if (n > 0) {
        c->keep = malloc(n);
        if (c->keep == NULL)
            return -1;
        memcpy(c->keep, data, n);
    }
    c->keep_len = n;
    return 0;
}

/* Answers the complete requests in data[0..len) in order, as long as the socket takes
 * the answers; keeps the rest in c->keep. Returns -1 when the connection must close now
 * (bad request, socket error, out of memory). */
static int serve(sloop *w, bconn *c, const char *data, size_t len)
{
    size_t pos = 0;
    bool blocked = false;
    while (!blocked && !c->close_after) {
        size_t olen = 0;
        bool more = true;
        while (more && !c->close_after && olen + sizeof resp_close <= OUT_SCRATCH) {
            size_t k = c->skip < len - pos ? c->skip : len - pos;
            pos += k;
            c->skip -= k;
            const char *hend = c->skip == 0 ? memmem(data + pos, len - pos, "\r\n\r\n", 4) : NULL;
            if (hend == NULL) {
                more = false;
                break;
            }
            size_t body, hl = (size_t)(hend - (data + pos)) + 4;
            bool cl, head;
            if (bench_server__scan_headers(data + pos, hl - 2, &body, &cl, &head) != 0)
                return -1;
            const char *r = cl ? resp_close : resp_keep;
            size_t rl = (cl ? sizeof resp_close : sizeof resp_keep) - 1;
            if (head)
                rl -= sizeof BENCH_SERVER_BODY - 1;
            memcpy(w->out + olen, r, rl);
            olen += rl;
            pos += hl;
            c->skip = body;
            c->close_after = cl;
        }
        if (olen > 0 && bench_server__send_or_keep(c, w->out, olen) != 0)
            return -1;
        blocked = c->out != NULL;
        if (!more)
            break;
    }
    size_t rest = c->close_after ? 0 : len - pos;
    if (!blocked && rest > MAX_HEADER)
        return -1; /* no end of headers in sight */
    return bench_server__keep(c, data + pos, rest);
}

/* After serve(): wait for the socket to take pending output, close, or read on. */
void bench_server__settle(sloop *w, bconn *c, bool was_blocked)
{
    if (c->out != NULL) {
        if (!was_blocked && bench_server__set_interest(w, c, EPOLLOUT) != 0)
            bench_server__conn_close(w, c);
    } else if (c->close_after) {
        bench_server__conn_close(w, c);
    } else if (was_blocked && bench_server__set_interest(w, c, EPOLLIN) != 0) {
        bench_server__conn_close(w, c);
    }
}

void bench_server__on_readable(sloop *w, bconn *c)
{
    size_t have = c->keep_len;
    if (have > 0)
        memcpy(w->in, c->keep, have);
    ssize_t n = recv(c->fd, w->in + have, IN_SCRATCH - have, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        /* The peer closed (or failed); all it sent has been answered. */
        bench_server__conn_close(w, c);
        return;
    }
    free(c->keep);
    c->keep = NULL;
    c->keep_len = 0;
    if (w->sched != NULL) {
        if (bench_server__take_one(w, c, w->in, have + (size_t)n) != 0)
            bench_server__conn_close(w, c);
        return;
    }
    if (serve(w, c, w->in, have + (size_t)n) != 0) {
        bench_server__conn_close(w, c);
        return;
    }
    bench_server__settle(w, c, false);
}

void bench_server__on_writable(sloop *w, bconn *c)
{
    ssize_t s = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
    if (s < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (s <= 0) {
        bench_server__conn_close(w, c);
        return;
    }
    c->out_off += (size_t)s;
    if (c->out_off < c->out_len)
        return;
    free(c->out);
    c->out = NULL;
    if (w->sched != NULL) {
        if (c->close_after)
            bench_server__conn_close(w, c);
        else
            bench_server__next_request(w, c);
        return;
    }
    /* Input that arrived with the blocked batch is answered before reading more. */
    size_t have = c->keep_len;
    if (have > 0 && !c->close_after) {
        memcpy(w->in, c->keep, have);
        free(c->keep);
        c->keep = NULL;
        c->keep_len = 0;
        if (serve(w, c, w->in, have) != 0) {
            bench_server__conn_close(w, c);
            return;
        }
    }
    bench_server__settle(w, c, true);
}
