/* link.c: one proxied connection: a client socket, its upstream socket, and a direction
 * each way that reads, holds data until it is due (latency), meters it out (bandwidth,
 * slices), and applies the faults that count bytes or time. Runs on the proxy's loop
 * thread only. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "chaos.h"
#include "net/net.h"

#define TP__CHAOS_READ 65536

/* ---- faults as they apply to one direction ---------------------------------------- */

static const tp_chaos_fault *fault_of(const tp__link *l, const tp__dir *d)
{
    const tp_chaos_fault *f = &l->proxy->fault;
    return l->faulted && (f->direction & d->bit) ? f : NULL;
}

static bool blackholed(const tp__link *l, const tp__dir *d)
{
    const tp_chaos_fault *f = fault_of(l, d);
    return f != NULL && f->blackhole;
}

/* A bandwidth cap's burst: 10 ms worth, at least one full-sized segment. */
static double burst_of(int64_t rate)
{
    double b = (double)rate / 100.0;
    return b < 1500.0 ? 1500.0 : b;
}

static void refill(tp__dir *d, int64_t rate, int64_t now)
{
    double b = burst_of(rate);
    d->tokens += (double)(now - d->tokens_at) * (double)rate / 1e9;
    if (d->tokens > b)
        d->tokens = b;
    d->tokens_at = now;
}

/* ---- creating and closing -------------------------------------------------------- */

static void dir_init(tp__dir *d, int from, int to, unsigned bit, int64_t now)
{
    memset(d, 0, sizeof *d);
    d->from = from;
    d->to = to;
    d->bit = bit;
    d->tokens_at = now;
    d->tokens = 1e18; /* capped at the burst on the first refill */
}

static void drop_chunks(tp__dir *d)
{
    while (d->head != NULL) {
        tp__chunk *c = d->head;
        d->head = c->next;
        tp__free(c);
    }
    d->tail = NULL;
    d->queued = 0;
}

