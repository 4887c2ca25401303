/* base/hist.h: the histograms behind every tp_histogram snapshot (hist.c): buckets
 * growing by sqrt(2) from 1 us, written by one writer at a time, read by any. */
#ifndef TP_BASE_HIST_H
#define TP_BASE_HIST_H

#include <stdatomic.h>
#include <stdint.h>

#include "tidepool/pool.h"

typedef struct tp__hist {
    _Atomic uint64_t count;
    _Atomic uint64_t sum;
    _Atomic uint64_t b[TP_HIST_BUCKETS];
} tp__hist;

/* tp__hist_index: the bucket of a duration in nanoseconds (negative counts as 0). */
int tp__hist_index(int64_t v);
/* tp__hist_add: records v; the caller serialises writers of h (see TP__ADD1). */
void tp__hist_add(tp__hist *h, int64_t v);
/* tp__hist_add_shared: records v with atomic additions: for a histogram several threads
 * write at once. */
void tp__hist_add_shared(tp__hist *h, int64_t v);
/* tp__hist_fold: adds src into dst (a plain snapshot). */
void tp__hist_fold(tp_histogram *dst, const tp__hist *src);

#endif
