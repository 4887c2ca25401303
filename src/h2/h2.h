/* h2.h: an HTTP/2 client session on one connection (nghttp2), what session.c and
 * stream.c define (internal, never installed). The pool's multiplexed connections and
 * the HTTP client build on it; this layer knows nothing of either.
 *
 * One session owns one connected byte stream (tp__stream: TLS that agreed "h2" by ALPN,
 * or cleartext with prior knowledge) and is used by one thread at a time. Like net.h,
 * the I/O comes in two shapes: tp__h2_step() does what can be done without blocking and
 * says what to wait for, tp__h2_wait() steps until a stream is over or a deadline.
 *
 * A request is a stream (tp__h2_stream), owned by the caller from tp__h2_submit() until
 * tp__h2_stream_free(). Its response arrives into the stream: status, headers, and body
 * bytes that wait there until read. The peer may send a stream only as much as its
 * window, which opens again as the caller reads (tp__h2_stream_read()), so an unread
 * body holds at most stream_window bytes and never stalls the other streams.
 *
 * What the pool needs to know: how many streams the connection may carry now
 * (tp__h2_capacity: min(the peer's SETTINGS_MAX_CONCURRENT_STREAMS, ours); 100 is
 * assumed until the peer's SETTINGS arrive), whether it takes new streams at all
 * (after a GOAWAY it does not: it drains), and whether a failed stream was never
 * processed by the server (above a GOAWAY's last stream id, or REFUSED_STREAM): such a
 * request may be sent again on another connection whatever its method. */
#ifndef TP_H2_H2_H
#define TP_H2_H2_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "net/net.h"
#include "tidepool/tidepool.h"

typedef struct tp__h2 tp__h2;
typedef struct tp__h2_stream tp__h2_stream;

typedef struct tp__h2_options {
    int32_t max_streams;    /* our own cap on concurrent streams; 0: 100 */
    int32_t stream_window;  /* each stream's receive window in bytes; 0: 1 MiB */
    int32_t conn_window;    /* the connection's receive window; 0: 16 MiB */
    size_t max_header_list; /* a response's header block at most (names and values, 32
                               bytes each more, as SETTINGS_MAX_HEADER_LIST_SIZE counts);
                               0: 64 KiB. Beyond: the stream is reset, TP_ETOOBIG */
    int64_t ping_idle;      /* health: with streams open and nothing read for this long,
                               a step sends a PING (ns); 0: 30 s; TP_DURATION_INFINITE:
                               never */
    int64_t ping_timeout;   /* a PING unanswered this long kills the connection
                               (TP_ETIMEDOUT, its streams fail with it); 0: 15 s */
} tp__h2_options;

#define TP__H2_ASSUMED_STREAMS 100 /* the peer's limit until its SETTINGS say */

/* ---- the session (session.c) ---------------------------------------------------- */

/* tp__h2_new: a client session on s (connected; its ownership passes to the session,
 * also on failure: closed then). Queues the connection preface and our SETTINGS; the
 * first step sends them. Errors: TP_EINVAL (bad options), TP_ENOMEM. */
tp_err tp__h2_new(tp__stream *s, const tp__h2_options *o, tp__h2 **out, tp_errinfo *err);

/* tp__h2_free: closes the connection (a GOAWAY first if it is still usable, without
 * waiting for anything) and frees the session. Every stream must have been freed. */
void tp__h2_free(tp__h2 *h);

/* tp__h2_step: reads what the socket has, runs it through the session (frames, stream
 * callbacks), writes what the session has to send, until the socket would block. TP_OK:
 * *want (TP__WANT_*) says what to wait for before the next step (always READ; WRITE too
 * while bytes wait to go out). Step again after reading a stream's body: the window it
 * opened is sent by the next step. Any other code: the connection is dead (the peer closed it, a
 * read or write failed, or the peer broke the protocol: TP_EPROTO), err says why; every stream
 * still open fails with it. */
tp_err tp__h2_step(tp__h2 *h, int *want, tp_errinfo *err);

/* tp__h2_wait: steps until stream st is over (its response complete, or the stream
 * failed), the connection dies, or the deadline passes (TP_ETIMEDOUT). st NULL: until
 * nothing is left to write (a PING or GOAWAY sent). Blocking. */
tp_err tp__h2_wait(tp__h2 *h, tp__h2_stream *st, int64_t deadline, tp_errinfo *err);

