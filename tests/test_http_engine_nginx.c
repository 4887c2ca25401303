/* test_http_engine_nginx.c: the event engine against a real nginx on loopback (the
 * ctest fixture "nginx"): reuse on few connections, Connection: close, a 1 MiB body,
 * TLS through the non-blocking handshake (verified, resumed, wrong name), server-side
 * keep-alive expiry and a restart under idle connections, and engines on two threads
 * sharing one client. Skipped (77) without the fixture. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <tidepool/tidepool.h>

#include "support/nginx_env.h"
#include "support/test_util.h"

static nginx_env env;

typedef struct result {
    int n, ok, status;
    tp_err last;
    size_t body_len;
    bool body_ok;
    bool resumed;
} result;

static void on_done(void *ud, tp_err st, tp_http_response *r, const tp_errinfo *err)
{
    (void)err;
    result *res = ud;
    res->n++;
    res->last = st;
    if (st == TP_OK) {
        res->ok++;
        res->status = tp_http_response_status(r);
        const char *b = tp_http_response_body(r, &res->body_len);
        res->body_ok = res->body_len == strlen(NGINX_BODY) && memcmp(b, NGINX_BODY, res->body_len) == 0;
        if (res->body_len == NGINX_BIG_SIZE)
            res->body_ok = memcmp(b + NGINX_BIG_SIZE - 16, "000000000065535\n", 16) == 0;
        tp_http_response_info info;
        tp_http_response_get_info(r, &info);
        res->resumed = info.tls_resumed;
    }
    tp_http_response_free(r);
}

static tp_http_client *client(tp_http_client_options *o)
{
    tp_http_client_options d;
    if (o == NULL) {
        tp_http_client_options_init(&d);
        o = &d;
    }
    tp_http_client *c = NULL;
    tp_errinfo e;
    assert_int_equal(tp_http_client_create(o, &c, &e), TP_OK);
    return c;
}

/* Runs n GETs of url through a new engine on c; returns the results. */
static result run(tp_http_client *c, const char *url, int n)
{
    tp_http_engine *e = NULL;
    tp_errinfo err;
    assert_int_equal(tp_http_engine_create(c, &e, &err), TP_OK);
    result res = {0};
    tp_http_request req = {.url = url, .timeout = 10 * TP_NSEC_PER_SEC};
    for (int i = 0; i < n; i++)
        assert_int_equal(tp_http_engine_submit(e, &req, on_done, &res, NULL, &err), TP_OK);
    tp_http_engine_run(e);
    tp_http_engine_destroy(e);
    return res;
}

static tp_stats stats(tp_http_client *c)
{
    tp_stats st;
    tp_pool_stats(tp_http_client_pool(c), &st);
    return st;
}

static void test_many_requests_few_connections(void **state)
{
    (void)state;
    tp_http_client_options o;
    tp_http_client_options_init(&o);
    o.pool.max_per_key = 8;
    tp_http_client *c = client(&o);
    char u[128];
    snprintf(u, sizeof u, "http://127.0.0.1:%u/", (unsigned)env.http_port);
    result r = run(c, u, 2000);
    assert_int_equal(r.ok, 2000);
    assert_true(r.body_ok);
    tp_stats st = stats(c);
    assert_true(st.opens <= 8);
    assert_int_equal(st.acquires, 2000);
    tp_http_client_destroy(c);
}

static void test_connection_close_and_big_body(void **state)
{
    (void)state;
    tp_http_client *c = client(NULL);
    char u[128];
    snprintf(u, sizeof u, "http://127.0.0.1:%u/close", (unsigned)env.http_port);
    result r = run(c, u, 10);
    assert_int_equal(r.ok, 10);
    assert_int_equal(stats(c).closes[TP_CLOSE_DISCARDED], 10);
    snprintf(u, sizeof u, "http://127.0.0.1:%u/big", (unsigned)env.http_port);
    r = run(c, u, 3);
    assert_int_equal(r.ok, 3);
    assert_int_equal(r.body_len, NGINX_BIG_SIZE);
    assert_true(r.body_ok);
    tp_http_client_destroy(c);
}

