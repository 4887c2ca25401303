/* test_workq.c: the library's worker threads (base/workq.h, tidepool/runtime.h): every
 * job runs once, never more than the configured workers at a time; the bounded queue
 * refuses with TP_EBUSY; configuring while they run is TP_ESTATE; shutdown runs what is
 * queued and joins, and the next job starts them again; a forked child gets workers of
 * its own; an asynchronous acquire's open runs on a worker, and a lookup made on a
 * worker runs in place. Timed jobs: not before their time, moved earlier or later,
 * periodic by arming themselves again, disarmed and waited for by tp__work_timed_fini,
 * still armed across a shutdown, forgotten by a forked child; pools' maintenance runs
 * as timed jobs, not on threads of their own. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <pthread.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include <tidepool/tidepool.h>

#include "base/workq.h"
#include "support/fake_connector.h"
#include "support/test_util.h"

typedef struct job {
    tp__work work;
    atomic_int *runs;
    atomic_int *running, *max_running;
    atomic_bool *gate; /* while true, the job waits */
    bool on_worker;
} job;

static void job_fn(tp__work *w)
{
    job *j = TP__CONTAINER_OF(w, job, work);
    j->on_worker = tp__work_on_worker();
    int now = atomic_fetch_add(j->running, 1) + 1;
    int max = atomic_load(j->max_running);
    while (now > max && !atomic_compare_exchange_weak(j->max_running, &max, now)) {
    }
    while (j->gate != NULL && atomic_load(j->gate))
        tu_sleep_ms(1);
    tu_sleep_ms(2);
    atomic_fetch_sub(j->running, 1);
    atomic_fetch_add(j->runs, 1);
}

static void configure(int workers, int64_t max_queued)
{
    tp_runtime_shutdown();
    tp_runtime_options o;
    tp_runtime_options_init(&o);
    o.workers = workers;
    o.max_queued = max_queued;
    assert_int_equal(tp_runtime_configure(&o), TP_OK);
}

static void test_jobs_run_once_within_the_workers(void **state)
{
    (void)state;
    configure(3, 4096);
    atomic_int runs = 0, running = 0, max_running = 0;
    job jobs[60];
    for (int i = 0; i < 60; i++) {
        jobs[i] = (job){
            .work.fn = job_fn, .runs = &runs, .running = &running, .max_running = &max_running};
        assert_int_equal(tp__work_submit(&jobs[i].work), TP_OK);
    }
    bool all = false;
    TU_WAIT_UNTIL(all, atomic_load(&runs) == 60, 5000);
    assert_true(all);
    assert_int_equal(atomic_load(&max_running), 3);
    for (int i = 0; i < 60; i++)
        assert_true(jobs[i].on_worker);
    assert_false(tp__work_on_worker());
}

static void test_queue_bound_and_configure(void **state)
{
    (void)state;
    configure(1, 2);
    atomic_int runs = 0, running = 0, max_running = 0;
    atomic_bool gate = true;
    job jobs[4];
    for (int i = 0; i < 4; i++)
        jobs[i] = (job){.work.fn = job_fn,
                        .runs = &runs,
                        .running = &running,
                        .max_running = &max_running,
                        .gate = &gate};
    assert_int_equal(tp__work_submit(&jobs[0].work), TP_OK);
    bool taken = false;
    TU_WAIT_UNTIL(taken, atomic_load(&running) == 1, 2000); /* the worker holds job 0 */
    assert_true(taken);
    assert_int_equal(tp__work_submit(&jobs[1].work), TP_OK);
    assert_int_equal(tp__work_submit(&jobs[2].work), TP_OK);
    assert_int_equal(tp__work_submit(&jobs[3].work), TP_EBUSY); /* two already wait */
    tp_runtime_options o;
    tp_runtime_options_init(&o);
    assert_int_equal(tp_runtime_configure(&o), TP_ESTATE);
    o.workers = 0;
    assert_int_equal(tp_runtime_configure(&o), TP_EINVAL);
    atomic_store(&gate, false);
    /* Shutdown runs what is queued before it joins. */
    tp_runtime_shutdown();
    assert_int_equal(atomic_load(&runs), 3);
    /* And the next job starts the workers again. */
    assert_int_equal(tp__work_submit(&jobs[3].work), TP_OK);
    bool done = false;
    TU_WAIT_UNTIL(done, atomic_load(&runs) == 4, 2000);
    assert_true(done);
}

