/* chaos_target.c: the pool a scenario of `tidepool chaos run` drives (the HTTP client,
 * used blocking or through an engine, a PostgreSQL or a Redis pool), the one request
 * that carries an id and tells whether its answer was its own, and the server's own
 * count of the run's connections. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chaos_run.h"

tp_err chaos_target_new(const chaos_scenario *sc, const char *url, const char *name,
                        chaos_target *t, tp_errinfo *err)
{
    memset(t, 0, sizeof *t);
    t->k = sc->k;
    tp_pool_options po;
    tp_pool_options_init(&po);
    po.max_per_key = sc->max_per_key;
    if (sc->connect_timeout > 0)
        po.connect_timeout = sc->connect_timeout;
    if (t->k == K_PG) {
        tp_pg_options o;
        tp_pg_options_init(&o);
        o.pool = po;
        o.query_timeout = sc->header_timeout;
        tp_err rc = tp_pg_pool_create(&o, &t->pg, err);
        char named[700];
        if (name != NULL) { /* libpq reads its options from the URI's query */
            snprintf(named, sizeof named, "%s%capplication_name=%s", url,
                     strchr(url, '?') != NULL ? '&' : '?', name);
            url = named;
        }
        tp_pg_target *tg;
        if (rc == TP_OK && (rc = tp_pg_pool_add(t->pg, url, &tg, err)) != TP_OK)
            tp_pg_pool_destroy(t->pg);
        return rc;
    }
    if (t->k == K_REDIS) {
        tp_redis_options o;
        tp_redis_options_init(&o);
        o.url = url;
        o.pool = po;
        o.command_timeout = sc->header_timeout;
        o.client_name = name;
        return tp_redis_pool_create(&o, &t->rd, err);
    }
    tp_http_client_options co;
    tp_http_client_options_init(&co);
    co.response_header_timeout = sc->header_timeout;
    co.request_timeout = sc->request_timeout;
    co.pool.max_per_key = sc->max_per_key; /* the client's own defaults otherwise */
    if (sc->connect_timeout > 0)
        co.pool.connect_timeout = sc->connect_timeout;
    return tp_http_client_create(&co, &t->http, err);
}

tp_pool *chaos_target_pool(const chaos_target *t)
{
    return t->k == K_PG      ? tp_pg_pool_tp(t->pg)
           : t->k == K_REDIS ? tp_redis_pool_tp(t->rd)
                             : tp_http_client_pool(t->http);
}

void chaos_target_free(chaos_target *t)
{
    tp_pg_pool_destroy(t->pg);
    tp_redis_pool_destroy(t->rd);
    tp_http_client_destroy(t->http);
}

typedef struct engine_done {
    bool done;
    tp_err rc;
    tp_http_response *resp;
} engine_done;

static void on_engine_done(void *ud, tp_err rc, tp_http_response *resp, const tp_errinfo *err)
{
    (void)err;
    engine_done *d = ud;
    d->rc = rc;
    d->resp = resp;
    d->done = true;
}

