/* test_diag_sidecar.c: doctor names a proxy in the path. Inside a network namespace the
 * test makes (loopback, a veth pair holding 10.77.0.2/24), an nft rule redirects
 * connections to 10.77.0.1:80 to a local listener on port 15001 held by a process named
 * "envoy", as a service mesh does. A process named tp-app opens 3 connections to
 * 10.77.0.1:80, one straight to the sidecar port and one to a local server it dials
 * itself. doctor must report the 3 as redirected to envoy (with SO_ORIGINAL_DST
 * 10.77.0.1:80 read on the proxy's side), the direct one as on a sidecar port, and not
 * the local server; the CLI's JSON says the same. As root with ip(8) and nft(8); skipped
 * (77) otherwise. The namespace goes away with the processes in it. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
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

#include <tidepool/diag.h>

#include "support/test_util.h"

#define NS_SETUP                                                                                   \
    "ip link set lo up && ip link add tpv0 type veth peer name tpv1 && "                           \
    "ip addr add 10.77.0.2/24 dev tpv0 && ip link set tpv0 up && ip link set tpv1 up && "          \
    "printf 'table ip tpside {\\n chain out {\\n  type nat hook output priority -100;\\n"          \
    "  ip daddr 10.77.0.1 tcp dport 80 redirect to :15001\\n }\\n}\\n' | nft -f -"

static int listen_on(const char *ip, uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, ip, &sa.sin_addr);
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(fd, 64) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int connect_to(const char *ip, uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, ip, &sa.sin_addr);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* The proxy: named envoy, accepts and holds every connection until its pipe closes. */
static void proxy(int lfd, int ready_fd, int quit_fd)
{
    prctl(PR_SET_NAME, "envoy", 0, 0, 0);
    if (write(ready_fd, "r", 1) != 1)
        _exit(1);
    int held[64], n = 0;
    for (;;) {
        struct pollfd p[2] = {{lfd, POLLIN, 0}, {quit_fd, POLLIN, 0}};
        if (poll(p, 2, 10000) <= 0 || (p[1].revents != 0)) {
            for (int i = 0; i < n; i++)
                close(held[i]);
            _exit(0);
        }
        int a = accept(lfd, NULL, NULL);
        if (a >= 0 && n < 64)
            held[n++] = a;
    }
}

static const tp_diag_sidecar *find(const tp_diag_report *r, const char *dialed)
{
    tp_diag_endpoint want;
    if (tp_diag_endpoint_parse(dialed, &want) != TP_OK)
        return NULL;
    for (size_t i = 0; i < tp_diag_report_sidecar_count(r); i++) {
        const tp_diag_sidecar *c = tp_diag_report_sidecar(r, i);
        if (tp_diag_endpoint_equal(&c->dialed, &want))
            return c;
    }
    return NULL;
}

