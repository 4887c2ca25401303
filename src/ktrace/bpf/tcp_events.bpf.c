// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* tcp_events.bpf.c: the eBPF side of `tidepool doctor --trace`. Six TCP tracepoints,
 * attached as tp_btf programs (BPF_RAW_TRACEPOINT_OPEN by name: no kprobes, no tracefs),
 * turn into tp_ktrace_event records on a ring buffer; src/ktrace/ aggregates them.
 *
 * Who did it: the kernel runs connect(), close() and shutdown() in the caller's own
 * context, so the pid at SYN_SENT and at ESTABLISHED -> FIN_WAIT1 is exact; resets
 * received, retransmissions and the last steps into TIME_WAIT run in softirq or timer
 * context, where the current task is whoever was interrupted. So the program remembers,
 * per socket cookie, who connected (owners) and who closed first (closers), and stamps
 * later events with that owner instead of the current task.
 *
 * The license string is GPL because bpf_ktime_get_ns and the tracing helpers the program
 * uses are GPL-only in the kernel; the user-space side is the library's own licence. */
#include "kernel.h"

#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "event.h"

char LICENSE[] SEC("license") = "GPL";

/* Kernel HZ, for converting the jiffies of the idle timestamps; libbpf reads it from
 * /proc/config.gz. 0 when unknown: the idle time is then not reported. */
extern unsigned int CONFIG_HZ __kconfig __weak;

#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_TCP 6

#define TCP_ESTABLISHED 1
#define TCP_SYN_SENT 2
#define TCP_SYN_RECV 3
#define TCP_FIN_WAIT1 4
#define TCP_FIN_WAIT2 5
#define TCP_TIME_WAIT 6
#define TCP_CLOSE 7
#define TCP_CLOSE_WAIT 8
#define TCP_LAST_ACK 9
#define TCP_LISTEN 10
#define TCP_CLOSING 11
#define TCP_NEW_SYN_RECV 12

struct owner {
    __u32 pid; /* 0 for an accepted connection (accepted in softirq context) */
    __u16 established;
    __u16 inbound; /* accepted by a local listener */
    char comm[16];
};

struct {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    __uint(max_entries, 8 << 20); /* resized by the loader before load */
} events SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, TP_KTCNT_N);
    __type(key, __u32);
    __type(value, __u64);
} counters SEC(".maps");

/* cookie -> the task that connect()ed, or an accepted connection's mark; dropped at
 * tcp_destroy_sock. LRU: a socket whose
 * destruction was missed cannot fill it. */
struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, 65536);
    __type(key, __u64);
    __type(value, struct owner);
} owners SEC(".maps");

/* cookie -> the task that closed first (ESTABLISHED -> FIN_WAIT1), until the socket
 * reaches CLOSE (TIME_WAIT created) or receives a reset (no TIME_WAIT then). */
struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, 65536);
    __type(key, __u64);
    __type(value, struct owner);
} closers SEC(".maps");

static __always_inline void count(__u32 idx)
{
    __u64 *v = bpf_map_lookup_elem(&counters, &idx);
    if (v)
        __sync_fetch_and_add(v, 1);
}

/* The socket's own ends, from its sock_common (full, request and TIME_WAIT sockets all
 * have one). */
static __always_inline void ends_from_sock(struct tp_ktrace_event *e, const struct sock *sk)
{
    e->family = BPF_CORE_READ(sk, __sk_common.skc_family);
    e->state = BPF_CORE_READ(sk, __sk_common.skc_state);
    if (e->state == TCP_TIME_WAIT || e->state == TCP_NEW_SYN_RECV) {
        e->lport = BPF_CORE_READ(sk, __sk_common.skc_num);
    } else {
        /* A full socket: skc_num is zeroed once CLOSE releases the port. */
        const struct inet_sock *inet = (const void *)sk;
        e->lport = __builtin_bswap16(BPF_CORE_READ(inet, inet_sport));
    }
    e->rport = __builtin_bswap16(BPF_CORE_READ(sk, __sk_common.skc_dport));
    if (e->family == AF_INET) {
        __be32 l = BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);
        __be32 r = BPF_CORE_READ(sk, __sk_common.skc_daddr);
        __builtin_memcpy(e->laddr, &l, 4);
        __builtin_memcpy(e->raddr, &r, 4);
    } else if (e->family == AF_INET6) {
        BPF_CORE_READ_INTO(&e->laddr, sk, __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8);
        BPF_CORE_READ_INTO(&e->raddr, sk, __sk_common.skc_v6_daddr.in6_u.u6_addr8);
    }
}

/* The ends of the connection an incoming segment belongs to (a reset for no socket): the
 * segment's destination is our end, its source the peer's. */
