/* tests/support/diag_loopback.c: loopback fixtures for the doctor's tests (see
 * diag_loopback.h). */
#include "support/diag_loopback.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include <tidepool/tidepool.h>

/* A listener on the loopback address of family, port chosen by the kernel; -1 if the
 * family has no loopback here. */
static int listen_once(int family, tp_diag_endpoint *ep)
{
    struct sockaddr_storage ss;
    socklen_t len;
    memset(&ss, 0, sizeof ss);
    if (family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_addr = in6addr_loopback;
        len = sizeof *a;
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        len = sizeof *a;
    }
    int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 && family == AF_INET6)
        return -1;
    assert_true(fd >= 0);
    if (bind(fd, (struct sockaddr *)&ss, len) != 0) {
        close(fd);
        return -1;
    }
    assert_int_equal(listen(fd, 1024), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&ss, &len), 0);
    char text[64], ip[INET6_ADDRSTRLEN];
    uint16_t port = family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                       : ntohs(((struct sockaddr_in *)&ss)->sin_port);
    inet_ntop(family,
              family == AF_INET6 ? (void *)&((struct sockaddr_in6 *)&ss)->sin6_addr
                                 : (void *)&((struct sockaddr_in *)&ss)->sin_addr,
              ip, sizeof ip);
    snprintf(text, sizeof text, family == AF_INET6 ? "[%s]:%u" : "%s:%u", ip, port);
    assert_int_equal(tp_diag_endpoint_parse(text, ep), TP_OK);
    return fd;
}

/* Retries until the listener's port is a fresh destination (see diag_loopback.h),
 * keeping the rejected listeners open meanwhile so that bind() cannot hand their ports
 * out again. */
int dl_listen(int family, tp_diag_endpoint *ep)
{
    int rejected[16], nrej = 0, fd = -1;
    while (nrej < 16) {
        if ((fd = listen_once(family, ep)) < 0)
            break;
        tp_diag_options o;
        tp_diag_options_init(&o);
        o.dest = *ep;
        tp_diag_report *r = NULL;
        assert_int_equal(tp_diag_collect(&o, NULL, &r, NULL), TP_OK);
        size_t n = tp_diag_report_dest_count(r);
        tp_diag_report_destroy(r);
        if (n == 0)
            break;
        rejected[nrej++] = fd;
        fd = -1;
    }
    for (int i = 0; i < nrej; i++)
        close(rejected[i]);
    if (family == AF_INET)
        assert_true(fd >= 0);
    return fd;
}

int dl_connect(const tp_diag_endpoint *ep)
{
    struct sockaddr_storage ss;
    socklen_t len;
    memset(&ss, 0, sizeof ss);
    if (ep->family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        memcpy(&a->sin6_addr, ep->addr, 16);
        a->sin6_port = htons(ep->port);
        len = sizeof *a;
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        memcpy(&a->sin_addr, ep->addr, 4);
        a->sin_port = htons(ep->port);
        len = sizeof *a;
    }
    int fd = socket(ep->family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&ss, len) != 0) {
        close(fd);
        fd = -1;
    }
    return fd;
}

tp_diag_report *dl_collect(tp_diag_source src, int pid, const tp_diag_report *prev)
{
    tp_diag_options o;
    tp_diag_options_init(&o);
    o.source = src;
    o.pid = pid;
    tp_diag_report *r = NULL;
    tp_errinfo err;
    tp_errinfo_clear(&err);
    tp_err rc = tp_diag_collect(&o, prev, &r, &err);
    if (rc != TP_OK)
        print_error("tp_diag_collect: %s (%s)\n", tp_err_name(rc), err.msg);
    assert_int_equal(rc, TP_OK);
    assert_non_null(r);
    return r;
}

uint32_t dl_state_count(const tp_diag_report *r, const tp_diag_endpoint *ep, int state)
{
    const tp_diag_dest *d = tp_diag_report_find_dest(r, ep);
    return d ? d->states[state] : 0;
}

const tp_diag_finding *dl_find_finding(const tp_diag_report *r, const char *kind,
                                       const tp_diag_endpoint *ep)
{
    for (size_t i = 0; i < tp_diag_report_finding_count(r); i++) {
        const tp_diag_finding *f = tp_diag_report_finding(r, i);
        if (strcmp(f->kind, kind) == 0 && f->has_dest && tp_diag_endpoint_equal(&f->dest, ep))
            return f;
    }
    return NULL;
}
