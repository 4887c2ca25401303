/* client.h: the HTTP client's internal structures, shared by its files (never
 * installed): the client, one pooled HTTP connection, and one response. */
#ifndef TP_HTTP_CLIENT_H
#define TP_HTTP_CLIENT_H

#include <strings.h>

#include "base/base.h"
#include "base/fork.h"
#include "base/sync.h"
#include "net/net.h"
#include "decode.h"
#include "h2/h2.h"
#include "parse.h"

#define TP__HTTP_RBUF 16384 /* per-connection read buffer */
#define TP__HTTP_KEY_MAX 640 /* a pool key: "proxy:HOST:PORT " or "unix:PATH ", then the URL's */

/* A proxy (proxy.c): where to connect, and the credentials for it. */
typedef struct tp__http_proxy {
    bool set;
    char host[256]; /* without brackets */
    bool host_is_ipv6;
    uint16_t port;
    char name[300];  /* "host:port", for keys and messages */
    char auth[700];  /* "Basic <base64>", or "" without credentials */
} tp__http_proxy;

/* One CONNECT exchange on a connection to the proxy (proxy.c). */
typedef struct tp__http_tunnel {
    tp__buf req;
    size_t sent;
    char resp[4096]; /* the proxy's answer so far, NUL-terminated */
    size_t rlen;
    int status;
    char dest[640]; /* "host:port via proxy p:port", for messages */
} tp__http_tunnel;

/* The destinations whose TLS server chose HTTP/1.1 (or nothing) when offered h2 by ALPN
 * (h2_client.c): pool keys in an open-addressed set, at most TP__HTTP_MEMO_MAX of them
 * (past that, a new one is asked again at each first open: one handshake, not an error). */
#define TP__HTTP_MEMO_MAX 4096
typedef struct tp__http_memo {
    bool ready; /* mu and guard are set up */
    tp__mutex mu;
    tp__fork_guard guard;
    char **slots; /* NULL: empty */
    size_t cap;
    _Atomic size_t n; /* read without mu: 0 (the usual) skips the lock on every request */
} tp__http_memo;

struct tp_http_client {
    tp_http_client_options o; /* ca_file, ca_dir, user_agent, local_address and
                                 unix_socket point at copies below */
    char *ca_file, *ca_dir, *user_agent, *local_address, *unix_socket;
    char *client_cert, *client_key; /* mTLS files (the passphrase is never kept) */
    tp__dial_options dial; /* every connection's dial options (no callback) */
    tp__dns_cache *dns;    /* names looked up, for every thread; NULL: off (or a Unix socket) */
    tp__http_proxy proxy_http, proxy_https; /* per destination scheme; .set false: direct */
    char *no_proxy;        /* destinations reached directly; NULL: none */
    tp_pool *pool;
    /* NULL until the first https:// request needs it; set once, by compare-and-swap
       (no lock is held while OpenSSL loads the CA files) */
    _Atomic(tp__tls_ctx *) tls;
    int64_t acquire_timeout;     /* the pool's, read on every request */
    int64_t connect_timeout;
    /* the blocking calls' private engines not in use (blocking.c), a stack */
    tp__mutex engines_mu;
    tp__fork_guard engines_guard;
    tp_http_engine *idle_engines;
    /* HTTP/2 (h2_client.c, h2_request.c); h2_pool NULL for TP_HTTP_VERSION_1_1 */
    tp_pool *h2_pool;
    tp_connector h2_cn;
    tp__tls_ctx *tls_h2; /* ALPN "h2,http/1.1" (AUTO) or "h2" (TP_HTTP_VERSION_2) */
    tp__http_memo not_h2;
};

/* A pooled connection: the connector's connection object. */
typedef struct tp__http_conn {
    tp__stream s;
    uint64_t id;        /* unique in the process: tells a reused descriptor number apart */
    char host[256];
    uint16_t port;
    bool tls;
    bool tls_resumed;   /* this connection's handshake resumed a session */
    char rbuf[TP__HTTP_RBUF];
    size_t rpos, rlen;  /* unparsed bytes are rbuf[rpos, rlen) */
} tp__http_conn;

