/* engine.c: the event engine's loop: submission from any thread (an inbox and an
 * eventfd), the acquire results the pool posts from any thread, epoll dispatch through a
 * descriptor table, a min-heap of request deadlines, and completion bookkeeping. The
 * state machine of one request is in engine_req.c. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "engine.h"

#define EVFD_TAG UINT64_MAX

static void process_cancels(tp_http_engine *e);

/* ---- timers: a min-heap of requests on min(deadline, phase_deadline) --------------- */

static int64_t due(const eng_req *rq)
{
    return TP__MIN(rq->deadline, rq->phase_deadline);
}

static void heap_swap(tp_http_engine *e, size_t i, size_t j)
{
    eng_req *t = e->heap[i];
    e->heap[i] = e->heap[j];
    e->heap[j] = t;
    e->heap[i]->heap_idx = i;
    e->heap[j]->heap_idx = j;
}

static void heap_up(tp_http_engine *e, size_t i)
{
    while (i > 0 && due(e->heap[(i - 1) / 2]) > due(e->heap[i])) {
        heap_swap(e, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
}

static void heap_down(tp_http_engine *e, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < e->nheap && due(e->heap[l]) < due(e->heap[m]))
            m = l;
        if (r < e->nheap && due(e->heap[r]) < due(e->heap[m]))
            m = r;
        if (m == i)
            return;
        heap_swap(e, i, m);
        i = m;
    }
}

void tp__eng_timer_clear(tp_http_engine *e, eng_req *rq)
{
    size_t i = rq->heap_idx;
    if (i == SIZE_MAX)
        return;
    e->nheap--;
    if (i != e->nheap) {
        e->heap[i] = e->heap[e->nheap];
        e->heap[i]->heap_idx = i;
        heap_down(e, i);
        heap_up(e, i);
    }
    rq->heap_idx = SIZE_MAX;
}

void tp__eng_timer_set(tp_http_engine *e, eng_req *rq)
{
    if (rq->heap_idx != SIZE_MAX) {
        heap_down(e, rq->heap_idx);
        heap_up(e, rq->heap_idx);
        return;
    }
    if (due(rq) == TP_DURATION_INFINITE)
        return;
    if (e->nheap == e->heap_cap) {
        size_t cap = e->heap_cap ? e->heap_cap * 2 : 64;
        eng_req **h = realloc(e->heap, cap * sizeof *h);
        if (h == NULL)
            return; /* no timer: the pool's acquire timeout still bounds the wait */
        e->heap = h;
        e->heap_cap = cap;
    }
    rq->heap_idx = e->nheap;
    e->heap[e->nheap++] = rq;
    heap_up(e, rq->heap_idx);
}

/* ---- descriptors --------------------------------------------------------------------- */

tp_err tp__eng_watch(tp_http_engine *e, eng_req *rq, int fd, uint64_t conn_id)
{
    if ((size_t)fd >= e->nfds) {
        size_t n = TP__MAX((size_t)fd + 1, e->nfds * 2);
        fd_slot *t = realloc(e->fds, n * sizeof *t);
        if (t == NULL)
            return TP_ENOMEM;
        memset(t + e->nfds, 0, (n - e->nfds) * sizeof *t);
        e->fds = t;
        e->nfds = n;
    }
    fd_slot *s = &e->fds[fd];
    if (s->conn_id != conn_id) {
        /* Edge-triggered, all directions: the connection stays registered while it is
         * idle in the pool, so the next request on it (usually ours again: the pool gives
         * a thread back the connection it released) needs no epoll_ctl. A descriptor
         * number reused for another connection is told apart by conn_id. */
        struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
                                 .data.u64 = (uint64_t)fd};
        if (epoll_ctl(e->epfd, EPOLL_CTL_ADD, fd, &ev) != 0 &&
            (errno != EEXIST || epoll_ctl(e->epfd, EPOLL_CTL_MOD, fd, &ev) != 0))
            return TP_ESYS;
        s->conn_id = conn_id;
    }
    s->owner = rq;
    return TP_OK;
}