static void test_child_after_fork_gets_its_own_workers(void **state)
{
    (void)state;
    if (TU_UNDER_TSAN) /* no threads in a child of a threaded process, under TSan */
        skip();
    configure(2, 4096);
    atomic_int runs = 0, running = 0, max_running = 0;
    job j = {.work.fn = job_fn, .runs = &runs, .running = &running, .max_running = &max_running};
    assert_int_equal(tp__work_submit(&j.work), TP_OK); /* the parent's workers run */
    bool done = false;
    TU_WAIT_UNTIL(done, atomic_load(&runs) == 1, 2000);
    assert_true(done);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        atomic_store(&runs, 0);
        if (tp__work_submit(&j.work) != TP_OK)
            _exit(2);
        for (int i = 0; i < 2000 && atomic_load(&runs) == 0; i++)
            tu_sleep_ms(1);
        _exit(atomic_load(&runs) == 1 ? 0 : 3);
    }
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
}

static atomic_int opens_on_worker, opens_elsewhere;

static void note_thread(void *ud)
{
    (void)ud;
    if (tp__work_on_worker())
        atomic_fetch_add(&opens_on_worker, 1);
    else
        atomic_fetch_add(&opens_elsewhere, 1);
}

typedef struct cb_rec {
    atomic_int calls;
    atomic_int status;
    _Atomic int64_t at; /* tp_clock_now() of the call */
    _Atomic(tp_conn *) conn;
} cb_rec;

static void on_acquired(void *ud, tp_err status, tp_acquired kind, tp_conn *conn,
                        const tp_errinfo *err)
{
    (void)kind;
    (void)err;
    cb_rec *r = ud;
    if (status == TP_OK)
        atomic_store(&r->conn, conn);
    atomic_store(&r->status, status);
    atomic_store(&r->at, tp_clock_now());
    atomic_fetch_add(&r->calls, 1);
}

/* n asynchronous acquires of key k that must queue (TP_ACQUIRED_PENDING), recorded in r[0..n). */
static void queue_acquires(tp_pool *p, cb_rec *r, int n, int64_t timeout)
{
    for (int i = 0; i < n; i++) {
        tp_conn *c = NULL;
        assert_int_equal(
            tu_async(p, KEY("k"), timeout, 0, on_acquired, &r[i], &c, NULL, NULL),
            TP_ACQUIRED_PENDING);
    }
}

static void test_async_opens_run_on_workers(void **state)
{
    (void)state;
    configure(2, 4096);
    fake_connector f;
    fake_init(&f);
    f.reenter = note_thread; /* runs inside every connector call */
    tp_pool_options o;
    fake_pool_options(&f, &o);
    o.maintenance_thread = false;
    tp_pool *p = tu_pool_create(&o);
    cb_rec r[4];
    memset(r, 0, sizeof r);
    atomic_store(&opens_on_worker, 0);
    fake_gate_close(&f); /* every open waits, so each acquire needs its own */
    queue_acquires(p, r, 4, MS(5000));
    bool two = false;
    TU_WAIT_UNTIL(two, fake_gate_waiting(&f) == 2, 2000); /* two workers, two opens */
    assert_true(two);
    tu_sleep_ms(20);
    assert_int_equal(fake_gate_waiting(&f), 2);
    fake_gate_open(&f);
    bool done = false;
    TU_WAIT_UNTIL(done,
                  atomic_load(&r[0].calls) + atomic_load(&r[1].calls) + atomic_load(&r[2].calls) +
                          atomic_load(&r[3].calls) ==
                      4,
                  3000);
    assert_true(done);
    assert_int_equal(atomic_load(&opens_on_worker), 4);
    for (int i = 0; i < 4; i++)
        tp_conn_release(atomic_load(&r[i].conn), 0);
    tp_pool_destroy(p);
    fake_destroy(&f);
}

/* A timed job that records when it ran, optionally holding a gate, and arms itself
 * again every `period` ns while rearm is set. */
typedef struct tjob {
    tp__work work;
    atomic_int runs;
    _Atomic int64_t first_at, last_at;
    atomic_bool gate; /* while true, a run waits */
    atomic_bool running;
    int64_t period;
    atomic_bool rearm;
} tjob;

