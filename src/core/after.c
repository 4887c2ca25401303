/* after.c: deferred work. Closes, trace events, breaker events and completions decided
 * under the pool lock are queued in a tp__after and run by tp__after_run once the lock
 * is released, so no connector call or user callback ever runs under the lock. */
#include <stdlib.h>

#include "pool_internal.h"

void tp__after_init(tp__after *a)
{
    tp__list_init(&a->closes);
    tp__list_init(&a->done);
    tp__list_init(&a->opens);
    tp__list_init(&a->breakers);
}

void tp__after_breaker_event(tp__after *a, tp__key *key, tp_breaker_state s)
{
    atomic_store(&key->ev_state, (int)s);
    if (key->ev_pending)
        return;
    key->ev_pending = true;
    key->pins++;
    tp__list_push_back(&a->breakers, &key->ev_link);
}

/* Moves every node of list src under the head dst, leaving src empty. */
static void list_move_all(tp__list *dst, tp__list *src)
{
    tp__list_init(dst);
    if (tp__list_empty(src))
        return;
    dst->next = src->next;
    dst->prev = src->prev;
    dst->next->prev = dst;
    dst->prev->next = dst;
    tp__list_init(src);
}

void tp__emit(tp_pool *p, tp_trace_event *ev)
{
    if (p->o.trace != NULL)
        p->o.trace(p->o.trace_ud, ev);
}

void tp__after_run(tp_pool *p, tp__after *a)
{
    TP__ASSERT_LOCKED(&p->mu);
    bool nothing = tp__list_empty(&a->closes) && tp__list_empty(&a->done) &&
                   tp__list_empty(&a->opens) && tp__list_empty(&a->breakers);
    if (nothing) {
        tp__mutex_unlock(&p->mu);
        return;
    }
    /* Keep the pool alive while we work unlocked. */
    p->callbacks++;
    tp__list closes, done, opens, breakers;
    list_move_all(&closes, &a->closes);
    list_move_all(&done, &a->done);
    list_move_all(&opens, &a->opens);
    list_move_all(&breakers, &a->breakers);
    tp__mutex_unlock(&p->mu);

    for (tp__list *n = closes.next; n != &closes; n = n->next) {
        tp_conn *c = TP__CONTAINER_OF(n, tp_conn, all_link);
        /* The parent's connection: nothing of its close may reach the peer. */
        if (c->close_reason != TP_CLOSE_INHERITED || tp__fork_neutralize(p, c))
            p->o.connector.close(p->o.connector.ctx, c->user, c->close_reason);
        if (p->o.trace != NULL) {
            tp_trace_event ev = {.type = TP_TRACE_CLOSE,
                                 .key = c->key->bytes,
                                 .keylen = c->key->keylen,
                                 .reason = c->close_reason};
            tp__emit(p, &ev);
        }
    }
    for (tp__list *n = breakers.next; n != &breakers; n = n->next) {
        tp__key *k = TP__CONTAINER_OF(n, tp__key, ev_link);
        tp_trace_event ev = {.type = TP_TRACE_BREAKER,
                             .key = k->bytes,
                             .keylen = k->keylen,
                             .breaker_state = (tp_breaker_state)atomic_load(&k->ev_state)};
        tp__emit(p, &ev);
    }
    while (!tp__list_empty(&opens)) {
        tp__list *n = opens.next;
        tp__list_remove(n);
        tp__async_open_start(p, TP__CONTAINER_OF(n, tp__waiter, done_link));
    }
    while (!tp__list_empty(&done)) {
        tp__list *n = done.next;
        tp__list_remove(n);
        tp__async_deliver(p, TP__CONTAINER_OF(n, tp__waiter, done_link));
    }

    tp__mutex_lock(&p->mu);
    while (!tp__list_empty(&closes)) {
        tp__list *n = closes.next;
        tp__list_remove(n);
        tp_conn *c = TP__CONTAINER_OF(n, tp_conn, all_link);
        c->key->pins--;
        tp__conn_recycle_locked(p, c);
    }
    while (!tp__list_empty(&breakers)) {
        tp__list *n = breakers.next;
        tp__list_remove(n);
        tp__key *k = TP__CONTAINER_OF(n, tp__key, ev_link);
        k->ev_pending = false;
        k->pins--;
    }
    p->callbacks--;
    if (p->callbacks == 0 && p->workers == 0)
        pthread_cond_broadcast(&p->idle_cv);
    if (!tp__maybe_free_locked(p))
        tp__mutex_unlock(&p->mu);
}
