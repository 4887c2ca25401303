/* core/schedule.h: what schedule.c defines for the other files of the pool: when each
 * key next needs the maintenance pass, in a min-heap, so a pass visits only the keys
 * that are due. The data structures are in types.h. */
#ifndef TP_CORE_SCHEDULE_H
#define TP_CORE_SCHEDULE_H

#include "types.h"

/* A key emptied this long ago is forgotten (its counters move to the pool totals). */
#define TP__KEY_RECLAIM_AFTER (60 * TP_NSEC_PER_SEC)

/* tp__sched_reserve_locked: room in the heap for one more key (before a key is made), so
 * that scheduling a key never allocates. TP_ENOMEM if there is none. */
tp_err tp__sched_reserve_locked(tp_pool *p);

/* tp__key_due_locked: key k needs a pass by t (earlier than what it had, if anything);
 * the pool's next pass is brought forward to t too. */
void tp__key_due_locked(tp_pool *p, tp__key *k, int64_t t);

/* tp__sched_set_locked: like tp__key_due_locked without the poke (the pass computing
 * its own next time). TP_DURATION_INFINITE takes the key out of the heap. */
void tp__sched_set_locked(tp_pool *p, tp__key *k, int64_t t);

/* tp__sched_pop_due_locked: a key due at or before now, out of the heap; NULL if none. */
tp__key *tp__sched_pop_due_locked(tp_pool *p, int64_t now);

/* tp__sched_next_locked: when the earliest key is due (TP_DURATION_INFINITE: none). */
int64_t tp__sched_next_locked(const tp_pool *p);

/* tp__sched_remove_locked: k leaves the heap (retired). */
void tp__sched_remove_locked(tp_pool *p, tp__key *k);

#endif
