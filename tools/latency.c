/* latency.c: see latency.h. Bucket of v us: v < 64 exact; above, octave = msb - 5 and
 * 64 linear steps inside it. */
#include <string.h>

#include "latency.h"

void latency_reset(latency *h)
{
    memset(h, 0, sizeof *h);
}

static int bucket_of(uint64_t v)
{
    if (v < LAT_SUB)
        return (int)v;
    int msb = 63 - __builtin_clzll(v);
    int octave = msb - 5; /* v in [2^msb, 2^(msb+1)) */
    if (octave >= LAT_OCTAVES)
        return LAT_BUCKETS - 1;
    int step = (int)((v >> (msb - 6)) & (LAT_SUB - 1));
    return octave * LAT_SUB + step;
}

static uint64_t bucket_value(int i)
{
    if (i < LAT_SUB)
        return (uint64_t)i;
    int octave = i / LAT_SUB, step = i % LAT_SUB;
    int msb = octave + 5;
    return ((uint64_t)1 << msb) + ((uint64_t)step << (msb - 6));
}

void latency_add(latency *h, int64_t us)
{
    uint64_t v = us < 0 ? 0 : (uint64_t)us;
    h->b[bucket_of(v)]++;
    h->count++;
    h->sum_us += v;
    if (v > h->max_us)
        h->max_us = v;
}

void latency_merge(latency *dst, const latency *src)
{
    dst->count += src->count;
    dst->sum_us += src->sum_us;
    if (src->max_us > dst->max_us)
        dst->max_us = src->max_us;
    for (int i = 0; i < LAT_BUCKETS; i++)
        dst->b[i] += src->b[i];
}

int64_t latency_quantile(const latency *h, double q)
{
    if (h->count == 0)
        return 0;
    uint64_t rank = (uint64_t)(q * (double)h->count);
    if (rank >= h->count)
        rank = h->count - 1;
    uint64_t seen = 0;
    for (int i = 0; i < LAT_BUCKETS; i++) {
        seen += h->b[i];
        if (seen > rank) {
            uint64_t v = bucket_value(i);
            return (int64_t)(v > h->max_us ? h->max_us : v);
        }
    }
    return (int64_t)h->max_us;
}
