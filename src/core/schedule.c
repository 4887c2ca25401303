/* schedule.c: the keys' maintenance schedule. Each key says when it next needs a pass
 * (an idle connection's expiry, an asynchronous waiter's deadline, a breaker's cool-down
 * or a backoff's end, a warm-up to make, a health sample, its own reclaiming); the keys'
 * timers sit in the pool's timer heap (base/timer.h) on that time. A pass pops only the
 * keys that are due, so one with nothing due costs nothing per key or per connection,
 * whatever the pool holds. Whatever makes a key due sooner says so here
 * (tp__key_due_locked). */
#include "pool_internal.h"

tp_err tp__sched_reserve_locked(tp_pool *p)
{
    TP__ASSERT_LOCKED(&p->mu);
    return tp__timers_reserve(&p->schedule, (size_t)p->nkeys + 1);
}

void tp__sched_remove_locked(tp_pool *p, tp__key *k)
{
    tp__timers_cancel(&p->schedule, &k->due);
}

void tp__sched_set_locked(tp_pool *p, tp__key *k, int64_t t)
{
    TP__ASSERT_LOCKED(&p->mu);
    if (t == TP_DURATION_INFINITE)
        tp__timers_cancel(&p->schedule, &k->due);
    else
        (void)tp__timers_set(&p->schedule, &k->due, t); /* room reserved: cannot fail */
}

void tp__key_due_locked(tp_pool *p, tp__key *k, int64_t t)
{
    TP__ASSERT_LOCKED(&p->mu);
    if (tp__timer_armed(&k->due) && k->due.due <= t)
        return;
    tp__sched_set_locked(p, k, t);
    tp__maintenance_poke_locked(p, t);
}

tp__key *tp__sched_pop_due_locked(tp_pool *p, int64_t now)
{
    tp__timer *t = tp__timers_first(&p->schedule);
    if (t == NULL || t->due > now)
        return NULL;
    tp__timers_cancel(&p->schedule, t);
    return TP__CONTAINER_OF(t, tp__key, due);
}

int64_t tp__sched_next_locked(const tp_pool *p)
{
    tp__timer *t = tp__timers_first(&p->schedule);
    return t != NULL ? t->due : TP_DURATION_INFINITE;
}
