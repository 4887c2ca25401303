/* test_chaos_proxy.c: the fault proxy (tidepool/chaos.h) between a client socket and a
 * small upstream of this file (an echo server, or a source that sends N patterned bytes
 * and closes): bytes go through unchanged without a fault, and each fault has the effect
 * it states, measured (latency and bandwidth as bounds around their settings, resets and
 * limits at the stated byte, refused connects, black holes, half-open and stopped
 * peers, slow closes, replayable draws). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "tidepool/tidepool.h"

#include "support/chaos_rig.h"

#define MS(x) ((int64_t)(x) * TP_NSEC_PER_MSEC)

/* ---- the upstream ----------------------------------------------------------------- */

typedef struct upstream {
    int lfd;
    uint16_t port;
    size_t source; /* 0: echo; else send this many patterned bytes, then close */
    pthread_t t;
    atomic_bool stop;
    _Atomic uint64_t received; /* bytes the upstream read */
    _Atomic int serving;       /* connections being served (upstream_stop waits) */
} upstream;

static unsigned char pattern_at(size_t i)
{
    return (unsigned char)((i * 2654435761u) >> 13);
}

typedef struct serve_arg {
    upstream *u;
    int fd;
    size_t source;
} serve_arg;

static void serve(upstream *u, int fd, size_t source);

static void *serve_one(void *arg)
{
    serve_arg *a = arg;
    upstream *u = a->u;
    serve(u, a->fd, a->source);
    free(a);
    atomic_fetch_sub(&u->serving, 1); /* the last touch of u */
    return NULL;
}

static void serve(upstream *u, int fd, size_t source)
{
    if (source > 0) {
        unsigned char buf[16384];
        size_t sent = 0;
        while (sent < source) {
            size_t n = source - sent < sizeof buf ? source - sent : sizeof buf;
            for (size_t i = 0; i < n; i++)
                buf[i] = pattern_at(sent + i);
            ssize_t w = send(fd, buf, n, MSG_NOSIGNAL);
            if (w <= 0)
                break;
            sent += (size_t)w;
        }
        close(fd);
        return;
    }
    unsigned char buf[65536];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n <= 0)
            break;
        atomic_fetch_add(&u->received, (uint64_t)n);
        ssize_t off = 0;
        while (off < n) {
            ssize_t w = send(fd, buf + off, (size_t)(n - off), MSG_NOSIGNAL);
            if (w <= 0)
                goto out;
            off += w;
        }
    }
out:
    shutdown(fd, SHUT_WR);
    close(fd);
}

static void *accept_main(void *arg)
{
    upstream *u = arg;
    while (!atomic_load(&u->stop)) {
        struct pollfd pf = {.fd = u->lfd, .events = POLLIN};
        if (poll(&pf, 1, 50) != 1)
            continue;
        int fd = accept(u->lfd, NULL, NULL);
        if (fd < 0)
            continue;
        serve_arg *a = malloc(sizeof *a);
        assert_non_null(a);
        a->u = u;
        a->fd = fd;
        a->source = u->source;
        atomic_fetch_add(&u->serving, 1);
        pthread_t t;
        assert_int_equal(pthread_create(&t, NULL, serve_one, a), 0);
        pthread_detach(t);
    }
    return NULL;
}

static int listen_loopback(uint16_t *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(fd, 128), 0);
    socklen_t len = sizeof sa;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    *port = ntohs(sa.sin_port);
    return fd;
}

static void upstream_start(upstream *u, size_t source)
{
    memset(u, 0, sizeof *u);
    u->source = source;
    u->lfd = listen_loopback(&u->port);
    assert_int_equal(pthread_create(&u->t, NULL, accept_main, u), 0);
}

/* After the clients and the proxy are gone: every connection it served has ended. */
static void upstream_stop(upstream *u)
{
    atomic_store(&u->stop, true);
    pthread_join(u->t, NULL);
    close(u->lfd);
    int64_t end = tp_clock_now() + 5 * TP_NSEC_PER_SEC;
    while (atomic_load(&u->serving) > 0 && tp_clock_now() < end)
        usleep(1000);
    assert_int_equal(atomic_load(&u->serving), 0);
}

/* ---- the proxy and a client ------------------------------------------------------- */

static tp_chaos *proxy_start(const upstream *u, const tp_chaos_fault *f, uint64_t seed)
{
    tp_chaos_options o;
    tp_chaos_options_init(&o);
    o.upstream_host = "127.0.0.1";
    o.upstream_port = u->port;
    o.seed = seed;
    if (f != NULL)
        o.fault = *f;
    tp_chaos *c = NULL;
    tp_errinfo e;
    tp_err rc = tp_chaos_start(&o, &c, &e);
    if (rc != TP_OK)
        print_message("tp_chaos_start: %s\n", e.msg);
    assert_int_equal(rc, TP_OK);
    assert_true(tp_chaos_port(c) > 0);
    return c;
}

