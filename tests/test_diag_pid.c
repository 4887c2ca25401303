/* test_diag_pid.c: the doctor's filters on loopback: --pid against a forked child
 * holding its own sockets (through netlink and the /proc fallback), a vanished pid, the
 * child's ownerless TIME_WAIT entries attributed to it through an earlier sample, the
 * destination filter, and inbound (accepted) sockets listed only on request. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include <tidepool/diag.h>
#include <tidepool/tidepool.h>

#include "support/diag_loopback.h"
#include "support/test_util.h"

/* A forked child holds 3 connections to L; the parent holds 2 of its own (opened after
 * the fork, so the child does not share them) plus one to a second listener M. */
static void pid_filter(tp_diag_source src)
{
    tp_diag_endpoint L, M;
    int lfd = dl_listen(AF_INET, &L), mfd = dl_listen(AF_INET, &M);
    int ready[2], done[2];
    assert_int_equal(pipe(ready), 0);
    assert_int_equal(pipe(done), 0);
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        /* No cmocka here: report through the exit status. */
        close(ready[0]);
        close(done[1]);
        close(lfd);
        close(mfd);
        int c[3];
        for (int i = 0; i < 3; i++)
            if ((c[i] = dl_connect(&L)) < 0)
                _exit(2);
        char ch = 'r';
        if (write(ready[1], &ch, 1) != 1)
            _exit(3);
        (void)read(done[0], &ch, 1); /* until the parent is done (or gone) */
        _exit(0);
    }
    close(ready[1]);
    close(done[0]);
    char ch;
    assert_int_equal(read(ready[0], &ch, 1), 1);
    int mine[3] = {dl_connect(&L), dl_connect(&L), dl_connect(&M)};
    for (int i = 0; i < 3; i++)
        assert_true(mine[i] >= 0);

    /* /proc/net/tcp is read a page at a time and may miss a socket while others churn:
     * poll until a read is complete (netlink gets there at the first). */
    tp_diag_report *rc = NULL, *rp = NULL;
    bool ok;
    TU_WAIT_UNTIL(ok,
                  (tp_diag_report_destroy(rc), tp_diag_report_destroy(rp),
                   rc = dl_collect(src, child, NULL), rp = dl_collect(src, getpid(), NULL),
                   dl_state_count(rc, &L, TP_DIAG_ESTABLISHED) == 3 &&
                       dl_state_count(rp, &L, TP_DIAG_ESTABLISHED) == 2 &&
                       dl_state_count(rp, &M, TP_DIAG_ESTABLISHED) == 1 &&
                       tp_diag_report_find_dest(rp, &L)->ports_used == 5),
                  3000);
    (void)ok; /* the assertions below say what differed */
    assert_int_equal(dl_state_count(rc, &L, TP_DIAG_ESTABLISHED), 3);
    assert_null(tp_diag_report_find_dest(rc, &M));
    assert_int_equal(dl_state_count(rp, &L, TP_DIAG_ESTABLISHED), 2);
    assert_int_equal(dl_state_count(rp, &M, TP_DIAG_ESTABLISHED), 1);
    for (size_t i = 0; i < tp_diag_report_socket_count(rc); i++)
        assert_true(tp_diag_report_socket(rc, i)->owned);
    /* Ports are host-wide: both reports see all 5 local ports towards L. */
    assert_int_equal(tp_diag_report_find_dest(rc, &L)->ports_used, 5);
    assert_int_equal(tp_diag_report_find_dest(rp, &L)->ports_used, 5);
    assert_int_equal(tp_diag_report_host(rc)->pid, child);
    tp_diag_report_destroy(rc);
    tp_diag_report_destroy(rp);

    close(done[1]);
    int status;
    assert_int_equal(waitpid(child, &status, 0), child);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    /* The child is gone: its pid is now an error, not an empty report. */
    tp_diag_options o;
    tp_diag_options_init(&o);
    o.pid = child;
    tp_diag_report *none = NULL;
    tp_errinfo err;
    assert_int_equal(tp_diag_collect(&o, NULL, &none, &err), TP_EINVAL);
    assert_null(none);
    assert_non_null(strstr(err.msg, "no process"));
    for (int i = 0; i < 3; i++)
        close(mine[i]);
    close(ready[0]);
    close(lfd);
    close(mfd);
}