/* tp__h2_fd: the socket, for an event loop to watch. */
int tp__h2_fd(const tp__h2 *h);

/* tp__h2_capacity: how many streams the connection may carry at once now: min(the
 * peer's limit, ours); 0 once it drains (a GOAWAY either way) or is dead. */
int32_t tp__h2_capacity(const tp__h2 *h);
/* tp__h2_open_streams: streams submitted and not yet over. */
int32_t tp__h2_open_streams(const tp__h2 *h);
/* tp__h2_settings_seen: the peer's first SETTINGS arrived (capacity is its word). */
bool tp__h2_settings_seen(const tp__h2 *h);
/* tp__h2_draining: a GOAWAY was received or sent: no new streams. */
bool tp__h2_draining(const tp__h2 *h);
/* tp__h2_goaway_code: the error code of the peer's GOAWAY; -1 if none came. */
int64_t tp__h2_goaway_code(const tp__h2 *h);

/* tp__h2_idle_ns: how long since the peer last sent anything. tp__h2_ping_idle,
 * tp__h2_ping_timeout: the options in force (defaults applied). */
int64_t tp__h2_idle_ns(const tp__h2 *h);
int64_t tp__h2_ping_idle(const tp__h2 *h);
int64_t tp__h2_ping_timeout(const tp__h2 *h);

/* tp__h2_ping: queues a PING (the next step sends it). TP_EBUSY if one is in flight,
 * TP_ESTATE on a dead or closed session. tp__h2_ping_rtt: the last PING's round trip
 * in ns; -1 before any answer. tp__h2_ping_pending: one is in flight (unanswered). */
tp_err tp__h2_ping(tp__h2 *h, tp_errinfo *err);
int64_t tp__h2_ping_rtt(const tp__h2 *h);
bool tp__h2_ping_pending(const tp__h2 *h);

/* tp__h2_health_due: when a step next has health work (a PING to send after ping_idle
 * with streams open, or the end of ping_timeout for one in flight): a step at that
 * time does it. TP_DURATION_INFINITE when nothing is due (no stream open, no PING in
 * flight, ping_idle infinite, dead). */
int64_t tp__h2_health_due(const tp__h2 *h);

/* tp__h2_news: what the session learnt since the last call, for statistics: GOAWAYs
 * received by code slot (tp_stats.goaways: code, the last slot for any other) added
 * into goaways[TP_GOAWAY_CODES], and a PING's round trip in *rtt (-1 for none; pings
 * go one at a time and the caller asks after each step, so one is enough). True if
 * anything was new. */
bool tp__h2_news(tp__h2 *h, uint64_t goaways[TP_GOAWAY_CODES], int64_t *rtt);

/* tp__h2_goaway: our own close: a GOAWAY (NO_ERROR) naming the last stream we
 * processed is queued; streams open go on, no new ones start. */
tp_err tp__h2_goaway(tp__h2 *h, tp_errinfo *err);

/* ---- streams (stream.c) ----------------------------------------------------------- */

typedef struct tp__h2_header {
    const char *name; /* lower case, as HTTP/2 requires */
    const char *value;
} tp__h2_header;

typedef struct tp__h2_request {
    const char *method;           /* "GET" ... */
    const char *scheme;           /* "https" or "http" */
    const char *authority;        /* host[:port] */
    const char *path;             /* "/..." with the query */
    const tp__h2_header *headers; /* more fields (no pseudo-headers, no Connection) */
    size_t nheaders;
    const void *body; /* NULL for none; kept alive by the caller until the stream is over
                         or freed (a freed stream never reads it again) */
    size_t bodylen;
} tp__h2_request;

/* tp__h2_submit: starts a request as a new stream (sent by the next steps). TP_EAGAIN
 * when the connection is at capacity; TP_ESTATE when it takes no new streams (draining
 * or dead: the caller goes to another connection); TP_EINVAL (a field missing or not
 * allowed in HTTP/2); TP_ENOMEM. */
tp_err tp__h2_submit(tp__h2 *h, const tp__h2_request *rq, tp__h2_stream **out, tp_errinfo *err);

/* tp__h2_stream_done: the stream is over: the response is complete (every body byte
 * arrived, maybe not yet read) or the stream failed. */
