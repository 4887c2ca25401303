/* test_oom_http.c: out-of-memory torture of the HTTP client (tests/support/oom_torture.h)
 * against the real nginx of the "nginx" fixture: a blocking GET over plain TCP, one over
 * TLS, an engine run of ten requests, and both over HTTP/2; each scenario builds and destroys its
 * own client, so every failing allocation is met from a clean start. Skipped (77) when the fixture
 * is not there. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <tidepool/tidepool.h>

#include "support/nginx_env.h"
#include "support/oom_torture.h"
#include "support/test_util.h"

static nginx_env env;

typedef struct scenario {
    bool tls;
    bool h2; /* the fixture's HTTP/2 server (over TLS) */
} scenario;

static void url_of(const scenario *s, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s://127.0.0.1:%u/", s->tls || s->h2 ? "https" : "http",
             (unsigned)(s->h2    ? env.https_h2_port
                        : s->tls ? env.https_port
                                 : env.http_port));
}

/* The scenario's URL into url, and a new client of its own into *c. */
static tp_err make_client(const scenario *s, char *url, size_t cap, tp_http_client **c)
{
    url_of(s, url, cap);
    tp_http_client_options o;
    tp_http_client_options_init(&o);
    o.ca_file = env.ca_file;
    o.pool.maintenance_thread = false;
    return tp_http_client_create(&o, c, NULL);
}

/* The body must be nginx's: a failure must never deliver a wrong one. */
static tp_err check(tp_err rc, tp_http_response *r)
{
    if (rc != TP_OK)
        return rc;
    size_t len = 0;
    const char *b = tp_http_response_body(r, &len);
    if (tp_http_response_status(r) != 200 || len != strlen(NGINX_BODY) ||
        memcmp(b, NGINX_BODY, len) != 0)
        return TP_EPROTO;
    return TP_OK;
}

static tp_err blocking_get(void *ud)
{
    char url[128];
    tp_http_client *c = NULL;
    tp_err rc = make_client(ud, url, sizeof url, &c);
    if (rc != TP_OK)
        return rc;
    tp_http_response *r = NULL;
    rc = tp_http_get(c, url, &r, NULL);
    rc = check(rc, r);
    tp_http_response_free(r);
    tp_http_client_destroy(c);
    return rc;
}

typedef struct done_rec {
    int done;
    tp_err first;
} done_rec;

static void on_done(void *ud, tp_err rc, tp_http_response *r, const tp_errinfo *err)
{
    (void)err;
    done_rec *d = ud;
    rc = check(rc, r);
    if (d->first == TP_OK)
        d->first = rc;
    d->done++;
    tp_http_response_free(r);
}

static tp_err engine_ten(void *ud)
{
    char url[128];
    tp_http_client *c = NULL;
    tp_err rc = make_client(ud, url, sizeof url, &c);
    if (rc != TP_OK)
        return rc;
    tp_http_engine *e = NULL;
    rc = tp_http_engine_create(c, &e, NULL);
    if (rc != TP_OK) {
        tp_http_client_destroy(c);
        return rc;
    }
    tp_http_request req = {.method = "GET", .url = url, .timeout = 10 * TP_NSEC_PER_SEC};
    done_rec d = {0, TP_OK};
    int submitted = 0;
    for (int i = 0; i < 10; i++) {
        tp_err s = tp_http_engine_submit(e, &req, on_done, &d, NULL, NULL);
        if (s != TP_OK && rc == TP_OK)
            rc = s;
        submitted += s == TP_OK;
    }
    while (d.done < submitted)
        (void)tp_http_engine_poll(e, 100 * TP_NSEC_PER_MSEC);
    tp_http_engine_destroy(e);
    tp_http_client_destroy(c);
    return rc != TP_OK ? rc : d.first;
}

static void test_oom_blocking_get_plain(void **state)
{
    (void)state;
    scenario s = {.tls = false};
    oom_report r;
    oom_torture("blocking GET, plain", blocking_get, &s, NULL, 0, &r);
}

static void test_oom_blocking_get_tls(void **state)
{
    (void)state;
    scenario s = {.tls = true};
    oom_report r;
    oom_torture("blocking GET, TLS", blocking_get, &s, NULL, 0, &r);
}

static void test_oom_blocking_get_h2(void **state)
{
    (void)state;
    scenario s = {.h2 = true};
    oom_report r;
    oom_torture("blocking GET, HTTP/2", blocking_get, &s, NULL, 0, &r);
}

static void test_oom_engine_h2(void **state)
{
    (void)state;
    scenario s = {.h2 = true};
    oom_report r;
    oom_torture("engine, ten GETs over HTTP/2", engine_ten, &s, NULL, 0, &r);
}

static void test_oom_engine_ten_requests(void **state)
{
    (void)state;
    scenario s = {.tls = false};
    oom_report r;
    oom_torture("engine, ten GETs", engine_ten, &s, NULL, 0, &r);
}

int main(void)
{
    if (nginx_env_load(&env) != 0)
        return 77;
    tu_watchdog(280);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_oom_blocking_get_plain),  cmocka_unit_test(test_oom_blocking_get_tls),
        cmocka_unit_test(test_oom_engine_ten_requests), cmocka_unit_test(test_oom_blocking_get_h2),
        cmocka_unit_test(test_oom_engine_h2),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
