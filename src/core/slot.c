/* slot.c: open slots for callers that open connections themselves (an event loop
 * connecting without blocking: TP_ACQUIRE_CALLER_OPENS). A slot is a connection struct
 * bound to its key, with the open counted as "opening" against the limits, until the
 * caller reports the connection it made or why it could not. */
#include "pool_internal.h"

tp_conn *tp__slot_new_locked(tp_pool *p, tp__key *key)
{
    tp_conn *c = tp__conn_new_locked(p);
    if (c == NULL)
        return NULL;
    c->key = key;
    c->user = NULL;
    c->acquired_at = tp_clock_now(); /* the open's start, for open_time */
    key->pins++;
    return c;
}

tp_err tp_conn_open_done(tp_conn *slot, void *conn, tp_conn **lease)
{
    if (slot == NULL || conn == NULL || lease == NULL)
        return TP_EINVAL;
    *lease = NULL;
    tp_pool *p = slot->pool;
    tp__key *k = slot->key;
    tp__tenant *t = slot->tenant; /* the slot held its tenant's place: the lease takes it */
    slot->tenant = NULL;
    int64_t streams = 0; /* what a multiplexed connection carries */
    if (p->o.connector.streams != NULL)
        streams = p->o.connector.streams(p->o.connector.ctx, conn);
    tp__after a;
    tp__after_init(&a);
    tp__mutex_lock(&p->mu);
    int64_t now = tp_clock_now();
    int64_t started = slot->acquired_at;
    k->opening--;
    k->pins--;
    tp__conn_attach_locked(p, k, slot, conn, now);
    tp__mux_opened_locked(p, slot, streams);
    tp__open_done_locked(p, k, TP_OK, NULL, started, &a);
    if (atomic_load(&p->closed)) {
        tp__conn_close_locked(p, slot, TP_CLOSE_POOL_CLOSED, &a);
        tp__after_run(p, &a);
        tp__tenant_giveback(p, t);
        return TP_ECLOSED;
    }
    tp_conn *c = NULL;
    tp_err rc = tp__opened_lease_locked(p, slot, true, &c, NULL, &a);
    tp__after_run(p, &a);
    if (rc != TP_OK) {
        tp__tenant_giveback(p, t);
        return rc;
    }
    tp__lease_begin_async(p, c, now - started);
    tp__tenant_attach(t, c);
    *lease = c;
    return TP_OK;
}

tp_err tp_conn_open_failed(tp_conn *slot, tp_err rc, const tp_errinfo *err)
{
    if (slot == NULL)
        return TP_EINVAL;
    tp_pool *p = slot->pool;
    tp__key *k = slot->key;
    tp_errinfo info;
    if (err != NULL)
        info = *err;
    else
        tp_errinfo_set(&info, rc, 0, "open failed: %s", tp_strerror(rc));
    if (rc >= 0)
        rc = TP_EOPEN;
    tp__after a;
    tp__after_init(&a);
    tp__tenant *t = slot->tenant; /* the slot's place in its tenant's quota goes back */
    slot->tenant = NULL;
    tp__mutex_lock(&p->mu);
    int64_t started = slot->acquired_at;
    k->pins--;
    tp__conn_recycle_locked(p, slot);
    tp_err verdict = rc;
    if (rc == TP_ECANCELED) {
        /* A caller that gave up says nothing about the destination: no backoff, no
         * breaker, and a half-open key may run its trial again. */
        tp__slot_release_locked(p, k, &a);
    } else {
        k->opening--;
        p->total--;
        tp__permit_give_locked(p, k);
        tp__open_done_locked(p, k, rc, &info, started, &a);
        if (!atomic_load(&p->closed) && tp__open_failure_waits_locked(p, k, rc))
            verdict = TP_EAGAIN;
        tp__capacity_freed_locked(p, k, &a);
    }
    tp__after_run(p, &a);
    tp__tenant_giveback(p, t);
    return verdict;
}
