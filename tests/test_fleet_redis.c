/* test_fleet_redis.c: the fleet budget (tidepool/fleet.h) in one process, on the throwaway
 * redis-server of scripts/redis-test.sh, with pools of the fake connector: every option
 * checked with a clear error; an unreachable Redis at create; two instances with a cap of
 * 6 never open more than 6 between them and even out to 3 and 3; an instance that leaves
 * gives its permits back at once; one whose thread stops (as a stopped process's would)
 * loses them after its lease, and opens nothing new until it heartbeats again; fail
 * closed refuses with TP_ENOPERMIT, degraded keeps to the last share, fail open opens past
 * the cap, when Redis stops;
 * the state is rebuilt after Redis restarts empty. Skipped (77) without redis-server. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "redis_test_env.h"
#include "support/fake_connector.h"
#include "support/test_util.h"
#include "tidepool/fleet.h"

/* The thread's pause, for the lapsed-lease case (src/fleet/fleet_internal.h). */
void tp__fleet_pause(tp_fleet *f, bool paused);

static rt_env env;
static char url[96];

typedef struct inst {
    fake_connector f;
    tp_fleet *fl;
    tp_pool *p;
} inst;

/* The server's count of a lapsed instance's connections, for reconciliation. */
static _Atomic int64_t server_has = -1;
static int64_t still_open(void *ud, const char *instance)
{
    (void)ud;
    (void)instance;
    return atomic_load(&server_has);
}
static bool reconciled;

static void inst_start(inst *x, const char *budget, const char *name, int64_t cap,
                       tp_fleet_unreachable mode)
{
    memset(x, 0, sizeof *x);
    fake_init(&x->f);
    tp_fleet_options fo;
    tp_fleet_options_init(&fo);
    fo.redis_url = url;
    fo.name = budget;
    fo.instance = name;
    fo.cap = cap;
    fo.heartbeat = MS(100);
    fo.lease = MS(400);
    fo.redis_timeout = MS(300);
    fo.unreachable = mode;
    if (reconciled)
        fo.still_open = still_open;
    tp_errinfo e;
    if (tp_fleet_create(&fo, &x->fl, &e) != TP_OK)
        fail_msg("tp_fleet_create: %s", e.msg);
    tp_pool_options o;
    fake_pool_options(&x->f, &o);
    o.max_per_key = 8;
    o.permits = tp_fleet_hook(x->fl);
    o.maintenance_interval = MS(50);
    x->p = tu_pool_create(&o);
    assert_int_equal(tp_fleet_attach(x->fl, x->p), TP_OK);
    assert_int_equal(tp_fleet_attach(x->fl, x->p), TP_ESTATE);
}

static void inst_stop(inst *x)
{
    tp_pool_destroy(x->p);
    tp_fleet_destroy(x->fl);
    fake_destroy(&x->f);
}

static tp_fleet_stats fstats(inst *x)
{
    tp_fleet_stats s;
    tp_fleet_stats_get(x->fl, &s);
    return s;
}

static tp_err create_with(void (*tweak)(tp_fleet_options *), tp_errinfo *e)
{
    tp_fleet_options fo;
    tp_fleet_options_init(&fo);
    fo.redis_url = url;
    fo.name = "v";
    fo.cap = 3;
    tweak(&fo);
    tp_fleet *f = (tp_fleet *)1;
    tp_err rc = tp_fleet_create(&fo, &f, e);
    if (rc == TP_OK)
        tp_fleet_destroy(f);
    else
        assert_null(f);
    return rc;
}

static void no_url(tp_fleet_options *o)
{
    o->redis_url = NULL;
}
static void zero_cap(tp_fleet_options *o)
{
    o->cap = 0;
}
static void long_name(tp_fleet_options *o)
{
    o->name = "nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn";
}
static void bad_name(tp_fleet_options *o)
{
    o->name = "a b";
}
static void short_lease(tp_fleet_options *o)
{
    o->lease = o->heartbeat * 2;
}
static void bad_jitter(tp_fleet_options *o)
{
    o->heartbeat_jitter = 1.0;
}
static void bad_instance(tp_fleet_options *o)
{
    o->instance = "x\"y";
}
static void bad_version(tp_fleet_options *o)
{
    o->version = 99;
}
static void unreachable(tp_fleet_options *o)
{
    o->redis_url = "redis://127.0.0.1:1";
}
static void fine(tp_fleet_options *o)
{
    (void)o;
}

