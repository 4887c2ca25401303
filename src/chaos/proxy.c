/* proxy.c: the fault proxy's life and loop: options, the listener (closed while connects
 * are refused, bound again to the same port after), the epoll loop on the proxy's own
 * thread, and the hand-over of new faults from any thread to the loop. */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "chaos.h"
#include "base/workq.h"
#include "net/net.h"

#define TP__CHAOS_BUFFER (256 * 1024)
#define TP__CHAOS_EVENTS 64
#define TP__CHAOS_BACKLOG 1024

/* Tags of the loop's own fds in epoll (links are tagged with their address). */
static char listener_tag, wake_tag;

void tp_chaos_fault_init(tp_chaos_fault *f)
{
    if (f == NULL)
        return;
    memset(f, 0, sizeof *f);
    f->direction = TP_CHAOS_BOTH;
    f->probability = 1.0;
    f->reset_after_bytes = -1;
    f->reset_after = -1;
    f->limit_data = -1;
}

void tp_chaos_options_init(tp_chaos_options *o)
{
    if (o == NULL)
        return;
    memset(o, 0, sizeof *o);
    o->version = TP_CHAOS_OPTIONS_VERSION;
    o->listen_host = "127.0.0.1";
    tp_chaos_fault_init(&o->fault);
    o->connect_timeout = 5 * TP_NSEC_PER_SEC;
    o->buffer = TP__CHAOS_BUFFER;
}

static tp_err fault_validate(const tp_chaos_fault *f, tp_errinfo *err)
{
    if (f == NULL)
        return tp_errinfo_set(err, TP_EINVAL, 0, "fault: NULL");
    if (f->direction == 0 || (f->direction & ~(unsigned)TP_CHAOS_BOTH) != 0)
        return tp_errinfo_set(err, TP_EINVAL, 0, "direction: 0x%x is not up, down or both",
                              f->direction);
    if (!(f->probability >= 0.0 && f->probability <= 1.0))
        return tp_errinfo_set(err, TP_EINVAL, 0, "probability: %g is not within 0..1",
                              f->probability);
    if (f->latency < 0 || f->jitter < 0 || f->bandwidth < 0 || f->slow_close < 0 ||
        f->accept_delay < 0)
        return tp_errinfo_set(err, TP_EINVAL, 0,
                              "latency, jitter, bandwidth, slow_close and accept_delay must "
                              "not be negative");
    if (f->reset_after_bytes < -1 || f->reset_after < -1 || f->limit_data < -1)
        return tp_errinfo_set(err, TP_EINVAL, 0,
                              "reset_after_bytes, reset_after and limit_data: -1 or a bound");
    return TP_OK;
}

uint64_t tp__chaos_rand(struct tp_chaos *p)
{
    uint64_t x = p->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    p->rng = x;
    return x * UINT64_C(2685821657736338717);
}

void tp__chaos_watch(struct tp_chaos *p, int fd, unsigned *cur, unsigned ev, void *tag)
{
    if (fd < 0 || *cur == ev)
        return;
    struct epoll_event e = {.events = ev, .data.ptr = tag};
    int op = *cur == 0 ? EPOLL_CTL_ADD : ev == 0 ? EPOLL_CTL_DEL : EPOLL_CTL_MOD;
    if (epoll_ctl(p->epfd, op, fd, &e) == 0)
        *cur = ev;
}

/* ---- the listener ---------------------------------------------------------------- */

/* Follows the fault's accept_delay: a full queue of one and accepts paced by the loop,
 * or the usual backlog and accepts as connections come. */
static void listen_mode(struct tp_chaos *p, int64_t now, bool fresh)
{
    bool delay = p->fault.accept_delay > 0;
    if (p->lfd < 0 || (!fresh && delay == p->delaying))
        return;
    /* listen() again changes the accept queue's bound; 0 holds one connection (Linux
     * drops a SYN while the queue holds more than its bound). */
    (void)listen(p->lfd, delay ? 0 : TP__CHAOS_BACKLOG);
    tp__chaos_watch(p, p->lfd, &p->lev, delay ? 0 : EPOLLIN, &listener_tag);
    p->delaying = delay;
    p->next_accept = tp__saturating_add(now, p->fault.accept_delay);
}

