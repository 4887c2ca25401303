/* core/stats.h: what stats.c defines for the other files of the pool: counting leases
 * (in the key's shared shard, or the calling thread's shard of the key on the lock-free
 * path) and folding shards into snapshots. The data structures are in types.h. */
#ifndef TP_CORE_STATS_H
#define TP_CORE_STATS_H

#include "types.h"

/* tp__shard_fold: adds a shard's counters and histograms into a snapshot. */
void tp__shard_fold(tp_stats *st, const tp__shard *sh);

/* tp__stats_lease: counts the lease c begins (c->fast: begun without the lock), reused
 * after idle_ns idle. By the lease's holder, outside the lock. */
void tp__stats_lease(tp_pool *p, tp_conn *c, bool reused, int64_t idle_ns);

/* tp__stats_hold: counts the end of c's lease after hold. By the holder, outside the
 * lock. */
void tp__stats_hold(tp_pool *p, tp_conn *c, int64_t hold);

#endif
