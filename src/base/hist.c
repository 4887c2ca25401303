/* hist.c: fixed log-scale histograms of durations. Bucket i holds values up to
 * 1 us * sqrt(2)^i; 64 buckets reach about 35 minutes, the last one is unbounded.
 * Recording is a table lookup, a scan of one cache line and two relaxed stores (or
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
    TP__UP2(0),  TP__UP2(1),  TP__UP2(2),  TP__UP2(3),   TP__UP2(4),  TP__UP2(5),  TP__UP2(6),
    TP__UP2(7),  TP__UP2(8),  TP__UP2(9),  TP__UP2(10),  TP__UP2(11), TP__UP2(12), TP__UP2(13),
    TP__UP2(14), TP__UP2(15), TP__UP2(16), TP__UP2(17),  TP__UP2(18), TP__UP2(19), TP__UP2(20),
    TP__UP2(21), TP__UP2(22), TP__UP2(23), TP__UP2(24),  TP__UP2(25), TP__UP2(26), TP__UP2(27),
    TP__UP2(28), TP__UP2(29), TP__UP2(30), 1000LL << 31, INT64_MAX,
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

/* Counts of buckets [lo, lo + n). prev: the narrower spill this one replaced. Aligned to
 * 16 bytes (as malloc aligns; inside its allocation, mem, if an allocator does not), so
 * that tp__hist.spill carries a tag in its low four bits: 0 for the full array (lo 0,
 * every bucket), lo / RANGE_STEP + 1 for a range, whose start is a multiple of it. */
typedef struct tp__hist_spill {
    void *mem;
    struct tp__hist_spill *prev;
    int lo, n;
    _Atomic uint64_t counts[];
} tp__hist_spill;

#define SPILL_TAG_MASK ((uintptr_t)15)
#define RANGE_STEP 4
_Static_assert((TP_HIST_BUCKETS - TP__HIST_RANGE) / RANGE_STEP + 1 <= 15,
               "a range's start fits the tag");

static inline tp__hist_spill *spill_of(uintptr_t v)
{
    return (tp__hist_spill *)(v & ~SPILL_TAG_MASK);
}

static inline uintptr_t spill_tagged(const tp__hist_spill *sp)
{
    return (uintptr_t)sp | (sp->n == TP_HIST_BUCKETS ? 0 : (uintptr_t)(sp->lo / RANGE_STEP) + 1);
}

static inline __attribute__((always_inline)) void add1(_Atomic uint64_t *v, uint64_t n, bool shared)
{
    if (shared)
        atomic_fetch_add_explicit(v, n, memory_order_relaxed);
    else
        TP__ADD1(*v, n);
}

static int slot_bucket(const tp__hist *h, int s)
{
    return (int)(atomic_load_explicit(&h->slot[s], memory_order_relaxed) >> SLOT_SHIFT) - 1;
}

/* The spill that replaces cur for a value of bucket i: the full array once cur is
 * there (or the buckets seen span more than a range), else a range around them. */
static tp__hist_spill *new_spill(const tp__hist *h, const tp__hist_spill *cur, int i)
{
    int lo = i, hi = i;
    for (int s = 0; cur == NULL && s < TP__HIST_SLOTS; s++) {
        int b = slot_bucket(h, s);
        if (b >= 0) {
            lo = b < lo ? b : lo;
            hi = b > hi ? b : hi;
        }
    }
    int n = TP_HIST_BUCKETS, start = 0;
    if (cur == NULL && hi - lo < TP__HIST_RANGE) {
        /* The room split on both sides, the start a multiple of RANGE_STEP (the tag). */
        int c = lo - (TP__HIST_RANGE - (hi - lo + 1)) / 2;
        c = c < 0 ? 0 : c > TP_HIST_BUCKETS - TP__HIST_RANGE ? TP_HIST_BUCKETS - TP__HIST_RANGE : c;
        start = (c + RANGE_STEP / 2) / RANGE_STEP * RANGE_STEP; /* the nearest step */
        if (start > TP_HIST_BUCKETS - TP__HIST_RANGE || start > lo)
            start -= RANGE_STEP;
        if (start + TP__HIST_RANGE <= hi)
            start += RANGE_STEP;
        if (start <= lo && hi < start + TP__HIST_RANGE)
            n = TP__HIST_RANGE;
        else
            start = 0; /* too wide for a range that starts on a step */
    }
    lo = start;
    size_t size = sizeof(tp__hist_spill) + (size_t)n * sizeof(uint64_t);
    void *mem = tp__calloc(1, size);
    if (mem != NULL && ((uintptr_t)mem & SPILL_TAG_MASK) != 0) {
        /* An allocator that aligns less than malloc must: make room to align. */
        tp__free(mem);
        mem = tp__calloc(1, size + SPILL_TAG_MASK);
    }
    if (mem == NULL)
        return NULL;
    tp__hist_spill *sp = (tp__hist_spill *)(((uintptr_t)mem + SPILL_TAG_MASK) & ~SPILL_TAG_MASK);
    sp->mem = mem;
    sp->prev = (tp__hist_spill *)cur;
    sp->lo = lo;
    sp->n = n;
    return sp;
}

