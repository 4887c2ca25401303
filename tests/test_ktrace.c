/* test_ktrace.c: the kernel trace (include/tidepool/ktrace.h) against real sockets on
 * loopback, as root: 50 connections closed with unread data give 50 resets sent with
 * the kernel's reason TCP_ABORT_ON_CLOSE ("closed with unread data"); a server aborting
 * 50 connections with SO_LINGER 0 gives 50 resets received on them, with the idle time
 * they had; a child process named tp-closer making 100 client-first closes is named with
 * 100 active closes and 100 TIME_WAIT entries, also through a pid-filtered trace; 20
 * refused connects are counted with ECONNREFUSED; a server dropping connections idle
 * 1.2 s has its timeout estimated (FIN and RST alike); the client FINs on connections
 * accepted by two processes' SO_REUSEPORT listeners stay unattributed; an unprivileged
 * process is told why it cannot trace. Each scenario uses its own fresh listener, so
 * other tests running beside this one on the host only add rows to other destinations.
 * Skipped (77) where a trace cannot run: a build without eBPF, no BTF, not root. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include <tidepool/tidepool.h>

#include "support/diag_loopback.h"
#include "support/ktrace_run.h"
#include "support/test_util.h"

static int accept_one(int lfd)
{
    struct pollfd p = {lfd, POLLIN, 0};
    if (poll(&p, 1, 5000) != 1)
        return -1;
    return accept(lfd, NULL, NULL);
}

/* Waits until fd has n bytes to read. */
static void wait_readable(int fd, int n)
{
    for (int i = 0; i < 500; i++) {
        struct pollfd p = {fd, POLLIN, 0};
        poll(&p, 1, 10);
        char buf[256];
        if (recv(fd, buf, sizeof buf, MSG_PEEK | MSG_DONTWAIT) >= n)
            return;
    }
    fail_msg("no data arrived");
}

/* Waits until the peer's FIN or RST has reached fd: loopback delivers at once, but a host
 * busy with other tests may defer it past a fixed wait, and the trace should not stop
 * before the event. */
static void await_end(int fd)
{
    struct pollfd p = {fd, POLLIN, 0};
    assert_int_equal(poll(&p, 1, 5000), 1);
}

/* A connection to L (listening on lfd) that has carried a request and its answer, one
 * byte each way: *c the client's end, *a the server's. */
static void exchanged(int lfd, const tp_diag_endpoint *L, int *c, int *a)
{
    *c = dl_connect(L);
    assert_true(*c >= 0);
    *a = accept_one(lfd);
    assert_true(*a >= 0);
    assert_int_equal(send(*c, "q", 1, 0), 1);
    wait_readable(*a, 1);
    char ch;
    assert_int_equal(recv(*a, &ch, 1, 0), 1);
    assert_int_equal(send(*a, "a", 1, 0), 1);
    wait_readable(*c, 1);
    assert_int_equal(recv(*c, &ch, 1, 0), 1);
}

static void test_unread_data_closes_are_resets_sent(void **state)
{
    (void)state;
    tp_diag_endpoint L;
    int lfd = dl_listen(AF_INET, &L);
    tp_ktrace *t = kr_start(0);
    for (int i = 0; i < 50; i++) {
        int c = dl_connect(&L);
        assert_true(c >= 0);
        int a = accept_one(lfd);
        assert_true(a >= 0);
        assert_int_equal(send(a, "HTTP/1.1 200 OK\r\n\r\nunread body", 30, 0), 30);
        wait_readable(c, 30);
        close(c); /* 30 bytes unread: the kernel resets instead of FIN */
        close(a);
    }
    kr_finish(t, 200);
    const tp_ktrace_reset *r = kr_find_reset(t, &L, true, false);
    assert_non_null(r);
    assert_string_equal(r->reason_name, "TCP_ABORT_ON_CLOSE");
    assert_string_equal(r->reason_text, "closed with unread data");
    assert_true(r->count >= 50);
    assert_int_equal(r->process.pid, getpid());
    assert_non_null(kr_find_finding(t, "rst_unread_data", &L));
    /* The text says it in words, the JSON with the kernel's name. */
    char *text = NULL, *json = NULL;
    assert_int_equal(tp_ktrace_text(t, 0, &text, NULL), TP_OK);
    assert_non_null(strstr(text, "closed with unread data (TCP_ABORT_ON_CLOSE)"));
    assert_int_equal(tp_ktrace_json(t, NULL, &json, NULL), TP_OK);
    char ep[TP_DIAG_ENDPOINT_STRLEN], want[160];
    snprintf(want, sizeof want,
             "{\"destination\":\"%s\",\"inbound\":false,\"direction\":\"sent\","
             "\"reason\":\"TCP_ABORT_ON_CLOSE\"",
             tp_diag_endpoint_format(&L, ep, sizeof ep));
    assert_non_null(strstr(json, want));
    assert_non_null(strstr(json, "\"resets\":["));
    assert_non_null(strstr(json, "\"lost\":0,\"missed\":"));
    tp_diag_free(text);
    tp_diag_free(json);
    tp_ktrace_destroy(t);
    close(lfd);
}

