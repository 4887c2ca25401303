/* h2_client.c: the client's HTTP/2 side: its pool of HTTP/2 connections (a second pool,
 * on the HTTP/2 connector, whose keys are the client's own "https://host:port"), the TLS
 * context that offers h2 by ALPN, the memory of destinations that chose HTTP/1.1, and
 * which requests go over HTTP/2.
 *
 * Why a second pool and not one pool of both kinds: an HTTP/2 connection is a
 * multiplexed pool connection (a lease is a stream) and the core gives a key that
 * multiplexes one dial at a time, which is what "while the protocol is unknown one dial
 * goes out and the others wait" needs. A destination whose server answers ALPN with
 * http/1.1 is remembered; its first handshake is the one wasted, and the requests queued
 * behind it fail over at once (known_not_h2) rather than dial again. */
#include <stdlib.h>
#include <string.h>

#include "client.h"

/* ---- the memory of destinations that chose HTTP/1.1 ----------------------------------- */

static uint64_t hash(const char *k, size_t n)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)k[i]) * 1099511628211ull;
    return h;
}

/* The slot of key, or the empty slot where it would go (m->mu held; cap > 0). */
static char **memo_slot(tp__http_memo *m, const char *k, size_t n)
{
    size_t i = (size_t)hash(k, n) & (m->cap - 1);
    while (m->slots[i] != NULL && (strlen(m->slots[i]) != n || memcmp(m->slots[i], k, n) != 0))
        i = (i + 1) & (m->cap - 1);
    return &m->slots[i];
}

static bool memo_has(tp__http_memo *m, const char *k, size_t n)
{
    if (atomic_load_explicit(&m->n, memory_order_acquire) == 0)
        return false; /* entries are never removed: none yet is none now */
    tp__mutex_lock(&m->mu);
    bool has = m->cap > 0 && *memo_slot(m, k, n) != NULL;
    tp__mutex_unlock(&m->mu);
    return has;
}

/* Grows to twice the slots (m->mu held): false when memory is short. */
static bool memo_grow(tp__http_memo *m)
{
    size_t cap = m->cap ? m->cap * 2 : 64;
    char **old = m->slots;
    size_t ocap = m->cap;
    m->slots = tp__calloc(cap, sizeof *m->slots);
    if (m->slots == NULL) {
        m->slots = old;
        return false;
    }
    m->cap = cap;
    for (size_t i = 0; i < ocap; i++)
        if (old[i] != NULL)
            *memo_slot(m, old[i], strlen(old[i])) = old[i];
    tp__free(old);
    return true;
}

static void memo_add(tp__http_memo *m, const char *k, size_t n)
{
    tp__mutex_lock(&m->mu);
    if (m->n < TP__HTTP_MEMO_MAX && ((m->n + 1) * 2 <= m->cap || memo_grow(m))) {
        char **s = memo_slot(m, k, n);
        if (*s == NULL && (*s = tp__malloc(n + 1)) != NULL) {
            memcpy(*s, k, n);
            (*s)[n] = '\0';
            m->n++;
        }
    }
    tp__mutex_unlock(&m->mu);
}

static void memo_free(tp__http_memo *m)
{
    for (size_t i = 0; i < m->cap; i++)
        tp__free(m->slots[i]);
    tp__free(m->slots);
    tp__fork_guard_remove(&m->guard);
    tp__mutex_destroy(&m->mu);
}

bool tp__http_h2_not_h2(tp_http_client *c, const char *key, size_t keylen)
{
    return memo_has(&c->not_h2, key, keylen);
}

static bool known_not_h2(void *ud, const char *key, size_t keylen)
{
    return tp__http_h2_not_h2(ud, key, keylen);
}

static void not_h2(void *ud, const char *key, size_t keylen, const char *alpn)
{
    (void)alpn;
    tp_http_client *c = ud;
    memo_add(&c->not_h2, key, keylen);
}

/* ---- setup ------------------------------------------------------------------------ */

