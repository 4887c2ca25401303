/* dns_cache.c: a bounded cache of name lookups, shared by every thread of a client.
 *
 * A pool opens connections in bursts (a cold start, an outage ending, a resize), and
 * each open looks its name up again: under load the resolver sees a storm of
 * identical queries and every open pays a round trip to it. curl keeps answers for 60 s
 * and Java for 30 s; Go's cgo path keeps none. getaddrinfo() does not say an answer's
 * TTL, so the entry lives for the cache's own ttl. A failure that is the resolver's
 * answer (TP_ERESOLVE: no such name, or no address) is kept for a short negative_ttl,
 * so a burst of opens to a bad name costs one lookup, while a recovered resolver is
 * seen soon after; timeouts and local failures are not answers and are never kept.
 *
 * Entries hash by (host, port) into chained buckets and sit on a least recently used
 * list; beyond max_entries the least recently used one goes. One mutex: a lookup hit
 * copies at most 16 addresses under it, far less than the connect it precedes. */
#include <stdio.h>
#include <string.h>

#include "base/list.h"
#include "base/sync.h"
#include "net/net.h"

typedef struct dns_entry {
    struct dns_entry *hnext; /* bucket chain */
    tp__list lru;            /* most recently used at the front */
    uint64_t hash;
    int64_t expires;
    tp_err rc; /* TP_OK: addrs; TP_ERESOLVE: a cached failure, msg says why */
    char msg[TP_ERRMSG_SIZE];
    uint16_t port;
    int naddrs;
    tp__addr *addrs; /* in the same allocation, after host */
    char host[];
} dns_entry;

struct tp__dns_cache {
    tp__dns_cache_options o;
    tp__mutex mu; /* guards everything below */
    dns_entry **buckets;
    size_t nbuckets; /* a power of two */
    size_t entries;
    tp__list lru;
    tp__dns_cache_stats stats;
};

static uint64_t entry_hash(const char *host, uint16_t port)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)host; *p != '\0'; p++)
        h = (h ^ *p) * 1099511628211ULL;
    h = (h ^ (port & 0xff)) * 1099511628211ULL;
    h = (h ^ (port >> 8)) * 1099511628211ULL;
    return h;
}

tp_err tp__dns_cache_create(const tp__dns_cache_options *o, tp__dns_cache **out, tp_errinfo *err)
{
    *out = NULL;
    if (o == NULL || o->ttl <= 0 || o->negative_ttl < 0 || o->max_entries == 0)
        return tp_errinfo_set(err, TP_EINVAL, 0,
                              "dns cache: ttl and max_entries must be positive, "
                              "negative_ttl not negative");
    tp__dns_cache *c = tp__calloc(1, sizeof *c);
    if (c == NULL)
        return tp_errinfo_set(err, TP_ENOMEM, 0, "dns cache: out of memory");
    c->o = *o;
    c->nbuckets = 16;
    while (c->nbuckets < o->max_entries && c->nbuckets < ((size_t)1 << 20))
        c->nbuckets <<= 1;
    c->buckets = tp__calloc(c->nbuckets, sizeof *c->buckets);
    if (c->buckets == NULL || tp__mutex_init(&c->mu) != 0) {
        tp__free(c->buckets);
        tp__free(c);
        return tp_errinfo_set(err, TP_ENOMEM, 0, "dns cache: out of memory");
    }
    tp__list_init(&c->lru);
    *out = c;
    return TP_OK;
}

void tp__dns_cache_destroy(tp__dns_cache *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < c->nbuckets; i++)
        for (dns_entry *e = c->buckets[i], *next; e != NULL; e = next) {
            next = e->hnext;
            tp__free(e);
        }
    tp__free(c->buckets);
    tp__mutex_destroy(&c->mu);
    tp__free(c);
}

/* The bucket slot that points to host:port's entry (or to NULL, where it would go). */
static dns_entry **slot_locked(tp__dns_cache *c, const char *host, uint16_t port, uint64_t h)
{
    dns_entry **pp = &c->buckets[h & (c->nbuckets - 1)];
    while (*pp != NULL &&
           ((*pp)->hash != h || (*pp)->port != port || strcmp((*pp)->host, host) != 0))
        pp = &(*pp)->hnext;
    return pp;
}

static void unlink_locked(tp__dns_cache *c, dns_entry **pp)
{
    dns_entry *e = *pp;
    *pp = e->hnext;
    tp__list_remove(&e->lru);
    c->entries--;
    tp__free(e);
}

