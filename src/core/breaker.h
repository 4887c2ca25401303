/* core/breaker.h: what breaker.c defines for the other files of the pool: may an open
 * start, and what a finished open means (pacing, the breaker). The data structures are
 * in types.h. */
#ifndef TP_CORE_BREAKER_H
#define TP_CORE_BREAKER_H

#include "types.h"
#include "after.h"

typedef enum tp__open_verdict {
    TP__OPEN_OK = 0,      /* open now */
    TP__OPEN_WAIT = 1,    /* limits, a failing key's one open in flight, or its backoff:
                             wait (until *until, if finite) */
    TP__OPEN_BREAKER = 2, /* breaker open: no open now (the next trial at *until, if finite);
                             fail fast unless the key holds a connection to wait for */
    TP__OPEN_NOPERMIT = 3, /* the permit hook refused: fail fast unless the key holds a
                              connection to wait for (a wait for a permit is OPEN_WAIT) */
} tp__open_verdict;

/* tp__open_allowed_locked: may an open for key start now? ahead: an open that no
 * request waits on (maintenance's). Considers the breaker, a failing key's pacing (one
 * open at a time, after the backoff; made by maintenance, not by a request, when the key
 * is short of room and holds connections) and the limits (max_per_key, max_total,
 * evicting an idle connection of another key onto a when only max_total is in the way),
 * then the permit hook (permit.c), last, so a permit is only taken for an open that
 * goes ahead. On TP__OPEN_OK the slot is reserved (opening and total counted, a permit
 * held) and, in HALF_OPEN, this open is the trial. */
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

/* tp__key_last_open_error: the message of key's last failed open, for the messages of
 * timeouts and breaker rejections; "" if none. */
const char *tp__key_last_open_error(const tp__key *key);

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

#endif
