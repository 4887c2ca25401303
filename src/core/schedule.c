/* schedule.c: the keys' maintenance schedule. Each key says when it next needs a pass
 * (an idle connection's expiry, an asynchronous waiter's deadline, a breaker's cool-down
 * or a backoff's end, a warm-up to make, a health sample, its own reclaiming); the keys
 * sit in a binary min-heap on that time. A pass pops only the keys that are due, so one
 * with nothing due costs nothing per key or per connection, whatever the pool holds.
 * Whatever makes a key due sooner says so here (tp__key_due_locked). */
#include "pool_internal.h"

static void place(tp_pool *p, size_t i, tp__key *k)
{
    p->kheap[i] = k;
    k->heap_pos = (int64_t)i;
}

static void sift_up(tp_pool *p, size_t i)
{
    tp__key *k = p->kheap[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (p->kheap[parent]->due <= k->due)
            break;
        place(p, i, p->kheap[parent]);
        i = parent;
    }
    place(p, i, k);
}

static void sift_down(tp_pool *p, size_t i)
{
    tp__key *k = p->kheap[i];
    for (;;) {
        size_t l = 2 * i + 1, m = i;
        int64_t best = k->due;
        if (l < p->nheap && p->kheap[l]->due < best) {
            m = l;
            best = p->kheap[l]->due;
        }
        if (l + 1 < p->nheap && p->kheap[l + 1]->due < best)
            m = l + 1;
        if (m == i)
            break;
        place(p, i, p->kheap[m]);
        i = m;
    }
    place(p, i, k);
}

tp_err tp__sched_reserve_locked(tp_pool *p)
{
    TP__ASSERT_LOCKED(&p->mu);
    if ((size_t)p->nkeys + 1 <= p->heapcap)
        return TP_OK;
    size_t cap = p->heapcap < 16 ? 16 : 2 * p->heapcap;
    tp__key **h = tp__realloc(p->kheap, cap * sizeof *h);
    if (h == NULL)
        return TP_ENOMEM;
    p->kheap = h;
    p->heapcap = cap;
    return TP_OK;
}

void tp__sched_remove_locked(tp_pool *p, tp__key *k)
{
    if (k->heap_pos < 0)
        return;
    size_t i = (size_t)k->heap_pos;
    k->heap_pos = -1;
    k->due = TP_DURATION_INFINITE;
    tp__key *last = p->kheap[--p->nheap];
    if (last == k)
        return;
    place(p, i, last);
    sift_down(p, i);
    sift_up(p, (size_t)last->heap_pos);
}

void tp__sched_set_locked(tp_pool *p, tp__key *k, int64_t t)
{
    TP__ASSERT_LOCKED(&p->mu);
    if (t == TP_DURATION_INFINITE) {
        tp__sched_remove_locked(p, k);
        return;
    }
    if (k->heap_pos < 0) { /* room was reserved when the key was made */
        k->due = t;
        place(p, p->nheap++, k);
        sift_up(p, (size_t)k->heap_pos);
        return;
    }
    int64_t was = k->due;
    k->due = t;
    if (t < was)
        sift_up(p, (size_t)k->heap_pos);
    else
        sift_down(p, (size_t)k->heap_pos);
}

void tp__key_due_locked(tp_pool *p, tp__key *k, int64_t t)
{
    TP__ASSERT_LOCKED(&p->mu);
    if (k->heap_pos >= 0 && k->due <= t)
        return;
    tp__sched_set_locked(p, k, t);
    tp__maintenance_poke_locked(p, t);
}

tp__key *tp__sched_pop_due_locked(tp_pool *p, int64_t now)
{
    if (p->nheap == 0 || p->kheap[0]->due > now)
        return NULL;
    tp__key *k = p->kheap[0];
    tp__sched_remove_locked(p, k);
    return k;
}

int64_t tp__sched_next_locked(const tp_pool *p)
{
    return p->nheap > 0 ? p->kheap[0]->due : TP_DURATION_INFINITE;
}
