/* sync.c: the mutex and condition variable wrappers. Lock failures are programming
 * errors (a corrupted or destroyed mutex) and abort; debug builds track the owner so
 * that functions named *_locked can assert the caller holds the lock. */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base.h"
#include "sync.h"

int tp__mutex_init(tp__mutex *mu)
{
    pthread_mutexattr_t at;
    if (pthread_mutexattr_init(&at) != 0)
        return -1;
#if defined(PTHREAD_MUTEX_ADAPTIVE_NP) && defined(NDEBUG)
    /* Critical sections are a few dozen instructions: spin briefly before sleeping. */
    pthread_mutexattr_settype(&at, PTHREAD_MUTEX_ADAPTIVE_NP);
#elif !defined(NDEBUG)
    pthread_mutexattr_settype(&at, PTHREAD_MUTEX_ERRORCHECK);
#endif
    int rc = pthread_mutex_init(&mu->m, &at);
    pthread_mutexattr_destroy(&at);
#ifndef NDEBUG
    atomic_store(&mu->held, 0);
#endif
    return rc == 0 ? 0 : -1;
}

void tp__mutex_destroy(tp__mutex *mu)
{
    pthread_mutex_destroy(&mu->m);
}

void tp__mutex_lock(tp__mutex *mu)
{
    if (pthread_mutex_lock(&mu->m) != 0)
        abort();
#ifndef NDEBUG
    atomic_store_explicit(&mu->owner, pthread_self(), memory_order_relaxed);
    atomic_store_explicit(&mu->held, 1, memory_order_relaxed);
#endif
}

void tp__mutex_unlock(tp__mutex *mu)
{
#ifndef NDEBUG
    atomic_store_explicit(&mu->held, 0, memory_order_relaxed);
#endif
    if (pthread_mutex_unlock(&mu->m) != 0)
        abort();
}

void tp__mutex_reinit_after_fork(tp__mutex *mu)
{
    memset(mu, 0, sizeof *mu);
    if (tp__mutex_init(mu) != 0)
        abort(); /* nothing else could be done in a fork handler */
}

#ifndef NDEBUG
bool tp__mutex_held(tp__mutex *mu)
{
    return atomic_load_explicit(&mu->held, memory_order_relaxed) &&
           pthread_equal(atomic_load_explicit(&mu->owner, memory_order_relaxed), pthread_self());
}
#endif

int tp__cond_init(pthread_cond_t *cv)
{
    pthread_condattr_t at;
    if (pthread_condattr_init(&at) != 0)
        return -1;
    pthread_condattr_setclock(&at, CLOCK_MONOTONIC);
    int rc = pthread_cond_init(cv, &at);
    pthread_condattr_destroy(&at);
    return rc == 0 ? 0 : -1;
}

void tp__cond_wait_until(pthread_cond_t *cv, tp__mutex *mu, int64_t deadline)
{
#ifndef NDEBUG
    atomic_store_explicit(&mu->held, 0, memory_order_relaxed);
#endif
    if (deadline == TP_DURATION_INFINITE) {
        pthread_cond_wait(cv, &mu->m);
    } else {
        /* Deadlines are on tp_clock_now(); the condition variable waits on
         * CLOCK_MONOTONIC. Convert through the remaining time. */
        int64_t left = deadline - tp_clock_now();
        if (left < 0)
            left = 0;
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        int64_t abs_ns = (int64_t)now.tv_sec * TP_NSEC_PER_SEC + now.tv_nsec;
        abs_ns = tp__saturating_add(abs_ns, left);
        struct timespec ts = {.tv_sec = (time_t)(abs_ns / TP_NSEC_PER_SEC),
                              .tv_nsec = (long)(abs_ns % TP_NSEC_PER_SEC)};
        pthread_cond_timedwait(cv, &mu->m, &ts);
    }
#ifndef NDEBUG
    atomic_store_explicit(&mu->owner, pthread_self(), memory_order_relaxed);
    atomic_store_explicit(&mu->held, 1, memory_order_relaxed);
#endif
}
