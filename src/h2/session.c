/* session.c: an HTTP/2 client session on one connection: nghttp2 set up for a pool
 * (manual windows, 100 streams assumed before SETTINGS, no push), the bytes moved between
 * it and the socket without blocking, and the connection's state: SETTINGS, GOAWAY,
 * PING, death. The streams' callbacks are in stream.c. */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "h2/h2_types.h"

#define DEFAULT_MAX_STREAMS 100
#define DEFAULT_STREAM_WINDOW (1 << 20)
#define DEFAULT_CONN_WINDOW (16 << 20)
#define DEFAULT_MAX_HEADER_LIST (64 << 10)
#define DEFAULT_PING_IDLE (30 * TP_NSEC_PER_SEC)    /* Go's ReadIdleTimeout, when set, is alike */
#define DEFAULT_PING_TIMEOUT (15 * TP_NSEC_PER_SEC) /* Go's PingTimeout */
#define READ_CHUNK (16 << 10)
/* What one write takes at most: the frames nghttp2 has queued, gathered (flush). */
#define OUT_BATCH (64 << 10)

/* The connection is dead: keeps the first reason, fails every stream still open. */
static tp_err die(tp__h2 *h, tp_err rc, const tp_errinfo *why)
{
    if (!h->dead) {
        h->dead = true;
        h->dead_rc = rc;
        if (why != NULL)
            h->dead_err = *why;
        else
            tp_errinfo_set(&h->dead_err, rc, 0, "HTTP/2 connection to %s failed", h->dest);
        tp__h2_fail_streams(h);
    }
    return h->dead_rc;
}

static tp_err die_ng(tp__h2 *h, int ngrc, const char *what)
{
    tp_errinfo e;
    tp_err rc = ngrc == NGHTTP2_ERR_NOMEM ? TP_ENOMEM : TP_EPROTO;
    tp_errinfo_set(&e, rc, ngrc, "HTTP/2 connection to %s: %s: %s", h->dest, what,
                   nghttp2_strerror(ngrc));
    return die(h, rc, &e);
}

static int on_frame_recv(nghttp2_session *ng, const nghttp2_frame *frame, void *ud)
{
    tp__h2 *h = ud;
    switch (frame->hd.type) {
    case NGHTTP2_SETTINGS:
        if (!(frame->hd.flags & NGHTTP2_FLAG_ACK))
            h->settings_seen = true;
        break;
    case NGHTTP2_PING:
        if ((frame->hd.flags & NGHTTP2_FLAG_ACK) && h->ping_sent_at != 0) {
            h->ping_rtt = tp_clock_now() - h->ping_sent_at;
            h->news_rtt = h->ping_rtt;
            h->ping_sent_at = 0;
        }
        break;
    case NGHTTP2_GOAWAY:
        h->goaway_recv = true;
        h->goaway_code = frame->goaway.error_code;
        h->goaway_last_id = frame->goaway.last_stream_id;
        h->news_goaways[TP__MIN(frame->goaway.error_code, (uint32_t)TP_GOAWAY_CODES - 1)]++;
        break;
    default:
        break;
    }
    if (frame->hd.stream_id != 0) {
        tp__h2_stream *st = nghttp2_session_get_stream_user_data(ng, frame->hd.stream_id);
        if (st != NULL)
            tp__h2_stream_frame(st, frame);
    }
    return 0;
}

/* "127.0.0.1:8443" or "[::1]:8443", for messages. */
static void peer_name(int fd, char *buf, size_t cap)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    char ip[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    if (getpeername(fd, (struct sockaddr *)&ss, &len) == 0) {
        if (ss.ss_family == AF_INET) {
            const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
            inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip);
            port = ntohs(a->sin_port);
        } else if (ss.ss_family == AF_INET6) {
            const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
            inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof ip);
            port = ntohs(a->sin6_port);
            snprintf(buf, cap, "[%s]:%u", ip, port);
            return;
        }
    }
    snprintf(buf, cap, "%s:%u", ip, port);
}

/* nghttp2's account of an error it met (a bad frame, a flood), for the message. */
static int on_error(nghttp2_session *ng, int code, const char *msg, size_t len, void *ud)
{
    (void)ng, (void)code;
    tp__h2 *h = ud;
    snprintf(h->why, sizeof h->why, "%.*s", (int)len, msg);
    return 0;
}

