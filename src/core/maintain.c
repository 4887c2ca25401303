/* maintain.c: the maintenance pass and its schedule. A pass closes idle connections
 * past their idle timeout (keeping min_idle_per_key) or lifetime, fails asynchronous
 * waiters past their deadline, grants open slots to waiters whose backoff ended, runs
 * due breaker probes, opens connections to keep min_idle_per_key warm, and reclaims
 * keys that have been empty for a while. Closes, probes and opens run outside the lock,
 * and the walk lets the lock go every TP__PASS_SLICE keys and connections.
 *
 * With maintenance_thread set the pass is a timed job on the runtime's timer thread
 * (base/workq.h), due at the earliest event a pass found (or maintenance_interval);
 * whatever makes something due sooner pokes it earlier. A scheduled pass hands its
 * probes and opens to the workers, one job each, so one slow connect neither delays the
 * next pass (this pool's or another's) nor the other opens; a pass the caller runs
 * (tp_pool_maintain) runs them itself, so they are done when it returns. */
#include <stdio.h>

#include "pool_internal.h"

/* The walk of the key table lets acquires in after about this many keys plus
 * connections looked at: a pass over 100,000 idle connections would otherwise hold the
 * pool lock for tens of milliseconds. */
#define TP__PASS_SLICE 64

/* Sets the next pass's time; a scheduled pass is armed there, except while one runs
 * (it arms itself when done, at mdue) or once the pool is closed. */
static void schedule_locked(tp_pool *p, int64_t t)
{
    p->mdue = t;
    if (p->mscheduled && !p->mrunning && !p->mstop)
        (void)tp__work_at(&p->mwork, t); /* ESYS: no worker at all; the next poke retries */
}

void tp__maintenance_poke_locked(tp_pool *p, int64_t t)
{
    TP__ASSERT_LOCKED(&p->mu);
    if (t < p->mdue)
        schedule_locked(p, t);
}

/* A job for after the lock: a probe, a warm-up open or a prewarm open for one key. */
typedef struct job {
    tp__key *key;
    bool probe;
    bool prewarm;
} job;

/* Closes expired idle connections of k; returns the earliest future expiry seen. */
static int64_t expire_idle_locked(tp_pool *p, tp__key *k, int64_t now, tp__after *a)
{
    int64_t next = TP_DURATION_INFINITE;
    int64_t idle_timeout = TP__LOAD(k->idle_timeout);
    int64_t idle = 0;
    for (tp__list *n = k->idle.next; n != &k->idle; n = n->next) {
        tp_conn *c = TP__CONTAINER_OF(n, tp_conn, idle_link);
        idle += TP__CS_STATE(atomic_load(&c->word)) == TP__CS_IDLE;
    }
    /* Lifetimes and evictions always apply. Idle timeouts close the least recently
     * used first (by idle_since: list order can be stale after lock-free reuse) and
     * never below min_idle_per_key. */
    for (;;) {
        tp_conn *victim = NULL;
        tp_close_reason why = TP_CLOSE__COUNT;
        int64_t oldest = INT64_MAX;
        for (tp__list *n = k->idle.next; n != &k->idle; n = n->next) {
            tp_conn *c = TP__CONTAINER_OF(n, tp_conn, idle_link);
            if (TP__CS_STATE(atomic_load(&c->word)) != TP__CS_IDLE)
                continue;
            int64_t since = TP__LOAD(c->idle_since);
            tp_close_reason r = TP_CLOSE__COUNT;
            if (now >= c->expires_at)
                r = TP_CLOSE_LIFETIME;
            else if (atomic_load_explicit(&c->evict, memory_order_relaxed))
                r = TP_CLOSE_EVICTED;
            if (r != TP_CLOSE__COUNT) {
                victim = c;
                why = r;
                break;
            }
            if (idle_timeout != TP_DURATION_INFINITE && now - since >= idle_timeout &&
                idle > p->o.min_idle_per_key && since < oldest) {
                victim = c;
                why = TP_CLOSE_IDLE_TIMEOUT;
                oldest = since;
            }
        }
        if (victim == NULL)
            break;
        uint64_t w = atomic_load(&victim->word);
        if (TP__CS_STATE(w) != TP__CS_IDLE ||
            !atomic_compare_exchange_strong(&victim->word, &w,
                                            (w & ~TP__CS_MASK) | (uint64_t)TP__CS_RESERVED))
            continue; /* a thread hint took it: look again */
        tp__conn_close_locked(p, victim, why, a);
        idle--;
    }
    for (tp__list *n = k->idle.next; n != &k->idle; n = n->next) {
        tp_conn *c = TP__CONTAINER_OF(n, tp_conn, idle_link);
        next = TP__MIN(next, c->expires_at);
        if (TP__CS_STATE(atomic_load(&c->word)) != TP__CS_IDLE) {
            /* Still linked but leased by the lock-free path: it comes back idle without
             * the lock (so without scheduling anything), its idle time starting no
             * earlier than now. */
            if (idle_timeout != TP_DURATION_INFINITE)
                next = TP__MIN(next, tp__saturating_add(now, idle_timeout));
            continue;
        }
        if (idle_timeout != TP_DURATION_INFINITE && idle > p->o.min_idle_per_key)
            next = TP__MIN(next, tp__saturating_add(TP__LOAD(c->idle_since), idle_timeout));
    }
    return next;
}

