/* engine_req_open.c: the event engine's opening of a connection on an open slot the
 * pool handed out: resolve, the client's dialer stepped from the loop (each attempt's
 * socket watched, the next address started by the request's timer), the TLS handshake,
 * then the connection goes to the pool (tp_conn_open_done) and on to the exchange; or
 * the slot is given back as failed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    tp__eng_lookup_drop(rq);
    if (rq->tunnel != NULL) {
        tp__http_tunnel_free(rq->tunnel);
        tp__free(rq->tunnel);
        rq->tunnel = NULL;
    }
    /* A cancellation is not the destination's fault: no backoff for it. */
    tp_err verdict = tp_conn_open_failed(rq->lease, rc, info);
    rq->lease = NULL;
    /* A failure the pool waits through (a restart's refusal, no room while the key holds
     * connections): queue again, as a blocking acquire would, within the deadline. */
    if (verdict == TP_EAGAIN && tp_clock_now() < rq->deadline) {
        tp__er_then_acquire(rq);
        return;
    }
    tp__er_then_finish(rq, rc, info);
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
        tp__er_then_finish(rq, rc, NULL);
        return;
    }
    rq->lease = lease;
    tp__er_then_exchange(rq);
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
    TP__HTTP_TRACE(c, TP_HTTP_TRACE_TLS_DONE, rq->hc, .err = rc,
                   .tls_resumed = rq->hc->tls_resumed,
                   .duration_ns = tp_clock_now() - rq->phase_start);
    if (rc != TP_OK) {
        tp__er_open_failed(rq, rc, &info);
        return;
    }
    rq->r->info.tls_resumed = rq->hc->tls_resumed;
    open_done(rq);
}

