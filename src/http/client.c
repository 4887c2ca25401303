/* client.c: the HTTP client's life: options, create, destroy. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"

void tp_http_client_options_init(tp_http_client_options *o)
{
    if (o == NULL)
        return;
    memset(o, 0, sizeof *o);
    o->version = TP_HTTP_CLIENT_OPTIONS_VERSION;
    tp_pool_options_init(&o->pool); /* check_after_idle 0: every reuse is polled */
    o->tls_handshake_timeout = 10 * TP_NSEC_PER_SEC;
    o->response_header_timeout = 30 * TP_NSEC_PER_SEC;
    o->expect_continue_timeout = TP_NSEC_PER_SEC;
    o->request_timeout = TP_DURATION_INFINITE;
    o->max_header_bytes = 64 * 1024;
    o->max_body_bytes = 64 * 1024 * 1024;
    o->drain_max_bytes = 256 * 1024;
    o->drain_timeout = 100 * TP_NSEC_PER_MSEC;
    o->tcp_keepalive_idle_s = 30;
}

/* TCP_USER_TIMEOUT: a request fails by its own timeouts anyway once data has gone
 * unacknowledged that long, so by default the connection dies with it, not after the
 * kernel's quarter of an hour of retransmissions. */
static int64_t user_timeout(const tp_http_client_options *o)
{
    if (o->tcp_user_timeout == TP_DURATION_INFINITE)
        return 0;
    if (o->tcp_user_timeout > 0)
        return o->tcp_user_timeout;
    int64_t t = TP__MIN(o->response_header_timeout, o->request_timeout);
    return t == TP_DURATION_INFINITE ? 0 : t;
}

static char *dup_or_null(const char *s, bool *fail)
{
    if (s == NULL)
        return NULL;
    char *d = tp__strdup(s);
    if (d == NULL)
        *fail = true;
    return d;
}

