/* base/workq.h: the library's threads (workq.c): a fixed set of workers (4 by default,
 * tp_runtime_configure()) fed by a bounded queue, for every blocking job the library
 * runs off its caller's thread (opens for asynchronous acquires that the caller does
 * not perform itself, name lookups bounded by a deadline, a maintenance pass's opens
 * and probes); and one timer thread with a timer heap (timer.h) for timed jobs, which
 * must not block (each pool's maintenance pass: it runs when due, then sets its next
 * time). Started at the first job, joined by tp_runtime_shutdown(), started afresh in a
 * child after fork(). */
#ifndef TP_BASE_WORKQ_H
#define TP_BASE_WORKQ_H

#include <pthread.h>
#include <stdbool.h>

#include "list.h"
#include "tidepool/errors.h"
#include "timer.h"

/* A job: embed it in the job's own state (no allocation to queue it) and set fn, which
 * runs once on a worker with the job each time it is submitted or comes due; fn owns
 * the job's state from then on. A zeroed job with fn set is ready to submit. */
typedef struct tp__work {
    void (*fn)(struct tp__work *w);
    /* workq.c's, under its lock */
    tp__list link;       /* in the queue */
    tp__timer timer;     /* in the timer heap (timed jobs) */
    unsigned char where; /* nowhere, queued or timed */
    unsigned gen;        /* the process generation these fields belong to (fork) */
} tp__work;

/* tp__work_submit: queues w. TP_OK; TP_EBUSY when the queue holds max_queued jobs;
 * TP_ESYS when no worker thread could be started. Thread-safe. */
tp_err tp__work_submit(tp__work *w);

/* Timed jobs, run on the timer thread: their fn must hand anything that blocks to the
 * workers (tp__work_submit). tp__work_timed_init reserves w's place in the timer heap
 * (so arming it never allocates): TP_OK, TP_ENOMEM. tp__work_at arms w to run at due
 * (tp_clock_now() nanoseconds; at once if past), or moves it there if armed: TP_OK,
 * TP_ESYS when the timer thread could not be started. A timed job's fn may arm it
 * again. tp__work_timed_fini disarms w, waits until no thread runs it (so its owner may
 * free it) and gives its place back. Thread-safe; the owner serialises at and fini. */
tp_err tp__work_timed_init(tp__work *w, void (*fn)(tp__work *w));
tp_err tp__work_at(tp__work *w, int64_t due);
void tp__work_timed_fini(tp__work *w);

/* tp__work_on_worker: true on one of the worker threads (a job that would wait for
 * another job runs it in place instead: the queue could be full of jobs like it). */
bool tp__work_on_worker(void);

/* tp__thread_start: starts a joinable thread running fn(arg) with every signal blocked
 * (the application's handlers never run on a thread it does not know about). 0 or an
 * errno value. The one place the library creates threads, with workq.c's workers. */
int tp__thread_start(pthread_t *t, void *(*fn)(void *), void *arg);

#endif
