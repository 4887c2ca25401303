/* tests/support/metrics_drive.c: see metrics_drive.h. */
#include "support/metrics_drive.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "support/test_util.h"

const md_key md_keys[MD_NKEYS] = {
    [MD_KA] = {"http://127.0.0.1:8080", 21, "http://127.0.0.1:8080", "http://127.0.0.1:8080"},
    [MD_KQ] = {"db \"main\" \\ shard", 17, "db \"main\" \\ shard", "db \\\"main\\\" \\\\ shard"},
    [MD_KN] = {"line1\nline2", 11, "line1\\x0aline2", "line1\\\\x0aline2"},
    [MD_KB] = {"\x01\x00"
               "bin\xff",
               6, "\\x01\\x00bin\\xff", "\\\\x01\\\\x00bin\\\\xff"},
    [MD_KS] = {"http://127.0.0.1:9090/path?token=secret", 39, "http://127.0.0.1:9090/path",
               "http://127.0.0.1:9090/path"},
    [MD_KF] = {"http://127.0.0.1:1", 18, "http://127.0.0.1:1", "http://127.0.0.1:1"},
};

void md_start(md_pool *x)
{
    fake_init(&x->f);
    tp_pool_options o;
    fake_pool_options(&x->f, &o);
    o.maintenance_thread = false;
    o.max_per_key = 2;
    o.max_waiters_per_key = 1;
    o.check_after_idle = 0;
    o.breaker_threshold = 1;
    o.breaker_min_outage = 0; /* one failure opens it */
    o.acquire_timeout = 10 * TP_NSEC_PER_SEC;
    x->p = tu_pool_create(&o);
    /* A tenant, so the tenant families are rendered (and checked by promtool). */
    assert_int_equal(tp_pool_tenant_set(x->p, "batch \"jobs\"", 4, true), TP_OK);
}

void md_stop(md_pool *x)
{
    tp_pool_destroy(x->p);
    x->p = NULL;
    fake_destroy(&x->f);
}

static tp_conn *get(md_pool *x, int key, int64_t timeout, tp_err want)
{
    tp_conn *c = NULL;
    tp_errinfo err;
    memset(&err, 0, sizeof err);
    tp_err rc = tp_pool_acquire(x->p, md_keys[key].bytes, md_keys[key].len, timeout, &c, &err);
    if (rc != want)
        print_error("acquire key %d: %s (%s), wanted %s\n", key, tp_err_name(rc), err.msg,
                    tp_err_name(want));
    assert_int_equal(rc, want);
    return c;
}

void md_use(md_pool *x, int key)
{
    tp_conn_release(get(x, key, TP_DURATION_DEFAULT, TP_OK), 0);
}

/* MD_KA: a waiter served by a release, and a busy reject while it waits. */
static void wait_and_busy(md_pool *x)
{
    tp_conn *c1 = get(x, MD_KA, TP_DURATION_DEFAULT, TP_OK);
    tp_conn *c2 = get(x, MD_KA, TP_DURATION_DEFAULT, TP_OK);
    tu_acq_job job = {.p = x->p, .key = md_keys[MD_KA].bytes, .timeout = MS(10000)};
    pthread_t t;
    tu_thread_start(&t, tu_acquire_thread, &job);
    bool queued = false;
    TU_WAIT_UNTIL(queued, tu_key_waiters(x->p, md_keys[MD_KA].bytes) == 1, 10000);
    assert_true(queued);
    (void)get(x, MD_KA, MS(1000), TP_EBUSY);
    tu_sleep_ms(2); /* a measurable wait */
    tp_conn_release(c1, 0);
    tu_thread_join(t);
    assert_int_equal(job.result, TP_OK);
    tp_conn_release(job.conn, 0);
    tp_conn_release(c2, 0);
}

void md_drive(md_pool *x)
{
    /* 5 leases on one connection: 1 open, 4 reuses. */
    for (int i = 0; i < 5; i++)
        md_use(x, MD_KA);
    wait_and_busy(x);

    /* Both connections held: an acquire times out; then two closes by the holder. */
    tp_conn *c1 = get(x, MD_KA, TP_DURATION_DEFAULT, TP_OK);
    tp_conn *c2 = get(x, MD_KA, TP_DURATION_DEFAULT, TP_OK);
    (void)get(x, MD_KA, MS(20), TP_ETIMEDOUT);
    tp_conn_release(c1, TP_RELEASE_DISCARD);
    tp_conn_release(c2, TP_RELEASE_BROKEN);

    /* reset_failed, then check_failed (the next acquire opens a new one), then evicted. */
    fake_fail_reset(&x->f, true);
    md_use(x, MD_KA);
    fake_fail_reset(&x->f, false);
    md_use(x, MD_KA);
    fake_fail_check_all(&x->f, true);
    md_use(x, MD_KA);
    fake_fail_check_all(&x->f, false);
    assert_int_equal(tp_pool_evict(x->p, md_keys[MD_KA].bytes, md_keys[MD_KA].len), 1);

    /* The label keys. */
    md_use(x, MD_KQ);
    md_use(x, MD_KQ);
    md_use(x, MD_KN);
    md_use(x, MD_KB);
    for (int i = 0; i < 3; i++)
        md_use(x, MD_KS);

    /* One failed open opens MD_KF's breaker (threshold 1); the next acquire is refused. */
    fake_fail_next(&x->f, 1, TP_ECONNREFUSED);
    (void)get(x, MD_KF, MS(1000), TP_ECONNREFUSED);
    (void)get(x, MD_KF, MS(1000), TP_EBREAKER);
}
