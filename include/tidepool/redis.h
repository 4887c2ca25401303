/* tidepool/redis.h: pooled Redis connections (hiredis redisContext) from a tidepool pool.
 *
 * A Redis pool is created from a URL, redis://[user:password@]host:port[/db], and the
 * usual tp_pool_options. Connections are keyed by host, port, database number, user and
 * a salted SHA-256 digest of the password (never the password itself), so the key is safe
 * to show in metrics, traces and logs, and a connection authenticated for one user or
 * database is never handed to a lease for another. More targets (other databases, other
 * users) can be added to the same pool with tp_redis_target_add().
 *
 * Open: TCP connect bounded by the pool's connect deadline (non-blocking connect), then
 * AUTH (user and password, or password only) and SELECT db; a PING when neither is needed,
 * so that a refusal such as "max number of clients reached" is seen at open, not by the
 * first command of a lease.
 *
 * Release rules. A connection goes back to the pool only in a clean session. It is
 * closed instead (counted as closes[reset_failed]) when, at release:
 *   - a MULTI was issued through the wrapper without EXEC or DISCARD;
 *   - a WATCH without EXEC, DISCARD or UNWATCH;
 *   - it subscribed (SUBSCRIBE, PSUBSCRIBE, SSUBSCRIBE) or ran MONITOR;
 *   - it changed session state that would leak into the next lease (SELECT, AUTH, HELLO,
 *     RESET, CLIENT REPLY/TRACKING/SETNAME/..., READONLY, READWRITE);
 *   - replies are pending: commands queued with tp_redis_append() and not read with
 *     tp_redis_get_reply(), or (for raw hiredis use) bytes still in the context's output
 *     buffer or unread bytes in its reader.
 * A connection whose context has an error (c->err) is closed as broken.
 * The states above are tracked only for commands sent through tp_redis_command*() and
 * tp_redis_append*(). Code that uses the redisContext directly bypasses the tracking
 * (only pending bytes are detected): if it changes session state it must release with
 * TP_RELEASE_DISCARD.
 *
 * Strict reset: not offered. Redis's RESET (6.2+) would also drop the authenticated user
 * and the database, costing AUTH and SELECT again on every release; closing the rare
 * connection left in a special state costs less and works on every server version.
 *
 * Check before reuse: every reused connection (with the default check_after_idle 0) is
 * polled (zero timeout); anything readable or a hang-up (Redis's `timeout`, CLIENT KILL,
 * a restart) closes it (checks_failed) and the acquire moves on, so a connection the
 * server closed while it was idle never surfaces as an error.
 *
 * Server error replies (REDIS_REPLY_ERROR) are replies, not tp_err: the wrappers return
 * TP_OK with the reply. A tp_err means the command's outcome is unknown or it was not
 * sent: the context is then broken and tp_redis_release() closes it.
 *
 * Threads: the pool is thread-safe; a lease belongs to one thread at a time.
 * Without hiredis at build time every function fails with TP_ESTATE
 * "built without hiredis". */
#ifndef TIDEPOOL_REDIS_H
#define TIDEPOOL_REDIS_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "errors.h"
#include "pool.h"

