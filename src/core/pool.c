/* pool.c: the pool's life (create, close, destroy, free), its key table, connection
 * structs, and the "after" machinery that runs closes, trace events and callbacks once
 * the lock is released. */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "pool_internal.h"

tp_err tp__options_validate(const tp_pool_options *o, tp_errinfo *err);

static _Atomic uint64_t next_pool_id = 1;

/* ---- keys ------------------------------------------------------------------------ */

uint64_t tp__key_hash(const void *key, size_t keylen)
{
    /* Eight bytes at a time, each word mixed by a multiply, then a final avalanche so the
     * low bits used for buckets depend on every byte. Keys are short (host:port, a
     * credentials digest) and this runs on every acquire, so it must be a few ns. */
    const unsigned char *s = key;
    uint64_t h = 0x9E3779B97F4A7C15ull ^ (uint64_t)keylen;
    size_t i = 0;
    for (; i + 8 <= keylen; i += 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdull;
        h ^= h >> 29;
    }
    if (i < keylen) {
        uint64_t w = 0;
        memcpy(&w, s + i, keylen - i);
        h = (h ^ w) * 0xc4ceb9fe1a85ec53ull;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h;
}

tp__key *tp__key_find_locked(tp_pool *p, const void *key, size_t keylen, uint64_t hash)
{
    TP__ASSERT_LOCKED(&p->mu);
    for (tp__key *k = p->buckets[hash & (p->nbuckets - 1)]; k != NULL; k = k->hnext) {
        if (k->hash == hash && k->keylen == keylen &&
            (keylen == 0 || memcmp(k->bytes, key, keylen) == 0))
            return k;
    }
    return NULL;
}

/* Doubles the bucket array when the table is as full as it has buckets. Failure to
 * grow is harmless (chains get longer), so it is not reported. */
static void key_table_grow_locked(tp_pool *p)
{
    size_t n = p->nbuckets * 2;
    tp__key **b = tp__calloc(&p->alloc, n, sizeof *b);
    if (b == NULL)
        return;
    for (size_t i = 0; i < p->nbuckets; i++) {
        tp__key *k = p->buckets[i];
        while (k != NULL) {
            tp__key *next = k->hnext;
            k->hnext = b[k->hash & (n - 1)];
            b[k->hash & (n - 1)] = k;
            k = next;
        }
    }
    tp__free(&p->alloc, p->buckets);
    p->buckets = b;
    p->nbuckets = n;
}

tp__key *tp__key_get_locked(tp_pool *p, const void *key, size_t keylen, uint64_t hash, tp_err *err)
{
    tp__key *k = tp__key_find_locked(p, key, keylen, hash);
    if (k != NULL)
        return k;
    if (p->o.max_keys != TP_UNLIMITED && p->nkeys >= p->o.max_keys) {
        *err = TP_ELIMIT;
        return NULL;
    }
    k = tp__calloc(&p->alloc, 1, sizeof *k);
    if (k == NULL) {
        *err = TP_ENOMEM;
        return NULL;
    }
    k->bytes = tp__malloc(&p->alloc, keylen > 0 ? keylen : 1);
    if (k->bytes == NULL) {
        tp__free(&p->alloc, k);
        *err = TP_ENOMEM;
        return NULL;
    }
    if (keylen > 0)
        memcpy(k->bytes, key, keylen);
    k->keylen = keylen;
    k->hash = hash;
    if (tp__adapt_key_init_locked(p, k) != TP_OK) {
        tp__free(&p->alloc, k->bytes);
        tp__free(&p->alloc, k);
        *err = TP_ENOMEM;
        return NULL;
    }
    tp__list_init(&k->idle);
    tp__list_init(&k->conns);
    tp__list_init(&k->waiters);
    k->breaker = TP_BREAKER_CLOSED;
    k->cooldown = p->o.breaker_cooldown;
    atomic_init(&k->idle_timeout, p->o.idle_timeout);
    k->last_active = tp_clock_now();
    size_t b = hash & (p->nbuckets - 1);
    k->hnext = p->buckets[b];
    p->buckets[b] = k;
    p->nkeys++;
    if ((size_t)p->nkeys > p->nbuckets)
        key_table_grow_locked(p);
    return k;
}

/* Adds a key's counters to the pool's retired totals before the key is freed. */
static void key_retire_stats_locked(tp_pool *p, tp__key *k)
{
    tp__retired *r = &p->retired;
    r->acquires += TP__LOAD(k->st.acquires);
    r->reuses += TP__LOAD(k->st.reuses);
    r->fast_acquires += TP__LOAD(k->st.fast_acquires);
    r->waits += TP__LOAD(k->waits);
    r->opens += TP__LOAD(k->opens);
    r->open_failures += TP__LOAD(k->open_failures);
    r->timeouts += TP__LOAD(k->timeouts);
    r->rejects_busy += TP__LOAD(k->rejects_busy);
    r->rejects_breaker += TP__LOAD(k->rejects_breaker);
    r->checks_failed += TP__LOAD(k->checks_failed);
    r->prewarms += TP__LOAD(k->prewarms);
    for (int i = 0; i < TP_CLOSE__COUNT; i++)
        r->closes[i] += TP__LOAD(k->closes[i]);
    tp__hist_fold(&r->hold, &k->st.hold);
    tp__hist_fold(&r->idle, &k->st.idle);
    tp__hist_fold(&r->wait, &k->wait_hist);
    tp__hist_fold(&r->open, &k->open_hist);
}

static void key_free(tp_pool *p, tp__key *k)
{
    tp__adapt_key_free(p, k);
    tp__free(&p->alloc, k->bytes);
    tp__free(&p->alloc, k);
}

void tp__key_reclaim_locked(tp_pool *p, int64_t cutoff)
{
    TP__ASSERT_LOCKED(&p->mu);
    tp__key **gp = &p->graveyard;
    while (*gp != NULL) {
        tp__key *k = *gp;
        if (k->buried_at < cutoff) {
            *gp = k->hnext;
            key_free(p, k);
            continue;
        }
        gp = &k->hnext;
    }
    int64_t now = tp_clock_now();
    for (size_t i = 0; i < p->nbuckets; i++) {
        tp__key **pp = &p->buckets[i];
        while (*pp != NULL) {
            tp__key *k = *pp;
            if (k->nconns == 0 && k->opening == 0 && tp__list_empty(&k->waiters) && k->pins == 0 &&
                k->last_active < cutoff && k->breaker == TP_BREAKER_CLOSED) {
                *pp = k->hnext;
                p->nkeys--;
                key_retire_stats_locked(p, k);
                k->buried_at = now;
                k->hnext = p->graveyard;
                p->graveyard = k;
                continue;
            }
            pp = &k->hnext;
        }
    }
}

/* ---- connection structs ------------------------------------------------------------ */

tp_conn *tp__conn_new_locked(tp_pool *p)
{
    TP__ASSERT_LOCKED(&p->mu);
    tp_conn *c;
    if (!tp__list_empty(&p->free_conns)) {
        tp__list *n = p->free_conns.next;
        tp__list_remove(n);
        c = TP__CONTAINER_OF(n, tp_conn, all_link);
        return c;
    }
    c = tp__calloc(&p->alloc, 1, sizeof *c);
    if (c == NULL)
        return NULL;
    c->pool = p;
    atomic_init(&c->word, TP__CS_MAKE(UINT64_C(1), 0, TP__CS_FREE));
    tp__list_init(&c->idle_link);
    tp__list_init(&c->all_link);
    return c;
}

void tp__conn_recycle_locked(tp_pool *p, tp_conn *c)
{
    TP__ASSERT_LOCKED(&p->mu);
    /* Bump the generation so that a thread hint naming the old life fails its CAS. */
    uint64_t w = atomic_load(&c->word);
    atomic_store(&c->word, TP__CS_MAKE(TP__CS_GEN(w) + 1, 0, TP__CS_FREE));
    c->key = NULL;
    c->user = NULL;
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
    memset(&c->st, 0, sizeof c->st);
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
    uint64_t w = atomic_load(&c->word);
    if (w & TP__CS_LINKED)
        tp__unlink_locked(p, c);
    /* Nobody can claim it any more: it is unlinked and its state is not IDLE. Keep the
     * generation until recycling, so the hint check stays exact. */
    atomic_store(&c->word, TP__CS_MAKE(TP__CS_GEN(w), 0, TP__CS_RESERVED));
    tp__list_remove(&c->all_link);
    k->nconns--;
    p->total--;
    TP__ADD1(k->closes[reason], 1);
    tp__shard_merge(&k->st, &c->st);
    c->close_reason = reason;
    k->pins++;
    tp__list_push_back(&a->closes, &c->all_link);
}

/* ---- deferred work ------------------------------------------------------------------ */

void tp__after_init(tp__after *a)
{
    tp__list_init(&a->closes);
    tp__list_init(&a->done);
    tp__list_init(&a->opens);
    tp__list_init(&a->breakers);
}

void tp__after_breaker_event(tp__after *a, tp__key *key, tp_breaker_state s)
{
    atomic_store(&key->ev_state, (int)s);
    if (key->ev_pending)
        return;
    key->ev_pending = true;
    key->pins++;
    tp__list_push_back(&a->breakers, &key->ev_link);
}

/* Moves every node of list src under the head dst, leaving src empty. */
static void list_move_all(tp__list *dst, tp__list *src)
{
    tp__list_init(dst);
    if (tp__list_empty(src))
        return;
    dst->next = src->next;
    dst->prev = src->prev;
    dst->next->prev = dst;
    dst->prev->next = dst;
    tp__list_init(src);
}

void tp__emit(tp_pool *p, tp_trace_event *ev)
{
    if (p->o.trace != NULL)
        p->o.trace(p->o.trace_ud, ev);
}

void tp__after_run(tp_pool *p, tp__after *a)
{
    TP__ASSERT_LOCKED(&p->mu);
    bool nothing = tp__list_empty(&a->closes) && tp__list_empty(&a->done) &&
                   tp__list_empty(&a->opens) && tp__list_empty(&a->breakers);
    if (nothing) {
        tp__mutex_unlock(&p->mu);
        return;
    }
    /* Keep the pool alive while we work unlocked. */
    p->callbacks++;
    tp__list closes, done, opens, breakers;
    list_move_all(&closes, &a->closes);
    list_move_all(&done, &a->done);
    list_move_all(&opens, &a->opens);
    list_move_all(&breakers, &a->breakers);
    tp__mutex_unlock(&p->mu);

    for (tp__list *n = closes.next; n != &closes; n = n->next) {
        tp_conn *c = TP__CONTAINER_OF(n, tp_conn, all_link);
        p->o.connector.close(p->o.connector.ctx, c->user, c->close_reason);
        if (p->o.trace != NULL) {
            tp_trace_event ev = {.type = TP_TRACE_CLOSE,
                                 .key = c->key->bytes,
                                 .keylen = c->key->keylen,
                                 .reason = c->close_reason};
            tp__emit(p, &ev);
        }
    }
    for (tp__list *n = breakers.next; n != &breakers; n = n->next) {
        tp__key *k = TP__CONTAINER_OF(n, tp__key, ev_link);
        tp_trace_event ev = {.type = TP_TRACE_BREAKER,
                             .key = k->bytes,
                             .keylen = k->keylen,
                             .breaker_state = (tp_breaker_state)atomic_load(&k->ev_state)};
        tp__emit(p, &ev);
    }
    while (!tp__list_empty(&opens)) {
        tp__list *n = opens.next;
        tp__list_remove(n);
        tp__async_open_start(p, TP__CONTAINER_OF(n, tp__waiter, done_link));
    }
    while (!tp__list_empty(&done)) {
        tp__list *n = done.next;
        tp__list_remove(n);
        tp__waiter *w = TP__CONTAINER_OF(n, tp__waiter, done_link);
        if (w->grant == TP__GRANT_CONN) {
            tp__lease_begin_async(p, w->conn, tp_clock_now() - w->enqueued_at);
            w->cb(w->ud, TP_OK, w->conn, NULL);
        } else if (w->grant == TP__GRANT_SLOT) {
            w->cb(w->ud, TP_OPEN_SLOT, w->conn, NULL);
        } else {
            w->cb(w->ud, w->err, NULL, &w->info);
        }
        tp__mutex_lock(&p->mu);
        w->key->pins--;
        tp__mutex_unlock(&p->mu);
        tp__free(&p->alloc, w);
    }

    tp__mutex_lock(&p->mu);
    while (!tp__list_empty(&closes)) {
        tp__list *n = closes.next;
        tp__list_remove(n);
        tp_conn *c = TP__CONTAINER_OF(n, tp_conn, all_link);
        c->key->pins--;
        tp__conn_recycle_locked(p, c);
    }
    while (!tp__list_empty(&breakers)) {
        tp__list *n = breakers.next;
        tp__list_remove(n);
        tp__key *k = TP__CONTAINER_OF(n, tp__key, ev_link);
        k->ev_pending = false;
        k->pins--;
    }
    p->callbacks--;
    if (p->callbacks == 0 && p->workers == 0)
        pthread_cond_broadcast(&p->idle_cv);
    if (!tp__maybe_free_locked(p))
        tp__mutex_unlock(&p->mu);
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
    tp_allocator alloc = {0};
    if (o->alloc != NULL)
        alloc = *o->alloc;
    tp_pool *p = tp__calloc(&alloc, 1, sizeof *p);
    if (p == NULL)
        return tp_errinfo_set(err, TP_ENOMEM, 0, "allocating the pool");
    p->alloc = alloc;
    p->o = *o;
    if (p->o.max_idle_per_key == TP_FOLLOW_MAX_PER_KEY)
        p->o.max_idle_per_key = p->o.max_per_key;
    p->adaptive = o->adaptive != NULL;
    if (p->adaptive)
        p->adapt_o = *o->adaptive;
    p->o.adaptive = p->adaptive ? &p->adapt_o : NULL; /* the copy, not the caller's */
    p->o.alloc = NULL;                                /* the copy in p->alloc is what we use */
    p->id = atomic_fetch_add(&next_pool_id, 1);
    p->nbuckets = 16;
    p->buckets = tp__calloc(&p->alloc, p->nbuckets, sizeof *p->buckets);
    if (p->buckets == NULL) {
        tp__free(&alloc, p);
        return tp_errinfo_set(err, TP_ENOMEM, 0, "allocating the key table");
    }
    tp__list_init(&p->free_conns);
    p->next_ticket = 1;
    int fails = 0;
    int mu_ok = tp__mutex_init(&p->mu) == 0;
    int cv1 = mu_ok && tp__cond_init(&p->idle_cv) == 0;
    int cv2 = cv1 && tp__cond_init(&p->mcv) == 0;
    fails = !cv2;
    if (fails) {
        if (cv1)
            pthread_cond_destroy(&p->idle_cv);
        if (mu_ok)
            tp__mutex_destroy(&p->mu);
        tp__free(&alloc, p->buckets);
        tp__free(&alloc, p);
        return tp_errinfo_set(err, TP_ESYS, 0, "initialising locks");
    }
    p->mdue = tp__saturating_add(tp_clock_now(), p->o.maintenance_interval);
    if (p->o.maintenance_thread) {
        if (pthread_create(&p->mthread_id, NULL, tp__maintenance_main, p) != 0) {
            pthread_cond_destroy(&p->mcv);
            pthread_cond_destroy(&p->idle_cv);
            tp__mutex_destroy(&p->mu);
            tp__free(&alloc, p->buckets);
            tp__free(&alloc, p);
            return tp_errinfo_set(err, TP_ESYS, 0, "starting the maintenance thread");
        }
        p->mthread = true;
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
                tp__waiter_fail_locked(p, w, TP_ECLOSED, "the pool was closed", a);
            }
            tp_conn *c;
            while ((c = tp__idle_take_locked(p, k)) != NULL)
                tp__conn_close_locked(p, c, TP_CLOSE_POOL_CLOSED, a);
        }
    }
}

