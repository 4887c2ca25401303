/* tidepool/pg.h: a pool of libpq connections (PGconn) on top of tp_pool.
 *
 * A tp_pg_pool owns one tp_pool and serves any number of targets: a target is one
 * conninfo string or postgres:// URI (parsed by libpq's PQconninfoParse). Each target
 * maps to one pool key, readable in metrics and traces:
 *
 *     pg://USER@HOST:PORT/DBNAME#DIGEST
 *
 * where DIGEST is an HMAC-SHA-256 (keyed with a random secret per tp_pg_pool, so it
 * cannot be brute-forced offline) of the password and every other session-affecting
 * option (options, application_name, sslmode, ...). The password itself is never in a
 * key, a trace event, a log line or an error message. Two targets with the same key
 * share connections; a connection is never handed to a target with another key (another
 * user, password, database or option set).
 *
 * Connections are opened without blocking past the pool's deadline (PQconnectStartParams
 * + PQconnectPoll). An idle connection past the pool's check_after_idle is checked before
 * reuse (status, and a zero-timeout poll: anything readable, such as the FATAL message
 * idle_session_timeout sends before closing, means dead). On release the session is
 * reset: an open or failed transaction is rolled back, a query in progress, COPY or
 * pipeline closes the connection, and the reset statement (default "DISCARD ALL") runs
 * when options.strict_reset is set, or when the lease touched session state (statements
 * run through tp_pg_query_simple()/tp_pg_exec() are scanned for SET, LISTEN, TEMP,
 * PREPARE, DECLARE, set_config and advisory locks; callers running their own PQexec
 * report it with tp_pg_mark_dirty()). A failing reset closes the connection.
 *
 * Threads: a tp_pg_pool is thread-safe. A lease (tp_conn) and its PGconn belong to one
 * thread at a time, until released. */
#ifndef TIDEPOOL_PG_H
#define TIDEPOOL_PG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "errors.h"
#include "pool.h"

