/* test_http_nginx.c: the HTTP client against a real nginx on loopback (the ctest
 * fixture "nginx", scripts/nginx-test.sh): reuse counts, Connection: close, server-side
 * keep-alive expiry, a server restart under idle connections, unread bodies, the
 * Keep-Alive hint, 204 and HEAD, and TLS (verification, a wrong host name, an untrusted
 * CA, session resumption). Skipped (77) when the fixture is not there. */
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

typedef struct fx {
    tp_http_client *c;
} fx;

static int setup(void **state)
{
    fx *x = calloc(1, sizeof *x);
    *state = x;
    return x == NULL ? -1 : 0;
}

static int teardown(void **state)
{
    fx *x = *state;
    tp_http_client_destroy(x->c);
    free(x);
    return 0;
}

static tp_http_client *client(fx *x, tp_http_client_options *o)
{
    tp_http_client_options d;
    if (o == NULL) {
        tp_http_client_options_init(&d);
        o = &d;
    }
    tp_errinfo e;
    tp_err rc = tp_http_client_create(o, &x->c, &e);
    if (rc != TP_OK)
        print_error("create: %s\n", e.msg);
    assert_int_equal(rc, TP_OK);
    return x->c;
}

static void url(char *buf, size_t cap, bool tls, uint16_t port, const char *path)
{
    snprintf(buf, cap, "%s://127.0.0.1:%u%s", tls ? "https" : "http", (unsigned)port, path);
}

/* GET u: must be 200 (or want) with the expected body; returns the info. */
static tp_http_response_info get(tp_http_client *c, const char *u, int want, const char *body)
{
    tp_http_response *r = NULL;
    tp_errinfo e;
    tp_err rc = tp_http_get(c, u, &r, &e);
    if (rc != TP_OK)
        print_error("GET %s: %s: %s\n", u, tp_err_name(rc), e.msg);
    assert_int_equal(rc, TP_OK);
    assert_int_equal(tp_http_response_status(r), want);
    if (body != NULL) {
        size_t len;
        const char *b = tp_http_response_body(r, &len);
        assert_int_equal(len, strlen(body));
        assert_memory_equal(b, body, len);
    }
    tp_http_response_info info;
    tp_http_response_get_info(r, &info);
    tp_http_response_free(r);
    return info;
}

static tp_stats stats(tp_http_client *c)
{
    tp_stats st;
    tp_pool_stats(tp_http_client_pool(c), &st);
    return st;
}

static void test_sequential_requests_share_one_connection(void **state)
{
    tp_http_client *c = client(*state, NULL);
    char u[128];
    url(u, sizeof u, false, env.http_port, "/");
    for (int i = 0; i < 100; i++)
        assert_int_equal(get(c, u, 200, NGINX_BODY).reused, i > 0);
    tp_stats st = stats(c);
    assert_int_equal(st.opens, 1);
    assert_int_equal(st.reuses, 99);
}

static void test_connection_close_honoured(void **state)
{
    tp_http_client *c = client(*state, NULL);
    char u[128];
    url(u, sizeof u, false, env.http_port, "/close");
    for (int i = 0; i < 5; i++) {
        tp_http_response_info info = get(c, u, 200, NGINX_BODY);
        assert_false(info.reused);
        assert_false(info.keep_alive);
    }
    tp_stats st = stats(c);
    assert_int_equal(st.opens, 5);
    assert_int_equal(st.closes[TP_CLOSE_DISCARDED], 5);
}

static void test_server_keepalive_expiry_never_fails(void **state)
{
    /* nginx closes idle connections after 1 s. Requests spaced around that instant must
     * all succeed: the idle check sees the FIN, or the GET is retried. */
    tp_http_client *c = client(*state, NULL);
    char u[128];
    url(u, sizeof u, false, env.http_short_ka_port, "/");
    const int gaps_ms[] = {900, 980, 1000, 1020, 1100, 1500};
    get(c, u, 200, NGINX_BODY);
    for (size_t i = 0; i < sizeof gaps_ms / sizeof gaps_ms[0]; i++) {
        tu_sleep_ms(gaps_ms[i]);
        get(c, u, 200, NGINX_BODY);
    }
    assert_int_equal(stats(c).open_failures, 0);
}

