/* tidepool/fleet.h: one connection budget shared by every instance of a service, kept on
 * Redis.
 *
 * A service runs many instances, each with its own pool, all against one database whose
 * max_connections is finite. A fleet budget is a named cap on the connections that all of
 * them hold together. Each instance's pool asks the budget for a permit before it opens a
 * connection and gives it back when the connection closes (tp_permit_hook, tidepool/
 * pool.h); leases cost nothing, only opens and closes are coordinated.
 *
 * On Redis, under one hash tag per budget ("{tp:fleet:NAME}", so Redis Cluster keeps
 * them on one node), a few keys hold the state: the cap and when the state was (re)born,
 * what each instance holds, each instance's lease expiry and each instance's demand.
 * Every change is made by a Lua script that takes the time from the server (TIME), never
 * from a client clock.
 *
 * Each instance heartbeats (every heartbeat, jittered) with what it holds and how much
 * it wants (connections in use, opening, and acquires waiting); a lease lapses when
 * heartbeats stop, and the lapsed instance's permits return to the others. Shares are
 * fair by demand (max-min: no instance gets more than it wants, the rest is split evenly
 * among those that want more). Permits go out only while the budget has room, and beyond
 * an instance's share only while nobody else wants more; an instance above its share
 * while others want gives back (tp_pool_shed: idle connections at once, then busy ones
 * as their leases end) and keeps no permit above it. A process stopped past its lease
 * (SIGSTOP, a long pause) opens nothing until a heartbeat has re-asserted it. Its
 * connections stayed open meanwhile: with still_open (reconciliation with the server,
 * below) its lapsed permits are held back while they do; without, the others' use of
 * them overshoots the cap by at most what it held, until it resumes.
 *
 * Redis restarted empty, or failed over: the first script to find the state gone
 * rebirths it, and for a grace of 1.5 heartbeats grants nothing while every live
 * instance re-asserts what it holds; then grants resume on the rebuilt state. (A budget
 * created by an instance's very first heartbeat has no grace: nobody held anything.) Redis
 * unreachable: an instance keeps what it holds and opens at most its last known share
 * (degraded, counted), or fails open (no limit) or closed (no opens) if configured.
 *
 * Threads: every function is thread-safe. A fleet runs one thread of its own for Redis
 * (heartbeats, asking for permits when its pool waits, giving back what closed); the
 * permit hook itself is a counter and never waits on Redis. Redis commands: one heartbeat
 * per interval (0.5/s by default); an open beyond the allowance costs one ACQUIRE (more,
 * 10 ms doubling to 200 ms apart, while Redis has none to give and the instance is below
 * its share); a close, one RELEASE unless a waiter takes the permit. Not usable across
 * fork(): create one in the child. */
#ifndef TIDEPOOL_FLEET_H
#define TIDEPOOL_FLEET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "errors.h"
#include "pool.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tp_fleet tp_fleet;

/* When Redis cannot be reached (after start). */
typedef enum tp_fleet_unreachable {
    TP_FLEET_DEGRADED = 0,    /* keep what is held, open up to the last known share */
    TP_FLEET_FAIL_OPEN = 1,   /* open without permits (the server's own limit decides) */
    TP_FLEET_FAIL_CLOSED = 2, /* open nothing (TP_ENOPERMIT when nothing can be waited for) */
} tp_fleet_unreachable;

#define TP_FLEET_OPTIONS_VERSION 1
#define TP_FLEET_NAME_MAX 64     /* bytes of a budget's name */
#define TP_FLEET_INSTANCE_MAX 96 /* bytes of an instance's name */

/* tp_fleet_options: fill with tp_fleet_options_init(), then set redis_url, name, cap. */
typedef struct tp_fleet_options {
    unsigned version;         /* TP_FLEET_OPTIONS_VERSION */
    const char *redis_url;    /* required: redis://[[user]:password@]host[:port][/db] */
    const char *name;         /* required: 1..TP_FLEET_NAME_MAX bytes of [A-Za-z0-9_.:-] */
    int64_t cap;              /* required, > 0: connections the whole fleet may hold. The
                                 cap an instance brings is written at every heartbeat: the
                                 last one to change it wins (tidepool fleet status shows
                                 it) */
    const char *instance;     /* this instance's name: 1..TP_FLEET_INSTANCE_MAX bytes of
                                 [A-Za-z0-9_.:/-], unique in the budget. NULL:
                                 "HOST/PID/RANDOM" */
    int64_t heartbeat;        /* between heartbeats. 2 s */
    double heartbeat_jitter;  /* each interval shortened by up to this fraction. 0.2 */
    int64_t lease;            /* a silent instance's permits lapse after this. 10 s; more
                                 than 2 heartbeats */
    int64_t redis_timeout;    /* bound on one Redis round trip (connect included). 1 s */
    tp_fleet_unreachable unreachable; /* TP_FLEET_DEGRADED */

    /* Optional reconciliation with the server. A lapsed instance (dead, stopped,
     * partitioned) may still have connections open on the server: a partitioned client's
     * PostgreSQL backends stay until TCP keepalive notices, hours by default. With
     * still_open set, a lapsed instance's permits are held back (still counted against
     * the cap) until an instance asks still_open how many connections the server still
     * has for it and the answer is 0 (shrinking as they go). Called on the fleet's
     * thread, outside every lock, for at most 8 lapsed instances per heartbeat; -1: cannot
     * tell (kept). For PostgreSQL: tp_pg_fleet_backends with ud a conninfo, and every
     * connection's application_name "tidepool/INSTANCE". */
    int64_t (*still_open)(void *ud, const char *instance);
    void *still_open_ud;
} tp_fleet_options;

