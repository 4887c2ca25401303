/* mux.c: multiplexed connections. A connector whose streams() says a new connection
 * carries N streams (HTTP/2) makes it multiplexed: each lease on it is a stream, a small
 * struct of its own (from the pool's free list) whose parent is the connection, so that
 * several leases of one connection can be out at once on different threads, each with
 * its own facts and tenant. The connection is IN_USE while any stream is out, and
 * idle (in its key's idle list, with its idle timer running) when none is. While it
 * has room it sits in its key's spare list, which the decision step serves before any
 * idle connection or open. Limits on connections (max_per_key, max_total) count it
 * once; the adaptive limit and tenant quotas count its streams. Everything here runs
 * under the pool lock, except a stream's release, which takes it. */
#include <string.h>

#include "pool_internal.h"

/* Keeps c in its key's spare list exactly while it is in use and has room. */
static void spare_update_locked(tp__key *k, tp_conn *c)
{
    bool want = c->mux && c->streams > 0 && !c->draining && c->streams < c->capacity;
    bool in = !tp__list_empty(&c->spare_link);
    if (want && !in)
        tp__list_push_back(&k->spare, &c->spare_link);
    else if (!want && in)
        tp__list_remove(&c->spare_link);
}

void tp__mux_opened_locked(tp_pool *p, tp_conn *c, int64_t streams)
{
    TP__ASSERT_LOCKED(&p->mu);
    tp__key *k = c->key;
    c->streams = 0;
    c->draining = false;
    if (streams <= 0) {
        c->mux = false;
        k->mux_state = TP__MUX_SINGLE;
        return;
    }
    c->mux = true;
    c->capacity = (int32_t)TP__MIN(streams, TP__MUX_MAX_STREAMS);
    k->stream_capacity += c->capacity;
    k->mux_state = TP__MUX_MUX;
}

/* No new streams on c; it closes with reason when its last stream ends. */
static void retire_locked(tp__key *k, tp_conn *c, tp_close_reason reason)
{
    if (c->draining)
        return;
    c->draining = true;
    c->drain_reason = reason;
    k->draining++;
    k->stream_capacity -= c->capacity;
    spare_update_locked(k, c);
}

tp_conn *tp__mux_stream_locked(tp_pool *p, tp_conn *c)
{
    TP__ASSERT_LOCKED(&p->mu);
    tp__key *k = c->key;
    tp_conn *s = tp__conn_new_locked(p);
    if (s == NULL)
        return NULL;
    s->parent = c;
    s->key = k;
    s->user = c->user;
    s->created_at = c->created_at;
    s->expires_at = c->expires_at;
    s->tenant = NULL;
    s->inherited = false;
    /* A stream on a connection at rest was idle as long as the connection; one added to
     * a busy connection was not idle at all (-1: nothing to validate). */
    atomic_store_explicit(&s->idle_since, c->streams == 0 ? TP__LOAD(c->idle_since) : -1,
                          memory_order_relaxed);
    atomic_store_explicit(&s->last_hold, -1, memory_order_relaxed);
    uint64_t w = atomic_load(&s->word);
    atomic_store(&s->word, TP__CS_MAKE(TP__CS_GEN(w), 0, TP__CS_INUSE));
    if (c->streams++ == 0)
        k->mux_busy++;
    k->streams_in_use++;
    spare_update_locked(k, c);
    return s;
}

tp_conn *tp__mux_spare_take_locked(tp_pool *p, tp__key *k, int64_t now, bool *nomem)
{
    TP__ASSERT_LOCKED(&p->mu);
    *nomem = false;
    if (p->o.connector.streams == NULL)
        return NULL; /* nothing multiplexes: not a line of the key to read */
    while (!tp__list_empty(&k->spare)) {
        tp_conn *c = TP__CONTAINER_OF(k->spare.next, tp_conn, spare_link);
        if (now >= c->expires_at) {
            retire_locked(k, c, TP_CLOSE_LIFETIME);
            continue;
        }
        if (atomic_load_explicit(&c->evict, memory_order_relaxed)) {
            retire_locked(k, c, TP_CLOSE_EVICTED);
            continue;
        }
        tp_conn *s = tp__mux_stream_locked(p, c);
        *nomem = s == NULL;
        return s;
    }
    return NULL;
}

void tp__mux_forget_locked(tp__key *k, tp_conn *c)
{
    if (!c->mux)
        return;
    if (!c->draining)
        k->stream_capacity -= c->capacity;
    else
        k->draining--; /* retired: counted until now */
    c->draining = true;
    if (!tp__list_empty(&c->spare_link))
        tp__list_remove(&c->spare_link);
    c->mux = false;
}

