/* core/types.h: the pool's data structures, shared by its files (each file's functions are
 * declared in the header of the same name).
 *
 * Locking: one mutex per pool (tp_pool.mu) guards every key, list, count and waiter.
 * The hot path (a thread reusing the connection it released last, with nobody waiting)
 * takes no lock at all: it moves a connection between IDLE and IN_USE with one
 * compare-and-swap on the connection's state word, which also carries a generation
 * (so a stale hint can never claim a connection that was closed and recycled) and a
 * LINKED bit (whether the connection sits in its key's idle list).
 *
 * The idle list may hold connections that the hot path claimed after they were linked
 * (state IN_USE with LINKED set); the slow path unlinks them when it meets them. So
 * "linked" >= "idle", and limits on idle connections are enforced on the linked count,
 * which is exact under the lock.
 *
 * The idle list is kept in the order of release, most recent first, so reuse takes the
 * head and eviction the tail. A lock-free release cannot move its connection to the
 * head; instead it pushes the connection on its key's displaced stack (a lock-free
 * LIFO, at most once until the lock holder next looks: the dqueued flag), and the lock
 * holder settles the stack into the list before it picks (idle.c).
 *
 * Lost wake-ups between a lock-free release and a waiter that is queuing are ruled out
 * by the Dekker pattern: the waiter publishes nwaiters (seq_cst) and then rescans the
 * idle list under the lock; the releaser publishes IDLE (seq_cst CAS) and then reads
 * nwaiters. At least one of the two sees the other. */
#ifndef TP_CORE_TYPES_H
#define TP_CORE_TYPES_H

#include <stddef.h>

#include "base/base.h"
#include "base/fork.h"
#include "base/hist.h"
#include "base/list.h"
#include "base/sync.h"
#include "base/timer.h"
#include "base/workq.h"

/* ---- connection state word: gen (high 56 bits) | LINKED | state (2 bits) ------------ */
enum {
    TP__CS_FREE = 0,     /* not a live connection (on the free list, or being closed) */
    TP__CS_IDLE = 1,     /* idle: claimable by CAS */
    TP__CS_INUSE = 2,    /* leased, or being checked/opened/handed over */
    TP__CS_RESERVED = 3, /* taken by maintenance or eviction to be closed */
};
#define TP__CS_MASK UINT64_C(0x3)
#define TP__CS_LINKED UINT64_C(0x4)
#define TP__CS_GEN_SHIFT 8
#define TP__CS_STATE(w) ((w)&TP__CS_MASK)
#define TP__CS_GEN(w) ((w) >> TP__CS_GEN_SHIFT)
#define TP__CS_MAKE(gen, linked, state) (((gen) << TP__CS_GEN_SHIFT) | (linked) | (state))

/* A lease's statistics: two cache lines, which a reuse and its release touch together.
 * The key's own shard is written by any thread with atomic additions (the locked paths,
 * and leases begun or ended off the lock-free path); a thread's shard of a key
 * (tp__tshard) only by that thread, on the lock-free path, with plain relaxed stores: a
 * request loop reusing its connection shares no line. Reuses are idle.count (every
 * reuse records its idle time). */
typedef struct tp__shard {
    _Atomic uint64_t acquires;      /* leases granted */
    _Atomic uint64_t fast_acquires; /* of which were granted without waiting */
    tp__hist hold;                  /* lease durations */
    tp__hist idle;                  /* idle time before reuse */
} tp__shard;
_Static_assert(sizeof(tp__shard) == 128, "a shard is two cache lines");

typedef struct tp__key tp__key;

/* One thread's share of a key's statistics (stats.c): made the first time the thread
 * reuses a connection of the key without the lock, kept until the key is freed. */
typedef struct tp__tshard {
    tp__shard st;
    const void *owner; /* the thread's token (an address of its thread-local storage) */
    struct tp__tshard *next;
} tp__tshard;

/* What a key's connections are, as far as the pool knows. */
enum { TP__MUX_UNKNOWN = 0, TP__MUX_SINGLE = 1, TP__MUX_MUX = 2 };

/* A connection. Structs come from slabs (lifecycle.c) aligned to a cache line, three
 * lines each: the first two are what a reuse and its release touch. */