struct tp_http_response {
    tp_http_client *client;
    tp_conn *lease;          /* NULL once released */
    tp__http_conn *conn;
    tp__http_resp parse;
    tp__buf body;            /* full body, or pending decoded bytes when streaming */
    size_t body_pos;         /* streaming: bytes of body already handed out */
    bool stream;
    size_t max_body;
    bool too_big;            /* the body exceeded max_body */
    bool draining;           /* on free: body bytes are counted and dropped */
    uint64_t drain_limit;    /* stop draining past this many body bytes */
    bool got_byte;           /* a response byte arrived for this attempt */
    int64_t written_at;      /* when the request was written */
    bool decode;             /* the request offered our codings: undo the body's */
    bool decode_checked;     /* the first body byte came and decode was settled */
    tp__decoder *decoder;    /* the body's codings being undone, or NULL */
    tp_errinfo decode_err;   /* why the decoder could not be made */
    tp_http_body_sink_fn sink; /* engine: the caller's chunk callback (on_body), or NULL */
    void *sink_ud;
    bool paused;             /* sink said TP_HTTP_PAUSE: chunks wait in body (bounded by
                                one read: nothing is read while paused) */
    bool sink_stopped;       /* sink ended the request */
    bool source_started;     /* the request's body_source was called: no retry */
    bool early;              /* the server answered before the request was all sent: the
                                rest was not sent, the connection is not reused */
    tp_err err;              /* sticky error of the exchange */
    int64_t deadline;        /* the request's deadline */
    char key[TP__HTTP_KEY_MAX];
    size_t keylen;
    tp_http_response_info info;
    /* HTTP/2 (h2_request.c): the response came on a stream of the client's h2 pool (lease
       above); h2_st is its stream while the body is read (NULL once over); the fields are
       copied ("name\0value\0" pairs) so that they outlive it */
    bool h2;
    tp__h2_stream *h2_st;
    char *h2_fields;
    size_t h2_fields_len;
    void *h2_body; /* TP_HTTP_STREAM: the request body's copy, which the stream may still
                      be sending after the call returned */
};

/* ---- conn.c: the pool connector ------------------------------------------------------ */

/* tp__http_key: the pool key of a destination ("http://host:port", "https://[::1]:443",
 * "unix:/run/app.sock http://host:80" through a Unix socket), human-readable because
 * keys appear in stats and metrics. Returns its length, or 0 if it does not fit. */
size_t tp__http_key(const tp_http_client *c, const tp__http_url *u, char *out, size_t cap);

/* tp__http_conn_id: a new connection id (process-wide, never 0). */
uint64_t tp__http_conn_id(void);

/* tp__http_connector: the connector vtable for the client's pool (ctx = client). */
tp_connector tp__http_connector(tp_http_client *c);

/* tp__http_trace: the one builder of trace events: sets type and the destination (host,
 * port, tls) on *facts (err, status, durations, lease facts; the rest zero) and calls
 * the client's hook, which the caller has checked is set (TP__HTTP_TRACE does). */
void tp__http_trace(tp_http_client *c, tp_http_trace_type type, const char *host, uint16_t port,
                    bool tls, tp_http_trace_event *facts);

/* TP__HTTP_TRACE(c, type, dest, .field = value, ...): when c has a trace hook, an event of
 * type for dest (a request or a connection: anything with host, port and tls) with the
 * facts given. Without a hook nothing is made or computed. */
#define TP__HTTP_TRACE(c, type, dest, ...)                                                         \
    do {                                                                                           \
        tp_http_client *tc_ = (c);                                                                 \
        if (tc_->o.trace != NULL) {                                                                \
            tp_http_trace_event ev_ = {__VA_ARGS__};                                               \
            tp__http_trace(tc_, (type), (dest)->host, (dest)->port, (dest)->tls, &ev_);            \
        }                                                                                          \
    } while (0)

/* tp__http_tls_options: what every TLS context of the client is made from (no ALPN). */
tp__tls_options tp__http_tls_options(const tp_http_client *c, const char *key_passphrase);
/* tp__http_tls_ctx: the client's TLS context, created on first use (at create when a CA
 * or a client certificate is named: the context exists by then). */
tp_err tp__http_tls_ctx(tp_http_client *c, tp__tls_ctx **out, tp_errinfo *err);
/* tp__http_tls_ctx_make: the same, at create, with the client key's passphrase. */
tp_err tp__http_tls_ctx_make(tp_http_client *c, const char *key_passphrase, tp__tls_ctx **out,
                             tp_errinfo *err);

/* ---- proxy.c: the proxy's choice and the CONNECT tunnel ------------------------------ */

/* tp__http_proxy_parse: "http://[user:password@]host[:port][/]" (userinfo percent-
 * decoded; port 1080 when absent). TP_EINVAL says what is wrong. */
