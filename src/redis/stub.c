/* stub.c: the Redis API when tidepool is built without hiredis: every call fails with
 * TP_ESTATE "built without hiredis", so programs link and report it clearly. */
#ifndef TIDEPOOL_HAVE_HIREDIS

#include <string.h>

#include "tidepool/redis.h"

static tp_err absent(tp_errinfo *err)
{
    return tp_errinfo_set(err, TP_ESTATE, 0, "built without hiredis");
}

void tp_redis_options_init(tp_redis_options *o)
{
    memset(o, 0, sizeof *o);
    o->version = TP_REDIS_OPTIONS_VERSION;
    tp_pool_options_init(&o->pool);
    o->command_timeout = TP_DURATION_INFINITE;
}

tp_err tp_redis_pool_create(const tp_redis_options *o, tp_redis_pool **out, tp_errinfo *err)
{
    (void)o;
    if (out != NULL)
        *out = NULL;
    return absent(err);
}

tp_err tp_redis_pool_create_url(const char *url, const tp_pool_options *po, tp_redis_pool **out,
                                tp_errinfo *err)
{
    (void)url, (void)po;
    if (out != NULL)
        *out = NULL;
    return absent(err);
}

void tp_redis_pool_destroy(tp_redis_pool *rp) { (void)rp; }
tp_pool *tp_redis_pool_tp(tp_redis_pool *rp) { (void)rp; return NULL; }
tp_redis_target *tp_redis_pool_target(tp_redis_pool *rp) { (void)rp; return NULL; }

tp_err tp_redis_target_add(tp_redis_pool *rp, const char *url, tp_redis_target **out,
                           tp_errinfo *err)
{
    (void)rp, (void)url;
    if (out != NULL)
        *out = NULL;
    return absent(err);
}

const void *tp_redis_target_key(const tp_redis_target *t, size_t *keylen)
{
    (void)t;
    if (keylen != NULL)
        *keylen = 0;
    return NULL;
}

tp_err tp_redis_acquire(tp_redis_pool *rp, int64_t timeout, tp_redis_lease **out,
                        tp_errinfo *err)
{
    return tp_redis_acquire_ex(rp, NULL, timeout, 0, out, err);
}

tp_err tp_redis_acquire_ex(tp_redis_pool *rp, tp_redis_target *t, int64_t timeout,
                           unsigned flags, tp_redis_lease **out, tp_errinfo *err)
{
    (void)rp, (void)t, (void)timeout, (void)flags;
    if (out != NULL)
        *out = NULL;
    return absent(err);
}

struct redisContext *tp_redis_conn_get(tp_redis_lease *l) { (void)l; return NULL; }
tp_conn *tp_redis_lease_conn(tp_redis_lease *l) { (void)l; return NULL; }

tp_err tp_redis_command(tp_redis_lease *l, struct redisReply **reply, tp_errinfo *err,
                        const char *fmt, ...)
{
    (void)l, (void)fmt;
    if (reply != NULL)
        *reply = NULL;
    return absent(err);
}

tp_err tp_redis_vcommand(tp_redis_lease *l, struct redisReply **reply, tp_errinfo *err,
                         const char *fmt, va_list ap)
{
    (void)l, (void)fmt, (void)ap;
    if (reply != NULL)
        *reply = NULL;
    return absent(err);
}

tp_err tp_redis_command_argv(tp_redis_lease *l, struct redisReply **reply, tp_errinfo *err,
                             int argc, const char **argv, const size_t *argvlen)
{
    (void)l, (void)argc, (void)argv, (void)argvlen;
    if (reply != NULL)
        *reply = NULL;
    return absent(err);
}

tp_err tp_redis_append(tp_redis_lease *l, tp_errinfo *err, const char *fmt, ...)
{
    (void)l, (void)fmt;
    return absent(err);
}

tp_err tp_redis_get_reply(tp_redis_lease *l, struct redisReply **reply, tp_errinfo *err)
{
    (void)l;
    if (reply != NULL)
        *reply = NULL;
    return absent(err);
}

void tp_redis_release(tp_redis_lease *l, unsigned flags) { (void)l, (void)flags; }

bool tp_redis_reply_is_error(const struct redisReply *reply)
{
    (void)reply;
    return false;
}

const char *tp_redis_reply_str(const struct redisReply *reply, size_t *len)
{
    (void)reply;
    if (len != NULL)
        *len = 0;
    return NULL;
}

void tp_redis_reply_free(struct redisReply *reply) { (void)reply; }

#else
typedef int tp__redis_stub_unused;
#endif
