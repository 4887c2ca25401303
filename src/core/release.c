/* release.c: ending a lease. The connection is reset by the connector, then goes to
 * the first waiter, back to the idle list, or is closed with a reason. With nobody
 * waiting and the connection still linked in its idle list (the steady state of a
 * request loop) this takes no lock: one CAS publishes it as IDLE. */
#include <assert.h>

#include "pool_internal.h"

/* Makes room under max_idle_per_key and max_idle_total for one more idle connection
 * of c's key by closing least recently used ones. False if no room can be made. */
static bool make_idle_room_locked(tp_pool *p, tp_conn *c, tp__after *a)
{
    tp__key *k = c->key;
    bool linked = (atomic_load(&c->word) & TP__CS_LINKED) != 0;
    int64_t need = linked ? 0 : 1; /* a linked connection is already counted */
    /* Scanning drops stale links first, which may be enough on its own. */
    while (k->nlinked + need > p->o.max_idle_per_key) {
        tp_conn *v = tp__idle_pick_locked(p, k, false, c);
        if (k->nlinked + need <= p->o.max_idle_per_key)
            break;
        if (v == NULL)
            return false;
        if (tp__idle_claim_locked(p, v, TP__CS_RESERVED))
            tp__conn_close_locked(p, v, TP_CLOSE_IDLE_OVERFLOW, a);
    }
    while (p->o.max_idle_total != TP_UNLIMITED && p->linked_total + need > p->o.max_idle_total) {
        tp_conn *v = tp__idle_pool_lru_locked(p, NULL, c);
        if (p->linked_total + need <= p->o.max_idle_total)
            break;
        if (v == NULL)
            return false;
        if (tp__idle_claim_locked(p, v, TP__CS_RESERVED))
            tp__conn_close_locked(p, v, TP_CLOSE_IDLE_OVERFLOW, a);
    }
    return true;
}

/* Puts c (owned, IN_USE) at the front of its key's idle list, publishing it IDLE. */
static void make_idle_locked(tp_pool *p, tp_conn *c, int64_t now)
{
    tp__key *k = c->key;
    uint64_t w = atomic_load(&c->word);
    if (w & TP__CS_LINKED)
        tp__list_remove(&c->idle_link); /* counted already; move it to the front */
    else {
        k->nlinked++;
        p->linked_total++;
    }
    tp__list_push_front(&k->idle, &c->idle_link);
    atomic_store_explicit(&c->idle_since, now, memory_order_relaxed);
    /* Its idle timeout or lifetime ends then, and its health is sampled once it has
     * settled: the key's pass is due by then. */
    int64_t due = TP__MIN(c->expires_at, tp__saturating_add(now, TP__LOAD(k->idle_timeout)));
    if (p->o.retire_unhealthy && p->o.connector.fd != NULL)
        due = TP__MIN(due, now + TP__HEALTH_MIN_IDLE);
    tp__key_due_locked(p, k, due);
    atomic_store(&c->word, TP__CS_MAKE(TP__CS_GEN(w), TP__CS_LINKED, TP__CS_IDLE));
}

/* Serves key's waiters in order, each as the decision step says: a connection, an open
 * slot, or its failure (a breaker with nothing left to wait for fails them all, one
 * after the other). Stops at the first that must wait on. */
static void serve_waiters_locked(tp_pool *p, tp__key *k, tp__after *a)
{
    int64_t now = tp_clock_now();
    while (!tp__list_empty(&k->waiters)) {
        tp__waiter *w = TP__CONTAINER_OF(k->waiters.next, tp__waiter, link);
        bool held;
        int64_t until;
        if (tp__waiter_step_locked(p, w, now, &held, &until, a) != TP__STEP_QUEUE)
            continue;
        if (held)
            break; /* the adaptive limit: the next release serves them */
        /* Blocked by limits, a backoff or the breaker while the key holds connections:
         * let the head recompute when to wake up, and make sure maintenance looks again
         * when a backoff or cool-down ends (async waiters). */
        if (!w->async && !w->woken) {
            w->woken = true;
            pthread_cond_signal(&w->cv);
        }
        if (until != TP_DURATION_INFINITE)
            tp__key_due_locked(p, k, until);
        break;
    }
}

/* Serves the keys with waiters but skip (a list, not a walk of the table), in the order
 * they began to wait. serve_waiters_locked() stops at the first waiter it cannot serve. */
static void serve_waiting_keys_locked(tp_pool *p, tp__key *skip, tp__after *a)
{
    tp__list *n = p->waiting_keys.next;
    while (n != &p->waiting_keys) {
        tp__key *k = TP__CONTAINER_OF(n, tp__key, waiting_link);
        n = n->next; /* serving k may take k (only k) off the list */
        if (k != skip)
            serve_waiters_locked(p, k, a);
    }
}

