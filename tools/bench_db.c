/* bench_db.c: `tidepool bench postgres://...` and `tidepool bench redis://...`: one
 * thread per concurrent client, each running acquire, one statement (--query, default
 * "SELECT 1") or command (--command, default PING), release, back to back, through the
 * PostgreSQL or Redis pool. Same live line, summary and --json as for HTTP, so
 * shared/bench/compare-db.sh runs it beside pgbench and redis-benchmark. */
#include <stdlib.h>
#include <string.h>

#include "tidepool/pg.h"
#include "tidepool/redis.h"

#include "bench.h"

#define MAX_ARGS 32

static bool is_pg(const char *url)
{
    return strncmp(url, "postgres://", 11) == 0 || strncmp(url, "postgresql://", 13) == 0;
}

static bool is_redis(const char *url)
{
    return strncmp(url, "redis://", 8) == 0;
}

bool bench_db_url(const char *url)
{
    return url != NULL && (is_pg(url) || is_redis(url));
}

tp_err bench_db_open(const bench_cfg *cfg, int64_t max_per_key, const tp_permit_hook *permits,
                     void **db, tp_pool **pool, tp_errinfo *err)
{
    tp_pool_options po;
    tp_pool_options_init(&po);
    po.max_per_key = max_per_key;
    po.permits = permits;
    if (cfg->idle_timeout_s >= 0)
        po.idle_timeout = (int64_t)(cfg->idle_timeout_s * 1e9);
    if (cfg->max_idle_per_host >= 0)
        po.max_idle_per_key = cfg->max_idle_per_host;
    if (is_pg(cfg->url)) {
        tp_pg_pool *pp = NULL;
        tp_err rc = tp_pg_pool_create_uri(cfg->url, &po, &pp, err);
        if (rc == TP_OK) {
            *db = pp;
            *pool = tp_pg_pool_tp(pp);
        }
        return rc;
    }
    tp_redis_pool *rp = NULL;
    tp_err rc = tp_redis_pool_create_url(cfg->url, &po, &rp, err);
    if (rc == TP_OK) {
        *db = rp;
        *pool = tp_redis_pool_tp(rp);
    }
    return rc;
}

void bench_db_close(const bench_cfg *cfg, void *db)
{
    if (is_pg(cfg->url))
        tp_pg_pool_destroy(db);
    else
        tp_redis_pool_destroy(db);
}

/* One PostgreSQL request: acquire, the statement, release. */
static tp_err pg_once(worker *w, const char *sql)
{
    tp_conn *lease = NULL;
    tp_errinfo e;
    tp_err rc = tp_pg_acquire(w->db, NULL, TP_DURATION_DEFAULT, 0, &lease, &e);
    if (rc != TP_OK)
        return rc;
    rc = tp_pg_query_simple(lease, sql, &e);
    tp_pg_release(lease, 0); /* a broken connection is marked by the query itself */
    return rc;
}

/* One Redis request: acquire, the command, release. An error reply counts as an error. */
static tp_err redis_once(worker *w, int argc, const char **argv, const size_t *lens)
{
    tp_redis_lease *l = NULL;
    tp_errinfo e;
    tp_err rc = tp_redis_acquire(w->db, TP_DURATION_DEFAULT, &l, &e);
    if (rc != TP_OK)
        return rc;
    struct redisReply *reply = NULL;
    rc = tp_redis_command_argv(l, &reply, &e, argc, argv, lens);
    bool bad = rc == TP_OK && tp_redis_reply_is_error(reply);
    tp_redis_reply_free(reply);
    tp_redis_release(l, 0);
    return bad ? TP_EIO : rc;
}

void *bench_db_worker(void *arg)
{
    worker *w = arg;
    const bench_cfg *cfg = w->cfg;
    bool pg = is_pg(cfg->url);
    /* --command is split on spaces into the command's arguments. */
    char cmd[512];
    const char *argv[MAX_ARGS];
    size_t lens[MAX_ARGS];
    int argc = 0;
    snprintf(cmd, sizeof cmd, "%s", cfg->command != NULL ? cfg->command : "PING");
    for (char *save = NULL, *t = strtok_r(cmd, " ", &save); t != NULL && argc < MAX_ARGS;
         t = strtok_r(NULL, " ", &save)) {
        argv[argc] = t;
        lens[argc++] = strlen(t);
    }
    const char *sql = cfg->query != NULL ? cfg->query : "SELECT 1";
    while (bench_may_issue(cfg)) {
        int64_t t0 = tp_clock_now();
        tp_err rc = pg ? pg_once(w, sql) : redis_once(w, argc, argv, lens);
        bench_record(w, rc, (tp_clock_now() - t0) / 1000, rc == TP_OK);
    }
    atomic_fetch_add(&bench_finished, 1);
    return NULL;
}
