/* tests/support/fake_connector.c: see fake_connector.h. */
#include "support/fake_connector.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "support/test_util.h"

void fake_init(fake_connector *f)
{
    memset(f, 0, sizeof *f);
    pthread_mutex_init(&f->mu, NULL);
    pthread_cond_init(&f->cv, NULL);
    f->probe_result = TP_OK;
}

void fake_destroy(fake_connector *f)
{
    pthread_cond_destroy(&f->cv);
    pthread_mutex_destroy(&f->mu);
}

tp_connector fake_vtable(fake_connector *f, bool with_probe)
{
    tp_connector c;
    memset(&c, 0, sizeof c);
    c.open = fake_open;
    c.check = fake_check;
    c.reset = fake_reset;
    c.close = fake_close;
    c.probe = with_probe ? fake_probe : NULL;
    c.streams = atomic_load(&f->streams) != 0 ? fake_streams : NULL;
    c.ctx = f;
    return c;
}

int64_t fake_streams(void *ctx, void *conn)
{
    fake_connector *f = ctx;
    (void)conn;
    int64_t n = atomic_load(&f->streams);
    return n < 0 ? 0 : n; /* -1: says "one lease" (streams() present) */
}

void fake_pool_options(fake_connector *f, tp_pool_options *o)
{
    tp_pool_options_init(o);
    o->connector = fake_vtable(f, false);
}

static void reenter(fake_connector *f)
{
    if (f->reenter)
        f->reenter(f->reenter_ud);
}

/* Marks fc as inside a connector call; a second concurrent call on the same connection
 * breaks the connector contract and is counted. */
static void enter_call(fake_conn *fc)
{
    int expected = 0;
    if (!atomic_compare_exchange_strong(&fc->in_call, &expected, 1))
        atomic_fetch_add(&fc->owner->concurrent_calls, 1);
}

static void leave_call(fake_conn *fc)
{
    atomic_store(&fc->in_call, 0);
}

/* Blocks while the gate is closed. Returns false if the deadline passed first. */
static bool wait_gate(fake_connector *f, int64_t deadline)
{
    bool ok = true;
    pthread_mutex_lock(&f->mu);
    if (f->gate_closed) {
        atomic_fetch_add(&f->gate_waiting, 1);
        while (f->gate_closed) {
            if (deadline != TP_DURATION_INFINITE && tp_clock_now() >= deadline) {
                ok = false;
                break;
            }
            /* Short timed waits: the deadline is on tp_clock_now(), not on the
             * condition variable's clock, so it is re-checked every 2 ms. */
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 2 * 1000 * 1000;
            if (ts.tv_nsec >= 1000 * 1000 * 1000) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000 * 1000 * 1000;
            }
            pthread_cond_timedwait(&f->cv, &f->mu, &ts);
        }
        atomic_fetch_sub(&f->gate_waiting, 1);
    }
    pthread_mutex_unlock(&f->mu);
    return ok;
}

static tp_err open_failed(fake_connector *f, tp_errinfo *err, tp_err code, const char *why)
{
    atomic_fetch_add(&f->open_failures, 1);
    atomic_fetch_sub(&f->opening, 1);
    return tp_errinfo_set(err, code, 0, "fake connector: %s", why);
}

