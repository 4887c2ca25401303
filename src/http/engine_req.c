/* engine_req.c: one request in the event engine, as a state machine driven by the loop:
 * acquire from the pool (a connection, or an open slot the engine fills itself with a
 * non-blocking connect and TLS handshake), write, read and parse, release, complete.
 * The rules are the blocking call's: the same retry on a fresh connection, the same
 * release decision, the same timeouts (connect, TLS, response header, whole request). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine.h"

static void acquire(eng_req *rq);

/* ---- completion ---------------------------------------------------------------------- */

void tp__er_free(eng_req *rq)
{
    if (rq->r != NULL)
        tp_http_response_free(rq->r);
    if (rq->ai != NULL)
        freeaddrinfo(rq->ai);
    tp__buf_free(&rq->head);
    free(rq->body);
    free(rq->method);
    free(rq);
}

/* Takes rq out of the loop's structures and calls its callback: with the response on
 * success (ownership passes), or the error. The request is freed unless a pool result
 * may still arrive for it (zombie: freed when it does). */
static void finish(eng_req *rq, tp_err rc, const tp_errinfo *info)
{
    tp_http_engine *e = rq->e;
    tp__eng_timer_clear(e, rq);
    if (rq->state != ER_NEW) {
        if (rq->prev_a != NULL)
            rq->prev_a->next_a = rq->next_a;
        else
            e->active = rq->next_a;
        if (rq->next_a != NULL)
            rq->next_a->prev_a = rq->prev_a;
    }
    bool zombie = rq->state == ER_ACQUIRING && rq->ticket != 0;
    rq->state = ER_DONE;
    tp_http_response *r = NULL;
    if (rc == TP_OK) {
        r = rq->r;
        rq->r = NULL;
        r->info.total_ns = tp_clock_now() - rq->start;
    }
    e->completed++;
    atomic_fetch_sub(&e->pending, 1);
    tp_http_client *c = e->c;
    if (c->o.trace != NULL) {
        tp_http_trace_event ev = {.type = TP_HTTP_TRACE_DONE,
                                  .host = rq->host,
                                  .port = rq->port,
                                  .tls = rq->tls,
                                  .err = rc,
                                  .status = r != NULL ? r->parse.status : 0,
                                  .duration_ns = tp_clock_now() - rq->start};
        tp__http_emit(c, &ev);
    }
    tp_errinfo none;
    if (info == NULL && rc != TP_OK) {
        tp_errinfo_set(&none, rc, 0, "%s", tp_strerror(rc));
        info = &none;
    }
    rq->cb(rq->ud, rc, r, rc == TP_OK ? NULL : info);
    if (zombie)
        e->zombies++;
    else
        tp__er_free(rq);
}

static tp_err fail_code(const eng_req *rq, int64_t now, tp_errinfo *info)
{
    if (now >= rq->deadline)
        return tp_errinfo_set(info, TP_EREQTIMEDOUT, 0, "the request's deadline passed");
    return tp_errinfo_set(info, rq->phase_code, 0, "%s", tp_strerror(rq->phase_code));
}

/* ---- the exchange on a leased connection --------------------------------------------- */

static void exchange_failed(eng_req *rq, tp_err rc, const tp_errinfo *info)
{
    tp_http_engine *e = rq->e;
    tp_http_response *r = rq->r;
    bool reused = r->info.reused;
    tp__eng_unwatch(e, rq->hc->s.fd, true);
    tp_conn_release(rq->lease, TP_RELEASE_BROKEN);
    rq->lease = NULL;
    rq->hc = NULL;
    r->conn = NULL;
    if (rq->attempt == 0 && reused && !r->got_byte && tp__http_conn_died(rc) &&
        tp__http_retry_safe(rq->flags, rq->method, rq->body_len, rq->sent)) {
        tp_http_client *c = e->c;
        if (c->o.trace != NULL) {
            tp_http_trace_event ev = {.type = TP_HTTP_TRACE_RETRY,
                                      .host = rq->host,
                                      .port = rq->port,
                                      .tls = rq->tls,
                                      .err = rc};
            tp__http_emit(c, &ev);
        }
        rq->attempt = 1;
        tp__http_resp_free(&r->parse);
        tp__http_resp_init(&r->parse, rq->method, c->o.max_header_bytes, tp__http_on_body, r);
        tp__buf_reset(&r->body);
        r->info.body_bytes = 0;
        r->info.retried = true;
        r->info.reused = false;
        r->got_byte = false;
        rq->phase_deadline = TP_DURATION_INFINITE;
        acquire(rq);
        return;
    }
    finish(rq, rc, info);
}

