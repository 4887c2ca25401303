/* session.c: the connector's check(), reset() and close() for libpq connections, and the
 * scan that tells whether a statement may have changed session state.
 *
 * Reset follows the protocol state libpq tracks (PQtransactionStatus), as pgbouncer
 * does with ReadyForQuery: idle means clean; an open or failed transaction is rolled
 * back; a command still in progress (unread results, COPY) or an unknown state cannot be
 * brought back cheaply and safely, so the connection is closed. The reset statement
 * (DISCARD ALL) costs a round trip, so outside strict mode it only runs after a lease
 * that touched session state: with it on every release a SELECT 1 loop does two round
 * trips per lease instead of one. */
#ifdef TIDEPOOL_HAVE_LIBPQ
#include <ctype.h>
#include <strings.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "pg/pg_internal.h"

tp_err tp__pg_check(void *ctx, void *conn, int64_t idle_ns)
{
    (void)ctx;
    (void)idle_ns;
    tp__pg_conn *pc = conn;
    if (PQstatus(pc->pg) != CONNECTION_OK)
        return TP_ECONNRESET;
    /* An idle session expects nothing from the server: anything readable is a server
     * that closed it (idle_session_timeout and pg_terminate_backend send a FATAL
     * ErrorResponse first, a restart just closes). */
    struct pollfd pfd = {.fd = PQsocket(pc->pg), .events = POLLIN};
    if (pfd.fd < 0)
        return TP_ECONNRESET;
    int r = poll(&pfd, 1, 0);
    if (r < 0)
        return TP_ESYS;
    if (r > 0 && (pfd.revents & (POLLIN | POLLHUP | POLLERR | POLLNVAL)) != 0)
        return TP_ECONNRESET;
    return TP_OK;
}

/* Runs a reset command; false if it did not succeed or the connection broke. */
static bool run(PGconn *pg, const char *sql)
{
    PGresult *r = PQexec(pg, sql);
    ExecStatusType st = PQresultStatus(r);
    PQclear(r);
    return (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) && PQstatus(pg) == CONNECTION_OK &&
           PQtransactionStatus(pg) == PQTRANS_IDLE;
}

tp_err tp__pg_reset(void *ctx, void *conn)
{
    tp_pg_pool *pp = ctx;
    tp__pg_conn *pc = conn;
    PGconn *pg = pc->pg;
    bool dirty = pc->dirty;
    pc->dirty = false;
    if (pc->broken || PQstatus(pg) != CONNECTION_OK || PQpipelineStatus(pg) != PQ_PIPELINE_OFF)
        return TP_ESTATE;
    switch (PQtransactionStatus(pg)) {
    case PQTRANS_IDLE:
        break;
    case PQTRANS_INTRANS:
    case PQTRANS_INERROR:
        if (!run(pg, "ROLLBACK"))
            return TP_ESTATE;
        break;
    case PQTRANS_ACTIVE:  /* a result not read, or COPY in progress */
    case PQTRANS_UNKNOWN: /* the connection is bad */
    default:
        return TP_ESTATE;
    }
    if (pp->strict_reset || dirty) {
        /* Without a reset statement, LISTEN is still undone: a listening session would
         * hand the next lease someone else's notifications. */
        const char *sql = pp->reset_query != NULL ? pp->reset_query : "UNLISTEN *";
        if (!run(pg, sql))
            return TP_ESTATE;
    }
    /* Notifications that arrived before the UNLISTEN belong to the lease that ended. */
    PGnotify *n;
    while ((n = PQnotifies(pg)) != NULL)
        PQfreemem(n);
    return TP_OK;
}

void tp__pg_close(void *ctx, void *conn, tp_close_reason reason)
{
    (void)ctx;
    (void)reason;
    tp__pg_conn *pc = conn;
    if (pc == NULL)
        return;
    /* PQfinish sends Terminate when it can and frees everything libpq holds. */
    PQfinish(pc->pg);
    tp__free(pc);
}

/* Does word w (lower case) occur in sql as a whole word, case-insensitively? */
static bool has_word(const char *sql, const char *w)
{
    size_t n = strlen(w);
    for (const char *p = sql; *p != '\0'; p++) {
        if (strncasecmp(p, w, n) != 0)
            continue;
        bool before = p == sql || !(isalnum((unsigned char)p[-1]) || p[-1] == '_');
        bool after = !(isalnum((unsigned char)p[n]) || p[n] == '_');
        if (before && after)
            return true;
    }
    return false;
}

bool tp__pg_sql_is_dirty(const char *sql)
{
    /* A false positive costs one reset round trip, a false negative a leak of session
     * state, so the list errs broad (SET also catches SET ROLE, SET SESSION
     * AUTHORIZATION; RESET and SELECT are never matched as words). */
    static const char *const words[] = {"set",     "listen",      "temp",       "temporary",
                                        "prepare", "declare",     "set_config", "load",
                                        "pg_advisory_lock", "pg_advisory_lock_shared",
                                        "pg_try_advisory_lock", "pg_try_advisory_lock_shared"};
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (has_word(sql, words[i]))
            return true;
    return false;
}
#else
typedef int tp__pg_session_unused;
#endif