void tp__eng_unwatch(tp_http_engine *e, int fd, bool forget)
{
    if (fd < 0 || (size_t)fd >= e->nfds)
        return;
    e->fds[fd].owner = NULL;
    if (forget) {
        /* The descriptor is about to be closed (or handed to a close): epoll forgets it
         * by itself then, but a number reused before that must not match. */
        epoll_ctl(e->epfd, EPOLL_CTL_DEL, fd, NULL);
        e->fds[fd].conn_id = 0;
    }
}

/* ---- cross-thread queues ----------------------------------------------------------- */

/* Wakes the loop unless we are on it or it is already woken. Lock held. */
static void wake_locked(tp_http_engine *e)
{
    if (e->woken)
        return;
    if (e->loop_thread_known && pthread_equal(e->loop_thread, pthread_self()))
        return; /* the loop drains the queues before it sleeps */
    e->woken = true;
    uint64_t one = 1;
    ssize_t n = write(e->evfd, &one, sizeof one);
    (void)n; /* EAGAIN means a wake-up is already pending */
}

void tp__eng_post_result(eng_req *rq, tp_err status, tp_conn *conn, const tp_errinfo *err)
{
    tp_http_engine *e = rq->e;
    pthread_mutex_lock(&e->mu);
    rq->has_result = true;
    rq->acq_status = status;
    rq->acq_conn = conn;
    if (err != NULL)
        rq->acq_info = *err;
    else
        tp_errinfo_clear(&rq->acq_info);
    rq->next_q = NULL;
    if (e->results_tail != NULL)
        e->results_tail->next_q = rq;
    else
        e->results = rq;
    e->results_tail = rq;
    wake_locked(e);
    pthread_mutex_unlock(&e->mu);
}

/* ---- life ---------------------------------------------------------------------------- */

tp_err tp_http_engine_create(tp_http_client *c, tp_http_engine **out, tp_errinfo *err)
{
    if (c == NULL || out == NULL)
        return tp_errinfo_set(err, TP_EINVAL, 0, "client and out are required");
    *out = NULL;
    tp_http_engine *e = calloc(1, sizeof *e);
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
        free(e);
        return tp_errinfo_set(err, TP_ESYS, se, "creating epoll/eventfd");
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = EVFD_TAG};
    epoll_ctl(e->epfd, EPOLL_CTL_ADD, e->evfd, &ev);
    pthread_mutex_init(&e->mu, NULL);
    tp__buf_init(&e->memo.head);
    e->next_id = 1;
    *out = e;
    return TP_OK;
}

/* Moves submissions and results out of the locked queues. */
static void drain_queues(tp_http_engine *e, eng_req **inbox, eng_req **results)
{
    pthread_mutex_lock(&e->mu);
    *inbox = e->inbox;
    *results = e->results;
    e->inbox = e->inbox_tail = NULL;
    e->results = e->results_tail = NULL;
    pthread_mutex_unlock(&e->mu);
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
    drain_queues(e, &inbox, &results);
    bool any = inbox != NULL || results != NULL;
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

void tp_http_engine_destroy(tp_http_engine *e)
{
    if (e == NULL)
        return;
    pthread_mutex_lock(&e->mu);
    e->loop_thread = pthread_self();
    e->loop_thread_known = true;
    pthread_mutex_unlock(&e->mu);
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
        if (atomic_load(&e->pending) == 0 && e->zombies == 0)
            break;
        struct epoll_event evs[16];
        epoll_wait(e->epfd, evs, 16, 10);
    }
    close(e->epfd);
    close(e->evfd);
    free(e->memo.method);
    free(e->memo.url);
    tp__buf_free(&e->memo.head);
    while (e->cancels != NULL) {
        cancel_note *n = e->cancels;
        e->cancels = n->next;
        free(n);
    }
    pthread_mutex_destroy(&e->mu);
    free(e->heap);
    free(e->fds);
    free(e);
}

/* ---- submission ---------------------------------------------------------------------- */

static bool memo_matches(tp_http_engine *e, const tp_http_request *req, const char *method)
{
    return req->nheaders == 0 && e->memo.url != NULL && req->body_len == e->memo.body_len &&
           strcmp(e->memo.url, req->url) == 0 && strcmp(e->memo.method, method) == 0;
}

