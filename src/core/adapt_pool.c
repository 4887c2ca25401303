/* adapt_pool.c: the adaptive limit (tidepool/adapt.h) applied to the pool's keys. Each
 * key of an adaptive pool has a controller; its limit bounds the key's leases plus
 * opens in flight, on top of max_per_key. The controller is fed from the pool's own
 * measurements: the hold time of every lease (as the request's latency) with the number
 * of leases in flight, and drops (open failures, releases flagged TP_RELEASE_DROPPED).
 * Acquire timeouts are not drops: they are the limit doing its job.
 *
 * Adaptive pools take every lease under the lock (the lock-free reuse path is off), so
 * the idle list holds exactly the idle connections and "leases = nconns - nlinked" is
 * exact when the limit is checked. */
#include "pool_internal.h"

tp_err tp__adapt_key_init_locked(tp_pool *p, tp__key *key)
{
    if (!p->adaptive)
        return TP_OK;
    tp_adapt_state *st = tp__malloc(&p->alloc, sizeof *st);
    if (st == NULL)
        return TP_ENOMEM;
    tp_adapt_options o = p->adapt_o;
    if (o.max_limit > p->o.max_per_key)
        o.max_limit = p->o.max_per_key;
    if (o.initial_limit > o.max_limit)
        o.initial_limit = o.max_limit;
    if (o.min_limit > o.max_limit)
        o.min_limit = o.max_limit;
    /* Seeded by the key, so keys probe their baseline at different moments. */
    if (tp_adapt_init(st, &o, key->hash, tp_clock_now(), NULL) != TP_OK) {
        tp__free(&p->alloc, st);
        return TP_ENOMEM;
    }
    key->adapt = st;
    return TP_OK;
}

void tp__adapt_key_free(tp_pool *p, tp__key *key)
{
    tp__free(&p->alloc, key->adapt);
    key->adapt = NULL;
}

bool tp__key_admits_locked(tp_pool *p, tp__key *key)
{
    TP__ASSERT_LOCKED(&p->mu);
    if (key->adapt == NULL)
        return true;
    return tp__key_inflight_locked(key) < tp_adapt_limit(key->adapt);
}

bool tp__adapt_release_locked(tp_pool *p, tp__key *key, int64_t hold, bool dropped, int64_t now)
{
    TP__ASSERT_LOCKED(&p->mu);
    if (key->adapt == NULL)
        return false;
    int64_t before = tp_adapt_limit(key->adapt);
    int64_t inflight = tp__key_inflight_locked(key); /* this lease included */
    tp_adapt_sample(key->adapt, hold, inflight, dropped ? TP_ADAPT_DROP : TP_ADAPT_OK, now);
    return tp_adapt_tick(key->adapt, now) > before;
}

void tp__adapt_drop_locked(tp_pool *p, tp__key *key, int64_t duration, int64_t now)
{
    TP__ASSERT_LOCKED(&p->mu);
    if (key->adapt == NULL)
        return;
    tp_adapt_sample(key->adapt, duration, tp__key_inflight_locked(key), TP_ADAPT_DROP, now);
    tp_adapt_tick(key->adapt, now);
}

bool tp__adapt_tick_locked(tp_pool *p, tp__key *key, int64_t now)
{
    TP__ASSERT_LOCKED(&p->mu);
    if (key->adapt == NULL)
        return false;
    int64_t before = tp_adapt_limit(key->adapt);
    return tp_adapt_tick(key->adapt, now) > before;
}
