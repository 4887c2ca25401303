/* test_diag.c: tidepool doctor's library (include/tidepool/diag.h) against conditions
 * created on loopback (127.0.0.1 and ::1 only): a TIME_WAIT pile-up from client-first
 * closes, read through netlink and through the /proc fallback, with exact arrival counts
 * from two samples; CLOSE_WAIT sockets held after the server closed; tcp_info RTT on
 * established sockets, over IPv4 and IPv6. Every destination is a fresh listener of the
 * test's own, so sockets of other programs never change the counts asserted.
 * test_diag_pid.c covers the pid and destination filters. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include <tidepool/diag.h>
#include <tidepool/tidepool.h>

#include "support/diag_loopback.h"
#include "support/test_util.h"

#define PILEUP 200

/* n connections to ep, each closed by the client first (so the client side enters
 * TIME_WAIT), the server reading EOF then closing. */
static void make_timewait(int lfd, const tp_diag_endpoint *ep, int n)
{
    for (int i = 0; i < n; i++) {
        int c = dl_connect(ep);
        assert_true(c >= 0);
        int a = accept(lfd, NULL, NULL);
        assert_true(a >= 0);
        close(c);
        char ch;
        assert_int_equal(recv(a, &ch, 1, 0), 0); /* the client's FIN */
        close(a);
    }
}

static void timewait_pileup(tp_diag_source src)
{
    tp_diag_endpoint ep;
    int lfd = dl_listen(AF_INET, &ep);
    tp_diag_report *before = dl_collect(src, 0, NULL);
    make_timewait(lfd, &ep, PILEUP);
    tp_diag_report *r = NULL;
    bool ok;
    TU_WAIT_UNTIL(ok,
                  (tp_diag_report_destroy(r), r = dl_collect(src, 0, before),
                   dl_state_count(r, &ep, TP_DIAG_TIME_WAIT) >= PILEUP),
                  5000);
    assert_true(ok);
    const tp_diag_host *h = tp_diag_report_host(r);
    print_message("source %s%s%s\n", h->source == TP_DIAG_SOURCE_NETLINK ? "netlink" : "procfs",
                  h->note[0] ? ": " : "", h->note);
    if (src == TP_DIAG_SOURCE_PROCFS) {
        assert_int_equal(h->source, TP_DIAG_SOURCE_PROCFS);
        assert_true(strstr(h->note, "/proc/net/tcp") != NULL);
    }
    const tp_diag_dest *d = tp_diag_report_find_dest(r, &ep);
    assert_non_null(d);
    assert_int_equal(d->states[TP_DIAG_TIME_WAIT], PILEUP);
    /* Every one of them is new since the first sample: the measured close rate. */
    assert_int_equal(d->tw_arrivals, PILEUP);
    assert_true(d->close_rate_sampled);
    assert_true(h->interval_s > 0);
    assert_true(d->close_rate > 0);
    assert_true(d->ports_used >= PILEUP);
    assert_int_equal(d->headroom, (int64_t)h->port_range - d->ports_used);
    const tp_diag_finding *f = dl_find_finding(r, "time_wait", &ep);
    assert_non_null(f);
    char text[TP_DIAG_ENDPOINT_STRLEN];
    tp_diag_endpoint_format(&ep, text, sizeof text);
    assert_non_null(strstr(f->diagnosis, text));
    assert_true(f->remedy[0] != '\0');

    /* A single sample estimates the rate from the TIME_WAIT timers: all just arrived. */
    tp_diag_report *single = dl_collect(src, 0, NULL);
    d = tp_diag_report_find_dest(single, &ep);
    assert_non_null(d);
    assert_false(d->close_rate_sampled);
    assert_true(d->tw_arrivals >= PILEUP);
    assert_true(d->close_rate >= (double)PILEUP / TP_DIAG_RATE_WINDOW_S);
    tp_diag_report_destroy(single);
    tp_diag_report_destroy(before);
    tp_diag_report_destroy(r);
    close(lfd);
}

static void test_timewait_auto(void **state)
{
    (void)state;
    timewait_pileup(TP_DIAG_SOURCE_AUTO);
}

static void test_timewait_procfs_fallback(void **state)
{
    (void)state;
    timewait_pileup(TP_DIAG_SOURCE_PROCFS);
}