#ifdef __cplusplus
extern "C" {
#endif

/* libpq's own types, declared here so that this header does not need libpq-fe.h:
 * struct pg_conn is PGconn and struct pg_result is PGresult. */
struct pg_conn;
struct pg_result;

typedef struct tp_pg_pool tp_pg_pool;
/* A registered conninfo: owned by its tp_pg_pool, valid until tp_pg_pool_destroy(). */
typedef struct tp_pg_target tp_pg_target;

#define TP_PG_OPTIONS_VERSION 1

/* tp_pg_options: fill with tp_pg_options_init(), then change what you need. */
typedef struct tp_pg_options {
    unsigned version;     /* TP_PG_OPTIONS_VERSION */
    tp_pool_options pool; /* limits and timers; pool.connector is ignored (set by us) */
    bool strict_reset;    /* run reset_query on every release, not only after a lease
                             that touched session state: for a pool shared between
                             tenants. false */
    const char *reset_query; /* the reset statement; NULL: "DISCARD ALL"; "": none (then
                                only ROLLBACK and UNLISTEN * are ever run). Copied. */
    bool learn_idle_timeout; /* after connecting, read the server's idle_session_timeout
                                and keep the key's idle timeout below it (one extra
                                round trip per open). true */
    int64_t query_timeout;   /* bound on the reply to one statement of
                                tp_pg_query_simple() and tp_pg_exec(): past it the call
                                fails with TP_EREQTIMEDOUT and the connection is closed
                                (the statement may still run on the server). A server
                                that hangs, or a peer gone half-open, otherwise holds the
                                caller forever. Also libpq's tcp_user_timeout unless the
                                conninfo sets one. TP_DURATION_INFINITE (default), as
                                libpq */
} tp_pg_options;

/* tp_pg_options_init: fills o with the defaults above (pool: tp_pool_options_init()). */
TP_EXTERN void tp_pg_options_init(tp_pg_options *o);

/* tp_pg_pool_create: validates o and creates a pool with no targets yet.
 * Errors: TP_EINVAL (the message names the field), TP_ENOMEM, TP_ESYS, and TP_ESTATE
 * "built without libpq". On failure *out is NULL. o is copied. */
TP_EXTERN tp_err tp_pg_pool_create(const tp_pg_options *o, tp_pg_pool **out, tp_errinfo *err)
    TP_WARN_UNUSED;

/* tp_pg_pool_create_uri: a pool with default tp_pg_options except pool (NULL: the
 * defaults) and one default target, conninfo (a URI or "key=value ..." string), used by
 * tp_pg_acquire() and tp_pg_exec() with a NULL target. Errors as tp_pg_pool_create()
 * and tp_pg_pool_add(). */
TP_EXTERN tp_err tp_pg_pool_create_uri(const char *conninfo, const tp_pool_options *pool,
                                       tp_pg_pool **out, tp_errinfo *err) TP_WARN_UNUSED;

/* tp_pg_pool_add: registers conninfo (a URI or "key=value ..." string) and returns its
 * target in *out (owned by the pool). Adding an equivalent conninfo again returns the
 * same target. The first target added is the default one. Connects to nothing.
 * Errors: TP_EINVAL (unparsable conninfo; libpq's message is not passed on, as it may
 * quote a fragment of the string such as a password), TP_ENOMEM, TP_ESTATE (no libpq).
 * Thread-safe. */
TP_EXTERN tp_err tp_pg_pool_add(tp_pg_pool *pp, const char *conninfo, tp_pg_target **out,
                                tp_errinfo *err) TP_WARN_UNUSED;

/* tp_pg_target_key: the pool key of a target (see the top of this file; no password),
 * NUL-terminated, owned by the pool; *len (if not NULL) receives its length. */
TP_EXTERN const char *tp_pg_target_key(const tp_pg_target *t, size_t *len);

/* tp_pg_pool_tp: the underlying tp_pool, for stats, evict and key limits. Owned by pp. */
TP_EXTERN tp_pool *tp_pg_pool_tp(tp_pg_pool *pp);

/* tp_pg_pool_destroy: closes and frees the pool and its targets (see tp_pool_destroy():
 * leases still out may be released later with tp_pg_release(), which then closes them).
 * Not while other threads still call into pp. NULL is a no-op. */
TP_EXTERN void tp_pg_pool_destroy(tp_pg_pool *pp);

/* tp_pg_acquire: leases a connection for target (NULL: the default target), waiting up
 * to timeout (as tp_pool_acquire). flags: 0 or TP_ACQUIRE_FRESH.
 * Errors: those of tp_acquire(); an open failure maps to TP_ECONNREFUSED,
 * TP_ECONNTIMEDOUT (the deadline passed), TP_ESERVERFULL (too many clients, SQLSTATE
 * 53300 in err->backend_code), TP_EUNAVAIL (the database system is starting up or
 * shutting down, 57P03), TP_EOPEN (another refusal: authentication failed, no such
 * database), TP_ERESOLVE; err->msg has the server's message without credentials.
 * Refusals and "starting up" from a server reached before are waited through while the
 * breaker is closed, "too many clients" while the pool holds connections for the target
 * (see tp_pool_acquire()).
 * TP_EINVAL if there is no default target. */
TP_EXTERN tp_err tp_pg_acquire(tp_pg_pool *pp, const tp_pg_target *target, int64_t timeout,
                               unsigned flags, tp_conn **lease, tp_errinfo *err) TP_WARN_UNUSED;

/* tp_pg_conn_get: the PGconn of a lease (owned by the pool: never PQfinish it; use it
 * only until the lease is released). */
TP_EXTERN struct pg_conn *tp_pg_conn_get(const tp_conn *lease);

/* tp_pg_mark_dirty: says that this lease changed session state the reset must undo
 * (SET, LISTEN, TEMP tables, prepared statements... run with the caller's own PQexec),
 * so the reset statement runs on release. */
TP_EXTERN void tp_pg_mark_dirty(tp_conn *lease);

/* tp_pg_query_simple: runs sql on the lease and checks that it succeeded
 * (PGRES_COMMAND_OK or PGRES_TUPLES_OK); the result is discarded.
 * Errors: TP_ECONNRESET (a bad connection: it broke, SQLSTATE class 08, 57P01-57P03; the
 * lease is marked broken and tp_pg_release() closes it), TP_EIO (the statement failed;
 * err->backend_code is its SQLSTATE, see tp_pg_sqlstate()), TP_EINVAL. */
TP_EXTERN tp_err tp_pg_query_simple(tp_conn *lease, const char *sql, tp_errinfo *err);

/* tp_pg_release: ends a lease (tp_conn_release flags: 0, TP_RELEASE_DISCARD,
 * TP_RELEASE_BROKEN); a connection seen broken is released BROKEN whatever flags say.
 * The reset protocol runs for a connection kept. NULL is a no-op. */
TP_EXTERN void tp_pg_release(tp_conn *lease, unsigned flags);

/* tp_pg_exec: acquires a connection for target (NULL: default), runs one statement,
 * releases it. On success *result (if result is not NULL) receives the PGresult (the
 * caller PQclear()s it). If the connection turns out dead before the statement was sent
 * (a pre-send poll saw it closed, or sending failed), it is discarded and the statement
 * retried once on a fresh connection (TP_ACQUIRE_FRESH); once it may have reached the
 * server it is never retried. Errors: as tp_pg_acquire() and tp_pg_query_simple(). */
TP_EXTERN tp_err tp_pg_exec(tp_pg_pool *pp, const tp_pg_target *target, const char *sql,
                            struct pg_result **result, tp_errinfo *err);

/* tp_pg_result_value: the text of row, column col of a result from tp_pg_exec() (libpq's
 * PQgetvalue), or NULL when the result has no such cell (NULL result included); for
 * callers that do not include libpq-fe.h. Valid until the result is freed. */
TP_EXTERN const char *tp_pg_result_value(const struct pg_result *r, int row, int col);

/* tp_pg_result_free: PQclear() for callers that do not include libpq-fe.h; NULL is a
 * no-op. */
TP_EXTERN void tp_pg_result_free(struct pg_result *r);

/* tp_pg_sqlstate: decodes a backend_code set by this connector into the 5-character
 * SQLSTATE (out must hold 6 bytes); "" when code is 0. Returns out. */
TP_EXTERN char *tp_pg_sqlstate(int backend_code, char out[6]);

/* tp_pg_fleet_backends: a fleet budget's reconciliation with PostgreSQL
 * (tp_fleet_options.still_open, tidepool/fleet.h): how many backends pg_stat_activity
 * shows with application_name "tidepool/INSTANCE", through a connection of its own to
 * conninfo (a const char *; give it a connect_timeout), made and closed per call.
 * -1 when it cannot tell (no connection, an error, built without libpq). */
TP_EXTERN int64_t tp_pg_fleet_backends(void *conninfo, const char *instance);

#ifdef __cplusplus
}
#endif
#endif
