/* engine.c: the event engine's loop and life: the queues other threads fill
 * (submissions, the pool's acquire results, finished lookups, cancellations), epoll
 * dispatch through the descriptor table (engine_fd.c), the timers, create and destroy.
 * Submission and cancellation are in engine_submit.c, the timers (on base/timer.h's
 * heap) in engine_timer.c, the state machine of one request in engine_req.c. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "engine.h"

#define EVFD_TAG UINT64_MAX

static void process_cancels(tp_http_engine *e);

/* ---- life ---------------------------------------------------------------------------- */

tp_err tp_http_engine_create(tp_http_client *c, tp_http_engine **out, tp_errinfo *err)
{
    if (c == NULL || out == NULL)
        return tp_errinfo_set(err, TP_EINVAL, 0, "client and out are required");
    *out = NULL;
    tp_http_engine *e = tp__calloc(1, sizeof *e);
    if (e == NULL)
        return tp_errinfo_set(err, TP_ENOMEM, 0, "allocating the engine");
    e->c = c;
    e->epfd = epoll_create1(EPOLL_CLOEXEC);
    e->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (e->epfd < 0 || e->evfd < 0) {
        int se = errno;
        if (e->epfd >= 0)
            close(e->epfd);
        if (e->evfd >= 0)
            close(e->evfd);
        tp__free(e);
        return tp_errinfo_set(err, TP_ESYS, se, "creating epoll/eventfd");
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = EVFD_TAG};
    epoll_ctl(e->epfd, EPOLL_CTL_ADD, e->evfd, &ev);
    tp__mutex_init(&e->mu);
    tp__buf_init(&e->memo.head);
    e->next_id = 1;
    e->fork_gen = atomic_load(&tp__fork_generation);
    *out = e;
    return TP_OK;
}

void tp__eng_adopt(tp_http_engine *e)
{
    tp__mutex_lock(&e->mu); /* submitters and the pool's callbacks read it */
    e->loop_thread = pthread_self();
    e->loop_thread_known = true;
    tp__mutex_unlock(&e->mu);
}

/* Moves submissions, results and finished lookups out of the locked queues. */
static void drain_queues(tp_http_engine *e, eng_req **inbox, eng_req **results,
                         eng_lookup **lookups)
{
    tp__mutex_lock(&e->mu);
    *inbox = e->inbox;
    *results = e->results;
    *lookups = e->lookups;
    e->inbox = e->inbox_tail = NULL;
    e->results = e->results_tail = NULL;
    e->lookups = e->lookups_tail = NULL;
    tp__mutex_unlock(&e->mu);
}

static void activate(tp_http_engine *e, eng_req *rq)
{
    rq->prev_a = NULL;
    rq->next_a = e->active;
    if (e->active != NULL)
        e->active->prev_a = rq;
    e->active = rq;
}

/* Starts new requests and applies acquire results; returns whether anything happened. */
static bool process_queues(tp_http_engine *e)
{
    eng_req *inbox, *results;
    eng_lookup *lookups;
    drain_queues(e, &inbox, &results, &lookups);
    bool any = inbox != NULL || results != NULL || lookups != NULL;
    while (lookups != NULL) {
        eng_lookup *el = lookups;
        lookups = el->next_q;
        tp__er_on_lookup(e, el);
    }
    while (inbox != NULL) {
        eng_req *rq = inbox;
        inbox = rq->next_q;
        activate(e, rq);
        tp__er_start(rq);
    }
    while (results != NULL) {
        eng_req *rq = results;
        results = rq->next_q;
        tp__er_on_result(rq);
    }
    return any;
}

/* What every engine holds, freed (its requests are gone). */
static void free_engine(tp_http_engine *e)
{
    close(e->epfd);
    close(e->evfd);
    tp__free(e->memo.method);
    tp__free(e->memo.url);
    tp__buf_free(&e->memo.head);
    while (e->cancels != NULL) {
        cancel_note *n = e->cancels;
        e->cancels = n->next;
        tp__free(n);
    }
    tp__mutex_destroy(&e->mu);
    tp__timers_free(&e->timers);
    tp__free(e->fds);
    tp__free(e);
}

void tp_http_engine_destroy(tp_http_engine *e)
{
    if (e == NULL)
        return;
    tp__mutex_lock(&e->mu);
    e->loop_thread = pthread_self();
    e->loop_thread_known = true;
    tp__mutex_unlock(&e->mu);
    /* Cancel everything, including what is queued but not started, then let the
     * cancellations finish (a pending acquire may still deliver its result). */
    for (int round = 0; round < 1000; round++) {
        process_queues(e);
        process_cancels(e);
        for (eng_req *rq = e->active; rq != NULL;) {
            eng_req *next = rq->next_a;
            tp__er_cancel(rq);
            rq = next;
        }
        /* A lookup whose worker is posting it must arrive before the engine goes. */
        if (atomic_load(&e->pending) == 0 && e->zombies == 0 && e->outstanding == NULL)
            break;
        struct epoll_event evs[16];
        epoll_wait(e->epfd, evs, 16, 10);
    }
    free_engine(e);
}

