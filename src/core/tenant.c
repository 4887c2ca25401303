/* tenant.c: tenant quotas. A tenant may hold at most max leases at once, across keys,
 * so a noisy client of a shared pool cannot take the others' share. The quota is a
 * counter taken before the connection is acquired (with a CAS, no lock) and given back
 * when the lease ends; over the quota an acquire fails at once with TP_EQUOTA or waits on
 * the tenant's condition variable. A release that sees waiters (the Dekker pattern
 * again: the waiter publishes nwaiters then rechecks in_use under the lock; the release
 * decrements in_use then reads nwaiters) signals one under the lock, so no wake-up is
 * lost. */
#include <stdio.h>
#include <string.h>

#include "pool_internal.h"

static tp__tenant *find_locked(tp_pool *p, const char *name)
{
    TP__ASSERT_LOCKED(&p->mu);
    for (tp__tenant *t = p->tenants; t != NULL; t = t->next)
        if (strcmp(t->name, name) == 0)
            return t;
    return NULL;
}

tp_err tp_pool_tenant_set(tp_pool *p, const char *name, int64_t max_in_use, bool wait)
{
    if (p == NULL || name == NULL || name[0] == '\0' ||
        strlen(name) >= sizeof(((tp__tenant *)0)->name))
        return TP_EINVAL;
    if (max_in_use < 0)
        return TP_EINVAL;
    tp__fork_check(p);
    tp__mutex_lock(&p->mu);
    tp__tenant *t = find_locked(p, name);
    if (t == NULL) {
        t = tp__calloc(1, sizeof *t);
        if (t == NULL) {
            tp__mutex_unlock(&p->mu);
            return TP_ENOMEM;
        }
        if (tp__cond_init(&t->cv) != 0) {
            tp__free(t);
            tp__mutex_unlock(&p->mu);
            return TP_ESYS;
        }
        snprintf(t->name, sizeof t->name, "%s", name);
        t->next = p->tenants;
        p->tenants = t;
    }
    atomic_store(&t->max, max_in_use);
    atomic_store(&t->wait, wait);
    /* A raised quota (or a switch to failing fast) concerns every waiter. */
    pthread_cond_broadcast(&t->cv);
    tp__mutex_unlock(&p->mu);
    return TP_OK;
}

/* Takes a place in t's quota if one is free. */
static bool quota_take(tp__tenant *t)
{
    int64_t v = atomic_load(&t->in_use);
    while (v < atomic_load(&t->max))
        if (atomic_compare_exchange_weak(&t->in_use, &v, v + 1))
            return true;
    return false;
}

void tp__tenant_release(tp_pool *p, tp__tenant *t)
{
    atomic_fetch_sub(&t->in_use, 1);
    if (atomic_load(&t->nwaiters) == 0)
        return;
    tp__mutex_lock(&p->mu);
    pthread_cond_signal(&t->cv);
    tp__mutex_unlock(&p->mu);
}

/* Waits on the pool lock for a place in t's quota until deadline. */
static tp_err quota_wait_locked(tp_pool *p, tp__tenant *t, int64_t deadline)
{
    atomic_fetch_add(&t->nwaiters, 1);
    atomic_fetch_add(&t->waits, 1);
    tp_err rc = TP_EQUOTA;
    for (;;) {
        if (atomic_load(&p->closed)) {
            rc = TP_ECLOSED;
            break;
        }
        if (quota_take(t)) {
            rc = TP_OK;
            break;
        }
        if (!atomic_load(&t->wait) || tp_clock_now() >= deadline)
            break;
        tp__cond_wait_until(&t->cv, &p->mu, deadline);
    }
    atomic_fetch_sub(&t->nwaiters, 1);
    return rc;
}

