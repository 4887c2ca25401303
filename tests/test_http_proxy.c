/* test_http_proxy.c: requests through a real HTTP proxy (tinyproxy, started per test by
 * scripts/proxy-test.sh) to the fixture's nginx, in the blocking call and the engine:
 * plain http:// in absolute form, https:// through a CONNECT tunnel (the certificate
 * still checked against the destination), Basic proxy credentials (percent-encoded in
 * the URL; without them: the proxy's 407 for http://, TP_EPROXY for a tunnel), no_proxy,
 * the environment (only when asked), the proxy in the pool key, a proxy that is down,
 * and the proxy options refused at create. The proxy's log says what went through it.
 * Skipped (77) without the fixture or tinyproxy. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include <tidepool/tidepool.h>

#include "support/http_both.h"
#include "support/nginx_env.h"
#include "support/proxy_env.h"
#include "support/test_util.h"

static nginx_env env;

static tp_http_client *client(const char *proxy, const char *no_proxy, bool from_env)
{
    tp_http_client_options o;
    tp_http_client_options_init(&o);
    o.ca_file = env.ca_file;
    o.proxy = proxy;
    o.no_proxy = no_proxy;
    o.proxy_from_env = from_env;
    tp_http_client *c = NULL;
    tp_errinfo e;
    if (tp_http_client_create(&o, &c, &e) != TP_OK)
        fail_msg("create: %s", e.msg);
    return c;
}

static proxy_env px;

static void start_proxy(const char *auth)
{
    int rc = proxy_start(auth, &px);
    if (rc == 77)
        skip();
    assert_int_equal(rc, 0);
}

static int teardown(void **state)
{
    (void)state;
    proxy_stop(&px);
    unsetenv("http_proxy");
    unsetenv("HTTP_PROXY");
    unsetenv("https_proxy");
    unsetenv("no_proxy");
    return 0;
}

static void urls(char *plain, char *tls, size_t cap, const char *host)
{
    snprintf(plain, cap, "http://%s:%u/", host, (unsigned)env.http_port);
    snprintf(tls, cap, "https://%s:%u/", host, (unsigned)env.https_port);
}

/* What the proxy logged for a plain request and for a tunnel to host. */
static void seen(const char *host, int *plain, int *tunnels)
{
    char needle[128];
    snprintf(needle, sizeof needle, "GET http://%s:%u/ ", host, (unsigned)env.http_port);
    *plain = proxy_log_count(&px, needle);
    snprintf(needle, sizeof needle, "CONNECT %s:%u ", host, (unsigned)env.https_port);
    *tunnels = proxy_log_count(&px, needle);
}

static void test_plain_and_tunnel(void **state)
{
    (void)state;
    start_proxy(NULL);
    char proxy[64], plain[128], tls[128];
    snprintf(proxy, sizeof proxy, "http://127.0.0.1:%u", (unsigned)px.port);
    urls(plain, tls, sizeof plain, "localhost");
    tp_http_client *c = client(proxy, NULL, false);
    for (int engine = 0; engine < 2; engine++) {
        for (int t = 0; t < 2; t++) {
            hb_got g = hb_get(c, engine, t ? tls : plain);
            if (g.rc != TP_OK)
                fail_msg("%s %s: %s: %s", engine ? "engine" : "blocking", t ? tls : plain,
                         tp_err_name(g.rc), g.msg);
            assert_int_equal(g.status, 200);
            assert_string_equal(g.body, "hello, world\n");
        }
    }
    int p = 0, n = 0;
    seen("localhost", &p, &n);
    assert_true(p >= 2); /* one per request unless the proxy kept the connection */
    assert_true(n >= 1);
    /* The proxy is part of the key: the pool's keys name it. */
    tp_stats st;
    tp_pool_stats(tp_http_client_pool(c), &st);
    assert_int_equal(st.keys, 2);
    char key[128];
    snprintf(key, sizeof key, "proxy:127.0.0.1:%u https://localhost:%u", (unsigned)px.port,
             (unsigned)env.https_port);
    tp_stats ks;
    assert_int_equal(tp_pool_key_stats(tp_http_client_pool(c), key, strlen(key), &ks), TP_OK);
    assert_true(ks.opens >= 1);
    tp_http_client_destroy(c);
}

static void test_credentials(void **state)
{
    (void)state;
    start_proxy("tp:s3cr3t");
    char good[96], none[96], plain[128], tls[128];
    /* %33 is '3': the password in the URL is percent-decoded */
    snprintf(good, sizeof good, "http://tp:s3cr%%33t@127.0.0.1:%u", (unsigned)px.port);
    snprintf(none, sizeof none, "http://127.0.0.1:%u", (unsigned)px.port);
    urls(plain, tls, sizeof plain, "localhost");
    tp_http_client *c = client(good, NULL, false);
    for (int engine = 0; engine < 2; engine++)
        for (int t = 0; t < 2; t++) {
            hb_got g = hb_get(c, engine, t ? tls : plain);
            if (g.rc != TP_OK || g.status != 200)
                fail_msg("with credentials, %s: %s %d %s", t ? tls : plain, tp_err_name(g.rc),
                         g.status, g.msg);
        }
    tp_http_client_destroy(c);
    c = client(none, NULL, false);
    for (int engine = 0; engine < 2; engine++) {
        hb_got g = hb_get(c, engine, plain);
        assert_int_equal(g.rc, TP_OK);
        assert_int_equal(g.status, 407); /* the proxy's own answer */
        g = hb_get(c, engine, tls);
        assert_int_equal(g.rc, TP_EPROXY);
        if (strstr(g.msg, "407") == NULL)
            fail_msg("message: %s", g.msg);
    }
    tp_http_client_destroy(c);
}