/* The stream s ended: its counts go, its struct goes back to the free list. */
static void stream_end_locked(tp_pool *p, tp_conn *s)
{
    tp_conn *c = s->parent;
    tp__key *k = s->key;
    c->streams--;
    k->streams_in_use--;
    if (c->streams == 0)
        k->mux_busy--;
    spare_update_locked(k, c); /* at rest it leaves the spare list for the idle list */
    s->parent = NULL;
    s->tenant = NULL;
    tp__conn_recycle_locked(p, s);
}

/* After a stream of c ended: c takes another, rests, or closes. */
static void after_stream_locked(tp_pool *p, tp_conn *c, tp__after *a)
{
    tp__key *k = c->key;
    if (c->streams > 0) {
        spare_update_locked(k, c);
        tp__capacity_freed_locked(p, k, a);
        return;
    }
    if (c->draining) {
        tp_close_reason r = c->drain_reason;
        tp__conn_close_locked(p, c, r, a);
        tp__capacity_freed_locked(p, k, a);
        return;
    }
    tp__release_to_idle_locked(p, c, a);
}

void tp__mux_stream_close_locked(tp_pool *p, tp_conn *s, tp_close_reason reason, tp__after *a)
{
    TP__ASSERT_LOCKED(&p->mu);
    tp_conn *c = s->parent;
    stream_end_locked(p, s);
    retire_locked(c->key, c, reason);
    after_stream_locked(p, c, a);
}

void tp__mux_release(tp_pool *p, tp_conn *s, unsigned flags)
{
    tp_conn *c = s->parent;
    if (TP__UNLIKELY(c->inherited)) {
        tp__stream_abandon(p, s); /* a stream of one the parent process held */
        return;
    }
    tp__key *k = s->key;
    tp__tenant_lease_end(p, s);
    int64_t now = tp_clock_now();
    int64_t hold = now - s->acquired_at;
    tp__stats_hold(s, hold);
    /* The connection's own facts decide (its uses, evicted, lifetime). */
    tp_close_reason reason = tp__release_reason(p, c, flags, now);
    if (TP__UNLIKELY(p->o.trace != NULL))
        tp__emit_release(p, s, TP_CLOSE__COUNT, hold); /* the stream ends; the connection
                                                          closes later, if at all */
    tp__after a;
    tp__after_init(&a);
    tp__mutex_lock(&p->mu);
    k->last_active = now;
    bool grew = tp__adapt_release_locked(p, k, hold, (flags & TP_RELEASE_DROPPED) != 0, now);
    atomic_store_explicit(&c->last_hold, tp__hold_clip(hold), memory_order_relaxed);
    stream_end_locked(p, s);
    if (reason != TP_CLOSE__COUNT)
        retire_locked(k, c, reason);
    after_stream_locked(p, c, &a);
    if (grew)
        tp__capacity_freed_locked(p, k, &a);
    tp__after_run(p, &a);
}

tp_err tp_conn_set_capacity(tp_conn *lease, int64_t capacity)
{
    if (lease == NULL || capacity < 0)
        return TP_EINVAL;
    tp_conn *c = lease->parent != NULL ? lease->parent : lease;
    tp_pool *p = c->pool;
    tp__after a;
    tp__after_init(&a);
    tp__mutex_lock(&p->mu);
    if (!c->mux) {
        tp__mutex_unlock(&p->mu);
        return TP_ESTATE;
    }
    tp__key *k = c->key;
    if (capacity == 0) {
        retire_locked(k, c, TP_CLOSE_DRAINED);
    } else if (!c->draining) {
        int32_t n = (int32_t)TP__MIN(capacity, TP__MUX_MAX_STREAMS);
        k->stream_capacity += n - c->capacity;
        c->capacity = n;
        spare_update_locked(k, c);
        tp__capacity_freed_locked(p, k, &a); /* room for waiters, at once */
    }
    tp__after_run(p, &a);
    return TP_OK;
}

void tp_conn_record_goaway(tp_conn *lease, uint32_t code)
{
    if (lease == NULL)
        return;
    /* The key outlives its leases: while one is held, it is there. */
    uint32_t i = code < TP_GOAWAY_CODES - 1 ? code : TP_GOAWAY_CODES - 1;
    atomic_fetch_add_explicit(&lease->key->goaways[i], 1, memory_order_relaxed);
}

void tp_conn_record_ping_rtt(tp_conn *lease, int64_t rtt_ns)
{
    if (lease != NULL)
        tp__hist_add_shared(&lease->key->ping_hist, rtt_ns);
}