/* A GOAWAY nghttp2 sends itself carries the peer's protocol error: the connection ends. */
static int on_frame_send(nghttp2_session *ng, const nghttp2_frame *frame, void *ud)
{
    (void)ng;
    tp__h2 *h = ud;
    if (frame->hd.type == NGHTTP2_GOAWAY && frame->goaway.error_code != NGHTTP2_NO_ERROR)
        h->local_goaway = frame->goaway.error_code;
    return 0;
}

static tp_err options_check(const tp__h2_options *in, tp__h2_options *o, tp_errinfo *err)
{
    static const tp__h2_options none = {0};
    *o = in != NULL ? *in : none;
    if (o->max_streams < 0 || o->stream_window < 0 || o->conn_window < 0)
        return tp_errinfo_set(err, TP_EINVAL, 0,
                              "HTTP/2: max_streams, stream_window and conn_window must not be "
                              "negative");
    if (o->max_streams == 0)
        o->max_streams = DEFAULT_MAX_STREAMS;
    if (o->stream_window == 0)
        o->stream_window = DEFAULT_STREAM_WINDOW;
    if (o->conn_window == 0)
        o->conn_window = DEFAULT_CONN_WINDOW;
    if (o->max_header_list == 0)
        o->max_header_list = DEFAULT_MAX_HEADER_LIST;
    if (o->conn_window < o->stream_window)
        return tp_errinfo_set(err, TP_EINVAL, 0,
                              "HTTP/2: conn_window (%d) below stream_window (%d)", o->conn_window,
                              o->stream_window);
    if (o->max_header_list > UINT32_MAX)
        return tp_errinfo_set(err, TP_EINVAL, 0, "HTTP/2: max_header_list over 4 GiB");
    if (o->ping_idle < 0 || o->ping_timeout < 0)
        return tp_errinfo_set(err, TP_EINVAL, 0,
                              "HTTP/2: ping_idle and ping_timeout must not "
                              "be negative");
    if (o->ping_idle == 0)
        o->ping_idle = DEFAULT_PING_IDLE;
    if (o->ping_timeout == 0)
        o->ping_timeout = DEFAULT_PING_TIMEOUT;
    return TP_OK;
}

static tp_err make_session(tp__h2 *h, tp_errinfo *err)
{
    nghttp2_session_callbacks *cb = NULL;
    nghttp2_option *opt = NULL;
    int rv = nghttp2_session_callbacks_new(&cb);
    if (rv == 0)
        rv = nghttp2_option_new(&opt);
    if (rv != 0) {
        nghttp2_session_callbacks_del(cb);
        return tp_errinfo_set(err, TP_ENOMEM, rv, "HTTP/2: %s", nghttp2_strerror(rv));
    }
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cb, tp__h2_on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cb, tp__h2_on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, tp__h2_on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, tp__h2_on_stream_close);
    nghttp2_session_callbacks_set_on_frame_send_callback(cb, on_frame_send);
    nghttp2_session_callbacks_set_error_callback2(cb, on_error);
    /* Windows open as the application reads (tp__h2_stream_read), not as bytes arrive:
     * a slow reader holds back its own stream, never the connection's memory. */
    nghttp2_option_set_no_auto_window_update(opt, 1);
    nghttp2_option_set_peer_max_concurrent_streams(opt, TP__H2_ASSUMED_STREAMS);
    rv = nghttp2_session_client_new2(&h->ng, cb, h, opt);
    nghttp2_session_callbacks_del(cb);
    nghttp2_option_del(opt);
    if (rv != 0)
        return tp_errinfo_set(err, TP_ENOMEM, rv, "HTTP/2: %s", nghttp2_strerror(rv));
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, (uint32_t)h->o.stream_window},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, (uint32_t)h->o.max_header_list},
    };
    rv = nghttp2_submit_settings(h->ng, NGHTTP2_FLAG_NONE, iv, sizeof iv / sizeof iv[0]);
    if (rv == 0)
        rv = nghttp2_session_set_local_window_size(h->ng, NGHTTP2_FLAG_NONE, 0, h->o.conn_window);
    if (rv != 0)
        return tp_errinfo_set(err, rv == NGHTTP2_ERR_NOMEM ? TP_ENOMEM : TP_EINVAL, rv,
                              "HTTP/2: our SETTINGS: %s", nghttp2_strerror(rv));
    return TP_OK;
}

