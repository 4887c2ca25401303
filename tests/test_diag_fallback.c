/* test_diag_fallback.c: tidepool doctor without NETLINK_SOCK_DIAG. A forked child
 * installs a seccomp filter that fails socket(AF_NETLINK, ...) with EAFNOSUPPORT, as a
 * sandbox without sock_diag would, and checks that the default source falls back to
 * /proc/net/tcp{,6} on its own, says so in the note, still counts a CLOSE_WAIT and a
 * TIME_WAIT condition made on loopback, and that forcing netlink then fails with
 * TP_ESYS. Skipped (77) where seccomp filters cannot be installed. */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include <tidepool/diag.h>

#include "support/test_util.h"

#define CHILD_SKIP 77

/* Fails socket(AF_NETLINK, ...) with EAFNOSUPPORT; allows every other call. */
static int deny_netlink(void)
{
    struct sock_filter prog[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_socket, 0, 3),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[0])),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AF_NETLINK, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EAFNOSUPPORT & SECCOMP_RET_DATA)),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog fprog = {(unsigned short)(sizeof prog / sizeof prog[0]), prog};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        return -1;
    return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &fprog, 0, 0);
}

static int lo_listener(uint16_t *port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, len) != 0 || listen(fd, 64) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0)
        return -1;
    *port = ntohs(a.sin_port);
    return fd;
}

static int lo_connect(uint16_t port)
{
    struct sockaddr_in a = {
        .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* The child's checks; returns its exit status (0 = all good, else the failed step). */
static int child_checks(void)
{
    if (deny_netlink() != 0)
        return CHILD_SKIP;
    uint16_t p;
    int lfd = lo_listener(&p);
    if (lfd < 0)
        return 2;
    int held[3];
    for (int i = 0; i < 3; i++) { /* CLOSE_WAIT: the server closes, we hold */
        held[i] = lo_connect(p);
        int a = accept(lfd, NULL, NULL);
        if (held[i] < 0 || a < 0)
            return 3;
        close(a);
    }
    for (int i = 0; i < 20; i++) { /* TIME_WAIT: we close first */
        int c = lo_connect(p), a = accept(lfd, NULL, NULL);
        char ch;
        if (c < 0 || a < 0)
            return 4;
        close(c);
        if (recv(a, &ch, 1, 0) != 0)
            return 5;
        close(a);
    }
    char text[32];
    snprintf(text, sizeof text, "127.0.0.1:%u", p);
    tp_diag_endpoint ep;
    if (tp_diag_endpoint_parse(text, &ep) != TP_OK)
        return 6;
    tp_diag_report *r = NULL;
    const tp_diag_dest *d = NULL;
    for (int tries = 0; tries < 100; tries++) {
        tp_diag_report_destroy(r);
        r = NULL;
        if (tp_diag_collect(NULL, NULL, &r, NULL) != TP_OK)
            return 7;
        d = tp_diag_report_find_dest(r, &ep);
        if (d && d->states[TP_DIAG_CLOSE_WAIT] == 3 && d->states[TP_DIAG_TIME_WAIT] >= 20)
            break;
        tu_sleep_ms(20);
    }
    const tp_diag_host *h = tp_diag_report_host(r);
    if (h->source != TP_DIAG_SOURCE_PROCFS)
        return 8;
    if (strstr(h->note, "NETLINK_SOCK_DIAG unavailable") == NULL ||
        strstr(h->note, "/proc/net/tcp") == NULL)
        return 9;
    if (d == NULL || d->states[TP_DIAG_CLOSE_WAIT] != 3 || d->states[TP_DIAG_TIME_WAIT] < 20)
        return 10;
    char *text_out = NULL;
    if (tp_diag_report_text(r, 0, &text_out, NULL) != TP_OK ||
        strstr(text_out, "note: NETLINK_SOCK_DIAG unavailable") == NULL)
        return 11;
    printf("fallback note: %s\n", h->note);
    tp_diag_free(text_out);
    tp_diag_report_destroy(r);

    /* Forcing netlink does not fall back. */
    tp_diag_options o;
    tp_diag_options_init(&o);
    o.source = TP_DIAG_SOURCE_NETLINK;
    tp_errinfo err;
    r = NULL;
    if (tp_diag_collect(&o, NULL, &r, &err) != TP_ESYS || r != NULL ||
        err.sys_errno != EAFNOSUPPORT)
        return 12;
    for (int i = 0; i < 3; i++)
        close(held[i]);
    close(lfd);
    return 0;
}

static void test_auto_falls_back(void **state)
{
    (void)state;
    fflush(stdout);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int st = child_checks();
        fflush(stdout);
        _exit(st);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    if (WEXITSTATUS(status) == CHILD_SKIP)
        skip();
    if (WEXITSTATUS(status) != 0)
        print_error("the child failed at step %d\n", WEXITSTATUS(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

int main(void)
{
    tu_watchdog(60);
#if !defined(__x86_64__)
    return 77; /* the filter above checks the x86-64 syscall ABI only */
#endif
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_auto_falls_back),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
