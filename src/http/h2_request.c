/* h2_request.c: one request of tp_http_client_do() over HTTP/2: a stream on a lease of
 * the client's h2 pool, its response as a tp_http_response (status and fields copied,
 * the body in full or streamed from the stream), and the retry HTTP/2 makes safe: a
 * request the server did not process (the connection drained before it went out, above
 * a GOAWAY's last stream id, REFUSED_STREAM) goes again on another connection, whatever
 * its method. A stream ended early is reset; the connection lives on for the others (no
 * drain, unlike HTTP/1.1). */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "client.h"

static const char H2[] = "h2";

/* Fields of an HTTP/1.1 head that HTTP/2 carries otherwise (Host: :authority; framing:
 * DATA frames) or forbids (connection-specific fields, RFC 9113 8.2.2). */
static bool h1_only(const char *name)
{
    static const char *const drop[] = {"host",
                                       "content-length",
                                       "transfer-encoding",
                                       "connection",
                                       "proxy-connection",
                                       "keep-alive",
                                       "upgrade",
                                       "te"};
    for (size_t i = 0; i < sizeof drop / sizeof drop[0]; i++)
        if (strcmp(name, drop[i]) == 0)
            return true;
    return false;
}

tp_err tp__http_h2_req_make(const tp__buf *head, bool tls, const void *body, size_t body_len,
                            tp__http_h2_req *q, tp_errinfo *err)
{
    memset(q, 0, sizeof *q);
    size_t lines = 0;
    for (size_t i = 0; i + 1 < head->len; i++)
        lines += head->data[i] == '\r' && head->data[i + 1] == '\n';
    q->text = tp__malloc(head->len + 1);
    q->fields = tp__calloc(lines > 0 ? lines : 1, sizeof *q->fields);
    if (q->text == NULL || q->fields == NULL) {
        tp__http_h2_req_free(q);
        return tp_errinfo_set(err, TP_ENOMEM, 0, "an HTTP/2 request's fields");
    }
    memcpy(q->text, head->data, head->len);
    q->text[head->len] = '\0';
    /* "METHOD target HTTP/1.1\r\n", then "Name: value\r\n" lines, then "\r\n": cut in
     * place (the head was built and checked by request.c, so it has this shape). */
    char *line = q->text, *end = q->text + head->len;
    size_t nf = 0;
    for (bool first = true; line < end;) {
        char *crlf = strstr(line, "\r\n");
        if (crlf == NULL || crlf == line)
            break;
        *crlf = '\0';
        if (first) {
            char *sp1 = strchr(line, ' ');
            char *sp2 = sp1 != NULL ? strchr(sp1 + 1, ' ') : NULL;
            if (sp2 == NULL)
                break;
            *sp1 = *sp2 = '\0';
            q->rq.method = line;
            q->rq.path = sp1 + 1;
            first = false;
        } else {
            char *colon = strchr(line, ':');
            if (colon != NULL) {
                *colon = '\0';
                for (char *k = line; *k != '\0'; k++)
                    *k = (char)tolower((unsigned char)*k);
                const char *v = colon + 1;
                while (*v == ' ')
                    v++;
                if (strcmp(line, "host") == 0)
                    q->rq.authority = v;
                else if (!h1_only(line))
                    q->fields[nf++] = (tp__h2_header){line, v};
            }
        }
        line = crlf + 2;
    }
    if (q->rq.method == NULL || q->rq.authority == NULL) {
        tp__http_h2_req_free(q);
        return tp_errinfo_set(err, TP_EINVAL, 0, "an HTTP/2 request needs a method and a Host");
    }
    q->rq.scheme = tls ? "https" : "http";
    q->rq.headers = q->fields;
    q->rq.nheaders = nf;
    q->rq.body = body_len > 0 ? body : NULL;
    q->rq.bodylen = body_len;
    return TP_OK;
}

void tp__http_h2_req_free(tp__http_h2_req *q)
{
    tp__free(q->text);
    tp__free(q->fields);
    q->text = NULL;
    q->fields = NULL;
}

