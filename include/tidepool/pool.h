/* tidepool/pool.h: the keyed connection pool.
 *
 * A pool holds connections made by one connector, grouped by key: an opaque byte string
 * that says which connections are interchangeable (for HTTP: scheme, host, port, TLS
 * profile). A connection is only ever handed out for the key it was opened for.
 *
 * Per key the pool keeps idle connections (reused most recently used first, evicted
 * least recently used first), counts of idle, in use and opening connections, and a
 * queue of waiters. Limits apply per key and across keys. A maintenance pass closes idle
 * and expired connections, keeps min_idle_per_key warm and runs breaker probes; by
 * default it runs on the library's timer thread (tidepool/runtime.h), due at the pool's
 * next event, or when the caller calls tp_pool_maintain().
 *
 * Threads: every tp_pool_* function is thread-safe. A tp_conn (a lease) belongs to the
 * caller that acquired it until it is released; it may move between threads but must
 * not be used by two at once. No connector function and no trace hook ever runs while a
 * pool lock is held, so both may call back into the pool.
 *
 * fork(): a child process never uses a connection it inherited. At its first call in
 * the child a pool starts empty: it forgets the waiters, opens and leases of the
 * parent's threads, closes the inherited idle connections (reason inherited) after
 * pointing their sockets at /dev/null, so nothing (no FIN, no TLS close_notify, no
 * protocol goodbye) reaches the peer and the parent's connections stay intact, and does
 * the same with any inherited lease the child releases. A connector without fd() has
 * its inherited connections forgotten, never closed. Its maintenance is scheduled again
 * in the child. An HTTP engine must not be used across fork(): create one in the
 * child. */
#ifndef TIDEPOOL_POOL_H
#define TIDEPOOL_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "adapt.h"
#include "clock.h"
#include "connector.h"
#include "errors.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tp_pool tp_pool;
/* A leased connection: what acquire returns and release takes back. */
typedef struct tp_conn tp_conn;

/* ---- trace hooks ------------------------------------------------------------------ */

typedef enum tp_trace_type {
    TP_TRACE_CONNECT_START = 0, /* an open() is about to start */
    TP_TRACE_CONNECT_DONE = 1,  /* it returned: err, duration_ns */
    TP_TRACE_ACQUIRE = 2,       /* a lease was granted: reused, idle_ns, waited_ns */
    TP_TRACE_RELEASE = 3,       /* a lease ended: duration_ns = hold time, reason if closed */
    TP_TRACE_CLOSE = 4,         /* a connection was closed: reason */
    TP_TRACE_WAIT_START = 5,    /* an acquire had to queue */
    TP_TRACE_WAIT_TIMEOUT = 6,  /* a queued acquire timed out: waited_ns */
    TP_TRACE_BREAKER = 7        /* the key's breaker changed: breaker_state */
} tp_trace_type;

typedef enum tp_breaker_state {
    TP_BREAKER_CLOSED = 0,   /* opens allowed */
    TP_BREAKER_OPEN = 1,     /* no opens until the cool-down ends: acquires with no
                                connection to wait for fail fast with TP_EBREAKER */
    TP_BREAKER_HALF_OPEN = 2 /* one trial open (or probe) decides */
} tp_breaker_state;

/* tp_trace_event: one event, valid only during the hook call (copy what you keep). */
typedef struct tp_trace_event {
    tp_trace_type type;
    const void *key; /* the key's bytes */
    size_t keylen;
    tp_conn *conn;          /* the lease, when there is one (ACQUIRE, RELEASE) */
    tp_err err;             /* CONNECT_DONE */
    bool reused;            /* ACQUIRE: an idle connection, not a new one */
    bool closed;            /* RELEASE: the connection was closed, not kept */
    tp_close_reason reason; /* CLOSE, and RELEASE when closed */
    int64_t duration_ns;    /* CONNECT_DONE: open time; RELEASE: hold time */
    int64_t idle_ns;        /* ACQUIRE: how long the reused connection was idle */
    int64_t waited_ns;      /* ACQUIRE, WAIT_TIMEOUT: time spent queued */
    tp_breaker_state breaker_state; /* BREAKER */
} tp_trace_event;

/* A trace hook. Called outside every pool lock, on whichever thread caused the event;
 * it may call into the pool (even acquire and release). It should be quick. */
typedef void (*tp_trace_fn)(void *ud, const tp_trace_event *ev);