static void test_linger_zero_aborts_are_resets_received(void **state)
{
    (void)state;
    tp_diag_endpoint L;
    int lfd = dl_listen(AF_INET, &L);
    int c[50], a[50];
    tp_ktrace *t = kr_start(0);
    for (int i = 0; i < 50; i++)
        exchanged(lfd, &L, &c[i], &a[i]); /* data both ways, then idle */
    tu_sleep_ms(300);
    for (int i = 0; i < 50; i++) {
        struct linger lg = {1, 0};
        assert_int_equal(setsockopt(a[i], SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
        close(a[i]);
    }
    for (int i = 0; i < 50; i++) {
        await_end(c[i]);
        char ch;
        assert_int_equal(recv(c[i], &ch, 1, 0), -1);
        assert_int_equal(errno, ECONNRESET);
        close(c[i]);
    }
    kr_finish(t, 100);
    const tp_ktrace_reset *r = kr_find_reset(t, &L, false, false);
    assert_non_null(r);
    assert_int_equal(r->count, 50);
    assert_int_equal(r->state, TP_DIAG_ESTABLISHED);
    assert_int_equal(r->process.pid, getpid()); /* who connected, though softirq ran it */
    assert_int_equal(r->idle_samples, 50);
    /* Idle since the last byte: at least the 300 ms slept (less one jiffy), and not
     * absurd. */
    assert_true(r->idle_min_ms >= 290);
    assert_true(r->idle_max_ms < 10000);
    /* The server's side: sent, by the kernel's reason for a close with SO_LINGER 0. */
    const tp_ktrace_reset *s = kr_find_reset(t, &L, true, true);
    assert_non_null(s);
    assert_int_equal(s->count, 50);
    assert_string_equal(s->reason_name, "TCP_STATE");
    assert_non_null(kr_find_finding(t, "rst_received", &L));
    tp_ktrace_destroy(t);
    close(lfd);
}

/* The child: named tp-closer, waits for the go, then 100 connections closed first. */
static void closer_child(const tp_diag_endpoint *L, int go_fd)
{
    prctl(PR_SET_NAME, "tp-closer", 0, 0, 0);
    char ch;
    if (read(go_fd, &ch, 1) != 1)
        _exit(2);
    for (int i = 0; i < 100; i++) {
        int c = dl_connect(L);
        if (c < 0)
            _exit(3);
        close(c);
    }
    _exit(0);
}

/* Connections towards ep not yet past the close handshake (their step into TIME_WAIT
 * still to come). */
static uint32_t closing_towards(const tp_diag_report *r, const tp_diag_endpoint *ep)
{
    return dl_state_count(r, ep, TP_DIAG_ESTABLISHED) + dl_state_count(r, ep, TP_DIAG_FIN_WAIT1) +
           dl_state_count(r, ep, TP_DIAG_FIN_WAIT2) + dl_state_count(r, ep, TP_DIAG_CLOSING);
}

static void test_child_active_closes_are_named(void **state)
{
    (void)state;
    tp_diag_endpoint L;
    int lfd = dl_listen(AF_INET, &L);
    int go[2];
    assert_int_equal(pipe(go), 0);
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        close(go[1]);
        close(lfd);
        closer_child(&L, go[0]);
    }
    close(go[0]);
    tp_ktrace *all = kr_start(0);
    tp_ktrace *only = kr_start(child);
    assert_int_equal(write(go[1], "g", 1), 1);
    /* The server closes after the client's FIN, so the client's FIN_WAIT2 becomes a
     * TIME_WAIT entry at once. */
    for (int i = 0; i < 100; i++) {
        int a = accept_one(lfd);
        assert_true(a >= 0);
        char buf[16];
        struct pollfd p = {a, POLLIN, 0};
        assert_int_equal(poll(&p, 1, 5000), 1);
        assert_int_equal(recv(a, buf, sizeof buf, 0), 0);
        close(a);
    }
    int st;
    assert_int_equal(waitpid(child, &st, 0), child);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    /* Every one of the child's connections has left FIN_WAIT (so its step into TIME_WAIT
     * is in the rings) before the traces stop: the last ACKs run in softirq, which a busy
     * host may defer. (Not "100 TIME_WAIT entries": with tcp_tw_reuse a slow child's later
     * connects may take over its own entries older than a second.) */
    bool ok;
    tp_diag_report *rep = NULL;
    TU_WAIT_UNTIL(ok,
                  (tp_diag_report_destroy(rep), rep = dl_collect(TP_DIAG_SOURCE_AUTO, 0, NULL),
                   closing_towards(rep, &L) == 0),
                  5000);
    tp_diag_report_destroy(rep);
    assert_true(ok);
    kr_finish(all, 100);
    kr_finish(only, 0);
    for (int k = 0; k < 2; k++) {
        tp_ktrace *t = k == 0 ? all : only;
        const tp_ktrace_closes *c = kr_find_closes(t, &L, child);
        assert_non_null(c);
        assert_string_equal(c->process.comm, "tp-closer");
        assert_int_equal(c->active, 100);
        assert_int_equal(c->time_wait, 100);
        assert_int_equal(c->passive, 0);
        const tp_diag_finding *f = kr_find_finding(t, "churn", &L);
        assert_non_null(f);
        assert_non_null(strstr(f->diagnosis, "tp-closer"));
        assert_non_null(strstr(f->remedy, "max_idle_per_key"));
    }
    /* The filtered trace holds the child's rows only; the parent's side of the same
     * connections is in the unfiltered one, in one row: the passive closes it made and
     * the child's FINs it received (in softirq, on sockets accepted and closed between
     * two samples: they are the listener's process's). */
    for (size_t i = 0; i < tp_ktrace_closes_count(only); i++)
        assert_int_equal(tp_ktrace_closes_get(only, i)->process.pid, child);
    assert_true(tp_ktrace_summary_get(only)->filtered > 0);
    size_t inbound_rows = 0;
    for (size_t i = 0; i < tp_ktrace_closes_count(all); i++) {
        const tp_ktrace_closes *c = tp_ktrace_closes_get(all, i);
        if (!c->inbound || !tp_diag_endpoint_equal(&c->dest, &L))
            continue;
        inbound_rows++;
        assert_int_equal(c->process.pid, getpid());
        assert_int_equal(c->passive, 100);
        assert_int_equal(c->peer, 100);
        assert_int_equal(c->active, 0);
    }
    assert_int_equal(inbound_rows, 1);
    tp_ktrace_destroy(all);
    tp_ktrace_destroy(only);
    close(go[1]);
    close(lfd);
}

/* A listener on 127.0.0.1 with SO_REUSEPORT: port 0 picks one, else that port's group. */
static int reuseport_listen(uint16_t port, tp_diag_endpoint *ep)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    char s[32];
    if (fd >= 0 && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) == 0 &&
        bind(fd, (struct sockaddr *)&a, sizeof a) == 0 && listen(fd, 128) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0 &&
        snprintf(s, sizeof s, "127.0.0.1:%u", (unsigned)ntohs(a.sin_port)) > 0 &&
        tp_diag_endpoint_parse(s, ep) == TP_OK)
        return fd;
    if (fd >= 0)
        close(fd);
    return -1;
}

