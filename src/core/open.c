/* open.c: opening a connection through the connector, in the calling thread or, for
 * an asynchronous acquire, on one of the runtime's workers; and giving back an open
 * slot that will not be used. */
#include <sched.h>
#include <stdio.h>
#include <string.h>

#include "pool_internal.h"

/* ---- opening ---------------------------------------------------------------------- */

tp_err tp__opened_lease_locked(tp_pool *p, tp_conn *c, bool lease, tp_conn **out,
                               tp_errinfo *err, tp__after *a)
{
    tp__key *k = c->key;
    if (c->mux && lease) {
        tp_conn *s = tp__mux_stream_locked(p, c);
        if (s == NULL) {
            tp__release_to_idle_locked(p, c, a);
            return tp_errinfo_set(err, TP_ENOMEM, 0, "allocating a stream lease");
        }
        c = s;
    }
    /* Acquires of a key that may multiplex waited for this open: its spare streams are
     * theirs, or, if it said "one lease", they may dial their own now. */
    if (p->o.connector.streams != NULL)
        tp__capacity_freed_locked(p, k, a);
    *out = c;
    return TP_OK;
}

void tp__slot_release_locked(tp_pool *p, tp__key *key, tp__after *a)
{
    TP__ASSERT_LOCKED(&p->mu);
    key->opening--;
    p->total--;
    tp__permit_give_locked(p, key);
    tp__open_slot_unused_locked(key);
    tp__capacity_freed_locked(p, key, a);
}

static bool is_timeout(tp_err rc)
{
    return rc == TP_ETIMEDOUT || rc == TP_ECONNTIMEDOUT || rc == TP_ETLSTIMEDOUT ||
           rc == TP_EREQTIMEDOUT || rc == TP_EHDRTIMEDOUT;
}

/* The open ran out of the caller's acquire deadline rather than connect_timeout: the
 * connector's own wording ("connect timed out after 0 ms") would blame the connection
 * for the caller's short budget. The slack covers connectors that wait in whole ms. */
static bool cut_by_caller_deadline(tp_err rc, int64_t deadline, int64_t dl, int64_t now)
{
    return is_timeout(rc) && deadline == dl && now + TP_NSEC_PER_MSEC >= deadline;
}

static tp_err caller_deadline_error(tp_errinfo *info, int64_t spent, int64_t connect_timeout)
{
    char why[sizeof info->msg];
    snprintf(why, sizeof why, "%s", info->msg);
    char limit[48] = "no connect_timeout";
    if (connect_timeout != TP_DURATION_INFINITE)
        snprintf(limit, sizeof limit, "connect_timeout %.0f ms", (double)connect_timeout / 1e6);
    return tp_errinfo_set(info, TP_ETIMEDOUT, info->sys_errno,
                          "acquire deadline reached %.1f ms into opening a connection (before "
                          "%s): %s",
                          (double)spent / 1e6, limit, why);
}

