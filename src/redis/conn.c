/* conn.c: the Redis pool connector. open() dials with the pool's deadline (the library's
 * dialer, net/dial.c: hiredis 0.14 has no connect-with-deadline that also reports
 * refusals distinctly), hands the socket to hiredis, then AUTH, SELECT and CLIENT
 * SETNAME (or PING);
 * check() is the stale test for an idle connection; reset() applies the release rules;
 * probe() is a bare TCP connect for the breaker's half-open trial. */
#ifdef TIDEPOOL_HAVE_HIREDIS

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "net/net.h"
#include "redis_internal.h"

tp_err tp__redis_ctx_error(const redisContext *c, int e, const char *doing, tp_errinfo *err)
{
    switch (c->err) {
    case REDIS_ERR_EOF:
        return tp_errinfo_set(err, TP_ECONNRESET, 0, "%s: the server closed the connection",
                              doing);
    case REDIS_ERR_PROTOCOL:
        return tp_errinfo_set(err, TP_EPROTO, 0, "%s: protocol error: %s", doing, c->errstr);
    case REDIS_ERR_OOM:
        return tp_errinfo_set(err, TP_ENOMEM, 0, "%s: out of memory", doing);
    case REDIS_ERR_IO:
        /* SO_RCVTIMEO/SO_SNDTIMEO expiring shows as EAGAIN on a blocking socket. */
        if (e == EAGAIN || e == EWOULDBLOCK)
            return tp_errinfo_set(err, TP_EREQTIMEDOUT, e, "%s: timed out", doing);
        if (e != 0)
            return tp__net_error(e, doing, NULL, err);
        return tp_errinfo_set(err, TP_EIO, 0, "%s: %s", doing, c->errstr);
    default:
        return tp_errinfo_set(err, TP_EIO, e, "%s: %s", doing, c->errstr);
    }
}

tp_err tp__redis_set_timeout(redisContext *c, int64_t d, tp_errinfo *err)
{
    struct timeval tv = {0, 0}; /* zero: no socket timeout */
    if (d != TP_DURATION_INFINITE) {
        if (d < TP_NSEC_PER_MSEC)
            d = TP_NSEC_PER_MSEC; /* zero would mean "no timeout" to the kernel */
        tv.tv_sec = (time_t)(d / TP_NSEC_PER_SEC);
        tv.tv_usec = (suseconds_t)((d % TP_NSEC_PER_SEC) / TP_NSEC_PER_USEC);
    }
    if (redisSetTimeout(c, tv) != REDIS_OK)
        return tp_errinfo_set(err, TP_ESYS, errno, "setting the socket timeouts failed");
    return TP_OK;
}

/* A server refusal in an error reply of the handshake. Only the error's first word is
 * quoted for AUTH: the server's text is not ours to vouch for, and must never be the
 * channel through which a credential leaks into a message. */
static tp_err refusal(const redisReply *r, const char *what, const tp_redis_target *t,
                      const char *dest, tp_errinfo *err)
{
    if (strstr(r->str, "max number of clients reached") != NULL)
        return tp_errinfo_set(err, TP_ESERVERFULL, 0, "%s: max number of clients reached", dest);
    if (strncmp(r->str, "LOADING", 7) == 0)
        return tp_errinfo_set(err, TP_EUNAVAIL, 0, "%s: the server is loading its dataset", dest);
    if (strcmp(what, "AUTH") == 0 || strncmp(r->str, "NOAUTH", 6) == 0 ||
        strncmp(r->str, "WRONGPASS", 9) == 0) {
        size_t w = strcspn(r->str, " ");
        return tp_errinfo_set(err, TP_EOPEN, 0, "%s: authentication failed for user %s (%.*s)",
                              dest, t->user[0] != '\0' ? t->user : "default",
                              (int)(w < 32 ? w : 32), r->str);
    }
    return tp_errinfo_set(err, TP_EOPEN, 0, "%s: %s refused: %.160s", dest, what, r->str);
}

