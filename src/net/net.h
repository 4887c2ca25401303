/* net.h: transports for connectors (internal, never installed): name resolution, TCP
 * connect with a deadline, TLS with OpenSSL, and a byte stream over either.
 *
 * Every operation comes in two shapes so that both the blocking HTTP client and an
 * event loop can use it: a blocking call bounded by a deadline (tp_clock_now() ns,
 * TP_DURATION_INFINITE for none), and a non-blocking step that returns TP_PENDING with
 * the events to wait for. System failures become distinct tp_err codes with the cause
 * in tp_errinfo (sys_errno set, message naming host:port):
 *   ECONNREFUSED -> TP_ECONNREFUSED, ENETUNREACH/EHOSTUNREACH -> TP_EUNREACH,
 *   getaddrinfo failure -> TP_ERESOLVE, EADDRNOTAVAIL -> TP_EPORTS ("ephemeral ports
 *   exhausted for this destination"), EMFILE/ENFILE -> TP_ENOFD ("out of file
 *   descriptors"), ECONNRESET/EPIPE/ECONNABORTED -> TP_ECONNRESET, ENETDOWN/EHOSTDOWN
 *   -> TP_EUNREACH, ENOMEM/ENOBUFS -> TP_ENOMEM, other -> TP_EIO (a kernel ETIMEDOUT,
 *   e.g. keepalive giving up, is TP_EIO too: TP_ETIMEDOUT always means our deadline).
 * Deadlines that pass return TP_ETIMEDOUT; callers map it to the timeout they enforce.
 * Nothing here keeps global state except OpenSSL's own initialisation. */
#ifndef TP_NET_NET_H
#define TP_NET_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <netdb.h>
#include <sys/socket.h>

#include "base/base.h"
#include "tidepool/tidepool.h"

/* Events a pending step waits for (poll(2) semantics). */
#define TP__WANT_READ 0x1
#define TP__WANT_WRITE 0x2

/* ---- errors ---------------------------------------------------------------------- */

/* tp__net_error: maps errno e from operation what ("connect", "read", ...) on dest
 * ("host:port", may be NULL) to a tp_err and fills err. */
tp_err tp__net_error(int e, const char *what, const char *dest, tp_errinfo *err);

/* tp__errno_text: the system's message for errno e, thread-safe (in buf, or static). */
const char *tp__errno_text(int e, char *buf, size_t cap);

/* tp__net_wait: polls fd for want (TP__WANT_*) until it is ready or the deadline passes.
 * TP_OK when ready (including POLLERR/POLLHUP: the next step reports the error);
 * TP_ETIMEDOUT ("<what> <dest>: timed out") when the deadline passed; restarts on EINTR.
 * For blocking wrappers around the non-blocking steps. */
tp_err tp__net_wait(int fd, int want, int64_t deadline, const char *what, const char *dest,
                    tp_errinfo *err);

/* ---- resolution ------------------------------------------------------------------ */

/* tp__is_ip_literal: host is an IPv4 or IPv6 address literal (no lookup needed). */
bool tp__is_ip_literal(const char *host);

/* tp__resolve: getaddrinfo(host, port) for TCP streams, IPv4 and IPv6 (AI_ADDRCONFIG
 * unless the host is a literal), in the resolver's order. On success *out must be freed
 * with freeaddrinfo(). Errors: TP_ERESOLVE (message has gai_strerror), TP_ENOMEM. */
tp_err tp__resolve(const char *host, uint16_t port, struct addrinfo **out, tp_errinfo *err);

/* tp__resolve_until: tp__resolve() bounded by a deadline. getaddrinfo() itself cannot be
 * interrupted, so a name lookup runs on a short-lived detached thread and is abandoned
 * (it finishes and frees itself in the background) when the deadline passes first:
 * TP_ETIMEDOUT. Literals and TP_DURATION_INFINITE resolve on the calling thread. */
tp_err tp__resolve_until(const char *host, uint16_t port, int64_t deadline, struct addrinfo **out,
                         tp_errinfo *err);

/* An address list as the dialer and the lookup cache hold it: copies, not getaddrinfo()'s
 * nodes, so a cached answer serves any number of dials. */
