/* test_http_redirect.c: following redirects. Location resolution on its own (absolute,
 * scheme-relative, absolute-path, query-only, relative with dot segments, fragments,
 * refused schemes), then against the fixture's nginx in the blocking call and the
 * engine: off by default (the 3xx is the answer), 301/302 to a GET, a POST answered 302
 * or 303 becoming a GET without its body, 307/308 keeping method and body, a relative
 * Location, a loop stopped at max_redirects (TP_ELIMIT), credentials kept on the same
 * origin and dropped on another. Skipped (77) without the fixture (the resolution tests
 * need none). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <tidepool/tidepool.h>

#include "http/client.h"
#include "support/http_both.h"
#include "support/nginx_env.h"
#include "support/test_util.h"

static nginx_env env;
static bool have_nginx;

static void resolves(const char *base, const char *location, const char *want)
{
    tp__http_url b, out;
    tp_errinfo e;
    assert_int_equal(tp__http_url_parse(base, &b, &e), TP_OK);
    tp_err rc = tp__http_redirect_target(&b, location, &out, &e);
    if (rc != TP_OK)
        fail_msg("%s + %s: %s", base, location, e.msg);
    char got[2400];
    snprintf(got, sizeof got, "%s://%s:%u%s", out.tls ? "https" : "http", out.host,
             (unsigned)out.port, out.target);
    if (strcmp(got, want) != 0)
        fail_msg("%s + %s: got %s, want %s", base, location, got, want);
}

static void test_location_resolution(void **state)
{
    (void)state;
    const char *b = "http://a.example:8080/x/y/z?q=1";
    resolves(b, "https://b.example/p", "https://b.example:443/p");
    resolves(b, "//c.example/p", "http://c.example:80/p");
    resolves(b, "/abs?k=v", "http://a.example:8080/abs?k=v");
    resolves(b, "?only", "http://a.example:8080/x/y/z?only");
    resolves(b, "rel", "http://a.example:8080/x/y/rel");
    resolves(b, "../up", "http://a.example:8080/x/up");
    resolves(b, "../../../../top", "http://a.example:8080/top");
    resolves(b, "./here/./there", "http://a.example:8080/x/y/here/there");
    resolves(b, "/p#frag", "http://a.example:8080/p");
    resolves("http://[::1]:9/a/b", "c", "http://::1:9/a/c");
    tp__http_url u, out;
    tp_errinfo e;
    assert_int_equal(tp__http_url_parse(b, &u, &e), TP_OK);
    const char *bad[] = {"", "ftp://x/", "javascript:alert(1)", "http://", "/sp ace"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(tp__http_redirect_target(&u, bad[i], &out, &e), TP_EPROTO);
    /* the method and body rules */
    assert_string_equal(tp__http_redirect_method(303, "POST"), "GET");
    assert_string_equal(tp__http_redirect_method(303, "HEAD"), "HEAD");
    assert_string_equal(tp__http_redirect_method(302, "POST"), "GET");
    assert_string_equal(tp__http_redirect_method(301, "PUT"), "PUT");
    assert_string_equal(tp__http_redirect_method(307, "POST"), "POST");
    assert_false(tp__http_redirect_keeps_body(303, "PUT"));
    assert_true(tp__http_redirect_keeps_body(308, "POST"));
    assert_false(tp__http_redirect_keeps_body(301, "POST"));
}

static hb_got call(tp_http_client *c, bool engine, const char *method, const char *url,
                   const char *body, const char *const *names, const char *const *values,
                   size_t nh)
{
    tp_http_request req = {.method = method,
                           .url = url,
                           .body = body,
                           .body_len = body != NULL ? strlen(body) : 0,
                           .header_names = names,
                           .header_values = values,
                           .nheaders = nh,
                           .timeout = 5 * TP_NSEC_PER_SEC};
    return hb_run(c, engine, &req);
}

