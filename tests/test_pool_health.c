/* test_pool_health.c: connection health from TCP_INFO, on real loopback sockets: a
 * connection whose peer stopped reading (its bytes stay unacknowledged, the send queue
 * does not drain) is retired by maintenance with reason unhealthy; a quiet healthy one
 * is kept; without retire_unhealthy nothing is retired. The connector here is a plain
 * TCP connect to a listener of the test's that accepts and never reads. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include <tidepool/tidepool.h>

#include "support/test_util.h"

typedef struct tcp_conn {
    int fd;
} tcp_conn;

typedef struct fx {
    int lfd;
    uint16_t port;
    int accepted[16];
    int naccepted;
    tp_pool *p;
    atomic_int closes_unhealthy;
} fx;

static tp_err tcp_open(void *ctx, const void *key, size_t keylen, int64_t deadline, void **out,
                       tp_errinfo *err)
{
    (void)key, (void)keylen, (void)deadline;
    fx *x = ctx;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(x->port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        if (fd >= 0)
            close(fd);
        return tp_errinfo_set(err, TP_ECONNREFUSED, errno, "connect");
    }
    /* Small buffers: a peer that stops reading backs up quickly. */
    int small = 4096;
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    int afd = accept(x->lfd, NULL, NULL);
    if (afd >= 0) {
        setsockopt(afd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
        x->accepted[x->naccepted++] = afd; /* never read */
    }
    tcp_conn *c = calloc(1, sizeof *c);
    c->fd = fd;
    *out = c;
    return TP_OK;
}

static void tcp_close(void *ctx, void *conn, tp_close_reason reason)
{
    fx *x = ctx;
    if (reason == TP_CLOSE_UNHEALTHY)
        atomic_fetch_add(&x->closes_unhealthy, 1);
    tcp_conn *c = conn;
    close(c->fd);
    free(c);
}

static int tcp_fd(void *ctx, void *conn)
{
    (void)ctx;
    return ((tcp_conn *)conn)->fd;
}

static int setup(void **state)
{
    fx *x = calloc(1, sizeof *x);
    if (x == NULL)
        return -1;
    x->lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (bind(x->lfd, (struct sockaddr *)&a, sizeof a) != 0 || listen(x->lfd, 16) != 0 ||
        getsockname(x->lfd, (struct sockaddr *)&a, &len) != 0)
        return -1;
    x->port = ntohs(a.sin_port);
    *state = x;
    return 0;
}

static int teardown(void **state)
{
    fx *x = *state;
    tp_pool_destroy(x->p);
    for (int i = 0; i < x->naccepted; i++)
        close(x->accepted[i]);
    close(x->lfd);
    free(x);
    return 0;
}

static tp_pool *make_pool(fx *x, bool retire)
{
    tp_pool_options o;
    tp_pool_options_init(&o);
    o.connector = (tp_connector){.open = tcp_open, .close = tcp_close, .fd = tcp_fd, .ctx = x};
    o.maintenance_thread = false;
    o.max_per_key = 4;
    o.retire_unhealthy = retire;
    return x->p = tu_pool_create(&o);
}

/* Writes until the socket refuses (the peer does not read). */
static size_t flood(int fd)
{
    static char junk[65536];
    size_t total = 0;
    for (int i = 0; i < 1000; i++) {
        ssize_t n = send(fd, junk, sizeof junk, MSG_NOSIGNAL);
        if (n <= 0)
            break;
        total += (size_t)n;
    }
    return total;
}

static void test_peer_not_reading_is_retired(void **state)
{
    fx *x = *state;
    tp_pool *p = make_pool(x, true);
    tp_conn *sick = tu_acquire(p, "k", 0);
    tp_conn *fine = tu_acquire(p, "k", 0);
    assert_true(flood(((tcp_conn *)tp_conn_get(sick))->fd) > 0);
    tp_conn_release(sick, 0);
    tp_conn_release(fine, 0);
    tu_sleep_ms(150); /* both idle past the health check's settling time */
    tp_pool_maintain(p);
    tp_stats st = tu_pool_stats(p);
    assert_int_equal(st.closes[TP_CLOSE_UNHEALTHY], 1);
    assert_int_equal(atomic_load(&x->closes_unhealthy), 1);
    assert_int_equal(st.idle, 1); /* the quiet one stays */
    /* The survivor is handed out as usual. */
    tp_conn *c = tu_acquire(p, "k", 0);
    assert_ptr_equal(c, fine);
    tp_conn_release(c, 0);
}

static void test_not_retired_when_disabled(void **state)
{
    fx *x = *state;
    tp_pool *p = make_pool(x, false);
    tp_conn *sick = tu_acquire(p, "k", 0);
    assert_true(flood(((tcp_conn *)tp_conn_get(sick))->fd) > 0);
    tp_conn_release(sick, 0);
    tu_sleep_ms(150);
    tp_pool_maintain(p);
    assert_int_equal(tu_pool_stats(p).closes[TP_CLOSE_UNHEALTHY], 0);
}

static void test_recent_connections_not_judged(void **state)
{
    /* Right after a release bytes may still be in flight: not judged before they settle. */
    fx *x = *state;
    tp_pool *p = make_pool(x, true);
    tp_conn *c = tu_acquire(p, "k", 0);
    tp_conn_release(c, 0);
    tp_pool_maintain(p);
    tp_stats st = tu_pool_stats(p);
    assert_int_equal(st.closes[TP_CLOSE_UNHEALTHY], 0);
    assert_int_equal(st.idle, 1);
}

int main(void)
{
    tu_watchdog(60);
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_peer_not_reading_is_retired),
        T(test_not_retired_when_disabled),
        T(test_recent_connections_not_judged),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