/* ---- open permits --------------------------------------------------------------------- */

/* What an open-permit hook answers. */
typedef enum tp_permit {
    TP_PERMIT_GRANTED = 0, /* open: the permit is held until give() */
    TP_PERMIT_WAIT = 1,    /* none now: the acquire waits (within its timeout) for a
                              released connection or tp_pool_permits_changed() */
    TP_PERMIT_REFUSED = 2  /* none at all (a budget that fails closed): an acquire with no
                              connection of the key to wait for fails with TP_ENOPERMIT;
                              one that has waits for it */
} tp_permit;

/* tp_permit_hook: a budget that opens are counted against, shared with others (a fleet
 * of processes on one database: tidepool/fleet.h). Before every open of a connection,
 * whichever path starts it (an acquire, an asynchronous or caller-made open, prewarming,
 * min_idle_per_key), once the pool's own limits allow it, the pool asks take(); every
 * connection opened under a permit, and every open that failed or was given up, returns
 * it through give() exactly once. Leases are never asked about.
 *
 * Threads: both are called with the pool's lock held, from any thread: they must not
 * block, do I/O or call into the pool. They are meant to be a counter against an
 * allowance that the budget keeps up to date on its own thread, which calls
 * tp_pool_permits_changed() when more may be granted. A child process after fork() never
 * gives back the permits of connections it inherited (its pool starts empty). */
typedef struct tp_permit_hook {
    void *ctx;
    tp_permit (*take)(void *ctx, const void *key, size_t keylen);
    void (*give)(void *ctx, const void *key, size_t keylen);
    /* Optional: tp_pool_destroy() calls it first, outside the pool's locks, once: a
     * budget that calls into the pool from its own thread (tp_pool_permits_changed,
     * tp_pool_shed, tp_pool_stats) stops now, waiting for a call in progress to return.
     * give() still comes for connections that close later (leases still out). */
    void (*pool_gone)(void *ctx, tp_pool *p);
} tp_permit_hook;

/* ---- options ---------------------------------------------------------------------- */

#define TP_POOL_OPTIONS_VERSION 1

/* tp_pool_options: fill with tp_pool_options_init(), then change what you need.
 * Durations are nanoseconds; sizes are counts. TP_UNLIMITED and TP_DURATION_INFINITE
 * switch a limit off; 0 means 0. */