void tp_pool_close(tp_pool *p)
{
    if (p == NULL)
        return;
    tp__after a;
    tp__after_init(&a);
    tp__mutex_lock(&p->mu);
    atomic_store(&p->closed, true);
    close_all_locked(p, &a);
    tp__tenants_close_locked(p);
    p->mstop = true;
    pthread_cond_broadcast(&p->mcv);
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
            key_free(p, k);
            k = next;
        }
    }
    tp__tenants_free_locked(p);
    while (p->graveyard != NULL) {
        tp__key *k = p->graveyard;
        p->graveyard = k->hnext;
        key_free(p, k);
    }
    while (!tp__list_empty(&p->free_conns)) {
        tp__list *n = p->free_conns.next;
        tp__list_remove(n);
        tp__free(&p->alloc, TP__CONTAINER_OF(n, tp_conn, all_link));
    }
    tp__free(&p->alloc, p->buckets);
    tp__mutex_unlock(&p->mu);
    tp__mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->idle_cv);
    pthread_cond_destroy(&p->mcv);
    tp_allocator alloc = p->alloc;
    tp__free(&alloc, p);
    return true;
}

void tp_pool_destroy(tp_pool *p)
{
    if (p == NULL)
        return;
    tp_pool_close(p);
    if (p->mthread) {
        pthread_join(p->mthread_id, NULL);
        p->mthread = false;
    }
    tp__mutex_lock(&p->mu);
    /* Wait for deferred work running on other threads (closes, callbacks); leases and
     * open threads may outlive us: the last of them frees the pool. */
    while (p->callbacks > 0)
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
    out->alloc = NULL;
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
