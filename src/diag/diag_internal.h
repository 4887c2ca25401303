/* diag_internal.h: what the files of src/diag/ share: the report's layout, the socket
 * vector the dumpers fill, and the steps of
 * tp_diag_collect() (dump, select and aggregate, findings) as tp__diag_ functions. */
#ifndef TP_DIAG_INTERNAL_H
#define TP_DIAG_INTERNAL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/base.h"
#include "base/buf.h"
#include "tidepool/diag.h"

/* A socket as dumped, with the collector's bookkeeping. */
typedef struct tp__diag_sock {
    tp_diag_socket s;
    bool selected; /* passes the pid and inbound filters (dest filter applies to dests) */
} tp__diag_sock;

/* A growable array of sockets; the dumpers append to it. */
typedef struct tp__diag_vec {
    tp__diag_sock *v;
    size_t n, cap;
} tp__diag_vec;

struct tp_diag_report {
    tp_diag_options opts;
    tp_diag_host host;
    tp__diag_sock *socks; /* every non-listening socket, sorted by (remote, local) */
    size_t nsocks;
    size_t *sel; /* indexes into socks of the selected sockets */
    size_t nsel;
    tp_diag_dest *dests;
    size_t ndests;
    tp_diag_finding *findings;
    size_t nfindings, capfindings;
    /* With a pid: the remotes it held sockets to, in this sample or an earlier one
     * (carried over through prev), sorted. TIME_WAIT entries have no owner; they are
     * attributed to the pid towards these remotes. */
    tp_diag_endpoint *pid_remotes;
    size_t npid_remotes;
    /* Connections that end at a local proxy (sidecar.c). */
    tp_diag_sidecar *sidecars;
    size_t nsidecars;
};

/* A socket inode and the process holding it (tp__diag_inode_owners). */
typedef struct tp__diag_inode_pid {
    uint32_t inode;
    int pid;
} tp__diag_inode_pid;

/* tp__diag_vec_push: appends a zeroed socket and returns it, NULL when out of memory. */
tp_diag_socket *tp__diag_vec_push(tp__diag_vec *vec);
void tp__diag_vec_free(tp__diag_vec *vec);

/* tp__diag_endpoint_set: fills e from kernel bytes (network order; IPv4 in the first 4
 * bytes) and a host-order port; an IPv4-mapped IPv6 address becomes AF_INET. */
void tp__diag_endpoint_set(tp_diag_endpoint *e, int family, const uint8_t *addr, uint16_t port);
/* tp__diag_endpoint_cmp: a total order (family, address, port) for sorting. */
int tp__diag_endpoint_cmp(const tp_diag_endpoint *a, const tp_diag_endpoint *b);
/* tp__diag_addr_matches: same family and address, ports ignored; a wildcard address in
 * `wild` (0.0.0.0 or ::) matches every address of its family, :: also IPv4 (dual stack). */
bool tp__diag_addr_matches(const tp_diag_endpoint *wild, const tp_diag_endpoint *e);

/* tp__diag_read_host: reads the port range and TIME_WAIT sysctls into h (fields it cannot
 * read are -1, the reuse delay defaults to 1000 ms). Never fails. */
void tp__diag_read_host(tp_diag_host *h);

/* tp__diag_netlink_dump: appends every TCP socket (IPv4 then IPv6) from
 * NETLINK_SOCK_DIAG, with tcp_info. TP_ESYS (err says why, errno kept) when netlink
 * cannot be used at all, so that the caller may fall back; TP_ENOMEM. A host without
 * IPv6 only yields no IPv6 sockets. */
tp_err tp__diag_netlink_dump(tp__diag_vec *out, tp_errinfo *err);

/* tp__diag_procfs_dump: the fallback: appends the sockets of /proc/net/tcp and
 * /proc/net/tcp6 (no tcp_info). TP_ESYS if /proc/net/tcp cannot be read; TP_ENOMEM. */
tp_err tp__diag_procfs_dump(tp__diag_vec *out, tp_errinfo *err);

/* tp__diag_pid_inodes: the socket inodes open in process pid (/proc/PID/fd/N links
 * "socket:[inode]"), sorted ascending, malloc'ed into *out (NULL when *n is 0).
 * TP_EINVAL if there is no such process, TP_ESYS if its fds cannot be read, TP_ENOMEM. */
tp_err tp__diag_pid_inodes(int pid, uint32_t **out, size_t *n, tp_errinfo *err);

/* tp__diag_inode_owners: every process's socket inodes (/proc/PID/fd), sorted by
 * inode, malloc'ed into *out. Processes that vanish or cannot be read are skipped.
 * TP_ENOMEM. */
tp_err tp__diag_inode_owners(tp__diag_inode_pid **out, size_t *n);
/* tp__diag_inode_owner: the pid holding inode in v (sorted), or 0. */
int tp__diag_inode_owner(const tp__diag_inode_pid *v, size_t n, uint32_t inode);
/* tp__diag_read_comm: /proc/PID/comm into comm ("" when unreadable). */
void tp__diag_read_comm(int pid, char comm[16]);

/* tp__diag_sidecars: finds, among all the sockets of a dump (listeners included), the
 * outgoing connections whose other end is a socket a local listener accepted, keeps
 * those that look like a proxy in the path (redirected, a sidecar's port or name), and
 * fills r->sidecars. Honours the pid and destination filters. TP_ENOMEM. */
tp_err tp__diag_sidecars(tp_diag_report *r, const tp__diag_vec *all);
/* tp__diag_sidecar_rules: a finding per r->sidecars entry. false when out of memory. */
bool tp__diag_sidecar_rules(tp_diag_report *r);
/* tp__diag_finding_add: appends a zeroed finding (NULL when out of memory). */
tp_diag_finding *tp__diag_finding_add(tp_diag_report *r, int sev, const char *kind,
                                      const tp_diag_endpoint *dest);

/* tp__diag_finding_json: one finding as a JSON object (severity, kind, dest, diagnosis,
 * remedy), the form doctor's document and the trace's share. */
void tp__diag_finding_json(tp__buf *b, const tp_diag_finding *f);

/* tp__diag_aggregate: takes over all (left empty): drops listeners after marking the
 * sockets they accepted inbound, applies the pid selection (owned = inode in inodes),
 * sorts, builds r->dests with ports, and the close rates (against prev when not NULL).
 * Fills r->socks, r->sel, r->dests and the host totals. TP_ENOMEM. */
tp_err tp__diag_aggregate(tp_diag_report *r, tp__diag_vec *all, const uint32_t *inodes,
                          size_t ninodes, const tp_diag_report *prev);

/* tp__diag_findings: derives r->findings from r->dests and r->host, sets each dest's
 * severity, sorts findings (most severe first) and dests (worst first). TP_ENOMEM. */
tp_err tp__diag_findings(tp_diag_report *r);


#endif
