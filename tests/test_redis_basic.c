/* test_redis_basic.c: the Redis pool against a real redis-server: one connection
 * serves many commands and leases, databases and users are separate keys that never
 * share a connection, and the password never shows in keys, error messages or traces. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "redis_test_env.h"
#include "support/test_util.h"

static rt_env env;

/* Every key byte the pool traced, for the redaction test. */
static pthread_mutex_t seen_mu = PTHREAD_MUTEX_INITIALIZER;
static char seen_keys[8192];
static size_t seen_len;

static void record_key(void *ud, const tp_trace_event *ev)
{
    (void)ud;
    pthread_mutex_lock(&seen_mu);
    if (ev->key != NULL && seen_len + ev->keylen + 1 < sizeof seen_keys) {
        memcpy(seen_keys + seen_len, ev->key, ev->keylen);
        seen_len += ev->keylen;
        seen_keys[seen_len++] = '\n';
    }
    pthread_mutex_unlock(&seen_mu);
}

static tp_redis_pool *make_pool(const char *url, tp_pool_options *po)
{
    tp_pool_options d;
    if (po == NULL) {
        tp_pool_options_init(&d);
        po = &d;
    }
    tp_redis_pool *rp = NULL;
    tp_errinfo err = {0};
    tp_err rc = tp_redis_pool_create_url(url, po, &rp, &err);
    if (rc != TP_OK)
        fail_msg("create %s: %s", tp_err_name(rc), err.msg);
    return rp;
}

static tp_redis_lease *lease(tp_redis_pool *rp, tp_redis_target *t)
{
    tp_redis_lease *l = NULL;
    tp_errinfo err = {0};
    tp_err rc = tp_redis_acquire_ex(rp, t, MS(10000), 0, &l, &err);
    if (rc != TP_OK)
        fail_msg("acquire: %s: %s", tp_err_name(rc), err.msg);
    return l;
}

static redisReply *cmd(tp_redis_lease *l, const char *fmt, const char *arg)
{
    redisReply *r = NULL;
    tp_errinfo err = {0};
    tp_err rc = arg ? tp_redis_command(l, &r, &err, fmt, arg) : tp_redis_command(l, &r, &err, fmt);
    if (rc != TP_OK)
        fail_msg("%s: %s: %s", fmt, tp_err_name(rc), err.msg);
    return r;
}

static long long client_id(tp_redis_lease *l)
{
    redisReply *r = cmd(l, "CLIENT ID", NULL);
    long long id = rt_int(r);
    freeReplyObject(r);
    return id;
}

static void test_reuse(void **state)
{
    (void)state;
    char url[256];
    tp_redis_pool *rp = make_pool(rt_url(&env, url, sizeof url, NULL, 0), NULL);
    long long first = -1;
    for (int i = 0; i < 200; i++) {
        tp_redis_lease *l = lease(rp, NULL);
        long long id = client_id(l);
        redisReply *r = cmd(l, "INCR %s", "tp:reuse");
        assert_int_equal(r->type, REDIS_REPLY_INTEGER);
        freeReplyObject(r);
        if (first < 0)
            first = id;
        assert_int_equal(id, first);
        tp_redis_release(l, 0);
    }
    tp_stats st;
    tp_pool_stats(tp_redis_pool_tp(rp), &st);
    assert_int_equal(st.opens, 1);
    assert_int_equal(st.acquires, 200);
    assert_int_equal(st.reuses, 199);
    tp_redis_pool_destroy(rp);
}

