/* pool_internal.h: the pool's data structures and the functions its files share.
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
 * Lost wake-ups between a lock-free release and a waiter that is queuing are ruled out
 * by the Dekker pattern: the waiter publishes nwaiters (seq_cst) and then rescans the
 * idle list under the lock; the releaser publishes IDLE (seq_cst CAS) and then reads
 * nwaiters. At least one of the two sees the other. */
#ifndef TP_CORE_POOL_INTERNAL_H
#define TP_CORE_POOL_INTERNAL_H

#include "base/base.h"
#include "base/hist.h"
#include "base/list.h"
#include "base/sync.h"
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

/* Statistics written by whoever holds the connection (or the pool lock, for a key). */
typedef struct tp__shard {
    _Atomic uint64_t acquires;      /* leases granted */
    _Atomic uint64_t reuses;        /* of which an idle connection was reused */
    _Atomic uint64_t fast_acquires; /* of which were granted without queuing */
    tp__hist hold;                  /* lease durations */
    tp__hist idle;                  /* idle time before reuse */
} tp__shard;

typedef struct tp__key tp__key;

struct tp_conn {
    _Atomic uint64_t word;        /* state word (see above) */
    tp_pool *pool;                /* the owning pool; fixed for the struct's life */
    tp__key *key;                 /* the key (set while live; pool lock) */
    void *user;                   /* the connector's connection */
    int64_t acquired_at;          /* holder-owned: start of the current lease */
    int64_t created_at;           /* when open() returned */
    int64_t expires_at;           /* jittered end of life; TP_DURATION_INFINITE if none */
    _Atomic int64_t idle_since;   /* set by the releaser before it publishes IDLE */
    _Atomic uint64_t uses;        /* leases served (holder-written) */
    _Atomic int64_t last_hold;    /* duration of the last finished lease; -1 before */
    _Atomic bool evict;           /* soft-evicted: close on release */
    tp__list idle_link;           /* in key->idle iff LINKED (pool lock) */
    tp__list all_link;            /* in key->conns while live, else on a free or close list */
    tp_close_reason close_reason; /* set when queued for closing */
    bool inherited;               /* a child process's copy of a lease its parent held
                                   (fork.c): forgotten by the pool, closed on release */
    struct tp__tenant *tenant;    /* the lease's tenant, if any (holder-owned) */
    uint32_t last_retrans;        /* TCP retransmissions at the last health sample */
    tp__shard st;                 /* this connection's share of the key's statistics */
};

/* A tenant: a quota on how many leases one client of the pool holds at once. Created by
 * tp_pool_tenant_set() and kept until the pool is freed, so leases may point at it. */
typedef struct tp__tenant {
    char name[64];
    _Atomic int64_t in_use;   /* leases held (and acquires past the quota check) */
    _Atomic int64_t max;      /* the quota; TP_UNLIMITED for none */
    _Atomic bool wait;        /* over quota: wait (true) or fail with TP_EQUOTA */
    _Atomic int64_t nwaiters; /* acquires waiting for the quota (read by releases) */
    _Atomic uint64_t acquires, rejects, waits;
    pthread_cond_t cv;        /* waiters, on the pool lock */
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
    tp_pool *pool;
    tp__key *key;
    int64_t enqueued_at;
    int64_t deadline; /* TP_DURATION_INFINITE for none */
    tp__grant grant;
    tp_conn *conn;   /* GRANT_CONN */
    tp_err err;      /* GRANT_FAIL */
    tp_errinfo info; /* GRANT_FAIL detail */
    bool woken;      /* signalled to rescan (no grant): do not signal twice */
    bool async;
    bool caller_opens; /* async: grant open slots (TP__GRANT_SLOT), do not open */
    /* blocking */
    pthread_cond_t cv;
    /* asynchronous */
    tp_acquire_cb cb;
    void *ud;
    uint64_t ticket;
    tp__list done_link; /* on a completion list after it left the queue */
    tp__work work;      /* its open, on a worker (tp__async_open_start) */
} tp__waiter;