static __always_inline void ends_from_skb(struct tp_ktrace_event *e, const struct sk_buff *skb)
{
    unsigned char *head = BPF_CORE_READ(skb, head);
    __u16 nh = BPF_CORE_READ(skb, network_header);
    __u16 th = BPF_CORE_READ(skb, transport_header);
    __u8 v = 0;
    __be16 ports[2] = {0, 0};
    bpf_probe_read_kernel(&v, 1, head + nh);
    v >>= 4;
    if (v == 4) {
        e->family = AF_INET;
        bpf_probe_read_kernel(e->raddr, 4, head + nh + 12);
        bpf_probe_read_kernel(e->laddr, 4, head + nh + 16);
    } else if (v == 6) {
        e->family = AF_INET6;
        bpf_probe_read_kernel(e->raddr, 16, head + nh + 8);
        bpf_probe_read_kernel(e->laddr, 16, head + nh + 24);
    } else {
        return;
    }
    bpf_probe_read_kernel(ports, sizeof ports, head + th);
    e->rport = __builtin_bswap16(ports[0]);
    e->lport = __builtin_bswap16(ports[1]);
}

/* A zeroed record stamped with the time, the current task and, when the socket's
 * connect() was seen, its owner. NULL when the ring buffer is full (counted). */
static __always_inline struct tp_ktrace_event *begin(__u32 kind, const struct sock *sk,
                                                     __u64 cookie)
{
    struct tp_ktrace_event *e = bpf_ringbuf_reserve(&events, sizeof *e, 0);
    if (!e) {
        count(TP_KTCNT_LOST);
        return 0;
    }
    __builtin_memset(e, 0, sizeof *e);
    e->ts_ns = bpf_ktime_get_ns();
    e->kind = kind;
    e->cookie = cookie;
    e->pid = bpf_get_current_pid_tgid() >> 32;
    bpf_get_current_comm(e->comm, sizeof e->comm);
    if (sk) {
        e->flags |= TP_KTEV_HAS_SOCKET;
        ends_from_sock(e, sk);
        struct owner *o = bpf_map_lookup_elem(&owners, &cookie);
        if (o && o->inbound) {
            e->flags |= TP_KTEV_INBOUND;
        } else if (o) {
            e->flags |= TP_KTEV_OUTBOUND;
            e->owner_pid = o->pid;
            __builtin_memcpy(e->owner_comm, o->comm, sizeof e->owner_comm);
        }
    }
    return e;
}

/* Wakes the reader only once the ring is a quarter full: it reads on its own timer
 * otherwise. The default (a wakeup whenever the reader has caught up) costs a busy host a
 * wakeup per event, tens of thousands a second on a churning one. */
static __always_inline void commit(struct tp_ktrace_event *e)
{
    __u64 avail = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA);
    __u64 size = bpf_ringbuf_query(&events, BPF_RB_RING_SIZE);
    bpf_ringbuf_submit(e, avail > size / 4 ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP);
    count(TP_KTCNT_EVENTS);
}

static __always_inline int is_tcp(const struct sock *sk)
{
    return BPF_CORE_READ(sk, sk_protocol) == IPPROTO_TCP;
}

SEC("tp_btf/tcp_send_reset")
int BPF_PROG(tp_send_reset, const struct sock *sk, const struct sk_buff *skb, int reason)
{
    __u64 cookie = sk ? bpf_get_socket_cookie((void *)sk) : 0;
    struct tp_ktrace_event *e = begin(TP_KTEV_RST_SENT, sk, cookie);
    if (!e)
        return 0;
    if (!sk && skb)
        ends_from_skb(e, skb);
    e->reason = (__u32)reason;
    commit(e);
    return 0;
}

/* How long the connection had carried no data either way, in ms: since the later of the
 * last data received (icsk_ack.lrcvtime) and sent (tcp_sock.lsndtime), both jiffies. */
static __always_inline int idle_ms(const struct sock *sk, __u32 *out)
{
    if (CONFIG_HZ == 0)
        return 0;
    const struct inet_connection_sock *icsk = (const void *)sk;
    const struct tcp_sock *tp = (const void *)sk;
    __u32 rcv = BPF_CORE_READ(icsk, icsk_ack.lrcvtime);
    __u32 snd = BPF_CORE_READ(tp, lsndtime);
    __u32 last = (__s32)(rcv - snd) > 0 ? rcv : snd;
    __u32 now = (__u32)bpf_jiffies64();
    __u32 d = now - last;
    if (last == 0 || d >= 0x80000000u)
        return 0;
    *out = (__u32)((__u64)d * 1000 / CONFIG_HZ);
    return 1;
}

SEC("tp_btf/tcp_receive_reset")
int BPF_PROG(tp_receive_reset, struct sock *sk)
{
    __u64 cookie = bpf_get_socket_cookie(sk);
    /* A reset ends the close handshake: no TIME_WAIT will follow. */
    bpf_map_delete_elem(&closers, &cookie);
    struct tp_ktrace_event *e = begin(TP_KTEV_RST_RECEIVED, sk, cookie);
    if (!e)
        return 0;
    if (idle_ms(sk, &e->idle_ms))
        e->flags |= TP_KTEV_HAS_IDLE;
    commit(e);
    return 0;
}

