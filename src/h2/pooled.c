/* pooled.c: HTTP/2 connections in a tidepool pool. A connector opens each connection
 * (TCP, TLS with ALPN "h2" or cleartext with prior knowledge) as a multiplexed pool
 * connection whose capacity is the session's. A request runs on a lease (one stream).
 *
 * Several leases of one connection run on different threads, and a session takes one
 * thread at a time. So the connection has a lock, held only for non-blocking steps and
 * never across a wait. One waiter at a time is the reader: it polls the socket with the
 * lock released, then steps. The others wait on a condition variable, which every step
 * broadcasts. A stream submitted while the reader polls wakes it through an eventfd, so
 * its frames go out at once. Whoever steps passes capacity changes (SETTINGS, GOAWAY) to
 * the pool. A stalled stream holds nobody else back: each waiter only waits for its own
 * stream, and every step serves them all. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "base/sync.h"
#include "h2/h2.h"

typedef struct h2_connector {
    tp__h2_connector_options o;
    tp__tls_ctx *tls; /* NULL for cleartext only */
    bool own_tls;     /* made here (else the caller's o.tls_ctx) */
    tp__dial_options dial;
} h2_connector;

/* One pooled connection. */
typedef struct h2_pooled {
    tp__mutex mu;
    pthread_cond_t cv; /* broadcast after every step */
    int wake;          /* eventfd: a submit wakes the polling reader */
    tp__h2 *h;
    bool reading;                    /* a waiter polls the socket (with mu released) */
    bool syncing;                    /* a waiter is telling the pool a new capacity */
    int32_t capacity;                /* what the pool was last told */
    uint64_t requests, max_requests; /* streams started; drain at max (0: never) */
} h2_pooled;

/* "host:port" of a key, after an optional "https://" (*tls true) or "http://" (false;
 * with neither, *tls stays as it came), into host (cap bytes) and *port. */
static tp_err parse_key(const void *key, size_t keylen, char *host, size_t cap, uint16_t *port,
                        bool *tls, tp_errinfo *err)
{
    const char *k = key;
    static const struct {
        const char *p;
        size_t n;
        bool tls;
    } schemes[] = {{"https://", 8, true}, {"http://", 7, false}};
    for (size_t s = 0; s < 2; s++)
        if (keylen > schemes[s].n && memcmp(k, schemes[s].p, schemes[s].n) == 0) {
            *tls = schemes[s].tls;
            k += schemes[s].n;
            keylen -= schemes[s].n;
            break;
        }
    const char *colon = keylen > 0 ? memrchr(k, ':', keylen) : NULL;
    size_t hl = colon != NULL ? (size_t)(colon - k) : 0;
    unsigned long p = 0;
    size_t i = hl + 1;
    for (; colon != NULL && i < keylen && k[i] >= '0' && k[i] <= '9' && p <= 65535; i++)
        p = p * 10 + (unsigned long)(k[i] - '0');
    if (colon == NULL || hl == 0 || hl >= cap || i != keylen || i == hl + 1 || p == 0 || p > 65535)
        return tp_errinfo_set(err, TP_EINVAL, 0, "HTTP/2 key \"%.*s\": not host:port",
                              (int)(keylen < 64 ? keylen : 64), k);
    /* An IPv6 literal comes bracketed, as in a URL */
    if (hl >= 2 && k[0] == '[' && k[hl - 1] == ']') {
        memcpy(host, k + 1, hl - 2);
        host[hl - 2] = '\0';
    } else {
        memcpy(host, k, hl);
        host[hl] = '\0';
    }
    *port = (uint16_t)p;
    return TP_OK;
}

static void h2_close(void *ctx, void *conn, tp_close_reason reason);

