/* core/adapt_pool.h: what adapt_pool.c defines for the other files of the pool: the
 * adaptive limit applied to the pool's keys. The data structures are in types.h. */
#ifndef TP_CORE_ADAPT_POOL_H
#define TP_CORE_ADAPT_POOL_H

#include "types.h"

/* tp__adapt_key_init_locked: gives key its controller (adaptive pools). TP_ENOMEM. */
tp_err tp__adapt_key_init_locked(tp_pool *p, tp__key *key);

void tp__adapt_key_free(tp__key *key);

/* tp__key_inflight_locked: what the adaptive limit counts: leases (connections neither
 * idle nor linked, a multiplexed one by its streams) and opens a lease waits on (not
 * prewarm opens). */
static inline int64_t tp__key_inflight_locked(const tp__key *key)
{
    return key->nconns - key->nlinked - key->mux_busy + key->streams_in_use + key->opening -
           key->prewarming;
}

/* tp__key_admits_locked: may key start another lease or open now? Always true without
 * the adaptive limit; with it, leases + opening must stay under the limit. */
bool tp__key_admits_locked(tp_pool *p, tp__key *key);

/* tp__adapt_release_locked: a lease of key that lasted hold ended (dropped: the caller
 * reported a capacity failure): feeds the controller. True if the limit grew: the caller
 * then serves the waiters the larger limit admits, not only the one its lease frees. */
bool tp__adapt_release_locked(tp_pool *p, tp__key *key, int64_t hold, bool dropped, int64_t now);

/* tp__adapt_drop_locked: an open failed: a drop for the controller. */
void tp__adapt_drop_locked(tp_pool *p, tp__key *key, int64_t duration, int64_t now);

/* tp__adapt_ports_exhausted_locked: an open of key failed with TP_EPORTS: no port is
 * left for this destination, so the key's limit is capped at the connections it holds
 * for one TIME_WAIT period (the time its closed connections keep their ports). */
void tp__adapt_ports_exhausted_locked(tp_pool *p, tp__key *key, int64_t now);

/* tp__adapt_tick_locked: maintenance's tick (lifts an expired port cap); true if the
 * limit grew. */
bool tp__adapt_tick_locked(tp_pool *p, tp__key *key, int64_t now);

#endif
