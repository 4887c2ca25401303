/* core/lifecycle.h: what lifecycle.c defines for the other files of the pool: the
 * pool's life and its connection structs. The data structures are in types.h. */
#ifndef TP_CORE_LIFECYCLE_H
#define TP_CORE_LIFECYCLE_H

#include "types.h"
#include "after.h"

/* tp__conn_close_locked: takes a live connection out of its key (unlinking it, counting
 * the close) and queues connector close() on a. The caller owns the connection (it is
 * IN_USE or RESERVED, or was just claimed). */
void tp__conn_close_locked(tp_pool *p, tp_conn *c, tp_close_reason reason, tp__after *a);

/* tp__conn_new_locked: a connection struct from the free list or the allocator, in state
 * FREE, not in any list. NULL on allocation failure. */
tp_conn *tp__conn_new_locked(tp_pool *p);

/* tp__conn_recycle_locked: returns a struct taken by tp__conn_new_locked() unused. */
void tp__conn_recycle_locked(tp_pool *p, tp_conn *c);

/* tp__conn_attach_locked: makes c a live, IN_USE connection of key (after open()). */
void tp__conn_attach_locked(tp_pool *p, tp__key *key, tp_conn *c, void *user, int64_t now);

/* tp__maybe_free_locked: frees the pool if it is destroyed and nothing refers to it.
 * Returns true if it did (the lock is gone with it). */
bool tp__maybe_free_locked(tp_pool *p);

#endif