/* A connected client socket, or -1 with errno (ECONNREFUSED...). */
static int dial(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons(port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

/* Waits up to ms for fd to be readable (or hung up): true if it is. */
static bool readable_within(int fd, int ms)
{
    struct pollfd pf = {.fd = fd, .events = POLLIN | POLLRDHUP};
    return poll(&pf, 1, ms) == 1;
}

/* Reads until EOF, an error or the bound: how many bytes; *last_errno is 0 at EOF. */
static size_t read_all(int fd, unsigned char *buf, size_t cap, int *last_errno)
{
    size_t got = 0;
    *last_errno = 0;
    for (;;) {
        if (!readable_within(fd, 5000)) {
            *last_errno = ETIMEDOUT;
            return got;
        }
        unsigned char tmp[65536];
        ssize_t n = read(fd, tmp, sizeof tmp);
        if (n == 0)
            return got;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            *last_errno = errno;
            return got;
        }
        if (buf != NULL && got + (size_t)n <= cap)
            memcpy(buf + got, tmp, (size_t)n);
        got += (size_t)n;
    }
}

static tp_chaos_counters counters(tp_chaos *c)
{
    tp_chaos_counters n;
    tp_chaos_counters_read(c, &n);
    return n;
}

/* One byte there and back: the round trip in ns. */
static int64_t ping(int fd)
{
    unsigned char b = 'x', r = 0;
    int64_t t0 = tp_clock_now();
    assert_int_equal(send(fd, &b, 1, MSG_NOSIGNAL), 1);
    assert_true(readable_within(fd, 5000));
    assert_int_equal(read(fd, &r, 1), 1);
    assert_int_equal(r, b);
    return tp_clock_now() - t0;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* ---- no fault ---------------------------------------------------------------------- */

typedef struct writer_arg {
    int fd;
    const unsigned char *data;
    size_t len;
} writer_arg;

static void *writer_main(void *arg)
{
    writer_arg *w = arg;
    size_t off = 0;
    while (off < w->len) {
        ssize_t n = send(w->fd, w->data + off, w->len - off, MSG_NOSIGNAL);
        if (n <= 0)
            break;
        off += (size_t)n;
    }
    shutdown(w->fd, SHUT_WR);
    return NULL;
}

static void test_bytes_unchanged(void **state)
{
    (void)state;
    upstream u;
    upstream_start(&u, 0);
    tp_chaos *c = proxy_start(&u, NULL, 1);
    enum { LEN = 3 * 1024 * 1024 + 17 };
    unsigned char *sent = malloc(LEN), *got = malloc(LEN);
    assert_non_null(sent);
    assert_non_null(got);
    uint64_t x = 88172645463325252ull;
    for (size_t i = 0; i < LEN; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        sent[i] = (unsigned char)x;
    }
    int fd = dial(tp_chaos_port(c));
    assert_true(fd >= 0);
    writer_arg w = {fd, sent, LEN};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, writer_main, &w), 0);
    int e;
    size_t n = read_all(fd, got, LEN, &e);
    pthread_join(t, NULL);
    close(fd);
    assert_int_equal(e, 0); /* the echo's FIN came through after the data */
    assert_int_equal(n, LEN);
    assert_memory_equal(got, sent, LEN);
    chaos_rig_wait_open(c, 0); /* the proxy closes its side on its loop */
    tp_chaos_counters k = counters(c);
    assert_int_equal(k.accepted, 1);
    assert_int_equal(k.bytes_up, LEN);
    assert_int_equal(k.bytes_down, LEN);
    assert_int_equal(k.resets + k.limits + k.half_opened + k.bytes_dropped, 0);
    tp_chaos_stop(c);
    upstream_stop(&u);
    free(sent);
    free(got);
}

/* ---- latency and bandwidth, measured ------------------------------------------------ */

