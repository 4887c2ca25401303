/* keys.c: the pool's key table: hashing a key's bytes, finding or creating its tp__key
 * (growing the table as keys arrive), and reclaiming keys left empty, whose statistics
 * are folded into the pool's retired totals so the pool's counters never go down. */
#include <stdlib.h>
#include <string.h>

#include "pool_internal.h"

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
    tp__key **b = tp__calloc(n, sizeof *b);
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
    tp__free(p->buckets);
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
    if (tp__sched_reserve_locked(p) != TP_OK) {
        *err = TP_ENOMEM;
        return NULL;
    }
    /* The key's bytes end the struct: one allocation, and the compare on lookup touches
     * the line the lookup has already brought in. Aligned to a cache line, so that the
     * hot lines are exactly four (types.h). */
    void *mem = tp__calloc(1, offsetof(tp__key, bytes) + (keylen > 0 ? keylen : 1) + 63);
    if (mem == NULL) {
        *err = TP_ENOMEM;
        return NULL;
    }
    k = (tp__key *)(((uintptr_t)mem + 63) & ~(uintptr_t)63);
    k->mem = mem;
    if (keylen > 0)
        memcpy(k->bytes, key, keylen);
    k->keylen = keylen;
    k->hash = hash;
    if (tp__adapt_key_init_locked(p, k) != TP_OK) {
        tp__free(mem);
        *err = TP_ENOMEM;
        return NULL;
    }
    tp__list_init(&k->idle);
    tp__list_init(&k->conns);
    tp__list_init(&k->waiters);
    tp__list_init(&k->spare);
    tp__list_init(&k->waiting_link);
    k->breaker = TP_BREAKER_CLOSED;
    k->cooldown = p->o.breaker_cooldown;
    atomic_init(&k->idle_timeout, p->o.idle_timeout);
    int64_t now = tp_clock_now();
    k->last_active = now;
    tp__timer_init(&k->due);
    k->id = ++p->next_key_id;
    size_t b = hash & (p->nbuckets - 1);
    k->hnext = p->buckets[b];
    p->buckets[b] = k;
    p->nkeys++;
    if ((size_t)p->nkeys > p->nbuckets)
        key_table_grow_locked(p);
    /* Its first pass: warm-ups now, an adaptive limit's ticks soon, and at the latest
     * the check whether it stayed empty long enough to forget. */
    int64_t first = tp__saturating_add(now, TP__KEY_RECLAIM_AFTER);
    if (p->o.min_idle_per_key > 0)
        first = now;
    else if (k->adapt != NULL)
        first = tp__saturating_add(now, p->o.maintenance_interval);
    tp__key_due_locked(p, k, first);
    return k;
}

/* Adds a key's counters to the pool's retired totals before the key is freed. */
static void key_retire_stats_locked(tp_pool *p, tp__key *k)
{
    tp__retired *r = &p->retired;
    for (const tp__tshard *t = k->tshards; t != NULL; t = t->next) {
        r->acquires += TP__LOAD(t->st.acquires);
        r->fast_acquires += TP__LOAD(t->st.fast_acquires);
        tp__hist_fold(&r->hold, &t->st.hold);
        r->reuses += tp__hist_fold(&r->idle, &t->st.idle); /* one idle time per reuse */
    }
    r->acquires += TP__LOAD(k->st.acquires);
    r->fast_acquires += TP__LOAD(k->st.fast_acquires);
    r->waits += TP__LOAD(k->waits);
    r->opens += TP__LOAD(k->opens);
    r->open_failures += TP__LOAD(k->open_failures);
    r->timeouts += TP__LOAD(k->timeouts);
    r->rejects_busy += TP__LOAD(k->rejects_busy);
    r->rejects_breaker += TP__LOAD(k->rejects_breaker);
    r->checks_failed += TP__LOAD(k->checks_failed);
    r->prewarms += TP__LOAD(k->prewarms);
    r->permit_waits += TP__LOAD(k->permit_waits);
    r->permit_refusals += TP__LOAD(k->permit_refusals);
    for (int i = 0; i < TP_CLOSE__COUNT; i++)
        r->closes[i] += TP__LOAD(k->closes[i]);
    for (int i = 0; i < TP_GOAWAY_CODES; i++)
        r->goaways[i] += TP__LOAD(k->goaways[i]);
    tp__hist_fold(&r->ping, &k->ping_hist);
    tp__hist_fold(&r->hold, &k->st.hold);
    r->reuses += tp__hist_fold(&r->idle, &k->st.idle);
    tp__hist_fold(&r->wait, &k->wait_hist);
    tp__hist_fold(&r->open, &k->open_hist);
}

void tp__key_free(tp__key *k)
{
    while (k->tshards != NULL) {
        tp__tshard *t = k->tshards;
        k->tshards = t->next;
        tp__hist_dispose(&t->st.hold);
        tp__hist_dispose(&t->st.idle);
        tp__free(t);
    }
    tp__hist_dispose(&k->st.hold);
    tp__hist_dispose(&k->st.idle);
    tp__hist_dispose(&k->wait_hist);
    tp__hist_dispose(&k->open_hist);
    tp__hist_dispose(&k->ping_hist);
    tp__adapt_key_free(k);
    tp__free(k->last_err);
    tp__free(k->mem);
}

void tp__key_graveyard_sweep_locked(tp_pool *p, int64_t cutoff)
{
    TP__ASSERT_LOCKED(&p->mu);
    tp__key **gp = &p->graveyard;
    while (*gp != NULL) {
        tp__key *k = *gp;
        if (k->buried_at < cutoff) {
            *gp = k->hnext;
            tp__key_free(k);
            continue;
        }
        gp = &k->hnext;
    }
}

bool tp__key_retire_unused_locked(tp_pool *p, tp__key *k, int64_t cutoff)
{
    TP__ASSERT_LOCKED(&p->mu);
    if (k->nconns != 0 || k->opening != 0 || !tp__list_empty(&k->waiters) || k->pins != 0 ||
        k->last_active >= cutoff || k->breaker != TP_BREAKER_CLOSED)
        return false;
    tp__key **pp = &p->buckets[k->hash & (p->nbuckets - 1)];
    while (*pp != k)
        pp = &(*pp)->hnext;
    *pp = k->hnext;
    p->nkeys--;
    tp__sched_remove_locked(p, k);
    key_retire_stats_locked(p, k);
    k->buried_at = tp_clock_now();
    k->hnext = p->graveyard;
    p->graveyard = k;
    return true;
}