static void tjob_fn(tp__work *w)
{
    tjob *j = TP__CONTAINER_OF(w, tjob, work);
    atomic_store(&j->running, true);
    int64_t now = tp_clock_now(); /* the clock the timers keep */
    int64_t zero = 0;
    atomic_compare_exchange_strong(&j->first_at, &zero, now);
    atomic_store(&j->last_at, now);
    while (atomic_load(&j->gate))
        tu_sleep_ms(1);
    atomic_fetch_add(&j->runs, 1);
    if (atomic_load(&j->rearm))
        assert_int_equal(tp__work_at(&j->work, tp_clock_now() + j->period), TP_OK);
    atomic_store(&j->running, false);
}

static void tjob_init(tjob *j)
{
    memset(j, 0, sizeof *j);
    assert_int_equal(tp__work_timed_init(&j->work, tjob_fn), TP_OK);
}

static void test_timed_job_runs_at_its_time_and_moves(void **state)
{
    (void)state;
    configure(2, 4096);
    tjob j;
    tjob_init(&j);
    int64_t t0 = tp_clock_now();
    assert_int_equal(tp__work_at(&j.work, t0 + MS(60)), TP_OK);
    tu_sleep_ms(20);
    assert_int_equal(atomic_load(&j.runs), 0); /* not before its time */
    bool ran = false;
    TU_WAIT_UNTIL(ran, atomic_load(&j.runs) == 1, 2000);
    assert_true(ran);
    assert_true(atomic_load(&j.first_at) - t0 >= MS(60));
    assert_true(atomic_load(&j.first_at) - t0 <= MS(60 + 300));
    /* Armed far off, then brought forward: it runs at the new time. */
    int64_t t1 = tp_clock_now();
    assert_int_equal(tp__work_at(&j.work, t1 + TP_NSEC_PER_SEC * 30), TP_OK);
    assert_int_equal(tp__work_at(&j.work, t1 + MS(30)), TP_OK);
    TU_WAIT_UNTIL(ran, atomic_load(&j.runs) == 2, 2000);
    assert_true(ran);
    assert_true(atomic_load(&j.last_at) - t1 >= MS(30));
    assert_true(atomic_load(&j.last_at) - t1 <= MS(30 + 300));
    /* Moved later: it does not run at the earlier time. */
    int64_t t2 = tp_clock_now();
    assert_int_equal(tp__work_at(&j.work, t2 + MS(20)), TP_OK);
    assert_int_equal(tp__work_at(&j.work, t2 + MS(150)), TP_OK);
    tu_sleep_ms(80);
    assert_int_equal(atomic_load(&j.runs), 2);
    TU_WAIT_UNTIL(ran, atomic_load(&j.runs) == 3, 2000);
    assert_true(ran);
    assert_true(atomic_load(&j.last_at) - t2 >= MS(150));
    /* Disarmed before its time, it never runs. */
    assert_int_equal(tp__work_at(&j.work, tp_clock_now() + MS(30)), TP_OK);
    tp__work_timed_fini(&j.work);
    tu_sleep_ms(100);
    assert_int_equal(atomic_load(&j.runs), 3);
}

static int total_runs(tjob *js, int n)
{
    int runs = 0;
    for (int i = 0; i < n; i++)
        runs += atomic_load(&js[i].runs);
    return runs;
}

static void test_timed_jobs_in_order_and_periodic(void **state)
{
    (void)state;
    configure(1, 4096);
    /* One worker, many timers armed out of order: each runs once, none early. */
    enum { N = 40 };
    static tjob js[N];
    int64_t t0 = tp_clock_now();
    for (int i = 0; i < N; i++) {
        tjob_init(&js[i]);
        int64_t at = t0 + MS(10) + MS((i * 17) % N);
        assert_int_equal(tp__work_at(&js[i].work, at), TP_OK);
    }
    bool all = false;
    TU_WAIT_UNTIL(all, total_runs(js, N) == N, 3000);
    assert_true(all);
    for (int i = 0; i < N; i++) {
        assert_int_equal(atomic_load(&js[i].runs), 1);
        assert_true(atomic_load(&js[i].first_at) - t0 >= MS(10) + MS((i * 17) % N));
        tp__work_timed_fini(&js[i].work);
    }
    /* A job that arms itself again runs every period until it stops. */
    tjob p;
    tjob_init(&p);
    p.period = MS(10);
    atomic_store(&p.rearm, true);
    assert_int_equal(tp__work_at(&p.work, tp_clock_now()), TP_OK);
    bool five = false;
    TU_WAIT_UNTIL(five, atomic_load(&p.runs) >= 5, 3000);
    assert_true(five);
    tp__work_timed_fini(&p.work); /* disarms it even while it arms itself */
    int after = atomic_load(&p.runs);
    tu_sleep_ms(60);
    assert_int_equal(atomic_load(&p.runs), after);
}

