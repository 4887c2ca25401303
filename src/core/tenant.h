/* core/tenant.h: what tenant.c defines for the other files of the pool: tenant quotas.
 * The data structures are in types.h. */
#ifndef TP_CORE_TENANT_H
#define TP_CORE_TENANT_H

#include "types.h"
#include "after.h"

/* tp__tenant_release: a lease of tenant t ended: gives its place back and wakes a
 * waiter if any (no lock needed unless someone waits). */
void tp__tenant_release(tp_pool *p, tp__tenant *t);

/* tp__tenants_close_locked: wakes every tenant waiter and fails the queued asynchronous
 * ones (the pool is closing). */
void tp__tenants_close_locked(tp_pool *p, tp__after *a);

/* tp__tenant_find: the tenant named name, or NULL (takes the lock). */
tp__tenant *tp__tenant_find(tp_pool *p, const char *name);

/* tp__tenant_take_or_wait: takes a place in t's quota for a blocking acquire, waiting
 * until deadline if the tenant waits (*waited set when it did). TP_OK, TP_EQUOTA or
 * TP_ECLOSED (err filled). */
tp_err tp__tenant_take_or_wait(tp_pool *p, tp__tenant *t, int64_t deadline, bool *waited,
                               tp_errinfo *err);

/* tp__tenant_try_take: takes a place in t's quota if one is free, without the lock. */
bool tp__tenant_try_take(tp__tenant *t);

/* tp__tenant_take_or_queue_locked: takes a place in t's quota for the asynchronous
 * acquire w (TP_OK, w->quota_held), queues w on the tenant until a place frees (TP_OK
 * with *queued: tp__async_decide_locked() then takes it on), or fails with TP_EQUOTA
 * (err filled). */
tp_err tp__tenant_take_or_queue_locked(tp_pool *p, tp__tenant *t, tp__waiter *w, bool *queued,
                                       tp_errinfo *err);

/* tp__tenant_dequeue_locked: takes w out of its tenant's queue. */
void tp__tenant_dequeue_locked(tp__waiter *w);

/* tp__tenant_lease_end: the lease c ends for its tenant, if it has one (before the
 * connection can be published: the place is free for the next acquire). */
static inline void tp__tenant_lease_end(tp_pool *p, tp_conn *c)
{
    tp__tenant *t = c->tenant;
    if (t == NULL)
        return;
    c->tenant = NULL;
    tp__tenant_release(p, t);
}

/* tp__tenant_attach: the lease c holds its tenant t's place (NULL t: none). */
void tp__tenant_attach(tp__tenant *t, tp_conn *c);

/* tp__tenant_giveback: an acquire that held a place in t's quota (NULL t: none) failed:
 * gives the place back (outside the lock). */
void tp__tenant_giveback(tp_pool *p, tp__tenant *t);

/* tp__tenants_expire_locked: fails the queued asynchronous acquires past their deadline
 * (or of tenants that stopped waiting); returns the earliest deadline still pending. */
int64_t tp__tenants_expire_locked(tp_pool *p, int64_t now, tp__after *a);

/* tp__tenants_free_locked: frees every tenant (the pool is being freed). */
void tp__tenants_free_locked(tp_pool *p);

#endif
