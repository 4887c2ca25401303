/* tests/support/http_test_server.c: see http_test_server.h. The server's life cycle, its
 * threads and sockets, reading requests. What each mode writes is in hts_modes.c,
 * request framing in hts_parse.c, the blackhole listener in hts_blackhole.c.
 *
 * Every wait (for bytes, for room to write, a stall) polls the connection together with
 * one eventfd that hts_stop() makes readable for good, so no thread can stay blocked
 * once the server stops; sockets are non-blocking for the same reason. */
#include "support/http_test_server.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "support/hts_internal.h"

/* ---- copies of the options ----------------------------------------------------------- */

static char *dup_bytes(const char *p, size_t n)
{
    char *d = malloc(n + 1);
    if (d != NULL) {
        memcpy(d, p, n);
        d[n] = '\0';
    }
    return d;
}

/* Deep-copies src into dst with defaults resolved. Returns -1 on out of memory. */
static int copy_behavior(hts_behavior *dst, const hts_behavior *src)
{
    *dst = *src;
    const char *body = src->body != NULL ? src->body : HTS_DEFAULT_BODY;
    dst->body_len = src->body != NULL && src->body_len > 0 ? src->body_len : strlen(body);
    const char *raw = src->raw != NULL                  ? src->raw
                      : src->mode == HTS_UNSOLICITED    ? HTS_DEFAULT_UNSOLICITED
                      : src->mode == HTS_EARLY_RESPONSE ? HTS_DEFAULT_EARLY
                                                        : "";
    dst->raw_len = src->raw != NULL && src->raw_len > 0 ? src->raw_len : strlen(raw);
    dst->body = dup_bytes(body, dst->body_len);
    dst->raw = dup_bytes(raw, dst->raw_len);
    return dst->body != NULL && dst->raw != NULL ? 0 : -1;
}

static void free_behavior(hts_behavior *b)
{
    free((char *)b->body);
    free((char *)b->raw);
}

/* ---- waiting and writing, interruptible by hts_stop() (see hts_internal.h) ---------- */

int hts__wait_fd(hts_server *s, int fd, short events, int timeout_ms)
{
    struct pollfd p[2] = {{.fd = s->stop_fd, .events = POLLIN}, {.fd = fd, .events = events}};
    nfds_t n = fd >= 0 ? 2 : 1;
    for (;;) {
        int r = poll(p, n, timeout_ms);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 || p[0].revents != 0)
            return -1;
        return r > 0 ? 1 : 0;
    }
}

int hts__stall(hts_server *s, int ms)
{
    return hts__wait_fd(s, -1, 0, ms) == 0 ? 0 : -1;
}

int hts__write_all(hts_server *s, int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
        } else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (hts__wait_fd(s, fd, POLLOUT, -1) != 1)
                return -1;
        } else if (!(w < 0 && errno == EINTR)) {
            return -1;
        }
    }
    return 0;
}

/* ---- one connection ------------------------------------------------------------------ */

typedef struct cbuf {
    char *p;
    size_t len, cap;
} cbuf;

/* Reads until in holds a complete request (*req). idle_ms bounds the wait for the first
 * byte only (-1: none). Returns 1 complete, 0 closed by the peer / idle limit / stopping,
 * -1 malformed or error. */
static int read_request(hts_conn *c, cbuf *in, hts_req *req, int idle_ms)
{
    for (;;) {
        int r = hts_parse_request(in->p, in->len, req);
        if (r != 0)
            return r;
        if (in->len == in->cap) {
            size_t cap = in->cap * 2;
            if (cap > 2 * HTS_MAX_BODY_BYTES)
                return -1;
            char *p = realloc(in->p, cap);
            if (p == NULL)
                return -1;
            in->p = p;
            in->cap = cap;
        }
        int w = hts__wait_fd(c->s, c->fd, POLLIN, in->len == 0 ? idle_ms : -1);
        if (w <= 0)
            return 0;
        ssize_t n = recv(c->fd, in->p + in->len, in->cap - in->len, 0);
        if (n == 0)
            return 0;
        if (n < 0 && errno != EAGAIN && errno != EINTR)
            return -1;
        if (n > 0)
            in->len += (size_t)n;
    }
}

