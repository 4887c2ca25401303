/* tls_cache.c: the client session cache of a tp__tls_ctx: for each key (the pool key of
 * a destination), the latest resumable SSL_SESSION the server issued.
 *
 * OpenSSL's own client cache is not used (SSL_SESS_CACHE_NO_INTERNAL_STORE): it is keyed
 * by session id, which a client cannot look up by destination. Keying by the pool key
 * also keeps the security property of the pool: a session (whose peer was verified for
 * one host name) is only ever offered for the same key. A plain array searched under a
 * mutex is enough: lookups happen once per new connection, next to a TLS handshake
 * that costs a thousand times more. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "net/tls_internal.h"

#ifdef TIDEPOOL_HAVE_OPENSSL

int tp__tls_cache_init(tp__tls_cache *c)
{
    memset(c, 0, sizeof *c);
    int rc = tp__mutex_init(&c->mu);
    if (rc == 0)
        tp__fork_guard_add(&c->fork_guard, &c->mu, TP__RANK_LEAF, NULL);
    return rc;
}

void tp__tls_cache_destroy(tp__tls_cache *c)
{
    for (size_t i = 0; i < c->n; i++) {
        SSL_SESSION_free(c->v[i].sess);
        tp__free(c->v[i].key);
    }
    tp__free(c->v);
    tp__fork_guard_remove(&c->fork_guard);
    tp__mutex_destroy(&c->mu);
    memset(c, 0, sizeof *c);
}

/* Index of key, or c->n. Caller holds c->mu. */
static size_t find_locked(const tp__tls_cache *c, const char *key)
{
    size_t i = 0;
    while (i < c->n && strcmp(c->v[i].key, key) != 0)
        i++;
    return i;
}

/* Removes entry i (order does not matter: the last entry moves into its place). */
static void drop_locked(tp__tls_cache *c, size_t i)
{
    SSL_SESSION_free(c->v[i].sess);
    tp__free(c->v[i].key);
    c->v[i] = c->v[--c->n];
}

/* A session past its lifetime would only be refused by the server (a full handshake
 * after sending a useless ticket), so it is not offered; nor is one OpenSSL marked
 * unresumable (a connection using it ended in a fatal error). Session times are
 * OpenSSL's, in wall-clock seconds; an error of a clock step only costs a full
 * handshake. */
static bool expired(const SSL_SESSION *sess)
{
    if (!SSL_SESSION_is_resumable(sess))
        return true;
    long issued = (long)SSL_SESSION_get_time(sess);
    long lifetime = (long)SSL_SESSION_get_timeout(sess);
    return (long)time(NULL) > issued + lifetime;
}

SSL_SESSION *tp__tls_cache_get(tp__tls_cache *c, const char *key)
{
    SSL_SESSION *sess = NULL;
    tp__mutex_lock(&c->mu);
    size_t i = find_locked(c, key);
    if (i < c->n) {
        if (expired(c->v[i].sess)) {
            drop_locked(c, i);
        } else {
            sess = c->v[i].sess;
            SSL_SESSION_up_ref(sess);
        }
    }
    tp__mutex_unlock(&c->mu);
    return sess;
}

/* Makes room for one more entry: grows the array, or evicts the oldest at the cap.
 * Returns false when out of memory. Caller holds c->mu. */
static bool reserve_locked(tp__tls_cache *c)
{
    if (c->n < c->cap)
        return true;
    if (c->cap >= TP__TLS_CACHE_MAX) {
        size_t oldest = 0;
        for (size_t i = 1; i < c->n; i++)
            if (c->v[i].stamp < c->v[oldest].stamp)
                oldest = i;
        drop_locked(c, oldest);
        return true;
    }
    size_t cap = c->cap == 0 ? 8 : c->cap * 2;
    if (cap > TP__TLS_CACHE_MAX)
        cap = TP__TLS_CACHE_MAX;
    tp__tls_cache_entry *v = tp__realloc(c->v, cap * sizeof *v);
    if (v == NULL)
        return false;
    c->v = v;
    c->cap = cap;
    return true;
}

void tp__tls_cache_put(tp__tls_cache *c, const char *key, SSL_SESSION *sess)
{
    SSL_SESSION *old = NULL;
    tp__mutex_lock(&c->mu);
    size_t i = find_locked(c, key);
    if (i < c->n) {
        old = c->v[i].sess;
        c->v[i].sess = sess;
        c->v[i].stamp = ++c->clock;
        sess = NULL;
    } else {
        char *copy = tp__strdup(key);
        if (copy != NULL && reserve_locked(c)) {
            c->v[c->n++] = (tp__tls_cache_entry){.key = copy, .sess = sess, .stamp = ++c->clock};
            sess = NULL;
        } else {
            tp__free(copy);
        }
    }
    tp__mutex_unlock(&c->mu);
    /* Freed outside the lock, which only guards the array. */
    SSL_SESSION_free(old);
    SSL_SESSION_free(sess);
}

void tp__tls_cache_remove(tp__tls_cache *c, const char *key)
{
    tp__mutex_lock(&c->mu);
    size_t i = find_locked(c, key);
    if (i < c->n)
        drop_locked(c, i);
    tp__mutex_unlock(&c->mu);
}

#endif
