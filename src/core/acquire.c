/* acquire.c: leasing a connection: the lock-free reuse path, the blocking path with its
 * fair wait queue, try-acquire, asynchronous acquire and cancel, and opening a
 * connection (in the caller's thread, or on a pool-owned thread for async requests). */
#include <assert.h>
#include <stdio.h>
#include <sched.h>
#include <string.h>

#include "pool_internal.h"

/* ---- thread hint: the connection this thread released last ------------------------ */

/* A thread that releases a connection and acquires the same key again gets the same
 * connection back with one CAS and no lock: the common case of a request loop. The hint
 * is only a guess; the CAS on (generation, LINKED, IDLE) decides. Connection structs
 * are never freed while their pool lives, and the pool id rules out a new pool at the
 * address of a destroyed one, so following the hint never touches freed memory. */
static _Thread_local __attribute__((tls_model("initial-exec"))) struct {
    tp_pool *pool;
    uint64_t pool_id;
    tp_conn *conn;
    uint64_t gen;
    size_t keylen;
    uint64_t prefix; /* the key's first 8 bytes (zero-padded): a cheap pre-check */
} hint;

static uint64_t key_prefix(const void *key, size_t keylen)
{
    uint64_t w = 0;
    if (keylen >= 8)
        memcpy(&w, key, 8);
    else if (keylen > 0)
        memcpy(&w, key, keylen);
    return w;
}

void tp__hint_set(tp_pool *p, tp_conn *c, uint64_t gen)
{
    hint.pool = p;
    hint.pool_id = p->id;
    hint.conn = c;
    hint.gen = gen;
    hint.keylen = c->key->keylen;
    hint.prefix = key_prefix(c->key->bytes, c->key->keylen);
}

/* No hash on this path: the hint is checked by length and prefix, then the claimed
 * connection's key is compared in full (it must be anyway: equal hashes are possible). */
static tp_conn *hint_claim(tp_pool *p, const void *key, size_t keylen)
{
    if (hint.pool != p || hint.pool_id != p->id || hint.keylen != keylen ||
        hint.prefix != key_prefix(key, keylen))
        return NULL;
    tp_conn *c = hint.conn;
    uint64_t expect = TP__CS_MAKE(hint.gen, TP__CS_LINKED, TP__CS_IDLE);
    uint64_t want = TP__CS_MAKE(hint.gen, TP__CS_LINKED, TP__CS_INUSE);
    if (!atomic_compare_exchange_strong(&c->word, &expect, want))
        return NULL;
    /* We own it now, so its key is alive. If the keys differ, give it back exactly as
     * it was (IDLE, LINKED unless the slow path unlinked it meanwhile, which it may do
     * to an in-use connection; then it must be relinked under the lock). */
    tp__key *k = c->key;
    if (TP__LIKELY(keylen <= 8 || memcmp(k->bytes, key, keylen) == 0))
        return c;
    uint64_t w = want;
    if (atomic_compare_exchange_strong(&c->word, &w, expect))
        return NULL;
    tp__mutex_lock(&p->mu);
    tp__list_push_front(&k->idle, &c->idle_link);
    k->nlinked++;
    p->linked_total++;
    atomic_store(&c->word, expect);
    tp__mutex_unlock(&p->mu);
    return NULL;
}

/* ---- idle list ------------------------------------------------------------------ */

void tp__unlink_locked(tp_pool *p, tp_conn *c)
{
    TP__ASSERT_LOCKED(&p->mu);
    tp__list_remove(&c->idle_link);
    c->key->nlinked--;
    p->linked_total--;
}

