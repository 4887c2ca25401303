/* test_diag_aggregate.c: the doctor's aggregation step (src/diag/aggregate.c) on
 * synthetic socket dumps, with exact counts: listeners dropped and the sockets they
 * accepted marked inbound (wildcard listener), duplicates from a non-atomic dump merged,
 * bound-only sockets left out, ports counted for the busiest local address, TIME_WAIT
 * arrivals between two samples (including a 4-tuple tcp_tw_reuse handed to a new
 * connection), the single-sample estimate from TIME_WAIT ages, and the pid selection. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "diag/diag_internal.h"

#define D "10.0.0.5:6379"

static tp_diag_endpoint ep(const char *s)
{
    tp_diag_endpoint e;
    memset(&e, 0, sizeof e);
    if (strcmp(s, "0.0.0.0:0") == 0) { /* the parser wants a port: build it by hand */
        e.family = AF_INET;
        return e;
    }
    assert_int_equal(tp_diag_endpoint_parse(s, &e), TP_OK);
    return e;
}

static void add(tp__diag_vec *v, const char *local, const char *remote, int state,
                uint32_t timer_ms, uint32_t inode)
{
    tp_diag_socket *s = tp__diag_vec_push(v);
    assert_non_null(s);
    s->local = ep(local);
    s->remote = ep(remote);
    s->state = state;
    s->timer_ms = timer_ms;
    s->timer = state == TP_DIAG_TIME_WAIT ? 3 : 0;
    s->inode = inode;
}

static tp_diag_report *report(int pid)
{
    tp_diag_report *r = calloc(1, sizeof *r);
    assert_non_null(r);
    tp_diag_options_init(&r->opts);
    r->opts.pid = pid;
    r->host.pid = pid;
    r->host.port_range = 28232;
    r->host.tw_reuse = 0;
    r->host.tw_reuse_delay_ms = 1000;
    return r;
}

/* The earlier sample: three TIME_WAIT entries and one open connection towards D, a
 * wildcard listener on 5432 with one accepted connection. */
static tp_diag_report *sample_prev(int pid, const uint32_t *inodes, size_t ninodes)
{
    tp__diag_vec v = {0};
    add(&v, "0.0.0.0:5432", "0.0.0.0:0", TP_DIAG_LISTEN, 0, 900);
    add(&v, "10.0.0.1:5432", "10.0.0.9:40000", TP_DIAG_ESTABLISHED, 0, 901);
    add(&v, "10.0.0.1:40001", D, TP_DIAG_TIME_WAIT, 50000, 0);
    add(&v, "10.0.0.1:40002", D, TP_DIAG_TIME_WAIT, 40000, 0);
    add(&v, "10.0.0.1:40003", D, TP_DIAG_TIME_WAIT, 30000, 0);
    add(&v, "10.0.0.1:40010", D, TP_DIAG_ESTABLISHED, 0, 111);
    tp_diag_report *r = report(pid);
    assert_int_equal(tp__diag_aggregate(r, &v, inodes, ninodes, NULL), TP_OK);
    tp__diag_vec_free(&v);
    return r;
}

/* Two seconds later: 40001 aged, 40002 reused by a connection that has closed again
 * (its timer restarted), 40003 gone, 40004 new and listed twice, a second local address
 * with an open connection, and a socket that is only bound. */
static tp_diag_report *sample_cur(int pid, const uint32_t *inodes, size_t ninodes,
                                  const tp_diag_report *prev)
{
    tp__diag_vec v = {0};
    add(&v, "0.0.0.0:5432", "0.0.0.0:0", TP_DIAG_LISTEN, 0, 900);
    add(&v, "10.0.0.1:5432", "10.0.0.9:40000", TP_DIAG_ESTABLISHED, 0, 901);
    add(&v, "10.0.0.1:40001", D, TP_DIAG_TIME_WAIT, 48000, 0);
    add(&v, "10.0.0.1:40002", D, TP_DIAG_TIME_WAIT, 59000, 0);
    add(&v, "10.0.0.1:40004", D, TP_DIAG_TIME_WAIT, 59500, 0);
    add(&v, "10.0.0.1:40004", D, TP_DIAG_TIME_WAIT, 59500, 0);
    add(&v, "10.0.0.1:40010", D, TP_DIAG_ESTABLISHED, 0, 111);
    add(&v, "10.0.0.2:40001", D, TP_DIAG_ESTABLISHED, 0, 222);
    add(&v, "10.0.0.1:45000", "0.0.0.0:0", TP_DIAG_CLOSE, 0, 333);
    tp_diag_report *r = report(pid);
    r->host.interval_s = 2.0;
    assert_int_equal(tp__diag_aggregate(r, &v, inodes, ninodes, prev), TP_OK);
    tp__diag_vec_free(&v);
    return r;
}

