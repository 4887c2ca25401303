/* pool.c: the tp_pg_pool: options, creation with the connector wired in, the registry
 * of targets (conninfo -> key) that open() consults, and destruction. Targets live until
 * the pool is destroyed: a key in the pool always has its conninfo at hand, and the hot
 * path (acquire with a target) never touches the registry's lock. */
#ifdef TIDEPOOL_HAVE_LIBPQ
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "pg/pg_internal.h"

void tp_pg_options_init(tp_pg_options *o)
{
    if (o == NULL)
        return;
    memset(o, 0, sizeof *o);
    o->version = TP_PG_OPTIONS_VERSION;
    tp_pool_options_init(&o->pool);
    o->strict_reset = false;
    o->reset_query = NULL;
    o->learn_idle_timeout = true;
    o->query_timeout = TP_DURATION_INFINITE;
}

static void target_free(tp_pg_target *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; t->keywords != NULL && t->keywords[i] != NULL; i++) {
        tp__free((char *)t->keywords[i]);
        if (t->values[i] != NULL) {
            explicit_bzero((char *)t->values[i], strlen(t->values[i]));
            tp__free((char *)t->values[i]);
        }
    }
    tp__free(t->keywords);
    tp__free(t->values);
    tp__free(t->key);
    tp__free(t->dest);
    tp__free(t);
}

/* The connection's socket, for the pool's TCP health checks. */
static int pg_fd(void *ctx, void *conn)
{
    (void)ctx;
    return PQsocket(((tp__pg_conn *)conn)->pg);
}

tp_err tp_pg_pool_create(const tp_pg_options *o, tp_pg_pool **out, tp_errinfo *err)
{
    if (out == NULL)
        return tp_errinfo_set(err, TP_EINVAL, 0, "out: NULL");
    *out = NULL;
    if (o == NULL)
        return tp_errinfo_set(err, TP_EINVAL, 0, "options: NULL");
    if (o->version != TP_PG_OPTIONS_VERSION)
        return tp_errinfo_set(err, TP_EINVAL, 0,
                              "version: %u is not TP_PG_OPTIONS_VERSION; call "
                              "tp_pg_options_init()",
                              o->version);
    if (o->query_timeout <= 0 && o->query_timeout != TP_DURATION_INFINITE)
        return tp_errinfo_set(err, TP_EINVAL, 0,
                              "query_timeout: %lld must be positive or TP_DURATION_INFINITE",
                              (long long)o->query_timeout);
    tp_pg_pool *pp = tp__calloc(1, sizeof *pp);
    if (pp == NULL)
        return tp_errinfo_set(err, TP_ENOMEM, 0, "pg pool: out of memory");
    pp->strict_reset = o->strict_reset;
    pp->query_timeout = o->query_timeout;
    pp->learn_idle_timeout = o->learn_idle_timeout;
    const char *rq = o->reset_query != NULL ? o->reset_query : "DISCARD ALL";
    if (rq[0] != '\0' && (pp->reset_query = tp__strdup(rq)) == NULL) {
        tp__free(pp);
        return tp_errinfo_set(err, TP_ENOMEM, 0, "pg pool: out of memory");
    }
    if (getrandom(pp->secret, sizeof pp->secret, 0) != (ssize_t)sizeof pp->secret) {
        tp__free(pp->reset_query);
        tp__free(pp);
        return tp_errinfo_set(err, TP_ESYS, 0, "pg pool: getrandom failed");
    }
    if (tp__mutex_init(&pp->mu) != 0) {
        tp__free(pp->reset_query);
        tp__free(pp);
        return tp_errinfo_set(err, TP_ESYS, 0, "pg pool: mutex init failed");
    }
    tp__fork_guard_add(&pp->fork_guard, &pp->mu, TP__RANK_LEAF, NULL);
    tp_pool_options po = o->pool;
    po.connector = (tp_connector){.open = tp__pg_open,
                                  .check = tp__pg_check,
                                  .reset = tp__pg_reset,
                                  .close = tp__pg_close,
                                  .fd = pg_fd,
                                  .ctx = pp};
    tp_err rc = tp_pool_create(&po, &pp->pool, err);
    if (rc != TP_OK) {
        tp__fork_guard_remove(&pp->fork_guard);
        tp__mutex_destroy(&pp->mu);
        tp__free(pp->reset_query);
        tp__free(pp);
        return rc;
    }
    *out = pp;
    return TP_OK;
}

/* The value t gets for option o: its own, or for tcp_user_timeout left unset while a
 * query_timeout is set, that bound (where this libpq knows the keyword): a statement
 * whose bytes the peer stopped acknowledging then fails with its socket, not after the
 * kernel's 15 minutes of retransmissions. NULL: the option stays unset. */
static const char *option_value(const PQconninfoOption *o, const char *user_timeout)
{
    if (o->val != NULL && o->val[0] != '\0')
        return o->val;
    if (user_timeout != NULL && strcmp(o->keyword, "tcp_user_timeout") == 0)
        return user_timeout;
    return NULL;
}