struct tp_conn {
    /* line 0: the state, the idle list, the key */
    _Atomic uint64_t word;        /* state word (see above) */
    tp_pool *pool;                /* the owning pool; fixed for the struct's life */
    tp__key *key;                 /* the key (set while live; pool lock) */
    void *user;                   /* the connector's connection */
    tp__list idle_link;           /* in key->idle iff LINKED (pool lock) */
    _Atomic int64_t idle_since;   /* set by the releaser before it publishes IDLE; kept
                                     through the lease (its idle time is read from it) */
    int64_t acquired_at;          /* holder-owned: start of the current lease */
    /* line 1: the lease */
    int64_t expires_at;           /* jittered end of life; TP_DURATION_INFINITE if none */
    _Atomic uint64_t uses;        /* leases served (holder-written) */
    tp_conn *dnext;               /* next on key->displaced (while dqueued) */
    struct tp__shard *sh;         /* holder-owned: the thread shard the lease is counted in
                                     (the lock-free path), or NULL: the key's */
    struct tp__tenant *tenant;    /* the lease's tenant, if any (holder-owned) */
    tp_conn *parent;              /* a stream: the connection it rides on; else NULL */
    int64_t lease_waited_ns;      /* holder-owned: the current lease's wait
                                     (tp_conn_lease_info) */
    _Atomic int32_t last_hold;    /* duration of the last finished lease in ns, at most
                                     INT32_MAX (what the spin decision needs); -1 before */
    _Atomic bool dqueued;         /* on key->displaced, or being pushed there */
    _Atomic bool evict;           /* soft-evicted: close on release */
    bool lease_reused;            /* holder-owned, with the lease's facts */
    bool inherited;               /* a child process's copy of a lease its parent held
                                     (fork.c): forgotten by the pool, closed on release */
    /* line 2: the rest */
    int64_t created_at;           /* when open() returned */
    tp__list all_link;            /* in key->conns while live, else on a free or close list */
    uint32_t last_retrans;        /* TCP retransmissions at the last health sample */
    uint8_t close_reason;         /* a tp_close_reason, set when queued for closing */
    /* multiplexing (mux.c; pool lock). A multiplexed connection is IN_USE while any of
       its streams is out and idle (linked, IDLE) when none is; each lease on it is a
       stream: a struct of its own whose parent is the connection. */
    bool mux;                     /* a multiplexed connection (connector streams() > 0) */
    bool draining;                /* mux: no new streams; closes when its last one ends */
    uint8_t drain_reason;         /* mux, draining: the tp_close_reason it will close with */
    int32_t capacity;             /* mux: streams it may carry now */
    int32_t streams;              /* mux: streams out */
    tp__list spare_link;          /* mux: in key->spare while in use with room to spare */
};
/* tp__hold_clip: a lease's duration as last_hold keeps it. */
static inline int32_t tp__hold_clip(int64_t hold)
{
    return hold > INT32_MAX ? INT32_MAX : (int32_t)hold;
}
_Static_assert(offsetof(struct tp_conn, expires_at) == 64 && offsetof(struct tp_conn, created_at) == 128,
               "a connection's lease lines");

/* A tenant: a quota on how many leases one client of the pool holds at once. Created by
 * tp_pool_tenant_set() and kept until the pool is freed, so leases may point at it. */
typedef struct tp__tenant {
    char name[64];
    _Atomic int64_t in_use;   /* leases held (and acquires past the quota check) */
    _Atomic int64_t max;      /* the quota; TP_UNLIMITED for none */
    _Atomic bool wait;        /* over quota: wait (true) or fail with TP_EQUOTA */
    _Atomic int64_t nwaiters; /* acquires waiting for the quota (read by releases) */
    _Atomic uint64_t acquires, rejects, waits;
    pthread_cond_t cv;        /* blocking waiters, on the pool lock */
    tp__list async_waiters;   /* queued asynchronous acquires (tp__waiter via link) */
    struct tp__tenant *next;
} tp__tenant;

typedef enum tp__grant {
    TP__GRANT_NONE = 0, /* still queued */
    TP__GRANT_CONN = 1, /* conn handed over (state IN_USE, unlinked) */
    TP__GRANT_OPEN = 2, /* a slot to open reserved for this waiter (opening counted) */
    TP__GRANT_FAIL = 3, /* failed with err */
    TP__GRANT_SLOT = 4, /* caller-opens: conn is an open slot for the caller to fill */
} tp__grant;

/* A queued acquire. Blocking waiters live on their caller's stack; asynchronous ones
 * are allocated and freed by the pool. All fields are guarded by the pool lock. */
typedef struct tp__waiter {
    tp__list link; /* in key->waiters while queued */
    tp__list alink; /* async: in pool->async_queued while queued (key's or tenant's queue) */
    tp_pool *pool;
    tp__key *key;
    int64_t enqueued_at;
    int64_t deadline; /* TP_DURATION_INFINITE for none */
    tp__grant grant;
    tp_conn *conn;   /* GRANT_CONN */
    bool check;      /* GRANT_CONN from the idle list: validate it (tp__reuse_verdict) */
    tp_err err;      /* GRANT_FAIL */
    tp_errinfo info; /* GRANT_FAIL detail */
    bool woken;      /* signalled to rescan (no grant): do not signal twice */
    bool queued;     /* link is in key->waiters (counted in nwaiters) */
    bool async;
    unsigned flags;          /* the request's TP_ACQUIRE_* */
    struct tp__tenant *tenant; /* the request's tenant, or NULL */
    bool quota_held;         /* async: holds a place in the tenant's quota */
    bool on_tenant_queue;    /* async: link is in the tenant's queue, not the key's */
    /* blocking */
    pthread_cond_t cv;
    /* asynchronous */
    tp_acquire_cb cb;
    void *ud;
    uint64_t ticket;
    tp__list done_link; /* on a completion list after it left the queue */
    tp__work work;      /* its open, on a worker (tp__async_open_start) */
} tp__waiter;

