/* core/idle.h: what idle.c defines for the other files of the pool: a key's idle list,
 * in the order of release: claiming idle connections under the lock in O(1), and the
 * displaced stack of the lock-free releases. The data structures are in types.h. */
#ifndef TP_CORE_IDLE_H
#define TP_CORE_IDLE_H

#include "types.h"

/* tp__idle_take_locked: claims the most recently used idle connection of key (IN_USE,
 * unlinked; or still linked if keep_link, so that its release needs no lock), dropping
 * stale links on the way; NULL if none. */
tp_conn *tp__idle_take_locked(tp_pool *p, tp__key *key, bool keep_link);

/* tp__idle_pick_locked: the most (newest) or least recently released IDLE connection
 * of key other than except, unclaimed; settles the key and drops stale links on the
 * way. NULL if none. */
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

/* tp__idle_push_displaced: a lock-free release that set c->dqueued (c still IN_USE and
 * linked) records c as released at a stale place. Any thread, no lock. */
void tp__idle_push_displaced(tp__key *k, tp_conn *c);

/* tp__idle_settle_locked: moves the connections released without the lock since the
 * last settle to their place in key's idle list (and drops their links if they were
 * claimed again meanwhile), so that the head is the most recently released. */
void tp__idle_settle_locked(tp_pool *p, tp__key *k);

/* tp__unlink_locked: removes c from its key's idle list (c's LINKED bit is cleared by
 * the caller's CAS). */
void tp__unlink_locked(tp_pool *p, tp_conn *c);

#endif
