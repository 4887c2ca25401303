/* event.h: the record the eBPF program (tcp_events.bpf.c) writes to its ring buffer and
 * src/ktrace/ reads: one TCP event, fixed-size fields only, the same layout on both sides
 * (the program is compiled by clang for the BPF target, the reader by the host's
 * compiler). Addresses are in network byte order, ports in host byte order; "local" and
 * "remote" are the socket's own ends whatever the event's direction. */
#ifndef TP_KTRACE_EVENT_H
#define TP_KTRACE_EVENT_H

/* What happened. The comment says in whose context the kernel runs it, which decides
 * whether the event's pid means anything (TP_KTEV_PROCESS_CONTEXT). */
enum tp_ktrace_event_kind {
    TP_KTEV_RST_SENT = 1,       /* tcp_send_reset: reason, state; process for ABORT_* */
    TP_KTEV_RST_RECEIVED = 2,   /* tcp_receive_reset: state, idle_ms; softirq */
    TP_KTEV_ACTIVE_CLOSE = 3,   /* ESTABLISHED -> FIN_WAIT1: close()/shutdown(), process */
    TP_KTEV_PASSIVE_CLOSE = 4,  /* CLOSE_WAIT -> LAST_ACK: close() after the peer's FIN */
    TP_KTEV_TIME_WAIT = 5,      /* FIN_WAIT1/2 or CLOSING -> CLOSE after our FIN: the socket
                                 * became a TIME_WAIT entry; pid: the closer's, from
                                 * ACTIVE_CLOSE */
    TP_KTEV_CONNECT_FAILED = 6, /* inet_sk_error_report before ESTABLISHED: errno in reason;
                                 * pid: the connect()'s */
    TP_KTEV_SOCKET_ERROR = 7,   /* inet_sk_error_report on an established socket */
    TP_KTEV_RETRANSMIT = 8,     /* tcp_retransmit_skb: state; softirq or timer */
    TP_KTEV_PEER_CLOSE = 9,     /* ESTABLISHED -> CLOSE_WAIT: the peer closed first; idle_ms;
                                 * softirq */
    TP_KTEV_LISTEN = 10,        /* -> LISTEN: a listener's local end; process */
};

/* flags */
#define TP_KTEV_HAS_SOCKET 0x1u /* sk was not NULL (a reset for no socket has none) */
#define TP_KTEV_HAS_IDLE 0x2u   /* idle_ms is valid */
#define TP_KTEV_OUTBOUND 0x4u   /* the socket was seen connecting (SYN_SENT) while traced */
#define TP_KTEV_INBOUND 0x8u    /* the socket was seen accepted (SYN_RECV -> ESTABLISHED) */

/* No owner known. */
#define TP_KTEV_NO_PID 0u

struct tp_ktrace_event {
    unsigned long long ts_ns;  /* bpf_ktime_get_ns(): CLOCK_MONOTONIC */
    unsigned long long cookie; /* the socket's cookie (sock_diag's idiag_cookie); 0: none */
    unsigned int kind;         /* enum tp_ktrace_event_kind */
    unsigned int flags;
    unsigned int pid;       /* tgid of the current task at the event */
    unsigned int owner_pid; /* who connect()ed (or closed first, for TIME_WAIT); 0 */
    unsigned int reason;    /* RST_SENT: enum sk_rst_reason; CONNECT_FAILED and
                             * SOCKET_ERROR: errno; else 0 */
    unsigned int state;     /* the socket's TCP state at the event (0: no socket) */
    unsigned int idle_ms;   /* RST_RECEIVED, PEER_CLOSE: since data last went either way */
    unsigned short family;  /* AF_INET, AF_INET6 */
    unsigned short lport, rport;
    unsigned short pad;
    unsigned char laddr[16], raddr[16];
    char comm[16];       /* of the current task */
    char owner_comm[16]; /* of owner_pid, "" when unknown */
};

/* Index of the counters array map (BPF_MAP_TYPE_ARRAY "counters"). */
enum tp_ktrace_counter {
    TP_KTCNT_LOST = 0, /* events the ring buffer had no room for */
    TP_KTCNT_EVENTS,   /* events written */
    TP_KTCNT_N
};

#endif