static tp_err h2_open(void *ctx, const void *key, size_t keylen, int64_t deadline, void **conn,
                      tp_errinfo *err)
{
    h2_connector *cn = ctx;
    char host[256];
    uint16_t port = 0;
    bool tls = cn->o.tls;
    tp_err rc = parse_key(key, keylen, host, sizeof host, &port, &tls, err);
    if (rc != TP_OK)
        return rc;
    if (tls && cn->tls == NULL)
        return tp_errinfo_set(err, TP_EINVAL, 0, "HTTP/2 key \"%s:%u\": TLS without a context",
                              host, port);
    if (cn->o.known_not_h2 != NULL && cn->o.known_not_h2(cn->o.ud, key, keylen))
        return tp_errinfo_set(err, TP_EPROTO, ENOPROTOOPT,
                              "%s:%u does not speak HTTP/2 (ALPN said so)", host, port);
    int fd = -1;
    rc = tp__dial_host(host, port, &cn->dial, deadline, &fd, NULL, NULL, err);
    if (rc != TP_OK)
        return rc;
    tp__stream s;
    tp__stream_init(&s, fd);
    if (tls) {
        rc = tp__tls_start(&s, cn->tls, host, NULL, err);
        if (rc == TP_OK)
            rc = tp__tls_handshake(&s, deadline, err);
        if (rc == TP_OK && strcmp(s.alpn, "h2") != 0) {
            if (cn->o.not_h2 != NULL)
                cn->o.not_h2(cn->o.ud, key, keylen, s.alpn);
            rc = tp_errinfo_set(err, TP_EPROTO, ENOPROTOOPT,
                                "%s:%u did not agree to HTTP/2 by ALPN (it chose \"%s\")", host,
                                port, s.alpn[0] != '\0' ? s.alpn : "nothing");
        }
        if (rc != TP_OK) {
            tp__stream_close(&s);
            return rc;
        }
    }
    h2_pooled *pc = tp__calloc(1, sizeof *pc);
    if (pc == NULL) {
        tp__stream_close(&s);
        return tp_errinfo_set(err, TP_ENOMEM, 0, "HTTP/2: allocating a connection");
    }
    pc->wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (pc->wake < 0 || tp__mutex_init(&pc->mu) != 0 || tp__cond_init(&pc->cv) != 0) {
        int e = errno;
        if (pc->wake >= 0)
            close(pc->wake);
        tp__free(pc);
        tp__stream_close(&s);
        return tp_errinfo_set(err, TP_ESYS, e, "HTTP/2: a connection's lock or eventfd");
    }
    rc = tp__h2_new(&s, &cn->o.h2, &pc->h, err); /* takes s, also on failure */
    if (rc != TP_OK) {
        close(pc->wake);
        tp__mutex_destroy(&pc->mu);
        pthread_cond_destroy(&pc->cv);
        tp__free(pc);
        return rc;
    }
    /* The server's SETTINGS come right behind the handshake: wait for them, so that the
     * pool's first capacity is the server's word and not the 100 assumed (streams sent
     * over its real limit before it arrived would be refused). */
    while (rc == TP_OK && !tp__h2_settings_seen(pc->h)) {
        int want = 0;
        rc = tp__h2_step(pc->h, &want, err);
        if (rc == TP_OK && !tp__h2_settings_seen(pc->h))
            rc = tp__net_wait(tp__h2_fd(pc->h), want, deadline, "HTTP/2 SETTINGS from", host, err);
    }
    if (rc != TP_OK) {
        h2_close(NULL, pc, TP_CLOSE_BROKEN);
        return rc;
    }
    pc->capacity = tp__h2_capacity(pc->h);
    /* This connection's own bound, shortened at random by up to the jitter. */
    if (cn->o.max_requests > 0) {
        double cut = 1.0 - cn->o.jitter * tp__rand_unit();
        pc->max_requests = (uint64_t)((double)cn->o.max_requests * cut);
        if (pc->max_requests == 0)
            pc->max_requests = 1;
    }
    *conn = pc;
    return TP_OK;
}

static int64_t h2_streams(void *ctx, void *conn)
{
    (void)ctx;
    h2_pooled *pc = conn;
    return pc->capacity; /* 100 assumed until SETTINGS: the pool learns the rest live */
}