static void complete(eng_req *rq)
{
    tp_http_response *r = rq->r;
    tp__http_keepalive_hint(r);
    unsigned flags = tp__http_release_flags(r);
    /* A connection kept for reuse stays registered in our epoll (see tp__eng_watch). */
    tp__eng_unwatch(rq->e, rq->hc->s.fd, flags != 0);
    tp_conn_release(rq->lease, flags);
    rq->lease = NULL;
    rq->hc = NULL;
    r->conn = NULL;
    finish(rq, TP_OK, NULL);
}

/* Reads and parses until the response is complete or the socket has nothing more. */
static void receive(eng_req *rq)
{
    tp_http_response *r = rq->r;
    tp__http_conn *hc = rq->hc;
    tp_errinfo info;
    for (;;) {
        if (hc->rpos == hc->rlen) {
            size_t got = 0;
            int want = 0;
            tp_err rc = tp__stream_read_step(&hc->s, hc->rbuf, sizeof hc->rbuf, &got, &want, &info);
            if (rc == TP_PENDING)
                return; /* edge-triggered: the next edge brings more */
            if (rc != TP_OK) {
                exchange_failed(rq, rc, &info);
                return;
            }
            if (got == 0) {
                rc = tp__http_resp_eof(&r->parse, &info);
                if (rc == TP_OK)
                    complete(rq);
                else
                    exchange_failed(rq, rc, &info);
                return;
            }
            tp__http_got_bytes(r, got);
        }
        bool had_headers = r->parse.headers_done;
        tp_err rc = tp__http_feed(r, &info);
        if (rc != TP_OK) {
            r->err = rc;
            exchange_failed(rq, rc, &info);
            return;
        }
        if (!had_headers && r->parse.headers_done) {
            /* The header arrived: only the whole-request deadline is left. */
            rq->phase_deadline = TP_DURATION_INFINITE;
            tp__eng_timer_set(rq->e, rq);
        }
        if (r->parse.done) {
            complete(rq);
            return;
        }
    }
}

/* Writes what is left of the request; then waits for the response. */
static void send_request(eng_req *rq)
{
    tp__http_conn *hc = rq->hc;
    tp_errinfo info;
    while (rq->sent < rq->head.len + rq->body_len) {
        const char *p;
        size_t left;
        if (rq->sent < rq->head.len) {
            p = rq->head.data + rq->sent;
            left = rq->head.len - rq->sent;
        } else {
            p = rq->body + (rq->sent - rq->head.len);
            left = rq->body_len - (rq->sent - rq->head.len);
        }
        size_t put = 0;
        int want = 0;
        tp_err rc = tp__stream_write_step(&hc->s, p, left, &put, &want, &info);
        rq->sent += put;
        if (rc == TP_PENDING)
            return; /* wait for the writable edge */
        if (rc != TP_OK) {
            exchange_failed(rq, rc, &info);
            return;
        }
    }
    tp_http_client *c = rq->e->c;
    rq->state = ER_RECEIVING;
    rq->r->written_at = tp_clock_now();
    if (c->o.trace != NULL) {
        tp_http_trace_event ev = {.type = TP_HTTP_TRACE_WROTE_REQUEST,
                                  .host = hc->host,
                                  .port = hc->port,
                                  .tls = hc->tls};
        tp__http_emit(c, &ev);
    }
    rq->phase_deadline = tp__saturating_add(rq->r->written_at, c->o.response_header_timeout);
    rq->phase_code = TP_EHDRTIMEDOUT;
    tp__eng_timer_set(rq->e, rq);
    /* TLS may already hold decrypted bytes that no edge will announce. */
    if (hc->tls)
        receive(rq);
}

