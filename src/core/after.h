/* core/after.h: what after.c defines for the other files of the pool: work decided
 * under the pool lock and run after it is released. The data structures are in types.h. */
#ifndef TP_CORE_AFTER_H
#define TP_CORE_AFTER_H

#include "types.h"

/* Work collected under the lock and finished after it is released: connector closes,
 * trace events, callbacks of completed asynchronous waiters, wake-ups. */
typedef struct tp__after {
    tp__list closes;   /* tp_conn via all_link, close_reason set, key pinned */
    tp__list done;     /* async tp__waiter via done_link (granted or failed) */
    tp__list opens;    /* async tp__waiter granted an open slot, to start a worker */
    tp__list breakers; /* tp__key via ev_link: breaker changes to report */
} tp__after;

/* tp__after_breaker_event: queues a TP_TRACE_BREAKER event for key (pinned until sent). */
void tp__after_breaker_event(tp__after *a, tp__key *key, tp_breaker_state s);

void tp__after_init(tp__after *a);

/* tp__after_run: called with the lock held; releases it, runs the deferred work, and
 * returns with the lock released. */
void tp__after_run(tp_pool *p, tp__after *a);

/* tp__emit: calls the trace hook, if any (never under the lock). */
void tp__emit(tp_pool *p, tp_trace_event *ev);

#endif
