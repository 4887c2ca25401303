/* tests/redis_test_env.h: the Redis integration tests' fixture: a throwaway
 * redis-server from scripts/redis-test.sh in a fresh temporary directory, its port and
 * the tenant_b password from DIR/env, restart/stop, and a pool factory. Header-only
 * (static inline) so that it is compiled only into the tests that include it. */
#ifndef TP_REDIS_TEST_ENV_H
#define TP_REDIS_TEST_ENV_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <hiredis/hiredis.h>
#include <tidepool/redis.h>

typedef struct rt_env {
    char dir[128];
    int port;
    char tenant_b_password[512];
    int maxclients;
} rt_env;

static inline int rt_script(const rt_env *e, const char *cmd)
{
    char line[512];
    snprintf(line, sizeof line, "%s/scripts/redis-test.sh %s %s >/dev/null", TIDEPOOL_SOURCE_DIR,
             cmd, e->dir);
    int st = system(line);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 1;
}

/* Starts the server; returns 0, or the exit status to leave with (77: skipped). */
static inline int rt_start(rt_env *e)
{
    memset(e, 0, sizeof *e);
    snprintf(e->dir, sizeof e->dir, "/tmp/tp-redis-test-XXXXXX");
    if (mkdtemp(e->dir) == NULL)
        return 1;
    int rc = rt_script(e, "start");
    if (rc != 0) {
        fprintf(stderr, "redis-test.sh start: exit %d%s\n", rc, rc == 77 ? " (skipped)" : "");
        return rc == 77 ? 77 : 1;
    }
    char path[256], line[512];
    snprintf(path, sizeof path, "%s/env", e->dir);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 1;
    while (fgets(line, sizeof line, f) != NULL) {
        line[strcspn(line, "\n")] = '\0';
        if (strncmp(line, "REDIS_PORT=", 11) == 0)
            e->port = atoi(line + 11);
        else if (strncmp(line, "REDIS_TENANT_B_PASSWORD=", 24) == 0)
            snprintf(e->tenant_b_password, sizeof e->tenant_b_password, "%s", line + 24);
        else if (strncmp(line, "REDIS_MAXCLIENTS=", 17) == 0)
            e->maxclients = atoi(line + 17);
    }
    fclose(f);
    return e->port > 0 ? 0 : 1;
}

static inline void rt_stop(rt_env *e)
{
    (void)rt_script(e, "stop");
    char line[256];
    snprintf(line, sizeof line, "rm -rf %s", e->dir);
    (void)system(line);
}

/* "redis://" + userinfo + "127.0.0.1:port/db" into buf. */
static inline const char *rt_url(const rt_env *e, char *buf, size_t cap, const char *userinfo,
                                 int db)
{
    snprintf(buf, cap, "redis://%s%s127.0.0.1:%d/%d", userinfo ? userinfo : "",
             userinfo ? "@" : "", e->port, db);
    return buf;
}

/* What `tidepool bench redis://` does: acquire (up to timeout), PING, release. TP_OK,
 * the error, or TP_EPROTO for a reply other than PONG. No cmocka: any thread. */
static inline tp_err rt_ping_through(tp_redis_pool *rp, int64_t timeout)
{
    tp_redis_lease *l = NULL;
    tp_err rc = tp_redis_acquire(rp, timeout, &l, NULL);
    if (rc != TP_OK)
        return rc;
    redisReply *r = NULL;
    rc = tp_redis_command(l, &r, NULL, "PING");
    if (rc == TP_OK && (r->type != REDIS_REPLY_STATUS || strcmp(r->str, "PONG") != 0))
        rc = TP_EPROTO;
    tp_redis_reply_free(r);
    tp_redis_release(l, 0);
    return rc;
}

/* A hiredis reply's integer, or -1. */
static inline long long rt_int(const redisReply *r)
{
    return r != NULL && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
}

#endif
