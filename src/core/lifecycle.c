/* lifecycle.c: the pool's life (create, close, destroy, free), its connection structs and
 * the accessors of a leased connection. The key table is in keys.c, the work deferred
 * until the lock is released in after.c. */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "pool_internal.h"


static _Atomic uint64_t next_pool_id = 1;

/* ---- connection structs ------------------------------------------------------------ */

/* Connection structs come in slabs, each struct at a cache line's start (its hot lines
 * are then exactly two: types.h) and none with a malloc header of its own. A slab holds
 * as many structs as the pool has made so far, 4 to 64: a small pool stays small, a
 * large one pays one allocation per 64 connections. Slabs are freed with the pool. */
#define TP__CONN_STRIDE ((sizeof(tp_conn) + 63) & ~(size_t)63)
#define TP__SLAB_MIN 4
#define TP__SLAB_MAX 64

typedef struct tp__conn_slab {
    struct tp__conn_slab *next;
} tp__conn_slab;

static bool conn_slab_add_locked(tp_pool *p)
{
    int64_t n = TP__MIN(TP__MAX(p->nconn_structs, TP__SLAB_MIN), TP__SLAB_MAX);
    tp__conn_slab *s = tp__malloc(sizeof *s + 63 + (size_t)n * TP__CONN_STRIDE);
    if (s == NULL)
        return false;
    s->next = p->slabs;
    p->slabs = s;
    uintptr_t base = ((uintptr_t)(s + 1) + 63) & ~(uintptr_t)63;
    for (int64_t i = 0; i < n; i++) {
        tp_conn *c = (tp_conn *)(base + (size_t)i * TP__CONN_STRIDE);
        memset(c, 0, sizeof *c);
        c->pool = p;
        atomic_init(&c->word, TP__CS_MAKE(UINT64_C(1), 0, TP__CS_FREE));
        tp__list_init(&c->idle_link);
        tp__list_init(&c->spare_link);
        tp__list_push_back(&p->free_conns, &c->all_link); /* taken in address order */
    }
    p->nconn_structs += n;
    return true;
}

tp_conn *tp__conn_new_locked(tp_pool *p)
{
    TP__ASSERT_LOCKED(&p->mu);
    if (tp__list_empty(&p->free_conns) && !conn_slab_add_locked(p))
        return NULL;
    tp__list *n = p->free_conns.next;
    tp__list_remove(n);
    return TP__CONTAINER_OF(n, tp_conn, all_link);
}

void tp__conn_recycle_locked(tp_pool *p, tp_conn *c)
{
    TP__ASSERT_LOCKED(&p->mu);
    /* Bump the generation so that a thread hint naming the old life fails its CAS. */
    uint64_t w = atomic_load(&c->word);
    atomic_store(&c->word, TP__CS_MAKE(TP__CS_GEN(w) + 1, 0, TP__CS_FREE));
    c->key = NULL;
    c->user = NULL;
    c->mux = false;
    c->parent = NULL;
    tp__list_push_front(&p->free_conns, &c->all_link);
}

void tp__conn_attach_locked(tp_pool *p, tp__key *key, tp_conn *c, void *user, int64_t now)
{
    TP__ASSERT_LOCKED(&p->mu);
    uint64_t gen = TP__CS_GEN(atomic_load(&c->word));
    c->key = key;
    c->user = user;
    c->created_at = now;
    c->acquired_at = now;
    atomic_store_explicit(&c->idle_since, now, memory_order_relaxed);
    atomic_store_explicit(&c->uses, 0, memory_order_relaxed);
    atomic_store_explicit(&c->last_hold, -1, memory_order_relaxed);
    atomic_store_explicit(&c->evict, false, memory_order_relaxed);
    if (p->o.max_lifetime == TP_DURATION_INFINITE) {
        c->expires_at = TP_DURATION_INFINITE;
    } else {
        /* Jitter fixed at creation, subtractive only: no connection outlives
         * max_lifetime, and a cohort opened together does not expire together. */
        double cut = p->o.lifetime_jitter * tp__rand_unit();
        int64_t life = p->o.max_lifetime - (int64_t)((double)p->o.max_lifetime * cut);
        c->expires_at = tp__saturating_add(now, life);
    }
    tp__list_push_back(&key->conns, &c->all_link);
    key->nconns++;
    atomic_store(&c->word, TP__CS_MAKE(gen, 0, TP__CS_INUSE));
}