/* Gives the stream and the lease back: the lease as broken when its connection died. */
void tp__http_h2_end(tp_http_response *r)
{
    if (r->lease == NULL)
        return;
    if (r->h2_st != NULL)
        tp__h2_lease_done(r->lease, r->h2_st); /* reset if not over */
    r->h2_st = NULL;
    tp_conn_release(r->lease, tp__h2_lease_alive(r->lease) ? 0 : TP_RELEASE_BROKEN);
    r->lease = NULL;
}

static tp_err timed_out(const tp__http_url *u, int64_t deadline, int64_t hdr_deadline,
                        int64_t hdr_timeout, tp_errinfo *err)
{
    if (hdr_deadline >= deadline)
        return tp_errinfo_set(err, TP_EREQTIMEDOUT, 0, "the request's deadline passed (HTTP/2)");
    return tp_errinfo_set(err, TP_EHDRTIMEDOUT, 0,
                          "response header from %s%s%s:%u timed out after %.0f ms (HTTP/2)",
                          u->host_is_ipv6 ? "[" : "", u->host, u->host_is_ipv6 ? "]" : "",
                          (unsigned)u->port, (double)hdr_timeout / 1e6);
}

/* Reads the rest of the body into r->body (bounded by max_body_bytes). */
static tp_err read_all(tp_http_response *r, tp_errinfo *err)
{
    for (;;) {
        if (tp__buf_reserve(&r->body, 16384) != TP_OK)
            return tp_errinfo_set(err, TP_ENOMEM, 0, "a response body of %zu bytes", r->body.len);
        size_t got = 0; /* room is kept for the NUL */
        tp_err rc = tp__h2_lease_read(r->lease, r->h2_st, r->body.data + r->body.len,
                                      r->body.cap - r->body.len - 1, &got, r->deadline, err);
        /* Only our own deadline's end is ours to name: a connection that died of an
         * unanswered PING says so itself, with TP_ETIMEDOUT. */
        if (rc == TP_ETIMEDOUT && tp_clock_now() >= r->deadline)
            rc = tp_errinfo_set(err, TP_EREQTIMEDOUT, 0,
                                "the request's deadline passed (HTTP/2 "
                                "body)");
        if (rc != TP_OK)
            return rc;
        if (got == 0)
            return TP_OK;
        r->body.len += got;
        r->info.body_bytes = r->info.wire_body_bytes = r->body.len;
        if (r->body.len > r->max_body)
            return tp_errinfo_set(err, TP_ETOOBIG, 0, "response body over max_body_bytes (%zu)",
                                  r->max_body);
    }
}

/* The response of stream st on lease: fields copied, the body read unless streamed. */
static tp_err respond(tp_http_client *c, const tp_http_request *req, tp_conn *lease,
                      tp__h2_stream *st, int64_t deadline, void *owned_body, tp_http_response **out,
                      tp_errinfo *err)
{
    tp_http_response *r = tp__calloc(1, sizeof *r);
    size_t flen;
    const char *fields = tp__h2_stream_fields(st, &flen);
    if (r == NULL || (flen > 0 && (r->h2_fields = tp__malloc(flen)) == NULL)) {
        tp__free(r);
        tp__h2_lease_done(lease, st);
        tp_conn_release(lease, 0);
        tp__free(owned_body);
        return tp_errinfo_set(err, TP_ENOMEM, 0, "allocating a response");
    }
    r->h2_body = owned_body;
    if (flen > 0)
        memcpy(r->h2_fields, fields, flen);
    r->h2_fields_len = flen;
    r->client = c;
    r->lease = lease;
    r->h2 = true;
    r->h2_st = st;
    r->stream = (req->flags & TP_HTTP_STREAM) != 0;
    r->max_body = c->o.max_body_bytes;
    r->deadline = deadline;
    tp__buf_init(&r->body);
    r->parse.status = tp__h2_stream_status(st);
    r->parse.headers_done = true;
    r->parse.keep_alive = true;
    const char *cl = tp__h2_stream_header(st, "content-length");
    r->parse.content_length = cl != NULL ? strtoll(cl, NULL, 10) : -1;
    r->info.protocol = H2;
    *out = r;
    if (r->stream)
        return TP_OK;
    tp_err rc = read_all(r, err);
    if (rc == TP_OK) {
        r->parse.done = true;
        tp__http_h2_end(r);
        r->body.data[r->body.len] = '\0'; /* read_all reserved room for it */
    }
    if (rc != TP_OK) {
        r->err = rc;
        tp_http_response_free(r);
        *out = NULL;
    }
    return rc;
}