/* Copies the set options of a parsed conninfo into t. */
static tp_err take_options(tp_pg_target *t, PQconninfoOption *opts, int64_t query_timeout,
                           tp_errinfo *err)
{
    /* libpq reads the value as an int of milliseconds: a longer bound is clamped. */
    char ut[24];
    const char *user_timeout = NULL;
    if (query_timeout != TP_DURATION_INFINITE) {
        int64_t ms = query_timeout / TP_NSEC_PER_MSEC + (query_timeout % TP_NSEC_PER_MSEC != 0);
        snprintf(ut, sizeof ut, "%lld", (long long)(ms > INT_MAX ? INT_MAX : ms));
        user_timeout = ut;
    }
    size_t n = 0;
    for (PQconninfoOption *o = opts; o->keyword != NULL; o++)
        n += option_value(o, user_timeout) != NULL;
    t->keywords = tp__calloc(n + 1, sizeof *t->keywords);
    t->values = tp__calloc(n + 1, sizeof *t->values);
    if (t->keywords == NULL || t->values == NULL)
        return tp_errinfo_set(err, TP_ENOMEM, 0, "pg target: out of memory");
    size_t i = 0;
    for (PQconninfoOption *o = opts; o->keyword != NULL; o++) {
        const char *v = option_value(o, user_timeout);
        if (v == NULL)
            continue;
        t->keywords[i] = tp__strdup(o->keyword);
        t->values[i] = tp__strdup(v);
        if (t->keywords[i] == NULL || t->values[i] == NULL) {
            tp__free((char *)t->keywords[i]);
            tp__free((char *)t->values[i]);
            t->keywords[i] = t->values[i] = NULL;
            return tp_errinfo_set(err, TP_ENOMEM, 0, "pg target: out of memory");
        }
        if (strcmp(o->keyword, "password") == 0)
            t->password = t->values[i];
        i++;
    }
    return TP_OK;
}

static bool same_options(const tp_pg_target *a, const tp_pg_target *b)
{
    size_t i = 0;
    for (; a->keywords[i] != NULL && b->keywords[i] != NULL; i++)
        if (strcmp(a->keywords[i], b->keywords[i]) != 0 || strcmp(a->values[i], b->values[i]) != 0)
            return false;
    return a->keywords[i] == NULL && b->keywords[i] == NULL;
}

tp_err tp_pg_pool_add(tp_pg_pool *pp, const char *conninfo, tp_pg_target **out, tp_errinfo *err)
{
    if (pp == NULL || conninfo == NULL || out == NULL)
        return tp_errinfo_set(err, TP_EINVAL, 0, "pool, conninfo and out must not be NULL");
    *out = NULL;
    char *perr = NULL;
    PQconninfoOption *opts = PQconninfoParse(conninfo, &perr);
    if (opts == NULL) {
        /* libpq's parse messages may quote a fragment of the string, which can be a
         * password: they are not passed on. */
        if (perr != NULL)
            PQfreemem(perr);
        return tp_errinfo_set(err, TP_EINVAL, 0,
                              "conninfo: not a valid connection string or postgres:// URI");
    }
    tp_pg_target *t = tp__calloc(1, sizeof *t);
    tp_err rc = t == NULL ? tp_errinfo_set(err, TP_ENOMEM, 0, "pg target: out of memory")
                          : take_options(t, opts, pp->query_timeout, err);
    PQconninfoFree(opts);
    if (rc == TP_OK)
        rc = tp__pg_key_build(pp, t, err);
    if (rc != TP_OK) {
        target_free(t);
        return rc;
    }
    tp__mutex_lock(&pp->mu);
    tp_pg_target *found = NULL;
    for (tp_pg_target *x = pp->targets; x != NULL && found == NULL; x = x->next)
        if (same_options(x, t))
            found = x;
    if (found == NULL) {
        t->next = pp->targets;
        pp->targets = t;
        if (pp->dflt == NULL)
            pp->dflt = t;
    }
    tp__mutex_unlock(&pp->mu);
    if (found != NULL)
        target_free(t);
    *out = found != NULL ? found : t;
    return TP_OK;
}

tp_err tp_pg_pool_create_uri(const char *conninfo, const tp_pool_options *pool, tp_pg_pool **out,
                             tp_errinfo *err)
{
    if (out == NULL)
        return tp_errinfo_set(err, TP_EINVAL, 0, "out: NULL");
    *out = NULL;
    tp_pg_options o;
    tp_pg_options_init(&o);
    if (pool != NULL)
        o.pool = *pool;
    tp_pg_pool *pp = NULL;
    tp_err rc = tp_pg_pool_create(&o, &pp, err);
    if (rc != TP_OK)
        return rc;
    tp_pg_target *t = NULL;
    rc = tp_pg_pool_add(pp, conninfo, &t, err);
    if (rc != TP_OK) {
        tp_pg_pool_destroy(pp);
        return rc;
    }
    *out = pp;
    return TP_OK;
}

tp_pg_target *tp__pg_target_find(tp_pg_pool *pp, const void *key, size_t keylen)
{
    tp__mutex_lock(&pp->mu);
    tp_pg_target *t = pp->targets;
    while (t != NULL && (t->keylen != keylen || memcmp(t->key, key, keylen) != 0))
        t = t->next;
    tp__mutex_unlock(&pp->mu);
    return t;
}

const char *tp_pg_target_key(const tp_pg_target *t, size_t *len)
{
    if (len != NULL)
        *len = t != NULL ? t->keylen : 0;
    return t != NULL ? t->key : "";
}

tp_pool *tp_pg_pool_tp(tp_pg_pool *pp)
{
    return pp != NULL ? pp->pool : NULL;
}

void tp_pg_pool_destroy(tp_pg_pool *pp)
{
    if (pp == NULL)
        return;
    /* A lease released after this point finds its pool closed and is closed, not reset:
     * close() never touches pp (only the connection's own record), so pp may go now. */
    tp_pool_destroy(pp->pool);
    tp_pg_target *t = pp->targets;
    while (t != NULL) {
        tp_pg_target *next = t->next;
        target_free(t);
        t = next;
    }
    tp__fork_guard_remove(&pp->fork_guard);
    tp__mutex_destroy(&pp->mu);
    tp__free(pp->reset_query);
    explicit_bzero(pp->secret, sizeof pp->secret);
    tp__free(pp);
}
#else
typedef int tp__pg_pool_unused;
#endif
