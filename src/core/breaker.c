/* breaker.c: whether a new connection may be opened for a key now, and what a finished
 * open means for the key.
 *
 * May an open start: the limits (max_per_key, max_total, making room by closing another
 * key's idle connection), the pacing after failed opens, and the per-key circuit breaker.
 *
 * What an open's outcome means. A server that restarts kills every pooled connection at
 * once, and every reopen fails together: that is one event, not thirty-two. So only an
 * open that started after the key's last counted outcome (a failure seen, or a success)
 * counts; the others of the same burst add nothing. After a counted failure the key is in
 * a failing streak: it opens one connection at a time, the next no sooner than a backoff
 * of a quarter of the streak's age (so a destination that comes back after an outage of T
 * is found within T/4: a 100 ms restart costs at most 25 ms more). Failures are told apart
 * by what they say about the destination (tp__open_failure_kind): only the destination's
 * own failures count for the breaker; a server that answered "too many connections" is up,
 * and a local shortage (descriptors, ports, memory) says nothing about it.
 *
 * The breaker: CLOSED -> OPEN once breaker_threshold counted failures have accumulated over
 * at least breaker_min_outage -> HALF_OPEN after the cool-down -> CLOSED on a successful
 * trial (an acquire, or the connector's probe), or OPEN again with a longer cool-down. An
 * open breaker stops opening, not serving: idle connections stay and are handed out, and
 * an acquire that can wait for a connection the key holds waits for it; only an acquire
 * with nothing to wait for fails fast with TP_EBREAKER. */
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

tp__open_verdict tp__open_allowed_locked(tp_pool *p, tp__key *key, int64_t now, bool ahead,
                                         int64_t *until, tp__after *a)
{
    TP__ASSERT_LOCKED(&p->mu);
    *until = TP_DURATION_INFINITE;
    key->permit_blocked = false;
    bool trial = false;
    if (key->breaker == TP_BREAKER_OPEN) {
        if (now < key->breaker_until) {
            *until = key->breaker_until;
            return TP__OPEN_BREAKER;
        }
        set_breaker_locked(p, key, TP_BREAKER_HALF_OPEN, a);
        key->trial_inflight = false;
    }
    if (key->breaker == TP_BREAKER_HALF_OPEN) {
        /* With a probe, maintenance runs the trial; without, one acquire does. */
        if (key->trial_inflight || p->o.connector.probe != NULL)
            return TP__OPEN_BREAKER;
        trial = true;
    }
    bool paced = !trial && key->failing_since != 0;
    if (paced) {
        /* Failing: one open at a time (its outcome wakes the waiters), after the backoff.
         * Opens of the burst that started the streak do not count: one stuck in a dying
         * server's backlog must not hold back the retry that finds it restarted. */
        if (key->paced_open)
            return TP__OPEN_WAIT;
        if (!ahead && key->failing_for_room && key->nconns > 0) {
            /* Short of room with connections to wait for: a request would pay for a
             * connect that most likely fails. Maintenance makes the paced try, and
             * whatever it opens goes to the waiters. */
            tp__key_due_locked(p, key, TP__MAX(now, key->backoff_until));
            return TP__OPEN_WAIT;
        }
        if (now < key->backoff_until) {
            *until = key->backoff_until;
            return TP__OPEN_WAIT;
        }
    }
    if (key->nconns + key->opening >= p->o.max_per_key)
        return TP__OPEN_WAIT;
    if (p->o.max_total != TP_UNLIMITED && p->total >= p->o.max_total &&
        !evict_other_idle_locked(p, key, a))
        return TP__OPEN_WAIT;
    tp__open_verdict permit = tp__permit_take_locked(p, key, ahead);
    if (permit != TP__OPEN_OK)
        return permit;
    key->opening++;
    p->total++;
    if (trial)
        key->trial_inflight = true;
    if (paced) {
        key->paced_open = true;
        key->paced_open_at = now;
    }
    return TP__OPEN_OK;
}

void tp__open_slot_unused_locked(tp__key *key)
{
    /* Only the paced open can be given back while the key is failing. */
    key->paced_open = false;
    if (key->breaker == TP_BREAKER_HALF_OPEN)
        key->trial_inflight = false;
}