static void test_two_samples(void **state)
{
    (void)state;
    tp_diag_report *prev = sample_prev(0, NULL, 0);
    tp_diag_report *r = sample_cur(0, NULL, 0, prev);
    const tp_diag_host *h = tp_diag_report_host(r);
    assert_int_equal(h->sockets, 8); /* 9 listed, one twice */
    assert_int_equal(h->listeners, 1);
    assert_int_equal(h->inbound, 1);
    assert_int_equal(h->timewait, 3);
    assert_int_equal(tp_diag_report_dest_count(r), 1);   /* no inbound, no bound-only */
    assert_int_equal(tp_diag_report_socket_count(r), 6); /* D's 5 and the bound one */
    tp_diag_endpoint d_ep = ep(D);
    const tp_diag_dest *d = tp_diag_report_find_dest(r, &d_ep);
    assert_non_null(d);
    assert_int_equal(d->sockets, 5);
    assert_int_equal(d->states[TP_DIAG_TIME_WAIT], 3);
    assert_int_equal(d->states[TP_DIAG_ESTABLISHED], 2);
    /* Ports: 10.0.0.1 holds 4 towards D (3 in TIME_WAIT), 10.0.0.2 one. */
    assert_int_equal(d->ports_used, 4);
    assert_int_equal(d->ports_timewait, 3);
    assert_int_equal(d->ports_open, 1);
    assert_int_equal(d->headroom, 28228);
    /* Arrivals: 40002 (timer restarted) and 40004 (new); 40001 only aged. */
    assert_int_equal(d->tw_arrivals, 2);
    assert_true(d->close_rate_sampled);
    assert_true(d->close_rate == 1.0);
    assert_true(d->tw_hold_s == 60.0);
    assert_true(d->critical_rate == 28231.0 / 60.0);
    assert_true(d->exhaustion_s == TP_DIAG_NEVER);
    tp_diag_report_destroy(r);

    /* One sample: the entries younger than TP_DIAG_RATE_WINDOW_S (40002 at 1 s, 40004 at
     * 0.5 s; 40001 is 12 s old) over the window. */
    r = sample_cur(0, NULL, 0, NULL);
    d = tp_diag_report_find_dest(r, &d_ep);
    assert_false(d->close_rate_sampled);
    assert_int_equal(d->tw_arrivals, 2);
    assert_true(d->close_rate == 2.0 / TP_DIAG_RATE_WINDOW_S);
    tp_diag_report_destroy(r);
    tp_diag_report_destroy(prev);
}

static void test_pid_selection(void **state)
{
    (void)state;
    static const uint32_t mine[] = {111}; /* sorted, as tp__diag_pid_inodes returns them */
    tp_diag_report *r = sample_cur(4242, mine, 1, NULL);
    tp_diag_endpoint d_ep = ep(D);
    const tp_diag_dest *d = tp_diag_report_find_dest(r, &d_ep);
    assert_non_null(d);
    /* Its own connection, plus the ownerless TIME_WAIT towards a destination it holds a
     * socket to; not the other process's connection from 10.0.0.2. */
    assert_int_equal(d->states[TP_DIAG_ESTABLISHED], 1);
    assert_int_equal(d->states[TP_DIAG_TIME_WAIT], 3);
    assert_int_equal(d->sockets, 4);
    assert_int_equal(d->ports_used, 4); /* ports stay host-wide */
    assert_int_equal(tp_diag_report_dest_count(r), 1);
    tp_diag_report_destroy(r);

    /* Without its connection the TIME_WAIT entries are attributed only through prev. */
    static const uint32_t none[] = {999};
    r = sample_cur(4242, none, 1, NULL);
    assert_int_equal(tp_diag_report_dest_count(r), 0);
    tp_diag_report_destroy(r);
    tp_diag_report *prev = sample_prev(4242, mine, 1);
    r = sample_cur(4242, none, 1, prev);
    d = tp_diag_report_find_dest(r, &d_ep);
    assert_non_null(d);
    assert_int_equal(d->states[TP_DIAG_TIME_WAIT], 3);
    assert_int_equal(d->states[TP_DIAG_ESTABLISHED], 0);
    tp_diag_report_destroy(r);
    tp_diag_report_destroy(prev);

    /* pid_include_orphans = false: only the sockets it owns. */
    tp__diag_vec v = {0};
    add(&v, "10.0.0.1:40001", D, TP_DIAG_TIME_WAIT, 48000, 0);
    add(&v, "10.0.0.1:40010", D, TP_DIAG_ESTABLISHED, 0, 111);
    r = report(4242);
    r->opts.pid_include_orphans = false;
    assert_int_equal(tp__diag_aggregate(r, &v, mine, 1, NULL), TP_OK);
    tp__diag_vec_free(&v);
    d = tp_diag_report_find_dest(r, &d_ep);
    assert_int_equal(d->sockets, 1);
    assert_int_equal(d->states[TP_DIAG_TIME_WAIT], 0);
    tp_diag_report_destroy(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_two_samples),
        cmocka_unit_test(test_pid_selection),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
