/* fleet_internal.h: what the files of the fleet budget share (internal, never installed):
 * the fleet's state, the Lua scripts, the Redis round trips, the permit hook and the
 * fleet's thread. Only with hiredis.
 *
 * Who touches what. The hook (hook.c) runs under the pools' locks: it only reads and
 * CASes the atomics below and signals the thread (mu is never held across I/O, and the
 * thread never calls into a pool while it holds mu, so the order pool lock -> mu is the
 * only one). The thread (thread.c) owns the Redis context and is the only writer of
 * allowance upwards. */
#ifndef TP_FLEET_INTERNAL_H
#define TP_FLEET_INTERNAL_H

#ifdef TIDEPOOL_HAVE_HIREDIS

#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "tidepool/fleet.h"

#define TP__FLEET_POOLS_MAX 4
#define TP__FLEET_KEY_MAX (TP_FLEET_NAME_MAX + 32)

/* The scripts, by index (scripts.c). */
enum {
    TP__FLEET_HEARTBEAT,
    TP__FLEET_ACQUIRE,
    TP__FLEET_RELEASE,
    TP__FLEET_LEAVE,
    TP__FLEET_RECONCILE,
    TP__FLEET_STATUS,
    TP__FLEET_SCRIPTS
};

/* Where Redis is (the parsed URL). */
typedef struct tp__fleet_redis {
    char host[256];
    int port;
    long db;
    char user[512];
    char password[512];
    bool has_password;
    char keys[6][TP__FLEET_KEY_MAX]; /* meta, held, lease, demand, seen, lapsed */
    char sha[TP__FLEET_SCRIPTS][41]; /* SCRIPT LOAD's digests; "" before */
    redisContext *c;                 /* NULL: not connected */
    int64_t timeout;
} tp__fleet_redis;

struct tp_fleet {
    tp_fleet_options o; /* strings point into the copies below */
    char url[512];
    char name[TP_FLEET_NAME_MAX + 1];
    char instance[TP_FLEET_INSTANCE_MAX + 1];
    tp__fleet_redis r; /* the thread's (and create's, destroy's) */
    tp_permit_hook hook;

    /* permits: allowance is what Redis granted us, held what the pools hold of it */
    _Atomic int64_t allowance;
    _Atomic int64_t held;
    _Atomic int64_t share;       /* the last known share (degraded mode's ceiling) */
    _Atomic int64_t ceiling;     /* while others want more: the share, which this instance
                                    neither opens nor keeps permits beyond; else INT64_MAX */
    atomic_bool degraded;        /* Redis unreachable */
    _Atomic int64_t fresh_until; /* monotonic: the lease is surely ours until then; past it
                                    (a process stopped longer than its lease) the hook
                                    grants nothing until a heartbeat re-asserts us */
    atomic_bool wanted;          /* a take() waited since the thread last asked Redis */

    /* counters (tp_fleet_stats) */
    _Atomic uint64_t permit_waits, grants, sheds, heartbeats, rebirths, commands, errors;
    _Atomic int64_t degraded_ns, degraded_since;
    _Atomic int64_t cap, demand, fleet_held, instances;

    /* the thread */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool kick, stop, paused; /* paused: tests only (tp__fleet_pause) */
    tp_pool *pools[TP__FLEET_POOLS_MAX];
    int npools;
    int calling;         /* the thread is inside a call on the pools (pool_gone waits) */
    pthread_cond_t idle; /* calling went to 0 */
    pthread_t thread;
    bool started;
};

/* scripts.c: the Lua text of script i. */
const char *tp__fleet_script(int i);

/* redis_io.c: connecting (AUTH, SELECT, SCRIPT LOAD) and running a script. */
tp_err tp__fleet_connect(tp__fleet_redis *r, tp_errinfo *err);
void tp__fleet_disconnect(tp__fleet_redis *r);
/* tp__fleet_eval: runs script i with the budget's keys and argv (argc strings); TP_OK
 * with an array reply in *out (freeReplyObject it), or TP_EUNAVAIL (connection lost or
 * timed out: the context is dropped) / TP_EPROTO (an error reply). Reloads the script
 * once on NOSCRIPT (a restarted Redis). */
tp_err tp__fleet_eval(tp__fleet_redis *r, int i, int argc, const char **argv, redisReply **out,
                      tp_errinfo *err);
/* tp__fleet_int: element k of an array reply as an integer (0 if absent). */
int64_t tp__fleet_int(const redisReply *a, size_t k);
/* tp__fleet_parse_url: host, port, credentials, db from url into r; r's keys for name. */
tp_err tp__fleet_parse_url(tp__fleet_redis *r, const char *url, const char *name, tp_errinfo *err);

/* hook.c: the permit hook of f. */
void tp__fleet_hook_init(tp_fleet *f);
/* tp__fleet_pools_hold / _release: the pools the thread may call until it releases them
 * (a pool being destroyed waits for that); returns how many, copied into pools. */
int tp__fleet_pools_hold(tp_fleet *f, tp_pool **pools);
void tp__fleet_pools_release(tp_fleet *f);

/* tp__fleet_kick: wakes the thread (any thread; takes mu briefly). */
void tp__fleet_kick(tp_fleet *f);

/* thread.c: the thread's body, and its first heartbeat (create's, before it starts). */
void *tp__fleet_thread(void *arg);
tp_err tp__fleet_heartbeat(tp_fleet *f, tp_errinfo *err);
/* tp__fleet_pause: tests only: stop (true) or resume the thread's Redis work, as a
 * process stopped by SIGSTOP would. */
void tp__fleet_pause(tp_fleet *f, bool paused);

#endif
#endif
