/* test_net_dial.c: the dialer (net/dial.c) on loopback. Happy Eyeballs: an address
 * whose SYNs go unanswered (a listener with a full accept queue) costs the attempt
 * delay, not the deadline; a refused one hands over at once; IPv6 comes first and the
 * families alternate; one deadline bounds the whole dial. The options: a local
 * address is the connection's source, TCP_USER_TIMEOUT and keepalive are set, a Unix
 * socket is dialled by path. Every error path closes what it opened, and the event-loop
 * callback sees each attempt's socket come and go. */
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "net/net.h"
#include "support/test_util.h"

/* ---- helpers ------------------------------------------------------------------------ */

/* A listener whose accept queue is full: a further connect's SYN is dropped, so it
 * stays pending (a black hole on loopback). false if the queue never filled. */
typedef struct blackhole {
    int lfd;
    uint16_t port;
    int fillers[16];
    int nf;
} blackhole;

static bool blackhole_open(blackhole *b)
{
    memset(b, 0, sizeof *b);
    b->lfd = tu_listen_loopback(AF_INET, 0, &b->port);
    assert_true(b->lfd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(b->port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool full = false;
    while (b->nf < 16 && !full) {
        int c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        assert_true(c >= 0);
        b->fillers[b->nf++] = c;
        (void)connect(c, (struct sockaddr *)&a, sizeof a);
        struct pollfd p = {.fd = c, .events = POLLOUT};
        full = poll(&p, 1, 200) == 0;
    }
    return full;
}

static void blackhole_close(blackhole *b)
{
    for (int i = 0; i < b->nf; i++)
        close(b->fillers[i]);
    close(b->lfd);
}

/* getaddrinfo() of one literal: lists are chained from several, so freeaddrinfo() of
 * the head frees them all. */
static struct addrinfo *lookup(const char *ip, uint16_t port)
{
    struct addrinfo *ai = NULL;
    tp_errinfo ei;
    assert_int_equal(tp__resolve(ip, port, &ai, &ei), TP_OK);
    assert_null(ai->ai_next);
    return ai;
}

static struct addrinfo *chain(struct addrinfo *a, struct addrinfo *b)
{
    struct addrinfo *t = a;
    while (t->ai_next != NULL)
        t = t->ai_next;
    t->ai_next = b;
    return a;
}

/* list as the dialer takes it (a copy); list is freed. */
static const tp__addrs *to_addrs(struct addrinfo *list, tp__addrs *out)
{
    tp__addrs_from_ai(list, out);
    freeaddrinfo(list);
    return out;
}

static uint16_t closed_port(void)
{
    uint16_t port = 0;
    int fd = tu_listen_loopback(AF_INET, 1, &port);
    assert_true(fd >= 0);
    close(fd);
    return port;
}

static uint16_t peer_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    assert_int_equal(getpeername(fd, (struct sockaddr *)&ss, &len), 0);
    return ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                          : ((struct sockaddr_in *)&ss)->sin_port);
}

/* The event-loop callback: sockets added and removed. */
typedef struct seen {
    int added, removed, live;
} seen;

static void on_socket(void *ud, int fd, bool added)
{
    seen *s = ud;
    assert_true(fd >= 0);
    if (added) {
        s->added++;
        s->live++;
    } else {
        s->removed++;
        s->live--;
    }
}

/* ---- Happy Eyeballs ----------------------------------------------------------------- */

/* The first address swallows SYNs: the second starts after the attempt delay and
 * wins; the dial took about that delay, far less than the deadline. */
static void test_stalled_address_costs_the_delay(void **state)
{
    (void)state;
    blackhole b;
    if (!blackhole_open(&b)) {
        blackhole_close(&b);
        skip();
    }
    uint16_t good = 0;
    int lfd = tu_listen_loopback(AF_INET, 16, &good);
    assert_true(lfd >= 0);
    int fds = tu_count_fds();
    seen s = {0};
    tp__dial_options o = {.on_socket = on_socket, .ud = &s};
    tp__dial d;
    tp_errinfo ei;
    tp__addrs addrs;
    struct addrinfo *list = chain(lookup("127.0.0.1", b.port), lookup("127.0.0.1", good));
    assert_int_equal(tp__dial_begin(&d, "127.0.0.1", 0, to_addrs(list, &addrs), &o, tp_deadline_after(MS(5000)), &ei),
                     TP_OK);
    int64_t t0 = tu_now_ns();
    int fd = -1;
    tp_err rc = tp__dial_run(&d, &fd, &ei);
    double ms = tu_ms_since(t0);
    print_message("connected after %.1f ms\n", ms);
    assert_int_equal(rc, TP_OK);
    assert_int_equal(peer_port(fd), good);
    if (ms < 240.0 || ms > 1000.0)
        fail_msg("the second address started after %.1f ms, expected ~250", ms);
    assert_int_equal(s.added, 2);
    assert_int_equal(s.removed, 2); /* the loser closed, the winner handed over */
    assert_int_equal(s.live, 0);
    close(fd);
    assert_int_equal(tu_count_fds(), fds);
    close(lfd);
    blackhole_close(&b);
}

