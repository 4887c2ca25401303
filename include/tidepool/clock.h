/* tidepool/clock.h: durations, sentinels and the library's monotonic clock.
 *
 * Every duration in tidepool is an int64_t count of nanoseconds. Zero means zero;
 * "infinite" and "use the default" are named sentinels, never 0 or -1 by accident. */
#ifndef TIDEPOOL_CLOCK_H
#define TIDEPOOL_CLOCK_H

#include <stdint.h>
#include "errors.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TP_NSEC_PER_USEC INT64_C(1000)
#define TP_NSEC_PER_MSEC INT64_C(1000000)
#define TP_NSEC_PER_SEC INT64_C(1000000000)

/* A duration that never expires (no timeout, no lifetime cap). */
#define TP_DURATION_INFINITE INT64_MAX
/* "Use the pool's configured value" where a call takes an optional duration. */
#define TP_DURATION_DEFAULT INT64_C(-1)
/* A size limit that does not apply (for int64_t limits such as max_total). */
#define TP_UNLIMITED INT64_MAX
/* max_idle_per_key's default: the same as max_per_key, whatever that is set to (a pool
 * that closes what it just opened churns). */
#define TP_FOLLOW_MAX_PER_KEY INT64_C(-16)

/* tp_clock_now: the library's monotonic clock, in nanoseconds from an arbitrary origin.
 * It never goes backwards and never follows wall-clock changes. Deadlines passed to a
 * connector's open() are on this clock. Thread-safe; cheap (no system call on x86-64
 * with an invariant TSC; CLOCK_MONOTONIC otherwise, or when TIDEPOOL_CLOCK=monotonic). */
TP_EXTERN int64_t tp_clock_now(void);

/* tp_deadline_after: tp_clock_now() + d, saturating at TP_DURATION_INFINITE (d >= 0). */
TP_EXTERN int64_t tp_deadline_after(int64_t d);

#ifdef __cplusplus
}
#endif
#endif
