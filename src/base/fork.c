/* fork.c: the fork handlers of fork.h. The guards live in one list per rank under one
 * lock, which the prepare handler takes first (adding or removing a guard never
 * happens with a guarded mutex held, so that order is safe). */
#include <pthread.h>

#include "base.h"
#include "fork.h"

_Atomic unsigned tp__fork_generation;

static tp__mutex guards_mu;
static tp__list ranks[TP__RANK__COUNT];
static pthread_once_t once = PTHREAD_ONCE_INIT;
static bool ready;

static void prepare(void)
{
    tp__mutex_lock(&guards_mu);
    for (int r = 0; r < TP__RANK__COUNT; r++)
        for (tp__list *n = ranks[r].next; n != &ranks[r]; n = n->next)
            tp__mutex_lock(TP__CONTAINER_OF(n, tp__fork_guard, link)->mu);
}

static void parent(void)
{
    for (int r = TP__RANK__COUNT - 1; r >= 0; r--)
        for (tp__list *n = ranks[r].prev; n != &ranks[r]; n = n->prev)
            tp__mutex_unlock(TP__CONTAINER_OF(n, tp__fork_guard, link)->mu);
    tp__mutex_unlock(&guards_mu);
}

static void child(void)
{
    atomic_fetch_add(&tp__fork_generation, 1);
    for (int r = 0; r < TP__RANK__COUNT; r++)
        for (tp__list *n = ranks[r].next; n != &ranks[r]; n = n->next)
            tp__mutex_reinit_after_fork(TP__CONTAINER_OF(n, tp__fork_guard, link)->mu);
    tp__mutex_reinit_after_fork(&guards_mu);
    for (int r = 0; r < TP__RANK__COUNT; r++) {
        for (tp__list *n = ranks[r].next; n != &ranks[r]; n = n->next) {
            tp__fork_guard *g = TP__CONTAINER_OF(n, tp__fork_guard, link);
            if (g->child != NULL)
                g->child(g);
        }
    }
}

static void init(void)
{
    for (int r = 0; r < TP__RANK__COUNT; r++)
        tp__list_init(&ranks[r]);
    if (tp__mutex_init(&guards_mu) != 0)
        return;
    ready = pthread_atfork(prepare, parent, child) == 0;
}

void tp__fork_guard_add(tp__fork_guard *g, tp__mutex *mu, tp__fork_rank rank,
                        void (*child_hook)(tp__fork_guard *g))
{
    pthread_once(&once, init);
    g->mu = mu;
    g->child = child_hook;
    tp__list_init(&g->link);
    if (!ready)
        return;
    tp__mutex_lock(&guards_mu);
    tp__list_push_back(&ranks[rank], &g->link);
    tp__mutex_unlock(&guards_mu);
}

void tp__fork_guard_remove(tp__fork_guard *g)
{
    if (!ready || g->link.next == NULL || tp__list_empty(&g->link))
        return;
    tp__mutex_lock(&guards_mu);
    tp__list_remove(&g->link);
    tp__list_init(&g->link);
    tp__mutex_unlock(&guards_mu);
}