static void test_latency_each_direction(void **state)
{
    (void)state;
    upstream u;
    upstream_start(&u, 0);
    tp_chaos *c = proxy_start(&u, NULL, 1);
    int fd = dial(tp_chaos_port(c));
    assert_true(fd >= 0);
    int64_t base = ping(fd); /* through the proxy without a fault */
    tp_chaos_fault f;
    tp_chaos_fault_init(&f);
    f.latency = MS(40);
    chaos_rig_set(c, &f); /* reaches the connection already open */
    enum { N = 7 };
    int64_t rtt[N];
    for (int i = 0; i < N; i++) {
        rtt[i] = ping(fd);
        assert_true(rtt[i] >= 2 * f.latency); /* never early: once each way */
    }
    qsort(rtt, N, sizeof *rtt, cmp_i64);
    print_message("rtt without fault %.2f ms, with 40 ms each way: median %.2f ms\n",
                  (double)base / 1e6, (double)rtt[N / 2] / 1e6);
    assert_true(rtt[N / 2] <= 2 * f.latency * 11 / 10); /* within 10 % */
    /* One direction only: half of it. */
    f.direction = TP_CHAOS_DOWN;
    chaos_rig_set(c, &f);
    for (int i = 0; i < N; i++) {
        rtt[i] = ping(fd);
        assert_true(rtt[i] >= f.latency);
    }
    qsort(rtt, N, sizeof *rtt, cmp_i64);
    assert_true(rtt[N / 2] <= f.latency * 11 / 10);
    close(fd);
    tp_chaos_stop(c);
    upstream_stop(&u);
}

static void test_bandwidth_cap(void **state)
{
    (void)state;
    enum { LEN = 1024 * 1024 };
    upstream u;
    upstream_start(&u, LEN);
    tp_chaos_fault f;
    tp_chaos_fault_init(&f);
    f.bandwidth = 4 * 1024 * 1024; /* 1 MiB in 250 ms */
    f.direction = TP_CHAOS_DOWN;
    tp_chaos *c = proxy_start(&u, &f, 1);
    enum { RUNS = 3 };
    int64_t took[RUNS];
    for (int r = 0; r < RUNS; r++) {
        int fd = dial(tp_chaos_port(c));
        assert_true(fd >= 0);
        int64_t t0 = tp_clock_now();
        int e;
        size_t n = read_all(fd, NULL, 0, &e);
        took[r] = tp_clock_now() - t0;
        close(fd);
        assert_int_equal(e, 0);
        assert_int_equal(n, LEN);
    }
    qsort(took, RUNS, sizeof *took, cmp_i64);
    double want = (double)LEN / (double)f.bandwidth * 1e9;
    print_message("1 MiB at 4 MiB/s: median %.1f ms (%.1f ms expected)\n",
                  (double)took[RUNS / 2] / 1e6, want / 1e6);
    assert_true((double)took[RUNS / 2] >= want * 0.9);
    assert_true((double)took[RUNS / 2] <= want * 1.1);
    tp_chaos_stop(c);
    upstream_stop(&u);
}

/* ---- faults that count bytes or time -------------------------------------------------- */

static void test_reset_and_limit_at_the_stated_byte(void **state)
{
    (void)state;
    upstream u;
    upstream_start(&u, 100000);
    tp_chaos_fault f;
    tp_chaos_fault_init(&f);
    f.reset_after_bytes = 10000;
    tp_chaos *c = proxy_start(&u, &f, 1);
    unsigned char buf[100000];
    int fd = dial(tp_chaos_port(c));
    assert_true(fd >= 0);
    int e;
    size_t n = read_all(fd, buf, sizeof buf, &e);
    close(fd);
    assert_int_equal(n, 10000);
    assert_int_equal(e, ECONNRESET);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(buf[i], pattern_at(i));
    assert_int_equal(counters(c).resets, 1);

    tp_chaos_fault_init(&f);
    f.limit_data = 12345;
    chaos_rig_set(c, &f);
    fd = dial(tp_chaos_port(c));
    assert_true(fd >= 0);
    n = read_all(fd, buf, sizeof buf, &e);
    close(fd);
    assert_int_equal(n, 12345);
    assert_int_equal(e, 0); /* a FIN, not a reset */
    assert_int_equal(counters(c).limits, 1);
    chaos_rig_wait_open(c, 0);
    tp_chaos_stop(c);
    upstream_stop(&u);
}

