/* core/waiters.h: what waiters.c defines for the other files of the pool: a key's queue
 * of acquires: leaving it, completing a waiter. The data structures are in types.h. */
#ifndef TP_CORE_WAITERS_H
#define TP_CORE_WAITERS_H

#include "types.h"
#include "after.h"

/* tp__waiter_grant_conn_locked: hands c (IN_USE, unlinked) to queued waiter w. */
void tp__waiter_grant_conn_locked(tp_pool *p, tp__waiter *w, tp_conn *c, tp__after *a);

/* tp__waiter_fail_locked: dequeues w and completes it with err. */
void tp__waiter_fail_locked(tp_pool *p, tp__waiter *w, tp_err err, const char *msg, tp__after *a);

/* tp__waiter_grant_open_locked: reserves an open slot for w and dequeues it. */
void tp__waiter_grant_open_locked(tp_pool *p, tp__waiter *w, tp__after *a);

/* tp__waiter_dequeue_locked: takes w out of its key's queue. */
void tp__waiter_dequeue_locked(tp_pool *p, tp__waiter *w);

#endif
