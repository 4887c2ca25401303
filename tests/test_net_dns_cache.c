/* test_net_dns_cache.c: the lookup cache (src/net/dns_cache.c) on a clock the test
 * gives it: an answer lives for ttl, a TP_ERESOLVE failure for negative_ttl, no other
 * failure is kept; entries are per host and port; a newer answer replaces an older;
 * beyond max_entries the least recently used goes; literals never enter it. */
#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "net/net.h"

#define SEC TP_NSEC_PER_SEC

static tp__dns_cache *cache(int64_t ttl, int64_t negative_ttl, size_t max)
{
    tp__dns_cache_options o = {.ttl = ttl, .negative_ttl = negative_ttl, .max_entries = max};
    tp__dns_cache *c = NULL;
    tp_errinfo e;
    assert_int_equal(tp__dns_cache_create(&o, &c, &e), TP_OK);
    return c;
}

/* n IPv4 addresses 10.0.0.first .. first+n-1. */
static tp__addrs v4(int first, int n)
{
    tp__addrs a = {.n = n};
    for (int i = 0; i < n; i++) {
        a.a[i].u.in.sin_family = AF_INET;
        a.a[i].u.in.sin_addr.s_addr = htonl(0x0a000000u | (unsigned)(first + i));
        a.a[i].len = sizeof(struct sockaddr_in);
    }
    return a;
}

static int first_octet4(const tp__addrs *a)
{
    return (int)(ntohl(a->a[0].u.in.sin_addr.s_addr) & 0xff);
}

static void test_answer_lives_for_ttl(void **state)
{
    (void)state;
    tp__dns_cache *c = cache(30 * SEC, SEC, 8);
    tp__addrs in = v4(1, 3), out;
    tp_err rc;
    tp_errinfo e;
    assert_false(tp__dns_cache_get(c, "h", 80, 0, &out, &rc, &e));
    tp__dns_cache_put(c, "h", 80, 100, TP_OK, &in, NULL);
    assert_true(tp__dns_cache_get(c, "h", 80, 100 + 30 * SEC - 1, &out, &rc, &e));
    assert_int_equal(rc, TP_OK);
    assert_int_equal(out.n, 3);
    assert_memory_equal(out.a, in.a, 3 * sizeof in.a[0]);
    assert_false(tp__dns_cache_get(c, "h", 443, 200, &out, &rc, &e)); /* per port */
    assert_false(tp__dns_cache_get(c, "H2", 80, 200, &out, &rc, &e));
    assert_false(tp__dns_cache_get(c, "h", 80, 100 + 30 * SEC, &out, &rc, &e)); /* expired */
    tp__dns_cache_stats st;
    tp__dns_cache_stats_get(c, &st);
    assert_int_equal(st.hits, 1);
    assert_int_equal(st.misses, 4);
    assert_int_equal(st.entries, 0); /* the stale one was dropped when seen */
    tp__dns_cache_destroy(c);
}

static void test_failures_kept_only_when_answers(void **state)
{
    (void)state;
    tp__dns_cache *c = cache(30 * SEC, 2 * SEC, 8);
    tp__addrs none = {0}, out;
    tp_err rc;
    tp_errinfo e, why;
    tp_errinfo_set(&why, TP_ERESOLVE, 0, "resolve nx:80: Name or service not known");
    tp__dns_cache_put(c, "nx", 80, 0, TP_ERESOLVE, &none, &why);
    assert_true(tp__dns_cache_get(c, "nx", 80, 2 * SEC - 1, &out, &rc, &e));
    assert_int_equal(rc, TP_ERESOLVE);
    assert_int_equal(e.code, TP_ERESOLVE);
    assert_non_null(strstr(e.msg, "Name or service not known"));
    assert_non_null(strstr(e.msg, "cached"));
    assert_false(tp__dns_cache_get(c, "nx", 80, 2 * SEC, &out, &rc, &e));
    /* A timeout or no memory says nothing about the name. */
    tp__dns_cache_put(c, "t", 80, 0, TP_ETIMEDOUT, &none, &why);
    tp__dns_cache_put(c, "m", 80, 0, TP_ENOMEM, &none, &why);
    tp__dns_cache_put(c, "empty", 80, 0, TP_OK, &none, NULL);
    assert_false(tp__dns_cache_get(c, "t", 80, 1, &out, &rc, &e));
    assert_false(tp__dns_cache_get(c, "m", 80, 1, &out, &rc, &e));
    assert_false(tp__dns_cache_get(c, "empty", 80, 1, &out, &rc, &e));
    tp__dns_cache_destroy(c);

    c = cache(30 * SEC, 0, 8); /* negative_ttl 0: failures never kept */
    tp__dns_cache_put(c, "nx", 80, 0, TP_ERESOLVE, &none, &why);
    assert_false(tp__dns_cache_get(c, "nx", 80, 1, &out, &rc, &e));
    tp__dns_cache_destroy(c);
}