/* A refused address hands over at once: no delay. */
static void test_refused_address_hands_over_at_once(void **state)
{
    (void)state;
    uint16_t good = 0;
    int lfd = tu_listen_loopback(AF_INET, 16, &good);
    assert_true(lfd >= 0);
    tp__dial d;
    tp_errinfo ei;
    tp__addrs addrs;
    struct addrinfo *list = chain(lookup("127.0.0.1", closed_port()), lookup("127.0.0.1", good));
    assert_int_equal(
        tp__dial_begin(&d, "127.0.0.1", 0, to_addrs(list, &addrs), NULL, tp_deadline_after(MS(5000)), &ei), TP_OK);
    int64_t t0 = tu_now_ns();
    int fd = -1;
    assert_int_equal(tp__dial_run(&d, &fd, &ei), TP_OK);
    assert_true(tu_ms_since(t0) < 100.0);
    assert_int_equal(peer_port(fd), good);
    close(fd);
    close(lfd);
}

/* IPv6 first, then the families alternate; each family keeps the resolver's order. */
static void test_order_ipv6_first_alternating(void **state)
{
    (void)state;
    tp__addrs addrs;
    struct addrinfo *list = chain(
        chain(lookup("127.0.0.1", 1), lookup("127.0.0.2", 2)),
        chain(lookup("127.0.0.3", 3), chain(lookup("::1", 4), lookup("::ffff:127.0.0.9", 5))));
    tp__dial d;
    tp_errinfo ei;
    assert_int_equal(tp__dial_begin(&d, "h", 0, to_addrs(list, &addrs), NULL, TP_DURATION_INFINITE, &ei), TP_OK);
    assert_int_equal(d.naddrs, 5);
    int want_port[] = {4, 1, 5, 2, 3};
    int want_family[] = {AF_INET6, AF_INET, AF_INET6, AF_INET, AF_INET};
    for (int i = 0; i < 5; i++) {
        const struct sockaddr *sa = &d.order[i].u.sa;
        assert_int_equal(sa->sa_family, want_family[i]);
        uint16_t p = ntohs(sa->sa_family == AF_INET6
                               ? ((const struct sockaddr_in6 *)(const void *)sa)->sin6_port
                               : ((const struct sockaddr_in *)(const void *)sa)->sin_port);
        assert_int_equal(p, want_port[i]);
    }
    tp__dial_abort(&d);
}

/* Three stalled addresses, 600 ms for the dial: each starts 250 ms after the last, and
 * the dial ends at its deadline with every socket closed. */
static void test_one_deadline_for_every_address(void **state)
{
    (void)state;
    blackhole b;
    if (!blackhole_open(&b)) {
        blackhole_close(&b);
        skip();
    }
    int fds = tu_count_fds();
    seen s = {0};
    tp__dial_options o = {.on_socket = on_socket, .ud = &s};
    tp__dial d;
    tp_errinfo ei;
    tp__addrs addrs;
    struct addrinfo *list = chain(lookup("127.0.0.1", b.port),
                                  chain(lookup("127.0.0.1", b.port), lookup("127.0.0.1", b.port)));
    assert_int_equal(
        tp__dial_begin(&d, "127.0.0.1", b.port, to_addrs(list, &addrs), &o, tp_deadline_after(MS(600)), &ei), TP_OK);
    int64_t t0 = tu_now_ns();
    int fd = 5;
    tp_err rc = tp__dial_run(&d, &fd, &ei);
    double ms = tu_ms_since(t0);
    print_message("%s (%.1f ms)\n", ei.msg, ms);
    assert_int_equal(rc, TP_ETIMEDOUT);
    assert_int_equal(fd, -1);
    assert_non_null(strstr(ei.msg, "3 of 3 addresses tried"));
    if (ms < 590.0 || ms > 1100.0)
        fail_msg("the dial ended after %.1f ms, its deadline was 600", ms);
    assert_int_equal(s.added, 3);
    assert_int_equal(s.live, 0);
    assert_int_equal(tu_count_fds(), fds);
    blackhole_close(&b);
}

/* Every address refused: the last one's error, nothing left open. */
static void test_all_refused(void **state)
{
    (void)state;
    int fds = tu_count_fds();
    tp__dial d;
    tp_errinfo ei;
    tp__addrs addrs;
    struct addrinfo *list = chain(lookup("127.0.0.1", closed_port()), lookup("::1", closed_port()));
    assert_int_equal(
        tp__dial_begin(&d, "localhost", 0, to_addrs(list, &addrs), NULL, tp_deadline_after(MS(2000)), &ei), TP_OK);
    int fd = 5;
    assert_int_equal(tp__dial_run(&d, &fd, &ei), TP_ECONNREFUSED);
    assert_int_equal(fd, -1);
    assert_non_null(strstr(ei.msg, "localhost ("));
    assert_int_equal(tu_count_fds(), fds);
}

