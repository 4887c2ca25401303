/* h2_bad.c: the misbehaving HTTP/2 server of h2_bad.h: nghttp2's server session on each
 * accepted connection, with the mode deciding how each complete request is treated. */
#include "h2_bad.h"

#include <arpa/inet.h>
#include <errno.h>
#include <nghttp2/nghttp2.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "test_util.h"

#define MAX_REQ 64

struct h2_bad {
    h2_bad_mode mode;
    int lfd;
    int wake[2]; /* a byte on wake[1] stops the thread */
    pthread_t thread;
    _Atomic int answered, pings;
    int conns; /* connections accepted so far (the serving thread's) */
};

/* One connection's state. */
typedef struct conn {
    h2_bad *b;
    int fd;
    nghttp2_session *ng;
    int nseen;     /* requests whose header block began: slots 0..nseen-1 */
    int completed; /* requests complete so far */
    int first;     /* the slot of the first request completed */
    int32_t ids[MAX_REQ];
    char paths[MAX_REQ][64];
    char bodies[MAX_REQ][80];
    size_t body_off[MAX_REQ];
    bool stall[MAX_REQ];
    bool raised;  /* H2B_SETTINGS_1_10: the second SETTINGS went out */
    int nth_conn; /* 1 for the first connection accepted */
    int late;     /* H2B_SECOND_LATE: the slot to answer at late_at, or -1 */
    int64_t late_at;
    char *huge;
} conn;

static int slot_of(conn *c, int32_t id)
{
    for (int i = 0; i < c->nseen; i++)
        if (c->ids[i] == id)
            return i;
    return -1;
}

static ssize_t body_read(nghttp2_session *ng, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
                         nghttp2_data_source *src, void *ud)
{
    (void)ng, (void)src;
    conn *c = ud;
    int i = slot_of(c, id);
    if (i < 0 || c->stall[i])
        return NGHTTP2_ERR_DEFERRED; /* H2B_STALL_FIRST: never resumed */
    size_t left = strlen(c->bodies[i]) - c->body_off[i];
    size_t n = left < len ? left : len;
    memcpy(buf, c->bodies[i] + c->body_off[i], n);
    c->body_off[i] += n;
    if (c->body_off[i] == strlen(c->bodies[i]))
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

static void respond(conn *c, int i)
{
    char body[sizeof c->bodies[i]];
    snprintf(body, sizeof body, "ok %s", c->paths[i]);
    memcpy(c->bodies[i], body, sizeof body);
    nghttp2_nv nva[2] = {
        {(uint8_t *)":status", (uint8_t *)"200", 7, 3, NGHTTP2_NV_FLAG_NONE},
        {(uint8_t *)"x-huge", (uint8_t *)c->huge, 6, c->huge != NULL ? strlen(c->huge) : 0,
         NGHTTP2_NV_FLAG_NONE},
    };
    nghttp2_data_provider dp = {.read_callback = body_read};
    /* Counted here, before any byte of it is sent: counted once sent, a client could read
     * the answer (and the test the counter) before the count was made. */
    if (nghttp2_submit_response(c->ng, c->ids[i], nva, c->huge != NULL ? 2 : 1, &dp) == 0)
        atomic_fetch_add(&c->b->answered, 1);
}

/* A request is complete: the mode decides what it gets. */
static void on_request(conn *c, int32_t id)
{
    int i = slot_of(c, id);
    if (i < 0)
        return;
    int nth = c->completed++; /* in the order requests completed */
    if (nth == 0)
        c->first = i;
    /* GOAWAY_LOW misbehaves on its first connection only: the requests it turned away
     * come back on the next one and are answered there (default). */
    bool plain = c->b->mode == H2B_GOAWAY_LOW && c->nth_conn > 1;
    switch (plain ? -1 : (int)c->b->mode) {
    case H2B_GOAWAY_LOW:
        if (c->completed == 3) {
            respond(c, c->first);
            nghttp2_submit_goaway(c->ng, NGHTTP2_FLAG_NONE, c->ids[c->first], NGHTTP2_NO_ERROR,
                                  NULL, 0);
        }
        break;
    case H2B_REFUSE_SECOND:
        if (nth == 1)
            nghttp2_submit_rst_stream(c->ng, NGHTTP2_FLAG_NONE, id, NGHTTP2_REFUSED_STREAM);
        else
            respond(c, i);
        break;
    case H2B_STALL_FIRST:
        c->stall[i] = nth == 0;
        respond(c, i);
        break;
    case H2B_SECOND_LATE:
        if (nth == 1) {
            c->late = i;
            c->late_at = tu_now_ns() + 300 * 1000000LL;
        } else if (nth > 1) {
            respond(c, i);
        }
        break;
    default:
        respond(c, i);
        break;
    }
}

static int on_header(nghttp2_session *ng, const nghttp2_frame *frame, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags, void *ud)
{
    (void)ng, (void)flags;
    conn *c = ud;
    int i = slot_of(c, frame->hd.stream_id);
    if (i >= 0 && namelen == 5 && memcmp(name, ":path", 5) == 0) {
        size_t n = valuelen < 63 ? valuelen : 63;
        memcpy(c->paths[i], value, n);
        c->paths[i][n] = '\0';
    }
    return 0;
}

static int on_begin_headers(nghttp2_session *ng, const nghttp2_frame *frame, void *ud)
{
    (void)ng;
    conn *c = ud;
    if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST &&
        c->nseen < MAX_REQ)
        c->ids[c->nseen++] = frame->hd.stream_id;
    return 0;
}

