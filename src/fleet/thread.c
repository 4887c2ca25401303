/* thread.c: the fleet's own thread, the only one that talks to Redis after create. Each
 * round: give back the permits no longer held (beyond what the pools' waiters will use),
 * ask for more while the pools wait (retrying every 10 ms doubling to 200 ms while Redis
 * has none: that costs a round trip each time, only while this instance is short), and
 * heartbeat when due: re-assert what is held and wanted, learn the share, and shed down
 * to it while others wait. Redis out of reach: degraded (counted), reconnect at each
 * heartbeat, and once back re-assert at once. No lock is held across a round trip, and no
 * pool is called with mu held. */
#ifdef TIDEPOOL_HAVE_HIREDIS

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/base.h"
#include "fleet_internal.h"

#define RETRY_MIN (10 * TP_NSEC_PER_MSEC)
#define RETRY_MAX (200 * TP_NSEC_PER_MSEC)

/* What the attached pools want: in use + opening + waiting, and the waiting alone. */
static void pool_demand(tp_fleet *f, int64_t *demand, int64_t *waiting)
{
    tp_pool *pools[TP__FLEET_POOLS_MAX];
    int n = tp__fleet_pools_hold(f, pools);
    *demand = *waiting = 0;
    for (int i = 0; i < n; i++) {
        tp_stats st;
        tp_pool_stats(pools[i], &st);
        *demand += st.in_use + st.opening + st.waiters;
        *waiting += st.waiters;
    }
    tp__fleet_pools_release(f);
}

static void pools_call(tp_fleet *f, int64_t shed)
{
    tp_pool *pools[TP__FLEET_POOLS_MAX];
    int n = tp__fleet_pools_hold(f, pools);
    if (shed < 0) { /* permits came: the waiters look again */
        for (int i = 0; i < n; i++)
            tp_pool_permits_changed(pools[i]);
        tp__fleet_pools_release(f);
        return;
    }
    /* Idle connections of every pool first; what is left, from the last pool's releases. */
    for (int i = 0; i < n; i++) {
        int64_t closed = tp_pool_shed(pools[i], shed);
        if (i + 1 < n)
            (void)tp_pool_shed(pools[i], 0);
        atomic_fetch_add(&f->sheds, (uint64_t)closed);
        shed = shed > closed ? shed - closed : 0;
    }
    tp__fleet_pools_release(f);
}

static void went_degraded(tp_fleet *f)
{
    atomic_fetch_add(&f->errors, 1);
    if (!atomic_exchange(&f->degraded, true))
        atomic_store(&f->degraded_since, tp_clock_now());
}

static void came_back(tp_fleet *f)
{
    if (atomic_exchange(&f->degraded, false))
        atomic_fetch_add(&f->degraded_ns, tp_clock_now() - atomic_load(&f->degraded_since));
}

static void i64(char *buf, size_t cap, int64_t v)
{
    snprintf(buf, cap, "%lld", (long long)v);
}

/* The grace a state this instance rebirths gets: 1.5 heartbeats once it has known the
 * budget (a Redis restarted empty: the others' holdings are unknown until they
 * re-assert), none at its first heartbeat (a budget nobody held before: nothing to wait
 * for; an instance first started just as Redis restarted is the one case this misses). */
static int64_t grace_ms(const tp_fleet *f)
{
    if (atomic_load(&f->heartbeats) == 0)
        return 0;
    return f->o.heartbeat * 3 / 2 / TP_NSEC_PER_MSEC;
}

/* Lapsed instances whose permits are held back: ask the server what is left of them
 * and say so (errors here only delay the reclaim to the next heartbeat). */
static void reconcile(tp_fleet *f, char (*names)[TP_FLEET_INSTANCE_MAX + 1], size_t n)
{
    for (size_t i = 0; i < n && f->r.c != NULL; i++) {
        int64_t left = f->o.still_open(f->o.still_open_ud, names[i]);
        if (left < 0)
            continue;
        char v[32];
        i64(v, sizeof v, left);
        const char *av[2] = {names[i], v};
        redisReply *rep = NULL;
        tp_errinfo e;
        atomic_fetch_add(&f->commands, 1);
        if (tp__fleet_eval(&f->r, TP__FLEET_RECONCILE, 2, av, &rep, &e) == TP_OK)
            freeReplyObject(rep);
    }
}

