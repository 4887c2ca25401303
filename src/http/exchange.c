/* exchange.c: one HTTP request on a pooled connection, blocking: acquire, write, read
 * the response header (and body), the Keep-Alive hint, and the single safe retry on a
 * fresh connection when a reused one turns out to be dead. */
#include <errno.h>
#include <stdio.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"

tp_err tp__http_read_until(tp_http_response *r, bool want_body, int64_t deadline, tp_errinfo *err)
{
    tp__http_conn *hc = r->conn;
    for (;;) {
        if (want_body ? r->parse.done : r->parse.headers_done)
            return TP_OK;
        if (r->stream && want_body && r->body.len > r->body_pos)
            return TP_OK; /* a streaming reader has bytes to take */
        if (hc->rpos == hc->rlen) {
            size_t got = 0;
            tp_err rc = tp__stream_read(&hc->s, hc->rbuf, sizeof hc->rbuf, &got, deadline, err);
            if (rc != TP_OK)
                return rc;
            if (got == 0) /* the server closed: completes a read-until-close body */
                return tp__http_eof(r, err);
            tp__http_got_bytes(r, got);
        }
        tp_err rc = tp__http_feed(r, err);
        if (rc != TP_OK)
            return rc;
    }
}

static tp_err map_timeout(tp_err rc, int64_t phase_deadline, int64_t deadline, tp_err phase_code,
                          tp_errinfo *err)
{
    if (rc != TP_ETIMEDOUT)
        return rc;
    if (phase_deadline < deadline)
        return tp_errinfo_set(err, phase_code, 0, "%s", tp_strerror(phase_code));
    return tp_errinfo_set(err, TP_EREQTIMEDOUT, 0, "the request's deadline passed");
}

/* Writes buf while watching for an early answer: when the socket will not take more,
 * waits for writable or readable; what the server sent meanwhile is parsed, and a final
 * response header ends the sending (true in *early). A write that fails (the server
 * reset or closed after answering) still yields that answer when it is in the socket. */
static tp_err send_part(tp_http_response *r, const char *buf, size_t len, size_t *written,
                        bool *early, tp_errinfo *err)
{
    tp__http_conn *hc = r->conn;
    size_t off = 0;
    while (off < len) {
        size_t put = 0;
        int want = 0;
        tp_err rc = tp__stream_write_step(&hc->s, buf + off, tp__http_send_slice(off, len), &put,
                                          &want, err);
        off += put;
        *written += put;
        if (rc == TP_OK) {
            if (off < len && (*early = tp__http_take_early(r)))
                return TP_OK;
            continue;
        }
        if (rc != TP_PENDING) {
            *early = tp__http_take_early(r);
            return *early ? TP_OK : rc;
        }
        struct pollfd pfd = {.fd = hc->s.fd, .events = POLLIN};
        if (want & TP__WANT_WRITE)
            pfd.events |= POLLOUT;
        int64_t now = tp_clock_now();
        if (now >= r->deadline)
            return tp_errinfo_set(err, TP_ETIMEDOUT, 0, "sending the request: timed out");
        int64_t left = r->deadline == TP_DURATION_INFINITE ? -1 : r->deadline - now;
        int ms = left < 0 ? -1 : (int)TP__MIN((left + TP_NSEC_PER_MSEC - 1) / TP_NSEC_PER_MSEC, 60000);
        int n = poll(&pfd, 1, ms);
        if (n < 0 && errno != EINTR)
            return tp__net_error(errno, "poll", hc->host, err);
        if (n > 0 && (pfd.revents & (POLLIN | POLLHUP | POLLERR)) && (*early = tp__http_take_early(r)))
            return TP_OK;
    }
    return TP_OK;
}

/* Expect: 100-continue: the header went out; waits for the server's 100 (send the body),
 * its final answer (*early), or the end of the client's wait (send the body anyway). */
static tp_err await_continue(tp_http_response *r, bool *early, tp_errinfo *err)
{
    tp__http_conn *hc = r->conn;
    int64_t until = TP__MIN(r->deadline, tp_deadline_after(r->client->o.expect_continue_timeout));
    for (;;) {
        tp_err rc = tp__http_continue_step(r, err);
        if (rc != TP_PENDING) {
            *early = rc == TP_OK && r->early;
            return rc;
        }
        int64_t now = tp_clock_now();
        if (now >= until)
            return TP_OK; /* no word from the server: the body goes */
        int ms = (int)TP__MIN((until - now + TP_NSEC_PER_MSEC - 1) / TP_NSEC_PER_MSEC, 60000);
        struct pollfd pfd = {.fd = hc->s.fd, .events = POLLIN};
        if (poll(&pfd, 1, ms) < 0 && errno != EINTR)
            return tp__net_error(errno, "poll", hc->host, err);
    }
}