typedef struct tp_pool_options {
    unsigned version;       /* TP_POOL_OPTIONS_VERSION */
    tp_connector connector; /* required: open and close at least */

    int64_t max_total;           /* all keys: in use + idle + opening. UNLIMITED */
    int64_t max_per_key;         /* one key: in use + idle + opening. 64 */
    int64_t max_idle_total;      /* idle across keys. UNLIMITED */
    int64_t max_idle_per_key;    /* idle for one key. TP_FOLLOW_MAX_PER_KEY: the same as
                                    max_per_key (no churn) */
    int64_t min_idle_per_key;    /* kept warm by maintenance for keys in use. 0 */
    int64_t max_waiters_per_key; /* beyond it acquire fails at once, TP_EBUSY. UNLIMITED */
    int64_t max_keys;            /* distinct live keys; beyond it TP_ELIMIT. UNLIMITED */

    int64_t acquire_timeout;  /* default wait for a connection. 30 s */
    int64_t connect_timeout;  /* bound on one open(). 10 s */
    int64_t idle_timeout;     /* close idle connections after this. 30 s */
    int64_t max_lifetime;     /* close connections this old (never while in use). 30 min */
    double lifetime_jitter;   /* lifetime shortened by up to this fraction, at random, per
                                 connection, so they do not expire together. 0.025 */
    int64_t check_after_idle; /* call connector check() before reusing a connection idle
                                 at least this long. 0 = always (the default: check()
                                 is a poll); raise it only for a connector whose check
                                 costs more than a system call */
    int64_t max_uses;         /* close a connection after this many leases. UNLIMITED */

    int64_t fair_after; /* a waiter queued this long is served strictly in arrival order:
                           released connections go straight to it. Before that, a running
                           thread may take a released connection first (no handoff cost
                           on the uncontended path). 1 ms; 0 = always strict FIFO */

    /* Failed opens. A burst of opens that fail together (every connection of a restarted
     * server reopening at once) counts as one failure: only an open that started after
     * the key's last outcome was seen counts. After a failure the key opens one
     * connection at a time, each after a backoff of a quarter of how long the key has
     * been failing (between half and all of it, at random), within these bounds: a
     * server back after an outage of T is found within about T/4. */
    int64_t backoff_initial;     /* the shortest backoff. 10 ms */
    int64_t backoff_max;         /* the longest. 5 s */
    /* The breaker opens after breaker_threshold counted failures of the destination
     * itself spread over at least breaker_min_outage (a restart shorter than that never
     * opens it; acquires wait through it). "Too many connections" from the server, or a
     * local shortage (descriptors, ports, memory), never count. An open breaker stops
     * opening, not serving: idle connections are still handed out and an acquire waits
     * for a connection the key holds; only one with nothing to wait for fails fast with
     * TP_EBREAKER. */
    int64_t breaker_threshold;   /* counted failures that open the breaker. 5; UNLIMITED =
                                    never */
    int64_t breaker_min_outage;  /* the failures must span at least this. 1 s; 0: the count
                                    alone decides */
    int64_t breaker_cooldown;    /* how long it stays open before a trial. 1 s */
    int64_t breaker_cooldown_max;/* cool-down doubles per failed trial up to this. 30 s */

    bool maintenance_thread;      /* schedule maintenance on the runtime's timer thread
                                     (no thread of the pool's own). true */
    int64_t maintenance_interval; /* longest gap between maintenance passes. 1 s */

    const tp_adapt_options *adaptive; /* NULL: off. Else each key's in-use limit (leases +
                                         opening) is set by a gradient controller
                                         (tidepool/adapt.h) between its min_limit and
                                         min(max_limit, max_per_key), fed with hold times
                                         and drops; copied. Adaptive pools take every lease
                                         under the lock (no lock-free reuse). */
    int64_t prewarm_waiters; /* when more acquires than this queue on a key, maintenance
                                opens idle connections ahead of need (one per waiter not
                                covered by an idle one; with adaptive, at most one
                                limit's worth), so a limit that grows next finds them
                                ready. Within max_per_key, max_idle_per_key and max_total
                                (never closing another key's idle connections), never
                                into a backoff or an open breaker. UNLIMITED: never */

    bool retire_unhealthy; /* with a connector fd(): read TCP_INFO of idle connections at
                              maintenance (and of every 32nd release) and close the sick
                              ones (reason unhealthy): data left unacknowledged while idle,
                              new retransmissions, or an RTT far above the key's others.
                              true */

    tp_trace_fn trace; /* optional hook for every event */
    void *trace_ud;

    const tp_permit_hook *permits; /* NULL: opens need no permit. Else the hook above;
                                      the struct is copied, ctx must outlive the pool */
} tp_pool_options;

/* tp_pool_options_init: fills o with the defaults above. */
TP_EXTERN void tp_pool_options_init(tp_pool_options *o);

/* ---- lifecycle -------------------------------------------------------------------- */

/* tp_pool_create: validates o and creates a pool.
 * Errors: TP_EINVAL for a missing connector function, an unknown version, a negative
 * size or duration, or a contradiction (max_idle_per_key > max_per_key,
 * min_idle_per_key > max_idle_per_key, idle_timeout > max_lifetime, ...); the message in
 * err names the field. TP_ENOMEM, TP_ESYS (thread or lock creation failed).
 * On failure *out is NULL. The options are copied. */
TP_EXTERN tp_err tp_pool_create(const tp_pool_options *o, tp_pool **out, tp_errinfo *err)
    TP_WARN_UNUSED;

/* tp_pool_close: stops the pool: wakes every waiter with TP_ECLOSED, closes idle
 * connections now and in-use ones when they are released, makes later acquires fail
 * with TP_ECLOSED. Idempotent. The pool stays valid until tp_pool_destroy(). */
TP_EXTERN void tp_pool_close(tp_pool *p);

/* tp_pool_destroy: closes the pool (as tp_pool_close) and gives up the caller's handle.
 * Connections still leased may be released after it returns: the memory is freed when
 * the last lease or in-flight open ends. It must not race with calls on the same pool
 * that are still running in other threads (finish them first, as for any handle); it
 * waits for a maintenance pass that runs and for the opens and probes maintenance
 * started (bounded by connect_timeout), so it must not be called from a trace hook, a
 * connector function or an acquire callback. NULL is a no-op. */
TP_EXTERN void tp_pool_destroy(tp_pool *p);

