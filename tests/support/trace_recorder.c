/* tests/support/trace_recorder.c: see trace_recorder.h. */
#include "support/trace_recorder.h"

#include <stdlib.h>
#include <string.h>

#include "support/fake_connector.h"
#include "support/test_util.h"

void trace_recorder_init(trace_recorder *r, size_t cap)
{
    memset(r, 0, sizeof *r);
    pthread_mutex_init(&r->mu, NULL);
    r->recs = calloc(cap, sizeof *r->recs);
    r->cap = r->recs ? cap : 0;
    r->conn_ids_from_fake = true;
}

void trace_recorder_destroy(trace_recorder *r)
{
    free(r->recs);
    r->recs = NULL;
    pthread_mutex_destroy(&r->mu);
}

void trace_recorder_hook(void *ud, const tp_trace_event *ev)
{
    trace_recorder *r = ud;
    trace_rec rec;
    memset(&rec, 0, sizeof rec);
    rec.type = ev->type;
    rec.keylen = ev->keylen;
    if (ev->key != NULL && ev->keylen > 0)
        memcpy(rec.key, ev->key, ev->keylen < TRACE_KEY_MAX ? ev->keylen : TRACE_KEY_MAX);
    rec.has_conn = ev->conn != NULL;
    /* Only an ACQUIRE event's lease is certainly live: a RELEASE's may already be closed. */
    if (ev->type == TP_TRACE_ACQUIRE && ev->conn != NULL && r->conn_ids_from_fake) {
        const fake_conn *fc = fake_of(ev->conn);
        rec.conn_id = fc ? fc->id : 0;
    }
    rec.err = ev->err;
    rec.reused = ev->reused;
    rec.closed = ev->closed;
    rec.reason = ev->reason;
    rec.duration_ns = ev->duration_ns;
    rec.idle_ns = ev->idle_ns;
    rec.waited_ns = ev->waited_ns;
    rec.breaker_state = ev->breaker_state;
    rec.at_ns = tu_now_ns();

    if ((int)ev->type >= 0 && (int)ev->type < TRACE_TYPES)
        atomic_fetch_add(&r->counts[ev->type], 1);
    else
        atomic_fetch_add(&r->bad_types, 1);

    pthread_mutex_lock(&r->mu);
    if (r->n < r->cap)
        r->recs[r->n++] = rec;
    else
        atomic_fetch_add(&r->dropped, 1);
    pthread_mutex_unlock(&r->mu);

    if (r->chain)
        r->chain(r->chain_ud, ev);
}

void trace_recorder_attach(trace_recorder *r, tp_pool_options *o)
{
    o->trace = trace_recorder_hook;
    o->trace_ud = r;
}

uint64_t trace_count(trace_recorder *r, tp_trace_type type)
{
    if ((int)type < 0 || (int)type >= TRACE_TYPES)
        return 0;
    return atomic_load(&r->counts[type]);
}

long trace_find(trace_recorder *r, tp_trace_type type, size_t from, trace_rec *out)
{
    long found = -1;
    pthread_mutex_lock(&r->mu);
    for (size_t i = from; i < r->n; i++) {
        if (r->recs[i].type == type) {
            if (out)
                *out = r->recs[i];
            found = (long)i;
            break;
        }
    }
    pthread_mutex_unlock(&r->mu);
    return found;
}

size_t trace_snapshot(trace_recorder *r, trace_rec *out, size_t max)
{
    pthread_mutex_lock(&r->mu);
    size_t n = r->n < max ? r->n : max;
    memcpy(out, r->recs, n * sizeof *out);
    pthread_mutex_unlock(&r->mu);
    return n;
}

void trace_clear(trace_recorder *r)
{
    pthread_mutex_lock(&r->mu);
    r->n = 0;
    for (int i = 0; i < TRACE_TYPES; i++)
        atomic_store(&r->counts[i], 0);
    pthread_mutex_unlock(&r->mu);
}
