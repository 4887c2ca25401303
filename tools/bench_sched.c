/* tools/bench_sched.c: see bench_sched.h.
 *
 * The in-service list is kept sorted by insertion (O(k) per request). k is the number of
 * simulated server workers, a few to a few hundred, and requests arrive at most
 * k / service time per second, so a heap would buy nothing but code. */
#include "bench_sched.h"

void bench_sched_init(bench_sched *s, int workers, int64_t service_us,
                      const bench_server_phase *phases, size_t n, int64_t t0_ns)
{
    *s = (bench_sched){.phases = phases,
                       .nphases = n,
                       .t0_ns = t0_ns,
                       .workers = workers,
                       .service_ns = workers > 0 ? service_us * 1000 : 0};
}

void bench_sched_submit(bench_sched *s, bench_sched_item *it)
{
    it->next = NULL;
    it->holds_slot = false;
    if (s->qtail != NULL)
        s->qtail->next = it;
    else
        s->qhead = it;
    s->qtail = it;
}

/* Inserts it into the in-service list after every item due no later (equal due times
 * keep their start order, so answers stay FIFO). */
static void serve_at(bench_sched *s, bench_sched_item *it, int64_t due)
{
    bench_sched_item **pp = &s->serving;
    it->due_ns = due;
    while (*pp != NULL && (*pp)->due_ns <= due)
        pp = &(*pp)->next;
    it->next = *pp;
    *pp = it;
}

static int64_t phase_time(const bench_sched *s, size_t i)
{
    return s->t0_ns + s->phases[i].at_ms * 1000000;
}

bench_sched_item *bench_sched_due(bench_sched *s, int64_t now)
{
    while (s->next_phase < s->nphases && phase_time(s, s->next_phase) <= now) {
        const bench_server_phase *p = &s->phases[s->next_phase++];
        s->workers = p->workers;
        s->service_ns = p->workers > 0 ? p->service_us * 1000 : 0;
    }
    /* A lowered k lets the requests in service finish; it only stops new starts. */
    while (s->qhead != NULL && (s->workers == 0 || s->busy < s->workers || s->qhead->cancelled)) {
        bench_sched_item *it = s->qhead;
        s->qhead = it->next;
        if (s->qhead == NULL)
            s->qtail = NULL;
        it->holds_slot = !it->cancelled && s->workers > 0;
        if (it->holds_slot)
            s->busy++;
        serve_at(s, it, it->cancelled ? now : now + s->service_ns);
    }
    bench_sched_item *it = s->serving;
    if (it == NULL || it->due_ns > now)
        return NULL;
    s->serving = it->next;
    it->next = NULL;
    if (it->holds_slot)
        s->busy--;
    it->holds_slot = false;
    return it;
}

int64_t bench_sched_deadline(const bench_sched *s)
{
    int64_t d = s->serving != NULL ? s->serving->due_ns : INT64_MAX;
    if (s->next_phase < s->nphases && phase_time(s, s->next_phase) < d)
        d = phase_time(s, s->next_phase);
    return d;
}
