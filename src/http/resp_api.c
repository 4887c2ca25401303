/* resp_api.c: what a caller does with a response: status, headers, the body in full
 * or streamed, details, and freeing it, which decides the connection's fate: back to
 * the pool when the message is complete and the server keeps the connection alive
 * (draining a small unread remainder first), closed otherwise. */
#include <stdlib.h>
#include <string.h>

#include "client.h"

int tp_http_response_status(const tp_http_response *r)
{
    return r == NULL ? 0 : r->parse.status;
}

const char *tp_http_response_header(const tp_http_response *r, const char *name)
{
    if (r == NULL || name == NULL)
        return NULL;
    if (r->h2)
        return tp__http_h2_header(r, name);
    return tp__http_resp_header(&r->parse, name);
}

bool tp_http_response_header_at(const tp_http_response *r, size_t i, const char **name,
                                const char **value)
{
    if (r != NULL && r->h2)
        return tp__http_h2_header_at(r, i, name, value);
    if (r == NULL || i >= r->parse.nhdrs)
        return false;
    if (name != NULL)
        *name = r->parse.hdrs[i].name;
    if (value != NULL)
        *value = r->parse.hdrs[i].value;
    return true;
}

const char *tp_http_response_body(const tp_http_response *r, size_t *len)
{
    if (r == NULL || r->stream) {
        if (len != NULL)
            *len = 0;
        return NULL;
    }
    if (len != NULL)
        *len = r->body.len;
    return r->body.data != NULL ? r->body.data : "";
}

/* A streamed body (TP_HTTP_STREAM) and the drain on free are read here, blocking on the
 * connection the response holds, not through an engine. */
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

tp_err tp_http_response_read(tp_http_response *r, void *buf, size_t cap, size_t *got,
                             tp_errinfo *err)
{
    if (r == NULL || got == NULL || (buf == NULL && cap > 0))
        return tp_errinfo_set(err, TP_EINVAL, 0, "response, buf and got are required");
    *got = 0;
    if (!r->stream)
        return tp_errinfo_set(err, TP_ESTATE, 0,
                              "the body was read in full: use "
                              "tp_http_response_body()");
    if (r->err != TP_OK)
        return tp_errinfo_set(err, r->err, 0, "the response failed earlier: %s",
                              tp_strerror(r->err));
    if (r->h2)
        return tp__http_h2_read(r, buf, cap, got, err);
    if (r->body.len == r->body_pos && !r->parse.done && r->conn != NULL) {
        tp__buf_reset(&r->body);
        r->body_pos = 0;
        tp_err rc = tp__http_read_until(r, true, r->deadline, err);
        if (rc == TP_ETIMEDOUT)
            rc = tp_errinfo_set(err, TP_EREQTIMEDOUT, 0, "the request's deadline passed");
        if (rc != TP_OK) {
            r->err = rc;
            return rc;
        }
    }
    size_t n = TP__MIN(cap, r->body.len - r->body_pos);
    if (n > 0)
        memcpy(buf, r->body.data + r->body_pos, n);
    r->body_pos += n;
    *got = n;
    return TP_OK;
}

void tp_http_response_get_info(const tp_http_response *r, tp_http_response_info *out)
{
    if (out == NULL)
        return;
    memset(out, 0, sizeof *out);
    if (r == NULL)
        return;
    *out = r->info;
    out->keep_alive = r->parse.done && r->parse.keep_alive && !r->early;
    out->early = r->early;
    out->http_minor = r->parse.http_minor;
    out->content_length = r->parse.content_length;
    out->protocol = r->h2 ? "h2" : "http/1.1";
}

/* Reads and drops what is left of the body, within the client's drain bounds. */
static bool drain(tp_http_response *r)
{
    tp_http_client *c = r->client;
    r->draining = true;
    tp__buf_reset(&r->body); /* pending streamed bytes are dropped too */
    r->body_pos = 0;
    r->drain_limit = r->info.wire_body_bytes + c->o.drain_max_bytes;
    int64_t dl = TP__MIN(r->deadline, tp_deadline_after(c->o.drain_timeout));
    tp_errinfo e;
    return tp__http_read_until(r, true, dl, &e) == TP_OK && r->parse.done;
}

void tp_http_response_free(tp_http_response *r)
{
    if (r == NULL)
        return;
    if (r->h2) {
        tp__http_h2_end(r); /* a stream not over is reset: nothing to drain */
        tp__free(r->h2_fields);
        tp__free(r->h2_body);
    }
    if (r->lease != NULL) {
        /* An unread remainder is drained first if it is small; otherwise the connection's
         * state is unknown and it is reset. */
        if (r->err == TP_OK && r->parse.err == TP_OK && !r->parse.done)
            drain(r);
        tp_conn_release(r->lease, tp__http_release_flags(r));
        r->lease = NULL;
    }
    tp__http_resp_free(&r->parse);
    tp__http_body_free(r);
    tp__free(r);
}
