/* netlink.c: dumps the host's TCP sockets through NETLINK_SOCK_DIAG, the interface `ss`
 * uses: one inet_diag_req_v2 dump request per address family, every state, asking for
 * INET_DIAG_INFO so that every full socket comes with its struct tcp_info. TIME_WAIT and
 * orphaned FIN_WAIT2 minisockets come without tcp_info and with inode 0. */
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/tcp.h>

#include "diag_internal.h"
#include "net/net.h" /* tp__errno_text */

/* Large enough for any datagram the kernel sends a dump reader (it sizes them to at
 * most 32 KiB); a truncated one is an error rather than silently lost sockets. */
#define RECV_BUF_SIZE (64 * 1024)

/* A dump of a busy host takes milliseconds; this only guards against a kernel that never
 * answers (so the doctor cannot hang). */
#define RECV_TIMEOUT_S 5

static tp_err send_request(int fd, int family, uint32_t seq, tp_errinfo *err)
{
    struct {
        struct nlmsghdr nlh;
        struct inet_diag_req_v2 r;
    } req;
    memset(&req, 0, sizeof req);
    req.nlh.nlmsg_len = sizeof req;
    req.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
    req.nlh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    req.nlh.nlmsg_seq = seq;
    req.r.sdiag_family = (uint8_t)family;
    req.r.sdiag_protocol = IPPROTO_TCP;
    req.r.idiag_ext = 1u << (INET_DIAG_INFO - 1);
    /* Every TCP state (bits 1 to 12), but not bit 13: since Linux 6.5 it also dumps
     * sockets that are only bound, which are no connection. */
    req.r.idiag_states = ((1u << TP_DIAG_NSTATES) - 1) & ~1u;
    req.r.id.idiag_cookie[0] = INET_DIAG_NOCOOKIE;
    req.r.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;

    struct sockaddr_nl kernel;
    memset(&kernel, 0, sizeof kernel);
    kernel.nl_family = AF_NETLINK;
    ssize_t n;
    do
        n = sendto(fd, &req, sizeof req, 0, (struct sockaddr *)&kernel, sizeof kernel);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
        int e = errno;
        char ebuf[128];
        return tp_errinfo_set(err, TP_ESYS, e, "sock_diag request: %s",
                              tp__errno_text(e, ebuf, sizeof ebuf));
    }
    return TP_OK;
}

/* Copies the tcp_info fields we report. The kernel's struct grows over versions: copy
 * what both sides know, leave the rest zero. */
static void take_tcp_info(tp_diag_socket *s, const void *payload, size_t len)
{
    struct tcp_info ti;
    memset(&ti, 0, sizeof ti);
    memcpy(&ti, payload, len < sizeof ti ? len : sizeof ti);
    s->has_tcp_info = true;
    s->rtt_us = ti.tcpi_rtt;
    s->rttvar_us = ti.tcpi_rttvar;
    s->min_rtt_us = ti.tcpi_min_rtt;
    s->rto_us = ti.tcpi_rto;
    s->retransmits = ti.tcpi_retransmits;
    s->backoff = ti.tcpi_backoff;
    s->probes = ti.tcpi_probes;
    s->unacked = ti.tcpi_unacked;
    s->lost = ti.tcpi_lost;
    s->total_retrans = ti.tcpi_total_retrans;
    s->segs_out = ti.tcpi_segs_out;
    s->segs_in = ti.tcpi_segs_in;
    s->last_data_recv_ms = ti.tcpi_last_data_recv;
}

/* Appends the socket described by one SOCK_DIAG_BY_FAMILY message. */
static tp_err take_socket(tp__diag_vec *out, const struct nlmsghdr *h)
{
    if (h->nlmsg_len < NLMSG_LENGTH(sizeof(struct inet_diag_msg)))
        return TP_OK; /* malformed: skip rather than read past it */
    const struct inet_diag_msg *m = NLMSG_DATA(h);
    tp_diag_socket *s = tp__diag_vec_push(out);
    if (s == NULL)
        return TP_ENOMEM;
    tp__diag_endpoint_set(&s->local, m->idiag_family, (const uint8_t *)m->id.idiag_src,
                          ntohs(m->id.idiag_sport));
    tp__diag_endpoint_set(&s->remote, m->idiag_family, (const uint8_t *)m->id.idiag_dst,
                          ntohs(m->id.idiag_dport));
    s->state = m->idiag_state;
    s->timer = m->idiag_timer;
    s->timer_ms = m->idiag_expires;
    s->rqueue = m->idiag_rqueue;
    s->wqueue = m->idiag_wqueue;
    s->uid = m->idiag_uid;
    s->inode = m->idiag_inode;
    s->cookie = (uint64_t)m->id.idiag_cookie[0] | (uint64_t)m->id.idiag_cookie[1] << 32;

    int len = (int)(h->nlmsg_len - NLMSG_LENGTH(sizeof *m));
    for (const struct rtattr *a = (const struct rtattr *)(m + 1); RTA_OK(a, len);
         a = RTA_NEXT(a, len)) {
        if (a->rta_type == INET_DIAG_INFO)
            take_tcp_info(s, RTA_DATA(a), RTA_PAYLOAD(a));
    }
    return TP_OK;
}

