/* core/stats.h: what stats.c defines for the other files of the pool: counting leases
 * (in the key's shared shard, or the calling thread's shard of the key on the lock-free
 * path) and folding shards into snapshots. The data structures are in types.h. */
#ifndef TP_CORE_STATS_H
#define TP_CORE_STATS_H

#include "types.h"

/* tp__shard_fold: adds a shard's counters and histograms into a snapshot. */
void tp__shard_fold(tp_stats *st, const tp__shard *sh);

/* The calling thread's shard of the key it last reused a connection of without the lock
 * (a request loop's key), checked by pool id, key address and key id: the address alone
 * could be a freed key's reused. */
typedef struct tp__tls_shard {
    uint64_t pool_id;
    const tp__key *key;
    uint64_t key_id;
    tp__shard *sh;
} tp__tls_shard;
extern _Thread_local __attribute__((tls_model("initial-exec"))) tp__tls_shard tp__tls;

/* tp__thread_shard_slow: finds or makes the calling thread's shard of k and caches it;
 * NULL without memory (the key's shared shard serves then). */
tp__shard *tp__thread_shard_slow(tp_pool *p, tp__key *k);

/* tp__thread_shard: the calling thread's shard of k. The caller holds a lease of k, so k
 * is alive. */
static inline tp__shard *tp__thread_shard(tp_pool *p, tp__key *k)
{
    if (TP__LIKELY(tp__tls.key == k && tp__tls.key_id == k->id && tp__tls.pool_id == p->id))
        return tp__tls.sh;
    return tp__thread_shard_slow(p, k);
}

/* tp__stats_hold: counts the end of c's lease after hold, in the shard its start was
 * counted in if that is the calling thread's (a lease may have moved to another
 * thread), else in the key's shared shard. */
static inline void tp__stats_hold(tp_conn *c, int64_t hold)
{
    if (c->sh != NULL && c->sh == tp__tls.sh)
        tp__hist_add(&c->sh->hold, hold);
    else
        tp__hist_add_shared(&c->key->st.hold, hold);
}

/* tp__stats_lease_shared: counts a lease of k in the key's shared shard (atomic);
 * nowait: it neither queued nor waited for an open. */
void tp__stats_lease_shared(tp__key *k, bool nowait, bool reused, int64_t idle_ns);

#endif