tp_err tp_pool_acquire_tenant(tp_pool *p, const char *name, const void *key, size_t keylen,
                              int64_t timeout, unsigned flags, tp_conn **out, tp_errinfo *err)
{
    if (name == NULL)
        return tp_pool_acquire_ex(p, key, keylen, timeout, flags, out, err);
    tp_err rc = tp__acquire_check_args(p, key, keylen, out, err);
    if (rc != TP_OK)
        return rc;
    if (timeout == TP_DURATION_DEFAULT)
        timeout = p->o.acquire_timeout;
    if (timeout < 0)
        return tp_errinfo_set(err, TP_EINVAL, 0, "timeout: %lld is negative", (long long)timeout);
    int64_t start = tp_clock_now();
    int64_t deadline = tp__saturating_add(start, timeout);
    tp__mutex_lock(&p->mu);
    tp__tenant *t = find_locked(p, name);
    if (t == NULL) {
        tp__mutex_unlock(&p->mu);
        return tp_errinfo_set(err, TP_EINVAL, 0, "tenant \"%s\" is unknown: set its quota first",
                              name);
    }
    tp__mutex_unlock(&p->mu);
    if (!quota_take(t)) {
        rc = TP_EQUOTA;
        if (atomic_load(&t->wait) && timeout > 0) {
            tp__mutex_lock(&p->mu);
            rc = quota_wait_locked(p, t, deadline);
            tp__mutex_unlock(&p->mu);
        }
        if (rc != TP_OK) {
            if (rc == TP_EQUOTA)
                atomic_fetch_add(&t->rejects, 1);
            return tp_errinfo_set(err, rc, 0,
                                  rc == TP_EQUOTA ? "tenant \"%s\" holds %lld of its %lld leases"
                                                  : "the pool is closed (tenant \"%s\")",
                                  name, (long long)atomic_load(&t->in_use),
                                  (long long)atomic_load(&t->max));
        }
    }
    int64_t left = deadline == TP_DURATION_INFINITE ? TP_DURATION_INFINITE
                                                    : TP__MAX(deadline - tp_clock_now(), 0);
    rc = tp_pool_acquire_ex(p, key, keylen, timeout == 0 ? 0 : left, flags, out, err);
    if (rc != TP_OK) {
        tp__tenant_release(p, t);
        return rc;
    }
    atomic_fetch_add(&t->acquires, 1); /* many threads: a real atomic add */
    (*out)->tenant = t;
    return TP_OK;
}

static void fill(const tp__tenant *t, tp_tenant_stats *st)
{
    st->in_use = atomic_load(&t->in_use);
    st->max_in_use = atomic_load(&t->max);
    st->waiters = atomic_load(&t->nwaiters);
    st->acquires = atomic_load(&t->acquires);
    st->rejects = atomic_load(&t->rejects);
    st->waits = atomic_load(&t->waits);
}

tp_err tp_pool_tenant_stats(tp_pool *p, const char *name, tp_tenant_stats *out)
{
    if (p == NULL || name == NULL || out == NULL)
        return TP_EINVAL;
    tp__mutex_lock(&p->mu);
    tp__tenant *t = find_locked(p, name);
    if (t != NULL)
        fill(t, out);
    tp__mutex_unlock(&p->mu);
    return t != NULL ? TP_OK : TP_EINVAL;
}

void tp_pool_tenant_visit(tp_pool *p, tp_tenant_visit_fn fn, void *ud)
{
    if (p == NULL || fn == NULL)
        return;
    /* Tenants are never freed while the pool lives: walk the list without the lock held
     * during the callbacks (new tenants are pushed at the head, so the walk is safe). */
    tp__mutex_lock(&p->mu);
    tp__tenant *head = p->tenants;
    tp__mutex_unlock(&p->mu);
    for (tp__tenant *t = head; t != NULL; t = t->next) {
        tp_tenant_stats st;
        fill(t, &st);
        fn(ud, t->name, &st);
    }
}

void tp__tenants_close_locked(tp_pool *p)
{
    TP__ASSERT_LOCKED(&p->mu);
    for (tp__tenant *t = p->tenants; t != NULL; t = t->next)
        pthread_cond_broadcast(&t->cv);
}

void tp__tenants_free_locked(tp_pool *p)
{
    while (p->tenants != NULL) {
        tp__tenant *t = p->tenants;
        p->tenants = t->next;
        pthread_cond_destroy(&t->cv);
        tp__free(t);
    }
}