bool tp__dns_cache_get(tp__dns_cache *c, const char *host, uint16_t port, int64_t now,
                       tp__addrs *out, tp_err *rc, tp_errinfo *err)
{
    if (c == NULL)
        return false;
    uint64_t h = entry_hash(host, port);
    bool hit = false;
    tp__mutex_lock(&c->mu);
    dns_entry **pp = slot_locked(c, host, port, h);
    dns_entry *e = *pp;
    if (e != NULL && e->expires <= now) {
        unlink_locked(c, pp); /* stale: looked up again */
        e = NULL;
    }
    if (e != NULL) {
        hit = true;
        tp__list_remove(&e->lru);
        tp__list_push_front(&c->lru, &e->lru);
        *rc = e->rc;
        if (e->rc == TP_OK) {
            c->stats.hits++;
            out->n = e->naddrs;
            memcpy(out->a, e->addrs, (size_t)e->naddrs * sizeof *e->addrs);
        } else {
            c->stats.negative_hits++;
            out->n = 0;
            tp_errinfo_set(err, e->rc, 0, "%s (cached for %lld ms)", e->msg,
                           (long long)(c->o.negative_ttl / TP_NSEC_PER_MSEC));
        }
    } else {
        c->stats.misses++;
    }
    tp__mutex_unlock(&c->mu);
    return hit;
}

void tp__dns_cache_put(tp__dns_cache *c, const char *host, uint16_t port, int64_t now, tp_err rc,
                       const tp__addrs *addrs, const tp_errinfo *err)
{
    if (c == NULL || (rc != TP_OK && rc != TP_ERESOLVE) || (rc == TP_OK && addrs->n == 0))
        return;
    if (rc != TP_OK && c->o.negative_ttl == 0)
        return;
    size_t hn = strlen(host) + 1;
    size_t off = sizeof(dns_entry) + hn;
    off = (off + _Alignof(tp__addr) - 1) / _Alignof(tp__addr) * _Alignof(tp__addr);
    int n = rc == TP_OK ? addrs->n : 0;
    dns_entry *e = tp__malloc(off + (size_t)n * sizeof(tp__addr));
    if (e == NULL)
        return; /* a cache that cannot grow only costs a lookup */
    memset(e, 0, sizeof *e);
    memcpy(e->host, host, hn);
    e->addrs = (tp__addr *)(void *)((char *)e + off);
    e->hash = entry_hash(host, port);
    e->port = port;
    e->rc = rc;
    e->naddrs = n;
    e->expires = now + (rc == TP_OK ? c->o.ttl : c->o.negative_ttl);
    if (n > 0)
        memcpy(e->addrs, addrs->a, (size_t)n * sizeof(tp__addr));
    else
        snprintf(e->msg, sizeof e->msg, "%s", err != NULL ? err->msg : "lookup failed");
    tp__mutex_lock(&c->mu);
    dns_entry **pp = slot_locked(c, host, port, e->hash);
    if (*pp != NULL)
        unlink_locked(c, pp); /* the newer answer wins */
    while (c->entries >= c->o.max_entries) {
        dns_entry *old = TP__CONTAINER_OF(c->lru.prev, dns_entry, lru);
        unlink_locked(c, slot_locked(c, old->host, old->port, old->hash));
        c->stats.evictions++;
    }
    pp = slot_locked(c, host, port, e->hash);
    e->hnext = NULL;
    *pp = e;
    tp__list_push_front(&c->lru, &e->lru);
    c->entries++;
    tp__mutex_unlock(&c->mu);
}

void tp__dns_cache_stats_get(tp__dns_cache *c, tp__dns_cache_stats *out)
{
    memset(out, 0, sizeof *out);
    if (c == NULL)
        return;
    tp__mutex_lock(&c->mu);
    *out = c->stats;
    out->entries = c->entries;
    tp__mutex_unlock(&c->mu);
}

tp_err tp__resolve_cached(tp__dns_cache *c, const char *host, uint16_t port, int64_t deadline,
                          tp__addrs *out, bool *cached, tp_errinfo *err)
{
    *cached = false;
    out->n = 0;
    bool literal = host != NULL && tp__is_ip_literal(host);
    tp_err rc;
    if (!literal && host != NULL &&
        tp__dns_cache_get(c, host, port, tp_clock_now(), out, &rc, err)) {
        *cached = true;
        return rc;
    }
    struct addrinfo *ai = NULL;
    rc = tp__resolve_until(host, port, deadline, &ai, err);
    if (ai != NULL) {
        tp__addrs_from_ai(ai, out);
        freeaddrinfo(ai);
    }
    if (!literal)
        tp__dns_cache_put(c, host, port, tp_clock_now(), rc, out, err);
    return rc;
}