/* A key. Its cold fields come first; the last four cache lines (the struct is 64-byte
 * aligned: keys.c) are what a lookup, a reuse, its release and their statistics touch,
 * so that a random key costs four lines and no more: the shard, then the queue and
 * counts, then the lookup line, whose tail holds the key's first bytes. */
struct tp__key {
    void *mem;         /* the allocation (the struct is aligned inside it) */
    int64_t buried_at; /* when it was reclaimed (graveyard only) */
    tp__list conns;               /* every live connection of the key */
    tp__list spare;               /* multiplexed connections in use with streams to spare
                                     (empty unless the connector has streams()) */
    tp__list waiting_link;        /* in pool->waiting_keys while waiters is not empty */
    int64_t streams_in_use;       /* streams out on its multiplexed connections */
    int64_t stream_capacity;      /* what its multiplexed connections may carry (draining
                                     ones excluded) */
    int64_t mux_busy;             /* multiplexed connections with a stream out */
    int64_t draining;             /* multiplexed connections draining (mux.c) */
    int64_t nlinked;              /* connections in the idle list */
    int64_t prewarming;           /* of which prewarm opens: no lease waits on them, so
                                     the adaptive limit does not count them */
    tp__timer due;                /* when it next needs a maintenance pass (schedule.c) */
    _Atomic int64_t rtt_base_us;  /* the key's healthy RTT (smallest seen, decaying up) */
    tp_adapt_state *adapt;        /* adaptive pools: the key's controller (pool lock) */
    int64_t ports_capped_until;   /* adaptive: the port budget is this key's connections
                                     after TP_EPORTS, until then (0: not capped) */

    /* open failures (breaker.c) */
    int64_t failures;      /* destination failures in the current streak (a burst of opens
                              that failed together counts once): the breaker's count */
    int64_t failing_since; /* when the current streak of failed opens began; 0: none. While
                              set, the key opens one connection at a time, paced */
    bool failing_for_room; /* the streak is of capacity or local failures (no room), not
                              of the destination's: a change of kind starts a new one */
    bool paced_open;       /* the streak's one open is out, granted at paced_open_at (opens
                              of the burst before it do not hold the next one back) */
    int64_t paced_open_at;
    int64_t outcome_at;    /* when the last counted open outcome was seen: an open that
                              started before it tells nothing new when it fails */
    int64_t backoff_until; /* no new open before this */
    tp_breaker_state breaker;
    int64_t breaker_until; /* OPEN: cool-down end */
    int64_t cooldown;      /* current cool-down length */
    bool trial_inflight;   /* HALF_OPEN: the trial open or probe is running */
    tp_errinfo *last_err;  /* the last open error, for timeout messages (allocated at the
                              first failure: most keys never have one) */
    tp__list ev_link;      /* on a tp__after's breakers list while ev_pending */
    bool ev_pending;
    _Atomic int ev_state; /* the breaker state to report */

    /* statistics: the key's shard (below, atomic additions), the lock-free path's
       per-thread shards, and the rest (pool lock) */
    uint64_t id; /* unique in the pool: a thread's cached shard names its key by it */
    tp__tshard *tshards;
    _Atomic uint64_t waits, opens, open_failures, timeouts, rejects_busy, rejects_breaker,
        checks_failed, prewarms, permit_waits, permit_refusals;
    _Atomic uint64_t closes[TP_CLOSE__COUNT];
    _Atomic uint64_t goaways[TP_GOAWAY_CODES]; /* tp_conn_record_goaway */
    tp__hist ping_hist;                        /* tp_conn_record_ping_rtt, atomic */
    tp__hist wait_hist; /* tp__lease_begin, atomic: leases begin with or without the lock */
    tp__hist open_hist;