/* Remembers a header-less request's parsed destination and head. Lock held. */
static void memo_store(tp_http_engine *e, const tp_http_request *req, const char *method,
                       const eng_req *rq)
{
    char *m = strdup(method), *u = strdup(req->url);
    if (m == NULL || u == NULL) {
        free(m);
        free(u);
        return;
    }
    free(e->memo.method);
    free(e->memo.url);
    e->memo.method = m;
    e->memo.url = u;
    e->memo.body_len = req->body_len;
    memcpy(e->memo.host, rq->host, sizeof rq->host);
    e->memo.port = rq->port;
    e->memo.tls = rq->tls;
    memcpy(e->memo.key, rq->key, rq->keylen);
    e->memo.keylen = rq->keylen;
    tp__buf_reset(&e->memo.head);
    if (tp__buf_append(&e->memo.head, rq->head.data, rq->head.len) != TP_OK) {
        free(e->memo.url);
        e->memo.url = NULL;
    }
}

/* Parses the URL and serialises the head into rq (or copies them from the memo). */
static tp_err prepare(tp_http_engine *e, const tp_http_request *req, const char *method,
                      eng_req *rq, tp_errinfo *err)
{
    pthread_mutex_lock(&e->mu);
    if (memo_matches(e, req, method)) {
        memcpy(rq->host, e->memo.host, sizeof rq->host);
        rq->port = e->memo.port;
        rq->tls = e->memo.tls;
        memcpy(rq->key, e->memo.key, e->memo.keylen);
        rq->keylen = e->memo.keylen;
        tp_err rc = tp__buf_append(&rq->head, e->memo.head.data, e->memo.head.len);
        pthread_mutex_unlock(&e->mu);
        return rc == TP_OK ? TP_OK : tp_errinfo_set(err, rc, 0, "copying the request head");
    }
    pthread_mutex_unlock(&e->mu);
    tp__http_url u;
    tp_err rc = tp__http_url_parse(req->url, &u, err);
    if (rc != TP_OK)
        return rc;
    memcpy(rq->host, u.host, sizeof rq->host);
    rq->port = u.port;
    rq->tls = u.tls;
    rq->keylen = tp__http_key(&u, rq->key, sizeof rq->key);
    if (rq->keylen == 0)
        return tp_errinfo_set(err, TP_EINVAL, 0, "url: host too long");
    rc = tp__http_build_head(e->c, req, method, &u, &rq->head, err);
    if (rc == TP_OK && req->nheaders == 0) {
        pthread_mutex_lock(&e->mu);
        memo_store(e, req, method, rq);
        pthread_mutex_unlock(&e->mu);
    }
    return rc;
}

tp_err tp_http_engine_submit(tp_http_engine *e, const tp_http_request *req, tp_http_done_fn cb,
                             void *ud, uint64_t *id, tp_errinfo *err)
{
    if (e == NULL || req == NULL || cb == NULL || req->url == NULL)
        return tp_errinfo_set(err, TP_EINVAL, 0, "engine, request, url and cb are required");
    if (req->flags & TP_HTTP_STREAM)
        return tp_errinfo_set(err, TP_EINVAL, 0, "TP_HTTP_STREAM is not supported by the engine");
    if (req->body_len > 0 && req->body == NULL)
        return tp_errinfo_set(err, TP_EINVAL, 0, "body: NULL with body_len %zu", req->body_len);
    tp_http_client *c = e->c;
    eng_req *rq = calloc(1, sizeof *rq);
    if (rq == NULL)
        return tp_errinfo_set(err, TP_ENOMEM, 0, "allocating the request");
    rq->e = e;
    rq->cb = cb;
    rq->ud = ud;
    rq->flags = req->flags;
    rq->heap_idx = SIZE_MAX;
    tp__buf_init(&rq->head);
    const char *method = req->method != NULL ? req->method : "GET";
    rq->method = strdup(method);
    tp_err rc = rq->method == NULL ? tp_errinfo_set(err, TP_ENOMEM, 0, "copying the method")
                                   : prepare(e, req, method, rq, err);
    if (rc == TP_OK && req->body_len > 0) {
        rq->body = malloc(req->body_len);
        if (rq->body == NULL)
            rc = tp_errinfo_set(err, TP_ENOMEM, 0, "copying the body");
        else
            memcpy(rq->body, req->body, req->body_len);
        rq->body_len = req->body_len;
    }
    int64_t timeout = req->timeout == TP_DURATION_DEFAULT ? c->o.request_timeout : req->timeout;
    if (rc == TP_OK && timeout <= 0)
        rc = tp_errinfo_set(err, TP_EINVAL, 0, "timeout: must be positive");
    if (rc != TP_OK) {
        tp__er_free(rq);
        return rc;
    }
    rq->start = tp_clock_now();
    rq->deadline = tp__saturating_add(rq->start, timeout);
    rq->phase_deadline = TP_DURATION_INFINITE;
    pthread_mutex_lock(&e->mu);
    rq->id = e->next_id++;
    if (id != NULL)
        *id = rq->id;
    if (e->inbox_tail != NULL)
        e->inbox_tail->next_q = rq;
    else
        e->inbox = rq;
    e->inbox_tail = rq;
    atomic_fetch_add(&e->pending, 1);
    wake_locked(e);
    pthread_mutex_unlock(&e->mu);
    return TP_OK;
}

