/* acquire.c: the blocking acquire: the decision step (step.c) says what a request gets,
 * this file waits for it on a condition variable (after a short spin when leases are
 * short), opens in the calling thread, and validates a claimed idle connection. */
#include <sched.h>
#include <stdio.h>
#include <string.h>

#include "pool_internal.h"

/* ---- the blocking path ------------------------------------------------------------- */

tp_err tp__timeout_error_locked(tp_pool *p, tp__key *k, int64_t waited, tp_errinfo *err)
{
    int64_t idle = 0;
    for (tp__list *n = k->idle.next; n != &k->idle; n = n->next) {
        tp_conn *c = TP__CONTAINER_OF(n, tp_conn, idle_link);
        idle += TP__CS_STATE(atomic_load(&c->word)) == TP__CS_IDLE;
    }
    /* A shared budget that held opens back is the likelier reason than the key's limit. */
    char permits[96] = "";
    uint64_t held_back = TP__LOAD(k->permit_waits);
    if (p->o.permits != NULL && held_back > 0)
        snprintf(permits, sizeof permits,
                 "; %llu opens held back waiting for a permit of the "
                 "shared budget",
                 (unsigned long long)held_back);
    return tp_errinfo_set(
        err, TP_ETIMEDOUT, 0,
        "no connection after %.1f ms: %lld open of max %lld for this key (%lld idle, %lld "
        "opening), %lld waiting, %lld open in the pool%s%s%s",
        (double)waited / 1e6, (long long)k->nconns, (long long)p->o.max_per_key, (long long)idle,
        (long long)k->opening, (long long)atomic_load(&k->nwaiters), (long long)p->total, permits,
        *tp__key_last_open_error(k) ? "; last open error: " : "", tp__key_last_open_error(k));
}

typedef enum { GOT_CONN, GOT_SLOT, GOT_ERR } wait_outcome;

/* How long a would-be waiter yields before it queues, and the hold time below which a
 * lease counts as short. Queuing costs a sleep, a wake-up and a locked handoff on every
 * release while anyone waits; when leases are short (a request loop, a benchmark) the
 * connection is usually back within a few scheduler slices, often held by a thread that
 * was preempted between acquire and release. When leases are long, spinning only burns
 * CPU, so we queue at once. */
#define TP__SPIN_BUDGET (100 * TP_NSEC_PER_USEC)
#define TP__SHORT_HOLD (100 * TP_NSEC_PER_USEC)

/* True if most of key's connections finished their last lease quickly. */
static bool holds_are_short_locked(tp__key *key)
{
    int64_t n = 0, shortn = 0;
    for (tp__list *it = key->conns.next; it != &key->conns && n < 64; it = it->next) {
        tp_conn *c = TP__CONTAINER_OF(it, tp_conn, all_link);
        int64_t h = TP__LOAD(c->last_hold);
        n++;
        shortn += h >= 0 && h < TP__SHORT_HOLD;
    }
    return n > 0 && 2 * shortn >= n;
}

/* Waits (if need be) until q's key has an idle connection for us, or a slot to open
 * one, or the call fails: the decision step says which, this loop only waits. *at: the
 * time of the first decision on entry (the clock is read once per wake-up, not once per
 * step: it costs as much as the rest of a reuse), of the last one on return. Called and
 * returns with the lock held. */