struct tp__key {
    tp__key *hnext;    /* hash chain, or the graveyard list once reclaimed */
    int64_t buried_at; /* when it was reclaimed (graveyard only) */
    uint64_t hash;
    size_t keylen;
    unsigned char *bytes;         /* owned copy */
    tp__list idle;                /* linked connections, most recently released first */
    tp__list conns;               /* every live connection of the key */
    tp__list waiters;             /* FIFO of tp__waiter */
    int64_t nconns;               /* live connections (idle + in use + reserved) */
    int64_t nlinked;              /* connections in the idle list */
    int64_t opening;              /* opens in flight */
    int64_t prewarming;           /* of which prewarm opens: no lease waits on them, so
                                     the adaptive limit does not count them */
    _Atomic int64_t nwaiters;     /* length of waiters; read without the lock by releasers */
    int64_t pins;                 /* deferred work referring to this key: not reclaimable */
    int64_t last_active;          /* last acquire or release, for reclaiming empty keys */
    _Atomic int64_t idle_timeout; /* this key's idle timeout: the pool's, or lower when the
                                     server announced a shorter keep-alive */
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
    tp_errinfo last_err;   /* the last open error, for timeout messages */
    tp__list ev_link;      /* on a tp__after's breakers list while ev_pending */
    bool ev_pending;
    _Atomic int ev_state; /* the breaker state to report */

    /* statistics (pool lock), plus the shards of closed connections folded in */
    tp__shard st;
    _Atomic uint64_t waits, opens, open_failures, timeouts, rejects_busy, rejects_breaker,
        checks_failed, prewarms;
    _Atomic uint64_t closes[TP_CLOSE__COUNT];
    tp__hist wait_hist;
    tp__hist open_hist;
};

/* Totals of keys that were reclaimed, so pool-wide counters never go backwards. */
typedef struct tp__retired {
    uint64_t acquires, reuses, fast_acquires, waits, opens, open_failures, timeouts, rejects_busy,
        rejects_breaker, checks_failed, prewarms;
    uint64_t closes[TP_CLOSE__COUNT];
    tp_histogram hold, idle, wait, open;
} tp__retired;

struct tp_pool {
    uint64_t id;        /* unique per pool in the process: validates thread hints */
    _Atomic unsigned fork_gen; /* tp__fork_generation when the pool last looked */
    tp__list fork_link; /* in fork.c's registry */
    tp_pool_options o;  /* immutable after create */
    bool adaptive;      /* o.adaptive was given: adapt_o holds its copy */
    tp_adapt_options adapt_o;
    tp__mutex mu;
    _Atomic bool closed;

    /* keys (pool lock) */
    tp__key **buckets;
    size_t nbuckets; /* power of two */
    int64_t nkeys;
    tp__key *graveyard; /* reclaimed keys, freed a grace period later: a lock-free
                           release may still read the key it just left */

    /* counts across keys (pool lock) */
    int64_t total;                 /* live + opening, all keys */
    int64_t linked_total;          /* idle-list entries, all keys */
    _Atomic int64_t waiters_total; /* queued acquires, all keys; read without the lock by
                                      releases when max_total can hold waiters back */

    tp__list free_conns; /* closed connection structs kept for reuse: connection
                            memory stays valid while the pool lives, which is what
                            lets a thread hint be checked without a lock */
    uint64_t next_ticket;
    tp__tenant *tenants;      /* pool lock (a list: tenants are few) */
    tp__retired retired;

    /* lifetime: the pool is freed when the caller has destroyed it and no lease, open
       or pool-owned thread still refers to it */
    bool destroyed;
    int64_t workers;        /* pool-owned open threads running */
    int64_t callbacks;      /* completion callbacks running outside the lock */
    pthread_cond_t idle_cv; /* signalled when workers or callbacks reach zero */

    /* maintenance thread */
    bool mthread;
    bool mstop;
    pthread_t mthread_id;
    pthread_cond_t mcv;
    int64_t mdue; /* when the thread should next run */
};

/* ---- keys.c ------------------------------------------------------------------------ */

/* tp__key_find_locked: the key with these bytes, or NULL. */
tp__key *tp__key_find_locked(tp_pool *p, const void *key, size_t keylen, uint64_t hash);
/* tp__key_get_locked: finds or creates the key. NULL with *err TP_ENOMEM or TP_ELIMIT. */
tp__key *tp__key_get_locked(tp_pool *p, const void *key, size_t keylen, uint64_t hash, tp_err *err);
/* tp__key_hash: the hash of a key's bytes. */
uint64_t tp__key_hash(const void *key, size_t keylen);
/* tp__key_reclaim_locked: retires keys that are empty and unused since before cutoff,
 * and frees those retired before cutoff. */
void tp__key_reclaim_locked(tp_pool *p, int64_t cutoff);
/* tp__key_free: frees a key that nothing refers to any more (table, graveyard, pins). */
void tp__key_free(tp__key *key);

/* ---- after.c ------------------------------------------------------------------------ */