tp_err tp__http_proxy_parse(const char *url, tp__http_proxy *out, tp_errinfo *err);
/* tp__http_proxy_setup: the client's proxies and no_proxy from o (or the environment
 * with proxy_from_env). TP_EINVAL, TP_ENOMEM. At create. */
tp_err tp__http_proxy_setup(tp_http_client *c, const tp_http_client_options *o, tp_errinfo *err);
/* tp__http_proxy_for: the proxy a request to u goes through, NULL: direct. Any thread. */
const tp__http_proxy *tp__http_proxy_for(const tp_http_client *c, const tp__http_url *u);
/* tp__http_tunnel_begin: prepares "CONNECT host:port" to proxy p. TP_ENOMEM, TP_EINVAL. */
tp_err tp__http_tunnel_begin(tp__http_tunnel *t, const tp_http_client *c, const tp__http_proxy *p,
                             const char *host, uint16_t port, tp_errinfo *err);
/* tp__http_tunnel_step: the non-blocking step: writes the request, reads the answer.
 * TP_OK: the tunnel is open (2xx, and nothing after the answer); TP_PENDING with *want;
 * TP_EPROXY (the proxy refused: its status line in the message; 407 says credentials),
 * TP_EPROTO (not HTTP, too long, bytes after it), or the stream's error. */
tp_err tp__http_tunnel_step(tp__http_tunnel *t, tp__stream *s, int *want, tp_errinfo *err);
/* tp__http_tunnel_run: the same, blocking until deadline (TP_ETIMEDOUT). */
tp_err tp__http_tunnel_run(tp__http_tunnel *t, tp__stream *s, int64_t deadline, tp_errinfo *err);
void tp__http_tunnel_free(tp__http_tunnel *t);

/* ---- redirect.c: following redirects (both paths) --------------------------------- */

/* The request a redirect is followed with: owned copies (the caller's strings may go). */
typedef struct tp__http_hop {
    tp__http_url url;
    char *method;
    char **names, **values; /* the caller's headers, minus credentials once off-origin */
    size_t nheaders;
    const void *body; /* the caller's (blocking) or the engine's copy */
    size_t body_len;
    int redirects;    /* followed so far */
} tp__http_hop;

bool tp__http_is_redirect(int status);
/* tp__http_redirect_method / _keeps_body: RFC 9110 15.4 as browsers apply it: 303 is a
 * GET (a HEAD stays HEAD), 301 and 302 turn a POST into a GET, 307 and 308 keep both. */
const char *tp__http_redirect_method(int status, const char *method);
bool tp__http_redirect_keeps_body(int status, const char *method);
bool tp__http_same_origin(const tp__http_url *a, const tp__http_url *b);
bool tp__http_header_is_credential(const char *name);
/* tp__http_redirect_target: Location resolved against base (RFC 3986 5.2: absolute,
 * "//host/...", "/path", "?query", "relative/path", dot segments removed, fragment
 * dropped). TP_EPROTO: missing, not http(s), or not a valid URL. */
tp_err tp__http_redirect_target(const tp__http_url *base, const char *location, tp__http_url *out,
                                tp_errinfo *err);
/* tp__http_hop_init: copies req (URL parsed into hop->url) for later hops. TP_ENOMEM. */
tp_err tp__http_hop_init(tp__http_hop *hop, const tp_http_request *req, const char *method,
                         const tp__http_url *u, tp_errinfo *err);
/* tp__http_hop_next: the hop after response status/location: URL, method, body and
 * headers changed as the rules say. TP_ELIMIT past max (message names the last hop),
 * TP_EPROTO (bad Location), TP_ENOMEM. */
tp_err tp__http_hop_next(tp__http_hop *hop, int status, const char *location, int max,
                         tp_errinfo *err);
/* tp__http_hop_request: hop as a request for the next attempt (url points into buf). */
void tp__http_hop_request(const tp__http_hop *hop, const tp_http_request *orig, char *buf,
                          size_t cap, tp_http_request *out);
void tp__http_hop_free(tp__http_hop *hop);

/* ---- resp_api.c: the response, and a streamed body read on the caller's thread ---- */

/* tp__http_read_until: with poll(), reads and parses until the response header is complete
 * (want_body false) or the whole message (true; for a streaming reader: until decoded
 * body bytes are pending), the server closes, an error, or deadline (TP_ETIMEDOUT). */
tp_err tp__http_read_until(tp_http_response *r, bool want_body, int64_t deadline,
                           tp_errinfo *err);

