/* acquire_async.c: the asynchronous acquire for event loops, and its cancellation. */
#include <sched.h>
#include <stdio.h>
#include <string.h>

#include "pool_internal.h"

/* ---- asynchronous acquire ------------------------------------------------------------ */

int tp_pool_acquire_async(tp_pool *p, const void *key, size_t keylen, int64_t timeout,
                          tp_acquire_cb cb, void *ud, tp_conn **out, uint64_t *ticket,
                          tp_errinfo *err)
{
    return tp_pool_acquire_async_ex(p, key, keylen, timeout, 0, cb, ud, out, ticket, err);
}

int tp_pool_acquire_async_ex(tp_pool *p, const void *key, size_t keylen, int64_t timeout,
                             unsigned flags, tp_acquire_cb cb, void *ud, tp_conn **out,
                             uint64_t *ticket, tp_errinfo *err)
{
    tp_err rc = tp__acquire_check_args(p, key, keylen, out, err);
    if (rc != TP_OK)
        return rc;
    if (cb == NULL)
        return tp_errinfo_set(err, TP_EINVAL, 0, "cb: NULL");
    const unsigned known = TP_ACQUIRE_FRESH | TP_ACQUIRE_CALLER_OPENS;
    if (flags & ~known)
        return tp_errinfo_set(err, TP_EINVAL, 0, "flags: unknown bits 0x%x", flags & ~known);
    bool fresh = (flags & TP_ACQUIRE_FRESH) != 0;
    bool caller_opens = (flags & TP_ACQUIRE_CALLER_OPENS) != 0;
    if (timeout == TP_DURATION_DEFAULT)
        timeout = p->o.acquire_timeout;
    if (timeout < 0)
        return tp_errinfo_set(err, TP_EINVAL, 0, "timeout: %lld is negative", (long long)timeout);
    if (ticket != NULL)
        *ticket = 0;
    tp_conn *c = fresh ? NULL : tp__fast_acquire(p, key, keylen);
    if (c != NULL) {
        *out = c;
        return TP_OK;
    }
    uint64_t hash = tp__key_hash(key, keylen);
    int64_t start = tp_clock_now();
    tp__after a;
    tp__after_init(&a);
    tp__mutex_lock(&p->mu);
    for (;;) {
        if (atomic_load(&p->closed)) {
            tp__mutex_unlock(&p->mu);
            return tp_errinfo_set(err, TP_ECLOSED, 0, "the pool is closed");
        }
        tp__key *k = tp__key_get_locked(p, key, keylen, hash, &rc);
        if (k == NULL) {
            tp__mutex_unlock(&p->mu);
            return tp_errinfo_set(err, rc, 0, "%s",
                                  rc == TP_ELIMIT ? "max_keys reached" : "allocating key");
        }
        k->last_active = start;
        int64_t now = tp_clock_now();
        int64_t until = TP_DURATION_INFINITE;
        tp__open_verdict v = TP__OPEN_WAIT;
        if (atomic_load(&k->nwaiters) == 0 && tp__key_admits_locked(p, k)) {
            c = fresh ? NULL : tp__idle_take_locked(p, k);
            if (c != NULL) {
                k->pins++;
                tp__after_run(p, &a);
                tp_close_reason r = tp__reuse_verdict(p, c, now);
                tp__mutex_lock(&p->mu);
                k->pins--;
                if (r == TP_CLOSE__COUNT) {
                    tp__hist_add(&k->wait_hist, now - start);
                    tp__mutex_unlock(&p->mu);
                    tp__lease_begin(p, c, now, true, false, now - start);
                    *out = c;
                    return TP_OK;
                }
                if (r == TP_CLOSE_CHECK_FAILED)
                    TP__ADD1(k->checks_failed, 1);
                tp__conn_close_locked(p, c, r, &a);
                tp__capacity_freed_locked(p, k, &a);
                continue;
            }
            v = tp__open_allowed_locked(p, k, now, false, &until, &a);
            if (v == TP__OPEN_WAIT && fresh && until == TP_DURATION_INFINITE &&
                k->nconns + k->opening >= p->o.max_per_key) {
                tp_conn *old = tp__idle_take_lru_locked(p, k);
                if (old != NULL) {
                    tp__conn_close_locked(p, old, TP_CLOSE_IDLE_OVERFLOW, &a);
                    continue;
                }
            }
            if (v == TP__OPEN_OK && caller_opens) {
                tp_conn *slot = tp__slot_new_locked(p, k);
                if (slot == NULL) {
                    tp__slot_release_locked(p, k, &a);
                    tp__after_run(p, &a);
                    return tp_errinfo_set(err, TP_ENOMEM, 0, "allocating an open slot");
                }
                tp__after_run(p, &a);
                *out = slot;
                return TP_OPEN_SLOT;
            }
        }
        if (v == TP__OPEN_BREAKER && tp__breaker_fails_fast_locked(k)) {
            rc = tp__breaker_error_locked(p, k, err);
            tp__after_run(p, &a);
            return rc;
        }
        if (v != TP__OPEN_OK) {
            if (timeout == 0) {
                TP__ADD1(k->timeouts, 1);
                rc = tp__timeout_error_locked(p, k, 0, err);
                tp__after_run(p, &a);
                return rc;
            }
            if (p->o.max_waiters_per_key != TP_UNLIMITED &&
                atomic_load(&k->nwaiters) >= p->o.max_waiters_per_key) {
                TP__ADD1(k->rejects_busy, 1);
                tp__after_run(p, &a);
                return tp_errinfo_set(err, TP_EBUSY, 0, "too many waiters for this key");
            }
        }
        tp__waiter *w = tp__calloc(1, sizeof *w);
        if (w == NULL) {
            if (v == TP__OPEN_OK)
                tp__slot_release_locked(p, k, &a);
            tp__after_run(p, &a);
            return tp_errinfo_set(err, TP_ENOMEM, 0, "allocating a waiter");
        }
        w->async = true;
        w->caller_opens = caller_opens;
        w->key = k;
        w->cb = cb;
        w->ud = ud;
        w->pool = p;
        w->enqueued_at = start;
        w->deadline = tp__saturating_add(start, timeout);
        w->ticket = p->next_ticket++;
        k->pins++;
        if (ticket != NULL)
            *ticket = w->ticket;
        bool queued = v != TP__OPEN_OK;
        if (queued) {
            tp__list_push_back(&k->waiters, &w->link);
            atomic_fetch_add(&p->waiters_total, 1);
            TP__ADD1(k->waits, 1);
            atomic_fetch_add(&k->nwaiters, 1);
            tp__maintenance_poke_locked(p, TP__MIN(w->deadline, until));
        } else {
            w->grant = TP__GRANT_OPEN;
            tp__list_push_back(&a.opens, &w->done_link);
        }
        tp__after_run(p, &a);
        if (queued && p->o.trace != NULL) {
            tp_trace_event ev = {.type = TP_TRACE_WAIT_START, .key = key, .keylen = keylen};
            tp__emit(p, &ev);
        }
        return TP_PENDING;
    }
}

tp_err tp_pool_acquire_cancel(tp_pool *p, uint64_t ticket)
{
    if (p == NULL || ticket == 0)
        return TP_EINVAL;
    tp__mutex_lock(&p->mu);
    for (size_t i = 0; i < p->nbuckets; i++) {
        for (tp__key *k = p->buckets[i]; k != NULL; k = k->hnext) {
            for (tp__list *n = k->waiters.next; n != &k->waiters; n = n->next) {
                tp__waiter *w = TP__CONTAINER_OF(n, tp__waiter, link);
                if (!w->async || w->ticket != ticket)
                    continue;
                tp__waiter_dequeue_locked(p, w);
                k->pins--;
                tp__mutex_unlock(&p->mu);
                tp__free(w);
                return TP_OK;
            }
        }
    }
    tp__mutex_unlock(&p->mu);
    return TP_ESTATE;
}
