/* ktrace_internal.h: what the files of src/ktrace/ share: the trace's layout, the loader
 * of the eBPF program (loader.c with libbpf, loader_none.c without), the sock_diag join
 * (owners.c), the tables events are counted into (tables.c), the findings (findings.c)
 * and the words for reasons and errnos (words.c). */
#ifndef TP_KTRACE_INTERNAL_H
#define TP_KTRACE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/base.h"
#include "base/buf.h"
#include "tidepool/ktrace.h"
#include "ktrace/bpf/event.h"

/* A socket cookie's owner, learned from a sock_diag sample. */
typedef struct tp__ktrace_owner {
    uint64_t cookie;
    tp_ktrace_process process;
} tp__ktrace_owner;

/* A local listener (by its socket's cookie: several processes may listen on one port
 * with SO_REUSEPORT) and the process that holds it (pid 0: unknown). */
typedef struct tp__ktrace_listener {
    tp_diag_endpoint local;
    uint64_t cookie;
    tp_ktrace_process process;
} tp__ktrace_listener;

/* Timestamps of a connection's last retransmissions, for the burst within 1 s. */
#define TP__KTRACE_BURST_RING 32

typedef struct tp__ktrace_retrans {
    tp_ktrace_retrans pub;
    int64_t ts[TP__KTRACE_BURST_RING];
    unsigned head, n;
} tp__ktrace_retrans;

/* A table row's process bookkeeping: the first known process, and whether others. */
typedef struct tp__ktrace_who {
    tp_ktrace_process first;
    uint32_t distinct; /* 0, 1, or 2 meaning "more than one" */
} tp__ktrace_who;

typedef struct tp__ktrace_bpf tp__ktrace_bpf; /* the loaded program (loader.c) */

struct tp_ktrace {
    tp_ktrace_options opts;
    tp__ktrace_bpf *bpf; /* NULL once stopped */
    bool stopped;
    int64_t started_ns, stopped_ns, next_join_ns;
    tp_ktrace_summary sum;
    /* Names of enum sk_rst_reason by value (without the SK_RST_REASON_ prefix), from
     * the kernel's BTF; NULL entries unnamed. */
    char **reasons;
    size_t nreasons;
    /* sock_diag join: owners sorted by cookie; the listeners (also from the program). */
    tp__ktrace_owner *owners;
    size_t nowners;
    tp__ktrace_listener *listeners;
    size_t nlisteners;
    /* The tables. While running, the idle_avg_ms fields hold sums. */
    tp_ktrace_reset *resets;
    tp__ktrace_who *reset_who;
    size_t nresets, capresets, capreset_who;
    tp_ktrace_closes *closes;
    size_t ncloses, capcloses;
    tp_ktrace_error *errors;
    tp__ktrace_who *error_who;
    size_t nerrors, caperrors, caperror_who;
    tp__ktrace_retrans *retrans;
    size_t nretrans, capretrans;
    uint64_t retrans_dropped; /* connections beyond TP__KTRACE_RETRANS_MAX */
    tp_diag_finding *findings;
    size_t nfindings, capfindings;
};

/* Connections whose retransmissions are followed one by one; beyond, only counted. */
#define TP__KTRACE_RETRANS_MAX 4096

/* ---- loader (loader.c / loader_none.c) ----------------------------------------------- */

/* tp__ktrace_bpf_probe: TP_OK when the build has the program, the kernel has BTF and
 * this process may load it; else the reason (see tp_ktrace_probe). */
tp_err tp__ktrace_bpf_probe(tp_errinfo *err);
/* tp__ktrace_bpf_open: loads the program with a ring of ring_bytes, attaches it, and
 * reads the reset reasons' names into t->reasons and the kernel HZ into t->sum.hz. */
tp_err tp__ktrace_bpf_open(tp_ktrace *t, size_t ring_bytes, tp_errinfo *err);
/* tp__ktrace_bpf_poll: waits up to timeout_ms (woken early when the ring fills), then
 * hands each event that arrived to tp__ktrace_event(). */
tp_err tp__ktrace_bpf_poll(tp_ktrace *t, int timeout_ms, tp_errinfo *err);
/* tp__ktrace_bpf_counters: the program's event and lost counters, and the runs the kernel
 * skipped (missed). */
void tp__ktrace_bpf_counters(tp_ktrace *t, tp_ktrace_summary *sum);
/* tp__ktrace_bpf_close: detaches and frees the program (NULL: no-op); t->bpf = NULL. */
void tp__ktrace_bpf_close(tp_ktrace *t);

/* ---- the sock_diag join (owners.c) --------------------------------------------------- */

/* tp__ktrace_join: samples sock_diag and /proc/PID/fd: adds the owners of the sockets
 * seen (keeping earlier ones, as their sockets may be gone) and the listeners. */
tp_err tp__ktrace_join(tp_ktrace *t, tp_errinfo *err);
/* tp__ktrace_owner_of: the process that held the socket with this cookie in a sample,
 * or NULL. */
const tp_ktrace_process *tp__ktrace_owner_of(const tp_ktrace *t, uint64_t cookie);
/* tp__ktrace_add_listener: a listener seen by the program (listen() during the trace, in
 * the caller's context: p is its process) or in a sample; known cookies are kept. */
tp_err tp__ktrace_add_listener(tp_ktrace *t, const tp_diag_endpoint *local, uint64_t cookie,
                               const tp_ktrace_process *p);
/* tp__ktrace_is_listener: a local listener has this local end (wildcards match). */
bool tp__ktrace_is_listener(const tp_ktrace *t, const tp_diag_endpoint *local);
/* tp__ktrace_listener_owner: the process holding the listeners of this local end, when
 * they are all one known process; NULL when unknown or several. */
const tp_ktrace_process *tp__ktrace_listener_owner(const tp_ktrace *t,
                                                   const tp_diag_endpoint *local);

/* ---- tables (tables.c) ---------------------------------------------------------------- */

/* tp__ktrace_event: counts one event (attributed, filtered). TP_ENOMEM. */
tp_err tp__ktrace_event(tp_ktrace *t, const struct tp_ktrace_event *e);
/* tp__ktrace_tables_finish: turns the sums into averages, sorts the tables. */
void tp__ktrace_tables_finish(tp_ktrace *t);
void tp__ktrace_tables_free(tp_ktrace *t);

/* ---- findings (findings.c) ------------------------------------------------------------ */

tp_err tp__ktrace_findings(tp_ktrace *t);

/* ---- words (words.c) ------------------------------------------------------------------ */

/* tp__ktrace_errno_name: "ECONNREFUSED" for ECONNREFUSED, "EUNKNOWN" for an errno a TCP
 * socket does not report (a static string). */
const char *tp__ktrace_errno_name(int err);
/* tp__ktrace_process_name: "curl[1234]" for p in buf, or unknown when the rows had no process or
 * several (pid 0). Returns buf. */
const char *tp__ktrace_process_name(const tp_ktrace_process *p, const char *unknown, char *buf,
                                    size_t size);
/* tp__ktrace_reason_process_context: the kernel sends a reset for this reason from the
 * closing process's own call (close(), shutdown(), disconnect), so its pid is exact. */
bool tp__ktrace_reason_process_context(const char *reason_name);

#endif
