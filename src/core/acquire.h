/* core/acquire.h: what acquire.c defines for the other files of the pool: the blocking
 * acquire. The data structures are in types.h. */
#ifndef TP_CORE_ACQUIRE_H
#define TP_CORE_ACQUIRE_H

#include "types.h"

/* tp__timeout_error_locked: fills err with why an acquire for k timed out (what is in
 * use, who waits, the last open error) and returns TP_ETIMEDOUT. */
tp_err tp__timeout_error_locked(tp_pool *p, tp__key *k, int64_t waited, tp_errinfo *err);

#endif
