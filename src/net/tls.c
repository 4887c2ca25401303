/* tls.c: TLS client contexts and sessions over OpenSSL 3: the SSL_CTX (TLS >= 1.2, peer
 * verification on by default), the start of a session on a connected stream (SNI, host
 * name or IP check, a cached session to resume) and the handshake, as a non-blocking
 * step and as a blocking call with a deadline.
 *
 * Records are written through a small BIO of our own that sends with MSG_NOSIGNAL:
 * OpenSSL's socket BIO uses write(), which raises SIGPIPE on a connection the peer has
 * reset, and a library must neither die of it nor change the process's signal
 * disposition. Reads use OpenSSL's socket BIO (reading never raises SIGPIPE).
 *
 * Built without OpenSSL, creating a context or starting a session fails with TP_ETLS
 * "built without OpenSSL". */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "net/tls_internal.h"

#ifdef TIDEPOOL_HAVE_OPENSSL

#include <errno.h>

/* ---- the no-SIGPIPE write BIO ------------------------------------------------------ */

static int send_bio_write(BIO *b, const char *buf, int len)
{
    int fd = (int)(intptr_t)BIO_get_data(b);
    BIO_clear_retry_flags(b);
    ssize_t n;
    do {
        n = send(fd, buf, (size_t)len, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        BIO_set_retry_write(b);
    return (int)n;
}

/* Only flushing matters to the TLS state machine (there is no buffer to flush); every
 * other control, kTLS queries included, is "not supported". */
static long send_bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)b;
    (void)num;
    (void)ptr;
    return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static BIO_METHOD *send_bio_method(void)
{
    int type = BIO_get_new_index();
    if (type == -1)
        return NULL;
    BIO_METHOD *m = BIO_meth_new(type | BIO_TYPE_SOURCE_SINK, "tidepool send");
    if (m == NULL)
        return NULL;
    if (BIO_meth_set_write(m, send_bio_write) != 1 || BIO_meth_set_ctrl(m, send_bio_ctrl) != 1) {
        BIO_meth_free(m);
        return NULL;
    }
    return m;
}

/* ---- context -------------------------------------------------------------------------- */

/* OpenSSL's reason for the newest error in this thread's queue, which is then cleared. */
static const char *ssl_reason(char *buf, size_t cap)
{
    unsigned long e = ERR_peek_last_error();
    const char *r = e != 0 ? ERR_reason_error_string(e) : NULL;
    if (r == NULL && e != 0) {
        ERR_error_string_n(e, buf, cap);
        r = buf;
    }
    ERR_clear_error();
    return r != NULL ? r : "unknown error";
}

/* Called by OpenSSL whenever the server issues a session: at the end of a TLS 1.2
 * handshake, and for each TLS 1.3 NewSessionTicket (read after the handshake). Returns
 * 1 when it keeps the reference it was given. */
static int on_new_session(SSL *ssl, SSL_SESSION *sess)
{
    tp__tls_conn *c = SSL_get_app_data(ssl);
    if (c == NULL || c->key == NULL || !SSL_SESSION_is_resumable(sess))
        return 0;
    tp__tls_cache_put(&c->t->cache, c->key, sess);
    return 1;
}

/* The passphrase of an encrypted key, handed to OpenSSL while the key loads only. */
static int passphrase_cb(char *buf, int size, int rwflag, void *ud)
{
    (void)rwflag;
    const char *pass = ud;
    if (pass == NULL || size <= 0)
        return 0;
    size_t n = strlen(pass);
    if (n > (size_t)size)
        return 0; /* longer than OpenSSL takes: refuse rather than truncate */
    memcpy(buf, pass, n);
    return (int)n;
}

/* mTLS: the certificate chain and its key, checked against each other now, so a wrong
 * file or passphrase fails the context's creation, not a request's handshake. */
static tp_err load_client_cert(SSL_CTX *ctx, const tp__tls_options *o, tp_errinfo *err)
{
    char buf[256];
    const char *key = o->key_file != NULL ? o->key_file : o->cert_file;
    if (SSL_CTX_use_certificate_chain_file(ctx, o->cert_file) != 1)
        return tp_errinfo_set(err, TP_ETLS, 0, "TLS: client certificate %s: %s", o->cert_file,
                              ssl_reason(buf, sizeof buf));
    SSL_CTX_set_default_passwd_cb(ctx, passphrase_cb);
    SSL_CTX_set_default_passwd_cb_userdata(ctx, (void *)o->key_passphrase);
    int ok = SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM);
    SSL_CTX_set_default_passwd_cb_userdata(ctx, NULL); /* the caller's string is not kept */
    if (ok != 1) {
        const char *why = ssl_reason(buf, sizeof buf);
        if (strstr(why, "mismatch") != NULL) /* OpenSSL checks the pair as it loads */
            return tp_errinfo_set(err, TP_ETLS, 0, "TLS: client key %s does not match %s: %s",
                                  key, o->cert_file, why);
        return tp_errinfo_set(err, TP_ETLS, 0, "TLS: client key %s: %s%s", key, why,
                              o->key_passphrase == NULL ? " (encrypted? no passphrase given)"
                                                        : "");
    }
    if (SSL_CTX_check_private_key(ctx) != 1)
        return tp_errinfo_set(err, TP_ETLS, 0, "TLS: client key %s does not match %s: %s", key,
                              o->cert_file, ssl_reason(buf, sizeof buf));
    return TP_OK;
}

