/* acquire_async.c: the asynchronous acquire for event loops: the decision step (step.c)
 * says what a request gets; what cannot be had at once becomes a queued record (on the
 * key, or on its tenant while over quota) whose callback runs exactly once. Also the
 * delivery of that callback, and cancellation. */
#include <sched.h>
#include <stdio.h>
#include <string.h>

#include "pool_internal.h"

static tp__waiter *waiter_new_locked(tp_pool *p, const tp__acq *q, tp_acquire_cb cb, void *ud)
{
    tp__waiter *w = tp__calloc(1, sizeof *w);
    if (w == NULL)
        return NULL;
    w->async = true;
    w->pool = p;
    w->key = q->k;
    w->flags = q->flags;
    w->tenant = q->tenant;
    w->cb = cb;
    w->ud = ud;
    w->enqueued_at = q->start;
    w->deadline = q->deadline;
    w->ticket = ++p->next_ticket;
    return w;
}

/* Ends an acquire that returns at once without a waiter in the queue: unpins its key,
 * runs the deferred work, frees the record it did not need. */
static void finish_locked(tp_pool *p, tp__key *k, tp__waiter *w, tp__after *a)
{
    k->pins--;
    tp__after_run(p, a);
    tp__free(w);
}

/* The request could not be had at once: w (holding the key's pin and any quota place)
 * waits in the key's queue or for an open on a worker. */
static tp_err pending(tp_pool *p, tp__waiter *w, tp_acquire_result *res, tp__after *a)
{
    bool queued = w->queued;
    res->kind = TP_ACQUIRED_PENDING;
    res->ticket = w->ticket;
    const void *key = w->key->bytes;
    size_t keylen = w->key->keylen;
    if (queued && p->o.trace != NULL) /* the key stays pinned by w until it completes */
        w->key->pins++;
    tp__key *k = w->key;
    tp__after_run(p, a); /* w may complete (and be freed) from here on */
    if (queued && p->o.trace != NULL) {
        tp_trace_event ev = {.type = TP_TRACE_WAIT_START, .key = key, .keylen = keylen};
        tp__emit(p, &ev);
        tp__mutex_lock(&p->mu);
        k->pins--;
        tp__mutex_unlock(&p->mu);
    }
    return TP_OK;
}

/* Decides q now (the key pinned; the quota place taken if q has a tenant; w, if not
 * NULL, is the request's record, not queued). Returns with the lock released. */
