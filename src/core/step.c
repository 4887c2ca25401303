/* step.c: the acquire decision. Every verb (tp_acquire, tp_acquire_async, the idle-only
 * form, the serving of queued waiters on release) asks tp__acquire_step_locked what a
 * request gets now, so fairness, limits, the breaker, tenants and the wording of every
 * error are decided once. Order: a spare stream of a multiplexed connection in use, the
 * most recently used idle connection, an open, a place in the queue. The verbs only differ in how
 * they wait: on a condition variable, or as a queued record whose callback runs later. */
#include <stdio.h>
#include <string.h>

#include "pool_internal.h"

tp__step tp__acquire_step_locked(tp_pool *p, tp__acq *q, int64_t now, tp_conn **out, int64_t *until,
                                 tp_err *rc, tp_errinfo *err, tp__after *a)
{
    TP__ASSERT_LOCKED(&p->mu);
    tp__key *k = q->k;
    bool fresh = (q->flags & TP_ACQUIRE_FRESH) != 0;
    bool idle_only = (q->flags & TP_ACQUIRE_IDLE_ONLY) != 0;
    *until = TP_DURATION_INFINITE;
    q->held_by_limit = false;
    if (atomic_load(&p->closed)) {
        *rc = tp_errinfo_set(err, TP_ECLOSED, 0, "the pool is closed");
        return TP__STEP_FAIL;
    }
    for (;;) {
        /* A newcomer, or a waiter that is not first, may take a connection only while
         * the first waiter has not waited past fair_after; after that, arrival order. */
        bool may_take = true;
        if (!tp__list_empty(&k->waiters)) {
            tp__waiter *head = TP__CONTAINER_OF(k->waiters.next, tp__waiter, link);
            may_take = head == q->self || now - head->enqueued_at < p->o.fair_after;
        }
        /* The adaptive limit holds every newcomer back alike (a release wakes them). */
        if (may_take && !tp__key_admits_locked(p, k)) {
            may_take = false;
            q->held_by_limit = true;
        }
        if (!may_take)
            break;
        /* A stream of a connection already in use with room, before anything else: it
         * needs no validation, and leaves idle connections to rest and expire. */
        bool nomem = false;
        tp_conn *c = fresh ? NULL : tp__mux_spare_take_locked(p, k, now, &nomem);
        if (c == NULL && !nomem && !fresh)
            c = tp__idle_take_locked(p, k, q->keep_link && !tp__mux_may_locked(p, k));
        if (c != NULL && p->o.connector.streams != NULL && c->mux) {
            /* A multiplexed connection at rest: its first stream is the lease. */
            tp_conn *s = tp__mux_stream_locked(p, c);
            if (s == NULL) {
                tp__release_to_idle_locked(p, c, a);
                nomem = true;
            }
            c = s;
        }
        if (nomem) {
            *rc = tp_errinfo_set(err, TP_ENOMEM, 0, "allocating a stream lease");
            return TP__STEP_FAIL;
        }
        if (c != NULL) {
            *out = c;
            return TP__STEP_CONN;
        }
        if (idle_only)
            break;
        /* A key that may multiplex dials one connection at a time: what it opens may
         * carry everyone waiting (libcurl's PIPEWAIT; without it, a burst of requests to
         * a new HTTP/2 host dials one connection each). */
        if (tp__mux_may_locked(p, k) && k->opening > 0)
            break;
        tp__open_verdict v = tp__open_allowed_locked(p, k, now, false, until, a);
        if (v == TP__OPEN_OK)
            return TP__STEP_OPEN;
        if (v == TP__OPEN_WAIT && k->permit_blocked && !q->permit_counted) {
            q->permit_counted = true; /* a request waits once, however often it looks */
            TP__ADD1(k->permit_waits, 1);
        }
        if (v == TP__OPEN_WAIT && fresh && *until == TP_DURATION_INFINITE &&
            k->nconns + k->opening >= p->o.max_per_key) {
            /* Idle connections may be what fills the key: close the least recently used
             * one to make room for the fresh connection, and look again. */
            tp_conn *old = tp__idle_take_lru_locked(p, k);
            if (old != NULL) {
                tp__conn_close_locked(p, old, TP_CLOSE_IDLE_OVERFLOW, a);
                continue;
            }
        }
        if (v == TP__OPEN_BREAKER && tp__breaker_fails_fast_locked(k)) {
            *rc = tp__breaker_error_locked(p, k, err);
            return TP__STEP_FAIL;
        }
        if (v == TP__OPEN_NOPERMIT && tp__breaker_fails_fast_locked(k)) {
            *rc = tp__permit_error_locked(p, k, err);
            return TP__STEP_FAIL;
        }
        break;
    }
    if (idle_only) {
        *rc = tp_errinfo_set(err, TP_EAGAIN, 0, "no idle connection ready for this key");
        return TP__STEP_FAIL;
    }
    if ((q->flags & TP_ACQUIRE_NOWAIT) || now >= q->deadline) {
        TP__ADD1(k->timeouts, 1);
        *rc = tp__timeout_error_locked(p, k, now - q->start, err);
        return TP__STEP_FAIL;
    }
    if (q->self == NULL && p->o.max_waiters_per_key != TP_UNLIMITED &&
        atomic_load(&k->nwaiters) >= p->o.max_waiters_per_key) {
        TP__ADD1(k->rejects_busy, 1);
        *rc = tp_errinfo_set(err, TP_EBUSY, 0, "%lld acquires already wait for this key",
                             (long long)atomic_load(&k->nwaiters));
        return TP__STEP_FAIL;
    }
    return TP__STEP_QUEUE;
}

