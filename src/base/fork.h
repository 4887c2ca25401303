/* base/fork.h: the library's one set of fork handlers (fork.c).
 *
 * A mutex another thread may hold when the process forks is guarded: around fork() the
 * handlers lock every guarded mutex, rank by rank in the order the library nests them,
 * so the child's copy of what each protects is whole (no half-made change) and no lock
 * is held there by a thread the child does not have. In the child each guarded mutex
 * becomes a new, unlocked one, each guard's child hook runs, and the fork generation
 * moves on, so that an object notices the new process at its next use. One handler for
 * all, not one per module: pthread_atfork runs separate handlers in the reverse order
 * of their registration, which is not the order the locks nest in. */
#ifndef TP_BASE_FORK_H
#define TP_BASE_FORK_H

#include <stdatomic.h>

#include "list.h"
#include "sync.h"

/* Ranks, outermost first: a mutex of one rank may be held while one of a later rank is
 * taken, never the other way round. */
typedef enum tp__fork_rank {
    TP__RANK_REGISTRY, /* a metrics registry: held while it reads its pools' stats */
    TP__RANK_POOL,     /* a pool: held while it schedules or queues work on the workers */
    TP__RANK_RUNTIME,  /* the workers' queue and timers */
    TP__RANK_LEAF,     /* held while no other library lock is taken: target lists, TLS
                          contexts and session caches */
    TP__RANK__COUNT
} tp__fork_rank;

typedef struct tp__fork_guard {
    tp__list link;
    tp__mutex *mu;
    /* In the child, after every guarded mutex is new: puts the owner's other state
     * right (condition variables, what the parent's threads were doing). May be NULL. */
    void (*child)(struct tp__fork_guard *g);
} tp__fork_guard;

/* Bumped in every child process fork() makes. */
extern _Atomic unsigned tp__fork_generation;

/* tp__fork_guard_add: guards mu (initialised; not held by the caller) from now on.
 * tp__fork_guard_remove: before mu is destroyed; a no-op for a zeroed guard. If
 * the handlers could not be installed, guards do nothing. Thread-safe. */
void tp__fork_guard_add(tp__fork_guard *g, tp__mutex *mu, tp__fork_rank rank,
                        void (*child)(tp__fork_guard *g));
void tp__fork_guard_remove(tp__fork_guard *g);

#endif