/* One handshake command; TP_OK only for a non-error reply. */
static tp_err hs_command(redisContext *c, const tp_redis_target *t, const char *dest,
                         const char *what, int argc, const char **argv, tp_errinfo *err)
{
    redisReply *r = redisCommandArgv(c, argc, argv, NULL);
    if (r == NULL) {
        int e = errno;
        char doing[320];
        snprintf(doing, sizeof doing, "%s at %s", what, dest);
        tp_err rc = tp__redis_ctx_error(c, e, doing, err);
        if (rc == TP_EREQTIMEDOUT)
            rc = tp_errinfo_set(err, TP_ECONNTIMEDOUT, e,
                                "connect_timeout elapsed during %s with %s", what, dest);
        return rc;
    }
    tp_err rc = r->type == REDIS_REPLY_ERROR ? refusal(r, what, t, dest, err) : TP_OK;
    freeReplyObject(r);
    return rc;
}

static tp_err handshake(redisContext *c, const tp_redis_target *t, const char *name,
                        const char *dest, tp_errinfo *err)
{
    tp_err rc = TP_OK;
    if (t->has_password) {
        const char *av[3] = {"AUTH", t->user, t->password};
        rc = t->user[0] != '\0' ? hs_command(c, t, dest, "AUTH", 3, av, err)
                                : (av[1] = t->password, hs_command(c, t, dest, "AUTH", 2, av, err));
    }
    if (rc == TP_OK && t->db != 0) {
        char db[24];
        snprintf(db, sizeof db, "%ld", t->db);
        const char *av[2] = {"SELECT", db};
        rc = hs_command(c, t, dest, "SELECT", 2, av, err);
    }
    if (rc == TP_OK && name[0] != '\0') {
        const char *av[3] = {"CLIENT", "SETNAME", name};
        rc = hs_command(c, t, dest, "CLIENT SETNAME", 3, av, err);
    }
    if (rc == TP_OK && !t->has_password && t->db == 0 && name[0] == '\0') {
        /* Nothing else would talk to the server before the first lease: a refusal sent
         * at accept (max clients, protected mode, NOAUTH) must fail the open, not it. */
        const char *av[1] = {"PING"};
        rc = hs_command(c, t, dest, "PING", 1, av, err);
    }
    return rc;
}

/* The dialer's options for every connection: a peer that stops acknowledging what we
 * send is given up with the command it would have answered (command_timeout), not after
 * the kernel's quarter of an hour. */
static tp__dial_options dial_options(const tp_redis_pool *rp)
{
    tp__dial_options o = {0};
    if (rp->command_timeout != TP_DURATION_INFINITE)
        o.user_timeout = rp->command_timeout;
    return o;
}

