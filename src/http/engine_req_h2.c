/* engine_req_h2.c: a request of the event engine as a stream of an HTTP/2 connection.
 *
 * The stream is a lease of the client's h2 pool (opened by the pool's workers). One
 * connection carries many streams, of this engine and of others, and blocking callers
 * may wait on it too, so the connection is nobody's: the engine watches its socket while
 * it has streams on it (eng_h2c, one per connection), and at every edge steps the
 * session (pooled.c: non-blocking, under the connection's own lock) and looks at each of
 * its streams there. Whoever steps serves every stream, so a stream may be found complete
 * after another engine's step; every arrival makes an edge in every epoll set that
 * watches the socket, so none is missed. A request the server did not process (the
 * connection drained before it went out, above a GOAWAY's last stream id,
 * REFUSED_STREAM) goes to the pool again, whatever its method. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include "engine.h"

tp_err tp__er_h2_prepare(eng_req *rq, tp_errinfo *err)
{
    rq->h2 = true;
    return tp__http_h2_req_make(&rq->head, rq->tls, rq->body, rq->body_len, &rq->h2q, err);
}

bool tp__er_h2_fall_back(eng_req *rq, tp_err rc, const tp_errinfo *info)
{
    /* The open that learnt it says so (ENOPROTOOPT); the acquires queued behind it may
     * fail otherwise (the breaker, after the failed opens), but the memory knows. */
    tp_http_client *c = rq->e->c;
    if (c->o.http_version != TP_HTTP_VERSION_AUTO ||
        !((rc == TP_EPROTO && info->sys_errno == ENOPROTOOPT) ||
          tp__http_h2_not_h2(c, rq->key, rq->keylen)))
        return false;
    rq->h2 = false; /* the head serialised at submit is HTTP/1.1's */
    tp__er_then_acquire(rq);
    return true;
}

/* ---- the connection's watcher ---------------------------------------------------------- */

static eng_h2c *watcher(tp_http_engine *e, tp_conn *lease, tp_errinfo *err)
{
    void *conn = tp_conn_get(lease);
    for (eng_h2c *w = e->h2cs; w != NULL; w = w->next)
        if (w->conn == conn)
            return w;
    int fd = tp__h2_lease_fd(lease);
    if ((size_t)fd >= e->nfds) {
        size_t n = TP__MAX((size_t)fd + 1, e->nfds * 2);
        fd_slot *t = tp__realloc(e->fds, n * sizeof *t);
        if (t == NULL) {
            tp_errinfo_set(err, TP_ENOMEM, 0, "growing the engine's descriptor table");
            return NULL;
        }
        memset(t + e->nfds, 0, (n - e->nfds) * sizeof *t);
        e->fds = t;
        e->nfds = n;
    }
    eng_h2c *w = tp__calloc(1, sizeof *w);
    if (w == NULL) {
        tp_errinfo_set(err, TP_ENOMEM, 0, "watching an HTTP/2 connection");
        return NULL;
    }
    /* Edge-triggered both ways, as every connection of the engine; registered while we
     * have streams on it (ADD: a socket already ready gives its first edge at once). */
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
                             .data.u64 = (uint64_t)fd};
    if (epoll_ctl(e->epfd, EPOLL_CTL_ADD, fd, &ev) != 0 &&
        (errno != EEXIST || epoll_ctl(e->epfd, EPOLL_CTL_MOD, fd, &ev) != 0)) {
        tp_errinfo_set(err, errno == ENOMEM ? TP_ENOMEM : TP_ESYS, errno,
                       "epoll_ctl refused an HTTP/2 connection's socket");
        tp__free(w);
        return NULL;
    }
    w->conn = conn;
    w->fd = fd;
    e->fds[fd] = (fd_slot){.h2c = w};
    w->next = e->h2cs;
    e->h2cs = w;
    return w;
}

/* rq leaves its connection's watcher; the last one out stops watching the socket (before
 * its lease goes: the pool may close the connection then). */
