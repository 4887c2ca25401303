/* workq.c: the worker threads of workq.h and tidepool/runtime.h, and the timer thread.
 *
 * One process-wide queue and one timer heap under one lock. Workers are started
 * together at the first job (or again after a shutdown or a fork); each takes the
 * oldest queued job and runs it outside the lock. The timer thread sleeps until the
 * earliest armed timed job is due and runs it: timed jobs (a pool's maintenance pass)
 * do no blocking work themselves, and hand what blocks to the workers, so a worker busy
 * with a slow connect never delays a timer, nor a busy timer the queue. Shutdown sets
 * a flag, wakes everyone, and joins: the workers drain the queue before they leave, so
 * no queued job is lost; timed jobs not yet due wait in the heap for the threads' next
 * start. After fork() the child has the parent's memory but none of its threads: the
 * child handler forgets the threads, the queue and the armed timers (those jobs belong
 * to the parent's work; their owners arm them again), so the child's first job starts
 * its own threads. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>

#include "base.h"
#include "fork.h"
#include "sync.h"
#include "workq.h"

#define TP__MAX_WORKERS 256

/* Where a job is: nowhere (idle or running), queued (submitted) or timed (armed). */
enum { W_NOWHERE, W_QUEUED, W_TIMED };

static struct {
    tp__mutex mu;
    pthread_cond_t cv;       /* a job was queued, or stopping */
    pthread_cond_t timer_cv; /* the earliest timer moved, or stopping */
    pthread_cond_t done_cv;  /* a job finished while tp__work_timed_fini waited */
    tp__list queue;
    int64_t queued;
    tp__timers timers;
    size_t reserved;  /* places held by timed jobs (tp__work_timed_init) */
    int fini_waiting; /* tp__work_timed_fini calls waiting on done_cv */
    unsigned gen;     /* bumped in a child after fork(): older job fields are stale */
    int nworkers;     /* running threads */
    bool stopping;    /* shutdown in progress: drain, then leave */
    pthread_t threads[TP__MAX_WORKERS];
    tp__work *running[TP__MAX_WORKERS]; /* what each worker runs now */
    bool timer_started;
    pthread_t timer_thread;
    tp__work *timer_running; /* the timed job the timer thread runs now */
    int workers;             /* configured */
    int64_t max_queued;      /* configured */
} wq;

static pthread_once_t wq_once = PTHREAD_ONCE_INIT;
static bool wq_ready; /* the lock and condition variables exist */
static _Thread_local int worker_index = -1;
static _Thread_local bool on_timer_thread;

/* A job's fields as of this process: a job last queued or armed before a fork (in the
 * parent's queue or heap, which the child forgot) is nowhere. */
static void fresh_locked(tp__work *w)
{
    if (w->gen != wq.gen) {
        w->gen = wq.gen;
        w->where = W_NOWHERE;
        tp__timer_init(&w->timer);
    }
}

static tp__fork_guard wq_guard; /* wq.mu across fork() */

/* In a child, with wq.mu new (base/fork.c). */
static void wq_forked(tp__fork_guard *g)
{
    (void)g;
    /* The parent's workers do not exist here, and its queued and armed jobs are its
     * own (the heap keeps its size: the reservations are the child's too). */
    wq.nworkers = 0;
    wq.timer_started = false;
    wq.timer_running = NULL;
    wq.stopping = false;
    tp__list_init(&wq.queue);
    wq.queued = 0;
    wq.timers.n = 0;
    wq.fini_waiting = 0;
    memset(wq.running, 0, sizeof wq.running);
    wq.gen++;
    /* Its condition variables still count the parent's waiting threads. */
    memset(&wq.cv, 0, sizeof wq.cv);
    (void)tp__cond_init(&wq.cv);
    memset(&wq.timer_cv, 0, sizeof wq.timer_cv);
    (void)tp__cond_init(&wq.timer_cv);
    memset(&wq.done_cv, 0, sizeof wq.done_cv);
    (void)tp__cond_init(&wq.done_cv);
}