#define TP__ADDRS_MAX 16 /* addresses kept per name (the dialer tries as many) */
typedef struct tp__addr {
    union {
        struct sockaddr sa;
        struct sockaddr_in in;
        struct sockaddr_in6 in6;
    } u;
    socklen_t len;
} tp__addr;
typedef struct tp__addrs {
    int n;
    tp__addr a[TP__ADDRS_MAX];
} tp__addrs;
/* tp__addrs_from_ai: the first TP__ADDRS_MAX IPv4/IPv6 addresses of list, in its order. */
void tp__addrs_from_ai(const struct addrinfo *list, tp__addrs *out);

/* ---- the lookup cache (dns_cache.c): answers reused across opens ------------------- */

typedef struct tp__dns_cache tp__dns_cache;
typedef struct tp__dns_cache_options {
    int64_t ttl;          /* an answer is reused this long (getaddrinfo() gives no TTL) */
    int64_t negative_ttl; /* a TP_ERESOLVE answer (no such name) this long; 0: not kept */
    size_t max_entries;   /* beyond: the least recently used entry goes */
} tp__dns_cache_options;
typedef struct tp__dns_cache_stats {
    uint64_t hits, negative_hits, misses, evictions;
    size_t entries;
} tp__dns_cache_stats;

/* tp__dns_cache_create: TP_EINVAL (ttl or max_entries not positive), TP_ENOMEM. */
tp_err tp__dns_cache_create(const tp__dns_cache_options *o, tp__dns_cache **out, tp_errinfo *err);
void tp__dns_cache_destroy(tp__dns_cache *c);
/* tp__dns_cache_get: true when host:port has an entry fresh at now: *rc TP_OK with *out,
 * or the kept failure (TP_ERESOLVE, err says it was cached). false (also for c NULL):
 * look it up. Any thread. */
bool tp__dns_cache_get(tp__dns_cache *c, const char *host, uint16_t port, int64_t now,
                       tp__addrs *out, tp_err *rc, tp_errinfo *err);
/* tp__dns_cache_put: keeps a lookup's outcome from now: addresses (rc TP_OK) for ttl, a
 * TP_ERESOLVE failure (err's message) for negative_ttl; any other outcome (a timeout, no
 * memory) is not an answer and is not kept. No-op for c NULL. Any thread. */
void tp__dns_cache_put(tp__dns_cache *c, const char *host, uint16_t port, int64_t now, tp_err rc,
                       const tp__addrs *addrs, const tp_errinfo *err);
void tp__dns_cache_stats_get(tp__dns_cache *c, tp__dns_cache_stats *out);
/* tp__resolve_cached: host:port's addresses from c (NULL: no cache) or, on a miss,
 * tp__resolve_until() by deadline, kept in c. Literals skip the cache. *cached: the
 * answer came from c. Errors as tp__resolve_until(). Blocking. */
tp_err tp__resolve_cached(tp__dns_cache *c, const char *host, uint16_t port, int64_t deadline,
                          tp__addrs *out, bool *cached, tp_errinfo *err);

/* An event loop's lookup (resolve.c): getaddrinfo() on one of the library's workers, so
 * a slow name never stalls the loop; the outcome comes back through a callback. */
typedef struct tp__lookup tp__lookup;
/* done runs on the worker once the lookup is over (unless abandoned first): it must not
 * block (post l to the loop and wake it); the loop then calls tp__lookup_take(). */
typedef void (*tp__lookup_fn)(void *ud, tp__lookup *l);

/* tp__lookup_start: resolves host:port as tp__resolve() does, on a worker. TP_OK with
 * *out; TP_EINVAL, TP_ENOMEM, or TP_EBUSY / TP_ESYS when no worker takes it (the caller
 * may then resolve another way). */
tp_err tp__lookup_start(const char *host, uint16_t port, tp__lookup_fn done, void *ud,
                        tp__lookup **out, tp_errinfo *err);
/* tp__lookup_take: after done ran: the addresses (*out, freeaddrinfo() them) or the
 * error as tp__resolve() gives it; frees l. */
tp_err tp__lookup_take(tp__lookup *l, struct addrinfo **out, tp_errinfo *err);
/* tp__lookup_abandon: the caller no longer wants l. true: done will never run and l is
 * freed by the worker; false: done has run or is running, and l is still the caller's
 * to take once done's notice arrives. */
bool tp__lookup_abandon(tp__lookup *l);

/* ---- TCP ------------------------------------------------------------------------- */

