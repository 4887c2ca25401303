/* engine_req.c: one request in the event engine, as a state machine driven by the loop:
 * its start, the acquire from the pool, the dispatch of the loop's events, timers and
 * cancellations to the step for its state, and its completion. It is the only exchange:
 * the blocking call runs it on a private engine (blocking.c), so there is one retry on a
 * fresh connection, one release decision, one mapping of timeouts to errors (connect,
 * TLS, response header, whole request: fail_code). Opening a connection on an open slot
 * is in engine_req_open.c, the exchange on a leased connection in
 * engine_req_exchange.c. */
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include "engine.h"

/* ---- completion ---------------------------------------------------------------------- */

void tp__er_free(eng_req *rq)
{
    if (rq->r != NULL)
        tp_http_response_free(rq->r);
    if (rq->dialing)
        tp__dial_abort(&rq->dial);
    tp__buf_free(&rq->head);
    if (!rq->body_borrowed)
        tp__free(rq->body);
    tp__free(rq->piece);
    tp__free(rq->method);
    tp__http_h2_req_free(&rq->h2q);
    if (rq->hop != NULL) {
        tp__http_hop_free(rq->hop);
        tp__free(rq->hop);
    }
    tp__free(rq);
}

/* Takes rq out of the loop's structures and calls its callback: with the response on
 * success (ownership passes), or the error. The request is freed unless a pool result
 * may still arrive for it (zombie: freed when it does). true: rq goes on instead (a
 * redirect to follow: rq->then says how); false: it is gone. */
static bool finish(eng_req *rq, tp_err rc, const tp_errinfo *info)
{
    tp_http_engine *e = rq->e;
    if (rc == TP_OK && rq->hop != NULL && tp__er_redirect(rq))
        return true; /* on its way to the next hop, or ending there */
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
    TP__HTTP_TRACE(c, TP_HTTP_TRACE_DONE, rq, .err = rc, .status = r != NULL ? r->parse.status : 0,
                   .duration_ns = tp_clock_now() - rq->start, .protocol = rq->h2 ? "h2" : NULL);
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
    return false;
}

/* The one mapping of a timer that fired to the error it means: the whole request's
 * deadline, or the phase's own (connect, TLS, response header), naming the destination
 * and how long the phase ran. */
static tp_err fail_code(const eng_req *rq, int64_t now, tp_errinfo *info)
{
    double ms = (double)(now - rq->phase_start) / (double)TP_NSEC_PER_MSEC;
    const char *br = strchr(rq->host, ':') != NULL ? "[" : "", *ket = *br ? "]" : "";
    if (now >= rq->deadline)
        return tp_errinfo_set(info, TP_EREQTIMEDOUT, 0,
                              "the request's deadline passed (%s%s%s:%u, after %.0f ms)", br,
                              rq->host, ket, (unsigned)rq->port,
                              (double)(now - rq->start) / (double)TP_NSEC_PER_MSEC);
    const char *what = rq->phase_code == TP_ECONNTIMEDOUT  ? "connect to"
                       : rq->phase_code == TP_ETLSTIMEDOUT ? "TLS handshake with"
                       : rq->phase_code == TP_EHDRTIMEDOUT ? "response header from"
                                                           : "waiting for";
    return tp_errinfo_set(info, rq->phase_code, 0, "%s %s%s%s:%u timed out after %.0f ms", what, br,
                          rq->host, ket, (unsigned)rq->port, ms);
}

/* ---- acquiring ------------------------------------------------------------------------ */

/* The pool's answer to a queued acquire, on whatever thread granted it: recorded for
 * the loop, which is woken. */