tp_err tp__h2_new(tp__stream *s, const tp__h2_options *o, tp__h2 **out, tp_errinfo *err)
{
    *out = NULL;
    tp__h2_options opts;
    tp_err rc = options_check(o, &opts, err);
    tp__h2 *h = rc == TP_OK ? tp__calloc(1, sizeof *h) : NULL;
    if (rc == TP_OK && h == NULL)
        rc = tp_errinfo_set(err, TP_ENOMEM, 0, "HTTP/2: allocating a session");
    if (rc != TP_OK) {
        tp__stream_close(s);
        return rc;
    }
    h->s = *s;
    tp__stream_read_ahead(&h->s); /* every step reads until the socket is empty */
    h->o = opts;
    h->goaway_code = -1;
    h->local_goaway = -1;
    h->ping_rtt = -1;
    h->news_rtt = -1;
    h->last_recv = tp_clock_now();
    tp__list_init(&h->streams);
    peer_name(s->fd, h->dest, sizeof h->dest);
    rc = make_session(h, err);
    if (rc != TP_OK) {
        tp__h2_free(h);
        return rc;
    }
    *out = h;
    return TP_OK;
}

/* What nghttp2 has to send, gathered into h->out (at most about OUT_BATCH bytes): it
 * hands out one frame per call, and a write (a TLS record, a send) per frame would cost
 * a syscall per request. Copied: nghttp2's buffer is only good until its next call, and
 * a TLS write that must wait is retried with the same bytes. */
static tp_err gather(tp__h2 *h)
{
    h->out_off = h->out_len = 0;
    while (h->out_len < OUT_BATCH) {
        const uint8_t *data;
        ssize_t n = nghttp2_session_mem_send(h->ng, &data);
        if (n < 0)
            return die_ng(h, (int)n, "sending");
        if (n == 0)
            break;
        if (h->out_len + (size_t)n > h->out_cap) {
            size_t cap = TP__MAX(h->out_len + (size_t)n, 2 * h->out_cap);
            unsigned char *b = tp__realloc(h->out, cap);
            if (b == NULL) {
                tp_errinfo e;
                tp_errinfo_set(&e, TP_ENOMEM, 0, "HTTP/2: out of memory for output");
                return die(h, TP_ENOMEM, &e);
            }
            h->out = b;
            h->out_cap = cap;
        }
        memcpy(h->out + h->out_len, data, (size_t)n);
        h->out_len += (size_t)n;
    }
    return TP_OK;
}

/* Sends what waits, as far as the socket takes it. */
static tp_err flush(tp__h2 *h, int *want, tp_errinfo *err)
{
    for (;;) {
        if (h->out_off == h->out_len) {
            tp_err rc = gather(h);
            if (rc != TP_OK)
                return rc;
            if (h->out_len == 0)
                return TP_OK;
        }
        size_t put = 0;
        int w = 0;
        tp_errinfo e;
        tp_err rc = tp__stream_write_step(&h->s, h->out + h->out_off, h->out_len - h->out_off, &put,
                                          &w, &e);
        h->out_off += put;
        if (rc == TP_PENDING) {
            *want |= w;
            return TP_OK;
        }
        if (rc != TP_OK) {
            if (err != NULL)
                *err = e;
            return die(h, rc, &e);
        }
    }
}

/* The peer broke the protocol and nghttp2 answered with a GOAWAY of its own: once that
 * is out (best effort), the connection is dead with TP_EPROTO. True if so. */
static bool ended_by_error(tp__h2 *h)
{
    if (h->dead)
        return true;
    if (h->local_goaway < 0) {
        if (!nghttp2_session_want_write(h->ng) || nghttp2_session_want_read(h->ng))
            return false;
        int want = 0; /* the GOAWAY is queued: send it, which tells its code */
        if (flush(h, &want, NULL) != TP_OK || h->local_goaway < 0)
            return h->dead;
    }
    tp_errinfo e;
    tp_errinfo_set(&e, TP_EPROTO, (int)h->local_goaway,
                   "HTTP/2 connection to %s: it broke the protocol (%s%s%s)", h->dest,
                   nghttp2_http2_strerror((uint32_t)h->local_goaway), h->why[0] ? ": " : "",
                   h->why);
    die(h, TP_EPROTO, &e);
    return true;
}