tp__open_failure tp__open_failure_kind(tp_err rc)
{
    switch (rc) {
    case TP_ECONNREFUSED: /* nothing listens (a restart), or a middlebox said no */
    case TP_ECONNRESET:   /* reset during the handshake */
    case TP_EUNREACH:     /* a route that comes and goes */
    case TP_EUNAVAIL:     /* the server is starting up or shutting down */
        return TP__FAIL_TRANSIENT;
    case TP_ESERVERFULL:
        return TP__FAIL_CAPACITY;
    case TP_ENOFD:
    case TP_EPORTS:
    case TP_ENOMEM:
    case TP_ESYS:
    case TP_ECANCELED:
        return TP__FAIL_LOCAL;
    default:
        return TP__FAIL_DESTINATION;
    }
}

/* The backoff before the next open of a key failing for age ns: a quarter of the age,
 * within [backoff_initial, backoff_max], with "equal jitter" (between half and all of it)
 * so that keys and processes that failed together do not retry in lockstep. */
static int64_t backoff_locked(tp_pool *p, int64_t age)
{
    int64_t step = TP__MIN(TP__MAX(age / 4, p->o.backoff_initial), p->o.backoff_max);
    return step / 2 + (int64_t)((double)(step - step / 2) * tp__rand_unit());
}

static void open_breaker_locked(tp_pool *p, tp__key *key, int64_t now, tp__after *a)
{
    /* +-10% jitter keeps keys opened by one outage from retrying in lockstep. */
    double j = 0.9 + 0.2 * tp__rand_unit();
    key->breaker_until = tp__saturating_add(now, (int64_t)((double)key->cooldown * j));
    key->trial_inflight = false;
    set_breaker_locked(p, key, TP_BREAKER_OPEN, a);
    tp__key_due_locked(p, key, key->breaker_until);
}

static void longer_cooldown_locked(tp_pool *p, tp__key *key)
{
    key->cooldown = key->cooldown > p->o.breaker_cooldown_max / 2 ? p->o.breaker_cooldown_max
                                                                  : key->cooldown * 2;
}

/* The destination answered (an open or a probe succeeded): the streak and the breaker
 * end, and waiters held back by them may open now. */
static void destination_up_locked(tp_pool *p, tp__key *key, int64_t now, tp__after *a)
{
    bool held_back = key->failing_since != 0 || key->breaker != TP_BREAKER_CLOSED;
    key->failures = 0;
    key->failing_since = 0;
    key->paced_open = false;
    key->backoff_until = 0;
    key->outcome_at = now;
    key->cooldown = p->o.breaker_cooldown;
    key->trial_inflight = false;
    set_breaker_locked(p, key, TP_BREAKER_CLOSED, a);
    if (held_back)
        tp__capacity_freed_locked(p, key, a);
}

/* A counted failure of kind k: the streak, its backoff, and the breaker. */
/* Keeps the open error for later messages. Allocated at a key's first failure; if that
 * allocation fails the message is only lost, never the failure's counting. */
static void remember_error_locked(tp__key *key, tp_err rc, const tp_errinfo *info)
{
    if (key->last_err == NULL && (key->last_err = tp__malloc(sizeof *key->last_err)) == NULL)
        return;
    if (info != NULL)
        *key->last_err = *info;
    else
        tp_errinfo_set(key->last_err, rc, 0, "%s", tp_strerror(rc));
}

const char *tp__key_last_open_error(const tp__key *key)
{
    return key->last_err != NULL && key->last_err->code != TP_OK ? key->last_err->msg : "";
}

static void count_failure_locked(tp_pool *p, tp__key *key, tp__open_failure k, int64_t now,
                                 tp__after *a)
{
    key->outcome_at = now;
    /* A streak's age paces its retries. A server that restarts after an hour at its
     * connection limit is a new outage: it is retried from the shortest backoff. */
    bool for_room = k == TP__FAIL_CAPACITY || k == TP__FAIL_LOCAL;
    if (key->failing_since == 0 || key->failing_for_room != for_room) {
        key->failing_since = now;
        key->failing_for_room = for_room;
    }
    key->backoff_until = tp__saturating_add(now, backoff_locked(p, now - key->failing_since));
    /* Whatever waits on it (waiters, warm-ups, a paced try) is looked at again then. */
    tp__key_due_locked(p, key, key->backoff_until);
    if (k == TP__FAIL_LOCAL) {
        /* Nothing learnt about the destination: a failed trial is tried again after the
         * same cool-down, not a longer one. */
        if (key->breaker == TP_BREAKER_HALF_OPEN)
            open_breaker_locked(p, key, now, a);
        return;
    }
    if (k == TP__FAIL_CAPACITY) {
        /* The server answered, so it is up: it only has no room. The pacing above keeps
         * the key to what it holds, trying for one more now and then. */
        key->failures = 0;
        key->cooldown = p->o.breaker_cooldown;
        key->trial_inflight = false;
        set_breaker_locked(p, key, TP_BREAKER_CLOSED, a);
        return;
    }
    key->failures++;
    if (key->breaker == TP_BREAKER_HALF_OPEN) {
        longer_cooldown_locked(p, key);
        open_breaker_locked(p, key, now, a);
    } else if (key->breaker == TP_BREAKER_CLOSED && p->o.breaker_threshold != TP_UNLIMITED &&
               key->failures >= p->o.breaker_threshold &&
               now - key->failing_since >= p->o.breaker_min_outage) {
        open_breaker_locked(p, key, now, a);
    }
}