tp_conn *tp__idle_take_locked(tp_pool *p, tp__key *key)
{
    TP__ASSERT_LOCKED(&p->mu);
    for (;;) {
        /* The list is ordered by the time of linking, but a connection reused and
         * released through a thread hint keeps its old place: choose by idle_since. Drop
         * stale links (hint-claimed connections) on the way. */
        tp_conn *best = NULL;
        int64_t best_t = INT64_MIN;
        tp__list *n = key->idle.next;
        while (n != &key->idle) {
            tp_conn *c = TP__CONTAINER_OF(n, tp_conn, idle_link);
            tp__list *next = n->next;
            uint64_t w = atomic_load(&c->word);
            if (TP__CS_STATE(w) == TP__CS_INUSE) {
                if (atomic_compare_exchange_strong(&c->word, &w, w & ~TP__CS_LINKED))
                    tp__unlink_locked(p, c);
                else
                    continue; /* released meanwhile: look at it again */
            } else if (TP__CS_STATE(w) == TP__CS_IDLE && TP__LOAD(c->idle_since) > best_t) {
                best_t = TP__LOAD(c->idle_since);
                best = c;
            }
            n = next;
        }
        if (best == NULL)
            return NULL;
        uint64_t w = atomic_load(&best->word);
        if (TP__CS_STATE(w) == TP__CS_IDLE &&
            atomic_compare_exchange_strong(&best->word, &w,
                                           TP__CS_MAKE(TP__CS_GEN(w), 0, TP__CS_INUSE))) {
            tp__unlink_locked(p, best);
            return best;
        }
        /* A thread hint claimed it between the scan and the CAS: scan again. */
    }
}

tp_conn *tp__idle_take_lru_locked(tp_pool *p, tp__key *key)
{
    TP__ASSERT_LOCKED(&p->mu);
    for (;;) {
        tp_conn *best = NULL;
        int64_t best_t = INT64_MAX;
        for (tp__list *n = key->idle.next; n != &key->idle; n = n->next) {
            tp_conn *c = TP__CONTAINER_OF(n, tp_conn, idle_link);
            if (TP__CS_STATE(atomic_load(&c->word)) == TP__CS_IDLE &&
                TP__LOAD(c->idle_since) < best_t) {
                best_t = TP__LOAD(c->idle_since);
                best = c;
            }
        }
        if (best == NULL)
            return NULL;
        uint64_t w = atomic_load(&best->word);
        if (TP__CS_STATE(w) == TP__CS_IDLE &&
            atomic_compare_exchange_strong(&best->word, &w,
                                           TP__CS_MAKE(TP__CS_GEN(w), 0, TP__CS_INUSE))) {
            tp__unlink_locked(p, best);
            return best;
        }
    }
}

/* ---- waiters --------------------------------------------------------------------- */

static void waiter_dequeue_locked(tp_pool *p, tp__waiter *w)
{
    tp__list_remove(&w->link);
    atomic_fetch_sub(&w->key->nwaiters, 1);
    atomic_fetch_sub(&p->waiters_total, 1);
}

void tp__waiter_grant_conn_locked(tp_pool *p, tp__waiter *w, tp_conn *c, tp__after *a)
{
    TP__ASSERT_LOCKED(&p->mu);
    int64_t now = tp_clock_now();
    waiter_dequeue_locked(p, w);
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
    waiter_dequeue_locked(p, w);
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
    waiter_dequeue_locked(p, w);
    w->grant = TP__GRANT_OPEN;
    if (w->async)
        tp__list_push_back(&a->opens, &w->done_link);
    else
        pthread_cond_signal(&w->cv);
}

/* ---- beginning a lease ----------------------------------------------------------- */

