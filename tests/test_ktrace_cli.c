/* test_ktrace_cli.c: `tidepool doctor --trace` as a user runs it. The CLI traces while
 * the test closes 10 connections with unread data and makes 5 refused connects, and its
 * --json must carry them: a "resets" entry for the destination with direction "sent",
 * reason TCP_ABORT_ON_CLOSE and count 10, and ECONNREFUSED counted 5 times; the text
 * gives the reason in words. Run as an unprivileged user, it says why it cannot trace
 * and still prints the sock_diag report. Needs root and a build with eBPF (77 else). */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include <tidepool/tidepool.h>

#include "support/diag_loopback.h"
#include "support/ktrace_run.h"
#include "support/test_util.h"

static const char *cli;

typedef struct run {
    pid_t pid;
    int out, err; /* read ends */
} run;

/* Starts the CLI with args (NULL-terminated), as uid (0: as we are). */
static run start(char *const args[], uid_t uid)
{
    int o[2], e[2];
    assert_int_equal(pipe(o), 0);
    assert_int_equal(pipe(e), 0);
    run r = {fork(), o[0], e[0]};
    assert_true(r.pid >= 0);
    if (r.pid == 0) {
        dup2(o[1], 1);
        dup2(e[1], 2);
        close(o[0]);
        close(e[0]);
        if (uid != 0 && (setgid(uid) != 0 || setuid(uid) != 0))
            _exit(120);
        execv(cli, args);
        _exit(127);
    }
    close(o[1]);
    close(e[1]);
    return r;
}

/* Reads fd to EOF into buf (NUL-terminated). */
static size_t slurp(int fd, char *buf, size_t cap, size_t have)
{
    ssize_t n;
    while (have + 1 < cap && (n = read(fd, buf + have, cap - 1 - have)) > 0)
        have += (size_t)n;
    buf[have] = '\0';
    return have;
}

/* Reads stderr until it holds needle (or EOF); returns what was read. */
static size_t wait_for(int fd, const char *needle, char *buf, size_t cap)
{
    size_t have = 0;
    buf[0] = '\0';
    while (strstr(buf, needle) == NULL && have + 1 < cap) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 10000) != 1)
            break;
        ssize_t n = read(fd, buf + have, cap - 1 - have);
        if (n <= 0)
            break;
        have += (size_t)n;
        buf[have] = '\0';
    }
    return have;
}

static int finish(run *r, char *out, size_t cap, char *err, size_t ecap, size_t ehave)
{
    slurp(r->out, out, cap, 0);
    slurp(r->err, err, ecap, ehave);
    close(r->out);
    close(r->err);
    int st;
    assert_int_equal(waitpid(r->pid, &st, 0), r->pid);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static void unread_closes(const tp_diag_endpoint *L, int lfd, int n)
{
    for (int i = 0; i < n; i++) {
        int c = dl_connect(L);
        assert_true(c >= 0);
        int a = accept(lfd, NULL, NULL);
        assert_true(a >= 0);
        assert_int_equal(send(a, "0123456789", 10, 0), 10);
        char buf[16];
        for (int k = 0; k < 200 && recv(c, buf, sizeof buf, MSG_PEEK | MSG_DONTWAIT) < 10; k++)
            tu_sleep_ms(5);
        close(c);
        close(a);
    }
}

static void test_trace_json_carries_the_resets(void **state)
{
    (void)state;
    tp_diag_endpoint L, R;
    int lfd = dl_listen(AF_INET, &L);
    int rfd = dl_listen(AF_INET, &R);
    close(rfd); /* nothing listens at R any more */
    char *args[] = {"tidepool", "doctor", "--trace", "3s", "--json", NULL};
    run r = start(args, 0);
    static char out[1 << 20], err[8192];
    size_t eh = wait_for(r.err, "tracing TCP events", err, sizeof err);
    assert_non_null(strstr(err, "tracing TCP events"));
    unread_closes(&L, lfd, 10);
    for (int i = 0; i < 5; i++)
        assert_int_equal(dl_connect(&R), -1);
    assert_int_equal(finish(&r, out, sizeof out, err, sizeof err, eh), 0);
    char ep[TP_DIAG_ENDPOINT_STRLEN], want[256];
    snprintf(want, sizeof want,
             "{\"destination\":\"%s\",\"inbound\":false,\"direction\":\"sent\","
             "\"reason\":\"TCP_ABORT_ON_CLOSE\",\"reason_code\":",
             tp_diag_endpoint_format(&L, ep, sizeof ep));
    const char *row = strstr(out, want);
    assert_non_null(row);
    assert_non_null(strstr(row, "\"reason_text\":\"closed with unread data\""));
    const char *count = strstr(row, "\"count\":");
    assert_non_null(count);
    assert_int_equal(atoi(count + 8), 10);
    snprintf(want, sizeof want,
             "{\"destination\":\"%s\",\"phase\":\"connect\",\"errno\":%d,"
             "\"error\":\"ECONNREFUSED\",\"count\":5",
             tp_diag_endpoint_format(&R, ep, sizeof ep), ECONNREFUSED);
    assert_non_null(strstr(out, want));
    /* One document: the sock_diag report with the trace added. */
    assert_int_equal(strncmp(out, "{\"schema\":\"tidepool.doctor/1\"", 29), 0);
    assert_non_null(strstr(out, "\"trace\":{\"duration_s\":"));
    close(lfd);
}

static void test_trace_text_in_words(void **state)
{
    (void)state;
    tp_diag_endpoint L;
    int lfd = dl_listen(AF_INET, &L);
    char dest[TP_DIAG_ENDPOINT_STRLEN];
    tp_diag_endpoint_format(&L, dest, sizeof dest);
    char *args[] = {"tidepool", "doctor", "--trace", "2s", "--dest", dest, NULL};
    run r = start(args, 0);
    static char out[1 << 20], err[8192];
    size_t eh = wait_for(r.err, "tracing TCP events", err, sizeof err);
    unread_closes(&L, lfd, 3);
    assert_int_equal(finish(&r, out, sizeof out, err, sizeof err, eh), 0);
    char want[128];
    snprintf(want, sizeof want, "sent          3 to %s: closed with unread data", dest);
    assert_non_null(strstr(out, want));
    assert_non_null(strstr(out, "remedy: read each response to its end"));
    close(lfd);
}

static void test_unprivileged_falls_back(void **state)
{
    (void)state;
    char *args[] = {"tidepool", "doctor", "--trace", "1s", "--json", NULL};
    run r = start(args, 65534);
    static char out[1 << 20], err[8192];
    assert_int_equal(finish(&r, out, sizeof out, err, sizeof err, 0), 0);
    assert_non_null(strstr(err, "--trace: loading eBPF needs root"));
    assert_non_null(strstr(err, "reporting what sock_diag shows"));
    assert_int_equal(strncmp(out, "{\"schema\":\"tidepool.doctor/1\"", 29), 0);
    assert_null(strstr(out, "\"resets\""));
}

int main(void)
{
    cli = getenv("TIDEPOOL_CLI");
    if (cli == NULL || access(cli, X_OK) != 0) {
        printf("skipped: TIDEPOOL_CLI not set\n");
        return 77;
    }
    if (!kr_can_trace())
        return 77;
    tu_watchdog(120);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_trace_json_carries_the_resets),
        cmocka_unit_test(test_trace_text_in_words),
        cmocka_unit_test(test_unprivileged_falls_back),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
