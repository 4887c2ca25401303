/* test_metrics_exporter.c: the exporter's life cycle and its threads. Stopping it frees
 * the port and every descriptor (a new exporter binds the same port; /proc/self/fd counts
 * match), and scrapes running on the exporter's thread while the main thread uses the
 * pools, registers pools and unregisters and destroys them never touch a destroyed pool
 * (run under ASan and TSan). Exits 77 without libmicrohttpd in the build. */
#include <dirent.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <tidepool/metrics.h>
#include <tidepool/tidepool.h>

#include "support/fake_connector.h"
#include "support/metrics_util.h"
#include "support/test_util.h"

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL)
        return -1;
    int n = 0;
    while (readdir(d) != NULL)
        n++;
    closedir(d);
    return n;
}

static void test_stop_frees_port_and_fds(void **state)
{
    (void)state;
    tp_metrics *m = NULL;
    tp_errinfo err;
    assert_int_equal(tp_metrics_create(NULL, &m, &err), TP_OK);
    int before = count_fds();
    tp_metrics_exporter *e = NULL;
    assert_int_equal(tp_metrics_serve(m, "localhost:0", &e, &err), TP_OK);
    int port = tp_metrics_exporter_port(e);
    assert_true(port > 0);
    assert_int_equal(mu_http(port, "GET", "/metrics", NULL, 5000, NULL, NULL), 200);
    tp_metrics_exporter_stop(e);
    assert_int_equal(count_fds(), before);
    assert_int_equal(mu_http(port, "GET", "/metrics", NULL, 1000, NULL, NULL), -1);

    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    tp_metrics_serve_options o;
    tp_metrics_serve_options_init(&o);
    o.max_connections = 2;
    o.connection_timeout = 2 * TP_NSEC_PER_SEC;
    assert_int_equal(tp_metrics_serve_ex(m, addr, &o, &e, &err), TP_OK);
    assert_int_equal(tp_metrics_exporter_port(e), port);
    assert_int_equal(mu_http(port, "GET", "/debug/pools", NULL, 5000, NULL, NULL), 200);
    tp_metrics_exporter_stop(e);
    tp_metrics_destroy(m);
}

typedef struct scraper {
    int port;
    atomic_bool stop;
    atomic_int ok, failed;
} scraper;

static void *scrape_loop(void *arg)
{
    scraper *s = arg;
    for (int i = 0; !atomic_load(&s->stop); i++) {
        char *body = NULL;
        int st = mu_http(s->port, "GET", i % 2 == 0 ? "/metrics" : "/debug/pools", NULL, 5000, NULL,
                         &body);
        /* A render is one snapshot: a family's samples are all there or none is. */
        bool whole = body != NULL && (i % 2 == 1 || body[0] == '\0' ||
                                      strstr(body, "# TYPE tidepool_idle_before_reuse_seconds "
                                                   "histogram") != NULL);
        if (st == 200 && whole)
            atomic_fetch_add(&s->ok, 1);
        else
            atomic_fetch_add(&s->failed, 1);
        free(body);
    }
    return NULL;
}

static void test_scrapes_race_pool_churn(void **state)
{
    (void)state;
    tp_metrics *m = NULL;
    tp_errinfo err;
    assert_int_equal(tp_metrics_create(NULL, &m, &err), TP_OK);
    tp_metrics_exporter *e = NULL;
    assert_int_equal(tp_metrics_serve(m, "127.0.0.1:0", &e, &err), TP_OK);
    scraper s = {.port = tp_metrics_exporter_port(e)};
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        tu_thread_start(&t[i], scrape_loop, &s);

    fake_connector f;
    fake_init(&f);
    tp_pool_options o;
    fake_pool_options(&f, &o);
    o.maintenance_thread = false;
    int64_t end = tu_now_ns() + MS(1500);
    for (int round = 0; tu_now_ns() < end || round < 5; round++) {
        tp_pool *p = tu_pool_create(&o);
        char name[32];
        snprintf(name, sizeof name, "round%d", round);
        assert_int_equal(tp_metrics_register(m, name, p, &err), TP_OK);
        for (int i = 0; i < 50; i++) {
            char key[32];
            snprintf(key, sizeof key, "http://10.0.0.%d:80", i % 7);
            tp_conn_release(tu_acquire(p, key, MS(1000)), i % 5 == 0 ? TP_RELEASE_DISCARD : 0);
        }
        assert_int_equal(tp_metrics_unregister(m, name), TP_OK);
        tp_pool_destroy(p); /* no scrape may touch it any more */
    }
    atomic_store(&s.stop, true);
    for (int i = 0; i < 2; i++)
        tu_thread_join(t[i]);
    tp_metrics_exporter_stop(e);
    tp_metrics_destroy(m);
    fake_destroy(&f);
    print_message("%d scrapes during pool churn\n", atomic_load(&s.ok));
    assert_int_equal(atomic_load(&s.failed), 0);
    assert_true(atomic_load(&s.ok) >= 2);
}

int main(void)
{
    tu_watchdog(120);
    signal(SIGPIPE, SIG_IGN);
    if (!mu_have_exporter())
        return 77;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stop_frees_port_and_fds),
        cmocka_unit_test(test_scrapes_race_pool_churn),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
