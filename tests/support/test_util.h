/* tests/support/test_util.h: small helpers shared by the unit tests: a monotonic clock
 * of the tests' own (independent of tp_clock_now, so timing assertions do not trust the
 * code under test), sleeping, polling for a condition with a bound, per-key stats
 * look-ups, a watchdog against deadlocks, and thread start/join wrappers.
 *
 * Functions marked "main thread only" use cmocka assertions, which longjmp into the
 * test runner and so must never run on a worker thread. */
#ifndef TP_TEST_UTIL_H
#define TP_TEST_UTIL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <tidepool/tidepool.h>

/* True in a ThreadSanitizer build: its runtime does not support a child that a
 * multi-threaded process forked (it aborts or forbids new threads there). */
#if defined(__SANITIZE_THREAD__)
#define TU_UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TU_UNDER_TSAN 1
#endif
#endif
#ifndef TU_UNDER_TSAN
#define TU_UNDER_TSAN 0
#endif

/* True in an AddressSanitizer build: its allocator's own locks are not taken around
 * fork(), so a child forked while other threads allocate can hang inside malloc there
 * (in the sanitizer's runtime, not in the code under test). */
#if defined(__SANITIZE_ADDRESS__)
#define TU_UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TU_UNDER_ASAN 1
#endif
#endif
#ifndef TU_UNDER_ASAN
#define TU_UNDER_ASAN 0
#endif

/* Milliseconds to nanoseconds, for option fields and timeouts. */
#define MS(x) ((int64_t)(x) * TP_NSEC_PER_MSEC)

/* The tests' own CLOCK_MONOTONIC, in nanoseconds. Thread-safe. */
int64_t tu_now_ns(void);

/* Milliseconds elapsed since start_ns (a tu_now_ns() value), as a double. */
double tu_ms_since(int64_t start_ns);

/* tu_listen_loopback: a listener on the loopback address of family (AF_INET, AF_INET6)
 * on an ephemeral port (*port), with backlog; -1 on failure. */
int tu_listen_loopback(int family, int backlog, uint16_t *port);

/* tu_count_fds: the process's open descriptors (error paths must close what they open),
 * -1 if /proc cannot be read. */
int tu_count_fds(void);

/* Sleeps at least ms milliseconds (restarts on EINTR). Thread-safe. */
void tu_sleep_ms(int64_t ms);
void tu_sleep_ns(int64_t ns);

/* TU_WAIT_UNTIL(ok, cond, timeout_ms): polls cond every 200 us until it is true or
 * timeout_ms passed; ok (a bool lvalue) receives the last value of cond. Polling is used
 * instead of fixed sleeps so that tests are fast on an idle machine and still pass on a
 * loaded one. */
#define TU_WAIT_UNTIL(ok, cond, timeout_ms)                                                  \
    do {                                                                                     \
        int64_t tu_wait_end_ = tu_now_ns() + (int64_t)(timeout_ms) * TP_NSEC_PER_MSEC;      \
        for (;;) {                                                                           \
            if (cond) {                                                                      \
                (ok) = true;                                                                 \
                break;                                                                       \
            }                                                                                \
            if (tu_now_ns() >= tu_wait_end_) {                                               \
                (ok) = (cond);                                                               \
                break;                                                                       \
            }                                                                                \
            tu_sleep_ns(200 * TP_NSEC_PER_USEC);                                             \
        }                                                                                    \
    } while (0)

/* A string key's bytes and length, for the calls that take (key, keylen). */
#define KEY(s) (s), strlen(s)

/* tu_acquire_ex: tp_acquire() for key with a timeout in tp_pool_acquire()'s terms (0: do
 * not wait) and flags. */
static inline tp_err tu_acquire_ex(tp_pool *p, const void *key, size_t keylen, int64_t timeout,
                                   unsigned flags, tp_conn **out, tp_errinfo *err)
{
    tp_acquire_req r = tp_acquire_req_for(key, keylen, timeout, flags);
    return tp_acquire(p, &r, out, err);
}

