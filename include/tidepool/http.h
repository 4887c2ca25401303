/* tidepool/http.h: an HTTP/1.1 and HTTP/2 client whose connections come from tidepool
 * pools.
 *
 * HTTP/2 (http_version): over TLS the client offers "h2" and "http/1.1" by ALPN and
 * speaks what the server chose; the answer is remembered per destination, so a server
 * that chose HTTP/1.1 is not asked again. While a destination's protocol is unknown one
 * connection is dialed and the other requests wait for it. An HTTP/2 connection carries
 * up to min(the server's SETTINGS_MAX_CONCURRENT_STREAMS, max_streams_per_conn) requests
 * at once, each a lease of the client's second pool (tp_http_client_h2_pool()); another
 * connection to the destination opens only when every one is full and
 * http2_max_conns_per_host allows. A request the server did not process (above a
 * GOAWAY's last stream id, or refused with REFUSED_STREAM) is sent again on another
 * connection whatever its method. HTTP/2 serves the blocking call and the engine (whose
 * requests become streams of the same connections); proxies, Unix sockets, body
 * sources, on_body, Expect, redirects and decompression use HTTP/1.1 for now (with
 * TP_HTTP_VERSION_2 such a request is TP_EINVAL).
 *
 * HTTP/1.1: one pool keyed by scheme, host, port and TLS profile. Connections are
 * kept alive and reused (most recently used first); a connection idle past the pool's
 * check_after_idle is polled before reuse and closed if the server closed it or sent
 * anything unsolicited; the server's "Keep-Alive: timeout=N" lowers that destination's
 * idle timeout below N; a response body the caller did not read is drained (up to a
 * bound) when the response is freed, else the connection is closed. A request that
 * fails on a reused connection before any response byte arrives is retried once on a
 * fresh connection when that is safe: nothing was written, or the method is idempotent
 * and there is no body. Responses with malformed or ambiguous framing fail with
 * TP_EPROTO (or TP_ETOOBIG) and their connection is closed, never reused.
 *
 * The blocking call and the engine are one exchange: tp_http_client_do() runs the
 * request on a private engine on the calling thread (as curl's easy interface runs a
 * multi handle), so both have the same steps, errors, retries and trace events.
 *
 * Threads: the client is thread-safe; a tp_http_response belongs to one thread at a
 * time. */
#ifndef TIDEPOOL_HTTP_H
#define TIDEPOOL_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "errors.h"
#include "pool.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tp_http_client tp_http_client;
typedef struct tp_http_response tp_http_response;

/* ---- trace --------------------------------------------------------------------------- */

typedef enum tp_http_trace_type {
    TP_HTTP_TRACE_DNS_START = 0,
    TP_HTTP_TRACE_DNS_DONE = 1,     /* duration_ns; err */
    TP_HTTP_TRACE_CONNECT_START = 2,
    TP_HTTP_TRACE_CONNECT_DONE = 3, /* duration_ns; err */
    TP_HTTP_TRACE_TLS_START = 4,
    TP_HTTP_TRACE_TLS_DONE = 5,     /* duration_ns; err; tls_resumed */
    TP_HTTP_TRACE_GOT_CONN = 6,     /* reused, was_idle, idle_ns, waited_ns */
    TP_HTTP_TRACE_WROTE_REQUEST = 7,/* err */
    TP_HTTP_TRACE_FIRST_BYTE = 8,   /* duration_ns since the request was written */
    TP_HTTP_TRACE_RETRY = 9,        /* err: why the first attempt failed */
    TP_HTTP_TRACE_DONE = 10         /* err; status; duration_ns of the whole request */
} tp_http_trace_type;

typedef struct tp_http_trace_event {
    tp_http_trace_type type;
    const char *host; /* the destination, valid during the call */
    uint16_t port;
    bool tls;
    tp_err err;
    int status;
    bool reused, was_idle, tls_resumed;
    int64_t duration_ns, idle_ns, waited_ns;
    const char *protocol; /* GOT_CONN, DONE: "h2" or "http/1.1" (static) */
} tp_http_trace_event;

/* Called outside every lock, on the thread making the request. */
typedef void (*tp_http_trace_fn)(void *ud, const tp_http_trace_event *ev);

