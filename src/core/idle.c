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

tp_conn *tp__idle_pick_locked(tp_pool *p, tp__key *key, bool newest, const tp_conn *except)
{
    TP__ASSERT_LOCKED(&p->mu);
    /* The list is ordered by the time of linking, but a connection reused and released
     * through a thread hint keeps its old place: choose by idle_since. Drop stale links
     * (hint-claimed connections) on the way. */
    tp_conn *best = NULL;
    int64_t best_t = newest ? INT64_MIN : INT64_MAX;
    tp__list *n = key->idle.next;
    while (n != &key->idle) {
        tp_conn *c = TP__CONTAINER_OF(n, tp_conn, idle_link);
        tp__list *next = n->next;
        uint64_t w = atomic_load(&c->word);
        if (TP__CS_STATE(w) == TP__CS_INUSE) {
            if (!atomic_compare_exchange_strong(&c->word, &w, w & ~TP__CS_LINKED))
                continue; /* released meanwhile: look at it again */
            tp__unlink_locked(p, c);
        } else if (TP__CS_STATE(w) == TP__CS_IDLE && c != except) {
            int64_t t = TP__LOAD(c->idle_since);
            if (newest ? t > best_t : t < best_t) {
                best_t = t;
                best = c;
            }
        }
        n = next;
    }
    return best;
}

bool tp__idle_claim_locked(tp_pool *p, tp_conn *c, int state)
{
    TP__ASSERT_LOCKED(&p->mu);
    uint64_t w = atomic_load(&c->word);
    if (TP__CS_STATE(w) != TP__CS_IDLE)
        return false;
    if (state == TP__CS_INUSE) {
        if (!atomic_compare_exchange_strong(&c->word, &w,
                                            TP__CS_MAKE(TP__CS_GEN(w), 0, TP__CS_INUSE)))
            return false;
        tp__unlink_locked(p, c);
        return true;
    }
    /* RESERVED keeps LINKED: tp__conn_close_locked() unlinks it. */
    return atomic_compare_exchange_strong(&c->word, &w, (w & ~TP__CS_MASK) | (uint64_t)state);
}

tp_conn *tp__idle_take_locked(tp_pool *p, tp__key *key)
{
    for (;;) {
        tp_conn *c = tp__idle_pick_locked(p, key, true, NULL);
        if (c != NULL && tp__idle_claim_locked(p, c, TP__CS_INUSE)) {
            if (p->o.min_idle_per_key > 0) /* below the floor, maybe: warm up now */
                tp__key_due_locked(p, key, tp_clock_now());
            return c;
        }
        if (c == NULL)
            return NULL;
        /* A thread hint claimed it between the scan and the CAS: scan again. */
    }
}

tp_conn *tp__idle_take_lru_locked(tp_pool *p, tp__key *key)
{
    for (;;) {
        tp_conn *c = tp__idle_pick_locked(p, key, false, NULL);
        if (c == NULL || tp__idle_claim_locked(p, c, TP__CS_INUSE))
            return c;
    }
}

tp_conn *tp__idle_pool_lru_locked(tp_pool *p, const tp__key *except_key, const tp_conn *except)
{
    tp_conn *best = NULL;
    for (size_t i = 0; i < p->nbuckets; i++) {
        for (tp__key *k = p->buckets[i]; k != NULL; k = k->hnext) {
            if (k == except_key)
                continue;
            tp_conn *c = tp__idle_pick_locked(p, k, false, except);
            if (c != NULL && (best == NULL || TP__LOAD(c->idle_since) < TP__LOAD(best->idle_since)))
                best = c;
        }
    }
    return best;
}