/* Accepts what is queued on lfd (non-blocking), waits for each client's FIN and closes:
 * how many, or -1 if a FIN did not come. No cmocka: a child calls it too. */
static int drain_listener(int lfd)
{
    int n = 0, a;
    while ((a = accept(lfd, NULL, NULL)) >= 0) {
        struct pollfd p = {a, POLLIN, 0};
        int ok = poll(&p, 1, 5000) == 1;
        close(a);
        if (!ok)
            return -1;
        n++;
    }
    return n;
}

/* Two processes listening on one port (SO_REUSEPORT): a client's FIN on a connection
 * accepted there, seen in softirq, cannot be said to be either's, and is not. */
static void test_reuseport_listeners_stay_unknown(void **state)
{
    (void)state;
    tp_diag_endpoint L, L2;
    int lfd = reuseport_listen(0, &L);
    assert_true(lfd >= 0);
    int ready[2], go[2];
    assert_int_equal(pipe(ready), 0);
    assert_int_equal(pipe(go), 0);
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        close(lfd);
        int cfd = reuseport_listen(L.port, &L2);
        char ch = 'r';
        if (cfd < 0 || write(ready[1], &ch, 1) != 1 || read(go[0], &ch, 1) != 1)
            _exit(200);
        fcntl(cfd, F_SETFL, O_NONBLOCK);
        int n = drain_listener(cfd);
        _exit(n >= 0 ? n : 201);
    }
    char ch;
    assert_int_equal(read(ready[0], &ch, 1), 1);
    fcntl(lfd, F_SETFL, O_NONBLOCK);
    tp_ktrace *t = kr_start(0); /* both listeners are in its first sample */
    for (int i = 0; i < 20; i++) {
        int c = dl_connect(&L);
        assert_true(c >= 0);
        close(c);
    }
    assert_int_equal(write(go[1], "g", 1), 1);
    int mine = drain_listener(lfd), st;
    assert_true(mine >= 0);
    assert_int_equal(waitpid(child, &st, 0), child);
    assert_true(WIFEXITED(st));
    assert_int_equal(mine + WEXITSTATUS(st), 20);
    kr_finish(t, 100);
    uint64_t passive = 0, unknown_peer = 0;
    for (size_t i = 0; i < tp_ktrace_closes_count(t); i++) {
        const tp_ktrace_closes *c = tp_ktrace_closes_get(t, i);
        if (!c->inbound || !tp_diag_endpoint_equal(&c->dest, &L))
            continue;
        /* The passive closes ran in each process's close(): theirs, exactly. */
        pid_t pid = c->process.pid;
        assert_true(pid == 0 || pid == getpid() || pid == child);
        if (pid != 0)
            assert_int_equal(c->peer, 0);
        else
            unknown_peer += c->peer;
        passive += c->passive;
    }
    assert_int_equal(passive, 20);
    assert_int_equal(unknown_peer, 20);
    tp_ktrace_destroy(t);
    close(lfd);
    close(ready[0]);
    close(ready[1]);
    close(go[0]);
    close(go[1]);
}