static wait_outcome wait_for_conn_locked(tp_pool *p, tp__acq *q, tp_conn **out, int64_t *at,
                                         tp_err *rc, tp_errinfo *err, tp__after *a)
{
    tp__key *key = q->k;
    tp__waiter w; /* filled when it queues: most acquires never do */
    w.grant = TP__GRANT_NONE;
    bool cv_ready = false;
    int64_t spin_until = -1; /* not decided yet */
    wait_outcome res = GOT_ERR;
    q->self = NULL;
    int64_t now = *at;
    for (bool first = true;; first = false) {
        if (!first)
            now = tp_clock_now();
        *at = now;
        if (w.grant == TP__GRANT_CONN) {
            *out = w.conn;
            res = GOT_CONN;
            break;
        }
        if (w.grant == TP__GRANT_OPEN) {
            res = GOT_SLOT;
            break;
        }
        if (w.grant == TP__GRANT_FAIL) {
            *rc = w.err;
            if (err != NULL)
                *err = w.info;
            break;
        }
        int64_t until;
        tp__step s = tp__acquire_step_locked(p, q, now, out, &until, rc, err, a);
        if (s != TP__STEP_QUEUE) {
            if (q->self != NULL)
                tp__waiter_dequeue_locked(p, &w);
            q->self = NULL;
            res = s == TP__STEP_CONN ? GOT_CONN : s == TP__STEP_OPEN ? GOT_SLOT : GOT_ERR;
            break;
        }
        if (q->self == NULL && spin_until < 0)
            spin_until =
                holds_are_short_locked(key) ? TP__MIN(q->deadline, now + TP__SPIN_BUDGET) : 0;
        if (q->self == NULL && now < spin_until && until == TP_DURATION_INFINITE &&
            !q->held_by_limit) {
            /* Every connection is leased. Before queuing (which costs a sleep and a
             * wake-up, and turns every release into a locked handoff), give the holders
             * the CPU a few times: on a loaded machine the holder is often a thread that
             * was preempted between acquire and release. */
            q->waited = true;
            tp__mutex_unlock(&p->mu);
            sched_yield();
            tp__mutex_lock(&p->mu);
            continue;
        }
        if (q->self == NULL) {
            if (!cv_ready) {
                memset(&w, 0, sizeof w);
                if (tp__cond_init(&w.cv) != 0) {
                    *rc = tp_errinfo_set(err, TP_ESYS, 0, "initialising a condition variable");
                    break;
                }
                cv_ready = true;
            }
            w.key = key;
            w.flags = q->flags;
            w.tenant = q->tenant;
            w.enqueued_at = now;
            w.deadline = q->deadline;
            tp__waiter_enqueue_locked(p, &w, now);
            q->self = &w;
            q->waited = true;
            if (p->o.trace != NULL) {
                tp__mutex_unlock(&p->mu);
                tp_trace_event ev = {
                    .type = TP_TRACE_WAIT_START, .key = key->bytes, .keylen = key->keylen};
                tp__emit(p, &ev);
                tp__mutex_lock(&p->mu);
            }
            continue; /* rescan once after publishing: no lost wake-up */
        }
        w.woken = false;
        tp__cond_wait_until(&w.cv, &p->mu, TP__MIN(q->deadline, until));
    }
    if (q->self != NULL && w.grant == TP__GRANT_NONE)
        tp__waiter_dequeue_locked(p, &w);
    q->self = NULL;
    /* A waiter that got a grant it cannot use any more is not possible here: grants are
     * only given to queued waiters, and we consumed ours above. */
    if (cv_ready)
        pthread_cond_destroy(&w.cv);
    return res;
}

/* The lease begins for its holder: its tenant's place goes with it. */
static tp_err leased(tp__acq *q, tp_conn *c, tp_conn **out, tp_errinfo *err)
{
    tp__tenant_attach(q->tenant, c);
    tp_errinfo_clear(err);
    *out = c;
    return TP_OK;
}

tp_err tp_pool_acquire(tp_pool *p, const void *key, size_t keylen, int64_t timeout, tp_conn **out,
                       tp_errinfo *err)
{
    tp_acquire_req r = tp_acquire_req_for(key, keylen, timeout, 0);
    return tp_acquire(p, &r, out, err);
}

#define TP__BLOCKING_FLAGS (TP_ACQUIRE_FRESH | TP_ACQUIRE_NOWAIT | TP_ACQUIRE_IDLE_ONLY)

