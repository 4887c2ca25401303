/* stats.c: where leases are counted, and consistent snapshots. Gauges are counted under
 * the pool lock from the lists themselves (so idle + in_use + opening = total always
 * holds); counters are the key's shard (atomic additions by any thread) plus the shards
 * of the threads that reused its connections without the lock (each written by its
 * thread alone, with plain relaxed stores). A snapshot may miss the last few operations
 * in flight, never invent any. No connection carries statistics of its own. */
#include <string.h>

#include "pool_internal.h"

void tp__shard_fold(tp_stats *st, const tp__shard *sh)
{
    st->acquires += TP__LOAD(sh->acquires);
    uint64_t fast = TP__LOAD(sh->fast_acquires);
    st->acquire_wait.count += fast; /* acquires that never waited: bucket 0, 0 ns */
    st->acquire_wait.buckets[0] += fast;
    tp__hist_fold(&st->hold_time, &sh->hold);
    st->reuses += tp__hist_fold(&st->idle_time, &sh->idle); /* one idle time per reuse */
}

_Thread_local __attribute__((tls_model("initial-exec"))) tp__tls_shard tp__tls;

tp__shard *tp__thread_shard_slow(tp_pool *p, tp__key *k)
{
    tp__tls_shard *tls = &tp__tls;
    const void *token = tls; /* distinct per live thread */
    tp__mutex_lock(&p->mu);
    tp__tshard *t = k->tshards;
    while (t != NULL && t->owner != token)
        t = t->next;
    if (t == NULL && (t = tp__calloc(1, sizeof *t)) != NULL) {
        t->owner = token;
        t->next = k->tshards;
        k->tshards = t;
    }
    tp__mutex_unlock(&p->mu);
    if (t == NULL)
        return NULL;
    tls->pool_id = p->id;
    tls->key = k;
    tls->key_id = k->id;
    tls->sh = &t->st;
    return tls->sh;
}

void tp__stats_lease_shared(tp__key *k, bool nowait, bool reused, int64_t idle_ns)
{
    tp__shard *sh = &k->st;
    atomic_fetch_add_explicit(&sh->acquires, 1, memory_order_relaxed);
    if (nowait)
        atomic_fetch_add_explicit(&sh->fast_acquires, 1, memory_order_relaxed);
    if (reused)
        tp__hist_add_shared(&sh->idle, idle_ns);
}

/* Adds key k's snapshot into st (gauges and counters). */
static void key_snapshot_locked(tp_pool *p, tp__key *k, tp_stats *st)
{
    int64_t idle = 0;
    for (tp__list *n = k->idle.next; n != &k->idle; n = n->next) {
        tp_conn *c = TP__CONTAINER_OF(n, tp_conn, idle_link);
        idle += TP__CS_STATE(atomic_load(&c->word)) == TP__CS_IDLE;
    }
    st->total += k->nconns + k->opening;
    st->idle += idle;
    st->opening += k->opening;
    st->in_use += k->nconns - idle;
    st->streams_in_use += k->streams_in_use;
    st->stream_capacity += k->stream_capacity;
    st->draining += k->draining;
    st->waiters += atomic_load(&k->nwaiters);
    tp__shard_fold(st, &k->st);
    for (const tp__tshard *t = k->tshards; t != NULL; t = t->next)
        tp__shard_fold(st, &t->st);
    st->waits += TP__LOAD(k->waits);
    st->opens += TP__LOAD(k->opens);
    st->open_failures += TP__LOAD(k->open_failures);
    st->timeouts += TP__LOAD(k->timeouts);
    st->rejects_busy += TP__LOAD(k->rejects_busy);
    st->rejects_breaker += TP__LOAD(k->rejects_breaker);
    st->checks_failed += TP__LOAD(k->checks_failed);
    st->prewarms += TP__LOAD(k->prewarms);
    st->permit_waits += TP__LOAD(k->permit_waits);
    st->permit_refusals += TP__LOAD(k->permit_refusals);
    for (int i = 0; i < TP_CLOSE__COUNT; i++)
        st->closes[i] += TP__LOAD(k->closes[i]);
    for (int i = 0; i < TP_GOAWAY_CODES; i++)
        st->goaways[i] += TP__LOAD(k->goaways[i]);
    tp__hist_fold(&st->ping_rtt, &k->ping_hist);
    tp__hist_fold(&st->acquire_wait, &k->wait_hist);
    tp__hist_fold(&st->open_time, &k->open_hist);
    (void)p;
}

