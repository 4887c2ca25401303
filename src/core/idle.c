/* idle.c: the idle list of a key, in the order of release (most recent first): claiming
 * its most or least recently released idle connection under the lock in O(1), settling
 * the connections the lock-free path released at a stale place, and dropping links the
 * lock-free path made stale. */
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

/* Drops c's link if a thread hint holds it (IN_USE, LINKED). False if it was released
 * meanwhile: the caller looks at it again. */
static bool drop_stale_link_locked(tp_pool *p, tp_conn *c, uint64_t w)
{
    if (!atomic_compare_exchange_strong(&c->word, &w, w & ~TP__CS_LINKED))
        return false;
    tp__unlink_locked(p, c);
    return true;
}

void tp__idle_push_displaced(tp__key *k, tp_conn *c)
{
    tp_conn *head = atomic_load_explicit(&k->displaced, memory_order_relaxed);
    do
        c->dnext = head;
    while (!atomic_compare_exchange_weak_explicit(&k->displaced, &head, c, memory_order_release,
                                                  memory_order_relaxed));
}

/* Puts c (IDLE, linked) at its place by idle_since: after every connection released
 * later. Settled connections are the most recent, so the walk is short. */
static void place_locked(tp__key *k, tp_conn *c)
{
    /* Already the head: its release is the newest, and every connection behind it was
     * placed before its previous release, so it stays first. The common case (the
     * connection a key's last acquire took from the head) touches no neighbour. */
    if (c->idle_link.prev == &k->idle)
        return;
    int64_t since = TP__LOAD(c->idle_since);
    tp__list_remove(&c->idle_link);
    tp__list *n = k->idle.next;
    while (n != &k->idle && TP__LOAD(TP__CONTAINER_OF(n, tp_conn, idle_link)->idle_since) > since)
        n = n->next;
    tp__list_push_front(n->prev, &c->idle_link); /* before n */
}

void tp__idle_settle_locked(tp_pool *p, tp__key *k)
{
    TP__ASSERT_LOCKED(&p->mu);
    if (atomic_load_explicit(&k->displaced, memory_order_relaxed) == NULL)
        return;
    tp_conn *d = atomic_exchange_explicit(&k->displaced, NULL, memory_order_acquire);
    /* Oldest push first, so that later releases end up nearer the head. dnext is ours
     * while dqueued is set: reverse the stack before clearing any flag. */
    tp_conn *rev = NULL;
    while (d != NULL) {
        tp_conn *next = d->dnext;
        d->dnext = rev;
        rev = d;
        d = next;
    }
    while (rev != NULL) {
        tp_conn *c = rev;
        rev = c->dnext;
        /* From here a new lock-free release of c pushes it again. Clearing before the
         * state is read below is what makes this exact: a release that saw the flag
         * still set (and did not push) has published IDLE before our read, and is
         * placed here, or has not, and then its CAS fails on the link we drop. */
        atomic_store(&c->dqueued, false);
        for (;;) {
            uint64_t w = atomic_load(&c->word);
            if (!(w & TP__CS_LINKED))
                break; /* the slow path linked or will link it afresh */
            if (TP__CS_STATE(w) == TP__CS_IDLE)
                place_locked(k, c);
            else if (TP__CS_STATE(w) == TP__CS_INUSE && !drop_stale_link_locked(p, c, w))
                continue;
            break; /* RESERVED: a health check has it and puts it back where it was */
        }
    }
}

/* The first IDLE connection from the head (newest) or the tail, dropping stale links
 * met on the way (each is dropped once, so the cost is amortised O(1)). */
tp_conn *tp__idle_pick_locked(tp_pool *p, tp__key *key, bool newest, const tp_conn *except)
{
    TP__ASSERT_LOCKED(&p->mu);
    tp__idle_settle_locked(p, key);
    tp__list *n = newest ? key->idle.next : key->idle.prev;
    while (n != &key->idle) {
        tp_conn *c = TP__CONTAINER_OF(n, tp_conn, idle_link);
        tp__list *next = newest ? n->next : n->prev;
        uint64_t w = atomic_load(&c->word);
        if (TP__CS_STATE(w) == TP__CS_INUSE) {
            if (!drop_stale_link_locked(p, c, w))
                continue; /* released meanwhile: look at it again */
        } else if (TP__CS_STATE(w) == TP__CS_IDLE && c != except) {
            return c;
        }
        n = next;
    }
    return NULL;
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

/* Claims c (IDLE) as IN_USE but leaves it in the list: a stale link, which its holder's
 * release makes good without the lock (the displaced stack puts it back at the head) and
 * which anyone else picking meets as IN_USE and drops. */
static bool claim_keep_link_locked(tp_conn *c)
{
    uint64_t w = atomic_load(&c->word);
    return TP__CS_STATE(w) == TP__CS_IDLE &&
           atomic_compare_exchange_strong(&c->word, &w, (w & ~TP__CS_MASK) | TP__CS_INUSE);
}

tp_conn *tp__idle_take_locked(tp_pool *p, tp__key *key, bool keep_link)
{
    for (;;) {
        tp_conn *c = tp__idle_pick_locked(p, key, true, NULL);
        if (c != NULL && (keep_link ? claim_keep_link_locked(c)
                                    : tp__idle_claim_locked(p, c, TP__CS_INUSE))) {
            if (p->o.min_idle_per_key > 0) /* below the floor, maybe: warm up now */
                tp__key_due_locked(p, key, tp_clock_now());
            return c;
        }
        if (c == NULL)
            return NULL;
        /* A thread hint claimed it between the pick and the CAS: pick again. */
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
