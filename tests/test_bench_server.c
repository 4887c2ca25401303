/* test_bench_server.c (label: concurrency): the CLI's built-in benchmark server
 * (tools/bench_server.c) with plain sockets: 1000 keep-alive requests on one connection,
 * pipelining (answers in order, request bodies skipped, a request split across writes),
 * "Connection: close", HEAD, many connections over several threads, a bad request, and
 * start/stop twice in one process. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <unistd.h>

#include <cmocka.h>

#include "../tools/bench_server.h"
#include "support/test_util.h"

#define GET "GET / HTTP/1.1\r\nHost: bench\r\n\r\n"
#define RESP BENCH_SERVER_RESPONSE
#define RESP_CLOSE                                                                                 \
    "HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: text/plain\r\n"                        \
    "Connection: close\r\n\r\nhello, world\n"

static int dial(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {
        .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

static void send_str(int fd, const char *s)
{
    assert_int_equal(send(fd, s, strlen(s), MSG_NOSIGNAL), (ssize_t)strlen(s));
}

static void expect(int fd, const char *s)
{
    size_t n = strlen(s), got = 0;
    char buf[1024];
    assert_true(n < sizeof buf);
    while (got < n) {
        ssize_t r = recv(fd, buf + got, n - got, 0);
        assert_true(r > 0);
        got += (size_t)r;
    }
    buf[n] = '\0';
    assert_string_equal(buf, s);
}

static void expect_eof(int fd)
{
    char c;
    assert_int_equal(recv(fd, &c, 1, 0), 0);
}

static uint16_t start(int threads)
{
    uint16_t port = 0;
    assert_int_equal(bench_server_start(threads, &port), 0);
    assert_true(port > 0);
    return port;
}

static void keepalive_1000(void **state)
{
    uint16_t port = start(2);
    int fd = dial(port);
    for (int i = 0; i < 1000; i++) {
        send_str(fd, GET);
        expect(fd, RESP);
    }
    close(fd);
    bench_server_stop();
}

static void pipelining(void **state)
{
    uint16_t port = start(1);
    int fd = dial(port);
    /* Three requests in one write, the second with a body to skip. */
    send_str(fd, GET "POST /x HTTP/1.1\r\nContent-Length: 5\r\n\r\nabcde" GET);
    expect(fd, RESP RESP RESP);
    /* One request split mid-headers, another mid-body. */
    send_str(fd, "GET / HTTP/1.1\r\nHo");
    usleep(20000);
    send_str(fd, "st: x\r\n\r\nPOST / HTTP/1.1\r\ncontent-length: 4\r\n\r\nab");
    expect(fd, RESP);
    usleep(20000);
    send_str(fd, "cd" GET);
    expect(fd, RESP RESP);
    /* HEAD: no body. */
    send_str(fd, "HEAD / HTTP/1.1\r\n\r\n");
    expect(fd, "HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: text/plain\r\n\r\n");
    /* Close after the answer; what follows a close request is ignored. */
    send_str(fd, GET "GET / HTTP/1.1\r\nConnection: Close\r\n\r\n" GET);
    expect(fd, RESP RESP_CLOSE);
    expect_eof(fd);
    close(fd);
    fd = dial(port);
    send_str(fd, "GET / HTTP/1.0\r\n\r\n");
    expect(fd, RESP_CLOSE);
    expect_eof(fd);
    close(fd);
    bench_server_stop();
}

/* Many pipelined requests in one write: answers larger than the socket buffer. */
static void deep_pipeline(void **state)
{
    uint16_t port = start(1);
    int fd = dial(port);
    enum { N = 20000 };
    static char req[N * (sizeof GET - 1) + 1];
    for (int i = 0; i < N; i++)
        memcpy(req + (size_t)i * (sizeof GET - 1), GET, sizeof GET - 1);
    size_t len = N * (sizeof GET - 1), off = 0, want = N * (sizeof RESP - 1), got = 0;
    char buf[65536];
    /* Write and read at once (non-blocking send) so neither side stalls the other. */
    while (got < want) {
        if (off < len) {
            ssize_t s = send(fd, req + off, len - off, MSG_DONTWAIT | MSG_NOSIGNAL);
            if (s > 0)
                off += (size_t)s;
        }
        ssize_t r = recv(fd, buf, sizeof buf, off < len ? MSG_DONTWAIT : 0);
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && off < len)
            continue;
        assert_true(r > 0);
        for (ssize_t i = 0; i < r; i++) /* the stream is RESP repeated */
            assert_int_equal(buf[i], RESP[(got + (size_t)i) % (sizeof RESP - 1)]);
        got += (size_t)r;
    }
    close(fd);
    bench_server_stop();
}

static void many_connections_and_bad_request(void **state)
{
    uint16_t port = start(4);
    int fds[64];
    for (int i = 0; i < 64; i++)
        fds[i] = dial(port);
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 64; i++)
            send_str(fds[i], GET);
        for (int i = 0; i < 64; i++)
            expect(fds[i], RESP);
    }
    for (int i = 0; i < 64; i++)
        close(fds[i]);
    int fd = dial(port);
    send_str(fd, "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
    expect_eof(fd);
    close(fd);
    /* Connections left open are closed by stop. */
    fd = dial(port);
    send_str(fd, GET);
    expect(fd, RESP);
    bench_server_stop();
    expect_eof(fd);
    close(fd);
}

static void start_stop_twice_and_arguments(void **state)
{
    uint16_t port = 0;
    assert_int_equal(bench_server_start(0, &port), -EINVAL);
    assert_int_equal(bench_server_start(65, &port), -EINVAL);
    port = start(1);
    uint16_t other = 0;
    assert_int_equal(bench_server_start(1, &other), -EALREADY);
    bench_server_stop();
    bench_server_stop(); /* no-op */
    port = start(3);
    int fd = dial(port);
    send_str(fd, GET);
    expect(fd, RESP);
    close(fd);
    bench_server_stop();
}

int main(void)
{
    tu_watchdog(120);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(keepalive_1000),
        cmocka_unit_test(pipelining),
        cmocka_unit_test(deep_pipeline),
        cmocka_unit_test(many_connections_and_bad_request),
        cmocka_unit_test(start_stop_twice_and_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