/* Work collected under the lock and finished after it is released: connector closes,
 * trace events, callbacks of completed asynchronous waiters, wake-ups. */
typedef struct tp__after {
    tp__list closes;   /* tp_conn via all_link, close_reason set, key pinned */
    tp__list done;     /* async tp__waiter via done_link (granted or failed) */
    tp__list opens;    /* async tp__waiter granted an open slot, to start a worker */
    tp__list breakers; /* tp__key via ev_link: breaker changes to report */
} tp__after;

/* tp__after_breaker_event: queues a TP_TRACE_BREAKER event for key (pinned until sent). */
void tp__after_breaker_event(tp__after *a, tp__key *key, tp_breaker_state s);

void tp__after_init(tp__after *a);
/* tp__after_run: called with the lock held; releases it, runs the deferred work, and
 * returns with the lock released. */
void tp__after_run(tp_pool *p, tp__after *a);

/* ---- pool.c ------------------------------------------------------------------------ */

/* tp__conn_close_locked: takes a live connection out of its key (unlinking it, counting
 * the close) and queues connector close() on a. The caller owns the connection (it is
 * IN_USE or RESERVED, or was just claimed). */
void tp__conn_close_locked(tp_pool *p, tp_conn *c, tp_close_reason reason, tp__after *a);

/* tp__conn_new_locked: a connection struct from the free list or the allocator, in state
 * FREE, not in any list. NULL on allocation failure. */
tp_conn *tp__conn_new_locked(tp_pool *p);
/* tp__conn_recycle_locked: returns a struct taken by tp__conn_new_locked() unused. */
void tp__conn_recycle_locked(tp_pool *p, tp_conn *c);
/* tp__conn_attach_locked: makes c a live, IN_USE connection of key (after open()). */
void tp__conn_attach_locked(tp_pool *p, tp__key *key, tp_conn *c, void *user, int64_t now);

/* tp__capacity_freed_locked: a connection of key closed or an open failed: grant open
 * slots to waiters that can now open (this key first, then others blocked on
 * max_total). */
void tp__capacity_freed_locked(tp_pool *p, tp__key *key, tp__after *a);

/* tp__maybe_free_locked: frees the pool if it is destroyed and nothing refers to it.
 * Returns true if it did (the lock is gone with it). */
bool tp__maybe_free_locked(tp_pool *p);

/* tp__emit: calls the trace hook, if any (never under the lock). */
void tp__emit(tp_pool *p, tp_trace_event *ev);

/* ---- acquire.c --------------------------------------------------------------------- */

/* tp__waiter_grant_conn_locked: hands c (IN_USE, unlinked) to queued waiter w. */
void tp__waiter_grant_conn_locked(tp_pool *p, tp__waiter *w, tp_conn *c, tp__after *a);
/* tp__waiter_fail_locked: dequeues w and completes it with err. */
void tp__waiter_fail_locked(tp_pool *p, tp__waiter *w, tp_err err, const char *msg, tp__after *a);
/* tp__waiter_grant_open_locked: reserves an open slot for w and dequeues it. */
void tp__waiter_grant_open_locked(tp_pool *p, tp__waiter *w, tp__after *a);
/* tp__open_slot_locked: opens a connection for key in the calling thread. Called with
 * the lock held and an open slot reserved (opening and total counted; prewarm: also
 * counted in prewarming); the lock is released around connector open(). Returns with the
 * lock held and the slot consumed: on success *out is a live IN_USE connection of key
 * (not yet leased). */
tp_err tp__open_slot_locked(tp_pool *p, tp__key *key, int64_t deadline, bool prewarm,
                            tp_conn **out, tp_errinfo *err, tp__after *a);
/* tp__slot_new_locked (slot.c): the struct handed to a caller that opens its own
 * connection: not yet live, bound to key (pinned), remembering when the open started.
 * The open slot itself (opening, total) must already be reserved. NULL when out of
 * memory (the reservation is the caller's to give back). */
tp_conn *tp__slot_new_locked(tp_pool *p, tp__key *key);
/* tp__slot_release_locked: gives back an open slot reserved by tp__open_allowed_locked()
 * that will not be used, and lets waiters have it. */
void tp__slot_release_locked(tp_pool *p, tp__key *key, tp__after *a);
/* tp__release_to_idle_locked: puts an owned, IN_USE connection into its key's idle
 * list (or hands it to a waiter, or closes it when the idle limits are full). */