/* A PING and its answer by ping_timeout, with the lock released while polling (the
 * connection is idle: no stream waits on it, nobody else reads). pc->mu held. */
static bool ping_answered(h2_pooled *pc)
{
    int64_t deadline = tp_deadline_after(tp__h2_ping_timeout(pc->h));
    if (!tp__h2_ping_pending(pc->h) && tp__h2_ping(pc->h, NULL) != TP_OK)
        return false;
    for (;;) {
        int want = 0;
        if (tp__h2_step(pc->h, &want, NULL) != TP_OK)
            return false;
        if (!tp__h2_ping_pending(pc->h))
            return true;
        if (tp_clock_now() >= deadline)
            return false;
        pc->reading = true;
        tp__mutex_unlock(&pc->mu);
        tp_err rc = tp__net_wait(tp__h2_fd(pc->h), want, deadline, "a PING answer from", "", NULL);
        tp__mutex_lock(&pc->mu);
        pc->reading = false;
        pthread_cond_broadcast(&pc->cv);
        if (rc != TP_OK && rc != TP_ETIMEDOUT)
            return false;
    }
}

static tp_err h2_check(void *ctx, void *conn, int64_t idle_ns)
{
    (void)ctx, (void)idle_ns;
    h2_pooled *pc = conn;
    tp__mutex_lock(&pc->mu);
    int want;
    tp_err rc = pc->reading ? TP_OK : tp__h2_step(pc->h, &want, NULL);
    bool usable = rc == TP_OK && tp__h2_capacity(pc->h) > 0;
    /* Silent for ping_idle: a PING must come back before a request goes on it, so a peer
     * that vanished costs this check ping_timeout at most, not a request its timeout. */
    if (usable && !pc->reading && tp__h2_open_streams(pc->h) == 0 &&
        tp__h2_ping_idle(pc->h) != TP_DURATION_INFINITE &&
        tp__h2_idle_ns(pc->h) >= tp__h2_ping_idle(pc->h))
        usable = ping_answered(pc);
    tp__mutex_unlock(&pc->mu);
    return usable ? TP_OK : TP_ECONNRESET;
}

static void h2_close(void *ctx, void *conn, tp_close_reason reason)
{
    (void)ctx, (void)reason;
    h2_pooled *pc = conn;
    tp__h2_free(pc->h);
    close(pc->wake);
    tp__mutex_destroy(&pc->mu);
    pthread_cond_destroy(&pc->cv);
    tp__free(pc);
}

static const char *h2_protocol(void *ctx, void *conn)
{
    (void)ctx, (void)conn;
    return "h2";
}

static int h2_fd(void *ctx, void *conn)
{
    (void)ctx;
    return tp__h2_fd(((h2_pooled *)conn)->h);
}

tp_err tp__h2_connector_new(const tp__h2_connector_options *o, tp_connector *out, tp_errinfo *err)
{
    memset(out, 0, sizeof *out);
    h2_connector *cn = tp__calloc(1, sizeof *cn);
    if (cn == NULL)
        return tp_errinfo_set(err, TP_ENOMEM, 0, "HTTP/2: allocating the connector");
    if (o != NULL)
        cn->o = *o;
    cn->dial =
        cn->o.dial != NULL ? *cn->o.dial : (tp__dial_options){.user_timeout = cn->o.user_timeout};
    cn->o.dial = NULL;
    cn->tls = cn->o.tls_ctx;
    if (cn->tls == NULL && cn->o.tls) {
        tp__tls_options to = {.ca_file = cn->o.ca_file,
                              .insecure_skip_verify = cn->o.insecure_skip_verify,
                              .alpn = "h2"};
        tp_err rc = tp__tls_ctx_create(&to, &cn->tls, err);
        if (rc != TP_OK) {
            tp__free(cn);
            return rc;
        }
        cn->own_tls = true;
    }
    cn->o.ca_file = NULL; /* not kept: the TLS context has read it */
    *out = (tp_connector){.open = h2_open,
                          .check = h2_check,
                          .close = h2_close,
                          .fd = h2_fd,
                          .streams = h2_streams,
                          .protocol = h2_protocol,
                          .ctx = cn};
    return TP_OK;
}

