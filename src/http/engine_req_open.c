/* engine_req_open.c: the event engine's opening of a connection on an open slot the
 * pool handed out: resolve, a non-blocking connect to each address in turn, the TLS
 * handshake, then the connection goes to the pool (tp_conn_open_done) and on to the
 * exchange; or the slot is given back as failed. */
#include <stdio.h>
#include <stdlib.h>

#include "engine.h"

/* ---- opening a connection on an open slot -------------------------------------------- */

void tp__er_open_failed(eng_req *rq, tp_err rc, const tp_errinfo *info)
{
    tp__http_conn *hc = rq->hc;
    if (hc != NULL) {
        tp__eng_unwatch(rq->e, hc->s.fd, true);
        tp__stream_close_reset(&hc->s);
        tp__free(hc);
        rq->hc = NULL;
    }
    if (rq->ai != NULL) {
        freeaddrinfo(rq->ai);
        rq->ai = rq->ai_next = NULL;
    }
    /* A cancellation is not the destination's fault: no backoff for it. */
    tp_err verdict = tp_conn_open_failed(rq->lease, rc, info);
    rq->lease = NULL;
    /* A failure the pool waits through (a restart's refusal, no room while the key holds
     * connections): queue again, as a blocking acquire would, within the deadline. */
    if (verdict == TP_EAGAIN && tp_clock_now() < rq->deadline) {
        tp__er_acquire(rq);
        return;
    }
    tp__er_finish(rq, rc, info);
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
    tp_conn *lease = NULL;
    tp_err rc = tp_conn_open_done(slot, hc, &lease); /* on TP_ECLOSED hc is closed and freed */
    if (rc != TP_OK) {
        rq->lease = NULL;
        tp__er_finish(rq, rc, NULL);
        return;
    }
    tp__er_got_conn(rq, lease);
}

void tp__er_tls_step(eng_req *rq)
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
        tp__er_open_failed(rq, rc, &info);
        return;
    }
    rq->r->info.tls_resumed = rq->hc->tls_resumed;
    open_done(rq);
}

void tp__er_connected(eng_req *rq)
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
        tp__er_open_failed(rq, rc, &info);
        return;
    }
    rq->state = ER_TLS;
    rq->phase_start = tp_clock_now();
    rq->phase_deadline = tp__saturating_add(rq->phase_start, c->o.tls_handshake_timeout);
    rq->phase_code = TP_ETLSTIMEDOUT;
    tp__eng_timer_set(e, rq);
    tp__er_tls_step(rq);
}

/* Starts a connect to the next address; TP_PENDING means wait for the writable edge. */
void tp__er_try_connect(eng_req *rq)
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
            tp_err wrc = tp__eng_watch(e, rq, fd, hc->id, &info);
            if (wrc != TP_OK) {
                rc = wrc;
                break;
            }
            if (rc == TP_OK)
                tp__er_connected(rq);
            return;
        }
        if (rc == TP_ENOFD || rc == TP_EPORTS)
            break;
    }
    tp__er_open_failed(rq, rc, &info);
}

void tp__er_got_slot(eng_req *rq, tp_conn *slot)
{
    tp_http_engine *e = rq->e;
    tp_http_client *c = e->c;
    rq->lease = slot;
    rq->state = ER_CONNECTING;
    tp__http_conn *hc = tp__calloc(1, sizeof *hc);
    tp_errinfo info;
    if (hc == NULL) {
        tp_errinfo_set(&info, TP_ENOMEM, 0, "allocating a connection");
        tp__er_open_failed(rq, TP_ENOMEM, &info);
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
        tp__er_open_failed(rq, rc == TP_ETIMEDOUT ? TP_ECONNTIMEDOUT : rc, &info);
        return;
    }
    rq->ai_next = rq->ai;
    rq->connect_rc = tp_errinfo_set(&rq->connect_info, TP_ERESOLVE, 0, "%s: no address", hc->host);
    tp__er_try_connect(rq);
}
