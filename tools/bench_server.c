/* tools/bench_server.c: see bench_server.h.
 *
 * Per thread: a listener (SO_REUSEPORT spreads connections over the threads), an epoll
 * set (level-triggered), and scratch buffers. A connection normally owns no buffer at all:
 * bytes are read into the thread's scratch, complete requests are answered from it, and
 * only an incomplete request's bytes (carried to the next read) or output the socket did
 * not take (sent on EPOLLOUT) are copied into the connection. While output is pending the
 * connection is not read, so a client that does not read cannot make us buffer more.
 *
 * With a schedule (one loop only), a complete request is not answered at once: it goes into
 * the bench_sched queue and the connection is not read until its answer, written when the
 * schedule says it is due, has gone out. A timerfd armed at the schedule's next deadline
 * wakes the loop; answers and phases are handled after each round of events. */
#include "bench_server.h"
#include "bench_sched.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define MAX_THREADS 64
#define IN_SCRATCH (64 * 1024)
#define OUT_SCRATCH (256 * 1024)
#define MAX_HEADER (16 * 1024)

static const char resp_keep[] = BENCH_SERVER_RESPONSE;
static const char resp_close[] = "HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: "
                                 "text/plain\r\nConnection: close\r\n\r\n" BENCH_SERVER_BODY;

typedef struct bconn {
    int fd;
    bool close_after; /* answered a "close" request: close once the output is written */
    size_t skip;      /* request body bytes still to read and discard */
    char *keep;       /* unanswered input carried over (an incomplete request, or input */
    size_t keep_len;  /* that waits for pending output to drain) */
    char *out;        /* output the socket did not take yet */
    size_t out_len, out_off;
    struct bconn *prev, *next;
    bench_sched_item si; /* scheduled: the request in the queue or in service */
    bool in_sched;       /* si is in the schedule; the connection is not read meanwhile */
    bool gone;           /* hung up while in the schedule: out of epoll, closed when served */
    bool resp_close, resp_head; /* how to answer the request in the schedule */
} bconn;

typedef struct worker {
    pthread_t tid;
    int listen_fd, ep;
    int timer_fd;        /* scheduled: fires at the schedule's next deadline; else -1 */
    bench_sched *sched;  /* NULL without a schedule */
    bconn *conns; /* every open connection, to close them at stop */
    char in[IN_SCRATCH];
    char out[OUT_SCRATCH];
} worker;

/* The running server; touched by start and stop only (one caller thread). */
static struct {
    worker *w;
    int n;
    int stop_fd;
    bench_sched sched;
    bench_server_phase phases[BENCH_SERVER_MAX_PHASES];
} srv = {.stop_fd = -1};

/* epoll user data for the fds that are not connections. */
static char tag_listen, tag_stop, tag_timer;

/* ---- request scanning ---------------------------------------------------------------- */

/* Case-insensitive search for the token tok in v[0..n) (a Connection header value). */
static bool has_token(const char *v, size_t n, const char *tok)
{
    size_t tl = strlen(tok);
    for (size_t i = 0; i + tl <= n; i++) {
        if (strncasecmp(v + i, tok, tl) == 0 && (i == 0 || v[i - 1] == ' ' || v[i - 1] == ',') &&
            (i + tl == n || v[i + tl] == ' ' || v[i + tl] == ','))
            return true;
    }
    return false;
}

/* Reads the header block h[0..n) (request line to the last header's CRLF). Sets *body to
 * the Content-Length (0 without one), *close and *head. Returns -1 for what we do not
 * serve: a chunked body or a malformed Content-Length. */
static int scan_headers(const char *h, size_t n, size_t *body, bool *close, bool *head)
{
    const char *end = h + n, *eol = memchr(h, '\n', n);
    bool http10 = eol != NULL && eol - h >= 9 && memcmp(eol - 9, "HTTP/1.0", 8) == 0;
    bool conn_close = false, conn_keep = false;
    *body = 0;
    *head = n >= 5 && memcmp(h, "HEAD ", 5) == 0;
    for (const char *p = eol != NULL ? eol + 1 : end; p < end; p = eol + 1) {
        eol = memchr(p, '\n', (size_t)(end - p));
        if (eol == NULL)
            eol = end;
        const char *colon = memchr(p, ':', (size_t)(eol - p));
        if (colon == NULL)
            continue;
        const char *v = colon + 1, *ve = eol;
        while (v < ve && (*v == ' ' || *v == '\t'))
            v++;
        while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t'))
            ve--;
        size_t nl = (size_t)(colon - p), vl = (size_t)(ve - v);
        if (nl == 14 && strncasecmp(p, "content-length", 14) == 0) {
            size_t x = 0;
            if (vl == 0 || vl > 15)
                return -1;
            for (size_t i = 0; i < vl; i++) {
                if (v[i] < '0' || v[i] > '9')
                    return -1;
                x = x * 10 + (size_t)(v[i] - '0');
            }
            *body = x;
        } else if (nl == 17 && strncasecmp(p, "transfer-encoding", 17) == 0) {
            return -1;
        } else if (nl == 10 && strncasecmp(p, "connection", 10) == 0) {
            conn_close |= has_token(v, vl, "close");
            conn_keep |= has_token(v, vl, "keep-alive");
        }
    }
    *close = conn_close || (http10 && !conn_keep);
    return 0;
}