tp_err tp__http_h2_setup(tp_http_client *c, const tp_http_client_options *o,
                         const char *key_passphrase, tp_errinfo *err)
{
    if (o->http_version == TP_HTTP_VERSION_1_1)
        return TP_OK;
    tp__mutex_init(&c->not_h2.mu);
    tp__fork_guard_add(&c->not_h2.guard, &c->not_h2.mu, TP__RANK_LEAF, NULL);
    c->not_h2.ready = true;
    tp__tls_options to = tp__http_tls_options(c, key_passphrase);
    to.alpn = o->http_version == TP_HTTP_VERSION_2 ? "h2" : "h2,http/1.1";
    tp_err rc = tp__tls_ctx_create(&to, &c->tls_h2, err);
    if (rc != TP_OK)
        return rc;
    tp__h2_connector_options co = {.tls_ctx = c->tls_h2,
                                   .dial = &c->dial,
                                   .known_not_h2 = known_not_h2,
                                   .not_h2 = not_h2,
                                   .ud = c,
                                   .max_requests = o->http2_max_requests_per_conn,
                                   .jitter = o->pool.lifetime_jitter,
                                   .h2 = {.max_streams = o->max_streams_per_conn,
                                          .max_header_list = o->max_header_bytes,
                                          .ping_idle = o->http2_ping_idle,
                                          .ping_timeout = o->http2_ping_timeout}};
    rc = tp__h2_connector_new(&co, &c->h2_cn, err);
    if (rc != TP_OK)
        return rc;
    /* The caller's timers, breaker and totals; the per-key counts are HTTP/2's own: a few
     * connections, each carrying what the server's SETTINGS allow, so no warm spares and no
     * adaptive connection limit (the streams are bounded by the server's word). */
    tp_pool_options po = o->pool;
    po.connector = c->h2_cn;
    po.max_per_key = o->http2_max_conns_per_host > 0 ? o->http2_max_conns_per_host : 1;
    if (po.max_idle_per_key != TP_FOLLOW_MAX_PER_KEY)
        po.max_idle_per_key = TP__MIN(po.max_idle_per_key, po.max_per_key);
    po.min_idle_per_key = 0;
    po.prewarm_waiters = 0;
    po.adaptive = NULL;
    return tp_pool_create(&po, &c->h2_pool, err);
}

void tp__http_h2_teardown(tp_http_client *c)
{
    if (!c->not_h2.ready)
        return;                  /* TP_HTTP_VERSION_1_1, or create failed before setup */
    tp_pool_destroy(c->h2_pool); /* every session closed before its connector and TLS go */
    c->h2_pool = NULL;
    tp__h2_connector_free(&c->h2_cn);
    tp__tls_ctx_destroy(c->tls_h2);
    c->tls_h2 = NULL;
    memo_free(&c->not_h2);
}

tp_pool *tp_http_client_h2_pool(tp_http_client *c)
{
    return c == NULL ? NULL : c->h2_pool;
}

/* ---- which requests go over HTTP/2 ---------------------------------------------------- */

/* What of req (or the client) HTTP/2 does not serve yet: NULL when nothing. */
static const char *h2_lacks(const tp_http_client *c, const tp_http_request *req,
                            const tp__http_url *u)
{
    if (c->unix_socket != NULL)
        return "a Unix socket";
    if (tp__http_proxy_for(c, u) != NULL)
        return "a proxy";
    if (req->body_source != NULL)
        return "a body_source";
    if (req->on_body != NULL)
        return "on_body";
    if (req->flags & TP_HTTP_EXPECT_CONTINUE)
        return "TP_HTTP_EXPECT_CONTINUE";
    if (c->o.max_redirects > 0)
        return "max_redirects";
    if (c->o.decompress)
        return "decompress";
    return NULL;
}

bool tp__http_h2_route(tp_http_client *c, const tp_http_request *req, const tp__http_url *u,
                       tp_err *rc, tp_errinfo *err)
{
    *rc = TP_OK;
    if (c->h2_pool == NULL || (!u->tls && c->o.http_version != TP_HTTP_VERSION_2))
        return false;
    const char *lacks = h2_lacks(c, req, u);
    if (lacks != NULL) {
        if (c->o.http_version == TP_HTTP_VERSION_2)
            *rc = tp_errinfo_set(err, TP_EINVAL, 0,
                                 "TP_HTTP_VERSION_2: %s is not served over HTTP/2 yet (use "
                                 "TP_HTTP_VERSION_AUTO to send such requests over HTTP/1.1)",
                                 lacks);
        return false;
    }
    if (c->o.http_version == TP_HTTP_VERSION_AUTO) {
        char key[TP__HTTP_KEY_MAX];
        size_t n = tp__http_key(c, u, key, sizeof key);
        return n > 0 && !tp__http_h2_not_h2(c, key, n);
    }
    return true;
}