    /* ---- the hot lines ---- */
    _Alignas(64) tp__shard st;
    /* the queue and the counts every acquire reads */
    tp__list waiters;             /* FIFO of tp__waiter */
    _Atomic int64_t nwaiters;     /* length of waiters; read without the lock by releasers */
    int64_t last_active;          /* last acquire or release, for reclaiming empty keys */
    _Atomic int64_t idle_timeout; /* this key's idle timeout: the pool's, or lower when the
                                     server announced a shorter keep-alive */
    int64_t nconns;               /* live connections (idle + in use + reserved) */
    int64_t opening;              /* opens in flight */
    int32_t pins;                 /* deferred work referring to this key: not reclaimable */
    bool permit_blocked;          /* the last open decision was held back by the permit
                                     hook (tp__open_allowed_locked) */
    int8_t mux_state;             /* TP__MUX_UNKNOWN / _SINGLE / _MUX: what its last
                                     opened connection said (connector streams()) */
    /* the lookup line */
    uint64_t hash;
    tp__key *hnext; /* hash chain, or the graveyard list once reclaimed */
    size_t keylen;
    tp__list idle;                /* linked connections, most recently released first
                                     (once the displaced stack is settled) */
    _Atomic(tp_conn *) displaced; /* released without the lock since the last settle, at
                                     a stale place in idle: pushed by the releaser, taken
                                     whole under the lock (idle.c) */
    unsigned char bytes[];        /* the key's bytes (keylen of them) */
};
_Static_assert(offsetof(tp__key, bytes) % 64 == 48, "a key's first 16 bytes share its lookup line");
_Static_assert(offsetof(tp__key, hash) - offsetof(tp__key, st) == 192, "four hot lines");

/* Totals of keys that were reclaimed, so pool-wide counters never go backwards. */
typedef struct tp__retired {
    uint64_t acquires, reuses, fast_acquires, waits, opens, open_failures, timeouts, rejects_busy,
        rejects_breaker, checks_failed, prewarms, permit_waits, permit_refusals;
    uint64_t closes[TP_CLOSE__COUNT];
    uint64_t goaways[TP_GOAWAY_CODES];
    tp_histogram hold, idle, wait, open, ping;
} tp__retired;

struct tp_pool {
    uint64_t id;        /* unique per pool in the process: validates thread hints */
    _Atomic unsigned fork_gen; /* tp__fork_generation when the pool last looked */
    tp__fork_guard fork_guard; /* mu, locked around fork() (base/fork.h) */
    tp_pool_options o;  /* immutable after create */
    bool adaptive;      /* o.adaptive was given: adapt_o holds its copy */
    tp_adapt_options adapt_o;
    tp_permit_hook permit_o; /* the copy of o.permits, when given (o.permits points here) */
    bool permit_ahead_held;  /* maintenance's open (warm-up, prewarm) waited for a permit:
                                tp_pool_permits_changed() makes the keys due again */
    _Atomic int64_t shed_pending; /* tp_pool_shed(): connections still to give back as
                                     their leases end (read by lock-free releases) */
    tp__mutex mu;
    _Atomic bool closed;

    /* keys (pool lock) */
    tp__key **buckets;
    size_t nbuckets; /* power of two */
    int64_t nkeys;
    tp__timers schedule; /* keys by due time (schedule.c); room for every key reserved */
    tp__key *graveyard; /* reclaimed keys, freed a grace period later: a lock-free
                           release may still read the key it just left */

    /* counts across keys (pool lock) */
    int64_t total;                 /* live + opening, all keys */
    int64_t linked_total;          /* idle-list entries, all keys */
    _Atomic int64_t waiters_total; /* queued acquires, all keys; read without the lock by
                                      releases when max_total can hold waiters back */

    tp__list waiting_keys; /* keys with queued waiters (max_total serves them on release) */
    tp__list async_queued; /* queued asynchronous acquires, for tp_acquire_cancel() */
    tp__list free_conns; /* closed connection structs kept for reuse: connection
                            memory stays valid while the pool lives, which is what
                            lets a thread hint be checked without a lock */
    struct tp__conn_slab *slabs; /* where connection structs live (lifecycle.c) */
    int64_t nconn_structs;       /* connection structs made, in slabs */
    uint64_t next_ticket;
    uint64_t next_key_id;
    tp__tenant *tenants;      /* pool lock (a list: tenants are few) */
    tp__retired retired;

    /* lifetime: the pool is freed when the caller has destroyed it and no lease, open
       or worker job still refers to it */
    bool destroyed;
    int64_t workers;        /* jobs of this pool queued or running on the workers (async
                               opens, maintenance opens and probes) */
    int64_t mjobs;          /* of which maintenance's: tp_pool_destroy waits for them */
    int64_t callbacks;      /* completion callbacks running outside the lock */
    pthread_cond_t idle_cv; /* signalled when workers or callbacks reach zero */

    /* scheduled maintenance (maintain.c): a timed job on the runtime's timer thread */
    tp__work mwork;
    bool mscheduled; /* mwork holds a place in the runtime's timer heap */
    bool mrunning;   /* a scheduled pass runs: it arms mwork again when done */
    bool mstop;      /* closed: mwork is not armed again */
    int64_t mdue;    /* when the next pass is due */
};

#endif