static void test_tls_through_the_loop(void **state)
{
    (void)state;
    tp_http_client_options o;
    tp_http_client_options_init(&o);
    o.ca_file = env.ca_file;
    tp_http_client *c = client(&o);
    char u[128];
    snprintf(u, sizeof u, "https://localhost:%u/", (unsigned)env.https_port);
    result r = run(c, u, 50);
    assert_int_equal(r.ok, 50);
    assert_true(r.body_ok);
    tp_pool_evict(tp_http_client_pool(c), NULL, 0);
    r = run(c, u, 1);
    assert_int_equal(r.ok, 1);
    assert_true(r.resumed);
    snprintf(u, sizeof u, "https://localhost:%u/", (unsigned)env.https_wrong_name_port);
    r = run(c, u, 1);
    assert_int_equal(r.last, TP_ECERT);
    tp_http_client_destroy(c);
}

static void test_keepalive_expiry_and_restart(void **state)
{
    (void)state;
    tp_http_client *c = client(NULL);
    char u[128];
    snprintf(u, sizeof u, "http://127.0.0.1:%u/", (unsigned)env.http_short_ka_port);
    assert_int_equal(run(c, u, 1).ok, 1);
    tu_sleep_ms(1100); /* nginx closed it after 1 s */
    assert_int_equal(run(c, u, 1).ok, 1);
    snprintf(u, sizeof u, "http://127.0.0.1:%u/", (unsigned)env.http_port);
    assert_int_equal(run(c, u, 4).ok, 4);
    assert_int_equal(nginx_env_restart(&env), 0);
    assert_int_equal(run(c, u, 4).ok, 4);
    assert_int_equal(stats(c).open_failures, 0);
    tp_http_client_destroy(c);
}

typedef struct loop_job {
    tp_http_client *c;
    const char *u;
    result r;
} loop_job;

static void *loop_main(void *arg)
{
    loop_job *j = arg;
    tp_http_engine *e = NULL;
    tp_errinfo err;
    if (tp_http_engine_create(j->c, &e, &err) != TP_OK)
        return NULL;
    tp_http_request req = {.url = j->u, .timeout = 10 * TP_NSEC_PER_SEC};
    for (int i = 0; i < 500; i++)
        if (tp_http_engine_submit(e, &req, on_done, &j->r, NULL, &err) != TP_OK)
            break;
    tp_http_engine_run(e);
    tp_http_engine_destroy(e);
    return NULL;
}

static void test_two_engines_share_a_pool(void **state)
{
    (void)state;
    tp_http_client_options o;
    tp_http_client_options_init(&o);
    o.pool.max_per_key = 6;
    tp_http_client *c = client(&o);
    char u[128];
    snprintf(u, sizeof u, "http://127.0.0.1:%u/", (unsigned)env.http_port);
    loop_job jobs[2] = {{c, u, {0}}, {c, u, {0}}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        tu_thread_start(&t[i], loop_main, &jobs[i]);
    for (int i = 0; i < 2; i++) {
        tu_thread_join(t[i]);
        assert_int_equal(jobs[i].r.ok, 500);
    }
    assert_true(stats(c).opens <= 6);
    tp_http_client_destroy(c);
}

int main(void)
{
    if (nginx_env_load(&env) != 0) {
        fprintf(stderr, "test_http_engine_nginx: no nginx fixture (run through ctest): skipped\n");
        return 77;
    }
    tu_watchdog(180);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_many_requests_few_connections),
        cmocka_unit_test(test_connection_close_and_big_body),
        cmocka_unit_test(test_tls_through_the_loop),
        cmocka_unit_test(test_keepalive_expiry_and_restart),
        cmocka_unit_test(test_two_engines_share_a_pool),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
