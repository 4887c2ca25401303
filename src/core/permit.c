/* permit.c: the open-permit hook, a budget shared beyond this pool (tidepool/fleet.h).
 *
 * The pool asks for a permit after its own limits, the pacing and the breaker allow an
 * open, so the budget is only ever charged for an open that goes ahead; and every slot
 * that ends gives its permit back, at the one place each end already counts the pool's
 * total down. A permit is therefore held exactly while a slot is counted in p->total:
 * opening, or a live connection. Both hook calls run under the pool's lock (they are
 * counters; the budget's own thread talks to its coordinator), which is what lets one
 * decision step stay the single place every open path is decided.
 *
 * "Wait" is the ordinary wait of a limit: the acquire queues, a released connection
 * still serves it, and tp_pool_permits_changed() serves the queues again when the budget
 * has more to give. */
#include <stdio.h>

#include "pool_internal.h"

tp__open_verdict tp__permit_take_locked(tp_pool *p, tp__key *key, bool ahead)
{
    TP__ASSERT_LOCKED(&p->mu);
    const tp_permit_hook *h = p->o.permits;
    if (h == NULL)
        return TP__OPEN_OK;
    switch (h->take(h->ctx, key->bytes, key->keylen)) {
    case TP_PERMIT_GRANTED:
        return TP__OPEN_OK;
    case TP_PERMIT_REFUSED:
        if (!ahead)
            TP__ADD1(key->permit_refusals, 1);
        return TP__OPEN_NOPERMIT;
    case TP_PERMIT_WAIT:
    default: /* an answer we do not know: the safe one */
        key->permit_blocked = true; /* the decision step counts the request's wait */
        if (ahead)
            p->permit_ahead_held = true;
        return TP__OPEN_WAIT;
    }
}

void tp__permit_give_locked(tp_pool *p, tp__key *key)
{
    TP__ASSERT_LOCKED(&p->mu);
    const tp_permit_hook *h = p->o.permits;
    if (h != NULL)
        h->give(h->ctx, key->bytes, key->keylen);
}

tp_err tp__permit_error_locked(tp_pool *p, tp__key *key, tp_errinfo *err)
{
    TP__ASSERT_LOCKED(&p->mu);
    (void)p;
    return tp_errinfo_set(err, TP_ENOPERMIT, 0,
                          "no permit to open a connection: the shared budget refused "
                          "(%llu refusals for this key), and the key holds no connection "
                          "to wait for",
                          (unsigned long long)TP__LOAD(key->permit_refusals));
}

void tp_pool_permits_changed(tp_pool *p)
{
    if (p == NULL)
        return;
    tp__after a;
    tp__after_init(&a);
    tp__mutex_lock(&p->mu);
    if (!atomic_load(&p->closed)) {
        tp__waiting_keys_serve_locked(p, &a);
        /* Warm-ups no request waits on are maintenance's: it looks at every key again
         * (a walk of the table, but only after such an open was held back). */
        if (p->permit_ahead_held) {
            p->permit_ahead_held = false;
            int64_t now = tp_clock_now();
            for (size_t i = 0; i < p->nbuckets; i++)
                for (tp__key *k = p->buckets[i]; k != NULL; k = k->hnext)
                    tp__key_due_locked(p, k, now);
        }
    }
    tp__after_run(p, &a);
}

int64_t tp_pool_shed(tp_pool *p, int64_t n)
{
    if (p == NULL)
        return 0;
    if (n <= 0) {
        atomic_store(&p->shed_pending, 0);
        return 0;
    }
    tp__after a;
    tp__after_init(&a);
    tp__mutex_lock(&p->mu);
    int64_t shed = 0;
    while (shed < n) {
        tp_conn *c = tp__idle_pool_lru_locked(p, NULL, NULL);
        if (c == NULL)
            break;
        if (!tp__idle_claim_locked(p, c, TP__CS_RESERVED))
            continue; /* a thread took it back without the lock: it is no longer idle */
        tp__conn_close_locked(p, c, TP_CLOSE_SHED, &a);
        shed++;
    }
    /* The rest as their leases end: a pool whose connections are never idle (every
     * release handed to a waiter) still gives back. */
    atomic_store(&p->shed_pending, n - shed);
    tp__after_run(p, &a);
    return shed;
}
