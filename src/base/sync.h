/* base/sync.h: the checked mutex (it knows its owner in debug builds, so *_locked
 * functions can assert it) and condition variables on CLOCK_MONOTONIC (sync.c). */
#ifndef TP_BASE_SYNC_H
#define TP_BASE_SYNC_H

#include <assert.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

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
/* tp__mutex_reinit_after_fork: in a child's pthread_atfork handler, a mutex the fork
 * handlers locked becomes a new, unlocked one (unlocking would fail there: an
 * error-checking mutex's owner is the parent thread's id, not the child's). */
void tp__mutex_reinit_after_fork(tp__mutex *mu);
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

#endif