/* ---- acquire and release ---------------------------------------------------------- */

/* Acquire flags. */
#define TP_ACQUIRE_FRESH 0x1u        /* a newly opened connection, never an idle one: for
                                        the retry of a request that failed on a reused
                                        connection. If idle connections fill the key's
                                        limit, the least recently used one is closed
                                        (reason idle_overflow). */
#define TP_ACQUIRE_CALLER_OPENS 0x2u /* tp_acquire_async() only: when a new connection is
                                        needed, hand the caller an open slot
                                        (TP_ACQUIRED_OPEN_SLOT) instead of opening it on a
                                        worker: an event loop opens it without blocking,
                                        then calls tp_conn_open_done() or
                                        tp_conn_open_failed(). */
#define TP_ACQUIRE_NOWAIT 0x4u       /* never queue: an idle connection, a stream, or a
                                        free slot to open one is still used (an open
                                        still gets connect_timeout) */
#define TP_ACQUIRE_IDLE_ONLY 0x8u    /* only an idle connection ready now: never open,
                                        never wait (TP_EAGAIN if there is none) */

/* tp_acquire_req: one acquire, whichever verb runs it. A zero-initialised request,
 * {.key = k, .keylen = n}, waits up to the pool's acquire_timeout, with no flags and
 * no tenant.
 *
 * timeout: 0 or TP_DURATION_DEFAULT: the pool's acquire_timeout; a duration in
 *   nanoseconds; TP_DURATION_INFINITE. (To not wait at all: TP_ACQUIRE_NOWAIT.)
 * tenant: NULL, or a tenant made by tp_pool_tenant_set(): the lease counts against its
 *   quota until released (over quota: wait for one of its leases, or TP_EQUOTA). */
typedef struct tp_acquire_req {
    const void *key;
    size_t keylen;
    int64_t timeout;
    unsigned flags;
    const char *tenant;
} tp_acquire_req;

/* tp_acquire: leases a connection for req->key, blocking up to req->timeout.
 * Every verb decides the same way (one decision step in the core): the connection this
 * thread released last for this key, if it is idle (taken back without a lock: a
 * request loop keeps its connection and its caches warm); else the most recently
 * released idle connection, checked first if idle past check_after_idle; else a stream
 * of a multiplexed connection with room; else an open in the calling thread if the
 * limits allow; else a place in the key's queue. Newcomers may take a connection ahead
 * of queued acquires only until the first of those has waited fair_after; the adaptive
 * limit, the tenant's quota, the breaker and the open backoff hold every form back
 * alike; crossing prewarm_waiters queued acquires starts prewarming at once.
 * Errors: TP_ETIMEDOUT (err says what was in use and the last open error), TP_EBUSY
 * (max_waiters_per_key), TP_EBREAKER, TP_EQUOTA (the tenant's quota, at once or after
 * waiting until the timeout), TP_EAGAIN (TP_ACQUIRE_IDLE_ONLY: none idle), TP_ECLOSED,
 * TP_ELIMIT (max_keys), TP_ENOMEM, TP_EINVAL (NULL pool, req or out, key NULL with
 * keylen > 0, negative timeout, unknown flags or tenant), or the connector's open()
 * error for an open this call made. An open that fails the way a restart does
 * (TP_ECONNREFUSED, TP_ECONNRESET, TP_EUNREACH, TP_EUNAVAIL) at a destination the key
 * has reached before, while the breaker stays closed, or for lack of room
 * (TP_ESERVERFULL, TP_ENOFD, TP_EPORTS) while the key holds connections, does not end
 * the call: it waits on (timeout > 0) for a released connection or the key's next open,
 * and a timeout names that error. TP_EBREAKER only when the key holds no connection to
 * wait for. An open cut short by this call's timeout (shorter than connect_timeout) is
 * TP_ETIMEDOUT, the connector's reason in err; an open that runs out of
 * connect_timeout keeps the connector's code (TP_ECONNTIMEDOUT...). The key is copied;
 * on success *out is the lease. */
TP_EXTERN tp_err tp_acquire(tp_pool *p, const tp_acquire_req *req, tp_conn **out,
                            tp_errinfo *err) TP_WARN_UNUSED;

/* tp_acquire_req_for: a request for key with a timeout in tp_pool_acquire()'s terms
 * (TP_DURATION_DEFAULT: the pool's acquire_timeout; 0: TP_ACQUIRE_NOWAIT) and flags. */