static void test_server_restart_while_idle(void **state)
{
    tp_http_client *c = client(*state, NULL);
    char u[128];
    url(u, sizeof u, false, env.http_port, "/");
    get(c, u, 200, NGINX_BODY);
    assert_int_equal(nginx_env_restart(&env), 0);
    tp_http_response_info info = get(c, u, 200, NGINX_BODY);
    assert_false(info.reused);
    tp_stats st = stats(c);
    assert_int_equal(st.opens, 2);
    assert_int_equal(st.idle + st.in_use, 1);
}

static void test_unread_body_leaves_next_response_intact(void **state)
{
    tp_http_client *c = client(*state, NULL);
    char big[128], small[128];
    url(big, sizeof big, false, env.http_port, "/big");
    url(small, sizeof small, false, env.http_port, "/");
    tp_http_request req = {.url = big, .timeout = TP_DURATION_DEFAULT, .flags = TP_HTTP_STREAM};
    tp_http_response *r = NULL;
    tp_errinfo e;
    assert_int_equal(tp_http_client_do(c, &req, &r, &e), TP_OK);
    char buf[100];
    size_t got;
    assert_int_equal(tp_http_response_read(r, buf, sizeof buf, &got, &e), TP_OK);
    assert_true(got > 0 && memcmp(buf, "000000000000000\n", 16) == 0);
    tp_http_response_free(r); /* 1 MiB left: too much to drain, closed */
    get(c, small, 200, NGINX_BODY);
    /* A short unread body is drained and the connection kept. */
    req.url = small;
    assert_int_equal(tp_http_client_do(c, &req, &r, &e), TP_OK);
    tp_http_response_free(r);
    assert_true(get(c, small, 200, NGINX_BODY).reused);
    assert_int_equal(stats(c).opens, 2);
}

static void test_big_body_in_full(void **state)
{
    tp_http_client *c = client(*state, NULL);
    char u[128];
    url(u, sizeof u, false, env.http_port, "/big");
    tp_http_response *r = NULL;
    tp_errinfo e;
    assert_int_equal(tp_http_get(c, u, &r, &e), TP_OK);
    size_t len;
    const char *b = tp_http_response_body(r, &len);
    assert_int_equal(len, NGINX_BIG_SIZE);
    char line[17];
    snprintf(line, sizeof line, "%015d\n", 65535);
    assert_memory_equal(b + len - 16, line, 16);
    tp_http_response_free(r);
}

static void test_no_body_responses(void **state)
{
    tp_http_client *c = client(*state, NULL);
    char st[128], big[128], root[128];
    url(st, sizeof st, false, env.http_port, "/status");
    url(big, sizeof big, false, env.http_port, "/big");
    url(root, sizeof root, false, env.http_port, "/");
    get(c, st, 204, "");
    tp_http_request head = {.method = "HEAD", .url = big, .timeout = TP_DURATION_DEFAULT};
    tp_http_response *r = NULL;
    tp_errinfo e;
    assert_int_equal(tp_http_client_do(c, &head, &r, &e), TP_OK);
    size_t len;
    tp_http_response_body(r, &len);
    assert_int_equal(len, 0);
    tp_http_response_free(r);
    assert_true(get(c, root, 200, NGINX_BODY).reused);
    assert_int_equal(stats(c).opens, 1);
}

static void test_keepalive_hint(void **state)
{
    /* /ka-hint announces (and enforces) timeout=3: the client keeps that destination's
     * idle connections at most 2.7 s, so a request after 2.9 s opens a new connection
     * instead of racing the server's close. */
    tp_http_client *c = client(*state, NULL);
    char u[128];
    url(u, sizeof u, false, env.http_port, "/ka-hint");
    get(c, u, 200, NGINX_BODY);
    tu_sleep_ms(2900);
    tp_http_response_info info = get(c, u, 200, NGINX_BODY);
    assert_false(info.reused);
    assert_false(info.retried);
    assert_int_equal(stats(c).closes[TP_CLOSE_IDLE_TIMEOUT], 1);
}