/* A value of bucket i that the newest spill (cur, maybe NULL) has no place for: a
 * wider spill takes it; without memory, the nearest bucket held does, so count and
 * sum stay exact. Out of line: the common add is a leaf, and stays one function's
 * worth of registers. */
static __attribute__((noinline, cold)) void add_spill(tp__hist *h, int i, bool shared)
{
    uintptr_t v = atomic_load_explicit(&h->spill, memory_order_acquire);
    tp__hist_spill *cur = spill_of(v);
    for (;;) {
        if (cur != NULL && (unsigned)(i - cur->lo) < (unsigned)cur->n) {
            add1(&cur->counts[i - cur->lo], 1, shared); /* another writer widened it */
            return;
        }
        tp__hist_spill *sp = new_spill(h, cur, i);
        if (sp == NULL)
            break;
        if (!shared) {
            atomic_store_explicit(&h->spill, spill_tagged(sp), memory_order_release);
            cur = sp;
            continue;
        }
        if (atomic_compare_exchange_strong_explicit(&h->spill, &v, spill_tagged(sp),
                                                    memory_order_acq_rel, memory_order_acquire)) {
            cur = sp;
        } else {
            tp__free(sp->mem); /* another writer's won: v is now theirs */
            cur = spill_of(v);
        }
    }
    if (cur != NULL) { /* out of memory: the nearest bucket of the spill */
        int j = i < cur->lo ? 0 : cur->n - 1;
        add1(&cur->counts[j], 1, shared);
        return;
    }
    int nearest = 0, best = TP_HIST_BUCKETS;
    for (int s = 0; s < TP__HIST_SLOTS; s++) {
        int b = slot_bucket(h, s);
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
    add1(&h->sum, (uint64_t)v, shared);
    /* Spilled already: every value goes to the newest spill (what the slots hold stays). */
    uintptr_t sv = atomic_load_explicit(&h->spill, memory_order_acquire);
    if (sv != 0) {
        /* Where the spill's buckets start is in the tag: its header is not read. */
        uintptr_t st = sv & SPILL_TAG_MASK;
        int lo = st != 0 ? ((int)st - 1) * RANGE_STEP : 0;
        unsigned n = st != 0 ? TP__HIST_RANGE : TP_HIST_BUCKETS;
        if (TP__LIKELY((unsigned)(i - lo) < n))
            add1(&spill_of(sv)->counts[i - lo], 1, shared);
        else
            add_spill(h, i, shared);
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
                                                        memory_order_relaxed, memory_order_relaxed))
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

uint64_t tp__hist_fold(tp_histogram *dst, const tp__hist *src)
{
    uint64_t n = 0;
    dst->sum_ns += TP__LOAD(src->sum);
    for (int s = 0; s < TP__HIST_SLOTS; s++) {
        uint64_t w = TP__LOAD(src->slot[s]);
        if (w != 0) {
            dst->buckets[(w >> SLOT_SHIFT) - 1] += w & SLOT_COUNT;
            n += w & SLOT_COUNT;
        }
    }
    for (const tp__hist_spill *sp =
             spill_of(atomic_load_explicit(&src->spill, memory_order_acquire));
         sp != NULL; sp = sp->prev)
        for (int j = 0; j < sp->n; j++) {
            uint64_t c = TP__LOAD(sp->counts[j]);
            dst->buckets[sp->lo + j] += c;
            n += c;
        }
    dst->count += n;
    return n;
}

void tp__hist_dispose(tp__hist *h)
{
    tp__hist_spill *sp = spill_of(atomic_load(&h->spill));
    while (sp != NULL) {
        tp__hist_spill *prev = sp->prev;
        tp__free(sp->mem);
        sp = prev;
    }
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