static void record_last(hts_server *s, const char *p, size_t n)
{
    char *copy = dup_bytes(p, n);
    pthread_mutex_lock(&s->mu);
    free(s->last);
    s->last = copy;
    s->last_len = copy != NULL ? n : 0;
    pthread_mutex_unlock(&s->mu);
}

/* HTS_EARLY_RESPONSE: the answer once the header is in, the body never read. */
static int early_response(hts_conn *c, cbuf *in)
{
    hts_server *s = c->s;
    const hts_behavior *b = &s->dflt;
    while (memmem(in->p, in->len, "\r\n\r\n", 4) == NULL) {
        if (in->len == in->cap || hts__wait_fd(s, c->fd, POLLIN, -1) <= 0)
            return HTS__CLOSE;
        ssize_t n = recv(c->fd, in->p + in->len, in->cap - in->len, 0);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
            return HTS__CLOSE;
        if (n > 0)
            in->len += (size_t)n;
    }
    atomic_fetch_add(&s->requests, 1);
    if (hts__write_all(s, c->fd, b->raw, b->raw_len) != 0)
        return HTS__CLOSE;
    if (b->delay_ms > 0 && hts__stall(s, b->delay_ms) != 0)
        return HTS__CLOSE;
    if (b->close_after)
        return HTS__CLOSE; /* unread body in the socket: close() sends RST */
    char sink[65536];
    while (hts__wait_fd(s, c->fd, POLLIN, -1) == 1) {
        ssize_t n = recv(c->fd, sink, sizeof sink, 0);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
            break;
    }
    return HTS__CLOSE;
}

static void *conn_main(void *arg)
{
    hts_conn *c = arg;
    hts_server *s = c->s;
    cbuf in = {.p = malloc(16384), .len = 0, .cap = 16384};
    int idle_ms = -1, how = HTS__CLOSE;
    if (in.p != NULL && s->dflt.mode == HTS_EARLY_RESPONSE) {
        how = early_response(c, &in);
        free(in.p);
        in.p = NULL;
    }
    while (in.p != NULL) {
        hts_req req;
        if (read_request(c, &in, &req, idle_ms) != 1)
            break;
        record_last(s, in.p, req.len);
        unsigned idx = atomic_fetch_add(&s->requests, 1);
        const hts_behavior *b = idx < s->n_per ? &s->per[idx] : &s->dflt;
        memmove(in.p, in.p + req.len, in.len - req.len);
        in.len -= req.len;
        how = hts__act(c, b, &req, in.len, &idle_ms);
        if (how != HTS__KEEP)
            break;
    }
    if (how == HTS__RESET) {
        struct linger lg = {.l_onoff = 1, .l_linger = 0};
        setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    }
    close(c->fd);
    free(in.p);
    atomic_fetch_sub(&s->open, 1);
    atomic_store(&c->done, true);
    return NULL;
}

/* ---- accepting ----------------------------------------------------------------------- */

/* Joins the connection threads that have finished, so that a long test does not keep
 * thousands of dead threads around. Called by the accept thread only. */
static void reap(hts_server *s)
{
    pthread_mutex_lock(&s->mu);
    for (hts_conn **pp = &s->conns; *pp != NULL;) {
        hts_conn *c = *pp;
        if (atomic_load(&c->done)) {
            pthread_join(c->tid, NULL);
            *pp = c->next;
            free(c);
        } else {
            pp = &c->next;
        }
    }
    pthread_mutex_unlock(&s->mu);
}

static void *accept_main(void *arg)
{
    hts_server *s = arg;
    while (hts__wait_fd(s, s->listen_fd, POLLIN, -1) == 1) {
        int fd = accept4(s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOMEM)
                hts__stall(s, 10);
            continue;
        }
        reap(s);
        int one = 1;
        /* Responses and stalls must reach the client when written, not when Nagle allows. */
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        atomic_fetch_add(&s->accepted, 1);
        atomic_fetch_add(&s->open, 1);
        hts_conn *c = calloc(1, sizeof *c);
        if (c != NULL) {
            c->s = s;
            c->fd = fd;
            atomic_init(&c->done, false);
        }
        if (c == NULL || pthread_create(&c->tid, NULL, conn_main, c) != 0) {
            close(fd);
            atomic_fetch_sub(&s->open, 1);
            free(c);
            continue;
        }
        pthread_mutex_lock(&s->mu);
        c->next = s->conns;
        s->conns = c;
        pthread_mutex_unlock(&s->mu);
    }
    return NULL;
}