static void on_acquired(void *ud, tp_err status, tp_acquired kind, tp_conn *conn,
                        const tp_errinfo *err)
{
    eng_req *rq = ud;
    tp_http_engine *e = rq->e;
    tp__mutex_lock(&e->mu);
    rq->has_result = true;
    rq->acq_status = status;
    rq->acq_kind = kind;
    rq->acq_conn = conn;
    if (err != NULL)
        rq->acq_info = *err;
    else
        tp_errinfo_clear(&rq->acq_info);
    rq->next_q = NULL;
    if (e->results_tail != NULL)
        e->results_tail->next_q = rq;
    else
        e->results = rq;
    e->results_tail = rq;
    tp__eng_wake_locked(e);
    tp__mutex_unlock(&e->mu);
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
        tp__er_then_finish(
            rq, tp_errinfo_set(&info, TP_EREQTIMEDOUT, 0, "the request's deadline passed"), &info);
        return;
    }
    /* HTTP/2 connections are opened by the pool's workers (a dial, TLS and the server's
     * SETTINGS, blocking): one per destination at a time, so the loop loses no thread. */
    unsigned flags = rq->h2 ? 0u
                            : TP_ACQUIRE_CALLER_OPENS | (rq->attempt > 0 ? TP_ACQUIRE_FRESH : 0u);
    tp_acquire_req areq =
        tp_acquire_req_for(rq->key, rq->keylen, TP__MIN(c->acquire_timeout, left), flags);
    tp_acquire_result res;
    tp_err rc =
        tp_acquire_async(rq->h2 ? c->h2_pool : c->pool, &areq, on_acquired, rq, &res, &info);
    rq->ticket = 0;
    if (rc != TP_OK && !(rq->h2 && tp__er_h2_fall_back(rq, rc, &info)))
        tp__er_then_finish(rq, rc, &info);
    else if (rc != TP_OK)
        return; /* on to HTTP/1.1 (rq->then) */
    else if (res.kind == TP_ACQUIRED_LEASE && rq->h2)
        tp__er_h2_got_lease(rq, res.conn);
    else if (res.kind == TP_ACQUIRED_LEASE)
        tp__er_got_conn(rq, res.conn);
    else if (res.kind == TP_ACQUIRED_OPEN_SLOT)
        tp__er_got_slot(rq, res.conn);
    else {
        rq->ticket = res.ticket;
        tp__eng_timer_set(e, rq);
    }
}

/* Does what the steps left for the dispatcher (rq->then) until the request waits for
 * something or is gone. Every entry below ends here, and only here does a request end,
 * so no step runs on a request that has been freed under it. */
static void settle(eng_req *rq)
{
    for (;;) {
        er_then t = rq->then;
        rq->then = ER_THEN_WAIT;
        switch (t) {
        case ER_THEN_WAIT:
            return;
        case ER_THEN_ACQUIRE:
            acquire(rq);
            break;
        case ER_THEN_EXCHANGE:
            tp__er_got_conn(rq, rq->lease);
            break;
        case ER_THEN_FINISH:
            if (!finish(rq, rq->then_rc, rq->then_has_info ? &rq->then_info : NULL))
                return;
            break;
        }
    }
}

void tp__er_settle(eng_req *rq)
{
    settle(rq);
}

/* ---- the entries: the loop hands each event to the request here ------------------------ */

void tp__er_start(eng_req *rq)
{
    tp_errinfo info;
    if (rq->cancel) {
        rq->state = ER_ACQUIRING; /* so finish() unlinks it from the active list */
        tp__er_then_finish(rq, tp_errinfo_set(&info, TP_ECANCELED, 0, "canceled"), &info);
    } else if (!tp__er_new_response(rq)) {
        rq->state = ER_ACQUIRING;
        tp__er_then_finish(rq, tp_errinfo_set(&info, TP_ENOMEM, 0, "allocating the response"),
                           &info);
    } else {
        rq->then = ER_THEN_ACQUIRE;
    }
    settle(rq);
}