static void test_reset_after_time_and_slow_close(void **state)
{
    (void)state;
    upstream echo;
    upstream_start(&echo, 0);
    tp_chaos_fault f;
    tp_chaos_fault_init(&f);
    f.reset_after = MS(100);
    tp_chaos *c = proxy_start(&echo, &f, 1);
    int64_t t0 = tp_clock_now();
    int fd = dial(tp_chaos_port(c));
    assert_true(fd >= 0);
    int e;
    size_t n = read_all(fd, NULL, 0, &e);
    int64_t took = tp_clock_now() - t0;
    close(fd);
    assert_int_equal(n, 0);
    assert_int_equal(e, ECONNRESET);
    assert_true(took >= MS(100));
    assert_true(took < MS(1000));
    tp_chaos_stop(c);
    upstream_stop(&echo);

    upstream src;
    upstream_start(&src, 10);
    tp_chaos_fault_init(&f);
    f.slow_close = MS(200);
    c = proxy_start(&src, &f, 1);
    fd = dial(tp_chaos_port(c));
    assert_true(fd >= 0);
    unsigned char buf[16];
    assert_true(readable_within(fd, 5000));
    t0 = tp_clock_now();
    assert_int_equal(read(fd, buf, sizeof buf), 10); /* the data at once */
    n = read_all(fd, NULL, 0, &e);                     /* the FIN later */
    took = tp_clock_now() - t0;
    close(fd);
    assert_int_equal(n, 0);
    assert_int_equal(e, 0);
    assert_true(took >= MS(190)); /* the data's read is a little after the FIN's start */
    tp_chaos_stop(c);
    upstream_stop(&src);
}

/* ---- the listener ----------------------------------------------------------------- */

/* A non-blocking connect started now; true in *done once it completes within ms. */
static int dial_start(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons(port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int rc = connect(fd, (struct sockaddr *)&sa, sizeof sa);
    assert_true(rc == 0 || errno == EINPROGRESS);
    return fd;
}

static bool connected_within(int fd, int ms)
{
    struct pollfd pf = {.fd = fd, .events = POLLOUT};
    if (poll(&pf, 1, ms) != 1)
        return false;
    int e = 0;
    socklen_t len = sizeof e;
    assert_int_equal(getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len), 0);
    assert_int_equal(e, 0);
    return true;
}

static void test_accept_delay(void **state)
{
    (void)state;
    upstream u;
    upstream_start(&u, 0);
    tp_chaos_fault f;
    tp_chaos_fault_init(&f);
    f.accept_delay = MS(400);
    tp_chaos *c = proxy_start(&u, &f, 1);
    int64_t t0 = tp_clock_now();
    int a = dial(tp_chaos_port(c)); /* the kernel completes it: the queue holds one */
    assert_true(a >= 0);
    int b = dial_start(tp_chaos_port(c));
    assert_false(connected_within(b, 250)); /* no SYN-ACK: the queue is full */
    int64_t rtt = ping(a); /* served once accepted, 400 ms after the fault began */
    assert_true(tp_clock_now() - t0 >= MS(390));
    print_message("first connection served after %.0f ms (ping %.1f ms)\n",
                  (double)(tp_clock_now() - t0) / 1e6, (double)rtt / 1e6);
    tp_chaos_fault_init(&f);
    chaos_rig_set(c, &f);
    assert_true(connected_within(b, 4000)); /* at a SYN retransmission */
    ping(b);
    close(a);
    close(b);
    tp_chaos_stop(c);
    upstream_stop(&u);
}


static void test_refuse_then_accept_on_the_same_port(void **state)
{
    (void)state;
    upstream u;
    upstream_start(&u, 0);
    tp_chaos *c = proxy_start(&u, NULL, 1);
    uint16_t port = tp_chaos_port(c);
    tp_chaos_fault f;
    tp_chaos_fault_init(&f);
    f.refuse = true;
    chaos_rig_set(c, &f);
    assert_int_equal(dial(port), -1);
    assert_int_equal(errno, ECONNREFUSED);
    f.refuse = false;
    chaos_rig_set(c, &f);
    assert_int_equal(tp_chaos_port(c), port);
    int fd = dial(port);
    assert_true(fd >= 0);
    ping(fd);
    close(fd);
    assert_int_equal(counters(c).refused, 1);
    tp_chaos_stop(c);
    upstream_stop(&u);
}

static void test_upstream_down_resets_the_client(void **state)
{
    (void)state;
    upstream u;
    upstream_start(&u, 0);
    upstream_stop(&u); /* its port is closed now: connects to it are refused */
    tp_chaos *c = proxy_start(&u, NULL, 1);
    int fd = dial(tp_chaos_port(c));
    assert_true(fd >= 0);
    int e;
    size_t n = read_all(fd, NULL, 0, &e);
    close(fd);
    assert_int_equal(n, 0);
    assert_int_equal(e, ECONNRESET);
    assert_int_equal(counters(c).upstream_failures, 1);
    chaos_rig_wait_open(c, 0);
    tp_chaos_stop(c);
}

/* ---- peers that go quiet ------------------------------------------------------------ */