/* Fails asynchronous waiters past their deadline; returns the earliest future one. */
static int64_t expire_waiters_locked(tp_pool *p, tp__key *k, int64_t now, tp__after *a)
{
    int64_t next = TP_DURATION_INFINITE;
    tp__list *n = k->waiters.next;
    while (n != &k->waiters) {
        tp__waiter *w = TP__CONTAINER_OF(n, tp__waiter, link);
        n = n->next;
        if (!w->async)
            continue;
        if (now >= w->deadline) {
            TP__ADD1(k->timeouts, 1);
            tp_errinfo info;
            tp__timeout_error_locked(p, k, now - w->enqueued_at, &info);
            tp__waiter_fail_locked(p, w, TP_ETIMEDOUT, &info, a);
        } else {
            next = TP__MIN(next, w->deadline);
        }
    }
    return next;
}

static int64_t count_idle_locked(tp__key *k)
{
    int64_t idle = 0;
    for (tp__list *n = k->idle.next; n != &k->idle; n = n->next) {
        tp_conn *c = TP__CONTAINER_OF(n, tp_conn, idle_link);
        idle += TP__CS_STATE(atomic_load(&c->word)) == TP__CS_IDLE;
    }
    return idle;
}

/* Prewarm: more than prewarm_waiters acquires queued on k means demand has outgrown
 * what is open. Opens idle connections ahead of need, one per waiter not yet covered by
 * an idle or prewarming connection, so that a limit that grows next (the adaptive one)
 * or the waiters that follow find them ready instead of paying for a connect. Within
 * every limit: max_per_key and max_total (never by closing another key's idle
 * connections: a guess is not worth churn), max_idle_per_key (the spares are idle), no
 * open into a backoff or an open breaker; and under an adaptive limit at most one limit's
 * worth of spares, since one window at most about doubles it. Queues up to room jobs;
 * returns how many. */
static int prewarm_locked(tp_pool *p, tp__key *k, int64_t now, job *jobs, int room, tp__after *a)
{
    int64_t nw = atomic_load(&k->nwaiters);
    if (p->o.prewarm_waiters == TP_UNLIMITED || nw <= p->o.prewarm_waiters)
        return 0;
    int64_t spares = count_idle_locked(k) + k->prewarming; /* not the stale links */
    int64_t want = nw - spares;
    if (k->adapt != NULL)
        want = TP__MIN(want, tp_adapt_limit(k->adapt) - spares);
    want = TP__MIN(want, p->o.max_idle_per_key - spares);
    int n = 0;
    while (want-- > 0 && n < room) {
        if (p->o.max_total != TP_UNLIMITED && p->total >= p->o.max_total)
            break;
        int64_t until;
        if (tp__open_allowed_locked(p, k, now, true, &until, a) != TP__OPEN_OK)
            break;
        k->prewarming++;
        TP__ADD1(k->prewarms, 1);
        k->pins++;
        jobs[n++] = (job){k, false, true};
    }
    return n;
}

/* A key short of room (the server full, no descriptor) while acquires wait for the
 * connections it holds: the paced try for one more connection is made here, as a spare
 * (counted like a prewarm open), so that no request pays for a connect that most likely
 * fails; what it opens goes to the waiters. True if the try is reserved. */
static bool room_try_locked(tp_pool *p, tp__key *k, int64_t now, tp__after *a)
{
    if (k->failing_since == 0 || !k->failing_for_room || k->nconns == 0 ||
        tp__list_empty(&k->waiters))
        return false;
    /* Waiters the adaptive limit holds back (a port budget capped to what the key holds,
     * after TP_EPORTS) would not be served by one more connection. */
    if (!tp__key_admits_locked(p, k))
        return false;
    int64_t until;
    if (tp__open_allowed_locked(p, k, now, true, &until, a) != TP__OPEN_OK)
        return false;
    k->prewarming++;
    k->pins++;
    return true;
}