/* tp__tcp_connect_start: creates a non-blocking, close-on-exec socket for addr, sets
 * TCP_NODELAY, and starts connect(). TP_OK: connected already; TP_PENDING: wait for
 * TP__WANT_WRITE then call tp__tcp_connect_finish(); else an error (socket closed). */
tp_err tp__tcp_connect_start(const struct sockaddr *addr, socklen_t addrlen, int *fd,
                             const char *dest, tp_errinfo *err);

/* tp__tcp_connect_finish: the outcome of a pending connect (SO_ERROR). On error the
 * caller closes fd. */
tp_err tp__tcp_connect_finish(int fd, const char *dest, tp_errinfo *err);

/* tp__tcp_connect: tp__dial_host() with the dialer's defaults (Happy Eyeballs over
 * every address, one deadline for all, no TCP options beyond TCP_NODELAY). */
tp_err tp__tcp_connect(const char *host, uint16_t port, int64_t deadline, int *fd,
                       int64_t *trace_dns_ns, int64_t *trace_connect_ns, tp_errinfo *err);

/* ---- the dialer (dial.c): the one connect policy of every connector ---------------- */

typedef struct tp__dial_options {
    int64_t attempt_delay; /* Happy Eyeballs (RFC 8305): an attempt not connected after
                              this long gets the next address started beside it; a
                              failed one starts it at once. 0: 250 ms */
    int64_t user_timeout;  /* TCP_USER_TIMEOUT: data unacknowledged this long kills the
                              connection (ns, rounded up to ms), so a peer that vanished
                              while we send is found. 0: the kernel's (about 15 min) */
    int keepalive_idle_s;  /* TCP keepalive after connect: first probe after this much
                              silence, then every idle/3 s (at least 1), 3 probes. 0: off */
    const char *local_address; /* an IP literal to bind before connect, its port left to
                                  connect() (IP_BIND_ADDRESS_NO_PORT); only addresses of
                                  its family are tried. NULL: the kernel's choice */
    const char *unix_path; /* a Unix domain stream socket instead of host and port (no
                              resolution, no TCP options) */
    /* Event loops: an attempt's socket was made (watch it for writable) or is about to
       be closed or handed over (stop watching). NULL for the blocking call. */
    void (*on_socket)(void *ud, int fd, bool added);
    void *ud;
} tp__dial_options;

#define TP__DIAL_MAX_ADDRS TP__ADDRS_MAX /* addresses tried per dial */
#define TP__DIAL_MAX_INFLIGHT 4 /* attempts at once */

/* One dial in progress; the caller's memory, one thread at a time. */
typedef struct tp__dial {
    tp__dial_options o;
    char host[256]; /* for messages (the socket path for a Unix socket) */
    uint16_t port;
    tp__addr order[TP__DIAL_MAX_ADDRS]; /* in Happy Eyeballs order */
    int naddrs, next; /* addresses in order[]; the next to try */
    struct {
        int fd;
        int idx; /* its address in order[] */
    } live[TP__DIAL_MAX_INFLIGHT];
    int nlive;
    int64_t deadline, next_start; /* next_start: when the next attempt may begin */
    tp_err rc;                    /* the last attempt's failure */
    tp_errinfo err;
    struct sockaddr_storage local, unix_addr;
    socklen_t local_len, unix_len; /* 0: none */
    int local_family;              /* AF_UNSPEC: no local address */
} tp__dial;

/* tp__dial_begin: prepares a dial of host:port over addrs (copied; NULL with
 * o->unix_path), by deadline for the whole dial. TP_EINVAL (a bad local address or
 * socket path), TP_ERESOLVE (no address to try). Nothing is started yet: the first
 * tp__dial_step() does. */
tp_err tp__dial_begin(tp__dial *d, const char *host, uint16_t port, const tp__addrs *addrs,
                      const tp__dial_options *o, int64_t deadline, tp_errinfo *err);

/* tp__dial_step: the non-blocking step, at now: finishes attempts whose socket is
 * ready, starts those that are due. TP_OK: *fd is connected (non-blocking, close-on-
 * exec, options set), every other attempt closed. TP_PENDING: watch tp__dial_fds() for
 * writable and call again then or at tp__dial_due(). Otherwise the dial is over: the
 * last address's error (TP_ECONNREFUSED, TP_EUNREACH...), a local one at once (TP_ENOFD,
 * TP_ENOMEM, TP_EPORTS), or TP_ETIMEDOUT when the deadline passed. */