/* Reads the answers to one dump request until NLMSG_DONE. *kerr receives a negative
 * errno the kernel answered with (0 if none). */
static tp_err read_dump(int fd, uint32_t seq, char *buf, tp__diag_vec *out, int *kerr,
                        tp_errinfo *err)
{
    *kerr = 0;
    for (;;) {
        struct sockaddr_nl from;
        struct iovec iov = {buf, RECV_BUF_SIZE};
        struct msghdr msg;
        memset(&msg, 0, sizeof msg);
        msg.msg_name = &from;
        msg.msg_namelen = sizeof from;
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        ssize_t n = recvmsg(fd, &msg, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            char ebuf[128];
            return tp_errinfo_set(err, TP_ESYS, e, "sock_diag dump: %s",
                                  tp__errno_text(e, ebuf, sizeof ebuf));
        }
        if (msg.msg_flags & MSG_TRUNC)
            return tp_errinfo_set(err, TP_ESYS, EMSGSIZE, "sock_diag dump: message truncated");
        if (n == 0)
            return tp_errinfo_set(err, TP_ESYS, EPIPE, "sock_diag dump ended early");
        int left = (int)n;
        for (const struct nlmsghdr *h = (const struct nlmsghdr *)buf; NLMSG_OK(h, left);
             h = NLMSG_NEXT(h, left)) {
            if (h->nlmsg_seq != seq)
                continue; /* a stale answer to an earlier request */
            if (h->nlmsg_type == NLMSG_DONE)
                return TP_OK;
            if (h->nlmsg_type == NLMSG_ERROR) {
                const struct nlmsgerr *e = NLMSG_DATA(h);
                *kerr =
                    h->nlmsg_len >= NLMSG_LENGTH(sizeof *e) && e->error != 0 ? e->error : -EPROTO;
                return TP_OK;
            }
            if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY)
                continue;
            tp_err rc = take_socket(out, h);
            if (rc != TP_OK)
                return tp_errinfo_set(err, rc, ENOMEM, "out of memory reading sockets");
        }
    }
}

tp_err tp__diag_netlink_dump(tp__diag_vec *out, tp_errinfo *err)
{
    char ebuf[128];
    int fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
    if (fd < 0) {
        int e = errno;
        return tp_errinfo_set(err, TP_ESYS, e, "NETLINK_SOCK_DIAG socket: %s",
                              tp__errno_text(e, ebuf, sizeof ebuf));
    }
    struct timeval tv = {RECV_TIMEOUT_S, 0};
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char *buf = tp__malloc(RECV_BUF_SIZE);
    if (buf == NULL) {
        close(fd);
        return tp_errinfo_set(err, TP_ENOMEM, ENOMEM, "out of memory");
    }

    static const int families[2] = {AF_INET, AF_INET6};
    tp_err rc = TP_OK;
    for (uint32_t i = 0; i < 2 && rc == TP_OK; i++) {
        int kerr = 0;
        rc = send_request(fd, families[i], i + 1, err);
        if (rc == TP_OK)
            rc = read_dump(fd, i + 1, buf, out, &kerr, err);
        if (rc != TP_OK || kerr == 0)
            continue;
        /* A kernel without IPv6 (or without its diag module) refuses the second dump:
         * that only means there are no IPv6 sockets. Refusing IPv4 means no sock_diag. */
        if (families[i] == AF_INET6 &&
            (kerr == -ENOENT || kerr == -EAFNOSUPPORT || kerr == -EINVAL))
            continue;
        rc = tp_errinfo_set(err, TP_ESYS, -kerr, "sock_diag refused the %s dump: %s",
                            families[i] == AF_INET ? "IPv4" : "IPv6",
                            tp__errno_text(-kerr, ebuf, sizeof ebuf));
    }
    tp__free(buf);
    close(fd);
    return rc;
}
