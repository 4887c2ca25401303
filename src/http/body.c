/* body.c: a response body's way from the parser to the caller, shared by the blocking
 * call and the engine: the codings undone (decompress), then the size cap and the
 * buffer (read in full), the pending bytes of a streaming reader, or the engine's sink
 * with its pauses; while draining, bytes are only counted. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "client.h"

bool tp__http_offers_codings(const tp_http_client *c, const tp_http_request *req)
{
    if (!c->o.decompress)
        return false;
    for (size_t i = 0; i < req->nheaders; i++)
        if (req->header_names[i] != NULL &&
            strcasecmp(req->header_names[i], "Accept-Encoding") == 0)
            return false;
    return true;
}

/* Decoded (or plain) bytes reach the caller here. */
static int deliver(void *ud, const char *data, size_t len)
{
    tp_http_response *r = ud;
    r->info.body_bytes += len;
    if (r->sink != NULL) { /* streamed to the caller; kept only while it is paused */
        if (r->paused || r->body.len > r->body_pos)
            return tp__buf_append(&r->body, data, len) == TP_OK ? 0 : (r->body.oom = true, 1);
        int v = r->sink(r->sink_ud, data, len);
        if (v == TP_HTTP_PAUSE)
            r->paused = true;
        else if (v != 0)
            r->sink_stopped = true;
        return v == 0 || v == TP_HTTP_PAUSE ? 0 : 1;
    }
    if (!r->stream && r->body.len + len > r->max_body) {
        r->too_big = true;
        return 1;
    }
    return tp__buf_append(&r->body, data, len) == TP_OK ? 0 : (r->body.oom = true, 1);
}

/* At the first body byte: the decoder for the response's Content-Encoding, if it has
 * one and we offered codings. Several Content-Encoding fields are one list (RFC 9110
 * 5.3). false (decode_err says why) for a coding we did not offer or out of memory. */
static bool start_decoding(tp_http_response *r)
{
    r->decode_checked = true;
    if (!r->decode)
        return true;
    char list[512];
    size_t n = 0;
    for (size_t i = 0; i < r->parse.nhdrs; i++) {
        const tp__http_hdr *h = &r->parse.hdrs[i];
        if (h->name_len != 16 || strncasecmp(h->name, "Content-Encoding", 16) != 0)
            continue;
        if (n + h->value_len + 2 > sizeof list) {
            tp_errinfo_set(&r->decode_err, TP_EPROTO, 0, "Content-Encoding: longer than %zu bytes",
                           sizeof list);
            return false;
        }
        if (n > 0)
            list[n++] = ',';
        memcpy(list + n, h->value, h->value_len);
        n += h->value_len;
    }
    if (n == 0)
        return true;
    tp_http_client *c = r->client;
    /* A body read in full is bounded by max_body in deliver(), with its own message. */
    tp_err rc = tp__decoder_create(list, n, 0, c->o.max_decoded_ratio, &r->decoder, &r->decode_err);
    if (rc == TP_OK && r->decoder != NULL)
        r->info.content_encoding = tp__decoder_name(r->decoder);
    return rc == TP_OK;
}

int tp__http_on_body(void *ud, const char *data, size_t len)
{
    tp_http_response *r = ud;
    r->info.wire_body_bytes += len;
    if (r->draining) /* nobody reads it: not worth decoding */
        return r->info.wire_body_bytes > r->drain_limit ? 1 : 0;
    if (!r->decode_checked && !start_decoding(r))
        return 1;
    if (r->decoder == NULL)
        return deliver(r, data, len);
    /* A failure is kept by the decoder; tp__http_feed() fetches it with its message. */
    return tp__decoder_feed(r->decoder, data, len, deliver, r, NULL) == TP_OK ? 0 : 1;
}

/* Why the body stopped (the parser said TP_ECANCELED), as the caller should hear it. */
static tp_err stopped(tp_http_response *r, tp_err rc, tp_errinfo *err)
{
    if (r->too_big)
        return tp_errinfo_set(err, TP_ETOOBIG, 0, "response body exceeds max_body_bytes (%zu)",
                              r->max_body);
    if (r->body.oom) /* deliver() could not keep it */
        return tp_errinfo_set(err, TP_ENOMEM, 0, "out of memory for the response body");
    if (r->decode_checked && r->decoder == NULL && r->decode_err.code != TP_OK) {
        if (err != NULL)
            *err = r->decode_err;
        return r->decode_err.code;
    }
    if (r->decoder != NULL && !r->sink_stopped) {
        tp_err d = tp__decoder_finish(r->decoder, NULL, NULL, err); /* its sticky error */
        if (d != TP_OK && d != TP_ECANCELED)
            return d;
    }
    return rc;
}

/* The message is complete: every layer of the coding must have ended too (a truncated
 * gzip stream inside a well-framed body is still a broken body). */
static tp_err ended(tp_http_response *r, tp_errinfo *err)
{
    if (!r->parse.done || r->decoder == NULL || r->draining)
        return TP_OK;
    return tp__decoder_finish(r->decoder, NULL, NULL, err);
}

tp_err tp__http_feed(tp_http_response *r, tp_errinfo *err)
{
    tp__http_conn *hc = r->conn;
    size_t used = 0;
    tp_err rc = tp__http_resp_feed(&r->parse, hc->rbuf + hc->rpos, hc->rlen - hc->rpos, &used, err);
    hc->rpos += used;
    if (rc == TP_ECANCELED)
        return stopped(r, rc, err);
    return rc == TP_OK ? ended(r, err) : rc;
}

tp_err tp__http_eof(tp_http_response *r, tp_errinfo *err)
{
    tp_err rc = tp__http_resp_eof(&r->parse, err);
    return rc == TP_OK ? ended(r, err) : rc;
}

bool tp__http_sink_flush(tp_http_response *r)
{
    r->paused = false;
    while (r->body.len > r->body_pos) {
        size_t n = TP__MIN(r->body.len - r->body_pos, (size_t)TP__HTTP_RBUF);
        int v = r->sink(r->sink_ud, r->body.data + r->body_pos, n);
        if (v != 0 && v != TP_HTTP_PAUSE) {
            r->sink_stopped = true;
            return false;
        }
        r->body_pos += n;
        if (v == TP_HTTP_PAUSE) {
            r->paused = true;
            return false;
        }
    }
    tp__buf_reset(&r->body);
    r->body_pos = 0;
    return true;
}

void tp__http_body_free(tp_http_response *r)
{
    tp__decoder_destroy(r->decoder);
    r->decoder = NULL;
    r->info.content_encoding = NULL;
    tp__buf_free(&r->body);
}