static void test_echo_post(void **state)
{
    tp_http_client *c = client(*state, NULL);
    char u[128];
    url(u, sizeof u, false, env.http_port, "/echo");
    tp_http_request req = {.method = "POST", .url = u, .body = "ping-pong", .body_len = 9,
                           .timeout = TP_DURATION_DEFAULT};
    tp_http_response *r = NULL;
    tp_errinfo e;
    assert_int_equal(tp_http_client_do(c, &req, &r, &e), TP_OK);
    size_t len;
    const char *b = tp_http_response_body(r, &len);
    assert_int_equal(len, 9);
    assert_memory_equal(b, "ping-pong", 9);
    tp_http_response_free(r);
}

static void on_done_413(void *ud, tp_err rc, tp_http_response *r, const tp_errinfo *err)
{
    (void)err;
    int *status = ud;
    *status = rc == TP_OK ? tp_http_response_status(r) : -(int)rc;
    tp_http_response_free(r);
}

/* 16 MiB to a location that takes 1 MiB: nginx answers 413 after the header; the
 * caller gets that answer in both paths, and the connection is not reused. */
static void test_echo_too_large_answered(void **state)
{
    tp_http_client *c = client(*state, NULL);
    char u[128];
    url(u, sizeof u, false, env.http_port, "/echo");
    size_t n = 16u << 20;
    char *big = malloc(n);
    assert_non_null(big);
    memset(big, 'z', n);
    tp_http_request req = {.method = "POST", .url = u, .body = big, .body_len = n,
                           .timeout = 10 * TP_NSEC_PER_SEC};
    tp_http_response *r = NULL;
    tp_errinfo e;
    tp_err rc = tp_http_client_do(c, &req, &r, &e);
    if (rc != TP_OK)
        fail_msg("blocking: %s: %s", tp_err_name(rc), e.msg);
    assert_int_equal(tp_http_response_status(r), 413);
    tp_http_response_info info;
    tp_http_response_get_info(r, &info);
    assert_true(info.early);
    assert_false(info.keep_alive);
    tp_http_response_free(r);

    tp_http_engine *eng = NULL;
    assert_int_equal(tp_http_engine_create(c, &eng, &e), TP_OK);
    int status = 0;
    assert_int_equal(tp_http_engine_submit(eng, &req, on_done_413, &status, NULL, &e), TP_OK);
    int64_t t0 = tu_now_ns();
    while (status == 0 && tu_now_ns() - t0 < 15 * TP_NSEC_PER_SEC)
        (void)tp_http_engine_poll(eng, 50 * TP_NSEC_PER_MSEC);
    tp_http_engine_destroy(eng);
    assert_int_equal(status, 413);
    tp_stats st = stats(c);
    assert_int_equal(st.opens, 2); /* neither connection was reused */
    assert_int_equal(st.idle, 0);
    free(big);
}

static void test_tls_verified_and_resumed(void **state)
{
    tp_http_client_options o;
    tp_http_client_options_init(&o);
    o.ca_file = env.ca_file;
    tp_http_client *c = client(*state, &o);
    char u[128];
    snprintf(u, sizeof u, "https://localhost:%u/", (unsigned)env.https_port);
    tp_http_response_info info = get(c, u, 200, NGINX_BODY);
    assert_false(info.reused);
    assert_true(get(c, u, 200, NGINX_BODY).reused);
    /* A new connection to the same destination resumes the session. */
    assert_int_equal(tp_pool_evict(tp_http_client_pool(c), NULL, 0), 1);
    info = get(c, u, 200, NGINX_BODY);
    assert_false(info.reused);
    assert_true(info.tls_resumed);
    /* By IP literal too (the certificate has IP:127.0.0.1). */
    url(u, sizeof u, true, env.https_port, "/");
    get(c, u, 200, NGINX_BODY);
}

