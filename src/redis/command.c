/* command.c: the lease's command wrappers and the session-state tracking behind the
 * release rules. A command is formatted first so that its name (and CLIENT's
 * subcommand) can be read from the RESP array before it is sent: the same formatting
 * hiredis's redisCommand() does, so tracking costs no extra allocation. */
#ifdef TIDEPOOL_HAVE_HIREDIS

#include <errno.h>
#include <hiredis/sds.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "redis_internal.h"

/* The i-th bulk string (0-based) of a RESP array of bulk strings, or false. */
static bool resp_arg(const char *cmd, size_t len, int want, const char **arg, size_t *alen)
{
    const char *p = cmd, *end = cmd + len;
    if (p >= end || *p != '*')
        return false;
    p = memchr(p, '\n', (size_t)(end - p));
    for (int i = 0; p != NULL && ++p < end; i++) {
        if (*p != '$')
            return false;
        char *q = NULL;
        long n = strtol(p + 1, &q, 10);
        if (n < 0 || q + 2 > end || q[0] != '\r' || (size_t)(end - (q + 2)) < (size_t)n + 2)
            return false;
        p = q + 2;
        if (i == want) {
            *arg = p;
            *alen = (size_t)n;
            return true;
        }
        p += n + 1; /* onto the '\n' after the argument */
    }
    return false;
}

static bool is(const char *a, size_t n, const char *name)
{
    return strlen(name) == n && strncasecmp(a, name, n) == 0;
}

/* CLIENT subcommands that only read: everything else (REPLY, TRACKING, SETNAME,
 * CACHING, NO-EVICT, ...) leaves state the next lease would inherit. */
static bool client_readonly(const char *a, size_t n)
{
    static const char *const ro[] = {"ID", "INFO", "GETNAME", "LIST", "HELP",
                                     "GETREDIR", "TRACKINGINFO"};
    for (size_t i = 0; i < sizeof ro / sizeof ro[0]; i++)
        if (is(a, n, ro[i]))
            return true;
    return false;
}

void tp__redis_classify(const char *cmd, size_t len, unsigned *enter, unsigned *leave)
{
    const char *a = NULL, *s = NULL;
    size_t n = 0, sn = 0;
    if (!resp_arg(cmd, len, 0, &a, &n))
        return;
    if (is(a, n, "MULTI"))
        *enter |= TP__REDIS_MULTI;
    else if (is(a, n, "EXEC") || is(a, n, "DISCARD"))
        *leave |= TP__REDIS_MULTI | TP__REDIS_WATCH; /* even an aborted EXEC ends both */
    else if (is(a, n, "WATCH"))
        *enter |= TP__REDIS_WATCH;
    else if (is(a, n, "UNWATCH"))
        *leave |= TP__REDIS_WATCH;
    else if (is(a, n, "SUBSCRIBE") || is(a, n, "PSUBSCRIBE") || is(a, n, "SSUBSCRIBE"))
        *enter |= TP__REDIS_SUBSCRIBED;
    else if (is(a, n, "MONITOR"))
        *enter |= TP__REDIS_MONITOR;
    else if (is(a, n, "SELECT") || is(a, n, "AUTH") || is(a, n, "HELLO") ||
             is(a, n, "RESET") || is(a, n, "READONLY") || is(a, n, "READWRITE") ||
             is(a, n, "SWAPDB") || is(a, n, "QUIT"))
        *enter |= TP__REDIS_SESSION;
    else if (is(a, n, "CLIENT") && !(resp_arg(cmd, len, 1, &s, &sn) && client_readonly(s, sn)))
        *enter |= TP__REDIS_SESSION;
}

const char *tp__redis_unclean(const tp_redis_lease *l)
{
    if (l->state & TP__REDIS_MULTI)
        return "MULTI without EXEC or DISCARD";
    if (l->state & TP__REDIS_WATCH)
        return "WATCH without EXEC, DISCARD or UNWATCH";
    if (l->state & TP__REDIS_SUBSCRIBED)
        return "subscribed";
    if (l->state & TP__REDIS_MONITOR)
        return "in MONITOR";
    if (l->state & TP__REDIS_SESSION)
        return "session state changed (SELECT, AUTH, CLIENT ...)";
    if (l->pending > 0)
        return "replies pending";
    const redisContext *c = l->c;
    if (c->obuf != NULL && sdslen(c->obuf) > 0)
        return "commands not sent";
    if (c->reader != NULL && (c->reader->pos < c->reader->len || c->reader->ridx >= 0))
        return "reply bytes not read";
    return NULL;
}

static tp_err usable(tp_redis_lease *l, tp_errinfo *err)
{
    if (l->c->err != 0)
        return tp_errinfo_set(err, TP_ESTATE, 0, "the connection is broken: %s", l->c->errstr);
    return TP_OK;
}

/* Reads one reply; on failure the context carries the error (the lease is broken). */
static tp_err read_reply(tp_redis_lease *l, redisReply **reply, tp_errinfo *err)
{
    void *r = NULL;
    if (redisGetReply(l->c, &r) != REDIS_OK || r == NULL) {
        int e = errno;
        if (r != NULL)
            freeReplyObject(r);
        return tp__redis_ctx_error(l->c, e, "Redis command", err);
    }
    *reply = r;
    return TP_OK;
}

