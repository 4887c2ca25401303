/* message.c: what the blocking call and the event engine share about one exchange: the
 * request head, the first response byte, early answers, the send slices, the Keep-Alive
 * hint, the retry rule, and what a finished response means for its connection. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"

tp_err tp__http_build_head(tp_http_client *c, const tp_http_request *req, const char *method,
                           const tp__http_url *u, tp__buf *out, tp_errinfo *err)
{
    size_t n = req->nheaders;
    if (n > 0 && (req->header_names == NULL || req->header_values == NULL))
        return tp_errinfo_set(err, TP_EINVAL, 0, "headers: NULL arrays with nheaders %zu", n);
    bool has_ua = c->user_agent[0] == '\0';
    for (size_t i = 0; i < n && !has_ua; i++)
        has_ua =
            req->header_names[i] != NULL && strcasecmp(req->header_names[i], "User-Agent") == 0;
    /* A plain request through a proxy names its whole URL and carries the proxy's
     * credentials (a tunnel's requests are the destination's own). */
    const tp__http_proxy *px = u->tls ? NULL : tp__http_proxy_for(c, u);
    tp__http_url absolute;
    if (px != NULL) {
        absolute = *u;
        int w = snprintf(absolute.target, sizeof absolute.target,
                         u->host_is_ipv6 ? "http://[%s]:%u%s" : "http://%s:%u%s", u->host,
                         (unsigned)u->port, u->target);
        if (w < 0 || (size_t)w >= sizeof absolute.target)
            return tp_errinfo_set(err, TP_EINVAL, 0, "url: too long for a proxy request");
        u = &absolute;
    }
    /* Room for the caller's headers, User-Agent, Accept-Encoding, Expect and
     * Proxy-Authorization: on the stack for the usual few. */
    const char *stack_names[16], *stack_values[16];
    bool heap = n + 4 > 16;
    const char **names = heap ? tp__malloc((n + 4) * sizeof *names) : stack_names;
    const char **values = heap ? tp__malloc((n + 4) * sizeof *values) : stack_values;
    tp_err rc = TP_ENOMEM;
    if (names != NULL && values != NULL) {
        size_t k = 0;
        for (size_t i = 0; i < n; i++, k++) {
            names[k] = req->header_names[i];
            values[k] = req->header_values[i];
        }
        if (!has_ua) {
            names[k] = "User-Agent";
            values[k++] = c->user_agent;
        }
        if (tp__http_offers_codings(c, req)) {
            names[k] = "Accept-Encoding";
            values[k++] = TP__HTTP_ACCEPT_ENCODING;
        }
        if (tp__http_expects_continue(req)) {
            names[k] = "Expect";
            values[k++] = "100-continue";
        }
        if (px != NULL && px->auth[0] != '\0') {
            names[k] = "Proxy-Authorization";
            values[k++] = px->auth;
        }
        size_t body_len = req->body_source == NULL    ? req->body_len
                          : req->body_source_len >= 0 ? (size_t)req->body_source_len
                                                      : TP__HTTP_BODY_CHUNKED;
        rc = tp__http_req_build(out, method, u, names, values, k, body_len, true, err);
    } else {
        tp_errinfo_set(err, TP_ENOMEM, 0, "building the request");
    }
    if (heap) {
        tp__free(names);
        tp__free(values);
    }
    return rc;
}

/* The first byte of the response (time, trace), once per attempt. */
static void first_byte(tp_http_response *r)
{
    tp__http_conn *hc = r->conn;
    if (r->got_byte)
        return;
    r->got_byte = true;
    r->info.ttfb_ns = tp_clock_now() - r->written_at;
    TP__HTTP_TRACE(r->client, TP_HTTP_TRACE_FIRST_BYTE, hc, .duration_ns = r->info.ttfb_ns);
}

void tp__http_got_bytes(tp_http_response *r, size_t got)
{
    r->conn->rpos = 0;
    r->conn->rlen = got;
    first_byte(r);
}

/* A look at the socket (one recv()) per 256 KiB sent: nothing beside the copy itself,
 * and a server that answered 413 at the start of a 16 MiB upload sees at most this much
 * more of it (plus what the socket buffers held). */
#define SEND_SLICE (256u * 1024u)

size_t tp__http_send_slice(size_t off, size_t len)
{
    size_t end = (off / SEND_SLICE + 1) * SEND_SLICE;
    return (end < len ? end : len) - off;
}

