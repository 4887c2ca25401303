/* test_options.c: tp_pool_options_init() defaults and tp_pool_create() validation.
 *
 * The defaults are part of the contract (pool.h documents each one), and every invalid
 * or contradictory option must be refused with TP_EINVAL, a message naming the field,
 * and *out left NULL, so that a misconfiguration is found at start-up rather than as odd
 * behaviour under load. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include <tidepool/tidepool.h>

#include "support/fake_connector.h"
#include "support/test_util.h"

static fake_connector g_fake;

static int setup(void **state)
{
    fake_init(&g_fake);
    return 0;
}

static int teardown(void **state)
{
    fake_destroy(&g_fake);
    return 0;
}

/* Valid options with this test's connector and no background thread. */
static void base_options(tp_pool_options *o)
{
    fake_pool_options(&g_fake, o);
    o->maintenance_thread = false;
}

static void test_defaults(void **state)
{
    tp_pool_options o;
    memset(&o, 0xa5, sizeof o); /* init must set every field, not rely on zeroed memory */
    tp_pool_options_init(&o);
    assert_int_equal(o.version, TP_POOL_OPTIONS_VERSION);
    assert_null(o.connector.open);
    assert_null(o.connector.check);
    assert_null(o.connector.reset);
    assert_null(o.connector.close);
    assert_null(o.connector.probe);
    assert_null(o.connector.ctx);
    assert_true(o.max_total == TP_UNLIMITED);
    assert_int_equal(o.max_per_key, 64);
    assert_true(o.max_idle_total == TP_UNLIMITED);
    assert_true(o.max_idle_per_key == TP_FOLLOW_MAX_PER_KEY);
    assert_int_equal(o.min_idle_per_key, 0);
    assert_true(o.max_waiters_per_key == TP_UNLIMITED);
    assert_true(o.max_keys == TP_UNLIMITED);
    assert_true(o.acquire_timeout == 30 * TP_NSEC_PER_SEC);
    assert_true(o.connect_timeout == 10 * TP_NSEC_PER_SEC);
    assert_true(o.idle_timeout == 30 * TP_NSEC_PER_SEC);
    assert_true(o.max_lifetime == 30 * 60 * TP_NSEC_PER_SEC);
    assert_true(fabs(o.lifetime_jitter - 0.025) < 1e-12);
    assert_true(o.check_after_idle == 0);
    assert_true(o.breaker_min_outage == TP_NSEC_PER_SEC);
    assert_true(o.max_uses == TP_UNLIMITED);
    assert_true(o.fair_after == 1 * TP_NSEC_PER_MSEC);
    assert_true(o.backoff_initial == 10 * TP_NSEC_PER_MSEC);
    assert_true(o.backoff_max == 5 * TP_NSEC_PER_SEC);
    assert_int_equal(o.breaker_threshold, 5);
    assert_true(o.breaker_cooldown == 1 * TP_NSEC_PER_SEC);
    assert_true(o.breaker_cooldown_max == 30 * TP_NSEC_PER_SEC);
    assert_true(o.maintenance_thread);
    assert_true(o.maintenance_interval == 1 * TP_NSEC_PER_SEC);
    assert_null(o.trace);
    assert_null(o.trace_ud);
}

static void test_defaults_with_connector_create(void **state)
{
    /* The defaults themselves must pass validation (with the thread, as users get it). */
    tp_pool_options o;
    fake_pool_options(&g_fake, &o);
    tp_pool *p = NULL;
    tp_errinfo err;
    assert_int_equal(tp_pool_create(&o, &p, &err), TP_OK);
    assert_non_null(p);
    tp_pool_destroy(p);
}

/* One invalid configuration: a mutation of valid options and the field the error
 * message must name. */
typedef struct bad_case {
    const char *what;
    const char *field;
    void (*mutate)(tp_pool_options *o);
} bad_case;

#define BAD(name, body)                                                                      \
    static void mut_##name(tp_pool_options *o) { body; }
/* Negative sizes use -1; negative durations avoid -1 (TP_DURATION_DEFAULT, which has a
 * meaning in calls) and use -2 and INT64_MIN, which can only be mistakes. */