static tp_err decide_locked(tp_pool *p, tp__acq *q, tp__waiter *w, tp_acquire_cb cb, void *ud,
                            tp_acquire_result *res, tp_errinfo *err, tp__after *a)
{
    tp__key *k = q->k;
    for (;;) {
        int64_t now = tp_clock_now();
        int64_t until;
        tp_conn *c = NULL;
        tp_err rc = TP_OK;
        tp__step s = tp__acquire_step_locked(p, q, now, &c, &until, &rc, err, a);
        if (s == TP__STEP_FAIL) {
            finish_locked(p, k, w, a);
            tp__tenant_giveback(p, q->tenant);
            return rc;
        }
        if (s == TP__STEP_CONN) {
            tp__after_run(p, a);
            tp_close_reason r = tp__reuse_verdict(p, c, now);
            tp__mutex_lock(&p->mu);
            if (r == TP_CLOSE__COUNT) {
                /* Not queued: no wait (acquire_wait counts it at 0). */
                finish_locked(p, k, w, a);
                tp__lease_begin(p, c, now, true, false, 0);
                tp__tenant_attach(q->tenant, c);
                res->kind = TP_ACQUIRED_LEASE;
                res->conn = c;
                return TP_OK;
            }
            if (r == TP_CLOSE_CHECK_FAILED)
                TP__ADD1(k->checks_failed, 1);
            tp__claimed_close_locked(p, c, r, a);
            tp__capacity_freed_locked(p, k, a);
            continue;
        }
        if (s == TP__STEP_OPEN && (q->flags & TP_ACQUIRE_CALLER_OPENS)) {
            tp_conn *slot = tp__slot_new_locked(p, k);
            if (slot == NULL) {
                tp__slot_release_locked(p, k, a);
                finish_locked(p, k, w, a);
                tp__tenant_giveback(p, q->tenant);
                return tp_errinfo_set(err, TP_ENOMEM, 0, "allocating an open slot");
            }
            slot->tenant = q->tenant; /* its place, until the open is done or fails */
            finish_locked(p, k, w, a);
            res->kind = TP_ACQUIRED_OPEN_SLOT;
            res->conn = slot;
            return TP_OK;
        }
        if (w == NULL) {
            w = waiter_new_locked(p, q, cb, ud);
            if (w == NULL) {
                if (s == TP__STEP_OPEN)
                    tp__slot_release_locked(p, k, a);
                finish_locked(p, k, NULL, a);
                tp__tenant_giveback(p, q->tenant);
                return tp_errinfo_set(err, TP_ENOMEM, 0, "allocating a waiter");
            }
            w->quota_held = q->tenant != NULL;
        }
        /* w holds the key's pin from here on. */
        if (s == TP__STEP_OPEN) {
            w->grant = TP__GRANT_OPEN;
            tp__list_push_back(&a->opens, &w->done_link);
        } else {
            tp__waiter_enqueue_locked(p, w, now);
            if (until != TP_DURATION_INFINITE)
                tp__key_due_locked(p, k, until); /* its backoff or cool-down ends */
        }
        return pending(p, w, res, a);
    }
}

tp_err tp_acquire_async(tp_pool *p, const tp_acquire_req *req, tp_acquire_cb cb, void *ud,
                        tp_acquire_result *res, tp_errinfo *err)
{
    if (res == NULL)
        return tp_errinfo_set(err, TP_EINVAL, 0, "res: NULL");
    memset(res, 0, sizeof *res);
    tp__acq q;
    tp_err rc = tp__acquire_prepare(
        p, req, TP_ACQUIRE_FRESH | TP_ACQUIRE_NOWAIT | TP_ACQUIRE_CALLER_OPENS, &q, &res->conn,
        err);
    if (rc != TP_OK)
        return rc;
    if (cb == NULL)
        return tp_errinfo_set(err, TP_EINVAL, 0, "cb: NULL");
    bool quota = q.tenant == NULL || tp__tenant_try_take(q.tenant);
    if (quota && !(q.flags & TP_ACQUIRE_FRESH)) {
        tp_conn *c = tp__fast_acquire(p, req->key, req->keylen, 0);
        if (c != NULL) {
            tp__tenant_attach(q.tenant, c);
            res->kind = TP_ACQUIRED_LEASE;
            res->conn = c;
            return TP_OK;
        }
    }
    tp__acquire_clock(&q);
    tp__after a;
    tp__after_init(&a);
    tp__mutex_lock(&p->mu);
    q.k = tp__acquire_key_locked(p, req, &rc, err);
    if (q.k == NULL) {
        tp__mutex_unlock(&p->mu);
        if (quota)
            tp__tenant_giveback(p, q.tenant);
        return rc;
    }
    q.k->last_active = q.start;
    tp__waiter *w = NULL;
    if (!quota) {
        /* Over the tenant's quota: queue on the tenant (or fail) before the key. */
        w = waiter_new_locked(p, &q, cb, ud);
        if (w == NULL) {
            finish_locked(p, q.k, NULL, &a);
            return tp_errinfo_set(err, TP_ENOMEM, 0, "allocating a waiter");
        }
        bool queued;
        rc = tp__tenant_take_or_queue_locked(p, q.tenant, w, &queued, err);
        if (rc == TP_OK && queued) {
            tp__maintenance_poke_locked(p, w->deadline);
            res->kind = TP_ACQUIRED_PENDING;
            res->ticket = w->ticket;
            tp__mutex_unlock(&p->mu);
            return TP_OK;
        }
        if (rc != TP_OK) {
            finish_locked(p, q.k, w, &a);
            return rc;
        }
    }
    return decide_locked(p, &q, w, cb, ud, res, err, &a);
}