/* ---- client ------------------------------------------------------------------------- */

#define TP_HTTP_CLIENT_OPTIONS_VERSION 2

/* The HTTP versions a client speaks (tp_http_client_options.http_version). */
typedef enum tp_http_version {
    TP_HTTP_VERSION_AUTO = 0, /* https://: HTTP/2 when the server agrees by ALPN (h2 is
                                 offered first), else HTTP/1.1; http://: HTTP/1.1 */
    TP_HTTP_VERSION_1_1 = 1,  /* HTTP/1.1 only (ALPN offers nothing) */
    TP_HTTP_VERSION_2 = 2     /* HTTP/2 only: https:// by ALPN "h2" (a server that does
                                 not agree: TP_ETLS, its alert, or TP_EPROTO), http://
                                 with prior knowledge (h2c) */
} tp_http_version;

typedef struct tp_http_client_options {
    unsigned version;       /* TP_HTTP_CLIENT_OPTIONS_VERSION */
    tp_pool_options pool;   /* limits and timers of the pool (its connector is the
                               client's own and is ignored). Defaults as for
                               tp_pool_options_init(), except connect_timeout 10 s
                               bounds DNS + TCP connect only. */
    int64_t tls_handshake_timeout;   /* 10 s */
    int64_t response_header_timeout; /* from the request written to the end of the
                                        response header. 30 s */
    int64_t expect_continue_timeout; /* TP_HTTP_EXPECT_CONTINUE: the wait for the
                                        server's 100 before the body goes anyway. 1 s
                                        (as curl's and Go's) */
    int64_t request_timeout;         /* whole request (wait, connect, exchange, body read
                                        in full). TP_DURATION_INFINITE */
    int max_redirects;               /* follow up to this many redirects (301, 302,
                                        303, 307, 308 with Location): 303 (and a POST
                                        answered 301/302) becomes a GET without the
                                        body, 307/308 keep method and body;
                                        Authorization, Cookie and Proxy-Authorization
                                        are dropped once a hop leaves the first origin.
                                        More: TP_ELIMIT. Not for a body_source (it
                                        cannot be sent twice): its 3xx is the answer.
                                        0 (default): none, the 3xx is the response */
    size_t max_header_bytes;         /* status line + headers. 64 KiB */
    size_t max_body_bytes;           /* a body read in full (decoded, when
                                        decompress undid its coding). 64 MiB */
    bool decompress;                 /* ask for and undo compressed bodies: requests
                                        without an Accept-Encoding of the caller's
                                        carry "Accept-Encoding: gzip, deflate, br,
                                        zstd", and their responses' Content-Encoding
                                        (up to 4 layers) is decoded as the body
                                        arrives, in both paths and for streams. A
                                        caller's own Accept-Encoding gets the body as
                                        sent. Corrupt data or a coding we did not
                                        offer: TP_EPROTO. false */
    unsigned max_decoded_ratio;      /* decompression bomb bound: the most decoded
                                        bytes per encoded byte, checked once a body
                                        decoded past 1 MiB (TP_ETOOBIG). 0: 200;
                                        UINT_MAX: practically none */
    size_t drain_max_bytes;          /* unread body drained on free. 256 KiB */
    int64_t drain_timeout;           /* and time spent draining it. 100 ms */
    int tcp_keepalive_idle_s;        /* TCP keepalive on every connection: first probe
                                        after this much silence (0: off). 30 */
    int64_t tcp_user_timeout;        /* TCP_USER_TIMEOUT on every connection: data sent
                                        and unacknowledged this long kills it, so a peer
                                        that vanished while we were sending is found.
                                        0 (default): the smaller of
                                        response_header_timeout and request_timeout;
                                        TP_DURATION_INFINITE: the kernel's (~15 min) */
    int64_t happy_eyeballs_delay;    /* a connect attempt that has not succeeded after
                                        this long gets the next address (IPv6 and IPv4
                                        alternating) started beside it (RFC 8305). 0
                                        (default): 250 ms */
    const char *local_address;       /* an IP literal every connection is made from
                                        (the port chosen per destination at connect:
                                        IP_BIND_ADDRESS_NO_PORT); copied. NULL: the
                                        kernel's choice */
    const char *unix_socket;         /* every request goes over this Unix domain socket
                                        path whatever its URL's host (curl's
                                        --unix-socket); the path is part of every pool
                                        key (https:// runs TLS over it, checked against
                                        the URL's host). Copied; NULL: TCP */
    int64_t dns_cache_ttl;           /* a name's addresses are reused for this long by
                                        later opens (getaddrinfo() gives no TTL, so
                                        this is the bound). 0 (default): 30 s */
    int64_t dns_negative_ttl;        /* a name the resolver said does not exist is
                                        answered from the cache this long. 0
                                        (default): 1 s */
    size_t dns_cache_max_entries;    /* names kept (least recently used go). 0: 1024 */
    bool dns_cache_off;              /* every open looks its name up. false */
    const char *proxy;               /* every request goes through this HTTP proxy,
                                        "http://[user:password@]host[:port]" (port 1080
                                        when absent; userinfo percent-encoded, sent as
                                        Basic credentials): http:// requests in absolute
                                        form, https:// through a CONNECT tunnel. The
                                        proxy is part of every pool key. Copied; NULL:
                                        none (or the environment, below) */
    const char *no_proxy;            /* destinations reached directly: comma-separated
                                        names (covering their subdomains), IP literals,
                                        each with an optional :port; "*" for all.
                                        Copied; NULL: none (or $no_proxy, below) */
    bool proxy_from_env;             /* with proxy NULL: take http_proxy (lower case
                                        only, as curl), https_proxy / HTTPS_PROXY and
                                        no_proxy / NO_PROXY at create. false */
    const char *ca_file;             /* PEM CA bundle (copied); NULL: system default */
    const char *ca_dir;              /* CA directory (copied); NULL: none */
    const char *tls_client_cert;     /* mTLS: a client certificate (PEM; any chain after
                                        it), presented to every server that asks;
                                        loaded and checked at create. Copied; NULL: none */
    const char *tls_client_key;      /* its private key (PEM). Copied; NULL: in
                                        tls_client_cert */
    const char *tls_client_key_passphrase; /* for an encrypted key; used at create and
                                        not kept. NULL: none */
    bool tls_insecure_skip_verify;   /* no certificate or host name check. Insecure:
                                        tests only. false */
    const char *user_agent;          /* copied; NULL: "tidepool/<version>"; "" for none */
    tp_http_version http_version;    /* TP_HTTP_VERSION_AUTO */
    int32_t max_streams_per_conn;    /* HTTP/2: requests at once on one connection, at
                                        most (the server's SETTINGS may say fewer; 100
                                        is assumed until they come). 0: 100 */
    int http2_max_conns_per_host;    /* HTTP/2: connections to one destination, another
                                        opened only when every one is full. 0: 1 */
    int64_t http2_ping_idle;         /* HTTP/2 health: a connection silent this long gets
                                        a PING, with requests waiting on it, and before
                                        an idle one is reused (which waits for the
                                        answer). 0: 30 s; TP_DURATION_INFINITE: never */
    uint64_t http2_max_requests_per_conn; /* HTTP/2: a connection that has carried this
                                        many requests drains (our GOAWAY: no new
                                        streams, the open ones finish), the bound
                                        shortened by up to pool.lifetime_jitter; it
                                        drains alike at pool.max_lifetime (jittered),
                                        busy or not. 0: none */
    int64_t http2_ping_timeout;      /* a PING unanswered this long: the connection is
                                        dead (its requests fail, TP_ETIMEDOUT; the next
                                        ones go to a new connection). 0: 15 s */
    tp_http_trace_fn trace;
    void *trace_ud;
} tp_http_client_options;

