/* chaos_run.h: what the files of `tidepool chaos run` share: the scenario as read from
 * its JSON (chaos_scenario.c), the pool a scenario drives and the request that carries
 * an id (chaos_target.c), and the verdict lines with the server's request log
 * (chaos_verdict.c). cmd_chaos_run.c runs the load and decides the verdicts. */
#ifndef TP_TOOLS_CHAOS_RUN_H
#define TP_TOOLS_CHAOS_RUN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tidepool/tidepool.h"

#define CHAOS_MAX_WORKERS 256
#define CHAOS_MAX_RESTARTS 8
#define CHAOS_NERR 64

typedef enum chaos_kind { K_HTTP, K_ENGINE, K_PG, K_REDIS } chaos_kind;

typedef struct chaos_scenario {
    char name[128];
    chaos_kind k;
    char url[512];     /* the real server's URL; requests go to the proxy */
    char proxied[600]; /* the same through the proxy */
    char host[256];    /* the real server */
    uint16_t port;
    bool post_echo; /* POST the id, the body must come back */
    int concurrency;
    int64_t duration;
    tp_chaos_fault fault; /* in force from the start */
    tp_chaos_step *steps; /* the proxy's part of the schedule */
    size_t nsteps;
    /* {"at": ..., "restart": true}: the run's part of the schedule, the server itself
       restarted by the command given with --restart-cmd */
    int64_t restart_at[CHAOS_MAX_RESTARTS];
    size_t nrestarts;
    int64_t header_timeout, request_timeout;
    int64_t connect_timeout; /* the pool's; 0: its default */
    int64_t max_per_key;
    int64_t recovery_within;
    int64_t max_opens_after_heal; /* -1: twice the concurrency */
    bool expect_breaker;          /* the outage is long enough to open the breaker */
    unsigned allowed;             /* bit per -tp_err of the failures the faults explain */
} chaos_scenario;

/* chaos_scenario_load: reads path into sc (url_override and client_override replace
 * the scenario's when not NULL). 0, or 2 with the reason on stderr; sc->steps is the
 * caller's to tp_free() after a 0. Without jansson, always 2. */
int chaos_scenario_load(const char *path, const char *url_override, const char *client_override,
                        chaos_scenario *sc);

/* ---- the pool a scenario drives (chaos_target.c) ---------------------------------- */

typedef struct chaos_target {
    chaos_kind k;
    tp_http_client *http;
    tp_pg_pool *pg;
    tp_redis_pool *rd;
} chaos_target;

/* chaos_target_new: a pool of sc's kind for url (the real server's or the proxied one);
 * name, when not NULL, is given to every connection where the server shows it
 * (PostgreSQL's application_name, Redis's client name): [A-Za-z0-9-] only. */
tp_err chaos_target_new(const chaos_scenario *sc, const char *url, const char *name,
                        chaos_target *t, tp_errinfo *err);
tp_pool *chaos_target_pool(const chaos_target *t);
void chaos_target_free(chaos_target *t);

/* chaos_request: one request for id (of [a-z0-9-]) to url through t (eng: the calling
 * worker's engine for K_ENGINE). *right tells whether a TP_OK answer was this
 * request's own. */
tp_err chaos_request(const chaos_scenario *sc, chaos_target *t, tp_http_engine *eng,
                     const char *url, const char *id, bool *right);

/* chaos_server_conns: how many connections named name the server holds, asked through
 * direct (a target straight to the real server): PostgreSQL's pg_stat_activity, Redis's
 * CLIENT LIST. False when the server cannot be asked (HTTP, or it is down). */
bool chaos_server_conns(chaos_target *direct, const char *name, long *n);

/* chaos_rewrite_url: url with its host:port replaced by 127.0.0.1:port (userinfo, path
 * and query kept); *host and *hport receive what it named (dflt when it names no
 * port). */
bool chaos_rewrite_url(const char *url, uint16_t port, char *out, size_t cap, char *host,
                       size_t hcap, uint16_t *hport, uint16_t dflt);

/* ---- verdict lines and the server's log (chaos_verdict.c) ------------------------- */

typedef struct chaos_verdicts {
    bool json, all;
    int n;
    char buf[8192]; /* the JSON array's members */
    size_t len;
} chaos_verdicts;

/* chaos_verdict: one verdict, printed at once (text) or kept for the JSON line. */
void chaos_verdict(chaos_verdicts *v, const char *name, bool pass, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* chaos_server_log: what a server's log (one request URI a line) shows of the ids that
 * start with prefix: how many it received, and how many of those more than once. False
 * if the log cannot be read. */
bool chaos_server_log(const char *log, const char *prefix, uint64_t *seen, uint64_t *twice);

#endif
