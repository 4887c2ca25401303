/* waiters.c: the key's FIFO of queued acquires: joining and leaving it, completing a
 * waiter with a connection, an open slot or an error, and asking the decision step
 * what a waiter gets now (the one rule for serving the queue). */
#include <sched.h>
#include <stdio.h>
#include <string.h>

#include "pool_internal.h"

/* ---- waiters --------------------------------------------------------------------- */

static void counted_in_locked(tp_pool *p, tp__waiter *w)
{
    w->queued = true;
    atomic_fetch_add(&p->waiters_total, 1);
    /* seq_cst: pairs with the releaser's CAS then load (see types.h). */
    if (atomic_fetch_add(&w->key->nwaiters, 1) == 0)
        tp__list_push_back(&p->waiting_keys, &w->key->waiting_link);
    if (w->async)
        tp__list_push_back(&p->async_queued, &w->alink);
}

void tp__waiter_enqueue_locked(tp_pool *p, tp__waiter *w, int64_t now)
{
    TP__ASSERT_LOCKED(&p->mu);
    tp__key *k = w->key;
    tp__list_push_back(&k->waiters, &w->link);
    counted_in_locked(p, w);
    TP__ADD1(k->waits, 1);
    int64_t nw = atomic_load(&k->nwaiters);
    /* Crossing the bound: prewarm now, not at the next pass. Only on the crossing, so a
     * long queue does not run a maintenance pass per queued acquire. */
    if (p->o.prewarm_waiters != TP_UNLIMITED && nw == p->o.prewarm_waiters + 1)
        tp__key_due_locked(p, k, now);
    if (w->async) /* nobody else watches its deadline */
        tp__key_due_locked(p, k, w->deadline);
}

void tp__waiter_requeue_front_locked(tp_pool *p, tp__waiter *w)
{
    TP__ASSERT_LOCKED(&p->mu);
    w->grant = TP__GRANT_NONE;
    tp__list_push_front(&w->key->waiters, &w->link);
    counted_in_locked(p, w);
    if (w->async)
        tp__key_due_locked(p, w->key, w->deadline);
}

void tp__waiter_dequeue_locked(tp_pool *p, tp__waiter *w)
{
    if (!w->queued)
        return;
    w->queued = false;
    tp__list_remove(&w->link);
    if (atomic_fetch_sub(&w->key->nwaiters, 1) == 1)
        tp__list_remove(&w->key->waiting_link);
    atomic_fetch_sub(&p->waiters_total, 1);
    if (w->async)
        tp__list_remove(&w->alink);
}

/* A waiter left the queue with its grant: wake its thread or queue its completion. */
static void completed_locked(tp__waiter *w, tp__after *a)
{
    if (w->async)
        tp__list_push_back(&a->done, &w->done_link);
    else
        pthread_cond_signal(&w->cv);
}

void tp__waiter_grant_conn_locked(tp_pool *p, tp__waiter *w, tp_conn *c, bool from_idle,
                                  tp__after *a)
{
    TP__ASSERT_LOCKED(&p->mu);
    tp__waiter_dequeue_locked(p, w);
    w->grant = TP__GRANT_CONN;
    w->conn = c;
    w->check = from_idle;
    completed_locked(w, a); /* its wait is counted when its lease begins */
}

void tp__waiter_fail_locked(tp_pool *p, tp__waiter *w, tp_err err, const tp_errinfo *info,
                            tp__after *a)
{
    TP__ASSERT_LOCKED(&p->mu);
    tp__waiter_dequeue_locked(p, w);
    w->grant = TP__GRANT_FAIL;
    w->err = err;
    if (info != NULL)
        w->info = *info;
    else
        tp_errinfo_set(&w->info, err, 0, "%s", tp_strerror(err));
    completed_locked(w, a);
}

void tp__waiter_grant_open_locked(tp_pool *p, tp__waiter *w, tp__after *a)
{
    TP__ASSERT_LOCKED(&p->mu);
    tp__waiter_dequeue_locked(p, w);
    if (w->flags & TP_ACQUIRE_CALLER_OPENS) {
        tp_conn *slot = tp__slot_new_locked(p, w->key);
        if (slot == NULL) {
            tp__slot_release_locked(p, w->key, a);
            w->grant = TP__GRANT_FAIL;
            w->err = tp_errinfo_set(&w->info, TP_ENOMEM, 0, "allocating an open slot");
        } else {
            w->grant = TP__GRANT_SLOT;
            w->conn = slot;
        }
        tp__list_push_back(&a->done, &w->done_link);
        return;
    }
    w->grant = TP__GRANT_OPEN;
    if (w->async)
        tp__list_push_back(&a->opens, &w->done_link);
    else
        pthread_cond_signal(&w->cv);
}

tp__step tp__waiter_step_locked(tp_pool *p, tp__waiter *w, int64_t now, bool *held_by_limit,
                                int64_t *until, tp__after *a)
{
    TP__ASSERT_LOCKED(&p->mu);
    tp__acq q = {.k = w->key,
                 .start = w->enqueued_at,
                 .deadline = w->deadline,
                 .flags = w->flags,
                 .tenant = w->tenant,
                 .self = w->queued ? w : NULL};
    tp_conn *c = NULL;
    tp_err rc = TP_OK;
    tp_errinfo info;
    tp__step s = tp__acquire_step_locked(p, &q, now, &c, until, &rc, &info, a);
    *held_by_limit = q.held_by_limit;
    switch (s) {
    case TP__STEP_CONN:
        tp__waiter_grant_conn_locked(p, w, c, true, a);
        break;
    case TP__STEP_OPEN:
        tp__waiter_grant_open_locked(p, w, a);
        break;
    case TP__STEP_FAIL:
        tp__waiter_fail_locked(p, w, rc, &info, a);
        break;
    case TP__STEP_QUEUE:
        if (!w->queued)
            tp__waiter_enqueue_locked(p, w, now);
        break;
    }
    return s;
}
