/* test_pool_keys.c: keys. A connection is only ever handed out for the key it was
 * opened for (a security property: a connection authenticated as one user never serves
 * another), keys are opaque bytes (prefixes, embedded NULs, the empty key, long keys
 * differing late are all distinct) and are copied at acquire; per-key stats, visiting
 * keys, and evicting a key's connections. Maintenance thread off. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <tidepool/tidepool.h>

#include "support/fake_connector.h"
#include "support/pool_fixture.h"
#include "support/test_util.h"

typedef pool_fx fx;

static void test_key_isolation_two_keys(void **state)
{
    fx *x = *state;
    tp_pool *p = pool_fx_pool(x);
    tp_conn *a = tu_acquire(p, "a", MS(2000));
    tp_conn_release(a, 0);
    /* An idle connection of "a" exists, but "b" must get its own. */
    tp_conn *b = tu_acquire(p, "b", MS(2000));
    assert_true(fake_conn_key_is(fake_of(b), KEY("b")));
    assert_int_equal(x->f.opens, 2);
    tp_conn *a2 = tu_acquire(p, "a", MS(2000));
    assert_true(fake_conn_key_is(fake_of(a2), KEY("a")));
    assert_ptr_not_equal(fake_of(a2), fake_of(b));
    tp_conn_release(a2, 0);
    tp_conn_release(b, 0);
}

static void test_key_isolation_many_keys_interleaved(void **state)
{
    fx *x = *state;
    tp_pool *p = pool_fx_pool(x);
    /* Keys that a sloppy comparison would confuse: prefixes, embedded NULs, empty. */
    static const struct {
        const char *bytes;
        size_t len;
    } keys[] = {
        {"a", 1}, {"ab", 2}, {"ab\0", 3}, {"ab\0c", 4}, {"", 0}, {"\xff\x00\x01", 3},
        {"b", 1}, {"A", 1},  {"abc", 3},  {"ab\0d", 4},
        /* Long keys that share their first bytes and their length, differing late. */
        {"https://a.example:443", 21}, {"https://b.example:443", 21},
        {"https://a.example:444", 21}, {"12345678", 8}, {"12345679", 8},
    };
    enum { NK = sizeof keys / sizeof keys[0], PER = 3 };
    tp_conn *held[NK][PER];
    int nheld[NK] = {0};
    uint32_t rng = 12345;
    for (int it = 0; it < 6000; it++) {
        rng = rng * 1103515245u + 12345u;
        int k = (int)((rng >> 8) % NK);
        bool take = ((rng >> 20) & 1) != 0;
        if (take && nheld[k] < PER) {
            tp_conn *c = NULL;
            assert_int_equal(tp_pool_acquire(p, keys[k].bytes, keys[k].len, 0, &c, NULL), TP_OK);
            assert_true(fake_conn_key_is(fake_of(c), keys[k].bytes, keys[k].len));
            size_t kl = 99;
            const void *kb = tp_conn_key(c, &kl);
            assert_int_equal(kl, keys[k].len);
            assert_true(kl == 0 || memcmp(kb, keys[k].bytes, kl) == 0);
            held[k][nheld[k]++] = c;
        } else if (nheld[k] > 0) {
            tp_conn_release(held[k][--nheld[k]], 0);
        }
    }
    for (int k = 0; k < NK; k++)
        while (nheld[k] > 0)
            tp_conn_release(held[k][--nheld[k]], 0);
    tp_stats st = tu_pool_stats(p);
    assert_int_equal(st.keys, NK);
    assert_int_equal(st.in_use, 0);
    /* Never more than PER were needed per key, and reuse stayed within each key. */
    assert_true(st.opens <= (uint64_t)(NK * PER));
    assert_int_equal(st.acquires, st.reuses + st.opens);
}

static void test_empty_key(void **state)
{
    /* key NULL with keylen 0 is valid: it is the empty key. */
    fx *x = *state;
    tp_pool *p = pool_fx_pool(x);
    tp_conn *c = NULL;
    assert_int_equal(tp_pool_acquire(p, NULL, 0, 0, &c, NULL), TP_OK);
    size_t kl = 99;
    (void)tp_conn_key(c, &kl);
    assert_int_equal(kl, 0);
    tp_conn_release(c, 0);
    assert_int_equal(tp_pool_acquire(p, "", 0, 0, &c, NULL), TP_OK);
    assert_int_equal(x->f.opens, 1);
    tp_conn_release(c, 0);
}

static void test_keys_are_copied(void **state)
{
    fx *x = *state;
    tp_pool *p = pool_fx_pool(x);
    char buf[8];
    strcpy(buf, "key1");
    tp_conn *c = NULL;
    assert_int_equal(tp_pool_acquire(p, buf, 4, MS(2000), &c, NULL), TP_OK);
    strcpy(buf, "key2"); /* the caller reuses its buffer */
    size_t kl = 0;
    const void *kb = tp_conn_key(c, &kl);
    assert_int_equal(kl, 4);
    assert_memory_equal(kb, "key1", 4);
    tp_conn_release(c, 0);
    /* The idle connection is filed under "key1", not under what the buffer holds now. */
    assert_int_equal(tp_pool_acquire(p, KEY("key1"), MS(2000), &c, NULL), TP_OK);
    assert_int_equal(x->f.opens, 1);
    tp_conn_release(c, 0);
    assert_int_equal(tp_pool_acquire(p, buf, 4, MS(2000), &c, NULL), TP_OK);
    assert_true(fake_conn_key_is(fake_of(c), KEY("key2")));
    assert_int_equal(x->f.opens, 2);
    tp_conn_release(c, 0);
}

