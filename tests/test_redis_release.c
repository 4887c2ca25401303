/* test_redis_release.c: the Redis release rules against a real server: a lease that
 * leaves MULTI open, subscribes, leaves pipelined replies unread (through the wrapper or
 * raw hiredis) or breaks its context is closed, counted, and the next lease gets a clean
 * connection that never sees the old state or a stale reply. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "redis_test_env.h"
#include "support/test_util.h"

static rt_env env;
static tp_redis_pool *rp;

static int setup(void **state)
{
    (void)state;
    char url[256];
    tp_errinfo err = {0};
    return tp_redis_pool_create_url(rt_url(&env, url, sizeof url, NULL, 0), NULL, &rp, &err) ==
                   TP_OK
               ? 0
               : -1;
}

static int teardown(void **state)
{
    (void)state;
    tp_redis_pool_destroy(rp);
    rp = NULL;
    return 0;
}

static tp_redis_lease *lease(void)
{
    tp_redis_lease *l = NULL;
    tp_errinfo err = {0};
    tp_err rc = tp_redis_acquire(rp, MS(10000), &l, &err);
    if (rc != TP_OK)
        fail_msg("acquire: %s: %s", tp_err_name(rc), err.msg);
    return l;
}

static redisReply *cmd(tp_redis_lease *l, const char *fmt)
{
    redisReply *r = NULL;
    tp_errinfo err = {0};
    tp_err rc = tp_redis_command(l, &r, &err, fmt);
    if (rc != TP_OK)
        fail_msg("%s: %s: %s", fmt, tp_err_name(rc), err.msg);
    return r;
}

static void expect_str(tp_redis_lease *l, const char *fmt, const char *want)
{
    redisReply *r = cmd(l, fmt);
    assert_non_null(r->str);
    assert_string_equal(r->str, want);
    freeReplyObject(r);
}

static uint64_t closes(tp_close_reason why)
{
    return tu_pool_stats(tp_redis_pool_tp(rp)).closes[why];
}

static void test_clean_release_is_kept(void **state)
{
    (void)state;
    tp_redis_lease *l = lease();
    freeReplyObject(cmd(l, "MULTI"));
    freeReplyObject(cmd(l, "INCR tp:x"));
    freeReplyObject(cmd(l, "EXEC"));
    tp_redis_release(l, 0);
    assert_int_equal(closes(TP_CLOSE_RESET_FAILED), 0);
    assert_int_equal(tu_pool_stats(tp_redis_pool_tp(rp)).idle, 1);
}

static void test_multi_left_open(void **state)
{
    (void)state;
    tp_redis_lease *l = lease();
    freeReplyObject(cmd(l, "MULTI"));
    freeReplyObject(cmd(l, "SET tp:multi leaked"));
    tp_redis_release(l, 0);
    assert_int_equal(closes(TP_CLOSE_RESET_FAILED), 1);
    l = lease();
    expect_str(l, "EXEC", "ERR EXEC without MULTI");
    redisReply *r = cmd(l, "GET tp:multi");
    assert_int_equal(r->type, REDIS_REPLY_NIL);
    freeReplyObject(r);
    tp_redis_release(l, 0);
    assert_int_equal(closes(TP_CLOSE_RESET_FAILED), 1);
}

static void test_watch_left_open(void **state)
{
    (void)state;
    tp_redis_lease *l = lease();
    freeReplyObject(cmd(l, "WATCH tp:w"));
    tp_redis_release(l, 0);
    assert_int_equal(closes(TP_CLOSE_RESET_FAILED), 1);
}

static void test_subscribe(void **state)
{
    (void)state;
    tp_redis_lease *l = lease();
    redisReply *r = cmd(l, "SUBSCRIBE tp:chan");
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    freeReplyObject(r);
    tp_redis_release(l, 0);
    assert_int_equal(closes(TP_CLOSE_RESET_FAILED), 1);
    l = lease();
    expect_str(l, "PING", "PONG");
    tp_redis_release(l, 0);
}

static void test_pipelined_unread(void **state)
{
    (void)state;
    tp_redis_lease *l = lease();
    tp_errinfo err = {0};
    assert_int_equal(tp_redis_append(l, &err, "ECHO %s", "stale-1"), TP_OK);
    assert_int_equal(tp_redis_append(l, &err, "ECHO %s", "stale-2"), TP_OK);
    redisReply *r = NULL;
    assert_int_equal(tp_redis_get_reply(l, &r, &err), TP_OK);
    assert_string_equal(r->str, "stale-1");
    freeReplyObject(r);
    /* A plain command now would read stale-2: refused. */
    assert_int_equal(tp_redis_command(l, &r, &err, "PING"), TP_ESTATE);
    assert_null(r);
    tp_redis_release(l, 0);
    assert_int_equal(closes(TP_CLOSE_RESET_FAILED), 1);
    l = lease();
    expect_str(l, "ECHO fresh", "fresh");
    tp_redis_release(l, 0);
}