static void test_no_proxy_and_environment(void **state)
{
    (void)state;
    start_proxy(NULL);
    char proxy[64], plain_l[128], tls_l[128], plain_ip[128], tls_ip[128];
    snprintf(proxy, sizeof proxy, "http://127.0.0.1:%u", (unsigned)px.port);
    urls(plain_l, tls_l, sizeof plain_l, "localhost");
    urls(plain_ip, tls_ip, sizeof plain_ip, "127.0.0.1");

    tp_http_client *c = client(proxy, "127.0.0.1, .example.com", false);
    assert_int_equal(hb_get(c, false, plain_ip).status, 200);
    assert_int_equal(hb_get(c, true, tls_ip).status, 200);
    assert_int_equal(hb_get(c, false, plain_l).status, 200);
    tp_http_client_destroy(c);
    int p, n;
    seen("127.0.0.1", &p, &n);
    assert_int_equal(p + n, 0); /* no_proxy: direct */
    seen("localhost", &p, &n);
    assert_true(p >= 1);

    /* The environment counts only when asked; HTTP_PROXY (upper case) never. */
    setenv("HTTP_PROXY", "http://127.0.0.1:1", 1);
    c = client(NULL, NULL, true);
    assert_int_equal(hb_get(c, false, plain_ip).status, 200); /* HTTP_PROXY ignored: direct */
    tp_http_client_destroy(c);
    setenv("http_proxy", proxy, 1);
    setenv("https_proxy", proxy, 1);
    setenv("no_proxy", "localhost", 1);
    c = client(NULL, NULL, false);
    assert_int_equal(hb_get(c, false, plain_ip).status, 200);
    tp_http_client_destroy(c);
    seen("127.0.0.1", &p, &n);
    assert_int_equal(p + n, 0); /* not asked: direct */
    c = client(NULL, NULL, true);
    assert_int_equal(hb_get(c, false, plain_ip).status, 200);
    assert_int_equal(hb_get(c, true, tls_ip).status, 200);
    int lp0, ln0;
    seen("localhost", &lp0, &ln0);
    assert_int_equal(hb_get(c, false, plain_l).status, 200); /* $no_proxy: direct */
    tp_http_client_destroy(c);
    seen("127.0.0.1", &p, &n);
    assert_int_equal(p, 1);
    assert_int_equal(n, 1);
    int lp, ln;
    seen("localhost", &lp, &ln);
    assert_int_equal(lp, lp0);
}

static void test_proxy_down(void **state)
{
    (void)state;
    char plain[128], tls[128];
    urls(plain, tls, sizeof plain, "localhost");
    uint16_t port = 0;
    int fd = tu_listen_loopback(AF_INET, 1, &port);
    close(fd); /* nothing listens there now */
    char proxy[64];
    snprintf(proxy, sizeof proxy, "http://127.0.0.1:%u", (unsigned)port);
    tp_http_client *c = client(proxy, NULL, false);
    for (int engine = 0; engine < 2; engine++) {
        hb_got g = hb_get(c, engine, tls);
        assert_int_equal(g.rc, TP_ECONNREFUSED);
    }
    tp_http_client_destroy(c);
}

static void test_bad_proxy_options(void **state)
{
    (void)state;
    const struct {
        const char *proxy;
        const char *why;
    } bad[] = {
        {"https://127.0.0.1:3128", "only http://"},
        {"socks5://127.0.0.1:1080", "only http://"},
        {"http://127.0.0.1:3128/path", "no path"},
        {"http://", "no host"},
        {"http://u:p%zz@127.0.0.1:3128", "encoding"},
        {"http://127.0.0.1:99999", "proxy"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tp_http_client_options o;
        tp_http_client_options_init(&o);
        o.proxy = bad[i].proxy;
        tp_http_client *c = NULL;
        tp_errinfo e;
        assert_int_equal(tp_http_client_create(&o, &c, &e), TP_EINVAL);
        assert_null(c);
        if (strstr(e.msg, bad[i].why) == NULL)
            fail_msg("%s: \"%s\" lacks \"%s\"", bad[i].proxy, e.msg, bad[i].why);
    }
    tp_http_client_options o;
    tp_http_client_options_init(&o);
    o.proxy = "http://127.0.0.1:3128";
    o.unix_socket = "/tmp/x.sock";
    tp_http_client *c = NULL;
    tp_errinfo e;
    assert_int_equal(tp_http_client_create(&o, &c, &e), TP_EINVAL);
}

int main(void)
{
    if (nginx_env_load(&env) != 0)
        return 77;
    tu_watchdog(90);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_plain_and_tunnel, teardown),
        cmocka_unit_test_teardown(test_credentials, teardown),
        cmocka_unit_test_teardown(test_no_proxy_and_environment, teardown),
        cmocka_unit_test_teardown(test_proxy_down, teardown),
        cmocka_unit_test_teardown(test_bad_proxy_options, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