static void test_db_isolation(void **state)
{
    (void)state;
    char u1[256], u2[256];
    tp_redis_pool *rp = make_pool(rt_url(&env, u1, sizeof u1, NULL, 1), NULL);
    tp_redis_target *t1 = tp_redis_pool_target(rp), *t2 = NULL;
    assert_int_equal(tp_redis_target_add(rp, rt_url(&env, u2, sizeof u2, NULL, 2), &t2, NULL),
                     TP_OK);
    assert_ptr_not_equal(t1, t2);
    size_t k1, k2;
    const void *key1 = tp_redis_target_key(t1, &k1), *key2 = tp_redis_target_key(t2, &k2);
    assert_false(k1 == k2 && memcmp(key1, key2, k1) == 0);

    tp_redis_lease *a = lease(rp, t1);
    freeReplyObject(cmd(a, "SET tp:db %s", "one"));
    long long ida = client_id(a);
    tp_redis_release(a, 0);
    /* With db 1's connection idle, a lease for db 2 must open its own. */
    tp_redis_lease *b = lease(rp, t2);
    assert_true(client_id(b) != ida);
    redisReply *r = cmd(b, "GET tp:db", NULL);
    assert_int_equal(r->type, REDIS_REPLY_NIL);
    freeReplyObject(r);
    r = cmd(b, "CLIENT INFO", NULL);
    assert_non_null(strstr(r->str, " db=2 "));
    freeReplyObject(r);
    tp_redis_release(b, 0);
    a = lease(rp, t1);
    assert_int_equal(client_id(a), ida);
    r = cmd(a, "GET tp:db", NULL);
    assert_string_equal(r->str, "one");
    freeReplyObject(r);
    tp_redis_release(a, 0);
    tp_stats s1, s2;
    assert_int_equal(tp_pool_key_stats(tp_redis_pool_tp(rp), key1, k1, &s1), TP_OK);
    assert_int_equal(tp_pool_key_stats(tp_redis_pool_tp(rp), key2, k2, &s2), TP_OK);
    assert_int_equal(s1.opens, 1);
    assert_int_equal(s2.opens, 1);
    /* Adding the same URL again gives the same target. */
    tp_redis_target *t2b = NULL;
    assert_int_equal(tp_redis_target_add(rp, u2, &t2b, NULL), TP_OK);
    assert_ptr_equal(t2, t2b);
    tp_redis_pool_destroy(rp);
}

static void whoami(tp_redis_pool *rp, tp_redis_target *t, const char *want)
{
    tp_redis_lease *l = lease(rp, t);
    redisReply *r = cmd(l, "ACL WHOAMI", NULL);
    assert_non_null(r->str);
    assert_string_equal(r->str, want);
    freeReplyObject(r);
    tp_redis_release(l, 0);
}

static void test_user_isolation_and_redaction(void **state)
{
    (void)state;
    char u1[256], u2[1024], ui[600];
    tp_pool_options po;
    tp_pool_options_init(&po);
    po.trace = record_key;
    seen_len = 0;
    tp_redis_pool *rp = make_pool(rt_url(&env, u1, sizeof u1, NULL, 0), &po);
    snprintf(ui, sizeof ui, "tenant_b:%s", env.tenant_b_password);
    tp_redis_target *tb = NULL;
    assert_int_equal(tp_redis_target_add(rp, rt_url(&env, u2, sizeof u2, ui, 0), &tb, NULL), TP_OK);
    for (int i = 0; i < 3; i++) {
        whoami(rp, NULL, "default");
        whoami(rp, tb, "tenant_b");
    }
    size_t kl;
    const char *k = tp_redis_target_key(tb, &kl);
    assert_null(memmem(k, kl, env.tenant_b_password, strlen(env.tenant_b_password)));
    assert_non_null(memmem(k, kl, "tenant_b", 8));

    /* A wrong password: a clear error that quotes neither password. */
    const char *wrong = "not-the-Pa55word";
    snprintf(ui, sizeof ui, "tenant_b:%s", wrong);
    tp_redis_target *bad = NULL;
    assert_int_equal(tp_redis_target_add(rp, rt_url(&env, u2, sizeof u2, ui, 0), &bad, NULL), TP_OK);
    assert_ptr_not_equal(bad, tb);
    tp_redis_lease *l = NULL;
    tp_errinfo err = {0};
    tp_err rc = tp_redis_acquire_ex(rp, bad, MS(2000), 0, &l, &err);
    assert_int_equal(rc, TP_EOPEN);
    assert_null(l);
    assert_non_null(strstr(err.msg, "authentication failed"));
    assert_null(strstr(err.msg, wrong));
    assert_null(strstr(err.msg, env.tenant_b_password));
    /* Nor in any key a trace event carried. */
    pthread_mutex_lock(&seen_mu);
    assert_true(seen_len > 0);
    assert_null(memmem(seen_keys, seen_len, wrong, strlen(wrong)));
    assert_null(memmem(seen_keys, seen_len, env.tenant_b_password, strlen(env.tenant_b_password)));
    pthread_mutex_unlock(&seen_mu);
    tp_redis_pool_destroy(rp);
}

