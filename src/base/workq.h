/* base/workq.h: the library's worker threads (workq.c): a fixed set of threads (4 by
 * default, tp_runtime_configure()) and a bounded queue, for every blocking job the
 * library runs off its caller's thread: opens for asynchronous acquires that the caller
 * does not perform itself, and name lookups bounded by a deadline. Started at the first
 * job, joined by tp_runtime_shutdown(), started afresh in a child after fork(). */
#ifndef TP_BASE_WORKQ_H
#define TP_BASE_WORKQ_H

#include <pthread.h>
#include <stdbool.h>

#include "list.h"
#include "tidepool/errors.h"

/* A job: embed it in the job's own state (no allocation to queue it) and set fn, which
 * runs once on a worker with the job; fn owns the job's state from then on. */
typedef struct tp__work {
    tp__list link; /* in the queue (workq.c) */
    void (*fn)(struct tp__work *w);
} tp__work;

/* tp__work_submit: queues w. TP_OK; TP_EBUSY when the queue holds max_queued jobs;
 * TP_ESYS when no worker thread could be started. Thread-safe. */
tp_err tp__work_submit(tp__work *w);

/* tp__work_on_worker: true on one of the worker threads (a job that would wait for
 * another job runs it in place instead: the queue could be full of jobs like it). */
bool tp__work_on_worker(void);

/* tp__thread_start: starts a joinable thread running fn(arg) with every signal blocked
 * (the application's handlers never run on a thread it does not know about). 0 or an
 * errno value. The one place the library creates threads, with workq.c's workers. */
int tp__thread_start(pthread_t *t, void *(*fn)(void *), void *arg);

#endif