/* tp_http_client_options_init: the defaults above. */
TP_EXTERN void tp_http_client_options_init(tp_http_client_options *o);

/* tp_http_client_create: validates o (TP_EINVAL naming the field) and creates the
 * client and its pool. Errors: TP_EINVAL, TP_ENOMEM, TP_ETLS (CA file unreadable),
 * TP_ESYS. On failure *out is NULL. */
TP_EXTERN tp_err tp_http_client_create(const tp_http_client_options *o, tp_http_client **out,
                                       tp_errinfo *err) TP_WARN_UNUSED;

/* tp_http_client_destroy: closes every connection and frees the client. Responses still
 * alive must be freed first. NULL is a no-op. */
TP_EXTERN void tp_http_client_destroy(tp_http_client *c);

/* tp_http_client_pool: the client's pool, for stats and maintenance (owned by the
 * client): its HTTP/1.1 connections. */
TP_EXTERN tp_pool *tp_http_client_pool(tp_http_client *c);

/* tp_http_client_h2_pool: the pool of its HTTP/2 connections (keys "https://host:port"
 * and, with TP_HTTP_VERSION_2, "http://host:port"; a lease is a stream), or NULL for a
 * client of TP_HTTP_VERSION_1_1. Owned by the client. */
TP_EXTERN tp_pool *tp_http_client_h2_pool(tp_http_client *c);