static void wq_init(void)
{
    wq.workers = 4;
    wq.max_queued = 4096;
    wq.gen = 1; /* a zeroed job (generation 0) is fresh at its first use */
    tp__list_init(&wq.queue);
    tp__timers_init(&wq.timers);
    if (tp__mutex_init(&wq.mu) != 0 || tp__cond_init(&wq.cv) != 0 ||
        tp__cond_init(&wq.timer_cv) != 0 || tp__cond_init(&wq.done_cv) != 0)
        return;
    tp__fork_guard_add(&wq_guard, &wq.mu, TP__RANK_RUNTIME, wq_forked);
    wq_ready = true;
}

int tp__thread_start(pthread_t *t, void *(*fn)(void *), void *arg)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(t, NULL, fn, arg);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}

static void *worker_main(void *arg)
{
    int me = (int)(intptr_t)arg;
    worker_index = me;
    tp__mutex_lock(&wq.mu);
    for (;;) {
        if (!tp__list_empty(&wq.queue)) {
            tp__list *n = wq.queue.next;
            tp__list_remove(n);
            wq.queued--;
            tp__work *w = TP__CONTAINER_OF(n, tp__work, link);
            w->where = W_NOWHERE;
            wq.running[me] = w;
            tp__mutex_unlock(&wq.mu);
            w->fn(w); /* w may be gone from here on: only its address is compared */
            tp__mutex_lock(&wq.mu);
            wq.running[me] = NULL;
            if (wq.fini_waiting > 0)
                pthread_cond_broadcast(&wq.done_cv);
            continue;
        }
        if (wq.stopping)
            break;
        tp__cond_wait_until(&wq.cv, &wq.mu, TP_DURATION_INFINITE);
    }
    tp__mutex_unlock(&wq.mu);
    return NULL;
}

static void *timer_main(void *arg)
{
    (void)arg;
    on_timer_thread = true;
    tp__mutex_lock(&wq.mu);
    while (!wq.stopping) {
        tp__timer *t = tp__timers_first(&wq.timers);
        if (t != NULL && t->due <= tp_clock_now()) {
            tp__timers_cancel(&wq.timers, t);
            tp__work *w = TP__CONTAINER_OF(t, tp__work, timer);
            w->where = W_NOWHERE;
            wq.timer_running = w;
            tp__mutex_unlock(&wq.mu);
            w->fn(w); /* as for a worker: w may be gone from here on */
            tp__mutex_lock(&wq.mu);
            wq.timer_running = NULL;
            if (wq.fini_waiting > 0)
                pthread_cond_broadcast(&wq.done_cv);
            continue;
        }
        tp__cond_wait_until(&wq.timer_cv, &wq.mu, t != NULL ? t->due : TP_DURATION_INFINITE);
    }
    tp__mutex_unlock(&wq.mu);
    return NULL;
}

/* Starts the timer thread if it does not run. False if it could not start. */
static bool start_timer_locked(void)
{
    if (!wq.timer_started)
        wq.timer_started = tp__thread_start(&wq.timer_thread, timer_main, NULL) == 0;
    return wq.timer_started;
}

/* Starts the configured workers if none run, and the timer thread if timed jobs wait
 * for it (after a shutdown). False if not even one worker could start. */
static bool start_locked(void)
{
    if (wq.timers.n > 0)
        (void)start_timer_locked(); /* it is tried again at the next job */
    if (wq.nworkers > 0)
        return true;
    while (wq.nworkers < wq.workers && tp__thread_start(&wq.threads[wq.nworkers], worker_main,
                                                        (void *)(intptr_t)wq.nworkers) == 0)
        wq.nworkers++;
    return wq.nworkers > 0;
}

bool tp__work_on_worker(void)
{
    return worker_index >= 0;
}

tp_err tp__work_submit(tp__work *w)
{
    pthread_once(&wq_once, wq_init);
    if (!wq_ready)
        return TP_ESYS;
    tp__mutex_lock(&wq.mu);
    tp_err rc = TP_OK;
    if (wq.stopping || !start_locked())
        rc = TP_ESYS;
    else if (wq.queued >= wq.max_queued)
        rc = TP_EBUSY;
    if (rc == TP_OK) {
        fresh_locked(w);
        w->where = W_QUEUED;
        tp__list_push_back(&wq.queue, &w->link);
        wq.queued++;
        pthread_cond_signal(&wq.cv);
    }
    tp__mutex_unlock(&wq.mu);
    return rc;
}

