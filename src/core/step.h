/* core/step.h: what step.c defines for the other files of the pool: the one decision
 * every form of acquire makes (blocking, asynchronous, idle-only, with or without a
 * tenant), and the request checks they share. The data structures are in types.h. */
#ifndef TP_CORE_STEP_H
#define TP_CORE_STEP_H

#include "types.h"
#include "after.h"

/* One acquire in progress, as every verb describes it to the decision step. */
typedef struct tp__acq {
    tp__key *k;         /* the key (pinned by the verb) */
    int64_t timeout;    /* the request's, resolved (the pool's default applied) */
    int64_t start;      /* when the call began (tp__acquire_clock) */
    int64_t deadline;   /* TP_DURATION_INFINITE for none */
    unsigned flags;     /* TP_ACQUIRE_* */
    tp__tenant *tenant; /* the tenant named by the request, or NULL */
    tp__waiter *self;   /* its place in the key's queue while queued, else NULL */
    bool held_by_limit; /* out: the adaptive limit said QUEUE (a release will serve it) */
    bool keep_link;     /* an idle connection stays linked (its release is lock-free) */
    bool waited;        /* out: the blocking verb queued or yielded for a connection */
    bool permit_counted; /* its wait for a permit is counted (once per request) */
} tp__acq;

typedef enum tp__step {
    TP__STEP_CONN = 0,  /* an idle connection, claimed (IN_USE, unlinked unless
                           keep_link): validate it (tp__reuse_verdict) */
    TP__STEP_OPEN = 1,  /* a slot to open one is reserved (opening counted) */
    TP__STEP_QUEUE = 2, /* wait in the key's queue (until *until at most, if finite) */
    TP__STEP_FAIL = 3,  /* *rc and err say why */
} tp__step;

/* tp__acquire_step_locked: what acquire q gets now. Fairness (newcomers and waiters
 * behind the first take a connection only until the first has waited fair_after), the
 * adaptive limit, TP_ACQUIRE_FRESH (closing the least recently used idle connection
 * when idle ones fill the key), the breaker, the open backoff, TP_ACQUIRE_NOWAIT and
 * TP_ACQUIRE_IDLE_ONLY, the deadline and max_waiters_per_key (for a request not yet
 * queued) are decided here and nowhere else, with the same error messages. Closes it
 * decides are queued on a. */
tp__step tp__acquire_step_locked(tp_pool *p, tp__acq *q, int64_t now, tp_conn **out, int64_t *until,
                                 tp_err *rc, tp_errinfo *err, tp__after *a);

/* tp__acquire_prepare: checks a request (pool, out, key, flags among allowed, timeout,
 * tenant) and fills q's timeout, flags and tenant (looked up, not yet counted against
 * its quota). *out is set to NULL. The clock is not read: the lock-free path needs no
 * time. */
tp_err tp__acquire_prepare(tp_pool *p, const tp_acquire_req *req, unsigned allowed, tp__acq *q,
                           tp_conn **out, tp_errinfo *err);

/* tp__acquire_clock: the request starts now: q's start and deadline. */
void tp__acquire_clock(tp__acq *q);

/* tp__acquire_key_locked: finds or creates the key for an acquire and pins it; NULL
 * with the error (TP_ELIMIT, TP_ENOMEM) in *rc and err. */
tp__key *tp__acquire_key_locked(tp_pool *p, const tp_acquire_req *req, tp_err *rc, tp_errinfo *err);

#endif