/* A leased connection is ours: register it and send. */
static void got_conn(eng_req *rq, tp_conn *lease)
{
    tp_http_engine *e = rq->e;
    tp_http_client *c = e->c;
    rq->lease = lease;
    rq->hc = tp_conn_get(lease);
    tp_http_response *r = rq->r;
    r->conn = rq->hc;
    r->info.reused = tp_conn_uses(lease) > 1;
    if (r->info.reused)
        r->info.tls_resumed = false;
    tp__http_acq *acq = tp__http_last_acquire();
    r->info.waited_ns = tp_clock_now() - rq->phase_start;
    if (c->o.trace != NULL) {
        tp_http_trace_event ev = {.type = TP_HTTP_TRACE_GOT_CONN,
                                  .host = rq->hc->host,
                                  .port = rq->hc->port,
                                  .tls = rq->hc->tls,
                                  .reused = r->info.reused,
                                  .was_idle = r->info.reused,
                                  .idle_ns = acq->valid ? acq->idle_ns : 0,
                                  .waited_ns = r->info.waited_ns};
        tp__http_emit(c, &ev);
    }
    if (tp__eng_watch(e, rq, rq->hc->s.fd, rq->hc->id) != TP_OK) {
        tp_errinfo info;
        tp_errinfo_set(&info, TP_ESYS, 0, "epoll_ctl refused the connection");
        tp_conn_release(lease, TP_RELEASE_BROKEN);
        rq->lease = NULL;
        rq->hc = NULL;
        r->conn = NULL;
        finish(rq, TP_ESYS, &info);
        return;
    }
    rq->state = ER_SENDING;
    rq->sent = 0;
    rq->phase_deadline = TP_DURATION_INFINITE;
    tp__eng_timer_set(e, rq);
    send_request(rq);
}

/* ---- opening a connection on an open slot -------------------------------------------- */

static void open_failed(eng_req *rq, tp_err rc, const tp_errinfo *info)
{
    tp__http_conn *hc = rq->hc;
    if (hc != NULL) {
        tp__eng_unwatch(rq->e, hc->s.fd, true);
        tp__stream_close_reset(&hc->s);
        free(hc);
        rq->hc = NULL;
    }
    if (rq->ai != NULL) {
        freeaddrinfo(rq->ai);
        rq->ai = rq->ai_next = NULL;
    }
    /* A cancellation is not the destination's fault: no backoff for it. */
    tp_conn_open_failed(rq->lease, rc == TP_ECANCELED ? TP_ECANCELED : rc, info);
    rq->lease = NULL;
    finish(rq, rc, info);
}

static void open_done(eng_req *rq)
{
    tp_http_engine *e = rq->e;
    tp__http_conn *hc = rq->hc;
    tp_conn *slot = rq->lease;
    if (rq->ai != NULL) {
        freeaddrinfo(rq->ai);
        rq->ai = rq->ai_next = NULL;
    }
    tp__eng_unwatch(e, hc->s.fd, false);
    rq->hc = NULL;
    tp_err rc = tp_conn_open_done(slot, hc); /* on TP_ECLOSED hc is closed and freed */
    if (rc != TP_OK) {
        rq->lease = NULL;
        finish(rq, rc, NULL);
        return;
    }
    got_conn(rq, slot);
}