static int on_frame_recv(nghttp2_session *ng, const nghttp2_frame *frame, void *ud)
{
    (void)ng;
    conn *c = ud;
    if (frame->hd.type == NGHTTP2_PING && !(frame->hd.flags & NGHTTP2_FLAG_ACK))
        atomic_fetch_add(&c->b->pings, 1);
    if ((frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA) &&
        (frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
        on_request(c, frame->hd.stream_id);
    return 0;
}

static int on_frame_send(nghttp2_session *ng, const nghttp2_frame *frame, void *ud)
{
    conn *c = ud;
    if (frame->hd.type == NGHTTP2_DATA && (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
        if (c->b->mode == H2B_SETTINGS_1_10 && !c->raised) {
            nghttp2_settings_entry iv = {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 10};
            nghttp2_submit_settings(ng, NGHTTP2_FLAG_NONE, &iv, 1);
            c->raised = true;
        }
    }
    return 0;
}

static bool write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        p += w;
        n -= (size_t)w;
    }
    return true;
}

/* Reads and drops what the client sends until it closes or the test stops us. */
static void sink_until_closed(h2_bad *b, int fd)
{
    char buf[4096];
    for (;;) {
        struct pollfd p[2] = {{fd, POLLIN, 0}, {b->wake[0], POLLIN, 0}};
        if (poll(p, 2, -1) < 0 && errno != EINTR)
            return;
        if (p[1].revents)
            return;
        if (p[0].revents && read(fd, buf, sizeof buf) <= 0)
            return;
    }
}

static void serve_raw(h2_bad *b, int fd)
{
    /* The client's preface first (24 bytes and its SETTINGS), then the bad frame. */
    char buf[256];
    if (read(fd, buf, sizeof buf) <= 0)
        return;
    static const uint8_t frames[] = {
        0, 0, 0, 4, 0, 0, 0, 0, 0,                     /* SETTINGS, empty */
        0, 0, 4, 0, 0, 0, 0, 0, 0, 'b', 'a', 'd', '!', /* DATA on stream 0 */
    };
    if (write_all(fd, frames, sizeof frames))
        sink_until_closed(b, fd);
}

/* Reads the client's preface and frames until its first HEADERS frame is in. */
static bool read_until_headers(int fd)
{
    uint8_t in[65536];
    size_t have = 0, at = 24; /* the preface */
    for (;;) {
        while (at + 9 <= have) {
            size_t len = (size_t)in[at] << 16 | (size_t)in[at + 1] << 8 | in[at + 2];
            if (in[at + 3] == 0x1) /* HEADERS */
                return true;
            at += 9 + len;
        }
        if (have == sizeof in)
            return false;
        ssize_t r = read(fd, in + have, sizeof in - have);
        if (r <= 0)
            return false;
        have += (size_t)r;
    }
}

/* Our SETTINGS (empty) first, as a server does (the client waits for them before it
 * sends a request), then the client's preface and frames up to its first HEADERS. */
static bool settings_then_headers(int fd)
{
    static const uint8_t settings[] = {0, 0, 0, 4, 0, 0, 0, 0, 0};
    return write_all(fd, settings, sizeof settings) && read_until_headers(fd);
}

/* The answer to stream 1 as a header block that never ends: a HEADERS frame with
 * ":status: 200" (HPACK index 8) and no END_HEADERS, then 100 CONTINUATION frames, each
 * with the literal field "x: y" (never indexed) and no END_HEADERS either. */
static void serve_continuation_flood(h2_bad *b, int fd)
{
    if (!settings_then_headers(fd))
        return;
    enum { N = 100, FIELD = 5 };
    uint8_t out[9 + 9 + 1 + N * (9 + FIELD)];
    size_t n = 0;
    static const uint8_t head[] = {
        0, 0, 0, 4, 1, 0, 0, 0, 0,       /* SETTINGS ACK */
        0, 0, 1, 1, 0, 0, 0, 0, 1, 0x88, /* HEADERS, stream 1, no flags: :status 200 */
    };
    memcpy(out, head, sizeof head);
    n = sizeof head;
    for (int i = 0; i < N; i++) {
        static const uint8_t cont[] = {0,    0, FIELD, 9, 0,  0, 0, 0, 1, /* CONTINUATION */
                                       0x10, 1, 'x',   1, 'y'};
        memcpy(out + n, cont, sizeof cont);
        n += sizeof cont;
    }
    if (write_all(fd, out, n))
        sink_until_closed(b, fd);
}

/* The answer to stream 1 with its header block in two writes, 100 ms apart. */
static void serve_split_header(h2_bad *b, int fd)
{
    if (!settings_then_headers(fd))
        return;
    static const uint8_t first[] = {
        0, 0, 0, 4, 1, 0, 0, 0, 0,       /* SETTINGS ACK */
        0, 0, 1, 1, 0, 0, 0, 0, 1, 0x88, /* HEADERS, stream 1, no flags: :status 200 */
    };
    static const uint8_t rest[] = {
        0,    0,   12,  9,   4,   0,   0,   0,   1, /* CONTINUATION, END_HEADERS: "x-late: yes" */
        0x00, 6,   'x', '-', 'l', 'a', 't', 'e', 3, 'y', 'e',
        's',  0,   0,   5,   0,   1,   0,   0,   0, 1, /* DATA, END_STREAM */
        'o',  'k', ' ', '/', 'a',
    };
    if (!write_all(fd, first, sizeof first))
        return;
    struct timespec ts = {0, 100 * 1000000L};
    nanosleep(&ts, NULL);
    if (write_all(fd, rest, sizeof rest))
        sink_until_closed(b, fd);
}

static void serve_conn(h2_bad *b, int fd)
{
    if (b->mode == H2B_SPLIT_HEADER) {
        serve_split_header(b, fd);
        return;
    }
    if (b->mode == H2B_DATA_ON_ZERO) {
        serve_raw(b, fd);
        return;
    }
    if (b->mode == H2B_CONTINUATION_FLOOD) {
        serve_continuation_flood(b, fd);
        return;
    }
    conn *c = calloc(1, sizeof *c);
    if (c == NULL)
        return;
    c->b = b;
    c->fd = fd;
    c->late = -1;
    c->nth_conn = ++b->conns;
    if (b->mode == H2B_BIG_HEADER || b->mode == H2B_HUGE_HEADER) {
        size_t n = (b->mode == H2B_BIG_HEADER ? 10 : 100) * 1024;
        c->huge = malloc(n + 1);
        if (c->huge != NULL) {
            memset(c->huge, 'h', n);
            c->huge[n] = '\0';
        }
    }
    nghttp2_session_callbacks *cb;
    nghttp2_option *opt;
    nghttp2_session_callbacks_new(&cb);
    nghttp2_option_new(&opt);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
    nghttp2_session_callbacks_set_on_frame_send_callback(cb, on_frame_send);
    if (b->mode == H2B_NO_PING_ACK)
        nghttp2_option_set_no_auto_ping_ack(opt, 1);
    if (b->mode == H2B_NO_WINDOW)
        nghttp2_option_set_no_auto_window_update(opt, 1); /* and never consumes */
    nghttp2_option_set_max_send_header_block_length(opt, 1 << 20);
    nghttp2_session_server_new2(&c->ng, cb, c, opt);
    nghttp2_session_callbacks_del(cb);
    nghttp2_option_del(opt);
    nghttp2_settings_entry iv = {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS,
                                 b->mode == H2B_SETTINGS_1_10 ? 1 : 100};
    nghttp2_submit_settings(c->ng, NGHTTP2_FLAG_NONE, &iv, 1);
    uint8_t buf[16384];
    for (;;) {
        const uint8_t *out;
        ssize_t n;
        while ((n = nghttp2_session_mem_send(c->ng, &out)) > 0)
            if (!write_all(fd, out, (size_t)n))
                goto done;
        if (n < 0)
            break;
        if (b->mode == H2B_SILENT_AFTER_FIRST && c->nth_conn == 1 && c->completed > 0) {
            sink_until_closed(b, fd); /* the first answer is out: silence from now on */
            break;
        }
        struct pollfd p[2] = {{fd, POLLIN, 0}, {b->wake[0], POLLIN, 0}};
        int ms = -1;
        if (c->late >= 0) {
            int64_t left = c->late_at - tu_now_ns();
            ms = left <= 0 ? 0 : (int)(left / 1000000) + 1;
        }
        int np = poll(p, 2, ms);
        if (np < 0 && errno != EINTR)
            break;
        if (c->late >= 0 && tu_now_ns() >= c->late_at) {
            respond(c, c->late);
            c->late = -1;
            continue;
        }
        if (p[1].revents)
            break;
        if (!p[0].revents)
            continue;
        ssize_t r = read(fd, buf, sizeof buf);
        if (r <= 0 || nghttp2_session_mem_recv(c->ng, buf, (size_t)r) < 0)
            break;
    }
done:
    nghttp2_session_del(c->ng);
    free(c->huge);
    free(c);
}

static void *serve(void *arg)
{
    h2_bad *b = arg;
    for (;;) {
        struct pollfd p[2] = {{b->lfd, POLLIN, 0}, {b->wake[0], POLLIN, 0}};
        if (poll(p, 2, -1) < 0 && errno != EINTR)
            return NULL;
        if (p[1].revents)
            return NULL;
        if (!p[0].revents)
            continue;
        int fd = accept(b->lfd, NULL, NULL);
        if (fd < 0)
            continue;
        serve_conn(b, fd);
        close(fd);
    }
}

int h2_bad_start(h2_bad_mode mode, h2_bad **out, uint16_t *port)
{
    h2_bad *b = calloc(1, sizeof *b);
    if (b == NULL)
        return -1;
    b->mode = mode;
    b->lfd = tu_listen_loopback(AF_INET, 8, port);
    if (b->lfd < 0 || pipe(b->wake) != 0) {
        if (b->lfd >= 0)
            close(b->lfd);
        free(b);
        return -1;
    }
    if (pthread_create(&b->thread, NULL, serve, b) != 0) {
        close(b->lfd);
        close(b->wake[0]);
        close(b->wake[1]);
        free(b);
        return -1;
    }
    *out = b;
    return 0;
}

void h2_bad_stop(h2_bad *b)
{
    if (b == NULL)
        return;
    if (write(b->wake[1], "x", 1) != 1)
        fprintf(stderr, "h2_bad: could not wake the server thread\n");
    pthread_join(b->thread, NULL);
    close(b->lfd);
    close(b->wake[0]);
    close(b->wake[1]);
    free(b);
}

int h2_bad_answered(h2_bad *b)
{
    return atomic_load(&b->answered);
}

int h2_bad_pings(h2_bad *b)
{
    return atomic_load(&b->pings);
}
