/* test_bench_server_phases.c: the capacity schedule of the built-in benchmark server
 * (bench_server_start_ex): k workers and a service time make concurrent requests complete
 * in waves, a phase change widens the next wave, lifting the limit answers the queue at
 * once, a client hanging up in the queue frees its place, pipelined requests are served
 * one after the other and in order, no schedule means no delay; and the spec parser.
 *
 * Times are checked from below tightly (the schedule can never be early) and from above
 * generously (a loaded machine can be late), with gaps between waves of a whole service
 * time so that late is not mistaken for another wave. */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <unistd.h>

#include <cmocka.h>

#include "../tools/bench_server.h"
#include "support/test_util.h"

#define GET "GET / HTTP/1.1\r\nHost: bench\r\n\r\n"
#define RESP BENCH_SERVER_RESPONSE
#define RLEN (sizeof RESP - 1)

static int dial(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {
        .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    return fd;
}

static void send_str(int fd, const char *s)
{
    assert_int_equal(send(fd, s, strlen(s), MSG_NOSIGNAL), (ssize_t)strlen(s));
}

static uint16_t start(int workers, int64_t service_us, const bench_server_phase *ph, size_t n)
{
    bench_server_options o;
    bench_server_options_init(&o);
    o.workers = workers;
    o.service_us = service_us;
    o.phases = ph;
    o.nphases = n;
    uint16_t port = 0;
    assert_int_equal(bench_server_start_ex(&o, &port), 0);
    return port;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Sends one GET on each of fds[0..n) and waits for every answer; ms[i] receives when
 * fds[i]'s complete answer arrived, in ms after the sends, sorted ascending. */
static void wave(const int *fds, int n, double *ms)
{
    size_t got[8] = {0};
    char buf[RLEN + 1];
    int64_t t0 = tu_now_ns();
    for (int i = 0; i < n; i++)
        send_str(fds[i], GET);
    for (int left = n; left > 0;) {
        struct pollfd pf[8];
        for (int i = 0; i < n; i++)
            pf[i] = (struct pollfd){.fd = got[i] < RLEN ? fds[i] : -1, .events = POLLIN};
        assert_true(poll(pf, (nfds_t)n, 5000) > 0);
        for (int i = 0; i < n; i++) {
            if (pf[i].revents == 0)
                continue;
            ssize_t r = recv(fds[i], buf + got[i], RLEN - got[i], 0);
            assert_true(r > 0);
            got[i] += (size_t)r;
            if (got[i] == RLEN) {
                buf[RLEN] = '\0';
                assert_string_equal(buf, RESP);
                ms[i] = tu_ms_since(t0);
                left--;
            }
        }
    }
    qsort(ms, (size_t)n, sizeof *ms, cmp_double);
}

/* k = 2, 50 ms: 4 requests take two waves; from 300 ms k = 4 and 4 take one. */
static void waves_follow_phase(void **state)
{
    (void)state;
    bench_server_phase ph[] = {{300, 4, 50000}};
    int64_t t_start = tu_now_ns();
    uint16_t port = start(2, 50000, ph, 1);
    int fds[4];
    double ms[4];
    for (int i = 0; i < 4; i++)
        fds[i] = dial(port);
    wave(fds, 4, ms);
    print_message("k=2: %.1f %.1f %.1f %.1f ms\n", ms[0], ms[1], ms[2], ms[3]);
    assert_true(ms[0] >= 49 && ms[1] < 99);  /* first wave */
    assert_true(ms[2] >= 99 && ms[3] < 400); /* second wave */
    double left = 350 - tu_ms_since(t_start);
    if (left > 0)
        tu_sleep_ms((int64_t)left);
    wave(fds, 4, ms);
    print_message("k=4: %.1f %.1f %.1f %.1f ms\n", ms[0], ms[1], ms[2], ms[3]);
    assert_true(ms[0] >= 49 && ms[3] < 99); /* one wave */
    for (int i = 0; i < 4; i++)
        close(fds[i]);
    bench_server_stop();
}

/* k = 1, 200 ms; at 100 ms the limit is lifted: the queued requests are answered then,
 * the one in service keeps its time. */
static void lifting_the_limit_drains_queue(void **state)
{
    (void)state;
    bench_server_phase ph[] = {{0, 1, 200000}, {100, 0, 0}};
    uint16_t port = start(0, 0, ph, 2);
    int fds[3];
    double ms[3];
    for (int i = 0; i < 3; i++)
        fds[i] = dial(port);
    wave(fds, 3, ms);
    print_message("lifted: %.1f %.1f %.1f ms\n", ms[0], ms[1], ms[2]);
    assert_true(ms[0] >= 80 && ms[1] < 190 && ms[2] >= 190 && ms[2] < 600);
    for (int i = 0; i < 3; i++)
        close(fds[i]);
    bench_server_stop();
}

/* k = 1, 100 ms: A in service, B queued then reset, C queued: C starts when A is done. */
static void hangup_in_queue(void **state)
{
    (void)state;
    uint16_t port = start(1, 100000, NULL, 0);
    int a = dial(port), b = dial(port), c = dial(port);
    int64_t ta = tu_now_ns();
    send_str(a, GET);
    tu_sleep_ms(10);
    send_str(b, GET);
    tu_sleep_ms(10);
    struct linger lg = {1, 0}; /* close with a reset: the server sees a hang-up */
    setsockopt(b, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(b);
    double ms[1];
    int64_t tc = tu_now_ns();
    wave(&c, 1, ms);
    /* Timed from A's send, not C's, so that late sleeps on a loaded machine cannot
     * make the answer look early: A ends at 100 ms, C's service then at 200 (300 if B
     * had kept its place). */
    double from_a = ms[0] + (double)(tc - ta) / 1e6;
    print_message("after hang-up: %.1f ms from A's request\n", from_a);
    assert_true(from_a >= 198 && from_a < 290);
    close(a);
    close(c);
    bench_server_stop();
}

/* Pipelined requests on one connection are served one at a time, answered in order, and a
 * final "Connection: close" closes after its answer. */
static void pipelined_in_order(void **state)
{
    (void)state;
    uint16_t port = start(2, 30000, NULL, 0);
    int fd = dial(port);
    int64_t t0 = tu_now_ns();
    send_str(fd, GET "HEAD / HTTP/1.1\r\n\r\n"
                     "POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"
                     "GET / HTTP/1.1\r\nConnection: close\r\n\r\n");
    const char *want =
        RESP "HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: "
             "text/plain\r\n\r\n" RESP "HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: "
             "text/plain\r\nConnection: close\r\n\r\nhello, world\n";
    size_t n = strlen(want), got = 0;
    char buf[1024];
    ssize_t r;
    while ((r = recv(fd, buf + got, sizeof buf - 1 - got, 0)) > 0)
        got += (size_t)r;
    assert_int_equal(r, 0); /* closed after the last answer */
    buf[got] = '\0';
    assert_int_equal(got, n);
    assert_string_equal(buf, want);
    assert_true(tu_ms_since(t0) >= 119); /* 4 x 30 ms, one after the other */
    close(fd);
    bench_server_stop();
}

/* Without workers the server answers at once, on several loops, as bench_server_start. */
static void no_schedule_no_delay(void **state)
{
    (void)state;
    bench_server_options o;
    bench_server_options_init(&o);
    o.threads = 2;
    o.service_us = 500000; /* ignored without workers */
    uint16_t port = 0;
    assert_int_equal(bench_server_start_ex(&o, &port), 0);
    int fd = dial(port);
    double ms[1];
    wave(&fd, 1, ms);
    assert_true(ms[0] < 400);
    close(fd);
    bench_server_stop();
}

static void bad_options(void **state)
{
    (void)state;
    bench_server_options o;
    uint16_t port;
    bench_server_phase down[] = {{100, 1, 0}, {100, 2, 0}};
    bench_server_options_init(&o);
    o.threads = 0;
    assert_int_equal(bench_server_start_ex(&o, &port), -EINVAL);
    bench_server_options_init(&o);
    o.workers = -1;
    assert_int_equal(bench_server_start_ex(&o, &port), -EINVAL);
    bench_server_options_init(&o);
    o.phases = down;
    o.nphases = 2;
    assert_int_equal(bench_server_start_ex(&o, &port), -EINVAL);
}

static void parse_good(void **state)
{
    (void)state;
    bench_server_phase ph[8];
    size_t n = 0;
    char err[200];
    assert_int_equal(bench_server_phase_parse("0:8:2000,5000:4:2000,10000:8:8000,15000:8:2000", ph,
                                              8, &n, err, sizeof err),
                     0);
    assert_int_equal(n, 4);
    assert_int_equal(ph[1].at_ms, 5000);
    assert_int_equal(ph[1].workers, 4);
    assert_int_equal(ph[2].service_us, 8000);
    assert_int_equal(bench_server_phase_parse(" 0 : 0 : 0 , 1:2:3", ph, 8, &n, err, sizeof err), 0);
    assert_int_equal(n, 2);
    assert_int_equal(ph[0].workers, 0);
    assert_int_equal(ph[1].service_us, 3);
}

static void parse_bad(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "0:8",
        "0:8:",
        "0:8:2000,",
        ",0:8:2000",
        "a:b:c",
        "0:8:2000x",
        "0:-1:5",
        "5000:4:2000,0:8:2000",
        "0:1:1,0:1:1",
        "0:1:1:1",
        "99999999999999999999:1:1",
        "0:2000000:1",
        "0:1:60000001",
        "0;1;1",
    };
    bench_server_phase ph[8];
    size_t n;
    char err[200];
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        err[0] = '\0';
        if (bench_server_phase_parse(bad[i], ph, 8, &n, err, sizeof err) != -1)
            fail_msg("accepted \"%s\"", bad[i]);
        assert_true(strlen(err) > 10);
        print_message("\"%s\": %s\n", bad[i], err);
    }
    assert_int_equal(bench_server_phase_parse("0:1:1,1:1:1,2:1:1", ph, 2, &n, err, sizeof err), -1);
    assert_non_null(strstr(err, "too many"));
    assert_int_equal(bench_server_phase_parse(NULL, ph, 2, &n, NULL, 0), -1);
}

/* A test that fails half-way leaves the server running; stopping it here keeps the
 * next test from failing to start one (the server is a singleton). */
static int stop_server(void **state)
{
    (void)state;
    bench_server_stop();
    return 0;
}

#define T(f) cmocka_unit_test_teardown(f, stop_server)

int main(void)
{
    tu_watchdog(60);
    const struct CMUnitTest tests[] = {
        T(waves_follow_phase),   T(lifting_the_limit_drains_queue),
        T(hangup_in_queue),      T(pipelined_in_order),
        T(no_schedule_no_delay), T(bad_options),
        T(parse_good),           T(parse_bad),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
