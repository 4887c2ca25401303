/* conn.c: the HTTP client's pool connector. open() resolves, dials (net/dial.c: Happy
 * Eyeballs, the client's socket options, or its Unix socket) and, for https, runs the
 * TLS handshake with session resumption per key; check() is the stale test for an idle
 * connection; probe() is a bare dial for the breaker's half-open trial; close() closes,
 * with an RST when the connection's state is unknown. */
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client.h"

uint64_t tp__http_conn_id(void)
{
    static _Atomic uint64_t next = 1;
    return atomic_fetch_add(&next, 1);
}

size_t tp__http_key(const tp_http_client *c, const tp__http_url *u, char *out, size_t cap)
{
    const char *sock = c->unix_socket;
    const tp__http_proxy *px = tp__http_proxy_for(c, u);
    const char *pre = sock != NULL ? "unix:" : px != NULL ? "proxy:" : "";
    const char *via = sock != NULL ? sock : px != NULL ? px->name : "";
    int n =
        snprintf(out, cap, u->host_is_ipv6 ? "%s%s%s%s://[%s]:%u" : "%s%s%s%s://%s:%u", pre, via,
                 pre[0] != '\0' ? " " : "", u->tls ? "https" : "http", u->host, (unsigned)u->port);
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

void tp__http_trace(tp_http_client *c, tp_http_trace_type type, const char *host, uint16_t port,
                    bool tls, tp_http_trace_event *facts)
{
    facts->type = type;
    facts->host = host;
    facts->port = port;
    facts->tls = tls;
    if (facts->protocol == NULL && (type == TP_HTTP_TRACE_GOT_CONN || type == TP_HTTP_TRACE_DONE))
        facts->protocol = "http/1.1";
    c->o.trace(c->o.trace_ud, facts);
}

static void emit(tp_http_client *c, const tp__http_conn *hc, tp_http_trace_type type, tp_err rc,
                 int64_t duration)
{
    TP__HTTP_TRACE(c, type, hc, .err = rc, .duration_ns = duration, .tls_resumed = hc->tls_resumed);
}

tp__tls_options tp__http_tls_options(const tp_http_client *c, const char *key_passphrase)
{
    return (tp__tls_options){.ca_file = c->ca_file,
                             .ca_dir = c->ca_dir,
                             .insecure_skip_verify = c->o.tls_insecure_skip_verify,
                             .cert_file = c->client_cert,
                             .key_file = c->client_key,
                             .key_passphrase = key_passphrase};
}

tp_err tp__http_tls_ctx(tp_http_client *c, tp__tls_ctx **out, tp_errinfo *err)
{
    return tp__http_tls_ctx_make(c, NULL, out, err);
}

tp_err tp__http_tls_ctx_make(tp_http_client *c, const char *key_passphrase, tp__tls_ctx **out,
                             tp_errinfo *err)
{
    *out = atomic_load(&c->tls);
    if (*out != NULL)
        return TP_OK;
    /* Made outside any lock (loading the CA files takes milliseconds); if another
     * request installed one meanwhile, ours goes. */
    tp__tls_options to = tp__http_tls_options(c, key_passphrase);
    tp__tls_ctx *mine = NULL;
    tp_err rc = tp__tls_ctx_create(&to, &mine, err);
    if (rc != TP_OK)
        return rc;
    tp__tls_ctx *none = NULL;
    if (!atomic_compare_exchange_strong(&c->tls, &none, mine)) {
        tp__tls_ctx_destroy(mine);
        mine = none;
    }
    *out = mine;
    return TP_OK;
}

/* Resolves (unless over a Unix socket) and dials the destination by deadline, as an
 * open does: for the breaker's probe. TP_ETIMEDOUT when the deadline passed. */
static tp_err dial(tp_http_client *c, const tp__http_url *u, int64_t deadline, int *fd,
                   tp_errinfo *err)
{
    const tp__http_proxy *px = tp__http_proxy_for(c, u);
    const char *host = px != NULL ? px->host : u->host;
    uint16_t port = px != NULL ? px->port : u->port;
    tp__addrs addrs = {0};
    bool cached;
    tp_err rc = TP_OK;
    if (c->unix_socket == NULL)
        rc = tp__resolve_cached(c->dns, host, port, deadline, &addrs, &cached, err);
    if (rc != TP_OK)
        return rc;
    tp__dial d;
    rc = tp__dial_begin(&d, host, port, &addrs, &c->dial, deadline, err);
    if (rc == TP_OK)
        rc = tp__dial_run(&d, fd, err);
    return rc;
}

/* The destination of a pool key ("https://host:port"), and the key as a C string. */
static tp_err key_parse(const void *key, size_t keylen, char *k, size_t cap, tp__http_url *u,
                        tp_errinfo *err)
{
    if (keylen >= cap)
        return tp_errinfo_set(err, TP_EINVAL, 0, "key too long");
    memcpy(k, key, keylen);
    k[keylen] = '\0';
    const char *url = k;
    if ((strncmp(k, "unix:", 5) == 0 || strncmp(k, "proxy:", 6) == 0) &&
        (url = strchr(k, ' ')) != NULL)
        url++; /* "unix:PATH URL", "proxy:HOST:PORT URL": the client's, the URL follows */
    return tp__http_url_parse(url != NULL ? url : k, u, err);
}

static tp_err http_open(void *ctx, const void *key, size_t keylen, int64_t deadline, void **out,
                        tp_errinfo *err)
{
    tp_http_client *c = ctx;
    char k[TP__HTTP_KEY_MAX];
    tp__http_url u;
    tp_err rc = key_parse(key, keylen, k, sizeof k, &u, err);
    if (rc != TP_OK)
        return rc;
    tp__http_conn *hc = tp__calloc(1, sizeof *hc);
    if (hc == NULL)
        return tp_errinfo_set(err, TP_ENOMEM, 0, "allocating a connection");
    snprintf(hc->host, sizeof hc->host, "%s", u.host);
    hc->port = u.port;
    hc->tls = u.tls;
    hc->s.fd = -1;
    hc->id = tp__http_conn_id();
    /* Through a proxy the socket goes to it; TLS, the key and messages name the
     * destination. */
    const tp__http_proxy *px = tp__http_proxy_for(c, &u);
    const char *dial_host = px != NULL ? px->host : u.host;
    uint16_t dial_port = px != NULL ? px->port : u.port;
    char dest[700]; /* for messages: host:port, or the socket's path */
    if (c->unix_socket != NULL)
        snprintf(dest, sizeof dest, "unix:%s", c->unix_socket);
    else
        snprintf(dest, sizeof dest, u.host_is_ipv6 ? "[%s]:%u%s%s" : "%s:%u%s%s", u.host,
                 (unsigned)u.port, px != NULL ? " via proxy " : "", px != NULL ? px->name : "");

    int64_t t0 = tp_clock_now();
    tp__addrs addrs = {0};
    if (c->unix_socket == NULL) {
        emit(c, hc, TP_HTTP_TRACE_DNS_START, TP_OK, 0);
        bool cached;
        rc = tp__resolve_cached(c->dns, dial_host, dial_port, deadline, &addrs, &cached, err);
        if (rc == TP_ETIMEDOUT)
            rc = tp_errinfo_set(err, TP_ECONNTIMEDOUT, 0, "resolving %s timed out", dial_host);
        emit(c, hc, TP_HTTP_TRACE_DNS_DONE, rc, tp_clock_now() - t0);
        if (rc != TP_OK)
            goto fail;
    }
    int64_t t1 = tp_clock_now();
    emit(c, hc, TP_HTTP_TRACE_CONNECT_START, TP_OK, 0);
    int fd = -1;
    tp__dial d;
    rc = tp__dial_begin(&d, dial_host, dial_port, &addrs, &c->dial, deadline, err);
    if (rc == TP_OK)
        rc = tp__dial_run(&d, &fd, err);
    if (rc == TP_OK)
        tp__stream_init(&hc->s, fd);
    if (rc == TP_OK && px != NULL && u.tls) { /* the tunnel is part of connecting */
        tp__http_tunnel t;
        rc = tp__http_tunnel_begin(&t, c, px, u.host, u.port, err);
        if (rc == TP_OK)
            rc = tp__http_tunnel_run(&t, &hc->s, deadline, err);
        tp__http_tunnel_free(&t);
    }
    int64_t t2 = tp_clock_now();
    if (rc == TP_ETIMEDOUT)
        rc = tp_errinfo_set(err, TP_ECONNTIMEDOUT, 0, "connect to %s timed out after %.0f ms", dest,
                            (double)(t2 - t1) / 1e6);
    emit(c, hc, TP_HTTP_TRACE_CONNECT_DONE, rc, t2 - t1);
    if (rc != TP_OK)
        goto fail;

    if (u.tls) {
        emit(c, hc, TP_HTTP_TRACE_TLS_START, TP_OK, 0);
        tp__tls_ctx *tls = NULL;
        rc = tp__http_tls_ctx(c, &tls, err);
        if (rc == TP_OK)
            rc = tp__tls_start(&hc->s, tls, u.host, k, err);
        int64_t tls_dl = tp__saturating_add(t2, c->o.tls_handshake_timeout);
        if (rc == TP_OK)
            rc = tp__tls_handshake(&hc->s, TP__MIN(tls_dl, deadline), err);
        int64_t t3 = tp_clock_now();
        if (rc == TP_ETIMEDOUT)
            rc = tls_dl <= deadline
                     ? tp_errinfo_set(err, TP_ETLSTIMEDOUT, 0,
                                      "TLS handshake with %s timed out after %.0f ms", dest,
                                      (double)(t3 - t2) / 1e6)
                     : tp_errinfo_set(err, TP_ECONNTIMEDOUT, 0,
                                      "connect_timeout elapsed during the TLS handshake with %s",
                                      dest);
        hc->tls_resumed = rc == TP_OK && hc->s.resumed;
        emit(c, hc, TP_HTTP_TRACE_TLS_DONE, rc, t3 - t2);
        if (rc != TP_OK)
            goto fail;
    }
    *out = hc;
    return TP_OK;
fail:
    tp__stream_close(&hc->s);
    tp__free(hc);
    return rc;
}

static tp_err http_check(void *ctx, void *conn, int64_t idle_ns)
{
    (void)ctx, (void)idle_ns;
    tp__http_conn *hc = conn;
    /* Anything readable on an idle connection (a FIN, an unsolicited 408, a TLS alert)
     * means it must not carry the next request. */
    return hc->rpos == hc->rlen && tp__stream_idle_ok(&hc->s) ? TP_OK : TP_ECONNRESET;
}

static void http_close(void *ctx, void *conn, tp_close_reason reason)
{
    (void)ctx;
    tp__http_conn *hc = conn;
    /* A connection broken mid-exchange is in an unknown state: reset it, so no late
     * byte of it can ever be read by anyone. */
    if (reason == TP_CLOSE_BROKEN || reason == TP_CLOSE_RESET_FAILED)
        tp__stream_close_reset(&hc->s);
    else
        tp__stream_close(&hc->s);
    tp__free(hc);
}

static tp_err http_probe(void *ctx, const void *key, size_t keylen, int64_t deadline,
                         tp_errinfo *err)
{
    tp_http_client *c = ctx;
    char k[TP__HTTP_KEY_MAX];
    tp__http_url u;
    tp_err rc = key_parse(key, keylen, k, sizeof k, &u, err);
    if (rc != TP_OK)
        return rc;
    int fd = -1;
    rc = dial(c, &u, deadline, &fd, err);
    if (fd >= 0)
        close(fd);
    return rc;
}

static int http_fd(void *ctx, void *conn)
{
    (void)ctx;
    return ((tp__http_conn *)conn)->s.fd;
}

static const char *http_protocol(void *ctx, void *conn)
{
    (void)ctx, (void)conn;
    return "http/1.1";
}

tp_connector tp__http_connector(tp_http_client *c)
{
    tp_connector k = {.open = http_open,
                      .fd = http_fd,
                      .protocol = http_protocol,
                      .check = http_check,
                      .reset = NULL,
                      .close = http_close,
                      .probe = http_probe,
                      .ctx = c};
    return k;
}
