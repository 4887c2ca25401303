/* test_fleet_pg.c: one connection budget shared by four processes (tidepool/fleet.h), on
 * a real Redis, against a real PostgreSQL with max_connections 40 and a fleet cap of 20.
 * Each child runs 16 threads of acquire, SELECT pg_sleep(0.002), release through its own
 * pool; the parent counts the clients' backends in pg_stat_activity every 10 ms and
 * reads the budget with tp_fleet_status.
 *
 * In order, on one run: steady state (the count never exceeds 20, no request fails,
 * every process makes progress, equal demand gets shares within 20 %); one process goes
 * idle (it gives its permits back to the others, which wait) and comes back (the shares
 * even out again); kill -9 of one (its permits return within lease + heartbeats and the
 * others use them); SIGSTOP of one past its lease, then SIGCONT (its backends stay on
 * the server, and reconciliation with pg_stat_activity holds its lapsed permits back:
 * still never more than 20); Redis restarted empty (the state is rebuilt from the holders, no
 * overshoot); Redis stopped (degraded: what is held stays, nothing beyond the last
 * shares). Timings are short (heartbeat 200 ms, lease 1 s) so the run takes ~25 s.
 * Skipped (77) without libpq, PostgreSQL or Redis. */
#include "pg_common.h"
#include "redis_test_env.h"

#include <tidepool/fleet.h>

#ifdef PG_TESTS_HAVE_LIBPQ
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#define KIDS 4
#define THREADS 16
#define CAP 20
#define HEARTBEAT_MS 200
#define LEASE_MS 1000
#define NAME "pgfleet"

/* What the parent and the children share (an anonymous shared mapping). */
typedef struct shared {
    atomic_bool stop;
    atomic_bool paused[KIDS]; /* the child's threads stop issuing requests */
    _Atomic uint64_t ok[KIDS], failed[KIDS];
    _Atomic int64_t held[KIDS];
    _Atomic uint64_t redis_commands[KIDS], opens[KIDS], sheds[KIDS];
    atomic_bool degraded[KIDS];
    atomic_int ready;
    char err[KIDS][320];
} shared;

static shared *sh;
static rt_env redis;
static char redis_url[96];

/* ---- a child: one process of the service ------------------------------------------ */

typedef struct kid {
    int i;
    tp_pg_pool *pp;
    tp_pg_target *t;
} kid;

static void *kid_thread(void *arg)
{
    kid *k = arg;
    while (!atomic_load(&sh->stop)) {
        if (atomic_load(&sh->paused[k->i])) {
            usleep(5000);
            continue;
        }
        tp_conn *l = NULL;
        tp_errinfo e;
        tp_err rc = tp_pg_acquire(k->pp, k->t, MS(30000), 0, &l, &e);
        if (rc == TP_OK) {
            rc = tp_pg_query_simple(l, "SELECT pg_sleep(0.002)", &e);
            tp_pg_release(l, 0);
        }
        if (rc == TP_OK) {
            atomic_fetch_add(&sh->ok[k->i], 1);
        } else {
            atomic_fetch_add(&sh->failed[k->i], 1);
            snprintf(sh->err[k->i], sizeof sh->err[k->i], "%s: %.255s", tp_err_name(rc), e.msg);
        }
    }
    return NULL;
}