/* Health, at every step: a PING unanswered past ping_timeout means the peer is gone
 * (nothing else would tell: a blocked write or a silent half-open peer); streams waiting
 * on a connection that has said nothing for ping_idle get a PING to find out. */
static void health(tp__h2 *h)
{
    int64_t now = tp_clock_now();
    if (h->ping_sent_at != 0 && now - h->ping_sent_at > h->o.ping_timeout) {
        tp_errinfo e;
        tp_errinfo_set(&e, TP_ETIMEDOUT, 0,
                       "HTTP/2 connection to %s: no answer to a PING within %.0f ms: the "
                       "peer is gone",
                       h->dest, (double)h->o.ping_timeout / 1e6);
        die(h, TP_ETIMEDOUT, &e);
        return;
    }
    if (h->ping_sent_at == 0 && h->open > 0 && h->o.ping_idle != TP_DURATION_INFINITE &&
        now - h->last_recv >= h->o.ping_idle)
        (void)tp__h2_ping(h, NULL);
}

int64_t tp__h2_health_due(const tp__h2 *h)
{
    if (h->dead)
        return TP_DURATION_INFINITE;
    if (h->ping_sent_at != 0) { /* health() acts once strictly past the timeout */
        int64_t t = tp__saturating_add(h->ping_sent_at, h->o.ping_timeout);
        return t == TP_DURATION_INFINITE ? t : t + 1;
    }
    if (h->open > 0 && h->o.ping_idle != TP_DURATION_INFINITE)
        return tp__saturating_add(h->last_recv, h->o.ping_idle);
    return TP_DURATION_INFINITE;
}

bool tp__h2_news(tp__h2 *h, uint64_t goaways[TP_GOAWAY_CODES], int64_t *rtt)
{
    bool any = false;
    for (int i = 0; i < TP_GOAWAY_CODES; i++) {
        if (h->news_goaways[i] == 0)
            continue;
        goaways[i] += h->news_goaways[i];
        h->news_goaways[i] = 0;
        any = true;
    }
    *rtt = h->news_rtt;
    h->news_rtt = -1;
    return any || *rtt >= 0;
}

int64_t tp__h2_idle_ns(const tp__h2 *h)
{
    return tp_clock_now() - h->last_recv;
}

int64_t tp__h2_ping_idle(const tp__h2 *h)
{
    return h->o.ping_idle;
}

int64_t tp__h2_ping_timeout(const tp__h2 *h)
{
    return h->o.ping_timeout;
}

tp_err tp__h2_step(tp__h2 *h, int *want, tp_errinfo *err)
{
    *want = 0;
    if (!h->dead)
        health(h);
    if (h->dead) {
        if (err != NULL)
            *err = h->dead_err;
        return h->dead_rc;
    }
    unsigned char buf[READ_CHUNK];
    for (;;) {
        tp_err rc = flush(h, want, err);
        if (rc != TP_OK)
            break;
        size_t got = 0;
        int w = 0;
        tp_errinfo e;
        rc = tp__stream_read_step(&h->s, buf, sizeof buf, &got, &w, &e);
        if (rc == TP_PENDING) {
            *want |= w | TP__WANT_READ;
            /* What reading made nghttp2 queue (WINDOW_UPDATE, SETTINGS ACK) goes now. */
            rc = flush(h, want, err);
            if (rc != TP_OK || !ended_by_error(h))
                return rc;
            break;
        }
        if (rc == TP_OK && got == 0) {
            tp_errinfo_set(&e, TP_ECONNRESET, 0, "HTTP/2: %s closed the connection%s", h->dest,
                           h->goaway_recv ? " after its GOAWAY" : "");
            rc = TP_ECONNRESET;
        }
        if (rc != TP_OK) {
            die(h, rc, &e);
            break;
        }
        h->last_recv = tp_clock_now();
        ssize_t n = nghttp2_session_mem_recv(h->ng, buf, got);
        if (n < 0) {
            die_ng(h, (int)n, "a frame from the server");
            break;
        }
        if (ended_by_error(h))
            break;
    }
    if (err != NULL)
        *err = h->dead_err;
    return h->dead_rc;
}

