/* tools/bench_server.c: see bench_server.h. This file starts and stops the server and runs
 * its event loops; a connection's reading and writing is in bench_server_conn.c, answers
 * held back by a schedule in bench_server_scheduled.c, the parsing of a request's headers
 * in bench_server_request.c (what they share: bench_server_internal.h).
 *
 * Per thread: a listener (SO_REUSEPORT spreads connections over the threads), an epoll
 * set (level-triggered), and scratch buffers. With a schedule there is one loop only, and
 * a timerfd armed at the schedule's next deadline wakes it. */
#include "bench_server.h"
#include "bench_server_internal.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define MAX_THREADS 64

/* The running server; touched by start and stop only (one caller thread). */
static struct {
    sloop *w;
    int n;
    int stop_fd;
    bench_sched sched;
    bench_server_phase phases[BENCH_SERVER_MAX_PHASES];
} srv = {.stop_fd = -1};

/* epoll user data for the fds that are not connections. */
static char tag_listen, tag_stop, tag_timer;

/* ---- the event loop ------------------------------------------------------------------ */

static void on_accept(sloop *w)
{
    for (;;) {
        int fd = accept4(w->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOMEM) {
                /* Level-triggered: without a pause this would spin until a close. */
                struct timespec ts = {0, 1000000};
                nanosleep(&ts, NULL);
            }
            return;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        bconn *c = calloc(1, sizeof *c);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        if (c == NULL || epoll_ctl(w->ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
            free(c);
            close(fd);
            continue;
        }
        c->fd = fd;
        c->next = w->conns;
        if (w->conns != NULL)
            w->conns->prev = c;
        w->conns = c;
    }
}

static void *worker_main(void *arg)
{
    sloop *w = arg;
    struct epoll_event evs[256];
    for (;;) {
        int n = epoll_wait(w->ep, evs, 256, -1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            break;
        for (int i = 0; i < n; i++) {
            void *p = evs[i].data.ptr;
            if (p == &tag_stop)
                goto out;
            if (p == &tag_listen) {
                on_accept(w);
                continue;
            }
            if (p == &tag_timer) {
                uint64_t ticks;
                (void)!read(w->timer_fd, &ticks, sizeof ticks); /* rearmed below */
                continue;
            }
            bconn *c = p;
            if (c->in_sched) {
                /* Unread meanwhile, so only a hang-up or an error: the answer has nowhere
                 * to go, but the request keeps its place (a real server would not know). */
                epoll_ctl(w->ep, EPOLL_CTL_DEL, c->fd, NULL);
                c->gone = true;
                c->si.cancelled = true;
                continue;
            }
            if (c->out != NULL)
                bench_server__on_writable(w, c); /* EPOLLERR/EPOLLHUP show up as a failing send */
            else
                bench_server__on_readable(w, c);
        }
        if (w->sched != NULL)
            bench_server__run_schedule(w);
    }
out:
    while (w->conns != NULL)
        bench_server__conn_close(w, w->conns);
    return NULL;
}

/* ---- start and stop ------------------------------------------------------------------ */

/* A non-blocking SO_REUSEPORT listener on 127.0.0.1:*port (0: the kernel picks, and *port
 * receives it). Returns the fd or a negative errno. */
static int listen_on(uint16_t *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    struct sockaddr_in a = {
        .sin_family = AF_INET, .sin_port = htons(*port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0 ||
        bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 4096) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &al) != 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    *port = ntohs(a.sin_port);
    return fd;
}

/* Joins the first `started` threads, then closes and frees everything. */
static void teardown(int started)
{
    if (srv.stop_fd >= 0) {
        uint64_t one = 1;
        while (write(srv.stop_fd, &one, sizeof one) < 0 && errno == EINTR) {
        }
    }
    for (int i = 0; i < started; i++)
        pthread_join(srv.w[i].tid, NULL);
    for (int i = 0; i < srv.n; i++) {
        if (srv.w[i].listen_fd >= 0)
            close(srv.w[i].listen_fd);
        if (srv.w[i].ep >= 0)
            close(srv.w[i].ep);
        if (srv.w[i].timer_fd >= 0)
            close(srv.w[i].timer_fd);
    }
    if (srv.stop_fd >= 0)
        close(srv.stop_fd);
    free(srv.w);
    srv.w = NULL;
    srv.n = 0;
    srv.stop_fd = -1;
}

void bench_server_options_init(bench_server_options *o)
{
    *o = (bench_server_options){.threads = 1};
}

int bench_server_start(int threads, uint16_t *port_out)
{
    bench_server_options o;
    bench_server_options_init(&o);
    o.threads = threads;
    return bench_server_start_ex(&o, port_out);
}

/* The schedule's fields of o, checked; copies the phases into srv. Returns 0 or -EINVAL. */
static int take_schedule(const bench_server_options *o)
{
    if (o->workers < 0 || o->service_us < 0 || o->nphases > BENCH_SERVER_MAX_PHASES ||
        (o->nphases > 0 && o->phases == NULL))
        return -EINVAL;
    for (size_t i = 0; i < o->nphases; i++) {
        const bench_server_phase *p = &o->phases[i];
        if (p->at_ms < 0 || p->workers < 0 || p->service_us < 0 ||
            (i > 0 && p->at_ms <= o->phases[i - 1].at_ms))
            return -EINVAL;
        srv.phases[i] = *p;
    }
    return 0;
}

int bench_server_start_ex(const bench_server_options *o, uint16_t *port_out)
{
    bool scheduled = o->workers > 0 || o->nphases > 0;
    int threads = scheduled ? 1 : o->threads;
    if (o->threads < 1 || o->threads > MAX_THREADS || take_schedule(o) != 0)
        return -EINVAL;
    if (srv.w != NULL)
        return -EALREADY;
    srv.w = calloc((size_t)threads, sizeof *srv.w);
    if (srv.w == NULL)
        return -ENOMEM;
    srv.n = threads;
    for (int i = 0; i < threads; i++)
        srv.w[i].listen_fd = srv.w[i].ep = srv.w[i].timer_fd = -1;
    srv.stop_fd = eventfd(0, EFD_CLOEXEC);
    int rc = srv.stop_fd < 0 ? -errno : 0;
    uint16_t port = 0;
    for (int i = 0; rc == 0 && i < threads; i++) {
        sloop *w = &srv.w[i];
        w->listen_fd = listen_on(&port); /* the first binds port 0, the others its port */
        if (w->listen_fd < 0) {
            rc = w->listen_fd;
            break;
        }
        w->ep = epoll_create1(EPOLL_CLOEXEC);
        struct epoll_event el = {.events = EPOLLIN, .data.ptr = &tag_listen};
        struct epoll_event es = {.events = EPOLLIN, .data.ptr = &tag_stop};
        if (w->ep < 0 || epoll_ctl(w->ep, EPOLL_CTL_ADD, w->listen_fd, &el) != 0 ||
            epoll_ctl(w->ep, EPOLL_CTL_ADD, srv.stop_fd, &es) != 0)
            rc = -errno;
    }
    if (rc == 0 && scheduled) {
        sloop *w = &srv.w[0];
        struct epoll_event et = {.events = EPOLLIN, .data.ptr = &tag_timer};
        w->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
        if (w->timer_fd < 0 || epoll_ctl(w->ep, EPOLL_CTL_ADD, w->timer_fd, &et) != 0)
            rc = -errno;
        bench_sched_init(&srv.sched, o->workers, o->service_us, srv.phases, o->nphases,
                         bench_server__now_ns());
        w->sched = &srv.sched;
        /* Phases are timed from here: arm for the first before any request arrives. */
        if (rc == 0)
            bench_server__run_schedule(w);
    }
    int started = 0;
    for (; rc == 0 && started < threads; started++) {
        int e = pthread_create(&srv.w[started].tid, NULL, worker_main, &srv.w[started]);
        if (e != 0)
            rc = -e;
        if (e != 0)
            break;
    }
    if (rc != 0) {
        teardown(started);
        return rc;
    }
    *port_out = port;
    return 0;
}

void bench_server_stop(void)
{
    if (srv.w != NULL)
        teardown(srv.n);
}
