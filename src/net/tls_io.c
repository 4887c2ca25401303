/* tls_io.c: the TLS side of a stream: non-blocking read and write steps over SSL_read()
 * and SSL_write(), the idle check's look at readable records, closing, and the mapping
 * of OpenSSL failures to tp_err codes.
 *
 * End of stream: a close_notify (SSL_ERROR_ZERO_RETURN) and an EOF without one both
 * read as *got == 0, as the contract in net.h says: HTTP framing (Content-Length,
 * chunked) detects a truncated body on its own, and many servers close idle keep-alive
 * connections without close_notify. The context sets SSL_OP_IGNORE_UNEXPECTED_EOF, so
 * OpenSSL reports such an EOF as ZERO_RETURN instead of a fatal error, and the session
 * stays resumable (a fatal error makes OpenSSL mark it unresumable; RFC 5246 no longer
 * requires that for a missing close_notify). Without the option (SSL_ERROR_SYSCALL with
 * errno 0, or SSL_R_UNEXPECTED_EOF_WHILE_READING) the read is still an EOF. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "net/tls_internal.h"

#ifdef TIDEPOOL_HAVE_OPENSSL

static tp__tls_conn *conn_of(tp__stream *s)
{
    return SSL_get_app_data((SSL *)s->ssl);
}

static const char *prep_of(const char *what)
{
    if (strcmp(what, "TLS read") == 0)
        return "from";
    if (strcmp(what, "TLS write") == 0)
        return "to";
    return "with";
}

/* The verification failure, for errors during the handshake with verification on. */
static tp_err cert_error(long vr, const char *what, const char *host, tp_errinfo *err)
{
    const char *why = "";
    if (vr == X509_V_ERR_HOSTNAME_MISMATCH)
        why = " (the certificate is not valid for this host name)";
    else if (vr == X509_V_ERR_IP_ADDRESS_MISMATCH)
        why = " (the certificate is not valid for this IP address)";
    tp_errinfo_set(err, TP_ECERT, 0, "%s %s %s: certificate verification failed: %s%s", what,
                   prep_of(what), host, X509_verify_cert_error_string(vr), why);
    if (err != NULL)
        err->backend_code = (int)vr;
    return TP_ECERT;
}

tp_err tp__tls_error(tp__stream *s, int ssl_err, int sys_errno, const char *what, tp_errinfo *err)
{
    SSL *ssl = s->ssl;
    tp__tls_conn *c = conn_of(s);
    const char *host = c->host[0] != '\0' ? c->host : "peer";
    c->failed = true;
    unsigned long e = ERR_peek_last_error();
    tp_err rc;
    if (ssl_err == SSL_ERROR_SYSCALL && e == 0) {
        if (sys_errno == 0)
            rc = tp_errinfo_set(err, TP_ECONNRESET, 0, "%s %s %s: connection closed by the peer",
                                what, prep_of(what), host);
        else
            rc = tp__net_error(sys_errno, what, host, err);
    } else if (ssl_err == SSL_ERROR_ZERO_RETURN) {
        /* A close_notify, or (SSL_OP_IGNORE_UNEXPECTED_EOF) a plain EOF. */
        rc = tp_errinfo_set(err, TP_ECONNRESET, 0, "%s %s %s: connection closed by the peer", what,
                            prep_of(what), host);
    } else if (ssl_err == SSL_ERROR_SSL || ssl_err == SSL_ERROR_SYSCALL) {
        long vr = SSL_get_verify_result(ssl);
        if (!c->t->insecure && !SSL_is_init_finished(ssl) && vr != X509_V_OK) {
            rc = cert_error(vr, what, host, err);
        } else if (ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
            rc = tp_errinfo_set(err, TP_ECONNRESET, 0, "%s %s %s: connection closed by the peer",
                                what, prep_of(what), host);
        } else {
            const char *r = ERR_reason_error_string(e);
            rc = tp_errinfo_set(err, TP_ETLS, sys_errno, "%s %s %s: %s", what, prep_of(what), host,
                                r != NULL ? r : "unknown error");
            if (err != NULL)
                err->backend_code = (int)ERR_GET_REASON(e);
        }
    } else {
        rc = tp_errinfo_set(err, TP_ETLS, sys_errno, "%s %s %s: unexpected OpenSSL error %d", what,
                            prep_of(what), host, ssl_err);
    }
    ERR_clear_error();
    return rc;
}

/* An end of stream without close_notify (see the file comment). */
static bool is_unclean_eof(int ssl_err, int sys_errno)
{
    unsigned long e = ERR_peek_error();
    if (ssl_err == SSL_ERROR_SYSCALL)
        return e == 0 && sys_errno == 0;
    return ssl_err == SSL_ERROR_SSL && ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING;
}

