/* tests/support/trace_recorder.h: a tp_trace_fn that copies every event into a buffer,
 * so tests can assert which events a pool emitted, in which order, with which fields.
 *
 * Events are only valid during the hook call, so the recorder copies the scalar fields,
 * up to TRACE_KEY_MAX bytes of the key and, for ACQUIRE events (where the lease is live),
 * the fake connection id behind the lease. It also time-stamps each event with the tests'
 * own clock. An optional chained hook runs after recording (for re-entrancy tests).
 * Thread-safe. */
#ifndef TP_TEST_TRACE_RECORDER_H
#define TP_TEST_TRACE_RECORDER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <tidepool/tidepool.h>

#define TRACE_KEY_MAX 64
#define TRACE_TYPES 8

typedef struct trace_rec {
    tp_trace_type type;
    unsigned char key[TRACE_KEY_MAX];
    size_t keylen;
    bool has_conn;
    uint64_t conn_id; /* ACQUIRE only: fake_conn id behind the lease (0 otherwise) */
    tp_err err;
    bool reused;
    bool closed;
    tp_close_reason reason;
    int64_t duration_ns;
    int64_t idle_ns;
    int64_t waited_ns;
    tp_breaker_state breaker_state;
    int64_t at_ns; /* tu_now_ns() when recorded */
} trace_rec;

typedef struct trace_recorder {
    pthread_mutex_t mu;
    trace_rec *recs;
    size_t n, cap;
    _Atomic uint64_t dropped;
    _Atomic uint64_t counts[TRACE_TYPES];
    _Atomic uint64_t bad_types;
    bool conn_ids_from_fake; /* ACQUIRE conn_id read through tp_conn_get as a fake_conn */
    tp_trace_fn chain;
    void *chain_ud;
} trace_recorder;

void trace_recorder_init(trace_recorder *r, size_t cap);
void trace_recorder_destroy(trace_recorder *r);

/* The hook: pass trace_recorder_hook as tp_pool_options.trace and r as trace_ud. */
void trace_recorder_hook(void *ud, const tp_trace_event *ev);

/* Sets o->trace / o->trace_ud to r. */
void trace_recorder_attach(trace_recorder *r, tp_pool_options *o);

/* Events of one type seen so far. */
uint64_t trace_count(trace_recorder *r, tp_trace_type type);

/* Copies the first record of `type` at index >= from into *out; returns its index, or -1. */
long trace_find(trace_recorder *r, tp_trace_type type, size_t from, trace_rec *out);

/* Copies all records (up to max) into out; returns how many. */
size_t trace_snapshot(trace_recorder *r, trace_rec *out, size_t max);

/* Forgets recorded events and counts. */
void trace_clear(trace_recorder *r);

#endif
