/* resp_internal.h: what the two halves of the response reader share (internal to
 * src/http/response.c and src/http/resp_headers.c, never used elsewhere): the context a
 * feed passes to http-parser's callbacks, the callback-order states kept in
 * tp__http_resp.last_cb, and the header store's entry points. */
#ifndef TP_HTTP_RESP_INTERNAL_H
#define TP_HTTP_RESP_INTERNAL_H

#include "parse.h"

/* The context of one tp__http_resp_feed()/eof() call, reached through parser.data while
 * http-parser runs (so callbacks can fill the caller's tp_errinfo). */
typedef struct tp__http_rctx {
    tp__http_resp *r;
    tp_errinfo *err;
} tp__http_rctx;

/* tp__http_resp.last_cb: where the reader is in the callback sequence. Header data
 * arrives in pieces, so "a new header starts" is "a field piece after a value piece". */
enum {
    TP__CB_NONE = 0,      /* nothing received yet (eof now: no response at all) */
    TP__CB_BEGIN,         /* status line started, or between two headers */
    TP__CB_FIELD,         /* inside a header name */
    TP__CB_VALUE,         /* inside a header value */
    TP__CB_INTERIM,       /* a 1xx response was read and skipped */
    TP__CB_HEADERS_DONE,  /* header section complete */
    TP__CB_TRAILER_FIELD, /* inside a trailer name (trailers are counted, not kept) */
    TP__CB_TRAILER_VALUE, /* inside a trailer value */
};

/* tp__http_resp_fail: records code as r's sticky error, fills the caller's errinfo with
 * the formatted message, returns code. */
tp_err tp__http_resp_fail(tp__http_rctx *c, tp_err code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* tp__http_resp_count: adds n bytes to the header size; TP_ETOOBIG past the cap. */
tp_err tp__http_resp_count(tp__http_rctx *c, size_t n);

/* Header store (resp_headers.c). Each returns TP_OK or the sticky error it set. */
tp_err tp__http_hdr_field(tp__http_rctx *c, const char *at, size_t len);
tp_err tp__http_hdr_value(tp__http_rctx *c, const char *at, size_t len);
/* tp__http_hdr_end: completes the header in progress, if any (end of the section). */
tp_err tp__http_hdr_end(tp__http_rctx *c);
/* tp__http_hdr_framing: once all headers are in: refuses Content-Length with
 * Transfer-Encoding and an empty Transfer-Encoding, sets *chunked (chunked is the last
 * coding) and r->keepalive_timeout_s. */
tp_err tp__http_hdr_framing(tp__http_rctx *c, bool *chunked);
/* tp__http_hdr_clear: forgets every header (an interim response), keeps the memory. */
void tp__http_hdr_clear(tp__http_resp *r);
void tp__http_hdr_free(tp__http_resp *r);

#endif
