/* breaker.c: whether a new connection may be opened for a key now: the limits
 * (max_per_key, max_total, making room by closing another key's idle connection), the
 * per-key backoff after failed opens, and the per-key circuit breaker
 * (CLOSED -> OPEN after breaker_threshold consecutive failures -> HALF_OPEN after the
 * cool-down -> CLOSED on a successful trial, or OPEN again with a longer cool-down). */
#include "pool_internal.h"

/* Closes the pool's least recently used idle connection of another key to make room
 * under max_total. False if there is none. */
static bool evict_other_idle_locked(tp_pool *p, tp__key *key, tp__after *a)
{
    tp_conn *best = tp__idle_pool_lru_locked(p, key, NULL);
    if (best == NULL || !tp__idle_claim_locked(p, best, TP__CS_RESERVED))
        return false;
    tp__conn_close_locked(p, best, TP_CLOSE_IDLE_OVERFLOW, a);
    return true;
}

static void set_breaker_locked(tp_pool *p, tp__key *key, tp_breaker_state s, tp__after *a)
{
    if (key->breaker == s)
        return;
    key->breaker = s;
    /* The hook must not run under the lock: the event is queued with this call's
     * deferred work. */
    if (p->o.trace != NULL)
        tp__after_breaker_event(a, key, s);
}

tp__open_verdict tp__open_allowed_locked(tp_pool *p, tp__key *key, int64_t now, int64_t *until,
                                         tp__after *a)
{
    TP__ASSERT_LOCKED(&p->mu);
    *until = TP_DURATION_INFINITE;
    bool trial = false;
    if (key->breaker == TP_BREAKER_OPEN) {
        if (now < key->breaker_until)
            return TP__OPEN_BREAKER;
        set_breaker_locked(p, key, TP_BREAKER_HALF_OPEN, a);
        key->trial_inflight = false;
    }
    if (key->breaker == TP_BREAKER_HALF_OPEN) {
        /* With a probe, maintenance runs the trial; without, one acquire does. */
        if (key->trial_inflight || p->o.connector.probe != NULL)
            return TP__OPEN_BREAKER;
        trial = true;
    }
    if (!trial && now < key->backoff_until) {
        *until = key->backoff_until;
        return TP__OPEN_WAIT;
    }
    if (key->nconns + key->opening >= p->o.max_per_key)
        return TP__OPEN_WAIT;
    if (p->o.max_total != TP_UNLIMITED && p->total >= p->o.max_total &&
        !evict_other_idle_locked(p, key, a))
        return TP__OPEN_WAIT;
    key->opening++;
    p->total++;
    if (trial)
        key->trial_inflight = true;
    return TP__OPEN_OK;
}

/* Closes key's idle connections: its destination is failing, they are likely dead. */
static void close_idle_of_key_locked(tp_pool *p, tp__key *key, tp__after *a)
{
    tp_conn *c;
    while ((c = tp__idle_take_locked(p, key)) != NULL)
        tp__conn_close_locked(p, c, TP_CLOSE_BREAKER, a);
}

static void open_breaker_locked(tp_pool *p, tp__key *key, int64_t now, tp__after *a)
{
    /* +-10% jitter keeps keys opened by one outage from retrying in lockstep. */
    double j = 0.9 + 0.2 * tp__rand_unit();
    key->breaker_until = tp__saturating_add(now, (int64_t)((double)key->cooldown * j));
    key->trial_inflight = false;
    set_breaker_locked(p, key, TP_BREAKER_OPEN, a);
    close_idle_of_key_locked(p, key, a);
    tp__maintenance_poke_locked(p, key->breaker_until);
}

void tp__open_done_locked(tp_pool *p, tp__key *key, tp_err rc, const tp_errinfo *info,
                          int64_t duration, tp__after *a)
{
    TP__ASSERT_LOCKED(&p->mu);
    int64_t now = tp_clock_now();
    if (rc == TP_OK) {
        TP__ADD1(key->opens, 1);
        tp__hist_add(&key->open_hist, duration);
        key->failures = 0;
        key->backoff_until = 0;
        key->cooldown = p->o.breaker_cooldown;
        key->trial_inflight = false;
        set_breaker_locked(p, key, TP_BREAKER_CLOSED, a);
        return;
    }
    TP__ADD1(key->open_failures, 1);
    tp__adapt_drop_locked(p, key, duration, now);
    if (rc == TP_EPORTS)
        tp__adapt_ports_exhausted_locked(p, key, now);
    key->failures++;
    if (info != NULL)
        key->last_err = *info;
    else
        tp_errinfo_set(&key->last_err, rc, 0, "%s", tp_strerror(rc));
    /* Exponential backoff with "equal jitter": between half and all of the step. */
    int64_t step = p->o.backoff_initial;
    for (int64_t i = 1; i < key->failures && step < p->o.backoff_max; i++)
        step = step > p->o.backoff_max / 2 ? p->o.backoff_max : step * 2;
    step = TP__MIN(step, p->o.backoff_max);
    int64_t b = step / 2 + (int64_t)((double)(step - step / 2) * tp__rand_unit());
    key->backoff_until = tp__saturating_add(now, b);
    if (key->breaker == TP_BREAKER_HALF_OPEN) {
        key->cooldown = key->cooldown > p->o.breaker_cooldown_max / 2 ? p->o.breaker_cooldown_max
                                                                      : key->cooldown * 2;
        open_breaker_locked(p, key, now, a);
    } else if (p->o.breaker_threshold != TP_UNLIMITED && key->failures >= p->o.breaker_threshold) {
        open_breaker_locked(p, key, now, a);
    }
}

bool tp__breaker_probe_due_locked(tp_pool *p, tp__key *key, int64_t now, tp__after *a)
{
    TP__ASSERT_LOCKED(&p->mu);
    if (p->o.connector.probe == NULL)
        return false;
    if (key->breaker == TP_BREAKER_OPEN && now >= key->breaker_until) {
        set_breaker_locked(p, key, TP_BREAKER_HALF_OPEN, a);
        key->trial_inflight = false;
    }
    if (key->breaker != TP_BREAKER_HALF_OPEN || key->trial_inflight)
        return false;
    key->trial_inflight = true;
    return true;
}

void tp__probe_done_locked(tp_pool *p, tp__key *key, tp_err rc, const tp_errinfo *info,
                           tp__after *a)
{
    TP__ASSERT_LOCKED(&p->mu);
    key->trial_inflight = false;
    if (key->breaker != TP_BREAKER_HALF_OPEN)
        return;
    if (rc == TP_OK) {
        key->failures = 0;
        key->backoff_until = 0;
        key->cooldown = p->o.breaker_cooldown;
        set_breaker_locked(p, key, TP_BREAKER_CLOSED, a);
        tp__capacity_freed_locked(p, key, a);
        return;
    }
    if (info != NULL)
        key->last_err = *info;
    key->cooldown = key->cooldown > p->o.breaker_cooldown_max / 2 ? p->o.breaker_cooldown_max
                                                                  : key->cooldown * 2;
    open_breaker_locked(p, key, tp_clock_now(), a);
}