/* ---- connections --------------------------------------------------------------------- */

static void conn_close(worker *w, bconn *c)
{
    close(c->fd); /* also leaves the epoll set: the fd is never duplicated */
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        w->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    free(c->keep);
    free(c->out);
    free(c);
}

static int set_interest(worker *w, bconn *c, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.ptr = c};
    return epoll_ctl(w->ep, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Sends p[0..n); what the socket does not take is copied to c->out. Returns -1 on a
 * socket error or out of memory. */
static int send_or_keep(bconn *c, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t s = send(c->fd, p, n, MSG_NOSIGNAL);
        if (s > 0) {
            p += s;
            n -= (size_t)s;
        } else if (s < 0 && errno == EINTR) {
            continue;
        } else if (s < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            c->out = malloc(n);
            if (c->out == NULL)
                return -1;
            memcpy(c->out, p, n);
            c->out_len = n;
            c->out_off = 0;
            return 0;
        } else {
            return -1;
        }
    }
    return 0;
}

/* Answers the complete requests in data[0..len) in order, as long as the socket takes
 * the answers; keeps the rest in c->keep. Returns -1 when the connection must close now
 * (bad request, socket error, out of memory). */
static int serve(worker *w, bconn *c, const char *data, size_t len)
{
    size_t pos = 0;
    bool blocked = false;
    while (!blocked && !c->close_after) {
        size_t olen = 0;
        bool more = true;
        while (more && !c->close_after && olen + sizeof resp_close <= OUT_SCRATCH) {
            size_t k = c->skip < len - pos ? c->skip : len - pos;
            pos += k;
            c->skip -= k;
            const char *hend = c->skip == 0 ? memmem(data + pos, len - pos, "\r\n\r\n", 4) : NULL;
            if (hend == NULL) {
                more = false;
                break;
            }
            size_t body, hl = (size_t)(hend - (data + pos)) + 4;
            bool cl, head;
            if (scan_headers(data + pos, hl - 2, &body, &cl, &head) != 0)
                return -1;
            const char *r = cl ? resp_close : resp_keep;
            size_t rl = (cl ? sizeof resp_close : sizeof resp_keep) - 1;
            if (head)
                rl -= sizeof BENCH_SERVER_BODY - 1;
            memcpy(w->out + olen, r, rl);
            olen += rl;
            pos += hl;
            c->skip = body;
            c->close_after = cl;
        }
        if (olen > 0 && send_or_keep(c, w->out, olen) != 0)
            return -1;
        blocked = c->out != NULL;
        if (!more)
            break;
    }
    size_t rest = c->close_after ? 0 : len - pos;
    if (!blocked && rest > MAX_HEADER)
        return -1; /* no end of headers in sight */
    if (rest > 0) {
        c->keep = malloc(rest);
        if (c->keep == NULL)
            return -1;
        memcpy(c->keep, data + pos, rest);
    }
    c->keep_len = rest;
    return 0;
}

/* After serve(): wait for the socket to take pending output, close, or read on. */
static void settle(worker *w, bconn *c, bool was_blocked)
{
    if (c->out != NULL) {
        if (!was_blocked && set_interest(w, c, EPOLLOUT) != 0)
            conn_close(w, c);
    } else if (c->close_after) {
        conn_close(w, c);
    } else if (was_blocked && set_interest(w, c, EPOLLIN) != 0) {
        conn_close(w, c);
    }
}

/* ---- scheduled answers ---------------------------------------------------------------- */

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Scheduled mode: takes the first complete request of data[0..len) into the schedule and
 * keeps the rest in c->keep (c->keep must be empty). Leaves the connection unread while the
 * request is in the schedule. Returns -1 when the connection must close now. */
static int take_one(worker *w, bconn *c, const char *data, size_t len)
{
    size_t pos = c->skip < len ? c->skip : len;
    c->skip -= pos;
    const char *hend = c->skip == 0 && len > pos ? memmem(data + pos, len - pos, "\r\n\r\n", 4)
                                                 : NULL;
    if (hend != NULL) {
        size_t body, hl = (size_t)(hend - (data + pos)) + 4;
        if (scan_headers(data + pos, hl - 2, &body, &c->resp_close, &c->resp_head) != 0)
            return -1;
        pos += hl;
        c->skip = body;
    }
    size_t rest = hend != NULL && c->resp_close ? 0 : len - pos;
    if (hend == NULL && rest > MAX_HEADER)
        return -1;
    if (rest > 0) {
        c->keep = malloc(rest);
        if (c->keep == NULL)
            return -1;
        memcpy(c->keep, data + pos, rest);
        c->keep_len = rest;
    }
    if (hend == NULL)
        return 0;
    if (set_interest(w, c, 0) != 0)
        return -1;
    c->in_sched = true;
    bench_sched_submit(w->sched, &c->si);
    return 0;
}

