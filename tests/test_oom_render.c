/* test_oom_render.c: out-of-memory torture (tests/support/oom_torture.h) of what the
 * library renders: a metrics render (Prometheus and JSON) of a pool with a few keys, an
 * exporter started, scraped once over loopback and stopped (without libmicrohttpd: the
 * render only), and a doctor collection with its text and JSON reports. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include <tidepool/tidepool.h>

#include "support/fake_connector.h"
#include "support/oom_torture.h"
#include "support/test_util.h"

static fake_connector f;
static tp_pool *pool; /* made once: the scenarios render it */

/* GET /metrics from 127.0.0.1:port; true for a 200 with a body. */
static bool scrape(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    static const char req[] = "GET /metrics HTTP/1.0\r\n\r\n";
    char buf[64] = {0};
    bool ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
              send(fd, req, sizeof req - 1, MSG_NOSIGNAL) == (ssize_t)(sizeof req - 1);
    struct pollfd p = {.fd = fd, .events = POLLIN};
    ok = ok && poll(&p, 1, 5000) == 1 && recv(fd, buf, sizeof buf - 1, 0) > 12;
    close(fd);
    return ok && strncmp(buf, "HTTP/1.", 7) == 0 && strstr(buf, " 200 ") != NULL;
}

static tp_err metrics_scenario(void *ud)
{
    (void)ud;
    tp_metrics *m = NULL;
    tp_err rc = tp_metrics_create(NULL, &m, NULL);
    if (rc != TP_OK)
        return rc;
    rc = tp_metrics_register(m, "app", pool, NULL);
    for (int fmt = 0; rc == TP_OK && fmt < 2; fmt++) {
        char *text = NULL;
        rc = tp_metrics_render(m, fmt == 0 ? TP_METRICS_PROMETHEUS : TP_METRICS_JSON, &text, NULL);
        if (rc == TP_OK && strstr(text, "app") == NULL)
            rc = TP_EPROTO;
        tp_free(text);
    }
    tp_metrics_exporter *e = NULL;
    if (rc == TP_OK) {
        tp_err s = tp_metrics_serve(m, "127.0.0.1:0", &e, NULL);
        if (s == TP_OK) {
            /* A scrape that met the failure gets a 500 or nothing: the next one works. */
            if (!scrape(tp_metrics_exporter_port(e)) && !scrape(tp_metrics_exporter_port(e)))
                rc = TP_EPROTO;
        } else if (s != TP_ESTATE) { /* TP_ESTATE: built without libmicrohttpd */
            rc = s;
        }
    }
    tp_metrics_exporter_stop(e);
    tp_metrics_destroy(m);
    return rc;
}

static void test_oom_metrics(void **state)
{
    (void)state;
    oom_report r;
    oom_torture("metrics render and scrape", metrics_scenario, NULL, NULL, 0, &r);
}

static tp_err doctor_scenario(void *ud)
{
    (void)ud;
    tp_diag_report *r = NULL;
    tp_err rc = tp_diag_collect(NULL, NULL, &r, NULL);
    char *text = NULL, *json = NULL;
    if (rc == TP_OK)
        rc = tp_diag_report_text(r, 10, &text, NULL);
    if (rc == TP_OK)
        rc = tp_diag_report_json(r, 10, &json, NULL);
    tp_diag_free(text);
    tp_diag_free(json);
    tp_diag_report_destroy(r);
    return rc;
}

static void test_oom_doctor(void **state)
{
    (void)state;
    oom_report r;
    oom_torture("doctor collection and reports", doctor_scenario, NULL, NULL, 0, &r);
}

int main(void)
{
    tu_watchdog(280);
    fake_init(&f);
    tp_pool_options o;
    fake_pool_options(&f, &o);
    o.maintenance_thread = false;
    if (tp_pool_create(&o, &pool, NULL) != TP_OK)
        return 1;
    const char *keys[] = {"db-a", "db-b", "cache"};
    for (int i = 0; i < 3; i++) {
        tp_conn *c = NULL;
        if (tp_pool_acquire(pool, keys[i], strlen(keys[i]), 0, &c, NULL) != TP_OK)
            return 1;
        tp_conn_release(c, 0);
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_oom_metrics),
        cmocka_unit_test(test_oom_doctor),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    tp_pool_destroy(pool);
    fake_destroy(&f);
    return rc;
}
