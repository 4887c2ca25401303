/* parse.h: HTTP/1.1 message handling for the client (internal, never installed): URL
 * parsing, request serialisation, and an incremental response reader built on
 * Debian's http-parser (not a hand-written parser).
 *
 * The response reader is push-based so that a blocking client and an event loop drive
 * it the same way: feed whatever bytes arrived, look at the state, repeat; signal end
 * of stream with tp__http_resp_eof(). It enforces the framing rules of RFC 9112 and
 * refuses anything ambiguous, because an ambiguous response on a pooled connection can
 * poison the next request:
 *   - Content-Length that is invalid, or repeated with different values -> TP_EPROTO;
 *   - Content-Length together with Transfer-Encoding -> TP_EPROTO;
 *   - status line + headers larger than max_header_bytes -> TP_ETOOBIG (skipped 1xx
 *     responses and trailers count too; http-parser's own limit of 80 KiB applies
 *     whatever max_header_bytes says);
 *   - a header name that is not a token ("Content-Length :"), a NUL in a value, a
 *     status outside 100-999, a version other than 1.x, 101 -> TP_EPROTO;
 *   - any http-parser error -> TP_EPROTO (the message names it);
 * A response to HEAD, and 1xx (skipped, except 101), 204 and 304 responses, have no
 * body. Chunked bodies (extensions and trailers allowed), Content-Length bodies and
 * read-until-close bodies are supported. Trailers are counted but not kept (a trailer
 * must not pose as a header). After an error the reader accepts nothing more and the
 * connection must be closed. */
#ifndef TP_HTTP_PARSE_H
#define TP_HTTP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <http_parser.h>

#include "base/base.h"
#include "base/buf.h"
#include "tidepool/tidepool.h"

/* ---- URLs ------------------------------------------------------------------------ */

typedef struct tp__http_url {
    bool tls;        /* https */
    char host[256];  /* without brackets for IPv6 literals; lower-cased */
    bool host_is_ipv6;
    uint16_t port;   /* explicit, or 80 / 443 */
    char target[2048]; /* path and query ("/" when empty), no fragment */
} tp__http_url;

/* tp__http_url_parse: absolute http:// or https:// URLs only. TP_EINVAL (message says
 * what is wrong: scheme, empty host, bad port, userinfo, too long, control bytes). */
tp_err tp__http_url_parse(const char *url, tp__http_url *out, tp_errinfo *err);

/* ---- requests -------------------------------------------------------------------- */


/* tp__http_req_build: appends to out the request line and headers:
 *   "<method> <target> HTTP/1.1\r\nHost: <host[:port]>\r\n" + the caller's headers +
 *   "Content-Length: <n>\r\n" when a body is sent (or the method is POST/PUT/PATCH),
 *   "Transfer-Encoding: chunked\r\n" instead for body_len TP__HTTP_BODY_CHUNKED,
 *   "Connection: close\r\n" when keepalive is false, then "\r\n" (not the body).
 * The caller's Host, Content-Length, Transfer-Encoding and Connection headers are
 * refused (TP_EINVAL): the client owns framing. Method must be a token; header names
 * tokens; names and values must not contain CR, LF or NUL (no header injection). */
#define TP__HTTP_BODY_CHUNKED SIZE_MAX /* body_len: unknown length, chunked framing */
tp_err tp__http_req_build(tp__buf *out, const char *method, const tp__http_url *url,
                          const char *const *names, const char *const *values, size_t nheaders,
                          size_t body_len, bool keepalive, tp_errinfo *err);

/* tp__http_method_idempotent: GET, HEAD, OPTIONS, TRACE, PUT, DELETE (RFC 9110 9.2.2). */
bool tp__http_method_idempotent(const char *method);

/* ---- responses ------------------------------------------------------------------- */

/* One header, pointing into the reader's own storage (valid until free; they do not
 * move once headers_done is set). Values have surrounding whitespace removed. */
typedef struct tp__http_hdr {
    const char *name, *value;
    size_t name_len, value_len;
} tp__http_hdr;

/* Called with each piece of body data as it is parsed (already de-chunked). Return 0
 * to go on, non-zero to stop parsing (tp__http_resp_feed then returns TP_ECANCELED). */
typedef int (*tp__http_body_fn)(void *ud, const char *data, size_t len);

typedef struct tp__http_resp {
    http_parser parser;
    size_t max_header_bytes;
    bool head;                 /* the request was HEAD */
    tp__http_body_fn on_body;
    void *ud;

    /* results */
    int status;                /* 0 until the status line is parsed */
    int http_minor;            /* 1 for HTTP/1.1, 0 for HTTP/1.0 */
    bool headers_done;         /* status line and headers complete */
    bool got_continue;         /* a 100 (Continue) came before the final response */
    bool done;                 /* the whole message is complete */
    bool keep_alive;           /* the connection may carry another request (valid once
                                  done: HTTP/1.1 without Connection: close, or 1.0 with
                                  keep-alive) */
    bool until_close;          /* the body runs until the server closes */
    int64_t content_length;    /* -1 if none */
    int64_t keepalive_timeout_s; /* from "Keep-Alive: timeout=N", -1 if none */
    uint64_t body_bytes;       /* body bytes delivered so far */
    tp_err err;                /* sticky error, TP_OK if none */

    /* header storage (owned) */
    tp__http_hdr *hdrs;
    size_t nhdrs, hdr_cap;
    char *store;               /* names and values, NUL-terminated */
    size_t store_len, store_cap;
    size_t header_bytes;       /* bytes of status line + headers seen */
    int last_cb;               /* internal: which header callback ran last */
    int cl_count;              /* internal: Content-Length headers seen */
    bool has_te;               /* internal: a Transfer-Encoding header was seen */
} tp__http_resp;

/* tp__http_resp_init: prepares r to read one response to a request with method
 * (HEAD: no body). on_body may be NULL (body discarded but counted). */
void tp__http_resp_init(tp__http_resp *r, const char *method, size_t max_header_bytes,
                        tp__http_body_fn on_body, void *ud);
void tp__http_resp_free(tp__http_resp *r);

/* tp__http_resp_feed: parses len bytes. *used receives how many were consumed: all of
 * them unless the message completed earlier (bytes after a complete response are not
 * consumed: on a keep-alive connection that means the server sent more than it should,
 * and the caller must not reuse the connection). Errors are sticky: TP_EPROTO,
 * TP_ETOOBIG, TP_ENOMEM, TP_ECANCELED (on_body asked to stop). */
tp_err tp__http_resp_feed(tp__http_resp *r, const char *data, size_t len, size_t *used,
                          tp_errinfo *err);

/* tp__http_resp_eof: the server closed the connection. Completes a read-until-close
 * body; otherwise TP_ECONNRESET ("closed before the response was complete": with
 * headers_done false and nothing fed, the server closed without any response). */
tp_err tp__http_resp_eof(tp__http_resp *r, tp_errinfo *err);

/* tp__http_resp_header: the value of the first header named name (case-insensitive),
 * or NULL. */
const char *tp__http_resp_header(const tp__http_resp *r, const char *name);

#endif
