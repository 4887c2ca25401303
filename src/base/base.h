/* base/base.h: what every file of the library may use (never installed): branch hints,
 * min/max, relaxed single-writer counters, saturating deadline arithmetic, the
 * allocation funnel (alloc.c) and the random source for jitter (rand.c). The other base
 * headers: sync.h (the checked mutex, condition variables), hist.h (histograms), list.h
 * (intrusive lists), buf.h (the one growable buffer), workq.h (the worker threads and
 * their timed jobs), timer.h (the timer heap), fork.h (the fork handlers). base/ uses
 * no other folder of src/; every other folder may use base/. */
#ifndef TP_BASE_BASE_H
#define TP_BASE_BASE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tidepool/tidepool.h"

#define TP__LIKELY(x) __builtin_expect(!!(x), 1)
/* TP__PREFETCH: asks for the cache line at p (read, or write with w = 1) ahead of use;
 * never faults, so a stale address costs nothing but the fetch. */
#define TP__PREFETCH(p, w) __builtin_prefetch((p), (w), 3)
#define TP__UNLIKELY(x) __builtin_expect(!!(x), 0)
#define TP__MIN(a, b) ((a) < (b) ? (a) : (b))
#define TP__MAX(a, b) ((a) > (b) ? (a) : (b))

/* A non-blocking step that must wait for its descriptor (net/, the HTTP engine): not an
 * error, so not a tp_err, and never returned by a public call. */
#define TP_PENDING 1

/* ---- allocation (alloc.c): every byte the library takes goes through these ------- */

/* As their C library namesakes, through tp_set_allocator()'s allocator. A size of 0
 * asks for 1 byte. Free with tp__free (tp_free for the caller). */
void *tp__malloc(size_t size);
void *tp__calloc(size_t n, size_t size);
void *tp__realloc(void *ptr, size_t size);
void tp__free(void *ptr);
char *tp__strdup(const char *s);
char *tp__strndup(const char *s, size_t n);
/* tp__asprintf: a new formatted string, or NULL. */
char *tp__asprintf(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;

/* For the out-of-memory tests: tp__alloc_torture(n) restarts the count of allocations
 * and makes the n-th from now fail (0: none, count only); tp__alloc_count() is how many
 * were asked for since, tp__alloc_failures() how many were failed on purpose, and
 * tp__alloc_live() how many blocks the library holds (OpenSSL's own not counted). */
void tp__alloc_torture(int64_t fail_at);
int64_t tp__alloc_count(void);
int64_t tp__alloc_failures(void);
int64_t tp__alloc_live(void);

/* ---- counters written by one thread at a time, read by any ----------------------- */

/* A relaxed load + store: cheaper than an atomic increment and exact as long as the
 * writers of a counter are serialised (by a lock or by owning the connection). Readers
 * see a value that is at most a few operations old. */
#define TP__ADD1(var, n)                                                                           \
    atomic_store_explicit(&(var), atomic_load_explicit(&(var), memory_order_relaxed) + (n),        \
                          memory_order_relaxed)
#define TP__LOAD(var) atomic_load_explicit(&(var), memory_order_relaxed)

/* ---- randomness for jitter, not for security (rand.c) ------------------------------ */

/* tp__rand_unit: a uniform double in [0, 1) from a per-thread xorshift generator. */
double tp__rand_unit(void);

/* tp__saturating_add: a + b for non-negative b, clamped to TP_DURATION_INFINITE. */
static inline int64_t tp__saturating_add(int64_t a, int64_t b)
{
    if (b >= TP_DURATION_INFINITE - a)
        return TP_DURATION_INFINITE;
    return a + b;
}

#endif
