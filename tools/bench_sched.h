/* tools/bench_sched.h: the capacity schedule of the built-in benchmark server
 * (bench_server_start_ex): k workers, a FIFO of requests waiting for one, the requests in
 * service ordered by the time their answer is due, and phases that change k and the
 * service time. No I/O and no clock of its own: the caller passes the time in, asks for
 * due items and arms its own timer at bench_sched_deadline().
 *
 * Items are intrusive (embedded in the caller's connection) and never allocated here, so
 * nothing can fail. Threads: one instance belongs to one event loop; nothing locks. */
#ifndef TP_TOOLS_BENCH_SCHED_H
#define TP_TOOLS_BENCH_SCHED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bench_server.h"

/* One request in the schedule: queued, then in service. */
typedef struct bench_sched_item {
    struct bench_sched_item *next; /* the queue's or the in-service list's link */
    int64_t due_ns;                /* in service: when the answer goes out */
    bool holds_slot;               /* in service and counted in busy */
    bool cancelled;                /* the caller gave up on it: served without a slot */
} bench_sched_item;

typedef struct bench_sched {
    const bench_server_phase *phases; /* caller-owned, at_ms ascending */
    size_t nphases, next_phase;       /* next_phase: the first not applied yet */
    int64_t t0_ns;                    /* the phases' time origin */
    int workers;                      /* k; 0: no limit and no delay */
    int64_t service_ns;
    int busy;                        /* items holding a slot */
    bench_sched_item *qhead, *qtail; /* waiting for a slot, FIFO */
    bench_sched_item *serving;       /* in service, due time ascending */
} bench_sched;

/* bench_sched_init: an empty schedule with k = workers and the service time service_us,
 * and phases[0..n) (kept by pointer, must outlive s) counted from t0_ns. */
void bench_sched_init(bench_sched *s, int workers, int64_t service_us,
                      const bench_server_phase *phases, size_t n, int64_t t0_ns);

/* bench_sched_submit: appends it to the queue; it starts at a later bench_sched_due(). */
void bench_sched_submit(bench_sched *s, bench_sched_item *it);

/* bench_sched_due: at time now, applies the phases that are due, moves queued items into
 * service while a slot is free (cancelled ones are put through at once without a slot),
 * then removes and returns one item whose answer is due, or NULL when none is. Call it
 * until NULL after each round of events. */
bench_sched_item *bench_sched_due(bench_sched *s, int64_t now);

/* bench_sched_deadline: when bench_sched_due() next has something to do (an answer or a
 * phase), INT64_MAX when nothing is pending. Valid after bench_sched_due() returned NULL. */
int64_t bench_sched_deadline(const bench_sched *s);

#endif