static void tls_step(eng_req *rq)
{
    int want = 0;
    tp_errinfo info;
    tp_err rc = tp__tls_handshake_step(&rq->hc->s, &want, &info);
    if (rc == TP_PENDING)
        return;
    tp_http_client *c = rq->e->c;
    rq->hc->tls_resumed = rc == TP_OK && rq->hc->s.resumed;
    if (c->o.trace != NULL) {
        tp_http_trace_event ev = {.type = TP_HTTP_TRACE_TLS_DONE,
                                  .host = rq->hc->host,
                                  .port = rq->hc->port,
                                  .tls = true,
                                  .err = rc,
                                  .tls_resumed = rq->hc->tls_resumed,
                                  .duration_ns = tp_clock_now() - rq->phase_start};
        tp__http_emit(c, &ev);
    }
    if (rc != TP_OK) {
        open_failed(rq, rc, &info);
        return;
    }
    rq->r->info.tls_resumed = rq->hc->tls_resumed;
    open_done(rq);
}

static void connected(eng_req *rq)
{
    tp_http_engine *e = rq->e;
    tp_http_client *c = e->c;
    tp__http_conn *hc = rq->hc;
    if (c->o.trace != NULL) {
        tp_http_trace_event ev = {.type = TP_HTTP_TRACE_CONNECT_DONE,
                                  .host = hc->host,
                                  .port = hc->port,
                                  .tls = hc->tls,
                                  .duration_ns = tp_clock_now() - rq->phase_start};
        tp__http_emit(c, &ev);
    }
    if (c->o.tcp_keepalive_idle_s > 0)
        tp__tcp_keepalive(hc->s.fd, c->o.tcp_keepalive_idle_s,
                          TP__MAX(1, c->o.tcp_keepalive_idle_s / 3), 3);
    if (!hc->tls) {
        open_done(rq);
        return;
    }
    tp_errinfo info;
    tp__tls_ctx *tls = NULL;
    tp_err rc = tp__http_tls_ctx(c, &tls, &info);
    if (rc == TP_OK)
        rc = tp__tls_start(&hc->s, tls, hc->host, rq->key, &info);
    if (rc != TP_OK) {
        open_failed(rq, rc, &info);
        return;
    }
    rq->state = ER_TLS;
    rq->phase_start = tp_clock_now();
    rq->phase_deadline = tp__saturating_add(rq->phase_start, c->o.tls_handshake_timeout);
    rq->phase_code = TP_ETLSTIMEDOUT;
    tp__eng_timer_set(e, rq);
    tls_step(rq);
}

/* Starts a connect to the next address; TP_PENDING means wait for the writable edge. */
static void try_connect(eng_req *rq)
{
    tp_http_engine *e = rq->e;
    tp__http_conn *hc = rq->hc;
    tp_errinfo info = rq->connect_info;
    tp_err rc = rq->connect_rc;
    while (rq->ai_next != NULL) {
        struct addrinfo *a = rq->ai_next;
        rq->ai_next = a->ai_next;
        int fd = -1;
        rc = tp__tcp_connect_start(a->ai_addr, a->ai_addrlen, &fd, rq->key, &info);
        if (rc == TP_OK || rc == TP_PENDING) {
            tp__stream_init(&hc->s, fd);
            if (tp__eng_watch(e, rq, fd, hc->id) != TP_OK) {
                rc = tp_errinfo_set(&info, TP_ESYS, 0, "epoll_ctl refused the socket");
                break;
            }
            if (rc == TP_OK)
                connected(rq);
            return;
        }
        if (rc == TP_ENOFD || rc == TP_EPORTS)
            break;
    }
    open_failed(rq, rc, &info);
}