/* Records the start of a lease of c (owned by the caller, outside the lock). */
static void lease_begin(tp_pool *p, tp_conn *c, int64_t now, bool reused, bool fast,
                        int64_t waited)
{
    c->acquired_at = now;
    TP__ADD1(c->uses, 1);
    TP__ADD1(c->st.acquires, 1);
    if (fast)
        TP__ADD1(c->st.fast_acquires, 1);
    int64_t idle_ns = 0;
    if (reused) {
        idle_ns = now - TP__LOAD(c->idle_since);
        TP__ADD1(c->st.reuses, 1);
        tp__hist_add(&c->st.idle, idle_ns);
    }
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
static tp_close_reason reuse_verdict(tp_pool *p, tp_conn *c, int64_t now)
{
    int64_t idle_ns = now - TP__LOAD(c->idle_since);
    if (now >= c->expires_at)
        return TP_CLOSE_LIFETIME;
    int64_t idle_timeout = TP__LOAD(c->key->idle_timeout);
    if (idle_timeout != TP_DURATION_INFINITE && idle_ns >= idle_timeout)
        return TP_CLOSE_IDLE_TIMEOUT;
    if (atomic_load_explicit(&c->evict, memory_order_relaxed))
        return TP_CLOSE_EVICTED;
    if (p->o.connector.check != NULL && idle_ns >= p->o.check_after_idle &&
        p->o.connector.check(p->o.connector.ctx, c->user, idle_ns) != TP_OK)
        return TP_CLOSE_CHECK_FAILED;
    return TP_CLOSE__COUNT;
}

/* Closes a claimed connection that failed reuse_verdict(). */
static void close_claimed(tp_pool *p, tp_conn *c, tp_close_reason reason)
{
    tp__after a;
    tp__after_init(&a);
    tp__mutex_lock(&p->mu);
    if (reason == TP_CLOSE_CHECK_FAILED)
        TP__ADD1(c->key->checks_failed, 1);
    tp__key *k = c->key;
    tp__conn_close_locked(p, c, reason, &a);
    tp__capacity_freed_locked(p, k, &a);
    tp__after_run(p, &a);
}

/* ---- opening ---------------------------------------------------------------------- */

void tp__slot_release_locked(tp_pool *p, tp__key *key, tp__after *a)
{
    TP__ASSERT_LOCKED(&p->mu);
    key->opening--;
    p->total--;
    if (key->breaker == TP_BREAKER_HALF_OPEN)
        key->trial_inflight = false;
    tp__capacity_freed_locked(p, key, a);
}

tp_err tp__open_slot_locked(tp_pool *p, tp__key *key, int64_t deadline, tp_conn **out,
                            tp_errinfo *err, tp__after *a)
{
    TP__ASSERT_LOCKED(&p->mu);
    tp_conn *c = tp__conn_new_locked(p);
    if (c == NULL) {
        tp__slot_release_locked(p, key, a);
        return tp_errinfo_set(err, TP_ENOMEM, 0, "allocating a connection");
    }
    tp__mutex_unlock(&p->mu);

    int64_t t0 = tp_clock_now();
    int64_t dl = TP__MIN(deadline, tp__saturating_add(t0, p->o.connect_timeout));
    if (p->o.trace != NULL) {
        tp_trace_event ev = {.type = TP_TRACE_CONNECT_START, .key = key->bytes, .keylen = key->keylen};
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
    if (rc != TP_OK) {
        p->total--;
        tp__conn_recycle_locked(p, c);
        tp__open_done_locked(p, key, rc, &info, t1 - t0, a);
        tp__capacity_freed_locked(p, key, a);
        if (err != NULL)
            *err = info;
        return rc;
    }
    tp__conn_attach_locked(p, key, c, user, t1);
    tp__open_done_locked(p, key, TP_OK, NULL, t1 - t0, a);
    if (atomic_load(&p->closed)) {
        tp__conn_close_locked(p, c, TP_CLOSE_POOL_CLOSED, a);
        return tp_errinfo_set(err, TP_ECLOSED, 0, "the pool was closed while opening");
    }
    *out = c;
    return TP_OK;
}

/* ---- the blocking path ------------------------------------------------------------- */

static tp_err timeout_error(tp_pool *p, tp__key *k, int64_t waited, tp_errinfo *err)
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
static wait_outcome wait_for_conn_locked(tp_pool *p, tp__key *key, int64_t start,
                                         int64_t deadline, bool may_queue, bool fresh,
                                         tp_conn **out, tp_err *rc, tp_errinfo *err,
                                         tp__after *a)
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
        int64_t until = TP_DURATION_INFINITE;
        if (may_take) {
            tp_conn *c = fresh ? NULL : tp__idle_take_locked(p, key);
            if (c != NULL) {
                if (queued)
                    waiter_dequeue_locked(p, &w);
                queued = false;
                *out = c;
                res = GOT_CONN;
                break;
            }
            tp__open_verdict v = tp__open_allowed_locked(p, key, now, &until, a);
            if (v == TP__OPEN_OK) {
                if (queued)
                    waiter_dequeue_locked(p, &w);
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
            if (v == TP__OPEN_BREAKER) {
                TP__ADD1(key->rejects_breaker, 1);
                *rc = tp_errinfo_set(err, TP_EBREAKER, 0,
                                     "breaker open after %lld consecutive open failures%s%s",
                                     (long long)key->failures,
                                     key->last_err.code != TP_OK ? "; last: " : "",
                                     key->last_err.code != TP_OK ? key->last_err.msg : "");
                break;
            }
        }
        if (now >= deadline || !may_queue) {
            TP__ADD1(key->timeouts, 1);
            *rc = timeout_error(p, key, now - start, err);
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
            atomic_fetch_add(&key->nwaiters, 1);
            queued = true;
            if (p->o.trace != NULL) {
                tp__mutex_unlock(&p->mu);
                tp_trace_event ev = {.type = TP_TRACE_WAIT_START, .key = key->bytes, .keylen = key->keylen};
                tp__emit(p, &ev);
                tp__mutex_lock(&p->mu);
            }
            continue; /* rescan once after publishing: no lost wake-up */
        }
        w.woken = false;
        tp__cond_wait_until(&w.cv, &p->mu, TP__MIN(deadline, until));
    }
    if (queued && w.grant == TP__GRANT_NONE)
        waiter_dequeue_locked(p, &w);
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

static tp_err check_args(tp_pool *p, const void *key, size_t keylen, tp_conn **out, tp_errinfo *err)
{
    if (p == NULL)
        return tp_errinfo_set(err, TP_EINVAL, 0, "pool: NULL");
    if (out == NULL)
        return tp_errinfo_set(err, TP_EINVAL, 0, "out: NULL");
    *out = NULL;
    if (key == NULL && keylen > 0)
        return tp_errinfo_set(err, TP_EINVAL, 0, "key: NULL with keylen %zu", keylen);
    return TP_OK;
}

/* The lock-free attempt shared by every form of acquire. */
static tp_conn *fast_acquire(tp_pool *p, const void *key, size_t keylen)
{
    if (TP__UNLIKELY(atomic_load_explicit(&p->closed, memory_order_relaxed)))
        return NULL;
    tp_conn *c = hint_claim(p, key, keylen);
    if (c == NULL)
        return NULL;
    int64_t now = tp_clock_now();
    tp_close_reason r = reuse_verdict(p, c, now);
    if (TP__UNLIKELY(r != TP_CLOSE__COUNT)) {
        close_claimed(p, c, r);
        return NULL;
    }
    lease_begin(p, c, now, true, true, 0);
    return c;
}

tp_err tp_pool_acquire(tp_pool *p, const void *key, size_t keylen, int64_t timeout, tp_conn **out,
                       tp_errinfo *err)
{
    return tp_pool_acquire_ex(p, key, keylen, timeout, 0, out, err);
}

tp_err tp_pool_acquire_ex(tp_pool *p, const void *key, size_t keylen, int64_t timeout,
                          unsigned flags, tp_conn **out, tp_errinfo *err)
{
    tp_err rc = check_args(p, key, keylen, out, err);
    if (rc != TP_OK)
        return rc;
    if (flags & ~TP_ACQUIRE_FRESH)
        return tp_errinfo_set(err, TP_EINVAL, 0, "flags: unknown bits 0x%x", flags & ~TP_ACQUIRE_FRESH);
    bool fresh = (flags & TP_ACQUIRE_FRESH) != 0;
    if (timeout == TP_DURATION_DEFAULT)
        timeout = p->o.acquire_timeout;
    if (timeout < 0)
        return tp_errinfo_set(err, TP_EINVAL, 0, "timeout: %lld is negative", (long long)timeout);
    tp_conn *c = fresh ? NULL : fast_acquire(p, key, keylen);
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
            rc = timeout_error(p, k, tp_clock_now() - start, err);
            break;
        }
        if (o == GOT_SLOT) {
            /* timeout 0 means "do not queue"; the open itself still gets connect_timeout. */
            rc = tp__open_slot_locked(p, k, timeout > 0 ? deadline : TP_DURATION_INFINITE, &c, err,
                                      &a);
            if (rc == TP_OK) {
                tp__hist_add(&k->wait_hist, tp_clock_now() - start);
                k->pins--;
                tp__after_run(p, &a);
                lease_begin(p, c, tp_clock_now(), false, false, tp_clock_now() - start);
                tp_errinfo_clear(err);
                *out = c;
                return TP_OK;
            }
            break;
        }
        /* An idle connection, claimed: validate it outside the lock. */
        tp__after_run(p, &a);
        int64_t now = tp_clock_now();
        tp_close_reason r = reuse_verdict(p, c, now);
        if (r == TP_CLOSE__COUNT) {
            lease_begin(p, c, now, TP__LOAD(c->uses) > 0, false, now - start);
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
    tp_err rc = check_args(p, key, keylen, out, NULL);
    if (rc != TP_OK)
        return rc;
    tp_conn *c = fast_acquire(p, key, keylen);
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
        if (k != NULL && atomic_load(&k->nwaiters) == 0)
            c = tp__idle_take_locked(p, k);
        if (c == NULL) {
            tp__mutex_unlock(&p->mu);
            return TP_EAGAIN;
        }
        k->pins++;
        tp__mutex_unlock(&p->mu);
        int64_t now = tp_clock_now();
        tp_close_reason r = reuse_verdict(p, c, now);
        tp__mutex_lock(&p->mu);
        k->pins--;
        if (r == TP_CLOSE__COUNT) {
            tp__hist_add(&k->wait_hist, 0);
            tp__mutex_unlock(&p->mu);
            lease_begin(p, c, now, true, false, 0);
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

/* ---- asynchronous acquire ------------------------------------------------------------ */

/* Runs on a pool-owned thread: opens a connection for an async waiter granted a slot,
 * then completes it (its callback runs here). */
static void *open_job_main(void *arg)
{
    tp__waiter *w = arg;
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
        rc = tp_errinfo_set(&info, TP_ETIMEDOUT, 0, "no connection before the deadline");
    } else {
        rc = tp__open_slot_locked(p, k, w->deadline, &c, &info, &a);
    }
    if (rc == TP_OK) {
        w->grant = TP__GRANT_CONN;
        w->conn = c;
        tp__hist_add(&k->wait_hist, tp_clock_now() - w->enqueued_at);
    } else {
        w->grant = TP__GRANT_FAIL;
        w->err = rc;
        w->info = info;
    }
    tp__list_push_back(&a.done, &w->done_link);
    p->workers--;
    tp__after_run(p, &a);
    return NULL;
}

void tp__async_open_start(tp_pool *p, tp__waiter *w)
{
    tp__mutex_lock(&p->mu);
    p->workers++;
    tp__mutex_unlock(&p->mu);
    pthread_attr_t at;
    pthread_t t;
    int ok = pthread_attr_init(&at) == 0;
    if (ok) {
        pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
        ok = pthread_create(&t, &at, open_job_main, w) == 0;
        pthread_attr_destroy(&at);
    }
    if (ok)
        return;
    tp__after a;
    tp__after_init(&a);
    tp__mutex_lock(&p->mu);
    p->workers--;
    tp__slot_release_locked(p, w->key, &a);
    w->grant = TP__GRANT_FAIL;
    w->err = tp_errinfo_set(&w->info, TP_ESYS, 0, "could not start a thread to open a connection");
    tp__list_push_back(&a.done, &w->done_link);
    tp__after_run(p, &a);
}

int tp_pool_acquire_async(tp_pool *p, const void *key, size_t keylen, int64_t timeout,
                          tp_acquire_cb cb, void *ud, tp_conn **out, uint64_t *ticket,
                          tp_errinfo *err)
{
    tp_err rc = check_args(p, key, keylen, out, err);
    if (rc != TP_OK)
        return rc;
    if (cb == NULL)
        return tp_errinfo_set(err, TP_EINVAL, 0, "cb: NULL");
    if (timeout == TP_DURATION_DEFAULT)
        timeout = p->o.acquire_timeout;
    if (timeout < 0)
        return tp_errinfo_set(err, TP_EINVAL, 0, "timeout: %lld is negative", (long long)timeout);
    if (ticket != NULL)
        *ticket = 0;
    tp_conn *c = fast_acquire(p, key, keylen);
    if (c != NULL) {
        *out = c;
        return TP_OK;
    }
    uint64_t hash = tp__key_hash(key, keylen);
    int64_t start = tp_clock_now();
    tp__after a;
    tp__after_init(&a);
    tp__mutex_lock(&p->mu);
    for (;;) {
        if (atomic_load(&p->closed)) {
            tp__mutex_unlock(&p->mu);
            return tp_errinfo_set(err, TP_ECLOSED, 0, "the pool is closed");
        }
        tp__key *k = tp__key_get_locked(p, key, keylen, hash, &rc);
        if (k == NULL) {
            tp__mutex_unlock(&p->mu);
            return tp_errinfo_set(err, rc, 0, "%s", rc == TP_ELIMIT ? "max_keys reached" : "allocating key");
        }
        k->last_active = start;
        int64_t now = tp_clock_now();
        int64_t until = TP_DURATION_INFINITE;
        tp__open_verdict v = TP__OPEN_WAIT;
        if (atomic_load(&k->nwaiters) == 0) {
            c = tp__idle_take_locked(p, k);
            if (c != NULL) {
                k->pins++;
                tp__after_run(p, &a);
                tp_close_reason r = reuse_verdict(p, c, now);
                tp__mutex_lock(&p->mu);
                k->pins--;
                if (r == TP_CLOSE__COUNT) {
                    tp__hist_add(&k->wait_hist, now - start);
                    tp__mutex_unlock(&p->mu);
                    lease_begin(p, c, now, true, false, now - start);
                    *out = c;
                    return TP_OK;
                }
                if (r == TP_CLOSE_CHECK_FAILED)
                    TP__ADD1(k->checks_failed, 1);
                tp__conn_close_locked(p, c, r, &a);
                tp__capacity_freed_locked(p, k, &a);
                continue;
            }
            v = tp__open_allowed_locked(p, k, now, &until, &a);
        }
        if (v == TP__OPEN_BREAKER) {
            TP__ADD1(k->rejects_breaker, 1);
            tp__after_run(p, &a);
            return tp_errinfo_set(err, TP_EBREAKER, 0, "breaker open for this key");
        }
        if (v == TP__OPEN_WAIT) {
            if (timeout == 0) {
                TP__ADD1(k->timeouts, 1);
                rc = timeout_error(p, k, 0, err);
                tp__after_run(p, &a);
                return rc;
            }
            if (p->o.max_waiters_per_key != TP_UNLIMITED &&
                atomic_load(&k->nwaiters) >= p->o.max_waiters_per_key) {
                TP__ADD1(k->rejects_busy, 1);
                tp__after_run(p, &a);
                return tp_errinfo_set(err, TP_EBUSY, 0, "too many waiters for this key");
            }
        }
        tp__waiter *w = tp__calloc(&p->alloc, 1, sizeof *w);
        if (w == NULL) {
            if (v == TP__OPEN_OK)
                tp__slot_release_locked(p, k, &a);
            tp__after_run(p, &a);
            return tp_errinfo_set(err, TP_ENOMEM, 0, "allocating a waiter");
        }
        w->async = true;
        w->key = k;
        w->cb = cb;
        w->ud = ud;
        w->pool = p;
        w->enqueued_at = start;
        w->deadline = tp__saturating_add(start, timeout);
        w->ticket = p->next_ticket++;
        k->pins++;
        if (ticket != NULL)
            *ticket = w->ticket;
        bool queued = v != TP__OPEN_OK;
        if (queued) {
            tp__list_push_back(&k->waiters, &w->link);
            atomic_fetch_add(&p->waiters_total, 1);
            TP__ADD1(k->waits, 1);
            atomic_fetch_add(&k->nwaiters, 1);
            tp__maintenance_poke_locked(p, TP__MIN(w->deadline, until));
        } else {
            w->grant = TP__GRANT_OPEN;
            tp__list_push_back(&a.opens, &w->done_link);
        }
        tp__after_run(p, &a);
        if (queued && p->o.trace != NULL) {
            tp_trace_event ev = {.type = TP_TRACE_WAIT_START, .key = key, .keylen = keylen};
            tp__emit(p, &ev);
        }
        return TP_PENDING;
    }
}

tp_err tp_pool_acquire_cancel(tp_pool *p, uint64_t ticket)
{
    if (p == NULL || ticket == 0)
        return TP_EINVAL;
    tp__mutex_lock(&p->mu);
    for (size_t i = 0; i < p->nbuckets; i++) {
        for (tp__key *k = p->buckets[i]; k != NULL; k = k->hnext) {
            for (tp__list *n = k->waiters.next; n != &k->waiters; n = n->next) {
                tp__waiter *w = TP__CONTAINER_OF(n, tp__waiter, link);
                if (!w->async || w->ticket != ticket)
                    continue;
                waiter_dequeue_locked(p, w);
                k->pins--;
                tp__mutex_unlock(&p->mu);
                tp__free(&p->alloc, w);
                return TP_OK;
            }
        }
    }
    tp__mutex_unlock(&p->mu);
    return TP_ESTATE;
}

void tp__lease_begin_async(tp_pool *p, tp_conn *c, int64_t waited)
{
    int64_t now = tp_clock_now();
    lease_begin(p, c, now, TP__LOAD(c->uses) > 0, false, waited);
}