static void test_raw_pending(void **state)
{
    (void)state;
    /* Appended but never sent: the output buffer gives it away. */
    tp_redis_lease *l = lease();
    redisContext *c = tp_redis_conn_get(l);
    assert_int_equal(redisAppendCommand(c, "ECHO %s", "raw-stale"), REDIS_OK);
    tp_redis_release(l, 0);
    assert_int_equal(closes(TP_CLOSE_RESET_FAILED), 1);
    /* Sent, and the second reply left unread in the reader's buffer. */
    l = lease();
    c = tp_redis_conn_get(l);
    assert_int_equal(redisAppendCommand(c, "ECHO %s", "a"), REDIS_OK);
    assert_int_equal(redisAppendCommand(c, "ECHO %s", "b"), REDIS_OK);
    void *r = NULL;
    tu_sleep_ms(50); /* both replies arrive in one read */
    assert_int_equal(redisGetReply(c, &r), REDIS_OK);
    freeReplyObject(r);
    tp_redis_release(l, 0);
    assert_int_equal(closes(TP_CLOSE_RESET_FAILED), 2);
    l = lease();
    expect_str(l, "ECHO clean", "clean");
    tp_redis_release(l, 0);
}

static void test_session_change(void **state)
{
    (void)state;
    /* Through the wrapper, SELECT is tracked... */
    tp_redis_lease *l = lease();
    freeReplyObject(cmd(l, "SELECT 3"));
    tp_redis_release(l, 0);
    assert_int_equal(closes(TP_CLOSE_RESET_FAILED), 1);
    /* ...raw, the caller must DISCARD. */
    l = lease();
    redisReply *r = redisCommand(tp_redis_conn_get(l), "SELECT 4");
    freeReplyObject(r);
    tp_redis_release(l, TP_RELEASE_DISCARD);
    assert_int_equal(closes(TP_CLOSE_DISCARDED), 1);
    l = lease();
    r = cmd(l, "CLIENT INFO");
    assert_non_null(strstr(r->str, " db=0 "));
    freeReplyObject(r);
    tp_redis_release(l, 0);
}

static void test_broken_context(void **state)
{
    (void)state;
    tp_redis_lease *l = lease();
    redisReply *r = NULL;
    tp_errinfo err = {0};
    /* The server closes the connection at QUIT's reply; the next command sees EOF, or a
     * reset when PING reached the server before its close (unread data: RST, no FIN). */
    assert_int_equal(tp_redis_command(l, &r, &err, "QUIT"), TP_OK);
    freeReplyObject(r);
    assert_int_equal(tp_redis_command(l, &r, &err, "PING"), TP_ECONNRESET);
    assert_null(r);
    if (strstr(err.msg, "closed") == NULL && strstr(err.msg, "reset") == NULL)
        fail_msg("PING after QUIT: %s", err.msg);
    tp_redis_release(l, 0);
    assert_int_equal(closes(TP_CLOSE_BROKEN), 1);
    l = lease();
    expect_str(l, "PING", "PONG");
    tp_redis_release(l, 0);
}

static void *bench_worker(void *arg)
{
    long *errors = arg;
    for (int i = 0; i < 2000; i++) {
        tp_redis_lease *l = NULL;
        redisReply *r = NULL;
        if (tp_redis_acquire(rp, MS(10000), &l, NULL) != TP_OK) {
            (*errors)++;
            continue;
        }
        if (tp_redis_command(l, &r, NULL, "PING") != TP_OK || r->type != REDIS_REPLY_STATUS)
            (*errors)++;
        freeReplyObject(r);
        tp_redis_release(l, 0);
    }
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    pthread_t t[8];
    long errors[8] = {0};
    for (int i = 0; i < 8; i++)
        tu_thread_start(&t[i], bench_worker, &errors[i]);
    for (int i = 0; i < 8; i++) {
        tu_thread_join(t[i]);
        assert_int_equal(errors[i], 0);
    }
    tp_stats st = tu_pool_stats(tp_redis_pool_tp(rp));
    assert_true(st.opens <= 8);
    assert_int_equal(tu_closes_total(&st), 0);
}

int main(void)
{
    tu_watchdog(120);
    int rc = rt_start(&env);
    if (rc != 0)
        return rc;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_clean_release_is_kept, setup, teardown),
        cmocka_unit_test_setup_teardown(test_multi_left_open, setup, teardown),
        cmocka_unit_test_setup_teardown(test_watch_left_open, setup, teardown),
        cmocka_unit_test_setup_teardown(test_subscribe, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pipelined_unread, setup, teardown),
        cmocka_unit_test_setup_teardown(test_raw_pending, setup, teardown),
        cmocka_unit_test_setup_teardown(test_session_change, setup, teardown),
        cmocka_unit_test_setup_teardown(test_broken_context, setup, teardown),
        cmocka_unit_test_setup_teardown(test_threads, setup, teardown),
    };
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    rt_stop(&env);
    return rc;
}