static void test_newer_answer_replaces(void **state)
{
    (void)state;
    tp__dns_cache *c = cache(10 * SEC, SEC, 8);
    tp__addrs a = v4(1, 2), b = v4(50, 1), out;
    tp_err rc;
    tp_errinfo e;
    tp__dns_cache_put(c, "h", 80, 0, TP_OK, &a, NULL);
    tp__dns_cache_put(c, "h", 80, 5 * SEC, TP_OK, &b, NULL);
    assert_true(tp__dns_cache_get(c, "h", 80, 12 * SEC, &out, &rc, &e)); /* b's ttl */
    assert_int_equal(out.n, 1);
    assert_int_equal(first_octet4(&out), 50);
    tp__dns_cache_stats st;
    tp__dns_cache_stats_get(c, &st);
    assert_int_equal(st.entries, 1);
    tp__dns_cache_destroy(c);
}

static void test_least_recently_used_goes(void **state)
{
    (void)state;
    tp__dns_cache *c = cache(100 * SEC, SEC, 3);
    tp__addrs out;
    tp_err rc;
    tp_errinfo e;
    const char *names[] = {"a", "b", "c"};
    for (int i = 0; i < 3; i++) {
        tp__addrs in = v4(i + 1, 1);
        tp__dns_cache_put(c, names[i], 80, 0, TP_OK, &in, NULL);
    }
    assert_true(tp__dns_cache_get(c, "a", 80, 1, &out, &rc, &e)); /* a used: b is oldest */
    tp__addrs d = v4(9, 1);
    tp__dns_cache_put(c, "d", 80, 2, TP_OK, &d, NULL);
    assert_false(tp__dns_cache_get(c, "b", 80, 3, &out, &rc, &e));
    assert_true(tp__dns_cache_get(c, "a", 80, 3, &out, &rc, &e));
    assert_int_equal(first_octet4(&out), 1);
    assert_true(tp__dns_cache_get(c, "c", 80, 3, &out, &rc, &e));
    assert_true(tp__dns_cache_get(c, "d", 80, 3, &out, &rc, &e));
    tp__dns_cache_stats st;
    tp__dns_cache_stats_get(c, &st);
    assert_int_equal(st.entries, 3);
    assert_int_equal(st.evictions, 1);
    tp__dns_cache_destroy(c);
}

/* tp__resolve_cached: a literal is answered and not kept; a bad option is refused. */
static void test_resolve_cached_literal_and_options(void **state)
{
    (void)state;
    tp__dns_cache *c = cache(SEC, SEC, 4);
    tp__addrs out;
    bool cached = true;
    tp_errinfo e;
    assert_int_equal(tp__resolve_cached(c, "127.0.0.1", 80, TP_DURATION_INFINITE, &out, &cached,
                                        &e),
                     TP_OK);
    assert_false(cached);
    assert_int_equal(out.n, 1);
    assert_int_equal(out.a[0].u.sa.sa_family, AF_INET);
    tp__dns_cache_stats st;
    tp__dns_cache_stats_get(c, &st);
    assert_int_equal(st.entries, 0);
    assert_int_equal(st.misses, 0);
    tp__dns_cache_destroy(c);

    tp__dns_cache_options bad[] = {{.ttl = 0, .max_entries = 1},
                                   {.ttl = SEC, .negative_ttl = -1, .max_entries = 1},
                                   {.ttl = SEC, .max_entries = 0}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tp__dns_cache *x = (tp__dns_cache *)&bad[i];
        assert_int_equal(tp__dns_cache_create(&bad[i], &x, &e), TP_EINVAL);
        assert_null(x);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_answer_lives_for_ttl),
        cmocka_unit_test(test_failures_kept_only_when_answers),
        cmocka_unit_test(test_newer_answer_replaces),
        cmocka_unit_test(test_least_recently_used_goes),
        cmocka_unit_test(test_resolve_cached_literal_and_options),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
