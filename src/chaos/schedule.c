/* schedule.c: a timeline of faults, run by the proxy's loop. A step puts its faults in
 * force at its time (or leaves those in force), resets every connection if it says so,
 * takes the upstream down (refused connects, every connection reset), and when it has a
 * duration, gives back the faults that were in force when the schedule started. */
#include <stdlib.h>
#include <string.h>

#include "chaos.h"

void tp__chaos_sched_start(struct tp_chaos *p, tp_chaos_step *steps, size_t n, int64_t now)
{
    tp__free(p->steps);
    p->steps = steps;
    p->nsteps = n;
    p->step_next = 0;
    p->sched_start = now;
    p->step_end = INT64_MAX;
    p->base = p->fault;
}

static void apply_step(struct tp_chaos *p, const tp_chaos_step *s, int64_t now)
{
    tp_errinfo err;
    if (s->down) {
        tp_chaos_fault f = s->set_fault ? s->fault : p->fault;
        f.refuse = true;
        (void)tp__chaos_install(p, &f, &err);
        tp__chaos_reset_all(p);
    } else {
        if (s->set_fault)
            (void)tp__chaos_install(p, &s->fault, &err); /* the loop retries a rebind */
        if (s->reset_all)
            tp__chaos_reset_all(p);
    }
    p->step_end = s->duration >= 0 ? tp__saturating_add(now, s->duration) : INT64_MAX;
    atomic_fetch_add(&p->n.steps, 1);
}

void tp__chaos_sched_tick(struct tp_chaos *p, int64_t now)
{
    if (p->steps == NULL)
        return;
    if (now >= p->step_end) {
        tp_errinfo err;
        p->step_end = INT64_MAX;
        (void)tp__chaos_install(p, &p->base, &err);
    }
    while (p->step_next < p->nsteps &&
           now >= tp__saturating_add(p->sched_start, p->steps[p->step_next].at)) {
        apply_step(p, &p->steps[p->step_next], now);
        p->step_next++;
    }
    if (p->step_next == p->nsteps && p->step_end == INT64_MAX) {
        tp__free(p->steps); /* done */
        p->steps = NULL;
        p->nsteps = p->step_next = 0;
    }
}

int64_t tp__chaos_sched_next_due(const struct tp_chaos *p)
{
    if (p->steps == NULL)
        return INT64_MAX;
    int64_t due = p->step_end;
    if (p->step_next < p->nsteps)
        due = TP__MIN(due, tp__saturating_add(p->sched_start, p->steps[p->step_next].at));
    return due;
}