tp_err tp__work_timed_init(tp__work *w, void (*fn)(tp__work *w))
{
    pthread_once(&wq_once, wq_init);
    if (!wq_ready)
        return TP_ESYS;
    w->fn = fn;
    tp__mutex_lock(&wq.mu);
    w->gen = wq.gen;
    w->where = W_NOWHERE;
    tp__timer_init(&w->timer);
    tp_err rc = tp__timers_reserve(&wq.timers, wq.reserved + 1);
    if (rc == TP_OK)
        wq.reserved++;
    tp__mutex_unlock(&wq.mu);
    return rc;
}

tp_err tp__work_at(tp__work *w, int64_t due)
{
    tp__mutex_lock(&wq.mu);
    fresh_locked(w);
    /* While a shutdown runs, the job waits in the heap for the threads' next start. */
    tp_err rc = wq.stopping || start_timer_locked() ? TP_OK : TP_ESYS;
    if (rc == TP_OK && w->where != W_QUEUED) {
        rc = tp__timers_set(&wq.timers, &w->timer, due); /* reserved: no allocation */
        if (rc == TP_OK) {
            w->where = W_TIMED;
            /* The timer thread's deadline was a later timer's. */
            if (tp__timers_first(&wq.timers) == &w->timer)
                pthread_cond_signal(&wq.timer_cv);
        }
    }
    tp__mutex_unlock(&wq.mu);
    return rc;
}

static bool running_elsewhere_locked(const tp__work *w)
{
    if (wq.timer_running == w && !on_timer_thread)
        return true;
    for (int i = 0; i < wq.nworkers; i++)
        if (wq.running[i] == w && i != worker_index)
            return true;
    return false;
}

void tp__work_timed_fini(tp__work *w)
{
    tp__mutex_lock(&wq.mu);
    for (;;) {
        fresh_locked(w);
        if (w->where == W_TIMED)
            tp__timers_cancel(&wq.timers, &w->timer);
        w->where = W_NOWHERE;
        if (!running_elsewhere_locked(w))
            break;
        /* Its fn may arm it again before it returns: look again after. */
        wq.fini_waiting++;
        tp__cond_wait_until(&wq.done_cv, &wq.mu, TP_DURATION_INFINITE);
        wq.fini_waiting--;
    }
    /* With no timed job left the heap's array goes too: the library then holds no
     * memory while no handle exists (tp_set_allocator() needs that). */
    if (--wq.reserved == 0)
        tp__timers_free(&wq.timers);
    tp__mutex_unlock(&wq.mu);
}

void tp_runtime_options_init(tp_runtime_options *o)
{
    if (o == NULL)
        return;
    memset(o, 0, sizeof *o);
    o->version = TP_RUNTIME_OPTIONS_VERSION;
    o->workers = 4;
    o->max_queued = 4096;
}

tp_err tp_runtime_configure(const tp_runtime_options *o)
{
    if (o == NULL || o->version != TP_RUNTIME_OPTIONS_VERSION || o->workers < 1 ||
        o->workers > TP__MAX_WORKERS || o->max_queued < 1)
        return TP_EINVAL;
    pthread_once(&wq_once, wq_init);
    if (!wq_ready)
        return TP_ESYS;
    tp__mutex_lock(&wq.mu);
    tp_err rc = wq.nworkers > 0 ? TP_ESTATE : TP_OK;
    if (rc == TP_OK) {
        wq.workers = o->workers;
        wq.max_queued = o->max_queued;
    }
    tp__mutex_unlock(&wq.mu);
    return rc;
}

void tp_runtime_shutdown(void)
{
    pthread_once(&wq_once, wq_init);
    if (!wq_ready)
        return;
    tp__mutex_lock(&wq.mu);
    if ((wq.nworkers == 0 && !wq.timer_started) || wq.stopping) {
        tp__mutex_unlock(&wq.mu);
        return;
    }
    wq.stopping = true;
    pthread_cond_broadcast(&wq.cv);
    pthread_cond_broadcast(&wq.timer_cv);
    int n = wq.nworkers;
    bool timer = wq.timer_started;
    tp__mutex_unlock(&wq.mu);
    if (timer)
        pthread_join(wq.timer_thread, NULL);
    for (int i = 0; i < n; i++)
        pthread_join(wq.threads[i], NULL);
    tp__mutex_lock(&wq.mu);
    wq.nworkers = 0;
    wq.timer_started = false;
    wq.stopping = false;
    tp__mutex_unlock(&wq.mu);
}
