/* test_hist_compact.c: the internal histograms (base/hist.h) that every key keeps four
 * of. They hold a few buckets inline, spill to a range of 16 buckets around them on the
 * sixth distinct bucket, and to the full array when a value falls outside that range;
 * whatever the path, a snapshot must count every sample in its own bucket (dashboards
 * read quantiles from it), with one writer, with writers racing on the same empty slots
 * and on the widening, and when a spill cannot be allocated (then count and sum stay
 * exact and the sample lands in the nearest bucket held). Disposing frees the spills. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "base/hist.h"
#include "support/fail_alloc.h"

static fail_alloc fa;

/* A value inside bucket i (its upper bound). */
static int64_t in_bucket(int i)
{
    return tp_histogram_bucket_upper(i);
}

static tp_histogram snap(const tp__hist *h)
{
    tp_histogram s;
    memset(&s, 0, sizeof s);
    tp__hist_fold(&s, h);
    return s;
}

static void test_inline_then_spill(void **state)
{
    (void)state;
    tp__hist h = {0};
    int64_t live0 = atomic_load(&fa.live);
    uint64_t want[TP_HIST_BUCKETS] = {0}, sum = 0;
    /* Four distinct buckets: no allocation. */
    for (int r = 0; r < 3; r++)
        for (int i = 0; i < 4; i++) {
            tp__hist_add(&h, in_bucket(i * 7));
            want[i * 7]++;
            sum += (uint64_t)in_bucket(i * 7);
        }
    assert_int_equal(atomic_load(&fa.live), live0);
    /* Then every bucket, including the unbounded last one and a negative value. */
    for (int i = 0; i < TP_HIST_BUCKETS - 1; i++) {
        tp__hist_add(&h, in_bucket(i));
        want[i]++;
        sum += (uint64_t)in_bucket(i);
    }
    tp__hist_add(&h, INT64_MAX / 2);
    want[TP_HIST_BUCKETS - 1]++;
    sum += (uint64_t)(INT64_MAX / 2);
    tp__hist_add(&h, -5);
    want[0]++;
    /* Buckets 0 to 21 span more than a range: the full array at once, and only it. */
    assert_int_equal(atomic_load(&fa.live), live0 + 1);
    tp_histogram s = snap(&h);
    uint64_t n = 0;
    for (int i = 0; i < TP_HIST_BUCKETS; i++) {
        if (s.buckets[i] != want[i])
            fail_msg("bucket %d: %llu, want %llu", i, (unsigned long long)s.buckets[i],
                     (unsigned long long)want[i]);
        n += want[i];
    }
    assert_int_equal(s.count, n);
    assert_int_equal(s.sum_ns, sum);
    tp__hist_dispose(&h);
    assert_int_equal(atomic_load(&fa.live), live0);
    assert_int_equal(snap(&h).count, 0);
}

enum { THREADS = 4, PER_THREAD = 20000 };

static tp__hist shared;

static void *writer(void *arg)
{
    int t = (int)(intptr_t)arg;
    for (int i = 0; i < PER_THREAD; i++)
        tp__hist_add_shared(&shared, in_bucket((i + t) % 12)); /* 12 buckets: spills */
    return NULL;
}

static void test_shared_writers(void **state)
{
    (void)state;
    memset(&shared, 0, sizeof shared);
    int64_t live0 = atomic_load(&fa.live);
    pthread_t th[THREADS];
    for (int t = 0; t < THREADS; t++)
        assert_int_equal(pthread_create(&th[t], NULL, writer, (void *)(intptr_t)t), 0);
    for (int t = 0; t < THREADS; t++)
        pthread_join(th[t], NULL);
    tp_histogram s = snap(&shared);
    assert_int_equal(s.count, THREADS * PER_THREAD);
    uint64_t per_bucket[12] = {0};
    for (int t = 0; t < THREADS; t++)
        for (int i = 0; i < PER_THREAD; i++)
            per_bucket[(i + t) % 12]++;
    for (int i = 0; i < 12; i++)
        assert_int_equal(s.buckets[i], per_bucket[i]);
    for (int i = 12; i < TP_HIST_BUCKETS; i++)
        assert_int_equal(s.buckets[i], 0);
    /* Twelve neighbouring buckets fit one range: racing writers leave one spill (losers
       free theirs). */
    assert_int_equal(atomic_load(&fa.live), live0 + 1);
    tp__hist_dispose(&shared);
    assert_int_equal(atomic_load(&fa.live), live0);
}

/* Six buckets close together take one range spill, not the full array; a bucket far
 * from it widens to the full array, and what the range counted stays counted. */
