/* engine_req_exchange.c: the exchange on a leased connection: register it, write the
 * request (watching for an early answer, waiting for a 100 when asked), read and parse
 * the response, release the connection (or hand it to a blocking caller's streamed
 * response at the header), and the retry on a fresh connection when a reused one turns
 * out dead before any response byte. */
#include <string.h>

#include "engine.h"

/* ---- the response of an attempt -------------------------------------------------------- */

bool tp__er_new_response(eng_req *rq)
{
    tp_http_client *c = rq->e->c;
    tp_http_response *r = tp__calloc(1, sizeof *r);
    rq->r = r;
    if (r == NULL)
        return false;
    r->client = c;
    r->max_body = c->o.max_body_bytes;
    r->deadline = rq->deadline;
    r->info.content_length = -1;
    memcpy(r->key, rq->key, rq->keylen);
    r->keylen = rq->keylen;
    tp__buf_init(&r->body);
    r->sink = rq->sink;
    r->sink_ud = rq->sink_ud;
    r->decode = rq->decode;
    r->stream = rq->handover; /* body bytes wait for tp_http_response_read() */
    tp__http_resp_init(&r->parse, rq->method, c->o.max_header_bytes, tp__http_on_body, r);
    return true;
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
    if (rq->attempt == 0 && reused && !r->got_byte && !rq->source_started &&
        tp__http_conn_died(rc) &&
        tp__http_retry_safe(rq->flags, rq->method, rq->body_len, rq->sent)) {
        tp_http_client *c = e->c;
        TP__HTTP_TRACE(c, TP_HTTP_TRACE_RETRY, rq, .err = rc);
        rq->attempt = 1;
        tp__http_resp_free(&r->parse);
        tp__http_resp_init(&r->parse, rq->method, c->o.max_header_bytes, tp__http_on_body, r);
        tp__buf_reset(&r->body);
        r->info.body_bytes = 0;
        r->info.retried = true;
        r->info.reused = false;
        r->got_byte = false;
        rq->phase_deadline = TP_DURATION_INFINITE;
        tp__er_then_acquire(rq);
        return;
    }
    tp__er_then_finish(rq, rc, info);
}

/* TP_HTTP_STREAM: the header is in; the caller's response takes the lease and reads
 * the rest itself (resp_api.c). A redirect to follow is read whole first. */
static bool hand_over(eng_req *rq)
{
    tp_http_response *r = rq->r;
    if (!rq->handover || !r->parse.headers_done)
        return false;
    if (rq->hop != NULL && rq->source == NULL && tp__http_is_redirect(r->parse.status) &&
        tp_http_response_header(r, "Location") != NULL)
        return false;
    tp__http_keepalive_hint(r);
    tp__eng_unwatch(rq->e, rq->hc->s.fd, false); /* read with poll() from now on */
    r->lease = rq->lease;
    r->conn = rq->hc;
    rq->lease = NULL;
    rq->hc = NULL;
    tp__er_then_finish(rq, TP_OK, NULL);
    return true;
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
    tp__er_then_finish(rq, TP_OK, NULL);
}

/* Reads and parses until the response is complete or the socket has nothing more. */
void tp__er_receive(eng_req *rq)
{
    tp_http_response *r = rq->r;
    tp__http_conn *hc = rq->hc;
    tp_errinfo info;
    for (;;) {
        if (r->paused)
            return; /* nothing is read until tp_http_engine_resume(): the window closes */
        if (r->parse.done) { /* an early answer may be complete before we read here */
            complete(rq);
            return;
        }
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
                rc = tp__http_eof(r, &info);
                if (rc != TP_OK)
                    exchange_failed(rq, rc, &info);
                else if (!r->paused) /* else the resume delivers the rest, then completes */
                    complete(rq);
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
        if (hand_over(rq))
            return;
        /* One read can end the message and still leave chunks for a paused sink (several
         * chunks, or one read decoded into several pieces): they go first, on resume. */
        if (r->parse.done && !r->paused) {
            complete(rq);
            return;
        }
    }
}

/* The next framed piece of the body source into rq->piece. TP_OK (piece_len 0 and
 * source_done: nothing more), TP_PENDING (paused), or the error that ends the request. */