tp_err tp__acquire_prepare(tp_pool *p, const tp_acquire_req *req, unsigned allowed, tp__acq *q,
                           tp_conn **out, tp_errinfo *err)
{
    q->k = NULL;
    q->tenant = NULL;
    q->self = NULL;
    q->held_by_limit = false;
    q->keep_link = false;
    q->waited = false;
    q->permit_counted = false;
    q->start = q->deadline = 0;
    if (req == NULL)
        return tp_errinfo_set(err, TP_EINVAL, 0, "req: NULL");
    tp_err rc = tp__acquire_check_args(p, req->key, req->keylen, out, err);
    if (rc != TP_OK)
        return rc;
    if (req->flags & ~allowed)
        return tp_errinfo_set(err, TP_EINVAL, 0, "flags: unknown bits 0x%x for this call",
                              req->flags & ~allowed);
    int64_t timeout = req->timeout;
    if (timeout == TP_DURATION_DEFAULT || timeout == 0)
        timeout = p->o.acquire_timeout;
    if (timeout < 0)
        return tp_errinfo_set(err, TP_EINVAL, 0, "timeout: %lld is negative", (long long)timeout);
    q->flags = req->flags;
    if (timeout == 0) /* a pool whose acquire_timeout is 0 never queues */
        q->flags |= TP_ACQUIRE_NOWAIT;
    q->timeout = timeout;
    if (req->tenant != NULL) {
        q->tenant = tp__tenant_find(p, req->tenant);
        if (q->tenant == NULL)
            return tp_errinfo_set(err, TP_EINVAL, 0,
                                  "tenant \"%s\" is unknown: set its quota first", req->tenant);
    }
    return TP_OK;
}

void tp__acquire_clock(tp__acq *q)
{
    q->start = tp_clock_now();
    q->deadline = tp__saturating_add(q->start, q->timeout);
}

tp__key *tp__acquire_key_locked(tp_pool *p, const tp_acquire_req *req, tp_err *rc, tp_errinfo *err)
{
    uint64_t hash = tp__key_hash(req->key, req->keylen);
    if (req->flags & TP_ACQUIRE_IDLE_ONLY) {
        /* A key never seen has nothing idle: do not make one to say so. */
        tp__key *k = tp__key_find_locked(p, req->key, req->keylen, hash);
        if (k == NULL) {
            *rc = atomic_load(&p->closed)
                      ? tp_errinfo_set(err, TP_ECLOSED, 0, "the pool is closed")
                      : tp_errinfo_set(err, TP_EAGAIN, 0, "no idle connection ready for this key");
            return NULL;
        }
        tp__key_prefetch(k);
        k->pins++;
        return k;
    }
    tp__key *k = tp__key_get_locked(p, req->key, req->keylen, hash, rc);
    if (k == NULL) {
        tp_errinfo_set(err, *rc, 0,
                       *rc == TP_ELIMIT ? "max_keys (%lld) distinct keys already live"
                                        : "allocating a key (%lld max keys)",
                       (long long)p->o.max_keys);
        return NULL;
    }
    tp__key_prefetch(k); /* what the decision step reads next, in one go */
    k->pins++;
    return k;
}