void tp__capacity_freed_locked(tp_pool *p, tp__key *key, tp__after *a)
{
    TP__ASSERT_LOCKED(&p->mu);
    if (key != NULL && !tp__list_empty(&key->waiters))
        serve_waiters_locked(p, key, a);
    /* Waiters of other keys may have been held back by max_total only. */
    if (p->o.max_total == TP_UNLIMITED || atomic_load(&p->waiters_total) == 0)
        return;
    serve_waiting_keys_locked(p, key, a);
}

void tp__waiting_keys_serve_locked(tp_pool *p, tp__after *a)
{
    TP__ASSERT_LOCKED(&p->mu);
    serve_waiting_keys_locked(p, NULL, a);
}

static void release_slow_locked(tp_pool *p, tp_conn *c, int64_t now, tp__after *a);

/* The waiters-present or unlinked case of a release that keeps the connection. */
static void release_slow(tp_pool *p, tp_conn *c, int64_t now, int64_t hold, bool dropped)
{
    tp__after a;
    tp__after_init(&a);
    tp__key *k = c->key;
    tp__mutex_lock(&p->mu);
    k->last_active = now;
    bool grew = tp__adapt_release_locked(p, k, hold, dropped, now);
    release_slow_locked(p, c, now, &a);
    if (grew)
        tp__capacity_freed_locked(p, k, &a);
    tp__after_run(p, &a);
}

static void release_slow_locked(tp_pool *p, tp_conn *c, int64_t now, tp__after *a)
{
    tp__key *k = c->key;
    if (atomic_load(&p->closed)) {
        tp__conn_close_locked(p, c, TP_CLOSE_POOL_CLOSED, a);
        return;
    }
    uint64_t gen = TP__CS_GEN(atomic_load(&c->word));
    /* Under an adaptive limit that dropped below the leases out, an ending lease is not
     * handed on: the leases drain until one more fits under the limit. */
    bool pass_on = k->adapt == NULL || tp__key_inflight_locked(k) - 1 < tp_adapt_limit(k->adapt);
    if (!tp__list_empty(&k->waiters) && pass_on) {
        tp__waiter *w = TP__CONTAINER_OF(k->waiters.next, tp__waiter, link);
        if (w->flags & TP_ACQUIRE_FRESH) {
            /* It asked for a new connection (a retry after a reused one failed): this one
             * goes idle, and the decision step makes room for the fresh one. */
            tp__release_to_idle_locked(p, c, a);
            return;
        }
        if (w->async || now - w->enqueued_at >= p->o.fair_after) {
            /* Direct handoff: the connection never becomes idle, nobody can barge. */
            if (atomic_load(&c->word) & TP__CS_LINKED) {
                tp__unlink_locked(p, c);
                atomic_store(&c->word, TP__CS_MAKE(gen, 0, TP__CS_INUSE));
            }
            atomic_store_explicit(&c->idle_since, now, memory_order_relaxed);
            tp__waiter_grant_conn_locked(p, w, c, false, a);
            return;
        }
        /* The first waiter has not waited long: make the connection idle and wake it;
         * a running thread may take the connection first (no handoff cost). */
        if (make_idle_room_locked(p, c, a)) {
            make_idle_locked(p, c, now);
            if (!w->woken) {
                w->woken = true;
                pthread_cond_signal(&w->cv);
            }
            tp__hint_set(p, c, gen);
        } else {
            tp__conn_close_locked(p, c, TP_CLOSE_IDLE_OVERFLOW, a);
            tp__capacity_freed_locked(p, k, a);
        }
        return;
    }
    if (make_idle_room_locked(p, c, a)) {
        make_idle_locked(p, c, now);
        tp__hint_set(p, c, gen);
        tp__capacity_freed_locked(p, k, a); /* waiters of other keys held by max_total */
    } else {
        tp__conn_close_locked(p, c, TP_CLOSE_IDLE_OVERFLOW, a);
        tp__capacity_freed_locked(p, k, a);
    }
}

void tp__release_to_idle_locked(tp_pool *p, tp_conn *c, tp__after *a)
{
    TP__ASSERT_LOCKED(&p->mu);
    tp__key *k = c->key;
    if (make_idle_room_locked(p, c, a)) {
        make_idle_locked(p, c, tp_clock_now());
        serve_waiters_locked(p, k, a);
    } else {
        tp__conn_close_locked(p, c, TP_CLOSE_IDLE_OVERFLOW, a);
        tp__capacity_freed_locked(p, k, a);
    }
}

/* Waiters that a lock-free release may have to serve: of its own key, or of any key
 * when max_total can hold waiters back (an idle connection of another key is then
 * closed to make room for them). */
static inline bool waiters_to_serve(const tp_pool *p, tp__key *k)
{
    return atomic_load(&k->nwaiters) != 0 ||
           (p->o.max_total != TP_UNLIMITED && atomic_load(&p->waiters_total) != 0);
}

/* The Dekker read after a lock-free release saw waiters: serve them under the lock. */
static void kick_waiters(tp_pool *p, tp__key *k)
{
    tp__after a;
    tp__after_init(&a);
    tp__mutex_lock(&p->mu);
    tp__capacity_freed_locked(p, k, &a);
    tp__after_run(p, &a);
}