static tp_err next_piece(eng_req *rq, tp_errinfo *info)
{
    enum { PIECE = 64 * 1024 };
    if (rq->piece == NULL && (rq->piece = tp__malloc(PIECE + 32)) == NULL)
        return tp_errinfo_set(info, TP_ENOMEM, 0, "allocating the body buffer");
    bool chunked = rq->source_len < 0;
    size_t n = 0;
    rq->source_started = true;
    int v = rq->source(rq->source_ud, rq->piece + 24, PIECE, &n);
    if (v == TP_HTTP_PAUSE && rq->blocking)
        return tp_errinfo_set(info, TP_EINVAL, 0,
                              "the body source paused: only the engine can resume");
    if (v == TP_HTTP_PAUSE) {
        rq->source_paused = true;
        return TP_PENDING;
    }
    if (v != 0)
        return tp_errinfo_set(info, v < 0 ? (tp_err)v : TP_EINVAL, 0,
                              "the body source ended the request (%d)", v);
    if (n > PIECE)
        return tp_errinfo_set(info, TP_EINVAL, 0, "the body source wrote %zu bytes into %d", n,
                              (int)PIECE);
    rq->source_total += n;
    if (!chunked && (rq->source_total > (uint64_t)rq->source_len ||
                     (n == 0 && rq->source_total != (uint64_t)rq->source_len)))
        return tp_errinfo_set(info, TP_EINVAL, 0,
                              "the body source gave %llu bytes, %lld were announced",
                              (unsigned long long)rq->source_total, (long long)rq->source_len);
    rq->piece_off = 24;
    rq->piece_len = 24 + n;
    if (chunked) {
        char head[24];
        size_t hl = tp__http_chunk_frame(n, head, sizeof head);
        rq->piece_off = 24 - hl;
        memcpy(rq->piece + rq->piece_off, head, hl);
        if (n > 0) {
            memcpy(rq->piece + 24 + n, "\r\n", 2);
            rq->piece_len += 2;
        }
    }
    rq->source_done = n == 0;
    return TP_OK;
}

/* Writes the body source's pieces; TP_OK when all is sent, TP_PENDING (wait for an edge
 * or a resume), or the error. An early answer: *early. */
static tp_err send_source(eng_req *rq, bool *early, tp_errinfo *info)
{
    tp__http_conn *hc = rq->hc;
    for (;;) {
        if (rq->piece_off == rq->piece_len) {
            if (rq->source_done)
                return TP_OK;
            tp_err rc = next_piece(rq, info);
            if (rc != TP_OK)
                return rc;
            continue;
        }
        size_t put = 0;
        int want = 0;
        tp_err rc = tp__stream_write_step(&hc->s, rq->piece + rq->piece_off,
                                          rq->piece_len - rq->piece_off, &put, &want, info);
        rq->piece_off += put;
        rq->sent += put;
        if (rc != TP_OK && (*early = tp__http_take_early(rq->r)))
            return TP_OK;
        if (rc != TP_OK)
            return rc;
    }
}

/* The server answered before the request was all sent: read that answer. */
static void answered_early(eng_req *rq)
{
    rq->state = ER_RECEIVING;
    rq->phase_deadline = TP_DURATION_INFINITE; /* the header is here */
    tp__eng_timer_set(rq->e, rq);
    tp__er_receive(rq);
}

/* Expect: 100-continue, once the header is out: true to send the body now (a 100 came, or
 * the wait ended: tp__er_continue_timeout()); false when the request waits for an edge or
 * the timer, answered early, or failed. */
static bool may_send_body(eng_req *rq)
{
    if (rq->expect == EXPECT_NONE || rq->sent < rq->head.len)
        return true;
    tp_http_client *c = rq->e->c;
    if (rq->expect == EXPECT_AHEAD) {
        rq->expect = EXPECT_WAITING;
        rq->phase_deadline = tp_deadline_after(c->o.expect_continue_timeout);
        tp__eng_timer_set(rq->e, rq);
    }
    tp_errinfo info;
    tp_err rc = tp__http_continue_step(rq->r, &info);
    if (rc == TP_PENDING)
        return false;
    rq->expect = EXPECT_NONE;
    rq->phase_deadline = TP_DURATION_INFINITE;
    tp__eng_timer_set(rq->e, rq);
    if (rc != TP_OK) {
        exchange_failed(rq, rc, &info);
        return false;
    }
    if (rq->r->early) {
        answered_early(rq);
        return false;
    }
    return true;
}

void tp__er_continue_timeout(eng_req *rq)
{
    rq->expect = EXPECT_NONE; /* no word from the server: the body goes */
    rq->phase_deadline = TP_DURATION_INFINITE;
    tp__eng_timer_set(rq->e, rq);
    tp__er_send_request(rq);
}

/* Writes what is left of the request, watching for an early answer whenever the socket
 * will not take more (the connection is registered for both edges); then waits for the
 * response. */
