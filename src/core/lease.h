/* core/lease.h: what lease.c defines for the other files of the pool: the start of a
 * lease, shared by every form of acquire. The data structures are in types.h. */
#ifndef TP_CORE_LEASE_H
#define TP_CORE_LEASE_H

#include "types.h"

/* tp__lease_begin_async: starts the lease of a connection granted to an async waiter
 * (statistics, trace), outside the lock, before its callback runs. */
void tp__lease_begin_async(tp_pool *p, tp_conn *c, int64_t waited);

/* tp__fast_acquire: the lock-free attempt every acquire makes first: the hinted
 * connection, checked and leased; NULL if it cannot be had. since: when the call began
 * if it has waited already (a tenant's quota), else 0: the lease's wait. */
tp_conn *tp__fast_acquire(tp_pool *p, const void *key, size_t keylen, int64_t since);

/* tp__acquire_check_args: TP_EINVAL for a NULL pool or out, or NULL key with keylen. */
tp_err tp__acquire_check_args(tp_pool *p, const void *key, size_t keylen, tp_conn **out,
                              tp_errinfo *err);

/* tp__lease_begin: records the start of a lease of c (owned): statistics, uses, the
 * ACQUIRE trace event. fast: the lock-free path (counted in the calling thread's shard of
 * the key). waited: how long the acquire waited in the queue, for a tenant's quota or for
 * an open: one sample of the key's wait_hist; 0 for one that did none of these, which
 * acquire_wait counts in its first bucket at 0 ns. */
void tp__lease_begin(tp_pool *p, tp_conn *c, int64_t now, bool reused, bool fast, int64_t waited);

/* tp__reuse_verdict: TP_CLOSE__COUNT if the claimed idle connection c may be handed out
 * (lifetime, idle timeout, eviction, check() when idle long enough), else the reason to
 * close it. Outside the lock (check() may run). */
tp_close_reason tp__reuse_verdict(tp_pool *p, tp_conn *c, int64_t now);

/* tp__reuse_precheck: the part of tp__reuse_verdict that calls nothing (so it may run
 * under the lock): a reason to close, or TP_CLOSE__COUNT with *check set if check() is
 * still to be asked, outside the lock (tp__reuse_check). */
tp_close_reason tp__reuse_precheck(tp_pool *p, tp_conn *c, int64_t now, bool *check);

/* tp__reuse_check: the rest of tp__reuse_verdict once tp__reuse_precheck said check():
 * asks it. TP_CLOSE__COUNT if it passed, else TP_CLOSE_CHECK_FAILED. Outside the lock. */
tp_close_reason tp__reuse_check(tp_pool *p, tp_conn *c, int64_t now);

/* tp__close_claimed: closes a claimed connection that failed tp__reuse_verdict(). */
void tp__close_claimed(tp_pool *p, tp_conn *c, tp_close_reason reason);

/* tp__claimed_close_locked: closes a claimed lease that failed tp__reuse_verdict(): the
 * connection, or for a stream the stream and (when no other is out) its connection. */
void tp__claimed_close_locked(tp_pool *p, tp_conn *c, tp_close_reason reason, tp__after *a);

#endif
