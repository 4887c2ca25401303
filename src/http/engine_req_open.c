/* engine_req_open.c: the event engine's opening of a connection on an open slot the
 * pool handed out: resolve, the client's dialer stepped from the loop (each attempt's
 * socket watched, the next address started by the request's timer), the TLS handshake,
 * then the connection goes to the pool (tp_conn_open_done) and on to the exchange; or
 * the slot is given back as failed. */
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
    if (rq->dialing) {
        tp__dial_abort(&rq->dial); /* every attempt unwatched and closed */
        rq->dialing = false;
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

/* The dialer's callback: each attempt's socket is watched while it is in flight. */
static void on_dial_socket(void *ud, int fd, bool added)
{
    eng_req *rq = ud;
    if (!added) {
        tp__eng_unwatch(rq->e, fd, true);
        return;
    }
    tp_errinfo info;
    tp_err rc = tp__eng_watch(rq->e, rq, fd, rq->hc->id, &info);
    if (rc != TP_OK && rq->watch_rc == TP_OK) { /* the step that made it fails the dial */
        rq->watch_rc = rc;
        rq->watch_info = info;
    }
}

void tp__er_dial_step(eng_req *rq)
{
    tp_http_engine *e = rq->e;
    int fd = -1;
    tp_errinfo info;
    tp_err rc = tp__dial_step(&rq->dial, tp_clock_now(), &fd, &info);
    if (rq->watch_rc != TP_OK) {
        if (rc == TP_OK)
            close(fd);
        tp__dial_abort(&rq->dial);
        rc = rq->watch_rc;
        info = rq->watch_info;
    }
    if (rc == TP_PENDING) {
        tp__eng_timer_set(e, rq); /* the next attempt's start may come first */
        return;
    }
    rq->dialing = false;
    if (rc == TP_ETIMEDOUT) /* the dial's deadline is the phase's or the request's */
        rc = tp_errinfo_set(&info,
                            rq->deadline < rq->phase_deadline ? TP_EREQTIMEDOUT : TP_ECONNTIMEDOUT,
                            0, "connect to %s timed out after %.0f ms", rq->key,
                            (double)(tp_clock_now() - rq->phase_start) / 1e6);
    if (rc == TP_OK) {
        tp__stream_init(&rq->hc->s, fd);
        rc = tp__eng_watch(e, rq, fd, rq->hc->id, &info);
    }
    if (rc != TP_OK) {
        tp__er_open_failed(rq, rc, &info);
        return;
    }
    tp__eng_timer_set(e, rq);
    tp__er_connected(rq);
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
    struct addrinfo *ai = NULL;
    int64_t dial_deadline = TP__MIN(rq->phase_deadline, rq->deadline);
    tp_err rc = TP_OK;
    if (c->unix_socket == NULL)
        rc = tp__resolve_until(hc->host, hc->port, dial_deadline, &ai, &info);
    if (rc != TP_OK) {
        tp__er_open_failed(rq, rc == TP_ETIMEDOUT ? TP_ECONNTIMEDOUT : rc, &info);
        return;
    }
    tp__dial_options o = c->dial;
    o.on_socket = on_dial_socket;
    o.ud = rq;
    rq->watch_rc = TP_OK;
    rc = tp__dial_begin(&rq->dial, hc->host, hc->port, ai, &o, dial_deadline, &info);
    if (rc != TP_OK) {
        tp__er_open_failed(rq, rc, &info);
        return;
    }
    rq->dialing = true;
    tp__er_dial_step(rq);
}
