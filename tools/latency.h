/* latency.h: a latency histogram for the CLI's benchmarks: log-linear buckets (64 per
 * power of two, about 1 % resolution) from 1 us to about 18 minutes, mergeable, so
 * each worker records without locks and the reporter sums. */
#ifndef TP_TOOLS_LATENCY_H
#define TP_TOOLS_LATENCY_H

#include <stdint.h>

#define LAT_SUB 64
#define LAT_OCTAVES 30
#define LAT_BUCKETS (LAT_SUB * LAT_OCTAVES)

typedef struct latency {
    uint64_t count;
    uint64_t sum_us;
    uint64_t max_us;
    uint32_t b[LAT_BUCKETS];
} latency;

void latency_reset(latency *h);
void latency_add(latency *h, int64_t us);
void latency_merge(latency *dst, const latency *src);
/* latency_quantile: the q-quantile (0..1) in microseconds; 0 when empty. */
int64_t latency_quantile(const latency *h, double q);

#endif