tp_err fake_open(void *ctx, const void *key, size_t keylen, int64_t deadline, void **conn,
                 tp_errinfo *err)
{
    fake_connector *f = ctx;
    atomic_fetch_add(&f->open_calls, 1);
    atomic_fetch_add(&f->opening, 1);
    reenter(f);

    if (!wait_gate(f, deadline))
        return open_failed(f, err, TP_ETIMEDOUT, "deadline passed at the gate");

    pthread_mutex_lock(&f->mu);
    int64_t delay_ms = f->open_delay_ms;
    tp_err fail = TP_OK;
    bool admitted = false; /* counted in live now, against the capacity */
    if (f->fail_all_err != TP_OK) {
        fail = f->fail_all_err;
    } else if (f->fail_next_n > 0) {
        f->fail_next_n--;
        fail = f->fail_next_err;
    } else if (f->capacity > 0 && atomic_load(&f->live) >= f->capacity) {
        fail = TP_ESERVERFULL;
    } else if (f->capacity > 0) {
        atomic_fetch_add(&f->live, 1);
        admitted = true;
    }
    pthread_mutex_unlock(&f->mu);

    if (delay_ms > 0) {
        int64_t delay_ns = delay_ms * TP_NSEC_PER_MSEC;
        int64_t now = tp_clock_now();
        if (deadline != TP_DURATION_INFINITE && now + delay_ns > deadline) {
            /* A real connector would give up at the deadline, not after the delay. */
            tu_sleep_ns(deadline - now);
            if (admitted)
                atomic_fetch_sub(&f->live, 1);
            return open_failed(f, err, TP_ECONNTIMEDOUT, "open delay passes the deadline");
        }
        tu_sleep_ns(delay_ns);
    }
    if (fail == TP_ESERVERFULL) /* after the delay: a server takes as long to refuse */
        return open_failed(f, err, fail, "too many clients already");
    if (fail != TP_OK)
        return open_failed(f, err, fail, "injected open failure");

    fake_conn *fc = calloc(1, sizeof *fc);
    unsigned char *kcopy = malloc(keylen ? keylen : 1);
    if (fc == NULL || kcopy == NULL) {
        free(fc);
        free(kcopy);
        if (admitted)
            atomic_fetch_sub(&f->live, 1);
        return open_failed(f, err, TP_ENOMEM, "out of memory");
    }
    if (keylen)
        memcpy(kcopy, key, keylen);
    fc->id = atomic_fetch_add(&f->next_id, 1) + 1;
    fc->key = kcopy;
    fc->keylen = keylen;
    fc->opened_ns = tp_clock_now();
    fc->owner = f;
    *conn = fc;
    if (!admitted)
        atomic_fetch_add(&f->live, 1);
    atomic_fetch_add(&f->opens, 1);
    atomic_fetch_sub(&f->opening, 1);
    return TP_OK;
}

tp_err fake_check(void *ctx, void *conn, int64_t idle_ns)
{
    fake_connector *f = ctx;
    fake_conn *fc = conn;
    enter_call(fc);
    atomic_fetch_add(&f->checks, 1);
    atomic_store(&f->last_check_idle_ns, idle_ns);
    reenter(f);
    pthread_mutex_lock(&f->mu);
    f->check_seq++;
    bool fail = f->check_fail_all || (f->check_fail_id != 0 && f->check_fail_id == fc->id) ||
                (f->check_fail_every != 0 && f->check_seq % f->check_fail_every == 0);
    pthread_mutex_unlock(&f->mu);
    leave_call(fc);
    return fail ? TP_ESYS : TP_OK;
}

tp_err fake_reset(void *ctx, void *conn)
{
    fake_connector *f = ctx;
    fake_conn *fc = conn;
    enter_call(fc);
    atomic_fetch_add(&f->resets, 1);
    reenter(f);
    pthread_mutex_lock(&f->mu);
    f->reset_seq++;
    bool fail = f->reset_fail ||
                (f->reset_fail_every != 0 && f->reset_seq % f->reset_fail_every == 0);
    pthread_mutex_unlock(&f->mu);
    leave_call(fc);
    return fail ? TP_ESYS : TP_OK;
}

void fake_close(void *ctx, void *conn, tp_close_reason reason)
{
    fake_connector *f = ctx;
    fake_conn *fc = conn;
    enter_call(fc);
    reenter(f);
    if (atomic_load(&fc->held) != 0)
        atomic_fetch_add(&f->closed_while_held, 1);
    if ((int)reason >= 0 && reason < TP_CLOSE__COUNT)
        atomic_fetch_add(&f->close_reasons[reason], 1);
    else
        atomic_fetch_add(&f->bad_close_reasons, 1);
    pthread_mutex_lock(&f->mu);
    if (f->nlog < FAKE_CLOSE_LOG_MAX) {
        f->log[f->nlog].id = fc->id;
        f->log[f->nlog].reason = reason;
        f->log[f->nlog].at_ns = tu_now_ns();
        f->nlog++;
    }
    pthread_mutex_unlock(&f->mu);
    atomic_fetch_add(&f->closes, 1);
    atomic_fetch_sub(&f->live, 1);
    leave_call(fc);
    free(fc->key);
    free(fc);
}