static tp_err listen_open(struct tp_chaos *p, tp_errinfo *err)
{
    const struct sockaddr *sa = (const struct sockaddr *)&p->listen_addr;
    char ebuf[128];
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return tp_errinfo_set(err, TP_EIO, errno, "socket: %s",
                              tp__errno_text(errno, ebuf, sizeof ebuf));
    int one = 1;
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, sa, p->listen_len) != 0 || listen(fd, TP__CHAOS_BACKLOG) != 0) {
        int e = errno;
        close(fd);
        return tp_errinfo_set(err, TP_EIO, e, "listening on %s port %u: %s", p->listen_host,
                              (unsigned)p->port, tp__errno_text(e, ebuf, sizeof ebuf));
    }
    struct sockaddr_storage got;
    socklen_t len = sizeof got;
    /* The first bind (in tp_chaos_start, before the loop runs) learns the port; a bind
     * after a refusal reuses it and writes nothing other threads read. */
    if (p->port == 0 && getsockname(fd, (struct sockaddr *)&got, &len) == 0) {
        uint16_t port = got.ss_family == AF_INET6
                            ? ntohs(((struct sockaddr_in6 *)&got)->sin6_port)
                            : ntohs(((struct sockaddr_in *)&got)->sin_port);
        p->port = port;
        /* From now on the same port: a refusal ends with the listener where it was. */
        if (got.ss_family == AF_INET6)
            ((struct sockaddr_in6 *)&p->listen_addr)->sin6_port = htons(port);
        else
            ((struct sockaddr_in *)&p->listen_addr)->sin_port = htons(port);
    }
    p->lfd = fd;
    p->lev = 0;
    listen_mode(p, tp_clock_now(), true);
    return TP_OK;
}

static void listen_close(struct tp_chaos *p)
{
    if (p->lfd < 0)
        return;
    tp__chaos_watch(p, p->lfd, &p->lev, 0, &listener_tag);
    close(p->lfd);
    p->lfd = -1;
    p->delaying = false;
    atomic_fetch_add(&p->n.refused, 1);
}

/* Accepts what the queue holds: everything, or under accept_delay one connection.
 * Returns how many. */
static int accept_all(struct tp_chaos *p, int64_t now)
{
    int n = 0;
    while (p->lfd >= 0) {
        if (p->delaying) {
            if (now < p->next_accept)
                return n;
            p->next_accept = tp__saturating_add(now, p->fault.accept_delay);
        }
        int fd = accept4(p->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            return n; /* EAGAIN, or out of descriptors: the backlog keeps them */
        }
        tp__link_new(p, fd, now);
        n++;
        if (p->delaying)
            return n;
    }
    return n;
}

/* ---- the loop -------------------------------------------------------------------- */

tp_err tp__chaos_install(struct tp_chaos *p, const tp_chaos_fault *f, tp_errinfo *err)
{
    tp_errinfo_clear(err);
    tp_err rc = TP_OK;
    bool was_delaying = p->delaying;
    p->fault = *f;
    if (f->refuse)
        listen_close(p);
    else if (p->lfd < 0)
        rc = listen_open(p, err);
    else
        listen_mode(p, tp_clock_now(), false);
    if (was_delaying && !p->delaying)
        accept_all(p, tp_clock_now()); /* what waited in the queue */
    for (tp__list *n = p->links.next; n != &p->links; n = n->next)
        tp__link_redraw(TP__CONTAINER_OF(n, tp__link, node));
    return rc;
}

void tp__chaos_reset_all(struct tp_chaos *p)
{
    for (tp__list *n = p->links.next; n != &p->links; n = n->next) {
        tp__link *l = TP__CONTAINER_OF(n, tp__link, node);
        if (!l->dead) {
            atomic_fetch_add(&p->n.resets, 1);
            tp__link_close(l, true); /* freed by the loop's sweep */
        }
    }
}