void tp__async_decide_locked(tp_pool *p, tp__waiter *w, tp__after *a)
{
    TP__ASSERT_LOCKED(&p->mu);
    bool held;
    int64_t until;
    if (tp__waiter_step_locked(p, w, tp_clock_now(), &held, &until, a) == TP__STEP_QUEUE &&
        until != TP_DURATION_INFINITE)
        tp__key_due_locked(p, w->key, until);
}

void tp__async_deliver(tp_pool *p, tp__waiter *w)
{
    tp__key *k = w->key;
    if (w->grant == TP__GRANT_CONN) {
        tp_conn *c = w->conn;
        int64_t now = tp_clock_now();
        tp_close_reason r = w->check ? tp__reuse_verdict(p, c, now) : TP_CLOSE__COUNT;
        if (r != TP_CLOSE__COUNT) {
            /* Stale after all: close it and decide again (the request keeps its place in
             * time: its deadline and its wait so far). */
            tp__after a;
            tp__after_init(&a);
            tp__mutex_lock(&p->mu);
            if (r == TP_CLOSE_CHECK_FAILED)
                TP__ADD1(k->checks_failed, 1);
            tp__claimed_close_locked(p, c, r, &a);
            w->grant = TP__GRANT_NONE;
            w->conn = NULL;
            tp__async_decide_locked(p, w, &a);
            tp__capacity_freed_locked(p, k, &a);
            tp__after_run(p, &a); /* delivers w again if it was served */
            return;
        }
        tp__lease_begin(p, c, now, TP__LOAD(c->uses) > 0, false, now - w->enqueued_at);
        if (w->quota_held)
            tp__tenant_attach(w->tenant, c);
        w->cb(w->ud, TP_OK, TP_ACQUIRED_LEASE, c, NULL);
    } else if (w->grant == TP__GRANT_SLOT) {
        if (w->quota_held)
            w->conn->tenant = w->tenant;
        w->cb(w->ud, TP_OK, TP_ACQUIRED_OPEN_SLOT, w->conn, NULL);
    } else {
        if (w->quota_held)
            tp__tenant_giveback(p, w->tenant);
        w->cb(w->ud, w->err, TP_ACQUIRED_LEASE, NULL, &w->info);
    }
    tp__mutex_lock(&p->mu);
    k->pins--;
    tp__mutex_unlock(&p->mu);
    tp__free(w);
}

/* The queued asynchronous acquire with this ticket, in a key's or a tenant's queue: a
 * walk of the queued asynchronous acquires only, not of the key table. */
static tp__waiter *find_ticket_locked(tp_pool *p, uint64_t ticket)
{
    for (tp__list *n = p->async_queued.next; n != &p->async_queued; n = n->next) {
        tp__waiter *w = TP__CONTAINER_OF(n, tp__waiter, alink);
        if (w->ticket == ticket)
            return w;
    }
    return NULL;
}

tp_err tp_acquire_cancel(tp_pool *p, uint64_t ticket)
{
    if (p == NULL || ticket == 0)
        return TP_EINVAL;
    tp__mutex_lock(&p->mu);
    tp__waiter *w = find_ticket_locked(p, ticket);
    if (w == NULL) {
        tp__mutex_unlock(&p->mu);
        return TP_ESTATE;
    }
    if (w->on_tenant_queue)
        tp__tenant_dequeue_locked(w);
    else
        tp__waiter_dequeue_locked(p, w);
    w->key->pins--;
    tp__mutex_unlock(&p->mu);
    if (w->quota_held)
        tp__tenant_giveback(p, w->tenant);
    tp__free(w);
    return TP_OK;
}
