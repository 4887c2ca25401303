/* lease.c: the start of a lease: argument checks, the lock-free attempt every form of
 * acquire makes first, the checks an idle connection passes before it is handed out,
 * the statistics and trace event of a granted lease, and its facts
 * (tp_conn_lease_info). */
#include <sched.h>
#include <stdio.h>
#include <string.h>

#include "pool_internal.h"

/* ---- beginning a lease ----------------------------------------------------------- */

/* Records the start of a lease of c (owned by the caller, outside the lock). */
void tp__lease_begin(tp_pool *p, tp_conn *c, int64_t now, bool reused, bool fast, int64_t waited)
{
    if (c->parent != NULL) {
        /* A stream: its connection serves several at once, so its count is a real
         * atomic add, and the stream keeps the number it drew. */
        uint64_t before = atomic_fetch_add(&c->parent->uses, 1);
        reused = before > 0;
        atomic_store_explicit(&c->uses, before, memory_order_relaxed);
    }
    c->acquired_at = now;
    c->lease_reused = reused;
    c->lease_waited_ns = waited;
    TP__ADD1(c->uses, 1);
    int64_t idle_ns = 0;
    if (reused) {
        int64_t since = TP__LOAD(c->idle_since);
        idle_ns = since < 0 ? 0 : now - since; /* < 0: a stream added to a busy one */
    }
    /* Counted in this thread's shard of the key on the lock-free path (no shared line),
     * in the key's shared shard otherwise; the release counts its hold in the same one. */
    tp__shard *sh = fast ? tp__thread_shard(p, c->key) : NULL;
    c->sh = sh;
    if (sh != NULL) {
        TP__ADD1(sh->acquires, 1);
        if (waited <= 0)
            TP__ADD1(sh->fast_acquires, 1);
        if (reused)
            tp__hist_add(&sh->idle, idle_ns);
    } else {
        tp__stats_lease_shared(c->key, waited <= 0, reused, idle_ns);
    }
    /* A lease that waited is one sample of the key's wait histogram (atomic: leases
     * begin with or without the lock); one that did not is counted at 0 above. */
    if (waited > 0)
        tp__hist_add_shared(&c->key->wait_hist, waited);
    if (TP__UNLIKELY(p->o.trace != NULL)) {
        tp_trace_event ev = {.type = TP_TRACE_ACQUIRE,
                             .key = c->key->bytes,
                             .keylen = c->key->keylen,
                             .conn = c,
                             .reused = reused,
                             .idle_ns = reused ? idle_ns : 0,
                             .waited_ns = waited};
        tp__emit(p, &ev);
    }
}

/* Decides whether an idle connection just claimed may be handed out: not past its
 * lifetime or idle timeout, not evicted, and passing check() when idle long enough.
 * Returns TP_CLOSE__COUNT if usable, else the reason to close it. */
tp_close_reason tp__reuse_precheck(tp_pool *p, tp_conn *lease, int64_t now, bool *check)
{
    *check = false;
    /* A stream is judged by its connection, for the time that connection was at rest
     * (none, for a stream added to a busy connection: nothing to check). */
    int64_t since = TP__LOAD(lease->idle_since);
    tp_conn *c = lease->parent != NULL ? lease->parent : lease;
    if (lease != c && since < 0)
        return TP_CLOSE__COUNT;
    int64_t idle_ns = now - since;
    if (now >= c->expires_at)
        return TP_CLOSE_LIFETIME;
    int64_t idle_timeout = TP__LOAD(c->key->idle_timeout);
    if (idle_timeout != TP_DURATION_INFINITE && idle_ns >= idle_timeout)
        return TP_CLOSE_IDLE_TIMEOUT;
    if (atomic_load_explicit(&c->evict, memory_order_relaxed))
        return TP_CLOSE_EVICTED;
    *check = p->o.connector.check != NULL && idle_ns >= p->o.check_after_idle;
    return TP_CLOSE__COUNT;
}