void tp__conn_close_locked(tp_pool *p, tp_conn *c, tp_close_reason reason, tp__after *a)
{
    TP__ASSERT_LOCKED(&p->mu);
    tp__key *k = c->key;
    /* Off the displaced stack before the struct can be recycled. Not IDLE, it cannot be
     * mid-push (only its holder pushes it), so dqueued means it is on the stack. */
    if (atomic_load(&c->dqueued))
        tp__idle_settle_locked(p, k);
    assert(!atomic_load(&c->dqueued));
    uint64_t w = atomic_load(&c->word);
    if (w & TP__CS_LINKED)
        tp__unlink_locked(p, c);
    /* Nobody can claim it any more: it is unlinked and its state is not IDLE. Keep the
     * generation until recycling, so the hint check stays exact. */
    atomic_store(&c->word, TP__CS_MAKE(TP__CS_GEN(w), 0, TP__CS_RESERVED));
    tp__list_remove(&c->all_link);
    tp__mux_forget_locked(k, c);
    k->nconns--;
    p->total--;
    tp__permit_give_locked(p, k);
    tp__room_freed_locked(k);
    TP__ADD1(k->closes[reason], 1);
    /* Below min_idle_per_key: warm up again now. Empty: see later whether to forget it. */
    if (p->o.min_idle_per_key > 0 && reason != TP_CLOSE_POOL_CLOSED)
        tp__key_due_locked(p, k, tp_clock_now());
    else if (k->nconns == 0 && k->opening == 0)
        tp__key_due_locked(p, k,
                           tp__saturating_add(TP__MAX(k->last_active, tp_clock_now()),
                                              TP__KEY_RECLAIM_AFTER));
    c->close_reason = reason;
    k->pins++;
    tp__list_push_back(&a->closes, &c->all_link);
}

/* ---- lifecycle ---------------------------------------------------------------------- */

tp_err tp_pool_create(const tp_pool_options *o, tp_pool **out, tp_errinfo *err)
{
    if (out == NULL)
        return tp_errinfo_set(err, TP_EINVAL, 0, "out: NULL");
    *out = NULL;
    tp_err rc = tp__options_validate(o, err);
    if (rc != TP_OK)
        return rc;
    tp_pool *p = tp__calloc(1, sizeof *p);
    if (p == NULL)
        return tp_errinfo_set(err, TP_ENOMEM, 0, "allocating the pool");
    p->o = *o;
    if (p->o.max_idle_per_key == TP_FOLLOW_MAX_PER_KEY)
        p->o.max_idle_per_key = p->o.max_per_key;
    p->adaptive = o->adaptive != NULL;
    if (p->adaptive)
        p->adapt_o = *o->adaptive;
    p->o.adaptive = p->adaptive ? &p->adapt_o : NULL; /* the copy, not the caller's */
    if (o->permits != NULL)
        p->permit_o = *o->permits;
    p->o.permits = o->permits != NULL ? &p->permit_o : NULL;
    p->id = atomic_fetch_add(&next_pool_id, 1);
    p->nbuckets = 16;
    p->buckets = tp__calloc(p->nbuckets, sizeof *p->buckets);
    if (p->buckets == NULL) {
        tp__free(p);
        return tp_errinfo_set(err, TP_ENOMEM, 0, "allocating the key table");
    }
    tp__list_init(&p->free_conns);
    tp__timers_init(&p->schedule);
    tp__list_init(&p->waiting_keys);
    tp__list_init(&p->async_queued);
    p->next_ticket = 1;
    int mu_ok = tp__mutex_init(&p->mu) == 0;
    int cv_ok = mu_ok && tp__cond_init(&p->idle_cv) == 0;
    if (!cv_ok) {
        if (mu_ok)
            tp__mutex_destroy(&p->mu);
        tp__free(p->buckets);
        tp__free(p);
        return tp_errinfo_set(err, TP_ESYS, 0, "initialising locks");
    }
    tp__fork_register(p); /* first: a pass checks the pool's fork generation */
    p->mdue = tp__saturating_add(tp_clock_now(), p->o.maintenance_interval);
    if (p->o.maintenance_thread) {
        rc = tp__maintenance_start(p);
        if (rc != TP_OK) {
            tp__fork_unregister(p);
            pthread_cond_destroy(&p->idle_cv);
            tp__mutex_destroy(&p->mu);
            tp__free(p->buckets);
            tp__free(p);
            return tp_errinfo_set(err, rc, 0,
                                  rc == TP_ENOMEM ? "scheduling maintenance"
                                                  : "starting the runtime's worker threads");
        }
    }
    *out = p;
    tp_errinfo_clear(err);
    return TP_OK;
}

