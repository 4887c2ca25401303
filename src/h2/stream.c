/* stream.c: the streams of an HTTP/2 session: a request submitted (its header block
 * checked for what HTTP/2 forbids, its body sent from the caller's memory), its response
 * received (status, fields, body bytes held until read, bounded by the stream window),
 * and how it ended: complete, reset by the server (with its code, and whether the
 * server processed it), or failed with the connection. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "h2/h2_types.h"

/* ---- ending ------------------------------------------------------------------------ */

static void stream_over(tp__h2_stream *st, tp_err rc, const tp_errinfo *why)
{
    if (st->done)
        return;
    st->done = true;
    st->h->open--;
    st->rc = rc;
    if (why != NULL)
        st->err = *why;
    else
        tp_errinfo_clear(&st->err);
}

void tp__h2_fail_streams(tp__h2 *h)
{
    for (tp__list *n = h->streams.next; n != &h->streams; n = n->next) {
        tp__h2_stream *st = TP__CONTAINER_OF(n, tp__h2_stream, link);
        /* A stream above the peer's GOAWAY was never processed: sending it again is
         * safe even when the connection then dies. */
        if (h->goaway_recv && st->id > h->goaway_last_id)
            st->unprocessed = true;
        stream_over(st, h->dead_rc, &h->dead_err);
    }
}

void tp__h2_stream_release(tp__h2_stream *st)
{
    tp__free(st->fields);
    tp__free(st->body);
    tp__free(st);
}

int tp__h2_on_stream_close(nghttp2_session *ng, int32_t stream_id, uint32_t error_code, void *ud)
{
    tp__h2 *h = ud;
    tp__h2_stream *st = nghttp2_session_get_stream_user_data(ng, stream_id);
    if (st == NULL)
        return 0;
    if (!st->done) {
        if (error_code == NGHTTP2_NO_ERROR && st->ended) {
            stream_over(st, TP_OK, NULL);
        } else {
            tp_errinfo e;
            /* nghttp2 closes the streams above a GOAWAY's last id with REFUSED_STREAM. */
            st->unprocessed = error_code == NGHTTP2_REFUSED_STREAM ||
                              (h->goaway_recv && stream_id > h->goaway_last_id);
            if (error_code == NGHTTP2_NO_ERROR)
                tp_errinfo_set(&e, TP_ERESET, 0,
                               "HTTP/2 stream %d: closed by the server before its response "
                               "ended",
                               stream_id);
            else
                tp_errinfo_set(&e, TP_ERESET, (int)error_code,
                               "HTTP/2 stream %d: reset by the server: %s%s", stream_id,
                               nghttp2_http2_strerror(error_code),
                               st->unprocessed ? " (not processed: safe to retry)" : "");
            /* Our own reset for a bad header block keeps the reason found then. */
            if (st->rc != TP_PENDING)
                stream_over(st, st->rc, &st->err);
            else
                stream_over(st, TP_ERESET, &e);
        }
    }
    if (st->abandoned) {
        tp__list_remove(&st->link);
        tp__h2_stream_release(st);
    }
    return 0;
}

