/* core/permit.h: what permit.c defines for the other files of the pool: the open-permit
 * hook (tp_permit_hook) asked before each open and told of each slot's end, and the
 * calls a shared budget makes into the pool. The data structures are in types.h. */
#ifndef TP_CORE_PERMIT_H
#define TP_CORE_PERMIT_H

#include "types.h"
#include "breaker.h"

/* tp__permit_take_locked: asks the hook (if any) for a permit to open a connection for
 * key, once every other limit allows the open. TP__OPEN_OK: granted (or no hook), held by
 * the slot about to be reserved; TP__OPEN_WAIT: none now (key->permit_blocked set, for
 * the decision step to count the request's wait once); TP__OPEN_NOPERMIT: refused
 * (counted unless ahead: an open no request waits on). */
tp__open_verdict tp__permit_take_locked(tp_pool *p, tp__key *key, bool ahead);

/* tp__permit_give_locked: a reserved slot of key ended (an unused slot, a failed open, a
 * closed connection): its permit goes back to the hook. Called wherever the pool's total
 * goes down, except for a child's forgetting of inherited connections. */
void tp__permit_give_locked(tp_pool *p, tp__key *key);

/* tp__shed_on_release: should the connection of a lease ending now close (reason shed)
 * because tp_pool_shed() still has some to give back? Takes one if so. Lock-free. */
static inline bool tp__shed_on_release(tp_pool *p)
{
    int64_t n = atomic_load_explicit(&p->shed_pending, memory_order_relaxed);
    while (n > 0)
        if (atomic_compare_exchange_weak(&p->shed_pending, &n, n - 1))
            return true;
    return false;
}

/* tp__permit_error_locked: fills err with TP_ENOPERMIT for an acquire of key that the
 * hook refused with nothing to wait for. */
tp_err tp__permit_error_locked(tp_pool *p, tp__key *key, tp_errinfo *err);

#endif