/* A request handed over by tp_chaos_set_fault or tp_chaos_schedule: in force from now. */
static void apply_pending(struct tp_chaos *p, int64_t now)
{
    pthread_mutex_lock(&p->mu);
    if (!p->pending) {
        pthread_mutex_unlock(&p->mu);
        return;
    }
    bool sched = p->pending_schedule;
    tp_chaos_fault f = p->next;
    tp_chaos_step *steps = p->next_steps;
    size_t n = p->next_n;
    p->pending = false;
    p->next_steps = NULL;
    pthread_mutex_unlock(&p->mu);

    tp_errinfo err;
    tp_errinfo_clear(&err);
    tp_err rc = TP_OK;
    if (sched) {
        tp__chaos_sched_start(p, steps, n, now);
        tp__chaos_sched_tick(p, now); /* steps at 0 apply before this returns */
    } else {
        rc = tp__chaos_install(p, &f, &err);
    }

    pthread_mutex_lock(&p->mu);
    p->apply_rc = rc;
    p->apply_err = err;
    p->applied++;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

static void *loop_main(void *arg)
{
    struct tp_chaos *p = arg;
    struct epoll_event ev[TP__CHAOS_EVENTS];
    while (!atomic_load(&p->stop)) {
        int64_t now = tp_clock_now();
        tp__chaos_sched_tick(p, now);
        if (!p->fault.refuse && p->lfd < 0) { /* a rebind that failed: again */
            tp_errinfo err;
            (void)listen_open(p, &err);
        }
        int64_t due = tp__chaos_sched_next_due(p);
        if (p->delaying && p->lfd >= 0) {
            accept_all(p, now); /* one, if its time has come */
            due = TP__MIN(due, p->next_accept);
        }
        if (p->new_links) /* made above (a step, a paced accept): pump them first */
            due = now;
        p->new_links = false;
        if (!p->fault.refuse && p->lfd < 0)
            due = TP__MIN(due, now + 100 * TP_NSEC_PER_MSEC);
        for (tp__list *n = p->links.next; n != &p->links; n = n->next)
            due = TP__MIN(due, tp__link_next_due(TP__CONTAINER_OF(n, tp__link, node), now));
        int timeout_ms = 1000; /* the stop flag is also looked at by a wake-up */
        if (due != INT64_MAX) {
            int64_t wait = due <= now ? 0 : (due - now + TP_NSEC_PER_MSEC - 1) / TP_NSEC_PER_MSEC;
            timeout_ms = (int)TP__MIN(wait, (int64_t)timeout_ms);
        }
        int k = epoll_wait(p->epfd, ev, TP__CHAOS_EVENTS, timeout_ms);
        now = tp_clock_now();
        for (int i = 0; i < k; i++) {
            if (ev[i].data.ptr == &wake_tag) {
                uint64_t v;
                (void)!read(p->wakefd, &v, sizeof v);
                apply_pending(p, now);
            } else if (ev[i].data.ptr == &listener_tag) {
                accept_all(p, now);
            }
        }
        /* Every link, evented or due: a pump with nothing to do costs little, and no
         * timer can be missed. */
        tp__list *n = p->links.next;
        while (n != &p->links) {
            tp__link *l = TP__CONTAINER_OF(n, tp__link, node);
            n = n->next;
            tp__link_pump(l, now);
            if (l->dead) {
                tp__list_remove(&l->node);
                tp__link_free(l);
            }
        }
    }
    return NULL;
}

/* ---- the API --------------------------------------------------------------------- */

tp_err tp__chaos_numeric_addr(const char *host, uint16_t port, struct sockaddr_storage *ss,
                              socklen_t *len, tp_errinfo *err)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST | AI_PASSIVE};
    char service[8];
    snprintf(service, sizeof service, "%u", (unsigned)port);
    struct addrinfo *ai = NULL;
    int rc = getaddrinfo(host, service, &hints, &ai);
    if (rc != 0 || ai == NULL)
        return tp_errinfo_set(err, TP_EINVAL, 0, "%s: not a numeric address (%s)", host,
                              rc != 0 ? gai_strerror(rc) : "no address");
    memcpy(ss, ai->ai_addr, ai->ai_addrlen);
    *len = ai->ai_addrlen;
    freeaddrinfo(ai);
    return TP_OK;
}

/* The upstream's first address, through the library's resolver (its error mapping). */
static tp_err upstream_addr(struct tp_chaos *p, tp_errinfo *err)
{
    struct addrinfo *ai = NULL;
    tp_err rc = tp__resolve(p->upstream_host, p->o.upstream_port, &ai, err);
    if (rc != TP_OK)
        return rc;
    memcpy(&p->upstream_addr, ai->ai_addr, ai->ai_addrlen);
    p->upstream_len = ai->ai_addrlen;
    freeaddrinfo(ai);
    return TP_OK;
}