tp_err tp__fleet_heartbeat(tp_fleet *f, tp_errinfo *err)
{
    int64_t demand, waiting;
    pool_demand(f, &demand, &waiting);
    /* What a degraded spell opened beyond the allowance is held all the same. */
    int64_t held = atomic_load(&f->held), allowance = atomic_load(&f->allowance);
    if (held > allowance)
        atomic_store(&f->allowance, allowance = held);
    char a[6][32];
    i64(a[1], sizeof a[1], allowance);
    i64(a[2], sizeof a[2], demand);
    i64(a[3], sizeof a[3], f->o.cap);
    i64(a[4], sizeof a[4], f->o.lease / TP_NSEC_PER_MSEC);
    i64(a[5], sizeof a[5], grace_ms(f));
    const char *av[7] = {
        f->instance, a[1], a[2], a[3], a[4], a[5], f->o.still_open != NULL ? "1" : "0"};
    int64_t sent = tp_clock_now();
    redisReply *rep = NULL;
    atomic_fetch_add(&f->commands, 1);
    tp_err rc = tp__fleet_eval(&f->r, TP__FLEET_HEARTBEAT, 7, av, &rep, err);
    if (rc != TP_OK)
        return rc;
    int64_t share = tp__fleet_int(rep, 1), unmet = tp__fleet_int(rep, 4);
    atomic_store(&f->cap, tp__fleet_int(rep, 0));
    atomic_store(&f->share, share);
    atomic_store(&f->fleet_held, tp__fleet_int(rep, 2));
    atomic_store(&f->instances, tp__fleet_int(rep, 3));
    atomic_store(&f->demand, demand);
    if (tp__fleet_int(rep, 5) != 0 && atomic_load(&f->heartbeats) > 0)
        atomic_fetch_add(&f->rebirths, 1); /* our entry was gone: re-asserted now */
    char lapsed[8][TP_FLEET_INSTANCE_MAX + 1];
    size_t nlapsed = 0;
    for (size_t k = 7; k < rep->elements && nlapsed < 8; k++) {
        const redisReply *e = rep->element[k];
        if (e->type == REDIS_REPLY_STRING && e->len <= TP_FLEET_INSTANCE_MAX) {
            memcpy(lapsed[nlapsed], e->str, e->len);
            lapsed[nlapsed++][e->len] = '\0';
        }
    }
    freeReplyObject(rep);
    atomic_fetch_add(&f->heartbeats, 1);
    /* The lease runs from when the heartbeat left; one heartbeat of margin. */
    atomic_store(&f->fresh_until, sent + f->o.lease - f->o.heartbeat);
    if (f->o.still_open != NULL)
        reconcile(f, lapsed, nlapsed);
    /* Above the share while others want: give back, idle first, and keep no permit above
     * it. Else cancel, and the ceiling goes. */
    atomic_store(&f->ceiling, unmet > 0 ? share : INT64_MAX);
    pools_call(f, unmet > 0 && held > share ? held - share : 0);
    return TP_OK;
}

/* What this instance keeps permits for: what it holds, and what its waiters are about to
 * open up to the ceiling (its share while others want more). */
static int64_t keep(tp_fleet *f, int64_t waiting)
{
    int64_t held = atomic_load(&f->held), ceiling = atomic_load(&f->ceiling);
    int64_t want = held + waiting < ceiling ? held + waiting : ceiling;
    return want > held ? want : held;
}

/* Permits no longer kept go back. */
static tp_err give_back(tp_fleet *f, int64_t waiting, tp_errinfo *err)
{
    int64_t surplus = atomic_load(&f->allowance) - keep(f, waiting);
    if (surplus <= 0)
        return TP_OK;
    atomic_fetch_sub(&f->allowance, surplus); /* at once: a failed RELEASE is re-asserted */
    char n[32];
    i64(n, sizeof n, surplus);
    const char *av[2] = {f->instance, n};
    redisReply *rep = NULL;
    atomic_fetch_add(&f->commands, 1);
    tp_err rc = tp__fleet_eval(&f->r, TP__FLEET_RELEASE, 2, av, &rep, err);
    freeReplyObject(rep);
    return rc;
}