#ifdef __cplusplus
extern "C" {
#endif

/* hiredis's types, declared here so that this header does not need hiredis.h. */
struct redisContext;
struct redisReply;

typedef struct tp_redis_pool tp_redis_pool;
/* One destination: host, port, db, user and credentials, owned by its pool. */
typedef struct tp_redis_target tp_redis_target;
/* A leased connection. */
typedef struct tp_redis_lease tp_redis_lease;

#define TP_REDIS_OPTIONS_VERSION 1

/* tp_redis_options: fill with tp_redis_options_init(), then set url. */
typedef struct tp_redis_options {
    unsigned version;      /* TP_REDIS_OPTIONS_VERSION */
    const char *url;       /* required: the default target; copied */
    tp_pool_options pool;  /* the pool's limits and timeouts; pool.connector is ignored
                              (the Redis connector is used) */
    int64_t command_timeout; /* bound on one command's send and reply (socket timeouts);
                                TP_DURATION_INFINITE (default): none, as hiredis. A
                                command that times out breaks its connection. */
    const char *client_name; /* NULL (default): none; else every connection sends CLIENT
                                SETNAME with it once connected, so the server's CLIENT
                                LIST tells this pool's connections from others'. 1 to 64
                                printable ASCII characters, no space; copied. */
} tp_redis_options;

/* tp_redis_options_init: defaults: tp_pool_options_init() for pool, no URL,
 * command_timeout TP_DURATION_INFINITE, no client name. */
TP_EXTERN void tp_redis_options_init(tp_redis_options *o);

/* tp_redis_pool_create: validates o (TP_EINVAL naming the field: url, command_timeout,
 * or a pool field), parses the URL (TP_EINVAL "url: ..." without the password) and
 * creates the pool. No connection is made. Errors also TP_ENOMEM, TP_ESYS, TP_ESTATE
 * (built without hiredis, or a password without OpenSSL for the digest). On failure
 * *out is NULL. */
TP_EXTERN tp_err tp_redis_pool_create(const tp_redis_options *o, tp_redis_pool **out,
                                      tp_errinfo *err) TP_WARN_UNUSED;

/* tp_redis_pool_create_url: tp_redis_pool_create() with url, command_timeout infinite and
 * pool options po (NULL: defaults). */
TP_EXTERN tp_err tp_redis_pool_create_url(const char *url, const tp_pool_options *po,
                                          tp_redis_pool **out, tp_errinfo *err) TP_WARN_UNUSED;

/* tp_redis_pool_destroy: destroys the pool and its targets (as tp_pool_destroy: leases
 * still held may be released afterwards, but targets must no longer be used). NULL is a
 * no-op. Not from a trace hook. */
TP_EXTERN void tp_redis_pool_destroy(tp_redis_pool *rp);

/* tp_redis_pool_tp: the underlying tp_pool (stats, evict, trace), owned by rp. */
TP_EXTERN tp_pool *tp_redis_pool_tp(tp_redis_pool *rp);

/* tp_redis_target_add: a target for another URL in the same pool (same limits). A URL
 * whose key matches an existing target returns that target. Owned by the pool; valid
 * until tp_redis_pool_destroy(). Errors: TP_EINVAL (url), TP_ENOMEM, TP_ESTATE.
 * Thread-safe. */
TP_EXTERN tp_err tp_redis_target_add(tp_redis_pool *rp, const char *url,
                                     tp_redis_target **out, tp_errinfo *err) TP_WARN_UNUSED;

/* tp_redis_pool_target: the default target (the options' URL). */
TP_EXTERN tp_redis_target *tp_redis_pool_target(tp_redis_pool *rp);

/* tp_redis_target_key: the target's pool key (for tp_pool_key_stats()); it holds host,
 * port, db, user and a digest, never the password. Valid as long as the target. */
TP_EXTERN const void *tp_redis_target_key(const tp_redis_target *t, size_t *keylen);

/* tp_redis_acquire: leases a connection to the default target, waiting up to timeout
 * (TP_DURATION_DEFAULT: the pool's acquire_timeout). Errors as tp_pool_acquire(), plus
 * the open errors: TP_ECONNREFUSED, TP_ECONNTIMEDOUT, TP_ERESOLVE, TP_EUNREACH,
 * TP_ESERVERFULL ("max number of clients reached"), TP_EUNAVAIL (the server is loading
 * its dataset), TP_EOPEN ("authentication failed for user U at host:port", other server
 * refusals; never with the password), TP_ECONNRESET, TP_EIO. Refusals and loading from a
 * server reached before are waited through while the breaker is closed, "max clients"
 * while the pool holds connections for the target (see tp_pool_acquire()). */
TP_EXTERN tp_err tp_redis_acquire(tp_redis_pool *rp, int64_t timeout, tp_redis_lease **out,
                                  tp_errinfo *err) TP_WARN_UNUSED;

/* tp_redis_acquire_ex: tp_redis_acquire() for target t (NULL: the default) with flags
 * (0 or TP_ACQUIRE_FRESH). */
TP_EXTERN tp_err tp_redis_acquire_ex(tp_redis_pool *rp, tp_redis_target *t, int64_t timeout,
                                     unsigned flags, tp_redis_lease **out, tp_errinfo *err)
    TP_WARN_UNUSED;

/* tp_redis_conn_get: the lease's hiredis context (blocking mode), for direct use; see
 * the release rules above. Owned by the pool: never redisFree() it. */
TP_EXTERN struct redisContext *tp_redis_conn_get(tp_redis_lease *l);

/* tp_redis_lease_conn: the pool lease behind l (tp_conn_uses(), tp_conn_key()). Do not
 * release it with tp_conn_release(): use tp_redis_release(). */
TP_EXTERN tp_conn *tp_redis_lease_conn(tp_redis_lease *l);

/* tp_redis_command: sends a command (hiredis printf-style format: %s, %b, %d ...) and
 * reads its reply into *reply (the caller frees it with freeReplyObject()). Tracks
 * session state for the release rules. Errors: TP_ESTATE (replies from
 * tp_redis_append() are pending, or the context is already broken), TP_ECONNRESET (the
 * server closed the connection), TP_EREQTIMEDOUT (command_timeout), TP_EPROTO,
 * TP_EIO, TP_ENOMEM; *reply is then NULL and the connection is broken. */
TP_EXTERN tp_err tp_redis_command(tp_redis_lease *l, struct redisReply **reply,
                                  tp_errinfo *err, const char *fmt, ...) TP_WARN_UNUSED;

/* tp_redis_vcommand: tp_redis_command() with a va_list. */
TP_EXTERN tp_err tp_redis_vcommand(tp_redis_lease *l, struct redisReply **reply,
                                   tp_errinfo *err, const char *fmt, va_list ap) TP_WARN_UNUSED;

/* tp_redis_command_argv: tp_redis_command() from argc binary-safe arguments (argvlen
 * NULL: NUL-terminated strings). */
TP_EXTERN tp_err tp_redis_command_argv(tp_redis_lease *l, struct redisReply **reply,
                                       tp_errinfo *err, int argc, const char **argv,
                                       const size_t *argvlen) TP_WARN_UNUSED;

/* tp_redis_append: queues a command without reading its reply (pipelining); each one
 * must be matched by a tp_redis_get_reply() before tp_redis_command() or release, or
 * the connection is closed at release. Errors: TP_EINVAL (format), TP_ENOMEM,
 * TP_ESTATE (broken context). */
TP_EXTERN tp_err tp_redis_append(tp_redis_lease *l, tp_errinfo *err, const char *fmt, ...)
    TP_WARN_UNUSED;

/* tp_redis_get_reply: reads the next pending reply (flushing queued commands first).
 * TP_ESTATE if none is pending; transport errors as tp_redis_command(). */
TP_EXTERN tp_err tp_redis_get_reply(tp_redis_lease *l, struct redisReply **reply,
                                    tp_errinfo *err) TP_WARN_UNUSED;

/* tp_redis_release: ends the lease (NULL is a no-op). flags: 0, TP_RELEASE_DISCARD,
 * TP_RELEASE_BROKEN. A context with c->err set is released as broken; the release rules
 * above decide whether a clean-looking connection is kept. l must not be used after. */
TP_EXTERN void tp_redis_release(tp_redis_lease *l, unsigned flags);

/* tp_redis_reply_is_error: true for an error reply ("-ERR ..."), false otherwise (NULL
 * included): for callers that do not include hiredis.h. */
TP_EXTERN bool tp_redis_reply_is_error(const struct redisReply *reply);

/* tp_redis_reply_str: the text of a string, status or error reply (*len its
 * length, if len is not NULL), or NULL for another kind (NULL included): for callers
 * that do not include hiredis.h. Valid until the reply is freed. */
TP_EXTERN const char *tp_redis_reply_str(const struct redisReply *reply, size_t *len);

/* tp_redis_reply_free: frees a reply returned by tp_redis_command() and friends (NULL is
 * a no-op). */
TP_EXTERN void tp_redis_reply_free(struct redisReply *reply);

#ifdef __cplusplus
}
#endif
#endif
