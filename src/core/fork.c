/* fork.c: pools across fork(). A child process must never use a connection it
 * inherited: its bytes would interleave with the parent's on the same socket (a classic
 * way to corrupt a PostgreSQL session), and its goodbye (a TLS close_notify, libpq's
 * Terminate message, a shutdown()) would end the parent's connection.
 *
 * Every pool's lock is guarded (base/fork.h): around fork() the library's handlers
 * lock it, so the child's copy of each pool is consistent, and the child handler bumps
 * the fork generation. A pool whose generation is behind (tp__fork_check) is in a new
 * process: at its first use there it forgets its waiters, opens and leases (their
 * threads are in the parent), closes its idle connections and, later, the leases the
 * child releases, with reason inherited, after pointing each one's socket at /dev/null,
 * so whatever the connector writes on close goes nowhere and nothing reaches the peer
 * (a connector without fd() has its connections forgotten, not closed). The parent's
 * connections stay intact: closing a descriptor in the child leaves the parent's copy
 * open. The scheduled maintenance, which the child's timer thread forgot, is armed
 * again. */
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "pool_internal.h"

static pthread_once_t devnull_once = PTHREAD_ONCE_INIT;
static int devnull = -1; /* opened once, before any fork: children inherit it */

static void devnull_open(void)
{
    devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
}

void tp__fork_register(tp_pool *p)
{
    pthread_once(&devnull_once, devnull_open);
    p->fork_gen = atomic_load(&tp__fork_generation);
    tp__fork_guard_add(&p->fork_guard, &p->mu, TP__RANK_POOL, NULL);
}

void tp__fork_unregister(tp_pool *p)
{
    tp__fork_guard_remove(&p->fork_guard);
}

/* Makes the pool forget c (a lease or a connection being handed over in a thread the
 * child does not have): out of its key, no longer counted; released later, if ever, by
 * tp__conn_abandon(). */
static void forget_locked(tp_pool *p, tp_conn *c)
{
    tp__key *k = c->key;
    uint64_t w = atomic_load(&c->word);
    if (w & TP__CS_LINKED)
        tp__unlink_locked(p, c);
    atomic_store(&c->word, TP__CS_MAKE(TP__CS_GEN(w), 0, TP__CS_INUSE));
    /* Settled before (reset_key_locked): if still set, a parent thread was pushing it
     * when the process forked, and it is on no stack. */
    atomic_store(&c->dqueued, false);
    tp__list_remove(&c->all_link);
    tp__list_init(&c->all_link);
    tp__mux_forget_locked(k, c); /* its streams out are the parent's: abandoned too */
    k->nconns--;
    p->total--;
    c->inherited = true;
    c->tenant = NULL; /* the tenants' counts start again at 0 below */
}

static void reset_key_locked(tp_pool *p, tp__key *k, tp__after *a)
{
    /* Waiters are the parent's threads (or its callbacks, which must not run here). */
    while (!tp__list_empty(&k->waiters)) {
        tp__waiter *w = TP__CONTAINER_OF(k->waiters.next, tp__waiter, link);
        tp__list_remove(&w->link);
        w->queued = false;
        if (w->async)
            tp__free(w); /* a blocking one lives on a parent thread's stack */
    }
    atomic_store(&k->nwaiters, 0);
    k->streams_in_use = k->mux_busy = 0; /* every stream out is a parent thread's */
    tp__list_init(&k->waiting_link);
    p->total -= k->opening;
    k->opening = k->prewarming = 0;
    k->pins = 0;
    k->paced_open = false;
    k->trial_inflight = false;
    tp__idle_settle_locked(p, k); /* pushes finished in the parent are on the stack */
    tp_conn *c;
    while ((c = tp__idle_take_locked(p, k, false)) != NULL)
        tp__conn_close_locked(p, c, TP_CLOSE_INHERITED, a);
    while (!tp__list_empty(&k->conns))
        forget_locked(p, TP__CONTAINER_OF(k->conns.next, tp_conn, all_link));
}

/* A condition variable as new. Not a destroy: that would wait for the parent's
 * waiters, which the child does not have. */
static void reinit_cond(pthread_cond_t *cv)
{
    memset(cv, 0, sizeof *cv);
    (void)tp__cond_init(cv);
}

void tp__pool_forked(tp_pool *p)
{
    tp__after a;
    tp__after_init(&a);
    tp__mutex_lock(&p->mu);
    unsigned gen = atomic_load(&tp__fork_generation);
    if (p->fork_gen == gen) {
        tp__mutex_unlock(&p->mu);
        return;
    }
    p->fork_gen = gen;
    for (size_t i = 0; i < p->nbuckets; i++)
        for (tp__key *k = p->buckets[i]; k != NULL; k = k->hnext)
            reset_key_locked(p, k, &a);
    for (tp__tenant *t = p->tenants; t != NULL; t = t->next) {
        atomic_store(&t->in_use, 0);
        atomic_store(&t->nwaiters, 0);
        while (!tp__list_empty(&t->async_waiters)) { /* the parent's requests */
            tp__waiter *w = TP__CONTAINER_OF(t->async_waiters.next, tp__waiter, link);
            tp__list_remove(&w->link);
            tp__free(w);
        }
        reinit_cond(&t->cv);
    }
    /* Condition variables the parent's threads were waiting on still count those
     * waiters here (destroying one would wait for them forever): start them afresh. */
    reinit_cond(&p->idle_cv);
    atomic_store(&p->waiters_total, 0);
    tp__list_init(&p->waiting_keys);
    tp__list_init(&p->async_queued);
    p->workers = 0;
    p->mjobs = 0;
    p->callbacks = 0;
    tp__maintenance_forked_locked(p);
    tp__after_run(p, &a);
}

bool tp__fork_neutralize(tp_pool *p, tp_conn *c)
{
    if (p->o.connector.fd == NULL)
        return false;
    int fd = p->o.connector.fd(p->o.connector.ctx, c->user);
    if (fd < 0)
        return false;
    /* dup2 swaps the socket for /dev/null in one step: the connector's close then
     * closes /dev/null's copy, and its goodbye (if any) is written there. */
    return devnull >= 0 && dup2(devnull, fd) == fd;
}

void tp__stream_abandon(tp_pool *p, tp_conn *s)
{
    tp_conn *c = s->parent;
    tp__mutex_lock(&p->mu);
    s->parent = NULL;
    s->tenant = NULL;
    tp__conn_recycle_locked(p, s);
    bool last = --c->streams == 0;
    tp__mutex_unlock(&p->mu);
    if (last) /* the connection's last stream in the child: let it go the same way */
        tp__conn_abandon(p, c);
}

void tp__conn_abandon(tp_pool *p, tp_conn *c)
{
    if (tp__fork_neutralize(p, c))
        p->o.connector.close(p->o.connector.ctx, c->user, TP_CLOSE_INHERITED);
    tp__mutex_lock(&p->mu);
    c->inherited = false;
    tp__conn_recycle_locked(p, c);
    tp__mutex_unlock(&p->mu);
}