/* ---- requests ------------------------------------------------------------------------ */

/* Request flags. */
#define TP_HTTP_STREAM 0x1u     /* return after the response header (of the last hop, with
                                   max_redirects); read the body with
                                   tp_http_response_read() */
#define TP_HTTP_IDEMPOTENT 0x2u /* safe to retry although the method is not idempotent
                                   (the request carries an idempotency key) */
#define TP_HTTP_NO_RETRY 0x4u   /* never retry */
#define TP_HTTP_EXPECT_CONTINUE 0x8u /* a request with a body sends "Expect: 100-continue"
                                   and its header alone, then waits up to the client's
                                   expect_continue_timeout: a 100 from the server sends
                                   the body; a final answer first (401, 413, 417...) is
                                   the response, the body never sent (info.early, the
                                   connection closed); silence sends the body anyway */

/* TP_HTTP_PAUSE: returned by a body callback (below): nothing more for now. The engine
 * calls it again after tp_http_engine_resume() for that request. */
#define TP_HTTP_PAUSE 1

/* A request body produced as it is sent: writes up to cap bytes into buf and their
 * count into *len (0: the body is complete) and returns 0; or TP_HTTP_PAUSE (engine
 * only: no bytes yet, resume the request when there are); or a negative tp_err, which
 * ends the request with it. The blocking call runs it on its thread; the engine on its
 * loop thread, where it must not block. A request whose source was called once is
 * never retried (its bytes cannot be produced again). */
typedef int (*tp_http_body_source_fn)(void *ud, char *buf, size_t cap, size_t *len);

/* The engine's streamed response body: each decoded chunk as it arrives (valid during
 * the call). Return 0 to go on; TP_HTTP_PAUSE to stop reading (the socket's window
 * closes: the server is held back, memory stays flat) until tp_http_engine_resume();
 * anything else ends the request with TP_ECANCELED. The response handed to the done
 * callback then has an empty body. Loop thread. */
typedef int (*tp_http_body_sink_fn)(void *ud, const char *data, size_t len);

typedef struct tp_http_request {
    const char *method;  /* "GET", "POST", ... (NULL: GET) */
    const char *url;     /* absolute http:// or https:// URL */
    const char *const *header_names;  /* nheaders names and values; not Host, */
    const char *const *header_values; /* Content-Length, Transfer-Encoding or Connection */
    size_t nheaders;
    const void *body;    /* sent with Content-Length; may be NULL when body_len is 0 */
    size_t body_len;
    int64_t timeout;     /* whole request; TP_DURATION_DEFAULT: the client's */
    unsigned flags;
    tp_http_body_source_fn body_source; /* instead of body: produced while sending */
    void *body_source_ud;
    int64_t body_source_len; /* its length (Content-Length), or -1: unknown, sent
                                chunked (Transfer-Encoding: chunked) */
    tp_http_body_sink_fn on_body; /* engine only: stream the response body to it */
    void *on_body_ud;
} tp_http_request;

