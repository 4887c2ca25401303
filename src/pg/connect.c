/* connect.c: the connector's open(): a libpq connection made without blocking past the
 * pool's deadline (PQconnectStartParams, then PQconnectPoll driven by poll() on the
 * socket), its failure mapped to a tp_err with the server's reason and never a password,
 * and, once connected, the server's idle_session_timeout learnt so that the pool closes
 * idle connections before the server does. */
#ifdef TIDEPOOL_HAVE_LIBPQ
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg/pg_internal.h"

/* libpq prints notices (and the FATAL a server sends before closing an idle session)
 * to stderr by default: a library must not write to the application's stderr. */
static void quiet_notice(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

void tp__pg_scrub_msg(tp_errinfo *err, const char *prefix, const char *msg,
                      const char *secret)
{
    if (err == NULL)
        return;
    size_t cap = sizeof err->msg, n = 0;
    size_t slen = secret != NULL ? strlen(secret) : 0;
    int w = snprintf(err->msg, cap, "%s", prefix);
    n = w > 0 ? ((size_t)w < cap ? (size_t)w : cap - 1) : 0;
    bool space = false;
    for (const char *p = msg != NULL ? msg : ""; *p != '\0' && n + 1 < cap;) {
        if (slen > 0 && strncmp(p, secret, slen) == 0) {
            for (const char *r = "***"; *r != '\0' && n + 1 < cap; r++)
                err->msg[n++] = *r;
            p += slen;
            space = false;
            continue;
        }
        /* Fold libpq's newlines and the double spaces after "FATAL:" into one space. */
        if (*p == '\n' || *p == ' ' || *p == '\t') {
            space = true;
            p++;
            continue;
        }
        if (space && n > 0 && err->msg[n - 1] != ' ' && n + 2 < cap)
            err->msg[n++] = ' ';
        space = false;
        err->msg[n++] = *p++;
    }
    err->msg[n] = '\0';
}

/* Maps a failed connection's message to a code. libpq reports a connect-time server
 * error only as text (no PGresult), so the SQLSTATE is recognised by its message, in
 * the server's default English. */
static tp_err classify(const char *m, int *backend_code)
{
    *backend_code = 0;
    if (strstr(m, "too many clients") != NULL || strstr(m, "connection slots are reserved") != NULL) {
        *backend_code = tp__pg_sqlstate_code("53300");
        return TP_ESERVERFULL;
    }
    if (strstr(m, "authentication failed") != NULL) {
        *backend_code = tp__pg_sqlstate_code("28P01");
        return TP_EOPEN;
    }
    if (strstr(m, "does not exist") != NULL) {
        *backend_code = tp__pg_sqlstate_code("3D000");
        return TP_EOPEN;
    }
    if (strstr(m, "the database system is") != NULL) { /* starting up, shutting down */
        *backend_code = tp__pg_sqlstate_code("57P03");
        return TP_EUNAVAIL;
    }
    if (strstr(m, "Connection refused") != NULL)
        return TP_ECONNREFUSED;
    /* A server going down while we connect: a restart's, like a refusal. */
    if (strstr(m, "server closed the connection unexpectedly") != NULL ||
        strstr(m, "Connection reset by peer") != NULL)
        return TP_ECONNRESET;
    if (strstr(m, "could not translate host name") != NULL)
        return TP_ERESOLVE;
    if (strstr(m, "Network is unreachable") != NULL || strstr(m, "No route to host") != NULL)
        return TP_EUNREACH;
    if (strstr(m, "timeout expired") != NULL)
        return TP_ECONNTIMEDOUT;
    return TP_EOPEN;
}

static tp_err fail(PGconn *pg, const tp_pg_target *t, tp_errinfo *err)
{
    const char *m = PQerrorMessage(pg);
    int code = 0;
    tp_err rc = classify(m, &code);
    char prefix[160];
    snprintf(prefix, sizeof prefix, "postgres %.120s: ", t->dest);
    if (err != NULL) {
        tp__pg_scrub_msg(err, prefix, m, t->password);
        err->code = rc;
        err->sys_errno = rc == TP_ECONNREFUSED ? ECONNREFUSED : 0;
        err->backend_code = code;
    }
    PQfinish(pg);
    return rc;
}

/* Drives PQconnectPoll until it finishes or the deadline passes. */
static tp_err poll_connect(PGconn *pg, const tp_pg_target *t, int64_t deadline, tp_errinfo *err)
{
    PostgresPollingStatusType st = PGRES_POLLING_WRITING;
    for (;;) {
        if (st == PGRES_POLLING_OK)
            return TP_OK;
        if (st == PGRES_POLLING_FAILED)
            return fail(pg, t, err);
        int64_t left = deadline == TP_DURATION_INFINITE ? -1 : deadline - tp_clock_now();
        if (deadline != TP_DURATION_INFINITE && left <= 0)
            break;
        /* Round up so a sub-millisecond remainder still waits instead of spinning. */
        int ms = left < 0 ? -1
                          : (left / TP_NSEC_PER_MSEC >= 60000 ? 60000
                                                               : (int)((left + TP_NSEC_PER_MSEC - 1) /
                                                                       TP_NSEC_PER_MSEC));
        struct pollfd pfd = {.fd = PQsocket(pg),
                             .events = st == PGRES_POLLING_READING ? POLLIN : POLLOUT};
        if (pfd.fd < 0)
            return fail(pg, t, err);
        int r = poll(&pfd, 1, ms);
        if (r < 0 && errno != EINTR) {
            int e = errno;
            PQfinish(pg);
            return tp_errinfo_set(err, TP_ESYS, e, "postgres %s: poll failed", t->dest);
        }
        if (r > 0)
            st = PQconnectPoll(pg);
    }
    PQfinish(pg);
    return tp_errinfo_set(err, TP_ECONNTIMEDOUT, ETIMEDOUT,
                          "postgres %s: connect (and authentication) did not finish by the "
                          "deadline",
                          t->dest);
}

/* Reads idle_session_timeout (milliseconds, 0 = off) and keeps the key's idle timeout
 * under it, with a margin for the round trip and timer slack. */
static void learn_idle_timeout(tp_pg_pool *pp, PGconn *pg, const tp_pg_target *t)
{
    PGresult *r = PQexec(pg, "SELECT current_setting('idle_session_timeout', true)::interval");
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
        /* The interval prints as HH:MM:SS[.frac]; parse it without locale surprises. */
        unsigned h = 0, m = 0;
        double s = 0;
        if (sscanf(PQgetvalue(r, 0, 0), "%u:%u:%lf", &h, &m, &s) == 3) {
            double ns = ((h * 60.0 + m) * 60.0 + s) * 1e9;
            if (ns > 0) {
                int64_t limit = (int64_t)(ns * 0.8);
                if (limit > 0)
                    (void)tp_pool_key_limit_idle_timeout(pp->pool, t->key, t->keylen, limit);
            }
        }
    }
    PQclear(r);
}

