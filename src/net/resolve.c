/* resolve.c: host names to TCP addresses, with getaddrinfo(), optionally bounded by a
 * deadline.
 *
 * getaddrinfo() has no timeout and cannot be interrupted, yet a connect deadline must
 * include name resolution (a dead DNS server would otherwise block for resolv.conf's
 * timeout times its attempts). So a bounded lookup of a name runs on a detached helper
 * thread that shares a small reference-counted job with the caller: whoever finishes
 * with the job last frees it, and a result nobody waits for any more is freed by the
 * helper. This is the threaded-resolver approach of curl and Go's cgo resolver. */
#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "net/net.h"

/* A literal needs no lookup: it is resolved with AI_NUMERICHOST, synchronously. */
static bool is_literal(const char *host)
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

tp_err tp__resolve(const char *host, uint16_t port, struct addrinfo **out, tp_errinfo *err)
{
    return tp__resolve_until(host, port, TP_DURATION_INFINITE, out, err);
}

/* ---- bounded lookup on a helper thread ------------------------------------------- */

typedef struct resolve_job {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* signalled when done; waits use CLOCK_MONOTONIC */
    int refs;          /* 2 while both sides hold it; guarded by mu */
    bool done;         /* guarded by mu */
    int rc, sys_errno; /* getaddrinfo()'s result, valid once done */
    struct addrinfo *res;
    struct addrinfo hints;
    char service[8];
    char host[]; /* copied: the caller's string may be gone when the helper runs */
} resolve_job;

static void job_free(resolve_job *j)
{
    if (j->res != NULL)
        freeaddrinfo(j->res);
    pthread_cond_destroy(&j->cv);
    pthread_mutex_destroy(&j->mu);
    tp__free(j);
}

/* Drops one reference; the last holder frees the job (and any unclaimed result). */
static void job_release(resolve_job *j)
{
    pthread_mutex_lock(&j->mu);
    bool last = --j->refs == 0;
    pthread_mutex_unlock(&j->mu);
    if (last)
        job_free(j);
}

static void *resolve_thread(void *arg)
{
    resolve_job *j = arg;
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(j->host, j->service, &j->hints, &res);
    int e = errno;
    pthread_mutex_lock(&j->mu);
    j->rc = rc;
    j->sys_errno = e;
    j->res = res;
    j->done = true;
    pthread_cond_signal(&j->cv);
    pthread_mutex_unlock(&j->mu);
    job_release(j);
    return NULL;
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
    pthread_condattr_t ca;
    if (pthread_condattr_init(&ca) != 0) {
        tp__free(j);
        return NULL;
    }
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    int rc = pthread_cond_init(&j->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (rc != 0) {
        tp__free(j);
        return NULL;
    }
    if (pthread_mutex_init(&j->mu, NULL) != 0) {
        pthread_cond_destroy(&j->cv);
        tp__free(j);
        return NULL;
    }
    return j;
}

/* Starts the helper detached, with every signal blocked so that the application's
 * handlers never run on a thread it does not know about. Returns an errno value. */
static int start_helper(resolve_job *j)
{
    pthread_attr_t attr;
    int rc = pthread_attr_init(&attr);
    if (rc != 0)
        return rc;
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_t t;
    rc = pthread_create(&t, &attr, resolve_thread, j);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    return rc;
}

/* CLOCK_MONOTONIC absolute time for a tp_clock_now() deadline (the two clocks tick at
 * the same rate but need not share an origin). */
static struct timespec mono_abs(int64_t deadline)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t left = deadline - tp_clock_now();
    if (left < 0)
        left = 0;
    int64_t ns = (int64_t)ts.tv_nsec + left % TP_NSEC_PER_SEC;
    ts.tv_sec += (time_t)(left / TP_NSEC_PER_SEC + ns / TP_NSEC_PER_SEC);
    ts.tv_nsec = (long)(ns % TP_NSEC_PER_SEC);
    return ts;
}

/* Runs the lookup on a helper and waits until it is done or the deadline passed.
 * Returns false if no helper could be started (the caller then resolves inline). */
static bool lookup_bounded(const char *host, const char *service, const struct addrinfo *h,
                           int64_t deadline, int *rc, int *sys_errno, struct addrinfo **res,
                           bool *timed_out)
{
    resolve_job *j = job_create(host, service, h);
    if (j == NULL)
        return false;
    if (start_helper(j) != 0) {
        job_free(j);
        return false;
    }
    struct timespec until = mono_abs(deadline);
    pthread_mutex_lock(&j->mu);
    /* 0 is a wake-up (maybe spurious: look at done again); anything else, ETIMEDOUT
     * or an error, ends the wait. */
    while (!j->done && pthread_cond_timedwait(&j->cv, &j->mu, &until) == 0) {
    }
    *timed_out = !j->done;
    if (j->done) {
        *rc = j->rc;
        *sys_errno = j->sys_errno;
        *res = j->res;
        j->res = NULL; /* claimed: job_free() must not free it */
    }
    pthread_mutex_unlock(&j->mu);
    job_release(j);
    return true;
}

tp_err tp__resolve_until(const char *host, uint16_t port, int64_t deadline, struct addrinfo **out,
                         tp_errinfo *err)
{
    *out = NULL;
    if (host == NULL || host[0] == '\0')
        return tp_errinfo_set(err, TP_EINVAL, 0, "resolve: empty host name");
    bool literal = is_literal(host);
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
         * no helper thread can be started (the system is out of threads or memory), a
         * lookup that may block is still better than failing a working name. */
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
