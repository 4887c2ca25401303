/* core/health.h: what health.c defines for the other files of the pool: connection
 * health from TCP_INFO. The data structures are in types.h. */
#ifndef TP_CORE_HEALTH_H
#define TP_CORE_HEALTH_H

#include "types.h"

/* An idle connection is sampled once it has settled this long (its ACKs arrived). */
#define TP__HEALTH_MIN_IDLE (100 * TP_NSEC_PER_MSEC)
#include "after.h"

/* tp__health_on_release: samples an owned connection's TCP state (every 32nd lease) and
 * says whether to retire it. Outside the lock. */
bool tp__health_on_release(tp_pool *p, tp_conn *c);

/* tp__health_pass: maintenance's health check of key's idle connections: claims them
 * under the lock, samples them outside it, closes the sick ones. Called and returns
 * with the lock held (releases it in between); a is the caller's deferred work. */
void tp__health_pass_locked(tp_pool *p, tp__key *k, int64_t now, tp__after *a);

#endif
