/* pool_internal.h: what the pool's files include: the data structures (types.h) and the
 * header of each file, which declares only what that file defines (keys.h for keys.c,
 * ...). */
#ifndef TP_CORE_POOL_INTERNAL_H
#define TP_CORE_POOL_INTERNAL_H

#include "types.h"
#include "acquire.h"
#include "adapt_pool.h"
#include "after.h"
#include "breaker.h"
#include "fork.h"
#include "health.h"
#include "hint.h"
#include "idle.h"
#include "keys.h"
#include "lease.h"
#include "lifecycle.h"
#include "maintain.h"
#include "mux.h"
#include "open.h"
#include "options.h"
#include "permit.h"
#include "release.h"
#include "schedule.h"
#include "slot.h"
#include "stats.h"
#include "step.h"
#include "tenant.h"
#include "waiters.h"

#endif