/* Sends rq until it is answered, fails, or was not processed TP__HTTP_H2_MAX_ATTEMPTS times
 * (each time on a connection that takes it: the one that refused it drains). owned, the
 * body's copy, becomes the response's or is freed. */
static tp_err attempts(tp_http_client *c, const tp_http_request *req, const tp__http_url *u,
                       const tp__h2_request *rq, const char *key, size_t keylen, int64_t deadline,
                       void *owned, tp_http_response **out, bool *not_h2, tp_errinfo *err)
{
    *not_h2 = false;
    for (int attempt = 0;; attempt++) {
        int64_t now = tp_clock_now();
        int64_t left = deadline == TP_DURATION_INFINITE ? TP_DURATION_INFINITE : deadline - now;
        tp_conn *lease;
        tp_errinfo ae; /* read below even when the caller gave no errinfo */
        tp_err rc = left <= 0 ? tp_errinfo_set(&ae, TP_ETIMEDOUT, 0, "no time left")
                              : tp_pool_acquire(c->h2_pool, key, keylen,
                                                TP__MIN(c->acquire_timeout, left), &lease, &ae);
        if (rc != TP_OK) {
            tp__free(owned);
            /* The open that learnt it says so; the acquires queued behind it may fail
             * otherwise (the breaker, after the failed opens), but the memory knows. */
            *not_h2 = (rc == TP_EPROTO && ae.sys_errno == ENOPROTOOPT) ||
                      tp__http_h2_not_h2(c, key, keylen);
            if (err != NULL)
                *err = ae;
            if (rc == TP_ETIMEDOUT && tp_clock_now() >= deadline)
                rc = tp_errinfo_set(err, TP_EREQTIMEDOUT, 0,
                                    "the request's deadline passed waiting for an HTTP/2 stream");
            return rc;
        }
        tp_lease_info li;
        tp_conn_lease_info(lease, &li);
        TP__HTTP_TRACE(c, TP_HTTP_TRACE_GOT_CONN, u, .reused = li.reused, .was_idle = li.reused,
                       .idle_ns = li.idle_ns, .waited_ns = li.waited_ns, .protocol = H2);
        int64_t sent = tp_clock_now();
        int64_t hdr_deadline = TP__MIN(deadline, tp_deadline_after(c->o.response_header_timeout));
        tp__h2_stream *st = NULL;
        bool unprocessed = false;
        rc = tp__h2_lease_request(lease, rq, hdr_deadline, &st, &unprocessed, err);
        if (rc == TP_OK) {
            int64_t ttfb = tp_clock_now() - sent;
            rc = respond(c, req, lease, st, deadline, owned, out, err);
            if (rc == TP_OK) {
                tp_http_response *r = *out;
                r->info.reused = li.reused;
                r->info.retried = attempt > 0;
                r->info.waited_ns = li.waited_ns;
                r->info.ttfb_ns = ttfb; /* to the header: HTTP/2 has no first byte of its own */
                memcpy(r->key, key, keylen + 1);
                r->keylen = keylen;
            }
            return rc;
        }
        tp_conn_release(lease, tp__h2_lease_alive(lease) ? 0 : TP_RELEASE_BROKEN);
        if (unprocessed && attempt + 1 < TP__HTTP_H2_MAX_ATTEMPTS &&
            !(req->flags & TP_HTTP_NO_RETRY)) {
            TP__HTTP_TRACE(c, TP_HTTP_TRACE_RETRY, u, .err = rc, .protocol = H2);
            continue;
        }
        tp__free(owned);
        if (rc == TP_ETIMEDOUT && tp_clock_now() >= hdr_deadline)
            rc = timed_out(u, deadline, hdr_deadline, c->o.response_header_timeout, err);
        return rc;
    }
}

