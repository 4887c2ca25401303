/* internal.h: helpers shared by every file of the library (never installed): the
 * allocation funnel, relaxed single-writer counters, histograms, the random source for
 * jitter and lock assertions. */
#ifndef TP_CORE_INTERNAL_H
#define TP_CORE_INTERNAL_H

#include <assert.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tidepool/tidepool.h"

#define TP__LIKELY(x) __builtin_expect(!!(x), 1)
#define TP__UNLIKELY(x) __builtin_expect(!!(x), 0)
#define TP__MIN(a, b) ((a) < (b) ? (a) : (b))
#define TP__MAX(a, b) ((a) > (b) ? (a) : (b))

/* ---- allocation: every byte the library takes goes through these ---------------- */

void *tp__malloc(const tp_allocator *a, size_t size);
void *tp__calloc(const tp_allocator *a, size_t n, size_t size);
void tp__free(const tp_allocator *a, void *ptr);

/* ---- counters written by one thread at a time, read by any ----------------------- */

/* A relaxed load + store: cheaper than an atomic increment and exact as long as the
 * writers of a counter are serialised (by a lock or by owning the connection). Readers
 * see a value that is at most a few operations old. */
#define TP__ADD1(var, n)                                                                           \
    atomic_store_explicit(&(var), atomic_load_explicit(&(var), memory_order_relaxed) + (n),        \
                          memory_order_relaxed)
#define TP__LOAD(var) atomic_load_explicit(&(var), memory_order_relaxed)

/* ---- histograms ------------------------------------------------------------------- */

typedef struct tp__hist {
    _Atomic uint64_t count;
    _Atomic uint64_t sum;
    _Atomic uint64_t b[TP_HIST_BUCKETS];
} tp__hist;

/* tp__hist_index: the bucket of a duration in nanoseconds (negative counts as 0). */
int tp__hist_index(int64_t v);
/* tp__hist_add: records v; the caller serialises writers of h (see TP__ADD1). */
void tp__hist_add(tp__hist *h, int64_t v);
/* tp__hist_fold: adds src into dst (a plain snapshot). */
void tp__hist_fold(tp_histogram *dst, const tp__hist *src);
/* tp__hist_merge: adds src into dst (both live; dst writers serialised by the caller). */
void tp__hist_merge(tp__hist *dst, const tp__hist *src);

/* ---- randomness for jitter (not for security) ------------------------------------- */

/* tp__rand_unit: a uniform double in [0, 1) from a per-thread xorshift generator. */
double tp__rand_unit(void);

/* ---- lock discipline --------------------------------------------------------------- */

/* A mutex that knows its owner in debug builds, so *_locked functions can assert it. */
typedef struct tp__mutex {
    pthread_mutex_t m;
#ifndef NDEBUG
    _Atomic(pthread_t) owner;
    _Atomic int held;
#endif
} tp__mutex;

int tp__mutex_init(tp__mutex *mu);
void tp__mutex_destroy(tp__mutex *mu);
void tp__mutex_lock(tp__mutex *mu);
void tp__mutex_unlock(tp__mutex *mu);
#ifndef NDEBUG
bool tp__mutex_held(tp__mutex *mu);
#define TP__ASSERT_LOCKED(mu) assert(tp__mutex_held(mu))
#else
#define TP__ASSERT_LOCKED(mu) ((void)(mu)) /* still a use of the pool: no unused warnings */
#endif

/* tp__cond_init: a condition variable on CLOCK_MONOTONIC. */
int tp__cond_init(pthread_cond_t *cv);
/* tp__cond_wait_until: waits on cv until signalled or the tp_clock_now() deadline
 * (TP_DURATION_INFINITE: no deadline). Spurious wake-ups are the caller's to handle. */
void tp__cond_wait_until(pthread_cond_t *cv, tp__mutex *mu, int64_t deadline);

/* tp__saturating_add: a + b for non-negative b, clamped to TP_DURATION_INFINITE. */
static inline int64_t tp__saturating_add(int64_t a, int64_t b)
{
    if (b >= TP_DURATION_INFINITE - a)
        return TP_DURATION_INFINITE;
    return a + b;
}

#endif
