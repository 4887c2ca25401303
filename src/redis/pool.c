/* pool.c: the Redis pool: options, targets, and leases (acquire and release) over a
 * tp_pool that uses the connector of conn.c. A lease is the pooled connection itself,
 * so acquiring costs no allocation beyond the pool's own. */
#ifdef TIDEPOOL_HAVE_HIREDIS

#include <stdlib.h>
#include <string.h>

#include "redis_internal.h"

void tp_redis_options_init(tp_redis_options *o)
{
    memset(o, 0, sizeof *o);
    o->version = TP_REDIS_OPTIONS_VERSION;
    tp_pool_options_init(&o->pool);
    o->command_timeout = TP_DURATION_INFINITE;
}

/* What CLIENT SETNAME accepts (Redis refuses spaces and newlines), within our bound. */
static bool valid_name(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > TP__REDIS_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)name[i] <= 0x20 || (unsigned char)name[i] >= 0x7f)
            return false;
    return true;
}

tp_err tp_redis_pool_create(const tp_redis_options *o, tp_redis_pool **out, tp_errinfo *err)
{
    if (out == NULL || o == NULL)
        return tp_errinfo_set(err, TP_EINVAL, 0, "options and out are required");
    *out = NULL;
    if (o->version != TP_REDIS_OPTIONS_VERSION)
        return tp_errinfo_set(err, TP_EINVAL, 0, "version: unknown options version %u",
                              o->version);
    if (o->command_timeout < 0)
        return tp_errinfo_set(err, TP_EINVAL, 0, "command_timeout: must not be negative");
    if (o->client_name != NULL && !valid_name(o->client_name))
        return tp_errinfo_set(err, TP_EINVAL, 0,
                              "client_name: 1 to %d printable ASCII characters, no space",
                              TP__REDIS_NAME_MAX);
    tp_redis_target *t = NULL;
    tp_err rc = tp__redis_target_parse(o->url, &t, err);
    if (rc != TP_OK)
        return rc;
    tp_redis_pool *rp = tp__calloc(1, sizeof *rp);
    if (rp == NULL) {
        tp__redis_target_free(t);
        return tp_errinfo_set(err, TP_ENOMEM, 0, "allocating a Redis pool");
    }
    if (tp__mutex_init(&rp->mu) != 0) {
        tp__free(rp);
        tp__redis_target_free(t);
        return tp_errinfo_set(err, TP_ESYS, 0, "creating a lock failed");
    }
    tp__fork_guard_add(&rp->fork_guard, &rp->mu, TP__RANK_LEAF, NULL);
    rp->command_timeout = o->command_timeout;
    if (o->client_name != NULL)
        memcpy(rp->client_name, o->client_name, strlen(o->client_name) + 1);
    rp->targets = rp->def = t;
    tp_pool_options po = o->pool;
    po.connector = tp__redis_connector(rp);
    rc = tp_pool_create(&po, &rp->pool, err);
    if (rc != TP_OK) {
        tp_redis_pool_destroy(rp);
        return rc;
    }
    *out = rp;
    return TP_OK;
}

tp_err tp_redis_pool_create_url(const char *url, const tp_pool_options *po, tp_redis_pool **out,
                                tp_errinfo *err)
{
    tp_redis_options o;
    tp_redis_options_init(&o);
    o.url = url;
    if (po != NULL)
        o.pool = *po;
    return tp_redis_pool_create(&o, out, err);
}

void tp_redis_pool_destroy(tp_redis_pool *rp)
{
    if (rp == NULL)
        return;
    /* Closes idle connections now; leased ones close at release, which needs no target,
     * so the targets can go. */
    tp_pool_destroy(rp->pool);
    for (tp_redis_target *t = rp->targets, *next; t != NULL; t = next) {
        next = t->next;
        tp__redis_target_free(t);
    }
    tp__fork_guard_remove(&rp->fork_guard);
    tp__mutex_destroy(&rp->mu);
    tp__free(rp);
}