static void got_slot(eng_req *rq, tp_conn *slot)
{
    tp_http_engine *e = rq->e;
    tp_http_client *c = e->c;
    rq->lease = slot;
    rq->state = ER_CONNECTING;
    tp__http_conn *hc = calloc(1, sizeof *hc);
    tp_errinfo info;
    if (hc == NULL) {
        tp_errinfo_set(&info, TP_ENOMEM, 0, "allocating a connection");
        open_failed(rq, TP_ENOMEM, &info);
        return;
    }
    snprintf(hc->host, sizeof hc->host, "%s", rq->host);
    hc->port = rq->port;
    hc->tls = rq->tls;
    hc->s.fd = -1;
    hc->id = tp__http_conn_id();
    rq->hc = hc;
    rq->phase_start = tp_clock_now();
    rq->phase_deadline = tp__saturating_add(rq->phase_start, c->connect_timeout);
    rq->phase_code = TP_ECONNTIMEDOUT;
    tp__eng_timer_set(e, rq);
    if (c->o.trace != NULL) {
        tp_http_trace_event ev = {.type = TP_HTTP_TRACE_CONNECT_START,
                                  .host = hc->host,
                                  .port = hc->port,
                                  .tls = hc->tls};
        tp__http_emit(c, &ev);
    }
    /* Name resolution blocks the loop (see http.h); literals do not. */
    tp_err rc = tp__resolve_until(hc->host, hc->port, TP__MIN(rq->phase_deadline, rq->deadline),
                                  &rq->ai, &info);
    if (rc != TP_OK) {
        rq->ai = NULL;
        open_failed(rq, rc == TP_ETIMEDOUT ? TP_ECONNTIMEDOUT : rc, &info);
        return;
    }
    rq->ai_next = rq->ai;
    rq->connect_rc = tp_errinfo_set(&rq->connect_info, TP_ERESOLVE, 0, "%s: no address", hc->host);
    try_connect(rq);
}

/* ---- acquiring ------------------------------------------------------------------------ */

static void on_acquired(void *ud, tp_err status, tp_conn *conn, const tp_errinfo *err)
{
    tp__eng_post_result(ud, status, conn, err);
}

static void acquire(eng_req *rq)
{
    tp_http_engine *e = rq->e;
    tp_http_client *c = e->c;
    rq->state = ER_ACQUIRING;
    rq->phase_start = tp_clock_now();
    int64_t left = rq->deadline == TP_DURATION_INFINITE ? TP_DURATION_INFINITE
                                                        : rq->deadline - rq->phase_start;
    tp_errinfo info;
    if (left <= 0) {
        finish(rq, tp_errinfo_set(&info, TP_EREQTIMEDOUT, 0, "the request's deadline passed"),
               &info);
        return;
    }
    unsigned flags = TP_ACQUIRE_CALLER_OPENS | (rq->attempt > 0 ? TP_ACQUIRE_FRESH : 0u);
    tp_conn *conn = NULL;
    tp__http_last_acquire()->valid = false;
    int st =
        tp_pool_acquire_async_ex(c->pool, rq->key, rq->keylen, TP__MIN(c->acquire_timeout, left),
                                 flags, on_acquired, rq, &conn, &rq->ticket, &info);
    if (st == TP_OK) {
        rq->ticket = 0;
        got_conn(rq, conn);
    } else if (st == TP_OPEN_SLOT) {
        rq->ticket = 0;
        got_slot(rq, conn);
    } else if (st == TP_PENDING) {
        tp__eng_timer_set(e, rq);
    } else {
        rq->ticket = 0;
        finish(rq, st, &info);
    }
}

void tp__er_start(eng_req *rq)
{
    tp_http_client *c = rq->e->c;
    if (rq->cancel) {
        rq->state = ER_ACQUIRING; /* so finish() unlinks it from the active list */
        tp_errinfo info;
        finish(rq, tp_errinfo_set(&info, TP_ECANCELED, 0, "canceled"), &info);
        return;
    }
    tp_http_response *r = calloc(1, sizeof *r);
    rq->r = r;
    if (r == NULL) {
        rq->state = ER_ACQUIRING;
        tp_errinfo info;
        finish(rq, tp_errinfo_set(&info, TP_ENOMEM, 0, "allocating the response"), &info);
        return;
    }
    r->client = c;
    r->max_body = c->o.max_body_bytes;
    r->deadline = rq->deadline;
    r->info.content_length = -1;
    memcpy(r->key, rq->key, rq->keylen);
    r->keylen = rq->keylen;
    tp__buf_init(&r->body);
    tp__http_resp_init(&r->parse, rq->method, c->o.max_header_bytes, tp__http_on_body, r);
    acquire(rq);
}

