/* limit_internal.h: what the adaptive-limit files share: the fixed log-bucket latency
 * histogram kept inside tp_adapt_state (limit_hist.c). Internal, tp__ names. */
#ifndef TP_ADAPT_LIMIT_INTERNAL_H
#define TP_ADAPT_LIMIT_INTERNAL_H

#include <stdint.h>

#include <tidepool/adapt.h>

/* Sub-buckets per power of two, as a bit count: 16 keeps a bucket within ~6 % of its
 * value, well under the 25 % tolerance the gradient works with. */
#define TP__ADAPT_SUB_BITS 4

/* tp__adapt_bucket: the histogram index of a latency in ns (values beyond the last
 * bucket land in it). Pure. */
unsigned tp__adapt_bucket(int64_t ns);

/* tp__adapt_bucket_mid: a representative value (the middle) of bucket i, in ns. */
int64_t tp__adapt_bucket_mid(unsigned i);

/* tp__adapt_hist_quantile: the q-quantile (0 < q < 1) of the count samples in hist, in
 * ns, as the middle of the bucket holding rank ceil(q count); 0 when count is 0. */
int64_t tp__adapt_hist_quantile(const uint32_t *hist, uint32_t count, double q);

#endif