/* ---- public -------------------------------------------------------------------------- */

void hts_options_init(hts_options *o)
{
    memset(o, 0, sizeof *o);
    o->behavior.mode = HTS_NORMAL;
}

static int listen_loopback(uint16_t *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 1024) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &al) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    *port = ntohs(a.sin_port);
    return fd;
}

int hts_start(const hts_options *o, hts_server **out)
{
    *out = NULL;
    errno = 0;
    hts_server *s = calloc(1, sizeof *s);
    if (s == NULL)
        return -1;
    s->listen_fd = s->stop_fd = -1;
    pthread_mutex_init(&s->mu, NULL);
    bool ok = copy_behavior(&s->dflt, &o->behavior) == 0;
    if (ok && o->n_per_request > 0) {
        /* Zeroed, so that freeing every entry is right even after a partial copy. */
        s->per = calloc(o->n_per_request, sizeof *s->per);
        ok = s->per != NULL;
        s->n_per = ok ? o->n_per_request : 0;
        for (size_t i = 0; ok && i < s->n_per; i++)
            ok = copy_behavior(&s->per[i], &o->per_request[i]) == 0;
    }
    if (ok)
        ok = (s->stop_fd = eventfd(0, EFD_CLOEXEC)) >= 0;
    if (ok)
        ok = (s->listen_fd = listen_loopback(&s->port)) >= 0;
    if (ok) {
        int pe = pthread_create(&s->accept_tid, NULL, accept_main, s);
        if (pe != 0) {
            errno = pe;
            ok = false;
        }
    }
    if (!ok) {
        int e = errno != 0 ? errno : ENOMEM;
        if (s->listen_fd >= 0)
            close(s->listen_fd);
        if (s->stop_fd >= 0)
            close(s->stop_fd);
        free_behavior(&s->dflt);
        for (size_t i = 0; i < s->n_per; i++)
            free_behavior(&s->per[i]);
        free(s->per);
        pthread_mutex_destroy(&s->mu);
        free(s);
        errno = e;
        return -1;
    }
    *out = s;
    return 0;
}

uint16_t hts_port(const hts_server *s)
{
    return s->port;
}

unsigned hts_connections(const hts_server *s)
{
    return atomic_load(&((hts_server *)s)->accepted);
}

unsigned hts_open_connections(const hts_server *s)
{
    return atomic_load(&((hts_server *)s)->open);
}

unsigned hts_requests(const hts_server *s)
{
    return atomic_load(&((hts_server *)s)->requests);
}

size_t hts_last_request(hts_server *s, char *buf, size_t cap)
{
    pthread_mutex_lock(&s->mu);
    size_t n = s->last_len;
    if (cap > 0) {
        size_t k = n < cap - 1 ? n : cap - 1;
        if (k > 0)
            memcpy(buf, s->last, k);
        buf[k] = '\0';
    }
    pthread_mutex_unlock(&s->mu);
    return n;
}

void hts_stop(hts_server *s)
{
    if (s == NULL)
        return;
    uint64_t one = 1;
    while (write(s->stop_fd, &one, sizeof one) < 0 && errno == EINTR) {
    }
    pthread_join(s->accept_tid, NULL);
    close(s->listen_fd);
    /* The accept thread is gone: nobody else touches the list any more. */
    for (hts_conn *c = s->conns, *next; c != NULL; c = next) {
        next = c->next;
        pthread_join(c->tid, NULL);
        free(c);
    }
    close(s->stop_fd);
    free_behavior(&s->dflt);
    for (size_t i = 0; i < s->n_per; i++)
        free_behavior(&s->per[i]);
    free(s->per);
    free(s->last);
    pthread_mutex_destroy(&s->mu);
    free(s);
}
