/* test_http_dial.c: the HTTP client's connections through the dialer, against the
 * fixture's nginx, in the blocking call and in the engine: over a Unix socket (the path
 * in the key, nginx sees "unix:"), from a chosen local address (nginx sees it); the
 * defaults the client gives the dialer (TCP_USER_TIMEOUT tied to the request's
 * timeouts); `tidepool bench --unix-socket`; and the options refused at create. Happy Eyeballs
 * itself is test_net_dial's (it needs addresses of its own choosing). Skipped (77) without the
 * fixture. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <tidepool/tidepool.h>

#include "http/client.h"
#include "support/chaos_cli.h"
#include "support/http_both.h"
#include "support/nginx_env.h"
#include "support/test_util.h"

static nginx_env env;

static tp_http_client *client(tp_http_client_options *o)
{
    tp_http_client *c = NULL;
    tp_errinfo e;
    tp_err rc = tp_http_client_create(o, &c, &e);
    if (rc != TP_OK)
        fail_msg("create: %s", e.msg);
    return c;
}

/* Whatever the URL's host, the request goes over the socket; the key names the path. */
static void unix_socket(bool engine)
{
    tp_http_client_options o;
    tp_http_client_options_init(&o);
    o.unix_socket = env.unix_socket;
    tp_http_client *c = client(&o);
    hb_got g = hb_get(c, engine, "http://example.invalid/remote");
    if (g.rc != TP_OK)
        fail_msg("%s", g.msg);
    assert_int_equal(g.status, 200);
    assert_string_equal(g.body, "unix:");
    g = hb_get(c, engine, "http://example.invalid/");
    assert_int_equal(g.rc, TP_OK);
    assert_string_equal(g.body, NGINX_BODY);
    tp_stats st;
    tp_pool_stats(tp_http_client_pool(c), &st);
    assert_int_equal(st.opens, 1); /* the second request reused the first's connection */
    tp_stats ks;
    char key[600];
    snprintf(key, sizeof key, "unix:%s http://example.invalid:80", env.unix_socket);
    assert_int_equal(tp_pool_key_stats(tp_http_client_pool(c), key, strlen(key), &ks), TP_OK);
    assert_int_equal(ks.total, 1);
    tp_http_client_destroy(c);

    /* No socket there: an error naming the path, at once. */
    char missing[600];
    snprintf(missing, sizeof missing, "%s.missing", env.unix_socket);
    o.unix_socket = missing;
    o.pool.acquire_timeout = TP_NSEC_PER_SEC;
    c = client(&o);
    int64_t t0 = tu_now_ns();
    g = hb_get(c, engine, "http://example.invalid/");
    assert_true(g.rc != TP_OK);
    assert_non_null(strstr(g.msg, missing));
    assert_true(tu_ms_since(t0) < 2000.0);
    tp_http_client_destroy(c);
}

static void test_unix_socket_blocking(void **state)
{
    (void)state;
    unix_socket(false);
}

static void test_unix_socket_engine(void **state)
{
    (void)state;
    unix_socket(true);
}

/* nginx sees the connection come from the local address asked for. */
static void test_local_address(void **state)
{
    (void)state;
    tp_http_client_options o;
    tp_http_client_options_init(&o);
    o.local_address = "127.0.0.2";
    tp_http_client *c = client(&o);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/remote", (unsigned)env.http_port);
    for (int engine = 0; engine < 2; engine++) {
        hb_got g = hb_get(c, engine, url);
        if (g.rc != TP_OK)
            fail_msg("%s", g.msg);
        assert_string_equal(g.body, "127.0.0.2");
    }
    tp_http_client_destroy(c);
    tp_http_client_options_init(&o);
    c = client(&o);
    hb_got g = hb_get(c, false, url);
    assert_string_equal(g.body, "127.0.0.1");
    tp_http_client_destroy(c);
}

/* The client's dial options: TCP_USER_TIMEOUT follows the request's timeouts unless
 * set; the attempt delay and keepalive pass through. */
