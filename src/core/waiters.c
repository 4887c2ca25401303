/* waiters.c: the key's FIFO of queued acquires: leaving it, and completing a waiter
 * with a connection, an open slot or an error. */
#include <sched.h>
#include <stdio.h>
#include <string.h>

#include "pool_internal.h"

/* ---- waiters --------------------------------------------------------------------- */

void tp__waiter_dequeue_locked(tp_pool *p, tp__waiter *w)
{
    tp__list_remove(&w->link);
    atomic_fetch_sub(&w->key->nwaiters, 1);
    atomic_fetch_sub(&p->waiters_total, 1);
}

void tp__waiter_grant_conn_locked(tp_pool *p, tp__waiter *w, tp_conn *c, tp__after *a)
{
    TP__ASSERT_LOCKED(&p->mu);
    int64_t now = tp_clock_now();
    tp__waiter_dequeue_locked(p, w);
    w->grant = TP__GRANT_CONN;
    w->conn = c;
    tp__hist_add(&w->key->wait_hist, now - w->enqueued_at);
    if (w->async)
        tp__list_push_back(&a->done, &w->done_link);
    else
        pthread_cond_signal(&w->cv);
}

void tp__waiter_fail_locked(tp_pool *p, tp__waiter *w, tp_err err, const char *msg, tp__after *a)
{
    TP__ASSERT_LOCKED(&p->mu);
    tp__waiter_dequeue_locked(p, w);
    w->grant = TP__GRANT_FAIL;
    w->err = err;
    tp_errinfo_set(&w->info, err, 0, "%s", msg);
    if (w->async)
        tp__list_push_back(&a->done, &w->done_link);
    else
        pthread_cond_signal(&w->cv);
}

void tp__waiter_grant_open_locked(tp_pool *p, tp__waiter *w, tp__after *a)
{
    TP__ASSERT_LOCKED(&p->mu);
    tp__waiter_dequeue_locked(p, w);
    if (w->caller_opens) {
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