tp_err tp__dial_step(tp__dial *d, int64_t now, int *fd, tp_errinfo *err);
/* tp__dial_due: when the dial needs a step without an event (the next attempt's start,
 * or the deadline). */
int64_t tp__dial_due(const tp__dial *d);
/* tp__dial_fds: the sockets of the attempts in flight (at most cap), their count. */
int tp__dial_fds(const tp__dial *d, int *fds, int cap);
/* tp__dial_abort: closes every attempt; the dial is over. */
void tp__dial_abort(tp__dial *d);
/* tp__dial_run: steps d to its end, polling between steps (blocking). */
tp_err tp__dial_run(tp__dial *d, int *fd, tp_errinfo *err);

/* tp__dial_host: resolves host (bounded by the deadline; not for a Unix socket) and
 * dials it (blocking). trace_dns_ns / trace_connect_ns (if not NULL) receive the time
 * spent resolving and connecting. */
tp_err tp__dial_host(const char *host, uint16_t port, const tp__dial_options *o,
                     int64_t deadline, int *fd, int64_t *trace_dns_ns,
                     int64_t *trace_connect_ns, tp_errinfo *err);

/* tp__tcp_keepalive: turns on TCP keepalive on fd: first probe after idle_s seconds of
 * silence, then every interval_s, giving up after count probes. TP_EINVAL unless all
 * three are > 0; a failing setsockopt() maps as tp__net_error(). */
tp_err tp__tcp_keepalive(int fd, int idle_s, int interval_s, int count);

/* ---- TLS ------------------------------------------------------------------------- */

typedef struct tp__tls_options {
    const char *ca_file;       /* PEM bundle; NULL: the system default paths */
    const char *ca_dir;        /* hashed directory; NULL: none */
    bool insecure_skip_verify; /* no peer or host name verification: tests only */
    const char *cert_file;     /* a client certificate (PEM, the chain after it); NULL: none */
    const char *key_file;      /* its private key (PEM); NULL: in cert_file */
    const char *key_passphrase; /* for an encrypted key; NULL: none (read only here) */
    const char *alpn; /* the protocols offered by ALPN, most wanted first, comma-separated
                         ("h2,http/1.1"), each 1 to TP__ALPN_MAX - 1 bytes; NULL: none */
} tp__tls_options;

#define TP__ALPN_MAX 32 /* a protocol name's room, its NUL included */

/* A TLS client configuration (an SSL_CTX) plus a session cache keyed by an opaque
 * string (the pool key), so reconnects to the same destination resume sessions.
 * Thread-safe after creation. */
typedef struct tp__tls_ctx tp__tls_ctx;

tp_err tp__tls_ctx_create(const tp__tls_options *o, tp__tls_ctx **out, tp_errinfo *err);
void tp__tls_ctx_destroy(tp__tls_ctx *t);
/* How many handshakes resumed a cached session (for tests and stats). */
uint64_t tp__tls_ctx_resumed(tp__tls_ctx *t);

/* ---- streams --------------------------------------------------------------------- */

/* A connected byte stream: a socket, and a TLS session on it once tp__tls_start()
 * succeeded. Owned by one thread at a time. */
typedef struct tp__stream {
    int fd;    /* -1 when closed */
    void *ssl; /* SSL *, NULL for plain TCP */
    tp__tls_ctx *tls;
    char *session_key; /* copy of the session cache key, NULL for plain TCP */
    bool resumed;      /* the TLS handshake resumed a cached session */
    char alpn[TP__ALPN_MAX]; /* the protocol the server chose by ALPN once the handshake
                                is done; "" for none (plain TCP, or no ALPN agreed) */
} tp__stream;

/* tp__stream_init: s becomes a plain stream over the connected socket fd (owned). */
void tp__stream_init(tp__stream *s, int fd);

/* tp__tls_start: prepares a TLS client session on s: SNI = host (unless an IP literal),
 * peer verification against the CA and host name (IP literal: IP SAN) unless insecure,
 * and a cached session for session_key if any. Then tp__tls_handshake() or
 * tp__tls_handshake_step() completes it. host may be "[::1]" (brackets are dropped).
 * Errors: TP_ENOMEM, TP_ETLS, TP_EINVAL (s not a connected plain stream, or no host
 * while verifying). */
tp_err tp__tls_start(tp__stream *s, tp__tls_ctx *t, const char *host, const char *session_key,
                     tp_errinfo *err);