/* tu_try: an idle connection ready now, or TP_EAGAIN (TP_ACQUIRE_IDLE_ONLY). */
static inline tp_err tu_try(tp_pool *p, const void *key, size_t keylen, tp_conn **out)
{
    tp_acquire_req r = {.key = key, .keylen = keylen, .flags = TP_ACQUIRE_IDLE_ONLY};
    return tp_acquire(p, &r, out, NULL);
}

/* tu_acquire_tenant: tu_acquire_ex() on behalf of tenant (NULL: none). */
static inline tp_err tu_acquire_tenant(tp_pool *p, const char *tenant, const void *key,
                                       size_t keylen, int64_t timeout, unsigned flags,
                                       tp_conn **out, tp_errinfo *err)
{
    tp_acquire_req r = tp_acquire_req_for(key, keylen, timeout, flags);
    r.tenant = tenant;
    return tp_acquire(p, &r, out, err);
}

/* tu_async: tp_acquire_async() in one value for assertions: a negative tp_err, or what
 * was acquired (TP_ACQUIRED_LEASE / _PENDING / _OPEN_SLOT) with the connection or slot in
 * *out and the ticket in *ticket (either may be NULL). */
static inline int tu_async(tp_pool *p, const void *key, size_t keylen, int64_t timeout,
                           unsigned flags, tp_acquire_cb cb, void *ud, tp_conn **out,
                           uint64_t *ticket, tp_errinfo *err)
{
    tp_acquire_req r = tp_acquire_req_for(key, keylen, timeout, flags);
    tp_acquire_result res;
    tp_err rc = tp_acquire_async(p, &r, cb, ud, &res, err);
    if (out != NULL)
        *out = rc == TP_OK ? res.conn : NULL;
    if (ticket != NULL)
        *ticket = rc == TP_OK ? res.ticket : 0;
    return rc != TP_OK ? (int)rc : (int)res.kind;
}

/* Per-key snapshot of a string key; asserts that the key is known. Main thread only. */
void tu_key_stats(tp_pool *p, const char *key, tp_stats *out);

/* Number of waiters queued on a string key, or -1 if the key is not (or no longer)
 * known. Thread-safe (no assertions). */
int64_t tu_key_waiters(tp_pool *p, const char *key);

/* A field of the pool-wide snapshot, for use in TU_WAIT_UNTIL conditions. */
tp_stats tu_pool_stats(tp_pool *p);

/* Arms a watchdog: if the test process is still running after `seconds`, SIGALRM's
 * default action kills it, so a deadlock shows up as a failed test, not a hung run.
 * tu_watchdog(0) disarms it. */
void tu_watchdog(unsigned seconds);

/* Starts a thread; asserts success. Main thread only. */
void tu_thread_start(pthread_t *t, void *(*fn)(void *), void *arg);
/* Joins a thread; asserts success. Main thread only. */
void tu_thread_join(pthread_t t);

/* Creates a pool; asserts TP_OK (printing the error's message otherwise). Main thread
 * only. */
tp_pool *tu_pool_create(const tp_pool_options *o);

/* Acquires a string key; asserts TP_OK (printing the error otherwise). Main thread only. */
tp_conn *tu_acquire(tp_pool *p, const char *key, int64_t timeout);

/* A blocking acquire run on another thread: fill p, key, timeout (and flags), then
 * tu_thread_start(&t, tu_acquire_thread, &job). The thread records the result, the lease
 * and the elapsed time, and sets done last. It makes no assertions. */
typedef struct tu_acq_job {
    tp_pool *p;
    const char *key;
    int64_t timeout;
    unsigned flags; /* TP_ACQUIRE_* */
    tp_err result;
    tp_conn *conn;
    tp_errinfo err;
    int64_t start_ns, end_ns; /* tu_now_ns() around the call */
    atomic_bool done;
} tu_acq_job;

void *tu_acquire_thread(void *arg);

/* Sums the closes-by-reason counters of a snapshot. */
uint64_t tu_closes_total(const tp_stats *st);

#endif
