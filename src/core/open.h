/* core/open.h: what open.c defines for the other files of the pool: opening a
 * connection (in the caller, or on a worker for an async waiter). The data structures
 * are in types.h. */
#ifndef TP_CORE_OPEN_H
#define TP_CORE_OPEN_H

#include "types.h"
#include "after.h"

/* tp__open_slot_locked: opens a connection for key in the calling thread. Called with
 * the lock held and an open slot reserved (opening and total counted; prewarm: also
 * counted in prewarming); the lock is released around connector open(). Returns with the
 * lock held and the slot consumed: on success *out is a live IN_USE connection of key
 * (not yet leased). */
tp_err tp__open_slot_locked(tp_pool *p, tp__key *key, int64_t deadline, bool prewarm,
                            bool lease, tp_conn **out, tp_errinfo *err, tp__after *a);

/* tp__opened_lease_locked: the lease of a connection c just opened (and attached) for
 * an acquire (lease) or for the pool (not): c itself, or its first stream if it is
 * multiplexed; either way acquires waiting on the key's one open look again. */
tp_err tp__opened_lease_locked(tp_pool *p, tp_conn *c, bool lease, tp_conn **out,
                               tp_errinfo *err, tp__after *a);

/* tp__slot_release_locked: gives back an open slot reserved by tp__open_allowed_locked()
 * that will not be used, and lets waiters have it. */
void tp__slot_release_locked(tp_pool *p, tp__key *key, tp__after *a);

/* tp__async_open_start: queues the open of a connection for w on a worker (or fails w
 * with TP_EBUSY / TP_ESYS when no worker takes it). */
void tp__async_open_start(tp_pool *p, tp__waiter *w);

#endif
