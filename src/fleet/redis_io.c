/* redis_io.c: the budget's round trips to Redis: connecting (AUTH, SELECT, SCRIPT LOAD),
 * running a script by its digest (and loading it again when a restarted Redis forgot
 * it), and reading the replies. Blocking, bounded by redis_timeout; only the fleet's own
 * thread (and create / destroy / status) call these. */
#ifdef TIDEPOOL_HAVE_HIREDIS

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "fleet_internal.h"
#include "redis/redis_internal.h"

tp_err tp__fleet_parse_url(tp__fleet_redis *r, const char *url, const char *name, tp_errinfo *err)
{
    tp_redis_target *t = NULL;
    tp_err rc = tp__redis_target_parse(url, &t, err);
    if (rc != TP_OK)
        return rc;
    snprintf(r->host, sizeof r->host, "%s", t->host);
    r->port = t->port;
    r->db = t->db;
    snprintf(r->user, sizeof r->user, "%s", t->user);
    snprintf(r->password, sizeof r->password, "%s", t->password);
    r->has_password = t->has_password;
    tp__redis_target_free(t);
    static const char *const suffix[6] = {"meta", "held", "lease", "demand", "seen", "lapsed"};
    for (int i = 0; i < 6; i++)
        snprintf(r->keys[i], sizeof r->keys[i], "{tp:fleet:%s}:%s", name, suffix[i]);
    return TP_OK;
}

void tp__fleet_disconnect(tp__fleet_redis *r)
{
    if (r->c != NULL)
        redisFree(r->c);
    r->c = NULL;
}

static tp_err lost(tp__fleet_redis *r, const char *doing, tp_errinfo *err)
{
    tp_err rc = tp_errinfo_set(err, TP_EUNAVAIL, r->c != NULL ? r->c->err : 0,
                               "Redis at %s:%d: %s: %s", r->host, r->port, doing,
                               r->c != NULL && r->c->errstr[0] ? r->c->errstr : "no reply");
    tp__fleet_disconnect(r);
    return rc;
}

/* One command whose reply must not be an error. */
static tp_err command(tp__fleet_redis *r, const char *doing, int argc, const char **argv,
                      redisReply **out, tp_errinfo *err)
{
    redisReply *rep = redisCommandArgv(r->c, argc, argv, NULL);
    if (rep == NULL)
        return lost(r, doing, err);
    if (rep->type == REDIS_REPLY_ERROR) {
        tp_err rc = tp_errinfo_set(err, TP_EUNAVAIL, 0, "Redis at %s:%d: %s: %s", r->host, r->port,
                                   doing, rep->str);
        freeReplyObject(rep);
        return rc;
    }
    if (out != NULL)
        *out = rep;
    else
        freeReplyObject(rep);
    return TP_OK;
}

static tp_err load(tp__fleet_redis *r, int i, tp_errinfo *err)
{
    const char *av[3] = {"SCRIPT", "LOAD", tp__fleet_script(i)};
    redisReply *rep = NULL;
    tp_err rc = command(r, "SCRIPT LOAD", 3, av, &rep, err);
    if (rc != TP_OK)
        return rc;
    if (rep->type == REDIS_REPLY_STRING && rep->len == 40)
        memcpy(r->sha[i], rep->str, 41);
    else
        rc = tp_errinfo_set(err, TP_EUNAVAIL, 0, "Redis at %s:%d: SCRIPT LOAD: no digest", r->host,
                            r->port);
    freeReplyObject(rep);
    return rc;
}

tp_err tp__fleet_connect(tp__fleet_redis *r, tp_errinfo *err)
{
    tp__fleet_disconnect(r);
    struct timeval tv = {.tv_sec = r->timeout / TP_NSEC_PER_SEC,
                         .tv_usec = (r->timeout % TP_NSEC_PER_SEC) / 1000};
    r->c = redisConnectWithTimeout(r->host, r->port, tv);
    if (r->c == NULL)
        return tp_errinfo_set(err, TP_ENOMEM, 0, "Redis at %s:%d: no memory", r->host, r->port);
    if (r->c->err)
        return lost(r, "connect", err);
    if (redisSetTimeout(r->c, tv) != REDIS_OK)
        return lost(r, "setting the timeout", err);
    tp_err rc = TP_OK;
    if (r->has_password) {
        const char *av[3] = {"AUTH", r->user, r->password};
        rc = r->user[0] != '\0' ? command(r, "AUTH", 3, av, NULL, err)
                                : (av[1] = r->password, command(r, "AUTH", 2, av, NULL, err));
    }
    if (rc == TP_OK && r->db != 0) {
        char db[24];
        snprintf(db, sizeof db, "%ld", r->db);
        const char *av[2] = {"SELECT", db};
        rc = command(r, "SELECT", 2, av, NULL, err);
    }
    for (int i = 0; rc == TP_OK && i < TP__FLEET_SCRIPTS; i++)
        rc = load(r, i, err);
    if (rc != TP_OK)
        tp__fleet_disconnect(r);
    return rc;
}

tp_err tp__fleet_eval(tp__fleet_redis *r, int i, int argc, const char **argv, redisReply **out,
                      tp_errinfo *err)
{
    *out = NULL;
    if (r->c == NULL)
        return tp_errinfo_set(err, TP_EUNAVAIL, 0, "Redis at %s:%d: not connected", r->host,
                              r->port);
    const char *av[20];
    int n = 0;
    av[n++] = "EVALSHA";
    av[n++] = r->sha[i];
    av[n++] = "6";
    for (int k = 0; k < 6; k++)
        av[n++] = r->keys[k];
    for (int k = 0; k < argc && n < 20; k++)
        av[n++] = argv[k];
    for (int attempt = 0;; attempt++) {
        redisReply *rep = redisCommandArgv(r->c, n, av, NULL);
        if (rep == NULL)
            return lost(r, "a budget script", err);
        if (rep->type == REDIS_REPLY_ERROR && strncmp(rep->str, "NOSCRIPT", 8) == 0 &&
            attempt == 0) {
            freeReplyObject(rep); /* a restarted or flushed Redis: load it again */
            tp_err rc = load(r, i, err);
            if (rc != TP_OK)
                return rc;
            continue;
        }
        if (rep->type != REDIS_REPLY_ARRAY) {
            tp_err rc =
                tp_errinfo_set(err, TP_EPROTO, 0, "Redis at %s:%d: a budget script: %s", r->host,
                               r->port, rep->type == REDIS_REPLY_ERROR ? rep->str : "not an array");
            freeReplyObject(rep);
            return rc;
        }
        *out = rep;
        return TP_OK;
    }
}

int64_t tp__fleet_int(const redisReply *a, size_t k)
{
    if (a == NULL || k >= a->elements)
        return 0;
    const redisReply *e = a->element[k];
    if (e->type == REDIS_REPLY_INTEGER)
        return e->integer;
    if (e->type == REDIS_REPLY_STRING)
        return strtoll(e->str, NULL, 10);
    return 0;
}

#endif