tp_close_reason tp__release_reason(tp_pool *p, const tp_conn *c, unsigned flags, int64_t now)
{
    if (flags & TP_RELEASE_BROKEN)
        return TP_CLOSE_BROKEN;
    if (flags & TP_RELEASE_DISCARD)
        return TP_CLOSE_DISCARDED;
    if (atomic_load_explicit(&p->closed, memory_order_relaxed))
        return TP_CLOSE_POOL_CLOSED;
    if (atomic_load_explicit(&c->evict, memory_order_relaxed))
        return TP_CLOSE_EVICTED;
    if (p->o.max_uses != TP_UNLIMITED && (int64_t)TP__LOAD(c->uses) >= p->o.max_uses)
        return TP_CLOSE_MAX_USES;
    if (now >= c->expires_at)
        return TP_CLOSE_LIFETIME;
    return TP_CLOSE__COUNT;
}

void tp__emit_release(tp_pool *p, tp_conn *lease, tp_close_reason reason, int64_t hold)
{
    tp_trace_event ev = {.type = TP_TRACE_RELEASE,
                         .key = lease->key->bytes,
                         .keylen = lease->key->keylen,
                         .conn = lease,
                         .closed = reason != TP_CLOSE__COUNT,
                         .reason = reason != TP_CLOSE__COUNT ? reason : TP_CLOSE_DISCARDED,
                         .duration_ns = hold};
    tp__emit(p, &ev);
}

void tp_conn_release(tp_conn *c, unsigned flags)
{
    if (c == NULL)
        return;
    tp_pool *p = c->pool;
    tp__fork_check(p);
    if (TP__UNLIKELY(c->inherited)) {
        tp__conn_abandon(p, c); /* a lease the parent held: gone, quietly */
        return;
    }
    if (TP__UNLIKELY(c->parent != NULL)) { /* a stream of a multiplexed connection */
        tp__mux_release(p, c, flags);
        return;
    }
    tp__key *k = c->key;
    tp__tenant_lease_end(p, c);
    int64_t now = tp_clock_now();
    int64_t hold = now - c->acquired_at;
    tp__stats_hold(c, hold);
    atomic_store_explicit(&c->last_hold, tp__hold_clip(hold), memory_order_relaxed);

    tp_close_reason reason = tp__release_reason(p, c, flags, now);
    if (reason == TP_CLOSE__COUNT && TP__UNLIKELY(tp__shed_on_release(p)))
        reason = TP_CLOSE_SHED;
    else if (reason == TP_CLOSE__COUNT && tp__health_on_release(p, c))
        reason = TP_CLOSE_UNHEALTHY;
    else if (reason == TP_CLOSE__COUNT && p->o.connector.reset != NULL &&
             p->o.connector.reset(p->o.connector.ctx, c->user) != TP_OK)
        reason = TP_CLOSE_RESET_FAILED;
    if (TP__UNLIKELY(p->o.trace != NULL))
        tp__emit_release(p, c, reason, hold);

    if (TP__UNLIKELY(reason != TP_CLOSE__COUNT)) {
        tp__after a;
        tp__after_init(&a);
        tp__mutex_lock(&p->mu);
        k->last_active = now;
        (void)tp__adapt_release_locked(p, k, hold, (flags & TP_RELEASE_DROPPED) != 0, now);
        tp__conn_close_locked(p, c, reason, &a); /* frees capacity: waiters served below */
        tp__capacity_freed_locked(p, k, &a);
        tp__after_run(p, &a);
        return;
    }

    /* The lock-free path: still linked, nobody waiting. */
    uint64_t w = atomic_load(&c->word);
    if (TP__LIKELY((w & TP__CS_LINKED) && !waiters_to_serve(p, k) && !p->adaptive)) {
        atomic_store_explicit(&c->idle_since, now, memory_order_relaxed);
        /* Set the hint while the connection is still ours to read. */
        tp__hint_set(p, c, TP__CS_GEN(w));
        /* Its place in the idle list is stale now: note it for the next lock holder,
         * once per settle (a request loop reusing it pays this only once). The first
         * load is seq_cst so that a settle's clearing is seen (idle.c). */
        if (!atomic_load(&c->dqueued) && !atomic_exchange(&c->dqueued, true))
            tp__idle_push_displaced(k, c);
        uint64_t idle = (w & ~TP__CS_MASK) | (uint64_t)TP__CS_IDLE;
        if (atomic_compare_exchange_strong(&c->word, &w, idle)) {
            /* seq_cst CAS then seq_cst load: a waiter that queued after our check above
             * either saw the connection IDLE in its rescan or is seen here. The key is
             * still readable: keys are freed only a grace period after they empty. */
            if (TP__UNLIKELY(waiters_to_serve(p, k)))
                kick_waiters(p, k);
            return;
        }
        /* The slow path unlinked it meanwhile (it is still ours, IN_USE). */
    }
    release_slow(p, c, now, hold, (flags & TP_RELEASE_DROPPED) != 0);
}
