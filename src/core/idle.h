/* core/idle.h: what idle.c defines for the other files of the pool: a key's idle list:
 * claiming idle connections under the lock. The data structures are in types.h. */
#ifndef TP_CORE_IDLE_H
#define TP_CORE_IDLE_H

#include "types.h"

/* tp__idle_take_locked: claims the most recently used idle connection of key (IN_USE,
 * unlinked), dropping stale links on the way; NULL if none. */
tp_conn *tp__idle_take_locked(tp_pool *p, tp__key *key);

/* tp__idle_pick_locked: the most (newest) or least recently released IDLE connection
 * of key other than except, unclaimed; drops stale links on the way. NULL if none. */
tp_conn *tp__idle_pick_locked(tp_pool *p, tp__key *key, bool newest, const tp_conn *except);

/* tp__idle_claim_locked: claims an IDLE connection as TP__CS_INUSE (unlinked) or
 * TP__CS_RESERVED (to be closed); false if a thread hint took it first. */
bool tp__idle_claim_locked(tp_pool *p, tp_conn *c, int state);

/* tp__idle_pool_lru_locked: the pool's least recently released idle connection, of any
 * key but except_key and other than except (both may be NULL); unclaimed. */
tp_conn *tp__idle_pool_lru_locked(tp_pool *p, const tp__key *except_key, const tp_conn *except);

/* tp__idle_take_lru_locked: claims the least recently released idle connection of key
 * (IN_USE, unlinked); NULL if none. */
tp_conn *tp__idle_take_lru_locked(tp_pool *p, tp__key *key);

/* tp__unlink_locked: removes c from its key's idle list (c's LINKED bit is cleared by
 * the caller's CAS). */
void tp__unlink_locked(tp_pool *p, tp_conn *c);

#endif