BAD(version0, o->version = 0)
BAD(version2, o->version = TP_POOL_OPTIONS_VERSION + 1)
BAD(no_open, o->connector.open = NULL)
BAD(no_close, o->connector.close = NULL)
BAD(max_total_neg, o->max_total = -1)
BAD(max_total_zero, o->max_total = 0)
BAD(max_per_key_neg, o->max_per_key = -1)
BAD(max_per_key_zero, o->max_per_key = 0)
BAD(max_idle_total_neg, o->max_idle_total = -1)
BAD(max_idle_per_key_neg, o->max_idle_per_key = -1)
BAD(min_idle_neg, o->min_idle_per_key = -1)
BAD(max_waiters_neg, o->max_waiters_per_key = -1)
BAD(max_keys_neg, o->max_keys = -1)
BAD(max_keys_zero, o->max_keys = 0)
BAD(max_uses_neg, o->max_uses = -1)
BAD(max_uses_zero, o->max_uses = 0)
BAD(acquire_timeout_neg, o->acquire_timeout = -2)
BAD(acquire_timeout_min, o->acquire_timeout = INT64_MIN)
BAD(connect_timeout_neg, o->connect_timeout = -2)
BAD(idle_timeout_neg, o->idle_timeout = -2)
BAD(max_lifetime_neg, o->max_lifetime = INT64_MIN)
BAD(check_after_idle_neg, o->check_after_idle = -2)
BAD(fair_after_neg, o->fair_after = -2)
BAD(backoff_initial_neg, o->backoff_initial = -2)
BAD(backoff_max_neg, o->backoff_max = -2)
BAD(breaker_threshold_neg, o->breaker_threshold = -1)
BAD(breaker_threshold_zero, o->breaker_threshold = 0)
BAD(breaker_min_outage_neg, o->breaker_min_outage = -1)
BAD(breaker_cooldown_neg, o->breaker_cooldown = -2)
BAD(breaker_cooldown_max_neg, o->breaker_cooldown_max = -2)
BAD(maint_interval_neg, o->maintenance_interval = -2)
BAD(jitter_neg, o->lifetime_jitter = -0.01)
BAD(jitter_one, o->lifetime_jitter = 1.0)
BAD(jitter_big, o->lifetime_jitter = 7.5)
BAD(jitter_nan, o->lifetime_jitter = NAN)
BAD(idle_gt_max, (o->max_per_key = 4, o->max_idle_per_key = 5))
BAD(min_gt_idle, (o->max_idle_per_key = 2, o->min_idle_per_key = 3))
BAD(min_gt_max_per_key, (o->max_per_key = 2, o->max_idle_per_key = 2, o->min_idle_per_key = 3))
BAD(idle_timeout_gt_lifetime, (o->idle_timeout = MS(2000), o->max_lifetime = MS(1000)))
BAD(backoff_initial_gt_max, (o->backoff_initial = MS(100), o->backoff_max = MS(50)))
BAD(cooldown_gt_max, (o->breaker_cooldown = MS(100), o->breaker_cooldown_max = MS(50)))
#undef BAD

#define CASE(name, fieldname) {#name, fieldname, mut_##name}
static const bad_case k_bad[] = {
    CASE(version0, "version"),
    CASE(version2, "version"),
    CASE(no_open, "open"),
    CASE(no_close, "close"),
    CASE(max_total_neg, "max_total"),
    CASE(max_total_zero, "max_total"),
    CASE(max_per_key_neg, "max_per_key"),
    CASE(max_per_key_zero, "max_per_key"),
    CASE(max_idle_total_neg, "max_idle_total"),
    CASE(max_idle_per_key_neg, "max_idle_per_key"),
    CASE(min_idle_neg, "min_idle_per_key"),
    CASE(max_waiters_neg, "max_waiters_per_key"),
    CASE(max_keys_neg, "max_keys"),
    CASE(max_keys_zero, "max_keys"),
    CASE(max_uses_neg, "max_uses"),
    CASE(max_uses_zero, "max_uses"),
    CASE(acquire_timeout_neg, "acquire_timeout"),
    CASE(acquire_timeout_min, "acquire_timeout"),
    CASE(connect_timeout_neg, "connect_timeout"),
    CASE(idle_timeout_neg, "idle_timeout"),
    CASE(max_lifetime_neg, "max_lifetime"),
    CASE(check_after_idle_neg, "check_after_idle"),
    CASE(fair_after_neg, "fair_after"),
    CASE(backoff_initial_neg, "backoff_initial"),
    CASE(backoff_max_neg, "backoff_max"),
    CASE(breaker_threshold_neg, "breaker_threshold"),
    CASE(breaker_threshold_zero, "breaker_threshold"),
    CASE(breaker_min_outage_neg, "breaker_min_outage"),
    CASE(breaker_cooldown_neg, "breaker_cooldown"),
    CASE(breaker_cooldown_max_neg, "breaker_cooldown_max"),
    CASE(maint_interval_neg, "maintenance_interval"),
    CASE(jitter_neg, "lifetime_jitter"),
    CASE(jitter_one, "lifetime_jitter"),
    CASE(jitter_big, "lifetime_jitter"),
    CASE(jitter_nan, "lifetime_jitter"),
    CASE(idle_gt_max, "max_idle_per_key"),
    CASE(min_gt_idle, "min_idle_per_key"),
    CASE(min_gt_max_per_key, "min_idle_per_key|max_idle_per_key"),
    CASE(idle_timeout_gt_lifetime, "idle_timeout|max_lifetime"),
    CASE(backoff_initial_gt_max, "backoff_initial|backoff_max"),
    CASE(cooldown_gt_max, "breaker_cooldown"),
};
#undef CASE

