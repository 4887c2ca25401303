/* engine_timer.c: the event engine's timers: a min-heap of the started requests on the
 * nearer of each one's deadlines (the whole request's, or its phase's: connect, TLS
 * handshake, response header). The loop fires what is due (engine.c). */
#include <stdlib.h>

#include "engine.h"

/* ---- timers: a min-heap of requests on min(deadline, phase_deadline) --------------- */

static void heap_swap(tp_http_engine *e, size_t i, size_t j)
{
    eng_req *t = e->heap[i];
    e->heap[i] = e->heap[j];
    e->heap[j] = t;
    e->heap[i]->heap_idx = i;
    e->heap[j]->heap_idx = j;
}

static void heap_up(tp_http_engine *e, size_t i)
{
    while (i > 0 && tp__eng_due(e->heap[(i - 1) / 2]) > tp__eng_due(e->heap[i])) {
        heap_swap(e, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
}

static void heap_down(tp_http_engine *e, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < e->nheap && tp__eng_due(e->heap[l]) < tp__eng_due(e->heap[m]))
            m = l;
        if (r < e->nheap && tp__eng_due(e->heap[r]) < tp__eng_due(e->heap[m]))
            m = r;
        if (m == i)
            return;
        heap_swap(e, i, m);
        i = m;
    }
}

void tp__eng_timer_clear(tp_http_engine *e, eng_req *rq)
{
    size_t i = rq->heap_idx;
    if (i == SIZE_MAX)
        return;
    e->nheap--;
    if (i != e->nheap) {
        e->heap[i] = e->heap[e->nheap];
        e->heap[i]->heap_idx = i;
        heap_down(e, i);
        heap_up(e, i);
    }
    rq->heap_idx = SIZE_MAX;
}

void tp__eng_timer_set(tp_http_engine *e, eng_req *rq)
{
    if (rq->heap_idx != SIZE_MAX) {
        heap_down(e, rq->heap_idx);
        heap_up(e, rq->heap_idx);
        return;
    }
    if (tp__eng_due(rq) == TP_DURATION_INFINITE)
        return;
    if (e->nheap == e->heap_cap) {
        size_t cap = e->heap_cap ? e->heap_cap * 2 : 64;
        eng_req **h = tp__realloc(e->heap, cap * sizeof *h);
        if (h == NULL)
            return; /* no timer: the pool's acquire timeout still bounds the wait */
        e->heap = h;
        e->heap_cap = cap;
    }
    rq->heap_idx = e->nheap;
    e->heap[e->nheap++] = rq;
    heap_up(e, rq->heap_idx);
}