static void test_busy_timer_does_not_starve_the_queue(void **state)
{
    /* One worker and a timed job that is always due again when it ends: a submitted
     * job still runs at once (timers have a thread of their own). */
    (void)state;
    configure(1, 4096);
    tjob busy;
    tjob_init(&busy);
    busy.period = 0;
    atomic_store(&busy.rearm, true);
    assert_int_equal(tp__work_at(&busy.work, tp_clock_now()), TP_OK);
    bool spinning = false;
    TU_WAIT_UNTIL(spinning, atomic_load(&busy.runs) >= 10, 2000);
    assert_true(spinning);
    atomic_int runs = 0, running = 0, max_running = 0;
    job j = {.work.fn = job_fn, .runs = &runs, .running = &running, .max_running = &max_running};
    assert_int_equal(tp__work_submit(&j.work), TP_OK);
    bool ran = false;
    TU_WAIT_UNTIL(ran, atomic_load(&runs) == 1, 2000);
    assert_true(ran);
    assert_true(atomic_load(&busy.runs) > 10); /* and the timer kept its turns too */
    tp__work_timed_fini(&busy.work);
}

typedef struct fini_arg {
    tjob *j;
    atomic_bool done;
} fini_arg;

static void *fini_thread(void *arg)
{
    fini_arg *a = arg;
    tp__work_timed_fini(&a->j->work);
    atomic_store(&a->done, true);
    return NULL;
}

static void test_timed_fini_waits_for_a_running_job(void **state)
{
    (void)state;
    configure(2, 4096);
    tjob j;
    tjob_init(&j);
    atomic_store(&j.gate, true);
    assert_int_equal(tp__work_at(&j.work, tp_clock_now()), TP_OK);
    bool started = false;
    TU_WAIT_UNTIL(started, atomic_load(&j.running), 2000);
    assert_true(started);
    fini_arg a = {.j = &j};
    pthread_t t;
    tu_thread_start(&t, fini_thread, &a);
    tu_sleep_ms(50);
    assert_false(atomic_load(&a.done)); /* the job still runs: its owner may not free it */
    atomic_store(&j.gate, false);
    tu_thread_join(t);
    assert_true(atomic_load(&a.done));
    assert_false(atomic_load(&j.running));
    assert_int_equal(atomic_load(&j.runs), 1);
}

static void test_timed_job_survives_a_shutdown(void **state)
{
    (void)state;
    configure(2, 4096);
    tjob j;
    tjob_init(&j);
    assert_int_equal(tp__work_at(&j.work, tp_clock_now() + MS(100)), TP_OK);
    tp_runtime_shutdown(); /* joins the workers; the job stays armed */
    assert_int_equal(atomic_load(&j.runs), 0);
    /* The next job starts the workers, and they find the timer. */
    atomic_int runs = 0, running = 0, max_running = 0;
    job other = {
        .work.fn = job_fn, .runs = &runs, .running = &running, .max_running = &max_running};
    assert_int_equal(tp__work_submit(&other.work), TP_OK);
    bool ran = false;
    TU_WAIT_UNTIL(ran, atomic_load(&j.runs) == 1, 2000);
    assert_true(ran);
    tp__work_timed_fini(&j.work);
}

static void test_child_forgets_armed_timers(void **state)
{
    (void)state;
    if (TU_UNDER_TSAN)
        skip();
    configure(2, 4096);
    tjob j;
    tjob_init(&j);
    assert_int_equal(tp__work_at(&j.work, tp_clock_now() + MS(80)), TP_OK);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* The parent's timer does not fire here; armed again, it does. */
        tu_sleep_ms(150);
        if (atomic_load(&j.runs) != 0)
            _exit(2);
        if (tp__work_at(&j.work, tp_clock_now() + MS(10)) != TP_OK)
            _exit(3);
        for (int i = 0; i < 2000 && atomic_load(&j.runs) == 0; i++)
            tu_sleep_ms(1);
        _exit(atomic_load(&j.runs) == 1 ? 0 : 4);
    }
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    bool ran = false;
    TU_WAIT_UNTIL(ran, atomic_load(&j.runs) == 1, 2000); /* the parent's still fires */
    assert_true(ran);
    tp__work_timed_fini(&j.work);
}