static void test_url_errors(void **state)
{
    (void)state;
    const char *bad[] = {"http://127.0.0.1:1/", "redis://", "redis://h:99999/", "redis://h:1/x",
                         "redis://u:p%zz@h:1/", "redis://h:1/0?x=1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tp_redis_pool *rp = NULL;
        tp_errinfo err = {0};
        assert_int_equal(tp_redis_pool_create_url(bad[i], NULL, &rp, &err), TP_EINVAL);
        assert_null(rp);
        assert_non_null(strstr(err.msg, "url"));
        assert_null(strstr(err.msg, "p%zz"));
    }
    tp_redis_options o;
    tp_redis_options_init(&o);
    o.url = "redis://127.0.0.1:1";
    o.command_timeout = -5;
    tp_errinfo err = {0};
    tp_redis_pool *rp = NULL;
    assert_int_equal(tp_redis_pool_create(&o, &rp, &err), TP_EINVAL);
    assert_non_null(strstr(err.msg, "command_timeout"));
}

/* client_name: every connection of the pool names itself (CLIENT SETNAME at connect),
 * so the server's CLIENT LIST shows which are this pool's; a name Redis would refuse is
 * refused at create. */
static void test_client_name(void **state)
{
    (void)state;
    char url[256];
    tp_redis_options o;
    tp_redis_options_init(&o);
    o.url = rt_url(&env, url, sizeof url, NULL, 0);
    o.client_name = "tp-named-pool";
    tp_redis_pool *rp = NULL;
    tp_errinfo err = {0};
    assert_int_equal(tp_redis_pool_create(&o, &rp, &err), TP_OK);
    tp_redis_lease *a = lease(rp, NULL), *b = lease(rp, NULL);
    redisReply *r = cmd(a, "CLIENT GETNAME", NULL);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_string_equal(r->str, "tp-named-pool");
    freeReplyObject(r);
    r = cmd(b, "CLIENT LIST TYPE normal", NULL);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    int named = 0;
    for (const char *p = r->str; (p = strstr(p, " name=tp-named-pool ")) != NULL; p++)
        named++;
    freeReplyObject(r);
    assert_int_equal(named, 2);
    /* Naming is part of the handshake, not the caller's session: the leases go back. */
    tp_redis_release(a, 0);
    tp_redis_release(b, 0);
    tp_stats st;
    tp_pool_stats(tp_redis_pool_tp(rp), &st);
    assert_int_equal(st.idle, 2);
    tp_redis_pool_destroy(rp);

    const char *bad[] = {"", "two words", "line\nbreak", "\x7f",
                         "a-name-longer-than-sixty-four-characters-is-refused-when-the-pool-is-made"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        o.client_name = bad[i];
        rp = NULL;
        assert_int_equal(tp_redis_pool_create(&o, &rp, &err), TP_EINVAL);
        assert_null(rp);
        assert_non_null(strstr(err.msg, "client_name"));
    }
}

static void test_refused(void **state)
{
    (void)state;
    /* A closed port: refused at once, as such. */
    tp_redis_pool *rp = make_pool("redis://127.0.0.1:1/0", NULL);
    tp_redis_lease *l = NULL;
    tp_errinfo err = {0};
    assert_int_equal(tp_redis_acquire(rp, MS(2000), &l, &err), TP_ECONNREFUSED);
    tp_redis_pool_destroy(rp);
}

int main(void)
{
    tu_watchdog(120);
    int rc = rt_start(&env);
    if (rc != 0)
        return rc;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reuse),
        cmocka_unit_test(test_db_isolation),
        cmocka_unit_test(test_user_isolation_and_redaction),
        cmocka_unit_test(test_url_errors),
        cmocka_unit_test(test_client_name),
        cmocka_unit_test(test_refused),
    };
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    rt_stop(&env);
    return rc;
}
