/* response.c: the incremental HTTP/1.1 response reader (tp__http_resp_*), driving
 * Debian's http-parser and adding the framing rules it does not enforce itself.
 *
 * http-parser tokenises and frames; this file decides what to trust. Its callbacks
 * count header bytes against the cap, keep every header (resp_headers.c stores and
 * checks them), refuse 101 and odd status codes, skip interim 1xx responses, tell
 * http-parser when a response has no body (HEAD, 204, 304, 1xx), count and deliver
 * body bytes, and pause the parser when the message is complete so that bytes of a
 * next message are never consumed. Any refusal sets r->err, which is sticky. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "resp_internal.h"

/* Status line bytes not seen by a callback: "HTTP/1.1 200 " and its CRLF. */
#define TP__STATUS_LINE_OVERHEAD 15

static int on_message_begin(http_parser *p);
static int on_status(http_parser *p, const char *at, size_t len);
static int on_header_field(http_parser *p, const char *at, size_t len);
static int on_header_value(http_parser *p, const char *at, size_t len);
static int on_headers_complete(http_parser *p);
static int on_body(http_parser *p, const char *at, size_t len);
static int on_message_complete(http_parser *p);

static const http_parser_settings settings = {
    .on_message_begin = on_message_begin,
    .on_status = on_status,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

tp_err tp__http_resp_fail(tp__http_rctx *c, tp_err code, const char *fmt, ...)
{
    c->r->err = code;
    if (c->err != NULL) {
        char msg[TP_ERRMSG_SIZE];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        tp_errinfo_set(c->err, code, 0, "%s", msg);
    }
    return code;
}

tp_err tp__http_resp_count(tp__http_rctx *c, size_t n)
{
    tp__http_resp *r = c->r;
    if (n > r->max_header_bytes || r->header_bytes > r->max_header_bytes - n)
        return tp__http_resp_fail(c, TP_ETOOBIG, "response header exceeds %zu bytes",
                                  r->max_header_bytes);
    r->header_bytes += n;
    return TP_OK;
}

static tp__http_rctx *ctx_of(http_parser *p)
{
    return p->data;
}

static int on_message_begin(http_parser *p)
{
    tp__http_rctx *c = ctx_of(p);
    if (c->r->last_cb == TP__CB_NONE)
        c->r->last_cb = TP__CB_BEGIN;
    return tp__http_resp_count(c, TP__STATUS_LINE_OVERHEAD) == TP_OK ? 0 : -1;
}

static int on_status(http_parser *p, const char *at, size_t len)
{
    (void)at;
    tp__http_rctx *c = ctx_of(p);
    c->r->status = p->status_code;
    return tp__http_resp_count(c, len) == TP_OK ? 0 : -1;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    tp__http_rctx *c = ctx_of(p);
    c->r->status = p->status_code;
    return tp__http_hdr_field(c, at, len) == TP_OK ? 0 : -1;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    return tp__http_hdr_value(ctx_of(p), at, len) == TP_OK ? 0 : -1;
}

/* on_headers_complete: the status line and headers are in. Validates what http-parser
 * lets through, decides the framing (RFC 9112 6.3) and returns 1 (http-parser's "no
 * body") for HEAD, 1xx, 204 and 304. */
static int on_headers_complete(http_parser *p)
{
    tp__http_rctx *c = ctx_of(p);
    tp__http_resp *r = c->r;
    if (r->headers_done) /* end of trailers: http-parser 2.9 does not call us there */
        return tp__http_resp_count(c, 2) == TP_OK ? 0 : -1;
    if (tp__http_hdr_end(c) != TP_OK || tp__http_resp_count(c, 2) != TP_OK)
        return -1;
    r->status = p->status_code;
    if (p->http_major != 1) {
        tp__http_resp_fail(c, TP_EPROTO, "unsupported HTTP version %u.%u", p->http_major,
                           p->http_minor);
        return -1;
    }
    if (r->status < 100 || r->status > 999) {
        tp__http_resp_fail(c, TP_EPROTO, "invalid status code %d", r->status);
        return -1;
    }
    if (r->status == 101) {
        tp__http_resp_fail(c, TP_EPROTO, "unexpected 101 (Switching Protocols)");
        return -1;
    }
    if (r->status < 200) {
        if (r->status == 100)
            r->got_continue = true; /* an Expect: 100-continue request sends its body */
        r->last_cb = TP__CB_INTERIM; /* skipped when its (empty) message completes */
        return 1;
    }
    bool chunked = false;
    if (tp__http_hdr_framing(c, &chunked) != TP_OK)
        return -1;
    /* http-parser frames the body itself: refuse if it disagrees with our reading of
     * Transfer-Encoding, rather than guess which one the server meant. */
    if (chunked != ((p->flags & F_CHUNKED) != 0)) {
        tp__http_resp_fail(c, TP_EPROTO, "ambiguous Transfer-Encoding");
        return -1;
    }
    r->http_minor = p->http_minor >= 1 ? 1 : 0;
    bool no_body = r->head || r->status == 204 || r->status == 304;
    r->until_close = !no_body && !chunked && (r->has_te || r->cl_count == 0);
    r->headers_done = true;
    r->last_cb = TP__CB_HEADERS_DONE;
    return no_body ? 1 : 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    tp__http_rctx *c = ctx_of(p);
    tp__http_resp *r = c->r;
    r->body_bytes += len;
    if (r->on_body != NULL && r->on_body(r->ud, at, len) != 0) {
        tp__http_resp_fail(c, TP_ECANCELED, "response body callback stopped the transfer");
        return -1;
    }
    return 0;
}

/* on_message_complete: pauses the parser in every case so that http_parser_execute()
 * returns right after the message; tp__http_resp_feed() then restarts it after an
 * interim 1xx or stops for good. */
static int on_message_complete(http_parser *p)
{
    tp__http_resp *r = ctx_of(p)->r;
    if (r->headers_done) {
        r->done = true;
        /* RFC 9112 6.1: Transfer-Encoding in HTTP/1.0 means the framing is not to be
         * trusted for another message. */
        r->keep_alive = http_should_keep_alive(p) && !(r->http_minor == 0 && r->has_te);
    }
    http_parser_pause(p, 1);
    return 0;
}

void tp__http_resp_init(tp__http_resp *r, const char *method, size_t max_header_bytes,
                        tp__http_body_fn on_body_fn, void *ud)
{
    memset(r, 0, sizeof *r);
    http_parser_init(&r->parser, HTTP_RESPONSE);
    r->max_header_bytes = max_header_bytes;
    r->head = method != NULL && strcmp(method, "HEAD") == 0;
    r->on_body = on_body_fn;
    r->ud = ud;
    r->http_minor = 1;
    r->content_length = -1;
    r->keepalive_timeout_s = -1;
    r->err = TP_OK;
    r->last_cb = TP__CB_NONE;
}

void tp__http_resp_free(tp__http_resp *r)
{
    if (r == NULL)
        return;
    tp__http_hdr_free(r);
}

/* restart_after_interim: a 1xx response other than 101 is complete; read the final one
 * with a fresh parser. Its headers are forgotten, its bytes stay counted against the cap
 * (so an endless stream of 1xx cannot run forever). */
static void restart_after_interim(tp__http_resp *r)
{
    void *data = r->parser.data;
    http_parser_init(&r->parser, HTTP_RESPONSE);
    r->parser.data = data;
    tp__http_hdr_clear(r);
    r->status = 0;
    r->last_cb = TP__CB_INTERIM;
}

/* parser_error: maps http-parser's error to ours (r->err is set unless a callback had
 * already failed, in which case its more precise error stands). */
static tp_err parser_error(tp__http_rctx *c)
{
    if (c->r->err != TP_OK)
        return c->r->err;
    enum http_errno e = HTTP_PARSER_ERRNO(&c->r->parser);
    if (e == HPE_HEADER_OVERFLOW)
        return tp__http_resp_fail(c, TP_ETOOBIG,
                                  "response header exceeds http-parser's limit "
                                  "of %d bytes",
                                  HTTP_MAX_HEADER_SIZE);
    if (e == HPE_UNEXPECTED_CONTENT_LENGTH)
        return tp__http_resp_fail(c, TP_EPROTO,
                                  "Content-Length together with "
                                  "Transfer-Encoding (%s)",
                                  http_errno_name(e));
    return tp__http_resp_fail(c, TP_EPROTO, "malformed response: %s (%s)",
                              http_errno_description(e), http_errno_name(e));
}

static tp_err sticky(const tp__http_resp *r, tp_errinfo *err)
{
    if (err != NULL && err->code != r->err)
        tp_errinfo_set(err, r->err, 0, "response reader already failed: %s", tp_strerror(r->err));
    return r->err;
}

tp_err tp__http_resp_feed(tp__http_resp *r, const char *data, size_t len, size_t *used,
                          tp_errinfo *err)
{
    *used = 0;
    if (r->err != TP_OK)
        return sticky(r, err);
    if (r->done || len == 0)
        return TP_OK;
    tp__http_rctx c = {r, err};
    r->parser.data = &c;
    size_t off = 0;
    tp_err rc = TP_OK;
    while (off < len) {
        off += http_parser_execute(&r->parser, &settings, data + off, len - off);
        enum http_errno e = HTTP_PARSER_ERRNO(&r->parser);
        if (e == HPE_PAUSED && !r->done && r->err == TP_OK) {
            restart_after_interim(r);
            continue;
        }
        if (e == HPE_PAUSED || (e == HPE_OK && off == len))
            break;
        /* An error, or http-parser stopped short without one (it only does that for an
         * upgrade, which on_headers_complete refuses): either way, nothing to trust. */
        rc = parser_error(&c);
        break;
    }
    r->parser.data = NULL;
    *used = off;
    return rc;
}

tp_err tp__http_resp_eof(tp__http_resp *r, tp_errinfo *err)
{
    if (r->err != TP_OK)
        return sticky(r, err);
    if (r->done)
        return TP_OK;
    tp__http_rctx c = {r, err};
    if (r->headers_done && r->until_close) {
        /* http-parser completes a read-until-close body on a zero-length execute. */
        r->parser.data = &c;
        http_parser_execute(&r->parser, &settings, NULL, 0);
        r->parser.data = NULL;
        if (r->done)
            return TP_OK;
        return parser_error(&c);
    }
    if (r->last_cb == TP__CB_NONE)
        return tp__http_resp_fail(&c, TP_ECONNRESET,
                                  "server closed the connection without sending a response");
    if (!r->headers_done)
        return tp__http_resp_fail(&c, TP_ECONNRESET,
                                  "server closed the connection before the response header "
                                  "was complete");
    return tp__http_resp_fail(&c, TP_ECONNRESET,
                              "server closed the connection before the response was complete "
                              "(after %llu body bytes)",
                              (unsigned long long)r->body_bytes);
}
