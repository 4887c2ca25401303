/* hist.c: fixed log-scale histograms of durations. Bucket i holds values up to
 * 1 us * sqrt(2)^i; 64 buckets reach about 35 minutes, the last one is unbounded.
 * Recording is a table lookup, a scan of one cache line and three relaxed stores (or
 * atomic additions when writers share it): cheap enough for every lease. */
#include <limits.h>
#include <stdlib.h>

#include "base.h"
#include "hist.h"

/* upper[i]: inclusive upper bound of bucket i, in ns. Even i: 1000 << i/2; odd i:
 * 1414 << i/2 (1000 * sqrt 2, rounded). A table: the bucket is looked up on every lease. */
_Static_assert(TP_HIST_BUCKETS == 64, "the table below has 64 bounds");
static const int64_t upper[TP_HIST_BUCKETS] = {
#define TP__UP2(h) 1000LL << (h), 1414LL << (h)
    TP__UP2(0),  TP__UP2(1),  TP__UP2(2),  TP__UP2(3),  TP__UP2(4),  TP__UP2(5),
    TP__UP2(6),  TP__UP2(7),  TP__UP2(8),  TP__UP2(9),  TP__UP2(10), TP__UP2(11),
    TP__UP2(12), TP__UP2(13), TP__UP2(14), TP__UP2(15), TP__UP2(16), TP__UP2(17),
    TP__UP2(18), TP__UP2(19), TP__UP2(20), TP__UP2(21), TP__UP2(22), TP__UP2(23),
    TP__UP2(24), TP__UP2(25), TP__UP2(26), TP__UP2(27), TP__UP2(28), TP__UP2(29),
    TP__UP2(30), 1000LL << 31, INT64_MAX,
#undef TP__UP2
};

static int64_t upper_bound(int i)
{
    return upper[i];
}

int64_t tp_histogram_bucket_upper(int i)
{
    if (i < 0)
        return 0;
    return upper_bound(i < TP_HIST_BUCKETS ? i : TP_HIST_BUCKETS - 1);
}

int tp__hist_index(int64_t v)
{
    if (v <= 1000)
        return 0;
    /* The bucket is near 2 * log2(v / 1000): start two below the estimate from the most
     * significant bit and step up (at most a few steps). */
    int msb = 63 - __builtin_clzll((unsigned long long)v);
    int i = 2 * (msb - 10) - 2;
    if (i < 0)
        i = 0;
    if (i > TP_HIST_BUCKETS - 1) /* hours and beyond: the unbounded last bucket */
        i = TP_HIST_BUCKETS - 1;
    while (upper[i] < v) /* upper[last] is INT64_MAX: the walk ends there */
        i++;
    return i;
}

#define SLOT_SHIFT 56
#define SLOT_COUNT (((uint64_t)1 << SLOT_SHIFT) - 1)

/* The full array, allocated by the first writer that needs it. NULL if memory ran out. */
static _Atomic uint64_t *full_array(tp__hist *h, bool shared)
{
    _Atomic uint64_t *f = atomic_load_explicit(&h->full, memory_order_acquire);
    if (f != NULL)
        return f;
    f = tp__calloc(TP_HIST_BUCKETS, sizeof *f);
    if (f == NULL)
        return NULL;
    _Atomic uint64_t *none = NULL;
    if (!shared) {
        atomic_store_explicit(&h->full, f, memory_order_release);
        return f;
    }
    if (atomic_compare_exchange_strong_explicit(&h->full, &none, f, memory_order_acq_rel,
                                                memory_order_acquire))
        return f;
    tp__free(f); /* another writer's won */
    return none;
}

static inline __attribute__((always_inline)) void add1(_Atomic uint64_t *v, uint64_t n,
                                                       bool shared)
{
    if (shared)
        atomic_fetch_add_explicit(v, n, memory_order_relaxed);
    else
        TP__ADD1(*v, n);
}

/* A seventh distinct bucket (or a sixth) with no full array yet: make it, or without
 * memory count in the nearest slot. Out of line: the common add is a leaf, and stays
 * one function's worth of registers. */