/* Runs one probe or warm-up open (slot already reserved for opens) outside the lock;
 * on_worker: a job of its own on a worker, which the pool counts until it ends. */
static void run_job(tp_pool *p, const job *j, bool on_worker)
{
    tp__key *k = j->key;
    tp__after a;
    tp__after_init(&a);
    if (j->probe) {
        tp_errinfo info;
        tp_errinfo_clear(&info);
        int64_t dl = tp_deadline_after(p->o.connect_timeout);
        tp_err rc = p->o.connector.probe(p->o.connector.ctx, k->bytes, k->keylen, dl, &info);
        tp__mutex_lock(&p->mu);
        tp__probe_done_locked(p, k, rc, &info, &a);
    } else {
        tp__mutex_lock(&p->mu);
        tp_conn *c = NULL;
        if (atomic_load(&p->closed)) { /* closed while it was queued: no connect for nothing */
            k->prewarming -= j->prewarm;
            tp__slot_release_locked(p, k, &a);
        } else if (tp__open_slot_locked(p, k, TP_DURATION_INFINITE, j->prewarm, false, &c, NULL,
                                        &a) ==
                   TP_OK) {
            tp__release_to_idle_locked(p, c, &a);
        }
    }
    k->pins--;
    if (on_worker) {
        p->workers--;
        if (--p->mjobs == 0)
            pthread_cond_broadcast(&p->idle_cv); /* tp_pool_destroy may wait for it */
    }
    tp__after_run(p, &a);
}

typedef struct job_work {
    tp__work work;
    tp_pool *pool;
    job j;
} job_work;

static void job_main(tp__work *w)
{
    job_work *jw = TP__CONTAINER_OF(w, job_work, work);
    tp_pool *p = jw->pool;
    job j = jw->j;
    tp__free(jw);
    run_job(p, &j, true);
}

/* Hands a job to the workers (dispatch) or runs it here: also when there is no memory
 * for it or the queue is full, since its slot is reserved and must be used or given
 * back either way. */
static void start_job(tp_pool *p, const job *j, bool dispatch)
{
    job_work *jw = dispatch ? tp__malloc(sizeof *jw) : NULL;
    if (jw != NULL) {
        *jw = (job_work){.work.fn = job_main, .pool = p, .j = *j};
        tp__mutex_lock(&p->mu);
        p->workers++;
        p->mjobs++;
        tp__mutex_unlock(&p->mu);
        if (tp__work_submit(&jw->work) == TP_OK)
            return;
        tp__mutex_lock(&p->mu);
        p->workers--; /* not the last: the pass that dispatches keeps the pool alive */
        p->mjobs--;
        tp__mutex_unlock(&p->mu);
        tp__free(jw);
    }
    run_job(p, j, false);
}

/* What one pass collects for after the lock: jobs, and keys for a health check. */
typedef struct pass {
    job jobs[32];
    int njobs;
    tp__key *checkups[64]; /* keys whose idle connections get a health check */
    int nchk;
} pass;

#define TP__PASS_ROOM(ps) ((int)(sizeof (ps)->jobs / sizeof (ps)->jobs[0]) - (ps)->njobs)