void tp__er_on_result(eng_req *rq)
{
    tp_http_engine *e = rq->e;
    rq->ticket = 0;
    if (rq->state == ER_DONE) {
        /* Completed (timed out, canceled) while the pool was answering: give back what
         * it answered with, then let the request go. */
        if (rq->acq_status == TP_OK && rq->acq_kind == TP_ACQUIRED_LEASE)
            tp_conn_release(rq->acq_conn, 0);
        else if (rq->acq_status == TP_OK)
            tp_conn_open_failed(rq->acq_conn, TP_ECANCELED, NULL);
        e->zombies--;
        tp__er_free(rq);
        return;
    }
    if (rq->acq_status == TP_OK && rq->acq_kind == TP_ACQUIRED_LEASE && rq->h2)
        tp__er_h2_got_lease(rq, rq->acq_conn);
    else if (rq->acq_status == TP_OK && rq->acq_kind == TP_ACQUIRED_LEASE)
        tp__er_got_conn(rq, rq->acq_conn);
    else if (rq->acq_status == TP_OK)
        tp__er_got_slot(rq, rq->acq_conn);
    else if (rq->h2 && tp__er_h2_fall_back(rq, rq->acq_status, &rq->acq_info))
        ; /* on to HTTP/1.1 (rq->then) */
    else if (rq->acq_status == TP_ETIMEDOUT && tp_clock_now() >= rq->deadline)
        tp__er_then_finish(
            rq,
            tp_errinfo_set(&rq->acq_info, TP_EREQTIMEDOUT, 0,
                           "the request's deadline passed while waiting for a connection"),
            &rq->acq_info);
    else
        tp__er_then_finish(rq, rq->acq_status, &rq->acq_info);
    settle(rq);
}

void tp__er_on_events(eng_req *rq, uint32_t events)
{
    /* Every step below tries its operation and learns the state from it; only a
     * readable edge while sending must be remembered for the receive that follows. */
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
        rq->readable = true;
    switch (rq->state) {
    case ER_CONNECTING:
        tp__er_dial_step(rq);
        break;
    case ER_TUNNEL:
        tp__er_tunnel_step(rq);
        break;
    case ER_TLS:
        tp__er_tls_step(rq);
        break;
    case ER_SENDING:
        tp__er_send_request(rq);
        break;
    case ER_RECEIVING:
        tp__er_receive(rq);
        break;
    default:
        break;
    }
    settle(rq);
}

/* Ends rq with rc, undoing whatever it holds at this stage (rq->then says so). */
static void abort_req(eng_req *rq, tp_err rc, tp_errinfo *info)
{
    switch (rq->state) {
    case ER_ACQUIRING:
        /* Withdrawn from the pool's queue: no result will come. Too late: the result
         * arrives later and is given back (finish() keeps the request for it). */
        if (rq->ticket != 0 &&
            tp_acquire_cancel(rq->h2 ? rq->e->c->h2_pool : rq->e->c->pool, rq->ticket) == TP_OK)
            rq->ticket = 0;
        tp__er_then_finish(rq, rc, info);
        return;
    case ER_RESOLVING:
    case ER_TUNNEL:
    case ER_CONNECTING:
    case ER_TLS:
        tp__er_open_failed(rq, rc, info);
        return;
    case ER_SENDING:
    case ER_RECEIVING:
        tp__eng_unwatch(rq->e, rq->hc->s.fd, true);
        tp_conn_release(rq->lease, TP_RELEASE_BROKEN);
        rq->lease = NULL;
        rq->hc = NULL;
        rq->r->conn = NULL;
        tp__er_then_finish(rq, rc, info);
        return;
    case ER_H2:
        tp__er_h2_abort(rq);
        tp__er_then_finish(rq, rc, info);
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
    if (rq->state == ER_SENDING && rq->expect == EXPECT_WAITING && now < rq->deadline)
        tp__er_continue_timeout(rq);
    else if (rq->state == ER_CONNECTING && rq->dialing &&
             now < TP__MIN(rq->deadline, rq->phase_deadline))
        tp__er_dial_step(rq); /* the next address's turn */
    else if (rq->state == ER_H2 && now < TP__MIN(rq->deadline, rq->phase_deadline))
        tp__er_h2_on_health(rq);
    else
        abort_req(rq, rc, &info);
    settle(rq);
}

void tp__er_cancel(eng_req *rq)
{
    tp_errinfo info;
    abort_req(rq, tp_errinfo_set(&info, TP_ECANCELED, 0, "canceled"), &info);
    settle(rq);
}

void tp__er_resume(eng_req *rq)
{
    tp__er_exchange_resume(rq);
    settle(rq);
}

void tp__er_on_lookup(tp_http_engine *e, eng_lookup *el)
{
    eng_req *rq = tp__er_lookup_taken(e, el);
    if (rq != NULL)
        settle(rq);
}