/* ALPN: "h2,http/1.1" becomes the wire's list of length-prefixed names. */
static tp_err set_alpn(SSL_CTX *ctx, const char *list, tp_errinfo *err)
{
    unsigned char wire[256];
    size_t n = 0;
    for (const char *p = list;;) {
        const char *end = strchr(p, ',');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
        if (len == 0 || len >= TP__ALPN_MAX || n + 1 + len > sizeof wire)
            return tp_errinfo_set(err, TP_EINVAL, 0,
                                  "TLS: ALPN list \"%s\": each protocol 1 to %d bytes, %zu in all",
                                  list, TP__ALPN_MAX - 1, sizeof wire);
        wire[n++] = (unsigned char)len;
        memcpy(wire + n, p, len);
        n += len;
        if (end == NULL)
            break;
        p = end + 1;
    }
    if (SSL_CTX_set_alpn_protos(ctx, wire, (unsigned)n) != 0) /* 0 is success here */
        return tp_errinfo_set(err, TP_ENOMEM, 0, "TLS: setting the ALPN list");
    return TP_OK;
}

static tp_err configure(tp__tls_ctx *t, const tp__tls_options *o, tp_errinfo *err)
{
    char buf[256];
    SSL_CTX *ctx = t->ctx;
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1)
        return tp_errinfo_set(err, TP_ETLS, 0, "TLS: minimum version: %s",
                              ssl_reason(buf, sizeof buf));
    /* Partial writes give the byte counts tp__stream_write_step() reports; a moving
     * buffer lets a retry pass buf + put; released buffers keep idle pooled
     * connections at a few hundred bytes instead of ~34 KiB each. */
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
#ifdef SSL_OP_IGNORE_UNEXPECTED_EOF
    /* An EOF without close_notify is an end of stream, not a fatal error (tls_io.c). */
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
#endif
    if (o->ca_file != NULL || o->ca_dir != NULL) {
        if (SSL_CTX_load_verify_locations(ctx, o->ca_file, o->ca_dir) != 1)
            return tp_errinfo_set(err, TP_ETLS, 0, "TLS: loading CA %s%s%s: %s",
                                  o->ca_file != NULL ? o->ca_file : "",
                                  o->ca_file != NULL && o->ca_dir != NULL ? " and " : "",
                                  o->ca_dir != NULL ? o->ca_dir : "", ssl_reason(buf, sizeof buf));
    } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
        return tp_errinfo_set(err, TP_ETLS, 0, "TLS: loading the system CA paths: %s",
                              ssl_reason(buf, sizeof buf));
    }
    if (o->cert_file != NULL) {
        tp_err rc = load_client_cert(ctx, o, err);
        if (rc != TP_OK)
            return rc;
    }
    if (o->alpn != NULL) {
        tp_err rc = set_alpn(ctx, o->alpn, err);
        if (rc != TP_OK)
            return rc;
    }
    SSL_CTX_set_verify(ctx, o->insecure_skip_verify ? SSL_VERIFY_NONE : SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx, on_new_session);
    return TP_OK;
}

