/* core/hint.h: what hint.c defines for the other files of the pool: the thread hint:
 * the lock-free reuse path. The data structures are in types.h. */
#ifndef TP_CORE_HINT_H
#define TP_CORE_HINT_H

#include "types.h"

/* tp__hint_set: remembers c (generation gen) as this thread's last released connection. */
void tp__hint_set(tp_pool *p, tp_conn *c, uint64_t gen);

/* tp__hint_claim: claims this thread's hinted connection if it is idle and of this key
 * (no lock); NULL otherwise. */
tp_conn *tp__hint_claim(tp_pool *p, const void *key, size_t keylen);

#endif
