/* core/stats.h: what stats.c defines for the other files of the pool: folding per-
 * connection statistics into snapshots. The data structures are in types.h. */
#ifndef TP_CORE_STATS_H
#define TP_CORE_STATS_H

#include "types.h"

void tp__shard_fold(tp_stats *st, const tp__shard *sh);

void tp__shard_merge(tp__shard *dst, const tp__shard *src);

#endif