static int kid_main(int i)
{
    tp_fleet_options fo;
    tp_fleet_options_init(&fo);
    char inst[32];
    snprintf(inst, sizeof inst, "kid-%d", i);
    fo.redis_url = redis_url;
    fo.name = NAME;
    fo.cap = CAP;
    fo.instance = inst;
    fo.heartbeat = MS(HEARTBEAT_MS);
    fo.lease = MS(LEASE_MS);
    /* Reconciliation: a lapsed kid's permits stay held back while its backends remain. */
    static char admin[256];
    snprintf(admin, sizeof admin,
             "host=127.0.0.1 port=%d user=postgres dbname=postgres connect_timeout=2", env.port);
    fo.still_open = tp_pg_fleet_backends;
    fo.still_open_ud = admin;
    tp_fleet *f = NULL;
    tp_errinfo e;
    if (tp_fleet_create(&fo, &f, &e) != TP_OK) {
        snprintf(sh->err[i], sizeof sh->err[i], "tp_fleet_create: %.255s", e.msg);
        return 1;
    }
    tp_pg_options po;
    tp_pg_options_init(&po);
    po.pool.max_per_key = THREADS;
    po.pool.permits = tp_fleet_hook(f);
    po.pool.maintenance_interval = MS(100);
    kid k = {.i = i};
    char ci[320];
    snprintf(ci, sizeof ci,
             "host=127.0.0.1 port=%d user=tenant_b password=%s dbname=tenant_b "
             "application_name=tidepool/%s",
             env.port, PG_ENV_TENANT_PASSWORD, inst);
    if (tp_pg_pool_create(&po, &k.pp, &e) != TP_OK || tp_pg_pool_add(k.pp, ci, &k.t, &e) != TP_OK ||
        tp_fleet_attach(f, tp_pg_pool_tp(k.pp)) != TP_OK) {
        snprintf(sh->err[i], sizeof sh->err[i], "pool: %.255s", e.msg);
        return 1;
    }
    pthread_t th[THREADS];
    for (int n = 0; n < THREADS; n++)
        if (pthread_create(&th[n], NULL, kid_thread, &k) != 0)
            return 1;
    atomic_fetch_add(&sh->ready, 1);
    while (!atomic_load(&sh->stop)) {
        tp_fleet_stats fs;
        tp_fleet_stats_get(f, &fs);
        tp_stats ps;
        tp_pool_stats(tp_pg_pool_tp(k.pp), &ps);
        atomic_store(&sh->held[i], fs.held);
        atomic_store(&sh->redis_commands[i], fs.redis_commands);
        atomic_store(&sh->sheds[i], fs.sheds);
        atomic_store(&sh->opens[i], ps.opens);
        atomic_store(&sh->degraded[i], fs.degraded);
        usleep(20000);
    }
    for (int n = 0; n < THREADS; n++)
        pthread_join(th[n], NULL);
    tp_pg_pool_destroy(k.pp);
    tp_fleet_destroy(f);
    return 0;
}

/* ---- the parent: the sampler and the scenario -------------------------------------- */

static atomic_bool sampling;
static _Atomic int64_t window_max; /* the most backends seen since the last reset */
static _Atomic int64_t last_count;

static void *sampler(void *arg)
{
    (void)arg;
    char ci[256];
    PGconn *c = PQconnectdb(pg_env_conninfo(&env, ci, sizeof ci, "postgres", NULL, "postgres"));
    while (atomic_load(&sampling)) {
        PGresult *r = PQexec(c, "SELECT count(*) FROM pg_stat_activity WHERE usename = 'tenant_b'");
        if (PQresultStatus(r) == PGRES_TUPLES_OK) {
            int64_t n = atoll(PQgetvalue(r, 0, 0));
            atomic_store(&last_count, n);
            int64_t m = atomic_load(&window_max);
            while (n > m && !atomic_compare_exchange_weak(&window_max, &m, n)) {
            }
        }
        PQclear(r);
        usleep(10000);
    }
    PQfinish(c);
    return NULL;
}

static int64_t window_reset(void)
{
    return atomic_exchange(&window_max, 0);
}

/* The budget as Redis has it: held by kid i (-1 if absent), in *held. */
static size_t status(int64_t held[KIDS], int64_t share[KIDS])
{
    tp_fleet_member m[16];
    size_t n = 0;
    int64_t cap = 0;
    for (int i = 0; i < KIDS; i++)
        held[i] = share[i] = -1;
    if (tp_fleet_status(redis_url, NAME, &cap, m, 16, &n, NULL) != TP_OK)
        return 0;
    for (size_t j = 0; j < n && j < 16; j++) {
        int i = -1;
        if (sscanf(m[j].instance, "kid-%d", &i) == 1 && i >= 0 && i < KIDS) {
            held[i] = m[j].held;
            share[i] = m[j].share;
        }
    }
    return n;
}

static int64_t held_by(const int64_t held[KIDS], int skip1, int skip2)
{
    int64_t s = 0;
    for (int i = 0; i < KIDS; i++)
        if (i != skip1 && i != skip2 && held[i] > 0)
            s += held[i];
    return s;
}

