/* test_workq.c: the library's worker threads (base/workq.h, tidepool/runtime.h): every
 * job runs once, never more than the configured workers at a time; the bounded queue
 * refuses with TP_EBUSY; configuring while they run is TP_ESTATE; shutdown runs what is
 * queued and joins, and the next job starts them again; a forked child gets workers of
 * its own; an asynchronous acquire's open runs on a worker, and a lookup made on a
 * worker runs in place. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
        jobs[i] = (job){.work.fn = job_fn, .runs = &runs, .running = &running,
                        .max_running = &max_running};
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
        jobs[i] = (job){.work.fn = job_fn, .runs = &runs, .running = &running,
                        .max_running = &max_running, .gate = &gate};
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
    _Atomic(tp_conn *) conn;
} cb_rec;

static void on_acquired(void *ud, tp_err status, tp_conn *conn, const tp_errinfo *err)
{
    (void)err;
    cb_rec *r = ud;
    if (status == TP_OK)
        atomic_store(&r->conn, conn);
    atomic_fetch_add(&r->calls, 1);
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
    for (int i = 0; i < 4; i++) {
        tp_conn *c = NULL;
        assert_int_equal(tp_pool_acquire_async(p, KEY("k"), MS(5000), on_acquired, &r[i], &c,
                                               NULL, NULL),
                         TP_PENDING);
    }
    bool two = false;
    TU_WAIT_UNTIL(two, fake_gate_waiting(&f) == 2, 2000); /* two workers, two opens */
    assert_true(two);
    tu_sleep_ms(20);
    assert_int_equal(fake_gate_waiting(&f), 2);
    fake_gate_open(&f);
    bool done = false;
    TU_WAIT_UNTIL(done, atomic_load(&r[0].calls) + atomic_load(&r[1].calls) +
                                atomic_load(&r[2].calls) + atomic_load(&r[3].calls) == 4,
                  3000);
    assert_true(done);
    assert_int_equal(atomic_load(&opens_on_worker), 4);
    for (int i = 0; i < 4; i++)
        tp_conn_release(atomic_load(&r[i].conn), 0);
    tp_pool_destroy(p);
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
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    tp_runtime_shutdown();
    return rc;
}