tp_err tp__open_slot_locked(tp_pool *p, tp__key *key, int64_t deadline, bool prewarm,
                            bool lease, tp_conn **out, tp_errinfo *err, tp__after *a)
{
    TP__ASSERT_LOCKED(&p->mu);
    tp_conn *c = tp__conn_new_locked(p);
    if (c == NULL) {
        key->prewarming -= prewarm;
        tp__slot_release_locked(p, key, a);
        return tp_errinfo_set(err, TP_ENOMEM, 0, "allocating a connection");
    }
    tp__mutex_unlock(&p->mu);

    int64_t t0 = tp_clock_now();
    int64_t dl = TP__MIN(deadline, tp__saturating_add(t0, p->o.connect_timeout));
    if (p->o.trace != NULL) {
        tp_trace_event ev = {
            .type = TP_TRACE_CONNECT_START, .key = key->bytes, .keylen = key->keylen};
        tp__emit(p, &ev);
    }
    tp_errinfo info;
    tp_errinfo_clear(&info);
    void *user = NULL;
    tp_err rc = p->o.connector.open(p->o.connector.ctx, key->bytes, key->keylen, dl, &user, &info);
    if (rc == TP_OK && user == NULL)
        rc = tp_errinfo_set(&info, TP_EOPEN, 0, "connector open() returned no connection");
    if (rc > 0)
        rc = tp_errinfo_set(&info, TP_EOPEN, 0, "connector open() returned %d", (int)rc);
    if (rc != TP_OK && info.code == TP_OK)
        tp_errinfo_set(&info, rc, 0, "open failed: %s", tp_strerror(rc));
    int64_t t1 = tp_clock_now();
    if (rc != TP_OK && cut_by_caller_deadline(rc, deadline, dl, t1))
        rc = caller_deadline_error(&info, t1 - t0, p->o.connect_timeout);
    int64_t streams = 0; /* what a multiplexed connection carries */
    if (rc == TP_OK && p->o.connector.streams != NULL)
        streams = p->o.connector.streams(p->o.connector.ctx, user);
    if (p->o.trace != NULL) {
        tp_trace_event ev = {.type = TP_TRACE_CONNECT_DONE,
                             .key = key->bytes,
                             .keylen = key->keylen,
                             .err = rc,
                             .duration_ns = t1 - t0};
        tp__emit(p, &ev);
    }

    tp__mutex_lock(&p->mu);
    key->opening--;
    key->prewarming -= prewarm; /* with opening: the adaptive limit never sees one alone */
    if (rc != TP_OK) {
        p->total--;
        tp__permit_give_locked(p, key);
        tp__conn_recycle_locked(p, c);
        tp__open_done_locked(p, key, rc, &info, t0, a);
        tp__capacity_freed_locked(p, key, a);
        if (err != NULL)
            *err = info;
        return rc;
    }
    tp__conn_attach_locked(p, key, c, user, t1);
    tp__mux_opened_locked(p, c, streams);
    tp__open_done_locked(p, key, TP_OK, NULL, t0, a);
    if (atomic_load(&p->closed)) {
        tp__conn_close_locked(p, c, TP_CLOSE_POOL_CLOSED, a);
        return tp_errinfo_set(err, TP_ECLOSED, 0, "the pool was closed while opening");
    }
    return tp__opened_lease_locked(p, c, lease, out, err, a);
}


/* Runs on a worker: opens a connection for an async waiter granted a slot, then
 * completes it (its callback runs here), or queues it again when the failure is one to
 * wait through. */
static void open_job(tp__work *job)
{
    tp__waiter *w = TP__CONTAINER_OF(job, tp__waiter, work);
    tp__key *k = w->key;
    tp_pool *p = w->pool;
    tp__after a;
    tp__after_init(&a);
    tp__mutex_lock(&p->mu);
    tp_conn *c = NULL;
    tp_errinfo info;
    tp_errinfo_clear(&info);
    tp_err rc;
    if (tp_clock_now() >= w->deadline) {
        tp__slot_release_locked(p, k, &a);
        TP__ADD1(k->timeouts, 1);
        rc = tp__timeout_error_locked(p, k, tp_clock_now() - w->enqueued_at, &info);
    } else {
        rc = tp__open_slot_locked(p, k, w->deadline, false, true, &c, &info, &a);
    }
    if (rc == TP_OK) {
        w->grant = TP__GRANT_CONN;
        w->check = false; /* just opened */
        w->conn = c;
    } else if (tp_clock_now() < w->deadline && !atomic_load(&p->closed) &&
               tp__open_failure_waits_locked(p, k, rc)) {
        /* Back at the head of its key's queue (it was served first, so it stays first):
         * it waits for a live connection or the next open, and whatever is free now. */
        tp__waiter_requeue_front_locked(p, w);
        tp__capacity_freed_locked(p, k, &a);
        p->workers--;
        tp__after_run(p, &a);
        return;
    } else {
        w->grant = TP__GRANT_FAIL;
        w->err = rc;
        w->info = info;
    }
    tp__list_push_back(&a.done, &w->done_link);
    p->workers--;
    tp__after_run(p, &a);
}

void tp__async_open_start(tp_pool *p, tp__waiter *w)
{
    tp__mutex_lock(&p->mu);
    p->workers++;
    tp__mutex_unlock(&p->mu);
    w->work.fn = open_job;
    tp_err rc = tp__work_submit(&w->work);
    if (rc == TP_OK)
        return;
    tp__after a;
    tp__after_init(&a);
    tp__mutex_lock(&p->mu);
    p->workers--;
    tp__slot_release_locked(p, w->key, &a);
    w->grant = TP__GRANT_FAIL;
    w->err = tp_errinfo_set(&w->info, rc, 0,
                            rc == TP_EBUSY ? "the library's work queue is full"
                                           : "no worker thread to open a connection");
    tp__list_push_back(&a.done, &w->done_link);
    tp__after_run(p, &a);
}
