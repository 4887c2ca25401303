/* kernel.h: the few kernel types the eBPF program reads, declared by hand with
 * preserve_access_index so that clang emits CO-RE relocations: libbpf fixes every field
 * offset against the running kernel's BTF at load time. Only the fields read are
 * declared; names must match the kernel's (libbpf matches through its anonymous unions).
 * This spares the build a vmlinux.h dumped from the build machine's kernel. */
#ifndef TP_KTRACE_KERNEL_H
#define TP_KTRACE_KERNEL_H

typedef unsigned char __u8;
typedef unsigned short __u16;
typedef unsigned int __u32;
typedef unsigned long long __u64;
typedef signed char __s8;
typedef short __s16;
typedef int __s32;
typedef long long __s64;
typedef __u16 __be16;
typedef __u32 __be32;
typedef __u32 __wsum;

enum bpf_map_type {
    BPF_MAP_TYPE_ARRAY = 2,
    BPF_MAP_TYPE_LRU_HASH = 9,
    BPF_MAP_TYPE_RINGBUF = 27,
};

enum { BPF_ANY = 0 };

/* bpf_ringbuf_submit() flags and bpf_ringbuf_query() fields (uapi linux/bpf.h). */
enum { BPF_RB_NO_WAKEUP = 1, BPF_RB_FORCE_WAKEUP = 2 };
enum { BPF_RB_AVAIL_DATA = 0, BPF_RB_RING_SIZE = 1 };

struct in6_addr {
    union {
        __u8 u6_addr8[16];
    } in6_u;
} __attribute__((preserve_access_index));

struct sock_common {
    __be32 skc_daddr;
    __be32 skc_rcv_saddr;
    __be16 skc_dport;
    __u16 skc_num;
    unsigned short skc_family;
    volatile unsigned char skc_state;
    struct in6_addr skc_v6_daddr;
    struct in6_addr skc_v6_rcv_saddr;
} __attribute__((preserve_access_index));

struct sock {
    struct sock_common __sk_common;
    __u16 sk_protocol;
    int sk_err;
} __attribute__((preserve_access_index));

/* inet_sport survives the release of the local port at CLOSE (skc_num is zeroed). */
struct inet_sock {
    __be16 inet_sport;
} __attribute__((preserve_access_index));

struct inet_connection_sock {
    struct {
        __u32 lrcvtime;
    } icsk_ack;
} __attribute__((preserve_access_index));

struct tcp_sock {
    __u32 lsndtime;
} __attribute__((preserve_access_index));

struct sk_buff {
    unsigned char *head;
    __u16 transport_header;
    __u16 network_header;
} __attribute__((preserve_access_index));

#endif