void tp__eng_abandon(tp_http_engine *e)
{
    free_engine(e);
}

/* ---- the loop -------------------------------------------------------------------------- */

static void process_cancels(tp_http_engine *e)
{
    tp__mutex_lock(&e->mu);
    cancel_note *n = e->cancels;
    e->cancels = NULL;
    tp__mutex_unlock(&e->mu);
    while (n != NULL) {
        cancel_note *next = n->next;
        for (eng_req *rq = e->active; rq != NULL; rq = rq->next_a)
            if (rq->id == n->id) {
                if (n->resume)
                    tp__er_resume(rq);
                else
                    tp__er_cancel(rq);
                break;
            }
        tp__free(n);
        n = next;
    }
}

static void fire_timers(tp_http_engine *e)
{
    int64_t now = tp_clock_now();
    tp__timer *t;
    while ((t = tp__timers_first(&e->timers)) != NULL && t->due <= now) {
        eng_req *rq = TP__CONTAINER_OF(t, eng_req, timer);
        tp__eng_timer_clear(e, rq);
        tp__er_on_timer(rq, now);
    }
}

int tp_http_engine_fd(const tp_http_engine *e)
{
    return e == NULL ? -1 : e->epfd;
}

int64_t tp_http_engine_timeout(tp_http_engine *e)
{
    tp__timer *t = e != NULL ? tp__timers_first(&e->timers) : NULL;
    if (t == NULL)
        return TP_DURATION_INFINITE;
    int64_t left = t->due - tp_clock_now();
    return left > 0 ? left : 0;
}

size_t tp_http_engine_pending(const tp_http_engine *e)
{
    return e == NULL ? 0 : atomic_load(&((tp_http_engine *)e)->pending);
}

int tp_http_engine_poll(tp_http_engine *e, int64_t timeout)
{
    if (e == NULL)
        return 0;
    if (!e->loop_thread_known) {
        tp__mutex_lock(&e->mu); /* submitters read it in tp__eng_wake_locked() */
        e->loop_thread = pthread_self();
        e->loop_thread_known = true;
        tp__mutex_unlock(&e->mu);
    }
    e->completed = 0;
    bool busy = process_queues(e);
    process_cancels(e);
    fire_timers(e);
    tp__er_h2_flush(e); /* before any sleep: this round's HTTP/2 streams go out */
    /* Work done above may have queued more (a release handing a connection to one of
     * our own waiters), or completed requests (the caller may want to look): do not
     * sleep then. */
    tp__mutex_lock(&e->mu);
    busy = busy || e->completed > 0 || e->inbox != NULL || e->results != NULL || e->cancels != NULL;
    tp__mutex_unlock(&e->mu);
    int64_t wait = busy ? 0 : TP__MIN(timeout, tp_http_engine_timeout(e));
    int ms =
        wait == TP_DURATION_INFINITE
            ? -1
            : (int)TP__MIN((wait + TP_NSEC_PER_MSEC - 1) / TP_NSEC_PER_MSEC, (int64_t)INT32_MAX);
    struct epoll_event evs[256];
    int n = epoll_wait(e->epfd, evs, 256, ms);
    for (int i = 0; i < n; i++) {
        uint64_t tag = evs[i].data.u64;
        if (tag == EVFD_TAG) {
            uint64_t v;
            ssize_t r = read(e->evfd, &v, sizeof v);
            (void)r;
            tp__mutex_lock(&e->mu);
            e->woken = false;
            tp__mutex_unlock(&e->mu);
            continue;
        }
        int fd = (int)tag;
        /* Events for connections idle in the pool or owned by another engine are not
         * ours to act on: the pool's check finds a dead idle connection at reuse. */
        if ((size_t)fd < e->nfds && e->fds[fd].h2c != NULL)
            tp__er_h2_on_events(e, e->fds[fd].h2c);
        else if ((size_t)fd < e->nfds && e->fds[fd].owner != NULL)
            tp__er_on_events(e->fds[fd].owner, evs[i].events);
    }
    process_queues(e);
    process_cancels(e);
    fire_timers(e);
    tp__er_h2_flush(e);
    return e->completed;
}

void tp_http_engine_run(tp_http_engine *e)
{
    while (e != NULL && atomic_load(&e->pending) > 0)
        tp_http_engine_poll(e, TP_DURATION_INFINITE);
}