static void test_refused_connects_by_errno(void **state)
{
    (void)state;
    /* A port nothing listens on: a listener's, closed before anyone connects. */
    tp_diag_endpoint L;
    int lfd = dl_listen(AF_INET, &L);
    close(lfd);
    tp_ktrace *t = kr_start(0);
    for (int i = 0; i < 20; i++) {
        assert_int_equal(dl_connect(&L), -1);
    }
    kr_finish(t, 200);
    const tp_ktrace_error *found = NULL;
    for (size_t i = 0; i < tp_ktrace_error_count(t); i++) {
        const tp_ktrace_error *x = tp_ktrace_error_get(t, i);
        if (x->connect && tp_diag_endpoint_equal(&x->dest, &L))
            found = x;
    }
    assert_non_null(found);
    assert_int_equal(found->err, ECONNREFUSED);
    assert_string_equal(found->name, "ECONNREFUSED");
    assert_int_equal(found->count, 20);
    assert_int_equal(found->process.pid, getpid());
    /* The refusal is the kernel's reset for no socket, received in SYN_SENT. */
    const tp_ktrace_reset *r = kr_find_reset(t, &L, false, false);
    assert_non_null(r);
    assert_int_equal(r->count, 20);
    assert_int_equal(r->state, TP_DIAG_SYN_SENT);
    assert_non_null(kr_find_finding(t, "connect_refused", &L));
    tp_ktrace_destroy(t);
}

/* A server that drops connections idle 1.2 s, with FIN (a keep-alive timeout) on some
 * and RST (SO_LINGER 0, as a middlebox would) on the others: the trace estimates the
 * timeout from the idle times and says to keep idle_timeout below it. */
