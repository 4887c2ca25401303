/* tls_internal.h: what the TLS files of src/net/ share among themselves and with
 * stream.c (never installed, never included outside src/net/): the layout of a
 * tp__tls_ctx, the session cache, the per-connection record hung on each SSL, and the
 * TLS halves of the stream operations that stream.c dispatches to when s->ssl is set.
 *
 * Files: tls.c (context, session start, handshake), tls_io.c (read, write, idle check,
 * close, error mapping), tls_cache.c (resumable sessions by key). */
#ifndef TP_NET_TLS_INTERNAL_H
#define TP_NET_TLS_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "base/fork.h"
#include "base/sync.h"
#include "net/net.h"

#ifdef TIDEPOOL_HAVE_OPENSSL
#include <pthread.h>
#include <stdatomic.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

/* At most this many keys keep a session; beyond, the least recently stored is dropped,
 * so a process talking to ever new destinations does not grow without bound. */
#define TP__TLS_CACHE_MAX 512

typedef struct tp__tls_cache_entry {
    char *key;         /* owned copy */
    SSL_SESSION *sess; /* one reference, owned */
    uint64_t stamp;    /* when last stored, for eviction */
} tp__tls_cache_entry;

typedef struct tp__tls_cache {
    tp__mutex mu;
    tp__fork_guard fork_guard; /* mu, locked around fork() */
    tp__tls_cache_entry *v; /* guarded by mu, as are n, cap and clock */
    size_t n, cap;
    uint64_t clock;
} tp__tls_cache;

struct tp__tls_ctx {
    SSL_CTX *ctx;
    BIO_METHOD *send_method; /* the no-SIGPIPE write BIO, see tls.c */
    bool insecure;
    tp__tls_cache cache;
    _Atomic uint64_t resumed;
};

/* Hung on every client SSL (SSL_set_app_data) from tp__tls_start() to close: what the
 * new-session callback and error messages need, and whether the session failed (then
 * no close_notify is sent and OpenSSL drops the session as bad). */
typedef struct tp__tls_conn {
    tp__tls_ctx *t;
    const char *key; /* == the stream's session_key (same allocation), may be NULL */
    bool offered;    /* a cached session was offered in the ClientHello */
    bool failed;     /* a fatal error or an unclean end was seen */
    char host[];     /* as given to tp__tls_start(), brackets removed; "" if none */
} tp__tls_conn;

/* ---- tls_cache.c: thread-safe map from key to the latest resumable session ------- */

/* Returns 0, or an errno value if the mutex cannot be created. */
int tp__tls_cache_init(tp__tls_cache *c);
/* Frees every entry and the mutex. */
void tp__tls_cache_destroy(tp__tls_cache *c);
/* The session stored for key, with a reference for the caller (SSL_SESSION_free() it),
 * or NULL (none, or expired: then dropped). */
SSL_SESSION *tp__tls_cache_get(tp__tls_cache *c, const char *key);
/* Stores sess for key, replacing any older one. Takes over the caller's reference, also
 * when it cannot store (out of memory: the session is freed). */
void tp__tls_cache_put(tp__tls_cache *c, const char *key, SSL_SESSION *sess);
/* Forgets key's session (after a handshake that offered it failed). */
void tp__tls_cache_remove(tp__tls_cache *c, const char *key);

/* ---- tls_io.c --------------------------------------------------------------------- */

/* tp__tls_error: maps a failed SSL call on s (ssl_err from SSL_get_error(), sys_errno
 * the errno right after the call) to a tp_err: verification failures during the
 * handshake -> TP_ECERT (X509 reason, backend_code = X509_V_ERR_*), a peer that closed
 * -> TP_ECONNRESET, socket errors as tp__net_error(), the rest -> TP_ETLS with
 * OpenSSL's reason. what is "TLS handshake", "TLS read" or "TLS write". Marks the
 * connection failed and clears the thread's OpenSSL error queue. */
tp_err tp__tls_error(tp__stream *s, int ssl_err, int sys_errno, const char *what, tp_errinfo *err);
#endif

/* ---- the TLS side of the stream operations (stubs without OpenSSL) ---------------- */

/* As tp__stream_read_step() / tp__stream_write_step(), for s->ssl != NULL. */
tp_err tp__tls_read_step(tp__stream *s, void *buf, size_t cap, size_t *got, int *want,
                         tp_errinfo *err);
tp_err tp__tls_write_step(tp__stream *s, const void *buf, size_t len, size_t *put, int *want,
                          tp_errinfo *err);
/* SSL_set_read_ahead on: tp__stream_read_ahead() over TLS. */
void tp__tls_read_ahead(tp__stream *s);
/* True if the SSL holds bytes already read from the socket (processed or not). */
bool tp__tls_has_pending(tp__stream *s);
/* The socket is readable and nothing else is wrong: true if the readable records held
 * no application data and no close (tickets, key updates: processed now), false
 * otherwise. Never blocks, never consumes application data. */
bool tp__tls_idle_peek(tp__stream *s);
/* Frees the TLS session of s (not the socket): graceful sends a close_notify unless
 * the connection failed; otherwise the session is only marked shut down, so that a
 * healthy session stays resumable. Clears s->ssl, s->tls, s->session_key. */
void tp__tls_free(tp__stream *s, bool graceful);

#endif