/* One due key's share of a pass; returns when the key is next due. */
static int64_t maintain_key_locked(tp_pool *p, tp__key *k, int64_t now, pass *ps, tp__after *a)
{
    int64_t next = expire_waiters_locked(p, k, now, a);
    if (k->adapt != NULL) { /* probes start and end on quiet keys too */
        tp__adapt_tick_locked(p, k, now);
        next = TP__MIN(next, tp__saturating_add(now, p->o.maintenance_interval));
    }
    tp__capacity_freed_locked(p, k, a); /* backoffs that ended, freed slots, a grown limit */
    next = TP__MIN(next, expire_idle_locked(p, k, now, a));
    if (k->breaker == TP_BREAKER_OPEN)
        next = TP__MIN(next, k->breaker_until);
    if (!tp__list_empty(&k->waiters) && k->backoff_until > now)
        next = TP__MIN(next, k->backoff_until);
    if (k->nlinked > 0 && p->o.retire_unhealthy && p->o.connector.fd != NULL) {
        /* sampled once an interval */
        next = TP__MIN(next, tp__saturating_add(now, p->o.maintenance_interval));
        if (ps->nchk < (int)(sizeof ps->checkups / sizeof ps->checkups[0])) {
            k->pins++;
            ps->checkups[ps->nchk++] = k;
        }
    }
    bool short_of_room = false; /* work left for the next pass */
    if (tp__breaker_probe_due_locked(p, k, now, a)) {
        if (TP__PASS_ROOM(ps) > 0) {
            k->pins++;
            ps->jobs[ps->njobs++] = (job){k, true, false};
        } else {
            short_of_room = true;
        }
    }
    ps->njobs += prewarm_locked(p, k, now, ps->jobs + ps->njobs, TP__PASS_ROOM(ps), a);
    if (TP__PASS_ROOM(ps) == 0 && p->o.prewarm_waiters != TP_UNLIMITED &&
        atomic_load(&k->nwaiters) > p->o.prewarm_waiters)
        short_of_room = true;
    if (TP__PASS_ROOM(ps) > 0 && room_try_locked(p, k, now, a))
        ps->jobs[ps->njobs++] = (job){k, false, true};
    /* Keep min_idle_per_key warm, within the limits and never into a backoff. */
    int64_t want = p->o.min_idle_per_key - count_idle_locked(k) - k->opening;
    while (want > 0 && TP__PASS_ROOM(ps) > 0 && tp__list_empty(&k->waiters)) {
        int64_t until;
        if (tp__open_allowed_locked(p, k, now, true, &until, a) != TP__OPEN_OK)
            break;
        k->pins++;
        ps->jobs[ps->njobs++] = (job){k, false, false};
        want--;
    }
    if (p->o.min_idle_per_key > 0) /* leases taken without the lock lower the idle count */
        next = TP__MIN(next, tp__saturating_add(now, p->o.maintenance_interval));
    if (want > 0) /* not all made: after the backoff, or the next interval */
        next = TP__MIN(next, k->backoff_until > now
                                 ? k->backoff_until
                                 : tp__saturating_add(now, p->o.maintenance_interval));
    if (short_of_room)
        next = now;
    if (k->nconns == 0 && k->opening == 0 && tp__list_empty(&k->waiters))
        next = TP__MIN(next, tp__saturating_add(k->last_active, TP__KEY_RECLAIM_AFTER));
    return next;
}

static int64_t maintain_pass(tp_pool *p, bool dispatch)
{
    tp__fork_check(p);
    tp__after a;
    tp__after_init(&a);
    pass ps;
    ps.njobs = ps.nchk = 0;
    tp__mutex_lock(&p->mu);
    int64_t now = tp_clock_now();
    int64_t next = tp__saturating_add(now, p->o.maintenance_interval);
    /* What comes due while this pass runs pokes mdue below this; the pass's own finding
     * joins it at the end (neither overwrites the other). */
    p->mdue = TP_DURATION_INFINITE;
    bool closed = atomic_load(&p->closed);
    int64_t work = 0; /* keys and connections looked at since the lock was last let go */
    int64_t cutoff = now - TP__KEY_RECLAIM_AFTER;
    if (!closed) {
        tp__key_graveyard_sweep_locked(p, cutoff);
        next = TP__MIN(next, tp__tenants_expire_locked(p, now, &a)); /* tenants are few */
    }
    /* Only the keys that are due: a pass with nothing due does no work per key. */
    tp__key *k;
    while (!closed && (k = tp__sched_pop_due_locked(p, now)) != NULL) {
        int64_t kdue = maintain_key_locked(p, k, now, &ps, &a);
        /* A long empty key is forgotten (its counters move to the pool totals); one this
         * pass pinned (a warm-up open, a health check) is not. */
        if (!tp__key_retire_unused_locked(p, k, cutoff)) {
            if (tp__timer_armed(&k->due)) /* made due again by this pass's own closes */
                kdue = TP__MIN(kdue, k->due.due);
            /* Still due now (no room for its jobs): the next pass, not this one again. */
            tp__sched_set_locked(p, k, kdue == TP_DURATION_INFINITE ? kdue : TP__MAX(kdue, now + 1));
        }
        if ((work += 1 + k->nconns) >= TP__PASS_SLICE) {
            /* Let acquires in: the closes and callbacks of this slice run now. The key
             * is rescheduled or retired (retired keys are freed a grace period later),
             * so nothing of the walk needs to survive the unlocked moment. */
            work = 0;
            tp__after_run(p, &a);
            tp__mutex_lock(&p->mu);
            tp__after_init(&a);
            closed = atomic_load(&p->closed);
        }
    }
    /* Health checks release the lock while they sample, so they run after the walk of
     * the key table (pinned keys stay valid). */
    for (int i = 0; i < ps.nchk; i++) {
        tp__health_pass_locked(p, ps.checkups[i], now, &a);
        ps.checkups[i]->pins--;
    }
    next = TP__MIN(next, tp__sched_next_locked(p));
    next = TP__MIN(next, p->mdue);
    schedule_locked(p, next);
    tp__after_run(p, &a);
    for (int i = 0; i < ps.njobs; i++)
        start_job(p, &ps.jobs[i], dispatch);
    int64_t left = next - tp_clock_now();
    return left > 0 ? left : 0;
}

