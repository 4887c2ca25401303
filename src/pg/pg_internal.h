/* pg_internal.h: what the files of the PostgreSQL connector share: the pool with its
 * registry of targets, the per-connection record, and the functions one file offers
 * the others. Only compiled with libpq (TIDEPOOL_HAVE_LIBPQ). */
#ifndef TIDEPOOL_PG_INTERNAL_H
#define TIDEPOOL_PG_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include <tidepool/pg.h>

#include "base/base.h"
#include "base/fork.h"
#include "base/sync.h"

/* One registered conninfo. keywords/values are the non-empty options of the parsed
 * conninfo (NULL-terminated, as PQconnectStartParams wants them); password points into
 * values (or is NULL) and is kept only to connect and to scrub it from messages. */
struct tp_pg_target {
    char *key; /* "pg://user@host:port/db#digest" */
    size_t keylen;
    const char **keywords;
    const char **values;
    const char *password;
    char *dest; /* "host:port/db as user", for messages */
    struct tp_pg_target *next;
};

struct tp_pg_pool {
    tp_pool *pool;
    bool strict_reset;
    bool learn_idle_timeout;
    int64_t query_timeout; /* a statement's reply; TP_DURATION_INFINITE: none */
    char *reset_query; /* NULL: no reset statement */
    unsigned char secret[32]; /* keys the credential digest; never leaves the process */
    tp__mutex mu;       /* guards the target list */
    tp__fork_guard fork_guard; /* mu, locked around fork() */
    tp_pg_target *targets;    /* append-only until destroy */
    tp_pg_target *dflt;
};

/* One pooled connection (what the connector's open() returns). */
typedef struct tp__pg_conn {
    PGconn *pg;
    tp_pg_pool *pp;
    const tp_pg_target *t; /* what it was opened for (messages, password scrubbing) */
    bool dirty;  /* the lease touched session state: run the reset statement */
    bool broken; /* a query saw the connection fail: never reuse */
} tp__pg_conn;

/* key.c: builds t->key (and t->dest) from the parsed options. */
tp_err tp__pg_key_build(const tp_pg_pool *pp, tp_pg_target *t, tp_errinfo *err);

/* connect.c: the connector's open(); deadline-bounded, errors mapped and scrubbed. */
tp_err tp__pg_open(void *ctx, const void *key, size_t keylen, int64_t deadline, void **conn,
                   tp_errinfo *err);
/* connect.c: copies msg into err's message with every occurrence of secret replaced by
 * "***" and newlines folded, after a prefix. */
void tp__pg_scrub_msg(tp_errinfo *err, const char *prefix, const char *msg,
                      const char *secret);

/* session.c: the connector's check(), reset() and close(). */
tp_err tp__pg_check(void *ctx, void *conn, int64_t idle_ns);
tp_err tp__pg_reset(void *ctx, void *conn);
void tp__pg_close(void *ctx, void *conn, tp_close_reason reason);
/* session.c: true when sql may change session state (SET, LISTEN, TEMP, ...). */
bool tp__pg_sql_is_dirty(const char *sql);

/* pool.c: the target registered under key (NULL if none). */
tp_pg_target *tp__pg_target_find(tp_pg_pool *pp, const void *key, size_t keylen);

/* query.c: the SQLSTATE of r packed into an int (0 if none). */
int tp__pg_sqlstate_code(const char *sqlstate);

#endif
