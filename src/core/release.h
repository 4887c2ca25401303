/* core/release.h: what release.c defines for the other files of the pool: ending a
 * lease; serving waiters when capacity frees up. The data structures are in types.h. */
#ifndef TP_CORE_RELEASE_H
#define TP_CORE_RELEASE_H

#include "types.h"
#include "after.h"

/* tp__capacity_freed_locked: a connection of key closed or an open failed: grant open
 * slots to waiters that can now open (this key first, then others blocked on
 * max_total). */
void tp__capacity_freed_locked(tp_pool *p, tp__key *key, tp__after *a);

/* tp__waiting_keys_serve_locked: something that held back every key's opens changed (the
 * permit hook may grant again): serves the waiters of every key that has some. */
void tp__waiting_keys_serve_locked(tp_pool *p, tp__after *a);

/* tp__release_to_idle_locked: puts an owned, IN_USE connection into its key's idle
 * list (or hands it to a waiter, or closes it when the idle limits are full). */
void tp__release_to_idle_locked(tp_pool *p, tp_conn *c, tp__after *a);

/* tp__release_reason: why a lease ending now with flags closes its connection (for a
 * stream: retires it), before health and reset have their say; TP_CLOSE__COUNT: keep
 * it. */
tp_close_reason tp__release_reason(tp_pool *p, const tp_conn *c, unsigned flags, int64_t now);

/* tp__emit_release: the TP_TRACE_RELEASE event of lease (reason TP_CLOSE__COUNT: kept). */
void tp__emit_release(tp_pool *p, tp_conn *lease, tp_close_reason reason, int64_t hold);

#endif
