/* hook.c: the fleet's permit hook (tp_permit_hook). It runs under the pools' locks, so it
 * never waits on Redis: it grants against the allowance the fleet's thread keeps (what
 * Redis granted this instance), and when there is none left it says "wait" and wakes the
 * thread to ask for more. Closing gives back at once; the thread returns what is no
 * longer held to Redis on its next round. */
#ifdef TIDEPOOL_HAVE_HIREDIS

#include "fleet_internal.h"

void tp__fleet_kick(tp_fleet *f)
{
    pthread_mutex_lock(&f->mu);
    f->kick = true;
    pthread_cond_signal(&f->cv);
    pthread_mutex_unlock(&f->mu);
}

/* held + 1 while held < limit. */
static bool take_below(tp_fleet *f, int64_t limit)
{
    int64_t h = atomic_load(&f->held);
    while (h < limit)
        if (atomic_compare_exchange_weak(&f->held, &h, h + 1))
            return true;
    return false;
}

static tp_permit take(void *ctx, const void *key, size_t keylen)
{
    (void)key;
    (void)keylen;
    tp_fleet *f = ctx;
    if (atomic_load(&f->degraded)) {
        /* Redis is out of reach: keep what is held, open at most the last share, or
         * what the user chose. */
        switch (f->o.unreachable) {
        case TP_FLEET_FAIL_OPEN:
            atomic_fetch_add(&f->held, 1);
            return TP_PERMIT_GRANTED;
        case TP_FLEET_FAIL_CLOSED:
            return TP_PERMIT_REFUSED;
        default:
            if (take_below(f, atomic_load(&f->share)))
                return TP_PERMIT_GRANTED;
            if (!atomic_exchange(&f->wanted, true))
                atomic_fetch_add(&f->permit_waits, 1);
            return TP_PERMIT_WAIT;
        }
    }
    /* A process stopped past its lease (SIGSTOP, a long pause) may have lost its permits
     * to the others: nothing new until a heartbeat says what is ours. */
    int64_t limit = atomic_load(&f->allowance), ceiling = atomic_load(&f->ceiling);
    if (tp_clock_now() < atomic_load(&f->fresh_until) &&
        take_below(f, limit < ceiling ? limit : ceiling))
        return TP_PERMIT_GRANTED;
    /* The first wait since the thread last asked counts and wakes it; the looks of the
     * same waiters until then do not (they run under the pool's lock). */
    if (!atomic_exchange(&f->wanted, true)) {
        atomic_fetch_add(&f->permit_waits, 1);
        tp__fleet_kick(f);
    }
    return TP_PERMIT_WAIT;
}

static void give(void *ctx, const void *key, size_t keylen)
{
    (void)key;
    (void)keylen;
    tp_fleet *f = ctx;
    atomic_fetch_sub(&f->held, 1);
    tp__fleet_kick(f); /* the surplus goes back to the others */
}

int tp__fleet_pools_hold(tp_fleet *f, tp_pool **pools)
{
    pthread_mutex_lock(&f->mu);
    int n = f->npools;
    for (int i = 0; i < n; i++)
        pools[i] = f->pools[i];
    f->calling++;
    pthread_mutex_unlock(&f->mu);
    return n;
}

void tp__fleet_pools_release(tp_fleet *f)
{
    pthread_mutex_lock(&f->mu);
    if (--f->calling == 0)
        pthread_cond_broadcast(&f->idle);
    pthread_mutex_unlock(&f->mu);
}

/* tp_pool_destroy() of an attached pool: out of the list, and no call of the thread's
 * still on it when this returns. */
static void pool_gone(void *ctx, tp_pool *p)
{
    tp_fleet *f = ctx;
    pthread_mutex_lock(&f->mu);
    for (int i = 0; i < f->npools; i++)
        if (f->pools[i] == p) {
            f->pools[i] = f->pools[--f->npools];
            break;
        }
    while (f->calling > 0)
        pthread_cond_wait(&f->idle, &f->mu);
    pthread_mutex_unlock(&f->mu);
}

void tp__fleet_hook_init(tp_fleet *f)
{
    f->hook = (tp_permit_hook){.ctx = f, .take = take, .give = give, .pool_gone = pool_gone};
}

#endif