void tp__h2_connector_free(tp_connector *c)
{
    if (c == NULL || c->ctx == NULL)
        return;
    h2_connector *cn = c->ctx;
    if (cn->own_tls)
        tp__tls_ctx_destroy(cn->tls);
    tp__free(cn);
    c->ctx = NULL;
}

/* ---- requests on leases ------------------------------------------------------------ */

/* Tells the pool what the session now carries. Called with pc->mu held; the pool is
 * told with it released (the pool may run waiters' callbacks on this thread, and one may
 * start a request on this very connection). One waiter at a time does it, until what it
 * told is still the session's word when it looks again, so no stale value is last. */
static void sync_capacity(h2_pooled *pc, tp_conn *lease)
{
    if (pc->syncing)
        return; /* the one syncing looks again after its call */
    pc->syncing = true;
    for (int32_t cap; (cap = tp__h2_capacity(pc->h)) != pc->capacity;) {
        pc->capacity = cap;
        tp__mutex_unlock(&pc->mu);
        (void)tp_conn_set_capacity(lease, cap);
        tp__mutex_lock(&pc->mu);
    }
    pc->syncing = false;
}

/* What the session learnt (GOAWAYs, a PING's round trip) into the key's statistics. */
static void report_news(h2_pooled *pc, tp_conn *lease)
{
    uint64_t goaways[TP_GOAWAY_CODES] = {0};
    int64_t rtt;
    if (!tp__h2_news(pc->h, goaways, &rtt))
        return;
    for (uint32_t code = 0; code < TP_GOAWAY_CODES; code++)
        for (uint64_t i = 0; i < goaways[code]; i++)
            tp_conn_record_goaway(lease, code);
    if (rtt >= 0)
        tp_conn_record_ping_rtt(lease, rtt);
}

/* Steps the session (pc->mu held) and wakes everyone waiting on it. */
static tp_err step_locked(h2_pooled *pc, tp_conn *lease, int *want, tp_errinfo *err)
{
    tp_err rc = tp__h2_step(pc->h, want, err);
    report_news(pc, lease);
    sync_capacity(pc, lease);
    pthread_cond_broadcast(&pc->cv);
    return rc;
}

/* What a waiter waits for: the response's header, or body bytes to read. */
typedef enum { UNTIL_HEADER, UNTIL_DATA } until;

static bool reached(const tp__h2_stream *st, until u)
{
    if (tp__h2_stream_done(st))
        return true;
    return u == UNTIL_HEADER ? tp__h2_stream_status(st) != 0 : tp__h2_stream_buffered(st) > 0;
}

/* Waits (pc->mu held) until st reaches u, is over, the connection dies or the deadline
 * passes (TP_ETIMEDOUT). */
static tp_err wait_locked(h2_pooled *pc, tp_conn *lease, tp__h2_stream *st, until u,
                          int64_t deadline, tp_errinfo *err)
{
    for (;;) {
        if (reached(st, u))
            return TP_OK;
        if (tp_clock_now() >= deadline)
            return tp_errinfo_set(err, TP_ETIMEDOUT, 0, "HTTP/2 stream %d: no %s in time",
                                  tp__h2_stream_id(st),
                                  u == UNTIL_HEADER ? "response header" : "body bytes");
        if (pc->reading) { /* someone polls: its step will wake us */
            tp__cond_wait_until(&pc->cv, &pc->mu, deadline);
            continue;
        }
        int want = 0;
        tp_err rc = step_locked(pc, lease, &want, err);
        if (reached(st, u))
            return TP_OK;
        if (rc != TP_OK)
            return rc;
        if (pc->reading)
            continue; /* another took the socket while the pool was told the capacity */
        pc->reading = true;
        /* Woken for the session's health too (a PING to send, one overdue); read under
         * the lock, which submitters hold while they change the open streams. */
        int64_t wake_at = TP__MIN(deadline, tp__h2_health_due(pc->h));
        tp__mutex_unlock(&pc->mu);
        struct pollfd p[2] = {
            {tp__h2_fd(pc->h),
             (short)((want & TP__WANT_READ ? POLLIN : 0) | (want & TP__WANT_WRITE ? POLLOUT : 0)),
             0},
            {pc->wake, POLLIN, 0}};
        int64_t left = wake_at - tp_clock_now();
        int ms = left <= 0                         ? 0
                 : left / TP_NSEC_PER_MSEC >= 1000 ? 1000
                                                   : (int)(left / TP_NSEC_PER_MSEC) + 1;
        if (poll(p, 2, ms) > 0 && p[1].revents) {
            uint64_t v;
            if (read(pc->wake, &v, sizeof v) < 0 && errno != EAGAIN)
                v = 0; /* drained either way */
        }
        tp__mutex_lock(&pc->mu);
        pc->reading = false;
        /* Whether or not we go on, another waiter may read now: none sleeps on a socket
         * that nobody polls. */
        pthread_cond_broadcast(&pc->cv);
    }
}