static void limits(tp_pool *p, tp_stats *st)
{
    st->max_per_key = p->o.max_per_key;
    st->max_idle_per_key = p->o.max_idle_per_key;
    st->min_idle_per_key = p->o.min_idle_per_key;
}

void tp_pool_stats(tp_pool *p, tp_stats *out)
{
    if (out == NULL)
        return;
    memset(out, 0, sizeof *out);
    if (p == NULL)
        return;
    tp__fork_check(p);
    tp__mutex_lock(&p->mu);
    limits(p, out);
    out->keys = p->nkeys;
    for (size_t i = 0; i < p->nbuckets; i++)
        for (tp__key *k = p->buckets[i]; k != NULL; k = k->hnext)
            key_snapshot_locked(p, k, out);
    const tp__retired *r = &p->retired;
    out->acquires += r->acquires;
    out->reuses += r->reuses;
    out->acquire_wait.count += r->fast_acquires;
    out->acquire_wait.buckets[0] += r->fast_acquires;
    out->waits += r->waits;
    out->opens += r->opens;
    out->open_failures += r->open_failures;
    out->timeouts += r->timeouts;
    out->rejects_busy += r->rejects_busy;
    out->rejects_breaker += r->rejects_breaker;
    out->checks_failed += r->checks_failed;
    out->prewarms += r->prewarms;
    out->permit_waits += r->permit_waits;
    out->permit_refusals += r->permit_refusals;
    for (int i = 0; i < TP_CLOSE__COUNT; i++)
        out->closes[i] += r->closes[i];
    for (int i = 0; i < TP_GOAWAY_CODES; i++)
        out->goaways[i] += r->goaways[i];
    const tp_histogram *src[5] = {&r->hold, &r->idle, &r->wait, &r->open, &r->ping};
    tp_histogram *dst[5] = {&out->hold_time, &out->idle_time, &out->acquire_wait, &out->open_time,
                            &out->ping_rtt};
    for (int h = 0; h < 5; h++) {
        dst[h]->count += src[h]->count;
        dst[h]->sum_ns += src[h]->sum_ns;
        for (int b = 0; b < TP_HIST_BUCKETS; b++)
            dst[h]->buckets[b] += src[h]->buckets[b];
    }
    tp__mutex_unlock(&p->mu);
}

tp_err tp_pool_key_stats(tp_pool *p, const void *key, size_t keylen, tp_stats *out)
{
    if (p == NULL || out == NULL || (key == NULL && keylen > 0))
        return TP_EINVAL;
    tp__fork_check(p);
    memset(out, 0, sizeof *out);
    tp__mutex_lock(&p->mu);
    tp__key *k = tp__key_find_locked(p, key, keylen, tp__key_hash(key, keylen));
    if (k == NULL) {
        tp__mutex_unlock(&p->mu);
        return TP_EINVAL;
    }
    limits(p, out);
    key_snapshot_locked(p, k, out);
    out->breaker = k->breaker;
    out->adaptive_limit = k->adapt != NULL ? tp_adapt_limit(k->adapt) : 0;
    out->keys = 1;
    tp__mutex_unlock(&p->mu);
    return TP_OK;
}

void tp_pool_key_visit(tp_pool *p, tp_key_visit_fn fn, void *ud)
{
    if (p == NULL || fn == NULL)
        return;
    tp__fork_check(p);
    /* Snapshot every key under the lock into a private array, then call fn unlocked. */
    typedef struct item {
        tp_stats st;
        size_t keylen;
        unsigned char *bytes;
    } item;
    tp__mutex_lock(&p->mu);
    size_t n = (size_t)p->nkeys;
    item *items = n > 0 ? tp__calloc(n, sizeof *items) : NULL;
    size_t got = 0;
    if (items != NULL) {
        for (size_t i = 0; i < p->nbuckets; i++) {
            for (tp__key *k = p->buckets[i]; k != NULL; k = k->hnext) {
                item *it = &items[got];
                it->bytes = tp__malloc(k->keylen > 0 ? k->keylen : 1);
                if (it->bytes == NULL)
                    continue;
                memcpy(it->bytes, k->bytes, k->keylen);
                it->keylen = k->keylen;
                limits(p, &it->st);
                key_snapshot_locked(p, k, &it->st);
                it->st.breaker = k->breaker;
                it->st.adaptive_limit = k->adapt != NULL ? tp_adapt_limit(k->adapt) : 0;
                it->st.keys = 1;
                got++;
            }
        }
    }
    tp__mutex_unlock(&p->mu);
    for (size_t i = 0; i < got; i++) {
        fn(ud, items[i].bytes, items[i].keylen, &items[i].st);
        tp__free(items[i].bytes);
    }
    tp__free(items);
}