/* Runs in the namespace; the exit status names the first check that failed. */
static int inside(const char *cli)
{
    if (system(NS_SETUP) != 0)
        return 10;
    int sidecar = listen_on("127.0.0.1", 15001);
    int server = listen_on("127.0.0.1", 5432);
    if (sidecar < 0 || server < 0)
        return 11;
    int ready[2], quit[2];
    if (pipe(ready) != 0 || pipe(quit) != 0)
        return 12;
    pid_t px = fork();
    if (px == 0) {
        close(ready[0]);
        close(quit[1]);
        close(server);
        proxy(sidecar, ready[1], quit[0]);
    }
    close(ready[1]);
    close(quit[0]);
    char ch;
    if (read(ready[0], &ch, 1) != 1)
        return 13;
    prctl(PR_SET_NAME, "tp-app", 0, 0, 0);
    int c[5];
    for (int i = 0; i < 3; i++)
        if ((c[i] = connect_to("10.77.0.1", 80)) < 0)
            return 14;
    if ((c[3] = connect_to("127.0.0.1", 15001)) < 0 || (c[4] = connect_to("127.0.0.1", 5432)) < 0)
        return 15;
    int accepted = accept(server, NULL, NULL);
    tu_sleep_ms(100); /* the proxy's accepts */

    tp_diag_report *r = NULL;
    if (tp_diag_collect(NULL, NULL, &r, NULL) != TP_OK)
        return 16;
    int status = 0;
    const tp_diag_sidecar *red = find(r, "10.77.0.1:80");
    const tp_diag_sidecar *dir = find(r, "127.0.0.1:15001");
    char ep[TP_DIAG_ENDPOINT_STRLEN];
    if (red == NULL)
        status = 20;
    else if (red->connections != 3 || !red->redirected || red->proxy.port != 15001)
        status = 21;
    else if (red->proxy_pid != px || strcmp(red->proxy_comm, "envoy") != 0 ||
             red->client_pid != getpid() || strcmp(red->client_comm, "tp-app") != 0)
        status = 22;
    else if (red->product == NULL || strstr(red->product, "Envoy") == NULL)
        status = 23;
    else if (strcmp(tp_diag_endpoint_format(&red->original_dst, ep, sizeof ep), "10.77.0.1:80") !=
             0)
        status = 24;
    else if (dir == NULL || dir->redirected || !dir->sidecar_port || dir->connections != 1)
        status = 25;
    else if (find(r, "127.0.0.1:5432") != NULL)
        status = 26; /* a local server dialled directly is no sidecar */
    bool finding = false;
    for (size_t i = 0; i < tp_diag_report_finding_count(r) && status == 0; i++) {
        const tp_diag_finding *f = tp_diag_report_finding(r, i);
        if (strcmp(f->kind, "sidecar") == 0 && f->severity == TP_DIAG_WARNING &&
            strstr(f->diagnosis, "envoy[") != NULL && strstr(f->diagnosis, "redirected") &&
            strstr(f->remedy, "idle_timeout") != NULL)
            finding = true;
    }
    if (status == 0 && !finding)
        status = 27;
    tp_diag_report_destroy(r);

    if (status == 0 && cli != NULL) {
        char cmd[512], out[65536];
        snprintf(cmd, sizeof cmd, "'%s' doctor --json", cli);
        FILE *f = popen(cmd, "r");
        size_t n = f != NULL ? fread(out, 1, sizeof out - 1, f) : 0;
        out[n] = '\0';
        if (f == NULL || pclose(f) != 0)
            status = 30;
        else if (strstr(out, "\"dialed\":\"10.77.0.1:80\",\"proxy\":\"127.0.0.1:15001\","
                             "\"proxy_process\":{\"pid\":") == NULL ||
                 strstr(out, "\"original_dst\":\"10.77.0.1:80\",\"redirected\":true") == NULL)
            status = 31;
        snprintf(cmd, sizeof cmd, "'%s' doctor", cli);
        f = popen(cmd, "r");
        n = f != NULL ? fread(out, 1, sizeof out - 1, f) : 0;
        out[n] = '\0';
        if (f != NULL)
            pclose(f);
        if (status == 0 && (strstr(out, "proxies in the path") == NULL ||
                            strstr(out, "SO_ORIGINAL_DST 10.77.0.1:80") == NULL))
            status = 32;
    }
    close(quit[1]);
    waitpid(px, NULL, 0);
    for (int i = 0; i < 5; i++)
        close(c[i]);
    if (accepted >= 0)
        close(accepted);
    return status;
}

static void test_redirect_to_a_local_proxy_is_named(void **state)
{
    (void)state;
    const char *cli = getenv("TIDEPOOL_CLI");
    if (cli != NULL && access(cli, X_OK) != 0)
        cli = NULL;
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        if (unshare(CLONE_NEWNET) != 0)
            _exit(9);
        _exit(inside(cli));
    }
    int st;
    assert_int_equal(waitpid(child, &st, 0), child);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
}

int main(void)
{
    if (geteuid() != 0) {
        printf("skipped: needs root (a network namespace and nft rules)\n");
        return 77;
    }
    if (system("command -v ip >/dev/null && command -v nft >/dev/null") != 0) {
        printf("skipped: ip(8) or nft(8) missing (iproute2, nftables)\n");
        return 77;
    }
    tu_watchdog(60);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_redirect_to_a_local_proxy_is_named),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