TP_EXTERN void tp_fleet_options_init(tp_fleet_options *o);

/* tp_fleet_create: validates o, connects to Redis, loads the scripts and registers this
 * instance (its first heartbeat, holding 0), then starts its thread.
 * Errors: TP_EINVAL (a field: missing URL or name, a name too long or with other bytes,
 * cap <= 0, lease <= 2 heartbeats...; err names it), TP_EUNAVAIL (Redis unreachable, or
 * it refused the scripts: err says what it said), TP_ENOMEM, TP_ESYS. On failure *out is
 * NULL. The options are copied. */
TP_EXTERN tp_err tp_fleet_create(const tp_fleet_options *o, tp_fleet **out, tp_errinfo *err)
    TP_WARN_UNUSED;

/* tp_fleet_hook: the permit hook to put in tp_pool_options.permits of the pool this
 * budget serves (valid as long as the fleet). */
TP_EXTERN const tp_permit_hook *tp_fleet_hook(tp_fleet *f);

/* tp_fleet_attach: a pool (created with tp_fleet_hook) whose demand the fleet reports
 * (its in-use, opening and waiting counts), which it wakes when permits come
 * (tp_pool_permits_changed) and whose connections it sheds above its share
 * (tp_pool_shed). Up to 4 pools (an HTTP client has two: tp_http_client_pool and
 * tp_http_client_h2_pool), each once, before it is used; each must be destroyed before
 * the fleet. Errors: TP_EINVAL (NULL), TP_ESTATE (already attached, or 4 already). */
TP_EXTERN tp_err tp_fleet_attach(tp_fleet *f, tp_pool *p);

/* tp_fleet_destroy: stops the thread and removes this instance from the budget (its
 * permits return at once rather than at its lease's end). Destroy the pool first. NULL
 * is a no-op. */
TP_EXTERN void tp_fleet_destroy(tp_fleet *f);

/* tp_fleet_stats: this instance's view, as of its last round trip. */
typedef struct tp_fleet_stats {
    int64_t cap;             /* the budget's cap in force */
    int64_t held;            /* permits this instance holds (its open and opening
                                connections) */
    int64_t share;           /* its fair share of the cap now */
    int64_t demand;          /* what it reported wanting */
    int64_t fleet_held;      /* permits held by all instances */
    int64_t instances;       /* instances with a live lease */
    bool degraded;           /* Redis unreachable now */
    int64_t degraded_ns;     /* time spent unreachable, in all */
    uint64_t permit_waits;   /* opens that had to wait for a permit */
    uint64_t grants;         /* permits Redis granted this instance */
    uint64_t sheds;          /* idle connections given back above the share */
    uint64_t heartbeats;     /* heartbeats that reached Redis */
    uint64_t rebirths;       /* times this instance found the state gone and re-asserted */
    uint64_t redis_commands; /* round trips made */
    uint64_t redis_errors;   /* round trips that failed */
} tp_fleet_stats;

TP_EXTERN void tp_fleet_stats_get(tp_fleet *f, tp_fleet_stats *out);

/* tp_fleet_name / tp_fleet_instance: the budget's and this instance's names. */
TP_EXTERN const char *tp_fleet_name(const tp_fleet *f);
TP_EXTERN const char *tp_fleet_instance(const tp_fleet *f);

/* One instance of a budget, as Redis has it (tp_fleet_status). */
typedef struct tp_fleet_member {
    char instance[TP_FLEET_INSTANCE_MAX + 1];
    int64_t held;     /* permits it holds */
    int64_t share;    /* its fair share now */
    int64_t demand;   /* what it last reported wanting */
    int64_t lease_ns; /* until its lease lapses; -1: lapsed, its permits held back until
                         its connections are gone (still_open) */
    int64_t age_ns;   /* since its last heartbeat (-1 for one held back) */
} tp_fleet_member;

/* tp_fleet_status: reads budget name on the Redis at redis_url (no instance is created):
 * its cap in *cap, up to max members in out (sorted by instance name), their number in
 * *n (which may exceed max). Errors: TP_EINVAL, TP_EUNAVAIL (Redis), TP_ESTATE (no such
 * budget). */
TP_EXTERN tp_err tp_fleet_status(const char *redis_url, const char *name, int64_t *cap,
                                 tp_fleet_member *out, size_t max, size_t *n,
                                 tp_errinfo *err) TP_WARN_UNUSED;

#ifdef __cplusplus
}
#endif
#endif