tp_pool *tp_redis_pool_tp(tp_redis_pool *rp)
{
    return rp != NULL ? rp->pool : NULL;
}

tp_redis_target *tp_redis_pool_target(tp_redis_pool *rp)
{
    return rp != NULL ? rp->def : NULL;
}

const void *tp_redis_target_key(const tp_redis_target *t, size_t *keylen)
{
    if (keylen != NULL)
        *keylen = t != NULL ? t->keylen : 0;
    return t != NULL ? t->key : NULL;
}

static tp_redis_target *find_locked(tp_redis_pool *rp, const void *key, size_t keylen)
{
    for (tp_redis_target *t = rp->targets; t != NULL; t = t->next)
        if (t->keylen == keylen && memcmp(t->key, key, keylen) == 0)
            return t;
    return NULL;
}

tp_redis_target *tp__redis_find_target(tp_redis_pool *rp, const void *key, size_t keylen)
{
    tp__mutex_lock(&rp->mu);
    tp_redis_target *t = find_locked(rp, key, keylen);
    tp__mutex_unlock(&rp->mu);
    return t;
}

tp_err tp_redis_target_add(tp_redis_pool *rp, const char *url, tp_redis_target **out,
                           tp_errinfo *err)
{
    if (rp == NULL || out == NULL)
        return tp_errinfo_set(err, TP_EINVAL, 0, "pool and out are required");
    tp_redis_target *t = NULL;
    tp_err rc = tp__redis_target_parse(url, &t, err);
    if (rc != TP_OK)
        return rc;
    tp__mutex_lock(&rp->mu);
    tp_redis_target *old = find_locked(rp, t->key, t->keylen);
    if (old == NULL) {
        t->next = rp->targets;
        rp->targets = t;
    }
    tp__mutex_unlock(&rp->mu);
    if (old != NULL) {
        tp__redis_target_free(t);
        t = old;
    }
    *out = t;
    return TP_OK;
}

tp_err tp_redis_acquire_ex(tp_redis_pool *rp, tp_redis_target *t, int64_t timeout,
                           unsigned flags, tp_redis_lease **out, tp_errinfo *err)
{
    if (rp == NULL || out == NULL)
        return tp_errinfo_set(err, TP_EINVAL, 0, "pool and out are required");
    *out = NULL;
    if (t == NULL)
        t = rp->def;
    tp_conn *c = NULL;
    tp_acquire_req req = tp_acquire_req_for(t->key, t->keylen, timeout, flags);
    tp_err rc = tp_acquire(rp->pool, &req, &c, err);
    if (rc != TP_OK)
        return rc;
    tp_redis_lease *l = tp_conn_get(c);
    l->conn = c;
    l->state = 0;
    l->pending = 0;
    *out = l;
    return TP_OK;
}

tp_err tp_redis_acquire(tp_redis_pool *rp, int64_t timeout, tp_redis_lease **out,
                        tp_errinfo *err)
{
    return tp_redis_acquire_ex(rp, NULL, timeout, 0, out, err);
}

struct redisContext *tp_redis_conn_get(tp_redis_lease *l)
{
    return l != NULL ? l->c : NULL;
}

tp_conn *tp_redis_lease_conn(tp_redis_lease *l)
{
    return l != NULL ? l->conn : NULL;
}

void tp_redis_release(tp_redis_lease *l, unsigned flags)
{
    if (l == NULL)
        return;
    tp_conn *c = l->conn;
    /* A context that saw an I/O or protocol error is in an unknown state. */
    if (l->c->err != 0)
        flags |= TP_RELEASE_BROKEN;
    /* Unclean sessions are refused by reset() (counted as reset_failed), which the pool
     * runs on every release that intends reuse. */
    tp_conn_release(c, flags);
}

#else
typedef int tp__redis_pool_unused;
#endif
