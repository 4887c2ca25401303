/* core/acquire.h: what acquire.c and acquire_async.c define for the other files of the
 * pool: the timeout message, and the completion of asynchronous acquires. The data structures are in types.h. */
#ifndef TP_CORE_ACQUIRE_H
#define TP_CORE_ACQUIRE_H

#include "types.h"
#include "after.h"

/* tp__timeout_error_locked: fills err with why an acquire for k timed out (what is in
 * use, who waits, the last open error) and returns TP_ETIMEDOUT. */
tp_err tp__timeout_error_locked(tp_pool *p, tp__key *k, int64_t waited, tp_errinfo *err);

/* tp__async_decide_locked: the decision step for the asynchronous acquire w, in no
 * queue (its tenant's quota place just granted, or the connection it was handed proved
 * stale): it is granted, failed (its completion queued on a) or queued on its key. */
void tp__async_decide_locked(tp_pool *p, tp__waiter *w, tp__after *a);

/* tp__async_deliver: completes the asynchronous acquire w outside the lock: validates a
 * connection it was handed (deciding again if it proved stale), begins its lease with
 * its tenant, runs its callback once, unpins its key and frees it. */
void tp__async_deliver(tp_pool *p, tp__waiter *w);

#endif