static inline tp_acquire_req tp_acquire_req_for(const void *key, size_t keylen, int64_t timeout,
                                                unsigned flags)
{
    tp_acquire_req r = {key, keylen, timeout, flags, NULL};
    if (timeout == 0) {
        r.timeout = TP_DURATION_DEFAULT;
        r.flags |= TP_ACQUIRE_NOWAIT;
    }
    return r;
}

/* tp_pool_acquire: tp_acquire() for key with timeout (TP_DURATION_DEFAULT: the pool's
 * acquire_timeout; 0: TP_ACQUIRE_NOWAIT), no other flag, no tenant. */
TP_EXTERN tp_err tp_pool_acquire(tp_pool *p, const void *key, size_t keylen, int64_t timeout,
                                 tp_conn **out, tp_errinfo *err) TP_WARN_UNUSED;

/* ---- tenants ------------------------------------------------------------------------ */

/* tp_pool_tenant_set: creates tenant name (up to 63 bytes) or changes its quota, live: it
 * may hold at most max_in_use leases at once, across keys (TP_UNLIMITED: no quota). Over
 * the quota an acquire waits for one of the tenant's leases to end (wait true, up to its
 * timeout) or fails at once (wait false) with TP_EQUOTA. Raising the quota wakes waiters;
 * lowering it never takes leases away. Errors: TP_EINVAL (name, negative quota), TP_ENOMEM,
 * TP_ESYS. */
TP_EXTERN tp_err tp_pool_tenant_set(tp_pool *p, const char *name, int64_t max_in_use, bool wait);

typedef struct tp_tenant_stats {
    int64_t in_use;      /* leases held now */
    int64_t max_in_use;  /* the quota in force */
    int64_t waiters;     /* acquires waiting for the quota */
    uint64_t acquires;   /* leases granted */
    uint64_t rejects;    /* acquires refused or timed out over quota (TP_EQUOTA) */
    uint64_t waits;      /* acquires that had to wait for the quota */
} tp_tenant_stats;

/* tp_pool_tenant_stats: tenant name's numbers; TP_EINVAL if unknown. */
TP_EXTERN tp_err tp_pool_tenant_stats(tp_pool *p, const char *name, tp_tenant_stats *out);

/* tp_pool_tenant_visit: calls fn once per tenant with its numbers, outside pool locks. */
typedef void (*tp_tenant_visit_fn)(void *ud, const char *name, const tp_tenant_stats *st);
TP_EXTERN void tp_pool_tenant_visit(tp_pool *p, tp_tenant_visit_fn fn, void *ud);

/* What tp_acquire_async() gave: a lease now, a promise of its callback, or an open slot. */
typedef enum tp_acquired {
    TP_ACQUIRED_LEASE = 0,     /* conn is the lease */
    TP_ACQUIRED_PENDING = 1,   /* queued: the callback will run exactly once */
    TP_ACQUIRED_OPEN_SLOT = 2, /* conn is not a connection but a slot to open one
                                  (TP_ACQUIRE_CALLER_OPENS), counted against the limits
                                  as "opening" until the caller reports;
                                  tp_conn_key() names the key to connect to */
} tp_acquired;

typedef struct tp_acquire_result {
    tp_acquired kind;
    tp_conn *conn;   /* LEASE, OPEN_SLOT */
    uint64_t ticket; /* PENDING: names the request for tp_acquire_cancel() */
} tp_acquire_result;

/* tp_acquire_cb: the outcome of a pending asynchronous acquire, called exactly once:
 * status TP_OK with kind TP_ACQUIRED_LEASE or TP_ACQUIRED_OPEN_SLOT and conn, or an
 * error (conn NULL; err has the detail, valid only during the call). It runs outside
 * pool locks, on the thread that released or opened the connection, on a library
 * thread (timeouts, opens on a worker), or in the caller of tp_pool_maintain() /
 * tp_pool_close(). */
typedef void (*tp_acquire_cb)(void *ud, tp_err status, tp_acquired kind, tp_conn *conn,
                              const tp_errinfo *err);

/* tp_acquire_async: tp_acquire() without blocking the caller, decided the same way.
 * TP_OK: *res says what happened: a lease at once (cb is not called), an open slot at
 * once (TP_ACQUIRE_CALLER_OPENS), or a pending request (queued, or opening on a worker,
 * tidepool/runtime.h): cb will be called exactly once with the lease, a slot, or the
 * error (the errors of tp_acquire(), decided when the time comes). Any error return is
 * the request's failure and cb is never called. */
