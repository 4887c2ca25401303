/* tenant.c: tenant quotas. A tenant may hold at most max leases at once, across keys,
 * so a noisy client of a shared pool cannot take the others' share. The quota is a
 * counter taken before the connection is acquired (with a CAS, no lock) and given back
 * when the lease ends; over the quota an acquire fails at once with TP_EQUOTA or waits on
 * the tenant's condition variable (an asynchronous acquire waits in the tenant's queue
 * and goes on to its key when a place frees). A release that sees waiters (the Dekker pattern
 * again: the waiter publishes nwaiters then rechecks in_use under the lock; the release
 * decrements in_use then reads nwaiters) signals one under the lock, so no wake-up is
 * lost. */
#include <stdio.h>
#include <string.h>

#include "pool_internal.h"

static void serve_async_locked(tp_pool *p, tp__tenant *t, tp__after *a);

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
        tp__list_init(&t->async_waiters);
        t->next = p->tenants;
        p->tenants = t;
    }
    atomic_store(&t->max, max_in_use);
    atomic_store(&t->wait, wait);
    /* A raised quota (or a switch to failing fast) concerns every waiter. */
    pthread_cond_broadcast(&t->cv);
    tp__after a;
    tp__after_init(&a);
    serve_async_locked(p, t, &a);
    if (!wait)
        (void)tp__tenants_expire_locked(p, tp_clock_now(), &a);
    tp__after_run(p, &a);
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

/* Hands places freed in t's quota to its queued asynchronous acquires, oldest first. */
static void serve_async_locked(tp_pool *p, tp__tenant *t, tp__after *a)
{
    while (!tp__list_empty(&t->async_waiters) && quota_take(t)) {
        tp__waiter *w = TP__CONTAINER_OF(t->async_waiters.next, tp__waiter, link);
        tp__tenant_dequeue_locked(w);
        w->quota_held = true;
        tp__async_decide_locked(p, w, a);
    }
}

void tp__tenant_release(tp_pool *p, tp__tenant *t)
{
    atomic_fetch_sub(&t->in_use, 1);
    if (atomic_load(&t->nwaiters) == 0)
        return;
    tp__after a;
    tp__after_init(&a);
    tp__mutex_lock(&p->mu);
    pthread_cond_signal(&t->cv);
    serve_async_locked(p, t, &a);
    tp__after_run(p, &a);
}

tp__tenant *tp__tenant_find(tp_pool *p, const char *name)
{
    tp__mutex_lock(&p->mu);
    tp__tenant *t = find_locked(p, name);
    tp__mutex_unlock(&p->mu);
    return t;
}

static tp_err over_quota_error(tp__tenant *t, tp_err rc, tp_errinfo *err)
{
    if (rc == TP_EQUOTA)
        atomic_fetch_add(&t->rejects, 1);
    return tp_errinfo_set(err, rc, 0,
                          rc == TP_EQUOTA ? "tenant \"%s\" holds %lld of its %lld leases"
                                          : "the pool is closed (tenant \"%s\")",
                          t->name, (long long)atomic_load(&t->in_use),
                          (long long)atomic_load(&t->max));
}

tp_err tp__tenant_take_or_wait(tp_pool *p, tp__tenant *t, int64_t deadline, bool *waited,
                               tp_errinfo *err)
{
    if (quota_take(t))
        return TP_OK;
    if (!atomic_load(&t->wait) || tp_clock_now() >= deadline)
        return over_quota_error(t, TP_EQUOTA, err);
    /* Waits on the pool lock for a place in t's quota until deadline. */
    *waited = true;
    tp__mutex_lock(&p->mu);
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
    tp__mutex_unlock(&p->mu);
    return rc == TP_OK ? TP_OK : over_quota_error(t, rc, err);
}

void tp__tenant_dequeue_locked(tp__waiter *w)
{
    tp__list_remove(&w->link);
    tp__list_remove(&w->alink);
    atomic_fetch_sub(&w->tenant->nwaiters, 1);
    w->on_tenant_queue = false;
}

bool tp__tenant_try_take(tp__tenant *t)
{
    return quota_take(t);
}

tp_err tp__tenant_take_or_queue_locked(tp_pool *p, tp__tenant *t, tp__waiter *w, bool *queued,
                                       tp_errinfo *err)
{
    *queued = false;
    if (quota_take(t)) {
        w->quota_held = true;
        return TP_OK;
    }
    if (!atomic_load(&t->wait) || (w->flags & TP_ACQUIRE_NOWAIT) ||
        tp_clock_now() >= w->deadline)
        return over_quota_error(t, TP_EQUOTA, err);
    tp__list_push_back(&t->async_waiters, &w->link);
    tp__list_push_back(&p->async_queued, &w->alink);
    w->on_tenant_queue = true;
    atomic_fetch_add(&t->nwaiters, 1); /* seq_cst, then look again: no lost wake-up */
    if (quota_take(t)) {
        tp__tenant_dequeue_locked(w);
        w->quota_held = true;
        return TP_OK;
    }
    atomic_fetch_add(&t->waits, 1);
    *queued = true;
    return TP_OK;
}

void tp__tenant_attach(tp__tenant *t, tp_conn *c)
{
    if (t == NULL)
        return;
    atomic_fetch_add(&t->acquires, 1); /* many threads: a real atomic add */
    c->tenant = t;
}

void tp__tenant_giveback(tp_pool *p, tp__tenant *t)
{
    if (t != NULL)
        tp__tenant_release(p, t);
}

int64_t tp__tenants_expire_locked(tp_pool *p, int64_t now, tp__after *a)
{
    TP__ASSERT_LOCKED(&p->mu);
    int64_t next = TP_DURATION_INFINITE;
    for (tp__tenant *t = p->tenants; t != NULL; t = t->next) {
        tp__list *n = t->async_waiters.next;
        while (n != &t->async_waiters) {
            tp__waiter *w = TP__CONTAINER_OF(n, tp__waiter, link);
            n = n->next;
            if (now < w->deadline && atomic_load(&t->wait)) {
                next = TP__MIN(next, w->deadline);
                continue;
            }
            tp__tenant_dequeue_locked(w);
            w->grant = TP__GRANT_FAIL;
            w->err = over_quota_error(t, TP_EQUOTA, &w->info);
            tp__list_push_back(&a->done, &w->done_link);
        }
    }
    return next;
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

void tp__tenants_close_locked(tp_pool *p, tp__after *a)
{
    TP__ASSERT_LOCKED(&p->mu);
    for (tp__tenant *t = p->tenants; t != NULL; t = t->next) {
        pthread_cond_broadcast(&t->cv);
        while (!tp__list_empty(&t->async_waiters)) {
            tp__waiter *w = TP__CONTAINER_OF(t->async_waiters.next, tp__waiter, link);
            tp__tenant_dequeue_locked(w);
            w->grant = TP__GRANT_FAIL;
            w->err = over_quota_error(t, TP_ECLOSED, &w->info);
            tp__list_push_back(&a->done, &w->done_link);
        }
    }
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