static void test_blackhole_then_heal(void **state)
{
    (void)state;
    upstream u;
    upstream_start(&u, 0);
    tp_chaos_fault f;
    tp_chaos_fault_init(&f);
    f.blackhole = true;
    f.direction = TP_CHAOS_UP;
    tp_chaos *c = proxy_start(&u, &f, 1);
    int fd = dial(tp_chaos_port(c));
    assert_true(fd >= 0);
    assert_int_equal(send(fd, "lost", 4, MSG_NOSIGNAL), 4);
    assert_false(readable_within(fd, 300)); /* no answer, no FIN, no reset */
    int64_t end = tp_clock_now() + 5 * TP_NSEC_PER_SEC;
    while (counters(c).bytes_dropped < 4 && tp_clock_now() < end)
        usleep(1000);
    assert_int_equal(counters(c).bytes_dropped, 4);
    assert_int_equal(atomic_load(&u.received), 0);
    tp_chaos_fault_init(&f);
    chaos_rig_set(c, &f);
    ping(fd); /* healed: what is sent now goes through */
    close(fd);
    tp_chaos_stop(c);
    upstream_stop(&u);
}

/* A FIN into a black hole is swallowed, and the proxy then waits for nothing: it must
 * not spin (it once took its FIN as due, now, for ever). */
static void test_blackholed_fin_does_not_spin(void **state)
{
    (void)state;
    upstream u;
    upstream_start(&u, 0);
    tp_chaos_fault f;
    tp_chaos_fault_init(&f);
    f.blackhole = true;
    f.direction = TP_CHAOS_UP;
    tp_chaos *c = proxy_start(&u, &f, 1);
    int fd = dial(tp_chaos_port(c));
    assert_true(fd >= 0);
    assert_int_equal(send(fd, "x", 1, MSG_NOSIGNAL), 1);
    assert_int_equal(shutdown(fd, SHUT_WR), 0);
    usleep(50000); /* the proxy reads the FIN */
    struct timespec a, b;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &a);
    usleep(400000);
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &b);
    double cpu_ms = (double)(b.tv_sec - a.tv_sec) * 1e3 + (double)(b.tv_nsec - a.tv_nsec) / 1e6;
    print_message("CPU while the link waits: %.1f ms in 400 ms\n", cpu_ms);
    assert_true(cpu_ms < 100.0);
    assert_false(readable_within(fd, 10)); /* and still nothing answers */
    close(fd);
    tp_chaos_stop(c);
    upstream_stop(&u);
}

static void test_half_open_peer(void **state)
{
    (void)state;
    upstream u;
    upstream_start(&u, 0);
    tp_chaos *c = proxy_start(&u, NULL, 1);
    int fd = dial(tp_chaos_port(c));
    assert_true(fd >= 0);
    ping(fd);
    tp_chaos_fault f;
    tp_chaos_fault_init(&f);
    f.half_open = true;
    chaos_rig_set(c, &f);
    uint64_t before = atomic_load(&u.received);
    assert_int_equal(send(fd, "gone", 4, MSG_NOSIGNAL), 4);
    assert_false(readable_within(fd, 300)); /* nothing comes back, not even a FIN */
    assert_int_equal(atomic_load(&u.received), before);
    tp_chaos_counters k = counters(c);
    assert_int_equal(k.half_opened, 1);
    assert_int_equal(k.open, 1); /* still there, silent */
    close(fd);
    tp_chaos_stop(c); /* closes it too */
    upstream_stop(&u);
}

static void test_stop_reading_fills_the_senders_buffer(void **state)
{
    (void)state;
    upstream u;
    upstream_start(&u, 0);
    tp_chaos_fault f;
    tp_chaos_fault_init(&f);
    f.stop_reading = true;
    f.direction = TP_CHAOS_UP;
    tp_chaos *c = proxy_start(&u, &f, 1);
    int fd = dial(tp_chaos_port(c));
    assert_true(fd >= 0);
    static unsigned char chunk[65536];
    size_t sent = 0;
    for (;;) {
        ssize_t n = send(fd, chunk, sizeof chunk, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
            break;
        }
        sent += (size_t)n;
        assert_true(sent < (size_t)256 * 1024 * 1024);
    }
    print_message("the sender's buffers took %zu bytes before it blocked\n", sent);
    assert_int_equal(counters(c).bytes_up, 0);
    assert_int_equal(atomic_load(&u.received), 0);
    close(fd);
    tp_chaos_stop(c);
    upstream_stop(&u);
}

/* ---- draws ------------------------------------------------------------------------ */