static void proxy_free(struct tp_chaos *p)
{
    while (!tp__list_empty(&p->links)) {
        tp__link *l = TP__CONTAINER_OF(p->links.next, tp__link, node);
        tp__list_remove(&l->node);
        tp__link_close(l, false);
        tp__link_free(l);
    }
    if (p->lfd >= 0)
        close(p->lfd);
    if (p->wakefd >= 0)
        close(p->wakefd);
    if (p->epfd >= 0)
        close(p->epfd);
    tp__free(p->steps);
    tp__free(p->next_steps);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    tp__free(p->listen_host);
    tp__free(p->upstream_host);
    tp__free(p);
}

tp_err tp_chaos_start(const tp_chaos_options *o, tp_chaos **out, tp_errinfo *err)
{
    if (out == NULL)
        return tp_errinfo_set(err, TP_EINVAL, 0, "out: NULL");
    *out = NULL;
    if (o == NULL || o->version != TP_CHAOS_OPTIONS_VERSION)
        return tp_errinfo_set(err, TP_EINVAL, 0, "options: NULL or version %u (want %u)",
                              o != NULL ? o->version : 0, TP_CHAOS_OPTIONS_VERSION);
    if (o->upstream_host == NULL || o->upstream_port == 0)
        return tp_errinfo_set(err, TP_EINVAL, 0, "upstream: host and port are required");
    if (o->connect_timeout <= 0 || o->buffer == 0)
        return tp_errinfo_set(err, TP_EINVAL, 0, "connect_timeout and buffer must be positive");
    tp_err rc = fault_validate(&o->fault, err);
    if (rc != TP_OK)
        return rc;
    struct tp_chaos *p = tp__calloc(1, sizeof *p);
    if (p == NULL)
        return tp_errinfo_set(err, TP_ENOMEM, 0, "allocating the proxy");
    p->o = *o;
    p->lfd = p->epfd = p->wakefd = -1;
    tp__list_init(&p->links);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->listen_host = tp__strdup(o->listen_host != NULL ? o->listen_host : "127.0.0.1");
    p->upstream_host = tp__strdup(o->upstream_host);
    if (p->listen_host == NULL || p->upstream_host == NULL) {
        proxy_free(p);
        return tp_errinfo_set(err, TP_ENOMEM, 0, "allocating the proxy");
    }
    p->o.listen_host = p->listen_host;
    p->o.upstream_host = p->upstream_host;
    p->port = o->listen_port;
    p->fault = o->fault;
    p->seed = o->seed != 0 ? o->seed : (uint64_t)tp_clock_now() | 1;
    p->rng = p->seed;
    if ((rc = tp__chaos_numeric_addr(p->listen_host, o->listen_port, &p->listen_addr,
                                     &p->listen_len, err)) != TP_OK ||
        (rc = upstream_addr(p, err)) != TP_OK) {
        proxy_free(p);
        return rc;
    }
    p->epfd = epoll_create1(EPOLL_CLOEXEC);
    p->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (p->epfd < 0 || p->wakefd < 0) {
        int e = errno;
        char ebuf[128];
        proxy_free(p);
        return tp_errinfo_set(err, TP_ESYS, e, "epoll or eventfd: %s",
                              tp__errno_text(e, ebuf, sizeof ebuf));
    }
    unsigned cur = 0;
    tp__chaos_watch(p, p->wakefd, &cur, EPOLLIN, &wake_tag);
    if ((rc = listen_open(p, err)) != TP_OK) {
        proxy_free(p);
        return rc;
    }
    if (o->fault.refuse)
        listen_close(p);
    if (tp__thread_start(&p->thread, loop_main, p) != 0) {
        proxy_free(p);
        return tp_errinfo_set(err, TP_ESYS, 0, "starting the proxy's thread");
    }
    if (o->control && (rc = tp__chaos_control_start(p, err)) != TP_OK) {
        tp_errinfo keep = err != NULL ? *err : (tp_errinfo){0};
        tp_chaos_stop(p);
        if (err != NULL)
            *err = keep;
        return rc;
    }
    tp_errinfo_clear(err);
    *out = p;
    return TP_OK;
}

uint16_t tp_chaos_port(const tp_chaos *c)
{
    return c != NULL ? c->port : 0;
}