tp_err tp_acquire(tp_pool *p, const tp_acquire_req *req, tp_conn **out, tp_errinfo *err)
{
    /* The request loop's case first, with nothing but the checks it needs: no tenant, no
     * FRESH, a valid request, the connection this thread released last still idle. */
    if (TP__LIKELY(p != NULL && req != NULL && out != NULL && req->tenant == NULL &&
                   (req->flags & ~(unsigned)(TP_ACQUIRE_NOWAIT | TP_ACQUIRE_IDLE_ONLY)) == 0 &&
                   (req->timeout >= 0 || req->timeout == TP_DURATION_DEFAULT) &&
                   (req->key != NULL || req->keylen == 0))) {
        tp__fork_check(p); /* before any connection can be handed out */
        tp_conn *c = tp__fast_acquire(p, req->key, req->keylen, 0);
        if (c != NULL) {
            *out = c;
            return TP_OK;
        }
    }
    tp__acq q;
    tp_err rc = tp__acquire_prepare(p, req, TP__BLOCKING_FLAGS, &q, out, err);
    if (rc != TP_OK)
        return rc;
    bool nowait = (q.flags & (TP_ACQUIRE_NOWAIT | TP_ACQUIRE_IDLE_ONLY)) != 0;
    tp__acquire_clock(&q);
    /* Lease an idle connection with its link in place: the release is then lock-free.
     * (An adaptive pool counts every lease under the lock.) */
    q.keep_link = !p->adaptive;
    tp_conn *c = NULL;
    if (q.tenant != NULL) {
        /* The quota first (it may wait); then the lock-free try the check above skipped. */
        rc = tp__tenant_take_or_wait(p, q.tenant, nowait ? q.start : q.deadline, &q.waited, err);
        if (rc != TP_OK)
            return rc;
        c = (q.flags & TP_ACQUIRE_FRESH)
                ? NULL
                : tp__fast_acquire(p, req->key, req->keylen, q.waited ? q.start : 0);
        if (c != NULL)
            return leased(&q, c, out, err);
    }

    tp__after a;
    tp__after_init(&a);
    tp__mutex_lock(&p->mu);
    tp__key *k = tp__acquire_key_locked(p, req, &rc, err);
    if (k == NULL) {
        tp__mutex_unlock(&p->mu);
        tp__tenant_giveback(p, q.tenant);
        return rc;
    }
    q.k = k;
    for (int64_t now = q.start;; now = tp_clock_now()) {
        k->last_active = now;
        wait_outcome o = wait_for_conn_locked(p, &q, &c, &now, &rc, err, &a);
        if (o == GOT_ERR)
            break;
        if (o == GOT_SLOT && !nowait && tp_clock_now() >= q.deadline) {
            /* Granted a slot too late to use it: give it back rather than start an open
             * that is doomed to time out and would count as a failure. */
            tp__slot_release_locked(p, k, &a);
            TP__ADD1(k->timeouts, 1);
            rc = tp__timeout_error_locked(p, k, tp_clock_now() - q.start, err);
            break;
        }
        if (o == GOT_SLOT) {
            /* Not waiting means "do not queue"; the open itself still gets
             * connect_timeout. */
            rc = tp__open_slot_locked(p, k, nowait ? TP_DURATION_INFINITE : q.deadline, false, true,
                                      &c, err, &a);
            if (rc == TP_OK) {
                now = tp_clock_now();
                k->pins--;
                tp__after_run(p, &a);
                tp__lease_begin(p, c, now, false, false, now - q.start);
                return leased(&q, c, out, err);
            }
            /* A restart's refusal, or no room while the key holds connections: wait for
             * one of them or the next open (a timeout then names this error). The failed
             * open's deferred work (waiters it failed or served) must not wait on ours. */
            if (!nowait && tp_clock_now() < q.deadline && tp__open_failure_waits_locked(p, k, rc)) {
                tp__after_run(p, &a);
                tp__mutex_lock(&p->mu);
                continue;
            }
            break;
        }
        /* An idle connection, claimed (at now): validate it, outside the lock if the
         * connector's check is to be asked. */
        bool check;
        tp_close_reason r = tp__reuse_precheck(p, c, now, &check);
        if (r == TP_CLOSE__COUNT && check) {
            tp__after_run(p, &a);
            r = tp__reuse_check(p, c, now);
            tp__mutex_lock(&p->mu);
        }
        if (r == TP_CLOSE__COUNT) {
            /* A reuse that never queued waited for nothing (acquire_wait counts it at 0). */
            k->pins--;
            tp__after_run(p, &a);
            tp__lease_begin(p, c, now, TP__LOAD(c->uses) > 0, false, q.waited ? now - q.start : 0);
            return leased(&q, c, out, err);
        }
        if (r == TP_CLOSE_CHECK_FAILED)
            TP__ADD1(k->checks_failed, 1);
        tp__claimed_close_locked(p, c, r, &a);
        tp__capacity_freed_locked(p, k, &a);
        tp__after_run(p, &a); /* closes and served waiters now, not after our wait */
        tp__mutex_lock(&p->mu);
    }
    k->pins--;
    /* a wait that ran out, not a "do not queue" or an idle-only miss */
    bool timed_out = rc == TP_ETIMEDOUT && !nowait;
    tp__after_run(p, &a);
    tp__tenant_giveback(p, q.tenant);
    if (timed_out && p->o.trace != NULL) {
        tp_trace_event ev = {.type = TP_TRACE_WAIT_TIMEOUT,
                             .key = req->key,
                             .keylen = req->keylen,
                             .waited_ns = tp_clock_now() - q.start};
        tp__emit(p, &ev);
    }
    return rc;
}