tp_err tp__tls_ctx_create(const tp__tls_options *o, tp__tls_ctx **out, tp_errinfo *err)
{
    static const tp__tls_options defaults = {0};
    *out = NULL;
    if (o == NULL)
        o = &defaults;
    tp__tls_ctx *t = tp__calloc(1, sizeof *t);
    if (t == NULL)
        return tp_errinfo_set(err, TP_ENOMEM, 0, "TLS: out of memory");
    int e = tp__tls_cache_init(&t->cache);
    if (e != 0) {
        tp__free(t);
        return tp_errinfo_set(err, TP_ENOMEM, e, "TLS: cannot create the session cache lock");
    }
    t->insecure = o->insecure_skip_verify;
    ERR_clear_error();
    char buf[256];
    tp_err rc = TP_OK;
    t->ctx = SSL_CTX_new(TLS_client_method());
    t->send_method = send_bio_method();
    if (t->ctx == NULL || t->send_method == NULL)
        rc = tp_errinfo_set(err, TP_ETLS, 0, "TLS: creating the context: %s",
                            ssl_reason(buf, sizeof buf));
    else
        rc = configure(t, o, err);
    if (rc != TP_OK) {
        tp__tls_ctx_destroy(t);
        return rc;
    }
    *out = t;
    return TP_OK;
}

void tp__tls_ctx_destroy(tp__tls_ctx *t)
{
    if (t == NULL)
        return;
    SSL_CTX_free(t->ctx);
    BIO_meth_free(t->send_method);
    tp__tls_cache_destroy(&t->cache);
    tp__free(t);
}

uint64_t tp__tls_ctx_resumed(tp__tls_ctx *t)
{
    return t == NULL ? 0 : atomic_load_explicit(&t->resumed, memory_order_relaxed);
}

/* ---- session start ------------------------------------------------------------------ */