/* Asks for what the waiters want; *granted says how many came. */
static tp_err ask(tp_fleet *f, int64_t want, int64_t demand, int64_t *granted, tp_errinfo *err)
{
    char a[7][32];
    i64(a[1], sizeof a[1], want);
    i64(a[2], sizeof a[2], atomic_load(&f->allowance));
    i64(a[3], sizeof a[3], demand);
    i64(a[4], sizeof a[4], f->o.cap);
    i64(a[5], sizeof a[5], f->o.lease / TP_NSEC_PER_MSEC);
    i64(a[6], sizeof a[6], grace_ms(f));
    const char *av[7] = {f->instance, a[1], a[2], a[3], a[4], a[5], a[6]};
    redisReply *rep = NULL;
    atomic_fetch_add(&f->commands, 1);
    tp_err rc = tp__fleet_eval(&f->r, TP__FLEET_ACQUIRE, 7, av, &rep, err);
    if (rc != TP_OK)
        return rc;
    *granted = tp__fleet_int(rep, 0);
    atomic_store(&f->share, tp__fleet_int(rep, 1));
    atomic_store(&f->fleet_held, tp__fleet_int(rep, 2));
    freeReplyObject(rep);
    if (*granted > 0) {
        atomic_fetch_add(&f->allowance, *granted);
        atomic_fetch_add(&f->grants, (uint64_t)*granted);
    }
    return TP_OK;
}

static int64_t next_heartbeat(const tp_fleet *f, int64_t now)
{
    double cut = f->o.heartbeat_jitter * tp__rand_unit();
    return now + (int64_t)((double)f->o.heartbeat * (1.0 - cut));
}

/* Sleeps until due, a kick, or stop; false on stop. */
static bool wait_until(tp_fleet *f, int64_t due)
{
    pthread_mutex_lock(&f->mu);
    while (!f->stop && (!f->kick || f->paused) && (f->paused || tp_clock_now() < due)) {
        int64_t left = f->paused ? 50 * TP_NSEC_PER_MSEC : due - tp_clock_now();
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        int64_t at = (int64_t)ts.tv_sec * TP_NSEC_PER_SEC + ts.tv_nsec + left;
        ts.tv_sec = at / TP_NSEC_PER_SEC;
        ts.tv_nsec = at % TP_NSEC_PER_SEC;
        pthread_cond_timedwait(&f->cv, &f->mu, &ts);
    }
    f->kick = false;
    bool go = !f->stop;
    pthread_mutex_unlock(&f->mu);
    return go;
}

void *tp__fleet_thread(void *arg)
{
    tp_fleet *f = arg;
    int64_t hb_due = next_heartbeat(f, tp_clock_now());
    /* retry_at: when Redis may be asked for permits again (0: whenever a kick or the
     * heartbeat wakes the thread); retry: the backoff after a refusal. */
    int64_t retry = 0, retry_at = 0;
    while (wait_until(f, TP__MIN(hb_due, retry_at == 0 ? TP_DURATION_INFINITE : retry_at))) {
        int64_t now = tp_clock_now();
        tp_errinfo e;
        tp_errinfo_clear(&e);
        if (f->r.c == NULL) {
            if (now < hb_due && atomic_load(&f->degraded))
                continue; /* reconnect at the heartbeat's pace, not at every kick */
            hb_due = next_heartbeat(f, now);
            if (tp__fleet_connect(&f->r, &e) != TP_OK || tp__fleet_heartbeat(f, &e) != TP_OK) {
                went_degraded(f);
                continue;
            }
            came_back(f);
            pools_call(f, -1); /* the state is ours again: waiters may open */
            continue;
        }
        int64_t demand, waiting;
        pool_demand(f, &demand, &waiting);
        tp_err rc = give_back(f, waiting, &e);
        /* Asked and refused: not again before the retry, whatever kicks meanwhile. */
        if (rc == TP_OK && now >= retry_at) {
            int64_t want = keep(f, waiting) - atomic_load(&f->allowance);
            bool wanted = atomic_exchange(&f->wanted, false);
            if ((wanted || waiting > 0) && want > 0) {
                int64_t got = 0;
                rc = ask(f, want, demand, &got, &e);
                if (rc == TP_OK && got > 0) {
                    retry = 0;
                    retry_at = now; /* more may be wanted: look again at once */
                    pools_call(f, -1);
                } else if (rc == TP_OK) {
                    retry = retry == 0 ? RETRY_MIN : TP__MIN(retry * 2, RETRY_MAX);
                    retry_at = now + retry;
                }
            } else {
                retry = 0;
                retry_at = 0; /* nothing wanted: the next kick may ask at once */
            }
        }
        if (rc == TP_OK && now >= hb_due) {
            hb_due = next_heartbeat(f, now);
            rc = tp__fleet_heartbeat(f, &e);
        }
        if (rc != TP_OK) {
            tp__fleet_disconnect(&f->r);
            went_degraded(f);
            retry_at = 0;
        }
    }
    return NULL;
}

void tp__fleet_pause(tp_fleet *f, bool paused)
{
    pthread_mutex_lock(&f->mu);
    f->paused = paused;
    f->kick = true;
    pthread_cond_signal(&f->cv);
    pthread_mutex_unlock(&f->mu);
}

#endif