TP_EXTERN tp_err tp_acquire_async(tp_pool *p, const tp_acquire_req *req, tp_acquire_cb cb,
                                  void *ud, tp_acquire_result *res, tp_errinfo *err)
    TP_WARN_UNUSED;

/* tp_conn_open_done: the caller opened conn for an open slot (TP_ACQUIRED_OPEN_SLOT).
 * TP_OK: *lease is a lease of conn, like any acquired connection (release it with
 * tp_conn_release()): the slot itself, or for a multiplexed connection (the connector's
 * streams()) its first stream, whose spare streams go to waiting acquires at once.
 * TP_ECLOSED: the pool was closed meanwhile; conn has been closed through the connector
 * and the slot is gone. TP_ENOMEM: no memory for the stream; conn is idle in the pool.
 * Either way the open counts in the stats and closes the key's breaker. */
TP_EXTERN tp_err tp_conn_open_done(tp_conn *slot, void *conn, tp_conn **lease);

/* tp_conn_open_failed: the caller could not open a connection for the slot: rc (and
 * err, may be NULL) say why. The slot is gone; the failure counts like a failed open()
 * (backoff, breaker, last error in timeout messages) and waiters may get the slot.
 * rc TP_ECANCELED gives the slot back without counting a failure (the caller gave up).
 * Returns TP_EAGAIN when the failure is one a blocking acquire would wait through (a
 * restart's refusal from a destination reached before, while the breaker is closed; no
 * room on the server or no descriptor while the key holds connections that will come
 * back): the caller should acquire again
 * within its own deadline rather than fail its request. Otherwise returns rc (TP_EOPEN
 * for a non-negative rc), or TP_EINVAL for a NULL slot. */
TP_EXTERN tp_err tp_conn_open_failed(tp_conn *slot, tp_err rc, const tp_errinfo *err);

/* tp_acquire_cancel: withdraws a pending asynchronous acquire. TP_OK: it was still
 * queued and its callback will never run. TP_ESTATE: it already completed or its
 * callback is running or about to run (the callback owns any connection it receives). */
TP_EXTERN tp_err tp_acquire_cancel(tp_pool *p, uint64_t ticket);

/* Release flags. On a stream of a multiplexed connection, DISCARD and BROKEN retire the
 * whole connection: no new leases on it, and it closes (with that reason) when its other
 * leases return. */
#define TP_RELEASE_DISCARD 0x1u /* close instead of reuse (reason discarded) */
#define TP_RELEASE_BROKEN 0x2u  /* the holder saw it fail: close (reason broken) */
#define TP_RELEASE_DROPPED 0x4u /* the request failed for capacity reasons (a timeout, a
                                   503 or 429): the adaptive limit backs off; the
                                   connection itself is kept unless other flags say no */

/* tp_conn_release: ends a lease. Unless flags say otherwise, the connector's reset() runs
 * and the connection goes to the oldest eligible waiter or back to idle; it is closed
 * instead if reset fails, it is past its lifetime or max_uses, the idle limits are full
 * (the least recently used idle one is closed), or the pool is closed. Never fails;
 * conn must not be used afterwards. NULL is a no-op. */
TP_EXTERN void tp_conn_release(tp_conn *c, unsigned flags);

/* tp_conn_set_capacity: how many streams the multiplexed connection behind lease (any of
 * its leases) may carry from now on (the peer's SETTINGS changed). Above the leases out,
 * waiting acquires get streams at once; below, the leases above it finish and none
 * start; 0 drains it: no new leases, and it closes with reason drained when its last
 * lease returns (HTTP/2 GOAWAY). Thread-safe; may be called from any thread holding one
 * of its leases. Errors: TP_EINVAL (NULL lease, negative capacity), TP_ESTATE (not a
 * multiplexed connection). */
TP_EXTERN tp_err tp_conn_set_capacity(tp_conn *lease, int64_t capacity);

/* What a multiplexing connector (HTTP/2) learns of its connections, counted in the
 * key's statistics (tp_stats.goaways, tp_stats.ping_rtt). Thread-safe and lock-free;
 * from any thread holding one of the connection's leases.
 * tp_conn_record_goaway: the peer sent GOAWAY with this error code (TP_GOAWAY_CODES).
 * tp_conn_record_ping_rtt: a PING came back after rtt_ns. NULL lease: no-op. */
