/* h2_types.h: the session's and the streams' data structures, shared by session.c and
 * stream.c (whose functions h2.h declares) and by nothing else. */
#ifndef TP_H2_H2_TYPES_H
#define TP_H2_H2_TYPES_H

#include <nghttp2/nghttp2.h>

#include "base/list.h"
#include "h2/h2.h"

struct tp__h2_stream {
    tp__h2 *h;
    int32_t id;
    tp__list link;    /* in h->streams until it is freed */
    bool done;        /* over: the response ended, or the stream failed */
    bool ended;       /* the response's END_STREAM arrived */
    bool abandoned;   /* the caller freed it while open: freed when nghttp2 closes it */
    bool unprocessed; /* the server did not process it (GOAWAY above it, REFUSED_STREAM) */
    tp_err rc;        /* when done: TP_OK or why it failed */
    tp_errinfo err;
    int status;          /* :status of the final response; 0 before it */
    bool header_done;    /* the final response's header block ended (END_HEADERS) */
    size_t header_bytes; /* of the response so far, as SETTINGS_MAX_HEADER_LIST_SIZE counts */
    char *fields;        /* the final response's fields: "name\0value\0" pairs */
    size_t fields_len, fields_cap;
    unsigned char *body; /* body bytes arrived and not read: [body_off, body_off + body_len) */
    size_t body_off, body_len, body_cap;
    const unsigned char *req_body; /* the request's body (the caller's), sent from req_off */
    size_t req_len, req_off;
};

struct tp__h2 {
    nghttp2_session *ng;
    tp__stream s;
    tp__h2_options o;
    char dest[64]; /* the peer's address, for messages */
    tp__list streams;
    int32_t open; /* streams submitted and not yet over */
    bool settings_seen;
    bool goaway_recv, goaway_sent;
    int64_t goaway_code;    /* the peer's; -1 for none */
    int32_t goaway_last_id; /* the peer's last processed stream id */
    bool dead;              /* the connection failed: dead_rc / dead_err say why */
    tp_err dead_rc;
    tp_errinfo dead_err;
    unsigned char *out; /* what nghttp2 produced and the socket has not taken yet */
    size_t out_off, out_len, out_cap;
    char why[120];        /* nghttp2's word on the last error it met (error_callback2) */
    int64_t local_goaway; /* the code of a GOAWAY nghttp2 sent for a peer's protocol error;
                             -1 for none */
    int64_t ping_sent_at; /* the PING in flight; 0 for none */
    int64_t ping_rtt;     /* the last answered one's round trip; -1 before */
    int64_t last_recv;    /* when the peer last sent a byte (the session's start before) */
    /* what happened since tp__h2_news() was last asked (for the pool's statistics) */
    uint16_t news_goaways[TP_GOAWAY_CODES]; /* GOAWAYs received, by code slot */
    int64_t news_rtt;                       /* a PING's round trip; -1 for none */
};

/* tp__h2_fail_streams: the connection died with rc/err: every stream not over fails
 * with it (session.c). */
void tp__h2_fail_streams(tp__h2 *h);

/* Callbacks of stream.c that the session installs. */
int tp__h2_on_begin_headers(nghttp2_session *ng, const nghttp2_frame *frame, void *ud);
int tp__h2_on_header(nghttp2_session *ng, const nghttp2_frame *frame, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                     void *ud);
int tp__h2_on_data_chunk(nghttp2_session *ng, uint8_t flags, int32_t stream_id, const uint8_t *data,
                         size_t len, void *ud);
int tp__h2_on_stream_close(nghttp2_session *ng, int32_t stream_id, uint32_t error_code, void *ud);
/* tp__h2_stream_frame: a frame of st's arrived (END_STREAM noted). */
void tp__h2_stream_frame(tp__h2_stream *st, const nghttp2_frame *frame);
/* tp__h2_stream_release: frees st's memory (no session call). */
void tp__h2_stream_release(tp__h2_stream *st);

#endif