/* ---- body.c: the response body, from the parser to the caller --------------------- */

/* tp__http_offers_codings: req goes out with our Accept-Encoding (decompress on, and the
 * caller named none of its own), so its response's codings are undone. */
bool tp__http_offers_codings(const tp_http_client *c, const tp_http_request *req);
/* The codings we offer (decode.c undoes them), as the Accept-Encoding header's value. */
#define TP__HTTP_ACCEPT_ENCODING "gzip, deflate, br, zstd"
/* tp__http_on_body: the parser's body sink (ud = the response): undoes the codings (from
 * the first body byte on, when r->decode), then buffers the body (stops past max_body),
 * keeps it for a streaming reader or hands it to the sink; counts and drops it while
 * draining. */
int tp__http_on_body(void *ud, const char *data, size_t len);
/* tp__http_feed: parses the buffered bytes of r->conn. A body that stopped says why
 * (TP_ETOOBIG: the cap; TP_EPROTO, TP_ETOOBIG: the decoder's; TP_ENOMEM); a complete
 * message whose coding did not end is TP_EPROTO. */
tp_err tp__http_feed(tp_http_response *r, tp_errinfo *err);
/* tp__http_eof: the server closed: completes a read-until-close body (and its coding),
 * else TP_ECONNRESET (tp__http_resp_eof). */
tp_err tp__http_eof(tp_http_response *r, tp_errinfo *err);
/* tp__http_sink_flush: a paused sink resumed: hands it what waited, until it pauses
 * again (true: all delivered). */
bool tp__http_sink_flush(tp_http_response *r);
/* tp__http_body_free: frees the body buffer and the decoder. */
void tp__http_body_free(tp_http_response *r);

/* ---- blocking.c: the blocking call on a private engine ------------------------------ */

/* tp__http_engines_free: destroys the client's idle private engines (at destroy). */
void tp__http_engines_free(tp_http_client *c);

/* ---- message.c: shared by the blocking call and the engine ---------------------- */

/* tp__http_build_head: the request line and headers of req (the caller's headers plus
 * User-Agent unless they set one) into out. */
tp_err tp__http_build_head(tp_http_client *c, const tp_http_request *req, const char *method,
                           const tp__http_url *u, tp__buf *out, tp_errinfo *err);
/* tp__http_got_bytes: got bytes were just read into r->conn->rbuf: records the first
 * response byte (time, trace). */
void tp__http_got_bytes(tp_http_response *r, size_t got);
/* tp__http_chunk_frame: the chunked framing of a body piece of n bytes: its size line
 * into head (cap >= 20), "\r\n" after the data; n 0 is the last chunk ("0\r\n\r\n"
 * as head). Returns the head's length. */
size_t tp__http_chunk_frame(size_t n, char *head, size_t cap);
/* tp__http_take_early: while the request is being written: parses what the server sent
 * so far, without blocking. true: a final response header is complete, an early answer
 * (413, 401...; RFC 9112 section 9.5): stop sending, read it, do not reuse the
 * connection (r->early). false: nothing final yet; read errors and end of stream are
 * left for the writes to report. */
bool tp__http_take_early(tp_http_response *r);
/* tp__http_expects_continue: req sends Expect: 100-continue (the flag, and a body). */
bool tp__http_expects_continue(const tp_http_request *req);
/* tp__http_continue_step: after an Expect: 100-continue header went out, the non-blocking
 * step of the wait: TP_OK when decided (a 100 came: send the body; or a final answer
 * came: r->early, read it); TP_PENDING: nothing yet; or the error (TP_ECONNRESET: closed
 * without an answer; TP_EPROTO...). */
tp_err tp__http_continue_step(tp_http_response *r, tp_errinfo *err);
/* tp__http_send_slice: how much of a body of len bytes to write from off on before
 * looking for an early answer (the slice's end is fixed, so a write the transport left
 * pending is retried with the same bytes, as TLS requires). */
size_t tp__http_send_slice(size_t off, size_t len);
/* tp__http_keepalive_hint: applies "Keep-Alive: timeout=N" to the destination's key. */
void tp__http_keepalive_hint(tp_http_response *r);
/* tp__http_retry_safe: may a request that failed on a reused connection before any
 * response byte be sent again (nothing written, or idempotent without a body)? */
