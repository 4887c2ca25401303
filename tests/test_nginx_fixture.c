/* test_nginx_fixture.c (label: integration): the nginx of scripts/nginx-test.sh, checked
 * with plain sockets and without the library, so that the HTTP client's integration tests
 * can rely on what it serves: every location of the header comment of the script, the two
 * keep-alive timeouts, the TLS port accepting, and nginx_env_restart() keeping the ports
 * while closing idle connections. Exits 77 (skipped) without the fixture. */
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

#include "support/nginx_env.h"
#include "support/test_util.h"

static nginx_env env;

static int dial(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {
        .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

typedef struct resp {
    char head[4096]; /* status line and headers, NUL-terminated */
    char *body;      /* malloc'd; chunked bodies are kept with their framing */
    size_t body_len;
} resp;

/* Sends req and reads one response: headers, then Content-Length bytes, or a chunked
 * body up to its last chunk. */
static void exchange(int fd, const char *req, resp *r)
{
    assert_int_equal(send(fd, req, strlen(req), MSG_NOSIGNAL), (ssize_t)strlen(req));
    size_t cap = 2 * NGINX_BIG_SIZE, len = 0;
    char *buf = malloc(cap + 1);
    char *hend = NULL;
    size_t want = (size_t)-1;
    bool chunked = false;
    while (len < want) {
        ssize_t n = recv(fd, buf + len, cap - len, 0);
        assert_true(n > 0);
        len += (size_t)n;
        buf[len] = '\0';
        if (hend == NULL && (hend = strstr(buf, "\r\n\r\n")) != NULL) {
            size_t hl = (size_t)(hend - buf) + 4;
            assert_true(hl < sizeof r->head);
            memcpy(r->head, buf, hl);
            r->head[hl] = '\0';
            const char *cl = strcasestr(r->head, "\r\nContent-Length: ");
            chunked = strcasestr(r->head, "\r\nTransfer-Encoding: chunked") != NULL;
            want = cl != NULL ? hl + strtoul(cl + 18, NULL, 10) : chunked ? want : hl;
        }
        if (chunked && strstr(hend + 2, "\r\n0\r\n\r\n") != NULL)
            want = len;
    }
    size_t hl = strlen(r->head);
    r->body_len = len - hl;
    r->body = malloc(r->body_len + 1);
    memcpy(r->body, buf + hl, r->body_len + 1);
    free(buf);
}

static void get_ok(int fd, const char *path, resp *r)
{
    char req[256];
    snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: localhost\r\n\r\n", path);
    exchange(fd, req, r);
}

static void locations(void **state)
{
    resp r;
    int fd = dial(env.http_port);
    get_ok(fd, "/", &r);
    assert_non_null(strstr(r.head, "HTTP/1.1 200 OK\r\n"));
    assert_non_null(strstr(r.head, "\r\nConnection: keep-alive\r\n"));
    assert_int_equal(r.body_len, 13);
    assert_string_equal(r.body, NGINX_BODY);
    free(r.body);
    get_ok(fd, "/status", &r);
    assert_non_null(strstr(r.head, "HTTP/1.1 204 No Content\r\n"));
    assert_int_equal(r.body_len, 0);
    free(r.body);
    get_ok(fd, "/ka-hint", &r);
    assert_non_null(strstr(r.head, "\r\nKeep-Alive: timeout=3\r\n"));
    assert_string_equal(r.body, NGINX_BODY);
    free(r.body);
    exchange(fd, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\nabcdef", &r);
    assert_non_null(strstr(r.head, "HTTP/1.1 200 OK\r\n"));
    assert_string_equal(r.body, "abcdef");
    free(r.body);
    get_ok(fd, "/big", &r);
    assert_int_equal(r.body_len, NGINX_BIG_SIZE);
    assert_memory_equal(r.body, "000000000000000\n", 16);
    assert_memory_equal(r.body + NGINX_BIG_SIZE - 16, "000000000065535\n", 16);
    assert_memory_equal(r.body + 16 * 1234, "000000000001234\n", 16);
    free(r.body);
    if (env.chunked) {
        get_ok(fd, "/chunked", &r);
        assert_non_null(strstr(r.head, "\r\nTransfer-Encoding: chunked\r\n"));
        assert_string_equal(r.body, "7\r\nhello, \r\n6\r\nworld\n\r\n0\r\n\r\n");
        free(r.body);
    }
    get_ok(fd, "/close", &r);
    assert_non_null(strstr(r.head, "\r\nConnection: close\r\n"));
    assert_string_equal(r.body, NGINX_BODY);
    free(r.body);
    char c;
    assert_int_equal(recv(fd, &c, 1, 0), 0);
    close(fd);
}

/* Time until the server closes an idle connection after one request to path. */
static double idle_close_ms(uint16_t port, const char *path)
{
    resp r;
    int fd = dial(port);
    get_ok(fd, path, &r);
    free(r.body);
    int64_t t0 = tu_now_ns();
    char c;
    assert_int_equal(recv(fd, &c, 1, 0), 0);
    close(fd);
    return tu_ms_since(t0);
}

static void keepalive_timeouts(void **state)
{
    double short_ka = idle_close_ms(env.http_short_ka_port, "/");
    assert_true(short_ka > 900 && short_ka < 2500);
    double hint = idle_close_ms(env.http_port, "/ka-hint");
    assert_true(hint > 2900 && hint < 4500);
}

/* The TLS ports answer (TLS itself is checked by the HTTP client's tests; without the
 * library there is no TLS client here). */
static void https_ports_accept(void **state)
{
    uint16_t ports[] = {env.https_port, env.https_wrong_name_port};
    for (int i = 0; i < 2; i++) {
        int fd = dial(ports[i]);
        /* Plain text gets nginx's 400 "The plain HTTP request was sent to HTTPS port". */
        resp r;
        get_ok(fd, "/", &r);
        assert_non_null(strstr(r.head, "HTTP/1.1 400"));
        free(r.body);
        close(fd);
    }
    assert_non_null(strstr(env.ca_file, "/ca.pem"));
}

static void restart_keeps_ports_and_closes_idle(void **state)
{
    resp r;
    int fd = dial(env.http_port);
    get_ok(fd, "/", &r);
    free(r.body);
    assert_int_equal(nginx_env_restart(&env), 0);
    char c;
    assert_true(recv(fd, &c, 1, 0) <= 0); /* the idle connection was closed */
    close(fd);
    nginx_env again;
    assert_int_equal(nginx_env_load(&again), 0);
    assert_int_equal(again.http_port, env.http_port);
    assert_int_equal(again.https_port, env.https_port);
    assert_int_equal(again.https_wrong_name_port, env.https_wrong_name_port);
    fd = dial(env.http_port);
    get_ok(fd, "/", &r);
    assert_string_equal(r.body, NGINX_BODY);
    free(r.body);
    close(fd);
    /* Stopped, the port refuses; restart brings it back. */
    assert_int_equal(nginx_env_stop(&env), 0);
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons(env.http_port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(connect(s, (struct sockaddr *)&a, sizeof a), -1);
    assert_int_equal(errno, ECONNREFUSED);
    close(s);
    assert_int_equal(nginx_env_restart(&env), 0);
    fd = dial(env.http_port);
    get_ok(fd, "/", &r);
    free(r.body);
    close(fd);
}

int main(void)
{
    if (nginx_env_load(&env) != 0) {
        fprintf(stderr, "test_nginx_fixture: no nginx fixture (run through ctest): skipped\n");
        return 77;
    }
    tu_watchdog(120);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(locations),
        cmocka_unit_test(keepalive_timeouts),
        cmocka_unit_test(https_ports_accept),
        cmocka_unit_test(restart_keeps_ports_and_closes_idle),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