static __attribute__((noinline, cold)) void add_spill(tp__hist *h, int i, bool shared)
{
    _Atomic uint64_t *f = full_array(h, shared);
    if (f != NULL) {
        add1(&f[i], 1, shared);
        return;
    }
    /* Out of memory: the nearest bucket held gets it, so count and sum stay exact. */
    int nearest = 0, best = TP_HIST_BUCKETS;
    for (int s = 0; s < TP__HIST_SLOTS; s++) {
        int b = (int)(atomic_load_explicit(&h->slot[s], memory_order_relaxed) >> SLOT_SHIFT) - 1;
        if (abs(b - i) < best) {
            best = abs(b - i);
            nearest = s;
        }
    }
    add1(&h->slot[nearest], 1, shared);
}

/* Inlined into each of the two entry points, so each is specialised for its writers. */
static inline __attribute__((always_inline)) void add(tp__hist *h, int64_t v, bool shared)
{
    if (v < 0)
        v = 0;
    int i = tp__hist_index(v);
    uint64_t tag = (uint64_t)(i + 1) << SLOT_SHIFT;
    add1(&h->count, 1, shared);
    add1(&h->sum, (uint64_t)v, shared);
    /* Spilled already: every bucket has its place there (what the slots hold stays). */
    _Atomic uint64_t *spill = atomic_load_explicit(&h->full, memory_order_acquire);
    if (spill != NULL) {
        add1(&spill[i], 1, shared);
        return;
    }
    for (int s = 0; s < TP__HIST_SLOTS; s++) {
        uint64_t w = atomic_load_explicit(&h->slot[s], memory_order_relaxed);
        if (w == 0) {
            if (!shared) {
                atomic_store_explicit(&h->slot[s], tag | 1, memory_order_relaxed);
                return;
            }
            if (atomic_compare_exchange_strong_explicit(&h->slot[s], &w, tag | 1,
                                                        memory_order_relaxed,
                                                        memory_order_relaxed))
                return;
            /* Another writer took the slot: it is ours too if it took it for bucket i. */
        }
        if ((w & ~SLOT_COUNT) == tag) {
            add1(&h->slot[s], 1, shared);
            return;
        }
    }
    add_spill(h, i, shared);
}

void tp__hist_add(tp__hist *h, int64_t v)
{
    add(h, v, false);
}

void tp__hist_add_shared(tp__hist *h, int64_t v)
{
    add(h, v, true);
}

void tp__hist_fold(tp_histogram *dst, const tp__hist *src)
{
    dst->count += TP__LOAD(src->count);
    dst->sum_ns += TP__LOAD(src->sum);
    for (int s = 0; s < TP__HIST_SLOTS; s++) {
        uint64_t w = TP__LOAD(src->slot[s]);
        if (w != 0)
            dst->buckets[(w >> SLOT_SHIFT) - 1] += w & SLOT_COUNT;
    }
    _Atomic uint64_t *f = atomic_load_explicit(&src->full, memory_order_acquire);
    if (f != NULL)
        for (int i = 0; i < TP_HIST_BUCKETS; i++)
            dst->buckets[i] += TP__LOAD(f[i]);
}

void tp__hist_dispose(tp__hist *h)
{
    tp__free((void *)atomic_load(&h->full));
    *h = (tp__hist){0};
}

int64_t tp_histogram_quantile(const tp_histogram *h, double q)
{
    if (h == NULL || h->count == 0)
        return 0;
    if (q < 0)
        q = 0;
    if (q > 1)
        q = 1;
    double rank = q * (double)h->count;
    uint64_t seen = 0;
    for (int i = 0; i < TP_HIST_BUCKETS; i++) {
        uint64_t n = h->buckets[i];
        if (n == 0)
            continue;
        if ((double)(seen + n) >= rank) {
            /* Interpolate linearly inside the bucket. */
            int64_t lo = i == 0 ? 0 : upper_bound(i - 1);
            int64_t hi = upper_bound(i);
            if (hi == INT64_MAX)
                return lo;
            double frac = (rank - (double)seen) / (double)n;
            if (frac < 0)
                frac = 0;
            return lo + (int64_t)(frac * (double)(hi - lo));
        }
        seen += n;
    }
    return upper_bound(TP_HIST_BUCKETS - 2);
}
