/* core/maintain.h: what maintain.c defines for the other files of the pool: the
 * maintenance pass's schedule on the runtime's timer thread. The data structures are in
 * types.h. */
#ifndef TP_CORE_MAINTAIN_H
#define TP_CORE_MAINTAIN_H

#include "types.h"

/* tp__maintenance_start: schedules p's passes (maintenance_thread set), the first at
 * p->mdue. TP_OK, TP_ENOMEM, TP_ESYS (no worker thread could start). */
tp_err tp__maintenance_start(tp_pool *p);
/* tp__maintenance_stop: no pass is scheduled after it, and none runs when it returns.
 * Not with the pool lock held (a running pass takes it). */
void tp__maintenance_stop(tp_pool *p);
/* tp__maintenance_forked_locked: in a child after fork(), schedules the passes again. */
void tp__maintenance_forked_locked(tp_pool *p);
/* tp__maintenance_poke_locked: brings the next pass forward to t if due later. */
void tp__maintenance_poke_locked(tp_pool *p, int64_t t);

#endif