static void test_pid_filter(void **state)
{
    (void)state;
    pid_filter(TP_DIAG_SOURCE_AUTO);
}

static void test_pid_filter_procfs(void **state)
{
    (void)state;
    pid_filter(TP_DIAG_SOURCE_PROCFS);
}

/* --dest keeps one destination; inbound sockets appear only when asked for. */
static void test_dest_filter_and_inbound(void **state)
{
    (void)state;
    tp_diag_endpoint ep;
    int lfd = dl_listen(AF_INET, &ep);
    int c = dl_connect(&ep);
    int a = accept(lfd, NULL, NULL);
    assert_true(c >= 0 && a >= 0);
    tp_diag_options o;
    tp_diag_options_init(&o);
    o.dest = ep;
    tp_diag_report *r = NULL;
    assert_int_equal(tp_diag_collect(&o, NULL, &r, NULL), TP_OK);
    assert_int_equal(tp_diag_report_dest_count(r), 1);
    assert_true(tp_diag_endpoint_equal(&tp_diag_report_dest(r, 0)->remote, &ep));
    tp_diag_report_destroy(r);

    /* The accepted side (local port = the listener's) is grouped by the client's ip:port,
     * only with include_inbound. Ports are per 4-tuple: other programs' connections may
     * use the same client ip:port towards other listeners, so match the whole 4-tuple. */
    struct sockaddr_in peer;
    socklen_t len = sizeof peer;
    assert_int_equal(getsockname(c, (struct sockaddr *)&peer, &len), 0);
    tp_diag_endpoint client = ep;
    client.port = ntohs(peer.sin_port);
    tp_diag_options_init(&o);
    assert_int_equal(tp_diag_collect(&o, NULL, &r, NULL), TP_OK);
    for (size_t i = 0; i < tp_diag_report_socket_count(r); i++)
        assert_false(tp_diag_report_socket(r, i)->inbound);
    tp_diag_report_destroy(r);
    o.include_inbound = true;
    assert_int_equal(tp_diag_collect(&o, NULL, &r, NULL), TP_OK);
    assert_true(dl_state_count(r, &client, TP_DIAG_ESTABLISHED) >= 1);
    size_t inbound = 0;
    for (size_t i = 0; i < tp_diag_report_socket_count(r); i++) {
        const tp_diag_socket *s = tp_diag_report_socket(r, i);
        if (tp_diag_endpoint_equal(&s->remote, &client) && tp_diag_endpoint_equal(&s->local, &ep)) {
            inbound++;
            assert_true(s->inbound);
            assert_int_equal(s->state, TP_DIAG_ESTABLISHED);
        }
    }
    assert_int_equal(inbound, 1);
    tp_diag_report_destroy(r);
    close(a);
    close(c);
    close(lfd);
}

/* A process that closes its connections leaves TIME_WAIT entries with no owner. One
 * sample cannot attribute them to it; a sample with prev (taken while it held them)
 * can. The child holds 5 connections to L, then closes them first. */