/* tp_http_client_do: sends the request and reads the response header and (unless
 * TP_HTTP_STREAM) the whole body, on a pooled connection. On success *out is the
 * response (free it with tp_http_response_free()); any status code is a success here.
 * Errors: TP_EINVAL (bad URL, method or header), the pool's acquire errors
 * (TP_ETIMEDOUT: no connection in time, TP_EBUSY, TP_EBREAKER, TP_ECLOSED), the
 * transport's (TP_ERESOLVE, TP_ECONNREFUSED, TP_EUNREACH, TP_EPORTS, TP_ENOFD,
 * TP_ECONNTIMEDOUT, TP_ETLS, TP_ECERT, TP_ETLSTIMEDOUT, TP_ECONNRESET, TP_EIO), the
 * response's (TP_EPROTO, TP_ETOOBIG, TP_EHDRTIMEDOUT), TP_EREQTIMEDOUT, TP_ENOMEM.
 * err says which address, which limit, which deadline. */
TP_EXTERN tp_err tp_http_client_do(tp_http_client *c, const tp_http_request *req,
                                   tp_http_response **out, tp_errinfo *err) TP_WARN_UNUSED;

/* tp_http_get: GET url, body read in full. */
TP_EXTERN tp_err tp_http_get(tp_http_client *c, const char *url, tp_http_response **out,
                             tp_errinfo *err) TP_WARN_UNUSED;

/* ---- responses ----------------------------------------------------------------------- */

TP_EXTERN int tp_http_response_status(const tp_http_response *r);

/* tp_http_response_header: the first value of the header called name (any case), or
 * NULL. Valid until the response is freed. */
TP_EXTERN const char *tp_http_response_header(const tp_http_response *r, const char *name);

/* tp_http_response_header_at: the i-th header (0-based) in arrival order; false when
 * i is out of range. */
TP_EXTERN bool tp_http_response_header_at(const tp_http_response *r, size_t i, const char **name,
                                          const char **value);

/* tp_http_response_body: the body read in full (not for TP_HTTP_STREAM); NUL-terminated
 * for convenience (the NUL is not counted in *len). Valid until the response is freed. */
TP_EXTERN const char *tp_http_response_body(const tp_http_response *r, size_t *len);

/* tp_http_response_read: reads up to cap bytes of a streamed body into buf; *got is 0
 * at the end of the body. Errors: TP_ECONNRESET, TP_EPROTO, TP_EREQTIMEDOUT, ... (the
 * connection is then closed when the response is freed). */
TP_EXTERN tp_err tp_http_response_read(tp_http_response *r, void *buf, size_t cap, size_t *got,
                                       tp_errinfo *err) TP_WARN_UNUSED;

typedef struct tp_http_response_info {
    bool reused;       /* served on a connection used before */
    bool retried;      /* the first attempt failed and this is the retry's response */
    bool keep_alive;   /* the connection may be reused (known once the body is read) */
    bool tls_resumed;  /* the TLS session was resumed (new connections only) */
    int redirects;     /* redirects followed to reach this response */
    bool early;        /* the server answered before the request body was all sent
                          (413, 401...): the rest was not sent, the connection closed */
    int http_minor;    /* 1 for HTTP/1.1, 0 for 1.0 (and for HTTP/2) */
    const char *protocol; /* "h2" or "http/1.1" (static) */
    int64_t content_length;   /* -1 if none (the encoded length when decoded) */
    uint64_t body_bytes;      /* read so far (decoded) */
    uint64_t wire_body_bytes; /* as they came from the server (encoded); equal to
                                 body_bytes when nothing was decoded */
    const char *content_encoding; /* the codings undone, as applied ("gzip", "br,
                                 gzip"), NULL if none; valid until the response is
                                 freed */
    int64_t waited_ns;        /* waiting for a connection */
    int64_t ttfb_ns;          /* request written -> first response byte */
    int64_t total_ns;         /* call start -> header (or body, when read in full) */
} tp_http_response_info;

TP_EXTERN void tp_http_response_get_info(const tp_http_response *r, tp_http_response_info *out);

/* tp_http_response_free: ends the response and returns its connection to the pool:
 * kept when the body was read (or is drained within drain_max_bytes and
 * drain_timeout) and the server allows keep-alive, else closed. NULL is a no-op. */
TP_EXTERN void tp_http_response_free(tp_http_response *r);

/* ---- the event engine -------------------------------------------------------------- */

