/* test_pool_oom.c: out-of-memory handling.
 *
 * With an allocator (the process's, tp_set_allocator) that fails the Nth allocation, a
 * representative session (create, acquire two keys, release, try_acquire, async acquire,
 * stats, visit, evict, maintain, destroy) is replayed for N = 1, 2, 3, ... until a run completes without reaching the
 * failure. Every call must either succeed or report TP_ENOMEM (never crash, never
 * another error), and every round must end with zero live allocations and every fake
 * connection closed. A second pass makes the failure persistent (every allocation from
 * the Nth on fails), which exercises clean-up paths that themselves cannot allocate.
 * Both passes run with and without the maintenance thread. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <tidepool/tidepool.h>

#include "support/fail_alloc.h"
#include "support/fake_connector.h"
#include "support/test_util.h"

#define MAX_ROUNDS 20000

typedef struct async_done {
    atomic_int calls;
    atomic_int status;
    _Atomic(tp_conn *) conn;
} async_done;

static void on_async(void *ud, tp_err status, tp_acquired kind, tp_conn *conn,
                        const tp_errinfo *err)
{
    (void)kind;
    async_done *d = ud;
    (void)err;
    atomic_store(&d->conn, conn);
    atomic_store(&d->status, status);
    atomic_fetch_add(&d->calls, 1);
}

static void count_keys(void *ud, const void *key, size_t keylen, const tp_stats *st)
{
    (void)key;
    (void)keylen;
    (void)st;
    (*(int *)ud)++;
}

/* Records a call's result; anything but success or TP_ENOMEM (or, where listed, another
 * legitimate outcome) is a failure of the round. */
#define EXPECT_OK_OR_ENOMEM(what, r, ...)                                                   \
    do {                                                                                     \
        int r_ = (r);                                                                        \
        const int allowed_[] = {TP_OK, TP_ENOMEM, __VA_ARGS__};                              \
        bool ok_ = false;                                                                    \
        for (size_t i_ = 0; i_ < sizeof allowed_ / sizeof allowed_[0]; i_++)                 \
            ok_ = ok_ || r_ == allowed_[i_];                                                 \
        if (!ok_) {                                                                          \
            print_error("round %lld%s: %s returned %s\n", (long long)nth,                  \
                        persistent ? " (persistent)" : "", what, tp_err_name(r_));           \
            fail();                                                                          \
        }                                                                                    \
    } while (0)

