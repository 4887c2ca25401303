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

/* An unprocessed request is sent again at most 9 times. Under a GOAWAY several of the
 * connection's last requests meet it, and each retry may meet the next connection's
 * (nginx refuses the streams past its keepalive_requests): 64 threads through nginx's
 * GOAWAYs needed a third attempt now and then. */
#define H2_MAX_ATTEMPTS 10
#define H2_MAX_FIELDS 128 /* the caller's headers, and ours */

static const char H2[] = "h2";

/* The request's fields in HTTP/2's form: names lower-cased into one buffer. */
typedef struct h2_fields {
    tp__h2_header f[H2_MAX_FIELDS];
    size_t n;
    char names[4096];
    size_t used;
} h2_fields;

static tp_err fields_make(const tp_http_client *c, const tp_http_request *req, h2_fields *hf,
                          tp_errinfo *err)
{
    bool ua = false;
    hf->n = hf->used = 0;
    for (size_t i = 0; i < req->nheaders; i++) {
        const char *name = req->header_names[i];
        size_t len = strlen(name);
        if (hf->n + 1 >= H2_MAX_FIELDS || len + 1 > sizeof hf->names - hf->used)
            return tp_errinfo_set(err, TP_EINVAL, 0,
                                  "headers: more than %d, or names longer than %zu bytes in all, "
                                  "over HTTP/2",
                                  H2_MAX_FIELDS - 1, sizeof hf->names);
        char *lc = hf->names + hf->used;
        for (size_t k = 0; k < len; k++)
            lc[k] = (char)tolower((unsigned char)name[k]);
        lc[len] = '\0';
        hf->used += len + 1;
        ua = ua || strcmp(lc, "user-agent") == 0;
        hf->f[hf->n++] = (tp__h2_header){lc, req->header_values[i]};
    }
    if (!ua && c->user_agent[0] != '\0')
        hf->f[hf->n++] = (tp__h2_header){"user-agent", c->user_agent};
    return TP_OK;
}

/* The same checks as HTTP/1.1's (a token method and names, no CR, LF or NUL, no framing
 * header of the caller's), so that a request is refused alike whichever protocol. */
static tp_err validate(const tp_http_request *req, const tp__http_url *u, tp_errinfo *err)
{
    tp__buf b;
    tp__buf_init(&b);
    tp_err rc =
        tp__http_req_build(&b, req->method != NULL ? req->method : "GET", u, req->header_names,
                           req->header_values, req->nheaders, req->body_len, true, err);
    tp__buf_free(&b);
    return rc;
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
        if (rc == TP_ETIMEDOUT)
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

/* Sends rq until it is answered, fails, or was not processed H2_MAX_ATTEMPTS times
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
            *not_h2 = rc == TP_EPROTO && ae.sys_errno == ENOPROTOOPT;
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
        if (unprocessed && attempt + 1 < H2_MAX_ATTEMPTS && !(req->flags & TP_HTTP_NO_RETRY)) {
            TP__HTTP_TRACE(c, TP_HTTP_TRACE_RETRY, u, .err = rc, .protocol = H2);
            continue;
        }
        tp__free(owned);
        if (rc == TP_ETIMEDOUT)
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
    tp_err rc = validate(req, u, err);
    h2_fields hf;
    if (rc == TP_OK)
        rc = fields_make(c, req, &hf, err);
    if (rc != TP_OK)
        return rc;
    char key[TP__HTTP_KEY_MAX], authority[300];
    size_t keylen = tp__http_key(c, u, key, sizeof key);
    bool dflt = u->port == (u->tls ? 443 : 80);
    snprintf(authority, sizeof authority, dflt ? "%s%s%s" : "%s%s%s:%u", u->host_is_ipv6 ? "[" : "",
             u->host, u->host_is_ipv6 ? "]" : "", (unsigned)u->port);
    tp__h2_request rq = {.method = req->method != NULL ? req->method : "GET",
                         .scheme = u->tls ? "https" : "http",
                         .authority = authority,
                         .path = u->target,
                         .headers = hf.f,
                         .nheaders = hf.n,
                         .body = req->body_len > 0 ? req->body : NULL,
                         .bodylen = req->body_len};
    void *owned = NULL; /* a streamed response may outlive the caller's body */
    if ((req->flags & TP_HTTP_STREAM) && req->body_len > 0) {
        if ((owned = tp__malloc(req->body_len)) == NULL)
            return tp_errinfo_set(err, TP_ENOMEM, 0, "copying a request body");
        memcpy(owned, req->body, req->body_len);
        rq.body = owned;
    }
    bool not_h2;
    rc = attempts(c, req, u, &rq, key, keylen, deadline, owned, out, &not_h2, err);
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
    if (rc == TP_ETIMEDOUT)
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