static tp_err redis_open(void *ctx, const void *key, size_t keylen, int64_t deadline, void **out,
                         tp_errinfo *err)
{
    tp_redis_pool *rp = ctx;
    const tp_redis_target *t = tp__redis_find_target(rp, key, keylen);
    if (t == NULL)
        return tp_errinfo_set(err, TP_EINVAL, 0, "no Redis target for this key");
    char dest[TP__REDIS_HOST_MAX + 16];
    snprintf(dest, sizeof dest, strchr(t->host, ':') ? "[%s]:%u" : "%s:%u", t->host,
             (unsigned)t->port);
    int fd = -1;
    int64_t t0 = tp_clock_now();
    tp__dial_options dop = dial_options(rp);
    tp_err rc = tp__dial_host(t->host, t->port, &dop, deadline, &fd, NULL, NULL, err);
    if (rc == TP_ETIMEDOUT)
        return tp_errinfo_set(err, TP_ECONNTIMEDOUT, 0,
                              "connect to %s timed out after %.1f ms (of %.1f ms allowed)", dest,
                              (double)(tp_clock_now() - t0) / 1e6, (double)(deadline - t0) / 1e6);
    if (rc != TP_OK)
        return rc;
    /* hiredis's blocking API on a blocking socket; socket timeouts bound each call. */
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0) {
        int e = errno;
        close(fd);
        return tp_errinfo_set(err, TP_ESYS, e, "making the socket blocking failed");
    }
    redisContext *c = redisConnectFd(fd);
    if (c == NULL || c->err != 0) {
        if (c != NULL)
            redisFree(c); /* closes fd */
        else
            close(fd);
        return tp_errinfo_set(err, TP_ENOMEM, 0, "allocating a hiredis context");
    }
    tp_redis_lease *l = tp__calloc(1, sizeof *l);
    if (l == NULL) {
        redisFree(c);
        return tp_errinfo_set(err, TP_ENOMEM, 0, "allocating a Redis connection");
    }
    l->c = c;
    l->command_timeout = rp->command_timeout;
    int64_t left = deadline == TP_DURATION_INFINITE ? TP_DURATION_INFINITE
                                                    : deadline - tp_clock_now();
    if (left <= 0)
        rc = tp_errinfo_set(err, TP_ECONNTIMEDOUT, 0, "connect_timeout elapsed before AUTH "
                                                      "with %s", dest);
    if (rc == TP_OK)
        rc = tp__redis_set_timeout(c, left, err);
    if (rc == TP_OK)
        rc = handshake(c, t, rp->client_name, dest, err);
    if (rc == TP_OK && left != rp->command_timeout)
        rc = tp__redis_set_timeout(c, rp->command_timeout, err);
    if (rc != TP_OK) {
        redisFree(c);
        tp__free(l);
        return rc;
    }
    *out = l;
    return TP_OK;
}

static tp_err redis_check(void *ctx, void *conn, int64_t idle_ns)
{
    (void)ctx, (void)idle_ns;
    tp_redis_lease *l = conn;
    if (l->c->err != 0 || tp__redis_unclean(l) != NULL)
        return TP_ESTATE;
    /* An idle Redis connection has nothing to say: readable means EOF (the server's
     * `timeout`, a restart, CLIENT KILL) or an unsolicited push; either way, do not reuse. */
    struct pollfd p = {.fd = l->c->fd, .events = POLLIN};
    int n;
    do
        n = poll(&p, 1, 0);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return TP_ESYS;
    return n == 0 ? TP_OK : TP_ECONNRESET;
}

static tp_err redis_reset(void *ctx, void *conn)
{
    (void)ctx;
    tp_redis_lease *l = conn;
    l->conn = NULL;
    if (l->c->err != 0)
        return TP_ECONNRESET;
    return tp__redis_unclean(l) == NULL ? TP_OK : TP_ESTATE;
}

static void redis_close(void *ctx, void *conn, tp_close_reason reason)
{
    (void)ctx, (void)reason;
    tp_redis_lease *l = conn;
    redisFree(l->c);
    tp__free(l);
}

static tp_err redis_probe(void *ctx, const void *key, size_t keylen, int64_t deadline,
                          tp_errinfo *err)
{
    const tp_redis_target *t = tp__redis_find_target(ctx, key, keylen);
    if (t == NULL)
        return tp_errinfo_set(err, TP_EINVAL, 0, "no Redis target for this key");
    int fd = -1;
    tp__dial_options dop = dial_options(ctx);
    tp_err rc = tp__dial_host(t->host, t->port, &dop, deadline, &fd, NULL, NULL, err);
    if (fd >= 0)
        close(fd);
    return rc;
}

/* The connection's socket, for the pool's TCP health checks. */
static int redis_fd(void *ctx, void *conn)
{
    (void)ctx;
    return ((tp_redis_lease *)conn)->c->fd;
}

tp_connector tp__redis_connector(tp_redis_pool *rp)
{
    tp_connector c = {.open = redis_open,
                      .check = redis_check,
                      .reset = redis_reset,
                      .close = redis_close,
                      .probe = redis_probe,
                      .fd = redis_fd,
                      .ctx = rp};
    return c;
}

#else
typedef int tp__redis_conn_unused;
#endif