bool tp__h2_stream_done(const tp__h2_stream *st);
/* tp__h2_stream_result: TP_OK for a complete response; else why the stream failed:
 * TP_ERESET (the peer reset it; err says the HTTP/2 error code, and
 * tp__h2_stream_unprocessed() whether the server saw it), TP_EPROTO (a malformed
 * response), TP_ETOOBIG (its header block over max_header_list), or the connection's
 * failure. TP_PENDING while
 * the stream is not over. */
tp_err tp__h2_stream_result(const tp__h2_stream *st, tp_errinfo *err);
/* tp__h2_stream_unprocessed: the server did not process the stream (it was above a
 * GOAWAY's last stream id, or refused with REFUSED_STREAM): safe to send again. */
bool tp__h2_stream_unprocessed(const tp__h2_stream *st);
/* tp__h2_stream_status: the response's :status; 0 before its header block arrived. */
int tp__h2_stream_status(const tp__h2_stream *st);
/* tp__h2_stream_header: the value of the response field name (any case), or NULL. */
const char *tp__h2_stream_header(const tp__h2_stream *st, const char *name);
/* tp__h2_fields_find / tp__h2_fields_at: in a copy of a stream's fields (below), the
 * value of name (any case) or NULL; the i-th field (0-based, in arrival order), false
 * when i is out of range. */
const char *tp__h2_fields_find(const char *fields, size_t len, const char *name);
bool tp__h2_fields_at(const char *fields, size_t len, size_t i, const char **name,
                      const char **value);
/* tp__h2_stream_buffered: body bytes arrived and not yet read. */
size_t tp__h2_stream_buffered(const tp__h2_stream *st);
/* tp__h2_stream_read: takes up to cap body bytes that arrived (*got; 0 when none are
 * buffered) and opens the peer's window by as much. */
void tp__h2_stream_read(tp__h2 *h, tp__h2_stream *st, void *buf, size_t cap, size_t *got);
/* tp__h2_stream_fields: the response's fields, "name\0value\0" pairs (*len bytes). */
const char *tp__h2_stream_fields(const tp__h2_stream *st, size_t *len);
/* tp__h2_stream_id: the HTTP/2 stream id (odd, from 1). */
int32_t tp__h2_stream_id(const tp__h2_stream *st);

/* tp__h2_stream_free: the caller is done with st. A stream not over is reset
 * (RST_STREAM CANCEL, sent by the next step) and forgotten. */
void tp__h2_stream_free(tp__h2 *h, tp__h2_stream *st);

/* ---- pooled connections (pooled.c) ------------------------------------------------ */

typedef struct tp__h2_connector_options {
    bool tls;                     /* bare "host:port" keys: TLS with ALPN "h2"; false:
                                     cleartext, prior knowledge */
    const char *ca_file;          /* TLS: the CA bundle (read at creation); NULL: the system's */
    bool insecure_skip_verify;    /* TLS: no peer verification (tests only) */
    tp__tls_ctx *tls_ctx;         /* TLS: a context of the caller's (borrowed: it outlives the
                                     connector; its ALPN offers "h2") instead of one made from
                                     ca_file and insecure_skip_verify */
    int64_t user_timeout;         /* TCP_USER_TIMEOUT (ns): a blocked write cannot hide a dead
                                     peer; 0: the kernel's. Ignored with dial */
    const tp__dial_options *dial; /* every dial's options (borrowed); NULL: user_timeout's */
    /* A connection that has carried max_requests streams drains at once (our GOAWAY: no
       new streams, the open ones finish, then the pool closes it), the bound shortened by
       up to jitter (a fraction, [0, 1)) at random per connection, so that connections
       opened together do not drain together. 0: no bound. (Age is the pool's: past
       max_lifetime a multiplexed connection takes no new lease and closes after its
       last; the pool's max_uses is counted at release, so streams started meanwhile
       overshoot it.) */
    uint64_t max_requests;
    double jitter;
    /* The caller's memory of which destinations speak HTTP/2 (both NULL: none). known_not_h2
       is asked before a dial: true fails the open at once (TP_EPROTO), so acquires queued
       behind a first open that found HTTP/1.1 do not each dial again. not_h2 is told when
       a TLS server chose another protocol by ALPN ("http/1.1", or "" for none); that open
       fails with TP_EPROTO. Both failures carry sys_errno ENOPROTOOPT, which tells them
       apart from a broken server even when the memory could not keep the key (no memory).
       Any thread, no lock of ours held. */
    bool (*known_not_h2)(void *ud, const char *key, size_t keylen);
    void (*not_h2)(void *ud, const char *key, size_t keylen, const char *alpn);
    void *ud;
    tp__h2_options h2; /* each session's */
} tp__h2_connector_options;