tp_err tp_http_engine_cancel(tp_http_engine *e, uint64_t id)
{
    if (e == NULL || id == 0)
        return TP_EINVAL;
    tp_err rc = TP_ESTATE;
    pthread_mutex_lock(&e->mu);
    for (eng_req *rq = e->inbox; rq != NULL; rq = rq->next_q)
        if (rq->id == id) {
            rq->cancel = true;
            rc = TP_OK;
        }
    /* Started requests are only known to the loop: leave a note it will read. */
    if (rc != TP_OK && id < e->next_id) {
        cancel_note *n = malloc(sizeof *n);
        if (n == NULL) {
            pthread_mutex_unlock(&e->mu);
            return TP_ENOMEM;
        }
        n->id = id;
        n->next = e->cancels;
        e->cancels = n;
        rc = TP_OK;
        wake_locked(e);
    }
    pthread_mutex_unlock(&e->mu);
    return rc;
}

/* ---- the loop -------------------------------------------------------------------------- */

static void process_cancels(tp_http_engine *e)
{
    pthread_mutex_lock(&e->mu);
    cancel_note *n = e->cancels;
    e->cancels = NULL;
    pthread_mutex_unlock(&e->mu);
    while (n != NULL) {
        cancel_note *next = n->next;
        for (eng_req *rq = e->active; rq != NULL; rq = rq->next_a)
            if (rq->id == n->id) {
                tp__er_cancel(rq);
                break;
            }
        free(n);
        n = next;
    }
}

static void fire_timers(tp_http_engine *e)
{
    int64_t now = tp_clock_now();
    while (e->nheap > 0 && due(e->heap[0]) <= now) {
        eng_req *rq = e->heap[0];
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
    if (e == NULL || e->nheap == 0)
        return TP_DURATION_INFINITE;
    int64_t left = due(e->heap[0]) - tp_clock_now();
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
        pthread_mutex_lock(&e->mu); /* submitters read it in wake_locked() */
        e->loop_thread = pthread_self();
        e->loop_thread_known = true;
        pthread_mutex_unlock(&e->mu);
    }
    e->completed = 0;
    bool busy = process_queues(e);
    process_cancels(e);
    fire_timers(e);
    /* Work done above may have queued more (a release handing a connection to one of
     * our own waiters), or completed requests (the caller may want to look): do not
     * sleep then. */
    pthread_mutex_lock(&e->mu);
    busy = busy || e->completed > 0 || e->inbox != NULL || e->results != NULL || e->cancels != NULL;
    pthread_mutex_unlock(&e->mu);
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
            pthread_mutex_lock(&e->mu);
            e->woken = false;
            pthread_mutex_unlock(&e->mu);
            continue;
        }
        int fd = (int)tag;
        /* Events for connections idle in the pool or owned by another engine are not
         * ours to act on: the pool's check finds a dead idle connection at reuse. */
        if ((size_t)fd < e->nfds && e->fds[fd].owner != NULL)
            tp__er_on_events(e->fds[fd].owner, evs[i].events);
    }
    process_queues(e);
    process_cancels(e);
    fire_timers(e);
    return e->completed;
}

void tp_http_engine_run(tp_http_engine *e)
{
    while (e != NULL && atomic_load(&e->pending) > 0)
        tp_http_engine_poll(e, TP_DURATION_INFINITE);
}