static void test_timeouts_on_time_while_workers_block(void **state)
{
    /* Both workers hang in opens (the gate); an acquire queued behind them still times
     * out on time, since the pass that fails it runs on the timer thread, not behind
     * the hung opens. */
    (void)state;
    configure(2, 4096);
    fake_connector f;
    fake_init(&f);
    tp_pool_options o;
    fake_pool_options(&f, &o);
    o.maintenance_thread = true;
    o.maintenance_interval = MS(20);
    o.max_per_key = 2;
    o.connect_timeout = 30 * TP_NSEC_PER_SEC;
    tp_pool *p = tu_pool_create(&o);
    cb_rec r[3];
    memset(r, 0, sizeof r);
    fake_gate_close(&f);
    queue_acquires(p, r, 2, MS(10000));
    bool hung = false;
    TU_WAIT_UNTIL(hung, fake_gate_waiting(&f) == 2, 2000);
    assert_true(hung);
    int64_t t0 = tp_clock_now(); /* the pool's clock, as the deadline is */
    tp_conn *c = NULL;
    assert_int_equal(
        tu_async(p, KEY("k"), MS(100), 0, on_acquired, &r[2], &c, NULL, NULL),
        TP_ACQUIRED_PENDING);
    bool failed = false;
    TU_WAIT_UNTIL(failed, atomic_load(&r[2].calls) == 1, 3000);
    assert_true(failed);
    assert_int_equal(atomic_load(&r[2].status), TP_ETIMEDOUT);
    assert_true(atomic_load(&r[2].at) - t0 >= MS(100));
    assert_true(atomic_load(&r[2].at) - t0 <= MS(100 + 20 + 400));
    fake_gate_open(&f);
    bool served = false;
    TU_WAIT_UNTIL(served, atomic_load(&r[0].calls) + atomic_load(&r[1].calls) == 2, 3000);
    assert_true(served);
    for (int i = 0; i < 2; i++)
        tp_conn_release(atomic_load(&r[i].conn), 0);
    tp_pool_destroy(p);
    fake_destroy(&f);
}

static int count_threads(void)
{
    DIR *d = opendir("/proc/self/task");
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

static void test_pools_maintain_on_the_workers(void **state)
{
    /* Sixteen pools with maintenance on start no thread of their own: the process has
     * at most the runtime's workers and its timer thread more than before, and each
     * pool's passes still run (idle connections close at their timeout). */
    (void)state;
    configure(2, 4096);
    int before = count_threads();
    enum { N = 16 };
    fake_connector f;
    fake_init(&f);
    tp_pool_options o;
    fake_pool_options(&f, &o);
    o.maintenance_thread = true;
    o.maintenance_interval = MS(20);
    o.idle_timeout = MS(40);
    tp_pool *pools[N];
    for (int i = 0; i < N; i++) {
        pools[i] = tu_pool_create(&o);
        tp_conn_release(tu_acquire(pools[i], "k", 0), 0);
    }
    assert_true(count_threads() <= before + 2 + 1);
    bool closed = false;
    TU_WAIT_UNTIL(closed, f.closes == N, 3000);
    assert_true(closed);
    assert_int_equal(f.close_reasons[TP_CLOSE_IDLE_TIMEOUT], N);
    for (int i = 0; i < N; i++)
        tp_pool_destroy(pools[i]);
    fake_destroy(&f);
}

int main(void)
{
    tu_watchdog(60);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_jobs_run_once_within_the_workers),
        cmocka_unit_test(test_queue_bound_and_configure),
        cmocka_unit_test(test_child_after_fork_gets_its_own_workers),
        cmocka_unit_test(test_async_opens_run_on_workers),
        cmocka_unit_test(test_timed_job_runs_at_its_time_and_moves),
        cmocka_unit_test(test_timed_jobs_in_order_and_periodic),
        cmocka_unit_test(test_busy_timer_does_not_starve_the_queue),
        cmocka_unit_test(test_timed_fini_waits_for_a_running_job),
        cmocka_unit_test(test_timed_job_survives_a_shutdown),
        cmocka_unit_test(test_child_forgets_armed_timers),
        cmocka_unit_test(test_timeouts_on_time_while_workers_block),
        cmocka_unit_test(test_pools_maintain_on_the_workers),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    tp_runtime_shutdown();
    return rc;
}
