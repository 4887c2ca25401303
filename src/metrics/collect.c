/* collect.c: one render's snapshot of the registered pools, with bounded cardinality
 * (and of the fleet budgets, through fleet.c).
 *
 * Per pool: visit the live keys, turn each key into its label value and group keys by
 * that value (so two keys with the same label can never make a duplicate series); keep
 * the max_keys_per_pool groups with the most acquires; fold the rest into key="other".
 * Counters and histograms of "other" are the pool-wide stats minus the shown groups,
 * so "other" also holds what the pool counted for keys it has reclaimed, and a sum over
 * key equals the pool's own totals. The pool-wide stats are taken after the keys: its
 * counters only grow, so the difference is never negative in practice (it is clamped
 * at 0 anyway, for counts a holder updated while its connection was being merged). */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

typedef struct visit_ctx {
    const tp_metrics_options *o;
    tp__mseries **items; /* groups, in discovery order */
    size_t n, cap;
    size_t *slots; /* open addressing over items' indexes; SIZE_MAX = empty */
    size_t nslots; /* a power of two, at least 2n */
    int64_t breakers_open;
    bool oom;
} visit_ctx;

static uint64_t hash_label(const char *s)
{
    uint64_t h = 1469598103934665603u; /* FNV-1a */
    for (; *s != '\0'; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211u;
    return h;
}

static bool rehash(visit_ctx *v, size_t nslots)
{
    size_t *slots = tp__malloc(nslots * sizeof *slots);
    if (slots == NULL)
        return false;
    for (size_t i = 0; i < nslots; i++)
        slots[i] = SIZE_MAX;
    for (size_t i = 0; i < v->n; i++) {
        size_t j = (size_t)hash_label(v->items[i]->label) & (nslots - 1);
        while (slots[j] != SIZE_MAX)
            j = (j + 1) & (nslots - 1);
        slots[j] = i;
    }
    tp__free(v->slots);
    v->slots = slots;
    v->nslots = nslots;
    return true;
}

/* The group of label, created (zeroed) if new; NULL on out-of-memory. */
static tp__mseries *group_get(visit_ctx *v, const char *label)
{
    if (2 * (v->n + 1) > v->nslots && !rehash(v, v->nslots > 0 ? 2 * v->nslots : 16))
        return NULL;
    size_t j = (size_t)hash_label(label) & (v->nslots - 1);
    for (; v->slots[j] != SIZE_MAX; j = (j + 1) & (v->nslots - 1))
        if (strcmp(v->items[v->slots[j]]->label, label) == 0)
            return v->items[v->slots[j]];
    if (v->n == v->cap) {
        size_t cap = v->cap > 0 ? 2 * v->cap : 16;
        tp__mseries **items = tp__realloc(v->items, cap * sizeof *items);
        if (items == NULL)
            return NULL;
        v->items = items;
        v->cap = cap;
    }
    tp__mseries *g = tp__calloc(1, sizeof *g);
    if (g == NULL)
        return NULL;
    strcpy(g->label, label);
    v->slots[j] = v->n;
    v->items[v->n++] = g;
    return g;
}

/* ---- arithmetic on snapshots -------------------------------------------------------- */

/* *d += s, or with sub *d -= s clamped at 0. */
static void u64_combine(uint64_t *d, uint64_t s, bool sub)
{
    *d = !sub ? *d + s : *d > s ? *d - s : 0;
}

static void hist_combine(tp_histogram *d, const tp_histogram *s, bool sub)
{
    for (int i = 0; i < TP_HIST_BUCKETS; i++)
        u64_combine(&d->buckets[i], s->buckets[i], sub);
    u64_combine(&d->sum_ns, s->sum_ns, sub);
    u64_combine(&d->count, s->count, sub);
}

/* d's counters and histograms += s's (sub: -=, clamped at 0). */
static void counters_combine(tp_stats *d, const tp_stats *s, bool sub)
{
    for (size_t i = 0; i < tp__mcounters_n; i++)
        u64_combine((uint64_t *)(void *)((char *)d + tp__mcounters[i].off),
                    TP__MFIELD_U64(s, &tp__mcounters[i]), sub);
    u64_combine(&d->rejects_busy, s->rejects_busy, sub);
    u64_combine(&d->rejects_breaker, s->rejects_breaker, sub);
    for (int r = 0; r < TP_CLOSE__COUNT; r++)
        u64_combine(&d->closes[r], s->closes[r], sub);
    for (int c = 0; c < TP_GOAWAY_CODES; c++)
        u64_combine(&d->goaways[c], s->goaways[c], sub);
    for (size_t i = 0; i < tp__mhists_n; i++)
        hist_combine((tp_histogram *)(void *)((char *)d + tp__mhists[i].off),
                     TP__MFIELD_HIST(s, &tp__mhists[i]), sub);
}

/* Limits add up over folded keys (the capacity of the group), saturating at
 * TP_UNLIMITED, which also marks "no limit". */
static int64_t limit_add(int64_t a, int64_t b)
{
    if (a < 0 || b < 0)
        return a < 0 ? b : a;
    return a > TP_UNLIMITED - b ? TP_UNLIMITED : a + b;
}

static void gauges_add(tp_stats *d, const tp_stats *s)
{
    d->total += s->total;
    d->idle += s->idle;
    d->in_use += s->in_use;
    d->opening += s->opening;
    d->waiters += s->waiters;
    d->streams_in_use += s->streams_in_use;
    d->stream_capacity += s->stream_capacity;
    d->draining += s->draining;
    d->max_per_key = limit_add(d->max_per_key, s->max_per_key);
    d->max_idle_per_key = limit_add(d->max_idle_per_key, s->max_idle_per_key);
    d->min_idle_per_key = limit_add(d->min_idle_per_key, s->min_idle_per_key);
    d->adaptive_limit += s->adaptive_limit; /* 0 when off, so a sum stays meaningful */
}

/* How bad a breaker state is, for a group of keys: open > half-open > closed. */
static int breaker_rank(tp_breaker_state s)
{
    return s == TP_BREAKER_OPEN ? 2 : s == TP_BREAKER_HALF_OPEN ? 1 : 0;
}

/* ---- visiting ----------------------------------------------------------------------- */

static void on_key(void *ud, const void *key, size_t keylen, const tp_stats *st)
{
    visit_ctx *v = ud;
    if (st->breaker != TP_BREAKER_CLOSED)
        v->breakers_open++;
    if (v->oom)
        return;
    char raw[TP_METRICS_KEY_LABEL_MAX];
    tp_metrics_key_label_fn fn =
        v->o->key_label != NULL ? v->o->key_label : tp_metrics_key_label_default;
    size_t rn = fn(v->o->key_label_ud, key, keylen, raw, sizeof raw);
    char label[TP__MLABEL_CAP];
    tp__mlabel_sanitize(raw, rn < sizeof raw ? rn : sizeof raw, label);
    tp__mseries *g = group_get(v, label);
    if (g == NULL) {
        v->oom = true;
        return;
    }
    if (g->nkeys == 0 || breaker_rank(st->breaker) > breaker_rank(g->st.breaker))
        g->st.breaker = st->breaker;
    gauges_add(&g->st, st);
    counters_combine(&g->st, st, false);
    g->nkeys++;
}

/* Order for choosing the shown groups: most acquires first, then by label. A group whose
 * label is literally "other" always sorts last: it belongs to the "other" series. */
static int by_acquires(const void *a, const void *b)
{
    const tp__mseries *x = *(tp__mseries *const *)a, *y = *(tp__mseries *const *)b;
    bool xo = strcmp(x->label, "other") == 0, yo = strcmp(y->label, "other") == 0;
    if (xo != yo)
        return xo ? 1 : -1;
    if (x->st.acquires != y->st.acquires)
        return x->st.acquires > y->st.acquires ? -1 : 1;
    return strcmp(x->label, y->label);
}

static int by_label(const void *a, const void *b)
{
    return strcmp((*(tp__mseries *const *)a)->label, (*(tp__mseries *const *)b)->label);
}

typedef struct tenant_ctx {
    tp__mtenant *items;
    size_t n, cap;
    bool oom;
} tenant_ctx;

static void on_tenant(void *ud, const char *name, const tp_tenant_stats *st)
{
    tenant_ctx *t = ud;
    if (t->oom)
        return;
    if (t->n == t->cap) {
        size_t cap = t->cap > 0 ? 2 * t->cap : 8;
        tp__mtenant *items = tp__realloc(t->items, cap * sizeof *items);
        if (items == NULL) {
            t->oom = true;
            return;
        }
        t->items = items;
        t->cap = cap;
    }
    tp__mtenant *e = &t->items[t->n++];
    tp__mlabel_sanitize(name, strlen(name), e->label);
    e->st = *st;
}

/* Snapshots one pool into mp (name already set). */
static tp_err take_pool(const tp_metrics_options *o, tp_pool *pool, tp__mpool *mp)
{
    visit_ctx v = {.o = o};
    tp_pool_key_visit(pool, on_key, &v);
    tp_pool_stats(pool, &mp->total);
    tp_pool_options po;
    tp_pool_options_get(pool, &po);
    mp->max_total = po.max_total;
    mp->max_idle_total = po.max_idle_total;
    mp->breakers_open = v.breakers_open;
    tp__free(v.slots);

    tp__mseries *other = v.oom ? NULL : tp__calloc(1, sizeof *other);
    tp__mseries **series = other == NULL ? NULL : tp__malloc((v.n + 1) * sizeof *series);
    if (series == NULL) {
        tp__free(other);
        for (size_t i = 0; i < v.n; i++)
            tp__free(v.items[i]);
        tp__free(v.items);
        return TP_ENOMEM;
    }
    if (v.n > 1)
        qsort(v.items, v.n, sizeof *v.items, by_acquires);
    size_t shown = 0;
    for (size_t i = 0; i < v.n; i++) {
        tp__mseries *g = v.items[i];
        if ((int64_t)shown < o->max_keys_per_pool && strcmp(g->label, "other") != 0) {
            series[shown++] = g;
            continue;
        }
        gauges_add(&other->st, &g->st);
        mp->keys_folded += g->nkeys;
        other->nkeys += g->nkeys;
        tp__free(g);
    }
    tp__free(v.items);
    if (shown > 1)
        qsort(series, shown, sizeof *series, by_label);

    /* "other" = everything the pool counted minus what the shown series show. */
    strcpy(other->label, "other");
    other->other = true;
    counters_combine(&other->st, &mp->total, false);
    for (size_t i = 0; i < shown; i++)
        counters_combine(&other->st, &series[i]->st, true);
    series[shown] = other;
    mp->series = series;
    mp->nseries = shown + 1;

    tenant_ctx t = {0};
    tp_pool_tenant_visit(pool, on_tenant, &t);
    mp->tenants = t.items;
    mp->ntenants = t.n;
    return t.oom ? TP_ENOMEM : TP_OK;
}

tp_err tp__msnap_take_locked(tp_metrics *m, tp__msnap *s)
{
    memset(s, 0, sizeof *s);
    s->bucket_step = m->o.bucket_step;
    if (m->n > 0) {
        s->pools = tp__calloc(m->n, sizeof *s->pools);
        if (s->pools == NULL)
            return TP_ENOMEM;
    }
    for (size_t i = 0; i < m->n; i++) {
        s->pools[i].name = m->entries[i].name;
        s->npools = i + 1;
        if (take_pool(&m->o, m->entries[i].pool, &s->pools[i]) != TP_OK) {
            tp__msnap_free(s);
            return TP_ENOMEM;
        }
    }
    if (tp__mfleets_take_locked(m, s) != TP_OK) {
        tp__msnap_free(s);
        return TP_ENOMEM;
    }
    return TP_OK;
}

void tp__msnap_free(tp__msnap *s)
{
    for (size_t i = 0; i < s->npools; i++) {
        for (size_t j = 0; j < s->pools[i].nseries; j++)
            tp__free(s->pools[i].series[j]);
        tp__free(s->pools[i].series);
        tp__free(s->pools[i].tenants);
    }
    tp__free(s->pools);
    tp__free(s->fleets);
    memset(s, 0, sizeof *s);
}