TP_EXTERN void tp_conn_record_goaway(tp_conn *lease, uint32_t code);
TP_EXTERN void tp_conn_record_ping_rtt(tp_conn *lease, int64_t rtt_ns);

/* tp_conn_get: the connector's connection behind a lease (what open() returned). */
TP_EXTERN void *tp_conn_get(const tp_conn *c);

/* tp_conn_key: the key of a lease (valid while leased); *keylen receives its length. */
TP_EXTERN const void *tp_conn_key(const tp_conn *c, size_t *keylen);

/* tp_conn_uses: how many leases this connection has served, this one included. */
TP_EXTERN uint64_t tp_conn_uses(const tp_conn *c);

/* tp_lease_info: the facts of one lease, recorded when it began, on the lease itself
 * (so each of many concurrent leases reads its own, whichever thread granted it). */
typedef struct tp_lease_info {
    bool reused;       /* the connection served a lease before this one */
    int64_t idle_ns;   /* reused: how long since its previous lease ended (a connection
                          handed straight from a release to a waiter: about 0); else 0 */
    int64_t waited_ns; /* from the acquire call to the lease (queue, open); 0 at once */
    uint64_t uses;     /* leases served, this one included */
    int64_t age_ns;    /* since open() returned, as of this call */
    bool multiplexed;  /* a stream of a multiplexed connection (HTTP/2) */
    const char *protocol; /* what the connection speaks ("h2", "http/1.1"), from the
                             connector's protocol(); NULL when it does not say */
} tp_lease_info;

/* tp_conn_lease_info: fills *out for the lease c (by its holder, while leased). */
TP_EXTERN void tp_conn_lease_info(const tp_conn *c, tp_lease_info *out);

/* ---- maintenance ------------------------------------------------------------------ */

/* tp_pool_maintain: runs one maintenance pass now: closes idle-timed-out and expired idle
 * connections, fails timed-out asynchronous waiters, opens connections to keep
 * min_idle_per_key warm, runs due breaker probes. Opens and probes run in the calling
 * thread. Returns the nanoseconds until the pass is next due (for event loops that drive
 * maintenance themselves with maintenance_thread = false). Safe to call alongside the
 * scheduled passes. */
TP_EXTERN int64_t tp_pool_maintain(tp_pool *p);

/* tp_pool_key_limit_idle_timeout: lowers key's idle timeout to idle_timeout if that is
 * shorter than the one in force (never raises it), creating the key if needed. For
 * connectors that learn the server's own idle limit (HTTP "Keep-Alive: timeout=N"), so
 * the pool closes an idle connection before the server does. Errors: TP_EINVAL,
 * TP_ENOMEM, TP_ELIMIT. */
TP_EXTERN tp_err tp_pool_key_limit_idle_timeout(tp_pool *p, const void *key, size_t keylen,
                                                int64_t idle_timeout);

/* tp_pool_permits_changed: the permit hook may grant more now: acquires waiting for a
 * permit look again (in this call, for those that a freed slot serves). Thread-safe;
 * never from inside the hook. */
TP_EXTERN void tp_pool_permits_changed(tp_pool *p);

/* tp_pool_shed: gives back n connections (reason shed): idle ones now, least recently
 * used first across keys, and the rest as their leases end (a connection that would be
 * handed to a waiter closes instead), ordinary leases only (not the streams of a
 * multiplexed connection). Returns how many closed now. Each call replaces what an
 * earlier one left to give back; n <= 0 cancels it. A shared budget's way of giving back
 * what this pool holds above its share while others wait. Thread-safe. */
TP_EXTERN int64_t tp_pool_shed(tp_pool *p, int64_t n);

/* tp_pool_evict: closes every idle connection of key (all keys when key is NULL) and
 * marks in-use ones to be closed on release (soft eviction after a credential or DNS
 * change). Returns how many idle connections were closed. */
TP_EXTERN int64_t tp_pool_evict(tp_pool *p, const void *key, size_t keylen);

/* ---- statistics ------------------------------------------------------------------- */

/* Histograms: bucket i counts values v (nanoseconds) with
 * tp_histogram_bucket_upper(i-1) < v <= tp_histogram_bucket_upper(i); buckets grow by a
 * factor of sqrt(2) from 1 us to about 35 minutes, the last one is unbounded. */
