/* test_http_mtls.c: client certificates against the fixture's nginx server that
 * requires one (ssl_verify_client on, answering / with the certificate's subject): the
 * right certificate is accepted in the blocking call and the engine, with a plain and
 * with an encrypted key; without one nginx refuses (400); a wrong passphrase, a key
 * that does not match, a missing file fail tp_http_client_create with the reason.
 * Skipped (77) without the fixture. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <tidepool/tidepool.h>

#include "support/http_both.h"
#include "support/nginx_env.h"
#include "support/test_util.h"

static nginx_env env;

/* GET / of the mTLS server. */
static hb_got get(tp_http_client *c, bool engine)
{
    char url[128];
    snprintf(url, sizeof url, "https://127.0.0.1:%u/", (unsigned)env.https_mtls_port);
    return hb_get(c, engine, url);
}

static tp_err create(const char *cert, const char *key, const char *pass, tp_http_client **c,
                     tp_errinfo *e)
{
    tp_http_client_options o;
    tp_http_client_options_init(&o);
    o.ca_file = env.ca_file;
    o.tls_client_cert = cert;
    o.tls_client_key = key;
    o.tls_client_key_passphrase = pass;
    return tp_http_client_create(&o, c, e);
}

static void accepted(const char *key, const char *pass)
{
    tp_http_client *c = NULL;
    tp_errinfo e;
    tp_err rc = create(env.client_cert, key, pass, &c, &e);
    if (rc != TP_OK)
        fail_msg("create: %s", e.msg);
    for (int engine = 0; engine < 2; engine++) {
        hb_got g = get(c, engine);
        if (g.rc != TP_OK)
            fail_msg("%s: %s: %s", engine ? "engine" : "blocking", tp_err_name(g.rc), g.msg);
        assert_int_equal(g.status, 200);
        assert_non_null(strstr(g.body, "CN=tidepool test client"));
    }
    tp_http_client_destroy(c);
}

static void test_certificate_accepted(void **state)
{
    (void)state;
    accepted(env.client_key, NULL);
}

static void test_encrypted_key_with_passphrase(void **state)
{
    (void)state;
    accepted(env.client_key_encrypted, "tidepool");
}

/* No certificate: the handshake completes and nginx answers 400 (its "No required SSL
 * certificate was sent"); the caller sees the server's refusal, not a transport error. */
static void test_without_certificate_refused(void **state)
{
    (void)state;
    tp_http_client *c = NULL;
    tp_errinfo e;
    assert_int_equal(create(NULL, NULL, NULL, &c, &e), TP_OK);
    for (int engine = 0; engine < 2; engine++) {
        hb_got g = get(c, engine);
        assert_int_equal(g.rc, TP_OK);
        assert_int_equal(g.status, 400);
        assert_non_null(strstr(g.body, "certificate"));
    }
    tp_http_client_destroy(c);
}

static void test_bad_files_fail_create(void **state)
{
    (void)state;
    char server_key[600];
    snprintf(server_key, sizeof server_key, "%s/server.key", env.dir);
    const struct {
        const char *cert, *key, *pass;
        tp_err rc;
        const char *why;
    } bad[] = {
        {env.client_cert, env.client_key_encrypted, NULL, TP_ETLS, "no passphrase given"},
        {env.client_cert, env.client_key_encrypted, "wrong", TP_ETLS, "client key"},
        {env.client_cert, server_key, NULL, TP_ETLS, "does not match"},
        {"/nonexistent/client.pem", env.client_key, NULL, TP_ETLS, "client certificate"},
        {NULL, env.client_key, NULL, TP_EINVAL, "needs tls_client_cert"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tp_http_client *c = (tp_http_client *)&bad[i];
        tp_errinfo e;
        assert_int_equal(create(bad[i].cert, bad[i].key, bad[i].pass, &c, &e), bad[i].rc);
        assert_null(c);
        if (strstr(e.msg, bad[i].why) == NULL)
            fail_msg("case %zu: \"%s\" lacks \"%s\"", i, e.msg, bad[i].why);
    }
}

int main(void)
{
    if (nginx_env_load(&env) != 0)
        return 77;
    if (env.https_mtls_port == 0) {
        fprintf(stderr, "the fixture has no mTLS server (an older nginx-test.sh?)\n");
        return 1;
    }
    tu_watchdog(60);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_certificate_accepted),
        cmocka_unit_test(test_encrypted_key_with_passphrase),
        cmocka_unit_test(test_without_certificate_refused),
        cmocka_unit_test(test_bad_files_fail_create),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