tp_err tp__pg_open(void *ctx, const void *key, size_t keylen, int64_t deadline, void **conn,
                   tp_errinfo *err)
{
    tp_pg_pool *pp = ctx;
    tp_pg_target *t = tp__pg_target_find(pp, key, keylen);
    if (t == NULL)
        return tp_errinfo_set(err, TP_EINVAL, 0,
                              "postgres: key was not registered with tp_pg_pool_add()");
    tp__pg_conn *pc = tp__calloc(1, sizeof *pc);
    if (pc == NULL)
        return tp_errinfo_set(err, TP_ENOMEM, 0, "postgres: out of memory");
    PGconn *pg = PQconnectStartParams(t->keywords, t->values, 0);
    if (pg == NULL) {
        tp__free(pc);
        return tp_errinfo_set(err, TP_ENOMEM, 0, "postgres: out of memory");
    }
    PQsetNoticeProcessor(pg, quiet_notice, NULL);
    tp_err rc = PQstatus(pg) == CONNECTION_BAD ? fail(pg, t, err)
                                                : poll_connect(pg, t, deadline, err);
    if (rc != TP_OK) {
        tp__free(pc);
        return rc;
    }
    if (pp->learn_idle_timeout)
        learn_idle_timeout(pp, pg, t);
    pc->pg = pg;
    pc->pp = pp;
    pc->t = t;
    *conn = pc;
    return TP_OK;
}
#else
typedef int tp__pg_connect_unused;
#endif