/* The body from the caller's source: each piece framed as a chunk when the length is
 * unknown, checked against the announced length otherwise, every write watching for an
 * early answer. *started: the source was called (the attempt can no longer be
 * repeated). */
static tp_err send_source(tp_http_response *r, const tp_http_request *req, size_t *written,
                          bool *early, bool *started, tp_errinfo *err)
{
    enum { PIECE = 64 * 1024 };
    char *buf = tp__malloc(PIECE + 32);
    if (buf == NULL)
        return tp_errinfo_set(err, TP_ENOMEM, 0, "allocating the body buffer");
    bool chunked = req->body_source_len < 0;
    uint64_t total = 0;
    tp_err rc = TP_OK;
    for (;;) {
        size_t n = 0;
        *started = true;
        int v = req->body_source(req->body_source_ud, buf + 24, PIECE, &n);
        if (v != 0) {
            rc = v < 0 ? tp_errinfo_set(err, (tp_err)v, 0, "the body source ended the request (%s)",
                                        tp_err_name(v))
                       : tp_errinfo_set(err, TP_EINVAL, 0,
                                        "the body source paused: only the engine can resume");
            break;
        }
        if (n > PIECE) {
            rc = tp_errinfo_set(err, TP_EINVAL, 0, "the body source wrote %zu bytes into %d", n,
                                (int)PIECE);
            break;
        }
        total += n;
        if (!chunked && total > (uint64_t)req->body_source_len) {
            rc = tp_errinfo_set(err, TP_EINVAL, 0,
                                "the body source gave more than the %lld bytes announced",
                                (long long)req->body_source_len);
            break;
        }
        if (n == 0 && !chunked && total != (uint64_t)req->body_source_len) {
            rc = tp_errinfo_set(err, TP_EINVAL, 0,
                                "the body source ended after %llu of the %lld bytes announced",
                                (unsigned long long)total, (long long)req->body_source_len);
            break;
        }
        const char *p = buf + 24;
        size_t len = n;
        if (chunked) { /* the size line right before the data, CRLF after it */
            char head[24];
            size_t hl = tp__http_chunk_frame(n, head, sizeof head);
            p = buf + 24 - hl;
            memcpy(buf + 24 - hl, head, hl);
            len = hl + n;
            if (n > 0) {
                memcpy(buf + 24 + n, "\r\n", 2);
                len += 2;
            }
        }
        if (len > 0)
            rc = send_part(r, p, len, written, early, err);
        if (rc != TP_OK || *early || n == 0)
            break;
    }
    tp__free(buf);
    return rc;
}

/* One attempt: acquire, write, read the header. On failure *written says how much of
 * the request reached the transport (for the retry decision) and the lease is gone. */