tp_err chaos_request(const chaos_scenario *sc, chaos_target *t, tp_http_engine *eng,
                     const char *url, const char *id, bool *right)
{
    *right = false;
    size_t idlen = strlen(id);
    if (t->k == K_PG) {
        char sql[128];
        snprintf(sql, sizeof sql, "SELECT '%s'", id); /* ids are [a-z0-9-]: no quoting */
        struct pg_result *res = NULL;
        tp_err rc = tp_pg_exec(t->pg, NULL, sql, &res, NULL);
        const char *v = tp_pg_result_value(res, 0, 0);
        *right = rc == TP_OK && v != NULL && strcmp(v, id) == 0;
        tp_pg_result_free(res);
        return rc;
    }
    if (t->k == K_REDIS) {
        tp_redis_lease *l = NULL;
        tp_err rc = tp_redis_acquire(t->rd, TP_DURATION_DEFAULT, &l, NULL);
        if (rc != TP_OK)
            return rc;
        struct redisReply *reply = NULL;
        rc = tp_redis_command(l, &reply, NULL, "ECHO %s", id);
        size_t len;
        const char *v = tp_redis_reply_str(reply, &len);
        *right = rc == TP_OK && v != NULL && len == idlen && memcmp(v, id, len) == 0;
        tp_redis_reply_free(reply);
        tp_redis_release(l, 0);
        return rc;
    }
    /* The id in the query too: a server's access log then shows what it received. */
    char id_url[700];
    snprintf(id_url, sizeof id_url, "%s%cid=%s", url, strchr(url, '?') != NULL ? '&' : '?', id);
    tp_http_request req = {.timeout = TP_DURATION_DEFAULT, .url = id_url, .method = "GET"};
    if (sc->post_echo) {
        req.method = "POST";
        req.body = id;
        req.body_len = idlen;
    }
    tp_http_response *resp = NULL;
    tp_err rc;
    if (t->k == K_ENGINE) {
        engine_done d = {0};
        rc = tp_http_engine_submit(eng, &req, on_engine_done, &d, NULL, NULL);
        while (rc == TP_OK && !d.done)
            (void)tp_http_engine_poll(eng, 100 * TP_NSEC_PER_MSEC);
        if (rc == TP_OK)
            rc = d.rc;
        resp = d.resp;
    } else {
        rc = tp_http_client_do(t->http, &req, &resp, NULL);
    }
    if (rc == TP_OK) {
        int st = tp_http_response_status(resp);
        size_t len;
        const char *body = tp_http_response_body(resp, &len);
        *right = st >= 200 && st < 300 &&
                 (!sc->post_echo || (len == idlen && memcmp(body, id, len) == 0));
    }
    tp_http_response_free(resp);
    return rc;
}

bool chaos_rewrite_url(const char *url, uint16_t port, char *out, size_t cap, char *host,
                       size_t hcap, uint16_t *hport, uint16_t dflt)
{
    const char *auth = strstr(url, "://");
    if (auth == NULL)
        return false;
    auth += 3;
    size_t alen = strcspn(auth, "/?#");
    const char *at = memchr(auth, '@', alen);
    const char *hp = at != NULL ? at + 1 : auth;
    size_t hplen = alen - (size_t)(hp - auth);
    const char *colon = memchr(hp, ':', hplen);
    size_t hlen = colon != NULL ? (size_t)(colon - hp) : hplen;
    if (hlen == 0 || hlen >= hcap)
        return false;
    memcpy(host, hp, hlen);
    host[hlen] = '\0';
    *hport = colon != NULL ? (uint16_t)atoi(colon + 1) : dflt;
    int n =
        snprintf(out, cap, "%.*s127.0.0.1:%u%s", (int)(hp - url), url, (unsigned)port, auth + alen);
    return n > 0 && (size_t)n < cap;
}

bool chaos_server_conns(chaos_target *direct, const char *name, long *n)
{
    *n = 0;
    if (direct->k == K_PG) {
        char sql[160];
        snprintf(sql, sizeof sql,
                 "SELECT count(*) FROM pg_stat_activity WHERE application_name = '%s'", name);
        struct pg_result *res = NULL;
        tp_err rc = tp_pg_exec(direct->pg, NULL, sql, &res, NULL);
        const char *v = tp_pg_result_value(res, 0, 0);
        bool ok = rc == TP_OK && v != NULL;
        if (ok)
            *n = atol(v);
        tp_pg_result_free(res);
        return ok;
    }
    if (direct->k != K_REDIS)
        return false;
    tp_redis_lease *l = NULL;
    if (tp_redis_acquire(direct->rd, TP_NSEC_PER_SEC, &l, NULL) != TP_OK)
        return false;
    struct redisReply *reply = NULL;
    tp_err rc = tp_redis_command(l, &reply, NULL, "CLIENT LIST TYPE normal");
    size_t len;
    const char *v = tp_redis_reply_str(reply, &len);
    char needle[80];
    snprintf(needle, sizeof needle, " name=%s ", name);
    for (const char *p = v; rc == TP_OK && p != NULL && (p = strstr(p, needle)) != NULL; p++)
        (*n)++;
    tp_redis_reply_free(reply);
    tp_redis_release(l, rc == TP_OK ? 0 : TP_RELEASE_BROKEN);
    return rc == TP_OK && v != NULL;
}