void tp__open_done_locked(tp_pool *p, tp__key *key, tp_err rc, const tp_errinfo *info,
                          int64_t started, tp__after *a)
{
    TP__ASSERT_LOCKED(&p->mu);
    int64_t now = tp_clock_now();
    if (key->paced_open && started >= key->paced_open_at)
        key->paced_open = false; /* the streak's one open is back */
    if (rc == TP_OK) {
        TP__ADD1(key->opens, 1);
        tp__hist_add(&key->open_hist, now - started);
        destination_up_locked(p, key, now, a);
        return;
    }
    TP__ADD1(key->open_failures, 1);
    remember_error_locked(key, rc, info);
    if (started < key->outcome_at)
        return; /* began before the last outcome was seen: part of that burst */
    tp__adapt_drop_locked(p, key, now - started, now);
    if (rc == TP_EPORTS)
        tp__adapt_ports_exhausted_locked(p, key, now);
    count_failure_locked(p, key, tp__open_failure_kind(rc), now, a);
}

void tp__room_freed_locked(tp__key *key)
{
    /* The connection that closed held the slot (at the server, or a descriptor here) that
     * the last open lacked. */
    if (key->failing_since != 0 && key->failing_for_room)
        key->backoff_until = 0;
}

bool tp__open_failure_waits_locked(tp_pool *p, tp__key *key, tp_err rc)
{
    TP__ASSERT_LOCKED(&p->mu);
    switch (tp__open_failure_kind(rc)) {
    case TP__FAIL_TRANSIENT:
        /* A destination that answered before and refuses now is restarting: worth
         * waiting through until the breaker gives up on it. One never reached is more
         * likely a wrong address: say so at once. */
        return key->breaker == TP_BREAKER_CLOSED && TP__LOAD(key->opens) > 0;
    case TP__FAIL_CAPACITY:
    case TP__FAIL_LOCAL:
        /* No room for another connection: the ones the key holds (or is opening) will
         * serve. */
        return key->nconns + key->opening > 0 && rc != TP_ECANCELED;
    case TP__FAIL_DESTINATION:
        break;
    }
    return false;
}

bool tp__breaker_fails_fast_locked(const tp__key *key)
{
    return key->nconns == 0;
}

tp_err tp__breaker_error_locked(tp_pool *p, tp__key *key, tp_errinfo *err)
{
    TP__ASSERT_LOCKED(&p->mu);
    TP__ADD1(key->rejects_breaker, 1);
    int64_t now = tp_clock_now();
    int64_t streak = key->failing_since != 0 ? now - key->failing_since : 0;
    int64_t left = key->breaker == TP_BREAKER_OPEN ? key->breaker_until - now : 0;
    return tp_errinfo_set(
        err, TP_EBREAKER, 0,
        "breaker open after %lld failed opens over %.0f ms, no connection left to wait for; "
        "next trial in %.0f ms%s%s",
        (long long)key->failures, (double)streak / 1e6, (double)TP__MAX(left, 0) / 1e6,
        *tp__key_last_open_error(key) ? "; last open error: " : "", tp__key_last_open_error(key));
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
    int64_t now = tp_clock_now();
    if (rc == TP_OK) {
        destination_up_locked(p, key, now, a);
        return;
    }
    if (info != NULL)
        remember_error_locked(key, rc, info);
    longer_cooldown_locked(p, key);
    open_breaker_locked(p, key, now, a);
}