bool tp__http_retry_safe(unsigned flags, const char *method, size_t body_len, size_t written);
/* tp__http_conn_died: errors that mean the connection died, not a slow or bad server. */
bool tp__http_conn_died(tp_err rc);
/* tp__http_release_flags: how a finished response's connection goes back to the pool:
 * 0 (keep), TP_RELEASE_DISCARD (the server closes it, or surplus bytes), or
 * TP_RELEASE_BROKEN (the exchange failed or did not finish); plus TP_RELEASE_DROPPED for
 * a 503 or 429 (capacity signals for an adaptive limit). */
unsigned tp__http_release_flags(const tp_http_response *r);

/* ---- h2_client.c, h2_request.c: requests over HTTP/2 ---------------------------- */

/* tp__http_h2_setup: the h2 pool, its connector and TLS context, per the options (none
 * for TP_HTTP_VERSION_1_1); at create, with the client key's passphrase.
 * tp__http_h2_teardown: their end (before the TLS context of HTTP/1.1 goes). */
tp_err tp__http_h2_setup(tp_http_client *c, const tp_http_client_options *o,
                         const char *key_passphrase, tp_errinfo *err);
void tp__http_h2_teardown(tp_http_client *c);

/* tp__http_h2_possible: whether a request to url may go over HTTP/2 at all (an h2 pool,
 * and https:// or TP_HTTP_VERSION_2): the cheap test before tp__http_h2_route, so that
 * the rest pay nothing for HTTP/2. */
static inline bool tp__http_h2_possible(const tp_http_client *c, const char *url)
{
    return c->h2_pool != NULL &&
           (c->o.http_version == TP_HTTP_VERSION_2 || strncasecmp(url, "https://", 8) == 0);
}
/* tp__http_h2_route: whether req (to u) goes over HTTP/2: true, false (HTTP/1.1), or
 * false with TP_EINVAL in *rc for a request TP_HTTP_VERSION_2 cannot serve (what it
 * needs is named). */
bool tp__http_h2_route(tp_http_client *c, const tp_http_request *req, const tp__http_url *u,
                       tp_err *rc, tp_errinfo *err);
/* tp__http_h2_not_h2: the destination of key is known to have chosen HTTP/1.1. */
bool tp__http_h2_not_h2(tp_http_client *c, const char *key, size_t keylen);

/* Sends of one request the server did not process, at most (blocking and engine alike).
 * Under a GOAWAY several of a connection's last requests meet it, and a retry may meet
 * the next connection's (nginx refuses the streams past its keepalive_requests): 64
 * threads through nginx's GOAWAYs needed a third send now and then. */
#define TP__HTTP_H2_MAX_ATTEMPTS 10

/* A request in HTTP/2's form, cut from the HTTP/1.1 head the client serialises for it
 * (tp__http_build_head: one code checks the method and fields and adds User-Agent and
 * Accept-Encoding, whichever the protocol): :method and :path from its request line,
 * :authority from Host, the fields lower-cased, those HTTP/2 carries otherwise or
 * forbids dropped. Its strings live in text. */
typedef struct tp__http_h2_req {
    tp__h2_request rq;
    char *text;
    tp__h2_header *fields;
} tp__http_h2_req;
/* tp__http_h2_req_make: q from head (body borrowed: it must outlive the stream).
 * TP_ENOMEM, TP_EINVAL. tp__http_h2_req_free: its memory (a zeroed q: nothing). */
tp_err tp__http_h2_req_make(const tp__buf *head, bool tls, const void *body, size_t body_len,
                            tp__http_h2_req *q, tp_errinfo *err);
void tp__http_h2_req_free(tp__http_h2_req *q);

/* tp__http_h2_do: tp_http_client_do() over HTTP/2. *fallback true (with an error): the
 * server turned out to speak HTTP/1.1 only (AUTO): the caller sends it that way. */
tp_err tp__http_h2_do(tp_http_client *c, const tp_http_request *req, const tp__http_url *u,
                      tp_http_response **out, bool *fallback, tp_errinfo *err);
/* The response's parts for an HTTP/2 response (resp_api.c asks when r->h2). */
const char *tp__http_h2_header(const tp_http_response *r, const char *name);
bool tp__http_h2_header_at(const tp_http_response *r, size_t i, const char **name,
                           const char **value);
tp_err tp__http_h2_read(tp_http_response *r, void *buf, size_t cap, size_t *got, tp_errinfo *err);
/* tp__http_h2_end: gives the stream and the lease back (a stream not over is reset). */
void tp__http_h2_end(tp_http_response *r);

#endif