static void test_dial_defaults(void **state)
{
    (void)state;
    tp_http_client_options o;
    tp_http_client_options_init(&o);
    o.response_header_timeout = 7 * TP_NSEC_PER_SEC;
    tp_http_client *c = client(&o);
    assert_true(c->dial.user_timeout == 7 * TP_NSEC_PER_SEC);
    assert_int_equal(c->dial.keepalive_idle_s, 30);
    tp_http_client_destroy(c);
    o.request_timeout = 2 * TP_NSEC_PER_SEC;
    o.happy_eyeballs_delay = 100 * TP_NSEC_PER_MSEC;
    c = client(&o);
    assert_true(c->dial.user_timeout == 2 * TP_NSEC_PER_SEC);
    assert_true(c->dial.attempt_delay == 100 * TP_NSEC_PER_MSEC);
    tp_http_client_destroy(c);
    o.tcp_user_timeout = TP_DURATION_INFINITE;
    c = client(&o);
    assert_true(c->dial.user_timeout == 0); /* the kernel's */
    tp_http_client_destroy(c);
    o.tcp_user_timeout = 3 * TP_NSEC_PER_SEC;
    c = client(&o);
    assert_true(c->dial.user_timeout == 3 * TP_NSEC_PER_SEC);
    tp_http_client_destroy(c);
}

/* `tidepool bench URL --unix-socket PATH`: every request over the socket. */
static void test_bench_over_unix_socket(void **state)
{
    (void)state;
    const char *cli = chaos_cli_path();
    if (cli == NULL)
        skip();
    char cmd[1400];
    snprintf(cmd, sizeof cmd,
             "'%s' bench http://localhost/ --unix-socket '%s' -n 400 -c 4 --json -q", cli,
             env.unix_socket);
    FILE *f = popen(cmd, "r");
    assert_non_null(f);
    char out[4096] = "";
    size_t n = fread(out, 1, sizeof out - 1, f);
    out[n] = '\0';
    assert_int_equal(pclose(f), 0);
    print_message("%s", out);
    assert_non_null(strstr(out, "\"requests\":400,"));
    assert_non_null(strstr(out, "\"errors\":0,"));
    const char *c = strstr(out, "\"connects\":");
    assert_non_null(c);
    assert_true(atoi(c + 11) >= 1 && atoi(c + 11) <= 4);
    /* Refused without an HTTP URL. */
    snprintf(cmd, sizeof cmd, "'%s' bench redis://127.0.0.1:1 --unix-socket /tmp/x -n 1 -q 2>&1",
             cli);
    f = popen(cmd, "r");
    n = fread(out, 1, sizeof out - 1, f);
    out[n] = '\0';
    assert_true(pclose(f) != 0);
    assert_non_null(strstr(out, "--unix-socket"));
}

static void test_bad_options(void **state)
{
    (void)state;
    char lng[200];
    memset(lng, 'x', sizeof lng - 1);
    lng[sizeof lng - 1] = '\0';
    struct {
        const char *local, *sock, *why;
        int64_t user_timeout;
    } bad[] = {{"not-an-ip", NULL, "local_address", 0},
               {NULL, "", "unix_socket", 0},
               {NULL, lng, "unix_socket", 0},
               {"127.0.0.2", "/tmp/x.sock", "local_address", 0},
               {NULL, NULL, "tcp_user_timeout", -5}};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        tp_http_client_options o;
        tp_http_client_options_init(&o);
        o.local_address = bad[i].local;
        o.unix_socket = bad[i].sock;
        o.tcp_user_timeout = bad[i].user_timeout;
        tp_http_client *c = NULL;
        tp_errinfo e = {0};
        assert_int_equal(tp_http_client_create(&o, &c, &e), TP_EINVAL);
        assert_null(c);
        assert_non_null(strstr(e.msg, bad[i].why));
    }
}

int main(void)
{
    if (nginx_env_load(&env) != 0)
        return 77;
    if (env.unix_socket[0] == '\0') {
        fprintf(stderr, "the fixture has no Unix socket (an older nginx-test.sh?)\n");
        return 1;
    }
    tu_watchdog(60);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unix_socket_blocking),   cmocka_unit_test(test_unix_socket_engine),
        cmocka_unit_test(test_local_address),          cmocka_unit_test(test_dial_defaults),
        cmocka_unit_test(test_bench_over_unix_socket), cmocka_unit_test(test_bad_options),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