void tp__h2_stream_frame(tp__h2_stream *st, const nghttp2_frame *frame)
{
    if ((frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA) &&
        (frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
        st->ended = true;
    /* The whole block is in (its CONTINUATION frames too): only now is the final
     * header the caller's to see. nghttp2 hands fields over as it decodes them, so a
     * block split across reads would otherwise show a status with fields missing. */
    if (frame->hd.type == NGHTTP2_HEADERS && st->status >= 200)
        st->header_done = true;
}

/* ---- the response ------------------------------------------------------------------ */

int tp__h2_on_begin_headers(nghttp2_session *ng, const nghttp2_frame *frame, void *ud)
{
    (void)ud;
    tp__h2_stream *st = nghttp2_session_get_stream_user_data(ng, frame->hd.stream_id);
    if (st != NULL && st->status >= 100 && st->status < 200) {
        /* An interim response (100 Continue, 103 Early Hints) is over: the final one's
         * block starts afresh. */
        st->status = 0;
        st->fields_len = 0;
    }
    return 0;
}

static bool fields_add(tp__h2_stream *st, const uint8_t *name, size_t namelen, const uint8_t *value,
                       size_t valuelen)
{
    size_t need = st->fields_len + namelen + valuelen + 2;
    if (need > st->fields_cap) {
        size_t cap = st->fields_cap ? st->fields_cap * 2 : 512;
        while (cap < need)
            cap *= 2;
        char *f = tp__realloc(st->fields, cap);
        if (f == NULL)
            return false;
        st->fields = f;
        st->fields_cap = cap;
    }
    memcpy(st->fields + st->fields_len, name, namelen);
    st->fields[st->fields_len + namelen] = '\0';
    memcpy(st->fields + st->fields_len + namelen + 1, value, valuelen);
    st->fields[st->fields_len + namelen + 1 + valuelen] = '\0';
    st->fields_len = need;
    return true;
}

int tp__h2_on_header(nghttp2_session *ng, const nghttp2_frame *frame, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags, void *ud)
{
    (void)flags;
    tp__h2 *h = ud;
    tp__h2_stream *st = nghttp2_session_get_stream_user_data(ng, frame->hd.stream_id);
    if (st == NULL || st->abandoned)
        return 0;
    /* RFC 9113 counts each field as its name and value plus 32 bytes. A block past our
     * bound resets the stream (nghttp2 answers a temporal failure with RST_STREAM). */
    st->header_bytes += namelen + valuelen + 32;
    if (st->header_bytes > h->o.max_header_list) {
        st->rc = TP_ETOOBIG;
        tp_errinfo_set(&st->err, TP_ETOOBIG, 0,
                       "HTTP/2 stream %d: the response's header block is over %zu bytes", st->id,
                       h->o.max_header_list);
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    if (namelen == 7 && memcmp(name, ":status", 7) == 0) {
        int status = 0;
        for (size_t i = 0; i < valuelen && i < 3; i++)
            status = status * 10 + (value[i] - '0'); /* nghttp2 checked: three digits */
        if (status < 100 || status > 599) {          /* "099" passes nghttp2's check */
            st->rc = TP_EPROTO;
            tp_errinfo_set(&st->err, TP_EPROTO, 0, "HTTP/2 stream %d: status %.*s is not one",
                           st->id, (int)valuelen, (const char *)value);
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
        }
        st->status = status;
        return 0;
    }
    if (!fields_add(st, name, namelen, value, valuelen)) {
        st->rc = TP_ENOMEM;
        tp_errinfo_set(&st->err, TP_ENOMEM, 0, "HTTP/2 stream %d: out of memory for fields",
                       st->id);
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    return 0;
}

int tp__h2_on_data_chunk(nghttp2_session *ng, uint8_t flags, int32_t stream_id, const uint8_t *data,
                         size_t len, void *ud)
{
    (void)flags, (void)ud;
    tp__h2_stream *st = nghttp2_session_get_stream_user_data(ng, stream_id);
    if (st == NULL || st->abandoned || st->rc != TP_PENDING) {
        nghttp2_session_consume(ng, stream_id, len); /* nobody reads it: window back */
        return 0;
    }
    if (st->body_off > 0 && st->body_off + st->body_len + len > st->body_cap) {
        memmove(st->body, st->body + st->body_off, st->body_len);
        st->body_off = 0;
    }
    size_t need = st->body_len + len;
    if (need > st->body_cap) {
        /* The stream window bounds it: the peer may not send more than we opened. Small
         * at first: most bodies are, and 16 KiB for each of many streams freed at once
         * made the allocator trim and refault its heap on every loop round. */
        size_t cap = st->body_cap ? st->body_cap * 2 : 1024;
        while (cap < need)
            cap *= 2;
        unsigned char *b = tp__realloc(st->body, cap);
        if (b == NULL) {
            /* This stream fails (ENOMEM, reset by us); the connection and the others
             * live on, as for a header block over the bound. */
            st->rc = TP_ENOMEM;
            tp_errinfo_set(&st->err, TP_ENOMEM, 0, "HTTP/2 stream %d: out of memory for the body",
                           st->id);
            nghttp2_session_consume(ng, stream_id, len);
            nghttp2_submit_rst_stream(ng, NGHTTP2_FLAG_NONE, stream_id, NGHTTP2_INTERNAL_ERROR);
            return 0;
        }
        st->body = b;
        st->body_cap = cap;
    }
    memcpy(st->body + st->body_off + st->body_len, data, len);
    st->body_len += len;
    return 0;
}

/* ---- the request ------------------------------------------------------------------- */

static ssize_t body_read(nghttp2_session *ng, int32_t stream_id, uint8_t *buf, size_t length,
                         uint32_t *data_flags, nghttp2_data_source *source, void *ud)
{
    (void)ng, (void)stream_id, (void)ud;
    tp__h2_stream *st = source->ptr;
    if (st->abandoned) /* the caller may have freed the body: reset, never read it */
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    size_t n = st->req_len - st->req_off;
    if (n > length)
        n = length;
    memcpy(buf, st->req_body + st->req_off, n);
    st->req_off += n;
    if (st->req_off == st->req_len)
        *data_flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

/* Fields HTTP/2 forbids in a request (RFC 9113 8.2.2), and names not in lower case. */
static const char *field_problem(const tp__h2_header *f)
{
    static const char *const connection_specific[] = {
        "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade"};
    if (f->name == NULL || f->value == NULL || f->name[0] == '\0')
        return "a field without a name or value";
    if (f->name[0] == ':')
        return "a pseudo-header among the fields";
    for (const char *c = f->name; *c; c++)
        if (*c >= 'A' && *c <= 'Z')
            return "a field name not in lower case";
    for (size_t i = 0; i < sizeof connection_specific / sizeof connection_specific[0]; i++)
        if (strcmp(f->name, connection_specific[i]) == 0)
            return "a connection-specific field";
    if (strcmp(f->name, "te") == 0 && strcasecmp(f->value, "trailers") != 0)
        return "TE other than \"trailers\"";
    return NULL;
}

static nghttp2_nv nv(const char *name, const char *value)
{
    return (nghttp2_nv){(uint8_t *)name, (uint8_t *)value, strlen(name), strlen(value),
                        NGHTTP2_NV_FLAG_NONE};
}

tp_err tp__h2_submit(tp__h2 *h, const tp__h2_request *rq, tp__h2_stream **out, tp_errinfo *err)
{
    *out = NULL;
    if (rq == NULL || rq->method == NULL || rq->scheme == NULL || rq->authority == NULL ||
        rq->path == NULL || (rq->nheaders > 0 && rq->headers == NULL) ||
        (rq->body == NULL && rq->bodylen > 0))
        return tp_errinfo_set(err, TP_EINVAL, 0,
                              "HTTP/2 request: method, scheme, authority and path are required");
    for (size_t i = 0; i < rq->nheaders; i++) {
        const char *why = field_problem(&rq->headers[i]);
        if (why != NULL)
            return tp_errinfo_set(err, TP_EINVAL, 0, "HTTP/2 request: %s (\"%s\")", why,
                                  rq->headers[i].name != NULL ? rq->headers[i].name : "");
    }
    if (h->dead || tp__h2_draining(h) || !nghttp2_session_check_request_allowed(h->ng))
        return tp_errinfo_set(err, TP_ESTATE, 0, "HTTP/2 connection to %s takes no new streams%s",
                              h->dest, h->dead ? ": it is dead" : " (draining after GOAWAY)");
    if (h->open >= tp__h2_capacity(h))
        return tp_errinfo_set(err, TP_EAGAIN, 0,
                              "HTTP/2 connection to %s is full: %d streams of %d", h->dest, h->open,
                              tp__h2_capacity(h));
    nghttp2_nv stack[24];
    size_t n = 4 + rq->nheaders;
    nghttp2_nv *nva = n <= sizeof stack / sizeof stack[0] ? stack : tp__calloc(n, sizeof *nva);
    tp__h2_stream *st = tp__calloc(1, sizeof *st);
    if (nva == NULL || st == NULL) {
        if (nva != stack)
            tp__free(nva);
        tp__free(st);
        return tp_errinfo_set(err, TP_ENOMEM, 0, "HTTP/2: out of memory for a request");
    }
    nva[0] = nv(":method", rq->method);
    nva[1] = nv(":scheme", rq->scheme);
    nva[2] = nv(":authority", rq->authority);
    nva[3] = nv(":path", rq->path);
    for (size_t i = 0; i < rq->nheaders; i++)
        nva[4 + i] = nv(rq->headers[i].name, rq->headers[i].value);
    st->h = h;
    st->rc = TP_PENDING;
    st->req_body = rq->body;
    st->req_len = rq->bodylen;
    nghttp2_data_provider body = {.source.ptr = st, .read_callback = body_read};
    int32_t id = nghttp2_submit_request(h->ng, NULL, nva, n, rq->body != NULL ? &body : NULL, st);
    if (nva != stack)
        tp__free(nva);
    if (id < 0) {
        tp__free(st);
        return tp_errinfo_set(err, id == NGHTTP2_ERR_NOMEM ? TP_ENOMEM : TP_ESTATE, id,
                              "HTTP/2 request to %s: %s", h->dest, nghttp2_strerror(id));
    }
    st->id = id;
    tp__list_push_back(&h->streams, &st->link);
    h->open++;
    *out = st;
    return TP_OK;
}

/* ---- the caller's view ------------------------------------------------------------- */

bool tp__h2_stream_done(const tp__h2_stream *st)
{
    return st->done;
}

tp_err tp__h2_stream_result(const tp__h2_stream *st, tp_errinfo *err)
{
    if (!st->done)
        return TP_PENDING;
    if (err != NULL)
        *err = st->err;
    return st->rc;
}

bool tp__h2_stream_unprocessed(const tp__h2_stream *st)
{
    return st->unprocessed;
}

int tp__h2_stream_status(const tp__h2_stream *st)
{
    return st->header_done ? st->status : 0;
}

const char *tp__h2_fields_find(const char *fields, size_t len, const char *name)
{
    for (size_t off = 0; off < len;) {
        const char *n = fields + off;
        const char *v = n + strlen(n) + 1;
        if (strcasecmp(n, name) == 0)
            return v;
        off = (size_t)(v - fields) + strlen(v) + 1;
    }
    return NULL;
}

bool tp__h2_fields_at(const char *fields, size_t len, size_t i, const char **name,
                      const char **value)
{
    size_t k = 0;
    for (size_t off = 0; off < len; k++) {
        const char *n = fields + off;
        const char *v = n + strlen(n) + 1;
        if (k == i) {
            *name = n;
            *value = v;
            return true;
        }
        off = (size_t)(v - fields) + strlen(v) + 1;
    }
    return false;
}

const char *tp__h2_stream_header(const tp__h2_stream *st, const char *name)
{
    return tp__h2_fields_find(st->fields, st->fields_len, name);
}

const char *tp__h2_stream_fields(const tp__h2_stream *st, size_t *len)
{
    *len = st->fields_len;
    return st->fields;
}

size_t tp__h2_stream_buffered(const tp__h2_stream *st)
{
    return st->body_len;
}

void tp__h2_stream_read(tp__h2 *h, tp__h2_stream *st, void *buf, size_t cap, size_t *got)
{
    size_t n = st->body_len < cap ? st->body_len : cap;
    if (n > 0) {
        memcpy(buf, st->body + st->body_off, n);
        st->body_off += n;
        st->body_len -= n;
        if (st->body_len == 0)
            st->body_off = 0;
        /* The window opens by what was read (a closed stream: the connection's only). */
        if (!h->dead)
            (void)nghttp2_session_consume(h->ng, st->id, n);
    }
    *got = n;
}

int32_t tp__h2_stream_id(const tp__h2_stream *st)
{
    return st->id;
}

void tp__h2_stream_free(tp__h2 *h, tp__h2_stream *st)
{
    if (st == NULL)
        return;
    /* Unread bytes go back to the connection's window: nobody will read them. */
    if (st->body_len > 0 && !h->dead)
        (void)nghttp2_session_consume(h->ng, st->id, st->body_len);
    st->body_len = 0;
    if (st->done || h->dead || nghttp2_session_find_stream(h->ng, st->id) == NULL) {
        if (!h->dead)
            nghttp2_session_set_stream_user_data(h->ng, st->id, NULL);
        if (!st->done)
            h->open--;
        tp__list_remove(&st->link);
        tp__h2_stream_release(st);
        return;
    }
    /* Open still: reset it, and keep the record until nghttp2 closes the stream. */
    (void)nghttp2_submit_rst_stream(h->ng, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_CANCEL);
    st->abandoned = true;
    stream_over(st, TP_ECANCELED, NULL);
}