/* Whether msg names one of the '|'-separated fields. A contradiction involves two
 * fields; naming either one tells the user where to look. */
static bool names_field(const char *msg, const char *fields)
{
    char buf[128];
    strncpy(buf, fields, sizeof buf - 1);
    buf[sizeof buf - 1] = '\0';
    for (char *save = NULL, *f = strtok_r(buf, "|", &save); f; f = strtok_r(NULL, "|", &save))
        if (strstr(msg, f) != NULL)
            return true;
    return false;
}

static void test_invalid_options_rejected(void **state)
{
    /* Every case is tried and every failure printed, so one run shows them all. */
    int failures = 0;
    for (size_t i = 0; i < sizeof k_bad / sizeof k_bad[0]; i++) {
        tp_pool_options o;
        base_options(&o);
        k_bad[i].mutate(&o);
        tp_pool *p = (tp_pool *)&o; /* a non-NULL sentinel: failure must reset it */
        tp_errinfo err;
        memset(&err, 0, sizeof err);
        tp_err r = tp_pool_create(&o, &p, &err);
        if (r != TP_EINVAL || p != NULL || err.code != TP_EINVAL ||
            !names_field(err.msg, k_bad[i].field)) {
            print_error("case %s: got %s, out %s, err.code %s, msg \"%s\" (want TP_EINVAL "
                        "naming %s)\n",
                        k_bad[i].what, tp_err_name(r), p ? "non-NULL" : "NULL",
                        tp_err_name(err.code), err.msg, k_bad[i].field);
            failures++;
        }
        if (r == TP_OK && p != NULL && p != (tp_pool *)&o)
            tp_pool_destroy(p);
    }
    assert_int_equal(failures, 0);
    /* Nothing was opened by a refused create. */
    assert_int_equal(g_fake.open_calls, 0);
}

static void test_invalid_without_errinfo(void **state)
{
    /* err is optional: the error code alone must still come back. */
    tp_pool_options o;
    base_options(&o);
    o.max_per_key = 0;
    tp_pool *p = (tp_pool *)&o;
    assert_int_equal(tp_pool_create(&o, &p, NULL), TP_EINVAL);
    assert_null(p);
}

static void test_null_arguments(void **state)
{
    tp_pool_options o;
    base_options(&o);
    tp_pool *p = (tp_pool *)&o;
    tp_errinfo err;
    assert_int_equal(tp_pool_create(NULL, &p, &err), TP_EINVAL);
    assert_null(p);
    assert_int_equal(tp_pool_create(&o, NULL, &err), TP_EINVAL);
}

static void create_ok(const tp_pool_options *o, tp_pool **p)
{
    tp_errinfo err;
    memset(&err, 0, sizeof err);
    tp_err r = tp_pool_create(o, p, &err);
    if (r != TP_OK)
        print_error("create failed: %s: %s\n", tp_err_name(r), err.msg);
    assert_int_equal(r, TP_OK);
    assert_non_null(*p);
}