/* Scheduled mode, nothing pending on c: takes its next kept request, or reads on. */
static void next_request(worker *w, bconn *c)
{
    char *data = c->keep;
    size_t len = c->keep_len;
    c->keep = NULL;
    c->keep_len = 0;
    int rc = take_one(w, c, data, len);
    free(data);
    if (rc != 0 || (!c->in_sched && set_interest(w, c, EPOLLIN) != 0))
        conn_close(w, c);
}

/* Scheduled mode: the answer to c's request is due. */
static void on_served(worker *w, bconn *c)
{
    c->in_sched = false;
    if (c->gone) {
        conn_close(w, c);
        return;
    }
    const char *r = c->resp_close ? resp_close : resp_keep;
    size_t rl = (c->resp_close ? sizeof resp_close : sizeof resp_keep) - 1;
    if (c->resp_head)
        rl -= sizeof BENCH_SERVER_BODY - 1;
    c->close_after = c->resp_close;
    if (send_or_keep(c, r, rl) != 0)
        conn_close(w, c);
    else if (c->out != NULL)
        settle(w, c, false); /* on_writable() goes on when the socket took it */
    else if (c->close_after)
        conn_close(w, c);
    else
        next_request(w, c);
}

/* Scheduled mode: answers what is due, then arms the timer for what comes next. */
static void run_schedule(worker *w)
{
    bench_sched_item *it;
    while ((it = bench_sched_due(w->sched, now_ns())) != NULL)
        on_served(w, (bconn *)(void *)((char *)it - offsetof(bconn, si)));
    int64_t d = bench_sched_deadline(w->sched);
    struct itimerspec t = {{0, 0}, {0, 0}}; /* all zero disarms */
    if (d != INT64_MAX) {
        t.it_value.tv_sec = d / 1000000000;
        t.it_value.tv_nsec = d % 1000000000;
        if (t.it_value.tv_sec == 0 && t.it_value.tv_nsec == 0)
            t.it_value.tv_nsec = 1;
    }
    timerfd_settime(w->timer_fd, TFD_TIMER_ABSTIME, &t, NULL);
}

static void on_readable(worker *w, bconn *c)
{
    size_t have = c->keep_len;
    if (have > 0)
        memcpy(w->in, c->keep, have);
    ssize_t n = recv(c->fd, w->in + have, IN_SCRATCH - have, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        conn_close(w, c); /* the peer closed (or failed); all it sent has been answered */
        return;
    }
    free(c->keep);
    c->keep = NULL;
    c->keep_len = 0;
    if (w->sched != NULL) {
        if (take_one(w, c, w->in, have + (size_t)n) != 0)
            conn_close(w, c);
        return;
    }
    if (serve(w, c, w->in, have + (size_t)n) != 0) {
        conn_close(w, c);
        return;
    }
    settle(w, c, false);
}

static void on_writable(worker *w, bconn *c)
{
    ssize_t s = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
    if (s < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (s <= 0) {
        conn_close(w, c);
        return;
    }
    c->out_off += (size_t)s;
    if (c->out_off < c->out_len)
        return;
    free(c->out);
    c->out = NULL;
    if (w->sched != NULL) {
        if (c->close_after)
            conn_close(w, c);
        else
            next_request(w, c);
        return;
    }
    /* Input that arrived with the blocked batch is answered before reading more. */
    size_t have = c->keep_len;
    if (have > 0 && !c->close_after) {
        memcpy(w->in, c->keep, have);
        free(c->keep);
        c->keep = NULL;
        c->keep_len = 0;
        if (serve(w, c, w->in, have) != 0) {
            conn_close(w, c);
            return;
        }
    }
    settle(w, c, true);
}

static void on_accept(worker *w)
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
    worker *w = arg;
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
                on_writable(w, c); /* EPOLLERR/EPOLLHUP show up as a failing send */
            else
                on_readable(w, c);
        }
        if (w->sched != NULL)
            run_schedule(w);
    }
out:
    while (w->conns != NULL)
        conn_close(w, w->conns);
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
        worker *w = &srv.w[i];
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
        worker *w = &srv.w[0];
        struct epoll_event et = {.events = EPOLLIN, .data.ptr = &tag_timer};
        w->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
        if (w->timer_fd < 0 || epoll_ctl(w->ep, EPOLL_CTL_ADD, w->timer_fd, &et) != 0)
            rc = -errno;
        bench_sched_init(&srv.sched, o->workers, o->service_us, srv.phases, o->nphases,
                         now_ns());
        w->sched = &srv.sched;
        /* Phases are timed from here: arm for the first before any request arrives. */
        if (rc == 0)
            run_schedule(w);
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