/* An engine drives many requests from one thread with epoll: connects without blocking,
 * TLS, writes and parsing, all in its loop. Its connections come from the client's pool
 * (through the asynchronous acquire, with every limit, waiter queue, deadline and stale
 * check), so engines on several threads, and blocking calls (each on an engine of its
 * own), share one pool. Host names are looked up on the library's workers (the client's cache
 * first), so a slow resolver delays only the requests waiting for that name.
 *
 * Threads: tp_http_engine_submit() and tp_http_engine_cancel() may be called from any
 * thread; everything else only from the thread that runs the loop. Completion callbacks run
 * on the loop thread, inside tp_http_engine_poll()/run(). */
typedef struct tp_http_engine tp_http_engine;

/* The outcome of a submitted request, called exactly once: status TP_OK with the response
 * (body read in full; the connection already returned to the pool; the callee frees it
 * with tp_http_response_free()), or an error (resp NULL, err says why, valid only during
 * the call): the errors of tp_http_client_do(), or TP_ECANCELED. */
typedef void (*tp_http_done_fn)(void *ud, tp_err status, tp_http_response *resp,
                                const tp_errinfo *err);

/* tp_http_engine_create: an engine using client c (which must outlive it). Errors:
 * TP_ENOMEM, TP_ESYS (epoll or eventfd could not be created). */
TP_EXTERN tp_err tp_http_engine_create(tp_http_client *c, tp_http_engine **out, tp_errinfo *err)
    TP_WARN_UNUSED;

/* tp_http_engine_destroy: cancels every request still in the engine (their callbacks run
 * with TP_ECANCELED, on this thread) and frees it. NULL is a no-op. Loop thread only. */
TP_EXTERN void tp_http_engine_destroy(tp_http_engine *e);

/* tp_http_engine_submit: queues a request; everything in req is copied. TP_HTTP_STREAM is
 * not supported (TP_EINVAL). Errors are returned here, without a callback, when the
 * request is invalid (TP_EINVAL: URL, method, header) or memory is short; otherwise cb
 * runs later. *id (if not NULL) identifies it for tp_http_engine_cancel(). Any thread. */
TP_EXTERN tp_err tp_http_engine_submit(tp_http_engine *e, const tp_http_request *req,
                                       tp_http_done_fn cb, void *ud, uint64_t *id,
                                       tp_errinfo *err) TP_WARN_UNUSED;

/* tp_http_engine_cancel: asks for request id to end with TP_ECANCELED: a queued request
 * leaves the pool's queue; one in flight has its connection closed. TP_OK: the request
 * will end with TP_ECANCELED unless it completes first (its callback runs once either
 * way); TP_ESTATE: no such id was ever issued; TP_ENOMEM. Any thread. */
TP_EXTERN tp_err tp_http_engine_cancel(tp_http_engine *e, uint64_t id);

/* tp_http_engine_resume: a request whose body_source or on_body returned TP_HTTP_PAUSE
 * goes on (a request that is not paused is unaffected). Any thread. TP_EINVAL for an id
 * never issued; TP_ENOMEM. */
TP_EXTERN tp_err tp_http_engine_resume(tp_http_engine *e, uint64_t id);

/* tp_http_engine_fd: a descriptor that is readable when the engine has work; for callers
 * that integrate it into their own loop (then call tp_http_engine_poll(e, 0)). */
TP_EXTERN int tp_http_engine_fd(const tp_http_engine *e);

/* tp_http_engine_timeout: nanoseconds until the engine's next timer (a deadline) is due;
 * TP_DURATION_INFINITE if none. For callers with their own loop. */
TP_EXTERN int64_t tp_http_engine_timeout(tp_http_engine *e);

/* tp_http_engine_poll: one round of the loop: waits up to timeout (0: not at all;
 * TP_DURATION_INFINITE: until something happens) for events, then processes them, the
 * due timers and new submissions. Returns how many requests completed (>= 0). */
TP_EXTERN int tp_http_engine_poll(tp_http_engine *e, int64_t timeout);

/* tp_http_engine_run: rounds until no request is left in the engine. */
TP_EXTERN void tp_http_engine_run(tp_http_engine *e);

/* tp_http_engine_pending: requests submitted and not yet completed. Any thread. */
TP_EXTERN size_t tp_http_engine_pending(const tp_http_engine *e);

#ifdef __cplusplus
}
#endif
#endif
