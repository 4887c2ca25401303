/* idle.c: the idle list of a key: claiming the most (or least) recently released
 * idle connection under the lock, and dropping links the lock-free path made stale. */
#include <sched.h>
#include <stdio.h>
#include <string.h>

#include "pool_internal.h"

/* ---- idle list ------------------------------------------------------------------ */

void tp__unlink_locked(tp_pool *p, tp_conn *c)
{
    TP__ASSERT_LOCKED(&p->mu);
    tp__list_remove(&c->idle_link);
    c->key->nlinked--;
    p->linked_total--;
}

tp_conn *tp__idle_take_locked(tp_pool *p, tp__key *key)
{
    TP__ASSERT_LOCKED(&p->mu);
    for (;;) {
        /* The list is ordered by the time of linking, but a connection reused and
         * released through a thread hint keeps its old place: choose by idle_since. Drop
         * stale links (hint-claimed connections) on the way. */
        tp_conn *best = NULL;
        int64_t best_t = INT64_MIN;
        tp__list *n = key->idle.next;
        while (n != &key->idle) {
            tp_conn *c = TP__CONTAINER_OF(n, tp_conn, idle_link);
            tp__list *next = n->next;
            uint64_t w = atomic_load(&c->word);
            if (TP__CS_STATE(w) == TP__CS_INUSE) {
                if (atomic_compare_exchange_strong(&c->word, &w, w & ~TP__CS_LINKED))
                    tp__unlink_locked(p, c);
                else
                    continue; /* released meanwhile: look at it again */
            } else if (TP__CS_STATE(w) == TP__CS_IDLE && TP__LOAD(c->idle_since) > best_t) {
                best_t = TP__LOAD(c->idle_since);
                best = c;
            }
            n = next;
        }
        if (best == NULL)
            return NULL;
        uint64_t w = atomic_load(&best->word);
        if (TP__CS_STATE(w) == TP__CS_IDLE &&
            atomic_compare_exchange_strong(&best->word, &w,
                                           TP__CS_MAKE(TP__CS_GEN(w), 0, TP__CS_INUSE))) {
            tp__unlink_locked(p, best);
            return best;
        }
        /* A thread hint claimed it between the scan and the CAS: scan again. */
    }
}

tp_conn *tp__idle_take_lru_locked(tp_pool *p, tp__key *key)
{
    TP__ASSERT_LOCKED(&p->mu);
    for (;;) {
        tp_conn *best = NULL;
        int64_t best_t = INT64_MAX;
        for (tp__list *n = key->idle.next; n != &key->idle; n = n->next) {
            tp_conn *c = TP__CONTAINER_OF(n, tp_conn, idle_link);
            if (TP__CS_STATE(atomic_load(&c->word)) == TP__CS_IDLE &&
                TP__LOAD(c->idle_since) < best_t) {
                best_t = TP__LOAD(c->idle_since);
                best = c;
            }
        }
        if (best == NULL)
            return NULL;
        uint64_t w = atomic_load(&best->word);
        if (TP__CS_STATE(w) == TP__CS_IDLE &&
            atomic_compare_exchange_strong(&best->word, &w,
                                           TP__CS_MAKE(TP__CS_GEN(w), 0, TP__CS_INUSE))) {
            tp__unlink_locked(p, best);
            return best;
        }
    }
}