tp_err tp__h2_wait(tp__h2 *h, tp__h2_stream *st, int64_t deadline, tp_errinfo *err)
{
    for (;;) {
        int want = 0;
        tp_err rc = tp__h2_step(h, &want, err);
        if (st != NULL && st->done)
            return TP_OK; /* over, whichever way: tp__h2_stream_result() says */
        /* Everything sent: done, even if the peer closed after reading it (a server
         * closes once it has our GOAWAY and no stream is left). */
        if (st == NULL && h->out_off == h->out_len && !nghttp2_session_want_write(h->ng) &&
            (rc == TP_OK || h->goaway_sent))
            return TP_OK;
        if (rc != TP_OK)
            return rc;
        rc = tp__net_wait(h->s.fd, want, deadline, "HTTP/2 with", h->dest, err);
        if (rc != TP_OK)
            return rc;
    }
}

int tp__h2_fd(const tp__h2 *h)
{
    return h->s.fd;
}

bool tp__h2_draining(const tp__h2 *h)
{
    return h->goaway_recv || h->goaway_sent;
}

int32_t tp__h2_capacity(const tp__h2 *h)
{
    if (h->dead || tp__h2_draining(h) || !nghttp2_session_check_request_allowed(h->ng))
        return 0;
    uint32_t peer =
        nghttp2_session_get_remote_settings(h->ng, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
    return peer < (uint32_t)h->o.max_streams ? (int32_t)peer : h->o.max_streams;
}

int32_t tp__h2_open_streams(const tp__h2 *h)
{
    return h->open;
}

bool tp__h2_settings_seen(const tp__h2 *h)
{
    return h->settings_seen;
}

int64_t tp__h2_goaway_code(const tp__h2 *h)
{
    return h->goaway_code;
}

tp_err tp__h2_ping(tp__h2 *h, tp_errinfo *err)
{
    if (h->dead)
        return tp_errinfo_set(err, TP_ESTATE, 0, "HTTP/2: the connection is dead");
    if (h->ping_sent_at != 0)
        return tp_errinfo_set(err, TP_EBUSY, 0, "HTTP/2: a PING is in flight already");
    int rv = nghttp2_submit_ping(h->ng, NGHTTP2_FLAG_NONE, NULL);
    if (rv != 0)
        return tp_errinfo_set(err, TP_ENOMEM, rv, "HTTP/2: PING: %s", nghttp2_strerror(rv));
    h->ping_sent_at = tp_clock_now();
    return TP_OK;
}

int64_t tp__h2_ping_rtt(const tp__h2 *h)
{
    return h->ping_rtt;
}

bool tp__h2_ping_pending(const tp__h2 *h)
{
    return h->ping_sent_at != 0;
}

tp_err tp__h2_goaway(tp__h2 *h, tp_errinfo *err)
{
    if (h->dead)
        return tp_errinfo_set(err, TP_ESTATE, 0, "HTTP/2: the connection is dead");
    if (h->goaway_sent)
        return TP_OK;
    int rv = nghttp2_submit_goaway(h->ng, NGHTTP2_FLAG_NONE,
                                   nghttp2_session_get_last_proc_stream_id(h->ng), NGHTTP2_NO_ERROR,
                                   NULL, 0);
    if (rv != 0)
        return tp_errinfo_set(err, TP_ENOMEM, rv, "HTTP/2: GOAWAY: %s", nghttp2_strerror(rv));
    h->goaway_sent = true;
    return TP_OK;
}

void tp__h2_free(tp__h2 *h)
{
    if (h == NULL)
        return;
    if (h->ng != NULL && !h->dead) {
        /* A parting GOAWAY if the socket takes it now; nothing is waited for. */
        int want = 0;
        (void)tp__h2_goaway(h, NULL);
        (void)flush(h, &want, NULL);
    }
    while (!tp__list_empty(&h->streams)) {
        tp__h2_stream *st = TP__CONTAINER_OF(h->streams.next, tp__h2_stream, link);
        tp__list_remove(&st->link);
        tp__h2_stream_release(st);
    }
    nghttp2_session_del(h->ng);
    tp__stream_close(&h->s);
    tp__free(h->out);
    tp__free(h);
}
