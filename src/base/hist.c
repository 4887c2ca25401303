/* hist.c: fixed log-scale histograms of durations. Bucket i holds values up to
 * 1 us * sqrt(2)^i; 64 buckets reach about 35 minutes, the last one is unbounded.
 * Recording is a table lookup and three relaxed stores: cheap enough for every lease. */
#include <limits.h>

#include "base.h"
#include "hist.h"

/* upper[i]: inclusive upper bound of bucket i, in ns. Even i: 1000 << i/2; odd i:
 * 1414 << i/2 (1000 * sqrt 2, rounded). */
static int64_t upper_bound(int i)
{
    if (i >= TP_HIST_BUCKETS - 1)
        return INT64_MAX;
    int64_t base = (i % 2 == 0) ? 1000 : 1414;
    return base << (i / 2);
}

int64_t tp_histogram_bucket_upper(int i)
{
    if (i < 0)
        return 0;
    return upper_bound(i);
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
    while (i < TP_HIST_BUCKETS - 1 && upper_bound(i) < v)
        i++;
    return i;
}

void tp__hist_add(tp__hist *h, int64_t v)
{
    if (v < 0)
        v = 0;
    int i = tp__hist_index(v);
    TP__ADD1(h->b[i], 1);
    TP__ADD1(h->count, 1);
    TP__ADD1(h->sum, (uint64_t)v);
}

void tp__hist_add_shared(tp__hist *h, int64_t v)
{
    if (v < 0)
        v = 0;
    atomic_fetch_add_explicit(&h->b[tp__hist_index(v)], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum, (uint64_t)v, memory_order_relaxed);
}

void tp__hist_fold(tp_histogram *dst, const tp__hist *src)
{
    dst->count += TP__LOAD(src->count);
    dst->sum_ns += TP__LOAD(src->sum);
    for (int i = 0; i < TP_HIST_BUCKETS; i++)
        dst->buckets[i] += TP__LOAD(src->b[i]);
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
