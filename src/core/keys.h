/* core/keys.h: what keys.c defines for the other files of the pool: the key table:
 * hashing, finding or creating a key, reclaiming empty ones. The data structures are in
 * types.h. */
#ifndef TP_CORE_KEYS_H
#define TP_CORE_KEYS_H

#include "types.h"

/* tp__key_prefetch: asks for the lines an acquire of k touches next, all at once: its
 * other hot lines and its most recently released connection's two (pool lock held). At
 * 100,000 keys each is a miss to memory; fetched in parallel they cost about one. */
static inline void tp__key_prefetch(const tp__key *k)
{
    const char *st = (const char *)&k->st;
    TP__PREFETCH(st, 1);
    TP__PREFETCH(st + 64, 1);
    TP__PREFETCH(st + 128, 1);
    const tp__list *head = k->idle.next;
    if (head != &k->idle) {
        const char *c = (const char *)TP__CONTAINER_OF(head, tp_conn, idle_link);
        TP__PREFETCH(c, 1);
        TP__PREFETCH(c + 64, 1);
    }
}

/* tp__key_find_locked: the key with these bytes, or NULL. */
tp__key *tp__key_find_locked(tp_pool *p, const void *key, size_t keylen, uint64_t hash);

/* tp__key_get_locked: finds or creates the key. NULL with *err TP_ENOMEM or TP_ELIMIT. */
tp__key *tp__key_get_locked(tp_pool *p, const void *key, size_t keylen, uint64_t hash, tp_err *err);

/* tp__key_hash: the hash of a key's bytes. */
uint64_t tp__key_hash(const void *key, size_t keylen);

/* tp__key_graveyard_sweep_locked: frees the keys retired before cutoff. */
void tp__key_graveyard_sweep_locked(tp_pool *p, int64_t cutoff);
/* tp__key_retire_unused_locked: moves k out of the key table to the graveyard if it is
 * empty, unpinned, unused since before cutoff and its breaker closed (it leaves the
 * schedule too). True if it did. */
bool tp__key_retire_unused_locked(tp_pool *p, tp__key *k, int64_t cutoff);

/* tp__key_free: frees a key that nothing refers to any more (table, graveyard, pins). */
void tp__key_free(tp__key *key);

#endif