/* Hands the request in c->next or c->next_steps to the loop (c->mu held) and waits for
 * its answer. */
static tp_err hand_over_locked(tp_chaos *c, tp_errinfo *err)
{
    tp_err rc;
    c->pending = true;
    uint64_t want = c->applied + 1;
    uint64_t one = 1;
    (void)!write(c->wakefd, &one, sizeof one);
    while (c->applied < want)
        pthread_cond_wait(&c->cv, &c->mu);
    rc = c->apply_rc;
    if (err != NULL)
        *err = c->apply_err;
    return rc;
}

tp_err tp_chaos_set_fault(tp_chaos *c, const tp_chaos_fault *f, tp_errinfo *err)
{
    if (c == NULL)
        return tp_errinfo_set(err, TP_EINVAL, 0, "proxy: NULL");
    tp_err rc = fault_validate(f, err);
    if (rc != TP_OK)
        return rc;
    pthread_mutex_lock(&c->mu);
    c->next = *f;
    c->pending_schedule = false;
    rc = hand_over_locked(c, err);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

/* By time, steps of the same time in the order given (insertion: schedules are short). */
static void sort_steps(tp_chaos_step *s, size_t n)
{
    for (size_t i = 1; i < n; i++) {
        tp_chaos_step v = s[i];
        size_t j = i;
        while (j > 0 && s[j - 1].at > v.at) {
            s[j] = s[j - 1];
            j--;
        }
        s[j] = v;
    }
}

tp_err tp_chaos_schedule(tp_chaos *c, const tp_chaos_step *steps, size_t n, tp_errinfo *err)
{
    if (c == NULL || (steps == NULL && n > 0))
        return tp_errinfo_set(err, TP_EINVAL, 0, "proxy or steps: NULL");
    for (size_t i = 0; i < n; i++) {
        if (steps[i].at < 0 || steps[i].duration < -1)
            return tp_errinfo_set(err, TP_EINVAL, 0, "step %zu: at must be >= 0, duration -1 "
                                  "or >= 0", i);
        if (steps[i].down && steps[i].duration < 0)
            return tp_errinfo_set(err, TP_EINVAL, 0, "step %zu: down needs a duration", i);
        tp_err rc = steps[i].set_fault ? fault_validate(&steps[i].fault, err) : TP_OK;
        if (rc != TP_OK)
            return rc;
    }
    tp_chaos_step *copy = NULL;
    if (n > 0) {
        copy = tp__calloc(n, sizeof *copy);
        if (copy == NULL)
            return tp_errinfo_set(err, TP_ENOMEM, 0, "copying %zu steps", n);
        memcpy(copy, steps, n * sizeof *copy);
        sort_steps(copy, n);
    }
    pthread_mutex_lock(&c->mu);
    tp__free(c->next_steps); /* a request the loop has not taken yet */
    c->next_steps = copy;
    c->next_n = n;
    c->pending_schedule = true;
    tp_err rc = hand_over_locked(c, err);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

void tp_chaos_counters_read(const tp_chaos *c, tp_chaos_counters *out)
{
    if (out == NULL)
        return;
    memset(out, 0, sizeof *out);
    if (c == NULL)
        return;
    const tp__chaos_counters *n = &c->n;
    out->seed = c->seed;
    out->accepted = atomic_load(&n->accepted);
    out->open = atomic_load(&n->open);
    out->upstream_failures = atomic_load(&n->upstream_failures);
    out->bytes_up = atomic_load(&n->bytes_up);
    out->bytes_down = atomic_load(&n->bytes_down);
    out->bytes_dropped = atomic_load(&n->bytes_dropped);
    out->faulted = atomic_load(&n->faulted);
    out->resets = atomic_load(&n->resets);
    out->limits = atomic_load(&n->limits);
    out->half_opened = atomic_load(&n->half_opened);
    out->refused = atomic_load(&n->refused);
    out->steps = atomic_load(&n->steps);
}

void tp_chaos_stop(tp_chaos *c)
{
    if (c == NULL)
        return;
    tp__chaos_control_stop(c); /* no request can reach the loop after this */
    atomic_store(&c->stop, true);
    uint64_t one = 1;
    (void)!write(c->wakefd, &one, sizeof one);
    pthread_join(c->thread, NULL);
    proxy_free(c);
}
