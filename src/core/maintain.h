/* core/maintain.h: what maintain.c defines for the other files of the pool: the
 * maintenance pass and its thread. The data structures are in types.h. */
#ifndef TP_CORE_MAINTAIN_H
#define TP_CORE_MAINTAIN_H

#include "types.h"

void *tp__maintenance_main(void *arg);

/* tp__maintenance_poke_locked: wakes the maintenance thread early if due before t. */
void tp__maintenance_poke_locked(tp_pool *p, int64_t t);

#endif