int64_t tp_pool_maintain(tp_pool *p)
{
    return p != NULL ? maintain_pass(p, false) : 0;
}

/* The scheduled pass, on the timer thread. */
static void maintenance_job(tp__work *w)
{
    tp_pool *p = TP__CONTAINER_OF(w, tp_pool, mwork);
    tp__mutex_lock(&p->mu);
    if (p->mstop || p->mrunning) { /* closed, or armed by a poke while a pass ran */
        tp__mutex_unlock(&p->mu);
        return;
    }
    p->mrunning = true;
    tp__mutex_unlock(&p->mu);
    maintain_pass(p, true);
    tp__mutex_lock(&p->mu);
    p->mrunning = false;
    schedule_locked(p, p->mdue);
    tp__mutex_unlock(&p->mu);
}

tp_err tp__maintenance_start(tp_pool *p)
{
    tp_err rc = tp__work_timed_init(&p->mwork, maintenance_job);
    if (rc != TP_OK)
        return rc;
    tp__mutex_lock(&p->mu);
    p->mscheduled = true;
    rc = tp__work_at(&p->mwork, p->mdue);
    if (rc != TP_OK)
        p->mscheduled = false;
    tp__mutex_unlock(&p->mu);
    if (rc != TP_OK)
        tp__work_timed_fini(&p->mwork);
    return rc;
}

void tp__maintenance_stop(tp_pool *p)
{
    tp__mutex_lock(&p->mu);
    bool scheduled = p->mscheduled;
    p->mstop = true;
    p->mscheduled = false;
    tp__mutex_unlock(&p->mu);
    if (scheduled)
        tp__work_timed_fini(&p->mwork); /* waits for a pass that runs */
}

void tp__maintenance_forked_locked(tp_pool *p)
{
    /* The parent's pass, if one ran, is not running here. The workers forgot the armed
     * job (the reservation is still the pool's): a first pass in the child runs soon. */
    p->mrunning = false;
    schedule_locked(p, tp_clock_now());
}

int64_t tp_pool_evict(tp_pool *p, const void *key, size_t keylen)
{
    if (p == NULL)
        return 0;
    tp__fork_check(p);
    tp__after a;
    tp__after_init(&a);
    int64_t closed = 0;
    tp__mutex_lock(&p->mu);
    uint64_t hash = key != NULL ? tp__key_hash(key, keylen) : 0;
    for (size_t i = 0; i < p->nbuckets; i++) {
        for (tp__key *k = p->buckets[i]; k != NULL; k = k->hnext) {
            if (key != NULL && !(k->hash == hash && k == tp__key_find_locked(p, key, keylen, hash)))
                continue;
            /* In-use connections close when released. */
            for (tp__list *n = k->conns.next; n != &k->conns; n = n->next) {
                tp_conn *c = TP__CONTAINER_OF(n, tp_conn, all_link);
                atomic_store_explicit(&c->evict, true, memory_order_relaxed);
            }
            tp_conn *c;
            while ((c = tp__idle_take_locked(p, k, false)) != NULL) {
                tp__conn_close_locked(p, c, TP_CLOSE_EVICTED, &a);
                closed++;
            }
            tp__capacity_freed_locked(p, k, &a);
        }
    }
    tp__after_run(p, &a);
    return closed;
}

tp_err tp_pool_key_limit_idle_timeout(tp_pool *p, const void *key, size_t keylen,
                                      int64_t idle_timeout)
{
    if (p == NULL || (key == NULL && keylen > 0) || idle_timeout < 0)
        return TP_EINVAL;
    tp__fork_check(p);
    tp_err rc = TP_OK;
    tp__mutex_lock(&p->mu);
    tp__key *k = tp__key_get_locked(p, key, keylen, tp__key_hash(key, keylen), &rc);
    if (k != NULL && idle_timeout < TP__LOAD(k->idle_timeout)) {
        atomic_store_explicit(&k->idle_timeout, idle_timeout, memory_order_relaxed);
        /* Idle connections may now be due: let maintenance look sooner. */
        tp__key_due_locked(p, k, tp__saturating_add(tp_clock_now(), idle_timeout));
    }
    tp__mutex_unlock(&p->mu);
    return k != NULL ? TP_OK : rc;
}