#define TP_HIST_BUCKETS 64

/* GOAWAY frames received, by HTTP/2 error code (RFC 9113 section 7): slot i counts
 * code i for 0x0 NO_ERROR to 0xd HTTP_1_1_REQUIRED; the last slot counts any other. */
#define TP_GOAWAY_CODES 15

typedef struct tp_histogram {
    uint64_t count;
    uint64_t sum_ns;
    uint64_t buckets[TP_HIST_BUCKETS];
} tp_histogram;

/* tp_histogram_bucket_upper: inclusive upper bound of bucket i in nanoseconds
 * (INT64_MAX for the last). */
TP_EXTERN int64_t tp_histogram_bucket_upper(int i);

/* tp_histogram_quantile: an estimate (upper bucket bound, interpolated) of quantile q in
 * [0,1]; 0 for an empty histogram. */
TP_EXTERN int64_t tp_histogram_quantile(const tp_histogram *h, double q);

/* tp_stats: one key's, or the whole pool's, numbers at one instant. Gauges add up:
 * idle + in_use + opening = total. Counters only grow. */
typedef struct tp_stats {
    /* gauges */
    int64_t total, idle, in_use, opening, waiters;
    int64_t max_per_key, max_idle_per_key, min_idle_per_key; /* the limits in force */
    tp_breaker_state breaker;                                /* per key; CLOSED for a pool */
    int64_t adaptive_limit; /* per key: the adaptive in-use limit in force; 0 when off */
    int64_t keys;                                            /* pool only: live keys */
    int64_t streams_in_use;  /* leases on multiplexed connections (part of in_use's
                                connections: each such connection counts once there) */
    int64_t stream_capacity; /* streams those connections may carry now (draining ones
                                excluded) */
    int64_t draining;        /* multiplexed connections that take no new stream and close
                                after their last one (GOAWAY, lifetime, eviction) */
    /* counters */
    uint64_t acquires;      /* leases granted */
    uint64_t reuses;        /* of which served by an idle connection */
    uint64_t waits;         /* of which had to queue */
    uint64_t opens;         /* connections opened */
    uint64_t open_failures; /* open() errors */
    uint64_t timeouts;      /* acquires that timed out */
    uint64_t rejects_busy;  /* acquires refused: queue full */
    uint64_t rejects_breaker; /* acquires refused: breaker open */
    uint64_t checks_failed; /* idle connections that failed check() */
    uint64_t prewarms;      /* opens started ahead of need (prewarm_waiters) */
    uint64_t permit_waits;  /* acquires that waited because the permit hook said wait
                               (each once, however often it looked) */
    uint64_t permit_refusals; /* opens the permit hook refused */
    uint64_t closes[TP_CLOSE__COUNT]; /* closes by reason */
    uint64_t goaways[TP_GOAWAY_CODES]; /* GOAWAYs the peers sent, by error code */
    /* histograms */
    tp_histogram acquire_wait; /* time from acquire call to lease (0 when not queued) */
    tp_histogram open_time;    /* successful open() durations */
    tp_histogram hold_time;    /* lease durations */
    tp_histogram idle_time;    /* how long a reused connection had been idle */
    tp_histogram ping_rtt;     /* multiplexed connections' PING round trips */
} tp_stats;

/* tp_pool_stats: the pool-wide snapshot (sums over keys, closed keys included). */
TP_EXTERN void tp_pool_stats(tp_pool *p, tp_stats *out);

/* tp_pool_key_stats: one key's snapshot. TP_EINVAL if the key has never been seen or
 * was reclaimed after it emptied (its counts then live on in the pool-wide stats). */
TP_EXTERN tp_err tp_pool_key_stats(tp_pool *p, const void *key, size_t keylen, tp_stats *out);

/* tp_pool_key_visit: calls fn once per live key with its snapshot, outside pool locks.
 * fn must not destroy the pool. */
typedef void (*tp_key_visit_fn)(void *ud, const void *key, size_t keylen, const tp_stats *st);
TP_EXTERN void tp_pool_key_visit(tp_pool *p, tp_key_visit_fn fn, void *ud);

/* tp_pool_options_get: a copy of the options the pool runs with. */
TP_EXTERN void tp_pool_options_get(tp_pool *p, tp_pool_options *out);

#ifdef __cplusplus
}
#endif
#endif
