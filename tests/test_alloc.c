/* test_alloc.c: tp_set_allocator(), the one allocator of the library. Installed before
 * anything else in this process (as the header asks), a counting allocator sees every
 * block the library takes and gets every one back: from a pool session, a rendered
 * metrics text freed with tp_free(), and, with OpenSSL, OpenSSL's own allocations. It
 * cannot be switched while the library holds memory from it (TP_ESTATE), a missing
 * function is TP_EINVAL, and NULL restores the C library's. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <tidepool/tidepool.h>

#ifdef TIDEPOOL_HAVE_OPENSSL
#include <openssl/crypto.h>
#endif

#include "support/fail_alloc.h"
#include "support/fake_connector.h"
#include "support/test_util.h"

static fail_alloc fa;

static void test_rejects_missing_functions(void **state)
{
    (void)state;
    tp_allocator a = fa.a;
    a.realloc = NULL;
    assert_int_equal(tp_set_allocator(&a), TP_EINVAL);
    a = fa.a;
    a.free = NULL;
    assert_int_equal(tp_set_allocator(&a), TP_EINVAL);
}

static void test_pool_takes_and_gives_back(void **state)
{
    (void)state;
    int64_t before = atomic_load(&fa.live);
    int64_t calls = atomic_load(&fa.calls);
    fake_connector f;
    fake_init(&f);
    tp_pool_options o;
    fake_pool_options(&f, &o);
    tp_pool *p = tu_pool_create(&o);
    for (int i = 0; i < 10; i++) {
        char key[16];
        snprintf(key, sizeof key, "k%d", i);
        tp_conn_release(tu_acquire(p, key, 0), 0);
    }
    assert_true(atomic_load(&fa.calls) > calls);
    assert_true(atomic_load(&fa.live) > before);
    /* Switching allocators under live blocks would free them with the wrong one. */
    assert_int_equal(tp_set_allocator(NULL), TP_ESTATE);
    tp_pool_destroy(p);
    fake_destroy(&f);
    assert_int_equal(atomic_load(&fa.live), before);
    assert_int_equal(atomic_load(&fa.bad_frees), 0);
}

static void test_rendered_text_is_freed_by_tp_free(void **state)
{
    (void)state;
    int64_t before = atomic_load(&fa.live);
    tp_metrics *m = NULL;
    assert_int_equal(tp_metrics_create(NULL, &m, NULL), TP_OK);
    char *text = NULL;
    assert_int_equal(tp_metrics_render(m, TP_METRICS_JSON, &text, NULL), TP_OK);
    assert_non_null(text);
    tp_metrics_destroy(m);
    assert_int_equal(atomic_load(&fa.live), before + 1); /* the text, and only it */
    tp_free(text);
    tp_free(NULL);
    assert_int_equal(atomic_load(&fa.live), before);
    assert_int_equal(atomic_load(&fa.bad_frees), 0);
}

static void test_openssl_follows(void **state)
{
    (void)state;
#ifdef TIDEPOOL_HAVE_OPENSSL
    int64_t calls = atomic_load(&fa.calls);
    void *p = OPENSSL_malloc(100);
    assert_non_null(p);
    assert_true(atomic_load(&fa.calls) > calls);
    OPENSSL_free(p);
#else
    skip();
#endif
}

static void test_null_restores_libc(void **state)
{
    (void)state;
    /* Only OpenSSL's global state may still be held (it never frees it). */
    if (atomic_load(&fa.live) != 0) {
        assert_int_equal(tp_set_allocator(NULL), TP_ESTATE);
        return;
    }
    assert_int_equal(tp_set_allocator(NULL), TP_OK);
    int64_t calls = atomic_load(&fa.calls);
    tp_metrics *m = NULL;
    assert_int_equal(tp_metrics_create(NULL, &m, NULL), TP_OK);
    tp_metrics_destroy(m);
    assert_int_equal(atomic_load(&fa.calls), calls);
    assert_int_equal(tp_set_allocator(&fa.a), TP_OK);
}

int main(void)
{
    tu_watchdog(60);
    fail_alloc_init(&fa);
    if (tp_set_allocator(&fa.a) != TP_OK)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rejects_missing_functions),
        cmocka_unit_test(test_pool_takes_and_gives_back),
        cmocka_unit_test(test_rendered_text_is_freed_by_tp_free),
        cmocka_unit_test(test_null_restores_libc),
        cmocka_unit_test(test_openssl_follows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