static tp_err attempt(tp_http_client *c, const tp_http_request *req, const tp__buf *head,
                      tp_http_response *r, unsigned acq_flags, size_t *written, tp_errinfo *err)
{
    *written = 0;
    int64_t now = tp_clock_now();
    if (now >= r->deadline)
        return tp_errinfo_set(err, TP_EREQTIMEDOUT, 0, "the request's deadline passed");
    int64_t acq_timeout =
        TP__MIN(c->acquire_timeout,
                r->deadline == TP_DURATION_INFINITE ? TP_DURATION_INFINITE : r->deadline - now);
    tp_acquire_req areq = tp_acquire_req_for(r->key, r->keylen, acq_timeout, acq_flags);
    tp_err rc = tp_acquire(c->pool, &areq, &r->lease, err);
    if (rc != TP_OK) {
        if (tp_clock_now() >= r->deadline && (rc == TP_ETIMEDOUT || rc == TP_ECONNTIMEDOUT))
            return tp_errinfo_set(err, TP_EREQTIMEDOUT, 0,
                                  "the request's deadline passed while getting a connection");
        return rc;
    }
    r->conn = tp_conn_get(r->lease);
    tp_lease_info li;
    tp_conn_lease_info(r->lease, &li);
    r->info.reused = li.reused;
    r->info.tls_resumed = r->conn->tls_resumed && !r->info.reused;
    r->info.waited_ns = li.waited_ns;
    if (c->o.trace != NULL) {
        tp_http_trace_event ev = {.type = TP_HTTP_TRACE_GOT_CONN,
                                  .host = r->conn->host,
                                  .port = r->conn->port,
                                  .tls = r->conn->tls,
                                  .reused = r->info.reused,
                                  .was_idle = r->info.reused,
                                  .idle_ns = li.idle_ns,
                                  .waited_ns = r->info.waited_ns};
        tp__http_emit(c, &ev);
    }

    tp__http_conn *hc = r->conn;
    bool early = false;
    r->written_at = 0;
    rc = send_part(r, head->data, head->len, written, &early, err);
    if (rc == TP_OK && !early && tp__http_expects_continue(req))
        rc = await_continue(r, &early, err);
    if (rc == TP_OK && !early && req->body_len > 0)
        rc = send_part(r, req->body, req->body_len, written, &early, err);
    if (rc == TP_OK && !early && req->body_source != NULL)
        rc = send_source(r, req, written, &early, &r->source_started, err);
    if (r->written_at == 0)
        r->written_at = tp_clock_now();
    if (c->o.trace != NULL) {
        tp_http_trace_event ev = {.type = TP_HTTP_TRACE_WROTE_REQUEST,
                                  .host = hc->host,
                                  .port = hc->port,
                                  .tls = hc->tls,
                                  .err = rc};
        tp__http_emit(c, &ev);
    }
    if (rc == TP_OK) {
        int64_t hdr_dl =
            TP__MIN(r->deadline, tp__saturating_add(r->written_at, c->o.response_header_timeout));
        rc = tp__http_read_until(r, false, hdr_dl, err);
        rc = map_timeout(rc, hdr_dl, r->deadline, TP_EHDRTIMEDOUT, err);
    } else {
        rc = map_timeout(rc, r->deadline, r->deadline, TP_EREQTIMEDOUT, err);
    }
    if (rc != TP_OK) {
        tp_conn_release(r->lease, TP_RELEASE_BROKEN);
        r->lease = NULL;
        r->conn = NULL;
    }
    return rc;
}

/* One request, no redirect followed. */
static tp_err do_once(tp_http_client *c, const tp_http_request *req, tp_http_response **out,
                      tp_errinfo *err)
{
    if (c == NULL || req == NULL || out == NULL || req->url == NULL)
        return tp_errinfo_set(err, TP_EINVAL, 0, "client, request, url and out are required");
    *out = NULL;
    if (req->body_len > 0 && req->body == NULL)
        return tp_errinfo_set(err, TP_EINVAL, 0, "body: NULL with body_len %zu", req->body_len);
    if (req->body_source != NULL && req->body_len > 0)
        return tp_errinfo_set(err, TP_EINVAL, 0, "body and body_source: one or the other");
    if (req->on_body != NULL)
        return tp_errinfo_set(err, TP_EINVAL, 0,
                              "on_body: the engine's; the blocking call streams with "
                              "TP_HTTP_STREAM and tp_http_response_read()");
    const char *method = req->method != NULL ? req->method : "GET";
    int64_t start = tp_clock_now();
    int64_t timeout = req->timeout == TP_DURATION_DEFAULT ? c->o.request_timeout : req->timeout;
    if (timeout <= 0)
        return tp_errinfo_set(err, TP_EINVAL, 0, "timeout: must be positive");

    tp_http_response *r = tp__calloc(1, sizeof *r);
    if (r == NULL)
        return tp_errinfo_set(err, TP_ENOMEM, 0, "allocating the response");
    r->client = c;
    r->stream = (req->flags & TP_HTTP_STREAM) != 0;
    r->decode = tp__http_offers_codings(c, req);
    r->max_body = c->o.max_body_bytes;
    r->deadline = tp__saturating_add(start, timeout);
    r->info.content_length = -1;
    tp__buf_init(&r->body);
    tp__buf head;
    tp__buf_init(&head);
    tp__http_url u;
    tp_err rc = tp__http_url_parse(req->url, &u, err);
    if (rc == TP_OK) {
        r->keylen = tp__http_key(c, &u, r->key, sizeof r->key);
        if (r->keylen == 0)
            rc = tp_errinfo_set(err, TP_EINVAL, 0, "url: host too long");
    }
    if (rc == TP_OK)
        rc = tp__http_build_head(c, req, method, &u, &head, err);
    if (rc != TP_OK) {
        tp__buf_free(&head);
        tp__buf_free(&r->body);
        tp__free(r);
        return rc;
    }
    for (int n = 0; rc == TP_OK; n++) {
        tp__http_resp_init(&r->parse, method, c->o.max_header_bytes, tp__http_on_body, r);
        size_t written = 0;
        rc = attempt(c, req, &head, r, n == 0 ? 0 : TP_ACQUIRE_FRESH, &written, err);
        if (rc == TP_OK)
            break;
        bool reused = r->info.reused;
        bool retry = n == 0 && reused && !r->got_byte && !r->source_started &&
                     tp__http_conn_died(rc) &&
                     tp__http_retry_safe(req->flags, method, req->body_len, written);
        tp__http_resp_free(&r->parse);
        if (!retry)
            break;
        if (c->o.trace != NULL) {
            tp_http_trace_event ev = {.type = TP_HTTP_TRACE_RETRY,
                                      .host = u.host,
                                      .port = u.port,
                                      .tls = u.tls,
                                      .err = rc};
            tp__http_emit(c, &ev);
        }
        r->info.retried = true;
        r->info.reused = false;
        r->got_byte = false;
        rc = TP_OK;
    }
    tp__buf_free(&head);
    if (rc == TP_OK)
        tp__http_keepalive_hint(r);
    if (rc == TP_OK && !r->stream) {
        rc = tp__http_read_until(r, true, r->deadline, err);
        rc = map_timeout(rc, r->deadline, r->deadline, TP_EREQTIMEDOUT, err);
        if (rc != TP_OK)
            r->err = rc;
    }
    r->info.total_ns = tp_clock_now() - start;
    if (c->o.trace != NULL) {
        tp_http_trace_event ev = {.type = TP_HTTP_TRACE_DONE,
                                  .host = u.host,
                                  .port = u.port,
                                  .tls = u.tls,
                                  .err = rc,
                                  .status = r->parse.status,
                                  .duration_ns = r->info.total_ns};
        tp__http_emit(c, &ev);
    }
    if (rc != TP_OK) {
        tp_http_response_free(r);
        return rc;
    }
    tp_errinfo_clear(err);
    *out = r;
    return TP_OK;
}