static uint64_t faulted_of_twenty(const upstream *u, uint64_t seed)
{
    tp_chaos_fault f;
    tp_chaos_fault_init(&f);
    f.probability = 0.5;
    f.latency = MS(1);
    tp_chaos *c = proxy_start(u, &f, seed);
    for (int i = 0; i < 20; i++) {
        int fd = dial(tp_chaos_port(c));
        assert_true(fd >= 0);
        ping(fd); /* accepted (and drawn) before the next connects */
        close(fd);
    }
    uint64_t n = counters(c).faulted;
    assert_int_equal(counters(c).seed, seed);
    tp_chaos_stop(c);
    return n;
}

static void test_same_seed_same_draws(void **state)
{
    (void)state;
    upstream u;
    upstream_start(&u, 0);
    uint64_t a = faulted_of_twenty(&u, 42), b = faulted_of_twenty(&u, 42);
    print_message("seed 42, probability 0.5: %llu of 20 faulted, twice\n",
                  (unsigned long long)a);
    assert_int_equal(a, b);
    assert_true(a > 0 && a < 20);
    upstream_stop(&u);
}

/* ---- text, JSON and schedules ------------------------------------------------------- */

static void test_fault_text_and_json(void **state)
{
    (void)state;
    tp_chaos_fault f;
    tp_chaos_fault_init(&f);
    tp_errinfo e;
    assert_int_equal(tp_chaos_fault_set(&f, "latency", "50ms", &e), TP_OK);
    assert_int_equal(f.latency, MS(50));
    assert_int_equal(tp_chaos_fault_set(&f, "bandwidth", "1MB/s", &e), TP_OK);
    assert_int_equal(f.bandwidth, 1024 * 1024);
    assert_int_equal(tp_chaos_fault_set(&f, "reset-after", "10KB", &e), TP_OK);
    assert_int_equal(f.reset_after_bytes, 10240);
    assert_int_equal(tp_chaos_fault_set(&f, "reset_after", "2s", &e), TP_OK);
    assert_int_equal(f.reset_after, 2 * TP_NSEC_PER_SEC);
    assert_int_equal(tp_chaos_fault_set(&f, "half-open", NULL, &e), TP_OK);
    assert_true(f.half_open);
    assert_int_equal(tp_chaos_fault_set(&f, "direction", "sideways", &e), TP_EINVAL);
    assert_non_null(strstr(e.msg, "direction"));
    assert_int_equal(tp_chaos_fault_set(&f, "probability", "1.5", &e), TP_EINVAL);
    assert_int_equal(tp_chaos_fault_set(&f, "colour", "red", &e), TP_EINVAL);
    assert_non_null(strstr(e.msg, "colour"));

    tp_err rc = tp_chaos_fault_parse("{\"latency\": \"200ms\", \"direction\": \"down\", "
                                     "\"probability\": 0.25, \"blackhole\": true}",
                                     &f, &e);
    if (rc == TP_ESTATE) {
        print_message("built without jansson: %s\n", e.msg);
        return;
    }
    assert_int_equal(rc, TP_OK);
    assert_int_equal(f.latency, MS(200));
    assert_int_equal(f.direction, TP_CHAOS_DOWN);
    assert_true(f.probability == 0.25);
    assert_true(f.blackhole);
    assert_int_equal(f.reset_after, -1); /* not named: as tp_chaos_fault_init leaves it */
    assert_int_equal(tp_chaos_fault_parse("{\"latency\": ", &f, &e), TP_EINVAL);
    assert_non_null(strstr(e.msg, "JSON"));
    assert_int_equal(tp_chaos_fault_parse("[1]", &f, &e), TP_EINVAL);
    assert_int_equal(tp_chaos_fault_parse("{\"latency\": []}", &f, &e), TP_EINVAL);

    tp_chaos_step *st;
    size_t n;
    assert_int_equal(tp_chaos_schedule_parse("[{\"at\":\"5s\",\"reset_all\":true},"
                                             "{\"at\":\"8s\",\"for\":\"3s\",\"latency\":"
                                             "\"200ms\"},{\"at\":\"12s\",\"down\":\"2s\"}]",
                                             &st, &n, &e),
                     TP_OK);
    assert_int_equal(n, 3);
    assert_int_equal(st[0].at, 5 * TP_NSEC_PER_SEC);
    assert_true(st[0].reset_all);
    assert_false(st[0].set_fault); /* names no fault: those in force stay */
    assert_int_equal(st[0].duration, -1);
    assert_int_equal(st[1].duration, 3 * TP_NSEC_PER_SEC);
    assert_true(st[1].set_fault);
    assert_int_equal(st[1].fault.latency, MS(200));
    assert_true(st[2].down);
    assert_int_equal(st[2].duration, 2 * TP_NSEC_PER_SEC);
    tp_free(st);
    assert_int_equal(tp_chaos_schedule_parse("[{\"for\":\"1s\"}]", &st, &n, &e), TP_EINVAL);
    assert_non_null(strstr(e.msg, "step 0"));
    assert_int_equal(tp_chaos_schedule_parse("[{\"at\":\"1s\",\"down\":\"1s\",\"for\":"
                                             "\"1s\"}]",
                                             &st, &n, &e),
                     TP_EINVAL);
    assert_null(st);
}