static bool is_ip_literal(const char *host)
{
    unsigned char buf[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

/* The per-connection record, with host copied without URL brackets ("[::1]" -> "::1"). */
static tp__tls_conn *conn_new(tp__tls_ctx *t, const char *host)
{
    size_t n = strlen(host);
    if (n >= 2 && host[0] == '[' && host[n - 1] == ']') {
        host++;
        n -= 2;
    }
    tp__tls_conn *c = tp__calloc(1, sizeof *c + n + 1);
    if (c == NULL)
        return NULL;
    memcpy(c->host, host, n);
    c->host[n] = '\0';
    c->t = t;
    return c;
}

/* SNI and the identity check. SNI carries names only (RFC 6066 forbids literals); an IP
 * literal is checked against the certificate's IP SANs instead of DNS names. */
static bool set_identity(SSL *ssl, const char *host, bool verify)
{
    if (host[0] == '\0')
        return true; /* insecure without a host name: nothing to send or check */
    if (is_ip_literal(host))
        return !verify || X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host) == 1;
    if (SSL_set_tlsext_host_name(ssl, host) != 1)
        return false;
    if (!verify)
        return true;
    SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    return SSL_set1_host(ssl, host) == 1;
}

tp_err tp__tls_start(tp__stream *s, tp__tls_ctx *t, const char *host, const char *session_key,
                     tp_errinfo *err)
{
    if (s == NULL || t == NULL || s->fd < 0 || s->ssl != NULL)
        return tp_errinfo_set(err, TP_EINVAL, 0, "TLS start: needs a connected plain stream");
    if (host == NULL)
        host = "";
    if (!t->insecure && host[0] == '\0')
        return tp_errinfo_set(err, TP_EINVAL, 0,
                              "TLS start: a host name is needed to verify "
                              "the peer");
    char buf[256];
    ERR_clear_error();
    tp__tls_conn *c = conn_new(t, host);
    char *key = session_key != NULL ? tp__strdup(session_key) : NULL;
    SSL *ssl = SSL_new(t->ctx);
    BIO *rb = BIO_new_socket(s->fd, BIO_NOCLOSE);
    BIO *wb = BIO_new(t->send_method);
    if (c == NULL || (session_key != NULL && key == NULL) || ssl == NULL || rb == NULL ||
        wb == NULL) {
        BIO_free(rb);
        BIO_free(wb);
        SSL_free(ssl);
        tp__free(key);
        tp__free(c);
        ERR_clear_error();
        return tp_errinfo_set(err, TP_ENOMEM, 0, "TLS start: out of memory");
    }
    BIO_set_data(wb, (void *)(intptr_t)s->fd);
    BIO_set_init(wb, 1);
    SSL_set_bio(ssl, rb, wb); /* the SSL owns both BIOs from here on */
    SSL_set_connect_state(ssl);
    if (!set_identity(ssl, c->host, !t->insecure)) {
        tp_err rc = tp_errinfo_set(err, TP_ETLS, 0, "TLS start: host name \"%s\": %s", c->host,
                                   ssl_reason(buf, sizeof buf));
        SSL_free(ssl);
        tp__free(key);
        tp__free(c);
        return rc;
    }
    c->key = key;
    SSL_set_app_data(ssl, c);
    if (key != NULL) {
        SSL_SESSION *sess = tp__tls_cache_get(&t->cache, key);
        if (sess != NULL) {
            c->offered = SSL_set_session(ssl, sess) == 1; /* takes its own reference */
            SSL_SESSION_free(sess);
            ERR_clear_error();
        }
    }
    s->ssl = ssl;
    s->tls = t;
    s->session_key = key;
    s->resumed = false;
    s->alpn[0] = '\0';
    return TP_OK;
}

/* ---- handshake ---------------------------------------------------------------------- */

tp_err tp__tls_handshake_step(tp__stream *s, int *want, tp_errinfo *err)
{
    *want = 0;
    if (s == NULL || s->ssl == NULL || s->fd < 0)
        return tp_errinfo_set(err, TP_ESTATE, 0, "TLS handshake: no TLS session on the stream");
    SSL *ssl = s->ssl;
    if (SSL_is_init_finished(ssl))
        return TP_OK; /* called again after success: nothing to do, nothing to count */
    ERR_clear_error();
    errno = 0;
    int r = SSL_do_handshake(ssl);
    int e = errno;
    if (r == 1) {
        s->resumed = SSL_session_reused(ssl) == 1;
        if (s->resumed)
            atomic_fetch_add_explicit(&s->tls->resumed, 1, memory_order_relaxed);
        const unsigned char *proto = NULL;
        unsigned plen = 0;
        SSL_get0_alpn_selected(ssl, &proto, &plen);
        if (proto == NULL || plen >= sizeof s->alpn)
            plen = 0; /* none agreed (a longer name than any we offer cannot be chosen) */
        if (plen > 0)
            memcpy(s->alpn, proto, plen);
        s->alpn[plen] = '\0';
        return TP_OK;
    }
    int se = SSL_get_error(ssl, r);
    if (se == SSL_ERROR_WANT_READ || se == SSL_ERROR_WANT_WRITE) {
        *want = se == SSL_ERROR_WANT_READ ? TP__WANT_READ : TP__WANT_WRITE;
        return TP_PENDING;
    }
    /* A session that preceded a failure is not offered again: some servers choke on
     * tickets they cannot decrypt instead of falling back to a full handshake. */
    tp__tls_conn *c = SSL_get_app_data(ssl);
    if (c->offered && c->key != NULL)
        tp__tls_cache_remove(&s->tls->cache, c->key);
    return tp__tls_error(s, se, e, "TLS handshake", err);
}

tp_err tp__tls_handshake(tp__stream *s, int64_t deadline, tp_errinfo *err)
{
    for (;;) {
        int want;
        tp_err rc = tp__tls_handshake_step(s, &want, err);
        if (rc != TP_PENDING)
            return rc;
        tp__tls_conn *c = SSL_get_app_data(s->ssl);
        rc = tp__net_wait(s->fd, want, deadline, "TLS handshake with", c->host, err);
        if (rc != TP_OK)
            return rc;
    }
}

#else /* !TIDEPOOL_HAVE_OPENSSL */

tp_err tp__tls_ctx_create(const tp__tls_options *o, tp__tls_ctx **out, tp_errinfo *err)
{
    (void)o;
    *out = NULL;
    return tp_errinfo_set(err, TP_ETLS, 0, "TLS: built without OpenSSL");
}

void tp__tls_ctx_destroy(tp__tls_ctx *t)
{
    (void)t;
}

uint64_t tp__tls_ctx_resumed(tp__tls_ctx *t)
{
    (void)t;
    return 0;
}

tp_err tp__tls_start(tp__stream *s, tp__tls_ctx *t, const char *host, const char *session_key,
                     tp_errinfo *err)
{
    (void)s;
    (void)t;
    (void)host;
    (void)session_key;
    return tp_errinfo_set(err, TP_ETLS, 0, "TLS: built without OpenSSL");
}

tp_err tp__tls_handshake_step(tp__stream *s, int *want, tp_errinfo *err)
{
    (void)s;
    *want = 0;
    return tp_errinfo_set(err, TP_ETLS, 0, "TLS: built without OpenSSL");
}

tp_err tp__tls_handshake(tp__stream *s, int64_t deadline, tp_errinfo *err)
{
    (void)s;
    (void)deadline;
    return tp_errinfo_set(err, TP_ETLS, 0, "TLS: built without OpenSSL");
}

#endif