/* Follows redirects: each hop is a request of its own (its own connection, retry and
 * checks), all within the first request's deadline. */
static tp_err follow(tp_http_client *c, const tp_http_request *req, tp_http_response **out,
                     tp_errinfo *err)
{
    const char *method = req->method != NULL ? req->method : "GET";
    int64_t timeout = req->timeout == TP_DURATION_DEFAULT ? c->o.request_timeout : req->timeout;
    if (timeout <= 0)
        return tp_errinfo_set(err, TP_EINVAL, 0, "timeout: must be positive");
    int64_t deadline = tp__saturating_add(tp_clock_now(), timeout);
    tp__http_url u;
    tp_err rc = tp__http_url_parse(req->url, &u, err);
    if (rc != TP_OK)
        return rc;
    tp__http_hop hop;
    rc = tp__http_hop_init(&hop, req, method, &u, err);
    if (rc != TP_OK)
        return rc;
    tp_http_request cur = *req;
    char url[2400];
    for (;;) {
        if (deadline != TP_DURATION_INFINITE) {
            int64_t left = deadline - tp_clock_now();
            if (left <= 0) {
                rc = tp_errinfo_set(err, TP_EREQTIMEDOUT, 0,
                                    "the request's deadline passed after %d redirects",
                                    hop.redirects);
                break;
            }
            cur.timeout = left;
        }
        tp_http_response *r = NULL;
        rc = do_once(c, &cur, &r, err);
        if (rc != TP_OK)
            break;
        int status = tp_http_response_status(r);
        const char *loc = tp_http_response_header(r, "Location");
        /* A streamed response or a body source (it cannot be produced again) stops here. */
        if (!tp__http_is_redirect(status) || loc == NULL || (req->flags & TP_HTTP_STREAM) ||
            req->body_source != NULL) {
            r->info.redirects = hop.redirects;
            *out = r;
            break;
        }
        char location[2048];
        snprintf(location, sizeof location, "%s", loc);
        tp_http_response_free(r); /* its connection goes back (or is closed) first */
        rc = tp__http_hop_next(&hop, status, location, c->o.max_redirects, err);
        if (rc != TP_OK)
            break;
        tp__http_hop_request(&hop, req, url, sizeof url, &cur);
    }
    tp__http_hop_free(&hop);
    return rc;
}

tp_err tp_http_client_do(tp_http_client *c, const tp_http_request *req, tp_http_response **out,
                         tp_errinfo *err)
{
    if (c != NULL && req != NULL && out != NULL && req->url != NULL && c->o.max_redirects > 0) {
        *out = NULL;
        return follow(c, req, out, err);
    }
    return do_once(c, req, out, err);
}

tp_err tp_http_get(tp_http_client *c, const char *url, tp_http_response **out, tp_errinfo *err)
{
    tp_http_request req = {.method = "GET", .url = url, .timeout = TP_DURATION_DEFAULT};
    return tp_http_client_do(c, &req, out, err);
}