static void detach(eng_req *rq)
{
    eng_h2c *w = rq->h2c;
    if (w == NULL)
        return;
    rq->h2c = NULL;
    for (eng_req **p = &w->reqs; *p != NULL; p = &(*p)->h2_next)
        if (*p == rq) {
            *p = rq->h2_next;
            break;
        }
    rq->h2_next = NULL;
    if (w->reqs != NULL)
        return;
    tp_http_engine *e = rq->e;
    for (eng_h2c **p = &e->h2_dirty; w->dirty && *p != NULL; p = &(*p)->next_dirty)
        if (*p == w) {
            *p = w->next_dirty;
            break;
        }
    epoll_ctl(e->epfd, EPOLL_CTL_DEL, w->fd, NULL);
    e->fds[w->fd] = (fd_slot){0};
    for (eng_h2c **p = &e->h2cs; *p != NULL; p = &(*p)->next)
        if (*p == w) {
            *p = w->next;
            break;
        }
    tp__free(w);
}

/* Gives rq's stream (reset if not over) and lease back. */
static void let_go(eng_req *rq)
{
    detach(rq);
    if (rq->h2_st != NULL)
        tp__h2_lease_done(rq->lease, rq->h2_st);
    rq->h2_st = NULL;
    if (rq->lease != NULL)
        tp_conn_release(rq->lease, tp__h2_lease_alive(rq->lease) ? 0 : TP_RELEASE_BROKEN);
    rq->lease = NULL;
}

void tp__er_h2_abort(eng_req *rq)
{
    let_go(rq);
}

/* The request failed with rc: again on another stream when the server did not process it
 * (and tries remain), else its end. */
static void failed(eng_req *rq, tp_err rc, bool unprocessed, tp_errinfo *info)
{
    let_go(rq);
    if (unprocessed && ++rq->h2_attempts < TP__HTTP_H2_MAX_ATTEMPTS &&
        !(rq->flags & TP_HTTP_NO_RETRY)) {
        tp__buf_reset(&rq->r->body); /* nothing of it was answered; to be sure */
        TP__HTTP_TRACE(rq->e->c, TP_HTTP_TRACE_RETRY, rq, .err = rc, .protocol = "h2");
        rq->state = ER_ACQUIRING;
        tp__er_then_acquire(rq);
        return;
    }
    tp__er_then_finish(rq, rc, info);
}

/* The response is complete: its status and fields into rq->r (the body is there). */
static void complete(eng_req *rq, int status)
{
    tp_http_response *r = rq->r;
    size_t flen;
    const char *fields = tp__h2_stream_fields(rq->h2_st, &flen);
    tp_errinfo info;
    if (flen > 0 && (r->h2_fields = tp__malloc(flen)) == NULL) {
        let_go(rq);
        tp__er_then_finish(rq, tp_errinfo_set(&info, TP_ENOMEM, 0, "a response's fields"), &info);
        return;
    }
    if (flen > 0)
        memcpy(r->h2_fields, fields, flen);
    r->h2_fields_len = flen;
    const char *cl = tp__h2_stream_header(rq->h2_st, "content-length");
    r->parse.content_length = cl != NULL ? strtoll(cl, NULL, 10) : -1;
    let_go(rq);
    r->h2 = true;
    r->parse.status = status;
    r->parse.headers_done = r->parse.done = r->parse.keep_alive = true;
    r->info.protocol = "h2";
    r->info.retried = rq->h2_attempts > 0;
    r->info.body_bytes = r->info.wire_body_bytes = r->body.len;
    tp__er_then_finish(rq, TP_OK, NULL);
}

/* Looks at rq's stream after a step: body bytes moved into the response, the header's
 * arrival (the header deadline no longer applies), its end. */
static void look(eng_req *rq)
{
    int status;
    bool done, unprocessed;
    tp_errinfo info;
    tp_err rc = tp__h2_lease_take(rq->lease, rq->h2_st, &rq->r->body, rq->e->c->o.max_body_bytes,
                                  &status, &done, &unprocessed, &info);
    if (rc != TP_OK) {
        failed(rq, rc, unprocessed, &info);
        return;
    }
    if (status != 0 && rq->phase_deadline != TP_DURATION_INFINITE) {
        rq->r->info.ttfb_ns = tp_clock_now() - rq->phase_start;
        rq->phase_deadline = TP_DURATION_INFINITE;
        tp__eng_timer_set(rq->e, rq);
    }
    if (done)
        complete(rq, status);
}