/* The socket to the destination (or the tunnel through the proxy) is up: TLS, or done. */
static void start_tls(eng_req *rq)
{
    tp_http_engine *e = rq->e;
    tp_http_client *c = e->c;
    tp__http_conn *hc = rq->hc;
    TP__HTTP_TRACE(c, TP_HTTP_TRACE_CONNECT_DONE, hc,
                   .duration_ns = tp_clock_now() - rq->phase_start);
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

void tp__er_tunnel_step(eng_req *rq)
{
    int want = 0;
    tp_errinfo info;
    tp_err rc = tp__http_tunnel_step(rq->tunnel, &rq->hc->s, &want, &info);
    if (rc == TP_PENDING)
        return; /* the connection is watched for both edges */
    if (rc != TP_OK) {
        tp__er_open_failed(rq, rc, &info);
        return;
    }
    tp__http_tunnel_free(rq->tunnel);
    tp__free(rq->tunnel);
    rq->tunnel = NULL;
    start_tls(rq);
}

static void connected(eng_req *rq)
{
    if (rq->proxy == NULL || !rq->hc->tls) {
        start_tls(rq);
        return;
    }
    /* An https:// destination through a proxy: CONNECT first, within connect_timeout. */
    tp_errinfo info;
    rq->tunnel = tp__calloc(1, sizeof *rq->tunnel);
    tp_err rc = rq->tunnel == NULL
                    ? tp_errinfo_set(&info, TP_ENOMEM, 0, "allocating the tunnel")
                    : tp__http_tunnel_begin(rq->tunnel, rq->e->c, rq->proxy, rq->hc->host,
                                            rq->hc->port, &info);
    if (rc != TP_OK) {
        tp__er_open_failed(rq, rc, &info);
        return;
    }
    rq->state = ER_TUNNEL;
    tp__er_tunnel_step(rq);
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
    connected(rq);
}

/* The worker's notice that a lookup is over: to the loop's queue, and wake it. */
static void lookup_finished(void *ud, tp__lookup *l)
{
    (void)l;
    eng_lookup *el = ud;
    tp_http_engine *e = el->e;
    tp__mutex_lock(&e->mu);
    el->next_q = NULL;
    if (e->lookups_tail != NULL)
        e->lookups_tail->next_q = el;
    else
        e->lookups = el;
    e->lookups_tail = el;
    tp__eng_wake_locked(e);
    tp__mutex_unlock(&e->mu);
}

/* Where the socket goes: the proxy, or the destination itself. */
static const char *dial_host(const eng_req *rq)
{
    return rq->proxy != NULL ? rq->proxy->host : rq->hc->host;
}

static uint16_t dial_port(const eng_req *rq)
{
    return rq->proxy != NULL ? rq->proxy->port : rq->hc->port;
}

/* The DNS trace events, as the blocking open emits them. */
static void emit_dns(eng_req *rq, tp_http_trace_type type, tp_err rc, int64_t duration)
{
    TP__HTTP_TRACE(rq->e->c, type, rq->hc, .err = rc, .duration_ns = duration);
}

/* The addresses are known (or not, rc): dial them. */
static void start_dial(eng_req *rq, tp_err rc, const tp__addrs *addrs, tp_errinfo *info)
{
    tp_http_client *c = rq->e->c;
    tp__http_conn *hc = rq->hc;
    if (rc != TP_OK) {
        tp__er_open_failed(rq, rc, info);
        return;
    }
    tp__dial_options o = c->dial;
    o.on_socket = on_dial_socket;
    o.ud = rq;
    rq->watch_rc = TP_OK;
    (void)hc;
    rc = tp__dial_begin(&rq->dial, dial_host(rq), dial_port(rq), addrs, &o,
                        TP__MIN(rq->phase_deadline, rq->deadline), info);
    if (rc != TP_OK) {
        tp__er_open_failed(rq, rc, info);
        return;
    }
    rq->dialing = true;
    tp__er_dial_step(rq);
}

/* Resolves a literal, or a name when no worker takes its lookup (bounded by the open's
 * deadline), on the loop; dials the outcome. */
static void resolve_here(eng_req *rq)
{
    tp__addrs addrs = {0};
    bool cached;
    tp_errinfo info;
    tp_err rc = tp__resolve_cached(rq->e->c->dns, dial_host(rq), dial_port(rq),
                                   TP__MIN(rq->phase_deadline, rq->deadline), &addrs, &cached,
                                   &info);
    start_dial(rq, rc == TP_ETIMEDOUT ? TP_ECONNTIMEDOUT : rc, &addrs, &info);
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
    tp__http_url dest = {.tls = hc->tls, .port = hc->port};
    memcpy(dest.host, hc->host, sizeof dest.host);
    rq->proxy = tp__http_proxy_for(c, &dest);
    rq->phase_start = tp_clock_now();
    rq->phase_deadline = tp__saturating_add(rq->phase_start, c->connect_timeout);
    rq->phase_code = TP_ECONNTIMEDOUT;
    tp__eng_timer_set(e, rq);
    TP__HTTP_TRACE(c, TP_HTTP_TRACE_CONNECT_START, hc, .err = TP_OK);
    if (c->unix_socket != NULL) {
        start_dial(rq, TP_OK, NULL, &info);
        return;
    }
    const char *host = dial_host(rq);
    uint16_t port = dial_port(rq);
    if (tp__is_ip_literal(host)) { /* no lookup, nothing to wait for */
        resolve_here(rq);
        return;
    }
    emit_dns(rq, TP_HTTP_TRACE_DNS_START, TP_OK, 0);
    tp__addrs addrs;
    tp_err rc;
    if (tp__dns_cache_get(c->dns, host, port, rq->phase_start, &addrs, &rc, &info)) {
        emit_dns(rq, TP_HTTP_TRACE_DNS_DONE, rc, tp_clock_now() - rq->phase_start);
        start_dial(rq, rc, &addrs, &info);
        return;
    }
    /* A name not cached: looked up on a worker, the loop goes on meanwhile. */
    eng_lookup *el = tp__calloc(1, sizeof *el);
    if (el == NULL) {
        tp_errinfo_set(&info, TP_ENOMEM, 0, "allocating a lookup");
        tp__er_open_failed(rq, TP_ENOMEM, &info);
        return;
    }
    el->e = e;
    el->rq = rq;
    snprintf(el->host, sizeof el->host, "%s", host);
    el->port = port;
    rc = tp__lookup_start(host, port, lookup_finished, el, &el->l, &info);
    if (rc != TP_OK) {
        tp__free(el);
        resolve_here(rq); /* no worker took it (a full queue): bounded, rather than fail */
        return;
    }
    el->next = e->outstanding;
    if (e->outstanding != NULL)
        e->outstanding->prev = el;
    e->outstanding = el;
    rq->lookup = el;
    rq->state = ER_RESOLVING;
}

static void unlink_lookup(tp_http_engine *e, eng_lookup *el)
{
    if (el->prev != NULL)
        el->prev->next = el->next;
    else
        e->outstanding = el->next;
    if (el->next != NULL)
        el->next->prev = el->prev;
}

eng_req *tp__er_lookup_taken(tp_http_engine *e, eng_lookup *el)
{
    unlink_lookup(e, el);
    eng_req *rq = el->rq;
    struct addrinfo *ai = NULL;
    tp_errinfo info;
    tp_err rc = tp__lookup_take(el->l, &ai, &info);
    tp__addrs addrs = {0};
    if (ai != NULL) {
        tp__addrs_from_ai(ai, &addrs);
        freeaddrinfo(ai);
    }
    /* Kept even when its request gave up: the next open to the name needs it. */
    tp__dns_cache_put(e->c->dns, el->host, el->port, tp_clock_now(), rc, &addrs, &info);
    tp__free(el);
    if (rq == NULL) /* the request gave up on it */
        return NULL;
    rq->lookup = NULL;
    rq->state = ER_CONNECTING;
    emit_dns(rq, TP_HTTP_TRACE_DNS_DONE, rc, tp_clock_now() - rq->phase_start);
    start_dial(rq, rc, &addrs, &info);
    return rq;
}

void tp__eng_lookup_drop(eng_req *rq)
{
    eng_lookup *el = rq->lookup;
    if (el == NULL)
        return;
    rq->lookup = NULL;
    el->rq = NULL;
    if (tp__lookup_abandon(el->l)) { /* the worker frees the lookup */
        unlink_lookup(rq->e, el);
        tp__free(el);
    } /* else its outcome is on its way to the loop, which drops it */
}