/* Polls every 20 ms until the kids but skip1/skip2 hold want permits together; the
 * milliseconds it took, or -1 after limit_ms. */
static double until_held(int skip1, int skip2, int64_t want, double limit_ms)
{
    int64_t t0 = tu_now_ns();
    int64_t held[KIDS], share[KIDS];
    while (tu_ms_since(t0) < limit_ms) {
        status(held, share);
        if (held_by(held, skip1, skip2) == want)
            return tu_ms_since(t0);
        tu_sleep_ms(20);
    }
    return -1;
}

static uint64_t total_failed(void)
{
    uint64_t f = 0;
    for (int i = 0; i < KIDS; i++)
        f += atomic_load(&sh->failed[i]);
    return f;
}

static void expect_no_failures(void)
{
    for (int i = 0; i < KIDS; i++)
        if (atomic_load(&sh->failed[i]) != 0)
            fail_msg("kid %d: %llu failed requests; last: %s", i,
                     (unsigned long long)atomic_load(&sh->failed[i]), sh->err[i]);
}

static void test_fleet_of_four(void **state)
{
    (void)state;
    pid_t kids[KIDS];
    for (int i = 0; i < KIDS; i++) {
        kids[i] = fork();
        assert_true(kids[i] >= 0);
        if (kids[i] == 0) {
            prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive a test that died */
            _exit(kid_main(i));
        }
    }
    pthread_t smp;
    atomic_store(&sampling, true);
    tu_thread_start(&smp, sampler, NULL);
    bool ok;
    TU_WAIT_UNTIL(ok, atomic_load(&sh->ready) == KIDS, 20000);
    if (!ok)
        fail_msg("the kids did not start: %s | %s | %s | %s", sh->err[0], sh->err[1], sh->err[2],
                 sh->err[3]);

    /* 1. Steady state: the cap holds on the server, everyone progresses, shares even. */
    assert_true(until_held(-1, -1, CAP, 10000) >= 0);
    tu_sleep_ms(500);
    window_reset();
    uint64_t ok0[KIDS], cmd0 = 0, cmd1 = 0;
    for (int i = 0; i < KIDS; i++) {
        ok0[i] = atomic_load(&sh->ok[i]);
        cmd0 += atomic_load(&sh->redis_commands[i]);
    }
    tu_sleep_ms(3000);
    int64_t steady_max = window_reset();
    int64_t held[KIDS], share[KIDS];
    status(held, share);
    int64_t lo = INT64_MAX, hi = 0;
    for (int i = 0; i < KIDS; i++) {
        cmd1 += atomic_load(&sh->redis_commands[i]);
        assert_true(atomic_load(&sh->ok[i]) > ok0[i]);
        lo = held[i] < lo ? held[i] : lo;
        hi = held[i] > hi ? held[i] : hi;
    }
    print_message("steady: at most %lld backends (cap %d); held %lld %lld %lld %lld; "
                  "%.1f Redis commands/s per process\n",
                  (long long)steady_max, CAP, (long long)held[0], (long long)held[1],
                  (long long)held[2], (long long)held[3], (double)(cmd1 - cmd0) / 3.0 / KIDS);
    assert_true(steady_max <= CAP);
    assert_true(steady_max >= CAP - 4); /* the budget is used, not wasted */
    assert_true(hi - lo <= 1);          /* equal demand: 5 each, within 20 % */
    expect_no_failures();

    /* 2. One goes idle: its idle connections go back to the others, who wait. */
    atomic_store(&sh->paused[0], true);
    double gave = until_held(0, -1, CAP, 5000);
    print_message("idle kid-0 gave its permits to the others in %.0f ms\n", gave);
    assert_true(gave >= 0);
    atomic_store(&sh->paused[0], false);
    double back = -1;
    int64_t t0 = tu_now_ns();
    while (tu_ms_since(t0) < 5000 && back < 0) {
        status(held, share);
        if (held[0] >= 4 && held[0] <= 6)
            back = tu_ms_since(t0);
        tu_sleep_ms(20);
    }
    print_message("kid-0 back to its share (%lld) in %.0f ms\n", (long long)held[0], back);
    assert_true(back >= 0);
    assert_true(window_reset() <= CAP);

    /* 3. kill -9: the lease lapses and the others take its permits. */
    status(held, share);
    int64_t killed_held = held[3];
    kill(kids[3], SIGKILL);
    assert_int_equal(waitpid(kids[3], NULL, 0), kids[3]);
    kids[3] = -1;
    double reclaim = until_held(3, -1, CAP, LEASE_MS + 4 * HEARTBEAT_MS + 3000);
    print_message("kill -9 of kid-3 (held %lld): its permits reclaimed in %.0f ms (lease %d ms, "
                  "heartbeat %d ms)\n",
                  (long long)killed_held, reclaim, LEASE_MS, HEARTBEAT_MS);
    assert_true(reclaim >= 0);
    assert_true(reclaim <= LEASE_MS + 4 * HEARTBEAT_MS + 3000);
    assert_true(window_reset() <= CAP);

    /* 4. SIGSTOP past the lease: its backends stay on the server, and reconciliation
     * holds its lapsed permits back while they do, so the others cannot use them: the
     * cap holds; after SIGCONT it re-asserts and all goes on. */
    tu_sleep_ms(300);
    status(held, share);
    int64_t stopped_held = held[2];
    kill(kids[2], SIGSTOP);
    tu_sleep_ms(LEASE_MS + 3 * HEARTBEAT_MS);
    int64_t stop_max = window_reset();
    kill(kids[2], SIGCONT);
    tu_sleep_ms(1500);
    window_reset();
    tu_sleep_ms(1000);
    int64_t after_cont = window_reset();
    print_message("SIGSTOP of kid-2 (held %lld): at most %lld backends while stopped; at most "
                  "%lld from 1.5 s after SIGCONT\n",
                  (long long)stopped_held, (long long)stop_max, (long long)after_cont);
    assert_true(stop_max <= CAP);
    assert_true(after_cont <= CAP);

    /* 5. Redis restarted empty: the holders re-assert, nothing overshoots. */
    window_reset();
    assert_int_equal(rt_script(&redis, "restart"), 0);
    double rebuilt = until_held(3, -1, CAP, 10000);
    tu_sleep_ms(1000);
    int64_t restart_max = window_reset();
    print_message("Redis restarted empty: the state rebuilt in %.0f ms; at most %lld backends\n",
                  rebuilt, (long long)restart_max);
    assert_true(rebuilt >= 0);
    assert_true(restart_max <= CAP);

    /* 6. Redis stopped: degraded, what is held stays, no overshoot. */
    assert_int_equal(rt_script(&redis, "stop"), 0);
    TU_WAIT_UNTIL(ok, atomic_load(&sh->degraded[0]) && atomic_load(&sh->degraded[1]), 5000);
    assert_true(ok);
    window_reset();
    uint64_t before_ok = atomic_load(&sh->ok[0]) + atomic_load(&sh->ok[1]);
    tu_sleep_ms(1500);
    int64_t degraded_max = window_reset();
    print_message("Redis stopped: degraded, at most %lld backends\n", (long long)degraded_max);
    assert_true(degraded_max <= CAP);
    assert_true(atomic_load(&sh->ok[0]) + atomic_load(&sh->ok[1]) > before_ok);

    atomic_store(&sh->stop, true);
    for (int i = 0; i < KIDS; i++) {
        if (kids[i] < 0)
            continue;
        int st = 0;
        assert_int_equal(waitpid(kids[i], &st, 0), kids[i]);
        assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    atomic_store(&sampling, false);
    tu_thread_join(smp);
    assert_int_equal(total_failed(), 0);
}
#endif

int main(void)
{
#ifdef PG_TESTS_HAVE_LIBPQ
    sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED)
        return 1;
    memset(sh, 0, sizeof *sh);
    int rc = rt_start(&redis);
    if (rc != 0)
        return rc;
    rt_url(&redis, redis_url, sizeof redis_url, NULL, 0);
    setenv("PG_TEST_MAX_CONNECTIONS", "40", 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fleet_of_four),
    };
    int st = pg_main("fleet", tests, sizeof tests / sizeof tests[0]);
    rt_stop(&redis);
    return st;
#else
    fprintf(stderr, "libpq headers not installed: skipped\n");
    return 77;
#endif
}