void tp__release_to_idle_locked(tp_pool *p, tp_conn *c, tp__after *a);
/* tp__async_open_start: queues the open of a connection for w on a worker (or fails w
 * with TP_EBUSY / TP_ESYS when no worker takes it). */
void tp__async_open_start(tp_pool *p, tp__waiter *w);
/* tp__idle_take_locked: claims the most recently used idle connection of key (IN_USE,
 * unlinked), dropping stale links on the way; NULL if none. */
tp_conn *tp__idle_take_locked(tp_pool *p, tp__key *key);
/* tp__idle_pick_locked: the most (newest) or least recently released IDLE connection
 * of key other than except, unclaimed; drops stale links on the way. NULL if none. */
tp_conn *tp__idle_pick_locked(tp_pool *p, tp__key *key, bool newest, const tp_conn *except);
/* tp__idle_claim_locked: claims an IDLE connection as TP__CS_INUSE (unlinked) or
 * TP__CS_RESERVED (to be closed); false if a thread hint took it first. */
bool tp__idle_claim_locked(tp_pool *p, tp_conn *c, int state);
/* tp__idle_pool_lru_locked: the pool's least recently released idle connection, of any
 * key but except_key and other than except (both may be NULL); unclaimed. */
tp_conn *tp__idle_pool_lru_locked(tp_pool *p, const tp__key *except_key, const tp_conn *except);
/* tp__idle_take_lru_locked: claims the least recently released idle connection of key
 * (IN_USE, unlinked); NULL if none. */
tp_conn *tp__idle_take_lru_locked(tp_pool *p, tp__key *key);
/* tp__unlink_locked: removes c from its key's idle list (c's LINKED bit is cleared by
 * the caller's CAS). */
void tp__unlink_locked(tp_pool *p, tp_conn *c);

/* ---- breaker.c --------------------------------------------------------------------- */

typedef enum tp__open_verdict {
    TP__OPEN_OK = 0,      /* open now */
    TP__OPEN_WAIT = 1,    /* limits, a failing key's one open in flight, or its backoff:
                             wait (until *until, if finite) */
    TP__OPEN_BREAKER = 2, /* breaker open: no open now (the next trial at *until, if finite);
                             fail fast unless the key holds a connection to wait for */
} tp__open_verdict;

/* tp__open_allowed_locked: may an open for key start now? ahead: an open that no
 * request waits on (maintenance's). Considers the breaker, a failing key's pacing (one
 * open at a time, after the backoff; made by maintenance, not by a request, when the key
 * is short of room and holds connections) and the limits (max_per_key, max_total,
 * evicting an idle connection of another key onto a when only max_total is in the way).
 * On TP__OPEN_OK the slot is reserved (opening and total counted) and, in HALF_OPEN,
 * this open is the trial. */
tp__open_verdict tp__open_allowed_locked(tp_pool *p, tp__key *key, int64_t now, bool ahead,
                                         int64_t *until, tp__after *a);

/* tp__open_slot_unused_locked: a reserved slot goes back unused (tp__slot_release_locked):
 * a failing key's paced open, or a half-open key's trial, may be granted again. */
void tp__open_slot_unused_locked(tp__key *key);

/* What a failed open says about its destination. */
typedef enum tp__open_failure {
    TP__FAIL_DESTINATION = 0, /* the destination failed: counts for the breaker */
    TP__FAIL_TRANSIENT = 1,   /* likewise, but of the kind a restart causes (refused,
                                 starting up...): worth waiting through */
    TP__FAIL_CAPACITY = 2,    /* the server answered but has no room (TP_ESERVERFULL) */
    TP__FAIL_LOCAL = 3,       /* our own shortage (descriptors, ports, memory): says nothing
                                 about the destination */
} tp__open_failure;

/* tp__open_failure_kind: the kind of a failed open's error code. */
tp__open_failure tp__open_failure_kind(tp_err rc);
/* tp__open_done_locked: accounts the end of an open that started at started (rc its
 * outcome, info its detail or NULL): success ends the failing streak and closes the
 * breaker (serving waiters it held back); a failure that started after the key's last
 * counted outcome extends the streak, its backoff and the breaker's count. The caller
 * has already given back the slot's "opening" count. */
void tp__open_done_locked(tp_pool *p, tp__key *key, tp_err rc, const tp_errinfo *info,
                          int64_t started, tp__after *a);
/* tp__open_failure_waits_locked: after the caller's own open failed with rc (accounted by
 * tp__open_done_locked()), should the acquire wait again (within its deadline) instead of
 * failing? True for a restart's errors from a destination the key has reached before
 * while the breaker stays closed, and for a lack of room (server full, no descriptor)
 * when the key holds connections that will come back. */
