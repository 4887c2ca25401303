/* limit_hist.c: the adaptive limit's latency histogram: 16 linear sub-buckets per power
 * of two (the HDR histogram layout), so recording is a shift and a count-leading-zeros
 * and the state needs no allocation. Quantiles are the middle of a bucket. */
#include "limit_internal.h"

#define SUB (1u << TP__ADAPT_SUB_BITS)

unsigned tp__adapt_bucket(int64_t ns)
{
    if (ns < (int64_t)SUB)
        return ns < 0 ? 0u : (unsigned)ns;
    uint64_t v = (uint64_t)ns;
    unsigned e = 63u - (unsigned)__builtin_clzll(v); /* e >= SUB_BITS here */
    unsigned sub = (unsigned)(v >> (e - TP__ADAPT_SUB_BITS)) & (SUB - 1u);
    unsigned i = (e - TP__ADAPT_SUB_BITS + 1u) * SUB + sub;
    return i < TP_ADAPT_HIST_BUCKETS ? i : TP_ADAPT_HIST_BUCKETS - 1u;
}

int64_t tp__adapt_bucket_mid(unsigned i)
{
    if (i < SUB)
        return (int64_t)i;
    unsigned e = i / SUB + TP__ADAPT_SUB_BITS - 1u;
    uint64_t sub = i % SUB;
    uint64_t width = UINT64_C(1) << (e - TP__ADAPT_SUB_BITS);
    uint64_t lo = (SUB + sub) * width;
    return (int64_t)(lo + width / 2u);
}

int64_t tp__adapt_hist_quantile(const uint32_t *hist, uint32_t count, double q)
{
    if (count == 0)
        return 0;
    double r = q * (double)count;
    uint64_t rank = (uint64_t)r;
    if ((double)rank < r)
        rank++;
    if (rank < 1)
        rank = 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < TP_ADAPT_HIST_BUCKETS; i++) {
        seen += hist[i];
        if (seen >= rank)
            return tp__adapt_bucket_mid(i);
    }
    return tp__adapt_bucket_mid(TP_ADAPT_HIST_BUCKETS - 1u);
}
