/* resolve.c: host names to TCP addresses, with getaddrinfo(): at once, bounded by a
 * deadline, or asynchronously for an event loop (tp__lookup).
 *
 * getaddrinfo() has no timeout and cannot be interrupted, yet a connect deadline must
 * include name resolution (a dead DNS server would otherwise block for resolv.conf's
 * timeout times its attempts). So a bounded lookup of a name runs on one of the
 * library's workers (base/workq.h) and shares a small reference-counted job with the
 * caller: whoever finishes with the job last frees it, and a result nobody waits for any
 * more is freed by the worker. This is the threaded-resolver approach of curl and Go's
 * cgo resolver, on a fixed set of threads as libuv's. */
#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "base/sync.h"
#include "base/workq.h"
#include "net/net.h"

/* A literal needs no lookup: it is resolved with AI_NUMERICHOST, synchronously. */
bool tp__is_ip_literal(const char *host)
{
    unsigned char buf[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

static void fill_hints(struct addrinfo *h, bool literal)
{
    memset(h, 0, sizeof *h);
    h->ai_family = AF_UNSPEC;
    h->ai_socktype = SOCK_STREAM;
    h->ai_protocol = IPPROTO_TCP;
    h->ai_flags = AI_NUMERICSERV;
    /* AI_ADDRCONFIG drops IPv6 answers on hosts without IPv6 (and vice versa), which
     * would only fail to connect; a literal is what the caller asked for, so kept. */
    h->ai_flags |= literal ? AI_NUMERICHOST : AI_ADDRCONFIG;
}

/* Turns a getaddrinfo() result code into a tp_err with the cause in the message. */
static tp_err resolve_error(int rc, int sys_errno, const char *host, uint16_t port, tp_errinfo *err)
{
    if (rc == EAI_MEMORY)
        return tp_errinfo_set(err, TP_ENOMEM, 0, "resolve %s:%u: out of memory", host, port);
    if (rc == EAI_SYSTEM) {
        char buf[128];
        return tp_errinfo_set(err, TP_ERESOLVE, sys_errno, "resolve %s:%u: %s", host, port,
                              tp__errno_text(sys_errno, buf, sizeof buf));
    }
    return tp_errinfo_set(err, TP_ERESOLVE, 0, "resolve %s:%u: %s", host, port, gai_strerror(rc));
}

void tp__addrs_from_ai(const struct addrinfo *list, tp__addrs *out)
{
    out->n = 0;
    for (const struct addrinfo *a = list; a != NULL && out->n < TP__ADDRS_MAX; a = a->ai_next) {
        if ((a->ai_family != AF_INET && a->ai_family != AF_INET6) ||
            a->ai_addrlen > sizeof out->a[0].u)
            continue;
        tp__addr *d = &out->a[out->n++];
        memset(d, 0, sizeof *d);
        memcpy(&d->u, a->ai_addr, a->ai_addrlen);
        d->len = a->ai_addrlen;
    }
}

tp_err tp__resolve(const char *host, uint16_t port, struct addrinfo **out, tp_errinfo *err)
{
    return tp__resolve_until(host, port, TP_DURATION_INFINITE, out, err);
}

/* ---- bounded lookup on a worker ---------------------------------------------------- */

/* A lookup handed to a worker. Both sides hold it (refs) until each is done with it: the
 * caller may give up at its deadline while the worker is still in getaddrinfo(). */
typedef struct resolve_job {
    tp__work work;
    tp__mutex mu;
    pthread_cond_t cv; /* signalled when done; waits use CLOCK_MONOTONIC */
    int refs;          /* 2 while both sides hold it; guarded by mu */
    bool done;         /* guarded by mu */
    int rc, sys_errno; /* getaddrinfo()'s result, valid once done */
    struct addrinfo *res;
    struct addrinfo hints;
    char service[8];
    char host[]; /* copied: the caller's string may be gone when the worker runs */
} resolve_job;

static void job_free(resolve_job *j)
{
    if (j->res != NULL)
        freeaddrinfo(j->res);
    pthread_cond_destroy(&j->cv);
    tp__mutex_destroy(&j->mu);
    tp__free(j);
}

/* Drops one reference; the last holder frees the job (and any unclaimed result). */
static void job_release(resolve_job *j)
{
    tp__mutex_lock(&j->mu);
    bool last = --j->refs == 0;
    tp__mutex_unlock(&j->mu);
    if (last)
        job_free(j);
}

static void resolve_work(tp__work *w)
{
    resolve_job *j = TP__CONTAINER_OF(w, resolve_job, work);
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(j->host, j->service, &j->hints, &res);
    int e = errno;
    tp__mutex_lock(&j->mu);
    j->rc = rc;
    j->sys_errno = e;
    j->res = res;
    j->done = true;
    pthread_cond_signal(&j->cv);
    tp__mutex_unlock(&j->mu);
    job_release(j);
}

static resolve_job *job_create(const char *host, const char *service, const struct addrinfo *h)
{
    size_t n = strlen(host) + 1;
    resolve_job *j = tp__calloc(1, sizeof *j + n);
    if (j == NULL)
        return NULL;
    memcpy(j->host, host, n);
    snprintf(j->service, sizeof j->service, "%s", service);
    j->hints = *h;
    j->refs = 2;
    j->work.fn = resolve_work;
    if (tp__cond_init(&j->cv) != 0) {
        tp__free(j);
        return NULL;
    }
    if (tp__mutex_init(&j->mu) != 0) {
        pthread_cond_destroy(&j->cv);
        tp__free(j);
        return NULL;
    }
    return j;
}

/* Runs the lookup on a worker and waits until it is done or the deadline passed.
 * Returns false if no worker took it (the caller then resolves inline): the queue is
 * full or has no thread, or this is a worker already (waiting there for another job
 * could wait for the jobs queued behind it). */
static bool lookup_bounded(const char *host, const char *service, const struct addrinfo *h,
                           int64_t deadline, int *rc, int *sys_errno, struct addrinfo **res,
                           bool *timed_out)
{
    if (tp__work_on_worker())
        return false;
    resolve_job *j = job_create(host, service, h);
    if (j == NULL)
        return false;
    if (tp__work_submit(&j->work) != TP_OK) {
        job_free(j);
        return false;
    }
    tp__mutex_lock(&j->mu);
    while (!j->done && tp_clock_now() < deadline)
        tp__cond_wait_until(&j->cv, &j->mu, deadline);
    *timed_out = !j->done;
    if (j->done) {
        *rc = j->rc;
        *sys_errno = j->sys_errno;
        *res = j->res;
        j->res = NULL; /* claimed: job_free() must not free it */
    }
    tp__mutex_unlock(&j->mu);
    job_release(j);
    return true;
}

tp_err tp__resolve_until(const char *host, uint16_t port, int64_t deadline, struct addrinfo **out,
                         tp_errinfo *err)
{
    *out = NULL;
    if (host == NULL || host[0] == '\0')
        return tp_errinfo_set(err, TP_EINVAL, 0, "resolve: empty host name");
    bool literal = tp__is_ip_literal(host);
    struct addrinfo hints;
    fill_hints(&hints, literal);
    char service[8];
    snprintf(service, sizeof service, "%u", (unsigned)port);

    int rc = 0, sys_errno = 0;
    struct addrinfo *res = NULL;
    bool timed_out = false;
    bool bounded = !literal && deadline != TP_DURATION_INFINITE;
    if (bounded && tp_clock_now() >= deadline)
        return tp_errinfo_set(err, TP_ETIMEDOUT, 0, "resolve %s: timed out", host);
    if (!bounded ||
        !lookup_bounded(host, service, &hints, deadline, &rc, &sys_errno, &res, &timed_out)) {
        /* Literals never block; without a deadline there is nothing to bound; and when
         * no worker takes it (see lookup_bounded), a lookup that may block is still
         * better than failing a working name. */
        rc = getaddrinfo(host, service, &hints, &res);
        sys_errno = errno;
    }
    if (timed_out)
        return tp_errinfo_set(err, TP_ETIMEDOUT, 0, "resolve %s: timed out", host);
    if (rc != 0)
        return resolve_error(rc, sys_errno, host, port, err);
    if (res == NULL)
        return tp_errinfo_set(err, TP_ERESOLVE, 0, "resolve %s:%u: no addresses", host, port);
    *out = res;
    return TP_OK;
}

/* ---- asynchronous lookup on a worker ----------------------------------------------- */

/* An event loop's lookup: the worker calls done when getaddrinfo() returns, unless the
 * caller abandoned it first. state, under mu: RUNNING, then either ABANDONED (the worker
 * frees it) or DONE (the caller takes the result and frees it). */
enum { LOOKUP_RUNNING, LOOKUP_ABANDONED, LOOKUP_DONE };

struct tp__lookup {
    tp__work work;
    tp__mutex mu;
    int state;
    tp__lookup_fn done;
    void *ud;
    int rc, sys_errno;
    struct addrinfo *res;
    struct addrinfo hints;
    uint16_t port;
    char service[8];
    char host[];
};

static void lookup_free(tp__lookup *l)
{
    if (l->res != NULL)
        freeaddrinfo(l->res);
    tp__mutex_destroy(&l->mu);
    tp__free(l);
}

static void lookup_work(tp__work *w)
{
    tp__lookup *l = TP__CONTAINER_OF(w, tp__lookup, work);
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(l->host, l->service, &l->hints, &res);
    int e = errno;
    tp__mutex_lock(&l->mu);
    l->rc = rc;
    l->sys_errno = e;
    l->res = res;
    bool abandoned = l->state == LOOKUP_ABANDONED;
    if (!abandoned)
        l->state = LOOKUP_DONE;
    tp__mutex_unlock(&l->mu);
    if (abandoned)
        lookup_free(l);
    else
        l->done(l->ud, l); /* the caller's from here on */
}

tp_err tp__lookup_start(const char *host, uint16_t port, tp__lookup_fn done, void *ud,
                        tp__lookup **out, tp_errinfo *err)
{
    *out = NULL;
    if (host == NULL || host[0] == '\0')
        return tp_errinfo_set(err, TP_EINVAL, 0, "resolve: empty host name");
    size_t n = strlen(host) + 1;
    tp__lookup *l = tp__calloc(1, sizeof *l + n);
    if (l == NULL)
        return tp_errinfo_set(err, TP_ENOMEM, 0, "resolve %s: out of memory", host);
    if (tp__mutex_init(&l->mu) != 0) {
        tp__free(l);
        return tp_errinfo_set(err, TP_ESYS, 0, "resolve %s: creating a lock failed", host);
    }
    memcpy(l->host, host, n);
    l->port = port;
    snprintf(l->service, sizeof l->service, "%u", (unsigned)port);
    fill_hints(&l->hints, tp__is_ip_literal(host));
    l->done = done;
    l->ud = ud;
    l->work.fn = lookup_work;
    tp_err rc = tp__work_submit(&l->work);
    if (rc != TP_OK) {
        lookup_free(l);
        return tp_errinfo_set(err, rc, 0, "resolve %s: no worker took the lookup (%s)", host,
                              tp_err_name(rc));
    }
    *out = l;
    return TP_OK;
}

tp_err tp__lookup_take(tp__lookup *l, struct addrinfo **out, tp_errinfo *err)
{
    *out = NULL;
    tp_err rc = TP_OK;
    if (l->rc != 0)
        rc = resolve_error(l->rc, l->sys_errno, l->host, l->port, err);
    else if (l->res == NULL)
        rc = tp_errinfo_set(err, TP_ERESOLVE, 0, "resolve %s:%u: no addresses", l->host,
                            (unsigned)l->port);
    else {
        *out = l->res;
        l->res = NULL;
    }
    lookup_free(l);
    return rc;
}

bool tp__lookup_abandon(tp__lookup *l)
{
    tp__mutex_lock(&l->mu);
    bool running = l->state == LOOKUP_RUNNING;
    if (running)
        l->state = LOOKUP_ABANDONED;
    tp__mutex_unlock(&l->mu);
    return running;
}