/* Closes idle connections and fails waiters of every key; in-use ones close later. */
static void close_all_locked(tp_pool *p, tp__after *a)
{
    for (size_t i = 0; i < p->nbuckets; i++) {
        for (tp__key *k = p->buckets[i]; k != NULL; k = k->hnext) {
            while (!tp__list_empty(&k->waiters)) {
                tp__waiter *w = TP__CONTAINER_OF(k->waiters.next, tp__waiter, link);
                tp_errinfo info;
                tp_errinfo_set(&info, TP_ECLOSED, 0, "the pool is closed");
                tp__waiter_fail_locked(p, w, TP_ECLOSED, &info, a);
            }
            tp_conn *c;
            while ((c = tp__idle_take_locked(p, k, false)) != NULL)
                tp__conn_close_locked(p, c, TP_CLOSE_POOL_CLOSED, a);
        }
    }
}

void tp_pool_close(tp_pool *p)
{
    if (p == NULL)
        return;
    tp__fork_check(p);
    tp__after a;
    tp__after_init(&a);
    tp__mutex_lock(&p->mu);
    atomic_store(&p->closed, true);
    close_all_locked(p, &a);
    tp__tenants_close_locked(p, &a);
    p->mstop = true; /* the scheduled pass is not armed again */
    tp__after_run(p, &a);
}

bool tp__maybe_free_locked(tp_pool *p)
{
    TP__ASSERT_LOCKED(&p->mu);
    if (!p->destroyed || p->total > 0 || p->workers > 0 || p->callbacks > 0)
        return false;
    for (size_t i = 0; i < p->nbuckets; i++) {
        tp__key *k = p->buckets[i];
        while (k != NULL) {
            tp__key *next = k->hnext;
            tp__key_free(k);
            k = next;
        }
    }
    tp__tenants_free_locked(p);
    while (p->graveyard != NULL) {
        tp__key *k = p->graveyard;
        p->graveyard = k->hnext;
        tp__key_free(k);
    }
    while (p->slabs != NULL) { /* every connection struct is back on free_conns */
        tp__conn_slab *s = p->slabs;
        p->slabs = s->next;
        tp__free(s);
    }
    tp__free(p->buckets);
    tp__timers_free(&p->schedule);
    tp__mutex_unlock(&p->mu);
    tp__mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->idle_cv);
    tp__free(p);
    return true;
}

void tp_pool_destroy(tp_pool *p)
{
    if (p == NULL)
        return;
    /* A shared budget's thread lets go of the pool before anything of it goes. */
    if (p->o.permits != NULL && p->o.permits->pool_gone != NULL)
        p->o.permits->pool_gone(p->o.permits->ctx, p);
    tp_pool_close(p);
    /* Out of the fork registry here, outside the pool lock (the fork handlers take the
     * registry's lock first, then the pools'). */
    tp__fork_unregister(p);
    tp__maintenance_stop(p);
    tp__mutex_lock(&p->mu);
    /* Wait for deferred work running on other threads (closes, callbacks) and for the
     * opens and probes maintenance started (the caller did not ask for those: no
     * connector call of theirs may come after we return); leases and the opens of
     * asynchronous acquires may outlive us: the last of them frees the pool. */
    while (p->callbacks > 0 || p->mjobs > 0)
        tp__cond_wait_until(&p->idle_cv, &p->mu, TP_DURATION_INFINITE);
    p->destroyed = true;
    if (!tp__maybe_free_locked(p))
        tp__mutex_unlock(&p->mu);
}

void tp_pool_options_get(tp_pool *p, tp_pool_options *out)
{
    if (p == NULL || out == NULL)
        return;
    *out = p->o;
}

void *tp_conn_get(const tp_conn *c)
{
    return c == NULL ? NULL : c->user;
}

const void *tp_conn_key(const tp_conn *c, size_t *keylen)
{
    if (c == NULL || c->key == NULL) {
        if (keylen != NULL)
            *keylen = 0;
        return NULL;
    }
    if (keylen != NULL)
        *keylen = c->key->keylen;
    return c->key->bytes;
}

uint64_t tp_conn_uses(const tp_conn *c)
{
    return c == NULL ? 0 : TP__LOAD(c->uses);
}
