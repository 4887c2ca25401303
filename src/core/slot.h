/* core/slot.h: what slot.c defines for the other files of the pool: open slots for
 * callers that open connections themselves. The data structures are in types.h. */
#ifndef TP_CORE_SLOT_H
#define TP_CORE_SLOT_H

#include "types.h"

/* tp__slot_new_locked (slot.c): the struct handed to a caller that opens its own
 * connection: not yet live, bound to key (pinned), remembering when the open started.
 * The open slot itself (opening, total) must already be reserved. NULL when out of
 * memory (the reservation is the caller's to give back). */
tp_conn *tp__slot_new_locked(tp_pool *p, tp__key *key);

#endif