/* A stream started on pc (pc->mu held): past its bounds the connection drains by our
 * GOAWAY, which the next step sends and whose capacity 0 tells the pool. */
static void count_request(h2_pooled *pc)
{
    pc->requests++;
    if (pc->max_requests > 0 && pc->requests >= pc->max_requests)
        (void)tp__h2_goaway(pc->h, NULL);
}

/* Wakes a reader polling the socket (pc->mu held), so its next step sends our frames. */
static tp_err wake_reader(h2_pooled *pc, tp_errinfo *err)
{
    uint64_t one = 1;
    if (pc->reading && write(pc->wake, &one, sizeof one) < 0 && errno != EAGAIN)
        return tp_errinfo_set(err, TP_ESYS, errno, "HTTP/2: waking the reader");
    return TP_OK;
}

/* Starts rq as a stream on pc (pc->mu held), counted against the connection's bound, and
 * wakes a polling reader to send it. On failure *out is NULL. */
static tp_err start_locked(h2_pooled *pc, const tp__h2_request *rq, tp__h2_stream **out,
                           tp_errinfo *err)
{
    tp_err rc = tp__h2_submit(pc->h, rq, out, err);
    if (rc == TP_OK) {
        count_request(pc);
        rc = wake_reader(pc, err);
    }
    if (rc != TP_OK && *out != NULL) {
        tp__h2_stream_free(pc->h, *out);
        *out = NULL;
    }
    return rc;
}

tp_err tp__h2_lease_request(tp_conn *lease, const tp__h2_request *rq, int64_t deadline,
                            tp__h2_stream **out, bool *unprocessed, tp_errinfo *err)
{
    *out = NULL;
    if (unprocessed != NULL)
        *unprocessed = false;
    h2_pooled *pc = tp_conn_get(lease);
    tp__mutex_lock(&pc->mu);
    tp_err rc = start_locked(pc, rq, out, err);
    if (rc == TP_OK)
        rc = wait_locked(pc, lease, *out, UNTIL_HEADER, deadline, err);
    if (rc == TP_OK && tp__h2_stream_done(*out))
        rc = tp__h2_stream_result(*out, err);
    if (unprocessed != NULL)
        *unprocessed = rc == TP_ESTATE || (*out != NULL && tp__h2_stream_unprocessed(*out));
    if (rc != TP_OK && *out != NULL) {
        tp__h2_stream_free(pc->h, *out); /* reset if still open (our deadline) */
        *out = NULL;
    }
    tp__mutex_unlock(&pc->mu);
    return rc;
}

/* ---- the same for an event loop: nothing here blocks -------------------------------- */