bool tp__open_failure_waits_locked(tp_pool *p, tp__key *key, tp_err rc);
/* tp__room_freed_locked: a connection of key closed. If the key is failing for lack of
 * room (server full, no descriptor), its next open need not wait out the backoff: the
 * room it lacked may be there now (and if the server has restarted, that is learnt at
 * once rather than after a long capacity backoff). */
void tp__room_freed_locked(tp__key *key);
/* tp__breaker_fails_fast_locked: with the breaker in the way of an open, must an acquire
 * fail now? Only when the key holds no connection that a release could hand over. */
bool tp__breaker_fails_fast_locked(const tp__key *key);
/* tp__breaker_error_locked: counts a breaker rejection of key and fills err with
 * TP_EBREAKER: how long opens have failed, when the next trial is, the last open error. */
tp_err tp__breaker_error_locked(tp_pool *p, tp__key *key, tp_errinfo *err);
/* tp__breaker_probe_due_locked: true if maintenance should run key's probe now (the
 * breaker's cool-down is over and the connector has probe()); marks the trial. */
bool tp__breaker_probe_due_locked(tp_pool *p, tp__key *key, int64_t now, tp__after *a);
/* tp__probe_done_locked: the probe's outcome closes the breaker or reopens it longer. */
void tp__probe_done_locked(tp_pool *p, tp__key *key, tp_err rc, const tp_errinfo *info,
                           tp__after *a);

/* ---- adapt_pool.c: the adaptive limit applied to keys ---------------------------------- */

/* tp__adapt_key_init_locked: gives key its controller (adaptive pools). TP_ENOMEM. */
tp_err tp__adapt_key_init_locked(tp_pool *p, tp__key *key);
void tp__adapt_key_free(tp__key *key);
/* tp__key_inflight_locked: what the adaptive limit counts: leases (connections neither
 * idle nor linked) and opens a lease waits on (not prewarm opens). */
static inline int64_t tp__key_inflight_locked(const tp__key *key)
{
    return key->nconns - key->nlinked + key->opening - key->prewarming;
}
/* tp__key_admits_locked: may key start another lease or open now? Always true without
 * the adaptive limit; with it, leases + opening must stay under the limit. */
bool tp__key_admits_locked(tp_pool *p, tp__key *key);
/* tp__adapt_release_locked: a lease of key that lasted hold ended (dropped: the caller
 * reported a capacity failure): feeds the controller. True if the limit grew: the caller
 * then serves the waiters the larger limit admits, not only the one its lease frees. */
bool tp__adapt_release_locked(tp_pool *p, tp__key *key, int64_t hold, bool dropped, int64_t now);
/* tp__adapt_drop_locked: an open failed: a drop for the controller. */
void tp__adapt_drop_locked(tp_pool *p, tp__key *key, int64_t duration, int64_t now);
/* tp__adapt_ports_exhausted_locked: an open of key failed with TP_EPORTS: no port is
 * left for this destination, so the key's limit is capped at the connections it holds
 * for one TIME_WAIT period (the time its closed connections keep their ports). */
void tp__adapt_ports_exhausted_locked(tp_pool *p, tp__key *key, int64_t now);
/* tp__adapt_tick_locked: maintenance's tick (lifts an expired port cap); true if the
 * limit grew. */
bool tp__adapt_tick_locked(tp_pool *p, tp__key *key, int64_t now);

/* ---- health.c ----------------------------------------------------------------------- */

/* tp__health_on_release: samples an owned connection's TCP state (every 32nd lease) and
 * says whether to retire it. Outside the lock. */
bool tp__health_on_release(tp_pool *p, tp_conn *c);
/* tp__health_pass: maintenance's health check of key's idle connections: claims them
 * under the lock, samples them outside it, closes the sick ones. Called and returns
 * with the lock held (releases it in between); a is the caller's deferred work. */
void tp__health_pass_locked(tp_pool *p, tp__key *k, int64_t now, tp__after *a);

/* ---- tenant.c ----------------------------------------------------------------------- */

/* tp__tenant_release: a lease of tenant t ended: gives its place back and wakes a
 * waiter if any (no lock needed unless someone waits). */
void tp__tenant_release(tp_pool *p, tp__tenant *t);
/* tp__tenants_close_locked: wakes every tenant waiter (the pool is closing). */
void tp__tenants_close_locked(tp_pool *p);
/* tp__tenants_free_locked: frees every tenant (the pool is being freed). */
void tp__tenants_free_locked(tp_pool *p);