static void test_key_stats_unknown_key(void **state)
{
    fx *x = *state;
    tp_pool *p = pool_fx_pool(x);
    tp_stats st;
    assert_int_equal(tp_pool_key_stats(p, KEY("never"), &st), TP_EINVAL);
    tp_conn *c = tu_acquire(p, "seen", MS(2000));
    assert_int_equal(tp_pool_key_stats(p, KEY("seen"), &st), TP_OK);
    assert_int_equal(tp_pool_key_stats(p, KEY("seen2"), &st), TP_EINVAL);
    assert_int_equal(tp_pool_key_stats(p, KEY("see"), &st), TP_EINVAL);
    tp_conn_release(c, 0);
}

typedef struct visit_log {
    tp_pool *p;
    int n;
    char keys[16][8];
    int64_t totals[16];
    int reentrant_ok;
} visit_log;

static void visit_fn(void *ud, const void *key, size_t keylen, const tp_stats *st)
{
    visit_log *v = ud;
    if (v->n < 16 && keylen < 8) {
        memcpy(v->keys[v->n], key, keylen);
        v->keys[v->n][keylen] = '\0';
        v->totals[v->n] = st->total;
        /* Called outside pool locks: calling back into the pool must work. */
        tp_stats again;
        if (tp_pool_key_stats(v->p, key, keylen, &again) == TP_OK)
            v->reentrant_ok++;
    }
    v->n++;
}

static void test_key_visit(void **state)
{
    fx *x = *state;
    tp_pool *p = pool_fx_pool(x);
    const char *names[] = {"k0", "k1", "k2", "k3", "k4"};
    tp_conn *held[5][3];
    for (int i = 0; i < 5; i++)
        for (int j = 0; j <= i % 3; j++)
            held[i][j] = tu_acquire(p, names[i], MS(2000));
    visit_log v;
    memset(&v, 0, sizeof v);
    v.p = p;
    tp_pool_key_visit(p, visit_fn, &v);
    assert_int_equal(v.n, 5);
    assert_int_equal(v.reentrant_ok, 5);
    for (int i = 0; i < 5; i++) {
        int seen = 0;
        for (int j = 0; j < v.n; j++) {
            if (strcmp(v.keys[j], names[i]) == 0) {
                seen++;
                assert_int_equal(v.totals[j], i % 3 + 1);
            }
        }
        assert_int_equal(seen, 1);
    }
    for (int i = 0; i < 5; i++)
        for (int j = 0; j <= i % 3; j++)
            tp_conn_release(held[i][j], 0);
}

static void test_evict(void **state)
{
    fx *x = *state;
    tp_pool *p = pool_fx_pool(x);
    tp_conn *a[4], *b[2];
    for (int i = 0; i < 4; i++)
        a[i] = tu_acquire(p, "a", MS(2000));
    for (int i = 0; i < 2; i++)
        b[i] = tu_acquire(p, "b", MS(2000));
    for (int i = 0; i < 3; i++)
        tp_conn_release(a[i], 0);
    tp_conn_release(b[0], 0);
    tp_conn_release(b[1], 0);

    assert_int_equal(tp_pool_evict(p, KEY("a")), 3);
    assert_int_equal(x->f.closes, 3);
    assert_int_equal(x->f.close_reasons[TP_CLOSE_EVICTED], 3);
    tp_stats st;
    tu_key_stats(p, "a", &st);
    assert_int_equal(st.idle, 0);
    assert_int_equal(st.in_use, 1);
    tu_key_stats(p, "b", &st);
    assert_int_equal(st.idle, 2); /* other keys untouched */

    /* The in-use one was marked: closed when released, not returned to idle. */
    uint64_t id = fake_of(a[3])->id;
    assert_int_equal(fake_close_count_for(&x->f, id), 0);
    tp_conn_release(a[3], 0);
    assert_int_equal(fake_close_count_for(&x->f, id), 1);
    assert_int_equal(x->f.closes, 4);
    assert_int_equal(x->f.close_reasons[TP_CLOSE_EVICTED], 4);

    /* A connection opened after the eviction is not affected by it. */
    tp_conn *fresh = tu_acquire(p, "a", MS(2000));
    tp_conn_release(fresh, 0);
    assert_int_equal(x->f.closes, 4);

    assert_int_equal(tp_pool_evict(p, NULL, 0), 3); /* all keys: b's 2 and a's 1 */
    st = tu_pool_stats(p);
    assert_int_equal(st.idle, 0);
    assert_int_equal(st.total, 0);
    assert_int_equal(x->f.closes, 7);
    assert_int_equal(x->f.close_reasons[TP_CLOSE_EVICTED], 7);
    assert_int_equal(x->f.bad_close_reasons, 0);
    assert_int_equal(tu_closes_total(&st), 7);
    assert_int_equal(st.closes[TP_CLOSE_EVICTED], 7);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, pool_fx_setup, pool_fx_teardown)

int main(void)
{
    tu_watchdog(120);
    const struct CMUnitTest tests[] = {
        T(test_key_isolation_two_keys),
        T(test_key_isolation_many_keys_interleaved),
        T(test_empty_key),
        T(test_keys_are_copied),
        T(test_key_stats_unknown_key),
        T(test_key_visit),
        T(test_evict),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
