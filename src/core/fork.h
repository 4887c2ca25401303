/* core/fork.h: what fork.c defines for the other files of the pool: pools across
 * fork(). The data structures are in types.h. */
#ifndef TP_CORE_FORK_H
#define TP_CORE_FORK_H

#include "types.h"

/* tp__fork_register / unregister: the pool's lock is guarded across fork()
 * (base/fork.h) from its create until its free. */
void tp__fork_register(tp_pool *p);

void tp__fork_unregister(tp_pool *p);

/* tp__pool_forked: in a child process, the pool's first look at itself: forgets what
 * the parent's threads held and closes the inherited idle connections. */
void tp__pool_forked(tp_pool *p);

/* tp__fork_check: runs tp__pool_forked() when the process forked since p last looked.
 * One relaxed load on the way of every call. */
static inline void tp__fork_check(tp_pool *p)
{
    if (TP__UNLIKELY(atomic_load_explicit(&p->fork_gen, memory_order_relaxed) !=
                     atomic_load_explicit(&tp__fork_generation, memory_order_relaxed)))
        tp__pool_forked(p);
}

/* tp__fork_neutralize: points an inherited connection's socket at /dev/null, so that
 * closing it says nothing to the peer. False if it has no socket the pool can see (do
 * not close it then: forget it). */
bool tp__fork_neutralize(tp_pool *p, tp_conn *c);

/* tp__conn_abandon: ends an inherited lease released in the child (outside the lock). */
void tp__conn_abandon(tp_pool *p, tp_conn *c);

/* tp__stream_abandon: ends a stream lease of an inherited multiplexed connection in the
 * child (outside the lock); the connection is abandoned with its last stream. */
void tp__stream_abandon(tp_pool *p, tp_conn *s);

#endif
