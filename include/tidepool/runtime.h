/* tidepool/runtime.h: the library's own threads.
 *
 * Blocking work the library does off its callers' threads (opening a connection for an
 * asynchronous acquire that the caller does not open itself; a host name lookup bounded
 * by a deadline) runs on a fixed set of worker threads fed by a bounded queue, like
 * libuv's thread pool. One timer thread runs every pool's maintenance (maintenance_thread
 * set): a timer heap holds each pool's next due time, and the pass runs when it comes
 * due, handing its opens and probes to the workers, one job each, so a slow connect
 * never delays another pool's pass. No pool has a thread of its own: a process with a
 * hundred pools has the workers and the timer thread. The timer thread starts with the
 * first pool, the workers with the first job; both start afresh in a child process
 * after fork(). A job refused because the queue is full fails its operation with
 * TP_EBUSY (a lookup then runs in its caller's thread instead; a maintenance open runs
 * in the pass). Acquire callbacks and connector calls made by a pass run on the timer
 * thread: keep them short. */
#ifndef TIDEPOOL_RUNTIME_H
#define TIDEPOOL_RUNTIME_H

#include <stdint.h>

#include "errors.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TP_RUNTIME_OPTIONS_VERSION 1

typedef struct tp_runtime_options {
    unsigned version;   /* TP_RUNTIME_OPTIONS_VERSION */
    int workers;        /* worker threads. 4 */
    int64_t max_queued; /* jobs waiting for a worker before TP_EBUSY. 4096 */
} tp_runtime_options;

/* tp_runtime_options_init: the defaults above. */
TP_EXTERN void tp_runtime_options_init(tp_runtime_options *o);

/* tp_runtime_configure: sets the workers' number and the queue's bound. Errors:
 * TP_EINVAL (a version or value out of range: workers 1..256, max_queued >= 1; the
 * message is not kept, only the code), TP_ESTATE (the workers are running: call it
 * before the first pool, or after tp_runtime_shutdown()). Thread-safe. */
TP_EXTERN tp_err tp_runtime_configure(const tp_runtime_options *o);

/* tp_runtime_shutdown: lets the workers finish every queued job, then joins them and
 * the timer thread (a lookup abandoned at its deadline is waited for too). A later job
 * starts them again; pools still alive keep their maintenance due in the heap, and it
 * runs once the threads are back (destroy the pools first to stop everything).
 * Not from a worker's job (a connector, trace hook or callback the library called).
 * Thread-safe. */
TP_EXTERN void tp_runtime_shutdown(void);

#ifdef __cplusplus
}
#endif
#endif