static void test_idle_timeout_is_estimated(void **state)
{
    (void)state;
    tp_diag_endpoint F, R;
    int ffd = dl_listen(AF_INET, &F), rfd = dl_listen(AF_INET, &R);
    int c[10], a[10];
    tp_ktrace *t = kr_start(0);
    for (int i = 0; i < 10; i++)
        exchanged(i < 5 ? ffd : rfd, i < 5 ? &F : &R, &c[i], &a[i]);
    tu_sleep_ms(1200);
    for (int i = 0; i < 10; i++) {
        if (i >= 5) {
            struct linger lg = {1, 0};
            assert_int_equal(setsockopt(a[i], SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
        }
        close(a[i]);
    }
    for (int i = 0; i < 10; i++)
        await_end(c[i]);
    kr_finish(t, 100);
    const tp_diag_finding *f = kr_find_finding(t, "peer_idle_close", &F);
    assert_non_null(f);
    assert_non_null(strstr(f->diagnosis, "its keep-alive timeout is about 1."));
    assert_non_null(strstr(f->remedy, "idle_timeout below 1."));
    const tp_ktrace_closes *cl = kr_find_closes(t, &F, getpid());
    assert_non_null(cl);
    assert_int_equal(cl->peer, 5);
    assert_true(cl->idle_min_ms >= 1190 && cl->idle_max_ms < 3000);
    f = kr_find_finding(t, "rst_received_idle", &R);
    assert_non_null(f);
    assert_non_null(strstr(f->remedy, "idle_timeout below 1."));
    const tp_ktrace_reset *r = kr_find_reset(t, &R, false, false);
    assert_non_null(r);
    assert_int_equal(r->count, 5);
    assert_true(r->idle_min_ms >= 1190);
    for (int i = 0; i < 10; i++)
        close(c[i]);
    tp_ktrace_destroy(t);
    close(ffd);
    close(rfd);
}

static void test_unprivileged_is_told_why(void **state)
{
    (void)state;
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        if (setgid(65534) != 0 || setuid(65534) != 0)
            _exit(2);
        tp_errinfo err;
        tp_errinfo_clear(&err);
        if (tp_ktrace_probe(&err) != TP_ESYS || err.sys_errno != EPERM ||
            strstr(err.msg, "root") == NULL)
            _exit(3);
        tp_ktrace *t = NULL;
        if (tp_ktrace_start(NULL, &t, &err) != TP_ESYS || t != NULL)
            _exit(4);
        _exit(0);
    }
    int st;
    assert_int_equal(waitpid(child, &st, 0), child);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
}

static void test_bad_options(void **state)
{
    (void)state;
    tp_ktrace_options o;
    tp_ktrace_options_init(&o);
    o.ring_bytes = 0;
    tp_ktrace *t = NULL;
    tp_errinfo err;
    assert_int_equal(tp_ktrace_start(&o, &t, &err), TP_EINVAL);
    assert_null(t);
    assert_int_equal(tp_ktrace_start(NULL, NULL, &err), TP_EINVAL);
    /* Results exist only once stopped. */
    t = kr_start(0);
    assert_int_equal(tp_ktrace_reset_count(t), 0);
    char *text = NULL;
    assert_int_equal(tp_ktrace_text(t, 0, &text, NULL), TP_EINVAL);
    assert_int_equal(tp_ktrace_stop(t, &err), TP_OK);
    assert_int_equal(tp_ktrace_stop(t, &err), TP_OK); /* idempotent */
    assert_int_equal(tp_ktrace_poll(t, 0, &err), TP_ESTATE);
    tp_ktrace_destroy(t);
}

int main(void)
{
    if (!kr_can_trace())
        return 77;
    tu_watchdog(120);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unread_data_closes_are_resets_sent),
        cmocka_unit_test(test_linger_zero_aborts_are_resets_received),
        cmocka_unit_test(test_child_active_closes_are_named),
        cmocka_unit_test(test_reuseport_listeners_stay_unknown),
        cmocka_unit_test(test_refused_connects_by_errno),
        cmocka_unit_test(test_idle_timeout_is_estimated),
        cmocka_unit_test(test_unprivileged_is_told_why),
        cmocka_unit_test(test_bad_options),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
