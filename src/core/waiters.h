/* core/waiters.h: what waiters.c defines for the other files of the pool: a key's queue
 * of acquires: joining and leaving it, completing a waiter, and the decision step
 * applied to a waiter. The data structures are in types.h. */
#ifndef TP_CORE_WAITERS_H
#define TP_CORE_WAITERS_H

#include "types.h"
#include "after.h"
#include "step.h"

/* tp__waiter_enqueue_locked: queues w (key, flags, deadline, enqueued_at set) at the
 * back of its key's queue; crossing prewarm_waiters wakes maintenance to prewarm, and an
 * asynchronous waiter's deadline is scheduled. */
void tp__waiter_enqueue_locked(tp_pool *p, tp__waiter *w, int64_t now);

/* tp__waiter_requeue_front_locked: puts w back at the head of its key's queue (it was
 * served first and its open failed in a way worth waiting through). */
void tp__waiter_requeue_front_locked(tp_pool *p, tp__waiter *w);

/* tp__waiter_grant_conn_locked: hands c (IN_USE, unlinked) to w, dequeuing it. from_idle:
 * c was taken from the idle list, so it is validated before the lease begins (not one
 * just released or just opened). */
void tp__waiter_grant_conn_locked(tp_pool *p, tp__waiter *w, tp_conn *c, bool from_idle,
                                  tp__after *a);

/* tp__waiter_fail_locked: dequeues w and completes it with err (info: the detail; NULL
 * for the code's own wording). */
void tp__waiter_fail_locked(tp_pool *p, tp__waiter *w, tp_err err, const tp_errinfo *info,
                            tp__after *a);

/* tp__waiter_grant_open_locked: gives w the open slot just reserved for it (an open on a
 * worker, in its thread, or a slot for its caller), dequeuing it. */
void tp__waiter_grant_open_locked(tp_pool *p, tp__waiter *w, tp__after *a);

/* tp__waiter_dequeue_locked: takes w out of its key's queue (no-op if not queued). */
void tp__waiter_dequeue_locked(tp_pool *p, tp__waiter *w);

/* tp__waiter_step_locked: the decision step for w (queued or not): grants it a
 * connection or an open slot, fails it, or queues it (TP__STEP_QUEUE; *held_by_limit
 * when the adaptive limit is why, *until when to look again if finite). */
tp__step tp__waiter_step_locked(tp_pool *p, tp__waiter *w, int64_t now, bool *held_by_limit,
                                int64_t *until, tp__after *a);

#endif
