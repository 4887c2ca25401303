/* base/timer.h: timers on a binary min-heap (timer.c): insert, move and cancel in
 * O(log n), the earliest in O(1). A timer is embedded in its owner (no allocation per
 * timer; the heap's array grows by doubling). Not thread-safe: the owner of the heap
 * serialises its use (the HTTP engine's loop thread). */
#ifndef TP_BASE_TIMER_H
#define TP_BASE_TIMER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tidepool/errors.h"

typedef struct tp__timer {
    int64_t due; /* tp_clock_now() nanoseconds */
    size_t idx;  /* position in its heap; SIZE_MAX when in none */
} tp__timer;

typedef struct tp__timers {
    tp__timer **h;
    size_t n, cap;
} tp__timers;

/* tp__timer_init: a timer in no heap. */
void tp__timer_init(tp__timer *t);
/* tp__timer_armed: true while t is in a heap. */
static inline bool tp__timer_armed(const tp__timer *t)
{
    return t->idx != SIZE_MAX;
}

void tp__timers_init(tp__timers *ts);
/* tp__timers_free: frees the heap's array (the timers are their owners'). */
void tp__timers_free(tp__timers *ts);
/* tp__timers_reserve: makes room for n armed timers, so that arming up to n never
 * allocates. TP_OK, TP_ENOMEM. */
tp_err tp__timers_reserve(tp__timers *ts, size_t n);
/* tp__timers_set: arms t at due, or moves it there if armed. TP_ENOMEM (t unarmed) if
 * the array cannot grow. */
tp_err tp__timers_set(tp__timers *ts, tp__timer *t, int64_t due);
/* tp__timers_cancel: takes t out of the heap (no-op if unarmed). */
void tp__timers_cancel(tp__timers *ts, tp__timer *t);
/* tp__timers_first: the earliest armed timer, or NULL. */
static inline tp__timer *tp__timers_first(const tp__timers *ts)
{
    return ts->n > 0 ? ts->h[0] : NULL;
}

#endif