/* Sleeps until t0 + ms. */
static void sleep_until(int64_t t0, int ms)
{
    int64_t left = t0 + MS(ms) - tp_clock_now();
    if (left > 0)
        usleep((useconds_t)(left / 1000));
}

static void test_schedule_timeline(void **state)
{
    (void)state;
    upstream u;
    upstream_start(&u, 0);
    tp_chaos *c = proxy_start(&u, NULL, 1);
    int fd = dial(tp_chaos_port(c));
    assert_true(fd >= 0);
    tp_chaos_step st[3];
    memset(st, 0, sizeof st);
    for (int i = 0; i < 3; i++) {
        tp_chaos_fault_init(&st[i].fault);
        st[i].duration = -1;
    }
    /* given out of order: sorted by time */
    st[0].at = MS(600);
    st[0].down = true;
    st[0].duration = MS(300);
    st[1].at = 0;
    st[1].set_fault = true;
    st[1].fault.latency = MS(30);
    st[1].duration = MS(250);
    st[2].at = MS(400);
    st[2].reset_all = true;
    int64_t t0 = tp_clock_now();
    tp_errinfo e;
    assert_int_equal(tp_chaos_schedule(c, st, 3, &e), TP_OK);
    assert_true(ping(fd) >= MS(60)); /* 0 to 250 ms: the latency, both ways */
    sleep_until(t0, 300);
    assert_true(ping(fd) < MS(30)); /* the step ended: the faults before it are back */
    sleep_until(t0, 450);
    int err;
    assert_int_equal(read_all(fd, NULL, 0, &err), 0); /* reset at 400 ms */
    assert_int_equal(err, ECONNRESET);
    close(fd);
    sleep_until(t0, 650);
    assert_int_equal(dial(tp_chaos_port(c)), -1); /* down from 600 to 900 ms */
    assert_int_equal(errno, ECONNREFUSED);
    sleep_until(t0, 1000);
    fd = dial(tp_chaos_port(c));
    assert_true(fd >= 0); /* up again */
    ping(fd);
    close(fd);
    tp_chaos_counters k = counters(c);
    assert_int_equal(k.steps, 3);
    assert_int_equal(k.resets, 1);
    assert_int_equal(k.refused, 1);
    tp_chaos_stop(c);
    upstream_stop(&u);
}

/* ---- the control API ------------------------------------------------------------- */

/* METHOD url with body through the library's own HTTP client: the status, *out the body. */
static int control_call(tp_http_client *hc, const char *method, const char *url,
                        const char *body, char *out, size_t cap)
{
    tp_http_request req = {.method = method,
                           .url = url,
                           .body = body,
                           .body_len = body != NULL ? strlen(body) : 0,
                           .timeout = TP_DURATION_DEFAULT,
                           .flags = TP_HTTP_NO_RETRY};
    tp_http_response *r = NULL;
    tp_errinfo e;
    tp_err rc = tp_http_client_do(hc, &req, &r, &e);
    if (rc != TP_OK)
        print_message("%s %s: %s\n", method, url, e.msg);
    assert_int_equal(rc, TP_OK);
    size_t len;
    const char *b = tp_http_response_body(r, &len);
    snprintf(out, cap, "%.*s", (int)len, b);
    int status = tp_http_response_status(r);
    tp_http_response_free(r);
    return status;
}