/* ---- options ------------------------------------------------------------------------ */

static void test_local_address_and_socket_options(void **state)
{
    (void)state;
    uint16_t port = 0;
    int lfd = tu_listen_loopback(AF_INET, 16, &port);
    assert_true(lfd >= 0);
    tp__dial_options o = {.local_address = "127.0.0.2",
                          .user_timeout = MS(4500) + 1, /* rounded up to 4501 ms */
                          .keepalive_idle_s = 9};
    int fd = -1;
    tp_errinfo ei;
    assert_int_equal(
        tp__dial_host("127.0.0.1", port, &o, tp_deadline_after(MS(2000)), &fd, NULL, NULL, &ei),
        TP_OK);
    struct sockaddr_in src;
    socklen_t len = sizeof src;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&src, &len), 0);
    assert_int_equal(ntohl(src.sin_addr.s_addr), 0x7f000002);
    assert_true(ntohs(src.sin_port) != 0); /* chosen by connect */
    unsigned ut = 0;
    len = sizeof ut;
    assert_int_equal(getsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &ut, &len), 0);
    assert_int_equal(ut, 4501);
    int v = 0;
    len = sizeof v;
    assert_int_equal(getsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &v, &len), 0);
    assert_int_equal(v, 1);
    assert_int_equal(getsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &v, &len), 0);
    assert_int_equal(v, 9);
    assert_int_equal(getsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &v, &len), 0);
    assert_int_equal(v, 3);
    close(fd);
    close(lfd);

    /* A local address that is not an IP, or of a family the destination lacks. */
    o = (tp__dial_options){.local_address = "localhost"};
    assert_int_equal(
        tp__dial_host("127.0.0.1", port, &o, tp_deadline_after(MS(2000)), &fd, NULL, NULL, &ei),
        TP_EINVAL);
    assert_non_null(strstr(ei.msg, "local_address"));
    o.local_address = "::1";
    assert_int_equal(
        tp__dial_host("127.0.0.1", port, &o, tp_deadline_after(MS(2000)), &fd, NULL, NULL, &ei),
        TP_ERESOLVE);
    assert_non_null(strstr(ei.msg, "family"));
    assert_int_equal(fd, -1);
}

static void test_unix_socket(void **state)
{
    (void)state;
    char path[108];
    snprintf(path, sizeof path, "/tmp/tp-dial-%ld.sock", (long)getpid());
    unlink(path);
    int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    snprintf(un.sun_path, sizeof un.sun_path, "%s", path);
    assert_int_equal(bind(lfd, (struct sockaddr *)&un, sizeof un), 0);
    assert_int_equal(listen(lfd, 8), 0);
    tp__dial_options o = {.unix_path = path, .user_timeout = MS(1000), .keepalive_idle_s = 5};
    int fd = -1;
    tp_errinfo ei;
    assert_int_equal(
        tp__dial_host("ignored", 0, &o, tp_deadline_after(MS(2000)), &fd, NULL, NULL, &ei), TP_OK);
    int peer = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    assert_true(peer >= 0);
    assert_int_equal(write(fd, "ping", 4), 4);
    char buf[8];
    assert_int_equal(read(peer, buf, sizeof buf), 4);
    close(peer);
    close(fd);
    close(lfd);
    unlink(path);
    /* Nobody there: an error naming the path. */
    int fds = tu_count_fds();
    assert_true(tp__dial_host("ignored", 0, &o, tp_deadline_after(MS(2000)), &fd, NULL, NULL,
                              &ei) != TP_OK);
    assert_non_null(strstr(ei.msg, path));
    assert_int_equal(fd, -1);
    assert_int_equal(tu_count_fds(), fds);
    /* A path too long for sun_path. */
    char lng[200];
    memset(lng, 'x', sizeof lng - 1);
    lng[sizeof lng - 1] = '\0';
    o.unix_path = lng;
    assert_int_equal(
        tp__dial_host("ignored", 0, &o, tp_deadline_after(MS(2000)), &fd, NULL, NULL, &ei),
        TP_EINVAL);
}

int main(void)
{
    tu_watchdog(60);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stalled_address_costs_the_delay),
        cmocka_unit_test(test_refused_address_hands_over_at_once),
        cmocka_unit_test(test_order_ipv6_first_alternating),
        cmocka_unit_test(test_one_deadline_for_every_address),
        cmocka_unit_test(test_all_refused),
        cmocka_unit_test(test_local_address_and_socket_options),
        cmocka_unit_test(test_unix_socket),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