tp_err tp__h2_lease_submit(tp_conn *lease, const tp__h2_request *rq, bool send_now,
                           tp__h2_stream **out, bool *unprocessed, tp_errinfo *err)
{
    *out = NULL;
    h2_pooled *pc = tp_conn_get(lease);
    tp__mutex_lock(&pc->mu);
    tp_err rc = start_locked(pc, rq, out, err);
    *unprocessed = rc == TP_ESTATE; /* never sent: it drains, or is dead */
    /* Its frames go now, as far as the socket takes them. That step may also end the
     * connection (closed after its GOAWAY) with this stream answered in it, or failed,
     * or refused: the stream's own result says which (tp__h2_lease_take), not the step's. */
    int want;
    if (rc == TP_OK && send_now)
        (void)step_locked(pc, lease, &want, NULL);
    tp__mutex_unlock(&pc->mu);
    return rc;
}

tp_err tp__h2_lease_step(tp_conn *lease, tp_errinfo *err)
{
    h2_pooled *pc = tp_conn_get(lease);
    tp__mutex_lock(&pc->mu);
    int want;
    tp_err rc = step_locked(pc, lease, &want, err);
    tp__mutex_unlock(&pc->mu);
    return rc;
}

int64_t tp__h2_lease_health_due(tp_conn *lease)
{
    h2_pooled *pc = tp_conn_get(lease);
    tp__mutex_lock(&pc->mu);
    int64_t due = tp__h2_health_due(pc->h);
    tp__mutex_unlock(&pc->mu);
    return due;
}

int tp__h2_lease_fd(tp_conn *lease)
{
    return h2_fd(NULL, tp_conn_get(lease));
}

tp_err tp__h2_lease_take(tp_conn *lease, tp__h2_stream *st, tp__buf *body, size_t max, int *status,
                         bool *done, bool *unprocessed, tp_errinfo *err)
{
    h2_pooled *pc = tp_conn_get(lease);
    tp__mutex_lock(&pc->mu);
    tp_err rc = TP_OK;
    size_t n;
    while (rc == TP_OK && (n = tp__h2_stream_buffered(st)) > 0) {
        if (body->len + n > max) {
            rc = tp_errinfo_set(err, TP_ETOOBIG, 0, "response body over max_body_bytes (%zu)", max);
        } else if (tp__buf_reserve(body, n) != TP_OK) {
            rc = tp_errinfo_set(err, TP_ENOMEM, 0, "a response body of %zu bytes", body->len);
        } else {
            size_t got;
            tp__h2_stream_read(pc->h, st, body->data + body->len, n, &got);
            body->len += got;
            body->data[body->len] = '\0';
        }
    }
    *status = tp__h2_stream_status(st);
    *done = tp__h2_stream_done(st);
    *unprocessed = *done && tp__h2_stream_unprocessed(st);
    if (rc == TP_OK && *done)
        rc = tp__h2_stream_result(st, err);
    tp__mutex_unlock(&pc->mu);
    return rc;
}

tp_err tp__h2_lease_read(tp_conn *lease, tp__h2_stream *st, void *buf, size_t cap, size_t *got,
                         int64_t deadline, tp_errinfo *err)
{
    *got = 0;
    h2_pooled *pc = tp_conn_get(lease);
    tp__mutex_lock(&pc->mu);
    tp_err rc = wait_locked(pc, lease, st, UNTIL_DATA, deadline, err);
    if (rc == TP_OK) {
        tp__h2_stream_read(pc->h, st, buf, cap, got);
        if (*got == 0) /* over with nothing left: the end, or how it failed */
            rc = tp__h2_stream_result(st, err);
    }
    tp__mutex_unlock(&pc->mu);
    return rc;
}

void tp__h2_lease_done(tp_conn *lease, tp__h2_stream *st)
{
    h2_pooled *pc = tp_conn_get(lease);
    tp__mutex_lock(&pc->mu);
    tp__h2_stream_free(pc->h, st);
    tp__mutex_unlock(&pc->mu);
}

bool tp__h2_lease_alive(tp_conn *lease)
{
    h2_pooled *pc = tp_conn_get(lease);
    tp__mutex_lock(&pc->mu);
    bool alive = tp__h2_capacity(pc->h) > 0;
    tp__mutex_unlock(&pc->mu);
    return alive;
}