void tp__er_h2_got_lease(eng_req *rq, tp_conn *lease)
{
    tp_http_engine *e = rq->e;
    rq->lease = lease;
    tp_lease_info li;
    tp_conn_lease_info(lease, &li);
    rq->r->info.reused = li.reused;
    rq->r->info.waited_ns = li.waited_ns;
    TP__HTTP_TRACE(e->c, TP_HTTP_TRACE_GOT_CONN, rq, .reused = li.reused, .was_idle = li.reused,
                   .idle_ns = li.idle_ns, .waited_ns = li.waited_ns, .protocol = "h2");
    tp_errinfo info;
    bool unprocessed = false;
    tp_err rc = tp__h2_lease_submit(lease, &rq->h2q.rq, false, &rq->h2_st, &unprocessed, &info);
    eng_h2c *w = rc == TP_OK ? watcher(e, lease, &info) : NULL;
    if (rc == TP_OK && w == NULL)
        rc = info.code;
    if (rc != TP_OK) {
        failed(rq, rc, unprocessed, &info);
        return;
    }
    rq->h2c = w;
    rq->h2_next = w->reqs;
    w->reqs = rq;
    if (!w->dirty) { /* sent with the round's others, by tp__er_h2_flush() */
        w->dirty = true;
        w->next_dirty = e->h2_dirty;
        e->h2_dirty = w;
    }
    rq->state = ER_H2;
    rq->phase_start = tp_clock_now();
    rq->phase_deadline = tp__saturating_add(rq->phase_start, e->c->o.response_header_timeout);
    rq->phase_code = TP_EHDRTIMEDOUT;
    rq->h2_health = tp__h2_lease_health_due(lease);
    tp__eng_timer_set(e, rq);
    look(rq); /* another's step may have served it already */
}

void tp__er_h2_on_health(eng_req *rq)
{
    tp_errinfo info;
    /* Its streams' timers come due together: the first one's step does the work (the
     * others' find nothing due, and look at their own stream). */
    (void)tp__h2_lease_step(rq->lease, &info);
    look(rq);
    if (rq->state != ER_H2 || rq->then != ER_THEN_WAIT)
        return;
    /* The peer spoke meanwhile (the due moved on), or a PING went out: when next. At
     * least 1 ms on, so that a PING that could not be queued does not spin the loop. */
    rq->h2_health = TP__MAX(tp__h2_lease_health_due(rq->lease), tp_clock_now() + TP_NSEC_PER_MSEC);
    tp__eng_timer_set(rq->e, rq);
}

void tp__er_h2_on_events(tp_http_engine *e, eng_h2c *w)
{
    (void)e;
    if (w->reqs == NULL)
        return;
    tp_errinfo info;
    (void)tp__h2_lease_step(w->reqs->lease, &info); /* a dead one fails its streams */
    /* Settling a request may start others on this connection (the list changes) or end
     * the watcher with its last request: take the list as it is now. */
    size_t n = 0;
    for (eng_req *rq = w->reqs; rq != NULL; rq = rq->h2_next)
        n++;
    eng_req *stack[64];
    eng_req **now = n <= 64 ? stack : tp__malloc(n * sizeof *now);
    if (now == NULL) { /* no memory for the list: look at the first ones, the rest later */
        now = stack;
        n = 64;
    }
    size_t k = 0;
    for (eng_req *rq = w->reqs; rq != NULL && k < n; rq = rq->h2_next)
        now[k++] = rq;
    for (size_t i = 0; i < k; i++)
        look(now[i]);
    /* The windows our reads opened go out (w may be gone: a lease still held steps). */
    for (size_t i = 0; i < k; i++)
        if (now[i]->state == ER_H2 && now[i]->then == ER_THEN_WAIT) {
            (void)tp__h2_lease_step(now[i]->lease, &info);
            break;
        }
    for (size_t i = 0; i < k; i++)
        tp__er_settle(now[i]);
    if (now != stack)
        tp__free(now);
}

void tp__er_h2_flush(tp_http_engine *e)
{
    while (e->h2_dirty != NULL) {
        eng_h2c *w = e->h2_dirty;
        e->h2_dirty = w->next_dirty;
        w->dirty = false;
        tp_errinfo info;
        /* What it reads besides comes back as an edge: the loop looks then. */
        (void)tp__h2_lease_step(w->reqs->lease, &info);
    }
}
