/* workq.c: the worker threads of workq.h and tidepool/runtime.h.
 *
 * One process-wide queue under one lock. Workers are started together at the first job
 * (or again after a shutdown or a fork); each takes jobs in FIFO order and runs them
 * outside the lock. Shutdown sets a flag, wakes everyone, and joins: the workers drain
 * the queue before they leave, so no queued job is lost. After fork() the child has the
 * parent's memory but none of its threads: the child handler forgets the workers and the
 * queue (those jobs belong to the parent's work), so the child's first job starts its
 * own workers. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>

#include "base.h"
#include "sync.h"
#include "workq.h"

#define TP__MAX_WORKERS 256

static struct {
    tp__mutex mu;
    pthread_cond_t cv; /* a job was queued, or stopping */
    tp__list queue;
    int64_t queued;
    int nworkers;   /* running threads */
    bool stopping;  /* shutdown in progress: drain, then leave */
    pthread_t threads[TP__MAX_WORKERS];
    int workers;        /* configured */
    int64_t max_queued; /* configured */
} wq;

static pthread_once_t wq_once = PTHREAD_ONCE_INIT;
static bool wq_ready; /* the lock and condition variable exist */
static _Thread_local bool on_worker;

static void atfork_prepare(void)
{
    if (wq_ready)
        tp__mutex_lock(&wq.mu);
}

static void atfork_parent(void)
{
    if (wq_ready)
        tp__mutex_unlock(&wq.mu);
}

static void atfork_child(void)
{
    if (!wq_ready)
        return;
    /* The parent's workers do not exist here, and its queued jobs are its own. */
    wq.nworkers = 0;
    wq.stopping = false;
    tp__list_init(&wq.queue);
    wq.queued = 0;
    /* Its condition variable still counts the parent's waiting workers. */
    memset(&wq.cv, 0, sizeof wq.cv);
    (void)tp__cond_init(&wq.cv);
    tp__mutex_reinit_after_fork(&wq.mu);
}

static void wq_init(void)
{
    wq.workers = 4;
    wq.max_queued = 4096;
    tp__list_init(&wq.queue);
    if (tp__mutex_init(&wq.mu) != 0 || tp__cond_init(&wq.cv) != 0)
        return;
    pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
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
    (void)arg;
    on_worker = true;
    tp__mutex_lock(&wq.mu);
    for (;;) {
        if (!tp__list_empty(&wq.queue)) {
            tp__list *n = wq.queue.next;
            tp__list_remove(n);
            wq.queued--;
            tp__mutex_unlock(&wq.mu);
            tp__work *w = TP__CONTAINER_OF(n, tp__work, link);
            w->fn(w);
            tp__mutex_lock(&wq.mu);
            continue;
        }
        if (wq.stopping)
            break;
        tp__cond_wait_until(&wq.cv, &wq.mu, TP_DURATION_INFINITE);
    }
    tp__mutex_unlock(&wq.mu);
    return NULL;
}

/* Starts the configured workers if none run. False if not even one could start. */
static bool start_locked(void)
{
    if (wq.nworkers > 0)
        return true;
    while (wq.nworkers < wq.workers &&
           tp__thread_start(&wq.threads[wq.nworkers], worker_main, NULL) == 0)
        wq.nworkers++;
    return wq.nworkers > 0;
}

bool tp__work_on_worker(void)
{
    return on_worker;
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
        tp__list_push_back(&wq.queue, &w->link);
        wq.queued++;
        pthread_cond_signal(&wq.cv);
    }
    tp__mutex_unlock(&wq.mu);
    return rc;
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
    if (wq.nworkers == 0 || wq.stopping) {
        tp__mutex_unlock(&wq.mu);
        return;
    }
    wq.stopping = true;
    pthread_cond_broadcast(&wq.cv);
    int n = wq.nworkers;
    tp__mutex_unlock(&wq.mu);
    for (int i = 0; i < n; i++)
        pthread_join(wq.threads[i], NULL);
    tp__mutex_lock(&wq.mu);
    wq.nworkers = 0;
    wq.stopping = false;
    tp__mutex_unlock(&wq.mu);
}