void tp__er_send_request(eng_req *rq)
{
    tp__http_conn *hc = rq->hc;
    tp_errinfo info;
    if (rq->sent == 0)
        rq->r->written_at = 0;
    while (rq->sent < rq->head.len + rq->body_len) {
        if (!may_send_body(rq))
            return;
        const char *p;
        size_t left;
        if (rq->sent < rq->head.len) {
            p = rq->head.data + rq->sent;
            left = rq->head.len - rq->sent;
        } else {
            size_t off = rq->sent - rq->head.len;
            p = rq->body + off;
            left = tp__http_send_slice(off, rq->body_len);
        }
        size_t put = 0;
        int want = 0;
        tp_err rc = tp__stream_write_step(&hc->s, p, left, &put, &want, &info);
        rq->sent += put;
        bool slice_done = rc == TP_OK && rq->sent > rq->head.len &&
                          rq->sent < rq->head.len + rq->body_len;
        if ((rc != TP_OK || slice_done) && tp__http_take_early(rq->r)) {
            answered_early(rq);
            return;
        }
        if (rc == TP_PENDING)
            return; /* wait for the next edge: writable, or the server's answer */
        if (rc != TP_OK) {
            exchange_failed(rq, rc, &info);
            return;
        }
    }
    if (!may_send_body(rq))
        return;
    if (rq->source != NULL && !rq->source_paused) {
        bool early = false;
        tp_err rc = send_source(rq, &early, &info);
        if (early) {
            answered_early(rq);
            return;
        }
        if (rc == TP_PENDING)
            return; /* writable edge, or tp_http_engine_resume() */
        if (rc != TP_OK) {
            exchange_failed(rq, rc, &info);
            return;
        }
    } else if (rq->source != NULL) {
        return; /* paused: tp_http_engine_resume() comes back here */
    }
    tp_http_client *c = rq->e->c;
    rq->state = ER_RECEIVING;
    if (rq->r->written_at == 0)
        rq->r->written_at = tp_clock_now();
    TP__HTTP_TRACE(c, TP_HTTP_TRACE_WROTE_REQUEST, hc, .err = TP_OK);
    rq->phase_start = rq->r->written_at;
    rq->phase_deadline = tp__saturating_add(rq->r->written_at, c->o.response_header_timeout);
    rq->phase_code = TP_EHDRTIMEDOUT;
    tp__eng_timer_set(rq->e, rq);
    /* TLS may already hold decrypted bytes that no edge will announce; an answer that
     * came while we were sending had its edge then. */
    if (hc->tls || rq->readable)
        tp__er_receive(rq);
}

/* A leased connection is ours: register it and send. */
void tp__er_got_conn(eng_req *rq, tp_conn *lease)
{
    tp_http_engine *e = rq->e;
    tp_http_client *c = e->c;
    rq->lease = lease;
    rq->hc = tp_conn_get(lease);
    tp_http_response *r = rq->r;
    r->conn = rq->hc;
    tp_lease_info li; /* this lease's own: the grant may run on another request's thread */
    tp_conn_lease_info(lease, &li);
    r->info.reused = li.reused;
    if (r->info.reused)
        r->info.tls_resumed = false;
    r->info.waited_ns = tp_clock_now() - rq->phase_start;
    TP__HTTP_TRACE(c, TP_HTTP_TRACE_GOT_CONN, rq->hc, .reused = r->info.reused,
                   .was_idle = r->info.reused, .idle_ns = li.idle_ns,
                   .waited_ns = r->info.waited_ns);
    tp_errinfo info;
    tp_err wrc = tp__eng_watch(e, rq, rq->hc->s.fd, rq->hc->id, &info);
    if (wrc != TP_OK) {
        tp_conn_release(lease, TP_RELEASE_BROKEN);
        rq->lease = NULL;
        rq->hc = NULL;
        r->conn = NULL;
        tp__er_then_finish(rq, wrc, &info);
        return;
    }
    rq->state = ER_SENDING;
    rq->sent = 0;
    rq->readable = false;
    /* As the head says (tp__http_expects_continue): a redirect may have dropped the body. */
    bool has_body = rq->body_len > 0 || rq->source != NULL;
    rq->expect = (rq->flags & TP_HTTP_EXPECT_CONTINUE) && has_body ? EXPECT_AHEAD : EXPECT_NONE;
    rq->phase_deadline = TP_DURATION_INFINITE;
    tp__eng_timer_set(e, rq);
    tp__er_send_request(rq);
}

void tp__er_exchange_resume(eng_req *rq)
{
    if (rq->state == ER_SENDING && rq->source_paused) {
        rq->source_paused = false;
        tp__er_send_request(rq);
        return;
    }
    tp_http_response *r = rq->r;
    if (rq->state != ER_RECEIVING || r == NULL || !r->paused)
        return;
    if (!tp__http_sink_flush(r)) {
        if (r->sink_stopped) {
            tp_errinfo info;
            tp_errinfo_set(&info, TP_ECANCELED, 0, "response body callback stopped the transfer");
            r->err = TP_ECANCELED;
            exchange_failed(rq, TP_ECANCELED, &info);
        }
        return; /* paused again */
    }
    tp__er_receive(rq); /* reads until the socket has nothing: no edge repeats what came */
}