static void test_options(void **state)
{
    (void)state;
    struct {
        void (*tweak)(tp_fleet_options *);
        tp_err rc;
        const char *says;
    } cases[] = {
        {no_url, TP_EINVAL, "redis_url"},
        {zero_cap, TP_EINVAL, "cap"},
        {long_name, TP_EINVAL, "name"},
        {bad_name, TP_EINVAL, "name"},
        {short_lease, TP_EINVAL, "lease"},
        {bad_jitter, TP_EINVAL, "jitter"},
        {bad_instance, TP_EINVAL, "instance"},
        {bad_version, TP_EINVAL, "version"},
        {unreachable, TP_EUNAVAIL, "127.0.0.1:1"},
        {fine, TP_OK, ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tp_errinfo e;
        tp_errinfo_clear(&e);
        assert_int_equal(create_with(cases[i].tweak, &e), cases[i].rc);
        if (strstr(e.msg, cases[i].says) == NULL)
            fail_msg("case %zu: \"%s\" does not say %s", i, e.msg, cases[i].says);
    }
    int64_t cap;
    size_t n;
    tp_errinfo e;
    assert_int_equal(tp_fleet_status(url, "no-such", &cap, NULL, 0, &n, &e), TP_ESTATE);
}

/* Acquires n leases on x (each must succeed within 3 s). */
static void take_n(inst *x, tp_conn **l, int n)
{
    for (int i = 0; i < n; i++) {
        tp_errinfo e;
        tp_err rc = tp_pool_acquire(x->p, "k", 1, MS(3000), &l[i], &e);
        if (rc != TP_OK)
            fail_msg("acquire %d: %s: %s", i, tp_err_name(rc), e.msg);
    }
}

/* Two instances, cap 6: the first takes 5, the second 1; the second's two more wait
 * for what the first gives back above its share (3 and 3, equal demand); never more
 * than 6 open together; the first leaves and the second may take all 6 at once. */
static void test_two_share_a_cap(void **state)
{
    (void)state;
    inst a, b;
    inst_start(&a, "two", "a", 6, TP_FLEET_DEGRADED);
    inst_start(&b, "two", "b", 6, TP_FLEET_DEGRADED);
    tp_conn *la[8], *lb[8];
    take_n(&a, la, 5);
    take_n(&b, lb, 1);
    assert_int_equal(atomic_load(&a.f.live) + atomic_load(&b.f.live), 6);
    tu_acq_job jobs[2];
    pthread_t t[2];
    for (int i = 0; i < 2; i++) {
        jobs[i] = (tu_acq_job){.p = b.p, .key = "k", .timeout = MS(5000)};
        tu_thread_start(&t[i], tu_acquire_thread, &jobs[i]);
    }
    for (int round = 0; round < 30; round++) {
        assert_true(atomic_load(&a.f.live) + atomic_load(&b.f.live) <= 6);
        tu_sleep_ms(10);
    }
    assert_false(atomic_load(&jobs[0].done) || atomic_load(&jobs[1].done));
    tp_conn_release(la[3], 0); /* above a's share: shed, now or at once after */
    tp_conn_release(la[4], 0);
    for (int i = 0; i < 2; i++) {
        tu_thread_join(t[i]);
        if (jobs[i].result != TP_OK)
            fail_msg("b's acquire: %s: %s", tp_err_name(jobs[i].result), jobs[i].err.msg);
        lb[1 + i] = jobs[i].conn;
    }
    assert_true(atomic_load(&a.f.live) + atomic_load(&b.f.live) <= 6);
    assert_int_equal(tu_pool_stats(a.p).closes[TP_CLOSE_SHED], 2);
    assert_int_equal(atomic_load(&a.f.live), 3);
    assert_int_equal(atomic_load(&b.f.live), 3);
    tp_fleet_member m[4];
    int64_t cap;
    size_t n = 0;
    bool ok;
    TU_WAIT_UNTIL(ok,
                  tp_fleet_status(url, "two", &cap, m, 4, &n, NULL) == TP_OK && n == 2 &&
                      m[0].held == 3 && m[1].held == 3,
                  3000);
    assert_true(ok);
    assert_int_equal(cap, 6);
    assert_string_equal(m[0].instance, "a");
    assert_string_equal(m[1].instance, "b");
    assert_int_equal(m[0].share, 3);
    assert_int_equal(m[1].share, 3);
    assert_true(fstats(&b).permit_waits >= 1);
    for (int i = 0; i < 3; i++) {
        tp_conn_release(la[i], 0);
        tp_conn_release(lb[i], 0);
    }
    /* a leaves: its permits are free at once, b may take all 6. */
    inst_stop(&a);
    tp_conn *more[6];
    int64_t t0 = tu_now_ns();
    take_n(&b, more, 6);
    assert_true(tu_ms_since(t0) < 350); /* well before a's lease (400 ms) could lapse */
    assert_int_equal(atomic_load(&b.f.live), 6);
    for (int i = 0; i < 6; i++)
        tp_conn_release(more[i], 0);
    inst_stop(&b);
}

/* A stopped thread: its lease lapses and the other takes its permits; meanwhile it opens
 * nothing new; resumed, it re-asserts and is counted again. */
static void test_lapsed_lease(void **state)
{
    (void)state;
    inst a, b;
    inst_start(&a, "lapse", "a", 4, TP_FLEET_DEGRADED);
    inst_start(&b, "lapse", "b", 4, TP_FLEET_DEGRADED);
    tp_conn *la[4], *lb[4];
    take_n(&a, la, 2);
    tp__fleet_pause(a.fl, true);
    int64_t t0 = tu_now_ns();
    take_n(&b, lb, 4); /* two of them only once a's lease lapsed */
    double ms = tu_ms_since(t0);
    print_message("the other's permits came back %.0f ms after its heartbeats stopped\n", ms);
    assert_true(ms >= 250 && ms <= 2500);
    tu_sleep_ms(400); /* a's own lease is surely stale now */
    tp_conn *x = NULL;
    assert_int_equal(tp_pool_acquire(a.p, "k", 1, MS(200), &x, NULL), TP_ETIMEDOUT);
    assert_int_equal(atomic_load(&a.f.opens), 2);
    tp__fleet_pause(a.fl, false);
    bool ok;
    TU_WAIT_UNTIL(ok, fstats(&a).rebirths >= 1, 3000);
    assert_true(ok);
    for (int i = 0; i < 2; i++)
        tp_conn_release(la[i], 0);
    for (int i = 0; i < 4; i++)
        tp_conn_release(lb[i], 0);
    inst_stop(&a);
    inst_stop(&b);
}

/* Reconciliation: a lapsed instance's permits are held back while the server says its
 * connections remain, shrink as they go, and return at 0. */
static void test_held_back(void **state)
{
    (void)state;
    reconciled = true;
    inst a, b;
    inst_start(&a, "back", "a", 4, TP_FLEET_DEGRADED);
    inst_start(&b, "back", "b", 4, TP_FLEET_DEGRADED);
    tp_conn *la[3], *lb[4];
    take_n(&a, la, 3);
    atomic_store(&server_has, 3); /* a's three stay on the server */
    tp__fleet_pause(a.fl, true);
    take_n(&b, lb, 1);
    tp_conn *x = NULL;
    assert_int_equal(tp_pool_acquire(b.p, "k", 1, MS(1200), &x, NULL), TP_ETIMEDOUT);
    tp_fleet_member m[4];
    int64_t cap;
    size_t n = 0;
    assert_int_equal(tp_fleet_status(url, "back", &cap, m, 4, &n, NULL), TP_OK);
    assert_int_equal(n, 2);
    assert_string_equal(m[0].instance, "a");
    assert_int_equal(m[0].held, 3);
    assert_int_equal(m[0].lease_ns, -1);
    atomic_store(&server_has, 1); /* two of them went: two permits come back */
    take_n(&b, lb + 1, 2);
    assert_int_equal(tp_pool_acquire(b.p, "k", 1, MS(400), &x, NULL), TP_ETIMEDOUT);
    atomic_store(&server_has, 0);
    take_n(&b, lb + 3, 1);
    assert_int_equal(atomic_load(&b.f.live), 4);
    for (int i = 0; i < 4; i++)
        tp_conn_release(lb[i], 0);
    tp__fleet_pause(a.fl, false);
    for (int i = 0; i < 3; i++)
        tp_conn_release(la[i], 0);
    inst_stop(&a);
    inst_stop(&b);
    reconciled = false;
}

/* Redis stops: fail closed refuses (TP_ENOPERMIT with nothing to wait for), degraded
 * opens up to the last share; back, the state is rebuilt from what each holds. */
static void test_redis_down_and_back(void **state)
{
    (void)state;
    inst d, c, o;
    inst_start(&d, "down", "d", 4, TP_FLEET_DEGRADED);
    inst_start(&c, "down", "c", 4, TP_FLEET_FAIL_CLOSED);
    inst_start(&o, "down", "o", 4, TP_FLEET_FAIL_OPEN);
    tp_conn *ld[4];
    take_n(&d, ld, 3);
    bool ok;
    TU_WAIT_UNTIL(ok, fstats(&d).share == 3, 3000);
    assert_true(ok);
    assert_int_equal(rt_script(&env, "stop"), 0);
    TU_WAIT_UNTIL(ok, fstats(&d).degraded && fstats(&c).degraded && fstats(&o).degraded, 5000);
    assert_true(ok);
    /* Fail open: the cap no longer binds (the server's own limit decides). */
    tp_conn *lo[5];
    take_n(&o, lo, 5);
    tp_conn *x = NULL;
    tp_errinfo e;
    assert_int_equal(tp_pool_acquire(c.p, "k", 1, MS(500), &x, &e), TP_ENOPERMIT);
    assert_true(tu_pool_stats(c.p).permit_refusals >= 1);
    int64_t share = fstats(&d).share;
    /* Degraded: what is held serves (released and taken again), nothing beyond the last
     * share opens. */
    tp_conn_release(ld[2], 0);
    take_n(&d, ld + 2, 1);
    assert_int_equal(tp_pool_acquire(d.p, "k", 1, MS(200), &x, NULL), TP_ETIMEDOUT);
    assert_int_equal(atomic_load(&d.f.opens), share);
    assert_true(fstats(&d).degraded_ns > 0);
    assert_int_equal(rt_script(&env, "restart"), 0);
    TU_WAIT_UNTIL(ok, !fstats(&d).degraded && !fstats(&c).degraded, 5000);
    assert_true(ok);
    tp_fleet_member m[4];
    int64_t cap;
    size_t n = 0;
    TU_WAIT_UNTIL(ok,
                  tp_fleet_status(url, "down", &cap, m, 4, &n, NULL) == TP_OK && n == 3 &&
                      m[1].held == share && m[2].held == 5,
                  5000);
    assert_true(ok);
    for (int64_t i = 0; i < share; i++)
        tp_conn_release(ld[i], 0);
    for (int i = 0; i < 5; i++)
        tp_conn_release(lo[i], 0);
    inst_stop(&d);
    inst_stop(&c);
    inst_stop(&o);
}

int main(void)
{
    tu_watchdog(120);
    int rc = rt_start(&env);
    if (rc != 0)
        return rc;
    rt_url(&env, url, sizeof url, NULL, 0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_options),
        cmocka_unit_test(test_two_share_a_cap),
        cmocka_unit_test(test_lapsed_lease),
        cmocka_unit_test(test_held_back),
        cmocka_unit_test(test_redis_down_and_back),
    };
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    rt_stop(&env);
    return rc;
}