tp_err tp__http_h2_do(tp_http_client *c, const tp_http_request *req, const tp__http_url *u,
                      tp_http_response **out, bool *fallback, tp_errinfo *err)
{
    *out = NULL;
    *fallback = false;
    int64_t start = tp_clock_now();
    int64_t timeout = req->timeout == TP_DURATION_DEFAULT ? c->o.request_timeout : req->timeout;
    if (timeout < 0)
        return tp_errinfo_set(err, TP_EINVAL, 0, "timeout: negative");
    int64_t deadline = tp_deadline_after(timeout);
    char key[TP__HTTP_KEY_MAX];
    size_t keylen = tp__http_key(c, u, key, sizeof key);
    tp__buf head;
    tp__buf_init(&head);
    tp_err rc =
        tp__http_build_head(c, req, req->method != NULL ? req->method : "GET", u, &head, err);
    tp__http_h2_req q;
    if (rc == TP_OK)
        rc = tp__http_h2_req_make(&head, u->tls, req->body, req->body_len, &q, err);
    tp__buf_free(&head);
    if (rc != TP_OK)
        return rc;
    void *owned = NULL; /* a streamed response may outlive the caller's body */
    if ((req->flags & TP_HTTP_STREAM) && req->body_len > 0) {
        if ((owned = tp__malloc(req->body_len)) == NULL) {
            tp__http_h2_req_free(&q);
            return tp_errinfo_set(err, TP_ENOMEM, 0, "copying a request body");
        }
        memcpy(owned, req->body, req->body_len);
        q.rq.body = owned;
    }
    bool not_h2;
    rc = attempts(c, req, u, &q.rq, key, keylen, deadline, owned, out, &not_h2, err);
    tp__http_h2_req_free(&q);
    if (rc == TP_OK)
        (*out)->info.total_ns = tp_clock_now() - start;
    else /* the server chose HTTP/1.1: the caller goes on, this was no request's end */
        *fallback = c->o.http_version == TP_HTTP_VERSION_AUTO && not_h2;
    if (!*fallback)
        TP__HTTP_TRACE(c, TP_HTTP_TRACE_DONE, u, .err = rc,
                       .status = rc == TP_OK ? (*out)->parse.status : 0,
                       .duration_ns = tp_clock_now() - start, .protocol = H2);
    return rc;
}

/* ---- the response's parts ------------------------------------------------------------- */

const char *tp__http_h2_header(const tp_http_response *r, const char *name)
{
    return tp__h2_fields_find(r->h2_fields, r->h2_fields_len, name);
}

bool tp__http_h2_header_at(const tp_http_response *r, size_t i, const char **name,
                           const char **value)
{
    const char *n, *v;
    if (!tp__h2_fields_at(r->h2_fields, r->h2_fields_len, i, &n, &v))
        return false;
    if (name != NULL)
        *name = n;
    if (value != NULL)
        *value = v;
    return true;
}

tp_err tp__http_h2_read(tp_http_response *r, void *buf, size_t cap, size_t *got, tp_errinfo *err)
{
    *got = 0;
    if (r->h2_st == NULL || cap == 0)
        return TP_OK; /* over (or nothing asked) */
    tp_err rc = tp__h2_lease_read(r->lease, r->h2_st, buf, cap, got, r->deadline, err);
    if (rc == TP_ETIMEDOUT && tp_clock_now() >= r->deadline) /* not a connection's death */
        rc = tp_errinfo_set(err, TP_EREQTIMEDOUT, 0, "the request's deadline passed");
    if (rc != TP_OK) {
        r->err = rc;
        return rc;
    }
    r->info.body_bytes += *got;
    r->info.wire_body_bytes += *got;
    if (*got == 0) { /* the end: the stream's place goes back at once */
        r->parse.done = true;
        tp__http_h2_end(r);
    }
    return TP_OK;
}
