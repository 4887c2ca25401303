/* base/hist.h: the histograms behind every tp_histogram snapshot (hist.c): buckets
 * growing by sqrt(2) from 1 us, written by one writer at a time or by several with
 * atomic additions, read by any.
 *
 * 56 bytes each (two fit a key's statistics lines with two counters): a key keeps four,
 * and a pool may hold 100,000 keys. No count of its own: a snapshot adds up the buckets,
 * and a value costs one atomic addition less (a reuse records two). The durations one key sees fall in a few buckets, so
 * the first TP__HIST_SLOTS distinct buckets live in slots inside the struct. A histogram that meets more allocates a
 * spill: first one of TP__HIST_RANGE buckets around those it has seen (a factor of 256
 * in duration, 144 bytes), and only when a value falls outside it, the full array
 * (every bucket). From the first spill on every value is counted in the newest spill,
 * without a look at the slots; a spill replaced by a wider one is kept and still read,
 * so nothing counted is lost and no reader ever meets freed memory. */
#ifndef TP_BASE_HIST_H
#define TP_BASE_HIST_H

#include <stdatomic.h>
#include <stdint.h>

#include "tidepool/pool.h"

#define TP__HIST_SLOTS 5
#define TP__HIST_RANGE 16

struct tp__hist_spill;

typedef struct tp__hist {
    _Atomic uint64_t sum;
    /* slot: (bucket + 1) << 56 | count; 0 while unused. Slots fill in order and never
       change bucket, so writers agree on which slot a bucket has. */
    _Atomic uint64_t slot[TP__HIST_SLOTS];
    /* the newest spill, once a sixth distinct bucket was met (0 before), with where its
       buckets start in its low bits (hist.c): a value is counted without reading the
       spill's header, one dependent cache miss fewer */
    _Atomic uintptr_t spill;
} tp__hist;

/* tp__hist_index: the bucket of a duration in nanoseconds (negative counts as 0). */
int tp__hist_index(int64_t v);
/* tp__hist_add: records v; the caller serialises writers of h (see TP__ADD1). */
void tp__hist_add(tp__hist *h, int64_t v);
/* tp__hist_add_shared: records v with atomic additions: for a histogram several threads
 * write at once. */
void tp__hist_add_shared(tp__hist *h, int64_t v);
/* tp__hist_fold: adds src into dst (a plain snapshot); its count is what the buckets
 * hold. Returns how many values src held. */
uint64_t tp__hist_fold(tp_histogram *dst, const tp__hist *src);
/* tp__hist_dispose: frees what h allocated (h itself is the caller's); h reads as empty
 * afterwards. No writer or reader may use h meanwhile. */
void tp__hist_dispose(tp__hist *h);

#endif