static __always_inline void remember(void *map, __u64 cookie)
{
    struct owner o = {};
    o.pid = bpf_get_current_pid_tgid() >> 32;
    bpf_get_current_comm(o.comm, sizeof o.comm);
    bpf_map_update_elem(map, &cookie, &o, BPF_ANY);
}

static __always_inline void emit_simple(__u32 kind, const struct sock *sk, __u64 cookie)
{
    struct tp_ktrace_event *e = begin(kind, sk, cookie);
    if (e)
        commit(e);
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(tp_set_state, const struct sock *sk, int oldstate, int newstate)
{
    if (!is_tcp(sk))
        return 0;
    if (newstate == TCP_SYN_SENT) {
        /* connect(): the caller's context. */
        remember(&owners, bpf_get_socket_cookie((void *)sk));
        return 0;
    }
    __u64 cookie = bpf_get_socket_cookie((void *)sk);
    if (newstate == TCP_LISTEN) {
        /* listen(): user space learns the listener before its first connection. */
        emit_simple(TP_KTEV_LISTEN, sk, cookie);
    } else if (oldstate == TCP_SYN_RECV && newstate == TCP_ESTABLISHED) {
        struct owner o = {.established = 1, .inbound = 1};
        bpf_map_update_elem(&owners, &cookie, &o, BPF_ANY);
    } else if (oldstate == TCP_SYN_SENT && newstate == TCP_ESTABLISHED) {
        struct owner *o = bpf_map_lookup_elem(&owners, &cookie);
        if (o)
            o->established = 1;
    } else if (oldstate == TCP_ESTABLISHED && newstate == TCP_FIN_WAIT1) {
        remember(&closers, cookie);
        emit_simple(TP_KTEV_ACTIVE_CLOSE, sk, cookie);
    } else if (oldstate == TCP_ESTABLISHED && newstate == TCP_CLOSE_WAIT) {
        /* The peer's FIN: how long the connection had been idle is the peer's (or a
         * middlebox's) idle timeout when it closes idle connections. */
        struct tp_ktrace_event *e = begin(TP_KTEV_PEER_CLOSE, sk, cookie);
        if (e) {
            if (idle_ms(sk, &e->idle_ms))
                e->flags |= TP_KTEV_HAS_IDLE;
            commit(e);
        }
    } else if (oldstate == TCP_CLOSE_WAIT && newstate == TCP_LAST_ACK) {
        emit_simple(TP_KTEV_PASSIVE_CLOSE, sk, cookie);
    } else if (newstate == TCP_CLOSE && (oldstate == TCP_FIN_WAIT1 || oldstate == TCP_FIN_WAIT2 ||
                                         oldstate == TCP_CLOSING)) {
        struct owner *c = bpf_map_lookup_elem(&closers, &cookie);
        if (!c)
            return 0; /* closed first before tracing began, or reset */
        struct tp_ktrace_event *e = begin(TP_KTEV_TIME_WAIT, sk, cookie);
        if (e) {
            /* Attribute to the closer, whatever runs the last ACK's softirq. */
            e->owner_pid = c->pid;
            __builtin_memcpy(e->owner_comm, c->comm, sizeof e->owner_comm);
            commit(e);
        }
        bpf_map_delete_elem(&closers, &cookie);
    }
    return 0;
}

SEC("tp_btf/inet_sk_error_report")
int BPF_PROG(tp_error_report, const struct sock *sk)
{
    if (!is_tcp(sk))
        return 0;
    int err = BPF_CORE_READ(sk, sk_err);
    if (err == 0)
        return 0; /* a report that only wakes the socket (the error was taken already) */
    __u64 cookie = bpf_get_socket_cookie((void *)sk);
    struct owner *o = bpf_map_lookup_elem(&owners, &cookie);
    __u32 kind = o && !o->established ? TP_KTEV_CONNECT_FAILED : TP_KTEV_SOCKET_ERROR;
    struct tp_ktrace_event *e = begin(kind, sk, cookie);
    if (!e)
        return 0;
    e->reason = (__u32)err;
    if (o)
        o->established = 1; /* one connect failure per socket */
    commit(e);
    return 0;
}

SEC("tp_btf/tcp_retransmit_skb")
int BPF_PROG(tp_retransmit, const struct sock *sk, const struct sk_buff *skb)
{
    emit_simple(TP_KTEV_RETRANSMIT, sk, bpf_get_socket_cookie((void *)sk));
    return 0;
}

SEC("tp_btf/tcp_destroy_sock")
int BPF_PROG(tp_destroy_sock, struct sock *sk)
{
    __u64 cookie = bpf_get_socket_cookie(sk);
    bpf_map_delete_elem(&owners, &cookie);
    bpf_map_delete_elem(&closers, &cookie);
    return 0;
}