size_t tp__http_chunk_frame(size_t n, char *head, size_t cap)
{
    int w = n == 0 ? snprintf(head, cap, "0\r\n\r\n") : snprintf(head, cap, "%zx\r\n", n);
    return w > 0 ? (size_t)w : 0;
}

bool tp__http_expects_continue(const tp_http_request *req)
{
    return (req->flags & TP_HTTP_EXPECT_CONTINUE) != 0 &&
           (req->body_len > 0 || req->body_source != NULL);
}

/* What the server sent while the request goes out, read and parsed without blocking.
 * TP_OK: a final response header is complete (r->early: stop sending, read it) or, when
 * expecting (Expect: 100-continue), a 100 came; TP_PENDING: nothing decisive yet; else
 * the read's or the parser's error, TP_ECONNRESET when the server closed. Expecting, the
 * bytes before the final answer are not its first byte (a 100 is not the answer, and the
 * header timeout counts from the end of the body); otherwise each read counts as one. */
static tp_err answer_step(tp_http_response *r, bool expecting, tp_errinfo *err)
{
    tp__http_conn *hc = r->conn;
    for (;;) {
        if (hc->rpos < hc->rlen) {
            tp_err rc = tp__http_feed(r, err);
            if (rc != TP_OK)
                return rc;
        }
        if (r->parse.headers_done) { /* a final answer: the body is not wanted */
            r->early = true;
            if (r->written_at == 0)
                r->written_at = tp_clock_now();
            first_byte(r);
            return TP_OK;
        }
        if (expecting && r->parse.got_continue)
            return TP_OK;
        size_t got = 0;
        int want = 0;
        tp_err rc = tp__stream_read_step(&hc->s, hc->rbuf, sizeof hc->rbuf, &got, &want, err);
        if (rc != TP_OK)
            return rc;
        if (got == 0) /* closed before answering: the parser hears it only when expecting */
            return expecting ? tp__http_eof(r, err)
                             : tp_errinfo_set(err, TP_ECONNRESET, 0, "closed while sending");
        if (expecting) {
            hc->rpos = 0;
            hc->rlen = got;
        } else {
            if (r->written_at == 0)
                r->written_at = tp_clock_now(); /* time to first byte counts from here */
            tp__http_got_bytes(r, got);
        }
    }
}

tp_err tp__http_continue_step(tp_http_response *r, tp_errinfo *err)
{
    return answer_step(r, true, err);
}

bool tp__http_take_early(tp_http_response *r)
{
    tp_errinfo info; /* errors and the end of the stream are left for the writes to find */
    return answer_step(r, false, &info) == TP_OK;
}

void tp__http_keepalive_hint(tp_http_response *r)
{
    if (r->parse.keepalive_timeout_s <= 0)
        return;
    /* Stay clearly below the server's idle limit: 10 % or 250 ms under it. */
    int64_t ka = r->parse.keepalive_timeout_s * TP_NSEC_PER_SEC;
    int64_t margin = TP__MAX(ka / 10, 250 * TP_NSEC_PER_MSEC);
    if (ka > margin)
        tp_pool_key_limit_idle_timeout(r->client->pool, r->key, r->keylen, ka - margin);
}

/* Would a failed first attempt be safe to send again on a fresh connection? */
bool tp__http_retry_safe(unsigned flags, const char *method, size_t body_len, size_t written)
{
    if (flags & TP_HTTP_NO_RETRY)
        return false;
    if (written == 0)
        return true; /* nothing reached the server */
    return (tp__http_method_idempotent(method) || (flags & TP_HTTP_IDEMPOTENT)) && body_len == 0;
}

/* Errors that say the connection died, as opposed to a slow or misbehaving server. */
bool tp__http_conn_died(tp_err rc)
{
    return rc == TP_ECONNRESET || rc == TP_EIO || rc == TP_ETLS;
}

unsigned tp__http_release_flags(const tp_http_response *r)
{
    if (r->err != TP_OK || r->parse.err != TP_OK || !r->parse.done)
        return TP_RELEASE_BROKEN;
    if (r->early) /* the request was cut short: the server still expects its rest */
        return TP_RELEASE_DISCARD;
    /* 503 and 429 say the server is over capacity: the adaptive limit backs off. */
    unsigned dropped = r->parse.status == 503 || r->parse.status == 429 ? TP_RELEASE_DROPPED : 0;
    /* The server closes it, or sent more than was asked: do not reuse. */
    if (!r->parse.keep_alive || r->conn->rpos != r->conn->rlen)
        return TP_RELEASE_DISCARD | dropped;
    return dropped;
}
