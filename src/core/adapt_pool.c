/* adapt_pool.c: the adaptive limit (tidepool/adapt.h) applied to the pool's keys. Each
 * key of an adaptive pool has a controller; its limit bounds the key's leases plus
 * opens in flight, on top of max_per_key. The controller is fed from the pool's own
 * measurements: the hold time of every lease (as the request's latency) with the number
 * of leases in flight, and drops (open failures, releases flagged TP_RELEASE_DROPPED).
 * Acquire timeouts are not drops: they are the limit doing its job. An open failing
 * with TP_EPORTS (the destination's ephemeral ports are used up) caps the limit at the
 * key's connections until the ports come back out of TIME_WAIT.
 *
 * Adaptive pools take every lease under the lock (the lock-free reuse path is off), so
 * the idle list holds exactly the idle connections and "leases = nconns - nlinked" is
 * exact when the limit is checked. */
#include "pool_internal.h"

tp_err tp__adapt_key_init_locked(tp_pool *p, tp__key *key)
{
    if (!p->adaptive)
        return TP_OK;
    tp_adapt_state *st = tp__malloc(sizeof *st);
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
        tp__free(st);
        return TP_ENOMEM;
    }
    key->adapt = st;
    return TP_OK;
}

void tp__adapt_key_free(tp__key *key)
{
    tp__free(key->adapt);
    key->adapt = NULL;
}

bool tp__key_admits_locked(tp_pool *p, tp__key *key)
{
    TP__ASSERT_LOCKED(&p->mu);
    if (!p->adaptive || key->adapt == NULL) /* the pool's flag first: a line it has */
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

/* Linux keeps a closed connection's port in TIME_WAIT for 60 s (TCP_TIMEWAIT_LEN,
 * not tunable): after that long the ports this host burned are back. */
#define TP__TIME_WAIT_NS (60 * TP_NSEC_PER_SEC)

void tp__adapt_ports_exhausted_locked(tp_pool *p, tp__key *key, int64_t now)
{
    TP__ASSERT_LOCKED(&p->mu);
    if (key->adapt == NULL)
        return;
    /* Every port for this destination is taken (by us, other processes or TIME_WAIT):
     * the connections the key holds are all it can have. Growing past them would only
     * turn waits into failed opens. */
    int64_t held = key->nconns > 0 ? key->nconns : 1;
    int64_t budget = p->adapt_o.port_budget;
    tp_adapt_set_port_budget(key->adapt, held < budget ? held : budget);
    key->ports_capped_until = tp__saturating_add(now, TP__TIME_WAIT_NS);
}

bool tp__adapt_tick_locked(tp_pool *p, tp__key *key, int64_t now)
{
    TP__ASSERT_LOCKED(&p->mu);
    if (key->adapt == NULL)
        return false;
    int64_t before = tp_adapt_limit(key->adapt);
    if (key->ports_capped_until != 0 && now >= key->ports_capped_until) {
        /* The limit stays where the cap put it and grows back by measurement. */
        tp_adapt_set_port_budget(key->adapt, p->adapt_o.port_budget);
        key->ports_capped_until = 0;
    }
    return tp_adapt_tick(key->adapt, now) > before;
}