void tp__er_on_result(eng_req *rq)
{
    tp_http_engine *e = rq->e;
    rq->ticket = 0;
    if (rq->state == ER_DONE) {
        /* Completed (timed out, canceled) while the pool was answering: give back what
         * it answered with, then let the request go. */
        if (rq->acq_status == TP_OK)
            tp_conn_release(rq->acq_conn, 0);
        else if (rq->acq_status == TP_OPEN_SLOT)
            tp_conn_open_failed(rq->acq_conn, TP_ECANCELED, NULL);
        e->zombies--;
        tp__er_free(rq);
        return;
    }
    if (rq->acq_status == TP_OK)
        got_conn(rq, rq->acq_conn);
    else if (rq->acq_status == TP_OPEN_SLOT)
        got_slot(rq, rq->acq_conn);
    else if (rq->acq_status == TP_ETIMEDOUT && tp_clock_now() >= rq->deadline)
        finish(rq,
               tp_errinfo_set(&rq->acq_info, TP_EREQTIMEDOUT, 0,
                              "the request's deadline passed while waiting for a connection"),
               &rq->acq_info);
    else
        finish(rq, rq->acq_status, &rq->acq_info);
}

void tp__er_on_events(eng_req *rq, uint32_t events)
{
    (void)events; /* every step below tries its operation and learns the state from it */
    switch (rq->state) {
    case ER_CONNECTING: {
        tp_errinfo info;
        tp_err rc = tp__tcp_connect_finish(rq->hc->s.fd, rq->key, &info);
        if (rc == TP_PENDING)
            return;
        if (rc == TP_OK) {
            connected(rq);
            return;
        }
        rq->connect_rc = rc;
        rq->connect_info = info;
        tp__eng_unwatch(rq->e, rq->hc->s.fd, true);
        tp__stream_close(&rq->hc->s);
        try_connect(rq); /* the next address, or open_failed */
        return;
    }
    case ER_TLS:
        tls_step(rq);
        return;
    case ER_SENDING:
        send_request(rq);
        return;
    case ER_RECEIVING:
        receive(rq);
        return;
    default:
        return;
    }
}

/* Ends rq with rc, undoing whatever it holds at this stage. */
static void abort_req(eng_req *rq, tp_err rc, tp_errinfo *info)
{
    switch (rq->state) {
    case ER_ACQUIRING:
        /* Withdrawn from the pool's queue: no result will come. Too late: the result
         * arrives later and is given back (finish() keeps the request for it). */
        if (rq->ticket != 0 && tp_pool_acquire_cancel(rq->e->c->pool, rq->ticket) == TP_OK)
            rq->ticket = 0;
        finish(rq, rc, info);
        return;
    case ER_CONNECTING:
    case ER_TLS:
        open_failed(rq, rc, info);
        return;
    case ER_SENDING:
    case ER_RECEIVING:
        tp__eng_unwatch(rq->e, rq->hc->s.fd, true);
        tp_conn_release(rq->lease, TP_RELEASE_BROKEN);
        rq->lease = NULL;
        rq->hc = NULL;
        rq->r->conn = NULL;
        finish(rq, rc, info);
        return;
    case ER_NEW:
    case ER_DONE:
        return;
    }
}

void tp__er_on_timer(eng_req *rq, int64_t now)
{
    tp_errinfo info;
    tp_err rc = fail_code(rq, now, &info);
    if (rq->state == ER_ACQUIRING && now < rq->deadline)
        return; /* only the whole deadline applies while waiting */
    abort_req(rq, rc, &info);
}

void tp__er_cancel(eng_req *rq)
{
    tp_errinfo info;
    abort_req(rq, tp_errinfo_set(&info, TP_ECANCELED, 0, "canceled"), &info);
}