static void test_control_api(void **state)
{
    (void)state;
    upstream u;
    upstream_start(&u, 0);
    tp_chaos_options o;
    tp_chaos_options_init(&o);
    o.upstream_host = "127.0.0.1";
    o.upstream_port = u.port;
    o.control = true;
    tp_chaos *c = NULL;
    tp_errinfo e;
    tp_err rc = tp_chaos_start(&o, &c, &e);
    if (rc == TP_ESTATE) { /* built without libmicrohttpd */
        print_message("%s\n", e.msg);
        upstream_stop(&u);
        return;
    }
    assert_int_equal(rc, TP_OK);
    assert_true(tp_chaos_control_port(c) > 0);
    char base[64], url[96], body[512];
    snprintf(base, sizeof base, "http://127.0.0.1:%u", (unsigned)tp_chaos_control_port(c));
    tp_http_client_options ho;
    tp_http_client_options_init(&ho);
    tp_http_client *hc;
    assert_int_equal(tp_http_client_create(&ho, &hc, &e), TP_OK);
    int fd = dial(tp_chaos_port(c));
    assert_true(fd >= 0);
    ping(fd);

    snprintf(url, sizeof url, "%s/fault", base);
    int st = control_call(hc, "PUT", url, "{\"latency\": \"30ms\"}", body, sizeof body);
    if (st == 501) { /* built without jansson */
        print_message("%s\n", body);
    } else {
        assert_int_equal(st, 200);
        assert_non_null(strstr(body, "\"ok\": true"));
        assert_true(ping(fd) >= MS(60)); /* in force on the open connection */
        assert_int_equal(control_call(hc, "PUT", url, "{\"latency\": \"soon\"}", body,
                                      sizeof body),
                         400);
        assert_non_null(strstr(body, "latency: bad value"));
        assert_int_equal(control_call(hc, "PUT", url, "not json", body, sizeof body), 400);
        assert_int_equal(control_call(hc, "DELETE", url, NULL, body, sizeof body), 200);
        assert_true(ping(fd) < MS(30));
        snprintf(url, sizeof url, "%s/schedule", base);
        assert_int_equal(control_call(hc, "POST", url, "[{\"at\": \"0s\", \"reset_all\": true}]",
                                      body, sizeof body),
                         200);
        int err;
        assert_int_equal(read_all(fd, NULL, 0, &err), 0);
        assert_int_equal(err, ECONNRESET);
    }
    close(fd);
    snprintf(url, sizeof url, "%s/counters", base);
    assert_int_equal(control_call(hc, "GET", url, NULL, body, sizeof body), 200);
    assert_non_null(strstr(body, "\"accepted\": 1,"));
    snprintf(url, sizeof url, "%s/fault", base);
    assert_int_equal(control_call(hc, "GET", url, NULL, body, sizeof body), 405);
    snprintf(url, sizeof url, "%s/nothing", base);
    assert_int_equal(control_call(hc, "GET", url, NULL, body, sizeof body), 404);
    tp_http_client_destroy(hc);
    tp_chaos_stop(c);

    o.control_host = "192.0.2.1"; /* not loopback: refused */
    assert_int_equal(tp_chaos_start(&o, &c, &e), TP_EINVAL);
    assert_non_null(strstr(e.msg, "loopback"));
    assert_null(c);
    upstream_stop(&u);
}

static void test_invalid_options(void **state)
{
    (void)state;
    tp_chaos_options o;
    tp_chaos_options_init(&o);
    tp_chaos *c = (tp_chaos *)1;
    tp_errinfo e;
    assert_int_equal(tp_chaos_start(&o, &c, &e), TP_EINVAL); /* no upstream */
    assert_null(c);
    assert_non_null(strstr(e.msg, "upstream"));
    o.upstream_host = "127.0.0.1";
    o.upstream_port = 9;
    o.fault.probability = 1.5;
    assert_int_equal(tp_chaos_start(&o, &c, &e), TP_EINVAL);
    assert_non_null(strstr(e.msg, "probability"));
    o.fault.probability = 1;
    o.fault.direction = 0;
    assert_int_equal(tp_chaos_start(&o, &c, &e), TP_EINVAL);
    o.fault.direction = TP_CHAOS_BOTH;
    o.listen_host = "not-an-address";
    assert_int_equal(tp_chaos_start(&o, &c, &e), TP_EINVAL);
    o.listen_host = "127.0.0.1";
    o.upstream_host = "no-such-host.invalid";
    assert_int_equal(tp_chaos_start(&o, &c, &e), TP_ERESOLVE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bytes_unchanged),
        cmocka_unit_test(test_latency_each_direction),
        cmocka_unit_test(test_bandwidth_cap),
        cmocka_unit_test(test_reset_and_limit_at_the_stated_byte),
        cmocka_unit_test(test_reset_after_time_and_slow_close),
        cmocka_unit_test(test_refuse_then_accept_on_the_same_port),
        cmocka_unit_test(test_upstream_down_resets_the_client),
        cmocka_unit_test(test_accept_delay),
        cmocka_unit_test(test_blackhole_then_heal),
        cmocka_unit_test(test_blackholed_fin_does_not_spin),
        cmocka_unit_test(test_half_open_peer),
        cmocka_unit_test(test_stop_reading_fills_the_senders_buffer),
        cmocka_unit_test(test_same_seed_same_draws),
        cmocka_unit_test(test_fault_text_and_json),
        cmocka_unit_test(test_schedule_timeline),
        cmocka_unit_test(test_control_api),
        cmocka_unit_test(test_invalid_options),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