/* tp__tls_handshake_step: one non-blocking step. TP_OK: done, s->resumed and s->alpn set. The session
 * is cached for resumption as soon as the server issues it: at the end of a TLS 1.2
 * handshake, but with TLS 1.3 only when its NewSessionTicket is read, i.e. by the first
 * tp__stream_read*() or tp__stream_idle_ok() after the handshake. TP_PENDING with *want
 * set; or TP_ECERT (verification failed: the message says why, e.g. "hostname mismatch"
 * or an unknown CA; backend_code is the X509_V_ERR_* code), TP_ETLS, TP_ECONNRESET
 * (the peer closed during the handshake). */
tp_err tp__tls_handshake_step(tp__stream *s, int *want, tp_errinfo *err);

/* tp__tls_handshake: the handshake, blocking until done or the deadline (TP_ETIMEDOUT). */
tp_err tp__tls_handshake(tp__stream *s, int64_t deadline, tp_errinfo *err);

/* tp__stream_read_step: reads up to cap bytes without blocking. TP_OK with *got > 0;
 * TP_OK with *got == 0 at end of stream (orderly close, TLS close_notify or an EOF
 * without it); TP_PENDING with *want set; or TP_ECONNRESET, TP_ETLS, TP_EIO; TP_EINVAL
 * if cap == 0, TP_ESTATE on a closed stream. */
tp_err tp__stream_read_step(tp__stream *s, void *buf, size_t cap, size_t *got, int *want,
                            tp_errinfo *err);

/* tp__stream_read: as tp__stream_read_step(), blocking until some data, end of stream,
 * an error or the deadline (TP_ETIMEDOUT). */
tp_err tp__stream_read(tp__stream *s, void *buf, size_t cap, size_t *got, int64_t deadline,
                       tp_errinfo *err);

/* tp__stream_write_step: writes up to len bytes without blocking; *put receives how
 * many the transport accepted (may be 0). TP_OK: all len bytes accepted; TP_PENDING
 * (*want set, *put may be > 0): call again with the rest (buf + *put, len - *put), which
 * TLS requires to be the same bytes; TP_ECONNRESET (EPIPE/ECONNRESET), TP_ETLS, TP_EIO.
 * Never raises SIGPIPE (TLS included: its records go out through send(MSG_NOSIGNAL)). */
tp_err tp__stream_write_step(tp__stream *s, const void *buf, size_t len, size_t *put, int *want,
                             tp_errinfo *err);

/* tp__stream_write_all: writes all len bytes, blocking until done, an error or the
 * deadline. *written (required) receives the bytes accepted before any error: a caller
 * deciding whether a retry is safe needs to know whether anything was sent. */
tp_err tp__stream_write_all(tp__stream *s, const void *buf, size_t len, size_t *written,
                            int64_t deadline, tp_errinfo *err);

/* tp__stream_read_ahead: over TLS, let a read take from the socket all it has, not one
 * record's header and then its body (two reads per record): for a reader that always
 * reads until TP_PENDING (an HTTP/2 session), since bytes then wait in the TLS buffer
 * where no poll sees them. Nothing for a cleartext stream. */
void tp__stream_read_ahead(tp__stream *s);

/* tp__stream_idle_ok: the stale check for an idle connection: a zero-timeout poll.
 * Returns false (dead) when the socket is readable (an unsolicited byte, a FIN, a TLS
 * alert or close_notify) or reports HUP/ERR, or when TLS has buffered bytes; true
 * otherwise. TLS: a readable socket is looked at with a non-blocking SSL_peek(), because
 * TLS 1.3 servers send session tickets after the handshake and a connection that has
 * not read since then would otherwise always look dead; records that carry no
 * application data (tickets, key updates) are processed, the connection is alive.
 * Never blocks and never consumes application data. */
bool tp__stream_idle_ok(tp__stream *s);

/* tp__stream_close: closes s and marks it closed; frees the TLS session and the key.
 * TLS: a close_notify is sent without waiting for the peer's (none after a failure).
 * Safe on a closed stream. */
void tp__stream_close(tp__stream *s);

/* tp__stream_close_reset: closes s with an RST (SO_LINGER 0): for connections in an
 * unknown state, so no late byte can reach a later connection on the same port. */
void tp__stream_close_reset(tp__stream *s);

#endif