/* One round; returns whether the armed allocation failure was reached. */
static bool one_round(fail_alloc *fa, fake_connector *f, bool thread, int64_t nth,
                      bool persistent)
{
    tp_pool_options o;
    fake_pool_options(f, &o);
    o.maintenance_thread = thread;
    o.maintenance_interval = MS(5);
    fail_alloc_arm(fa, nth, persistent);

    tp_pool *p = (tp_pool *)&o;
    tp_errinfo err;
    tp_err r = tp_pool_create(&o, &p, &err);
    EXPECT_OK_OR_ENOMEM("tp_pool_create", r, TP_ENOMEM);
    if (r != TP_OK) {
        assert_null(p);
    } else {
        tp_conn *c1 = NULL, *c2 = NULL, *c3 = NULL;
        r = tp_pool_acquire(p, KEY("key-one"), 0, &c1, &err);
        EXPECT_OK_OR_ENOMEM("acquire key-one", r, TP_ENOMEM);
        r = tp_pool_acquire(p, KEY("key-two"), 0, &c2, &err);
        EXPECT_OK_OR_ENOMEM("acquire key-two", r, TP_ENOMEM);
        r = tp_pool_acquire(p, KEY("key-one"), 0, &c3, &err);
        EXPECT_OK_OR_ENOMEM("acquire key-one again", r, TP_ENOMEM);
        tp_conn_release(c1, 0); /* NULL (failed acquire) is a no-op */
        tp_conn_release(c2, 0);
        tp_conn_release(c3, TP_RELEASE_DISCARD);

        tp_conn *c = NULL;
        r = tu_try(p, KEY("key-one"), &c);
        EXPECT_OK_OR_ENOMEM("try_acquire", r, TP_EAGAIN);
        if (r == TP_OK)
            tp_conn_release(c, 0);

        async_done d;
        memset(&d, 0, sizeof d);
        c = NULL;
        uint64_t ticket = 0;
        int ar = tu_async(p, KEY("key-two"), MS(1000), 0, on_async, &d, &c, &ticket,
                                       &err);
        EXPECT_OK_OR_ENOMEM("acquire_async", ar, TP_ACQUIRED_PENDING);
        if (ar == TP_OK) {
            tp_conn_release(c, 0);
        } else if (ar == TP_ACQUIRED_PENDING) {
            if (tp_acquire_cancel(p, ticket) != TP_OK) {
                bool done = false;
                TU_WAIT_UNTIL(done, atomic_load(&d.calls) == 1, 5000);
                assert_true(done);
                EXPECT_OK_OR_ENOMEM("async callback", atomic_load(&d.status), TP_ETIMEDOUT,
                                    TP_EOPEN);
                tp_conn_release(atomic_load(&d.conn), 0);
            }
        }

        tp_stats st;
        tp_pool_stats(p, &st);
        r = tp_pool_key_stats(p, KEY("key-one"), &st);
        EXPECT_OK_OR_ENOMEM("key_stats", r, TP_EINVAL);
        int nkeys = 0;
        tp_pool_key_visit(p, count_keys, &nkeys);
        assert_true(nkeys <= 2);
        (void)tp_pool_evict(p, NULL, 0);
        (void)tp_pool_maintain(p);
        tp_pool_destroy(p);
    }
    if (atomic_load(&fa->live) != 0 || atomic_load(&fa->bad_frees) != 0 ||
        atomic_load(&f->live) != 0) {
        print_error("round %lld%s%s: %lld allocations (%lld bytes) live, %lld bad frees, "
                    "%lld connections open after destroy\n",
                    (long long)nth, persistent ? " (persistent)" : "",
                    thread ? " (thread)" : "", (long long)atomic_load(&fa->live),
                    (long long)atomic_load(&fa->live_bytes),
                    (long long)atomic_load(&fa->bad_frees), (long long)atomic_load(&f->live));
        fail();
    }
    return atomic_load(&fa->failures) > 0;
}

/* The process's allocator: every allocation of the library goes through it. */
static fail_alloc fa;

static void run_all_rounds(bool thread, bool persistent)
{
    fake_connector *f = calloc(1, sizeof *f);
    assert_non_null(f);
    fake_init(f);

    /* A round with no failure first: the pool must actually use the allocator, or the
     * rest of this test would prove nothing. */
    assert_false(one_round(&fa, f, thread, 0, persistent));
    int64_t needed = atomic_load(&fa.calls);
    print_message("a clean session makes %lld allocations\n", (long long)needed);
    assert_true(needed > 0);

    int64_t nth = 1;
    while (one_round(&fa, f, thread, nth, persistent)) {
        nth++;
        assert_true(nth < MAX_ROUNDS);
    }
    print_message("%lld rounds until no failure was reached\n", (long long)nth);
    assert_true(nth > 1);
    assert_int_equal(f->opens, f->closes);
    fake_destroy(f);
    free(f);
}

static void test_oom_single_failure(void **state)
{
    run_all_rounds(false, false);
}

static void test_oom_persistent_failure(void **state)
{
    run_all_rounds(false, true);
}

static void test_oom_single_failure_with_thread(void **state)
{
    run_all_rounds(true, false);
}

static void test_oom_persistent_failure_with_thread(void **state)
{
    run_all_rounds(true, true);
}

int main(void)
{
    tu_watchdog(280);
    fail_alloc_init(&fa);
    if (tp_set_allocator(&fa.a) != TP_OK)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_oom_single_failure),
        cmocka_unit_test(test_oom_persistent_failure),
        cmocka_unit_test(test_oom_single_failure_with_thread),
        cmocka_unit_test(test_oom_persistent_failure_with_thread),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
