/* tests/support/fake_connector.h: a configurable in-memory connector for the pool tests.
 *
 * Every "connection" is a heap fake_conn with a monotonic id (1, 2, ...), a copy of the
 * key it was opened for, a use counter the tests bump, and a `held` flag the tests flip
 * with compare-and-swap to detect a connection leased to two holders at once. The fake
 * counts every call (atomics), records each close's reason (per reason, plus a log of
 * (id, reason, time) in close order), and checks two connector-contract invariants on its
 * own: a connection is never closed while a test still holds it, and check/reset/close
 * never run twice at once for the same connection.
 *
 * Knobs are thread-safe and may change while a pool runs: fail the next N opens or all
 * opens with a given error, refuse opens beyond a number of live connections (a server's
 * connection limit), delay opens (honouring the deadline: TP_ECONNTIMEDOUT if the
 * delay would pass it), fail check() for one id / every Nth / all, fail reset() (always
 * or every Nth), choose probe()'s result, and a gate that blocks open() until released
 * (to observe connections in the "opening" state). An optional re-entry callback runs
 * inside every connector call, to prove the pool holds no lock around them.
 *
 * Everything here is thread-safe except fake_init/fake_destroy. */
#ifndef TP_TEST_FAKE_CONNECTOR_H
#define TP_TEST_FAKE_CONNECTOR_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <tidepool/tidepool.h>

typedef struct fake_connector fake_connector;

/* One fake connection; what the fake's open() stores in *conn. */
typedef struct fake_conn {
    uint64_t id;          /* 1, 2, 3 ... in open order */
    unsigned char *key;   /* copy of the key it was opened for */
    size_t keylen;
    int64_t opened_ns;    /* tp_clock_now() when open() finished */
    _Atomic uint64_t uses; /* bumped by tests on each lease they get */
    atomic_int held;      /* tests: CAS 0->1 on acquire, 1->0 before release */
    atomic_int in_call;   /* fake: set while check/reset/close runs on it */
    fake_connector *owner;
} fake_conn;

/* One entry of the close log. */
typedef struct fake_close_rec {
    uint64_t id;
    tp_close_reason reason;
    int64_t at_ns; /* tu_now_ns() at the close */
} fake_close_rec;

#define FAKE_CLOSE_LOG_MAX 4096

struct fake_connector {
    /* counters: read them directly (they are atomics) */
    _Atomic uint64_t open_calls;    /* open() invocations */
    _Atomic uint64_t opens;         /* successful opens */
    _Atomic uint64_t open_failures; /* failed opens (injected or timed out) */
    _Atomic uint64_t closes;
    _Atomic uint64_t close_reasons[TP_CLOSE__COUNT];
    _Atomic uint64_t bad_close_reasons; /* close() with a reason out of range */
    _Atomic uint64_t checks;
    _Atomic uint64_t resets;
    _Atomic uint64_t probes;
    _Atomic int64_t live;           /* opened and not yet closed */
    _Atomic int64_t opening;        /* open() calls in progress */
    _Atomic int64_t last_check_idle_ns;
    _Atomic uint64_t closed_while_held; /* invariant violations, must stay 0 */
    _Atomic uint64_t concurrent_calls;  /* invariant violations, must stay 0 */
    _Atomic uint64_t next_id;

    /* knobs, guarded by mu */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int fail_next_n;
    tp_err fail_next_err;
    tp_err fail_all_err; /* 0: off */
    int64_t open_delay_ms;
    int64_t capacity; /* 0: none; else opens fail with TP_ESERVERFULL while live >= it */
    uint64_t check_fail_id; /* 0: none */
    bool check_fail_all;
    unsigned check_fail_every; /* 0: off */
    uint64_t check_seq;
    bool reset_fail;
    unsigned reset_fail_every; /* 0: off */
    uint64_t reset_seq;
    tp_err probe_result;
    _Atomic int64_t streams; /* set before the pool is created: 0, no streams() (ordinary
                                connections); n > 0, multiplexed with n streams; -1,
                                streams() says "one lease" */
    bool gate_closed;
    atomic_int gate_waiting; /* open() calls blocked at the gate */

    /* re-entry callback, set before the pool is created */
    void (*reenter)(void *ud);
    void *reenter_ud;

    /* close log, guarded by mu */
    fake_close_rec log[FAKE_CLOSE_LOG_MAX];
    size_t nlog;
};

/* fake_init: zero counters, default knobs (everything succeeds, no delay, gate open,
 * probe returns TP_OK). fake_destroy: releases its mutex; call after the pool is gone. */
void fake_init(fake_connector *f);
void fake_destroy(fake_connector *f);

/* The connector vtable bound to f: open/check/reset/close, and probe if with_probe. */
tp_connector fake_vtable(fake_connector *f, bool with_probe);

/* tp_pool_options_init() + this connector (no probe). Tests change the rest. */
void fake_pool_options(fake_connector *f, tp_pool_options *o);

/* The connector functions themselves, for tests that assemble a vtable by hand. */
tp_err fake_open(void *ctx, const void *key, size_t keylen, int64_t deadline, void **conn,
                 tp_errinfo *err);
tp_err fake_check(void *ctx, void *conn, int64_t idle_ns);
tp_err fake_reset(void *ctx, void *conn);
void fake_close(void *ctx, void *conn, tp_close_reason reason);
tp_err fake_probe(void *ctx, const void *key, size_t keylen, int64_t deadline, tp_errinfo *err);
int64_t fake_streams(void *ctx, void *conn);

/* knobs */
void fake_fail_next(fake_connector *f, int n, tp_err err);
void fake_fail_all(fake_connector *f, tp_err err); /* 0 (TP_OK) stops failing */
void fake_set_open_delay_ms(fake_connector *f, int64_t ms);
/* Like a server's connection limit: opens fail with TP_ESERVERFULL ("too many clients")
 * while n connections are live (0: no limit). The knobs above take precedence. */
void fake_set_capacity(fake_connector *f, int64_t n);
void fake_fail_check_id(fake_connector *f, uint64_t id); /* 0: none */
void fake_fail_check_all(fake_connector *f, bool on);
void fake_fail_check_every(fake_connector *f, unsigned n);
void fake_fail_reset(fake_connector *f, bool on);
void fake_fail_reset_every(fake_connector *f, unsigned n);
void fake_set_probe_result(fake_connector *f, tp_err result);
void fake_gate_close(fake_connector *f);
void fake_gate_open(fake_connector *f);
int fake_gate_waiting(fake_connector *f);

/* The fake connection behind a lease. */
fake_conn *fake_of(const tp_conn *c);

/* Whether fc was opened for exactly these key bytes. */
bool fake_conn_key_is(const fake_conn *fc, const void *key, size_t keylen);

/* Close log queries: how many times id was closed; its (first) close reason; a copy of
 * the log (returns the number of entries copied). */
uint64_t fake_close_count_for(fake_connector *f, uint64_t id);
bool fake_close_reason_for(fake_connector *f, uint64_t id, tp_close_reason *reason);
size_t fake_close_log(fake_connector *f, fake_close_rec *out, size_t max);

#endif
