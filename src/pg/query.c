/* query.c: leases and statements: acquire by target, the PGconn of a lease, running a
 * statement with "bad connection" detection, release that never reuses a broken
 * connection, and tp_pg_exec(), which retries a statement once on a fresh connection
 * when, and only when, the statement cannot have reached the server. */
#ifdef TIDEPOOL_HAVE_LIBPQ
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>

#include "pg/pg_internal.h"

int tp__pg_sqlstate_code(const char *s)
{
    /* Six bits per character ('0'..'Z' as 1..43), so that 0 stays "no SQLSTATE" even
     * for 00000: 30 bits, always > 0 for a real code. */
    int code = 0;
    for (int i = 0; i < 5 && s != NULL && s[i] != '\0'; i++)
        code |= ((s[i] - '0' + 1) & 0x3F) << (6 * i);
    return code;
}

char *tp_pg_sqlstate(int code, char out[6])
{
    if (out == NULL)
        return NULL;
    for (int i = 0; i < 5; i++)
        out[i] = (char)(code == 0 ? 0 : ((code >> (6 * i)) & 0x3F) - 1 + '0');
    out[5] = '\0';
    return out;
}

tp_err tp_pg_acquire(tp_pg_pool *pp, const tp_pg_target *target, int64_t timeout,
                     unsigned flags, tp_conn **lease, tp_errinfo *err)
{
    if (pp == NULL || lease == NULL)
        return tp_errinfo_set(err, TP_EINVAL, 0, "pool and lease must not be NULL");
    const tp_pg_target *t = target != NULL ? target : pp->dflt;
    if (t == NULL)
        return tp_errinfo_set(err, TP_EINVAL, 0, "target: NULL and the pool has no default");
    tp_acquire_req req = tp_acquire_req_for(t->key, t->keylen, timeout, flags);
    return tp_acquire(pp->pool, &req, lease, err);
}

struct pg_conn *tp_pg_conn_get(const tp_conn *lease)
{
    const tp__pg_conn *pc = lease != NULL ? tp_conn_get(lease) : NULL;
    return pc != NULL ? pc->pg : NULL;
}

void tp_pg_mark_dirty(tp_conn *lease)
{
    tp__pg_conn *pc = lease != NULL ? tp_conn_get(lease) : NULL;
    if (pc != NULL)
        pc->dirty = true;
}

/* Did the server close an idle session before we send anything? Its FATAL message and
 * the FIN are already queued when pg_terminate_backend or idle_session_timeout struck,
 * so a zero-timeout poll tells before the statement goes out. */
static bool dead_before_send(PGconn *pg)
{
    struct pollfd pfd = {.fd = PQsocket(pg), .events = POLLIN | POLLRDHUP};
    if (pfd.fd < 0)
        return true;
    if (poll(&pfd, 1, 0) <= 0)
        return false;
    if ((pfd.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) != 0)
        return true;
    /* Something unsolicited but not a close (a notification, a parameter change). */
    return PQconsumeInput(pg) == 0 || PQstatus(pg) != CONNECTION_OK;
}

static bool bad_sqlstate(const char *s)
{
    return s != NULL && (strncmp(s, "08", 2) == 0 || strcmp(s, "57P01") == 0 ||
                         strcmp(s, "57P02") == 0 || strcmp(s, "57P03") == 0);
}

static tp_err conn_error(tp__pg_conn *pc, const char *what, const char *msg, int code,
                         tp_errinfo *err)
{
    pc->broken = true;
    char prefix[256];
    snprintf(prefix, sizeof prefix, "postgres %.120s: bad connection (%.64s): ", pc->t->dest,
             what);
    if (err != NULL) {
        tp__pg_scrub_msg(err, prefix, msg, pc->t->password);
        err->code = TP_ECONNRESET;
        err->sys_errno = 0;
        err->backend_code = code;
    }
    return TP_ECONNRESET;
}

/* Waits until PQgetResult() would not block, or the deadline. False at the deadline. */
static bool reply_ready(PGconn *pg, int64_t deadline)
{
    while (PQisBusy(pg)) {
        int ms = -1;
        if (deadline != TP_DURATION_INFINITE) {
            int64_t left = deadline - tp_clock_now();
            if (left <= 0)
                return false;
            ms = (int)TP__MIN((left + TP_NSEC_PER_MSEC - 1) / TP_NSEC_PER_MSEC, (int64_t)INT_MAX);
        }
        struct pollfd pfd = {.fd = PQsocket(pg), .events = POLLIN};
        if (pfd.fd < 0)
            return true; /* PQgetResult reports the broken connection */
        int n = poll(&pfd, 1, ms);
        if (n < 0 && errno != EINTR)
            return true;
        if (n > 0 && PQconsumeInput(pg) == 0)
            return true; /* the connection failed: PQgetResult says how */
    }
    return true;
}

/* Runs sql; *sent tells whether it may have reached the server. On TP_OK and a non-NULL
 * out the result is handed over. */