static tp_http_client *client(int max_redirects)
{
    tp_http_client_options o;
    tp_http_client_options_init(&o);
    o.ca_file = env.ca_file;
    o.max_redirects = max_redirects;
    tp_http_client *c = NULL;
    tp_errinfo e;
    if (tp_http_client_create(&o, &c, &e) != TP_OK)
        fail_msg("create: %s", e.msg);
    return c;
}

static const char *url(const char *path)
{
    static char buf[8][256];
    static int i;
    char *u = buf[i++ % 8];
    snprintf(u, 256, "http://127.0.0.1:%u%s", (unsigned)env.http_port, path);
    return u;
}

static void test_followed(void **state)
{
    (void)state;
    if (!have_nginx)
        skip();
    tp_http_client *off = client(0), *c = client(5);
    for (int engine = 0; engine < 2; engine++) {
        hb_got g = call(off, engine, "GET", url("/redir/302"), NULL, NULL, NULL, 0);
        assert_int_equal(g.status, 302); /* off by default: the answer itself */
        assert_int_equal(g.info.redirects, 0);
        const struct {
            const char *method, *path, *body;
            int status, redirects;
            const char *want;
        } cases[] = {
            {"GET", "/redir/301", NULL, 200, 1, "hello, world\n"},
            {"GET", "/redir/302", NULL, 200, 1, "hello, world\n"},
            {"POST", "/redir/302", "dropped", 200, 1, "hello, world\n"}, /* POST -> GET */
            {"POST", "/redir/303", "dropped", 200, 1, ""},              /* GET /echo */
            {"POST", "/redir/307", "kept-307", 200, 1, "kept-307"},
            {"PUT", "/redir/308", "kept-308", 200, 1, "kept-308"},
            {"GET", "/redir/rel", NULL, 200, 1, "127.0.0.1"}, /* ../remote */
        };
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            g = call(c, engine, cases[i].method, url(cases[i].path), cases[i].body, NULL, NULL,
                     0);
            if (g.rc != TP_OK || g.status != cases[i].status ||
                g.info.redirects != cases[i].redirects || strcmp(g.body, cases[i].want) != 0)
                fail_msg("%s %s %s: %s %d after %d: \"%s\" (%s)", engine ? "engine" : "blocking",
                         cases[i].method, cases[i].path, tp_err_name(g.rc), g.status,
                         g.info.redirects, g.body, g.msg);
        }
        g = call(c, engine, "GET", url("/redir/loop"), NULL, NULL, NULL, 0);
        assert_int_equal(g.rc, TP_ELIMIT);
        assert_non_null(strstr(g.msg, "5 redirects"));
    }
    tp_http_client_destroy(off);
    tp_http_client_destroy(c);
}

static void test_credentials_stay_on_their_origin(void **state)
{
    (void)state;
    if (!have_nginx)
        skip();
    tp_http_client *c = client(3);
    const char *names[] = {"Authorization", "Cookie", "X-Other"};
    const char *values[] = {"Bearer t0k", "s=1", "kept"};
    char same[256];
    snprintf(same, sizeof same, "https://localhost:%u/redir/same", (unsigned)env.https_port);
    for (int engine = 0; engine < 2; engine++) {
        hb_got g = call(c, engine, "GET", same, NULL, names, values, 3);
        assert_int_equal(g.rc, TP_OK);
        assert_string_equal(g.body, "auth=Bearer t0k cookie=s=1");
        g = call(c, engine, "GET", url("/redir/tls"), NULL, names, values, 3);
        if (g.rc != TP_OK)
            fail_msg("cross-origin: %s: %s", tp_err_name(g.rc), g.msg);
        assert_int_equal(g.info.redirects, 1);
        assert_string_equal(g.body, "auth= cookie="); /* dropped on the way to https */
    }
    tp_http_client_destroy(c);
}

int main(void)
{
    have_nginx = nginx_env_load(&env) == 0;
    tu_watchdog(60);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_location_resolution),
        cmocka_unit_test(test_followed),
        cmocka_unit_test(test_credentials_stay_on_their_origin),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
