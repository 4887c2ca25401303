/* hint.c: the thread hint, the lock-free reuse path. A thread that releases a
 * connection and asks for the same key again gets it back with one CAS on the
 * connection's state word and no lock. */
#include <sched.h>
#include <stdio.h>
#include <string.h>

#include "pool_internal.h"

/* ---- thread hint: the connection this thread released last ------------------------ */

/* A thread that releases a connection and acquires the same key again gets the same
 * connection back with one CAS and no lock: the common case of a request loop. The hint
 * is only a guess; the CAS on (generation, LINKED, IDLE) decides. Connection structs
 * are never freed while their pool lives, and the pool id rules out a new pool at the
 * address of a destroyed one, so following the hint never touches freed memory. */
static _Thread_local __attribute__((tls_model("initial-exec"))) struct {
    tp_pool *pool;
    uint64_t pool_id;
    tp_conn *conn;
    uint64_t gen;
    size_t keylen;
    uint64_t prefix; /* the key's first 8 bytes (zero-padded): a cheap pre-check */
} hint;

static uint64_t key_prefix(const void *key, size_t keylen)
{
    uint64_t w = 0;
    if (keylen >= 8)
        memcpy(&w, key, 8);
    else if (keylen > 0)
        memcpy(&w, key, keylen);
    return w;
}

void tp__hint_set(tp_pool *p, tp_conn *c, uint64_t gen)
{
    if (hint.conn == c && hint.gen == gen && hint.pool == p && hint.pool_id == p->id)
        return; /* a request loop: the hint names this life of c already */
    hint.pool = p;
    hint.pool_id = p->id;
    hint.conn = c;
    hint.gen = gen;
    hint.keylen = c->key->keylen;
    hint.prefix = key_prefix(c->key->bytes, c->key->keylen);
}

/* No hash on this path: the hint is checked by length and prefix, then the claimed
 * connection's key is compared in full (it must be anyway: equal hashes are possible). */
tp_conn *tp__hint_claim(tp_pool *p, const void *key, size_t keylen)
{
    if (hint.pool != p || hint.pool_id != p->id || hint.keylen != keylen ||
        hint.prefix != key_prefix(key, keylen))
        return NULL;
    tp_conn *c = hint.conn;
    uint64_t expect = TP__CS_MAKE(hint.gen, TP__CS_LINKED, TP__CS_IDLE);
    uint64_t want = TP__CS_MAKE(hint.gen, TP__CS_LINKED, TP__CS_INUSE);
    if (!atomic_compare_exchange_strong(&c->word, &expect, want))
        return NULL;
    /* We own it now, so its key is alive. If the keys differ, give it back exactly as
     * it was (IDLE, LINKED unless the slow path unlinked it meanwhile, which it may do
     * to an in-use connection; then it must be relinked under the lock). */
    tp__key *k = c->key;
    if (TP__LIKELY(keylen <= 8 || memcmp(k->bytes, key, keylen) == 0))
        return c;
    uint64_t w = want;
    if (atomic_compare_exchange_strong(&c->word, &w, expect))
        return NULL;
    tp__mutex_lock(&p->mu);
    tp__list_push_front(&k->idle, &c->idle_link);
    k->nlinked++;
    p->linked_total++;
    atomic_store(&c->word, expect);
    tp__mutex_unlock(&p->mu);
    return NULL;
}