/* The server accepts and closes; the client holds its sockets: CLOSE_WAIT on our side. */
static void closewait(tp_diag_source src, int held)
{
    tp_diag_endpoint ep;
    int lfd = dl_listen(AF_INET, &ep);
    int fds[32];
    assert_true(held <= 32);
    for (int i = 0; i < held; i++) {
        fds[i] = dl_connect(&ep);
        assert_true(fds[i] >= 0);
        int a = accept(lfd, NULL, NULL);
        assert_true(a >= 0);
        close(a);
    }
    tp_diag_report *r = NULL;
    bool ok;
    TU_WAIT_UNTIL(ok,
                  (tp_diag_report_destroy(r), r = dl_collect(src, 0, NULL),
                   dl_state_count(r, &ep, TP_DIAG_CLOSE_WAIT) == (uint32_t)held),
                  5000);
    assert_true(ok);
    const tp_diag_dest *d = tp_diag_report_find_dest(r, &ep);
    assert_int_equal(d->sockets, held);
    assert_int_equal(d->states[TP_DIAG_ESTABLISHED], 0);
    const tp_diag_finding *f = dl_find_finding(r, "close_wait", &ep);
    assert_non_null(f);
    assert_int_equal(f->severity,
                     held >= TP_DIAG_CLOSE_WAIT_CRIT ? TP_DIAG_CRITICAL : TP_DIAG_WARNING);
    assert_non_null(strstr(f->diagnosis, "CLOSE_WAIT"));
    assert_non_null(strstr(f->remedy, "idle_timeout"));
    /* The unread FIN occupies one byte of the receive queue. */
    for (size_t i = 0; i < tp_diag_report_socket_count(r); i++) {
        const tp_diag_socket *s = tp_diag_report_socket(r, i);
        if (tp_diag_endpoint_equal(&s->remote, &ep))
            assert_int_equal(s->rqueue, 1);
    }
    tp_diag_report_destroy(r);
    for (int i = 0; i < held; i++)
        close(fds[i]);
    close(lfd);
}

static void test_closewait_warning(void **state)
{
    (void)state;
    closewait(TP_DIAG_SOURCE_AUTO, 5);
}

static void test_closewait_critical_procfs(void **state)
{
    (void)state;
    closewait(TP_DIAG_SOURCE_PROCFS, TP_DIAG_CLOSE_WAIT_CRIT);
}

/* Ping-pong a few bytes so the kernel has RTT samples, then read tcp_info. */
static void established_rtt(int family)
{
    tp_diag_endpoint ep;
    int lfd = dl_listen(family, &ep);
    if (lfd < 0) {
        print_message("no loopback for family %d: skipped\n", family);
        return;
    }
    int c = dl_connect(&ep);
    assert_true(c >= 0);
    int a = accept(lfd, NULL, NULL);
    assert_true(a >= 0);
    char buf[64];
    for (int i = 0; i < 10; i++) {
        assert_int_equal(send(c, "ping", 4, 0), 4);
        assert_int_equal(recv(a, buf, 4, MSG_WAITALL), 4);
        assert_int_equal(send(a, "pong", 4, 0), 4);
        assert_int_equal(recv(c, buf, 4, MSG_WAITALL), 4);
    }
    tp_diag_report *r = dl_collect(TP_DIAG_SOURCE_AUTO, 0, NULL);
    if (tp_diag_report_host(r)->source != TP_DIAG_SOURCE_NETLINK) {
        print_message("no netlink here: no tcp_info to check\n");
    } else {
        const tp_diag_dest *d = tp_diag_report_find_dest(r, &ep);
        assert_non_null(d);
        assert_int_equal(d->states[TP_DIAG_ESTABLISHED], 1);
        assert_int_equal(d->rtt_samples, 1);
        assert_true(d->rtt_avg_us > 0);
        assert_true(d->rtt_max_us > 0);
        assert_true(d->segs_out > 0);
        size_t found = 0;
        for (size_t i = 0; i < tp_diag_report_socket_count(r); i++) {
            const tp_diag_socket *s = tp_diag_report_socket(r, i);
            if (!tp_diag_endpoint_equal(&s->remote, &ep))
                continue;
            found++;
            assert_true(s->has_tcp_info);
            assert_true(s->rtt_us > 0);
            assert_true(s->inode != 0);
            assert_false(s->inbound);
        }
        assert_int_equal(found, 1);
        print_message("%s rtt %u us\n", family == AF_INET6 ? "IPv6" : "IPv4", d->rtt_max_us);
    }
    tp_diag_report_destroy(r);
    close(a);
    close(c);
    close(lfd);
}

static void test_established_rtt_v4(void **state)
{
    (void)state;
    established_rtt(AF_INET);
}

static void test_established_rtt_v6(void **state)
{
    (void)state;
    established_rtt(AF_INET6);
}

int main(void)
{
    tu_watchdog(120);
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_timewait_auto),      cmocka_unit_test(test_timewait_procfs_fallback),
        cmocka_unit_test(test_closewait_warning),  cmocka_unit_test(test_closewait_critical_procfs),
        cmocka_unit_test(test_established_rtt_v4), cmocka_unit_test(test_established_rtt_v6),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