/* ---- stats.c ----------------------------------------------------------------------- */
void tp__shard_fold(tp_stats *st, const tp__shard *sh);
void tp__shard_merge(tp__shard *dst, const tp__shard *src);

/* tp__lease_begin_async: starts the lease of a connection granted to an async waiter
 * (statistics, trace), outside the lock, before its callback runs. */
void tp__lease_begin_async(tp_pool *p, tp_conn *c, int64_t waited);

/* ---- fork.c ------------------------------------------------------------------------ */

/* Bumped in every child process fork() makes (see fork.c). */
extern _Atomic unsigned tp__fork_generation;
/* tp__fork_register / unregister: the pool enters (at create) or leaves (at free) the
 * registry whose fork handlers lock every pool around fork(). */
void tp__fork_register(tp_pool *p);
void tp__fork_unregister(tp_pool *p);
/* tp__pool_forked: in a child process, the pool's first look at itself: forgets what
 * the parent's threads held and closes the inherited idle connections. */
void tp__pool_forked(tp_pool *p);
/* tp__fork_check: runs tp__pool_forked() when the process forked since p last looked.
 * One relaxed load on the way of every call. */
static inline void tp__fork_check(tp_pool *p)
{
    if (TP__UNLIKELY(atomic_load_explicit(&p->fork_gen, memory_order_relaxed) !=
                     atomic_load_explicit(&tp__fork_generation, memory_order_relaxed)))
        tp__pool_forked(p);
}
/* tp__fork_neutralize: points an inherited connection's socket at /dev/null, so that
 * closing it says nothing to the peer. False if it has no socket the pool can see (do
 * not close it then: forget it). */
bool tp__fork_neutralize(tp_pool *p, tp_conn *c);
/* tp__conn_abandon: ends an inherited lease released in the child (outside the lock). */
void tp__conn_abandon(tp_pool *p, tp_conn *c);

/* ---- maintain.c -------------------------------------------------------------------- */
void *tp__maintenance_main(void *arg);
/* tp__maintenance_poke_locked: wakes the maintenance thread early if due before t. */
void tp__maintenance_poke_locked(tp_pool *p, int64_t t);

/* ---- hint.c, lease.c, waiters.c: shared by the forms of acquire --------------------- */

/* tp__hint_set: remembers c (generation gen) as this thread's last released connection. */
void tp__hint_set(tp_pool *p, tp_conn *c, uint64_t gen);
/* tp__hint_claim: claims this thread's hinted connection if it is idle and of this key
 * (no lock); NULL otherwise. */
tp_conn *tp__hint_claim(tp_pool *p, const void *key, size_t keylen);
/* tp__fast_acquire: the lock-free attempt every acquire makes first: the hinted
 * connection, checked and leased; NULL if it cannot be had. */
tp_conn *tp__fast_acquire(tp_pool *p, const void *key, size_t keylen);
/* tp__acquire_check_args: TP_EINVAL for a NULL pool or out, or NULL key with keylen. */
tp_err tp__acquire_check_args(tp_pool *p, const void *key, size_t keylen, tp_conn **out,
                              tp_errinfo *err);
/* tp__lease_begin: records the start of a lease of c (owned, outside the lock):
 * statistics, uses, the ACQUIRE trace event. */
void tp__lease_begin(tp_pool *p, tp_conn *c, int64_t now, bool reused, bool fast, int64_t waited);
/* tp__reuse_verdict: TP_CLOSE__COUNT if the claimed idle connection c may be handed out
 * (lifetime, idle timeout, eviction, check() when idle long enough), else the reason to
 * close it. Outside the lock (check() may run). */
tp_close_reason tp__reuse_verdict(tp_pool *p, tp_conn *c, int64_t now);
/* tp__close_claimed: closes a claimed connection that failed tp__reuse_verdict(). */
void tp__close_claimed(tp_pool *p, tp_conn *c, tp_close_reason reason);
/* tp__waiter_dequeue_locked: takes w out of its key's queue. */
void tp__waiter_dequeue_locked(tp_pool *p, tp__waiter *w);
/* tp__timeout_error_locked: fills err with why an acquire for k timed out (what is in
 * use, who waits, the last open error) and returns TP_ETIMEDOUT. */
tp_err tp__timeout_error_locked(tp_pool *p, tp__key *k, int64_t waited, tp_errinfo *err);

#endif
