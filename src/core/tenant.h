/* core/tenant.h: what tenant.c defines for the other files of the pool: tenant quotas.
 * The data structures are in types.h. */
#ifndef TP_CORE_TENANT_H
#define TP_CORE_TENANT_H

#include "types.h"

/* tp__tenant_release: a lease of tenant t ended: gives its place back and wakes a
 * waiter if any (no lock needed unless someone waits). */
void tp__tenant_release(tp_pool *p, tp__tenant *t);

/* tp__tenants_close_locked: wakes every tenant waiter (the pool is closing). */
void tp__tenants_close_locked(tp_pool *p);

/* tp__tenants_free_locked: frees every tenant (the pool is being freed). */
void tp__tenants_free_locked(tp_pool *p);

#endif