static void test_range_then_widen(void **state)
{
    (void)state;
    tp__hist h = {0};
    int64_t live0 = atomic_load(&fa.live), bytes0 = atomic_load(&fa.live_bytes);
    for (int i = 0; i < 6; i++)
        tp__hist_add(&h, in_bucket(20 + i));
    for (int r = 0; r < 3; r++)
        tp__hist_add(&h, in_bucket(30)); /* inside the range: no allocation */
    assert_int_equal(atomic_load(&fa.live), live0 + 1);
    assert_true(atomic_load(&fa.live_bytes) - bytes0 <= 160); /* not the 512 of every bucket */
    tp__hist_add(&h, in_bucket(60));
    tp__hist_add(&h, in_bucket(21));
    assert_int_equal(atomic_load(&fa.live), live0 + 2);
    tp_histogram s = snap(&h);
    assert_int_equal(s.count, 11);
    for (int i = 20; i < 26; i++)
        assert_int_equal(s.buckets[i], i == 21 ? 2 : 1);
    assert_int_equal(s.buckets[30], 3);
    assert_int_equal(s.buckets[60], 1);
    tp__hist_dispose(&h);
    assert_int_equal(atomic_load(&fa.live), live0);
}

static void *wide_writer(void *arg)
{
    int t = (int)(intptr_t)arg;
    for (int i = 0; i < PER_THREAD; i++)
        tp__hist_add_shared(&shared, in_bucket((i * 7 + t) % 40)); /* 40 buckets: widens */
    return NULL;
}

static void test_shared_writers_widen(void **state)
{
    (void)state;
    memset(&shared, 0, sizeof shared);
    int64_t live0 = atomic_load(&fa.live);
    pthread_t th[THREADS];
    for (int t = 0; t < THREADS; t++)
        assert_int_equal(pthread_create(&th[t], NULL, wide_writer, (void *)(intptr_t)t), 0);
    for (int t = 0; t < THREADS; t++)
        pthread_join(th[t], NULL);
    tp_histogram s = snap(&shared);
    assert_int_equal(s.count, THREADS * PER_THREAD);
    uint64_t per_bucket[40] = {0};
    for (int t = 0; t < THREADS; t++)
        for (int i = 0; i < PER_THREAD; i++)
            per_bucket[(i * 7 + t) % 40]++;
    for (int i = 0; i < 40; i++)
        assert_int_equal(s.buckets[i], per_bucket[i]);
    assert_true(atomic_load(&fa.live) <= live0 + 2); /* at most a range and the full array */
    tp__hist_dispose(&shared);
    assert_int_equal(atomic_load(&fa.live), live0);
}

static void test_spill_out_of_memory(void **state)
{
    (void)state;
    tp__hist h = {0};
    for (int i = 0; i < TP__HIST_SLOTS; i++)
        tp__hist_add(&h, in_bucket(i * 10)); /* buckets 0, 10, 20, 30, 40 */
    fail_alloc_arm(&fa, 1, true);
    tp__hist_add(&h, in_bucket(22));        /* nearest held: 20 */
    tp__hist_add_shared(&h, in_bucket(47)); /* nearest held: 40 */
    fail_alloc_arm(&fa, 0, false);
    tp_histogram s = snap(&h);
    assert_int_equal(s.count, TP__HIST_SLOTS + 2);
    assert_int_equal(s.sum_ns,
                     (uint64_t)(in_bucket(0) + in_bucket(10) + in_bucket(20) + in_bucket(30) +
                                in_bucket(40) + in_bucket(22) + in_bucket(47)));
    assert_int_equal(s.buckets[20], 2);
    assert_int_equal(s.buckets[40], 2);
    assert_int_equal(s.buckets[22], 0);
    /* Memory back: the next new bucket spills and is exact. */
    tp__hist_add(&h, in_bucket(33));
    s = snap(&h);
    assert_int_equal(s.buckets[33], 1);
    tp__hist_dispose(&h);
}

/* A spill names where its buckets start in the low bits of its pointer: wherever the
 * first six buckets fall (a range at every start, or the full array near the top), every
 * later value lands in its own bucket, and a value past the range widens it. */
static void test_spill_at_every_start(void **state)
{
    (void)state;
    for (int b = 0; b + 6 <= TP_HIST_BUCKETS; b++) {
        tp__hist h = {0};
        int64_t live0 = atomic_load(&fa.live);
        for (int r = 0; r < 2; r++)
            for (int i = 0; i < 6; i++)
                tp__hist_add_shared(&h, in_bucket(b + i));
        assert_int_equal(atomic_load(&fa.live), live0 + 1); /* one spill held them all */
        int far = b < 32 ? TP_HIST_BUCKETS - 1 : 0;
        tp__hist_add(&h, in_bucket(far));
        tp_histogram s = snap(&h);
        assert_int_equal(s.count, 13);
        for (int i = 0; i < TP_HIST_BUCKETS; i++)
            assert_int_equal(s.buckets[i], i == far ? 1 : i >= b && i < b + 6 ? 2 : 0);
        tp__hist_dispose(&h);
        assert_int_equal(atomic_load(&fa.live), live0);
    }
}

int main(void)
{
    fail_alloc_init(&fa);
    if (tp_set_allocator(&fa.a) != TP_OK)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_inline_then_spill),   cmocka_unit_test(test_shared_writers),
        cmocka_unit_test(test_range_then_widen),    cmocka_unit_test(test_shared_writers_widen),
        cmocka_unit_test(test_spill_out_of_memory), cmocka_unit_test(test_spill_at_every_start),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