static void test_pid_timewait_carried(void **state)
{
    (void)state;
    tp_diag_endpoint L;
    int lfd = dl_listen(AF_INET, &L);
    int go[2], back[2];
    assert_int_equal(pipe(go), 0);
    assert_int_equal(pipe(back), 0);
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        close(go[1]);
        close(back[0]);
        close(lfd);
        int c[5];
        char ch = 'r';
        for (int i = 0; i < 5; i++)
            if ((c[i] = dl_connect(&L)) < 0)
                _exit(2);
        if (write(back[1], &ch, 1) != 1 || read(go[0], &ch, 1) != 1) /* held... */
            _exit(3);
        for (int i = 0; i < 5; i++) /* ...then closed first */
            close(c[i]);
        if (write(back[1], &ch, 1) != 1)
            _exit(4);
        (void)read(go[0], &ch, 1); /* stay alive until the parent is done */
        _exit(0);
    }
    close(go[0]);
    close(back[1]);
    char ch = 'g';
    assert_int_equal(read(back[0], &ch, 1), 1);
    int acc[5];
    for (int i = 0; i < 5; i++)
        assert_true((acc[i] = accept(lfd, NULL, NULL)) >= 0);
    tp_diag_report *held = dl_collect(TP_DIAG_SOURCE_AUTO, child, NULL);
    assert_int_equal(dl_state_count(held, &L, TP_DIAG_ESTABLISHED), 5);

    assert_int_equal(write(go[1], &ch, 1), 1);
    assert_int_equal(read(back[0], &ch, 1), 1);
    for (int i = 0; i < 5; i++) { /* the server side reads EOF and closes second */
        assert_int_equal(recv(acc[i], &ch, 1, 0), 0);
        close(acc[i]);
    }
    /* Normally all 5 enter TIME_WAIT. On this test machine's kernel (6.18), a sock_diag
     * dump taken while the connections are open (the sample `held`; `ss` does the same)
     * sometimes leaves the first one without a TIME_WAIT entry: it is then in neither
     * the netlink dump nor /proc/net/tcp. So count what the kernel kept, from both
     * sources, and check that the pid's reports agree with it. */
    tp_diag_report *all = NULL, *proc = NULL;
    bool ok;
    TU_WAIT_UNTIL(ok,
                  (tp_diag_report_destroy(all), all = dl_collect(TP_DIAG_SOURCE_AUTO, 0, NULL),
                   dl_state_count(all, &L, TP_DIAG_TIME_WAIT) == 5),
                  1000);
    uint32_t kept = dl_state_count(all, &L, TP_DIAG_TIME_WAIT);
    if (!ok)
        print_message("the kernel kept %u of 5 TIME_WAIT entries\n", kept);
    assert_true(kept <= 5);
    proc = dl_collect(TP_DIAG_SOURCE_PROCFS, 0, NULL);
    assert_int_equal(dl_state_count(proc, &L, TP_DIAG_TIME_WAIT), kept);
    tp_diag_report_destroy(proc);
    tp_diag_report *once = dl_collect(TP_DIAG_SOURCE_AUTO, child, NULL);
    assert_null(tp_diag_report_find_dest(once, &L));
    tp_diag_report *twice = dl_collect(TP_DIAG_SOURCE_AUTO, child, held);
    tp_diag_report_destroy(held);
    if (kept > 0) { /* with none kept there is nothing to attribute */
        assert_int_equal(dl_state_count(twice, &L, TP_DIAG_TIME_WAIT), kept);
        assert_int_equal(dl_state_count(twice, &L, TP_DIAG_ESTABLISHED), 0);
        assert_int_equal(tp_diag_report_find_dest(twice, &L)->tw_arrivals, kept);
        /* ...and the attribution carries on to the next sample, without the first. */
        tp_diag_report *third = dl_collect(TP_DIAG_SOURCE_AUTO, child, twice);
        assert_int_equal(dl_state_count(third, &L, TP_DIAG_TIME_WAIT), kept);
        tp_diag_report_destroy(third);
    }
    tp_diag_report_destroy(twice);
    tp_diag_report_destroy(once);
    tp_diag_report_destroy(all);

    close(go[1]);
    int status;
    assert_int_equal(waitpid(child, &status, 0), child);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    close(back[0]);
    close(lfd);
}

int main(void)
{
    tu_watchdog(120);
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pid_filter),
        cmocka_unit_test(test_pid_filter_procfs),
        cmocka_unit_test(test_pid_timewait_carried),
        cmocka_unit_test(test_dest_filter_and_inbound),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