static void test_tls_wrong_host_name(void **state)
{
    tp_http_client_options o;
    tp_http_client_options_init(&o);
    o.ca_file = env.ca_file;
    tp_http_client *c = client(*state, &o);
    /* A server whose certificate (signed by the trusted CA) names another host. */
    char u[128];
    snprintf(u, sizeof u, "https://localhost:%u/", (unsigned)env.https_wrong_name_port);
    tp_http_response *r = NULL;
    tp_errinfo e;
    tp_err rc = tp_http_get(c, u, &r, &e);
    print_message("wrong host: %s: %s\n", tp_err_name(rc), e.msg);
    assert_int_equal(rc, TP_ECERT);
    assert_null(r);
}

static void test_tls_untrusted_ca(void **state)
{
    tp_http_client *c = client(*state, NULL); /* system CAs only */
    char u[128];
    snprintf(u, sizeof u, "https://localhost:%u/", (unsigned)env.https_port);
    tp_http_response *r = NULL;
    tp_errinfo e;
    tp_err rc = tp_http_get(c, u, &r, &e);
    print_message("untrusted CA: %s: %s\n", tp_err_name(rc), e.msg);
    assert_int_equal(rc, TP_ECERT);
    /* Insecure mode, named as such, connects anyway. */
    tp_http_client_destroy(c);
    tp_http_client_options o;
    tp_http_client_options_init(&o);
    o.tls_insecure_skip_verify = true;
    c = client(*state, &o);
    get(c, u, 200, NGINX_BODY);
}

typedef struct job {
    tp_http_client *c;
    const char *u;
    int ok;
} job;

static void *job_main(void *arg)
{
    job *j = arg;
    for (int i = 0; i < 50; i++) {
        tp_http_response *r = NULL;
        tp_errinfo e;
        if (tp_http_get(j->c, j->u, &r, &e) == TP_OK && tp_http_response_status(r) == 200)
            j->ok++;
        tp_http_response_free(r);
    }
    return NULL;
}

static void test_concurrent_requests_stay_within_limit(void **state)
{
    /* 16 threads share a client limited to 4 connections: everything succeeds, never
     * more than 4 connections are opened. */
    tp_http_client_options o;
    tp_http_client_options_init(&o);
    o.pool.max_per_key = 4;
    o.pool.max_idle_per_key = 4;
    tp_http_client *c = client(*state, &o);
    char u[128];
    url(u, sizeof u, false, env.http_port, "/");
    enum { N = 16 };
    pthread_t t[N];
    job jobs[N];
    for (int i = 0; i < N; i++) {
        jobs[i] = (job){c, u, 0};
        tu_thread_start(&t[i], job_main, &jobs[i]);
    }
    for (int i = 0; i < N; i++) {
        tu_thread_join(t[i]);
        assert_int_equal(jobs[i].ok, 50);
    }
    tp_stats st = stats(c);
    assert_true(st.opens <= 4);
    assert_int_equal(st.acquires, N * 50);
}

int main(void)
{
    if (nginx_env_load(&env) != 0) {
        fprintf(stderr, "test_http_nginx: no nginx fixture (run through ctest): skipped\n");
        return 77;
    }
    tu_watchdog(180);
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_sequential_requests_share_one_connection),
        T(test_connection_close_honoured),
        T(test_server_keepalive_expiry_never_fails),
        T(test_server_restart_while_idle),
        T(test_unread_body_leaves_next_response_intact),
        T(test_big_body_in_full),
        T(test_no_body_responses),
        T(test_keepalive_hint),
        T(test_echo_post),
        T(test_echo_too_large_answered),
        T(test_tls_verified_and_resumed),
        T(test_tls_wrong_host_name),
        T(test_tls_untrusted_ca),
        T(test_concurrent_requests_stay_within_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