static void test_unlimited_and_infinite_accepted(void **state)
{
    tp_pool_options o;
    base_options(&o);
    o.max_total = TP_UNLIMITED;
    o.max_per_key = TP_UNLIMITED;
    o.max_idle_total = TP_UNLIMITED;
    o.max_idle_per_key = TP_UNLIMITED;
    o.max_waiters_per_key = TP_UNLIMITED;
    o.max_keys = TP_UNLIMITED;
    o.max_uses = TP_UNLIMITED;
    o.breaker_threshold = TP_UNLIMITED;
    o.acquire_timeout = TP_DURATION_INFINITE;
    o.connect_timeout = TP_DURATION_INFINITE;
    o.idle_timeout = TP_DURATION_INFINITE;
    o.max_lifetime = TP_DURATION_INFINITE;
    o.backoff_max = TP_DURATION_INFINITE;
    o.breaker_cooldown_max = TP_DURATION_INFINITE;
    tp_pool *p = NULL;
    create_ok(&o, &p);

    /* The pool runs with exactly what was asked (options_get is a faithful copy). */
    tp_pool_options got;
    tp_pool_options_get(p, &got);
    assert_true(got.max_total == TP_UNLIMITED);
    assert_true(got.max_per_key == TP_UNLIMITED);
    assert_true(got.idle_timeout == TP_DURATION_INFINITE);
    assert_true(got.max_lifetime == TP_DURATION_INFINITE);
    assert_true(got.acquire_timeout == TP_DURATION_INFINITE);

    /* And such a pool works. */
    tp_conn *c = NULL;
    assert_int_equal(tp_pool_acquire(p, KEY("k"), 0, &c, NULL), TP_OK);
    tp_conn_release(c, 0);
    tp_pool_destroy(p);
}

static void test_zero_values_that_mean_zero_are_accepted(void **state)
{
    /* 0 is a legitimate choice for these: keep nothing idle, never queue, check always,
     * strict FIFO, no jitter, never wait. */
    tp_pool_options o;
    base_options(&o);
    o.max_idle_per_key = 0;
    o.max_idle_total = 0;
    o.min_idle_per_key = 0;
    o.max_waiters_per_key = 0;
    o.check_after_idle = 0;
    o.fair_after = 0;
    o.lifetime_jitter = 0.0;
    o.acquire_timeout = 0;
    tp_pool *p = NULL;
    create_ok(&o, &p);
    tp_pool_destroy(p);
}

static void test_boundaries_accepted(void **state)
{
    tp_pool_options o;
    base_options(&o);
    /* Equalities are not contradictions. */
    o.max_per_key = 3;
    o.max_idle_per_key = 3;
    o.min_idle_per_key = 3;
    o.idle_timeout = MS(500);
    o.max_lifetime = MS(500);
    o.backoff_initial = MS(20);
    o.backoff_max = MS(20);
    o.breaker_cooldown = MS(30);
    o.breaker_cooldown_max = MS(30);
    o.lifetime_jitter = 0.999;
    /* A pool-wide cap below the per-key default is the common way to size a pool: the
     * per-key limit then simply never binds. */
    o.max_total = 2;
    tp_pool *p = NULL;
    create_ok(&o, &p);
    tp_pool_destroy(p);
}

static void test_max_idle_follows_max_per_key(void **state)
{
    /* The default idle limit is whatever max_per_key is: lowering max_per_key alone is
     * valid and keeps every connection it may open. */
    tp_pool_options o;
    base_options(&o);
    o.max_per_key = 3;
    tp_pool *p = NULL;
    create_ok(&o, &p);
    tp_pool_options got;
    tp_pool_options_get(p, &got);
    assert_int_equal(got.max_idle_per_key, 3);
    tp_pool_destroy(p);
}

static void test_options_are_copied(void **state)
{
    tp_pool_options o;
    base_options(&o);
    o.max_per_key = 7;
    o.max_idle_per_key = 5;
    tp_pool *p = NULL;
    create_ok(&o, &p);
    /* Scribbling over the caller's struct after create must not affect the pool. */
    memset(&o, 0, sizeof o);
    tp_pool_options got;
    tp_pool_options_get(p, &got);
    assert_int_equal(got.version, TP_POOL_OPTIONS_VERSION);
    assert_int_equal(got.max_per_key, 7);
    assert_int_equal(got.max_idle_per_key, 5);
    assert_ptr_equal(got.connector.open, fake_open);
    assert_ptr_equal(got.connector.ctx, &g_fake);
    tp_conn *c = NULL;
    assert_int_equal(tp_pool_acquire(p, KEY("k"), 0, &c, NULL), TP_OK);
    tp_conn_release(c, 0);
    tp_stats st;
    tu_key_stats(p, "k", &st);
    assert_int_equal(st.max_per_key, 7);
    assert_int_equal(st.max_idle_per_key, 5);
    tp_pool_destroy(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test_setup_teardown(test_defaults_with_connector_create, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_options_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_without_errinfo, setup, teardown),
        cmocka_unit_test_setup_teardown(test_null_arguments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unlimited_and_infinite_accepted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_zero_values_that_mean_zero_are_accepted, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_boundaries_accepted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_max_idle_follows_max_per_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_options_are_copied, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