tp_err fake_probe(void *ctx, const void *key, size_t keylen, int64_t deadline, tp_errinfo *err)
{
    fake_connector *f = ctx;
    (void)key;
    (void)keylen;
    (void)deadline;
    atomic_fetch_add(&f->probes, 1);
    reenter(f);
    pthread_mutex_lock(&f->mu);
    tp_err r = f->probe_result;
    pthread_mutex_unlock(&f->mu);
    if (r != TP_OK)
        return tp_errinfo_set(err, r, 0, "fake connector: probe failed");
    return TP_OK;
}

void fake_fail_next(fake_connector *f, int n, tp_err err)
{
    pthread_mutex_lock(&f->mu);
    f->fail_next_n = n;
    f->fail_next_err = err;
    pthread_mutex_unlock(&f->mu);
}

void fake_fail_all(fake_connector *f, tp_err err)
{
    pthread_mutex_lock(&f->mu);
    f->fail_all_err = err;
    pthread_mutex_unlock(&f->mu);
}

void fake_set_capacity(fake_connector *f, int64_t n)
{
    pthread_mutex_lock(&f->mu);
    f->capacity = n;
    pthread_mutex_unlock(&f->mu);
}

void fake_set_open_delay_ms(fake_connector *f, int64_t ms)
{
    pthread_mutex_lock(&f->mu);
    f->open_delay_ms = ms;
    pthread_mutex_unlock(&f->mu);
}

void fake_fail_check_id(fake_connector *f, uint64_t id)
{
    pthread_mutex_lock(&f->mu);
    f->check_fail_id = id;
    pthread_mutex_unlock(&f->mu);
}

void fake_fail_check_all(fake_connector *f, bool on)
{
    pthread_mutex_lock(&f->mu);
    f->check_fail_all = on;
    pthread_mutex_unlock(&f->mu);
}

void fake_fail_check_every(fake_connector *f, unsigned n)
{
    pthread_mutex_lock(&f->mu);
    f->check_fail_every = n;
    pthread_mutex_unlock(&f->mu);
}

void fake_fail_reset(fake_connector *f, bool on)
{
    pthread_mutex_lock(&f->mu);
    f->reset_fail = on;
    pthread_mutex_unlock(&f->mu);
}

void fake_fail_reset_every(fake_connector *f, unsigned n)
{
    pthread_mutex_lock(&f->mu);
    f->reset_fail_every = n;
    pthread_mutex_unlock(&f->mu);
}

void fake_set_probe_result(fake_connector *f, tp_err result)
{
    pthread_mutex_lock(&f->mu);
    f->probe_result = result;
    pthread_mutex_unlock(&f->mu);
}

void fake_gate_close(fake_connector *f)
{
    pthread_mutex_lock(&f->mu);
    f->gate_closed = true;
    pthread_mutex_unlock(&f->mu);
}

void fake_gate_open(fake_connector *f)
{
    pthread_mutex_lock(&f->mu);
    f->gate_closed = false;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
}

int fake_gate_waiting(fake_connector *f)
{
    return atomic_load(&f->gate_waiting);
}

fake_conn *fake_of(const tp_conn *c)
{
    return (fake_conn *)tp_conn_get(c);
}

bool fake_conn_key_is(const fake_conn *fc, const void *key, size_t keylen)
{
    return fc != NULL && fc->keylen == keylen && (keylen == 0 || memcmp(fc->key, key, keylen) == 0);
}

uint64_t fake_close_count_for(fake_connector *f, uint64_t id)
{
    uint64_t n = 0;
    pthread_mutex_lock(&f->mu);
    for (size_t i = 0; i < f->nlog; i++)
        if (f->log[i].id == id)
            n++;
    pthread_mutex_unlock(&f->mu);
    return n;
}

bool fake_close_reason_for(fake_connector *f, uint64_t id, tp_close_reason *reason)
{
    bool found = false;
    pthread_mutex_lock(&f->mu);
    for (size_t i = 0; i < f->nlog; i++) {
        if (f->log[i].id == id) {
            *reason = f->log[i].reason;
            found = true;
            break;
        }
    }
    pthread_mutex_unlock(&f->mu);
    return found;
}

size_t fake_close_log(fake_connector *f, fake_close_rec *out, size_t max)
{
    pthread_mutex_lock(&f->mu);
    size_t n = f->nlog < max ? f->nlog : max;
    memcpy(out, f->log, n * sizeof *out);
    pthread_mutex_unlock(&f->mu);
    return n;
}
