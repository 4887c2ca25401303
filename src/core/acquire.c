/* acquire.c: the blocking acquire (with its fair wait queue and short spin before
 * queuing) and try-acquire. */
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
    return tp_errinfo_set(
        err, TP_ETIMEDOUT, 0,
        "no connection after %.1f ms: %lld open of max %lld for this key (%lld idle, %lld "
        "opening), %lld waiting, %lld open in the pool%s%s",
        (double)waited / 1e6, (long long)k->nconns, (long long)p->o.max_per_key, (long long)idle,
        (long long)k->opening, (long long)atomic_load(&k->nwaiters), (long long)p->total,
        k->last_err.code != TP_OK ? "; last open error: " : "",
        k->last_err.code != TP_OK ? k->last_err.msg : "");
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

/* Waits (if need be) until key has an idle connection for us, or a slot to open one, or
 * the call fails. Called and returns with the lock held. */
static wait_outcome wait_for_conn_locked(tp_pool *p, tp__key *key, int64_t start, int64_t deadline,
                                         bool may_queue, bool fresh, tp_conn **out, tp_err *rc,
                                         tp_errinfo *err, tp__after *a)
{
    tp__waiter w;
    memset(&w, 0, sizeof w);
    bool queued = false, cv_ready = false;
    int64_t spin_until = -1; /* not decided yet */
    wait_outcome res = GOT_ERR;
    for (;;) {
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
        if (atomic_load(&p->closed)) {
            *rc = tp_errinfo_set(err, TP_ECLOSED, 0, "the pool is closed");
            break;
        }
        int64_t now = tp_clock_now();
        /* A newcomer, or a waiter that is not first, may take a connection only while
         * the first waiter has not waited past fair_after; after that, arrival order. */
        bool may_take = true;
        if (!tp__list_empty(&key->waiters)) {
            tp__waiter *head = TP__CONTAINER_OF(key->waiters.next, tp__waiter, link);
            may_take = head == &w || now - head->enqueued_at < p->o.fair_after;
        }
        /* The adaptive limit holds every newcomer back alike (a release wakes them). */
        may_take = may_take && tp__key_admits_locked(p, key);
        int64_t until = TP_DURATION_INFINITE;
        if (may_take) {
            tp_conn *c = fresh ? NULL : tp__idle_take_locked(p, key);
            if (c != NULL) {
                if (queued)
                    tp__waiter_dequeue_locked(p, &w);
                queued = false;
                *out = c;
                res = GOT_CONN;
                break;
            }
            tp__open_verdict v = tp__open_allowed_locked(p, key, now, false, &until, a);
            if (v == TP__OPEN_OK) {
                if (queued)
                    tp__waiter_dequeue_locked(p, &w);
                queued = false;
                res = GOT_SLOT;
                break;
            }
            if (v == TP__OPEN_WAIT && fresh && until == TP_DURATION_INFINITE &&
                key->nconns + key->opening >= p->o.max_per_key) {
                /* Idle connections may be what fills the key: close the least recently
                 * used one to make room for the fresh connection, and look again. */
                tp_conn *old = tp__idle_take_lru_locked(p, key);
                if (old != NULL) {
                    tp__conn_close_locked(p, old, TP_CLOSE_IDLE_OVERFLOW, a);
                    continue;
                }
            }
            if (v == TP__OPEN_BREAKER && tp__breaker_fails_fast_locked(key)) {
                *rc = tp__breaker_error_locked(p, key, err);
                break;
            }
        }
        if (now >= deadline || !may_queue) {
            TP__ADD1(key->timeouts, 1);
            *rc = tp__timeout_error_locked(p, key, now - start, err);
            break;
        }
        if (!queued && spin_until < 0)
            spin_until = holds_are_short_locked(key) ? TP__MIN(deadline, now + TP__SPIN_BUDGET) : 0;
        if (!queued && now < spin_until && until == TP_DURATION_INFINITE && may_take) {
            /* Every connection is leased. Before queuing (which costs a sleep and a
             * wake-up, and turns every release into a locked handoff), give the holders
             * the CPU a few times: on a loaded machine the holder is often a thread that
             * was preempted between acquire and release. */
            tp__mutex_unlock(&p->mu);
            sched_yield();
            tp__mutex_lock(&p->mu);
            continue;
        }
        if (!queued) {
            if (p->o.max_waiters_per_key != TP_UNLIMITED &&
                atomic_load(&key->nwaiters) >= p->o.max_waiters_per_key) {
                TP__ADD1(key->rejects_busy, 1);
                *rc = tp_errinfo_set(err, TP_EBUSY, 0, "%lld acquires already wait for this key",
                                     (long long)atomic_load(&key->nwaiters));
                break;
            }
            if (!cv_ready) {
                if (tp__cond_init(&w.cv) != 0) {
                    *rc = tp_errinfo_set(err, TP_ESYS, 0, "initialising a condition variable");
                    break;
                }
                cv_ready = true;
            }
            w.key = key;
            w.enqueued_at = now;
            w.deadline = deadline;
            tp__list_push_back(&key->waiters, &w.link);
            atomic_fetch_add(&p->waiters_total, 1);
            TP__ADD1(key->waits, 1);
            /* seq_cst: pairs with the releaser's CAS then load (see pool_internal.h). */
            int64_t nw = atomic_fetch_add(&key->nwaiters, 1) + 1;
            queued = true;
            /* Crossing the bound: prewarm now, not at the next pass. Only on the crossing,
             * so a long queue does not run a maintenance pass per queued acquire. */
            if (p->o.prewarm_waiters != TP_UNLIMITED && nw == p->o.prewarm_waiters + 1)
                tp__maintenance_poke_locked(p, now);
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
        tp__cond_wait_until(&w.cv, &p->mu, TP__MIN(deadline, until));
    }
    if (queued && w.grant == TP__GRANT_NONE)
        tp__waiter_dequeue_locked(p, &w);
    if (res == GOT_CONN || res == GOT_SLOT) {
        int64_t waited = tp_clock_now() - start;
        if (res == GOT_CONN)
            tp__hist_add(&key->wait_hist, waited);
    } else if (queued && *rc == TP_ETIMEDOUT && p->o.trace != NULL) {
        /* reported by the caller after unlocking */
    }
    /* A waiter that got a grant it cannot use any more is not possible here: grants are
     * only given to queued waiters, and we consumed ours above. */
    if (cv_ready)
        pthread_cond_destroy(&w.cv);
    return res;
}

tp_err tp_pool_acquire(tp_pool *p, const void *key, size_t keylen, int64_t timeout, tp_conn **out,
                       tp_errinfo *err)
{
    return tp_pool_acquire_ex(p, key, keylen, timeout, 0, out, err);
}

tp_err tp_pool_acquire_ex(tp_pool *p, const void *key, size_t keylen, int64_t timeout,
                          unsigned flags, tp_conn **out, tp_errinfo *err)
{
    tp_err rc = tp__acquire_check_args(p, key, keylen, out, err);
    if (rc != TP_OK)
        return rc;
    if (flags & ~TP_ACQUIRE_FRESH)
        return tp_errinfo_set(err, TP_EINVAL, 0, "flags: unknown bits 0x%x",
                              flags & ~TP_ACQUIRE_FRESH);
    bool fresh = (flags & TP_ACQUIRE_FRESH) != 0;
    if (timeout == TP_DURATION_DEFAULT)
        timeout = p->o.acquire_timeout;
    if (timeout < 0)
        return tp_errinfo_set(err, TP_EINVAL, 0, "timeout: %lld is negative", (long long)timeout);
    tp_conn *c = fresh ? NULL : tp__fast_acquire(p, key, keylen);
    if (c != NULL) {
        *out = c;
        return TP_OK;
    }
    uint64_t hash = tp__key_hash(key, keylen);

    int64_t start = tp_clock_now();
    int64_t deadline = tp__saturating_add(start, timeout);
    tp__after a;
    tp__after_init(&a);
    tp__mutex_lock(&p->mu);
    tp__key *k = tp__key_get_locked(p, key, keylen, hash, &rc);
    if (k == NULL) {
        tp__mutex_unlock(&p->mu);
        return tp_errinfo_set(err, rc, 0,
                              rc == TP_ELIMIT ? "max_keys (%lld) distinct keys already live"
                                              : "allocating key (%lld max keys)",
                              (long long)p->o.max_keys);
    }
    k->pins++;
    for (;;) {
        k->last_active = tp_clock_now();
        wait_outcome o =
            wait_for_conn_locked(p, k, start, deadline, timeout > 0, fresh, &c, &rc, err, &a);
        if (o == GOT_ERR)
            break;
        if (o == GOT_SLOT && timeout > 0 && tp_clock_now() >= deadline) {
            /* Granted a slot too late to use it: give it back rather than start an open
             * that is doomed to time out and would count as a failure. */
            tp__slot_release_locked(p, k, &a);
            TP__ADD1(k->timeouts, 1);
            rc = tp__timeout_error_locked(p, k, tp_clock_now() - start, err);
            break;
        }
        if (o == GOT_SLOT) {
            /* timeout 0 means "do not queue"; the open itself still gets connect_timeout. */
            rc = tp__open_slot_locked(p, k, timeout > 0 ? deadline : TP_DURATION_INFINITE, false,
                                      &c, err, &a);
            if (rc == TP_OK) {
                tp__hist_add(&k->wait_hist, tp_clock_now() - start);
                k->pins--;
                tp__after_run(p, &a);
                tp__lease_begin(p, c, tp_clock_now(), false, false, tp_clock_now() - start);
                tp_errinfo_clear(err);
                *out = c;
                return TP_OK;
            }
            /* A restart's refusal, or no room while the key holds connections: wait for
             * one of them or the next open (a timeout then names this error). The failed
             * open's deferred work (waiters it failed or served) must not wait on ours. */
            if (timeout > 0 && tp_clock_now() < deadline &&
                tp__open_failure_waits_locked(p, k, rc)) {
                tp__after_run(p, &a);
                tp__mutex_lock(&p->mu);
                continue;
            }
            break;
        }
        /* An idle connection, claimed: validate it outside the lock. */
        tp__after_run(p, &a);
        int64_t now = tp_clock_now();
        tp_close_reason r = tp__reuse_verdict(p, c, now);
        if (r == TP_CLOSE__COUNT) {
            tp__lease_begin(p, c, now, TP__LOAD(c->uses) > 0, false, now - start);
            tp__mutex_lock(&p->mu);
            k->pins--;
            tp__mutex_unlock(&p->mu);
            tp_errinfo_clear(err);
            *out = c;
            return TP_OK;
        }
        tp__mutex_lock(&p->mu);
        if (r == TP_CLOSE_CHECK_FAILED)
            TP__ADD1(k->checks_failed, 1);
        tp__conn_close_locked(p, c, r, &a);
        tp__capacity_freed_locked(p, k, &a);
        tp__after_run(p, &a); /* closes and served waiters now, not after our wait */
        tp__mutex_lock(&p->mu);
    }
    k->pins--;
    bool timed_out = rc == TP_ETIMEDOUT && timeout > 0; /* a wait, not a "do not queue" */
    tp__after_run(p, &a);
    if (timed_out && p->o.trace != NULL) {
        tp_trace_event ev = {.type = TP_TRACE_WAIT_TIMEOUT,
                             .key = key,
                             .keylen = keylen,
                             .waited_ns = tp_clock_now() - start};
        tp__emit(p, &ev);
    }
    return rc;
}

tp_err tp_pool_try_acquire(tp_pool *p, const void *key, size_t keylen, tp_conn **out)
{
    tp_err rc = tp__acquire_check_args(p, key, keylen, out, NULL);
    if (rc != TP_OK)
        return rc;
    tp_conn *c = tp__fast_acquire(p, key, keylen);
    if (c != NULL) {
        *out = c;
        return TP_OK;
    }
    uint64_t hash = tp__key_hash(key, keylen);
    tp__after a;
    tp__after_init(&a);
    for (;;) {
        tp__mutex_lock(&p->mu);
        if (atomic_load(&p->closed)) {
            tp__mutex_unlock(&p->mu);
            return TP_ECLOSED;
        }
        tp__key *k = tp__key_find_locked(p, key, keylen, hash);
        c = NULL;
        /* Never ahead of queued waiters: they were here first. */
        if (k != NULL && atomic_load(&k->nwaiters) == 0 && tp__key_admits_locked(p, k))
            c = tp__idle_take_locked(p, k);
        if (c == NULL) {
            tp__mutex_unlock(&p->mu);
            return TP_EAGAIN;
        }
        k->pins++;
        tp__mutex_unlock(&p->mu);
        int64_t now = tp_clock_now();
        tp_close_reason r = tp__reuse_verdict(p, c, now);
        tp__mutex_lock(&p->mu);
        k->pins--;
        if (r == TP_CLOSE__COUNT) {
            tp__hist_add(&k->wait_hist, 0);
            tp__mutex_unlock(&p->mu);
            tp__lease_begin(p, c, now, true, false, 0);
            *out = c;
            return TP_OK;
        }
        if (r == TP_CLOSE_CHECK_FAILED)
            TP__ADD1(k->checks_failed, 1);
        tp__conn_close_locked(p, c, r, &a);
        tp__capacity_freed_locked(p, k, &a);
        tp__after_run(p, &a);
    }
}