tp_err tp__tls_read_step(tp__stream *s, void *buf, size_t cap, size_t *got, int *want,
                         tp_errinfo *err)
{
    SSL *ssl = s->ssl;
    ERR_clear_error();
    errno = 0;
    int r = SSL_read(ssl, buf, cap > INT_MAX ? INT_MAX : (int)cap);
    int e = errno;
    if (r > 0) {
        *got = (size_t)r;
        return TP_OK;
    }
    int se = SSL_get_error(ssl, r);
    switch (se) {
    case SSL_ERROR_WANT_READ:
        *want = TP__WANT_READ;
        return TP_PENDING;
    case SSL_ERROR_WANT_WRITE: /* a key update or renegotiation to answer first */
        *want = TP__WANT_WRITE;
        return TP_PENDING;
    case SSL_ERROR_ZERO_RETURN:
        return TP_OK;
    default:
        if (is_unclean_eof(se, e)) {
            conn_of(s)->failed = true;
            ERR_clear_error();
            return TP_OK;
        }
        return tp__tls_error(s, se, e, "TLS read", err);
    }
}

tp_err tp__tls_write_step(tp__stream *s, const void *buf, size_t len, size_t *put, int *want,
                          tp_errinfo *err)
{
    SSL *ssl = s->ssl;
    size_t done = 0;
    while (done < len) {
        size_t chunk = len - done;
        ERR_clear_error();
        errno = 0;
        int r = SSL_write(ssl, (const char *)buf + done, chunk > INT_MAX ? INT_MAX : (int)chunk);
        int e = errno;
        if (r > 0) {
            done += (size_t)r;
            continue;
        }
        *put = done;
        int se = SSL_get_error(ssl, r);
        if (se == SSL_ERROR_WANT_READ || se == SSL_ERROR_WANT_WRITE) {
            *want = se == SSL_ERROR_WANT_READ ? TP__WANT_READ : TP__WANT_WRITE;
            return TP_PENDING;
        }
        return tp__tls_error(s, se, e, "TLS write", err);
    }
    *put = done;
    return TP_OK;
}

void tp__tls_read_ahead(tp__stream *s)
{
    SSL_set_read_ahead((SSL *)s->ssl, 1);
}

bool tp__tls_has_pending(tp__stream *s)
{
    return SSL_has_pending((SSL *)s->ssl) == 1;
}

bool tp__tls_idle_peek(tp__stream *s)
{
    SSL *ssl = s->ssl;
    unsigned char b;
    ERR_clear_error();
    errno = 0;
    int r = SSL_peek(ssl, &b, 1);
    bool alive = false;
    if (r <= 0) {
        int se = SSL_get_error(ssl, r);
        /* WANT_READ: the records read were no application data (session tickets are
         * stored by now); bytes of an incomplete record left in OpenSSL's buffer are
         * something arriving, which an idle connection must not receive. */
        alive =
            (se == SSL_ERROR_WANT_READ || se == SSL_ERROR_WANT_WRITE) && SSL_has_pending(ssl) == 0;
        if (se == SSL_ERROR_SSL || se == SSL_ERROR_SYSCALL)
            conn_of(s)->failed = true;
    }
    ERR_clear_error();
    return alive;
}

void tp__tls_free(tp__stream *s, bool graceful)
{
    SSL *ssl = s->ssl;
    tp__tls_conn *c = conn_of(s);
    if (!c->failed && SSL_is_init_finished(ssl)) {
        /* A graceful close sends close_notify (one non-blocking attempt, no wait for the
         * peer's). Otherwise the quiet flag only records the shutdown locally: OpenSSL
         * treats a session freed without shutdown as bad and makes it unresumable,
         * which would defeat the cache for every connection closed by the pool. */
        if (!graceful)
            SSL_set_quiet_shutdown(ssl, 1);
        ERR_clear_error();
        (void)SSL_shutdown(ssl);
        ERR_clear_error();
    }
    SSL_free(ssl);
    tp__free(c);
    tp__free(s->session_key);
    s->ssl = NULL;
    s->tls = NULL;
    s->session_key = NULL;
}

#else /* !TIDEPOOL_HAVE_OPENSSL: no stream ever has s->ssl set */

tp_err tp__tls_read_step(tp__stream *s, void *buf, size_t cap, size_t *got, int *want,
                         tp_errinfo *err)
{
    (void)s;
    (void)buf;
    (void)cap;
    (void)got;
    (void)want;
    return tp_errinfo_set(err, TP_ETLS, 0, "TLS: built without OpenSSL");
}

tp_err tp__tls_write_step(tp__stream *s, const void *buf, size_t len, size_t *put, int *want,
                          tp_errinfo *err)
{
    (void)s;
    (void)buf;
    (void)len;
    (void)want;
    *put = 0;
    return tp_errinfo_set(err, TP_ETLS, 0, "TLS: built without OpenSSL");
}

void tp__tls_read_ahead(tp__stream *s)
{
    (void)s;
}

bool tp__tls_has_pending(tp__stream *s)
{
    (void)s;
    return false;
}

bool tp__tls_idle_peek(tp__stream *s)
{
    (void)s;
    return false;
}

void tp__tls_free(tp__stream *s, bool graceful)
{
    (void)graceful;
    tp__free(s->session_key);
    s->ssl = NULL;
    s->tls = NULL;
    s->session_key = NULL;
}

#endif