tp_close_reason tp__reuse_check(tp_pool *p, tp_conn *lease, int64_t now)
{
    tp_conn *c = lease->parent != NULL ? lease->parent : lease;
    int64_t idle_ns = now - TP__LOAD(lease->idle_since);
    if (p->o.connector.check(p->o.connector.ctx, c->user, idle_ns) != TP_OK)
        return TP_CLOSE_CHECK_FAILED;
    return TP_CLOSE__COUNT;
}

tp_close_reason tp__reuse_verdict(tp_pool *p, tp_conn *lease, int64_t now)
{
    bool check;
    tp_close_reason r = tp__reuse_precheck(p, lease, now, &check);
    return r == TP_CLOSE__COUNT && check ? tp__reuse_check(p, lease, now) : r;
}

/* Closes a claimed connection that failed tp__reuse_verdict(). */
void tp__claimed_close_locked(tp_pool *p, tp_conn *c, tp_close_reason reason, tp__after *a)
{
    if (c->parent != NULL)
        tp__mux_stream_close_locked(p, c, reason, a);
    else
        tp__conn_close_locked(p, c, reason, a);
}

void tp__close_claimed(tp_pool *p, tp_conn *c, tp_close_reason reason)
{
    tp__after a;
    tp__after_init(&a);
    tp__mutex_lock(&p->mu);
    if (reason == TP_CLOSE_CHECK_FAILED)
        TP__ADD1(c->key->checks_failed, 1);
    tp__key *k = c->key;
    tp__claimed_close_locked(p, c, reason, &a);
    tp__capacity_freed_locked(p, k, &a);
    tp__after_run(p, &a);
}

tp_err tp__acquire_check_args(tp_pool *p, const void *key, size_t keylen, tp_conn **out,
                              tp_errinfo *err)
{
    if (p == NULL)
        return tp_errinfo_set(err, TP_EINVAL, 0, "pool: NULL");
    if (out == NULL)
        return tp_errinfo_set(err, TP_EINVAL, 0, "out: NULL");
    *out = NULL;
    if (key == NULL && keylen > 0)
        return tp_errinfo_set(err, TP_EINVAL, 0, "key: NULL with keylen %zu", keylen);
    tp__fork_check(p); /* before any connection can be handed out */
    return TP_OK;
}

/* The lock-free attempt shared by every form of acquire. */
tp_conn *tp__fast_acquire(tp_pool *p, const void *key, size_t keylen, int64_t since)
{
    /* Closed pools, and adaptive ones (every lease is counted under the lock), have no
     * lock-free path. */
    if (TP__UNLIKELY(atomic_load_explicit(&p->closed, memory_order_relaxed) || p->adaptive))
        return NULL;
    tp_conn *c = tp__hint_claim(p, key, keylen);
    if (c == NULL)
        return NULL;
    int64_t now = tp_clock_now();
    tp_close_reason r = tp__reuse_verdict(p, c, now);
    if (TP__UNLIKELY(r != TP_CLOSE__COUNT)) {
        tp__close_claimed(p, c, r);
        return NULL;
    }
    /* A wait before this (a tenant's quota) is the lease's wait. */
    tp__lease_begin(p, c, now, true, true, since > 0 && now > since ? now - since : 0);
    return c;
}

void tp__lease_begin_async(tp_pool *p, tp_conn *c, int64_t waited)
{
    int64_t now = tp_clock_now();
    tp__lease_begin(p, c, now, TP__LOAD(c->uses) > 0, false, waited);
}

void tp_conn_lease_info(const tp_conn *c, tp_lease_info *out)
{
    if (out == NULL)
        return;
    memset(out, 0, sizeof *out);
    if (c == NULL)
        return;
    out->reused = c->lease_reused;
    if (c->lease_reused) { /* idle_since stays the lease's start of rest until it ends */
        int64_t since = TP__LOAD(c->idle_since);
        out->idle_ns = since < 0 ? 0 : c->acquired_at - since;
    }
    out->waited_ns = c->lease_waited_ns;
    out->uses = TP__LOAD(c->uses);
    out->age_ns = tp_clock_now() - c->created_at;
    out->multiplexed = c->parent != NULL;
    const tp_connector *cn = &c->pool->o.connector;
    if (cn->protocol != NULL)
        out->protocol = cn->protocol(cn->ctx, c->user);
}