/* tp__h2_connector_new: a pool connector (for tp_pool_options.connector) whose keys are
 * "host:port", or with the scheme, "https://host:port" (TLS) and "http://host:port"
 * (cleartext, prior knowledge), and whose connections are HTTP/2 sessions, multiplexed:
 * streams() is the session's capacity, moved live as SETTINGS and GOAWAY change it (0
 * drains). Free it with tp__h2_connector_free() after the pool. Errors: TP_ENOMEM, the
 * TLS context's. */
tp_err tp__h2_connector_new(const tp__h2_connector_options *o, tp_connector *out, tp_errinfo *err);
void tp__h2_connector_free(tp_connector *c);

/* tp__h2_lease_request: sends rq as a stream on lease (a lease of a pool using that
 * connector) and waits until its response header arrived (or it is over) by deadline.
 * Any thread; several leases of one connection at once, each waiting only for its own
 * stream: whoever waits drives the connection, without holding a lock across the wait.
 * TP_OK with *out (free with tp__h2_lease_done()); an error from tp__h2_submit, the
 * stream's result, or TP_ETIMEDOUT (the stream is then reset). *unprocessed (if not
 * NULL) says whether a failed request is known not to have been processed by the server
 * (the connection drained before it was sent: TP_ESTATE; above a GOAWAY's last stream
 * id; REFUSED_STREAM): it may go out again on another connection, whatever its method. */
tp_err tp__h2_lease_request(tp_conn *lease, const tp__h2_request *rq, int64_t deadline,
                            tp__h2_stream **out, bool *unprocessed, tp_errinfo *err);
/* tp__h2_lease_read: body bytes of st (up to cap, *got), waiting for some by deadline.
 * TP_OK with *got 0: the body is over. Errors: the stream's failure, TP_ETIMEDOUT. */
tp_err tp__h2_lease_read(tp_conn *lease, tp__h2_stream *st, void *buf, size_t cap, size_t *got,
                         int64_t deadline, tp_errinfo *err);
/* The same for an event loop, none of them blocking; the loop watches the connection's
 * socket (tp__h2_lease_fd) for both directions, edge-triggered, and calls tp__h2_lease_step()
 * at each edge, then tp__h2_lease_take() for its streams on it, then steps again (the
 * windows their reads opened go out). Others may step the connection too (another
 * engine, a blocking waiter): every step serves every stream, so a stream may be found
 * over without our own step having read anything.
 * tp__h2_lease_submit: starts rq as a stream on lease and (send_now) sends what the
 * socket takes; TP_OK once submitted, whatever that first step found (the stream's
 * result says it). Without send_now the caller's next tp__h2_lease_step() sends it, so
 * that the streams a loop starts in one round go out in one write.
 * Its errors are tp__h2_submit's; *unprocessed as above. tp__h2_lease_step: one step (reads, runs, writes, capacity told
 * to the pool); an error: the connection is dead. tp__h2_lease_take: moves st's body
 * bytes that arrived into body (at most max in all: TP_ETOOBIG), says its status (0
 * before the header), whether it is over, and if so its result (*unprocessed: a failure
 * the server never processed). tp__h2_lease_health_due: when the connection next needs
 * a step for its health (tp__h2_health_due): a loop whose streams wait steps it then,
 * since no edge may come from a silent peer. */
tp_err tp__h2_lease_submit(tp_conn *lease, const tp__h2_request *rq, bool send_now,
                           tp__h2_stream **out, bool *unprocessed, tp_errinfo *err);
tp_err tp__h2_lease_step(tp_conn *lease, tp_errinfo *err);
int tp__h2_lease_fd(tp_conn *lease);
int64_t tp__h2_lease_health_due(tp_conn *lease);
tp_err tp__h2_lease_take(tp_conn *lease, tp__h2_stream *st, tp__buf *body, size_t max,
                         int *status, bool *done, bool *unprocessed, tp_errinfo *err);
/* tp__h2_lease_done: frees st (reset if still open). */
void tp__h2_lease_done(tp_conn *lease, tp__h2_stream *st);
/* tp__h2_lease_alive: the lease's connection still takes streams (release a dead one
 * with TP_RELEASE_BROKEN). */
bool tp__h2_lease_alive(tp_conn *lease);

#endif
