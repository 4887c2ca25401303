/* test_fork_locks.c: fork() while other threads hold the library's locks.
 *
 * The library locks every lock another thread may hold around fork(), in the order it
 * nests them (base/fork.h), so that neither the parent's fork() nor the child's first
 * call can hang on a lock taken by a thread the child does not have. Here threads keep
 * those locks busy (sixteen pools whose maintenance runs every millisecond: pool lock,
 * then the workers' lock; a metrics render: registry lock, then pool locks; async
 * acquires queued and cancelled) while the main thread forks again and again, and each
 * child uses what its parent's threads were using: a render, a pass, an acquire, a
 * worker job. A child that hangs is killed by its own alarm and fails the test; a
 * parent that hangs in fork() is killed by the watchdog. Not under the sanitizers:
 * their runtimes' own locks do not survive such a fork (TSan forbids the child's
 * threads; ASan's allocator lock can be left held by a parent thread). */
#include <setjmp.h>
#include <signal.h>
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

enum { NPOOLS = 16, FORKS = 100 };

typedef struct rig {
    fake_connector f;
    tp_pool *pools[NPOOLS];
    tp_metrics *m;
    atomic_bool stop;
} rig;

static void *render_loop(void *arg)
{
    rig *r = arg;
    while (!atomic_load(&r->stop)) {
        char *text = NULL;
        if (tp_metrics_render(r->m, TP_METRICS_PROMETHEUS, &text, NULL) == TP_OK)
            tp_free(text);
    }
    return NULL;
}

static void on_acquired(void *ud, tp_err status, tp_acquired kind, tp_conn *conn,
                        const tp_errinfo *err)
{
    (void)kind;
    (void)ud;
    (void)err;
    if (status == TP_OK)
        tp_conn_release(conn, 0);
}

static void *acquire_loop(void *arg)
{
    rig *r = arg;
    for (unsigned i = 0; !atomic_load(&r->stop); i++) {
        tp_pool *p = r->pools[i % NPOOLS];
        tp_conn *c = NULL;
        uint64_t ticket = 0;
        int rc = tu_async(p, KEY("k"), MS(50), 0, on_acquired, NULL, &c, &ticket, NULL);
        if (rc == TP_OK)
            tp_conn_release(c, 0);
        else if (rc == TP_ACQUIRED_PENDING)
            (void)tp_acquire_cancel(p, ticket);
    }
    return NULL;
}

typedef struct flag_job {
    tp__work work;
    atomic_bool ran;
} flag_job;

static void flag_fn(tp__work *w)
{
    atomic_store(&TP__CONTAINER_OF(w, flag_job, work)->ran, true);
}

/* What a child does with what its parent's threads were using; its exit status says
 * which step failed. */
static int child_main(rig *r)
{
    alarm(10); /* a hang ends as SIGALRM, which the parent reports */
    char *text = NULL;
    if (tp_metrics_render(r->m, TP_METRICS_PROMETHEUS, &text, NULL) != TP_OK)
        return 2;
    tp_free(text);
    for (int i = 0; i < NPOOLS; i++) {
        (void)tp_pool_maintain(r->pools[i]);
        tp_conn *c = NULL;
        if (tp_pool_acquire(r->pools[i], KEY("k"), MS(2000), &c, NULL) != TP_OK)
            return 3;
        tp_conn_release(c, 0);
    }
    flag_job j = {.work.fn = flag_fn};
    if (tp__work_submit(&j.work) != TP_OK)
        return 4;
    for (int i = 0; i < 5000 && !atomic_load(&j.ran); i++)
        usleep(200);
    return atomic_load(&j.ran) ? 0 : 5;
}

/* The fake connector's own lock is the test's, not the library's: it gets handlers of
 * its own (installed after the library's, so they run first around fork(); the fake
 * takes no library lock while it holds its own). */
static fake_connector *forking_fake;

static void fake_prepare(void)
{
    pthread_mutex_lock(&forking_fake->mu);
}

static void fake_parent(void)
{
    pthread_mutex_unlock(&forking_fake->mu);
}

static void fake_child(void)
{
    memset(&forking_fake->mu, 0, sizeof forking_fake->mu);
    pthread_mutex_init(&forking_fake->mu, NULL);
    memset(&forking_fake->cv, 0, sizeof forking_fake->cv);
    pthread_cond_init(&forking_fake->cv, NULL);
}

static void test_fork_while_locks_are_busy(void **state)
{
    (void)state;
    if (TU_UNDER_TSAN || TU_UNDER_ASAN) /* see the top of the file */
        skip();
    rig *r = calloc(1, sizeof *r);
    assert_non_null(r);
    fake_init(&r->f);
    tp_pool_options o;
    fake_pool_options(&r->f, &o);
    o.maintenance_thread = true;
    o.maintenance_interval = MS(1);
    o.max_per_key = 1;
    assert_int_equal(tp_metrics_create(NULL, &r->m, NULL), TP_OK);
    for (int i = 0; i < NPOOLS; i++) {
        r->pools[i] = tu_pool_create(&o);
        char name[16];
        snprintf(name, sizeof name, "p%d", i);
        assert_int_equal(tp_metrics_register(r->m, name, r->pools[i], NULL), TP_OK);
    }
    forking_fake = &r->f;
    assert_int_equal(pthread_atfork(fake_prepare, fake_parent, fake_child), 0);
    pthread_t render, acquire;
    tu_thread_start(&render, render_loop, r);
    tu_thread_start(&acquire, acquire_loop, r);
    int failed = 0, hung = 0;
    for (int i = 0; i < FORKS; i++) {
        fflush(NULL);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0)
            _exit(child_main(r));
        int st = 0;
        assert_int_equal(waitpid(pid, &st, 0), pid);
        if (WIFSIGNALED(st) && WTERMSIG(st) == SIGALRM)
            hung++;
        else if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            failed++;
            print_error("child %d: %s %d\n", i, WIFEXITED(st) ? "exit" : "signal",
                        WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
        }
    }
    atomic_store(&r->stop, true);
    tu_thread_join(render);
    tu_thread_join(acquire);
    if (hung + failed > 0)
        print_error("%d of %d children hung, %d failed\n", hung, FORKS, failed);
    assert_int_equal(hung, 0);
    assert_int_equal(failed, 0);
    for (int i = 0; i < NPOOLS; i++)
        tp_pool_destroy(r->pools[i]);
    tp_metrics_destroy(r->m);
    fake_destroy(&r->f);
    free(r);
}

int main(void)
{
    tu_watchdog(240);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fork_while_locks_are_busy),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    tp_runtime_shutdown();
    return rc;
}
