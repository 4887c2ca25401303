/* core/keys.h: what keys.c defines for the other files of the pool: the key table:
 * hashing, finding or creating a key, reclaiming empty ones. The data structures are in
 * types.h. */
#ifndef TP_CORE_KEYS_H
#define TP_CORE_KEYS_H

#include "types.h"

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