tp_err tp_http_client_create(const tp_http_client_options *o, tp_http_client **out, tp_errinfo *err)
{
    if (out == NULL)
        return tp_errinfo_set(err, TP_EINVAL, 0, "out: NULL");
    *out = NULL;
    if (o == NULL)
        return tp_errinfo_set(err, TP_EINVAL, 0, "options: NULL");
    if (o->version != TP_HTTP_CLIENT_OPTIONS_VERSION)
        return tp_errinfo_set(err, TP_EINVAL, 0,
                              "version: %u is not TP_HTTP_CLIENT_OPTIONS_VERSION; call "
                              "tp_http_client_options_init()",
                              o->version);
    const struct {
        const char *name;
        int64_t v;
    } d[] = {{"tls_handshake_timeout", o->tls_handshake_timeout},
             {"response_header_timeout", o->response_header_timeout},
             {"request_timeout", o->request_timeout},
             {"expect_continue_timeout", o->expect_continue_timeout},
             {"drain_timeout", o->drain_timeout}};
    for (size_t i = 0; i < sizeof d / sizeof d[0]; i++)
        if (d[i].v <= 0)
            return tp_errinfo_set(err, TP_EINVAL, 0,
                                  "%s: %lld must be positive (or "
                                  "TP_DURATION_INFINITE)",
                                  d[i].name, (long long)d[i].v);
    if (o->max_header_bytes < 256)
        return tp_errinfo_set(err, TP_EINVAL, 0, "max_header_bytes: %zu is too small (< 256)",
                              o->max_header_bytes);
    if (o->max_redirects < 0)
        return tp_errinfo_set(err, TP_EINVAL, 0, "max_redirects: negative");
    if (o->tcp_keepalive_idle_s < 0)
        return tp_errinfo_set(err, TP_EINVAL, 0, "tcp_keepalive_idle_s: negative");
    if (o->tcp_user_timeout < 0 || o->happy_eyeballs_delay < 0)
        return tp_errinfo_set(err, TP_EINVAL, 0, "%s: negative",
                              o->tcp_user_timeout < 0 ? "tcp_user_timeout"
                                                      : "happy_eyeballs_delay");
    if (o->dns_cache_ttl < 0 || o->dns_negative_ttl < 0)
        return tp_errinfo_set(err, TP_EINVAL, 0, "%s: negative",
                              o->dns_cache_ttl < 0 ? "dns_cache_ttl" : "dns_negative_ttl");
    if (o->unix_socket != NULL && (o->unix_socket[0] == '\0' || strlen(o->unix_socket) > 107))
        return tp_errinfo_set(err, TP_EINVAL, 0, "unix_socket: a path of 1 to 107 bytes");
    unsigned char ip[16];
    if (o->local_address != NULL && inet_pton(AF_INET, o->local_address, ip) != 1 &&
        inet_pton(AF_INET6, o->local_address, ip) != 1)
        return tp_errinfo_set(err, TP_EINVAL, 0, "local_address: %.64s is not an IP address",
                              o->local_address);
    if (o->tls_client_key != NULL && o->tls_client_cert == NULL)
        return tp_errinfo_set(err, TP_EINVAL, 0, "tls_client_key: needs tls_client_cert");
    if ((unsigned)o->http_version > TP_HTTP_VERSION_2)
        return tp_errinfo_set(err, TP_EINVAL, 0, "http_version: %d is none of TP_HTTP_VERSION_*",
                              (int)o->http_version);
    if (o->http2_ping_idle < 0 || o->http2_ping_timeout < 0)
        return tp_errinfo_set(err, TP_EINVAL, 0, "%s: negative",
                              o->http2_ping_idle < 0 ? "http2_ping_idle" : "http2_ping_timeout");
    if (o->max_streams_per_conn < 0 || o->http2_max_conns_per_host < 0)
        return tp_errinfo_set(err, TP_EINVAL, 0, "%s: negative",
                              o->max_streams_per_conn < 0 ? "max_streams_per_conn"
                                                          : "http2_max_conns_per_host");
    if (o->unix_socket != NULL && o->local_address != NULL)
        return tp_errinfo_set(err, TP_EINVAL, 0, "local_address: not with unix_socket");

    tp_http_client *c = tp__calloc(1, sizeof *c);
    if (c == NULL)
        return tp_errinfo_set(err, TP_ENOMEM, 0, "allocating the client");
    tp__mutex_init(&c->engines_mu);
    tp__fork_guard_add(&c->engines_guard, &c->engines_mu, TP__RANK_LEAF, NULL);
    c->o = *o;
    bool fail = false;
    c->ca_file = dup_or_null(o->ca_file, &fail);
    c->ca_dir = dup_or_null(o->ca_dir, &fail);
    char ua[64];
    snprintf(ua, sizeof ua, "tidepool/%s", tp_version_string());
    c->user_agent = dup_or_null(o->user_agent != NULL ? o->user_agent : ua, &fail);
    c->local_address = dup_or_null(o->local_address, &fail);
    c->unix_socket = dup_or_null(o->unix_socket, &fail);
    c->client_cert = dup_or_null(o->tls_client_cert, &fail);
    c->client_key = dup_or_null(o->tls_client_key, &fail);
    c->o.ca_file = c->ca_file;
    c->o.ca_dir = c->ca_dir;
    c->o.user_agent = c->user_agent;
    c->o.local_address = c->local_address;
    c->o.unix_socket = c->unix_socket;
    c->o.tls_client_cert = c->client_cert;
    c->o.tls_client_key = c->client_key;
    c->o.tls_client_key_passphrase = NULL;
    if (c->o.max_decoded_ratio == 0)
        c->o.max_decoded_ratio = 200;
    c->dial = (tp__dial_options){.attempt_delay = o->happy_eyeballs_delay,
                                 .user_timeout = user_timeout(o),
                                 .keepalive_idle_s = o->tcp_keepalive_idle_s,
                                 .local_address = c->local_address,
                                 .unix_path = c->unix_socket};
    if (fail) {
        tp_http_client_destroy(c);
        return tp_errinfo_set(err, TP_ENOMEM, 0, "copying options");
    }
    tp_err prc = tp__http_proxy_setup(c, o, err);
    if (prc != TP_OK) {
        tp_http_client_destroy(c);
        return prc;
    }
    c->o.proxy = NULL; /* parsed above; the caller's strings are not kept */
    c->o.no_proxy = c->no_proxy;
    if (!o->dns_cache_off && o->unix_socket == NULL) {
        tp__dns_cache_options dco = {
            .ttl = o->dns_cache_ttl > 0 ? o->dns_cache_ttl : 30 * TP_NSEC_PER_SEC,
            .negative_ttl = o->dns_negative_ttl > 0 ? o->dns_negative_ttl : TP_NSEC_PER_SEC,
            .max_entries = o->dns_cache_max_entries > 0 ? o->dns_cache_max_entries : 1024};
        tp_err rc = tp__dns_cache_create(&dco, &c->dns, err);
        if (rc != TP_OK) {
            tp_http_client_destroy(c);
            return rc;
        }
    }
    tp_pool_options po = o->pool;
    c->acquire_timeout = po.acquire_timeout;
    c->connect_timeout = po.connect_timeout;
    po.connector = tp__http_connector(c); /* the caller's pool trace hook stays as given */
    tp_err rc = tp_pool_create(&po, &c->pool, err);
    if (rc != TP_OK) {
        tp_http_client_destroy(c);
        return rc;
    }
    rc = tp__http_h2_setup(c, o, o->tls_client_key_passphrase, err);
    if (rc != TP_OK) {
        tp_http_client_destroy(c);
        return rc;
    }
    /* Load the CA and the client certificate now when named, so a wrong path or
     * passphrase fails create, not a request. The passphrase is only read here. */
    if (c->ca_file != NULL || c->ca_dir != NULL || c->client_cert != NULL) {
        tp__tls_ctx *t;
        rc = tp__http_tls_ctx_make(c, o->tls_client_key_passphrase, &t, err);
        if (rc != TP_OK) {
            tp_http_client_destroy(c);
            return rc;
        }
    }
    *out = c;
    return TP_OK;
}

void tp_http_client_destroy(tp_http_client *c)
{
    if (c == NULL)
        return;
    tp__http_engines_free(c); /* before the pool: they may hold a late grant */
    tp__fork_guard_remove(&c->engines_guard);
    tp__mutex_destroy(&c->engines_mu);
    tp_pool_destroy(c->pool); /* closes every connection before the TLS context goes */
    tp__http_h2_teardown(c);
    tp__tls_ctx_destroy(atomic_load(&c->tls));
    tp__dns_cache_destroy(c->dns);
    tp__free(c->ca_file);
    tp__free(c->ca_dir);
    tp__free(c->user_agent);
    tp__free(c->local_address);
    tp__free(c->unix_socket);
    tp__free(c->client_cert);
    tp__free(c->client_key);
    tp__free(c->no_proxy);
    tp__free(c);
}

tp_pool *tp_http_client_pool(tp_http_client *c)
{
    return c == NULL ? NULL : c->pool;
}