static void reset_fd(int fd)
{
    struct linger lg = {1, 0}; /* close() then sends RST, not FIN */
    (void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(fd);
}

void tp__link_close(tp__link *l, bool reset)
{
    if (l->dead)
        return;
    struct tp_chaos *p = l->proxy;
    int *fds[2] = {&l->cfd, &l->ufd};
    unsigned *evs[2] = {&l->cev, &l->uev};
    for (int i = 0; i < 2; i++) {
        if (*fds[i] < 0)
            continue;
        tp__chaos_watch(p, *fds[i], evs[i], 0, l);
        if (reset)
            reset_fd(*fds[i]);
        else
            close(*fds[i]);
        *fds[i] = -1;
    }
    drop_chunks(&l->up);
    drop_chunks(&l->down);
    l->dead = true;
    atomic_fetch_sub(&p->n.open, 1);
}

void tp__link_free(tp__link *l)
{
    tp__free(l);
}

static bool draw(struct tp_chaos *p)
{
    double prob = p->fault.probability;
    if (prob >= 1.0)
        return true;
    if (prob <= 0.0)
        return false;
    return (double)(tp__chaos_rand(p) >> 11) * 0x1.0p-53 < prob;
}

void tp__link_redraw(tp__link *l)
{
    l->faulted = draw(l->proxy);
    if (l->faulted)
        atomic_fetch_add(&l->proxy->n.faulted, 1);
}

tp__link *tp__link_new(struct tp_chaos *p, int cfd, int64_t now)
{
    tp__link *l = tp__calloc(1, sizeof *l);
    if (l == NULL) {
        reset_fd(cfd);
        return NULL;
    }
    int one = 1;
    (void)setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    tp_errinfo err;
    int ufd = -1;
    tp_err rc = tp__tcp_connect_start((const struct sockaddr *)&p->upstream_addr,
                                      p->upstream_len, &ufd, p->upstream_host, &err);
    if (rc != TP_OK && rc != TP_PENDING) {
        atomic_fetch_add(&p->n.accepted, 1);
        atomic_fetch_add(&p->n.upstream_failures, 1);
        reset_fd(cfd);
        tp__free(l);
        return NULL;
    }
    l->proxy = p;
    l->cfd = cfd;
    l->ufd = ufd;
    l->connecting = rc == TP_PENDING;
    l->connect_deadline = tp__saturating_add(now, p->o.connect_timeout);
    l->accepted_at = now;
    dir_init(&l->up, cfd, ufd, TP_CHAOS_UP, now);
    dir_init(&l->down, ufd, cfd, TP_CHAOS_DOWN, now);
    tp__list_push_back(&p->links, &l->node);
    p->new_links = true;
    atomic_fetch_add(&p->n.accepted, 1);
    atomic_fetch_add(&p->n.open, 1);
    tp__link_redraw(l);
    return l;
}

/* ---- moving data ----------------------------------------------------------------- */

static bool may_read(const tp__link *l, const tp__dir *d)
{
    if (l->frozen || d->eof || d->queued >= l->proxy->o.buffer)
        return false;
    if (l->connecting && d == &l->down)
        return false;
    const tp_chaos_fault *f = fault_of(l, d);
    return f == NULL || !f->stop_reading;
}

static int64_t delay_of(tp__link *l, const tp__dir *d)
{
    const tp_chaos_fault *f = fault_of(l, d);
    if (f == NULL)
        return 0;
    int64_t lat = f->latency;
    if (f->jitter > 0) {
        uint64_t span = 2 * (uint64_t)f->jitter + 1;
        lat += (int64_t)(tp__chaos_rand(l->proxy) % span) - f->jitter;
    }
    return lat < 0 ? 0 : lat;
}

/* Reads what the sender has (up to the buffer). False if the link was closed. */
static bool dir_read(tp__link *l, tp__dir *d, int64_t now)
{
    struct tp_chaos *p = l->proxy;
    unsigned char buf[TP__CHAOS_READ];
    while (may_read(l, d)) {
        size_t room = p->o.buffer - d->queued;
        size_t want = room < sizeof buf ? room : sizeof buf;
        ssize_t n = read(d->from, buf, want);
        if (n > 0) {
            if (blackholed(l, d)) {
                atomic_fetch_add(&p->n.bytes_dropped, (uint64_t)n);
                continue;
            }
            tp__chunk *c = tp__malloc(sizeof *c + (size_t)n);
            if (c == NULL) { /* cannot hold it: the connection cannot go on intact */
                tp__link_close(l, true);
                return false;
            }
            memcpy(c->data, buf, (size_t)n);
            c->len = (size_t)n;
            c->off = 0;
            c->next = NULL;
            int64_t due = tp__saturating_add(now, delay_of(l, d));
            c->due = d->last_due = due > d->last_due ? due : d->last_due;
            if (d->tail != NULL)
                d->tail->next = c;
            else
                d->head = c;
            d->tail = c;
            d->queued += (size_t)n;
            continue;
        }
        if (n == 0) {
            d->eof = true;
            const tp_chaos_fault *f = fault_of(l, d);
            int64_t due = tp__saturating_add(now, f != NULL ? f->slow_close : 0);
            d->fin_due = due > d->last_due ? due : d->last_due;
            break;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            break;
        tp__link_close(l, true); /* the sender reset: so does the proxy, to the other */
        return false;
    }
    return true;
}

/* How many bytes a byte-counting fault still lets through; SIZE_MAX if none counts. */
static size_t room_before(int64_t bound, uint64_t forwarded)
{
    if (bound < 0)
        return SIZE_MAX;
    return (uint64_t)bound > forwarded ? (size_t)((uint64_t)bound - forwarded) : 0;
}

/* Writes the data that is due. False if the link was closed. */
static bool dir_write(tp__link *l, tp__dir *d, int64_t now)
{
    struct tp_chaos *p = l->proxy;
    if (l->connecting && d == &l->up)
        return true;
    const tp_chaos_fault *f = fault_of(l, d);
    if (f != NULL && f->bandwidth > 0)
        refill(d, f->bandwidth, now);
    while (d->head != NULL && d->head->due <= now) {
        tp__chunk *c = d->head;
        size_t n = c->len - c->off;
        if (f != NULL) {
            size_t reset_room = room_before(f->reset_after_bytes, d->forwarded);
            size_t limit_room = room_before(f->limit_data, d->forwarded);
            if (reset_room == 0) {
                atomic_fetch_add(&p->n.resets, 1);
                tp__link_close(l, true);
                return false;
            }
            if (limit_room == 0) {
                atomic_fetch_add(&p->n.limits, 1);
                tp__link_close(l, false);
                return false;
            }
            n = TP__MIN(n, TP__MIN(reset_room, limit_room));
            if (f->slice > 0)
                n = TP__MIN(n, f->slice);
            if (f->bandwidth > 0) {
                size_t t = d->tokens >= 1.0 ? (size_t)d->tokens : 0;
                if (t == 0)
                    break; /* tp__link_next_due says when there is more */
                n = TP__MIN(n, t);
            }
        }
        ssize_t w = send(d->to, c->data + c->off, n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                d->blocked = true;
                break;
            }
            tp__link_close(l, true); /* the receiver is gone */
            return false;
        }
        d->blocked = false;
        d->forwarded += (uint64_t)w;
        atomic_fetch_add(d->bit == TP_CHAOS_UP ? &p->n.bytes_up : &p->n.bytes_down, (uint64_t)w);
        if (f != NULL && f->bandwidth > 0)
            d->tokens -= (double)w;
        c->off += (size_t)w;
        d->queued -= (size_t)w;
        if (c->off == c->len) {
            d->head = c->next;
            if (d->head == NULL)
                d->tail = NULL;
            tp__free(c);
        }
        if (f != NULL && room_before(f->reset_after_bytes, d->forwarded) == 0) {
            atomic_fetch_add(&p->n.resets, 1);
            tp__link_close(l, true);
            return false;
        }
        if (f != NULL && room_before(f->limit_data, d->forwarded) == 0) {
            atomic_fetch_add(&p->n.limits, 1);
            tp__link_close(l, false);
            return false;
        }
    }
    if (d->head == NULL && d->eof && !d->fin_sent && !blackholed(l, d) && now >= d->fin_due) {
        (void)shutdown(d->to, SHUT_WR);
        d->fin_sent = true;
    }
    return true;
}

/* Both ways finished: every FIN passed on (or swallowed by a black hole). */
static bool dir_done(const tp__link *l, const tp__dir *d)
{
    return d->fin_sent || (d->eof && blackholed(l, d));
}

static void freeze(tp__link *l)
{
    struct tp_chaos *p = l->proxy;
    l->frozen = true;
    drop_chunks(&l->up);
    drop_chunks(&l->down);
    tp__chaos_watch(p, l->cfd, &l->cev, 0, l);
    if (l->ufd >= 0)
        tp__chaos_watch(p, l->ufd, &l->uev, 0, l);
    atomic_fetch_add(&p->n.half_opened, 1);
}

/* The upstream connect, once its socket is writable or its time is up. False if the
 * link was closed. */
static bool finish_connect(tp__link *l, int64_t now)
{
    struct tp_chaos *p = l->proxy;
    struct pollfd pf = {.fd = l->ufd, .events = POLLOUT};
    if (poll(&pf, 1, 0) == 1) {
        tp_errinfo err;
        if (tp__tcp_connect_finish(l->ufd, p->upstream_host, &err) == TP_OK) {
            l->connecting = false;
            return true;
        }
    } else if (now < l->connect_deadline) {
        return true;
    }
    atomic_fetch_add(&p->n.upstream_failures, 1);
    tp__link_close(l, true);
    return false;
}

void tp__link_pump(tp__link *l, int64_t now)
{
    if (l->dead || l->frozen)
        return;
    struct tp_chaos *p = l->proxy;
    if (l->connecting && !finish_connect(l, now))
        return;
    if (l->faulted && p->fault.half_open) {
        freeze(l);
        return;
    }
    if (l->faulted && p->fault.reset_after >= 0 &&
        now >= tp__saturating_add(l->accepted_at, p->fault.reset_after)) {
        atomic_fetch_add(&p->n.resets, 1);
        tp__link_close(l, true);
        return;
    }
    tp__dir *dirs[2] = {&l->up, &l->down};
    for (int i = 0; i < 2; i++)
        if (!dir_write(l, dirs[i], now) || !dir_read(l, dirs[i], now) ||
            !dir_write(l, dirs[i], now))
            return;
    if (dir_done(l, &l->up) && dir_done(l, &l->down)) {
        tp__link_close(l, false);
        return;
    }
    unsigned cev = (may_read(l, &l->up) ? EPOLLIN : 0) | (l->down.blocked ? EPOLLOUT : 0);
    unsigned uev = l->connecting ? EPOLLOUT
                                 : (may_read(l, &l->down) ? EPOLLIN : 0) |
                                       (l->up.blocked ? EPOLLOUT : 0);
    tp__chaos_watch(p, l->cfd, &l->cev, cev, l);
    tp__chaos_watch(p, l->ufd, &l->uev, uev, l);
}

static int64_t dir_next_due(const tp__link *l, const tp__dir *d, int64_t now)
{
    int64_t due = INT64_MAX;
    if (d->head != NULL && !d->blocked && !(l->connecting && d == &l->up)) {
        due = d->head->due;
        const tp_chaos_fault *f = fault_of(l, d);
        if (due <= now && f != NULL && f->bandwidth > 0 && d->tokens < 1.0) {
            /* enough tokens for a burst's worth, or for what is left */
            double need = TP__MIN(burst_of(f->bandwidth), (double)d->queued) - d->tokens;
            due = now + (int64_t)(need * 1e9 / (double)f->bandwidth) + 1;
        }
    }
    /* A FIN a black hole swallows is never due. */
    if (d->head == NULL && d->eof && !d->fin_sent && !blackholed(l, d) && d->fin_due < due)
        due = d->fin_due;
    return due;
}

int64_t tp__link_next_due(const tp__link *l, int64_t now)
{
    if (l->dead || l->frozen)
        return INT64_MAX;
    const struct tp_chaos *p = l->proxy;
    int64_t due = l->connecting ? l->connect_deadline : INT64_MAX;
    if (l->faulted && p->fault.reset_after >= 0)
        due = TP__MIN(due, tp__saturating_add(l->accepted_at, p->fault.reset_after));
    due = TP__MIN(due, dir_next_due(l, &l->up, now));
    return TP__MIN(due, dir_next_due(l, &l->down, now));
}
