/* redis_internal.h: what the Redis connector's files share (internal, never installed):
 * the parsed target, the pooled connection with its tracked session state, the pool
 * wrapper, and the functions that cross file boundaries. Only with hiredis. */
#ifndef TP_REDIS_INTERNAL_H
#define TP_REDIS_INTERNAL_H

#ifdef TIDEPOOL_HAVE_HIREDIS

#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/base.h"
#include "base/fork.h"
#include "base/sync.h"
#include "tidepool/redis.h"

#define TP__REDIS_HOST_MAX 256
#define TP__REDIS_CRED_MAX 512
#define TP__REDIS_KEY_MAX 1024

/* One destination. Immutable after tp__redis_target_parse(), except next (under the
 * pool's targets lock). The password lives only here, and is wiped when freed. */
struct tp_redis_target {
    char host[TP__REDIS_HOST_MAX];
    uint16_t port;
    long db;
    char user[TP__REDIS_CRED_MAX];     /* "" = none (AUTH with the password only) */
    char password[TP__REDIS_CRED_MAX]; /* "" = none */
    bool has_password;
    char key[TP__REDIS_KEY_MAX]; /* the pool key: no password, only its digest */
    size_t keylen;
    struct tp_redis_target *next;
};

/* Session states that forbid reuse (see the release rules in redis.h). */
#define TP__REDIS_MULTI 0x1u
#define TP__REDIS_WATCH 0x2u
#define TP__REDIS_SUBSCRIBED 0x4u
#define TP__REDIS_MONITOR 0x8u
#define TP__REDIS_SESSION 0x10u /* SELECT, AUTH, CLIENT REPLY, ... */

/* The pooled connection; a lease is the same object while leased (no allocation per
 * acquire): a connection has at most one holder. */
struct tp_redis_lease {
    redisContext *c;
    tp_conn *conn;       /* the pool lease while leased */
    unsigned state;      /* TP__REDIS_* */
    int64_t pending;     /* replies queued with tp_redis_append() and not yet read */
    int64_t command_timeout;
};

#define TP__REDIS_NAME_MAX 64

struct tp_redis_pool {
    tp_pool *pool;
    int64_t command_timeout;
    char client_name[TP__REDIS_NAME_MAX + 1]; /* "" = none */
    tp__mutex mu; /* guards the target list */
    tp__fork_guard fork_guard; /* mu, locked around fork() */
    tp_redis_target *targets;
    tp_redis_target *def;
};

/* tp__redis_target_parse: parses url into a new target (calloc'd) with its key.
 * Errors (never quoting the password): TP_EINVAL "url: ...", TP_ENOMEM, TP_ESTATE. */
tp_err tp__redis_target_parse(const char *url, tp_redis_target **out, tp_errinfo *err);

/* tp__redis_target_free: wipes the credentials and frees t (NULL is a no-op). */
void tp__redis_target_free(tp_redis_target *t);

/* tp__redis_connector: the connector for rp (ctx = rp). */
tp_connector tp__redis_connector(tp_redis_pool *rp);

/* tp__redis_find_target: the target of rp whose key is key, or NULL. Thread-safe. */
tp_redis_target *tp__redis_find_target(tp_redis_pool *rp, const void *key, size_t keylen);

/* tp__redis_ctx_error: maps the context's error (c->err, c->errstr, and e, the errno
 * saved right after the failing call) to a tp_err and fills err; doing names what failed
 * ("PING", "reading the reply"). A socket timeout becomes TP_EREQTIMEDOUT. */
tp_err tp__redis_ctx_error(const redisContext *c, int e, const char *doing, tp_errinfo *err);

/* tp__redis_set_timeout: sets the context's socket send/receive timeouts to d ns
 * (TP_DURATION_INFINITE: none). */
tp_err tp__redis_set_timeout(redisContext *c, int64_t d, tp_errinfo *err);

/* tp__redis_classify: the session states a formatted command (RESP array in cmd, len
 * bytes) enters or leaves: sets bits in *enter and *leave. */
void tp__redis_classify(const char *cmd, size_t len, unsigned *enter, unsigned *leave);

/* tp__redis_unclean: why the connection must not be reused as is, or NULL if clean:
 * tracked states, pending replies, unflushed output or unread input. */
const char *tp__redis_unclean(const tp_redis_lease *l);

#endif /* TIDEPOOL_HAVE_HIREDIS */
#endif
