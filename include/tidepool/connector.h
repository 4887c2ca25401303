/* tidepool/connector.h: the interface between the keyed pool and whatever it pools.
 *
 * A connector knows how to open a connection for a key, check that an idle one is still
 * usable, reset one that comes back from a lease, and close one. The pool owns every
 * connection it got from open() until it passes it to close(); it never looks inside.
 *
 * Threads: the pool calls these functions from any thread (the acquiring thread, the
 * releasing thread, the library's worker threads), never while holding a pool lock, and
 * never twice at once for the same connection. Different connections may be opened,
 * checked, reset and closed concurrently, so ctx must be thread-safe. */
#ifndef TIDEPOOL_CONNECTOR_H
#define TIDEPOOL_CONNECTOR_H

#include <stddef.h>
#include <stdint.h>
#include "errors.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Why the pool closed a connection. Every close has exactly one reason and is counted
 * under it in the stats. Append-only. */
#define TP_CLOSE_REASON_MAP(XX)                                                              \
    XX(IDLE_TIMEOUT, 0, "idle_timeout")   /* idle longer than idle_timeout */                \
    XX(LIFETIME, 1, "lifetime")           /* older than its (jittered) max_lifetime */       \
    XX(IDLE_OVERFLOW, 2, "idle_overflow") /* over max_idle_* (least recently used first) */  \
    XX(CHECK_FAILED, 3, "check_failed")   /* connector check() before reuse failed */        \
    XX(RESET_FAILED, 4, "reset_failed")   /* connector reset() on release failed */          \
    XX(DISCARDED, 5, "discarded")         /* the holder released it with TP_RELEASE_DISCARD */ \
    XX(BROKEN, 6, "broken")               /* the holder reported it broken */                \
    XX(POOL_CLOSED, 7, "pool_closed")     /* the pool was closed */                          \
    XX(BREAKER, 8, "breaker")             /* retired: an open breaker keeps its idle ones */ \
    XX(MAX_USES, 9, "max_uses")           /* served max_uses leases */                       \
    XX(EVICTED, 10, "evicted")            /* tp_pool_evict() asked for it */                  \
    XX(UNHEALTHY, 11, "unhealthy")        /* its TCP state says the path or peer is sick */ \
    XX(INHERITED, 12, "inherited")        /* a child process let go of its parent's one */ \
    XX(DRAINED, 13, "drained")            /* multiplexed, draining (capacity 0): its last  \
                                             stream ended */                               \
    XX(SHED, 14, "shed")                  /* given back to a shared budget whose other     \
                                             members wait (tp_pool_shed) */

typedef enum tp_close_reason {
#define TP__CLOSE_ENUM(name, num, str) TP_CLOSE_##name = (num),
    TP_CLOSE_REASON_MAP(TP__CLOSE_ENUM)
#undef TP__CLOSE_ENUM
        TP_CLOSE__COUNT
} tp_close_reason;

/* tp_close_reason_name: the static snake_case name of a reason ("unknown" if out of range). */
TP_EXTERN const char *tp_close_reason_name(int reason);

/* tp_connector: the vtable and its context. Copied into the pool at create; ctx is
 * borrowed and must outlive the pool.
 *
 * open (required): opens a new connection for key (keylen bytes, opaque to the pool).
 *   Must return by deadline (tp_clock_now() nanoseconds; TP_DURATION_INFINITE for none)
 *   with TP_ETIMEDOUT if it cannot finish in time. On success stores the connection in
 *   *conn (any non-NULL pointer) and returns TP_OK; on failure returns a negative tp_err
 *   and may fill err (never NULL) with the cause. The key is valid only during the call.
 *
 * check (optional): is this idle connection still usable? Called before an idle
 *   connection is handed out, when it has been idle at least the pool's check_after_idle
 *   (idle_ns says how long). Must not block: a zero-timeout poll, a status read. Return
 *   TP_OK to reuse; anything else closes it with reason check_failed and the pool tries
 *   another connection.
 *
 * reset (optional): called on every release that intends reuse; undoes session state
 *   (drain a body, roll back a transaction). Return TP_OK to keep the connection;
 *   anything else closes it with reason reset_failed.
 *
 * close (required): closes and frees the connection. Must not fail. reason says why.
 *
 * fd (optional): the connection's TCP socket, for health checks: the pool reads its
 *   TCP_INFO (RTT, retransmissions, unacknowledged data) now and then and retires a
 *   connection that is sick compared with its key's others (close reason unhealthy).
 *   Return -1 when there is none (a Unix socket, a TLS library that hides it). In a
 *   child process after fork(), close() of an inherited connection (reason inherited)
 *   comes after the pool has pointed this descriptor at /dev/null: whatever close()
 *   writes goes nowhere, and close() must not fail because of it.
 *
 * streams (optional): called once right after a successful open(), outside pool locks:
 *   how many leases (streams) the new connection may carry at once. A positive number
 *   makes it a multiplexed connection (HTTP/2: the peer's SETTINGS_MAX_CONCURRENT_STREAMS
 *   if known, else a default to assume until they arrive); 0 or less, an ordinary one
 *   (one lease at a time). A connector with streams() may multiplex any key: until a
 *   key's first connection has opened and said, the key dials one connection at a time
 *   and further acquires wait for it rather than each dialing its own. Multiplexed
 *   connections skip reset() (a stream's end is the connector's business, not a
 *   session to undo) and change capacity live through tp_conn_set_capacity().
 *
 * protocol (optional): the protocol conn speaks, as a static string ("h2", "http/1.1"),
 *   for tp_lease_info.protocol. Called by tp_conn_lease_info on the lease holder's
 *   thread while the connection may serve other streams: it must only read.
 *
 * probe (optional): a cheap test that key's destination is reachable again, without
 *   making a pooled connection (a TCP connect, a ping). When a key's breaker has been
 *   open for its cool-down, the maintenance pass calls probe() instead of letting a user
 *   request be the trial: TP_OK closes the breaker, an error keeps it open longer.
 *   Without probe, the first acquire after the cool-down is the (half-open) trial. */
typedef struct tp_connector {
    tp_err (*open)(void *ctx, const void *key, size_t keylen, int64_t deadline, void **conn,
                   tp_errinfo *err);
    tp_err (*check)(void *ctx, void *conn, int64_t idle_ns);
    tp_err (*reset)(void *ctx, void *conn);
    void (*close)(void *ctx, void *conn, tp_close_reason reason);
    tp_err (*probe)(void *ctx, const void *key, size_t keylen, int64_t deadline, tp_errinfo *err);
    void *ctx;
    int (*fd)(void *ctx, void *conn);
    int64_t (*streams)(void *ctx, void *conn);
    const char *(*protocol)(void *ctx, void *conn);
} tp_connector;

#ifdef __cplusplus
}
#endif
#endif