/* Queues a formatted command (freed here) and tracks the states it enters or leaves. */
static tp_err append(tp_redis_lease *l, char *cmd, long long len, tp_errinfo *err)
{
    if (len == -2 || (len < 0 && cmd == NULL && errno == ENOMEM))
        return tp_errinfo_set(err, TP_ENOMEM, 0, "formatting a Redis command");
    if (len <= 0)
        return tp_errinfo_set(err, TP_EINVAL, 0, "bad Redis command format");
    unsigned enter = 0, leave = 0;
    tp__redis_classify(cmd, (size_t)len, &enter, &leave);
    int ok = redisAppendFormattedCommand(l->c, cmd, (size_t)len);
    redisFreeCommand(cmd);
    if (ok != REDIS_OK)
        return tp_errinfo_set(err, TP_ENOMEM, 0, "queueing a Redis command");
    /* Entered whatever the reply says: a refused SELECT or SUBSCRIBE costs a reconnect
     * at worst, a wrongly trusted one would cost isolation. */
    l->state = (l->state & ~leave) | enter;
    return TP_OK;
}

static tp_err run(tp_redis_lease *l, char *cmd, long long len, redisReply **reply,
                  tp_errinfo *err)
{
    tp_err rc = append(l, cmd, len, err);
    return rc == TP_OK ? read_reply(l, reply, err) : rc;
}

static tp_err precheck(tp_redis_lease *l, redisReply **reply, tp_errinfo *err)
{
    if (l == NULL || reply == NULL)
        return tp_errinfo_set(err, TP_EINVAL, 0, "lease and reply are required");
    *reply = NULL;
    if (l->pending > 0)
        return tp_errinfo_set(err, TP_ESTATE, 0, "%lld pipelined replies are pending: read "
                                                 "them with tp_redis_get_reply() first",
                              (long long)l->pending);
    return usable(l, err);
}

tp_err tp_redis_vcommand(tp_redis_lease *l, redisReply **reply, tp_errinfo *err,
                         const char *fmt, va_list ap)
{
    tp_err rc = precheck(l, reply, err);
    if (rc != TP_OK)
        return rc;
    char *cmd = NULL;
    errno = 0;
    int len = redisvFormatCommand(&cmd, fmt, ap);
    return run(l, cmd, len, reply, err);
}

tp_err tp_redis_command(tp_redis_lease *l, redisReply **reply, tp_errinfo *err,
                        const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    tp_err rc = tp_redis_vcommand(l, reply, err, fmt, ap);
    va_end(ap);
    return rc;
}

tp_err tp_redis_command_argv(tp_redis_lease *l, redisReply **reply, tp_errinfo *err, int argc,
                             const char **argv, const size_t *argvlen)
{
    tp_err rc = precheck(l, reply, err);
    if (rc != TP_OK)
        return rc;
    if (argc <= 0 || argv == NULL)
        return tp_errinfo_set(err, TP_EINVAL, 0, "argc: a command needs at least its name");
    char *cmd = NULL;
    errno = 0;
    long long len = redisFormatCommandArgv(&cmd, argc, argv, argvlen);
    return run(l, cmd, len, reply, err);
}

tp_err tp_redis_append(tp_redis_lease *l, tp_errinfo *err, const char *fmt, ...)
{
    if (l == NULL)
        return tp_errinfo_set(err, TP_EINVAL, 0, "lease is required");
    tp_err rc = usable(l, err);
    if (rc != TP_OK)
        return rc;
    char *cmd = NULL;
    va_list ap;
    va_start(ap, fmt);
    errno = 0;
    int len = redisvFormatCommand(&cmd, fmt, ap);
    va_end(ap);
    rc = append(l, cmd, len, err);
    if (rc == TP_OK)
        l->pending++;
    return rc;
}

tp_err tp_redis_get_reply(tp_redis_lease *l, redisReply **reply, tp_errinfo *err)
{
    if (l == NULL || reply == NULL)
        return tp_errinfo_set(err, TP_EINVAL, 0, "lease and reply are required");
    *reply = NULL;
    if (l->pending <= 0)
        return tp_errinfo_set(err, TP_ESTATE, 0, "no pipelined reply is pending");
    tp_err rc = usable(l, err);
    if (rc == TP_OK)
        rc = read_reply(l, reply, err);
    if (rc == TP_OK)
        l->pending--;
    return rc;
}

bool tp_redis_reply_is_error(const struct redisReply *reply)
{
    return reply != NULL && reply->type == REDIS_REPLY_ERROR;
}

const char *tp_redis_reply_str(const struct redisReply *reply, size_t *len)
{
    bool text = reply != NULL &&
                (reply->type == REDIS_REPLY_STRING || reply->type == REDIS_REPLY_STATUS ||
                 reply->type == REDIS_REPLY_ERROR);
    if (len != NULL)
        *len = text ? reply->len : 0;
    return text ? reply->str : NULL;
}

void tp_redis_reply_free(struct redisReply *reply)
{
    if (reply != NULL)
        freeReplyObject(reply);
}

#else
typedef int tp__redis_command_unused;
#endif