static tp_err run(tp__pg_conn *pc, const char *sql, PGresult **out, bool *sent, tp_errinfo *err)
{
    PGconn *pg = pc->pg;
    *sent = false;
    if (tp__pg_sql_is_dirty(sql))
        pc->dirty = true;
    if (PQstatus(pg) != CONNECTION_OK || dead_before_send(pg))
        return conn_error(pc, "closed by the server while idle, statement not sent",
                          PQerrorMessage(pg), 0, err);
    if (!PQsendQuery(pg, sql)) {
        /* libpq refused before handing the statement to the socket. */
        if (PQstatus(pg) != CONNECTION_OK)
            return conn_error(pc, "statement not sent", PQerrorMessage(pg), 0, err);
        pc->broken = true; /* busy with something else: not ours to untangle */
        char prefix[160];
        snprintf(prefix, sizeof prefix, "postgres %.120s: cannot send: ", pc->t->dest);
        tp__pg_scrub_msg(err, prefix, PQerrorMessage(pg), pc->t->password);
        if (err != NULL)
            err->code = TP_ESTATE;
        return TP_ESTATE;
    }
    *sent = true;
    PGresult *keep = NULL, *r;
    tp_err rc = TP_OK;
    char state[6] = "";
    char msg[TP_ERRMSG_SIZE] = "";
    int64_t deadline = pc->pp->query_timeout == TP_DURATION_INFINITE
                           ? TP_DURATION_INFINITE
                           : tp__saturating_add(tp_clock_now(), pc->pp->query_timeout);
    /* Read every result so the connection is idle again; keep the last good one. */
    for (;;) {
        if (!reply_ready(pg, deadline)) {
            PQclear(keep);
            pc->broken = true; /* a reply may still come: the connection is not ours */
            return tp_errinfo_set(err, TP_EREQTIMEDOUT, 0,
                                  "postgres %.120s: no reply within query_timeout (%lld ms); "
                                  "the connection is closed, the statement may still run on "
                                  "the server",
                                  pc->t->dest,
                                  (long long)(pc->pp->query_timeout / TP_NSEC_PER_MSEC));
        }
        if ((r = PQgetResult(pg)) == NULL)
            break;
        ExecStatusType st = PQresultStatus(r);
        if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK || st == PGRES_EMPTY_QUERY) {
            PQclear(keep);
            keep = r;
            continue;
        }
        if (rc == TP_OK) {
            const char *s = PQresultErrorField(r, PG_DIAG_SQLSTATE);
            const char *m = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
            snprintf(state, sizeof state, "%s", s != NULL ? s : "");
            snprintf(msg, sizeof msg, "%s", m != NULL ? m : PQresultErrorMessage(r));
            rc = st == PGRES_COPY_IN || st == PGRES_COPY_OUT || st == PGRES_COPY_BOTH
                     ? TP_ESTATE
                     : TP_EIO;
        }
        PQclear(r);
        if (PQstatus(pg) != CONNECTION_OK || rc == TP_ESTATE)
            break;
    }
    if (rc == TP_OK && out != NULL)
        *out = keep;
    else
        PQclear(keep);
    if (PQstatus(pg) != CONNECTION_OK || bad_sqlstate(state))
        return conn_error(pc, "failed during the statement",
                          msg[0] != '\0' ? msg : PQerrorMessage(pg), tp__pg_sqlstate_code(state),
                          err);
    if (rc == TP_ESTATE) {
        pc->broken = true; /* COPY started by a simple query: the session is mid-COPY */
        return tp_errinfo_set(err, TP_ESTATE, 0, "postgres: COPY is not supported here");
    }
    if (rc != TP_OK) {
        char prefix[32];
        snprintf(prefix, sizeof prefix, "postgres: %s: ", state[0] ? state : "error");
        tp__pg_scrub_msg(err, prefix, msg, pc->t->password);
        if (err != NULL) {
            err->code = rc;
            err->sys_errno = 0;
            err->backend_code = tp__pg_sqlstate_code(state);
        }
    }
    return rc;
}

const char *tp_pg_result_value(const struct pg_result *r, int row, int col)
{
    if (r == NULL || row < 0 || col < 0 || row >= PQntuples(r) || col >= PQnfields(r))
        return NULL;
    return PQgetvalue(r, row, col);
}

void tp_pg_result_free(struct pg_result *r)
{
    PQclear(r);
}

tp_err tp_pg_query_simple(tp_conn *lease, const char *sql, tp_errinfo *err)
{
    tp__pg_conn *pc = lease != NULL ? tp_conn_get(lease) : NULL;
    if (pc == NULL || sql == NULL)
        return tp_errinfo_set(err, TP_EINVAL, 0, "lease and sql must not be NULL");
    bool sent;
    return run(pc, sql, NULL, &sent, err);
}

void tp_pg_release(tp_conn *lease, unsigned flags)
{
    if (lease == NULL)
        return;
    const tp__pg_conn *pc = tp_conn_get(lease);
    if (pc->broken || PQstatus(pc->pg) != CONNECTION_OK)
        flags |= TP_RELEASE_BROKEN;
    tp_conn_release(lease, flags);
}

tp_err tp_pg_exec(tp_pg_pool *pp, const tp_pg_target *target, const char *sql,
                  struct pg_result **result, tp_errinfo *err)
{
    if (result != NULL)
        *result = NULL;
    if (sql == NULL)
        return tp_errinfo_set(err, TP_EINVAL, 0, "sql: NULL");
    for (int attempt = 0;; attempt++) {
        tp_conn *lease = NULL;
        tp_err rc = tp_pg_acquire(pp, target, TP_DURATION_DEFAULT,
                                  attempt > 0 ? TP_ACQUIRE_FRESH : 0, &lease, err);
        if (rc != TP_OK)
            return rc;
        bool sent = false, reused = tp_conn_uses(lease) > 1;
        rc = run(tp_conn_get(lease), sql, result, &sent, err);
        tp_pg_release(lease, 0);
        /* Only a reused connection can have died unnoticed, and only a statement that
         * never left this process is safe to run again. */
        if (rc == TP_ECONNRESET && !sent && reused && attempt == 0)
            continue;
        return rc;
    }
}
#else
typedef int tp__pg_query_unused;
#endif
